#!/usr/bin/env bash
# A plan split with --shard I/N and joined with `benchrun merge` (issue 18):
# the split keeps cells of one server start together, the merged report
# equals one machine's run of the plan cell for cell, and the bad inputs
# (index out of range, more shards than server groups, two shards in one
# folder, shards of different plans, plan versions, --set or --dry-run, a
# shard killed mid-cell) are refused or reported as the issue says.
set -u
B="$1"
SRC="${BENCHRUN_SOURCE:?BENCHRUN_SOURCE is not set}"
TESTS="${BENCHRUN_TESTS:?BENCHRUN_TESTS is not set}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
cp "$SRC/plans/demo.yaml" "$tmp/demo.yaml"
plan="$tmp/demo.yaml"
# four cells, two server groups: concurrency 1 and 2 share one server start
CONC=(--set 'matrix.concurrency=[1,2]' --set repeat=1)

# --check --shard: the shards' cells, each model's cells in one shard
"$B" "$plan" "${CONC[@]}" --check --shard 1/2 > "$tmp/c1.txt" || fail "--check --shard 1/2 exited $?"
"$B" "$plan" "${CONC[@]}" --check --shard 2/2 > "$tmp/c2.txt" || fail "--check --shard 2/2 exited $?"
grep -q "^shard 1/2: 2 cells in 1 of 2 server groups" "$tmp/c1.txt" || fail "shard line: $(head -1 "$tmp/c1.txt")"
for m in sim-4bit sim-8bit; do
  n1=$(grep -c "/$m " "$tmp/c1.txt"); n2=$(grep -c "/$m " "$tmp/c2.txt")
  [ $((n1 * n2)) -eq 0 ] && [ $((n1 + n2)) -eq 2 ] || fail "$m's cells split over shards ($n1 and $n2)"
done
# deterministic: the same command gives the same cells
"$B" "$plan" "${CONC[@]}" --check --shard 1/2 | cmp -s - "$tmp/c1.txt" || fail "--check --shard 1/2 differs between runs"

# bad input
"$B" "$plan" --shard 4/3 --check > /dev/null 2> "$tmp/e.txt"; rc=$?
[ $rc -eq 2 ] && grep -q "index must be between 1 and 3" "$tmp/e.txt" || fail "--shard 4/3: rc $rc: $(cat "$tmp/e.txt")"
"$B" "$plan" --shard 0/3 --check > /dev/null 2>&1; [ $? -eq 2 ] || fail "--shard 0/3 accepted"
"$B" "$plan" --shard two --check > /dev/null 2>&1; [ $? -eq 2 ] || fail "--shard two accepted"
"$B" "$plan" --run-dir "$tmp/x" > /dev/null 2>&1; [ $? -eq 2 ] || fail "--run-dir without --shard accepted"
"$B" "$plan" --check --shard 3/3 > "$tmp/e.txt" || fail "an empty shard's --check exited $?"
grep -q "an empty shard: the plan has 2 server groups for 3 shards" "$tmp/e.txt" || fail "empty shard not said: $(head -1 "$tmp/e.txt")"

# the demo as 3 shards (one empty) and on one machine
for i in 1 2 3; do
  "$B" "$plan" --shard $i/3 --run-dir "$tmp/run" --quiet > /dev/null 2> "$tmp/err$i.txt" || { cat "$tmp/err$i.txt"; fail "shard $i/3 exited $?"; }
done
"$B" "$plan" --out "$tmp/single" --quiet > "$tmp/single.txt" || fail "the single run exited $?"
single=$(dirname "$(tail -1 "$tmp/single.txt")")
out=$("$B" merge "$tmp/run") || fail "merge exited $?"
[ "$(echo "$out" | tail -1)" = "$tmp/run/report.md" ] || fail "merge printed '$out'"
for f in summary.json summary.csv env.json records.jsonl samples.jsonl charts/tps_by_variant.svg charts/memory.svg; do
  [ -f "$tmp/run/$f" ] || fail "merge wrote no $f"
done
"$B" run "$TESTS/helpers/same_cells.lua" "$single" "$tmp/run" || fail "merged report differs from the single run"
grep -q "| 3/3 | .* | finished | none (an empty shard" "$tmp/run/report.md" || fail "no Shards section naming the empty shard"
# benchrun report on the parent merges again (the same cells)
"$B" report "$tmp/run" > /dev/null || fail "report of the run folder exited $?"
"$B" run "$TESTS/helpers/same_cells.lua" "$single" "$tmp/run" || fail "report DIR differs from the single run"

# shards on two hosts: the report gives each cell's host
cp -r "$tmp/run" "$tmp/hosts"
"$B" run - "$tmp/hosts/shard-2-of-3/env.json" <<'LUA' || fail "rewriting a shard's host"
local path = ...
local results = require("bench.results")
local env = assert(results.json_decode(assert(results.read_file(path))))
env.host.hostname = "node-b"
assert(results.write_atomic(path, results.json_pretty(env)))
LUA
"$B" merge "$tmp/hosts" > /dev/null || fail "merge of two hosts exited $?"
grep -q "The shards ran on 2 hosts" "$tmp/hosts/report.md" || fail "two hosts not said"
grep -q "^| sim-4bit | node-b | 2/3 |$" "$tmp/hosts/report.md" || fail "no host row for sim-4bit"
"$B" run "$TESTS/helpers/same_cells.lua" "$single" "$tmp/hosts" || fail "two hosts' merge differs from the single run"

