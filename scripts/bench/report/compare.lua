-- bench.report.compare: two runs side by side, configuration by
-- configuration, with the change and whether it exceeds run-to-run noise.
--
-- Noise rule (analysis.noise): with >= 2 repeats on both sides, a change is real when
-- |mean_B - mean_A| > max(2 * sqrt(s_A^2/n_A + s_B^2/n_B), 1% of mean_A) over the per-repeat
-- values (about a 95% interval). With one repeat on a side, the per-request
-- values stand in and the verdict is marked with * (requests within one run
-- share its conditions, so this understates the noise between runs). Figures
-- that exist once per run (peak memory, load time with one cell) get "n/a".
-- A change smaller than 1% of A's value is never called real.
local analysis = require("bench.report.analysis")
local markdown = require("bench.report.markdown")

local compare = {}

compare.METRICS = {
  {key = "decode_tps", name = "Decode TPS", fmt = markdown.fmt.tps, higher = true, noise = "decode_tps"},
  {key = "output_tps", name = "Output TPS (aggregate)", fmt = markdown.fmt.tps, higher = true, noise = "output_tps"},
  {key = "ttft_p50", name = "TTFT p50 (ms)", fmt = markdown.fmt.ms, higher = false, noise = "ttft_p50"},
  {key = "ttft_p95", name = "TTFT p95 (ms)", fmt = markdown.fmt.ms, higher = false},
  {key = "e2el_p50", name = "E2E p50 (ms)", fmt = markdown.fmt.ms, higher = false, noise = "e2el_p50"},
  {key = "e2el_p95", name = "E2E p95 (ms)", fmt = markdown.fmt.ms, higher = false},
  {key = "load_s", name = "Load time (s)", fmt = markdown.fmt.secs, higher = false, noise = "load_s"},
  {key = "peak_bytes", name = "Peak memory (GB)", fmt = markdown.fmt.gb, higher = false, noise = "peak_bytes"},
}

-- compare.compare(data_a, data_b) -> {a, b, rows = {{name, a_cfg, b_cfg, metrics = {...}}}, only_a, only_b}
function compare.compare(da, db)
  return compare.analyses(analysis.analyze(da), analysis.analyze(db),
    {name = da.summary.name, dir = da.dir, started = da.summary.started},
    {name = db.summary.name, dir = db.dir, started = db.summary.started}, compare.env_diff(da, db))
end

