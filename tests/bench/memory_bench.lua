-- The client's memory over a long run (tools/bench-client.sh, load
-- "memory"): an open loop at RATE requests/s for SECONDS against `benchrun
-- sim`, records handed to on_record and dropped as a plan run does, the
-- client's resident memory sampled every SECONDS/30; then STREAMS paced
-- streams at once through load.closed and their peak. One JSON line each.
--
--   benchrun run tests/bench/memory_bench.lua URL RATE SECONDS STREAMS
local openai = require("bench.openai")
local load = require("bench.load")
local http = require("bench.http")
local clock = require("bench.clock")

local url, rate, seconds, streams = arg[1], tonumber(arg[2]), tonumber(arg[3]), tonumber(arg[4])
assert(url and rate and seconds and streams, "usage: memory_bench.lua URL RATE SECONDS STREAMS")
http.max_fds(streams * 2 + 256)

-- resident memory now (Linux /proc/self/statm; elsewhere the peak so far)
local page = 4096
local function rss_mb()
  local f = io.open("/proc/self/statm")
  if not f then return http.rusage().maxrss / 1048576 end
  local pages = tonumber(f:read("a"):match("^%d+%s+(%d+)"))
  f:close()
  return pages * page / 1048576
end

local client = openai.client{base_url = url, model = "m", timeout = {connect = 60, idle = 120}}
local prompt = {prompts = {{name = "hi", prompt = "hi"}}}

-- 1. the soak: RSS from its first minute (or first 1/30th) to its end
local done, n, samples = false, 0, {}
local sampler = bench.spawn(function()
  local every = math.max(1, seconds / 30)
  while not done do
    clock.sleep(every)
    collectgarbage()
    samples[#samples + 1] = {t = #samples * every + every, rss_mb = rss_mb()}
  end
end)
load.open{client = client, rate = rate, duration = seconds, arrival = "constant", max_tokens = 16, workload = prompt,
          on_record = function() n = n + 1 end}
done = true
sampler:cancel()
local first = samples[math.min(#samples, math.max(1, math.floor(60 / math.max(1, seconds / 30))))]
local last = samples[#samples]
print(json.encode{test = "open-loop soak", rate = rate, seconds = seconds, requests = n,
                  rss_first_mb = first and first.rss_mb, rss_last_mb = last and last.rss_mb,
                  change_pct = first and last and (last.rss_mb - first.rss_mb) / first.rss_mb * 100,
                  rss_mb_over_time = samples})
io.stdout:flush()

-- 2. many paced streams at once through load.closed: the peak
local peak, running = 0, true
local watch = bench.spawn(function()
  while running do
    local r = rss_mb()
    if r > peak then peak = r end
    clock.sleep(0.05)
  end
end)
local t0 = clock.now()
load.closed{client = client, concurrency = streams, requests = streams, max_tokens = 64, workload = prompt,
            on_record = function() end}
running = false
watch:cancel()
print(json.encode{test = "paced streams", streams = streams, seconds = (clock.now() - t0) / 1e9, rss_peak_mb = peak,
                  maxrss_mb = http.rusage().maxrss / 1048576})
