-- LM Studio through its `lms` CLI (docs/servers.md). In order:
--  1. `lms ps --json`: a model already loaded doubles memory and pollutes
--     system-wide samples; refused unless extra.unload_loaded (benchrun
--     unloads it) or extra.allow_loaded.
--  2. The environment: LM Studio's engine keeps the environment its daemon
--     started with (`lms server start` only toggles the HTTP server inside
--     it), so a cell with an env restarts the daemon for real: `lms unload
--     --all`, `lms daemon down`, `lms daemon up` run with the env (lms spawns
--     llmster with its own environment). Refused when the LM Studio app owns
--     the daemon (it cannot be restarted from here).
--  3. `lms server start --port P` unless a server runs there.
--  4. The model: `org/repo[:QUANT]`, `key@quant` or a key, resolved through
--     `lms ls --json` to exactly one downloaded model (its key is what `lms
--     load` matches; keys never hold ':'); none or several: the candidates
--     are listed. `lms load KEY --identifier ID ARGS` is timed (without -y,
--     which silently takes the first of several matches), then `lms ps
--     --json` must show that model under ID. A failed or timed-out load is
--     unloaded.
-- Ready when GET /v1/models answers 200. stop unloads the model, stops the
-- server when this adapter started it and takes down a daemon it started
-- with an env. LM Studio's server is not benchrun's child: pid is nil unless
-- extra.pid says, so memory is sampled system-wide.
local backends = require("bench.backends")
local units = require("bench.units")
local proc = require("bench.proc")
local clock = require("bench.clock")
local json = require("cjson")
local adapter = {name = "lmstudio"}

-- How a cell's environment reaches LM Studio's engine (env.json).
adapter.env_delivery = "a cell with an env restarts LM Studio's daemon: lms unload --all, lms daemon down, "
  .. "lms daemon up run with the env (lms spawns the llmster daemon with its own environment), "
  .. "lms server start; refused when the LM Studio app owns the daemon"

-- the environment the daemon was last started with by this adapter ("" for
-- none), nil when it did not start it: a later cell with another env
-- (an empty one too) restarts it again
local daemon_env = nil

local function lms_run(binary, args, timeout, env)
  local argv = {binary}
  backends.args(args, argv)
  local r, err = proc.run{argv = argv, timeout = timeout or 60, env = env}
  if not r then return nil, err end
  if r.code ~= 0 then
    local out = ((r.stdout or "") .. (r.stderr or "")):gsub("%s+$", "")
    return nil, string.format("`%s` %s: %s", table.concat(argv, " "), r.reason, out)
  end
  return r
end

-- lms(binary, args, timeout, env) -> its output (both streams) | nil, message
local function lms(binary, args, timeout, env)
  local r, err = lms_run(binary, args, timeout, env)
  if not r then return nil, err end
  return ((r.stdout or "") .. (r.stderr or "")):gsub("%s+$", ""), r
end
adapter.lms = lms

-- the JSON an `lms ... --json` prints on stdout (its messages go to stderr)
local function lms_json(binary, args, timeout, env)
  local r, err = lms_run(binary, args, timeout, env)
  if not r then return nil, err end
  local ok, v = pcall(json.decode, r.stdout or "")
  if not ok or type(v) ~= "table" then
    return nil, string.format("`%s %s` printed no JSON: %s", binary, table.concat(args, " "), (r.stdout or ""):sub(1, 200))
  end
  return v
end

local function lower(s) return type(s) == "string" and s:lower() or "" end
local function str(v) return type(v) == "string" and v or nil end

-- Seconds from `lms load`'s "Model loaded successfully [on DEVICE] in T."
-- where T is "0.30s", "300.00ms", "5m 12.34s" or "1h 0m 1.00s"; nil if absent.
function adapter.parse_load_time(text)
  local t = tostring(text or ""):match("loaded successfully.* in (%d[%d%.]*%a+[%d%.%a ]*)")
  if not t then return nil end
  local total, any = 0, false
  for num, unit in t:gmatch("([%d%.]+)(%a+)") do
    local n = tonumber(num)
    local scale = units.DURATION_UNITS[unit]
    if not n or not scale then return nil end
    total, any = total + n * scale, true
  end
  return any and total or nil
end

-- "org/repo:QUANT" (Hugging Face's form), "key@quant" (LM Studio's) or a key
local function split_name(name)
  local base, q = name:match("^(.-):([^/:]+)$")
  if not base then base, q = name:match("^(.-)@([^/@]+)$") end
  return base or name, q
