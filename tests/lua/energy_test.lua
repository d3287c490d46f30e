-- bench.energy (issue 15): a cell's energy figures from the figures of a
-- power window (the table bench.power's sampler:window returns, written
-- here as the sampler gives it), and the cooldown wait between cells.
-- power_test.lua checks the same functions over a real sampler's window.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local energy = require("bench.energy")

-- a window of 10 s at 200 W, all covered, 1000 output tokens
local function win(over)
  local w = {window_s = 10, covered_s = 10, energy_j = 2000, avg_w = 200, peak_w = 260,
             by_domain = {gpu = 1700, cpu = 300}, max_temp_c = 71, gpu_max_temp_c = 71,
             throttled_s = 0, throttle_known_s = 10, samples = 100, gaps = 0, gap_s = 0}
  for k, v in pairs(over or {}) do w[k] = v end
  return w
end

T.case("cell: J, J/token, tok/s per W, idle baseline and energy above idle", function()
  local idle = energy.idle(win{energy_j = 600, avg_w = 60})
  T.eq(idle.w, 60, "idle W")
  local c = energy.cell(win(), {output_tokens = 1000, idle = idle})
  T.eq(c.energy_j, 2000, "energy_j")
  T.eq(c.avg_w, 200, "avg_w")
  T.eq(c.peak_w, 260, "peak_w")
  T.eq(c.j_per_token, 2, "J per output token")
  T.eq(c.tok_per_w, 0.5, "output tok/s per W = tokens per J")
  T.near(c.tok_per_w, (1000 / 10) / 200, 1e-12, "the same as (tok/s) / W")
  T.eq(c.idle_w, 60, "idle_w")
  T.eq(c.above_idle_j, 2000 - 600, "energy above idle")
  T.eq(c.j_per_token_above_idle, 1.4, "J/token above idle")
  T.eq(c.max_temp_c, 71, "max_temp_c")
  T.eq(c.throttled_pct, 0, "throttled_pct")
  T.eq(c.throttled, false, "not throttled")
  T.eq(c.covered_pct, 100, "covered")
  T.eq(c.note, nil, "no note")
end)

T.case("cell: idle above the cell's power gives 0 above idle, never negative", function()
  local c = energy.cell(win(), {output_tokens = 1000, idle = {w = 250}})
  T.eq(c.above_idle_j, 0, "clamped")
end)

T.case("cell: throttled share and flag; thermal pressure >= moderate flags too", function()
  local c = energy.cell(win{throttled_s = 2.5}, {output_tokens = 10})
  T.eq(c.throttled_pct, 25, "25%")
  T.eq(c.throttled, true, "flagged")
  local w = win{pressure = 1}
  w.throttled_s, w.throttle_known_s = nil, nil   -- Apple: pressure, no throttle-reason source
  c = energy.cell(w, {output_tokens = 10})
  T.eq(c.throttled, true, "moderate pressure")
  T.eq(c.throttled_pct, nil, "no share where no source tells it")
  w.pressure = nil
  c = energy.cell(w, {output_tokens = 10})
  T.eq(c.throttled, nil, "unknown, not false")
end)

T.case("cell: no power source says so, rather than 0", function()
  local c = energy.cell(nil, {output_tokens = 1000})
  T.eq(c.note, "no power source", "no sampler")
  T.eq(c.energy_j, nil, "no energy_j")
  T.eq(c.j_per_token, nil, "no J/token")
  -- a sampler with only temperature sources: its window has no by_domain
  c = energy.cell({window_s = 10, covered_s = 0, max_temp_c = 50, samples = 10, gaps = 0}, {output_tokens = 1000})
  T.eq(c.note, "no power source", "temperature only")
  T.eq(c.max_temp_c, 50, "but the temperature")
  T.eq(select(2, energy.idle(nil)), "no power source", "idle")
end)

T.case("cell: gaps scale the covered part, and too few readings give no figure", function()
  local c = energy.cell(win{covered_s = 8, energy_j = 1600, gap = "nvml:0: NVML: GPU is lost"}, {output_tokens = 1000})
  T.eq(c.energy_j, 2000, "1600 J over 8 of 10 s: 2000 J estimated")
  T.eq(c.covered_pct, 80, "covered")
  T.eq(c.note, "estimated: power readings covered 80% of the window; gap: nvml:0: NVML: GPU is lost", "note")
  c = energy.cell(win{covered_s = 4, energy_j = 800, gap = "rapl:package-0: absurd reading: 90000 J in 0.100 s (900000 W)"},
                  {output_tokens = 1000})
  T.eq(c.energy_j, nil, "no figure from 40%")
  T.eq(c.j_per_token, nil, "no J/token")
  T.eq(c.note, "no energy figure: power readings covered 40% of the window; gap: rapl:package-0: absurd reading: "
    .. "90000 J in 0.100 s (900000 W)", "note")
end)

