#!/usr/bin/env bash
# Install what benchrun needs to build and test.
#   Debian/Ubuntu (as root, or with sudo): apt packages.
#   macOS: Homebrew packages, and lua-cjson through luarocks.
set -euo pipefail
if [ "$(uname -s)" = Darwin ]; then
  brew install cmake pkg-config lua curl libyaml libedit cjson sqlite luarocks hyperfine tmux
  luarocks install lua-cjson
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
pkgs=(build-essential cmake pkg-config clang llvm libclang-rt-dev
      liblua5.4-dev lua5.4 libcurl4-openssl-dev libyaml-dev lua-cjson-dev libcjson-dev libedit-dev libsqlite3-dev
      curl tmux hyperfine procps openssl
      python3 python3-numpy    # tests/realserver: tools/realserver.sh makes the models
      slurm-wlm munge          # tests/e2e/slurm_cluster.sh: a one-node Slurm cluster
      chromium)                # tests/e2e/report_html.sh: report.html in headless Chromium
# Ubuntu's chromium package only installs the snap, whose private /tmp
# tests/e2e/report_html.sh cannot use: there the test takes Google Chrome
# (GitHub's runners have it), and nothing is installed for it
if grep -qx 'ID=ubuntu' /etc/os-release 2> /dev/null; then
  keep=()
  for p in "${pkgs[@]}"; do [ "$p" = chromium ] || keep+=("$p"); done
  pkgs=("${keep[@]}")
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
