-- bench.backends against real processes: the simulator, `command`,
-- `external`, bad binaries and servers that never get ready.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local backends = require("bench.backends")
local proc, mem, clock = require("bench.proc"), require("bench.mem"), require("bench.clock")
local openai = require("bench.openai")
local MiB = 1024 * 1024

T.case("get knows every adapter and names the unknown", function()
  for _, n in ipairs(backends.names) do assert(backends.get(n), n) end
  assert(backends.get("llama.cpp").name == "llama-server", "alias")
  local b, err = backends.get("tgi")
  T.eq(b, nil, "unknown")
  assert(err:find("unknown backend 'tgi' (known: llama-server", 1, true), err)
end)

T.case("sim: load time follows --load-time; version, models, stop", function()
  local sim = backends.get("sim")
  local srv <close> = assert(sim.start{model = "m-1", args = {"--load-time", "0.5s"}, dialect = "llama.cpp"})
  assert(srv.load_time_s >= 0.45 and srv.load_time_s < 10, "load time " .. srv.load_time_s)
  T.eq(srv.dialect, "llama.cpp", "dialect")
  T.eq(srv.model, "m-1", "model")
  assert(srv.base_url:find("^http://127%.0%.0%.1:%d+$"), srv.base_url)
  assert(srv:version():find("benchrun sim", 1, true), "version")
  local ids = assert(srv:models())
  T.eq(ids[1], "m-1", "models")
  T.eq(srv:alive(), true, "alive")
  local info = srv:stop()
  T.eq(srv:alive(), false, "stopped")
  T.eq(info.code, 0, "clean shutdown on SIGTERM: " .. tostring(info.reason))
end)

T.case("sim: env reaches the server (--speedup-env)", function()
  local sim = backends.get("sim")
  local function timed(env)
    local srv <close> = assert(sim.start{args = {"--decode-tps", "5", "--speedup-env", "BENCH_FAST=100"}, env = env})
    local c = openai.client{base_url = srv.base_url, dialect = srv.dialect, model = srv.model}
    local rec = c:chat{prompt = "hi", max_tokens = 6}
    assert(rec.ok, "request: " .. tostring(rec.error))
    return rec.e2el_ms
  end
  local fast = timed{set = {BENCH_FAST = "1"}}
  local slow = timed{unset = {"BENCH_FAST"}}
  assert(fast < 600, "with BENCH_FAST set: " .. fast .. " ms")
  assert(slow > 800, "without: " .. slow .. " ms")
end)

