-- Batch efficiency from the /metrics gauge each server really exports
-- (issue 19, item 7): vLLM vllm:num_requests_running, vllm-mlx
-- vllm_mlx_scheduler_running_requests, SGLang sglang:num_running_reqs,
-- llama-server llamacpp:requests_processing. Phase 4's finish reads the
-- samples the runner wrote (bench.results), one cell per backend.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local results = require("bench.results")
local report = require("bench.report")
local backends = require("bench.backends")
local batching = require("phases.batching")

T.case("one table of names, in bench.backends", function()
  T.eq(backends.running_metric("vllm"), "vllm:num_requests_running", "vllm")
  T.eq(backends.running_metric("vllm-mlx"), "vllm_mlx_scheduler_running_requests", "vllm-mlx")
  T.eq(backends.running_metric("sglang"), "sglang:num_running_reqs", "sglang")
  T.eq(backends.running_metric("llama-server"), "llamacpp:requests_processing", "llama-server")
  T.eq(backends.running_metric("llama.cpp"), "llamacpp:requests_processing", "alias")
  local none, all = backends.running_metric("command")
  T.eq(none, nil, "no kind")
  T.eq(#all, 4, "every known name for the others")
end)

T.case("the queue gauge per backend, in the same way", function()
  T.eq(backends.queued_metric("vllm"), "vllm:num_requests_waiting", "vllm")
  T.eq(backends.queued_metric("vllm-mlx"), "vllm_mlx_scheduler_waiting_requests", "vllm-mlx")
  T.eq(backends.queued_metric("sglang"), "sglang:num_queue_reqs", "sglang")
  T.eq(backends.queued_metric("llama-server"), "llamacpp:requests_deferred", "llama-server")
  local none, all = backends.queued_metric("external")
  T.eq(none, nil, "no kind")
  T.eq(#all, 4, "every known name for the others")
end)

T.case("phase 4: batch efficiency read per backend from the run's samples", function()
  local dir = T.tmpdir() .. "/p4"
  local run = assert(results.create{dir = dir, name = "p4", phase = "batching"})
  local t = 1e9
  -- each server exports its own gauge (with its own labels); 2 of 4 running
  local cells = {
    {"vm/scale-4", "vllm-mlx", {vllm_mlx_scheduler_running_requests = 2, vllm_mlx_scheduler_waiting_requests = 1.5}},
    {"vl/scale-4", "vllm", {['vllm:num_requests_running{model_name="m"}'] = 2,
                            ['vllm:num_requests_waiting{model_name="m"}'] = 1.5}},
    {"sg/scale-4", "sglang", {['sglang:num_running_reqs{model_name="m",engine_type="unified",tp_rank="0",pp_rank="0"}'] = 2,
                              ['sglang:num_queue_reqs{model_name="m",engine_type="unified",tp_rank="0",pp_rank="0"}'] = 1.5}},
    {"ll/scale-4", "llama-server", {["llamacpp:requests_processing"] = 2, ["llamacpp:requests_deferred"] = 1.5}},
    -- a server of no known kind: whichever known gauge it exports
    {"cm/scale-4", "command", {["llamacpp:requests_processing"] = 2, ["llamacpp:requests_deferred"] = 1.5}},
  }
  for _, c in ipairs(cells) do
    local id, backend, metrics = c[1], c[2], c[3]
    for i = 1, 3 do
      t = t + 1e9
      local s = {type = "metrics", t_ns = t, cell = id, phase = "run"}
      for k, v in pairs(metrics) do s[k] = v end
      run:samples({s})
    end
    run:record(id, {ok = true, prompt = "p", ttft_ms = 50, e2el_ms = 500, output_tokens = 20,
                    t_sent_ns = t, t_end_ns = t + 5e8})
    run:cell{id = id, status = "ok", labels = {model = "m", backend = backend, server = id:match("^(%w+)/"),
                                               concurrency = 4, max_tokens = 500, scenario = "scale"}}
  end
  local ctx = {run = {dir = dir}, plan = {}}
  local _, lines = batching.finish(ctx, run:cells())
  local text = table.concat(lines, "\n")
  for _, c in ipairs(cells) do
    local line = text:match("\n  (" .. c[1]:gsub("%p", "%%%0") .. "[^\n]*)")
    assert(line, "a line for " .. c[1] .. " in:\n" .. text)
    assert(line:find(" 50%", 1, true), c[2] .. ": 2 running of 4 = 50%: " .. line)
    assert(line:find(" 1.50 ", 1, true), c[2] .. ": 1.5 waiting: " .. line)
  end
  report.finish(run, {phase = "batching"})
end)

T.done()
