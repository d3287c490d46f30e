-- SGLang: `python3 -m sglang.launch_server --model-path M --host H --port P`.
-- binary names the Python to use. Ready when GET /health answers 200.
local backends = require("bench.backends")
local adapter = {name = "sglang"}

function adapter.start(opts)
  backends.check_opts("sglang", opts, true)
  local port = backends.port(opts)
  local host = opts.host or "127.0.0.1"
  local python = opts.binary or "python3"
  local model = backends.expand(opts.model)
  local argv = backends.args({python, "-m", "sglang.launch_server", "--model-path", model, "--host", host, "--port", port})
  backends.args(opts.args, argv)
  return backends.launch{backend = "sglang", on_spawn = opts.on_spawn, argv = argv, env = opts.env, log = opts.log, host = host, port = port,
                  ready = {http = "/health"}, ready_timeout = opts.ready_timeout, dialect = opts.dialect or "sglang",
                  model = backends.flag_value(argv, "--served-model-name") or model,
                  -- the version pip recorded (importing sglang takes seconds and a GPU stack)
                  get_version = function() return backends.python_package_version(python, "sglang") end}
end

return adapter
