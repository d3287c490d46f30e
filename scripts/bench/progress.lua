-- bench.progress: what a running plan shows. On a terminal one line is
-- rewritten in place; elsewhere plain log lines; --quiet only failures;
-- --json one event object per line for machines (docs/results-format.md).
local progress = {}

local units = require("bench.units")
local util = require("bench.util")

local Progress = {}
Progress.__index = Progress
Progress.__name = "bench.progress.Progress"

local MODES = {auto = true, tty = true, plain = true, quiet = true, json = true}

local function now_s(self)
  if self.clock then return self.clock() end
  local ok, clock = pcall(require, "bench.clock")
  if ok and clock.now then return clock.now() / 1e9 end
  return os.time()
end

-- "1h02m", "4m10s", "12.5s" (bench.units.format_elapsed)
progress.duration = units.format_elapsed

local function json_line(t)
  return require("bench.results").json_encode(t) .. "\n"
end

-- progress.isatty(fd) -> bool: is this file descriptor (2 = stderr) a terminal?
function progress.isatty(fd)
  return require("bench.sys").isatty(fd or 2)
end

-- progress.new{total=, mode=, tty=, out=, json_out=, clock=} -> progress
-- tty = nil in auto mode asks progress.isatty(2).
-- clock: a function returning seconds (tests); default bench.clock.now.
function progress.new(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("progress.new: expected a table of options, got " .. type(opts), 2) end
  local mode = opts.mode or "auto"
  if not MODES[mode] then error("progress.new: mode must be auto, tty, plain, quiet or json, got " .. tostring(mode), 2) end
  if mode == "auto" then
    local tty = opts.tty
    if tty == nil then tty = progress.isatty(2) end
    mode = tty and "tty" or "plain"
  end
  local self = setmetatable({mode = mode, total = tonumber(opts.total) or 0, out = opts.out or io.stderr,
    json_out = opts.json_out or io.stdout, clock = opts.clock, i = 0, cells_done = 0,
    req_done = 0, req_expected = nil, tokens = 0, cell_tokens = 0, work_done = 0,
    last_draw = -math.huge, last_plain = nil, line_len = 0, cell_sizes = {}, warned = {}}, Progress)
  self.t0 = now_s(self)
  self.cell_t0 = self.t0
  return self
end

function Progress:elapsed() return now_s(self) - self.t0 end

-- Remaining time: elapsed per unit of finished work times the work left;
-- a unit is one request when cells say how many they send, else one cell.
function Progress:eta()
  local elapsed = self:elapsed()
  local cell_frac = 0
  if self.req_expected and self.req_expected > 0 then
    cell_frac = math.min(self.req_done / self.req_expected, 1)
  end
  local done = self.cells_done + cell_frac
  if done <= 0 or self.total <= 0 then return nil end
  return elapsed / done * math.max(self.total - done, 0)
end

function Progress:_emit(t)
  t.t = math.floor(self:elapsed() * 1000 + 0.5) / 1000
  self.json_out:write(json_line(t))
  self.json_out:flush()
end

function Progress:_clear()
  if self.mode == "tty" and self.line_len > 0 then
    self.out:write("\r\27[K")
    self.line_len = 0
  end
end

function Progress:status_line()
  local elapsed = self:elapsed()
  local cell_elapsed = now_s(self) - self.cell_t0
  local rate = cell_elapsed > 0 and self.cell_tokens / cell_elapsed or 0
  local req = self.req_expected and string.format("req %d/%d", self.req_done, self.req_expected)
    or string.format("req %d", self.req_done)
  return string.format("[%d/%d] %s  %s  %s  elapsed %s  ETA %s", self.i, self.total,
    tostring(self.cell or ""), req, units.format_rate(rate), units.format_elapsed(elapsed), units.format_elapsed(self:eta()))
end

function Progress:_draw(force)
  local t = now_s(self)
  if self.mode == "tty" then
    if not force and t - self.last_draw < 0.1 then return end
    self.last_draw = t
    local line = self:status_line()
    self.out:write("\r\27[K", line)
    self.out:flush()
    self.line_len = #line
  elseif self.mode == "plain" then
    if not force and self.last_plain and t - self.last_plain < 10 then return end
    self.last_plain = t
    self.out:write(self:status_line(), "\n")
    self.out:flush()
  end
end

-- p:cell_start(i, cell_id, {requests=, labels=})
function Progress:cell_start(i, cell_id, info)
  info = info or {}
  self.i, self.cell = i, cell_id
  self.req_done, self.cell_tokens = 0, 0
  self.in_cell = true
  self.req_expected = tonumber(info.requests)
  self.cell_t0 = now_s(self)
  if self.mode == "json" then
    self:_emit({event = "cell_start", i = i, total = self.total, cell = cell_id, requests = self.req_expected})
  elseif self.mode == "plain" then
    self.out:write(string.format("[%d/%d] %s: started\n", i, self.total, tostring(cell_id)))
    self.out:flush()
    self.last_plain = now_s(self)
  elseif self.mode == "tty" then
    self:_draw(true)
  end
end

-- p:request(rec): one request ended.
function Progress:request(rec)
  rec = rec or {}
  self.req_done = self.req_done + 1
  local toks = tonumber(rec.output_tokens) or 0
  self.tokens = self.tokens + toks
  self.cell_tokens = self.cell_tokens + toks
  if self.mode == "json" then
    local el = now_s(self) - self.cell_t0
    self:_emit({event = "request", cell = self.cell, done = self.req_done, tokens = self.cell_tokens,
                tps = el > 0 and self.cell_tokens / el or 0, ok = rec.ok ~= false and rec.error == nil})
  else
    self:_draw(false)
  end
end

-- The cell's own rates from its summary: decode = mean per-request decode
-- rate, aggregate = output tokens over the measured wall time (what
-- report.md prints). Cell tokens over cell time would count the server's
-- load and the warm-ups and match neither.
local finite = util.finite

local function summary_of(cell)
  return type(cell) == "table" and type(cell.summary) == "table" and cell.summary or nil
end

local function cell_rates(cell)
  local s = summary_of(cell)
  if not s then return nil, nil end
  return util.figure(s.decode_tps), util.figure(s.output_tps)
end
progress.cell_rates = cell_rates

-- "45.7 tok/s ± 0.4 (n=15)": a distribution of the summary ({p50, stddev,
-- n}) as hyperfine shows a benchmark: the median, the spread (the standard
-- deviation of the per-request values) and how many values; a plain number
-- is shown alone.
function progress.spread_text(d, unit)
  if type(d) ~= "table" then
    local v = finite(d)
    return v and string.format("%.1f %s", v, unit) or nil
  end
  local mid = finite(d.p50) or finite(d.mean)
  if not mid then return nil end
  local t = string.format("%.1f %s", mid, unit)
  local n = math.tointeger(d.n)
  if finite(d.stddev) and (n or 2) > 1 then t = t .. string.format(" ± %.1f", d.stddev) end
  if n then t = t .. string.format(" (n=%d)", n) end
  return t
end

-- The kinds of warning a cell can earn, each with its remedy (as hyperfine
-- says "Statistical outliers were detected. Consider re-running ...").
progress.WARNINGS = {
  errors = {remedy = "Check the server's log (server-<cell>.log) and report.md's \"Errors and warnings\"; " ..
                     "lower the concurrency or raise the plan's timeout: if the server is overloaded."},
  noisy = {remedy = "Consider warm-ups or more repeats (warmup:, repeat:) on a quiet machine."},
  client_delay = {remedy = "Lower the concurrency, or run benchrun on a less loaded machine."},
  slow_connect = {remedy = "The server's accept queue overflowed (llama-server listens with a backlog of 5, " ..
                           "and closes the connection after each streamed answer, so warm-ups do not help): " ..
                           "spread the users' starts with the plan's ramp: (e.g. ramp: 1s)."},
  flagged = {remedy = "report.md's \"Errors and warnings\" says which; a whole answer at once has no decode rate: " ..
                      "check that the server streams."},
}
-- decode rates whose spread (stddev / median) is above this are noisy
progress.NOISY = 0.15

-- progress.warnings(cell) -> {{kind, text, remedy}...}: what the console warns of
-- a finished cell (its summary's failed requests, spread, client delay and
-- set-aside answers).
function progress.warnings(cell)
  local s = summary_of(cell)
  local out = {}
  if not s then return out end
  local function add(kind, text) out[#out + 1] = {kind = kind, text = text, remedy = progress.WARNINGS[kind].remedy} end
  local summary = require("bench.summary")
  local errs = type(s.errors) == "table" and s.errors or nil
  if errs and (errs.total or 0) > 0 then
    add("errors", string.format("%d of %d requests failed (%s).", errs.total, s.requests or errs.total,
                                summary.kinds_text(errs.by_kind)))
  end
  -- (one request at a time only: a batch's requests decode at rates that
  -- change as others join and leave it, which is not noise)
  local labels = type(cell.labels) == "table" and cell.labels or {}
  local d = (tonumber(labels.concurrency) or 1) == 1 and type(s.decode_tps) == "table" and s.decode_tps or nil
  local mid = d and (finite(d.p50) or finite(d.mean))
  if mid and mid > 0 and finite(d.stddev) and (d.n or 2) > 1 and d.stddev / mid > progress.NOISY then
    add("noisy", string.format("decode tok/s varies by %.0f%% (standard deviation / median) between requests.",
                               d.stddev / mid * 100))
  end
  for _, w in ipairs(summary.delay_warnings(s)) do add(w.kind, w.text .. ".") end
  local flagged = {}
  for _, f in ipairs(summary.RECORD_FLAGS) do
    local n = type(s.flags) == "table" and s.flags[f]
    if n and n > 0 then flagged[#flagged + 1] = string.format("%s ×%d", f, n) end
  end
  if #flagged > 0 then add("flagged", "answers set aside from the figures: " .. table.concat(flagged, ", ") .. ".") end
  return out
end

-- the cell's line: status, requests and time, then its figures
local function cell_line(self, cell_id, status, cell, el)
  local s = summary_of(cell)
  local figures = {}
  local decode = s and progress.spread_text(s.decode_tps, "tok/s")
  if decode then figures[#figures + 1] = "decode " .. decode end
  local ttft = s and progress.spread_text(s.ttft_ms, "ms")
  if ttft then figures[#figures + 1] = "TTFT " .. ttft end
  local _, output = cell_rates(cell)
  if output then figures[#figures + 1] = "aggregate " .. units.format_rate(output) end
  if #figures == 0 then figures[1] = string.format("%d tokens", self.cell_tokens) end
  local why = type(cell) == "table" and cell.error or nil
  return string.format("[%d/%d] %s: %s, %d requests in %s: %s%s", self.i, self.total, tostring(cell_id),
    status, self.req_done, units.format_elapsed(el), table.concat(figures, ", "), why and (" (" .. tostring(why) .. ")") or "")
end

-- p:cell_end(cell_id, status, cell)
-- A cell the runner stopped at the memory ceiling is recorded as failed
-- with cell.aborted: it is shown as "aborted". Below its line, its
-- warnings (progress.warnings), each with its remedy.
function Progress:cell_end(cell_id, status, cell)
  status = status or "ok"
  if type(cell) == "table" and cell.aborted and status == "failed" then status = "aborted" end
  self.cells_done = self.cells_done + 1
  self.in_cell = false
  self.req_expected = nil
  local el = now_s(self) - self.cell_t0
  local warnings = progress.warnings(cell)
  for _, w in ipairs(warnings) do self.warned[w.kind] = (self.warned[w.kind] or 0) + 1 end
  if self.mode == "json" then
    local decode, output = cell_rates(cell)
    self:_emit({event = "cell_end", i = self.i, total = self.total, cell = cell_id, status = status,
                requests = self.req_done, tokens = self.cell_tokens, seconds = el,
                decode_tps = decode, output_tps = output,
                error = cell and cell.error or nil,
                errors = summary_of(cell) and cell.summary.errors or nil,
                warnings = #warnings > 0 and warnings or nil})
    return
  end
  local msg = cell_line(self, cell_id, status, cell, el)
  if self.mode == "quiet" then
    if status ~= "ok" and status ~= "skipped" then self.out:write(msg, "\n") self.out:flush() end
    return
  end
  self:_clear()
  self.out:write(msg, "\n")
  for _, w in ipairs(warnings) do
    self.out:write(string.format("  Warning (%s): %s %s\n", w.kind, w.text, w.remedy))
  end
  self.out:flush()
end

-- p:log(msg): a message line (never lost under the in-place line).
function Progress:log(msg)
  if self.mode == "json" then self:_emit({event = "log", msg = tostring(msg)}) return end
  if self.mode == "quiet" then return end
  self:_clear()
  self.out:write(tostring(msg), "\n")
  self.out:flush()
  if self.mode == "tty" and self.in_cell then self:_draw(true) end
end

-- p:finish(report_path): how the run went, then the report's path as the
-- last line (what to open next).
function Progress:finish(report)
  local el = self:elapsed()
  local kinds = {}
  for k in pairs(self.warned) do kinds[#kinds + 1] = k end
  table.sort(kinds)
  if self.mode == "json" then
    self:_emit({event = "finish", report = report, elapsed = el, cells = self.cells_done, tokens = self.tokens,
                warnings = #kinds > 0 and self.warned or nil})
    return
  end
  self:_clear()
  if self.mode == "quiet" then return end
  local warned = {}
  for _, k in ipairs(kinds) do warned[#warned + 1] = string.format("%s ×%d", k, self.warned[k]) end
  self.out:write(string.format("done: %d/%d cells in %s%s\n", self.cells_done, self.total, units.format_elapsed(el),
    #warned > 0 and ("; warnings: " .. table.concat(warned, ", ")) or ""))
  if report then self.out:write("report: ", tostring(report), "\n") end
  self.out:flush()
end

Progress.__tostring = function(self)
  return string.format("bench.progress.Progress (%s, %d/%d cells)", self.mode, self.cells_done, self.total)
end

return progress
