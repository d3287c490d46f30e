-- The runner against the simulator: every plan key that changes what a run
-- does is seen doing it (safety.memory_ceiling, sampling.memory from the
-- spawn, sampling.metrics, rate/arrival as an open loop, restart), and the
-- keys that were dropped from the schema are refused.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local P = require("bench.plan")
local runner = require("bench.runner")
local results = require("bench.results")

local dir = T.tmpdir()

-- validate text as a plan file and run it quietly; -> exit status, loaded results
local function run(text, opts) return T.run_plan(dir, text, opts) end

local function cells_by_id(data)
  local c = {}
  for _, x in ipairs(data.cells) do c[x.id] = x end
  return c
end

local SIM = [[
server: {backend: sim}
workload:
  prompts:
    - {name: a, prompt: "hello there", max_tokens: 16}
dry_run: {load_time: 80ms, decode_tps: 2000, memory_scale: 0.0001}
]]

T.case("safety.memory_ceiling stops the cell; the plan goes on", function()
  local rc, data = run("name: ceiling\n" .. SIM .. [[
models:
  small: {model: small, size: 100GB}
  big: {model: big, size: 900GB}
matrix:
  model: [big, small]
sampling: {memory: 10ms, gpu: false}
safety: {memory_ceiling: 500GB}
]])
  T.eq(rc, 0, "exit status (an abort by the ceiling is not a failure of the run)")
  local c = cells_by_id(data)
  T.eq(c.big.status, "failed", "big's status")
  T.eq(c.big.aborted, "memory ceiling", "big aborted")
  T.eq(tostring(c.big.error):match("^aborted: memory ceiling"), "aborted: memory ceiling", "big's error: " .. tostring(c.big.error))
  T.eq(c.small.status, "ok", "small ran after it")
  T.eq(c.small.summary.ok, 1, "small's requests")
  -- the ceiling in measured units: 500 GB * 0.0001
  T.eq(c.big.safety.measured_ceiling_bytes, 50000000, "scaled ceiling")
  T.eq(c.big.safety.peak_bytes > 50000000, true, "peak above it")
end)

