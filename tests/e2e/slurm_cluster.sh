#!/usr/bin/env bash
# `benchrun slurm` on a real one-node Slurm cluster (issue 18): the test
# starts munged, slurmctld and slurmd itself (root, no systemd; a temporary
# config with non-default ports, state and spool under a temp folder), submits
# the demo plan and phase 3 in --dry-run as 3-shard arrays with their merge
# jobs, waits for the merges, and checks each merged report equals a run of
# the same plan on this machine cell for cell (tests/helpers/same_cells.lua).
# The daemons are stopped by their pids. Skips (exit 77) where Slurm is not
# installed (tools/install-deps.sh installs slurm-wlm and munge) or cannot start,
# and on any system but Linux, except under CI=true, where it fails instead
# unless BENCHRUN_ALLOW_SKIP names slurm (tests/helpers/ci_skip.sh: GitHub's
# runners are not root; .ci/run on Debian 12 as root runs it).
set -u
B="$1"
SRC="${BENCHRUN_SOURCE:?BENCHRUN_SOURCE is not set}"
TESTS="${BENCHRUN_TESTS:?BENCHRUN_TESTS is not set}"
# in CI (CI=true) Slurm is installed by tools/install-deps.sh: a skip there is a
# failure, unless BENCHRUN_ALLOW_SKIP names slurm
. "$TESTS/helpers/ci_skip.sh"
skip() { ci_skip slurm "$*"; }
fail() { echo "FAIL: $*"; for f in "$tmp"/log/*; do echo "== $f"; tail -n 15 "$f"; done; exit 1; }
[ "$(uname -s)" = Linux ] || skip "Linux only: a one-node cluster of Debian's slurm-wlm and munge (this is $(uname -s))"
[ "$(id -u)" -eq 0 ] || skip "starting slurmctld and slurmd needs root"
for p in munged slurmctld slurmd sbatch squeue sinfo; do
  command -v $p > /dev/null || skip "$p is not installed (tools/install-deps.sh installs slurm-wlm and munge)"
done
tmp=$(mktemp -d)
chmod 755 "$tmp"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2> /dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2> /dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
mkdir -p "$tmp/munge" "$tmp/state" "$tmp/spool" "$tmp/log"
chmod 700 "$tmp/munge"
head -c 1024 /dev/urandom > "$tmp/munge/munge.key"
chmod 400 "$tmp/munge/munge.key"
munged -F -f --socket="$tmp/munge/sock" --key-file="$tmp/munge/munge.key" --pid-file="$tmp/munge/pid" \
  --seed-file="$tmp/munge/seed" --log-file="$tmp/log/munged.log" > "$tmp/log/munged.out" 2>&1 &
pids+=($!)
host=$(hostname -s)
p1=$("$B" -e 'return proc.free_port()'); p2=$("$B" -e 'return proc.free_port()')
[ "$p1" != "$p2" ] || p2=$((p1 + 1))
cat > "$tmp/slurm.conf" <<CONF
ClusterName=benchruntest
SlurmctldHost=$host
SlurmctldPort=$p1
SlurmdPort=$p2
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$tmp/munge/sock
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/log/slurmctld.log
SlurmdLogFile=$tmp/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
NodeName=$host CPUs=$(nproc) RealMemory=1000 State=UNKNOWN
PartitionName=benchq Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$tmp/slurm.conf"
for _ in $(seq 1 50); do [ -S "$tmp/munge/sock" ] && break; sleep 0.1; done
[ -S "$tmp/munge/sock" ] || skip "munged did not start: $(tail -n 3 "$tmp/log/munged.out")"
slurmctld -D -f "$tmp/slurm.conf" > "$tmp/log/slurmctld.out" 2>&1 &
pids+=($!)
slurmd -D -f "$tmp/slurm.conf" > "$tmp/log/slurmd.out" 2>&1 &
pids+=($!)
state=""
for _ in $(seq 1 100); do
  state=$(sinfo -h -o %t 2> /dev/null)
  [ "$state" = idle ] && break
  sleep 0.2
done
[ "$state" = idle ] || skip "the Slurm cluster did not come up (node state '$state'): $(tail -n 3 "$tmp/log/slurmctld.out" "$tmp/log/slurmd.out")"

# bad input first: no --run-dir, no --shards, a bad plan
"$B" slurm "$SRC/plans/demo.yaml" --shards 3 > /dev/null 2> "$tmp/e.txt"; rc=$?
[ $rc -eq 2 ] && grep -q "run-dir DIR is needed" "$tmp/e.txt" || fail "slurm without --run-dir: rc $rc"
"$B" slurm "$SRC/plans/demo.yaml" --run-dir "$tmp/x" > /dev/null 2>&1; [ $? -eq 2 ] || fail "slurm without --shards"
"$B" slurm "$SRC/plans/demo.yaml" --shards 2 --run-dir "$tmp/x" --set repeat=0 > /dev/null 2>&1; [ $? -eq 2 ] || fail "slurm with a bad --set"
[ -e "$tmp/x" ] && fail "a refused slurm command wrote $tmp/x"

# the demo and phase 3 (dry run) as 3-shard arrays, both at once
cd "$tmp" || fail "cd"
"$B" slurm "$SRC/plans/demo.yaml" --shards 3 --run-dir demo --time 5 --partition benchq > "$tmp/s1.txt" 2>&1 || { cat "$tmp/s1.txt"; fail "benchrun slurm demo exited $?"; }
"$B" slurm "$SRC/plans/phase3.yaml" --shards 3 --run-dir p3 --dry-run --sbatch-arg=--cpus-per-task=1 > "$tmp/s2.txt" 2>&1 || { cat "$tmp/s2.txt"; fail "benchrun slurm phase3 exited $?"; }
grep -q "^  follow:  squeue -j " "$tmp/s1.txt" || fail "no way to follow the jobs: $(cat "$tmp/s1.txt")"
grep -q "an empty shard" "$tmp/s1.txt" || fail "the demo's third shard is not said to be empty"
jobs=$(sed -n 's/^jobs: //p' "$tmp/s1.txt" "$tmp/s2.txt" | tr ' \n' ',,' | sed 's/,*$//')
for f in shards.sbatch merge.sbatch; do [ -f "$tmp/demo/slurm/$f" ] || fail "no $f"; done
grep -q -- "--dependency\|afterany" "$tmp/demo/slurm/merge.sbatch" && fail "the dependency belongs on sbatch's command line"
done=""
for _ in $(seq 1 600); do
  [ -z "$(squeue -h -j "$jobs" 2> /dev/null)" ] && { done=1; break; }
  sleep 0.2
done
[ -n "$done" ] || fail "the jobs $jobs did not end in 120 s: $(squeue)"
[ -f "$tmp/demo/report.md" ] || fail "the demo's merge job wrote no report: $(cat "$tmp/demo/slurm/merge.out")"
[ -f "$tmp/p3/report.md" ] || fail "phase 3's merge job wrote no report: $(cat "$tmp/p3/slurm/merge.out")"
for i in 1 2 3; do [ -f "$tmp/p3/slurm/shard-$i-of-3.out" ] || fail "no log of shard $i"; done

# the same plans on this machine
"$B" "$SRC/plans/demo.yaml" --out "$tmp/single" --quiet > "$tmp/d.txt" || fail "single demo exited $?"
"$B" "$SRC/plans/phase3.yaml" --dry-run --out "$tmp/single" --quiet > "$tmp/p.txt" 2> /dev/null || fail "single phase3 exited $?"
"$B" run "$TESTS/helpers/same_cells.lua" "$(dirname "$(tail -1 "$tmp/d.txt")")" "$tmp/demo" || fail "the demo's merged report differs"
"$B" run "$TESTS/helpers/same_cells.lua" "$(dirname "$(tail -1 "$tmp/p.txt")")" "$tmp/p3" || fail "phase 3's merged report differs"
grep -q "| 3/3 | .* | finished | none (an empty shard" "$tmp/demo/report.md" || fail "the demo's report does not name the empty shard"
echo "ok"
