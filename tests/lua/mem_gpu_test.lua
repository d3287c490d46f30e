-- A GPU server's memory is its host memory plus its GPU memory (issue 19):
-- NVML's per-process used memory of the server's process tree, or the
-- devices' whole used memory where the driver gives no per-process figures
-- (named in gpu_source), in the samples, the cell records, summary.csv and
-- report.md. The processes are real (a parent that exec'd into the server,
-- with a child); NVML is tests/helpers/fake_nvml.c (NVML 12.2's functions and
-- records), which an inner benchrun loads through BENCHRUN_NVML and which
-- lists the pids this test gives it in FAKE_NVML_PROCS.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local proc, clock = require("bench.proc"), require("bench.clock")

local FAKE = assert(os.getenv("BENCHRUN_FAKE_NVML"), "BENCHRUN_FAKE_NVML: the fake NVML (ctest sets it)")
local LEGACY = assert(os.getenv("BENCHRUN_FAKE_NVML_LEGACY"), "BENCHRUN_FAKE_NVML_LEGACY")
local dir = T.tmpdir()

-- A real tree: `sh` that forks a `sleep` child, then execs `argv` (so the
-- server's pid is the parent of the sleep). -> process, server pid, child pid
local function tree(argv)
  local cmd = "sleep 120 & echo child $!; exec"
  for _, a in ipairs(argv) do cmd = cmd .. " '" .. a .. "'" end
  local p = assert(proc.spawn{argv = {"sh", "-c", cmd}})
  local line = assert(p:wait_for_line("^child %d+$", 10))
  return p, p.pid, tonumber(line:match("%d+"))
end

-- run `script` (Lua text) in a benchrun with `env`; -> the JSON it prints last
local function inner(script, env)
  local path = string.format("%s/inner%d.lua", dir, math.random(1e9))
  local f = assert(io.open(path, "w"))
  f:write(script)
  f:close()
  local r = assert(proc.run{argv = {bench.executable, "run", path}, env = env, timeout = 120})
  if r.code ~= 0 then error("inner benchrun failed: " .. tostring(r.code) .. "\n" .. r.stdout .. r.stderr, 2) end
  local last
  for line in r.stdout:gmatch("[^\n]+") do last = line end
  return json.decode(last)
end

-- mem.process(pid, {gpu = true}) and a sampler's peak and last sample
local SAMPLE = [[
local pid = tonumber(os.getenv("T_PID"))
local m = assert(mem.process(pid, {gpu = true}))
local s = assert(mem.sampler{pid = pid, interval = 0.02})
s:start()
clock.sleep(0.2)
local r = s:stop()
print(json.encode({process = m, peak = r.peak, last = r.samples[#r.samples], note = r.gpu_note or false}))
]]

local function sample(pid, env)
  env.T_PID = tostring(pid)
  return inner(SAMPLE, env)
end

T.case("per process: the server's tree is summed, others are not", function()
  local p, pid, child = tree({"sleep", "121"})
  local other = assert(proc.spawn{argv = {"sleep", "122"}})
  for _, lib in ipairs({FAKE, LEGACY}) do
    local r = sample(pid, {BENCHRUN_NVML = lib,
      FAKE_NVML_PROCS = string.format("%d:1000000000,%d:2000000000,%d:5000000000", pid, child, other.pid)})
    local what = lib == FAKE and "_v3 " or "v1 "
    T.eq(r.process.nprocs, 2, what .. "nprocs")
    T.eq(r.process.gpu, 3000000000, what .. "gpu of the tree")
    T.eq(r.process.gpu_source, "nvml-process", what .. "source")
    T.eq(r.peak.server_gpu, 3000000000, what .. "sampler's peak server_gpu")
    T.eq(r.peak.gpu_source, "nvml-process", what .. "peak's source")
    T.eq(r.last.server_mem, r.last.rss + 3000000000, what .. "server_mem = rss + gpu")
    assert(r.peak.server_mem >= r.peak.server_gpu + r.last.rss // 2, what .. "peak server_mem")
    -- the devices' used memory stays the whole device's (the fake: its
    -- processes' sum + 300 MiB)
    T.eq(r.last.gpu_used, 8000000000 + 300 * 1048576, what .. "gpu_used")
    T.eq(r.note, false, what .. "no note")
  end
  other:stop(1)
  p:stop(1)
end)

T.case("per process: several devices, a list longer than the first buffer", function()
  local p, pid, child = tree({"sleep", "121"})
  local procs = {string.format("%d:1000000000@0,%d:2000000000@1,%d:4000000000@1", pid, pid, child)}
  -- 100 other processes on device 0: more than benchrun's first 64 records
  for i = 1, 100 do procs[#procs + 1] = string.format("%d:1000", 3000000 + i) end
  local r = sample(pid, {BENCHRUN_NVML = FAKE, FAKE_NVML_DEVICES = "2", FAKE_NVML_PROCS = table.concat(procs, ",")})
  T.eq(r.process.gpu, 7000000000, "both devices, both processes")
  T.eq(r.process.gpu_source, "nvml-process", "source")
  T.eq(r.peak.server_gpu, 7000000000, "sampler")
  p:stop(1)
end)

T.case("no per-process figures: the devices' used total, said so", function()
  local p, pid, child = tree({"sleep", "121"})
  -- the process list answers NVML_ERROR_NOT_SUPPORTED
  local r = sample(pid, {BENCHRUN_NVML = FAKE, FAKE_NVML_USED = "7000000000", FAKE_NVML_PROCS_ERROR = "3",
                         FAKE_NVML_PROCS = string.format("%d:1000000000", pid)})
  T.eq(r.process.gpu, 7000000000, "device total")
  T.eq(r.process.gpu_source, "nvml-device", "source")
  T.eq(r.process.gpu_note, "not available: nvmlDeviceGetComputeRunningProcesses_v3: Not Supported", "why")
  T.eq(r.peak.server_gpu, 7000000000, "sampler")
  T.eq(r.peak.gpu_source, "nvml-device", "peak's source")
  T.eq(r.note, "not available: nvmlDeviceGetComputeRunningProcesses_v3: Not Supported", "series note")
  -- the server's own figure "not available" (NVML_VALUE_NOT_AVAILABLE)
  r = sample(pid, {BENCHRUN_NVML = FAKE, FAKE_NVML_USED = "6000000000",
                   FAKE_NVML_PROCS = string.format("%d:na,%d:2000000000", pid, child)})
  T.eq(r.process.gpu, 6000000000, "device total")
  T.eq(r.process.gpu_source, "nvml-device", "source")
  assert(r.process.gpu_note:find("not available", 1, true), r.process.gpu_note)
  p:stop(1)
end)

T.case("no NVML: host memory alone, no GPU fields", function()
  local p, pid = tree({"sleep", "121"})
  local r = sample(pid, {BENCHRUN_NVML = dir .. "/no-such-libnvidia-ml.so.1"})
  T.eq(r.process.gpu, nil, "gpu")
  T.eq(r.process.gpu_source, nil, "source")
  T.eq(r.peak.server_gpu, nil, "server_gpu")
  T.eq(r.last.server_mem, r.last.rss, "server_mem = rss")
  assert(r.note:find("^not available: BENCHRUN_NVML=.*no%-such%-libnvidia%-ml"), r.note)
  p:stop(1)
end)

-- A plan against a running server (backend external, its pid given): the
-- cell record, summary.csv and report.md carry host + GPU.
local PLAN = [[
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local rc, data, rdir = T.run_plan(os.getenv("T_DIR"), string.format([=[
name: gpu
server: {backend: external, base_url: "%s", extra: {pid: %s}}
workload:
  prompts:
    - {name: a, prompt: "hello there", max_tokens: 16}
matrix: {concurrency: [1, 2]}
requests: 4
sampling: {memory: 20ms}
]=], os.getenv("T_URL"), os.getenv("T_PID")))
local function read(p) local f = assert(io.open(rdir .. "/" .. p)) local s = f:read("a") f:close() return s end
-- the server runs on across both cells: its sampler's peak is in the last one
print(json.encode({rc = rc, server = data.cells[#data.cells].server, csv = read("summary.csv"), md = read("report.md"),
                   chart = read("charts/memory.svg"),
                   samples = #data.samples}))
]]

local runs = 0
local function run_plan(env)
  local portfile = dir .. "/port"
  os.remove(portfile)
  local p, pid, child = tree({bench.executable, "sim", "--port", "0", "--port-file", portfile})
  local port
  for _ = 1, 500 do
    local f = io.open(portfile)
    if f then port = tonumber(f:read("a")) f:close() end
    if port then break end
    clock.sleep(0.01)
  end
  assert(port, "sim did not start")
  runs = runs + 1
  local rundir = string.format("%s/run%d", dir, runs)   -- each inner benchrun's own results folder
  assert(os.execute("mkdir -p " .. rundir))
  env.T_DIR, env.T_URL, env.T_PID = rundir, "http://127.0.0.1:" .. port, tostring(pid)
  env.FAKE_NVML_PROCS = env.FAKE_NVML_PROCS:gsub("PID", tostring(pid)):gsub("CHILD", tostring(child))
  local r = inner(PLAN, env)
  p:stop(2)
  return r
end

-- summary.csv -> its rows as {column = value}
local function csv_rows(text)
  local lines = {}
  for l in text:gmatch("[^\n]+") do lines[#lines + 1] = l end
  local head, rows = {}, {}
  for v in (lines[1] .. ","):gmatch("([^,]*),") do head[#head + 1] = v end
  for n = 2, #lines do
    local row, out = {}, {}
    for v in (lines[n] .. ","):gmatch("([^,]*),") do row[#row + 1] = v end
    for i, k in ipairs(head) do out[k] = row[i] end
    rows[#rows + 1] = out
  end
  return rows
end

T.case("a plan: the cell, summary.csv and report.md carry host + GPU", function()
  local r = run_plan({BENCHRUN_NVML = FAKE, FAKE_NVML_PROCS = "PID:2000000000,CHILD:1500000000,1:9000000000"})
  T.eq(r.rc, 0, "plan ok")
  local s = r.server
  T.eq(s.peak_gpu_bytes, 3500000000, "peak_gpu_bytes: the tree's GPU memory")
  T.eq(s.gpu_memory_source, "nvml-process", "gpu_memory_source")
  assert(s.peak_rss_bytes > 1e6, "host peak " .. tostring(s.peak_rss_bytes))
  assert(s.peak_memory_bytes > 3500000000 and s.peak_memory_bytes <= 3500000000 + s.peak_rss_bytes,
    "peak_memory_bytes " .. tostring(s.peak_memory_bytes))
  T.eq(s.gpu_device_peak_bytes, 12500000000 + 300 * 1048576, "the device's whole used memory")
  -- both cells' rows (the first from its own samples), host + GPU
  local rows = csv_rows(r.csv)
  T.eq(#rows, 2, "two cells")
  for i, c in ipairs(rows) do
    local peak = tonumber(c.peak_bytes)
    assert(peak and peak > 3500000000 and peak <= s.peak_memory_bytes, i .. ": summary.csv peak_bytes " .. c.peak_bytes)
    T.eq(tonumber(c.gpu_peak_bytes), 3500000000, i .. ": summary.csv gpu_peak_bytes")
    T.near(tonumber(c.host_peak_bytes), peak - 3500000000, 0.5, i .. ": summary.csv host_peak_bytes")
    T.eq(c.gpu_source, "nvml-process", i .. ": summary.csv gpu_source")
    T.near(tonumber(c.tps_per_gb), tonumber(c.decode_tps) / (peak / 1e9), 1e-3, i .. ": TPS/GB over host + GPU")
  end
  T.eq(tonumber(rows[2].host_peak_bytes), s.peak_rss_bytes, "the last cell's host part: the server's")
  -- report.md: the peak column holds host + GPU, the GPU part beside it, in every row
  local line = r.md:match("\n(|[^\n]*Peak mem %(GB%)[^\n]*)\n")
  assert(line and line:find("of which GPU (GB)", 1, true), "header: " .. tostring(line))
  -- (peak, GPU, TPS/GB, then J/tok, tok/s/W, W, °C, throttled %, OK, status).
  -- summary.csv keeps 6 significant digits and report.md rounds the full
  -- value to 2 decimals, so 14.235 in the csv may read 14.23 or 14.24
  local shown = {}
  for peak_gb, gpu_gb, per_gb in r.md:gmatch("\n| %d+ | %d+ |[^\n]-| ([%d.]+) | ([%d.]+) | ([%d.]+) | [%d.]+ | [%d.]+ | [%d.]+ | [%d.]+ | [%d.]+ | %d+/%d+ | ok |") do
    shown[#shown + 1] = {tonumber(peak_gb), tonumber(gpu_gb), tonumber(per_gb)}
  end
  T.eq(#shown, #rows, "one results row per cell in report.md:\n" .. r.md)
  for i, c in ipairs(rows) do
    local row = shown[i]
    T.eq(string.format("%.1f", row[1]), string.format("%.1f", tonumber(c.peak_bytes) / 1e9), i .. ": peak cell")
    T.eq(row[2], 3.5, i .. ": GPU cell")
    assert(math.abs(row[3] - tonumber(c.tps_per_gb)) <= 0.005 + 1e-4,
      i .. ": TPS/GB cell " .. row[3] .. " for " .. c.tps_per_gb .. " in:\n" .. r.md)
  end
  assert(r.md:find("Peak memory includes the server's GPU memory (NVML's per-process used memory", 1, true), "note")
  -- the memory chart draws the peak's figure and the server's GPU memory
  assert(r.chart:find("server host + GPU", 1, true) and r.chart:find("server GPU memory", 1, true), "chart lines")
  assert(not r.md:find("†", 1, true), "no device mark")
end)

T.case("a plan without per-process figures: the device total, marked", function()
  local r = run_plan({BENCHRUN_NVML = FAKE, FAKE_NVML_PROCS_ERROR = "4", FAKE_NVML_USED = "20000000000",
                      FAKE_NVML_PROCS = "PID:1"})
  T.eq(r.rc, 0, "plan ok")
  T.eq(r.server.peak_gpu_bytes, 20000000000, "device total")
  T.eq(r.server.gpu_memory_source, "nvml-device", "source")
  T.eq(r.server.gpu_memory_note, "not available: nvmlDeviceGetComputeRunningProcesses_v3: Insufficient Permissions", "note")
  for _, c in ipairs(csv_rows(r.csv)) do T.eq(c.gpu_source, "nvml-device", "summary.csv gpu_source") end
  assert(r.md:find(" †", 1, true), "the peak is marked")
  assert(r.md:find("the devices' whole used memory, other processes' included", 1, true), "and explained")
end)

T.done()
