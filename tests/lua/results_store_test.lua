-- bench.results: the folder layout, atomic writes, flushed records, resume.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local results = require("bench.results")

local function read(path) return assert(T.read_file(path)) end

local function lines(path)
  local out = {}
  for l in io.lines(path) do out[#out + 1] = l end
  return out
end

local function new_run(extra)
  local dir = T.tmpdir() .. "/run"
  local opts = {dir = dir, name = "unit", plan_text = "name: unit\n", env = {host = {os = "test"}}, phase = "demo"}
  for k, v in pairs(extra or {}) do opts[k] = v end
  return assert(results.create(opts)), dir
end

T.case("json: exact integers, shortest floats, sorted keys, escapes", function()
  T.eq(results.json_encode({b = 1, a = 2}), '{"a":2,"b":1}', "sorted keys")
  T.eq(results.json_encode({t_ns = 1234567890123456789}), '{"t_ns":1234567890123456789}', "big integer")
  T.eq(results.json_encode({0.1, 45.73, 3.0}), "[0.1,45.73,3]", "floats")
  T.eq(results.json_encode({x = 0 / 0, y = math.huge}), '{"x":null,"y":null}', "non-finite")
  T.eq(results.json_encode({s = 'a"b\\c\n\1'}), '{"s":"a\\"b\\\\c\\n\\u0001"}', "escapes")
  T.eq(results.json_encode({s = "量子"}), '{"s":"量子"}', "utf-8 kept")
  local back = results.json_decode(results.json_encode({a = {1, 2, {b = "x"}}, n = 500}))
  T.eq(back.a[3].b, "x", "round trip")
  T.eq(math.type(back.n), "integer", "integral numbers decode as integers")
  T.checkerr("refers to itself", function() local t = {} t.t = t results.json_encode(t) end)
end)

T.case("create writes plan.yaml, env.json, summary.json; a second create refuses", function()
  local run, dir = new_run()
  T.eq(read(dir .. "/plan.yaml"), "name: unit\n", "plan text")
  local env = results.json_decode(read(dir .. "/env.json"))
  T.eq(env.host.os, "test", "env host")
  T.eq(env.plan_text, "name: unit\n", "plan text in env")
  T.eq(type(env.t0_ns), "number", "t0_ns")
  local s = results.json_decode(read(dir .. "/summary.json"))
  T.eq(s.format, "benchrun-results/1", "format")
  T.eq(s.name, "unit", "name")
  run:close()
  local again, why = results.create{dir = dir, name = "unit"}
  T.eq(again, nil, "second create")
  T.eq(why:find("already holds a run", 1, true) ~= nil, true, "message: " .. tostring(why))
end)

T.case("create names the folder <root>/<name>-<UTC time>", function()
  local root = T.tmpdir()
  local run = assert(results.create{root = root, name = "phase 5/x"})
  T.eq(run.dir:match("^" .. root:gsub("%p", "%%%0") .. "/phase_5_x%-%d%d%d%d%d%d%d%dT%d%d%d%d%d%dZ$") ~= nil, true, run.dir)
  run:close()
end)

T.case("records are flushed per line, carry cell/repeat/warmup, lose secrets", function()
  local run, dir = new_run()
  run:record("c1", {ttft_ms = 12.5, output_tokens = 10, ["repeat"] = 2, api_key = "sk-x", headers = {a = 1}})
  -- visible before any close or flush
  local l = lines(dir .. "/records.jsonl")
  T.eq(#l, 1, "one line")
  local r = results.json_decode(l[1])
  T.eq(r.cell, "c1", "cell")
  T.eq(r["repeat"], 2, "repeat")
  T.eq(r.warmup, false, "warmup")
  T.eq(r.ttft_ms, 12.5, "value")
  T.eq(r.api_key, nil, "api key dropped")
  T.eq(r.headers, nil, "headers dropped")
  T.eq(read(dir .. "/records.jsonl"):find("sk-x", 1, true), nil, "secret never written")
  run:record("c1", {warmup = true})
  T.eq(results.json_decode(lines(dir .. "/records.jsonl")[2]).warmup, true, "warmup flag")
  run:close()
end)

T.case("credentials in env tables and cell labels are redacted", function()
  local run, dir = new_run{env = {servers = {vllm = {env = {HF_TOKEN = "hf_abc", CUDA_VISIBLE_DEVICES = "0"}}},
                                  openai_api_key = "sk-1"}}
  run:cell{id = "x", labels = {env = {MY_SECRET = "s3", GGML_METAL_N_CB = "2"}}}
  run:close()
  local env = read(dir .. "/env.json")
  T.eq(env:find("hf_abc", 1, true), nil, "token gone from env.json")
  T.eq(env:find("sk-1", 1, true), nil, "api key gone from env.json")
  T.eq(results.json_decode(env).servers.vllm.env.CUDA_VISIBLE_DEVICES, "0", "other values kept")
  local cell = read(dir .. "/cells/x.json")
  T.eq(cell:find("s3", 1, true), nil, "secret gone from the cell")
  T.eq(results.json_decode(cell).labels.env.GGML_METAL_N_CB, "2", "tuning env kept")
  T.eq(read(dir .. "/summary.json"):find("s3", 1, true), nil, "and from summary.json")
  for _, k in ipairs({"HF_TOKEN", "OPENAI_API_KEY", "api-key", "db_password", "Authorization"}) do
    T.eq(results.secret_name(k), true, k)
  end
  for _, k in ipairs({"max_tokens", "tokens_total", "keyboard", "GGML_METAL_N_CB", "api_version"}) do
    T.eq(results.secret_name(k), false, k)
  end
end)

T.case("cell: file written atomically, done marker, summary rewritten, checks run", function()
  local run, dir = new_run{checks = {
    medium = function(text) return text:find("sort") ~= nil, "mentions sort" end,
    short = function() error("boom") end,
  }}
  T.eq(run:done("a"), false, "not done yet")
  run:sample{t_ns = 5, cell = "a", phase = "load", rss = 100}
  local c = run:cell{id = "a/1", labels = {model = "m"}, outputs = {medium = "quicksort", short = "x"},
                     summary = {requests = 1}}
  T.eq(run:done("a/1"), true, "done")
  T.eq(results.exists(dir .. "/cells/a_1.json"), true, "cell file with a safe name")
  T.eq(results.exists(dir .. "/cells/a_1.json.tmp"), false, "no temp file left")
  T.eq(results.exists(dir .. "/summary.json.tmp"), false, "no temp summary left")
  local s = results.json_decode(read(dir .. "/summary.json"))
  T.eq(#s.cells, 1, "summary has the cell")
  T.eq(s.cells[1].checks.medium.ok, true, "check passed")
  T.eq(s.cells[1].checks.medium.detail, "mentions sort", "check detail")
  T.eq(s.cells[1].checks.short.ok, false, "a check that raises fails")
  T.eq(s.cells[1].checks.short.detail:find("boom", 1, true) ~= nil, true, "its error is kept")
  T.eq(c.status, "ok", "status defaults to ok")
  T.eq(#lines(dir .. "/samples.jsonl"), 1, "samples flushed at cell end")
  -- the same cell again replaces it
  run:cell{id = "a/1", status = "failed", error = "x"}
  s = results.json_decode(read(dir .. "/summary.json"))
  T.eq(#s.cells, 1, "replaced, not duplicated")
  T.eq(s.cells[1].status, "failed", "new status")
  run:close()
end)

T.case("caller mistakes raise with the function's name", function()
  local run = new_run()
  T.checkerr("results.cell: cell.id must be a non-empty string", function() run:cell{} end)
  T.checkerr("status must be ok, degraded, oom, crashed, failed or skipped", function() run:cell{id = "x", status = "weird"} end)
  T.checkerr("results.record: record must be a table", function() run:record("x", 5) end)
  T.checkerr("results.done: cell id must be a string", function() run:done(5) end)
  T.checkerr("results.create: checks.x must be a function", function() results.create{dir = "/tmp/nowhere", checks = {x = 1}} end)
  run:close()
  T.checkerr("is closed", function() run:record("x", {}) end)
  run:close()   -- idempotent
end)

T.case("open (resume) keeps finished cells and drops the interrupted cell's lines", function()
  local run, dir = new_run()
  run:record("done1", {ttft_ms = 1})
  run:sample{t_ns = 1, cell = "done1", phase = "run", rss = 1}
  run:cell{id = "done1"}
  run:record("half", {ttft_ms = 2})
  run:record("half", {ttft_ms = 3})
  run:sample{t_ns = 2, cell = "half", phase = "run", rss = 2}
  run:flush()
  -- a torn last line, as a crash mid-write leaves
  local f = assert(io.open(dir .. "/records.jsonl", "ab"))
  f:write('{"cell":"half","ttft')
  f:close()
  run:close()
  local again = assert(results.open(dir))
  T.eq(again:done("done1"), true, "finished cell kept")
  T.eq(again:done("half"), false, "interrupted cell not done")
  local l = lines(dir .. "/records.jsonl")
  T.eq(#l, 1, "only the finished cell's records remain")
  T.eq(results.json_decode(l[1]).cell, "done1", "the right one")
  T.eq(#lines(dir .. "/samples.jsonl"), 1, "samples of the interrupted cell dropped")
  again:record("half", {ttft_ms = 4})
  again:cell{id = "half"}
  T.eq(#again:cells(), 2, "two cells")
  again:close()
  local data = assert(results.load(dir))
  T.eq(#data.records, 2, "records after resume")
  T.eq(#data.cells, 2, "cells after resume")
end)

T.case("open keeps samples inside a finished cell's window whatever their label", function()
  local run, dir = new_run()
  run:cell{id = "first", started_ns = 100, ended_ns = 200}
  -- a server shared by "first" and "second" flushed its samples under "second"
  run:sample{t_ns = 150, cell = "second", rss = 1}
  run:sample{t_ns = 250, cell = "second", rss = 2}
  run:close()
  local again = assert(results.open(dir))
  again:close()
  local l = lines(dir .. "/samples.jsonl")
  T.eq(#l, 1, "one sample kept")
  T.eq(results.json_decode(l[1]).t_ns, 150, "the one inside the finished cell's window")
end)

T.case("open: a cell in summary.json without its file is not done", function()
  local run, dir = new_run()
  run:cell{id = "x"}
  run:close()
  os.remove(dir .. "/cells/x.json")
  local again = assert(results.open(dir))
  T.eq(again:done("x"), false, "not done without its marker file")
  T.eq(#again:cells(), 0, "dropped from the list")
  again:close()
  local none, why = results.open(T.tmpdir())
  T.eq(none, nil, "not a results folder")
  T.eq(why:find("no summary.json", 1, true) ~= nil, true, why)
end)

-- issue 11, section 5: results are never silently lost or mixed
T.case("creates started in the same second get distinct folders", function()
  local root = T.tmpdir()
  local a = assert(results.create{root = root, name = "same", plan_text = "name: same\n"})
  local b, why = results.create{root = root, name = "same", plan_text = "name: same\n"}
  assert(b, why)
  local c = assert(results.create{root = root, name = "same", plan_text = "name: same\n"})
  T.eq(a.dir ~= b.dir and b.dir ~= c.dir and a.dir ~= c.dir, true, a.dir .. " " .. b.dir .. " " .. c.dir)
  if a.dir:sub(-1) == "Z" and b.dir:sub(1, #a.dir) == a.dir then T.eq(b.dir, a.dir .. "-2", "suffix") end
  a:record("x", {ok = true}) b:record("y", {ok = true})
  T.eq(#lines(a.dir .. "/records.jsonl"), 1, "a's records only")
  T.eq(#lines(b.dir .. "/records.jsonl"), 1, "b's records only")
  a:close() b:close() c:close()
end)

T.case("mkdir uses the C library: '-rf' is a name; exclusive says 'exists'", function()
  local root = T.tmpdir()
  assert(results.mkdir(root .. "/-rf/x"))
  local f = io.open(root .. "/-rf/x/probe", "w")
  T.eq(f ~= nil, true, "folder -rf/x exists")
  f:close()
  local ok, why, code = results.mkdir(root .. "/-rf", true)
  T.eq(ok, nil, "exclusive mkdir of an existing folder")
  T.eq(code, "exists", "code: " .. tostring(why))
  assert(results.mkdir(root .. "/-rf"), "non-exclusive mkdir of an existing folder")
  ok, why = results.mkdir(root .. "/-rf/x/probe/y")
  T.eq(ok, nil, "under a file")
  T.eq(why:find("Not a directory", 1, true) ~= nil, true, why)
  ok, why = results.mkdir("a\0b")
  T.eq(ok, nil, "NUL")
end)

-- no invalid UTF-8 in a JSON file: each bad byte becomes U+FFFD
local function utf8_ok(path)
  for l in io.lines(path) do if not utf8.len(l) then return false, l end end
  return true
end

T.case("invalid UTF-8 in a record is replaced and noted", function()
  local run, dir = new_run()
  run:record("c", {ok = true, text = "caf\xe9 \xff\xfe ok \xe2\x82", error_detail = "fine"})
  run:record("c", {ok = true, text = "café"})
  local l = lines(dir .. "/records.jsonl")
  assert(utf8_ok(dir .. "/records.jsonl"))
  local r1, r2 = results.json_decode(l[1]), results.json_decode(l[2])
  T.eq(r1.text, "caf\u{FFFD} \u{FFFD}\u{FFFD} ok \u{FFFD}\u{FFFD}", "replaced")
  T.eq(r1.invalid_utf8, true, "noted")
  T.eq(r2.invalid_utf8, nil, "valid text: no note")
  T.eq(r2.text, "café", "valid text kept")
  run:cell{id = "c", status = "ok", outputs = {a = "x\xc0\xafy"}, labels = {m = "\xff"}}
  assert(utf8_ok(dir .. "/cells/c.json"))
  assert(utf8_ok(dir .. "/summary.json"))
  T.eq(results.json_encode({["k\xff"] = 1}), '{"k\u{FFFD}":1}', "keys too")
  run:close()
end)

T.case("invalid UTF-8 from a hostile server never reaches records.jsonl raw", function()
  local proc, clock = require("bench.proc"), require("bench.clock")
  local RAW = os.getenv("BENCHRUN_RAWSERVER") or (bench.executable:match("^(.*)/[^/]*$") or ".") .. "/tests/rawserver"
  local tmp = T.tmpdir()
  local body = '{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant",' ..
               '"content":"caf\xe9 \xff bytes"},"finish_reason":"stop"}],"usage":{"prompt_tokens":2,"completion_tokens":3}}'
  local function esc(x) return (x:gsub("[%c\\\128-\255]", function(c) return string.format("\\x%02x", c:byte()) end)) end
  local script = tmp .. "/script"
  local f = assert(io.open(script, "w"))
  f:write("expect-request\n", "send ", esc("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " ..
          #body .. "\r\nConnection: close\r\n\r\n" .. body), "\nclose\n")
  f:close()
  local p = assert(proc.spawn{argv = {RAW, tmp .. "/port", script, tmp .. "/log"}, stdout = "capture", stderr = "capture"})
  local _ <close> = setmetatable({}, {__close = function() p:stop(2) end})
  local port
  for _ = 1, 500 do
    local pf = io.open(tmp .. "/port")
    port = pf and tonumber(pf:read("a"))
    if pf then pf:close() end
    if port then break end
    clock.sleep(0.01)
  end
  assert(port, "rawserver did not start")
  local client = require("bench.openai").client{base_url = "http://127.0.0.1:" .. port, model = "m"}
  local rec = client:chat{prompt = "hi", max_tokens = 8, stream = false}
  local run, dir = new_run()
  run:record("c", rec)
  run:close()
  assert(utf8_ok(dir .. "/records.jsonl"))
  local r = results.json_decode(lines(dir .. "/records.jsonl")[1])
  T.eq(r.invalid_utf8, true, "noted: " .. lines(dir .. "/records.jsonl")[1])
  T.eq(type(r.text) == "string" and r.text:find("caf\u{FFFD} \u{FFFD} bytes", 1, true) ~= nil, true, tostring(r.text))
end)

T.case("invocation: --resume compares plan, --set, --only and --dry-run", function()
  local run, dir = new_run{env = {dry_run = true, sets = {"repeat=1"}, only = "Q4*"}}
  run:close()
  local was = assert(results.invocation(dir))
  T.eq(was.dry_run, true, "dry_run")
  T.eq(was.sets[1], "repeat=1", "sets")
  T.eq(was.only, "Q4*", "only")
  T.eq(was.plan_text, "name: unit\n", "plan text")
  T.eq(results.invocation_diff(was, {plan_text = "name: unit\n", sets = {"repeat=1"}, only = "Q4*", dry_run = true}), nil, "same")
  local d = results.invocation_diff(was, {plan_text = "name: other\n", sets = {}, dry_run = false})
  T.eq(#d, 4, table.concat(d, " | "))
  T.eq(d[1], "the plan: its text is not the one the run started with (kept in env.json, plan_text)", "plan")
  T.eq(d[2], "--set: the run started with --set repeat=1, now none", "sets")
  T.eq(d[3], "--only: the run started with --only Q4*, now none", "only")
  T.eq(d[4], "--dry-run: the run started as a dry run, now a real run", "dry run")
  T.eq(results.resume_command("plans/p.yaml", "results/p-1", was),
       "benchrun plans/p.yaml --resume results/p-1 --dry-run --set repeat=1 --only 'Q4*'", "resume command")
  local r2, why2 = results.open(dir, {expect = {plan_text = "name: unit\n", sets = {"repeat=1"}, only = "Q4*"}})
  T.eq(r2, nil, "open with expect: another run")
  T.eq(why2, "results: " .. dir .. " holds another run: --dry-run: the run started as a dry run, now a real run", "why")
  r2 = assert(results.open(dir, {expect = {plan_text = "name: unit\n", sets = {"repeat=1"}, only = "Q4*", dry_run = true}}))
  r2:close()
  local none, why = results.invocation(T.tmpdir())
  T.eq(none, nil, "not a results folder")
  T.eq(why:find("is not a results folder", 1, true) ~= nil, true, why)
end)

T.case("one benchrun at a time in a folder: a second open is refused until the first closes", function()
  local run, dir = new_run()
  local again, why = results.open(dir)
  T.eq(again, nil, "second open while the run is open")
  T.eq(why, "results: " .. dir .. " is in use by another benchrun (running or resuming this run); wait for it to end", "why")
  run:close()
  local r2 = assert(results.open(dir))
  T.eq(select(2, results.open(dir)) ~= nil, true, "and again while resumed")
  r2:close()
  assert(results.open(dir)):close()
end)

T.case("after a failed write, finish names the cause alone and where the cells are", function()
  local run, dir = new_run()
  -- the disk fills up as finish flushes the records (as a full tmpfs does in e2e/results_safety)
  local raised
  run.flush = function(self)
    local _, err = pcall(self._write_failed, self, "records.jsonl", "No space left on device")
    raised = err
    error(err, 0)
  end
  local path, why = run:finish()
  T.eq(raised, "results: cannot write " .. dir .. "/records.jsonl: No space left on device; the run stops here "
    .. "(the records written before are kept; free some space, then continue with --resume " .. dir .. ")", "raised")
  T.eq(path, nil, "no report")
  T.eq(why, "results: cannot write " .. dir .. "/records.jsonl: No space left on device; the cells are kept in "
    .. dir .. " (once there is space, `benchrun report " .. dir .. "` writes the report)", "finish")
end)

T.done()
