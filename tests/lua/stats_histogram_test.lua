-- bench.stats: histogram accuracy against exact percentiles, merge,
-- encode/decode, Jain's index and argument errors.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local stats = require("bench.stats")

-- Nearest-rank percentile of a sorted list (the definition the histogram follows).
local function exact(sorted, p)
  if p <= 0 then return sorted[1] end
  local rank = math.max(1, math.ceil(p / 100 * #sorted))
  return sorted[rank]
end

-- A reproducible log-normal sample: latencies spread over several decades.
local function sample(n, seed)
  local rng = math.random
  math.randomseed(seed)
  local xs = {}
  for i = 1, n do
    local u1, u2 = rng(), rng()
    local z = math.sqrt(-2 * math.log(1 - u1)) * math.cos(2 * math.pi * u2)
    xs[i] = math.exp(3 + 1.5 * z)   -- median ~20 ms, tail to seconds
  end
  return xs
end

T.case("percentiles within 0.1% of exact for digits = 3", function()
  local xs = sample(20000, 7)
  local h = stats.histogram{digits = 3}
  for _, x in ipairs(xs) do h:add(x) end
  table.sort(xs)
  for _, p in ipairs{1, 10, 50, 90, 95, 99, 99.9} do
    local want, got = exact(xs, p), h:percentile(p)
    T.near(got / want, 1, 0.001, "p" .. p .. " relative")
  end
  T.eq(h:count(), 20000, "count")
  T.eq(h:min(), xs[1], "min is exact")
  T.eq(h:max(), xs[#xs], "max is exact")
  T.eq(h:percentile(0), xs[1], "p0")
  T.eq(h:percentile(100), xs[#xs], "p100")
  local sum, sum2 = 0, 0
  for _, x in ipairs(xs) do sum = sum + x end
  local mean = sum / #xs
  for _, x in ipairs(xs) do sum2 = sum2 + (x - mean) ^ 2 end
  T.near(h:mean(), mean, 1e-9 * mean, "mean is exact")
  T.near(h:stddev(), math.sqrt(sum2 / #xs), 1e-6, "stddev (population)")
end)

T.case("digits = 2 bounds error at 1%", function()
  local xs = sample(5000, 11)
  local h = stats.histogram{digits = 2}
  for _, x in ipairs(xs) do h:add(x) end
  table.sort(xs)
  for _, p in ipairs{50, 90, 99} do
    T.near(h:percentile(p) / exact(xs, p), 1, 0.01, "p" .. p)
  end
end)

T.case("add with a count, summary fields", function()
  local h = stats.histogram{}
  h:add(10, 90):add(1000, 10)
  local s = h:summary()
  T.eq(s.count, 100, "count")
  T.near(s.p50, 10, 0.01, "p50")
  T.near(s.p90, 10, 0.01, "p90")
  T.near(s.p95, 1000, 1, "p95")
  T.near(s.p99, 1000, 1, "p99")
  T.near(s.mean, (900 + 10000) / 100, 1e-9, "mean")
  T.eq(s.min, 10, "min")
  T.eq(s.max, 1000, "max")
  T.eq(stats.histogram():summary().count, 0, "empty summary")
  T.eq(stats.histogram():percentile(50), nil, "empty percentile")
  T.eq(stats.histogram():mean(), nil, "empty mean")
end)

T.case("merge equals one histogram of everything", function()
  local xs = sample(6000, 3)
  local whole, a, b = stats.histogram{}, stats.histogram{}, stats.histogram{}
  for i, x in ipairs(xs) do
    whole:add(x)
    if i % 3 == 0 then a:add(x) else b:add(x) end
  end
  a:merge(b)
  T.eq(a:count(), whole:count(), "count")
  for _, p in ipairs{50, 90, 95, 99} do T.eq(a:percentile(p), whole:percentile(p), "p" .. p) end
  T.near(a:mean(), whole:mean(), 1e-9 * whole:mean(), "mean")
  T.near(a:stddev(), whole:stddev(), 1e-9 * whole:stddev(), "stddev")
  T.eq(a:min(), whole:min(), "min")
  T.eq(a:max(), whole:max(), "max")
  a:merge(stats.histogram{})
  T.eq(a:count(), whole:count(), "merging an empty one changes nothing")
  T.checkerr("expected the same lowest and digits", function() a:merge(stats.histogram{digits = 2}) end)
end)

T.case("encode/decode round trip", function()
  local h = stats.histogram{lowest = 0.01, highest = 1e6}
  for _, x in ipairs(sample(3000, 5)) do h:add(x) end
  h:add(0)        -- underflow bucket
  h:add(5e6)      -- above highest: top bucket, exact max
  local s = h:encode()
  T.eq(type(s), "string", "encoded type")
  local d = assert(stats.decode(s))
  T.eq(d:count(), h:count(), "count")
  T.eq(d:min(), 0, "min")
  T.eq(d:max(), 5e6, "max")
  for _, p in ipairs{0, 1, 50, 99, 100} do T.eq(d:percentile(p), h:percentile(p), "p" .. p) end
  T.eq(d:mean(), h:mean(), "mean")
  T.eq(d:encode(), s, "re-encoding is identical")
  local e = assert(stats.decode(stats.histogram():encode()))
  T.eq(e:count(), 0, "empty round trip")
  local bad, msg = stats.decode("hello")
  T.eq(bad, nil, "garbage decodes to nil")
  T.eq(msg, "stats.decode: expected a string from histogram:encode()", "message")
  bad, msg = stats.decode(s:gsub(" %d+:%d+$", ""))
  T.eq(bad, nil, "truncated")
  T.eq(msg, "stats.decode: bucket counts do not add up to the count", "truncated message")
end)

T.case("underflow and overflow", function()
  local h = stats.histogram{lowest = 1, highest = 100}
  h:add(0.25):add(0.5):add(50):add(1e4)
  T.eq(h:percentile(25), 0.25, "underflow reports the exact min")
  T.eq(h:percentile(100), 1e4, "overflow keeps the exact max")
  T.eq(h:percentile(99), 1e4, "top bucket clamps to max")
end)

T.case("jain", function()
  T.eq(stats.jain{5, 5, 5, 5}, 1.0, "equal shares")
  T.near(stats.jain{1, 0, 0, 0}, 0.25, 1e-12, "one takes all")
  T.near(stats.jain{1, 2, 3}, 36 / (3 * 14), 1e-12, "1,2,3")
  T.eq(stats.jain{}, nil, "empty")
  T.checkerr("stats.jain: [2]: expected a number, got string", stats.jain, {1, "x"})
end)

T.case("add_list adds a list's finite numbers >= 0 and skips the rest", function()
  local a, b = stats.histogram(), stats.histogram()
  a:add_list{1.5, 20, -1, 0 / 0, math.huge, "7", 300, 0}
  for _, x in ipairs{1.5, 20, 300, 0} do b:add(x) end
  T.eq(a:count(), 4, "count")
  T.eq(a:encode(), b:encode(), "the same as one add per number")
  T.eq(a:add_list{}, a, "returns h")
  T.checkerr("table expected", a.add_list, a, 5)
end)

T.case("add_fields adds a record's fields to their histograms, one call", function()
  local hs = {a = stats.histogram(), b = stats.histogram(), l = stats.histogram(), z = stats.histogram()}
  local want = {a = stats.histogram(), b = stats.histogram(), l = stats.histogram(), z = stats.histogram()}
  local rec = {a = 1.5, b = -2, l = {3, -1, 0 / 0, 4}, z = "5", other = 9}
  stats.add_fields(hs, {"a", "b", "l", "z", "missing"}, rec)
  stats.add_fields(hs, {"a"}, {a = 0 / 0})
  stats.add_fields(hs, {"a"}, {a = math.huge})
  want.a:add(1.5)
  want.l:add_list{3, 4}
  for k, h in pairs(hs) do T.eq(h:encode(), want[k]:encode(), k .. ": finite numbers >= 0 (lists too), nothing else") end
  T.checkerr("names[1]: expected a string", stats.add_fields, hs, {1}, rec)
  T.checkerr("hs.other: expected a histogram", stats.add_fields, hs, {"other"}, rec)
  T.checkerr("table expected", stats.add_fields, hs, "a", rec)
end)

T.case("caller mistakes raise", function()
  T.checkerr("lowest: expected a number > 0", stats.histogram, {lowest = 0})
  T.checkerr("digits: expected an integer from 1 to 5", stats.histogram, {digits = 9})
  T.checkerr("highest: expected a number >= 2 * lowest", stats.histogram, {lowest = 1, highest = 1})
  local h = stats.histogram()
  T.checkerr("expected a number >= 0", h.add, h, -1)
  T.checkerr("expected a number >= 0", h.add, h, 0 / 0)
  T.checkerr("expected a count >= 1", h.add, h, 1, 0)
  T.checkerr("expected a percentile from 0 to 100", h.percentile, h, 101)
  T.eq(tostring(h), "bench.stats.Histogram (empty)", "tostring")
end)

T.done()
