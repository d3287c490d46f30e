#!/usr/bin/env bash
# Client benchmark (issue 4, "Speed"): bench.http + bench.openai against
# `benchrun sim` on loopback, beside a minimal C reader on the same loop as
# the floor: through load.closed (openai+load, the path of a user's script)
# and through tasks that call the client directly (bench.openai). For each load and each number of concurrent streams it prints
# client CPU µs per token (getrusage), tokens/s, peak RSS and the client's
# ttft/itl timestamp error (p50/p99, ms) against the simulator's own send
# times (the sim_ns field of each event).
#
#   paced:   50 tokens/s per stream, ttft 100 ms, each stream on its own
#            clock from its start (few events per wake-up: how many depends
#            on how close together the streams started, see docs/http.md)
#   steps:   the same rates on shared decode steps (sim --decode-steps): the
#            streams' tokens leave together each step, as from a batching
#            server, so the reader and the client see the same arrivals
#   unpaced: as fast as the simulator can write (events packed many per
#            read: this measures parsing alone)
#   ttft:    TTFT as a user reads it against the server's true TTFT (the
#            simulator says when each request arrived and its first token
#            left): the error split into its send and receive sides, for
#            new connections and kept ones, through bench.http and
#            load.closed, with and without a 100 µs on_record
#            (tests/bench/ttft_bench.lua)
#   memory:  not in the default LOADS: the client's resident memory over an
#            open loop at 200 requests/s for SOAK_S seconds (default 1800,
#            30 minutes), first minute vs end, then the peak of 1,024 paced
#            streams through load.closed (tests/bench/memory_bench.lua)
#
#   tools/bench-client.sh [BUILD_DIR]     (default build/; needs the targets
#                                          benchrun and bench_client_reader)
# Environment: LEVELS="1 64 256 1024", TOKENS=256, LOADS="paced steps unpaced ttft",
# BIG=4096 (an extra unpaced run with that many streams; 0 skips it),
# REPEAT=3 (runs of each level, the reader and the client in turn: the table
# shows the median and the range, since one run on a shared VM can be off by
# 2x when few streams make the CPU figure small), CLIENTS="load http" (the
# client's paths, see tests/bench/client_bench.lua), TTFT_LEVELS (default:
# LEVELS) and TTFT_REPEAT=1 (runs of tests/bench/ttft_bench.lua per level;
# the table then adds each row's worst p99 over the runs).
# Not a test: figures vary with the machine and what else runs on it.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
bin=$build/benchrun
reader=$build/tests/bench_client_reader
levels=${LEVELS:-"1 64 256 1024"}
tokens=${TOKENS:-256}
loads=${LOADS:-"paced steps unpaced ttft"}
big=${BIG:-4096}
repeat=${REPEAT:-3}
clients=${CLIENTS:-"load http"}
# The simulator on one CPU, the client on another, where taskset exists:
# with one stream the CPU per token is mostly the cost of a wake-up, and
# that doubles or halves with where the scheduler happens to put the two
# processes (same CPU or not) from one run to the next. PIN=0 leaves it.
pin_sim=() pin_client=()
if [ "${PIN:-1}" = 1 ] && command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  pin_sim=(taskset -c 1) pin_client=(taskset -c 0)
fi
for f in "$bin" "$reader"; do
  [ -x "$f" ] || { echo "bench-client: $f is missing (cmake --build $build --target benchrun bench_client_reader)" >&2; exit 2; }
done
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

