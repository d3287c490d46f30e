-- Plans that change sysctl values (through the fake sysctl and sudo of
-- tests/fixtures-bin), run by a real benchrun process: each cell runs with
-- exactly its own values, a change that failed is never called applied, a
-- restore that was refused fails the run and is in report.md, and a signal
-- during a slow check: expression stops the run without recording a result.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local proc = require("bench.proc")
local results = require("bench.results")
local fixtures = os.getenv("BENCHRUN_TESTS") .. "/fixtures-bin"

local function read(path)
  local f = io.open(path)
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- a fake machine (one sysctl at 0) and a plan file; -> m with m.env, m.plan
local function setup(plan_text, extra)
  local m = {dir = T.tmpdir()}
  assert(proc.run{argv = {"mkdir", m.dir .. "/values", m.dir .. "/state"}}.code == 0)
  local f = assert(io.open(m.dir .. "/values/iogpu.wired_limit_mb", "w"))
  f:write("0\n")
  f:close()
  m.plan = m.dir .. "/plan.yaml"
  f = assert(io.open(m.plan, "w"))
  f:write(plan_text)
  f:close()
  m.env = {BENCHRUN_STATE_DIR = m.dir .. "/state", BENCHRUN_SYSCTL = fixtures .. "/sysctl",
           BENCHRUN_SUDO = fixtures .. "/sudo", FAKE_SYSCTL_DIR = m.dir .. "/values",
           FAKE_SUDO_LOG = m.dir .. "/sudo.log", FAKE_SYSCTL_LOG = m.dir .. "/changes.log"}
  for k, v in pairs(extra or {}) do m.env[k] = v end
  m.value = function() return (read(m.dir .. "/values/iogpu.wired_limit_mb") or ""):gsub("%s+$", "") end
  m.results = function()
    local ls = assert(io.popen("ls -d " .. m.dir .. "/out/*/ 2>/dev/null"))
    local d = ls:read("l")
    ls:close()
    return d and assert(results.load(d)), d
  end
  return m
end

local function run_plan(m)
  return proc.run{argv = {bench.executable, m.plan, "--quiet", "--out", m.dir .. "/out"}, timeout = 60,
                  env = {set = m.env}}
end

local function cells_by_id(data)
  local c = {}
  for _, x in ipairs(data.cells) do c[x.id] = x end
  return c
end

local PLAN = [[
name: sysctl
script: phases/tuning.lua
server: {backend: sim}
workload:
  prompts:
    - {name: a, prompt: "hi", max_tokens: 4}
matrix:
  config:
%s
dry_run: {load_time: 10ms}
]]

T.case("a cell without a sysctl value runs with the original, not the last cell's", function()
  local m = setup(PLAN:format([[
    - {name: high, sysctl: {iogpu.wired_limit_mb: 458752}}
    - {name: plain}
    - {name: again, sysctl: {iogpu.wired_limit_mb: 491520}}]]))
  local r = run_plan(m)
  T.eq(r.code, 0, "exit: " .. r.stderr)
  local changes = (read(m.dir .. "/changes.log") or ""):gsub("\n", " ")
  T.eq(changes, "iogpu.wired_limit_mb=458752 iogpu.wired_limit_mb=0 iogpu.wired_limit_mb=491520 iogpu.wired_limit_mb=0 ",
       "set, back to the original for the cell without it, set, restored at the end")
  local c = cells_by_id(m.results())
  for _, id in ipairs({"high", "plain", "again"}) do T.eq(c[id].status, "ok", id .. ": " .. tostring(c[id].error)) end
  T.eq(c.high.sysctl and c.high.sysctl["iogpu.wired_limit_mb"], 458752, "high's record")
  T.eq(c.plain.sysctl and c.plain.sysctl["iogpu.wired_limit_mb"], "0", "plain's record: the original in effect")
  T.eq(c.plain.labels.sysctl, nil, "plain's labels name no sysctl value")
  T.eq(m.value(), "0", "after the run")
end)

T.case("a change sudo refused is never called applied", function()
  local m = setup(PLAN:format([[
    - {name: high, sysctl: {iogpu.wired_limit_mb: 458752}}]]), {FAKE_SUDO_REFUSE = "1"})
  local r = run_plan(m)
  T.eq(r.code, 1, "the cell failed: " .. r.stderr)
  local data = m.results()
  T.eq(data.cells[1].status, "failed", "status")
  local text = tostring(data.summary.notes and data.summary.notes.text)
  T.eq(text:find("applied", 1, true) ~= nil and text:find("not applied", 1, true) == nil, false,
       "no change is called applied: " .. text)
  assert(text:find("FAILED", 1, true) and text:find("sudo refused", 1, true), text)
  T.eq(m.value(), "0", "unchanged")
end)

