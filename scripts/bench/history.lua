-- bench.history: every finished run recorded in a SQLite database (bench.db),
-- `benchrun history` to list them and `benchrun compare --baseline` to
-- compare a run with a recorded one (docs/history.md).
--
-- Where: --history PATH, else $BENCHRUN_HISTORY ("off" records nothing),
-- else $XDG_DATA_HOME/benchrun/history.db, else ~/.local/share/benchrun/history.db.
-- The history never stops a run: a database that cannot be written is a
-- warning (the results folder keeps everything), a corrupt one is renamed
-- aside with a timestamp and a fresh one started.
--
-- Errors are returned as nil, message (and sometimes a kind: bench.db's);
-- bench.errors' typed values may replace them.
local db = require("bench.db")
local results = require("bench.results")
local util = require("bench.util")

local history = {}

history.SCHEMA_VERSION = 1

-- The schema (docs/history.md describes each column). One row per run and
-- one per configuration of the run, with the figures and per-repeat values
-- `benchrun compare` needs, so a baseline works after its folder is gone.
local SCHEMA = [[
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS runs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  recorded TEXT NOT NULL,
  started TEXT, finished TEXT,
  plan TEXT, plan_file TEXT, phase TEXT, plan_text TEXT,
  dir TEXT,
  host TEXT, os TEXT, cpu TEXT, ram_bytes INTEGER,
  benchrun TEXT, servers TEXT,
  dry_run INTEGER NOT NULL DEFAULT 0,
  cells INTEGER, cells_ok INTEGER, status TEXT,
  argv TEXT, facts TEXT
);
CREATE INDEX IF NOT EXISTS runs_plan ON runs (plan, id);
CREATE INDEX IF NOT EXISTS runs_host ON runs (host, id);
CREATE TABLE IF NOT EXISTS configs (
  run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
  seq INTEGER NOT NULL,
  key TEXT NOT NULL,
  name TEXT, status TEXT, labels TEXT, cells TEXT, server_version TEXT,
  decode_tps REAL, output_tps REAL, ttft_p50 REAL, ttft_p95 REAL,
  e2el_p50 REAL, e2el_p95 REAL, load_s REAL, peak_bytes REAL,
  requests INTEGER, ok INTEGER,
  metrics TEXT, repeat_values TEXT,
  PRIMARY KEY (run_id, key)
);
]]

local FIGURES = {"decode_tps", "output_tps", "ttft_p50", "ttft_p95", "e2el_p50", "e2el_p95", "load_s", "peak_bytes"}

-- history.path(opts) -> the database path, or false when the history is off
function history.path(opts)
  opts = opts or {}
  if opts.no_history then return false end
  if opts.history then return opts.history end
  local env = os.getenv("BENCHRUN_HISTORY")
  if env == "off" then return false end
  if env and env ~= "" then return env end
  local base = os.getenv("XDG_DATA_HOME")
  if not base or base == "" then base = (os.getenv("HOME") or ".") .. "/.local/share" end
  return base .. "/benchrun/history.db"
end

local function dirname(p) return p:match("^(.*)/[^/]*$") end

-- A corrupt file is renamed aside (with its -wal and -shm) under a lock, and
-- only if it is still corrupt: another benchrun may have set it aside and
-- started a fresh one in between.
local function set_aside(path)
  local lock = require("bench.sys").lockfile(path .. ".lock")
  local h, _, kind = db.open(path, {wal = false})
  if h then h:close() end
  local aside
  if kind == "corrupt" then
    aside = string.format("%s.corrupt-%s", path, util.utc_stamp())
    local ok, why = os.rename(path, aside)
    if not ok then
      if lock then lock:unlock() end
      return nil, "cannot set the corrupt database aside: " .. tostring(why)
    end
    os.remove(path .. "-wal")
    os.remove(path .. "-shm")
  end
  if lock then lock:unlock() end
  return aside or true
end

