-- The shipped plans run for real (issue 13, item 5): phase 2's baseline,
-- phase 3's comparison across F16/Q8_0/Q4_0 and phase 4's batching, each
-- through the benchrun CLI against the real llama-server, with --set
-- pointing them at the local binary and models (few requests, few tokens:
-- the suite runs twice, normal and ASan, on 2 cores). What the outputs say
-- is checked against each other (console, report.md, summary.csv) and
-- against llama.cpp's own /metrics (requests_processing, requests_deferred).
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local R = dofile(os.getenv("BENCHRUN_TESTS") .. "/realserver/rslib.lua")
local S = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/storylib.lua")
local results = require("bench.results")
local rs = R.setup()

-- one thread, as rslib's servers (a shared 2-core machine)
local function server(extra)
  local args = {"-t", "1", "-c", "1024"}
  for _, a in ipairs(extra or {}) do args[#args + 1] = a end
  for i, a in ipairs(args) do args[i] = string.format("%q", a) end
  return string.format("{backend: llama-server, binary: %q, args: [%s], ready_timeout: 2m}", rs.server,
                       table.concat(args, ", "))
end
local function model(file, quant, bits)
  return string.format("{model: %q, format: gguf, quant: %s, bits: %d}", rs.models .. "/" .. file, quant, bits)
end

T.case("phase 2 baseline: Q4_0 and Q8_0 on llama-server, every prompt, a peak per cell", function()
  local r = S.run(S.PLANS .. "/phase2-baseline.yaml", {
    "--set", "servers.lmstudio=" .. server(),
    "--set", "models.Q4_K_M=" .. model("small-q4_0.gguf", "Q4_0", 4),
    "--set", "models.Q8_0=" .. model("small-q8_0.gguf", "Q8_0", 8),
    "--set", "matrix={model: [Q4_K_M, Q8_0], server: [lmstudio], max_tokens: [6]}",
    "--set", "warmup=0", "--set", "sampling.memory=50ms"})
  T.eq(r.code, 0, "benchrun: " .. r.out .. r.err)
  local data = assert(results.load(r.dir))
  for _, id in ipairs({"Q4_K_M", "Q8_0"}) do
    local row = assert(r.csv[id], "summary.csv row " .. id)
    T.eq(row.status, "ok", id)
    T.eq(row.ok, "5", id .. ": the five prompts")
    assert(tonumber(row.peak_bytes) and tonumber(row.peak_bytes) > 50e6, id .. ": a measured peak")
  end
  -- the quality table counts the answer's tokens (6 each, as the server
  -- counted them), not the words the similarity routine splits it into
  local want = {}
  for _, rec in ipairs(data.records) do
    if (rec.prompt or rec.name) == "long" and rec.ok and not rec.warmup then
      want[rec.cell] = want[rec.cell] or rec.output_tokens
    end
  end
  local sec = assert(r.report:match("### long\n(.-)<details>"), "quality table of long")
  local n = 0
  for name, tok in sec:gmatch("\n| ([^|(]-) [^|]*| [%d.]+ | [%d.]+ | (%d+) |") do
    T.eq(tonumber(tok), want[name], name .. ": output tokens")
    T.eq(want[name], 6, name .. ": max_tokens")
    n = n + 1
  end
  T.eq(n, 2, "quality rows")
end)

T.case("phase 3: F16, Q8_0 and Q4_0 on llama-server; the plan's pairs, no MLX criterion", function()
  local r = S.run(S.PLANS .. "/phase3.yaml", {
    "--set", "servers.llama-server=" .. server(),
    "--set", "models.BF16=" .. model("small-f16.gguf", "F16", 16),
    "--set", "models.Q8_0=" .. model("small-q8_0.gguf", "Q8_0", 8),
    "--set", "models.Q4_K_M=" .. model("small-q4_0.gguf", "Q4_0", 4),
    "--set", "matrix={model: [BF16, Q8_0, Q4_K_M], server: [llama-server], max_tokens: [6]}",
    "--set", "exclude=[]", "--set", "workload.prompts=seed",
    "--set", "compare=[{name: q8-vs-f16, a: BF16, b: Q8_0}, {name: q4-vs-f16, a: BF16, b: Q4_K_M}]",
    "--set", "warmup=0", "--set", "sampling.memory=50ms"})
  T.eq(r.code, 0, "benchrun: " .. r.out .. r.err)
  for _, id in ipairs({"BF16", "Q8_0", "Q4_K_M"}) do
    T.eq(r.csv[id] and r.csv[id].status, "ok", id)
    assert(tonumber(r.csv[id].peak_bytes), id .. ": peak in summary.csv")
  end
  -- the quantized files are smaller and so is the server's memory
  assert(tonumber(r.csv.Q4_K_M.peak_bytes) < tonumber(r.csv.BF16.peak_bytes), "Q4_0 peak below F16's")
  assert(not r.out:find("than MLX", 1, true), "no MLX criterion without MLX cells:\n" .. r.out)
  assert(not r.report:find("than MLX", 1, true), "report.md: no MLX criterion")
  for _, name in ipairs({"q8-vs-f16: BF16 vs Q8_0", "q4-vs-f16: BF16 vs Q4_K_M"}) do
    assert(r.report:find("### " .. name, 1, true), "report.md pair table " .. name)
  end
  assert(r.out:find("[PASS] llama.cpp models complete all 5 test cases", 1, true), r.out)
end)

