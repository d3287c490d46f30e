-- bench.logprobs: a record's streamed logprobs, and one variant's against a
-- reference's on the same prompt.
--
--   logprobs.decode(raw) -> list of {t = token, lp = logprob, top = {{t, lp}, ...}}, missing
--   logprobs.compare(ref, var) -> {top1_agreement, kl_mean, kl_positions,
--                                  first_divergence, positions, missing}
--
-- raw is what bench.http's LLM decoder kept (one JSON array of the entries
-- of choices[0].logprobs.content, llama.cpp's completion_probabilities, or
-- vLLM's legacy /v1/completions objects {tokens, token_logprobs,
-- top_logprobs}); it is decoded once per request, after the stream.
--
-- The comparison (docs/reports.md, "Quality by logprobs"): both answered the same prompt at
-- temperature 0. Position i is compared while both had the same text
-- before it (up to and including the first position where the chosen
-- tokens differ): there the two distributions answer the same question.
--   top1_agreement   positions where the chosen tokens agree / the
--                    reference's positions (index by index over the whole
--                    answer: how much of it stays the same)
--   kl_mean          mean over the shared-context positions of
--                    KL(P_ref || P_var) over the reference's top-k tokens,
--                    both renormalized over those tokens; a token absent
--                    from the variant's top-k gets the variant's lowest
--                    top-k logprob (the most it can have)
--   first_divergence the first position (1-based) whose tokens differ,
--                    nil when the answers agree token for token
-- Entries without a number logprob are skipped and counted in `missing`.
local json = require("cjson")

local logprobs = {}

local function number(v) return type(v) == "number" and v == v and v > -math.huge and v < math.huge end

local function top_list(tl)
  local out = {}
  if type(tl) ~= "table" then return out end
  if tl[1] ~= nil or next(tl) == nil then
    for _, e in ipairs(tl) do
      if type(e) == "table" and type(e.token) == "string" and number(e.logprob) then
        out[#out + 1] = {t = e.token, lp = e.logprob}
      end
    end
  else   -- legacy: {token: logprob}
    for t, lp in pairs(tl) do if number(lp) then out[#out + 1] = {t = t, lp = lp} end end
    table.sort(out, function(a, b) return a.lp > b.lp end)
  end
  return out
end

-- logprobs.decode(raw) -> list, missing (entries without a logprob), or nil, why
function logprobs.decode(raw)
  if type(raw) ~= "string" or raw == "" then return nil, "no logprobs" end
  local ok, v = pcall(json.decode, raw)
  if not ok or type(v) ~= "table" then return nil, "the logprobs are not valid JSON" end
  local list, missing = {}, 0
  for _, e in ipairs(v) do
    if type(e) == "table" and type(e.tokens) == "table" then   -- legacy completions object
      for i, t in ipairs(e.tokens) do
        local lp = type(e.token_logprobs) == "table" and e.token_logprobs[i]
        if type(t) == "string" and number(lp) then
          list[#list + 1] = {t = t, lp = lp, top = top_list(type(e.top_logprobs) == "table" and e.top_logprobs[i])}
        else
          missing = missing + 1
          list[#list + 1] = {t = type(t) == "string" and t or nil}
        end
      end
    elseif type(e) == "table" and type(e.token) == "string" and number(e.logprob) then
      list[#list + 1] = {t = e.token, lp = e.logprob, top = top_list(e.top_logprobs or e.probs)}
    else
      missing = missing + 1
      list[#list + 1] = {t = type(e) == "table" and type(e.token) == "string" and e.token or nil}
    end
  end
  return list, missing
end

-- The reference's top-k as probabilities, and the variant's for the same
-- tokens; KL(P || Q) after renormalizing both over those tokens.
local function kl_at(r, v)
  if not r.top or #r.top == 0 or not v.top or #v.top == 0 then return nil end
  local vmap, vmin = {}, math.huge
  for _, e in ipairs(v.top) do vmap[e.t] = e.lp if e.lp < vmin then vmin = e.lp end end
  local ps, qs, psum, qsum = {}, {}, 0, 0
  for i, e in ipairs(r.top) do
    ps[i] = math.exp(e.lp)
    qs[i] = math.exp(vmap[e.t] or vmin)
    psum, qsum = psum + ps[i], qsum + qs[i]
  end
  if psum <= 0 or qsum <= 0 then return nil end
  local kl = 0
  for i = 1, #ps do
    local p, q = ps[i] / psum, qs[i] / qsum
    if p > 0 then kl = kl + p * (math.log(p) - math.log(q)) end
  end
  return kl < 0 and 0 or kl   -- rounding below zero is zero
end

-- logprobs.compare(ref, var) -> the figures above (nil when ref is empty)
function logprobs.compare(ref, var)
  if type(ref) ~= "table" or #ref == 0 or type(var) ~= "table" then return nil end
  local agree, first, kls, kln, missing = 0, nil, 0, 0, 0
  for i = 1, #ref do
    local r, v = ref[i], var[i]
    local same = v ~= nil and r.t ~= nil and r.t == v.t
    if same then agree = agree + 1 end
    if not first then
      if v and r.lp and v.lp then
        local kl = kl_at(r, v)
        if kl then kls, kln = kls + kl, kln + 1 end
      elseif v then
        missing = missing + 1
      end
      if not same then first = i end
    end
  end
  if not first and #var > #ref then first = #ref + 1 end
  return {top1_agreement = agree / #ref, kl_mean = kln > 0 and kls / kln or nil, kl_positions = kln,
          first_divergence = first, positions = #ref, missing = missing}
end

-- The request fields that ask for k top logprobs at temperature 0, per API.
function logprobs.request_fields(kind, dialect, native, k)
  if native then return {n_probs = k, temperature = 0} end
  if dialect == "ollama-native" then return {logprobs = true, top_logprobs = k, temperature = 0} end
  if kind == "chat" then return {logprobs = true, top_logprobs = k, temperature = 0} end
  return {logprobs = k, temperature = 0}
end

-- logprobs.run_cell(plan, client, w, n, max_tokens) -> {prompt name =
-- {tokens = list?, note = text?}} or nil: the quality pass of a cell
-- (quality: {logprobs: k}): each of the workload's first n distinct
-- prompts once more, streamed, at temperature 0 with k top logprobs.
-- These requests are not in the cell's speed figures.
function logprobs.run_cell(plan, client, w, n, max_tokens)
  local q = plan.quality
  if type(q) ~= "table" or not q.logprobs then return nil end
  local out, seen = {}, {}
  for i = 1, math.min(n or w.size or 1, 64) do
    local item = w:next(i)
    local name = item.prompt or item.name or ("prompt" .. i)
    if not seen[name] then
      seen[name] = true
      local args = {}
      for k, v in pairs(item) do args[k] = v end
      args.logprobs = q.logprobs
      args.max_tokens = max_tokens or args.max_tokens
      args.stream = true
      local extra = {}
      for k, v in pairs(args.extra or {}) do extra[k] = v end
      extra.temperature = 0
      args.extra = extra
      local ok, rec = pcall(client.chat, client, args)
      if not ok then out[name] = {note = tostring(rec)}
      elseif not rec.ok then out[name] = {note = "the request failed: " .. tostring(rec.error) .. (rec.error_detail and (": " .. rec.error_detail) or "")}
      else out[name] = {tokens = rec.logprobs, note = rec.logprobs_note, missing = rec.logprobs_missing} end
    end
  end
  return out
end

return logprobs
