-- bench.plan.validate: the whole of a plan's validation, step by step: the
-- schema, the cross-field checks, the matrix expansion, --only, the model
-- files a real run needs, and what each backend's adapter says of its cells.
local check = require("bench.plan.check")
local cross = require("bench.plan.cross")
local matrix = require("bench.plan.matrix")
local schema = require("bench.plan.schema")
local util = require("bench.util")

-- --only: keep the cells that match; none is an error that lists some ids
local function only_cells(v, plan, cells, only)
  local kept = {}
  for _, c in ipairs(cells) do if matrix.match_cell(c, only) then kept[#kept + 1] = c end end
  if #kept == 0 then
    local ids = {}
    for i = 1, math.min(#cells, 8) do ids[i] = cells[i].id end
    v.errors[#v.errors + 1] = {text = string.format("--only %s: no cell matches (cells: %s%s)", only,
                                 table.concat(ids, ", "), #cells > 8 and ", ..." or ""), line = 0, col = 0}
  end
  plan.all_cells = cells
  return kept
end

-- model files must exist for a real run of a file-based backend (an error
-- for a real run, a warning for --check)
local function model_files(v, plan, cells, real)
  local seen = {}
  for _, c in ipairs(cells) do
    local m = c.server.model
    if m and not seen[m] and (m:match("%.gguf$") or m:sub(1, 1) == "/" or m:sub(1, 2) == "~/" or m:sub(1, 2) == "./")
       and c.server.backend ~= "external" and c.server.backend ~= "sim" and c.server.backend ~= "lmstudio" then
      seen[m] = true
      local full = m:sub(1, 2) == "~/" and (os.getenv("HOME") or "") .. m:sub(2) or m
      if not util.exists(full) and not (io.open(full .. "/config.json")) then
        local path = (c.model and plan.models and plan.models[c.model.name]) and {"models", c.model.name}
                     or {"server", "model"}
        if real then
          v:err(path, "expected an existing model file, '%s' not found (cell %s)", full, c.id)
        else
          v:warn(path, "model file '%s' not found here (a real run of cell %s needs it)", full, c.id)
        end
      end
    end
  end
end

-- what a backend's adapter says of a cell it will serve (vllm-mlx: no
-- batching without --continuous-batching), once per server and message
local function adapter_warnings(v, plan, cells)
  local said = {}
  for _, c in ipairs(cells) do
    local ok, adapter = pcall(require("bench.backends").get, c.server.backend or "")
    if ok and adapter and adapter.cell_warnings then
      for _, w in ipairs(adapter.cell_warnings(c.server, c.concurrency)) do
        local key = tostring(c.server.name) .. "\0" .. w
        if not said[key] then
          said[key] = true
          local path = (c.server.name and plan.servers and plan.servers[c.server.name]) and {"servers", c.server.name}
                       or {"server"}
          v:warn(path, "%s (cell %s)", w, c.id)
        end
      end
    end
  end
end

-- the schema, the cross-field checks and the matrix -> plan, cells
local function check_and_expand(v, doc)
  local plan = v:check(schema.root, doc, {}) or {}
  plan.name = plan.name or doc.name
  cross.check(v, plan)
  local cells, excluded = {}, 0
  if #v.errors == 0 then cells, excluded = matrix.expand(v, plan, doc) end
  if #v.errors == 0 and #cells == 0 then
    local path = doc.matrix and {"matrix"} or (doc.cells and {"cells"}) or {}
    v:err(path, "the matrix expands to zero cells%s",
          excluded > 0 and string.format(" (all %d excluded by exclude:)", excluded) or "")
  end
  return plan, cells
end

-- validate(doc, {file, where, only, dry_run, real}) -> plan or nil, errors
-- doc is the decoded YAML; where(path, key) -> line, col gives positions.
-- The result: the normalized plan with .cells (expanded), .warnings. Each
-- error is {text, line, col, path, msg}, in the order of the file.
local function validate(doc, opts)
  opts = opts or {}
  local file = opts.file or "(plan)"
  local v = check.new(file, opts.where or function() return 1, 1 end, opts)
  if type(doc) ~= "table" or not util.is_map(doc) or next(doc) == nil then
    v:err({}, "expected a plan (a mapping with at least name:), got %s", check.describe(doc))
    return nil, v.errors
  end
  local plan, cells = check_and_expand(v, doc)
  if #v.errors == 0 and opts.only then cells = only_cells(v, plan, cells, opts.only) end
  if #v.errors == 0 and not opts.dry_run then model_files(v, plan, cells, opts.real) end
  if #v.errors == 0 then adapter_warnings(v, plan, cells) end
  if #v.errors > 0 then
    table.sort(v.errors, function(a, b)
      if a.line ~= b.line then return a.line < b.line end
      return a.col < b.col
    end)
    return nil, v.errors
  end
  plan.cells = cells
  plan.warnings = v.warnings
  plan.file = file
  plan.dir = v.dir
  return plan
end

return validate
