-- benchrun k8s (issue 18): the printed manifest decoded with bench.yaml and
-- checked against what the Kubernetes API requires of a batch/v1 Job in
-- Indexed mode, a v1 ConfigMap and a v1 PersistentVolumeClaim; then each
-- "pod" of the Job is played here: its container's command, run by /bin/sh
-- with JOB_COMPLETION_INDEX as the Job controller sets it (mount paths moved
-- to a temp folder, the plan written from the ConfigMap), one index twice (a
-- retried pod resumes), and the merge Job's command joins them.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local proc = require("bench.proc")
local SRC = os.getenv("BENCHRUN_TESTS") .. "/.."
local DEMO = SRC .. "/plans/demo.yaml"

local function k8s(...)
  local r = assert(proc.run{argv = {bench.executable, "k8s", ...}, timeout = 60})
  return r.code, r.stdout, r.stderr
end

local function dns_subdomain(s)
  if type(s) ~= "string" or #s > 253 then return false end
  for part in (s .. "."):gmatch("(.-)%.") do
    if not part:match("^[a-z0-9]$") and not part:match("^[a-z0-9][a-z0-9%-]*[a-z0-9]$") then return false end
  end
  return true
end
local function dns_label(s) return dns_subdomain(s) and not s:find("%.") and #s <= 63 end

local function decode(text)
  local docs = assert(yaml.decode_all(text, "manifest"))
  local list = {}
  for i = 1, docs.n or #docs do if docs[i] ~= nil then list[#list + 1] = docs[i] end end
  return list
end

local function by_kind(docs)
  local out = {}
  for _, d in ipairs(docs) do out[d.kind] = d end
  return out
end

local function read(path) return assert(T.read_file(path), "cannot read " .. path) end

