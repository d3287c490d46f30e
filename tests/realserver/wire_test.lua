-- Every path of bench.openai and bench.http against a real llama.cpp
-- llama-server (issue 13, item 1): chat and completions, streamed and not,
-- the native /completion (no [DONE], stop: true, a finish_reason from its
-- stop_type), /tokenize, /health while loading and ready, /metrics,
-- /slots, an in-stream error, usage inside the finish chunk, fewer chunks
-- than tokens, the timings object. The tiny random-weight model of
-- tools/realserver.sh; no timing asserts (the machine is shared).
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local R = dofile(os.getenv("BENCHRUN_TESTS") .. "/realserver/rslib.lua")
local rs = R.setup()
local openai, http, json = require("bench.openai"), require("bench.http"), require("cjson")
local proc, clock = require("bench.proc"), require("bench.clock")

local srv <close> = R.start(rs, "tiny.gguf", {"-c", "512", "--metrics", "--slots", "--no-context-shift"})
local c = openai.client{base_url = srv.base_url, dialect = srv.dialect, model = srv.model}
local GEN = {ignore_eos = true, temperature = 0}

local function post(path, body)
  local r = http.request{url = srv.base_url .. path, method = "POST", body = json.encode(body),
                         headers = {["Content-Type"] = "application/json"}, timeout = 60}
  assert(not r.error, path .. ": " .. tostring(r.error) .. " " .. tostring(r.body))
  return json.decode(r.body)
end

local function tokenize(text, special)
  return #post("/tokenize", {content = text, add_special = special or false}).tokens
end

-- the timings object of llama.cpp, as the server sent it
local function check_timings(rec, what)
  local t = rec.server
  assert(type(t) == "table", what .. ": no timings")
  for _, k in ipairs{"prompt_n", "prompt_ms", "predicted_n", "predicted_ms", "predicted_per_second"} do
    assert(type(t[k]) == "number", what .. ": timings." .. k .. " missing")
  end
  T.eq(math.tointeger(t.predicted_n), rec.output_tokens, what .. ": output tokens = predicted_n")
end

