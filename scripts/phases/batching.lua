-- Phase 4: batching and concurrency (vllm-mlx, with mlx-lm as the
-- single-request reference). Scenario 1: one request at a time at 100/500/2000
-- tokens; scenario 2: 2/4/8/16 concurrent at 500 tokens (aggregate TPS,
-- per-request TPS, scaling vs the baseline, p50/p95/p99); scenario 3: mixed
-- short/medium/long at 4 concurrent (fairness). Memory per concurrent request
-- and queue time; the seed's four questions answered where the data allows.
local C = require("phases.common")
local P = require("bench.plan")

local phase = {phase = "batching"}

function phase.labels(ctx, cell, labels)
  labels.platform = cell.axes.server
end

local function by_server(cells, server)
  return C.find(cells, function(l) return (l.platform or l.server) == server end)
end

function phase.finish(ctx, cells)
  local plan = ctx.plan
  local exp = plan.expected or {}
  local notes = {scaling = {}, answers = {}}
  local lines = {""}
  local servers, seen = {}, {}
  for _, c in ipairs(cells) do
    local s = c.labels.platform or c.labels.server
    if s and not seen[s] then seen[s] = true servers[#servers + 1] = s end
  end
  local main = servers[1]
  local answers = {}
  for _, s in ipairs(servers) do
    local list = by_server(cells, s)
    local base_tps, base_agg
    for _, c in ipairs(list) do
      if c.labels.scenario == "baseline" and c.status == "ok" then
        local f = C.figures(c)
        -- the 500-token baseline is scenario 2's reference (same max_tokens)
        if c.labels.max_tokens == 500 or not base_tps then base_tps, base_agg = f.decode_tps, f.output_tps end
      end
    end
    lines[#lines + 1] = string.format("%s: single-request baseline %s tok/s", s, C.fmt(base_tps))
    lines[#lines + 1] = string.format("  %-14s %5s %11s %11s %8s %9s %9s %9s %10s %12s", "cell", "conc", "agg tok/s",
      "req tok/s", "scaling", "p50 ms", "p95 ms", "p99 ms", "queue ms", "peak")
    local points = {}
    for _, c in ipairs(list) do
      local f = C.figures(c)
      local conc = c.labels.concurrency or 1
      local scaling = (f.output_tps and base_agg and base_agg > 0) and f.output_tps / base_agg or nil
      lines[#lines + 1] = string.format("  %-14s %5d %11s %11s %8s %9s %9s %9s %10s %12s", c.labels.load or c.id, conc,
        C.fmt(f.output_tps), C.fmt(f.decode_tps), scaling and string.format("%.2fx", scaling) or "n/a",
        C.fmt(f.e2el_p50, "", 0), C.fmt(f.e2el_p95, "", 0), C.fmt(f.e2el_p99, "", 0), C.fmt(f.queue_ms, "", 0),
        f.peak and P.format_size(f.peak) or "n/a")
      if c.labels.scenario == "scale" or (c.labels.scenario == "baseline" and c.labels.max_tokens == 500) then
        points[#points + 1] = {conc = conc, agg = f.output_tps, peak = f.peak, scaling = scaling, p95 = f.e2el_p95}
      end
      notes.scaling[#notes.scaling + 1] = {cell = c.id, server = s, concurrency = conc, aggregate_tps = f.output_tps,
                                           per_request_tps = f.decode_tps, scaling = scaling, queue_ms = f.queue_ms}
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
      answers[1] = string.format("1. Does this machine scale better than M4 Max? scaling at %d concurrent = %s vs M4 Max's %.1fx (%s TPS -> %s TPS there): %s",
        top.conc, top.scaling and string.format("%.2fx", top.scaling) or "n/a", ref,
        tostring(exp.m4_max_single_tps or 450), tostring(exp.m4_max_16_tps or 1900),
        top.scaling and (top.scaling > ref and "better" or "not better") or "no data")
      answers[2] = string.format("2. Optimal concurrent request count: %s (smallest level within 90%% of the best aggregate, %s tok/s at %d)",
        knee and tostring(knee.conc) or "n/a", C.fmt(best and best.agg), best and best.conc or 0)
      local lo, hi = points[1], points[#points]
      if lo.peak and hi.peak and hi.conc > lo.conc then
        local per = (hi.peak - lo.peak) / (hi.conc - lo.conc)
        answers[4] = string.format("4. Memory per concurrent request: about %s (peak %s at %d vs %s at %d)",
          P.format_size(math.max(0, per)), P.format_size(hi.peak), hi.conc, P.format_size(lo.peak), lo.conc)
        notes.memory_per_request_bytes = per
      else
        answers[4] = "4. Memory per concurrent request: no memory samples (the platform reported none)"
      end
    end
  end
  -- question 3: single user, batching server vs the plain one
  if #servers > 1 then
    local function base(s)
      for _, c in ipairs(by_server(cells, s)) do
        if c.labels.scenario == "baseline" and c.status == "ok" then
          local f = C.figures(c)
          if c.labels.max_tokens == 500 then return f.decode_tps end
        end
      end
    end
    local a, b = base(servers[1]), base(servers[2])
    answers[3] = string.format("3. Is batching worth it for one user? %s single-request %s tok/s vs %s %s tok/s (%s): %s",
      servers[1], C.fmt(a), servers[2], C.fmt(b), C.fmt_pct(C.pct(a, b)),
      (a and b) and (a >= b * 0.95 and "little or no single-user cost" or "a single-user cost; use it for concurrent users") or "no data")
  else
    answers[3] = "3. Is batching worth it for one user? needs a second (non-batching) server in the plan"
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = "The seed's questions:"
  for i = 1, 4 do if answers[i] then lines[#lines + 1] = "  " .. answers[i] notes.answers[#notes.answers + 1] = answers[i] end end
  if exp.headroom then lines[#lines + 1] = "  (seed: memory headroom " .. tostring(exp.headroom) .. ")" end
  return notes, lines
end

return phase
