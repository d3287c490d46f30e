-- bench.results: the results folder of one run (docs/results-format.md).
-- Records are appended and flushed as each request ends; every other file is
-- written atomically (temp file + rename) so a crash leaves whole files only,
-- and a cell's file in cells/ is the marker --resume trusts.
local M = {}

local util = require("bench.util")

local FORMAT = "benchrun-results/1"

-- JSON in and out: bench.results.json (exact integers, sorted keys, UTF-8
-- only), under the names the results store has always had
local json = require("bench.results.json")
M.json_encode, M.json_pretty, M.json_decode, M.valid_utf8 = json.encode, json.pretty, json.decode, json.valid_utf8
local valid_utf8 = json.valid_utf8

-- ------------------------------------------------------------ files
local exists, read_file = util.exists, util.read_file
M.exists = exists
M.read_file = read_file

-- results.write_atomic(path, text) -> true | nil, message
-- Written beside the target and renamed over it: readers and crashes see the
-- old file or the new one, never a torn one.
function M.write_atomic(path, text)
  local tmp = path .. ".tmp"
  local f, err = io.open(tmp, "wb")
  if not f then return nil, "results: cannot write " .. tmp .. ": " .. tostring(err) end
  local ok, werr = f:write(text)
  if ok then ok, werr = f:flush() end
  local cok, cerr = f:close()
  if ok and not cok then ok, werr = nil, cerr end
  if not ok then
    os.remove(tmp)
    return nil, "results: cannot write " .. tmp .. ": " .. tostring(werr)
  end
  local rok, rerr = os.rename(tmp, path)
  if not rok then
    os.remove(tmp)
    return nil, "results: cannot rename " .. tmp .. " to " .. path .. ": " .. tostring(rerr)
  end
  return true
end

-- results.mkdir(path [, exclusive]) -> true | nil, message, "exists"
-- Creates parents, with the C library (bench.sys.mkdir): no program is run,
-- so a name such as "-rf" is a name. With exclusive the folder must be new.
function M.mkdir(path, exclusive)
  local ok, err, code = require("bench.sys").mkdir(path, exclusive)
  if ok then return true end
  return nil, "results: cannot create folder " .. tostring(err), code
end

-- results.file_name(id) -> the id as a file name: characters other than
-- letters, digits, '.', '_' and '-' become '_' (plan validation refuses two
-- cells whose ids give one name).
function M.file_name(id)
  return (tostring(id):gsub("[^%w%._%-]", "_"))
end

-- results.cell_file(id) -> "cells/<safe id>.json"
function M.cell_file(id)
  return "cells/" .. M.file_name(id) .. ".json"
end

local utc_iso = util.utc_iso

local function monotonic_ns()
  local ok, clock = pcall(require, "bench.clock")
  if ok and clock.now then return clock.now() end
  return math.floor(os.clock() * 1e9)
end

-- Keys that may carry secrets never reach a file.
local SECRET_KEYS = {api_key = true, authorization = true, Authorization = true, headers = true}

-- Values under names that look like credentials (HF_TOKEN, OPENAI_API_KEY,
-- password, ...) are replaced in env.json and cell files: server env tables
-- and argv-derived settings end up there.
-- Whole words only, so max_tokens or token_counts stay.
local SECRET_WORD = {token = true, secret = true, password = true, passwd = true, apikey = true,
                     authorization = true, credential = true, credentials = true}

local function secret_name(k)
  if type(k) ~= "string" then return false end
  local prev
  for w in k:lower():gmatch("[%a%d]+") do
    if SECRET_WORD[w] or (prev == "api" and w == "key") then return true end
    prev = w
  end
  return false
end
M.secret_name = secret_name

local function redact(v, seen)
  if type(v) ~= "table" then return v end
  seen = seen or {}
  if seen[v] then return seen[v] end
  local out = {}
  seen[v] = out
  for k, x in pairs(v) do
    if secret_name(k) and (type(x) == "string" or type(x) == "number") then out[k] = "(redacted)"
    else out[k] = redact(x, seen) end
  end
  return out
end
M.redact = redact

local function scrub(rec)
  local out = {}
  for k, v in pairs(rec) do
    if not SECRET_KEYS[k] then out[k] = v end
  end
  return out
end

