-- bench.report: report.md, summary.csv, summary.json's analysis and charts
-- from a results folder; `benchrun report` and `benchrun compare`.
local results = require("bench.results")
local analysis = require("bench.report.analysis")
local groups = require("bench.report.groups")
local markdown = require("bench.report.markdown")
local svg = require("bench.report.svg")
local quality = require("bench.report.quality")
local findings = require("bench.report.findings")
local phase = require("bench.phase")
local html = require("bench.report.html")
local energy_report = require("bench.report.energy")

local report = {}

-- ------------------------------------------------------------ charts
-- Chart labels drop folder and repository prefixes of model names
-- ("mlx-community/MiniMax-M2.1-4bit" -> "MiniMax-M2.1-4bit"): bars have less room than tables.
local function short(name)
  return (tostring(name):gsub("[^%s·]*/", ""))
end

local function chart_tps(an)
  local items = {}
  for _, c in ipairs(an.configs) do
    if (tonumber(c.labels.concurrency) or 1) == 1 and #items < 60 then
      local note
      if c.status ~= "ok" then note = c.status:upper() end
      local color = svg.PALETTE[1]
      if c.format == "gguf" then color = svg.PALETTE[2] elseif c.format == "mlx" then color = svg.PALETTE[1] end
      -- a cell id is kept whole ("Q4_K_M/lmstudio" is not a repository path)
      items[#items + 1] = {label = c.name_is_id and c.name or short(c.name), value = c.status == "ok" and c.metrics.decode_tps or nil,
                           note = note, color = color}
    end
  end
  if #items == 0 then return nil end
  local has = false
  for _, it in ipairs(items) do if it.value then has = true end end
  if not has then return nil end
  return svg.bars{title = "Decode TPS by configuration (single request)", unit = "tokens/s (mean per request)", items = items}
end