-- history.open(path [, {readonly = true}]) -> handle, note | nil, message, kind
-- Creates the folder and the schema; sets a corrupt file aside (the note
-- says so and where).
function history.open(path, opts)
  opts = opts or {}
  local note
  for _ = 1, 2 do
    if not opts.readonly then
      local dir = dirname(path)
      if dir and dir ~= "" then
        local ok, why = results.mkdir(dir)
        if not ok then return nil, why, "cantopen" end
      end
    end
    local h, msg, kind = db.open(path, {readonly = opts.readonly})
    if h and not opts.readonly then
      local ok, m2, k2 = h:exec(SCHEMA)
      if ok then ok, m2, k2 = h:run("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                                    tostring(history.SCHEMA_VERSION)) end
      if not ok then h:close() h, msg, kind = nil, m2, k2 end
    end
    if h then return h, note end
    if kind ~= "corrupt" or opts.readonly or note then return nil, msg, kind end
    local aside, why = set_aside(path)
    if not aside then return nil, msg .. "; " .. why, kind end
    note = string.format("%s was corrupt (%s)%s; a new history starts", path, msg,
                         type(aside) == "string" and ("; set aside as " .. aside) or "")
  end
end

local function json(v) return results.json_encode(v) end

local function abspath(p)
  if p:sub(1, 1) == "/" then return p end
  local pwd = os.getenv("PWD")
  return pwd and (pwd .. "/" .. p:gsub("^%./", "")) or p
end

-- The run's row and its configurations' rows from a results folder's data.
local function rows_of(data, opts)
  local analysis = require("bench.report.analysis")
  local compare = require("bench.report.compare")
  local an = analysis.analyze(data)
  local facts = compare.env_facts(data)
  local env = data.env or {}
  local s = data.summary or {}
  local ok_cells = 0
  for _, c in ipairs(data.cells or {}) do if analysis.cell_status(c) == "ok" then ok_cells = ok_cells + 1 end end
  local ncells = #(data.cells or {})
  local h = type(env.host) == "table" and env.host or {}
  local argv = opts.argv or env.argv
  local run = {
    recorded = util.utc_iso(), started = s.started or env.started, finished = s.finished,
    plan = s.name, plan_file = type(argv) == "table" and argv[1] or nil, phase = s.phase,
    plan_text = env.plan_text, dir = data.dir and abspath(data.dir),
    host = facts.host, os = facts.os, cpu = facts.cpu, ram_bytes = math.tointeger(tonumber(h.ram)),
    benchrun = facts.benchrun, servers = facts.servers, dry_run = env.dry_run == true or (s.notes or {}).dry_run == true,
    cells = ncells, cells_ok = ok_cells,
    status = ok_cells == ncells and "ok" or string.format("%d of %d not ok", ncells - ok_cells, ncells),
    argv = type(argv) == "table" and json(argv) or nil, facts = json(facts),
  }
  local configs = {}
  for i, c in ipairs(an.configs) do
    local ids, version = {}, nil
    for _, cell in ipairs(c.cells) do
      ids[#ids + 1] = cell.id
      if type(cell.server) == "table" and type(cell.server.version) == "string" then version = cell.server.version end
    end
    local row = {seq = i, key = c.key, name = c.name, status = c.status, labels = json(c.labels), cells = json(ids),
                 server_version = version, metrics = json(c.metrics), repeat_values = json(c.repeat_values),
                 requests = math.tointeger(c.metrics.requests), ok = math.tointeger(c.metrics.ok)}
    for _, k in ipairs(FIGURES) do row[k] = util.finite(c.metrics[k]) end
    configs[#configs + 1] = row
  end
  return run, configs
end

local RUN_COLS = {"recorded", "started", "finished", "plan", "plan_file", "phase", "plan_text", "dir", "host", "os",
                  "cpu", "ram_bytes", "benchrun", "servers", "dry_run", "cells", "cells_ok", "status", "argv", "facts"}
local CONFIG_COLS = {"seq", "key", "name", "status", "labels", "cells", "server_version", "decode_tps", "output_tps",
                     "ttft_p50", "ttft_p95", "e2el_p50", "e2el_p95", "load_s", "peak_bytes", "requests", "ok",
                     "metrics", "repeat_values"}

local function insert_sql(tbl, cols, extra)
  local names, marks = {}, {}
  for _, c in ipairs(extra or {}) do names[#names + 1] = c marks[#marks + 1] = ":" .. c end
  for _, c in ipairs(cols) do names[#names + 1] = c marks[#marks + 1] = ":" .. c end
  return string.format("INSERT INTO %s (%s) VALUES (%s)", tbl, table.concat(names, ", "), table.concat(marks, ", "))
end

local function insert(h, run, configs)
  local ok, msg, kind = h:exec("BEGIN IMMEDIATE")
  if not ok then return nil, msg, kind end
  local n, id, k1 = h:run(insert_sql("runs", RUN_COLS), run)
  if not n then h:exec("ROLLBACK") return nil, id, k1 end
  for _, c in ipairs(configs) do
    c.run_id = id
    local n, m3, k3 = h:run(insert_sql("configs", CONFIG_COLS, {"run_id"}), c)
    if not n then h:exec("ROLLBACK") return nil, m3, k3 end
  end
  ok, msg, kind = h:exec("COMMIT")
  if not ok then h:exec("ROLLBACK") return nil, msg, kind end
  return id
end

-- history.record(dir_or_data, opts) -> run id, note | nil, message
-- opts: history (path), no_history, argv. A corrupt database found while
-- writing is set aside and the run recorded in a fresh one.
function history.record(src, opts)
  opts = opts or {}
  local path = history.path(opts)
  if not path then return nil, "off" end
  local data = src
  if type(src) == "string" then
    local why
    data, why = results.load(src)
    if not data then return nil, why end
  end
  local run, configs = rows_of(data, opts)
  local note
  for _ = 1, 2 do
    local h, msg = history.open(path)
    if not h then return nil, string.format("cannot open %s: %s", path, msg) end
    note = note or msg
    local id, m2, k2 = insert(h, run, configs)
    h:close()
    if id then return id, note end
    if k2 ~= "corrupt" then return nil, string.format("cannot write to %s: %s", path, m2) end
    local aside = set_aside(path)
    note = string.format("%s was corrupt (%s)%s; a new history starts", path, m2,
                         type(aside) == "string" and ("; set aside as " .. aside) or "")
  end
  return nil, string.format("cannot write to %s: it stays corrupt", path)
end

-- history.after_run(dir, opts, progress): the runner's hook. Records the
-- finished run; whatever goes wrong is a warning on stderr, never the
-- run's failure (its results folder keeps everything).
function history.after_run(dir, opts, progress)
  opts = opts or {}
  local path = history.path(opts)
  if not path then return nil end
  local ok, id, note = pcall(history.record, dir, opts)
  if ok and id then
    if note then io.stderr:write("benchrun: history: warning: ", note, "\n") end
    if progress then progress:log(string.format("history: recorded as run #%d in %s", id, path)) end
    return id
  end
  local why = ok and note or id
  io.stderr:write(string.format("benchrun: history: warning: this run was not recorded: %s\n" ..
    "          its results are kept in %s; --history PATH or BENCHRUN_HISTORY chooses another database, " ..
    "--no-history skips it\n", tostring(why), tostring(dir)))
  return nil
end

-- ------------------------------------------------------------ queries

-- history.list(h, {plan, host, since, limit}) -> rows (newest first)
function history.list(h, f)
  f = f or {}
  local where, args = {}, {}
  if f.plan then where[#where + 1] = "plan = :plan" args.plan = f.plan end
  if f.host then where[#where + 1] = "host = :host" args.host = f.host end
  if f.since then where[#where + 1] = "started >= :since" args.since = f.since end
  local sql = "SELECT r.*, (SELECT max(decode_tps) FROM configs c WHERE c.run_id = r.id) AS best_decode_tps " ..
              "FROM runs r" .. (#where > 0 and (" WHERE " .. table.concat(where, " AND ")) or "") ..
              " ORDER BY id DESC" .. (f.limit and " LIMIT :limit" or "")
  args.limit = f.limit
  return h:rows(sql, args)
end

-- history.run(h, id) -> the run's row with .configs (decoded) | nil, message
function history.run(h, id)
  local rows, msg = h:rows("SELECT * FROM runs WHERE id = ?", id)
  if not rows then return nil, msg end
  if not rows[1] then return nil, string.format("no run #%d", id) end
  local run = rows[1]
  local cfgs = assert(h:rows("SELECT * FROM configs WHERE run_id = ? ORDER BY seq", id))
  for _, c in ipairs(cfgs) do
    c.labels = results.json_decode(c.labels or "{}") or {}
    c.metrics = results.json_decode(c.metrics or "{}") or {}
    c.repeat_values = results.json_decode(c.repeat_values or "{}") or {}
  end
  run.configs = cfgs
  run.facts = results.json_decode(run.facts or "{}") or {}
  return run
end

-- history.baseline(h, spec, candidate) -> run row | nil, message
-- spec: "last" (the latest run of the candidate's plan recorded before it,
-- its folder another, a dry run for a dry run and a real one for a real one)
-- or a run id.
function history.baseline(h, spec, cand)
  if spec == "last" then
    local rows = assert(h:rows("SELECT id FROM runs WHERE plan IS :plan AND id < :below AND (dir IS NULL OR " ..
      "dir IS NOT :dir) AND dry_run = :dry ORDER BY id DESC LIMIT 1",
      {plan = cand.plan, below = cand.id or math.maxinteger, dir = cand.dir, dry = cand.dry_run and 1 or 0}))
    if not rows[1] then
      return nil, string.format("no earlier %srun of plan '%s' is recorded", cand.dry_run and "dry " or "",
                                tostring(cand.plan))
    end
    return history.run(h, rows[1].id)
  end
  return history.run(h, spec)
end

-- An analysis-like view of a recorded run, for compare.analyses.
function history.as_analysis(run)
  local by_key = {}
  for _, c in ipairs(run.configs) do by_key[c.key] = c end
  return {configs = run.configs, by_key = by_key}
end

return history
