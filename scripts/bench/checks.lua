-- bench.checks: a prompt's `check:` expression (plan workload.prompts),
-- compiled into a function the results store runs on each answer.
local M = {}

-- M.of_plan(plan) -> {[prompt] = fn(text) -> ok, detail} | nil: Lua
-- expressions with `text` in scope, returning a boolean or ok, detail; they
-- see only string, math, utf8, tostring and tonumber.
function M.of_plan(plan)
  local w = plan.workload or {}
  if type(w.prompts) ~= "table" then return nil end
  local out
  for _, p in ipairs(w.prompts) do
    if p.check then
      local fn, err = load("local text = ...; return " .. p.check, "=check " .. p.name, "t",
                           {string = string, math = math, utf8 = utf8, tostring = tostring, tonumber = tonumber})
      if not fn then error(string.format("workload.prompts %s: check: %s", p.name, err), 0) end
      out = out or {}
      out[p.name] = function(text)
        local ok, detail = fn(text or "")
        return ok and true or false, detail or (ok and "passed" or ("check failed: " .. p.check))
      end
    end
  end
  return out
end

return M
