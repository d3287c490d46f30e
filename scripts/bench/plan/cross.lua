-- bench.plan.cross: the checks that read more than one field of a plan
-- (names that must exist elsewhere in it, the phase script, the workload's
-- files), run after the schema check and before the matrix expands.
local check = require("bench.plan.check")
local suggest = require("bench.plan.suggest")
local util = require("bench.util")

local cross = {}

-- compare: a and b name models of models:
local function compare_names(v, plan)
  for i, c in ipairs(plan.compare or {}) do
    for _, side in ipairs({"a", "b"}) do
      local n = c[side]
      if n and plan.models and not plan.models[n] then
        v:err({"compare", i, side}, "unknown model '%s'%s", n, suggest.mean(n, suggest.names(plan.models)))
      end
    end
  end
end

-- dry_run.models: names models of models:
local function dry_run_models(v, plan)
  if not (plan.dry_run and plan.dry_run.models and plan.models) then return end
  for n in pairs(plan.dry_run.models) do
    if not plan.models[n] then
      v:err({"dry_run", "models", n}, "unknown model '%s' (not in models:)", n)
    end
  end
end

-- A phase script is code benchrun runs: only one of ours, by a path
-- relative to scripts/ that stays inside it, and it must compile.
local function phase_script(v, plan)
  local p = plan.script
  if not p then return end
  local inside = p:sub(1, 1) ~= "/" and p:sub(1, 1) ~= "~" and p:match("%.lua$")
  for seg in p:gmatch("[^/]+") do if seg == ".." then inside = false end end
  local full = bench.scripts_dir .. "/" .. p
  if not inside then
    v:err({"script"}, "expected a Lua script under scripts/ such as phases/baseline.lua (a relative path ending in .lua, no '..'), got '%s'", p)
  elseif not util.exists(full) then
    v:err({"script"}, "expected a Lua script under scripts/ (e.g. phases/baseline.lua), '%s' not found", p)
  else
    local chunk, why = loadfile(full)
    if not chunk then v:err({"script"}, "the phase script does not compile: %s", tostring(why))
    else plan.script_path = full end
  end
end

-- workload.mix and each load: scenario's mix weigh known prompts; a
-- synthetic spec and a prompt file are read now, as bench.workload will read
-- them: a broken one would end the run later
local function workload(v, plan)
  local w = plan.workload
  if w and w.mix then v:check_mix(w.mix, {"workload", "mix"}, "") end
  for i, sc in ipairs(plan.load or {}) do
    if sc.mix then v:check_mix(sc.mix, {"load", i, "mix"}, "") end
  end
  if w and w.synthetic ~= nil then
    local syn = w.synthetic
    local ok, why = type(syn) == "table", "expected a mapping such as {input: 128, output: 64}, got " .. check.describe(syn)
    if ok then ok, why = pcall(require("bench.workload").synthetic, syn) end
    if not ok then v:err({"workload", "synthetic"}, "%s", tostring(why)) end
  end
  if w and w.file then
    local ok, why = pcall(require("bench.workload").file, w.file, {max_tokens = w.max_tokens})
    if not ok then v:err({"workload", "file"}, "%s", tostring(why)) end
  end
end

-- search: min below max; a rate search's bounds are requests per second,
-- a concurrency search's whole users
local function search_bounds(v, plan)
  local s = plan.search
  if not s then return end
  if s.min and s.max and s.min > s.max then
    v:err({"search", "max"}, "expected a load at least search.min (%s), got %s", tostring(s.min), tostring(s.max))
  end
  if s.over == "concurrency" then
    for _, k in ipairs({"min", "max"}) do
      if s[k] and (s[k] < 1 or s[k] ~= math.floor(s[k])) then
        v:err({"search", k}, "expected a whole number of users (search.over is concurrency), got %s", tostring(s[k]))
      end
    end
  end
end

-- cross.check(v, plan) records with validator v what the fields say of each other
function cross.check(v, plan)
  compare_names(v, plan)
  dry_run_models(v, plan)
  if plan.workload and plan.workload.prompts and plan.workload.file then
    v:err({"workload", "file"}, "expected either workload.prompts or workload.file, not both")
  end
  phase_script(v, plan)
  workload(v, plan)
  search_bounds(v, plan)
end

return cross
