-- LM Studio through its `lms` CLI: `lms server start --port P`, then
-- `lms load MODEL --identifier ID -y ARGS...` timed (that is the load time),
-- ready when GET /v1/models answers 200; stop unloads the model (and stops
-- the server when this adapter started it). LM Studio's server is not
-- benchrun's child: pid is nil unless extra.pid says, so memory is sampled
-- system-wide. `lms ps` and the REST API (/api/v0/models) list what is loaded.
local B = require("bench.backends")
local proc = require("bench.proc")
local clock = require("bench.clock")
local A = {name = "lmstudio"}

local function lms(binary, args, timeout, env)
  local argv = {binary}
  B.args(args, argv)
  local r, err = proc.run{argv = argv, timeout = timeout or 60, env = env}
  if not r then return nil, err end
  local out = ((r.stdout or "") .. (r.stderr or "")):gsub("%s+$", "")
  if r.code ~= 0 then
    return nil, string.format("`%s` %s: %s", table.concat(argv, " "), r.reason, out)
  end
  return out, r
end
A.lms = lms

function A.start(opts)
  B.check_opts("lmstudio", opts, true)
  local extra = opts.extra or {}
  local host = opts.host or "127.0.0.1"
  local binary = opts.binary or "lms"
  local env = opts.env
  local status = lms(binary, {"server", "status"}, 30, env) or ""
  local running_port = tonumber(status:match("running on port (%d+)"))
  local port = opts.port
  local started_server = false
  -- Environment variables (GGML_METAL_*) reach llama.cpp only through a
  -- server process started with them: extra.restart_server stops a running
  -- server first, so each configuration gets a fresh one (seed phase 5).
  if running_port and extra.restart_server then
    local out, err = lms(binary, {"server", "stop"}, 60, env)
    if not out then return nil, "lmstudio: " .. err end
    running_port = nil
  end
  if running_port and (not port or port == 0 or port == running_port) then
    port = running_port
  else
    if not port or port == 0 then port = 1234 end
    local out, err = lms(binary, {"server", "start", "--port", port}, 120, env)
    if not out then return nil, "lmstudio: " .. err end
    started_server = true
  end
  local base_url = string.format("http://%s:%d", host, port)
  local model = tostring(opts.model)
  local id = extra.identifier or model
  local args = {"load", model, "--identifier", id, "-y"}
  B.args(opts.args, args)
  local sw = clock.stopwatch()
  local out, err = lms(binary, args, opts.ready_timeout or 1800, env)
  local load_time = sw:elapsed()
  if not out then
    if started_server then lms(binary, {"server", "stop"}, 60, env) end
    return nil, "lmstudio: " .. err
  end
  local t, why = proc.wait_ready{http = base_url .. "/v1/models", timeout = 60}
  if not t then
    lms(binary, {"unload", id}, 120, env)
    if started_server then lms(binary, {"server", "stop"}, 60, env) end
    return nil, "lmstudio: " .. why
  end
  local log = {out}
  local srv = B.server{backend = "lmstudio", base_url = base_url, dialect = opts.dialect or "lmstudio",
                       model = id, load_time_s = load_time, pid = extra.pid, port = port, host = host,
                       server_load_s = tonumber(out:match("loaded successfully in ([%d%.]+)s"))}
  function srv:on_stop()
    local o, e = lms(binary, {"unload", id}, 120, env)
    log[#log + 1] = o or e
    if started_server then
      o, e = lms(binary, {"server", "stop"}, 60, env)
      log[#log + 1] = o or e
    end
  end
  function srv:probe_alive()
    return proc.probe_http(self.base_url .. "/v1/models", 2) == 200
  end
  function srv:tail(n)
    local lines = {}
    for _, chunk in ipairs(log) do for l in tostring(chunk):gmatch("[^\n]+") do lines[#lines + 1] = l end end
    return table.concat(lines, "\n", math.max(1, #lines - (n or 20) + 1))
  end
  function srv:get_version()
    local v = lms(binary, {"version"}, 30, env)
    return v and v:match("[^\n]*%d+%.%d+[^\n]*") or v
  end
  -- what LM Studio has loaded, from `lms ps`
  function srv:loaded()
    return lms(binary, {"ps"}, 30, env)
  end
  return srv
end

return A
