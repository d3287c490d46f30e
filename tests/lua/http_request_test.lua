-- bench.http against `benchrun sim` over loopback: plain and streamed
-- requests, timings, SSE and NDJSON decoding, errors of every kind the
-- simulator can produce, concurrency, cancellation and on_event.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local http = require("bench.http")
local clock = require("bench.clock")

local sim <close> = T.sim{"--decode-tps", "1000", "--slots", "64"}
local fast <close> = T.sim{"--decode-tps", "0", "--slots", "256", "--prefill-tps", "1000000"}

local function chat_body(n, extra)
  local b = {model = "m", stream = true, max_tokens = n, messages = {{role = "user", content = "hi"}},
             stream_options = {include_usage = true}}
  for k, v in pairs(extra or {}) do b[k] = v end
  return json.encode(b)
end

local JSON = {["Content-Type"] = "application/json"}

local function chat(url, n, opts)
  local req = {url = url .. "/v1/chat/completions", body = chat_body(n), headers = {["Content-Type"] = "application/json"},
               stream = "sse", decode = "openai", timeout = {connect = 5, first_byte = 10, idle = 10}}
  for k, v in pairs(opts or {}) do req[k] = v end
  return http.request(req)
end

T.case("GET on the main thread: status, headers, body, ordered timings", function()
  local r = http.request{url = sim.url .. "/v1/models"}
  T.eq(r.error, nil, "error")
  T.eq(r.status, 200, "status")
  T.eq(r.headers["content-type"]:match("^application/json") ~= nil, true, "content-type header")
  T.eq(json.decode(r.body).object, "list", "body")
  local t = r.timings
  assert(t.start <= t.first_byte and t.first_byte <= t["end"], "start <= first_byte <= end")
  if t.connect then assert(t.start <= t.connect and t.connect <= t.first_byte, "connect between start and first byte") end
  if t.sent then assert(t.sent <= t.first_byte, "sent before first byte") end
  local r2 = http.request{url = sim.url .. "/v1/models"}
  T.eq(r2.reused, true, "second request reuses the connection")
  -- this file runs twice: plain http:// to an address takes the native
  -- transport unless BENCHRUN_HTTP_TRANSPORT=curl
  local want = os.getenv("BENCHRUN_HTTP_TRANSPORT") == "curl" and "curl" or "native"
  T.eq(r.transport, want, "transport")
  T.eq(r2.transport, want, "transport of the second")
end)

