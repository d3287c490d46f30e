-- bench.cluster: what the scheduler launchers (bench.slurm, bench.k8s)
-- share: their command line (--shards N, the plan's own options, launcher
-- options), the plan checked before anything is written or submitted, and
-- the shell text that runs one shard on a node. The shard's text starts a
-- new shard or, when its folder already holds results (a requeued Slurm task,
-- a retried Kubernetes pod), resumes it: the scheduler may run an index twice.
local M = {}

-- M.quote(word) -> the word as one POSIX shell word
function M.quote(w)
  w = tostring(w)
  if w:match("^[%w%._/=,:@+%-]+$") then return w end
  return "'" .. w:gsub("'", "'\\''") .. "'"
end

-- M.absolute(path) -> the path from the root: the scripts run elsewhere
function M.absolute(path)
  if path:sub(1, 1) == "/" then return path end
  local cwd = os.getenv("PWD")
  if not cwd or cwd:sub(1, 1) ~= "/" then
    local r = require("bench.proc").run{argv = {"pwd"}, timeout = 10}
    cwd = r and r.code == 0 and (r.stdout or ""):gsub("%s+$", "") or "."
  end
  return (cwd .. "/" .. path):gsub("/%./", "/"):gsub("/+", "/")
end

-- M.parse(cmd, args, spec) -> opts | nil, message
-- spec: {["--partition"] = {key = "partition"}, ["--env"] = {key = "env", list = true},
--        ["--print"] = {key = "print", flag = true}, ...}; common: --shards,
-- --run-dir, --set, --only, --dry-run
function M.parse(cmd, args, spec)
  local o = {sets = {}, env = {}}
  local common = {["--shards"] = {key = "shards"}, ["--run-dir"] = {key = "run_dir"},
                  ["--set"] = {key = "sets", list = true}, ["--only"] = {key = "only"},
                  ["--dry-run"] = {key = "dry_run", flag = true}, ["--help"] = {key = "help", flag = true},
                  ["--env"] = {key = "env", list = true}}
  local i = 1
  while i <= #args do
    local a = args[i]
    local name, inline = a:match("^(%-%-[%w-]+)=(.*)$")
    if name then a = name end
    local s = spec[a] or common[a]
    if a == "-h" then s = common["--help"] end
    if not s then
      if a:sub(1, 1) == "-" then return nil, string.format("%s: unknown option '%s'", cmd, args[i]) end
      if o.plan then return nil, string.format("%s: one plan only (got %s and %s)", cmd, o.plan, a) end
      o.plan = a
    elseif s.flag then
      o[s.key] = true
    else
      local v = inline
      if v == nil then
        v = args[i + 1]
        if v == nil then return nil, string.format("%s: %s needs a value", cmd, a) end
        i = i + 1
      end
      if s.list then o[s.key] = o[s.key] or {} table.insert(o[s.key], v) else o[s.key] = v end
    end
    i = i + 1
  end
  if o.help then return o end
  if not o.plan then return nil, cmd .. ": missing PLAN.yaml" end
  local n = math.tointeger(tonumber(o.shards or ""))
  if not n or n < 1 or n > 10000 then
    return nil, string.format("%s: --shards N is needed, N from 1 to 10000 (got %s)", cmd, tostring(o.shards))
  end
  o.shards = n
  for _, e in ipairs(o.env) do
    if not e:match("^[%a_][%w_]*=") and not e:match("^[%a_][%w_]*$") then
      return nil, string.format("%s: --env %s: expected NAME=VALUE (or NAME: its value here)", cmd, e)
    end
  end
  return o
end

-- M.env_pairs(list) -> {{name, value}...}: NAME=VALUE as given, NAME alone
-- takes the value it has here (an unset one is an error)
function M.env_pairs(cmd, list)
  local out = {}
  for _, e in ipairs(list or {}) do
    local k, v = e:match("^([%a_][%w_]*)=(.*)$")
    if not k then
      k, v = e, os.getenv(e)
      if v == nil then return nil, string.format("%s: --env %s: that variable is not set here", cmd, e) end
    end
    out[#out + 1] = {k, v}
  end
  return out
end

-- M.check_plan(cmd, o) -> loaded plan, bench.plan, lines (the shards, one a line) | nil, message
-- The plan is validated, and split, here: a bad plan fails now, not on
-- every node of the cluster.
function M.check_plan(cmd, o)
  local plan = require("bench.plan")
  local shard = require("bench.shard")
  local loaded, errs = plan.load(o.plan, {sets = o.sets, only = o.only, dry_run = o.dry_run})
  if not loaded then
    return nil, string.format("%s\nbenchrun %s: %s: %d error%s; nothing was written", table.concat(errs, "\n"), cmd,
                              o.plan, #errs, #errs == 1 and "" or "s")
  end
  local lines = {}
  local all = loaded.cells
  for i = 1, o.shards do
    loaded.cells = all
    local _, info = shard.select(loaded, i, o.shards)
    lines[#lines + 1] = "  " .. shard.describe(info)
  end
  loaded.cells = all
  return loaded, plan, lines
end

-- M.shard_script(o) -> shell text that runs shard "$INDEX" (a shell
-- expression for the 1-based index) of o.shards: new, or resumed when its
-- folder holds a run. o: benchrun, plan, run_dir (absolute), sets, only, dry_run.
function M.shard_script(o, index_expr)
  local q = M.quote
  local opts = {}
  for _, s in ipairs(o.sets or {}) do opts[#opts + 1] = "--set " .. q(s) end
  if o.only then opts[#opts + 1] = "--only " .. q(o.only) end
  if o.dry_run then opts[#opts + 1] = "--dry-run" end
  local extra = #opts > 0 and (" " .. table.concat(opts, " ")) or ""
  return table.concat({
    "shard=" .. index_expr,
    "dir=" .. q(o.run_dir) .. "/shard-${shard}-of-" .. o.shards,
    "if [ -e \"$dir/summary.json\" ]; then",
    "  # this index ran before (a requeue, a retry): finish its cells",
    "  exec " .. q(o.benchrun) .. " " .. q(o.plan) .. " --resume \"$dir\"" .. extra,
    "fi",
    "exec " .. q(o.benchrun) .. " " .. q(o.plan) .. " --shard \"${shard}/" .. o.shards .. "\" --run-dir " ..
      q(o.run_dir) .. extra,
  }, "\n")
end

-- M.job_name(name) -> a DNS-1123 label from the plan's name (Kubernetes
-- object names, Slurm job names): lower case, digits and '-'
function M.job_name(name)
  local s = tostring(name):lower():gsub("[^%w%-]", "-"):gsub("%-+", "-"):gsub("^%-", ""):gsub("%-$", "")
  if s == "" then s = "plan" end
  return "benchrun-" .. s:sub(1, 40):gsub("%-$", "")
end

return M
