-- bench.openai.record: one response of bench.http into one record of
-- bench.openai (docs/openai.md): latencies from the wire, token counts and
-- their source, server statistics, the error of a stream, tool calls,
-- reasoning, cache figures and logprobs. bench.openai builds and sends the
-- request; this module only reads what came back.
local json = require("cjson")
local util = require("bench.util")
local toolcall = require("bench.toolcall")
local cache = require("bench.cache")
local logprobs = require("bench.logprobs")

local M = {}

local merge = util.merge

-- A short human reason from an error body (OpenAI {"error": {"message"}},
-- Ollama {"error": "..."}), else its first bytes.
function M.error_detail(body)
  if not body or body == "" then return nil end
  local ok, v = pcall(json.decode, body)
  if ok and type(v) == "table" then
    local e = v.error or v.detail or v.message
    if type(e) == "table" then e = e.message or e.msg end
    if type(e) == "string" then return e end
  end
  return body:sub(1, 200)
end

local stream_error_message, is_burst

local function ms(a, b)
  if a == nil or b == nil then return nil end
  return (a - b) / 1e6
end

local function decode_json(s)
  if not s or s == "" then return nil end
  local ok, v = pcall(json.decode, s)
  if ok and type(v) == "table" then return v end
  return nil
end

local finite = util.finite

-- A count a server reported: a finite integer >= 0, else nil and why.
local function sane_count(v, what)
  if v == nil then return nil end
  if type(v) ~= "number" then return nil, string.format("%s is %s, not a number", what, type(v)) end
  if v ~= v or v == math.huge or v == -math.huge then return nil, string.format("%s is not finite", what) end
  if v < 0 then return nil, string.format("%s is negative (%s)", what, tostring(v)) end
  if v ~= math.floor(v) then return nil, string.format("%s is not a whole number (%s)", what, tostring(v)) end
  return math.tointeger(v) or v
end

-- llama.cpp's /completion says why it stopped in stop_type, not
-- finish_reason; its /v1 endpoints map it this way (server.cpp).
local LLAMA_STOP = {eos = "stop", word = "stop", limit = "length"}

-- What llama.cpp's /completion adds in its last event or body: a
-- finish_reason from stop_type, the whole prompt's count (tokens_evaluated;
-- timings.prompt_n counts only what the prompt cache did not hold) and
-- whether it cut the prompt (truncated).
local function llama_native_final(rec, v)
  if type(v) ~= "table" then return end
  if type(v.stop_type) == "string" then rec.finish_reason = LLAMA_STOP[v.stop_type] or v.stop_type end
  local n = sane_count(v.tokens_evaluated, "tokens_evaluated")
  if n then rec.prompt_tokens = n end
  if v.truncated == true then rec.server_truncated = true end
end

-- The most output tokens that can stand behind what arrived: a token is at
-- least one byte of text or one event of its own, plus a few that render as
-- nothing (end of sequence, hidden markers).
local TOKEN_SLACK = 16
local function token_ceiling(events, bytes)
  return (events or 0) + (bytes or 0) + TOKEN_SLACK
end

