-- mlx-lm's OpenAI-compatible server: `mlx_lm.server --model M --host H --port P`.
-- mlx-lm 0.31.3 and later start the HTTP server at once and load the model on
-- their generation thread: /health and /v1/models answer 200 before the model
-- is loaded (ml-explore/mlx-lm server.py; PR #1837 describes /health staying
-- 200 while generation is unavailable). So the server is ready when a
-- one-token generation succeeds (backends.first_token, within ready_timeout),
-- and load_time_s runs from the spawn to that token. The request names the
-- model as given, which mlx-lm maps to its --model ("default_model").
local backends = require("bench.backends")
local adapter = {name = "mlx-lm"}

function adapter.start(opts)
  backends.check_opts("mlx-lm", opts, true)
  local port = backends.port(opts)
  local host = opts.host or "127.0.0.1"
  local binary = opts.binary or "mlx_lm.server"
  local model = backends.expand(opts.model)
  local argv = backends.args({binary, "--model", model, "--host", host, "--port", port})
  backends.args(opts.args, argv)
  return backends.launch{backend = "mlx-lm", on_spawn = opts.on_spawn, argv = argv, env = opts.env, log = opts.log, host = host, port = port,
                  ready = {http = "/v1/models", generate = true}, ready_timeout = opts.ready_timeout,
                  dialect = opts.dialect or "mlx-lm", model = model,
                  -- the version pip recorded, read by the python that runs mlx_lm.server
                  get_version = function()
                    return backends.python_package_version(backends.python_of(binary), "mlx-lm")
                  end}
end

return adapter
