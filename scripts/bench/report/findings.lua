-- bench.report.findings: the recommendations the data supports, each
-- citing its numbers: report.md's "Findings" and summary.json's
-- analysis.findings. A phase script adds its own through its report hook
-- (ctx.phase_parts.findings, placed after the single-request ones).
local analysis = require("bench.report.analysis")
local format = require("bench.report.format")

local M = {}

local ms, num2, size = format.ms, format.num2, format.size

-- A tuning group whose settings changed nothing beyond run-to-run noise:
-- one sentence instead of a ranking.
function M.no_effect(g)
  local vars = g.no_effect_vars or {}
  return string.format("**No measurable effect** on %s: every configuration is within run-to-run noise of %s "
    .. "(decode TPS and TTFT), so they are not ranked; the engine may ignore %s.", g.name, g.base.name,
    #vars > 0 and ("these variables (" .. table.concat(vars, ", ") .. ")") or "these settings")
end

-- the per-request decode rates of a configuration (for the noise rule)
local function per_request_tps(c)
  return c.repeat_values and c.repeat_values.per_request and c.repeat_values.per_request.decode_tps or {}
end

-- "Fastest": ranked by the median of per-request decode rates (a late
-- request at 3x the others lifts a mean, not a median), and the lead said
-- to be within noise when the medians' difference is (analysis.median_noise;
-- with no records, the repeats' noise rule).
local function fastest(single, recs)
  local rate = {}
  for _, c in ipairs(single) do rate[c] = analysis.typical_decode_tps(c) end
  table.sort(single, function(a, b) return rate[a] > rate[b] end)
  local a, b = single[1], single[2]
  local pa, pb = per_request_tps(a), per_request_tps(b)
  local n = (#pa >= 2 and #pb >= 2) and analysis.median_noise(pb, pa)
    or analysis.noise(b.repeat_values, a.repeat_values, "decode_tps")
  recs[#recs + 1] = string.format("Fastest single-request decode: **%s** at %.1f TPS%s (next: %s at %.1f, %+.1f%%%s).",
    a.name, rate[a], #pa >= 2 and " (median per request)" or "", b.name, rate[b], (rate[a] - rate[b]) / rate[b] * 100,
    n.verdict == "no" and ", within run-to-run noise" or "")
  local eff, eff_v
  for _, c in ipairs(single) do
    local v = c.metrics.peak_bytes and c.metrics.peak_bytes > 0 and rate[c] / (c.metrics.peak_bytes / 1e9)
    if v and (not eff or v > eff_v) then eff, eff_v = c, v end
  end
  if eff then
    recs[#recs + 1] = string.format("Most memory-efficient: **%s** at %s TPS/GB (peak %s%s).", eff.name,
      num2(eff_v), size(eff.metrics.peak_bytes), eff.metrics.memory_simulated and ", simulated" or "")
  end
end

-- the fastest, most memory-efficient and lowest-latency single-request
-- configurations (ok cells only)
local function single_request(an, recs)
  local single = {}
  for _, c in ipairs(an.configs) do
    if (tonumber(c.labels.concurrency) or 1) == 1 and c.status == "ok" and c.metrics.decode_tps then single[#single + 1] = c end
  end
  if #single >= 2 then
    fastest(single, recs)
    local lat
    for _, c in ipairs(single) do if c.metrics.ttft_p50 and (not lat or c.metrics.ttft_p50 < lat.metrics.ttft_p50) then lat = c end end
    if lat then
      -- the next lowest, and whether the lead is more than noise (1 ms at least)
      local nxt
      for _, c in ipairs(single) do
        if c ~= lat and c.metrics.ttft_p50 and (not nxt or c.metrics.ttft_p50 < nxt.metrics.ttft_p50) then nxt = c end
      end
      local tail = ""
      if nxt then
        local n = analysis.noise(nxt.repeat_values, lat.repeat_values, "ttft_p50")
        tail = string.format("; next: %s at %s ms%s", nxt.name, ms(nxt.metrics.ttft_p50),
          n.verdict == "no" and ", within run-to-run noise" or "")
      end
      recs[#recs + 1] = string.format("Lowest time to first token: **%s** (TTFT p50 %s ms%s).", lat.name,
        ms(lat.metrics.ttft_p50), tail)
    end
  end
end

-- every configuration that did not end ok, and why
local function status_findings(an, recs)
  for _, c in ipairs(an.configs) do
    -- "oom" only with evidence of an OOM kill (proc.classify_exit); a
    -- server killed by any other signal "crashed" and says nothing of its fit
    if c.status == "oom" then
      local expected = c.labels.expect ~= nil and tostring(c.labels.expect):lower() == "oom"
      recs[#recs + 1] = string.format("**%s** does not fit: the server was OOM-killed%s%s.", c.name,
        c.metrics.peak_bytes and string.format(" at %s%s", size(c.metrics.peak_bytes),
          c.metrics.memory_simulated and " (simulated)" or "") or "",
        expected and ", as the plan expects" or "")
    elseif c.status == "crashed" then
      recs[#recs + 1] = string.format("**%s** crashed: %s.", c.name, tostring(c.error or "see its cell file"))
    elseif c.status == "aborted" then
      recs[#recs + 1] = string.format("**%s** was stopped at the plan's memory ceiling: %s.", c.name,
        tostring(c.error or "see its cell file"))
    elseif c.status == "failed" then
      recs[#recs + 1] = string.format("**%s** failed: %s.", c.name, tostring(c.error or "see its cell file"))
    elseif c.status == "degraded" then
      recs[#recs + 1] = string.format("**%s** is degraded: %s; its figures come from the requests that succeeded.",
        c.name, tostring(c.error or "some requests failed"))
    end
  end
end

-- Recommendations the data supports; each cites its numbers.
function M.recommendations(an, ctx)
  local recs = {}
  single_request(an, recs)
  local efficient = require("bench.report.energy").finding(an)   -- beside "Fastest"
  if efficient then recs[#recs + 1] = efficient end
  -- the phase script's own (its report hook: phase 3's MLX-vs-GGUF pairs)
  for _, f in ipairs(ctx.phase_parts and ctx.phase_parts.findings or {}) do recs[#recs + 1] = f end
  for _, g in ipairs(ctx.scaling or {}) do
    local best
    for _, r in ipairs(g.rows) do if r.agg_tps and (not best or r.agg_tps > best.agg_tps) then best = r end end
    if best and best.scaling then
      recs[#recs + 1] = string.format("For many users%s, run about **%d concurrent requests**: %.1f aggregate TPS (%.2f× single-request), E2E p95 %s ms.",
        #ctx.scaling > 1 and (" on " .. g.name) or "", best.conc, best.agg_tps, best.scaling, ms(best.config.metrics.e2el_p95))
    end
  end
  for _, g in ipairs(ctx.tuning or {}) do
    local best
    for _, r in ipairs(g.rows) do
      if not r.is_base and r.d_tps and r.noise and r.noise.verdict == "yes" and r.d_tps > 0 and r.config.status == "ok"
        and (not best or r.d_tps > best.d_tps) then best = r end
    end
    if g.no_effect then
      recs[#recs + 1] = M.no_effect(g)
    elseif best then
      recs[#recs + 1] = string.format("On %s, **%s** improves decode TPS by %+.1f%% over %s (beyond run-to-run noise).",
        g.name, best.name, best.d_tps, g.base.name)
    else
      recs[#recs + 1] = string.format("On %s, no setting beat the baseline (%s) beyond run-to-run noise: keep the defaults.",
        g.name, g.base.name)
    end
    for _, r in ipairs(g.rows) do
      if not r.is_base and r.d_tps and r.d_tps < 0 and r.noise and r.noise.verdict == "yes" then
        recs[#recs + 1] = string.format("On %s, avoid **%s**: decode TPS %+.1f%% vs %s.", g.name, r.name, r.d_tps, g.base.name)
      end
    end
  end
  status_findings(an, recs)
  return recs
end

return M
