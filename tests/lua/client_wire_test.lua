-- Latencies start on the wire: a record's TTFT, TTFB and E2E count from the
-- moment its request was written, the client's own delay before that is
-- client_send_delay_ms, and the native transport writes in the call itself
-- (a kept connection, a loopback connect that completed), so work done by
-- other tasks after the call is not charged to the server.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local http = require("bench.http")
local openai = require("bench.openai")
local clock = require("bench.clock")

local sim <close> = T.sim{"--decode-tps", "500"}

T.case("a record's latencies count from the wire", function()
  local c = openai.client{base_url = sim.url, model = "m"}
  local r = c:chat{prompt = "hi", max_tokens = 4}
  T.eq(r.ok, true, "ok")
  T.eq(type(r.t_wire_sent_ns), "number", "the wire time")
  T.eq(r.t_latency_start_ns, r.t_wire_sent_ns, "latencies start there")
  T.eq(r.t_wire_sent_ns >= r.t_sent_ns, true, "after the call")
  T.eq(type(r.connect_ms), "number", "a new connection's handshake")
  T.near(r.client_send_delay_ms, (r.t_wire_sent_ns - r.t_sent_ns) / 1e6 - r.connect_ms, 1e-9,
         "send delay: from the call to the wire, less the handshake")
  T.near(r.ttfb_ms, (r.t_first_byte_ns - r.t_wire_sent_ns) / 1e6, 1e-9, "ttfb from the wire")
  T.near(r.e2el_ms, (r.t_end_ns - r.t_wire_sent_ns) / 1e6, 1e-9, "e2e from the wire")
end)

-- rawserver --slow-accept: its accept queue full for 300 ms, then a short
-- chat completion to every request -> the process (to close), its port
local function slow_accept_server()
  local proc = require("bench.proc")
  local portfile = T.tmpdir() .. "/port"
  local p = assert(proc.spawn{argv = {T.RAWSERVER, "--slow-accept", portfile, "300"}, stdout = "capture", stderr = "capture"})
  for _ = 1, 500 do
    local port = tonumber(T.read_file(portfile) or "")
    if port then return p, port end
    clock.sleep(0.01)
  end
  local tail = p:tail(20)
  p:stop(1)
  error("rawserver did not start: " .. tostring(tail), 2)
end