-- Token counts and server-side timings, best source first:
-- usage > server timings (llama.cpp timings, Ollama eval_count, LM Studio stats) > chunks.
-- arrived: {events, bytes} of what the stream or body really carried.
local function fill_counts(rec, usage, timings, stats, final, chunk_tokens, arrived)
  local server = nil
  if timings then server = timings end
  if stats then server = merge(server or {}, stats) end
  if final and (final.eval_count or final.eval_duration or final.total_duration) then
    server = server or {}
    for _, k in ipairs{"eval_count", "eval_duration", "load_duration", "prompt_eval_count",
                       "prompt_eval_duration", "total_duration"} do
      if final[k] ~= nil then server[k] = final[k] end
    end
  end
  rec.server = server
  -- a count that contradicts what arrived (negative, not finite, more tokens
  -- than the text and events can hold, none for text that came) is noted
  -- and not used: the next source is
  local mismatch = {}
  local function plausible(v, what)
    local n, why = sane_count(v, what)
    if why then mismatch[#mismatch + 1] = why return nil end
    if n == nil then return nil end
    if arrived and n > token_ceiling(arrived.events, arrived.bytes) then
      mismatch[#mismatch + 1] = string.format("%s says %s output tokens for %d token events and %d bytes of text",
                                              what, tostring(n), arrived.events or 0, arrived.bytes or 0)
      return nil
    end
    if arrived and n == 0 and (arrived.bytes or 0) > 0 then
      mismatch[#mismatch + 1] = string.format("%s says 0 output tokens for %d bytes of text", what, arrived.bytes)
      return nil
    end
    return n
  end
  local out = usage and plausible(usage.completion_tokens or usage.output_tokens, "usage")
  if out then
    rec.output_tokens, rec.token_source = out, "usage"
  else
    local st = server and plausible(server.predicted_n or server.eval_count or server.tokens or server.predicted_tokens_count,
                                    "the server's timings")
    if st then rec.output_tokens, rec.token_source = st, "server_timings"
    elseif chunk_tokens then rec.output_tokens, rec.token_source = chunk_tokens, "chunks" end
  end
  if #mismatch > 0 then rec.token_mismatch = table.concat(mismatch, "; ") end
  local p, pwhy = sane_count(usage and (usage.prompt_tokens or usage.input_tokens)
    or server and (server.prompt_n or server.prompt_eval_count), "prompt_tokens")
  if p then rec.prompt_tokens = p
  elseif pwhy then rec.token_mismatch = (rec.token_mismatch and (rec.token_mismatch .. "; ") or "") .. pwhy end
  local details = usage and usage.completion_tokens_details
  local rt = type(details) == "table" and finite(details.reasoning_tokens) or (usage and finite(usage.reasoning_tokens))
  if rt then rec.reasoning_tokens = math.tointeger(rt) or rt end
end

-- Split <think>...</think> out of a whole (non-streamed) answer.
local function split_think(text)
  local before, inner, after = text:match("^(.-)<think>(.-)</think>(.*)$")
  if inner then return before .. after, inner end
  local open = text:match("^%s*<think>(.*)$")
  if open then return "", open end
  return text, nil
end


-- The message of an in-stream error: {"message"}, {"error": {"message"}},
-- {"error": "text"}, a bare string, else the raw text.
stream_error_message = function(raw)
  local e = decode_json(raw)
  if type(e) == "table" then
    local inner = e.error
    if type(inner) == "table" then inner = inner.message end
    local msg = e.message or inner
    if type(msg) == "string" and msg ~= "" then return msg end
  end
  local ok, v = pcall(json.decode, raw)
  if ok and type(v) == "string" and v ~= "" then return v end
  return raw
end

-- A stream whose token events all came at once: at least BURST_MIN_EVENTS
-- of them within BURST_SPAN_NS, or faster than BURST_MAX_TPS (no model
-- streams one sequence that fast; a server that buffers its answer does).
local BURST_MIN_EVENTS, BURST_SPAN_NS, BURST_MAX_TPS = 4, 1e6, 20000
is_burst = function(m)
  local n = m.tokens or 0
  if n < BURST_MIN_EVENTS or not m.first_token_t or not m.last_token_t then return false end
  local span = m.last_token_t - m.first_token_t
  return span < BURST_SPAN_NS or (n - 1) / (span / 1e9) > BURST_MAX_TPS
end

-- The answer's first token: content or a tool call, whichever came first.
local function first_answer_t(m)
  local a, b = m.first_content_t, m.first_tool_t
  if a and b then return math.min(a, b) end
  return a or b
end

-- Beside the totals, when the answer followed reasoning: the first token of
-- any kind (ttft_any_ms) and the answer's own decode rate.
local function answer_rates(rec, m, t0)
  local first = first_answer_t(m)
  rec.ttft_any_ms = ms(m.first_token_t, t0)
  -- answer tokens: the server's counts where it splits them, else the answer's token events
  local n = rec.output_tokens and rec.reasoning_tokens and rec.output_tokens - rec.reasoning_tokens
            or (m.content_events or 0) + (m.tool_events or 0)
  if first and n and n > 1 and not rec.burst and rec.t_end_ns > first then
    rec.answer_decode_tps = (n - 1) / ((rec.t_end_ns - first) / 1e9)
  end
end

local function tool_bytes(calls)
  local n = 0
  for _, c in ipairs(calls or {}) do n = n + #(c.arguments or "") + #(c.name or "") end
  return n
end

local function streamed_record(rec, r, request)
  local m = r.llm
  local t0 = rec.t_latency_start_ns
  rec.text = m.content
  rec.reasoning = m.reasoning ~= "" and m.reasoning or nil
  rec.finish_reason = m.finish_reason
  rec.chunks = m.chunks
  rec.ttft_ms = ms(first_answer_t(m), t0)
  rec.ttftc_ms = ms(m.first_tool_t, t0)
  rec.tool_events = m.tool_events
  rec.ttfr_ms = ms(m.first_reasoning_t, t0)
  rec.itl_ms = m.itl_ms   -- gaps between token events (content and reasoning), built in C
  rec.content_events, rec.reasoning_events = m.content_events, m.reasoning_events
  local usage, timings, final = decode_json(m.usage), decode_json(m.timings), decode_json(m.final)
  fill_counts(rec, usage, timings, decode_json(m.stats), final,
              m.tokens > 0 and m.tokens or nil,
              {events = m.tokens, bytes = #(m.content or "") + #(m.reasoning or "") + tool_bytes(m.tool_calls)})
  if rec.dialect == "llama.cpp" then
    if final and final.stop_type ~= nil then llama_native_final(rec, final) end
  end
  cache.fill(rec, usage, timings, final)
  if rec.reasoning_tokens == nil and m.reasoning_events > 0 and rec.token_source == "chunks" then
    rec.reasoning_tokens = m.reasoning_events
  end
  -- tpot over every generated token (reasoning included), as vLLM does.
  local first = m.first_token_t
  local tokens = rec.output_tokens
  if is_burst(m) then
    -- the whole answer in (nearly) one write: its gaps and rate are the
    -- network's, not the model's; kept out of every rate (docs/openai.md)
    rec.burst = true
    rec.burst_detail = string.format("%d token events arrived within %.3f ms", m.tokens,
                                     (m.last_token_t - m.first_token_t) / 1e6)
    rec.itl_ms = {}
  elseif first and tokens and tokens > 1 and rec.t_end_ns > first then
    rec.tpot_ms = (rec.t_end_ns - first) / 1e6 / (tokens - 1)
    rec.decode_tps = (tokens - 1) / ((rec.t_end_ns - first) / 1e9)
  end
  if m.reasoning_events > 0 then answer_rates(rec, m, t0) end
  toolcall.fill(rec, m.tool_calls, request)
  if m.tools_dropped then
    rec.tool_call_note = (rec.tool_call_note and (rec.tool_call_note .. "; ") or "") ..
      string.format("%d tool call(s) past the first %d were not kept", m.tools_dropped, #m.tool_calls)
  end
  toolcall.reasoning(rec)
  if m.sim_arrival_ns then
    -- benchrun sim: when the request arrived there (the wire's send side)
    rec.sim_arrival_ns = m.sim_arrival_ns
  end
  if m.sim_ttft_err_ms then
    rec.sim_ttft_err_ms = m.sim_ttft_err_ms
    rec.sim_itl_err_ms = m.sim_itl_err_ms
    rec.sim_lag_max_ms = m.sim_lag_max_ms
  end
  -- Errors the transport could not see. The server's own error comes first:
  -- a stream that said "CUDA out of memory" and then broke off is that
  -- error, not a truncation (the transport's kind is kept beside it).
  if m.error then
    if rec.error then rec.transport_error, rec.transport_error_detail = rec.error, rec.error_detail end
    rec.error = "server_error"
    rec.error_detail = stream_error_message(m.error)
  elseif not rec.error then
    if m.bad_json > 0 then
      rec.error = "bad_json"
      rec.error_detail = m.bad_json .. " event(s) were not valid JSON"
    elseif m.tokens == 0 then
      -- 200 and [DONE], but nothing generated: not a generation
      rec.error = "empty_response"
      rec.error_detail = (m.chunks or 0) == 0 and "the stream ended without any event"
        or string.format("the stream ended after %d event(s) without any content or reasoning", m.chunks)
    end
  end
end

local function whole_record(rec, r, kind, dialect, request)
  local v = decode_json(r.body)
  if not v then
    if not rec.error then
      rec.error = "bad_json"
      rec.error_detail = "the response body is not a JSON object"
    end
    return
  end
  local function str(x) return type(x) == "string" and x or nil end
  local text, reasoning, usage, timings, stats, final, calls
  if dialect == "ollama-native" then
    local msg = type(v.message) == "table" and v.message or {}
    calls = msg.tool_calls
    text = str(msg.content) or str(v.response)
    reasoning = str(msg.thinking) or str(v.thinking)
    rec.finish_reason = v.done_reason
    final = v
  else
    local c = type(v.choices) == "table" and type(v.choices[1]) == "table" and v.choices[1] or {}
    local msg = type(c.message) == "table" and c.message or {}
    text = str(msg.content) or str(c.text) or str(v.content)
    reasoning = str(msg.reasoning_content) or str(msg.reasoning)
    calls = msg.tool_calls
    rec.finish_reason = c.finish_reason
    usage, timings, stats = type(v.usage) == "table" and v.usage or nil, type(v.timings) == "table" and v.timings or nil,
                            type(v.stats) == "table" and v.stats or nil
    if v.error and not rec.error then
      rec.error = "server_error"
      rec.error_detail = type(v.error) == "table" and v.error.message or tostring(v.error)
    end
  end
  text = text or ""
  if not reasoning then
    local t, r2 = split_think(text)
    text, reasoning = t, r2
  end
  fill_counts(rec, usage, timings, stats, final, nil, {events = 0, bytes = #text + #(reasoning or "")})
  if dialect == "llama.cpp" and v.stop_type ~= nil then llama_native_final(rec, v) end
  cache.fill(rec, usage, timings, dialect == "llama.cpp" and v or nil)
  rec.text = text
  rec.reasoning = reasoning ~= "" and reasoning or nil
  rec.chunks = 0
  rec.itl_ms = {}
  toolcall.fill(rec, type(calls) == "table" and calls or nil, request)
  toolcall.reasoning(rec)
  if not rec.error and text == "" and not rec.reasoning and not rec.tool_calls then
    rec.error = "empty_response"
    rec.error_detail = "the answer has no content and no reasoning"
  end
end

-- A prompt the server cut without an error (llama-server keeps the start
-- and the end of a prompt longer than a slot's context, and counts only
-- what it kept): the server said so (/completion's truncated), or its
-- prompt_tokens is below three quarters of what the caller counted
-- (expect_prompt_tokens), or below what the prompt's bytes can be with at
-- most PROMPT_BYTES_PER_TOKEN bytes a token (docs/openai.md).
local PROMPT_BYTES_PER_TOKEN = 64
function M.check_prompt(rec, sent_bytes, expect)
  local n = rec.prompt_tokens
  local why
  if rec.server_truncated then
    why = string.format("the server says it truncated the prompt (%s prompt tokens kept)", tostring(n))
  elseif n and expect and n < expect * 0.75 then
    why = string.format("the server counted %d prompt tokens of the %d sent", n, expect)
  elseif n and sent_bytes > PROMPT_BYTES_PER_TOKEN * (n + 16) then
    why = string.format("the server counted %d prompt tokens for %d bytes of prompt", n, sent_bytes)
  end
  rec.server_truncated = nil
  if why then rec.prompt_truncated, rec.prompt_truncated_detail = true, why end
end

-- the bytes of text in a request's prompt or messages
function M.prompt_bytes(args)
  if type(args.prompt) == "string" and args.messages == nil then return #args.prompt + #(args.system or "") end
  local n = 0
  for _, m in ipairs(type(args.messages) == "table" and args.messages or {}) do
    local c = type(m) == "table" and m.content
    if type(c) == "string" then n = n + #c
    elseif type(c) == "table" then
      for _, part in ipairs(c) do if type(part) == "table" and type(part.text) == "string" then n = n + #part.text end end
    end
  end
  return n
end

-- record.make(r, kind, request, dialect, stream_stats) -> the record of
-- bench.http's response r to a request of kind "chat"|"complete" (request:
-- what it offered, tools and response_format, for the checks); stream_stats:
-- the dialect's note when its streams carry no server statistics.
function M.make(r, kind, request, dialect, stream_stats)
  local t = r.timings
  local rec = {
    ok = false, error = r.error, error_detail = r.error_detail, status = r.status,
    dialect = dialect, api = kind,
    t_sent_ns = t.start, t_first_byte_ns = t.first_byte, t_end_ns = t["end"],
  }
  -- Latencies start on the wire: when the request's last byte was written
  -- (curl: when it was about to send). What came before is the client's
  -- own delay (its queue, other requests' callbacks), reported apart as
  -- client_send_delay_ms and never charged to the server. A request that
  -- never went out (refused) or was answered before it was all sent (413)
  -- counts from the call. A new connection's handshake (from the connect
  -- to the connection, TLS included) is the server's and the network's,
  -- not the client's: a SYN that a server's full accept queue dropped
  -- waits a second for its retry (llama-server listens with a backlog
  -- of 5). It is connect_ms, taken out of the send delay. A connection
  -- opened ahead of the call (http.prepare's req:connect: a closed loop's
  -- first wave) began before it: only the part of its handshake after the
  -- call is taken out.
  if t.sent then rec.t_wire_sent_ns = t.sent end
  local wire = t.sent and (not t.first_byte or t.sent <= t.first_byte) and t.sent or nil
  rec.t_latency_start_ns = wire or t.start
  if wire then
    -- from the name's resolution (curl gives none for an address it did
    -- not have to resolve: then from the call)
    local connected, from = t.tls or t.connect, t.dns or t.start
    local handshake = connected and connected >= from and connected <= wire and connected - from or nil
    if handshake then rec.connect_ms = handshake / 1e6 end
    local after_call = handshake and math.max(0, connected - math.max(from, t.start)) or 0
    rec.client_send_delay_ms = (wire - t.start - after_call) / 1e6
  end
  rec.transport = r.transport
  rec.resent = r.resent   -- sent again: its kept connection was found closed
  rec.ttfb_ms = ms(t.first_byte, rec.t_latency_start_ns)
  rec.e2el_ms = ms(t["end"], rec.t_latency_start_ns)
  -- an error status (the transport's kind http_<status>): the body says why
  if r.error and r.status >= 400 and r.error == "http_" .. math.tointeger(r.status) then
    rec.error_detail = M.error_detail(r.body) or rec.error_detail
  end
  if r.llm then
    streamed_record(rec, r, request)
    if stream_stats and not rec.server then rec.server_stats = stream_stats end
  elseif not r.error then
    whole_record(rec, r, kind, dialect, request)
  end
  if r.events and r.llm then rec.events = r.events end
  rec.ok = rec.error == nil
  -- this client's `error` is a kind already (http.md's reasons, bad_json,
  -- server_error, empty_response): said as one, so bench.summary counts it
  -- without reading the word
  rec.error_kind = rec.error
  return rec
end

-- The prompt's token count and its source, on every record
-- (docs/tokenizer.md): the caller's count with the server's tokenizer
-- (args.input_tokens_exact), else the server's own (usage or timings),
-- else an estimate: ~4 bytes a token, or this client's ratio once a
-- response's usage calibrated it (the record's input_tokens_note says so).
function M.input_tokens(client, rec, args, bytes)
  if math.type(args.input_tokens_exact) == "integer" then
    rec.input_tokens, rec.input_tokens_source = args.input_tokens_exact, "tokenizer"
  elseif rec.prompt_tokens then
    rec.input_tokens, rec.input_tokens_source = rec.prompt_tokens, "usage"
    -- from a prompt long enough that a chat template's few tokens do not skew it
    if not client.bytes_per_token and bytes >= 256 and rec.prompt_tokens > 0 then
      client.bytes_per_token = bytes / rec.prompt_tokens
    end
  else
    rec.input_tokens = math.max(1, math.ceil(bytes / (client.bytes_per_token or 4)))
    rec.input_tokens_source = "estimate"
    rec.input_tokens_note = client.bytes_per_token
      and string.format("estimated at %.2f bytes a token, calibrated from this server's first usage count", client.bytes_per_token)
      or "estimated at ~4 bytes a token (no tokenizer or usage count)"
  end
end

-- The logprobs a request asked for: rec.logprobs (bench.logprobs.decode's
-- list), and a note where some or all are missing (a server that sends
-- none, or none on some tokens): never an error of the request.
function M.take_logprobs(rec, r)
  local m = r.llm
  if not m then
    rec.logprobs_note = "logprobs are read from streamed answers only"
    return
  end
  local list, missing = logprobs.decode(m.logprobs)
  if not list then
    if rec.ok then rec.logprobs_note = "the server sent no logprobs (" .. tostring(rec.dialect) .. ")" end
    return
  end
  rec.logprobs = list
  missing = missing + (m.text_no_logprobs or 0)
  if missing > 0 then
    rec.logprobs_missing = missing
    rec.logprobs_note = string.format("%d token(s) or event(s) came without logprobs", missing)
  end
end

return M
