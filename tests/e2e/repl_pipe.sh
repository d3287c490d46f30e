#!/usr/bin/env bash
# The REPL with stdin not a terminal: no prompts, expressions print, multi-line
# statements, an empty line, errors do not end the session, sys.isatty is
# false, end of input exits 0.
# Usage: repl_pipe.sh BENCHRUN
set -u
B=${1:?usage: repl_pipe.sh path/to/benchrun}
out=$(printf '%s\n' \
  'return 1 + 1' \
  '' \
  'local t = {' \
  '  x = 1,' \
  '}' \
  'function f(a)' \
  '  return a * 3' \
  'end' \
  'f(5)' \
  'error("bad line")' \
  '"still", "here"' \
  'bench.run(function() clock.sleep(0.01); return "ran" end)' \
  'sys.isatty(0)' \
  | "$B" repl 2>"${TMPDIR:-/tmp}/repl_pipe_err.$$")
rc=$?
err=$(cat "${TMPDIR:-/tmp}/repl_pipe_err.$$"); rm -f "${TMPDIR:-/tmp}/repl_pipe_err.$$"
want=$'2\n15\nstill\there\nran\nfalse'
fails=0
[ "$rc" = 0 ] || { echo "FAILED exit status $rc"; fails=1; }
[ "$out" = "$want" ] || { echo "FAILED stdout:"; echo "$out"; echo "--- expected"; echo "$want"; fails=1; }
grep -qF 'stdin:1: bad line' <<<"$err" || { echo "FAILED stderr: $err"; fails=1; }
[ $fails = 0 ] && echo "all ok"
exit $fails
