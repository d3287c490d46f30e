-- bench.steady: run until the figures are steady instead of for a guessed
-- length (plans/README.md: requests: auto, duration: auto, warmup: auto).
--
-- A measured load stops sending once the 95% confidence interval of the
-- mean per-request decode rate is within ±ci of the mean (1.96 s / sqrt(n)
-- <= ci * mean), after at least `min` successful requests; `max` requests
-- bound it. A warm-up stops once a request's TTFT is no longer falling:
-- not more than `tolerance` below the one before it (at least 2, at most
-- warmup_max requests). Either records why it stopped.
local load = require("bench.load")

local steady = {}

steady.DEFAULTS = {metric = "decode_tps", ci = 0.02, min = 10, max = 1000, warmup_max = 10, tolerance = 0.1}

-- the plan's steady: over the defaults
function steady.options(o)
  local out = {}
  for k, v in pairs(steady.DEFAULTS) do out[k] = v end
  for k, v in pairs(o or {}) do out[k] = v end
  if out.max < out.min then out.max = out.min end
  return out
end

local Watch = {}
Watch.__index = Watch

-- steady.watch(opts) -> a watcher of a measured load: w:add(rec) for each
-- record, w:stop() -> a reason once steady, w:result() -> what it saw.
function steady.watch(opts)
  return setmetatable({o = steady.options(opts), n = 0, mean = 0, m2 = 0, seen = 0}, Watch)
end

function Watch:add(r)
  self.seen = self.seen + 1
  local v = r.ok ~= false and not r.error and r[self.o.metric]
  if type(v) ~= "number" or v ~= v then return end
  -- Welford's running mean and variance
  self.n = self.n + 1
  local d = v - self.mean
  self.mean = self.mean + d / self.n
  self.m2 = self.m2 + d * (v - self.mean)
end

-- the 95% interval's half-width relative to the mean (nil below 2 values)
function Watch:relative_ci()
  if self.n < 2 or self.mean <= 0 then return nil end
  local sd = math.sqrt(self.m2 / (self.n - 1))
  return 1.96 * sd / math.sqrt(self.n) / self.mean
end

function Watch:stop()
  if self.reason then return self.reason end
  local rel = self:relative_ci()
  if self.n >= self.o.min and rel and rel <= self.o.ci then
    self.reason = "stable"
    return self.reason
  end
  return nil
end

-- {stopped_because = "stable" | "max_requests", requests, measured, mean,
--  ci_relative, ci_target, min, max, metric, text}
function Watch:result()
  local rel = self:relative_ci()
  local why = self:stop() or "max_requests"
  local r = {stopped_because = why, requests = self.seen, measured = self.n, mean = self.n > 0 and self.mean or nil,
             ci_relative = rel, ci_target = self.o.ci, min = self.o.min, max = self.o.max, metric = self.o.metric}
  if why == "stable" then
    r.text = string.format("steady after %d requests: the 95%% interval of the mean %s is ±%.1f%% (target ±%.1f%%)",
      self.seen, self.o.metric, rel * 100, self.o.ci * 100)
  else
    r.text = string.format("not steady within %d requests: the 95%% interval of the mean %s is %s (target ±%.1f%%)",
      self.o.max, self.o.metric, rel and string.format("±%.1f%%", rel * 100) or "unknown", self.o.ci * 100)
  end
  return r
end

-- w:guard(gone) -> a load's stop function: gone()'s reason, else steady's
function Watch:guard(gone)
  return function() return gone() or self:stop() end
end

-- steady.of(plan_steady, cell) -> for a cell with requests/duration: auto,
-- {max (the load's bound), new() -> a watcher per repeat}; else nil
function steady.of(o, cell)
  if not cell.steady then return nil end
  local opts = steady.options(o)
  return {max = opts.max, new = function() return steady.watch(opts) end}
end

local Warm = {}
Warm.__index = Warm

-- steady.warmup(opts) -> a watcher of warm-up requests (one at a time):
-- w:add(rec), w:stop() -> "ttft_flat" once TTFT stopped falling,
-- w:result() -> {stopped_because, requests, ttft_ms = {...}, text}
function steady.warmup(opts)
  return setmetatable({o = steady.options(opts), ttft = {}}, Warm)
end

function Warm:add(r)
  self.ttft[#self.ttft + 1] = type(r.ttft_ms) == "number" and r.ttft_ms or false
end

function Warm:stop()
  local t = self.ttft
  local n = #t
  if n >= 2 and t[n] and t[n - 1] and t[n] >= (1 - self.o.tolerance) * t[n - 1] then return "ttft_flat" end
  return nil
end

function Warm:result()
  local why = self:stop() or "warmup_max"
  local list = {}
  for _, v in ipairs(self.ttft) do if v then list[#list + 1] = v end end
  return {stopped_because = why, requests = #self.ttft, ttft_ms = list,
          text = why == "ttft_flat"
            and string.format("warm after %d requests: TTFT stopped falling (within %.0f%% of the one before)",
                              #self.ttft, self.o.tolerance * 100)
            or string.format("TTFT still falling after %d warm-up requests (warmup_max)", #self.ttft)}
end

-- steady.warm_up(cell, plan_steady, args) -> the warm-up's result with
-- warmup: auto (nil otherwise): the cell's warm-up requests, one at a time,
-- through load.closed; args: client, workload, on_record, stop.
function steady.warm_up(cell, o, args)
  if cell.warmup_auto then
    local warm = steady.warmup(o)
    local record, gone = args.on_record, args.stop
    load.closed{client = args.client, concurrency = 1, requests = warm.o.warmup_max, workload = args.workload,
                on_record = function(r) warm:add(r) record(r) end,
                stop = function() return gone() or warm:stop() end, stop_reads_records = true}
    return warm:result()
  elseif (cell.warmup or 0) > 0 then
    load.closed{client = args.client, concurrency = 1, requests = cell.warmup, workload = args.workload,
                on_record = args.on_record, stop = args.stop}
  end
  return nil
end

return steady
