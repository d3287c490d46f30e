-- Phase 4: batching and concurrency (vllm-mlx, with mlx-lm as the
-- single-request reference). Scenario 1: one request at a time at 100/500/2000
-- tokens; scenario 2: 2/4/8/16 concurrent at 500 tokens (aggregate TPS,
-- per-request TPS, scaling vs the baseline, p50/p95/p99); scenario 3: mixed
-- short/medium/long at 4 concurrent (fairness). Memory per concurrent request,
-- queue time and batch efficiency; the plan's questions (the seed's four)
-- answered where the data allows.
local common = require("phases.common")
local units = require("bench.units")
local analysis = require("bench.report.analysis")
local format = require("bench.report.format")

local phase = {phase = "batching"}

function phase.labels(ctx, cell, labels)
  labels.platform = cell.axes.server
end

local function by_server(cells, server)
  return common.find(cells, function(l) return (l.platform or l.server) == server end)
end

-- queue time: the client cannot see the server's queue, so unless the
-- records carry it, the extra wait before the first token compared with one
-- request alone stands for it (TTFT p50 at N minus TTFT p50 of the baseline)
local function queue_ms(m, mbase)
  if m.queue_p50 then return m.queue_p50, "measured" end
  if m.ttft_p50 and mbase and mbase.ttft_p50 then return math.max(0, m.ttft_p50 - mbase.ttft_p50), "est." end
  return nil
end

-- Mean of a /metrics gauge in a cell, named by its server's kind (lookup:
-- bench.backends.running_metric or queued_metric: vLLM, vllm-mlx, SGLang and
-- llama-server each name it differently). A dry run's simulator, or a server
-- of no known kind (command, external), exports whichever it does: the first
-- known name its samples carry.
local function gauge_mean(ctx, c, lookup)
  local name, all = require("bench.backends")[lookup](not c.dry_run and c.labels.backend or "sim")
  if name then return common.metric_mean(ctx, c.id, name) end
  for _, n in ipairs(all) do
    local v = common.metric_mean(ctx, c.id, n)
    if v then return v end
  end
  return nil
end

