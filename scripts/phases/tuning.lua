-- Phase 5: macOS VRAM limit (sysctl iogpu.wired_limit_mb) and llama.cpp
-- Metal backend settings. The runner applies each cell's sysctl values
-- (journaled, restored at the end whatever happens; simulated in a dry run)
-- and restarts the server for every env configuration. This script marks the
-- baseline of each group, and reports TPS / TTFT / memory deltas in % and
-- stability (spread over the repeats, crashes or OOM).
local common = require("phases.common")

local phase = {phase = "tuning"}

local function config_of(cell)
  local a = cell.axes
  return a.config or a.metal or a.sysctl or a.env or "default"
end

-- the baseline of a group is marked on the cell (res.baseline), not as a
-- label: a label would make it a column and part of the configuration's name
function phase.labels(ctx, cell, labels)
  labels.config = config_of(cell)
  labels.group = cell.axes.group
  labels.variant = cell.model and cell.model.name
end

function phase.after_cell(ctx, cell, res)
  local c = config_of(cell)
  if c == "default" or c == "baseline" then res.baseline = true end
  res.repeats = cell["repeat"]
end

-- spread of per-repeat decode tps in a cell's records (stability)
local function cv_of(ctx, cell)
  local data = common.data(ctx)
  if not data then return nil end
  local per = {}
  for _, r in ipairs(data.records or {}) do
    if r.cell == cell.id and not r.warmup and r.decode_tps then
      local k = r["repeat"] or 1
      per[k] = per[k] or {}
      table.insert(per[k], r.decode_tps)
    end
  end
  local means = {}
  for _, l in pairs(per) do
    local s = 0
    for _, x in ipairs(l) do s = s + x end
    means[#means + 1] = s / #l
  end
  if #means < 2 then return nil end
  local m = 0
  for _, x in ipairs(means) do m = m + x end
  m = m / #means
  local v = 0
  for _, x in ipairs(means) do v = v + (x - m) ^ 2 end
  return math.sqrt(v / (#means - 1)) / m * 100
end

-- sysctl: what was set, simulated or not, and that it was put back (each
-- sentence through say: console and report notes alike)
local function sysctl_sentences(ctx, say)
  local log = ctx.sysctl and ctx.sysctl.log or {}
  -- a change whose log entry says it failed was never applied: it is named
  -- as such, never counted as applied
  local set, failed, not_set = {}, {}, {}
  for _, e in ipairs(log) do
    if e.restore then
      if e.ok == false then failed[#failed + 1] = string.format("%s (%s)", tostring(e.name), tostring(e.error)) end
    elseif e.ok == false then
      not_set[#not_set + 1] = string.format("%s=%s (%s)", tostring(e.name), tostring(e.value), tostring(e.error))
    elseif e.value ~= "default" then set[#set + 1] = string.format("%s=%s", e.name, tostring(e.value)) end
  end
  if #log > 0 then
    if ctx.dry then
      say(string.format("sysctl sweep simulated (a dry run never changes the machine): %d change%s (%s), each back to default after its cells",
        #set, #set == 1 and "" or "s", table.concat(set, ", ")))
    elseif #set > 0 then
      say(string.format("sysctl: %d change%s (%s) applied with journaled originals", #set, #set == 1 and "" or "s",
        table.concat(set, ", ")))
    end
    if #not_set > 0 then
      say("sysctl changes that FAILED (not applied; their cells failed): " .. table.concat(not_set, "; "))
    end
    if #failed > 0 then
      say("Settings NOT all restored: " .. table.concat(failed, "; ") ..
        " (bench.sys keeps the originals in its journal: the next benchrun retries, or run sys.restore_all())")
    else
      say("Settings restored: every sysctl value changed by this run was put back at its end" ..
        (ctx.dry and " (simulated)" or " (bench.sys journal; also after a crash, by the next benchrun)") .. ".")
    end
  end
end

function phase.finish(ctx, cells)
  local peaks = common.cell_peaks(ctx)
  local notes = {deltas = {}, stability = {}}
  local lines = {"", common.TPS_NOTE .. "; deltas vs the group's baseline; repeat CV = spread of the repeats' decode tok/s"}
  local groups, order = {}, {}
  for _, c in ipairs(cells) do
    local g = (c.labels.group or "tuning") .. "/" .. tostring(c.labels.variant or "")
    if not groups[g] then groups[g] = {} order[#order + 1] = g end
    table.insert(groups[g], c)
  end
  for _, g in ipairs(order) do
    local list = groups[g]
    local base
    for _, c in ipairs(list) do if c.baseline or c.labels.baseline then base = c break end end
    local fb = base and common.figures(base, peaks) or {}
    lines[#lines + 1] = string.format("%s (baseline: %s)", g, base and base.labels.config or "none")
    lines[#lines + 1] = string.format("  %-22s %12s %9s %11s %9s %10s %12s  %s", "config", "decode tok/s", "delta",
      "TTFT p50 ms", "delta", "repeat CV", "peak", "status")
    for _, c in ipairs(list) do
      local f = common.figures(c, peaks)
      local cv = cv_of(ctx, c)
      local d = {cell = c.id, group = g, config = c.labels.config, tps = f.decode_tps,
                 tps_delta_pct = common.pct(f.decode_tps, fb.decode_tps), ttft_delta_pct = common.pct(f.ttft_ms, fb.ttft_ms),
                 peak_delta_pct = common.pct(f.peak, fb.peak), cv_pct = cv, status = c.status}
      notes.deltas[#notes.deltas + 1] = d
      lines[#lines + 1] = string.format("  %-22s %12s %9s %11s %9s %10s %12s  %s", tostring(c.labels.config), common.fmt(f.decode_tps),
        common.fmt_pct(d.tps_delta_pct), common.fmt(f.ttft_ms), common.fmt_pct(d.ttft_delta_pct), cv and string.format("%.1f%%", cv) or "n/a",
        f.peak and require("bench.units").format_size(f.peak) or "n/a", c.status)
    end
  end
  local bad = {}
  for _, c in ipairs(cells) do if c.status ~= "ok" then bad[#bad + 1] = c.id .. " (" .. c.status .. ")" end end
  notes.stability.crashes = bad
  local text = {}
  local function say(l) lines[#lines + 1] = l text[#text + 1] = l end
  lines[#lines + 1] = ""
  local reps = 0
  for _, c in ipairs(cells) do reps = math.max(reps, c.repeats or 1) end
  say(string.format("Stability over %d repeat%s per configuration: %s", reps, reps == 1 and "" or "s",
    #bad == 0 and "no crashes or OOM kills" or ("crashes/OOM: " .. table.concat(bad, ", "))))
  sysctl_sentences(ctx, say)
  notes.sysctl_simulated = ctx.dry or nil
  -- what the seed expected, beside what was measured
  local exp = ctx.plan.expected or {}
  local keys = {}
  for k in pairs(exp) do keys[#keys + 1] = k end
  table.sort(keys)
  if #keys > 0 then
    say("")
    say("The seed's expectations (compare with the deltas above):")
    for _, k in ipairs(keys) do say(string.format("- %s: %s", k:gsub("_", " "), tostring(exp[k]))) end
  end
  notes.text = table.concat(text, "\n\n"):gsub("\n\n\n\n", "\n\n")
  return notes, lines
end

return phase
