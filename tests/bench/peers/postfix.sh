#!/bin/bash
# tests/bench/peers/postfix.sh start|stop|count|wipe: Debian's Postfix as the SMTP intake peer,
# a private instance (own main.cf, master.cf and queue under $STATE/postfix) whose smtpd listens
# on 127.0.0.1:$PORT_POSTFIX (10025). Every recipient at example.test goes through cleanup
# (which fsyncs the queue file before the 250) and qmgr to virtual(8), which writes (and
# fsyncs) one maildir file per message in $STATE/postfix/mail/bench/Maildir/new, owned by
# nobody. Any other destination is an error: nothing leaves the machine. As root.
set -eu
source "$(dirname "$0")/common.sh"
DIR=$STATE/postfix
NEW=$DIR/mail/bench/Maildir/new

write_config() {
    mkdir -p "$DIR/etc" "$DIR/queue" "$DIR/mail"
    install -d -o postfix -g postfix -m 0700 "$DIR/data"
    install -d -o "$VUSER" -g "$(id -gn "$VUSER")" -m 0700 "$DIR/mail/bench"
    cat >"$DIR/etc/main.cf" <<CF
# written by tests/bench/peers/postfix.sh: a benchmark instance on loopback
compatibility_level = 3.6
config_directory = $DIR/etc
queue_directory = $DIR/queue
data_directory = $DIR/data
meta_directory = /etc/postfix
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
syslog_name = postfix-cmail-bench
maillog_file = $DIR/maillog
maillog_file_prefixes = $DIR
myhostname = postfix.$DOMAIN
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_peername_lookup = no
alias_maps =
alias_database =
local_recipient_maps =
notify_classes =
biff = no
message_size_limit = 104857600
default_process_limit = 500
default_transport = error:the benchmark instance delivers nothing outside $DOMAIN
relay_transport = \$default_transport
virtual_mailbox_domains = $DOMAIN
virtual_mailbox_base = $DIR/mail
virtual_mailbox_maps = static:bench/Maildir/
virtual_uid_maps = static:$(id -u "$VUSER")
virtual_gid_maps = static:$(id -g "$VUSER")
virtual_minimum_uid = 1
virtual_mailbox_limit = 0
CF
    # Only the services an MX that delivers locally uses; nothing chrooted (private paths).
    {
        echo "127.0.0.1:$PORT_POSTFIX inet n - n - 400 smtpd"
        # name:private:unpriv:wakeup:maxproc[:command]; virtual(8) runs as root to write as nobody
        for s in "pickup:n:-:60:1" "cleanup:n:-:-:0" "qmgr:n:-:300:1" "rewrite:-:-:-:-:trivial-rewrite" \
                 "bounce:-:-:-:0" "defer:-:-:-:0:bounce" "trace:-:-:-:0:bounce" "verify:-:-:-:1" \
                 "flush:n:-:1000?:0" "proxymap:-:-:-:-" "showq:n:-:-:-" "error:-:-:-:-" "retry:-:-:-:-:error" \
                 "discard:-:-:-:-" "virtual:-:n:-:-" "anvil:-:-:-:1" "scache:-:-:-:1"; do
            IFS=: read -r name private unpriv wakeup maxproc command <<<"$s"
            echo "$name unix $private $unpriv n $wakeup $maxproc ${command:-$name}"
        done
        echo "postlog unix-dgram n - n - 1 postlogd"
    } >"$DIR/etc/master.cf"
}

peer_start() {
    listening "$PORT_POSTFIX" && die "port $PORT_POSTFIX is taken"
    write_config
    : >"$DIR/maillog"   # one log per start
    postfix -c "$DIR/etc" start >"$DIR/start.log" 2>&1 || { cat "$DIR/start.log" >&2; die "postfix did not start"; }
    wait_port "$PORT_POSTFIX" 20 || die "postfix does not listen on $PORT_POSTFIX"
    log "postfix on 127.0.0.1:$PORT_POSTFIX, maildir $NEW"
}
peer_stop() {
    [[ -f $DIR/etc/main.cf ]] || return 0
    local pid
    pid=$(tr -dc 0-9 <"$DIR/queue/pid/master.pid" 2>/dev/null || true)
    postfix -c "$DIR/etc" stop >/dev/null 2>&1 || true
    stop_pid "$pid" 15
    wait_port_free "$PORT_POSTFIX" 10
}
peer_count() { count_files "$NEW"; }
peer_wipe() {
    rm -rf "$DIR/mail/bench/Maildir"
    local d   # a stopped run may leave mail queued: do not deliver it into the next one
    for d in incoming active deferred hold maildrop corrupt bounce defer trace; do
        [[ -d $DIR/queue/$d ]] && find "$DIR/queue/$d" -mindepth 1 -type f -delete
    done
    return 0
}
peer_main "$@"