T.case("SSE events, raw, in arrival order", function()
  local r = http.request{url = sim.url .. "/v1/chat/completions", body = chat_body(6), headers = JSON, stream = "sse"}
  T.eq(r.error, nil, "error")
  T.eq(r.body, nil, "no body for a stream")
  -- role chunk + 6 tokens + usage chunk + [DONE]
  T.eq(#r.events, 9, "events")
  T.eq(r.events[#r.events].data, "[DONE]", "last event")
  for i = 2, #r.events do assert(r.events[i].t >= r.events[i - 1].t, "arrival times are monotonic") end
  T.eq(#r.timings.events, 9, "timings.events")
  assert(r.events[1].t >= r.timings.first_byte, "events after the first byte")
end)

T.case("decode = openai: text, tokens, usage, sim_ns lag", function()
  local r = chat(sim.url, 16)
  T.eq(r.error, nil, "error")
  local m = r.llm
  T.eq(m.tokens, 16, "token events")
  T.eq(#m.itl_ms, 15, "a gap between each two tokens")
  T.eq(m.content_events, 16, "content events")
  T.eq(m.done, true, "done")
  T.eq(m.finish_reason, "length", "finish_reason")
  T.eq(json.decode(m.usage).completion_tokens, 16, "usage")
  assert(#m.content > 16, "content text")
  assert(m.sim_ttft_err_ms >= 0 and m.sim_ttft_err_ms < 5000, "first token's lag is sane: " .. m.sim_ttft_err_ms)
  T.eq(#m.sim_itl_err_ms, 15, "an itl error per gap")
  assert(m.sim_lag_max_ms >= m.sim_ttft_err_ms, "max lag")
  T.eq(r.events, nil, "no raw events unless raw = true")
  local r2 = chat(sim.url, 4, {raw = true})
  T.eq(#r2.events, 7, "raw events kept on request")
  T.eq(#r2.llm.token_t, 4, "token arrival times with raw")
  T.eq(#r2.llm.sim_lag_ns, 4, "a lag per token with raw")
  for _, lag in ipairs(r2.llm.sim_lag_ns) do assert(lag >= 0 and lag < 5e9, "lag is sane: " .. lag) end
end)

T.case("NDJSON (Ollama native)", function()
  local o <close> = T.sim{"--dialect", "ollama", "--decode-tps", "1000"}
  local body = json.encode{model = "m", stream = true, messages = {{role = "user", content = "hi"}},
                           options = {num_predict = 5}}
  local r = http.request{url = o.url .. "/api/chat", body = body, headers = JSON, stream = "ndjson", decode = "ollama"}
  T.eq(r.error, nil, "error")
  T.eq(r.llm.tokens, 5, "tokens")
  T.eq(r.llm.done, true, "done")
  T.eq(json.decode(r.llm.final).eval_count, 5, "final object")
  local raw = http.request{url = o.url .. "/api/chat", body = body, headers = JSON, stream = "ndjson"}
  T.eq(#raw.events, 6, "raw NDJSON lines")
end)

T.case("refused connection", function()
  local r = http.request{url = "http://127.0.0.1:1/v1/models"}
  T.eq(r.error, "refused", "error")
  T.eq(r.status, 0, "status")
  assert(r.error_detail, "a detail")
end)

T.case("faults of the simulator, each a result with its reason", function()
  local cases = {
    {"http500", "http_500"}, {"http503", "http_503"}, {"stall-first-byte", "timeout_first_byte"},
    {"stall-mid", "timeout_idle"}, {"drop", "truncated"}, {"content-type", "bad_content_type"},
    {"huge-event", "event_too_large"}, {"endless-line", "event_too_large"}, {"refuse", "reset"},
  }
  for _, c in ipairs(cases) do
    local r = chat(sim.url, 32, {headers = {["Content-Type"] = "application/json", ["X-Sim-Fault"] = c[1]},
                                 timeout = {connect = 5, first_byte = 0.3, idle = 0.3, total = 20}})
    T.eq(r.error, c[2], "error for fault " .. c[1])
    if c[2]:match("^http_") then
      assert(#r.body > 0 and #r.body <= 16384, "error body kept for " .. c[1])
    end
  end
  local r = chat(sim.url, 8, {headers = {["Content-Type"] = "application/json", ["X-Sim-Fault"] = "bad-json"}})
  T.eq(r.error, nil, "bad-json is not a transport error")
  assert(r.llm.bad_json > 0, "bad json counted")
  local r2 = chat(sim.url, 100000, {timeout = {total = 0.2}})
  T.eq(r2.error, "timeout_total", "total timeout")
  local r3 = chat(sim.url, 64, {max_event_bytes = 64})
  T.eq(r3.error, "event_too_large", "max_event_bytes")
end)

T.case("many concurrent streams", function()
  local n = os.getenv("BENCHRUN_SANITIZED") and 100 or 400
  local tasks, results = {}, {}
  for i = 1, n do
    tasks[i] = bench.spawn(function()
      results[i] = chat(fast.url, 32)
    end)
  end
  local ok, err = bench.wait(tasks)
  assert(ok, err)
  local good, tokens = 0, 0
  for i = 1, n do
    if results[i].error == nil then good = good + 1 end
    tokens = tokens + results[i].llm.tokens
  end
  T.eq(good, n, "requests without error")
  T.eq(tokens, n * 32, "tokens")
  T.eq(http.active(), 0, "nothing left in flight")
end)

T.case("cancellation of a task in flight", function()
  local t = bench.spawn(function()
    return chat(sim.url, 8, {headers = {["Content-Type"] = "application/json", ["X-Sim-Fault"] = "stall-first-byte"},
                             timeout = {first_byte = 30}})
  end)
  bench.spawn(function()
    clock.sleep(0.05)
    T.eq(http.active(), 1, "one transfer in flight")
    t:cancel()
  end):join()
  bench.wait(t)
  T.eq(t:status(), "cancelled", "task status")
  T.eq(http.active(), 0, "the transfer left the multi handle")
  -- the connection machinery still works afterwards
  T.eq(chat(sim.url, 2).error, nil, "a request after cancellation")
end)

T.case("on_event: per event, can stop, errors are results", function()
  local seen, content = 0, {}
  local r = chat(sim.url, 5, {on_event = function(ev)
    seen = seen + 1
    assert(math.type(ev.t) == "integer", "ev.t")
    if ev.content then content[#content + 1] = ev.content end
  end})
  T.eq(r.error, nil, "error")
  T.eq(seen, r.event_count, "on_event calls")
  T.eq(table.concat(content), r.llm.content, "content deltas")
  local n = 0
  local r2 = chat(sim.url, 50, {on_event = function(ev) n = n + 1; if n == 3 then return false end end})
  T.eq(r2.error, "stopped", "returning false stops")
  T.eq(n, 3, "no events after stopping")
  local r3 = chat(sim.url, 5, {on_event = function() error("boom") end})
  T.eq(r3.error, "on_event", "an error in on_event")
  assert(r3.error_detail:find("boom", 1, true), "detail has the message")
  local r4 = chat(sim.url, 5, {on_event = function() http.request{url = sim.url} end})
  T.eq(r4.error, "on_event", "no requests from on_event")
  assert(r4.error_detail:find("inside on_event", 1, true), r4.error_detail)
end)

T.case("a caller's mistakes raise", function()
  T.checkerr("expected a url field", http.request, {})
  T.checkerr("stream: expected", http.request, {url = sim.url, stream = "xml"})
  T.checkerr("decode needs stream", http.request, {url = sim.url, decode = "openai"})
  T.checkerr("timeout.idle: expected seconds", http.request, {url = sim.url, timeout = {idle = -1}})
  T.checkerr("headers: expected a table", http.request, {url = sim.url, headers = "x"})
end)

T.case("TLS: verification on by default, insecure, ca_file", function()
  local proc = require("bench.proc")
  local dir = T.tmpdir()
  local gen = proc.run{argv = {"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                               "-subj", "/CN=localhost", "-keyout", dir .. "/k.pem", "-out", dir .. "/c.pem"}}
  if not gen or gen.code ~= 0 then
    print("       (skipped: no openssl program to make a certificate)")
    return
  end
  local port = proc.free_port()
  local srv <close> = assert(proc.spawn{argv = {"openssl", "s_server", "-accept", tostring(port), "-cert",
                                               dir .. "/c.pem", "-key", dir .. "/k.pem", "-www", "-quiet"},
                                       stdout = "null", stderr = "null"})
  local url = "https://localhost:" .. port .. "/"
  local r
  for _ = 1, 100 do   -- until it listens
    r = http.request{url = url, timeout = 5}
    if r.error ~= "refused" then break end
    clock.sleep(0.05)
  end
  T.eq(r.error, "tls", "a self-signed certificate is refused")
  local r2 = http.request{url = url, timeout = 5, insecure = true}
  T.eq(r2.error, nil, "insecure")
  T.eq(r2.status, 200, "status")
  local r3 = http.request{url = url, timeout = 5, ca_file = dir .. "/c.pem"}
  T.eq(r3.error, nil, "trusted through ca_file")
  assert(r3.timings.tls and r3.timings.tls >= r3.timings.connect, "tls handshake time")
  proc.run{argv = {"rm", "-rf", dir}}
end)

T.case("fd limit", function()
  local n = http.max_fds(4096)
  assert(math.type(n) == "integer" and n >= 256, "max_fds: " .. tostring(n))
  -- the file table is grown at once, not by the socket that crosses 256 or
  -- 512 in the middle of a wave of requests (an RCU wait of 10-30 ms in a
  -- threaded process: sock.h). Linux shows the table's size as FDSize.
  local f = io.open("/proc/self/status")
  if f then
    local size = tonumber(f:read("a"):match("FDSize:%s*(%d+)"))
    f:close()
    assert(size and size >= math.min(n, 4096), "file table of " .. tostring(size) .. " slots after max_fds(4096)")
  end
end)

T.case("http.start: sent at once, waited for and read in two steps; close aborts", function()
  bench.run(function()
    local req = {url = sim.url .. "/v1/chat/completions", body = chat_body(8), headers = JSON,
                 stream = "sse", decode = "openai", timeout = 10}
    local a, b = http.start(req), http.start(req)
    T.checkerr("has not ended", a.result, a)
    T.eq(b:wait(), true, "ended without a transfer error")
    a:wait()
    T.eq(a:wait(), true, "again: it has ended, at once")
    local refused = http.start{url = "http://127.0.0.1:1/", timeout = 5}
    T.eq(refused:wait(), false, "a refused connection: false")
    T.eq(refused:result().error, "refused", "its kind")
    local ra, rb = a:result(), b:result()
    for _, r in ipairs{ra, rb} do
      T.eq(r.error, nil, "error")
      T.eq(r.llm.content_events, 8, "tokens")
      assert(r.timings.sent and r.timings.sent <= r.timings.first_byte, "written before its answer began")
    end
    T.checkerr("result was taken", a.result, a)
    T.checkerr("result was taken", a.wait, a)
    -- a request dropped before its end is aborted: the server sees it go
    local c = http.start{url = sim.url .. "/v1/chat/completions", body = chat_body(2000), headers = JSON,
                         stream = "sse", decode = "openai", timeout = 10}
    local before = http.active()
    c:close()
    T.eq(http.active(), before - 1, "closed: no longer in flight")
    T.checkerr("result was taken or it was closed", c.wait, c)
  end)
end)

T.case("http.prepare: built, connected ahead, sent once; the clock starts at the send", function()
  local curl = os.getenv("BENCHRUN_HTTP_TRANSPORT") == "curl"
  -- a server of its own: no kept connection from the other cases
  local own <close> = T.sim{"--decode-tps", "0", "--prefill-tps", "1000000"}
  bench.run(function()
    local req = {url = own.url .. "/v1/chat/completions", body = chat_body(4), headers = JSON,
                 stream = "sse", decode = "openai", timeout = 10}
    local p = http.prepare(req)
    T.eq(tostring(p), "bench.http.Request (not sent)", "tostring")
    T.checkerr("was not sent", p.wait, p)
    T.checkerr("has not ended", p.result, p)
    p:connect()
    p:connect()   -- again: nothing more
    clock.sleep(0.05)
    local called = clock.now()
    T.eq(p:send(), p, "send returns the request")
    T.checkerr("sent already", p.send, p)
    T.checkerr("sent already", p.connect, p)
    T.eq(p:wait(), true, "ended without a transfer error")
    local r = p:result()
    T.eq(r.error, nil, "error")
    T.eq(r.llm.content_events, 4, "tokens")
    T.eq(r.reused, false, "a new connection")
    assert(r.timings.start >= called, "the clock starts at the send, not at prepare")
    if curl then
      assert(not r.timings.connect or r.timings.connect >= r.timings.start, "curl connects when it sends")
    else
      assert(r.timings.connect and r.timings.connect < called, "native: connected ahead, before the send")
      assert(r.timings.dns <= r.timings.connect, "its handshake began at connect()")
    end
    -- a prepared request closed unsent: its connection opened ahead is kept for the next request
    local q = http.prepare(req)
    q:connect()
    clock.sleep(0.05)
    q:close()
    T.checkerr("was closed", q.send, q)
    local r2 = http.request(req)
    T.eq(r2.error, nil, "error")
    T.eq(r2.reused, true, "the next request reuses a kept connection")
    -- a kept connection is reserved by connect: the send writes on it
    local k = http.prepare(req)
    k:connect()
    local r3 = k:send():wait() and k:result()
    T.eq(r3.reused, true, "reserved kept connection")
    -- nothing listens: the send reports it, as http.start would
    local refused = http.prepare{url = "http://127.0.0.1:1/", timeout = 5}
    refused:connect()
    refused:send()
    T.eq(refused:wait(), false, "a refused connection: false")
    T.eq(refused:result().error, "refused", "its kind")
  end)
  T.checkerr("table expected", http.prepare, "http://127.0.0.1:1/")
end)

T.case("req:send_after: sent from the loop when the request before ends cleanly, else left unsent", function()
  local curl = os.getenv("BENCHRUN_HTTP_TRANSPORT") == "curl"
  bench.run(function()
    local req = {url = sim.url .. "/v1/chat/completions", body = chat_body(6), headers = JSON,
                 stream = "sse", decode = "openai", timeout = 10}
    -- chained to a request in flight: it goes as that one ends
    local a = http.start(req)
    local b = http.prepare(req)
    T.eq(b:send_after(a), b, "returns the request")
    T.eq(b:sent(), false, "not before a ends")
    T.checkerr("was not sent", b.wait, b)
    T.eq(a:wait(), true, "a ended")
    T.eq(b:sent(), true, "sent when a ended, before this task ran again")
    T.eq(b:wait(), true, "b ended")
    -- chained to one that already ended cleanly: at once
    local c = http.prepare(req)
    c:send_after(b)
    T.eq(c:sent(), true, "b had ended: sent at once")
    local ra, rb = a:result(), b:result()
    T.eq(rb.llm.content_events, 6, "b's tokens")
    assert(rb.timings.start >= ra.timings["end"], "b's clock starts at a's end")
    if not curl then T.eq(rb.reused, true, "on a's connection") end
    T.eq(c:wait(), true, "c ended")
    c:result()
    -- the request before fails: nothing goes; it can still be sent by hand
    local refused = http.start{url = "http://127.0.0.1:1/", timeout = 5}
    local d = http.prepare(req)
    d:send_after(refused)
    refused:wait()
    T.eq(d:sent(), false, "not after a failed transfer")
    d:send()
    T.eq(d:wait(), true, "sent by hand")
    d:result()
    -- past its not_after: not sent
    local e1, e2 = http.start(req), http.prepare(req)
    e2:send_after(e1, clock.now() - 1)
    e1:wait()
    T.eq(e2:sent(), false, "not after not_after")
    e2:close()
    -- sent by hand before the one it waits for ends: once, not again at its end
    local f1, f2 = http.start(req), http.prepare(req)
    f2:send_after(f1)
    f2:send()
    T.eq(f2:sent(), true, "sent by hand")
    f1:wait()
    T.eq(f2:wait(), true, "f2 ended")
    T.checkerr("sent already", f2.send_after, f2, f1)
    T.eq(f2:result().llm.content_events, 6, "f2 once")
    -- the chained one closed first: the one before ends as it will
    local g1, g2 = http.start(req), http.prepare(req)
    g2:send_after(g1)
    g2:close()
    collectgarbage()
    T.eq(g1:wait(), true, "g1 ended")
    -- the one before closed (aborted): the chained one does not go
    local h1, h2 = http.start(req), http.prepare(req)
    h2:send_after(h1)
    h1:close()
    T.eq(h2:sent(), false, "not after an aborted request")
    h2:close()
    local i1 = http.prepare(req)
    T.checkerr("was not sent", i1.send_after, http.prepare(req), i1)
  end)
end)

T.done()
