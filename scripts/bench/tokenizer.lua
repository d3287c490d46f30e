-- bench.tokenizer: a server's own token counts (docs/tokenizer.md).
--
--   local tokenizer = require("bench.tokenizer")
--   local tok = tokenizer.for_server{base_url = srv.base_url, dialect = srv.dialect, model = srv.model}
--   local n, source = tok:count("some text")   -- source: "tokenizer" or "estimate"
--   local ids = tok:tokenize("some text"); local text = tok:detokenize(ids)
--   local n_ctx = tok:context()                -- the server's context, where it says
--
-- Each server's own endpoint, in its real wire format:
--   llama.cpp (examples/server c392e509): POST /tokenize {content, add_special}
--     -> {tokens: [ids]}; POST /detokenize {tokens} -> {content}; GET /props
--     -> default_generation_settings.n_ctx (the context of one slot).
--     add_special = true counts the BOS its /v1/completions adds.
--   vLLM (entrypoints/openai protocol.py) and SGLang (srt/entrypoints):
--     POST /tokenize {model, prompt, add_special_tokens} -> {count, tokens,
--     max_model_len}; POST /detokenize {model, tokens} -> {prompt} (vLLM) or
--     {text} (SGLang).
--   Ollama has no tokenizer endpoint: its prompt_eval_count (the usage of an
--   answer) is the count, so its kind is "usage".
-- A server without one (a 404, or a dialect that has none) is a tokenizer
-- of kind "usage": counts are estimates at ~4 bytes a token until
-- tok:calibrate(bytes, prompt_tokens) learns the server's ratio from a
-- response's usage.prompt_tokens; tok.note says which, so a record and the
-- report can say so. Never raises for a server's failure.
local http = require("bench.http")
local json = require("cjson")

local tokenizer = {}

tokenizer.DEFAULT_BYTES_PER_TOKEN = 4

-- The wire format each dialect's server speaks; "probe" tries vLLM's
-- format, then llama.cpp's (an OpenAI-style server may be either).
local BY_DIALECT = {
  ["llama.cpp"] = "llama.cpp", vllm = "vllm", sglang = "vllm", openai = "probe",
  ollama = "usage", ["ollama-native"] = "usage",
}
local BY_BACKEND = {["llama-server"] = "llama.cpp", vllm = "vllm", sglang = "vllm", ollama = "usage"}

local Tok = {}
Tok.__index = Tok

local function post(self, path, body)
  local r = http.request{url = self.base_url .. path, method = "POST", body = json.encode(body),
                         headers = {["Content-Type"] = "application/json"}, timeout = {total = self.timeout}}
  if r.error then
    return nil, string.format("POST %s: %s%s", path, r.error, r.status and (" " .. r.status) or "")
  end
  local ok, v = pcall(json.decode, r.body or "")
  if not ok or type(v) ~= "table" then return nil, "POST " .. path .. ": the answer is not a JSON object" end
  return v
end

-- the ids of an answer's tokens: a list of ids or (with pieces) of {id}
local function ids_of(list)
  if type(list) ~= "table" then return nil end
  local out = {}
  for i, t in ipairs(list) do
    out[i] = type(t) == "table" and t.id or t
    if type(out[i]) ~= "number" then return nil end
  end
  return out
end

local FORMATS = {
  ["llama.cpp"] = {
    tokenize = function(self, text)
      local v, why = post(self, "/tokenize", {content = text, add_special = self.add_special})
      if not v then return nil, why end
      local ids = ids_of(v.tokens)
      if not ids then return nil, "POST /tokenize: expected {\"tokens\": [ids]}" end
      return ids
    end,
    detokenize = function(self, ids)
      local v, why = post(self, "/detokenize", {tokens = ids})
      if not v then return nil, why end
      if type(v.content) ~= "string" then return nil, "POST /detokenize: expected {\"content\": text}" end
      return v.content
    end,
  },
  vllm = {
    tokenize = function(self, text)
      local v, why = post(self, "/tokenize", {model = self.model, prompt = text, add_special_tokens = self.add_special})
      if not v then return nil, why end
      local ids = ids_of(v.tokens)
      if not ids then return nil, "POST /tokenize: expected {\"count\", \"tokens\": [ids]}" end
      local n = math.tointeger(v.max_model_len)   -- cjson reads numbers as floats
      if n and n > 0 then self.n_ctx = n end
      return ids
    end,
    detokenize = function(self, ids)
      local v, why = post(self, "/detokenize", {model = self.model, tokens = ids})
      if not v then return nil, why end
      local text = v.prompt or v.text
      if type(text) ~= "string" then return nil, "POST /detokenize: expected {\"prompt\": text} or {\"text\": text}" end
      return text
    end,
  },
}

