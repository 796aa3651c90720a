#!/bin/bash
# POP3 with 50 clients at once, cmail-popd or Dovecot: USERS users (u01..u50, password
# bench) with PER_USER messages of MSGSIZE octets each; every client logs in as its own user
# (cmail locks a maildrop per session, so one shared user would serialize it), LISTs and RETRs
# every message one at a time, and QUITs without deleting. RUNS runs after a warm-up; one CSV
# line per run in results/pop3-concurrent.csv. Copy next to the peers' bench scripts.
#   ./bench-pop3-concurrent.sh cmail-pop3     (needs servers/cmail-pop3.sh)
#   ./bench-pop3-concurrent.sh dovecot
# cmail stores passwords as argon2id (m=19 MiB, t=2); the peers' Dovecot has them in plain
# text. SAME_HASH=1 gives Dovecot's users the very argon2id hash cmail-admin makes (Dovecot's
# {ARGON2ID} scheme reads the parameters from the hash), so both do the same work per login.
set -u
source "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-3}
USERS=${USERS:-50}
PER_USER=${PER_USER:-200}
MSGSIZE=${MSGSIZE:-4096}
LIMIT=${LIMIT:-120}
peer=${1:?usage: $0 cmail-pop3|dovecot}
mkdir -p "$RESULTS"
CSV="$RESULTS/pop3-concurrent.csv"
[[ -s $CSV ]] || echo "peer,run,clients,ok,failed,wall_s,messages,bytes,msgs_per_s,MiB_per_s,session_p50_s,session_p99_s,logins_done_s,date" >"$CSV"

load_server "$peer"
trap 'srv_stop' EXIT
trap 'exit 130' INT TERM
srv_stop
log "populating $USERS users x $PER_USER messages of $MSGSIZE bytes for $peer"
case $peer in
    dovecot)
        # Dovecot's definition knows one user; add u01..uNN to its passwd-file and give each a
        # maildir written the way its own populate does.
        PW="{PLAIN}bench"
        if [[ -n ${SAME_HASH:-} ]]; then
            CMAIL_BUILD=${CMAIL_BUILD:-/work/main/build}
            tmpdb=$(mktemp -u /tmp/pop3-hash-XXXXXX.db3)
            "$CMAIL_BUILD/frontends/cmail-admin/cmail-admin" -d "$tmpdb" init >/dev/null
            "$CMAIL_BUILD/frontends/cmail-admin/cmail-admin" -d "$tmpdb" user add h bench
            PW="{ARGON2ID}$(sqlite3 "$tmpdb" "SELECT user_authdata FROM users")"
            rm -f "$tmpdb" "$tmpdb-wal" "$tmpdb-shm"
            log "Dovecot's users get cmail's hash: $PW"
        fi
        eval "orig_$(declare -f dc_write_config)"
        dc_write_config() {
            orig_dc_write_config
            local k u
            for ((k = 1; k <= USERS; k++)); do
                printf -v u 'u%02d' "$k"
                printf '%s:%s:%s:%s::%s\n' "$u" "$PW" "$VUID" "$VGID" "$DC_DIR/home/$u" >>"$DC_DIR/users"
            done
        }
        dc_write_config
        (
            for ((k = 1; k <= USERS; k++)); do
                printf -v u 'u%02d' "$k"
                DC_HOME="$DC_DIR/home/$u" DC_MAILDIR="$DC_DIR/home/$u/Maildir"
                install -d -o "$VUID" -g "$VGID" -m 0700 "$DC_HOME"
                dovecot_populate "$PER_USER" "$MSGSIZE"
            done
        )
        ;;
    *)
        srv_wipe
        cp_populate 'u%02d' "$USERS" "$PER_USER" "$MSGSIZE"
        ;;
esac
PORT=$(srv_pop3_port)
srv_start || die "$peer did not start"
kv() { grep -o "$1=[^ ]*" <<<"$2" | head -1 | cut -d= -f2; }
MB="$PY $(dirname "$0")/pop3_concurrent.py"
timeout $((LIMIT + 10)) $MB --port "$PORT" --clients "$USERS" --limit "$LIMIT" >/dev/null  # warm-up
for ((r = 1; r <= RUNS; r++)); do
    o=$(timeout $((LIMIT + 10)) $MB --port "$PORT" --clients "$USERS" --limit "$LIMIT")
    log "pop3-concurrent $peer run$r: $o"
    echo "$peer${SAME_HASH:+-argon2id},$r,$(kv clients "$o"),$(kv ok "$o"),$(kv failed "$o"),$(kv wall_s "$o"),$(kv messages "$o"),$(kv bytes "$o"),$(kv msgs_per_s "$o"),$(kv MiB_per_s "$o"),$(kv session_p50_s "$o"),$(kv session_p99_s "$o"),$(kv logins_done_s "$o"),$(date -u +%FT%TZ)" >>"$CSV"
done
srv_stop
srv_wipe
trap - EXIT
