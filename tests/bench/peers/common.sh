# shellcheck shell=bash
# tests/bench/peers/common.sh: what the peer scripts share (sourced, not run).
#
# Every server runs on 127.0.0.1 on a fixed high port, with its configuration and its store
# under $STATE/<server>/ (STATE defaults to /tmp/cmail-bench). Every wait has a deadline;
# processes are stopped by the PID recorded when they were started, never by name.
STATE=${STATE:-/tmp/cmail-bench}
PY=/usr/bin/python3                 # Debian's Python, as the integration tests use
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)   # tests/bench

PORT_POSTFIX=${PORT_POSTFIX:-10025}
PORT_SINK=${PORT_SINK:-10026}
PORT_CMAIL=${PORT_CMAIL:-10031}
PORT_CMAIL_FILL=${PORT_CMAIL_FILL:-10033}   # the cmail-smtpd that fills cmail-popd's maildrops
PORT_DOVECOT_POP3=${PORT_DOVECOT_POP3:-10110}
PORT_CMAIL_POP3=${PORT_CMAIL_POP3:-10111}

DOMAIN=example.test                 # every server accepts <user>@example.test
VUSER=nobody                        # owner of the Postfix and Dovecot mail stores

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }

listening() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }
# wait_port PORT [SECONDS]: until something listens on PORT
wait_port() { local i; for ((i = 0; i < ${2:-20} * 20; i++)); do listening "$1" && return 0; sleep 0.05; done; return 1; }
# wait_port_free PORT [SECONDS]
wait_port_free() { local i; for ((i = 0; i < ${2:-20} * 20; i++)); do listening "$1" || return 0; sleep 0.05; done; return 1; }
alive() { [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null; }
# stop_pid PID [SECONDS]: SIGTERM, bounded wait, then SIGKILL
stop_pid() {
    local pid=${1:-} i
    alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < ${2:-10} * 20; i++)); do alive "$pid" || return 0; sleep 0.05; done
    log "pid $pid still runs after SIGTERM: SIGKILL"
    kill -KILL "$pid" 2>/dev/null
}
# stop_pidfile FILE: stop_pid on the PID in FILE, then remove FILE
stop_pidfile() { if [[ -f $1 ]]; then stop_pid "$(cat "$1")" 15; rm -f "$1"; fi; }

# cmail_build [DIR]: the build directory holding the cmail executables (argument, then
# CMAIL_BUILD, then build/ in the source tree), as an absolute path
cmail_build() {
    local b=${1:-${CMAIL_BUILD:-$BENCH_DIR/../../build}}
    [[ -x $b/frontends/cmail-smtpd/cmail-smtpd ]] || die "no cmail build in $b (ninja -C $b first)"
    (cd "$b" && pwd)
}

# count_files DIR: regular files directly in DIR
count_files() { if [[ -d $1 ]]; then find "$1" -mindepth 1 -maxdepth 1 -type f | wc -l; else echo 0; fi; }

# peer_main "$@": the command line of every peer script: start|stop|count|wipe [ARGS]
peer_main() {
    local cmd=${1:-}
    shift || true
    case $cmd in
        start | stop | count | wipe | populate) "peer_$cmd" "$@" ;;
        *) die "usage: $0 start|stop|count|wipe|populate [ARGS] (see the comment at its top)" ;;
    esac
}
