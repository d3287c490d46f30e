-- Ollama: `ollama serve` with OLLAMA_HOST=host:port, ready when GET / answers
-- 200; then the model is loaded without pulling by POST /api/generate with
-- only {model, keep_alive}. Ollama (server/routes.go GenerateHandler, the
-- `req.Prompt == ""` branch, as of ollama/ollama main in 2025) answers that load-only request once the model is loaded with
-- {model, created_at, response: "", done: true, done_reason: "load"} and no
-- durations (versions before done_reason answer without it), so load_time_s
-- (spawn -> that answer, measured here) is the only load figure.
-- OLLAMA_HOST is parsed with Go's net.SplitHostPort (envconfig Host()): an
-- IPv6 host must be bracketed, "[::1]:8080"; unbracketed, "::1:8080" is read
-- as a host with the default port 11434.
local backends = require("bench.backends")
local adapter = {name = "ollama"}

function adapter.start(opts)
  backends.check_opts("ollama", opts, true)
  local extra = opts.extra or {}
  local port = backends.port(opts)
  local host = opts.host or "127.0.0.1"
  local binary = opts.binary or "ollama"
  local env = {set = {}, unset = opts.env and opts.env.unset}
  for k, v in pairs(opts.env and opts.env.set or {}) do env.set[k] = v end
  env.set.OLLAMA_HOST = string.format(host:find(":") and "[%s]:%d" or "%s:%d", host, port)
  local argv = backends.args({binary, "serve"})
  backends.args(opts.args, argv)
  local model = tostring(opts.model)
  return backends.launch{backend = "ollama", on_spawn = opts.on_spawn, argv = argv, env = env, log = opts.log, host = host, port = port,
                  ready = {http = "/"}, ready_timeout = opts.ready_timeout, dialect = opts.dialect or "ollama",
                  model = model, models_path = "/api/tags",
                  get_version = function(srv)
                    local st, body = backends.get_url(srv.base_url .. "/api/version", 5)
                    if st ~= 200 then return nil end
                    local ok, doc = pcall(require("cjson").decode, body)
                    return ok and type(doc) == "table" and doc.version and ("ollama " .. doc.version) or nil
                  end,
                  after_ready = function(srv)
                    local st, body = backends.post_json(srv.base_url .. "/api/generate",
                                                 {model = model, keep_alive = extra.keep_alive or "60m"},
                                                 opts.ready_timeout or 600)
                    if st ~= 200 then
                      return nil, string.format("loading %s: %s %s", model, tostring(st), tostring(body):sub(1, 300))
                    end
                    local ok, doc = pcall(require("cjson").decode, body)
                    if not (ok and type(doc) == "table" and doc.done == true) then
                      return nil, string.format("loading %s: expected Ollama's load answer ({done: true}), got %s",
                                                model, tostring(body):sub(1, 300))
                    end
                    srv.load_time_s = (require("bench.clock").now() - srv.proc.started_ns) / 1e9
                    srv.on_stop = function(s)
                      -- unload first so the memory is given back even if serve lingers
                      backends.post_json(s.base_url .. "/api/generate", {model = model, keep_alive = 0}, 30)
                    end
                    return true
                  end}
end

return adapter
