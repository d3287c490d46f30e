#!/usr/bin/env bash
# The run history end to end, with real runs of the demo plan on the
# simulator: each finished run is recorded; `benchrun history` lists and
# filters them; `benchrun compare --baseline` finds a planted regression (the
# second run's simulator decodes at 600 tok/s instead of 1500) and exits 3,
# and 0 where there is none. Two processes write at once; a corrupt database
# is set aside and the run still recorded; a database on a read-only path is
# a warning and the run's results are kept; --no-history, --history PATH and
# XDG_DATA_HOME choose where (or whether) a run is recorded.
set -u
B="$1"
SRC="${BENCHRUN_SOURCE:?BENCHRUN_SOURCE is not set}"
tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
export BENCHRUN_HISTORY="$tmp/h/history.db"
unset XDG_DATA_HOME

run_demo() {   # run_demo OUTNAME [options...] -> the results folder on stdout
  local name=$1; shift
  "$B" "$SRC/plans/demo.yaml" --out "$tmp/$name" --quiet "$@" > "$tmp/$name.out" 2> "$tmp/$name.err" ||
    { cat "$tmp/$name.err"; fail "demo plan ($name) exited $?"; }
  dirname "$(tail -1 "$tmp/$name.out")"
}

# --- two runs, the second with a slower simulator: recorded as #1 and #2
dir_a=$(run_demo a)
dir_b=$(run_demo b --set dry_run.decode_tps=600)
[ -f "$BENCHRUN_HISTORY" ] || fail "no history database at $BENCHRUN_HISTORY"
"$B" history > "$tmp/list.txt" || fail "history exited $?"
grep -q "^#2 .*demo .*$dir_b" "$tmp/list.txt" || { cat "$tmp/list.txt"; fail "run #2 not listed first with its folder"; }
grep -q "^#1 .*demo .*$dir_a" "$tmp/list.txt" || { cat "$tmp/list.txt"; fail "run #1 not listed"; }
"$B" history --json --limit 1 > "$tmp/list.json" || fail "history --json exited $?"
"$B" run - "$tmp/list.json" "$dir_b" <<'EOF' || fail "history --json"
local path, dir = ...
local rows = require("bench.results").json_decode(require("bench.util").read_file(path))
assert(#rows == 1, "--limit 1: one row, got " .. #rows)
local r = rows[1]
assert(r.id == 2 and r.plan == "demo" and r.dir == dir, "run #2's row: " .. tostring(r.dir))
assert(r.cells == 2 and r.cells_ok == 2 and r.status == "ok", "cells")
assert(type(r.host) == "string" and r.host ~= "", "host")
assert(tostring(r.servers):find("benchrun sim", 1, true), "server versions: " .. tostring(r.servers))
assert(r.best_decode_tps > 800 and r.best_decode_tps < 1000, "best decode (sim-8bit at 900): " .. r.best_decode_tps)
EOF
"$B" history 1 > "$tmp/show.txt" || fail "history 1 exited $?"
grep -q "sim-4bit" "$tmp/show.txt" && grep -q "sim-8bit" "$tmp/show.txt" || { cat "$tmp/show.txt"; fail "history 1 shows the configurations"; }
[ "$("$B" history --plan nosuch)" = "no recorded run matches ($BENCHRUN_HISTORY)" ] || fail "--plan filters"
[ "$("$B" history --plan demo --host "$(hostname)" --since 1d --json | grep -c '"id"')" = 2 ] || fail "--plan/--host/--since keep both"
[ "$("$B" history --since 2999-01-01 --json)" = "[]" ] || fail "--since in the future keeps none"

# --- compare with the recorded baseline: the planted regression
"$B" compare --baseline last > "$tmp/cmp.txt" 2> "$tmp/cmp.err"
rc=$?
[ $rc = 3 ] || { cat "$tmp/cmp.txt" "$tmp/cmp.err"; fail "compare --baseline last: exit $rc, expected 3 (a regression)"; }
grep -q "REGRESSION against run #1" "$tmp/cmp.txt" || fail "the regression is named"
grep -q "sim-4bit: Decode TPS" "$tmp/cmp.txt" || { cat "$tmp/cmp.txt"; fail "sim-4bit's decode TPS regressed"; }
grep -q "regression.* against run #1" "$tmp/cmp.err" || fail "stderr says so"
"$B" compare "$dir_b" --baseline last --json > "$tmp/cmp.json" 2> /dev/null
[ $? = 3 ] || fail "a folder against the last other run: exit 3"
"$B" run - "$tmp/cmp.json" <<'EOF' || fail "compare --json"
local j = require("bench.results").json_decode(require("bench.util").read_file((...)))
assert(j.baseline_run == 1 and j.run == nil, "the folder's baseline is #1")
local found
for _, r in ipairs(j.regressions) do
  if r.config == "sim-4bit" and r.key == "decode_tps" then found = r end
  assert(r.config ~= "sim-8bit" or r.key ~= "decode_tps", "sim-8bit's decode rate did not change")
end
assert(found and found.delta_pct < -40 and found.delta_pct > -70, "1500 -> 600 tok/s: " .. tostring(found and found.delta_pct))
EOF
# a run against its own record: the stored figures are the folder's, no change
"$B" compare "$dir_a" --baseline 1 > "$tmp/same.txt" 2>&1 || { cat "$tmp/same.txt"; fail "run A vs its own record: exit $?"; }
grep -q "No regression" "$tmp/same.txt" || fail "no regression against itself"
"$B" compare --baseline 1 --threshold 99999 > /dev/null 2>&1 || fail "a threshold above every change: exit $?"
"$B" compare --baseline 99 > /dev/null 2> "$tmp/e.txt"; [ $? = 1 ] || fail "unknown baseline: exit 1"
grep -q "baseline 99: no run #99" "$tmp/e.txt" || { cat "$tmp/e.txt"; fail "unknown baseline named"; }
"$B" compare --baseline 2 2 > /dev/null 2> "$tmp/e.txt"; [ $? = 1 ] || fail "run vs itself: exit 1"
grep -q "the baseline is the run itself" "$tmp/e.txt" || fail "run vs itself named"
"$B" compare --baseline yesterday > /dev/null 2> "$tmp/e.txt"; [ $? = 2 ] || fail "bad --baseline: usage"
grep -q "expects 'last' or a run ID, got 'yesterday'" "$tmp/e.txt" || fail "bad --baseline named"
"$B" compare --baseline last --threshold much > /dev/null 2> "$tmp/e.txt"; [ $? = 2 ] || fail "bad --threshold: usage"
"$B" history --limit -3 > /dev/null 2> "$tmp/e.txt"; [ $? = 2 ] || fail "bad --limit: usage"
"$B" history --since lately > /dev/null 2> "$tmp/e.txt"; [ $? = 2 ] || fail "bad --since: usage"
grep -q "got 'lately'" "$tmp/e.txt" || fail "bad --since named"
BENCHRUN_HISTORY="$tmp/none.db" "$B" history > /dev/null 2> "$tmp/e.txt"; [ $? = 1 ] || fail "no database: exit 1"
grep -q "no run has been recorded there yet" "$tmp/e.txt" || fail "no database: said"
[ ! -e "$tmp/none.db" ] || fail "listing a missing history creates nothing"

# --- two processes writing at once: every record lands (WAL, busy timeout)
cat > "$tmp/writer.lua" <<'EOF'
local dir, n = ...
local history = require("bench.history")
for i = 1, tonumber(n) do
  local id, why = history.record(dir, {})
  if not id then io.stderr:write("record ", i, ": ", tostring(why), "\n") os.exit(1) end
end
EOF
"$B" run "$tmp/writer.lua" "$dir_a" 15 2> "$tmp/w1.err" & p1=$!
"$B" run "$tmp/writer.lua" "$dir_b" 15 2> "$tmp/w2.err" & p2=$!
wait $p1 || { cat "$tmp/w1.err"; fail "writer 1 failed"; }
wait $p2 || { cat "$tmp/w2.err"; fail "writer 2 failed"; }
[ "$("$B" history --limit 0 --json | grep -c '"id"')" = 32 ] || fail "2 runs + 2 × 15 records"
# a writer holding the lock for a while: a finishing run waits for it, then records
"$B" -e 'local h = require("bench.db").open(os.getenv("BENCHRUN_HISTORY"))
         assert(h:exec("BEGIN IMMEDIATE")) require("bench.clock").sleep(1.5) assert(h:exec("COMMIT"))' &
holder=$!
sleep 0.3
run_demo c > /dev/null
wait $holder || fail "the lock holder failed"
grep -q "not recorded" "$tmp/c.err" && { cat "$tmp/c.err"; fail "the run gave up on a held lock"; }
[ "$("$B" history --limit 0 --json | grep -c '"id"')" = 33 ] || fail "the run waited and was recorded"

# --- a corrupt database is set aside; the run goes on and is recorded afresh
head -c 20000 /dev/urandom > "$BENCHRUN_HISTORY"
rm -f "$BENCHRUN_HISTORY-wal" "$BENCHRUN_HISTORY-shm"
cp "$BENCHRUN_HISTORY" "$tmp/garbage"
dir_d=$(run_demo d)
[ -f "$dir_d/report.md" ] || fail "the run with a corrupt history wrote its report"
grep -q "history: warning: .*history.db was corrupt (file is not a database); set aside as .*history.db.corrupt-" "$tmp/d.err" ||
  { cat "$tmp/d.err"; fail "the corrupt database is reported"; }
aside=$(ls "$tmp"/h/history.db.corrupt-* 2>/dev/null | head -1)
[ -n "$aside" ] && cmp -s "$aside" "$tmp/garbage" || fail "the garbage is kept aside, unchanged"
"$B" history --json > "$tmp/after.json" || fail "history after the set-aside"
[ "$(grep -c '"id"' "$tmp/after.json")" = 1 ] && grep -q "\"dir\": \"$dir_d\"" "$tmp/after.json" ||
  { cat "$tmp/after.json"; fail "a fresh history holds the new run"; }

# --- where: --no-history, --history PATH, XDG_DATA_HOME
run_demo e --no-history > /dev/null
[ "$("$B" history --limit 0 --json | grep -c '"id"')" = 1 ] || fail "--no-history recorded nothing"
run_demo f --history "$tmp/flag/h.db" > /dev/null
[ "$("$B" history --history "$tmp/flag/h.db" --json | grep -c '"id"')" = 1 ] || fail "--history PATH"
# a dry run's baseline is an earlier dry run, never a real run's figures
run_demo dry --dry-run --history "$tmp/flag/h.db" > /dev/null
"$B" history --history "$tmp/flag/h.db" | grep -q "^#2 .*demo (dry)" || fail "the dry run is listed as one"
"$B" compare --baseline last --history "$tmp/flag/h.db" > /dev/null 2> "$tmp/e.txt"; [ $? = 1 ] || fail "dry vs real: exit 1"
grep -q "no earlier dry run of plan 'demo' is recorded" "$tmp/e.txt" || { cat "$tmp/e.txt"; fail "dry vs real: said"; }
( unset BENCHRUN_HISTORY; export XDG_DATA_HOME="$tmp/xdg"; run_demo g > /dev/null )
[ -f "$tmp/xdg/benchrun/history.db" ] || fail "XDG_DATA_HOME/benchrun/history.db"
BENCHRUN_HISTORY=off run_demo o > /dev/null
[ ! -e "$tmp/off" ] && ! grep -q history "$tmp/o.err" || fail "BENCHRUN_HISTORY=off"

# --- a read-only path: a clear warning, exit 0, the results kept. Root
# writes anywhere, so as root the run is made as nobody.
mkdir -p "$tmp/ro" "$tmp/rw"
chmod 555 "$tmp/ro"
chmod 777 "$tmp/rw"
chmod 755 "$tmp"
as=()
if [ "$(id -u)" = 0 ]; then
  command -v setpriv > /dev/null || { echo "SKIP read-only case: no setpriv to drop root"; echo ok; exit 0; }
  as=(setpriv --reuid=65534 --regid=65534 --clear-groups env HOME="$tmp/rw")
fi
"${as[@]}" "$B" "$SRC/plans/demo.yaml" --out "$tmp/rw/out" --quiet --history "$tmp/ro/sub/history.db" \
  > "$tmp/rw/ro.out" 2> "$tmp/rw/ro.err" || { cat "$tmp/rw/ro.err"; fail "a read-only history failed the run"; }
grep -q "history: warning: this run was not recorded: cannot open $tmp/ro/sub/history.db" "$tmp/rw/ro.err" ||
  { cat "$tmp/rw/ro.err"; fail "the read-only path is named"; }
grep -q "its results are kept in $tmp/rw/out/demo-" "$tmp/rw/ro.err" || fail "the results folder is named"
[ -f "$(tail -1 "$tmp/rw/ro.out")" ] || fail "the report is kept"
echo ok
