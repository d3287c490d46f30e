-- bench.slurm: `benchrun slurm PLAN.yaml --shards N --run-dir DIR`: a plan's
-- shards as one Slurm job array (task I runs --shard I/N) and a merge job
-- that starts when the array has ended, however its tasks ended
-- (--dependency=afterany), so a failed shard still gets a report that names
-- it. benchrun writes the two batch scripts into DIR/slurm/ and submits them
-- with sbatch (argv, no shell); --print shows them instead. Everything a node
-- needs is in the scripts: the absolute paths of benchrun, the plan and DIR
-- (which must be on storage every node sees), and the environment given with
-- --env. docs/scale.md.
local cluster = require("bench.cluster")
local results = require("bench.results")

local M = {}

local help = [[
usage: benchrun slurm PLAN.yaml --shards N --run-dir DIR [options]

Runs the plan's cells as N shards on a Slurm cluster: a job array of N
tasks (task I runs `benchrun PLAN.yaml --shard I/N --run-dir DIR`) and a
merge job after it (--dependency=afterany) that writes DIR/report.md with
`benchrun merge DIR`. DIR must be on storage every node sees (it holds
each shard's results, the scripts in DIR/slurm/ and the jobs' logs).
A task that runs again (requeued) resumes its shard.

  --shards N          number of shards (array tasks)
  --run-dir DIR       the run's folder on shared storage
  --partition P       sbatch --partition for both jobs
  --gpus-per-task G   sbatch --gpus-per-task for each shard
  --time T            sbatch --time for each shard (e.g. 04:00:00)
  --sbatch-arg ARG    one more #SBATCH line for both jobs (repeatable),
                      e.g. --sbatch-arg=--account=lab --sbatch-arg=--mem=64G
  --env NAME=VALUE    exported in both jobs (repeatable); NAME alone takes
                      its value here. PATH is always exported as it is here
  --benchrun PATH     the benchrun the nodes run (default: this one)
  --set, --only, --dry-run   as for `benchrun PLAN.yaml`
  --print             print the scripts and the sbatch commands; submit nothing
]]

