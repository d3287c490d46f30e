-- A server that is already running: no lifecycle. start checks that it
-- answers (GET base_url .. extra.ready_path, default /v1/models) and, when
-- extra.pid is given, that the process exists (its memory can then be sampled).
local B = require("bench.backends")
local proc = require("bench.proc")
local A = {name = "external"}

function A.start(opts)
  B.check_opts("external", opts, false)
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
  local path = extra.ready_path or "/v1/models"
  local t, why = proc.wait_ready{http = base_url .. path, expect = extra.expect, timeout = opts.ready_timeout or 10}
  if not t then return nil, "external: " .. why end
  local srv = B.server{backend = "external", base_url = base_url, dialect = opts.dialect or "openai",
                       model = opts.model, load_time_s = nil, pid = pid}
  function srv:probe_alive()
    if self.pid then return proc.pid_alive(self.pid) end
    local st = proc.probe_http(self.base_url .. path, 2)
    return st ~= nil
  end
  if extra.version then srv.get_version = function() return extra.version end end
  return srv
end

return A
