-- Energy per cell (issue 15): what a cell's measured window cost in energy,
-- whether it ran throttled, and whether the machine has cooled down enough
-- to start the next one. Pure functions over the figures of bench.power's
-- sampler:window(t0, t1) (docs/scripting.md): no clock, no files, no sampler
-- of its own, so the runner decides when to measure and this decides what
-- the figures say.
--
-- A figure that cannot be known is absent (nil), never 0: a cell on a
-- platform without a power source says "no power source".
local energy = {}

-- Below this share of the window covered by readings, no energy figure is
-- given at all (an estimate from less would be a guess).
energy.MIN_COVERED = 0.5

-- a fraction as a percentage with one decimal (80, not 80.0, when whole)
local function pct(x)
  local v = math.floor(x * 1000 + 0.5) / 10
  return math.tointeger(v) or v
end

-- energy.fraction(v) -> a fraction (0.1 for "10%" or 0.1), or nil, why
function energy.fraction(v)
  if type(v) == "string" then
    local n = v:match("^%s*(%d+%.?%d*)%s*%%%s*$")
    if not n then return nil, "a percentage such as 10%" end
    v = tonumber(n) / 100
  end
  if type(v) ~= "number" or v ~= v or v < 0 or v > 10 then return nil, "a percentage such as 10%" end
  return v
end

-- energy.idle(win) -> the idle baseline {w, s} from a window measured
-- before the cell with the server loaded and no load, or nil, why
function energy.idle(win)
  if not win then return nil, "no power source" end
  if not win.energy_j or (win.covered_s or 0) <= 0 then return nil, "no power reading while idle" end
  return {w = win.avg_w, s = win.covered_s}
end

-- energy.merge(windows) -> one window's figures from several (a cell's
-- repeats, each measured on its own): times, energies and throttled time
-- add up, peaks and temperatures take the maximum, clocks the extremes.
-- nil for an empty list.
function energy.merge(list)
  if not list or #list == 0 then return nil end
  if #list == 1 then return list[1] end
  local m = {window_s = 0, covered_s = 0, samples = 0, gaps = 0, gap_s = 0}
  local function add(k, v) if v then m[k] = (m[k] or 0) + v end end
  local function max(k, v) if v and (m[k] == nil or v > m[k]) then m[k] = v end end
  local function min(k, v) if v and (m[k] == nil or v < m[k]) then m[k] = v end end
  for _, w in ipairs(list) do
    for _, k in ipairs({"window_s", "covered_s", "energy_j", "throttled_s", "throttle_known_s", "samples", "gaps",
                        "gap_s"}) do add(k, w[k]) end
    for _, k in ipairs({"peak_w", "max_temp_c", "gpu_max_temp_c", "max_clock_mhz", "pressure"}) do max(k, w[k]) end
    min("min_clock_mhz", w.min_clock_mhz)
    if w.reasons then m.reasons = (m.reasons or 0) | w.reasons end
    if w.by_domain then
      m.by_domain = m.by_domain or {}
      for d, j in pairs(w.by_domain) do m.by_domain[d] = (m.by_domain[d] or 0) + j end
    end
    m.gap = m.gap or w.gap
  end
  if m.energy_j and m.covered_s > 0 then m.avg_w = m.energy_j / m.covered_s end
  return m
end

