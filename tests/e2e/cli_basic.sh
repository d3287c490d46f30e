#!/usr/bin/env bash
# The command line: exit codes (0 ok, 1 failure, 2 usage), --version,
# --help per subcommand, unknown flags, missing files, `run` with arguments,
# -e. Usage: cli_basic.sh BENCHRUN
set -u
B=${1:?usage: cli_basic.sh path/to/benchrun}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0

# check NAME WANT_RC WANT_TEXT CMD...: run CMD, compare the exit status and
# look for WANT_TEXT (fixed string) in stdout+stderr.
check() {
  local name=$1 want_rc=$2 want_text=$3; shift 3
  local out rc
  out=$("$@" 2>&1 </dev/null); rc=$?
  if [ "$rc" != "$want_rc" ]; then
    echo "FAILED $name: exit $rc, expected $want_rc; output:"; echo "$out" | head -20; fails=$((fails + 1)); return
  fi
  if [ -n "$want_text" ] && ! grep -qF -- "$want_text" <<<"$out"; then
    echo "FAILED $name: output lacks '$want_text':"; echo "$out" | head -20; fails=$((fails + 1)); return
  fi
  echo "ok     $name"
}

check "--version"                0 "benchrun 0."            "$B" --version
check "--version names Lua"      0 "with Lua 5.4"           "$B" --version
check "version subcommand"       0 "benchrun "              "$B" version
check "--help"                   0 "usage: benchrun"        "$B" --help
check "-h"                       0 "exit status: 0 success" "$B" -h
check "help run"                 0 "usage: benchrun run"    "$B" help run
check "run --help"               0 "usage: benchrun run"    "$B" run --help
check "-e --help"                0 "usage: benchrun -e"     "$B" -e --help
check "repl --help"              0 "usage: benchrun [repl]" "$B" repl --help
check "help repl"                0 "Ctrl-D exits"           "$B" help repl
check "help sim"                 0 "sim"                    "$B" help sim
check "help plan"                0 "usage: benchrun PLAN.yaml" "$B" help plan
check "help unknown"             2 "no help for 'bogus'"    "$B" help bogus

check "unknown flag"             2 "unknown option '--bogus'"       "$B" --bogus
check "unknown short flag"       2 "unknown option '-z'"            "$B" -z
check "unknown command"          2 "unknown command or plan 'frobnicate'" "$B" frobnicate
check "repl with an argument"    2 "repl: unexpected argument 'x'"  "$B" repl x
check "run without a script"     2 "run: missing SCRIPT.lua"        "$B" run
check "missing script"           2 "run: cannot open script '$tmp/nope.lua'" "$B" run "$tmp/nope.lua"
check "missing plan"             2 "cannot open plan '$tmp/nope.yaml'"     "$B" "$tmp/nope.yaml"
check "-e without code"          2 "-e: missing CODE"               "$B" -e

check "-e expression prints"     0 "2"                      "$B" -e "1 + 1"
check "-e return prints"         0 "hello	3"               "$B" -e "return 'hello', 3"
check "-e statement"             0 ""                       "$B" -e "local x = 1"
check "-e table pretty-printed"  0 "{a = 1, b = {c = 2}}"   "$B" -e "return {a = 1, b = {c = 2}}"
check "-e arguments"             0 "b	2"                   "$B" -e "return arg[2], #arg" a b
check "-e modules are globals"   0 "true"                   "$B" -e "return type(clock.now) == 'function' and yaml ~= nil and json ~= nil and bench ~= nil and http ~= nil and proc ~= nil"
check "-e runtime error"         1 "(command line):1: boom" "$B" -e "error('boom')"
check "-e syntax error"          1 "(command line):1:"      "$B" -e "x = = 1"

cat > "$tmp/args.lua" <<'LUA'
local a, b = ...
print(arg[0]:match("args%.lua$") ~= nil, arg[1], arg[2], #arg, a, b, arg[-1] ~= nil)
LUA
check "run sets arg and ..."     0 "true	one	two	2	one	two	true" "$B" run "$tmp/args.lua" one two
echo 'return 3' > "$tmp/ret3.lua"
check "integer result is the exit status" 3 ""              "$B" run "$tmp/ret3.lua"
echo 'os.exit(5)' > "$tmp/exit5.lua"
check "os.exit"                  5 ""                       "$B" run "$tmp/exit5.lua"
echo 'print("from stdin", ...)' > "$tmp/stdin.lua"
out=$("$B" run - x < "$tmp/stdin.lua" 2>&1); rc=$?
if [ $rc = 0 ] && [ "$out" = "from stdin	x" ]; then echo "ok     run - reads stdin"; else echo "FAILED run -: $rc $out"; fails=$((fails + 1)); fi
printf 'local t = bench.spawn(function() clock.sleep(0.01); return 1 end)\nprint("spawned")\n' > "$tmp/task.lua"
check "tasks finish before exit" 0 "spawned"                "$B" run "$tmp/task.lua"
# a task's error that says "interrupted" is a failure (exit 1), not a cancellation
printf 'bench.spawn(function() error("upload interrupted by peer") end)\n' > "$tmp/words.lua"
check "an error's words are not a cancellation" 1 "upload interrupted by peer" "$B" run "$tmp/words.lua"

[ $fails = 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "all ok"
