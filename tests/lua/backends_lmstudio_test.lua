-- The lmstudio adapter against a fake `lms` (tests/fixtures-bin/lms, written
-- from the real CLI's source: its header names the version) whose HTTP
-- server is the simulator in LM Studio's dialect; the ollama adapter against
-- a fake `ollama serve`.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local backends = require("bench.backends")
local proc = require("bench.proc")
local bin = os.getenv("BENCHRUN_TESTS") .. "/fixtures-bin"
local LMS = bin .. "/lms"

-- What `lms ls --json` prints (lmstudio-js ModelInfo, as JSON.stringify
-- writes it: no escaped slashes), one model a line for the fake.
local MODELS = {
  [[{"type":"llm","modelKey":"minimax-m2.1","format":"gguf","displayName":"MiniMax M2.1","publisher":"unsloth","path":"unsloth/MiniMax-M2.1-GGUF/Q4_K_M/MiniMax-M2.1-Q4_K_M-00001-of-00003.gguf","sizeBytes":138000000000,"paramsString":"230B","architecture":"minimax-m2","quantization":{"name":"Q4_K_M","bits":4},"vision":false,"trainedForToolUse":true,"maxContextLength":196608}]],
  [[{"type":"llm","modelKey":"minimax-m2.1@q8_0","format":"gguf","displayName":"MiniMax M2.1","publisher":"unsloth","path":"unsloth/MiniMax-M2.1-GGUF/Q8_0/MiniMax-M2.1-Q8_0-00001-of-00005.gguf","sizeBytes":243000000000,"paramsString":"230B","architecture":"minimax-m2","quantization":{"name":"Q8_0","bits":8},"vision":false,"trainedForToolUse":true,"maxContextLength":196608}]],
  [[{"type":"llm","modelKey":"minimax-m2.1-mlx","format":"safetensors","displayName":"MiniMax M2.1 4bit","publisher":"mlx-community","path":"mlx-community/MiniMax-M2.1-4bit","sizeBytes":135000000000,"architecture":"minimax","quantization":{"name":"4bit","bits":4},"vision":false,"trainedForToolUse":true,"maxContextLength":196608}]],
  [[{"type":"llm","modelKey":"qwen3-8b","format":"gguf","displayName":"Qwen3 8B","publisher":"lmstudio-community","path":"lmstudio-community/Qwen3-8B-GGUF/Qwen3-8B-Q4_K_M.gguf","sizeBytes":5030000000,"paramsString":"8B","architecture":"qwen3","quantization":{"name":"Q4_K_M","bits":4},"vision":false,"trainedForToolUse":true,"maxContextLength":40960}]],
  [[{"type":"embedding","modelKey":"text-embedding-nomic-embed-text-v1.5","format":"gguf","displayName":"Nomic Embed","publisher":"nomic-ai","path":"nomic-ai/nomic-embed-text-v1.5-GGUF/nomic-embed-text-v1.5.Q4_K_M.gguf","sizeBytes":84106624,"architecture":"nomic-bert","quantization":{"name":"Q4_K_M","bits":4},"maxContextLength":2048}]],
}

local function fake_dir()
  local dir = T.tmpdir()
  local f = assert(io.open(dir .. "/models.json", "w"))
  f:write("[\n" .. table.concat(MODELS, ",\n") .. "\n]\n")
  f:close()
  return dir
end

-- The fake's knobs reach it through a wrapper script in dir, so that the
-- adapter's env holds only what a plan's cell would set.
local wrapper_n = 0
local function fake_lms(dir, knobs)
  wrapper_n = wrapper_n + 1
  local path = string.format("%s/lms-%d", dir, wrapper_n)
  local f = assert(io.open(path, "w"))
  f:write("#!/bin/sh\n", string.format("export FAKE_LMS_DIR='%s' FAKE_LMS_BENCHRUN='%s'\n", dir, bench.executable))
  for k, v in pairs(knobs or {}) do f:write(string.format("export %s='%s'\n", k, v)) end
  f:write(string.format("exec '%s' \"$@\"\n", LMS))
  f:close()
  assert(proc.run{argv = {"chmod", "+x", path}, timeout = 5})
  return path
end

local function read(path)
  local f = io.open(path)
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end
local function calls(dir) return read(dir .. "/calls") end

-- the fake daemon and its server go away at the end of each case
local function shutdown(dir)
  local d = read(dir .. "/daemon"):match("^(%d+)")
  local s = read(dir .. "/server.pid"):match("^(%d+)")
  for _, pid in ipairs({d, s}) do if pid then proc.run{argv = {"kill", pid}, timeout = 5} end end
end

local function lm() return assert(backends.get("lmstudio")) end

T.case("lmstudio: org/repo:QUANT resolved through lms ls --json to its key; loaded without -y; confirmed by lms ps", function()
  local dir = fake_dir()
  local port = proc.free_port()
  local srv = assert(lm().start{model = "unsloth/MiniMax-M2.1-GGUF:Q4_K_M", port = port,
                                binary = fake_lms(dir, {FAKE_LMS_LOAD_TIME = "0.4"}),
                                args = {"--gpu", "max", "--context-length", 8192}})
  T.eq(srv.base_url, "http://127.0.0.1:" .. port, "base_url")
  T.eq(srv.dialect, "lmstudio", "dialect")
  T.eq(srv.model, "minimax-m2.1", "the identifier is the model's key")
  T.eq(srv.model_key, "minimax-m2.1", "key")
  T.eq(srv.quant, "Q4_K_M", "quant")
  assert(srv.load_time_s >= 0.35 and srv.load_time_s < 10, "load time " .. srv.load_time_s)
  T.eq(srv.server_load_s, 0.4, "LM Studio's own figure, from '0.40s'")
  T.eq(srv.pid, nil, "not our child")
  T.eq(srv:version(), "lms 0.0.47", "lms version --json")
  T.eq(srv:loaded()[1].identifier, "minimax-m2.1", "lms ps --json")
  T.eq(srv:alive(), true, "alive")
  local c = require("bench.openai").client{base_url = srv.base_url, dialect = srv.dialect, model = srv.model}
  assert(c:chat{prompt = "hi", max_tokens = 3}.ok, "a request")
  srv:stop()
  T.eq(srv:alive(), false, "server stopped")
  local log = calls(dir)
  assert(log:find("server start --port " .. port, 1, true), log)
  assert(log:find("load minimax-m2.1 --identifier minimax-m2.1 --gpu max --context-length 8192\n", 1, true), log)
  assert(not log:find(" -y", 1, true), "never -y: " .. log)
  assert(log:find("unload minimax-m2.1\n", 1, true) and log:find("server stop", 1, true), log)
  T.eq(read(dir .. "/loaded.jsonl"), "", "nothing left loaded")
  assert(not log:find("daemon", 1, true), "no env: the daemon is left alone: " .. log)
  shutdown(dir)
end)

T.case("lmstudio: key@quant, a repository path (MLX) and a plain key resolve to one model each", function()
  local lmstudio = require("bench.backends.lmstudio")
  local models = {}
  for i, m in ipairs(MODELS) do models[i] = require("cjson").decode(m) end
  T.eq(lmstudio.resolve(models, "unsloth/MiniMax-M2.1-GGUF:Q8_0"), "minimax-m2.1@q8_0", "org/repo:QUANT")
  T.eq(lmstudio.resolve(models, "unsloth/minimax-m2.1-gguf@q8_0"), "minimax-m2.1@q8_0", "repo@quant, any case")
  T.eq(lmstudio.resolve(models, "minimax-m2.1@q8_0"), "minimax-m2.1@q8_0", "an exact key")
  T.eq(lmstudio.resolve(models, "mlx-community/MiniMax-M2.1-4bit"), "minimax-m2.1-mlx", "an MLX folder")
  T.eq(lmstudio.resolve(models, "qwen3-8b"), "qwen3-8b", "a key")
  -- LM Studio's grouped models: one entry, its variants' keys
  local grouped = {{type = "llm", modelKey = "qwen/qwen3-8b", path = "lmstudio-community/Qwen3-8B-GGUF/Qwen3-8B-Q4_K_M.gguf",
                    quantization = {name = "Q4_K_M", bits = 4}, variants = {"qwen/qwen3-8b@q4_k_m", "qwen/qwen3-8b@q8_0"},
                    selectedVariant = "qwen/qwen3-8b@q4_k_m"}}
  T.eq(lmstudio.resolve(grouped, "lmstudio-community/Qwen3-8B-GGUF:Q8_0"), "qwen/qwen3-8b@q8_0", "a variant's key")
  T.eq(lmstudio.resolve(grouped, "qwen/qwen3-8b@q8_0"), "qwen/qwen3-8b@q8_0", "a variant by key@quant")
  -- a file without a quantization field: its name says it
  local bare = {{type = "llm", modelKey = "m", path = "org/M-GGUF/M-Q4_K_M.gguf"},
                {type = "llm", modelKey = "m2", path = "org/M-GGUF/M-Q4_K.gguf"}}
  T.eq(lmstudio.resolve(bare, "org/M-GGUF:Q4_K"), "m2", "Q4_K is not Q4_K_M")
end)

T.case("lmstudio: no match or several: the candidates are listed, nothing is loaded", function()
  local dir = fake_dir()
  local lms = fake_lms(dir, {FAKE_LMS_LOAD_TIME = "0"})
  local srv, err = lm().start{model = "unsloth/MiniMax-M2.1-GGUF:Q6_K", binary = lms, port = proc.free_port()}
  T.eq(srv, nil, "no Q6_K")
  assert(err:find('no downloaded model matches "unsloth/MiniMax-M2.1-GGUF:Q6_K"', 1, true), err)
  assert(err:find("minimax-m2.1@q8_0 (unsloth/MiniMax-M2.1-GGUF/Q8_0/", 1, true), err)
  assert(err:find("lms get unsloth/MiniMax-M2.1-GGUF@q6_k", 1, true), err)
  srv, err = lm().start{model = "unsloth/MiniMax-M2.1-GGUF", binary = lms, port = proc.free_port()}
  T.eq(srv, nil, "two quantizations")
  assert(err:find('matches 2 downloaded models: minimax-m2.1 (', 1, true) and err:find("Q8_0)", 1, true), err)
  assert(not calls(dir):find("\nload ", 1, true), "no lms load: " .. calls(dir))
  assert(calls(dir):find("server stop", 1, true), "the server it started is stopped again")
  shutdown(dir)
end)

T.case("lmstudio: a different model under the identifier is refused and unloaded", function()
  local dir = fake_dir()
  local srv, err = lm().start{model = "qwen3-8b", port = proc.free_port(),
                              binary = fake_lms(dir, {FAKE_LMS_LOAD_TIME = "0", FAKE_LMS_LOAD_AS = "minimax-m2.1-mlx"})}
  T.eq(srv, nil, "wrong model")
  assert(err:find("LM Studio loaded minimax-m2.1-mlx (mlx-community/MiniMax-M2.1-4bit, 4bit) under \"qwen3-8b\", not the intended qwen3-8b", 1, true), err)
  T.eq(read(dir .. "/loaded.jsonl"), "", "unloaded")
  shutdown(dir)
end)

T.case("lmstudio: a model loaded before the run is refused, or unloaded, or allowed, as the plan says", function()
  local dir = fake_dir()
  local lms = fake_lms(dir, {FAKE_LMS_LOAD_TIME = "0"})
  assert(require("bench.backends.lmstudio").lms(lms, {"load", "qwen3-8b", "--identifier", "left"}, 30))
  local srv, err = lm().start{model = "minimax-m2.1-mlx", binary = lms, port = proc.free_port()}
  T.eq(srv, nil, "refused")
  assert(err:find("1 model already loaded in LM Studio (left)", 1, true) and err:find("unload_loaded", 1, true), err)
  assert(not calls(dir):find("load minimax", 1, true), "nothing loaded")
  srv = assert(lm().start{model = "minimax-m2.1-mlx", binary = lms, port = proc.free_port(),
                          extra = {allow_loaded = true}})
  T.eq(#srv:loaded(), 2, "beside it")
  srv:stop()
  srv = assert(lm().start{model = "minimax-m2.1-mlx", binary = lms, port = proc.free_port(),
                          extra = {unload_loaded = true}})
  T.eq(#srv:loaded(), 1, "the leftover was unloaded")
  T.eq(srv:loaded()[1].identifier, "minimax-m2.1-mlx", "only ours")
  srv:stop()
  shutdown(dir)
end)

T.case("lmstudio: a failed or timed-out load is unloaded", function()
  local dir = fake_dir()
  local srv, err = lm().start{model = "qwen3-8b", port = proc.free_port(),
                              binary = fake_lms(dir, {FAKE_LMS_LOAD_TIME = "0", FAKE_LMS_LOAD_FAIL = "leak"})}
  T.eq(srv, nil, "failed")
  assert(err:find("the connection to LM Studio was lost", 1, true) and err:find("unloaded qwen3-8b", 1, true), err)
  T.eq(read(dir .. "/loaded.jsonl"), "", "the daemon's copy unloaded")
  srv, err = lm().start{model = "qwen3-8b", port = proc.free_port(), ready_timeout = 1,
                        binary = fake_lms(dir, {FAKE_LMS_LOAD_TIME = "30"})}
  T.eq(srv, nil, "timed out")
  assert(err:find("timed out", 1, true), err)
  T.eq(read(dir .. "/loaded.jsonl"), "", "unloaded after the timeout")
  shutdown(dir)
end)

T.case("lmstudio: every form of lms load's time", function()
  local lmstudio = require("bench.backends.lmstudio")
  T.eq(lmstudio.parse_load_time("Model loaded successfully in 0.30s. (5.03 GB)"), 0.3, "s")
  T.eq(lmstudio.parse_load_time("Model loaded successfully in 300.00ms. (5.03 GB)"), 0.3, "ms")
  T.near(lmstudio.parse_load_time("Model loaded successfully in 5m 12.34s. (138.00 GB)"), 312.34, 1e-9, "m s")
  T.near(lmstudio.parse_load_time("Model loaded successfully in 1h 0m 1.00s. (457.00 GB)"), 3601, 1e-9, "h m s")
  T.eq(lmstudio.parse_load_time("Model loaded successfully on Mac Studio in 2.50s. (5.03 GB)"), 2.5, "on DEVICE")
  T.eq(lmstudio.parse_load_time("Model loaded successfully on lab in 2 in 1.25s. (5.03 GB)"), 1.25, "a device named 'in'")
  T.eq(lmstudio.parse_load_time("Loading model..."), nil, "none")
  local dir = fake_dir()
  local srv = assert(lm().start{model = "qwen3-8b", port = proc.free_port(),
                                binary = fake_lms(dir, {FAKE_LMS_LOAD_TIME = "0", FAKE_LMS_LOAD_TEXT = "5m 12.34s",
                                                        FAKE_LMS_DEVICE = "Mac Studio"})})
  T.near(srv.server_load_s, 312.34, 1e-9, "through the fake")
  srv:stop()
  shutdown(dir)
end)

T.case("lmstudio: an env cell restarts the daemon with its env; the next cell without env restarts it again", function()
  local dir = fake_dir()
  local port = proc.free_port()
  local lms = fake_lms(dir, {FAKE_LMS_LOAD_TIME = "0"})
  -- a daemon and a server already up without the env (as a user leaves them)
  assert(require("bench.backends.lmstudio").lms(lms, {"server", "start", "--port", port}, 30))
  local function engine_env()
    return read("/proc/" .. read(dir .. "/server.pid"):match("%d+") .. "/environ")
  end
  T.eq(engine_env():find("GGML_METAL_N_CB", 1, true), nil, "not there before")
  local srv = assert(lm().start{model = "qwen3-8b", binary = lms, port = port, env = {set = {GGML_METAL_N_CB = "2"}}})
  assert(engine_env():find("GGML_METAL_N_CB=2", 1, true), "the engine got the env: " .. engine_env())
  local log = calls(dir)
  local a = assert(log:find("unload --all", 1, true), log)
  local b = assert(log:find("daemon down", a, true), log)
  assert(log:find("daemon up --json", b, true), log)
  assert(srv.env_delivery:find("restarted by `lms daemon up` run with the cell's environment (GGML_METAL_N_CB=2)", 1, true),
         srv.env_delivery)
  srv:stop()
  -- the baseline after it: the engine must not keep GGML_METAL_N_CB
  srv = assert(lm().start{model = "qwen3-8b", binary = lms, port = port, env = {set = {}}})
  T.eq(engine_env():find("GGML_METAL_N_CB", 1, true), nil, "the baseline's engine has no GGML_METAL_N_CB")
  srv:stop()
  shutdown(dir)
end)

T.case("lmstudio: extra.restart_daemon restarts the daemon for a cell without env (the old restart_server too)", function()
  for _, flag in ipairs({"restart_daemon", "restart_server"}) do
    local dir = fake_dir()
    local lms = fake_lms(dir, {FAKE_LMS_LOAD_TIME = "0"})
    assert(require("bench.backends.lmstudio").lms(lms, {"daemon", "up"}, 30))
    local before = read(dir .. "/daemon"):match("^(%d+)")
    local srv = assert(lm().start{model = "qwen3-8b", binary = lms, port = proc.free_port(), extra = {[flag] = true}})
    assert(read(dir .. "/daemon"):match("^(%d+)") ~= before, flag .. ": a new daemon")
    assert(srv.env_delivery:find("restarted without extra environment", 1, true), srv.env_delivery)
    srv:stop()
    shutdown(dir)
  end
end)

T.case("lmstudio: env cells are refused when the LM Studio app owns the daemon, or lms cannot restart it", function()
  local dir = fake_dir()
  local gui = fake_lms(dir, {FAKE_LMS_LOAD_TIME = "0", FAKE_LMS_GUI = "1"})
  assert(require("bench.backends.lmstudio").lms(gui, {"daemon", "up"}, 30))
  local srv, err = lm().start{model = "qwen3-8b", binary = gui, port = proc.free_port(),
                              env = {set = {GGML_METAL_N_CB = "2"}}}
  T.eq(srv, nil, "refused")
  assert(err:find("the LM Studio app (pid ", 1, true) and err:find("quit the LM Studio app", 1, true)
         and err:find("llama-server backend", 1, true), err)
  assert(not calls(dir):find("\nload ", 1, true), "nothing loaded")
  shutdown(dir)
  dir = fake_dir()
  srv, err = lm().start{model = "qwen3-8b", port = proc.free_port(), env = {set = {GGML_METAL_N_CB = "2"}},
                        binary = fake_lms(dir, {FAKE_LMS_LOAD_TIME = "0", FAKE_LMS_NO_DAEMON = "1"})}
  T.eq(srv, nil, "an lms without the daemon command is refused")
  assert(err:find("llama-server backend", 1, true), err)
  shutdown(dir)
end)

T.case("lmstudio: a plan's env cells: env.json and each cell say how the env reached the engine", function()
  local dir = fake_dir()
  local lms = fake_lms(dir, {FAKE_LMS_LOAD_TIME = "0"})
  local rc, res = T.run_plan(dir, string.format([[
name: lms-env
servers:
  lm: {backend: lmstudio, binary: %s, model: qwen3-8b, port: %d}
matrix:
  server: [lm]
  config:
    - {name: baseline, env: {}}
    - {name: cb-2, env: {GGML_METAL_N_CB: "2"}}
workload: {prompts: [{name: a, prompt: hi, max_tokens: 4}]}
repeat: 1
warmup: 0
]], lms, proc.free_port()))
  T.eq(rc, 0, "the run")
  assert(res.env.servers.lm.env_delivery:find("lms daemon up run with the env", 1, true), res.env.servers.lm.env_delivery)
  local seen = {}
  for _, c in ipairs(res.cells) do
    local f = io.open(res.dir .. "/cells/" .. c.id .. ".json") or io.open(res.dir .. "/" .. (c.file or "") )
    local text = f and f:read("a") or ""
    if f then f:close() end
    seen[#seen + 1] = text
  end
  local all = table.concat(seen, "\n")
  assert(all:find("restarted by `lms daemon up` run with the cell's environment (GGML_METAL_N_CB=2)", 1, true), all)
  shutdown(dir)
end)

T.case("plans may choose the lmstudio-v0 and ollama-native dialects", function()
  local P = require("bench.plan")
  local dir = T.tmpdir()
  for _, d in ipairs({"lmstudio-v0", "ollama-native"}) do
    local path = dir .. "/" .. d .. ".yaml"
    local f = assert(io.open(path, "w"))
    f:write("name: t\nserver: {backend: external, base_url: 'http://127.0.0.1:1', dialect: " .. d .. "}\n")
    f:close()
    local plan, errs = P.load(path, {dry_run = true})
    assert(plan, d .. ": " .. table.concat(errs or {}, "; "))
    T.eq(plan.cells[1].server.dialect, d, "dialect kept")
  end
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