-- ------------------------------------------------------------ the run
local Run = {}
Run.__index = Run
Run.__name = "bench.results.Run"

function Run:__tostring()
  return string.format("bench.results.Run (%s%s)", self.dir, self.closed and ", closed" or "")
end

local function check_open(self, fname)
  if getmetatable(self) ~= Run then error("results." .. fname .. ": expected a run (use run:" .. fname .. ")", 3) end
  if self.closed then error("results." .. fname .. ": the run " .. self.dir .. " is closed", 3) end
  -- after a failed write nothing more is written: the run is stopping
  if self.write_error then error(self.write_error, 0) end
end

-- A failed write (a full disk) ends the run: going on would lose records
-- silently. The lines already flushed stay whole; a torn last line is left
-- out by every reader and by --resume. The error is a plain message (no
-- traceback: it is the disk, not benchrun).
function Run:_write_failed(file, err)
  local what = file and string.format("results: cannot write %s/%s: %s", self.dir, file, tostring(err)) or err
  local msg = string.format("%s; the run stops here (the records written before are kept; " ..
                            "free some space, then continue with --resume %s)", what, self.dir)
  self.write_error, self.write_cause = msg, what   -- the cause alone, for finish's message
  error(msg, 0)
end

-- true when a string in v (a record) is not valid UTF-8: the file gets
-- U+FFFD in its place and the record says so.
local function has_invalid_utf8(v, depth)
  if type(v) == "string" then return select(2, valid_utf8(v)) end
  if type(v) ~= "table" or (depth or 0) > 8 then return false end
  for k, x in pairs(v) do
    if has_invalid_utf8(k, 9) or has_invalid_utf8(x, (depth or 0) + 1) then return true end
  end
  return false
end

function Run:_write_summary()
  local s = self.summary
  s.cells = self.cell_list
  local ok, err = M.write_atomic(self.dir .. "/summary.json", M.json_pretty(s))
  s.cells = nil
  if not ok then self:_write_failed(nil, err) end
end

-- run:done(cell_id) -> bool: the cell finished (any status) in this folder.
function Run:done(cell_id)
  check_open(self, "done")
  if type(cell_id) ~= "string" then error("results.done: cell id must be a string, got " .. type(cell_id), 2) end
  return self.done_ids[cell_id] == true
end

-- run:record(cell_id, rec): append one request record, flushed at once.
function Run:record(cell_id, rec)
  -- after a failed write the first error is stopping the run; the other
  -- senders' records have nowhere to go (and one message is enough)
  if self.write_error and getmetatable(self) == Run then return end
  check_open(self, "record")
  if type(cell_id) ~= "string" then error("results.record: cell id must be a string, got " .. type(cell_id), 2) end
  if type(rec) ~= "table" then error("results.record: record must be a table, got " .. type(rec), 2) end
  local r = scrub(rec)
  r.cell = cell_id
  r["repeat"] = math.tointeger(rec["repeat"]) or 1
  r.warmup = rec.warmup == true
  if has_invalid_utf8(r) then r.invalid_utf8, rec.invalid_utf8 = true, true end
  local line = M.json_encode(r) .. "\n"
  local ok, err = self.records_f:write(line)
  if ok then ok, err = self.records_f:flush() end
  if not ok then self:_write_failed("records.jsonl", err) end
  self.nrecords = self.nrecords + 1
end

-- run:sample(s): one time-series sample (buffered; flushed at cell end).
function Run:sample(s)
  if self.write_error and getmetatable(self) == Run then return end
  check_open(self, "sample")
  if type(s) ~= "table" then error("results.sample: sample must be a table, got " .. type(s), 2) end
  local ok, err = self.samples_f:write(M.json_encode(s), "\n")
  if not ok then self:_write_failed("samples.jsonl", err) end
  self.pending_samples = self.pending_samples + 1
  if self.pending_samples >= 256 then self:flush() end
end

-- run:samples(list): many samples.
function Run:samples(list)
  check_open(self, "samples")
  if type(list) ~= "table" then error("results.samples: expected a list of samples, got " .. type(list), 2) end
  for _, s in ipairs(list) do self:sample(s) end
end

function Run:flush()
  check_open(self, "flush")
  local ok, err = self.samples_f:flush()
  if not ok then self:_write_failed("samples.jsonl", err) end
  ok, err = self.records_f:flush()
  if not ok then self:_write_failed("records.jsonl", err) end
  self.pending_samples = 0
