# shellcheck shell=bash
# cmail-popd as a POP3 peer of the shared benchmark scripts (peers/servers/<name>.sh contract,
# see peers/lib.sh above load_server), for bench-retr.sh's pop3-all and for
# bench-pop3-concurrent.sh. Copy this file to peers/servers/cmail-pop3.sh; CMAIL_BUILD is the
# project's build directory and CMAIL_SRC its source tree (default: the build's parent).
# srv_populate sends the messages through a cmail-smtpd started for it, so they take the
# path real mail takes. cmail has no IMAP server yet: srv_imap_port names a port nothing
# listens on, and bench-retr.sh's IMAP scenarios record an error for it.
SRV_NAME=cmail-pop3
CMAIL_BUILD=${CMAIL_BUILD:-/work/main/build}
CMAIL_SRC=${CMAIL_SRC:-$CMAIL_BUILD/..}
PORT_CMAIL_POP3=${PORT_CMAIL_POP3:-10111}
PORT_CMAIL_POP3_SMTP=${PORT_CMAIL_POP3_SMTP:-10033}
PORT_CMAIL_NO_IMAP=${PORT_CMAIL_NO_IMAP:-10144}
CP_DIR="$STATE/cmail-pop3"
CP_DB="$CP_DIR/master.db3"
CP_ADMIN="$CMAIL_BUILD/frontends/cmail-admin/cmail-admin"
SRV_DESC="cmail-popd $(git -C "$CMAIL_SRC" rev-parse --short HEAD 2>/dev/null), SQLite $(sqlite3 --version 2>/dev/null | cut -d' ' -f1), master database"
SRV_DURABILITY="read path; deletions in one SQLite transaction (WAL, synchronous=FULL) before QUIT's +OK"

srv_port() { echo "$PORT_CMAIL_POP3_SMTP"; }
srv_pop3_port() { echo "$PORT_CMAIL_POP3"; }
srv_imap_port() { echo "$PORT_CMAIL_NO_IMAP"; }
srv_drop_index() { :; }  # nothing cached outside the database

srv_start() {
    mkdir -p "$CP_DIR"
    port_listening "$PORT_CMAIL_POP3" && die "port $PORT_CMAIL_POP3 busy"
    cat >"$CP_DIR/popd.conf" <<CONF
database $CP_DB
bind 127.0.0.1 $PORT_CMAIL_POP3 announce=cmail.bench maxperip=5000
CONF
    (ulimit -n 8192; exec "$CMAIL_BUILD/frontends/cmail-popd/cmail-popd" "$CP_DIR/popd.conf" nodetach) \
        >"$CP_DIR/server.log" 2>&1 &
    echo $! >"$CP_DIR/pid"
    wait_port "$PORT_CMAIL_POP3" 20 || { tail -5 "$CP_DIR/server.log" >&2; return 1; }
}
srv_pid() { cat "$CP_DIR/pid" 2>/dev/null; }
srv_stop() { stop_pid "$(srv_pid)" 15; rm -f "$CP_DIR/pid"; wait_port_free "$PORT_CMAIL_POP3" 10; }
srv_count() {
    [[ -f $CP_DB ]] || { echo 0; return; }
    sqlite3 "file:$CP_DB?mode=ro" "SELECT count(*) FROM mailbox" 2>/dev/null || echo 0
}
srv_wipe() { rm -f "$CP_DB" "$CP_DB-wal" "$CP_DB-shm"; }

# cp_populate USER_OR_PATTERN USERS COUNT SIZE: users (bench, or u01..uNN with password bench)
# and their mail, sent through a temporary cmail-smtpd.
cp_populate() {
    local who=$1 users=$2 count=$3 size=$4 u k smtpd_pid
    mkdir -p "$CP_DIR"
    [[ -s $CP_DB ]] || "$CP_ADMIN" -d "$CP_DB" init >/dev/null
    for ((k = 1; k <= (users ? users : 1); k++)); do
        if ((users)); then printf -v u "$who" "$k"; else u=$who; fi
        "$CP_ADMIN" -d "$CP_DB" user add "$u" bench 2>/dev/null || true
        "$CP_ADMIN" -d "$CP_DB" address add "$u@example.test" store "$u" >/dev/null
        "$CP_ADMIN" -d "$CP_DB" popd enable "$u" 2>/dev/null || true
    done
    printf 'database %s\nbind 127.0.0.1 %s announce=cmail.bench\n' "$CP_DB" "$PORT_CMAIL_POP3_SMTP" >"$CP_DIR/smtpd.conf"
    "$CMAIL_BUILD/frontends/cmail-smtpd/cmail-smtpd" "$CP_DIR/smtpd.conf" nodetach >"$CP_DIR/smtpd.log" 2>&1 &
    smtpd_pid=$!
    wait_port "$PORT_CMAIL_POP3_SMTP" 20 || die "cmail-smtpd did not start"
    "$PY" "$CMAIL_SRC/tests/bench/pop3_populate.py" --port "$PORT_CMAIL_POP3_SMTP" --user "$who" \
        --users "$users" --count "$count" --size "$size" || die "populate failed"
    stop_pid "$smtpd_pid" 15
    wait_port_free "$PORT_CMAIL_POP3_SMTP" 10
}

srv_populate() {  # N SIZE: user bench/bench
    srv_wipe
    cp_populate bench 0 "$1" "${2:-4096}"
}
