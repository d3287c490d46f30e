-- vllm-mlx (vLLM's API on Apple's MLX): `vllm-mlx serve MODEL --host H --port P`.
-- Ready when GET /v1/models answers 200.
local B = require("bench.backends")
local A = {name = "vllm-mlx"}

function A.start(opts)
  B.check_opts("vllm-mlx", opts, true)
  local port = B.port(opts)
  local host = opts.host or "127.0.0.1"
  local binary = opts.binary or "vllm-mlx"
  local model = B.expand(opts.model)
  local argv = B.args({binary, "serve", model, "--host", host, "--port", port})
  B.args(opts.args, argv)
  return B.launch{backend = "vllm-mlx", on_spawn = opts.on_spawn, argv = argv, env = opts.env, log = opts.log, host = host, port = port,
                  ready = {http = "/v1/models"}, ready_timeout = opts.ready_timeout,
                  dialect = opts.dialect or "vllm-mlx", model = B.flag_value(argv, "--served-model-name") or model,
                  get_version = function() return B.version_of({binary, "--version"}) end}
end

return A
