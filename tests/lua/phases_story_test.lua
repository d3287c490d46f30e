-- One true story in every output (issue 13): the phase scripts' console
-- tables, report.md and summary.csv say the same figures for the same cells,
-- and a phase script prints the seed's questions, reference figures and MLX
-- criterion only when the plan gives them. The shipped plans run by the real
-- CLI as dry runs (against `benchrun sim`), with --set shaping them as a user
-- would.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local S = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/storylib.lua")

-- no 500-token baseline: the console once took the 8-token cell as its
-- baseline and report.md the 16-token one (4.31x vs 3.19x)
local P4_LOAD = "load=[{name: baseline, concurrency: 1, max_tokens: [8, 16], requests: 2},"
  .. " {name: scale, concurrency: [2, 4], max_tokens: 16, requests: 8}]"

local p4 = S.run(S.PLANS .. "/phase4.yaml", {"--dry-run", "--set", P4_LOAD})
T.eq(p4.code, 0, "phase 4 dry run: " .. p4.err)

T.case("phase 4: scaling at the top level is the same in the console and report.md", function()
  local cn, cx = p4.out:match("Scaling at (%d+) concurrent = ([%d.]+)x")
  assert(cn, "console answer on scaling:\n" .. p4.out)
  local rn, rx = p4.report:match("At (%d+) concurrent requests aggregate throughput is ([%d.]+)×")
  assert(rn, "report.md answer on scaling")
  T.eq(cn, rn, "the same level")
  T.eq(cx, rx, "the same scaling")
  -- and the console's column for that cell is report.md's table row
  local row = assert(S.row(p4.out, "vllm-mlx/scale-4"), "console row")
  local tab = p4.report:match("\n| 4 | [^|]+ | [^|]+ | ([%d.]+)× |")
  T.eq(row.scaling, tab .. "x", "scale-4's scaling")
  -- the baseline named is the c=1 cell of the scaling group: the 16-token one
  assert(p4.out:find("(vllm-mlx/baseline-16)", 1, true), "console baseline:\n" .. p4.out)
end)

T.case("phase 4: memory per request and each cell's peak agree (dry run: scaled alike)", function()
  local c = p4.out:match("Memory per concurrent request about ([%d.]+ %a+)")
  assert(c, "console memory per request:\n" .. p4.out)
  local r = p4.report:match("Memory per concurrent request: ([%d.]+ %a+)")
  assert(r, "report.md memory per request")
  assert(S.close(S.bytes(c), S.bytes(r), 0.06), string.format("console %s vs report.md %s", c, r))
  for _, id in ipairs({"vllm-mlx/baseline-8", "vllm-mlx/scale-2", "vllm-mlx/scale-4", "mlx-lm/baseline-16"}) do
    local row = assert(S.row(p4.out, id), "console row of " .. id)
    local csv = tonumber(p4.csv[id].peak_bytes)
    assert(csv, id .. ": summary.csv has its peak")
    assert(S.close(S.bytes(row.peak), csv, 0.06), string.format("%s: console %s vs summary.csv %d", id, row.peak, csv))
  end
end)

T.case("phase 4: the findings call only a one-request cell fastest single-request", function()
  local name = p4.report:match("Fastest single%-request decode: %*%*([^*]+)%*%*")
  assert(name, "a fastest finding")
  T.eq(p4.csv[name].concurrency, "1", name .. "'s concurrency")
end)

T.case("phase 4: the seed's reference and questions come from the plan", function()
  -- the shipped plan gives them: printed
  assert(p4.out:find("Does M3 Ultra scale better than M4 Max", 1, true), "the plan's question 1")
  assert(p4.out:find("4.3x", 1, true), "the plan's reference")
  -- a plan of its own without expected: or questions: gets neither
  local r = S.run(S.PLANS .. "/phase4.yaml", {"--dry-run", "--set", P4_LOAD, "--set", "expected={}",
                                              "--set", "questions=[]"})
  T.eq(r.code, 0, r.err)
  for _, s in ipairs({"M4 Max", "M3 Ultra", "512GB", "4.3x", "4.4x", "questions:"}) do
    assert(not r.out:find(s, 1, true), "console says " .. s .. ":\n" .. r.out)
  end
  for _, s in ipairs({"M4 Max", "the reference", "4.3×"}) do
    assert(not r.report:find(s, 1, true), "report.md says " .. s)
  end
  assert(r.out:find("Scaling at 4 concurrent", 1, true), "the run's own figures stay:\n" .. r.out)
end)

T.case("phase 3 without MLX cells: no MLX criterion; the plan's compare: pairs get report.md's delta table", function()
  local r = S.run(S.PLANS .. "/phase3.yaml", {"--dry-run", "--set", "matrix={model: [Q4_K_M, Q8_0], server: [llama-server]}",
    "--set", "exclude=[]", "--set", "compare=[{name: q4-vs-q8, a: Q8_0, b: Q4_K_M, note: half the bits}]"})
  T.eq(r.code, 0, r.err)
  assert(not r.out:find("than MLX", 1, true), "console judges against MLX:\n" .. r.out)
  assert(not r.report:find("than MLX", 1, true), "report.md judges against MLX")
  assert(r.out:find("q4-vs-q8 Q8_0 vs Q4_K_M", 1, true), "console pair:\n" .. r.out)
  assert(r.report:find("## The plan's comparison pairs", 1, true), "report.md section")
  local sec = r.report:match("### q4%-vs%-q8: Q8_0 vs Q4_K_M\n(.-)\n##")
  assert(sec, "report.md table of the pair")
  assert(sec:find("| Decode TPS | [%d.]+ | [%d.]+ | [+-][%d.]+%% |"), "decode TPS delta:\n" .. sec)
  assert(sec:find("half the bits", 1, true), "the pair's note")
  -- the phase script's peaks are report.md's (a dry run's scaled back)
  local line = r.out:match("\n  Q8_0 [^\n]*")
  local peak = line:match("([%d.]+ [KMGT]?B)")
  assert(S.close(S.bytes(peak), tonumber(r.csv.Q8_0.peak_bytes), 0.06), line .. " vs " .. r.csv.Q8_0.peak_bytes)
end)

T.done()
