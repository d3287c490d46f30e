-- bench.report.format: how report.md writes numbers, sizes, statuses and
-- tables. The report's sections and a phase script's own sections (its
-- `report` hook, docs/phases.md) share these, so a figure reads the same
-- wherever it is printed.
local units = require("bench.units")

local format = {}

-- ------------------------------------------------------------ formatting
local function cellv(s) return (tostring(s):gsub("|", "\\|"):gsub("\n", " ")) end

function format.table(headers, rows, align)
  local out = {}
  out[#out + 1] = "| " .. table.concat(headers, " | ") .. " |"
  local sep = {}
  for i = 1, #headers do
    local a = align and align[i] or (i == 1 and "l" or "r")
    sep[i] = a == "l" and "---" or "---:"
  end
  out[#out + 1] = "|" .. table.concat(sep, "|") .. "|"
  for _, r in ipairs(rows) do
    local cells = {}
    for i = 1, #headers do cells[i] = cellv(r[i] == nil and "" or r[i]) end
    out[#out + 1] = "| " .. table.concat(cells, " | ") .. " |"
  end
  return table.concat(out, "\n")
end

local function dash(x, f) if x == nil then return "–" end return f(x) end
local function ms(x) return dash(x, function(v) return v >= 100 and string.format("%.0f", v) or string.format("%.1f", v) end) end
local function tps(x) return dash(x, function(v) return string.format("%.1f", v) end) end
local function gb(x)
  return dash(x, function(v)
    local g = v / 1e9
    if g ~= 0 and math.abs(g) < 1 then return string.format("%.3g", g) end
    return string.format("%.1f", g)
  end)
end
-- A size with a unit that suits it: 5.8 KB, 51.2 MB, 135 GB (powers of 10, as the tables' GB).
local function size(x)
  return dash(x, function(v) return units.format_size(v, {significant = true}) end)
end
local function secs(x) return dash(x, function(v) return v >= 100 and string.format("%.0f", v) or string.format("%.1f", v) end) end
local function pct(x) return dash(x, function(v) return string.format("%+.1f%%", v) end) end
local function ratio(x) return dash(x, function(v) return string.format("%.2f×", v) end) end
local function num2(x) return dash(x, function(v) return string.format("%.2f", v) end) end
format.fmt = {ms = ms, tps = tps, gb = gb, secs = secs, pct = pct, ratio = ratio, size = size, num2 = num2}

-- A server's peak memory is its host memory plus its GPU memory. Where the
-- driver had no per-process figures the GPU part is the devices' whole used
-- memory (other processes' too): such a peak is marked †, and gpu_note says so.
local function device_gpu(m) return m.gpu_source == "nvml-device" or m.gpu_source == "iokit-device" end
local function peak_gb(m) return gb(m.peak_bytes) .. (m.peak_bytes and device_gpu(m) and " †" or "") end
local function gpu_note(an)
  local any, dev = false, false
  for _, c in ipairs(an.configs) do
    if c.metrics.gpu_source then any = true end
    if device_gpu(c.metrics) then dev = true end
  end
  if not any then return nil end
  return "Peak memory includes the server's GPU memory (NVML's per-process used memory of the server's processes)"
    .. (dev and "; † there the GPU part is the devices' whole used memory, other processes' included: "
      .. "the driver gave no per-process figures (the cell files' gpu_memory_note says why)" or "") .. "."
end

local STATUS_TEXT = {ok = "ok", degraded = "**degraded**", oom = "**OOM**", crashed = "**crashed**", failed = "**failed**",
                     aborted = "**aborted**",
                     skipped = "skipped"}

local function host_ram(h)
  if type(h) ~= "table" then return nil end
  local ram = h.ram_bytes or h.ram or h.memory_bytes or h.mem_total or h.total_memory
  return tonumber(ram)
end

format.peak_gb, format.gpu_note, format.host_ram, format.STATUS_TEXT = peak_gb, gpu_note, host_ram, STATUS_TEXT
for k, f in pairs(format.fmt) do format[k] = f end

return format
