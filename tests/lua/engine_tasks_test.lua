-- Tasks on the event loop: spawn, wait, join, run, cancel, fail_fast,
-- errors with tracebacks, deadlock. (Ctrl-C is in tests/e2e/cli_signals.sh.)
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")

T.case("spawn passes arguments, join returns every result", function()
  local t = bench.spawn(function(a, b) return a + b, "x", nil end, 2, 3)
  local r = table.pack(t:join())
  T.eq(r.n, 3, "result count")
  T.eq(r[1], 5, "sum")
  T.eq(r[2], "x", "second")
  T.eq(t:status(), "done", "status")
  T.eq(tostring(t):match("^bench.Task %d+ %(done%)$") ~= nil, true, "tostring " .. tostring(t))
end)

T.case("bench.run returns the function's results", function()
  T.eq(select("#", bench.run(function() return 1, 2 end)), 2, "count")
  T.eq(bench.run(function(x) clock.sleep(0.001); return x * 2 end, 21), 42, "value")
end)

T.case("timers wake tasks in deadline order", function()
  local order = {}
  local ts = {}
  for _, d in ipairs({0.03, 0.01, 0.02, 0}) do
    ts[#ts + 1] = bench.spawn(function() clock.sleep(d); order[#order + 1] = d end)
  end
  T.eq(bench.wait(ts), true, "wait")
  T.eq(table.concat(order, ","), "0,0.01,0.02,0.03", "order")
end)

T.case("tasks run concurrently: 20 sleeps of 0.1 s take far less than 2 s", function()
  local w = clock.stopwatch()
  local ts = {}
  for i = 1, 20 do ts[i] = bench.spawn(clock.sleep, 0.1) end
  T.eq(bench.wait(ts), true, "wait")
  local s = w:elapsed()
  if s >= 1.5 then error("20 concurrent sleeps took " .. s .. " s") end
end)

T.case("a failing task: wait returns false and the error with a traceback", function()
  local t = bench.spawn(function() local x = nil; return x.field end)
  local ok, err = bench.wait(t)
  T.eq(ok, false, "ok")
  T.eq(err:find("engine_tasks_test.lua:%d+: attempt to index") ~= nil, true, "message: " .. err)
  T.eq(err:find("stack traceback:", 1, true) ~= nil, true, "traceback: " .. err)
  T.eq(t:status(), "failed", "status")
  local rok, rerr = t:result()
  T.eq(rok, false, "result ok")
  T.eq(rerr, err, "result error")
  T.checkerr("attempt to index", t.join, t)
end)

T.case("a failing task does not kill its siblings", function()
  local bad = bench.spawn(function() clock.sleep(0.005); error("boom") end)
  local good = bench.spawn(function() clock.sleep(0.02); return "alive" end)
  local ok, err = bench.wait(bad, good)
  T.eq(ok, false, "ok")
  T.eq(err:find("boom", 1, true) ~= nil, true, "error")
  T.eq(good:status(), "done", "sibling status")
  T.eq(good:join(), "alive", "sibling result")
end)

T.case("fail_fast cancels the rest", function()
  local slow_closed = false
  local bad = bench.spawn(function() clock.sleep(0.01); error("first failure") end)
  local slow = bench.spawn(function()
    local guard <close> = setmetatable({}, {__close = function() slow_closed = true end})
    clock.sleep(30)
    return "should not finish"
  end)
  local w = clock.stopwatch()
  local ok, err = bench.wait({bad, slow}, {fail_fast = true})
  T.eq(ok, false, "ok")
  T.eq(err:find("first failure", 1, true) ~= nil, true, "error " .. tostring(err))
  bench.wait(slow)   -- let the cancellation be delivered
  T.eq(slow:status(), "cancelled", "slow status")
  T.eq(slow_closed, true, "<close> ran in the cancelled task")
  if w:elapsed() > 10 then error("fail_fast waited for the slow task") end
end)

T.case("cancel a sleeping task; join raises cancelled", function()
  local t = bench.spawn(clock.sleep, 30)
  clock.sleep(0.001)
  T.eq(t:status(), "waiting", "status before")
  t:cancel()
  T.checkerr("cancelled", t.join, t)
  T.eq(t:status(), "cancelled", "status after")
  t:cancel()   -- idempotent on a finished task
end)

T.case("cancel a task that has not started yet", function()
  local ran = false
  local t = bench.spawn(function() ran = true end)
  t:cancel()
  bench.wait(t)
  T.eq(ran, false, "body ran")
  T.eq(t:status(), "cancelled", "status")
end)

T.case("a task can cancel itself", function()
  local t = bench.spawn(function() local self = bench.spawn(function() end); self:join(); error("unreachable") end)
  bench.wait(t)
  local t2
  t2 = bench.spawn(function() clock.sleep(0); t2:cancel(); error("not reached") end)
  bench.wait(t2)
  T.eq(t2:status(), "cancelled", "self-cancel")
end)

T.case("a task cannot wait for itself", function()
  local t
  t = bench.spawn(function() clock.sleep(0); return bench.wait(t) end)
  local ok, err = bench.wait(t)
  T.eq(ok, false, "ok")
  T.eq(err:find("a task cannot wait for itself", 1, true) ~= nil, true, err)
end)

T.case("tasks waiting for each other: a deadlock error, not a hang", function()
  local t1, t2
  t1 = bench.spawn(function() clock.sleep(0); bench.wait(t2) end)
  t2 = bench.spawn(function() clock.sleep(0); bench.wait(t1) end)
  local err = T.checkerr("deadlock", bench.wait, t1)
  T.eq(err:find("2 task(s) blocked", 1, true) ~= nil, true, err)
  t1:cancel()
  t2:cancel()
  bench.wait(t1, t2)
  T.eq(t1:status(), "cancelled", "t1")
end)

T.case("plain coroutine.yield inside a task is rescheduled", function()
  local steps = {}
  local a = bench.spawn(function() for i = 1, 3 do steps[#steps + 1] = "a" .. i; coroutine.yield() end end)
  local b = bench.spawn(function() for i = 1, 3 do steps[#steps + 1] = "b" .. i; coroutine.yield() end end)
  bench.wait(a, b)
  T.eq(table.concat(steps, " "), "a1 b1 a2 b2 a3 b3", "interleaving")
end)

T.case("nested tasks and bench.tasks()", function()
  local inner
  local outer = bench.spawn(function()
    inner = bench.spawn(function() clock.sleep(0.01); return "inner" end)
    return inner:join() .. "+outer"
  end)
  T.eq(outer:join(), "inner+outer", "results")
  T.eq(bench.tasks(), 0, "no task left")
end)

T.case("wait on an empty list and on finished tasks returns at once", function()
  T.eq(bench.wait({}), true, "empty")
  local t = bench.spawn(function() end)
  bench.wait(t)
  T.eq(bench.wait(t, t), true, "finished twice")
end)

T.case("cancellation is a value, not a word", function()
  -- errors whose words say "interrupted" or "cancelled" are failures
  for _, words in ipairs{"upload interrupted by peer", "the transfer was cancelled by the peer"} do
    local t = bench.spawn(function() error(words) end)
    local ok, err = pcall(t.join, t)
    T.eq(ok, false, "join raises")
    T.eq(t:status(), "failed", words)
    T.eq(bench.is_cancel(err) or bench.is_interrupt(err), false, "not a cancellation: " .. words)
  end
  -- a real cancel raises the value, whatever was waiting
  local slow = bench.spawn(function() clock.sleep(5) end)
  clock.sleep(0.01)
  slow:cancel()
  local ok, err = pcall(slow.join, slow)
  T.eq(ok, false, "join of a cancelled task raises")
  T.eq(bench.is_cancel(err), true, "the cancellation value")
  T.eq(rawequal(err, bench.cancelled), true, "bench.cancelled itself")
  T.eq(tostring(err), "cancelled", "it reads as before")
  T.eq(slow:status(), "cancelled", "status")
  local before = bench.spawn(function() error("never runs") end)
  before:cancel()
  T.eq(bench.is_cancel(select(2, pcall(before.join, before))), true, "cancelled before it ran")
end)

T.case("caller mistakes raise", function()
  T.checkerr("bad argument #1 to 'bench.spawn'", bench.spawn, 42)
  T.checkerr("bench.Task expected", bench.wait, 1)
  T.checkerr("expected seconds >= 0", clock.sleep, -1)
end)

T.done()