T.case("sim: the sampler sees --model-memory rise and fall", function()
  local me = require("bench.sys").info().pid
  local s = assert(mem.sampler{pid = me, interval = 0.02, gpu = false})
  s:start()
  clock.sleep(0.1)
  local srv = assert(backends.get("sim").start{args = {"--model-memory", "96MiB", "--load-time", "0.3s"}})
  clock.sleep(0.2)
  local during = mem.process(me).rss
  srv:stop()
  clock.sleep(0.2)
  local r = s:stop()
  local first, last = r.samples[1].rss, r.samples[#r.samples].rss
  assert(during - first > 80 * MiB, string.format("rise: %d -> %d", first, during))
  assert(r.peak.rss - first > 80 * MiB, "peak " .. r.peak.rss)
  assert(last - first < 40 * MiB, string.format("fall: %d -> %d", first, last))
end)

T.case("sim: on_spawn starts a sampler that sees the load itself", function()
  local s
  local srv <close> = assert(backends.get("sim").start{
    args = {"--model-memory", "64MiB", "--load-time", "0.4s"},
    on_spawn = function(pid) s = assert(mem.sampler{pid = pid, interval = 0.02, gpu = false}) s:start() end})
  clock.sleep(0.1)
  local r = s:stop()
  assert(r.samples[1].rss < 32 * MiB, "first sample before the load: " .. r.samples[1].rss)
  assert(r.peak.rss > 60 * MiB, "peak after the load: " .. r.peak.rss)
end)

T.case("command: any argv with {port}; ready by HTTP", function()
  local b = backends.get("command")
  local srv <close> = assert(b.start{extra = {argv = {bench.executable, "sim", "--port", "{port}", "--model", "{model}"},
                                              ready = {http = "/health"}}, model = "cmd-model"})
  T.eq(assert(srv:models())[1], "cmd-model", "served model")
  T.checkerr("binary (or extra.argv)", b.start, {})
end)

T.case("external: an answering server, a gone pid, nothing listening", function()
  local sim <close> = T.sim{}
  local ext = backends.get("external")
  local srv = assert(ext.start{base_url = sim.url .. "/v1", model = "sim-model"})
  T.eq(srv.base_url, sim.url, "base_url without /v1")
  T.eq(srv:alive(), true, "alive")
  T.eq(srv:stop(), true, "stop is a no-op")
  T.eq(sim.proc:alive(), true, "external server left running")
  local dead = assert(proc.spawn{argv = {"true"}})
  dead:wait(5)
  local s2, err = ext.start{base_url = sim.url, extra = {pid = dead.pid}}
  T.eq(s2, nil, "gone pid")
  T.eq(err, "external: pid " .. dead.pid .. " is gone (no such process)", "message")
  local s3, err3 = ext.start{base_url = "http://127.0.0.1:" .. proc.free_port(), ready_timeout = 0.3}
  T.eq(s3, nil, "nothing listening")
  assert(err3:find("Connection refused", 1, true), err3)
end)

T.case("missing binary, exits at once, never ready, 503 forever: clear errors, no orphan", function()
  local model = os.tmpname()   -- an (empty) file: llama-server's adapter checks that the model opens
  local srv, err = backends.get("llama-server").start{model = model, binary = "/nonexistent/llama-server"}
  T.eq(srv, nil, "missing")
  T.eq(err, "llama-server: proc.spawn: cannot start: '/nonexistent/llama-server' does not exist", "message")
  srv, err = backends.get("vllm").start{model = "m", binary = "benchrun-no-such-vllm"}
  assert(err:find("'benchrun-no-such-vllm' not found in PATH", 1, true), err)

  local dir = T.tmpdir()
  local fake = dir .. "/llama-server"
  local f = assert(io.open(fake, "w"))
  f:write("#!/bin/sh\necho 'llama_model_load: error loading model: tensor data is not within bounds' >&2\nexit 1\n")
  f:close()
  proc.run{argv = {"chmod", "+x", fake}}
  srv, err = backends.get("llama-server").start{model = model, binary = fake}
  T.eq(srv, nil, "exits at once")
  assert(err:find("exited with code 1 before it was ready", 1, true), err)
  assert(err:find("tensor data is not within bounds", 1, true), err)

  srv, err = backends.get("command").start{extra = {argv = {"sh", "-c", "echo loading 1/3; echo $$; sleep 60"}},
                                           ready_timeout = 0.5}
  T.eq(srv, nil, "never ready")
  assert(err:find("not ready after 0.5 s", 1, true) and err:find("loading 1/3", 1, true), err)
  local pid = tonumber(err:match("\n(%d+)"))
  assert(pid and not proc.pid_alive(pid), "the server was stopped: " .. err)

  srv, err = backends.get("sim").start{args = {"--load-time", "60s"}, ready_timeout = 0.5}
  T.eq(srv, nil, "503 forever")
  assert(err:find("answered 503", 1, true), err)
end)

T.case("a server killed from outside crashed: no OOM without a record of one", function()
  local srv = assert(backends.get("sim").start{})
  proc.kill(srv.pid, "KILL")
  for _ = 1, 200 do if not srv:alive() then break end clock.sleep(0.01) end
  local info = srv:exit_info()
  T.eq(info.oom, nil, "oom")
  T.eq(proc.classify_exit(info).status, "crashed", "status")
end)

T.case("a server the (simulated) OOM killer takes while loading: the start fails with the evidence", function()
  local srv, err, info = backends.get("sim").start{args = {"--model-memory", "64MiB", "--oom-at-memory", "16MiB",
                                                           "--load-time", "0.2s"}}
  T.eq(srv, nil, "started")
  assert(err:find("out of memory: the simulator's OOM record", 1, true), err)
  T.eq(proc.classify_exit(info).status, "oom", "status")
end)

T.done()
