-- bench.summary: one level's records -> the numbers people compare.
--
-- Every distribution comes from a bench.stats histogram (0.05% relative
-- error, mergeable) and is reported as
--   D = {n, p50, p90, p95, p99, mean, stddev, min, max}   (nil when n = 0)
-- Latencies are milliseconds; rates are per second.
local stats = require("bench.stats")
local errors = require("bench.errors")
local units = require("bench.units")

local M = {}

-- The per-request latencies summarised, in the order reports print them.
M.LATENCIES = {"ttft_ms", "ttfb_ms", "ttfr_ms", "tpot_ms", "itl_ms", "e2el_ms"}
-- Open loop adds latencies from the intended send time (see bench.load).
M.SCHEDULED = {"ttft_from_scheduled_ms", "ttfb_from_scheduled_ms", "e2el_from_scheduled_ms",
               "send_lag_ms"}

local function dist(h)
  if h:count() == 0 then return nil end
  local s = h:summary()
  s.n = s.count
  s.count = nil
  return s
end

local finite = require("bench.util").finite

-- summary.error_kind(rec) -> a short stable kind for an error record, from
-- its fields only: rec.error_kind if the client set one (bench.openai sets
-- it on every failed record), "http_<status>" for an HTTP error status, the
-- kind of an error value (bench.errors, or a {err =, kind =} table), else
-- "error": a message string has no kind, and its words are never read (the
-- message stays in rec.error for people).
function M.error_kind(rec)
  if rec.error_kind then return tostring(rec.error_kind) end
  if type(rec.status) == "number" and rec.status >= 400 then return "http_" .. math.tointeger(rec.status) end
  if type(rec.error) == "table" then return errors.kind_of(rec.error) end
  return "error"
end

-- A SLO key: "<metric>_p<NN>" (percentile), "<metric>_mean", or "<metric>"
-- (every request). Metrics: ttft, ttfb, ttfr, tpot, itl, e2el (upper
-- bounds, seconds) and decode_tps (a lower bound, tokens/s).
local function parse_slo_key(k)
  -- min_decode_tps: every request at least this fast (decode_tps's "max" is its minimum)
  if k == "min_decode_tps" then return "decode_tps", "max" end
  local metric, stat = k:match("^(.-)_(p%d+%.?%d*)$")
  if not metric then metric, stat = k:match("^(.-)_(mean)$") end
  if not metric then metric, stat = k, "max" end
  local known = {ttft = true, ttfb = true, ttfr = true, tpot = true, itl = true, e2el = true,
                 decode_tps = true}
  if not known[metric] then
    error("summary.of: slo." .. k .. ": unknown metric " .. string.format("%q", metric) ..
          " (expected ttft, ttfb, ttfr, tpot, itl, e2el or decode_tps, with _pNN or _mean)", 3)
  end
  return metric, stat
end

-- An SLO's time threshold: seconds (a number) or a duration ("2s",
-- "100ms"), read by bench.units.
local function seconds(v, k)
  local s = units.duration(v)
  if s then return s end
  error("summary.of: slo." .. k .. ": expected seconds (a number or \"2s\", \"100ms\"), got " .. tostring(v), 3)
end

-- The value a request is judged on for a metric. Open-loop records are
-- judged from their intended send time (coordinated omission would hide
-- queueing otherwise).
local function request_value(rec, metric)
  if metric == "decode_tps" then return rec.decode_tps end
  if metric == "itl" then
    local m
    for _, v in ipairs(rec.itl_ms or {}) do if not m or v > m then m = v end end
    return m and m / 1e3
  end
  local v = rec[metric .. "_from_scheduled_ms"] or rec[metric .. "_ms"]
  return v and v / 1e3
end

-- Beside the totals, for answers after reasoning or with tool calls
-- (docs/openai.md): the first token of any kind, the answer's own decode
-- rate, the first tool-call token.
M.ANSWER = {"ttft_any_ms", "answer_decode_tps", "ttftc_ms"}

