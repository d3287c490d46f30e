-- mlx-lm's OpenAI-compatible server: `mlx_lm.server --model M --host H --port P`.
-- Ready when GET /v1/models answers 200.
local B = require("bench.backends")
local A = {name = "mlx-lm"}

function A.start(opts)
  B.check_opts("mlx-lm", opts, true)
  local port = B.port(opts)
  local host = opts.host or "127.0.0.1"
  local binary = opts.binary or "mlx_lm.server"
  local model = B.expand(opts.model)
  local argv = B.args({binary, "--model", model, "--host", host, "--port", port})
  B.args(opts.args, argv)
  return B.launch{backend = "mlx-lm", on_spawn = opts.on_spawn, argv = argv, env = opts.env, log = opts.log, host = host, port = port,
                  ready = {http = "/v1/models"}, ready_timeout = opts.ready_timeout,
                  dialect = opts.dialect or "mlx-lm", model = model,
                  get_version = function()
                    return B.version_of({"python3", "-c", "import mlx_lm; print('mlx-lm', mlx_lm.__version__)"})
                  end}
end

return A
