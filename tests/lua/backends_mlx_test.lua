-- mlx-lm, vllm-mlx and the external backend as the real programs behave
-- (issue 19, items 6, 8, 10, 11): mlx-lm answers /health and /v1/models
-- before its model is loaded (tests/fixtures-bin/mlx_lm.server reproduces
-- 0.31.3+), so readiness is a one-token generation; vllm-mlx has no
-- --version and batches only with --continuous-batching; a client without a
-- model asks /v1/models instead of sending "default".
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local backends = require("bench.backends")
local openai = require("bench.openai")
local proc = require("bench.proc")
local bin = os.getenv("BENCHRUN_TESTS") .. "/fixtures-bin"

local function write(path, text, mode)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  if mode then assert(proc.run{argv = {"chmod", mode, path}}.code == 0) end
end

T.case("mlx-lm: ready only once a token comes out, load time measured to it", function()
  local mlx = backends.get("mlx-lm")
  local srv <close> = assert(mlx.start{model = "mlx-community/Tiny-4bit", binary = bin .. "/mlx_lm.server",
                                       env = {set = {FAKE_MLX_LOAD_TIME = "1.5"}}, ready_timeout = 30})
  -- /v1/models answered at once; the model took 1.5 s to load
  assert(srv.load_time_s >= 1.4 and srv.load_time_s < 20, "load time " .. srv.load_time_s)
  local c = openai.client{base_url = srv.base_url, dialect = srv.dialect, model = srv.model}
  local t0 = require("bench.clock").now()
  local rec = c:chat{prompt = "hi", max_tokens = 1, stream = false}
  assert(rec.ok, "a request: " .. tostring(rec.error))
  -- the first measured request does not wait for the load
  assert((require("bench.clock").now() - t0) / 1e9 < 1, "the model was loaded before ready")
end)

T.case("mlx-lm: a server that dies while loading fails start with its exit", function()
  local mlx = backends.get("mlx-lm")
  -- no such python module: the fake's interpreter exits at once
  local dir = T.tmpdir()
  write(dir .. "/mlx_lm.server", "#!/bin/sh\necho 'loading...' >&2\nexit 3\n", "+x")
  local srv, err = mlx.start{model = "m", binary = dir .. "/mlx_lm.server", ready_timeout = 10}
  T.eq(srv, nil, "no server")
  assert(err:find("exited", 1, true), err)
end)

T.case("external: ready once a token comes out (sim loading 1 s), /health for llama.cpp", function()
  local ext = backends.get("external")
  local s <close> = T.sim{"--load-time", "1s", "--model", "m1"}
  local t0 = require("bench.clock").now()
  local srv = assert(ext.start{base_url = s.url, ready_timeout = 20})
  local waited = (require("bench.clock").now() - t0) / 1e9
  -- /v1/models answers 200 during the load; a generation gets 503 until it ends
  assert(waited >= 0.8, "returned after " .. waited .. " s, before the model was loaded")
  local c = openai.client{base_url = srv.base_url, model = "m1"}
  assert(c:chat{prompt = "hi", max_tokens = 2}.ok, "a request")

  local l <close> = T.sim{"--load-time", "1s", "--dialect", "llama.cpp"}
  t0 = require("bench.clock").now()
  assert(ext.start{base_url = l.url, dialect = "llama.cpp", ready_timeout = 20})
  waited = (require("bench.clock").now() - t0) / 1e9
  assert(waited >= 0.8, "llama.cpp: returned after " .. waited .. " s, while /health answered 503")
end)

T.case("client without a model: the id /v1/models lists, never \"default\"", function()
  -- --strict-models: a model the server does not serve gets 404, as vLLM
  local s <close> = T.sim{"--model", "served-one", "--strict-models"}
  local c = openai.client{base_url = s.url}
  local rec = c:chat{prompt = "hi", max_tokens = 2}
  assert(rec.ok, "the request named the served model: " .. tostring(rec.error))
  T.eq(c.listed_model, "served-one", "kept for the next requests")
  assert(c:complete{prompt = "hi", max_tokens = 2}.ok, "again")
  -- several models listed: no model field (the server's default), not a guess
  local s2 <close> = T.sim{"--model", "a", "--model", "b"}
  local c2 = openai.client{base_url = s2.url}
  assert(c2:chat{prompt = "hi", max_tokens = 2}.ok, "no model field")
  T.eq(c2.listed_model, false, "several: none chosen")
end)

-- A fake python and a pip console script `vllm-mlx` whose "#!" names it:
-- the fake runs the script as vllm-mlx 0.5.0's cli.py (argparse: no
-- --version, "serve MODEL --host H --port P" prints its mode and serves) and
-- answers importlib.metadata.version("vllm-mlx") with 0.5.0.
local function fake_vllm_mlx(dir)
  write(dir .. "/python", [[#!/bin/sh
if [ "$1" = "-c" ]; then
  case "$3" in vllm-mlx) echo 0.5.0; exit 0 ;; esac
  echo "importlib.metadata.PackageNotFoundError: No package metadata was found for $3" >&2
  exit 1
fi
shift   # the script
if [ "$1" != serve ]; then
  echo "usage: vllm-mlx [-h] {serve,bench,bench-detok,bench-kv-cache,download,model,bench-serve} ..." >&2
  echo "vllm-mlx: error: unrecognized arguments: $*" >&2
  exit 2
fi
model=$2; shift 2
host=0.0.0.0; port=8000; mode="Mode: Simple (maximum throughput)"
while [ $# -gt 0 ]; do
  case "$1" in
    --host) host=$2; shift ;;
    --port) port=$2; shift ;;
    --continuous-batching) mode="Mode: Continuous batching (for multiple concurrent users)" ;;
  esac
  shift
