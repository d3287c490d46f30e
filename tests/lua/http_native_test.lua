-- bench.http's native HTTP/1.1 transport (engine/http.c) against servers
-- whose bytes the test writes: tests/helpers/rawserver follows a script per
-- case (framings split across writes, interim responses, closes, resets,
-- stalls, garbage), plus `benchrun sim` where a real server is enough.
-- rawserver is a build artifact: ctest passes its path in BENCHRUN_RAWSERVER
-- (tests/http.cmake); by hand it is looked for beside the benchrun binary.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local http = require("bench.http")
local clock = require("bench.clock")
local proc = require("bench.proc")

local RAW = T.RAWSERVER
local send, raw = T.send_step, T.raw

-- Wait for a port file (the loop runs meanwhile, as in T.sim).
local function await_port(p, portfile)
  for _ = 1, 500 do
    local port = tonumber(T.read_file(portfile) or "")
    if port then
      os.remove(portfile)
      return port
    end
    if not p:alive() then break end
    clock.sleep(0.01)
  end
  p:stop(1)
  error("rawserver did not start: " .. tostring(p:tail(20)), 3)
end

-- Spin, without running the event loop, until f() is true.
local function spin_until(f, secs, what)
  local deadline = clock.now() + math.floor(secs * 1e9)
  while not f() do
    if clock.now() > deadline then error("timed out waiting for " .. what, 2) end
  end
end

local function event(delta, finish)
  return "data: " .. json.encode{choices = {{index = 0, delta = delta, finish_reason = finish}}} .. "\n\n"
end
-- An OpenAI chat stream: the role chunk, three pieces of text, the finish, [DONE].
local EVENTS = {event({role = "assistant", content = ""}), event({content = "Hel"}), event({content = "lo, "}),
                event({content = "world"}), event({}, "stop"), "data: [DONE]\n\n"}
local SSE = table.concat(EVENTS)
-- the stream up to the middle of its third event: the text so far is "Hel"
local PART = EVENTS[1] .. EVENTS[2] .. EVENTS[3]:sub(1, 10)
local SSE_HEAD = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
local CHUNKED_HEAD = SSE_HEAD .. "Transfer-Encoding: chunked\r\n\r\n"

