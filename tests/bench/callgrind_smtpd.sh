#!/bin/bash
# Instructions per accepted message in cmail-smtpd, counted by valgrind's callgrind (the
# machine's load does not change a count, so before/after comparisons hold on a noisy machine).
#
#   tests/bench/callgrind_smtpd.sh [BUILD_DIR]          (a release build gives the figures)
#
# Two runs of cmail-smtpd under `valgrind --tool=callgrind`, each on a fresh master database:
# LOW (200) and HIGH (1200) messages of SIZE (4096) body octets over SESSIONS (4) keep-alive
# sessions (smtp_load.py keep; MODE=conn: a connection per message), then SIGTERM, so that
# callgrind writes its totals for every thread at exit. (HIGH - LOW) / (HIGH - LOW messages) is the cost of one message with start-up
# and shutdown cancelled. Prints both totals, the figure, and the top inclusive functions of
# the HIGH run (callgrind_annotate); the output files stay in $STATE/callgrind/.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/peers/common.sh"
BUILD=$(cmail_build "${1:-}")
LOW=${LOW:-200}
HIGH=${HIGH:-1200}
SIZE=${SIZE:-4096}
SESSIONS=${SESSIONS:-4}
MODE=${MODE:-keep}
OUT=$STATE/callgrind
command -v valgrind >/dev/null || die "valgrind missing: tests/bench/peers/install.sh"
rm -rf "$OUT"
mkdir -p "$OUT"

pid=
trap '[[ -n $pid ]] && kill -KILL "$pid" 2>/dev/null' EXIT
# count N: prints callgrind's total instruction count for a cmail-smtpd that took N messages
count() {
    local n=$1 dir=$OUT/$1 port= i
    mkdir -p "$dir"
    "$BUILD/frontends/cmail-admin/cmail-admin" -d "$dir/master.db3" init >/dev/null
    "$BUILD/frontends/cmail-admin/cmail-admin" -d "$dir/master.db3" user add bench bench
    "$BUILD/frontends/cmail-admin/cmail-admin" -d "$dir/master.db3" address add "bench@$DOMAIN" store bench >/dev/null
    printf 'database %s\nauth_checks off\nbind 127.0.0.1 0 announce=cmail.%s\n' "$dir/master.db3" "$DOMAIN" >"$dir/smtpd.conf"
    valgrind --tool=callgrind --callgrind-out-file="$dir/callgrind.out" \
        "$BUILD/frontends/cmail-smtpd/cmail-smtpd" "$dir/smtpd.conf" nodetach >"$dir/stdout" 2>"$dir/stderr" &
    pid=$!
    for ((i = 0; i < 1200; i++)); do   # the daemon prints "smtp 127.0.0.1:PORT" once it listens
        port=$(sed -n 's/^smtp 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$dir/stdout" 2>/dev/null)
        [[ -n $port ]] && break
        alive "$pid" || break
        sleep 0.05
    done
    [[ -n $port ]] || { cat "$dir/stderr" >&2; die "cmail-smtpd under callgrind did not listen"; }
    "$PY" "$HERE/smtp_load.py" --port "$port" --sessions "$SESSIONS" --messages "$n" --size "$SIZE" --mode "$MODE" \
        --limit 600 >"$dir/load" || die "load failed: $(cat "$dir/load")"
    kill -TERM "$pid"
    wait "$pid" || die "cmail-smtpd exited $? (see $dir/stderr)"
    pid=
    sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$dir/callgrind.out"
}
low=$(count "$LOW")
high=$(count "$HIGH")
echo "instructions: $LOW messages $low, $HIGH messages $high"
echo "per message: $(( (high - low) / (HIGH - LOW) ))"
echo "top inclusive functions ($HIGH messages):"
callgrind_annotate --inclusive=yes "$OUT/$HIGH/callgrind.out" 2>/dev/null | sed -n '/^Ir/,$p' | head -45
