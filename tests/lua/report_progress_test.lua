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
  -- the median (p50), as hyperfine shows a benchmark
  T.eq(text:find("[1/2] q4-c1: ok, 4 requests in 4.0s: decode 1500.0 tok/s, aggregate 1414.2 tok/s\n", 1, true) ~= nil, true, "end line: " .. text)
  T.eq(text:find("[2/2] q8-c1: oom, 1 requests in 2.0s: 40 tokens (killed)\n", 1, true) ~= nil, true, "oom line")
  T.eq(text:find("a message\n", 1, true) ~= nil, true, "log")
  T.eq(text:find("done: 2/2 cells in 6.0s\nreport: results/x/report.md\n", 1, true) ~= nil, true, "finish")
  T.eq(text:sub(-#"report: results/x/report.md\n"), "report: results/x/report.md\n", "the report's path is the last line")
end)

T.case("quiet: only failures", function()
  local clock, advance = fake_clock()
  local out = sink()
  local p = progress.new{total = 2, mode = "quiet", out = out, clock = clock}
  run_two_cells(p, advance)
  T.eq(out:text(), "[2/2] q8-c1: oom, 1 requests in 2.0s: 40 tokens (killed)\n", "only the OOM")
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
  T.eq(out:text(), "[1/1] big: aborted, 0 requests in 1.0s: 0 tokens (aborted: memory ceiling)\n", "aborted line")
  local j = progress.new{total = 1, mode = "json", out = out, json_out = jout, clock = clock}
  j:cell_start(1, "big", {})
  j:cell_end("big", "failed", {aborted = "memory ceiling"})
  local last
  for line in jout:text():gmatch("[^\n]+") do last = assert(results.json_decode(line)) end
  T.eq(last.status, "aborted", "json status")
  T.eq(last.decode_tps, nil, "no rate without a summary")
end)

T.case("a cell's line: median ± spread (n=count) of decode and TTFT, as hyperfine shows a benchmark", function()
  local clock, advance = fake_clock()
  local out = sink()
  local p = progress.new{total = 1, tty = false, out = out, clock = clock}
  p:cell_start(1, "mlx-4bit", {requests = 15})
  advance(3)
  p:cell_end("mlx-4bit", "ok", {summary = {requests = 15, ok = 15,
    decode_tps = {n = 15, p50 = 45.7, mean = 45.6, stddev = 0.4}, ttft_ms = {n = 15, p50 = 420.04, stddev = 3.25},
    output_tps = 44.1}})
  p:finish("results/r/report.md")
  local text = out:text()
  T.eq(text:find("[1/1] mlx-4bit: ok, 0 requests in 3.0s: decode 45.7 tok/s ± 0.4 (n=15), TTFT 420.0 ms ± 3.2 (n=15), " ..
                 "aggregate 44.1 tok/s\n", 1, true) ~= nil, true, "cell line: " .. text)
  T.eq(text:find("Warning", 1, true), nil, "no warning for a steady cell")
  T.eq(progress.spread_text({n = 1, p50 = 12, stddev = 0}, "tok/s"), "12.0 tok/s (n=1)", "one value: no spread")
  T.eq(progress.spread_text(7.25, "tok/s"), "7.2 tok/s", "a plain number")
  T.eq(progress.spread_text({n = 0}, "ms"), nil, "nothing measured")
end)

T.case("warnings: a small set of kinds, each with its remedy; counted at the end; the report's path last", function()
  local clock, advance = fake_clock()
  local out, jout = sink(), sink()
  local p = progress.new{total = 2, tty = false, out = out, clock = clock}
  p:cell_start(1, "busy", {})
  advance(1)
  p:cell_end("busy", "degraded", {error = "3 of 10 requests failed", summary = {requests = 10, ok = 7,
    errors = {total = 3, by_kind = {reset = 2, timeout_idle = 1}},
    decode_tps = {n = 7, p50 = 40, stddev = 10}, client_send_delay_ms = {p99 = 4.5},
    flags = {burst = 2}}})
  p:cell_start(2, "calm", {})
  advance(1)
  p:cell_end("calm", "ok", {summary = {requests = 5, ok = 5, decode_tps = {n = 5, p50 = 40, stddev = 10},
    errors = {total = 0, by_kind = {}}}})
  p:finish("results/w/report.md")
  local text = out:text()
  local function has(needle, what) T.eq(text:find(needle, 1, true) ~= nil, true, what .. ": " .. text) end
  has("  Warning (errors): 3 of 10 requests failed (reset ×2, timeout_idle ×1). Check the server's log", "errors")
  has("  Warning (noisy): decode tok/s varies by 25% (standard deviation / median) between requests. " ..
      "Consider warm-ups or more repeats (warmup:, repeat:) on a quiet machine.\n", "noisy")
  has("  Warning (client_delay): the client, not the server, delayed requests (send delay p99 4.5 ms). " ..
      "Lower the concurrency", "client delay")
  has("  Warning (flagged): answers set aside from the figures: burst ×2.", "flagged")
  has("done: 2/2 cells in 2.0s; warnings: client_delay ×1, errors ×1, flagged ×1, noisy ×2\n", "counted at the end")
  T.eq(text:sub(-#"report: results/w/report.md\n"), "report: results/w/report.md\n", "the report's path is the last line")
  for kind in pairs(progress.WARNINGS) do
    T.eq(type(progress.WARNINGS[kind].remedy), "string", kind .. " has a remedy")
  end
  -- --json: the same warnings on the cell_end event, counts on finish
  local j = progress.new{total = 1, mode = "json", out = out, json_out = jout, clock = clock}
  j:cell_start(1, "calm", {})
  j:cell_end("calm", "ok", {summary = {requests = 5, ok = 5, decode_tps = {n = 5, p50 = 40, stddev = 10}}})
  j:finish("results/w/report.md")
  local events = {}
  for line in jout:text():gmatch("[^\n]+") do events[#events + 1] = assert(results.json_decode(line)) end
  T.eq(events[2].warnings[1].kind, "noisy", "json cell_end warning")
  T.eq(events[3].warnings.noisy, 1, "json finish counts")
end)

T.case("a plan run (benchrun process): hyperfine-like cell lines, the report's path as the last line", function()
  local proc = require("bench.proc")
  local dir = T.tmpdir()
  local plan = os.getenv("BENCHRUN_TESTS") .. "/../plans/demo.yaml"
  local r = proc.run{argv = {bench.executable, plan, "--dry-run", "--out", dir}, timeout = 120}
  T.eq(r.code, 0, "exit: " .. r.stderr)
  local lines = {}
  for l in r.stderr:gmatch("[^\n]+") do lines[#lines + 1] = l end
  local last = lines[#lines] or ""
  local path = last:match("^report: (.+/report%.md)$")
  T.eq(path ~= nil, true, "last line names the report: " .. r.stderr)
  T.eq(results.exists(path), true, "the report is there: " .. tostring(path))
  T.eq(r.stderr:match("%[1/2%] sim%-4bit: ok, 10 requests in [%d.]+s: decode [%d.]+ tok/s ± [%d.]+ %(n=10%), " ..
                      "TTFT [%d.]+ ms ± [%d.]+ %(n=10%), aggregate [%d.]+ tok/s\n") ~= nil, true, "cell line: " .. r.stderr)
  T.eq(lines[#lines - 1]:match("^done: 2/2 cells in ") ~= nil, true, "done line before it")
end)

T.case("durations and bad options", function()
  T.eq(progress.duration(12.25), "12.2s", "seconds")
  T.eq(progress.duration(250), "4m10s", "minutes")
  T.eq(progress.duration(3725), "1h02m", "hours")
  T.eq(progress.duration(nil), "?", "unknown")
  T.checkerr("progress.new: mode must be auto, tty, plain, quiet or json", progress.new, {mode = "loud"})
end)

T.done()
