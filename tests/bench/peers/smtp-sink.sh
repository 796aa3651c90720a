#!/bin/bash
# tests/bench/peers/smtp-sink.sh start|stop|count|wipe: Postfix's smtp-sink on
# 127.0.0.1:$PORT_SINK (10026). It answers 250 to everything and DISCARDS the mail: the
# "speed of light" for the load generator, loopback TCP and SMTP parsing, not a mail server.
set -eu
source "$(dirname "$0")/common.sh"
DIR=$STATE/smtp-sink

peer_start() {
    listening "$PORT_SINK" && die "port $PORT_SINK is taken"
    mkdir -p "$DIR"
    # -u: drop root after binding; -m: simultaneous connections; 1024: listen backlog
    (ulimit -n 8192; exec smtp-sink -4 -u "$VUSER" -h sink.$DOMAIN -m 2000 "127.0.0.1:$PORT_SINK" 1024) \
        >"$DIR/sink.log" 2>&1 &
    echo $! >"$DIR/pid"
    wait_port "$PORT_SINK" 10 || die "smtp-sink does not listen on $PORT_SINK"
    log "smtp-sink on 127.0.0.1:$PORT_SINK"
}
peer_stop() { stop_pidfile "$DIR/pid"; wait_port_free "$PORT_SINK" 10; }
peer_count() { echo 0; }   # nothing is stored
peer_wipe() { :; }
peer_main "$@"
