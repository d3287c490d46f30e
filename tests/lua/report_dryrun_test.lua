-- bench.report on what the runner really writes: dry runs (scaled memory,
-- simulated sysctl), aborted cells, expected OOMs, cell-id names, phase 4's
-- single-user question over several cells, empty lists written as {} or [].
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local results = require("bench.results")
local report = require("bench.report")
local A = require("bench.report.analysis")
local MD = require("bench.report.markdown")

local function read(path) return assert(T.read_file(path)) end

local function has(text, needle, what)
  if not text:find(needle, 1, true) then
    error(string.format("%s: expected to find %q in:\n%s", what, needle, text), 2)
  end
end

local function hasnt(text, needle, what)
  if text:find(needle, 1, true) then error(string.format("%s: did not expect %q in:\n%s", what, needle, text), 2) end
end

-- n requests of one cell: decode rate `rate` tok/s, TTFT `ttft` ms, `itl` as given
local function records(run, id, n, rate, ttft, itl, t0)
  for i = 1, n do
    local tokens = 20
    local e2el = ttft + (tokens - 1) / rate * 1000 * (1 + (i % 2 == 0 and 0.01 or -0.01))
    run:record(id, {ok = true, prompt = "p" .. i, ttft_ms = ttft + (i % 2) * 0.01, e2el_ms = e2el,
                    output_tokens = tokens, itl_ms = itl, text = "some output text " .. i,
                    t_sent_ns = t0 + i * 1e8, t_end_ns = t0 + i * 1e8 + math.floor(e2el * 1e6)})
  end
end

T.case("sizes print with a unit that suits them", function()
  T.eq(MD.fmt.size(51.2e6), "51.2 MB", "MB")
  T.eq(MD.fmt.size(5760), "5.76 KB", "KB")
  T.eq(MD.fmt.size(135e9), "135 GB", "GB")
  T.eq(MD.fmt.size(512e9), "512 GB", "hundreds")
  T.eq(MD.fmt.size(2.5e12), "2.5 TB", "TB")
  T.eq(MD.fmt.size(12), "12 B", "bytes")
  T.eq(MD.fmt.size(nil), "–", "missing")
end)

T.case("dry run: memory scaled back, expected OOM, rehearsal notice, cell-id names", function()
  local dir = T.tmpdir() .. "/p3"
  local run = assert(results.create{dir = dir, name = "p3", phase = "compare"})
  local scale = 0.0001
  local dry = {figures = {memory_scale = scale, decode_tps = 2000}, real_backend = "lmstudio"}
  records(run, "Q4_K_M/lmstudio", 5, 2000, 0.4, {}, 1e9)
  run:cell{id = "Q4_K_M/lmstudio", status = "ok", dry_run = dry,
           labels = {model = "Q4_K_M", quant = "Q4_K_M", format = "gguf", backend = "lmstudio", concurrency = 1},
           server = {peak_rss_bytes = 23e6, model_bytes = 138e9, sys_used_peak_bytes = 9e9, load_time_s = 0.05}}
  records(run, "mlx-4bit/lmstudio", 5, 2400, 0.4, {}, 5e9)
  run:cell{id = "mlx-4bit/lmstudio", status = "ok", dry_run = dry,
           labels = {model = "mlx-4bit", quant = "4bit", format = "mlx", backend = "lmstudio", concurrency = 1},
           server = {peak_rss_bytes = 22.6e6, model_bytes = 135e9, load_time_s = 0.05}}
  run:cell{id = "BF16/lmstudio", status = "oom", error = "killed while loading (out of memory)", dry_run = dry,
           labels = {model = "BF16", quant = "BF16", format = "gguf", backend = "lmstudio", concurrency = 1, expect = "oom"},
           server = {peak_rss_bytes = 33.4e6, model_bytes = 457e9, load_time_s = 0.07}}
  local path = report.finish(run, {phase = "compare", notes = {dry_run = true, memory_limit_bytes = 51.2e6, expected_prompts = 5}})
  local md = read(path)
  has(md, "(dry run: simulated figures)", "title says dry run")
  has(md, "a rehearsal, not a measurement", "rehearsal notice")
  -- 23 MB touched at memory_scale 0.0001 stands for 230 GB; TPS/GB over that
  has(md, "| Q4_K_M/lmstudio | Q4_K_M | gguf | ", "named by the cell id, labels beside it")
  local an = A.analyze(assert(results.load(dir)))
  local q4 = an.configs[1]
  T.eq(q4.name, "Q4_K_M/lmstudio", "config name = cell id")
  T.near(q4.metrics.peak_bytes, 230e9, 1, "peak scaled back")
  T.near(q4.metrics.tps_per_gb, q4.metrics.decode_tps / 230, 1e-9, "TPS/GB over the scaled-back peak")
  T.near(q4.metrics.tps_per_file_gb, q4.metrics.decode_tps / 138, 1e-9, "TPS per file GB")
  T.eq(q4.metrics.sys_peak_bytes, 9e9, "the host's memory is never scaled")
  T.eq(an.memory_scale, scale, "the run's memory_scale")
  has(md, "TPS/GB (file)", "file-size column")
  -- the limit the phase script scaled like the models, scaled back
  has(md, "Within memory limit (512 GB, plan limit, simulated)", "limit with a unit")
  has(md, "| BF16/lmstudio | – 0/5 (expected oom) | – | ✅ expected OOM | – | ✅ oom |", "expected OOM passes")
  has(md, "**BF16/lmstudio** does not fit: the server was OOM-killed at 334 GB (simulated), as the plan expects", "finding")
  hasnt(md, "0.0 GB", "no scaled-down sizes")
  has(md, "at 0.4 ms, within run-to-run noise).", "a TTFT lead of hundredths of a ms is noise")
  local csv = read(dir .. "/summary.csv")
  has(csv, "\nQ4_K_M/lmstudio,", "summary.csv names the same cell")
end)

