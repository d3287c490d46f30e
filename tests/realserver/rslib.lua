-- Shared helpers for the tests against a real llama-server (issue 13).
-- tools/realserver.sh (the ctest fixture realserver/build) built it and made
-- the models; its env file says where, or why this machine cannot build it
-- (then the test skips: exit 77, printed reason).
local backends = require("bench.backends")
local R = {}

local function read_env()
  local path = os.getenv("BENCHRUN_REALSERVER_ENV")
  if not path then return nil, "BENCHRUN_REALSERVER_ENV is not set (run through ctest)" end
  local f = io.open(path)
  if not f then return nil, path .. " is missing: the fixture realserver/build did not run" end
  local env = {}
  for line in f:lines() do
    local k, v = line:match("^([%w_]+)=(.*)$")
    if k then env[k] = v end
  end
  f:close()
  if env.SKIP then return nil, env.SKIP end
  return env
end

-- R.setup() -> {server = path, quantize = path, models = folder}, or exits 77
function R.setup()
  local env, why = read_env()
  if not env then
    print("SKIP: no real llama-server: " .. why)
    os.exit(77, true)
  end
  return {server = env.LLAMA_SERVER, quantize = env.LLAMA_QUANTIZE, models = env.MODELS}
end

-- R.start(rs, model, args, opts) -> srv (raises on failure, with the
-- server's output). One thread: ggml's threads wait for each other at
-- every step, and on a shared 2-core machine a second one that is not
-- scheduled stalls both (a request took seconds instead of milliseconds).
function R.start(rs, model, args, opts)
  local a = {"-t", "1", "-c", "1024"}
  for _, x in ipairs(args or {}) do a[#a + 1] = x end
  local o = {binary = rs.server, model = rs.models .. "/" .. model, args = a, ready_timeout = 120}
  for k, v in pairs(opts or {}) do o[k] = v end
  local srv, err = backends.get("llama-server").start(o)
  if not srv then error("llama-server did not start: " .. tostring(err), 2) end
  return srv
end

return R
