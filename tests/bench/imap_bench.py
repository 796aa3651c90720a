#!/usr/bin/python3
"""IMAP side by side: cmail-imapd and Dovecot on loopback, the same messages, the same client,
in one run. Not a test: run on demand, record the figures in docs/performance.md.

Usage (as root, so that both servers may have IDLERS descriptors; Debian's dovecot-imapd):
    tests/bench/imap_bench.py BUILD_DIR [MESSAGES] [CLIENTS] [IDLERS]

MESSAGES messages of about 4 KiB (default 10000) are delivered to cmail through cmail-smtpd
(SMTP, 8 sessions, a separate process from cmail-imapd, both on one master database); the octets
cmail stored are then read back and written into Dovecot's Maildir, so that both serve exactly
the same messages. Each server gets one untimed SELECT and FETCH first (Dovecot builds its index
there); each timed figure is the best of RUNS (default 3). The client is a minimal raw-socket
IMAP client (this file), so that the figures are the servers' and not imaplib's parsing:

  append     APPEND of min(MESSAGES, 1000) messages to a new folder over one connection, each
             durable before its OK (LITERAL+), msg/s
  select     SELECT INBOX, seconds
  envelope   FETCH 1:* (FLAGS RFC822.SIZE ENVELOPE), seconds
  bodies     FETCH 1:* BODY.PEEK[], seconds (and MB/s)
  headers    CLIENTS (default 50) connections at once, each LOGIN, SELECT INBOX and
             FETCH 1:* BODY.PEEK[HEADER], LOGOUT: seconds until the last is done
  search     SEARCH BODY "<a word in one message>", seconds
  store      STORE 1:* +FLAGS.SILENT (\\Seen) then -FLAGS.SILENT (\\Seen), seconds
  idle       one session in IDLE on INBOX; 20 deliveries, each timed from the end of the delivery
             (cmail: the SMTP 250 from cmail-smtpd; Dovecot: the exit of dovecot-lda, its own
             local delivery agent, which writes the Maildir and its index) to the untagged EXISTS
             read by the idling client: median and worst, milliseconds
  memory     IDLERS (default 1000) sessions logged in, INBOX selected, in IDLE: the growth of the
             proportional set size (Pss, /proc/PID/smaps_rollup) summed over every process of the
             server (cmail: cmail-imapd; Dovecot: master, login, auth, imap processes...) divided
             by IDLERS, KiB per session

Dovecot runs with limits raised for IDLERS sessions (process and client limits, connections per
user and address); cmail-imapd with maxperip raised likewise. State lives in a temporary
directory removed at the end; both servers listen on 127.0.0.1 only.
"""
import os
import resource
import shutil
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from dovecot import Dovecot  # noqa: E402
from harness import start_daemon, stop_daemon  # noqa: E402

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
N = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
CLIENTS = int(sys.argv[3]) if len(sys.argv) > 3 else 50
IDLERS = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
RUNS = int(os.environ.get("RUNS", "3"))
SMTPD = os.path.join(BUILD, "frontends", "cmail-smtpd", "cmail-smtpd")
IMAPD = os.path.join(BUILD, "frontends", "cmail-imapd", "cmail-imapd")
ADMIN = os.path.join(BUILD, "frontends", "cmail-admin", "cmail-admin")
LDA = "/usr/lib/dovecot/dovecot-lda"


def message(i):
    words = " ".join(f"word{(i * 7 + k) % 997}" for k in range(470))
    body = "\r\n".join(words[j:j + 72] for j in range(0, len(words), 72))
    return (f"From: Sender {i} <sender{i}@example.org>\r\nTo: test@local.test\r\nSubject: bench message {i}\r\n"
            f"Date: Thu, 03 Dec 2026 07:00:00 +0000\r\nMessage-ID: <{i}@bench>\r\n\r\n"
            f"needle{i}\r\n{body}\r\n").encode()


class Client:
    """A minimal IMAP client over one socket: commands in, the whole response out as octets."""

    def __init__(self, port, login=True):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=300)
        self.buf = b""
        self.n = 0
        self.readline()  # greeting
        if login:
            self.ok(b"LOGIN test pw")

    def readline(self):
        while b"\r\n" not in self.buf:
            self.fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def fill(self):
        data = self.sock.recv(1 << 20)
        if not data:
            raise RuntimeError("connection closed")
        self.buf += data

    def command(self, text):
        """Sends `text` with a new tag; returns the response up to and with the tagged line."""
        self.n += 1
        tag = b"t%d" % self.n
        self.sock.sendall(tag + b" " + text + b"\r\n")
        return self.until(tag)

    def until(self, tag):
        # A bytearray grows in place: reading a response of many megabytes stays linear, so
        # that the figures are the server's and not this client's copying.
        buf, at = bytearray(self.buf), 0
        mark = b"\r\n" + tag + b" "
        while True:
            end = -1
            if buf.startswith(tag + b" "):
                end = buf.find(b"\r\n")
            else:
                i = buf.find(mark, at)
                if i >= 0:
                    end = buf.find(b"\r\n", i + 2)
            if end >= 0:
                self.buf = bytes(buf[end + 2:])
                return bytes(buf[:end + 2])
            at = max(0, len(buf) - len(mark) - 2)
            data = self.sock.recv(1 << 20)
            if not data:
                raise RuntimeError("connection closed")
            buf += data

    def ok(self, text):
        resp = self.command(text)
        last = resp[:-2].rsplit(b"\r\n", 1)[-1]
        if last.split(b" ", 2)[1:2] != [b"OK"]:
            raise RuntimeError(f"{text[:60]!r}: {resp[-300:]!r}")
        return resp

    def close(self):
        self.sock.close()


