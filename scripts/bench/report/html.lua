-- bench.report.html: report.html, one self-contained page beside report.md,
-- from the same analysis (bench.report.analysis): the findings, sortable and
-- filterable tables, the charts inline (bench.report.svg), a per-request
-- timeline and the environment. Nothing is fetched: no external URL, font,
-- script or style, so it opens offline. The page's small script sorts and
-- filters the tables; when it has run without an error it marks the page
-- (<body data-report-ready="1">), and an error is written into the page
-- (<html data-js-error="...">), so a headless browser can check both.
local analysis = require("bench.report.analysis")
local energy_report = require("bench.report.energy")
local capacity = require("bench.report.capacity")
local slo = require("bench.report.slo")
local steady = require("bench.report.steady")
local svg = require("bench.report.svg")
local units = require("bench.units")
local util = require("bench.util")

local html = {}

-- at most this many requests in the request table and the timeline
html.MAX_REQUESTS = 5000
html.MAX_TIMELINE = 2000

local esc = svg.esc
local format = require("bench.report.format")

-- findings are markdown: **bold** and `code` become tags, the rest is text
local function inline_md(s)
  s = esc(s)
  s = s:gsub("%*%*(.-)%*%*", "<strong>%1</strong>")
  s = s:gsub("`(.-)`", "<code>%1</code>")
  return s
end

