-- The client side of tools/bench-client.sh: N concurrent streamed chat
-- requests through bench.openai (bench.http, decode = "openai") against
-- `benchrun sim`, then one JSON line of figures: client CPU per token
-- (getrusage of this process, the simulator runs in its own), tokens/s,
-- peak RSS, and the client's timestamp error against the simulator's own
-- send times (sim_ns): ttft error = a stream's first token lag, itl error =
-- |difference of successive lags|.
--
--   benchrun run tests/bench/client_bench.lua URL STREAMS TOKENS [ROUNDS]
-- (each stream sends ROUNDS requests one after another: enough tokens for
-- getrusage's resolution when the streams are few and fast)
local openai = require("bench.openai")
local http = require("bench.http")
local clock = require("bench.clock")

local url, n, tokens, rounds = arg[1], tonumber(arg[2]), tonumber(arg[3]), tonumber(arg[4] or 1)
assert(url and n and tokens, "usage: client_bench.lua URL STREAMS TOKENS")
local fds = http.max_fds(n * 2 + 256)
if fds < n + 64 then error(string.format("only %d file descriptors for %d streams", fds, n)) end

local client = openai.client{base_url = url, model = "m", timeout = {connect = 60, idle = 120}}
local recs, tasks = {}, {}
collectgarbage()
local r0, t0 = http.rusage(), clock.now()
for i = 1, n do
  tasks[i] = bench.spawn(function()
    for k = 1, rounds do recs[(k - 1) * n + i] = client:chat{prompt = "hi", max_tokens = tokens} end
  end)
end
assert(bench.wait(tasks))
local wall_ns, r1 = clock.now() - t0, http.rusage()

local function pct(v, p)
  if #v == 0 then return 0 end
  table.sort(v)
  return v[math.max(1, math.min(#v, math.ceil(p * #v)))]
end

local got, ok, ttft_err, itl_err, errors = 0, 0, {}, {}, {}
for i = 1, n * rounds do
  local r = recs[i]
  if r.ok then ok = ok + 1 else errors[r.error] = (errors[r.error] or 0) + 1 end
  got = got + (r.content_events or 0) + (r.reasoning_events or 0)
  if r.sim_ttft_err_ms then ttft_err[#ttft_err + 1] = r.sim_ttft_err_ms end
  for _, e in ipairs(r.sim_itl_err_ms or {}) do itl_err[#itl_err + 1] = math.abs(e) end
end
local cpu_us = (r1.cpu_ns - r0.cpu_ns) / 1e3
local e = {}
for k, v in pairs(errors) do e[#e + 1] = k .. "=" .. v end
print(json.encode{
  client = "bench.openai", streams = n, ok = ok, requests = n * rounds, tokens = got, wall_s = wall_ns / 1e9,
  cpu_us_per_token = got > 0 and cpu_us / got or 0, tokens_per_s = got / (wall_ns / 1e9),
  maxrss_mb = r1.maxrss / 1048576,
  ttft_err_p50_ms = pct(ttft_err, 0.5), ttft_err_p99_ms = pct(ttft_err, 0.99),
  itl_err_p50_ms = pct(itl_err, 0.5), itl_err_p99_ms = pct(itl_err, 0.99),
  errors = #e > 0 and table.concat(e, ",") or nil,
})
