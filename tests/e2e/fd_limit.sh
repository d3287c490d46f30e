#!/usr/bin/env bash
# The runner raises the open-file limit to what a cell's concurrency needs,
# and when the hard limit forbids it, the cell fails with a message that
# says how to raise it (before: most connects failed and the cell was ok).
# Usage: fd_limit.sh BENCHRUN
set -u
B=${1:?usage: fd_limit.sh path/to/benchrun}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
passes=0

cat > "$tmp/plan.yaml" <<'YAML'
name: fds
server: {backend: sim, args: [--decode-tps, "500", --load-time, 10ms]}
workload:
  prompts:
    - {name: a, prompt: "hello", max_tokens: 4}
concurrency: 160
requests: 160
YAML

hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt 400 ]; then
  echo "ok     (skipped the raise case: the hard limit here is $hard)"
else
  # a soft limit far below the concurrency: benchrun raises it itself
  out=$( (ulimit -Sn 64; timeout 120 "$B" "$tmp/plan.yaml" --quiet --out "$tmp/a") 2>&1 ); rc=$?
  if [ $rc = 0 ] && ! grep -q "failed\|degraded" <<<"$out"; then
    echo "ok     soft limit 64, concurrency 160: raised, every request ok"; passes=$((passes + 1))
  else
    echo "FAILED soft limit 64: exit $rc"; echo "$out" | tail -20; fails=$((fails + 1))
  fi
fi

# a hard limit below what the cell needs: a clear failure, not 100 failed connects
out=$( (ulimit -n 100; timeout 120 "$B" "$tmp/plan.yaml" --quiet --out "$tmp/b") 2>&1 ); rc=$?
if [ $rc = 1 ] && grep -q "concurrency 160 needs about 224 open files, but the limit is 100" <<<"$out"; then
  echo "ok     hard limit 100, concurrency 160: the cell fails and says how to raise it"; passes=$((passes + 1))
else
  echo "FAILED hard limit 100: exit $rc"; echo "$out" | tail -20; fails=$((fails + 1))
fi

echo "$passes passed, $fails failed"
[ $fails = 0 ]
