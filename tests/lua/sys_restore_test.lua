-- bench.sys: host facts, sysctl through a fake sysctl/sudo, and the restore
-- journal after a normal end, an error, SIGTERM and SIGKILL of benchrun.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local proc, sys = require("bench.proc"), require("bench.sys")
local fixtures = os.getenv("BENCHRUN_TESTS") .. "/fixtures-bin"

local function read(path)
  local f = io.open(path)
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return (s:gsub("%s+$", ""))
end

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text .. "\n")
  f:close()
end

-- A fresh fake machine: one sysctl value, a state folder, env for benchrun.
local function machine(extra)
  local dir = T.tmpdir()
  proc.run{argv = {"mkdir", dir .. "/values", dir .. "/state"}}
  write(dir .. "/values/iogpu.wired_limit_mb", "0")
  local env = {BENCHRUN_STATE_DIR = dir .. "/state", BENCHRUN_SYSCTL = fixtures .. "/sysctl",
               BENCHRUN_SUDO = fixtures .. "/sudo", FAKE_SYSCTL_DIR = dir .. "/values",
               FAKE_SUDO_LOG = dir .. "/sudo.log"}
  for k, v in pairs(extra or {}) do env[k] = v end
  return {dir = dir, env = env, value = function() return read(dir .. "/values/iogpu.wired_limit_mb") end}
end

local function benchrun(m, code, opts)
  opts = opts or {}
  return proc.run{argv = {bench.executable, "-e", code}, env = {set = m.env}, timeout = 20}
end

T.case("info names the host", function()
  local i = sys.info()
  assert(i.os and i.kernel and i.arch and i.hostname, "os, kernel, arch, hostname")
  assert(i.cpu.cores >= 1, "cores")
  assert(i.ram > 0, "ram")
  assert(type(i.gpus) == "table", "gpus")
end)

T.case("sysctl_get reads directly; bad names raise", function()
  if proc.run{argv = {"test", "-r", "/proc/sys/kernel/ostype"}}.code == 0 then
    T.eq(sys.sysctl_get("kernel.ostype"), "Linux", "kernel.ostype")
  end
  local v, err = sys.sysctl_get("benchrun.no.such.knob")
  T.eq(v, nil, "missing")
  assert(err:find("cannot read sysctl benchrun.no.such.knob", 1, true), err)
  T.checkerr("is not a sysctl name", sys.sysctl_get, "../etc/passwd")
  T.checkerr("is not a sysctl name", sys.sysctl_set, "a b", 1)
end)

