-- bench.report: report.md, summary.csv, summary.json's analysis and charts
-- from synthetic results folders whose figures are known (tests/data/gen_results.lua).
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local G = dofile(os.getenv("BENCHRUN_TESTS") .. "/data/gen_results.lua")
local results = require("bench.results")
local report = require("bench.report")
local report_svg = require("bench.report.svg")
local Q = require("bench.report.quality")
local A = require("bench.report.analysis")
local MD = require("bench.report.markdown")

local function read(path)
  local f = assert(io.open(path, "rb"), path)
  local s = f:read("a")
  f:close()
  return s
end

local function has(text, needle, what)
  if not text:find(needle, 1, true) then
    error(string.format("%s: expected to find %q in:\n%s", what or "text", needle, text), 2)
  end
end

-- summary.csv as a list of {column = value} rows
local function csv(path)
  local rows, head = {}, nil
  for line in io.lines(path) do
    local fields = {}
    for f in (line .. ","):gmatch('("?[^,]*"?),') do fields[#fields + 1] = f end
    if not head then head = fields
    else
      local r = {}
      for i, k in ipairs(head) do r[k] = fields[i] end
      rows[#rows + 1] = r
    end
  end
  return rows
end

local function by_cell(rows)
  local m = {}
  for _, r in ipairs(rows) do m[r.cell] = r end
  return m
end

local p3 = T.tmpdir() .. "/p3"
local p3_report

T.case("phase 3: run:finish writes report.md, summary.csv, summary.json, charts", function()
  local run = G.phase3(p3)
  p3_report = report.finish(run, {phase = "compare", notes = {text = "synthetic"}})
  T.eq(p3_report, p3 .. "/report.md", "report path")
  for _, f in ipairs({"report.md", "summary.csv", "summary.json", "charts/tps_by_variant.svg", "charts/memory.svg"}) do
    T.eq(results.exists(p3 .. "/" .. f), true, f)
  end
end)

T.case("phase 3: summary.csv numbers equal the inputs", function()
  local rows = by_cell(csv(p3 .. "/summary.csv"))
  for _, v in ipairs(G.PHASE3) do
    local r = rows[v.id]
    T.eq(r ~= nil, true, "row for " .. v.id)
    T.near(tonumber(r.load_s), v.load, 1e-9, v.id .. " load_s")
    T.near(tonumber(r.peak_bytes), v.peak * 1e9, 1, v.id .. " peak")
    T.near(tonumber(r.model_bytes), v.size * 1e9, 1, v.id .. " model bytes")
    T.eq(r.status, v.status or "ok", v.id .. " status")
    if v.status ~= "oom" then
      -- decode rates alternate ±2% around the figure, so the mean is the figure
      T.near(tonumber(r.decode_tps), v.rate, 1e-3, v.id .. " decode tps")
      T.near(tonumber(r.ttft_p50), v.ttft, 1e-6, v.id .. " ttft p50")
      T.near(tonumber(r.tps_per_gb), v.rate / v.peak, 1e-4, v.id .. " tps/GB")
      T.eq(r.requests, "10", v.id .. " requests (warm-ups excluded)")
    end
  end
end)

T.case("phase 3: report.md tables, pairs, criteria, quality", function()
  local md = read(p3_report)
  has(md, "| mlx-4bit | MiniMax-M2.1-4bit | mlx | 38.5 | 420 | 420 | 45.7 |", "per-variant row")
  has(md, "| gguf-bf16 | MiniMax-M2.1-BF16 | gguf | 300 | – | – | – |", "OOM row")
  has(md, "**OOM**: server killed by SIGKILL (out of memory)", "OOM status")
  has(md, "### 4-bit: mlx-4bit vs gguf-q4km", "4-bit pair")
  has(md, "### 8-bit: mlx-8bit vs gguf-q8", "8-bit pair")
  has(md, "| Decode TPS | 45.7 | 41.0 | -10.3% | MLX |", "4-bit decode row")
  has(md, "| Decode TPS | 31.4 | 33.9 | +8.0% | GGUF |", "8-bit decode row")
  has(md, "| gguf-q4km | ✅ 5/5 | ✅ | ✅ | ✅ |", "criteria pass")
  has(md, "| gguf-bf16 | ❌ 0/5 | ✅ | ❌ | – |", "criteria OOM")
  has(md, "Within memory limit (512 GB, host RAM)", "limit from host RAM")
  has(md, "Reference: **mlx-8bit**", "reference = highest precision that ran")
  has(md, "| mlx-8bit (reference) | 1.000 | 1.000 |", "reference scores 1")
  has(md, "✅ defines quicksort", "plan check shown")
  has(md, "**gguf-bf16** does not fit", "OOM finding")
  has(md, "![Memory over time](charts/memory.svg)", "chart link")
  has(md, "synthetic", "notes text")
end)

T.case("phase 3: summary.json keeps the cells and adds the analysis", function()
  local s = results.json_decode(read(p3 .. "/summary.json"))
  T.eq(#s.cells, #G.PHASE3, "cells")
  T.eq(#s.analysis.pairs, 2, "two pairs")
  T.eq(s.analysis.pairs[1].bits, 4, "4-bit first")
  T.near(s.analysis.pairs[2].gguf_decode_tps, 33.9, 1e-6, "8-bit gguf tps")
  T.eq(s.analysis.quality.reference, "mlx-8bit", "quality reference")
end)

T.case("every chart is well-formed XML with a title and no NaN", function()
  for _, f in ipairs({"tps_by_variant.svg", "memory.svg"}) do
    local svg = read(p3 .. "/charts/" .. f)
    local ok, why = report_svg.well_formed(svg)
    T.eq(ok, true, f .. ": " .. tostring(why))
    T.eq(svg:find("nan", 1, true), nil, f .. " has no nan")
    T.eq(svg:find("inf", 1, true), nil, f .. " has no inf")
    has(svg, "<title>", f)
  end
  local mem = read(p3 .. "/charts/memory.svg")
  has(mem, "load phase", "memory chart legend")
  has(mem, "mlx-4bit", "cell marker")
end)

T.case("svg.well_formed catches broken markup", function()
  T.eq(report_svg.well_formed('<svg a="1"><g><text>x &amp; y</text></g></svg>'), true, "good")
  T.eq(report_svg.well_formed('<svg><g></svg>'), nil, "mismatch")
  T.eq(report_svg.well_formed('<svg a=1></svg>'), nil, "unquoted attribute")
  T.eq(report_svg.well_formed('<svg>a & b</svg>'), nil, "bare ampersand")
  T.eq(report_svg.well_formed('<svg>'), nil, "unclosed")
  T.eq(report_svg.well_formed('<svg>\226\128</svg>'), nil, "invalid UTF-8")
  local cut = report_svg.truncate(string.rep("a · ", 30), 10)
  T.eq(utf8.len(cut), 10, "truncate counts characters and keeps UTF-8 valid")
end)

local p4 = T.tmpdir() .. "/p4"

T.case("phase 4: scaling table, the four questions, fairness", function()
  -- the reference machine comes from the plan, through the phase script's notes
  report.finish(G.phase4(p4), {notes = {reference = {scaling = 4.3, label = "M4 Max with vllm-mlx (the plan's expected:)"}}})
  local md = read(p4 .. "/report.md")
  has(md, "| 1 | 45.0 | 45.0 | 1.00× |", "c=1 row")
  has(md, "| 16 | 198.0 | 12.4 | 4.40× |", "c=16 row")
  has(md, "| 8 | 184.0 | 23.0 | 4.09× |", "c=8 row")
  -- peak memory 141..171 GB over c = 1..16: the least-squares slope
  local xs, ys = {}, {}
  for _, v in ipairs(G.PHASE4) do xs[#xs + 1] = v.c ys[#ys + 1] = v.peak end
  local mx, my = A.mean(xs), A.mean(ys)
  local sxy, sxx = 0, 0
  for i = 1, #xs do sxy = sxy + (xs[i] - mx) * (ys[i] - my) sxx = sxx + (xs[i] - mx) ^ 2 end
  has(md, "Memory per concurrent request: " .. MD.fmt.size(sxy / sxx * 1e9) .. " (", "question 4")
  has(md, "1. Does this machine scale better than the reference? At 16 concurrent requests aggregate throughput is 4.40×", "question 1")
  has(md, "yes, it scales better", "4.40 > 4.3")
  has(md, "2. Optimal concurrency: the most throughput is at 16 concurrent (198.0 TPS); 8 concurrent already reaches 90% of it", "question 2")
  has(md, "3. Is batching worth it for a single user? At concurrency 1: mlx-lm 46.5 TPS, vllm-mlx 45.0 TPS", "question 3")
  has(md, "| 0.93 | 3.20 |", "fairness figures")
  -- without a reference in the notes (a plan without expected:) there is
  -- nothing to compare with: the run's own scaling only
  local bare = T.tmpdir() .. "/p4bare"
  report.finish(G.phase4(bare), {})
  local md2 = read(bare .. "/report.md")
  has(md2, "1. Scaling: at 16 concurrent requests aggregate throughput is 4.40× the c=1 figure", "no reference")
  assert(not md2:find("M4 Max", 1, true) and not md2:find("reference", 1, true), "no reference named")
  for _, f in ipairs({"throughput_vs_concurrency.svg", "latency_vs_concurrency.svg"}) do
    local ok, why = report_svg.well_formed(read(p4 .. "/charts/" .. f))
    T.eq(ok, true, f .. ": " .. tostring(why))
  end
end)

local p5 = T.tmpdir() .. "/p5"

T.case("phase 5: tuning deltas vs baseline in %, noise verdicts, stability", function()
  report.finish(G.phase5(p5, {["cb-1"] = 0.8, ["private-vram"] = 1.06, combined = 1.001}), {})
  local md = read(p5 .. "/report.md")
  has(md, "### Q4_K_M (baseline: baseline)", "group")
  has(md, "| cb-1 | 32.8 | -20.0% | yes | 500 | +25.0% |", "slow config beyond noise")
  has(md, "| private-vram | 43.5 | +6.0% | yes |", "faster config beyond noise")
  has(md, "| combined | 41.0 | +0.1% | no (noise) |", "tiny change within noise")
  has(md, "| die-0 | 41.0 | +0.0% | no (noise) | 400 | +0.0% (noise) |", "no change")
  has(md, "| Q4_K_M · baseline | 3 | 0.5% | +1.0% | 1/1 |", "stability row")
  has(md, "**private-vram** improves decode TPS by +6.0%", "recommendation")
  local s = results.json_decode(read(p5 .. "/summary.json"))
  local rows = s.analysis.tuning[1].rows
  local cb1
  for _, r in ipairs(rows) do if r.name == "cb-1" then cb1 = r end end
  T.near(cb1.delta_tps_pct, -20, 1e-6, "cb-1 delta")
  T.eq(cb1.beyond_noise, "yes", "cb-1 verdict")
  local ok, why = report_svg.well_formed(read(p5 .. "/charts/tuning_deltas.svg"))
  T.eq(ok, true, "tuning chart: " .. tostring(why))
end)

T.case("report re-render is deterministic and equals run:finish's", function()
  local before = read(p5 .. "/report.md")
  local csv_before = read(p5 .. "/summary.csv")
  report.render(p5)
  T.eq(read(p5 .. "/report.md"), before, "report.md")
  T.eq(read(p5 .. "/summary.csv"), csv_before, "summary.csv")
end)

T.case("an interrupted run resumed gives the same report as an uninterrupted one", function()
  local root = T.tmpdir()
  local full = root .. "/full"
  report.finish(G.phase5(full, {["cb-1"] = 0.8}), {})
  -- the same run, stopped in the middle of its fourth cell, then resumed
  local part = root .. "/part"
  local run = G.phase5(part, {["cb-1"] = 0.8})
  run:close()
  -- forget the cells from the fourth on, as if the run had stopped there:
  -- their marker files go, their lines stay (the interrupted cell's records)
  local s = results.json_decode(read(part .. "/summary.json"))
  for i = 4, #s.cells do os.remove(part .. "/" .. results.cell_file(s.cells[i].id)) end
  local again = assert(results.open(part))
  T.eq(again:done("q4km-die-0"), true, "third cell kept")
  T.eq(again:done("q4km-die-1"), false, "fourth cell to redo")
  -- rerun every cell that is not done, through the same generator
  local G2 = dofile(os.getenv("BENCHRUN_TESTS") .. "/data/gen_results.lua")
  local shadow = {record = function(_, id, rec) if not again:done(id) then again:record(id, rec) end end,
                  sample = function(_, smp) if not again:done(smp.cell) then again:sample(smp) end end,
                  cell = function(_, cell) if not again:done(cell.id) then return again:cell(cell) end end}
  local real_create = results.create
  results.create = function() return shadow end
  local ok, err = pcall(G2.phase5, part .. "-unused", {["cb-1"] = 0.8})
  results.create = real_create
  assert(ok, err)
  report.finish(again, {})
  local function strip(text) return (text:gsub("\n%- Run: [^\n]*", "")) end
  T.eq(strip(read(part .. "/report.md")), strip(read(full .. "/report.md")), "report.md")
  T.eq(read(part .. "/summary.csv"), read(full .. "/summary.csv"), "summary.csv")
end)

T.case("samples belong to cells by the cells' time windows; peaks come from them", function()
  local dir = T.tmpdir() .. "/win"
  local run = assert(results.create{dir = dir, name = "win"})
  -- one server kept across two cells: the runner flushes every sample under the last cell's id
  for i = 0, 9 do
    run:sample{t_ns = 1000 + i * 100, cell = "c2", phase = "run", rss = (i < 5 and 10 or 20) * 1000000000 + i}
  end
  run:cell{id = "c1", labels = {concurrency = 1}, started_ns = 1000, ended_ns = 1450,
           summary = {requests = 1, ok = 1, decode_tps = {mean = 10}}}
  run:cell{id = "c2", labels = {concurrency = 2}, started_ns = 1500, ended_ns = 1900,
           server = {peak_rss_bytes = 25000000000}, summary = {requests = 1, ok = 1, decode_tps = {mean = 8}}}
  run:close()
  local data = assert(results.load(dir))
  local owners = A.sample_cells(data)
  T.eq(owners[1], "c1", "first sample")
  T.eq(owners[5], "c1", "last sample of c1's window")
  T.eq(owners[6], "c2", "first sample of c2's window")
  local an = A.analyze(data)
  T.eq(an.by_key["concurrency=1"].metrics.peak_bytes, 10000000004, "c1 peak from its samples")
  T.eq(an.by_key["concurrency=2"].metrics.peak_bytes, 20000000009,
    "c2: its window's samples, not the peak the server reported for both cells")
  local svg = report_svg.timeline{title = "t", series = {{name = "x", points = {{0, 1}, {1, nil}, {2, 3}, {3, 4}}}}}
  T.eq(select(2, svg:gsub("<polyline", "")), 1, "a missing value breaks the line")
end)

T.case("degenerate runs still render: no cells, every cell failed, no records", function()
  local empty = T.tmpdir() .. "/empty"
  local run = assert(results.create{dir = empty, name = "empty"})
  local path = report.finish(run, {})
  has(read(path), "No cell has finished yet.", "empty run")
  local bad = T.tmpdir() .. "/bad"
  run = assert(results.create{dir = bad, name = "bad", phase = "batching"})
  for _, c in ipairs({1, 2, 4}) do
    run:record("c" .. c, {ok = false, error = {kind = "connect"}})
    run:cell{id = "c" .. c, labels = {concurrency = c}, status = c == 4 and "oom" or "failed", error = "no server"}
  end
  path = report.finish(run, {})
  local md = read(path)
  has(md, "**failed**: no server", "failed status")
  has(md, "does not fit: the server was OOM-killed", "oom finding")
  T.eq(md:find("nan", 1, true), nil, "no nan")
  T.eq(md:find("inf", 1, true), nil, "no inf")
  T.eq(report.main(bad), 0, "re-render")
end)

T.case("quality: tokens, LCS similarity, Jaccard", function()
  local toks = Q.tokens("Hello, World! 量子计算")
  T.eq(table.concat(toks, "|"), "hello|world|量|子|计|算", "tokens")
  T.eq(Q.lcs({"a", "b", "c", "d"}, {"a", "c", "d", "e"}), 3, "lcs")
  local s = Q.similarity("a b c d", "a c d e")
  T.near(s.lcs, 2 * 3 / 8, 1e-12, "normalized lcs")
  T.near(s.jaccard, 3 / 5, 1e-12, "jaccard")
  T.eq(Q.similarity("same text", "same text").lcs, 1, "identical")
  T.eq(Q.similarity("abc", "xyz").lcs, 0, "disjoint")
  T.eq(#Q.tokens("\255\254 bad utf8 words"), 3, "invalid UTF-8 falls back to ASCII words")
end)

T.case("report.main: several folders give one combined analysis", function()
  local out = T.tmpdir() .. "/analysis"
  local code = report.main(p3, p4, p5, "--out", out)
  T.eq(code, 0, "exit code")
  local md = read(out .. "/report.md")
  has(md, "# benchrun analysis: 3 runs", "title")
  has(md, "## Framework recommendations", "recommendations")
  has(md, "At 4-bit, prefer **MLX** for decode speed", "pair recommendation carried over")
  has(md, "run about **16 concurrent requests**", "batching recommendation")
  has(md, "**private-vram** improves decode TPS", "tuning recommendation")
  -- the analysis folder stands on its own
  local again = read(out .. "/report.md")
  T.eq(report.main(out), 0, "re-render the analysis")
  local function strip(text) return (text:gsub("\n%- Run: [^\n]*", "")) end
  T.eq(strip(read(out .. "/report.md")), strip(again), "same analysis from its own folder")
  T.eq(report.main(), 2, "no folder is a usage error")
  T.eq(report.main(T.tmpdir()), 1, "not a results folder")
end)

T.done()
