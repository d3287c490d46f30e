#!/usr/bin/env bash
# Build and run every test: once normally, once under ASan+UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(getconf _NPROCESSORS_ONLN)
# in CI the tests against a real llama-server must run, never skip, unless
# BENCHRUN_ALLOW_SKIP names realserver (tests/helpers/ci_skip.sh)
. tests/helpers/ci_skip.sh
if ci_must_run realserver; then export BENCHRUN_REALSERVER=${BENCHRUN_REALSERVER:-require}; fi
echo "== build (warnings are errors)"
tools/build.sh build
echo "== tests"
(cd build && ctest --output-on-failure -j"$jobs" --timeout 600)
if [ "${BENCHRUN_SKIP_ASAN:-0}" != 1 ]; then
  echo "== build with AddressSanitizer + UndefinedBehaviorSanitizer"
  tools/build.sh build-asan -DBENCHRUN_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
  echo "== tests under ASan+UBSan"
  leaks=1
  [ "$(uname -s)" = Darwin ] && leaks=0   # Apple's clang has no LeakSanitizer
  (cd build-asan && ASAN_OPTIONS=detect_leaks=$leaks:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
     BENCHRUN_SANITIZED=1 ctest --output-on-failure -j"$jobs" --timeout 900 -LE no-asan)
fi