T.case("safety.stop_on_oom stops after an OOM kill, leaving the rest to --resume", function()
  local rc, data = run([[
name: stop
server: {backend: sim}
workload:
  prompts:
    - {name: a, prompt: "hello there", max_tokens: 16}
models:
  big: {model: big, size: 900GB}
  small: {model: small, size: 100GB}
matrix:
  model: [big, small]
dry_run: {load_time: 10ms, memory_scale: 0.0001, oom_at_memory: 500GB}
safety: {stop_on_oom: true}
]])
  T.eq(rc, 1, "exit status: the plan did not finish")
  local c = cells_by_id(data)
  T.eq(c.big.status, "oom", "big was OOM-killed")
  T.eq(#data.cells, 1, "cells recorded (small is left for --resume)")
end)

T.case("memory samples start at the spawn and carry cell and phase", function()
  local _, data = run("name: samples\n" .. SIM .. [[
models:
  m: {model: m, size: 200GB}
matrix:
  model: [m]
warmup: 1
sampling: {memory: 10ms, gpu: false}
]])
  local phases = {}
  for _, s in ipairs(data.samples) do
    T.eq(s.cell, "m", "sample's cell")
    phases[s.phase] = (phases[s.phase] or 0) + 1
  end
  T.eq((phases.load or 0) >= 3, true, "samples during the 80 ms load: " .. tostring(phases.load))
  T.eq((phases.run or 0) + (phases.idle or 0) >= 1, true, "samples after the load")
  local c = cells_by_id(data).m
  -- 200 GB * 0.0001 = 20 MB touched by the sim, plus the program itself
  T.eq(c.server.peak_rss_bytes >= 20000000, true, "peak rss " .. tostring(c.server.peak_rss_bytes))
  T.eq(c.server.model_id, "m", "the id sent to the server")
  T.eq(c.labels.model, "m", "labels.model is the plan's model name")
end)

T.case("sampling.metrics scrapes /metrics into samples", function()
  local _, data = run("name: metrics\n" .. SIM .. [[
matrix:
  concurrency: [2]
requests: 8
sampling: {memory: 50ms, gpu: false, metrics: 20ms}
]])
  local m = 0
  local last
  for _, s in ipairs(data.samples) do
    if s.type == "metrics" then
      m = m + 1
      last = s
      T.eq(s.cell, "2", "metrics sample's cell")
    end
  end
  T.eq(m >= 2, true, "metrics samples: " .. m)
  T.eq(type(last.sim_requests_total), "number", "sim_requests_total in the sample")
end)

T.case("rate and arrival make an open loop", function()
  local _, data = run("name: open\n" .. SIM .. [[
cells:
  - {name: open, rate: 40, arrival: constant, requests: 6}
  - {name: capped, rate: 40, requests: 4, concurrency: 2}
]])
  local byc = {}
  for _, r in ipairs(data.records) do
    if not r.warmup then
      byc[r.cell] = (byc[r.cell] or 0) + 1
      T.eq(type(r.t_scheduled_ns), "number", "t_scheduled_ns")
      T.eq(type(r.send_lag_ms), "number", "send_lag_ms (open loop)")
      T.eq(type(r.e2el_from_scheduled_ms), "number", "e2el_from_scheduled_ms")
    end
  end
  T.eq(byc.open, 6, "open requests")
  T.eq(byc.capped, 4, "capped requests")
  -- constant arrivals at 40/s: 6 requests take at least 5 gaps of 25 ms
  local c = cells_by_id(data)
  T.eq(c.open.summary.wall_s >= 0.12, true, "wall time of the open loop " .. tostring(c.open.summary.wall_s))
end)

T.case("restart: true restarts a server whose configuration did not change", function()
  local _, data = run("name: restart\n" .. SIM .. [[
cells:
  - {name: first}
  - {name: same}
  - {name: again, restart: true}
]])
  local c = cells_by_id(data)
  T.eq(c.first.server.restarted, true, "first starts the server")
  T.eq(c.same.server.restarted, nil, "same keeps it")
  T.eq(c.again.server.restarted, true, "again restarts it")
end)

T.case("cells whose labels would be equal are told apart", function()
  -- a custom axis named like the load: scenarios' axis gets no label of
  -- its own, so the two cells would merge in the report as repeats
  local _, data = run("name: labels\n" .. SIM .. [[
matrix:
  load:
    - {name: one, requests: 1}
    - {name: two, requests: 2}
]])
  local c = cells_by_id(data)
  T.eq(c.one.labels.load, "one", "axis label added")
  T.eq(c.two.labels.load, "two", "axis label added")
end)

T.case("workload keys reach the requests: system, temperature, max_tokens, prompt", function()
  local path = dir .. "/w.yaml"
  local f = assert(io.open(path, "w"))
  f:write([[
name: w
server: {backend: sim}
workload:
  temperature: 0.25
  prompts:
    - {name: a, prompt: "hello", system: "be brief", max_tokens: 8}
    - {name: b, prompt: "bye", max_tokens: 9}
cells:
  - {name: one, prompt: b}
  - {name: all, max_tokens: 5}
]])
  f:close()
  local plan = assert(P.load(path, {}))
  local ctx = {plan = plan}
  local w, n = runner.cell_workload(ctx, plan.cells[1])
  local r = w:next(1)
  T.eq(n, 1, "a cell with prompt: sends that one")
  T.eq(r.name, "b", "its name")
  T.eq(r.extra.temperature, 0.25, "temperature in the request")
  w, n = runner.cell_workload(ctx, plan.cells[2])
  r = w:next(1)
  T.eq(n, 2, "both prompts")
  T.eq(r.messages[1].role, "system", "system message first")
  T.eq(r.messages[1].content, "be brief", "system text")
  T.eq(r.messages[2].content, "hello", "user text")
  T.eq(r.max_tokens, 5, "the cell's max_tokens")
end)

T.case("a real run sets each cell's sysctl values and restores them at the end", function()
  local proc = require("bench.proc")
  local fixtures = os.getenv("BENCHRUN_TESTS") .. "/fixtures-bin"
  local m = T.tmpdir()
  assert(proc.run{argv = {"mkdir", m .. "/values", m .. "/state"}}.code == 0)
  local f = assert(io.open(m .. "/values/iogpu.wired_limit_mb", "w"))
  f:write("0\n")
  f:close()
  local path = m .. "/plan.yaml"
  f = assert(io.open(path, "w"))
  f:write([[
name: sysctl
script: phases/tuning.lua
server: {backend: sim}
workload:
  prompts:
    - {name: a, prompt: "hi", max_tokens: 4}
matrix:
  config:
    - {name: default, sysctl: {iogpu.wired_limit_mb: default}}
    - {name: high, sysctl: {iogpu.wired_limit_mb: 458752}}
    - {name: back, sysctl: {iogpu.wired_limit_mb: default}}
    - {name: too-high, sysctl: {iogpu.wired_limit_mb: 600000}}
    - {name: last, sysctl: {iogpu.wired_limit_mb: 491520}}
safety: {max_sysctl: {iogpu.wired_limit_mb: 491520}}
dry_run: {load_time: 10ms}
]])
  f:close()
  local r = proc.run{argv = {bench.executable, path, "--quiet", "--out", m .. "/out"}, timeout = 60,
                     env = {set = {BENCHRUN_STATE_DIR = m .. "/state", BENCHRUN_SYSCTL = fixtures .. "/sysctl",
                                   BENCHRUN_SUDO = fixtures .. "/sudo", FAKE_SYSCTL_DIR = m .. "/values",
                                   FAKE_SUDO_LOG = m .. "/sudo.log", FAKE_SYSCTL_LOG = m .. "/changes.log"}}}
  T.eq(r.code, 1, "exit status (the too-high cell failed): " .. tostring(r.stderr))
  local changes = {}
  for line in io.lines(m .. "/changes.log") do changes[#changes + 1] = line end
  T.eq(table.concat(changes, " "),
       "iogpu.wired_limit_mb=458752 iogpu.wired_limit_mb=0 iogpu.wired_limit_mb=491520 iogpu.wired_limit_mb=0",
       "changes: set, back to the original, set, restored at the end")
  local cur = assert(io.open(m .. "/values/iogpu.wired_limit_mb")):read("l")
  T.eq(cur, "0", "the value after the run")
  local ls = assert(io.popen("ls -d " .. m .. "/out/*/"))
  local data = assert(results.load(ls:read("l")))
  ls:close()
  local c = cells_by_id(data)
  T.eq(c["too-high"].status, "failed", "the cell above safety.max_sysctl")
  T.eq(tostring(c["too-high"].error):find("above the plan's safety.max_sysctl", 1, true) ~= nil, true,
       "its error: " .. tostring(c["too-high"].error))
  T.eq(c.last.status, "ok", "the plan went on")
  local text = tostring(data.summary.notes and data.summary.notes.text)
  T.eq(text:find("Settings restored", 1, true) ~= nil, true, "the report says the settings were restored: " .. text)
end)

T.case("parse_metrics", function()
  local m, count = runner.parse_metrics([[
# HELP x a gauge
x 3
y{model_name="a"} 1.5
h_bucket{le="0.1"} 4
h_sum 2
bad NaN
]])
  T.eq(count, 3, "count")
  T.eq(m.x, 3, "x")
  T.eq(m["y{model_name=a}"], 1.5, "labels kept without quotes")
  T.eq(m.h_sum, 2, "_sum kept")
  T.eq(m["h_bucket{le=0.1}"], nil, "buckets left out")
end)

T.case("dropped and inconsistent keys are refused", function()
  local function errs(text)
    local path = dir .. "/bad.yaml"
    local f = assert(io.open(path, "w"))
    f:write(text)
    f:close()
    local plan, e = P.load(path, {})
    T.eq(plan, nil, "plan")
    return table.concat(e, "\n")
  end
  T.eq(errs("name: t\nserver: {backend: sim}\nsafety: {restore: true}\n"):find("safety.restore: unknown key", 1, true) ~= nil,
       true, "safety.restore")
  T.eq(errs("name: t\nserver: {backend: sim}\nsampling: {system: true}\n"):find("sampling.system: unknown key", 1, true) ~= nil,
       true, "sampling.system")
  T.eq(errs("name: t\nserver: {backend: sim}\ncells: [{name: x, arrival: poisson}]\n"):find("arrival 'poisson' needs a rate", 1, true) ~= nil,
       true, "arrival without rate")
  T.eq(errs("name: t\nserver: {backend: sim}\ncells: [{name: x, prompt: shor}]\n"):find("unknown prompt 'shor', did you mean 'short'?", 1, true) ~= nil,
       true, "unknown prompt")
  T.eq(errs("name: t\nserver: {backend: sim}\ndry_run: {dialect: vllm}\n"):find("dry_run.dialect: expected one of openai, llama.cpp, lmstudio, ollama", 1, true) ~= nil,
       true, "dry_run.dialect")
end)

T.done()
