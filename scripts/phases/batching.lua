-- Phase 4: batching and concurrency (vllm-mlx, with mlx-lm as the
-- single-request reference). Scenario 1: one request at a time at 100/500/2000
-- tokens; scenario 2: 2/4/8/16 concurrent at 500 tokens (aggregate TPS,
-- per-request TPS, scaling vs the baseline, p50/p95/p99); scenario 3: mixed
-- short/medium/long at 4 concurrent (fairness). Memory per concurrent request,
-- queue time and batch efficiency; the plan's questions (the seed's four)
-- answered where the data allows.
local C = require("phases.common")
local P = require("bench.plan")

local phase = {phase = "batching"}

function phase.labels(ctx, cell, labels)
  labels.platform = cell.axes.server
end

local function by_server(cells, server)
  return C.find(cells, function(l) return (l.platform or l.server) == server end)
end

-- the seed's questions, in its words unless the plan gives its own
local QUESTIONS = {
  "Does M3 Ultra scale better than M4 Max due to more memory/cores?",
  "What's the optimal concurrent request count for 512GB?",
  "Is batching worth it for single-user scenarios?",
  "Memory per concurrent request overhead?",
}

-- the single-request reference of a server: its 500-token baseline cell
-- (scenario 2 runs at 500 tokens), else its first baseline cell
local function baseline_cell(list)
  local first
  for _, c in ipairs(list) do
    if c.labels.scenario == "baseline" and c.status == "ok" then
      if c.labels.max_tokens == 500 then return c end
      first = first or c
    end
  end
  return first
end

-- queue time: the client cannot see the server's queue, so unless the
-- records carry it, the extra wait before the first token compared with one
-- request alone stands for it (TTFT p50 at N minus TTFT p50 of the baseline)
local function queue_ms(f, fbase)
  if f.queue_ms then return f.queue_ms, "measured" end
  if f.ttft_ms and fbase and fbase.ttft_ms then return math.max(0, f.ttft_ms - fbase.ttft_ms), "est." end
  return nil
end

-- Mean requests running in a cell, from the /metrics gauge its server's
-- kind exports (bench.backends.running_metric: vLLM, vllm-mlx, SGLang and
-- llama-server each name it differently). A dry run's simulator, or a server
-- of no known kind (command, external), exports whichever it does: the first
-- known name its samples carry.
local function running_mean(ctx, c)
  local name, all = require("bench.backends").running_metric(not c.dry_run and c.labels.backend or "sim")
  if name then return C.metric_mean(ctx, c.id, name) end
  for _, n in ipairs(all) do
    local v = C.metric_mean(ctx, c.id, n)
    if v then return v end
  end
  return nil
end