local function chart_scaling(groups)
  local any = false
  for _, g in ipairs(groups) do for _, r in ipairs(g.rows) do if r.agg_tps then any = true end end end
  if not any then return nil end
  local tput, lat = {}, {}
  for i, g in ipairs(groups) do
    local a, p50, p95, p99 = {}, {}, {}, {}
    for _, r in ipairs(g.rows) do
      a[#a + 1] = {r.conc, r.agg_tps}
      p50[#p50 + 1] = {r.conc, r.config.metrics.e2el_p50}
      p95[#p95 + 1] = {r.conc, r.config.metrics.e2el_p95}
      p99[#p99 + 1] = {r.conc, r.config.metrics.e2el_p99}
    end
    local prefix = #groups > 1 and (g.name .. " ") or ""
    local color = svg.PALETTE[(i - 1) % #svg.PALETTE + 1]
    tput[#tput + 1] = {name = prefix .. "aggregate TPS", points = a, color = color}
    local per = {}
    for _, r in ipairs(g.rows) do per[#per + 1] = {r.conc, r.per_req_tps} end
    tput[#tput + 1] = {name = prefix .. "per-request TPS", points = per, color = color, dash = "6,4"}
    if #groups == 1 then
      lat = {{name = "E2E p50", points = p50, color = svg.PALETTE[1]},
             {name = "E2E p95", points = p95, color = svg.PALETTE[2]},
             {name = "E2E p99", points = p99, color = svg.PALETTE[4]}}
    else
      lat[#lat + 1] = {name = prefix .. "E2E p95", points = p95, color = color}
    end
  end
  return svg.lines{title = "Throughput vs concurrency", xlabel = "concurrent requests", ylabel = "tokens/s",
                 series = tput, xcategories = true},
         svg.lines{title = "Latency vs concurrency", xlabel = "concurrent requests", ylabel = "end-to-end latency (ms)",
                 series = lat, xcategories = true}
end

local function chart_tuning(groups)
  local items = {}
  for _, g in ipairs(groups) do
    for _, r in ipairs(g.rows) do
      if not r.is_base then
        items[#items + 1] = {label = short((#groups > 1 and (g.name .. " · ") or "") .. r.name), value = r.d_tps,
                             flag = r.noise and r.noise.verdict, note = r.config.status ~= "ok" and r.config.status:upper() or nil}
      end
    end
  end
  if #items == 0 then return nil end
  return svg.deltas{title = "Decode TPS change vs baseline", items = items,
                  caption = "faded bars: within run-to-run noise"}
end

-- Memory over time: one line per memory kind of the server, bands for each
-- cell's phases. The system's memory in use is left out: it is the whole
-- machine's (tens of GB against a small server's few) and would flatten the
-- server's lines; summary.csv keeps its peak per cell (sys_peak_bytes).
-- A dry run's server memory is scaled back by its memory_scale, as in the tables.
local function chart_memory(an)
  local samples = an.data.samples or {}
  if #samples == 0 then return nil end
  local t0 = tonumber((an.data.env or {}).t0_ns)
  local first = math.huge
  for _, s in ipairs(samples) do if type(s.t_ns) == "number" and s.t_ns < first then first = s.t_ns end end
  if first == math.huge then return nil end
  if not t0 or t0 > first then t0 = first end
  -- server host + GPU is what the tables' peak is (issue 19); the devices'
  -- whole used memory is drawn beside the server's own GPU memory
  local kinds = {{"rss", "server RSS / footprint"}, {"pss", "server PSS"}, {"server_mem", "server host + GPU"},
                 {"server_gpu", "server GPU memory"}, {"gpu_used", "GPU memory (all devices)"}}
  local scale = an.memory_scale or 1
  local series = {}
  local sorted = {}
  local index = {}
  for i, s in ipairs(samples) do
    if type(s.t_ns) == "number" and s.type ~= "power" then sorted[#sorted + 1] = s index[s] = i end   -- (power: its own chart)
  end
  -- stable: samples with the same time keep their file order
  table.sort(sorted, function(a, b)
    if a.t_ns ~= b.t_ns then return a.t_ns < b.t_ns end
    return index[a] < index[b]
  end)
  if #sorted == 0 then return nil end
  -- at most ~1500 points per line: keep each bucket's maximum so peaks survive
  local span = (sorted[#sorted].t_ns - t0) / 1e9
  local buckets = 1500
  -- without a GPU reading host + GPU is the RSS line again: left out
  local has_gpu = false
  for _, x in ipairs(samples) do if x.server_gpu then has_gpu = true break end end
  for i, k in ipairs(kinds) do
    if not has_gpu and (k[1] == "server_mem" or k[1] == "server_gpu") then goto next_kind end
    local pts, last_b = {}, nil
    for _, s in ipairs(sorted) do
      local v = tonumber(s[k[1]])
      if v then v = v / scale end
      -- a server-metrics sample (type = "metrics") or one of another memory
      -- kind carries none of this line's values: it does not break the line
      local memory_sample = s.type ~= "metrics" and (s.rss or s.pss or s.gpu_used or s.real or s.server_mem) ~= nil
      if not v and memory_sample and #pts > 0 and pts[#pts][2] then
        pts[#pts + 1] = {(s.t_ns - t0) / 1e9, nil}
        last_b = nil
      end
      if v then
        local t = (s.t_ns - t0) / 1e9
        local b = span > 0 and math.floor(t / span * buckets) or 0
        if b == last_b and pts[#pts][2] and pts[#pts][2] < v / 1e9 then pts[#pts][2] = v / 1e9
        elseif b ~= last_b then pts[#pts + 1] = {t, v / 1e9} last_b = b end
      end
    end
    if #pts > 0 then series[#series + 1] = {name = k[2], points = pts, color = svg.PALETTE[i]} end
    ::next_kind::
  end
  if #series == 0 then return nil end
  local owners = analysis.sample_cells(an.data)
  local owner = {}
  for i, s in ipairs(samples) do owner[s] = owners[i] end
  local bands, markers = {}, {}
  local cur, last_cell
  for _, s in ipairs(sorted) do
    local t = (s.t_ns - t0) / 1e9
    local phase = s.phase or "run"
    local cell = owner[s]
    if cur and cur.cell == cell and cur.kind == phase then cur.x1 = t
    else
      if cur then cur.x1 = math.max(cur.x1, t) end
      cur = {x0 = t, x1 = t, kind = phase, cell = cell, label = tostring(cell or "") .. " " .. phase}
      bands[#bands + 1] = cur
    end
    if cell ~= last_cell then
      markers[#markers + 1] = {x = t, label = cell and tostring(cell) or nil}
      last_cell = cell
    end
  end
  if #markers > 24 then for _, m in ipairs(markers) do m.label = nil end end
  return svg.timeline{title = "Memory over time" .. (an.memory_scale and " (dry run: simulated)" or ""),
                    ylabel = an.memory_scale and string.format("GB (simulator's memory ÷ %g)", an.memory_scale) or "GB",
                    series = series, bands = bands, markers = markers}
end

-- ------------------------------------------------------------ csv
local CSV_METRICS = {"status", "load_s", "ttft_p50", "ttft_p90", "ttft_p95", "ttft_p99", "tpot_p50", "tpot_p95",
  "itl_p50", "itl_p99", "e2el_p50", "e2el_p90", "e2el_p95", "e2el_p99", "decode_tps", "decode_tps_p50", "output_tps",
  "request_throughput", "goodput", "jain", "p99_p50", "peak_bytes", "host_peak_bytes", "gpu_peak_bytes", "gpu_source",
  "sys_peak_bytes",
  "model_bytes", "tps_per_gb", "requests", "ok", "errors", "tokens_total"}

local function csv_field(v)
  if v == nil then return "" end
  if type(v) == "number" then
    if math.type(v) == "integer" or (v == math.floor(v) and math.abs(v) < 2^53) then return string.format("%d", v) end
    return string.format("%.6g", v)
  end
  local s = tostring(v)
  if s:find('[,"\n\r]') then s = '"' .. s:gsub('"', '""') .. '"' end
  return s
end

-- report.csv(an) -> text: one row per cell (repeats as separate cells stay separate).
function report.csv(an)
  local label_keys = {}
  local seen = {}
  for _, k in ipairs(analysis.LABEL_ORDER) do label_keys[#label_keys + 1] = k seen[k] = true end
  local extra = {}
  for _, c in ipairs(an.data.cells or {}) do
    for k in pairs(c.labels or {}) do if not seen[k] then seen[k] = true extra[#extra + 1] = k end end
  end
  table.sort(extra)
  for _, k in ipairs(extra) do label_keys[#label_keys + 1] = k end
  local head = {"cell"}
  for _, k in ipairs(label_keys) do head[#head + 1] = k end
  for _, k in ipairs(CSV_METRICS) do head[#head + 1] = k end
  for _, k in ipairs(energy_report.CSV_FIELDS) do head[#head + 1] = k end
  local lines = {table.concat(head, ",")}
  local recs_by_cell = {}
  for _, r in ipairs(an.data.records or {}) do
    if r.cell and r.warmup ~= true then
      recs_by_cell[r.cell] = recs_by_cell[r.cell] or {}
      table.insert(recs_by_cell[r.cell], r)
    end
  end
  for _, cell in ipairs(an.data.cells or {}) do
    local m = analysis.metrics_of(cell.summary, cell.server)
    local recs = recs_by_cell[cell.id]
    if recs and #recs > 0 then
      local fromrec = analysis.metrics_of(analysis.summarize_records(recs), cell.server)
      for k, v in pairs(fromrec) do if m[k] == nil then m[k] = v end end
    end
    -- the peak as report.md takes it (the same analysis): a server kept
    -- across cells records its peak in the last one only, so each cell's is
    -- that of its own samples; a dry run's is scaled back by memory_scale
    local am = an.cell_metrics and an.cell_metrics[cell.id]
    if am and am.peak_bytes then
      for _, k in ipairs({"peak_bytes", "host_peak_bytes", "gpu_peak_bytes", "gpu_source", "tps_per_gb"}) do m[k] = am[k] end
    end
    m.status = analysis.cell_status(cell)
    local row = {csv_field(cell.id)}
    for _, k in ipairs(label_keys) do
      local v = (cell.labels or {})[k]
      row[#row + 1] = csv_field(type(v) == "table" and analysis.label_text(v) or v)
    end
    for _, k in ipairs(CSV_METRICS) do row[#row + 1] = csv_field(m[k]) end
    local ef = energy_report.cell_fields(cell)
    for _, k in ipairs(energy_report.CSV_FIELDS) do row[#row + 1] = csv_field(ef[k]) end
    lines[#lines + 1] = table.concat(row, ",")
  end
  return table.concat(lines, "\n") .. "\n"
end

-- ------------------------------------------------------------ analysis JSON
local function analysis_json(an, ctx)
  local out = {configs = {}, scaling = {}, tuning = {}, findings = ctx.findings}
  for _, c in ipairs(an.configs) do
    local cells = {}
    for _, cell in ipairs(c.cells) do cells[#cells + 1] = cell.id end
    out.configs[#out.configs + 1] = {name = c.name, labels = c.labels, status = c.status, cells = cells,
      metrics = c.metrics, bits = c.bits, format = c.format,
      repeats = {decode_tps = c.repeat_values.decode_tps, output_tps = c.repeat_values.output_tps}}
  end
  for _, g in ipairs(ctx.scaling) do
    local rows = {}
    for _, r in ipairs(g.rows) do
      rows[#rows + 1] = {concurrency = r.conc, config = r.config.name, aggregate_tps = r.agg_tps,
        per_request_tps = r.per_req_tps, scaling = r.scaling, e2el_p50_ms = r.config.metrics.e2el_p50,
        e2el_p95_ms = r.config.metrics.e2el_p95, e2el_p99_ms = r.config.metrics.e2el_p99,
        peak_bytes = r.config.metrics.peak_bytes}
    end
    out.scaling[#out.scaling + 1] = {name = g.name, rows = rows, mem_per_request_bytes = g.mem_per_request}
  end
  for _, g in ipairs(ctx.tuning) do
    local rows = {}
    for _, r in ipairs(g.rows) do
      rows[#rows + 1] = {name = r.name, config = r.config.name, baseline = r.is_base or nil,
        delta_tps_pct = r.d_tps, delta_ttft_pct = r.d_ttft, delta_peak_pct = r.d_peak, delta_load_pct = r.d_load,
        beyond_noise = r.noise and r.noise.verdict or nil}
    end
    out.tuning[#out.tuning + 1] = {name = g.name, baseline = g.base.name, rows = rows,
      no_measurable_effect = g.no_effect or nil, variables = g.no_effect_vars}
  end
  if ctx.quality then
    local q = {reference = ctx.quality.reference.name, prompts = {}}
    for _, p in ipairs(ctx.quality.prompts) do
      local rows = {}
      for _, r in ipairs(p.rows) do
        rows[#rows + 1] = {config = r.config.name, similarity = r.sim and r.sim.lcs, jaccard = r.sim and r.sim.jaccard,
          check = r.check}
      end
      q.prompts[#q.prompts + 1] = {name = p.name, rows = rows}
    end
    out.quality = q
  end
  out.quality_logprobs = require("bench.report.logprobs").json(an)
  out.cache = require("bench.report.cache").rows(an)
  -- what the phases' report hooks add (phase 3: its MLX-vs-GGUF pairs)
  for k, v in pairs(ctx.phase_parts and ctx.phase_parts.analysis or {}) do
    if out[k] == nil then out[k] = v end
  end
  return out
end

local function must(ok, err) if not ok then error(err, 0) end return ok end

-- The phase a combined analysis is written under (several runs merged, the
-- seed's phase 6): a mode of the report, with no phase script of its own.
-- report.build turns it into ctx.combined, the one flag the writers read.
local COMBINED_PHASE = "analysis"

-- Merge several loaded folders into one data set for the phase-6 analysis:
-- cell ids are prefixed with their run's name so they stay unique, and each
-- cell gets a `run` label only when the runs measured the same configurations.
local function merge(datas)
  if #datas == 1 then return datas[1] end
  local merged = {dir = nil, summary = {name = "analysis", phase = COMBINED_PHASE, notes = {}, runs = {}},
                  env = datas[1].env, cells = {}, records = {}, samples = {}}
  local keys, clash = {}, false
  for _, d in ipairs(datas) do
    for _, c in ipairs(d.cells) do
      local k = analysis.config_key(c.labels or {})
      if keys[k] and keys[k] ~= d then clash = true end
      keys[k] = d
    end
  end
  -- cells are prefixed with their plan's name, or, when one plan ran twice,
  -- with the folder's name (unique, but carries the timestamp)
  local plan_names = {}
  for _, d in ipairs(datas) do
    local n = d.summary.name
    if n then plan_names[n] = (plan_names[n] or 0) + 1 end
  end
  for i, d in ipairs(datas) do
    local name = tostring(d.dir and d.dir:match("([^/]+)/*$") or d.summary.name or ("run" .. i))
    local pn = d.summary.name
    if type(pn) == "string" and pn ~= "" and plan_names[pn] == 1 then name = pn end
    merged.summary.runs[#merged.summary.runs + 1] = {name = name, dir = d.dir, phase = d.summary.phase,
      started = d.summary.started, finished = d.summary.finished}
    local prefix = name .. "/"
    for _, c in ipairs(d.cells) do
      local copy = {}
      for k, v in pairs(c) do copy[k] = v end
      copy.id = prefix .. tostring(c.id)
      copy.labels = {}
      for k, v in pairs(c.labels or {}) do copy.labels[k] = v end
      if clash then copy.labels.run = name end
      merged.cells[#merged.cells + 1] = copy
    end
    for _, r in ipairs(d.records) do
      local copy = {}
      for k, v in pairs(r) do copy[k] = v end
      copy.cell = prefix .. tostring(r.cell)
      merged.records[#merged.records + 1] = copy
    end
    if type(d.summary.notes) == "table" then
      for k, v in pairs(d.summary.notes) do if merged.summary.notes[k] == nil then merged.summary.notes[k] = v end end
    end
  end
  merged.summary.started = datas[1].summary.started
  merged.summary.finished = datas[#datas].summary.finished
  return merged
end
report.merge = merge

-- report.build(data, opts) -> an, ctx (analysis + everything the writers need)
function report.build(data, opts)
  opts = opts or {}
  local an = analysis.analyze(data)
  energy_report.annotate(an)   -- each configuration's energy figures into its metrics
  local ctx = {phase = opts.phase or data.summary.phase, title = opts.title or data.summary.title, charts = {}}
  -- a combined analysis: merged just now, re-rendered from the folder a merge
  -- wrote (its summary keeps the phase), or asked for with --phase
  ctx.combined = ctx.phase == COMBINED_PHASE
  ctx.scaling = groups.scaling(an)
  ctx.tuning = groups.tuning(an)
  ctx.quality = quality.compare(an.configs)
  -- what the phases' own scripts add (their report hooks)
  ctx.phase_parts = phase.report_parts(data, an, ctx)
  return an, ctx
end

-- report.render(dir_or_data, {phase=, out=, title=}) -> report path
-- Writes report.md, report.html, summary.csv, charts/*.svg into `out` (default: the
-- folder itself) and stores the analysis in the folder's summary.json.
function report.render(src, opts)
  opts = opts or {}
  local data = src
  if type(src) == "string" then data = assert(results.load(src)) end
  if type(data) ~= "table" or type(data.summary) ~= "table" then
    error("report.render: expected a results folder or results.load(dir) data", 2)
  end
  local out = opts.out or data.dir
  if not out then error("report.render: no output folder (give opts.out)", 2) end
  must(results.mkdir(out .. "/charts"))
  local an, ctx = report.build(data, opts)
  local charts = {}
  local function add(file, title, text)
    if not text then return end
    local ok, why = svg.well_formed(text)
    if not ok then error("report: chart " .. file .. " is not well-formed XML: " .. why, 0) end
    must(results.write_atomic(out .. "/" .. file, text))
    charts[#charts + 1] = {file = file, title = title, svg = text}   -- svg: report.html draws it inline
  end
  add("charts/tps_by_variant.svg", "Decode TPS by configuration", chart_tps(an))
  local tput, lat = chart_scaling(ctx.scaling)
  add("charts/throughput_vs_concurrency.svg", "Throughput vs concurrency", tput)
  add("charts/latency_vs_concurrency.svg", "Latency vs concurrency", lat)
  add("charts/tuning_deltas.svg", "Decode TPS change vs baseline", chart_tuning(ctx.tuning))
  add("charts/memory.svg", "Memory over time", chart_memory(an))
  local depth_prefill, depth_decode = require("bench.report.depth").charts(data)
  add("charts/depth_prefill.svg", "Prefill speed over context depth", depth_prefill)
  add("charts/depth_decode.svg", "Decode speed over context depth", depth_decode)
  for _, ch in ipairs(require("bench.report.capacity").charts(an.data.cells)) do add(ch.file, ch.title, ch.svg) end
  add("charts/power.svg", "Power over time", energy_report.chart(an))
  ctx.charts = charts
  ctx.findings = findings.recommendations(an, ctx)
  local md = markdown.render(an, ctx)
  local path = out .. "/report.md"
  must(results.write_atomic(path, md))
  must(results.write_atomic(out .. "/report.html", html.render(an, ctx)))
  must(results.write_atomic(out .. "/summary.csv", report.csv(an)))
  -- the analysis goes into summary.json beside the cells
  local summary = {}
  for k, v in pairs(data.summary) do summary[k] = v end
  summary.cells = data.cells
  summary.title = ctx.title
  summary.analysis = analysis_json(an, ctx)
  must(results.write_atomic(out .. "/summary.json", results.json_pretty(summary)))
  return path
end

-- report.finish(run, {phase=, notes=}) -> report path | nil, message: the
-- run's summary.json written (run:finish), then report.md, summary.csv and
-- charts. The results store knows nothing of reports: this is where a run
-- and its report meet.
function report.finish(run, opts)
  local ok, err = run:finish(opts)
  if not ok then return nil, err end
  local rok, path = pcall(report.render, run.dir, {phase = run.summary.phase})
  if rok then return path end
  return nil, results.kept_message(run, path)
end

-- ------------------------------------------------------------ CLI
local report_help = [[
usage: benchrun report DIR... [--out DIR] [--phase PHASE] [--title TEXT]

Re-renders report.md, summary.csv, summary.json's analysis and charts/*.svg
from the raw results in DIR. With several folders, writes one combined
analysis (phase 6: every run's cells side by side, with the recommendations
the data supports) into --out (default results/analysis-<UTC time>/).
]]

local compare_help = [[
usage: benchrun compare DIR_A DIR_B [--out FILE] [--json]

Compares two runs configuration by configuration: A's and B's figures, the
change in %, and whether each change exceeds run-to-run noise
(|Δ| > max(2·sqrt(sA²/nA + sB²/nB), 1% of A) over per-repeat values;
per-request values when a side has a single repeat, marked *). Markdown on stdout (or --out FILE);
--json prints the comparison as JSON.

benchrun compare [RUN] --baseline last|ID compares a run with one of the run
history instead (benchrun compare --baseline last --help).
]]

-- usage(cmd, msg): the command is given, not read back out of the message
local function usage(cmd, msg)
  io.stderr:write("benchrun: " .. msg .. "\n(try 'benchrun " .. cmd .. " --help')\n")
  return 2
end

-- report.main(...) -> exit code (benchrun report DIR...)
function report.main(...)
  local args = {...}
  local dirs, out, phase, title = {}, nil, nil, nil
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "--help" or a == "-h" then io.stdout:write(report_help) return 0
    elseif a == "--out" or a == "--phase" or a == "--title" then
      local v = args[i + 1]
      if not v then return usage("report", "report: " .. a .. " needs a value") end
      if a == "--out" then out = v elseif a == "--phase" then phase = v else title = v end
      i = i + 1
    elseif a:sub(1, 2) == "--" then return usage("report", "report: unknown option '" .. a .. "'")
    else dirs[#dirs + 1] = a end
    i = i + 1
  end
  if #dirs == 0 then return usage("report", "report: missing DIR (a results folder)") end
  local datas = {}
  for _, d in ipairs(dirs) do
    local data, err = results.load(d)
    if not data then io.stderr:write("benchrun: report: " .. err .. "\n") return 1 end
    datas[#datas + 1] = data
  end
  local data = merge(datas)
  if #datas > 1 then
    out = out or ("results/analysis-" .. require("bench.util").utc_stamp())
    local ok, err = results.mkdir(out)
    if not ok then io.stderr:write("benchrun: report: " .. err .. "\n") return 1 end
    data.dir = out
    title = title or ("benchrun analysis: " .. #datas .. " runs")
    -- the merged records and the first run's environment go with the
    -- analysis, so `benchrun report OUT` re-renders it on its own
    local lines = {}
    for _, r in ipairs(data.records) do lines[#lines + 1] = results.json_encode(r) end
    local wok, werr = results.write_atomic(out .. "/records.jsonl", #lines > 0 and table.concat(lines, "\n") .. "\n" or "")
    if wok then wok, werr = results.write_atomic(out .. "/env.json", results.json_pretty(data.env or {})) end
    if not wok then io.stderr:write("benchrun: report: " .. werr .. "\n") return 1 end
  end
  local ok, path = pcall(report.render, data, {out = out, phase = phase, title = title})
  if not ok then io.stderr:write("benchrun: report: " .. tostring(path) .. "\n") return 1 end
  io.stdout:write(path, "\n")
  return 0
end

-- report.compare_main(...) -> exit code (benchrun compare A B)
function report.compare_main(...)
  local args = {...}
  -- against a recorded run: the run history's command
  for _, a in ipairs(args) do
    if a == "--baseline" or a:match("^%-%-baseline=") then return require("bench.history.cli").compare(...) end
  end
  local dirs, out, as_json = {}, nil, false
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "--help" or a == "-h" then io.stdout:write(compare_help) return 0
    elseif a == "--json" then as_json = true
    elseif a == "--out" then
      out = args[i + 1]
      if not out then return usage("compare", "compare: --out needs a file") end
      i = i + 1
    elseif a:sub(1, 2) == "--" then return usage("compare", "compare: unknown option '" .. a .. "'")
    else dirs[#dirs + 1] = a end
    i = i + 1
  end
  if #dirs ~= 2 then return usage("compare", "compare: expected two results folders, got " .. #dirs) end
  local compare = require("bench.report.compare")
  local da, err = results.load(dirs[1])
  if not da then io.stderr:write("benchrun: compare: " .. err .. "\n") return 1 end
  local db, err2 = results.load(dirs[2])
  if not db then io.stderr:write("benchrun: compare: " .. err2 .. "\n") return 1 end
  local cmp = compare.compare(da, db)
  local text = as_json and results.json_pretty(compare.to_json(cmp)) or compare.markdown(cmp)
  if out then
    local ok, werr = results.write_atomic(out, text)
    if not ok then io.stderr:write("benchrun: compare: " .. werr .. "\n") return 1 end
    io.stdout:write(out, "\n")
  else
    io.stdout:write(text)
  end
  return 0
end

return report
