-- report.md's "Service level objectives" section (issue 17, item 3): each
-- cell's objectives (target, value, met) and its goodput, from a real run
-- on the simulator, not only summary.csv.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")

local dir = T.tmpdir()

T.case("a cell per section: objectives met and missed, goodput", function()
  local rc, data, rdir = T.run_plan(dir, [[
name: slo
server: {backend: sim}
workload:
  prompts:
    - {name: a, prompt: "hello there", max_tokens: 16}
dry_run: {load_time: 10ms, decode_tps: 2000, memory_scale: 0.0001}
concurrency: 2
requests: 6
slo: {ttft_p95: 2s, min_decode_tps: 100000}
]])
  T.eq(rc, 0, "exit status")
  local s = data.cells[1].summary
  T.eq(s.slo.ttft_p95.met, true, "TTFT met")
  T.eq(s.slo.min_decode_tps.met, false, "no request decodes at 100,000 tok/s")
  local md = assert(T.read_file(rdir .. "/report.md"))
  local at = md:find("## Service level objectives", 1, true)
  assert(at, md)
  local sec = md:sub(at)
  assert(sec:find("### " .. data.cells[1].id .. ": objectives missed", 1, true), sec)
  assert(sec:find("| TTFT p95 ≤ 2000 ms | ", 1, true) and sec:find("✅ met", 1, true), sec)
  assert(sec:find("| decode rate (every request) ≥ 100000.0 tok/s | ", 1, true) and sec:find("❌ missed", 1, true), sec)
  assert(sec:find("Goodput: **0.00 req/s** (0 of 6 successful requests met every objective, 0%; 6 requests in all).",
                  1, true), sec)
end)

T.case("no slo: no section", function()
  local rc, _, rdir = T.run_plan(dir, [[
name: noslo
server: {backend: sim}
workload:
  prompts:
    - {name: a, prompt: "hello there", max_tokens: 16}
dry_run: {load_time: 10ms, decode_tps: 2000, memory_scale: 0.0001}
requests: 2
]])
  T.eq(rc, 0, "exit status")
  local md = assert(T.read_file(rdir .. "/report.md"))
  assert(not md:find("Service level objectives", 1, true), md)
end)

T.done()