done
echo "Loading model: $model"
echo "$mode"
exec "$FAKE_BENCHRUN" sim --host "$host" --port "$port" --model "$model"
]], "+x")
  write(dir .. "/vllm-mlx", "#!" .. dir .. "/python\n# -*- coding: utf-8 -*-\nimport re\nimport sys\n"
        .. "from vllm_mlx.cli import main\nif __name__ == \"__main__\":\n    sys.exit(main())\n", "+x")
  return dir .. "/vllm-mlx"
end

T.case("vllm-mlx: the version pip recorded, not its argparse error", function()
  local dir = T.tmpdir()
  local binary = fake_vllm_mlx(dir)
  T.eq(backends.python_of(binary), dir .. "/python", "the script's interpreter")
  local vm = backends.get("vllm-mlx")
  local srv <close> = assert(vm.start{model = "mlx-community/Tiny-4bit", binary = binary, args = {"--continuous-batching"},
                                      env = {set = {FAKE_BENCHRUN = bench.executable}}, ready_timeout = 20})
  T.eq(srv:version(), "vllm-mlx 0.5.0", "version")
end)

T.case("vllm: the version line among vLLM's log lines", function()
  local dir = T.tmpdir()
  -- vLLM logs to stdout (its default logging config) before argparse's
  -- version action prints the bare version
  write(dir .. "/vllm", [[#!/bin/sh
if [ "$1" = --version ]; then
  echo "INFO 12-06 02:50:00 [__init__.py:241] Automatically detected platform cuda."
  echo "0.10.1.1"
  exit 0
fi
model=$2; shift 2
while [ $# -gt 0 ]; do
  case "$1" in --host) host=$2; shift ;; --port) port=$2; shift ;; esac
  shift
done
exec "$FAKE_BENCHRUN" sim --host "$host" --port "$port" --model "$model"
]], "+x")
  local v = backends.get("vllm")
  local srv <close> = assert(v.start{model = "Qwen/Qwen3-0.6B", binary = dir .. "/vllm",
                                     env = {set = {FAKE_BENCHRUN = bench.executable}}, ready_timeout = 20})
  T.eq(srv:version(), "vllm 0.10.1.1", "version")
end)

T.case("vllm-mlx: concurrency > 1 without --continuous-batching is a plan warning", function()
  local P = require("bench.plan")
  local dir = T.tmpdir()
  local function plan(args)
    write(dir .. "/p.yaml", table.concat({
      "name: p",
      "server:",
      "  backend: vllm-mlx",
      "  model: mlx-community/Tiny-4bit",
      args and ("  args: " .. args) or "",
      "load:",
      "  - {name: scale, concurrency: [1, 4, 8], max_tokens: 10, requests: 8}",
      "workload:",
      "  prompts:",
      "    - {name: a, prompt: hello, max_tokens: 10}",
    }, "\n") .. "\n")
    local pl, errs = P.load(dir .. "/p.yaml", {})
    if not pl then error(table.concat(errs, "\n")) end
    return pl
  end
  local p = plan(nil)
  local w = table.concat(p.warnings, "\n")
  assert(w:find("without --continuous-batching", 1, true), "warned: " .. w)
  assert(w:find("concurrency 4", 1, true) and w:find("p.yaml:3:3: server:", 1, true), "names the server and its line: " .. w)
  local _, n = w:gsub("continuous%-batching, so", "")
  T.eq(n, 2, "once per concurrency level above 1: " .. w)
  p = plan("[--continuous-batching, --enable-metrics]")
  w = table.concat(p.warnings, "\n")
  assert(not w:find("continuous-batching", 1, true), "no warning with the flag: " .. w)
  -- phase 4 passes it
  local p4 = assert(P.load(os.getenv("BENCHRUN_TESTS") .. "/../plans/phase4.yaml", {dry_run = true}))
  for _, x in ipairs(p4.warnings) do assert(not x:find("continuous-batching", 1, true), x) end
  local args = p4.servers["vllm-mlx"].args
  T.eq(table.concat(args, " "), "--continuous-batching --enable-metrics", "phase 4's vllm-mlx args")
end)

T.done()
