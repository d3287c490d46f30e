-- bench.report.depth: the report's part for depth cells (bench.depth): a
-- table like llama-bench's (`pp512 @ d4096`, `tg128 @ d4096`, cold and
-- warm, beside the server's own figures) and charts of prefill and decode
-- tok/s over depth per variant (docs/depth.md). Reads the cells' `depth`
-- lists (runner: out.depth); a run without depth cells gets nothing.
local svg = require("bench.report.svg")
local energy_report = require("bench.report.energy")

local depth_report = {}

-- the variant of a cell: its id without the depth axis's label
local function variant_of(cell)
  local parts = {}
  local dl = type(cell.labels) == "table" and cell.labels.depth
  for p in tostring(cell.id or "?"):gmatch("[^/]+") do
    if p ~= dl then parts[#parts + 1] = p end
  end
  return #parts > 0 and table.concat(parts, "/") or "all"
end

local function mean(list)
  local s, n = 0, 0
  for _, x in ipairs(list) do if type(x) == "number" and x == x then s, n = s + x, n + 1 end end
  return n > 0 and s / n or nil
end

-- {variant, depth, pp, tg, label_pp, label_tg, cold = {field = mean}, warm = ..., notes, cells}
-- per (variant, depth), in the cells' order
function depth_report.rows(data)
  local rows, by_key = {}, {}
  for _, cell in ipairs(type(data) == "table" and data.cells or {}) do
    for _, r in ipairs(type(cell.depth) == "table" and cell.depth or {}) do
      local v = variant_of(cell)
      local key = v .. "\0" .. tostring(r.depth)
      local row = by_key[key]
      if not row then
        row = {variant = v, depth = r.depth, pp = r.pp, tg = r.tg, label_pp = r.label_pp, label_tg = r.label_tg,
               runs = {}, notes = {}, skipped = false, cells = {}}
        by_key[key] = row
        rows[#rows + 1] = row
      end
      row.runs[#row.runs + 1] = r
      if row.cells[#row.cells] ~= cell then row.cells[#row.cells + 1] = cell end
      if r.skipped then row.skipped = true end
      for _, n in ipairs{r.note or false, type(r.cold) == "table" and r.cold.note or false,
                         type(r.warm) == "table" and r.warm.note or false} do
        if n then row.notes[n] = true end
      end
      if r.input_tokens_source then row.source = r.input_tokens_source end
    end
  end
  for _, row in ipairs(rows) do
    for _, phase in ipairs{"cold", "warm"} do
      local f = {}
      for _, k in ipairs{"prefill_tps", "server_prefill_tps", "decode_tps", "server_decode_tps", "prefill_tokens"} do
        local xs = {}
        for _, r in ipairs(row.runs) do xs[#xs + 1] = type(r[phase]) == "table" and r[phase][k] or nil end
        f[k] = mean(xs)
      end
      row[phase] = f
    end
  end
  return rows
end

local function rate(x) return x and string.format("%.1f", x) or "–" end
local function pair(a, b) return (a or b) and (rate(a) .. " / " .. rate(b)) or "–" end

-- depth_report.section(out, data, table_fn): appends "## Context depth" to
-- the markdown lines `out` when the run has depth cells; table_fn is
-- markdown.table (bench.report.format's table writer, passed in by markdown.lua)
function depth_report.section(out, data, table_fn)
  local rows = depth_report.rows(data)
  if #rows == 0 then return end
  out[#out + 1] = "## Context depth"
  out[#out + 1] = ""
  out[#out + 1] = "Like llama-bench's `-d`: at depth D the prompt holds D tokens of context, then pp tokens; " ..
    "cold = a context no earlier request had (prefill of D + pp tokens ÷ TTFT), warm = the same context " ..
    "again with new pp tokens (what the server prefilled ÷ TTFT). tg = decode rate of the answer. " ..
    "Server = the server's own figure (llama.cpp `timings.prompt_per_second` / `predicted_per_second`)."
  out[#out + 1] = ""
  local body, notes, where = {}, {}, {}
  for _, r in ipairs(rows) do
    local variant = energy_report.mark(r.cells, r.variant)   -- a throttled cell says so in every table
    if r.skipped then
      body[#body + 1] = {variant, r.label_pp, "not measured", "–", "–", "–", "–"}
    else
      body[#body + 1] = {variant, r.label_pp, rate(r.cold.prefill_tps), rate(r.warm.prefill_tps),
                         pair(r.cold.server_prefill_tps, r.warm.server_prefill_tps),
                         string.format("%s / %s", (rate(r.cold.prefill_tokens):gsub("%.0$", "")),
                                       (rate(r.warm.prefill_tokens):gsub("%.0$", ""))), r.source or "–"}
      body[#body + 1] = {variant, r.label_tg, rate(r.cold.decode_tps), rate(r.warm.decode_tps),
                         pair(r.cold.server_decode_tps, r.warm.server_decode_tps), "–", r.source or "–"}
    end
    for n in pairs(r.notes) do
      if not where[n] then where[n] = {} notes[#notes + 1] = n end
      table.insert(where[n], string.format("%s d%d", r.variant, r.depth))
    end
  end
  out[#out + 1] = table_fn({"variant", "test", "cold tok/s", "warm tok/s", "server tok/s (cold / warm)",
                            "prefilled tokens (cold / warm)", "prompt tokens by"}, body,
                           {"l", "l", "r", "r", "r", "r", "l"})
  out[#out + 1] = ""
  if #notes > 0 then
    for _, n in ipairs(notes) do out[#out + 1] = string.format("- %s (%s)", n, table.concat(where[n], ", ")) end
    out[#out + 1] = ""
  end
end

-- depth_report.charts(data) -> prefill_svg, decode_svg (nil without depth
-- cells): tok/s over depth, one line per variant (and phase for prefill)
function depth_report.charts(data)
  local rows = depth_report.rows(data)
  if #rows == 0 then return nil end
  local pre, dec, order = {}, {}, {}
  for _, r in ipairs(rows) do
    if not pre[r.variant] then
      order[#order + 1] = r.variant
      pre[r.variant] = {cold = {}, warm = {}}
      dec[r.variant] = {}
    end
    if not r.skipped then
      table.insert(pre[r.variant].cold, {r.depth, r.cold.prefill_tps})
      table.insert(pre[r.variant].warm, {r.depth, r.warm.prefill_tps})
      table.insert(dec[r.variant], {r.depth, r.cold.decode_tps})
    end
  end
  local ps, ds = {}, {}
  for i, v in ipairs(order) do
    local color = svg.PALETTE[(i - 1) % #svg.PALETTE + 1]
    ps[#ps + 1] = {name = v .. " cold", points = pre[v].cold, color = color}
    ps[#ps + 1] = {name = v .. " warm", points = pre[v].warm, color = color, dash = "5,4"}
    ds[#ds + 1] = {name = v, points = dec[v], color = color}
  end
  return svg.lines{title = "Prefill speed over context depth", xlabel = "context depth (tokens)",
                   ylabel = "prefill tokens/s", series = ps, xcategories = true},
         svg.lines{title = "Decode speed over context depth", xlabel = "context depth (tokens)",
                   ylabel = "decode tokens/s", series = ds, xcategories = true}
end

return depth_report