-- compare.analyses(aa, ab, a, b, env) -> the same, from two analyses (or
-- anything with their configs, by_key and each config's key, name, status,
-- metrics and repeat_values: the run history keeps those); a and b name the
-- runs, env lists what differs between their environments.
function compare.analyses(aa, ab, a, b, env)
  local cmp = {a = a, b = b, rows = {}, only_a = {}, only_b = {}, env = env or {}}
  for _, ca in ipairs(aa.configs) do
    local cb = ab.by_key[ca.key]
    if not cb then
      cmp.only_a[#cmp.only_a + 1] = ca.name
    else
      local row = {name = ca.name, status_a = ca.status, status_b = cb.status, metrics = {}}
      for _, m in ipairs(compare.METRICS) do
        local va, vb = ca.metrics[m.key], cb.metrics[m.key]
        if va or vb then
          local entry = {key = m.key, a = va, b = vb}
          if va and vb and va ~= 0 then entry.delta_pct = (vb - va) / va * 100 end
          if m.noise and va and vb then
            local n = analysis.noise(ca.repeat_values, cb.repeat_values, m.noise)
            if n.verdict ~= "n/a" then
              entry.beyond_noise = n.verdict == "yes"
              entry.basis = n.basis
              entry.threshold = n.threshold
            end
          end
          if va and vb and va ~= vb then entry.better = ((vb > va) == m.higher) and "B" or "A" end
          row.metrics[#row.metrics + 1] = entry
        end
      end
      cmp.rows[#cmp.rows + 1] = row
    end
  end
  for _, cb in ipairs(ab.configs) do
    if not aa.by_key[cb.key] then cmp.only_b[#cmp.only_b + 1] = cb.name end
  end
  return cmp
end

-- What differs between the two runs' environments: host, benchrun, servers.
function compare.env_facts(d)
  local env = d.env or {}
  local h = type(env.host) == "table" and env.host or {}
  local cpu = h.cpu
  if type(cpu) == "table" then cpu = cpu.model end
  local br = d.summary.benchrun or env.benchrun or {}
  local facts = {
    host = h.hostname, os = h.os and (tostring(h.os) .. (h.os_version and (" " .. tostring(h.os_version)) or "")),
    cpu = type(cpu) == "string" and cpu or nil, ram = markdown.host_ram(h) and string.format("%.0f GB", markdown.host_ram(h) / 1e9),
    benchrun = br.version and (tostring(br.version) .. (br.git and (" (" .. tostring(br.git) .. ")") or "")),
    dry_run = env.dry_run == true and "yes" or nil,
  }
  local versions, seen = {}, {}
  for _, c in ipairs(d.cells or {}) do
    local v = type(c.server) == "table" and c.server.version
    if type(v) == "string" and not seen[v] then seen[v] = true versions[#versions + 1] = v end
  end
  table.sort(versions)
  if #versions > 0 then facts.servers = table.concat(versions, "; ") end
  return facts
end

function compare.env_diff(da, db)
  return compare.facts_diff(compare.env_facts(da), compare.env_facts(db))
end

-- compare.facts_diff(fa, fb) -> {{what, a, b}} for the facts that differ
function compare.facts_diff(fa, fb)
  local out = {}
  for _, k in ipairs({"host", "os", "cpu", "ram", "benchrun", "servers", "dry_run"}) do
    if fa[k] ~= fb[k] then out[#out + 1] = {what = k, a = fa[k] or "–", b = fb[k] or "–"} end
  end
  return out
end

local BY_KEY = {}
for _, m in ipairs(compare.METRICS) do BY_KEY[m.key] = m end

-- compare.markdown(cmp) -> text
function compare.markdown(cmp)
  local out = {}
  out[#out + 1] = string.format("# benchrun compare: %s vs %s", tostring(cmp.a.name), tostring(cmp.b.name))
  out[#out + 1] = ""
  out[#out + 1] = string.format("- A: %s (%s)", tostring(cmp.a.dir), tostring(cmp.a.started or "?"))
  out[#out + 1] = string.format("- B: %s (%s)", tostring(cmp.b.dir), tostring(cmp.b.started or "?"))
  out[#out + 1] = ""
  if #cmp.env > 0 then
    local rows = {}
    for _, e in ipairs(cmp.env) do rows[#rows + 1] = {e.what, e.a, e.b} end
    out[#out + 1] = "Environments differ:"
    out[#out + 1] = ""
    out[#out + 1] = markdown.table({"", "A", "B"}, rows, {"l", "l", "l"})
    out[#out + 1] = ""
  end
  if #cmp.rows == 0 then
    out[#out + 1] = "No configuration appears in both runs."
    out[#out + 1] = ""
  end
  local rows = {}
  for _, r in ipairs(cmp.rows) do
    for i, e in ipairs(r.metrics) do
      local m = BY_KEY[e.key]
      local verdict = "n/a"
      if e.beyond_noise ~= nil then
        verdict = (e.beyond_noise and "yes" or "no") .. (e.basis == "requests" and "*" or "")
      end
      local change = markdown.fmt.pct(e.delta_pct)
      if e.better and e.beyond_noise then change = change .. (e.better == "B" and " (B better)" or " (A better)") end
      local name = i == 1 and r.name or ""
      if i == 1 and (r.status_a ~= "ok" or r.status_b ~= "ok") then
        name = name .. string.format(" [%s → %s]", r.status_a, r.status_b)
      end
      rows[#rows + 1] = {name, m.name, m.fmt(e.a), m.fmt(e.b), change, verdict}
    end
  end
  if #rows > 0 then
    out[#out + 1] = markdown.table({"Configuration", "Metric", "A", "B", "Change", "Beyond noise"}, rows,
      {"l", "l", "r", "r", "r", "l"})
    out[#out + 1] = ""
    out[#out + 1] = "Beyond noise: |B − A| > max(2·sqrt(s²A/nA + s²B/nB), 1% of A) over per-repeat values; "
      .. "* = per-request values (a side had one repeat; weaker evidence); n/a = one value per run."
    out[#out + 1] = ""
  end
  if #cmp.only_a > 0 then out[#out + 1] = "Only in A: " .. table.concat(cmp.only_a, ", ") out[#out + 1] = "" end
  if #cmp.only_b > 0 then out[#out + 1] = "Only in B: " .. table.concat(cmp.only_b, ", ") out[#out + 1] = "" end
  return table.concat(out, "\n")
end

-- compare.regressions(cmp, threshold_pct) -> {{config, key, name, a, b, delta_pct}}:
-- the metrics that got worse in B beyond run-to-run noise (the rule above)
-- and by more than threshold_pct percent of A. A metric without a noise
-- verdict (one value per run) never counts.
function compare.regressions(cmp, threshold_pct)
  local out = {}
  for _, r in ipairs(cmp.rows) do
    for _, e in ipairs(r.metrics) do
      if e.beyond_noise and e.better == "A" and e.delta_pct and math.abs(e.delta_pct) > threshold_pct then
        out[#out + 1] = {config = r.name, key = e.key, name = BY_KEY[e.key].name, a = e.a, b = e.b,
                         delta_pct = e.delta_pct, basis = e.basis}
      end
    end
  end
  return out
end

-- compare.to_json(cmp) -> a plain table for results.json_pretty
function compare.to_json(cmp)
  local rows = {}
  for _, r in ipairs(cmp.rows) do
    local ms = {}
    for _, e in ipairs(r.metrics) do
      ms[e.key] = {a = e.a, b = e.b, delta_pct = e.delta_pct, beyond_noise = e.beyond_noise,
                   basis = e.basis, threshold = e.threshold, better = e.better}
    end
    rows[#rows + 1] = {config = r.name, status_a = r.status_a, status_b = r.status_b, metrics = ms}
  end
  return {a = cmp.a, b = cmp.b, configs = rows, only_a = cmp.only_a, only_b = cmp.only_b, env_differs = cmp.env}
end

return compare
