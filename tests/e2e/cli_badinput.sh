#!/usr/bin/env bash
# Bad input ends in one clear message and a non-zero exit, never a crash or
# a hang: YAML syntax errors, a plan that is not a mapping, Lua syntax and
# runtime errors, a missing script, non-UTF-8 files, 10,000-level nesting,
# recursive aliases, billion laughs, a 100 MB YAML file, deadlocks and
# failing tasks. Usage: cli_badinput.sh BENCHRUN
set -u
B=${1:?usage: cli_badinput.sh path/to/benchrun}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0

# check NAME WANT_RC WANT_TEXT CMD...: exit status WANT_RC ("nonzero" for any
# failure that is not a signal) and WANT_TEXT in the output; 60 s at most.
check() {
  local name=$1 want_rc=$2 want_text=$3; shift 3
  local out rc
  out=$(timeout 120 "$@" 2>&1 </dev/null); rc=$?
  if [ $rc = 124 ]; then echo "FAILED $name: hung"; fails=$((fails + 1)); return; fi
  if [ $rc -ge 128 ]; then echo "FAILED $name: died with signal $((rc - 128))"; echo "$out" | tail -20; fails=$((fails + 1)); return; fi
  if { [ "$want_rc" = nonzero ] && [ $rc = 0 ]; } || { [ "$want_rc" != nonzero ] && [ $rc != "$want_rc" ]; }; then
    echo "FAILED $name: exit $rc, expected $want_rc"; echo "$out" | head -20; fails=$((fails + 1)); return
  fi
  if ! grep -qF -- "$want_text" <<<"$out"; then
    echo "FAILED $name: output lacks '$want_text':"; echo "$out" | head -20; fails=$((fails + 1)); return
  fi
  if grep -qE 'AddressSanitizer|runtime error:|Segmentation' <<<"$out"; then
    echo "FAILED $name: sanitizer report"; echo "$out" | head -30; fails=$((fails + 1)); return
  fi
  echo "ok     $name"
}

# yaml.load_file from a script, failing with the decoder's message
LOAD=("$B" -e "local v, err = yaml.load_file(arg[1]); if not v then io.stderr:write(err, '\n'); os.exit(1) end")

# --- plans (the plan loader turns decoder errors into usage errors) ---
printf 'name: x\nserver: [1, 2\n' > "$tmp/syntax.yaml"
check "plan with a YAML syntax error" 2 "$tmp/syntax.yaml:3:1: did not find expected ',' or ']'" "$B" "$tmp/syntax.yaml"
printf -- '- just\n- a list\n' > "$tmp/list.yaml"
check "plan that is not a mapping"    2 "$tmp/list.yaml:1:1:" "$B" "$tmp/list.yaml"
printf 'plain text, not a mapping\n' > "$tmp/scalar.yaml"
check "plan that is a scalar"         2 "$tmp/scalar.yaml:" "$B" "$tmp/scalar.yaml"
printf 'name: caf\xe9\n' > "$tmp/latin1.yaml"
check "plan that is not UTF-8"        2 "expected UTF-8 text" "$B" "$tmp/latin1.yaml"
printf 'a: &a\n  b: *a\n' > "$tmp/recursive.yaml"
check "plan with a recursive alias"   2 "recursive alias *a" "$B" "$tmp/recursive.yaml"

