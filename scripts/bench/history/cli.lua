-- bench.history.cli: `benchrun history` (list and filter the recorded runs,
-- or show one) and `benchrun compare [RUN] --baseline last|ID` (a run against
-- a recorded one, with `benchrun compare`'s noise rule; exit 3 on a
-- regression beyond the threshold).
local history = require("bench.history")
local results = require("bench.results")
local units = require("bench.units")
local util = require("bench.util")

local cli = {}

cli.EXIT_REGRESSION = 3
cli.DEFAULT_THRESHOLD = 5   -- percent

local history_help = [[
usage: benchrun history [ID] [--plan NAME] [--host NAME] [--since WHEN] [--limit N]
                        [--json] [--history PATH]

Lists the recorded runs, newest first (every finished plan run is recorded;
docs/history.md). With ID, shows that run's configurations and figures.

  --plan NAME     only runs of this plan (its name:)
  --host NAME     only runs on this host
  --since WHEN    only runs started since a UTC date or time (2026-12-01,
                  2026-12-01T08:00:00Z) or a time ago (7d, 12h, 30m)
  --limit N       at most N runs (default 20; 0: all)
  --json          the rows as JSON
  --history PATH  the database (default: $BENCHRUN_HISTORY, else
                  $XDG_DATA_HOME/benchrun/history.db, else
                  ~/.local/share/benchrun/history.db)
]]

local compare_help = [[
usage: benchrun compare [RUN] --baseline last|ID [--threshold PCT] [--json] [--out FILE]
                        [--history PATH]

Compares RUN (a results folder, or a recorded run's ID; default: the latest
recorded run) with a recorded baseline: `last` is the latest run of the same
plan recorded before it (another folder), or give a run ID (benchrun history
lists them). The noise rule is `benchrun compare`'s (benchrun compare --help).

A regression is a figure that got worse beyond run-to-run noise and by more
than PCT percent (default 5). Exit status: 0 no regression, 3 a regression,
1 the history or a run could not be read, 2 usage.
]]

local function usage(cmd, msg)
  io.stderr:write("benchrun: ", cmd, ": ", msg, "\n(try 'benchrun ", cmd, " --help')\n")
  return 2
end

local function fail(cmd, msg)
  io.stderr:write("benchrun: ", cmd, ": ", msg, "\n")
  return 1
end

