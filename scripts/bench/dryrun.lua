-- bench.dryrun: rehearse a plan against the simulator. Every cell's server
-- becomes backend "sim" (`benchrun sim`) with the figures of the plan's
-- dry_run: section, scaled down so a plan of hours runs in seconds:
--   decode_tps, prefill_tps, load_time   the simulated server's speed
--   models: {NAME: {decode_tps, prefill_tps, load_time, model_memory}}
--   memory_scale                         a model's size (models: size) times
--                                        this is the memory the sim touches
--   oom_at_memory                        the sim dies like an OOM kill when its
--                                        memory would pass this (real units,
--                                        scaled by memory_scale); a cell's
--                                        sysctl iogpu.wired_limit_mb replaces it
--   speedup_env: {NAME: factor}          the server's env var NAME (or
--                                        NAME=VALUE) multiplies its speed
--   max_tokens                           a cap on every request's max_tokens
-- The server's env is kept, so an env configuration that the plan marks slow
-- shows up slower. Nothing on the real machine changes: sysctl values are
-- recorded as "simulated".
local M = {}

local units = require("bench.units")
local sim = require("bench.sim")

-- The simulator's options that a dry_run key sets (its plan key), in the
-- order of `benchrun sim --help`: the sim's own table (engine/sim/options.c)
-- says which key sets which flag and what kind of value it takes.
local function plan_options()
  local list = {}
  for _, o in ipairs(sim.options()) do
    if o.plan then list[#list + 1] = o end
  end
  return list
end

M.DEFAULTS = {decode_tps = 2000, prefill_tps = 50000, load_time = 0.05, memory_scale = 1 / 4000,
              model_memory = 32 * 1024 * 1024}

-- the fraction of a sysctl wired limit in MB, as bytes
local function wired_limit_bytes(cell)
  for k, v in pairs(cell.sysctl or {}) do
    if k == "iogpu.wired_limit_mb" and math.type(v) == "integer" and v > 0 then return v * 1024 * 1024 end
  end
  return nil
end

-- dryrun.figures(plan, cell) -> the simulator figures for this cell
function M.figures(plan, cell)
  local d = plan.dry_run or {}
  local f = {}
  for k, v in pairs(M.DEFAULTS) do f[k] = v end
  -- the keys for the sim's flags (oom_at_memory and speedup_env are set
  -- below, scaled), and the rehearsal's own
  for _, o in ipairs(plan_options()) do
    if d[o.plan] ~= nil then f[o.plan] = d[o.plan] end
  end
  for _, k in ipairs({"memory_scale", "max_tokens"}) do
    if d[k] ~= nil then f[k] = d[k] end
  end
  local m = cell.model
  local scale = f.memory_scale
  if m and m.size and not (d.models and d.models[m.name] and d.models[m.name].model_memory) then
    f.model_memory = math.max(1024 * 1024, math.floor(m.size * scale))
  end
  local dm = m and d.models and d.models[m.name]
  if dm then for k, v in pairs(dm) do f[k] = v end end
  local limit = wired_limit_bytes(cell) or d.oom_at_memory
  if limit then f.oom_at_memory = math.floor(limit * scale) end
  f.speedup_env = d.speedup_env
  return f
end

-- a figure as the text of its sim option's value: a duration in ms, a
-- boolean as the option's value for true (none for false)
local function option_value(o, v)
  if type(v) == "boolean" then return v and o.plan_true or nil end
  if o.kind == "duration" then return units.format_ms(v) end
  return tostring(v)
end

-- the dialect of the real server, where the sim has one like it
local BACKEND_DIALECT = {lmstudio = "lmstudio", ["llama-server"] = "llama.cpp", ollama = "ollama"}

-- dryrun.server(plan, cell) -> the server spec that replaces cell.server
function M.server(plan, cell)
  local f = M.figures(plan, cell)
  local real = cell.server
  local name = (cell.model and cell.model.name) or real.model or "sim-model"
  local args = {"--model", name}
  local values = setmetatable({dialect = f.dialect or BACKEND_DIALECT[real.backend]}, {__index = f})
  local speedup_flag
  for _, o in ipairs(plan_options()) do
    local v = values[o.plan]
    if type(v) == "table" then
      speedup_flag = o.flag   -- speedup_env: NAME -> factor, below
    elseif v ~= nil then
      local text = option_value(o, v)
      if text then args[#args + 1] = o.flag; args[#args + 1] = text end
    end
  end
  local keys = {}
  for k in pairs(f.speedup_env or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  -- the sim's --speedup-env looks at whether NAME is set; a NAME=VALUE key
  -- becomes a marker variable set only when the server's env has that value
  local env = {}
  for k, v in pairs(real.env or {}) do env[k] = v end
  for i, k in ipairs(keys) do
    local name, want = k:match("^([^=]+)=(.*)$")
    local factor = tostring(f.speedup_env[k])
    if name then
      if env[name] == want then
        local marker = "BENCHRUN_DRY_SPEED_" .. i
        env[marker] = "1"
        args[#args + 1] = speedup_flag
        args[#args + 1] = marker .. "=" .. factor
      end
    else
      args[#args + 1] = speedup_flag
      args[#args + 1] = k .. "=" .. factor
    end
  end
  for _, a in ipairs((plan.dry_run or {}).args or {}) do args[#args + 1] = tostring(a) end
  return {
    backend = "sim", name = real.name, model = name, args = args,
    env = env, unset_env = real.unset_env, ready_timeout = 30,
    real_backend = real.backend, real_model = real.model, figures = f,
  }
end

-- A rehearsal runs a cell in a fraction of a second: sampling every 500 ms
-- would see nothing but the spawn. Intervals are capped at this.
M.MAX_SAMPLING_INTERVAL = 0.02

-- dryrun.apply(plan) -> plan with every cell's server replaced (in place).
function M.apply(plan)
  local sp = plan.sampling or {}
  plan.sampling = sp
  sp.memory = math.min(sp.memory or 0.1, M.MAX_SAMPLING_INTERVAL)
  if type(sp.metrics) == "number" then sp.metrics = math.min(sp.metrics, M.MAX_SAMPLING_INTERVAL) end
  for _, c in ipairs(plan.cells) do
    c.real_server = c.server
    c.server = M.server(plan, c)
    local cap = (plan.dry_run or {}).max_tokens
    if cap then c.max_tokens_cap = cap end
  end
  plan.dry = true
  return plan
end

M.plan_options = plan_options
return M
