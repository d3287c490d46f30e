-- benchrun compare: the same configurations in two runs, deltas, and the
-- noise rule (|Δ| > max(2·sqrt(sA²/nA + sB²/nB), 1% of A) over per-repeat values).
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local G = dofile(os.getenv("BENCHRUN_TESTS") .. "/data/gen_results.lua")
local results = require("bench.results")
local report = require("bench.report")
local C = require("bench.report.compare")
local A = require("bench.report.analysis")

local root = T.tmpdir()
local a_dir, b_dir = root .. "/a", root .. "/b"
G.phase5(a_dir):close()
-- B: cb-1 20% slower, combined 0.1% faster (inside the ±0.5% repeat spread)
G.phase5(b_dir, {["cb-1"] = 0.8, combined = 1.001}):close()

local function metric(cmp, config, key)
  for _, r in ipairs(cmp.rows) do
    if r.name == config then
      for _, e in ipairs(r.metrics) do if e.key == key then return e end end
    end
  end
end

T.case("noise rule on known repeats", function()
  -- repeats 0.98, 1.0, 1.02 of 41: s = 0.82, n = 3 on both sides; 2·SE = 1.34 > 1% of 41
  local ra = {decode_tps = {40.18, 41.0, 41.82}}
  local s = A.stddev(ra.decode_tps)
  local threshold = 2 * math.sqrt(2 * s ^ 2 / 3)
  T.eq(threshold > 0.41, true, "the spread, not the 1% floor, decides here")
  local rb_in = {decode_tps = {40.18 + threshold * 0.9, 41.0 + threshold * 0.9, 41.82 + threshold * 0.9}}
  local rb_out = {decode_tps = {40.18 + threshold * 1.1, 41.0 + threshold * 1.1, 41.82 + threshold * 1.1}}
  local n_in = A.noise(ra, rb_in, "decode_tps")
  T.eq(n_in.verdict, "no", "0.9 × threshold is noise")
  T.near(n_in.threshold, threshold, 1e-9, "threshold")
  T.eq(n_in.basis, "repeats", "basis")
  T.eq(A.noise(ra, rb_out, "decode_tps").verdict, "yes", "1.1 × threshold is real")
  -- one repeat: the per-request spread stands in
  local one = {decode_tps = {41}, per_request = {decode_tps = {40, 42, 41, 41}}}
  local other = {decode_tps = {50}, per_request = {decode_tps = {49, 51, 50, 50}}}
  local n = A.noise(one, other, "decode_tps")
  T.eq(n.basis, "requests", "per-request basis")
  T.eq(n.verdict, "yes", "clear difference")
  T.eq(A.noise({decode_tps = {1}}, {decode_tps = {2}}, "decode_tps").verdict, "n/a", "too few values")
  -- a perfectly steady server: 0.5% apart is still noise (the 1% floor), 1.5% is not
  local steady = {decode_tps = {100, 100.001, 99.999}}
  T.eq(A.noise(steady, {decode_tps = {100.5, 100.501, 100.499}}, "decode_tps").verdict, "no", "0.5% is under the floor")
  T.eq(A.noise(steady, {decode_tps = {101.5, 101.501, 101.499}}, "decode_tps").verdict, "yes", "1.5% is over it")
end)

T.case("compare: deltas and verdicts per configuration", function()
  local cmp = C.compare(assert(results.load(a_dir)), assert(results.load(b_dir)))
  T.eq(#cmp.rows, 7, "seven configurations in both")
  local e = metric(cmp, "q4km-cb-1", "decode_tps")
  T.near(e.delta_pct, -20, 1e-6, "cb-1 delta")
  T.eq(e.beyond_noise, true, "cb-1 beyond noise")
  T.eq(e.better, "A", "A better")
  local c = metric(cmp, "q4km-combined", "decode_tps")
  T.near(c.delta_pct, 0.1, 1e-6, "combined delta")
  T.eq(c.beyond_noise, false, "combined within noise")
  local same = metric(cmp, "q4km-die-0", "decode_tps")
  T.near(same.delta_pct, 0, 1e-9, "unchanged")
  T.eq(same.beyond_noise, false, "unchanged is noise")
  local load = metric(cmp, "q4km-die-0", "load_s")
  T.eq(load.beyond_noise, nil, "load time: one value per run, no verdict")
end)

T.case("compare: markdown and JSON outputs", function()
  local cmp = C.compare(assert(results.load(a_dir)), assert(results.load(b_dir)))
  local md = C.markdown(cmp)
  T.eq(md:find("| q4km-cb-1 | Decode TPS | 41.0 | 32.8 | -20.0% (A better) | yes |", 1, true) ~= nil, true, md)
  T.eq(md:find("| q4km-combined | Decode TPS | 41.0 | 41.0 | +0.1% | no |", 1, true) ~= nil, true, "combined row")
  local j = C.to_json(cmp)
  T.eq(j.configs[1].metrics.decode_tps.beyond_noise ~= nil, true, "json verdicts")
end)

T.case("compare_main: files, --json, usage errors", function()
  local out = root .. "/cmp.md"
  T.eq(report.compare_main(a_dir, b_dir, "--out", out), 0, "exit 0")
  local f = assert(io.open(out))
  local text = f:read("a")
  f:close()
  T.eq(text:find("# benchrun compare: phase5 vs phase5", 1, true) ~= nil, true, "title")
  local jout = root .. "/cmp.json"
  T.eq(report.compare_main("--json", a_dir, b_dir, "--out", jout), 0, "json exit 0")
  f = assert(io.open(jout))
  local j = results.json_decode(f:read("a"))
  f:close()
  T.eq(#j.configs, 7, "json configs")
  T.eq(report.compare_main(a_dir), 2, "one folder is a usage error")
  T.eq(report.compare_main(a_dir, root .. "/missing"), 1, "missing folder fails")
  T.eq(report.compare_main("--bogus", a_dir, b_dir), 2, "unknown option")
end)

T.case("compare: environment differences are listed", function()
  local da, db = assert(results.load(a_dir)), assert(results.load(b_dir))
  db.env.host = {hostname = "other", ram = 512e9}
  local cmp = C.compare(da, db)
  local what = {}
  for _, e in ipairs(cmp.env) do what[e.what] = e end
  T.eq(what.host.b, "other", "host differs")
  T.eq(what.ram.b, "512 GB", "ram differs")
  T.eq(C.markdown(cmp):find("Environments differ:", 1, true) ~= nil, true, "shown")
  T.eq(#C.compare(da, assert(results.load(a_dir))).env, 0, "same run, no differences")
end)

T.case("compare: configurations only in one run are listed", function()
  local p4 = root .. "/p4"
  G.phase4(p4):close()
  local cmp = C.compare(assert(results.load(a_dir)), assert(results.load(p4)))
  T.eq(#cmp.rows, 0, "nothing in common")
  T.eq(#cmp.only_a, 7, "only in A")
  T.eq(#cmp.only_b, 7, "only in B")
  T.eq(C.markdown(cmp):find("No configuration appears in both runs.", 1, true) ~= nil, true, "said so")
end)

T.done()
