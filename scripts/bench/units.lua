-- bench.units: every parse and format of a duration, a size or a rate.
--
-- Parses take what a plan or a server writes ("100ms", "1h30m", "512MiB",
-- "138GB") and return a number or nil and why (the why completes "expected
-- ..." in a plan error). Formats give the short texts benchrun prints; each
-- keeps the exact form its readers (tests, reports, --check) rely on.
local units = {}

-- seconds per unit of a duration
units.DURATION_UNITS = {ns = 1e-9, us = 1e-6, ["µs"] = 1e-6, ms = 1e-3, s = 1, m = 60, min = 60, h = 3600}
-- bytes per unit of a size: KB..TB are powers of 10, KiB..TiB (and K..T) of 2
units.SIZE_UNITS = {
  B = 1, KB = 1e3, MB = 1e6, GB = 1e9, TB = 1e12,
  KiB = 1024, MiB = 1024 ^ 2, GiB = 1024 ^ 3, TiB = 1024 ^ 4,
  K = 1024, M = 1024 ^ 2, G = 1024 ^ 3, T = 1024 ^ 4,
}

local DURATION_WHAT = "a duration such as 100ms, 30s or 5m"
local SIZE_WHAT = "a size such as 512MiB, 2GiB or 138GB"
units.DURATION_WHAT, units.SIZE_WHAT = DURATION_WHAT, SIZE_WHAT

-- units.duration(v) -> seconds (a number) or nil, why[, expected] (expected:
-- what a plan error says was expected, when the unit was wrong). Accepts a number
-- (seconds) or a string such as "100ms", "30s", "1.5m", "2h", "1h30m"
-- (spaces ignored: "5m 12.34s").
function units.duration(v)
  if type(v) == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return nil, "a finite duration" end
    if v < 0 then return nil, "a duration is not negative" end
    return v
  end
  if type(v) ~= "string" then return nil, DURATION_WHAT end
  local s = v:gsub("%s+", "")
  if s == "" then return nil, DURATION_WHAT end
  local total, pos, n = 0, 1, 0
  while pos <= #s do
    -- a unit is letters, or the two bytes of UTF-8 "µ" (not a letter to %a)
    local num, unit, nxt = s:match("^(%d+%.?%d*)([%a\194\181]+)()", pos)
    if not num then num, unit, nxt = s:match("^(%.%d+)([%a\194\181]+)()", pos) end
    if not num then
      -- a bare number is seconds, but only alone ("30", not "1m30")
      if n == 0 and s:match("^%d+%.?%d*$") then return tonumber(s) end
      return nil, DURATION_WHAT
    end
    local f = units.DURATION_UNITS[unit]
    if not f then return nil, string.format("a duration unit (ms, s, m, h), got '%s'", unit), "a duration unit (ms, s, m, h)" end
    total = total + tonumber(num) * f
    pos, n = nxt, n + 1
  end
  return total
end

-- units.size(v) -> bytes (an integer) or nil, why[, expected] (as
-- units.duration). A number is bytes; a
-- string is "512MiB", "2GiB", "138GB" (GB = 10^9, GiB = 2^30).
function units.size(v)
  if math.type(v) == "integer" then
    if v < 0 then return nil, "a size is not negative" end
    return v
  end
  if type(v) == "number" then
    if v ~= v or v < 0 or v >= 2^63 then return nil, SIZE_WHAT end
    return math.tointeger(math.floor(v))
  end
  if type(v) ~= "string" then return nil, SIZE_WHAT end
  local num, unit = v:gsub("%s+", ""):match("^(%d+%.?%d*)(%a*)$")
  if not num then return nil, SIZE_WHAT end
  if unit == "" then unit = "B" end
  local f = units.SIZE_UNITS[unit]
  if not f then return nil, string.format("a size unit (B, KB, MB, GB, KiB, MiB, GiB, TiB), got '%s'", unit), "a size unit (B, KB, MB, GB, KiB, MiB, GiB, TiB)" end
  local b = math.floor(tonumber(num) * f + 0.5)
  if b >= 2^63 then return nil, SIZE_WHAT end
  return math.tointeger(b)
end

-- units.format_duration(seconds) -> "1h 02m", "4m 10s", "3.2s", "250ms"
-- (plan errors and the --check estimate).
function units.format_duration(s)
  if s >= 3600 then return string.format("%dh %02dm", s // 3600, (s % 3600) // 60) end
  if s >= 60 then return string.format("%dm %02ds", s // 60, math.floor(s % 60)) end
  if s >= 1 then return string.format("%.1fs", s) end
  return string.format("%.0fms", s * 1000)
end

-- units.format_elapsed(seconds) -> "1h02m", "4m10s", "12.5s"; "?" when not
-- known (nil, NaN, negative or infinite): the progress line's clock.
function units.format_elapsed(s)
  if s == nil or s ~= s or s < 0 or s == math.huge then return "?" end
  if s < 60 then return string.format("%.1fs", s) end
  if s < 3600 then return string.format("%dm%02ds", math.floor(s / 60), math.floor(s % 60)) end
  return string.format("%dh%02dm", math.floor(s / 3600), math.floor(s % 3600 / 60))
end

-- units.format_ms(seconds) -> "50ms": whole milliseconds, the form the
-- simulator's duration options take.
function units.format_ms(s)
  return string.format("%dms", math.floor(s * 1000 + 0.5))
end

local DECIMAL = {{1e12, "TB"}, {1e9, "GB"}, {1e6, "MB"}, {1e3, "KB"}}

-- units.format_size(bytes) -> "138.0 GB" (decimal units, one decimal, as
-- the seed). With {significant = true}: three significant digits, none past
-- 100 ("5.8 KB", "51.2 MB", "135 GB"), as report.md's tables.
function units.format_size(b, opts)
  local sig = opts and opts.significant
  local a = sig and math.abs(b) or b
  for _, u in ipairs(DECIMAL) do
    if a >= u[1] then
      local q = b / u[1]
      if not sig then return string.format("%.1f %s", q, u[2]) end
      return (math.abs(q) >= 100 and string.format("%.0f", q) or string.format("%.3g", q)) .. " " .. u[2]
    end
  end
  return string.format(sig and "%.0f B" or "%d B", b)
end

-- units.format_rate(x [, unit]) -> "45.7 tok/s": one decimal and the unit
-- (tok/s unless given).
function units.format_rate(x, unit)
  return string.format("%.1f %s", x, unit or "tok/s")
end

return units