function phase.finish(ctx, cells)
  local peaks = C.cell_peaks(ctx)
  local plan = ctx.plan
  local exp = plan.expected or {}
  local questions = {}
  for i = 1, 4 do questions[i] = (plan.questions and plan.questions[i]) or QUESTIONS[i] end
  local notes = {scaling = {}, answers = {}}
  local lines = {"", C.TPS_NOTE .. ";",
    "scaling = aggregate tok/s / the 500-token single-request cell's; queue ms with * = estimated: TTFT p50 minus the baseline's;",
    "batch eff. = mean requests running (server /metrics) / concurrency"}
  local servers, seen = {}, {}
  for _, c in ipairs(cells) do
    local s = c.labels.platform or c.labels.server
    if s and not seen[s] then seen[s] = true servers[#servers + 1] = s end
  end
  local main = servers[1]
  local answers = {}
  local idw = 10
  for _, c in ipairs(cells) do idw = math.max(idw, #c.id) end
  local fmt = "  %-" .. idw .. "s %5s %15s %13s %8s %8s %8s %8s %12s %10s %11s"
  for _, s in ipairs(servers) do
    local list = by_server(cells, s)
    local base = baseline_cell(list)
    local fbase = base and C.figures(base, peaks)
    lines[#lines + 1] = ""
    lines[#lines + 1] = string.format("%s: single-request baseline %s decode tok/s, %s aggregate tok/s (%s)", s,
      C.fmt(fbase and fbase.decode_tps), C.fmt(fbase and fbase.output_tps), base and base.id or "no baseline cell")
    lines[#lines + 1] = string.format(fmt, "cell", "conc", "aggregate tok/s", "decode tok/s", "scaling",
      "E2E p50", "p95", "p99", "queue ms", "batch eff.", "peak")
    local points = {}
    for _, c in ipairs(list) do
      local f = C.figures(c, peaks)
      local conc = c.labels.concurrency or 1
      local scaling = (f.output_tps and fbase and fbase.output_tps and fbase.output_tps > 0) and f.output_tps / fbase.output_tps or nil
      local q, qkind = queue_ms(f, fbase)
      local running = running_mean(ctx, c)
      local eff = running and running / conc or nil
      lines[#lines + 1] = string.format(fmt, c.id, conc,
        C.fmt(f.output_tps), C.fmt(f.decode_tps), scaling and string.format("%.2fx", scaling) or "n/a",
        C.fmt(f.e2el_p50, "", 0), C.fmt(f.e2el_p95, "", 0), C.fmt(f.e2el_p99, "", 0),
        q and (C.fmt(q, "", 1) .. (qkind == "est." and "*" or "")) or "n/a",
        eff and string.format("%.0f%%", eff * 100) or "n/a", f.peak and P.format_size(f.peak) or "n/a")
      if c.labels.scenario == "scale" or c == base then
        points[#points + 1] = {conc = conc, agg = f.output_tps, peak = f.peak, scaling = scaling, p95 = f.e2el_p95}
      end
      notes.scaling[#notes.scaling + 1] = {cell = c.id, server = s, concurrency = conc, aggregate_tps = f.output_tps,
                                           per_request_tps = f.decode_tps, scaling = scaling, queue_ms = q,
                                           queue_ms_kind = qkind, batch_efficiency = eff}
    end
    table.sort(points, function(a, b) return a.conc < b.conc end)
    if s == main and #points > 1 then
      local top = points[#points]
      local best
      for _, p in ipairs(points) do if p.agg and (not best or p.agg > best.agg) then best = p end end
      -- optimal: the smallest concurrency reaching 90% of the best aggregate
      local knee
      for _, p in ipairs(points) do if best and p.agg and p.agg >= 0.9 * best.agg then knee = p break end end
      local ref = exp.m4_max_scaling_16 or 4.3
      local m3 = exp.m3_ultra_scaling_16 and string.format("; the seed expected %sx here (%s -> %s TPS on M3 Ultra)",
        tostring(exp.m3_ultra_scaling_16), tostring(exp.m3_ultra_baseline_tps or "?"), tostring(exp.m3_ultra_16_tps or "?")) or ""
      answers[1] = string.format("%s Scaling at %d concurrent = %s vs M4 Max's %.1fx (%s -> %s TPS there)%s: %s",
        questions[1], top.conc, top.scaling and string.format("%.2fx", top.scaling) or "n/a", ref,
        tostring(exp.m4_max_single_tps or 450), tostring(exp.m4_max_16_tps or 1900), m3,
        top.scaling and (top.scaling > ref and "better" or "not better") or "no data")
      answers[2] = string.format("%s %s (the smallest level within 90%% of the best aggregate, %s tok/s at %d; E2E p95 there %s ms)",
        questions[2], knee and tostring(knee.conc) or "n/a", C.fmt(best and best.agg), best and best.conc or 0,
        C.fmt(knee and knee.p95, "", 0))
      -- least-squares slope of peak memory over concurrency (as report.md)
      local xs, ys = {}, {}
      for _, p in ipairs(points) do if p.peak then xs[#xs + 1], ys[#ys + 1] = p.conc, p.peak end end
      local per
      if #xs >= 2 then
        local mx, my = 0, 0
        for i = 1, #xs do mx, my = mx + xs[i], my + ys[i] end
        mx, my = mx / #xs, my / #xs
        local sxy, sxx = 0, 0
        for i = 1, #xs do sxy, sxx = sxy + (xs[i] - mx) * (ys[i] - my), sxx + (xs[i] - mx) ^ 2 end
        if sxx > 0 then per = sxy / sxx end
      end
      local lo, hi = points[1], points[#points]
      if per then
        answers[4] = string.format("%s About %s per request (least-squares slope of peak memory over concurrency %d-%d; peak %s at %d, %s at %d)",
          questions[4], P.format_size(math.max(0, per)), lo.conc, hi.conc,
          P.format_size(hi.peak or 0), hi.conc, P.format_size(lo.peak or 0), lo.conc)
        notes.memory_per_request_bytes = per
      else
        answers[4] = questions[4] .. " No memory samples in the scenario 2 cells (the platform reported none)"
      end
    end
  end
  -- question 3: single user, batching server vs the plain one, over every
  -- single-request cell (100, 500 and 2000 tokens) of each
  local function single_user_tps(server)
    local sum, n = 0, 0
    for _, c in ipairs(by_server(cells, server)) do
      local f = C.figures(c, peaks)
      if c.labels.scenario == "baseline" and c.status == "ok" and f.decode_tps then sum, n = sum + f.decode_tps, n + 1 end
    end
    return n > 0 and sum / n or nil, n
  end
  if #servers > 1 then
    local ta, na = single_user_tps(servers[1])
    local tb, nb = single_user_tps(servers[2])
    answers[3] = string.format("%s %s %s decode tok/s vs %s %s (%s; mean over %d and %d single-request cells): %s", questions[3],
      servers[1], C.fmt(ta), servers[2], C.fmt(tb), C.fmt_pct(C.pct(ta, tb)), na, nb,
      (ta and tb) and (ta >= tb * 0.95 and "little or no single-user cost" or "a single-user cost; use it for concurrent users") or "no data")
    notes.batching_backend, notes.single_backend = servers[1], servers[2]
  else
    answers[3] = questions[3] .. " Needs a second (non-batching) server in the plan"
  end
  notes.reference = {scaling = exp.m4_max_scaling_16 or 4.3, label = "M4 Max with vllm-mlx (seed)"}
  lines[#lines + 1] = ""
  lines[#lines + 1] = "The plan's questions:"
  for i = 1, 4 do
    if answers[i] then
      lines[#lines + 1] = string.format("  %d. %s", i, answers[i])
      notes.answers[#notes.answers + 1] = answers[i]
    end
  end
  if exp.headroom then lines[#lines + 1] = "  (seed: memory headroom " .. tostring(exp.headroom) .. ")" end
  return notes, lines
end

return phase
