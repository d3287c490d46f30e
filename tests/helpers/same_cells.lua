-- benchrun run tests/helpers/same_cells.lua SINGLE_DIR MERGED_DIR [TOLERANCE]
-- A merged run (benchrun merge) against a single machine's run of the same
-- plan, cell for cell from summary.csv: the same ids in the same order, the
-- same statuses and request counts, decode TPS (median) within TOLERANCE
-- (default 0.15: the simulator's figures on a loaded machine); and the same
-- report.md sections. Exits 1 naming the first difference.
local single, merged, tol = ...
tol = tonumber(tol) or 0.15
local function csv(dir)
  local rows, head = {}, nil
  for line in io.lines(dir .. "/summary.csv") do
    local f = {}
    for x in (line .. ","):gmatch("([^,]*),") do f[#f + 1] = x end
    if not head then head = f else
      local r = {}
      for i, k in ipairs(head) do r[k] = f[i] end
      rows[#rows + 1] = r
    end
  end
  return rows
end
local function fail(fmt, ...) io.stderr:write("same_cells: ", fmt:format(...), "\n") os.exit(1) end
local a, b = csv(single), csv(merged)
if #a ~= #b then fail("%d cells in %s, %d in %s", #a, single, #b, merged) end
for i, r in ipairs(a) do
  local m = b[i]
  if r.cell ~= m.cell then fail("row %d: cell %s vs %s", i, r.cell, m.cell) end
  for _, k in ipairs({"status", "requests", "ok", "errors"}) do
    if r[k] ~= m[k] then fail("cell %s: %s %s vs %s", r.cell, k, tostring(r[k]), tostring(m[k])) end
  end
  local x, y = tonumber(r.decode_tps_p50), tonumber(m.decode_tps_p50)
  if (x == nil) ~= (y == nil) or (x and math.abs(x - y) > tol * math.max(x, 1)) then
    fail("cell %s: decode TPS p50 %s vs %s (tolerance %g)", r.cell, tostring(r.decode_tps_p50), tostring(m.decode_tps_p50), tol)
  end
end
local function sections(dir)
  local s = {}
  for line in io.lines(dir .. "/report.md") do
    if line:match("^## ") and line ~= "## Shards" then s[#s + 1] = line end
  end
  return table.concat(s, "\n")
end
if sections(single) ~= sections(merged) then
  fail("report.md sections differ:\n%s\n--- vs ---\n%s", sections(single), sections(merged))
end
print(string.format("same cells: %d, statuses and request counts equal", #a))
