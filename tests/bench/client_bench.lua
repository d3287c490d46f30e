-- The client side of tools/bench-client.sh: N concurrent streamed chat
-- requests through bench.openai (bench.http, decode = "openai") and
-- load.closed (the path a user's script takes: records summarised as they
-- come) against `benchrun sim`, then one JSON line of figures: client CPU per token
-- (getrusage of this process, the simulator runs in its own), tokens/s,
-- peak RSS, and the client's timestamp error against the simulator's own
-- send times (sim_ns): ttft error = a stream's first token lag, itl error =
-- |difference of successive lags|.
--
--   benchrun run tests/bench/client_bench.lua URL STREAMS TOKENS [ROUNDS [PATH]]
-- (each stream sends ROUNDS requests one after another: enough tokens for
-- getrusage's resolution when the streams are few and fast; PATH "load"
-- (default): load.closed with STREAMS users, "http": one task per stream
-- calling the client directly)
local openai = require("bench.openai")
local http = require("bench.http")
local clock = require("bench.clock")
local stats = require("bench.stats")

local load = require("bench.load")

local url, n, tokens, rounds = arg[1], tonumber(arg[2]), tonumber(arg[3]), tonumber(arg[4] or 1)
local path = arg[5] or "load"
assert(url and n and tokens, "usage: client_bench.lua URL STREAMS TOKENS")
local fds = http.max_fds(n * 2 + 256)
if fds < n + 64 then error(string.format("only %d file descriptors for %d streams", fds, n)) end

local client = openai.client{base_url = url, model = "m", timeout = {connect = 60, idle = 120}}

-- Records are reduced as they come (histograms, counts) and dropped, as a
-- runner that writes them out would; the CPU this bookkeeping takes is
-- measured and taken out of the client's figure.
local H = {lowest = 1e-4, highest = 1e6, digits = 2}
local ttft_err, itl_err = stats.histogram(H), stats.histogram(H)
local got, ok, errors, harness_ns = 0, 0, {}, 0
local function reduce(r)
  local c0 = http.rusage().cpu_ns
  if r.ok then ok = ok + 1 else errors[r.error] = (errors[r.error] or 0) + 1 end
  got = got + (r.content_events or 0) + (r.reasoning_events or 0)
  if r.sim_ttft_err_ms then ttft_err:add(math.max(0, r.sim_ttft_err_ms)) end
  for _, e in ipairs(r.sim_itl_err_ms or {}) do itl_err:add(math.abs(e)) end
  harness_ns = harness_ns + (http.rusage().cpu_ns - c0)
end

collectgarbage()
local r0, t0 = http.rusage(), clock.now()
if path == "load" then
  load.closed{client = client, concurrency = n, requests = n * rounds, max_tokens = tokens,
              workload = {prompts = {{name = "hi", prompt = "hi"}}}, on_record = reduce}
else
  local tasks = {}
  for i = 1, n do
    tasks[i] = bench.spawn(function()
      for _ = 1, rounds do reduce(client:chat{prompt = "hi", max_tokens = tokens}) end
    end)
  end
  assert(bench.wait(tasks))
end
local wall_ns, r1 = clock.now() - t0, http.rusage()

local cpu_us = (r1.cpu_ns - r0.cpu_ns - harness_ns) / 1e3
local e = {}
for k, v in pairs(errors) do e[#e + 1] = k .. "=" .. v end
local function p(h, q) return h:count() > 0 and h:percentile(q) or 0 end
print(json.encode{
  client = path == "load" and "openai+load" or "bench.openai", streams = n, ok = ok, requests = n * rounds, tokens = got, wall_s = wall_ns / 1e9,
  cpu_us_per_token = got > 0 and cpu_us / got or 0, tokens_per_s = got / (wall_ns / 1e9),
  maxrss_mb = r1.maxrss / 1048576, harness_cpu_ms = harness_ns / 1e6,
  ttft_err_p50_ms = p(ttft_err, 50), ttft_err_p99_ms = p(ttft_err, 99),
  itl_err_p50_ms = p(itl_err, 50), itl_err_p99_ms = p(itl_err, 99),
  errors = #e > 0 and table.concat(e, ",") or nil,
})
