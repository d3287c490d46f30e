-- bench.monitor: what watches a running server while the runner measures
-- it: the marks (which cell and phase the run is in), the memory sampler
-- (a thread of bench.mem), the memory ceiling watch (safety.memory_ceiling),
-- the /metrics scraper (sampling.metrics) and samples.jsonl. A monitor lives
-- as long as a server (which may serve several cells): `start` when the
-- server spawns, `stop` when it stops; samples reach the file every second
-- and at each cell's end, so a crash loses at most the last second.
local clock = require("bench.clock")
local mem = require("bench.mem")
local http = require("bench.http")
local units = require("bench.units")

local M = {}

local Monitor = {}
Monitor.__index = Monitor

-- M.new{plan=, run=, progress=} -> monitor (nothing started yet)
function M.new(opts)
  return setmetatable({plan = opts.plan, run = opts.run, progress = opts.progress,
                       marks = {}, phase = "idle"}, Monitor)
end

-- where the run is: the cell and its phase (load, warmup, run, idle), for
-- the samples of the sampler thread (attributed at the end by time) and of
-- the scraper (labelled as they come)
function Monitor:mark(phase, cell_id)
  -- a sample at the edge, before and after it: a phase shorter than the
  -- sampling interval (a cell of a few short requests) still has its own
  -- samples, so its own peak
  if self.sampler then pcall(self.sampler.sample_now, self.sampler) end
  self.phase = phase
  if cell_id then self.cell_id = cell_id end
  self.marks[#self.marks + 1] = {t = clock.now(), phase = phase, cell = self.cell_id}
  if self.sampler then pcall(self.sampler.sample_now, self.sampler) end
end

local function mark_at(marks, t)
  local m
  for _, x in ipairs(marks) do
    if t >= x.t then m = x else break end
  end
  return m
end
M.mark_at = mark_at

-- monitor.write_new(holder, run, marks, series, before): the samples of a
-- sampler's series newer than holder.samples_t into the run's
-- samples.jsonl, each attributed to the cell and phase of the mark at its
-- time; `before` (a mark, or nil) stands for the time before the first
-- mark. The memory sampler's samples and bench.powerwatch's go through it.
function M.write_new(holder, run, marks, series, before)
  local list = {}
  for _, x in ipairs(series.samples or {}) do
    if x.t_ns and (not holder.samples_t or x.t_ns > holder.samples_t) then
      local m = mark_at(marks, x.t_ns) or before or {}
      x.cell = x.cell or m.cell
      x.phase = x.phase or m.phase or "idle"
      list[#list + 1] = x
      holder.samples_t = x.t_ns
    end
  end
  if #list > 0 then run:samples(list) end
end

-- monitor.sync_every_second(obj): a task's body that calls obj:sync() each
-- second, so samples reach samples.jsonl while a long cell runs
function M.sync_every_second(obj)
  while true do
    clock.sleep(1)
    obj:sync()
  end
end

local function cancel_task(t)
  if t and t:status() ~= "done" and t:status() ~= "failed" and t:status() ~= "cancelled" then pcall(t.cancel, t) end
end

-- The ceiling in the units the sampler measures: a server of the simulator
-- (a dry run, or a plan on backend sim) touches its model's size times
-- memory_scale, so the ceiling is scaled alike.
local function ceiling_of(the_plan, cell)
  local c = the_plan.safety and the_plan.safety.memory_ceiling
  if not c then return nil end
  local f = cell.server.figures
  if f and f.memory_scale then return math.floor(c * f.memory_scale), c end
  return c, c
end

-- safety.memory_ceiling: the server's process tree (or, for a server that is
-- not our child, the system's memory in use) above the ceiling stops the
-- server; the cell is recorded as aborted.
local function watch_ceiling(self, sampler, pid, process, ceiling, shown, interval)
  while true do
    clock.sleep(interval)
    local pk = sampler:peak() or {}
    local v = pk.rss or pk.real
    if not pid then v = pk.sys_used end
    if v and v > ceiling then
      self.ceiling_hit = {peak = v, ceiling = ceiling, shown = shown}
      self.progress:log(string.format("cell %s: memory %s above safety.memory_ceiling %s%s: stopping the server",
        tostring(self.cell_id), units.format_size(v), units.format_size(ceiling),
        shown ~= ceiling and string.format(" (%s scaled like the simulated models)", units.format_size(shown)) or ""))
      local target = process or self.server
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
local function scrape_metrics(self, base_url, interval)
  local url = base_url .. "/metrics"
  local got = 0
  while true do
    local r = http.request{url = url, timeout = math.max(1, interval)}
    local t = clock.now()
    if r.status == 200 and r.body then
      local vals, n = M.parse_metrics(r.body)
      if n > 0 then
        vals.type, vals.t_ns, vals.cell, vals.phase = "metrics", t, self.cell_id, self.phase
        self.run:sample(vals)
        got = got + 1
      end
    elseif got == 0 then
      self.progress:log(string.format("sampling.metrics: %s answered %s; not scraping this server", url,
        r.error and (r.error .. (r.error_detail and (": " .. r.error_detail) or "")) or ("HTTP " .. tostring(r.status))))
      return
    end
    clock.sleep(interval)
  end
end

-- the samples taken since the last call, into samples.jsonl
function Monitor:sync()
  local s = self.sampler
  if not s then return end
  local ok, series = pcall(s.series, s, self.samples_t or nil)
  -- before the first mark: the first cell (its server's start and load)
  if ok and type(series) == "table" then
    M.write_new(self, self.run, self.marks, series, self.marks[1] or {cell = self.cell_id})
  end
end

-- monitor:start(cell, {pid=, process=, server=, base_url=}): the memory
-- sampler and the ceiling watch of the server (once: pid nil samples the
-- system only, as for LM Studio's server, which is not our child), and,
-- given the server's base_url, the /metrics scraper (once).
function Monitor:start(cell, opts)
  if opts.server then self.server = opts.server end
  if not self.sampler then
    local sp = self.plan.sampling or {}
    local interval = sp.memory or 0.1
    local ok, s = pcall(mem.sampler, {pid = opts.pid, interval = interval, gpu = sp.gpu ~= false})
    if ok and s then ok = pcall(s.start, s) end
    if not ok or not s then
      self.progress:log(string.format("cell %s: no memory sampling: %s", cell.id, tostring(s)))
    else
      self.sampler = s
      self.sampler_sync = bench.spawn(M.sync_every_second, self)
      local ceiling, shown = ceiling_of(self.plan, cell)
      -- (the watch keeps its own sampler and process: a task cancelled as
      -- the server stops may run once more)
      if ceiling then self.watch = bench.spawn(watch_ceiling, self, s, opts.pid, opts.process, ceiling, shown, interval) end
    end
  end
  local m = (self.plan.sampling or {}).metrics
  if m and opts.base_url and not self.scraper then
    local interval = type(m) == "number" and m or ((self.plan.sampling or {}).memory or 1)
    self.scraper = bench.spawn(scrape_metrics, self, opts.base_url, math.max(0.01, interval))
  end
end

-- monitor:stop() -> peak, series | nil: the scraper and the sampler stop
-- (the sampler's last sample, taken as it stops, still sees the server at
-- full size: call it before stopping the server) and the rest is written.
function Monitor:stop()
  cancel_task(self.scraper)
  cancel_task(self.watch)
  cancel_task(self.sampler_sync)
  self.scraper, self.watch, self.sampler_sync = nil, nil, nil
  local s = self.sampler
  self.sampler, self.server = nil, nil
  if not s then return nil end
  local ok, res = pcall(s.stop, s)
  if not ok or type(res) ~= "table" then return nil end
  M.write_new(self, self.run, self.marks, res, self.marks[1] or {cell = self.cell_id})
  return res.peak, res
end

-- monitor:take_ceiling_hit(out) -> whether the ceiling stopped the server
-- during this cell: then the cell record `out` becomes an abort that says why.
function Monitor:take_ceiling_hit(out)
  local hit = self.ceiling_hit
  if not hit then return false end
  self.ceiling_hit = nil
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

-- M.set_peaks(res, peak, series): the sampler's peak (of a server that
-- stopped after this cell) into the cell record: the server's memory is its
-- host memory plus its GPU memory (the peak of their sum per sample);
-- gpu_memory_source says where the GPU part came from ("nvml-process": the
-- driver's figures for the server's own processes; "nvml-device": the
-- devices' whole used memory, other processes included, where the driver
-- has no per-process figures: gpu_memory_note says why). A server sampled
-- system-wide (no pid) has only the devices'.
function M.set_peaks(res, peak, series)
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

return M
