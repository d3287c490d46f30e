-- bench.cli: the Lua side of benchrun's command line. engine/main.c calls
-- cli.plan(planfile, args...) for `benchrun PLAN.yaml ...`, and
-- cli.report(args...) / cli.compare(args...) for those commands. Each returns
-- the exit status: 0 ok, 1 failure, 2 usage (an invalid plan is a usage error).
local M = {}

local plan_help = [[
usage: benchrun PLAN.yaml [options]

Runs a plan (plans/README.md): validates it, expands its matrix into cells,
runs each cell (server start, warm-ups, repeats, memory sampling) and writes
results/<name>-<UTC time>/ with report.md.

  --check            validate, list the cells and estimate the run time; run nothing
  --dry-run          every server replaced by `benchrun sim` with the figures of
                     the plan's dry_run: section (fast); sysctl changes simulated
  --set KEY=VALUE    override a plan key (YAML-typed value; repeatable), e.g.
                     --set repeat=1 --set dry_run.decode_tps=500 --set matrix.model=[Q4_K_M]
  --only PATTERN     run only matching cells: comma-separated globs over the cell
                     id (Q4_K_M/*), an axis label (lmstudio) or axis=glob (model=Q8*)
  --resume DIR       continue an interrupted run in DIR (finished cells are kept;
                     the plan, --set and --only must be those it started with,
                     and a dry run stays one)
  --out DIR          parent folder of the results (default: the plan's output:, or results)
  --shard I/N        run shard I of N (1..N): cells sharing one server start stay
                     together, shards balanced by the --check estimate; with
                     --check, list the shard's cells (docs/scale.md)
  --run-dir DIR      with --shard: the folder of the whole run, the same on every
                     machine; this shard writes DIR/shard-I-of-N/ (default:
                     <out>/<name>-<UTC time>); `benchrun merge DIR` joins them
  --quiet            print nothing but errors and the report path
  --history PATH     record the finished run in this history database (default:
                     $BENCHRUN_HISTORY, else ~/.local/share/benchrun/history.db)
  --no-history       do not record the run (benchrun history lists the recorded runs)
  --json             progress as JSON lines on stdout
  --help             this text

A cell is ok, degraded (failed requests above the plan's max_error_rate,
default 0), failed (no request succeeded, or the server did not start),
crashed (its server died by a signal), or oom (killed for memory, with
evidence). Exit status 1 when a cell was degraded, failed or crashed, or a
sysctl value could not be restored; every request ends within the plan's
timeout: (defaults: first byte 5 min, 5 min without a token).
]]

local function usage(msg)
  io.stderr:write("benchrun: ", msg, "\n(try 'benchrun PLAN.yaml --help')\n")
  return 2
end

-- parse the options after the plan file -> opts or nil, message
function M.parse_plan_args(args)
  local o = {sets = {}}
  local i = 1
  local function value(name)
    local v = args[i + 1]
    if v == nil or (v:sub(1, 2) == "--" and v ~= "--") then return nil, name .. " needs a value" end
    i = i + 1
    return v
  end
  while i <= #args do
    local a = args[i]
    local name, inline = a:match("^(%-%-[%w-]+)=(.*)$")
    if name then a = name end
    local function val(n)
      if inline then return inline end
      return value(n)
    end
    local v, why
    if a == "--check" then o.check = true
    elseif a == "--dry-run" then o.dry_run = true
    elseif a == "--quiet" or a == "-q" then o.quiet = true
    elseif a == "--json" then o.json = true
    elseif a == "--no-history" then o.no_history = true
    elseif a == "--history" then
      v, why = val(a); if not v then return nil, why end
      o.history = v
    elseif a == "--help" or a == "-h" then o.help = true
    elseif a == "--set" or a == "-s" then
      v, why = val(a); if not v then return nil, why end
      o.sets[#o.sets + 1] = v
    elseif a == "--only" then
      v, why = val(a); if not v then return nil, why end
      o.only = o.only and (o.only .. "," .. v) or v
    elseif a == "--resume" then
      v, why = val(a); if not v then return nil, why end
      o.resume = v
    elseif a == "--out" or a == "-o" then
      v, why = val(a); if not v then return nil, why end
      o.out = v
    elseif a == "--shard" then
      v, why = val(a); if not v then return nil, why end
      o.shard_index, o.shard_count = require("bench.shard").parse(v)
      if not o.shard_index then return nil, o.shard_count end
    elseif a == "--run-dir" then
      v, why = val(a); if not v then return nil, why end
      o.run_dir = v
    else
      return nil, string.format("unknown option '%s' for a plan", args[i])
    end
    i = i + 1
  end
  if o.quiet and o.json then return nil, "--quiet and --json exclude each other" end
  if o.run_dir and not o.shard_index then return nil, "--run-dir goes with --shard I/N (a whole run takes --out)" end
  if o.run_dir and o.resume then return nil, "--run-dir and --resume exclude each other (--resume names the shard's folder)" end
  return o
end

-- --resume DIR continues the run in DIR only with the plan and options it
-- started with; a dry run stays a dry run without --dry-run (the folder
-- says so). -> nil (opts.dry_run set from the folder) or the refusal text.
function M.check_resume(planfile, opts)
  local results = require("bench.results")
  local was, why = results.invocation(opts.resume)
  if not was then return "benchrun: --resume " .. opts.resume .. ": " .. tostring(why) end
  if opts.dry_run == nil then opts.dry_run = was.dry_run or nil end
  local text = require("bench.util").read_file(planfile)
  local diff = results.invocation_diff(was, {plan_text = text, sets = opts.sets, only = opts.only,
                                             dry_run = opts.dry_run})
  if not diff then return nil end
  local out = {string.format("benchrun: --resume %s: this is not the run that folder holds; nothing was run:", opts.resume)}
  for _, d in ipairs(diff) do out[#out + 1] = "  - " .. d end
  out[#out + 1] = "  continue it with the plan and options it started with: " ..
                  results.resume_command(planfile, opts.resume, was)
  out[#out + 1] = "  (or start a new run without --resume)"
  return table.concat(out, "\n")
end

-- --resume of a shard's folder runs that shard again: its index and count
-- come from the folder (env.json), as a dry run stays one. -> nil or refusal
function M.resume_shard(opts)
  local shard = require("bench.shard")
  local was = shard.of_folder(opts.resume)
  if not was then
    if opts.shard_index then
      return string.format("benchrun: --resume %s: that folder holds a whole run, not shard %d/%d; nothing was run",
                           opts.resume, opts.shard_index, opts.shard_count)
    end
    return nil
  end
  if opts.shard_index and (opts.shard_index ~= was.index or opts.shard_count ~= was.count) then
    return string.format("benchrun: --resume %s: that folder holds shard %s/%s, not %d/%d; nothing was run",
                         opts.resume, tostring(was.index), tostring(was.count), opts.shard_index, opts.shard_count)
  end
  opts.shard_index, opts.shard_count, opts.resumed_shard = was.index, was.count, was
  return nil
end

-- --shard I/N: plan.cells becomes the shard's cells; a new run gets its
-- folder <run dir>/shard-I-of-N (made here, exclusively). -> the line that
-- describes the shard | nil, message
function M.shard_plan(plan, opts)
  local shard = require("bench.shard")
  local info = shard.apply(plan, opts.shard_index, opts.shard_count)
  local line = shard.describe(info)
  if opts.check then return line end
  local was = opts.resumed_shard
  if was then
    -- the same plan and options give the same split; a folder whose cells
    -- differ was split otherwise (another benchrun version)
    if table.concat(was.cells or {}, "\0") ~= table.concat(info.cells, "\0") then
      return nil, string.format("benchrun: --resume %s: this benchrun splits the plan otherwise than the one " ..
        "that started the shard (its cells: %s; now: %s); nothing was run", opts.resume,
        table.concat(was.cells or {}, ", "), table.concat(info.cells, ", "))
    end
    info.run_id = was.run_id
  else
    local run_dir = opts.run_dir or shard.default_run_dir(opts.out or plan.output, plan.name)
    local dir, why = shard.make_folder(run_dir, opts.shard_index, opts.shard_count)
    if not dir then return nil, "benchrun: " .. tostring(why) .. "; nothing was run" end
    opts.dir = dir
    info.run_id = shard.basename(run_dir)
  end
  opts.shard_info = info
  return line
end

-- benchrun PLAN.yaml [options]
function M.plan(planfile, ...)
  local args = {...}
  if planfile == "--help" or planfile == "-h" then io.stdout:write(plan_help) return 0 end
  local opts, why = M.parse_plan_args(args)
  if not opts then return usage(why) end
  if opts.help then io.stdout:write(plan_help) return 0 end
  if opts.resume and not opts.check then
    local why = M.check_resume(planfile, opts)
    if why then io.stderr:write(why, "\n") return 2 end
  end
  if opts.resume and not opts.check then
    local why = M.resume_shard(opts)
    if why then io.stderr:write(why, "\n") return 2 end
  end
  local plan = require("bench.plan")
  local loaded, errs = plan.load(planfile, {sets = opts.sets, only = opts.only, dry_run = opts.dry_run,
                                            real = not opts.check and not opts.dry_run})
  if not loaded then
    for _, e in ipairs(errs) do io.stderr:write(e, "\n") end
    io.stderr:write(string.format("benchrun: %s: %d error%s; nothing was run\n", planfile, #errs, #errs == 1 and "" or "s"))
    return 2
  end
  local shard_line
  if opts.shard_index then
    local why
    shard_line, why = M.shard_plan(loaded, opts)
    if not shard_line then io.stderr:write(why, "\n") return opts.check and 2 or 1 end
  end
  if opts.check then
    if shard_line then io.stdout:write(shard_line, "\n") end
    io.stdout:write(plan.check_text(loaded), "\n")
    return 0
  end
  if shard_line and not opts.quiet and not opts.json then io.stderr:write(shard_line, "\n") end
  for _, w in ipairs(loaded.warnings or {}) do io.stderr:write("warning: ", w, "\n") end
  local runner = require("bench.runner")
  opts.argv = {planfile, table.unpack(args)}
  return runner.run(loaded, opts)
end

-- benchrun report DIR... (the report module's); a sharded run's folder
-- (DIR/shard-I-of-N/) is merged first (bench.merge)
function M.report(...)
  local args = {...}
  if #args == 1 and args[1]:sub(1, 1) ~= "-" and require("bench.merge").is_run_dir(args[1]) then
    return require("bench.merge").main(args[1])
  end
  return require("bench.report").main(...)
end

-- benchrun merge DIR: the shards of a run into one report
function M.merge(...)
  return require("bench.merge").main(...)
end

-- benchrun slurm PLAN.yaml --shards N --run-dir DIR: a job array and a merge job
function M.slurm(...)
  return require("bench.slurm").main(...)
end

-- benchrun k8s PLAN.yaml --shards N --image IMAGE: an Indexed Job manifest
function M.k8s(...)
  return require("bench.k8s").main(...)
end

-- benchrun compare A B (the report module's)
function M.compare(...)
  return require("bench.report").compare_main(...)
end

-- benchrun history [ID] [filters] (bench.history.cli)
function M.history(...)
  return require("bench.history.cli").main(...)
end

return M