-- the kinds of a summary's delay warnings, "a,b"
local function warning_kinds(s)
  local kinds = {}
  for _, w in ipairs(require("bench.summary").delay_warnings(s)) do kinds[#kinds + 1] = w.kind end
  return table.concat(kinds, ",")
end

-- A server whose accept queue is full drops a connect's SYN; the kernel
-- sends it again a second later (llama-server listens with a backlog of 5:
-- 16 users starting at once on a CUDA llama-server waited 1,011 ms). That
-- wait is the server's: connect_ms, not the client's send delay, and the
-- cell says so.
for _, transport in ipairs{"native", "curl"} do
  T.case("a connect the server's full accept queue held: connect_ms, not the client's delay (" .. transport .. ")",
         function()
    local summary = require("bench.summary")
    local p <close>, port = slow_accept_server()
    local c = openai.client{base_url = "http://127.0.0.1:" .. port, model = "m", transport = transport}
    local r = c:chat{prompt = "hi", max_tokens = 2, stream = false}
    T.eq(r.ok, true, "answered: " .. tostring(r.error_detail or r.error))
    assert(r.connect_ms and r.connect_ms > 500, "the handshake waited for the SYN's retry: " .. tostring(r.connect_ms))
    assert(r.client_send_delay_ms < 100, "not the client's delay: " .. tostring(r.client_send_delay_ms))
    T.eq(warning_kinds(summary.of({r})), "slow_connect", "the cell's warning names the server's accept")
  end)
end

-- A closed loop's first wave connects every user ahead of its write
-- (http.prepare's req:connect): a connect the full accept queue held is
-- still the server's wait, connect_ms, and none of it the client's.
T.case("a closed loop's first wave against a full accept queue: connected ahead, the wait is connect_ms", function()
  local load = require("bench.load")
  local p <close>, port = slow_accept_server()
  local c = openai.client{base_url = "http://127.0.0.1:" .. port, model = "m"}
  -- two users: the queue holds one connection, so the second's SYN is
  -- dropped again until the first is served (a retry 1 s, then 2 s later)
  local res = load.closed{client = c, concurrency = 2, requests = 2, max_tokens = 2, keep_records = true,
                          workload = {prompts = {{name = "hi", prompt = "hi"}}},
                          request = function(args) args.stream = false return args end}
  T.eq(res.summary.ok, 2, "all answered")
  local held = 0
  for _, r in ipairs(res.records) do
    if r.connect_ms and r.connect_ms > 500 then held = held + 1 end
    assert(r.client_send_delay_ms < 100, "not the client's delay: " .. tostring(r.client_send_delay_ms))
  end
  assert(held > 0, "some connects waited for their SYN's retry")
  T.eq(warning_kinds(res.summary), "slow_connect", "the cell's warning names the server's accept")
end)

-- Requests that start together with no model named ask /v1/models once:
-- the others wait for that listing (the first wave of a closed loop).
T.case("the first wave asks /v1/models once", function()
  local send = T.send_step
  local models = '{"object":"list","data":[{"id":"only-model"}]}'
  local answer = '{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"x"},' ..
                 '"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}'
  local function whole(body)
    return send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " ..
                #body .. "\r\n\r\n" .. body)
  end
  local steps = {"expect-request", whole(models), "close"}
  for _ = 1, 4 do
    for _, st in ipairs{"expect-request", whole(answer), "close"} do steps[#steps + 1] = st end
  end
  local s <close> = T.raw(steps)
  local load = require("bench.load")
  local c = openai.client{base_url = s.url}
  local res = load.closed{client = c, concurrency = 4, requests = 4, max_tokens = 1, keep_records = true,
                          workload = {prompts = {{name = "hi", prompt = "hi"}}},
                          request = function(args) args.stream = false return args end}
  T.eq(res.summary.ok, 4, "all answered")
  local log = s.log()
  T.eq(select(2, log:gsub("GET /v1/models", "")), 1, "one listing")
  T.eq(select(2, log:gsub('"model":"only%-model"', "")), 4, "every request names the listed model")
end)

-- busy(ms): hold the only thread, as a slow on_record of another request would
local function busy(ms)
  local t = clock.now() + ms * 1e6
  while clock.now() < t do end
end

for _, kept in ipairs{true, false} do
  T.case((kept and "a kept connection" or "a new loopback connection") ..
         ": the request is written in the call, before other tasks run", function()
    -- a kept connection: one request before leaves it in the pool; a new
    -- one: a server nobody has talked to yet
    local fresh <close> = not kept and T.sim{} or nil
    local url = kept and sim.url or fresh.url
    if kept then http.request{url = url .. "/health"} end
    local r
    local a = bench.spawn(function() r = http.request{url = url .. "/health", transport = "native"} end)
    local b = bench.spawn(function() busy(200) end)
    bench.wait(a, b)
    T.eq(r.status, 200, "status")
    T.eq(r.reused == true, kept, "reused")
    local delay = (r.timings.sent - r.timings.start) / 1e6
    -- before: the write waited for the loop, after task b's 200 ms
    T.eq(delay < 100, true, string.format("sent %.3f ms after the call", delay))
  end)
end

T.case("open loop: latencies from the schedule include the send delay", function()
  local load = require("bench.load")
  local c = openai.client{base_url = sim.url, model = "m"}
  local res = load.open{client = c, rate = 50, requests = 4, arrival = "constant", max_tokens = 2,
                        workload = {prompts = {{name = "a", prompt = "hi"}}}}
  for _, rec in ipairs(res.records) do
    T.eq(rec.ok, true, "ok")
    T.near(rec.ttft_from_scheduled_ms, rec.ttft_ms + (rec.t_wire_sent_ns - rec.t_scheduled_ns) / 1e6, 1e-6,
           "ttft from the schedule")
  end
  T.eq(type(res.summary.client_send_delay_ms), "table", "summarised per level")
end)

-- A step that runs many ready tasks (a thousand requests started together,
-- a thousand slow on_record callbacks) reads ready sockets between them:
-- left unread, a stream's socket queues several events, and Linux stamps the
-- read that takes them all with the last one's arrival, so its first token
-- looked late by the gaps between them (17-60 ms at 1,024 starts).
T.case("the loop reads between tasks: a long step leaves no stream unread", function()
  local slow <close> = T.sim{"--prefill-tps", "5", "--decode-tps", "50"}   -- 200 ms to the first token
  local c = openai.client{base_url = slow.url, model = "m"}
  local events = 0
  local r = bench.spawn(function()
    return c:chat{prompt = "hi", max_tokens = 2, on_event = function() events = events + 1 end}
  end)
  clock.sleep(0.02)   -- the request is on the wire; its first token is due in ~180 ms
  T.eq(events, 0, "no event yet")
  local seen
  -- a and b run in one step; before, b ran right after a's second, the event unread
  local a = bench.spawn(function() busy(1000) end)
  local b = bench.spawn(function() seen = events end)
  bench.wait(a, b, r)
  T.eq(r:join().ok, true, "the request")
  T.eq(seen > 0, true, "events read while the step ran: " .. seen)
end)

T.done()
