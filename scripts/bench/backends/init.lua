-- bench.backends: one adapter per inference server, one small interface.
--
--   local backends = require("bench.backends")
--   local b = assert(backends.get("llama-server"))
--   local srv <close> = assert(b.start{model = "~/models/m.gguf", args = {"--parallel", 4},
--                                      env = {set = {GGML_METAL_N_CB = "2"}}, ready_timeout = 1800})
--   print(srv.base_url, srv.dialect, srv.model, srv.load_time_s, srv.pid)
--   srv:stop()
--
-- start{model, args, env = {set, unset}, port (0/nil: a free one), host,
--       ready_timeout (s), log (path), binary, base_url, dialect, extra,
--       on_spawn = function(pid, process) (called before waiting for
--       readiness: start a memory sampler there to see the load)}
--   -> srv | nil, message (the message carries the server's last lines)
--      [, exit info of the process when it was spawned and has ended: give
--      it to proc.classify_exit, never parse the message].
-- A server benchrun spawns on a given port is refused when that port is
-- already in use (proc.check_port_free), and once ready every listener on
-- its port must be it or its descendants (proc.check_port_owner).
-- srv: base_url, dialect (for bench.openai), model (the id to send),
--      load_time_s, pid (nil where the server is not our child), backend,
--      :stop([grace]) -> exit info, :alive(), :exit_info(), :tail(n),
--      :version(), :models() -> {ids...} | nil, message; <close> stops it.
-- Docs: docs/servers.md.
local proc = require("bench.proc")
local clock = require("bench.clock")
local util = require("bench.util")

local M = {}

M.names = {"llama-server", "lmstudio", "mlx-lm", "vllm", "vllm-mlx", "ollama", "sglang",
           "command", "external", "sim"}
local FILES = {["llama-server"] = "llama_server", ["mlx-lm"] = "mlx_lm", ["vllm-mlx"] = "vllm_mlx"}
local ALIASES = {["llama.cpp"] = "llama-server", llamacpp = "llama-server", mlx = "mlx-lm",
                 ["mlx_lm"] = "mlx-lm", ["lm-studio"] = "lmstudio", lms = "lmstudio"}

-- backends.get(name) -> adapter {name, start} | nil, message
function M.get(name)
  if type(name) ~= "string" then error("backends.get: expected a backend name, got " .. type(name), 2) end
  name = ALIASES[name] or name
  local file = FILES[name] or name
  local known = false
  for _, n in ipairs(M.names) do if n == name then known = true end end
  if not known then
    return nil, string.format("unknown backend '%s' (known: %s)", name, table.concat(M.names, ", "))
  end
  local adapter = require("bench.backends." .. file)
  adapter.name = adapter.name or name
  return adapter
end

---------------------------------------------------------------------------
-- Helpers the adapters share
---------------------------------------------------------------------------

-- "~/x" -> "$HOME/x"
function M.expand(path)
  if type(path) == "string" and path:sub(1, 2) == "~/" then
    return (os.getenv("HOME") or "") .. path:sub(2)
  end
  return path
end

-- the file name of a model path without its folder and .gguf extension
function M.basename(model)
  local s = tostring(model):gsub("/+$", "")
  s = s:match("([^/]+)$") or s
  return s
end

-- a list of strings from args (numbers and booleans become text)
function M.args(list, into)
  into = into or {}
  for _, a in ipairs(list or {}) do into[#into + 1] = tostring(a) end
  return into
end

-- the value that follows flag in argv, or nil
function M.flag_value(argv, flag)
  for i = 1, #argv - 1 do if argv[i] == flag then return argv[i + 1] end end
  return nil
end

function M.has_flag(argv, flag)
  for _, a in ipairs(argv) do if a == flag or a:sub(1, #flag + 1) == flag .. "=" then return true end end
  return false
end

function M.port(opts)
  local p = opts.port
  if p == nil or p == 0 then
    local free, err = proc.free_port(opts.host or "127.0.0.1")
    if not free then error("backends: no free port: " .. tostring(err), 3) end
    return free
  end
  if math.type(p) ~= "integer" or p < 1 or p > 65535 then
    error("backends: port: expected 1..65535, got " .. tostring(p), 3)
  end
  return p
end

-- An HTTP GET that works with or without bench.http: status, body | nil, message.
function M.get_url(url, timeout)
  return proc.probe_http(url, timeout or 5)
end

-- A JSON POST through bench.http: status, body | nil, message.
function M.post_json(url, body, timeout)
  local http = require("bench.http")
  local json = require("cjson")
  local r = http.request{method = "POST", url = url, body = json.encode(body),
                         headers = {["Content-Type"] = "application/json"}, timeout = {total = timeout or 60}}
  if r.error then return nil, tostring(r.error) end
  return r.status, r.body
end

-- ids of GET base_url .. path in OpenAI's {data = [{id}]} shape (or Ollama's
-- {models = [{name}]})
function M.list_models(base_url, path)
  local status, body = M.get_url(base_url .. (path or "/v1/models"), 10)
  if not status then return nil, "models: " .. tostring(body) end
  if status ~= 200 then return nil, string.format("models: %s%s answered %d", base_url, path or "/v1/models", status) end
  local ok, doc = pcall(require("cjson").decode, body)
  if not ok or type(doc) ~= "table" then return nil, "models: not JSON: " .. body:sub(1, 200) end
  local ids = {}
  for _, m in ipairs(doc.data or doc.models or {}) do
    if type(m) == "table" then ids[#ids + 1] = m.id or m.name or m.model end
  end
  return ids
end

---------------------------------------------------------------------------
-- The server object
---------------------------------------------------------------------------

local Server = {}
Server.__index = Server
Server.__name = "bench.backends.Server"

function Server:__tostring()
  return string.format("%s server at %s (%s)", self.backend, self.base_url,
                       self.proc and (self:alive() and "running, pid " .. self.pid or "exited") or "not ours")
end

-- srv:stop([grace]) -> exit info (or true for servers without a process of ours)
function Server:stop(grace)
  if self.stopped then return self.stopped end
  local r = true
  if self.on_stop then
    local ok, err = pcall(self.on_stop, self)
    if not ok then io.stderr:write("benchrun: stopping ", self.backend, ": ", tostring(err), "\n") end
  end
  if self.proc then r = self.proc:stop(grace or self.grace or 10) or true end
  self.stopped = r
  return r
end
Server.__close = function(self) self:stop() end

function Server:alive()
  if self.proc then return self.proc:alive() end
  if self.probe_alive then return self:probe_alive() end
  return true
end

function Server:exit_info()
  if self.proc then return self.proc:exit_info() end
  return nil
end

function Server:tail(n)
  if self.proc then return self.proc:tail(n or 20) end
  return ""
end

function Server:version()
  if self.version_cache == nil then
    local v
    if self.get_version then
      local ok, r = pcall(self.get_version, self)
      v = ok and r or nil
    end
    self.version_cache = v or false
  end
  return self.version_cache or nil
end

function Server:models()
  if self.list_models then return self:list_models() end
  return M.list_models(self.base_url, self.models_path)
end

-- Wrap fields into a server object.
function M.server(fields)
  return setmetatable(fields, Server)
end

-- The version line of `binary --version` (either stream), or nil.
function M.version_of(argv, pattern)
  local r = proc.run{argv = argv, timeout = 20}
  if not r then return nil end
  local text = (r.stdout or "") .. "\n" .. (r.stderr or "")
  if pattern then
    local v = text:match(pattern)
    if v then return v end
  end
  for line in text:gmatch("[^\n]+") do
    if line:find("%d+%.%d+") or line:lower():find("version") then return (line:gsub("^%s+", ""):gsub("%s+$", "")) end
  end
  return nil
end

-- The python that runs a console script (its "#!" line): pip installs
-- `mlx_lm.server` and `vllm-mlx` as scripts whose first line names the
-- interpreter of their environment, which need not be the python3 on PATH.
-- binary: a path or a name looked up in PATH. -> path | nil
function M.python_of(binary)
  local path = binary
  if not tostring(binary):find("/") then
    path = nil
    for dir in (os.getenv("PATH") or ""):gmatch("[^:]+") do
      if util.exists(dir .. "/" .. binary) then path = dir .. "/" .. binary break end
    end
  end
  local f = path and io.open(path, "rb")
  if not f then return nil end
  local first = f:read("l") or ""
  f:close()
  -- "#!/path/python3" or "#!/usr/bin/env python3"
  local interp = first:match("^#!%s*(%S+)")
  if not interp then return nil end
  if interp:match("/env$") then return first:match("^#!%s*%S+%s+(%S+)") end
  return interp
end

-- The installed version of a Python distribution, as pip records it
-- (importlib.metadata: no import of the package itself, which for mlx-lm
-- means loading Metal). -> "name version" | nil
function M.python_package_version(python, dist)
  if not python then return nil end
  local r = proc.run{argv = {python, "-c", "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))", dist},
                     timeout = 20}
  if not r or r.code ~= 0 then return nil end
  local v = (r.stdout or ""):match("^%s*(%S+)")
  return v and (dist .. " " .. v) or nil
end

-- The /metrics gauge of the requests a server is running at the moment, per
-- backend: batch efficiency is its mean over a cell / the concurrency. Each
-- name is the one that server exports:
--   vllm          vllm:num_requests_running (vllm/v1/metrics/loggers.py)
--   vllm-mlx      vllm_mlx_scheduler_running_requests (vllm_mlx/metrics.py,
--                 0.5.0; exported only with --enable-metrics)
--   sglang        sglang:num_running_reqs (metrics_collector.py; with
--                 --enable-metrics)
--   llama-server  llamacpp:requests_processing (with --metrics)
-- mlx-lm, Ollama and LM Studio export no /metrics.
M.RUNNING_METRIC = {
  vllm = "vllm:num_requests_running",
  ["vllm-mlx"] = "vllm_mlx_scheduler_running_requests",
  sglang = "sglang:num_running_reqs",
  ["llama-server"] = "llamacpp:requests_processing",
}

-- backends.running_metric(backend) -> the name above, or nil with the list
-- of every known name (for a server of no known kind: the simulator of a dry
-- run, `command`, `external`, which export whichever their program does).
local function metric_of(tbl, backend)
  local name = tbl[ALIASES[backend] or backend]
  if name then return name end
  local all = {}
  for _, n in pairs(tbl) do all[#all + 1] = n end
  table.sort(all)
  return nil, all
end

function M.running_metric(backend) return metric_of(M.RUNNING_METRIC, backend) end

-- The gauge of the requests a server holds back (its queue: admitted, not
-- yet running), per backend, the same way; phase 4's "queued" column is its
-- mean over a cell:
--   vllm          vllm:num_requests_waiting (vllm/v1/metrics/loggers.py)
--   vllm-mlx      vllm_mlx_scheduler_waiting_requests (vllm_mlx/metrics.py)
--   sglang        sglang:num_queue_reqs (metrics_collector.py)
--   llama-server  llamacpp:requests_deferred (server.cpp, with --metrics:
--                 requests that found no free slot)
M.QUEUED_METRIC = {
  vllm = "vllm:num_requests_waiting",
  ["vllm-mlx"] = "vllm_mlx_scheduler_waiting_requests",
  sglang = "sglang:num_queue_reqs",
  ["llama-server"] = "llamacpp:requests_deferred",
}

-- backends.queued_metric(backend) -> the name above, or nil with the list
-- of every known name (as running_metric)
function M.queued_metric(backend) return metric_of(M.QUEUED_METRIC, backend) end

-- One generation of one token: the request that proves a model is loaded on
-- servers that answer /health and /v1/models before it is (mlx-lm 0.31.3 and
-- later load the model on their generation thread while the HTTP server
-- already runs). Retries until it gets 200 or `timeout` seconds pass, or the
-- process `p` (optional) ends. model: the id to send (nil: none, the server's
-- default). dialect "ollama"/"ollama-native" uses /api/generate.
--   -> true | nil, message
function M.first_token(base_url, opts)
  local http = require("bench.http")
  local json = require("cjson")
  local deadline = clock.now() + (opts.timeout or 600) * 1e9
  local path, body
  if opts.dialect == "ollama" or opts.dialect == "ollama-native" then
    path, body = "/api/generate", {model = opts.model, prompt = "Hi", stream = false, options = {num_predict = 1}}
  else
    path, body = "/v1/chat/completions", {model = opts.model, messages = {{role = "user", content = "Hi"}},
                                          max_tokens = 1, stream = false}
  end
  local last = "no answer"
  while true do
    local left = (deadline - clock.now()) / 1e9
    if left <= 0 then
      return nil, string.format("not ready after %.0f s: a one-token generation (POST %s%s) %s",
                                opts.timeout or 600, base_url, path, last)
    end
    local r = http.request{method = "POST", url = base_url .. path, body = json.encode(body),
                           headers = {["Content-Type"] = "application/json"}, timeout = {total = left}}
    if not r.error and r.status == 200 then return true end
    last = r.error and ("failed: " .. tostring(r.error))
           or string.format("answered %d %s", r.status, tostring(r.body or ""):sub(1, 200))
    if opts.proc and not opts.proc:alive() then
      return nil, string.format("%s (pid %d) exited before it was ready; the one-token generation %s; last output: %s",
                                opts.proc.name or "server", opts.proc.pid, last, opts.proc:tail(10))
    end
    clock.sleep(0.25)
  end
end

-- Spawn argv and wait until it is ready; the common path of every adapter
-- that owns its server process.
--   spec = {backend, argv, env, log, cwd, host, port, ready = {http = path|url,
--           expect, line, port = true, generate = true (then a one-token
--           generation, M.first_token, must succeed too)}, ready_timeout, dialect, model,
--           models_path, grace, get_version, after_ready = function(srv)}
function M.launch(spec)
  local host = spec.host or "127.0.0.1"
  local url_host = host:find(":") and ("[" .. host .. "]") or host
  if host == "0.0.0.0" then url_host = "127.0.0.1" end
  local base_url = spec.base_url or string.format("http://%s:%d", url_host, spec.port)
  -- a server already there would be measured instead of ours (and with
  -- SO_REUSEPORT, as llama-server binds, ours would start beside it)
  local free, busy = proc.check_port_free(spec.port, (url_host:gsub("^%[(.*)%]$", "%1")))
  if not free then return nil, string.format("%s: %s", spec.backend, busy) end
  local p, err = proc.spawn{argv = spec.argv, env = spec.env, log = spec.log, cwd = spec.cwd,
                            grace = spec.grace or 10}
  if not p then return nil, string.format("%s: %s", spec.backend, err) end
  if spec.on_spawn then spec.on_spawn(p.pid, p) end
  local ready = spec.ready or {http = "/health"}
  local http_url = ready.http
  if http_url and not http_url:find("^http://") then http_url = base_url .. http_url end
  local load_time, why = proc.wait_ready{proc = p, http = http_url, expect = ready.expect, line = ready.line,
                                         port = ready.port and spec.port or nil, host = host,
                                         timeout = spec.ready_timeout or 600}
  if not load_time then
    -- the exit info of a process that died by itself, before this stop
    local info = p:exit_info()
    p:stop(spec.grace or 5)
    return nil, string.format("%s: %s", spec.backend, why), info or p:exit_info()
  end
  if ready.generate then
    -- the model is loaded once a token comes out: the load time ends there
    local ok, gen_why = M.first_token(base_url, {model = spec.model, dialect = spec.dialect, proc = p,
                                                 timeout = math.max(1, (spec.ready_timeout or 600) - load_time)})
    if not ok then
      local info = p:exit_info()
      p:stop(spec.grace or 5)
      return nil, string.format("%s: %s", spec.backend, gen_why), info or p:exit_info()
    end
    load_time = (clock.now() - p.started_ns) / 1e9
  end
  local mine, foreign = proc.check_port_owner(p, spec.port)
  if not mine then
    p:stop(spec.grace or 5)
    return nil, string.format("%s: %s", spec.backend, foreign)
  end
  local srv = M.server{backend = spec.backend, base_url = base_url, dialect = spec.dialect or "openai",
                       model = spec.model, load_time_s = load_time, load_time_resolution_s = why, pid = p.pid, proc = p, log = spec.log,
                       port = spec.port, host = host, models_path = spec.models_path, grace = spec.grace,
                       get_version = spec.get_version, argv = spec.argv}
  if spec.after_ready then
    local ok, e = spec.after_ready(srv)
    if not ok then
      srv:stop(spec.grace or 5)
      return nil, string.format("%s: %s", spec.backend, tostring(e))
    end
  end
  return srv
end

-- Common option checks: raise for the caller's mistakes.
function M.check_opts(name, opts, needs_model)
  if type(opts) ~= "table" then error(name .. ".start: expected a table of options", 3) end
  if needs_model and (opts.model == nil or opts.model == "") then
    error(name .. ".start: model: expected a model path or id", 3)
  end
  if opts.args ~= nil and type(opts.args) ~= "table" then
    error(name .. ".start: args: expected a list", 3)
  end
  if opts.env ~= nil and type(opts.env) ~= "table" then
    error(name .. ".start: env: expected {set = {...}, unset = {...}}", 3)
  end
end

-- a short pause that yields (used by adapters that poll)
M.sleep = clock.sleep

return M
