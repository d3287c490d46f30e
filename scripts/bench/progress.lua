-- bench.progress: what a running plan shows. On a terminal one line is
-- rewritten in place; elsewhere plain log lines; --quiet only failures;
-- --json one event object per line for machines (docs/results-format.md).
local P = {}

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

-- "1h02m", "4m10s", "12.5s"
function P.duration(s)
  if s == nil or s ~= s or s < 0 or s == math.huge then return "?" end
  if s < 60 then return string.format("%.1fs", s) end
  if s < 3600 then return string.format("%dm%02ds", math.floor(s / 60), math.floor(s % 60)) end
  return string.format("%dh%02dm", math.floor(s / 3600), math.floor(s % 3600 / 60))
end

local function json_line(t)
  return require("bench.results").json_encode(t) .. "\n"
end

-- progress.isatty(fd) -> bool: is this file descriptor (2 = stderr) a terminal?
function P.isatty(fd)
  return require("bench.sys").isatty(fd or 2)
end

-- progress.new{total=, mode=, tty=, out=, json_out=, clock=} -> progress
-- tty = nil in auto mode asks progress.isatty(2).
-- clock: a function returning seconds (tests); default bench.clock.now.
function P.new(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("progress.new: expected a table of options, got " .. type(opts), 2) end
  local mode = opts.mode or "auto"
  if not MODES[mode] then error("progress.new: mode must be auto, tty, plain, quiet or json, got " .. tostring(mode), 2) end
  if mode == "auto" then
    local tty = opts.tty
    if tty == nil then tty = P.isatty(2) end
    mode = tty and "tty" or "plain"
  end
  local self = setmetatable({mode = mode, total = tonumber(opts.total) or 0, out = opts.out or io.stderr,
    json_out = opts.json_out or io.stdout, clock = opts.clock, i = 0, cells_done = 0,
    req_done = 0, req_expected = nil, tokens = 0, cell_tokens = 0, work_done = 0,
    last_draw = -math.huge, last_plain = nil, line_len = 0, cell_sizes = {}}, Progress)
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
  return string.format("[%d/%d] %s  %s  %.1f tok/s  elapsed %s  ETA %s", self.i, self.total,
    tostring(self.cell or ""), req, rate, P.duration(elapsed), P.duration(self:eta()))
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
local function cell_rates(cell)
  local s = type(cell) == "table" and type(cell.summary) == "table" and cell.summary or nil
  if not s then return nil, nil end
  local function num(v)
    if type(v) == "table" then v = v.mean end
    if type(v) == "number" and v == v and v ~= math.huge and v ~= -math.huge then return v end
    return nil
  end
  return num(s.decode_tps), num(s.output_tps)
end
P.cell_rates = cell_rates

-- p:cell_end(cell_id, status, cell)
-- A cell the runner stopped at the memory ceiling is recorded as failed
-- with cell.aborted: it is shown as "aborted".
function Progress:cell_end(cell_id, status, cell)
  status = status or "ok"
  if type(cell) == "table" and cell.aborted and status == "failed" then status = "aborted" end
  self.cells_done = self.cells_done + 1
  self.in_cell = false
  self.req_expected = nil
  local el = now_s(self) - self.cell_t0
  local decode, output = cell_rates(cell)
  if self.mode == "json" then
    self:_emit({event = "cell_end", i = self.i, total = self.total, cell = cell_id, status = status,
                requests = self.req_done, tokens = self.cell_tokens, seconds = el,
                decode_tps = decode, output_tps = output,
                error = cell and cell.error or nil,
                errors = type(cell) == "table" and type(cell.summary) == "table" and cell.summary.errors or nil})
    return
  end
  local rates = {}
  if decode then rates[#rates + 1] = string.format("decode %.1f tok/s", decode) end
  if output then rates[#rates + 1] = string.format("aggregate %.1f tok/s", output) end
  if #rates == 0 then rates[1] = string.format("%d tokens", self.cell_tokens) end
  -- the cell's failed requests by kind, whatever its status
  local errs = type(cell) == "table" and type(cell.summary) == "table" and type(cell.summary.errors) == "table"
               and cell.summary.errors or nil
  local why = cell and (cell.error or cell.warning)
  if not why and errs and (errs.total or 0) > 0 then
    why = string.format("%d failed: %s", errs.total, require("bench.summary").kinds_text(errs.by_kind))
  end
  local msg = string.format("[%d/%d] %s: %s, %d requests, %s, %s%s", self.i, self.total, tostring(cell_id),
    status, self.req_done, table.concat(rates, ", "), P.duration(el),
    why and (" (" .. tostring(why) .. ")") or "")
  if self.mode == "quiet" then
    if status ~= "ok" and status ~= "skipped" then self.out:write(msg, "\n") self.out:flush() end
    return
  end
  self:_clear()
  self.out:write(msg, "\n")
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

-- p:finish(report_path)
function Progress:finish(report)
  local el = self:elapsed()
  if self.mode == "json" then
    self:_emit({event = "finish", report = report, elapsed = el, cells = self.cells_done, tokens = self.tokens})
    return
  end
  self:_clear()
  if self.mode == "quiet" then return end
  self.out:write(string.format("done: %d/%d cells in %s%s\n", self.cells_done, self.total, P.duration(el),
    report and (", report: " .. tostring(report)) or ""))
  self.out:flush()
end

Progress.__tostring = function(self)
  return string.format("bench.progress.Progress (%s, %d/%d cells)", self.mode, self.cells_done, self.total)
end

return P