T.case("a change is restored at a normal end", function()
  local m = machine()
  local r = benchrun(m, [[
    assert(sys.sysctl_set("iogpu.wired_limit_mb", 65536) == "0")
    assert(sys.sysctl_get("iogpu.wired_limit_mb") == "65536")
    assert(#sys.journal() == 1)
    return "changed"]])
  T.eq(r.code, 0, "exit: " .. r.stderr)
  T.eq(r.stdout, "changed\n", "stdout")
  T.eq(m.value(), "0", "restored")
  T.eq(read(m.dir .. "/state/restore.json"), nil, "journal removed")
  assert(read(m.dir .. "/sudo.log"):find("sudo -n " .. fixtures .. "/sysctl -w iogpu.wired_limit_mb=65536", 1, true),
         "went through sudo -n: " .. read(m.dir .. "/sudo.log"))
end)

T.case("a change is restored after an error", function()
  local m = machine()
  local r = benchrun(m, [[sys.sysctl_set("iogpu.wired_limit_mb", 1000); error("phase failed")]])
  T.eq(r.code, 1, "exit")
  assert(r.stderr:find("phase failed", 1, true), r.stderr)
  T.eq(m.value(), "0", "restored")
end)

T.case("restore_all undoes in-run changes, keeping the first original", function()
  local m = machine()
  local r = benchrun(m, [[
    sys.sysctl_set("iogpu.wired_limit_mb", 1)
    sys.sysctl_set("iogpu.wired_limit_mb", 2)
    local list = sys.restore_all()
    assert(#list == 1 and list[1].ok and list[1].value == "0", json.encode(list))
    return sys.sysctl_get("iogpu.wired_limit_mb")]])
  T.eq(r.stdout, "0\n", "value after restore_all: " .. r.stderr)
end)

T.case("a change is restored when benchrun gets SIGTERM", function()
  local m = machine()
  local p = assert(proc.spawn{argv = {bench.executable, "-e",
    [[sys.sysctl_set("iogpu.wired_limit_mb", 4096); print("set"); io.stdout:flush(); clock.sleep(60)]]},
    env = {set = m.env}})
  assert(p:wait_for_line("^set$", 20))
  T.eq(m.value(), "4096", "changed")
  p:signal("TERM")
  local info = p:wait(20)
  T.eq(info.code, 128 + 15, "exit status")
  T.eq(m.value(), "0", "restored")
end)

T.case("a change left by a SIGKILLed benchrun is restored by the next one", function()
  local m = machine()
  local p = assert(proc.spawn{argv = {bench.executable, "-e",
    [[sys.sysctl_set("iogpu.wired_limit_mb", 8192); print("set"); io.stdout:flush(); clock.sleep(60)]]},
    env = {set = m.env}})
  assert(p:wait_for_line("^set$", 20))
  p:signal("KILL")
  p:wait(20)
  T.eq(m.value(), "8192", "still changed after SIGKILL")
  local journal = read(m.dir .. "/state/restore.json")
  assert(journal and journal:find('"original":%s*"0"'), "journal on disk: " .. tostring(journal))
  local r = benchrun(m, [[return #sys.journal()]])
  T.eq(r.stdout, "0\n", "journal empty in the next run")
  assert(r.stderr:find("restored sysctl iogpu.wired_limit_mb=0", 1, true), r.stderr)
  T.eq(m.value(), "0", "restored by the next run")
end)

T.case("sudo refused: a clear error, nothing changed, nothing journaled", function()
  local m = machine{FAKE_SUDO_REFUSE = "1"}
  local r = benchrun(m, [[
    local ok, err = sys.sysctl_set("iogpu.wired_limit_mb", 1)
    assert(ok == nil)
    print(err)
    return #sys.journal()]])
  assert(r.stdout:find("sudo refused (sudo: a password is required)", 1, true), r.stdout .. r.stderr)
  assert(r.stdout:find("0\n$"), "journal empty: " .. r.stdout)
  T.eq(m.value(), "0", "unchanged")
end)

T.case("a parameter that does not exist is an error before any change", function()
  local m = machine()
  local r = benchrun(m, [[return select(2, sys.sysctl_set("iogpu.no_such", 1))]])
  assert(r.stdout:find("cannot read sysctl iogpu.no_such", 1, true), r.stdout .. r.stderr)
end)

-- a benchrun that holds iogpu.wired_limit_mb at value until its stdin closes
local function holder(m, value, env)
  local set = {}
  for k, v in pairs(m.env) do set[k] = v end
  for k, v in pairs(env or {}) do set[k] = v end
  local p = assert(proc.spawn{argv = {bench.executable, "-e", string.format([[
    local ok, err = sys.sysctl_set("iogpu.wired_limit_mb", %q)
    print(ok and "set" or ("refused: " .. tostring(err))); io.stdout:flush()
    io.read("a")]], value)}, env = {set = set}, stdin = "pipe"})
  return p
end

T.case("two benchruns: the second is refused a name the first holds; the original comes back", function()
  local m = machine()
  local a = holder(m, "100")
  assert(a:wait_for_line("^set$", 20), "a set it")
  local b = holder(m, "200")
  local line = b:wait_for_line("^refused", 20)
  assert(line, "b was refused: " .. tostring(b:output()))
  assert(line:find("in use by another benchrun (pid " .. a.pid, 1, true), line)
  b:close_stdin()
  b:wait(20)
  T.eq(m.value(), "100", "a's value untouched by b")
  a:close_stdin()
  a:wait(20)
  T.eq(m.value(), "0", "the true original after both ended")
end)

T.case("the entry of a benchrun killed while another runs is taken over with its original", function()
  local m = machine()
  -- b starts first (its start-up restore finds nothing), a sets and is killed
  local set = {}
  for k, v in pairs(m.env) do set[k] = v end
  local b = assert(proc.spawn{argv = {bench.executable, "-e", [[
    print("ready"); io.stdout:flush()
    io.read("l")
    print(sys.sysctl_set("iogpu.wired_limit_mb", 300)); io.stdout:flush()
    io.read("a")]]}, env = {set = set}, stdin = "pipe"})
  assert(b:wait_for_line("^ready$", 20))
  local a = holder(m, "100")
  assert(a:wait_for_line("^set$", 20))
  a:signal("KILL")
  a:wait(20)
  b:write("go\n")
  assert(b:wait_for_line("^100$", 20), "b saw 100 as the value before its change: " .. tostring(b:output()))
  T.eq(m.value(), "300", "b's value")
  b:close_stdin()
  local info = b:wait(20)
  T.eq(info.code, 0, "b's exit")
  assert(b:tail(50):find("taking over the journal entry of benchrun pid " .. a.pid, 1, true), b:tail(50))
  T.eq(m.value(), "0", "a's original, not the 100 b found")
  T.eq(read(m.dir .. "/state/restore.json"), nil, "journal empty")
end)

T.case("a torn journal is kept, refuses changes and is warned about", function()
  local m = machine()
  local torn = '{"version": 1, "entries": [{"name": "iogpu.wired_limit_mb", "original": "0", "val'
  local f = assert(io.open(m.dir .. "/state/restore.json", "w"))
  f:write(torn)
  f:close()
  local r = benchrun(m, [[return select(2, sys.sysctl_set("iogpu.wired_limit_mb", 5))]])
  assert(r.stdout:find("cannot be read", 1, true) and r.stdout:find("nothing changed", 1, true), r.stdout .. r.stderr)
  assert(r.stderr:find("WARNING", 1, true) and r.stderr:find("restore.json", 1, true), "warned: " .. r.stderr)
  T.eq(m.value(), "0", "unchanged")
  T.eq(assert(io.open(m.dir .. "/state/restore.json")):read("a"), torn, "kept byte for byte")
  r = benchrun(m, [[return 1]])
  T.eq(r.code, 0, "a run that changes nothing still works: " .. r.stderr)
  assert(r.stderr:find("cannot be read", 1, true), "and warns: " .. r.stderr)
  T.eq(assert(io.open(m.dir .. "/state/restore.json")):read("a"), torn, "still kept")
end)

T.case("os.exit restores sysctl values and stops child processes", function()
  local m = machine()
  local r = benchrun(m, [[
    sys.sysctl_set("iogpu.wired_limit_mb", 5)
    local p = proc.spawn{argv = {"sleep", "300"}}
    io.stdout:write(p.pid, "\n")
    os.exit(3)]])
  T.eq(r.code, 3, "the status given: " .. r.stderr)
  T.eq(m.value(), "0", "restored")
  local pid = tonumber(r.stdout:match("%d+"))
  assert(pid, r.stdout)
  clock.sleep(0.2)
  T.eq(proc.pid_alive(pid), false, "child stopped")
end)

T.case("a restore sudo refuses fails the exit status and says so", function()
  local m = machine{FAKE_SUDO_ALLOW_ONLY = "1"}
  local r = benchrun(m, [[assert(sys.sysctl_set("iogpu.wired_limit_mb", 7)); return "done"]])
  T.eq(m.value(), "7", "left changed (sudo refused the restore)")
  T.eq(r.code, 1, "exit status: " .. r.stderr)
  assert(r.stderr:find("could not be restored", 1, true) and r.stderr:find("sudo refused", 1, true), r.stderr)
  assert(read(m.dir .. "/state/restore.json"):find('"original":%s*"0"'), "still journaled")
end)

T.case("a second signal ends benchrun whatever Lua does: children stopped, sysctl restored", function()
  local m = machine()
  local p = assert(proc.spawn{argv = {bench.executable, "-e", [[
    sys.sysctl_set("iogpu.wired_limit_mb", 9)
    local child = proc.spawn{argv = {"sleep", "300"}}
    -- a clean-up that never ends (and swallows every error)
    local c <close> = setmetatable({}, {__close = function()
      print("cleaning"); io.stdout:flush()
      while true do pcall(function() while true do end end) end
    end})
    print("child " .. child.pid); io.stdout:flush()
    clock.sleep(300)]]}, env = {set = m.env}})
  local line = assert(p:wait_for_line("^child ", 20))
  local child = tonumber(line:match("%d+"))
  p:signal("INT")
  assert(p:wait_for_line("^cleaning$", 20), "the first signal reached the clean-up")
  clock.sleep(0.5)
  T.eq(p:alive(), true, "still in its clean-up")
  p:signal("INT")
  local info = p:wait(20)
  T.eq(info.code, 130, "exit status 128+SIGINT")
  T.eq(m.value(), "0", "restored")
  T.eq(proc.pid_alive(child), false, "child stopped")
  assert(p:tail(50):find("second signal", 1, true), p:tail(50))
end)

T.case("an entry whose pid now belongs to another program is restored, not held forever", function()
  if proc.run{argv = {"test", "-r", "/proc/self/comm"}}.code ~= 0 then return end   -- Linux only
  local m = machine()
  local stranger = assert(proc.spawn{argv = {"sleep", "300"}})
  write(m.dir .. "/values/iogpu.wired_limit_mb", "77")
  write(m.dir .. "/state/restore.json", json.encode{version = 1, entries = {
    {name = "iogpu.wired_limit_mb", original = "0", value = "77", pid = stranger.pid, time = os.time(),
     program = fixtures .. "/sysctl"}}})
  local r = benchrun(m, [[return #sys.journal()]])
  stranger:stop()
  T.eq(r.stdout, "0\n", "journal empty: " .. r.stderr)
  T.eq(m.value(), "0", "restored")
end)

T.done()