local function ok(body) return "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " .. #body .. "\r\n\r\n" .. body end
local function chunk(s) return string.format("%x\r\n", #s) .. s .. "\r\n" end

local function chat(url, opts)
  local req = {url = url .. "/v1/chat/completions", body = '{"model":"m","stream":true}',
               headers = {["Content-Type"] = "application/json"}, stream = "sse", decode = "openai",
               timeout = {connect = 5, first_byte = 5, idle = 5, total = 20}}
  for k, v in pairs(opts or {}) do req[k] = v end
  return http.request(req)
end

local function check_answer(r, what)
  T.eq(r.transport, "native", what .. ": transport")
  T.eq(r.error, nil, what .. ": error")
  T.eq(r.status, 200, what .. ": status")
  T.eq(r.llm.content, "Hello, world", what .. ": llm.content")
  T.eq(r.llm.done, true, what .. ": llm.done")
  T.eq(r.llm.finish_reason, "stop", what .. ": finish_reason")
  T.eq(r.llm.tokens, 3, what .. ": token events")
  T.eq(r.bytes, #SSE, what .. ": body bytes")
end

-- Each case's server writes the answer, then `expect-request` and a small
-- answer for a second request that tells whether the connection was reused.
T.case("SSE with a close-delimited body; the connection is not reused", function()
  local s <close> = raw{
    "expect-request", send(SSE_HEAD .. "Connection: close\r\n\r\n"), "sleep 20", send(SSE:sub(1, 50)), "sleep 20",
    send(SSE:sub(51)), "sleep 20", "close",
    -- the same without Connection: close: an HTTP/1.1 body with no framing also runs to the close
    "expect-request", send(SSE_HEAD .. "\r\n" .. SSE), "sleep 20", "close",
    "expect-request", send(ok("next")),
  }
  check_answer(chat(s.url), "Connection: close")
  check_answer(chat(s.url), "no framing")
  local r = http.request{url = s.url .. "/v1/models"}
  T.eq(r.error, nil, "next: error")
  T.eq(r.body, "next", "next: body")
  T.eq(r.reused, false, "the connection of a close-delimited body is not reused")
end)

T.case("SSE with Content-Length; the connection is reused", function()
  local s <close> = raw{
    "expect-request", send(SSE_HEAD .. "Content-Length: " .. #SSE .. "\r\n\r\n" .. SSE:sub(1, 100)), "sleep 20",
    send(SSE:sub(101)),
    "expect-request", send(ok("next")),
  }
  local r = chat(s.url)
  check_answer(r, "Content-Length")
  T.eq(r.reused, false, "the first request opens a connection")
  local r2 = http.request{url = s.url .. "/v1/models"}
  T.eq(r2.body, "next", "next: body")
  T.eq(r2.reused, true, "reused after a Content-Length body")
  T.eq(r2.transport, "native", "next: transport")
end)

T.case("SSE chunked in odd pieces; the connection is reused", function()
  -- chunk boundaries in the middle of events and of "data:"; each chunk-size
  -- line, its CRLF, the data and the CRLF after it in separate writes
  local steps = {"expect-request", send(CHUNKED_HEAD)}
  local i, sizes = 1, {37, 61, 1, 2, 90, 150}
  for n, size in ipairs(sizes) do
    local c = SSE:sub(i, n == #sizes and #SSE or i + size - 1)
    i = i + #c
    local hex = string.format("%x", #c)
    steps[#steps + 1] = send(hex:sub(1, 1))
    steps[#steps + 1] = "sleep 3"
    steps[#steps + 1] = send(hex:sub(2) .. (n == 2 and ";ext=1\r" or "\r"))
    steps[#steps + 1] = "sleep 3"
    steps[#steps + 1] = send("\n" .. c:sub(1, #c // 2))
    steps[#steps + 1] = "sleep 3"
    steps[#steps + 1] = send(c:sub(#c // 2 + 1) .. "\r")
    steps[#steps + 1] = "sleep 3"
    steps[#steps + 1] = send("\n")
  end
  assert(i == #SSE + 1, "the chunks cover the stream")
  for _, step in ipairs{send("0\r"), "sleep 3", send("\nX-Trailer: t\r\n"), "sleep 3", send("\r\n"),
                        "expect-request", send(ok("next"))} do
    steps[#steps + 1] = step
  end
  local s <close> = raw(steps)
  check_answer(chat(s.url), "chunked")
  local r2 = http.request{url = s.url .. "/v1/models"}
  T.eq(r2.body, "next", "next: body")
  T.eq(r2.reused, true, "reused after a chunked body")
end)

T.case("100 Continue, then the real answer", function()
  local s <close> = raw{
    "expect-request", send("HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\n"), "sleep 20",
    send("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Final: yes\r\nContent-Length: 5\r\n\r\nhello"),
  }
  local r = http.request{url = s.url .. "/x", body = "abc"}
  T.eq(r.transport, "native", "transport")
  T.eq(r.error, nil, "error")
  T.eq(r.status, 200, "status")
  T.eq(r.body, "hello", "body")
  T.eq(r.headers["x-final"], "yes", "a header of the 200")
  T.eq(r.headers["x-interim"], nil, "no header of the 100")
  T.eq(r.content_type, "text/plain", "content_type")
end)

T.case("what the client sends", function()
  local s <close> = raw{
    "expect-request", send(ok("1")), "expect-request", send(ok("2")), "expect-request", send(ok("3")),
  }
  local host = "127.0.0.1:" .. s.port
  local body = '{"a":1}'
  local r = http.request{url = s.url .. "/v1/x?q=1&r=a%20b#frag", body = body,
                         headers = {"Content-Type: application/json", "X-Test: one two"}}
  T.eq(r.body, "1", "first answer")
  T.eq(r.transport, "native", "transport")
  local want1 = "POST /v1/x?q=1&r=a%20b HTTP/1.1\r\nHost: " .. host .. "\r\nAccept: */*\r\nContent-Length: 7\r\n"
    .. "Content-Type: application/json\r\nX-Test: one two\r\n\r\n" .. body
  T.eq(s.log(), want1, "request 1: query kept, fragment dropped, Host, Accept, Content-Length, user headers")
  -- a query with no path; Accept = "" removes the default Accept
  local r2 = http.request{url = "http://localhost:" .. s.port .. "?x=1", headers = {Accept = ""}}
  T.eq(r2.body, "2", "second answer")
  local want2 = "GET /?x=1 HTTP/1.1\r\nHost: localhost:" .. s.port .. "\r\n\r\n"
  T.eq(s.log(), want1 .. want2, "request 2: Host is the URL's authority, no Accept")
  -- a 1 MiB body: written in pieces as the socket takes it, no Expect: 100-continue
  local big = string.rep("0123456789abcdef", 65536)
  local r3 = http.request{url = s.url .. "/big", method = "PUT", body = big, headers = {["X-Big"] = "v"}}
  T.eq(r3.error, nil, "big: error")
  T.eq(r3.body, "3", "third answer")
  local want3 = "PUT /big HTTP/1.1\r\nHost: " .. host .. "\r\nAccept: */*\r\nContent-Length: 1048576\r\nX-Big: v\r\n\r\n"
  local log = s.log()
  T.eq(log:sub(#want1 + #want2 + 1, #want1 + #want2 + #want3), want3, "request 3's head")
  T.eq(#log, #want1 + #want2 + #want3 + #big, "request 3's body length")
  T.eq(log:sub(-#big) == big, true, "request 3's body")
  T.eq(log:lower():find("expect:", 1, true), nil, "no Expect header")
end)

T.case("an idle connection closed by the server: the next request retries on a new one", function()
  for _, how in ipairs{"close", "reset"} do
    local s <close> = raw{"expect-request", send(ok("one")), "sleep 20", how, "log closed",
                          "expect-request", send(ok("two"))}
    local r1 = http.request{url = s.url .. "/1"}
    T.eq(r1.body, "one", how .. ": first answer")
    -- the loop does not run here, so the client cannot notice the close before request 2
    spin_until(function() return (s.log() or ""):find("closed\n", 1, true) end, 5, "the server's close")
    local r2 = http.request{url = s.url .. "/2"}
    T.eq(r2.transport, "native", how .. ": transport")
    T.eq(r2.error, nil, how .. ": error")
    T.eq(r2.body, "two", how .. ": second answer")
    T.eq(r2.reused, false, how .. ": sent again on a new connection")
    T.eq(select(2, s.log():gsub("GET /2 ", "")), 1, how .. ": the server got request 2 once")
  end
end)

T.case("a server that closes connections after a stream (llama-server): found once, then not reused after streams", function()
  -- each answer is a whole stream on a keep-alive connection that the
  -- server then closes unread, 100 ms later: the request sent at once
  -- after an answer races that close
  local stream = send(SSE_HEAD .. "Content-Length: " .. #SSE .. "\r\n\r\n" .. SSE)
  local s <close> = raw{"expect-request", stream, "sleep 100", "close",
                        "expect-request", stream, "sleep 100", "close",
                        "expect-request", stream}
  local r1 = chat(s.url)
  check_answer(r1, "first")
  T.eq(r1.resent, nil, "first: sent once")
  local r2 = chat(s.url)
  check_answer(r2, "second")
  T.eq(r2.resent, true, "second: written to the kept connection the server closed, sent again")
  local r3 = chat(s.url)
  check_answer(r3, "third")
  T.eq(r3.resent, nil, "third: a new connection at once, the address known to close after streams")
  T.eq(r3.reused, false, "third: not reused")
  T.eq(select(2, s.log():gsub("POST /v1/chat/completions ", "")), 3, "the server read three requests")
end)

T.case("broken answers: reset, bad_response, truncated, http_500", function()
  do   -- closed after reading the request, no reply
    local s <close> = raw{"expect-request", "close"}
    local r = http.request{url = s.url .. "/"}
    T.eq(r.transport, "native", "transport")
    T.eq(r.error, "reset", "closed with no reply")
    T.eq(r.status, 0, "no status")
    T.eq(r.error_detail, "the connection closed before the response", "detail")
  end
  do   -- not HTTP at all
    local s <close> = raw{"expect-request", send("SSH-2.0-x\r\n"), "sleep 200", "close"}
    local r = http.request{url = s.url .. "/"}
    T.eq(r.error, "bad_response", "garbage")
    assert(r.error_detail and r.error_detail:find("status line", 1, true), tostring(r.error_detail))
  end
  do   -- the head, part of a chunked body, then the close
    local s <close> = raw{"expect-request", send(CHUNKED_HEAD .. chunk(SSE:sub(1, 80))), "sleep 50",
                          send("10\r\nonly part"), "sleep 20", "close"}
    local r = chat(s.url)
    T.eq(r.error, "truncated", "closed mid chunked body")
    T.eq(r.status, 200, "status")
    T.eq(r.error_detail, "the connection closed mid-body", "detail")
  end
  do   -- the same for a plain body
    local s <close> = raw{"expect-request", send("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort"), "close"}
    local r = http.request{url = s.url .. "/"}
    T.eq(r.error, "truncated", "closed before Content-Length bytes")
  end
  do   -- an RST in the middle of a stream is a reset, as curl says
       -- (CURLE_RECV_ERROR); a FIN there is a truncation (above).
    local s <close> = raw{"expect-request", send(CHUNKED_HEAD .. chunk(PART)), "sleep 100", "reset"}
    local r = chat(s.url)
    T.eq(r.error, "reset", "RST mid-stream")
    assert(r.error_detail:find("reset", 1, true), "detail names the reset: " .. tostring(r.error_detail))
    T.eq(r.llm.content, "Hel", "what came before the RST is kept")
  end
  do   -- a 500 with its body, then the same connection carries the next request
    local body = '{"error":{"message":"boom"}}'
    local s <close> = raw{"expect-request",
                          send("HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: "
                               .. #body .. "\r\n\r\n" .. body),
                          "expect-request", send(ok("next"))}
    local r = chat(s.url)
    T.eq(r.transport, "native", "transport")
    T.eq(r.error, "http_500", "error")
    T.eq(r.status, 500, "status")
    T.eq(r.body, body, "the error body is kept")
    local r2 = http.request{url = s.url .. "/"}
    T.eq(r2.body, "next", "next: body")
    T.eq(r2.reused, true, "a complete 500 leaves the connection usable")
  end
end)

T.case("an answer that comes before the request body is sent is the result", function()
  -- the server answers 413 at once and stops reading an 8 MiB body: the
  -- client, blocked on writing, must still hear it
  local big = string.rep("x", 8 << 20)
  local answer = send("HTTP/1.1 413 Payload Too Large\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbig")
  do   -- the server keeps the connection open
    local s <close> = raw{answer, "sleep 3000", "close"}
    local t0 = clock.now()
    local r = http.request{url = s.url .. "/x", body = big, timeout = 2}
    T.eq(r.transport, "native", "transport")
    T.eq(r.error, "http_413", "error")
    T.eq(r.status, 413, "status")
    T.eq(r.body, "big", "body")
    assert(clock.now() - t0 < 1e9, "heard at once, not at the timeout")
  end
  do   -- the server closes right after answering (the write then fails)
    local s <close> = raw{answer, "close"}
    local r = http.request{url = s.url .. "/x", body = big, timeout = 2}
    T.eq(r.error, "http_413", "error after a close")
    T.eq(r.body, "big", "body after a close")
  end
end)

T.case("a connection opened ahead (req:connect) that the server closes before the send: sent on a new one", function()
  for _, how in ipairs{"close", "reset"} do
    for _, noticed in ipairs{true, false} do
      local what = how .. (noticed and ", noticed by the loop" or ", not noticed")
      local s <close> = raw{"accept", how, "log closed", "expect-request", send(ok("two"))}
      local p = http.prepare{url = s.url .. "/2", timeout = 5}
      p:connect()
      if noticed then   -- the loop runs: the idle connection's close is seen and it is dropped
        for _ = 1, 500 do
          if s.log():find("closed\n", 1, true) then break end
          clock.sleep(0.01)
        end
        clock.sleep(0.05)
      else
        spin_until(function() return s.log():find("closed\n", 1, true) end, 5, "the server's close")
      end
      p:send()
      p:wait()
      local r = p:result()
      T.eq(r.error, nil, what .. ": error")
      T.eq(r.body, "two", what .. ": the answer")
      T.eq(r.reused, false, what .. ": a new connection")
      T.eq(select(2, s.log():gsub("GET /2 ", "")), 1, what .. ": the server got the request once")
    end
  end
end)

T.case("a connection opened ahead to a full accept queue: the connect timeout counts from the send", function()
  local portfile = os.tmpname()
  local b <close> = assert(proc.spawn{argv = {RAW, "--blackhole", portfile}, stdout = "capture", stderr = "capture"})
  local port = await_port(b, portfile)
  local p = http.prepare{url = "http://127.0.0.1:" .. port .. "/", timeout = {connect = 0.3}}
  p:connect()
  clock.sleep(0.5)   -- longer than the timeout: no clock runs before the send
  local t0 = clock.now()
  p:send()
  T.eq(p:wait(), false, "a connect that never completes")
  local took = (clock.now() - t0) / 1e9
  T.eq(p:result().error, "timeout_connect", "its kind")
  assert(took >= 0.29 and took < 2, "ended at the connect timeout after the send: " .. took .. " s")
end)

T.case("timeouts: first_byte, idle, connect", function()
  do
    local s <close> = raw{"expect-request", "sleep 10000"}
    local r = chat(s.url, {timeout = {first_byte = 0.3}})
    T.eq(r.transport, "native", "transport")
    T.eq(r.error, "timeout_first_byte", "no answer")
  end
  do
    local s <close> = raw{"expect-request", send(CHUNKED_HEAD .. chunk(PART)), "sleep 10000"}
    local r = chat(s.url, {timeout = {first_byte = 5, idle = 0.3}})
    T.eq(r.error, "timeout_idle", "a stall mid-stream")
    T.eq(r.llm.content, "Hel", "the text before the stall")
  end
  do   -- a listener whose accept queue is full: the kernel drops the SYNs
    local portfile = os.tmpname()
    local p <close> = assert(proc.spawn{argv = {RAW, "--blackhole", portfile}, stdout = "capture", stderr = "capture"})
    local port = await_port(p, portfile)
    local t0 = clock.now()
    local r = http.request{url = "http://127.0.0.1:" .. port .. "/", timeout = {connect = 0.3}}
    local took = (clock.now() - t0) / 1e9
    T.eq(r.transport, "native", "transport")
    T.eq(r.error, "timeout_connect", "a connect that never completes")
    assert(took >= 0.29 and took < 2, "ended at the connect timeout: " .. took .. " s")
  end
end)

T.case("localhost falls back to ::1", function()
  local check = proc.run{argv = {RAW, "--bind-check", "::1"}}
  if not check or check.code ~= 0 then
    print("       (skipped: no IPv6 loopback: " .. tostring(check and check.stderr) .. ")")
    return
  end
  local s6 <close> = T.sim{"--host", "::1"}
  local r = http.request{url = "http://localhost:" .. s6.port .. "/v1/models", timeout = 5}
  T.eq(r.transport, "native", "transport")
  T.eq(r.error, nil, "error")
  T.eq(r.status, 200, "status through ::1")
  local r2 = http.request{url = "http://localhost:" .. s6.port .. "/v1/models", timeout = 5}
  T.eq(r2.reused, true, "the ::1 connection is reused for localhost")
  -- opened ahead: the kept connection is reserved by the first, the
  -- second opens a new one, through ::1 after 127.0.0.1 refuses
  local q = http.prepare{url = "http://localhost:" .. s6.port .. "/v1/models", timeout = 5}
  local p = http.prepare{url = "http://localhost:" .. s6.port .. "/v1/models", timeout = 5}
  q:connect()
  p:connect()
  clock.sleep(0.05)
  p:send()
  q:send()
  T.eq(p:wait() and q:wait(), true, "both ended")
  local rp, rq = p:result(), q:result()
  T.eq(rq.reused, true, "the first reserved the kept connection")
  T.eq(rp.reused, false, "the second opened its own")
  T.eq(rp.status, 200, "connected ahead through ::1")
  local r3 = http.request{url = "http://[::1]:" .. s6.port .. "/v1/models", timeout = 5}
  T.eq(r3.status, 200, "an IPv6 literal")
  T.eq(r3.transport, "native", "transport of the literal")
end)

T.case("cancelling a task in a native stream; a concurrent request goes on", function()
  local sim <close> = T.sim{"--decode-tps", "200"}
  local s <close> = raw{"expect-request", send(CHUNKED_HEAD .. chunk(PART)), "sleep 10000"}
  local raised
  local t = bench.spawn(function()
    local okk, err = pcall(chat, s.url, {timeout = {first_byte = 30, idle = 30}})
    raised = err
    if not okk then error(err, 0) end
  end)
  local other
  local t2 = bench.spawn(function()
    other = http.request{url = sim.url .. "/v1/chat/completions", stream = "sse", decode = "openai",
                         headers = {["Content-Type"] = "application/json"},
                         body = json.encode{model = "m", stream = true, max_tokens = 40,
                                            messages = {{role = "user", content = "hi"}}}}
  end)
  bench.spawn(function()
    clock.sleep(0.1)
    T.eq(http.active(), 2, "two transfers in flight")
    t:cancel()
  end):join()
  bench.wait(t, t2)
  T.eq(t:status(), "cancelled", "task status")
  assert(tostring(raised):find("cancelled", 1, true), "the request raised cancelled: " .. tostring(raised))
  T.eq(other.error, nil, "the other request")
  T.eq(other.transport, "native", "the other's transport")
  T.eq(other.llm.tokens, 40, "the other's tokens")
  T.eq(http.active(), 0, "nothing in flight")
end)

T.case("no fd leak over 200 requests whose connections the server closes", function()
  local sim <close> = T.sim{"--decode-tps", "0", "--slots", "64", "--idle-timeout", "100ms"}
  local pid = require("bench.sys").info().pid
  -- io.popen, not proc.run: the pipes of a finished proc.run linger a while
  local function nfds()
    collectgarbage()
    local f = assert(io.popen("ls /proc/" .. pid .. "/fd"))
    local n = select(2, f:read("a"):gsub("\n", ""))
    f:close()
    return n
  end
  local before, peak = nfds(), 0
  bench.run(function()
    for _ = 1, 4 do
      local tasks, bad = {}, 0
      for i = 1, 50 do
        tasks[i] = bench.spawn(function()
          local r = chat(sim.url, {body = json.encode{model = "m", stream = true, max_tokens = 4,
                                                      messages = {{role = "user", content = "hi"}}}})
          if r.error or r.transport ~= "native" then bad = bad + 1 end
        end)
      end
      assert(bench.wait(tasks))
      T.eq(bad, 0, "requests with an error")
      peak = math.max(peak, nfds())
    end
    -- the server closes the idle connections after 100 ms; the loop sees it
    for _ = 1, 50 do
      clock.sleep(0.1)
      if math.abs(nfds() - before) <= 1 then break end
    end
  end)
  assert(peak >= before + 10, string.format("the requests held connections open: %d fds, %d before", peak, before))
  local after = nfds()
  assert(math.abs(after - before) <= 1, string.format("fds before %d, after %d (%d at the peak)", before, after, peak))
end)

T.case("transport = native needs plain http to an address; transport = curl", function()
  T.checkerr("native", http.request, {url = "https://127.0.0.1:1/", transport = "native"})
  T.checkerr("native", http.request, {url = "http://example.invalid/", transport = "native"})
  local sim <close> = T.sim{}
  local r = http.request{url = sim.url .. "/v1/models", transport = "curl"}
  T.eq(r.error, nil, "error")
  T.eq(r.status, 200, "status")
  T.eq(r.transport, "curl", "transport")
  T.eq(http.request{url = sim.url .. "/v1/models"}.transport, "native", "auto picks native")
end)

T.done()
