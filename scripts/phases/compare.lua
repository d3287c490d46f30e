-- Phase 3: GGUF (llama.cpp) vs MLX, through LM Studio and through
-- llama-server. Per variant: load time, TTFT, TPS, peak memory, TPS per GB;
-- the 4-bit and 8-bit comparison pairs; the seed's success criteria checked
-- and printed. An OOM kill is a recorded result of its cell (the runner goes
-- on); a model the plan marks `expect: oom` (BF16) is reported as expected.
local C = require("phases.common")
local estimate = require("bench.plan.estimate")
local units = require("bench.units")

local phase = {phase = "compare"}
phase.checks = C.checks

function phase.labels(ctx, cell, labels)
  labels.variant = cell.model and cell.model.name
  labels.platform = cell.axes.server
  labels.expect = cell.model and cell.model.expect
end

-- TPS per GB two ways: over the peak memory measured (report.md's TPS/GB)
-- and over the model's file size (the seed's "memory efficiency", which a
-- dry run can show: its measured memory is scaled down)
local function tps_per_gb(f, c)
  local size = c.labels and c.labels.size_bytes
  if not (f.decode_tps and size and size > 0) then return nil end
  return f.decode_tps / (size / 1e9)
end

-- the peak as report.md shows it (C.cell_peaks: a dry run's already scaled
-- back by its memory_scale)
local function shown_peak(f)
  return f.peak
end

local function tps_per_peak_gb(f, c)
  local peak = shown_peak(f)
  if not (f.decode_tps and peak and peak > 0) then return nil end
  return f.decode_tps / (peak / 1e9)
end

-- the memory limit in the units the run measured (a dry run scales memory)
local function limit_bytes(ctx)
  local crit = ctx.plan.criteria or {}
  local lim = crit.memory_limit
  if not lim then return nil end
  if ctx.dry then
    local f = require("bench.dryrun").figures(ctx.plan, ctx.plan.cells[1])
    return lim * f.memory_scale
  end
  return lim
end