T.case("aborted at the memory ceiling: its own status", function()
  local dir = T.tmpdir() .. "/ab"
  local run = assert(results.create{dir = dir, name = "ab"})
  records(run, "small", 3, 50, 100, {}, 1e9)
  run:cell{id = "small", labels = {model = "small"}, status = "ok", server = {peak_rss_bytes = 10e9}}
  run:cell{id = "big", labels = {model = "big"}, status = "failed", aborted = "memory ceiling",
           error = "aborted: memory ceiling: the server reached 600 GB, above safety.memory_ceiling 500 GB; it was stopped",
           safety = {memory_ceiling_bytes = 500e9, measured_ceiling_bytes = 500e9, peak_bytes = 600e9},
           server = {peak_rss_bytes = 600e9}}
  local md = read(report.finish(run, {}))
  local an = A.analyze(assert(results.load(dir)))
  T.eq(an.statuses.aborted, 1, "counted as aborted")
  T.eq(an.statuses.failed, 0, "not as failed")
  has(md, "1 aborted (memory ceiling)", "header count")
  has(md, "**aborted**: aborted: memory ceiling", "table status")
  has(md, "**big** was stopped at the plan's memory ceiling", "finding")
  local csv = read(dir .. "/summary.csv")
  T.eq(csv:match("\nbig,[^\n]*,aborted,") ~= nil, true, "summary.csv status: " .. csv)
end)

