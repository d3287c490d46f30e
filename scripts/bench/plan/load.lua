-- bench.plan.load: read a plan file, apply --set overrides, and hand the
-- document to validation with positions that point into the file (or, for
-- a key a --set gave, at that --set).
local check = require("bench.plan.check")
local paths = require("bench.plan.paths")
local schema = require("bench.plan.schema")
local util = require("bench.util")
local validate = require("bench.plan.validate")
local yaml = require("bench.yaml")

local load = {}

local LIMITS = schema.LIMITS

---------------------------------------------------------------------------
-- --set overrides
---------------------------------------------------------------------------

-- parse "a.b[2].c" into {"a", "b", 2, "c"}; numeric segments ("b.2") are indices
function load.parse_key_path(s)
  local path = {}
  for seg in s:gmatch("[^.]+") do
    local name, rest = seg:match("^([^%[]*)(.*)$")
    if name ~= "" then path[#path + 1] = math.tointeger(tonumber(name)) or name end
    for idx in rest:gmatch("%[(%d+)%]") do path[#path + 1] = math.tointeger(tonumber(idx)) end
    if rest:gsub("%[%d+%]", "") ~= "" then return nil end
  end
  if #path == 0 then return nil end
  return path
end

-- parse_value(text) -> a YAML-typed value ("3" -> 3, "true", "[1, 2]", "{a: 1}")
local function parse_value(text)
  local v = yaml.decode(text)
  -- not YAML (e.g. "a: b: c"): the text itself, as a string
  if v == nil then return text end
  return v
end

-- load.apply_set(doc, "key.path=value") -> path or nil, why. Creates
-- intermediate mappings; a null value deletes the key.
function load.apply_set(doc, spec)
  local k, v = spec:match("^([^=]+)=(.*)$")
  if not k then return nil, string.format("--set %s: expected key.path=value", spec) end
  local path = load.parse_key_path(k)
  if not path then return nil, string.format("--set %s: bad key path '%s'", spec, k) end
  local value = parse_value(v)
  if value == yaml.null then value = nil end
  local t = doc
  for i = 1, #path - 1 do
    local key = path[i]
    if type(t[key]) ~= "table" then
      if t[key] ~= nil then
        return nil, string.format("--set %s: %s is %s, not a mapping or list", spec,
                                  paths.string({table.unpack(path, 1, i)}), check.describe(t[key]))
      end
      t[key] = {}
    end
    t = t[key]
  end
  t[path[#path]] = value
  return path
end

-- apply every --set; -> the list of {path, index, spec} or nil, why
local function apply_sets(doc, sets)
  local set_paths = {}
  for i, s in ipairs(sets or {}) do
    local p, why = load.apply_set(doc, s)
    if not p then return nil, why end
    set_paths[#set_paths + 1] = {path = p, index = i, spec = s}
  end
  return set_paths
end

-- where(path, key) that reports a key set by --set at line 0, column = the
-- --set's index (errors_text turns that into "--set k=v")
local function where_with_sets(where, set_paths)
  return function(p, key)
    for _, sp in ipairs(set_paths) do
      local prefix = true
      for i = 1, #sp.path do if p[i] ~= sp.path[i] then prefix = false break end end
      if prefix and #p >= #sp.path then return 0, sp.index end
    end
    return where(p, key)
  end
end

-- the validation errors as messages, those of a --set key named by it
local function errors_text(path, errs, set_paths)
  local msgs = {}
  for _, e in ipairs(errs) do
    local t = e.text
    if e.line == 0 and e.col > 0 then
      t = t:gsub("^" .. path:gsub("%p", "%%%0") .. ":0:%d+", "--set " .. set_paths[e.col].spec)
    end
    msgs[#msgs + 1] = t
  end
  return msgs
end

---------------------------------------------------------------------------
-- Reading
---------------------------------------------------------------------------

-- load.expanded_size(doc) -> nil, or why the document is too big. YAML
-- aliases share one table, so a small file can stand for a huge plan (and a
-- huge plan.yaml in the results); this walks it as if expanded and stops at
-- the limits.
function load.expanded_size(doc)
  local nodes, bytes = 0, 0
  local function walk(v)
    nodes = nodes + 1
    if nodes > LIMITS.plan_nodes or bytes > LIMITS.plan_bytes then return false end
    if type(v) == "string" then bytes = bytes + #v
    elseif type(v) == "table" then
      for k, x in pairs(v) do
        if type(k) == "string" then bytes = bytes + #k end
        if walk(x) == false then return false end
      end
    end
    bytes = bytes + 2
    return nodes <= LIMITS.plan_nodes and bytes <= LIMITS.plan_bytes
  end
  if walk(doc) then return nil end
  if nodes > LIMITS.plan_nodes then
    return string.format("the plan expands to more than %d values (expected at most %d)", LIMITS.plan_nodes,
                         LIMITS.plan_nodes)
  end
  return string.format("the plan expands to more than %d bytes (expected at most %d MiB)", LIMITS.plan_bytes,
                       LIMITS.plan_bytes // 1048576)
end

-- load.file(path, opts) -> plan or nil, messages (a list of strings).
-- opts: {sets = {"k=v"...}, only, dry_run, real}.
function load.file(path, opts)
  opts = opts or {}
  local text = util.read_file(path)
  if not text then return nil, {string.format("%s: cannot open the plan", path)} end
  local ok, doc, pos = pcall(yaml.load_file, path, {positions = true, max_alias_nodes = LIMITS.plan_nodes})
  if not ok or doc == nil then
    -- yaml.load_file's messages name the file (path:line:col: ...)
    return nil, {tostring(ok and pos or doc)}
  end
  local big = load.expanded_size(doc)
  if big then return nil, {string.format("%s: %s (each use of a YAML alias counts in full; see plans/README.md)", path, big)} end
  local set_paths, why = apply_sets(doc, opts.sets)
  if not set_paths then return nil, {why} end
  local where = where_with_sets(paths.make_where(doc, pos), set_paths)
  local plan, errs = validate(doc, {file = path, where = where, only = opts.only,
                                    dry_run = opts.dry_run, real = opts.real})
  if not plan then return nil, errors_text(path, errs, set_paths) end
  plan.text = text
  plan.doc = doc
  plan.sets = opts.sets
  return plan
end

-- load.string(text, opts) -> plan or nil, messages, the temporary file's
-- name (for tests)
function load.string(text, opts)
  opts = opts or {}
  local tmp = os.tmpname()
  local f = assert(io.open(tmp, "w"))
  f:write(text)
  f:close()
  local plan, errs = load.file(tmp, opts)
  os.remove(tmp)
  return plan, errs, tmp
end

return load
