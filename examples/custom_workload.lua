-- A custom workload and a per-token callback.
--
-- The workload is any object with :next(i) -> request; here a function
-- builds prompts that ask for lists of growing length. The on_event
-- callback runs for every streamed event of every request (it costs
-- nothing when not given) with the event (its arrival time `t` in ns,
-- taken in C before parsing, and the `content` it added) and the request's
-- index: here it measures the gaps between a request's content events and
-- counts those longer than 3x the median.
--
--   benchrun run examples/custom_workload.lua [URL]
local probe = require("bench.probe")
local load = require("bench.load")
local workload = require("bench.workload")

local srv <close> = probe.target(arg and arg[1], {"--decode-tps", "200", "--slots", "2"})
local client = assert(probe.client(srv))

local topics = {"rivers", "mountains", "programming languages", "birds"}
local w = workload.new("lists", function(i)
  local n = 3 + (i - 1) % 4 * 2
  return {name = "list-" .. n, max_tokens = 8 * n,
          prompt = string.format("List %d %s, one a line.", n, topics[(i - 1) % #topics + 1])}
end)

local events, last, gaps = 0, {}, {}
local res = load.closed{
  client = client, concurrency = 2, requests = 8, workload = w,
  on_event = function(ev, i)
    -- one call per streamed event; keep it cheap
    events = events + 1
    if ev.content then
      if last[i] then gaps[#gaps + 1] = (ev.t - last[i]) / 1e6 end
      last[i] = ev.t
    end
  end,
}

table.sort(gaps)
local median = gaps[#gaps // 2 + 1] or 0
local slow = 0
for _, g in ipairs(gaps) do if g > 3 * median then slow = slow + 1 end end

print(string.format("%d requests, %d events seen by on_event, median gap %.2f ms, %d gaps > 3x median",
                    res.summary.requests, events, median, slow))
for _, r in ipairs(res.records) do
  print(string.format("  %-8s %4s tokens  ttft %6.1f ms  %6.1f tok/s", r.name, tostring(r.output_tokens),
                      r.ttft_ms or 0 / 0, r.decode_tps or 0 / 0))
end
print(require("bench.summary").line(res.summary))
if res.summary.ok ~= res.summary.requests or events == 0 then os.exit(1) end
