-- Plan validation: every error's message and its file:line:col position,
-- units, --set, matrix expansion, cell ids and --only.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local P = require("bench.plan")

-- write text to a fresh file and validate it; returns plan, errs, path
local dir = T.tmpdir()
local n = 0
local function load(text, opts)
  n = n + 1
  local path = string.format("%s/p%d.yaml", dir, n)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  local plan, errs = P.load(path, opts)
  return plan, errs, path
end

-- expect exactly one error, equal to "<path>:<at>: <rest>"
local function one_error(text, at, rest, opts)
  local plan, errs, path = load(text, opts)
  T.eq(plan, nil, "plan for an invalid document")
  T.eq(#errs, 1, "number of errors (" .. table.concat(errs, " | ") .. ")")
  T.eq(errs[1], path .. ":" .. at .. ": " .. rest, "error")
end

local BASE = "name: t\nserver: {backend: sim}\n"

T.case("durations", function()
  T.eq(P.duration("100ms"), 0.1, "100ms")
  T.eq(P.duration("30s"), 30, "30s")
  T.eq(P.duration("5m"), 300, "5m")
  T.eq(P.duration("1h30m"), 5400, "1h30m")
  T.eq(P.duration(2), 2, "number")
  T.eq(P.duration("1.5s"), 1.5, "1.5s")
  T.eq(P.duration("30"), 30, "bare")
  T.eq(select(2, P.duration("30q")), "a duration unit (ms, s, m, h), got 'q'", "unit")
  T.eq(P.duration("abc"), nil, "garbage")
end)

T.case("sizes", function()
  T.eq(P.size("2GiB"), 2 * 1024 ^ 3 // 1, "2GiB")
  T.eq(P.size("138GB"), 138000000000, "138GB")
  T.eq(P.size("512MiB"), 512 * 1024 * 1024, "512MiB")
  T.eq(P.size(1000), 1000, "bytes")
  T.eq(P.size("12XB"), nil, "bad unit")
end)

T.case("a minimal plan is one cell", function()
  local plan, errs = load(BASE)
  assert(plan, errs and errs[1])
  T.eq(#plan.cells, 1, "cells")
  T.eq(plan.cells[1].id, "t", "id")
  T.eq(plan.cells[1].server.backend, "sim", "backend")
end)

T.case("unknown key with did you mean", function()
  one_error(BASE .. "repeet: 3\n", "3:1",
    "repeet: unknown key, did you mean 'repeat'? (expected one of: cache, cells, compare, concurrency, cooldown, criteria, depth, description, dry_run, energy, env, estimate, exclude, expected, load, matrix, max_error_rate, max_tokens, models, name, notes, output, params, quality, questions, ramp, repeat, requests, safety, sampling, script, search, server, servers, slo, steady, sysctl, timeout, warmup, workload)")
end)

T.case("nested unknown key", function()
  local plan, errs, path = load("name: t\nserver:\n  backend: sim\n  ready_timout: 5m\n")
  T.eq(plan, nil, "plan")
  local want = path .. ":4:3: server.ready_timout: unknown key, did you mean 'ready_timeout'?"
  T.eq(errs[1]:sub(1, #want), want, "error")
end)

T.case("wrong type", function()
  one_error(BASE .. "repeat: three\n", "3:9", "repeat: expected a positive integer, got the string \"three\"")
  one_error(BASE .. "warmup: -1\n", "3:9", "warmup: expected an integer >= 0 (at most 100000), got -1")
  one_error(BASE .. "sampling: {gpu: yes}\n", "3:17", "sampling.gpu: expected true or false, got the string \"yes\"")
  one_error(BASE .. "sampling: [1]\n", "3:11", "sampling: expected a mapping, got a list")
end)

T.case("bad enum with suggestion", function()
  one_error("name: t\nserver: {backend: llama-sever}\n", "2:19",
    "server.backend: expected one of llama-server, lmstudio, mlx-lm, vllm, vllm-mlx, ollama, sglang, command, external, sim, got the string \"llama-sever\" (did you mean 'llama-server'?)")
end)

T.case("bad durations and sizes", function()
  one_error("name: t\nserver: {backend: sim, ready_timeout: 30q}\n", "2:39",
    "server.ready_timeout: expected a duration unit (ms, s, m, h), got the string \"30q\"")
  one_error(BASE .. "sampling: {memory: fast}\n", "3:20",
    "sampling.memory: expected a duration such as 100ms, 30s or 5m, got the string \"fast\"")
  one_error(BASE .. "safety: {memory_ceiling: 2GBB}\n", "3:26",
    "safety.memory_ceiling: expected a size unit (B, KB, MB, GB, KiB, MiB, GiB, TiB), got the string \"2GBB\"")
  one_error(BASE .. "safety: {memory_ceiling: lots}\n", "3:26",
    "safety.memory_ceiling: expected a size such as 512MiB, 2GiB or 138GB, got the string \"lots\"")
end)

T.case("missing files", function()
  one_error(BASE .. "workload: {file: no-such-prompts.jsonl}\n", "3:18",
    "workload.file: expected an existing file, '" .. dir .. "/no-such-prompts.jsonl' not found")
  one_error(BASE .. "script: phases/nope.lua\n", "3:9",
    "script: expected a Lua script under scripts/ (e.g. phases/baseline.lua), 'phases/nope.lua' not found")
end)

T.case("a model file missing is an error for a real run only", function()
  local text = "name: t\nserver: {backend: llama-server, model: /no/such/model.gguf}\n"
  local plan = load(text)
  assert(plan, "--check accepts it")
  T.eq(#plan.warnings, 1, "one warning")
  local _, errs, path = load(text, {real = true})
  T.eq(errs[1], path .. ":2:40: server.model: expected an existing model file, '/no/such/model.gguf' not found (cell t)", "error")
  assert(load(text, {dry_run = true}), "a dry run needs no model")
end)

T.case("matrix that expands to zero cells", function()
  one_error(BASE .. "matrix:\n  concurrency: []\n", "4:16",
    "matrix.concurrency: expected a non-empty list (an empty axis makes zero cells)")
  one_error(BASE .. "matrix:\n  concurrency: [1, 2]\nexclude:\n  - {concurrency: '*'}\n", "4:3",
    "matrix: the matrix expands to zero cells (all 2 excluded by exclude:)")
end)

T.case("matrix item of the wrong type", function()
  one_error(BASE .. "matrix:\n  env:\n    - {}\n    - [1]\n", "6:7",
    "matrix.env[2]: expected a mapping of environment variables to values, got a list")
end)

T.case("unknown model and server names", function()
  one_error(BASE .. "models:\n  q4: {model: a}\nmatrix:\n  model: [q5]\n", "6:3",
    "matrix: unknown model 'q5', did you mean 'q4'? (models: q4)")
  one_error("name: t\nservers:\n  lms: {backend: lmstudio}\nmatrix:\n  server: [lm]\n", "5:3",
    "matrix: unknown server 'lm', did you mean 'lms'? (servers: lms)")
end)

T.case("a cell without a backend", function()
  one_error("name: t\n", "1:1", "(plan): no server backend for this cell (set server.backend, or servers: with a backend)")
end)

T.case("matrix expansion and ids", function()
  local plan = assert(load(BASE .. [[
models:
  a: {model: ma, size: 10GB}
  b: {model: mb}
matrix:
  model: [a, b]
  env:
    - {}
    - {name: fast, X: "1"}
  concurrency: [1, 4]
]]))
  T.eq(#plan.cells, 8, "cells")
  T.eq(plan.cells[1].id, "a/default/1", "first id")
  T.eq(plan.cells[4].id, "a/fast/4", "fourth id")
  T.eq(plan.cells[4].server.env.X, "1", "env applied")
  T.eq(plan.cells[4].concurrency, 4, "concurrency")
  T.eq(plan.cells[8].server.model, "mb", "model id")
  T.eq(plan.cells[1].model.size, 10000000000, "size parsed")
end)

T.case("a list of matrices and load scenarios", function()
  local plan = assert(load(BASE .. [[
matrix:
  - name: g1
    concurrency: [1]
  - name: g2
    env: [{A: "1"}]
load:
  - {name: scale, concurrency: [2, 4], max_tokens: 500}
]]))
  local ids = {}
  for i, c in ipairs(plan.cells) do ids[i] = c.id end
  T.eq(table.concat(ids, " "), "g1/1/scale-2 g1/1/scale-4 g2/A=1/scale-2 g2/A=1/scale-4", "ids")
  T.eq(plan.cells[2].concurrency, 4, "scenario concurrency wins")
  T.eq(plan.cells[2].max_tokens, 500, "scenario max_tokens")
end)

T.case("--set overrides, typed", function()
  local plan = assert(load(BASE .. "repeat: 3\n", {sets = {"repeat=1", "matrix.concurrency=[1, 2, 4]", "dry_run.decode_tps=500"}}))
  T.eq(plan["repeat"], 1, "repeat")
  T.eq(#plan.cells, 3, "cells from --set matrix")
  T.eq(plan.dry_run.decode_tps, 500, "number")
  local _, errs = load(BASE, {sets = {"repeat=zero"}})
  T.eq(errs[1], "--set repeat=zero: repeat: expected a positive integer, got the string \"zero\"", "error at --set")
  local _, errs2 = load(BASE, {sets = {"novalue"}})
  T.eq(errs2[1], "--set novalue: expected key.path=value", "syntax")
end)

T.case("--only", function()
  local text = BASE .. "matrix:\n  model: [a, b]\n  concurrency: [1, 4]\n"
  local plan = assert(load(text, {only = "a/*"}))
  T.eq(#plan.cells, 2, "glob over ids")
  plan = assert(load(text, {only = "concurrency=4"}))
  T.eq(#plan.cells, 2, "axis=value")
  plan = assert(load(text, {only = "b/4,a/1"}))
  T.eq(#plan.cells, 2, "two patterns")
  local _, errs = load(text, {only = "zzz"})
  T.eq(errs[1], "--only zzz: no cell matches (cells: a/1, a/4, b/1, b/4)", "nothing matches")
end)

T.case("several errors, sorted by position", function()
  local _, errs, path = load("name: t\nserver: {backend: nope}\nrepeat: 0\nwarmup: x\n")
  T.eq(#errs, 3, "count")
  T.eq(errs[1]:sub(1, #path + 5), path .. ":2:19", "first")
  T.eq(errs[2]:sub(1, #path + 4), path .. ":3:9", "second")
  T.eq(errs[3]:sub(1, #path + 4), path .. ":4:9", "third")
end)

T.case("YAML syntax error carries its position", function()
  local _, errs, path = load("name: t\nserver: {backend: sim\n")
  assert(errs[1]:find(path, 1, true), errs[1])
  assert(errs[1]:find(":%d+:%d+"), errs[1])
end)

T.case("every shipped plan validates", function()
  local src = os.getenv("BENCHRUN_TESTS") .. "/../plans/"
  for _, name in ipairs({"demo", "phase1-baseline", "phase2-baseline", "phase3", "phase4", "phase5"}) do
    local plan, errs = P.load(src .. name .. ".yaml", {dry_run = true})
    assert(plan, name .. ": " .. table.concat(errs or {}, "\n"))
    assert(#plan.cells > 0, name)
  end
end)

T.case("the shipped plans mirror the seed", function()
  local src = os.getenv("BENCHRUN_TESTS") .. "/../plans/"
  local function cells(name)
    local plan = assert(P.load(src .. name .. ".yaml", {dry_run = true}))
    local ids = {}
    for _, c in ipairs(plan.cells) do ids[#ids + 1] = c.id end
    return plan, table.concat(ids, " ")
  end
  local p3, ids3 = cells("phase3")
  for _, q in ipairs({"Q4_K_S", "Q4_K_M", "Q6_K", "Q8_0", "BF16", "mlx-4bit", "mlx-6bit", "mlx-8bit"}) do
    assert(ids3:find(q .. "/lmstudio", 1, true), q)
  end
  assert(ids3:find("Q4_K_M/llama-server", 1, true), "llama-server")
  T.eq(p3.models.BF16.size, 457000000000, "BF16 size")
  local _, ids4 = cells("phase4")
  for _, c in ipairs({"baseline-100", "baseline-500", "baseline-2000", "scale-2", "scale-4", "scale-8", "scale-16", "mixed"}) do
    assert(ids4:find("/" .. c, 1, true), c)
  end
  local p5, ids5 = cells("phase5")
  T.eq(#p5.cells, 17, "phase 5 cells: 6 vram + 7 metal + 4 combined")
  for _, c in ipairs({"default", "optimized", "aggressive", "private-vram", "die-0", "die-1", "cb-1", "cb-3", "combined"}) do
    assert(ids5:find("/" .. c, 1, true), c)
  end
  T.eq(p5.cells[2].sysctl["iogpu.wired_limit_mb"], 458752, "458752")
  T.eq(p5.cells[3].sysctl["iogpu.wired_limit_mb"], 491520, "491520")
end)

-- issue 11, section 6: what the run would die on is an error of --check
T.case("load values: zero, NaN, infinite and huge values are refused", function()
  local L = P.LIMITS
  one_error(BASE .. "cells: [{duration: 0}]\n", "3:20", "cells[1].duration: expected a duration greater than 0, got the integer 0")
  one_error(BASE .. "load: [{name: s, duration: 0s}]\n", "3:28", "load[1].duration: expected a duration greater than 0, got the string \"0s\"")
  one_error(BASE .. "cells: [{duration: 8d}]\n", "3:20", "cells[1].duration: expected a duration unit (ms, s, m, h), got the string \"8d\"")
  one_error(BASE .. "cells: [{duration: 200h}]\n", "3:20", "cells[1].duration: expected a duration of at most 168h 00m, got the string \"200h\"")
  one_error(BASE .. "sampling: {memory: 0}\n", "3:20", "sampling.memory: expected a duration of at least 1ms, got the integer 0")
  one_error(BASE .. "sampling: {metrics: 0s}\n", "3:21", "sampling.metrics: expected true, false or a scrape interval of 1ms to 1h, got the string \"0s\"")
  one_error(BASE .. "repeat: 1e9\n", "3:9", "repeat: expected a positive integer (at most " .. L["repeat"] .. "), got 1000000000")
  one_error(BASE .. "repeat: 1e30\n", "3:9", "repeat: expected a positive integer (at most " .. L["repeat"] .. "), got the number 1e+30")
  one_error(BASE .. "concurrency: 1e9\n", "3:14", "concurrency: expected a positive integer (at most " .. L.concurrency .. "), got 1000000000")
  one_error(BASE .. "load: [{name: s, concurrency: [1, 1e9]}]\n", "3:35", "load[1].concurrency[2]: expected a positive integer (at most " .. L.concurrency .. "), got 1000000000")
  one_error(BASE .. "max_tokens: .inf\n", "3:13", "max_tokens: expected a positive integer, got inf (not a finite number)")
  one_error(BASE .. "cells: [{rate: .nan}]\n", "3:16", "cells[1].rate: expected a number >= 0.001, got nan (not a finite number)")
  one_error(BASE .. "cells: [{rate: 1e12, requests: 2}]\n", "3:16", "cells[1].rate: expected a number >= 0.001 (at most 1e+06), got 1e+12")
  one_error(BASE .. "warmup: 1e12\n", "3:9", "warmup: expected an integer >= 0 (at most " .. L.warmup .. "), got 1000000000000")
  one_error(BASE .. "dry_run: {decode_tps: -.inf}\n", "3:23", "dry_run.decode_tps: expected a number >= 0.001, got -inf (not a finite number)")
  one_error(BASE .. "safety: {memory_ceiling: -5}\n", "3:26", "safety.memory_ceiling: expected a size such as 512MiB, 2GiB or 138GB, got the integer -5")
  one_error("name: t\nserver: {backend: sim, ready_timeout: 0}\n", "2:39", "server.ready_timeout: expected a duration greater than 0, got the integer 0")
  one_error(BASE .. "dry_run: {load_time: 1000h}\n", "3:22", "dry_run.load_time: expected a duration of at most 24h 00m, got the string \"1000h\"")
  T.eq(select(2, P.duration(0 / 0)), "a finite duration", "NaN duration")
  T.eq(P.size(-1.5), nil, "negative size")
end)

T.case("sysctl and env names, NUL bytes", function()
  one_error(BASE .. "sysctl: {../../x: 1}\n", "3:10", "sysctl.../../x: expected a sysctl name (letters, digits, _ - and dots, e.g. kern.ipc.somaxconn) as the key, got the string \"../../x\"")
  one_error(BASE .. "matrix: {sysctl: [{kern/x: 1}]}\n", "3:20", "matrix.sysctl[1].kern/x: expected a sysctl name (letters, digits, _ - and dots, e.g. kern.ipc.somaxconn) as the key, got the string \"kern/x\"")
  assert(load(BASE .. "sysctl: {net.ipv4.conf.br-lan.rp_filter: 1, kern.ipc.somaxconn: 2048}\n"))
  one_error(BASE .. "env: {\"A=B\": 1}\n", "3:7", "env.A=B: expected an environment variable name (not empty, no '=') as the key, got the string \"A=B\"")
  one_error(BASE .. "cells: [{name: \"a\\0b\"}]\n", "3:16", "cells[1].name: expected a string without a NUL byte, got the string \"a\\0b\"")
  one_error("name: t\nserver: {backend: sim, args: [\"--x\\0y\"]}\n", "2:31", "server.args[1]: expected a string, number or boolean without a NUL byte, got the string \"--x\\0y\"")
end)

T.case("cells whose file names would collide are refused", function()
  one_error(BASE .. "matrix: {model: [a/b, a_b]}\n", "3:9", "matrix: cells 'a/b' and 'a_b' would share the file name 'a_b' " ..
            "(characters other than letters, digits, '.', '_' and '-' become '_'): give the values distinct names")
  one_error(BASE .. "cells: [{name: \"x y\"}, {name: x_y}]\n", "3:24", "cells[2]: cells 'x y' and 'x_y' would share the file name 'x_y' " ..
            "(characters other than letters, digits, '.', '_' and '-' become '_'): give the values distinct names")
  local long = string.rep("m", 250)
  local _, errs = load(BASE .. "matrix: {model: [" .. long .. ", b]}\n")
  assert(errs and errs[1]:find("is too long for a file name", 1, true), errs and errs[1])
end)

T.case("script: only a compiling Lua script under scripts/", function()
  one_error(BASE .. "script: ../../../etc/passwd\n", "3:9", "script: expected a Lua script under scripts/ such as phases/baseline.lua (a relative path ending in .lua, no '..'), got '../../../etc/passwd'")
  one_error(BASE .. "script: /etc/passwd\n", "3:9", "script: expected a Lua script under scripts/ such as phases/baseline.lua (a relative path ending in .lua, no '..'), got '/etc/passwd'")
  one_error(BASE .. "script: phases/../../tests/lua/testlib.lua\n", "3:9", "script: expected a Lua script under scripts/ such as phases/baseline.lua (a relative path ending in .lua, no '..'), got 'phases/../../tests/lua/testlib.lua'")
  -- a script beside the plan is not one of ours
  local f = assert(io.open(dir .. "/mine.lua", "w")) f:write("return {}\n") f:close()
  one_error(BASE .. "script: mine.lua\n", "3:9", "script: expected a Lua script under scripts/ (e.g. phases/baseline.lua), 'mine.lua' not found")
  assert(load(BASE .. "script: phases/baseline.lua\n"))
end)

T.case("workload.file: read and parsed by --check", function()
  local function wfile(name, text)
    local f = assert(io.open(dir .. "/" .. name, "w")) f:write(text) f:close()
  end
  wfile("empty.jsonl", "")
  one_error(BASE .. "workload: {file: empty.jsonl}\n", "3:18", "workload.file: " .. dir .. "/empty.jsonl: no prompts in the file (expected at least one)")
  wfile("broken.jsonl", '{"prompt": "hi"}\n\n{"prompt": \n')
  one_error(BASE .. "workload: {file: broken.jsonl}\n", "3:18", "workload.file: " .. dir .. "/broken.jsonl:3: expected a JSON value: Expected value but found T_END at character 12")
  wfile("badmax.jsonl", '{"prompt": "hi", "max_tokens": -3}\n')
  one_error(BASE .. "workload: {file: badmax.jsonl}\n", "3:18", "workload.file: " .. dir .. "/badmax.jsonl:1: expected max_tokens to be a positive integer, got -3")
  wfile("one.jsonl", '{"prompt": "hello there", "max_tokens": 3}\n')
  local plan = assert(load(BASE .. "workload: {file: one.jsonl}\n"))
  local w = require("bench.workload").file(plan.workload.file)
  T.eq(w:next(1).prompt, "hello there", "a one-line JSONL file is one prompt")
  T.eq(w:next(1).max_tokens, 3, "its max_tokens")
end)

T.case("aliases that multiply a plan are bounded", function()
  -- 36 KB of text standing for far more than the limit once expanded
  local big = string.rep("x", 36000)
  local text = BASE .. "params:\n  a: &a \"" .. big .. "\"\n  b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n" ..
               "  c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n  d: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
  local plan, errs, path = load(text)
  T.eq(plan, nil, "plan")
  T.eq(errs[1], path .. ": the plan expands to more than " .. P.LIMITS.plan_bytes .. " bytes (expected at most 8 MiB) " ..
       "(each use of a YAML alias counts in full; see plans/README.md)", "bytes")
  local nodes = BASE .. "params:\n  a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n  b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n" ..
                "  c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n  d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n" ..
                "  e: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
  plan, errs, path = load(nodes)
  T.eq(plan, nil, "plan")
  assert(errs[1]:find("aliases expand to more than 200000 nodes", 1, true) or
         errs[1]:find("the plan expands to more than 200000 values", 1, true), errs[1])
end)

T.case("mix and workload.synthetic: what the cell's start would die on", function()
  one_error(BASE .. "cells: [{mix: {zz: 1}}]\n", "3:9", "cells[1]: cell 1: mix: unknown prompt 'zz' (a mix weighs the seed's prompts: short, medium, long, reasoning, instruction)")
  one_error(BASE .. "cells: [{mix: {short: 0}}]\n", "3:9", "cells[1]: cell 1: mix: expected at least one weight > 0")
  one_error(BASE .. "load: [{name: s, mix: {long: 0}}]\n", "3:23", "load[1].mix: expected at least one weight > 0")
  one_error(BASE .. "workload: {mix: {short: 1, bogus: 2}}\n", "3:17", "workload.mix: unknown prompt 'bogus' (a mix weighs the seed's prompts: short, medium, long, reasoning, instruction)")
  one_error(BASE .. "workload: {synthetic: 5}\n", "3:23", "workload.synthetic: expected a mapping such as {input: 128, output: 64}, got the integer 5")
  assert(load(BASE .. "cells: [{mix: {short: 1, long: 2}}]\nworkload: {synthetic: {input: 10, output: 4}}\n"))
end)

T.done()

-- issue 15: sampling.power, energy and cooldown (bench.powerwatch)
T.case("energy and cooldown keys: values, defaults and errors", function()
  local energy = require("bench.energy")
  local plan = assert(load(BASE .. "cooldown: {until: nominal, idle_power_within: 15%, max: 2m}\nenergy: {idle: 3s}\n" ..
                           "sampling: {power: 50ms}\n"))
  T.eq(plan.cooldown.idle_power_within, 0.15, "15% is 0.15")
  T.eq(plan.cooldown.max, 120, "max in seconds")
  local s = energy.settings(plan, plan.cells[1])
  T.eq(s.interval, 0.05, "sampling.power")
  T.eq(s.idle_s, 3, "energy.idle")
  T.eq(s.cooldown.within, 0.15, "within")
  plan = assert(load(BASE .. "cooldown: true\n"))
  s = energy.settings(plan, plan.cells[1])
  T.eq(s.cooldown.max_s, 300, "cooldown: true waits at most 5m")
  T.eq(s.cooldown.within, 0.1, "and 10% of idle")
  T.eq(s.cooldown["until"], "nominal", "until nominal")
  T.eq(s.idle_s, 0, "no idle baseline by default on the simulator")
  T.eq(energy.settings({}, {server = {backend = "llama-server"}}).idle_s, 5, "5 s on a real server")
  plan = assert(load(BASE .. "energy: false\n"))
  s = energy.settings(plan, plan.cells[1])
  T.eq(s.interval, nil, "energy: false: no sampler")
  one_error(BASE .. "cooldown: {idle_power_within: lots}\n", "3:30",
    "cooldown.idle_power_within: expected a fraction such as 5% or 0.05, got the string \"lots\"")
  one_error(BASE .. "cooldown: {until: cold}\n", "3:18", "cooldown.until: expected one of nominal, got the string \"cold\"")
  one_error(BASE .. "cooldown: {max: 0s}\n", "3:16", "cooldown.max: expected a duration greater than 0, got the string \"0s\"")
  one_error(BASE .. "energy: {idle: 11m}\n", "3:15", "energy.idle: expected a duration of at most 10m, got the string \"11m\"")
  one_error(BASE .. "energy: sometimes\n", "3:9",
    "energy: expected true, false or a mapping with idle: (a duration of 0 to 10m), got the string \"sometimes\"")
  one_error(BASE .. "sampling: {power: 0s}\n", "3:19",
    "sampling.power: expected true, false or a sampling interval of 1ms to 1h, got the string \"0s\"")
end)
