-- Compare two servers on exactly the same prompts (the seed's five, then a
-- burst of 4 at once), one row per metric with the ratio B/A.
--
--   benchrun run examples/compare_servers.lua [URL_A URL_B]
--
-- Without URLs it starts two simulators: B decodes 50% faster.
local probe = require("bench.probe")
local load = require("bench.load")
local workload = require("bench.workload")

local a <close> = probe.target(arg and arg[1], {"--decode-tps", "200", "--slots", "4"})
local b <close> = probe.target(arg and arg[2], {"--decode-tps", "300", "--slots", "4"})

local w = workload.seed{max_tokens = 40}   -- the same requests, index for index
local function run(url)
  local client = assert(probe.client(url))
  local single = load.closed{client = client, concurrency = 1, requests = 5, workload = w}
  local burst = load.closed{client = client, concurrency = 4, requests = 8, workload = w}
  return single.summary, burst.summary
end

local sa, ba = run(a.url)
local sb, bb = run(b.url)

local rows = {
  {"ttft p50 (ms), 1 user", sa.ttft_ms and sa.ttft_ms.p50, sb.ttft_ms and sb.ttft_ms.p50},
  {"decode tok/s p50, 1 user", sa.decode_tps and sa.decode_tps.p50, sb.decode_tps and sb.decode_tps.p50},
  {"e2e p50 (ms), 1 user", sa.e2el_ms and sa.e2el_ms.p50, sb.e2el_ms and sb.e2el_ms.p50},
  {"output tok/s, 4 users", ba.output_tps, bb.output_tps},
  {"ttft p99 (ms), 4 users", ba.ttft_ms and ba.ttft_ms.p99, bb.ttft_ms and bb.ttft_ms.p99},
}
print(string.format("A = %s\nB = %s\n", a.url, b.url))
print(string.format("%-26s %10s %10s %7s", "metric", "A", "B", "B/A"))
for _, r in ipairs(rows) do
  local ratio = (r[2] and r[3] and r[2] ~= 0) and string.format("%.2f", r[3] / r[2]) or "-"
  print(string.format("%-26s %10.1f %10.1f %7s", r[1], r[2] or 0 / 0, r[3] or 0 / 0, ratio))
end
if sa.ok ~= 5 or sb.ok ~= 5 then os.exit(1) end
