-- bench.clock from Lua: integer nanoseconds, wall time, sleep, stopwatches.
-- Tolerances are generous: no timing is asserted tightly.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")

T.case("now() is integer nanoseconds and never goes back", function()
  local prev = clock.now()
  T.eq(math.type(prev), "integer", "type")
  for _ = 1, 10000 do
    local t = clock.now()
    if t < prev then error(("clock went back: %d after %d"):format(t, prev)) end
    prev = t
  end
end)

T.case("wall() is UTC epoch seconds; wall_ns() integer", function()
  local w = clock.wall()
  T.eq(math.type(w), "float", "wall type")
  T.near(w, os.time(), 5, "wall vs os.time")
  T.eq(math.type(clock.wall_ns()), "integer", "wall_ns type")
  T.near(clock.wall_ns() / 1e9, w, 5, "wall_ns vs wall")
end)

T.case("sleep on the main thread and in a task", function()
  local t0 = clock.now()
  clock.sleep(0.02)
  local slept = clock.now() - t0
  if slept < 20000000 then error("slept only " .. slept .. " ns") end
  local t = bench.spawn(function() local a = clock.now(); clock.sleep(0.02); return clock.now() - a end)
  local d = t:join()
  if d < 20000000 then error("task slept only " .. d .. " ns") end
  clock.sleep(0)   -- zero is allowed
  bench.sleep(0.001)
end)

T.case("sleep_until a monotonic time", function()
  local target = clock.now() + 10000000
  clock.sleep_until(target)
  if clock.now() < target then error("woke before the target") end
  clock.sleep_until(clock.now() - 1000)   -- in the past: returns at once
end)

T.case("stopwatch", function()
  local w = clock.stopwatch()
  clock.sleep(0.01)
  local ns = w:elapsed_ns()
  T.eq(math.type(ns), "integer", "elapsed_ns type")
  if ns < 10000000 then error("elapsed_ns " .. ns) end
  if w:elapsed() < 0.01 then error("elapsed " .. w:elapsed()) end
  local lap1 = w:lap()
  T.eq(lap1 >= 0.01, true, "first lap")
  T.eq(w:lap() < lap1 + 1, true, "second lap")
  T.eq(w:reset(), w, "reset returns the stopwatch")
  T.eq(w:elapsed() < 1, true, "after reset")
  T.eq(tostring(w):find("^bench.clock.Stopwatch %(") ~= nil, true, tostring(w))
end)

T.case("conversions at the edge", function()
  T.eq(clock.ms(1500000), 1.5, "ms")
  T.eq(clock.seconds(2500000000), 2.5, "seconds")
  T.checkerr("number has no integer representation", clock.ms, 1.5)
  T.checkerr("expected seconds >= 0", clock.sleep, -0.1)
end)

T.done()
