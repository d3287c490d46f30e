-- The built-in simulator: `benchrun sim --port 0 --port-file F ARGS...`
-- (bench.executable). The port comes from the port file, so no port race.
-- Ready when GET /health answers 200 (503 during --load-time).
local B = require("bench.backends")
local proc = require("bench.proc")
local clock = require("bench.clock")
local A = {name = "sim"}

function A.start(opts)
  B.check_opts("sim", opts, false)
  local host = opts.host or "127.0.0.1"
  local argv = {opts.binary or bench.executable, "sim", "--host", host}
  local portfile
  if opts.port and opts.port ~= 0 then
    B.args({"--port", opts.port}, argv)
  else
    portfile = os.tmpname()
    os.remove(portfile)
    B.args({"--port", 0, "--port-file", portfile}, argv)
  end
  local extra = B.args(opts.args)
  if opts.model and not B.has_flag(extra, "--model") then B.args({"--model", opts.model}, argv) end
  if opts.dialect and not B.has_flag(extra, "--dialect") then B.args({"--dialect", opts.dialect}, argv) end
  B.args(extra, argv)
  local dialect = B.flag_value(argv, "--dialect") or "openai"
  local model = B.flag_value(argv, "--model") or "sim-model"
  local p, err = proc.spawn{argv = argv, env = opts.env, log = opts.log, grace = 5}
  if not p then return nil, "sim: " .. err end
  if opts.on_spawn then opts.on_spawn(p.pid, p) end
  local port = opts.port ~= 0 and opts.port or nil
  local deadline = clock.now() + math.floor((opts.ready_timeout or 60) * 1e9)
  while not port do
    local f = io.open(portfile)
    if f then port = tonumber(f:read("a")) f:close() end
    if port then break end
    if not p:alive() or clock.now() > deadline then
      os.remove(portfile)
      local info = p:exit_info()
      p:stop(1)
      return nil, string.format("sim: %s before listening; last output:\n%s",
                                info and info.reason or "no port file", p:tail(20))
    end
    clock.sleep(0.005)
  end
  if portfile then os.remove(portfile) end
  local base_url = string.format("http://%s:%d", host:find(":") and ("[" .. host .. "]") or host, port)
  local t, why = proc.wait_ready{proc = p, http = base_url .. "/health",
                                 timeout = math.max(0.1, (deadline - clock.now()) / 1e9), interval = 0.01}
  if not t then p:stop(2) return nil, "sim: " .. why end
  return B.server{backend = "sim", base_url = base_url, dialect = dialect, model = model, load_time_s = t,
                  pid = p.pid, proc = p, log = opts.log, port = port, host = host, grace = 5, argv = argv,
                  get_version = function() return "benchrun sim " .. tostring(bench.version) end}
end

return A
