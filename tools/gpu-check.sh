#!/usr/bin/env bash
# Energy per token on a real NVIDIA GPU, beside nvidia-smi (issue 15's
# check; docs/power.md, "Seen on real hardware"). Not a test: it needs a GPU,
# CUDA's compiler and minutes, and it prints figures.
#
#   tools/gpu-check.sh OUTDIR
#
# 1. builds llama.cpp's llama-server with CUDA from ../shared/realservers
#    (only that target; CUDA_ARCH, default 90 = H100/H200) into
#    $LLAMA_CUDA_BUILD (default /tmp/llama-cuda-ARCH; reused when there);
# 2. writes a random-weight model with the snapshot's make_tiny_gguf.py
#    (about 1.4 B parameters in F16 by default: MODEL_ARGS);
# 3. runs a plan of one cell (CONCURRENCY streams, REQUESTS requests of
#    MAX_TOKENS tokens, a 5 s idle baseline, power sampled every 100 ms)
#    while `nvidia-smi --query-gpu=timestamp,power.draw -lms 100` runs
#    beside it;
# 4. leaves in OUTDIR: the results folder, nvidia-smi.csv, clock.txt (the
#    wall clock and time zone, to line nvidia-smi's local timestamps up with
#    the samples' wall_ns) and the server's log. tools/gpu-check-compare.py
#    OUTDIR then integrates nvidia-smi's readings over each phase of the
#    run and prints them beside benchrun's energy figures.
#
# Environment: BENCHRUN (default build/benchrun), PYTHON (python3 with
# numpy), CUDA_ARCH, LLAMA_CUDA_BUILD, MODEL_ARGS, CONCURRENCY (16),
# REQUESTS (64), MAX_TOKENS (256).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: tools/gpu-check.sh OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
bin=${BENCHRUN:-$here/build/benchrun}
src=${BENCHRUN_REALSERVERS:-$here/../shared/realservers}
arch=${CUDA_ARCH:-90}
llama=${LLAMA_CUDA_BUILD:-/tmp/llama-cuda-$arch}
python=${PYTHON:-python3}
read -r -a model_args <<<"${MODEL_ARGS:---n-layer 24 --n-embd 2048 --n-head 16 --n-ff 5632}"

command -v nvidia-smi >/dev/null || { echo "gpu-check: no nvidia-smi: not an NVIDIA machine" >&2; exit 2; }
nvidia-smi --query-gpu=name,driver_version,power.limit --format=csv | tee "$out/gpu.txt"

if [ ! -x "$llama/bin/llama-server" ]; then
  echo "gpu-check: building llama-server with CUDA (sm_$arch) into $llama"
  gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
  cmake -S "$src/llama.cpp" -B "$llama" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES="$arch" -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF >"$out/llama-configure.log" 2>&1 ||
    { tail -30 "$out/llama-configure.log" >&2; exit 1; }
  cmake --build "$llama" --target llama-server -j"$(getconf _NPROCESSORS_ONLN)" >"$out/llama-build.log" 2>&1 ||
    { tail -30 "$out/llama-build.log" >&2; exit 1; }
fi
"$llama/bin/llama-server" --version 2>&1 | tail -2

model=${MODEL:-/tmp/gpu-check-model.gguf}
if [ ! -f "$model" ]; then
  echo "gpu-check: writing a random-weight model ${model_args[*]}"
  "$python" "$src/make_tiny_gguf.py" --out "$model.part" --name gpu-check "${model_args[@]}" >/dev/null
  mv "$model.part" "$model"
fi
ls -l "$model"

cat >"$out/plan.yaml" <<EOF
name: gpu-check
description: energy per token of a CUDA llama-server, beside nvidia-smi (tools/gpu-check.sh)
script: phases/batching.lua
servers:
  llama-server:
    backend: llama-server
    binary: "$llama/bin/llama-server"
    args: [-ngl, "99", -c, "32768", --parallel, "${CONCURRENCY:-16}"]
    ready_timeout: 5m
models:
  f16: {model: "$model", format: gguf, quant: F16, bits: 16}
matrix:
  model: [f16]
  server: [llama-server]
load:
  - {name: load, concurrency: ${CONCURRENCY:-16}, max_tokens: ${MAX_TOKENS:-256}, requests: ${REQUESTS:-64}}
workload: {prompts: seed}
repeat: 1
warmup: 1
sampling: {memory: 250ms, gpu: true, power: 100ms}
energy: {idle: 5s}
EOF

{ date -u +%s.%N; date +%Z; date; } >"$out/clock.txt"
nvidia-smi --query-gpu=timestamp,power.draw --format=csv,noheader,nounits -lms 100 >"$out/nvidia-smi.csv" &
smi=$!
trap 'kill $smi 2>/dev/null || true' EXIT
rc=0
"$bin" "$out/plan.yaml" --out "$out/results" || rc=$?
kill $smi 2>/dev/null || true
echo "gpu-check: benchrun exited $rc; results in $out/results"
exit $rc
