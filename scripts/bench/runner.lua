-- bench.runner: executes a validated plan's cells and records them (the
-- cell loop; docs/phases.md says what a phase script sees of it).
--
-- For each cell, in order: apply its sysctl values (bench.sysctl: journaled
-- by bench.sys, restored at the end whatever happens; simulated in a dry
-- run), (re)start the server when its configuration changed (backend, model,
-- args, env, sysctl) or the cell asks for a restart, watch it (bench.monitor:
-- memory, ceiling, /metrics, samples.jsonl), wait for the machine to cool
-- and measure its idle power (bench.powerwatch: one power sampler for the
-- run; each cell's energy over its repeats), send the warm-ups, then each
-- repeat's requests through bench.load, write every record to the results
-- store as it ends, and write the cell's summary when it ends. A server that
-- dies makes that cell's result "oom" (only with evidence of an OOM kill),
-- "crashed" (killed by a signal) or "failed", and the plan goes on. Ctrl-C
-- keeps every finished cell; `--resume DIR` continues.
local M = {}

local estimate = require("bench.plan.estimate")

local clock = require("bench.clock")
local sys = require("bench.sys")
local http = require("bench.http")
local backends = require("bench.backends")
local progress = require("bench.progress")
local monitor = require("bench.monitor")
local sysctl = require("bench.sysctl")
local labels = require("bench.labels")
local powerwatch = require("bench.powerwatch")
local measure = require("bench.measure")

local function now_ns() return clock.now() end

local function new_progress(opts, total)
  local mode = opts.quiet and "quiet" or (opts.json and "json") or "auto"
  -- tty = nil: bench.progress finds out whether stderr is a terminal
  return progress.new{total = total, mode = mode, out = io.stderr}
end

-- kept for scripts and tests that reach these through the runner
M.new_sysctl = sysctl.new
M.parse_metrics = monitor.parse_metrics
M.labels_of = labels.of

-- Every cell's labels (bench.labels; the phase script's hook included).
function M.assign_labels(plan, cells, phase_script, ctx)
  local hook = phase_script and phase_script.labels
  labels.assign(plan, cells, hook and function(c, l) return hook(ctx, c, l) end)
end

---------------------------------------------------------------------------
-- Servers
---------------------------------------------------------------------------

local function start_server(ctx, cell)
  local s = cell.server
  -- server logs beside the results: server-<cell>.log
  local log = s.log or string.format("%s/server-%s.log", ctx.run.dir, (cell.id:gsub("[^%w%._-]", "_")))
  ctx.server_log = log
  local b, err = backends.get(s.backend)
  if not b then return nil, err end
  local srv, why, exit = b.start{model = s.model, args = s.args, env = {set = s.env, unset = s.unset_env},
                           port = s.port, ready_timeout = s.ready_timeout, log = log, binary = s.binary,
                           base_url = s.base_url, dialect = s.dialect, extra = s.extra, name = s.name,
                           -- sample from the spawn on, so the load is in the memory series
                           on_spawn = function(pid, process) ctx.monitor:start(cell, {pid = pid, process = process}) end}
  if not srv then return nil, why, exit end
  -- lmstudio and external spawn nothing: sample what is known (extra.pid, else the system)
  ctx.monitor:start(cell, {pid = srv.pid, server = srv, base_url = srv.base_url})
  return srv
end

-- The monitor stops first: its last sample (taken as it stops) then still
-- sees the server at full size, which matters when a cell is shorter than
-- the sampling interval.
local function stop_server(ctx)
  local peak, series = ctx.monitor:stop()
  local srv = ctx.server
  ctx.server, ctx.server_key = nil, nil
  if srv then pcall(srv.stop, srv) end
  return peak, series
end

-- why the server ended, from its exit information only (never its output):
-- proc.classify_exit's "oom" (with evidence of an OOM kill) and "crashed"
-- (any other signal benchrun did not send) are cell statuses of their own;
-- an exit with a code, or a stop by benchrun, is "failed". Returns the
-- status and the classification ({status, signal_name, code, evidence, reason}).
local function death_status(info)
  local c = require("bench.proc").classify_exit(info)
  local status = (c.status == "oom" or c.status == "crashed") and c.status or "failed"
  return status, c
end

---------------------------------------------------------------------------
-- One cell
---------------------------------------------------------------------------

