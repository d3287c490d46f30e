-- vLLM: `vllm serve MODEL --host H --port P ARGS...`. Ready when GET /health
-- answers 200. The model id is --served-model-name when given.
local backends = require("bench.backends")
local proc = require("bench.proc")
local adapter = {name = "vllm"}

function adapter.start(opts)
  backends.check_opts("vllm", opts, true)
  local port = backends.port(opts)
  local host = opts.host or "127.0.0.1"
  local binary = opts.binary or "vllm"
  local model = backends.expand(opts.model)
  local argv = backends.args({binary, "serve", model, "--host", host, "--port", port})
  backends.args(opts.args, argv)
  return backends.launch{backend = "vllm", on_spawn = opts.on_spawn, argv = argv, env = opts.env, log = opts.log, host = host, port = port,
                  ready = {http = "/health"}, ready_timeout = opts.ready_timeout, dialect = opts.dialect or "vllm",
                  model = backends.flag_value(argv, "--served-model-name") or model,
                  -- `vllm --version` prints the bare version ("0.10.1.1", argparse's
                  -- version action in vllm/entrypoints/cli/main.py), after any log
                  -- lines (vLLM logs to stdout: "INFO ... Automatically detected
                  -- platform cuda."): the line that is a version alone
                  get_version = function()
                    local r = proc.run{argv = {binary, "--version"}, timeout = 60}
                    if not r or r.code ~= 0 then return nil end
                    for line in (r.stdout or ""):gmatch("[^\n]+") do
                      local v = line:match("^%s*(%d+%.%d+[%w%.%+]*)%s*$")
                      if v then return "vllm " .. v end
                    end
                    return nil
                  end}
end

return adapter
