-- bench.openai against `benchrun sim` in every dialect it speaks: streamed
-- and whole answers, completions, reasoning in fields and in <think> tags,
-- token sources, server timings, error records, secrets kept out of records.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local openai = require("bench.openai")

local DIALECTS = {
  {sim = "openai", client = "openai", source = "usage"},
  {sim = "openai", client = "vllm", source = "usage"},
  {sim = "llama.cpp", client = "llama.cpp", source = "usage", server = "predicted_n"},
  {sim = "lmstudio", client = "lmstudio", source = "usage"},
  {sim = "lmstudio", client = "lmstudio-v0", whole_server = "tokens_per_second",
   no_stream_stats = "none: LM Studio sends stats only in non-streamed /api/v0 answers"},
  {sim = "ollama", client = "ollama", source = "usage"},
  {sim = "ollama", client = "ollama-native", source = "server_timings", server = "eval_count"},
}

local function check_times(rec, what)
  assert(rec.t_sent_ns <= rec.t_first_byte_ns and rec.t_first_byte_ns <= rec.t_end_ns, what .. ": ordered timestamps")
  assert(rec.ttfb_ms > 0 and rec.ttfb_ms <= rec.e2el_ms, what .. ": ttfb")
end

for _, d in ipairs(DIALECTS) do
  T.case("dialect " .. d.client .. " (sim " .. d.sim .. ")", function()
    local s <close> = T.sim{"--dialect", d.sim, "--decode-tps", "1000", "--reasoning", "field", "--reasoning-tokens", "3"}
    local c = openai.client{base_url = s.url, dialect = d.client, model = "sim-model", extra = {temperature = 0, seed = 7}}
    local models = assert(c:models())
    T.eq(models[1], "sim-model", "models()")
    local rec = c:chat{prompt = "Say something.", max_tokens = 10}
    T.eq(rec.error, nil, "error")
    T.eq(rec.ok, true, "ok")
    check_times(rec, d.client)
    assert(rec.ttfr_ms and rec.ttft_ms and rec.ttfr_ms <= rec.ttft_ms, "reasoning comes first")
    T.eq(rec.output_tokens, 10, "output_tokens (reasoning included)")
    if d.source then T.eq(rec.token_source, d.source, "token_source") end
    if d.server then assert(rec.server and rec.server[d.server], "server timings " .. d.server) end
    if d.no_stream_stats then
      T.eq(rec.server, nil, "no server stats in a stream")
      T.eq(rec.server_stats, d.no_stream_stats, "said where the stats are missing")
    end
    T.eq(#rec.itl_ms, rec.content_events + rec.reasoning_events - 1, "itl per token gap")
    assert(rec.tpot_ms and rec.tpot_ms > 0 and rec.decode_tps > 0, "tpot and decode_tps")
    assert(#rec.text > 0 and rec.reasoning and #rec.reasoning > 0, "text and reasoning kept apart")
    T.eq(rec.finish_reason, "length", "finish_reason")
    assert(rec.sim_ttft_err_ms and rec.sim_ttft_err_ms >= 0, "sim_ttft_err_ms")
    T.eq(#rec.sim_itl_err_ms, #rec.itl_ms, "sim_itl_err_ms")
    -- the record is plain data
    local encoded = json.encode(rec)
    T.eq(json.decode(encoded).output_tokens, rec.output_tokens, "JSON round trip")

    local whole = c:chat{messages = {{role = "user", content = "Hi"}}, max_tokens = 4, stream = false}
    T.eq(whole.error, nil, "non-streamed error")
    assert(#whole.text > 0, "non-streamed text")
    T.eq(whole.ttft_ms, nil, "no ttft without streaming")
    if d.whole_server then assert(whole.server and whole.server[d.whole_server], "non-streamed stats " .. d.whole_server) end

    local comp = c:complete{prompt = "Once upon a time", max_tokens = 5}
    T.eq(comp.error, nil, "complete error")
    assert(#comp.text > 0, "complete text")
  end)
end

T.case("reasoning inside <think> tags", function()
  local s <close> = T.sim{"--decode-tps", "1000", "--reasoning", "think", "--reasoning-tokens", "4"}
  local c = openai.client{base_url = s.url}
  local rec = c:chat{prompt = "Think first.", max_tokens = 12}
  T.eq(rec.error, nil, "error")
  assert(rec.reasoning and #rec.reasoning > 0, "reasoning text")
  assert(not rec.text:find("<think>", 1, true) and not rec.text:find("</think>", 1, true), "tags removed from text")
  assert(rec.ttfr_ms <= rec.ttft_ms, "ttfr before ttft")
  local whole = c:chat{prompt = "Think first.", max_tokens = 12, stream = false}
  assert(whole.reasoning and not whole.text:find("<think>", 1, true), "non-streamed <think> split")
end)

T.case("llama.cpp native /completion", function()
  local s <close> = T.sim{"--dialect", "llama.cpp", "--decode-tps", "1000"}
  local c = openai.client{base_url = s.url, dialect = "llama.cpp"}
  local rec = c:complete{prompt = "Once", max_tokens = 6, native = true}
  T.eq(rec.error, nil, "error")
  T.eq(rec.output_tokens, 6, "tokens")
  assert(rec.server and rec.server.predicted_n, "timings")
end)

T.case("errors are records", function()
  local s <close> = T.sim{"--decode-tps", "1000"}
  local c = openai.client{base_url = s.url, timeout = {connect = 5, first_byte = 0.3, idle = 0.3}}
  local function fault(kind) return c:chat{prompt = "x", max_tokens = 8, headers = {["X-Sim-Fault"] = kind}} end
  local r = fault("http500")
  T.eq(r.ok, false, "ok")
  T.eq(r.error, "http_500", "error")
  T.eq(r.status, 500, "status")
  assert(r.error_detail and #r.error_detail > 0, "error_detail from the body")
  T.eq(fault("bad-json").error, "bad_json", "bad json")
  T.eq(fault("drop").error, "truncated", "drop")
  T.eq(fault("stall-first-byte").error, "timeout_first_byte", "stall")
  local down = openai.client{base_url = "http://127.0.0.1:1"}
  T.eq(down:chat{prompt = "x"}.error, "refused", "refused")
  local m, err = down:models()
  T.eq(m, nil, "models() of a dead server")
  assert(err:find("refused", 1, true), err)
end)

T.case("API key from the environment, never in a record", function()
  local s <close> = T.sim{"--decode-tps", "1000"}
  local name = os.getenv("HOME") and "HOME" or "PATH"
  local secret = os.getenv(name)
  local c = openai.client{base_url = s.url, api_key_env = name}
  local rec = c:chat{prompt = "x", max_tokens = 2}
  T.eq(rec.error, nil, "error")
  T.eq(json.encode(rec):find(secret, 1, true), nil, "the key is not in the record")
  T.eq(tostring(c):find(secret, 1, true), nil, "the key is not in the client's string")
  for _, v in pairs(c) do T.eq(v == secret, false, "the key is not stored in the client") end
end)

T.case("a caller's mistakes raise", function()
  T.checkerr("base_url", openai.client, {})
  T.checkerr("dialect: expected one of", openai.client, {base_url = "http://x", dialect = "nope"})
  local c = openai.client{base_url = "http://127.0.0.1:1"}
  T.checkerr("expected messages", c.chat, c, {})
  T.checkerr("max_tokens", c.chat, c, {prompt = "x", max_tokens = 0})
  T.checkerr("needs a model name", openai.client{base_url = "http://x", dialect = "ollama-native"}.chat,
             openai.client{base_url = "http://x", dialect = "ollama-native"}, {prompt = "x"})
end)

T.case("client:start: a call in two steps gives the record client:chat gives", function()
  local s <close> = T.sim{"--decode-tps", "1000"}
  local c = openai.client{base_url = s.url, model = "sim-model"}
  bench.run(function()
    local p = c:start("chat", {prompt = "Say something.", max_tokens = 6})
    local q = c:start("complete", {prompt = "Say something.", max_tokens = 4})
    p:wait()
    q:wait()
    local rec, whole = p:record(), c:chat{prompt = "Say something.", max_tokens = 6}
    for _, k in ipairs{"ok", "output_tokens", "token_source", "finish_reason", "api", "dialect"} do
      T.eq(rec[k], whole[k], "chat: " .. k)
    end
    assert(rec.ttft_ms > 0 and rec.t_wire_sent_ns, "latencies from the wire")
    local crec = q:record()
    T.eq(crec.api, "complete", "complete")
    T.eq(crec.output_tokens, 4, "complete: tokens")
    -- prepared ahead, sent later: the same record
    local prep = c:prepare("chat", {prompt = "Say something.", max_tokens = 6})
    prep:connect()   -- its connection opened ahead: the send only writes
    local sent = prep:start()
    T.checkerr("sent already", prep.start, prep)
    sent:wait()
    local srec = sent:record()
    T.eq(srec.output_tokens, 6, "prepared, then sent")
    assert(srec.client_send_delay_ms >= 0, "the send delay counts from the start, not from the connect")
    -- prepared and dropped unsent
    local unsent = c:prepare("chat", {prompt = "Say something.", max_tokens = 6})
    unsent:close()
    T.checkerr("closed", unsent.start, unsent)
    -- closed before its end: aborted, no record
    local gone = c:start("chat", {prompt = "Say something.", max_tokens = 500})
    gone:close()
    T.checkerr("closed", gone.record, gone)
  end)
  T.checkerr("openai.prepare: expected messages", c.prepare, c, "chat", {})
  T.checkerr("openai.start: kind: expected \"chat\" or \"complete\"", c.start, c, "embed", {prompt = "x"})
  T.checkerr("openai.start: expected messages", c.start, c, "chat", {})
end)

T.done()
