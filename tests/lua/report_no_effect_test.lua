-- bench.report: settings that change nothing beyond run-to-run noise are
-- said so ("no measurable effect; the engine may ignore ...") instead of
-- being ranked (issue 19, item 3). Synthetic results from tests/data/gen_results.lua.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local G = dofile(os.getenv("BENCHRUN_TESTS") .. "/data/gen_results.lua")
local results = require("bench.results")
local report = require("bench.report")

local function read(path) return assert(T.read_file(path)) end

T.case("phase 5 where no Metal variable changes anything: no measurable effect, no ranking", function()
  local dir = T.tmpdir() .. "/p5"
  report.finish(G.phase5(dir, {combined = 1.001}), {})
  local md = read(dir .. "/report.md")
  local line = "**No measurable effect** on Q4_K_M: every configuration is within run-to-run noise of baseline "
    .. "(decode TPS and TTFT), so they are not ranked; the engine may ignore these variables (GGML_METAL_DEVICE_INDEX, "
    .. "GGML_METAL_FORCE_PRIVATE, GGML_METAL_N_CB)."
  local at = md:find(line, 1, true)
  assert(at, "the sentence under the tuning table:\n" .. md)
  assert(md:find(line, at + 1, true), "and in the recommendations")
  assert(not md:find("no setting beat the baseline", 1, true), "not the ranking's words")
  assert(not md:find("improves decode TPS", 1, true) and not md:find("avoid **", 1, true), "nothing ranked")
  local s = results.json_decode(read(dir .. "/summary.json"))
  T.eq(s.analysis.tuning[1].no_measurable_effect, true, "summary.json says so")
  T.eq(table.concat(s.analysis.tuning[1].variables, ","),
       "GGML_METAL_DEVICE_INDEX,GGML_METAL_FORCE_PRIVATE,GGML_METAL_N_CB", "the variables")
end)

T.case("one setting beyond noise: ranked as before, no 'no measurable effect'", function()
  local dir = T.tmpdir() .. "/p5"
  report.finish(G.phase5(dir, {["private-vram"] = 1.06}), {})
  local md = read(dir .. "/report.md")
  assert(not md:find("No measurable effect", 1, true), "an effect was measured")
  assert(md:find("**private-vram** improves decode TPS by +6.0%", 1, true), "ranked")
end)

T.done()
