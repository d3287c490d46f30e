-- ramp: in plans: a closed loop's users start evenly over the ramp instead
-- of at once (a server with a short accept queue drops the connects of
-- users that arrive together: llama-server, docs/servers.md), at the top
-- of a plan or per cell or load scenario; with a rate it is refused with
-- its file, line and field.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local P = require("bench.plan")

local dir = T.tmpdir()

local PLAN = [[
name: ramp
server: {backend: sim}
workload:
  prompts:
    - {name: a, prompt: "hello there", max_tokens: 4}
dry_run: {load_time: 10ms, decode_tps: 10, memory_scale: 0.0001}
ramp: 300ms
cells:
  - {name: ramped, concurrency: 4, requests: 4}
  - {name: together, concurrency: 4, requests: 4, ramp: 0s}
]]

-- the first request of each user of cell `id`: {user -> t_sent_ns}
local function starts(data, id)
  local by_user = {}
  for _, r in ipairs(data.records) do
    if r.cell == id and not r.warmup and (not by_user[r.user] or r.t_sent_ns < by_user[r.user]) then
      by_user[r.user] = r.t_sent_ns
    end
  end
  return by_user
end

T.case("the users start a quarter of the ramp apart; ramp: 0s starts them together", function()
  local rc, data = T.run_plan(dir, PLAN)
  T.eq(rc, 0, "exit status")
  local s = starts(data, "ramped")
  for u = 2, 4 do
    -- user u sleeps until (u-1)/4 of 300 ms after the first: never earlier
    -- (each request takes ~300 ms at 10 tokens/s, so every user sends one)
    assert(s[u], "user " .. u .. " sent a request")
    local after = (s[u] - s[1]) / 1e6
    assert(after >= (u - 1) * 75 - 1, string.format("user %d started %.1f ms after user 1", u, after))
  end
  local t = starts(data, "together")
  for u = 2, 4 do
    local after = (t[u] - t[1]) / 1e6
    assert(after < 75, string.format("without a ramp user %d started %.1f ms after user 1", u, after))
  end
end)

T.case("ramp with a rate is refused, and so is a ramp that is not a duration", function()
  local path = dir .. "/bad.yaml"
  local f = assert(io.open(path, "w"))
  f:write((PLAN:gsub("concurrency: 4, requests: 4}", "rate: 5, requests: 4}", 1)))
  f:close()
  local plan, errs = P.load(path, {})
  T.eq(plan, nil, "refused")
  local text = table.concat(errs, "\n")
  assert(text:find("bad.yaml:9:5: cells[1]: cell ramped: ramp 0.3s is for a closed loop of users; " ..
                   "with a rate the arrivals decide when requests start", 1, true), text)
  f = assert(io.open(path, "w"))
  f:write((PLAN:gsub("ramp: 300ms", "ramp: soon", 1)))
  f:close()
  plan, errs = P.load(path, {})
  T.eq(plan, nil, "refused")
  text = table.concat(errs, "\n")
  assert(text:find("bad.yaml:7:7: ramp: expected", 1, true), text)
end)

T.done()