function phase.finish(ctx, cells)
  local peaks = C.cell_peaks(ctx)
  local plan = ctx.plan
  local crit = plan.criteria or {}
  local nprompts = #estimate.prompt_budgets(plan)
  local ref_format = tostring(crit.comparable_to or "mlx"):lower()
  local REF = ref_format == "mlx" and "MLX" or ref_format
  local notes = {criteria = {}, pairs = {}, tps_per_gb = {}, tps_per_file_gb = {},
                 expected_prompts = nprompts, memory_limit_bytes = limit_bytes(ctx)}
  local fmt = "  %-22s %7s %12s %13s %16s %11s %12s %10s  %s"
  local lines = {"", "Per variant (" .. C.TPS_NOTE .. ";",
    "  TPS/GB peak = decode tok/s / peak GB measured, as in report.md; TPS/GB file = over the model's file size):",
    string.format(fmt, "cell", "load s", "TTFT p50 ms", "decode tok/s", "aggregate tok/s", "peak", "TPS/GB peak", "TPS/GB file", "status")}
  for _, c in ipairs(cells) do
    local f = C.figures(c, peaks)
    local t = tps_per_gb(f, c)
    notes.tps_per_gb[c.id] = tps_per_peak_gb(f, c)
    notes.tps_per_file_gb[c.id] = t
    lines[#lines + 1] = string.format(fmt, c.id, C.fmt(f.load_time_s, "", 2), C.fmt(f.ttft_ms), C.fmt(f.decode_tps),
      C.fmt(f.output_tps), f.peak and units.format_size(shown_peak(f)) or "n/a", C.fmt(tps_per_peak_gb(f, c), "", 2), C.fmt(t, "", 3),
      c.status .. (c.labels.expect == "oom" and c.status == "oom" and " (expected)" or ""))
  end

  -- comparison pairs, on each platform where both sides ran
  lines[#lines + 1] = ""
  lines[#lines + 1] = "Comparison pairs (the plan's compare:, a vs b):"
  local some_better = {}
  for _, pr in ipairs(plan.compare or {}) do
    local as = C.find(cells, function(l) return l.variant == pr.a and l.platform ~= "llama-server" end)
    if #as == 0 then as = C.find(cells, function(l) return l.variant == pr.a end) end
    local bs = C.find(cells, function(l) return l.variant == pr.b end)
    for _, b in ipairs(bs) do
      local a = as[1]
      if a and a.status == "ok" and b.status == "ok" then
        local fa, fb = C.figures(a, peaks), C.figures(b, peaks)
        local better = {}
        if fa.decode_tps and fb.decode_tps and fb.decode_tps >= fa.decode_tps * 0.95 then better[#better + 1] = "TPS" end
        if fa.ttft_ms and fb.ttft_ms and fb.ttft_ms <= fa.ttft_ms * 1.05 then better[#better + 1] = "TTFT" end
        if fa.peak and fb.peak and fb.peak <= fa.peak * 1.05 then better[#better + 1] = "memory" end
        if fa.load_time_s and fb.load_time_s and fb.load_time_s <= fa.load_time_s * 1.05 then better[#better + 1] = "load time" end
        local entry = {name = pr.name, a = a.id, b = b.id, tps_delta_pct = C.pct(fb.decode_tps, fa.decode_tps),
                       ttft_delta_pct = C.pct(fb.ttft_ms, fa.ttft_ms), comparable_in = better, note = pr.note}
        notes.pairs[#notes.pairs + 1] = entry
        if #better > 0 then some_better[#some_better + 1] = string.format("%s (%s)", b.id, table.concat(better, ", ")) end
        lines[#lines + 1] = string.format("  %-6s %s vs %s: TPS %s vs %s (%s), TTFT %s vs %s ms (%s)%s", pr.name, a.id, b.id,
          C.fmt(fa.decode_tps), C.fmt(fb.decode_tps), C.fmt_pct(entry.tps_delta_pct), C.fmt(fa.ttft_ms), C.fmt(fb.ttft_ms),
          C.fmt_pct(entry.ttft_delta_pct), pr.note and ("  [" .. pr.note .. "]") or "")
      end
    end
  end

  -- success criteria
  local function add(name, pass, detail)
    notes.criteria[#notes.criteria + 1] = {name = name, pass = pass, detail = detail}
    lines[#lines + 1] = string.format("  [%s] %s: %s", pass and "PASS" or "FAIL", name, detail)
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = "Success criteria (seed phase 3):"
  -- a model the plan expects to die (the seed's BF16: "already tested,
  -- FAILED") is judged by the OOM criterion below, not counted here
  local gguf, skipped = {}, {}
  for _, c in ipairs(C.find(cells, function(l) return l.format == "gguf" end)) do
    if c.labels.expect == "oom" or c.labels.expect == "fail" then skipped[#skipped + 1] = c.id else gguf[#gguf + 1] = c end
  end
  if crit.all_prompts_complete ~= false then
    local missing = {}
    for _, c in ipairs(gguf) do
      local f = C.figures(c, peaks)
      local want = nprompts * (c.repeats or 1)
      if c.status ~= "ok" or (f.ok or 0) < want then
        missing[#missing + 1] = string.format("%s (%s, %d/%d ok)", c.id, c.status, f.ok or 0, want)
      end
    end
    add(string.format("llama.cpp models complete all %d test cases", nprompts), #missing == 0,
        (#missing == 0 and string.format("%d GGUF cells", #gguf) or table.concat(missing, "; ")) ..
        (#skipped > 0 and ("; not counted, expected to fail by the plan: " .. table.concat(skipped, ", ")) or ""))
  end
  -- "comparable or better than MLX" needs MLX cells (the reference
  -- format) to compare with; a plan without them is not judged on it
  local refs = C.find(cells, function(l) return tostring(l.format or ""):lower() == ref_format end)
  if #refs > 0 then
    add(string.format("results comparable or better than %s in some metrics", REF), #some_better > 0,
        #some_better > 0 and table.concat(some_better, "; ")
          or string.format("no GGUF cell within 5%% of its %s pair on any metric", REF))
  end
  -- peaks are what they stand for (a dry run's scaled back), so the limit
  -- is the plan's own
  local lim = crit.memory_limit
  if lim then
    local over = {}
    for _, c in ipairs(cells) do
      local f = C.figures(c, peaks)
      if f.peak and f.peak > lim then over[#over + 1] = string.format("%s (%s)", c.id, units.format_size(f.peak)) end
    end
    add(string.format("memory usage stays within the %s limit", units.format_size(crit.memory_limit)), #over == 0,
        #over == 0 and "every cell's peak below it" .. (ctx.dry and " (dry run: peaks scaled back by memory_scale)" or "")
          or table.concat(over, "; "))
  end
  if crit.no_oom ~= false then
    local ooms, expected = {}, {}
    for _, c in ipairs(cells) do
      if c.status == "oom" then
        if c.labels.expect == "oom" then expected[#expected + 1] = c.id else ooms[#ooms + 1] = c.id end
      end
    end
    add("no OOM kills (unlike BF16)", #ooms == 0,
        (#ooms == 0 and "none unexpected" or ("OOM: " .. table.concat(ooms, ", "))) ..
        (#expected > 0 and ("; expected OOM (as in the seed): " .. table.concat(expected, ", ")) or ""))
  end
  -- the plan's notes (the seed's expected outcomes) close the report
  if plan.notes and #plan.notes > 0 then
    lines[#lines + 1] = ""
    lines[#lines + 1] = "To decide from these results (the plan's notes):"
    local text = {}
    for _, n in ipairs(plan.notes) do
      lines[#lines + 1] = "  - " .. n
      text[#text + 1] = "- " .. n
    end
    notes.text = "To decide from these results (the plan's notes):\n\n" .. table.concat(text, "\n")
  end
  return notes, lines
end

return phase
