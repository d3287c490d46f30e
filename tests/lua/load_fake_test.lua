-- bench.load against a fake client in Lua (no HTTP): concurrency, warm-up,
-- ramp, duration, open-loop schedules and corrected latencies, sweeps,
-- errors by kind, SLOs and goodput. Timings use generous tolerances only.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local load = require("bench.load")
local summary = require("bench.summary")
local clock = require("bench.clock")

-- A fake server: `slots` requests at once (others queue), each taking
-- `secs`; replies look like bench.openai records.
local function fake(secs, slots)
  local c = {inflight = 0, max_inflight = 0, calls = {}, busy = 0}
  function c:chat(args)
    local t0 = clock.now()
    self.calls[#self.calls + 1] = args
    self.inflight = self.inflight + 1
    self.max_inflight = math.max(self.max_inflight, self.inflight)
    while slots and self.busy >= slots do clock.sleep(0.001) end
    self.busy = self.busy + 1
    local t1 = clock.now()
    clock.sleep(secs)
    self.busy = self.busy - 1
    self.inflight = self.inflight - 1
    local e2e = (clock.now() - t0) / 1e6
    return {ok = true, t_sent_ns = t0, ttft_ms = (t1 - t0) / 1e6 + 1, e2el_ms = e2e, tpot_ms = 1,
            itl_ms = {1, 1}, output_tokens = 3, decode_tps = 1000, token_source = "usage",
            finish_reason = "length"}
  end
  return c
end

T.case("records stream through on_record; the list is kept only when asked", function()
  local seen = 0
  local r = load.closed{client = fake(0.001), concurrency = 4, requests = 40,
                        on_record = function() seen = seen + 1 end}
  T.eq(r.records, nil, "no list with on_record")
  T.eq(seen, 40, "every record seen")
  T.eq(r.summary.requests, 40, "summarised as they came")
  local o = load.open{client = fake(0.001), rate = 400, requests = 40, arrival = "constant",
                      on_record = function() end}
  T.eq(o.records, nil, "open loop: no list either")
  T.eq(o.summary.ok, 40, "open loop summary")
  T.eq(#load.closed{client = fake(0.001), requests = 3}.records, 3, "no on_record: the list")
end)

T.case("closed: n users, warm-up first and left out, records by index", function()
  local c = fake(0.005)
  local seen = 0
  local r = load.closed{client = c, concurrency = 4, requests = 20, warmup = 3, keep_records = true,
                        on_record = function() seen = seen + 1 end}
  T.eq(#r.records, 23, "records incl. warm-up")
  T.eq(seen, 23, "on_record for each")
  T.eq(c.max_inflight, 4, "concurrency")
  T.eq(r.summary.requests, 20, "summary excludes warm-up")
  T.eq(r.summary.ok, 20, "ok")
  T.eq(r.level.concurrency, 4, "level")
  for k = 1, 3 do T.eq(r.records[k].warmup, true, "warm-up " .. k) end
  for k = 4, 23 do
    T.eq(r.records[k].warmup, false, "measured " .. k)
    T.eq(r.records[k].index, k - 3, "index " .. k)
  end
  T.eq(r.records[4].name, "short", "seed workload by default")
  T.eq(c.calls[1].prompt ~= nil, true, "prompt passed")
  T.eq(r.summary.output_tokens_total, 60, "tokens")
  T.eq(r.summary.token_sources.usage, 20, "token sources")
  T.near(r.summary.output_tps, 60 / r.wall_s, 1e-9, "output tps over wall")
  -- 20 requests of 5 ms, 4 at a time: >= 25 ms
  T.eq(r.wall_s >= 0.025, true, "wall time covers the requests")
end)

T.case("closed: duration, ramp, max_tokens and extra", function()
  local c = fake(0.01)
  local r = load.closed{client = c, concurrency = 2, duration = 0.1, max_tokens = 17, extra = {seed = 1}}
  -- each user starts at least one; a 10 ms request leaves room for at most 11 each
  T.eq(r.summary.requests >= 2 and r.summary.requests <= 22, true, "at most 22 requests in 0.1 s, got " .. r.summary.requests)
  T.eq(c.calls[1].max_tokens, 17, "max_tokens override")
  T.eq(c.calls[1].extra.seed, 1, "extra")
  local c2 = fake(0.01)
  local r2 = load.closed{client = c2, concurrency = 4, duration = 0.3, ramp = 0.2}
  local starts = {}
  for _, rec in ipairs(r2.records) do
    starts[rec.user] = math.min(starts[rec.user] or math.huge, rec.t_scheduled_ns)
  end
  T.eq((starts[4] - starts[1]) / 1e9 >= 0.14, true, "ramp spreads users over 0.2 s")
end)

T.case("open: constant schedule, small lag when the server keeps up", function()
  local c = fake(0.002)
  local r = load.open{client = c, rate = 100, arrival = "constant", requests = 20}
  T.eq(#r.records, 20, "records")
  for k = 2, 20 do
    T.eq(r.records[k].t_scheduled_ns - r.records[k - 1].t_scheduled_ns, 10000000, "constant gap " .. k)
  end
  T.eq(r.summary.send_lag_ms.p50 < 50, true, "sends on time (p50 lag " .. r.summary.send_lag_ms.p50 .. " ms)")
  T.eq(r.level.rate, 100, "level")
end)

T.case("open: a server slower than the rate shows in the from-scheduled latencies", function()
  -- one slot, 20 ms each, 200 req/s asked: the queue grows by 15 ms a request
  local c = fake(0.02)
  local r = load.open{client = c, rate = 200, arrival = "constant", requests = 15, max_concurrency = 1,
                      slo = {e2el_p99 = 0.1}}
  local last = r.records[15]
  T.eq(last.send_lag_ms > 150, true, "last request sent late (lag " .. last.send_lag_ms .. " ms)")
  T.near(last.e2el_from_scheduled_ms, last.e2el_ms + last.send_lag_ms, 1e-6, "e2el from scheduled")
  T.near(last.ttft_from_scheduled_ms, last.ttft_ms + last.send_lag_ms, 1e-6, "ttft from scheduled")
  T.eq(r.summary.e2el_from_scheduled_ms.p99 > 3 * r.summary.e2el_ms.p99, true, "corrected tail is larger")
  T.eq(r.summary.slo.e2el_p99.met, false, "SLO judged on corrected latency")
  T.eq(r.summary.good_requests < 15, true, "goodput counts only requests within the SLO")
  -- without the cap, requests go out on time and queue in the server instead
  local c2 = fake(0.02, 1)
  local r2 = load.open{client = c2, rate = 200, arrival = "constant", requests = 15}
  T.eq(r2.summary.send_lag_ms.p50 < 50, true, "uncapped: sent on time")
  T.eq(c2.max_inflight > 5, true, "uncapped: many in flight")
end)

T.case("arrivals: seeded, mean gap 1/rate, gamma burstiness", function()
  local function gaps(o, n)
    local g, xs = load.arrivals(o), {}
    for i = 1, n do xs[i] = g() end
    return xs
  end
  local function mean_cv(xs)
    local s, s2 = 0, 0
    for _, x in ipairs(xs) do s = s + x end
    local m = s / #xs
    for _, x in ipairs(xs) do s2 = s2 + (x - m) ^ 2 end
    return m, math.sqrt(s2 / #xs) / m
  end
  local a, b = gaps({rate = 10, seed = 5}, 50), gaps({rate = 10, seed = 5}, 50)
  for i = 1, 50 do T.eq(a[i], b[i], "seeded " .. i) end
  local m, cv = mean_cv(gaps({rate = 10, seed = 1}, 20000))
  T.near(m, 0.1, 0.005, "poisson mean")
  T.near(cv, 1, 0.05, "poisson cv")
  m, cv = mean_cv(gaps({rate = 10, arrival = "gamma", burstiness = 0.25, seed = 1}, 20000))
  T.near(m, 0.1, 0.008, "gamma mean")
  T.near(cv, 2, 0.15, "gamma k=0.25 cv = 1/sqrt(k)")
  m, cv = mean_cv(gaps({rate = 10, arrival = "gamma", burstiness = 4, seed = 1}, 20000))
  T.near(cv, 0.5, 0.03, "gamma k=4 cv")
  T.checkerr('arrival: expected "poisson", "constant" or "gamma"', load.open,
             {client = fake(0), rate = 1, arrival = "zipf", requests = 1})
end)

T.case("errors by kind, exceptions recorded, summary line", function()
  local n = 0
  local c = {chat = function(_, args)
    n = n + 1
    if n % 4 == 1 then return {ok = false, error = "timeout: first byte after 5 s", error_kind = "timeout", t_sent_ns = clock.now()} end
    if n % 4 == 2 then return {ok = false, error = "HTTP 503", status = 503, t_sent_ns = clock.now()} end
    if n % 4 == 3 then error("boom") end
    return {ok = true, t_sent_ns = clock.now(), ttft_ms = 1, e2el_ms = 2, output_tokens = 1}
  end}
  local r = load.closed{client = c, concurrency = 1, requests = 8}
  local s = r.summary
  T.eq(s.ok, 2, "ok")
  T.eq(s.errors.total, 6, "errors")
  T.eq(s.errors.by_kind.timeout, 2, "timeout")
  T.eq(s.errors.by_kind.http_503, 2, "http_503")
  T.eq(s.errors.by_kind.exception, 2, "exception")
  T.eq(summary.line(s):find("errors exception=2,http_503=2,timeout=2", 1, true) ~= nil, true, "line: " .. summary.line(s))
  T.checkerr("load.closed: every request raised an error; the first: exception: ",
             load.closed, {client = {chat = function() error("bad config") end}, requests = 2})
  T.checkerr("load.closed: expected requests = n or duration = seconds", load.closed, {client = c})
  T.checkerr("load.closed: client: expected a client with :chat", load.closed, {requests = 1})
  T.checkerr("concurrency: expected an integer >= 1", load.closed, {client = c, requests = 1, concurrency = 0})
end)

T.case("sweep: levels, scaling against the first, stop_when", function()
  local c = fake(0.01, 2)   -- two slots: throughput doubles from 1 to 2, then flat
  local levels = {}
  local rs = load.sweep{client = c, concurrency = {1, 2, 4, 8}, requests = 8,
                        on_level = function(r, k) levels[k] = r.level.concurrency end,
                        stop_when = function(r) return r.level.concurrency >= 4 end}
  T.eq(#rs, 3, "stopped after 4")
  T.eq(table.concat(levels, ","), "1,2,4", "on_level")
  T.eq(rs[1].summary.scaling.request_throughput, 1.0, "first level is 1")
  T.near(rs[2].summary.scaling.request_throughput, 2, 0.6, "2 slots: ~2x")
  T.near(rs[3].summary.scaling.request_throughput, 2, 0.6, "4 users on 2 slots: still ~2x")
  local t = summary.table(rs)
  T.eq(t:find("c=4", 1, true) ~= nil, true, "table rows")
  local ro = load.sweep{client = fake(0.001), rates = {50, 100}, requests = 5, arrival = "constant"}
  T.eq(ro[2].level.rate, 100, "rate sweep")
  T.eq(summary.table(ro):find("rate=100.00", 1, true) ~= nil, true, "rate rows")
end)

T.done()