# --- --check refuses what the run would die on (issue 11, section 6) ---
base='name: t
server: {backend: sim}
workload: {prompts: [{name: a, prompt: hi, max_tokens: 4}]}
dry_run: {load_time: 10ms, decode_tps: 5000, max_tokens: 4}
'
checkplan() {   # checkplan NAME EXTRA-YAML WANT_TEXT
  printf '%s%s\n' "$base" "$2" > "$tmp/c.yaml"
  check "--check: $1" 2 "$3" "$B" "$tmp/c.yaml" --check
}
checkplan "duration: 0"            "cells: [{duration: 0}]"     "$tmp/c.yaml:5:20: cells[1].duration: expected a duration greater than 0"
checkplan "sampling.memory: 0"     "sampling: {memory: 0}"      "$tmp/c.yaml:5:20: sampling.memory: expected a duration of at least 1ms"
checkplan "a sysctl name that is a path" "sysctl: {../../x: 1}" "$tmp/c.yaml:5:10: sysctl.../../x: expected a sysctl name"
checkplan "a script outside scripts/" "script: ../../../etc/passwd" "$tmp/c.yaml:5:9: script: expected a Lua script under scripts/"
checkplan "repeat: 1e9"            "repeat: 1e9"                "$tmp/c.yaml:5:9: repeat: expected a positive integer (at most 10000), got 1000000000"
checkplan "concurrency: 1e9"       "concurrency: 1e9"           "$tmp/c.yaml:5:14: concurrency: expected a positive integer (at most 100000)"
checkplan "rate: .nan"             "cells: [{rate: .nan}]"      "cells[1].rate: expected a number >= 0.001, got nan (not a finite number)"
: > "$tmp/empty.jsonl"
printf 'name: t\nserver: {backend: sim}\nworkload: {file: empty.jsonl}\n' > "$tmp/c.yaml"
check "--check: an empty JSONL workload" 2 "workload.file: $tmp/empty.jsonl: no prompts in the file" "$B" "$tmp/c.yaml" --check
printf '{"prompt": "hi"}\n{"prompt": \n' > "$tmp/empty.jsonl"
check "--check: a broken JSONL workload" 2 "workload.file: $tmp/empty.jsonl:2: expected a JSON value" "$B" "$tmp/c.yaml" --check
python3 - "$tmp/bomb.yaml" <<'PY'
import sys
big = "x" * 36000
open(sys.argv[1], "w").write("name: t\nserver: {backend: sim}\nparams:\n  a: &a \"" + big + "\"\n"
  "  b: &b [" + ", ".join(["*a"] * 10) + "]\n  c: &c [" + ", ".join(["*b"] * 10) + "]\n"
  "  d: [" + ", ".join(["*c"] * 10) + "]\n")
PY
check "--check: aliases that multiply a 36 KB plan" 2 "the plan expands to more than 8388608 bytes" "$B" "$tmp/bomb.yaml" --check
check "a run: aliases that multiply a 36 KB plan" 2 "the plan expands to more than 8388608 bytes" "$B" "$tmp/bomb.yaml" --dry-run --out "$tmp/out"
[ -e "$tmp/out" ] && { echo "FAILED the alias bomb wrote results"; fails=$((fails + 1)); }

# --- YAML files from scripts ---
python3 - "$tmp" <<'PY'
import sys
d = sys.argv[1]
open(d + "/deep_flow.yaml", "w").write("[" * 10000 + "]" * 10000)
open(d + "/deep_block.yaml", "w").write("".join("  " * i + "a:\n" for i in range(10000)) + "  " * 10000 + "x\n")
lines = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
for i in range(1, 10):
    lines.append("l%d: &l%d [%s]" % (i, i, ", ".join(["*l%d" % (i - 1)] * 10)))
open(d + "/laughs.yaml", "w").write("\n".join(lines) + "\n")
open(d + "/binary.yaml", "wb").write(bytes(range(256)) * 4)
PY
check "10,000 nested flow sequences"  1 "$tmp/deep_flow.yaml:1:1001: nesting deeper than 1000 levels" "${LOAD[@]}" "$tmp/deep_flow.yaml"
check "10,000 nested block mappings"  1 "nesting deeper than 1000 levels" "${LOAD[@]}" "$tmp/deep_block.yaml"
check "10,000 nested levels as a plan" 2 "nesting deeper than 1000 levels" "$B" "$tmp/deep_flow.yaml"
check "billion laughs"                1 "aliases expand to more than 1000000 nodes" "${LOAD[@]}" "$tmp/laughs.yaml"
check "binary file"                   1 "$tmp/binary.yaml:1:1:" "${LOAD[@]}" "$tmp/binary.yaml"
check "missing YAML file"             1 "$tmp/none.yaml: No such file or directory" "${LOAD[@]}" "$tmp/none.yaml"
check "YAML file that is a folder"    1 "Is a directory" "${LOAD[@]}" "$tmp"

