#!/bin/bash
# tests/bench/peers/cmail-popd.sh start|stop|count|wipe|populate [BUILD_DIR]: cmail-popd from a
# build directory (the argument, CMAIL_BUILD, or build/ in this source tree) on
# 127.0.0.1:$PORT_CMAIL_POP3 (10111), with a master database in $STATE/cmail-popd/master.db3.
#   cmail-popd.sh populate USERS PER_USER [SIZE] [BUILD_DIR]
# makes users u01..uNN (password bench, argon2id as cmail-admin stores it) and sends them
# PER_USER messages of SIZE (4096) octets each through a cmail-smtpd started for it on
# $PORT_CMAIL_FILL (10033), so that they take the path real mail takes.
set -eu
source "$(dirname "$0")/common.sh"
DIR=$STATE/cmail-popd
DB=$DIR/master.db3

peer_start() {
    local build
    build=$(cmail_build "${1:-}")
    listening "$PORT_CMAIL_POP3" && die "port $PORT_CMAIL_POP3 is taken"
    mkdir -p "$DIR"
    printf 'database %s\nbind 127.0.0.1 %s announce=cmail.%s maxperip=5000\n' \
        "$DB" "$PORT_CMAIL_POP3" "$DOMAIN" >"$DIR/popd.conf"
    (ulimit -n 8192; exec "$build/frontends/cmail-popd/cmail-popd" "$DIR/popd.conf" nodetach) \
        >"$DIR/server.log" 2>&1 &
    echo $! >"$DIR/pid"
    wait_port "$PORT_CMAIL_POP3" 20 || { tail -5 "$DIR/server.log" >&2; die "cmail-popd does not listen"; }
    log "cmail-popd ($build) on 127.0.0.1:$PORT_CMAIL_POP3"
}
peer_stop() { stop_pidfile "$DIR/pid"; wait_port_free "$PORT_CMAIL_POP3" 10; }
peer_count() {
    [[ -f $DB ]] || { echo 0; return; }
    "$PY" -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM mailbox").fetchone()[0])' "$DB"
}
peer_wipe() { rm -f "$DB" "$DB-wal" "$DB-shm"; }
peer_populate() {
    local users=${1:?USERS} per_user=${2:?PER_USER} size=${3:-4096} build k u pid
    build=$(cmail_build "${4:-}")
    local admin=$build/frontends/cmail-admin/cmail-admin
    peer_wipe
    mkdir -p "$DIR"
    "$admin" -d "$DB" init >/dev/null
    for ((k = 1; k <= users; k++)); do
        printf -v u 'u%02d' "$k"
        "$admin" -d "$DB" user add "$u" bench
        "$admin" -d "$DB" address add "$u@$DOMAIN" store "$u" >/dev/null
        "$admin" -d "$DB" popd enable "$u" >/dev/null
    done
    listening "$PORT_CMAIL_FILL" && die "port $PORT_CMAIL_FILL is taken"
    printf 'database %s\nauth_checks off\nbind 127.0.0.1 %s announce=fill.%s\n' "$DB" "$PORT_CMAIL_FILL" "$DOMAIN" >"$DIR/fill.conf"
    "$build/frontends/cmail-smtpd/cmail-smtpd" "$DIR/fill.conf" nodetach >"$DIR/fill.log" 2>&1 &
    pid=$!
    wait_port "$PORT_CMAIL_FILL" 20 || die "the filling cmail-smtpd does not listen"
    "$PY" "$BENCH_DIR/pop3_populate.py" --port "$PORT_CMAIL_FILL" --users "$users" --count "$per_user" \
        --size "$size" || { stop_pid "$pid"; die "populate failed"; }
    stop_pid "$pid" 15
    wait_port_free "$PORT_CMAIL_FILL" 10
    log "cmail-popd: $users users x $per_user messages of $size octets"
}
peer_main "$@"
