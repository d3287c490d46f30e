#!/usr/bin/env bash
# `benchrun report` and `benchrun compare` through the real command line, on
# synthetic results folders (tests/data/gen_results.lua).
set -u
B="$1"
TESTS="${BENCHRUN_TESTS:?BENCHRUN_TESTS is not set}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# the folders exist beforehand, so this test needs no child process to make them
mkdir -p "$tmp/a/cells" "$tmp/a/charts" "$tmp/b/cells" "$tmp/b/charts" "$tmp/analysis/charts"
"$B" run - "$tmp" <<'EOF' || fail "generating the results folders"
local dir = ...
local G = dofile(os.getenv("BENCHRUN_TESTS") .. "/data/gen_results.lua")
G.phase5(dir .. "/a"):close()
G.phase5(dir .. "/b", {["cb-1"] = 0.8, combined = 1.001}):close()
EOF

out=$("$B" report "$tmp/a") || fail "benchrun report exited $?"
[ "$out" = "$tmp/a/report.md" ] || fail "report printed '$out'"
grep -q "## Tuning: change vs baseline" "$tmp/a/report.md" || fail "no tuning section"
grep -q "^q4km-cb-1," "$tmp/a/summary.csv" || fail "no csv row"
[ -f "$tmp/a/charts/tuning_deltas.svg" ] || fail "no tuning chart"

"$B" run - "$tmp/a/charts/tuning_deltas.svg" <<'EOF' || fail "chart is not well-formed"
local f = assert(io.open((...)))
local ok, why = require("bench.report.svg").well_formed(f:read("a"))
f:close()
if not ok then error(why) end
EOF

cmp=$("$B" compare "$tmp/a" "$tmp/b") || fail "benchrun compare exited $?"
echo "$cmp" | grep -qF "| q4km-cb-1 | Decode TPS | 41.0 | 32.8 | -20.0% (A better) | yes |" || fail "compare row for cb-1: $cmp"
echo "$cmp" | grep -qF "| q4km-combined | Decode TPS | 41.0 | 41.0 | +0.1% | no |" || fail "compare row for combined"

"$B" compare --json "$tmp/a" "$tmp/b" > "$tmp/cmp.json" || fail "compare --json exited $?"
"$B" run - "$tmp/cmp.json" <<'EOF' || fail "compare --json is not the expected JSON"
local f = assert(io.open((...)))
local j = assert(require("cjson").decode(f:read("a")))
f:close()
assert(#j.configs == 7, "7 configurations")
EOF

"$B" report "$tmp/a" "$tmp/b" --out "$tmp/analysis" > /dev/null || fail "combined report exited $?"
grep -q "# benchrun analysis: 2 runs" "$tmp/analysis/report.md" || fail "combined report title"

"$B" compare "$tmp/a" > /dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || fail "compare with one folder exited $rc, expected 2"
"$B" report "$tmp/missing" > /dev/null 2>&1; rc=$?
[ $rc -eq 1 ] || fail "report of a missing folder exited $rc, expected 1"
"$B" report --help | grep -q "usage: benchrun report" || fail "report --help"
# a usage error points at the command's own help (the command is given, not read out of the message)
err=$("$B" compare --bogus 2>&1); rc=$?
[ $rc -eq 2 ] && grep -qF "(try 'benchrun compare --help')" <<<"$err" || fail "compare usage error: $rc $err"
err=$("$B" report 2>&1); rc=$?
[ $rc -eq 2 ] && grep -qF "(try 'benchrun report --help')" <<<"$err" || fail "report usage error: $rc $err"
echo "ok"