if [ "${BENCHRUN_SANITIZED:-0}" != 1 ]; then
  python3 - "$tmp/big.yaml" <<'PY'
import sys
item = "- {name: request, prompt: 'some words of a prompt', max_tokens: 500, tags: [a, b]}\n"
with open(sys.argv[1], "w") as f:
    block = item * 10000
    n = 0
    while n < 100 * 1024 * 1024:
        f.write(block); n += len(block)
PY
  check "100 MB YAML as a plan"      2 "the plan expands to more than 200000 values" "$B" "$tmp/big.yaml"
  check "100 MB YAML from a script"  0 "" "${LOAD[@]}" "$tmp/big.yaml"
  printf 'x: "' > "$tmp/big_bad.yaml"; head -c 100000000 /dev/zero | tr '\0' 'a' >> "$tmp/big_bad.yaml"
  check "100 MB unterminated string" 1 "found unexpected end of stream while scanning a quoted scalar" "${LOAD[@]}" "$tmp/big_bad.yaml"
fi

# --- Lua ---
printf 'local x = \nprint(1))\n' > "$tmp/syntax.lua"
check "Lua syntax error"              1 "$tmp/syntax.lua:2:" "$B" run "$tmp/syntax.lua"
printf 'local function f()\n  error("broken on purpose")\nend\nf()\n' > "$tmp/runtime.lua"
check "Lua runtime error: message"    1 "$tmp/runtime.lua:2: broken on purpose" "$B" run "$tmp/runtime.lua"
check "Lua runtime error: traceback"  1 "stack traceback:" "$B" run "$tmp/runtime.lua"
check "Lua error object not a string" 1 "(error object is a table value)" "$B" -e "error({})"
check "missing script"                2 "cannot open script" "$B" run "$tmp/none.lua"
printf 'print("caf\xe9")\n' > "$tmp/latin1.lua"
check "non-UTF-8 Lua source runs (Lua strings are bytes)" 0 "caf" "$B" run "$tmp/latin1.lua"
printf 'local t = bench.spawn(function() clock.sleep(0.01); error("task broke") end)\n' > "$tmp/task.lua"
check "unobserved failing task"       1 "task broke" "$B" run "$tmp/task.lua"
check "unobserved failing task: count" 1 "1 task(s) failed" "$B" run "$tmp/task.lua"
printf 'local a, b\na = bench.spawn(function() clock.sleep(0); bench.wait(b) end)\nb = bench.spawn(function() clock.sleep(0); bench.wait(a) end)\n' > "$tmp/deadlock.lua"
check "deadlocked tasks"              1 "(deadlock)" "$B" run "$tmp/deadlock.lua"
printf 'local a, b\na = bench.spawn(function() clock.sleep(0); bench.wait(b) end)\nb = bench.spawn(function() clock.sleep(0); bench.wait(a) end)\nbench.wait(a)\n' > "$tmp/deadlock2.lua"
check "deadlock seen from the main thread" 1 "deadlock: this wait can never finish" "$B" run "$tmp/deadlock2.lua"
printf 'bench.spawn(function() local c <close> = setmetatable({}, {__close = function() print("closed at exit") end}); clock.sleep(100) end)\nclock.sleep(0.01)\nerror("main fails")\n' > "$tmp/unwind.lua"
check "a failing script unwinds its tasks" 1 "closed at exit" "$B" run "$tmp/unwind.lua"
check "infinite recursion"            1 "stack overflow" "$B" -e "local function f() return 1 + f() end return f()"

[ $fails = 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "all ok"
