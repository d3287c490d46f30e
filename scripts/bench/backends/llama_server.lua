-- llama.cpp's llama-server: `llama-server -m MODEL --host H --port P ARGS...`.
-- Ready when GET /health answers 200 (503 while the model loads). Environment
-- such as GGML_METAL_* or GGML_CUDA_* goes through env.set; --parallel and
-- other flags through args.
local backends = require("bench.backends")
local adapter = {name = "llama-server"}

function adapter.start(opts)
  backends.check_opts("llama-server", opts, true)
  local port = backends.port(opts)
  local host = opts.host or "127.0.0.1"
  local binary = opts.binary or "llama-server"
  local model = backends.expand(opts.model)
  local argv = {binary}
  -- a Hugging Face reference (org/repo:quant) goes to -hf; a path to -m
  if not tostring(model):find("/") or tostring(model):find("^[%./~]") or tostring(model):find("%.gguf$") then
    -- llama-server aborts (SIGABRT) on a file it cannot open, the same
    -- death as a corrupt file's: a wrong path is said as such instead
    local f, err = io.open(model, "rb")
    if not f then return nil, string.format("llama-server: model file '%s' cannot be opened: %s", model, err) end
    f:close()
    backends.args({"-m", model}, argv)
  else
    backends.args({"-hf", model}, argv)
  end
  backends.args({"--host", host, "--port", port}, argv)
  backends.args(opts.args, argv)
  local alias = backends.flag_value(argv, "--alias") or backends.flag_value(argv, "-a")
  return backends.launch{backend = "llama-server", on_spawn = opts.on_spawn, argv = argv, env = opts.env, log = opts.log, host = host,
                  port = port, ready = {http = "/health"}, ready_timeout = opts.ready_timeout,
                  dialect = opts.dialect or "llama.cpp", model = alias or backends.basename(model),
                  get_version = function() return backends.version_of({binary, "--version"}, "(version: [^\n]+)") end}
end

return adapter
