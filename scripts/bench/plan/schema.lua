-- bench.plan.schema: what a plan may hold, as a tree of typed nodes
-- (plans/README.md documents each key). bench.plan.check walks a document
-- against it; the node kinds are the rows of its checker table.
--
-- Node kinds: string, int, number, bool, duration, size, fraction, enum, list, map
-- (known fields), dict (free keys, typed values), any, oneof, file (a path
-- that must exist, relative to the plan's folder), scalar.
local schema = {}

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
function T.fraction(o) return node("fraction", o) end
function T.oneof(nodes, o) o = o or {}; o.nodes = nodes; return node("oneof", o) end

-- Upper bounds of the load keys (plans/README.md): a value past them is a
-- typo (1e9 users, a week-long cell) that would otherwise exhaust memory or
-- run for ever; they are far above what one machine can serve.
schema.LIMITS = {
  concurrency = 100000, requests = 10000000, ["repeat"] = 10000, warmup = 100000,
  max_tokens = 10000000, rate = 1000000, duration = 7 * 86400,
  depth = 10000000,   -- context tokens before a depth measurement's prompt (bench.depth)
  -- a plan's size once its YAML aliases are expanded (billion-laughs bound)
  plan_nodes = 200000, plan_bytes = 8 * 1024 * 1024,
}
local L = schema.LIMITS

-- a count or length that may be "auto" (bench.steady decides it)
local function AUTO(nd) nd.auto = true; return nd end

-- sysctl names: dotted words, never a path ("../../x" would leave /proc/sys)
local SYSCTL_NAME = {check = function(k)
  return k:match("^[%w_][%w_%.%-]*$") ~= nil and not k:find("..", 1, true) and k:sub(-1) ~= "."
end, what = "a sysctl name (letters, digits, _ - and dots, e.g. kern.ipc.somaxconn)"}
-- environment variable names: no '=' (it ends the name) and not empty
local ENV_NAME = {check = function(k) return k ~= "" and not k:find("=", 1, true) end,
                  what = "an environment variable name (not empty, no '=')"}

schema.BACKENDS = {"llama-server", "lmstudio", "mlx-lm", "vllm", "vllm-mlx", "ollama", "sglang", "command", "external", "sim"}
schema.DIALECTS = {"openai", "llama.cpp", "lmstudio", "lmstudio-v0", "vllm", "ollama", "ollama-native", "sglang", "mlx-lm"}

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
  backend = T.enum(schema.BACKENDS),
  model = T.string(),
  args = T.list(T.scalar()),
  env = ENV,
  unset_env = T.list(T.string()),
  port = T.int{min = 0, max = 65535},
  ready_timeout = T.duration{positive = true},
  timeout = TIMEOUT,
  binary = T.string(),
  base_url = T.string(),
  dialect = T.enum(schema.DIALECTS),
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
  tools = T.oneof({T.bool(), T.map({mode = T.enum({"tools", "json_schema"}),
                                     tool_choice = T.enum({"auto", "required", "none"})})},
                  {what = "true or {mode: tools | json_schema, tool_choice}"}),   -- bench.workload.tools
  sharegpt = T.file(),         -- a ShareGPT JSON file (bench.workload.sharegpt)
  limit = T.int{min = 1},      -- sharegpt: a seeded sample of this many
  multiturn = T.map({          -- growing conversations (bench.workload.multiturn)
    conversations = T.int{min = 1, max = 100000}, turns = T.int{min = 1, max = 1000},
    system_tokens = T.int{min = 0}, user_tokens = T.int{min = 1}, reply_tokens = T.int{min = 1},
    max_tokens = T.int{min = 1, max = L.max_tokens}, seed = T.int(), system = T.string(),
  }),
  temperature = T.number{min = 0},
  seed = T.int(),
})

-- prefix caching: reset the server's cache before the cell (bench.cache)
local CACHE = T.map({reset = T.bool()})

