-- bench.summary on hand-made records: distributions, throughput over wall
-- time, SLOs (level-wide) and goodput (per request), fairness, by_name,
-- warm-up exclusion and error kinds.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local summary = require("bench.summary")

local function rec(i, o)
  local r = {ok = true, index = i, name = "a", t_sent_ns = i * 1000000000, ttft_ms = 100 * i,
             e2el_ms = 1000, tpot_ms = 10, itl_ms = {10, 10, 20}, output_tokens = 50,
             prompt_tokens = 7, decode_tps = 100, token_source = "usage", finish_reason = "stop"}
  for k, v in pairs(o or {}) do r[k] = v end
  return r
end

T.case("distributions, totals and rates", function()
  local rs = {}
  for i = 1, 10 do rs[i] = rec(i) end
  rs[11] = rec(11, {warmup = true, ttft_ms = 1e6})
  local s = summary.of(rs, {wall_s = 5})
  T.eq(s.requests, 10, "warm-up left out")
  T.eq(s.ok, 10, "ok")
  T.near(s.ttft_ms.p50, 500, 0.5, "ttft p50 (nearest rank)")
  T.near(s.ttft_ms.p90, 900, 0.5, "ttft p90")
  T.near(s.ttft_ms.p99, 1000, 0.5, "ttft p99")
  T.eq(s.ttft_ms.min, 100, "min")
  T.eq(s.ttft_ms.max, 1000, "max")
  T.eq(s.ttft_ms.n, 10, "n")
  T.near(s.ttft_ms.mean, 550, 1e-9, "mean")
  T.eq(s.itl_ms.n, 30, "every gap of every request")
  T.near(s.itl_ms.p90, 20, 0.02, "itl p90")
  T.eq(s.output_tokens_total, 500, "tokens")
  T.eq(s.prompt_tokens_total, 70, "prompt tokens")
  T.eq(s.output_tps, 100, "output tps over wall_s")
  T.eq(s.request_throughput, 2, "req/s")
  T.eq(s.wall_s, 5, "wall_s given")
  T.eq(s.token_sources.usage, 10, "sources")
  T.eq(s.finish_reasons.stop, 10, "finish reasons")
  T.eq(s.fairness.jain, 1.0, "equal tps: jain 1")
  T.near(s.fairness.p99_p50, 1, 0.01, "equal tpot")
  T.eq(s.by_name, nil, "one name: no breakdown")
  -- wall from the records: first send (1 s) to last end (10 s + 1 s)
  T.near(summary.of(rs).wall_s, 10, 1e-9, "wall_s from the records' span")
end)

T.case("SLOs: level-wide percentiles; goodput: requests one by one", function()
  local rs = {}
  for i = 1, 10 do rs[i] = rec(i, {tpot_ms = i <= 8 and 50 or 200}) end
  local s = summary.of(rs, {wall_s = 10, slo = {ttft_p50 = 0.6, tpot_p95 = "100ms", decode_tps_p90 = 50}})
  T.eq(s.slo.ttft_p50.met, true, "ttft p50 500 ms <= 600 ms")
  T.near(s.slo.ttft_p50.value, 0.5, 0.001, "value in seconds")
  T.eq(s.slo.tpot_p95.met, false, "tpot p95 200 ms > 100 ms")
  T.near(s.slo.tpot_p95.target, 0.1, 1e-12, "\"100ms\" parsed")
  T.eq(s.slo.decode_tps_p90.met, true, "decode tps is a lower bound")
  T.eq(s.slo_met, false, "not every SLO met")
  -- per request: ttft <= 0.6 s (i <= 6) and tpot <= 0.1 s (i <= 8) -> 6
  T.eq(s.good_requests, 6, "good requests")
  T.near(s.goodput, 0.6, 1e-12, "goodput")
  T.checkerr('slo.e2e_p99: unknown metric "e2e"', summary.of, rs, {slo = {e2e_p99 = 1}})
  T.checkerr("slo.ttft_p95: expected seconds", summary.of, rs, {slo = {ttft_p95 = "soon"}})
end)

T.case("open-loop records are judged from the schedule", function()
  local rs = {}
  for i = 1, 4 do rs[i] = rec(i, {ttft_from_scheduled_ms = 100 * i + 1000, send_lag_ms = 1000}) end
  local s = summary.of(rs, {wall_s = 4, slo = {ttft_p50 = 0.5}})
  T.eq(s.slo.ttft_p50.met, false, "corrected p50 1.2 s > 0.5 s")
  T.eq(s.good_requests, 0, "no request meets it from the schedule")
  T.eq(s.send_lag_ms.p50, 1000, "send lag")
end)

