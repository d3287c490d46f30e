-- bench.progress: the in-place line, plain lines, quiet, JSON events.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local progress = require("bench.progress")
local results = require("bench.results")

local function sink()
  local s = {buf = {}}
  function s:write(...) for _, x in ipairs({...}) do self.buf[#self.buf + 1] = tostring(x) end return self end
  function s:flush() return self end
  function s:text() return table.concat(self.buf) end
  return s
end

-- a clock the test moves by hand (seconds)
local function fake_clock()
  local t = 100
  return function() return t end, function(dt) t = t + dt end
end

local function run_two_cells(p, advance)
  p:cell_start(1, "q4-c1", {requests = 4})
  for _ = 1, 4 do advance(1) p:request{output_tokens = 50} end
  -- the cell's own rates (its summary), not tokens over the cell's time
  p:cell_end("q4-c1", "ok", {summary = {decode_tps = {mean = 1499.6, p50 = 1500}, output_tps = 1414.25}})
  p:cell_start(2, "q8-c1", {requests = 4})
  advance(2)
  p:request{output_tokens = 40}
  p:log("a message")
  p:cell_end("q8-c1", "oom", {error = "killed"})
  p:finish("results/x/report.md")
end

T.case("tty: one line rewritten in place, with rate and ETA", function()
  local clock, advance = fake_clock()
  local out = sink()
  local p = progress.new{total = 2, tty = true, out = out, clock = clock}
  T.eq(p.mode, "tty", "auto picks tty on a terminal")
  p:cell_start(1, "q4-c1", {requests = 4})
  advance(2)
  p:request{output_tokens = 100}
  -- 1 of 4 requests of cell 1 of 2 in 2 s: 0.125 of the work, 14 s left
  T.eq(p:status_line(), "[1/2] q4-c1  req 1/4  50.0 tok/s  elapsed 2.0s  ETA 14.0s", "status line")
  local text = out:text()
  T.eq(text:find("\r\27[K[1/2] q4-c1  req 1/4", 1, true) ~= nil, true, "drawn in place: " .. text)
  T.eq(text:find("\n", 1, true), nil, "no newline while a cell runs")
  p:cell_end("q4-c1", "ok")
  T.eq(out:text():sub(-1), "\n", "a cell's end is a kept line")
  p:log("between cells")
  T.eq(out:text():sub(-14), "between cells\n", "no status line redrawn between cells")
end)

T.case("plain: log lines, no escape sequences", function()
  local clock, advance = fake_clock()
  local out = sink()
  local p = progress.new{total = 2, tty = false, out = out, clock = clock}
  T.eq(p.mode, "plain", "auto picks plain off a terminal")
  run_two_cells(p, advance)
  local text = out:text()
  T.eq(text:find("\27", 1, true), nil, "no escapes")
  T.eq(text:find("[1/2] q4-c1: started\n", 1, true) ~= nil, true, "start line")
  T.eq(text:find("[1/2] q4-c1: ok, 4 requests, decode 1499.6 tok/s, aggregate 1414.2 tok/s, 4.0s\n", 1, true) ~= nil, true, "end line: " .. text)
  T.eq(text:find("[2/2] q8-c1: oom, 1 requests, 40 tokens, 2.0s (killed)\n", 1, true) ~= nil, true, "oom line")
  T.eq(text:find("a message\n", 1, true) ~= nil, true, "log")
  T.eq(text:find("done: 2/2 cells in 6.0s, report: results/x/report.md\n", 1, true) ~= nil, true, "finish")
end)

T.case("quiet: only failures", function()
  local clock, advance = fake_clock()
  local out = sink()
  local p = progress.new{total = 2, mode = "quiet", out = out, clock = clock}
  run_two_cells(p, advance)
  T.eq(out:text(), "[2/2] q8-c1: oom, 1 requests, 40 tokens, 2.0s (killed)\n", "only the OOM")
end)

T.case("json: one event per line", function()
  local clock, advance = fake_clock()
  local out, jout = sink(), sink()
  local p = progress.new{total = 2, mode = "json", out = out, json_out = jout, clock = clock}
  run_two_cells(p, advance)
  T.eq(out:text(), "", "nothing on the log stream")
  local events = {}
  for line in jout:text():gmatch("[^\n]+") do events[#events + 1] = assert(results.json_decode(line)) end
  T.eq(events[1].event, "cell_start", "first")
  T.eq(events[1].total, 2, "total")
  T.eq(events[2].event, "request", "request event")
  T.eq(events[2].tokens, 50, "tokens")
  T.eq(events[6].event, "cell_end", "cell end")
  T.eq(events[6].status, "ok", "status")
  T.near(events[6].seconds, 4, 1e-9, "seconds")
  T.near(events[6].decode_tps, 1499.6, 1e-9, "decode_tps from the summary")
  T.near(events[6].output_tps, 1414.25, 1e-9, "output_tps from the summary")
  local last = events[#events]
  T.eq(last.event, "finish", "finish last")
  T.eq(last.report, "results/x/report.md", "report path")
  T.near(last.elapsed, 6, 1e-9, "elapsed")
  local kinds = {}
  for _, e in ipairs(events) do kinds[e.event] = (kinds[e.event] or 0) + 1 end
  T.eq(kinds.log, 1, "log event")
  T.eq(kinds.request, 5, "request events")
end)

T.case("a cell stopped at the memory ceiling shows as aborted", function()
  local clock, advance = fake_clock()
  local out, jout = sink(), sink()
  local p = progress.new{total = 1, mode = "quiet", out = out, clock = clock}
  p:cell_start(1, "big", {})
  advance(1)
  p:cell_end("big", "failed", {aborted = "memory ceiling", error = "aborted: memory ceiling"})
  T.eq(out:text(), "[1/1] big: aborted, 0 requests, 0 tokens, 1.0s (aborted: memory ceiling)\n", "aborted line")
  local j = progress.new{total = 1, mode = "json", out = out, json_out = jout, clock = clock}
  j:cell_start(1, "big", {})
  j:cell_end("big", "failed", {aborted = "memory ceiling"})
  local last
  for line in jout:text():gmatch("[^\n]+") do last = assert(results.json_decode(line)) end
  T.eq(last.status, "aborted", "json status")
  T.eq(last.decode_tps, nil, "no rate without a summary")
end)

T.case("durations and bad options", function()
  T.eq(progress.duration(12.25), "12.2s", "seconds")
  T.eq(progress.duration(250), "4m10s", "minutes")
  T.eq(progress.duration(3725), "1h02m", "hours")
  T.eq(progress.duration(nil), "?", "unknown")
  T.checkerr("progress.new: mode must be auto, tty, plain, quiet or json", progress.new, {mode = "loud"})
end)

T.done()