local SYSCTL = T.dict(T.oneof({T.int(), T.string()}, {what = "an integer or \"default\""}),
                      {what = "a mapping of sysctl names to values", key = SYSCTL_NAME})

-- What a cell can set: the base settings, an axis value or an explicit cell.
local CELL_FIELDS = {
  name = T.string(),
  server = T.oneof({T.string(), SERVER}, {what = "a server name (from servers:) or a server mapping"}),
  model = T.oneof({T.string(), MODEL}, {what = "a model name (from models:) or a model mapping"}),
  backend = T.enum(schema.BACKENDS),
  args = T.list(T.scalar()),
  env = ENV,
  unset_env = T.list(T.string()),
  sysctl = SYSCTL,
  concurrency = T.int{min = 1, max = L.concurrency},
  max_tokens = T.int{min = 1, max = L.max_tokens},
  requests = AUTO(T.int{min = 1, max = L.requests}),
  duration = AUTO(T.duration{positive = true, max = L.duration}),
  rate = T.number{min = 0.001, max = L.rate},
  arrival = T.enum({"poisson", "constant", "gamma"}),
  burstiness = T.number{min = 0.001, max = 1000},   -- gamma arrivals' shape
  mix = T.dict(T.number{min = 0}, {what = "a mapping of prompt names to weights"}),
  prompt = T.string(),         -- one prompt of the workload, by name
  ["repeat"] = T.int{min = 1, max = L["repeat"]},
  warmup = AUTO(T.int{min = 0, max = L.warmup}),
  restart = T.bool(),
  tags = T.dict(T.scalar()),
  timeout = TIMEOUT,
  max_error_rate = ERROR_RATE,
  depth = T.int{min = 0, max = L.depth},   -- a depth measurement (bench.depth) instead of the workload
  cache = CACHE,
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
  requests = AUTO(T.int{min = 1, max = L.requests}),
  duration = AUTO(T.duration{positive = true, max = L.duration}),
  rate = T.number{min = 0.001, max = L.rate},
  arrival = T.enum({"poisson", "constant", "gamma"}),
  burstiness = T.number{min = 0.001, max = 1000},   -- gamma arrivals' shape
  mix = T.dict(T.number{min = 0}, {what = "a mapping of prompt names to weights"}),
  prompt = T.string(),         -- a prompt name of the workload
  warmup = AUTO(T.int{min = 0, max = L.warmup}),
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
  logprob_noise = T.number{min = 0, max = 100},   -- the sim's quantization-like noise
})

-- service level objectives: a plan's slo: and a search's (bench.summary reads the keys)
schema.SLO = T.map({
  ttft_p50 = T.duration{positive = true}, ttft_p95 = T.duration{positive = true}, ttft_p99 = T.duration{positive = true},
  tpot_p50 = T.duration{positive = true}, tpot_p95 = T.duration{positive = true}, tpot_p99 = T.duration{positive = true},
  itl_p95 = T.duration{positive = true}, itl_p99 = T.duration{positive = true},
  e2el_p50 = T.duration{positive = true}, e2el_p95 = T.duration{positive = true}, e2el_p99 = T.duration{positive = true},
  min_decode_tps = T.number{min = 0},
  -- per-request decode rates: the share of requests at least this fast (p95: 95% of them), their mean
  decode_tps_p50 = T.number{min = 0}, decode_tps_p90 = T.number{min = 0}, decode_tps_p95 = T.number{min = 0},
  decode_tps_p99 = T.number{min = 0}, decode_tps_mean = T.number{min = 0},
})

