-- bench.report.toolcalls: the report.md section "Tool calls, structured
-- output and reasoning budget", one row per cell that had any of them
-- (bench.summary's tools, structured, flags.reasoning_exhausted and the
-- answer-only distributions). report/markdown.lua calls toolcalls.section
-- once; nothing is printed for a run without tool calls or reasoning.
local energy_report = require("bench.report.energy")

local M = {}

local function pct(n, d)
  if not d or d == 0 then return "–" end
  return string.format("%d/%d (%.0f%%)", n, d, 100 * n / d)
end

local function p50(d, fmt)
  if type(d) ~= "table" or type(d.p50) ~= "number" then return "–" end
  return string.format(fmt, d.p50)
end

-- One cell's row, or nil when it had no tool call, structured output or reasoning.
local function row(cell)
  local s = type(cell.summary) == "table" and cell.summary or {}
  local tools, st = s.tools, s.structured
  local exhausted = type(s.flags) == "table" and s.flags.reasoning_exhausted or 0
  if not tools and not st and exhausted == 0 and not s.ttft_any_ms then return nil end
  return {energy_report.mark(cell, tostring(cell.id)),   -- a throttled cell says so in every table
          tools and tostring(tools.answers) or "–",
          tools and pct(tools.args_json, tools.calls) or "–",
          tools and pct(tools.schema_ok, tools.schema_checked) or "–",
          st and pct(st.json, st.answers) or "–",
          st and pct(st.schema_ok, st.answers) or "–",
          exhausted > 0 and pct(exhausted, s.ok or 0) or "0",
          p50(s.ttftc_ms, "%.1f"),
          p50(s.ttft_any_ms, "%.1f"), p50(s.ttft_ms, "%.1f"),
          p50(s.decode_tps, "%.1f"), p50(s.answer_decode_tps, "%.1f")}
end

-- toolcalls.section(out, an, md_table): appends the section's lines to out.
function M.section(out, an, md_table)
  local rows = {}
  for _, cell in ipairs(an.data and an.data.cells or {}) do
    local r = row(cell)
    if r then rows[#rows + 1] = r end
  end
  if #rows == 0 then return end
  out[#out + 1] = "## Tool calls, structured output and reasoning budget"
  out[#out + 1] = ""
  out[#out + 1] = "Per cell (docs/openai.md): answers with a tool call; of their calls, arguments that parse as a JSON " ..
                  "object and that match the offered function's schema; structured-output answers that parse and match " ..
                  "`response_format`'s schema; answers whose reasoning used up `max_tokens` before any answer; p50 of " ..
                  "the first tool-call token, of the first token of any kind (reasoning included) beside the answer's " ..
                  "first token, and of the decode rate over every token beside the answer's own."
  out[#out + 1] = ""
  out[#out + 1] = md_table({"Cell", "Tool-call answers", "Args JSON", "Args match schema", "Structured JSON",
                            "Structured match schema", "Reasoning exhausted", "First tool token ms",
                            "TTFT any ms", "TTFT answer ms", "Decode tok/s", "Answer decode tok/s"}, rows)
  out[#out + 1] = ""
end

return M
