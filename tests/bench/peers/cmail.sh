# shellcheck shell=bash
# cmail-smtpd as a peer of the shared benchmark scripts (peers/servers/<name>.sh contract, see
# peers/lib.sh above load_server). Copy this file to peers/servers/cmail.sh and set
# CMAIL_BUILD to the project's build directory (default: the build/ next to this repo).
SRV_NAME=cmail
CMAIL_BUILD=${CMAIL_BUILD:-/work/main/build}
PORT_CMAIL=${PORT_CMAIL:-10031}
CMAIL_DIR="$STATE/cmail"
CMAIL_DB="$CMAIL_DIR/master.db3"
SRV_DESC="cmail-smtpd $(git -C "$CMAIL_BUILD/.." rev-parse --short HEAD 2>/dev/null), SQLite $(sqlite3 --version 2>/dev/null | cut -d' ' -f1), group commit"
SRV_DURABILITY="SQLite WAL, synchronous=FULL: one WAL fdatasync per group of messages (group commit), before 250"

srv_port() { echo "$PORT_CMAIL"; }

srv_start() {
    mkdir -p "$CMAIL_DIR"
    port_listening "$PORT_CMAIL" && die "port $PORT_CMAIL busy"
    if [[ ! -s $CMAIL_DB ]]; then
        "$CMAIL_BUILD/frontends/cmail-admin/cmail-admin" -d "$CMAIL_DB" init >/dev/null
        "$CMAIL_BUILD/frontends/cmail-admin/cmail-admin" -d "$CMAIL_DB" user add bench bench
        "$CMAIL_BUILD/frontends/cmail-admin/cmail-admin" -d "$CMAIL_DB" address add bench@example.test store bench
    fi
    cat >"$CMAIL_DIR/smtpd.conf" <<CONF
database $CMAIL_DB
bind 127.0.0.1 $PORT_CMAIL announce=cmail.bench maxperip=5000
CONF
    (ulimit -n 8192; exec "$CMAIL_BUILD/frontends/cmail-smtpd/cmail-smtpd" "$CMAIL_DIR/smtpd.conf" nodetach) \
        >"$CMAIL_DIR/server.log" 2>&1 &
    echo $! >"$CMAIL_DIR/pid"
    wait_port "$PORT_CMAIL" 20 || { tail -5 "$CMAIL_DIR/server.log" >&2; return 1; }
}
srv_pid() { cat "$CMAIL_DIR/pid" 2>/dev/null; }
srv_stop() { stop_pid "$(srv_pid)" 15; rm -f "$CMAIL_DIR/pid"; wait_port_free "$PORT_CMAIL" 10; }
srv_count() {
    [[ -f $CMAIL_DB ]] || { echo 0; return; }
    sqlite3 "file:$CMAIL_DB?mode=ro" "SELECT count(*) FROM mailbox" 2>/dev/null || echo 0
}
srv_wipe() { rm -f "$CMAIL_DB" "$CMAIL_DB-wal" "$CMAIL_DB-shm"; }