T.case("the shards' manifest has the fields Kubernetes requires", function()
  local code, out, err = k8s(DEMO, "--shards", "3", "--image", "registry.example/benchrun:1", "--gpus", "1",
                              "--cpu", "8", "--memory", "64Gi", "--env", "HF_HOME=/cache", "--run-id", "demo-r1")
  T.eq(code, 0, "exit status (" .. err .. ")")
  local docs = decode(out)
  T.eq(#docs, 3, "documents")
  local k = by_kind(docs)
  local cm, pvc, job = k.ConfigMap, k.PersistentVolumeClaim, k.Job
  assert(cm and pvc and job, "a ConfigMap, a PersistentVolumeClaim and a Job")
  T.eq(cm.apiVersion, "v1", "ConfigMap apiVersion")
  T.eq(pvc.apiVersion, "v1", "PVC apiVersion")
  T.eq(job.apiVersion, "batch/v1", "Job apiVersion")
  for _, d in ipairs(docs) do assert(dns_subdomain(d.metadata.name), "metadata.name " .. tostring(d.metadata.name)) end
  assert(dns_label(job.metadata.name), "a Job's name is a DNS label (its pods' label job-name)")
  -- ConfigMap: data holds strings; the plan comes back byte for byte
  T.eq(cm.data["demo.yaml"], read(DEMO), "the plan in the ConfigMap")
  -- PVC: access modes and the requested size
  T.eq(pvc.spec.accessModes[1], "ReadWriteMany", "the claim is written from every node")
  T.eq(pvc.spec.resources.requests.storage, "20Gi", "storage request")
  -- Job: Indexed needs completions; parallelism at most completions
  local s = job.spec
  T.eq(s.completionMode, "Indexed", "completionMode")
  T.eq(s.completions, 3, "completions")
  T.eq(s.parallelism, 3, "parallelism")
  local pod = s.template.spec
  assert(pod.restartPolicy == "Never" or pod.restartPolicy == "OnFailure", "a Job's pods: restartPolicy Never or OnFailure")
  T.eq(#pod.containers, 1, "containers")
  local c = pod.containers[1]
  assert(dns_label(c.name), "container name")
  T.eq(c.image, "registry.example/benchrun:1", "image")
  T.eq(c.resources.limits["nvidia.com/gpu"], 1, "GPUs (an extended resource: in limits)")
  T.eq(c.resources.requests.cpu, "8", "cpu request")
  T.eq(c.resources.requests.memory, "64Gi", "memory request")
  T.eq(c.env[1].name, "HF_HOME", "env name")
  T.eq(c.env[1].value, "/cache", "env value")
  T.eq(c.command[1], "/bin/sh", "command")
  assert(c.command[3]:find("$((JOB_COMPLETION_INDEX + 1))", 1, true), "the index becomes the shard")
  assert(c.command[3]:find('--shard "${shard}/3"', 1, true), "--shard I/3")
  -- every mount names a volume; the volumes name the ConfigMap and the claim
  local vols = {}
  for _, v in ipairs(pod.volumes) do vols[v.name] = v end
  for _, m in ipairs(c.volumeMounts) do assert(vols[m.name], "volumeMount " .. m.name .. " has no volume") end
  T.eq(vols.plan.configMap.name, cm.metadata.name, "the plan volume's ConfigMap")
  T.eq(vols.results.persistentVolumeClaim.claimName, pvc.metadata.name, "the results volume's claim")
end)

T.case("--pvc uses an existing claim; --merge prints the merge Job", function()
  local code, out = k8s(DEMO, "--shards", "2", "--image", "img", "--pvc", "shared-results", "--run-id", "r2",
                        "--parallelism", "1", "--namespace", "bench")
  T.eq(code, 0, "exit status")
  local k = by_kind(decode(out))
  T.eq(k.PersistentVolumeClaim, nil, "no claim made")
  T.eq(k.Job.spec.parallelism, 1, "parallelism")
  T.eq(k.Job.metadata.namespace, "bench", "namespace")
  T.eq(k.Job.spec.template.spec.volumes[2].persistentVolumeClaim.claimName, "shared-results", "claim")
  code, out = k8s(DEMO, "--shards", "2", "--image", "img", "--pvc", "shared-results", "--run-id", "r2", "--merge")
  T.eq(code, 0, "merge exit status")
  local docs = decode(out)
  T.eq(#docs, 1, "one Job")
  local m = docs[1]
  T.eq(m.kind, "Job", "kind")
  T.eq(m.spec.completionMode, nil, "the merge is one pod")
  T.eq(m.spec.template.spec.restartPolicy, "Never", "restartPolicy")
  T.eq(table.concat(m.spec.template.spec.containers[1].command, " "), "benchrun merge /benchrun/results/r2", "merge command")
  T.eq(m.spec.template.spec.volumes[1].persistentVolumeClaim.claimName, "shared-results", "claim")
end)

T.case("bad input is refused with a usage error", function()
  local function refused(pattern, ...)
    local code, _, err = k8s(...)
    T.eq(code, 2, "exit status for " .. table.concat({...}, " "))
    assert(err:find(pattern, 1, true), "expected '" .. pattern .. "' in: " .. err)
  end
  refused("--image IMAGE is needed", DEMO, "--shards", "2")
  refused("--shards N is needed", DEMO, "--image", "img")
  refused("--merge needs --run-id", DEMO, "--shards", "2", "--image", "img", "--merge")
  refused("--run-id: letters", DEMO, "--shards", "2", "--image", "img", "--run-id", "a b")
  refused("unknown option '--gpu'", DEMO, "--shards", "2", "--image", "img", "--gpu", "1")
  refused("nothing was written", DEMO, "--shards", "2", "--image", "img", "--set", "repeat=0")
end)

T.case("the pods' commands, run here, give the merged report", function()
  local dir = T.tmpdir()
  local code, out = k8s(DEMO, "--shards", "3", "--image", "img", "--run-id", "r3", "--benchrun", bench.executable)
  T.eq(code, 0, "exit status")
  local k = by_kind(decode(out))
  local plan_dir, results_dir = dir .. "/plan", dir .. "/results"
  assert(require("bench.sys").mkdir(plan_dir))
  assert(require("bench.sys").mkdir(results_dir))
  local f = assert(io.open(plan_dir .. "/demo.yaml", "w"))
  f:write(k.ConfigMap.data["demo.yaml"])
  f:close()
  local c = k.Job.spec.template.spec.containers[1]
  local script = c.command[3]:gsub("/benchrun/plan", plan_dir):gsub("/benchrun/results", results_dir)
  -- index 1 runs twice: the second pod finds its folder and resumes it
  for _, index in ipairs({0, 1, 2, 1}) do
    local r = assert(proc.run{argv = {c.command[1], c.command[2], script}, timeout = 120,
                              env = {JOB_COMPLETION_INDEX = tostring(index)}, cwd = dir})
    T.eq(r.code, 0, "pod " .. index .. ": " .. tostring(r.stderr))
  end
  code, out = k8s(DEMO, "--shards", "3", "--image", "img", "--run-id", "r3", "--merge", "--benchrun", bench.executable)
  local m = by_kind(decode(out)).Job.spec.template.spec.containers[1]
  local argv = {}
  for i, w in ipairs(m.command) do argv[i] = (w:gsub("/benchrun/results", results_dir)) end
  local r = assert(proc.run{argv = argv, timeout = 120})
  T.eq(r.code, 0, "merge: " .. tostring(r.stderr))
  local csv = read(results_dir .. "/r3/summary.csv")
  local n = 0
  for _ in csv:gmatch("\nsim%-%dbit,") do n = n + 1 end
  T.eq(n, 2, "cells in the merged summary.csv")
  assert(read(results_dir .. "/r3/report.md"):find("| 3/3 | ", 1, true), "the Shards section")
end)

T.done()
