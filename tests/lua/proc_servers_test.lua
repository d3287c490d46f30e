-- We measure only our own server, and say truly why it ended (issue 11,
-- sections 1 and 3): exits classified from bench.proc's exit info alone
-- (proc.classify_exit), a port already in use refused before the spawn, a
-- foreign listener beside ours (SO_REUSEPORT) found after it, a process left
-- by a SIGKILLed earlier benchrun named, and a readiness answer with
-- Content-Length read without waiting for the connection to close.
-- Real processes and sockets: benchrun sim as server and as foreign
-- listener, shell scripts that crash or print "bloom", tests/helpers/rawserver.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local proc, clock = require("bench.proc"), require("bench.clock")
local backends = require("bench.backends")
local linux = io.open("/proc/net/tcp") ~= nil

local function wait_dead(p)
  for _ = 1, 500 do if not p:alive() then return end clock.sleep(0.01) end
  error("still alive: pid " .. p.pid)
end

-- a foreign listener on port: a benchrun sim that is not the server under test
local function foreign_sim(port, reuse)
  local argv = {bench.executable, "sim", "--port", tostring(port)}
  if reuse then argv[#argv + 1] = "--reuse-port" end
  local f = assert(proc.spawn{argv = argv})
  -- its own line, not a readiness probe: with SO_REUSEPORT another sim on
  -- the port may answer the probe before this one listens
  assert(f:wait_for_line("listening on", 10))
  return f
end

---------------------------------------------------------------------------
-- exits
---------------------------------------------------------------------------

T.case("a SIGKILL from outside without an OOM record is a crash, not an OOM", function()
  local p = assert(proc.spawn{argv = {"sleep", "30"}})
  assert(proc.kill(p.pid, "KILL"))
  local info = p:wait(10)
  T.eq(info.oom, nil, "oom")
  T.eq(info.sent_by_benchrun, false, "sent")
  assert(info.reason:find("^killed by SIGKILL %(not sent by benchrun; no record of an OOM kill"), info.reason)
  local c = proc.classify_exit(info)
  T.eq(c.status, "crashed", "status")
  T.eq(c.signal_name, "SIGKILL", "signal")
  T.eq(c.evidence, nil, "evidence")
end)

T.case("classify_exit: crash signals, codes, benchrun's own stop; never the output", function()
  local function exit_of(script)
    local p = assert(proc.spawn{argv = {"sh", "-c", script}})
    return p:wait(10), p
  end
  local info, p = exit_of("echo 'bloom filter: out of memory? no. oom'; exit 1")
  T.eq(p:tail(1), "bloom filter: out of memory? no. oom", "the output says oom")
  local c = proc.classify_exit(info)
  T.eq(c.status, "failed", "a code is a failure whatever the output")
  T.eq(c.code, 1, "code")
  info = exit_of("kill -SEGV $$")
  c = proc.classify_exit(info)
  T.eq(c.status .. " " .. c.signal_name, "crashed SIGSEGV", "segfault")
  info = exit_of("ulimit -c 0; kill -ABRT $$")
  T.eq(proc.classify_exit(info).signal_name, "SIGABRT", "abort")
  T.eq(proc.classify_exit(info).status, "crashed", "abort is a crash")
  local q = assert(proc.spawn{argv = {"sleep", "30"}})
  c = proc.classify_exit(q:stop(5))
  T.eq(c.status, "stopped", "benchrun's own SIGTERM")
  T.eq(proc.classify_exit(nil).status, "failed", "no exit info")
  -- only the evidence field makes an OOM (it comes from the platform or the
  -- simulator's kernel record, see below), never a bare SIGKILL
  T.eq(proc.classify_exit({signal = 9, signal_name = "SIGKILL", sent_by_benchrun = false, oom = true}).status,
       "crashed", "oom without evidence")
end)

T.case("a real kernel OOM kill (a memory cgroup of 32 MiB) is an OOM with the kernel's evidence", function()
  -- needs root and a writable cgroup-v1 memory hierarchy (as in the test
  -- container); elsewhere skipped
  local path
  for line in io.lines("/proc/self/cgroup") do
    local p = line:match("^%d+:memory:(.*)$")
    if p then path = "/sys/fs/cgroup/memory" .. p:gsub("/$", "") end
  end
  local probe = path and io.open(path .. "/memory.limit_in_bytes")
  if probe then probe:close() end
  if not probe or not proc.run{argv = {"mkdir", "-p", path .. "/benchrun-oom-test"}} then
    print("skipped: no writable cgroup-v1 memory hierarchy") return
  end
  local cg = path .. "/benchrun-oom-test"
  local p = assert(proc.spawn{argv = {"sh", "-c", 'echo 32M > "$0/memory.limit_in_bytes" && echo $$ > "$0/cgroup.procs"'
    .. ' && exec "$1" sim --port 0 --model-memory 256MiB', cg, bench.executable}})
  local info = p:wait(30)
  proc.run{argv = {"rmdir", cg}}
  if info.code then print("skipped: could not enter the cgroup: " .. p:tail(3)) return end
  T.eq(info.signal_name, "SIGKILL", "killed by the kernel")
  local c = proc.classify_exit(info)
  T.eq(c.status, "oom", "status (" .. info.reason .. ")")
  assert(c.evidence:find("Killed process " .. p.pid, 1, true) or c.evidence:find("oom_kill count rose", 1, true),
         c.evidence)
end)

T.case("the simulator: --fault crash aborts; --oom-at-memory is an OOM only through its kernel record", function()
  local srv = assert(backends.get("sim").start{args = {"--decode-tps", "0"}})
  local st = backends.get_url(srv.base_url .. "/health")
  T.eq(st, 200, "up")
  local http = require("bench.http")
  http.request{method = "POST", url = srv.base_url .. "/v1/chat/completions",
               headers = {["Content-Type"] = "application/json", ["X-Sim-Fault"] = "crash"},
               body = '{"messages":[{"role":"user","content":"hi"}],"max_tokens":8}', timeout = {total = 5}}
  for _ = 1, 500 do if not srv:alive() then break end clock.sleep(0.01) end
  local c = proc.classify_exit(srv:exit_info())
  T.eq(c.status .. " " .. tostring(c.signal_name), "crashed SIGABRT", "crash fault")

  -- the OOM of the simulator: its record (a file of ours, like the kernel
  -- log) names the pid; the start fails with that exit info
  local srv2, err, info = backends.get("sim").start{args = {"--model-memory", "64MiB", "--oom-at-memory", "16MiB",
                                                            "--load-time", "0.2s"}}
  T.eq(srv2, nil, "started")
  assert(err:find("SIGKILL", 1, true), err)
  c = proc.classify_exit(info)
  T.eq(c.status, "oom", "status")
  assert(c.evidence:find("OOM record", 1, true), c.evidence)
end)

-- run a plan quietly; -> exit status, the results, report.md, summary.csv
local dir = T.tmpdir()
local function run_plan(text)
  local rc, data, rdir = T.run_plan(dir, text)
  return rc, data, assert(T.read_file(rdir .. "report.md")), assert(T.read_file(rdir .. "summary.csv"))
end

local PROMPTS = [[
workload:
  prompts:
    - {name: a, prompt: "hello there", max_tokens: 16}
]]

T.case("runner: a server that prints 'bloom' and exits 1 failed; it was not OOM-killed", function()
  local rc, data, report = run_plan([[
name: bloom
server: {backend: command, extra: {argv: [sh, -c, "echo 'loading bloom filter'; echo 'oom: 0 killed'; exit 1"]}}
]] .. PROMPTS)
  T.eq(data.cells[1].status, "failed", "status")
  T.eq(rc, 1, "exit status")
  assert(not report:find("OOM-killed", 1, true), report)
end)

-- (the crash comes with the second request and the load goes on for a
-- while, so that the runner's end-of-cell check finds the process gone: a
-- server that dies as the last request ends can still be seen alive there,
-- a race of the runner's own, see the issue's "a dead server stops the load")
T.case("runner: a crash while loading and a crash during the cell are 'crashed', exit 1", function()
  local rc, data, report, csv = run_plan([[
name: crashes
]] .. PROMPTS .. [[
cells:
  - {name: segv, server: {backend: command, extra: {argv: [sh, -c, "sleep 0.1; kill -SEGV $$"]}}}
  - {name: fault, duration: 400ms, server: {backend: sim, args: [--crash-after, 1, --decode-tps, 200]}}
]])
  local c = {}
  for _, x in ipairs(data.cells) do c[x.id] = x end
  T.eq(c.segv.status, "crashed", "segv while loading")
  assert(c.segv.error:find("SIGSEGV", 1, true), c.segv.error)
  T.eq(c.fault.status, "crashed", "--crash-after")
  T.eq(c.fault.server.exit.signal_name, "SIGABRT", "signal")
  assert(c.fault.error:find("crashed", 1, true), c.fault.error)
  T.eq(rc, 1, "exit status")
  assert(not report:find("does not fit", 1, true), report)
  assert(report:find("**fault** crashed", 1, true) or report:find("crashed:", 1, true), report)
  assert(report:find("2 crashed", 1, true), report)
  assert(csv:find("\nsegv,.-,crashed,") and csv:find("\nfault,.-,crashed,"), csv)
end)

T.case("runner: a server SIGKILLed from outside during a cell crashed (no OOM record)", function()
  -- the command kills itself with SIGKILL after its first answers: nothing
  -- says it was memory
  local rc, data, report = run_plan([[
name: killed
server: {backend: command, extra: {argv: [sh, -c, "(sleep 0.6; kill -KILL $$) & exec ]] .. bench.executable ..
  [[ sim --port {port} --decode-tps 20"], ready: {http: /health}}}
]] .. PROMPTS .. [[
cells:
  - {name: k, requests: 40}
]])
  local cell = data.cells[1]
  T.eq(cell.status, "crashed", "status")
  T.eq(cell.server.exit.signal_name, "SIGKILL", "signal")
  T.eq(rc, 1, "exit status")
  assert(not report:find("OOM-killed", 1, true), report)
end)

---------------------------------------------------------------------------
-- ports
---------------------------------------------------------------------------

T.case("a port already in use is refused before the spawn, naming the process", function()
  if not linux then print("skipped: " .. "no /proc/net/tcp") return end
  for _, reuse in ipairs({false, true}) do
    local port = assert(proc.free_port())
    local f = foreign_sim(port, reuse)
    -- our server binds with SO_REUSEPORT like llama-server: it would start
    -- beside the foreign one and the readiness probe would find either
    local srv, err = backends.get("command").start{
      port = port, extra = {argv = {bench.executable, "sim", "--port", "{port}", "--reuse-port"},
                            ready = {http = "/health"}}, ready_timeout = 10}
    if srv then srv:stop() end
    local s2, err2 = backends.get("sim").start{port = port}
    if s2 then s2:stop() end
    f:stop(5)   -- before the checks: a failed case leaves nothing behind
    T.eq(srv, nil, "started beside a foreign listener (reuse " .. tostring(reuse) .. ")")
    assert(err:find(string.format("port %d is already in use by pid %d (", port, f.pid), 1, true), err)
    assert(err:find("sim --port " .. port, 1, true), "the command line: " .. err)
    T.eq(s2, nil, "the sim backend too")
    assert(err2:find("already in use by pid " .. f.pid, 1, true), err2)
  end
end)

T.case("runner: a cell whose server's port is taken fails, naming the holder; nothing of it is measured", function()
  if not linux then print("skipped: " .. "no /proc/net/tcp") return end
  local port = assert(proc.free_port())
  local f = foreign_sim(port, false)
  -- the "server" never listens: whatever answers on the port is the foreign one
  local rc, data, report = run_plan(string.format([[
name: taken
server: {backend: command, port: %d, extra: {argv: [sleep, "30"], ready: {http: /health}}}
]], port) .. PROMPTS)
  f:stop(5)
  local cell = data.cells[1]
  T.eq(cell.status, "failed", "status")
  assert(cell.error:find(string.format("port %d is already in use by pid %d (", port, f.pid), 1, true), cell.error)
  T.eq(cell.summary and cell.summary.requests or 0, 0, "requests measured")
  T.eq(rc, 1, "exit status")
  assert(report:find("already in use", 1, true), report)
end)

T.case("after the spawn, a foreign listener beside ours (SO_REUSEPORT) is found", function()
  if not linux then print("skipped: " .. "no /proc/net/tcp") return end
  local port = assert(proc.free_port())
  -- ours listens through a child of a shell: in its group and tree, so ours
  local p = assert(proc.spawn{argv = {"sh", "-c", '"$0" sim --port "$1" --reuse-port & wait',
                                      bench.executable, tostring(port)}})
  assert(proc.wait_ready{proc = p, http = string.format("http://127.0.0.1:%d/health", port), timeout = 10})
  T.eq(proc.check_port_owner(p, port), true, "only ours")
  local f = foreign_sim(port, true)
  local ok, err = proc.check_port_owner(p, port)
  T.eq(ok, nil, "foreign found")
  assert(err:find("also held by pid " .. f.pid, 1, true), err)
  assert(not err:find("pid " .. p.pid .. " (", 1, true), "ours is not named as foreign: " .. err)
  f:stop(5)
  p:stop(5)
end)

T.case("a server left by a SIGKILLed earlier benchrun is found and named", function()
  if not linux then print("skipped: " .. "no /proc/net/tcp and no PR_SET_PDEATHSIG") return end
  local port = assert(proc.free_port())
  -- an earlier benchrun whose server (a shell) started the real listener,
  -- then SIGKILLed: the shell dies with it, the listener stays behind
  local script = string.format([[
local s = assert(proc.spawn{argv = {"sh", "-c", '"$0" sim --port %d --reuse-port & echo $!; wait', bench.executable}})
print(s.pid, assert(s:wait_for_line("^%%d+$", 10)))
io.stdout:flush()
clock.sleep(60)
]], port)
  local earlier = assert(proc.spawn{argv = {bench.executable, "-e", script}})
  local line = assert(earlier:wait_for_line("^%d+%s+%d+$", 10))
  local shell, left = line:match("^(%d+)%s+(%d+)$")
  shell, left = tonumber(shell), tonumber(left)
  assert(proc.wait_ready{http = string.format("http://127.0.0.1:%d/health", port), timeout = 10})
  assert(proc.kill(earlier.pid, "KILL"))
  wait_dead(earlier)
  for _ = 1, 200 do if not proc.pid_alive(shell) then break end clock.sleep(0.01) end
  T.eq(proc.pid_alive(shell), false, "the earlier server's shell died with its benchrun")
  T.eq(proc.pid_alive(left), true, "its listener was left behind")
  local srv, err = backends.get("sim").start{port = port}
  if srv then srv:stop() end
  proc.kill(left, "KILL")
  T.eq(srv, nil, "started on the port of the left-behind server")
  assert(err:find(string.format("already in use by pid %d (%s sim --port %d", left, bench.executable, port), 1, true), err)
  assert(err:find(string.format("left behind: the leader of its process group (pid %d) is gone", shell), 1, true), err)
end)

---------------------------------------------------------------------------
-- readiness
---------------------------------------------------------------------------

T.case("the readiness probe reads a Content-Length answer without waiting for the close", function()
  local raw = os.getenv("BENCHRUN_RAWSERVER")
  if not raw then print("skipped: " .. "BENCHRUN_RAWSERVER not set") return end
  local function serve(script)
    local sf, pf = dir .. "/ready.script", dir .. "/ready.port"
    os.remove(pf)
    local f = assert(io.open(sf, "w"))
    f:write(script)
    f:close()
    local s = assert(proc.spawn{argv = {raw, pf, sf}})
    local port
    for _ = 1, 500 do
      local h = io.open(pf)
      if h then port = tonumber(h:read("a")) h:close() end
      if port then break end
      clock.sleep(0.01)
    end
    return s, assert(port, "rawserver port")
  end
  -- the whole answer, then the connection stays open (keep-alive)
  local s, port = serve("expect-request\nsend HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\n"
    .. "Content-Length: 15\\r\\n\\r\\n{\"status\":\"ok\"}\nsleep 30000\n")
  local sw = clock.stopwatch()
  local status, body = proc.probe_http(string.format("http://127.0.0.1:%d/health", port), 3)
  T.eq(status, 200, "status (" .. tostring(body) .. ")")
  T.eq(body, '{"status":"ok"}', "body")
  assert(sw:elapsed() < 1, "waited for the close: " .. sw:elapsed() .. " s")
  s:stop(1)
  -- the head and the body in separate writes; a 503 with an empty body
  s, port = serve("expect-request\nsend HTTP/1.1 503 Service Unavailable\\r\\nContent-Length: 0\\r\\n\\r\\n\n"
    .. "expect-request\nsend HTTP/1.1 200 OK\\r\\ncontent-length: 2\\r\\n\\r\\n\nsleep 200\nsend ok\nsleep 30000\n")
  sw = clock.stopwatch()
  status, body = proc.probe_http(string.format("http://127.0.0.1:%d/health", port), 3)
  T.eq(status, 503, "empty body")
  T.eq(body, "", "body")
  assert(sw:elapsed() < 1, "waited for the close: " .. sw:elapsed() .. " s")
  s:stop(1)
  s, port = serve("expect-request\nsend HTTP/1.1 200 OK\\r\\ncontent-length: 2\\r\\n\\r\\n\nsleep 200\nsend ok\n"
    .. "sleep 30000\n")
  sw = clock.stopwatch()
  local t = proc.wait_ready{http = string.format("http://127.0.0.1:%d/health", port), timeout = 5}
  assert(t and sw:elapsed() < 1.5, "wait_ready: " .. tostring(t) .. " after " .. sw:elapsed() .. " s")
  s:stop(1)
end)

T.done()
