#!/usr/bin/env bash
# Outbound delivery throughput: N queued 4 KiB messages to one Postfix smtp-sink on loopback,
# delivered by cmail-dispatchd and by Postfix relaying the same N to the same sink, in one run.
# Not a timed test: it prints messages/s for both; the figures go to docs/performance.md.
#
#   tests/bench/delivery_bench.sh [BUILD_DIR] [N]        (as root; needs postfix, python3-dnslib)
#   CMAIL_EXTRA="maxperdestination 20" tests/bench/...   (extra cmail-dispatchd directives)
#
# Both start with a full queue and the sink already listening, so what is measured is the queue
# runner, the SMTP client and the queue bookkeeping, from the start of the run until the queue is
# empty:
#  - cmail: a fresh master database whose outbox holds N entries (one recipient each, like
#    Postfix's N queue files), bench@example.test; example.test's MX is 127.0.0.1 from
#    tests/dns_server.py; `cmail-dispatchd CONF deliver example.test` runs once and exits when
#    every entry is settled (each removal committed durably).
#  - Postfix: a private instance (own config and queue under $STATE) receives the N messages with
#    smtp-source while `defer_transports = smtp` keeps them queued; then the deferral is lifted,
#    `postqueue -f` starts the run, and the clock stops when the queue is empty. Postfix relays
#    to [127.0.0.1]:SINK with its default concurrency (up to 20 connections to one destination).
# Everything listens on 127.0.0.1; every wait has a deadline.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=$(cd "${1:-$HERE/../../build}" && pwd)
N=${2:-10000}
SIZE=4096
SINK_PORT=${SINK_PORT:-10126}
PF_PORT=${PF_PORT:-10125}
STATE=${STATE:-/tmp/cmail-delivery-bench}
PY=/usr/bin/python3

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }
listening() { ss -Hltn "sport = :$1" | grep -q .; }
wait_port() { for _ in $(seq 1 200); do listening "$1" && return 0; sleep 0.05; done; return 1; }
now() { date +%s.%N; }

command -v smtp-sink >/dev/null || die "smtp-sink missing: apt-get install postfix (see tests/bench/README.md)"
[[ -x $BUILD/frontends/cmail-dispatchd/cmail-dispatchd ]] || die "build cmail first: ninja -C $BUILD"

rm -rf "$STATE"
mkdir -p "$STATE"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    [[ -f $STATE/postfix/etc/main.cf ]] && postfix -c "$STATE/postfix/etc" stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

log "smtp-sink on 127.0.0.1:$SINK_PORT"
listening "$SINK_PORT" && die "port $SINK_PORT busy"
(ulimit -n 8192; exec smtp-sink -4 -u nobody -h sink.example.test -m 1000 "127.0.0.1:$SINK_PORT" 1024) \
    >"$STATE/sink.log" 2>&1 &
pids+=($!)
wait_port "$SINK_PORT" || die "smtp-sink did not start"

