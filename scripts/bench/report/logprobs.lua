-- bench.report.logprobs: "Quality by logprobs" (plans with quality:
-- {logprobs: k}). Per configuration against the reference (the highest
-- precision whose cells have logprobs, as bench.report.quality picks):
-- top-1 token agreement, mean KL divergence over the top-k, the first
-- divergence position, the text similarity beside them, and quality per
-- GB next to TPS/GB. docs/reports.md, "Quality by logprobs".
local logprobs = require("bench.logprobs")
local quality = require("bench.report.quality")
local energy_report = require("bench.report.energy")

local report_logprobs = {}

-- the prompts' logprobs of a configuration: {name = {tokens?, note?}}
local function runs_of(c)
  local runs
  for _, cell in ipairs(c.cells or {}) do
    if type(cell.quality_logprobs) == "table" then
      runs = runs or {}
      for k, v in pairs(cell.quality_logprobs) do if runs[k] == nil then runs[k] = v end end
    end
  end
  return runs
end

local function mean(xs)
  if #xs == 0 then return nil end
  local s = 0
  for _, x in ipairs(xs) do s = s + x end
  return s / #xs
end

-- report_logprobs.compare(configs) -> {reference = config, rows = {{config,
-- is_ref, top1, kl, first_divergence (the earliest over the prompts),
-- identical (prompts whose answers agree token for token), prompts,
-- similarity, quality_per_gb, tps_per_gb, note}}} or nil
function report_logprobs.compare(configs)
  local with = {}
  for _, c in ipairs(configs or {}) do
    local runs = runs_of(c)
    if runs then with[#with + 1] = {config = c, runs = runs} end
  end
  if #with == 0 then return nil end
  local ref
  for _, w in ipairs(with) do
    local has = false
    for _, r in pairs(w.runs) do if r.tokens and #r.tokens > 0 then has = true end end
    if has and (not ref or (w.config.bits or 0) > (ref.config.bits or 0)) then ref = w end
  end
  local rows = {}
  for _, w in ipairs(with) do
    local row = {config = w.config, is_ref = w == ref, prompts = 0, identical = 0}
    local top1, kl, sims, notes = {}, {}, {}, {}
    local names = {}
    for name in pairs(w.runs) do names[#names + 1] = name end
    table.sort(names)
    for _, name in ipairs(names) do
      local run = w.runs[name]
      if run.note then notes[#notes + 1] = name .. ": " .. run.note end
      local rr = ref and ref.runs[name]
      if run.tokens and rr and rr.tokens then
        local cmp = logprobs.compare(rr.tokens, run.tokens)
        if cmp then
          row.prompts = row.prompts + 1
          top1[#top1 + 1] = cmp.top1_agreement
          if cmp.kl_mean then kl[#kl + 1] = cmp.kl_mean end
          if cmp.first_divergence then
            if not row.first_divergence or cmp.first_divergence < row.first_divergence then row.first_divergence = cmp.first_divergence end
          else
            row.identical = row.identical + 1
          end
          local text_a, text_b = {}, {}
          for i, e in ipairs(rr.tokens) do text_a[i] = e.t or "" end
          for i, e in ipairs(run.tokens) do text_b[i] = e.t or "" end
          sims[#sims + 1] = quality.similarity(table.concat(text_a), table.concat(text_b)).lcs
        end
      end
    end
    row.top1, row.kl, row.similarity = mean(top1), mean(kl), mean(sims)
    if not ref then notes[#notes + 1] = "no configuration returned logprobs" end
    row.note = #notes > 0 and table.concat(notes, "; ") or nil
    local m = w.config.metrics or {}
    row.tps_per_gb = m.tps_per_gb
    if row.top1 and m.peak_bytes and m.peak_bytes > 0 then row.quality_per_gb = row.top1 / (m.peak_bytes / 1e9) end
    rows[#rows + 1] = row
  end
  return {reference = ref and ref.config, rows = rows}
end

local function f(fmt, x) return x and string.format(fmt, x) or "–" end

function report_logprobs.section(out, an, table_fn)
  local cmp = report_logprobs.compare(an.configs)
  if not cmp then return end
  out[#out + 1] = "## Quality by logprobs"
  out[#out + 1] = ""
  out[#out + 1] = "Reference: **" .. (cmp.reference and cmp.reference.name or "none") .. "** (highest precision "
    .. "with logprobs). Each variant answered the same prompts at temperature 0. Top-1 agreement = positions whose "
    .. "chosen token equals the reference's; KL = mean KL(reference ‖ variant) over the reference's top-k, at the "
    .. "positions before the answers part; first divergence = the earliest such position over the prompts (– : "
    .. "identical); quality/GB = top-1 agreement ÷ peak memory GB."
  out[#out + 1] = ""
  local rows = {}
  for _, r in ipairs(cmp.rows) do
    rows[#rows + 1] = {energy_report.mark(r.config, r.config.name .. (r.is_ref and " (reference)" or "")), f("%.3f", r.top1), f("%.4f", r.kl),
      r.first_divergence and tostring(r.first_divergence) or (r.prompts > 0 and "–" or "n/a"),
      f("%.3f", r.similarity), f("%.2f", r.tps_per_gb), f("%.3f", r.quality_per_gb), r.note or ""}
  end
  out[#out + 1] = table_fn({"Configuration", "Top-1 agreement", "Mean KL (top-k)", "First divergence", "Similarity",
                            "TPS/GB", "Quality/GB", "Note"}, rows, {"l", "r", "r", "r", "r", "r", "r", "l"})
  out[#out + 1] = ""
end

-- the report's JSON part
function report_logprobs.json(an)
  local cmp = report_logprobs.compare(an.configs)
  if not cmp then return nil end
  local rows = {}
  for _, r in ipairs(cmp.rows) do
    rows[#rows + 1] = {config = r.config.name, reference = r.is_ref or nil, top1_agreement = r.top1, kl_mean = r.kl,
      first_divergence = r.first_divergence, identical_prompts = r.identical, prompts = r.prompts,
      similarity = r.similarity, tps_per_gb = r.tps_per_gb, quality_per_gb = r.quality_per_gb, note = r.note}
  end
  return {reference = cmp.reference and cmp.reference.name, rows = rows}
end

return report_logprobs
