-- bench.k8s: `benchrun k8s PLAN.yaml --shards N --image IMAGE` prints the
-- Kubernetes manifest that runs a plan's shards: the plan in a ConfigMap, a
-- PersistentVolumeClaim for the results (ReadWriteMany: every shard's pod
-- writes its own folder on it) unless --pvc names one, and an Indexed Job
-- (completionMode: Indexed, completions: N) whose pod with index K runs
-- `benchrun PLAN --shard K+1/N` (JOB_COMPLETION_INDEX counts from 0, shards
-- from 1). `--merge` prints the Job that merges the shards, to apply once the
-- first has ended: Kubernetes has no dependency between Jobs. Field names and
-- required fields follow the Kubernetes batch/v1 Job, v1 ConfigMap and v1
-- PersistentVolumeClaim API references. benchrun submits nothing: kubectl
-- does (docs/scale.md lists the commands).
local cluster = require("bench.cluster")
local results = require("bench.results")

local M = {}

local help = [[
usage: benchrun k8s PLAN.yaml --shards N --image IMAGE [options] > job.yaml

Prints a Kubernetes manifest for the plan's cells as N shards: a ConfigMap
with the plan, a PersistentVolumeClaim for the results, and an Indexed Job
(one pod per shard, `--shard $((JOB_COMPLETION_INDEX+1))/N`). With --merge,
prints the Job that merges the shards into one report instead (apply it
once the shards' Job has ended). The manifest's first lines are the
kubectl commands to run it. The image needs benchrun and /bin/sh.

  --shards N           number of shards (completions)
  --image IMAGE        the container image with benchrun
  --parallelism P      shards running at once (default N)
  --gpus G             nvidia.com/gpu per shard (default 0: none asked)
  --cpu C, --memory M  resource requests per shard (e.g. 8, 64Gi)
  --run-id ID          the run's folder on the claim (default <plan>-<UTC time>);
                       the merge Job needs the same ID
  --pvc NAME           an existing claim for the results (default: one is
                       made, benchrun-<plan>-results, ReadWriteMany)
  --storage SIZE       the made claim's size (default 20Gi)
  --storage-class SC   the made claim's storageClassName
  --namespace NS       metadata.namespace of every object
  --env NAME=VALUE     set in the pods (repeatable); NAME alone takes its value here
  --benchrun PATH      benchrun inside the image (default: benchrun, from PATH)
  --merge              print the merge Job (same --run-id) instead
  --set, --only, --dry-run   as for `benchrun PLAN.yaml`
]]

local MOUNT_PLAN, MOUNT_RESULTS = "/benchrun/plan", "/benchrun/results"

-- ------------------------------------------------------------ YAML out
-- A small emitter that keeps Kubernetes' usual key order (apiVersion, kind,
-- metadata, spec), which bench.yaml's encoder (sorted keys) does not, and
-- writes multi-line text (the plan, the shard's script) as literal blocks a
-- person can read. Maps are lists of {key, value}; lists are {list = {...}}.
local PLAIN_RESERVED = {["true"] = 1, ["false"] = 1, ["null"] = 1, ["yes"] = 1, ["no"] = 1, ["on"] = 1,
                        ["off"] = 1, ["y"] = 1, ["n"] = 1, ["~"] = 1}

local function scalar(v)
  if type(v) == "number" or type(v) == "boolean" then return tostring(v) end
  v = tostring(v)
  if v:match("^[%w/][%w%._/%-]*$") and not PLAIN_RESERVED[v:lower()] and not tonumber(v) then return v end
  return results.json_encode(v)   -- a JSON string is a YAML double-quoted scalar
end

local function block(text, pad)
  -- literal block: the text's own lines, indented; "|" keeps one final
  -- newline, "|-" none. Other shapes are quoted.
  local body, final = text, "|-"
  if text:sub(-1) == "\n" then body, final = text:sub(1, -2), "|" end
  if body:sub(-1) == "\n" or body:match("^[ \t]") or body:find("\r") then return nil end
  local out = {final}
  for line in (body .. "\n"):gmatch("(.-)\n") do out[#out + 1] = line == "" and "" or (pad .. line) end
  return table.concat(out, "\n")
end

local emit
local function emit_value(v, pad, out, prefix)
  if type(v) == "table" and v.list then
    if #v.list == 0 then out[#out + 1] = prefix .. " []" return end
    out[#out + 1] = prefix
    for _, x in ipairs(v.list) do
      if type(x) == "table" then
        local sub = {}
        emit(x, pad .. "  ", sub)
        sub[1] = pad .. "- " .. sub[1]:sub(#pad + 3)
        for _, l in ipairs(sub) do out[#out + 1] = l end
      elseif type(x) == "string" and x:find("\n") and block(x, pad .. "  ") then
        out[#out + 1] = pad .. "- " .. block(x, pad .. "  ")
      else
        out[#out + 1] = pad .. "- " .. scalar(x)
      end
    end
  elseif type(v) == "table" then
    if #v == 0 then out[#out + 1] = prefix .. " {}" return end
    out[#out + 1] = prefix
    emit(v, pad .. "  ", out)
  elseif type(v) == "string" and v:find("\n") and block(v, pad .. "  ") then
    out[#out + 1] = prefix .. " " .. block(v, pad .. "  ")
  else
    out[#out + 1] = prefix .. " " .. scalar(v)
  end
end

emit = function(map, pad, out)
  for _, kv in ipairs(map) do
    if kv[2] ~= nil then emit_value(kv[2], pad, out, pad .. scalar(kv[1]) .. ":") end
  end
end

function M.to_yaml(doc)
  local out = {}
  emit(doc, "", out)
  return table.concat(out, "\n") .. "\n"
end

-- ------------------------------------------------------------ the objects
local function metadata(o, name)
  return {{"name", name}, {"namespace", o.namespace},
          {"labels", {{"app.kubernetes.io/name", "benchrun"}, {"benchrun/run", o.label}}}}
end

local function env_list(o)
  local l = {}
  for _, kv in ipairs(o.env_pairs) do l[#l + 1] = {{"name", kv[1]}, {"value", kv[2]}} end
  return #l > 0 and {list = l} or nil
end

local function results_volume(o)
  return {{"name", "results"}, {"persistentVolumeClaim", {{"claimName", o.pvc}}}}
end

local function results_mount()
  return {{"name", "results"}, {"mountPath", MOUNT_RESULTS}}
end

function M.shards_job(o)
  local script = "set -u\n" .. cluster.shard_script({benchrun = o.benchrun, plan = MOUNT_PLAN .. "/" .. o.plan_key,
    run_dir = MOUNT_RESULTS .. "/" .. o.run_id, shards = o.shards, sets = o.sets, only = o.only, dry_run = o.dry_run},
    "$((JOB_COMPLETION_INDEX + 1))") .. "\n"
  local limits, requests = {}, {}
  if o.gpus > 0 then limits[#limits + 1] = {"nvidia.com/gpu", o.gpus} end
  if o.cpu then requests[#requests + 1] = {"cpu", o.cpu} end
  if o.memory then requests[#requests + 1] = {"memory", o.memory} end
  local resources = {}
  if #limits > 0 then resources[#resources + 1] = {"limits", limits} end
  if #requests > 0 then resources[#resources + 1] = {"requests", requests} end
  local container = {{"name", "shard"}, {"image", o.image}, {"command", {list = {"/bin/sh", "-c", script}}},
    {"env", env_list(o)}, {"resources", #resources > 0 and resources or nil},
    {"volumeMounts", {list = {{{"name", "plan"}, {"mountPath", MOUNT_PLAN}, {"readOnly", true}}, results_mount()}}}}
  return {{"apiVersion", "batch/v1"}, {"kind", "Job"}, {"metadata", metadata(o, o.job)},
    {"spec", {{"completionMode", "Indexed"}, {"completions", o.shards}, {"parallelism", o.parallelism},
      -- a failed pod's index runs again (and resumes its shard's folder)
      {"backoffLimit", 2 * o.shards},
      {"template", {{"metadata", {{"labels", {{"app.kubernetes.io/name", "benchrun"}, {"benchrun/run", o.label}}}}},
        {"spec", {{"restartPolicy", "Never"}, {"containers", {list = {container}}},
          {"volumes", {list = {{{"name", "plan"}, {"configMap", {{"name", o.configmap}}}}, results_volume(o)}}}}}}}}}}
end

function M.configmap(o)
  return {{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"metadata", metadata(o, o.configmap)},
          {"data", {{o.plan_key, o.plan_text}}}}
end

function M.pvc(o)
  return {{"apiVersion", "v1"}, {"kind", "PersistentVolumeClaim"}, {"metadata", metadata(o, o.pvc)},
    {"spec", {{"accessModes", {list = {"ReadWriteMany"}}}, {"storageClassName", o.storage_class},
              {"resources", {{"requests", {{"storage", o.storage}}}}}}}}
end

function M.merge_job(o)
  local container = {{"name", "merge"}, {"image", o.image},
    {"command", {list = {o.benchrun, "merge", MOUNT_RESULTS .. "/" .. o.run_id}}}, {"env", env_list(o)},
    {"volumeMounts", {list = {results_mount()}}}}
  return {{"apiVersion", "batch/v1"}, {"kind", "Job"}, {"metadata", metadata(o, o.job .. "-merge")},
    {"spec", {{"backoffLimit", 0},
      {"template", {{"spec", {{"restartPolicy", "Never"}, {"containers", {list = {container}}},
                              {"volumes", {list = {results_volume(o)}}}}}}}}}}
end

local function commands(o, planfile)
  local q = cluster.quote
  local ns = o.namespace and (" -n " .. q(o.namespace)) or ""
  local again = {"benchrun k8s", q(planfile), "--shards", o.shards, "--image", q(o.image), "--run-id", q(o.run_id)}
  if o.pvc_given then again[#again + 1] = "--pvc " .. q(o.pvc) end
  if o.namespace then again[#again + 1] = "--namespace " .. q(o.namespace) end
  return table.concat({
    string.format("# benchrun k8s: plan '%s' as %d shards, run %s (docs/scale.md)", o.name, o.shards, o.run_id),
    "#   kubectl apply" .. ns .. " -f THIS_FILE",
    "#   kubectl get pods" .. ns .. " -l job-name=" .. o.job .. " -w            # follow the shards",
    "#   kubectl wait" .. ns .. " --for=condition=complete job/" .. o.job .. " --timeout=24h   # (or condition=failed)",
    "#   " .. table.concat(again, " ") .. " --merge | kubectl apply" .. ns .. " -f -",
    "#   kubectl logs" .. ns .. " -f job/" .. o.job .. "-merge",
    "#   the report: " .. MOUNT_RESULTS .. "/" .. o.run_id .. "/report.md on the claim " .. o.pvc,
  }, "\n") .. "\n"
end

local function prepare(args)
  local o, why = cluster.parse("k8s", args, {
    ["--image"] = {key = "image"}, ["--parallelism"] = {key = "parallelism"}, ["--gpus"] = {key = "gpus"},
    ["--cpu"] = {key = "cpu"}, ["--memory"] = {key = "memory"}, ["--run-id"] = {key = "run_id"},
    ["--pvc"] = {key = "pvc"}, ["--storage"] = {key = "storage"}, ["--storage-class"] = {key = "storage_class"},
    ["--namespace"] = {key = "namespace"}, ["--benchrun"] = {key = "benchrun"},
    ["--merge"] = {key = "merge", flag = true}})
  if not o then return nil, why end
  if o.help then return o end
  if o.run_dir then return nil, "k8s: the results go to the claim; name the run with --run-id, not --run-dir" end
  if not o.image or o.image == "" then return nil, "k8s: --image IMAGE is needed (an image with benchrun and /bin/sh)" end
  local par = math.tointeger(tonumber(o.parallelism or o.shards))
  if not par or par < 1 then return nil, "k8s: --parallelism: expected a whole number from 1" end
  o.parallelism = math.min(par, o.shards)
  local g = math.tointeger(tonumber(o.gpus or "0"))
  if not g or g < 0 then return nil, "k8s: --gpus: expected a whole number from 0" end
  o.gpus = g
  if o.merge and not o.run_id then
    return nil, "k8s: --merge needs --run-id: the ID the shards' manifest says (its first line)"
  end
  if o.run_id and not o.run_id:match("^[%w][%w%._%-]*$") then
    return nil, "k8s: --run-id: letters, digits, '.', '_' and '-' only (it names a folder)"
  end
  local pairs_, perr = cluster.env_pairs("k8s", o.env)
  if not pairs_ then return nil, perr end
  o.env_pairs = pairs_
  local plan, perr2 = cluster.check_plan("k8s", o)
  if not plan then return nil, perr2 end
  o.name = plan.name
  o.plan_text = plan.text
  o.plan_key = (o.plan:match("([^/]+)$") or "plan.yaml"):gsub("[^%w%._%-]", "_")
  o.run_id = o.run_id or (tostring(plan.name):gsub("[^%w%._%-]", "_") .. "-" .. require("bench.util").utc_stamp())
  o.label = cluster.job_name(o.run_id):sub(10)
  o.job = cluster.job_name(o.run_id)
  o.configmap = o.job .. "-plan"
  o.pvc_given = o.pvc ~= nil
  o.pvc = o.pvc or (cluster.job_name(plan.name) .. "-results")
  o.storage = o.storage or "20Gi"
  o.benchrun = o.benchrun or "benchrun"
  return o
end

-- M.manifest(args) -> text | nil, message
function M.manifest(args)
  local o, why = prepare(args)
  if not o then return nil, why end
  if o.help then return help end
  local planfile = o.plan
  if o.merge then return commands(o, planfile) .. M.to_yaml(M.merge_job(o)) end
  local docs = {M.configmap(o)}
  if not o.pvc_given then docs[#docs + 1] = M.pvc(o) end
  docs[#docs + 1] = M.shards_job(o)
  local parts = {}
  for _, d in ipairs(docs) do parts[#parts + 1] = M.to_yaml(d) end
  return commands(o, planfile) .. table.concat(parts, "---\n")
end

-- k8s.main(...) -> exit status (benchrun k8s ...)
function M.main(...)
  local text, why = M.manifest({...})
  if not text then io.stderr:write("benchrun: ", why, "\n(try 'benchrun k8s --help')\n") return 2 end
  io.stdout:write(text)
  return 0
end

return M
