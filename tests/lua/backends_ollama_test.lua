-- Ollama as it really behaves (issue 19, item 9): the load-only
-- /api/generate answers {done_reason: "load"} with no durations once the
-- model is loaded (the simulator's Ollama dialect does so too), OLLAMA_HOST
-- takes an IPv6 host only in brackets, and tests/fixtures-bin/ollama answers
-- as the real CLI.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local backends = require("bench.backends")
local proc = require("bench.proc")
local clock = require("bench.clock")
local json = require("cjson")
local bin = os.getenv("BENCHRUN_TESTS") .. "/fixtures-bin"

local function post(url, body, timeout)
  local r = require("bench.http").request{method = "POST", url = url, body = json.encode(body),
                                          headers = {["Content-Type"] = "application/json"},
                                          timeout = {total = timeout or 30}}
  assert(not r.error, tostring(r.error))
  return r
end

T.case("sim ollama: a load-only /api/generate waits for the load and answers done_reason load", function()
  local s <close> = T.sim{"--dialect", "ollama", "--model", "llama3", "--load-time", "800ms"}
  local t0 = clock.now()
  local r = post(s.url .. "/api/generate", {model = "llama3", keep_alive = "60m"})
  local waited = (clock.now() - t0) / 1e9
  T.eq(r.status, 200, "status")
  assert(waited >= 0.6, "answered after " .. waited .. " s, before the model was loaded")
  assert(r.headers["content-type"]:find("application/json", 1, true), "one JSON object, not NDJSON")
  local doc = json.decode(r.body)
  T.eq(doc.done, true, "done")
  T.eq(doc.done_reason, "load", "done_reason")
  T.eq(doc.response, "", "no text")
  T.eq(doc.model, "llama3", "model")
  assert(doc.created_at:match("^%d+%-%d+%-%d+T"), "created_at")
  T.eq(doc.load_duration, nil, "no load_duration")
  T.eq(doc.eval_count, nil, "nothing generated")
  -- loaded: at once; keep_alive 0 unloads
  r = post(s.url .. "/api/generate", {model = "llama3", prompt = ""})
  T.eq(json.decode(r.body).done_reason, "load", "empty prompt")
  r = post(s.url .. "/api/generate", {model = "llama3", keep_alive = 0})
  T.eq(json.decode(r.body).done_reason, "unload", "keep_alive 0")
  -- a prompt still generates
  r = post(s.url .. "/api/generate", {model = "llama3", prompt = "hi", stream = false, options = {num_predict = 3}})
  doc = json.decode(r.body)
  T.eq(doc.eval_count, 3, "a generation")
end)

T.case("ollama: load time is measured to the load answer; no server_load_s made up", function()
  local o = backends.get("ollama")
  local srv <close> = assert(o.start{model = "llama3", binary = bin .. "/ollama",
                                     env = {set = {FAKE_OLLAMA_BENCHRUN = bench.executable,
                                                   FAKE_OLLAMA_ARGS = "--load-time 800ms"}}})
  assert(srv.load_time_s >= 0.7, "load time " .. srv.load_time_s)
  T.eq(srv.server_load_s, nil, "Ollama's load answer carries no load_duration")
  T.eq(srv:version(), "ollama 0.5.7", "version from /api/version")
end)

T.case("ollama: an IPv6 host goes into OLLAMA_HOST in brackets", function()
  if proc.run{argv = {T.RAWSERVER, "--bind-check", "::1"}}.code ~= 0 then
    print("skip: no IPv6 loopback here")
    return
  end
  local o = backends.get("ollama")
  local srv <close> = assert(o.start{model = "llama3", binary = bin .. "/ollama", host = "::1", port = proc.free_port(), ready_timeout = 10,
                                     env = {set = {FAKE_OLLAMA_BENCHRUN = bench.executable}}})
  assert(srv.base_url:find("^http://%[::1%]:%d+$"), srv.base_url)
end)

T.case("fake ollama: the real CLI's errors, exit codes and OLLAMA_HOST parsing", function()
  local r = proc.run{argv = {bin .. "/ollama", "serve", "extra"}}
  T.eq(r.code, 1, "serve takes no arguments")
  T.eq(r.stderr, "Error: accepts 0 arg(s), received 1\n", "cobra's message")
  r = proc.run{argv = {bin .. "/ollama", "nope"}}
  T.eq(r.code, 1, "unknown command")
  T.eq(r.stderr, "Error: unknown command \"nope\" for \"ollama\"\n", "cobra's message")
  r = proc.run{argv = {bin .. "/ollama", "--version"}}
  T.eq(r.code, 0, "version")
  T.eq(r.stdout, "Warning: could not connect to a running Ollama instance\nWarning: client version is 0.5.7\n",
       "no server running")
  -- `start` is serve's alias; a scheme and a path are taken off OLLAMA_HOST
  local port = proc.free_port()
  local p = assert(proc.spawn{argv = {bin .. "/ollama", "start"}, stdout = "capture", stderr = "capture",
                              env = {set = {OLLAMA_HOST = "http://127.0.0.1:" .. port .. "/",
                                            FAKE_OLLAMA_BENCHRUN = bench.executable}}})
  local t = proc.wait_ready{proc = p, http = "http://127.0.0.1:" .. port .. "/", timeout = 10}
  p:stop(2)
  assert(t, "listening on the port OLLAMA_HOST names")
end)

T.done()
