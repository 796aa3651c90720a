#!/usr/bin/env bash
# cmail developer script: installs what is missing (Debian 12 packages), builds, runs or tests.
#   ./dev.sh run     build, then run `cmail serve` with its zero-config default in ./data
#   ./dev.sh test    build three times (release; AddressSanitizer + UBSan; libFuzzer) and run
#                    every test
#   ./dev.sh bench   build and run the benchmarks
#   ./dev.sh builds  the compiler matrix: release and plain builds with GCC and with clang, and
#                    plain with Debian's packaging flags (dpkg-buildflags: -O2, _FORTIFY_SOURCE,
#                    stack protector), each built and tested (what CI checks besides `test`;
#                    about 30 min on 2 cores)
#
# JOBS=N limits ninja to N parallel jobs (a shared machine); ninja's default otherwise.
#
# Every build set up here passes -Dwerror=true: warnings are errors in the project's own builds
# (this script, CI), not in a packager's or embedder's build (meson.build leaves werror off).
#
# `test` builds release first (-O3, assertions off: what packagers ship), then -O1 with line
# tables and the sanitizers (assertions on, so they run under ASan and UBSan), then the fuzz
# build.
# Release replaces the debugoptimized build that used to come first: same time (about 15 min
# on 2 cores), and the configuration users get is the one that is built with warnings as
# errors and tested. `run` and `bench` keep their debugoptimized ./build.
set -euo pipefail
cd "$(dirname "$0")"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
run() { printf '+ %s\n' "$*"; "$@"; }

# Build and test dependencies, all from Debian's archive (see docs/dependencies.md).
PACKAGES=(meson ninja-build pkg-config g++ clang libclang-rt-14-dev libsqlite3-dev libmbedtls-dev
          libuv1-dev libcli11-dev doctest-dev libc-ares-dev libargon2-dev nettle-dev libgmp-dev publicsuffix python3 python3-dnslib python3-aiosmtpd python3-pytest python3-dkim python3-nacl python3-authres util-linux
          swaks curl libio-socket-ssl-perl libnet-ssleay-perl libauthen-sasl-perl
          openssl fetchmail getmail6 dpkg-dev dovecot-imapd isync offlineimap3)

install_missing() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    say "installing missing Debian packages: ${missing[*]}"
    local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    run $sudo apt-get update -qq
    run env DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    say "all Debian packages present"
  fi
}

install_npm_test_deps() {  # imapflow, a test-only client (docs/dependencies.md), from its lock file
  local dir=tests/integration/imapflow
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    say "installing Debian's nodejs and npm (imapflow test client)"
    local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    run env DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nodejs npm
  fi
  if [ -d "$dir/node_modules/imapflow" ] && [ "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ]; then
    say "imapflow present"
  else
    say "installing imapflow from $dir/package-lock.json (npm ci)"
    (cd "$dir" && run npm ci --no-audit --no-fund --loglevel=error)
  fi
}

build() {  # build DIR [meson options...]: set up (or bring an existing DIR to) the options
  local dir=$1; shift
  if [ ! -f "$dir/build.ninja" ]; then
    run meson setup "$dir" -Dwerror=true "$@"
  else
    run meson configure "$dir" -Dwerror=true "$@"
  fi
  run ninja -C "$dir" ${JOBS:+-j "$JOBS"}
}

cmd=${1:-}
case "$cmd" in
  run)
    install_missing
    build build
    say "starting cmail serve on loopback (data in ./data; Ctrl-C stops it)"
    run build/frontends/cmail/cmail serve --data data
    ;;
  test)
    install_missing
    install_npm_test_deps
    say "release build (-O3, assertions off, warnings are errors)"
    build build-release -Dbuildtype=release
    say "running the test suite"
    run meson test -C build-release --print-errorlogs --num-processes 2
    say "sanitizer build (-O1 -g1, assertions on, address,undefined)"
    # -O1 and line tables only (-g1: file:line in every sanitizer report, no variable info):
    # compiling one large file with ASan and UBSan takes 63 s at -O2 -g and 40 s at -O1 -g1.
    build build-asan -Db_sanitize=address,undefined -Dbenchmarks=false -Doptimization=1 -Ddebug=false \
      -Dcpp_args=-g1 -Dc_args=-g1
    say "running the test suite under AddressSanitizer and UBSan"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      run meson test -C build-asan --print-errorlogs --num-processes 2 --timeout-multiplier 3
    say "libFuzzer build (clang, address,undefined): each fuzz target for ${FUZZ_SECONDS:-20} s"
    CXX=clang++ CC=clang build build-fuzz -Dfuzzing=true -Dfuzz_seconds="${FUZZ_SECONDS:-20}" \
      -Db_sanitize=address,undefined -Db_lundef=false
    run meson test -C build-fuzz --print-errorlogs --suite fuzz
    say "all tests passed (release, sanitized and fuzzed)"
    ;;
  builds)
    install_missing
    install_npm_test_deps
    for compiler in gcc clang; do
      for buildtype in release plain; do
        dir=build-matrix/$compiler-$buildtype
        say "$compiler, buildtype $buildtype (warnings are errors)"
        if [ $compiler = clang ]; then cxx=clang++ cc=clang; else cxx=g++ cc=gcc; fi
        CXX=$cxx CC=$cc build "$dir" -Dbuildtype=$buildtype -Dbenchmarks=false
        run meson test -C "$dir" --print-errorlogs --num-processes 2
      done
    done
    dir=build-matrix/gcc-debian
    say "gcc, buildtype plain with dpkg-buildflags (what a Debian package builds; warnings are errors)"
    CXX=g++ CC=gcc CFLAGS="$(dpkg-buildflags --get CFLAGS)" CXXFLAGS="$(dpkg-buildflags --get CXXFLAGS)" \
      CPPFLAGS="$(dpkg-buildflags --get CPPFLAGS)" LDFLAGS="$(dpkg-buildflags --get LDFLAGS)" \
      build "$dir" -Dbuildtype=plain -Dbenchmarks=false
    run meson test -C "$dir" --print-errorlogs --num-processes 2
    say "all builds passed (release and plain, GCC and clang; Debian's flags)"
    ;;
  bench)
    install_missing
    build build
    run meson test -C build --benchmark --verbose
    ;;
  *)
    echo "usage: $0 run|test|bench|builds" >&2
    exit 2
    ;;
esac