end

local function quant_name(m)
  return type(m.quantization) == "table" and str(m.quantization.name) or nil
end

local function quant_matches(m, q)
  local mq = quant_name(m)
  if mq then return lower(mq) == lower(q) end
  -- no quantization field: the file or folder names it (...-Q4_K_M.gguf)
  local esc = lower(q):gsub("%p", "%%%0")
  return ("/" .. lower(m.path)):find("[-./]" .. esc .. "[-./]") ~= nil
end

local function in_repo(m, base)
  local b, p = lower(base), lower(m.path)
  return lower(m.modelKey) == b or p == b or p:sub(1, #b + 1) == b .. "/"
end

local function describe(m)
  local q = quant_name(m)
  return string.format("%s (%s%s)", m.modelKey, tostring(m.path), q and ", " .. q or "")
end

-- adapter.resolve(models, name) -> key, entry | nil, message: the one downloaded
-- model (`lms ls --json`) that name designates, and the key to load it by.
function adapter.resolve(models, name)
  name = tostring(name)
  local base, q = split_name(name)
  local found = {}
  for _, m in ipairs(models) do
    if type(m) == "table" and str(m.modelKey) and m.type ~= "embedding" then
      if lower(m.modelKey) == lower(name) then found = {{key = m.modelKey, m = m}} break end
      if in_repo(m, base) then
        local variant
        for _, v in ipairs(type(m.variants) == "table" and m.variants or {}) do
          if q and lower(tostring(v):match("@([^@]*)$")) == lower(q) then variant = v end
        end
        if variant then found[#found + 1] = {key = variant, m = m}
        elseif not q or quant_matches(m, q) then found[#found + 1] = {key = m.modelKey, m = m} end
      end
    end
  end
  if #found == 1 then return found[1].key, found[1].m end
  local list = {}
  if #found == 0 then
    for _, m in ipairs(models) do if type(m) == "table" and str(m.modelKey) then list[#list + 1] = describe(m) end end
    return nil, string.format("no downloaded model matches \"%s\" (lms ls --json lists %d: %s); download it with "
      .. "`lms get %s%s`", name, #list, #list > 0 and table.concat(list, "; ") or "none", base,
      q and "@" .. lower(q) or "")
  end
  for _, f in ipairs(found) do list[#list + 1] = f.key == f.m.modelKey and describe(f.m) or f.key end
  return nil, string.format("\"%s\" matches %d downloaded models: %s; name one exactly (its key, key@quant or org/repo:QUANT)",
    name, #found, table.concat(list, "; "))
end

local function pid_text(p) return tostring(math.tointeger(tonumber(p)) or p) end

local function env_key(env)
  local parts = {}
  for k, v in pairs(type(env) == "table" and env.set or {}) do parts[#parts + 1] = k .. "=" .. tostring(v) end
  for _, k in ipairs(type(env) == "table" and env.unset or {}) do parts[#parts + 1] = "-" .. k end
  table.sort(parts)
  return table.concat(parts, " ")
end

-- Restart LM Studio's daemon so that its engine starts with env.
local function restart_daemon(binary, env)
  local st, err = lms_json(binary, {"daemon", "status", "--json"}, 30, env)
  if not st then
    return nil, "this lms cannot restart LM Studio's daemon (" .. err .. "), so the cell's environment would "
      .. "not reach the engine: run env cells with the llama-server backend"
  end
  if st.status == "running" then
    if st.isDaemon == false then
      return nil, string.format("the LM Studio app (pid %s) owns the engine, which keeps the environment it started "
        .. "with: quit the LM Studio app and start the headless daemon (lms daemon up) so that benchrun can restart "
        .. "it with each cell's environment, or run env cells with the llama-server backend", pid_text(st.pid))
    end
    local ok, e = lms(binary, {"unload", "--all"}, 300, env)
    if not ok then return nil, e end
    ok, e = lms(binary, {"daemon", "down"}, 120, env)
    if not ok then return nil, e end
  end
  local up, e = lms_json(binary, {"daemon", "up", "--json"}, 300, env)
  if not up then return nil, e end
  if up.isDaemon == false then
    return nil, string.format("`lms daemon up` found the LM Studio app (pid %s), not the llmster daemon: quit the app",
      pid_text(up.pid))
  end
  return up
end

-- {running, port} from `lms server status --json`, or its text in versions without --json
local function server_status(binary, env)
  local st = lms_json(binary, {"server", "status", "--json"}, 30, env)
  if type(st) == "table" then
    return {running = st.running == true, port = math.tointeger(tonumber(st.port))}
  end
  local text = lms(binary, {"server", "status"}, 30, env) or ""
  local p = tonumber(text:match("running on port (%d+)"))
  return {running = p ~= nil, port = p and math.tointeger(p)}
end

local function find_loaded(list, id)
  for _, m in ipairs(type(list) == "table" and list or {}) do
    if type(m) == "table" and m.identifier == id then return m end
  end
end

-- 1. models loaded before us: refused, unloaded, or allowed (extra.*)
-- -> true | nil, message
local function check_loaded_before(binary, env, extra)
  local before, err = lms_json(binary, {"ps", "--json"}, 60, env)
  if not before then return nil, err end
  if #before == 0 then return true end
  local ids = {}
  for _, m in ipairs(before) do ids[#ids + 1] = tostring(type(m) == "table" and m.identifier) end
  if extra.unload_loaded then
    for _, id in ipairs(ids) do
      local ok, e = lms(binary, {"unload", id}, 300, env)
      if not ok then return nil, e end
    end
  elseif not extra.allow_loaded then
    local them = #ids > 1 and "them" or "it"
    return nil, string.format("%d model%s already loaded in LM Studio (%s): %s memory and the system-wide samples "
      .. "would count %s; unload %s (lms unload --all), or set server.extra.unload_loaded: true to let benchrun "
      .. "unload %s, or extra.allow_loaded: true to measure beside %s", #ids, #ids > 1 and "s" or "",
      table.concat(ids, ", "), #ids > 1 and "their" or "its", them, them, them, them)
  end
  return true
end

-- 2. the environment reaches the engine only through a daemon started with
-- it -> {delivery, daemon_pid, restarted} | nil, message
local function deliver_env(binary, env, extra)
  local key = env_key(env)
  if not (key ~= "" or extra.restart_daemon or extra.restart_server or (daemon_env ~= nil and daemon_env ~= key)) then
    return {delivery = "no environment for this cell: LM Studio's engine runs with the environment its daemon started with"}
  end
  local up, why = restart_daemon(binary, env)
  if not up then daemon_env = nil return nil, why end
  daemon_env = key
  return {daemon_pid = math.tointeger(tonumber(up.pid)), restarted = true,
          delivery = key ~= "" and string.format("LM Studio's daemon (llmster, pid %s) restarted by `lms daemon up` "
            .. "run with the cell's environment (%s)", pid_text(up.pid), key)
            or string.format("LM Studio's daemon (llmster, pid %s) restarted without extra environment", pid_text(up.pid))}
end

-- 3. the HTTP server: the running one on the wanted port, or one we start
-- -> port, started | nil, message
local function ensure_server(binary, env, port)
  local st = server_status(binary, env)
  if st.running and st.port and (not port or port == 0 or port == st.port) then return st.port, false end
  if not port or port == 0 then port = 1234 end
  local out, e = lms(binary, {"server", "start", "--port", port}, 120, env)
  if not out then return nil, e end
  return port, true
end

-- what is wrong with the instance `lms ps` lists after our load, or nil
local function wrong_instance(inst, mkey, entry, id, name)
  local _, q = split_name(name)
  if not inst then
    return string.format("`lms load` said it loaded %s, but lms ps --json lists no model with identifier \"%s\"", mkey, id)
  elseif lower(inst.modelKey) ~= lower(mkey) and lower(inst.modelKey) ~= lower(entry.modelKey) then
    return string.format("LM Studio loaded %s under \"%s\", not the intended %s", describe(inst), id, describe(entry))
  elseif q and quant_name(inst) and lower(quant_name(inst)) ~= lower(q) then
    return string.format("LM Studio loaded %s, not quantization %s", describe(inst), q)
  end
end

-- 4. exactly one downloaded model, loaded by its key, confirmed by lms ps
-- -> {id, mkey, entry, inst, out, load_time} | nil, message (nothing left loaded)
local function load_model(binary, env, opts, name)
  local models, e = lms_json(binary, {"ls", "--json"}, 60, env)
  if not models then return nil, e end
  local mkey, entry = adapter.resolve(models, name)
  if not mkey then return nil, entry end
  local id = (opts.extra or {}).identifier or mkey
  local args = {"load", mkey, "--identifier", id}
  backends.args(opts.args, args)
  local sw = clock.stopwatch()
  local out, err = lms(binary, args, opts.ready_timeout or 1800, env)
  local load_time = sw:elapsed()
  if not out then
    -- LM Studio may hold the model (or go on loading it) after a failed or
    -- timed-out `lms load`: unload it, so the next cell does not find it
    local u, ue = lms(binary, {"unload", id}, 300, env)
    return nil, err .. (u and ("; unloaded " .. id) or ("; unloading " .. id .. " failed too: " .. tostring(ue)))
  end
  local inst = find_loaded(lms_json(binary, {"ps", "--json"}, 60, env), id)
  local wrong = wrong_instance(inst, mkey, entry, id, name)
  if wrong then
    lms(binary, {"unload", id}, 300, env)
    return nil, wrong
  end
  return {id = id, mkey = mkey, entry = entry, inst = inst, out = out, load_time = load_time}
end

-- 5. the server object: stop unloads (and stops what we started)
local function lmstudio_server(binary, env, opts, m, port, started_server, daemon)
  local host = opts.host or "127.0.0.1"
  local id = m.id
  local log = {m.out}
  local srv = backends.server{backend = "lmstudio", base_url = string.format("http://%s:%d", host, port),
                       dialect = opts.dialect or "lmstudio",
                       model = id, load_time_s = m.load_time, pid = (opts.extra or {}).pid, port = port, host = host,
                       server_load_s = adapter.parse_load_time(m.out), model_key = m.mkey, model_path = m.entry.path,
                       quant = quant_name(m.inst) or quant_name(m.entry), env_delivery = daemon.delivery,
                       daemon_pid = daemon.daemon_pid,
                       -- LM Studio's /api/v0 answers carry `stats` only when not streamed
                       stats = "LM Studio sends stats (tokens_per_second, time_to_first_token, generation_time) "
                         .. "in non-streamed /api/v0 answers only (dialect lmstudio-v0)"}
  function srv:on_stop()
    local o, e2 = lms(binary, {"unload", id}, 300, env)
    log[#log + 1] = o or e2
    if started_server then
      o, e2 = lms(binary, {"server", "stop"}, 60, env)
      log[#log + 1] = o or e2
    end
    -- a daemon this adapter started with an env is not left to the user with it
    if daemon.restarted and daemon_env ~= nil and daemon_env ~= "" then
      o, e2 = lms(binary, {"daemon", "down"}, 120, env)
      log[#log + 1] = o or e2
      daemon_env = nil
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
    local v = lms_json(binary, {"version", "--json"}, 30, env)
    if type(v) == "table" and str(v.version) then return "lms " .. v.version end
    -- older versions: a banner, then "lms - LM Studio CLI - vX"
    local text = lms(binary, {"version"}, 30, env)
    return text and (text:match("LM Studio CLI %- v([%w%.%-]+)") and "lms " .. text:match("LM Studio CLI %- v([%w%.%-]+)")
                     or text:match("[^\n]*%d+%.%d+[^\n]*")) or nil
  end
  -- what LM Studio has loaded: `lms ps --json`, decoded
  function srv:loaded()
    return lms_json(binary, {"ps", "--json"}, 30, env)
  end
  return srv
end

function adapter.start(opts)
  backends.check_opts("lmstudio", opts, true)
  local extra = opts.extra or {}
  local binary = opts.binary or "lms"
  local env = opts.env
  local function fail(msg) return nil, "lmstudio: " .. tostring(msg) end
  local ok, err = check_loaded_before(binary, env, extra)
  if not ok then return fail(err) end
  local daemon
  daemon, err = deliver_env(binary, env, extra)
  if not daemon then return fail(err) end
  local port, started_server = ensure_server(binary, env, opts.port)
  if not port then return fail(started_server) end
  local function cleanup()
    if started_server then lms(binary, {"server", "stop"}, 60, env) end
  end
  local m
  m, err = load_model(binary, env, opts, tostring(opts.model))
  if not m then cleanup() return fail(err) end
  local base_url = string.format("http://%s:%d", opts.host or "127.0.0.1", port)
  local t, why = proc.wait_ready{http = base_url .. "/v1/models", timeout = 60}
  if not t then
    lms(binary, {"unload", m.id}, 300, env)
    cleanup()
    return fail(why)
  end
  return lmstudio_server(binary, env, opts, m, port, started_server, daemon)
end

return adapter
