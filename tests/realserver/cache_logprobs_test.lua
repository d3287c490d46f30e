-- Prefix caching and quality by logprobs against the real llama-server
-- (issue 16, items 3 and 4): cached tokens rise on a repeated prefix and
-- the reported hit rate matches the server's own count (prompt tokens -
-- timings.prompt_n, b4748's way); the slot erase resets it (and a server
-- started without --slot-save-path says why it cannot); a variant's KL
-- with itself is 0 and the Q4_0 model's is above the Q8_0 model's, both
-- against the F16 reference.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local R = dofile(os.getenv("BENCHRUN_TESTS") .. "/realserver/rslib.lua")
local rs = R.setup()
local openai = require("bench.openai")
local cache = require("bench.cache")
local logprobs = require("bench.logprobs")

local PROMPT = string.rep("The quick brown fox jumps over the lazy dog. ", 12)

T.case("a repeated prefix is cached; the hit rate is the server's count; the slot erase resets it", function()
  local dir = T.tmpdir()
  local srv <close> = R.start(rs, "tiny.gguf", {"--parallel", "1", "--slots", "--slot-save-path", dir})
  local c = openai.client{base_url = srv.base_url, dialect = srv.dialect, model = srv.model}
  local a = c:chat{prompt = PROMPT, max_tokens = 4, extra = {temperature = 0}}
  local b = c:chat{prompt = PROMPT, max_tokens = 4, extra = {temperature = 0}}
  T.eq(a.ok and b.ok, true, "requests")
  T.eq(b.cache_source ~= nil, true, "the server said how much was cached")
  T.eq(b.cached_tokens > a.cached_tokens, true, string.format("cached tokens rise: %d then %d", a.cached_tokens, b.cached_tokens))
  T.eq(b.cached_tokens >= b.prompt_tokens - 2, true, "all of the repeat but its last token(s): " .. b.cached_tokens)
  T.eq(b.cached_tokens, b.prompt_tokens - b.server.prompt_n, "cached = prompt tokens - timings.prompt_n")
  local acc = cache.accumulator()
  acc:add(a) acc:add(b)
  local res = acc:result()
  T.eq(res.hit_rate, (a.cached_tokens + b.cached_tokens) / (a.prompt_tokens + b.prompt_tokens), "the reported hit rate")
  T.eq(res.hit_requests, a.cached_tokens > 0 and 2 or 1, "requests with a hit")
  local r = cache.reset(srv.base_url, "llama-server", "llama.cpp")
  T.eq(r.ok, true, "slot erase: " .. tostring(r.detail))
  local after = c:chat{prompt = PROMPT, max_tokens = 4, extra = {temperature = 0}}
  T.eq(after.cached_tokens, 0, "cold after the erase")
end)

T.case("without --slot-save-path the erase is refused: the reset says why", function()
  local srv <close> = R.start(rs, "tiny.gguf", {"--parallel", "1"})
  local r = cache.reset(srv.base_url, "llama-server", "llama.cpp")
  T.eq(r.ok, false, "not reset")
  T.eq(r.detail:match("501") ~= nil and r.detail:match("slot%-save%-path") ~= nil, true, r.detail)
end)

local PROMPTS = {"Once upon a time", "The capital of France is", "def fibonacci(n):", "1, 2, 3, 4,"}

local function answers(model)
  local srv <close> = R.start(rs, model, {"--parallel", "1"})
  local c = openai.client{base_url = srv.base_url, dialect = srv.dialect, model = srv.model}
  local out = {}
  for i, p in ipairs(PROMPTS) do
    local r = c:complete{prompt = p, max_tokens = 24, logprobs = 5, native = true,
                         extra = {ignore_eos = true, cache_prompt = false}}
    assert(r.ok and r.logprobs, model .. ": " .. tostring(r.error_detail or r.logprobs_note))
    out[i] = r.logprobs
  end
  return out
end

local function kl(ref, var)
  local s, n = 0, 0
  for i = 1, #ref do
    local cmp = logprobs.compare(ref[i], var[i])
    if cmp.kl_mean then s, n = s + cmp.kl_mean * cmp.kl_positions, n + cmp.kl_positions end
  end
  return s / n
end

T.case("KL against F16: itself 0, Q4_0 above Q8_0", function()
  local f16 = answers("small-f16.gguf")
  local again = answers("small-f16.gguf")
  for i = 1, #f16 do
    local cmp = logprobs.compare(f16[i], again[i])
    T.eq(cmp.kl_mean, 0, "F16 with itself, prompt " .. i)
    T.eq(cmp.top1_agreement, 1, "F16 top-1 with itself")
  end
  local k8, k4 = kl(f16, answers("small-q8_0.gguf")), kl(f16, answers("small-q4_0.gguf"))
  print(string.format("KL against F16: Q8_0 %.6f, Q4_0 %.6f", k8, k4))
  T.eq(k4 > k8, true, string.format("KL Q8_0 %.6f < Q4_0 %.6f", k8, k4))
end)

T.done()
