-- Phase 3: GGUF (llama.cpp) vs MLX, through LM Studio and through
-- llama-server. Per variant: load time, TTFT, TPS, peak memory, TPS per GB;
-- the 4-bit and 8-bit comparison pairs; the seed's success criteria checked
-- and printed. An OOM kill is a recorded result of its cell (the runner goes
-- on); a model the plan marks `expect: oom` (BF16) is reported as expected.
local common = require("phases.common")
local estimate = require("bench.plan.estimate")
local units = require("bench.units")
local analysis = require("bench.report.analysis")
local format = require("bench.report.format")
local quality = require("bench.report.quality")
local energy_report = require("bench.report.energy")
local groups = require("bench.report.groups")

local phase = {phase = "compare"}
phase.checks = common.checks

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

-- the peak as report.md shows it (common.cell_peaks: a dry run's already scaled
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

-- the per-variant table: load, TTFT, rates, peak, TPS/GB two ways
local function variant_table(cells, peaks, notes, lines)
  local fmt = "  %-22s %7s %12s %13s %16s %11s %12s %10s  %s"
  lines[#lines + 1] = "Per variant (" .. common.TPS_NOTE .. ";"
  lines[#lines + 1] = "  TPS/GB peak = decode tok/s / peak GB measured, as in report.md; TPS/GB file = over the model's file size):"
  lines[#lines + 1] = string.format(fmt, "cell", "load s", "TTFT p50 ms", "decode tok/s", "aggregate tok/s", "peak", "TPS/GB peak", "TPS/GB file", "status")
  for _, c in ipairs(cells) do
    local f = common.figures(c, peaks)
    local t = tps_per_gb(f, c)
    notes.tps_per_gb[c.id] = tps_per_peak_gb(f, c)
    notes.tps_per_file_gb[c.id] = t
    lines[#lines + 1] = string.format(fmt, c.id, common.fmt(f.load_time_s, "", 2), common.fmt(f.ttft_ms), common.fmt(f.decode_tps),
      common.fmt(f.output_tps), f.peak and units.format_size(shown_peak(f)) or "n/a", common.fmt(tps_per_peak_gb(f, c), "", 2), common.fmt(t, "", 3),
      c.status .. (c.labels.expect == "oom" and c.status == "oom" and " (expected)" or ""))
  end
end

-- comparison pairs (the plan's compare:), on each platform where both
-- sides ran -> the b cells comparable or better than their a, with how
local function compare_pairs(plan, cells, peaks, notes, lines)
  lines[#lines + 1] = ""
  lines[#lines + 1] = "Comparison pairs (the plan's compare:, a vs b):"
  local some_better = {}
  for _, pr in ipairs(plan.compare or {}) do
    local as = common.find(cells, function(l) return l.variant == pr.a and l.platform ~= "llama-server" end)
    if #as == 0 then as = common.find(cells, function(l) return l.variant == pr.a end) end
    local bs = common.find(cells, function(l) return l.variant == pr.b end)
    for _, b in ipairs(bs) do
      local a = as[1]
      if a and a.status == "ok" and b.status == "ok" then
        local fa, fb = common.figures(a, peaks), common.figures(b, peaks)
        local better = {}
        if fa.decode_tps and fb.decode_tps and fb.decode_tps >= fa.decode_tps * 0.95 then better[#better + 1] = "TPS" end
        if fa.ttft_ms and fb.ttft_ms and fb.ttft_ms <= fa.ttft_ms * 1.05 then better[#better + 1] = "TTFT" end
        if fa.peak and fb.peak and fb.peak <= fa.peak * 1.05 then better[#better + 1] = "memory" end
        if fa.load_time_s and fb.load_time_s and fb.load_time_s <= fa.load_time_s * 1.05 then better[#better + 1] = "load time" end
        local entry = {name = pr.name, a = a.id, b = b.id, tps_delta_pct = common.pct(fb.decode_tps, fa.decode_tps),
                       ttft_delta_pct = common.pct(fb.ttft_ms, fa.ttft_ms), comparable_in = better, note = pr.note}
        notes.pairs[#notes.pairs + 1] = entry
        if #better > 0 then some_better[#some_better + 1] = string.format("%s (%s)", b.id, table.concat(better, ", ")) end
        lines[#lines + 1] = string.format("  %-6s %s vs %s: TPS %s vs %s (%s), TTFT %s vs %s ms (%s)%s", pr.name, a.id, b.id,
          common.fmt(fa.decode_tps), common.fmt(fb.decode_tps), common.fmt_pct(entry.tps_delta_pct), common.fmt(fa.ttft_ms), common.fmt(fb.ttft_ms),
          common.fmt_pct(entry.ttft_delta_pct), pr.note and ("  [" .. pr.note .. "]") or "")
      end
    end
  end
  return some_better
end

-- "llama.cpp models complete all N test cases": a model the plan expects to
-- die (the seed's BF16: "already tested, FAILED") is judged by the OOM
-- criterion, not counted here
local function all_prompts(cells, peaks, nprompts, add)
  local gguf, skipped = {}, {}
  for _, c in ipairs(common.find(cells, function(l) return l.format == "gguf" end)) do
    if c.labels.expect == "oom" or c.labels.expect == "fail" then skipped[#skipped + 1] = c.id else gguf[#gguf + 1] = c end
  end
  local missing = {}
  for _, c in ipairs(gguf) do
    local f = common.figures(c, peaks)
    local want = nprompts * (c.repeats or 1)
    if c.status ~= "ok" or (f.ok or 0) < want then
      missing[#missing + 1] = string.format("%s (%s, %d/%d ok)", c.id, c.status, f.ok or 0, want)
    end
  end
  add(string.format("llama.cpp models complete all %d test cases", nprompts), #missing == 0,
      (#missing == 0 and string.format("%d GGUF cells", #gguf) or table.concat(missing, "; ")) ..
      (#skipped > 0 and ("; not counted, expected to fail by the plan: " .. table.concat(skipped, ", ")) or ""))
end

-- memory within the plan's limit, and no OOM kill but those the plan expects
local function memory_criteria(ctx, cells, peaks, add)
  local crit = ctx.plan.criteria or {}
  -- peaks are what they stand for (a dry run's scaled back), so the limit
  -- is the plan's own
  local lim = crit.memory_limit
  if lim then
    local over = {}
    for _, c in ipairs(cells) do
      local f = common.figures(c, peaks)
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
end

function phase.finish(ctx, cells)
  local peaks = common.cell_peaks(ctx)
  local plan = ctx.plan
  local crit = plan.criteria or {}
  local nprompts = #estimate.prompt_budgets(plan)
  local ref_format = tostring(crit.comparable_to or "mlx"):lower()
  local REF = ref_format == "mlx" and "MLX" or ref_format
  local notes = {criteria = {}, pairs = {}, tps_per_gb = {}, tps_per_file_gb = {},
                 expected_prompts = nprompts, memory_limit_bytes = limit_bytes(ctx)}
  local lines = {""}
  variant_table(cells, peaks, notes, lines)
  local some_better = compare_pairs(plan, cells, peaks, notes, lines)

  -- success criteria
  local function add(name, pass, detail)
    notes.criteria[#notes.criteria + 1] = {name = name, pass = pass, detail = detail}
    lines[#lines + 1] = string.format("  [%s] %s: %s", pass and "PASS" or "FAIL", name, detail)
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = "Success criteria (seed phase 3):"
  if crit.all_prompts_complete ~= false then all_prompts(cells, peaks, nprompts, add) end
  -- "comparable or better than MLX" needs MLX cells (the reference
  -- format) to compare with; a plan without them is not judged on it
  local refs = common.find(cells, function(l) return tostring(l.format or ""):lower() == ref_format end)
  if #refs > 0 then
    add(string.format("results comparable or better than %s in some metrics", REF), #some_better > 0,
        #some_better > 0 and table.concat(some_better, "; ")
          or string.format("no GGUF cell within 5%% of its %s pair on any metric", REF))
  end
  memory_criteria(ctx, cells, peaks, add)
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

---------------------------------------------------------------------------
-- report.md's phase-3 sections (the report hook, docs/phases.md): the
-- MLX-vs-GGUF pairs of the report's analysis (mlx_gguf_pairs below), the
-- plan's own compare: pairs (notes.pairs, written by finish above) and the
-- success criteria, after the "Errors and warnings" section; a finding per
-- MLX-vs-GGUF pair; and the pairs in summary.json's analysis.
---------------------------------------------------------------------------
local ms, tps, gb, secs, pct, num2, size = format.ms, format.tps, format.gb, format.secs, format.pct, format.num2, format.size

-- MLX vs GGUF configurations of the same bit width, at single concurrency
-- and default settings: {{bits, mlx = config, gguf = config}...} by bit width.
local function mlx_gguf_pairs(an)
  local by_bits = {}
  for _, c in ipairs(an.configs) do
    local conc = tonumber(c.labels.concurrency) or 1
    if c.bits and c.format and conc == 1 and groups.is_default_config(c) then
      local b = by_bits[c.bits]
      if not b then b = {} by_bits[c.bits] = b end
      b[c.format] = b[c.format] or {}
      table.insert(b[c.format], c)
    end
  end
  local out = {}
  local bits = {}
  for b in pairs(by_bits) do bits[#bits + 1] = b end
  table.sort(bits)
  for _, b in ipairs(bits) do
    local g = by_bits[b]
    if g.mlx and g.gguf then
      -- prefer the seed's named pairs (Q4_K_M for 4-bit, Q8_0 for 8-bit), then
      -- the same server as the MLX side (LM Studio for both, in the seed)
      local mlx = g.mlx[1]
      local best, best_score = nil, -1
      for _, c in ipairs(g.gguf) do
        local q = tostring(c.labels.quant or c.labels.variant or c.labels.model or ""):upper()
        local score = 0
        if (b == 4 and q:find("Q4_K_M")) or (b == 8 and q:find("Q8_0")) then score = score + 2 end
        if c.labels.backend ~= nil and c.labels.backend == mlx.labels.backend then score = score + 1 end
        if score > best_score then best, best_score = c, score end
      end
      out[#out + 1] = {bits = b, mlx = mlx, gguf = best}
    end
  end
  return out
end

-- the pairs as summary.json's analysis.pairs holds them
local function pairs_json(pairs_)
  local out = {}
  for _, p in ipairs(pairs_) do
    out[#out + 1] = {bits = p.bits, mlx = p.mlx.name, gguf = p.gguf.name,
      mlx_decode_tps = p.mlx.metrics.decode_tps, gguf_decode_tps = p.gguf.metrics.decode_tps}
  end
  return out
end

local function section_pairs(out, an, pairs_)
  if #pairs_ == 0 then return end
  out[#out + 1] = "## MLX vs llama.cpp (GGUF) at the same bit width"
  out[#out + 1] = ""
  for _, p in ipairs(pairs_) do
    out[#out + 1] = string.format("### %d-bit: %s vs %s", p.bits, p.mlx.name, p.gguf.name)
    out[#out + 1] = ""
    local mm, gm = p.mlx.metrics, p.gguf.metrics
    local function row(name, k, f, higher_better)
      local a, b = mm[k], gm[k]
      local d = (a and b and a ~= 0) and (b - a) / a * 100 or nil
      local better = ""
      if a and b and a ~= b then
        local gguf_wins = (b > a) == higher_better
        better = gguf_wins and "GGUF" or "MLX"
      end
      return {name, f(a), f(b), pct(d), better}
    end
    local rows = {
      row("Load time (s)", "load_s", secs, false),
      row("TTFT p50 (ms)", "ttft_p50", ms, false),
      row("Decode TPS", "decode_tps", tps, true),
      row("Peak memory (GB)", "peak_bytes", gb, false),
      row("TPS/GB", "tps_per_gb", num2, true),
      row("Model size (GB)", "model_bytes", gb, false),
    }
    local n = analysis.noise(p.mlx.repeat_values, p.gguf.repeat_values, "decode_tps")
    out[#out + 1] = format.table({"Metric", "MLX", "GGUF", "GGUF vs MLX", "Better"}, rows)
    out[#out + 1] = ""
    if n.verdict ~= "n/a" then
      out[#out + 1] = string.format("Decode TPS difference %s run-to-run noise (%s: |Δ| %.2f vs threshold %.2f).",
        n.verdict == "yes" and "exceeds" or "is within", n.basis, math.abs(n.diff), n.threshold)
      out[#out + 1] = ""
    end
    p.noise = n
  end
end

local function expected_prompts(an)
  local notes = an.data.summary.notes or {}
  if tonumber(notes.expected_prompts) then return tonumber(notes.expected_prompts) end
  local names = {}
  for _, c in ipairs(an.configs) do
    for k in pairs(quality.outputs_of(c)) do names[k] = true end
    for _, r in ipairs(c.records) do if analysis.rec_prompt(r) then names[analysis.rec_prompt(r)] = true end end
  end
  local n = 0
  for _ in pairs(names) do n = n + 1 end
  return n
end

local function memory_limit(an)
  local notes = an.data.summary.notes or {}
  if tonumber(notes.memory_limit_bytes) then
    -- a dry run's phase script scales the limit like the models; the peaks
    -- here are scaled back, so the limit is too
    local lim = tonumber(notes.memory_limit_bytes)
    if an.memory_scale and notes.dry_run then return lim / an.memory_scale, "plan limit, simulated" end
    return lim, "plan limit"
  end
  local ram = format.host_ram((an.data.env or {}).host)
  if ram then return ram, "host RAM" end
  return nil
end

local function prompts_completed(c)
  local done, failed = {}, {}
  for _, r in ipairs(c.records) do
    local p = analysis.rec_prompt(r)
    if p then
      if r.ok == false or r.error ~= nil then failed[p] = true else done[p] = true end
    end
  end
  local n = 0
  for k in pairs(done) do if not failed[k] then n = n + 1 end end
  if n == 0 then for _ in pairs(quality.outputs_of(c)) do n = n + 1 end end
  return n
end

-- Phase 3's success criteria, one row per configuration at single concurrency.
local function section_criteria(out, an, pairs_)
  local expect = expected_prompts(an)
  local limit, limit_src = memory_limit(an)
  local rows = {}
  local verdicts = {}
  local any_expect = false
  for _, c in ipairs(an.configs) do
    if (tonumber(c.labels.concurrency) or 1) == 1 then
      local done = prompts_completed(c)
      local all = expect > 0 and done >= expect and c.status == "ok"
      local within = nil
      if limit and c.metrics.peak_bytes then within = c.metrics.peak_bytes <= limit end
      local no_oom = c.status ~= "oom"
      -- what the plan expects of this configuration (labels.expect, e.g.
      -- "oom": BF16 does not fit) turns that outcome into a pass
      local expected = c.labels.expect ~= nil and tostring(c.labels.expect):lower() or nil
      local as_expected = expected ~= nil and (expected == c.status or (expected == "ok" and c.status == "ok"))
      if expected then any_expect = true end
      local better = nil
      -- GGUF against the MLX configuration of the same bit width
      local mlx_peer
      for _, p in ipairs(pairs_) do if p.gguf == c then mlx_peer = p.mlx end end
      if not mlx_peer and c.format == "gguf" and c.bits then
        for _, o in ipairs(an.configs) do
          if o.format == "mlx" and o.bits == c.bits and (tonumber(o.labels.concurrency) or 1) == 1 and o.status == "ok" then
            mlx_peer = o
            break
          end
        end
      end
      if mlx_peer and c.status == "ok" then
        do
          local mm, gm = mlx_peer.metrics, c.metrics
          better = (gm.decode_tps and mm.decode_tps and gm.decode_tps >= mm.decode_tps)
            or (gm.ttft_p50 and mm.ttft_p50 and gm.ttft_p50 <= mm.ttft_p50)
            or (gm.peak_bytes and mm.peak_bytes and gm.peak_bytes <= mm.peak_bytes)
            or (gm.load_s and mm.load_s and gm.load_s <= mm.load_s) or false
        end
      end
      local function yn(v) if v == nil then return "–" end return v and "✅" or "❌" end
      local prompts_txt = string.format("%s %d/%d", yn(all), done, expect)
      local oom_txt = yn(no_oom)
      local within_txt = yn(within)
      if as_expected and c.status ~= "ok" then
        prompts_txt = string.format("– %d/%d (expected %s)", done, expect, expected)
        oom_txt = no_oom and "–" or "✅ expected OOM"
        within_txt = "–"
      elseif expected and not as_expected then
        oom_txt = oom_txt .. string.format(" (expected %s, got %s)", expected, c.status)
      end
      local row = {energy_report.mark(c, c.name), prompts_txt, within_txt, oom_txt, yn(better)}   -- throttled: said
      if any_expect or expected then row[6] = expected and (as_expected and "✅ " .. expected or "❌ " .. expected) or "" end
      rows[#rows + 1] = row
      verdicts[#verdicts + 1] = {config = c, all = all, within = within, no_oom = no_oom, as_expected = as_expected}
    end
  end
  if #rows == 0 then return end
  -- "comparable or better than MLX" only where there is MLX to compare with
  local has_mlx = false
  for _, c in ipairs(an.configs) do if c.format == "mlx" then has_mlx = true end end
  if not has_mlx then
    for _, r in ipairs(rows) do table.remove(r, 5) end
  end
  out[#out + 1] = "## Success criteria (phase 3)"
  out[#out + 1] = ""
  local head = {an.names_are_ids and "Cell" or "Configuration", "All prompts complete",
    "Within memory limit" .. (limit and string.format(" (%s, %s)", size(limit), limit_src) or ""),
    "No OOM kill"}
  if has_mlx then head[#head + 1] = "Comparable or better than MLX in some metric" end
  if any_expect then head[#head + 1] = "As the plan expects" end
  out[#out + 1] = format.table(head, rows, {"l", "l", "l", "l", "l", "l"})
  out[#out + 1] = ""
  return verdicts
end


-- The plan's own compare: pairs (phase 3's script writes them to the notes,
-- a and b by cell id): one delta table each, b against a.
local function section_plan_pairs(out, an)
  local notes = an.data.summary.notes or {}
  if type(notes.pairs) ~= "table" or #notes.pairs == 0 then return end
  local by_cell = {}
  for _, c in ipairs(an.configs) do for _, cell in ipairs(c.cells) do by_cell[tostring(cell.id)] = c end end
  local any = false
  for _, p in ipairs(notes.pairs) do
    local a, b = type(p) == "table" and by_cell[tostring(p.a)], type(p) == "table" and by_cell[tostring(p.b)]
    if a and b then
      if not any then
        out[#out + 1] = "## The plan's comparison pairs"
        out[#out + 1] = ""
        any = true
      end
      out[#out + 1] = string.format("### %s: %s vs %s", tostring(p.name or "?"), energy_report.mark(a, a.name),
                                    energy_report.mark(b, b.name))
      out[#out + 1] = ""
      if p.note then
        out[#out + 1] = tostring(p.note)
        out[#out + 1] = ""
      end
      local ma, mb = a.metrics, b.metrics
      local function row(name, k, f)
        local x, y = ma[k], mb[k]
        return {name, f(x), f(y), pct((x and y and x ~= 0) and (y - x) / x * 100 or nil)}
      end
      out[#out + 1] = format.table({"Metric", energy_report.mark(a, a.name), energy_report.mark(b, b.name), "b vs a"}, {
        row("Load time (s)", "load_s", secs),
        row("TTFT p50 (ms)", "ttft_p50", ms),
        row("Decode TPS", "decode_tps", tps),
        row("Peak memory (GB)", "peak_bytes", gb),
        row("TPS/GB", "tps_per_gb", num2),
      })
      out[#out + 1] = ""
    end
  end
end

-- the winner of each MLX-vs-GGUF pair, for the report's findings
local function pair_findings(pairs_)
  local recs = {}
  for _, p in ipairs(pairs_) do
    local mm, gm = p.mlx.metrics, p.gguf.metrics
    if mm.decode_tps and gm.decode_tps then
      local n = p.noise or analysis.noise(p.mlx.repeat_values, p.gguf.repeat_values, "decode_tps")
      local winner = gm.decode_tps > mm.decode_tps and "llama.cpp (GGUF)" or "MLX"
      if n.verdict == "no" then
        recs[#recs + 1] = string.format("At %d-bit, MLX (%s) and GGUF (%s) decode at the same speed within noise (%.1f vs %.1f TPS): choose on memory or compatibility.",
          p.bits, p.mlx.name, p.gguf.name, mm.decode_tps, gm.decode_tps)
      else
        recs[#recs + 1] = string.format("At %d-bit, prefer **%s** for decode speed: %s %.1f TPS vs %s %.1f TPS (%+.1f%%).",
          p.bits, winner, p.gguf.name, gm.decode_tps, p.mlx.name, mm.decode_tps, (gm.decode_tps - mm.decode_tps) / mm.decode_tps * 100)
      end
    end
  end
  return recs
end

-- The MLX-vs-GGUF sections belong to phase 3 and to combined analyses that
-- hold its runs; a run forced to another phase (benchrun report --phase)
-- shows none.
function phase.report(an, ctx)
  local p = ctx.phase
  local pairs_ = mlx_gguf_pairs(an)
  if not (p == "compare" or ((p == nil or ctx.combined) and #pairs_ > 0)) then return nil end
  local out = {}
  section_pairs(out, an, pairs_)
  section_plan_pairs(out, an)
  section_criteria(out, an, pairs_)
  return {findings = pair_findings(pairs_), sections = {{after = "errors", lines = out}},
          analysis = {pairs = pairs_json(pairs_)}}
end

return phase
