#!/usr/bin/python3
"""SIGKILL the real cmail-smtpd while many SMTP sessions send to it, several times on one database.

Usage: smtpd_crash_test.py BUILD_DIR

Each round starts cmail-smtpd (port 0 on 127.0.0.1) on the same master database, and 16
smtplib sessions send messages to it as fast as it takes them: text of random printable bytes
in lines of random length (valid SMTP: CRLF line ends, lines under 1,000 octets, leading dots
stuffed by smtplib), mostly 0.2-20 KiB, one in ten of 200-600 KiB, each with its own
Message-ID. Every message whose final 250 arrived is recorded by its SHA-256. Once the round
has acknowledged some messages, the daemon is killed with SIGKILL at a random moment; the
clients' connection errors after that are expected and not counted (one before it fails the
test). Then, with the daemon dead:
  - SQLite's integrity and foreign-key checks pass;
  - every acknowledged message is in `mailbox.mail_data`, byte for byte after the Received
    header the daemon prepends (nothing acknowledged is lost);
  - every stored message is one that was sent, complete, and stored once (nothing torn).
A last start on the recovered database must take a message and stop cleanly.

The kill moments and the messages come from a seed printed first; CMAIL_TEST_SEED=N repeats
them (the kill lands at the same delay after the round's first acknowledgements, which is not
the same instruction on a machine under other load).
"""
import hashlib
import os
import random
import signal
import smtplib
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

from harness import start_daemon, stop_daemon, wait_for

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
SMTPD = os.path.join(BUILD, "frontends", "cmail-smtpd", "cmail-smtpd")
ADMIN = os.path.join(BUILD, "frontends", "cmail-admin", "cmail-admin")
SESSIONS = 16
ROUNDS = 5
ACKS_BEFORE_KILL = 24      # the round's acknowledgements before its random kill delay starts
PRINTABLE = bytes(0x20 + b % 95 for b in range(256))


def make_message(rng, tag):
    """A message of random printable text in CRLF lines of 0-200 octets (SMTP's limit is 998,
    RFC 5321 4.5.3.1.6), headed by a Message-ID that names it."""
    size = rng.randint(200_000, 600_000) if rng.random() < 0.1 else rng.randint(200, 20_000)
    text = rng.randbytes(size).translate(PRINTABLE)
    lines, at = [], 0
    while at < len(text):
        n = rng.randint(0, 200)
        lines.append(text[at:at + n])
        at += n
    return b"Message-ID: <%s@crash.test>\r\nSubject: crash test %s\r\n\r\n" % (tag, tag) + b"\r\n".join(lines) + b"\r\n"


def after_received(stored):
    """`stored` without the Received header the daemon prepends (its first line and the
    continuation lines after it, RFC 5322 2.2.3), or None if it does not start with one."""
    if not stored.startswith(b"Received:"):
        return None
    at = stored.index(b"\r\n") + 2
    while stored[at:at + 1] in (b" ", b"\t"):
        at = stored.index(b"\r\n", at) + 2
    return stored[at:]


class Round:
    """One daemon's life: SESSIONS client threads sending until the daemon is gone."""

    def __init__(self, port, rng_seed, number):
        self.port, self.number = port, number
        self.acked, self.sent = [], {}        # hashes of acknowledged messages; hash -> tag of every attempt
        self.lock = threading.Lock()
        self.killing = threading.Event()
        self.unexpected = []
        self.big = 0
        self.threads = [threading.Thread(target=self.client, args=(random.Random(rng_seed * 1000 + k), k))
                        for k in range(SESSIONS)]

    def client(self, rng, k):
        n = 0
        while not self.killing.is_set():
            try:
                with smtplib.SMTP("127.0.0.1", self.port, timeout=20) as s:
                    s.ehlo("crash.test")
                    while not self.killing.is_set():
                        tag = b"r%d-s%d-%d" % (self.number, k, n)
                        n += 1
                        data = make_message(rng, tag)
                        digest = hashlib.sha256(data).digest()
                        with self.lock:
                            self.sent[digest] = tag
                        s.sendmail("load@crash.test", ["bench@local.test"], data)
                        with self.lock:   # the final 250 arrived: the message must survive the kill
                            self.acked.append(digest)
                            self.big += len(data) > 100 * 1024
            except (smtplib.SMTPException, OSError) as e:
                if not self.killing.is_set():
                    self.unexpected.append(f"session {k} before the kill: {e!r}")
                return

    def count(self):
        with self.lock:
            return len(self.acked)


