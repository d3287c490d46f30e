-- A response is a success only if it is one, and every request ends: the
-- OpenAI client against hostile servers (tests/helpers/rawserver) that do
-- what real servers were seen doing: an empty 200 stream, a usage block that
-- contradicts the stream, an in-stream error with no [DONE], llama.cpp's
-- "error:" line, the whole answer in one write, a server that never answers,
-- trickles its head or only sends keep-alive comments. Each case runs
-- through both transports.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local openai = require("bench.openai")

local HEAD = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
local function ev(delta, finish, extra)
  local o = {choices = {{index = 0, delta = delta, finish_reason = finish}}}
  for k, v in pairs(extra or {}) do o[k] = v end
  return "data: " .. json.encode(o) .. "\n\n"
end
local DONE = "data: [DONE]\n\n"

-- one request through `transport` to a server that sends `steps` (after
-- reading the request); -> the record
local function ask(transport, steps, args)
  local script = {"expect-request"}
  for _, s in ipairs(steps) do script[#script + 1] = s end
  script[#script + 1] = "close"
  local srv <close> = T.raw(script)
  local c = openai.client{base_url = srv.url, model = "m", transport = transport,
                          timeout = args and args.timeout}
  local call = {prompt = "hi", max_tokens = 16}
  for k, v in pairs(args or {}) do if k ~= "timeout" then call[k] = v end end
  return c:chat(call)
end

for _, tr in ipairs{"native", "curl"} do
  T.case(tr .. ": a 200 stream with only [DONE] is not a generation", function()
    local r = ask(tr, {T.send_step(HEAD .. DONE)})
    T.eq(r.ok, false, "ok")
    T.eq(r.error, "empty_response", "error kind")
  end)

  T.case(tr .. ": a stream of empty deltas is not a generation", function()
    local r = ask(tr, {T.send_step(HEAD .. ev({role = "assistant", content = ""}) .. ev({content = ""}) ..
                                   ev({}, "stop") .. DONE)})
    T.eq(r.ok, false, "ok")
    T.eq(r.error, "empty_response", "error kind")
    T.eq(r.error_detail:match("after %d+ event") ~= nil, true, "detail: " .. tostring(r.error_detail))
  end)

  T.case(tr .. ": usage that contradicts the stream is noted and not used", function()
    local r = ask(tr, {T.send_step(HEAD .. ev({content = "a"}) .. ev({content = "b"}) .. ev({content = "c"}) ..
                                   ev({}, "stop", {usage = {prompt_tokens = 3, completion_tokens = 100000}}) .. DONE)})
    T.eq(r.ok, true, "the answer itself arrived")
    T.eq(r.output_tokens, 3, "tokens counted from the events")
    T.eq(r.token_source, "chunks", "token source")
    T.eq(type(r.token_mismatch), "string", "token_mismatch noted")
    T.eq(r.token_mismatch:find("100000", 1, true) ~= nil, true, "the note names the claim: " .. r.token_mismatch)
    T.eq(r.prompt_tokens, 3, "a sane prompt count is kept")
  end)

  T.case(tr .. ": negative or fractional usage is not a count", function()
    local r = ask(tr, {T.send_step(HEAD .. ev({content = "a"}) .. ev({content = "b"}) ..
                                   ev({}, "stop", {usage = {prompt_tokens = -4, completion_tokens = 1.5}}) .. DONE)})
    T.eq(r.ok, true, "ok")
    T.eq(r.output_tokens, 2, "tokens from the events")
    T.eq(r.prompt_tokens, nil, "no prompt count")
    T.eq(r.token_mismatch:find("negative", 1, true) ~= nil and r.token_mismatch:find("whole", 1, true) ~= nil, true,
         "both noted: " .. tostring(r.token_mismatch))
  end)

  T.case(tr .. ": an in-stream error keeps the server's message without [DONE]", function()
    local r = ask(tr, {T.send_step(HEAD .. ev({content = "a"}) ..
                                   'data: {"error": {"message": "CUDA out of memory", "code": 500}}\n\n')})
    T.eq(r.ok, false, "ok")
    T.eq(r.error, "server_error", "kind")
    T.eq(r.error_detail, "CUDA out of memory", "the server's words")
  end)

  T.case(tr .. ": llama.cpp's error: line is the request's error", function()
    -- examples/server/server.cpp: server_sent_event(sink, "error", error_data), then [DONE]
    local r = ask(tr, {T.send_step(HEAD .. 'error: {"code":400,"message":"the request exceeds the available context size",' ..
                                   '"type":"exceed_context_size_error"}\n\n' .. DONE)})
    T.eq(r.ok, false, "ok")
    T.eq(r.error, "server_error", "kind")
    T.eq(r.error_detail, "the request exceeds the available context size", "message")
  end)

  T.case(tr .. ": the whole answer in one write is flagged, not a decode rate", function()
    local body = {HEAD}
    for i = 1, 12 do body[#body + 1] = ev({content = "t" .. i}) end
    body[#body + 1] = ev({}, "stop") .. DONE
    local r = ask(tr, {T.send_step(table.concat(body))})
    T.eq(r.ok, true, "the text arrived")
    T.eq(r.burst, true, "burst flagged")
    T.eq(r.decode_tps, nil, "no decode rate")
    T.eq(r.tpot_ms, nil, "no tpot")
    T.eq(#r.itl_ms, 0, "no inter-token gaps")
  end)

  T.case(tr .. ": a paced stream is not a burst", function()
    local steps = {T.send_step(HEAD)}
    for i = 1, 5 do steps[#steps + 1] = T.send_step(ev({content = "t" .. i})) steps[#steps + 1] = "sleep 20" end
    steps[#steps + 1] = T.send_step(ev({}, "stop") .. DONE)
    local r = ask(tr, steps)
    T.eq(r.ok, true, "ok")
    T.eq(r.burst, nil, "not flagged")
    T.eq(type(r.decode_tps), "number", "a decode rate")
  end)

  T.case(tr .. ": a whole answer with no text is not a success", function()
    local body = json.encode{choices = {{index = 0, message = {role = "assistant", content = ""}, finish_reason = "stop"}},
                             usage = {prompt_tokens = 2, completion_tokens = 0}}
    local r = ask(tr, {T.send_step("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " .. #body ..
                                   "\r\nConnection: close\r\n\r\n" .. body)}, {stream = false})
    T.eq(r.ok, false, "ok")
    T.eq(r.error, "empty_response", "kind")
  end)

  T.case(tr .. ": a server that accepts and never answers times out", function()
    local r = ask(tr, {"sleep 5000"}, {timeout = {first_byte = 0.3}})
    T.eq(r.error, "timeout_first_byte", "kind")
  end)

  T.case(tr .. ": a head trickled a byte at a time times out on idle", function()
    local steps = {}
    for i = 1, #HEAD do
      steps[#steps + 1] = T.send_step(HEAD:sub(i, i))
      steps[#steps + 1] = "sleep 100"
    end
    local r = ask(tr, steps, {timeout = {idle = 0.4}})
    T.eq(r.error, "timeout_idle", "kind: " .. tostring(r.error) .. " " .. tostring(r.error_detail))
  end)

  T.case(tr .. ": keep-alive comments do not hold a generation", function()
    local steps = {T.send_step(HEAD .. ev({role = "assistant", content = ""}) .. ev({content = "a"}))}
    for _ = 1, 40 do
      steps[#steps + 1] = T.send_step(": ping\n\n")
      steps[#steps + 1] = "sleep 100"
    end
    local r = ask(tr, steps, {timeout = {idle = 0.5}})
    T.eq(r.error, "timeout_idle", "kind: " .. tostring(r.error) .. " " .. tostring(r.error_detail))
    T.eq(tostring(r.error_detail):find("no token", 1, true) ~= nil, true, "detail: " .. tostring(r.error_detail))
  end)
end

T.case("every request has a bounded time by default", function()
  local t = openai.request_timeout(nil, nil, 100)
  T.eq(t.connect, 30, "connect")
  T.eq(t.first_byte, 300, "first byte")
  T.eq(t.idle, 300, "idle")
  T.eq(t.total, 300 + 100, "total: first_byte + max_tokens / 1 tok/s")
  T.eq(t.min_tps, nil, "min_tps is not an http option")
  local u = openai.request_timeout({first_byte = 10, min_tps = 4}, {idle = 2}, 400)
  T.eq(u.first_byte, 10, "the client's first_byte")
  T.eq(u.idle, 2, "the call's idle")
  T.eq(u.total, 10 + 100, "total from the client's min_tps")
  T.eq(openai.request_timeout(nil, 7, nil).total, 7, "a number is a total")
  T.eq(openai.request_timeout(nil, nil, nil).total, 300 + 4096, "max_tokens unknown: 4096")
  T.checkerr("timeout.min_tps: expected tokens per second > 0", function()
    openai.client{base_url = "http://127.0.0.1:1", timeout = {min_tps = 0}}
  end)
end)

T.done()
