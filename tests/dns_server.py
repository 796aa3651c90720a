#!/usr/bin/python3
"""tests/dns_server.py: a small authoritative DNS server for tests, on loopback only.

Usage:
    /usr/bin/python3 tests/dns_server.py ZONEFILE [--lifetime SECONDS] [--query-log FILE]

ZONEFILE is JSON mapping names to their records, or to a failure mode:

    {
      "example.test":     {"MX": [[10, "mx1.example.test"], [20, "mx2.example.test"]]},
      "mx1.example.test": {"A": ["127.0.0.2"], "AAAA": ["::1"]},
      "nullmx.test":      {"MX": [[0, "."]]},
      "text.test":        {"TXT": ["v=spf1 -all"]},
      "signed.test":      {"MX": [[10, "mx.signed.test"]], "AD": true},
      "_25._tcp.mx.signed.test": {"TLSA": [[3, 1, 1, "5464253e..."]], "AD": true},
      "broken.test":      "SERVFAIL",
      "refused.test":     "REFUSED",
      "slow.test":        "DROP"
    }

Names are compared case-insensitively and without the trailing dot. The answers:
  - a name not in the file: NXDOMAIN (RFC 1035 4.1.1, RCODE 3);
  - a name without the type asked: NOERROR with no answer records (NODATA);
  - "SERVFAIL" / "REFUSED": that RCODE, for every type;
  - "DROP": no answer at all, so the client times out.
Record types: A, AAAA, MX ([preference, host]; "." is the root, RFC 7505 null MX), TXT (a
string, cut into 255-octet character-strings when longer, or a list of the record's strings),
TLSA ([usage, selector, matching type, "hex data"], RFC 6698 2.1).

"AD": true makes the name's answers (records, NODATA alike) DNSSEC-validated in the eyes of
the client: the reply has the AD bit (RFC 4035 3.2.3) when the query asked for it with the AD
or the DO bit (RFC 6840 5.7), as a validating resolver answers. Without it (and for NXDOMAIN,
SERVFAIL and the like) the AD bit stays clear: insecure. "TC": true makes the UDP answers for
the name truncated (the TC bit, no records: RFC 1035 4.2.1), so that the client asks again over
TCP, where the whole answer comes. Zone files without "AD" and "TC" keys answer as before.

The server binds 127.0.0.1 on an ephemeral port, UDP and TCP (RFC 1035 4.2.2 framing) on the
same port, prints exactly one line "dns 127.0.0.1:PORT" on stdout, flushes, and serves until
SIGTERM, until its stdin reaches end of file (only when stdin is a pipe or a socket, so keep the
write end open: subprocess.Popen(..., stdin=subprocess.PIPE, stdout=subprocess.PIPE)), or until
--lifetime seconds have passed (default 600), whichever comes first.

With --query-log, every query that parses appends one line "QTYPE name" to FILE (the name as
asked, lower case, without the trailing dot: "TXT example.test"), written and flushed before
the answer is sent, so a test that got its answer (or its client's reply) finds the line there.
A test that expects no query at all reads the file after the client is done.

The zone file is re-read whenever it changes (inode, size or mtime), so a test can change the
answers while the server runs; replace the file atomically (write a temporary file, then
os.replace) so that a quick second write is never missed and a half-written file never read. A
file that does not parse keeps the previous zone (the error goes to stderr).

From Python:
    p = subprocess.Popen(["/usr/bin/python3", "tests/dns_server.py", zone_path],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    host, port = p.stdout.readline().split()[1].split(":")
    ...
    p.terminate(); p.wait()
"""

import argparse
import json
import os
import selectors
import signal
import socket
import stat
import struct
import sys
import time

import dnslib

FAILURES = {"SERVFAIL": dnslib.RCODE.SERVFAIL, "REFUSED": dnslib.RCODE.REFUSED}


def normalize(name):
    return str(name).rstrip(".").lower()


class Zone:
    """The zone file, re-read when it changes."""

    def __init__(self, path, log=None):
        self.path = path
        self.log = log  # an open text file for --query-log, or None
        self.stamp = None
        self.names = {}
        self.refresh()

    def refresh(self):
        try:
            st = os.stat(self.path)
        except OSError as e:
            print(f"dns_server: {self.path}: {e}", file=sys.stderr)
            return
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        if stamp == self.stamp:
            return
        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
            self.names = {normalize(k): v for k, v in data.items()}
            self.stamp = stamp
        except (OSError, ValueError) as e:
            print(f"dns_server: {self.path}: {e}; keeping the previous zone", file=sys.stderr)

    def answer(self, packet, udp=False):
        """The reply to one query packet (bytes), or None to stay silent."""
        try:
            request = dnslib.DNSRecord.parse(packet)
        except Exception:  # not DNS: ignore it, as a server would
            return None
        self.refresh()
        if self.log is not None and request.questions:
            self.log.write(f"{dnslib.QTYPE.get(request.q.qtype)} {normalize(request.q.qname)}\n")
            self.log.flush()
        reply = request.reply(ra=0, aa=1)  # authoritative, no recursion
        reply.header.ad = 0
        if not request.questions:
            reply.header.rcode = dnslib.RCODE.FORMERR
            return reply.pack()
        q = request.q
        entry = self.names.get(normalize(q.qname))
        if entry is None:
            reply.header.rcode = dnslib.RCODE.NXDOMAIN
        elif entry == "DROP":
            return None
        elif isinstance(entry, str):
            reply.header.rcode = FAILURES.get(entry, dnslib.RCODE.SERVFAIL)
        else:
            qtype = dnslib.QTYPE.get(q.qtype)
            for value in entry.get(qtype, []):
                reply.add_answer(dnslib.RR(q.qname, q.qtype, rdata=rdata(qtype, value), ttl=60))
            if entry.get("AD") is True and (request.header.ad or dnssec_ok(request)):
                reply.header.ad = 1  # RFC 6840 5.7: only to a client that asks for it
            if udp and entry.get("TC") is True:
                reply.rr = []
                reply.header.tc = 1  # RFC 1035 4.2.1: ask again over TCP
        return reply.pack()


