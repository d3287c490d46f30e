-- The simulator's one option table (engine/sim/options.c) against what is
-- built from it and what describes it: `benchrun sim --help`, the ranges the
-- parser enforces, docs/sim.md's options table, and bench.dryrun's mapping
-- of a plan's dry_run keys to flags. The real binary parses every value.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local sim = require("bench.sim")
local dryrun = require("bench.dryrun")
local proc = require("bench.proc")

local options = sim.options()

-- `benchrun sim ARGS... --help`: the options before --help are parsed (a bad
-- one ends it with exit 2 and one line naming it), then the help (exit 0).
local function parse(args)
  local argv = {bench.executable, "sim"}
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  argv[#argv + 1] = "--help"
  return assert(proc.run{argv = argv, timeout = 10})
end

local function accepts(flag, value)
  local r = parse({flag, value})
  if r.code ~= 0 then error(string.format("%s %s: expected it accepted, got exit %s: %s", flag, value,
                                          tostring(r.code), r.stderr), 2) end
end

local function rejects(flag, value)
  local r = parse({flag, value})
  if r.code ~= 2 then error(string.format("%s %s: expected exit 2, got %s", flag, value, tostring(r.code)), 2) end
  local _, lines = r.stderr:gsub("\n", "")
  T.eq(lines, 1, flag .. " " .. value .. ": lines of the error")
  if not r.stderr:find(flag, 1, true) then error(flag .. ": the error does not name it: " .. r.stderr, 2) end
end

local function by_flag(flag)
  for _, o in ipairs(options) do if o.flag == flag then return o end end
  error("no option " .. flag)
end

T.case("the table lists every flag once, each with its help", function()
  local seen = {}
  for _, o in ipairs(options) do
    assert(o.flag:match("^%-%-[a-z][a-z-]+$"), "flag name " .. o.flag)
    assert(not seen[o.flag], "listed twice: " .. o.flag)
    seen[o.flag] = true
    assert(o.help and #o.help > 0, o.flag .. ": help")
    assert(o.kind, o.flag .. ": kind")
  end
  for _, flag in ipairs({"--host", "--port", "--port-file", "--dialect", "--model", "--strict-models", "--load-time",
                         "--model-memory", "--prefill-tps", "--decode-tps", "--slots", "--batch-slowdown", "--max-queue",
                         "--queue-status", "--jitter", "--seed", "--reasoning", "--reasoning-tokens", "--output-tokens",
                         "--ctx-size", "--speedup-env", "--fault", "--crash-after", "--kv-bytes-per-token",
                         "--oom-at-memory", "--oom-record", "--reuse-port", "--header-timeout", "--idle-timeout",
                         "--max-body", "--huge-event"}) do
    assert(seen[flag], "the table lacks " .. flag)
  end
end)

T.case("--help lists every flag with its values and its default", function()
  local r = parse({})
  T.eq(r.code, 0, "exit")
  local help = r.stdout
  for _, o in ipairs(options) do
    local left = o.flag .. (o.arg and (" " .. o.arg) or "")
    assert(help:find("\n  " .. left .. " ", 1, true), "--help lacks " .. left)
    if o.range then assert(help:find("[" .. o.range .. "]", 1, true), o.flag .. ": --help lacks its range " .. o.range) end
    if o.default then assert(help:find("default " .. o.default, 1, true), o.flag .. ": --help lacks its default") end
  end
end)

-- a number just outside [min, max] on each side
local function outside(o)
  local step = (o.kind == "integer" or o.kind == "size") and 1 or math.max(math.abs(o.min) * 0.1, 1e-6)
  return o.min - step, o.max + ((o.kind == "integer" or o.kind == "size") and 1 or math.max(o.max * 0.1, 1e-6))
end

local function text(o, v)
  if o.kind == "duration" then return string.format("%.17gs", v) end
  if math.type(v) == "float" and v == math.floor(v) and math.abs(v) < 2^63 then return tostring(math.floor(v)) end
  return tostring(v)
end

T.case("the parser accepts each range's ends and rejects what is outside", function()
  local checked = 0
  for _, o in ipairs(options) do
    if o.min and o.flag ~= "--seed" then
      local lo, hi = outside(o)
      if o.above_min then rejects(o.flag, text(o, o.min)) else accepts(o.flag, text(o, o.min)) end
      rejects(o.flag, text(o, lo))
      if o.max < 1e18 then
        accepts(o.flag, text(o, o.max))
        rejects(o.flag, text(o, hi))
      end
      checked = checked + 1
    end
  end
  T.eq(checked, 27, "options with a numeric range checked")
end)

T.case("choices: each accepted, anything else rejected", function()
  for _, o in ipairs(options) do
    if o.choices then
      for _, c in ipairs(o.choices) do accepts(o.flag, c) end
      rejects(o.flag, "nope")
    end
  end
  accepts("--seed", "18446744073709551615")
  rejects("--seed", "-1x")
end)

T.case("docs/sim.md's options table has every flag and its default", function()
  local doc = assert(T.read_file(bench.scripts_dir .. "/../docs/sim.md"))
  for _, o in ipairs(options) do
    local row = doc:match("\n(| `" .. o.flag:gsub("%-", "%%-") .. "[ `][^\n]*)")
    assert(row, "docs/sim.md: no row for " .. o.flag)
    if o.default then
      assert(row:find(o.default, 1, true), "docs/sim.md: the row of " .. o.flag .. " lacks its default " .. o.default)
    end
  end
end)

T.case("bench.dryrun sets a flag for every plan key, with values the sim accepts", function()
  local keys = {}
  for _, o in ipairs(dryrun.plan_options()) do keys[#keys + 1] = o.plan end
  T.eq(table.concat(keys, " "), "load_time decode_tps prefill_tps model_memory oom_at_memory slots batch_slowdown "
       .. "jitter speedup_env reasoning prefix_cache logprob_noise dialect", "plan keys, in --help's order")
  local plan = {dry_run = {decode_tps = 120, prefill_tps = 900, load_time = 0.5, model_memory = 2 ^ 24,
                           oom_at_memory = 2 ^ 40, slots = 3, batch_slowdown = 0.2, jitter = 0.1, reasoning = true,
                           prefix_cache = 4096, logprob_noise = 0.5,
                           dialect = "llama.cpp", speedup_env = {BENCHRUN_TEST_SPEED = 2}}}
  local spec = dryrun.server(plan, {server = {backend = "vllm"}, model = {name = "m", size = 4e9}})
  local args = table.concat(spec.args, " ")
  for _, o in ipairs(dryrun.plan_options()) do
    assert(args:find(o.flag .. " ", 1, true), "dry-run args lack " .. o.flag .. ": " .. args)
  end
  T.eq(args:find("--load-time 500ms", 1, true) ~= nil, true, "a duration in ms: " .. args)
  T.eq(args:find("--reasoning " .. by_flag("--reasoning").plan_true, 1, true) ~= nil, true, "reasoning: " .. args)
  local r = parse(spec.args)
  T.eq(r.code, 0, "the sim parses the dry run's args: " .. tostring(r.stderr))
end)

T.case("the sim starts with the table's defaults", function()
  local s <close> = T.sim({})
  local status, body = proc.probe_http(s.url .. "/v1/models", 5)
  T.eq(status, 200, "status")
  assert(body:find('"id":"' .. by_flag("--model").default .. '"', 1, true), "default model: " .. body)
  assert(body:find('"owned_by":"vllm"', 1, true), "default dialect " .. by_flag("--dialect").default .. ": " .. body)
end)

T.done()
