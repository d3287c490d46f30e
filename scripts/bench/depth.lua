-- bench.depth: prefill and decode speed at a context depth, like
-- llama-bench's -d, against any server (docs/depth.md).
--
--   local depth = require("bench.depth")
--   local tok = require("bench.tokenizer").for_server{base_url = ..., dialect = ...}
--   local r = depth.measure{client = client, tokenizer = tok, depth = 4096, pp = 512, tg = 128}
--   -- r.cold / r.warm: {prefill_tokens, ttft_ms, prefill_tps, server_prefill_tps, decode_tps, server_decode_tps, ...}
--   local list = depth.sweep{client = client, tokenizer = tok, depths = {0, 4096, 16384}}
--
-- At depth D a prompt holds D tokens of context, then pp tokens of
-- question; the server answers tg tokens. Cold: a context no earlier
-- request had (each measure starts its text with words of its own), so
-- all D + pp tokens are prefilled. Warm: the same D-token context again
-- with another pp tokens after it, so a server with a prefix cache
-- prefills only those (what llama-bench's "pp512 @ d4096" measures).
-- Prompts are built to the exact count with the server's tokenizer; where
-- it has none, to an estimate calibrated by one probe request's usage (the
-- result's note says so). A depth that does not fit the server's context
-- is a note, not a request.
local tokenizer = require("bench.tokenizer")

local depth = {}

depth.DEFAULT_PP, depth.DEFAULT_TG = 512, 128

-- depth.build(tok, target, seed, base?): a prompt of exactly target tokens
-- (bench.tokenizer.build)
depth.build = tokenizer.build

-- Figures of one request at a depth.
local function figures(rec, phase, expected)
  local s = type(rec.server) == "table" and rec.server or {}
  local f = {ok = rec.ok, error = rec.error, error_detail = rec.error_detail, ttft_ms = rec.ttft_ms,
             prompt_tokens = rec.input_tokens or rec.prompt_tokens, input_tokens_source = rec.input_tokens_source,
             output_tokens = rec.output_tokens, decode_tps = rec.decode_tps,
             server_prefill_tps = s.prompt_per_second, server_decode_tps = s.predicted_per_second,
             server_prompt_n = s.prompt_n,
             burst = rec.burst}   -- tokens that came at once: no decode rate of ours (docs/openai.md)
  -- what the server prefilled: its own count (llama.cpp timings.prompt_n,
  -- which leaves out the cached prefix), else the tokens it did not have
  -- cached (rec.cached_tokens, from usage.prompt_tokens_details where the
  -- client reads it), else the whole prompt: a server that does not say
  -- what it cached is not assumed to have cached anything
  local cached = type(rec.cached_tokens) == "number" and rec.cached_tokens or nil
  f.prefill_tokens = s.prompt_n or (cached and f.prompt_tokens and f.prompt_tokens - cached)
    or f.prompt_tokens or expected
  if phase == "warm" and not s.prompt_n and not cached then
    f.note = "the server does not say how much of the prompt it had cached: warm counts the whole prompt"
  end
  if rec.ok and f.ttft_ms and f.ttft_ms > 0 and f.prefill_tokens then
    f.prefill_tps = f.prefill_tokens / (f.ttft_ms / 1000)
  end
  if rec.prompt_truncated then f.note = "the server cut the prompt: " .. tostring(rec.prompt_truncated_detail) end
  if not rec.ok then f.note = "the request failed: " .. tostring(rec.error_detail or rec.error) end
  return f
end

local function check(opts, who)
  if type(opts) ~= "table" then error(who .. ": expected a table of options", 3) end
  if type(opts.client) ~= "table" or not opts.client.complete then
    error(who .. ": client: expected a bench.openai client", 3)
  end
  for _, k in ipairs{"pp", "tg"} do
    if opts[k] ~= nil and (math.type(opts[k]) ~= "integer" or opts[k] < 1) then
      error(string.format("%s: %s: expected an integer >= 1, got %s", who, k, tostring(opts[k])), 3)
    end
  end
end

local runs = 0

-- One request of a measure; its record goes to on_record (with depth and phase).
local function ask(opts, d, phase, prompt, count, source, tg)
  local c = opts.client
  local extra = {temperature = 0}
  local dialect = c.dialect
  if dialect == "llama.cpp" or dialect == "vllm" or dialect == "sglang" then extra.ignore_eos = true end
  local rec = c:complete{prompt = prompt, max_tokens = tg, extra = extra,
                         input_tokens_exact = source == "tokenizer" and count or nil,
                         expect_prompt_tokens = source == "tokenizer" and count or nil}
  rec.depth, rec.depth_phase = d, phase
  rec.name = rec.name or string.format("d%d-%s", d, phase)
  if opts.on_record then opts.on_record(rec) end
  return rec
end

-- One probe request teaches a tokenizer without an endpoint the server's
-- bytes per token (its usage.prompt_tokens).
local function calibrate(opts, tok)
  if tok.kind ~= "usage" or tok.calibrated then return end
  tok:count(" ")
  if tok.kind ~= "usage" then return end
  local text = tokenizer.filler("calibrate", 400)
  local rec = opts.client:complete{prompt = text, max_tokens = 1, extra = {temperature = 0}}
  tok:calibrate(#text, rec.prompt_tokens)
end

-- depth.measure{client, tokenizer?, depth, pp?, tg?, context?, on_record?}
--   -> {depth, pp, tg, label_pp, label_tg, cold, warm, note?, skipped?, exact, input_tokens_source}
function depth.measure(opts)
  check(opts, "depth.measure")
  local d = opts.depth
  if math.type(d) ~= "integer" or d < 0 then error("depth.measure: depth: expected an integer >= 0, got " .. tostring(d), 2) end
  local pp, tg = opts.pp or depth.DEFAULT_PP, opts.tg or depth.DEFAULT_TG
  local tok = opts.tokenizer or tokenizer.for_server{base_url = opts.client.base_url, dialect = opts.client.dialect,
                                                       model = opts.client.model}
  local out = {depth = d, pp = pp, tg = tg, label_pp = string.format("pp%d @ d%d", pp, d),
               label_tg = string.format("tg%d @ d%d", tg, d)}
  local n_ctx = opts.context or tok:context()
  out.context = n_ctx
  if n_ctx and d + pp + tg > n_ctx then
    out.skipped = true
    out.note = string.format("depth %d + pp%d + tg%d needs %d tokens, more than the server's context of %d: not measured",
                             d, pp, tg, d + pp + tg, n_ctx)
    return out
  end
  calibrate(opts, tok)
  runs = runs + 1
  local seed = string.format("%d-%d-%d", os.time(), runs, d)
  local base = depth.build(tok, d, "ctx" .. seed)
  local cold, n_cold, src, exact1 = depth.build(tok, d + pp, "qa" .. seed, base)
  local warm, n_warm, _, exact2 = depth.build(tok, d + pp, "qb" .. seed, base)
  out.exact, out.input_tokens_source = exact1 and exact2, src
  out.note = tok.note
  local rc = ask(opts, d, "cold", cold, n_cold, src, tg)
  if src ~= "tokenizer" then tok:calibrate(#cold, rc.prompt_tokens) end
  out.cold = figures(rc, "cold", n_cold)
  out.warm = figures(ask(opts, d, "warm", warm, n_warm, src, tg), "warm", pp)
  if not rc.ok and not n_ctx then
    out.note = (out.note and (out.note .. "; ") or "") .. string.format(
      "the server refused depth %d (%s): is it larger than the server's context?", d, tostring(rc.error_detail or rc.error))
  end
  return out
end

-- depth.sweep{client, tokenizer?, depths = {...}, pp?, tg?, on_record?} -> list of depth.measure results
function depth.sweep(opts)
  check(opts, "depth.sweep")
  if type(opts.depths) ~= "table" or #opts.depths == 0 then error("depth.sweep: depths: expected a list of depths", 2) end
  local tok = opts.tokenizer or tokenizer.for_server{base_url = opts.client.base_url, dialect = opts.client.dialect,
                                                       model = opts.client.model}
  local list = {}
  for i, d in ipairs(opts.depths) do
    list[i] = depth.measure{client = opts.client, tokenizer = tok, depth = d, pp = opts.pp, tg = opts.tg,
                            on_record = opts.on_record, context = opts.context}
  end
  return list
end

-- depth.cell{client, cell, out, backend?, on_record}: the runner's hook for
-- a plan cell with depth: (one call per repeat). The result goes to
-- out.depth (a list, one per repeat); a depth the context cannot hold is
-- a failed record whose error says so (error = "depth_exceeds_context"),
-- so the cell, its summary and the report all show it.
function depth.cell(o)
  local c = o.client
  local tok = tokenizer.for_server{base_url = c.base_url, dialect = c.dialect, model = c.model, backend = o.backend}
  -- tg: the cell's max_tokens, within a dry run's cap (max_tokens_cap)
  local tg = math.min(o.cell.max_tokens or depth.DEFAULT_TG, o.cell.max_tokens_cap or math.huge)
  local r = depth.measure{client = c, tokenizer = tok, depth = o.cell.depth, tg = tg, on_record = o.on_record}
  o.out.depth = o.out.depth or {}
  table.insert(o.out.depth, r)
  if r.skipped then
    o.on_record{ok = false, error = "depth_exceeds_context", error_kind = "depth_exceeds_context", error_detail = r.note, depth = r.depth,
                name = string.format("d%d", r.depth), input_tokens = r.depth + r.pp, input_tokens_source = "estimate",
                input_tokens_note = "not sent: the prompt this depth would have needed"}
  end
  return r
end

return depth
