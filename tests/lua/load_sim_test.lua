-- bench.load + bench.summary against `benchrun sim` through the real
-- client: batching throughput, open-loop corrected latencies, a mixed
-- workload's fairness, and errors counted by kind. Tolerances are wide:
-- these check the arithmetic, not the machine's speed.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local openai = require("bench.openai")
local load = require("bench.load")
local workload = require("bench.workload")
local summary = require("bench.summary")
local clock = require("bench.clock")

T.case("closed: 4 users on 4 slots get ~4x the aggregate tokens/s of one", function()
  local sim <close> = T.sim{"--decode-tps", "200", "--slots", "4", "--batch-slowdown", "0",
                            "--prefill-tps", "100000"}
  local c = openai.client{base_url = sim.url}
  local w = workload.synthetic{input = 8, output = 60, seed = 1}
  local rs = load.sweep{client = c, concurrency = {1, 4}, requests = 8, workload = w}
  local one, four = rs[1].summary, rs[2].summary
  T.eq(one.ok, 8, "c=1 ok")
  T.eq(four.ok, 8, "c=4 ok")
  T.eq(four.output_tokens_total, 8 * 60, "tokens")
  T.near(one.decode_tps.p50, 200, 50, "one sequence decodes at the sim's rate")
  T.near(four.decode_tps.p50, 200, 50, "no slowdown per sequence with 4 slots")
  T.near(four.output_tps, 4 * four.decode_tps.p50, 0.3 * 4 * four.decode_tps.p50,
         "aggregate ~ 4 x per-sequence")
  T.near(four.scaling.output_tps, 4, 1.2, "scaling vs c=1")
  T.eq(rs[2].records[1].token_source ~= nil, true, "token source recorded")
end)

T.case("open: a server slower than the rate; corrected latencies grow", function()
  -- one slot, ~50 ms a request, asked for 50 req/s
  local sim <close> = T.sim{"--decode-tps", "400", "--slots", "1", "--prefill-tps", "100000"}
  local c = openai.client{base_url = sim.url}
  local w = workload.synthetic{input = 8, output = 20, seed = 2}
  local r = load.open{client = c, rate = 50, arrival = "constant", requests = 12, workload = w}
  local s = r.summary
  T.eq(s.ok, 12, "ok")
  T.eq(s.send_lag_ms.p50 < 25, true, "uncapped: sent on schedule (lag p50 " .. s.send_lag_ms.p50 .. " ms)")
  T.eq(r.records[12].ttft_ms > r.records[1].ttft_ms + 150, true,
       "the sim queues them: ttft grows from " .. r.records[1].ttft_ms .. " to " .. r.records[12].ttft_ms)
  local capped = load.open{client = c, rate = 50, arrival = "constant", requests = 12, workload = w,
                           max_concurrency = 1, slo = {e2el_p95 = 0.2}}
  local cs = capped.summary
  local last = capped.records[12]
  T.eq(last.send_lag_ms > 150, true, "capped: the last request went out late (" .. last.send_lag_ms .. " ms)")
  T.near(last.e2el_from_scheduled_ms, last.e2el_ms + last.send_lag_ms, 1e-6, "e2el from schedule")
  T.eq(cs.e2el_from_scheduled_ms.p99 > 2 * cs.e2el_ms.p99, true, "the corrected tail shows the backlog")
  T.eq(cs.slo.e2el_p95.met, false, "SLO judged from the schedule")
  T.eq(cs.slo.e2el_p95.value > 0.2, true, "SLO value")
end)

T.case("mixed workload: 100/500/2000 tokens at once, fair per-token rates", function()
  local sim <close> = T.sim{"--decode-tps", "5000", "--slots", "4", "--prefill-tps", "100000"}
  local c = openai.client{base_url = sim.url}
  local r = load.closed{client = c, concurrency = 3, requests = 6, workload = workload.mix{short = 1, medium = 1, long = 1}}
  local s = r.summary
  T.eq(s.ok, 6, "ok")
  T.eq(s.by_name.short.requests, 2, "short")
  T.eq(s.by_name.long.requests, 2, "long")
  T.eq(s.output_tokens_total, 2 * (100 + 500 + 2000), "every request ran to max_tokens")
  T.eq(s.fairness.jain > 0.8, true, "Jain's index of per-request tps " .. tostring(s.fairness.jain))
  T.eq(s.fairness.p99_p50 ~= nil, true, "p99/p50")
end)