-- Other figures of one request, each summarised as a distribution: its
-- decode rate, its wait in the server's queue, the client's own delay
-- before the wire and a new connection's handshake.
M.PER_REQUEST = {"decode_tps", "queue_ms", "client_send_delay_ms", "connect_ms"}

-- the one-value-per-record figures: each a histogram of its finite values >= 0
local SCALARS = {M.SCHEDULED, M.PER_REQUEST, M.ANSWER}

-- every figure that has a histogram, in one list for stats.add_fields
local HISTOGRAM_FIELDS = {}
for _, k in ipairs(M.LATENCIES) do HISTOGRAM_FIELDS[#HISTOGRAM_FIELDS + 1] = k end
for _, list in ipairs(SCALARS) do
  for _, k in ipairs(list) do HISTOGRAM_FIELDS[#HISTOGRAM_FIELDS + 1] = k end
end

-- The histograms of a summary, empty.
local function new_histograms()
  local hs = {}
  for _, k in ipairs(HISTOGRAM_FIELDS) do hs[k] = stats.histogram() end
  return hs
end

-- One successful, measured record into the histograms: its finite values
-- >= 0, and each of its itl_ms (in C: one call per field cost ~0.5 µs each).
local function add_to_histograms(hs, r)
  stats.add_fields(hs, HISTOGRAM_FIELDS, r)
end

-- summary.histograms(records) -> {ttft_ms = h, ..., decode_tps = h} of the
-- successful, non-warm-up records (for merging across levels or repeats).
function M.histograms(records)
  local hs = new_histograms()
  for _, r in ipairs(records) do
    if r.ok and not r.warmup then add_to_histograms(hs, r) end
  end
  return hs
end


-- The flags a successful record may carry (docs/openai.md): its answer
-- came, but a figure of it is not what it seems.
--   burst           every token arrived at once: no decode rate, no ITL
--   token_mismatch  the server's token count contradicts what arrived
--   invalid_utf8    the text had invalid UTF-8 (replaced when stored)
--   prompt_truncated  the server cut the prompt without an error
--   reasoning_exhausted  max_tokens ran out in the reasoning, before any answer
--   tool_args_invalid  a tool call's arguments are not a JSON object
--   tool_args_split_utf8  a tool call's argument pieces split a UTF-8 character
--   schema_mismatch  tool arguments or structured output do not match the schema
M.RECORD_FLAGS = {"burst", "token_mismatch", "invalid_utf8", "prompt_truncated",
                  "reasoning_exhausted", "tool_args_invalid", "tool_args_split_utf8", "schema_mismatch"}

-- A cell whose client_send_delay_ms p99 is above this is flagged: its
-- requests waited in the client before the wire (docs/stats.md).
M.CLIENT_DELAY_WARN_MS = 1

-- A cell whose new connections' connect_ms p99 is above this is flagged:
-- the server was slow to accept them (a SYN its full accept queue dropped
-- is retried after 1 s; the latencies, which start on the wire, do not
-- show that wait).
M.SLOW_CONNECT_WARN_MS = 200

-- summary.delay_warnings(s) -> {{kind, text}...}: the waits before the wire
-- a cell's summary shows (the console's and report.md's words, one place)
function M.delay_warnings(s)
  local out = {}
  local delay = type(s.client_send_delay_ms) == "table" and finite(s.client_send_delay_ms.p99)
  if delay and delay > M.CLIENT_DELAY_WARN_MS then
    out[#out + 1] = {kind = "client_delay",
                     text = string.format("the client, not the server, delayed requests (send delay p99 %.1f ms)", delay)}
  end
  local connect = type(s.connect_ms) == "table" and finite(s.connect_ms.p99)
  if connect and connect > M.SLOW_CONNECT_WARN_MS then
    out[#out + 1] = {kind = "slow_connect", text = string.format("the server was slow to accept connections " ..
      "(connect p99 %.1f ms, max %.1f ms; not in TTFT, which starts on the wire)", connect,
      finite(s.connect_ms.max) or connect)}
  end
  return out
end

-- summary.verdict(s, {max_error_rate = 0}) -> status, reason: what a cell
-- whose measured requests summarise to `s` is.
--   failed    no measured request, or none succeeded
--   degraded  the share of failed requests is above max_error_rate (default
--             0: any failed measured request)
--   ok        otherwise
-- reason names the error kinds and their counts ("reset ×5").
function M.verdict(s, opts)
  local limit = opts and opts.max_error_rate or 0
  if (s.requests or 0) == 0 then return "failed", "no request was measured" end
  local errors = s.errors and s.errors.total or 0
  local kinds = M.kinds_text(s.errors and s.errors.by_kind)
  if (s.ok or 0) == 0 then
    return "failed", string.format("no request succeeded (%d of %d failed: %s)", errors, s.requests, kinds)
  end
  local rate = errors / s.requests
  if rate > limit then
    return "degraded", string.format("%d of %d requests failed (%s), above max_error_rate %g",
                                     errors, s.requests, kinds, limit)
  end
  return "ok", errors > 0 and string.format("%d of %d requests failed (%s), within max_error_rate %g",
                                              errors, s.requests, kinds, limit) or nil
end

-- "reset ×3, timeout_idle ×1": error kinds by count, most first
function M.kinds_text(by_kind)
  local list = {}
  for k, n in pairs(by_kind or {}) do list[#list + 1] = {k, n} end
  table.sort(list, function(a, b) if a[2] ~= b[2] then return a[2] > b[2] end return a[1] < b[1] end)
  local parts = {}
  for _, x in ipairs(list) do parts[#parts + 1] = string.format("%s ×%d", x[1], x[2]) end
  return table.concat(parts, ", ")
end

-- summary.of(records, {slo = {ttft_p95 = 2.0, tpot_p95 = "100ms", ...},
-- wall_s = s?, by_name = true}) -> the summary of one level (warm-up
-- records are left out):
--   requests, ok, errors = {total, by_kind = {kind = n}}, wall_s,
--   ttft_ms, ttfb_ms, ttfr_ms, tpot_ms, itl_ms, e2el_ms = D,
--   ttft_from_scheduled_ms, e2el_from_scheduled_ms, send_lag_ms = D (open loop),
--   decode_tps = D (per request), output_tokens_total, prompt_tokens_total,
--   output_tps (aggregate over wall_s), request_throughput (ok req/s),
--   fairness = {jain (of per-request decode tps), p99_p50 (of tpot)},
--   goodput (req/s meeting every SLO), slo = {key = {target, value, met}},
--   slo_met (every SLO met), token_sources = {usage = n, ...},
--   finish_reasons = {stop = n, ...}, flags = {burst = n, ...} (when any),
--   by_name = {name = <reduced summary>} (2 to MAX_BY_NAME names).
-- wall_s defaults to the span of the records' send and end times.
function M.of(records, opts)
  local acc = M.accumulator(opts)
  for _, r in ipairs(records) do acc:add(r) end
  return acc:result(opts and opts.wall_s)
end

-- The SLO thresholds of opts.slo, checked once: {{key, metric, stat, target}}.
local function slo_checks(slo)
  local checks, keys = {}, {}
  for k in pairs(slo or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local metric, stat = parse_slo_key(k)
    local target = metric == "decode_tps" and tonumber(slo[k]) or seconds(slo[k], k)
    if not target then error("summary.of: slo." .. k .. ": expected a number", 3) end
    checks[#checks + 1] = {key = k, metric = metric, stat = stat, target = target}
  end
  return checks
end

-- Whether one record meets every threshold by itself (goodput).
local function meets_all(r, checks)
  for _, c in ipairs(checks) do
    local v = request_value(r, c.metric)
    if v == nil then return false end
    if c.metric == "decode_tps" then
      if v < c.target then return false end
    elseif v > c.target then
      return false
    end
  end
  return true
end

-- Tool calls and structured output (bench.toolcall's fields), counted per
-- summary: tools = {answers, calls, args_json, schema_checked, schema_ok},
-- structured = {answers, json, schema_ok}; absent when no answer had any.
local function add_tools(s, r)
  if type(r.tool_calls) == "table" then
    local t = s.tools or {answers = 0, calls = 0, args_json = 0, schema_checked = 0, schema_ok = 0}
    s.tools = t
    t.answers = t.answers + 1
    for _, c in ipairs(r.tool_calls) do
      t.calls = t.calls + 1
      if c.arguments_json then t.args_json = t.args_json + 1 end
      if c.schema_ok ~= nil then t.schema_checked = t.schema_checked + 1 end
      if c.schema_ok then t.schema_ok = t.schema_ok + 1 end
    end
  end
  if type(r.structured) == "table" then
    local t = s.structured or {answers = 0, json = 0, schema_ok = 0}
    s.structured = t
    t.answers = t.answers + 1
    if r.structured.json then t.json = t.json + 1 end
    if r.structured.schema_ok then t.schema_ok = t.schema_ok + 1 end
  end
end

local Acc = {}
Acc.__index = Acc

-- by_name is kept for workloads of up to this many prompt names
M.MAX_BY_NAME = 64

-- summary.accumulator(opts) -> acc: the same summary as summary.of, built
-- as records arrive (acc:add(rec)), in memory that does not grow with their
-- number: counts, sums and mergeable histograms, never the records (opts:
-- slo, by_name as for summary.of). acc:result(wall_s?) -> the summary.
function M.accumulator(opts)
  opts = opts or {}
  local checks = slo_checks(opts.slo)
  return setmetatable({opts = opts, checks = checks, hs = new_histograms(),
    s = {requests = 0, ok = 0, errors = {total = 0, by_kind = {}}, output_tokens_total = 0,
         prompt_tokens_total = 0, token_sources = {}, finish_reasons = {}},
    tps_n = 0, tps_sum = 0, tps_sum2 = 0, good = 0, t0 = nil, t1 = nil,
    names = {}, by_name = {}}, Acc)
end

function Acc:add(r)
  if r.warmup then return end
  local s = self.s
  s.requests = s.requests + 1
  -- the span of the records: first (scheduled) send to last end
  local t0 = r.t_scheduled_ns or r.t_sent_ns
  if t0 and r.t_sent_ns and r.t_sent_ns < t0 then t0 = r.t_sent_ns end
  if t0 then
    if not self.t0 or t0 < self.t0 then self.t0 = t0 end
    local e = r.t_end_ns or (r.t_sent_ns and finite(r.e2el_ms) and r.t_sent_ns + math.floor(r.e2el_ms * 1e6))
    if e and (not self.t1 or e > self.t1) then self.t1 = e end
  end
  if r.ok then
    s.ok = s.ok + 1
    if finite(r.output_tokens) then s.output_tokens_total = s.output_tokens_total + r.output_tokens end
    if finite(r.prompt_tokens) then s.prompt_tokens_total = s.prompt_tokens_total + r.prompt_tokens end
    if finite(r.decode_tps) then
      self.tps_n, self.tps_sum, self.tps_sum2 = self.tps_n + 1, self.tps_sum + r.decode_tps,
                                                self.tps_sum2 + r.decode_tps * r.decode_tps
    end
    local src = r.token_source or "unknown"
    s.token_sources[src] = (s.token_sources[src] or 0) + 1
    local fr = r.finish_reason or "unknown"
    s.finish_reasons[fr] = (s.finish_reasons[fr] or 0) + 1
    -- answers that arrived but whose figures cannot be trusted as they are
    for _, f in ipairs(M.RECORD_FLAGS) do
      if r[f] then
        s.flags = s.flags or {}
        s.flags[f] = (s.flags[f] or 0) + 1
      end
    end
    add_tools(s, r)
    add_to_histograms(self.hs, r)
    if #self.checks > 0 and meets_all(r, self.checks) then self.good = self.good + 1 end
  else
    s.errors.total = s.errors.total + 1
    local kind = M.error_kind(r)
    s.errors.by_kind[kind] = (s.errors.by_kind[kind] or 0) + 1
  end
  if self.opts.by_name ~= false and not self.too_many_names then
    local n = r.name or "?"
    local g = self.by_name[n]
    if not g then
      if #self.names >= M.MAX_BY_NAME then
        -- a workload of distinct prompts (a ShareGPT file): no per-name
        -- table, and no memory that grows with the number of prompts
        self.too_many_names, self.by_name, self.names = true, {}, {}
        return
      end
      g = M.accumulator{by_name = false}
      self.by_name[n] = g
      self.names[#self.names + 1] = n
    end
    g:add(r)
  end
end

function Acc:result(wall_s)
  local s, hs = {}, self.hs
  for k, v in pairs(self.s) do s[k] = v end
  for k, h in pairs(hs) do s[k] = dist(h) end
  local wall = wall_s
  if not wall and self.t0 and self.t1 and self.t1 > self.t0 then wall = (self.t1 - self.t0) / 1e9 end
  s.wall_s = wall
  if wall and wall > 0 then
    s.output_tps = s.output_tokens_total / wall
    s.request_throughput = s.ok / wall
  end
  -- Jain's index of per-request decode rates, (sum x)^2 / (n sum x^2)
  s.fairness = {jain = self.tps_n > 0 and self.tps_sum2 > 0 and
                       self.tps_sum * self.tps_sum / (self.tps_n * self.tps_sum2) or nil}
  if s.tpot_ms and s.tpot_ms.p50 > 0 then s.fairness.p99_p50 = s.tpot_ms.p99 / s.tpot_ms.p50 end

  if #self.checks > 0 then
    s.slo = {}
    local all_met = true
    for _, c in ipairs(self.checks) do
      local metric, stat = c.metric, c.stat
      -- The level-wide check: the percentile (or mean, or max) of the metric.
      local h = metric == "decode_tps" and hs.decode_tps or
        (hs[metric .. "_from_scheduled_ms"] and hs[metric .. "_from_scheduled_ms"]:count() > 0 and
         hs[metric .. "_from_scheduled_ms"]) or hs[metric .. "_ms"]
      local value
      if h:count() > 0 then
        if stat == "mean" then value = h:mean()
        elseif stat == "max" then value = metric == "decode_tps" and h:min() or h:max()
        else
          local p = tonumber(stat:sub(2))
          value = metric == "decode_tps" and h:percentile(100 - p) or h:percentile(p)
        end
        if metric ~= "decode_tps" then value = value / 1e3 end
      end
      local met = value ~= nil and (metric == "decode_tps" and value >= c.target or
                                    metric ~= "decode_tps" and value <= c.target)
      s.slo[c.key] = {target = c.target, value = value, met = met}
      if not met then all_met = false end
    end
    s.slo_met = all_met and s.ok > 0
    -- Goodput: successful requests that meet every threshold by themselves.
    s.good_requests = self.good
    if wall and wall > 0 then s.goodput = self.good / wall end
  end

  if #self.names > 1 then
    s.by_name = {}
    for _, n in ipairs(self.names) do
      local g = self.by_name[n]:result(wall)
      s.by_name[n] = {requests = g.requests, ok = g.ok, ttft_ms = g.ttft_ms, tpot_ms = g.tpot_ms,
                      e2el_ms = g.e2el_ms, decode_tps = g.decode_tps,
                      output_tokens_total = g.output_tokens_total}
    end
  end
  return s
end

-- summary.scaling(s, base) -> {output_tps, request_throughput, decode_tps_p50,
-- ttft_p50} as ratios of s to the base level (nil where either is missing).
function M.scaling(s, base)
  local function ratio(a, b) if finite(a) and finite(b) and b ~= 0 then return a / b end end
  return {
    output_tps = ratio(s.output_tps, base.output_tps),
    request_throughput = ratio(s.request_throughput, base.request_throughput),
    decode_tps_p50 = ratio(s.decode_tps and s.decode_tps.p50, base.decode_tps and base.decode_tps.p50),
    ttft_p50 = ratio(s.ttft_ms and s.ttft_ms.p50, base.ttft_ms and base.ttft_ms.p50),
  }
end

-- summary.fmt(v [, digits]) -> v with digits decimals (1 unless given), "-"
-- when it is not a finite number
local function fmt(v, digits)
  if not finite(v) then return "-" end
  return string.format("%." .. (digits or 1) .. "f", v)
end
M.fmt = fmt

-- summary.line(s) -> one line for humans:
-- "12/12 ok  ttft p50 103.2 ms p99 140.1  tpot p50 20.1 ms  out 190.3 tok/s  4.1 req/s"
function M.line(s)
  local parts = {string.format("%d/%d ok", s.ok, s.requests)}
  if s.ttft_ms then parts[#parts + 1] = string.format("ttft p50 %s ms p99 %s", fmt(s.ttft_ms.p50), fmt(s.ttft_ms.p99)) end
  if s.tpot_ms then parts[#parts + 1] = string.format("tpot p50 %s ms", fmt(s.tpot_ms.p50)) end
  parts[#parts + 1] = string.format("out %s tok/s", fmt(s.output_tps))
  parts[#parts + 1] = string.format("%s req/s", fmt(s.request_throughput, 2))
  if s.errors.total > 0 then
    local kinds = {}
    for k, n in pairs(s.errors.by_kind) do kinds[#kinds + 1] = k .. "=" .. n end
    table.sort(kinds)
    parts[#parts + 1] = "errors " .. table.concat(kinds, ",")
  end
  return table.concat(parts, "  ")
end

-- summary.table(results, columns?) -> a plain-text table, one row per
-- level result (as returned by bench.load), for printing.
function M.table(results, columns)
  columns = columns or {
    {"level", function(r) return r.level.concurrency and ("c=" .. r.level.concurrency) or
                                  ("rate=" .. fmt(r.level.rate, 2)) end},
    {"ok", function(r) return r.summary.ok .. "/" .. r.summary.requests end},
    {"ttft p50", function(r) return fmt(r.summary.ttft_ms and r.summary.ttft_ms.p50) end},
    {"ttft p99", function(r) return fmt(r.summary.ttft_ms and r.summary.ttft_ms.p99) end},
    {"tpot p50", function(r) return fmt(r.summary.tpot_ms and r.summary.tpot_ms.p50) end},
    {"tok/s/req", function(r) return fmt(r.summary.decode_tps and r.summary.decode_tps.p50) end},
    {"out tok/s", function(r) return fmt(r.summary.output_tps) end},
    {"req/s", function(r) return fmt(r.summary.request_throughput, 2) end},
    {"scaling", function(r) return r.summary.scaling and fmt(r.summary.scaling.output_tps, 2) or "-" end},
  }
  local rows = {{}}
  for c, col in ipairs(columns) do rows[1][c] = col[1] end
  for _, r in ipairs(results) do
    local row = {}
    for c, col in ipairs(columns) do row[c] = tostring(col[2](r)) end
    rows[#rows + 1] = row
  end
  local width = {}
  for _, row in ipairs(rows) do
    for c, v in ipairs(row) do width[c] = math.max(width[c] or 0, utf8.len(v) or #v) end
  end
  local out = {}
  for i, row in ipairs(rows) do
    local cells = {}
    for c, v in ipairs(row) do
      local pad = string.rep(" ", width[c] - (utf8.len(v) or #v))
      cells[c] = c == 1 and (v .. pad) or (pad .. v)
    end
    out[#out + 1] = table.concat(cells, "  ")
    if i == 1 then
      local rule = {}
      for c in ipairs(row) do rule[c] = string.rep("-", width[c]) end
      out[#out + 1] = table.concat(rule, "  ")
    end
  end
  return table.concat(out, "\n")
end

return M