T.case("chat, streamed: usage and timings ride in the finish chunk, then [DONE]", function()
  local events = {}
  local rec = c:chat{prompt = "Hello", max_tokens = 12, extra = GEN, on_event = function(ev) events[#events + 1] = ev end}
  assert(rec.ok, tostring(rec.error) .. ": " .. tostring(rec.error_detail))
  T.eq(rec.finish_reason, "length", "finish_reason")
  T.eq(rec.output_tokens, 12, "output tokens")
  T.eq(rec.token_source, "usage", "source")
  check_timings(rec, "chat stream")
  assert(rec.ttft_ms and rec.ttft_ms > 0 and rec.decode_tps and rec.decode_tps > 0, "ttft and decode rate")
  T.eq(events[#events].data, "[DONE]", "the last event")
  local finish = json.decode(events[#events - 1].data)
  T.eq(finish.choices[1].finish_reason, "length", "the finish chunk")
  T.eq(finish.usage.completion_tokens, 12, "usage inside the finish chunk")
  assert(finish.timings, "timings inside the finish chunk")
  T.eq(rec.prompt_tokens, finish.usage.prompt_tokens, "prompt tokens")
end)

-- This llama-server closes the connection after a streamed answer and keeps
-- it after a whole one (docs/servers.md): the next request's connect_ms
-- (a new connection's handshake, absent on a kept one) says which, on both
-- transports. Why warm-ups cannot keep connections for its streams.
T.case("a streamed answer's connection is closed by the server, a whole answer's kept", function()
  for _, transport in ipairs{"native", "curl"} do
    local tc = openai.client{base_url = srv.base_url, dialect = srv.dialect, model = srv.model, transport = transport}
    local function chat(stream)
      local rec = tc:chat{prompt = "Hi", max_tokens = 2, stream = stream, extra = GEN}
      assert(rec.ok, transport .. ": " .. tostring(rec.error))
      return rec
    end
    chat(false)
    T.eq(chat(false).connect_ms, nil, transport .. ": a whole answer's connection is kept")
    chat(true)
    assert(chat(true).connect_ms, transport .. ": after a streamed answer the next request connects again")
  end
end)

T.case("chat, whole answer", function()
  local rec = c:chat{prompt = "Hello", max_tokens = 8, stream = false, extra = GEN}
  assert(rec.ok, tostring(rec.error))
  T.eq(rec.output_tokens, 8, "output tokens")
  T.eq(rec.finish_reason, "length", "finish_reason")
  T.eq(rec.chunks, 0, "no chunks")
  assert(#rec.text > 0, "text")
  check_timings(rec, "chat whole")
end)

T.case("completions, streamed and whole", function()
  for _, stream in ipairs{true, false} do
    local rec = c:complete{prompt = "Once upon a time", max_tokens = 10, stream = stream, extra = GEN}
    assert(rec.ok, tostring(rec.error))
    T.eq(rec.output_tokens, 10, "output tokens, stream " .. tostring(stream))
    T.eq(rec.finish_reason, "length", "finish_reason")
    T.eq(rec.api, "complete", "api")
    -- /v1/completions counts the prompt with its BOS
    T.eq(rec.prompt_tokens, tokenize("Once upon a time", true), "prompt tokens = /tokenize with specials")
    check_timings(rec, "completions")
  end
end)

T.case("/completion (native): no [DONE], stop: true, a finish_reason, the whole prompt's count", function()
  for _, stream in ipairs{true, false} do
    local events = {}
    local rec = c:complete{prompt = "Once upon a time", max_tokens = 6, native = true, stream = stream, extra = GEN,
                           on_event = function(ev) events[#events + 1] = ev end}
    assert(rec.ok, tostring(rec.error))
    local what = "native, stream " .. tostring(stream)
    T.eq(rec.finish_reason, "length", what .. ": finish_reason from stop_type limit")
    T.eq(rec.output_tokens, 6, what .. ": output tokens")
    -- the prompt is in the server's cache by now: timings.prompt_n counts
    -- only what it evaluated, tokens_evaluated the whole prompt
    T.eq(rec.prompt_tokens, tokenize("Once upon a time", true), what .. ": prompt tokens")
    assert(rec.server.prompt_n < rec.prompt_tokens, what .. ": the cache held the prompt")
    if stream then
      local last = json.decode(events[#events].data)
      T.eq(last.stop, true, "the last event says stop")
      for _, ev in ipairs(events) do assert(ev.data ~= "[DONE]", "no [DONE] on /completion") end
    end
  end
  -- a stop word is "stop" (stop_type "word"): the greedy answer, cut at its
  -- last two characters
  local whole = c:complete{prompt = "Hi", max_tokens = 8, native = true, stream = false, extra = GEN}
  assert(whole.ok and #whole.text > 4, tostring(whole.error))
  for _, stream in ipairs{true, false} do
    local rec = c:complete{prompt = "Hi", max_tokens = 8, native = true, stream = stream,
                           extra = {temperature = 0, ignore_eos = true, stop = {whole.text:sub(-2)}}}
    assert(rec.ok, tostring(rec.error) .. " " .. tostring(rec.error_detail))
    T.eq(rec.finish_reason, "stop", "a stop word, stream " .. tostring(stream))
  end
end)

T.case("/tokenize", function()
  local n = tokenize("hello world hello world")
  assert(n >= 4 and n <= 8, "tokens: " .. n)
  T.eq(tokenize("hello world hello world", true), n + 1, "add_special adds the BOS")
end)

T.case("/metrics with --metrics, /slots", function()
  local r = http.request{url = srv.base_url .. "/metrics"}
  T.eq(r.status, 200, "metrics status")
  for _, k in ipairs{"llamacpp:prompt_tokens_total", "llamacpp:tokens_predicted_total",
                     "llamacpp:requests_processing", "llamacpp:requests_deferred"} do
    assert(r.body:find(k, 1, true), "metrics: " .. k .. " in " .. r.body:sub(1, 300))
  end
  r = http.request{url = srv.base_url .. "/slots"}
  T.eq(r.status, 200, "slots status")
  local slots = json.decode(r.body)
  T.eq(#slots, 1, "one slot")
  T.eq(math.tointeger(slots[1].n_ctx), 512, "the slot's context")
end)

T.case("an in-stream error: a prompt over the context with --no-context-shift", function()
  local prompt = string.rep("hello world ", 400)
  assert(tokenize(prompt) > 512, "the prompt is over the context")
  local rec = c:chat{prompt = prompt, max_tokens = 4, extra = GEN}
  T.eq(rec.ok, false, "ok")
  T.eq(rec.status, 200, "inside a 200 stream")
  T.eq(rec.error, "server_error", "error")
  assert(tostring(rec.error_detail):find("exceeds the available context size", 1, true), tostring(rec.error_detail))
  -- the server still serves
  assert(c:chat{prompt = "Hello", max_tokens = 2, extra = GEN}.ok, "next request")
end)

T.case("fewer chunks than tokens: a token ending inside a UTF-8 sequence", function()
  -- random weights sample byte tokens now and then; the server holds an
  -- incomplete UTF-8 sequence back and sends it with the next token
  local found
  for seed = 1, 40 do
    local rec = c:chat{prompt = "Hello", max_tokens = 128, extra = {ignore_eos = true, temperature = 1.0, seed = seed}}
    assert(rec.ok, tostring(rec.error))
    T.eq(rec.output_tokens, 128, "usage counts every token")
    T.eq(math.tointeger(rec.server.predicted_n), 128, "predicted_n")
    if rec.content_events < rec.output_tokens then found = rec break end
  end
  assert(found, "no answer in 40 seeds had fewer token events than tokens")
  T.eq(found.token_source, "usage", "the count comes from usage, not the chunks")
  assert(found.decode_tps and found.tpot_ms, "rates from the token count")
end)

T.case("/health: 503 while the model loads, then 200", function()
  -- the ~134M model loads for a second or more: long enough to see it load
  local port = assert(proc.free_port())
  local p <close> = assert(proc.spawn{argv = {rs.server, "-m", rs.models .. "/small-f16.gguf", "--port", tostring(port),
                                              "-t", "1", "-c", "512"}})
  local url = string.format("http://127.0.0.1:%d/health", port)
  local seen, body503 = {}, nil
  local deadline = clock.now() + 120e9
  while clock.now() < deadline do
    assert(p:alive(), "the server ended: " .. p:tail(20))
    local status, body = proc.probe_http(url, 2)
    if status then
      seen[status] = (seen[status] or 0) + 1
      if status == 503 then body503 = body end
      if status == 200 then break end
    end
    clock.sleep(0.005)
  end
  assert(seen[503], "a 503 while loading")
  assert(body503:find("Loading model", 1, true), body503)
  assert(seen[200], "a 200 when ready")
  local r = http.request{url = url}
  T.eq(r.status, 200, "ready")
  T.eq(json.decode(r.body).status, "ok", "body")
end)

T.done()
