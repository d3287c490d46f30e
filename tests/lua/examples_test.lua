-- Every example in examples/ runs stand-alone (it starts its own
-- `benchrun sim`) and prints what it promises. They run at the same time
-- to keep the test short.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local proc = require("bench.proc")

local dir = os.getenv("BENCHRUN_TESTS") .. "/../examples/"

-- name -> plain-text strings its stdout must contain
local expect = {
  ["probe.lua"] = {"models: ", "ttft ", " tok/s", "8 at once: 8/8 ok"},
  ["custom_workload.lua"] = {"8 requests, ", "events seen by on_event", "list-9", "8/8 ok"},
  ["concurrency_sweep.lua"] = {"level", "scaling", "c=1 ", "c=8 "},
  -- whether a rate meets the SLO depends on the machine: either verdict line will do
  ["rate_slo.lua"] = {"rate=2.00", "ttft p95 <= 0.25 s"},
  ["compare_servers.lua"] = {"metric", "decode tok/s p50, 1 user", "output tok/s, 4 users"},
}

local names = {}
for name in pairs(expect) do names[#names + 1] = name end
table.sort(names)

local results, tasks = {}, {}
for _, name in ipairs(names) do
  tasks[#tasks + 1] = bench.spawn(function()
    results[name] = {proc.run{argv = {bench.executable, "run", dir .. name}, timeout = 120}}
  end)
end
assert(bench.wait(tasks))

for _, name in ipairs(names) do
  T.case(name, function()
    local r, err = table.unpack(results[name])
    assert(r, err)
    local out = r.stdout or ""
    if r.code ~= 0 then
      error(string.format("exit %s\nstdout:\n%s\nstderr:\n%s", tostring(r.code or r.signal), out, r.stderr or ""))
    end
    for _, s in ipairs(expect[name]) do
      if not out:find(s, 1, true) then
        error(string.format("stdout lacks %q:\n%s\nstderr:\n%s", s, out, r.stderr or ""))
      end
    end
  end)
end

T.case("every example is tested", function()
  local ls = assert(proc.run{argv = {"ls", dir}})
  for f in ls.stdout:gmatch("[^\n]+") do
    if f:match("%.lua$") then T.eq(expect[f] ~= nil, true, "test for examples/" .. f) end
  end
end)

T.done()
