#!/usr/bin/env bash
# The REPL in a real pseudo-terminal (tmux): a multi-line function and its
# printed result, Ctrl-C during clock.sleep(100) back to the prompt, Ctrl-C on
# a half-typed line, tab completion of module fields and methods, pretty
# tables, sys.isatty, a task run to its end, history in ~/.benchrun_history, Ctrl-D exits 0.
# Usage: repl_tty.sh BENCHRUN
set -u
B=${1:?usage: repl_tty.sh path/to/benchrun}
command -v tmux >/dev/null || { echo "tmux is not installed"; exit 1; }
tmp=$(mktemp -d)
sock="benchrun-repl-$$"
tmux_() { tmux -L "$sock" "$@"; }
trap 'tmux_ kill-server 2>/dev/null; rm -rf "$tmp"' EXIT
fails=0

screen() { tmux_ capture-pane -p -J -S -1000; }
# wait_for TEXT: until TEXT is on the screen (60 s at most; ASan is slow)
wait_for() {
  for _ in $(seq 600); do
    screen | grep -qF -- "$1" && return 0
    sleep 0.1
  done
  return 1
}
expect() {   # expect NAME TEXT
  if wait_for "$2"; then echo "ok     $1"; else
    echo "FAILED $1: '$2' never appeared; screen:"; screen | tail -30; fails=$((fails + 1)); fi
}
type_line() { tmux_ send-keys -l -- "$1"; tmux_ send-keys Enter; }

tmux_ new-session -d -x 160 -y 50 \
  "env HOME='$tmp' TERM=xterm '$B'; echo \"EXIT:\$?\" > '$tmp/rc'; sleep 60"
expect "banner and prompt" "Ctrl-D exits."

type_line 'function sq(x)'
expect "continuation prompt" ">> "
type_line '  local y = x * x'
type_line '  return "sq=" .. y'
type_line 'end'
type_line 'sq(12)'
expect "multi-line function" "sq=144"

type_line 'return {1, 2, {a = "b"}, n = 3}'
expect "pretty table" '{1, 2, {a = "b"}, n = 3}'

type_line 'return "tty=" .. tostring(sys.isatty(0)) .. "," .. tostring(sys.isatty())'
expect "sys.isatty sees the terminal" "tty=true,true"

type_line 'clock.sleep(100)'
sleep 0.5
tmux_ send-keys C-c
expect "Ctrl-C interrupts the sleep" "interrupted"
type_line 'return "still-" .. "alive"'
expect "the REPL survives Ctrl-C" "still-alive"

type_line 'bench.run(function() while true do end end)'
sleep 0.5
tmux_ send-keys C-c
type_line 'return "busy-" .. "stopped"'
expect "Ctrl-C stops a busy task" "busy-stopped"

type_line 't1 = bench.spawn(clock.sleep, 100); t1:join()'
sleep 0.5
tmux_ send-keys C-c
type_line 'return "task-" .. t1:status()'
expect "Ctrl-C cancels a waiting task" "task-cancelled"

tmux_ send-keys -l -- 'this line is discarded'
# the line editor echoes what it reads: once the text is on the screen the
# REPL is reading the line, and the Ctrl-C meets it there (sent earlier, on
# a loaded machine it could reach the REPL still finishing the last line,
# where a late Ctrl-C is dropped so as not to leak into the next one)
wait_for 'this line is discarded' || true
tmux_ send-keys C-c
type_line 'return "after-" .. "discard"'
expect "Ctrl-C discards a half-typed line" "after-discard"

tmux_ send-keys -l -- 'clock.sleep_u'
tmux_ send-keys Tab
sleep 0.3
type_line ' == clock.sleep_until and "completed-" .. "field" or "no"'
expect "Tab completes a module field" "completed-field"

type_line 'w = clock.stopwatch()'
tmux_ send-keys -l -- 'w:elapsed_n'
tmux_ send-keys Tab
sleep 0.3
type_line '() >= 0 and "completed-" .. "method" or "no"'
expect "Tab completes a method (obj:)" "completed-method"

type_line 't = bench.spawn(function() clock.sleep(0.05); print("task-" .. "finished") end)'
expect "a task runs to its end" "task-finished"
type_line 't:status()'
expect "its status" "done"

type_line 'return getmetatable(probe).__call and "probe-" .. "callable"'
expect "probe is a global" "probe-callable"

type_line 'error("oops-" .. "here")'
expect "errors are reported" "oops-here"

tmux_ send-keys C-d
for _ in $(seq 300); do [ -s "$tmp/rc" ] && break; sleep 0.1; done
rc=$(cat "$tmp/rc" 2>/dev/null)
if [ "$rc" = "EXIT:0" ]; then echo "ok     Ctrl-D exits 0"; else
  echo "FAILED Ctrl-D: '$rc'"; screen | tail -20; fails=$((fails + 1)); fi
if grep -q 'sq(12)' "$tmp/.benchrun_history" 2>/dev/null; then echo "ok     history file"; else
  echo "FAILED history: $(cat "$tmp/.benchrun_history" 2>&1)"; fails=$((fails + 1)); fi

[ $fails = 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "all ok"