def best(fn):
    """The best wall time of RUNS calls of fn()."""
    times = []
    for _ in range(RUNS):
        start = time.monotonic()
        fn()
        times.append(time.monotonic() - start)
    return min(times)


def pss_kib(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


class CmailServer:
    name = "cmail-imapd"

    def __init__(self, root):
        self.db = os.path.join(root, "master.db3")
        for args in (["init"], ["user", "add", "test", "pw"], ["address", "add", "test@local.test", "store", "test"],
                     ["imapd", "enable", "test"]):
            subprocess.run([ADMIN, "-d", self.db, *args], check=True, capture_output=True, timeout=60)
        conf = os.path.join(root, "smtpd.conf")
        with open(conf, "w") as f:
            f.write(f"database {self.db}\nauth_checks off\nbind 127.0.0.1 0 announce=mx.local.test\n")
        self.smtpd, ports = start_daemon(SMTPD, conf, 1, "nodrop")
        self.smtp = ports["smtp"][0]
        conf = os.path.join(root, "imapd.conf")
        with open(conf, "w") as f:
            f.write(f"database {self.db}\nmaxperuser 0\nbind 127.0.0.1 0 maxperip={IDLERS + CLIENTS + 10}\n")
        self.imapd, ports = start_daemon(IMAPD, conf, 1, "nodrop")
        self.port = ports["imap"][0]

    def deliver(self, data):
        """Delivers one message; returns when the delivery was done (the 250 to the DATA)."""
        with smtplib.SMTP("127.0.0.1", self.smtp, timeout=60) as s:
            s.sendmail("sender@remote.test", ["test@local.test"], data)
            return time.monotonic()

    def populate(self, messages):
        # One session keeps the arrival order, so that message i is sequence number i + 1.
        with smtplib.SMTP("127.0.0.1", self.smtp, timeout=60) as s:
            for data in messages:
                s.sendmail("sender@remote.test", ["test@local.test"], data)

    def pids(self):
        return [self.imapd.pid]

    def stop(self):
        stop_daemon(self.imapd)
        stop_daemon(self.smtpd)


class DovecotServer:
    name = "dovecot"

    def __init__(self, root, messages):
        limits = f"""default_process_limit = {IDLERS + CLIENTS + 100}
default_client_limit = {4 * (IDLERS + CLIENTS + 100)}
default_vsz_limit = 1G
protocol imap {{
  mail_max_userip_connections = {IDLERS + CLIENTS + 10}
}}
"""
        self.d = Dovecot(root, messages, extra=limits)
        self.port = self.d.port

    def deliver(self, data):
        # dovecot-lda as root switches to the user's uid itself (userdb); run as a normal user it
        # is that user already.
        subprocess.run([LDA, "-c", self.d.conf, "-d", "test", "-f", "sender@remote.test"], input=data,
                       check=True, capture_output=True, timeout=30)
        return time.monotonic()

    def pids(self):
        return self.d.pids()

    def stop(self):
        self.d.stop()


def fetch_count(resp):
    return resp.count(b" FETCH (")


def run(server, n):
    out = {}
    c = Client(server.port)
    # untimed: the first SELECT and FETCH (Dovecot builds its index here)
    resp = c.ok(b"SELECT INBOX")
    assert b"* %d EXISTS" % n in resp, resp[:300]
    assert fetch_count(c.ok(b"FETCH 1:* (FLAGS)")) == n

    appends = [message(100000 + i) for i in range(min(n, 1000))]
    c.ok(b"CREATE Bench")

    def append_all():
        for m in appends:
            c.ok(b"APPEND Bench {%d+}\r\n" % len(m) + m)
    start = time.monotonic()
    append_all()
    out["append"] = f"{len(appends) / (time.monotonic() - start):.0f} msg/s"

    out["select"] = f"{best(lambda: c.ok(b'SELECT INBOX')):.3f} s"
    got = []
    t = best(lambda: got.append(c.ok(b"FETCH 1:* (FLAGS RFC822.SIZE ENVELOPE)")))
    assert fetch_count(got[-1]) == n, fetch_count(got[-1])
    out["envelope"] = f"{t:.3f} s"
    got = []
    t = best(lambda: got.append(c.ok(b"FETCH 1:* BODY.PEEK[]")))
    assert fetch_count(got[-1]) == n
    out["bodies"] = f"{t:.3f} s ({len(got[-1]) / t / 1e6:.0f} MB/s)"
    target = n // 2
    got = []
    t = best(lambda: got.append(c.ok(b'SEARCH BODY "needle%d"' % target)))
    assert b"* SEARCH %d\r\n" % (target + 1) in got[-1], got[-1][:200]
    out["search"] = f"{t:.3f} s"
    t = best(lambda: (c.ok(b"STORE 1:* +FLAGS.SILENT (\\Seen)"), c.ok(b"STORE 1:* -FLAGS.SILENT (\\Seen)")))
    out["store"] = f"{t:.3f} s"
    c.ok(b"LOGOUT")
    c.close()

    def clients():
        errors = []

        def one():
            try:
                k = Client(server.port)
                k.ok(b"SELECT INBOX")
                assert fetch_count(k.ok(b"FETCH 1:* BODY.PEEK[HEADER]")) == n
                k.ok(b"LOGOUT")
                k.close()
            except Exception as e:  # reported below
                errors.append(e)
        threads = [threading.Thread(target=one) for _ in range(CLIENTS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(600)
        assert not errors, errors[:3]
    out["headers"] = f"{best(clients):.3f} s"

    # IDLE wake-up latency
    idler = Client(server.port)
    idler.ok(b"SELECT INBOX")
    idler.sock.sendall(b"i IDLE\r\n")
    assert idler.readline().startswith(b"+"), "no IDLE continuation"
    latencies = []
    exists = n
    for k in range(20):
        done = server.deliver(message(200000 + k))
        exists += 1
        while True:
            line = idler.readline()
            if line == b"* %d EXISTS" % exists:
                break
        latencies.append((time.monotonic() - done) * 1000)
        time.sleep(0.05)
    idler.sock.sendall(b"DONE\r\n")
    idler.until(b"i")
    idler.close()
    out["idle"] = f"{statistics.median(latencies):.1f} / {max(latencies):.1f} ms"

    # memory per idle session
    time.sleep(1)
    before = pss_kib(server.pids())
    idlers = []
    for _ in range(IDLERS):
        k = Client(server.port)
        k.ok(b"SELECT INBOX")
        k.sock.sendall(b"i IDLE\r\n")
        assert k.readline().startswith(b"+")
        idlers.append(k)
    time.sleep(2)
    after = pss_kib(server.pids())
    for k in idlers:
        k.close()
    out["memory"] = f"{(after - before) / IDLERS:.0f} KiB/session"
    out["memory-total"] = f"{before / 1024:.0f} -> {after / 1024:.0f} MiB"
    return out


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(4 * IDLERS + 1024, soft)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(want, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    root = tempfile.mkdtemp(prefix="cmail-imap-bench-")
    os.chmod(root, 0o755)  # Dovecot's mail processes run as its own user when we are root
    results = {}
    servers = []
    try:
        os.makedirs(os.path.join(root, "cmail"))
        cm = CmailServer(os.path.join(root, "cmail"))
        servers.append(cm)
        start = time.monotonic()
        cm.populate([message(i) for i in range(N)])
        fill = time.monotonic() - start
        print(f"cmail-smtpd: {N} messages delivered in {fill:.1f} s ({N / fill:.0f} msg/s, one session)", flush=True)
        c = Client(cm.port)
        c.ok(b"EXAMINE INBOX")
        stored = []
        for seq in range(1, N + 1, 500):
            resp = c.ok(b"FETCH %d:%d BODY.PEEK[]" % (seq, min(N, seq + 499)))
            at = 0
            while True:
                i = resp.find(b"BODY[] {", at)
                if i < 0:
                    break
                j = resp.index(b"}\r\n", i)
                size = int(resp[i + 8:j])
                stored.append(resp[j + 3:j + 3 + size])
                at = j + 3 + size
        c.close()
        assert len(stored) == N, len(stored)
        os.makedirs(os.path.join(root, "dovecot"))
        dv = DovecotServer(os.path.join(root, "dovecot"), stored)
        servers.append(dv)
        for server in servers:
            results[server.name] = run(server, N)
            print(f"{server.name}: done", flush=True)
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)
    print(f"IMAP, {N} messages of {sum(map(len, stored)) // N} octets, {CLIENTS} clients for headers, "
          f"{IDLERS} idle sessions, best of {RUNS}")
    names = list(results)
    print(f"{'':10}" + "".join(f"{n:>26}" for n in names))
    for key in results[names[0]]:
        print(f"{key:10}" + "".join(f"{results[n][key]:>26}" for n in names))


if __name__ == "__main__":
    main()
