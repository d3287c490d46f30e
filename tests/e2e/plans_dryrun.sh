#!/usr/bin/env bash
# Every shipped plan runs end to end with --dry-run and leaves a report whose
# numbers match the simulator's configured figures; phase 5's deliberately
# slow configuration (die-1 at half speed) shows up slower; phase 3's BF16
# cell is an OOM result and the plan goes on; SIGINT mid-run then --resume
# gives the same set of finished cells as an uninterrupted run.
set -u
BR=${1:?usage: plans_dryrun.sh BENCHRUN}
SRC=${BENCHRUN_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
fail=0
cd "$SRC"

run_plan() {  # plan -> results folder on stdout
  local plan=$1; shift
  "$BR" "plans/$plan.yaml" --dry-run --quiet --out "$OUT/$plan" "$@" >"$OUT/$plan.out" 2>"$OUT/$plan.err"
  local rc=$?
  if [ $rc -ne 0 ]; then echo "FAILED $plan: exit $rc"; cat "$OUT/$plan.err"; fail=1; return 1; fi
  ls -d "$OUT/$plan"/*/ | head -1
}

# check a Lua expression over the run's summary.json (cells by id in `c`)
check() {  # dir, description, lua-expression
  local dir=$1 what=$2 expr=$3
  if ! "$BR" -e "local d = require('bench.results').load('$dir'); local c = {}
      for _, x in ipairs(d.cells) do c[x.id] = x end
      local function tps(id) local s = c[id].summary.decode_tps; return type(s) == 'table' and s.p50 or s end
      assert($expr, [[$what]])" >/dev/null 2>"$OUT/check.err"; then
    echo "FAILED $what ($dir)"; cat "$OUT/check.err"; fail=1
  else
    echo "ok     $what"
  fi
}

for p in demo phase1-baseline phase2-baseline phase3 phase4 phase5; do
  dir=$(run_plan "$p") || continue
  [ -s "$dir/report.md" ] && echo "ok     $p: report.md" || { echo "FAILED $p: no report.md"; fail=1; }
done

d=$(ls -d "$OUT/demo"/*/ 2>/dev/null | head -1)
# the sim decodes at 1500 tok/s (sim-8bit 900); allow 30%
[ -n "$d" ] && check "$d" "demo: decode tps near the sim's 1500" "math.abs(tps('sim-4bit') - 1500) < 450"
[ -n "$d" ] && check "$d" "demo: the 8-bit variant near 900 and slower" "math.abs(tps('sim-8bit') - 900) < 270 and tps('sim-8bit') < tps('sim-4bit')"

d=$(ls -d "$OUT/phase3"/*/ 2>/dev/null | head -1)
[ -n "$d" ] && check "$d" "phase3: BF16 is an OOM result, the plan went on" "c['BF16/lmstudio'].status == 'oom' and c['mlx-8bit/lmstudio'].status == 'ok'"
[ -n "$d" ] && grep -q "Success criteria" "$OUT/phase3.out" 2>/dev/null || true

d=$(ls -d "$OUT/phase5"/*/ 2>/dev/null | head -1)
[ -n "$d" ] && check "$d" "phase5: die-1 (slow in the rehearsal) is slower than baseline" "tps('metal/Q4_K_M/lmstudio/die-1') < 0.75 * tps('metal/Q4_K_M/lmstudio/baseline')"

# SIGINT in the middle, then --resume: the same cells end up finished
"$BR" plans/phase5.yaml --dry-run --quiet --out "$OUT/int" >/dev/null 2>&1 &
pid=$!
sleep 1.5
kill -INT $pid 2>/dev/null
wait $pid
dir=$(ls -d "$OUT/int"/*/ 2>/dev/null | head -1)
if [ -z "$dir" ]; then echo "FAILED interrupt: no results folder"; fail=1
else
  "$BR" plans/phase5.yaml --dry-run --quiet --resume "$dir" >/dev/null 2>"$OUT/resume.err" || { echo "FAILED resume"; cat "$OUT/resume.err"; fail=1; }
  check "$dir" "interrupt + resume: all 17 cells, each once" "#d.cells == 17"
fi
exit $fail