local function header(lines, o, name, extra)
  lines[#lines + 1] = "#!/bin/bash"
  lines[#lines + 1] = "# written by `benchrun slurm` for plan " .. o.plan .. " (docs/scale.md)"
  lines[#lines + 1] = "#SBATCH --job-name=" .. name
  lines[#lines + 1] = "#SBATCH --ntasks=1"
  for _, l in ipairs(extra) do lines[#lines + 1] = "#SBATCH " .. l end
  if o.partition then lines[#lines + 1] = "#SBATCH --partition=" .. o.partition end
  for _, a in ipairs(o.sbatch_args or {}) do lines[#lines + 1] = "#SBATCH " .. a end
  lines[#lines + 1] = "set -u"
  for _, kv in ipairs(o.env_pairs) do lines[#lines + 1] = "export " .. kv[1] .. "=" .. cluster.quote(kv[2]) end
end

-- M.scripts(o) -> shards script, merge script (text)
function M.scripts(o)
  local name = cluster.job_name(o.name)
  local s = {}
  local extra = {string.format("--array=1-%d", o.shards),
                 string.format("--output=%s/slurm/shard-%%a-of-%d.out", o.run_dir, o.shards)}
  if o.gpus_per_task then extra[#extra + 1] = "--gpus-per-task=" .. o.gpus_per_task end
  if o.time then extra[#extra + 1] = "--time=" .. o.time end
  header(s, o, name, extra)
  s[#s + 1] = cluster.shard_script(o, "${SLURM_ARRAY_TASK_ID:?not run as a Slurm array task}")
  local m = {}
  header(m, o, name .. "-merge", {"--output=" .. o.run_dir .. "/slurm/merge.out"})
  m[#m + 1] = "exec " .. cluster.quote(o.benchrun) .. " merge " .. cluster.quote(o.run_dir)
  return table.concat(s, "\n") .. "\n", table.concat(m, "\n") .. "\n"
end

local function sbatch(argv)
  local r, why = require("bench.proc").run{argv = argv, timeout = 60}
  if not r then return nil, why end
  if r.code ~= 0 then
    return nil, string.format("%s exited %s: %s", table.concat(argv, " "), tostring(r.code or r.signal),
                              ((r.stderr or "") .. (r.stdout or "")):gsub("%s+$", ""))
  end
  -- --parsable: "jobid" or "jobid;cluster"
  local id = (r.stdout or ""):match("^%s*(%d+)")
  if not id then return nil, "sbatch printed no job id: " .. tostring(r.stdout) end
  return id
end

local function prepare(args)
  local o, why = cluster.parse("slurm", args, {
    ["--partition"] = {key = "partition"}, ["--gpus-per-task"] = {key = "gpus_per_task"},
    ["--time"] = {key = "time"}, ["--sbatch-arg"] = {key = "sbatch_args", list = true},
    ["--benchrun"] = {key = "benchrun"}, ["--print"] = {key = "print", flag = true}})
  if not o then return nil, why, 2 end
  if o.help then return o end
  if not o.run_dir then
    return nil, "slurm: --run-dir DIR is needed: the run's folder, on storage every node sees", 2
  end
  for _, a in ipairs(o.sbatch_args or {}) do
    if a:sub(1, 1) ~= "-" or a:find("\n") then
      return nil, string.format("slurm: --sbatch-arg '%s': expected one sbatch option such as --account=lab", a), 2
    end
  end
  local pairs_, perr = cluster.env_pairs("slurm", o.env)
  if not pairs_ then return nil, perr, 2 end
  local path = os.getenv("PATH")
  local has_path = false
  for _, kv in ipairs(pairs_) do if kv[1] == "PATH" then has_path = true end end
  if path and not has_path then table.insert(pairs_, 1, {"PATH", path}) end
  o.env_pairs = pairs_
  local plan, perr2, lines = cluster.check_plan("slurm", o)
  if not plan then return nil, perr2, 2 end
  o.name, o.lines = plan.name, lines
  o.plan = cluster.absolute(o.plan)
  o.run_dir = cluster.absolute(o.run_dir):gsub("/+$", "")
  o.benchrun = o.benchrun and cluster.absolute(o.benchrun) or bench.executable
  return o
end

-- slurm.main(...) -> exit status (benchrun slurm ...)
function M.main(...)
  local o, why, code = prepare({...})
  if not o then io.stderr:write("benchrun: ", why, "\n(try 'benchrun slurm --help')\n") return code or 1 end
  if o.help then io.stdout:write(help) return 0 end
  local shards, merge = M.scripts(o)
  local dir = o.run_dir .. "/slurm"
  if o.print then
    io.stdout:write("# ", dir, "/shards.sbatch\n", shards, "\n# ", dir, "/merge.sbatch\n", merge, "\n",
      "# submit with:\n#   mkdir -p ", cluster.quote(dir), "\n#   jobid=$(sbatch --parsable ", cluster.quote(dir .. "/shards.sbatch"), ")\n",
      "#   sbatch --dependency=afterany:$jobid ", cluster.quote(dir .. "/merge.sbatch"), "\n")
    return 0
  end
  local ok, err = results.mkdir(dir)
  if ok then ok, err = results.write_atomic(dir .. "/shards.sbatch", shards) end
  if ok then ok, err = results.write_atomic(dir .. "/merge.sbatch", merge) end
  if not ok then io.stderr:write("benchrun: slurm: ", tostring(err), "\n") return 1 end
  local array, aerr = sbatch({"sbatch", "--parsable", dir .. "/shards.sbatch"})
  if not array then io.stderr:write("benchrun: slurm: ", aerr, "\n") return 1 end
  local mjob, merr = sbatch({"sbatch", "--parsable", "--dependency=afterany:" .. array, dir .. "/merge.sbatch"})
  if not mjob then
    io.stderr:write("benchrun: slurm: the shards are submitted (job ", array, ") but the merge job is not: ", merr,
                    "\n  once they end: benchrun merge ", cluster.quote(o.run_dir), "\n")
    return 1
  end
  io.stdout:write(string.format(
    "plan '%s' as %d shards:\n%s\nsubmitted job array %s (%d tasks) and merge job %s (after the array ends, whatever its tasks' exit)\n" ..
    "  follow:  squeue -j %s,%s\n  logs:    %s/shard-*-of-%d.out, %s/merge.out\n  report:  %s/report.md once job %s has ended\n" ..
    "jobs: %s %s\n",
    o.name, o.shards, table.concat(o.lines, "\n"), array, o.shards, mjob, array, mjob, dir, o.shards, dir,
    o.run_dir, mjob, array, mjob))
  return 0
end

return M
