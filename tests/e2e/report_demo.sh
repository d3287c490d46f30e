#!/usr/bin/env bash
# The shipped demo plan on the simulator, end to end: its report holds the
# simulator's configured figures, re-rendering gives the same report, and the
# run compared with itself shows no change beyond noise.
set -u
B="$1"
SRC="${BENCHRUN_SOURCE:?BENCHRUN_SOURCE is not set}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$B" "$SRC/plans/demo.yaml" --out "$tmp" --quiet > "$tmp/out.txt" 2> "$tmp/err.txt" || { cat "$tmp/err.txt"; fail "demo plan exited $?"; }
dir=$(dirname "$(tail -1 "$tmp/out.txt")")
[ -f "$dir/report.md" ] || fail "no report.md in '$dir'"
for f in summary.json summary.csv env.json records.jsonl samples.jsonl charts/tps_by_variant.svg; do
  [ -f "$dir/$f" ] || fail "no $f"
done

# plans/demo.yaml: sim-4bit decodes at 1500 tok/s, sim-8bit at 900 (dry_run:)
"$B" run - "$dir" <<'EOF' || fail "figures in summary.csv"
local dir = ...
local rows, head = {}, nil
for line in io.lines(dir .. "/summary.csv") do
  local f = {}
  for x in (line .. ","):gmatch("([^,]*),") do f[#f + 1] = x end
  if not head then head = f else
    local r = {}
    for i, k in ipairs(head) do r[k] = f[i] end
    rows[r.cell] = r
  end
end
local function near(cell, want)
  local r = assert(rows[cell], "no row for " .. cell)
  -- the median request: on a loaded machine the simulator can send a late
  -- stretch of a stream in one write, which inflates that request's rate
  local got = tonumber(r.decode_tps_p50)
  assert(got and math.abs(got - want) / want < 0.15,
    string.format("%s: decode TPS p50 %s, expected %d within 15%%", cell, tostring(r.decode_tps_p50), want))
  assert(r.status == "ok", cell .. " status " .. tostring(r.status))
end
near("sim-4bit", 1500)
near("sim-8bit", 900)
for _, f in ipairs({"tps_by_variant.svg", "memory.svg"}) do
  local h = io.open(dir .. "/charts/" .. f)
  if h then
    local ok, why = require("bench.report.svg").well_formed(h:read("a"))
    h:close()
    assert(ok, f .. ": " .. tostring(why))
  end
end
EOF

grep -q "## Results by configuration" "$dir/report.md" || fail "no results table"
grep -q "## Output quality" "$dir/report.md" || fail "no quality section"
cp "$dir/report.md" "$tmp/first.md"
"$B" report "$dir" > /dev/null || fail "re-render exited $?"
cmp -s "$tmp/first.md" "$dir/report.md" || fail "re-rendering changed report.md"

"$B" compare "$dir" "$dir" > "$tmp/cmp.md" || fail "compare exited $?"
grep -q "| yes" "$tmp/cmp.md" && fail "a run differs from itself beyond noise"
[ "$(grep -c "| Decode TPS |" "$tmp/cmp.md")" -eq 2 ] || fail "compare table: two configurations expected"
echo "ok"
