-- bench.plan.schema: what a plan may hold, as a tree of typed nodes
-- (plans/README.md documents each key). bench.plan.check walks a document
-- against it; the node kinds are the rows of its checker table.
--
-- Node kinds: string, int, number, bool, duration, size, fraction, enum, list, map
-- (known fields), dict (free keys, typed values), any, oneof, file (a path
-- that must exist, relative to the plan's folder), scalar.
local util = require("bench.util")

local schema = {}

local node = {}   -- the node kinds: node.int{min = 1}, node.map{...}, ...

local function make_node(kind, o) o = o or {}; o.kind = kind; return o end
function node.string(o) return make_node("string", o) end
function node.int(o) return make_node("int", o) end
function node.number(o) return make_node("number", o) end
function node.bool(o) return make_node("bool", o) end
function node.duration(o) return make_node("duration", o) end
function node.size(o) return make_node("size", o) end
function node.enum(values, o) o = o or {}; o.values = values; return make_node("enum", o) end
function node.list(of, o) o = o or {}; o.of = of; return make_node("list", o) end
function node.map(fields, o) o = o or {}; o.fields = fields; return make_node("map", o) end
function node.dict(of, o) o = o or {}; o.of = of; return make_node("dict", o) end
function node.any(o) return make_node("any", o) end
function node.scalar(o) return make_node("scalar", o) end
function node.file(o) return make_node("file", o) end
function node.fraction(o) return make_node("fraction", o) end
function node.oneof(nodes, o) o = o or {}; o.nodes = nodes; return make_node("oneof", o) end

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
local limits = schema.LIMITS

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

local ENV = node.dict(node.scalar(), {what = "a mapping of environment variables to values", key = ENV_NAME})

-- Request limits (bench.openai's timeout, docs/openai.md): a plan's, a
-- server's and a cell's, each field over the one before.
local TIMEOUT = node.map({
  connect = node.duration{positive = true},
  first_byte = node.duration{positive = true},
  idle = node.duration{positive = true},
  total = node.duration{positive = true},
  min_tps = node.number{min = 0.001},
})
local ERROR_RATE = node.number{min = 0, max = 1}

local SERVER_FIELDS = {
  name = node.string(),
  backend = node.enum(schema.BACKENDS),
  model = node.string(),
  args = node.list(node.scalar()),
  env = ENV,
  unset_env = node.list(node.string()),
  port = node.int{min = 0, max = 65535},
  ready_timeout = node.duration{positive = true},
  timeout = TIMEOUT,
  binary = node.string(),
  base_url = node.string(),
  dialect = node.enum(schema.DIALECTS),
  api_key_env = node.string(),
  log = node.string(),
  extra = node.any(),
}
local SERVER = node.map(SERVER_FIELDS)

local MODEL = node.map({
  name = node.string(),
  model = node.string(),          -- file path or the server's model id
  format = node.enum({"gguf", "mlx", "safetensors", "other"}),
  quant = node.string(),          -- "4-bit", "Q4_K_M"
  bits = node.number(),
  size = node.size(),             -- file size, for TPS/GB
  server = node.string(),         -- default server (name in servers:) for this model
  args = node.list(node.scalar()),   -- extra server args for this model
  env = ENV,
  expect = node.enum({"ok", "oom", "fail"}), -- what the seed expects (BF16: oom)
  note = node.string(),
  by_server = node.dict(node.string(), {what = "a mapping of server names to this model's id or path there"}),
})

local PROMPT = node.map({
  name = node.string(),
  prompt = node.string(),
  messages = node.list(node.map({role = node.enum({"system", "user", "assistant"}), content = node.string()}, {required = {"role", "content"}})),
  system = node.string(),
  max_tokens = node.int{min = 1, max = limits.max_tokens},
  check = node.string(),          -- a Lua expression over `text` (quality check)
}, {required = {"name"}})

local WORKLOAD = node.map({
  prompts = node.oneof({node.enum({"seed"}), node.list(PROMPT, {nonempty = true})},
                    {what = "\"seed\" or a list of prompts ({name, prompt, max_tokens})"}),
  file = node.file(),             -- a JSONL/JSON prompt file (bench.workload.file)
  mix = node.dict(node.number{min = 0}, {what = "a mapping of prompt names to weights"}),
  max_tokens = node.int{min = 1, max = limits.max_tokens},
  synthetic = node.any(),         -- passed to bench.workload.synthetic
  tools = node.oneof({node.bool(), node.map({mode = node.enum({"tools", "json_schema"}),
                                     tool_choice = node.enum({"auto", "required", "none"})})},
                  {what = "true or {mode: tools | json_schema, tool_choice}"}),   -- bench.workload.tools
  sharegpt = node.file(),         -- a ShareGPT JSON file (bench.workload.sharegpt)
  limit = node.int{min = 1},      -- sharegpt: a seeded sample of this many
  multiturn = node.map({          -- growing conversations (bench.workload.multiturn)
    conversations = node.int{min = 1, max = 100000}, turns = node.int{min = 1, max = 1000},
    system_tokens = node.int{min = 0}, user_tokens = node.int{min = 1}, reply_tokens = node.int{min = 1},
    max_tokens = node.int{min = 1, max = limits.max_tokens}, seed = node.int(), system = node.string(),
  }),
  temperature = node.number{min = 0},
  seed = node.int(),
})

-- prefix caching: reset the server's cache before the cell (bench.cache)
local CACHE = node.map({reset = node.bool()})

local SYSCTL = node.dict(node.oneof({node.int(), node.string()}, {what = "an integer or \"default\""}),
                      {what = "a mapping of sysctl names to values", key = SYSCTL_NAME})

-- How a cell's requests are sent: what a cell and a load: scenario share
-- (node kinds hold no state, so both maps use the same ones).
local LOAD_FIELDS = {
  requests = AUTO(node.int{min = 1, max = limits.requests}),
  duration = AUTO(node.duration{positive = true, max = limits.duration}),
  rate = node.number{min = 0.001, max = limits.rate},
  arrival = node.enum({"poisson", "constant", "gamma"}),
  burstiness = node.number{min = 0.001, max = 1000},   -- gamma arrivals' shape
  ramp = node.duration{max = limits.duration},   -- closed loop: the users' starts spread over this long
  mix = node.dict(node.number{min = 0}, {what = "a mapping of prompt names to weights"}),
  prompt = node.string(),         -- one prompt of the workload, by name
  ["repeat"] = node.int{min = 1, max = limits["repeat"]},
  warmup = AUTO(node.int{min = 0, max = limits.warmup}),
  timeout = TIMEOUT,
  max_error_rate = ERROR_RATE,
}

-- What a cell can set: the base settings, an axis value or an explicit cell.
local CELL_FIELDS = {
  name = node.string(),
  server = node.oneof({node.string(), SERVER}, {what = "a server name (from servers:) or a server mapping"}),
  model = node.oneof({node.string(), MODEL}, {what = "a model name (from models:) or a model mapping"}),
  backend = node.enum(schema.BACKENDS),
  args = node.list(node.scalar()),
  env = ENV,
  unset_env = node.list(node.string()),
  sysctl = SYSCTL,
  concurrency = node.int{min = 1, max = limits.concurrency},
  max_tokens = node.int{min = 1, max = limits.max_tokens},
  restart = node.bool(),
  tags = node.dict(node.scalar()),
  depth = node.int{min = 0, max = limits.depth},   -- a depth measurement (bench.depth) instead of the workload
  cache = CACHE,
}
util.merge(CELL_FIELDS, LOAD_FIELDS)

local function cell_map(o) return node.map(CELL_FIELDS, o) end

-- a scenario of load: (phase 4) list-valued concurrency / max_tokens expand
local function int_or_list(max)
  return node.oneof({node.int{min = 1, max = max}, node.list(node.int{min = 1, max = max}, {nonempty = true})},
                 {what = string.format("a positive integer (at most %d) or a list of them", max)})
end
local SCENARIO = node.map(util.merge({
  name = node.string(),
  concurrency = int_or_list(limits.concurrency),
  max_tokens = int_or_list(limits.max_tokens),
  note = node.string(),
}, LOAD_FIELDS), {required = {"name"}})

local DRY_MODEL = node.map({
  decode_tps = node.number{min = 0.001},
  prefill_tps = node.number{min = 0.001},
  load_time = node.duration{max = 86400},   -- the simulator waits this long
  model_memory = node.size(),
  logprob_noise = node.number{min = 0, max = 100},   -- the sim's quantization-like noise
})

-- service level objectives: a plan's slo: and a search's (bench.summary reads the keys)
schema.SLO = node.map({
  ttft_p50 = node.duration{positive = true}, ttft_p95 = node.duration{positive = true}, ttft_p99 = node.duration{positive = true},
  tpot_p50 = node.duration{positive = true}, tpot_p95 = node.duration{positive = true}, tpot_p99 = node.duration{positive = true},
  itl_p95 = node.duration{positive = true}, itl_p99 = node.duration{positive = true},
  e2el_p50 = node.duration{positive = true}, e2el_p95 = node.duration{positive = true}, e2el_p99 = node.duration{positive = true},
  min_decode_tps = node.number{min = 0},
  -- per-request decode rates: the share of requests at least this fast (p95: 95% of them), their mean
  decode_tps_p50 = node.number{min = 0}, decode_tps_p90 = node.number{min = 0}, decode_tps_p95 = node.number{min = 0},
  decode_tps_p99 = node.number{min = 0}, decode_tps_mean = node.number{min = 0},
})

-- the whole document
schema.root = node.map({
  name = node.string(),
  description = node.string(),
  script = node.string(),
  server = SERVER,
  servers = node.dict(SERVER, {what = "a mapping of server names to servers"}),
  models = node.dict(MODEL, {what = "a mapping of model names to models"}),
  workload = WORKLOAD,
  ["repeat"] = node.int{min = 1, max = limits["repeat"]},
  warmup = AUTO(node.int{min = 0, max = limits.warmup}),
  concurrency = node.int{min = 1, max = limits.concurrency},
  max_tokens = node.int{min = 1, max = limits.max_tokens},
  requests = AUTO(node.int{min = 1, max = limits.requests}),
  ramp = LOAD_FIELDS.ramp,
  depth = node.int{min = 0, max = limits.depth},
  env = ENV,
  sysctl = SYSCTL,
  matrix = node.oneof({node.dict(node.any()), node.list(node.dict(node.any()), {nonempty = true})},
                   {what = "a mapping of axis names to lists of values, or a list of such mappings"}),
  cells = node.list(cell_map(), {nonempty = true}),
  exclude = node.list(node.dict(node.any())),
  load = node.list(SCENARIO, {nonempty = true}),
  cache = CACHE,
  -- quality by logprobs: each variant answers the workload's prompts once
  -- more at temperature 0 with this many top logprobs (bench.logprobs)
  quality = node.map({logprobs = node.int{min = 1, max = 20}}),
  sampling = node.map({
    -- a sampler ticks every interval: 0 would spin, so at least 1 ms
    memory = node.duration{min = 0.001, max = 3600},
    gpu = node.bool(),
    metrics = node.oneof({node.bool(), node.duration{min = 0.001, max = 3600}}, {what = "true, false or a scrape interval of 1ms to 1h"}),
    power = node.oneof({node.bool(), node.duration{min = 0.001, max = 3600}}, {what = "true, false or a sampling interval of 1ms to 1h"}),
  }),
  -- issue 15 (bench.powerwatch): energy per cell and the wait between cells
  energy = node.oneof({node.bool(), node.map({idle = node.duration{min = 0, max = 600}})},
                   {what = "true, false or a mapping with idle: (a duration of 0 to 10m)"}),
  cooldown = node.oneof({node.bool(), node.map({
    ["until"] = node.enum({"nominal"}),
    idle_power_within = node.fraction{zero = true, max = 10},   -- up to 1000%
    max = node.duration{positive = true, max = 86400},
  })}, {what = "true, false or a mapping of until, idle_power_within, max"}),
  slo = schema.SLO,
  steady = node.map({
    ci = node.fraction(),                      -- the 95% interval's half-width, relative to the mean
    min = node.int{min = 2, max = limits.requests},
    max = node.int{min = 2, max = limits.requests},
    warmup_max = node.int{min = 2, max = limits.warmup},
    tolerance = node.fraction(),               -- a warm-up TTFT within this of the one before: not falling
  }),
  search = node.map({
    over = node.enum({"concurrency", "rate"}),
    slo = schema.SLO,
    method = node.enum({"bisect"}),
    precision = node.fraction(),
    max_steps = node.int{min = 1, max = 100},
    min = node.number{min = 0.001, max = limits.rate},
    max = node.number{min = 0.001, max = limits.rate},
    requests = node.int{min = 1, max = limits.requests},
    duration = node.duration{positive = true, max = limits.duration},
    noise = node.fraction(),
    repeat_near = node.int{min = 0, max = 10},
  }, {required = {"over", "slo"}}),
  output = node.string(),
  timeout = TIMEOUT,
  max_error_rate = ERROR_RATE,
  safety = node.map({
    memory_ceiling = node.size(),
    max_sysctl = SYSCTL,
    stop_on_oom = node.bool(),
  }),
  criteria = node.map({
    all_prompts_complete = node.bool(),
    memory_limit = node.size(),
    no_oom = node.bool(),
    comparable_to = node.string(),
  }),
  compare = node.list(node.map({name = node.string(), a = node.string(), b = node.string(), note = node.string()},
                         {required = {"name", "a", "b"}})),
  questions = node.list(node.string()),
  expected = node.dict(node.any()),
  notes = node.list(node.string()),
  estimate = node.map({
    load_time = node.duration(),
    decode_tps = node.number{min = 0.001},
    prefill_tps = node.number{min = 0.001},
    prompt_tokens = node.int{min = 0},
  }),
  dry_run = node.map({
    decode_tps = node.number{min = 0.001},
    prefill_tps = node.number{min = 0.001},
    load_time = node.duration{max = 86400},
    model_memory = node.size(),
    memory_scale = node.number{min = 0},
    oom_at_memory = node.size(),
    max_tokens = node.int{min = 1, max = limits.max_tokens},
    slots = node.int{min = 1, max = limits.concurrency},
    batch_slowdown = node.number{min = 0},
    jitter = node.number{min = 0, max = 1},   -- each token interval times 1 ± jitter (a noisy server)
    speedup_env = node.dict(node.number{min = 0.001}, {what = "a mapping of NAME or NAME=VALUE to a speed factor"}),
    models = node.dict(DRY_MODEL, {what = "a mapping of model names to simulator figures"}),
    reasoning = node.bool(),
    prefix_cache = node.int{min = 0, max = 100000000},
    logprob_noise = node.number{min = 0, max = 100},
    dialect = node.enum({"openai", "llama.cpp", "lmstudio", "ollama"}),
    args = node.list(node.scalar()),
  }),
  params = node.any(),            -- free-form, for the phase script
}, {required = {"name"}})

schema.CELL_FIELDS = CELL_FIELDS
schema.cell_map = cell_map
schema.node = node
return schema