# ---- cmail ---------------------------------------------------------------------------------
log "cmail: queueing $N messages"
DB=$STATE/cmail/master.db3
mkdir -p "$STATE/cmail"
"$BUILD/frontends/cmail-admin/cmail-admin" -d "$DB" init >/dev/null
$PY - "$DB" "$N" "$SIZE" <<'PY'
import sqlite3, sys, os
db, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
c = sqlite3.connect(db)
body = ("x" * 70 + "\r\n") * (size // 72)
with c:
    for i in range(n):
        data = (f"From: <loadgen@example.test>\r\nTo: <bench@example.test>\r\nSubject: bench {i}\r\n"
                f"Message-ID: <{i}.bench@loadgen.example.test>\r\n\r\n{body}")
        c.execute("INSERT INTO outbox (mail_remote, mail_envelopefrom, mail_envelopeto, mail_submitter, mail_data,"
                  " mail_queueid, mail_next_attempt) VALUES (NULL, 'loadgen@example.test', 'bench@example.test',"
                  " 'loadgen', ?, ?, 0)", (data, "Q%012d" % i))
PY
echo '{"example.test": {"MX": [[10, "mx.example.test"]]}, "mx.example.test": {"A": ["127.0.0.1"]}}' >"$STATE/zone.json"
coproc DNS { exec $PY "$HERE/../dns_server.py" "$STATE/zone.json" --lifetime 600; }
read -r _ dns_addr <&"${DNS[0]}"
pids+=("$DNS_PID")
cat >"$STATE/cmail/dispatchd.conf" <<CONF
verbosity 0
database $DB
announce cmail.bench.test
resolver $dns_addr
portprio $SINK_PORT
${CMAIL_EXTRA:-}
CONF
t0=$(now)
"$BUILD/frontends/cmail-dispatchd/cmail-dispatchd" "$STATE/cmail/dispatchd.conf" nodetach deliver example.test \
    >"$STATE/cmail/out.log" 2>&1
t1=$(now)
left=$(sqlite3 "$DB" "SELECT count(*) FROM outbox")
[[ $left == 0 ]] || die "cmail left $left entries queued (see $STATE/cmail/out.log)"
cmail_rate=$(echo "$N / ($t1 - $t0)" | bc -l)
log "cmail: $N delivered in $(printf %.2f "$(echo "$t1 - $t0" | bc -l)") s"

# ---- Postfix -------------------------------------------------------------------------------
PF=$STATE/postfix
mkdir -p "$PF/etc" "$PF/queue"
install -d -o postfix -g postfix -m 0700 "$PF/data"
cat >"$PF/etc/main.cf" <<EOF
compatibility_level = 3.6
config_directory = $PF/etc
queue_directory = $PF/queue
data_directory = $PF/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
shlib_directory = /usr/lib/postfix
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
syslog_name = postfix-delivery-bench
maillog_file = $PF/maillog
maillog_file_prefixes = /var, /dev/stdout, $PF
myhostname = postfix.bench.test
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
local_recipient_maps =
smtpd_peername_lookup = no
biff = no
notify_classes =
relayhost = [127.0.0.1]:$SINK_PORT
smtp_tls_security_level = none
smtp_dns_support_level = disabled
defer_transports = smtp
EOF
cat >"$PF/etc/master.cf" <<EOF
127.0.0.1:$PF_PORT inet n - n - 100 smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
postfix -c "$PF/etc" start >"$PF/start.log" 2>&1 || { cat "$PF/start.log" >&2; die "postfix did not start"; }
wait_port "$PF_PORT" || die "postfix did not listen"
log "postfix: queueing $N messages (deferred)"
smtp-source -4 -s 20 -m "$N" -l "$SIZE" -f loadgen@example.test -t bench@example.test \
    -M loadgen.example.test "127.0.0.1:$PF_PORT" >/dev/null
queued() { find "$PF/queue/deferred" "$PF/queue/active" "$PF/queue/incoming" "$PF/queue/maildrop" -type f 2>/dev/null | wc -l; }
deferred() { find "$PF/queue/deferred" -type f 2>/dev/null | wc -l; }
for _ in $(seq 1 1200); do [[ $(deferred) -ge $N ]] && break; sleep 0.1; done
[[ $(deferred) -ge $N ]] || die "postfix queued only $(deferred) of $N"
postconf -c "$PF/etc" -e "defer_transports =" 
postfix -c "$PF/etc" reload >/dev/null 2>&1
sleep 1
t0=$(now)
postqueue -c "$PF/etc" -f
for _ in $(seq 1 6000); do [[ $(queued) == 0 ]] && break; sleep 0.05; done
t1=$(now)
[[ $(queued) == 0 ]] || die "postfix left $(queued) messages queued"
postfix_rate=$(echo "$N / ($t1 - $t0)" | bc -l)
log "postfix: $N delivered in $(printf %.2f "$(echo "$t1 - $t0" | bc -l)") s"

printf '%-10s %10s\n' "mta" "msg/s"
printf '%-10s %10.0f\n' "cmail" "$cmail_rate" "postfix" "$postfix_rate"
printf 'ratio cmail/postfix: %.2f\n' "$(echo "$cmail_rate / $postfix_rate" | bc -l)"