-- requests running (batch efficiency = this / the concurrency), and waiting (the server's queue)
local function running_mean(ctx, c) return gauge_mean(ctx, c, "running_metric") end
local function queued_mean(ctx, c) return gauge_mean(ctx, c, "queued_metric") end

-- the server a cell ran on (its name in the plan)
local function server_of(c)
  local l = c.labels or {}
  return l.platform or l.server
end

-- The reference machine the plan compares with (phase4.yaml's expected:
-- the seed's M4 Max figures), or nil: no plan of its own, no comparison.
local function reference(exp)
  local scaling = tonumber(exp.m4_max_scaling_16)
  if not scaling then return nil end
  return {scaling = scaling, label = string.format("M4 Max with vllm-mlx (the plan's expected: %s -> %s TPS at 16 concurrent)",
    tostring(exp.m4_max_single_tps or "?"), tostring(exp.m4_max_16_tps or "?"))}
end

-- The levels of a scaling group both the console and report.md answer
-- from: the highest level that produced a figure (the top one may have
-- failed), the level with the most aggregate throughput, and the lowest
-- level within 90% of it.
local function group_levels(g)
  local last = g.rows[#g.rows]
  for i = #g.rows, 1, -1 do if g.rows[i].scaling then last = g.rows[i] break end end
  local best
  for _, r in ipairs(g.rows) do if r.agg_tps and (not best or r.agg_tps > best.agg_tps) then best = r end end
  local knee
  for _, r in ipairs(g.rows) do if best and r.agg_tps and r.agg_tps >= 0.9 * best.agg_tps then knee = r break end end
  return last, best, knee
end

-- One table per server (its cells by concurrency: aggregate and decode
-- rates, scaling against its group's c=1 cell, latency, queue, batch
-- efficiency, peak) -> the first server's scaling group and that server,
-- and the servers in plan order.
local function server_tables(ctx, cells, groups, cm, notes, lines)
  -- cell id -> its row of a scaling group (the group of cells that differ
  -- only in concurrency) and that group
  local row_of, group_of = {}, {}
  for _, g in ipairs(groups) do
    for _, r in ipairs(g.rows) do
      for _, cell in ipairs(r.config.cells) do row_of[cell.id], group_of[cell.id] = r, g end
    end
  end
  local servers, seen = {}, {}
  for _, c in ipairs(cells) do
    local s = server_of(c)
    if s and not seen[s] then seen[s] = true servers[#servers + 1] = s end
  end
  local main_group, main_server
  local idw = 10
  for _, c in ipairs(cells) do idw = math.max(idw, #c.id) end
  local fmt = "  %-" .. idw .. "s %5s %15s %13s %8s %8s %8s %8s %12s %10s %7s %11s"
  for _, s in ipairs(servers) do
    local list = by_server(cells, s)
    local g
    for _, c in ipairs(list) do if group_of[c.id] then g = group_of[c.id] break end end
    local base = g and g.rows[1].config
    local mbase = base and base.metrics
    local base_tps = mbase and (mbase.output_tps or mbase.decode_tps)
    if g and not main_group then main_group, main_server = g, s end
    lines[#lines + 1] = ""
    lines[#lines + 1] = string.format("%s: single-request baseline %s decode tok/s, %s aggregate tok/s (%s)", s,
      common.fmt(mbase and mbase.decode_tps), common.fmt(mbase and mbase.output_tps),
      base and base.name or "no cells at several concurrencies")
    lines[#lines + 1] = string.format(fmt, "cell", "conc", "aggregate tok/s", "decode tok/s", "scaling",
      "E2E p50", "p95", "p99", "queue ms", "batch eff.", "queued", "peak")
    for _, c in ipairs(list) do
      local r = row_of[c.id]
      local m = r and r.config.metrics or cm[c.id] or {}
      local conc = c.labels.concurrency or 1
      local scaling = r and r.scaling
      if not r and m.output_tps and base_tps and base_tps > 0 then scaling = m.output_tps / base_tps end
      local q, qkind = queue_ms(m, mbase)
      local running = running_mean(ctx, c)
      local queued = queued_mean(ctx, c)
      local eff = running and running / conc or nil
      lines[#lines + 1] = string.format(fmt, c.id, conc,
        common.fmt(m.output_tps), common.fmt(m.decode_tps), scaling and string.format("%.2fx", scaling) or "n/a",
        common.fmt(m.e2el_p50, "", 0), common.fmt(m.e2el_p95, "", 0), common.fmt(m.e2el_p99, "", 0),
        q and (common.fmt(q, "", 1) .. (qkind == "est." and "*" or "")) or "n/a",
        eff and string.format("%.0f%%", eff * 100) or "n/a", common.fmt(queued, "", 2),
        m.peak_bytes and units.format_size(m.peak_bytes) or "n/a")
      notes.scaling[#notes.scaling + 1] = {cell = c.id, server = s, concurrency = conc, aggregate_tps = m.output_tps,
                                           per_request_tps = m.decode_tps, scaling = scaling, queue_ms = q,
                                           queue_ms_kind = qkind, batch_efficiency = eff, queued = queued}
    end
  end
  return main_group, main_server, servers
end

-- Answers 1, 2 and 4 (scaling, optimal concurrency, memory per request)
-- from the first server's scaling group (report.md answers from the same
-- groups), into answers[i].
local function group_answers(an, g, ref, exp, notes, answers)
  if g then
    local last, best, knee = group_levels(g)
    local verdict = ""
    if ref and last.scaling then
      verdict = string.format(" vs %.1fx of %s: %s", ref.scaling, ref.label, last.scaling > ref.scaling and "better" or "not better")
      if exp.m3_ultra_scaling_16 then
        verdict = verdict .. string.format(" (the plan expected %sx here: %s -> %s TPS on M3 Ultra)",
          tostring(exp.m3_ultra_scaling_16), tostring(exp.m3_ultra_baseline_tps or "?"), tostring(exp.m3_ultra_16_tps or "?"))
      end
    end
    answers[1] = string.format("Scaling at %d concurrent = %s (%s vs %s aggregate tok/s at c=%d)%s", last.conc,
      last.scaling and string.format("%.2fx", last.scaling) or "n/a", common.fmt(last.agg_tps), common.fmt(g.rows[1].agg_tps),
      g.base_conc, verdict)
    answers[2] = string.format("Optimal concurrency %s (the smallest level within 90%% of the best aggregate, %s tok/s at %d; E2E p95 there %s ms)",
      knee and tostring(knee.conc) or "n/a", common.fmt(best and best.agg_tps), best and best.conc or 0,
      common.fmt(knee and knee.config.metrics.e2el_p95, "", 0))
    if g.mem_per_request then
      local lo, hi = g.rows[1], last
      answers[4] = string.format("Memory per concurrent request about %s (least-squares slope of peak memory over concurrency %d-%d; peak %s at %d, %s at %d%s)",
        units.format_size(math.max(0, g.mem_per_request)), lo.conc, hi.conc,
        units.format_size(hi.config.metrics.peak_bytes or 0), hi.conc, units.format_size(lo.config.metrics.peak_bytes or 0), lo.conc,
        an.memory_scale and "; simulated" or "")
      notes.memory_per_request_bytes = g.mem_per_request
    else
      answers[4] = "Memory per concurrent request: no peak memory per concurrency level"
    end
  end
end

-- Answer 3: single user, the batching server vs the plain one, over every
-- single-request cell (100, 500 and 2000 tokens) of each.
local function single_user(cells, cm, servers, main_server, notes, answers)
  local function single_user_tps(server)
    local sum, n = 0, 0
    for _, c in ipairs(by_server(cells, server)) do
      local m = cm[c.id] or {}
      if (tonumber(c.labels.concurrency) or 1) == 1 and c.status == "ok" and m.decode_tps then sum, n = sum + m.decode_tps, n + 1 end
    end
    return n > 0 and sum / n or nil, n
  end
  if #servers > 1 then
    local sa = main_server or servers[1]
    local sb = sa == servers[1] and servers[2] or servers[1]
    local ta, na = single_user_tps(sa)
    local tb, nb = single_user_tps(sb)
    answers[3] = string.format("Single user: %s %s decode tok/s vs %s %s (%s; mean over %d and %d single-request cells): %s",
      sa, common.fmt(ta), sb, common.fmt(tb), common.fmt_pct(common.pct(ta, tb)), na, nb,
      (ta and tb) and (ta >= tb * 0.95 and "little or no single-user cost" or "a single-user cost; use it for concurrent users") or "no data")
    notes.batching_backend, notes.single_backend = sa, sb
  else
    answers[3] = "Single user: needs a second (non-batching) server in the plan"
  end
end

-- The figures come from the report's analysis of the same folder
-- (bench.report.analysis: its per-cell metrics, its scaling groups with
-- their c=1 baseline and memory slope), so the console says what report.md
-- and summary.csv say.
function phase.finish(ctx, cells)
  local an = common.analysis(ctx)
  local groups = an and require("bench.report.groups").scaling(an) or {}
  local cm = an and an.cell_metrics or {}
  local plan = ctx.plan
  local exp = plan.expected or {}
  local ref = reference(exp)
  local notes = {scaling = {}, answers = {}}
  local lines = {"", common.TPS_NOTE .. ";",
    "scaling = aggregate tok/s / that of the c=1 cell of its scaling group (as report.md); queue ms with * = estimated: TTFT p50 minus the baseline's;",
    "batch eff. = mean requests running (server /metrics) / concurrency; queued = mean requests waiting (server /metrics)"}
  local main_group, main_server, servers = server_tables(ctx, cells, groups, cm, notes, lines)
  local answers = {}
  if main_group then group_answers(an, main_group, ref, exp, notes, answers) end
  single_user(cells, cm, servers, main_server, notes, answers)
  notes.reference = ref
  -- the plan's own questions (phase4.yaml: the seed's four) head the
  -- answers in their order; without them the answers stand alone
  local qs = type(plan.questions) == "table" and plan.questions or {}
  lines[#lines + 1] = ""
  lines[#lines + 1] = #qs > 0 and "The plan's questions:" or "From this run:"
  for i = 1, 4 do
    if answers[i] then
      local text = qs[i] and (tostring(qs[i]) .. " " .. answers[i]) or answers[i]
      lines[#lines + 1] = string.format("  %d. %s", i, text)
      notes.answers[#notes.answers + 1] = text
    end
  end
  for i = 5, #qs do lines[#lines + 1] = string.format("  %d. %s (not answered by this script)", i, tostring(qs[i])) end
  if exp.headroom then lines[#lines + 1] = "  (the plan's expected: memory headroom " .. tostring(exp.headroom) .. ")" end
  return notes, lines
end

---------------------------------------------------------------------------
-- report.md's "Phase 4 questions" (the report hook, docs/phases.md), after
-- the "Throughput scaling with concurrency" section, from the report's
-- scaling groups; when it answers them, finish's notes.answers are not
-- repeated.
---------------------------------------------------------------------------
local ms, size = format.ms, format.size

-- 3: is batching worth it for one user? Every single-request
-- configuration of a server (100, 500 and 2000 tokens...): the mean of their
-- decode rates, their values pooled for the noise rule.
local function question_single_user(out, an, notes, prefix)
  -- every single-request configuration of a backend (100, 500 and 2000
  -- tokens...): the mean of their decode rates, their values pooled for
  -- the noise rule
  local backends = {}
  -- servers by their name in the plan (two servers of one backend, e.g.
  -- llama-server with and without --parallel, are two), as phase 4's script
  for _, c in ipairs(an.configs) do
    local srv = c.labels.platform or c.labels.server or c.labels.backend
    if tonumber(c.labels.concurrency) == 1 and srv and c.metrics.decode_tps and c.status == "ok" then
      local b = tostring(srv)
      local e = backends[b]
      if not e then
        e = {tps = {}, rv = {decode_tps = {}, per_request = {decode_tps = {}}}}
        backends[b] = e
      end
      e.tps[#e.tps + 1] = c.metrics.decode_tps
      for _, v in ipairs(c.repeat_values.decode_tps or {}) do e.rv.decode_tps[#e.rv.decode_tps + 1] = v end
      local pr = c.repeat_values.per_request and c.repeat_values.per_request.decode_tps or {}
      for _, v in ipairs(pr) do e.rv.per_request.decode_tps[#e.rv.per_request.decode_tps + 1] = v end
    end
  end
  for _, e in pairs(backends) do e.mean = analysis.mean(e.tps) end
  local names = {}
  for b in pairs(backends) do names[#names + 1] = b end
  table.sort(names)
  if #names >= 2 then
    local parts = {}
    for _, b in ipairs(names) do
      local e = backends[b]
      parts[#parts + 1] = string.format("%s %.1f TPS%s", b, e.mean,
        #e.tps > 1 and string.format(" (mean of %d single-request cells)", #e.tps) or "")
    end
    local batching = notes.batching_backend or "vllm-mlx"
    local plain = notes.single_backend or "mlx-lm"
    local verdict = ""
    if backends[batching] and backends[plain] then
      local d = (backends[batching].mean - backends[plain].mean) / backends[plain].mean * 100
      local n = analysis.noise(backends[plain].rv, backends[batching].rv, "decode_tps")
      verdict = string.format(": %s is %+.1f%% vs %s for a single user%s", batching, d, plain,
        n.verdict == "no" and " (within run-to-run noise)" or "")
      verdict = verdict .. ((d > 0 and n.verdict ~= "no") and "; batching costs nothing for one user" or
        "; for one user the batching server brings no gain")
    end
    out[#out + 1] = string.format("3. %sIs batching worth it for a single user? At concurrency 1: %s%s.", prefix,
      table.concat(parts, ", "), verdict)
  else
    out[#out + 1] = "3. " .. prefix .. "Batching for a single user: not answerable from this run (single-request figures for "
      .. (names[1] or "no server") .. " only; run the non-batching server at concurrency 1 too)."
  end
end

-- Phase 4's four questions, answered from the scaling groups where possible.
local function section_questions(out, an, groups)
  if #groups == 0 then return end
  local notes = an.data.summary.notes or {}
  -- the reference machine comes from the plan (phase4.yaml's expected:,
  -- through the phase script's notes); without one, no comparison
  local ref = type(notes.reference) == "table" and notes.reference or {}
  out[#out + 1] = "## Phase 4 questions"
  out[#out + 1] = ""
  for _, g in ipairs(groups) do
    local prefix = #groups > 1 and ("(" .. g.name .. ") ") or ""
    -- the highest level that produced a figure (the top one may have failed)
    local last, best, knee = group_levels(g)
    -- 1: scaling compared with the reference machine
    if last.scaling and ref.scaling then
      out[#out + 1] = string.format("1. %sDoes this machine scale better than the reference? At %d concurrent requests aggregate "
        .. "throughput is %.2f× the c=%d figure (%.1f vs %.1f TPS); the reference, %s, is %.1f×: %s.",
        prefix, last.conc, last.scaling, g.base_conc, last.agg_tps or 0, g.rows[1].agg_tps or 0, ref.label, ref.scaling,
        last.scaling > ref.scaling and "yes, it scales better" or "no, it scales less")
    elseif last.scaling then
      out[#out + 1] = string.format("1. %sScaling: at %d concurrent requests aggregate throughput is %.2f× the c=%d figure "
        .. "(%.1f vs %.1f TPS).", prefix, last.conc, last.scaling, g.base_conc, last.agg_tps or 0, g.rows[1].agg_tps or 0)
    else
      out[#out + 1] = "1. " .. prefix .. "Scaling: not answerable (no aggregate throughput at the highest concurrency)."
    end
    -- 2: optimal concurrency
    if best then
      local slo = tonumber(notes.slo_e2el_p95_ms)
      local slo_best
      if slo then
        for _, r in ipairs(g.rows) do
          if r.config.metrics.e2el_p95 and r.config.metrics.e2el_p95 <= slo and r.agg_tps
            and (not slo_best or r.agg_tps > slo_best.agg_tps) then slo_best = r end
        end
      end
      local knee_text = knee == best and string.format(" (E2E p95 %s ms); no lower level reaches 90%% of it",
          ms(best.config.metrics.e2el_p95))
        or string.format("; %d concurrent already reaches 90%% of it (%.1f TPS, E2E p95 %s ms)",
          knee.conc, knee.agg_tps, ms(knee.config.metrics.e2el_p95))
      out[#out + 1] = string.format("2. %sOptimal concurrency: the most throughput is at %d concurrent (%.1f TPS)%s%s.",
        prefix, best.conc, best.agg_tps, knee_text,
        slo and (slo_best and string.format("; within the E2E p95 SLO of %s ms the best is %d concurrent", ms(slo), slo_best.conc)
          or string.format("; no level meets the E2E p95 SLO of %s ms", ms(slo))) or "")
    end
    if not best then
      out[#out + 1] = "2. " .. prefix .. "Optimal concurrency: not answerable (no level produced a throughput figure)."
    end
    question_single_user(out, an, notes, prefix)
    -- 4: memory per request
    if g.mem_per_request then
      out[#out + 1] = string.format("4. %sMemory per concurrent request: %s (slope of peak memory over concurrency %d–%d%s).",
        prefix, size(g.mem_per_request), g.rows[1].conc, last.conc, an.memory_scale and "; simulated" or "")
    else
      out[#out + 1] = "4. " .. prefix .. "Memory per concurrent request: not answerable (no peak memory per concurrency level)."
    end
  end
  out[#out + 1] = ""
end

function phase.report(an, ctx)
  if #ctx.scaling == 0 then return nil end
  local out = {}
  section_questions(out, an, ctx.scaling)
  return {sections = {{after = "scaling", lines = out}}, answered = true}
end

return phase