T.case("errors counted by kind; the run goes on", function()
  local sim <close> = T.sim{"--decode-tps", "0", "--slots", "8"}
  local c = openai.client{base_url = sim.url, timeout = {first_byte = 0.3}}
  local faults = {"http500", false, "http503", false, "bad-json", false, "drop", false, "stall-first-byte", false}
  local r = load.closed{client = c, concurrency = 2, requests = 10,
                        workload = workload.synthetic{input = 4, output = 10},
                        request = function(args, i)
                          if faults[i] then args.extra = {sim_fault = faults[i]} end
                          return args
                        end}
  local s = r.summary
  local kinds = {}
  for k, n in pairs(s.errors.by_kind) do kinds[#kinds + 1] = k .. "=" .. n end
  table.sort(kinds)
  T.eq(s.ok, 5, "ok (" .. table.concat(kinds, ",") .. ")")
  T.eq(s.errors.total, 5, "errors")
  T.eq(table.concat(kinds, ","), "bad_json=1,http_500=1,http_503=1,timeout_first_byte=1,truncated=1", "kinds")
  T.eq(summary.line(s):find("errors bad_json=1,", 1, true) ~= nil, true, "line names errors")
  T.eq(s.ttft_ms.n, 5, "latencies only from successful requests")
end)

T.case("sim --fault at 50%: every request accounted for", function()
  local sim <close> = T.sim{"--decode-tps", "0", "--fault", "http503:0.5", "--seed", "7"}
  local c = openai.client{base_url = sim.url}
  local r = load.closed{client = c, concurrency = 4, requests = 24,
                        workload = workload.synthetic{input = 4, output = 5}}
  local s = r.summary
  T.eq(s.ok + s.errors.total, 24, "ok + errors")
  T.eq(s.errors.by_kind.http_503, s.errors.total, "all errors are 503s")
  T.eq(s.errors.total >= 4 and s.errors.total <= 20, true, "about half fail: " .. s.errors.total)
end)

T.case("multiturn: each turn sends a longer prompt", function()
  local sim <close> = T.sim{"--decode-tps", "0"}
  local c = openai.client{base_url = sim.url}
  local r = load.closed{client = c, concurrency = 2, requests = 6,
                        workload = workload.multiturn{conversations = 2, turns = 3, system_tokens = 100,
                                                      user_tokens = 10, reply_tokens = 10, max_tokens = 5}}
  T.eq(r.summary.ok, 6, "ok")
  local by = {}
  for _, rec in ipairs(r.records) do by[rec.name] = rec.prompt_tokens end
  for conv = 1, 2 do
    local t1, t2, t3 = by["conv" .. conv .. "-turn1"], by["conv" .. conv .. "-turn2"], by["conv" .. conv .. "-turn3"]
    T.eq(t1 >= 100 and t2 > t1 + 15 and t3 > t2 + 15, true,
         string.format("conversation %d prompt tokens grow: %s %s %s", conv, t1, t2, t3))
  end
end)

T.case("cancelling a load stops its users and its scheduled requests", function()
  local sim <close> = T.sim{"--decode-tps", "50"}
  local c = openai.client{base_url = sim.url}
  local clock = require("bench.clock")
  for _, run in ipairs{
    function() return load.closed{client = c, concurrency = 4, requests = 100} end,
    function() return load.open{client = c, rate = 50, requests = 100} end,
  } do
    local t = bench.spawn(run)
    clock.sleep(0.2)
    T.eq(http.active() > 0, true, "requests in flight")
    t:cancel()
    local ok, err = bench.wait(t)
    T.eq(ok, false, "the load raised")
    T.eq(tostring(err):find("cancelled", 1, true) ~= nil, true, "cancelled: " .. tostring(err))
    clock.sleep(0.05)
    T.eq(http.active(), 0, "no request left in flight")
    T.eq(bench.tasks(), 0, "no task left")
  end
end)

T.case("closed: a user's next request leaves before the last one's record is made", function()
  -- the summary, on_record and the record itself come after the next
  -- write, so none of them delays it (docs/load.md)
  local sim <close> = T.sim{"--decode-tps", "1000", "--prefill-tps", "100000"}
  local c = openai.client{base_url = sim.url, model = "m"}
  local seen = {}
  local res = load.closed{client = c, concurrency = 1, requests = 4, max_tokens = 4,
                          workload = {prompts = {{name = "a", prompt = "hi"}}},
                          on_record = function(r) seen[r.index] = clock.now() end, keep_records = true}
  T.eq(#res.records, 4, "records")
  for i = 1, 3 do
    local nxt = res.records[i + 1]
    assert(nxt.t_wire_sent_ns and nxt.t_wire_sent_ns < seen[i],
           string.format("request %d was written before request %d's on_record", i + 1, i))
  end
  T.eq(res.summary.ok, 4, "all ok")
end)

T.case("closed: the first wave is built and connected, then written in one pass", function()
  -- users that start together write together: no user's request is built
  -- or connected between two others' writes (docs/load.md)
  local sim <close> = T.sim{"--decode-tps", "1000", "--prefill-tps", "100000"}
  local c = openai.client{base_url = sim.url, model = "m"}
  local steps = {}
  -- the real client, its steps noted in order
  local spy = setmetatable({prepare = function(self, kind, args)
    local p = c:prepare(kind, args)
    steps[#steps + 1] = "prepare"
    return {connect = function() steps[#steps + 1] = "connect" p:connect() end,
            start = function() steps[#steps + 1] = "start" return p:start() end}
  end}, {__index = c})
  local res = load.closed{client = spy, concurrency = 8, requests = 12, max_tokens = 4,
                          workload = {prompts = {{name = "a", prompt = "hi"}}}, keep_records = true}
  T.eq(res.summary.ok, 12, "all ok")
  local first = table.concat(steps, " ", 1, 24)
  T.eq(first, string.rep("prepare connect ", 8) .. string.rep("start", 8, " "), "the first wave")
  -- each first-wave record keeps its handshake, made before the call, out of the client's send delay
  for _, r in ipairs(res.records) do
    if r.index <= 8 then
      assert(r.connect_ms, "request " .. r.index .. ": connect_ms")
      assert(r.client_send_delay_ms >= 0 and r.t_wire_sent_ns >= r.t_sent_ns,
             "request " .. r.index .. ": the send delay counts from the call")
    end
  end
end)

T.case("closed: each next request leaves from the loop as the last answer ends; duration and totals hold", function()
  -- built ahead and chained (prepared:start_after): its clock starts at
  -- the last answer's end, on that answer's connection, and no request
  -- starts after the duration (the chain is not sent past it)
  local sim <close> = T.sim{"--decode-tps", "400", "--prefill-tps", "100000"}
  local c = openai.client{base_url = sim.url, model = "m"}
  local res = load.closed{client = c, concurrency = 2, requests = 9, max_tokens = 8,
                          workload = {prompts = {{name = "a", prompt = "hi"}}}, keep_records = true}
  T.eq(#res.records, 9, "exactly the requests asked for")
  T.eq(res.summary.ok, 9, "all ok")
  local by_user = {}
  for _, r in ipairs(res.records) do
    by_user[r.user] = by_user[r.user] or {}
    table.insert(by_user[r.user], r)
  end
  for u, list in pairs(by_user) do
    table.sort(list, function(a, b) return a.t_sent_ns < b.t_sent_ns end)
    for i = 2, #list do
      assert(list[i].t_sent_ns >= list[i - 1].t_end_ns, "user " .. u .. ": sent after the last answer ended")
      T.eq(list[i].t_scheduled_ns, list[i].t_sent_ns, "user " .. u .. ": scheduled when it was sent")
    end
  end
  local t0 = clock.now()
  local timed = load.closed{client = c, concurrency = 2, duration = 0.25, max_tokens = 8,
                            workload = {prompts = {{name = "a", prompt = "hi"}}}, keep_records = true}
  assert(#timed.records >= 4, "several rounds in the duration: " .. #timed.records)
  for _, r in ipairs(timed.records) do
    assert(r.t_sent_ns < t0 + 0.25e9, "request " .. r.index .. " started after the duration")
  end
end)

T.case("closed: a dead server stops the chain: the failure is recorded before anything else is sent", function()
  local sim = T.sim{"--decode-tps", "200", "--prefill-tps", "100000"}
  local c = openai.client{base_url = sim.url, model = "m", timeout = {connect = 2}}
  local failures, sent_after_stop = 0, 0
  local res = load.closed{client = c, concurrency = 2, requests = 40, max_tokens = 16,
                          workload = {prompts = {{name = "a", prompt = "hi"}}},
                          on_record = function(r)
                            if r.index == 3 then sim.proc:stop(1) end
                            if not r.ok then failures = failures + 1 end
                          end,
                          stop = function() if failures > 0 then return "server gone" end end}

  T.eq(res.stopped, "server gone", "stopped")
  assert(res.summary.requests < 40, "stopped early: " .. res.summary.requests)
  assert(res.summary.requests <= 3 + 2 * 3, "at most a few requests after the server died: " .. res.summary.requests)
end)

T.done()
