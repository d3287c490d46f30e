-- The built-in simulator: `benchrun sim --port 0 --port-file F ARGS...`
-- (bench.executable). The port comes from the port file, so no port race;
-- a given port must be free before the spawn, and once ready it must be
-- held by the sim only (proc.check_port_free / check_port_owner).
-- Ready when GET /health answers 200 (503 during --load-time).
-- With --oom-at-memory the sim writes the simulated kernel's OOM record to a
-- file of ours (--oom-record); a SIGKILL that the record names is an OOM kill
-- with that evidence (exit_info().oom), any other SIGKILL a crash.
local backends = require("bench.backends")
local proc = require("bench.proc")
local clock = require("bench.clock")
local util = require("bench.util")
local adapter = {name = "sim"}

-- the sim's default for a flag (its option table, engine/sim/options.c)
local function default_of(flag)
  for _, o in ipairs(require("bench.sim").options()) do
    if o.flag == flag then return o.default end
  end
  return nil
end

-- info, with the evidence of the sim's OOM record when it names this kill
local function with_oom_record(info, record, pid)
  if not (info and record and info.signal_name == "SIGKILL" and not info.sent_by_benchrun and not info.oom) then
    return info
  end
  local f = io.open(record)
  if not f then return info end
  local json = require("cjson")
  for line in f:lines() do
    local ok, r = pcall(json.decode, line)
    if ok and type(r) == "table" and r.oom_kill == true and r.pid == pid then
      f:close()
      local copy = {}
      for k, v in pairs(info) do copy[k] = v end
      copy.oom = true
      copy.evidence = string.format("the simulator's OOM record: it needed %s bytes, above its --oom-at-memory"
        .. " limit of %s (a simulated kernel OOM kill)", tostring(r.needed_bytes), tostring(r.limit_bytes))
      copy.reason = "killed by SIGKILL (out of memory: " .. copy.evidence .. ")"
      return copy
    end
  end
  f:close()
  return info
end

-- the sim's command line -> argv, portfile (the port it picks is written
-- there), record (its OOM record file) | nil, message
local function sim_argv(opts, host)
  local argv = {opts.binary or bench.executable, "sim", "--host", host}
  local portfile, record
  if opts.port and opts.port ~= 0 then
    local free, busy = proc.check_port_free(opts.port, host)
    if not free then return nil, "sim: " .. busy end
    backends.args({"--port", opts.port}, argv)
  else
    portfile = os.tmpname()
    os.remove(portfile)
    backends.args({"--port", 0, "--port-file", portfile}, argv)
  end
  local extra = backends.args(opts.args)
  if opts.model and not backends.has_flag(extra, "--model") then backends.args({"--model", opts.model}, argv) end
  if opts.dialect and not backends.has_flag(extra, "--dialect") then backends.args({"--dialect", opts.dialect}, argv) end
  if backends.has_flag(extra, "--oom-at-memory") and not backends.has_flag(extra, "--oom-record") then
    record = os.tmpname()
    os.remove(record)
    backends.args({"--oom-record", record}, argv)
  end
  backends.args(extra, argv)
  return argv, portfile, record
end

function adapter.start(opts)
  backends.check_opts("sim", opts, false)
  local host = opts.host or "127.0.0.1"
  local argv, portfile, record = sim_argv(opts, host)
  if not argv then return nil, portfile end
  local dialect = backends.flag_value(argv, "--dialect") or default_of("--dialect")
  local model = backends.flag_value(argv, "--model") or default_of("--model")
  local p, err = proc.spawn{argv = argv, env = opts.env, log = opts.log, grace = 5}
  if not p then return nil, "sim: " .. err end
  if opts.on_spawn then opts.on_spawn(p.pid, p) end
  -- the exit info with the OOM record's evidence (nil while it runs): every
  -- message of a failed start is written from it, so it says what the
  -- evidence says
  local function exit_info() return with_oom_record(p:exit_info(), record, p.pid) end
  -- a start that failed: the process stopped, the record gone
  local function fail(msg, grace)
    local info = exit_info()
    p:stop(grace)
    if record then os.remove(record) end
    return nil, msg, info or p:exit_info()
  end
  local port = opts.port ~= 0 and opts.port or nil
  local deadline = clock.now() + math.floor((opts.ready_timeout or 60) * 1e9)
  while not port do
    local text = util.read_file(portfile)
    if text then port = tonumber(text) end
    if port then break end
    if not p:alive() or clock.now() > deadline then
      os.remove(portfile)
      local info = exit_info()
      return fail(string.format("sim: %s before listening; last output:\n%s",
                                info and info.reason or "no port file", p:tail(20)), 1)
    end
    clock.sleep(0.005)
  end
  if portfile then os.remove(portfile) end
  local base_url = string.format("http://%s:%d", host:find(":") and ("[" .. host .. "]") or host, port)
  local t, why = proc.wait_ready{proc = p, http = base_url .. "/health", exit_info = exit_info,
                                 timeout = math.max(0.1, (deadline - clock.now()) / 1e9), interval = 0.01}
  if not t then return fail("sim: " .. why, 2) end
  local mine, foreign = proc.check_port_owner(p, port)
  if not mine then return fail("sim: " .. foreign, 2) end
  local srv = backends.server{backend = "sim", base_url = base_url, dialect = dialect, model = model, load_time_s = t,
                       pid = p.pid, proc = p, log = opts.log, port = port, host = host, grace = 5, argv = argv,
                       get_version = function() return "benchrun sim " .. tostring(bench.version) end}
  -- the exit info, read once the sim has ended, with the OOM record's evidence
  function srv:exit_info()
    local info = self.proc:exit_info()
    if not info then return nil end
    if not self.final_exit then
      self.final_exit = with_oom_record(info, record, self.pid)
      if record then os.remove(record) end
    end
    return self.final_exit
  end
  local stop = getmetatable(srv).stop
  function srv:stop(grace)
    stop(self, grace)
    return self:exit_info() or true
  end
  return srv
end

return adapter
