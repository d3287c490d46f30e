-- Helpers for the tests that hold "one true story" (issue 13): run a plan
-- through the real benchrun CLI (a dry run against `benchrun sim`, or a real
-- server), then read what each output says: the console (the phase script's
-- tables), report.md and summary.csv.
local proc = require("bench.proc")
local S = {}

S.PLANS = os.getenv("BENCHRUN_TESTS") .. "/../plans"

-- S.run(plan, args) -> {code, out (console), err, dir, report, csv = {[cell] = row}}
function S.run(plan, args, timeout)
  local out = os.tmpname()
  os.remove(out)
  local argv = {bench.executable, plan, "--out", out}
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  local r = assert(proc.run{argv = argv, timeout = timeout or 240})
  local res = {code = r.code, out = r.stdout or "", err = r.stderr or ""}
  local ls = io.popen("ls -d " .. out .. "/*/ 2>/dev/null")
  res.dir = ls:read("l")
  ls:close()
  assert(res.dir, "no results folder; benchrun said:\n" .. res.out .. res.err)
  local f = assert(io.open(res.dir .. "report.md"))
  res.report = f:read("a")
  f:close()
  res.csv = {}
  f = assert(io.open(res.dir .. "summary.csv"))
  local head
  for line in f:lines() do
    local fields = {}
    for x in (line .. ","):gmatch("([^,]*),") do fields[#fields + 1] = x end
    if not head then head = fields else
      local row = {}
      for i, k in ipairs(head) do row[k] = fields[i] end
      res.csv[row.cell] = row
    end
  end
  f:close()
  return res
end

-- "22.7 MB" -> bytes (powers of 10, as bench.plan.format_size and report.md)
local UNITS = {B = 1, KB = 1e3, MB = 1e6, GB = 1e9, TB = 1e12}
function S.bytes(text)
  local n, u = tostring(text):match("([%d.]+)%s*(%a+)")
  assert(n and UNITS[u], "not a size: " .. tostring(text))
  return tonumber(n) * UNITS[u]
end

-- the console row of a cell in phase 4's table: {conc, agg, decode, scaling,
-- ..., peak} as strings (nil when not found)
function S.row(out, id)
  local line = out:match("\n  " .. id:gsub("%p", "%%%0") .. " ([^\n]*)")
  if not line then return nil end
  local f = {}
  for x in line:gmatch("%S+") do f[#f + 1] = x end
  return {conc = f[1], agg = f[2], decode = f[3], scaling = f[4], eff = f[9], queued = f[10],
          peak = f[11] and (f[11] .. " " .. (f[12] or "")), line = line}
end

-- within rel of each other (formats round differently: 1.1 MB vs 1.08 MB)
function S.close(a, b, rel)
  return math.abs(a - b) <= rel * math.max(math.abs(a), math.abs(b))
end

return S
