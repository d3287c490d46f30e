-- bench.plan.check: a validator walks a document against bench.plan.schema
-- and collects every error as "<file>:<line>:<col>: <key.path>: <what was
-- expected>" (and warnings in the same form). Each node kind is one row of
-- CHECKERS: a function (validator, node, value, path) -> the normalized
-- value, or nil after recording an error.
local paths = require("bench.plan.paths")
local suggest = require("bench.plan.suggest")
local units = require("bench.units")
local util = require("bench.util")
local yaml = require("bench.yaml")

local check = {}

local is_list, is_map, child = util.is_list, util.is_map, paths.child

-- check.describe(v) -> how a value reads in a message ("the string \"x\"")
function check.describe(v)
  if v == nil then return "nothing" end
  local t = type(v)
  if t == "table" then
    if next(v) == nil then return "an empty list or mapping" end
    return is_list(v) and "a list" or "a mapping"
  end
  if t == "string" then return string.format("the string %q", v) end
  if t == "boolean" then return "a boolean (" .. tostring(v) .. ")" end
  if math.type(v) == "integer" then return "the integer " .. v end
  if t == "number" then return "the number " .. v end
  if v == yaml.null then return "null" end
  return "a " .. t
end
local describe = check.describe

-- what a node expects, for "expected ..." (a node's own `what` wins)
local EXPECTED = {
  string = "a string",
  int = function(nd)
    if nd.min == 1 then return "a positive integer" end
    if nd.min == 0 then return "an integer >= 0" end
    return "an integer"
  end,
  number = function(nd) return nd.min and ("a number >= " .. nd.min) or "a number" end,
  bool = "true or false",
  duration = units.DURATION_WHAT,
  size = units.SIZE_WHAT,
  enum = function(nd) return "one of " .. table.concat(nd.values, ", ") end,
  list = "a list",
  map = "a mapping",
  dict = "a mapping",
  file = "a file path",
  scalar = "a string, number or boolean",
  fraction = "a fraction such as 5% or 0.05",
}

local function expected(nd)
  if nd.what then return nd.what end
  local e = EXPECTED[nd.kind]
  if type(e) == "function" then return e(nd) end
  return e or "a value"
end
check.expected = expected

---------------------------------------------------------------------------
-- The validator
---------------------------------------------------------------------------

local Validator = {}
Validator.__index = Validator

-- check.new(file, where, opts) -> a validator; where(path, key) -> line, col
function check.new(file, where, opts)
  return setmetatable({file = file, where = where, errors = {}, warnings = {}, opts = opts or {},
                       dir = file:match("^(.*)/[^/]*$") or "."}, Validator)
end

function Validator:at(path, key)
  local l, c = self.where(path, key)
  return string.format("%s:%d:%d", self.file, l or 1, c or 1), l or 1, c or 1
end

-- err(path, fmt, ...): record "<file>:<l>:<c>: <path>: <msg>".
function Validator:err(path, fmt, ...)
  local at, l, c = self:at(path, self.key_pos)
  local msg = select("#", ...) > 0 and fmt:format(...) or fmt
  self.errors[#self.errors + 1] = {text = string.format("%s: %s: %s", at, paths.string(path), msg),
                                   line = l, col = c, path = paths.string(path), msg = msg}
end

-- key_err(path, fmt, ...): an error at the key of path's last segment
function Validator:key_err(path, fmt, ...)
  self.key_pos = true
  self:err(path, fmt, ...)
  self.key_pos = nil
end

function Validator:warn(path, fmt, ...)
  local at = self:at(path)
  local msg = select("#", ...) > 0 and fmt:format(...) or fmt
  self.warnings[#self.warnings + 1] = string.format("%s: %s: %s", at, paths.string(path), msg)
end

-- a path in the plan, relative to the plan's folder ("~/" is $HOME)
function Validator:file_path(p)
  if p:sub(1, 1) == "/" then return p end
  if p:sub(1, 2) == "~/" then return (os.getenv("HOME") or "") .. p:sub(2) end
  return self.dir .. "/" .. p
end

---------------------------------------------------------------------------
-- One checker per node kind
---------------------------------------------------------------------------

local CHECKERS = {}

-- "expected <what>, got <described value>", then nil
local function wrong(self, nd, v, path)
  self:err(path, "expected %s, got %s", expected(nd), describe(v))
  return nil
end

function CHECKERS.string(self, nd, v, path)
  if type(v) == "number" and nd.coerce ~= false then return tostring(v) end
  if type(v) ~= "string" then return wrong(self, nd, v, path) end
  return v
end

function CHECKERS.scalar(self, nd, v, path)
  if type(v) == "table" then return wrong(self, nd, v, path) end
  return v
end

function CHECKERS.int(self, nd, v, path)
  if math.type(v) ~= "integer" then
    local iv = type(v) == "number" and math.tointeger(v)
    if not iv then
      self:err(path, "expected %s%s, got %s", expected(nd),
               nd.max and type(v) == "number" and string.format(" (at most %d)", nd.max) or "", describe(v))
      return nil
    end
    v = iv
  end
  if (nd.min and v < nd.min) or (nd.max and v > nd.max) then
    self:err(path, "expected %s%s, got %d", expected(nd), nd.max and string.format(" (at most %d)", nd.max) or "", v)
    return nil
  end
  return v
end

function CHECKERS.number(self, nd, v, path)
  if type(v) ~= "number" then return wrong(self, nd, v, path) end
  if (nd.min and v < nd.min) or (nd.max and v > nd.max) then
    self:err(path, "expected %s%s, got %s", expected(nd), nd.max and string.format(" (at most %g)", nd.max) or "",
             (nd.max and v > nd.max) and string.format("%g", v) or tostring(v))
    return nil
  end
  return v
end

function CHECKERS.bool(self, nd, v, path)
  if type(v) ~= "boolean" then return wrong(self, nd, v, path) end
  return v
end

-- a parse failure: the parser's unit complaint ("a duration unit (ms, s,
-- m, h)", its third value) when it has one, else what the node expects
local function unparsed(self, nd, v, path, bad_unit)
  self:err(path, "expected %s, got %s", bad_unit or expected(nd), describe(v))
  return nil
end

function CHECKERS.duration(self, nd, v, path)
  local s, _, bad_unit = units.duration(v)
  if not s then return unparsed(self, nd, v, path, bad_unit) end
  if nd.positive and s <= 0 then self:err(path, "expected a duration greater than 0, got %s", describe(v)) return nil end
  if nd.min and s < nd.min then
    self:err(path, "expected a duration of at least %s, got %s", units.format_duration(nd.min), describe(v))
    return nil
  end
  if nd.max and s > nd.max then
    self:err(path, "expected a duration of at most %s, got %s", units.format_duration(nd.max), describe(v))
    return nil
  end
  return s
end

function CHECKERS.size(self, nd, v, path)
  local b, _, bad_unit = units.size(v)
  if not b then return unparsed(self, nd, v, path, bad_unit) end
  return b
end

-- a share: 0.05 or "5%" -> 0.05: above 0 and at most 1, unless the node
-- allows 0 (zero = true) or more (max = 10: up to 1000%)
function CHECKERS.fraction(self, nd, v, path)
  local f = v
  if type(v) == "string" then
    local n = v:match("^%s*(%d+%.?%d*)%s*%%%s*$")
    f = n and tonumber(n) and tonumber(n) / 100
  end
  if type(f) ~= "number" or f ~= f or f < 0 or (f == 0 and not nd.zero) or f > (nd.max or 1) then
    return wrong(self, nd, v, path)
  end
  return f
end

function CHECKERS.enum(self, nd, v, path)
  for _, x in ipairs(nd.values) do if v == x then return v end end
  local s = type(v) == "string" and suggest.closest(v, nd.values)
  self:err(path, "expected %s, got %s%s", expected(nd), describe(v), s and (" (did you mean '" .. s .. "'?)") or "")
  return nil
end

function CHECKERS.file(self, nd, v, path)
  if type(v) ~= "string" then return wrong(self, nd, v, path) end
  local full = self:file_path(v)
  if not util.exists(full) then self:err(path, "expected an existing file, '%s' not found", full) return nil end
  return full
end

function CHECKERS.list(self, nd, v, path)
  if type(v) ~= "table" or not is_list(v) then
    self:err(path, "expected %s, got %s", nd.what or ("a list of " .. expected(nd.of):gsub("^an? ", "")), describe(v))
    return nil
  end
  if nd.nonempty and #v == 0 then self:err(path, "expected a non-empty list") return nil end
  local out = {}
  for i, x in ipairs(v) do out[i] = self:check(nd.of, x, child(path, i)) end
  return out
end

local function not_a_mapping(v) return type(v) ~= "table" or (next(v) ~= nil and not is_map(v)) end

function CHECKERS.dict(self, nd, v, path)
  if not_a_mapping(v) then return wrong(self, nd, v, path) end
  local out = {}
  for _, key in ipairs(paths.ordered_keys(self.where, path, v)) do
    local ks = tostring(key)
    if ks:find("\0", 1, true) or (nd.key and not nd.key.check(ks)) then
      self:key_err(child(path, key), "expected %s as the key, got %s", nd.key and nd.key.what or "a name without a NUL byte",
                   describe(key))
    else
      out[ks] = self:check(nd.of, v[key], child(path, key))
    end
  end
  return out
end

function CHECKERS.map(self, nd, v, path)
  if not_a_mapping(v) then return wrong(self, nd, v, path) end
  local names = suggest.names(nd.fields)
  local out = {}
  for _, key in ipairs(paths.ordered_keys(self.where, path, v)) do
    local f = nd.fields[key]
    if not f then
      local s = suggest.closest(tostring(key), names)
      self:key_err(child(path, key), "unknown key%s (expected one of: %s)",
                   s and (", did you mean '" .. s .. "'?") or "", table.concat(names, ", "))
    else
      out[key] = self:check(f, v[key], child(path, key))
    end
  end
  for _, r in ipairs(nd.required or {}) do
    if v[r] == nil then self:err(path, "missing required key '%s'", r) end
  end
  return out
end

function CHECKERS.oneof(self, nd, v, path)
  -- try each alternative silently; report once with the union's description
  for _, alt in ipairs(nd.nodes) do
    local probe = check.new(self.file, self.where, self.opts)
    probe.dir = self.dir
    local r = probe:check(alt, v, path)
    if #probe.errors == 0 then return r end
  end
  -- a mapping that fails its only mapping alternative: show the deeper errors
  for _, alt in ipairs(nd.nodes) do
    if (alt.kind == "map" and is_map(v)) or (alt.kind == "list" and type(v) == "table" and is_list(v)) then
      return self:check(alt, v, path)
    end
  end
  return wrong(self, nd, v, path)
end

-- check(node, v, path) -> normalized value (nil after an error)
function Validator:check(nd, v, path)
  local k = nd.kind
  if v == yaml.null then v = nil end
  if k == "any" then return v end
  if v == nil then
    self:err(path, "expected %s, got nothing", expected(nd))
    return nil
  end
  -- a NUL ends a C string: a name or argument with one would be cut short
  -- (or break a file name), so no plan text may hold one
  if type(v) == "string" and v:find("\0", 1, true) then
    self:err(path, "expected %s without a NUL byte, got %s", expected(nd), describe(v))
    return nil
  end
  if type(v) == "number" and (v ~= v or v == math.huge or v == -math.huge) then
    self:err(path, "expected %s, got %s (not a finite number)", expected(nd), tostring(v))
    return nil
  end
  -- requests, duration, warmup: auto (bench.steady)
  if nd.auto and v == "auto" then return v end
  if nd.auto and type(v) == "string" and k ~= "duration" then
    self:err(path, "expected auto or %s, got %s", expected(nd), describe(v))
    return nil
  end
  local checker = CHECKERS[k]
  if not checker then error("plan: unknown schema kind " .. tostring(k)) end
  return checker(self, nd, v, path)
end

-- A mix weighs the seed's prompts (bench.workload.mix): a name it does not
-- know, or no weight above 0, would end the run at the cell's start.
local SEED_PROMPTS = {short = true, medium = true, long = true, reasoning = true, instruction = true}
function Validator:check_mix(mix, path, what)
  local any = false
  for name, w in pairs(mix) do
    if name ~= "seed" and name ~= "max_tokens" then
      if not SEED_PROMPTS[name] then
        self:err(path, "%sunknown prompt '%s' (a mix weighs the seed's prompts: short, medium, long, reasoning, instruction)",
                 what, tostring(name))
        return
      end
      if type(w) == "number" and w > 0 then any = true end
    end
  end
  if not any then self:err(path, "%sexpected at least one weight > 0", what) end
end

return check
