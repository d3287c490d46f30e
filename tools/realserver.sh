#!/usr/bin/env bash
# Build the real llama.cpp server the tests run against, and make its models.
#
#   tools/realserver.sh ENV_FILE
#
# Builds llama-server and llama-quantize (CPU only, no curl, only those two
# targets) from ../shared/realservers/llama.cpp, and writes random-weight
# models with its make_tiny_gguf.py: tiny.gguf for wire tests, a ~134M
# small-f16.gguf and its Q8_0 and Q4_0 quantizations for timing tests.
# Everything is cached outside the clone ($BENCHRUN_CACHE, default
# /var/cache/benchrun, else ~/.cache/benchrun), keyed by the content hash of
# the snapshot (and of this script's build flags), so a fresh clone reuses
# the build of an earlier run and a changed snapshot builds anew.
#
# Writes ENV_FILE with lines KEY=VALUE: LLAMA_SERVER, LLAMA_QUANTIZE,
# MODELS (a folder), or SKIP=reason where building is impossible here (no
# C++ compiler, no cmake, no snapshot, no numpy). With
# BENCHRUN_REALSERVER=require a reason to skip is an error instead (CI).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: tools/realserver.sh ENV_FILE}
src=${BENCHRUN_REALSERVERS:-$here/../shared/realservers}
# the pyenv python3 on PATH may lack numpy; Debian's has python3-numpy
python=${BENCHRUN_PYTHON:-/usr/bin/python3}

skip() {
  if [ "${BENCHRUN_REALSERVER:-}" = require ]; then
    echo "realserver: cannot build the real llama-server: $1 (BENCHRUN_REALSERVER=require)" >&2
    exit 1
  fi
  echo "SKIP=$1" >"$out"
  echo "realserver: tests against the real llama-server will skip: $1"
  exit 0
}

[ -f "$src/llama.cpp/CMakeLists.txt" ] || skip "no llama.cpp snapshot at $src/llama.cpp"

# sha256sum (GNU) or shasum (macOS)
sha=(sha256sum)
command -v sha256sum >/dev/null || sha=(shasum -a 256)

cache=${BENCHRUN_CACHE:-/var/cache/benchrun}
if ! mkdir -p "$cache" 2>/dev/null || [ ! -w "$cache" ]; then cache=${XDG_CACHE_HOME:-$HOME/.cache}/benchrun; fi
mkdir -p "$cache"

# The flags are part of the key: a build with other flags is another build.
flags=(-DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TESTS=OFF)
# Hashing the file list and contents of the snapshot (~1,100 files, 21 MB)
# takes well under a second.
hash=$( { (cd "$src/llama.cpp" && find . -type f ! -path './.git/*' -print0 | LC_ALL=C sort -z |
            xargs -0 "${sha[@]}"); echo "${flags[*]}"; } | "${sha[@]}" | cut -c1-16)
build=$cache/llama-$hash
# the models also depend on the generator and on the sizes written below
models=$cache/models-$hash-$(cat "$src/make_tiny_gguf.py" "$0" | "${sha[@]}" | cut -c1-8)

# One build at a time (two test runs may start together); macOS has no flock.
if command -v flock >/dev/null; then
  exec 9>"$cache/.lock-$hash"
  flock 9
fi

if [ ! -f "$build/.done" ]; then
  # what building needs (a cached build needs none of it)
  command -v cmake >/dev/null || skip "cmake is not installed"
  cxx=${CXX:-c++}
  command -v "$cxx" >/dev/null || skip "no C++ compiler ($cxx) is installed"
  echo "realserver: building llama-server and llama-quantize into $build (minutes on 2 cores, once)"
  rm -rf "$build"
  cmake -S "$src/llama.cpp" -B "$build" "${flags[@]}" >"$cache/llama-$hash.configure.log" 2>&1 ||
    { tail -30 "$cache/llama-$hash.configure.log" >&2; exit 1; }
  cmake --build "$build" -j"$(getconf _NPROCESSORS_ONLN)" --target llama-server llama-quantize \
    >"$cache/llama-$hash.build.log" 2>&1 || { tail -30 "$cache/llama-$hash.build.log" >&2; exit 1; }
  touch "$build/.done"
fi
bin=$build/bin
"$bin/llama-server" --version >/dev/null 2>&1 || { echo "realserver: $bin/llama-server does not run" >&2; exit 1; }

mkdir -p "$models"
if [ ! -f "$models/small-q4_0.gguf" ]; then
  [ -x "$python" ] || skip "$python is not installed"
  "$python" -c 'import numpy' 2>/dev/null || skip "$python has no numpy (install python3-numpy)"
fi
make_model() {   # name, make_tiny_gguf.py arguments...
  local name=$1; shift
  [ -f "$models/$name" ] && return 0
  "$python" "$src/make_tiny_gguf.py" --out "$models/$name.part" "$@" >/dev/null
  mv "$models/$name.part" "$models/$name"
}
quantize() {     # from, to, type
  [ -f "$models/$2" ] && return 0
  "$bin/llama-quantize" "$models/$1" "$models/$2.part" "$3" >"$models/$2.log" 2>&1 ||
    { tail -20 "$models/$2.log" >&2; exit 1; }
  mv "$models/$2.part" "$models/$2"
}
make_model tiny.gguf --name tiny-random
make_model small-f16.gguf --name small-random --n-layer 12 --n-embd 768 --n-head 12 --n-ff 2048
quantize small-f16.gguf small-q8_0.gguf Q8_0
quantize small-f16.gguf small-q4_0.gguf Q4_0

printf 'LLAMA_SERVER=%s\nLLAMA_QUANTIZE=%s\nMODELS=%s\n' "$bin/llama-server" "$bin/llama-quantize" "$models" >"$out.part"
mv "$out.part" "$out"
echo "realserver: llama-server at $bin, models in $models"
