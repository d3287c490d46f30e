-- bench.report.energy: the report's energy, power and heat parts (issue
-- 15), from each cell's `energy` and `cooldown` (bench.powerwatch) and the
-- power samples of samples.jsonl. Hooked into the report in five places
-- (energy_report. below, as the report's modules name this one):
--   report.build   annotate(an): each configuration's figures into its metrics
--   report.csv     CSV_FIELDS, cell_fields(cell)
--   findings       finding(an): "Most energy-efficient" beside "Fastest"
--   markdown       columns (results table), mark (throttled cells in every
--                  table: markdown's, html's, and the depth, cache,
--                  logprobs, tool-call, capacity and SLO sections'),
--                  section (energy notes, cooldown waits)
--   report.render  chart(an): power over time with cell boundaries
-- A figure that cannot be known is absent, never 0: "no power source".
local svg = require("bench.report.svg")

local energy_report = {}

-- summary.csv's energy columns (empty where unknown)
energy_report.CSV_FIELDS = {"energy_j", "j_per_token", "tok_per_w", "avg_w", "peak_w", "idle_w", "above_idle_j", "throttled_pct",
                "max_temp_c", "throttled", "cooldown_s", "energy_note"}

-- energy_report.cell_fields(cell) -> {field = value} of one cell (energy_report.CSV_FIELDS)
function energy_report.cell_fields(cell)
  local e, f = cell.energy, {}
  if type(e) == "table" then
    for _, k in ipairs({"energy_j", "j_per_token", "tok_per_w", "avg_w", "peak_w", "idle_w", "above_idle_j",
                        "throttled_pct", "max_temp_c", "throttled"}) do f[k] = e[k] end
    f.energy_note = e.note
  end
  if type(cell.cooldown) == "table" then f.cooldown_s = cell.cooldown.waited_s end
  return f
end

-- a configuration's figures over its cells (repeats run as cells): energies
-- and tokens add up, peaks and temperatures take the maximum
local function of_cells(cells)
  local m, tokens, window, n, idle, idle_n, pct_s = {}, 0, 0, 0, 0, 0, 0
  for _, cell in ipairs(cells) do
    local e = type(cell.energy) == "table" and cell.energy or nil
    if e then
      n = n + 1
      m.energy_note = m.energy_note or e.note
      if e.energy_j then
        m.energy_j = (m.energy_j or 0) + e.energy_j
        tokens = tokens + ((cell.summary or {}).output_tokens_total or 0)
        window = window + (e.window_s or 0)
        if e.above_idle_j then m.above_idle_j = (m.above_idle_j or 0) + e.above_idle_j end
      end
      if e.idle_w then idle, idle_n = idle + e.idle_w, idle_n + 1 end
      if e.peak_w and (not m.peak_w or e.peak_w > m.peak_w) then m.peak_w = e.peak_w end
      if e.max_temp_c and (not m.max_temp_c or e.max_temp_c > m.max_temp_c) then m.max_temp_c = e.max_temp_c end
      if e.throttled_pct then
        m.throttled_pct = (m.throttled_pct or 0) + e.throttled_pct * (e.window_s or 1)
        pct_s = pct_s + (e.window_s or 1)
      end
      if e.throttled ~= nil then m.throttled = m.throttled or e.throttled end
    end
    if type(cell.cooldown) == "table" and cell.cooldown.waited_s then
      m.cooldown_s = (m.cooldown_s or 0) + cell.cooldown.waited_s
    end
  end
  if n == 0 then return nil end
  if m.energy_j then
    if m.energy_j > 0 and tokens > 0 then m.j_per_token, m.tok_per_w = m.energy_j / tokens, tokens / m.energy_j end
    if window > 0 then m.avg_w = m.energy_j / window end
  end
  if idle_n > 0 then m.idle_w = idle / idle_n end
  if pct_s > 0 then m.throttled_pct = m.throttled_pct / pct_s end
  return m
end

-- energy_report.annotate(an): each configuration's energy figures into c.metrics (so
-- summary.json's analysis has them, absent where unknown)
function energy_report.annotate(an)
  an.has_energy = false
  for _, c in ipairs(an.configs or {}) do
    local m = of_cells(c.cells or {})
    if m then
      for k, v in pairs(m) do c.metrics[k] = v end
      if m.energy_j then an.has_energy = true end
      an.has_power = true
    end
  end
end

-- v in the format p, or a dash
local function or_dash(v, p) return v and string.format(p, v) or "–" end

-- energy_report.columns(an) -> the results table's extra headings and a function
-- c -> their values; nil when no cell measured power
function energy_report.columns(an)
  if not an.has_power then return nil end
  return {"J/tok", "tok/s/W", "W avg", "°C max", "throttled %"}, function(c)
    local m = c.metrics
    if not m.j_per_token and m.energy_note == "no power source" then return {"no power source", "", "", "", ""} end
    return {or_dash(m.j_per_token, "%.3g"), or_dash(m.tok_per_w, "%.3g"), or_dash(m.avg_w, "%.0f"),
            or_dash(m.max_temp_c, "%.0f"), or_dash(m.throttled_pct, "%.0f")}
  end
end

-- energy_report.throttled(x) -> whether x ran throttled: a configuration (its metrics,
-- energy_report.annotate), a cell (its energy, bench.powerwatch), or a list of either
-- (any of them)
function energy_report.throttled(x)
  if type(x) ~= "table" then return false end
  if type(x.metrics) == "table" and x.metrics.throttled then return true end
  if type(x.energy) == "table" and x.energy.throttled == true then return true end
  for _, y in ipairs(x) do if energy_report.throttled(y) then return true end end
  return false
end

-- energy_report.mark(x, text) -> text with a mark when x (as energy_report.throttled) ran
-- throttled: every table that names a configuration or a cell marks it so
energy_report.MARK = " 🔥 throttled"
function energy_report.mark(x, text)
  if energy_report.throttled(x) then return tostring(text) .. energy_report.MARK end
  return text
end

-- energy_report.finding(an) -> "Most energy-efficient: ..." or nil (two ok
-- configurations with an energy figure at least)
function energy_report.finding(an)
  local list = {}
  for _, c in ipairs(an.configs or {}) do
    if c.status == "ok" and c.metrics.j_per_token then list[#list + 1] = c end
  end
  if #list < 2 then return nil end
  table.sort(list, function(a, b) return a.metrics.j_per_token < b.metrics.j_per_token end)
  local a, b = list[1], list[2]
  return string.format("Most energy-efficient: **%s** at %.3g J per output token (%.3g tok/s per W%s; next: %s at %.3g J/token).",
    a.name, a.metrics.j_per_token, a.metrics.tok_per_w, a.metrics.throttled and ", ran throttled" or "",
    b.name, b.metrics.j_per_token)
end

-- energy_report.section(out, an): notes on energy and cooldown, cell by cell, where any
function energy_report.section(out, an)
  local lines = {}
  for _, cell in ipairs(an.data.cells or {}) do
    local e, cd = type(cell.energy) == "table" and cell.energy or {}, type(cell.cooldown) == "table" and cell.cooldown
    local parts = {}
    if e.throttled then parts[#parts + 1] = string.format("ran throttled (%s%% of the time)", or_dash(e.throttled_pct, "%.0f")) end
    if e.note and e.note ~= "no power source" then parts[#parts + 1] = e.note end
    if cd then
      parts[#parts + 1] = cd.ready and (string.format("cooled down in %.1f s", cd.waited_s or 0)
        .. (cd.note and (" (" .. tostring(cd.note) .. ")") or "")) or tostring(cd.note)
    end
    if #parts > 0 then lines[#lines + 1] = string.format("- %s: %s.", tostring(cell.id), table.concat(parts, "; ")) end
  end
  if #lines == 0 then return end
  out[#out + 1] = "## Energy and heat"
  out[#out + 1] = ""
  for _, l in ipairs(lines) do out[#out + 1] = l end
  out[#out + 1] = ""
  out[#out + 1] = "Energy is measured over each cell's measured repeats (warm-ups excluded); J/tok is joules per "
    .. "output token, tok/s/W output tokens per second per watt (tokens per joule). A cell waits before it starts "
    .. "until the machine is cool (the plan's cooldown:)."
  out[#out + 1] = ""
end

-- energy_report.chart(an) -> the power-over-time SVG, or nil without power samples
function energy_report.chart(an)
  local pts, first = {}, math.huge
  local samples = {}
  for _, s in ipairs(an.data.samples or {}) do
    if s.type == "power" and type(s.t_ns) == "number" then
      samples[#samples + 1] = s
      if s.t_ns < first then first = s.t_ns end
    end
  end
  if #samples == 0 then return nil end
  table.sort(samples, function(a, b) return a.t_ns < b.t_ns end)
  local markers, last_cell, any = {}, nil, false
  for _, s in ipairs(samples) do
    local t = (s.t_ns - first) / 1e9
    pts[#pts + 1] = {t, tonumber(s.w)}   -- a gap (no w) breaks the line
    if s.w then any = true end
    if s.cell ~= last_cell and s.cell then
      markers[#markers + 1] = {x = t, label = tostring(s.cell)}
      last_cell = s.cell
    end
  end
  if not any then return nil end
  if #markers > 24 then for _, m in ipairs(markers) do m.label = nil end end
  return svg.timeline{title = "Power over time", ylabel = "W", series = {{name = "power (counted sources)",
                      points = pts, color = svg.PALETTE[1]}}, bands = {}, markers = markers}
end

return energy_report
