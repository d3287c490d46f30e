-- bench.http's two transports agree (issue 11, section 7): for the same
-- bytes from a server, the native HTTP/1.1 transport and curl give the same
-- error kind (docs/http.md, "The reasons"). tests/helpers/rawserver sends
-- each byte sequence twice, once to each transport, over real sockets.
-- Also: a method, URL or header that would inject a line into the request
-- is a Lua error before anything is sent, on both transports.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local http = require("bench.http")

-- hostile servers: tests/helpers/rawserver through testlib
local send, raw = T.send_step, T.raw

local TRANSPORTS = {"native", "curl"}

-- Each transport in turn gets `answer` (the server's bytes, then a close)
-- for the request `req` (url is filled in); returns {native = r, curl = r}.
local function both(answer, req)
  local steps = {}
  for _ = 1, #TRANSPORTS do
    steps[#steps + 1] = "expect-request"
    steps[#steps + 1] = send(answer)
    steps[#steps + 1] = "close"
  end
  local s <close> = raw(steps)
  local out = {}
  for _, tr in ipairs(TRANSPORTS) do
    local q = {path = "/", timeout = 10}
    for k, v in pairs(req or {}) do q[k] = v end
    q.url = s.url .. q.path
    q.path = nil
    q.transport = tr
    local r = http.request(q)
    T.eq(r.transport, tr, "transport")
    out[tr] = r
  end
  return out
end

-- expect(answer, kind, what, req, detail): both transports end with error
-- `kind` (nil: success) and the same status; detail, if given, is a plain
-- substring both error_details contain.
local function expect(answer, kind, what, req, detail)
  local rs = both(answer, req)
  if rs.native.status ~= rs.curl.status then
    error(string.format("%s: status %s (native) and %s (curl)", what, rs.native.status, rs.curl.status), 2)
  end
  for _, tr in ipairs(TRANSPORTS) do
    local r = rs[tr]
    if r.error ~= kind then
      error(string.format("%s: %s: expected error %s, got %s (%s)", what, tr, tostring(kind), tostring(r.error),
                          tostring(r.error_detail)), 2)
    end
    if detail and not tostring(r.error_detail):find(detail, 1, true) then
      error(string.format("%s: %s: error_detail %q lacks %q", what, tr, tostring(r.error_detail), detail), 2)
    end
  end
  return rs
end

local CHUNKED = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
local function ok(body) return "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " .. #body .. "\r\n\r\n" .. body end
local function head_with(lines) return "HTTP/1.1 200 OK\r\n" .. lines .. "Content-Length: 2\r\n\r\nok" end

T.case("framing: chunk sizes and lengths", function()
  expect(CHUNKED .. "zz\r\nhello\r\n0\r\n\r\n", "bad_response", "a chunk size that is not hex", nil, "chunk")
  expect(CHUNKED .. "5\r\nhello world\r\n0\r\n\r\n", "bad_response", "chunk data longer than its size", nil, "chunk")
  expect(CHUNKED .. "-5\r\nhello\r\n0\r\n\r\n", "bad_response", "a negative chunk size", nil, "chunk")
  expect(CHUNKED .. "10000000000000000\r\nhello\r\n", "bad_response", "a chunk size out of range", nil, "chunk")
  expect("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", "bad_response",
         "two different Content-Lengths", nil, "Content-Length")
  expect("HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello!", "bad_response",
         "two different lengths in one Content-Length", nil, "Content-Length")
  expect("HTTP/1.1 200 OK\r\nContent-Length: five\r\n\r\nhello", "bad_response", "a Content-Length that is no number",
         nil, "Content-Length")
  expect("HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\nhello", "bad_response", "a negative Content-Length", nil,
         "Content-Length")
  local rs = expect("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", nil,
                    "two equal Content-Lengths are one")
  for _, tr in ipairs(TRANSPORTS) do T.eq(rs[tr].body, "hello", tr .. ": body of equal lengths") end
  expect("HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\nok", "bad_response", "an empty Content-Length")
  expect("HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok", "bad_response", "Content-Length: +2")
  expect("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\nok", "bad_response",
         "a Content-Length out of range")
  expect(CHUNKED .. "2\r\nokXX0\r\n\r\n", "bad_response", "no line end after a chunk's data")
  expect(CHUNKED .. " 2\r\nok\r\n0\r\n\r\n", "bad_response", "a space before a chunk size")
  expect(CHUNKED .. "\r\nok\r\n0\r\n\r\n", "bad_response", "an empty chunk-size line")
  rs = expect(CHUNKED .. "2;x=y\r\nok\r\n2 \r\nyz\r\n0\r\nX-T: 1\r\n\r\n", nil,
              "chunk extensions, a space after a size, a trailer")
  for _, tr in ipairs(TRANSPORTS) do
    T.eq(rs[tr].body, "okyz", tr .. ": chunked body")
    T.eq(rs[tr].headers["x-t"], nil, tr .. ": a trailer is not a header of the answer")
  end
  rs = expect(CHUNKED .. "2;" .. string.rep("e", 70000) .. "\r\nok\r\n0\r\n\r\n", nil, "a 70 KB chunk extension")
  for _, tr in ipairs(TRANSPORTS) do T.eq(rs[tr].body, "ok", tr .. ": body after a long extension") end
  expect(CHUNKED .. string.rep("0", 5000) .. "2\r\nok\r\n0\r\n\r\n", "bad_response", "a 5,000-digit chunk size")
  expect(CHUNKED .. "2\r\nok\r\n0\r\nX-T: " .. string.rep("t", 5000) .. "\r\n\r\n", "bad_response",
         "a 5 KB trailer line")
  expect(CHUNKED .. "2\r\nok\r\n0\r\nbad trailer\r\n\r\n", "bad_response", "a trailer line without a colon")
  rs = expect("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n2\r\nok\r\n0\r\n\r\n", nil,
              "chunked wins over Content-Length")
  for _, tr in ipairs(TRANSPORTS) do T.eq(rs[tr].body, "ok", tr .. ": chunked, not the length") end
end)

T.case("a connection that ends early", function()
  expect("", "reset", "closed with no reply")
  -- an RST mid-body is a reset; the chunk error after it, on curl's reused
  -- handle, is still bad_response (the errno of the reset is not kept)
  do
    local s <close> = raw{"expect-request", send(CHUNKED .. "5\r\nhello\r\n"), "sleep 100", "reset",
                          "expect-request", send(CHUNKED .. "5\r\nhello\r\n"), "sleep 100", "reset",
                          "expect-request", send(CHUNKED .. "zz\r\n"), "close"}
    T.eq(http.request{url = s.url .. "/", transport = "native", timeout = 5}.error, "reset", "native: RST mid-body")
    T.eq(http.request{url = s.url .. "/", transport = "curl", timeout = 5}.error, "reset", "curl: RST mid-body")
    T.eq(http.request{url = s.url .. "/", transport = "curl", timeout = 5}.error, "bad_response",
         "curl: a bad chunk after a reset")
  end
  expect("HTTP/1.1 200 OK\r\nContent-Le", "reset", "closed in the head")
  expect(CHUNKED .. "10\r\nonly part", "truncated", "closed inside a chunk")
  expect(CHUNKED .. "5\r\nhello\r\n", "truncated", "closed before the last chunk")
  expect("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", "truncated", "closed before Content-Length bytes")
end)

T.case("garbage after a complete body is not part of it", function()
  for _, answer in ipairs{ok("hello") .. "GARBAGE", CHUNKED .. "5\r\nhello\r\n0\r\n\r\nGARBAGE"} do
    local rs = expect(answer, nil, "garbage after the body")
    for _, tr in ipairs(TRANSPORTS) do T.eq(rs[tr].body, "hello", tr .. ": body") end
  end
end)

T.case("status lines", function()
  expect("SSH-2.0-OpenSSH_9.2\r\n\r\n", "bad_response", "not HTTP")
  expect("HTTP/1.1 abc OK\r\nContent-Length: 2\r\n\r\nok", "bad_response", "a status that is no number")
  expect("HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\nok", "bad_response", "a two-digit status")
  expect("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", "bad_response", "a 101 not asked for")
  expect("HTTP/1.1 099 Odd\r\nContent-Length: 2\r\n\r\nok", "bad_response", "a status below 100")
  expect("\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "bad_response", "empty lines before the status line")
  expect("HTTP/1.2 200 OK\r\nContent-Length: 2\r\n\r\nok", "bad_response", "HTTP/1.2")
  expect("HTTP/2 200 OK\r\nContent-Length: 2\r\n\r\nok", "bad_response", "HTTP/2 on an HTTP/1.1 connection")
  expect("HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok", nil, "no reason phrase")
  local rs = expect("HTTP/1.0 200 OK\r\n\r\nto the close", nil, "HTTP/1.0, a body to the close")
  for _, tr in ipairs(TRANSPORTS) do T.eq(rs[tr].body, "to the close", tr .. ": body to the close") end
  expect("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", nil, "100 Continue, then 200")
  expect("HTTP/1.1 600 Odd\r\nContent-Length: 2\r\n\r\nok", "http_600", "a status of 600")
end)

T.case("header lines", function()
  expect(head_with("NoColonHere\r\n"), "bad_response", "a header line without a colon")
  expect(head_with(": no name\r\n"), "bad_response", "a header line without a name")
  expect(head_with(" folded\r\n"), "bad_response", "white space at the start of the first header line")
  expect(head_with("X-A: a\0b\r\n"), "bad_response", "a NUL byte in a header")
  expect(head_with("X-A: a\r\n folded\r\n"), nil, "a folded header line")
  expect(head_with("X-A : a\r\n"), nil, "a space before the colon")
  expect("HTTP/1.1 200 OK\nContent-Length: 2\n\nok", nil, "bare LF line ends")
  -- the limits of a head (docs/http.md), curl's: 5,000 header lines, 100 KiB
  -- for one line, 300 KiB in all
  local many = {}
  for i = 1, 10000 do many[i] = string.format("X-H%05d: v\r\n", i) end
  expect(head_with(table.concat(many)), "bad_response", "10,000 header lines", nil, "5000 header lines")
  expect(head_with(string.rep("a: b\r\n", 10000)), "bad_response", "10,000 short header lines", nil, "5000 header lines")
  expect(head_with(string.rep("a: b\r\n", 5000)), "bad_response", "5,001 header lines", nil, "5000 header lines")
  local rs = expect(head_with(string.rep("a: b\r\n", 4999)), nil, "5,000 header lines")
  for _, tr in ipairs(TRANSPORTS) do T.eq(rs[tr].body, "ok", tr .. ": body after 5,000 header lines") end
  expect(head_with(string.rep("X-Pad: " .. string.rep("p", 110) .. "\r\n", 3000)), "bad_response", "360 KB of head",
         nil, "300 KiB")
  expect(head_with("X-Big: " .. string.rep("x", 1 << 20) .. "\r\n"), "bad_response", "a 1 MB header line", nil, "100 KiB")
  expect(head_with("X-Big: " .. string.rep("x", 150 << 10) .. "\r\n"), "bad_response", "a 150 KB header line", nil,
         "100 KiB")
  expect("HTTP/1.1 200 " .. string.rep("O", 1 << 20) .. "\r\nContent-Length: 2\r\n\r\nok", "bad_response",
         "a 1 MB status line", nil, "100 KiB")
  rs = expect(head_with("X-Big: " .. string.rep("x", 90 << 10) .. "\r\n"), nil, "a 90 KB header line")
  for _, tr in ipairs(TRANSPORTS) do T.eq(#rs[tr].headers["x-big"], 90 << 10, tr .. ": the 90 KB header is kept") end
end)

T.case("an encoded body we did not ask for: unsupported_encoding", function()
  local gz = "\31\139\8\0\0\0\0\0\0\3\203\72\205\201\201\7\0\134\166\16\54\5\0\0\0"   -- "hello", gzipped
  local rs = expect("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Encoding: gzip\r\nContent-Length: " .. #gz
                    .. "\r\n\r\n" .. gz, "unsupported_encoding", "Content-Encoding: gzip", nil, "gzip")
  for _, tr in ipairs(TRANSPORTS) do T.eq(rs[tr].status, 200, tr .. ": status") end
  expect("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
         .. string.format("%x\r\n", #gz) .. gz .. "\r\n0\r\n\r\n", "unsupported_encoding", "a gzip stream",
         {stream = "sse", decode = "openai"}, "gzip")
  expect("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: gzip\r\n\r\n" .. gz,
         "unsupported_encoding", "Transfer-Encoding: gzip", nil, "gzip")
  expect("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Encoding: identity\r\nContent-Length: 2\r\n\r\nok",
         nil, "Content-Encoding: identity is no encoding")
  -- asked for: the bytes are the caller's to decode
  rs = expect("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Encoding: gzip\r\nContent-Length: " .. #gz
              .. "\r\n\r\n" .. gz, nil, "gzip asked for", {headers = {["Accept-Encoding"] = "gzip"}})
  for _, tr in ipairs(TRANSPORTS) do T.eq(rs[tr].body, gz, tr .. ": the gzip bytes as they came") end
end)

T.case("a redirect is not followed: redirect", function()
  for _, status in ipairs{301, 302, 303, 307, 308} do
    local answer = "HTTP/1.1 " .. status .. " Moved\r\nLocation: http://127.0.0.1:1/elsewhere\r\nContent-Type: text/html\r\n"
                   .. "Content-Length: 5\r\n\r\nmoved"
    local rs = expect(answer, "redirect", status .. " with Location", nil, "http://127.0.0.1:1/elsewhere")
    for _, tr in ipairs(TRANSPORTS) do
      T.eq(rs[tr].status, status, tr .. ": status")
      T.eq(rs[tr].location, "http://127.0.0.1:1/elsewhere", tr .. ": location")
      T.eq(rs[tr].body, "moved", tr .. ": body")
    end
  end
  expect("HTTP/1.1 301 Moved\r\nLocation: /v2/chat\r\nContent-Length: 0\r\n\r\n", "redirect", "a redirect of a stream",
         {stream = "sse", decode = "openai"}, "/v2/chat")
  local rs = expect("HTTP/1.1 300 Multiple Choices\r\nContent-Length: 2\r\n\r\nok", nil, "a 3xx without Location")
  for _, tr in ipairs(TRANSPORTS) do T.eq(rs[tr].status, 300, tr .. ": status 300") end
  expect("HTTP/1.1 301 Moved\r\nLocation: \r\nContent-Length: 0\r\n\r\n", nil, "a 301 with an empty Location")
end)

-- A request that would inject a line is refused before anything is sent:
-- the server logs every request it gets, and must get none.
T.case("CR, LF and other control bytes in method, URL and headers: a Lua error", function()
  local s <close> = raw{"expect-request", send(ok("x"))}
  local bad = {
    {{method = "GET\r\nX-Injected: 1\r\n"}, "method"},
    {{method = "GET\n"}, "method"},
    {{method = "G ET"}, "method"},
    {{method = "GET\0"}, "method"},
    {{method = ""}, "method"},
    {{path = "/a\r\nX-Injected: 1"}, "url"},
    {{path = "/a b"}, "url"},
    {{path = "/a\0b"}, "url"},
    {{headers = {["X-A"] = "v\r\nX-Injected: 1"}}, "headers"},
    {{headers = {["X-A\r\nX-Injected"] = "1"}}, "headers"},
    {{headers = {["X A"] = "1"}}, "headers"},
    {{headers = {["X-A:"] = "1"}}, "headers"},
    {{headers = {["X-A"] = "v\0w"}}, "headers"},
    {{headers = {"X-A: v\nX-Injected: 1"}}, "headers"},
    {{headers = {"NoColon"}}, "headers"},
  }
  for _, tr in ipairs(TRANSPORTS) do
    for i, case in ipairs(bad) do
      local q = {url = s.url .. (case[1].path or "/"), transport = tr, timeout = 5}
      for k, v in pairs(case[1]) do if k ~= "path" then q[k] = v end end
      local err = T.checkerr("http.request: " .. case[2], http.request, q)
      assert(not err:find("\n", 1, true), tr .. " case " .. i .. ": the message is one line: " .. err)
    end
  end
  T.eq(s.log(), "", "nothing reached the server")
  -- good ones still go through
  local r = http.request{url = s.url .. "/ok?a=1", method = "GET", headers = {["X-A"] = "v\tw"}, timeout = 5}
  T.eq(r.error, nil, "a good request")
end)

T.done()
