-- Issue 15, "throttled cells marked in every table": a run with a cell that
-- ran throttled (its energy.throttled, as bench.powerwatch records it) and
-- one that did not, each with what the report's sections show (depth,
-- prefix cache, logprobs, tool calls, a capacity search, SLOs, errors).
-- Every table row and per-cell heading of report.md that names the hot cell
-- carries bench.report.energy's mark; none names the cool one with it.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local report = require("bench.report")
local energy_report = require("bench.report.energy")

local function cell(id, throttled)
  return {
    id = id, status = "ok", labels = {variant = id, depth = "d4096"},
    summary = {requests = 2, ok = 2, output_tokens_total = 200,
               ttft_ms = {p50 = 40, p95 = 50}, decode_tps = {p50 = 20, mean = 20},
               errors = {total = 1, by_kind = {timeout = 1}},
               tools = {answers = 2, calls = 2, args_json = 2, schema_ok = 2, schema_checked = 2},
               slo = {ttft_p95 = {target = 0.1, value = 0.05, met = true}}, slo_met = true},
    energy = {energy_j = 100, j_per_token = 0.5, tok_per_w = 2, avg_w = 50, max_temp_c = throttled and 95 or 60,
              throttled = throttled, throttled_pct = throttled and 40 or 0, window_s = 2},
    depth = {{depth = 4096, pp = 512, tg = 128, label_pp = "pp512 @ d4096", label_tg = "tg128 @ d4096",
              cold = {prefill_tps = 100, decode_tps = 20}, warm = {prefill_tps = 500, decode_tps = 20}}},
    cache = {hit_rate = 0.5, hit_requests = 1, requests = 2, reported = 2, ttft_hit_p50_ms = 10, ttft_miss_p50_ms = 40},
    quality_logprobs = {p = {tokens = {{t = "a"}, {t = "b"}}}},
    search = {over = "concurrency", slo = {ttft_p95 = 0.1}, best = 4, converged = true, reason = "max_meets",
              min = 1, max = 4, precision = 0.05, max_steps = 4,
              levels = {{level = 4, misses = {}}},
              steps = {{level = 4, run = 1, met = true, slo = {ttft_p95 = {value = 0.05}}}}},
  }
end

T.case("energy_report.throttled: a configuration, a cell, a list of them", function()
  T.eq(energy_report.throttled({metrics = {throttled = true}}), true, "configuration")
  T.eq(energy_report.throttled({energy = {throttled = true}}), true, "cell")
  T.eq(energy_report.throttled({energy = {throttled = false}}), false, "cool cell")
  T.eq(energy_report.throttled({{energy = {}}, {energy = {throttled = true}}}), true, "any of a list")
  T.eq(energy_report.throttled(nil), false, "nothing")
  T.eq(energy_report.mark({energy = {throttled = true}}, "x"), "x" .. energy_report.MARK, "marked")
  T.eq(energy_report.mark({energy = {note = "no power source"}}, "x"), "x", "unknown: no mark")
end)

T.case("report.md: every table row and cell heading naming the throttled cell carries the mark", function()
  local dir = T.tmpdir()
  local data = {summary = {phase = "compare", title = "throttle marks", notes = {pairs = {{name = "pair", a = "hot", b = "cool"}}}},
                cells = {cell("hot", true), cell("cool", false)}, records = {}, samples = {}}
  local path = report.render(data, {out = dir})
  local md = T.read_file(path)
  local sections, section, marked = {}, nil, {}
  for line in md:gmatch("[^\n]*") do
    local h2 = line:match("^## (.*)")
    if h2 then section = h2 sections[h2] = true end
    local names_hot = line:find("hot", 1, true) and not line:find("^%- ") and (line:find("^|") or line:find("^###"))
    if names_hot then
      assert(line:find(energy_report.MARK, 1, true), "no throttle mark in " .. tostring(section) .. ": " .. line)
      marked[section] = (marked[section] or 0) + 1
    end
    if line:find("cool" .. energy_report.MARK, 1, true) then
      error("the cool cell marked: " .. line)
    end
  end
  for _, s in ipairs({"Results by configuration", "Errors and warnings", "Latency percentiles (ms)", "Capacity",
                      "Tool calls, structured output and reasoning budget", "Service level objectives",
                      "Quality by logprobs", "Prefix cache", "Context depth", "Success criteria (phase 3)",
                      "The plan's comparison pairs"}) do
    T.eq(sections[s], true, "the section " .. s .. "\n" .. md)
    assert((marked[s] or 0) > 0, "the hot cell shown and marked in " .. s .. "\n" .. md)
  end
  T.eq(marked["Context depth"], 2, "the depth table: its pp and tg rows")
  local html = T.read_file(dir .. "/report.html")
  assert(html:find("hot" .. energy_report.MARK, 1, true), "report.html's tables mark it too")
end)

T.done()