end

local function run_checks(checks, cell)
  if not checks or type(cell.outputs) ~= "table" then return nil end
  local res = {}
  for prompt, fn in pairs(checks) do
    local text = cell.outputs[prompt]
    if text ~= nil then
      local ok, passed, detail = pcall(fn, text, {prompt = prompt, cell = cell})
      if ok then
        res[prompt] = {ok = passed == true, detail = detail ~= nil and tostring(detail) or nil}
      elseif bench.is_interrupt(passed) then
        error(passed, 0)   -- an interrupted check is no result: the signal goes on
      else
        res[prompt] = {ok = false, detail = "error: " .. tostring(passed)}
      end
    end
  end
  return next(res) and res or nil
end
M.run_checks = run_checks

-- ok, degraded (some requests failed, above the plan's max_error_rate),
-- oom, crashed, failed, skipped (docs/results-format.md)
local STATUSES = {ok = true, degraded = true, oom = true, crashed = true, failed = true, skipped = true}

-- run:cell(cell): the cell ended. summary.json is rewritten first and the
-- cell's own file last: that file is the "done" marker, so a crash between the
-- two only makes --resume run the cell again.
function Run:cell(cell)
  check_open(self, "cell")
  if type(cell) ~= "table" then error("results.cell: cell must be a table, got " .. type(cell), 2) end
  if type(cell.id) ~= "string" or cell.id == "" then error("results.cell: cell.id must be a non-empty string", 2) end
  cell.status = cell.status or "ok"
  if not STATUSES[cell.status] then
    error("results.cell: cell " .. cell.id .. ": status must be ok, degraded, oom, crashed, failed or skipped, got " .. tostring(cell.status), 2)
  end
  local copy = {}
  for k, v in pairs(cell) do copy[k] = v end
  copy.labels = redact(copy.labels)
  copy.server = redact(copy.server)
  copy.finished = utc_iso()
  local checked = run_checks(self.checks, copy)
  if checked then
    copy.checks = copy.checks or {}
    for k, v in pairs(checked) do copy.checks[k] = v end
  end
  local replaced = false
  for i, c in ipairs(self.cell_list) do
    if c.id == copy.id then self.cell_list[i] = copy replaced = true break end
  end
  if not replaced then self.cell_list[#self.cell_list + 1] = copy end
  self:flush()
  self:_write_summary()
  local ok, err = M.write_atomic(self.dir .. "/" .. M.cell_file(copy.id), M.json_pretty(copy))
  if not ok then self:_write_failed(nil, err) end
  self.done_ids[copy.id] = true
  return copy
end

-- run:cells() -> finished cells in completion order.
function Run:cells()
  local out = {}
  for i, c in ipairs(self.cell_list) do out[i] = c end
  return out
end

-- run:finish{phase=, notes=} -> true | nil, message: summary.json with
-- the end time, the phase and the phase script's notes; the files closed.
-- The report is bench.report's (report.finish(run, opts) does both).
function Run:finish(opts)
  check_open(self, "finish")
  opts = opts or {}
  if type(opts) ~= "table" then error("results.finish: options must be a table, got " .. type(opts), 2) end
  if opts.phase then self.summary.phase = opts.phase end
  if opts.notes then self.summary.notes = opts.notes end
  self.summary.finished = utc_iso()
  -- a failed write here (a full disk) is a message, not a traceback: every
  -- cell is already on disk and `benchrun report DIR` can write the rest
  local ok, err = pcall(function()
    self:flush()
    self:_write_summary()
  end)
  self:close()
  if ok then return true end
  return nil, M.kept_message(self, err)
end

-- results.kept_message(run, why) -> the message of a finish or report that
-- failed: why, and that the cells are kept for `benchrun report DIR`.
function M.kept_message(run, why)
  return string.format("%s; the cells are kept in %s (once there is space, `benchrun report %s` writes the report)",
                       tostring(run.write_cause or why),
                       run.dir, run.dir)
end

-- run:close(): close the files (idempotent; also __close and __gc).
function Run:close()
  if self.closed then return end
  self.closed = true
  if self.records_f then self.records_f:close() end
  if self.samples_f then self.samples_f:close() end
  if self.lock then self.lock:unlock() end
end
Run.__close = Run.close
Run.__gc = Run.close

local function open_streams(self)
  local rf, err = io.open(self.dir .. "/records.jsonl", "ab")
  if not rf then return nil, "results: cannot open " .. self.dir .. "/records.jsonl: " .. tostring(err) end
  local sf, err2 = io.open(self.dir .. "/samples.jsonl", "ab")
  if not sf then rf:close() return nil, "results: cannot open " .. self.dir .. "/samples.jsonl: " .. tostring(err2) end
  sf:setvbuf("full")
  self.records_f, self.samples_f = rf, sf
  return true
end

local function new_run(dir)
  return setmetatable({dir = dir, cell_list = {}, done_ids = {}, nrecords = 0,
                       pending_samples = 0, closed = false}, Run)
end

-- One benchrun at a time in a folder: a second --resume of the same folder
-- (another terminal) would append to the same files. The lock is the
-- kernel's (flock on DIR/.lock), so a killed run leaves none behind.
local function lock_dir(run)
  local lock, why, code = require("bench.sys").lockfile(run.dir .. "/.lock")
  if lock then run.lock = lock return true end
  if code == "busy" then
    return nil, "results: " .. run.dir .. " is in use by another benchrun (running or resuming this run); wait for it to end"
  end
  return nil, "results: cannot lock " .. tostring(why)
end

local function plan_yaml(opts)
  if opts.plan ~= nil then
    local ok, yaml = pcall(require, "bench.yaml")
    if ok and type(yaml.encode) == "function" then
      local okenc, text = pcall(yaml.encode, opts.plan)
      if okenc and type(text) == "string" then return text end
    end
  end
  return opts.plan_text
end

-- results.create{root=, name=, dir=, plan=, plan_text=, env=, phase=, checks=,
-- total_cells=} -> run | nil, message
function M.create(opts)
  if type(opts) ~= "table" then error("results.create: expected a table of options, got " .. type(opts), 2) end
  local dir = opts.dir
  if dir == nil then
    if type(opts.name) ~= "string" or opts.name == "" then
      error("results.create: name (the plan's name) must be a non-empty string", 2)
    end
  elseif type(dir) ~= "string" then
    error("results.create: dir must be a string, got " .. type(dir), 2)
  end
  if opts.checks ~= nil and type(opts.checks) ~= "table" then
    error("results.create: checks must be a table of functions by prompt name", 2)
  end
  for k, fn in pairs(opts.checks or {}) do
    if type(fn) ~= "function" then error("results.create: checks." .. tostring(k) .. " must be a function", 2) end
  end
  local ok, err
  if dir == nil then
    -- <root>/<name>-<UTC time>, made exclusively: a second run started in
    -- the same second finds it taken and adds -2, -3, ...
    local root = opts.root or "results"
    ok, err = M.mkdir(root)
    if not ok then return nil, err end
    local base = root .. "/" .. M.file_name(opts.name) .. "-" .. util.utc_stamp()
    for n = 1, 1000 do
      local try = n == 1 and base or (base .. "-" .. n)
      local made, why, code = M.mkdir(try, true)
      if made then dir = try break end
      if code ~= "exists" then return nil, why end
    end
    if not dir then return nil, "results: cannot find a free folder name beside " .. base end
  elseif exists(dir .. "/summary.json") then
    return nil, "results: " .. dir .. " already holds a run (use results.open to resume it)"
  end
  ok, err = M.mkdir(dir .. "/cells")
  if not ok then return nil, err end
  local run = new_run(dir)
  ok, err = lock_dir(run)
  if not ok then return nil, err end
  run.checks = opts.checks
  local started = utc_iso()
  run.summary = {format = FORMAT, name = opts.name, phase = opts.phase, started = started,
                 total_cells = opts.total_cells,
                 benchrun = {version = bench and bench.version, git = bench and bench.git}}
  local env = {}
  for k, v in pairs(opts.env or {}) do env[k] = v end
  env.benchrun = env.benchrun or run.summary.benchrun
  env.plan_text = env.plan_text or opts.plan_text
  env.started = env.started or started
  env.t0_ns = env.t0_ns or monotonic_ns()
  run.t0_ns = env.t0_ns
  local text = plan_yaml(opts)
  if text then
    ok, err = M.write_atomic(dir .. "/plan.yaml", text)
    if not ok then run:close() return nil, err end
  end
  ok, err = M.write_atomic(dir .. "/env.json", M.json_pretty(redact(env)))
  if not ok then run:close() return nil, err end
  ok, err = open_streams(run)
  if not ok then run:close() return nil, err end
  ok, err = pcall(run._write_summary, run)
  if not ok then run:close() return nil, err end
  return run
end

-- Keep only the lines of a JSONL file whose cell finished (rewritten
-- atomically). A sample also stays when its time falls inside a finished
-- cell's window: a server kept across cells labels all its samples with the
-- cell that stopped it, which may be the one interrupted.
local function compact_jsonl(path, keep, windows)
  local f = io.open(path, "rb")
  if not f then return true end
  local out, dropped = {}, 0
  local function in_window(t)
    if type(t) ~= "number" then return false end
    for _, w in ipairs(windows or {}) do if t >= w[1] and t <= w[2] then return true end end
    return false
  end
  for line in f:lines() do
    local v = line ~= "" and M.json_decode(line)
    if type(v) == "table" and (v.cell == nil or keep[v.cell] or in_window(v.t_ns)) then
      out[#out + 1] = line
    else
      dropped = dropped + 1
    end
  end
  f:close()
  if dropped == 0 then return true end
  return M.write_atomic(path, #out > 0 and table.concat(out, "\n") .. "\n" or "")
end

-- results.open(dir, {checks=, expect=}) -> run | nil, message
-- expect = {plan_text, sets, only, dry_run}: refuse a folder whose run
-- started otherwise (results.invocation_diff).
-- Reopen for --resume: keep finished cells; drop records and samples of the
-- cell that was interrupted so that it reruns from nothing.
function M.open(dir, opts)
  if type(dir) ~= "string" then error("results.open: dir must be a string, got " .. type(dir), 2) end
  opts = opts or {}
  local text = read_file(dir .. "/summary.json")
  if not text then return nil, "results: " .. dir .. " is not a results folder (no summary.json)" end
  local summary, err = M.json_decode(text)
  if type(summary) ~= "table" then
    return nil, "results: " .. dir .. "/summary.json: not valid JSON: " .. tostring(err)
  end
  if opts.expect then
    -- the caller's plan and options must be those the run started with
    local was, why = M.invocation(dir)
    if not was then return nil, why end
    local diff = M.invocation_diff(was, opts.expect)
    if diff then return nil, "results: " .. dir .. " holds another run: " .. table.concat(diff, "; ") end
  end
  local run = new_run(dir)
  local lok, lerr = lock_dir(run)
  if not lok then return nil, lerr end
  run.checks = opts.checks
  for _, c in ipairs(summary.cells or {}) do
    if type(c) == "table" and c.id and exists(dir .. "/" .. M.cell_file(c.id)) then
      run.cell_list[#run.cell_list + 1] = c
      run.done_ids[c.id] = true
    end
  end
  summary.cells = nil
  summary.finished = nil
  summary.analysis = nil   -- rebuilt by the next finish
  run.summary = summary
  local ok
  ok, err = compact_jsonl(dir .. "/records.jsonl", run.done_ids)
  if not ok then run:close() return nil, err end
  local windows = {}
  for _, c in ipairs(run.cell_list) do
    if type(c.started_ns) == "number" and type(c.ended_ns) == "number" then
      windows[#windows + 1] = {c.started_ns, c.ended_ns}
    end
  end
  ok, err = compact_jsonl(dir .. "/samples.jsonl", run.done_ids, windows)
  if not ok then run:close() return nil, err end
  local envtext = read_file(dir .. "/env.json")
  local env = envtext and M.json_decode(envtext)
  run.t0_ns = type(env) == "table" and env.t0_ns or nil
  ok, err = M.mkdir(dir .. "/cells")
  if not ok then run:close() return nil, err end
  ok, err = open_streams(run)
  if not ok then run:close() return nil, err end
  ok, err = pcall(run._write_summary, run)
  if not ok then run:close() return nil, err end
  return run
end

-- results.invocation(dir) -> {plan_text, sets, only, dry_run} | nil, message
-- What the run in dir was started with (env.json): --resume must continue
-- the same plan with the same options, never mix two runs in one folder.
function M.invocation(dir)
  if type(dir) ~= "string" then error("results.invocation: dir must be a string, got " .. type(dir), 2) end
  if not exists(dir .. "/summary.json") then
    return nil, "results: " .. dir .. " is not a results folder (no summary.json)"
  end
  local text = read_file(dir .. "/env.json")
  local env = text and M.json_decode(text)
  if type(env) ~= "table" then
    return nil, "results: " .. dir .. "/env.json is missing or not valid JSON: cannot tell which run this folder holds"
  end
  local sets = {}
  for i, x in ipairs(type(env.sets) == "table" and env.sets or {}) do sets[i] = tostring(x) end
  return {plan_text = env.plan_text, sets = sets, only = env.only, dry_run = env.dry_run == true}
end

-- results.invocation_diff(was, now) -> nil | list of what differs (text)
-- now: {plan_text, sets, only, dry_run} of the command that would resume.
function M.invocation_diff(was, now)
  local diff = {}
  if was.plan_text ~= nil and was.plan_text ~= now.plan_text then
    diff[#diff + 1] = "the plan: its text is not the one the run started with (kept in env.json, plan_text)"
  end
  local a, b = table.concat(was.sets or {}, "\0"), table.concat(now.sets or {}, "\0")
  if a ~= b then
    local function show(l) return #l == 0 and "none" or ("--set " .. table.concat(l, " --set ")) end
    diff[#diff + 1] = string.format("--set: the run started with %s, now %s", show(was.sets or {}), show(now.sets or {}))
  end
  if (was.only or "") ~= (now.only or "") then
    diff[#diff + 1] = string.format("--only: the run started with %s, now %s",
                                    was.only and ("--only " .. was.only) or "none", now.only and ("--only " .. now.only) or "none")
  end
  if (was.dry_run == true) ~= (now.dry_run == true) then
    diff[#diff + 1] = string.format("--dry-run: the run started as %s, now %s",
                                    was.dry_run and "a dry run" or "a real run", now.dry_run and "a dry run" or "a real run")
  end
  return #diff > 0 and diff or nil
end

local function shell_word(w)
  w = tostring(w)
  if w:match("^[%w%._/=,:@+%-]+$") then return w end
  return "'" .. w:gsub("'", "'\\''") .. "'"
end

-- results.resume_command(planfile, dir, {dry_run, sets, only}) -> the
-- command line that continues the run (for the hint printed on interrupt).
function M.resume_command(planfile, dir, o)
  o = o or {}
  local words = {"benchrun", shell_word(planfile), "--resume", shell_word(dir)}
  if o.dry_run then words[#words + 1] = "--dry-run" end
  for _, x in ipairs(o.sets or {}) do words[#words + 1] = "--set" words[#words + 1] = shell_word(x) end
  if o.only then words[#words + 1] = "--only" words[#words + 1] = shell_word(o.only) end
  return table.concat(words, " ")
end

local function read_jsonl(path)
  local list = {}
  local f = io.open(path, "rb")
  if not f then return list end
  for line in f:lines() do
    if line ~= "" then
      local v = M.json_decode(line)
      if type(v) == "table" then list[#list + 1] = v end
    end
  end
  f:close()
  return list
end
M.read_jsonl = read_jsonl

-- results.load(dir) -> {dir, summary, env, cells, records, samples} | nil, message
function M.load(dir)
  if type(dir) ~= "string" then error("results.load: dir must be a string, got " .. type(dir), 2) end
  dir = dir:gsub("/+$", "")
  if dir == "" then dir = "/" end
  local text = read_file(dir .. "/summary.json")
  if not text then return nil, "results: " .. dir .. " is not a results folder (no summary.json)" end
  local summary, err = M.json_decode(text)
  if type(summary) ~= "table" then
    return nil, "results: " .. dir .. "/summary.json: not valid JSON: " .. tostring(err)
  end
  local envtext = read_file(dir .. "/env.json")
  local env = envtext and M.json_decode(envtext) or {}
  return {dir = dir, summary = summary, env = env, cells = summary.cells or {},
          records = read_jsonl(dir .. "/records.jsonl"),
          samples = read_jsonl(dir .. "/samples.jsonl")}
end

M.FORMAT = FORMAT
return M
