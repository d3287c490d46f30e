-- bench.shard: a plan's cells split over N machines (issue 18, docs/scale.md).
-- `benchrun PLAN.yaml --shard I/N` runs shard I of N. The split is a pure
-- function of the expanded cells (the plan, --set and --only), so every
-- machine that gets the same command line computes the same split without
-- talking to the others:
--   - cells that share one server start (bench.plan's server_key: backend,
--     model, binary, args, env, sysctl) form a group and stay in one shard,
--     so no model is loaded twice for the split;
--   - groups go, longest first, to the shard with the least estimated time
--     so far (bench.plan's estimate, the figures --check prints); ties go to
--     the group seen first and to the lowest shard number;
--   - inside a shard the cells keep the plan's order.
-- The shards of one run write <run dir>/shard-I-of-N/ (bench.merge reads them).
local plan = require("bench.plan")
local units = require("bench.units")

local M = {}

-- shard.parse(spec) -> index, count | nil, message.  "2/3" -> 2, 3 (1-based)
function M.parse(spec)
  local i, n = tostring(spec):match("^%s*(%d+)%s*/%s*(%d+)%s*$")
  if not i then return nil, string.format("--shard '%s': expected I/N, e.g. --shard 2/3 (shard 2 of 3)", tostring(spec)) end
  i, n = math.tointeger(tonumber(i)), math.tointeger(tonumber(n))
  if not n or n < 1 then return nil, string.format("--shard %s: the count N must be at least 1", spec) end
  if n > 10000 then return nil, string.format("--shard %s: at most 10000 shards", spec) end
  if not i or i < 1 or i > n then
    return nil, string.format("--shard %s: the index must be between 1 and %d (shards are numbered from 1)", spec, n)
  end
  return i, n
end

-- shard.folder(index, count) -> "shard-I-of-N"
function M.folder(i, n) return string.format("shard-%d-of-%d", i, n) end

-- shard.parse_folder(name) -> index, count | nil
function M.parse_folder(name)
  local i, n = tostring(name):match("^shard%-(%d+)%-of%-(%d+)$")
  if not i then return nil end
  return math.tointeger(tonumber(i)), math.tointeger(tonumber(n))
end

-- shard.groups(loaded) -> list of {key, cells, estimate} in the order of
-- each group's first cell.
local function estimate_of(loaded, cells)
  return (plan.estimate(setmetatable({cells = cells}, {__index = loaded}), {dry_run = false}))
end

function M.groups(loaded)
  local by_key, list = {}, {}
  for _, c in ipairs(loaded.cells) do
    local key = plan.server_key(c)
    local g = by_key[key]
    if not g then
      g = {key = key, cells = {}, estimate = 0, first = #list + 1}
      by_key[key] = g
      list[#list + 1] = g
    end
    g.cells[#g.cells + 1] = c
  end
  -- a group's time as one machine runs it: one server start, then its cells
  for _, g in ipairs(list) do g.estimate = estimate_of(loaded, g.cells) end
  return list
end

-- shard.assign(loaded, count) -> {shard index by cell id}, groups, totals
-- (estimated seconds per shard). Longest processing time first.
function M.assign(loaded, count)
  local groups = M.groups(loaded)
  local order = {}
  for i, g in ipairs(groups) do order[i] = g end
  table.sort(order, function(a, b)
    if a.estimate ~= b.estimate then return a.estimate > b.estimate end
    return a.first < b.first
  end)
  local totals = {}
  for s = 1, count do totals[s] = 0 end
  local of = {}
  for _, g in ipairs(order) do
    local best = 1
    for s = 2, count do if totals[s] < totals[best] then best = s end end
    g.shard = best
    totals[best] = totals[best] + g.estimate
    for _, c in ipairs(g.cells) do of[c.id] = best end
  end
  return of, groups, totals
end

-- shard.select(loaded, index, count) -> cells of that shard (group by group), info
-- info = {index, count, cells = {ids}, order = {{id, shard}... all cells in
-- plan order}, groups = groups in this shard, total_groups, estimate}:
-- the run's env.json keeps it, so merge knows every shard's cells.
function M.select(loaded, index, count)
  local of, groups = M.assign(loaded, count)
  local order = {}
  for _, c in ipairs(loaded.cells) do order[#order + 1] = {id = c.id, shard = of[c.id]} end
  -- the shard runs its groups one after the other (each group's cells in
  -- plan order, the groups in the order of their first cell), so a group
  -- whose cells the plan interleaved with others' starts its server once,
  -- as the split assumed; merge puts the cells back in plan order
  local cells, ids, mine = {}, {}, 0
  for _, g in ipairs(groups) do
    if g.shard == index then
      mine = mine + 1
      for _, c in ipairs(g.cells) do cells[#cells + 1] = c ids[#ids + 1] = c.id end
    end
  end
  local estimate = estimate_of(loaded, cells)
  return cells, {index = index, count = count, cells = ids, order = order, groups = mine,
                 total_groups = #groups, estimate = estimate}
end

-- shard.describe(info) -> one line for --check and the log
function M.describe(info)
  local s = string.format("shard %d/%d: %d cell%s in %d of %d server group%s, estimated %s",
    info.index, info.count, #info.cells, #info.cells == 1 and "" or "s", info.groups, info.total_groups,
    info.total_groups == 1 and "" or "s", units.format_duration(info.estimate or 0))
  if #info.cells == 0 then
    s = s .. string.format(" -- an empty shard: the plan has %d server group%s for %d shards " ..
                           "(cells sharing one server start stay together); it runs nothing and says so",
                           info.total_groups, info.total_groups == 1 and "" or "s", info.count)
  end
  return s
end

-- shard.apply(loaded, index, count) -> info: loaded.cells becomes the shard's
function M.apply(loaded, index, count)
  local cells, info = M.select(loaded, index, count)
  loaded.cells = cells
  return info
end

local function basename(path)
  return (tostring(path):gsub("/+$", ""):match("([^/]+)$")) or tostring(path)
end
M.basename = basename

-- shard.default_run_dir(root, name) -> <root>/<name>-<UTC time>: only one
-- machine computes it; the others need the same --run-dir.
function M.default_run_dir(root, name)
  return (root or "results") .. "/" .. (tostring(name):gsub("[^%w%._%-]", "_")) .. "-" .. require("bench.util").utc_stamp()
end

-- shard.make_folder(run_dir, index, count) -> path | nil, message
-- The shard's folder is made exclusively: two shards given the same index
-- (or a rerun of a finished shard without --resume) never share one folder.
function M.make_folder(run_dir, index, count)
  local results = require("bench.results")
  local ok, why = results.mkdir(run_dir)
  if not ok then return nil, why end
  local dir = run_dir .. "/" .. M.folder(index, count)
  local made, err, code = results.mkdir(dir, true)
  if made then return dir end
  -- a folder with no run in it yet (a shard that died before its first
  -- file): taken again; two shards starting at once still meet the run's
  -- lock (bench.results), so one of them is refused
  if code == "exists" and not results.exists(dir .. "/summary.json") and not results.exists(dir .. "/env.json") then
    return dir
  end
  if code == "exists" then
    return nil, string.format("%s exists already: shard %d/%d of this run ran (or runs) there, and two shards " ..
      "never write one folder; continue it with --resume %s, or give another --run-dir", dir, index, count, dir)
  end
  return nil, err
end

-- shard.of_folder(dir) -> env.shard of a results folder, or nil
function M.of_folder(dir)
  local results = require("bench.results")
  local text = results.read_file(dir .. "/env.json")
  local env = text and results.json_decode(text)
  return type(env) == "table" and type(env.shard) == "table" and env.shard or nil
end

return M
