-- A closed-loop concurrency sweep: 1, 2, 4, 8 users each sending their next
-- request when the last ends, one table row per level with the aggregate
-- output tokens/s and its scaling against one user.
--
--   benchrun run examples/concurrency_sweep.lua [URL] [max_tokens]
--
-- Against the simulator (4 slots, 100 tokens/s each, 5% slower per extra
-- sequence in the batch) throughput grows until the slots are full.
local probe = require("bench.probe")
local load = require("bench.load")
local summary = require("bench.summary")
local workload = require("bench.workload")

local srv <close> = probe.target(arg and arg[1], {"--decode-tps", "100", "--slots", "4"})
local max_tokens = tonumber(arg and arg[2]) or 50
local client = assert(probe.client(srv))

local results = load.sweep{
  client = client,
  concurrency = {1, 2, 4, 8},
  requests = 8,                      -- per level
  warmup = 1,
  workload = workload.seed{names = {"medium"}, max_tokens = max_tokens},
  on_level = function(r) io.stderr:write("c=", r.level.concurrency, ": ", summary.line(r.summary), "\n") end,
}
print(summary.table(results))
for _, r in ipairs(results) do if r.summary.ok ~= r.summary.requests then os.exit(1) end end