-- energy.cell(win, opts) -> the cell's energy figures:
--   win   sampler:window(t0, t1) over the measured window, or nil where no
--         sampler ran (a platform without sources)
--   opts  {output_tokens = n, idle = energy.idle(...) or nil,
--          sources = n of counted sources (0: "no power source")}
-- -> {energy_j, avg_w, peak_w, j_per_token, tok_per_w, idle_w,
--     above_idle_j, j_per_token_above_idle, covered_pct, max_temp_c,
--     gpu_max_temp_c, throttled_pct, throttled, note}
-- tok_per_w is output tokens per second per watt, which is tokens per joule.
function energy.cell(win, opts)
  opts = opts or {}
  local r, notes = {}, {}
  if win then
    r.max_temp_c, r.gpu_max_temp_c = win.max_temp_c, win.gpu_max_temp_c
    if win.throttle_known_s and win.throttle_known_s > 0 then
      r.throttled_pct = pct(win.throttled_s / win.throttle_known_s)
      r.throttled = win.throttled_s > 0
    end
    if win.pressure and win.pressure >= 1 then r.throttled = true end
  end
  if not win or opts.sources == 0 or not win.by_domain then
    r.note = "no power source"
    return r
  end
  local window, covered = win.window_s or 0, win.covered_s or 0
  local share = window > 0 and covered / window or 0
  r.covered_pct = pct(share)
  if covered <= 0 or share < energy.MIN_COVERED then
    notes[#notes + 1] = string.format("no energy figure: power readings covered %s%% of the window", pct(share))
    if win.gap then notes[#notes + 1] = "gap: " .. win.gap end
    r.note = table.concat(notes, "; ")
    return r
  end
  -- The gaps' share is estimated at the covered part's average power.
  r.energy_j = win.energy_j * window / covered
  r.avg_w, r.peak_w = win.avg_w, win.peak_w
  if share < 0.99 then   -- a sliver at the edges is sampling, not a gap
    notes[#notes + 1] = string.format("estimated: power readings covered %s%% of the window", pct(share))
    if win.gap then notes[#notes + 1] = "gap: " .. win.gap end
  end
  local tokens = opts.output_tokens
  if tokens and tokens > 0 and r.energy_j > 0 then
    r.j_per_token = r.energy_j / tokens
    r.tok_per_w = tokens / r.energy_j
  end
  if opts.idle and opts.idle.w then
    r.idle_w = opts.idle.w
    r.above_idle_j = math.max(0, r.energy_j - opts.idle.w * window)
    if r.j_per_token then r.j_per_token_above_idle = r.above_idle_j / tokens end
  end
  if #notes > 0 then r.note = table.concat(notes, "; ") end
  return r
end

-- ---- cooldown between cells ----

-- energy.cooldown_check(cfg, idle_w, now) -> ready (boolean), why
--   cfg     {["until"] = "nominal" | nil, within = 0.1 | nil, max_s = 300}
--   idle_w  the idle baseline's watts, or nil
--   now     the state now: {w = watts over the last seconds, throttled,
--           pressure} (from a short sampler:window), any field nil where
--           unknown
-- Conditions that cannot be checked (no power source, no thermal source)
-- are passed over and said in why.
function energy.cooldown_check(cfg, idle_w, now)
  local why = {}
  if cfg["until"] == "nominal" then
    if now.throttled == nil and now.pressure == nil then
      why[#why + 1] = "no thermal source: nominal not checked"
    elseif now.throttled or (now.pressure or 0) >= 1 then
      return false, now.pressure and now.pressure >= 1
        and string.format("thermal pressure %d", now.pressure) or "throttled"
    end
  end
  if cfg.within then
    if not idle_w or not now.w then
      why[#why + 1] = "no power source: idle power not checked"
    elseif now.w > idle_w * (1 + cfg.within) then
      return false, string.format("%.0f W, idle %.0f W + %s%%", now.w, idle_w, pct(cfg.within))
    end
  end
  return true, #why > 0 and table.concat(why, "; ") or nil
end

-- energy.cooldown_wait(cfg, idle_w, probe, sleep) -> {waited_s, ready, note}
-- Waits until energy.cooldown_check says ready or cfg.max_s has passed:
-- probe() -> elapsed seconds since the wait began, the state now (as
-- cooldown_check takes it); sleep(s) waits. The runner passes a probe over
-- its power sampler and bench.clock.
function energy.cooldown_wait(cfg, idle_w, probe, sleep)
  local poll = cfg.poll_s or 1
  while true do
    local elapsed, now = probe()
    local ready, why = energy.cooldown_check(cfg, idle_w, now)
    if ready then return {waited_s = elapsed, ready = true, note = why} end
    if elapsed >= cfg.max_s then
      return {waited_s = elapsed, ready = false,
              note = string.format("cooldown gave up after %.0f s (max %.0f s): %s", elapsed, cfg.max_s, why)}
    end
    sleep(math.min(poll, cfg.max_s - elapsed))
  end
end

-- ---- what a plan asks for ----

-- The idle baseline's length where the plan does not say: long enough for
-- a steady reading on a real machine; none on the simulator, whose idle
-- power is what it was told (and a test suite of dry runs stays fast).
energy.DEFAULT_IDLE_S = 5
energy.DEFAULT_INTERVAL_S = 0.1
energy.DEFAULT_COOLDOWN = {["until"] = "nominal", within = 0.1, max_s = 300}

-- energy.settings(plan, cell, dry) -> {interval = s | nil (no sampler),
-- idle_s, cooldown = {until, within, max_s} | nil} from the plan's
-- sampling.power, energy and cooldown keys (validated: plans/README.md).
-- cell (optional) decides the idle default: 0 on the simulator.
function energy.settings(plan, cell, dry)
  local sp = (plan.sampling or {}).power
  local e = plan.energy
  local r = {}
  if sp ~= false and e ~= false then
    r.interval = type(sp) == "number" and sp or energy.DEFAULT_INTERVAL_S
  end
  local sim = dry or (cell and cell.server and cell.server.backend == "sim")
  r.idle_s = type(e) == "table" and e.idle or (sim and 0 or energy.DEFAULT_IDLE_S)
  if not r.interval then r.idle_s = 0 end
  local c = plan.cooldown
  if c and c ~= false then
    c = type(c) == "table" and c or {}
    local d = energy.DEFAULT_COOLDOWN
    r.cooldown = {["until"] = c["until"] or d["until"], within = c.idle_power_within or d.within,
                  max_s = c.max or d.max_s}
  end
  return r
end

return energy
