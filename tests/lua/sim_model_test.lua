-- benchrun sim: the timing model seen from outside (load window, batching
-- curve, FIFO queue, queue limit, --speedup-env). Every figure is read from
-- the sim_ns stamps the events carry, so the checks do not depend on how fast
-- curl starts; tolerances are generous (a shared 2-core machine).
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local proc = require("bench.proc")
local json = require("cjson")

local function curl(url, body, extra)
  local argv = {"curl", "-sS", "-N", "-w", "\n%{http_code}", url}
  if body then
    for _, a in ipairs{"-H", "Content-Type: application/json", "--data-binary", body} do argv[#argv + 1] = a end
  end
  for _, a in ipairs(extra or {}) do argv[#argv + 1] = a end
  local r = assert(proc.run{argv = argv, timeout = 30})
  local b, code = r.stdout:match("^(.*)\n(%d+)$")
  return tonumber(code), b
end

-- the sim_ns of each token event of a streamed chat
local function stamps(body)
  local ts = {}
  for data in body:gmatch("data: ([^\n]+)") do
    if data ~= "[DONE]" then
      local e = json.decode(data)
      if e.choices and e.choices[1] and e.choices[1].delta and e.choices[1].delta.content
         and e.choices[1].delta.content ~= "" then
        ts[#ts + 1] = e.sim_ns
      end
    end
  end
  return ts
end

local function chat(n)
  return json.encode{messages = {{role = "user", content = "go"}}, max_tokens = n, stream = true}
end

-- run fn(i) for i = 1..n at once; returns the results in order
local function all(n, fn)
  local tasks, res = {}, {}
  for i = 1, n do tasks[i] = bench.spawn(function() res[i] = {fn(i)} end) end
  for i = 1, n do tasks[i]:join() end
  return res
end

T.case("load window: health 503 and requests refused while loading, memory touched", function()
  local s <close> = T.sim{"--load-time", "800ms", "--model-memory", "16MiB", "--decode-tps", "0"}
  local t0 = clock.now()
  local code, body = curl(s.url .. "/health")
  T.eq(code, 503, "health while loading")
  T.eq(body, '{"status":"loading"}', "health body")
  code = curl(s.url .. "/v1/chat/completions", chat(2))
  T.eq(code, 503, "request while loading")
  local ready
  while clock.now() - t0 < 5e9 do
    if curl(s.url .. "/health") == 200 then ready = clock.now() - t0 break end
    bench.sleep(0.05)
  end
  assert(ready and ready > 0.5e9, "ready after about 0.8 s, got " .. tostring(ready))
  local _, m = curl(s.url .. "/metrics")
  T.eq(tonumber(m:match("\nsim_memory_touched_bytes (%d+)")), 16 * 1048576, "memory touched")
  code = curl(s.url .. "/v1/chat/completions", chat(2))
  T.eq(code, 200, "request once loaded")
end)

T.case("ollama: a request during the load waits for it (load_duration)", function()
  local s <close> = T.sim{"--dialect", "ollama", "--load-time", "500ms", "--decode-tps", "0"}
  local code, body = curl(s.url .. "/api/generate", json.encode{model = "m", prompt = "hi", stream = false,
                                                                 options = {num_predict = 2}})
  T.eq(code, 200, "status")
  local r = json.decode(body)
  assert(r.load_duration > 0.2e9 and r.load_duration < 2e9, "load_duration " .. r.load_duration)
  assert(r.total_duration >= r.load_duration, "total includes load")
end)

T.case("batching curve: aggregate tps at 1, 2, 4, 8, 16 concurrent", function()
  local d, k = 100, 0.05
  local s <close> = T.sim{"--decode-tps", tostring(d), "--batch-slowdown", tostring(k), "--slots", "16"}
  for _, c in ipairs{1, 2, 4, 8, 16} do
    local res = all(c, function() return curl(s.url .. "/v1/chat/completions", chat(50)) end)
    -- the window in which all c sequences were decoding
    local lo, hi, series = -math.huge, math.huge, {}
    for i = 1, c do
      T.eq(res[i][1], 200, "status")
      local ts = stamps(res[i][2])
      T.eq(#ts, 50, "tokens")
      series[i] = ts
      lo = math.max(lo, ts[1])
      hi = math.min(hi, ts[#ts])
    end
    assert(hi - lo > 0.2e9, "overlap too short at c=" .. c)
    local n = 0
    for i = 1, c do
      for _, t in ipairs(series[i]) do if t > lo and t <= hi then n = n + 1 end end
    end
    local got = n / ((hi - lo) / 1e9)
    local want = c * d / (1 + k * (c - 1))
    T.near(got, want, want * 0.15, "aggregate tps at " .. c)
  end
end)

T.case("queue: FIFO behind busy slots, then --max-queue rejects", function()
  local s <close> = T.sim{"--decode-tps", "100", "--slots", "2", "--batch-slowdown", "0"}
  local res = all(4, function() return curl(s.url .. "/v1/chat/completions", chat(10)) end)
  local runs = {}
  for i = 1, 4 do
    T.eq(res[i][1], 200, "status")
    local ts = stamps(res[i][2])
    runs[#runs + 1] = {first = ts[1], last = ts[#ts]}
  end
  table.sort(runs, function(a, b) return a.first < b.first end)
  local early_end = math.min(runs[1].last, runs[2].last)
  -- the 3rd and 4th started only when a slot freed (prefill of 1 token: 0.5 ms)
  assert(runs[3].first >= early_end, "3rd waited for a slot")
  assert(runs[4].first >= early_end, "4th waited for a slot")

  local q <close> = T.sim{"--decode-tps", "20", "--slots", "1", "--max-queue", "1", "--queue-status", "429"}
  local r2 = all(3, function() return curl(q.url .. "/v1/chat/completions", chat(10)) end)
  local codes = {}
  for i = 1, 3 do codes[#codes + 1] = r2[i][1] end
  table.sort(codes)
  T.eq(table.concat(codes, ","), "200,200,429", "one rejected")
  for i = 1, 3 do
    if r2[i][1] == 429 then assert(json.decode(r2[i][2]).message:find("queue"), "JSON error") end
  end
  local _, m = curl(q.url .. "/metrics")
  T.eq(tonumber(m:match("\nsim_requests_rejected_total (%d+)")), 1, "rejected counter")
  T.eq(tonumber(m:match('\nvllm:generation_tokens_total{model_name="sim%-model"} (%d+)')), 20, "tokens counter")
end)

T.case("--jitter: intervals vary around the configured rate", function()
  local s <close> = T.sim{"--decode-tps", "200", "--jitter", "0.5", "--seed", "3"}
  local _, body = curl(s.url .. "/v1/chat/completions", chat(41))
  local ts = stamps(body)
  local gaps, sum = {}, 0
  for i = 2, #ts do gaps[#gaps + 1] = (ts[i] - ts[i - 1]) / 1e6; sum = sum + gaps[#gaps] end
  local mean = sum / #gaps
  T.near(mean, 5, 1.5, "mean gap (ms)")
  local lo, hi = math.huge, 0
  for _, g in ipairs(gaps) do lo = math.min(lo, g); hi = math.max(hi, g) end
  assert(hi - lo > 2, string.format("gaps spread: %.2f .. %.2f ms", lo, hi))
end)

T.case("--speedup-env: the factor applies only when the variable is set", function()
  local function rate(env)
    local pf = os.tmpname()
    local p <close> = assert(proc.spawn{argv = {bench.executable, "sim", "--port", "0", "--port-file", pf,
      "--decode-tps", "40", "--speedup-env", "SIM_TEST_FAST=2", "--speedup-env", "SIM_TEST_OFF=5"},
      env = {set = env}, stdout = "capture", stderr = "capture"})
    local port
    for _ = 1, 300 do
      local f = io.open(pf)
      if f then port = tonumber(f:read("a")); f:close() end
      if port then break end
      bench.sleep(0.01)
    end
    os.remove(pf)
    assert(port, "sim did not start")
    local _, body = curl("http://127.0.0.1:" .. port .. "/v1/chat/completions", chat(11))
    local ts = stamps(body)
    p:stop(2)
    return 10 / ((ts[#ts] - ts[1]) / 1e9)
  end
  T.near(rate{SIM_TEST_OFF = "0"}, 40, 6, "no factor ('0' does not count)")
  T.near(rate{SIM_TEST_FAST = "1", SIM_TEST_OFF = ""}, 80, 12, "factor 2")
end)

T.case("--decode-steps: streams started apart share one grid of decode steps", function()
  local s <close> = T.sim{"--decode-tps", "50", "--batch-slowdown", "0", "--slots", "8", "--decode-steps"}
  local iv = 20e6   -- 50 tokens/s
  -- three requests 7 ms apart: on their own clocks their tokens would be 7 ms apart too
  local res = all(3, function(i)
    bench.sleep((i - 1) * 0.007)
    return curl(s.url .. "/v1/chat/completions", chat(10))
  end)
  local function median(list)
    table.sort(list)
    return list[(#list + 1) // 2]
  end
  for i = 1, 3 do
    T.eq(res[i][1], 200, "status")
    local ts = stamps(res[i][2])
    T.eq(#ts, 10, "tokens")
    -- a step's tokens leave at its time plus the timer's lateness, which a
    -- loaded machine makes a few ms now and then: the median says where the
    -- request's tokens sit (on their own clocks, 7 and 14 ms for the second
    -- and third request)
    local offs, gaps = {}, {}
    for k, t in ipairs(ts) do
      offs[k] = t % iv
      if k > 1 then gaps[#gaps + 1] = t - ts[k - 1] end
    end
    local off = median(offs)
    assert(off < iv / 4, string.format("request %d: its tokens sit %.2f ms after the steps (median)", i, off / 1e6))
    T.near(median(gaps), iv, 3e6, "one step apart (median)")
  end
end)

T.done()
