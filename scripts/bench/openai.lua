-- bench.openai: an LLM client for OpenAI-style servers and their dialects
-- (vLLM, SGLang, mlx_lm.server, vllm-mlx, llama.cpp's llama-server, LM Studio
-- /v1 and /api/v0, Ollama /v1 and its native NDJSON API), measuring each
-- request the way vLLM's `bench serve` does.
--
--   local openai = require("bench.openai")
--   local client = openai.client{base_url = "http://127.0.0.1:1234", dialect = "openai", model = "m"}
--   local rec = client:chat{prompt = "Hello", max_tokens = 64}
--   print(rec.ok, rec.ttft_ms, rec.output_tokens, rec.token_source, rec.text)
--
-- Streamed events are timestamped and decoded in C (bench.http with
-- decode = "openai"|"ollama"); this file only builds requests and turns one
-- response into one record. A failed request is a record with ok = false and
-- error = a short reason (see docs/openai.md), never a raised error.
-- The API key is read from the environment variable named by api_key_env at
-- each request and is never stored in the client, a record or a log.
local http = require("bench.http")
local json = require("cjson")
local util = require("bench.util")
local toolcall = require("bench.toolcall")
local cache = require("bench.cache")
local logprobs = require("bench.logprobs")

local M = {}

-- Each dialect: its endpoints, whether it takes stream_options, and the
-- wire format of its streams.
local OPENAI_PATHS = {chat = "/v1/chat/completions", complete = "/v1/completions", models = "/v1/models"}
local DIALECTS = {
  ["openai"] = {paths = OPENAI_PATHS, usage_option = true},
  ["vllm"] = {paths = OPENAI_PATHS, usage_option = true},
  ["sglang"] = {paths = OPENAI_PATHS, usage_option = true},
  ["mlx-lm"] = {paths = OPENAI_PATHS, usage_option = true},
  ["vllm-mlx"] = {paths = OPENAI_PATHS, usage_option = true},
  ["llama.cpp"] = {paths = OPENAI_PATHS, usage_option = true, native_complete = "/completion"},
  ["lmstudio"] = {paths = OPENAI_PATHS, usage_option = true},
  ["lmstudio-v0"] = {paths = {chat = "/api/v0/chat/completions", complete = "/api/v0/completions",
                              models = "/api/v0/models"}, usage_option = false,
                   -- LM Studio sends stats only in non-streamed answers
                   stream_stats = "none: LM Studio sends stats only in non-streamed /api/v0 answers"},
  ["ollama"] = {paths = OPENAI_PATHS, usage_option = true},
  ["ollama-native"] = {paths = {chat = "/api/chat", complete = "/api/generate", models = "/api/tags"},
                       ndjson = true},
}
local ALIASES = {["llama-server"] = "llama.cpp", ["llamacpp"] = "llama.cpp", ["mlx_lm"] = "mlx-lm",
                 ["mlx"] = "mlx-lm", ["lm-studio"] = "lmstudio", ["lms"] = "lmstudio"}

