#!/usr/bin/env bash
# Configure and build benchrun into build/ (or $1) with warnings as errors.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}; shift || true
cmake -S . -B "$dir" -DBENCHRUN_WERROR=ON "$@" >/dev/null
cmake --build "$dir" -j"$(getconf _NPROCESSORS_ONLN)"
