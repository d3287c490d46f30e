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

return T
