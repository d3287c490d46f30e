-- bench.runner: executes a validated plan's cells and records them.
--
-- For each cell, in order: apply its sysctl values (journaled, restored at the
-- end whatever happens; simulated in a dry run), (re)start the server when its
-- configuration changed (backend, model, args, env, sysctl) or the cell asks
-- for a restart, sample the server's memory, send the warm-ups, then each
-- repeat's requests through bench.load, write every record to the results
-- store as it ends, and write the cell's summary when it ends. A server that
-- dies makes that cell's result "oom" (only with evidence of an OOM kill),
-- "crashed" (killed by a signal) or "failed", and the plan goes on. Ctrl-C
-- keeps every finished cell; `--resume DIR` continues.
local M = {}

local estimate = require("bench.plan.estimate")
local units = require("bench.units")
local util = require("bench.util")
local clock = require("bench.clock")
local mem = require("bench.mem")
local sys = require("bench.sys")
local http = require("bench.http")
local backends = require("bench.backends")
local progress_mod = require("bench.progress")

local function now_ns() return clock.now() end

local utc_stamp = util.utc_stamp

local function new_progress(opts, total)
  local mode = opts.quiet and "quiet" or (opts.json and "json") or "auto"
  -- tty = nil: bench.progress finds out whether stderr is a terminal
  return progress_mod.new{total = total, mode = mode, out = io.stderr}
end

---------------------------------------------------------------------------
-- sysctl with restore (simulated in a dry run)
---------------------------------------------------------------------------

local Sysctl = {}
Sysctl.__index = Sysctl

local function new_sysctl(dry, ceilings)
  return setmetatable({dry = dry, applied = {}, log = {}, ceilings = ceilings or {}, current = {}}, Sysctl)
end

