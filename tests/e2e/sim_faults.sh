#!/usr/bin/env bash
# benchrun sim, black-box with curl: every fault mode, --crash-after,
# --oom-at-memory, SIGTERM, bad flags, and malformed requests answered with
# 4xx while another stream carries on undisturbed.
set -u
B=$1
T=$(mktemp -d)
SP=
trap '[ -n "$SP" ] && kill -KILL $SP 2>/dev/null; rm -rf "$T"' EXIT
fails=0
check() {   # check NAME CONDITION...
  local name=$1; shift
  if "$@"; then echo "ok     $name"; else echo "FAILED $name"; fails=$((fails + 1)); fi
}

start() {   # start a sim; sets SP and URL
  rm -f "$T/port"
  "$B" sim --port 0 --port-file "$T/port" "$@" >"$T/sim.out" 2>"$T/sim.err" &
  SP=$!
  for _ in $(seq 250); do [ -s "$T/port" ] && break; sleep 0.02; done
  URL="http://127.0.0.1:$(cat "$T/port" 2>/dev/null)"
}
stop() {    # SIGTERM; sets RC
  kill -TERM "$SP" 2>/dev/null
  wait "$SP"
  RC=$?
  SP=
}
reap() { wait "$SP"; RC=$?; SP=; }
body() { echo "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":${1:-10},\"stream\":true${2:-}}"; }
chat() {    # chat MAX_TOKENS [curl args...]: output in $T/o, exit status in CRC
  local n=$1; shift
  rm -f "$T/o"; : >"$T/o"
  curl -sS -N "$URL/v1/chat/completions" -H 'Content-Type: application/json' --data-binary "$(body "$n")" \
    -o "$T/o" "$@" 2>"$T/curl.err"
  CRC=$?
}
code() { curl -s -o "$T/o" -w '%{http_code}' "$@"; }
eq() { [ "$1" = "$2" ] || { echo "  expected '$2', got '$1'" >&2; return 1; }; }
has() { grep -q -- "$2" "$1" || { echo "  '$2' not in $1: $(head -c 300 "$1")" >&2; return 1; }; }
hasnt() { ! grep -q -- "$2" "$1" || { echo "  '$2' unexpectedly in $1" >&2; return 1; }; }

# ---- faults, per request (header and body field) and by probability
start --decode-tps 200
chat 10 -H 'X-Sim-Fault: refuse'
check "refuse: connection closed without a reply" eq "$CRC" 52
check "http500 by header" eq "$(code "$URL/v1/chat/completions" -H 'X-Sim-Fault: http500' -d "$(body 5)")" 500
check "unknown fault kind: 400" eq "$(code "$URL/v1/chat/completions" -H 'X-Sim-Fault: explode' -d "$(body 5)")" 400
check "http503 by body field" eq "$(code "$URL/v1/chat/completions" -d "$(body 5 ',"sim_fault":"http503"')")" 503
chat 10 -H 'X-Sim-Fault: stall-first-byte' -m 1
check "stall-first-byte: timeout with nothing received" eq "$CRC:$(wc -c <"$T/o")" "28:0"
chat 10 -H 'X-Sim-Fault: stall-mid' -m 1
check "stall-mid: timeout after some events" eq "$CRC:$(grep -c '^data: {' "$T/o")" "28:6"
check "stall-mid: no [DONE]" hasnt "$T/o" '\[DONE\]'
chat 10 -H 'X-Sim-Fault: drop'
check "drop: stream cut short" eq "$CRC:$(grep -c '^data: {' "$T/o")" "18:6"
chat 10 -H 'X-Sim-Fault: bad-json'
check "bad-json: a malformed event, then the rest" eq "$CRC:$(grep -c '"content":" broken"}$' "$T/o")" "0:1"
check "bad-json: stream still ends" has "$T/o" '\[DONE\]'
curl -sS -N -D "$T/h" -o "$T/o" "$URL/v1/chat/completions" -H 'X-Sim-Fault: content-type' -d "$(body 3)"
check "content-type: text/plain" has "$T/h" 'Content-Type: text/plain'
chat 4 -H 'X-Sim-Fault: huge-event'
check "huge-event: one event of 4 MiB" eq "$CRC:$(awk 'length > 4000000' "$T/o" | wc -l)" "0:1"
chat 10 -H 'X-Sim-Fault: endless-line' -m 1
check "endless-line: a line of > 64 KiB without end" eq "$CRC:$(tail -c 70000 "$T/o" | tr -d x | wc -c)" "28:0"
ok=0
for _ in $(seq 20); do [ "$(code "$URL/v1/chat/completions" -d "$(body 1 ',"stream":false')")" = 200 ] && ok=$((ok + 1)); done
check "no fault unless asked" eq "$ok" 20
stop
check "SIGTERM after faults: exit 0" eq "$RC" 0

start --decode-tps 0 --fault http500:0.5 --seed 7
n500=0
for _ in $(seq 20); do [ "$(code "$URL/v1/completions" -d '{"prompt":"x","max_tokens":1}')" = 500 ] && n500=$((n500 + 1)); done
check "--fault http500:0.5 hits about half ($n500/20)" test "$n500" -ge 3 -a "$n500" -le 17
stop

