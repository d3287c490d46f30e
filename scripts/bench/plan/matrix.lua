-- bench.plan.matrix: expand a validated plan into its cells.
--
-- The steps, in order: read the matrix blocks into axes (one list of
-- {label, settings} per axis) and add the load: scenarios as an axis; cross
-- the axes (or the explicit cells: with them); drop what exclude: names;
-- leave axes that never vary out of the ids; build each cell from the base
-- settings and its axis values; check it; resolve its server and model.
-- Also --only patterns (match_cell).
local check = require("bench.plan.check")
local estimate = require("bench.plan.estimate")
local paths = require("bench.plan.paths")
local resolve = require("bench.plan.resolve")
local schema = require("bench.plan.schema")
local suggest = require("bench.plan.suggest")
local util = require("bench.util")

local matrix = {}

local child, copy, is_list, is_map = paths.child, util.copy, util.is_list, util.is_map

-- Known axes: each sets the cell field of its name.
matrix.AXES = {
  model = true, server = true, backend = true, env = true, sysctl = true,
  concurrency = true, max_tokens = true, requests = true, args = true,
  ["repeat"] = true, rate = true, mix = true, warmup = true, depth = true,
}
local AXES = matrix.AXES

---------------------------------------------------------------------------
-- Labels
---------------------------------------------------------------------------

local function scalar_label(v)
  if type(v) == "number" then
    if math.type(v) == "float" and v == math.floor(v) then return tostring(math.tointeger(v)) end
    return tostring(v)
  end
  return tostring(v)
end

-- matrix.label_of(axis, v) -> a readable label of an axis value
function matrix.label_of(axis, v)
  if axis == "depth" and type(v) == "number" then return "d" .. scalar_label(v) end   -- llama-bench's "d4096"
  if type(v) ~= "table" then return scalar_label(v) end
  if v.name then return tostring(v.name) end
  if axis == "env" or axis == "sysctl" then
    local keys = suggest.names(v)
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

local function glob_to_pattern(g)
  local p = g:gsub("[%^%$%(%)%%%.%[%]%+%-]", "%%%0"):gsub("%*", ".*"):gsub("%?", ".")
  return "^" .. p .. "$"
end

-- matrix.match_cell(cell, patterns) -> true if any comma-separated glob
-- matches the cell id, one of its axis labels, or "axis=label".
function matrix.match_cell(cell, pattern)
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

---------------------------------------------------------------------------
-- Axes
---------------------------------------------------------------------------

-- one value of a known axis -> its settings, or nil after an error
local function known_axis_value(v, name, x, p)
  local nd = schema.CELL_FIELDS[name]
  if (name == "env" or name == "sysctl") and type(x) == "table" and x.name ~= nil then
    -- a named env/sysctl set: {name: private, GGML_...: "1"}
    local unnamed = copy(x)
    unnamed.name = nil
    local r = v:check(nd, unnamed, p)
    return r and {[name] = r}
  elseif name == "sysctl" and type(x) ~= "table" then
    v:err(p, "expected a mapping of sysctl names to values (e.g. {iogpu.wired_limit_mb: 458752}), got %s",
          check.describe(x))
    return nil
  end
  local r = v:check(nd, x, p)
  return r ~= nil and {[name] = r} or nil
end

-- one value of a custom axis (a mapping of cell settings with a name)
local function custom_axis_value(v, name, x, p)
  if type(x) ~= "table" or not is_map(x) then
    local known = suggest.names(AXES)
    local s = suggest.closest(name, known)
    v:err(p, "expected a mapping of cell settings with a name (a custom axis)%s, got %s",
          s and string.format("; or did you mean the axis '%s'?", s) or "", check.describe(x))
    return nil
  end
  return v:check(schema.cell_map{required = {"name"}}, x, p)
end

