-- Gamma arrivals in plans (issue 17, item 1): arrival: gamma with
-- burstiness reaches bench.load's open loop (the requests' scheduled send
-- times are the gamma schedule of that seed), and burstiness without
-- gamma arrivals is refused with its file, line and field.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local P = require("bench.plan")
local load = require("bench.load")

local dir = T.tmpdir()

local PLAN = [[
name: gamma
server: {backend: sim}
workload:
  prompts:
    - {name: a, prompt: "hello there", max_tokens: 4}
dry_run: {load_time: 10ms, decode_tps: 5000, memory_scale: 0.0001}
cells:
  - {name: bursty, rate: 200, arrival: gamma, burstiness: 0.25, requests: 30}
]]

T.case("the scheduled send times are the gamma schedule", function()
  local rc, data = T.run_plan(dir, PLAN)
  T.eq(rc, 0, "exit status")
  local recs = {}
  for _, r in ipairs(data.records) do if not r.warmup then recs[r.index] = r end end
  T.eq(#recs, 30, "requests")
  -- repeat 1 draws with seed 1 (the runner's seed is the repeat)
  local gap = load.arrivals{rate = 200, arrival = "gamma", burstiness = 0.25, seed = 1}
  for i = 2, 30 do
    local want = math.floor(gap() * 1e9 + 0.5)
    T.eq(recs[i].t_scheduled_ns - recs[i - 1].t_scheduled_ns, want, "gap " .. i)
  end
end)

T.case("burstiness needs gamma arrivals", function()
  local path = dir .. "/bad.yaml"
  local f = assert(io.open(path, "w"))
  f:write((PLAN:gsub("arrival: gamma, ", "")))
  f:close()
  local plan, errs = P.load(path, {})
  T.eq(plan, nil, "refused")
  local text = table.concat(errs, "\n")
  assert(text:find("bad.yaml:8:5: cells[1]: cell bursty: burstiness 0.25 needs arrival: gamma in the same cell", 1, true), text)
end)

T.done()