T.case("repeats as cells sharing a configuration, peaks from samples: averaged", function()
  local dir = T.tmpdir() .. "/rep"
  local run = assert(results.create{dir = dir, name = "rep"})
  for rep = 1, 2 do
    local id = "q4-r" .. rep
    local t0 = rep * 1e10
    for i = 0, 4 do run:sample{t_ns = t0 + i * 1e8, cell = id, phase = "run", rss = (100 + rep) * 1e9} end
    records(run, id, 4, 40 + rep, 300, {25, 25}, t0)
    run:cell{id = id, labels = {model = "q4", ["repeat"] = rep}, started_ns = t0, ended_ns = t0 + 5e8,
             server = {peak_rss_bytes = 200e9}}
  end
  run:close()
  local an = A.analyze(assert(results.load(dir)))
  T.eq(#an.configs, 1, "one configuration")
  local c = an.configs[1]
  T.eq(c.metrics.peak_from_samples, true, "flag kept")
  T.eq(c.metrics.peak_bytes, 102e9, "highest window peak")
  T.eq(c.name_is_id, nil, "two cells: named by labels")
  T.eq(report.render(dir) ~= nil, true, "renders")
end)

T.case("empty lists written as {} or [] read alike", function()
  local dir = T.tmpdir() .. "/empty"
  local run = assert(results.create{dir = dir, name = "empty"})
  records(run, "a", 3, 50, 100, {}, 1e9)
  run:cell{id = "a", labels = {model = "a"}, outputs = {}, checks = {}}
  run:close()
  -- what lua-cjson writes for an empty table next to the JSON array form
  local text = read(dir .. "/records.jsonl")
  local lines = {}
  for line in text:gmatch("[^\n]+") do lines[#lines + 1] = line end
  T.eq(#lines, 3, "three records")
  local function set(line, v)
    local out, n = line:gsub('"itl_ms":%b[]', '"itl_ms":' .. v)
    if n == 0 then out, n = line:gsub('"itl_ms":{}', '"itl_ms":' .. v) end
    T.eq(n, 1, "itl_ms in the record")
    return out
  end
  lines[1] = set(lines[1], "{}")
  lines[2] = set(lines[2], "[]")
  lines[3] = set(lines[3], "[10,12]")
  local f = assert(io.open(dir .. "/records.jsonl", "wb"))
  f:write(table.concat(lines, "\n"), "\n")
  f:close()
  local data = assert(results.load(dir))
  T.eq(type(data.records[1].itl_ms), "table", "{} is a table")
  T.eq(type(data.records[2].itl_ms), "table", "[] is a table")
  local s = A.summarize_records(data.records)
  T.eq(s.itl_ms.n, 2, "gaps of the third record only")
  local an = A.analyze(data)
  T.eq(an.configs[1].metrics.itl_p50, 11, "ITL p50")
  T.eq(report.render(dir) ~= nil, true, "renders")
end)

T.case("dry-run tuning: short names, simulated sysctl column, TTFT noise", function()
  local dir = T.tmpdir() .. "/p5"
  local run = assert(results.create{dir = dir, name = "p5", phase = "tuning"})
  local dry = {figures = {memory_scale = 0.0001}}
  local configs = {{"default", "default", 2000, 0.4}, {"optimized", 458752, 2001, 0.5}}
  for i, cfg in ipairs(configs) do
    local id = "vram/mlx-4bit/" .. cfg[1]
    records(run, id, 6, cfg[3], cfg[4], {}, i * 1e10)
    run:cell{id = id, status = "ok", dry_run = dry, sysctl_simulated = true,
             labels = {model = "mlx-4bit", format = "mlx", config = cfg[1], group = "vram",
                       sysctl = {["iogpu.wired_limit_mb"] = cfg[2]}},
             server = {peak_rss_bytes = 22.6e6}}
  end
  local md = read(report.finish(run, {phase = "tuning", notes = {dry_run = true,
    sysctl = {{name = "iogpu.wired_limit_mb", value = 458752, simulated = true}}}}))
  has(md, "### mlx-4bit (baseline: default)", "group name")
  has(md, "| default (baseline) | iogpu.wired_limit_mb=default (simulated) |", "baseline row")
  -- +25% of 0.4 ms is 0.1 ms: under the 1 ms floor, noise whatever the spread
  T.eq(md:match("\n| optimized | iogpu%.wired_limit_mb=458752 %(simulated%) | [%d.]+ | %+0%.%d%% | no %(noise%) | 0%.5 | %+2%d%.%d%% %(noise%) |") ~= nil,
    true, "optimized row: " .. md)
  hasnt(md, "default · iogpu.wired_limit_mb=default", "no repeated names")
  has(md, "the sysctl values were not set on this machine (simulated)", "simulated note")
  local n = A.noise({ttft_p50 = {0.4, 0.4001, 0.3999}}, {ttft_p50 = {0.5, 0.5001, 0.4999}}, "ttft_p50")
  T.eq(n.verdict, "no", "0.1 ms is under the absolute floor")
  local n2 = A.noise({ttft_p50 = {400, 401, 399}}, {ttft_p50 = {500, 501, 499}}, "ttft_p50")
  T.eq(n2.verdict, "yes", "100 ms is real")
end)

T.case("phase 4: single-user question over every single-request cell, one set of answers", function()
  local dir = T.tmpdir() .. "/p4"
  local run = assert(results.create{dir = dir, name = "p4", phase = "batching"})
  local t = 1e9
  local function cell(id, backend, conc, rate, mt)
    t = t + 1e10
    records(run, id, 4, rate, 50, {}, t)
    run:cell{id = id, labels = {model = "m", backend = backend, concurrency = conc, max_tokens = mt,
                                scenario = conc == 1 and "baseline" or "scale"},
             server = {peak_rss_bytes = (100 + conc) * 1e9}}
  end
  cell("vllm/baseline-100", "vllm-mlx", 1, 40, 100)
  cell("vllm/baseline-500", "vllm-mlx", 1, 50, 500)
  cell("vllm/scale-2", "vllm-mlx", 2, 45, 500)
  cell("vllm/scale-4", "vllm-mlx", 4, 40, 500)
  cell("mlxlm/baseline-100", "mlx-lm", 1, 44, 100)
  cell("mlxlm/baseline-500", "mlx-lm", 1, 46, 500)
  local md = read(report.finish(run, {phase = "batching", notes = {answers = {"the phase script's own answer"}}}))
  local an = A.analyze(assert(results.load(dir)))
  local v = {}
  for _, c in ipairs(an.configs) do if c.labels.backend == "vllm-mlx" and c.labels.concurrency == 1 then v[#v + 1] = c.metrics.decode_tps end end
  local mean = (v[1] + v[2]) / 2
  has(md, string.format("vllm-mlx %.1f TPS (mean of 2 single-request cells)", mean), "vllm-mlx averaged")
  has(md, "mlx-lm 45.0 TPS (mean of 2 single-request cells)", "mlx-lm averaged")
  hasnt(md, "the phase script's own answer", "one set of answers")
  has(md, "## Phase 4 questions", "the report's answers")
end)

T.done()
