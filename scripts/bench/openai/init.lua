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
local logprobs = require("bench.logprobs")
local record = require("bench.openai.record")

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

local merge = util.merge

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

local function request_opts(self, method, path, body, stream, opts)
  return {
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

local function send(self, method, path, body, stream, opts)
  return http.request(request_opts(self, method, path, body, stream, opts))
end

-- client:models() -> list of model ids, or nil, error
function Client:models()
  local d = DIALECTS[self.dialect]
  local r = send(self, "GET", d.paths.models, nil, false, nil)
  if r.error then return nil, r.error .. (r.body and r.body ~= "" and (": " .. (record.error_detail(r.body) or "")) or "") end
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
      -- one listing at a time: the requests that start together (a closed
      -- loop's first wave) wait for the one in flight instead of each
      -- asking /v1/models
      if not self.listing then
        self.listing = bench.spawn(function() return self:models() end)
      end
      local listing = self.listing
      local ids = listing:join()
      if self.listing == listing then self.listing = nil end
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

-- The request of a call: its path, body and stream kind (raises for a
-- caller's mistake). -> path, body, stream, dialect
local function prepare(self, kind, args, who)
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
  return path, body, stream, d
end

-- The record of a call's response r.
local function finish(self, kind, args, r, d)
  -- what the call offered (tools, response_format): the schemas its answer is checked against
  local rec = record.make(r, kind, merge(copy(self.extra), args.extra), self.dialect, d.stream_stats)
  local bytes = record.prompt_bytes(args)
  record.check_prompt(rec, bytes, args.expect_prompt_tokens)
  record.input_tokens(self, rec, args, bytes)
  if args.logprobs ~= nil then record.take_logprobs(rec, r) end
  return rec
end

-- A call in steps: client:prepare("chat"|"complete", args) builds the
-- request (body, headers, limits; a caller's mistake raises here);
-- prepared:connect() opens its connection ahead (http.prepare's
-- req:connect); prepared:start() sends it, once, and returns at once
-- (client:start does both); prepared:start_after(pending) has the loop
-- send it when that one ends cleanly (pending:sent() says if it went);
-- pending:wait() waits for its end (-> false if the transfer failed:
-- refused, reset, timed out); pending:record() -> the record, as
-- client:chat would return it; pending:close() aborts it. bench.load's
-- closed loop sends a user's next request between wait and record, so a
-- response's table and record never stand before that write.
local Prepared = {}
Prepared.__index = Prepared
local Pending = {}
Pending.__index = Pending
function Pending:wait() return self.req:wait() end
function Pending:close() self.req:close() end
function Pending:record()
  local p = self.prepared
  return finish(p.client, p.kind, p.args, self.req:result(), p.dialect)
end

function Prepared:connect() self.req:connect() end
function Prepared:start()
  return setmetatable({prepared = self, req = self.req:send()}, Pending)
end
-- sent from the loop when `pending` ends without a transfer error (and
-- before not_after_ns): http's req:send_after; the result's sent() says
-- whether it went
function Prepared:start_after(pending, not_after_ns)
  return setmetatable({prepared = self, req = self.req:send_after(pending.req, not_after_ns)}, Pending)
end
function Pending:sent() return self.req:sent() end
function Prepared:close() self.req:close() end

-- the prepared request of client:prepare and client:start (who: the name
-- their errors carry)
local function prepared(self, kind, args, who)
  if kind ~= "chat" and kind ~= "complete" then
    error(who .. ": kind: expected \"chat\" or \"complete\", got " .. tostring(kind), 3)
  end
  local path, body, stream, d = prepare(self, kind, args, who)
  return setmetatable({client = self, kind = kind, args = args, dialect = d,
                       req = http.prepare(request_opts(self, "POST", path, body, stream, args))}, Prepared)
end

function Client:prepare(kind, args)
  local p = prepared(self, kind, args, "openai.prepare")
  return p
end

function Client:start(kind, args)
  return prepared(self, kind, args, "openai.start"):start()
end

-- client:chat{messages = {...} | prompt = "text", system?, model?, max_tokens?,
--   stream? (default true), extra?, headers?, timeout?, on_event?, raw?,
--   expect_prompt_tokens? (the prompt's own count: a server count below 3/4
--   of it flags prompt_truncated)} -> record
function Client:chat(args)
  local path, body, stream, d = prepare(self, "chat", args, "openai.chat")
  return finish(self, "chat", args, send(self, "POST", path, body, stream, args), d)
end

-- client:complete{prompt, model?, max_tokens?, stream?, extra?, native? (llama.cpp /completion), ...} -> record
function Client:complete(args)
  local path, body, stream, d = prepare(self, "complete", args, "openai.complete")
  return finish(self, "complete", args, send(self, "POST", path, body, stream, args), d)
end

return M
