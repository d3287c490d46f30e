-- Synthetic results folders for the results/report tests, written through
-- bench.results exactly as the runner writes them. Every figure is chosen so
-- the tests know the value the report must print:
--   * each request's decode_tps alternates base*(1+j) / base*(1-j), so a
--     repeat's mean is exactly the configured figure;
--   * server figures (load time, peak memory) are passed through unchanged.
-- usage: local G = dofile(os.getenv("BENCHRUN_TESTS") .. "/data/gen_results.lua")
local results = require("bench.results")
local G = {}

G.PROMPTS = {
  {name = "short", max_tokens = 100}, {name = "medium", max_tokens = 500}, {name = "long", max_tokens = 2000},
  {name = "reasoning", max_tokens = 500}, {name = "instruction", max_tokens = 400},
}

local TEXT = {
  short = "量子计算利用量子比特的叠加和纠缠来并行处理信息。",
  medium = "def quicksort(a):\n    if len(a) <= 1:\n        return a\n    p = a[len(a) // 2]\n    return quicksort([x for x in a if x < p]) + [x for x in a if x == p] + quicksort([x for x in a if x > p])",
  long = "Backpropagation computes the gradient of the loss with respect to every weight by applying the chain rule layer by layer, from the output back to the input.",
  reasoning = "Alice is the knight, Bob is the knave, so the answer is Alice.",
  instruction = "1. apple\n2. banana\n3. cherry",
}

-- Output text of a variant: the reference text, with `drift` words replaced.
function G.text(prompt, drift)
  local t = TEXT[prompt] or ("answer to " .. prompt)
  for i = 1, drift or 0 do t = t .. " extra" .. i end
  return t
end

