#!/bin/bash
# tests/bench/peers/cmail-smtpd.sh start|stop|count|wipe [BUILD_DIR]: cmail-smtpd from a build
# directory (the argument, CMAIL_BUILD, or build/ in this source tree) on
# 127.0.0.1:$PORT_CMAIL (10031), with a master database in $STATE/cmail-smtpd/master.db3 where
# bench@example.test is stored for the user bench. Each message is durable in
# the database (WAL fdatasync, group commit) before its 250.
set -eu
source "$(dirname "$0")/common.sh"
DIR=$STATE/cmail-smtpd
DB=$DIR/master.db3

peer_start() {
    local build
    build=$(cmail_build "${1:-}")
    listening "$PORT_CMAIL" && die "port $PORT_CMAIL is taken"
    mkdir -p "$DIR"
    if [[ ! -s $DB ]]; then
        "$build/frontends/cmail-admin/cmail-admin" -d "$DB" init >/dev/null
        "$build/frontends/cmail-admin/cmail-admin" -d "$DB" user add bench bench
        "$build/frontends/cmail-admin/cmail-admin" -d "$DB" address add "bench@$DOMAIN" store bench >/dev/null
    fi
    # auth_checks off: no SPF (Postfix checks none by default), no wait on this machine's DNS.
    printf 'database %s\nauth_checks off\nbind 127.0.0.1 %s announce=cmail.%s maxperip=5000 size=104857600\n' \
        "$DB" "$PORT_CMAIL" "$DOMAIN" >"$DIR/smtpd.conf"
    (ulimit -n 8192; exec "$build/frontends/cmail-smtpd/cmail-smtpd" "$DIR/smtpd.conf" nodetach) \
        >"$DIR/server.log" 2>&1 &
    echo $! >"$DIR/pid"
    wait_port "$PORT_CMAIL" 20 || { tail -5 "$DIR/server.log" >&2; die "cmail-smtpd does not listen"; }
    log "cmail-smtpd ($build) on 127.0.0.1:$PORT_CMAIL"
}
peer_stop() { stop_pidfile "$DIR/pid"; wait_port_free "$PORT_CMAIL" 10; }
peer_count() {
    [[ -f $DB ]] || { echo 0; return; }
    "$PY" -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM mailbox").fetchone()[0])' "$DB"
}
peer_wipe() { rm -f "$DB" "$DB-wal" "$DB-shm"; }
peer_main "$@"