-- the whole document
schema.root = T.map({
  name = T.string(),
  description = T.string(),
  script = T.string(),
  server = SERVER,
  servers = T.dict(SERVER, {what = "a mapping of server names to servers"}),
  models = T.dict(MODEL, {what = "a mapping of model names to models"}),
  workload = WORKLOAD,
  ["repeat"] = T.int{min = 1, max = L["repeat"]},
  warmup = AUTO(T.int{min = 0, max = L.warmup}),
  concurrency = T.int{min = 1, max = L.concurrency},
  max_tokens = T.int{min = 1, max = L.max_tokens},
  requests = AUTO(T.int{min = 1, max = L.requests}),
  depth = T.int{min = 0, max = L.depth},
  env = ENV,
  sysctl = SYSCTL,
  matrix = T.oneof({T.dict(T.any()), T.list(T.dict(T.any()), {nonempty = true})},
                   {what = "a mapping of axis names to lists of values, or a list of such mappings"}),
  cells = T.list(cell_map(), {nonempty = true}),
  exclude = T.list(T.dict(T.any())),
  load = T.list(SCENARIO, {nonempty = true}),
  cache = CACHE,
  -- quality by logprobs: each variant answers the workload's prompts once
  -- more at temperature 0 with this many top logprobs (bench.logprobs)
  quality = T.map({logprobs = T.int{min = 1, max = 20}}),
  sampling = T.map({
    -- a sampler ticks every interval: 0 would spin, so at least 1 ms
    memory = T.duration{min = 0.001, max = 3600},
    gpu = T.bool(),
    metrics = T.oneof({T.bool(), T.duration{min = 0.001, max = 3600}}, {what = "true, false or a scrape interval of 1ms to 1h"}),
    power = T.oneof({T.bool(), T.duration{min = 0.001, max = 3600}}, {what = "true, false or a sampling interval of 1ms to 1h"}),
  }),
  -- issue 15 (bench.powerwatch): energy per cell and the wait between cells
  energy = T.oneof({T.bool(), T.map({idle = T.duration{min = 0, max = 600}})},
                   {what = "true, false or a mapping with idle: (a duration of 0 to 10m)"}),
  cooldown = T.oneof({T.bool(), T.map({
    ["until"] = T.enum({"nominal"}),
    idle_power_within = T.fraction{zero = true, max = 10},   -- up to 1000%
    max = T.duration{positive = true, max = 86400},
  })}, {what = "true, false or a mapping of until, idle_power_within, max"}),
  slo = schema.SLO,
  steady = T.map({
    ci = T.fraction(),                      -- the 95% interval's half-width, relative to the mean
    min = T.int{min = 2, max = L.requests},
    max = T.int{min = 2, max = L.requests},
    warmup_max = T.int{min = 2, max = L.warmup},
    tolerance = T.fraction(),               -- a warm-up TTFT within this of the one before: not falling
  }),
  search = T.map({
    over = T.enum({"concurrency", "rate"}),
    slo = schema.SLO,
    method = T.enum({"bisect"}),
    precision = T.fraction(),
    max_steps = T.int{min = 1, max = 100},
    min = T.number{min = 0.001, max = L.rate},
    max = T.number{min = 0.001, max = L.rate},
    requests = T.int{min = 1, max = L.requests},
    duration = T.duration{positive = true, max = L.duration},
    noise = T.fraction(),
    repeat_near = T.int{min = 0, max = 10},
  }, {required = {"over", "slo"}}),
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
    jitter = T.number{min = 0, max = 1},   -- each token interval times 1 ± jitter (a noisy server)
    speedup_env = T.dict(T.number{min = 0.001}, {what = "a mapping of NAME or NAME=VALUE to a speed factor"}),
    models = T.dict(DRY_MODEL, {what = "a mapping of model names to simulator figures"}),
    reasoning = T.bool(),
    prefix_cache = T.int{min = 0, max = 100000000},
    logprob_noise = T.number{min = 0, max = 100},
    dialect = T.enum({"openai", "llama.cpp", "lmstudio", "ollama"}),
    args = T.list(T.scalar()),
  }),
  params = T.any(),            -- free-form, for the phase script
}, {required = {"name"}})

schema.CELL_FIELDS = CELL_FIELDS
schema.cell_map = cell_map
schema.T = T
return schema
