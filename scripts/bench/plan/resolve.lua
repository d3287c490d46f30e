-- bench.plan.resolve: turn a cell's server and model names into the full
-- server spec the runner starts: the plan's server:, then the named entry
-- of servers:, then the model's and the cell's args, env and backend.
local suggest = require("bench.plan.suggest")
local util = require("bench.util")

local resolve = {}

local copy = util.copy

-- the cell's model: a name from models:, a mapping, or a plain string (the
-- model id or path) -> the model spec, or nil after an error
local function model_of(v, plan, cell, path)
  local m = cell.model
  if type(m) == "string" then
    if plan.models and plan.models[m] then
      m = copy(plan.models[m]); m.name = m.name or cell.model
    elseif plan.models and next(plan.models) and not (m:find("/") or m:find("%.gguf$")) then
      local names = suggest.names(plan.models)
      v:err(path, "unknown model '%s'%s (models: %s)", m, suggest.mean(m, names), table.concat(names, ", "))
      return nil
    else
      m = {name = m:match("([^/]+)$"), model = m}
    end
  elseif type(m) == "table" then
    m = copy(m)
    m.name = m.name or (m.model and m.model:match("([^/]+)$"))
  end
  return m, true
end

-- the plan's server: with `over` laid on it (env merged key by key)
local function over_base(plan, over)
  local base = copy(plan.server)
  base.env = copy(base.env)
  for k, x in pairs(over or {}) do
    if k == "env" then for ek, ev in pairs(x) do base.env[ek] = ev end else base[k] = x end
  end
  return base
end

-- the cell's server before the cell's own settings, or nil after an error
local function server_of(v, plan, cell, m, path)
  local sv = cell.server
  local sname = sv
  if sv == nil and m and m.server then sname, sv = m.server, m.server end
  if type(sv) == "string" then
    if not (plan.servers and plan.servers[sv]) then
      local names = suggest.names(plan.servers)
      v:err(path, "unknown server '%s'%s (servers: %s)", sv, suggest.mean(sv, names),
            #names > 0 and table.concat(names, ", ") or "none defined")
      return nil
    end
    local base = over_base(plan, plan.servers[sv])
    base.name = base.name or sname
    return base
  end
  return over_base(plan, type(sv) == "table" and sv or nil)
end

-- cell-level backend/args/env/unset_env and the model apply to the server
local function apply_cell(plan, cell, m, sv)
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
  local env = copy(sv.env)
  for k, x in pairs(plan.env or {}) do if env[k] == nil then env[k] = x end end
  for k, x in pairs(m and m.env or {}) do env[k] = x end
  for k, x in pairs(cell.env or {}) do env[k] = x end
  for k, x in pairs(env) do env[k] = type(x) == "boolean" and (x and "1" or "0") or tostring(x) end
  sv.env = env
  local unset = {}
  for _, u in ipairs(sv.unset_env or {}) do unset[#unset + 1] = u end
  for _, u in ipairs(cell.unset_env or {}) do unset[#unset + 1] = u end
  sv.unset_env = unset
  sv.ready_timeout = sv.ready_timeout or 1800
end

-- resolve.cell(v, plan, cell, path) -> cell (its model, server and sysctl
-- resolved in place), or nil after recording an error with validator v
function resolve.cell(v, plan, cell, path)
  local m, ok = model_of(v, plan, cell, path)
  if not ok then return nil end
  cell.model = m
  local sv = server_of(v, plan, cell, m, path)
  if not sv then return nil end
  apply_cell(plan, cell, m, sv)
  if not sv.backend then
    v:err(path, "no server backend for this cell (set server.backend, or servers: with a backend)")
    return nil
  end
  if sv.backend == "external" and not sv.base_url then
    v:err(path, "the backend 'external' needs server.base_url")
  end
  cell.server = sv
  local sysctl = copy(plan.sysctl)
  for k, x in pairs(cell.sysctl or {}) do sysctl[k] = x end
  cell.sysctl = sysctl
  return cell
end

return resolve
