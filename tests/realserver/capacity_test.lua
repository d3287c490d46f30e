-- Capacity search against the real llama-server (issue 17, item 1): a
-- search over concurrency on a 4-slot server gives a plausible curve: as
-- users are added the wait for the first token grows and each request
-- decodes slower; the report says what it found in words.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local R = dofile(os.getenv("BENCHRUN_TESTS") .. "/realserver/rslib.lua")
local rs = R.setup()

local dir = T.tmpdir()

T.case("a search over users on llama-server: a monotone curve, the answer in words", function()
  local rc, data, rdir = T.run_plan(dir, string.format([[
name: capacity
server: {backend: llama-server, binary: %q, model: %q, args: ["-t", "1", "-c", "1024", "-np", "4"], ready_timeout: 2m}
workload:
  prompts:
    - {name: a, prompt: "Write one short sentence about the sea.", max_tokens: 12}
warmup: 3   # the first requests of a fresh server are slower (TTFT 94 ms, then 67)
search:
  over: concurrency
  slo: {decode_tps_p50: 0.5, ttft_p95: 60s}
  min: 1
  max: 8
  max_steps: 5
  requests: 8
]], rs.server, rs.models .. "/small-q4_0.gguf"))
  T.eq(rc, 0, "exit status")
  local s = data.cells[1].search
  -- generous objectives: every level meets, up to the maximum
  T.eq(s.reason, "max_meets", tostring(s.why))
  T.eq(s.best, 8, "the maximum searched")
  local levels, by = {}, {}
  for _, st in ipairs(s.steps) do
    if not by[st.level] then levels[#levels + 1] = st.level end
    by[st.level] = st
  end
  table.sort(levels)
  T.eq(table.concat(levels, ","), "1,2,4,8", "the doubling levels")
  -- one thread serves every slot, 4 of them: the wait for the first token
  -- grows (or holds, within the noise of a shared 2-core machine) as users
  -- are added, and 4 and 8 users (half of them queued) wait clearly longer
  -- than one; each request decodes slower at 8 users than alone. A p95 of
  -- 8 requests is their slowest: one request slowed by a test running on
  -- the other core (CI runs two at once) moved 2 users' to 74 ms against
  -- 30-42 ms in ten runs, above 4 users' 50 ms, so neighbouring levels are
  -- held to half, the ends of the curve to more.
  for i = 2, #levels do
    local a, b = by[levels[i - 1]].slo.ttft_p95.value, by[levels[i]].slo.ttft_p95.value
    assert(b >= a * 0.5, string.format("TTFT p95 at %d users (%.3f s) below half of %d users' (%.3f s)", levels[i], b,
                                       levels[i - 1], a))
  end
  assert(by[4].slo.ttft_p95.value > 1.5 * by[1].slo.ttft_p95.value, "TTFT p95 at 4 users above 1 user's")
  assert(by[8].slo.ttft_p95.value > 1.5 * by[1].slo.ttft_p95.value, "TTFT p95 grows with the queue")
  assert(by[8].slo.decode_tps_p50.value < by[1].slo.decode_tps_p50.value, "slower per request at 8 users")
  -- the curve of each objective is drawn
  for _, k in ipairs({"decode_tps_p50", "ttft_p95"}) do
    assert(T.read_file(rdir .. "/charts/capacity-capacity-" .. k .. ".svg"), "chart of " .. k)
  end
  local md = assert(T.read_file(rdir .. "/report.md"))
  assert(md:find("**8 concurrent users** meet every objective", 1, true), md)
  assert(md:find("that is the highest load searched (search.max)", 1, true), md)
end)

T.done()
