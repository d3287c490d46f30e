-- bench.report.markdown: report.md from an analysis (bench.report.analysis).
-- Every figure printed here is a field of the analysis; sections whose data
-- the run did not produce are left out rather than filled with guesses.
local analysis = require("bench.report.analysis")
local summary = require("bench.summary")

local markdown = {}

local format = require("bench.report.format")
local findings = require("bench.report.findings")
local toolcalls = require("bench.report.toolcalls")
local depth = require("bench.report.depth")
local logprobs = require("bench.report.logprobs")
local cache = require("bench.report.cache")
local slo = require("bench.report.slo")
local capacity = require("bench.report.capacity")
local steady = require("bench.report.steady")
local energy_report = require("bench.report.energy")
local tokenizer = require("bench.tokenizer")

-- the formats under their short names (bench.report.format)
local ms, tps, gb, secs, pct, ratio, num2, size = format.ms, format.tps, format.gb, format.secs, format.pct, format.ratio, format.num2, format.size
local peak_gb, gpu_note, host_ram, STATUS_TEXT = format.peak_gb, format.gpu_note, format.host_ram, format.STATUS_TEXT
markdown.table, markdown.fmt, markdown.host_ram = format.table, format.fmt, format.host_ram

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
    out[i] = analysis.label_text(v)
  end
  return out
end