T.case("a restore sudo refused fails the run and report.md says so", function()
  -- sudo allows the change, then refuses (credentials expired meanwhile)
  local m = setup(PLAN:format([[
    - {name: high, sysctl: {iogpu.wired_limit_mb: 458752}}]]), {FAKE_SUDO_ALLOW_ONLY = "1"})
  local r = run_plan(m)
  T.eq(r.code, 1, "exit status: " .. r.stderr)
  assert(r.stderr:find("NOT restored", 1, true), r.stderr)
  local data, d = m.results()
  T.eq(data.cells[1].status, "ok", "the cell itself: " .. tostring(data.cells[1].error))
  local md = assert(read(d .. "/report.md"))
  assert(md:find("sysctl values NOT restored", 1, true) and md:find("iogpu.wired_limit_mb", 1, true), md)
  T.eq(m.value(), "458752", "left changed (the journal keeps the original)")
end)

T.case("SIGINT during a slow check: expression stops the run and records no failed check", function()
  local m = setup([[
name: slowcheck
server: {backend: sim}
workload:
  prompts:
    - {name: a, prompt: "hi", max_tokens: 4, check: "(function() while true do end end)()"}
dry_run: {load_time: 10ms}
]])
  local p = assert(proc.spawn{argv = {bench.executable, m.plan, "--quiet", "--out", m.dir .. "/out"},
                              env = {set = m.env}})
  -- the check runs once the cell's requests are written
  local busy
  for _ = 1, 200 do
    local _, d = m.results()
    if d and (read(d .. "/records.jsonl") or "") ~= "" then busy = true break end
    clock.sleep(0.05)
  end
  assert(busy, "the cell ran")
  clock.sleep(0.5)
  p:signal("INT")
  local info = p:wait(20)
  if not info then p:signal("KILL") p:wait(5) end
  assert(info, "still running 20 s after SIGINT")
  T.eq(info.code, 130, "exit status of an interrupted plan: " .. p:tail(20))
  local data = m.results()
  T.eq(#data.cells, 0, "no cell recorded (--resume runs it again)")
end)

T.case("a sysctl another running benchrun changed fails the cell, naming that benchrun", function()
  local m = setup(PLAN:format([[
    - {name: high, sysctl: {iogpu.wired_limit_mb: 458752}}]]))
  local other = assert(proc.spawn{argv = {bench.executable, "-e", [[
    assert(sys.sysctl_set("iogpu.wired_limit_mb", 1000)); print("set"); io.stdout:flush(); io.read("a")]]},
    env = {set = m.env}, stdin = "pipe"})
  assert(other:wait_for_line("^set$", 20))
  local r = run_plan(m)
  T.eq(r.code, 1, "the cell failed: " .. r.stderr)
  local c = m.results().cells[1]
  T.eq(c.status, "failed", "status")
  assert(tostring(c.error):find("in use by another benchrun (pid " .. other.pid, 1, true), tostring(c.error))
  T.eq(m.value(), "1000", "the other benchrun's value, untouched")
  other:close_stdin()
  other:wait(20)
  T.eq(m.value(), "0", "the original once it ended")
end)

T.case("the original comes from bench.sys's journal: a dead benchrun's entry taken over keeps its true original", function()
  local m = setup(PLAN:format([[
    - {name: plain}]]))
  -- another benchrun changes the value to 1000 (original 0) ...
  local other = assert(proc.spawn{argv = {bench.executable, "-e", [[
    assert(sys.sysctl_set("iogpu.wired_limit_mb", 1000)); print("set"); io.stdout:flush(); io.read("a")]]},
    env = {set = m.env}, stdin = "pipe"})
  assert(other:wait_for_line("^set$", 20))
  -- ... this one starts while it lives (nothing orphaned to restore yet) ...
  local ours = assert(proc.spawn{argv = {bench.executable, "-e", [[
    local sys = require("bench.sys")
    print("ready"); io.stdout:flush(); io.read("a")
    local s = require("bench.runner").new_sysctl(false, {})
    assert(s:apply({["iogpu.wired_limit_mb"] = 458752}))
    local in_effect = assert(s:apply({}))
    print("in_effect " .. tostring(in_effect["iogpu.wired_limit_mb"]))
    print("now " .. tostring(sys.sysctl_get("iogpu.wired_limit_mb")))
    assert(s:restore())
    print("done")]]}, env = {set = m.env}, stdin = "pipe"})
  assert(ours:wait_for_line("^ready$", 20))
  -- ... and the other is killed: its journal entry (original 0) is left
  other:signal("KILL")
  other:wait(20)
  T.eq(m.value(), "1000", "left changed by the killed benchrun")
  ours:close_stdin()
  local info = ours:wait(30)
  local out = ours:tail(20)
  T.eq(info and info.code, 0, "exit: " .. out)
  assert(out:find("in_effect 0", 1, true), "the cell without a value runs with the true original: " .. out)
  assert(out:find("now 0", 1, true), "put back to the journal's original, not the killed run's value: " .. out)
  T.eq(m.value(), "0", "the original at the end")
end)

T.done()
