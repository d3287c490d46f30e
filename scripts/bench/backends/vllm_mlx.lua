-- vllm-mlx (vLLM's API on Apple's MLX): `vllm-mlx serve MODEL --host H --port P`.
-- Ready when GET /v1/models answers 200 (vllm-mlx loads the model before it
-- starts serving, unless --lazy-load-model).
--
-- vllm-mlx (waybarrios/vllm-mlx 0.5.0, vllm_mlx/cli.py) runs one request at a
-- time unless it is started with --continuous-batching ("Mode: Simple");
-- /metrics exists only with --enable-metrics. A plan that sends concurrent
-- requests to it without --continuous-batching measures a queue, not
-- batching: adapter.cell_warnings says so when the plan is read.
-- vllm-mlx has no --version (its parser answers "unrecognized arguments"):
-- the version is the one pip recorded, read by the python of its script.
local backends = require("bench.backends")
local adapter = {name = "vllm-mlx"}

function adapter.start(opts)
  backends.check_opts("vllm-mlx", opts, true)
  local port = backends.port(opts)
  local host = opts.host or "127.0.0.1"
  local binary = opts.binary or "vllm-mlx"
  local model = backends.expand(opts.model)
  local argv = backends.args({binary, "serve", model, "--host", host, "--port", port})
  backends.args(opts.args, argv)
  return backends.launch{backend = "vllm-mlx", on_spawn = opts.on_spawn, argv = argv, env = opts.env, log = opts.log, host = host, port = port,
                  ready = {http = "/v1/models"}, ready_timeout = opts.ready_timeout,
                  dialect = opts.dialect or "vllm-mlx", model = backends.flag_value(argv, "--served-model-name") or model,
                  get_version = function()
                    return backends.python_package_version(backends.python_of(binary), "vllm-mlx")
                  end}
end

-- adapter.cell_warnings(server, concurrency) -> list of messages: concurrent
-- requests without --continuous-batching run one at a time.
function adapter.cell_warnings(server, concurrency)
  local args = backends.args(server.args)
  if (concurrency or 1) > 1 and not backends.has_flag(args, "--continuous-batching") then
    return {string.format("vllm-mlx serves one request at a time without --continuous-batching, "
                          .. "so concurrency %d measures a queue, not batching; add --continuous-batching "
                          .. "(and --enable-metrics for batch efficiency) to the server's args", concurrency)}
  end
  return {}
end

return adapter
