-- Shared helpers for Lua tests (run by `benchrun run tests/lua/x_test.lua`).
-- Plain asserts in the style of Lua's own testes: small and readable.
local T = {}

local passed, failed = 0, 0

local function fmt(v)
  if type(v) == "string" then return string.format("%q", v) end
  return tostring(v)
end

-- T.eq(actual, expected, what): equal, printing both on failure.
function T.eq(actual, expected, what)
  if actual ~= expected then
    error(string.format("%s: expected %s, got %s", what or "value", fmt(expected), fmt(actual)), 2)
  end
end

-- T.near(actual, expected, tolerance, what): |actual - expected| <= tolerance.
function T.near(actual, expected, tol, what)
  if type(actual) ~= "number" or math.abs(actual - expected) > tol then
    error(string.format("%s: expected %s ± %s, got %s", what or "value", fmt(expected), fmt(tol), fmt(actual)), 2)
  end
end

-- T.checkerr(pattern, f, ...): f(...) raises an error whose message contains pattern (plain text).
function T.checkerr(pattern, f, ...)
  local ok, err = pcall(f, ...)
  if ok then error("expected an error matching " .. fmt(pattern) .. ", got success", 2) end
  err = tostring(err)
  if not err:find(pattern, 1, true) then
    error(string.format("expected an error containing %s, got %s", fmt(pattern), fmt(err)), 2)
  end
  return err
end

-- T.case(name, fn): run one named case; failures are counted, not fatal.
function T.case(name, fn)
  local ok, err = xpcall(fn, debug.traceback)
  if ok then
    passed = passed + 1
    print("ok     " .. name)
  else
    failed = failed + 1
    print("FAILED " .. name .. "\n" .. tostring(err))
  end
end

-- T.done(): print the tally and exit non-zero if anything failed.
function T.done()
  print(string.format("%d passed, %d failed", passed, failed))
  os.exit(failed == 0 and 0 or 1, true)
end

-- T.tmpdir(): a fresh, empty temporary folder.
function T.tmpdir()
  local p = os.tmpname()
  os.remove(p)
  local r = require("bench.proc").run{argv = {"mkdir", "-p", p}}
  assert(r and r.code == 0, "mkdir " .. p)
  return p
end

-- T.sim(args): start `benchrun sim` on a free loopback port with extra argv
-- (a list of strings); returns {url = "http://127.0.0.1:PORT", port = n, proc = handle}.
-- The process is stopped when the returned table is closed or collected.
function T.sim(args)
  local proc = require("bench.proc")
  local portfile = os.tmpname()
  local argv = {bench.executable, "sim", "--port", "0", "--port-file", portfile}
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  local p = assert(proc.spawn{argv = argv, stdout = "capture", stderr = "capture"})
  local port
  for _ = 1, 500 do
    local f = io.open(portfile)
    if f then
      port = tonumber(f:read("a"))
      f:close()
      if port then break end
    end
    if not p:alive() then break end
    require("bench.clock").sleep(0.01)
  end
  os.remove(portfile)
  if not port then
    p:stop(1)
    error("benchrun sim did not start: " .. tostring(p:tail(20)), 2)
  end
  local s = {url = "http://127.0.0.1:" .. port, port = port, proc = p}
  return setmetatable(s, {__close = function(self) self.proc:stop(2) end,
                          __gc = function(self) self.proc:stop(2) end})
end

-- T.run_plan(dir, text, opts): write `text` as a plan file in dir, validate
-- and run it quietly (runner options over {out, quiet}); -> exit status, the
-- loaded results (bench.results.load), the results folder.
local plan_n = 0
function T.run_plan(dir, text, opts)
  local P, runner, results = require("bench.plan"), require("bench.runner"), require("bench.results")
  plan_n = plan_n + 1
  local path = string.format("%s/plan%d.yaml", dir, plan_n)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  local plan, errs = P.load(path, {})
  if not plan then error("plan did not validate: " .. table.concat(errs, "\n"), 2) end
  local out = string.format("%s/out%d", dir, plan_n)
  local o = {out = out, quiet = true}
  for k, v in pairs(opts or {}) do o[k] = v end
  -- quiet mode prints the report's path on stdout: keep it off the test's output
  local stdout, tmp = io.stdout, os.tmpname()
  io.stdout = assert(io.open(tmp, "w"))
  local ok, rc = pcall(runner.run, plan, o)
  io.stdout:close()
  io.stdout = stdout
  os.remove(tmp)
  if not ok then error(rc, 2) end
  local ls = assert(io.popen("ls -d " .. out .. "/*/"))
  local rdir = ls:read("l")
  ls:close()
  return rc, assert(results.load(rdir)), rdir
end

-- T.read_file(path) -> its bytes, or nil when it cannot be opened
function T.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- T.raw{steps...}: tests/helpers/rawserver following these script lines (see
-- its header), a hostile server whose every byte the test writes; returns
-- {url, port, proc, log()}, stopped when closed. ctest passes the binary in
-- BENCHRUN_RAWSERVER; by hand it is looked for beside benchrun.
T.RAWSERVER = os.getenv("BENCHRUN_RAWSERVER") or (bench.executable:match("^(.*)/[^/]*$") or ".") .. "/tests/rawserver"

-- a Lua string as a rawserver `send` step (control bytes and backslashes escaped)
function T.send_step(s)
  return "send " .. s:gsub("[%c\\\128-\255]", function(c) return string.format("\\x%02x", c:byte()) end)
end

function T.raw(steps)
  local proc, clock = require("bench.proc"), require("bench.clock")
  local script, log, portfile = os.tmpname(), os.tmpname(), os.tmpname()
  local f = assert(io.open(script, "wb"))
  f:write(table.concat(steps, "\n") .. "\n")
  f:close()
  local p = assert(proc.spawn{argv = {T.RAWSERVER, portfile, script, log}, stdout = "capture", stderr = "capture"})
  local port
  for _ = 1, 500 do
    local pf = io.open(portfile)
    if pf then port = tonumber(pf:read("a")) pf:close() end
    if port or not p:alive() then break end
    clock.sleep(0.01)
  end
  os.remove(portfile)
  if not port then
    p:stop(1)
    error("rawserver did not start: " .. tostring(p:tail(20)), 2)
  end
  local s = {url = "http://127.0.0.1:" .. port, port = port, proc = p}
  -- what the client sent and the `log` markers ("" before anything)
  function s.log() return T.read_file(log) or "" end
  return setmetatable(s, {__close = function(self)
    self.proc:stop(2)
    os.remove(script)
    os.remove(log)
  end})
end

return T
