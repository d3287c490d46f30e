-- Exact token counts and the context depth sweep against a real llama.cpp
-- llama-server (issue 16, items 1 and 2): its /tokenize count (with the
-- BOS, add_special) equals the usage.prompt_tokens of /v1/completions;
-- bench.tokenizer finds it and its context (/props); bench.depth builds
-- prompts of the exact count, its prefill rate (tokens / TTFT) agrees with
-- timings.prompt_per_second within 10%, a warm run prefills only what the
-- server had not cached; a depth over the context is a note.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local R = dofile(os.getenv("BENCHRUN_TESTS") .. "/realserver/rslib.lua")
local rs = R.setup()
local openai, tokenizer, depth = require("bench.openai"), require("bench.tokenizer"), require("bench.depth")

local srv <close> = R.start(rs, "tiny.gguf", {"-c", "2048"})
local c = openai.client{base_url = srv.base_url, dialect = srv.dialect, model = srv.model}
local tok = tokenizer.for_server{base_url = srv.base_url, dialect = srv.dialect, backend = "llama-server"}

T.case("/tokenize counts equal usage.prompt_tokens", function()
  for _, text in ipairs{"Hello", "Hello world, this is a test.", "Grüße, 🦙! " .. string.rep("lorem ipsum dolor ", 40)} do
    local n, src = tok:count(text)
    T.eq(src, "tokenizer", "source")
    local rec = c:complete{prompt = text, max_tokens = 2, extra = {temperature = 0}}
    assert(rec.ok, tostring(rec.error) .. " " .. tostring(rec.error_detail))
    T.eq(rec.prompt_tokens, n, "usage.prompt_tokens of " .. #text .. " bytes")
    T.eq(rec.input_tokens_source, "usage", "a record without a tokenizer count")
    local ids = assert(tok:tokenize(text))
    local back = assert(tok:detokenize(ids))
    assert(back:find(text, 1, true), "detokenize gives the text back (after the BOS): " .. back)
  end
  T.eq(tok:context(), 2048, "the slot's context from /props")
end)

T.case("depth sweep: exact prompts, prefill within 10% of timings.prompt_per_second", function()
  local recs = {}
  -- pp 1024: the server's prefill takes long enough that the fixed cost of
  -- a request (HTTP, tokenizing, the cache lookup, the first sample) stays
  -- far below 10%; three sweeps, and the median of each rate, so that one
  -- request slowed by the shared machine does not decide
  local sweeps = {}
  for k = 1, 3 do
    sweeps[k] = depth.sweep{client = c, tokenizer = tok, depths = {0, 768}, pp = 1024, tg = 8,
                            on_record = function(r) recs[#recs + 1] = r end}
  end
  local function median(xs)
    table.sort(xs)
    return xs[(#xs + 1) // 2]
  end
  for j, r in ipairs(sweeps[1]) do
    for _, ph in ipairs{"cold", "warm"} do
      local ours, theirs = {}, {}
      for k = 1, 3 do
        local m = sweeps[k][j]
        assert(not m.skipped, "measured at " .. m.depth)
        assert(m.exact, "an exact prompt at depth " .. m.depth)
        local f = m[ph]
        assert(f.ok, string.format("d%d %s: %s", m.depth, ph, tostring(f.error)))
        T.eq(f.prompt_tokens, m.depth + 1024, "prompt tokens = depth + pp")
        T.eq(f.input_tokens_source, "tokenizer", "source")
        -- a decode rate, unless the tokens came in one burst (a loaded machine)
        assert(f.decode_tps and f.decode_tps > 0 or f.burst, "a decode rate")
        ours[k], theirs[k] = f.prefill_tps, f.server_prefill_tps
      end
      local a, b = median(ours), median(theirs)
      local rel = math.abs(a - b) / b
      print(string.format("d%d %s: prefill %.1f tok/s, the server says %.1f (%.2f%% apart; medians of 3)",
                          r.depth, ph, a, b, rel * 100))
      assert(rel < 0.10, string.format("d%d %s: %.1f tok/s vs the server's %.1f (%.1f%%)", r.depth, ph, a, b, rel * 100))
    end
  end
  local deep = sweeps[1][2]
  assert(deep.cold.prefill_tokens > 1700, "cold prefills the context: " .. deep.cold.prefill_tokens)
  assert(deep.warm.prefill_tokens <= 1030, "warm prefills only the new tokens: " .. deep.warm.prefill_tokens)
  for _, rec in ipairs(recs) do
    T.eq(rec.prompt_tokens, rec.input_tokens, "the server counted what the tokenizer counted")
  end
end)

T.case("a depth over the context: a note, no request", function()
  local r = depth.measure{client = c, tokenizer = tok, depth = 4096, on_record = function() error("sent") end}
  assert(r.skipped, "skipped")
  assert(r.note:find("more than the server's context of 2048", 1, true), r.note)
end)

T.done()