-- set(name, value) -> true or nil, why. "default" puts back the value found
-- before the plan changed it (or leaves it alone if it never did). The log
-- entry of a change that failed says so (ok = false, error): nothing may
-- call it applied.
function Sysctl:set(name, value)
  if self.current[name] == value then return true end
  local max = self.ceilings[name]
  if value ~= "default" and math.type(max) == "integer" and math.type(value) == "integer" and value > max then
    return nil, string.format("sysctl %s=%d is above the plan's safety.max_sysctl (%d)", name, value, max)
  end
  local entry = {name = name, value = value, simulated = self.dry or nil, t = util.utc_iso()}
  self.log[#self.log + 1] = entry
  local function failed(why)
    entry.ok, entry.error = false, why
    self.current[name] = nil   -- unknown: the next set tries again
    return nil, why
  end
  self.current[name] = value
  if self.dry then return true end
  if value == "default" then
    local orig = self.applied[name]
    if orig == nil then return true end
    local ok, why = sys.sysctl_set(name, orig)
    if not ok then return failed(string.format("sysctl %s: cannot restore %s: %s", name, tostring(orig), tostring(why))) end
    return true
  end
  if self.applied[name] == nil then
    local orig, why = sys.sysctl_get(name)
    if orig == nil then return failed(string.format("sysctl %s: cannot read it: %s", name, tostring(why))) end
    self.applied[name] = orig
  end
  local ok, why = sys.sysctl_set(name, value)
  if not ok then return failed(string.format("sysctl %s=%s: %s", name, tostring(value), tostring(why))) end
  return true
end

-- apply(wanted) -> in_effect | nil, why: a cell runs with exactly its sysctl
-- values; every other name this run changed goes back to its original
-- first (a value set for one cell must not leak into the next). in_effect:
-- {name = value} of every name this run has touched, as it now is ("default"
-- for an original), for the cell record.
function Sysctl:apply(wanted)
  wanted = wanted or {}
  local names = {}
  for k in pairs(self.current) do if wanted[k] == nil then names[#names + 1] = k end end
  table.sort(names)
  for _, k in ipairs(names) do
    local ok, why = self:set(k, "default")
    if not ok then return nil, why end
  end
  local keys = {}
  for k in pairs(wanted) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local ok, why = self:set(k, wanted[k])
    if not ok then return nil, why end
  end
  local in_effect = {}
  for k, v in pairs(self.current) do
    -- an original is named by its value where it is known (not in a dry run)
    in_effect[k] = v == "default" and self.applied[k] or v
  end
  return in_effect
end

-- restore() puts every changed value back (the journal of bench.sys too).
function Sysctl:restore()
  if self.dry then
    for name in pairs(self.current) do
      if self.current[name] ~= "default" then
        self.log[#self.log + 1] = {name = name, value = "default", simulated = true, restore = true}
      end
    end
    self.current = {}
    return true
  end
  -- nothing changed by this run: nothing to put back (and a journal that
  -- cannot be read, which bench.sys already warned about, fails no plan
  -- that never touched a sysctl)
  if next(self.applied) == nil then
    self.current = {}
    return true
  end
  -- bench.sys journaled every original value as it changed it: restore_all
  -- puts them back (and says which it could not)
  local errs = {}
  local ok, res = pcall(sys.restore_all)
  if not ok then errs[#errs + 1] = "sys.restore_all: " .. tostring(res)
  elseif type(res) == "table" then
    for _, e in ipairs(res) do
      self.log[#self.log + 1] = {name = e.name, value = e.value, restore = true, ok = e.ok ~= false, error = e.error,
                                 t = util.utc_iso()}
      if e.ok == false then errs[#errs + 1] = string.format("%s: %s", tostring(e.name), tostring(e.error)) end
    end
  end
  self.applied, self.current = {}, {}
  if #errs > 0 then return nil, table.concat(errs, "; ") end
  return true
end

---------------------------------------------------------------------------
-- Labels
---------------------------------------------------------------------------

-- the cell's labels for the results store (docs/results-format.md)
local function labels_of(plan, cell)
  local l = {}
  local m = cell.model or {}
  -- the plan's name of the model (the one in cell ids, --only and the
  -- console), so report.md names a cell as the console does; the id or file
  -- the server was given is the cell's server.model_id
  l.model = m.name or (cell.real_server or cell.server).model
  l.variant = m.name
  l.quant = m.quant
  l.format = m.format
  l.bits = m.bits
  if m.size then l.size_bytes = m.size end
  l.backend = (cell.real_server or cell.server).backend
  l.server = (cell.real_server or cell.server).name
  local env = (cell.real_server or cell.server).env
  if env and next(env) then l.env = env end
  if cell.sysctl and next(cell.sysctl) then l.sysctl = cell.sysctl end
  l.concurrency = cell.concurrency
  l.scenario = cell.scenario
  l.max_tokens = cell.max_tokens
  for axis, lab in pairs(cell.axes or {}) do
    if axis ~= "model" and axis ~= "server" and axis ~= "load" and l[axis] == nil then l[axis] = lab end
  end
  if cell.axes and (cell.axes.env or cell.axes.metal or cell.axes.config) then
    l.config = cell.axes.config or cell.axes.metal or cell.axes.env
  end
  for k, v in pairs(cell.tags or {}) do l[k] = v end
  return l
end
M.labels_of = labels_of

-- one text per distinct label set (the report groups cells by the same rule)
local canon = require("bench.report.analysis").canon

-- Every cell's labels (the phase script's hook included). The report merges
-- cells with equal labels as repeats of one configuration, so two different
-- cells whose labels came out equal get the axis labels that tell them apart
-- (the id's parts), at worst the id itself.
function M.assign_labels(plan, cells, phase_script, ctx)
  for _, c in ipairs(cells) do
    c.labels = labels_of(plan, c)
    if phase_script and phase_script.labels then pcall(phase_script.labels, ctx, c, c.labels) end
  end
  local by_key = {}
  for _, c in ipairs(cells) do
    local k = canon(c.labels)
    by_key[k] = by_key[k] or {}
    table.insert(by_key[k], c)
  end
  for _, list in pairs(by_key) do
    if #list > 1 then
      for _, c in ipairs(list) do
        for _, axis in ipairs(c.axis_order or {}) do
          if c.labels[axis] == nil then c.labels[axis] = c.axes[axis] end
        end
      end
      local seen, dup = {}, false
      for _, c in ipairs(list) do
        local k = canon(c.labels)
        if seen[k] then dup = true end
        seen[k] = true
      end
      if dup then for _, c in ipairs(list) do c.labels.cell = c.id end end
    end
  end
end

---------------------------------------------------------------------------
-- Monitors of a running server: the memory sampler, the memory ceiling
-- watch and the /metrics scraper. They live as long as the server (which
-- may serve several cells) and are stopped with it.
---------------------------------------------------------------------------

-- where the run is: the cell and its phase (load, warmup, run, idle), for
-- the samples of the sampler thread (attributed at the end by time) and of
-- the scraper (labelled as they come)
local function mark(ctx, phase, cell_id)
  ctx.phase = phase
  if cell_id then ctx.cell_id = cell_id end
  ctx.marks[#ctx.marks + 1] = {t = now_ns(), phase = phase, cell = ctx.cell_id}
end

local function mark_at(marks, t)
  local m
  for _, x in ipairs(marks) do
    if t >= x.t then m = x else break end
  end
  return m
end

local function cancel_task(t)
  if t and t:status() ~= "done" and t:status() ~= "failed" and t:status() ~= "cancelled" then pcall(t.cancel, t) end
end

-- The ceiling in the units the sampler measures: a server of the simulator
-- (a dry run, or a plan on backend sim) touches its model's size times
-- memory_scale, so the ceiling is scaled alike.
local function ceiling_of(plan, cell)
  local c = plan.safety and plan.safety.memory_ceiling
  if not c then return nil end
  local f = cell.server.figures
  if f and f.memory_scale then return math.floor(c * f.memory_scale), c end
  return c, c
end

-- safety.memory_ceiling: the server's process tree (or, for a server that is
-- not our child, the system's memory in use) above the ceiling stops the
-- server; the cell is recorded as aborted.
local function watch_ceiling(ctx, sampler, process, ceiling, shown, interval)
  while true do
    clock.sleep(interval)
    local pk = sampler:peak() or {}
    local v = pk.rss or pk.real
    if not ctx.sampler_pid then v = pk.sys_used end
    if v and v > ceiling then
      ctx.ceiling_hit = {peak = v, ceiling = ceiling, shown = shown}
      ctx.progress:log(string.format("cell %s: memory %s above safety.memory_ceiling %s%s: stopping the server",
        tostring(ctx.cell_id), units.format_size(v), units.format_size(ceiling),
        shown ~= ceiling and string.format(" (%s scaled like the simulated models)", units.format_size(shown)) or ""))
      local target = process or ctx.server
      if target then pcall(target.stop, target, 2) end
      return
    end
  end
end

-- Prometheus text -> {name = value} (labels kept in the name; histogram
-- buckets left out: their _sum and _count say enough for a time series)
function M.parse_metrics(text)
  local out, n = {}, 0
  for line in text:gmatch("[^\n]+") do
    if line:sub(1, 1) ~= "#" then
      local name, labels, value = line:match("^([%a_:][%w_:]*)(%b{})%s+(%S+)")
      if not name then name, value = line:match("^([%a_:][%w_:]*)%s+(%S+)") end
      local v = value and tonumber(value)
      if name and v and v == v and v ~= math.huge and v ~= -math.huge and not name:find("_bucket$") then
        local key = name
        if labels and labels ~= "{}" then key = name .. labels:gsub('"', "") end
        out[key] = v
        n = n + 1
      end
    end
  end
  return out, n
end

-- sampling.metrics: GET /metrics every interval into samples.jsonl
-- ({type = "metrics", t_ns, cell, phase, <metric> = value...}). A server
-- without the endpoint is said once and left alone.
local function scrape_metrics(ctx, base_url, interval)
  local url = base_url .. "/metrics"
  local got = 0
  while true do
    local r = http.request{url = url, timeout = math.max(1, interval)}
    local t = now_ns()
    if r.status == 200 and r.body then
      local vals, n = M.parse_metrics(r.body)
      if n > 0 then
        vals.type, vals.t_ns, vals.cell, vals.phase = "metrics", t, ctx.cell_id, ctx.phase
        ctx.run:sample(vals)
        got = got + 1
      end
    elseif got == 0 then
      ctx.progress:log(string.format("sampling.metrics: %s answered %s; not scraping this server", url,
        r.error and (r.error .. (r.error_detail and (": " .. r.error_detail) or "")) or ("HTTP " .. tostring(r.status))))
      return
    end
    clock.sleep(interval)
  end
end

-- start the memory sampler (and the ceiling watch) for a server: pid nil
-- samples the system only (LM Studio's server is not our child)
local sync_every_second   -- below, beside the other sample writers

local function start_monitors(ctx, cell, pid, process)
  if ctx.sampler then return end
  local sp = ctx.plan.sampling or {}
  local interval = sp.memory or 0.1
  local ok, s = pcall(mem.sampler, {pid = pid, interval = interval, gpu = sp.gpu ~= false})
  if ok and s then ok = pcall(s.start, s) end
  if not ok or not s then
    ctx.progress:log(string.format("cell %s: no memory sampling: %s", cell.id, tostring(s)))
    return
  end
  ctx.sampler, ctx.sampler_pid = s, pid
  ctx.sampler_sync = bench.spawn(sync_every_second, ctx)
  local ceiling, shown = ceiling_of(ctx.plan, cell)
  if ceiling then ctx.watch = bench.spawn(watch_ceiling, ctx, s, process, ceiling, shown, interval) end
end

local function start_scraper(ctx, srv)
  local m = (ctx.plan.sampling or {}).metrics
  if not m or not srv.base_url then return end
  local interval = type(m) == "number" and m or ((ctx.plan.sampling or {}).memory or 1)
  ctx.scraper = bench.spawn(scrape_metrics, ctx, srv.base_url, math.max(0.01, interval))
end

---------------------------------------------------------------------------
-- Servers
---------------------------------------------------------------------------

local function start_server(ctx, cell)
  local s = cell.server
  -- server logs beside the results: server-<cell>.log
  local log = s.log or string.format("%s/server-%s.log", ctx.run.dir, (cell.id:gsub("[^%w%._-]", "_")))
  ctx.server_log = log
  local b, err = backends.get(s.backend)
  if not b then return nil, err end
  local srv, why, exit = b.start{model = s.model, args = s.args, env = {set = s.env, unset = s.unset_env},
                           port = s.port, ready_timeout = s.ready_timeout, log = log, binary = s.binary,
                           base_url = s.base_url, dialect = s.dialect, extra = s.extra, name = s.name,
                           -- sample from the spawn on, so the load is in the memory series
                           on_spawn = function(pid, process) start_monitors(ctx, cell, pid, process) end}
  if not srv then return nil, why, exit end
  -- lmstudio and external spawn nothing: sample what is known (extra.pid, else the system)
  start_monitors(ctx, cell, srv.pid, nil)
  start_scraper(ctx, srv)
  return srv
end

-- write the samples of a series not written yet, each attributed to the
-- cell and phase the run was in at its time
local function write_samples(ctx, series)
  local list = {}
  local last = ctx.samples_t or -1
  for _, x in ipairs(series.samples or {}) do
    if x.t_ns and x.t_ns > last then
      local m = mark_at(ctx.marks, x.t_ns) or ctx.marks[1] or {}
      x.cell = x.cell or m.cell or ctx.cell_id
      x.phase = x.phase or m.phase or "idle"
      list[#list + 1] = x
      ctx.samples_t = x.t_ns
    end
  end
  if #list > 0 then ctx.run:samples(list) end
end

-- the samples taken since the last call, into samples.jsonl: every second
-- while a server runs and at each cell's end, so samples reach the file as
-- they come and a crash loses at most the last second
local function sync_samples(ctx)
  local s = ctx.sampler
  if not s then return end
  local ok, series = pcall(s.series, s, ctx.samples_t or nil)
  if ok and type(series) == "table" then write_samples(ctx, series) end
end

function sync_every_second(ctx)
  while true do
    clock.sleep(1)
    sync_samples(ctx)
  end
end

-- stop the sampler (at a server stop or the end) and write the rest
local function flush_samples(ctx)
  local s = ctx.sampler
  ctx.sampler, ctx.sampler_pid = nil, nil
  cancel_task(ctx.watch)
  cancel_task(ctx.sampler_sync)
  ctx.watch, ctx.sampler_sync = nil, nil
  if not s then return nil end
  local ok, res = pcall(s.stop, s)
  if not ok or type(res) ~= "table" then return nil end
  write_samples(ctx, res)
  return res.peak, res
end

-- The sampler stops first: its last sample (taken as it stops) then still
-- sees the server at full size, which matters when a cell is shorter than
-- the sampling interval.
local function stop_server(ctx)
  cancel_task(ctx.scraper)
  ctx.scraper = nil
  local peak, series = flush_samples(ctx)
  local srv = ctx.server
  ctx.server, ctx.server_key = nil, nil
  if srv then pcall(srv.stop, srv) end
  return peak, series
end

-- why the server ended, from its exit information only (never its output):
-- proc.classify_exit's "oom" (with evidence of an OOM kill) and "crashed"
-- (any other signal benchrun did not send) are cell statuses of their own;
-- an exit with a code, or a stop by benchrun, is "failed". Returns the
-- status and the classification ({status, signal_name, code, evidence, reason}).
local function death_status(info)
  local c = require("bench.proc").classify_exit(info)
  local status = (c.status == "oom" or c.status == "crashed") and c.status or "failed"
  return status, c
end

local function server_alive(srv)
  if not srv then return false end
  local ok, r = pcall(srv.alive, srv)
  return ok and r ~= false
end

---------------------------------------------------------------------------
-- Workload of a cell
---------------------------------------------------------------------------

local function cell_workload(ctx, cell)
  local workload = require("bench.workload")
  local plan = ctx.plan
  local spec = {}
  for k, v in pairs(plan.workload or {prompts = "seed"}) do spec[k] = v end
  if spec.prompts == nil and spec.file == nil and spec.synthetic == nil then spec.prompts = "seed" end
  if spec.file then spec.prompts, spec.file = spec.file, nil end
  if type(spec.prompts) == "table" then
    -- a prompt's system text becomes the chat's first message
    local list = {}
    for i, p in ipairs(spec.prompts) do
      if p.system and p.prompt and not p.messages then
        list[i] = {name = p.name, max_tokens = p.max_tokens,
                   messages = {{role = "system", content = p.system}, {role = "user", content = p.prompt}}}
      else
        list[i] = p
      end
    end
    spec.prompts = list
  end
  local w
  if cell.mix then
    w = workload.mix(cell.mix)
  else
    if cell.prompt and type(spec.prompts) == "table" then
      local keep = {}
      for _, p in ipairs(spec.prompts) do if p.name == cell.prompt then keep[#keep + 1] = p end end
      spec.prompts = keep
    end
    w = workload.from(spec)
  end
  -- count of distinct prompts: a single-user cell sends each once per repeat
  local n = w.size
  if cell.prompt and spec.prompts == "seed" then
    local list = workload.seed_prompts()
    for _, p in ipairs(list) do if p.name == cell.prompt then w = workload.list({p}) n = 1 end end
  end
  local over = {}
  if cell.max_tokens then over.max_tokens = cell.max_tokens end
  if spec.temperature then over.extra = {temperature = spec.temperature} end
  if next(over) then w = w:with(over) end
  if cell.max_tokens_cap then
    local cap, base = cell.max_tokens_cap, w
    w = workload.new("capped", function(i)
      local r = base:next(i)
      local out = {}
      for k, v in pairs(r) do out[k] = v end
      if (out.max_tokens or cap + 1) > cap then
        out.requested_max_tokens = out.max_tokens
        out.max_tokens = cap
      end
      return out
    end, {size = base.size})
  end
  return w, n
end

---------------------------------------------------------------------------
-- One cell
---------------------------------------------------------------------------

-- The cell's summary, built as its records arrive (bench.summary's
-- accumulator: memory that does not grow with the run's length); a plan's
-- slo the summary cannot use is said in it, not raised.
local function new_summary(slo)
  local summary = require("bench.summary")
  local ok, acc = pcall(summary.accumulator, {slo = slo})
  if ok then return acc end
  local plain = summary.accumulator{}
  plain.slo_error = tostring(acc)
  return plain
end

local function summarize(acc, wall_s)
  local s = acc:result(wall_s)
  if acc.slo_error then s.error = acc.slo_error end
  return s
end

-- the sampler's peak (of a server that stopped after this cell) into the
-- cell: the server's memory is its host memory plus its GPU memory (the
-- peak of their sum per sample); gpu_memory_source says where the GPU part
-- came from ("nvml-process": the driver's figures for the server's own
-- processes; "nvml-device": the devices' whole used memory, other processes
-- included, where the driver has no per-process figures: gpu_memory_note
-- says why). A server sampled system-wide (no pid) has only the devices'.
local function set_peaks(res, peak, series)
  if type(peak) ~= "table" then return end
  local s = res.server
  s.peak_rss_bytes = peak.rss or peak.real
  s.peak_memory_bytes = peak.server_mem
  s.peak_gpu_bytes = peak.server_gpu or (not peak.server_mem and peak.gpu_used) or nil
  s.gpu_memory_source = peak.gpu_source
    or (s.peak_gpu_bytes and (mem.real_kind == "footprint" and "iokit-device" or "nvml-device")) or nil
  s.gpu_memory_note = s.gpu_memory_source == "nvml-device" and type(series) == "table" and series.gpu_note or nil
  s.gpu_device_peak_bytes = peak.gpu_used
  s.sys_used_peak_bytes = peak.sys_used
end

-- the ceiling hit during this cell -> status "aborted" and why
local function take_ceiling_hit(ctx, out)
  local hit = ctx.ceiling_hit
  if not hit then return false end
  ctx.ceiling_hit = nil
  -- the results store knows ok, oom, failed and skipped: an abort is a
  -- failed cell that says why (and does not fail the run: the limit worked)
  out.status = "failed"
  out.aborted = "memory ceiling"
  out.error = string.format("aborted: memory ceiling: the server reached %s, above safety.memory_ceiling %s%s; it was stopped",
    units.format_size(hit.peak), units.format_size(hit.ceiling),
    hit.shown ~= hit.ceiling and string.format(" (%s scaled like the simulated models)", units.format_size(hit.shown)) or "")
  out.safety = {memory_ceiling_bytes = hit.shown, measured_ceiling_bytes = hit.ceiling, peak_bytes = hit.peak}
  return true
end

local LOST_CONNECTION   -- below

-- run_cell(ctx, cell, i) -> the cell table written to the results store
local function run_cell(ctx, cell, i)
  local plan, run = ctx.plan, ctx.run
  local out = {id = cell.id, labels = cell.labels or labels_of(plan, cell), status = "ok", server = {},
               started_ns = now_ns(), outputs = {}, repeats = cell["repeat"], warmups = cell.warmup}
  ctx.cell_id = cell.id

  -- sysctl first: a model loads under the limits the cell asks for
  -- exactly its values; the others this run changed are back at their originals
  local in_effect, sysctl_why = ctx.sysctl:apply(cell.sysctl)
  if not in_effect then
    out.status, out.error = "failed", sysctl_why
    out.ended_ns = now_ns()
    return out
  end
  if next(in_effect) then out.sysctl = in_effect end
  if next(cell.sysctl or {}) and ctx.dry then out.sysctl_simulated = true end

  -- server: restart when its configuration changed or the cell asks for it
  local key = estimate.server_key(cell)
  if ctx.server and (ctx.server_key ~= key or cell.restart or not server_alive(ctx.server)) then
    stop_server(ctx)
  end
  local srv = ctx.server
  if not srv then
    mark(ctx, "load", cell.id)
    local t0 = now_ns()
    local why, exit
    srv, why, exit = start_server(ctx, cell)
    if not srv then
      -- the adapter's message: one line of why, then the server's last output
      local text = tostring(why)
      local head, rest = text:match("^([^\n]*)\n(.*)$")
      head = (head or text):gsub(";? ?last output:%s*$", "")
      out.status, out.error = "failed", "the server did not start: " .. head
      if rest and rest ~= "" then out.server.last_output = rest end
      -- a start that failed because the process died by a signal: an OOM
      -- kill (with evidence) or a crash, from the exit info, never the text
      local status = death_status(exit)
      out.server.exit = exit
      if exit and status ~= "failed" then
        out.status = status
        -- (head says how it ended: the exit's reason, with its evidence)
        out.error = (status == "oom" and "killed while loading (out of memory): " or "crashed while loading: ") .. head
      end
      take_ceiling_hit(ctx, out)
      out.server.load_time_s = (now_ns() - t0) / 1e9
      out.ended_ns = now_ns()
      return out
    end
    ctx.server, ctx.server_key = srv, key
    ctx.server_load_time = srv.load_time_s or (now_ns() - t0) / 1e9
    ctx.server_load_resolution = srv.load_time_s and srv.load_time_resolution_s
    ctx.server_started_cell = cell.id
    out.server.restarted = true
  end
  out.server.load_time_s = ctx.server_load_time
  out.server.load_time_resolution_s = ctx.server_load_resolution
  out.server.started_by = ctx.server_started_cell
  local vok, v = pcall(srv.version, srv)
  if vok then out.server.version = v end
  out.server.model_bytes = cell.model and cell.model.size
  out.note = cell.note
  out.server.model_id = srv.model or cell.server.model
  out.server.env_delivery = srv.env_delivery

  local openai = require("bench.openai")
  local load = require("bench.load")
  local s = cell.server
  -- server.extra is the backend's (docs/servers.md), never request fields
  local client = openai.client{base_url = srv.base_url, dialect = srv.dialect or s.dialect,
                               model = srv.model or s.model, api_key_env = s.api_key_env,
                               timeout = M.cell_timeout(plan, cell)}
  local w, nprompts = cell_workload(ctx, cell)
  local conc = cell.concurrency or 1
  local requests = cell.requests
  if not requests and not cell.duration then
    -- one user: every prompt once per repeat; N users: 4 rounds of N
    if conc == 1 then requests = cell.prompt and 1 or (nprompts or 5)
    else requests = conc * 4 end
  end
  out.requests_per_repeat = requests

  -- as many open files as the cell's connections need, or a clear no
  local fd_ok, fd_why = M.ensure_fds(cell)
  if not fd_ok then
    out.status, out.error = "failed", fd_why
    out.ended_ns = now_ns()
    return out
  end

  -- the load stops when the server is gone: its process exited, or a
  -- refused connection and a probe say nobody listens any more
  local gone
  local function server_gone()
    if not gone and srv.proc and not server_alive(srv) then gone = "the server exited" end
    return gone
  end

  local cell_summary = new_summary(plan.slo)
  local cache_state = require("bench.cache").begin_cell(plan, cell, srv)   -- prefix caching (bench.cache)
  local lost_connection = false
  local function on_record(r, rep, warm)
    r.cell = cell.id
    r["repeat"] = rep
    if warm then r.warmup = true end
    run:record(cell.id, r)
    if r.error == "refused" and not gone and not server_alive(srv) then gone = "the server stopped listening" end
    if LOST_CONNECTION[r.error] then lost_connection = true end
    if not warm then
      cell_summary:add(r)
      cache_state.acc:add(r)
      if r.prompt == nil and r.name then r.prompt = r.name end
      local pname = r.prompt or r.name
      if pname and r.text and out.outputs[pname] == nil and (r.ok ~= false and not r.error) then out.outputs[pname] = r.text end
      ctx.progress:request(r)
    end
  end

  -- closed loop (N users) or, with a rate, open loop (arrivals at their
  -- scheduled times whatever the server does; latency also from those times)
  local function send(rep)
    local args = {client = client, requests = requests, duration = cell.duration, workload = w,
                  on_record = function(r) on_record(r, rep, false) end, stop = server_gone}
    if cell.rate then
      args.rate, args.arrival = cell.rate, cell.arrival or "poisson"
      args.seed = rep
      if cell.concurrency_set then args.max_concurrency = conc end
      return load.open(args)
    end
    args.concurrency = conc
    return load.closed(args)
  end

  -- warm-ups, then the repeats
  local wall_total = 0
  local died
  if (cell.warmup or 0) > 0 then
    mark(ctx, "warmup")
    load.closed{client = client, concurrency = 1, requests = cell.warmup, workload = w,
                on_record = function(r) on_record(r, 0, true) end, stop = server_gone}
  end
  for rep = 1, cell["repeat"] or 1 do
    if not server_alive(srv) then died = true break end
    mark(ctx, "run")
    local t0 = now_ns()
    local ok, res = pcall(send, rep)
    wall_total = wall_total + (now_ns() - t0) / 1e9
    if not ok then
      if bench.is_interrupt(res) then error(res, 0) end
      out.status, out.error = "failed", tostring(res)
      break
    end
    if gone or not server_alive(srv) then died = true break end
  end
  mark(ctx, "idle")
  -- a server that died as the last requests ended may not be reaped yet:
  -- requests that lost their connection give it a moment to show it
  if not died and lost_connection and srv.proc then pcall(srv.proc.wait, srv.proc, 0.5) end
  if died or not server_alive(srv) then
    local info = srv.exit_info and srv:exit_info() or nil
    local status, c = death_status(info)
    out.status = status
    out.error = status == "oom" and ("the server was killed for lack of memory during the cell: " .. tostring(c.evidence))
      or status == "crashed" and ("the server crashed during the cell: " .. c.reason)
      or ("the server exited during the cell: " .. c.reason)
    out.server.exit = info
    take_ceiling_hit(ctx, out)
    set_peaks(out, stop_server(ctx))
  end
  out.summary = summarize(cell_summary, wall_total)
  if not died then out.cache = require("bench.cache").end_cell(cache_state, srv) end
  if not died and not gone and out.status == "ok" and server_alive(srv) then   -- quality by logprobs
    out.quality_logprobs = require("bench.logprobs").run_cell(plan, client, w, nprompts, cell.max_tokens)
  end
  if gone then out.stopped = gone end
  -- a cell is what its requests were (bench.summary.verdict): none
  -- succeeded is failed, errors above max_error_rate degraded
  if out.status == "ok" then
    local st, why = require("bench.summary").verdict(out.summary, {max_error_rate = M.max_error_rate(plan, cell)})
    out.status = st
    if st ~= "ok" then out.error = why elseif why then out.warning = why end
  end
  out.ended_ns = now_ns()
  return out
end

-- errors of a request whose connection went away under it
LOST_CONNECTION = {reset = true, refused = true, truncated = true}

-- What the server's log says about the environment variables the cell
-- set: up to 3 lines per name that mention it (an engine that reads a
-- setting often says so; one that never names it may ignore it). ->
-- {NAME = {lines}}, {names never mentioned}, or nil when there is no log.
local LOG_LINES_PER_NAME, LOG_LINE_MAX = 3, 200
function M.env_in_log(path, env)
  local names = {}
  for k in pairs(env or {}) do names[#names + 1] = k end
  if #names == 0 or not path then return nil end
  table.sort(names)
  local f = io.open(path, "r")
  if not f then return nil end
  local seen = {}
  for line in f:lines() do
    for _, n in ipairs(names) do
      local l = seen[n] or {}
      if #l < LOG_LINES_PER_NAME and line:find(n, 1, true) then
        l[#l + 1] = line:sub(1, LOG_LINE_MAX)
        seen[n] = l
      end
    end
  end
  f:close()
  local missing = {}
  for _, n in ipairs(names) do if not seen[n] then missing[#missing + 1] = n end end
  return seen, missing
end

-- The request limits of a cell: the plan's timeout:, then its server's,
-- then the cell's (each a mapping of connect, first_byte, idle, total,
-- min_tps); nil fields keep bench.openai's defaults.
function M.cell_timeout(plan, cell)
  local t
  for _, over in ipairs{plan.timeout or false, (cell.real_server or cell.server or {}).timeout or false,
                        cell.timeout or false} do
    if type(over) == "table" then
      t = t or {}
      for k, v in pairs(over) do t[k] = v end
    end
  end
  return t
end

-- The share of failed measured requests a cell may have and still be ok.
function M.max_error_rate(plan, cell)
  if cell.max_error_rate ~= nil then return cell.max_error_rate end
  return plan.max_error_rate or 0
end

-- Open files: a connection each, plus what the runner and the sampler hold.
local FD_RESERVE = 64

-- ensure_fds(cell) -> true, note? | nil, why: raise the soft open-file limit
-- to what the cell's concurrency needs (an open loop without a cap: as far
-- as the hard limit allows), and say so when it cannot be raised enough.
function M.ensure_fds(cell)
  local conc = cell.concurrency or 1
  local need = conc + FD_RESERVE
  local capped = not cell.rate or cell.concurrency_set
  local ok, got = pcall(http.max_fds, capped and need or nil)
  if not ok then return nil, "cannot read or raise the open-file limit: " .. tostring(got) end
  if capped and got < need then
    return nil, string.format("concurrency %d needs about %d open files, but the limit is %d and cannot be raised " ..
      "further (hard limit); raise it (ulimit -n %d, or launchctl limit maxfiles on macOS) or lower the concurrency",
      conc, need, got, need)
  end
  return true
end

---------------------------------------------------------------------------
-- The plan
---------------------------------------------------------------------------

local function load_phase_script(plan)
  if not plan.script_path then return {} end
  local chunk, err = loadfile(plan.script_path)
  if not chunk then error("phase script: " .. err, 0) end
  local s = chunk()
  if type(s) ~= "table" then error(plan.script_path .. ": expected the phase script to return a table", 0) end
  return s
end

local function env_of(plan, opts)
  local env = {dry_run = opts.dry_run or false, argv = opts.argv, sets = opts.sets, only = opts.only,
               shard = opts.shard_info}   -- bench.shard: which shard of which run (bench.merge reads it)
  local ok, info = pcall(sys.info)
  if ok then env.host = info end
  local models, servers = {}, {}
  for _, c in ipairs(plan.cells) do
    if c.model and c.model.name then models[c.model.name] = c.model end
    local s = c.real_server or c.server
    -- how a cell's env reaches the engine, where the backend says (lmstudio)
    local b = backends.get(s.backend)
    servers[s.name or s.backend] = {backend = s.backend, model = s.model, args = s.args, env = s.env,
                                    env_delivery = b and b.env_delivery or nil}
  end
  env.models, env.servers = models, servers
  if plan.dry then
    env.dry_run_figures = plan.dry_run or {}
    env.dry_run_max_tokens_cap = (plan.dry_run or {}).max_tokens
  end
  return env
end

-- runner.run(plan, opts) -> exit status. opts: dry_run, resume (a results
-- folder), out (parent folder), quiet, json, argv.
function M.run(plan, opts)
  opts = opts or {}
  local results = require("bench.results")
  local dryrun = require("bench.dryrun")
  if opts.dry_run then
    dryrun.apply(plan)
  else
    -- a plan on the simulator (the demo) takes its figures from dry_run:
    for _, c in ipairs(plan.cells) do
      if c.server.backend == "sim" and #(c.server.args or {}) == 0 then
        c.real_server = c.server
        c.server = dryrun.server(plan, c)
        c.max_tokens_cap = plan.dry_run and plan.dry_run.max_tokens
      end
    end
  end
  local phase_script = load_phase_script(plan)
  -- a prompt's check: runs whatever the phase script (unless it brings its own)
  local checks = phase_script.checks
  if checks == nil then checks = require("phases.common").checks end
  if type(checks) == "function" then checks = checks(plan) end

  local run, why
  if opts.resume then
    run, why = results.open(opts.resume, {checks = checks, expect = {plan_text = plan.text, sets = opts.sets,
                                                                     only = opts.only, dry_run = opts.dry_run}})
    if not run then io.stderr:write("benchrun: --resume ", opts.resume, ": ", tostring(why), "\n") return 2 end
  else
    run, why = results.create{root = opts.out or plan.output or "results", name = plan.name, dir = opts.dir,
                              plan = plan.doc, plan_text = plan.text, env = env_of(plan, opts),
                              phase = phase_script.phase, checks = checks, total_cells = #plan.cells}
    if not run then io.stderr:write("benchrun: cannot create the results folder: ", tostring(why), "\n") return 1 end
  end

  local remaining = {}
  for _, c in ipairs(plan.cells) do
    if not (opts.resume and run:done(c.id)) then
      remaining[#remaining + 1] = c
    end
  end
  local progress = new_progress(opts, #remaining)
  if opts.resume then
    progress:log(string.format("resuming %s: %d of %d cells left%s", run.dir, #remaining, #plan.cells,
                               opts.dry_run and " (a dry run, as it started)" or ""))
  end
  local ceilings = plan.safety and plan.safety.max_sysctl or {}
  local ctx = {plan = plan, run = run, dry = opts.dry_run or false, progress = progress,
               sysctl = new_sysctl(opts.dry_run, ceilings), phase_script = phase_script, opts = opts,
               marks = {}, phase = "idle"}

  M.assign_labels(plan, plan.cells, phase_script, ctx)
  local interrupted, fatal, stopped
  local status_count = {}
  -- bench.xpcall_top: an interruption (the value bench.interrupt) stops
  -- here however deep a pcall tried to swallow it, and the clean-up below runs
  local ok, err = bench.xpcall_top(function()
    if phase_script.prepare then phase_script.prepare(ctx) end
    for i, cell in ipairs(remaining) do
      progress:cell_start(i, cell.id, {requests = estimate.cell_requests(plan, cell), labels = cell.axes})
      local res = run_cell(ctx, cell, i)
      -- the next cell restarts the server: its samples belong to this one
      local nxt = remaining[i + 1]
      if not nxt or not ctx.server or estimate.server_key(nxt) ~= ctx.server_key or nxt.restart then
        set_peaks(res, stop_server(ctx))
      else
        sync_samples(ctx)
      end
      if ctx.dry then
        res.dry_run = {figures = cell.server.figures, real_backend = cell.server.real_backend,
                       max_tokens_cap = cell.max_tokens_cap}
      end
      -- the plan's own variables (a dry run's simulator gets helpers of its own)
      local env = (cell.real_server or cell.server or {}).env
      if env and next(env) and res.server and ctx.server_log then
        local seen, missing = M.env_in_log(ctx.server_log, env)
        if seen then res.server.env_log, res.server.env_not_logged = seen, missing end
      end
      if phase_script.after_cell then pcall(phase_script.after_cell, ctx, cell, res) end
      local st = res.aborted and "aborted" or res.status
      status_count[st] = (status_count[st] or 0) + 1
      run:cell(res)
      progress:cell_end(cell.id, res.status, res)
      if res.status ~= "ok" and res.error then progress:log(string.format("cell %s: %s: %s", cell.id, res.status, res.error)) end
      if res.status == "oom" and plan.safety and plan.safety.stop_on_oom and i < #remaining then
        -- the cells left are not recorded: --resume runs them
        stopped = #remaining - i
        progress:log(string.format("stopping after the OOM kill in %s (safety.stop_on_oom): %d cell%s not run; " ..
          "%s runs them", cell.id, stopped, stopped == 1 and "" or "s",
          results.resume_command((opts.argv and opts.argv[1]) or "PLAN.yaml", run.dir, opts)))
        break
      end
    end
  end, function(e)
    if run.write_error then return run.write_error end   -- a full disk: the message says it all
    return debug.traceback(tostring(e), 2)
  end)
  if not ok then
    if bench.is_interrupt(err) then interrupted = true else fatal = err end
  end
  -- whatever happened: stop the server, restore the machine's settings
  stop_server(ctx)
  local rok, rwhy = ctx.sysctl:restore()
  if not rok then
    io.stderr:write("benchrun: WARNING: sysctl values NOT restored: ", tostring(rwhy),
                    "\n          bench.sys keeps their originals in its journal; the next benchrun retries\n")
  end
  pcall(run.flush, run)

  if interrupted then
    io.stderr:write(string.format("benchrun: interrupted; finished cells are kept in %s\n" ..
                                  "          continue with: %s\n", run.dir,
                                  results.resume_command((opts.argv and opts.argv[1]) or "PLAN.yaml", run.dir, opts)))
    pcall(run.close, run)
    return 130
  end
  if fatal then
    io.stderr:write("benchrun: ", tostring(fatal), "\n")
    pcall(run.close, run)
    return 1
  end

  local notes = {sysctl = ctx.sysctl.log, dry_run = ctx.dry or nil}
  local lines = {}
  if phase_script.finish then
    local fok, n, l = pcall(phase_script.finish, ctx, run:cells())
    if fok then
      if type(n) == "table" then for k, v in pairs(n) do notes[k] = v end end
      if type(l) == "table" then lines = l end
    else
      io.stderr:write("benchrun: phase script finish: ", tostring(n), "\n")
    end
  end
  local report_path, ferr = run:finish{phase = phase_script.phase, notes = notes}
  if not report_path then io.stderr:write("benchrun: ", tostring(ferr), "\n") return 1 end
  pcall(run.close, run)
  if not opts.quiet and not opts.json then
    for _, l in ipairs(lines) do io.stdout:write(l, "\n") end
  end
  progress:finish(report_path)
  if opts.quiet and report_path then io.stdout:write(report_path, "\n") end
  local bad = 0
  for st, n in pairs(status_count) do if st ~= "ok" and st ~= "oom" and st ~= "aborted" then bad = bad + n end end
  -- an OOM kill and an abort by the memory ceiling are results; cells left
  -- out by stop_on_oom mean the plan did not finish
  -- a setting left changed fails the run, whatever the cells did
  return (bad > 0 or stopped or not rok) and 1 or 0
end

M.new_sysctl = new_sysctl
M.run_cell = run_cell
M.cell_workload = cell_workload
return M