T.case("errors by kind, fairness of a mix, by_name", function()
  local rs = {
    rec(1, {name = "short", decode_tps = 100}), rec(2, {name = "long", decode_tps = 25}),
    {ok = false, error = "timeout_first_byte", error_kind = "timeout_first_byte", name = "long"},
    {ok = false, error = "server said no", status = 503, name = "short"},
    {ok = false, error = "whatever", error_kind = "exception"},
    {ok = false},
    {ok = false, error = "refused: nobody listens"},
  }
  local s = summary.of(rs, {wall_s = 1})
  T.eq(s.requests, 7, "requests")
  T.eq(s.errors.total, 5, "errors")
  T.eq(s.errors.by_kind.timeout_first_byte, 1, "transport kind")
  T.eq(s.errors.by_kind.http_503, 1, "status")
  T.eq(s.errors.by_kind.exception, 1, "explicit kind")
  -- no error, and a message string: no kind, and its words are not read
  T.eq(s.errors.by_kind.error, 2, "no error text, and a message string")
  T.eq(s.errors.by_kind.refused, nil, "a message's first word is not a kind")
  -- an error value is classified by its kind, never by its words
  local ev = summary.of({{ok = false, error = require("bench.errors").new("model_missing", "refused: no such model")},
                         {ok = false, error = {err = "timeout: slow", kind = "overloaded"}}}, {wall_s = 1})
  T.eq(ev.errors.by_kind.model_missing, 1, "bench.errors value")
  T.eq(ev.errors.by_kind.overloaded, 1, "a {err, kind} table")
  T.eq(ev.errors.by_kind.refused, nil, "not its first word")
  T.eq(s.ttft_ms.n, 2, "latencies from successes only")
  T.near(s.fairness.jain, (125 ^ 2) / (2 * (100 ^ 2 + 25 ^ 2)), 1e-12, "jain of 100 and 25")
  T.eq(s.by_name.short.requests, 2, "by_name short")
  T.eq(s.by_name.long.ok, 1, "by_name long ok")
  T.eq(s.by_name.long.decode_tps.p50, 25, "by_name distribution")
end)

T.case("an accumulator gives summary.of's result without keeping records", function()
  local rs = {}
  for i = 1, 40 do
    rs[i] = rec(i, {name = i % 2 == 0 and "a" or "b", decode_tps = 50 + i, ok = i % 7 ~= 0,
                    error = i % 7 == 0 and "reset" or nil, burst = i == 3 or nil})
  end
  local opts = {slo = {ttft_p95 = 2.0, tpot_p95 = "100ms"}}
  local whole = summary.of(rs, opts)
  local acc = summary.accumulator(opts)
  for _, r in ipairs(rs) do acc:add(r) end
  local inc = acc:result()
  T.eq(json.encode(inc), json.encode(whole), "same summary")
  T.eq(rawget(acc, "records"), nil, "no record list")
  T.near(inc.fairness.jain, stats.jain((function()
    local l = {}
    for _, r in ipairs(rs) do if r.ok then l[#l + 1] = r.decode_tps end end
    return l
  end)()), 1e-12, "Jain's index from running sums")
  T.eq(inc.flags.burst, 1, "flags counted")
end)

T.case("a workload of many distinct prompts keeps no per-name table", function()
  local acc = summary.accumulator{}
  for i = 1, summary.MAX_BY_NAME + 10 do acc:add(rec(i, {name = "p" .. i})) end
  local s = acc:result()
  T.eq(s.by_name, nil, "no by_name past MAX_BY_NAME")
  T.eq(next(acc.by_name), nil, "and no accumulators kept")
  T.eq(s.requests, summary.MAX_BY_NAME + 10, "every record counted")
end)

T.case("scaling, empty input, line", function()
  local a = summary.of({rec(1)}, {wall_s = 1})
  local b = summary.of({rec(1), rec(2), rec(3)}, {wall_s = 1})
  local sc = summary.scaling(b, a)
  T.eq(sc.output_tps, 3, "output tps ratio")
  T.eq(sc.request_throughput, 3, "req/s ratio")
  local e = summary.of({})
  T.eq(e.requests, 0, "empty")
  T.eq(e.ttft_ms, nil, "no distribution")
  T.eq(e.output_tps, nil, "no wall")
  T.eq(summary.line(b):sub(1, 7), "3/3 ok ", "line")
end)

T.done()