# two shards writing one folder: the second is refused, the first untouched
"$B" "$plan" --shard 2/3 --run-dir "$tmp/run" --quiet > /dev/null 2> "$tmp/e.txt"; rc=$?
[ $rc -ne 0 ] && grep -q "shard-2-of-3 exists already" "$tmp/e.txt" || fail "a second shard 2/3 in one folder: rc $rc: $(cat "$tmp/e.txt")"

# shards of two plan versions in one folder: refused, naming the difference
sed 's/^repeat: 2$/repeat: 3/' "$plan" > "$tmp/demo2.yaml"
"$B" "$plan" --shard 1/2 --run-dir "$tmp/mixed" --quiet > /dev/null 2>&1 || fail "mixed shard 1 exited $?"
"$B" "$tmp/demo2.yaml" --shard 2/2 --run-dir "$tmp/mixed" --quiet > /dev/null 2>&1 || fail "mixed shard 2 exited $?"
"$B" merge "$tmp/mixed" > /dev/null 2> "$tmp/e.txt"; rc=$?
[ $rc -eq 1 ] && grep -q 'different runs: .*another version of it.*"repeat: 2" vs "repeat: 3"' "$tmp/e.txt" ||
  fail "a merge of two plan versions: rc $rc: $(cat "$tmp/e.txt")"
[ -f "$tmp/mixed/report.md" ] && fail "a refused merge wrote report.md"

# shard 1 as above, shard 2 with one thing changed: each is refused, naming
# that difference and no other
refused() {   # refused WHAT DIR WANTED UNWANTED [ARGS of shard 2...]
  local what=$1 dir=$2 want=$3 unwanted=$4 p2=$plan rc
  shift 4
  if [ "${1:-}" = --plan ]; then p2=$2; shift 2; fi
  "$B" "$plan" --shard 1/2 --run-dir "$dir" --quiet > /dev/null 2>&1 || fail "$what: shard 1 exited $?"
  "$B" "$p2" --shard 2/2 --run-dir "$dir" --quiet "$@" > /dev/null 2>&1 || fail "$what: shard 2 exited $?"
  "$B" merge "$dir" > /dev/null 2> "$tmp/e.txt"; rc=$?
  [ $rc -eq 1 ] && grep -q "refused: shard-1-of-2 and shard-2-of-2 are shards of different runs: .*$want" "$tmp/e.txt" ||
    fail "a merge of $what: rc $rc: $(cat "$tmp/e.txt")"
  grep -q -- "$unwanted" "$tmp/e.txt" && fail "a merge of $what names more than the difference: $(cat "$tmp/e.txt")"
  [ -f "$dir/report.md" ] && fail "a refused merge ($what) wrote report.md"
  return 0
}
sed 's/^name: demo$/name: demo-b/' "$plan" > "$tmp/other-name.yaml"
cmp -s "$plan" "$tmp/other-name.yaml" && fail "the renamed plan is the same file"
refused "two plans (names)" "$tmp/names" "the plan: 'demo' vs 'demo-b'" "--set\|--dry-run" --plan "$tmp/other-name.yaml"
refused "two --set" "$tmp/sets" "--set: none vs repeat=1" "plan's text\|--dry-run" --set repeat=1
refused "a dry run and a real one" "$tmp/dry" "--dry-run: a real run vs a dry run" "plan's text\|--set" --dry-run

# a shard killed mid-cell: merge lists the missing cells, --resume finishes them
SLOW=(--set 'matrix.concurrency=[1,2]' --set repeat=1 --set dry_run.decode_tps=150 --set 'dry_run.models={}')
"$B" "$plan" "${SLOW[@]}" --shard 1/2 --run-dir "$tmp/died" --quiet > /dev/null 2>&1 &
pid=$!
for _ in $(seq 1 300); do
  [ -n "$(ls "$tmp/died/shard-1-of-2/cells" 2>/dev/null)" ] && break
  sleep 0.05
done
kill -9 $pid; wait $pid 2>/dev/null
"$B" "$plan" "${SLOW[@]}" --shard 2/2 --run-dir "$tmp/died" --quiet > /dev/null 2>&1 || fail "shard 2/2 exited $?"
"$B" merge "$tmp/died" > /dev/null 2> "$tmp/e.txt"; rc=$?
[ $rc -eq 1 ] && grep -q "shard 1/2 is unfinished; missing cells: " "$tmp/e.txt" || fail "merge after a kill: rc $rc: $(cat "$tmp/e.txt")"
grep -q "Not every shard finished" "$tmp/died/report.md" || fail "the report does not say a shard is unfinished"
"$B" "$plan" "${SLOW[@]}" --resume "$tmp/died/shard-1-of-2" --quiet > /dev/null 2> "$tmp/e.txt" || { cat "$tmp/e.txt"; fail "--resume of the shard exited $?"; }
"$B" merge "$tmp/died" > /dev/null || fail "merge after --resume exited $?"
n=$(grep -c '^[12]/sim-' "$tmp/died/summary.csv")
[ "$n" -eq 4 ] || fail "merged after --resume: $n cells, expected 4"
# --resume with another shard index is refused
"$B" "$plan" "${SLOW[@]}" --resume "$tmp/died/shard-1-of-2" --shard 2/2 > /dev/null 2> "$tmp/e.txt"; rc=$?
[ $rc -eq 2 ] && grep -q "holds shard 1/2, not 2/2" "$tmp/e.txt" || fail "--resume with another shard: rc $rc: $(cat "$tmp/e.txt")"
"$B" merge "$tmp/nothing" > /dev/null 2>&1; [ $? -eq 1 ] || fail "merge of a missing folder"
echo "ok"
