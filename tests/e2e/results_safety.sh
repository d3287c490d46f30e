#!/usr/bin/env bash
# Results are never silently lost or mixed (issue 11, section 5), with real
# benchrun processes: two runs started in the same second get two folders;
# --out=-rf is a folder name; an interrupted --dry-run resumed with the
# printed hint stays a dry run; --resume with another plan, --set or --only
# is refused; a full disk (a small tmpfs) stops the run with a clear message
# and the records written stay valid JSON.
# Usage: results_safety.sh BENCHRUN
set -u
B=${1:?usage: results_safety.sh path/to/benchrun}
B=$(cd "$(dirname "$B")" && pwd)/$(basename "$B")
tmp=$(mktemp -d)
pid=
mnt=
cleanup() {
  [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
  [ -n "$mnt" ] && umount "$mnt" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
fails=0
fail() { echo "FAILED $1"; shift; [ $# -gt 0 ] && printf '%s\n' "$@" | head -30; fails=$((fails + 1)); }
ok() { echo "ok     $1"; }

# A plan whose real server would leave a marker: a dry run never starts it.
cat > "$tmp/fake-server" <<SH
#!/bin/sh
touch "$tmp/REAL-SERVER-STARTED"
exit 1
SH
chmod +x "$tmp/fake-server"
touch "$tmp/model.gguf"
cat > "$tmp/plan.yaml" <<YAML
name: safety
server: {backend: llama-server, binary: $tmp/fake-server, model: $tmp/model.gguf, ready_timeout: 5s}
workload: {prompts: [{name: a, prompt: hello, max_tokens: 8}]}
matrix: {max_tokens: [8, 9, 10]}
dry_run: {load_time: 10ms, decode_tps: 8}
YAML

# --- two runs in the same second: two folders ---
cd "$tmp" || exit 1
for i in 1 2 3; do "$B" plan.yaml --dry-run --quiet --set dry_run.decode_tps=5000 --out same >"$tmp/same$i.out" 2>&1 & done
wait
n=$(ls -d same/safety-* 2>/dev/null | wc -l)
if [ "$n" = 3 ]; then ok "three runs started together get three folders"
else fail "three runs started together get three folders: $n folder(s)" "$(ls same)" "$(cat "$tmp"/same*.out)"; fi

# --- --out=-rf is a folder name, not an option of anything ---
out=$("$B" plan.yaml --dry-run --quiet --set dry_run.decode_tps=5000 --out=-rf 2>&1); rc=$?
if [ $rc = 0 ] && ls -d -- "$tmp"/-rf/safety-*/ >/dev/null 2>&1; then ok "--out=-rf creates a folder named -rf"
else fail "--out=-rf creates a folder named -rf: exit $rc" "$out"; fi

# --- an interrupted --dry-run resumed with the printed hint stays dry ---
"$B" plan.yaml --dry-run --out runs >"$tmp/int.out" 2>&1 &
pid=$!
for _ in $(seq 300); do grep -q '\[2/3\]' "$tmp/int.out" 2>/dev/null && break; sleep 0.1; done
kill -INT "$pid"; wait "$pid"; rc=$?; pid=
hint=$(sed -n 's/.*continue with: benchrun //p' "$tmp/int.out")
dir=$(ls -d runs/safety-* | head -1)
if [ $rc != 130 ] || [ -z "$hint" ]; then
  fail "interrupting a dry run prints a resume hint: exit $rc" "$(cat "$tmp/int.out")"
else
  case "$hint" in *--dry-run*) ok "the resume hint of a dry run says --dry-run";;
                  *) fail "the resume hint of a dry run says --dry-run: $hint";; esac
  # the hint, and the bare --resume too, continue as a dry run
  out=$(eval "\"\$B\" $hint" 2>&1); rc=$?
  if [ $rc = 0 ] && [ ! -e "$tmp/REAL-SERVER-STARTED" ] && grep -q '"dry_run": true' "$dir/env.json"; then
    ok "resuming with the hint stays a dry run"
  else fail "resuming with the hint stays a dry run: exit $rc, real server started: $([ -e "$tmp/REAL-SERVER-STARTED" ] && echo yes || echo no)" "$out"; fi
fi

# interrupt again, then resume without --dry-run: taken from the folder
"$B" plan.yaml --dry-run --out runs2 >"$tmp/int2.out" 2>&1 &
pid=$!
for _ in $(seq 300); do grep -q '\[2/3\]' "$tmp/int2.out" 2>/dev/null && break; sleep 0.1; done
kill -INT "$pid"; wait "$pid"; pid=
dir2=$(ls -d runs2/safety-* | head -1)
out=$("$B" plan.yaml --resume "$dir2" 2>&1); rc=$?
if [ $rc = 0 ] && [ ! -e "$tmp/REAL-SERVER-STARTED" ] && grep -qF "a dry run, as it started" <<<"$out"; then
  ok "--resume without --dry-run continues a dry run as a dry run"
else fail "--resume without --dry-run continues a dry run as a dry run: exit $rc, real server started: $([ -e "$tmp/REAL-SERVER-STARTED" ] && echo yes || echo no)" "$out"; fi

# --- a folder in use: a second benchrun resuming it meanwhile is refused ---
"$B" plan.yaml --dry-run --out runs3 >"$tmp/busy.out" 2>&1 &
pid=$!
for _ in $(seq 300); do grep -q '\[1/3\]' "$tmp/busy.out" 2>/dev/null && break; sleep 0.1; done
dir3=$(ls -d runs3/safety-* | head -1)
out=$("$B" plan.yaml --resume "$dir3" 2>&1); rc=$?
kill -INT "$pid"; wait "$pid"; pid=
if [ $rc = 2 ] && grep -qF "is in use by another benchrun" <<<"$out"; then ok "--resume of a folder a running benchrun writes is refused"
else fail "--resume of a folder a running benchrun writes is refused: exit $rc" "$out"; fi

# --- --resume refuses another plan, other --set values, another --only ---
sed 's/name: safety/name: other/' plan.yaml > other.yaml
out=$("$B" other.yaml --resume "$dir2" 2>&1); rc=$?
if [ $rc = 2 ] && grep -qF "the plan: its text is not the one the run started with" <<<"$out"; then ok "--resume with another plan is refused"
else fail "--resume with another plan is refused: exit $rc" "$out"; fi
out=$("$B" plan.yaml --resume "$dir2" --set repeat=2 2>&1); rc=$?
if [ $rc = 2 ] && grep -qF -- "--set: the run started with none, now --set repeat=2" <<<"$out"; then ok "--resume with other --set values is refused"
else fail "--resume with other --set values is refused: exit $rc" "$out"; fi
out=$("$B" plan.yaml --resume "$dir2" --only 'max_tokens=9' 2>&1); rc=$?
if [ $rc = 2 ] && grep -qF -- "--only: the run started with none, now --only max_tokens=9" <<<"$out"; then ok "--resume with another --only is refused"
else fail "--resume with another --only is refused: exit $rc" "$out"; fi
n=$(grep -c . "$dir2/records.jsonl")
out=$("$B" plan.yaml --resume runs 2>&1); rc=$?
if [ $rc = 2 ] && grep -qF "is not a results folder" <<<"$out"; then ok "--resume of a folder that holds no run is refused"
else fail "--resume of a folder that holds no run is refused: exit $rc" "$out"; fi

# --- a full disk ---
mnt=$tmp/small
mkdir -p "$mnt"
if mount -t tmpfs -o size=200k tmpfs "$mnt" 2>/dev/null; then
  cat > "$tmp/big.yaml" <<YAML
name: full
server: {backend: sim}
workload: {prompts: [{name: a, prompt: "$(printf 'word %.0s' $(seq 200))", max_tokens: 64}]}
requests: 3000
concurrency: 8
dry_run: {load_time: 10ms, decode_tps: 100000, prefill_tps: 1000000}
YAML
  out=$(timeout 120 "$B" big.yaml --out "$mnt" 2>&1); rc=$?
  rec=$(ls "$mnt"/full-*/records.jsonl 2>/dev/null | head -1)
  if [ $rc = 0 ] || [ $rc -ge 124 ]; then fail "a full disk stops the run: exit $rc" "$out"
  elif ! grep -qF "No space left on device; the run stops here" <<<"$out" || grep -qF "stack traceback" <<<"$out"; then
    fail "a full disk stops the run with a clear message (exit $rc)" "$out"
  elif [ -z "$rec" ] || ! python3 - "$rec" <<'PY'
import json, sys
data = open(sys.argv[1], "rb").read()
lines = data.split(b"\n")
whole = lines[:-1]          # the last piece has no newline: a torn line, if any
for i, l in enumerate(whole):
    json.loads(l.decode("utf-8"))
print(len(whole), "whole records")
sys.exit(0 if len(whole) > 0 else 1)
PY
  then fail "a full disk keeps the records written valid" "$out"
  else ok "a full disk stops the run with a clear message; the records written stay valid"; fi
  # with space again, --resume finishes the run: the torn line is gone
  mount -o remount,size=50m "$mnt"
  out=$(timeout 120 "$B" big.yaml --resume "$(dirname "$rec")" 2>&1); rc=$?
  n=$(python3 -c "import json,sys; print(sum(1 for l in open(sys.argv[1], encoding='utf-8') if json.loads(l)))" "$rec" 2>&1)
  if [ $rc = 0 ] && [ "$n" = 3000 ]; then ok "after a full disk, --resume completes the run (3000 valid records)"
  else fail "after a full disk, --resume completes the run: exit $rc, records: $n" "$out"; fi
  # the disk fills at each stage of a small run in turn (create, records,
  # samples, cell files, summary, report, charts): a clear message, exit 1
  printf 'name: t\nserver: {backend: sim}\nworkload: {prompts: [{name: a, prompt: hi, max_tokens: 4}]}\nrequests: 20\ndry_run: {load_time: 10ms, decode_tps: 5000, max_tokens: 4}\n' > small.yaml
  bad=
  for free in 4 8 12 16 20 24 28 32 36 40 44 48 52 56 60; do
    rm -rf "${mnt:?}"/*
    avail=$(df -k --output=avail "$mnt" | tail -1)
    dd if=/dev/zero of="$mnt/fill" bs=1k count=$((avail - free)) 2>/dev/null
    out=$("$B" small.yaml --out "$mnt/r" 2>&1); rc=$?
    if [ $rc = 0 ]; then continue; fi
    if [ $rc != 1 ] || grep -q "stack traceback" <<<"$out" || ! grep -q "No space left on device" <<<"$out"; then
      bad="$bad free=${free}k exit $rc: $(tail -3 <<<"$out")"
    fi
  done
  if [ -z "$bad" ]; then ok "a disk that fills at any stage: a clear message and exit 1, no traceback"
  else fail "a disk that fills at any stage: a clear message and exit 1, no traceback" "$bad"; fi
  umount "$mnt"; mnt=
else
  echo "skip   a full disk: cannot mount a tmpfs here (not root, or no mount namespace)"
fi

[ $fails = 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "all ok"