local function heads(cols, extra)
  local h = {}
  for i, k in ipairs(cols) do h[i] = LABEL_HEAD[k] or k end
  for _, e in ipairs(extra) do h[#h + 1] = e end
  return h
end


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
  r[1] = energy_report.mark(c, r[1])   -- a cell that ran throttled says so in every table
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
  local energy_cols, energy_vals = energy_report.columns(an)
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
    if energy_cols then for _, v in ipairs(energy_vals(c)) do vals[#vals + 1] = v end end
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
  for _, h in ipairs(energy_cols or {}) do extra[#extra + 1] = h end
  extra[#extra + 1] = "OK/requests"
  extra[#extra + 1] = "Status"
  local h = name_heads(an, cols, extra)
  local nlab = #h - #extra
  local align = {}
  for i = 1, #h do align[i] = i <= nlab and "l" or "r" end
  align[#h] = "l"
  out[#out + 1] = format.table(h, rows, align)
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
                   invalid_utf8 = "invalid UTF-8 replaced", prompt_truncated = "prompt cut by the server",
                   reasoning_exhausted = "reasoning used up max_tokens", tool_args_invalid = "tool arguments not JSON",
                   tool_args_split_utf8 = "tool arguments split mid-UTF-8", schema_mismatch = "schema not matched"}
local function section_errors(out, an)
  local first = {}
  for _, r in ipairs(an.data.records or {}) do
    if r.cell and not r.warmup and r.ok == false and not first[r.cell] then
      first[r.cell] = tostring(r.error or "error") .. (r.error_detail and (": " .. tostring(r.error_detail)) or "")
    end
  end
  local rows, estimated = {}, {}
  for _, cell in ipairs(an.data.cells or {}) do
    local s = type(cell.summary) == "table" and cell.summary or {}
    local errs = type(s.errors) == "table" and s.errors or {}
    local flags = {}
    -- a synthetic workload on a server without a tokenizer endpoint: its
    -- prompt lengths (and the token counts built on them) are estimates
    if tokenizer.lengths_estimated(cell.prompt_lengths) then
      flags[#flags + 1] = "prompt token counts estimated (no tokenizer endpoint)"
      estimated[#estimated + 1] = string.format("- **%s**: %s.", tostring(cell.id), cell.prompt_lengths)
    end
    for _, f in ipairs(summary.RECORD_FLAGS) do
      local n = type(s.flags) == "table" and s.flags[f]
      if n and n > 0 then flags[#flags + 1] = string.format("%s ×%d", FLAG_TEXT[f] or f, n) end
    end
    -- the waits before the wire: the client's own (past 1 ms at p99 the
    -- client, not the server, held requests back) and the server's accept
    for _, w in ipairs(summary.delay_warnings(s)) do flags[#flags + 1] = w.text end
    if (errs.total or 0) > 0 or #flags > 0 or (cell.status ~= "ok" and cell.status ~= "skipped") then
      local st = analysis.cell_status(cell)
      rows[#rows + 1] = {energy_report.mark(cell, tostring(cell.id)), STATUS_TEXT[st] or st,
                         string.format("%d/%d", errs.total or 0, s.requests or 0),
                         summary.kinds_text(errs.by_kind) ~= "" and summary.kinds_text(errs.by_kind) or "-",
                         tostring(first[cell.id] or cell.error or "-"):sub(1, 120),
                         #flags > 0 and table.concat(flags, ", ") or "-"}
    end
  end
  if #rows == 0 then return end
  out[#out + 1] = "## Errors and warnings"
  out[#out + 1] = ""
  out[#out + 1] = "Failed measured requests per cell, by kind (docs/openai.md lists the kinds), answers whose figures " ..
                  "were set aside, and cells whose prompt token counts are estimates."
  out[#out + 1] = ""
  out[#out + 1] = format.table({"Cell", "Status", "Failed", "Error kinds", "First error", "Flags"}, rows,
                           {"l", "l", "r", "l", "l", "l"})
  out[#out + 1] = ""
  if #estimated > 0 then
    out[#out + 1] = "Prompt lengths (docs/tokenizer.md): the synthetic prompts were sized without the server's tokenizer, " ..
                    "so their input token targets are estimates."
    out[#out + 1] = ""
    for _, l in ipairs(estimated) do out[#out + 1] = l end
    out[#out + 1] = ""
  end
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
  out[#out + 1] = format.table(name_heads(an, cols, {"TTFT p50", "TTFT p90", "TTFT p95", "TTFT p99", "TPOT p50", "TPOT p95",
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
      row[#row + 1] = energy_report.mark(r.config, STATUS_TEXT[r.config.status] or r.config.status)
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
    out[#out + 1] = format.table(head, rows, align)
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
      rows[#rows + 1] = {energy_report.mark(c, c.name), tostring(c.labels.concurrency or ""), num2(m.jain), num2(m.p99_p50),
        ms(m.ttft_p50), ms(m.ttft_p99), ms(m.e2el_p50), ms(m.e2el_p99), tps(m.output_tps)}
    end
  end
  if #rows == 0 then return end
  out[#out + 1] = "## Fairness under mixed load"
  out[#out + 1] = ""
  out[#out + 1] = format.table({"Configuration", "Conc.", "Jain index", "p99/p50", "TTFT p50", "TTFT p99",
    "E2E p50", "E2E p99", "Aggregate TPS"}, rows)
  out[#out + 1] = ""
  out[#out + 1] = "Jain's index of per-request decode rates (1 = every request served at the same rate); "
    .. "p99/p50 of latency (1 = no tail)."
  out[#out + 1] = ""
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
      local row = {energy_report.mark(r.config, r.name .. (r.is_base and " (baseline)" or ""))}
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
    out[#out + 1] = format.table(head, rows, align)
    out[#out + 1] = ""
    if g.no_effect then
      out[#out + 1] = findings.no_effect(g)
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
      if #vals >= 2 and analysis.mean(vals) > 0 then
        cv = analysis.stddev(vals) / analysis.mean(vals) * 100
        if vals[1] > 0 then drift = (vals[#vals] - vals[1]) / vals[1] * 100 end
      end
      local bad = 0
      for _, cell in ipairs(c.cells) do
        if cell.status == "oom" or cell.status == "crashed" or cell.status == "failed" then bad = bad + 1 end
      end
      -- (an abort at the memory ceiling is a failed cell with cell.aborted)
      rows[#rows + 1] = {energy_report.mark(c, g.name .. " · " .. r.name), tostring(#vals), cv and string.format("%.1f%%", cv) or "–",
        pct(drift), string.format("%d/%d", #c.cells - bad, #c.cells)}
    end
  end
  out[#out + 1] = "### Stability over repeats"
  out[#out + 1] = ""
  out[#out + 1] = format.table({"Configuration", "Repeats", "TPS CV", "Last vs first repeat", "Cells without crash/OOM"}, rows)
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
      rows[#rows + 1] = {energy_report.mark(r.config, r.config.name .. (r.is_ref and " (reference)" or "")),
        r.sim and string.format("%.3f", r.sim.lcs) or "–", r.sim and string.format("%.3f", r.sim.jaccard) or "–",
        r.tokens and string.format("%d", r.tokens) or "–", any_check and chk or nil}
    end
    -- the answer's tokens as the server counted them, not the similarity's words
    local head = {"Configuration", "Similarity", "Jaccard", "Output tokens"}
    if any_check then head[5] = "Check" end
    out[#out + 1] = format.table(head, rows, {"l", "r", "r", "r", "l"})
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

-- The sections a phase script added (its `report` hook, through
-- bench.phase.report_parts: ctx.phase_parts.sections), each placed after the
-- section it names.
local function phase_sections(out, ctx, after)
  for _, s in ipairs(ctx.phase_parts and ctx.phase_parts.sections or {}) do
    if s.after == after then
      for _, l in ipairs(s.lines) do out[#out + 1] = l end
    end
  end
end

-- markdown.render(an, ctx) -> markdown text. ctx: {charts = {{file, title}},
-- scaling, tuning, quality, title, phase, combined (a combined analysis of
-- several runs), phase_parts = {findings, sections, answered, analysis}}.
-- A phase script's sections follow the section their `after`
-- names: "results", "errors", "scaling", "fairness", "tuning", "latency",
-- "toolcalls", "slo", "steady", "quality", "logprobs", "cache", "depth",
-- "energy" (docs/phases.md).
function markdown.render(an, ctx)
  local out = {}
  section_header(out, an, ctx)
  local recs = findings.recommendations(an, ctx)
  if #recs > 0 then
    out[#out + 1] = ctx.combined and "## Framework recommendations" or "## Findings"
    out[#out + 1] = ""
    for _, r in ipairs(recs) do out[#out + 1] = "- " .. r end
    out[#out + 1] = ""
  end
  if #an.configs == 0 then
    out[#out + 1] = "No cell has finished yet."
    out[#out + 1] = ""
    return table.concat(out, "\n")
  end
  local sections = {
    {"results", section_variants}, {"errors", section_errors}, {"scaling", function() section_scaling(out, an, ctx.scaling) end},
    {"capacity", function() capacity.section(out, an.data.cells) end},
    {"fairness", section_fairness}, {"tuning", function() section_tuning(out, an, ctx.tuning) end},
    {"latency", section_latency},
    {"toolcalls", function() toolcalls.section(out, an, format.table) end},   -- tool calls, structured output, reasoning budget
    {"slo", function() slo.section(out, an.data.cells) end},
    {"steady", function() steady.section(out, an.data.cells) end},
    {"quality", function() section_quality(out, an, ctx.quality) end},
    {"logprobs", function() logprobs.section(out, an, format.table) end},   -- quality by logprobs
    {"cache", function() cache.section(out, an, format.table) end},         -- prefix cache
    {"depth", function() depth.section(out, an.data, format.table) end},   -- speed over context depth
    {"energy", energy_report.section},   -- energy and heat (bench.report.energy)
  }
  for _, s in ipairs(sections) do
    s[2](out, an)
    phase_sections(out, ctx, s[1])
  end
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
  -- one set of answers: not the finish hook's when the report hook answered
  local answered = ctx.phase_parts and ctx.phase_parts.answered
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

return markdown
