-- bench.plan.estimate: how long a plan will take, and the text of
-- `benchrun PLAN --check` (the cells and their estimates). Figures come
-- from the plan's estimate: section (a guess for real hardware) or its
-- dry_run: section (the simulator), else defaults.
local units = require("bench.units")

local estimate = {}

-- the seed's five prompts, with their token budgets (bench.workload.seed has the text)
estimate.SEED_MAX_TOKENS = {short = 100, medium = 500, long = 2000, reasoning = 500, instruction = 400}

-- estimate.prompt_budgets(plan) -> list of {name, max_tokens} the cells will send
function estimate.prompt_budgets(plan)
  local w = plan.workload or {}
  local out = {}
  if type(w.prompts) == "table" then
    for _, p in ipairs(w.prompts) do out[#out + 1] = {name = p.name, max_tokens = p.max_tokens or w.max_tokens or 256} end
  else
    for _, n in ipairs({"short", "medium", "long", "reasoning", "instruction"}) do
      out[#out + 1] = {name = n, max_tokens = w.max_tokens or estimate.SEED_MAX_TOKENS[n]}
    end
  end
  return out
end

local function mean_budget(prompts)
  local avg = 0
  for _, p in ipairs(prompts) do avg = avg + p.max_tokens end
  return avg / math.max(1, #prompts)
end

-- estimate.cell_requests(plan, cell) -> requests a cell sends (warm-ups
-- excluded) and their total output tokens; nil, nil for a timed cell
function estimate.cell_requests(plan, cell)
  local prompts = estimate.prompt_budgets(plan)
  local rep = cell["repeat"] or 1
  if cell.duration then return nil, nil end
  local n, toks
  if cell.depth then   -- bench.depth: a cold and a warm request per repeat
    n = 2 * rep
    toks = n * (cell.max_tokens or require("bench.depth").DEFAULT_TG)
  elseif cell.requests then
    n = cell.requests * rep
    toks = n * (cell.max_tokens or mean_budget(prompts))
  elseif cell.concurrency and cell.concurrency > 1 then
    n = cell.concurrency * 4 * rep
    toks = n * (cell.max_tokens or mean_budget(prompts))
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

-- estimate.server_key(cell) -> a string that changes when the server must restart
function estimate.server_key(cell)
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

-- seconds one cell takes once its server is up (est = estimate:, d = dry_run:)
local function cell_seconds(plan, c, sim, est, d)
  local t = 0
  local n, toks = estimate.cell_requests(plan, c)
  local tps = sim and (d.decode_tps or 2000) or (est.decode_tps or 40)
  local dm = sim and d.models and c.model and d.models[c.model.name]
  if dm and dm.decode_tps then tps = dm.decode_tps end
  if sim and d.max_tokens and n then toks = math.min(toks, n * d.max_tokens) end
  -- prefill: the plan's estimate of prompt tokens per request at prefill_tps
  local ptoks = sim and 0 or (est.prompt_tokens or 0)
  local ptps = sim and (d.prefill_tps or 50000) or (est.prefill_tps or 500)
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
    t = t + toks / agg + (c.warmup or 0) * (toks / math.max(1, n)) / tps + (c.ramp or 0) * (c["repeat"] or 1)
  end
  return t
end

-- the idle baseline and, as an upper bound, the cooldown's max before a cell
local function energy_seconds(plan, c, dry)
  local e = require("bench.energy").settings(plan, c, dry)
  return (e.idle_s or 0) + (e.cooldown and e.cooldown.max_s or 0)
end

-- estimate.seconds(plan, {dry_run}) -> seconds, per-cell list. A cell on
-- the simulator (a dry run, or backend sim) uses the dry_run: figures.
function estimate.seconds(plan, opts)
  opts = opts or {}
  local est = plan.estimate or {}
  local d = plan.dry_run or {}
  local total, per = 0, {}
  local prev_key
  for _, c in ipairs(plan.cells) do
    local t = 0
    local sim = opts.dry_run or c.server.backend == "sim"
    local key = estimate.server_key(c)
    if key ~= prev_key or c.restart then
      local lt = sim and (d.load_time or 0.05) or (est.load_time or 60)
      local dm = sim and d.models and c.model and d.models[c.model.name]
      if dm and dm.load_time then lt = dm.load_time end
      t = t + lt
    end
    prev_key = key
    t = t + cell_seconds(plan, c, sim, est, d) + energy_seconds(plan, c, opts.dry_run)
    per[#per + 1] = t
    total = total + t
  end
  return total, per
end

---------------------------------------------------------------------------
-- --check
---------------------------------------------------------------------------

local function pad(s, n)
  s = tostring(s)
  local len = utf8.len(s) or #s
  if len >= n then return s end
  return s .. string.rep(" ", n - len)
end

-- what a cell's row says besides its figures: a server start, sysctl, env
local function cell_notes(c, restart)
  local extra = {}
  if restart then extra[#extra + 1] = "start" end
  local sk = {}
  for k, v in pairs(c.sysctl or {}) do sk[#sk + 1] = k .. "=" .. tostring(v) end
  table.sort(sk)
  if #sk > 0 then extra[#extra + 1] = "sysctl " .. table.concat(sk, " ") end
  local ek = {}
  for k, v in pairs(c.server.env or {}) do ek[#ek + 1] = k .. "=" .. v end
  table.sort(ek)
  if #ek > 0 then extra[#extra + 1] = "env " .. table.concat(ek, " ") end
  return #extra > 0 and ("  " .. table.concat(extra, "; ")) or ""
end

-- estimate.check_text(plan) -> the text of --check: the cells and the time estimates
function estimate.check_text(plan)
  local out = {}
  local function add(fmt, ...) out[#out + 1] = select("#", ...) > 0 and fmt:format(...) or fmt end
  add("%s: valid plan '%s'%s, %d cell%s", plan.file, plan.name,
      plan.script and (" (script " .. plan.script .. ")") or "", #plan.cells, #plan.cells == 1 and "" or "s")
  for _, w in ipairs(plan.warnings or {}) do add("warning: %s", w) end
  local total, per = estimate.seconds(plan, {dry_run = false})
  local dtotal = estimate.seconds(plan, {dry_run = true})
  local idw = 4
  for _, c in ipairs(plan.cells) do idw = math.max(idw, utf8.len(c.id) or #c.id) end
  idw = math.min(idw, 48)
  add("")
  add("  %s  %s  %s  %s  %s  %s", pad("#", 3), pad("cell", idw), pad("server", 13), pad("conc", 4),
      pad("req", 5), "estimate")
  local prev
  for i, c in ipairs(plan.cells) do
    local n = estimate.cell_requests(plan, c)
    local key = estimate.server_key(c)
    local restart = key ~= prev or c.restart
    prev = key
    add("  %s  %s  %s  %s  %s  %s%s", pad(i, 3), pad(c.id, idw), pad(c.server.backend, 13),
        pad(c.concurrency or 1, 4), pad(n and (n .. "x" .. (c["repeat"] > 1 and "" or "1")):gsub("x1$", ""):gsub("x$", "") or "dur", 5),
        pad(units.format_duration(per[i]), 8), cell_notes(c, restart))
  end
  add("")
  local est = plan.estimate or {}
  add("estimated time: %s for a real run (load %s per server start, %s tok/s decode: the plan's estimate: section or defaults)",
      units.format_duration(total), units.format_duration(est.load_time or 60), tostring(est.decode_tps or 40))
  add("                %s for --dry-run", units.format_duration(dtotal))
  local e = require("bench.energy").settings(plan, plan.cells[1])
  if e.cooldown or (e.idle_s or 0) > 0 then
    add("                (each cell includes %s%s%s)", (e.idle_s or 0) > 0 and (units.format_duration(e.idle_s) .. " of idle baseline") or "",
        (e.idle_s or 0) > 0 and e.cooldown and " and " or "",
        e.cooldown and ("up to " .. units.format_duration(e.cooldown.max_s) .. " of cooldown (its max: an upper bound)") or "")
  end
  return table.concat(out, "\n")
end

return estimate
