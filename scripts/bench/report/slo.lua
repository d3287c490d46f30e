-- bench.report.slo: report.md's "Service level objectives" section: per
-- cell, each objective of the plan's slo: (target, the cell's value, met)
-- and its goodput, the rate of requests that met every objective by
-- themselves (bench.summary computes both; summary.csv has them too).
local format = require("bench.report.format")
local energy_report = require("bench.report.energy")

local slo = {}

local ms, tps = format.ms, format.tps

-- an objective's figure as the report prints it: latencies in ms (the
-- summary keeps seconds), decode rates in tokens/s
local function figure(key, v)
  if v == nil then return "–" end
  if key:find("decode_tps", 1, true) then return tps(v) .. " tok/s" end
  return ms(v * 1000) .. " ms"
end

-- the objective in words: "TTFT p95 ≤ 2000 ms", "decode rate (every request) ≥ 10 tok/s"
function slo.objective(key, target)
  local metric, stat = key:match("^(.-)_(p%d+%.?%d*)$")
  if not metric then metric, stat = key:match("^(.-)_(mean)$") end
  local min_rate = key == "min_decode_tps"
  if min_rate then metric, stat = "decode_tps", nil end
  metric = metric or key
  local name = metric == "decode_tps" and "decode rate" or metric:upper()
  local which = stat and (" " .. stat) or " (every request)"
  local op = metric == "decode_tps" and "≥" or "≤"
  return string.format("%s%s %s %s", name, which, op, figure(key, target))
end

-- the cells whose summary judged objectives
local function judged(cells)
  local out = {}
  for _, cell in ipairs(cells or {}) do
    if type(cell.summary) == "table" and type(cell.summary.slo) == "table" and next(cell.summary.slo) then
      out[#out + 1] = cell
    end
  end
  return out
end

slo.HEAD = {"Objective", "Value", "Result"}

-- slo.tables(cells) -> one entry per judged cell: {id, name (the id with
-- the throttled mark where the cell ran throttled), verdict ("every
-- objective met" / "objectives missed"), rows ({objective, value, result}
-- texts of slo.HEAD), goodput (a sentence, markdown bold; nil without a
-- count)}. The report.md section and report.html both print these.
function slo.tables(cells)
  local list = {}
  for _, cell in ipairs(judged(cells)) do
    local s = cell.summary
    local keys = {}
    for k in pairs(s.slo) do keys[#keys + 1] = k end
    table.sort(keys)
    local rows = {}
    for _, k in ipairs(keys) do
      local o = s.slo[k]
      rows[#rows + 1] = {slo.objective(k, o.target), figure(k, o.value), o.met and "✅ met" or "❌ missed"}
    end
    local ok, good = tonumber(s.ok) or 0, tonumber(s.good_requests)
    list[#list + 1] = {id = tostring(cell.id), name = energy_report.mark(cell, tostring(cell.id)),   -- throttled: said
      verdict = s.slo_met and "every objective met" or "objectives missed",
      rows = rows, goodput = good and string.format("Goodput: **%s req/s** (%d of %d successful requests met every "
        .. "objective, %.0f%%; %d requests in all).", s.goodput and string.format("%.2f", s.goodput) or "–", good, ok,
        ok > 0 and good / ok * 100 or 0, tonumber(s.requests) or ok) or nil}
  end
  return list
end

-- slo.section(out, cells): appends the section's lines (nothing when no
-- cell was judged against an objective).
function slo.section(out, cells)
  local list = slo.tables(cells)
  if #list == 0 then return end
  out[#out + 1] = "## Service level objectives"
  out[#out + 1] = ""
  for _, t in ipairs(list) do
    out[#out + 1] = string.format("### %s: %s", t.name, t.verdict)
    out[#out + 1] = ""
    out[#out + 1] = format.table(slo.HEAD, t.rows)
    out[#out + 1] = ""
    if t.goodput then
      out[#out + 1] = t.goodput
      out[#out + 1] = ""
    end
  end
end

return slo