def check(db_path, sent, acked):
    db = sqlite3.connect(db_path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        rows = db.execute("SELECT CAST(mail_data AS BLOB) FROM mailbox WHERE mail_user = 'bench'").fetchall()
    finally:
        db.close()
    stored = {}
    for (data,) in rows:
        body = after_received(data)
        assert body is not None, f"a stored message without cmail's Received header: {data[:80]!r}"
        digest = hashlib.sha256(body).digest()
        assert digest in sent, f"a stored message that was never sent whole (torn?): {body[:80]!r}"
        stored[digest] = stored.get(digest, 0) + 1
    lost = [sent[d] for d in acked if d not in stored]
    assert not lost, f"{len(lost)} acknowledged messages lost, e.g. {lost[:3]}"
    twice = [sent[d] for d, n in stored.items() if n > 1]
    assert not twice, f"messages stored more than once: {twice[:3]}"
    return len(stored)


def main():
    seed_text = os.environ.get("CMAIL_TEST_SEED")
    seed = int(seed_text, 0) if seed_text else random.SystemRandom().randrange(1 << 32)
    print(f"seed {seed} (CMAIL_TEST_SEED={seed} repeats these messages and kill delays)", flush=True)
    rng = random.Random(seed)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="cmail-smtpd-crash-") as tmp:
        db = os.path.join(tmp, "master.db3")
        for args in (["init"], ["user", "add", "bench", "bench"], ["address", "add", "bench@local.test", "store", "bench"]):
            subprocess.run([ADMIN, "-d", db, *args], check=True, capture_output=True, timeout=30)
        conf = os.path.join(tmp, "smtpd.conf")
        with open(conf, "w") as f:
            f.write(f"verbosity 0\ndatabase {db}\nauth_checks off\nbind 127.0.0.1 0 announce=mx.local.test size=2000000\n")
        sent, acked = {}, []
        for number in range(ROUNDS):
            delay = rng.uniform(0.0, 1.0)
            proc, ports = start_daemon(SMTPD, conf, 1)
            r = Round(ports["smtp"][0], rng.randrange(1 << 32), number)
            for t in r.threads:
                t.start()
            got = wait_for(lambda: r.count() >= ACKS_BEFORE_KILL or r.unexpected or proc.poll() is not None, 30)
            if got and not r.unexpected and proc.poll() is None:
                time.sleep(delay)   # the random moment: mid-DATA, mid-commit, mid-checkpoint
            r.killing.set()
            proc.send_signal(signal.SIGKILL)
            code, err = stop_daemon(proc)
            for t in r.threads:
                t.join(30)
            context = f"round {number}, killed {delay:.3f} s after {ACKS_BEFORE_KILL} acknowledgements (CMAIL_TEST_SEED={seed})"
            assert not any(t.is_alive() for t in r.threads), f"{context}: a client still runs 30 s after the kill"
            assert code == -signal.SIGKILL, f"{context}: cmail-smtpd exited {code} before the kill: {err}"
            assert not r.unexpected, f"{context}: {r.unexpected[0]}"
            assert len(r.acked) >= ACKS_BEFORE_KILL, f"{context}: only {len(r.acked)} acknowledged within 30 s"
            sent.update(r.sent)
            acked += r.acked
            try:
                stored = check(db, sent, acked)
            except AssertionError as e:
                raise AssertionError(f"{context}: {e}") from e
            print(f"round {number}: killed {delay:.3f} s after {ACKS_BEFORE_KILL} acknowledgements, "
                  f"{len(r.acked)} acknowledged this round ({r.big} over 100 KiB), {stored} stored in all, every acknowledged one intact",
                  flush=True)
        # The database the kills left behind still serves: one more message, then a clean stop.
        proc, ports = start_daemon(SMTPD, conf, 1)
        try:
            with smtplib.SMTP("127.0.0.1", ports["smtp"][0], timeout=20) as s:
                data = b"Message-ID: <after@crash.test>\r\n\r\nafter the kills\r\n"
                sent[hashlib.sha256(data).digest()] = b"after"
                s.sendmail("load@crash.test", ["bench@local.test"], data)
                acked.append(hashlib.sha256(data).digest())
        finally:
            code, err = stop_daemon(proc)
        assert code == 0, f"cmail-smtpd on the recovered database exited {code}: {err}"
        stored = check(db, sent, acked)
    print(f"ok: {len(acked)} acknowledged messages, all present after {ROUNDS} kills "
          f"({stored} stored, {time.monotonic() - started:.1f} s)")


if __name__ == "__main__":
    main()
