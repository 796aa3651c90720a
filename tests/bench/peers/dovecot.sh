#!/bin/bash
# tests/bench/peers/dovecot.sh start|stop|count|wipe|populate: Debian's Dovecot as the POP3
# retrieval peer, a private instance (own dovecot.conf, base_dir and state under
# $STATE/dovecot) with POP3 on 127.0.0.1:$PORT_DOVECOT_POP3 (10110), no TLS, USER/PASS in
# plain text on loopback. Users come from a passwd-file, each with a maildir owned by nobody.
#   dovecot.sh populate USERS PER_USER [SIZE]   users u01..uNN (password bench), PER_USER
#                                               messages of SIZE (4096) octets each
# PASSWORD_SCHEME=ARGON2ID PASSWORD_HASH=<hash> stores that hash instead of {PLAIN}bench
# (pop3_bench.sh SAME_HASH=1 passes the argon2id hash cmail-admin writes). As root.
set -eu
source "$(dirname "$0")/common.sh"
DIR=$STATE/dovecot

write_config() {
    mkdir -p "$DIR/run" "$DIR/lib" "$DIR/home"
    cat >"$DIR/dovecot.conf" <<CONF
# written by tests/bench/peers/dovecot.sh: a benchmark instance on loopback
instance_name = cmail-bench-dovecot
base_dir = $DIR/run
state_dir = $DIR/lib
log_path = $DIR/dovecot.log
protocols = pop3
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
mail_location = maildir:~/Maildir
first_valid_uid = 1
pop3_uidl_format = %08Xu%08Xv
passdb {
  driver = passwd-file
  args = $DIR/users
}
userdb {
  driver = passwd-file
  args = $DIR/users
}
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = $PORT_DOVECOT_POP3
  }
  inet_listener pop3s {
    port = 0
  }
}
CONF
    [[ -f $DIR/users ]] || : >"$DIR/users"
}

peer_start() {
    listening "$PORT_DOVECOT_POP3" && die "port $PORT_DOVECOT_POP3 is taken"
    write_config
    (ulimit -n 8192; exec dovecot -F -c "$DIR/dovecot.conf") >"$DIR/master.log" 2>&1 &
    echo $! >"$DIR/pid"
    wait_port "$PORT_DOVECOT_POP3" 20 || { cat "$DIR/master.log" >&2; die "dovecot does not listen"; }
    log "dovecot POP3 on 127.0.0.1:$PORT_DOVECOT_POP3"
}
peer_stop() { stop_pidfile "$DIR/pid"; wait_port_free "$PORT_DOVECOT_POP3" 10; }
peer_count() { find "$DIR/home" -path '*/Maildir/cur/*' -type f 2>/dev/null | wc -l; }
peer_wipe() { rm -rf "$DIR/home" "$DIR/users"; }
peer_populate() {
    local users=${1:?USERS} per_user=${2:?PER_USER} size=${3:-4096} k u
    local password="{${PASSWORD_SCHEME:-PLAIN}}${PASSWORD_HASH:-bench}"
    peer_wipe
    mkdir -p "$DIR/home"
    for ((k = 1; k <= users; k++)); do
        printf -v u 'u%02d' "$k"
        printf '%s:%s:%s:%s::%s\n' "$u" "$password" "$(id -u "$VUSER")" "$(id -g "$VUSER")" "$DIR/home/$u"
    done >"$DIR/users"
    "$PY" "$BENCH_DIR/pop3_populate.py" --maildir "$DIR/home/%s/Maildir" --users "$users" --count "$per_user" \
        --size "$size"
    chown -R "$VUSER:$(id -gn "$VUSER")" "$DIR/home"
    log "dovecot: $users users x $per_user messages of $size octets"
}
peer_main "$@"
