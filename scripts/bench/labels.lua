-- bench.labels: a cell's labels, the names report.md, summary.csv and the
-- console group and show cells by (docs/results-format.md). The runner
-- gives every cell its labels here; the report reads them back with the
-- same functions (canon, config_key, text), so a configuration the runner
-- told apart is one the report tells apart.
local M = {}

-- the labels report.md shows first, in this order (others follow, sorted)
M.ORDER = {"model", "variant", "quant", "format", "backend", "config", "env", "sysctl",
           "scenario", "concurrency", "max_tokens"}

-- One text per distinct value (tables by their sorted keys).
local function canon(v)
  if type(v) ~= "table" then return tostring(v) end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. canon(v[k]) end
  return table.concat(parts, ",")
end
M.canon = canon

-- The configuration a cell measures: its labels without `repeat` (cells
-- with equal keys are repeats of one configuration in the report).
function M.config_key(labels, drop)
  local keys = {}
  for k in pairs(labels or {}) do
    if k ~= "repeat" and not (drop and drop[k]) then keys[#keys + 1] = k end
  end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do
    local v = labels[k]
    if not (type(v) == "table" and next(v) == nil) then parts[#parts + 1] = k .. "=" .. canon(v) end
  end
  return table.concat(parts, ";")
end

-- A label's value as a table cell shows it (env {GGML_METAL_N_CB = 2} -> "N_CB=2").
function M.text(v)
  if v == nil then return "" end
  if type(v) == "table" then
    if next(v) == nil then return "default" end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    local parts = {}
    for _, k in ipairs(keys) do parts[#parts + 1] = k:gsub("^GGML_METAL_", "") .. "=" .. tostring(v[k]) end
    return table.concat(parts, " ")
  end
  return tostring(v)
end

-- M.of(plan, cell) -> the cell's labels for the results store
function M.of(plan, cell)
  local l = {}
  local m = cell.model or {}
  local s = cell.real_server or cell.server
  -- the plan's name of the model (the one in cell ids, --only and the
  -- console), so report.md names a cell as the console does; the id or file
  -- the server was given is the cell's server.model_id
  l.model = m.name or s.model
  l.variant = m.name
  l.quant = m.quant
  l.format = m.format
  l.bits = m.bits
  if m.size then l.size_bytes = m.size end
  l.backend = s.backend
  l.server = s.name
  if s.env and next(s.env) then l.env = s.env end
  if cell.sysctl and next(cell.sysctl) then l.sysctl = cell.sysctl end
  l.concurrency = cell.concurrency
  l.scenario = cell.scenario
  l.max_tokens = cell.max_tokens
  for axis, lab in pairs(cell.axes or {}) do
    if axis ~= "model" and axis ~= "server" and axis ~= "load" and l[axis] == nil then l[axis] = lab end
  end
  if cell.axes and (cell.axes.env or cell.axes.metal or cell.axes.config) then
    l.config = cell.axes.config or cell.axes.metal or cell.axes.env
  end
  for k, v in pairs(cell.tags or {}) do l[k] = v end
  return l
end

-- M.assign(plan, cells, hook) sets every cell's labels (hook(cell, labels):
-- the phase script's, may add its own). The report merges cells with equal
-- labels as repeats of one configuration, so two different cells whose
-- labels came out equal get the axis labels that tell them apart (the id's
-- parts), at worst the id itself.
function M.assign(plan, cells, hook)
  for _, c in ipairs(cells) do
    c.labels = M.of(plan, c)
    if hook then pcall(hook, c, c.labels) end
  end
  local by_key = {}
  for _, c in ipairs(cells) do
    local k = canon(c.labels)
    by_key[k] = by_key[k] or {}
    table.insert(by_key[k], c)
  end
  for _, list in pairs(by_key) do
    if #list > 1 then
      for _, c in ipairs(list) do
        for _, axis in ipairs(c.axis_order or {}) do
          if c.labels[axis] == nil then c.labels[axis] = c.axes[axis] end
        end
      end
      local seen, dup = {}, false
      for _, c in ipairs(list) do
        local k = canon(c.labels)
        if seen[k] then dup = true end
        seen[k] = true
      end
      if dup then for _, c in ipairs(list) do c.labels.cell = c.id end end
    end
  end
end

return M