-- a cell that ends before its requests: status and why
local function ended(out, status, why)
  out.status, out.error = status, why
  out.ended_ns = now_ns()
  return out
end

-- A server that did not start: the adapter's message (one line of why,
-- then the server's last output), and, when the process died by a signal,
-- an OOM kill (with evidence) or a crash, from the exit info, never the text.
local function start_failed(ctx, out, why, exit, t0)
  local text = tostring(why)
  local head, rest = text:match("^([^\n]*)\n(.*)$")
  head = (head or text):gsub(";? ?last output:%s*$", "")
  out.status, out.error = "failed", "the server did not start: " .. head
  if rest and rest ~= "" then out.server.last_output = rest end
  local status = death_status(exit)
  out.server.exit = exit
  if exit and status ~= "failed" then
    out.status = status
    -- (head says how it ended: the exit's reason, with its evidence)
    out.error = (status == "oom" and "killed while loading (out of memory): " or "crashed while loading: ") .. head
  end
  ctx.monitor:take_ceiling_hit(out)
  out.server.load_time_s = (now_ns() - t0) / 1e9
  out.ended_ns = now_ns()
  return out
end

-- The cell's server: the running one when its configuration is the cell's,
-- else a new one. -> srv | nil (out is then the failed cell)
local function cell_server(ctx, cell, out)
  local key = estimate.server_key(cell)
  if ctx.server and (ctx.server_key ~= key or cell.restart or not measure.server_alive(ctx.server)) then
    stop_server(ctx)
  end
  local srv = ctx.server
  if not srv then
    ctx.monitor:mark("load", cell.id)
    local t0 = now_ns()
    local why, exit
    srv, why, exit = start_server(ctx, cell)
    if not srv then start_failed(ctx, out, why, exit, t0) return nil end
    ctx.server, ctx.server_key = srv, key
    ctx.server_load_time = srv.load_time_s or (now_ns() - t0) / 1e9
    ctx.server_load_resolution = srv.load_time_s and srv.load_time_resolution_s
    ctx.server_started_cell = cell.id
    out.server.restarted = true
  end
  out.server.load_time_s = ctx.server_load_time
  out.server.load_time_resolution_s = ctx.server_load_resolution
  out.server.started_by = ctx.server_started_cell
  local vok, v = pcall(srv.version, srv)
  if vok then out.server.version = v end
  out.server.model_bytes = cell.model and cell.model.size
  out.note = cell.note
  out.server.model_id = srv.model or cell.server.model
  out.server.env_delivery = srv.env_delivery
  return srv
end

-- run_cell(ctx, cell, i) -> the cell table written to the results store
local function run_cell(ctx, cell, i)
  local plan = ctx.plan
  local out = {id = cell.id, labels = cell.labels or labels.of(plan, cell), status = "ok", server = {},
               started_ns = now_ns(), outputs = {}, repeats = cell["repeat"], warmups = cell.warmup}
  ctx.monitor.cell_id = cell.id

  -- sysctl first: a model loads under the limits the cell asks for
  -- exactly its values; the others this run changed are back at their originals
  local in_effect, sysctl_why = ctx.sysctl:apply(cell.sysctl)
  if not in_effect then return ended(out, "failed", sysctl_why) end
  if next(in_effect) then out.sysctl = in_effect end
  if next(cell.sysctl or {}) and ctx.dry then out.sysctl_simulated = true end

  -- server: restart when its configuration changed or the cell asks for it
  local srv = cell_server(ctx, cell, out)
  if not srv then return out end

  -- as many open files as the cell's connections need, or a clear no
  local fd_ok, fd_why = M.ensure_fds(cell)
  if not fd_ok then return ended(out, "failed", fd_why) end

  -- cooldown, then the idle baseline (bench.powerwatch)
  ctx.power:before_cell(cell, out)
  local acc = measure.new_summary(plan.slo)
  local wall_total, died, gone, found = (plan.search and measure.search or measure.cell)(ctx, cell, srv, out, acc)
  if died then
    local info = srv.exit_info and srv:exit_info() or nil
    local status, c = death_status(info)
    out.status = status
    out.error = status == "oom" and ("the server was killed for lack of memory during the cell: " .. tostring(c.evidence))
      or status == "crashed" and ("the server crashed during the cell: " .. c.reason)
      or ("the server exited during the cell: " .. c.reason)
    out.server.exit = info
    ctx.monitor:take_ceiling_hit(out)
    monitor.set_peaks(out, stop_server(ctx))
  end
  out.summary = found or measure.summarize(acc, wall_total)
  ctx.power:after_cell(out)
  if gone then out.stopped = gone end
  -- a cell is what its requests were (bench.summary.verdict): none
  -- succeeded is failed, errors above max_error_rate degraded
  if out.status == "ok" then
    local st, why = require("bench.summary").verdict(out.summary, {max_error_rate = M.max_error_rate(plan, cell)})
    out.status = st
    if st ~= "ok" then out.error = why elseif why then out.warning = why end
  end
  out.ended_ns = now_ns()
  return out
end

-- What the server's log says about the environment variables the cell
-- set: up to 3 lines per name that mention it (an engine that reads a
-- setting often says so; one that never names it may ignore it). ->
-- {NAME = {lines}}, {names never mentioned}, or nil when there is no log.
local LOG_LINES_PER_NAME, LOG_LINE_MAX = 3, 200
function M.env_in_log(path, env)
  local names = {}
  for k in pairs(env or {}) do names[#names + 1] = k end
  if #names == 0 or not path then return nil end
  table.sort(names)
  local f = io.open(path, "r")
  if not f then return nil end
  local seen = {}
  for line in f:lines() do
    for _, n in ipairs(names) do
      local l = seen[n] or {}
      if #l < LOG_LINES_PER_NAME and line:find(n, 1, true) then
        l[#l + 1] = line:sub(1, LOG_LINE_MAX)
        seen[n] = l
      end
    end
  end
  f:close()
  local missing = {}
  for _, n in ipairs(names) do if not seen[n] then missing[#missing + 1] = n end end
  return seen, missing
end

-- The share of failed measured requests a cell may have and still be ok.
function M.max_error_rate(plan, cell)
  if cell.max_error_rate ~= nil then return cell.max_error_rate end
  return plan.max_error_rate or 0
end

-- Open files: a connection each, plus what the runner and the sampler hold.
local FD_RESERVE = 64

-- ensure_fds(cell) -> true, note? | nil, why: raise the soft open-file limit
-- to what the cell's concurrency needs (an open loop without a cap: as far
-- as the hard limit allows), and say so when it cannot be raised enough.
function M.ensure_fds(cell)
  local conc = cell.concurrency or 1
  local need = conc + FD_RESERVE
  local capped = not cell.rate or cell.concurrency_set
  local ok, got = pcall(http.max_fds, capped and need or nil)
  if not ok then return nil, "cannot read or raise the open-file limit: " .. tostring(got) end
  if capped and got < need then
    return nil, string.format("concurrency %d needs about %d open files, but the limit is %d and cannot be raised " ..
      "further (hard limit); raise it (ulimit -n %d, or launchctl limit maxfiles on macOS) or lower the concurrency",
      conc, need, got, need)
  end
  return true
end

---------------------------------------------------------------------------
-- The plan
---------------------------------------------------------------------------

local function env_of(plan, opts, pw)
  local env = {dry_run = opts.dry_run or false, argv = opts.argv, sets = opts.sets, only = opts.only,
               shard = opts.shard_info,   -- bench.shard: which shard of which run (bench.merge reads it)
               power = pw and pw:env()}   -- bench.powerwatch: the machine's power sources
  local ok, info = pcall(sys.info)
  if ok then env.host = info end
  local models, servers = {}, {}
  for _, c in ipairs(plan.cells) do
    if c.model and c.model.name then models[c.model.name] = c.model end
    local s = c.real_server or c.server
    -- how a cell's env reaches the engine, where the backend says (lmstudio)
    local b = backends.get(s.backend)
    servers[s.name or s.backend] = {backend = s.backend, model = s.model, args = s.args, env = s.env,
                                    env_delivery = b and b.env_delivery or nil}
  end
  env.models, env.servers = models, servers
  if plan.dry then
    env.dry_run_figures = plan.dry_run or {}
    env.dry_run_max_tokens_cap = (plan.dry_run or {}).max_tokens
  end
  return env
end

-- The run's folder: a new one, or with --resume the one it continues.
-- -> run | nil, exit status (said on stderr)
local function open_run(plan, opts, phase_script, checks, pw)
  local results = require("bench.results")
  if opts.resume then
    local run, why = results.open(opts.resume, {checks = checks, expect = {plan_text = plan.text, sets = opts.sets,
                                                                           only = opts.only, dry_run = opts.dry_run}})
    if not run then io.stderr:write("benchrun: --resume ", opts.resume, ": ", tostring(why), "\n") return nil, 2 end
    return run
  end
  local run, why = results.create{root = opts.out or plan.output or "results", name = plan.name, dir = opts.dir,
                                  plan = plan.doc, plan_text = plan.text, env = env_of(plan, opts, pw),
                                  phase = phase_script.phase, checks = checks, total_cells = #plan.cells}
  if not run then io.stderr:write("benchrun: cannot create the results folder: ", tostring(why), "\n") return nil, 1 end
  return run
end

-- A dry run's servers are simulators; a plan on the simulator (the demo)
-- takes its figures from dry_run: as well.
local function simulate(plan, opts)
  local dryrun = require("bench.dryrun")
  if opts.dry_run then
    dryrun.apply(plan)
    return
  end
  for _, c in ipairs(plan.cells) do
    if c.server.backend == "sim" and #(c.server.args or {}) == 0 then
      c.real_server = c.server
      c.server = dryrun.server(plan, c)
      c.max_tokens_cap = plan.dry_run and plan.dry_run.max_tokens
    end
  end
end

-- What the runner adds to a finished cell before it is written: a dry
-- run's figures, what the server's log said of the plan's variables, the
-- phase script's after_cell.
local function complete_cell(ctx, cell, res)
  if ctx.dry then
    res.dry_run = {figures = cell.server.figures, real_backend = cell.server.real_backend,
                   max_tokens_cap = cell.max_tokens_cap}
  end
  -- the plan's own variables (a dry run's simulator gets helpers of its own)
  local env = (cell.real_server or cell.server or {}).env
  if env and next(env) and res.server and ctx.server_log then
    local seen, missing = M.env_in_log(ctx.server_log, env)
    if seen then res.server.env_log, res.server.env_not_logged = seen, missing end
  end
  local after = ctx.phase_script.after_cell
  if after then pcall(after, ctx, cell, res) end
end

-- The cell loop. -> cells left out by safety.stop_on_oom (or nil)
local function run_cells(ctx, remaining, status_count)
  local plan, run = ctx.plan, ctx.run
  for i, cell in ipairs(remaining) do
    ctx.progress:cell_start(i, cell.id, {requests = estimate.cell_requests(plan, cell), labels = cell.axes})
    local res = run_cell(ctx, cell, i)
    -- the next cell restarts the server: its samples belong to this one
    local nxt = remaining[i + 1]
    if not nxt or not ctx.server or estimate.server_key(nxt) ~= ctx.server_key or nxt.restart then
      monitor.set_peaks(res, stop_server(ctx))
    else
      ctx.monitor:sync()
    end
    complete_cell(ctx, cell, res)
    local st = res.aborted and "aborted" or res.status
    status_count[st] = (status_count[st] or 0) + 1
    run:cell(res)
    ctx.progress:cell_end(cell.id, res.status, res)
    if res.status ~= "ok" and res.error then ctx.progress:log(string.format("cell %s: %s: %s", cell.id, res.status, res.error)) end
    if res.status == "oom" and plan.safety and plan.safety.stop_on_oom and i < #remaining then
      -- the cells left are not recorded: --resume runs them
      local stopped = #remaining - i
      ctx.progress:log(string.format("stopping after the OOM kill in %s (safety.stop_on_oom): %d cell%s not run; " ..
        "%s runs them", cell.id, stopped, stopped == 1 and "" or "s",
        require("bench.results").resume_command((ctx.opts.argv and ctx.opts.argv[1]) or "PLAN.yaml", run.dir, ctx.opts)))
      return stopped
    end
  end
end

-- The end of a run that was not interrupted: the phase script's finish
-- (notes for the report, lines for the console), the report, the console.
-- -> report path | nil (said on stderr)
local function finish_run(ctx)
  local opts, phase_script, run = ctx.opts, ctx.phase_script, ctx.run
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
  local report_path, ferr = require("bench.report").finish(run, {phase = phase_script.phase, notes = notes})
  if not report_path then io.stderr:write("benchrun: ", tostring(ferr), "\n") return nil end
  pcall(run.close, run)
  require("bench.history").after_run(run.dir, opts, ctx.progress)   -- a warning at worst, never the run's failure
  if not opts.quiet and not opts.json then
    for _, l in ipairs(lines) do io.stdout:write(l, "\n") end
    io.stdout:flush()   -- before the last lines on stderr: the report's path ends the output
  end
  ctx.progress:finish(report_path)
  if opts.quiet and report_path then io.stdout:write(report_path, "\n") end
  return report_path
end

-- runner.run(plan, opts) -> exit status. opts: dry_run, resume (a results
-- folder), out (parent folder), quiet, json, argv.
function M.run(plan, opts)
  opts = opts or {}
  simulate(plan, opts)
  local phase_script = require("bench.phase").load(plan.script_path)
  -- a prompt's check: runs whatever the phase script (unless it brings its own)
  local checks = phase_script.checks
  if checks == nil then checks = require("bench.checks").of_plan end
  if type(checks) == "function" then checks = checks(plan) end
  -- the machine's power sources, for env.json; sampled from the first cell on
  local pw = powerwatch.new{plan = plan, progress = {log = function(_, l) io.stderr:write("benchrun: ", l, "\n") end},
                            dry = opts.dry_run}
  local run, code = open_run(plan, opts, phase_script, checks, pw)
  if not run then pw:stop() return code end

  local remaining = {}
  for _, c in ipairs(plan.cells) do
    if not (opts.resume and run:done(c.id)) then remaining[#remaining + 1] = c end
  end
  local prog = new_progress(opts, #remaining)
  if opts.resume then
    prog:log(string.format("resuming %s: %d of %d cells left%s", run.dir, #remaining, #plan.cells,
                           opts.dry_run and " (a dry run, as it started)" or ""))
  end
  -- what a phase script's hooks see (docs/phases.md lists every field)
  local ctx = {plan = plan, run = run, dry = opts.dry_run or false, progress = prog,
               sysctl = sysctl.new(opts.dry_run, plan.safety and plan.safety.max_sysctl or {}),
               monitor = monitor.new{plan = plan, run = run, progress = prog},
               phase_script = phase_script, opts = opts, power = pw}
  pw.progress = prog
  pw:start(run, ctx.monitor)
  M.assign_labels(plan, plan.cells, phase_script, ctx)
  local stopped
  local status_count = {}
  -- bench.xpcall_top: an interruption (the value bench.interrupt) stops
  -- here however deep a pcall tried to swallow it, and the clean-up below runs
  local ok, err = bench.xpcall_top(function()
    if phase_script.prepare then phase_script.prepare(ctx) end
    stopped = run_cells(ctx, remaining, status_count)
  end, function(e)
    if run.write_error then return run.write_error end   -- a full disk: the message says it all
    return debug.traceback(tostring(e), 2)
  end)
  -- whatever happened: stop the server, restore the machine's settings
  stop_server(ctx)
  pw:stop()
  local rok, rwhy = ctx.sysctl:restore()
  if not rok then
    io.stderr:write("benchrun: WARNING: sysctl values NOT restored: ", tostring(rwhy),
                    "\n          bench.sys keeps their originals in its journal; the next benchrun retries\n")
  end
  pcall(run.flush, run)

  if not ok and bench.is_interrupt(err) then
    io.stderr:write(string.format("benchrun: interrupted; finished cells are kept in %s\n" ..
                                  "          continue with: %s\n", run.dir,
                                  require("bench.results").resume_command((opts.argv and opts.argv[1]) or "PLAN.yaml",
                                                                          run.dir, opts)))
    pcall(run.close, run)
    return 130
  end
  if not ok then
    io.stderr:write("benchrun: ", tostring(err), "\n")
    pcall(run.close, run)
    return 1
  end
  if not finish_run(ctx) then return 1 end
  local bad = 0
  for st, n in pairs(status_count) do if st ~= "ok" and st ~= "oom" and st ~= "aborted" then bad = bad + n end end
  -- an OOM kill and an abort by the memory ceiling are results; cells left
  -- out by stop_on_oom mean the plan did not finish
  -- a setting left changed fails the run, whatever the cells did
  return (bad > 0 or stopped or not rok) and 1 or 0
end

M.run_cell = run_cell
M.cell_workload = measure.cell_workload
M.cell_timeout = measure.cell_timeout
return M