T.case("phase 4: batching with --parallel; efficiency and queue from llama.cpp's /metrics; one story", function()
  -- --threads-http 8: llama-server serves /metrics from the same HTTP thread
  -- pool as the completions, n_parallel + 2 threads by default on a 2-core
  -- machine (server.cpp), so at 4 streams on 2 slots every thread holds a
  -- stream and each scrape waits for one to end, when the queue has just
  -- moved on: the deferred requests were there but no scrape could see them.
  -- scale-4 runs long enough for several scrapes to find requests waiting:
  -- llama-server answers /metrics ahead of its queue, so requests that came
  -- during the decode step in progress are not yet deferred when it counts;
  -- on a loaded machine (ctest -j2) a step took ~70 ms, and a cell of 8
  -- short requests saw two scrapes, both with 0 deferred
  local r = S.run(S.PLANS .. "/phase4.yaml", {
    "--set", "servers.vllm-mlx=" .. server({"--parallel", "2", "--metrics", "--threads-http", "8"}),
    "--set", "servers.mlx-lm=" .. server(),
    "--set", "models.mlx-4bit=" .. model("tiny.gguf", "F32", 32),
    "--set", "load=[{name: baseline, concurrency: 1, max_tokens: [8, 16], requests: 2},"
      .. " {name: scale, concurrency: [2, 4], max_tokens: 48, requests: 16}]",
    "--set", "warmup=0", "--set", "sampling.memory=50ms", "--set", "sampling.metrics=20ms"})
  T.eq(r.code, 0, "benchrun: " .. r.out .. r.err)
  -- two slots: at 4 concurrent two run and two wait (llamacpp:requests_deferred)
  local s4 = assert(S.row(r.out, "vllm-mlx/scale-4"), "console row:\n" .. r.out)
  local eff, queued = tonumber((s4.eff or ""):match("^(%d+)%%$")), tonumber(s4.queued)
  assert(eff and eff > 0 and eff <= 50, "batch efficiency at 4 on 2 slots: " .. s4.line)
  assert(queued and queued > 0, "requests deferred at 4 on 2 slots: " .. s4.line)
  local s2 = assert(S.row(r.out, "vllm-mlx/scale-2"))
  assert(tonumber((s2.eff or ""):match("^(%d+)%%$")), "batch efficiency at 2: " .. s2.line)
  -- the server without --metrics: none, said so
  T.eq(S.row(r.out, "mlx-lm/baseline-8").eff, "n/a", "no /metrics")
  -- every cell has its own peak although the server started once per server
  for _, id in ipairs({"vllm-mlx/baseline-8", "vllm-mlx/baseline-16", "vllm-mlx/scale-2", "vllm-mlx/scale-4"}) do
    local csv = tonumber(r.csv[id] and r.csv[id].peak_bytes)
    assert(csv and csv > 10e6, id .. ": peak in summary.csv")
    local row = assert(S.row(r.out, id))
    assert(S.close(S.bytes(row.peak), csv, 0.06), string.format("%s: console %s vs summary.csv %d", id, row.peak, csv))
  end
  -- console and report.md: the same baseline, scaling and memory per request
  local cn, cx = r.out:match("Scaling at (%d+) concurrent = ([%d.]+)x")
  local rn, rx = r.report:match("At (%d+) concurrent requests aggregate throughput is ([%d.]+)×")
  assert(cn and rn, "scaling answers:\n" .. r.out)
  T.eq(cn .. " " .. cx, rn .. " " .. rx, "scaling, console vs report.md")
  local cm = r.out:match("Memory per concurrent request about ([%d.]+ %a+)")
  local rm = r.report:match("Memory per concurrent request: ([%d.]+ %a+)")
  assert(cm and rm, "memory per request answers")
  assert(S.close(S.bytes(cm), S.bytes(rm), 0.06), cm .. " vs " .. rm)
  -- two servers of one backend are two in the single-user answer
  assert(r.report:find("vllm%-mlx [%d.]+ TPS"), "report.md single-user answer names the plan's servers")
end)

T.done()
