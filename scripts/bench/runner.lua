-- bench.runner: executes a validated plan's cells and records them.
--
-- For each cell, in order: apply its sysctl values (journaled, restored at the
-- end whatever happens; simulated in a dry run), (re)start the server when its
-- configuration changed (backend, model, args, env, sysctl) or the cell asks
-- for a restart, sample the server's memory, send the warm-ups, then each
-- repeat's requests through bench.load, write every record to the results
-- store as it ends, and write the cell's summary when it ends. A server that
-- dies (an OOM kill) makes that cell's result "oom" (or "failed") and the
-- plan goes on. Ctrl-C keeps every finished cell; `--resume DIR` continues.
local M = {}

local P = require("bench.plan")
local clock = require("bench.clock")

local function try_require(name)
  local ok, mod = pcall(require, name)
  if ok then return mod end
  return nil, mod
end

local function now_ns() return clock.now() end

local function utc_stamp()
  return os.date("!%Y%m%dT%H%M%SZ")
end

---------------------------------------------------------------------------
-- progress (bench.progress, or plain lines when it is missing)
---------------------------------------------------------------------------

local function plain_progress(o)
  local p = {total = o.total, mode = o.mode}
  local function line(s) if p.mode ~= "quiet" and p.mode ~= "json" then io.stderr:write(s, "\n") end end
  function p:cell_start(i, id) line(string.format("[%d/%d] %s", i, self.total, id)) end
  function p:request() end
  function p:cell_end(id, status)
    if status ~= "ok" or self.mode ~= "quiet" then line(string.format("       %s: %s", id, status)) end
  end
  function p:log(msg) line(msg) end
  function p:finish(path) if path then line("report: " .. path) end end
  return p
end

local function new_progress(opts, total)
  local mode = opts.quiet and "quiet" or (opts.json and "json") or "auto"
  local prog = try_require("bench.progress")
  if prog and prog.new then
    local tty = false
    local sys = try_require("bench.sys")
    if sys and sys.isatty then tty = sys.isatty(2) end
    return prog.new{total = total, mode = mode, tty = tty, out = io.stderr}
  end
  return plain_progress{total = total, mode = mode}
end

---------------------------------------------------------------------------
-- sysctl with restore (simulated in a dry run)
---------------------------------------------------------------------------

local Sysctl = {}
Sysctl.__index = Sysctl

local function new_sysctl(dry, ceilings)
  return setmetatable({dry = dry, applied = {}, log = {}, ceilings = ceilings or {}, current = {}}, Sysctl)
end

