-- bench.report.markdown: report.md from an analysis (bench.report.analysis).
-- Every figure printed here is a field of the analysis; sections whose data
-- the run did not produce are left out rather than filled with guesses.
local A = require("bench.report.analysis")
local Q = require("bench.report.quality")
local summary = require("bench.summary")
local units = require("bench.units")

local MD = {}

-- ------------------------------------------------------------ formatting
local function cellv(s) return (tostring(s):gsub("|", "\\|"):gsub("\n", " ")) end

function MD.table(headers, rows, align)
  local out = {}
  out[#out + 1] = "| " .. table.concat(headers, " | ") .. " |"
  local sep = {}
  for i = 1, #headers do
    local a = align and align[i] or (i == 1 and "l" or "r")
    sep[i] = a == "l" and "---" or "---:"
  end
  out[#out + 1] = "|" .. table.concat(sep, "|") .. "|"
  for _, r in ipairs(rows) do
    local cells = {}
    for i = 1, #headers do cells[i] = cellv(r[i] == nil and "" or r[i]) end
    out[#out + 1] = "| " .. table.concat(cells, " | ") .. " |"
  end
  return table.concat(out, "\n")
end

local function dash(x, f) if x == nil then return "–" end return f(x) end
local function ms(x) return dash(x, function(v) return v >= 100 and string.format("%.0f", v) or string.format("%.1f", v) end) end
local function tps(x) return dash(x, function(v) return string.format("%.1f", v) end) end
local function gb(x)
  return dash(x, function(v)
    local g = v / 1e9
    if g ~= 0 and math.abs(g) < 1 then return string.format("%.3g", g) end
    return string.format("%.1f", g)
  end)
end
-- A size with a unit that suits it: 5.8 KB, 51.2 MB, 135 GB (powers of 10, as the tables' GB).
local function size(x)
  return dash(x, function(v) return units.format_size(v, {significant = true}) end)
end
local function secs(x) return dash(x, function(v) return v >= 100 and string.format("%.0f", v) or string.format("%.1f", v) end) end
local function pct(x) return dash(x, function(v) return string.format("%+.1f%%", v) end) end
local function ratio(x) return dash(x, function(v) return string.format("%.2f×", v) end) end
local function num2(x) return dash(x, function(v) return string.format("%.2f", v) end) end
MD.fmt = {ms = ms, tps = tps, gb = gb, secs = secs, pct = pct, ratio = ratio, size = size}

-- A server's peak memory is its host memory plus its GPU memory. Where the
-- driver had no per-process figures the GPU part is the devices' whole used
-- memory (other processes' too): such a peak is marked †, and gpu_note says so.
local function device_gpu(m) return m.gpu_source == "nvml-device" or m.gpu_source == "iokit-device" end
local function peak_gb(m) return gb(m.peak_bytes) .. (m.peak_bytes and device_gpu(m) and " †" or "") end
local function gpu_note(an)
  local any, dev = false, false
  for _, c in ipairs(an.configs) do
    if c.metrics.gpu_source then any = true end
    if device_gpu(c.metrics) then dev = true end
  end
  if not any then return nil end
  return "Peak memory includes the server's GPU memory (NVML's per-process used memory of the server's processes)"
    .. (dev and "; † there the GPU part is the devices' whole used memory, other processes' included: "
      .. "the driver gave no per-process figures (the cell files' gpu_memory_note says why)" or "") .. "."
end

local STATUS_TEXT = {ok = "ok", degraded = "**degraded**", oom = "**OOM**", crashed = "**crashed**", failed = "**failed**",
                     aborted = "**aborted**",
                     skipped = "skipped"}

local function label_cols(an)
  local cols = {}
  for _, k in ipairs(an.shown) do cols[#cols + 1] = k end
  if #cols == 0 then cols[1] = "variant" end
  return cols
end

local LABEL_HEAD = {model = "Model", variant = "Variant", quant = "Quant", format = "Format",
                    backend = "Backend", config = "Config", env = "Env", sysctl = "Sysctl",
                    scenario = "Scenario", concurrency = "Conc.", max_tokens = "Max tokens"}

local function label_values(c, cols)
  local out = {}
  for i, k in ipairs(cols) do
    local v = c.labels[k]
    if k == "variant" and v == nil then v = c.name end
    out[i] = A.label_text(v)
  end
  return out
end

local function heads(cols, extra)
  local h = {}
  for i, k in ipairs(cols) do h[i] = LABEL_HEAD[k] or k end
  for _, e in ipairs(extra) do h[#h + 1] = e end
  return h
end

local function host_ram(h)
  if type(h) ~= "table" then return nil end
  local ram = h.ram_bytes or h.ram or h.memory_bytes or h.mem_total or h.total_memory
  return tonumber(ram)
end
MD.host_ram = host_ram

local function host_line(env)
  local h = env.host or env.sys or {}
  if type(h) ~= "table" then return nil end
  local parts = {}
  local function add(v) if type(v) == "string" and v ~= "" then parts[#parts + 1] = v end end
  add(h.model or h.hostname)
  if type(h.os) == "string" then add(h.os .. (type(h.os_version) == "string" and (" " .. h.os_version) or "")) end
  local cpu = h.cpu
  if type(cpu) == "table" then
    add(cpu.model and (cpu.model .. (cpu.cores and string.format(" (%d cores)", cpu.cores) or "")) or nil)
  else
    add(cpu or h.cpu_model)
  end
  local ram = host_ram(h)
  if ram then add(string.format("%.0f GB RAM", ram / 1e9)) end
  local gpus = h.gpus or h.gpu
  if type(gpus) == "table" then
    for _, g in ipairs(gpus) do add(type(g) == "table" and (g.name or g.model) or g) end
  else
    add(gpus)
  end
  if #parts == 0 then return nil end
  return table.concat(parts, ", ")
end

-- ------------------------------------------------------------ sections
local function section_header(out, an, opts)
  local s = an.data.summary or {}
  local env = an.data.env or {}
  out[#out + 1] = "# " .. (opts.title or ("benchrun report: " .. tostring(s.name or an.data.dir)))
    .. (an.dry_run and " (dry run: simulated figures)" or "")
  out[#out + 1] = ""
  local facts = {}
  if s.phase then facts[#facts + 1] = "- Phase: " .. s.phase end
  if s.started then facts[#facts + 1] = "- Run: " .. s.started .. (s.finished and (" → " .. s.finished) or " (not finished)") end
  local host = host_line(env)
  if host then facts[#facts + 1] = "- Host: " .. host end
  local br = s.benchrun or env.benchrun
  if type(br) == "table" and br.version then
    facts[#facts + 1] = "- benchrun " .. tostring(br.version) .. (br.git and (" (" .. tostring(br.git) .. ")") or "")
  end
  -- server versions as the cells recorded them
  local versions, seen = {}, {}
  for _, cell in ipairs(an.data.cells or {}) do
    local srv = cell.server
    local backend = cell.labels and cell.labels.backend
    if type(srv) == "table" and type(srv.version) == "string" then
      local t = (backend and (tostring(backend) .. ": ") or "") .. srv.version
      if not seen[t] then seen[t] = true versions[#versions + 1] = t end
    end
  end
  table.sort(versions)
  if #versions > 0 then facts[#facts + 1] = "- Servers: " .. table.concat(versions, "; ") end
  local notes = s.notes or {}
  if an.dry_run or env.dry_run == true then
    local scale = an.memory_scale
    facts[#facts + 1] = "- **Dry run — a rehearsal, not a measurement.** Every server was replaced by `benchrun sim`: "
      .. "speeds, latencies, load times, OOM kills and sysctl settings are simulated, not the real servers'. "
      .. (scale and string.format("The simulator touches each model's size × %g; memory figures here are its measured memory "
        .. "÷ %g (what it stands for, including the simulator's own few MB scaled up alike).", scale, scale)
        or "Memory figures are the simulator's.")
  end
  local st = an.statuses
  facts[#facts + 1] = string.format("- Cells: %d ok, %s%d OOM, %d failed, %d skipped",
    st.ok or 0, (st.degraded or 0) > 0 and string.format("%d degraded, ", st.degraded) or "",
    st.oom or 0, st.failed or 0, st.skipped or 0)
    .. ((st.crashed or 0) > 0 and string.format(", %d crashed", st.crashed) or "")
    .. ((st.aborted or 0) > 0 and string.format(", %d aborted (memory ceiling)", st.aborted) or "")
  if s.total_cells and not s.finished then
    facts[#facts + 1] = string.format("- Planned cells: %d", s.total_cells)
  end
  -- the runner's sysctl log: a value left changed, or a change that failed,
  -- is said at the top, whatever the phase script writes
  local unrestored, unset = {}, {}
  for _, e in ipairs(type(notes.sysctl) == "table" and notes.sysctl or {}) do
    if type(e) == "table" and e.ok == false then
      local t = string.format("`%s` (%s)", tostring(e.name), tostring(e.error or "failed"))
      if e.restore then unrestored[#unrestored + 1] = t else unset[#unset + 1] = t end
    end
  end
  if #unrestored > 0 then
    facts[#facts + 1] = "- **WARNING: sysctl values NOT restored** after this run: " .. table.concat(unrestored, "; ")
      .. ". The machine still runs with the changed values; bench.sys keeps their originals in its journal "
      .. "(the next benchrun retries; `sys.restore_all()` does it now)."
  end
  if #unset > 0 then
    facts[#facts + 1] = "- sysctl changes that failed (not applied; their cells failed): " .. table.concat(unset, "; ")
  end
  for _, f in ipairs(facts) do out[#out + 1] = f end
  out[#out + 1] = ""
end

-- The first columns of a per-configuration table: the cell id when every
-- configuration is one cell (the name progress and summary.csv use), then
-- the labels that vary.
local function name_cols(an, c, cols)
  local r = label_values(c, cols)
  if an.names_are_ids then table.insert(r, 1, c.name) end
  return r
end
local function name_heads(an, cols, extra)
  local h = heads(cols, extra)
  if an.names_are_ids then table.insert(h, 1, "Cell") end
  return h
end

local function section_variants(out, an)
  local cols = label_cols(an)
  local rows = {}
  local file_gb, has_gpu = false, false
  for _, c in ipairs(an.configs) do
    if c.metrics.tps_per_file_gb then file_gb = true end
    if c.metrics.gpu_source then has_gpu = true end
  end
  for _, c in ipairs(an.configs) do
    local m = c.metrics
    local r = name_cols(an, c, cols)
    local vals = {secs(m.load_s), ms(m.ttft_p50), ms(m.ttft_p95), tps(m.decode_tps), tps(m.output_tps),
                  peak_gb(m)}
    if has_gpu then vals[#vals + 1] = gb(m.gpu_peak_bytes) end
    vals[#vals + 1] = num2(m.tps_per_gb)
    if file_gb then vals[#vals + 1] = num2(m.tps_per_file_gb) end
    vals[#vals + 1] = string.format("%d/%d", math.floor(m.ok or 0), math.floor(m.requests or 0))
    vals[#vals + 1] = (STATUS_TEXT[c.status] or c.status) .. (c.error and (": " .. tostring(c.error):sub(1, 60)) or "")
    for _, v in ipairs(vals) do r[#r + 1] = v end
    rows[#rows + 1] = r
  end
  out[#out + 1] = "## Results by configuration"
  out[#out + 1] = ""
  local extra = {"Load (s)", "TTFT p50 (ms)", "TTFT p95 (ms)", "TPS (decode)", "TPS (output, aggregate)",
    "Peak mem (GB)"}
  if has_gpu then extra[#extra + 1] = "of which GPU (GB)" end
  extra[#extra + 1] = "TPS/GB"
  if file_gb then extra[#extra + 1] = "TPS/GB (file)" end
  extra[#extra + 1] = "OK/requests"
  extra[#extra + 1] = "Status"
  local h = name_heads(an, cols, extra)
  local nlab = #h - #extra
  local align = {}
  for i = 1, #h do align[i] = i <= nlab and "l" or "r" end
  align[#h] = "l"
  out[#out + 1] = MD.table(h, rows, align)
  out[#out + 1] = ""
  out[#out + 1] = "TPS (decode) is the mean per-request decode rate, (output tokens − 1) / (e2e − TTFT); "
    .. "TPS (output) is all output tokens over the cell's wall time. Peak memory is the server's process tree: "
    .. "host memory (RSS/footprint) plus GPU memory, the peak of their sum, in GB of 10⁹ bytes; TPS/GB = decode TPS / peak GB"
    .. (file_gb and "; TPS/GB (file) = decode TPS / the model file's size in GB" or "") .. "."
    .. (an.memory_scale and " Dry run: peak memory is the simulator's ÷ memory_scale (simulated)." or "")
    .. (gpu_note(an) and (" " .. gpu_note(an)) or "")
  out[#out + 1] = ""
end

-- Every cell whose requests failed or whose answers carry a flag: the error
-- kinds with their counts and the first error's words, so a figure is never
-- read without knowing what stands behind it.
local FLAG_TEXT = {burst = "whole answer at once (no decode rate)", token_mismatch = "server token count contradicted",
                   invalid_utf8 = "invalid UTF-8 replaced", prompt_truncated = "prompt cut by the server"}
local function section_errors(out, an)
  local first = {}
  for _, r in ipairs(an.data.records or {}) do
    if r.cell and not r.warmup and r.ok == false and not first[r.cell] then
      first[r.cell] = tostring(r.error or "error") .. (r.error_detail and (": " .. tostring(r.error_detail)) or "")
    end
  end
  local rows = {}
  for _, cell in ipairs(an.data.cells or {}) do
    local s = type(cell.summary) == "table" and cell.summary or {}
    local errs = type(s.errors) == "table" and s.errors or {}
    local flags = {}
    for _, f in ipairs(summary.RECORD_FLAGS) do
      local n = type(s.flags) == "table" and s.flags[f]
      if n and n > 0 then flags[#flags + 1] = string.format("%s ×%d", FLAG_TEXT[f] or f, n) end
    end
    -- the time between a request's call and the wire is the client's own:
    -- past 1 ms at p99 the client, not the server, held requests back
    local delay = type(s.client_send_delay_ms) == "table" and s.client_send_delay_ms.p99
    if type(delay) == "number" and delay > summary.CLIENT_DELAY_WARN_MS then
      flags[#flags + 1] = string.format("the client, not the server, delayed requests (send delay p99 %.1f ms)", delay)
    end
    if (errs.total or 0) > 0 or #flags > 0 or (cell.status ~= "ok" and cell.status ~= "skipped") then
      local st = A.cell_status(cell)
      rows[#rows + 1] = {tostring(cell.id), STATUS_TEXT[st] or st,
                         string.format("%d/%d", errs.total or 0, s.requests or 0),
                         summary.kinds_text(errs.by_kind) ~= "" and summary.kinds_text(errs.by_kind) or "-",
                         tostring(first[cell.id] or cell.error or "-"):sub(1, 120),
                         #flags > 0 and table.concat(flags, ", ") or "-"}
    end
  end
  if #rows == 0 then return end
  out[#out + 1] = "## Errors and warnings"
  out[#out + 1] = ""
  out[#out + 1] = "Failed measured requests per cell, by kind (docs/openai.md lists the kinds), and answers whose figures " ..
                  "were set aside."
  out[#out + 1] = ""
  out[#out + 1] = MD.table({"Cell", "Status", "Failed", "Error kinds", "First error", "Flags"}, rows,
                           {"l", "l", "r", "l", "l", "l"})
  out[#out + 1] = ""
end

local function section_latency(out, an)
  local cols = label_cols(an)
  local rows = {}
  for _, c in ipairs(an.configs) do
    local m = c.metrics
    if m.ttft_p50 or m.e2el_p50 then
      local r = name_cols(an, c, cols)
      for _, v in ipairs({ms(m.ttft_p50), ms(m.ttft_p90), ms(m.ttft_p95), ms(m.ttft_p99),
                          ms(m.tpot_p50), ms(m.tpot_p95), ms(m.itl_p50), ms(m.itl_p99),
                          ms(m.e2el_p50), ms(m.e2el_p95), ms(m.e2el_p99)}) do r[#r + 1] = v end
      rows[#rows + 1] = r
    end
  end
  if #rows == 0 then return end
  out[#out + 1] = "## Latency percentiles (ms)"
  out[#out + 1] = ""
  local align = {}
  for i = 1, #cols do align[i] = "l" end
  if an.names_are_ids then table.insert(align, 1, "l") end
  out[#out + 1] = MD.table(name_heads(an, cols, {"TTFT p50", "TTFT p90", "TTFT p95", "TTFT p99", "TPOT p50", "TPOT p95",
    "ITL p50", "ITL p99", "E2E p50", "E2E p95", "E2E p99"}), rows, align)
  out[#out + 1] = ""
end

local function section_scaling(out, an, groups)
  if #groups == 0 then return end
  out[#out + 1] = "## Throughput scaling with concurrency"
  out[#out + 1] = ""
  for _, g in ipairs(groups) do
    if #groups > 1 then out[#out + 1] = "### " .. g.name out[#out + 1] = "" end
    local rows = {}
    local has_queue = false
    for _, r in ipairs(g.rows) do if r.config.metrics.queue_p50 then has_queue = true end end
    for _, r in ipairs(g.rows) do
      local m = r.config.metrics
      local row = {tostring(r.conc), tps(r.agg_tps), tps(r.per_req_tps), ratio(r.scaling),
        ms(m.e2el_p50), ms(m.e2el_p95), ms(m.e2el_p99), ms(m.ttft_p95)}
      if has_queue then row[#row + 1] = ms(m.queue_p50) end
      row[#row + 1] = peak_gb(m)
      row[#row + 1] = STATUS_TEXT[r.config.status] or r.config.status
      rows[#rows + 1] = row
    end
    local head = {"Concurrency", "Aggregate TPS", "Per-request TPS", "Scaling vs c=" .. g.base_conc,
      "E2E p50 (ms)", "E2E p95 (ms)", "E2E p99 (ms)", "TTFT p95 (ms)"}
    if has_queue then head[#head + 1] = "Queue p50 (ms)" end
    head[#head + 1] = "Peak mem (GB)"
    head[#head + 1] = "Status"
    local align = {}
    for i = 1, #head do align[i] = "r" end
    align[#head] = "l"
    out[#out + 1] = MD.table(head, rows, align)
    out[#out + 1] = ""
    if g.mem_per_request then
      out[#out + 1] = string.format("Memory per additional concurrent request (least-squares slope of peak memory): %s.",
        size(g.mem_per_request))
      out[#out + 1] = ""
    end
  end
  if gpu_note(an) then
    out[#out + 1] = gpu_note(an)
    out[#out + 1] = ""
  end
end

local function section_fairness(out, an)
  local rows = {}
  local any_mixed = false
  for _, c in ipairs(an.configs) do
    if c.labels.scenario == "mixed" or c.labels.mix then any_mixed = true end
  end
  for _, c in ipairs(an.configs) do
    local m = c.metrics
    local mixed = c.labels.scenario == "mixed" or c.labels.mix
    if mixed or (not any_mixed and m.jain and (tonumber(c.labels.concurrency) or 1) > 1) then
      rows[#rows + 1] = {c.name, tostring(c.labels.concurrency or ""), num2(m.jain), num2(m.p99_p50),
        ms(m.ttft_p50), ms(m.ttft_p99), ms(m.e2el_p50), ms(m.e2el_p99), tps(m.output_tps)}
    end
  end
  if #rows == 0 then return end
  out[#out + 1] = "## Fairness under mixed load"
  out[#out + 1] = ""
  out[#out + 1] = MD.table({"Configuration", "Conc.", "Jain index", "p99/p50", "TTFT p50", "TTFT p99",
    "E2E p50", "E2E p99", "Aggregate TPS"}, rows)
  out[#out + 1] = ""
  out[#out + 1] = "Jain's index of per-request decode rates (1 = every request served at the same rate); "
    .. "p99/p50 of latency (1 = no tail)."
  out[#out + 1] = ""
end

local function section_pairs(out, an, pairs_)
  if #pairs_ == 0 then return end
  out[#out + 1] = "## MLX vs llama.cpp (GGUF) at the same bit width"
  out[#out + 1] = ""
  for _, p in ipairs(pairs_) do
    out[#out + 1] = string.format("### %d-bit: %s vs %s", p.bits, p.mlx.name, p.gguf.name)
    out[#out + 1] = ""
    local mm, gm = p.mlx.metrics, p.gguf.metrics
    local function row(name, k, f, higher_better)
      local a, b = mm[k], gm[k]
      local d = (a and b and a ~= 0) and (b - a) / a * 100 or nil
      local better = ""
      if a and b and a ~= b then
        local gguf_wins = (b > a) == higher_better
        better = gguf_wins and "GGUF" or "MLX"
      end
      return {name, f(a), f(b), pct(d), better}
    end
    local rows = {
      row("Load time (s)", "load_s", secs, false),
      row("TTFT p50 (ms)", "ttft_p50", ms, false),
      row("Decode TPS", "decode_tps", tps, true),
      row("Peak memory (GB)", "peak_bytes", gb, false),
      row("TPS/GB", "tps_per_gb", num2, true),
      row("Model size (GB)", "model_bytes", gb, false),
    }
    local n = A.noise(p.mlx.repeat_values, p.gguf.repeat_values, "decode_tps")
    out[#out + 1] = MD.table({"Metric", "MLX", "GGUF", "GGUF vs MLX", "Better"}, rows)
    out[#out + 1] = ""
    if n.verdict ~= "n/a" then
      out[#out + 1] = string.format("Decode TPS difference %s run-to-run noise (%s: |Δ| %.2f vs threshold %.2f).",
        n.verdict == "yes" and "exceeds" or "is within", n.basis, math.abs(n.diff), n.threshold)
      out[#out + 1] = ""
    end
    p.noise = n
  end
end

local function expected_prompts(an)
  local notes = an.data.summary.notes or {}
  if tonumber(notes.expected_prompts) then return tonumber(notes.expected_prompts) end
  local names = {}
  for _, c in ipairs(an.configs) do
    for k in pairs(Q.outputs_of(c)) do names[k] = true end
    for _, r in ipairs(c.records) do if A.rec_prompt(r) then names[A.rec_prompt(r)] = true end end
  end
  local n = 0
  for _ in pairs(names) do n = n + 1 end
  return n
end

local function memory_limit(an)
  local notes = an.data.summary.notes or {}
  if tonumber(notes.memory_limit_bytes) then
    -- a dry run's phase script scales the limit like the models; the peaks
    -- here are scaled back, so the limit is too
    local lim = tonumber(notes.memory_limit_bytes)
    if an.memory_scale and notes.dry_run then return lim / an.memory_scale, "plan limit, simulated" end
    return lim, "plan limit"
  end
  local ram = host_ram((an.data.env or {}).host)
  if ram then return ram, "host RAM" end
  return nil
end

local function prompts_completed(c)
  local done, failed = {}, {}
  for _, r in ipairs(c.records) do
    local p = A.rec_prompt(r)
    if p then
      if r.ok == false or r.error ~= nil then failed[p] = true else done[p] = true end
    end
  end
  local n = 0
  for k in pairs(done) do if not failed[k] then n = n + 1 end end
  if n == 0 then for _ in pairs(Q.outputs_of(c)) do n = n + 1 end end
  return n
end

-- Phase 3's success criteria, one row per configuration at single concurrency.
local function section_criteria(out, an, pairs_)
  local expect = expected_prompts(an)
  local limit, limit_src = memory_limit(an)
  local rows = {}
  local verdicts = {}
  local any_expect = false
  for _, c in ipairs(an.configs) do
    if (tonumber(c.labels.concurrency) or 1) == 1 then
      local done = prompts_completed(c)
      local all = expect > 0 and done >= expect and c.status == "ok"
      local within = nil
      if limit and c.metrics.peak_bytes then within = c.metrics.peak_bytes <= limit end
      local no_oom = c.status ~= "oom"
      -- what the plan expects of this configuration (labels.expect, e.g.
      -- "oom": BF16 does not fit) turns that outcome into a pass
      local expected = c.labels.expect ~= nil and tostring(c.labels.expect):lower() or nil
      local as_expected = expected ~= nil and (expected == c.status or (expected == "ok" and c.status == "ok"))
      if expected then any_expect = true end
      local better = nil
      -- GGUF against the MLX configuration of the same bit width
      local mlx_peer
      for _, p in ipairs(pairs_) do if p.gguf == c then mlx_peer = p.mlx end end
      if not mlx_peer and c.format == "gguf" and c.bits then
        for _, o in ipairs(an.configs) do
          if o.format == "mlx" and o.bits == c.bits and (tonumber(o.labels.concurrency) or 1) == 1 and o.status == "ok" then
            mlx_peer = o
            break
          end
        end
      end
      if mlx_peer and c.status == "ok" then
        do
          local mm, gm = mlx_peer.metrics, c.metrics
          better = (gm.decode_tps and mm.decode_tps and gm.decode_tps >= mm.decode_tps)
            or (gm.ttft_p50 and mm.ttft_p50 and gm.ttft_p50 <= mm.ttft_p50)
            or (gm.peak_bytes and mm.peak_bytes and gm.peak_bytes <= mm.peak_bytes)
            or (gm.load_s and mm.load_s and gm.load_s <= mm.load_s) or false
        end
      end
      local function yn(v) if v == nil then return "–" end return v and "✅" or "❌" end
      local prompts_txt = string.format("%s %d/%d", yn(all), done, expect)
      local oom_txt = yn(no_oom)
      local within_txt = yn(within)
      if as_expected and c.status ~= "ok" then
        prompts_txt = string.format("– %d/%d (expected %s)", done, expect, expected)
        oom_txt = no_oom and "–" or "✅ expected OOM"
        within_txt = "–"
      elseif expected and not as_expected then
        oom_txt = oom_txt .. string.format(" (expected %s, got %s)", expected, c.status)
      end
      local row = {c.name, prompts_txt, within_txt, oom_txt, yn(better)}
      if any_expect or expected then row[6] = expected and (as_expected and "✅ " .. expected or "❌ " .. expected) or "" end
      rows[#rows + 1] = row
      verdicts[#verdicts + 1] = {config = c, all = all, within = within, no_oom = no_oom, as_expected = as_expected}
    end
  end
  if #rows == 0 then return end
  -- "comparable or better than MLX" only where there is MLX to compare with
  local has_mlx = false
  for _, c in ipairs(an.configs) do if c.format == "mlx" then has_mlx = true end end
  if not has_mlx then
    for _, r in ipairs(rows) do table.remove(r, 5) end
  end
  out[#out + 1] = "## Success criteria (phase 3)"
  out[#out + 1] = ""
  local head = {an.names_are_ids and "Cell" or "Configuration", "All prompts complete",
    "Within memory limit" .. (limit and string.format(" (%s, %s)", size(limit), limit_src) or ""),
    "No OOM kill"}
  if has_mlx then head[#head + 1] = "Comparable or better than MLX in some metric" end
  if any_expect then head[#head + 1] = "As the plan expects" end
  out[#out + 1] = MD.table(head, rows, {"l", "l", "l", "l", "l", "l"})
  out[#out + 1] = ""
  return verdicts
end


-- The plan's own compare: pairs (phase 3's script writes them to the notes,
-- a and b by cell id): one delta table each, b against a.
local function section_plan_pairs(out, an)
  local notes = an.data.summary.notes or {}
  if type(notes.pairs) ~= "table" or #notes.pairs == 0 then return end
  local by_cell = {}
  for _, c in ipairs(an.configs) do for _, cell in ipairs(c.cells) do by_cell[tostring(cell.id)] = c end end
  local any = false
  for _, p in ipairs(notes.pairs) do
    local a, b = type(p) == "table" and by_cell[tostring(p.a)], type(p) == "table" and by_cell[tostring(p.b)]
    if a and b then
      if not any then
        out[#out + 1] = "## The plan's comparison pairs"
        out[#out + 1] = ""
        any = true
      end
      out[#out + 1] = string.format("### %s: %s vs %s", tostring(p.name or "?"), a.name, b.name)
      out[#out + 1] = ""
      if p.note then
        out[#out + 1] = tostring(p.note)
        out[#out + 1] = ""
      end
      local ma, mb = a.metrics, b.metrics
      local function row(name, k, f)
        local x, y = ma[k], mb[k]
        return {name, f(x), f(y), pct((x and y and x ~= 0) and (y - x) / x * 100 or nil)}
      end
      out[#out + 1] = MD.table({"Metric", a.name, b.name, "b vs a"}, {
        row("Load time (s)", "load_s", secs),
        row("TTFT p50 (ms)", "ttft_p50", ms),
        row("Decode TPS", "decode_tps", tps),
        row("Peak memory (GB)", "peak_bytes", gb),
        row("TPS/GB", "tps_per_gb", num2),
      })
      out[#out + 1] = ""
    end
  end
end

-- Phase 4's four questions, answered from the scaling groups where possible.
local function section_questions(out, an, groups)
  if #groups == 0 then return end
  local notes = an.data.summary.notes or {}
  -- the reference machine comes from the plan (phase4.yaml's expected:,
  -- through the phase script's notes); without one, no comparison
  local ref = type(notes.reference) == "table" and notes.reference or {}
  out[#out + 1] = "## Phase 4 questions"
  out[#out + 1] = ""
  for _, g in ipairs(groups) do
    local prefix = #groups > 1 and ("(" .. g.name .. ") ") or ""
    -- the highest level that produced a figure (the top one may have failed)
    local last = g.rows[#g.rows]
    for i = #g.rows, 1, -1 do if g.rows[i].scaling then last = g.rows[i] break end end
    -- 1: scaling compared with the reference machine
    if last.scaling and ref.scaling then
      out[#out + 1] = string.format("1. %sDoes this machine scale better than the reference? At %d concurrent requests aggregate "
        .. "throughput is %.2f× the c=%d figure (%.1f vs %.1f TPS); the reference, %s, is %.1f×: %s.",
        prefix, last.conc, last.scaling, g.base_conc, last.agg_tps or 0, g.rows[1].agg_tps or 0, ref.label, ref.scaling,
        last.scaling > ref.scaling and "yes, it scales better" or "no, it scales less")
    elseif last.scaling then
      out[#out + 1] = string.format("1. %sScaling: at %d concurrent requests aggregate throughput is %.2f× the c=%d figure "
        .. "(%.1f vs %.1f TPS).", prefix, last.conc, last.scaling, g.base_conc, last.agg_tps or 0, g.rows[1].agg_tps or 0)
    else
      out[#out + 1] = "1. " .. prefix .. "Scaling: not answerable (no aggregate throughput at the highest concurrency)."
    end
    -- 2: optimal concurrency
    local best
    for _, r in ipairs(g.rows) do if r.agg_tps and (not best or r.agg_tps > best.agg_tps) then best = r end end
    if best then
      local knee
      for _, r in ipairs(g.rows) do if r.agg_tps and r.agg_tps >= 0.9 * best.agg_tps then knee = r break end end
      local slo = tonumber(notes.slo_e2el_p95_ms)
      local slo_best
      if slo then
        for _, r in ipairs(g.rows) do
          if r.config.metrics.e2el_p95 and r.config.metrics.e2el_p95 <= slo and r.agg_tps
            and (not slo_best or r.agg_tps > slo_best.agg_tps) then slo_best = r end
        end
      end
      local knee_text = knee == best and string.format(" (E2E p95 %s ms); no lower level reaches 90%% of it",
          ms(best.config.metrics.e2el_p95))
        or string.format("; %d concurrent already reaches 90%% of it (%.1f TPS, E2E p95 %s ms)",
          knee.conc, knee.agg_tps, ms(knee.config.metrics.e2el_p95))
      out[#out + 1] = string.format("2. %sOptimal concurrency: the most throughput is at %d concurrent (%.1f TPS)%s%s.",
        prefix, best.conc, best.agg_tps, knee_text,
        slo and (slo_best and string.format("; within the E2E p95 SLO of %s ms the best is %d concurrent", ms(slo), slo_best.conc)
          or string.format("; no level meets the E2E p95 SLO of %s ms", ms(slo))) or "")
    end
    if not best then
      out[#out + 1] = "2. " .. prefix .. "Optimal concurrency: not answerable (no level produced a throughput figure)."
    end
    -- 3: batching for one user
    -- every single-request configuration of a backend (100, 500 and 2000
    -- tokens...): the mean of their decode rates, their values pooled for
    -- the noise rule
    local backends = {}
    -- servers by their name in the plan (two servers of one backend, e.g.
    -- llama-server with and without --parallel, are two), as phase 4's script
    for _, c in ipairs(an.configs) do
      local srv = c.labels.platform or c.labels.server or c.labels.backend
      if tonumber(c.labels.concurrency) == 1 and srv and c.metrics.decode_tps and c.status == "ok" then
        local b = tostring(srv)
        local e = backends[b]
        if not e then
          e = {tps = {}, rv = {decode_tps = {}, per_request = {decode_tps = {}}}}
          backends[b] = e
        end
        e.tps[#e.tps + 1] = c.metrics.decode_tps
        for _, v in ipairs(c.repeat_values.decode_tps or {}) do e.rv.decode_tps[#e.rv.decode_tps + 1] = v end
        local pr = c.repeat_values.per_request and c.repeat_values.per_request.decode_tps or {}
        for _, v in ipairs(pr) do e.rv.per_request.decode_tps[#e.rv.per_request.decode_tps + 1] = v end
      end
    end
    for _, e in pairs(backends) do e.mean = A.mean(e.tps) end
    local names = {}
    for b in pairs(backends) do names[#names + 1] = b end
    table.sort(names)
    if #names >= 2 then
      local parts = {}
      for _, b in ipairs(names) do
        local e = backends[b]
        parts[#parts + 1] = string.format("%s %.1f TPS%s", b, e.mean,
          #e.tps > 1 and string.format(" (mean of %d single-request cells)", #e.tps) or "")
      end
      local batching = notes.batching_backend or "vllm-mlx"
      local plain = notes.single_backend or "mlx-lm"
      local verdict = ""
      if backends[batching] and backends[plain] then
        local d = (backends[batching].mean - backends[plain].mean) / backends[plain].mean * 100
        local n = A.noise(backends[plain].rv, backends[batching].rv, "decode_tps")
        verdict = string.format(": %s is %+.1f%% vs %s for a single user%s", batching, d, plain,
          n.verdict == "no" and " (within run-to-run noise)" or "")
        verdict = verdict .. ((d > 0 and n.verdict ~= "no") and "; batching costs nothing for one user" or
          "; for one user the batching server brings no gain")
      end
      out[#out + 1] = string.format("3. %sIs batching worth it for a single user? At concurrency 1: %s%s.", prefix,
        table.concat(parts, ", "), verdict)
    else
      out[#out + 1] = "3. " .. prefix .. "Batching for a single user: not answerable from this run (single-request figures for "
        .. (names[1] or "no server") .. " only; run the non-batching server at concurrency 1 too)."
    end
    -- 4: memory per request
    if g.mem_per_request then
      out[#out + 1] = string.format("4. %sMemory per concurrent request: %s (slope of peak memory over concurrency %d–%d%s).",
        prefix, size(g.mem_per_request), g.rows[1].conc, last.conc, an.memory_scale and "; simulated" or "")
    else
      out[#out + 1] = "4. " .. prefix .. "Memory per concurrent request: not answerable (no peak memory per concurrency level)."
    end
  end
  out[#out + 1] = ""
end

-- A tuning group whose settings changed nothing beyond run-to-run noise:
-- one sentence instead of a ranking.
function MD.no_effect(g)
  local vars = g.no_effect_vars or {}
  return string.format("**No measurable effect** on %s: every configuration is within run-to-run noise of %s "
    .. "(decode TPS and TTFT), so they are not ranked; the engine may ignore %s.", g.name, g.base.name,
    #vars > 0 and ("these variables (" .. table.concat(vars, ", ") .. ")") or "these settings")
end

-- What each configuration's server logged about the variables it was
-- given (runner.env_in_log): the evidence that an engine read a setting,
-- or that its log never names it.
local function section_env_log(out, g)
  local lines = {}
  for _, r in ipairs(g.rows) do
    local server = type(r.config.cells) == "table" and r.config.cells[1] and r.config.cells[1].server
    if type(server) == "table" and (server.env_log or server.env_not_logged) then
      local names = {}
      for n in pairs(server.env_log or {}) do names[#names + 1] = n end
      table.sort(names)
      for _, n in ipairs(names) do
        for _, l in ipairs(server.env_log[n]) do
          lines[#lines + 1] = string.format("- %s, `%s`: `%s`", r.name, n, (tostring(l):gsub("`", "'")))
        end
      end
      if type(server.env_not_logged) == "table" and #server.env_not_logged > 0 then
        lines[#lines + 1] = string.format("- %s: the server's log never names %s", r.name,
          table.concat(server.env_not_logged, ", "))
      end
    end
  end
  if #lines == 0 then return end
  out[#out + 1] = "What the servers logged about the variables they were given:"
  out[#out + 1] = ""
  for _, l in ipairs(lines) do out[#out + 1] = l end
  out[#out + 1] = ""
end

local function section_tuning(out, an, groups)
  if #groups == 0 then return end
  out[#out + 1] = "## Tuning: change vs baseline"
  out[#out + 1] = ""
  for _, g in ipairs(groups) do
    out[#out + 1] = "### " .. g.name .. " (baseline: " .. g.base.name .. ")"
    out[#out + 1] = ""
    local rows = {}
    local function verdict(n)
      if not n then return "n/a" end
      return n.verdict == "yes" and "yes" or n.verdict == "no" and "no (noise)" or "n/a"
    end
    for _, r in ipairs(g.rows) do
      local m = r.config.metrics
      local row = {r.name .. (r.is_base and " (baseline)" or "")}
      if g.has_sysctl then
        row[#row + 1] = (r.sysctl or "") .. (r.sysctl_simulated and " (simulated)" or "")
      end
      -- a TTFT change within noise (or under 1 ms) is marked, like TPS's
      local dttft = r.is_base and "–" or pct(r.d_ttft)
      if not r.is_base and r.d_ttft and r.noise_ttft and r.noise_ttft.verdict == "no" then dttft = dttft .. " (noise)" end
      for _, v in ipairs({tps(m.decode_tps), r.is_base and "–" or pct(r.d_tps), r.is_base and "–" or verdict(r.noise),
        ms(m.ttft_p50), dttft, peak_gb(m), r.is_base and "–" or pct(r.d_peak),
        secs(m.load_s), STATUS_TEXT[r.config.status] or r.config.status}) do row[#row + 1] = v end
      rows[#rows + 1] = row
    end
    local head = {"Configuration"}
    if g.has_sysctl then head[#head + 1] = "Sysctl" end
    for _, h in ipairs({"TPS", "Δ TPS", "Beyond noise", "TTFT p50 (ms)", "Δ TTFT",
      "Peak mem (GB)", "Δ mem", "Load (s)", "Status"}) do head[#head + 1] = h end
    local align = {"l"}
    if g.has_sysctl then align[2] = "l" end
    out[#out + 1] = MD.table(head, rows, align)
    out[#out + 1] = ""
    if g.no_effect then
      out[#out + 1] = MD.no_effect(g)
      out[#out + 1] = ""
    end
    section_env_log(out, g)
    if g.sysctl_simulated then
      out[#out + 1] = "Dry run: the sysctl values were not set on this machine (simulated); only the simulator's memory limit followed them."
      out[#out + 1] = ""
    end
  end
  if gpu_note(an) then
    out[#out + 1] = gpu_note(an)
    out[#out + 1] = ""
  end
  -- stability: per-repeat spread and drift over repeats
  local rows = {}
  for _, g in ipairs(groups) do
    for _, r in ipairs(g.rows) do
      local c = r.config
      local vals = c.repeat_values.decode_tps
      local cv, drift
      if #vals >= 2 and A.mean(vals) > 0 then
        cv = A.stddev(vals) / A.mean(vals) * 100
        if vals[1] > 0 then drift = (vals[#vals] - vals[1]) / vals[1] * 100 end
      end
      local bad = 0
      for _, cell in ipairs(c.cells) do
        if cell.status == "oom" or cell.status == "crashed" or cell.status == "failed" then bad = bad + 1 end
      end
      -- (an abort at the memory ceiling is a failed cell with cell.aborted)
      rows[#rows + 1] = {g.name .. " · " .. r.name, tostring(#vals), cv and string.format("%.1f%%", cv) or "–",
        pct(drift), string.format("%d/%d", #c.cells - bad, #c.cells)}
    end
  end
  out[#out + 1] = "### Stability over repeats"
  out[#out + 1] = ""
  out[#out + 1] = MD.table({"Configuration", "Repeats", "TPS CV", "Last vs first repeat", "Cells without crash/OOM"}, rows)
  out[#out + 1] = ""
end

local function excerpt(s, n)
  s = tostring(s)
  if #s <= n then return s end
  local cut = s:sub(1, n)
  -- do not cut a UTF-8 sequence in half
  while #cut > 0 and cut:byte(#cut) >= 0x80 and cut:byte(#cut) < 0xC0 do cut = cut:sub(1, -2) end
  if #cut > 0 and cut:byte(#cut) >= 0xC0 then cut = cut:sub(1, -2) end
  return cut .. " …"
end

local function section_quality(out, an, qc)
  if not qc then return end
  out[#out + 1] = "## Output quality"
  out[#out + 1] = ""
  out[#out + 1] = "Reference: **" .. qc.reference.name .. "** (highest precision that ran). Similarity = "
    .. "normalized LCS of tokens, 2·LCS/(|a|+|b|); Jaccard = shared distinct tokens / all distinct tokens."
  out[#out + 1] = ""
  for _, p in ipairs(qc.prompts) do
    out[#out + 1] = "### " .. p.name
    out[#out + 1] = ""
    local rows = {}
    local any_check = false
    for _, r in ipairs(p.rows) do if r.check then any_check = true end end
    for _, r in ipairs(p.rows) do
      local chk = ""
      if r.check then chk = (r.check.ok and "✅" or "❌") .. (r.check.detail and (" " .. r.check.detail) or "") end
      rows[#rows + 1] = {r.config.name .. (r.is_ref and " (reference)" or ""),
        r.sim and string.format("%.3f", r.sim.lcs) or "–", r.sim and string.format("%.3f", r.sim.jaccard) or "–",
        r.tokens and string.format("%d", r.tokens) or "–", any_check and chk or nil}
    end
    -- the answer's tokens as the server counted them, not the similarity's words
    local head = {"Configuration", "Similarity", "Jaccard", "Output tokens"}
    if any_check then head[5] = "Check" end
    out[#out + 1] = MD.table(head, rows, {"l", "r", "r", "r", "l"})
    out[#out + 1] = ""
    for _, r in ipairs(p.rows) do
      out[#out + 1] = "<details><summary>" .. r.config.name:gsub("[<>&]", "") .. "</summary>"
      out[#out + 1] = ""
      out[#out + 1] = "```text"
      out[#out + 1] = (excerpt(r.text, 1500):gsub("```", "``\\`"))
      out[#out + 1] = "```"
      out[#out + 1] = ""
      out[#out + 1] = "</details>"
      out[#out + 1] = ""
    end
  end
end

-- The MLX-vs-GGUF sections belong to phase 3 and to analyses; a tuning or
-- batching run that happens to hold both formats does not compare them.
function MD.shows_pairs(ctx)
  local phase = ctx.phase
  if phase == "compare" then return true end
  if phase == nil or phase == "analysis" then return #ctx.pairs > 0 end
  return false
end

-- Recommendations the data supports; each cites its numbers.
function MD.recommendations(an, ctx)
  local recs = {}
  local single = {}
  for _, c in ipairs(an.configs) do
    if (tonumber(c.labels.concurrency) or 1) == 1 and c.status == "ok" and c.metrics.decode_tps then single[#single + 1] = c end
  end
  if #single >= 2 then
    table.sort(single, function(a, b) return a.metrics.decode_tps > b.metrics.decode_tps end)
    local a, b = single[1], single[2]
    local n = A.noise(b.repeat_values, a.repeat_values, "decode_tps")
    recs[#recs + 1] = string.format("Fastest single-request decode: **%s** at %.1f TPS (next: %s at %.1f, %+.1f%%%s).",
      a.name, a.metrics.decode_tps, b.name, b.metrics.decode_tps,
      (a.metrics.decode_tps - b.metrics.decode_tps) / b.metrics.decode_tps * 100,
      n.verdict == "no" and ", within run-to-run noise" or "")
    local eff
    for _, c in ipairs(single) do if c.metrics.tps_per_gb and (not eff or c.metrics.tps_per_gb > eff.metrics.tps_per_gb) then eff = c end end
    if eff then
      recs[#recs + 1] = string.format("Most memory-efficient: **%s** at %s TPS/GB (peak %s%s).", eff.name,
        num2(eff.metrics.tps_per_gb), size(eff.metrics.peak_bytes), eff.metrics.memory_simulated and ", simulated" or "")
    end
    local lat
    for _, c in ipairs(single) do if c.metrics.ttft_p50 and (not lat or c.metrics.ttft_p50 < lat.metrics.ttft_p50) then lat = c end end
    if lat then
      -- the next lowest, and whether the lead is more than noise (1 ms at least)
      local nxt
      for _, c in ipairs(single) do
        if c ~= lat and c.metrics.ttft_p50 and (not nxt or c.metrics.ttft_p50 < nxt.metrics.ttft_p50) then nxt = c end
      end
      local tail = ""
      if nxt then
        local n = A.noise(nxt.repeat_values, lat.repeat_values, "ttft_p50")
        tail = string.format("; next: %s at %s ms%s", nxt.name, ms(nxt.metrics.ttft_p50),
          n.verdict == "no" and ", within run-to-run noise" or "")
      end
      recs[#recs + 1] = string.format("Lowest time to first token: **%s** (TTFT p50 %s ms%s).", lat.name,
        ms(lat.metrics.ttft_p50), tail)
    end
  end
  for _, p in ipairs(MD.shows_pairs(ctx) and ctx.pairs or {}) do
    local mm, gm = p.mlx.metrics, p.gguf.metrics
    if mm.decode_tps and gm.decode_tps then
      local n = p.noise or A.noise(p.mlx.repeat_values, p.gguf.repeat_values, "decode_tps")
      local winner = gm.decode_tps > mm.decode_tps and "llama.cpp (GGUF)" or "MLX"
      if n.verdict == "no" then
        recs[#recs + 1] = string.format("At %d-bit, MLX (%s) and GGUF (%s) decode at the same speed within noise (%.1f vs %.1f TPS): choose on memory or compatibility.",
          p.bits, p.mlx.name, p.gguf.name, mm.decode_tps, gm.decode_tps)
      else
        recs[#recs + 1] = string.format("At %d-bit, prefer **%s** for decode speed: %s %.1f TPS vs %s %.1f TPS (%+.1f%%).",
          p.bits, winner, p.gguf.name, gm.decode_tps, p.mlx.name, mm.decode_tps, (gm.decode_tps - mm.decode_tps) / mm.decode_tps * 100)
      end
    end
  end
  for _, g in ipairs(ctx.scaling or {}) do
    local best
    for _, r in ipairs(g.rows) do if r.agg_tps and (not best or r.agg_tps > best.agg_tps) then best = r end end
    if best and best.scaling then
      recs[#recs + 1] = string.format("For many users%s, run about **%d concurrent requests**: %.1f aggregate TPS (%.2f× single-request), E2E p95 %s ms.",
        #ctx.scaling > 1 and (" on " .. g.name) or "", best.conc, best.agg_tps, best.scaling, ms(best.config.metrics.e2el_p95))
    end
  end
  for _, g in ipairs(ctx.tuning or {}) do
    local best
    for _, r in ipairs(g.rows) do
      if not r.is_base and r.d_tps and r.noise and r.noise.verdict == "yes" and r.d_tps > 0 and r.config.status == "ok"
        and (not best or r.d_tps > best.d_tps) then best = r end
    end
    if g.no_effect then
      recs[#recs + 1] = MD.no_effect(g)
    elseif best then
      recs[#recs + 1] = string.format("On %s, **%s** improves decode TPS by %+.1f%% over %s (beyond run-to-run noise).",
        g.name, best.name, best.d_tps, g.base.name)
    else
      recs[#recs + 1] = string.format("On %s, no setting beat the baseline (%s) beyond run-to-run noise: keep the defaults.",
        g.name, g.base.name)
    end
    for _, r in ipairs(g.rows) do
      if not r.is_base and r.d_tps and r.d_tps < 0 and r.noise and r.noise.verdict == "yes" then
        recs[#recs + 1] = string.format("On %s, avoid **%s**: decode TPS %+.1f%% vs %s.", g.name, r.name, r.d_tps, g.base.name)
      end
    end
  end
  for _, c in ipairs(an.configs) do
    -- "oom" only with evidence of an OOM kill (proc.classify_exit); a
    -- server killed by any other signal "crashed" and says nothing of its fit
    if c.status == "oom" then
      local expected = c.labels.expect ~= nil and tostring(c.labels.expect):lower() == "oom"
      recs[#recs + 1] = string.format("**%s** does not fit: the server was OOM-killed%s%s.", c.name,
        c.metrics.peak_bytes and string.format(" at %s%s", size(c.metrics.peak_bytes),
          c.metrics.memory_simulated and " (simulated)" or "") or "",
        expected and ", as the plan expects" or "")
    elseif c.status == "crashed" then
      recs[#recs + 1] = string.format("**%s** crashed: %s.", c.name, tostring(c.error or "see its cell file"))
    elseif c.status == "aborted" then
      recs[#recs + 1] = string.format("**%s** was stopped at the plan's memory ceiling: %s.", c.name,
        tostring(c.error or "see its cell file"))
    elseif c.status == "failed" then
      recs[#recs + 1] = string.format("**%s** failed: %s.", c.name, tostring(c.error or "see its cell file"))
    elseif c.status == "degraded" then
      recs[#recs + 1] = string.format("**%s** is degraded: %s; its figures come from the requests that succeeded.",
        c.name, tostring(c.error or "some requests failed"))
    end
  end
  return recs
end

-- MD.render(an, ctx) -> markdown text. ctx: {charts = {{file, title}}, pairs,
-- scaling, tuning, quality, title, phase}
function MD.render(an, ctx)
  local out = {}
  section_header(out, an, ctx)
  local recs = MD.recommendations(an, ctx)
  if #recs > 0 then
    out[#out + 1] = ctx.phase == "analysis" and "## Framework recommendations" or "## Findings"
    out[#out + 1] = ""
    for _, r in ipairs(recs) do out[#out + 1] = "- " .. r end
    out[#out + 1] = ""
  end
  if #an.configs == 0 then
    out[#out + 1] = "No cell has finished yet."
    out[#out + 1] = ""
    return table.concat(out, "\n")
  end
  section_variants(out, an)
  section_errors(out, an)
  local phase = ctx.phase
  if MD.shows_pairs(ctx) then
    section_pairs(out, an, ctx.pairs)
    section_plan_pairs(out, an)
    section_criteria(out, an, ctx.pairs)
  end
  section_scaling(out, an, ctx.scaling)
  local answered = false
  if phase == "batching" or #ctx.scaling > 0 then
    section_questions(out, an, ctx.scaling)
    answered = #ctx.scaling > 0
  end
  section_fairness(out, an)
  section_tuning(out, an, ctx.tuning)
  section_latency(out, an)
  section_quality(out, an, ctx.quality)
  require("bench.report.logprobs").section(out, an, MD.table)   -- quality by logprobs
  require("bench.report.cache").section(out, an, MD.table)      -- prefix cache
  if #ctx.charts > 0 then
    out[#out + 1] = "## Charts"
    out[#out + 1] = ""
    for _, ch in ipairs(ctx.charts) do
      out[#out + 1] = string.format("![%s](%s)", ch.title, ch.file)
      out[#out + 1] = ""
    end
  end
  local notes = an.data.summary.notes
  -- what the phase script itself checked and answered (its finish hook)
  if type(notes) == "table" and type(notes.criteria) == "table" and #notes.criteria > 0 then
    out[#out + 1] = "## Phase script checks"
    out[#out + 1] = ""
    for _, c in ipairs(notes.criteria) do
      if type(c) == "table" then
        out[#out + 1] = string.format("- %s %s%s", c.pass and "✅" or "❌", tostring(c.name or "?"),
          c.detail and (": " .. tostring(c.detail)) or "")
      end
    end
    out[#out + 1] = ""
  end
  -- one set of answers: the report's own when it answered phase 4's questions
  if not answered and type(notes) == "table" and type(notes.answers) == "table" and #notes.answers > 0 then
    out[#out + 1] = "## Phase script answers"
    out[#out + 1] = ""
    for _, a in ipairs(notes.answers) do out[#out + 1] = "- " .. tostring(a) end
    out[#out + 1] = ""
  end
  if type(notes) == "table" and type(notes.text) == "string" then
    out[#out + 1] = "## Notes"
    out[#out + 1] = ""
    out[#out + 1] = notes.text
    out[#out + 1] = ""
  end
  out[#out + 1] = "_Generated by `benchrun report` from summary.json, records.jsonl and samples.jsonl in this folder._"
  out[#out + 1] = ""
  return table.concat(out, "\n")
end

return MD
