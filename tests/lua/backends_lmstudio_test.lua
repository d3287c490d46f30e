-- The lmstudio adapter against a fake `lms` (tests/fixtures-bin/lms) whose
-- server is the simulator in LM Studio's dialect; the ollama adapter against
-- a fake `ollama serve`.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local backends = require("bench.backends")
local proc = require("bench.proc")
local bin = os.getenv("BENCHRUN_TESTS") .. "/fixtures-bin"

local function fake_env(dir, extra)
  local set = {FAKE_LMS_DIR = dir, FAKE_LMS_BENCHRUN = bench.executable}
  for k, v in pairs(extra or {}) do set[k] = v end
  return {set = set}
end

local function calls(dir)
  local f = io.open(dir .. "/calls")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

T.case("lmstudio: server start, timed load, ready, unload and server stop", function()
  local dir = T.tmpdir()
  local lm = backends.get("lmstudio")
  local port = proc.free_port()
  local srv = assert(lm.start{model = "qwen3-8b", binary = bin .. "/lms", port = port,
                              args = {"--gpu", "max", "--context-length", 8192},
                              env = fake_env(dir, {FAKE_LMS_LOAD_TIME = "0.4"})})
  T.eq(srv.base_url, "http://127.0.0.1:" .. port, "base_url")
  T.eq(srv.dialect, "lmstudio", "dialect")
  T.eq(srv.model, "qwen3-8b", "identifier")
  assert(srv.load_time_s >= 0.35 and srv.load_time_s < 10, "load time " .. srv.load_time_s)
  T.eq(srv.server_load_s, 0.4, "LM Studio's own figure")
  T.eq(srv.pid, nil, "not our child")
  assert(srv:version():find("0.3.99", 1, true), "version")
  assert(srv:loaded():find("Identifier: qwen3-8b", 1, true), "lms ps")
  T.eq(srv:alive(), true, "alive")
  assert(srv:models(), "models over REST")
  local c = require("bench.openai").client{base_url = srv.base_url, dialect = srv.dialect, model = srv.model}
  assert(c:chat{prompt = "hi", max_tokens = 3}.ok, "a request")
  srv:stop()
  T.eq(srv:alive(), false, "server stopped")
  local log = calls(dir)
  assert(log:find("server start --port " .. port, 1, true), log)
  assert(log:find("load qwen3-8b --identifier qwen3-8b -y --gpu max --context-length 8192", 1, true), log)
  assert(log:find("unload qwen3-8b", 1, true) and log:find("server stop", 1, true), log)
end)

T.case("lmstudio: a model that does not exist; a server already running is kept", function()
  local dir = T.tmpdir()
  local lm = backends.get("lmstudio")
  local env = fake_env(dir, {FAKE_LMS_MISSING = "no-such-model", FAKE_LMS_LOAD_TIME = "0"})
  local srv, err = lm.start{model = "no-such-model", binary = bin .. "/lms", port = proc.free_port(), env = env}
  T.eq(srv, nil, "missing model")
  assert(err:find('No model found that matches path "no-such-model"', 1, true), err)
  assert(calls(dir):find("server stop", 1, true), "the server it started is stopped again")
  -- a server the user started stays up
  local port = proc.free_port()
  assert(require("bench.backends.lmstudio").lms(bin .. "/lms", {"server", "start", "--port", port}, 30, env))
  srv = assert(lm.start{model = "m", binary = bin .. "/lms", env = env})
  T.eq(srv.port, port, "uses the running server's port")
  srv:stop()
  T.eq(srv:alive(), true, "the user's server is left running")
  require("bench.backends.lmstudio").lms(bin .. "/lms", {"server", "stop"}, 30, env)
end)

T.case("lmstudio: restart_server starts a fresh server (with the env) over a running one", function()
  local dir = T.tmpdir()
  local lm = backends.get("lmstudio")
  local env = fake_env(dir, {FAKE_LMS_LOAD_TIME = "0"})
  local port = proc.free_port()
  assert(require("bench.backends.lmstudio").lms(bin .. "/lms", {"server", "start", "--port", port}, 30, env))
  local srv = assert(lm.start{model = "m", binary = bin .. "/lms", port = port, env = env,
                              extra = {restart_server = true}})
  local log = calls(dir)
  local stop_at = assert(log:find("server stop", 1, true), log)
  local start_at = assert(log:find("server start --port " .. port, stop_at, true), "started again after the stop: " .. log)
  assert(start_at > stop_at)
  srv:stop()
  T.eq(srv:alive(), false, "the server it started is stopped")
end)

T.case("ollama: serve on OLLAMA_HOST, load through /api/generate, version", function()
  local o = backends.get("ollama")
  local srv <close> = assert(o.start{model = "llama3", binary = bin .. "/ollama",
                                     env = {set = {FAKE_OLLAMA_BENCHRUN = bench.executable}}})
  T.eq(srv.dialect, "ollama", "dialect")
  T.eq(srv.model, "llama3", "model")
  assert(srv.load_time_s > 0, "load time")
  local ids = assert(srv:models())
  T.eq(ids[1], "llama3", "models from /api/tags")
end)

T.done()