T.case("cell: no output tokens gives energy but no per-token figure", function()
  local c = energy.cell(win(), {output_tokens = 0})
  T.eq(c.energy_j, 2000, "energy")
  T.eq(c.j_per_token, nil, "no J/token")
  T.eq(c.tok_per_w, nil, "no tok/W")
end)

T.case("merge: a cell's repeats measured one by one make one window", function()
  local a = win()
  local b = win{energy_j = 1000, avg_w = 100, peak_w = 300, max_temp_c = 80, throttled_s = 1, reasons = 0x20,
                by_domain = {gpu = 1000}, min_clock_mhz = 1500, max_clock_mhz = 1980}
  a.min_clock_mhz, a.max_clock_mhz, a.reasons = 1800, 1900, 0x4
  local m = energy.merge({a, b})
  T.eq(m.window_s, 20, "window_s")
  T.eq(m.energy_j, 3000, "energy")
  T.eq(m.avg_w, 150, "avg over the covered time")
  T.eq(m.peak_w, 300, "peak")
  T.eq(m.max_temp_c, 80, "temperature")
  T.eq(m.by_domain.gpu, 2700, "gpu")
  T.eq(m.by_domain.cpu, 300, "cpu")
  T.eq(m.throttled_s, 1, "throttled")
  T.eq(m.throttle_known_s, 20, "known")
  T.eq(m.reasons, 0x24, "reason bits")
  T.eq(m.min_clock_mhz, 1500, "slowest clock")
  T.eq(m.max_clock_mhz, 1980, "fastest clock")
  T.eq(energy.cell(m, {output_tokens = 1500}).j_per_token, 2, "J/token over both")
  T.eq(energy.merge({}), nil, "nothing")
  local none = energy.merge({{window_s = 5, covered_s = 0, samples = 5, gaps = 0}, {window_s = 5, covered_s = 0}})
  T.eq(energy.cell(none, {output_tokens = 1}).note, "no power source", "no source in either")
end)

T.case("fraction: 10% and 0.1", function()
  T.eq(energy.fraction("10%"), 0.1, "10%")
  T.eq(energy.fraction(" 2.5 % "), 0.025, "2.5%")
  T.eq(energy.fraction(0.1), 0.1, "number")
  T.eq(select(2, energy.fraction("ten")), "a percentage such as 10%", "bad")
  T.eq(energy.fraction(-1), nil, "negative")
end)

-- a probe over a scripted machine: each poll advances the clock by the
-- sleep asked for, and the state follows `states` (the last one repeats)
local function machine(states)
  local t, i = 0, 0
  local function probe()
    i = i + 1
    return t, states[math.min(i, #states)]
  end
  local function sleep(s) t = t + s end
  return probe, sleep
end

T.case("cooldown: waits until nominal and near idle power", function()
  local cfg = {["until"] = "nominal", within = 0.1, max_s = 300, poll_s = 2}
  local probe, sleep = machine({
    {w = 300, throttled = true}, {w = 300, throttled = false}, {w = 120, throttled = false},
    {w = 65, throttled = false, pressure = 0}})
  local r = energy.cooldown_wait(cfg, 60, probe, sleep)
  T.eq(r.ready, true, "ready")
  T.eq(r.waited_s, 6, "three polls of 2 s")
  T.eq(r.note, nil, "nothing passed over")
  T.eq(select(2, energy.cooldown_check(cfg, 60, {w = 67, throttled = false})), "67 W, idle 60 W + 10%", "why")
  T.eq(select(2, energy.cooldown_check(cfg, 60, {w = 50, pressure = 2})), "thermal pressure 2", "pressure")
end)

T.case("cooldown: gives up at max with a clear note", function()
  local cfg = {["until"] = "nominal", within = 0.1, max_s = 5, poll_s = 2}
  local probe, sleep = machine({{w = 300, throttled = true}})
  local r = energy.cooldown_wait(cfg, 60, probe, sleep)
  T.eq(r.ready, false, "not ready")
  T.eq(r.waited_s, 5, "stopped at max (2 + 2 + 1 s)")
  T.eq(r.note, "cooldown gave up after 5 s (max 5 s): throttled", "note")
end)

T.case("cooldown: a machine without sources passes over what it cannot check", function()
  local cfg = {["until"] = "nominal", within = 0.1, max_s = 300}
  local probe, sleep = machine({{}})
  local r = energy.cooldown_wait(cfg, nil, probe, sleep)
  T.eq(r.ready, true, "ready at once")
  T.eq(r.waited_s, 0, "no wait")
  T.eq(r.note, "no thermal source: nominal not checked; no power source: idle power not checked", "note")
end)

T.done()
