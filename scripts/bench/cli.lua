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
    else
      return nil, string.format("unknown option '%s' for a plan", args[i])
    end
    i = i + 1
  end
  if o.quiet and o.json then return nil, "--quiet and --json exclude each other" end
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
  local plan = require("bench.plan")
  local loaded, errs = plan.load(planfile, {sets = opts.sets, only = opts.only, dry_run = opts.dry_run,
                                            real = not opts.check and not opts.dry_run})
  if not loaded then
    for _, e in ipairs(errs) do io.stderr:write(e, "\n") end
    io.stderr:write(string.format("benchrun: %s: %d error%s; nothing was run\n", planfile, #errs, #errs == 1 and "" or "s"))
    return 2
  end
  if opts.check then
    io.stdout:write(plan.check_text(loaded), "\n")
    return 0
  end
  for _, w in ipairs(loaded.warnings or {}) do io.stderr:write("warning: ", w, "\n") end
  local runner = require("bench.runner")
  opts.argv = {planfile, table.unpack(args)}
  return runner.run(loaded, opts)
end

-- benchrun report DIR... (the report module's)
function M.report(...)
  return require("bench.report").main(...)
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
