-- bench.util: the small helpers several modules share (tables, numbers,
-- files, UTC time). One copy each, so a fix reaches every caller.
local util = {}

-- util.copy(t) -> a shallow copy of t ({} for nil).
function util.copy(t)
  local o = {}
  for k, v in pairs(t or {}) do o[k] = v end
  return o
end

-- util.deep_copy(v) -> v with every table copied (no cycles expected).
-- the fields of `from` (may be nil) set into `into`; -> into
function util.merge(into, from)
  for k, v in pairs(from or {}) do into[k] = v end
  return into
end

function util.deep_copy(v)
  if type(v) ~= "table" then return v end
  local o = {}
  for k, x in pairs(v) do o[k] = util.deep_copy(x) end
  return o
end

-- util.is_list(v) -> true for a table that is a sequence. A table marked
-- with a metatable field __yaml = "seq" or "map" is what its mark says; an
-- unmarked empty table counts as a list (and as a mapping).
function util.is_list(v)
  if type(v) ~= "table" then return false end
  local mt = getmetatable(v)
  if mt and mt.__yaml == "map" then return false end
  if mt and mt.__yaml == "seq" then return true end
  local n = 0
  for _ in pairs(v) do n = n + 1 end
  if n == 0 then return mt == nil or mt.__yaml ~= "map" end
  return n == #v
end

-- util.is_array(t) -> true for a table whose keys are exactly 1..#t, the
-- shape JSON writes as an array. The rule for an empty table: it is NOT an
-- array (results JSON writes {} for it; bench.jsonschema, for which an empty
-- decoded value may be either, asks about it before calling this). Unlike
-- is_list, no __yaml mark is read.
function util.is_array(t)
  local n = #t
  if n == 0 then return false end
  local count = 0
  for k in pairs(t) do
    if math.type(k) ~= "integer" or k < 1 or k > n then return false end
    count = count + 1
  end
  return count == n
end

-- util.is_map(v) -> true for a table of keys (see is_list for empty ones).
function util.is_map(v)
  if type(v) ~= "table" then return false end
  local mt = getmetatable(v)
  if mt and mt.__yaml == "map" then return true end
  if mt and mt.__yaml == "seq" then return false end
  if next(v) == nil then return true end
  return not util.is_list(v)
end

-- util.finite(v) -> v when it is a finite number, else nil.
function util.finite(v)
  if type(v) == "number" and v == v and v ~= math.huge and v ~= -math.huge then return v end
  return nil
end

-- util.figure(v [, field]) -> a finite number out of a figure that is a
-- number or a distribution table ({mean, p50, ...}: its field, mean unless
-- given), else nil.
function util.figure(v, field)
  if type(v) == "table" then v = v[field or "mean"] end
  return util.finite(v)
end

-- util.exists(path) -> true when the file can be opened for reading.
function util.exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

-- util.read_file(path) -> the whole file's bytes, or nil and io.open's message.
function util.read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local s = f:read("a")
  f:close()
  return s
end

-- util.utc_iso([t]) -> "2026-01-31T12:00:00Z" (now when t is nil).
function util.utc_iso(t) return os.date("!%Y-%m-%dT%H:%M:%SZ", t) end

-- util.utc_stamp([t]) -> "20260131T120000Z", for folder and file names.
function util.utc_stamp(t) return os.date("!%Y%m%dT%H%M%SZ", t) end

return util
