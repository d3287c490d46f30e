-- bench.proc against real child processes.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local proc, clock = require("bench.proc"), require("bench.clock")

T.case("run captures stdout, stderr, exit code and input", function()
  local r = proc.run{argv = {"sh", "-c", "echo out; echo err >&2; cat; exit 3"}, input = "fed"}
  T.eq(r.code, 3, "code")
  T.eq(r.stdout, "out\nfed", "stdout")
  T.eq(r.stderr, "err\n", "stderr")
  T.eq(r.reason, "exited with code 3", "reason")
  assert(r.duration >= 0 and r.duration < 10, "duration " .. tostring(r.duration))
end)

T.case("run kills a command that exceeds its timeout", function()
  local r, err, res = proc.run{argv = {"sh", "-c", "echo before; sleep 20"}, timeout = 0.3}
  T.eq(r, nil, "result")
  assert(err:find("timed out", 1, true), err)
  assert(err:find("before", 1, true), "last output in the error: " .. err)
  T.eq(res.timed_out, true, "timed_out")
  T.eq(res.signal_name, "SIGKILL", "signal")
end)

T.case("a missing or non-executable binary is a clear error", function()
  local p, err = proc.spawn{argv = {"/nonexistent/llama-server"}}
  T.eq(p, nil, "handle")
  T.eq(err, "proc.spawn: cannot start: '/nonexistent/llama-server' does not exist", "message")
  local f = os.tmpname()
  p, err = proc.spawn{argv = {f}}
  os.remove(f)
  T.eq(p, nil, "handle")
  assert(err:find("is not executable", 1, true), err)
  p, err = proc.spawn{argv = {"benchrun-no-such-program"}}
  T.eq(err, "proc.spawn: cannot start: 'benchrun-no-such-program' not found in PATH", "message")
  T.checkerr("proc.spawn: argv: expected a list of strings", proc.spawn, {})
  T.checkerr("argv[2]: expected a string, got table", proc.spawn, {argv = {"true", {}}})
end)

T.case("env set and unset reach the child; cwd is applied", function()
  local dir = T.tmpdir()
  local r = proc.run{argv = {"sh", "-c", 'echo "$BENCH_A|${HOME-unset}|$(pwd)"'}, cwd = dir,
                     env = {set = {BENCH_A = "x y", BENCH_B = 2}, unset = {"HOME"}}}
  local real = proc.run{argv = {"sh", "-c", "cd " .. dir .. " && pwd -P"}}.stdout
  T.eq(r.stdout, "x y|unset|" .. real, "env and cwd")
  local r2 = proc.run{argv = {"sh", "-c", 'echo "$BENCH_C"'}, env = {BENCH_C = "plain"}}
  T.eq(r2.stdout, "plain\n", "plain env table")
end)

T.case("wait_for_line sees lines, tail keeps the last ones, stop sends SIGTERM", function()
  local p = assert(proc.spawn{argv = {"sh", "-c", "for i in 1 2 3 4; do echo line $i; done; echo READY; sleep 30"}})
  T.eq(p:alive(), true, "alive")
  T.eq(p:wait_for_line("^READY$", 10), "READY", "line")
  T.eq(p:tail(2), "line 4\nREADY", "tail")
  local info = p:stop(5)
  T.eq(info.signal_name, "SIGTERM", "signal")
  T.eq(info.sent_by_benchrun, true, "sent by benchrun")
  T.eq(info.reason, "killed by SIGTERM (sent by benchrun)", "reason")
  T.eq(p:alive(), false, "alive after stop")
end)

T.case("wait_for_line fails when the process ends without the line", function()
  local p = assert(proc.spawn{argv = {"sh", "-c", "echo nope"}})
  local line, err = p:wait_for_line("READY", 10)
  T.eq(line, nil, "line")
  assert(err:find("ended without printing a line matching 'READY'", 1, true), err)
  T.eq(p:wait(5).code, 0, "code")
end)

T.case("a child that ignores SIGTERM is killed after the grace", function()
  local p = assert(proc.spawn{argv = {"sh", "-c", "trap '' TERM; echo armed; while :; do sleep 0.05; done"}})
  assert(p:wait_for_line("armed", 10))
  local sw = clock.stopwatch()
  local info = p:stop(0.3)
  T.eq(info.signal_name, "SIGKILL", "signal")
  T.eq(info.sent_by_benchrun, true, "sent")
  assert(sw:elapsed() >= 0.25, "stopped before the grace: " .. sw:elapsed())
end)

T.case("a SIGKILL benchrun did not send is not an OOM without a record of one", function()
  local p = assert(proc.spawn{argv = {"sleep", "30"}})
  assert(proc.kill(p.pid, "KILL"))
  local info = p:wait(10)
  T.eq(info.oom, nil, "oom")
  T.eq(info.sent_by_benchrun, false, "sent")
  assert(info.reason:find("^killed by SIGKILL %(not sent by benchrun"), info.reason)
end)

T.case("wait inside tasks yields; timeouts return nil", function()
  local a = bench.spawn(function()
    local p = assert(proc.spawn{argv = {"sleep", "0.2"}})
    return p:wait(10).code
  end)
  local b = bench.spawn(function()
    local p = assert(proc.spawn{argv = {"sleep", "30"}})
    local info, err = p:wait(0.1)
    p:stop(1)
    return info, err
  end)
  T.eq(a:join(), 0, "code")
  local info, err = b:join()
  T.eq(info, nil, "timed out")
  assert(err:find("still running after the timeout", 1, true), err)
end)

