-- bench.report.svg: small hand-written SVG charts (bars, deltas, lines, a request timeline, a
-- memory timeline). Self-contained files: no scripts, no external fonts, so
-- they render the same in a browser, on GitHub and in an image viewer.
local svg = {}

local FONT = "system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif"
local PALETTE = {"#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948",
                 "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"}
svg.PALETTE = PALETTE

local function esc(s)
  return (tostring(s):gsub("[&<>\"']", {["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;",
                                        ['"'] = "&quot;", ["'"] = "&#39;"}))
end
svg.esc = esc

local function f(x) return string.format("%.1f", x) end

-- Tick values covering [lo, hi] at a 1/2/5 step, about n of them.
function svg.ticks(lo, hi, n)
  n = n or 5
  if hi <= lo then hi = lo + 1 end
  local raw = (hi - lo) / n
  local mag = 10 ^ math.floor(math.log(raw, 10))
  local step = mag
  for _, m in ipairs({1, 2, 2.5, 5, 10}) do
    if raw <= m * mag then step = m * mag break end
  end
  local first = math.floor(lo / step + 1e-9) * step
  local ticks = {}
  local t = first
  while t <= hi + step * 1e-6 do
    ticks[#ticks + 1] = t
    t = t + step
  end
  if ticks[#ticks] < hi - step * 1e-6 then ticks[#ticks + 1] = ticks[#ticks] + step end
  return ticks, step
end

-- Short number text for axes and bar labels.
function svg.fmt(x)
  local ax = math.abs(x)
  if ax >= 1e9 then return string.format("%.3g", x / 1e9) .. "G" end
  if ax >= 1e6 then return string.format("%.3g", x / 1e6) .. "M" end
  if ax >= 1e4 then return string.format("%.3g", x / 1e3) .. "k" end
  if ax == math.floor(ax) then return string.format("%d", math.floor(x)) end
  if ax >= 100 then return string.format("%.0f", x) end
  if ax >= 10 then return string.format("%.1f", x) end
  return string.format("%.2f", x)
end
local short_number = svg.fmt

local function open_svg(w, h, title)
  return {
    string.format('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="%s" font-size="12">',
      w, h, w, h, esc(FONT)),
    string.format('<title>%s</title>', esc(title or "")),
    string.format('<rect x="0" y="0" width="%d" height="%d" fill="#ffffff"/>', w, h),
    string.format('<text x="%d" y="24" font-size="16" font-weight="600" fill="#222">%s</text>', 16, esc(title or "")),
  }
end

local function text(out, x, y, s, attrs)
  out[#out + 1] = string.format('<text x="%s" y="%s"%s>%s</text>', f(x), f(y), attrs and (" " .. attrs) or "", esc(s))
end

local function line(out, x1, y1, x2, y2, attrs)
  out[#out + 1] = string.format('<line x1="%s" y1="%s" x2="%s" y2="%s" %s/>', f(x1), f(y1), f(x2), f(y2), attrs)
end

-- Characters, not bytes: labels hold "·" and CJK text.
local function ulen(s) return utf8.len(s) or #s end

-- Text width estimate (no font metrics in Lua): 0.58 em per character.
local function text_w(s, size) return ulen(tostring(s)) * (size or 12) * 0.58 end

-- Cut to at most max characters, never inside a UTF-8 sequence.
local function truncate(s, max)
  s = tostring(s)
  if not utf8.len(s) then s = s:gsub("[\128-\255]", "?") end
  if ulen(s) <= max then return s end
  return s:sub(1, utf8.offset(s, max) - 1) .. "…"
end
svg.truncate = truncate

-- svg.bars{title=, unit=, items={{label=, value=, color=, note=}}} -> svg text
-- Horizontal bars, one per item, value printed at the bar's end.
-- The frame shared by the bar charts: one row per item, labels on the left
-- (truncated to `chars`, at most max_label px wide), then plot_w px of plot
-- and `right` px for the value text. -> out, top, left, h
local function bar_frame(o, items, chars, max_label, bar_h, gap, plot_w, right)
  local label_w = 0
  for _, it in ipairs(items) do label_w = math.max(label_w, text_w(truncate(it.label, chars))) end
  label_w = math.min(math.max(label_w + 16, 80), max_label)
  local top, left = 48, 16 + label_w
  local w = math.floor(left + plot_w + right)
  local h = math.floor(top + #items * (bar_h + gap) + 44)
  return open_svg(w, h, o.title), top, left, h
end

function svg.bars(o)
  local items = o.items or {}
  local bar_h, gap = 22, 8
  local plot_w = 520
  local out, top, left, h = bar_frame(o, items, 64, 460, bar_h, gap, plot_w, 90)
  local maxv = 0
  for _, it in ipairs(items) do if it.value and it.value > maxv then maxv = it.value end end
  local ticks = svg.ticks(0, maxv > 0 and maxv or 1, 5)
  local xmax = ticks[#ticks]
  local function X(v) return left + v / xmax * plot_w end
  local bottom = top + #items * (bar_h + gap)
  for _, t in ipairs(ticks) do
    line(out, X(t), top - 4, X(t), bottom, 'stroke="#e5e5e5" stroke-width="1"')
    text(out, X(t), bottom + 16, short_number(t), 'text-anchor="middle" fill="#666"')
  end
  for i, it in ipairs(items) do
    local y = top + (i - 1) * (bar_h + gap)
    text(out, left - 8, y + bar_h / 2 + 4, truncate(it.label, 64), 'text-anchor="end" fill="#222"')
    if it.value then
      out[#out + 1] = string.format('<rect x="%s" y="%s" width="%s" height="%d" fill="%s" rx="2"/>',
        f(left), f(y), f(math.max(X(it.value) - left, 1)), bar_h, it.color or PALETTE[1])
      text(out, X(it.value) + 6, y + bar_h / 2 + 4, short_number(it.value) .. (it.note and ("  " .. it.note) or ""), 'fill="#222"')
    else
      text(out, left + 6, y + bar_h / 2 + 4, it.note or "no data", 'fill="#c0392b"')
    end
  end
  line(out, left, top - 4, left, bottom, 'stroke="#888" stroke-width="1"')
  text(out, left + plot_w / 2, h - 8, o.unit or "", 'text-anchor="middle" fill="#444"')
  out[#out + 1] = "</svg>\n"
  return table.concat(out, "\n")
end

-- svg.deltas{title=, unit="%", items={{label=, value=, flag=}}, higher_is_better=true}
-- Bars left or right of zero; green when the change is an improvement.
function svg.deltas(o)
  local items = o.items or {}
  local bar_h, gap = 20, 8
  local plot_w = 480
  local out, top, left, h = bar_frame(o, items, 72, 520, bar_h, gap, plot_w, 70)
  local m = 1
  for _, it in ipairs(items) do if it.value then m = math.max(m, math.abs(it.value)) end end
  -- room beyond the longest bar for its label
  local ticks = svg.ticks(-m * 1.35, m * 1.35, 6)
  local lo, hi = ticks[1], ticks[#ticks]
  local function X(v) return left + (v - lo) / (hi - lo) * plot_w end
  local bottom = top + #items * (bar_h + gap)
  for _, t in ipairs(ticks) do
    line(out, X(t), top - 4, X(t), bottom, 'stroke="#e5e5e5" stroke-width="1"')
    text(out, X(t), bottom + 16, short_number(t) .. (o.unit or "%"), 'text-anchor="middle" fill="#666"')
  end
  line(out, X(0), top - 4, X(0), bottom, 'stroke="#555" stroke-width="1.5"')
  local hib = o.higher_is_better ~= false
  for i, it in ipairs(items) do
    local y = top + (i - 1) * (bar_h + gap)
    text(out, left - 8, y + bar_h / 2 + 4, truncate(it.label, 72), 'text-anchor="end" fill="#222"')
    if it.value then
      local good = (it.value >= 0) == hib
      local x0, x1 = X(math.min(0, it.value)), X(math.max(0, it.value))
      out[#out + 1] = string.format('<rect x="%s" y="%s" width="%s" height="%d" fill="%s" rx="2"%s/>',
        f(x0), f(y), f(math.max(x1 - x0, 1)), bar_h, good and "#59a14f" or "#e15759",
        it.flag == "no" and ' fill-opacity="0.45"' or "")
      local label = string.format("%+.1f%%", it.value) .. (it.flag == "no" and " (noise)" or "")
      if it.value >= 0 then
        text(out, x1 + 5, y + bar_h / 2 + 4, label, 'fill="#222"')
      else
        text(out, x0 - 5, y + bar_h / 2 + 4, label, 'text-anchor="end" fill="#222"')
      end
    else
      text(out, X(0) + 6, y + bar_h / 2 + 4, it.note or "no data", 'fill="#c0392b"')
    end
  end
  if o.caption then text(out, left + plot_w / 2, h - 8, o.caption, 'text-anchor="middle" fill="#444"') end
  out[#out + 1] = "</svg>\n"
  return table.concat(out, "\n")
end

local function legend(out, series, x, y)
  for i, s in ipairs(series) do
    local yy = y + (i - 1) * 18
    local color = s.color or PALETTE[(i - 1) % #PALETTE + 1]
    line(out, x, yy - 4, x + 18, yy - 4, string.format('stroke="%s" stroke-width="2.5"%s', color,
      s.dash and (' stroke-dasharray="' .. s.dash .. '"') or ""))
    text(out, x + 24, yy, truncate(s.name, 40), 'fill="#222"')
  end
end

-- svg.lines{title=, xlabel=, ylabel=, series={{name=, points={{x,y}...}, dash=}}, xcategories=bool}
-- Line chart with markers; the x axis uses the distinct x values as evenly
-- spaced categories when xcategories is set (concurrency 1, 2, 4, 8, 16).
function svg.lines(o)
  local series = o.series or {}
  local legend_w = 0
  for _, s in ipairs(series) do legend_w = math.max(legend_w, text_w(truncate(s.name, 40)) + 40) end
  local left, top, plot_w, plot_h = 70, 48, 540, 300
  local w = math.floor(left + plot_w + 24 + legend_w + 16)
  local h = top + plot_h + 56
  local out = open_svg(w, h, o.title)
  local xs, xset, ymax, ymin = {}, {}, nil, nil
  for _, s in ipairs(series) do
    for _, p in ipairs(s.points) do
      if not xset[p[1]] then xset[p[1]] = true xs[#xs + 1] = p[1] end
      if p[2] then
        ymax = (ymax and math.max(ymax, p[2])) or p[2]
        ymin = (ymin and math.min(ymin, p[2])) or p[2]
      end
    end
  end
  table.sort(xs)
  ymax = ymax or 1
  local yt = svg.ticks(0, ymax > 0 and ymax or 1, 5)
  local ytop = yt[#yt]
  local X
  if o.xcategories then
    local pos = {}
    for i, x in ipairs(xs) do pos[x] = i end
    local n = #xs
    X = function(x) return left + (n == 1 and 0.5 or (pos[x] - 1) / (n - 1)) * plot_w end
  else
    local xlo, xhi = xs[1] or 0, xs[#xs] or 1
    if xhi == xlo then xhi = xlo + 1 end
    X = function(x) return left + (x - xlo) / (xhi - xlo) * plot_w end
  end
  local function Y(y) return top + plot_h - y / ytop * plot_h end
  for _, t in ipairs(yt) do
    line(out, left, Y(t), left + plot_w, Y(t), 'stroke="#e5e5e5" stroke-width="1"')
    text(out, left - 6, Y(t) + 4, short_number(t), 'text-anchor="end" fill="#666"')
  end
  for _, x in ipairs(xs) do
    line(out, X(x), top + plot_h, X(x), top + plot_h + 4, 'stroke="#888"')
    text(out, X(x), top + plot_h + 18, short_number(x), 'text-anchor="middle" fill="#666"')
  end
  line(out, left, top, left, top + plot_h, 'stroke="#888"')
  line(out, left, top + plot_h, left + plot_w, top + plot_h, 'stroke="#888"')
  for i, s in ipairs(series) do
    local color = s.color or PALETTE[(i - 1) % #PALETTE + 1]
    local pts = {}
    for _, p in ipairs(s.points) do
      if p[2] then pts[#pts + 1] = f(X(p[1])) .. "," .. f(Y(p[2])) end
    end
    if #pts > 1 then
      out[#out + 1] = string.format('<polyline fill="none" stroke="%s" stroke-width="2.5"%s points="%s"/>',
        color, s.dash and (' stroke-dasharray="' .. s.dash .. '"') or "", table.concat(pts, " "))
    end
    for _, p in ipairs(s.points) do
      if p[2] then
        out[#out + 1] = string.format('<circle cx="%s" cy="%s" r="3.5" fill="%s"><title>%s: %s</title></circle>',
          f(X(p[1])), f(Y(p[2])), color, esc(s.name), esc(short_number(p[2])))
      end
    end
  end
  legend(out, series, left + plot_w + 24, top + 10)
  text(out, left + plot_w / 2, h - 10, o.xlabel or "", 'text-anchor="middle" fill="#444"')
  out[#out + 1] = string.format('<text x="16" y="%s" transform="rotate(-90 16 %s)" text-anchor="middle" fill="#444">%s</text>',
    f(top + plot_h / 2), f(top + plot_h / 2), esc(o.ylabel or ""))
  out[#out + 1] = "</svg>\n"
  return table.concat(out, "\n")
end

-- a timeline's series as lines; a point without a value breaks its line
-- (no sample of that kind there), and a lone point is a dot
local function timeline_lines(out, series, X, Y)
  for i, s in ipairs(series) do
    local color = s.color or PALETTE[(i - 1) % #PALETTE + 1]
    local pts = {}
    local function flush_line()
      if #pts > 1 then
        out[#out + 1] = string.format('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>', color, table.concat(pts, " "))
      elseif #pts == 1 then
        local x, y = pts[1]:match("([^,]+),(.+)")
        out[#out + 1] = string.format('<circle cx="%s" cy="%s" r="2" fill="%s"/>', x, y, color)
      end
      pts = {}
    end
    for _, p in ipairs(s.points) do
      if p[2] then pts[#pts + 1] = f(X(p[1])) .. "," .. f(Y(p[2])) else flush_line() end
    end
    flush_line()
  end
end

-- svg.timeline{title=, ylabel=, series={{name=, points={{t_s, y}}}}, bands={{x0=, x1=, kind=, label=}}}
-- Memory over time: shaded bands mark the load phase of each cell, thin lines
-- mark cell boundaries.
function svg.timeline(o)
  local series = o.series or {}
  local left, top, plot_w, plot_h = 70, 48, 720, 300
  local legend_w = 0
  for _, s in ipairs(series) do legend_w = math.max(legend_w, text_w(s.name) + 40) end
  legend_w = math.max(legend_w, 150)
  local w = math.floor(left + plot_w + 24 + legend_w + 16)
  local h = top + plot_h + 56
  local out = open_svg(w, h, o.title)
  local xmax, ymax = 0, 0
  for _, s in ipairs(series) do
    for _, p in ipairs(s.points) do
      if p[1] > xmax then xmax = p[1] end
      if p[2] and p[2] > ymax then ymax = p[2] end
    end
  end
  for _, b in ipairs(o.bands or {}) do if b.x1 > xmax then xmax = b.x1 end end
  local xt = svg.ticks(0, xmax > 0 and xmax or 1, 8)
  local yt = svg.ticks(0, ymax > 0 and ymax or 1, 5)
  local xr, yr = xt[#xt], yt[#yt]
  local function X(x) return left + x / xr * plot_w end
  local function Y(y) return top + plot_h - y / yr * plot_h end
  local kinds = {load = {"#f2c14e", 0.35, "load"}, run = {"#4e79a7", 0.08, "run"},
                 warmup = {"#76b7b2", 0.2, "warm-up"}, unload = {"#bab0ac", 0.3, "unload"}}
  local used = {}
  for _, b in ipairs(o.bands or {}) do
    local k = kinds[b.kind] or {"#ffffff", 0, b.kind}   -- idle and unknown phases: unshaded
    used[b.kind] = true
    out[#out + 1] = string.format('<rect x="%s" y="%d" width="%s" height="%d" fill="%s" fill-opacity="%.2f"><title>%s</title></rect>',
      f(X(b.x0)), top, f(math.max(X(b.x1) - X(b.x0), 0.5)), plot_h, k[1], k[2], esc(b.label or b.kind))
  end
  for _, t in ipairs(yt) do
    line(out, left, Y(t), left + plot_w, Y(t), 'stroke="#e5e5e5" stroke-width="1"')
    text(out, left - 6, Y(t) + 4, short_number(t), 'text-anchor="end" fill="#666"')
  end
  for _, t in ipairs(xt) do
    line(out, X(t), top + plot_h, X(t), top + plot_h + 4, 'stroke="#888"')
    text(out, X(t), top + plot_h + 18, short_number(t), 'text-anchor="middle" fill="#666"')
  end
  for _, m in ipairs(o.markers or {}) do
    line(out, X(m.x), top, X(m.x), top + plot_h, 'stroke="#999" stroke-width="1" stroke-dasharray="3,3"')
    if m.label then
      out[#out + 1] = string.format('<text x="%s" y="%s" font-size="10" fill="#555" text-anchor="end" transform="rotate(-90 %s %s)">%s</text>',
        f(X(m.x) + 11), f(top + 4), f(X(m.x) + 11), f(top + 4), esc(truncate(m.label, 28)))
    end
  end
  line(out, left, top, left, top + plot_h, 'stroke="#888"')
  line(out, left, top + plot_h, left + plot_w, top + plot_h, 'stroke="#888"')
  timeline_lines(out, series, X, Y)
  legend(out, series, left + plot_w + 24, top + 10)
  local ly = top + 10 + #series * 18 + 10
  for _, kind in ipairs({"load", "warmup", "run", "unload"}) do
    if used[kind] then
      local k = kinds[kind]
      out[#out + 1] = string.format('<rect x="%d" y="%d" width="18" height="12" fill="%s" fill-opacity="%.2f" stroke="#ccc"/>',
        left + plot_w + 24, ly - 10, k[1], math.max(k[2], 0.2))
      text(out, left + plot_w + 48, ly, k[3] .. " phase", 'fill="#222"')
      ly = ly + 18
    end
  end
  text(out, left + plot_w / 2, h - 10, o.xlabel or "time (s)", 'text-anchor="middle" fill="#444"')
  out[#out + 1] = string.format('<text x="16" y="%s" transform="rotate(-90 16 %s)" text-anchor="middle" fill="#444">%s</text>',
    f(top + plot_h / 2), f(top + plot_h / 2), esc(o.ylabel or ""))
  out[#out + 1] = "</svg>\n"
  return table.concat(out, "\n")
end

-- svg.requests{title=, series={{name=, color=}}, requests={{series=i, send=, first=, last=, failed=, label=}}, caption=}
-- One row per request, in send order: a thin bar from its send to its first
-- token (waiting), a thick one from the first token to the last (streaming),
-- coloured by its series (the cell); a failed request is a dashed line.
-- Times in seconds from the run's start.
function svg.requests(o)
  local reqs, series = o.requests or {}, o.series or {}
  local left, top, plot_w = 70, 48, 720
  local legend_w = 170
  for _, s in ipairs(series) do legend_w = math.max(legend_w, text_w(truncate(s.name, 40)) + 40) end
  local n = #reqs
  local plot_h = math.min(math.max(n * 6, 120), 480)
  local row = plot_h / math.max(n, 1)
  local w = math.floor(left + plot_w + 24 + legend_w + 16)
  local h = math.floor(top + plot_h + 56 + (o.caption and 16 or 0))
  local out = open_svg(w, h, o.title)
  local t0, t1 = math.huge, 0
  for _, r in ipairs(reqs) do
    t0 = math.min(t0, r.send)
    t1 = math.max(t1, r.last or r.first or r.send)
  end
  if t0 == math.huge then t0 = 0 end
  local xt = svg.ticks(t0 > 0 and math.floor(t0) or 0, t1 > t0 and t1 or t0 + 1, 8)
  local xlo, xhi = xt[1], xt[#xt]
  local function X(t) return left + (t - xlo) / (xhi - xlo) * plot_w end
  for _, t in ipairs(xt) do
    line(out, X(t), top, X(t), top + plot_h, 'stroke="#eeeeee" stroke-width="1"')
    text(out, X(t), top + plot_h + 18, short_number(t), 'text-anchor="middle" fill="#666"')
  end
  line(out, left, top + plot_h, left + plot_w, top + plot_h, 'stroke="#888"')
  line(out, left, top, left, top + plot_h, 'stroke="#888"')
  local thick = math.max(math.min(row * 0.8, 8), 1)
  for i, r in ipairs(reqs) do
    local y = top + (i - 0.5) * row
    local color = (series[r.series] or {}).color or PALETTE[((r.series or 1) - 1) % #PALETTE + 1]
    local tip = r.label and ("<title>" .. esc(r.label) .. "</title>") or ""
    out[#out + 1] = '<g>' .. tip
    if r.failed or not r.first then
      line(out, X(r.send), y, X(r.last or r.send), y,
           string.format('stroke="%s" stroke-width="%s" stroke-dasharray="3,2"', color, f(math.max(thick / 2, 1))))
    else
      line(out, X(r.send), y, X(r.first), y, string.format('stroke="%s" stroke-opacity="0.45" stroke-width="%s"', color,
        f(math.max(thick / 3, 1))))
      line(out, X(r.first), y, X(math.max(r.last or r.first, r.first)) + 0.5, y,
           string.format('stroke="%s" stroke-width="%s"', color, f(thick)))
    end
    out[#out + 1] = '</g>'
  end
  legend(out, series, left + plot_w + 24, top + 10)
  local ly = top + 10 + #series * 18 + 10
  line(out, left + plot_w + 24, ly - 4, left + plot_w + 42, ly - 4, 'stroke="#777" stroke-opacity="0.45" stroke-width="2"')
  text(out, left + plot_w + 48, ly, "waiting (send → first token)", 'fill="#222" font-size="11"')
  line(out, left + plot_w + 24, ly + 14, left + plot_w + 42, ly + 14, 'stroke="#777" stroke-width="5"')
  text(out, left + plot_w + 48, ly + 18, "streaming (→ last token)", 'fill="#222" font-size="11"')
  line(out, left + plot_w + 24, ly + 32, left + plot_w + 42, ly + 32, 'stroke="#777" stroke-width="2" stroke-dasharray="3,2"')
  text(out, left + plot_w + 48, ly + 36, "failed", 'fill="#222" font-size="11"')
  text(out, left + plot_w / 2, top + plot_h + 40, o.xlabel or "time since the run started (s)", 'text-anchor="middle" fill="#444"')
  out[#out + 1] = string.format('<text x="16" y="%s" transform="rotate(-90 16 %s)" text-anchor="middle" fill="#444">%s</text>',
    f(top + plot_h / 2), f(top + plot_h / 2), esc(o.ylabel or "requests, in send order"))
  if o.caption then text(out, left, h - 8, o.caption, 'fill="#666" font-size="11"') end
  out[#out + 1] = "</svg>\n"
  return table.concat(out, "\n")
end

-- svg.well_formed(text) -> true | nil, why: a small XML check (tags balance,
-- attributes quoted, entities known) used by tests and before writing.
function svg.well_formed(s)
  if not utf8.len(s) then
    local _, bad = utf8.len(s)
    return nil, "not valid UTF-8 at byte " .. tostring(bad)
  end
  local stack = {}
  local pos = 1
  s = s:gsub("^%s*<%?xml.-%?>", "")
  while true do
    local lt = s:find("<", pos, true)
    local chunk = s:sub(pos, (lt or #s + 1) - 1)
    for ent in chunk:gmatch("&([^;%s]*);?") do
      if not (ent == "amp" or ent == "lt" or ent == "gt" or ent == "quot" or ent == "apos" or ent:match("^#%d+$") or ent:match("^#x%x+$")) then
        return nil, "bad entity &" .. ent .. " near byte " .. pos
      end
    end
    if chunk:find("&[^;]*$") then return nil, "unterminated entity near byte " .. pos end
    if not lt then break end
    local gt = s:find(">", lt, true)
    if not gt then return nil, "unclosed tag at byte " .. lt end
    local tag = s:sub(lt + 1, gt - 1)
    if tag:sub(1, 3) == "!--" then
      local e = s:find("-->", lt, true)
      if not e then return nil, "unclosed comment at byte " .. lt end
      gt = e + 2
    elseif tag:sub(1, 1) == "/" then
      local name = tag:match("^/([%w:_%-]+)%s*$")
      if not name then return nil, "bad closing tag <" .. tag .. "> at byte " .. lt end
      local top = table.remove(stack)
      if top ~= name then return nil, "closing </" .. name .. "> does not match <" .. tostring(top) .. "> at byte " .. lt end
    else
      local name, rest = tag:match("^([%w:_%-]+)(.*)$")
      if not name then return nil, "bad tag <" .. tag .. "> at byte " .. lt end
      local selfclose = rest:sub(-1) == "/"
      if selfclose then rest = rest:sub(1, -2) end
      local r = rest
      r = r:gsub('%s+[%w:_%-]+%s*=%s*"[^"<]*"', ""):gsub("%s+[%w:_%-]+%s*=%s*'[^'<]*'", "")
      if r:find("%S") then return nil, "bad attributes in <" .. name .. "> at byte " .. lt .. ": " .. r end
      if not selfclose then stack[#stack + 1] = name end
    end
    pos = gt + 1
  end
  if #stack > 0 then return nil, "unclosed <" .. stack[#stack] .. ">" end
  return true
end

return svg