tmp=$(mktemp -d)
sim_pid=
cleanup() { [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

start_sim() {
  rm -f "$tmp/port"
  "${pin_sim[@]}" "$bin" sim --host 0.0.0.0 --port 0 --port-file "$tmp/port" --slots 100000 --batch-slowdown 0 "$@" \
    >"$tmp/sim.log" 2>&1 &
  sim_pid=$!
  for _ in $(seq 500); do [ -s "$tmp/port" ] && break; sleep 0.01; done
  [ -s "$tmp/port" ] || { echo "bench-client: the simulator did not start:" >&2; cat "$tmp/sim.log" >&2; exit 1; }
  port=$(cat "$tmp/port")
}

stop_sim() { kill "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true; sim_pid=; }

out=$tmp/results.jsonl
run_level() {   # mode streams
  local mode=$1 n=$2 rounds=1
  # unpaced runs are short: repeat them up to ~256k tokens for getrusage's resolution
  [ "$mode" = unpaced ] && rounds=$(( (262144 + n * tokens - 1) / (n * tokens) ))
  for _ in $(seq "$repeat"); do
    "${pin_client[@]}" "$reader" "$port" "$n" "$tokens" "$rounds" | sed "s/^{/{\"mode\":\"$mode\",/" | tee -a "$out" >&2
    for path in $clients; do
      "${pin_client[@]}" "$bin" run tests/bench/client_bench.lua "http://127.0.0.1:$port" "$n" "$tokens" "$rounds" "$path" \
        | sed "s/^{/{\"mode\":\"$mode\",/" | tee -a "$out" >&2
    done
  done
}

echo "bench-client: $(nproc 2>/dev/null || sysctl -n hw.ncpu) cpus, $(uname -sm), $tokens tokens per stream${pin_sim:+, simulator on cpu 1, client on cpu 0}" >&2
ttft_out=$tmp/ttft.jsonl
for mode in $loads; do
  if [ "$mode" = memory ]; then
    start_sim --decode-tps 50 --prefill-tps 10
    "${pin_client[@]}" "$bin" run tests/bench/memory_bench.lua "http://127.0.0.1:$port" 200 "${SOAK_S:-1800}" 1024 \
      | tee -a "$tmp/memory.jsonl" >&2
    stop_sim
    continue
  fi
  if [ "$mode" = ttft ]; then
    # 100 ms true TTFT, 50 tok/s streams, as issue 12 measured them
    start_sim --decode-tps 50 --prefill-tps 10
    for n in ${TTFT_LEVELS:-$levels}; do
      for _ in $(seq "${TTFT_REPEAT:-1}"); do
        "${pin_client[@]}" "$bin" run tests/bench/ttft_bench.lua "$port" "$n" 16 | tee -a "$ttft_out" >&2
      done
    done
    stop_sim
    continue
  fi
  case $mode in
    # the simulator counts the prompt "hi" as 1 token: 10 tokens/s of prefill is a 100 ms ttft
    paced) start_sim --decode-tps 50 --prefill-tps 10 ;;
    steps) start_sim --decode-tps 50 --prefill-tps 10 --decode-steps ;;
    unpaced) start_sim --decode-tps 0 --prefill-tps 1000000000 ;;
    *) echo "bench-client: unknown load $mode" >&2; exit 2 ;;
  esac
  for n in $levels; do run_level "$mode" "$n"; done
  if [ "$mode" = unpaced ] && [ "$big" != 0 ]; then run_level "$mode" "$big"; fi
  stop_sim
done
echo
[ -s "$out" ] && "$bin" run tests/bench/client_table.lua "$out"
if [ -s "$tmp/memory.jsonl" ]; then
  echo
  "$bin" -e '
    for l in io.lines(arg[1]) do
      local r = json.decode(l)
      if r.test == "open-loop soak" then
        print(string.format("open loop, %g req/s for %g s (%d requests): RSS %.1f MB at minute 1, %.1f MB at the end (%+.1f%%)",
          r.rate, r.seconds, r.requests, r.rss_first_mb, r.rss_last_mb, r.change_pct))
      else
        print(string.format("load.closed, %d paced streams at once: peak RSS %.1f MB", r.streams, r.rss_peak_mb))
      end
    end' "$tmp/memory.jsonl"
fi
if [ -s "$ttft_out" ]; then
  echo
  echo "TTFT error (benchrun's TTFT - the server's true TTFT), ms: p50 / p99 (send side, receive side; from the call)"
  "$bin" -e '
    print(string.format("%-12s %-5s %-5s %6s  %-17s %-17s %-17s %-17s", "path", "wave", "slow", "starts",
                        "error", "send side", "receive side", "from the call"))
    for l in io.lines(arg[1]) do
      local r = json.decode(l)
      local function pp(a, b) return string.format("%7.2f / %7.2f", r[a], r[b]) end
      print(string.format("%-12s %-5s %-5s %6d  %s %s %s %s", r.path, r.wave, r.slow_on_record and "yes" or "no",
        r.streams, pp("err_p50_ms", "err_p99_ms"), pp("send_p50_ms", "send_p99_ms"),
        pp("recv_p50_ms", "recv_p99_ms"), pp("call_err_p50_ms", "call_err_p99_ms")))
    end
    -- with TTFT_REPEAT > 1: each case'"'"'s worst p99 over its runs
    local worst, order = {}, {}
    for l in io.lines(arg[1]) do
      local r = json.decode(l)
      local k = string.format("%-12s %-5s %-5s %6d", r.path, r.wave, r.slow_on_record and "yes" or "no", r.streams)
      if not worst[k] then worst[k] = {runs = 0, err = 0, recv = 0, send = 0} order[#order + 1] = k end
      local w = worst[k]
      w.runs, w.err = w.runs + 1, math.max(w.err, r.err_p99_ms)
      w.recv, w.send = math.max(w.recv, r.recv_p99_ms), math.max(w.send, r.send_p99_ms)
    end
    if worst[order[1]].runs > 1 then
      print("\nworst p99 over the runs, ms")
      print(string.format("%-12s %-5s %-5s %6s  %4s %8s %8s %8s", "path", "wave", "slow", "starts", "runs", "error", "send", "receive"))
      for _, k in ipairs(order) do
        local w = worst[k]
        print(string.format("%s  %4d %8.2f %8.2f %8.2f", k, w.runs, w.err, w.send, w.recv))
      end
    end' "$ttft_out"
fi
