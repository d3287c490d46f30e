-- Phase 1-2 baseline (and the demo): for each model variant, load time,
-- TTFT, TPS, peak memory and the output of the test prompts. The runner
-- does the measuring; this script names the phase, attaches the prompts'
-- quality checks and prints a short table at the end.
local common = require("phases.common")

local phase = {phase = "baseline"}

phase.checks = common.checks

function phase.finish(ctx, cells)
  local peaks = common.cell_peaks(ctx)
  local units = require("bench.units")
  local fmt = "%-28s %8s %12s %13s %16s %11s  %s"
  local lines = {"", common.TPS_NOTE,
    string.format(fmt, "cell", "load s", "TTFT p50 ms", "decode tok/s", "aggregate tok/s", "peak", "status")}
  for _, c in ipairs(cells) do
    local f = common.figures(c, peaks)
    lines[#lines + 1] = string.format(fmt, c.id, common.fmt(f.load_time_s, "", 2), common.fmt(f.ttft_ms),
      common.fmt(f.decode_tps), common.fmt(f.output_tps), f.peak and units.format_size(f.peak) or "n/a", c.status)
  end
  return {}, lines
end

return phase
