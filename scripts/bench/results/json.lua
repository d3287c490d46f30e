-- bench.results.json: the JSON of the results folder (docs/results-format.md).
local M = {}

-- Our own encoder: lua-cjson prints numbers with at most 14 significant
-- digits, which would corrupt nanosecond timestamps; this one prints integers
-- exactly, floats with the shortest round-tripping form, and sorts keys so the
-- same data always gives the same bytes (resumed and uninterrupted runs compare
-- equal).
local escapes = {['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f',
                 ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t'}

-- results.valid_utf8(s) -> s itself when it is UTF-8, else a copy with each
-- invalid byte replaced by U+FFFD, and true. A server may send any bytes; a
-- JSON file must hold UTF-8 only (else readers refuse the whole file).
local function valid_utf8(s)
  if utf8.len(s) then return s, false end
  local out, i = {}, 1
  while i <= #s do
    local n, bad = utf8.len(s, i)
    if n then out[#out + 1] = s:sub(i) break end
    out[#out + 1] = s:sub(i, bad - 1)
    out[#out + 1] = "\u{FFFD}"
    i = bad + 1
  end
  return table.concat(out), true
end
M.valid_utf8 = valid_utf8

local function encode_string(s)
  s = valid_utf8(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return escapes[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

local function encode_number(x)
  if math.type(x) == "integer" then return string.format("%d", x) end
  if x ~= x or x == math.huge or x == -math.huge then return "null" end
  if x == math.floor(x) and math.abs(x) < 2^53 then return string.format("%d", math.tointeger(x)) end
  for prec = 15, 17 do
    local s = string.format("%." .. prec .. "g", x)
    if tonumber(s) == x then return s end
  end
  return string.format("%.17g", x)
end

-- an empty table is written as {} (util.is_array's rule)
local is_array = require("bench.util").is_array

local function encode_value(v, out, seen)
  local tv = type(v)
  if tv == "string" then out[#out + 1] = encode_string(v)
  elseif tv == "number" then out[#out + 1] = encode_number(v)
  elseif tv == "boolean" then out[#out + 1] = tostring(v)
  elseif tv == "nil" then out[#out + 1] = "null"
  elseif tv == "table" then
    if seen[v] then error("results.json: a table refers to itself", 0) end
    seen[v] = true
    if is_array(v) then
      out[#out + 1] = "["
      for i = 1, #v do
        if i > 1 then out[#out + 1] = "," end
        encode_value(v[i], out, seen)
      end
      out[#out + 1] = "]"
    else
      local keys = {}
      for k, val in pairs(v) do
        if type(val) ~= "function" and type(val) ~= "userdata" and type(val) ~= "thread" then
          keys[#keys + 1] = tostring(k)
        end
      end
      table.sort(keys)
      out[#out + 1] = "{"
      for i, k in ipairs(keys) do
        if i > 1 then out[#out + 1] = "," end
        out[#out + 1] = encode_string(k)
        out[#out + 1] = ":"
        local val = v[k]
        if val == nil then val = v[tonumber(k)] end
        encode_value(val, out, seen)
      end
      out[#out + 1] = "}"
    end
    seen[v] = nil
  else
    out[#out + 1] = "null"   -- functions, userdata (cjson.null): no JSON form
  end
end

-- json.encode(v) -> string: compact JSON, sorted keys, exact integers.
function M.encode(v)
  local out = {}
  encode_value(v, out, {})
  return table.concat(out)
end

-- Pretty form for the files people open (summary.json, env.json, cells).
local function encode_pretty(v, indent, out, seen)
  if type(v) ~= "table" then encode_value(v, out, seen) return end
  if seen[v] then error("results.json: a table refers to itself", 0) end
  local pad = string.rep("  ", indent + 1)
  if is_array(v) then
    local simple = true
    for _, x in ipairs(v) do if type(x) == "table" then simple = false break end end
    if simple then encode_value(v, out, seen) return end
    seen[v] = true
    out[#out + 1] = "[\n"
    for i = 1, #v do
      out[#out + 1] = pad
      encode_pretty(v[i], indent + 1, out, seen)
      out[#out + 1] = i < #v and ",\n" or "\n"
    end
    out[#out + 1] = string.rep("  ", indent) .. "]"
  else
    local keys = {}
    for k, val in pairs(v) do
      if type(val) ~= "function" and type(val) ~= "userdata" and type(val) ~= "thread" then
        keys[#keys + 1] = tostring(k)
      end
    end
    if #keys == 0 then out[#out + 1] = "{}" return end
    table.sort(keys)
    seen[v] = true
    out[#out + 1] = "{\n"
    for i, k in ipairs(keys) do
      local val = v[k]
      if val == nil then val = v[tonumber(k)] end
      out[#out + 1] = pad .. encode_string(k) .. ": "
      encode_pretty(val, indent + 1, out, seen)
      out[#out + 1] = i < #keys and ",\n" or "\n"
    end
    out[#out + 1] = string.rep("  ", indent) .. "}"
  end
  seen[v] = nil
end

-- json.pretty(v) -> string: indented JSON with sorted keys.
function M.pretty(v)
  local out = {}
  encode_pretty(v, 0, out, {})
  out[#out + 1] = "\n"
  return table.concat(out)
end

-- JSON in: cjson.safe, with JSON null turned into nil.
local cjson_safe = require("cjson.safe")

-- cjson decodes every number as a float; integral values come back as
-- integers so labels print as "4", not "4.0".
local function fix_value(x)
  if x == cjson_safe.null then return nil end
  if math.type(x) == "float" and x == math.floor(x) and math.abs(x) < 2^53 then return math.tointeger(x) end
  return x
end

local function strip_null(v)
  if type(v) ~= "table" then return fix_value(v) end
  for k, x in pairs(v) do
    if type(x) == "table" then strip_null(x) else v[k] = fix_value(x) end
  end
  return v
end

-- json.decode(text) -> value | nil, message
function M.decode(text)
  local v, err = cjson_safe.decode(text)
  if v == nil then return nil, err end
  return strip_null(v)
end

return M