-- --since: a UTC date/time (kept as text: the runs' started is ISO text) or
-- a time ago (7d, 12h, 30m, 90s) -> ISO text | nil, why
function cli.since(v)
  if v:match("^%d%d%d%d%-%d%d%-%d%d$") or v:match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$") then return v end
  local n = tonumber(v:match("^(%d+%.?%d*)d$"))
  local secs = n and n * 86400 or nil
  if not secs then secs = units.duration(v) end
  if not secs or not v:match("%a$") then
    return nil, string.format("--since expects a UTC date (2026-12-01), a time (2026-12-01T08:00:00Z) " ..
                              "or a time ago (7d, 12h, 30m), got '%s'", v)
  end
  return util.utc_iso(os.time() - math.floor(secs))
end

-- Parse `--name value` / `--name=value` options. spec: {name = "value" | "flag"}.
local function parse(cmd, args, spec)
  local o, pos = {}, {}
  local i = 1
  while i <= #args do
    local a = args[i]
    local name, inline = a:match("^%-%-([%w-]+)=(.*)$")
    if not name then name = a:match("^%-%-([%w-]+)$") end
    if a == "-h" then name = "help" end
    if name then
      local kind = spec[name]
      if not kind then return nil, usage(cmd, "unknown option '" .. a .. "'") end
      if kind == "flag" then
        o[name] = true
      else
        local v = inline
        if not v then
          v = args[i + 1]
          if v == nil then return nil, usage(cmd, "--" .. name .. " needs a value") end
          i = i + 1
        end
        o[name] = v
      end
    else
      pos[#pos + 1] = a
    end
    i = i + 1
  end
  return o, pos
end

local function run_id(v)
  local n = v:match("^#?(%d+)$")
  return n and math.tointeger(tonumber(n)) or nil
end

-- Open the database for reading: a missing file is "nothing recorded yet".
local function open_existing(cmd, o)
  local path = history.path{history = o.history}
  if not path then return nil, fail(cmd, "the history is off (BENCHRUN_HISTORY=off)") end
  if not util.exists(path) then
    return nil, fail(cmd, string.format("no history at %s: no run has been recorded there yet", path))
  end
  local h, msg = history.open(path)
  if not h then h, msg = history.open(path, {readonly = true}) end
  if not h then return nil, fail(cmd, string.format("cannot open %s: %s", path, msg)) end
  if msg then io.stderr:write("benchrun: ", cmd, ": warning: ", msg, "\n") end
  return h, path
end

local function pad(s, n, right)
  s = tostring(s)
  local w = utf8.len(s) or #s
  if w >= n then return s end
  return right and (string.rep(" ", n - w) .. s) or (s .. string.rep(" ", n - w))
end

-- A plain text table: a header, a rule, the rows; numeric columns right-aligned.
local function text_table(head, rows, right)
  local w = {}
  for i, hd in ipairs(head) do w[i] = utf8.len(hd) or #hd end
  for _, r in ipairs(rows) do
    for i = 1, #head do w[i] = math.max(w[i], utf8.len(tostring(r[i] or "")) or #tostring(r[i] or "")) end
  end
  local out = {}
  local function line(r)
    local cells = {}
    for i = 1, #head do cells[i] = pad(r[i] or "", w[i], right[i]) end
    out[#out + 1] = (table.concat(cells, "  "):gsub("%s+$", ""))
  end
  line(head)
  local rule = {}
  for i = 1, #head do rule[i] = string.rep("-", w[i]) end
  out[#out + 1] = table.concat(rule, "  ")
  for _, r in ipairs(rows) do line(r) end
  return table.concat(out, "\n") .. "\n"
end

local function tps(v) return v and string.format("%.1f", v) or "–" end

local function show_run(h, id, o)
  local run, why = history.run(h, id)
  if not run then return fail("history", why) end
  if o.json then io.stdout:write(results.json_pretty(run), "\n") return 0 end
  io.stdout:write(string.format("run #%d: %s%s, started %s, %d/%d cells ok\n", run.id, tostring(run.plan),
    run.dry_run == 1 and " (dry run)" or "", tostring(run.started), run.cells_ok or 0, run.cells or 0))
  io.stdout:write(string.format("host %s · %s · benchrun %s · servers %s\nfolder %s\n\n", tostring(run.host),
    tostring(run.os), tostring(run.benchrun), tostring(run.servers or "–"), tostring(run.dir)))
  local rows = {}
  for _, c in ipairs(run.configs) do
    rows[#rows + 1] = {c.name, c.status, tps(c.decode_tps), tps(c.output_tps),
      c.ttft_p50 and string.format("%.1f", c.ttft_p50) or "–", c.e2el_p50 and string.format("%.1f", c.e2el_p50) or "–",
      c.peak_bytes and units.format_size(c.peak_bytes, {significant = true}) or "–",
      string.format("%d/%d", c.ok or 0, c.requests or 0)}
  end
  io.stdout:write(text_table({"Configuration", "Status", "Decode TPS", "Output TPS", "TTFT p50 ms", "E2E p50 ms",
    "Peak mem", "OK/req"}, rows, {false, false, true, true, true, true, true, true}))
  return 0
end

-- benchrun history [ID] [filters]
function cli.main(...)
  local o, pos = parse("history", {...}, {help = "flag", json = "flag", plan = "value", host = "value",
                                         since = "value", limit = "value", history = "value"})
  if not o then return pos end
  if o.help then io.stdout:write(history_help) return 0 end
  if #pos > 1 then return usage("history", "expected at most one run ID, got " .. #pos .. " arguments") end
  local id = pos[1] and run_id(pos[1])
  if pos[1] and not id then return usage("history", "expected a run ID (a number), got '" .. pos[1] .. "'") end
  local f = {plan = o.plan, host = o.host, limit = 20}
  if o.limit then
    local n = math.tointeger(tonumber(o.limit))
    if not n or n < 0 then return usage("history", "--limit expects a whole number ≥ 0, got '" .. o.limit .. "'") end
    f.limit = n > 0 and n or nil
  end
  if o.since then
    local s, why = cli.since(o.since)
    if not s then return usage("history", why) end
    f.since = s
  end
  local h, path = open_existing("history", o)
  if not h then return path end
  if id then
    local rc = show_run(h, id, o)
    h:close()
    return rc
  end
  local rows, why = history.list(h, f)
  h:close()
  if not rows then return fail("history", string.format("cannot read %s: %s", path, why)) end
  if o.json then
    for _, r in ipairs(rows) do r.plan_text, r.facts, r.argv = nil, nil, r.argv and results.json_decode(r.argv) end
    io.stdout:write(#rows == 0 and "[]" or results.json_pretty(rows), "\n")   -- a list, even when empty
    return 0
  end
  if #rows == 0 then io.stdout:write("no recorded run matches (", path, ")\n") return 0 end
  local t = {}
  for _, r in ipairs(rows) do
    t[#t + 1] = {"#" .. r.id, tostring(r.started or r.recorded), tostring(r.plan or "?") .. (r.dry_run == 1 and " (dry)" or ""),
                 tostring(r.host or "?"), string.format("%d/%d", r.cells_ok or 0, r.cells or 0), tostring(r.status),
                 tps(r.best_decode_tps), tostring(r.dir or "")}
  end
  io.stdout:write(text_table({"Run", "Started (UTC)", "Plan", "Host", "Cells ok", "Status", "Best decode TPS", "Folder"},
    t, {false, false, false, false, true, false, true, false}))
  return 0
end

-- The candidate: a results folder (analysed now) or a recorded run.
local function candidate(h, spec)
  local analysis = require("bench.report.analysis")
  local compare = require("bench.report.compare")
  if spec == nil then
    local rows = assert(h:rows("SELECT id FROM runs ORDER BY id DESC LIMIT 1"))
    if not rows[1] then return nil, "no run is recorded yet" end
    spec = tostring(rows[1].id)
  end
  local id = run_id(spec)
  if id then
    local run, why = history.run(h, id)
    if not run then return nil, why end
    return {id = run.id, plan = run.plan, dir = run.dir, started = run.started, facts = run.facts, dry_run = run.dry_run == 1,
            an = history.as_analysis(run), label = string.format("run #%d", run.id)}
  end
  local data, why = results.load(spec)
  if not data then return nil, why end
  local dir = data.dir or spec
  if dir:sub(1, 1) ~= "/" and os.getenv("PWD") then dir = os.getenv("PWD") .. "/" .. dir:gsub("^%./", "") end
  return {plan = data.summary.name, dir = dir, started = data.summary.started, facts = compare.env_facts(data),
          dry_run = (data.env or {}).dry_run == true or ((data.summary or {}).notes or {}).dry_run == true,
          an = analysis.analyze(data), label = spec}
end

-- benchrun compare [RUN] --baseline last|ID [--threshold PCT] [--json] [--out FILE] [--history PATH]
function cli.compare(...)
  local o, pos = parse("compare", {...}, {help = "flag", json = "flag", baseline = "value", threshold = "value",
                                         out = "value", history = "value"})
  if not o then return pos end
  if o.help then io.stdout:write(compare_help) return 0 end
  if #pos > 1 then return usage("compare", "with --baseline, expected at most one run (a folder or an ID), got " .. #pos) end
  local spec = o.baseline
  if spec ~= "last" and not run_id(spec) then
    return usage("compare", "--baseline expects 'last' or a run ID, got '" .. tostring(spec) .. "'")
  end
  local threshold = cli.DEFAULT_THRESHOLD
  if o.threshold then
    threshold = tonumber((o.threshold:gsub("%%$", "")))
    if not util.finite(threshold) or threshold < 0 then
      return usage("compare", "--threshold expects a percentage ≥ 0 (5 or 5%), got '" .. o.threshold .. "'")
    end
  end
  local h, path = open_existing("compare", o)
  if not h then return path end
  local cand, why = candidate(h, pos[1])
  if not cand then h:close() return fail("compare", why) end
  local base, bwhy = history.baseline(h, spec == "last" and "last" or run_id(spec), cand)
  h:close()
  if not base then return fail("compare", string.format("baseline %s: %s (in %s)", spec, bwhy, path)) end
  if cand.id and base.id == cand.id then return fail("compare", "the baseline is the run itself (#" .. base.id .. ")") end
  local compare = require("bench.report.compare")
  local cmp = compare.analyses(history.as_analysis(base), cand.an,
    {name = base.plan, dir = string.format("run #%d, %s", base.id, tostring(base.dir)), started = base.started},
    {name = cand.plan, dir = cand.id and string.format("run #%d, %s", cand.id, tostring(cand.dir)) or cand.dir,
     started = cand.started},
    compare.facts_diff(base.facts or {}, cand.facts or {}))
  local regs = compare.regressions(cmp, threshold)
  local text
  if o.json then
    local j = compare.to_json(cmp)
    j.baseline_run, j.run = base.id, cand.id
    j.threshold_pct, j.regressions = threshold, regs
    text = results.json_pretty(j) .. "\n"
  else
    local lines = {compare.markdown(cmp)}
    if #regs == 0 then
      lines[#lines + 1] = string.format("No regression beyond run-to-run noise and %g%% against run #%d.\n", threshold, base.id)
    else
      lines[#lines + 1] = string.format("REGRESSION against run #%d (beyond noise and %g%%):\n", base.id, threshold)
      local fmt = {}
      for _, m in ipairs(compare.METRICS) do fmt[m.key] = m.fmt end
      for _, r in ipairs(regs) do
        lines[#lines + 1] = string.format("- %s: %s %s → %s (%+.1f%%)", r.config, r.name, fmt[r.key](r.a), fmt[r.key](r.b),
                                          r.delta_pct)
      end
      lines[#lines + 1] = ""
    end
    text = table.concat(lines, "\n")
  end
  if o.out then
    local ok, werr = results.write_atomic(o.out, text)
    if not ok then return fail("compare", werr) end
    io.stdout:write(o.out, "\n")
  else
    io.stdout:write(text)
  end
  if #regs > 0 then
    io.stderr:write(string.format("benchrun: compare: %d regression%s against run #%d beyond noise and %g%%\n", #regs,
                                  #regs == 1 and "" or "s", base.id, threshold))
    return cli.EXIT_REGRESSION
  end
  return 0
end

return cli
