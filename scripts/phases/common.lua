-- phases.common: helpers the phase scripts share (reading cell summaries,
-- formatting, prompt checks from the plan).
local M = {}

-- a number out of a summary field that may be a distribution {p50, mean...}
function M.num(v, which)
  if type(v) == "number" then return v end
  if type(v) == "table" then return v[which or "p50"] or v.mean end
  return nil
end

-- cell figures, defined as report.md defines them: decode_tps is the mean
-- per-request decode rate ("TPS (decode)"), output_tps all output tokens over
-- the wall time of the repeats ("TPS (output, aggregate)"), ttft_ms the p50.
M.TPS_NOTE = "decode tok/s = mean per-request decode rate; aggregate tok/s = all output tokens / wall time (as in report.md)"
-- The run's folder as bench.results reads it, loaded once per finish.
function M.data(ctx)
  if ctx.data == nil then
    ctx.data = require("bench.results").load(ctx.run.dir) or false
  end
  return ctx.data or nil
end

-- The report's analysis of the run (bench.report.analysis over the same
-- folder), made once per finish: the console tables take their figures from
-- it, so they say what report.md and summary.csv say (issue 13).
function M.analysis(ctx)
  if ctx.analysis == nil then
    local d = M.data(ctx)
    ctx.analysis = d and require("bench.report.analysis").analyze(d) or false
  end
  return ctx.analysis or nil
end

-- Peak memory of each cell as report.md takes it: from the cell's own
-- samples (a server kept across cells has its sampler's peak written only
-- in the last one), host + GPU, and in a dry run scaled back by the plan's
-- memory_scale to what the simulator stands for.
function M.cell_peaks(ctx)
  local an = M.analysis(ctx)
  local peaks = {}
  for id, m in pairs(an and an.cell_metrics or {}) do peaks[id] = m.peak_bytes end
  return peaks
end

-- Mean of a /metrics series (keys starting with `prefix`, summed over
-- labels) in a cell's samples of phase "run", or nil.
function M.metric_mean(ctx, cell_id, prefix)
  local d = M.data(ctx)
  local sum, n = 0, 0
  for _, smp in ipairs(d and d.samples or {}) do
    if smp.type == "metrics" and smp.cell == cell_id and smp.phase == "run" then
      local v, found = 0, false
      for k, x in pairs(smp) do
        if type(k) == "string" and k:sub(1, #prefix) == prefix and type(x) == "number" then v, found = v + x, true end
      end
      if found then sum, n = sum + v, n + 1 end
    end
  end
  return n > 0 and sum / n or nil
end

function M.figures(cell, peaks)
  local s = cell.summary or {}
  local srv = cell.server or {}
  return {
    decode_tps = M.num(s.decode_tps, "mean"),
    ttft_ms = M.num(s.ttft_ms),
    ttft_p95 = M.num(s.ttft_ms, "p95"),
    e2el_p50 = M.num(s.e2el_ms), e2el_p95 = M.num(s.e2el_ms, "p95"), e2el_p99 = M.num(s.e2el_ms, "p99"),
    output_tps = M.num(s.output_tps),
    queue_ms = M.num(s.queue_ms),
    ok = s.ok, requests = s.requests,
    peak = (peaks and peaks[cell.id]) or srv.peak_memory_bytes or srv.peak_rss_bytes or srv.peak_gpu_bytes,
    load_time_s = srv.load_time_s,
  }
end

function M.fmt(v, unit, digits)
  if v == nil then return "n/a" end
  return string.format("%." .. (digits or 1) .. "f%s", v, unit or "")
end

function M.pct(a, b)
  if not a or not b or b == 0 then return nil end
  return (a - b) / b * 100
end

function M.fmt_pct(p)
  if not p then return "n/a" end
  return string.format("%+.1f%%", p)
end

-- cells by an id-independent key: labels
function M.find(cells, pred)
  local out = {}
  for _, c in ipairs(cells) do if pred(c.labels or {}, c) then out[#out + 1] = c end end
  return out
end

-- checks(plan) -> {[prompt] = fn(text) -> ok, detail} from prompts' check:
-- expressions (bench.checks, the runner's default too)
M.checks = require("bench.checks").of_plan

return M