# ---- crashing (abort, SIGABRT: 134) and dying like an OOM kill (SIGKILL: 137)
start --decode-tps 100
chat 20 -H 'X-Sim-Fault: crash'
reap
check "crash fault: curl sees the stream cut" test "$CRC" -ne 0
check "crash fault: aborted (SIGABRT), not SIGKILL" eq "$RC" 134
start --decode-tps 0 --crash-after 2
chat 3; a=$CRC; chat 3; b=$CRC; chat 3; c=$CRC
reap
check "--crash-after 2: two answers, then an abort" eq "$a:$b:$RC" "0:0:134"
check "--crash-after 2: the third request fails" test "$c" -ne 0
start --load-time 300ms --model-memory 64MiB --oom-at-memory 16MiB --oom-record "$T/oom.json"
reap
check "--oom-at-memory: killed while loading" eq "$RC" 137
check "--oom-at-memory: says why" has "$T/sim.err" 'oom-at-memory'
check "--oom-record: the simulated kernel's record names the pid" has "$T/oom.json" '"oom_kill":true,"pid":[0-9]*,"needed_bytes":[0-9]*,"limit_bytes":16777216'

start --decode-tps 0 --kv-bytes-per-token 1MiB --oom-at-memory 40MiB
chat 20; a=$CRC
chat 100 -m 5
reap
check "--kv-bytes-per-token: 21 tokens fit in 40 MiB, 101 do not" eq "$a:$RC" "0:137"
check "KV growth: the stream died mid-way" test "$CRC" -ne 0

# ---- SIGTERM with a stream in flight, SIGINT
start --decode-tps 20
chat 100 -m 5 &
CP=$!
sleep 0.3
stop
wait $CP
check "SIGTERM mid-stream: exit 0" eq "$RC" 0
start
kill -INT "$SP"; reap
check "SIGINT: exit 0" eq "$RC" 0

# ---- bad flags: one line naming the flag, exit 2
for args in "--port abc" "--fault nope" "--bogus" "--load-time 5x" "--model-memory lots" "--dialect grpc" "--slots 0"; do
  # shellcheck disable=SC2086
  "$B" sim $args >"$T/o" 2>"$T/e"
  rc=$?
  flag=${args%% *}
  check "bad flag '$args': exit 2, names $flag" eq "$rc:$(wc -l <"$T/e"):$(grep -c -- "$flag" "$T/e")" "2:1:1"
done
"$B" sim --help >"$T/o"
check "sim --help" has "$T/o" '--decode-tps'

# ---- malformed requests: 4xx, while another stream carries on
start --decode-tps 25 --header-timeout 1s --max-body 1MiB
curl -sS -N "$URL/v1/chat/completions" -d "$(body 40)" -o "$T/stream" &
CP=$!
sleep 0.1
check "bad JSON: 400" eq "$(code "$URL/v1/chat/completions" -d '{"messages": [')" 400
has "$T/o" 'invalid JSON' >/dev/null
check "bad JSON: says where" has "$T/o" 'invalid JSON at byte'
check "messages missing: 400" eq "$(code "$URL/v1/chat/completions" -d '{"max_tokens":3}')" 400
check "n=2: 400" eq "$(code "$URL/v1/chat/completions" -d '{"messages":[],"n":2}')" 400
check "GET on a POST endpoint: 405" eq "$(code "$URL/v1/chat/completions")" 405
check "POST on /health: 405" eq "$(code -X POST "$URL/health")" 405
check "unknown path: 404" eq "$(code "$URL/nope")" 404
head -c 2000000 /dev/zero | tr '\0' 'a' >"$T/big"
check "huge body: 413" eq "$(code "$URL/v1/chat/completions" --data-binary @"$T/big")" 413
port=$(cat "$T/port")
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'GARBAGE\r\n\r\n' >&3
check "garbage request line: 400" has <(timeout 2 cat <&3) '^HTTP/1.1 400'
exec 3>&-
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Slow: ' >&3
check "slowloris head: 408 after --header-timeout" has <(timeout 3 cat <&3) '^HTTP/1.1 408'
exec 3>&-
raw() {     # raw BYTES...: send to the sim, print the status line of the reply
  exec 4<>"/dev/tcp/127.0.0.1/$port"
  printf "$@" >&4
  timeout 2 head -n 1 <&4 | tr -d '\r'
  exec 4>&-
}
check "header line without a colon: 400" eq "$(raw 'GET /health HTTP/1.1\r\nNoColon\r\n\r\n')" "HTTP/1.1 400 Bad Request"
check "Content-Length: abc: 400" eq "$(raw 'POST /v1/completions HTTP/1.1\r\nContent-Length: abc\r\n\r\n')" "HTTP/1.1 400 Bad Request"
check "chunked request body: 411" eq "$(raw 'POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n')" "HTTP/1.1 411 Length Required"
check "HTTP/2.0 request line: 505" eq "$(raw 'GET /health HTTP/2.0\r\n\r\n')" "HTTP/1.1 505 HTTP Version Not Supported"
check "bare LF line ends are read" eq "$(raw 'GET /health HTTP/1.1\nHost: x\n\n')" "HTTP/1.1 200 OK"
check "a 20 KB header: 431" eq "$(raw "GET /health HTTP/1.1\r\nX-Big: $(head -c 20000 /dev/zero | tr '\0' a)\r\n\r\n")" \
  "HTTP/1.1 431 Request Header Fields Too Large"
for _ in $(seq 30); do   # random bytes: never a crash
  exec 4<>"/dev/tcp/127.0.0.1/$port"
  head -c $((RANDOM % 3000 + 1)) /dev/urandom >&4 2>/dev/null
  exec 4>&-
done
check "alive after garbage" eq "$(code "$URL/health")" 200
wait $CP
check "the other stream finished intact" eq "$(grep -c '"content":' "$T/stream"):$(grep -c '\[DONE\]' "$T/stream")" "41:1"
stop
check "SIGTERM: exit 0" eq "$RC" 0

echo "$fails failed"
[ "$fails" -eq 0 ]
