-- bench.search: capacity search. A plan's `search:` turns each cell into a
-- search for the highest load (concurrent users, or requests per second)
-- at which the cell still meets the search's service level objectives
-- (plans/README.md, docs/reports.md):
--
--   1. the lowest load (min) is measured; if it misses, no load meets and
--      the search says so with that load's misses;
--   2. the load doubles until a level misses (or max is reached);
--   3. the interval between the highest level that met and the lowest that
--      missed is bisected until it is narrower than `precision` of the load
--      (for users: until they are next to each other).
--
-- Noise: a level whose figure lies within `noise` (default: precision) of an
-- objective's target is measured again, up to `repeat_near` more times, and
-- judged by the majority of its runs. Every measurement counts toward
-- `max_steps`; a search that runs out of steps says so and keeps what it
-- found. The measurement itself is the caller's (the runner measures a
-- level as it measures a cell): search.run(spec, measure) calls
-- measure(level, step) -> summary (bench.summary's, with slo judged),
-- stop_reason?; a stop reason (the server died) ends the search.
local search = {}

search.DEFAULTS = {method = "bisect", precision = 0.05, max_steps = 12, repeat_near = 2}

-- spec with its defaults: min, max, precision, noise, max_steps
function search.spec(s, cell)
  local out = {}
  for k, v in pairs(search.DEFAULTS) do out[k] = v end
  for k, v in pairs(s or {}) do out[k] = v end
  out.noise = out.noise or out.precision
  if out.over == "concurrency" then
    out.min = math.max(1, math.floor(out.min or 1))
    out.max = math.floor(out.max or math.max(out.min, (cell and cell.concurrency_set and cell.concurrency) or 256))
  else
    out.min = out.min or (cell and cell.rate) or 1
    out.max = out.max or out.min * 1024
  end
  if out.max < out.min then out.max = out.min end
  return out
end

-- objectives an SLO judgment missed, in key order: {{key, target, value}}
local function misses(summary)
  local list = {}
  for k, o in pairs(summary.slo or {}) do
    if not o.met then list[#list + 1] = {key = k, target = o.target, value = o.value} end
  end
  table.sort(list, function(a, b) return a.key < b.key end)
  return list
end

-- whether noise could turn a level's judgment: one objective lies within
-- `noise` of its target (either side) and none misses by more than that
-- (a clear miss fails the level whatever the close one does)
local function near(summary, noise)
  local close = false
  for _, o in pairs(summary.slo or {}) do
    if o.value and o.target and o.target > 0 then
      local within = math.abs(o.value - o.target) <= noise * o.target
      if not o.met and not within then return false end
      close = close or within
    end
  end
  return close
end

-- the figures of one measurement the report keeps (not the whole summary)
local function figures(summary)
  local slo = {}
  for k, o in pairs(summary.slo or {}) do slo[k] = {target = o.target, value = o.value, met = o.met} end
  return {slo = slo, met = summary.slo_met == true, requests = summary.requests, ok = summary.ok,
          goodput = summary.goodput, output_tps = summary.output_tps}
end

-- The search's state: the levels judged so far and the steps spent.
local State = {}
State.__index = State

-- judge(level) -> met (true/false), or nil when the search must stop
-- (out of steps, or the measurement stopped)
function State:judge(level)
  local runs, met_n = {}, 0
  while true do
    if #self.steps >= self.spec.max_steps then self.out_of_steps = true return nil end
    local summary, stop = self.measure(level, #self.steps + 1)
    local f = figures(summary)
    f.level, f.run = level, #runs + 1
    self.steps[#self.steps + 1] = f
    runs[#runs + 1] = f
    if f.met then met_n = met_n + 1 end
    self.summaries[level] = self.summaries[level] or {}
    table.insert(self.summaries[level], summary)
    if stop then self.stopped = stop return nil end
    -- a clear result, or as many runs as the noise rule allows
    if not near(summary, self.spec.noise) or #runs > self.spec.repeat_near then break end
  end
  local met = met_n * 2 > #runs
  self.levels[#self.levels + 1] = {level = level, met = met, runs = #runs, met_runs = met_n,
                                   misses = misses(self.summaries[level][#runs])}
  return met
end

-- close enough: next to each other (users), or within precision (rates)
function State:narrow(lo, hi)
  if self.spec.over == "concurrency" then return hi - lo <= 1 end
  return (hi - lo) <= self.spec.precision * lo
end

function State:midpoint(lo, hi)
  if self.spec.over == "concurrency" then return (lo + hi) // 2 end
  return (lo + hi) / 2
end

-- search.run(spec, measure) -> result:
--   {over, slo, best (highest level that met, or nil), first_fail (lowest
--    that missed, or nil), converged, why, steps = {{level, run, met, slo,
--    ...}}, levels = {{level, met, runs, misses}}, best_summary, reason}
-- spec as search.spec returns it.
function search.run(spec, measure)
  local st = setmetatable({spec = spec, measure = measure, steps = {}, levels = {}, summaries = {}}, State)
  local lo, hi
  local m = st:judge(spec.min)
  if m then
    lo = spec.min
    -- grow until a level misses or the maximum meets
    while m and lo < spec.max do
      local nxt = math.min(spec.max, spec.over == "concurrency" and lo * 2 or lo * 2)
      m = st:judge(nxt)
      if m then lo = nxt elseif m == false then hi = nxt end
    end
    -- bisect
    while m ~= nil and hi and not st:narrow(lo, hi) do
      local mid = st:midpoint(lo, hi)
      m = st:judge(mid)
      if m then lo = mid elseif m == false then hi = mid end
    end
  elseif m == false then
    hi = spec.min
  end
  local r = {over = spec.over, slo = spec.slo, precision = spec.precision, max_steps = spec.max_steps,
             min = spec.min, max = spec.max, best = lo, first_fail = hi, steps = st.steps, levels = st.levels}
  if st.stopped then
    r.converged, r.reason = false, "stopped"
    r.why = "the search stopped at step " .. #st.steps .. ": " .. tostring(st.stopped)
  elseif st.out_of_steps then
    r.converged, r.reason = false, "max_steps"
    r.why = string.format("the search did not converge within max_steps = %d: %s", spec.max_steps,
      lo and hi and string.format("the knee lies between %s (met) and %s (missed)", search.level_text(spec.over, lo),
                                  search.level_text(spec.over, hi))
      or lo and string.format("%s met; no higher load missed yet", search.level_text(spec.over, lo))
      or "no level was judged")
  elseif not lo then
    r.converged, r.reason = true, "none_meets"
    r.why = "no load meets the objectives"
  elseif not hi then
    r.converged, r.reason = true, "max_meets"
    r.why = "the highest load searched (max) meets the objectives"
  else
    r.converged, r.reason = true, "knee"
  end
  local at = lo or hi or spec.min
  local list = st.summaries[at]
  r.summary_level = list and at or nil
  r.best_summary = list and list[#list] or nil
  return r
end

-- The cell that measures one level: the cell's settings with the level as
-- its concurrency (closed loop) or rate (open loop), the step's requests
-- (spec.requests or duration; else 4 rounds of the users, or 5 s of
-- arrivals, at least 8), its warm-ups at the first step only, one repeat.
function search.level_cell(spec, cell, level, step)
  local c = {}
  for k, v in pairs(cell) do c[k] = v end
  if spec.over == "concurrency" then
    c.concurrency, c.concurrency_set, c.rate = level, true, nil   -- users: a closed loop
  else
    c.rate = level
  end
  c.duration = spec.duration
  c.requests = spec.requests
  if not c.requests and not c.duration then
    c.requests = spec.over == "concurrency" and math.max(8, level * 4) or math.max(8, math.ceil(level * 5))
  end
  c["repeat"] = 1
  if step > 1 then c.warmup = 0 end
  c.search_step, c.search_level = step, level
  return c
end

-- What the cell file keeps of a result: everything but the summaries
-- (the cell's summary is the found level's).
function search.record(r)
  local out = {}
  for k, v in pairs(r) do if k ~= "best_summary" then out[k] = v end end
  return out
end

-- "8 concurrent users", "1 concurrent user", "2.5 requests/s"
function search.level_text(over, v)
  if over == "concurrency" then
    v = math.tointeger(v) or v
    return string.format("%s concurrent user%s", tostring(v), v == 1 and "" or "s")
  end
  return string.format("%s requests/s", string.format("%.3g", v))
end

return search
