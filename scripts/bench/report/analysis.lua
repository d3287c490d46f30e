-- bench.report.analysis: turn a results folder (results.load) into the numbers
-- every report section, chart and comparison uses. Pure functions of the data:
-- no files, no clocks, so the same folder always gives the same analysis.
local labels = require("bench.labels")
local error_kind = require("bench.summary").error_kind   -- one place classifies a record's error

local analysis = {}

-- ------------------------------------------------------------ small stats
local function sorted_copy(xs)
  local s = {}
  for i, x in ipairs(xs) do s[i] = x end
  table.sort(s)
  return s
end

-- Percentile with linear interpolation between closest ranks (numpy's default).
function analysis.percentile(xs, p)
  local n = #xs
  if n == 0 then return nil end
  local s = sorted_copy(xs)
  local h = (n - 1) * p / 100 + 1
  local lo = math.floor(h)
  if lo >= n then return s[n] end
  return s[lo] + (h - lo) * (s[lo + 1] - s[lo])
end

function analysis.mean(xs)
  local n = #xs
  if n == 0 then return nil end
  local sum = 0
  for _, x in ipairs(xs) do sum = sum + x end
  return sum / n
end

-- Sample standard deviation (n - 1); nil below two values.
function analysis.stddev(xs)
  local n = #xs
  if n < 2 then return nil end
  local m = analysis.mean(xs)
  local ss = 0
  for _, x in ipairs(xs) do ss = ss + (x - m) ^ 2 end
  return math.sqrt(ss / (n - 1))
end

local function dist(xs)
  if #xs == 0 then return nil end
  local s = sorted_copy(xs)
  return {n = #s, min = s[1], max = s[#s], mean = analysis.mean(s), stddev = analysis.stddev(s),
          p50 = analysis.percentile(s, 50), p90 = analysis.percentile(s, 90),
          p95 = analysis.percentile(s, 95), p99 = analysis.percentile(s, 99)}
end
analysis.dist = dist

-- A number out of a figure that may be a distribution table or a number.
local figure = require("bench.util").figure

-- ------------------------------------------------------------ records
local function rec_ok(r)
  if r.ok ~= nil then return r.ok == true end
  return r.error == nil
end

-- Decode rate of one request: tokens after the first over the time after it.
local function rec_decode_tps(r)
  if type(r.decode_tps) == "number" then return r.decode_tps end
  local n, e2e, ttft = r.output_tokens, r.e2el_ms, r.ttft_ms
  if type(n) == "number" and type(e2e) == "number" and type(ttft) == "number" and n > 1 and e2e > ttft then
    return (n - 1) / ((e2e - ttft) / 1000)
  end
  return nil
end
analysis.rec_decode_tps = rec_decode_tps

local function rec_start_ns(r) return r.t_sent_ns or r.sent_ns or r.start_ns end

-- The prompt a record answered: bench.load names it `name`, the runner `prompt`.
function analysis.rec_prompt(r) return r.prompt or r.name end

-- Aggregate output rate of a set of requests: tokens over their joint span.
local function span_tps(recs)
  local first, last, tokens = nil, nil, 0
  for _, r in ipairs(recs) do
    local s = rec_start_ns(r)
    local e = type(r.t_end_ns) == "number" and r.t_end_ns
      or (type(s) == "number" and type(r.e2el_ms) == "number" and s + r.e2el_ms * 1e6) or nil
    if type(s) == "number" and e then
      if not first or s < first then first = s end
      if not last or e > last then last = e end
      tokens = tokens + (tonumber(r.output_tokens) or 0)
    end
  end
  if first and last and last > first then return tokens / ((last - first) / 1e9) end
  return nil
end

-- A summary (bench.summary's shape) computed from records: used where the
-- cell carries none and for per-repeat figures.
function analysis.summarize_records(recs)
  local ttft, e2el, tpot, itl, dtps, tokens, ok, errors = {}, {}, {}, {}, {}, 0, 0, {}
  for _, r in ipairs(recs) do
    if rec_ok(r) then
      ok = ok + 1
      if type(r.ttft_ms) == "number" then ttft[#ttft + 1] = r.ttft_ms end
      if type(r.e2el_ms) == "number" then e2el[#e2el + 1] = r.e2el_ms end
      if type(r.tpot_ms) == "number" then tpot[#tpot + 1] = r.tpot_ms end
      if type(r.itl_ms) == "table" then for _, g in ipairs(r.itl_ms) do itl[#itl + 1] = g end end
      local d = rec_decode_tps(r)
      if d then dtps[#dtps + 1] = d end
      tokens = tokens + (tonumber(r.output_tokens) or 0)
    else
      local kind = error_kind(r)
      errors[kind] = (errors[kind] or 0) + 1
    end
  end
  return {requests = #recs, ok = ok, errors = {by_kind = errors}, ttft_ms = dist(ttft),
          e2el_ms = dist(e2el), tpot_ms = dist(tpot), itl_ms = dist(itl), decode_tps = dist(dtps),
          output_tps = span_tps(recs), output_tokens_total = tokens}
end

-- ------------------------------------------------------------ labels
-- the labels' order, canonical text and configuration key: bench.labels,
-- the runner's rules, so the report groups cells as the runner named them
local LABEL_ORDER = labels.ORDER
analysis.LABEL_ORDER = LABEL_ORDER
local canon = labels.canon
analysis.canon = canon
analysis.config_key = labels.config_key

-- Bits of precision a quantization label names (Q4_K_M -> 4, 8bit -> 8, BF16 -> 16).
function analysis.bits(labels)
  if tonumber(labels.bits) then return tonumber(labels.bits) end
  local q = tostring(labels.quant or labels.variant or labels.model or ""):lower()
  if q:find("bf16") or q:find("f16") or q:find("fp16") then return 16 end
  if q:find("f32") or q:find("fp32") then return 32 end
  local b = q:match("q(%d+)") or q:match("(%d+)[%-_]?bit") or q:match("int(%d+)")
  return b and tonumber(b) or nil
end

-- The format: the label, else guessed from the model name.
function analysis.format(labels)
  if labels.format then return tostring(labels.format):lower() end
  local m = tostring(labels.model or labels.variant or ""):lower()
  if m:find("%.gguf$") or m:find("gguf") or m:match("q%d_") then return "gguf" end
  if m:find("mlx") or m:find("%dbit") then return "mlx" end
  return nil
end

local label_text = labels.text
analysis.label_text = label_text

-- ------------------------------------------------------------ cells
-- A server's peak memory: host + GPU (peak_memory_bytes, issue 19); results
-- written before it have the host memory (else the GPU's, else the
-- system's in use) alone.
local function peak_bytes(server)
  if type(server) ~= "table" then return nil end
  return figure(server.peak_memory_bytes) or figure(server.peak_rss_bytes) or figure(server.peak_gpu_bytes)
    or figure(server.sys_used_peak_bytes)
end

-- Flat metrics of one summary + server table.
local function metrics_of(summary, server)
  summary = summary or {}
  server = server or {}
  local m = {
    requests = figure(summary.requests), ok = figure(summary.ok),
    ttft_p50 = figure(summary.ttft_ms, "p50"), ttft_p90 = figure(summary.ttft_ms, "p90"),
    ttft_p95 = figure(summary.ttft_ms, "p95"), ttft_p99 = figure(summary.ttft_ms, "p99"),
    ttft_mean = figure(summary.ttft_ms, "mean"),
    tpot_p50 = figure(summary.tpot_ms, "p50"), tpot_p95 = figure(summary.tpot_ms, "p95"),
    itl_p50 = figure(summary.itl_ms, "p50"), itl_p99 = figure(summary.itl_ms, "p99"),
    e2el_p50 = figure(summary.e2el_ms, "p50"), e2el_p90 = figure(summary.e2el_ms, "p90"),
    e2el_p95 = figure(summary.e2el_ms, "p95"), e2el_p99 = figure(summary.e2el_ms, "p99"),
    e2el_mean = figure(summary.e2el_ms, "mean"),
    queue_p50 = figure(summary.queue_ms, "p50"), queue_p95 = figure(summary.queue_ms, "p95"),
    decode_tps = figure(summary.decode_tps, "mean"), decode_tps_p50 = figure(summary.decode_tps, "p50"),
    output_tps = figure(summary.output_tps), request_throughput = figure(summary.request_throughput),
    goodput = figure(summary.goodput),
    jain = type(summary.fairness) == "table" and figure(summary.fairness.jain) or nil,
    p99_p50 = type(summary.fairness) == "table" and figure(summary.fairness.p99_p50) or nil,
    tokens_total = figure(summary.output_tokens_total),
    load_s = figure(server.load_time_s),
    peak_bytes = peak_bytes(server),
    host_peak_bytes = figure(server.peak_rss_bytes),
    gpu_peak_bytes = figure(server.peak_gpu_bytes),
    gpu_source = type(server.gpu_memory_source) == "string" and server.gpu_memory_source or nil,
    sys_peak_bytes = figure(server.sys_used_peak_bytes),
    model_bytes = figure(server.model_bytes),
  }
  local errs = 0
  if type(summary.errors) == "table" and type(summary.errors.by_kind) == "table" then
    for _, n in pairs(summary.errors.by_kind) do errs = errs + (tonumber(n) or 0) end
  elseif m.requests and m.ok then
    errs = m.requests - m.ok
  end
  m.errors = errs
  if m.decode_tps and m.peak_bytes and m.peak_bytes > 0 then
    m.tps_per_gb = m.decode_tps / (m.peak_bytes / 1e9)
  end
  return m
end
analysis.metrics_of = metrics_of

local function fill_missing(dst, src)
  for k, v in pairs(src) do
    if dst[k] == nil then dst[k] = v end
  end
end

-- Average several metric tables key by key (repeats run as separate cells).
local function average(list)
  if #list == 1 then return list[1] end
  local sums, counts, flags = {}, {}, {}
  for _, m in ipairs(list) do
    for k, v in pairs(m) do
      -- flags (peak_from_samples, memory_simulated) hold when any cell's does
      if type(v) == "number" then
        sums[k] = (sums[k] or 0) + v
        counts[k] = (counts[k] or 0) + 1
      elseif k == "gpu_source" then
        -- the devices' whole memory in any repeat taints the configuration's peak
        if flags[k] ~= "nvml-device" and flags[k] ~= "iokit-device" then flags[k] = v end
      elseif v then
        flags[k] = v
      end
    end
  end
  local out = {}
  for k, v in pairs(flags) do out[k] = v end
  for k, s in pairs(sums) do
    if k == "requests" or k == "ok" or k == "errors" or k == "tokens_total" then out[k] = s
    elseif k == "peak_bytes" or k == "host_peak_bytes" or k == "gpu_peak_bytes" or k == "sys_peak_bytes" then
      local mx
      for _, m in ipairs(list) do if m[k] and (not mx or m[k] > mx) then mx = m[k] end end
      out[k] = mx
    else out[k] = s / counts[k] end
  end
  return out
end

local STATUS_RANK = {ok = 1, skipped = 2, degraded = 3, failed = 4, aborted = 5, crashed = 6, oom = 7}

-- A cell's status as the report shows it: the runner records a cell it
-- stopped at safety.memory_ceiling as failed with cell.aborted set.
function analysis.cell_status(cell)
  local st = cell.status or "ok"
  if cell.aborted and st == "failed" then return "aborted" end
  return st
end

-- The dry run's memory_scale of a cell: the simulator touches a model's size
-- times it, so the server's measured memory divided by it is the figure the
-- rehearsal stands for.
function analysis.memory_scale(cell)
  local d = type(cell) == "table" and cell.dry_run
  local f = type(d) == "table" and d.figures
  local s = type(f) == "table" and tonumber(f.memory_scale)
  if s and s > 0 then return s end
  return nil
end

-- The cell each sample belongs to: by the cells' [started_ns, ended_ns]
-- windows when the cells carry them (a server kept across cells has its
-- samples flushed under the last cell's id), else the sample's own `cell`.
function analysis.sample_cells(data)
  local windows = {}
  for _, c in ipairs(data.cells or {}) do
    if type(c.started_ns) == "number" and type(c.ended_ns) == "number" then
      windows[#windows + 1] = {c.started_ns, c.ended_ns, c.id}
    end
  end
  table.sort(windows, function(a, b) return a[1] < b[1] end)
  local out = {}
  for i, smp in ipairs(data.samples or {}) do
    local id = smp.cell
    local t = smp.t_ns
    if type(t) == "number" then
      for _, w in ipairs(windows) do
        if t >= w[1] and t <= w[2] then id = w[3] break end
      end
    end
    out[i] = id
  end
  return out
end

-- Peak server memory per cell from the samples (host + GPU, else rss, else
-- footprint/pss):
-- by_window for cells that carry their time window, by_label otherwise.
local function sample_peaks(data)
  local owners = analysis.sample_cells(data)
  local windowed = {}
  for _, c in ipairs(data.cells or {}) do
    if type(c.started_ns) == "number" and type(c.ended_ns) == "number" then windowed[c.id] = true end
  end
  -- at: the peak sample's parts {gpu_source, host, gpu} (host + GPU = the peak)
  local by_window, by_label, at = {}, {}, {}
  for i, smp in ipairs(data.samples or {}) do
    local id = owners[i]
    local v = tonumber(smp.server_mem) or tonumber(smp.rss) or tonumber(smp.real) or tonumber(smp.pss)
    if id and v then
      local t = windowed[id] and by_window or by_label
      if not t[id] or v > t[id] then
        t[id] = v
        local gpu = tonumber(smp.server_gpu)
        at[id] = {gpu_source = type(smp.gpu_source) == "string" and smp.gpu_source or nil, gpu = gpu,
                  host = gpu and v - gpu or v}
      end
    end
  end
  return by_window, by_label, at
end

-- A cell's peak memory into its metrics m: from its own samples where it
-- has them (host + GPU parts, and where the GPU part came from), and in a
-- dry run scaled back to what the simulator stands for (scales[scale] =
-- true for each memory_scale met).
local function cell_memory(cell, m, peaks, scales)
  -- A server kept across cells reports one peak for all of them (to the
  -- last); the samples inside a cell's own window say what that cell used.
  local sp = peaks.window[cell.id] or (not m.peak_bytes and peaks.label[cell.id]) or nil
  if sp then
    m.peak_bytes = sp
    m.peak_from_samples = true
    -- the parts of that peak: host and GPU memory, where the GPU part came from
    local at = peaks.at[cell.id] or {}
    m.host_peak_bytes = at.host or m.host_peak_bytes
    m.gpu_peak_bytes = at.gpu or m.gpu_peak_bytes
    m.gpu_source = at.gpu_source or m.gpu_source
  end
  -- a dry run: the simulator's memory, scaled back to what it stands for
  local scale = analysis.memory_scale(cell)
  local srv = type(cell.server) == "table" and cell.server or {}
  -- the host's memory in use (the fallback peak) is real, never scaled
  local measured = sp or figure(srv.peak_memory_bytes) or figure(srv.peak_rss_bytes) or figure(srv.peak_gpu_bytes)
  if scale and measured then
    scales[scale] = true
    if m.peak_bytes then m.peak_bytes_measured = m.peak_bytes m.peak_bytes = m.peak_bytes / scale end
    if m.gpu_peak_bytes then m.gpu_peak_bytes = m.gpu_peak_bytes / scale end
    if m.host_peak_bytes then m.host_peak_bytes = m.host_peak_bytes / scale end
    m.memory_simulated = true
  end
end

-- A configuration's metrics: the mean over its ok cells (all of them when
-- none is ok), the highest peak of any (an OOM's peak matters), its bits,
-- format and per-repeat values.
local function config_metrics(c)
  local okcells = {}
  for i, cell in ipairs(c.cells) do
    if analysis.cell_status(cell) == "ok" then okcells[#okcells + 1] = c.per_cell[i] end
  end
  c.metrics = average(#okcells > 0 and okcells or c.per_cell)
  -- peak memory and load time of a failed cell still matter (an OOM's peak)
  for _, m in ipairs(c.per_cell) do
    if m.peak_bytes and (not c.metrics.peak_bytes or m.peak_bytes > c.metrics.peak_bytes) then
      c.metrics.peak_bytes = m.peak_bytes
    end
  end
  c.bits = analysis.bits(c.labels)
  c.format = analysis.format(c.labels)
  c.repeat_values = analysis.repeat_values(c)
end

-- The labels whose value differs between configurations (varying), and of
-- those the ones tables show (shown: not derived, not restating another).
local function label_columns(configs)
  -- Labels whose value differs between configurations name them in tables.
  local varying = {}
  local seen_label = {}
  for _, c in ipairs(configs) do for k in pairs(c.labels) do seen_label[k] = true end end
  local ordered = {}
  for _, k in ipairs(LABEL_ORDER) do if seen_label[k] then ordered[#ordered + 1] = k seen_label[k] = nil end end
  local rest = {}
  for k in pairs(seen_label) do rest[#rest + 1] = k end
  table.sort(rest)
  for _, k in ipairs(rest) do ordered[#ordered + 1] = k end
  for _, k in ipairs(ordered) do
    local first, differs = nil, false
    for i, c in ipairs(configs) do
      local t = canon(c.labels[k] == nil and "" or c.labels[k])
      if i == 1 then first = t elseif t ~= first then differs = true break end
    end
    if differs then varying[#varying + 1] = k end
  end
  -- Drop labels that only restate another varying one (model vs variant vs quant).
  local shown = {}
  local seen_cols = {}
  -- derived labels restate others (bits from the quant, the file size)
  local derived = {bits = true, size_bytes = true}
  for _, k in ipairs(varying) do
    if derived[k] then goto continue end
    local sig = {}
    for i, c in ipairs(configs) do sig[i] = canon(c.labels[k] == nil and "" or c.labels[k]) end
    local pattern = {}
    local ids, next_id = {}, 0
    for i, s in ipairs(sig) do
      if not ids[s] then next_id = next_id + 1 ids[s] = next_id end
      pattern[i] = ids[s]
    end
    local p = table.concat(pattern, ",")
    if not seen_cols[p] then seen_cols[p] = true shown[#shown + 1] = k end
    ::continue::
  end
  return varying, shown
end

-- A.analyze(data) -> {configs, by_key, varying, statuses, ...}
-- data: results.load(dir). Configurations keep the order in which their first
-- cell finished.
function analysis.analyze(data)
  local recs_by_cell = {}
  for _, r in ipairs(data.records or {}) do
    if r.cell and r.warmup ~= true then
      local l = recs_by_cell[r.cell]
      if not l then l = {} recs_by_cell[r.cell] = l end
      l[#l + 1] = r
    end
  end
  local configs, by_key = {}, {}
  local statuses = {ok = 0, degraded = 0, oom = 0, crashed = 0, failed = 0, aborted = 0, skipped = 0}
  local scales, dry = {}, false
  local peaks = {}
  peaks.window, peaks.label, peaks.at = sample_peaks(data)
  local cell_metrics = {}
  for _, cell in ipairs(data.cells or {}) do
    local labels = cell.labels or {}
    local key = analysis.config_key(labels)
    if key == "" then key = "cell=" .. tostring(cell.id) end
    local c = by_key[key]
    if not c then
      c = {key = key, labels = {}, cells = {}, per_cell = {}, records = {}, repeats = {},
           status = "ok", outputs = {}, checks = {}}
      for k, v in pairs(labels) do if k ~= "repeat" then c.labels[k] = v end end
      by_key[key] = c
      configs[#configs + 1] = c
    end
    c.cells[#c.cells + 1] = cell
    local st = analysis.cell_status(cell)
    statuses[st] = (statuses[st] or 0) + 1
    if (STATUS_RANK[st] or 0) > (STATUS_RANK[c.status] or 0) then c.status = st end
    if cell.sysctl_simulated then c.sysctl_simulated = true end
    if cell.error and not c.error then c.error = cell.error end
    if cell.baseline then c.baseline = true end
    local recs = recs_by_cell[cell.id] or {}
    local m = metrics_of(cell.summary, cell.server)
    if #recs > 0 then fill_missing(m, metrics_of(analysis.summarize_records(recs), cell.server)) end
    cell_memory(cell, m, peaks, scales)
    if cell.dry_run ~= nil then dry = true end
    m.tps_per_gb = nil
    if m.decode_tps and m.peak_bytes and m.peak_bytes > 0 then m.tps_per_gb = m.decode_tps / (m.peak_bytes / 1e9) end
    if m.decode_tps and m.model_bytes and m.model_bytes > 0 then m.tps_per_file_gb = m.decode_tps / (m.model_bytes / 1e9) end
    c.per_cell[#c.per_cell + 1] = m
    cell_metrics[cell.id] = m
    for _, r in ipairs(recs) do
      c.records[#c.records + 1] = r
      local rep = labels["repeat"] or r["repeat"] or 1
      local l = c.repeats[rep]
      if not l then l = {} c.repeats[rep] = l end
      l[#l + 1] = r
    end
    for k, v in pairs(cell.outputs or {}) do if c.outputs[k] == nil then c.outputs[k] = v end end
    for k, v in pairs(cell.checks or {}) do if c.checks[k] == nil then c.checks[k] = v end end
  end
  for _, c in ipairs(configs) do config_metrics(c) end
  local varying, shown = label_columns(configs)
  -- A configuration of one cell (the runner's case) is named by its cell id,
  -- the name progress, summary.csv and the cell files use; repeats run as
  -- separate cells share a name made of the labels that vary.
  local all_single = #configs > 0
  for _, c in ipairs(configs) do
    if #c.cells == 1 then
      c.name = tostring(c.cells[1].id)
      c.name_is_id = true
    else
      c.name = analysis.config_name(c, shown)
      all_single = false
    end
  end
  -- one memory_scale for the whole dry run: limits in the notes are scaled alike
  local mem_scale, nscales = nil, 0
  for sc in pairs(scales) do mem_scale = sc nscales = nscales + 1 end
  if nscales ~= 1 then mem_scale = nil end
  local notes = type(data.summary) == "table" and data.summary.notes or nil
  if type(notes) == "table" and notes.dry_run then dry = true end
  return {configs = configs, by_key = by_key, varying = varying, shown = shown, cell_metrics = cell_metrics,
          statuses = statuses, data = data, names_are_ids = all_single, dry_run = dry,
          memory_scale = mem_scale}
end

-- A short human name for a configuration from the labels that vary.
function analysis.config_name(c, shown)
  local parts = {}
  -- one label names the model (variant, else model, else quant); a named
  -- config stands for its env and sysctl values
  local is_shown = {}
  for _, k in ipairs(shown) do is_shown[k] = true end
  local identity
  for _, k in ipairs({"variant", "model", "quant"}) do
    if is_shown[k] and c.labels[k] ~= nil then identity = k break end
  end
  local skip = {}
  if identity then
    for _, k in ipairs({"variant", "model", "quant"}) do if k ~= identity then skip[k] = true end end
  end
  if c.labels.config ~= nil and is_shown.config then skip.env, skip.sysctl = true, true end
  skip.expect = true   -- what the plan expects (e.g. oom) is not part of the name
  for _, k in ipairs(shown) do
    local v = c.labels[k]
    if v == false then v = nil end
    if v ~= nil and not skip[k] then
      local t = v == true and k or label_text(v)
      if k == "concurrency" then t = "c=" .. t
      elseif k == "max_tokens" then t = t .. " tok"
      elseif (k == "env" or k == "sysctl") and t == "default" then t = k == "env" and "env default" or "sysctl default" end
      local dup = false
      for _, p in ipairs(parts) do if p == t then dup = true break end end
      if not dup then parts[#parts + 1] = t end
    end
  end
  if #parts == 0 then
    local l = c.labels
    local t = l.variant or l.quant or l.model or l.config or l.scenario or c.cells[1].id
    return tostring(t)
  end
  return table.concat(parts, " · ")
end

-- Per-repeat values of the metrics compare's noise rule uses.
function analysis.repeat_values(c)
  local out = {decode_tps = {}, ttft_p50 = {}, e2el_p50 = {}, output_tps = {}, load_s = {}, peak_bytes = {}}
  local reps = {}
  for rep in pairs(c.repeats) do reps[#reps + 1] = rep end
  table.sort(reps, function(a, b) return tostring(a) < tostring(b) end)
  for _, rep in ipairs(reps) do
    local s = analysis.summarize_records(c.repeats[rep])
    local m = metrics_of(s)
    for _, k in ipairs({"decode_tps", "ttft_p50", "e2el_p50", "output_tps"}) do
      if m[k] then out[k][#out[k] + 1] = m[k] end
    end
  end
  if #c.cells > 1 then
    for _, m in ipairs(c.per_cell) do
      if m.load_s then out.load_s[#out.load_s + 1] = m.load_s end
      if m.peak_bytes then out.peak_bytes[#out.peak_bytes + 1] = m.peak_bytes end
    end
  end
  -- the per-request spread, for when there is a single repeat
  local per_req = {decode_tps = {}, ttft_p50 = {}, e2el_p50 = {}}
  for _, r in ipairs(c.records) do
    if rec_ok(r) then
      local d = rec_decode_tps(r)
      if d then per_req.decode_tps[#per_req.decode_tps + 1] = d end
      if type(r.ttft_ms) == "number" then per_req.ttft_p50[#per_req.ttft_p50 + 1] = r.ttft_ms end
      if type(r.e2el_ms) == "number" then per_req.e2el_p50[#per_req.e2el_p50 + 1] = r.e2el_ms end
    end
  end
  out.per_request = per_req
  return out
end

-- ------------------------------------------------------------ noise
analysis.MIN_EFFECT = 0.01
-- Below these absolute differences a latency change is not worth acting on,
-- whatever the spread says (a steady simulator makes +300% of 0.4 ms
-- "significant"): milliseconds.
analysis.MIN_ABS = {ttft_p50 = 1, e2el_p50 = 1, ttft_ms = 1}

-- Does b differ from a by more than run-to-run noise? With at least two
-- repeats on each side: |mean_b - mean_a| > max(2 * sqrt(s_a^2/n_a + s_b^2/n_b), 1% of mean_a)
-- (about a 95% interval for the difference). With fewer, the spread of single
-- requests stands in (weaker: requests of one run share its conditions); the
-- verdict then says so. Either way a change under 1% of A's mean is noise.
function analysis.noise(ra, rb, metric)
  if not ra or not rb then return {verdict = "n/a"} end
  local a, b = ra[metric] or {}, rb[metric] or {}
  local basis = "repeats"
  if #a < 2 or #b < 2 then
    a = ra.per_request and ra.per_request[metric] or {}
    b = rb.per_request and rb.per_request[metric] or {}
    basis = "requests"
  end
  if #a < 2 or #b < 2 then return {verdict = "n/a", basis = "too few values"} end
  local ma, mb = analysis.mean(a), analysis.mean(b)
  local sa, sb = analysis.stddev(a), analysis.stddev(b)
  local se = math.sqrt(sa ^ 2 / #a + sb ^ 2 / #b)
  local diff = mb - ma
  -- a very steady server (the simulator) makes tiny differences "significant";
  -- below A.MIN_EFFECT of the mean they are not worth acting on
  local threshold = math.max(2 * se, analysis.MIN_EFFECT * math.abs(ma), analysis.MIN_ABS[metric] or 0)
  local exceeds = math.abs(diff) > threshold
  return {verdict = exceeds and "yes" or "no", basis = basis, diff = diff, threshold = threshold,
          n_a = #a, n_b = #b, mean_a = ma, mean_b = mb}
end

-- ------------------------------------------------------------ robust figures
-- The median of a list (nil when empty).
function analysis.median(xs) return analysis.percentile(xs, 50) end

-- A configuration's typical decode rate: the median of its requests' rates
-- (one late request at 3x the others lifts a mean, not a median); the
-- summary's figures when there are no records.
function analysis.typical_decode_tps(c)
  local per = c.repeat_values and c.repeat_values.per_request and c.repeat_values.per_request.decode_tps or {}
  if #per > 0 then return analysis.median(per) end
  return c.metrics.decode_tps_p50 or c.metrics.decode_tps
end

-- Does b's median differ from a's by more than noise? The standard error
-- of a median is about 1.253 sigma / sqrt(n), sigma estimated robustly as
-- 1.4826 x the median absolute deviation (an outlier moves neither);
-- differences under 2 standard errors, or under MIN_EFFECT of a's median,
-- are noise. a, b: lists of per-request values.
function analysis.median_noise(a, b)
  if #a < 2 or #b < 2 then return {verdict = "n/a", basis = "too few values"} end
  local function se(xs)
    local m = analysis.median(xs)
    local dev = {}
    for i, x in ipairs(xs) do dev[i] = math.abs(x - m) end
    return 1.253 * 1.4826 * analysis.median(dev) / math.sqrt(#xs), m
  end
  local sa, ma = se(a)
  local sb, mb = se(b)
  local threshold = math.max(2 * math.sqrt(sa ^ 2 + sb ^ 2), analysis.MIN_EFFECT * math.abs(ma))
  return {verdict = math.abs(mb - ma) > threshold and "yes" or "no", basis = "medians of requests",
          diff = mb - ma, threshold = threshold, median_a = ma, median_b = mb}
end

return analysis
