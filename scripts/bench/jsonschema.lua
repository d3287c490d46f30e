-- bench.jsonschema: whether a decoded JSON value matches a JSON schema, for
-- the subset that tool parameters and structured output use in practice
-- (docs/openai.md, "Tool calls and structured output"):
--   type (one name or a list: object, array, string, number, integer,
--   boolean, null), properties, required, enum, items (one schema),
--   additionalProperties: false.
-- Every other keyword (minimum, pattern, $ref, anyOf, ...) is not checked:
-- jsonschema.unchecked(schema) lists those a schema uses, so a report can
-- say what was left out instead of passing it silently.
--
--   local jsonschema = require("bench.jsonschema")
--   local ok, why = jsonschema.check(value, schema)   -- why: "$.city: expected string, got number"
--
-- Values are as lua-cjson decodes them: null is cjson.null; an empty object
-- and an empty array are both {} and pass either type.
local json = require("cjson")

local M = {}

local CHECKED = {type = true, properties = true, required = true, enum = true, items = true,
                 additionalProperties = true, description = true, title = true, ["$schema"] = true,
                 default = true, examples = true}

-- Whether a non-empty table is a JSON array (keys 1..n) rather than an
-- object; an empty one is "empty" below, before it is asked.
local is_array = require("bench.util").is_array

local function type_of(v)
  if v == json.null then return "null" end
  local t = type(v)
  if t == "table" then return next(v) == nil and "empty" or is_array(v) and "array" or "object" end
  if t == "number" then return math.type(v) == "integer" and "integer" or (v == math.floor(v) and "integer" or "number") end
  if t == "boolean" or t == "string" then return t end
  return t
end

local function type_ok(got, want)
  if got == want then return true end
  if got == "empty" then return want == "object" or want == "array" end
  return want == "number" and got == "integer"
end

local function equal(a, b)
  if type(a) ~= "table" or type(b) ~= "table" then return a == b end
  for k, v in pairs(a) do if not equal(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

local function show(v)
  local ok, s = pcall(json.encode, v)
  s = ok and s or tostring(v)
  return #s > 40 and (s:sub(1, 37) .. "...") or s
end

local check

local function check_object(v, schema, path)
  if type(schema.required) == "table" then
    for _, k in ipairs(schema.required) do
      if v[k] == nil then return false, string.format("%s: missing required property %q", path, tostring(k)) end
    end
  end
  local props = type(schema.properties) == "table" and schema.properties or {}
  for k, sub in pairs(props) do
    if v[k] ~= nil and type(sub) == "table" then
      local ok, why = check(v[k], sub, path .. "." .. tostring(k))
      if not ok then return false, why end
    end
  end
  if schema.additionalProperties == false then
    for k in pairs(v) do
      if props[k] == nil then return false, string.format("%s: property %q is not allowed", path, tostring(k)) end
    end
  end
  return true
end

check = function(v, schema, path)
  if type(schema) ~= "table" then return true end
  local got = type_of(v)
  if schema.type ~= nil then
    local wants = type(schema.type) == "table" and schema.type or {schema.type}
    local any = false
    for _, w in ipairs(wants) do if type_ok(got, w) then any = true break end end
    if not any then
      return false, string.format("%s: expected %s, got %s", path, table.concat(wants, " or "),
                                  got == "empty" and "an empty object" or got)
    end
  end
  if type(schema.enum) == "table" then
    local found = false
    for _, e in ipairs(schema.enum) do if equal(v, e) then found = true break end end
    if not found then return false, string.format("%s: %s is not one of the enum's values", path, show(v)) end
  end
  if type(v) == "table" and v ~= json.null then
    if got == "array" and type(schema.items) == "table" then
      for i, x in ipairs(v) do
        local ok, why = check(x, schema.items, string.format("%s[%d]", path, i - 1))
        if not ok then return false, why end
      end
    elseif got == "object" or got == "empty" then
      return check_object(v, schema, path)
    end
  end
  return true
end

-- jsonschema.check(value, schema) -> true, or false and where and why.
function M.check(value, schema)
  return check(value, schema, "$")
end

-- jsonschema.unchecked(schema) -> sorted list of the keywords used anywhere
-- in the schema that this checker does not check (empty when none).
function M.unchecked(schema)
  local seen, list = {}, {}
  local function walk(s)
    if type(s) ~= "table" then return end
    for k, v in pairs(s) do
      if type(k) == "string" and not CHECKED[k] and not seen[k] then seen[k] = true list[#list + 1] = k end
    end
    if type(s.properties) == "table" then for _, sub in pairs(s.properties) do walk(sub) end end
    walk(s.items)
  end
  walk(schema)
  table.sort(list)
  return list
end

return M
