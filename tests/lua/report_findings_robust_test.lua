-- bench.report.findings: "Fastest" ranks configurations by the median of
-- their per-request decode rates and says when the lead is within noise
-- (issue 17, item 4). One late-starting request at 3,602 tok/s lifted a
-- 1,000 tok/s simulated cell to 1,502 in the finding when it used the mean.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local results = require("bench.results")
local report = require("bench.report")

-- a results folder of single-request cells, each with these per-request rates
local function folder(cells)
  local dir = T.tmpdir() .. "/robust"
  local run = assert(results.create{dir = dir, name = "robust", plan_text = "name: robust\n", env = {}})
  local t = 1000000000
  for _, c in ipairs(cells) do
    for i, rate in ipairs(c.rates) do
      local e2e = 50 + 499 / rate * 1000
      run:record(c.id, {["repeat"] = 1, ok = true, ttft_ms = 50, e2el_ms = e2e, output_tokens = 500,
                        decode_tps = rate, sent_ns = t, prompt = "p" .. i})
      t = t + math.floor(e2e * 1e6)
    end
    run:cell{id = c.id, labels = {model = c.id, concurrency = 1}, status = "ok",
             server = {peak_rss_bytes = 2e9, load_time_s = 1}}
  end
  assert(report.finish(run, {}))
  return assert(T.read_file(dir .. "/report.md"))
end

T.case("one late request at 3,602 tok/s does not make a 1,000 tok/s cell the fastest", function()
  local md = folder{
    {id = "lifted", rates = {995, 1000, 1005, 908, 3602}},   -- mean 1,502: the old finding's figure
    {id = "steady", rates = {1195, 1200, 1205, 1198, 1202}},
  }
  local line = md:match("Fastest single%-request decode:[^\n]*")
  assert(line, md)
  assert(not line:find("1502", 1, true), "the mean of the outlier is not the figure: " .. line)
  T.eq(line, "Fastest single-request decode: **steady** at 1200.0 TPS (median per request) "
    .. "(next: lifted at 1000.0, +20.0%).", "ranked by medians")
  -- memory efficiency from the same typical rate
  assert(md:find("Most memory-efficient: **steady** at 600.00 TPS/GB", 1, true), md)
end)

T.case("a lead within noise of the medians is said so", function()
  local md = folder{
    {id = "a", rates = {990, 1010, 1000, 1020, 980}},
    {id = "b", rates = {995, 1015, 1004, 985, 1025}},
  }
  local line = md:match("Fastest single%-request decode:[^\n]*")
  assert(line and line:find("within run-to-run noise", 1, true), tostring(line))
end)

T.case("a lead beyond noise is not", function()
  local md = folder{
    {id = "a", rates = {990, 1010, 1000, 1020, 980}},
    {id = "b", rates = {1490, 1510, 1500, 1520, 1480}},
  }
  local line = md:match("Fastest single%-request decode:[^\n]*")
  assert(line and line:find("**b** at 1500.0", 1, true) and not line:find("noise", 1, true), tostring(line))
end)

T.done()
