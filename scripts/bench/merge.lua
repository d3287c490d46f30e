-- bench.merge: one report from the shards of a run (issue 18, docs/scale.md).
-- `benchrun merge DIR` (and `benchrun report DIR`) reads DIR/shard-I-of-N/,
-- each an ordinary results folder (docs/results-format.md) whose env.json
-- says which shard it is (bench.shard), and writes into DIR the files a
-- single machine that ran every cell would have written: summary.json,
-- env.json, records.jsonl, samples.jsonl, plan.yaml, report.md, summary.csv
-- and charts/, from the same report code. What differs is said, not hidden:
-- a "Shards" section closes report.md (each shard's host and state, the host
-- of each cell when the hosts differ, the cells no shard finished and the
-- command that finishes them).
local results = require("bench.results")
local shard = require("bench.shard")

local M = {}

-- The subfolders of dir named shard-I-of-N. Lua has no directory listing;
-- ls runs from an argv list (no shell), one name a line.
local function list_shards(dir)
  local r, why = require("bench.proc").run{argv = {"ls", "-1", "--", dir}, timeout = 30}
  if not r then return nil, why end
  if r.code ~= 0 then
    return nil, string.format("cannot list %s: %s", dir, (r.stderr or ""):gsub("%s+$", ""))
  end
  local found = {}
  for name in (r.stdout or ""):gmatch("[^\n]+") do
    local i, n = shard.parse_folder(name)
    if i then found[#found + 1] = {index = i, count = n, name = name, dir = dir .. "/" .. name} end
  end
  table.sort(found, function(a, b) if a.count ~= b.count then return a.count < b.count end return a.index < b.index end)
  return found
end

-- M.is_run_dir(dir) -> true when dir holds shard folders (for `benchrun report`)
function M.is_run_dir(dir)
  if results.exists(dir .. "/env.json") and not results.exists(dir .. "/shards.json") then return false end
  local found = list_shards(dir)
  return found ~= nil and #found > 0
end

-- the first line where two texts differ, for the refusal
local function first_diff(a, b)
  local la, lb = {}, {}
  for l in ((a or "") .. "\n"):gmatch("(.-)\n") do la[#la + 1] = l end
  for l in ((b or "") .. "\n"):gmatch("(.-)\n") do lb[#lb + 1] = l end
  for i = 1, math.max(#la, #lb) do
    if la[i] ~= lb[i] then
      return string.format("line %d: %q vs %q", i, la[i] or "(end of file)", lb[i] or "(end of file)")
    end
  end
  return "same lines"
end

local function list_text(l) return (#(l or {}) == 0) and "none" or table.concat(l, " ") end

-- What makes two shards parts of different runs -> list of differences
local function differences(ref, sh)
  local a, b = ref.env, sh.env
  local d = {}
  if ref.summary.name ~= sh.summary.name then
    d[#d + 1] = string.format("the plan: '%s' vs '%s'", tostring(ref.summary.name), tostring(sh.summary.name))
  end
  if a.plan_text ~= b.plan_text then
    d[#d + 1] = "the plan's text (another version of it): " .. first_diff(a.plan_text, b.plan_text)
  end
  local sa, sb = list_text(a.sets), list_text(b.sets)
  if sa ~= sb then d[#d + 1] = string.format("--set: %s vs %s", sa, sb) end
  if (a.only or "") ~= (b.only or "") then
    d[#d + 1] = string.format("--only: %s vs %s", a.only or "none", b.only or "none")
  end
  if (a.dry_run == true) ~= (b.dry_run == true) then
    d[#d + 1] = string.format("--dry-run: %s vs %s", a.dry_run and "a dry run" or "a real run",
                              b.dry_run and "a dry run" or "a real run")
  end
  if a.shard.run_id ~= b.shard.run_id then
    d[#d + 1] = string.format("the run id: %s vs %s", tostring(a.shard.run_id), tostring(b.shard.run_id))
  end
  local oa, ob = {}, {}
  for i, x in ipairs(a.shard.order or {}) do oa[i] = tostring(x.id) .. "@" .. tostring(x.shard) end
  for i, x in ipairs(b.shard.order or {}) do ob[i] = tostring(x.id) .. "@" .. tostring(x.shard) end
  if #d == 0 and table.concat(oa, ",") ~= table.concat(ob, ",") then
    d[#d + 1] = "the split of the cells (the shards were split by different benchrun versions)"
  end
  return d
end

-- Load the shards; refuse a mix of runs. -> shards, ref | nil, message
local function load_shards(dir)
  local found, why = list_shards(dir)
  if not found then return nil, why end
  if #found == 0 then
    return nil, dir .. " holds no shard folders (shard-I-of-N, written by `benchrun PLAN.yaml --shard I/N --run-dir " .. dir .. "`)"
  end
  local count = found[1].count
  for _, f in ipairs(found) do
    if f.count ~= count then
      return nil, string.format("refused: %s holds shards of two splits, %s and %s (of %d and of %d shards); " ..
                                "one run's shards share N", dir, found[1].name, f.name, count, f.count)
    end
  end
  local shards, ref = {}, nil
  for _, f in ipairs(found) do
    local data = results.load(f.dir)
    if data and type(data.env) == "table" and type(data.env.shard) == "table" then
      f.data, f.env, f.summary = data, data.env, data.summary
      if f.env.shard.index ~= f.index or f.env.shard.count ~= f.count then
        return nil, string.format("refused: %s holds shard %s/%s by its env.json, not %d/%d as its name says",
                                  f.dir, tostring(f.env.shard.index), tostring(f.env.shard.count), f.index, f.count)
      end
      if not ref then ref = f
      else
        local d = differences(ref, f)
        if #d > 0 then
          return nil, string.format("refused: %s and %s are shards of different runs: %s", ref.name, f.name,
                                    table.concat(d, "; "))
        end
      end
    end
    shards[f.index] = f
  end
  if not ref then return nil, dir .. ": no shard folder holds results yet (no summary.json and env.json in any)" end
  return shards, ref, count
end

-- shift of a shard's monotonic clock onto the merged timeline: shards are
-- laid end to end in index order, as one machine would have run them, so
-- the cells' windows (which place each memory sample) never overlap.
local TIME_KEYS = {t_ns = true, started_ns = true, ended_ns = true}
local function is_time_key(k)
  return TIME_KEYS[k] or (type(k) == "string" and (k:match("^t_.*_ns$") or k:match("_arrival_ns$"))) and true or false
end

local function shifted(t, shift)
  local out = {}
  for k, v in pairs(t) do
    if type(v) == "number" and is_time_key(k) then out[k] = math.tointeger(v + shift) or (v + shift)
    else out[k] = v end
  end
  return out
end

local function span_of(sh)
  local t0 = tonumber(sh.env.t0_ns) or 0
  local last = t0
  local function see(v) if type(v) == "number" and v > last then last = v end end
  for _, c in ipairs(sh.data.cells) do see(c.ended_ns) end
  for _, s in ipairs(sh.data.samples) do see(s.t_ns) end
  for _, r in ipairs(sh.data.records) do see(r.t_end_ns) end
  return last - t0
end

local function hostname(env)
  local h = type(env) == "table" and env.host
  return type(h) == "table" and (h.hostname or h.model) or "unknown host"
end

-- the cells a shard finished: those with their file in cells/ (the marker
-- --resume trusts)
local function finished_cells(sh)
  local done, list = {}, {}
  for _, c in ipairs(sh.data.cells or {}) do
    if type(c) == "table" and c.id and results.exists(sh.dir .. "/" .. results.cell_file(c.id)) then
      done[c.id] = c
      list[#list + 1] = c
    end
  end
  return done, list
end

-- One shard's finished cells, records and samples into acc (its clock moved
-- onto the merged timeline at acc.base); st gets its state.
local function take_shard(sh, st, acc)
  st.host = hostname(sh.env)
  acc.hosts[st.host] = true
  st.dir = sh.dir
  local done, list = finished_cells(sh)
  local shift = acc.base - (tonumber(sh.env.t0_ns) or 0)
  local windows = {}
  for _, c in ipairs(list) do
    local copy = shifted(c, shift)
    copy.host, copy.shard = st.host, string.format("%d/%d", st.index, st.count)
    acc.by_id[c.id] = copy
    if type(copy.started_ns) == "number" and type(copy.ended_ns) == "number" then
      windows[#windows + 1] = {copy.started_ns, copy.ended_ns}
    end
  end
  for _, r in ipairs(sh.data.records) do
    if r.cell and done[r.cell] then
      acc.records_of[r.cell] = acc.records_of[r.cell] or {}
      table.insert(acc.records_of[r.cell], shifted(r, shift))
    end
  end
  for _, s in ipairs(sh.data.samples) do
    local copy = shifted(s, shift)
    local keep = s.cell == nil or done[s.cell]
    for _, w in ipairs(windows) do
      if not keep and type(copy.t_ns) == "number" and copy.t_ns >= w[1] and copy.t_ns <= w[2] then keep = true end
    end
    if keep then acc.samples[#acc.samples + 1] = copy end
  end
  acc.base = acc.base + span_of(sh) + 1000000000   -- the next shard starts 1 s after
  for _, id in ipairs(st.expected) do if not done[id] then st.missing[#st.missing + 1] = id end end
  st.finished = sh.summary.finished
  st.state = (#st.missing == 0 and st.finished) and "finished" or "unfinished"
  st.resume = results.resume_command((sh.env.argv or {})[1] or "PLAN.yaml", sh.dir,
                                     {dry_run = sh.env.dry_run, sets = sh.env.sets, only = sh.env.only})
  if sh.summary.started and (not acc.started or sh.summary.started < acc.started) then acc.started = sh.summary.started end
  if sh.summary.finished and (not acc.finished or sh.summary.finished > acc.finished) then acc.finished = sh.summary.finished end
  if type(sh.summary.notes) == "table" then
    for k, v in pairs(sh.summary.notes) do
      if type(v) == "table" and type(acc.notes[k]) == "table" and #v > 0 then
        for _, x in ipairs(v) do table.insert(acc.notes[k], x) end
      elseif acc.notes[k] == nil then acc.notes[k] = v end
    end
  end
end

-- M.join(dir) -> merged data (results.load's shape) and the shards' state
-- | nil, message
function M.join(dir)
  dir = dir:gsub("/+$", "")
  local shards, ref, count = load_shards(dir)
  if not shards then return nil, ref end
  local order = ref.env.shard.order or {}
  local state, all_finished = {}, true
  local acc = {by_id = {}, records_of = {}, samples = {}, hosts = {}, notes = {},
               base = tonumber(ref.env.t0_ns) or 0}
  for i = 1, count do
    local sh = shards[i]
    local st = {index = i, count = count, folder = shard.folder(i, count), expected = {}, missing = {}}
    state[i] = st
    for _, x in ipairs(order) do if x.shard == i then st.expected[#st.expected + 1] = x.id end end
    if not sh then st.state = "missing" all_finished = false
    elseif not sh.data then st.state = "started, no results" all_finished = false
    else
      take_shard(sh, st, acc)
      if st.state ~= "finished" then all_finished = false end
    end
  end
  -- the cells in the plan's order, their records with them
  local cells, records = {}, {}
  for _, x in ipairs(order) do
    local c = acc.by_id[x.id]
    if c then
      cells[#cells + 1] = c
      for _, r in ipairs(acc.records_of[x.id] or {}) do records[#records + 1] = r end
    end
  end
  local hostlist = {}
  for h in pairs(acc.hosts) do hostlist[#hostlist + 1] = h end
  table.sort(hostlist)
  local summary = {}
  for k, v in pairs(ref.summary) do summary[k] = v end
  summary.cells, summary.analysis = nil, nil
  summary.started, summary.finished = acc.started, all_finished and acc.finished or nil
  summary.total_cells = #order
  summary.notes = acc.notes
  -- env.json (the report's Host line) is that of the first shard with results
  local sharding = {run_id = ref.env.shard.run_id, count = count, hosts = hostlist, env_of_shard = ref.index, shards = {}}
  for i = 1, count do
    local st = state[i]
    sharding.shards[i] = {index = i, folder = st.folder, state = st.state, host = st.host,
                          cells = st.expected, missing = st.missing, resume = st.state == "unfinished" and st.resume or nil}
  end
  summary.sharding = sharding
  local env = {}
  for k, v in pairs(ref.env) do env[k] = v end
  env.shard = nil
  env.t0_ns = tonumber(ref.env.t0_ns)
  env.sharding = sharding
  return {dir = dir, summary = summary, env = env, cells = cells, records = records, samples = acc.samples,
          plan_text = ref.data and results.read_file(ref.dir .. "/plan.yaml")}, state, ref
end

-- The phase script's finish over every cell, as the single machine's run
-- would have called it (a shard's notes saw its own cells only). -> notes,
-- lines | nil, message
local function phase_finish(data)
  local plan = require("bench.plan")
  local env = data.env
  local planfile = (env.argv or {})[1]
  local opts = {sets = env.sets, only = env.only, dry_run = env.dry_run or nil}
  local loaded, errs
  local text = planfile and results.read_file(planfile)
  if text and text == env.plan_text then loaded, errs = plan.load(planfile, opts)
  else loaded, errs = plan.from_string(env.plan_text or "", opts) end
  if not loaded then return nil, table.concat(errs or {}, "; ") end
  if not loaded.script_path then return {}, {} end
  if env.dry_run then require("bench.dryrun").apply(loaded) end
  local chunk, err = loadfile(loaded.script_path)
  if not chunk then return nil, err end
  local s = chunk()
  if type(s) ~= "table" or not s.finish then return {}, {} end
  local ctx = {plan = loaded, dry = env.dry_run == true, run = {dir = data.dir}, data = data}
  local ok, notes, lines = pcall(s.finish, ctx, data.cells)
  if not ok then return nil, tostring(notes) end
  return type(notes) == "table" and notes or {}, type(lines) == "table" and lines or {}
end

-- the "Shards" section that closes the merged report.md
function M.shards_section(data, state)
  local sh = data.summary.sharding
  local out = {"", "## Shards", "",
    string.format("This run was split into %d shard%s (run id %s) and merged by `benchrun merge`; the tables above are " ..
      "those one machine running every cell would give.%s", sh.count, sh.count == 1 and "" or "s", tostring(sh.run_id),
      #sh.hosts > 1 and string.format(" The shards ran on %d hosts: the Host line above is shard %d's; each cell's host is below.",
        #sh.hosts, sh.env_of_shard) or ""),
    "", "| shard | host | state | cells |", "|---|---|---|---|"}
  local missing = {}
  for _, st in ipairs(state) do
    local cells = #st.expected == 0 and "none (an empty shard: fewer server groups than shards)" or table.concat(st.expected, ", ")
    out[#out + 1] = string.format("| %d/%d | %s | %s | %s |", st.index, st.count, st.host or "—", st.state, cells)
    if st.state ~= "finished" then missing[#missing + 1] = st end
  end
  if #sh.hosts > 1 then
    out[#out + 1] = ""
    out[#out + 1] = "| cell | host | shard |"
    out[#out + 1] = "|---|---|---|"
    for _, c in ipairs(data.cells) do out[#out + 1] = string.format("| %s | %s | %s |", c.id, c.host, c.shard) end
  end
  if #missing > 0 then
    out[#out + 1] = ""
    out[#out + 1] = "**Not every shard finished: this report lacks their cells.**"
    out[#out + 1] = ""
    for _, st in ipairs(missing) do
      local ids = st.state == "unfinished" and st.missing or st.expected
      local what = #ids > 0 and ("missing cells: " .. table.concat(ids, ", ")) or "no cell missing, the run did not end"
      local how = st.resume and ("; finish it with `" .. st.resume .. "`, then merge again")
        or "; run that shard (`benchrun PLAN.yaml --shard " .. st.index .. "/" .. st.count .. " --run-dir DIR`), then merge again"
      out[#out + 1] = string.format("- shard %d/%d (%s): %s%s", st.index, st.count, st.state, what, how)
    end
  end
  return table.concat(out, "\n") .. "\n"
end

local function write(path, text)
  local ok, err = results.write_atomic(path, text)
  if not ok then error(err, 0) end
end

-- M.merge(dir, {quiet}) -> report path, state, lines | nil, message
function M.merge(dir, opts)
  opts = opts or {}
  local data, state = M.join(dir)
  if not data then return nil, state end
  local notes, lines = phase_finish(data)
  if notes then
    for k, v in pairs(notes) do data.summary.notes[k] = v end
  else
    lines = {"benchrun merge: the phase script's finish failed over the merged cells (" .. tostring(lines) ..
             "); the shards' own notes are kept"}
  end
  local ok, err = pcall(function()
    local recs, smps = {}, {}
    for _, r in ipairs(data.records) do recs[#recs + 1] = results.json_encode(r) end
    for _, s in ipairs(data.samples) do smps[#smps + 1] = results.json_encode(s) end
    write(dir .. "/records.jsonl", #recs > 0 and table.concat(recs, "\n") .. "\n" or "")
    write(dir .. "/samples.jsonl", #smps > 0 and table.concat(smps, "\n") .. "\n" or "")
    write(dir .. "/env.json", results.json_pretty(results.redact(data.env)))
    if data.plan_text then write(dir .. "/plan.yaml", data.plan_text) end
    write(dir .. "/shards.json", results.json_pretty(data.summary.sharding))
  end)
  if not ok then return nil, err end
  data.plan_text = nil
  local rok, path = pcall(require("bench.report").render, data, {out = dir, phase = data.summary.phase})
  if not rok then return nil, tostring(path) end
  local md = results.read_file(path) or ""
  ok, err = results.write_atomic(path, md .. M.shards_section(data, state))
  if not ok then return nil, err end
  return path, state, lines or {}
end

local merge_help = [[
usage: benchrun merge DIR [--quiet]

Joins the shards of one run (DIR/shard-I-of-N/, written by
`benchrun PLAN.yaml --shard I/N --run-dir DIR`) into DIR: report.md,
summary.csv, summary.json, charts/, records.jsonl and samples.jsonl, as one
machine running every cell would have written them, with a Shards section
(hosts, states, missing cells and how to finish them). Shards of different
plans, plan versions or options are refused, naming the difference.
`benchrun report DIR` does the same. Exit status 1 when a shard is missing
or unfinished (the report is written without its cells).
]]

-- merge.main(...) -> exit status (benchrun merge DIR)
function M.main(...)
  local args = {...}
  local dir, quiet
  for _, a in ipairs(args) do
    if a == "--help" or a == "-h" then io.stdout:write(merge_help) return 0
    elseif a == "--quiet" or a == "-q" then quiet = true
    elseif a:sub(1, 2) == "--" then
      io.stderr:write("benchrun: merge: unknown option '", a, "'\n(try 'benchrun merge --help')\n") return 2
    elseif dir then
      io.stderr:write("benchrun: merge: one folder only (got ", dir, " and ", a, ")\n") return 2
    else dir = a end
  end
  if not dir then io.stderr:write("benchrun: merge: missing DIR (the run's folder)\n(try 'benchrun merge --help')\n") return 2 end
  local path, state, lines = M.merge(dir)
  if not path then io.stderr:write("benchrun: merge: ", tostring(state), "\n") return 1 end
  local bad = 0
  for _, st in ipairs(state) do
    if st.state ~= "finished" then
      bad = bad + 1
      local ids = st.state == "unfinished" and st.missing or st.expected
      io.stderr:write(string.format("benchrun: merge: shard %d/%d is %s%s%s\n", st.index, st.count, st.state,
        #ids > 0 and ("; missing cells: " .. table.concat(ids, ", ")) or "",
        st.resume and ("; finish it with: " .. st.resume) or ""))
    end
  end
  if not quiet then for _, l in ipairs(lines) do io.stdout:write(l, "\n") end end
  io.stdout:write(path, "\n")
  return bad > 0 and 1 or 0
end

return M
