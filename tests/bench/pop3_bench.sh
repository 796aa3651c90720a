#!/bin/bash
# POP3 retrieval side by side: cmail-popd and Dovecot serving the same messages on loopback,
# run alternately in one session, driven by pop3_concurrent.py. Not a timed test: the figures
# go to docs/performance.md with the command that produced them.
#
#   tests/bench/peers/install.sh                       # once, as root
#   tests/bench/pop3_bench.sh [BUILD_DIR]              # as root (Dovecot's maildirs belong to nobody)
#
# Scenarios (SCENARIOS, default "one many"):
#   one   one user with 10,000 messages, one client: USER/PASS, LIST, RETR 1..10000 one at a
#         time (waiting for each), QUIT
#   many  50 users with 200 messages each, 50 clients at once, each logged in as its own user
#         (cmail locks a maildrop for one session, RFC 1939 8), LIST, RETR all, QUIT
# Messages are pop3_populate.py's 4 KiB messages: written into Dovecot's maildirs, sent to
# cmail through a cmail-smtpd (which adds its Received header: about 4% more octets).
# Passwords: cmail keeps argon2id hashes (about 22 ms of CPU per check); Dovecot gets {PLAIN}
# ones, or with SAME_HASH=1 the very argon2id hash cmail-admin writes ({ARGON2ID}).
# RUNS [3] timed runs per server and scenario after one warm-up; SERVERS ["cmail-popd dovecot"];
# STATE [/tmp/cmail-bench]; CMAIL_BUILD when no argument is given (default: build/).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/peers/common.sh"
BUILD=$(cmail_build "${1:-}")
export CMAIL_BUILD=$BUILD STATE
SCENARIOS=${SCENARIOS:-one many}
SERVERS=${SERVERS:-cmail-popd dovecot}
RUNS=${RUNS:-3}

if [[ -n ${SAME_HASH:-} ]]; then
    tmpdb=$(mktemp -u /tmp/cmail-bench-hash-XXXXXX.db3)
    "$BUILD/frontends/cmail-admin/cmail-admin" -d "$tmpdb" init >/dev/null
    "$BUILD/frontends/cmail-admin/cmail-admin" -d "$tmpdb" user add h bench
    PASSWORD_HASH=$("$PY" -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT user_authdata FROM users").fetchone()[0])' "$tmpdb")
    rm -f "$tmpdb" "$tmpdb-wal" "$tmpdb-shm"
    export PASSWORD_SCHEME=ARGON2ID PASSWORD_HASH
    log "Dovecot's users get cmail's argon2id hash"
fi

port_of() { case $1 in cmail-popd) echo "$PORT_CMAIL_POP3" ;; dovecot) echo "$PORT_DOVECOT_POP3" ;; *) die "unknown server $1" ;; esac; }
current=
trap '[[ -n $current ]] && "$HERE/peers/$current.sh" stop' EXIT
printf '%-5s %-11s %4s %s\n' scenario server run result
for scenario in $SCENARIOS; do
    case $scenario in one) users=1 per_user=10000 ;; many) users=50 per_user=200 ;; *) die "unknown scenario $scenario" ;; esac
    for server in $SERVERS; do
        peer=$HERE/peers/$server.sh
        "$peer" stop
        "$peer" populate "$users" "$per_user" 4096 "$BUILD"
        current=$server
        "$peer" start "$BUILD"
        load=("$PY" "$HERE/pop3_concurrent.py" --port "$(port_of "$server")" --clients "$users" --limit 120)
        "${load[@]}" >/dev/null || die "$server: warm-up failed"
        for run in $(seq "$RUNS"); do
            printf '%-5s %-11s %4s %s\n' "$scenario" "$server${SAME_HASH:+ (argon2id)}" "$run" "$("${load[@]}")"
        done
        "$peer" stop
        current=
    done
done