-- set(name, value) -> true or nil, why. "default" puts back the value found
-- before the plan changed it (or leaves it alone if it never did).
function Sysctl:set(name, value)
  if self.current[name] == value then return true end
  local max = self.ceilings[name]
  if value ~= "default" and math.type(max) == "integer" and math.type(value) == "integer" and value > max then
    return nil, string.format("sysctl %s=%d is above the plan's safety.max_sysctl (%d)", name, value, max)
  end
  self.log[#self.log + 1] = {name = name, value = value, simulated = self.dry or nil, t = os.date("!%Y-%m-%dT%H:%M:%SZ")}
  self.current[name] = value
  if self.dry then return true end
  local sys = require("bench.sys")
  if value == "default" then
    local orig = self.applied[name]
    if orig == nil then return true end
    local ok, why = sys.sysctl_set(name, orig)
    if not ok then return nil, string.format("sysctl %s: cannot restore %s: %s", name, tostring(orig), tostring(why)) end
    return true
  end
  if self.applied[name] == nil then
    local orig, why = sys.sysctl_get(name)
    if orig == nil then return nil, string.format("sysctl %s: cannot read it: %s", name, tostring(why)) end
    self.applied[name] = orig
  end
  local ok, why = sys.sysctl_set(name, value)
  if not ok then return nil, string.format("sysctl %s=%s: %s", name, tostring(value), tostring(why)) end
  return true
end

-- restore() puts every changed value back (the journal of bench.sys too).
function Sysctl:restore()
  if self.dry then
    for name in pairs(self.current) do
      if self.current[name] ~= "default" then
        self.log[#self.log + 1] = {name = name, value = "default", simulated = true, restore = true}
      end
    end
    self.current = {}
    return true
  end
  local sys = require("bench.sys")
  local errs = {}
  for name, orig in pairs(self.applied) do
    local ok, why = pcall(sys.sysctl_set, name, orig)
    if not ok or not why then errs[#errs + 1] = string.format("%s: %s", name, tostring(why)) end
  end
  if sys.restore_all then pcall(sys.restore_all) end
  self.applied, self.current = {}, {}
  if #errs > 0 then return nil, table.concat(errs, "; ") end
  return true
end

---------------------------------------------------------------------------
-- Servers
---------------------------------------------------------------------------

-- the cell's labels for the results store (docs/results-format.md)
local function labels_of(plan, cell)
  local l = {}
  local m = cell.model or {}
  l.model = (cell.real_server or cell.server).model
  l.variant = m.name
  l.quant = m.quant
  l.format = m.format
  l.bits = m.bits
  if m.size then l.size_bytes = m.size end
  l.backend = (cell.real_server or cell.server).backend
  l.server = (cell.real_server or cell.server).name
  local env = (cell.real_server or cell.server).env
  if env and next(env) then l.env = env end
  if cell.sysctl and next(cell.sysctl) then l.sysctl = cell.sysctl end
  l.concurrency = cell.concurrency
  l.scenario = cell.scenario
  l.max_tokens = cell.max_tokens
  for axis, lab in pairs(cell.axes or {}) do
    if axis ~= "model" and axis ~= "server" and axis ~= "load" and l[axis] == nil then l[axis] = lab end
  end
  if cell.axes and (cell.axes.env or cell.axes.metal or cell.axes.config) then
    l.config = cell.axes.config or cell.axes.metal or cell.axes.env
  end
  for k, v in pairs(cell.tags or {}) do l[k] = v end
  return l
end
M.labels_of = labels_of

-- Start `benchrun sim` directly (the simulator needs no adapter): used when
-- bench.backends is not available.
local function start_sim_direct(s, log)
  local proc = require("bench.proc")
  local portfile = os.tmpname()
  os.remove(portfile)
  local argv = {bench.executable, "sim", "--port", "0", "--port-file", portfile}
  for _, a in ipairs(s.args or {}) do argv[#argv + 1] = tostring(a) end
  local t0 = now_ns()
  local p, err = proc.spawn{argv = argv, env = {set = s.env or {}, unset = s.unset_env or {}}, log = log}
  if not p then return nil, err end
  local port
  local deadline = t0 + math.floor((s.ready_timeout or 30) * 1e9)
  while now_ns() < deadline do
    local f = io.open(portfile)
    if f then port = tonumber(f:read("a")) f:close() end
    if port then
      local st = proc.probe_http(string.format("http://127.0.0.1:%d/health", port), 1)
      if st == 200 then break end
    end
    if not p:alive() then
      os.remove(portfile)
      local info = p:exit_info() or {}
      return nil, string.format("benchrun sim exited while loading (%s)",
        info.signal and ("killed by signal " .. info.signal .. (info.signal == 9 and ", SIGKILL: out of memory" or ""))
          or ("exit code " .. tostring(info.code)))
    end
    clock.sleep(0.005)
  end
  os.remove(portfile)
  if not port then p:stop(1) return nil, "benchrun sim did not start in time" end
  local model
  for i = 1, #argv - 1 do if argv[i] == "--model" then model = argv[i + 1] end end
  local srv = {base_url = "http://127.0.0.1:" .. port, dialect = "openai", model = model or "sim-model",
               load_time_s = (now_ns() - t0) / 1e9, pid = p.pid, proc = p}
  for i = 1, #argv - 1 do if argv[i] == "--dialect" then srv.dialect = argv[i + 1] end end
  function srv:stop() return self.proc:stop(2) end
  function srv:alive() return self.proc:alive() end
  function srv:exit_info() return self.proc:exit_info() end
  function srv:tail(n) return self.proc:tail(n) end
  function srv:version() return "benchrun sim " .. tostring(bench.version) end
  return srv
end

local function start_server(ctx, cell)
  local s = cell.server
  local backends = try_require("bench.backends")
  -- server logs beside the results: server-<cell>.log
  local log = s.log or string.format("%s/server-%s.log", ctx.run.dir, (cell.id:gsub("[^%w%._-]", "_")))
  if not backends and s.backend == "sim" then return start_sim_direct(s, log) end
  if not backends then return nil, "bench.backends is not available" end
  local b, err = backends.get(s.backend)
  if not b then return nil, err or ("no backend " .. tostring(s.backend)) end
  return b.start{model = s.model, args = s.args, env = {set = s.env, unset = s.unset_env},
                 port = s.port, ready_timeout = s.ready_timeout, log = log, binary = s.binary,
                 base_url = s.base_url, dialect = s.dialect, extra = s.extra, name = s.name}
end

local function stop_server(ctx)
  local srv = ctx.server
  ctx.server, ctx.server_key = nil, nil
  if srv then pcall(srv.stop, srv) end
  if ctx.sampler then pcall(ctx.sampler.stop, ctx.sampler) ctx.sampler = nil end
end

-- why the server died: "oom" for a SIGKILL (what the kernel's OOM killer and
-- macOS's jetsam send) or the simulator's own OOM exit, "failed" otherwise.
local function death_status(srv)
  local info = srv.exit_info and srv:exit_info() or nil
  if type(info) == "table" then
    if info.signal == 9 or info.signal == "SIGKILL" or info.oom then return "oom", info end
    if info.code == 137 then return "oom", info end
  end
  local tail = srv.tail and srv:tail(20) or ""
  if type(tail) == "table" then tail = table.concat(tail, "\n") end
  if tostring(tail):lower():find("out of memory") or tostring(tail):lower():find("oom") then
    return "oom", info
  end
  return "failed", info
end

local function server_alive(srv)
  if not srv then return false end
  if srv.alive then
    local ok, r = pcall(srv.alive, srv)
    return ok and r ~= false
  end
  return true
end

---------------------------------------------------------------------------
-- Memory sampling
---------------------------------------------------------------------------

local function start_sampler(ctx, pid)
  local mem = try_require("bench.mem")
  if not (mem and mem.sampler and pid) then return nil end
  local sp = ctx.plan.sampling or {}
  local ok, s = pcall(mem.sampler, {pid = pid, interval = sp.memory or 0.1, gpu = sp.gpu ~= false})
  if not ok or not s then return nil end
  local ok2 = pcall(s.start, s)
  if not ok2 then return nil end
  return s
end

-- phase of a sample time within a cell's marks
local function phase_at(marks, t)
  local ph = "idle"
  for _, m in ipairs(marks) do
    if t >= m.t then ph = m.phase else break end
  end
  return ph
end

---------------------------------------------------------------------------
-- Workload of a cell
---------------------------------------------------------------------------

local function cell_workload(ctx, cell)
  local W = require("bench.workload")
  local plan = ctx.plan
  local spec = {}
  for k, v in pairs(plan.workload or {prompts = "seed"}) do spec[k] = v end
  if spec.prompts == nil and spec.file == nil and spec.synthetic == nil then spec.prompts = "seed" end
  if spec.file then spec.prompts, spec.file = spec.file, nil end
  local w
  if cell.mix then
    w = W.mix(cell.mix)
  else
    if cell.prompt and type(spec.prompts) == "table" then
      local keep = {}
      for _, p in ipairs(spec.prompts) do if p.name == cell.prompt then keep[#keep + 1] = p end end
      spec.prompts = keep
    end
    w = W.from(spec)
  end
  -- count of distinct prompts: a single-user cell sends each once per repeat
  local n = w.size
  if cell.prompt and spec.prompts == "seed" then
    local list = W.seed_prompts()
    for _, p in ipairs(list) do if p.name == cell.prompt then w = W.list({p}) n = 1 end end
  end
  local over = {}
  if cell.max_tokens then over.max_tokens = cell.max_tokens end
  if next(over) then w = w:with(over) end
  if cell.max_tokens_cap then
    local cap, base = cell.max_tokens_cap, w
    w = W.new("capped", function(i)
      local r = base:next(i)
      local out = {}
      for k, v in pairs(r) do out[k] = v end
      if (out.max_tokens or cap + 1) > cap then
        out.requested_max_tokens = out.max_tokens
        out.max_tokens = cap
      end
      return out
    end, {size = base.size})
  end
  return w, n
end

---------------------------------------------------------------------------
-- One cell
---------------------------------------------------------------------------

local function summarize(records, wall_s, slo)
  local S = require("bench.summary")
  local ok, s = pcall(S.of, records, {slo = slo, wall_s = wall_s})
  if ok then return s end
  return {requests = #records, error = tostring(s)}
end

-- run_cell(ctx, cell, i) -> the cell table written to the results store
local function run_cell(ctx, cell, i)
  local plan, run = ctx.plan, ctx.run
  local out = {id = cell.id, labels = labels_of(plan, cell), status = "ok", server = {},
               started_ns = now_ns(), outputs = {}, repeats = cell["repeat"], warmups = cell.warmup}
  if ctx.phase_script and ctx.phase_script.labels then
    pcall(ctx.phase_script.labels, ctx, cell, out.labels)
  end
  local marks = {}
  local function mark(ph) marks[#marks + 1] = {t = now_ns(), phase = ph} end

  -- sysctl first: a model loads under the limits the cell asks for
  local keys = {}
  for k in pairs(cell.sysctl or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local ok, why = ctx.sysctl:set(k, cell.sysctl[k])
    if not ok then
      out.status, out.error = "failed", why
      return out
    end
  end
  if #keys > 0 and ctx.dry then out.sysctl_simulated = true end

  -- server: restart when its configuration changed
  local key = P.server_key(cell)
  if ctx.server and (ctx.server_key ~= key or cell.restart or not server_alive(ctx.server)) then
    stop_server(ctx)
  end
  local srv = ctx.server
  if not srv then
    mark("load")
    local t0 = now_ns()
    local why
    srv, why = start_server(ctx, cell)
    if not srv then
      out.status, out.error = "failed", tostring(why)
      -- a start that failed because the process died: an OOM kill is a result
      if tostring(why):lower():find("oom") or tostring(why):find("signal 9") or tostring(why):find("SIGKILL")
         or tostring(why):lower():find("out of memory") or tostring(why):lower():find("killed") then
        out.status = "oom"
      end
      out.server.load_time_s = (now_ns() - t0) / 1e9
      out.ended_ns = now_ns()
      return out
    end
    ctx.server, ctx.server_key = srv, key
    ctx.server_load_time = srv.load_time_s or (now_ns() - t0) / 1e9
    ctx.server_started_cell = cell.id
    ctx.sampler = start_sampler(ctx, srv.pid)
    ctx.sampler_marks = {{t = t0, phase = "load"}}
    out.server.restarted = true
  end
  out.server.load_time_s = ctx.server_load_time
  out.server.started_by = ctx.server_started_cell
  if srv.version then
    local ok, v = pcall(srv.version, srv)
    if ok then out.server.version = v end
  end
  out.server.model_bytes = cell.model and cell.model.size

  local openai = require("bench.openai")
  local load = require("bench.load")
  local s = cell.server
  local client = openai.client{base_url = srv.base_url, dialect = srv.dialect or s.dialect,
                               model = srv.model or s.model, api_key_env = s.api_key_env, extra = s.extra}
  local w, nprompts = cell_workload(ctx, cell)
  local conc = cell.concurrency or 1
  local requests = cell.requests
  if not requests and not cell.duration then
    -- one user: every prompt once per repeat; N users: 4 rounds of N
    if conc == 1 then requests = cell.prompt and 1 or (nprompts or 5)
    else requests = conc * 4 end
  end
  out.requests_per_repeat = requests
  if ctx.dry and plan.dry_run and plan.dry_run.requests_scale and requests then
    requests = math.max(conc, math.ceil(requests * plan.dry_run.requests_scale))
  end

  local records = {}
  local died
  local function on_record(r, rep, warm)
    r.cell = cell.id
    r["repeat"] = rep
    if warm then r.warmup = true end
    run:record(cell.id, r)
    if not warm then
      records[#records + 1] = r
      if r.prompt == nil and r.name then r.prompt = r.name end
      local pname = r.prompt or r.name
      if pname and r.text and out.outputs[pname] == nil and (r.ok ~= false and not r.error) then out.outputs[pname] = r.text end
      ctx.progress:request(r)
    end
  end

  -- warm-ups, then the repeats
  local wall_total = 0
  if (cell.warmup or 0) > 0 then
    ctx.sampler_marks[#ctx.sampler_marks + 1] = {t = now_ns(), phase = "warmup"}
    load.closed{client = client, concurrency = 1, requests = cell.warmup, workload = w,
                on_record = function(r) on_record(r, 0, true) end}
  end
  for rep = 1, cell["repeat"] or 1 do
    if not server_alive(srv) then died = true break end
    ctx.sampler_marks[#ctx.sampler_marks + 1] = {t = now_ns(), phase = "run"}
    local t0 = now_ns()
    local ok, res = pcall(load.closed, {client = client, concurrency = conc, requests = requests,
                                        duration = cell.duration, workload = w,
                                        on_record = function(r) on_record(r, rep, false) end})
    wall_total = wall_total + (now_ns() - t0) / 1e9
    if not ok then
      if tostring(res):find("interrupted") then error(res, 0) end
      out.status, out.error = "failed", tostring(res)
      break
    end
    if not server_alive(srv) then died = true break end
  end
  ctx.sampler_marks[#ctx.sampler_marks + 1] = {t = now_ns(), phase = "idle"}
  if died or not server_alive(srv) then
    local status, info = death_status(srv)
    out.status = status
    out.error = status == "oom" and "the server was killed (out of memory) during the cell" or "the server exited during the cell"
    out.server.exit = info
    stop_server(ctx)
  end
  out.summary = summarize(records, wall_total, plan.slo)
  out.ended_ns = now_ns()
  return out
end

-- collect the sampler's samples up to now (at a server stop or the end)
local function flush_samples(ctx, cell_id)
  if not ctx.sampler then return nil end
  local ok, res = pcall(ctx.sampler.stop, ctx.sampler)
  ctx.sampler = nil
  if not ok or type(res) ~= "table" then return nil end
  local list = {}
  for _, s in ipairs(res.samples or {}) do
    local x = {}
    for k, v in pairs(s) do x[k] = v end
    x.t_ns = x.t_ns or x.t
    x.cell = x.cell or cell_id
    x.phase = x.phase or (x.t_ns and phase_at(ctx.sampler_marks or {}, x.t_ns)) or "run"
    list[#list + 1] = x
  end
  if #list > 0 then ctx.run:samples(list) end
  return res.peak
end

---------------------------------------------------------------------------
-- The plan
---------------------------------------------------------------------------

local function load_phase_script(plan)
  if not plan.script_path then return {} end
  local chunk, err = loadfile(plan.script_path)
  if not chunk then error("phase script: " .. err, 0) end
  local s = chunk()
  if type(s) ~= "table" then error(plan.script_path .. ": expected the phase script to return a table", 0) end
  return s
end

local function env_of(plan, opts)
  local env = {dry_run = opts.dry_run or false, argv = opts.argv, sets = opts.sets, only = opts.only}
  local sys = try_require("bench.sys")
  if sys and sys.info then
    local ok, info = pcall(sys.info)
    if ok then env.host = info end
  end
  local models, servers = {}, {}
  for _, c in ipairs(plan.cells) do
    if c.model and c.model.name then models[c.model.name] = c.model end
    local s = c.real_server or c.server
    servers[s.name or s.backend] = {backend = s.backend, model = s.model, args = s.args, env = s.env}
  end
  env.models, env.servers = models, servers
  if plan.dry then
    env.dry_run_figures = plan.dry_run or {}
    env.dry_run_max_tokens_cap = (plan.dry_run or {}).max_tokens
  end
  return env
end

-- runner.run(plan, opts) -> exit status. opts: dry_run, resume (a results
-- folder), out (parent folder), quiet, json, argv.
function M.run(plan, opts)
  opts = opts or {}
  local results = require("bench.results")
  local dryrun = require("bench.dryrun")
  if opts.dry_run then
    dryrun.apply(plan)
  else
    -- a plan on the simulator (the demo) takes its figures from dry_run:
    for _, c in ipairs(plan.cells) do
      if c.server.backend == "sim" and #(c.server.args or {}) == 0 then
        c.real_server = c.server
        c.server = dryrun.server(plan, c)
        c.max_tokens_cap = plan.dry_run and plan.dry_run.max_tokens
      end
    end
  end
  local phase_script = load_phase_script(plan)
  local checks = phase_script.checks
  if type(checks) == "function" then checks = checks(plan) end

  local run, why
  if opts.resume then
    run, why = results.open(opts.resume, {checks = checks})
    if not run then io.stderr:write("benchrun: --resume ", opts.resume, ": ", tostring(why), "\n") return 2 end
  else
    run, why = results.create{root = opts.out or plan.output or "results", name = plan.name,
                              plan = plan.doc, plan_text = plan.text, env = env_of(plan, opts),
                              phase = phase_script.phase, checks = checks, total_cells = #plan.cells}
    if not run then io.stderr:write("benchrun: cannot create the results folder: ", tostring(why), "\n") return 1 end
  end

  local todo = {}
  for _, c in ipairs(plan.cells) do
    if not (opts.resume and run:done(c.id)) then
      todo[#todo + 1] = c
    end
  end
  local progress = new_progress(opts, #todo)
  if opts.resume then progress:log(string.format("resuming %s: %d of %d cells left", run.dir, #todo, #plan.cells)) end
  local ceilings = plan.safety and plan.safety.max_sysctl or {}
  local ctx = {plan = plan, run = run, dry = opts.dry_run or false, progress = progress,
               sysctl = new_sysctl(opts.dry_run, ceilings), phase_script = phase_script, opts = opts}

  local interrupted, fatal
  local status_count = {}
  local ok, err = xpcall(function()
    if phase_script.prepare then phase_script.prepare(ctx) end
    for i, cell in ipairs(todo) do
      progress:cell_start(i, cell.id, {requests = P.cell_requests(plan, cell), labels = cell.axes})
      local res = run_cell(ctx, cell, i)
      -- the next cell restarts the server: its samples belong to this one
      local nxt = todo[i + 1]
      local peak
      if not nxt or not ctx.server or P.server_key(nxt) ~= ctx.server_key or nxt.restart then
        peak = flush_samples(ctx, cell.id)
        stop_server(ctx)
      end
      if type(peak) == "table" then
        res.server.peak_rss_bytes = peak.rss or peak.tree_rss or peak.rss_bytes
        res.server.peak_gpu_bytes = peak.gpu_used or peak.gpu
        res.server.sys_used_peak_bytes = peak.sys_used
      end
      if ctx.dry then
        res.dry_run = {figures = cell.server.figures, real_backend = cell.server.real_backend,
                       max_tokens_cap = cell.max_tokens_cap}
      end
      if phase_script.after_cell then pcall(phase_script.after_cell, ctx, cell, res) end
      status_count[res.status] = (status_count[res.status] or 0) + 1
      run:cell(res)
      progress:cell_end(cell.id, res.status, res)
      if res.status ~= "ok" and res.error then progress:log(string.format("cell %s: %s: %s", cell.id, res.status, res.error)) end
      if res.status == "oom" and plan.safety and plan.safety.stop_on_oom then
        progress:log("stopping: safety.stop_on_oom is set")
        break
      end
    end
  end, function(e)
    if tostring(e):find("interrupted") then return "interrupted" end
    return debug.traceback(tostring(e), 2)
  end)
  if not ok then
    if err == "interrupted" then interrupted = true else fatal = err end
  end
  -- whatever happened: stop the server, restore the machine's settings
  pcall(flush_samples, ctx, "(interrupted)")
  stop_server(ctx)
  local rok, rwhy = ctx.sysctl:restore()
  if not rok then io.stderr:write("benchrun: WARNING: restoring sysctl values: ", tostring(rwhy), "\n") end
  pcall(run.flush, run)

  if interrupted then
    io.stderr:write(string.format("benchrun: interrupted; finished cells are kept in %s\n" ..
                                  "          continue with: benchrun %s --resume %s\n", run.dir,
                                  (opts.argv and opts.argv[1]) or "PLAN.yaml", run.dir))
    pcall(run.close, run)
    return 130
  end
  if fatal then
    io.stderr:write("benchrun: ", tostring(fatal), "\n")
    pcall(run.close, run)
    return 1
  end

  local notes = {sysctl = ctx.sysctl.log, dry_run = ctx.dry or nil}
  local lines = {}
  if phase_script.finish then
    local fok, n, l = pcall(phase_script.finish, ctx, run:cells())
    if fok then
      if type(n) == "table" then for k, v in pairs(n) do notes[k] = v end end
      if type(l) == "table" then lines = l end
    else
      io.stderr:write("benchrun: phase script finish: ", tostring(n), "\n")
    end
  end
  local report_path = run:finish{phase = phase_script.phase, notes = notes}
  pcall(run.close, run)
  if not opts.quiet and not opts.json then
    for _, l in ipairs(lines) do io.stdout:write(l, "\n") end
  end
  progress:finish(report_path)
  if opts.quiet and report_path then io.stdout:write(report_path, "\n") end
  local bad = 0
  for st, n in pairs(status_count) do if st ~= "ok" and st ~= "oom" then bad = bad + n end end
  -- an OOM the plan expects (models: expect: oom) is a result, not a failure
  return bad > 0 and 1 or 0
end

M.new_sysctl = new_sysctl
M.run_cell = run_cell
return M