-- tokenizer.for_server{base_url, dialect?, backend?, model?, add_special? (default true), timeout?}
function tokenizer.for_server(opts)
  if type(opts) ~= "table" or type(opts.base_url) ~= "string" then
    error("tokenizer.for_server: expected {base_url = \"http://host:port\", dialect?, backend?, model?}", 2)
  end
  local kind = BY_BACKEND[opts.backend] or BY_DIALECT[opts.dialect] or "usage"
  return setmetatable({
    base_url = opts.base_url:gsub("/+$", ""):gsub("/v1$", ""),
    dialect = opts.dialect, model = opts.model, kind = kind,
    add_special = opts.add_special ~= false, timeout = opts.timeout or 120,
    bytes_per_token = tokenizer.DEFAULT_BYTES_PER_TOKEN,
    note = kind == "usage" and "this server has no tokenizer endpoint: prompt tokens are estimated at ~4 bytes each"
           .. " until a response's usage calibrates the estimate" or nil,
  }, Tok)
end

-- The first format that answers; a server that has none becomes "usage"
-- and says why in tok.note.
local function resolve(self)
  if self.format ~= nil then return self.format end
  local tries = self.kind == "probe" and {"vllm", "llama.cpp"} or FORMATS[self.kind] and {self.kind} or {}
  local whys = {}
  for _, name in ipairs(tries) do
    local ids, why = FORMATS[name].tokenize(self, "probe")
    if ids then
      self.format, self.kind = name, name
      return name
    end
    whys[#whys + 1] = why
  end
  self.format, self.kind = false, "usage"
  self.note = "this server has no tokenizer endpoint" .. (#whys > 0 and (" (" .. table.concat(whys, "; ") .. ")") or "")
    .. ": prompt tokens are estimated at ~4 bytes each until a response's usage calibrates the estimate"
  return false
end

-- tok:tokenize(text) -> ids | nil, why
function Tok:tokenize(text)
  if type(text) ~= "string" then error("tokenizer:tokenize: expected a string", 2) end
  local f = resolve(self)
  if not f then return nil, self.note end
  return FORMATS[f].tokenize(self, text)
end

-- tok:detokenize(ids) -> text | nil, why
function Tok:detokenize(ids)
  if type(ids) ~= "table" then error("tokenizer:detokenize: expected a list of token ids", 2) end
  local f = resolve(self)
  if not f then return nil, self.note end
  return FORMATS[f].detokenize(self, ids)
end

-- tok:count(text) -> n, "tokenizer" | n, "estimate" (the server's ratio
-- once calibrated, else ~4 bytes a token)
function Tok:count(text)
  local ids = resolve(self) and self:tokenize(text)
  if ids then return #ids, "tokenizer" end
  return math.max(1, math.ceil(#text / self.bytes_per_token)), "estimate"
end

-- tok:calibrate(bytes, prompt_tokens) learns the server's bytes per token
-- from the first response with a usage count (later ones change nothing).
function Tok:calibrate(bytes, prompt_tokens)
  if self.calibrated or type(prompt_tokens) ~= "number" or prompt_tokens <= 0 or (bytes or 0) <= 0 then return end
  self.calibrated = true
  self.bytes_per_token = bytes / prompt_tokens
  self.note = string.format("this server has no tokenizer endpoint: prompt tokens are estimated at %.2f bytes each,"
    .. " calibrated from the first response's own count (usage.prompt_tokens; Ollama: prompt_eval_count):"
    .. " %d for %d bytes", self.bytes_per_token,
    prompt_tokens, bytes)
end

-- tok:context() -> the context (tokens) of one request, or nil: llama.cpp's
-- /props (then /slots), vLLM's and SGLang's max_model_len.
function Tok:context()
  if self.n_ctx then return self.n_ctx end
  if resolve(self) == "vllm" then self:tokenize("x") return self.n_ctx end
  for _, path in ipairs{"/props", "/slots"} do
    local r = http.request{url = self.base_url .. path, timeout = {total = 10}}
    local ok, v = pcall(json.decode, r.status == 200 and r.body or "")
    if ok and type(v) == "table" then
      local s = v.default_generation_settings or v[1]
      local n = type(s) == "table" and math.tointeger(s.n_ctx)   -- cjson reads numbers as floats
      if n and n > 0 then
        self.n_ctx = n
        return n
      end
    end
  end
  return nil
end

-- Words of the filler text: common short English words, each one token in
-- most vocabularies, so a count moves by about one per word.
local WORDS = {"the", "of", "and", "to", "in", "is", "that", "it", "was", "for", "on", "are", "as", "with",
               "his", "they", "at", "be", "this", "have", "from", "or", "one", "had", "by", "word", "but",
               "not", "what", "all", "were", "we", "when", "your", "can", "said", "there", "use", "an",
               "each", "which", "she", "do", "how", "their", "if", "will", "up", "other", "about", "out",
               "many", "then", "them", "these", "so", "some", "her", "would", "make", "like", "him", "into",
               "time", "has", "look", "two", "more", "write", "go", "see", "number", "no", "way", "could"}

-- n filler words from seed (a string), deterministic: {" w1", " w2", ...}
local function words(seed, n)
  local h = 2166136261
  for i = 1, #seed do h = ((h ~ seed:byte(i)) * 16777619) & 0xffffffff end
  local out = {}
  for i = 1, n do
    h = (h * 1103515245 + 12345) & 0x7fffffff
    out[i] = " " .. WORDS[(h >> 8) % #WORDS + 1]
  end
  return out
end

-- tokenizer.build(tok, target, seed, base?) -> text, count, source, exact:
-- base .. filler words whose count is target tokens (BOS included where
-- the server adds one), by binary search over the number of words, then
-- single characters to close the last gap.
function tokenizer.build(tok, target, seed, base)
  base = base or ""
  if target <= 0 then return base, 0, "tokenizer", target == 0 end
  local n0, src = tok:count(base ~= "" and base or " ")
  if src ~= "tokenizer" then
    -- no tokenizer: as many bytes as the (calibrated) estimate says
    local need = math.max(0, math.floor((target - (base ~= "" and n0 or 0)) * tok.bytes_per_token + 0.5))
    local text = base .. table.concat(words(seed, need // 2 + 1)):sub(1, need)
    return text, select(1, tok:count(text)), "estimate", false
  end
  local list = words(seed, 2 * target + 16)
  local function text_of(k) return base .. table.concat(list, "", 1, k) end
  local lo, hi = 0, #list      -- count(text_of(lo)) <= target < count(text_of(hi + 1))
  while lo < hi do
    local mid = (lo + hi + 1) // 2
    if tok:count(text_of(mid)) <= target then lo = mid else hi = mid - 1 end
  end
  local text = text_of(lo)
  local n = tok:count(text)
  for _ = 1, 64 do
    if n >= target then break end
    local grown = false
    for _, tail in ipairs{" a", "a", "."} do
      local m = tok:count(text .. tail)
      if m <= target then text, n, grown = text .. tail, m, true break end
    end
    if not grown then break end
  end
  return text, n, "tokenizer", n == target
end

-- tokenizer.filler(seed, n) -> n filler words from seed, as one text
function tokenizer.filler(seed, n) return table.concat(words(seed, n)) end

-- tokenizer.exact_lengths(w, tok, n) -> a workload, and a note: the
-- synthetic requests of w (bench.workload.synthetic: name "synthetic", an
-- input_tokens target, a prompt "PREFIX i: words") get a prompt whose text
-- is exactly input_tokens tokens by the server's tokenizer (its "PREFIX
-- i: " kept, the words built anew from the same index), so two servers see
-- the same target and each its own exact prompt. The text only: a chat
-- request adds its template's tokens (the record's usage counts them), as
-- vLLM's bench serve counts its random prompts. Requests 1..n are built now,
-- before the load (each takes a few /tokenize calls); later ones on first
-- use; all are kept. Other requests pass unchanged. A server without a
-- tokenizer: w unchanged, and the note says so.
tokenizer.EXACT_LENGTHS = "synthetic prompts have exactly their input tokens by the server's tokenizer "
  .. "(the chat template adds its own)"

-- tokenizer.lengths_estimated(note) -> true when a cell's prompt_lengths
-- note (exact_lengths' second result) says the lengths are estimates
function tokenizer.lengths_estimated(note)
  return type(note) == "string" and note ~= tokenizer.EXACT_LENGTHS
end

function tokenizer.exact_lengths(w, tok, n)
  tok:count(" ")   -- finds the server's format (or that it has none)
  if tok.kind == "usage" then return w, tok.note end
  local built = {}
  local function exact(i)
    if built[i] then return built[i] end
    local r = w:next(i)
    if r.name == "synthetic" and type(r.prompt) == "string" and math.type(r.input_tokens) == "integer" then
      local copy = {}
      for k, v in pairs(r) do copy[k] = v end
      local head = r.prompt:match("^(.-%d+: )") or ""
      local text, count, _, is_exact = tokenizer.build(tok, r.input_tokens, "synthetic-" .. i, head)
      copy.prompt, copy.input_tokens = text, count
      copy.input_tokens_by = is_exact and "tokenizer" or "tokenizer (nearest count)"
      r = copy
    end
    built[i] = r
    return r
  end
  for i = 1, n or 0 do exact(i) end
  local out = setmetatable({}, getmetatable(w))
  for k, v in pairs(w) do out[k] = v end
  out.next = function(_, i) return exact(i) end
  return out, tokenizer.EXACT_LENGTHS
end

return tokenizer
