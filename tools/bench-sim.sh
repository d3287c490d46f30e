#!/usr/bin/env bash
# How fast is `benchrun sim` itself? Prints the figures of issue 3's targets:
#   1. events/s to a trivial reader with packing (--decode-tps 0)
#   2. events/s with one write per event (a sweep of timed streams; the
#      capacity is the best rate still sent at ~1 event per write)
#   3. at half that capacity: the share of events sent within 1 ms of schedule
#   4. 10,000 concurrent streaming connections
#   5. CPU used while idle
# usage: tools/bench-sim.sh [BENCHRUN [SIM_READER]]
#   (defaults: build/benchrun, build/tests/sim_reader; build both first:
#    cmake --build build --target benchrun sim_reader)
# env: BENCH_SECONDS (default 3) seconds measured per step.
set -u
B=${1:-build/benchrun}
R=${2:-build/tests/sim_reader}
DUR=${BENCH_SECONDS:-3}
T=$(mktemp -d)
SP=
trap '[ -n "$SP" ] && kill "$SP" 2>/dev/null; rm -rf "$T"' EXIT
for f in "$B" "$R"; do
  [ -x "$f" ] || { echo "bench-sim: $f: not found or not executable (build it first)" >&2; exit 2; }
done

start() {   # start a sim with the given options; sets SP, PORT
  rm -f "$T/port"
  "$B" sim --port 0 --port-file "$T/port" "$@" >"$T/sim.out" 2>&1 &
  SP=$!
  for _ in $(seq 250); do [ -s "$T/port" ] && break; sleep 0.02; done
  PORT=$(cat "$T/port")
}
stop() { kill "$SP" 2>/dev/null; wait "$SP" 2>/dev/null; SP=; }
metrics() { curl -s "http://127.0.0.1:$PORT/metrics" >"$1"; }
m() { awk -v k="$2" '$1 == k { print $2 }' "$1"; }    # m FILE METRIC
cpu_s() {   # CPU seconds used by pid $1 so far
  if [ -r "/proc/$1/stat" ]; then
    awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat"
  else
    ps -o time= -p "$1" | awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; print s }'
  fi
}
rss_mb() {
  if [ -r "/proc/$1/status" ]; then awk '/^VmRSS/ { print $2 / 1024 }' "/proc/$1/status"
  else ps -o rss= -p "$1" | awk '{ print $1 / 1024 }'; fi
}
# run the reader (PORT CONNS MAX_TOKENS SECONDS WARMUP RAMP) with metric snapshots
# after the warm-up and at the end: $T/m0, $T/m1, reader line in $T/r
measure() {
  local conns=$1 warm=$2 ramp=$3
  "$R" "$PORT" "$conns" 1000000000 "$DUR" "$warm" "$ramp" >"$T/r" &
  local rp=$!
  sleep "$(awk -v a="$warm" -v b="$ramp" -v n="$conns" 'BEGIN { print a + b + n / 50000 }')"
  metrics "$T/m0"
  wait "$rp"
  metrics "$T/m1"
}
delta() { echo $(( $(m "$T/m1" "$1") - $(m "$T/m0" "$1") )); }
field() { tr ' ' '\n' <"$T/r" | awk -F= -v k="$1" '$1 == k { print $2 }'; }

echo "benchrun sim benchmark ($(uname -sm), $(getconf _NPROCESSORS_ONLN 2>/dev/null || echo '?') CPUs, load $(uptime | sed 's/.*load average[s]*: //'))"

# 1. packed
start --decode-tps 0 --slots 64
measure 4 0.5 0
ev=$(delta sim_events_total); wr=$(delta sim_writes_total)
printf '1. packed (decode-tps 0, 4 streams):      %9s events/s  %s MB/s  %s events per write\n' \
  "$(field events_per_s)" "$(field MB_per_s)" "$(awk -v e="$ev" -v w="$wr" 'BEGIN { printf "%.0f", e / (w ? w : 1) }')"
stop

# 2. one write per event: streams at 100 tokens/s each, more and more of them
best=0; best_conns=0
for conns in 250 500 1000 1250 1500 1750 2000 2500 3000; do
  start --decode-tps 100 --slots 100000 --batch-slowdown 0
  measure "$conns" 1 0.01
  ev=$(delta sim_events_total); wr=$(delta sim_writes_total)
  rate=$(field events_per_s)
  epw=$(awk -v e="$ev" -v w="$wr" 'BEGIN { printf "%.2f", e / (w ? w : 1) }')
  cpu=$(cpu_s "$SP")
  printf '2. timed, %5d streams x 100/s:  offered %7d  got %7s events/s  %s events per write  (sim CPU %.1f us/event)\n' \
    "$conns" $((conns * 100)) "$rate" "$epw" "$(awk -v c="$cpu" -v e="$(m "$T/m1" sim_events_total)" 'BEGIN { print 1e6 * c / (e ? e : 1) }')"
  stop
  if awk -v x="$epw" 'BEGIN { exit !(x <= 1.05) }' && [ "${rate%.*}" -gt "$best" ]; then
    best=${rate%.*}; best_conns=$conns
  fi
done
printf '   one-write-per-event capacity: %s events/s (%d streams)\n' "$best" "$best_conns"

# 3. lateness at half capacity
half=$(( best_conns / 2 )); [ "$half" -lt 1 ] && half=1
start --decode-tps 100 --slots 100000 --batch-slowdown 0
measure "$half" 1 0.01
within=$(( $(m "$T/m1" 'sim_event_lateness_seconds_bucket{le="0.001"}') - $(m "$T/m0" 'sim_event_lateness_seconds_bucket{le="0.001"}') ))
w250=$(( $(m "$T/m1" 'sim_event_lateness_seconds_bucket{le="0.00025"}') - $(m "$T/m0" 'sim_event_lateness_seconds_bucket{le="0.00025"}') ))
total=$(delta sim_event_lateness_seconds_count)
printf '3. half capacity (%d streams, %s events/s): %s%% of events within 1 ms of schedule, %s%% within 250 us\n' \
  "$half" "$(field events_per_s)" "$(awk -v a="$within" -v t="$total" 'BEGIN { printf "%.2f", 100 * a / t }')" \
  "$(awk -v a="$w250" -v t="$total" 'BEGIN { printf "%.2f", 100 * a / t }')"
stop

# 4. 10,000 connections, each a stream at 2 tokens/s
start --decode-tps 2 --slots 10000 --batch-slowdown 0
measure 10000 1 1
printf '4. 10000 connections: %s streaming, %s events/s (offered 20000), sim RSS %s MB, %s events per write\n' \
  "$(field streaming)" "$(field events_per_s)" "$(rss_mb "$SP")" \
  "$(awk -v e="$(delta sim_events_total)" -v w="$(delta sim_writes_total)" 'BEGIN { printf "%.2f", e / (w ? w : 1) }')"
stop

# 5. idle
start
sleep 0.5
c0=$(cpu_s "$SP")
sleep 5
c1=$(cpu_s "$SP")
printf '5. idle: %s%% of one CPU over 5 s\n' "$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.3f", 100 * (b - a) / 5 }')"
stop
