-- bench.powerwatch: the run's power sampler and each cell's energy (issue
-- 15), wired into the runner's cell loop by four calls:
--
--   pw = powerwatch.new{plan, progress, dry}   before the results folder
--                                              (env.power = pw:env())
--   pw:start(run, monitor)                     before the first cell
--   pw:before_cell(cell, out)                  server up, before warm-ups:
--                                              cooldown, then idle baseline
--   pw:window(t0, t1)                          each measured repeat
--   pw:after_cell(out)                         out.energy (bench.energy.cell)
--   pw:stop()                                  at the end: the rest written
--
-- One machine-wide sampler (bench.power) runs for the whole run; its
-- samples go to samples.jsonl (type "power") every second, each marked with
-- the cell and phase the monitor's marks say the run was in. A machine
-- with no source gets no sampler: its cells say "no power source".
local power = require("bench.power")
local energy = require("bench.energy")
local clock = require("bench.clock")
local monitor = require("bench.monitor")

local M = {}

local Watch = {}
Watch.__index = Watch

-- cooldown: the state "now" is that of the last PROBE_S seconds
local PROBE_S = 2

-- powerwatch.new{plan=, progress=, dry=} -> watch (its sampler made, not started)
function M.new(opts)
  local w = setmetatable({plan = opts.plan, progress = opts.progress, dry = opts.dry, windows = {}}, Watch)
  local set = energy.settings(opts.plan, nil, opts.dry)
  if not set.interval then
    w.off = "off (the plan's energy: false or sampling.power: false)"
    return w
  end
  w.interval = opts.dry and math.min(set.interval, 0.02) or set.interval
  local ok, s = pcall(power.sampler, {interval = w.interval})
  if not ok or not s then
    w.notes = {"no power sampler: " .. tostring(s)}
    return w
  end
  local sources, notes = s:sources()
  w.sources, w.notes = sources, notes
  w.counted = 0
  for _, src in ipairs(sources) do if src.counted then w.counted = w.counted + 1 end end
  if #sources > 0 then w.sampler = s end
  return w
end

-- what env.json says of the machine's power sources
function Watch:env()
  if self.off then return {off = self.off} end
  return {sources = self.sources or {}, notes = self.notes or {}, interval_s = self.interval}
end

-- the samples taken since the last call, into samples.jsonl, marked with
-- the cell and phase the run was in at their time
function Watch:sync(series)
  local s = self.sampler
  if not series then
    if not s or not self.run then return end
    local ok
    ok, series = pcall(s.series, s, self.samples_t)
    if not ok or type(series) ~= "table" then return end
  end
  -- before the first mark: no cell, idle (the baseline before the run)
  monitor.write_new(self, self.run, self.monitor and self.monitor.marks or {}, series, nil)
end

function Watch:start(run, mon)
  self.run, self.monitor = run, mon
  local s = self.sampler
  if not s then return end
  local ok, why = pcall(s.start, s)
  if not ok or not why then
    self.progress:log("no power sampling: " .. tostring(why))
    self.sampler = nil
    return
  end
  self.task = bench.spawn(monitor.sync_every_second, self)
end

-- wait until the sampler holds a sample at or past t (a window's end is
-- known then), at most two intervals
function Watch:settle(t)
  local s = self.sampler
  local deadline = clock.now() + (2 * self.interval + 0.05) * 1e9
  while clock.now() < deadline do
    local x = s:latest()
    if x and x.t_ns >= t then return end
    clock.sleep(self.interval / 2)
  end
end

-- the state of the last PROBE_S seconds, as energy.cooldown_check takes it
function Watch:probe_now()
  local t1 = clock.now()
  local win = self.sampler:window(t1 - PROBE_S * 1e9, t1)
  local known = (win.throttle_known_s or 0) > 0
  return {w = win.energy_j and win.avg_w or nil, throttled = known and win.throttled_s > 0 or nil,
          pressure = win.pressure}
end

-- cooldown (plan.cooldown), then the idle baseline (energy.idle seconds):
-- the server is up and nothing is sent. Both are recorded in out.
function Watch:before_cell(cell, out)
  self.windows = {}
  local s = self.sampler
  local set = energy.settings(self.plan, cell, self.dry)
  if not s then
    if set.cooldown then out.cooldown = {waited_s = 0, ready = true, note = "no power source: nothing to wait on"} end
    return
  end
  if set.cooldown then
    self.monitor:mark("cooldown")
    -- two fresh samples at least: a run's first cell has little else to go on
    self:settle(clock.now() + self.interval * 1e9)
    local t0 = clock.now()
    local r = energy.cooldown_wait(set.cooldown, self.idle_w, function()
      return (clock.now() - t0) / 1e9, self:probe_now()
    end, clock.sleep)
    out.cooldown = {waited_s = r.waited_s, ready = r.ready, note = r.note}
    if not r.ready then self.progress:log(string.format("cell %s: %s", cell.id, r.note)) end
  end
  if (set.idle_s or 0) > 0 then
    self.monitor:mark("baseline")
    local t0 = clock.now()
    clock.sleep(set.idle_s)
    local t1 = clock.now()
    self:settle(t1)
    local idle = energy.idle(s:window(t0, t1))
    if idle then self.idle_w = idle.w end
    self.idle = idle
  else
    self.idle = nil
  end
end

-- one measured repeat's times (warm-ups are not measured)
function Watch:window(t0, t1)
  if self.sampler then self.windows[#self.windows + 1] = {t0, t1} end
end

-- out.energy: the cell's figures over its measured windows
function Watch:after_cell(out)
  if self.off then return end
  local s = self.sampler
  local tokens = out.summary and out.summary.output_tokens_total
  if not s or #self.windows == 0 then
    out.energy = energy.cell(nil, {output_tokens = tokens})
    return
  end
  self:settle(self.windows[#self.windows][2])
  local list = {}
  for _, w in ipairs(self.windows) do list[#list + 1] = s:window(w[1], w[2]) end
  local win = energy.merge(list)
  local e = energy.cell(win, {output_tokens = tokens, idle = self.idle, sources = self.counted})
  e.window_s = win and win.window_s
  out.energy = e
  self.windows = {}
end

-- the sampler stops; the samples not yet written are
function Watch:stop()
  if self.task then pcall(self.task.cancel, self.task) self.task = nil end
  local s = self.sampler
  if not s then return end
  self.sampler = nil
  local ok, res = pcall(s.stop, s)
  if ok and type(res) == "table" and self.run then self:sync(res) end
end

return M