-- Records of one configuration: `n` requests per repeat, decode rates
-- alternating around rate * rep_factor[r].
local function emit(run, cell_id, o)
  local t = o.t0 or 1000000000
  for r = 1, o.repeats do
    local base = o.rate * (o.rep_factor and o.rep_factor[r] or 1)
    if o.warmup then
      run:record(cell_id, {["repeat"] = r, warmup = true, ok = true, ttft_ms = 99999, e2el_ms = 99999,
                           output_tokens = 1, decode_tps = 1, sent_ns = t})
    end
    for i = 1, o.n do
      local p = o.prompts and o.prompts[(i - 1) % #o.prompts + 1] or nil
      local rate = base * (i % 2 == 1 and 1 + o.jitter or 1 - o.jitter)
      if o.n % 2 == 1 and i == o.n then rate = base end
      local tokens = o.tokens or (p and p.max_tokens) or 500
      local ttft = o.ttft_ms
      local e2e = ttft + (tokens - 1) / rate * 1000
      run:record(cell_id, {["repeat"] = r, ok = true, ttft_ms = ttft, e2el_ms = e2e, output_tokens = tokens,
                           decode_tps = rate, sent_ns = t, prompt = p and p.name or nil,
                           text = p and G.text(p.name, o.drift) or nil, api_key = "sk-secret"})
      t = t + math.floor(e2e * 1e6)
    end
  end
end

local function samples(run, cell_id, t, load_s, run_s, model_bytes, peak_bytes)
  local steps = 10
  for i = 0, steps do
    run:sample{t_ns = t + math.floor(i * load_s / steps * 1e9), cell = cell_id, phase = "load",
               rss = math.floor(model_bytes * i / steps), sys_used = math.floor(model_bytes * i / steps) + 8e9}
  end
  t = t + math.floor(load_s * 1e9)
  for i = 1, steps do
    local rss = model_bytes + math.floor((peak_bytes - model_bytes) * i / steps)
    run:sample{t_ns = t + math.floor(i * run_s / steps * 1e9), cell = cell_id, phase = "run",
               rss = rss, sys_used = rss + 8e9, gpu_used = math.floor(rss * 0.9)}
  end
  return t + math.floor(run_s * 1e9)
end

local function finish_cell(run, id, labels, o, extra)
  local cell = {id = id, labels = labels, status = o.status or "ok", error = o.error,
    server = {load_time_s = o.load_s, model_bytes = o.model_bytes, peak_rss_bytes = o.peak_bytes,
              version = "sim-1.0"}}
  if o.outputs then
    cell.outputs = {}
    for _, p in ipairs(G.PROMPTS) do cell.outputs[p.name] = G.text(p.name, o.drift) end
  end
  for k, v in pairs(extra or {}) do cell[k] = v end
  return run:cell(cell)
end

local GB = 1000000000

-- Phase 3: MLX 4/6/8-bit and GGUF Q4_K_M / Q8_0 / BF16 (OOM), five prompts, 2 repeats.
G.PHASE3 = {
  {id = "mlx-4bit", quant = "4bit", format = "mlx", rate = 45.73, ttft = 420, load = 38.5, size = 135, peak = 141, drift = 2},
  {id = "mlx-6bit", quant = "6bit", format = "mlx", rate = 38.2, ttft = 480, load = 52.0, size = 180, peak = 187, drift = 1},
  {id = "mlx-8bit", quant = "8bit", format = "mlx", rate = 31.4, ttft = 530, load = 70.1, size = 252, peak = 259, drift = 0},
  {id = "gguf-q4km", quant = "Q4_K_M", format = "gguf", rate = 41.0, ttft = 390, load = 61.2, size = 138, peak = 146, drift = 3},
  {id = "gguf-q8", quant = "Q8_0", format = "gguf", rate = 33.9, ttft = 450, load = 95.5, size = 243, peak = 251, drift = 1},
  {id = "gguf-bf16", quant = "BF16", format = "gguf", rate = 0, ttft = 0, load = 300, size = 457, peak = 505,
   status = "oom", error = "server killed by SIGKILL (out of memory)"},
}

function G.phase3(dir)
  local run = assert(results.create{dir = dir, name = "phase3", phase = "compare", plan_text = "name: phase3\n",
    env = {host = {os = "macOS", os_version = "15.2", cpu = "Apple M3 Ultra", ram_bytes = 512 * GB}},
    checks = {medium = function(text) return text:find("def quicksort") ~= nil, "defines quicksort" end,
              short = function(text) error("boom") end}})
  local t = 1000000000
  for _, v in ipairs(G.PHASE3) do
    local labels = {model = "MiniMax-M2.1-" .. v.quant, quant = v.quant, format = v.format,
                    backend = "lmstudio", concurrency = 1}
    if v.status ~= "oom" then
      emit(run, v.id, {repeats = 2, n = 5, rate = v.rate, jitter = 0.02, ttft_ms = v.ttft, prompts = G.PROMPTS,
                       t0 = t, drift = v.drift, warmup = true})
    end
    t = samples(run, v.id, t, v.load, 20, v.size * GB, v.peak * GB)
    finish_cell(run, v.id, labels, {status = v.status, error = v.error, load_s = v.load, model_bytes = v.size * GB,
      peak_bytes = v.peak * GB, outputs = v.status ~= "oom", drift = v.drift})
  end
  return run
end

-- Phase 4: vllm-mlx at c = 1, 2, 4, 8, 16 (500 tokens), mlx-lm at c = 1, a mixed cell.
G.PHASE4 = {
  {c = 1, agg = 45.0, per = 45.0, p95 = 11500, peak = 141},
  {c = 2, agg = 82.0, per = 41.0, p95 = 12600, peak = 143},
  {c = 4, agg = 140.0, per = 35.0, p95 = 14800, peak = 147},
  {c = 8, agg = 184.0, per = 23.0, p95 = 22400, peak = 155},
  {c = 16, agg = 198.0, per = 12.4, p95 = 41900, peak = 171},
}

function G.phase4(dir)
  local run = assert(results.create{dir = dir, name = "phase4", phase = "batching", plan_text = "name: phase4\n"})
  for _, v in ipairs(G.PHASE4) do
    local id = "vllm-c" .. v.c
    local labels = {model = "MiniMax-M2.1-4bit", backend = "vllm-mlx", concurrency = v.c, max_tokens = 500,
                    scenario = v.c == 1 and "baseline" or "scale"}
    emit(run, id, {repeats = 1, n = 4, rate = v.per, jitter = 0.01, ttft_ms = 300, tokens = 500})
    run:cell{id = id, labels = labels, status = "ok",
      server = {load_time_s = 40, peak_rss_bytes = v.peak * GB},
      summary = {requests = 4, ok = 4, output_tps = v.agg, decode_tps = {mean = v.per},
                 e2el_ms = {p50 = v.p95 * 0.8, p95 = v.p95, p99 = v.p95 * 1.1},
                 ttft_ms = {p50 = 300, p95 = 320, p99 = 330}}}
  end
  emit(run, "mlxlm-c1", {repeats = 1, n = 4, rate = 46.5, jitter = 0.01, ttft_ms = 280, tokens = 500})
  run:cell{id = "mlxlm-c1", labels = {model = "MiniMax-M2.1-4bit", backend = "mlx-lm", concurrency = 1, max_tokens = 500,
    scenario = "baseline"}, status = "ok", server = {load_time_s = 35, peak_rss_bytes = 140 * GB},
    summary = {requests = 4, ok = 4, output_tps = 46.5, decode_tps = {mean = 46.5}}}
  emit(run, "vllm-mixed", {repeats = 1, n = 6, rate = 30, jitter = 0.05, ttft_ms = 350, tokens = 500})
  run:cell{id = "vllm-mixed", labels = {model = "MiniMax-M2.1-4bit", backend = "vllm-mlx", concurrency = 4, scenario = "mixed"},
    status = "ok", server = {load_time_s = 40, peak_rss_bytes = 149 * GB},
    summary = {requests = 6, ok = 6, output_tps = 120, decode_tps = {mean = 30}, fairness = {jain = 0.93, p99_p50 = 3.2}}}
  return run
end

-- Phase 5: llama.cpp Metal configurations on Q4_K_M, 3 repeats each.
-- `factors` maps config name -> TPS factor vs baseline (default 1).
G.PHASE5 = {
  {config = "baseline", env = {}},
  {config = "private-vram", env = {GGML_METAL_FORCE_PRIVATE = "1", GGML_METAL_N_CB = "2"}},
  {config = "die-0", env = {GGML_METAL_DEVICE_INDEX = "0", GGML_METAL_N_CB = "2"}},
  {config = "die-1", env = {GGML_METAL_DEVICE_INDEX = "1", GGML_METAL_N_CB = "2"}},
  {config = "cb-1", env = {GGML_METAL_FORCE_PRIVATE = "1", GGML_METAL_N_CB = "1"}},
  {config = "cb-3", env = {GGML_METAL_FORCE_PRIVATE = "1", GGML_METAL_N_CB = "3"}},
  {config = "combined", env = {GGML_METAL_FORCE_PRIVATE = "1", GGML_METAL_DEVICE_INDEX = "0", GGML_METAL_N_CB = "2"}},
}

function G.phase5(dir, factors, base_rate)
  factors = factors or {}
  base_rate = base_rate or 41.0
  local run = assert(results.create{dir = dir, name = "phase5", phase = "tuning", plan_text = "name: phase5\n"})
  for _, v in ipairs(G.PHASE5) do
    local f = factors[v.config] or 1
    local id = "q4km-" .. v.config
    -- repeats 0.995 / 1.0 / 1.005 of the configured rate: a small, known spread
    emit(run, id, {repeats = 3, n = 4, rate = base_rate * f, rep_factor = {0.995, 1.0, 1.005}, jitter = 0.01,
                   ttft_ms = 400 / f, tokens = 500})
    finish_cell(run, id, {model = "MiniMax-M2.1-Q4_K_M.gguf", quant = "Q4_K_M", format = "gguf",
      backend = "llama-server", config = v.config, env = v.env, concurrency = 1},
      {load_s = 60, model_bytes = 138 * GB, peak_bytes = math.floor(146 * GB * (v.config == "private-vram" and 1.05 or 1))})
  end
  return run
end

return G