-- one axis (matrix.<axis>) -> list of {label, settings, raw}, or nil
local function axis(v, name, values, path)
  if type(values) ~= "table" or not is_list(values) then
    v:err(path, "expected a list of values for the axis '%s', got %s", name, check.describe(values))
    return nil
  end
  if #values == 0 then
    v:err(path, "expected a non-empty list (an empty axis makes zero cells)")
    return nil
  end
  local out = {}
  for i, x in ipairs(values) do
    local settings
    if AXES[name] then settings = known_axis_value(v, name, x, child(path, i))
    else settings = custom_axis_value(v, name, x, child(path, i)) end
    if settings then
      out[#out + 1] = {label = matrix.label_of(name, x), settings = settings, raw = x}
    end
  end
  return out
end

-- The scenario list (load:) as axis values {label, settings}.
local SCENARIO_KEYS = {"requests", "duration", "rate", "arrival", "burstiness", "ramp", "mix", "prompt", "warmup", "repeat", "note",
                       "timeout", "max_error_rate"}
local function load_axis(scenarios)
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
        for _, k in ipairs(SCENARIO_KEYS) do
          if s[k] ~= nil then settings[k] = s[k] end
        end
        out[#out + 1] = {label = label, settings = settings}
      end
    end
  end
  return out
end

-- matrix: (a mapping, or a list of named mappings) -> blocks {axes, path};
-- one empty block without a matrix; load: is an axis of every block
local function blocks_of(v, plan, raw)
  local blocks = {}
  if raw.matrix ~= nil and plan.matrix ~= nil then
    local listed = is_list(raw.matrix)
    for bi, m in ipairs(listed and raw.matrix or {raw.matrix}) do
      local bpath = listed and {"matrix", bi} or {"matrix"}
      local axes = {}
      if listed then
        if m.name == nil then
          v:err(bpath, "expected a name: for each matrix of a list (it starts the ids of its cells)")
        else
          local g = tostring(m.name)
          axes[#axes + 1] = {name = "group", values = {{label = g, settings = {group = g}}}}
        end
      end
      for _, name in ipairs(paths.ordered_keys(v.where, bpath, m)) do
        if not (listed and name == "name") then
          local vals = axis(v, name, m[name], child(bpath, name))
          if vals then axes[#axes + 1] = {name = name, values = vals} end
        end
      end
      blocks[#blocks + 1] = {axes = axes, path = bpath}
    end
  end
  if #blocks == 0 then blocks[1] = {axes = {}, path = {}} end
  if plan.load then
    for _, b in ipairs(blocks) do
      b.axes[#b.axes + 1] = {name = "load", values = load_axis(plan.load)}
    end
  end
  return blocks
end

---------------------------------------------------------------------------
-- Combinations
---------------------------------------------------------------------------

-- every partial combination crossed with every value of each axis
local function cross(partial, axes)
  for _, ax in ipairs(axes) do
    local nxt = {}
    for _, pc in ipairs(partial) do
      for _, x in ipairs(ax.values) do
        local st = table.move(pc.settings, 1, #pc.settings, 1, {})
        st[#st + 1] = x.settings
        local labels = copy(pc.labels)
        labels[ax.name] = x.label
        local order = table.move(pc.order, 1, #pc.order, 1, {})
        order[#order + 1] = ax.name
        nxt[#nxt + 1] = {settings = st, labels = labels, order = order, path = pc.path}
      end
    end
    partial = nxt
  end
  return partial
end

-- combinations: explicit cells (crossed with the first block's axes), or the matrix
local function combinations(plan, blocks)
  local combos = {}
  if plan.cells then
    for i, c in ipairs(plan.cells) do
      local cb = {settings = {c}, labels = {cell = c.name or tostring(i)}, order = {"cell"}, path = {"cells", i}}
      for _, x in ipairs(cross({cb}, blocks[1].axes)) do combos[#combos + 1] = x end
    end
  else
    for _, b in ipairs(blocks) do
      for _, x in ipairs(cross({{settings = {}, labels = {}, order = {}, path = b.path}}, b.axes)) do
        combos[#combos + 1] = x
      end
    end
  end
  return combos
end

-- exclude: partial {axis: label-or-glob} -> the combinations kept, how many dropped
local function apply_exclude(exclude, combos)
  if not exclude then return combos, 0 end
  local kept, excluded = {}, 0
  for _, cb in ipairs(combos) do
    local drop = false
    for _, ex in ipairs(exclude) do
      local all = true
      for k, x in pairs(ex) do
        local lab = cb.labels[k]
        if lab == nil or not tostring(lab):match(glob_to_pattern(scalar_label(x))) then all = false break end
      end
      if all and next(ex) then drop = true break end
    end
    if drop then excluded = excluded + 1 else kept[#kept + 1] = cb end
  end
  return kept, excluded
end

-- An axis with one value in every cell (server: [lmstudio]) names no
-- difference: it stays a label but is left out of the ids, so an id says
-- what sets a cell apart (unless every axis is constant).
local function constant_axes(combos)
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
  if nconst == naxes then return {} end
  return constant
end

---------------------------------------------------------------------------
-- Cells
---------------------------------------------------------------------------

-- Merge one setting into a cell spec (later wins; env/sysctl/tags merge).
local function set_field(cell, key, value)
  if key == "env" or key == "sysctl" or key == "tags" then
    cell[key] = copy(cell[key])
    for k, x in pairs(value or {}) do cell[key][k] = x end
  elseif key == "server" and type(value) == "table" then
    local s = copy(type(cell.server) == "table" and cell.server or {})
    for k, x in pairs(value) do
      if k == "env" then
        s.env = copy(s.env)
        for ek, ev in pairs(x) do s.env[ek] = ev end
      else
        s[k] = x
      end
    end
    cell.server = s
  else
    cell[key] = value
  end
end

-- the cell of combination cb (the i-th), before its checks
local function build_cell(plan, cb, i, constant)
  local cell = {}
  for _, k in ipairs({"repeat", "warmup", "concurrency", "max_tokens", "requests", "depth", "ramp"}) do cell[k] = plan[k] end
  for _, s in ipairs(cb.settings) do
    for k, x in pairs(s) do set_field(cell, k, util.deep_copy(x)) end
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
  -- requests: auto / duration: auto run until steady, warmup: auto until
  -- TTFT stops falling (bench.steady; the runner reads these flags)
  if cell.requests == "auto" or cell.duration == "auto" then cell.steady, cell.requests, cell.duration = true, nil, nil end
  if cell.warmup == "auto" then cell.warmup_auto, cell.warmup = true, nil end
  cell.warmup = cell.warmup or 0
  -- an open-loop cell (rate) caps its senders only when concurrency was given
  cell.concurrency_set = cell.concurrency ~= nil or nil
  cell.concurrency = cell.concurrency or 1
  return cell
end

-- a cell's prompt:, mix: and arrival: against the workload
local function check_workload(v, plan, cell, path)
  if cell.prompt then
    local names = {}
    for _, p in ipairs(estimate.prompt_budgets(plan)) do names[#names + 1] = p.name end
    local found = false
    for _, nm in ipairs(names) do if nm == cell.prompt then found = true end end
    if not found and not (plan.workload and (plan.workload.file or plan.workload.synthetic)) then
      v:err(path, "cell %s: unknown prompt '%s'%s (prompts: %s)", cell.id, cell.prompt,
            suggest.mean(cell.prompt, names), table.concat(names, ", "))
    end
  end
  if cell.mix then v:check_mix(cell.mix, path, "cell " .. cell.id .. ": mix: ") end
  if cell.arrival and not cell.rate then
    v:err(path, "cell %s: arrival '%s' needs a rate (requests per second) in the same cell", cell.id, cell.arrival)
  end
  if cell.ramp and cell.ramp > 0 and cell.rate then
    v:err(path, "cell %s: ramp %gs is for a closed loop of users; with a rate the arrivals decide when requests start",
          cell.id, cell.ramp)
  end
  if cell.burstiness and cell.arrival ~= "gamma" then
    v:err(path, "cell %s: burstiness %s needs arrival: gamma in the same cell (it is the gamma arrivals' shape)",
          cell.id, tostring(cell.burstiness))
  end
end

-- Ids are unique, and so are the file names made of them (cells/<id>.json,
-- server-<id>.log use the id with some characters replaced).
local function check_id(v, cell, path, seen, files)
  if seen[cell.id] then
    v:err(path, "two cells have the same id '%s' (give the values distinct names)", cell.id)
  end
  seen[cell.id] = true
  local fname = require("bench.results").file_name(cell.id)
  if cell.id:find("\0", 1, true) then
    v:err(path, "cell id %q contains a NUL byte", cell.id)
  elseif files[fname] and files[fname] ~= cell.id then
    v:err(path, "cells '%s' and '%s' would share the file name '%s' (characters other than letters, " ..
          "digits, '.', '_' and '-' become '_'): give the values distinct names", files[fname], cell.id, fname)
  elseif #fname > 200 then
    v:err(path, "cell id '%s...' is too long for a file name (%d bytes once made a file name, at most 200): " ..
          "give the values shorter names", cell.id:sub(1, 40), #fname)
  end
  files[fname] = files[fname] or cell.id
end

-- matrix.expand(v, plan, raw) -> cells (possibly empty after errors
-- recorded with validator v), the number of combinations excluded
function matrix.expand(v, plan, raw)
  local blocks = blocks_of(v, plan, raw)
  local combos, excluded = apply_exclude(plan.exclude, combinations(plan, blocks))
  local constant = constant_axes(combos)
  local cells, seen, files = {}, {}, {}
  for i, cb in ipairs(combos) do
    local cell = build_cell(plan, cb, i, constant)
    check_workload(v, plan, cell, cb.path)
    check_id(v, cell, cb.path, seen, files)
    if resolve.cell(v, plan, cell, cb.path) then cells[#cells + 1] = cell end
  end
  return cells, excluded
end

return matrix
