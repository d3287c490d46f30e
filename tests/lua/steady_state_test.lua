-- Steady state instead of guessed lengths (issue 17, item 2): requests:
-- auto runs until the 95% interval of the mean decode rate is within ±ci,
-- so a jittery simulator runs longer than a steady one (the sim's jitter
-- is drawn from each prompt's text, hence several prompts); warmup: auto stops
-- once TTFT stops falling. Both record why they stopped.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local P = require("bench.plan")
local steady = require("bench.steady")

local dir = T.tmpdir()

local function plan(jitter, extra)
  return string.format([[
name: steady
server: {backend: sim}
workload:
  prompts:
    - {name: a, prompt: "hello there", max_tokens: 16}
    - {name: b, prompt: "good morning", max_tokens: 16}
    - {name: c, prompt: "what is a knee", max_tokens: 16}
    - {name: d, prompt: "count to ten", max_tokens: 16}
    - {name: e, prompt: "name a colour", max_tokens: 16}
    - {name: f, prompt: "say something", max_tokens: 16}
dry_run: {load_time: 10ms, decode_tps: 150, memory_scale: 0.0001, slots: 64, batch_slowdown: 0, jitter: %s}
concurrency: 4
requests: auto
steady: {ci: 2%%, min: 12, max: 400}
%s]], jitter, extra or "")
end

T.case("a steady simulator stops early, a jittery one later; each says why", function()
  local rc, calm = T.run_plan(dir, plan(0))
  T.eq(rc, 0, "exit status")
  local rc2, noisy, rdir = T.run_plan(dir, plan(0.8))
  T.eq(rc2, 0, "exit status")
  local a, b = calm.cells[1].steady[1], noisy.cells[1].steady[1]
  T.eq(a.stopped_because, "stable", "the steady sim: " .. tostring(a.text))
  T.eq(b.stopped_because, "stable", "the jittery sim: " .. tostring(b.text))
  -- the minimum, plus the requests in flight when it was reached (and a
  -- few more when a busy machine's timing noise widens the interval)
  assert(a.requests >= 12 and a.requests <= 30, "steady: " .. a.requests)
  -- per-request rates vary by about 0.8 / sqrt(3) / sqrt(15) = 12%: the
  -- interval narrows to ±2% only after some (1.96 * 0.12 / 0.02)^2 = 138
  -- requests (fewer here: six prompts, six jitter patterns), at least
  -- twice the steady sim's
  assert(b.requests >= 2 * a.requests and b.requests < 400, "jittery: " .. b.requests .. " vs " .. a.requests)
  assert(b.ci_relative <= 0.02, "its interval")
  assert(b.text:find("^steady after %d+ requests: the 95%% interval of the mean decode_tps is ±"), b.text)
  T.eq(noisy.cells[1].summary.requests, b.requests, "the summary counts what was sent")
  local md = assert(T.read_file(rdir .. "/report.md"))
  assert(md:find("## Run length\n\n- **steady**: steady after " .. b.requests .. " requests: the 95% interval", 1, true), md)
end)

T.case("the maximum stops a load that never steadies, and says so", function()
  local rc, data = T.run_plan(dir, (plan(0.9, ""):gsub("max: 400", "max: 14")))
  T.eq(rc, 0, "exit status")
  local s = data.cells[1].steady[1]
  T.eq(s.stopped_because, "max_requests", s.text)
  T.eq(s.requests, 14, "the maximum")
  assert(s.text:find("^not steady within 14 requests"), s.text)
end)

T.case("warmup: auto stops when TTFT stops falling", function()
  local rc, data = T.run_plan(dir, plan(0, "warmup: auto\n"))
  T.eq(rc, 0, "exit status")
  local w = data.cells[1].warmup_auto
  -- the simulator has no cold start: the second TTFT is not 10% below the first
  -- (its first request may include the connection's setup: TTFT can fall once)
  T.eq(w.stopped_because, "ttft_flat", w.text)
  assert(w.requests >= 2 and w.requests < 10, "stopped early: " .. w.requests)
  T.eq(w.ttft_ms[#w.ttft_ms] >= 0.9 * w.ttft_ms[#w.ttft_ms - 1], true, "the last TTFT did not fall")
  local warm = 0
  for _, r in ipairs(data.records) do if r.warmup then warm = warm + 1 end end
  T.eq(warm, w.requests, "recorded as warm-ups")
end)

T.case("the warm-up watcher: falling TTFTs go on, a flat one stops, warmup_max bounds", function()
  local w = steady.warmup{}
  for _, t in ipairs({900, 400, 200}) do w:add{ttft_ms = t} T.eq(w:stop(), nil, "still falling at " .. t) end
  w:add{ttft_ms = 190}
  T.eq(w:stop(), "ttft_flat", "190 is within 10% of 200")
  T.eq(w:result().requests, 4, "four")
  local x = steady.warmup{warmup_max = 3}
  for _, t in ipairs({900, 400, 200}) do x:add{ttft_ms = t} end
  T.eq(x:result().stopped_because, "warmup_max", "still falling")
end)

T.case("bad values name file, line and field", function()
  local path = dir .. "/bad.yaml"
  local f = assert(io.open(path, "w"))
  f:write((plan(0):gsub("requests: auto", "requests: sometimes"):gsub("ci: 2%%", "ci: 200%%")))
  f:close()
  local p, errs = P.load(path, {})
  T.eq(p, nil, "refused")
  local text = table.concat(errs, "\n")
  assert(text:find("bad.yaml:13:11: requests: expected auto or a positive integer, got the string \"sometimes\"", 1, true), text)
  assert(text:find("bad.yaml:14:14: steady.ci: expected a fraction such as 5% or 0.05", 1, true), text)
end)

T.done()