T.case("a server that exits at once fails wait_ready with its last lines", function()
  local p = assert(proc.spawn{argv = {"sh", "-c", "echo 'error: model not found' >&2; exit 1"}})
  local t, err = proc.wait_ready{proc = p, port = proc.free_port(), timeout = 10}
  T.eq(t, nil, "ready")
  assert(err:find("exited with code 1 before it was ready", 1, true), err)
  assert(err:find("error: model not found", 1, true), err)
end)

T.case("a server that never becomes ready times out with its last lines", function()
  local p = assert(proc.spawn{argv = {"sh", "-c", "echo loading tensors; sleep 30"}})
  local t, err = proc.wait_ready{proc = p, port = proc.free_port(), timeout = 0.5}
  T.eq(t, nil, "ready")
  assert(err:find("not ready after 0.5 s", 1, true), err)
  assert(err:find("loading tensors", 1, true), err)
  p:stop(1)
end)

T.case("wait_ready on a line; load time counts from the spawn", function()
  local p = assert(proc.spawn{argv = {"sh", "-c", "sleep 0.3; echo server listening; sleep 30"}})
  local t = assert(proc.wait_ready{proc = p, line = "listening", timeout = 10})
  assert(t >= 0.25 and t < 8, "load time " .. t)
  p:stop(1)
end)

T.case("<close> stops the child; collected handles are stopped too", function()
  local pid
  do
    local p <close> = assert(proc.spawn{argv = {"sleep", "30"}})
    pid = p.pid
  end
  T.eq(proc.pid_alive(pid), false, "stopped by <close>")
  local q = assert(proc.spawn{argv = {"sleep", "30"}, grace = 1})
  pid = q.pid
  q = nil
  collectgarbage()
  collectgarbage()
  for _ = 1, 100 do
    if not proc.pid_alive(pid) then break end
    clock.sleep(0.05)
  end
  T.eq(proc.pid_alive(pid), false, "stopped after collection")
end)

T.case("log file receives both streams", function()
  local dir = T.tmpdir()
  local log = dir .. "/server.log"
  local p = assert(proc.spawn{argv = {"sh", "-c", "echo to-out; echo to-err >&2"}, log = log})
  p:wait(10)
  p:tail()
  local f = assert(io.open(log))
  local text = f:read("a")
  f:close()
  assert(text:find("to-out", 1, true) and text:find("to-err", 1, true), text)
end)

T.case("wait_ready by HTTP with a predicate; a task waiting for a line while another reads the tail", function()
  local sim <close> = T.sim{"--load-time", "0.3s"}
  local t = assert(proc.wait_ready{http = sim.url .. "/health", timeout = 10,
                                   expect = function(status, body) return status == 200 and body:find('"ok"') ~= nil end})
  assert(t >= 0, "ready")
  local st, body = proc.probe_http(sim.url .. "/v1/models")
  T.eq(st, 200, "status")
  assert(body:find("sim-model", 1, true), body)
  T.checkerr("expected http://host[:port]/path", proc.probe_http, "https://example.com/")
  local p = assert(proc.spawn{argv = {"sh", "-c", "sleep 0.2; echo first; sleep 0.2; echo second; sleep 30"}})
  -- without the wake-up the waiter would only see the line at its 20 s timeout
  local sw = clock.stopwatch()
  local waiter = bench.spawn(function() return p:wait_for_line("second", 20) end)
  local reader = bench.spawn(function()
    for _ = 1, 40 do p:tail(1) clock.sleep(0.02) end
  end)
  T.eq(waiter:join(), "second", "line seen although tail() read the pipe")
  assert(sw:elapsed() < 10, "woken by the line, not the timeout: " .. sw:elapsed())
  reader:join()
  p:stop(1)
end)

T.case("stdout to a file, stderr to null; signals by name; an outside signal is not ours", function()
  local dir = T.tmpdir()
  local p = assert(proc.spawn{argv = {"sh", "-c", "echo kept; echo dropped >&2"}, stdout = dir .. "/out.txt", stderr = "null"})
  p:wait(10)
  T.eq(p:tail(5), "kept", "ring has stdout only")
  local f = assert(io.open(dir .. "/out.txt"))
  T.eq(f:read("a"), "kept\n", "file")
  f:close()
  local q = assert(proc.spawn{argv = {"sleep", "30"}})
  assert(q:signal("SIGINT"))
  local info = q:wait(10)
  T.eq(info.reason, "killed by SIGINT (sent by benchrun)", "named signal")
  local r = assert(proc.spawn{argv = {"sleep", "30"}})
  assert(proc.kill(r.pid, "SEGV"))
  info = r:wait(10)
  T.eq(info.reason, "killed by SIGSEGV", "outside signal")
  T.eq(info.sent_by_benchrun, false, "not ours")
  T.eq(info.oom, nil, "not an OOM")
  T.checkerr("unknown signal 'BOGUS'", q.signal, q, "BOGUS")
  local nope, err = q:signal("TERM")
  T.eq(nope, nil, "signal after exit")
  assert(err:find("has already exited", 1, true), err)
end)

T.done()
