-- Any server: argv given whole (binary + args, or extra.argv), with {port},
-- {host} and {model} replaced; readiness from extra.ready = {http = path or
-- url, expect = status, line = pattern} (default: the port accepts).
local backends = require("bench.backends")
local adapter = {name = "command"}

function adapter.start(opts)
  backends.check_opts("command", opts, false)
  local extra = opts.extra or {}
  local port = backends.port(opts)
  local host = opts.host or "127.0.0.1"
  local argv = {}
  if extra.argv then backends.args(extra.argv, argv)
  else
    if not opts.binary then error("command.start: binary (or extra.argv): expected the program to run", 2) end
    argv[1] = opts.binary
    backends.args(opts.args, argv)
  end
  if #argv == 0 then error("command.start: extra.argv: expected at least the program", 2) end
  local subst = {port = tostring(port), host = host, model = opts.model and backends.expand(tostring(opts.model)) or ""}
  for i, a in ipairs(argv) do argv[i] = a:gsub("{(%w+)}", function(k) return subst[k] end) end
  local ready = extra.ready or {port = true}
  return backends.launch{backend = "command", on_spawn = opts.on_spawn, argv = argv, env = opts.env, log = opts.log, host = host, port = port,
                  ready = ready, ready_timeout = opts.ready_timeout, dialect = opts.dialect or "openai",
                  model = opts.model, grace = extra.grace,
                  get_version = extra.version_argv and function() return backends.version_of(extra.version_argv) end}
end

return adapter
