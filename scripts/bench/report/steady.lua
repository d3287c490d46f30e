-- bench.report.steady: report.md's "Run length" section: for each cell
-- that ran until steady (requests: auto, duration: auto) or warmed up
-- until TTFT stopped falling (warmup: auto), why it stopped (bench.steady).
local steady = {}

-- steady.lines(cells) -> the section's items, markdown ("**cell**,
-- warm-up: ...", "**cell**: ..."): report.md and report.html print them
function steady.lines(cells)
  local lines = {}
  for _, c in ipairs(cells or {}) do
    if type(c.warmup_auto) == "table" and c.warmup_auto.text then
      lines[#lines + 1] = string.format("**%s**, warm-up: %s.", tostring(c.id), c.warmup_auto.text)
    end
    for rep, s in ipairs(type(c.steady) == "table" and c.steady or {}) do
      if type(s) == "table" and s.text then
        lines[#lines + 1] = string.format("**%s**%s: %s.", tostring(c.id),
          #c.steady > 1 and string.format(", repeat %d", rep) or "", s.text)
      end
    end
  end
  return lines
end

-- steady.section(out, cells): appends the section (nothing when no cell
-- decided its own length)
function steady.section(out, cells)
  local lines = steady.lines(cells)
  if #lines == 0 then return end
  out[#out + 1] = "## Run length"
  out[#out + 1] = ""
  for _, l in ipairs(lines) do out[#out + 1] = "- " .. l end
  out[#out + 1] = ""
end

return steady
