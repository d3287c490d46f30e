-- The TTFT a user reads, against the server's true one (tools/bench-client.sh,
-- load "ttft"): N requests started together against `benchrun sim`, whose
-- first event says when each request arrived (sim_arrival_ns) and when its
-- first token left (sim_ns). Per request:
--   server TTFT  = first token sent − request arrived      (the sim's clock)
--   send side    = request arrived − request on the wire   (benchrun's write → the sim's read)
--   receive side = first token received − first token sent
--   error        = benchrun's TTFT − server TTFT = send side + receive side
--   call error   = error + client_send_delay_ms             (from the Lua call, as a user sees it)
-- Both waves (new connections, then kept ones), through bench.openai
-- directly and through load.closed, with and without an on_record that
-- spends 100 µs per record. One JSON line per run.
--
--   benchrun run tests/bench/ttft_bench.lua PORT STREAMS TOKENS
local openai = require("bench.openai")
local load = require("bench.load")
local http = require("bench.http")
local clock = require("bench.clock")
local stats = require("bench.stats")

local port, n, tokens = tonumber(arg[1]), tonumber(arg[2]), tonumber(arg[3])
assert(port and n and tokens, "usage: ttft_bench.lua PORT STREAMS TOKENS")
local fds = http.max_fds(n * 2 + 256)
if fds < n + 64 then error(string.format("only %d file descriptors for %d streams", fds, n)) end

local function busy_us(us)
  local t = clock.now() + us * 1000
  while clock.now() < t do end
end

local H = {lowest = 1e-4, highest = 1e6, digits = 2}
local function p(h, q) return h:count() > 0 and h:percentile(q) or 0 end

-- each run on its own loopback address, so its first wave opens new connections
local host_n = 1
local function run(path, slow)
  host_n = host_n + 1
  local client = openai.client{base_url = string.format("http://127.0.0.%d:%d", host_n, port), model = "m",
                               timeout = {connect = 60, idle = 120}}
  for wave = 1, 2 do
    local hs = {send = stats.histogram(H), recv = stats.histogram(H), err = stats.histogram(H),
                call = stats.histogram(H), delay = stats.histogram(H)}
    local ok, bad = 0, 0
    local function reduce(r)
      if slow then busy_us(100) end
      if not (r.ok and r.sim_arrival_ns and r.sim_ttft_err_ms and r.ttft_ms) then bad = bad + 1 return end
      ok = ok + 1
      local send = (r.sim_arrival_ns - r.t_latency_start_ns) / 1e6
      local err = send + r.sim_ttft_err_ms
      hs.send:add(math.max(0, send))
      hs.recv:add(math.max(0, r.sim_ttft_err_ms))
      hs.err:add(math.max(0, err))
      hs.call:add(math.max(0, err + (r.client_send_delay_ms or 0)))
      hs.delay:add(math.max(0, r.client_send_delay_ms or 0))
    end
    local args = {prompt = "hi", max_tokens = tokens}
    if path == "http" then
      local tasks = {}
      for i = 1, n do tasks[i] = bench.spawn(function() reduce(client:chat(args)) end) end
      assert(bench.wait(tasks))
    else
      load.closed{client = client, concurrency = n, requests = n, max_tokens = tokens,
                  workload = {prompts = {{name = "hi", prompt = "hi"}}}, on_record = reduce}
    end
    print(json.encode{
      path = path == "http" and "bench.http" or "load.closed", wave = wave == 1 and "new" or "kept",
      slow_on_record = slow, streams = n, ok = ok, failed = bad,
      err_p50_ms = p(hs.err, 50), err_p99_ms = p(hs.err, 99),
      send_p50_ms = p(hs.send, 50), send_p99_ms = p(hs.send, 99),
      recv_p50_ms = p(hs.recv, 50), recv_p99_ms = p(hs.recv, 99),
      call_err_p50_ms = p(hs.call, 50), call_err_p99_ms = p(hs.call, 99),
      send_delay_p99_ms = p(hs.delay, 99)})
    io.stdout:flush()
  end
end

for _, path in ipairs{"http", "load"} do
  for _, slow in ipairs{false, true} do run(path, slow) end
end
