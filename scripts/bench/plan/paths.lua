-- bench.plan.paths: key paths in a plan and where they are in its file.
--
-- A path is a list of keys (strings) and 1-based list indices (integers),
-- shown as "matrix.env[2]". bench.yaml (docs/engine.md) gives, with
-- {positions = true}, a side table keyed by every decoded table: pos[t] =
-- {line, col, keys = {[k] = {line, col}}, values = {[k] = ...}, items =
-- {[i] = ...}}; make_where turns it into where(path, key) -> line, col.
local paths = {}

-- paths.string(path) -> "matrix.env[2]" ("(plan)" for the root)
function paths.string(path)
  local out = {}
  for _, k in ipairs(path) do
    if math.type(k) == "integer" then
      out[#out + 1] = "[" .. k .. "]"
    else
      if #out > 0 then out[#out + 1] = "." end
      out[#out + 1] = tostring(k)
    end
  end
  local s = table.concat(out)
  return s == "" and "(plan)" or s
end

-- paths.child(path, k) -> a new path one key deeper
function paths.child(path, k)
  local p = table.move(path, 1, #path, 1, {})
  p[#p + 1] = k
  return p
end

-- paths.make_where(doc, pos) -> where(path, key) -> line, col of the
-- deepest node known along path: the value (or the key itself when `key`
-- is true) of the last segment.
function paths.make_where(doc, pos)
  return function(path, key)
    local node, line, col = doc, 1, 1
    if type(pos) ~= "table" then return line, col end
    local p = type(node) == "table" and pos[node]
    if p and p.line then line, col = p.line, p.col end
    for i, k in ipairs(path) do
      if type(node) ~= "table" then break end
      local np = pos[node]
      if not np then break end
      local kp
      if np.items and np.items[k] then kp = np.items[k]
      elseif key and i == #path then kp = np.keys and np.keys[k]
      else kp = (np.values and np.values[k]) or (np.keys and np.keys[k]) end
      if kp then line, col = kp.line or kp[1], kp.col or kp[2] end
      node = node[k]
    end
    return line, col
  end
end

-- paths.ordered_keys(where, path, t) -> t's keys in YAML order, else sorted
function paths.ordered_keys(where, path, t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  local lc = {}
  for _, k in ipairs(keys) do
    local l, c = where(paths.child(path, k), true)
    lc[k] = l * 100000 + c
  end
  table.sort(keys, function(a, b)
    if lc[a] ~= lc[b] then return lc[a] < lc[b] end
    return tostring(a) < tostring(b)
  end)
  return keys
end

return paths
