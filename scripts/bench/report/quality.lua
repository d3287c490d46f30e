-- bench.report.quality: the same prompt's output across variants, scored
-- against a reference variant (the highest-precision one that ran).
--
-- Score: normalized longest common subsequence of tokens,
--   sim = 2 * LCS(a, b) / (len(a) + len(b))      (1 = identical, 0 = nothing shared)
-- where a token is a run of letters/digits (lower-cased) or one CJK / other
-- non-ASCII letter (Chinese text has no spaces). Word order matters, so two
-- answers that say the same things in another order score lower than with a
-- bag of words; the token-set Jaccard index is given beside it for that reason.
-- Texts are cut at MAX_TOKENS tokens to bound the O(n*m) cost.
local quality = {}

quality.MAX_TOKENS = 1500

-- quality.tokens(text) -> list of tokens
function quality.tokens(text)
  local toks = {}
  if type(text) ~= "string" then return toks end
  local ok = pcall(function()
    local word = {}
    local function flush()
      if #word > 0 then toks[#toks + 1] = table.concat(word):lower() word = {} end
    end
    for _, cp in utf8.codes(text) do
      if cp < 128 then
        local ch = string.char(cp)
        if ch:match("[%w_]") then word[#word + 1] = ch else flush() end
      else
        flush()
        -- general punctuation, CJK symbols/punctuation and full-width forms are not words
        local punct = (cp >= 0x2000 and cp <= 0x206F) or (cp >= 0x3000 and cp <= 0x303F)
          or (cp >= 0xFF00 and cp <= 0xFF0F) or (cp >= 0xFF1A and cp <= 0xFF20)
          or (cp >= 0xFF3B and cp <= 0xFF40) or (cp >= 0xFF5B and cp <= 0xFF65) or cp == 0xA0
        if not punct then toks[#toks + 1] = utf8.char(cp) end
      end
      if #toks >= quality.MAX_TOKENS then break end
    end
    flush()
  end)
  if not ok then   -- not valid UTF-8: fall back to ASCII words
    toks = {}
    for w in text:gmatch("[%w_]+") do
      toks[#toks + 1] = w:lower()
      if #toks >= quality.MAX_TOKENS then break end
    end
  end
  while #toks > quality.MAX_TOKENS do toks[#toks] = nil end
  return toks
end

-- quality.lcs(a, b) -> length of the longest common subsequence of two token lists.
function quality.lcs(a, b)
  local n, m = #a, #b
  if n == 0 or m == 0 then return 0 end
  local prev, cur = {}, {}
  for j = 0, m do prev[j] = 0 end
  for i = 1, n do
    cur[0] = 0
    local ai = a[i]
    for j = 1, m do
      if ai == b[j] then cur[j] = prev[j - 1] + 1
      else
        local x, y = prev[j], cur[j - 1]
        cur[j] = x > y and x or y
      end
    end
    prev, cur = cur, prev
  end
  return prev[m]
end

-- quality.similarity(a, b) -> {lcs = 0..1, jaccard = 0..1, tokens_a, tokens_b}
function quality.similarity(text_a, text_b)
  local a, b = quality.tokens(text_a), quality.tokens(text_b)
  local res = {tokens_a = #a, tokens_b = #b}
  if #a + #b == 0 then res.lcs, res.jaccard = 1, 1 return res end
  res.lcs = 2 * quality.lcs(a, b) / (#a + #b)
  local sa, sb, inter, union = {}, {}, 0, 0
  for _, t in ipairs(a) do sa[t] = true end
  for _, t in ipairs(b) do sb[t] = true end
  for t in pairs(sa) do union = union + 1 if sb[t] then inter = inter + 1 end end
  for t in pairs(sb) do if not sa[t] then union = union + 1 end end
  res.jaccard = union > 0 and inter / union or 1
  return res
end

-- Outputs of a configuration: cell.outputs, else the first successful
-- non-warm-up record of each prompt that carries text.
local function outputs_of(c)
  local outs = {}
  for k, v in pairs(c.outputs or {}) do outs[k] = v end
  for _, r in ipairs(c.records or {}) do
    local name = r.prompt or r.name
    local txt = r.text or r.output
    if name and type(txt) == "string" and outs[name] == nil and (r.ok ~= false and r.error == nil) then
      outs[name] = txt
    end
  end
  return outs
end
quality.outputs_of = outputs_of

-- The answer's length in tokens as the server counted them (the record's
-- output_tokens) for the output of prompt `name` shown for configuration c:
-- the record that carries that text, else the first successful one of the
-- prompt; nil when no record says.
function quality.output_tokens(c, name, text)
  local first
  for _, r in ipairs(c.records or {}) do
    if (r.prompt or r.name) == name and r.ok ~= false and r.error == nil and type(r.output_tokens) == "number" then
      if (r.text or r.output) == text then return r.output_tokens end
      first = first or r.output_tokens
    end
  end
  return first
end

-- quality.compare(configs) -> {reference = config, prompts = {{name, rows = {{config, text, sim, check}}}}}
-- or nil when no configuration has outputs.
function quality.compare(configs)
  local with = {}
  for _, c in ipairs(configs) do
    local o = outputs_of(c)
    if next(o) then with[#with + 1] = {config = c, outputs = o} end
  end
  if #with == 0 then return nil end
  local ref = with[1]
  for _, w in ipairs(with) do
    if (w.config.bits or 0) > (ref.config.bits or 0) then ref = w end
  end
  local names, seen = {}, {}
  for _, w in ipairs(with) do
    for k in pairs(w.outputs) do if not seen[k] then seen[k] = true names[#names + 1] = k end end
  end
  local order = {short = 1, medium = 2, long = 3, reasoning = 4, instruction = 5}
  table.sort(names, function(x, y)
    local ox, oy = order[x] or 99, order[y] or 99
    if ox ~= oy then return ox < oy end
    return x < y
  end)
  local prompts = {}
  for _, name in ipairs(names) do
    local rows = {}
    local ref_text = ref.outputs[name]
    for _, w in ipairs(with) do
      local t = w.outputs[name]
      if t ~= nil then
        local row = {config = w.config, text = t, is_ref = w == ref, tokens = quality.output_tokens(w.config, name, t),
                     check = w.config.checks and w.config.checks[name]}
        if ref_text ~= nil then row.sim = quality.similarity(ref_text, t) end
        rows[#rows + 1] = row
      end
    end
    prompts[#prompts + 1] = {name = name, rows = rows}
  end
  return {reference = ref.config, prompts = prompts}
end

return quality