-- An inline SVG chart: HTML needs no namespace declaration, and the page
-- holds no URL at all (not even the namespace's, which is never fetched).
local function inline_svg(text)
  return (text:gsub('%s+xmlns="http://www%.w3%.org/2000/svg"', ""):gsub('<svg ', '<svg role="img" ', 1))
end

-- cell: a string, or {text, v = sort value (number)}
local function td(c)
  if type(c) == "table" then
    local v = util.finite(c.v)
    return string.format('<td%s>%s</td>', v and string.format(' data-v="%.12g"', v) or ' data-v=""', esc(c[1] or "–"))
  end
  return "<td>" .. esc(c == nil and "–" or tostring(c)) .. "</td>"
end

-- A sortable, filterable table; id names it for the filter box.
local function table_html(id, head, rows, note)
  local out = {}
  out[#out + 1] = string.format('<p class="tools"><input type="search" class="filter" data-table="%s" ' ..
    'placeholder="filter rows…" aria-label="filter rows"> <span class="count" id="%s-count">%d rows</span></p>',
    id, id, #rows)
  out[#out + 1] = string.format('<div class="scroll"><table class="sortable" id="%s"><thead><tr>', id)
  for _, h in ipairs(head) do out[#out + 1] = "<th>" .. esc(h) .. "</th>" end
  out[#out + 1] = "</tr></thead><tbody>"
  for _, r in ipairs(rows) do
    local cells = {}
    for i = 1, #head do cells[i] = td(r[i]) end
    out[#out + 1] = "<tr>" .. table.concat(cells) .. "</tr>"
  end
  out[#out + 1] = "</tbody></table></div>"
  if note then out[#out + 1] = '<p class="note">' .. esc(note) .. "</p>" end
  return table.concat(out, "\n")
end

local function num_cell(v, f) return {(f or format.tps)(util.finite(v)), v = v} end

local LABEL_HEAD = {model = "Model", variant = "Variant", quant = "Quant", format = "Format", backend = "Backend",
                    config = "Config", env = "Env", sysctl = "Sysctl", scenario = "Scenario", concurrency = "Conc.",
                    max_tokens = "Max tokens"}

-- The name columns: the configuration's name, then the labels that vary.
local function name_cols(an)
  local cols = {}
  for _, k in ipairs(an.shown) do cols[#cols + 1] = k end
  local head = {an.names_are_ids and "Cell" or "Configuration"}
  for _, k in ipairs(cols) do head[#head + 1] = LABEL_HEAD[k] or k end
  return head, function(c)
    local r = {energy_report.mark(c, c.name)}   -- a configuration that ran throttled says so, as in report.md
    for _, k in ipairs(cols) do r[#r + 1] = analysis.label_text(c.labels[k]) end
    return r
  end
end

local function results_table(an)
  local head, names = name_cols(an)
  for _, h in ipairs({"Load (s)", "TTFT p50 (ms)", "TTFT p95 (ms)", "TPS (decode)", "TPS (output, aggregate)",
                      "Peak mem (GB)", "TPS/GB", "OK", "Requests", "Status"}) do head[#head + 1] = h end
  local rows = {}
  for _, c in ipairs(an.configs) do
    local m = c.metrics
    local r = names(c)
    for _, v in ipairs({num_cell(m.load_s, format.secs), num_cell(m.ttft_p50, format.ms), num_cell(m.ttft_p95, format.ms), num_cell(m.decode_tps),
                        num_cell(m.output_tps), num_cell(m.peak_bytes, format.gb),
                        num_cell(m.tps_per_gb, function(x) return x and string.format("%.2f", x) or "–" end),
                        num_cell(m.ok, function(x) return x and string.format("%d", x) or "–" end),
                        num_cell(m.requests, function(x) return x and string.format("%d", x) or "–" end),
                        c.status .. (c.error and (": " .. tostring(c.error):sub(1, 80)) or "")}) do
      r[#r + 1] = v
    end
    rows[#rows + 1] = r
  end
  return table_html("t-results", head, rows, "TPS (decode) is the mean per-request decode rate; TPS (output) is all " ..
    "output tokens over the cell's wall time; peak memory is the server's process tree (host + GPU), in GB of 10⁹ bytes" ..
    (an.memory_scale and "; dry run: the simulator's memory ÷ memory_scale" or "") .. ".")
end

local function latency_table(an)
  local head, names = name_cols(an)
  local keys = {"ttft_p50", "ttft_p90", "ttft_p95", "ttft_p99", "tpot_p50", "tpot_p95", "itl_p50", "itl_p99",
                "e2el_p50", "e2el_p95", "e2el_p99"}
  for _, h in ipairs({"TTFT p50", "TTFT p90", "TTFT p95", "TTFT p99", "TPOT p50", "TPOT p95", "ITL p50", "ITL p99",
                      "E2E p50", "E2E p95", "E2E p99"}) do head[#head + 1] = h end
  local rows = {}
  for _, c in ipairs(an.configs) do
    if c.metrics.ttft_p50 or c.metrics.e2el_p50 then
      local r = names(c)
      for _, k in ipairs(keys) do r[#r + 1] = num_cell(c.metrics[k], format.ms) end
      rows[#rows + 1] = r
    end
  end
  if #rows == 0 then return nil end
  return table_html("t-latency", head, rows, "Milliseconds.")
end

-- Requests in send order with the times the timeline and the table show.
local function request_times(an)
  local data = an.data
  local t0 = tonumber((data.env or {}).t0_ns)
  local list = {}
  for _, r in ipairs(data.records or {}) do
    local send = tonumber(r.t_sent_ns or r.sent_ns or r.start_ns or r.t_scheduled_ns)
    if r.cell and r.warmup ~= true and send then
      -- ttft counts from the request on the wire (its latency start)
      local first
      local start = tonumber(r.t_latency_start_ns or r.t_wire_sent_ns) or send
      if util.finite(r.ttft_ms) then first = start + r.ttft_ms * 1e6 end
      local last = tonumber(r.t_end_ns) or (util.finite(r.e2el_ms) and start + r.e2el_ms * 1e6) or nil
      list[#list + 1] = {rec = r, send = send, first = r.ok ~= false and first or nil, last = last}
      if not t0 or send < t0 then t0 = send end
    end
  end
  table.sort(list, function(a, b) return a.send < b.send end)
  for _, x in ipairs(list) do
    x.send = (x.send - t0) / 1e9
    x.first = x.first and (x.first - t0) / 1e9
    x.last = x.last and (x.last - t0) / 1e9
  end
  return list
end

local function cell_series(an)
  local series, index = {}, {}
  for i, cell in ipairs(an.data.cells or {}) do
    index[tostring(cell.id)] = i
    series[i] = {name = tostring(cell.id), color = svg.PALETTE[(i - 1) % #svg.PALETTE + 1]}
  end
  return series, index
end

local function timeline_svg(an, list)
  if #list == 0 then return nil end
  local series, index = cell_series(an)
  local step = math.max(1, math.ceil(#list / html.MAX_TIMELINE))
  local reqs = {}
  for i = 1, #list, step do
    local x = list[i]
    local r = x.rec
    local idx = index[tostring(r.cell)]
    if not idx then
      series[#series + 1] = {name = tostring(r.cell), color = svg.PALETTE[#series % #svg.PALETTE + 1]}
      idx = #series
      index[tostring(r.cell)] = idx
    end
    reqs[#reqs + 1] = {series = idx, send = x.send, first = x.first, last = x.last, failed = r.ok == false,
      label = string.format("%s · %s · sent %.3f s · TTFT %s ms · E2E %s ms%s", tostring(r.cell),
        tostring(analysis.rec_prompt(r) or "#" .. tostring(r.index)), x.send, format.ms(util.finite(r.ttft_ms)),
        format.ms(util.finite(r.e2el_ms)), r.ok == false and (" · failed: " .. tostring(r.error)) or "")}
  end
  return svg.requests{title = "Requests over time", series = series, requests = reqs,
    caption = step > 1 and string.format("every %d%s request of %d is drawn", step, step == 2 and "nd" or "th", #list) or nil}
end

local function requests_table(list)
  if #list == 0 then return nil end
  local rows = {}
  for i = 1, math.min(#list, html.MAX_REQUESTS) do
    local x = list[i]
    local r = x.rec
    rows[#rows + 1] = {num_cell(i, function(v) return string.format("%d", v) end), tostring(r.cell),
      tostring(analysis.rec_prompt(r) or ""), r["repeat"] ~= nil and tostring(r["repeat"]) or "–",
      num_cell(x.send, function(v) return v and string.format("%.3f", v) or "–" end),
      num_cell(r.ttft_ms, format.ms), num_cell(r.tpot_ms, format.ms), num_cell(r.e2el_ms, format.ms),
      num_cell(r.output_tokens, function(v) return v and string.format("%d", v) or "–" end),
      num_cell(analysis.rec_decode_tps(r), format.tps),
      r.ok == false and ("failed: " .. tostring(r.error or "error")) or "ok"}
  end
  return table_html("t-requests", {"#", "Cell", "Prompt", "Repeat", "Sent (s)", "TTFT (ms)", "TPOT (ms)", "E2E (ms)",
    "Output tokens", "Decode TPS", "Result"}, rows,
    #list > html.MAX_REQUESTS and string.format("The first %d of %d measured requests (records.jsonl holds all).",
      html.MAX_REQUESTS, #list) or "Measured requests (warm-ups left out), in send order.")
end

-- The capacity answer in words and each search's steps (bench.report.capacity),
-- the load column sortable by its value.
local function capacity_html(an)
  local list = capacity.tables(an.data.cells)
  if #list == 0 then return nil end
  local out = {}
  for i, t in ipairs(list) do
    local rows = {}
    for j, r in ipairs(t.rows) do
      local row = {{r[1], v = r.level}}
      for k = 2, #t.head do row[k] = r[k] end
      rows[j] = row
    end
    out[#out + 1] = "<h3>" .. esc(t.name) .. "</h3>"
    out[#out + 1] = '<p class="answer">' .. inline_md(t.sentence) .. "</p>"
    out[#out + 1] = table_html("t-capacity-" .. i, t.head, rows, t.note)
  end
  return table.concat(out, "\n")
end

-- Each judged cell's objectives and goodput (bench.report.slo).
local function slo_html(an)
  local list = slo.tables(an.data.cells)
  if #list == 0 then return nil end
  local out = {}
  for i, t in ipairs(list) do
    out[#out + 1] = "<h3>" .. esc(t.name .. ": " .. t.verdict) .. "</h3>"
    out[#out + 1] = table_html("t-slo-" .. i, slo.HEAD, t.rows)
    if t.goodput then out[#out + 1] = '<p class="goodput">' .. inline_md(t.goodput) .. "</p>" end
  end
  return table.concat(out, "\n")
end

-- Why each cell that chose its own length stopped (bench.report.steady).
local function steady_html(an)
  local lines = steady.lines(an.data.cells)
  if #lines == 0 then return nil end
  local li = {}
  for _, l in ipairs(lines) do li[#li + 1] = "<li>" .. inline_md(l) .. "</li>" end
  return '<ul class="run-length">' .. table.concat(li, "\n") .. "</ul>"
end

local function environment(an)
  local data = an.data
  local env = data.env or {}
  local h = type(env.host) == "table" and env.host or {}
  local s = data.summary or {}
  local rows = {}
  local function add(k, v) if v ~= nil and v ~= "" then rows[#rows + 1] = {k, tostring(v)} end end
  add("Plan", s.name)
  add("Phase", s.phase)
  add("Started", s.started or env.started)
  add("Finished", s.finished)
  add("Results folder", data.dir)
  add("Host", h.hostname)
  add("OS", h.os and (tostring(h.os) .. (h.os_version and (" " .. tostring(h.os_version)) or "")))
  add("Kernel", h.kernel)
  add("Architecture", h.arch)
  local cpu = h.cpu
  if type(cpu) == "table" then
    add("CPU", cpu.model and (tostring(cpu.model) .. (cpu.cores and string.format(" (%d cores)", cpu.cores) or "")))
  else
    add("CPU", cpu)
  end
  local ram = format.host_ram(h)
  add("Memory", ram and units.format_size(ram, {significant = true}))
  if type(h.gpus) == "table" then
    for i, g in ipairs(h.gpus) do
      add("GPU " .. i, type(g) == "table" and (tostring(g.name or g.model or "?") ..
        (g.memory_bytes and (", " .. units.format_size(g.memory_bytes, {significant = true})) or "")) or g)
    end
  end
  add("GPU note", h.gpu_note)
  local br = s.benchrun or env.benchrun or {}
  add("benchrun", br.version and (tostring(br.version) .. (br.git and (" (" .. tostring(br.git) .. ")") or "")))
  local seen = {}
  for _, c in ipairs(data.cells or {}) do
    local srv = type(c.server) == "table" and c.server or {}
    local v = srv.version and tostring(srv.version)
    if v and not seen[v] then seen[v] = true add("Server", v) end
  end
  add("Dry run", env.dry_run == true and "yes (every server was the simulator)" or nil)
  if type(env.argv) == "table" then add("Command", "benchrun " .. table.concat(env.argv, " ")) end
  local out = {'<table class="kv">'}
  for _, r in ipairs(rows) do out[#out + 1] = "<tr><th>" .. esc(r[1]) .. "</th><td>" .. esc(r[2]) .. "</td></tr>" end
  out[#out + 1] = "</table>"
  if type(env.plan_text) == "string" then
    out[#out + 1] = "<details><summary>The plan as run</summary><pre>" .. esc(env.plan_text) .. "</pre></details>"
  end
  return table.concat(out, "\n")
end

local STYLE = [[
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0 auto;max-width:1280px;
padding:0 24px 48px;color:#222;line-height:1.45}
h1{font-size:1.6em;margin:24px 0 4px}h2{margin-top:36px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#555;margin:0}nav a{margin-right:12px}nav{margin:12px 0;font-size:.95em}
.scroll{overflow-x:auto}table{border-collapse:collapse;font-size:.9em;margin:6px 0}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;white-space:nowrap}
td[data-v]{text-align:right;font-variant-numeric:tabular-nums}
table.sortable th{cursor:pointer;background:#f5f5f5;user-select:none}
table.sortable th[aria-sort=ascending]::after{content:" ▲"}table.sortable th[aria-sort=descending]::after{content:" ▼"}
tbody tr:nth-child(even){background:#fafafa}tr[hidden]{display:none}
.kv th{background:#f5f5f5;width:12em}.kv td{white-space:normal}
.note{color:#555;font-size:.9em}.tools{margin:8px 0 0}.count{color:#666;font-size:.9em}
input.filter{padding:3px 6px;font:inherit;font-size:.9em;width:16em}
figure{margin:16px 0}svg{max-width:100%;height:auto}pre{background:#f5f5f5;padding:8px;overflow-x:auto}
footer{margin-top:40px;color:#777;font-size:.85em}
]]

-- The page's script: sort a table by a header's column (click or Enter;
-- numbers by their data-v value, empty ones last), filter rows by text.
local SCRIPT = [[
(function () {
  "use strict";
  function key(td) {
    var v = td.getAttribute("data-v");
    if (v !== null) return v === "" ? null : parseFloat(v);
    return td.textContent.trim().toLowerCase();
  }
  function sortBy(table, col, th) {
    var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a.cells[col]), y = key(b.cells[col]);
      if (x === null || y === null) return x === y ? 0 : (x === null ? 1 : -1);
      if (typeof x === "number" && typeof y === "number") return (x - y) * dir;
      return String(x).localeCompare(String(y), undefined, {numeric: true}) * dir;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    Array.prototype.forEach.call(th.parentNode.cells, function (h) { h.setAttribute("aria-sort", "none"); });
    th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      th.tabIndex = 0;
      th.setAttribute("aria-sort", "none");
      th.title = "sort by this column";
      th.addEventListener("click", function () { sortBy(table, i, th); });
      th.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(table, i, th); }
      });
    });
  });
  document.querySelectorAll("input.filter").forEach(function (input) {
    var table = document.getElementById(input.getAttribute("data-table"));
    var count = document.getElementById(table.id + "-count");
    var rows = Array.prototype.slice.call(table.tBodies[0].rows);
    input.addEventListener("input", function () {
      var q = input.value.trim().toLowerCase(), shown = 0;
      rows.forEach(function (r) {
        var hit = q === "" || r.textContent.toLowerCase().indexOf(q) >= 0;
        r.hidden = !hit;
        if (hit) shown++;
      });
      count.textContent = q === "" ? rows.length + " rows" : shown + " of " + rows.length + " rows";
    });
  });
  document.body.setAttribute("data-report-ready", "1");
})();
]]

-- html.render(an, ctx) -> the page. ctx as for markdown.render; each chart
-- of ctx.charts carries its SVG text (svg) to be drawn inline.
function html.render(an, ctx)
  local data = an.data
  local s = data.summary or {}
  local title = ctx.title or ("benchrun report: " .. tostring(s.name or "run"))
  local out = {}
  local function add(x) if x then out[#out + 1] = x end end
  add('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">')
  add('<meta name="viewport" content="width=device-width, initial-scale=1">')
  add("<title>" .. esc(title) .. "</title>")
  -- first of all: an error anywhere in the page's script is written into it
  add('<script>window.addEventListener("error", function (e) { document.documentElement.setAttribute(' ..
      '"data-js-error", String(e.message)); });</script>')
  add("<style>" .. STYLE .. "</style>\n</head>\n<body>")
  add("<header><h1>" .. esc(title) .. "</h1>")
  local st = an.statuses
  add(string.format('<p class="meta">%s%s → %s · %d cell%s: %d ok%s</p></header>', s.phase and (esc(s.phase) .. " · ") or "",
    esc(s.started or "?"), esc(s.finished or "?"), #(data.cells or {}), #(data.cells or {}) == 1 and "" or "s", st.ok or 0,
    (#(data.cells or {}) - (st.ok or 0)) > 0 and string.format(", %d not ok", #(data.cells or {}) - (st.ok or 0)) or ""))
  local sections = {}
  local function section(id, head, body)
    if not body then return end
    sections[#sections + 1] = {id = id, head = head, body = body}
  end
  local findings = ctx.findings or require("bench.report.findings").recommendations(an, ctx)
  if #findings > 0 then
    local li = {}
    for _, f in ipairs(findings) do li[#li + 1] = "<li>" .. inline_md(f) .. "</li>" end
    section("findings", ctx.combined and "Recommendations" or "Findings",
            '<ul class="findings">' .. table.concat(li, "\n") .. "</ul>")
  end
  if #an.configs > 0 then
    section("results", "Results by configuration", results_table(an))
    section("capacity", "Capacity", capacity_html(an))
    section("latency", "Latency percentiles", latency_table(an))
    section("slo", "Service level objectives", slo_html(an))
    section("steady", "Run length", steady_html(an))
  end
  local charts = {}
  for _, ch in ipairs(ctx.charts or {}) do
    if ch.svg then charts[#charts + 1] = '<figure class="chart">' .. inline_svg(ch.svg) .. "</figure>" end
  end
  if #charts > 0 then section("charts", "Charts", table.concat(charts, "\n")) end
  local list = request_times(an)
  local tl = timeline_svg(an, list)
  if tl then
    section("timeline", "Requests over time", '<p class="note">Each row is one measured request, in send order: ' ..
      "waiting from its send to its first token, then streaming to its last; hover for its figures.</p>\n" ..
      '<figure class="chart">' .. inline_svg(tl) .. "</figure>")
  end
  section("requests", "Requests", requests_table(list))
  section("environment", "Environment", environment(an))
  local nav = {}
  for _, sec in ipairs(sections) do nav[#nav + 1] = string.format('<a href="#%s">%s</a>', sec.id, esc(sec.head)) end
  add("<nav>" .. table.concat(nav, " ") .. "</nav>")
  for _, sec in ipairs(sections) do
    add(string.format('<section id="%s">\n<h2>%s</h2>\n%s\n</section>', sec.id, esc(sec.head), sec.body))
  end
  add("<footer>Generated by benchrun from summary.json, records.jsonl and samples.jsonl in this folder " ..
      "(report.md holds the same analysis as text).</footer>")
  add("<script>" .. SCRIPT .. "</script>\n</body>\n</html>\n")
  return table.concat(out, "\n")
end

return html
