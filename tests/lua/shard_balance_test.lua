-- bench.shard's split (issue 18): cells that share one server start stay
-- in one shard, and the groups are balanced by the time estimate (the one
-- --check prints), longest first onto the least loaded shard. Cells here
-- have known estimates: each is a timed cell (duration × repeat seconds)
-- on a real backend whose start the plan's estimate: puts at 10 s, with the
-- energy idle baseline off, so a group costs 10 s plus its cells' durations.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local shard = require("bench.shard")
local plan = require("bench.plan")

local LOAD = 10

-- a plan's expanded cells: {model, seconds} in plan order
local function loaded(list)
  local cells = {}
  for i, x in ipairs(list) do
    cells[i] = {id = string.format("%d/%s", i, x[1]), duration = x[2],
                server = {backend = "llama-server", model = x[1] .. ".gguf", args = {}}}
  end
  return {name = "balance", cells = cells, estimate = {load_time = LOAD}, energy = false}
end

-- group seconds: A 210 (two cells, apart in the plan), B 180, C 160, D 130,
-- E 90, F 70, G 30; 870 in all. The plan's order is not the longest first.
local CELLS = {{"G", 20}, {"A", 100}, {"F", 60}, {"B", 170}, {"A", 100}, {"E", 80}, {"C", 150}, {"D", 120}}
local GROUP = {A = 210, B = 180, C = 160, D = 130, E = 90, F = 70, G = 30}

-- the best makespan over every assignment of the groups to n shards
local function optimum(estimates, n)
  local best = math.huge
  local loads = {}
  for s = 1, n do loads[s] = 0 end
  local function go(i)
    if i > #estimates then
      local m = 0
      for s = 1, n do m = math.max(m, loads[s]) end
      best = math.min(best, m)
      return
    end
    for s = 1, n do
      loads[s] = loads[s] + estimates[i]
      go(i + 1)
      loads[s] = loads[s] - estimates[i]
    end
  end
  go(1)
  return best
end

T.case("a shard runs its groups one after the other: an interleaved group starts once", function()
  local cells, info = shard.select(loaded(CELLS), 1, 1)
  local ids = {}
  for i, c in ipairs(cells) do ids[i] = c.id end
  T.eq(table.concat(ids, " "), "1/G 2/A 5/A 3/F 4/B 6/E 7/C 8/D", "A's two cells together, groups in plan order")
  T.eq(info.estimate, 870, "one start per group: the groups' estimates add up")
  T.eq(info.order[5].id, "5/A", "the plan's order kept for merge")
end)

T.case("groups by server key, each estimated as one start and its cells", function()
  local l = loaded(CELLS)
  local groups = shard.groups(l)
  T.eq(#groups, 7, "seven server groups (A's two cells share a start)")
  for _, g in ipairs(groups) do
    local model = g.cells[1].server.model:sub(1, 1)
    T.eq(g.estimate, GROUP[model], model .. ": the estimate")
    for _, c in ipairs(g.cells) do T.eq(plan.server_key(c), g.key, model .. ": one server key") end
  end
  T.eq(#groups[2].cells, 2, "A: both cells, though the plan put F and B between them")
  T.eq(groups[2].cells[2].id, "5/A", "A's second cell")
  -- the estimate is --check's: the whole plan on one machine, one start per change of server
  T.eq((plan.estimate(l, {dry_run = false})), 870 + LOAD, "one machine: A's start twice, as the plan orders it")
end)

T.case("two shards: longest first onto the least loaded, as balanced as the best split", function()
  local l = loaded(CELLS)
  local of, groups, totals = shard.assign(l, 2)
  -- A 210 -> 1; B 180 -> 2; C 160 -> 2 (340); D 130 -> 1 (340); E 90 -> 1
  -- (a tie: the lowest shard, 430); F 70 -> 2 (410); G 30 -> 2 (440)
  T.eq(totals[1], 430, "shard 1: A D E")
  T.eq(totals[2], 440, "shard 2: B C F G")
  local est = {}
  for i, g in ipairs(groups) do est[i] = g.estimate end
  T.eq(math.max(totals[1], totals[2]), optimum(est, 2), "no split of these groups finishes sooner")
  -- every cell of a group in the group's shard; the shards' own estimates
  -- agree (a shard runs its cells in the plan's order: A's two cells come
  -- one after the other in shard 1, since F and B went to shard 2)
  T.eq(of["2/A"], of["5/A"], "A's cells together")
  for i = 1, 2 do
    local cells, info = shard.select(l, i, 2)
    local sum = 0
    for _, c in ipairs(cells) do sum = sum + c.duration end
    T.eq(info.estimate, totals[i], "shard " .. i .. ": select's estimate is assign's total")
    T.eq(info.estimate, sum + LOAD * info.groups, "shard " .. i .. ": its cells plus one start per group")
  end
  T.eq(#shard.select(l, 1, 2) + #shard.select(l, 2, 2), #CELLS, "every cell in one shard")
end)

T.case("three shards: within the smallest group of an even split; the plan's order is no help", function()
  local l = loaded(CELLS)
  local _, groups, totals = shard.assign(l, 3)
  -- A -> 1 (210); B -> 2 (180); C -> 3 (160); D -> 3 (290); E -> 2 (270);
  -- F -> 1 (280); G -> 2 (300)
  T.eq(table.concat(totals, " "), "280 300 290", "the shards' estimates")
  local est = {}
  for i, g in ipairs(groups) do est[i] = g.estimate end
  local best = optimum(est, 3)
  T.eq(math.max(totals[1], totals[2], totals[3]) - best <= GROUP.G, true,
       string.format("makespan %d vs the best %d", math.max(totals[1], totals[2], totals[3]), best))
  -- the same groups in the plan's order (G A F B E C D), one by one onto
  -- the least loaded shard, would end at 30+180+130 / 210 / 70+90+160:
  -- 340 against 300
  local naive = {0, 0, 0}
  for _, g in ipairs(groups) do
    local s = 1
    for k = 2, 3 do if naive[k] < naive[s] then s = k end end
    naive[s] = naive[s] + g.estimate
  end
  T.eq(math.max(naive[1], naive[2], naive[3]) > math.max(totals[1], totals[2], totals[3]), true,
       "longest first beats the plan's order: " .. table.concat(naive, " "))
end)

T.case("the split is a function of the cells: the same on every machine, whatever the order of the groups' ties", function()
  local a = {shard.assign(loaded(CELLS), 3)}
  local b = {shard.assign(loaded(CELLS), 3)}
  for id, s in pairs(a[1]) do T.eq(b[1][id], s, id .. ": the same shard twice") end
  -- equal groups: ties go to the group seen first and the lowest shard
  local of = shard.assign(loaded{{"X", 50}, {"Y", 50}, {"Z", 50}, {"W", 50}}, 2)
  T.eq(of["1/X"] .. of["2/Y"] .. of["3/Z"] .. of["4/W"], "1212", "ties in plan order")
end)

T.done()
