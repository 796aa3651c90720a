#!/bin/bash
# SMTP intake side by side: cmail-smtpd, Postfix and Postfix's smtp-sink, each started fresh
# on loopback for every run and driven by the same load generator (smtp_load.py) in the same
# session; prints messages/s per server and the ratio to smtp-sink. Not a timed test: the
# figures go to docs/performance.md with the command that produced them.
#
#   tests/bench/peers/install.sh                       # once, as root: Postfix, Dovecot, ...
#   tests/bench/smtp_bench.sh [BUILD_DIR]              # as root (Postfix runs as a private instance)
#
# Environment (defaults in brackets):
#   SCENARIOS ["keep conn"]  keep: sessions reused; conn: a connection per message
#   SERVERS   ["cmail-smtpd postfix smtp-sink"]        (tests/bench/peers/<name>.sh)
#   N [10000] messages per run   SESSIONS [20]   SIZE [4096] body octets   RUNS [1]
#   PROCS [2] load generator processes   STATE [/tmp/cmail-bench]
#   LOAD [smtp_load.py]  or smtp-source: Postfix's C load generator (`smtp-source -s SESSIONS
#             -m N -l SIZE`, with -d for keep), about five times faster than the Python client
#             on this machine (no latencies; its stderr lines count as errors)
#   CMAIL_BUILD  the build directory when no argument is given (default: build/)
# Every run: fresh store, server start, an untimed warm-up (200 messages over 4 sessions), the
# timed load, then for servers that store asynchronously (Postfix: queue, then virtual(8)) a
# bounded wait until every accepted message is in the store, which is reported (drain_s)
# but not timed. Runs alternate the servers, so a noisy moment does not favour one of them.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/peers/common.sh"
BUILD=$(cmail_build "${1:-}")
export CMAIL_BUILD=$BUILD STATE
SCENARIOS=${SCENARIOS:-keep conn}
SERVERS=${SERVERS:-cmail-smtpd postfix smtp-sink}
N=${N:-10000}
SESSIONS=${SESSIONS:-20}
SIZE=${SIZE:-4096}
RUNS=${RUNS:-1}
PROCS=${PROCS:-2}
LOAD=${LOAD:-smtp_load.py}

# load PORT MODE: the timed load; prints smtp_load.py's key=value line
load() {
    if [[ $LOAD != smtp-source ]]; then
        "$PY" "$HERE/smtp_load.py" --port "$1" --sessions "$SESSIONS" --messages "$N" --size "$SIZE" \
            --mode "$2" --procs "$PROCS" --limit 120
        return
    fi
    local flags=(-4 -s "$SESSIONS" -m "$N" -l "$SIZE" -f loadgen@$DOMAIN -t bench@$DOMAIN -M loadgen.$DOMAIN) t0 t1
    [[ $2 == keep ]] && flags+=(-d)   # -d: the next message over the same connection
    t0=$(date +%s.%N)
    timeout 120 smtp-source "${flags[@]}" "127.0.0.1:$1" >/dev/null 2>"$STATE/smtp-source.err" || true
    t1=$(date +%s.%N)
    echo "messages=$N errors=$(wc -l <"$STATE/smtp-source.err") wall_s=$(echo "$t1 - $t0" | bc)" \
        "msgs_per_s=$(echo "$N / ($t1 - $t0)" | bc) p50_ms=- p99_ms=-"
}

port_of() {
    case $1 in
        cmail-smtpd) echo "$PORT_CMAIL" ;; postfix) echo "$PORT_POSTFIX" ;; smtp-sink) echo "$PORT_SINK" ;;
        *) die "unknown server $1" ;;
    esac
}
current=
trap '[[ -n $current ]] && "$HERE/peers/$current.sh" stop' EXIT
mkdir -p "$STATE"
RESULTS=$STATE/smtp-results.txt
: >"$RESULTS"
for run in $(seq "$RUNS"); do
    for scenario in $SCENARIOS; do
        for server in $SERVERS; do
            peer=$HERE/peers/$server.sh
            port=$(port_of "$server")
            "$peer" stop
            "$peer" wipe
            current=$server
            "$peer" start "$BUILD"
            "$PY" "$HERE/smtp_load.py" --port "$port" --sessions 4 --messages 200 --size "$SIZE" \
                --mode "$scenario" --limit 60 >/dev/null || die "$server: warm-up failed"
            out=$(load "$port" "$scenario") || log "$server: errors: $out"
            drain=0
            if [[ $server != smtp-sink ]]; then
                t0=$(date +%s.%N)
                want=$((N + 200))
                for _ in $(seq 1800); do (($("$peer" count) >= want)) && break; sleep 0.05; done
                (($("$peer" count) >= want)) || log "$server: only $("$peer" count) of $want messages stored"
                drain=$(printf %.2f "$(echo "$(date +%s.%N) - $t0" | bc)")
            fi
            "$peer" stop
            current=
            log "$scenario $server run $run: $out drain_s=$drain"
            echo "$scenario $server $run $out drain_s=$drain" >>"$RESULTS"
        done
    done
done

# The table: the median of the runs per scenario and server, and its ratio to smtp-sink's.
"$PY" - "$RESULTS" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    scenario, server, _run, *kv = line.split()
    d = dict(x.split("=", 1) for x in kv)
    rows.setdefault((scenario, server), []).append(d)
print("%-6s %-12s %10s %9s %9s %8s %9s %s" % ("mode", "server", "msg/s", "p50_ms", "p99_ms", "errors", "drain_s", "sink/server"))
for scenario in dict.fromkeys(k[0] for k in rows):
    med = {srv: statistics.median(float(d["msgs_per_s"]) for d in ds) for (sc, srv), ds in rows.items() if sc == scenario}
    for (sc, srv), ds in rows.items():
        if sc != scenario:
            continue
        sink = med.get("smtp-sink")
        ratio = "%.2fx" % (sink / med[srv]) if sink and med[srv] else "-"
        print("%-6s %-12s %10.0f %9s %9s %8s %9s %s   (runs: %s)" % (
            sc, srv, med[srv], ds[-1]["p50_ms"], ds[-1]["p99_ms"], sum(int(d["errors"]) for d in ds),
            ds[-1]["drain_s"], ratio, " ".join(d["msgs_per_s"] for d in ds)))
PY
