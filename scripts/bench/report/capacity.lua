-- bench.report.capacity: what a capacity search (bench.search, a plan's
-- search:) found, in words and as curves: report.md's "Capacity" section
-- and one chart per objective and cell (the metric over load, the target
-- as a dashed line).
local format = require("bench.report.format")
local slo = require("bench.report.slo")
local svg = require("bench.report.svg")
local energy_report = require("bench.report.energy")
local search = require("bench.search")

local capacity = {}

-- the cells that ran a search
local function searched(cells)
  local out = {}
  for _, c in ipairs(cells or {}) do
    if type(c.search) == "table" and type(c.search.steps) == "table" then out[#out + 1] = c end
  end
  return out
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

-- an objective's value as printed: latencies in seconds become ms
local function value_text(key, v)
  if v == nil then return "no value" end
  if key:find("decode_tps", 1, true) then return string.format("%.1f tok/s", v) end
  return format.ms(v * 1000) .. " ms"
end

-- a level's misses: "decode rate p50: 44.4 tok/s (needs ≥ 47.0 tok/s)", ...
local function misses_text(misses)
  local parts = {}
  for _, m in ipairs(misses or {}) do
    local name, need = slo.objective(m.key, m.target):match("^(.-) (\xe2\x89[\xa4\xa5] .*)$")
    parts[#parts + 1] = string.format("%s: %s (needs %s)", name, value_text(m.key, m.value), need)
  end
  return table.concat(parts, ", ")
end

-- capacity.sentence(search) -> the finding in words
function capacity.sentence(s)
  local objectives = {}
  for _, k in ipairs(sorted_keys(s.slo)) do objectives[#objectives + 1] = slo.objective(k, s.slo[k]) end
  local with = table.concat(objectives, ", ")
  local miss_at
  for _, l in ipairs(s.levels or {}) do if l.level == s.first_fail then miss_at = l end end
  local fail = s.first_fail and string.format("%s fail on %s", search.level_text(s.over, s.first_fail),
                                              miss_at and misses_text(miss_at.misses) or "the objectives")
  local text
  if s.reason == "none_meets" then
    text = string.format("**No load meets the objectives** (%s): the lowest load searched, %s, misses %s.", with,
      search.level_text(s.over, s.first_fail), miss_at and misses_text(miss_at.misses) or "them")
  elseif not s.best then
    text = string.format("No load was found to meet the objectives (%s).", with)
  else
    text = string.format("**%s** meet every objective (%s)%s.", search.level_text(s.over, s.best), with,
      fail and ("; " .. fail) or s.reason == "max_meets" and "; that is the highest load searched (search.max)" or "")
  end
  if not s.converged then text = text .. " " .. (s.why:gsub("^%l", string.upper)) .. "." end
  return text
end

-- capacity.tables(cells) -> one entry per cell that searched: {id, name
-- (the id with the throttled mark where the cell ran throttled),
-- sentence (the answer in words, markdown bold), head, rows (each step's
-- texts; row.level its load, to sort by), note (how it searched)}. The
-- report.md section and report.html both print these.
function capacity.tables(cells)
  local list = {}
  for _, c in ipairs(searched(cells)) do
    local s = c.search
    local keys = sorted_keys(s.slo)
    local head = {s.over == "concurrency" and "Users" or "Rate (req/s)", "Run", "Result"}
    for _, k in ipairs(keys) do head[#head + 1] = slo.objective(k, s.slo[k]) end
    local rows = {}
    for i, st in ipairs(s.steps) do
      local r = {tostring(math.tointeger(st.level) or string.format("%.3g", st.level)),
                 string.format("step %d%s", i, st.run > 1 and string.format(" (again, %d)", st.run) or ""),
                 st.met and "✅ met" or "❌ missed", level = st.level}
      for _, k in ipairs(keys) do r[#r + 1] = value_text(k, st.slo[k] and st.slo[k].value) end
      rows[#rows + 1] = r
    end
    -- the table is this cell's steps: a cell that ran throttled says so in its heading (name)
    list[#list + 1] = {id = tostring(c.id), name = energy_report.mark(c, tostring(c.id)),
      sentence = capacity.sentence(s), head = head, rows = rows,
      note = string.format("Bisection over %s from %s to %s, precision %.0f%%, at most %d steps; a level "
        .. "within noise of a target is measured again and judged by the majority of its runs.",
        s.over, search.level_text(s.over, s.min), search.level_text(s.over, s.max), (s.precision or 0) * 100,
        s.max_steps or 0)}
  end
  return list
end

-- capacity.section(out, cells): appends report.md's "Capacity" section
function capacity.section(out, cells)
  local list = capacity.tables(cells)
  if #list == 0 then return end
  out[#out + 1] = "## Capacity"
  out[#out + 1] = ""
  for _, t in ipairs(list) do
    out[#out + 1] = string.format("### %s", t.name)
    out[#out + 1] = ""
    out[#out + 1] = t.sentence
    out[#out + 1] = ""
    out[#out + 1] = format.table(t.head, t.rows)
    out[#out + 1] = ""
    out[#out + 1] = t.note
    out[#out + 1] = ""
  end
end

-- capacity.charts(cells) -> {{file, title, svg}}: each objective's value
-- over load (one point per level, the mean of its runs), the target dashed
function capacity.charts(cells)
  local charts = {}
  for _, c in ipairs(searched(cells)) do
    local s = c.search
    for _, k in ipairs(sorted_keys(s.slo)) do
      local sum, n = {}, {}
      for _, st in ipairs(s.steps) do
        local v = st.slo[k] and st.slo[k].value
        if v then
          if not k:find("decode_tps", 1, true) then v = v * 1000 end
          sum[st.level] = (sum[st.level] or 0) + v
          n[st.level] = (n[st.level] or 0) + 1
        end
      end
      local pts, target = {}, {}
      for level, total in pairs(sum) do pts[#pts + 1] = {level, total / n[level]} end
      table.sort(pts, function(a, b) return a[1] < b[1] end)
      local t = s.slo[k] * (k:find("decode_tps", 1, true) and 1 or 1000)
      for _, p in ipairs(pts) do target[#target + 1] = {p[1], t} end
      if #pts > 0 then
        local id = tostring(c.id):gsub("[^%w%._-]", "_")
        local unit = k:find("decode_tps", 1, true) and "tokens/s" or "ms"
        charts[#charts + 1] = {file = string.format("charts/capacity-%s-%s.svg", id, k),
          title = string.format("%s: %s over load", tostring(c.id), k),
          svg = svg.lines{title = string.format("%s: %s over load", tostring(c.id), k),
                          xlabel = s.over == "concurrency" and "concurrent users" or "requests per second",
                          ylabel = k .. " (" .. unit .. ")",
                          series = {{name = k, points = pts}, {name = "target", points = target, dash = "6 4"}}}}
      end
    end
  end
  return charts
end

return capacity
