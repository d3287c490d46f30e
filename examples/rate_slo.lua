-- An open-loop rate sweep: send requests at rising rates (Poisson
-- arrivals, scheduled ahead) and find the highest rate whose p95 time to
-- first token stays under the SLO. Latencies are measured from each
-- request's intended send time, so a server that falls behind cannot hide
-- it (no coordinated omission).
--
--   benchrun run examples/rate_slo.lua [URL] [ttft_p95_seconds]
local probe = require("bench.probe")
local load = require("bench.load")
local summary = require("bench.summary")
local workload = require("bench.workload")

local srv <close> = probe.target(arg and arg[1], {"--decode-tps", "400", "--slots", "2"})
local slo = {ttft_p95 = tonumber(arg and arg[2]) or 0.25}
local client = assert(probe.client(srv))

local best
local results = load.sweep{
  client = client,
  rates = {2, 4, 8, 16, 32},          -- requests per second
  arrival = "poisson", seed = 3,
  duration = 1.5,                    -- seconds of arrivals per level
  workload = workload.synthetic{input = 32, output = 40, seed = 1},
  slo = slo,
  on_level = function(r)
    local s = r.summary
    io.stderr:write(string.format("rate %5.1f/s: ttft p95 %.0f ms (from schedule), goodput %.2f req/s, %s\n",
      r.level.rate, (s.slo.ttft_p95.value or 0 / 0) * 1e3, s.goodput or 0, s.slo_met and "meets the SLO" or "misses"))
    if s.slo_met then best = r.level.rate end
  end,
  stop_when = function(r) return not r.summary.slo_met end,   -- past the knee: stop
}
print(summary.table(results))
if best then
  print(string.format("highest rate meeting ttft p95 <= %g s: %g req/s", slo.ttft_p95, best))
else
  print(string.format("no rate met ttft p95 <= %g s", slo.ttft_p95))
end
