-- bench.plan.suggest: "did you mean" for a misspelt key, name or value.
local suggest = {}

-- Levenshtein distance of two strings (bytes)
local function distance(a, b)
  local la, lb = #a, #b
  if la == 0 then return lb end
  if lb == 0 then return la end
  local prev, cur = {}, {}
  for j = 0, lb do prev[j] = j end
  for i = 1, la do
    cur[0] = i
    local ca = a:byte(i)
    for j = 1, lb do
      local cost = (ca == b:byte(j)) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev, cur = cur, prev
  end
  return prev[lb]
end

-- suggest.closest(word, candidates) -> the closest candidate or nil: within
-- a third of its length (1 to 3 edits), or one a prefix of the other.
function suggest.closest(word, candidates)
  word = tostring(word)
  local best, bestd
  local lw = word:lower()
  for _, c in ipairs(candidates) do
    local d = distance(lw, c:lower())
    if c:lower():find(lw, 1, true) == 1 or lw:find(c:lower(), 1, true) == 1 then d = math.min(d, 1) end
    if d <= math.max(1, math.min(3, #c // 3)) and (not bestd or d < bestd) then best, bestd = c, d end
  end
  return best
end

-- suggest.names(t) -> t's keys, sorted (the candidates of a lookup)
function suggest.names(t)
  local names = {}
  for n in pairs(t or {}) do names[#names + 1] = n end
  table.sort(names)
  return names
end

-- suggest.mean(word, candidates) -> ", did you mean 'x'?" or ""
function suggest.mean(word, candidates)
  local s = suggest.closest(word, candidates)
  return s and (", did you mean '" .. s .. "'?") or ""
end

return suggest
