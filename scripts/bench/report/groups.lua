-- bench.report.groups: configurations of an analysis (bench.report.analysis)
-- read against each other: scaling groups (the same configuration at several
-- concurrencies, against its lowest level), tuning groups (settings against
-- their baseline, with the noise rule). A phase's own groupings (phase 3's
-- MLX-vs-GGUF pairs) are its script's (docs/phases.md).
local analysis = require("bench.report.analysis")

local groups = {}

-- ------------------------------------------------------------ scaling
-- Groups of configurations that differ only in concurrency (and scenario),
-- each sorted by concurrency; the single-request cell is the baseline.
function groups.scaling(an)
  local by_key, order = {}, {}
  for _, c in ipairs(an.configs) do
    local conc = tonumber(c.labels.concurrency)
    if conc and not (c.labels.mix or c.labels.scenario == "mixed") then
      local key = analysis.config_key(c.labels, {concurrency = true, scenario = true})
      local g = by_key[key]
      if not g then g = {key = key, rows = {}} by_key[key] = g order[#order + 1] = g end
      g.rows[#g.rows + 1] = {conc = conc, config = c}
    end
  end
  local out = {}
  for _, g in ipairs(order) do
    local distinct = {}
    for _, r in ipairs(g.rows) do distinct[r.conc] = true end
    local n = 0
    for _ in pairs(distinct) do n = n + 1 end
    if n >= 2 then
      table.sort(g.rows, function(a, b) return a.conc < b.conc end)
      local base = g.rows[1]
      local base_tps = base.config.metrics.output_tps or base.config.metrics.decode_tps
      for _, r in ipairs(g.rows) do
        local m = r.config.metrics
        r.agg_tps = m.output_tps or (m.decode_tps and r.conc == 1 and m.decode_tps) or nil
        r.per_req_tps = m.decode_tps
        if r.agg_tps and base_tps and base_tps > 0 then r.scaling = r.agg_tps / base_tps end
      end
      g.base_conc = base.conc
      -- memory per concurrent request: least-squares slope of peak memory on concurrency
      local xs, ys = {}, {}
      for _, r in ipairs(g.rows) do
        if r.config.metrics.peak_bytes then xs[#xs + 1] = r.conc ys[#ys + 1] = r.config.metrics.peak_bytes end
      end
      if #xs >= 2 then
        local mx, my = analysis.mean(xs), analysis.mean(ys)
        local sxy, sxx = 0, 0
        for i = 1, #xs do sxy = sxy + (xs[i] - mx) * (ys[i] - my) sxx = sxx + (xs[i] - mx) ^ 2 end
        if sxx > 0 then g.mem_per_request = sxy / sxx end
      end
      local label_cfg = {labels = {}}
      for k, v in pairs(g.rows[1].config.labels) do
        if k ~= "concurrency" and k ~= "scenario" then label_cfg.labels[k] = v end
      end
      local shown = {}
      for _, k in ipairs(an.shown) do if k ~= "concurrency" and k ~= "scenario" then shown[#shown + 1] = k end end
      label_cfg.cells = g.rows[1].config.cells
      g.name = analysis.config_name(label_cfg, shown)
      out[#out + 1] = g
    end
  end
  return out
end

-- ------------------------------------------------------------ tuning deltas
local function is_default_config(c)
  if c.baseline or c.labels.baseline == true then return true end
  local l = c.labels
  local name = l.config and tostring(l.config):lower()
  if name then return name == "default" or name == "baseline" end
  local env_empty = l.env == nil or (type(l.env) == "table" and next(l.env) == nil)
  local sys_default = l.sysctl == nil or (type(l.sysctl) == "table" and next(l.sysctl) == nil)
    or l.sysctl == "default"
  return env_empty and sys_default
end
groups.is_default_config = is_default_config

-- Settings that change nothing measurable are said so, not ranked: every
-- other row within noise of the baseline in decode TPS, and none beyond it
-- in TTFT (an engine may ignore a variable: upstream llama.cpp does not read
-- GGML_METAL_N_CB, for one). Sets g.no_effect and g.no_effect_vars.
local function judge_effect(g, base)
  local judged, moved = 0, false
  local vars = {}
  for _, r in ipairs(g.rows) do
    if not r.is_base then
      local v = r.noise and r.noise.verdict
      if v == "yes" or (r.noise_ttft and r.noise_ttft.verdict == "yes") or r.config.status ~= "ok" then moved = true end
      if v == "no" then judged = judged + 1 end
    end
    if type(r.config.labels.env) == "table" then
      for k in pairs(r.config.labels.env) do vars[k] = true end
    end
  end
  if judged > 0 and not moved and base.config.status == "ok" then
    g.no_effect = true
    g.no_effect_vars = {}
    for k in pairs(vars) do g.no_effect_vars[#g.no_effect_vars + 1] = k end
    table.sort(g.no_effect_vars)
  end
end

-- Each group differs only in env / sysctl / config; rows carry % change vs the
-- group's baseline (cell.baseline, config "default"/"baseline", or no env and
-- no sysctl).
function groups.tuning(an)
  local drop = {env = true, sysctl = true, config = true, baseline = true}
  local by_key, order = {}, {}
  for _, c in ipairs(an.configs) do
    local key = analysis.config_key(c.labels, drop)
    local g = by_key[key]
    if not g then g = {key = key, rows = {}} by_key[key] = g order[#order + 1] = g end
    g.rows[#g.rows + 1] = {config = c}
  end
  local out = {}
  for _, g in ipairs(order) do
    if #g.rows >= 2 then
      local base
      for _, r in ipairs(g.rows) do
        if r.config.baseline or r.config.labels.baseline == true then base = r break end
      end
      if not base then for _, r in ipairs(g.rows) do if is_default_config(r.config) then base = r break end end end
      if base then
        g.base = base
        local bm = base.config.metrics
        for _, r in ipairs(g.rows) do
          local m = r.config.metrics
          r.is_base = r == base
          local function pct(k)
            if m[k] and bm[k] and bm[k] ~= 0 then return (m[k] - bm[k]) / bm[k] * 100 end
          end
          r.d_tps = pct("decode_tps")
          r.d_output_tps = pct("output_tps")
          r.d_ttft = pct("ttft_p50")
          r.d_peak = pct("peak_bytes")
          r.d_load = pct("load_s")
          if not r.is_base then
            r.noise = analysis.noise(base.config.repeat_values, r.config.repeat_values, "decode_tps")
            r.noise_ttft = analysis.noise(base.config.repeat_values, r.config.repeat_values, "ttft_p50")
          end
        end
        local label_cfg = {labels = {}, cells = base.config.cells}
        for k, v in pairs(base.config.labels) do if not drop[k] then label_cfg.labels[k] = v end end
        local shown = {}
        for _, k in ipairs(an.shown) do if not drop[k] then shown[#shown + 1] = k end end
        g.name = analysis.config_name(label_cfg, shown)
        -- a row is named by its config name alone (else its env, else its
        -- sysctl values); the sysctl values go in their own column
        for _, r in ipairs(g.rows) do
          local l = r.config.labels
          local env = l.env ~= nil and analysis.label_text(l.env) or nil
          local sys = l.sysctl ~= nil and analysis.label_text(l.sysctl) or nil
          if l.config ~= nil then r.name = tostring(l.config)
          elseif env and env ~= "default" then r.name = env
          elseif sys and sys ~= "default" then r.name = sys
          else r.name = "default" end
          if sys then
            r.sysctl = sys
            g.has_sysctl = true
            if r.config.sysctl_simulated then r.sysctl_simulated = true g.sysctl_simulated = true end
          end
        end
        judge_effect(g, base)
        out[#out + 1] = g
      end
    end
  end
  return out
end

return groups