def dnssec_ok(request):
    """The DO bit of the query's EDNS0 OPT record (RFC 3225 3)."""
    for rr in request.ar:
        if rr.rtype == dnslib.QTYPE.OPT and (rr.ttl >> 15) & 1:
            return True
    return False


def rdata(qtype, value):
    if qtype == "A":
        return dnslib.A(value)
    if qtype == "AAAA":
        return dnslib.AAAA(value)
    if qtype == "MX":
        preference, host = value
        return dnslib.MX(host, preference)
    if qtype == "TXT":
        # One record of one or more character-strings of at most 255 octets (RFC 1035 3.3.14):
        # a list is the record's strings, a longer string is cut into such pieces (as a zone
        # file's author would), and the receiver joins them (RFC 7208 3.3, RFC 6376 3.6.2.2).
        strings = value if isinstance(value, list) else [value]
        pieces = []
        for s in strings:
            b = s.encode()
            pieces += [b[i:i + 255] for i in range(0, len(b), 255)] or [b""]
        return dnslib.TXT(pieces)
    if qtype == "TLSA":
        usage, selector, matching, data = value
        return dnslib.TLSA(usage, selector, matching, bytes.fromhex(data.replace(" ", "")))
    raise ValueError(f"unsupported record type {qtype}")


def bind_pair():
    """A UDP and a TCP socket on the same ephemeral 127.0.0.1 port."""
    for _ in range(50):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        port = udp.getsockname()[1]
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            tcp.bind(("127.0.0.1", port))
        except OSError:
            udp.close()
            tcp.close()
            continue
        tcp.listen(16)
        return udp, tcp, port
    raise SystemExit("dns_server: no free port for both UDP and TCP")


def stdin_watchable():
    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode
    except (OSError, ValueError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def main():
    parser = argparse.ArgumentParser(description="authoritative DNS server for tests")
    parser.add_argument("zonefile")
    parser.add_argument("--lifetime", type=float, default=600.0, help="seconds before exiting")
    parser.add_argument("--query-log", help="append one line per query to this file")
    args = parser.parse_args()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    log = open(args.query_log, "a", encoding="utf-8") if args.query_log else None
    zone = Zone(args.zonefile, log)
    udp, tcp, port = bind_pair()
    sel = selectors.DefaultSelector()
    sel.register(udp, selectors.EVENT_READ, "udp")
    sel.register(tcp, selectors.EVENT_READ, "listen")
    if stdin_watchable():
        sel.register(sys.stdin.fileno(), selectors.EVENT_READ, "stdin")
    conns = {}  # TCP connection -> bytes received so far

    print(f"dns 127.0.0.1:{port}", flush=True)
    deadline = time.monotonic() + args.lifetime
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        for key, _ in sel.select(timeout=left):
            kind = key.data
            if kind == "stdin":
                if not os.read(sys.stdin.fileno(), 4096):
                    return  # the test that started us is gone
            elif kind == "udp":
                packet, peer = udp.recvfrom(65535)
                out = zone.answer(packet, udp=True)
                if out is not None:
                    udp.sendto(out, peer)
            elif kind == "listen":
                conn, _ = tcp.accept()
                conns[conn] = b""
                sel.register(conn, selectors.EVENT_READ, "tcp")
            else:
                conn = key.fileobj
                try:
                    data = conn.recv(65535)
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(conn)
                    del conns[conn]
                    conn.close()
                    continue
                buf = conns[conn] + data
                # RFC 1035 4.2.2: each message is preceded by a two-octet length.
                while len(buf) >= 2 and len(buf) >= 2 + struct.unpack("!H", buf[:2])[0]:
                    n = struct.unpack("!H", buf[:2])[0]
                    out = zone.answer(buf[2 : 2 + n])
                    buf = buf[2 + n :]
                    if out is not None:
                        conn.sendall(struct.pack("!H", len(out)) + out)
                conns[conn] = buf


if __name__ == "__main__":
    main()
