-- A server that is already running: no lifecycle. start checks that it is
-- ready and, when extra.pid is given, that the process exists (its memory can
-- then be sampled). Ready means, within ready_timeout (default 10 s):
--   extra.ready_path given: GET base_url .. ready_path answers (extra.expect)
--   dialect llama.cpp: GET /health answers 200 (llama-server: 503 while loading)
--   otherwise: a one-token generation succeeds (backends.first_token), since
--   /v1/models answers before the model is loaded on mlx-lm 0.31.3+ and on
--   servers that load on the first request. It names opts.model, else the
--   one id /v1/models lists, else none (the server's default).
local backends = require("bench.backends")
local proc = require("bench.proc")
local adapter = {name = "external"}

function adapter.start(opts)
  backends.check_opts("external", opts, false)
  local extra = opts.extra or {}
  local base_url = opts.base_url
  if not base_url then
    if not opts.port or opts.port == 0 then error("external.start: base_url (or port): expected where the server is", 2) end
    base_url = string.format("http://%s:%d", opts.host or "127.0.0.1", opts.port)
  end
  base_url = base_url:gsub("/+$", ""):gsub("/v1$", "")
  local pid = extra.pid
  if pid and not proc.pid_alive(pid) then
    return nil, string.format("external: pid %d is gone (no such process)", pid)
  end
  local dialect = opts.dialect or "openai"
  local ollama = dialect == "ollama" or dialect == "ollama-native"
  local llama = dialect == "llama.cpp" or dialect == "llama-server"
  local path = extra.ready_path or (llama and "/health") or (ollama and "/") or "/v1/models"
  local timeout = opts.ready_timeout or 10
  local started = require("bench.clock").now()
  local t, why = proc.wait_ready{http = base_url .. path, expect = extra.expect, timeout = timeout}
  if not t then return nil, "external: " .. why end
  -- (Ollama loads the model a request names: without one there is nothing to wait for)
  if not extra.ready_path and not llama and not (ollama and opts.model == nil) then
    local model = opts.model
    if model == nil then
      local ids = backends.list_models(base_url)
      if ids and #ids == 1 then model = ids[1] end
    end
    local left = timeout - (require("bench.clock").now() - started) / 1e9
    local ok, gen_why = backends.first_token(base_url, {model = model, dialect = dialect, timeout = math.max(left, 1)})
    if not ok then return nil, "external: " .. gen_why end
  end
  local srv = backends.server{backend = "external", base_url = base_url, dialect = dialect,
                       model = opts.model, load_time_s = nil, pid = pid}
  function srv:probe_alive()
    if self.pid then return proc.pid_alive(self.pid) end
    local st = proc.probe_http(self.base_url .. path, 2)
    return st ~= nil
  end
  if extra.version then srv.get_version = function() return extra.version end end
  return srv
end

return adapter