M.dialects = {}
for name in pairs(DIALECTS) do M.dialects[#M.dialects + 1] = name end
table.sort(M.dialects)

-- Ollama's native API takes sampling options under "options".
local OLLAMA_OPTIONS = {temperature = true, seed = true, top_p = true, top_k = true, min_p = true,
                       num_ctx = true, repeat_penalty = true, stop = true, num_predict = true,
                       presence_penalty = true, frequency_penalty = true, typical_p = true}

-- Every request ends: connect within 30 s, a first byte within 5 min (a long
-- prefill, a model loaded on demand), never 5 min without a token, and a
-- total of first_byte + max_tokens / min_tps (max_tokens unknown: 4,096), so
-- a server that accepts and never answers, trickles its head, or sends only
-- keep-alive comments still ends as a timeout of its kind (docs/openai.md).
local DEFAULT_TIMEOUT = {connect = 30, first_byte = 300, idle = 300, min_tps = 1}
local DEFAULT_MAX_TOKENS_FOR_TOTAL = 4096
M.DEFAULT_TIMEOUT = DEFAULT_TIMEOUT

local Client = {}
Client.__index = Client

local copy = util.copy

local function merge(into, from)
  for k, v in pairs(from or {}) do into[k] = v end
  return into
end

local TIMEOUT_FIELDS = {connect = true, first_byte = true, idle = true, total = true, min_tps = true}

local function check_timeout(t, who)
  if t == nil then return end
  if type(t) == "number" then
    if t ~= t or t <= 0 then error(who .. ": timeout: expected seconds > 0", 3) end
    return
  end
  if type(t) ~= "table" then error(who .. ": timeout: expected seconds or {connect, first_byte, idle, total, min_tps}", 3) end
  for k, v in pairs(t) do
    if not TIMEOUT_FIELDS[k] then
      error(who .. ": timeout: unknown field " .. tostring(k) .. " (expected connect, first_byte, idle, total, min_tps)", 3)
    end
    if type(v) ~= "number" or v ~= v or v <= 0 then
      error(who .. ": timeout." .. k .. ": expected " .. (k == "min_tps" and "tokens per second" or "seconds") .. " > 0", 3)
    end
  end
end

-- The limits of one request: the defaults, then the client's, then the
-- call's (a number is a total); total, unless given, follows from max_tokens.
local function request_timeout(client_timeout, call_timeout, max_tokens)
  local t = copy(DEFAULT_TIMEOUT)
  for _, over in ipairs{client_timeout or false, call_timeout or false} do
    if type(over) == "number" then t.total = over
    elseif type(over) == "table" then merge(t, over) end
  end
  if not t.total then
    t.total = t.first_byte + (max_tokens or DEFAULT_MAX_TOKENS_FOR_TOTAL) / t.min_tps
  end
  t.min_tps = nil
  return t
end
M.request_timeout = request_timeout

-- openai.client{base_url, dialect?, model?, api_key_env?, timeout?, extra?,
--   include_usage? (default true where the dialect takes it), headers?}
function M.client(opts)
  if type(opts) ~= "table" then error("openai.client: expected a table of options", 2) end
  local base = opts.base_url or opts.url
  if type(base) ~= "string" or not base:match("^https?://") then
    error("openai.client: base_url: expected \"http://host:port\" or \"https://...\", got " .. tostring(base), 2)
  end
  base = base:gsub("/+$", ""):gsub("/v1$", "")
  local dialect = opts.dialect or "openai"
  dialect = ALIASES[dialect] or dialect
  if not DIALECTS[dialect] then
    error("openai.client: dialect: expected one of " .. table.concat(M.dialects, ", ") .. ", got " .. tostring(dialect), 2)
  end
  if opts.api_key_env ~= nil and type(opts.api_key_env) ~= "string" then
    error("openai.client: api_key_env: expected the name of an environment variable", 2)
  end
  if opts.extra ~= nil and type(opts.extra) ~= "table" then error("openai.client: extra: expected a table", 2) end
  check_timeout(opts.timeout, "openai.client")
  return setmetatable({
    base_url = base,
    dialect = dialect,
    model = opts.model,
    api_key_env = opts.api_key_env,
    timeout = opts.timeout,
    extra = copy(opts.extra),
    headers = copy(opts.headers),
    include_usage = opts.include_usage ~= false and DIALECTS[dialect].usage_option or false,
    insecure = opts.insecure,
    http2 = opts.http2,
    transport = opts.transport,
  }, Client)
end

function Client:__tostring()
  return string.format("bench.openai client (%s, %s%s)", self.base_url, self.dialect,
                       self.model and (", " .. self.model) or "")
end

local function request_headers(self, extra)
  local h = {["Content-Type"] = "application/json", ["Accept"] = "application/json, text/event-stream"}
  merge(h, self.headers)
  merge(h, extra)
  if self.api_key_env then
    local key = os.getenv(self.api_key_env)
    if key and key ~= "" then h["Authorization"] = "Bearer " .. key end
  end
  return h
end

local function send(self, method, path, body, stream, opts)
  return http.request{
    url = self.base_url .. path, method = method, body = body,
    headers = request_headers(self, opts and opts.headers),
    stream = stream or false,
    decode = stream and (stream == "ndjson" and "ollama" or "openai") or nil,
    raw = opts and opts.raw,
    timeout = request_timeout(self.timeout, opts and opts.timeout, opts and opts.max_tokens),
    on_event = opts and opts.on_event,
    max_event_bytes = opts and opts.max_event_bytes,
    insecure = self.insecure, http2 = self.http2, transport = self.transport,
  }
end

-- A short human reason from an error body (OpenAI {"error": {"message"}},
-- Ollama {"error": "..."}), else its first bytes.
local function error_detail(body)
  if not body or body == "" then return nil end
  local ok, v = pcall(json.decode, body)
  if ok and type(v) == "table" then
    local e = v.error or v.detail or v.message
    if type(e) == "table" then e = e.message or e.msg end
    if type(e) == "string" then return e end
  end
  return body:sub(1, 200)
end

-- client:models() -> list of model ids, or nil, error
function Client:models()
  local d = DIALECTS[self.dialect]
  local r = send(self, "GET", d.paths.models, nil, false, nil)
  if r.error then return nil, r.error .. (r.body and r.body ~= "" and (": " .. (error_detail(r.body) or "")) or "") end
  local ok, v = pcall(json.decode, r.body)
  if not ok or type(v) ~= "table" then return nil, "bad_json: " .. self.base_url .. d.paths.models .. " did not answer JSON" end
  local list = {}
  for _, m in ipairs(v.data or v.models or {}) do
    local id = type(m) == "table" and (m.id or m.name or m.model) or m
    if type(id) == "string" then list[#list + 1] = id end
  end
  return list
end

-- ---- request bodies ----

local function messages_of(args, who)
  if args.messages ~= nil then
    if type(args.messages) ~= "table" then error(who .. ": messages: expected a list of {role, content}", 3) end
    return args.messages
  end
  if type(args.prompt) ~= "string" then error(who .. ": expected messages = {...} or prompt = \"text\"", 3) end
  local m = {}
  if args.system then m[1] = {role = "system", content = args.system} end
  m[#m + 1] = {role = "user", content = args.prompt}
  return m
end

-- The model a request names: the call's, else the client's, else the one the
-- server lists. No name is ever made up: vLLM answers 404 to a model it does
-- not serve and mlx-lm tries to load a repository of that name. So the first
-- request asks /v1/models (once per client, kept in self.listed_model): one
-- id is sent from then on; several or none (mlx-lm lists every model in the
-- Hugging Face cache) send no model field, and the server uses its own
-- (mlx-lm: its --model; llama-server: the loaded one). Returns the id or nil.
local function model_of(self, args, who)
  local model = args.model or self.model
  if model == nil then
    if self.dialect == "ollama-native" or self.dialect == "ollama" then
      error(who .. ": model: this dialect needs a model name (client{model = ...} or the call's model)", 3)
    end
    if self.listed_model == nil then
      local ids = self:models()
      -- a failed listing is asked again at the next request
      if ids then self.listed_model = #ids == 1 and ids[1] or false end
    end
    model = self.listed_model or nil
  end
  return model
end

local function build_body(self, kind, args, who)
  local native_ollama = self.dialect == "ollama-native"
  local stream = args.stream ~= false
  local extra = merge(copy(self.extra), args.extra)
  local body = {}
  if kind == "chat" then
    body.messages = messages_of(args, who)
  else
    if type(args.prompt) ~= "string" then error(who .. ": prompt: expected a string", 3) end
    body.prompt = args.prompt
  end
  local native_llama = kind == "complete" and args.native and self.dialect == "llama.cpp"
  if args.logprobs ~= nil then
    if math.type(args.logprobs) ~= "integer" or args.logprobs < 0 or args.logprobs > 20 then
      error(who .. ": logprobs: expected an integer 0..20 (top logprobs per token), got " .. tostring(args.logprobs), 3)
    end
    merge(extra, logprobs.request_fields(kind, self.dialect, native_llama, args.logprobs))
  end
  if not native_llama then body.model = model_of(self, args, who) end
  body.stream = stream
  if args.max_tokens ~= nil and (math.type(args.max_tokens) ~= "integer" or args.max_tokens <= 0) then
    error(who .. ": max_tokens: expected an integer > 0, got " .. tostring(args.max_tokens), 3)
  end
  if native_ollama then
    local options = {}
    if args.max_tokens then options.num_predict = args.max_tokens end
    for k, v in pairs(extra) do
      if OLLAMA_OPTIONS[k] then options[k] = v
      elseif k == "options" and type(v) == "table" then merge(options, v)
      else body[k] = v end
    end
    if next(options) then body.options = options end
  else
    if args.max_tokens then
      if native_llama then body.n_predict = args.max_tokens else body.max_tokens = args.max_tokens end
    end
    if stream and self.include_usage and not native_llama then body.stream_options = {include_usage = true} end
    merge(body, extra)
  end
  return json.encode(body)
end

-- ---- records ----

local stream_error_message, is_burst, take_logprobs

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

local num = util.finite

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
  local rt = type(details) == "table" and num(details.reasoning_tokens) or (usage and num(usage.reasoning_tokens))
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
local function check_prompt(rec, sent_bytes, expect)
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
local function prompt_bytes(args)
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

local function make_record(self, r, kind, stream, request)
  local t = r.timings
  local rec = {
    ok = false, error = r.error, error_detail = r.error_detail, status = r.status,
    dialect = self.dialect, api = kind,
    t_sent_ns = t.start, t_first_byte_ns = t.first_byte, t_end_ns = t["end"],
  }
  -- Latencies start on the wire: when the request's last byte was written
  -- (curl: when it was about to send). What came before is the client's
  -- own delay (its queue, other requests' callbacks), reported apart as
  -- client_send_delay_ms and never charged to the server. A request that
  -- never went out (refused) or was answered before it was all sent (413)
  -- counts from the call.
  if t.sent then rec.t_wire_sent_ns = t.sent end
  local wire = t.sent and (not t.first_byte or t.sent <= t.first_byte) and t.sent or nil
  rec.t_latency_start_ns = wire or t.start
  if wire then rec.client_send_delay_ms = ms(wire, t.start) end
  rec.transport = r.transport
  rec.ttfb_ms = ms(t.first_byte, rec.t_latency_start_ns)
  rec.e2el_ms = ms(t["end"], rec.t_latency_start_ns)
  -- an error status (the transport's kind http_<status>): the body says why
  if r.error and r.status >= 400 and r.error == "http_" .. math.tointeger(r.status) then
    rec.error_detail = error_detail(r.body) or rec.error_detail
  end
  if r.llm then
    streamed_record(rec, r, request)
    local d = DIALECTS[self.dialect]
    if d and d.stream_stats and not rec.server then rec.server_stats = d.stream_stats end
  elseif not r.error then
    whole_record(rec, r, kind, self.dialect, request)
  end
  if r.events and r.llm then rec.events = r.events end
  rec.ok = rec.error == nil
  return rec
end

-- The prompt's token count and its source, on every record
-- (docs/tokenizer.md): the caller's count with the server's tokenizer
-- (args.input_tokens_exact), else the server's own (usage or timings),
-- else an estimate: ~4 bytes a token, or this client's ratio once a
-- response's usage calibrated it (the record's input_tokens_note says so).
local function input_tokens(self, rec, args, bytes)
  if math.type(args.input_tokens_exact) == "integer" then
    rec.input_tokens, rec.input_tokens_source = args.input_tokens_exact, "tokenizer"
  elseif rec.prompt_tokens then
    rec.input_tokens, rec.input_tokens_source = rec.prompt_tokens, "usage"
    -- from a prompt long enough that a chat template's few tokens do not skew it
    if not self.bytes_per_token and bytes >= 256 and rec.prompt_tokens > 0 then
      self.bytes_per_token = bytes / rec.prompt_tokens
    end
  else
    rec.input_tokens = math.max(1, math.ceil(bytes / (self.bytes_per_token or 4)))
    rec.input_tokens_source = "estimate"
    rec.input_tokens_note = self.bytes_per_token
      and string.format("estimated at %.2f bytes a token, calibrated from this server's first usage count", self.bytes_per_token)
      or "estimated at ~4 bytes a token (no tokenizer or usage count)"
  end
end

-- The logprobs a request asked for: rec.logprobs (bench.logprobs.decode's
-- list), and a note where some or all are missing (a server that sends
-- none, or none on some tokens): never an error of the request.
take_logprobs = function(rec, r)
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

local function call(self, kind, args, who)
  if type(args) ~= "table" then error(who .. ": expected a table of arguments", 3) end
  if args.on_event ~= nil and type(args.on_event) ~= "function" then error(who .. ": on_event: expected a function", 3) end
  if args.expect_prompt_tokens ~= nil and (math.type(args.expect_prompt_tokens) ~= "integer" or args.expect_prompt_tokens < 0) then
    error(who .. ": expect_prompt_tokens: expected an integer >= 0, got " .. tostring(args.expect_prompt_tokens), 3)
  end
  check_timeout(args.timeout, who)
  local d = DIALECTS[self.dialect]
  local path = d.paths[kind]
  if kind == "complete" and args.native then
    if not d.native_complete then error(who .. ": native = true is only for the llama.cpp dialect", 3) end
    path = d.native_complete
  end
  local body = build_body(self, kind, args, who)
  local stream = args.stream ~= false and (d.ndjson and "ndjson" or "sse") or nil
  local r = send(self, "POST", path, body, stream, args)
  -- what the call offered (tools, response_format): the schemas its answer is checked against
  local rec = make_record(self, r, kind, stream, merge(copy(self.extra), args.extra))
  check_prompt(rec, prompt_bytes(args), args.expect_prompt_tokens)
  input_tokens(self, rec, args, prompt_bytes(args))
  if args.logprobs ~= nil then take_logprobs(rec, r) end
  return rec
end

-- client:chat{messages = {...} | prompt = "text", system?, model?, max_tokens?,
--   stream? (default true), extra?, headers?, timeout?, on_event?, raw?,
--   expect_prompt_tokens? (the prompt's own count: a server count below 3/4
--   of it flags prompt_truncated)} -> record
function Client:chat(args)
  return call(self, "chat", args, "openai.chat")
end

-- client:complete{prompt, model?, max_tokens?, stream?, extra?, native? (llama.cpp /completion), ...} -> record
function Client:complete(args)
  return call(self, "complete", args, "openai.complete")
end

return M
