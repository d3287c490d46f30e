#!/usr/bin/env bash
# Ctrl-C (SIGINT) interrupts a sleep, a busy Lua loop (also inside a task,
# also inside pcall) and running tasks with "interrupted" and exit status 1;
# SIGTERM stops benchrun with 128+15. A second signal while the first one's
# clean-up hangs: tests/lua/sys_restore_test.lua.
# Usage: cli_signals.sh BENCHRUN
set -u
B=${1:?usage: cli_signals.sh path/to/benchrun}
tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
fails=0

# interrupt NAME SIGNAL WANT_RC WANT_TEXT CODE: run `benchrun -e CODE`, which
# prints "ready" first, send SIGNAL, expect WANT_RC and WANT_TEXT within 30 s.
interrupt() {
  local name=$1 sig=$2 want_rc=$3 want_text=$4 code=$5
  "$B" -e "io.stdout:write('ready\n'); io.stdout:flush(); $code" >"$tmp/out" 2>&1 &
  pid=$!
  for _ in $(seq 200); do grep -q ready "$tmp/out" 2>/dev/null && break; sleep 0.1; done
  sleep 0.2
  kill -"$sig" "$pid"
  local rc=
  for _ in $(seq 300); do
    if ! kill -0 "$pid" 2>/dev/null; then wait "$pid"; rc=$?; break; fi
    sleep 0.1
  done
  if [ -z "$rc" ]; then
    echo "FAILED $name: still running 30 s after SIG$sig"; kill -KILL "$pid"; wait "$pid" 2>/dev/null
    fails=$((fails + 1)); pid=; return
  fi
  pid=
  if [ "$rc" != "$want_rc" ] || ! grep -qF -- "$want_text" "$tmp/out"; then
    echo "FAILED $name: exit $rc (expected $want_rc), output:"; cat "$tmp/out"; fails=$((fails + 1)); return
  fi
  echo "ok     $name"
}

interrupt "SIGINT during clock.sleep"      INT 1 "interrupted" "clock.sleep(100)"
interrupt "SIGINT during a busy Lua loop"  INT 1 "interrupted" "local n = 0; while true do n = n + 1 end"
interrupt "SIGINT stops a busy task"       INT 1 "interrupted" \
  "bench.run(function() local n = 0; while true do n = n + 1 end end)"
interrupt "SIGINT cancels running tasks"   INT 1 "interrupted" \
  "local ts = {}; for i = 1, 10 do ts[i] = bench.spawn(clock.sleep, 100) end; bench.wait(ts)"
interrupt "SIGINT with tasks left at exit" INT 1 "interrupted" \
  "for i = 1, 10 do bench.spawn(function() clock.sleep(100) end) end"
interrupt "SIGINT runs <close> handlers"   INT 1 "closed" \
  "bench.run(function() local c <close> = setmetatable({}, {__close = function() print('closed') end}); clock.sleep(100) end)"
interrupt "SIGTERM stops benchrun"         TERM 143 "stopped by signal 15" "clock.sleep(100)"
# signals always win: code that catches every error still stops
interrupt "SIGINT ends a busy loop inside pcall"    INT 1 "interrupted" \
  "while true do pcall(function() local n = 0; while true do n = n + 1 end end) end"
interrupt "SIGINT ends a loop that retries a wait"  INT 1 "interrupted" \
  "while true do pcall(clock.sleep, 100) end"
interrupt "SIGINT ends a task's loop inside pcall"  INT 1 "interrupted" \
  "bench.run(function() while true do pcall(function() local n = 0; while true do n = n + 1 end end) end end)"
interrupt "SIGTERM ends a busy loop inside pcall"   TERM 143 "stopped by signal 15" \
  "while true do pcall(function() local n = 0; while true do n = n + 1 end end) end"
# the interruption is a value; a top level (bench.xpcall_top) takes it
interrupt "the interruption is a value"             INT 0 "value true true interrupted" \
  "local ok, e = bench.xpcall_top(function() while true do pcall(clock.sleep, 100) end end, nil); \
   io.stdout:write('value ', tostring(bench.is_interrupt(e)), ' ', tostring(rawequal(e, bench.interrupt)), ' ', tostring(e), '\\n')"

[ $fails = 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "all ok"
