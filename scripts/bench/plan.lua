-- bench.plan: the plan schema, validation with source positions, --set
-- overrides, matrix expansion into cells, cell ids and --only patterns.
--
-- A plan is a YAML file (documented in plans/README.md). plan.load reads it
-- with bench.yaml's source positions, applies --set overrides, validates the
-- whole document (collecting every error, each "<file>:<line>:<col>:
-- <key.path>: <what was expected>") and expands the matrix into cells.
-- Nothing here starts a process or touches the machine.
local M = {}

local yaml = require("bench.yaml")

---------------------------------------------------------------------------
-- Units: durations and sizes
---------------------------------------------------------------------------

local DURATION_UNITS = {ns = 1e-9, us = 1e-6, ["µs"] = 1e-6, ms = 1e-3, s = 1, m = 60, min = 60, h = 3600}
local SIZE_UNITS = {
  B = 1, KB = 1e3, MB = 1e6, GB = 1e9, TB = 1e12,
  KiB = 1024, MiB = 1024 ^ 2, GiB = 1024 ^ 3, TiB = 1024 ^ 4,
  K = 1024, M = 1024 ^ 2, G = 1024 ^ 3, T = 1024 ^ 4,
}

-- plan.duration(v) -> seconds (a number) or nil, why[, expected] (expected:
-- what a plan error says was expected, when the unit was wrong). Accepts a number
-- (seconds) or a string such as "100ms", "30s", "1.5m", "2h", "1h30m".
function M.duration(v)
  if type(v) == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return nil, "a finite duration" end
    if v < 0 then return nil, "a duration is not negative" end
    return v
  end
  if type(v) ~= "string" then return nil, "a duration such as 100ms, 30s or 5m" end
  local s = v:gsub("%s+", "")
  if s == "" then return nil, "a duration such as 100ms, 30s or 5m" end
  local total, pos, n = 0, 1, 0
  while pos <= #s do
    local num, unit, nxt = s:match("^(%d+%.?%d*)(%a+)()", pos)
    if not num then num, unit, nxt = s:match("^(%.%d+)(%a+)()", pos) end
    if not num then
      -- a bare number is seconds, but only alone ("30", not "1m30")
      if n == 0 and s:match("^%d+%.?%d*$") then return tonumber(s) end
      return nil, "a duration such as 100ms, 30s or 5m"
    end
    local f = DURATION_UNITS[unit]
    if not f then return nil, string.format("a duration unit (ms, s, m, h), got '%s'", unit), "a duration unit (ms, s, m, h)" end
    total = total + tonumber(num) * f
    pos, n = nxt, n + 1
  end
  return total
end

-- plan.size(v) -> bytes (an integer) or nil, why[, expected] (as plan.duration). A number is bytes; a
-- string is "512MiB", "2GiB", "138GB" (GB = 10^9, GiB = 2^30).
function M.size(v)
  if math.type(v) == "integer" then
    if v < 0 then return nil, "a size is not negative" end
    return v
  end
  if type(v) == "number" then
    if v ~= v or v < 0 or v >= 2^63 then return nil, "a size such as 512MiB, 2GiB or 138GB" end
    return math.tointeger(math.floor(v))
  end
  if type(v) ~= "string" then return nil, "a size such as 512MiB, 2GiB or 138GB" end
  local num, unit = v:gsub("%s+", ""):match("^(%d+%.?%d*)(%a*)$")
  if not num then return nil, "a size such as 512MiB, 2GiB or 138GB" end
  if unit == "" then unit = "B" end
  local f = SIZE_UNITS[unit]
  if not f then return nil, string.format("a size unit (B, KB, MB, GB, KiB, MiB, GiB, TiB), got '%s'", unit), "a size unit (B, KB, MB, GB, KiB, MiB, GiB, TiB)" end
  local b = math.floor(tonumber(num) * f + 0.5)
  if b >= 2^63 then return nil, "a size such as 512MiB, 2GiB or 138GB" end
  return math.tointeger(b)
end

-- plan.format_duration(seconds) -> short human text ("1h 02m", "3.2s").
function M.format_duration(s)
  if s >= 3600 then return string.format("%dh %02dm", s // 3600, (s % 3600) // 60) end
  if s >= 60 then return string.format("%dm %02ds", s // 60, math.floor(s % 60)) end
  if s >= 1 then return string.format("%.1fs", s) end
  return string.format("%.0fms", s * 1000)
end

-- plan.format_size(bytes) -> "138.0 GB" style text (decimal units, as the seed).
function M.format_size(b)
  if b >= 1e12 then return string.format("%.1f TB", b / 1e12) end
  if b >= 1e9 then return string.format("%.1f GB", b / 1e9) end
  if b >= 1e6 then return string.format("%.1f MB", b / 1e6) end
  if b >= 1e3 then return string.format("%.1f KB", b / 1e3) end
  return string.format("%d B", b)
end

---------------------------------------------------------------------------
-- Key paths
---------------------------------------------------------------------------

-- A path is a list of keys (strings) and 1-based list indices (integers).
-- Shown as "matrix.env[2]".
function M.path_string(path)
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

local function child(path, k)
  local p = table.move(path, 1, #path, 1, {})
  p[#p + 1] = k
  return p
end

---------------------------------------------------------------------------
-- "did you mean"
---------------------------------------------------------------------------

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

-- plan.suggest(word, candidates) -> the closest candidate or nil.
function M.suggest(word, candidates)
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

---------------------------------------------------------------------------
-- Type names in messages
---------------------------------------------------------------------------

local function is_list(v)
  if type(v) ~= "table" then return false end
  local mt = getmetatable(v)
  if mt and mt.__yaml == "map" then return false end
  if mt and mt.__yaml == "seq" then return true end
  local n = 0
  for _ in pairs(v) do n = n + 1 end
  if n == 0 then return mt == nil or mt.__yaml ~= "map" end
  return n == #v
end

local function is_map(v)
  if type(v) ~= "table" then return false end
  local mt = getmetatable(v)
  if mt and mt.__yaml == "map" then return true end
  if mt and mt.__yaml == "seq" then return false end
  if next(v) == nil then return true end
  return not is_list(v)
end

local function describe(v)
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
M.describe = describe

---------------------------------------------------------------------------
-- Positions
---------------------------------------------------------------------------

-- bench.yaml (docs/engine.md) gives, with {positions = true}, a side table
-- keyed by every decoded table: pos[t] = {line, col, keys = {[k] = {line,
-- col}}, values = {[k] = ...}, items = {[i] = ...}}. make_where turns it into
-- where(path, key) -> line, col of the deepest node known along path: the
-- value (or the key itself when `key` is true) of the last segment.
local function make_where(doc, pos)
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

-- key order of a mapping from positions (YAML order), else sorted.
local function ordered_keys(where, path, t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  local lc = {}
  for _, k in ipairs(keys) do
    local l, c = where(child(path, k), true)
    lc[k] = l * 100000 + c
  end
  table.sort(keys, function(a, b)
    if lc[a] ~= lc[b] then return lc[a] < lc[b] end
    return tostring(a) < tostring(b)
  end)
  return keys
end

---------------------------------------------------------------------------
-- The schema
---------------------------------------------------------------------------
-- Node kinds: string, int, number, bool, duration, size, enum, list, map
-- (known fields), dict (free keys, typed values), any, oneof, file (a path
-- that must exist, relative to the plan's folder), scalar.

local T = {}
local function node(kind, o) o = o or {}; o.kind = kind; return o end
function T.string(o) return node("string", o) end
function T.int(o) return node("int", o) end
function T.number(o) return node("number", o) end
function T.bool(o) return node("bool", o) end
function T.duration(o) return node("duration", o) end
function T.size(o) return node("size", o) end
function T.enum(values, o) o = o or {}; o.values = values; return node("enum", o) end
function T.list(of, o) o = o or {}; o.of = of; return node("list", o) end
function T.map(fields, o) o = o or {}; o.fields = fields; return node("map", o) end
function T.dict(of, o) o = o or {}; o.of = of; return node("dict", o) end
function T.any(o) return node("any", o) end
function T.scalar(o) return node("scalar", o) end
function T.file(o) return node("file", o) end
function T.oneof(nodes, o) o = o or {}; o.nodes = nodes; return node("oneof", o) end

-- Upper bounds of the load keys (plans/README.md): a value past them is a
-- typo (1e9 users, a week-long cell) that would otherwise exhaust memory or
-- run for ever; they are far above what one machine can serve.
M.LIMITS = {
  concurrency = 100000, requests = 10000000, ["repeat"] = 10000, warmup = 100000,
  max_tokens = 10000000, rate = 1000000, duration = 7 * 86400,
  -- a plan's size once its YAML aliases are expanded (billion-laughs bound)
  plan_nodes = 200000, plan_bytes = 8 * 1024 * 1024,
}
local L = M.LIMITS

-- sysctl names: dotted words, never a path ("../../x" would leave /proc/sys)
local SYSCTL_NAME = {check = function(k)
  return k:match("^[%w_][%w_%.%-]*$") ~= nil and not k:find("..", 1, true) and k:sub(-1) ~= "."
end, what = "a sysctl name (letters, digits, _ - and dots, e.g. kern.ipc.somaxconn)"}
-- environment variable names: no '=' (it ends the name) and not empty
local ENV_NAME = {check = function(k) return k ~= "" and not k:find("=", 1, true) end,
                  what = "an environment variable name (not empty, no '=')"}

M.BACKENDS = {"llama-server", "lmstudio", "mlx-lm", "vllm", "vllm-mlx", "ollama", "sglang", "command", "external", "sim"}
M.DIALECTS = {"openai", "llama.cpp", "lmstudio", "lmstudio-v0", "vllm", "ollama", "ollama-native", "sglang", "mlx-lm"}

local ENV = T.dict(T.scalar(), {what = "a mapping of environment variables to values", key = ENV_NAME})

-- Request limits (bench.openai's timeout, docs/openai.md): a plan's, a
-- server's and a cell's, each field over the one before.
local TIMEOUT = T.map({
  connect = T.duration{positive = true},
  first_byte = T.duration{positive = true},
  idle = T.duration{positive = true},
  total = T.duration{positive = true},
  min_tps = T.number{min = 0.001},
})
local ERROR_RATE = T.number{min = 0, max = 1}

local SERVER_FIELDS = {
  name = T.string(),
  backend = T.enum(M.BACKENDS),
  model = T.string(),
  args = T.list(T.scalar()),
  env = ENV,
  unset_env = T.list(T.string()),
  port = T.int{min = 0, max = 65535},
  ready_timeout = T.duration{positive = true},
  timeout = TIMEOUT,
  binary = T.string(),
  base_url = T.string(),
  dialect = T.enum(M.DIALECTS),
  api_key_env = T.string(),
  log = T.string(),
  extra = T.any(),
}
local SERVER = T.map(SERVER_FIELDS)

local MODEL = T.map({
  name = T.string(),
  model = T.string(),          -- file path or the server's model id
  format = T.enum({"gguf", "mlx", "safetensors", "other"}),
  quant = T.string(),          -- "4-bit", "Q4_K_M"
  bits = T.number(),
  size = T.size(),             -- file size, for TPS/GB
  server = T.string(),         -- default server (name in servers:) for this model
  args = T.list(T.scalar()),   -- extra server args for this model
  env = ENV,
  expect = T.enum({"ok", "oom", "fail"}), -- what the seed expects (BF16: oom)
  note = T.string(),
  by_server = T.dict(T.string(), {what = "a mapping of server names to this model's id or path there"}),
})

local PROMPT = T.map({
  name = T.string(),
  prompt = T.string(),
  messages = T.list(T.map({role = T.enum({"system", "user", "assistant"}), content = T.string()}, {required = {"role", "content"}})),
  system = T.string(),
  max_tokens = T.int{min = 1, max = L.max_tokens},
  check = T.string(),          -- a Lua expression over `text` (quality check)
}, {required = {"name"}})

local WORKLOAD = T.map({
  prompts = T.oneof({T.enum({"seed"}), T.list(PROMPT, {nonempty = true})},
                    {what = "\"seed\" or a list of prompts ({name, prompt, max_tokens})"}),
  file = T.file(),             -- a JSONL/JSON prompt file (bench.workload.file)
  mix = T.dict(T.number{min = 0}, {what = "a mapping of prompt names to weights"}),
  max_tokens = T.int{min = 1, max = L.max_tokens},
  synthetic = T.any(),         -- passed to bench.workload.synthetic
  temperature = T.number{min = 0},
  seed = T.int(),
})

local SYSCTL = T.dict(T.oneof({T.int(), T.string()}, {what = "an integer or \"default\""}),
                      {what = "a mapping of sysctl names to values", key = SYSCTL_NAME})

-- What a cell can set: the base settings, an axis value or an explicit cell.
local CELL_FIELDS = {
  name = T.string(),
  server = T.oneof({T.string(), SERVER}, {what = "a server name (from servers:) or a server mapping"}),
  model = T.oneof({T.string(), MODEL}, {what = "a model name (from models:) or a model mapping"}),
  backend = T.enum(M.BACKENDS),
  args = T.list(T.scalar()),
  env = ENV,
  unset_env = T.list(T.string()),
  sysctl = SYSCTL,
  concurrency = T.int{min = 1, max = L.concurrency},
  max_tokens = T.int{min = 1, max = L.max_tokens},
  requests = T.int{min = 1, max = L.requests},
  duration = T.duration{positive = true, max = L.duration},
  rate = T.number{min = 0.001, max = L.rate},
  arrival = T.enum({"poisson", "constant"}),
  mix = T.dict(T.number{min = 0}, {what = "a mapping of prompt names to weights"}),
  prompt = T.string(),         -- one prompt of the workload, by name
  ["repeat"] = T.int{min = 1, max = L["repeat"]},
  warmup = T.int{min = 0, max = L.warmup},
  restart = T.bool(),
  tags = T.dict(T.scalar()),
  timeout = TIMEOUT,
  max_error_rate = ERROR_RATE,
}

local function cell_map(o) return T.map(CELL_FIELDS, o) end

-- a scenario of load: (phase 4) list-valued concurrency / max_tokens expand
local function int_or_list(max)
  return T.oneof({T.int{min = 1, max = max}, T.list(T.int{min = 1, max = max}, {nonempty = true})},
                 {what = string.format("a positive integer (at most %d) or a list of them", max)})
end
local SCENARIO = T.map({
  name = T.string(),
  concurrency = int_or_list(L.concurrency),
  max_tokens = int_or_list(L.max_tokens),
  requests = T.int{min = 1, max = L.requests},
  duration = T.duration{positive = true, max = L.duration},
  rate = T.number{min = 0.001, max = L.rate},
  arrival = T.enum({"poisson", "constant"}),
  mix = T.dict(T.number{min = 0}, {what = "a mapping of prompt names to weights"}),
  prompt = T.string(),         -- a prompt name of the workload
  warmup = T.int{min = 0, max = L.warmup},
  ["repeat"] = T.int{min = 1, max = L["repeat"]},
  note = T.string(),
  timeout = TIMEOUT,
  max_error_rate = ERROR_RATE,
}, {required = {"name"}})

local DRY_MODEL = T.map({
  decode_tps = T.number{min = 0.001},
  prefill_tps = T.number{min = 0.001},
  load_time = T.duration{max = 86400},   -- the simulator waits this long
  model_memory = T.size(),
})

M.schema = T.map({
  name = T.string(),
  description = T.string(),
  script = T.string(),
  server = SERVER,
  servers = T.dict(SERVER, {what = "a mapping of server names to servers"}),
  models = T.dict(MODEL, {what = "a mapping of model names to models"}),
  workload = WORKLOAD,
  ["repeat"] = T.int{min = 1, max = L["repeat"]},
  warmup = T.int{min = 0, max = L.warmup},
  concurrency = T.int{min = 1, max = L.concurrency},
  max_tokens = T.int{min = 1, max = L.max_tokens},
  requests = T.int{min = 1, max = L.requests},
  env = ENV,
  sysctl = SYSCTL,
  matrix = T.oneof({T.dict(T.any()), T.list(T.dict(T.any()), {nonempty = true})},
                   {what = "a mapping of axis names to lists of values, or a list of such mappings"}),
  cells = T.list(cell_map(), {nonempty = true}),
  exclude = T.list(T.dict(T.any())),
  load = T.list(SCENARIO, {nonempty = true}),
  sampling = T.map({
    -- a sampler ticks every interval: 0 would spin, so at least 1 ms
    memory = T.duration{min = 0.001, max = 3600},
    gpu = T.bool(),
    metrics = T.oneof({T.bool(), T.duration{min = 0.001, max = 3600}}, {what = "true, false or a scrape interval of 1ms to 1h"}),
  }),
  slo = T.map({
    ttft_p50 = T.duration{positive = true}, ttft_p95 = T.duration{positive = true}, ttft_p99 = T.duration{positive = true},
    tpot_p50 = T.duration{positive = true}, tpot_p95 = T.duration{positive = true}, tpot_p99 = T.duration{positive = true},
    itl_p95 = T.duration{positive = true}, itl_p99 = T.duration{positive = true},
    e2el_p50 = T.duration{positive = true}, e2el_p95 = T.duration{positive = true}, e2el_p99 = T.duration{positive = true},
  }),
  output = T.string(),
  timeout = TIMEOUT,
  max_error_rate = ERROR_RATE,
  safety = T.map({
    memory_ceiling = T.size(),
    max_sysctl = SYSCTL,
    stop_on_oom = T.bool(),
  }),
  criteria = T.map({
    all_prompts_complete = T.bool(),
    memory_limit = T.size(),
    no_oom = T.bool(),
    comparable_to = T.string(),
  }),
  compare = T.list(T.map({name = T.string(), a = T.string(), b = T.string(), note = T.string()},
                         {required = {"name", "a", "b"}})),
  questions = T.list(T.string()),
  expected = T.dict(T.any()),
  notes = T.list(T.string()),
  estimate = T.map({
    load_time = T.duration(),
    decode_tps = T.number{min = 0.001},
    prefill_tps = T.number{min = 0.001},
    prompt_tokens = T.int{min = 0},
  }),
  dry_run = T.map({
    decode_tps = T.number{min = 0.001},
    prefill_tps = T.number{min = 0.001},
    load_time = T.duration{max = 86400},
    model_memory = T.size(),
    memory_scale = T.number{min = 0},
    oom_at_memory = T.size(),
    max_tokens = T.int{min = 1, max = L.max_tokens},
    slots = T.int{min = 1, max = L.concurrency},
    batch_slowdown = T.number{min = 0},
    speedup_env = T.dict(T.number{min = 0.001}, {what = "a mapping of NAME or NAME=VALUE to a speed factor"}),
    models = T.dict(DRY_MODEL, {what = "a mapping of model names to simulator figures"}),
    reasoning = T.bool(),
    dialect = T.enum({"openai", "llama.cpp", "lmstudio", "ollama"}),
    args = T.list(T.scalar()),
  }),
  params = T.any(),            -- free-form, for the phase script
}, {required = {"name"}})

M.CELL_FIELDS = CELL_FIELDS

---------------------------------------------------------------------------
-- Validation
---------------------------------------------------------------------------

local V = {}
V.__index = V

local function new_validator(file, where, opts)
  return setmetatable({file = file, where = where, errors = {}, warnings = {}, opts = opts or {},
                       dir = file:match("^(.*)/[^/]*$") or "."}, V)
end

function V:at(path, key)
  local l, c = self.where(path, key)
  return string.format("%s:%d:%d", self.file, l or 1, c or 1), l or 1, c or 1
end

-- err(path, fmt, ...): record "<file>:<l>:<c>: <path>: <msg>".
function V:err(path, fmt, ...)
  local at, l, c = self:at(path, self.key_pos)
  local msg = select("#", ...) > 0 and fmt:format(...) or fmt
  self.errors[#self.errors + 1] = {text = string.format("%s: %s: %s", at, M.path_string(path), msg),
                                   line = l, col = c, path = M.path_string(path), msg = msg}
end

function V:warn(path, fmt, ...)
  local at = self:at(path)
  local msg = select("#", ...) > 0 and fmt:format(...) or fmt
  self.warnings[#self.warnings + 1] = string.format("%s: %s: %s", at, M.path_string(path), msg)
end

local function expected(node)
  if node.what then return node.what end
  local k = node.kind
  if k == "string" then return "a string" end
  if k == "int" then
    if node.min == 1 then return "a positive integer" end
    if node.min == 0 then return "an integer >= 0" end
    return "an integer"
  end
  if k == "number" then return node.min and ("a number >= " .. node.min) or "a number" end
  if k == "bool" then return "true or false" end
  if k == "duration" then return "a duration such as 100ms, 30s or 5m" end
  if k == "size" then return "a size such as 512MiB, 2GiB or 138GB" end
  if k == "enum" then return "one of " .. table.concat(node.values, ", ") end
  if k == "list" then return "a list" end
  if k == "map" or k == "dict" then return "a mapping" end
  if k == "file" then return "a file path" end
  if k == "scalar" then return "a string, number or boolean" end
  return "a value"
end

local function quote_file(self, p)
  if p:sub(1, 1) == "/" then return p end
  if p:sub(1, 2) == "~/" then return (os.getenv("HOME") or "") .. p:sub(2) end
  return self.dir .. "/" .. p
end

local function file_exists(p)
  local f = io.open(p, "r")
  if f then f:close() return true end
  return false
end

-- check(node, v, path) -> normalized value (nil after an error)
function V:check(nd, v, path)
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
  if k == "string" then
    if type(v) == "number" and nd.coerce ~= false then return tostring(v) end
    if type(v) ~= "string" then self:err(path, "expected %s, got %s", expected(nd), describe(v)) return nil end
    return v
  elseif k == "scalar" then
    if type(v) == "table" then self:err(path, "expected %s, got %s", expected(nd), describe(v)) return nil end
    return v
  elseif k == "int" then
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
      self:err(path, "expected %s%s, got %d", expected(nd),
               nd.max and string.format(" (at most %d)", nd.max) or "", v)
      return nil
    end
    return v
  elseif k == "number" then
    if type(v) ~= "number" then self:err(path, "expected %s, got %s", expected(nd), describe(v)) return nil end
    if (nd.min and v < nd.min) or (nd.max and v > nd.max) then
      self:err(path, "expected %s%s, got %s", expected(nd), nd.max and string.format(" (at most %g)", nd.max) or "",
               (nd.max and v > nd.max) and string.format("%g", v) or tostring(v))
      return nil
    end
    return v
  elseif k == "bool" then
    if type(v) ~= "boolean" then self:err(path, "expected %s, got %s", expected(nd), describe(v)) return nil end
    return v
  elseif k == "duration" then
    local s, _, bad_unit = M.duration(v)
    if not s then self:err(path, "expected %s, got %s", bad_unit or expected(nd), describe(v)) return nil end
    if nd.positive and s <= 0 then self:err(path, "expected a duration greater than 0, got %s", describe(v)) return nil end
    if nd.min and s < nd.min then
      self:err(path, "expected a duration of at least %s, got %s", M.format_duration(nd.min), describe(v))
      return nil
    end
    if nd.max and s > nd.max then
      self:err(path, "expected a duration of at most %s, got %s", M.format_duration(nd.max), describe(v))
      return nil
    end
    return s
  elseif k == "size" then
    local b, _, bad_unit = M.size(v)
    if not b then self:err(path, "expected %s, got %s", bad_unit or expected(nd), describe(v)) return nil end
    return b
  elseif k == "enum" then
    for _, x in ipairs(nd.values) do if v == x then return v end end
    local s = type(v) == "string" and M.suggest(v, nd.values)
    self:err(path, "expected %s, got %s%s", expected(nd), describe(v), s and (" (did you mean '" .. s .. "'?)") or "")
    return nil
  elseif k == "file" then
    if type(v) ~= "string" then self:err(path, "expected %s, got %s", expected(nd), describe(v)) return nil end
    local full = quote_file(self, v)
    if not file_exists(full) then self:err(path, "expected an existing file, '%s' not found", full) return nil end
    return full
  elseif k == "list" then
    if type(v) ~= "table" or not is_list(v) then
      self:err(path, "expected %s, got %s", nd.what or ("a list of " .. expected(nd.of):gsub("^an? ", "")), describe(v))
      return nil
    end
    if nd.nonempty and #v == 0 then self:err(path, "expected a non-empty list") return nil end
    local out = {}
    for i, x in ipairs(v) do out[i] = self:check(nd.of, x, child(path, i)) end
    return out
  elseif k == "dict" then
    if type(v) ~= "table" or (next(v) ~= nil and not is_map(v)) then
      self:err(path, "expected %s, got %s", expected(nd), describe(v))
      return nil
    end
    local out = {}
    for _, key in ipairs(ordered_keys(self.where, path, v)) do
      local ks = tostring(key)
      if ks:find("\0", 1, true) or (nd.key and not nd.key.check(ks)) then
        self.key_pos = true
        self:err(child(path, key), "expected %s as the key, got %s", nd.key and nd.key.what or "a name without a NUL byte",
                 describe(key))
        self.key_pos = nil
      else
        out[ks] = self:check(nd.of, v[key], child(path, key))
      end
    end
    return out
  elseif k == "map" then
    if type(v) ~= "table" or (next(v) ~= nil and not is_map(v)) then
      self:err(path, "expected %s, got %s", expected(nd), describe(v))
      return nil
    end
    local names = {}
    for f in pairs(nd.fields) do names[#names + 1] = f end
    table.sort(names)
    local out = {}
    for _, key in ipairs(ordered_keys(self.where, path, v)) do
      local f = nd.fields[key]
      if not f then
        local s = M.suggest(tostring(key), names)
        self.key_pos = true
        self:err(child(path, key), "unknown key%s (expected one of: %s)",
                 s and (", did you mean '" .. s .. "'?") or "", table.concat(names, ", "))
        self.key_pos = nil
      else
        out[key] = self:check(f, v[key], child(path, key))
      end
    end
    for _, r in ipairs(nd.required or {}) do
      if v[r] == nil then self:err(path, "missing required key '%s'", r) end
    end
    return out
  elseif k == "oneof" then
    -- try each alternative silently; report once with the union's description
    for _, alt in ipairs(nd.nodes) do
      local probe = new_validator(self.file, self.where, self.opts)
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
    self:err(path, "expected %s, got %s", expected(nd), describe(v))
    return nil
  end
  error("plan: unknown schema kind " .. tostring(k))
end

---------------------------------------------------------------------------
-- --set overrides
---------------------------------------------------------------------------

-- parse "a.b[2].c" into {"a", "b", 2, "c"}; numeric segments ("b.2") are indices
local function parse_key_path(s)
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

-- plan.apply_set(doc, "key.path=value") -> path or nil, why. Creates
-- intermediate mappings; a null value deletes the key.
function M.apply_set(doc, spec)
  local k, v = spec:match("^([^=]+)=(.*)$")
  if not k then return nil, string.format("--set %s: expected key.path=value", spec) end
  local path = parse_key_path(k)
  if not path then return nil, string.format("--set %s: bad key path '%s'", spec, k) end
  local value = parse_value(v)
  if value == yaml.null then value = nil end
  local t = doc
  for i = 1, #path - 1 do
    local key = path[i]
    if type(t[key]) ~= "table" then
      if t[key] ~= nil then
        return nil, string.format("--set %s: %s is %s, not a mapping or list", spec,
                                  M.path_string({table.unpack(path, 1, i)}), describe(t[key]))
      end
      t[key] = {}
    end
    t = t[key]
  end
  t[path[#path]] = value
  return path
end

---------------------------------------------------------------------------
-- Matrix expansion
---------------------------------------------------------------------------

-- Known axes and what a value of each sets in the cell.
local AXES = {
  model = true, server = true, backend = true, env = true, sysctl = true,
  concurrency = true, max_tokens = true, requests = true, args = true,
  ["repeat"] = true, rate = true, mix = true, warmup = true,
}
M.AXES = AXES

local function shallow_copy(t)
  local o = {}
  for k, v in pairs(t or {}) do o[k] = v end
  return o
end

local function deep_copy(v)
  if type(v) ~= "table" then return v end
  local o = {}
  for k, x in pairs(v) do o[k] = deep_copy(x) end
  return o
end

local function scalar_label(v)
  if type(v) == "number" then
    if math.type(v) == "float" and v == math.floor(v) then return tostring(math.tointeger(v)) end
    return tostring(v)
  end
  return tostring(v)
end

-- a readable label of an axis value
local function label_of(axis, v)
  if type(v) ~= "table" then return scalar_label(v) end
  if v.name then return tostring(v.name) end
  if axis == "env" or axis == "sysctl" then
    local keys = {}
    for key in pairs(v) do keys[#keys + 1] = key end
    table.sort(keys)
    if #keys == 0 then return "default" end
    local parts = {}
    for _, key in ipairs(keys) do
      local short = key:gsub("^GGML_METAL_", ""):gsub("^iogpu%.", "")
      parts[#parts + 1] = short .. "=" .. scalar_label(v[key])
    end
    return table.concat(parts, "+")
  end
  if is_list(v) then
    local parts = {}
    for i, x in ipairs(v) do parts[i] = scalar_label(x) end
    return table.concat(parts, " ")
  end
  return "?"
end
M.label_of = label_of

-- Merge one setting into a cell spec (later wins; env/sysctl/tags merge).
local function set_field(cell, key, value)
  if key == "env" or key == "sysctl" or key == "tags" then
    cell[key] = shallow_copy(cell[key])
    for k, v in pairs(value or {}) do cell[key][k] = v end
  elseif key == "server" and type(value) == "table" then
    local s = shallow_copy(type(cell.server) == "table" and cell.server or {})
    for k, v in pairs(value) do
      if k == "env" then
        s.env = shallow_copy(s.env)
        for ek, ev in pairs(v) do s.env[ek] = ev end
      else
        s[k] = v
      end
    end
    cell.server = s
  else
    cell[key] = value
  end
end

-- Validate one axis (matrix.<axis>) -> list of {label, settings}
function V:axis(name, values, path)
  if type(values) ~= "table" or not is_list(values) then
    self:err(path, "expected a list of values for the axis '%s', got %s", name, describe(values))
    return nil
  end
  if #values == 0 then
    self:err(path, "expected a non-empty list (an empty axis makes zero cells)")
    return nil
  end
  local out = {}
  for i, v in ipairs(values) do
    local p = child(path, i)
    local settings
    if AXES[name] then
      local nd = CELL_FIELDS[name]
      if (name == "env" or name == "sysctl") and type(v) == "table" and v.name ~= nil then
        -- a named env/sysctl set: {name: private, GGML_...: "1"}
        local copy = shallow_copy(v)
        copy.name = nil
        local r = self:check(nd, copy, p)
        settings = r and {[name] = r}
      elseif name == "sysctl" and type(v) ~= "table" then
        self:err(p, "expected a mapping of sysctl names to values (e.g. {iogpu.wired_limit_mb: 458752}), got %s", describe(v))
      else
        local r = self:check(nd, v, p)
        settings = r ~= nil and {[name] = r} or nil
      end
    else
      -- a custom axis: each value is a mapping of cell settings with a name
      if type(v) ~= "table" or not is_map(v) then
        local s = M.suggest(name, (function() local a = {} for x in pairs(AXES) do a[#a + 1] = x end table.sort(a) return a end)())
        self:err(p, "expected a mapping of cell settings with a name (a custom axis)%s, got %s",
                 s and string.format("; or did you mean the axis '%s'?", s) or "", describe(v))
      else
        settings = self:check(cell_map{required = {"name"}}, v, p)
      end
    end
    if settings then
      out[#out + 1] = {label = label_of(name, v), settings = settings, raw = v}
    end
  end
  return out
end

local function glob_to_pattern(g)
  local p = g:gsub("[%^%$%(%)%%%.%[%]%+%-]", "%%%0"):gsub("%*", ".*"):gsub("%?", ".")
  return "^" .. p .. "$"
end

-- plan.match_cell(cell, patterns) -> true if any comma-separated glob
-- matches the cell id, one of its axis labels, or "axis=label".
function M.match_cell(cell, pattern)
  for g in pattern:gmatch("[^,]+") do
    g = g:match("^%s*(.-)%s*$")
    local axis, val = g:match("^([%w_%.]+)=(.*)$")
    if axis and cell.axes[axis] ~= nil then
      if tostring(cell.axes[axis]):match(glob_to_pattern(val)) then return true end
    else
      local pat = glob_to_pattern(g)
      if cell.id:match(pat) or tostring(cell.index) == g then return true end
      if not g:find("/", 1, true) then
        for _, lab in pairs(cell.axes) do
          if tostring(lab):match(pat) then return true end
        end
      end
    end
  end
  return false
end

-- Expand the scenario list (load:) into {label, settings} entries.
local function expand_load(scenarios)
  local out = {}
  for _, s in ipairs(scenarios) do
    local cs = type(s.concurrency) == "table" and s.concurrency or {s.concurrency or false}
    local ms = type(s.max_tokens) == "table" and s.max_tokens or {s.max_tokens or false}
    for _, c in ipairs(cs) do
      for _, m in ipairs(ms) do
        local label = s.name
        if #cs > 1 then label = label .. "-" .. c end
        if #ms > 1 then label = label .. "-" .. m end
        local settings = {scenario = s.name}
        if c then settings.concurrency = c end
        if m then settings.max_tokens = m end
        for _, k in ipairs({"requests", "duration", "rate", "arrival", "mix", "prompt", "warmup", "repeat", "note",
                            "timeout", "max_error_rate"}) do
          if s[k] ~= nil then settings[k] = s[k] end
        end
        out[#out + 1] = {label = label, settings = settings}
      end
    end
  end
  return out
end

-- Resolve server / model names into full specs for one cell.
function V:resolve(plan, cell, path)
  -- model: a name from models:, or a mapping, or a plain string (the model id/path)
  local m = cell.model
  if type(m) == "string" then
    if plan.models and plan.models[m] then
      m = shallow_copy(plan.models[m]); m.name = m.name or cell.model
    elseif plan.models and next(plan.models) and not (m:find("/") or m:find("%.gguf$")) then
      local names = {}
      for n in pairs(plan.models) do names[#names + 1] = n end
      table.sort(names)
      local s = M.suggest(m, names)
      self:err(path, "unknown model '%s'%s (models: %s)", m, s and (", did you mean '" .. s .. "'?") or "",
               table.concat(names, ", "))
      return nil
    else
      m = {name = m:match("([^/]+)$"), model = m}
    end
  elseif type(m) == "table" then
    m = shallow_copy(m)
    m.name = m.name or (m.model and m.model:match("([^/]+)$"))
  end
  cell.model = m

  local sv = cell.server
  local sname = sv
  if sv == nil and m and m.server then sname, sv = m.server, m.server end
  if type(sv) == "string" then
    if not (plan.servers and plan.servers[sv]) then
      local names = {}
      for n in pairs(plan.servers or {}) do names[#names + 1] = n end
      table.sort(names)
      local s = M.suggest(sv, names)
      self:err(path, "unknown server '%s'%s (servers: %s)", sv, s and (", did you mean '" .. s .. "'?") or "",
               #names > 0 and table.concat(names, ", ") or "none defined")
      return nil
    end
    local base = shallow_copy(plan.server)
    base.env = shallow_copy(base.env)
    for k, v in pairs(plan.servers[sv]) do
      if k == "env" then for ek, ev in pairs(v) do base.env[ek] = ev end else base[k] = v end
    end
    base.name = base.name or sname
    sv = base
  elseif type(sv) == "table" then
    local base = shallow_copy(plan.server)
    base.env = shallow_copy(base.env)
    for k, v in pairs(sv) do
      if k == "env" then for ek, ev in pairs(v) do base.env[ek] = ev end else base[k] = v end
    end
    sv = base
  else
    sv = shallow_copy(plan.server)
    sv.env = shallow_copy(sv.env)
  end
  -- cell-level backend/args/env/unset_env and model apply to the server
  if cell.backend then sv.backend = cell.backend end
  if m and m.model then sv.model = m.model end
  if m and m.by_server then
    local alt = m.by_server[sv.name or ""] or m.by_server[sv.backend or ""]
    if alt then sv.model = alt end
  end
  local args = {}
  for _, a in ipairs(sv.args or {}) do args[#args + 1] = tostring(a) end
  for _, a in ipairs(m and m.args or {}) do args[#args + 1] = tostring(a) end
  for _, a in ipairs(cell.args or {}) do args[#args + 1] = tostring(a) end
  sv.args = args
  local env = shallow_copy(sv.env)
  for k, v in pairs(plan.env or {}) do if env[k] == nil then env[k] = v end end
  for k, v in pairs(m and m.env or {}) do env[k] = v end
  for k, v in pairs(cell.env or {}) do env[k] = v end
  for k, v in pairs(env) do env[k] = type(v) == "boolean" and (v and "1" or "0") or tostring(v) end
  sv.env = env
  local unset = {}
  for _, u in ipairs(sv.unset_env or {}) do unset[#unset + 1] = u end
  for _, u in ipairs(cell.unset_env or {}) do unset[#unset + 1] = u end
  sv.unset_env = unset
  sv.ready_timeout = sv.ready_timeout or 1800
  if not sv.backend then
    self:err(path, "no server backend for this cell (set server.backend, or servers: with a backend)")
    return nil
  end
  if sv.backend == "external" and not sv.base_url then
    self:err(path, "the backend 'external' needs server.base_url")
  end
  cell.server = sv
  local sysctl = shallow_copy(plan.sysctl)
  for k, v in pairs(cell.sysctl or {}) do sysctl[k] = v end
  cell.sysctl = sysctl
  return cell
end

-- A mix weighs the seed's prompts (bench.workload.mix): a name it does not
-- know, or no weight above 0, would end the run at the cell's start.
function V:check_mix(mix, path, what)
  local seed = {}
  for _, n in ipairs({"short", "medium", "long", "reasoning", "instruction"}) do seed[n] = true end
  local any = false
  for name, w in pairs(mix) do
    if name ~= "seed" and name ~= "max_tokens" then
      if not seed[name] then
        self:err(path, "%sunknown prompt '%s' (a mix weighs the seed's prompts: short, medium, long, reasoning, instruction)",
                 what, tostring(name))
        return
      end
      if type(w) == "number" and w > 0 then any = true end
    end
  end
  if not any then self:err(path, "%sexpected at least one weight > 0", what) end
end

-- Build the cell list. Returns cells (possibly empty after errors).
function V:expand(plan, raw)
  local blocks = {}
  if raw.matrix ~= nil and plan.matrix ~= nil then
    local list = is_list(raw.matrix) and raw.matrix or {raw.matrix}
    local listed = is_list(raw.matrix)
    for bi, m in ipairs(list) do
      local bpath = listed and {"matrix", bi} or {"matrix"}
      local axes = {}
      if listed then
        local gname = m.name
        if gname == nil then
          self:err(bpath, "expected a name: for each matrix of a list (it starts the ids of its cells)")
        else
          axes[#axes + 1] = {name = "group", values = {{label = tostring(gname), settings = {group = tostring(gname)}}}}
        end
      end
      for _, name in ipairs(ordered_keys(self.where, bpath, m)) do
        if not (listed and name == "name") then
          local vals = self:axis(name, m[name], child(bpath, name))
          if vals then axes[#axes + 1] = {name = name, values = vals} end
        end
      end
      blocks[#blocks + 1] = {axes = axes, path = bpath}
    end
  end
  if #blocks == 0 then blocks[1] = {axes = {}, path = {}} end
  if plan.load then
    for _, b in ipairs(blocks) do
      b.axes[#b.axes + 1] = {name = "load", values = expand_load(plan.load)}
    end
  end
  local base = {}
  for _, k in ipairs({"repeat", "warmup", "concurrency", "max_tokens", "requests"}) do base[k] = plan[k] end

  local function cross(partial, axes)
    for _, ax in ipairs(axes) do
      local nxt = {}
      for _, pc in ipairs(partial) do
        for _, v in ipairs(ax.values) do
          local st = table.move(pc.settings, 1, #pc.settings, 1, {})
          st[#st + 1] = v.settings
          local labels = shallow_copy(pc.labels)
          labels[ax.name] = v.label
          local order = table.move(pc.order, 1, #pc.order, 1, {})
          order[#order + 1] = ax.name
          nxt[#nxt + 1] = {settings = st, labels = labels, order = order, path = pc.path}
        end
      end
      partial = nxt
    end
    return partial
  end

  -- combinations: explicit cells (crossed with any axes), or the matrix
  local combos = {}
  if plan.cells then
    for i, c in ipairs(plan.cells) do
      local labels = {cell = c.name or tostring(i)}
      local cb = {settings = {c}, labels = labels, order = {"cell"}, path = {"cells", i}}
      for _, x in ipairs(cross({cb}, blocks[1].axes)) do combos[#combos + 1] = x end
    end
  else
    for _, b in ipairs(blocks) do
      for _, x in ipairs(cross({{settings = {}, labels = {}, order = {}, path = b.path}}, b.axes)) do
        combos[#combos + 1] = x
      end
    end
  end

  -- exclude: partial {axis: label-or-glob}
  local excluded = 0
  if plan.exclude then
    local kept = {}
    for _, cb in ipairs(combos) do
      local drop = false
      for _, ex in ipairs(plan.exclude) do
        local all = true
        for k, v in pairs(ex) do
          local lab = cb.labels[k]
          if lab == nil or not tostring(lab):match(glob_to_pattern(scalar_label(v))) then all = false break end
        end
        if all and next(ex) then drop = true break end
      end
      if drop then excluded = excluded + 1 else kept[#kept + 1] = cb end
    end
    combos = kept
  end

  -- An axis with one value in every cell (server: [lmstudio]) names no
  -- difference: it stays a label but is left out of the ids, so an id says
  -- what sets a cell apart (unless every axis is constant).
  local constant, nconst, naxes = {}, 0, 0
  for _, cb in ipairs(combos) do
    for _, a in ipairs(cb.order) do
      if constant[a] == nil then
        naxes = naxes + 1
        local same = true
        for _, other in ipairs(combos) do
          if other.labels[a] ~= cb.labels[a] then same = false break end
        end
        constant[a] = same
        if same then nconst = nconst + 1 end
      end
    end
  end
  if nconst == naxes then constant = {} end

  local cells, seen, files = {}, {}, {}
  for i, cb in ipairs(combos) do
    local cell = shallow_copy(base)
    for _, s in ipairs(cb.settings) do
      for k, v in pairs(s) do set_field(cell, k, deep_copy(v)) end
    end
    local parts = {}
    for _, a in ipairs(cb.order) do
      if not constant[a] then parts[#parts + 1] = cb.labels[a] end
    end
    cell.id = #parts > 0 and table.concat(parts, "/") or (plan.name or "cell")
    cell.axes = cb.labels
    cell.axis_order = cb.order
    cell.group = nil
    cell.index = i
    cell["repeat"] = cell["repeat"] or 1
    cell.warmup = cell.warmup or 0
    -- an open-loop cell (rate) caps its senders only when concurrency was given
    cell.concurrency_set = cell.concurrency ~= nil or nil
    cell.concurrency = cell.concurrency or 1
    if cell.prompt then
      local names = {}
      for _, p in ipairs(M.prompt_budgets(plan)) do names[#names + 1] = p.name end
      local found = false
      for _, nm in ipairs(names) do if nm == cell.prompt then found = true end end
      if not found and not (plan.workload and (plan.workload.file or plan.workload.synthetic)) then
        local sug = M.suggest(cell.prompt, names)
        self:err(cb.path, "cell %s: unknown prompt '%s'%s (prompts: %s)", cell.id, cell.prompt,
                 sug and (", did you mean '" .. sug .. "'?") or "", table.concat(names, ", "))
      end
    end
    if cell.mix then self:check_mix(cell.mix, cb.path, "cell " .. cell.id .. ": mix: ") end
    if cell.arrival and not cell.rate then
      self:err(cb.path, "cell %s: arrival '%s' needs a rate (requests per second) in the same cell", cell.id, cell.arrival)
    end
    if seen[cell.id] then
      self:err(cb.path, "two cells have the same id '%s' (give the values distinct names)", cell.id)
    end
    seen[cell.id] = true
    -- a cell's files (cells/<id>.json, server-<id>.log) use its id with some
    -- characters replaced: two ids must not end up as one file name
    local fname = require("bench.results").file_name(cell.id)
    if cell.id:find("\0", 1, true) then
      self:err(cb.path, "cell id %q contains a NUL byte", cell.id)
    elseif files[fname] and files[fname] ~= cell.id then
      self:err(cb.path, "cells '%s' and '%s' would share the file name '%s' (characters other than letters, " ..
               "digits, '.', '_' and '-' become '_'): give the values distinct names", files[fname], cell.id, fname)
    elseif #fname > 200 then
      self:err(cb.path, "cell id '%s...' is too long for a file name (%d bytes once made a file name, at most 200): " ..
               "give the values shorter names", cell.id:sub(1, 40), #fname)
    end
    files[fname] = files[fname] or cell.id
    if self:resolve(plan, cell, cb.path) then cells[#cells + 1] = cell end
  end
  return cells, excluded
end

---------------------------------------------------------------------------
-- Cross-field checks
---------------------------------------------------------------------------

function V:cross(plan, raw)
  if raw.matrix and raw.cells then
    -- cells × matrix is allowed, but the matrix must not set the same things twice
  end
  if plan.compare then
    for i, c in ipairs(plan.compare) do
      for _, side in ipairs({"a", "b"}) do
        local n = c[side]
        if n and plan.models and not plan.models[n] then
          local names = {}
          for x in pairs(plan.models) do names[#names + 1] = x end
          table.sort(names)
          local s = M.suggest(n, names)
          self:err({"compare", i, side}, "unknown model '%s'%s", n, s and (", did you mean '" .. s .. "'?") or "")
        end
      end
    end
  end
  if plan.dry_run and plan.dry_run.models and plan.models then
    for n in pairs(plan.dry_run.models) do
      if not plan.models[n] then
        self:err({"dry_run", "models", n}, "unknown model '%s' (not in models:)", n)
      end
    end
  end
  if plan.workload and plan.workload.prompts and plan.workload.file then
    self:err({"workload", "file"}, "expected either workload.prompts or workload.file, not both")
  end
  if plan.script then
    -- a phase script is code benchrun runs: only one of ours, by a path
    -- relative to scripts/ that stays inside it, and it must compile
    local p = plan.script
    local inside = p:sub(1, 1) ~= "/" and p:sub(1, 1) ~= "~" and p:match("%.lua$")
    for seg in p:gmatch("[^/]+") do if seg == ".." then inside = false end end
    local full = bench.scripts_dir .. "/" .. p
    if not inside then
      self:err({"script"}, "expected a Lua script under scripts/ such as phases/baseline.lua (a relative path ending in .lua, no '..'), got '%s'", p)
    elseif not file_exists(full) then
      self:err({"script"}, "expected a Lua script under scripts/ (e.g. phases/baseline.lua), '%s' not found", p)
    else
      local chunk, why = loadfile(full)
      if not chunk then self:err({"script"}, "the phase script does not compile: %s", tostring(why))
      else plan.script_path = full end
    end
  end
  if plan.workload and plan.workload.mix then self:check_mix(plan.workload.mix, {"workload", "mix"}, "") end
  for i, sc in ipairs(plan.load or {}) do
    if sc.mix then self:check_mix(sc.mix, {"load", i, "mix"}, "") end
  end
  if plan.workload and plan.workload.synthetic ~= nil then
    local syn = plan.workload.synthetic
    local ok, why = type(syn) == "table", "expected a mapping such as {input: 128, output: 64}, got " .. describe(syn)
    if ok then ok, why = pcall(require("bench.workload").synthetic, syn) end
    if not ok then self:err({"workload", "synthetic"}, "%s", tostring(why)) end
  end
  if plan.workload and plan.workload.file then
    -- read it now: a broken or empty prompt file would end the run later
    local ok, why = pcall(require("bench.workload").file, plan.workload.file,
                          {max_tokens = plan.workload.max_tokens})
    if not ok then self:err({"workload", "file"}, "%s", tostring(why)) end
  end
end

---------------------------------------------------------------------------
-- Entry points
---------------------------------------------------------------------------

local PlanErr = {}
PlanErr.__index = PlanErr
PlanErr.__tostring = function(e) return table.concat(e.messages, "\n") end

-- plan.validate(doc, {file, where, sets, dry_run, real}) -> plan or nil, errors
-- doc is the decoded YAML; where(path) -> line, col gives positions.
-- The result: the normalized plan with .cells (expanded), .warnings.
function M.validate(doc, opts)
  opts = opts or {}
  local file = opts.file or "(plan)"
  local where = opts.where or function() return 1, 1 end
  local v = new_validator(file, where, opts)
  if type(doc) ~= "table" or not is_map(doc) or next(doc) == nil then
    v:err({}, "expected a plan (a mapping with at least name:), got %s", describe(doc))
    return nil, v.errors
  end
  local plan = v:check(M.schema, doc, {}) or {}
  plan.name = plan.name or doc.name
  v:cross(plan, doc)
  local cells, excluded = {}, 0
  if #v.errors == 0 then cells, excluded = v:expand(plan, doc) end
  if #v.errors == 0 and #cells == 0 then
    local path = doc.matrix and {"matrix"} or (doc.cells and {"cells"}) or {}
    v:err(path, "the matrix expands to zero cells%s",
          excluded > 0 and string.format(" (all %d excluded by exclude:)", excluded) or "")
  end
  if #v.errors == 0 and opts.only then
    local kept = {}
    for _, c in ipairs(cells) do if M.match_cell(c, opts.only) then kept[#kept + 1] = c end end
    if #kept == 0 then
      local ids = {}
      for i = 1, math.min(#cells, 8) do ids[i] = cells[i].id end
      v.errors[#v.errors + 1] = {text = string.format("--only %s: no cell matches (cells: %s%s)", opts.only,
                                   table.concat(ids, ", "), #cells > 8 and ", ..." or ""), line = 0, col = 0}
    end
    plan.all_cells = cells
    cells = kept
  end
  -- model files must exist for a real run of a file-based backend
  if #v.errors == 0 and not opts.dry_run then
    local seen = {}
    for _, c in ipairs(cells) do
      local m = c.server.model
      if m and not seen[m] and (m:match("%.gguf$") or m:sub(1, 1) == "/" or m:sub(1, 2) == "~/" or m:sub(1, 2) == "./")
         and c.server.backend ~= "external" and c.server.backend ~= "sim" and c.server.backend ~= "lmstudio" then
        seen[m] = true
        local full = m:sub(1, 2) == "~/" and (os.getenv("HOME") or "") .. m:sub(2) or m
        if not file_exists(full) and not (io.open(full .. "/config.json")) then
          local path = (c.model and plan.models and plan.models[c.model.name]) and {"models", c.model.name}
                       or {"server", "model"}
          if opts.real then
            v:err(path, "expected an existing model file, '%s' not found (cell %s)", full, c.id)
          else
            v:warn(path, "model file '%s' not found here (a real run of cell %s needs it)", full, c.id)
          end
        end
      end
    end
  end
  -- what a backend's adapter says of a cell it will serve (vllm-mlx: no
  -- batching without --continuous-batching), once per server and message
  if #v.errors == 0 then
    local said = {}
    for _, c in ipairs(cells) do
      local ok, adapter = pcall(require("bench.backends").get, c.server.backend or "")
      if ok and adapter and adapter.cell_warnings then
        for _, w in ipairs(adapter.cell_warnings(c.server, c.concurrency)) do
          local key = tostring(c.server.name) .. "\0" .. w
          if not said[key] then
            said[key] = true
            local path = (c.server.name and plan.servers and plan.servers[c.server.name]) and {"servers", c.server.name}
                         or {"server"}
            v:warn(path, "%s (cell %s)", w, c.id)
          end
        end
      end
    end
  end
  if #v.errors > 0 then
    table.sort(v.errors, function(a, b)
      if a.line ~= b.line then return a.line < b.line end
      return a.col < b.col
    end)
    return nil, v.errors
  end
  plan.cells = cells
  plan.warnings = v.warnings
  plan.file = file
  plan.dir = v.dir
  return plan
end

-- plan.expanded_size(doc) -> nil, or why the document is too big. YAML
-- aliases share one table, so a small file can stand for a huge plan (and a
-- huge plan.yaml in the results); this walks it as if expanded and stops at
-- the limits.
function M.expanded_size(doc)
  local nodes, bytes = 0, 0
  local function walk(v)
    nodes = nodes + 1
    if nodes > L.plan_nodes or bytes > L.plan_bytes then return false end
    if type(v) == "string" then bytes = bytes + #v
    elseif type(v) == "table" then
      for k, x in pairs(v) do
        if type(k) == "string" then bytes = bytes + #k end
        if walk(x) == false then return false end
      end
    end
    bytes = bytes + 2
    return nodes <= L.plan_nodes and bytes <= L.plan_bytes
  end
  if walk(doc) then return nil end
  if nodes > L.plan_nodes then
    return string.format("the plan expands to more than %d values (expected at most %d)", L.plan_nodes, L.plan_nodes)
  end
  return string.format("the plan expands to more than %d bytes (expected at most %d MiB)", L.plan_bytes, L.plan_bytes // 1048576)
end

-- plan.load(path, {sets = {"k=v"...}, only, dry_run, real}) -> plan or nil, messages (a list of strings)
function M.load(path, opts)
  opts = opts or {}
  local f = io.open(path, "r")
  if not f then return nil, {string.format("%s: cannot open the plan", path)} end
  local text = f:read("a")
  f:close()
  local ok, doc, pos = pcall(yaml.load_file, path, {positions = true, max_alias_nodes = L.plan_nodes})
  if not ok or doc == nil then
    -- yaml.load_file's messages name the file (path:line:col: ...)
    return nil, {tostring(ok and pos or doc)}
  end
  local big = M.expanded_size(doc)
  if big then return nil, {string.format("%s: %s (each use of a YAML alias counts in full; see plans/README.md)", path, big)} end
  local where = make_where(doc, pos)
  local set_paths = {}
  for i, s in ipairs(opts.sets or {}) do
    local p, why = M.apply_set(doc, s)
    if not p then return nil, {why} end
    set_paths[#set_paths + 1] = {path = p, index = i, spec = s}
  end
  local function where2(p, key)
    -- a key set by --set is reported at the command line
    for _, sp in ipairs(set_paths) do
      local prefix = true
      for i = 1, #sp.path do if p[i] ~= sp.path[i] then prefix = false break end end
      if prefix and #p >= #sp.path then return 0, sp.index end
    end
    return where(p, key)
  end
  local plan, errs = M.validate(doc, {file = path, where = where2, only = opts.only,
                                      dry_run = opts.dry_run, real = opts.real})
  if not plan then
    local msgs = {}
    for _, e in ipairs(errs) do
      local t = e.text
      if e.line == 0 and e.col > 0 then
        t = t:gsub("^" .. path:gsub("%p", "%%%0") .. ":0:%d+", "--set " .. set_paths[e.col].spec)
      end
      msgs[#msgs + 1] = t
    end
    return nil, msgs
  end
  plan.text = text
  plan.doc = doc
  plan.sets = opts.sets
  return plan
end

-- plan.from_string(text, opts) -> plan or nil, messages (for tests)
function M.from_string(text, opts)
  opts = opts or {}
  local tmp = os.tmpname()
  local f = assert(io.open(tmp, "w"))
  f:write(text)
  f:close()
  local plan, errs = M.load(tmp, opts)
  os.remove(tmp)
  return plan, errs, tmp
end

---------------------------------------------------------------------------
-- Estimates
---------------------------------------------------------------------------

-- the seed's five prompts, with their token budgets (bench.workload.seed has the text)
M.SEED_MAX_TOKENS = {short = 100, medium = 500, long = 2000, reasoning = 500, instruction = 400}

-- plan.prompts(plan) -> list of {name, max_tokens} the cells will send
function M.prompt_budgets(plan)
  local w = plan.workload or {}
  local out = {}
  if type(w.prompts) == "table" then
    for _, p in ipairs(w.prompts) do out[#out + 1] = {name = p.name, max_tokens = p.max_tokens or w.max_tokens or 256} end
  else
    for _, n in ipairs({"short", "medium", "long", "reasoning", "instruction"}) do
      out[#out + 1] = {name = n, max_tokens = w.max_tokens or M.SEED_MAX_TOKENS[n]}
    end
  end
  return out
end

-- requests a cell sends (warm-ups excluded) and their total output tokens
function M.cell_requests(plan, cell)
  local prompts = M.prompt_budgets(plan)
  local rep = cell["repeat"] or 1
  if cell.duration then return nil, nil end
  local n, toks
  if cell.requests then
    n = cell.requests * rep
    local avg = 0
    for _, p in ipairs(prompts) do avg = avg + p.max_tokens end
    avg = avg / math.max(1, #prompts)
    toks = n * (cell.max_tokens or avg)
  elseif cell.concurrency and cell.concurrency > 1 then
    n = cell.concurrency * 4 * rep
    local avg = 0
    for _, p in ipairs(prompts) do avg = avg + p.max_tokens end
    avg = avg / math.max(1, #prompts)
    toks = n * (cell.max_tokens or avg)
  else
    n, toks = 0, 0
    for _, p in ipairs(prompts) do
      if not cell.prompt or cell.prompt == p.name then
        n = n + rep
        toks = toks + rep * (cell.max_tokens or p.max_tokens)
      end
    end
  end
  return n, toks
end

-- plan.estimate(plan, {dry_run}) -> seconds, per-cell list
-- Figures: the plan's estimate: section (real hardware guess) or dry_run:.
function M.estimate(plan, opts)
  opts = opts or {}
  local e = plan.estimate or {}
  local d = plan.dry_run or {}
  local load = opts.dry_run and (d.load_time or 0.05) or (e.load_time or 60)
  local dtps = opts.dry_run and (d.decode_tps or 2000) or (e.decode_tps or 40)
  local total, per = 0, {}
  local prev_key
  for _, c in ipairs(plan.cells) do
    local t = 0
    local sim = opts.dry_run or c.server.backend == "sim"
    load = sim and (d.load_time or 0.05) or (e.load_time or 60)
    dtps = sim and (d.decode_tps or 2000) or (e.decode_tps or 40)
    local key = M.server_key(c)
    if key ~= prev_key or c.restart then
      local lt = load
      local dm = sim and d.models and c.model and d.models[c.model.name]
      if dm and dm.load_time then lt = dm.load_time end
      t = t + lt
    end
    prev_key = key
    local n, toks = M.cell_requests(plan, c)
    local tps = dtps
    local dm = sim and d.models and c.model and d.models[c.model.name]
    if dm and dm.decode_tps then tps = dm.decode_tps end
    if sim and d.max_tokens and n then toks = math.min(toks, n * d.max_tokens) end
    -- prefill: the plan's estimate of prompt tokens per request at prefill_tps
    local ptoks = sim and 0 or (e.prompt_tokens or 0)
    local ptps = sim and (d.prefill_tps or 50000) or (e.prefill_tps or 500)
    if n and ptoks > 0 then t = t + n * ptoks / ptps end
    if c.duration then
      t = t + c.duration * (c["repeat"] or 1)
    elseif n and c.rate then
      -- open loop: the arrivals take n / rate, the last answer a little more
      t = t + n / c.rate + toks / math.max(1, n) / tps
    elseif n then
      local conc = c.concurrency or 1
      -- batching: aggregate rate grows sublinearly with concurrency
      local agg = tps * (conc == 1 and 1 or conc ^ 0.55)
      t = t + toks / agg + (c.warmup or 0) * (toks / math.max(1, n)) / tps
    end
    per[#per + 1] = t
    total = total + t
  end
  return total, per
end

-- plan.server_key(cell) -> a string that changes when the server must restart
function M.server_key(cell)
  local s = cell.server
  local parts = {s.backend or "", s.model or "", s.binary or "", s.base_url or "", table.concat(s.args or {}, "\1")}
  local ek = {}
  for k, v in pairs(s.env or {}) do ek[#ek + 1] = k .. "=" .. v end
  table.sort(ek)
  parts[#parts + 1] = table.concat(ek, "\1")
  parts[#parts + 1] = table.concat(s.unset_env or {}, "\1")
  local sk = {}
  for k, v in pairs(cell.sysctl or {}) do sk[#sk + 1] = k .. "=" .. tostring(v) end
  table.sort(sk)
  parts[#parts + 1] = table.concat(sk, "\1")
  return table.concat(parts, "\2")
end

M.is_list = is_list
M.is_map = is_map
M.make_where = make_where
M.parse_key_path = parse_key_path
return M
