#!/usr/bin/python3
"""Rows that other programs write into the database while the daemons run.

Usage: foreign_rows_test.py BUILD_DIR

cmail's modules and tools meet in the master database: the original's tools, site scripts and
SQLite editors insert and edit rows directly, with only cmail's version-9 columns
(docs/compatibility.md#database-rows-written-by-other-programs). Here Python's sqlite3 plays
that program against the real cmail-smtpd, cmail-popd and cmail-dispatchd:

- mailbox rows inserted into the master and into a user database (TEXT and BLOB mail_data,
  CRLF and bare LF line ends, no final line end, NULL) show up in the next POP3 session, in
  insertion order, with LIST sizes equal to the octets RETR sends, unique and stable UIDLs,
  and DELE + QUIT removes them;
- outbox rows are delivered by cmail-dispatchd to an aiosmtpd sink, found by its poll, or at
  once when the writer touches the notify file;
- users, addresses, popd and smtpd rows edited by hand take effect without a restart.

Every wait is bounded and waits for the event itself.
"""
import hashlib
import os
import poplib
import re
import smtplib
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import unittest

from aiosmtpd.controller import Controller

import harness
from harness import start_daemon, stop_daemon, wait_for

BUILD = sys.argv.pop(1) if len(sys.argv) > 1 else "build"
HERE = os.path.dirname(os.path.abspath(__file__))
SMTPD = os.path.join(BUILD, "frontends", "cmail-smtpd", "cmail-smtpd")
POPD = os.path.join(BUILD, "frontends", "cmail-popd", "cmail-popd")
DISPATCHD = os.path.join(BUILD, "frontends", "cmail-dispatchd", "cmail-dispatchd")
ADMIN = os.path.join(BUILD, "frontends", "cmail-admin", "cmail-admin")
DNS_SERVER = os.path.join(HERE, "..", "dns_server.py")


def write(db, sql, *args):
    """One statement in its own transaction, as a script or an SQLite editor would run it."""
    c = sqlite3.connect(db, timeout=30)
    try:
        c.execute("PRAGMA foreign_keys = ON")
        cur = c.execute(sql, args)
        c.commit()
        return cur.lastrowid
    finally:
        c.close()


def query(db, sql, *args):
    c = sqlite3.connect(db, timeout=30)
    try:
        return c.execute(sql, args).fetchall()
    finally:
        c.close()


def insert_mail(db, user, ident, data):
    """A mailbox row with only the version-9 columns; `data` str is stored as TEXT, bytes as a BLOB."""
    return write(db, "INSERT INTO mailbox (mail_user, mail_ident, mail_envelopeto, mail_envelopefrom, mail_submitter, "
                     "mail_proto, mail_data) VALUES (?, ?, ?, 'script@remote.test', 'a site script', 'smtp', ?)",
                 user, ident, user + "@local.test", data)


def on_the_wire(data):
    """What POP3 RETR sends for stored `data` before dot-stuffing: CRLF line ends, a final CRLF."""
    if data is None:
        return b""
    raw = data.encode() if isinstance(data, str) else data
    text = re.sub(rb"\r\n|\r|\n", b"\r\n", raw)
    return text if not text or text.endswith(b"\r\n") else text + b"\r\n"


def admin(db, *args):
    subprocess.run([ADMIN, "-d", db, *args], check=True, capture_output=True, timeout=30)


def legacy_hash(salt, password):
    """cmail's password format: salt, a colon, lowercase hex SHA-256 of salt and password."""
    return salt + ":" + hashlib.sha256((salt + password).encode()).hexdigest()


def pop_login(port, user, password):
    p = poplib.POP3("127.0.0.1", port, timeout=30)
    try:
        p.user(user)
        p.pass_(password)
    except Exception:
        p.close()
        raise
    return p


def retr(p, n):
    """RETR n: (the octets after unstuffing, with their CRLFs, the size RETR announced)."""
    resp, lines, _ = p.retr(n)
    return b"".join(line + b"\r\n" for line in lines), int(resp.split()[1])


class Sink:
    """An aiosmtpd server on 127.0.0.2 that records what it accepts."""

    def __init__(self, port):
        self.messages = []
        self.lock = threading.Lock()
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                with sink.lock:
                    sink.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
                return "250 2.0.0 queued"

        self.controller = Controller(Handler(), hostname="127.0.0.2", port=port)
        self.controller.start()

    def count(self):
        with self.lock:
            return len(self.messages)

    def stop(self):
        self.controller.stop()


class Dns:
    """tests/dns_server.py answering example.test's MX with 127.0.0.2."""

    def __init__(self, tmp):
        path = os.path.join(tmp, "zone.json")
        with open(path, "w") as f:
            f.write('{"example.test": {"MX": [[10, "mx.example.test"]]}, "mx.example.test": {"A": ["127.0.0.2"]}}')
        self.proc = subprocess.Popen(["/usr/bin/python3", DNS_SERVER, path, "--lifetime", "300"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().split()
        assert line and line[0] == "dns", line
        self.address = line[1]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.proc.stdin.close()
        self.proc.stdout.close()


def free_port(host="127.0.0.2"):
    s = socket.socket()
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


class ForeignRowsTest(unittest.TestCase):
    """cmail-smtpd and cmail-popd on one master database; alice's mail is in the master,
    carol's in her user database; alice may also send (smtpd row, router any)."""

    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="cmail-foreign-")
        self.addCleanup(tmp.cleanup)
        self.tmp = tmp.name
        self.db = os.path.join(self.tmp, "master.db3")
        self.carol_db = os.path.join(self.tmp, "carol.db3")
        c = sqlite3.connect(self.carol_db)
        c.executescript(harness.v9_install_sql("user"))  # cmail's install_user.sql
        c.close()
        admin(self.db, "init")
        for user, pw in (("alice", "wonderland"), ("carol", "singer")):
            admin(self.db, "user", "add", user, pw)
            admin(self.db, "address", "add", f"{user}@local.test", "store", user)
            admin(self.db, "popd", "enable", user)
        admin(self.db, "user", "userdb", "carol", self.carol_db)
        admin(self.db, "smtpd", "enable", "alice", "any")
        self.daemons = []
        conf = os.path.join(self.tmp, "smtpd.conf")
        with open(conf, "w") as f:
            f.write(f"database {self.db}\nauth_checks off\nbind 127.0.0.1 0 announce=mx.local.test\n"
                    f"bind 127.0.0.1 0 announce=submit.local.test auth\n")
        smtpd, ports = start_daemon(SMTPD, conf, 2)
        self.daemons.append(("cmail-smtpd", smtpd))
        self.smtp, self.submission = ports["smtp"]
        conf = os.path.join(self.tmp, "popd.conf")
        with open(conf, "w") as f:
            f.write(f"database {self.db}\nbind 127.0.0.1 0 announce=pop.local.test\n")
        popd, ports = start_daemon(POPD, conf, 1)
        self.daemons.append(("cmail-popd", popd))
        self.pop3 = ports["pop3"][0]
        self.addCleanup(self.stop_daemons)

    def stop_daemons(self):
        for name, proc in reversed(self.daemons):
            code, err = stop_daemon(proc)
            self.assertEqual(code, 0, f"{name} exited {code}: {err}")
            self.assertNotIn("Sanitizer", err)
        self.daemons = []

    def send(self, to, body, subject="smtp"):
        msg = f"Subject: {subject}\r\nFrom: sender@remote.test\r\n\r\n{body}"
        with smtplib.SMTP("127.0.0.1", self.smtp, timeout=30) as s:
            s.sendmail("sender@remote.test", [to], msg.encode())

    def check_maildrop(self, user, password, expected):
        """Logs in, checks STAT, LIST, UIDL and RETR against `expected` (the messages in order,
        as RETR must send them); returns (the session, the unique-ids)."""
        p = pop_login(self.pop3, user, password)
        count, total = p.stat()
        self.assertEqual(count, len(expected))
        _, listing, _ = p.list()
        sizes = [int(line.split()[1]) for line in listing]
        self.assertEqual(sum(sizes), total)
        for i, want in enumerate(expected):
            got, announced = retr(p, i + 1)
            self.assertEqual(got, want, f"message {i + 1}")  # in insertion order
            self.assertEqual(len(got), sizes[i])  # LIST's size is what RETR sent, in octets
            self.assertEqual(announced, sizes[i])
        _, uids, _ = p.uidl()
        uids = [u.split()[1] for u in uids]
        self.assertEqual(len(set(uids)), len(expected))
        return p, uids

    def test_mailbox_rows_in_the_master(self):
        self.send("alice@local.test", "by SMTP before\r\n", "before")
        rows = [("ext-1", "Subject: text\r\n\r\nCRLF text, as cmail stored it, no final line end"),
                ("ext-1", b"Subject: blob\n\nbare LF lines\n.leading dot\n"),  # the same ident again
                (None, "Subject: utf-8\n\ngr\u00fc\u00dfe, LF only\n"),
                ("ext-4", b"Subject: cr\r\rbare CR\r"),
                ("ext-5", None)]
        ids = [insert_mail(self.db, "alice", ident, data) for ident, data in rows]
        self.send("alice@local.test", "by SMTP after\r\n", "after")
        stored = query(self.db, "SELECT mail_data FROM mailbox WHERE mail_user = 'alice' ORDER BY mail_id")
        expected = [on_the_wire(r[0]) for r in stored]
        self.assertTrue(expected[0].endswith(b"by SMTP before\r\n"))
        self.assertEqual(expected[1:6], [on_the_wire(d) for _, d in rows])
        self.assertTrue(expected[6].endswith(b"by SMTP after\r\n"))
        p, uids = self.check_maildrop("alice", "wonderland", expected)
        self.assertEqual(uids[1], b"ext-1")   # mail_ident, where no other message has it
        self.assertNotEqual(uids[2], b"ext-1")
        self.assertEqual(uids[4:6], [b"ext-4", b"ext-5"])
        p.dele(2)  # the TEXT row
        p.dele(6)  # the NULL one
        self.assertEqual(p.quit(), b"+OK pop.local.test POP3 server signing off (2 messages deleted)")
        left = [r[0] for r in query(self.db, "SELECT mail_id FROM mailbox WHERE mail_user = 'alice' ORDER BY mail_id")]
        self.assertNotIn(ids[0], left)
        self.assertNotIn(ids[4], left)
        self.assertEqual(len(left), 5)
        # The next session: the same unique-ids for what is left, one more row inserted meanwhile.
        insert_mail(self.db, "alice", "ext-1", "Subject: later\r\n\r\nlater\r\n")
        p, again = self.check_maildrop("alice", "wonderland", [e for i, e in enumerate(expected) if i not in (1, 5)] +
                                       [on_the_wire("Subject: later\r\n\r\nlater\r\n")])
        self.assertEqual(again[:5], [u for i, u in enumerate(uids) if i not in (1, 5)])
        p.quit()

    def test_mailbox_rows_in_a_user_database(self):
        self.send("carol@local.test", "stored in her database\r\n")  # cmail upgrades the file
        self.assertEqual(query(self.carol_db, "SELECT COUNT(*) FROM mailbox")[0][0], 1)
        insert_mail(self.db, "carol", "m-1", "Subject: master\n\nin the master\n")
        u1 = insert_mail(self.carol_db, "carol", "u-1", b"Subject: user db\n\nas a BLOB, LF only\n")
        insert_mail(self.carol_db, "carol", "u-2", "Subject: user db\r\n\r\nas TEXT, no final CRLF")
        insert_mail(self.carol_db, "carol", "m-1", "Subject: user db\r\n\r\nan ident taken in the master\r\n")
        first = on_the_wire(query(self.carol_db, "SELECT mail_data FROM mailbox ORDER BY mail_id LIMIT 1")[0][0])
        expected = [first, on_the_wire("Subject: master\n\nin the master\n"),
                    on_the_wire(b"Subject: user db\n\nas a BLOB, LF only\n"),
                    on_the_wire("Subject: user db\r\n\r\nas TEXT, no final CRLF"),
                    on_the_wire("Subject: user db\r\n\r\nan ident taken in the master\r\n")]
        p, uids = self.check_maildrop("carol", "singer", expected)
        self.assertEqual(uids[1:4], [b"m-1", b"u-1", b"u-2"])
        self.assertNotEqual(uids[4], b"m-1")
        p.dele(3)
        p.quit()
        self.assertEqual(query(self.carol_db, "SELECT COUNT(*) FROM mailbox WHERE mail_id = ?", u1)[0][0], 0)
        self.assertEqual(query(self.carol_db, "SELECT COUNT(*) FROM mailbox")[0][0], 3)
        p, again = self.check_maildrop("carol", "singer", expected[:2] + expected[3:])
        self.assertEqual(again, uids[:2] + uids[3:])
        p.quit()

    def test_users_addresses_popd_and_smtpd_rows_edited_by_hand(self):
        # A user, an address and POP3 access inserted by hand, with cmail's password format.
        write(self.db, "INSERT INTO users (user_name, user_authdata) VALUES ('dora', ?)", legacy_hash("s4lt", "explorer"))
        write(self.db, "INSERT INTO addresses (address_expression, address_router, address_route) "
                       "VALUES ('dora@local.test', 'store', 'dora')")
        write(self.db, "INSERT INTO popd (pop_user) VALUES ('dora')")
        self.send("dora@local.test", "hello dora\r\n")
        p = pop_login(self.pop3, "dora", "explorer")
        self.assertEqual(p.stat()[0], 1)
        self.assertTrue(retr(p, 1)[0].endswith(b"hello dora\r\n"))
        p.quit()
        # Her popd row removed: no POP3 for her any more.
        write(self.db, "DELETE FROM popd WHERE pop_user = 'dora'")
        with self.assertRaises(poplib.error_proto) as e:
            pop_login(self.pop3, "dora", "explorer")
        self.assertEqual(e.exception.args[0], b"-ERR [AUTH] POP3 access is not enabled for this account")
        # The address routed elsewhere by hand: mail for it now goes to alice.
        write(self.db, "UPDATE addresses SET address_route = 'alice' WHERE address_expression = 'dora@local.test'")
        self.send("dora@local.test", "rerouted\r\n")
        self.assertEqual(query(self.db, "SELECT COUNT(*) FROM mailbox WHERE mail_user = 'alice'")[0][0], 1)

        # alice's outbound router changed by hand: her mail to a remote recipient is queued for
        # MX delivery, then for a handoff to a relay, then refused.
        def submit(subject):
            with smtplib.SMTP("127.0.0.1", self.submission, timeout=30) as s:
                s.login("alice", "wonderland")
                s.sendmail("alice@local.test", ["bob@example.test"], f"Subject: {subject}\r\n\r\nout\r\n".encode())

        submit("mx")
        write(self.db, "UPDATE smtpd SET smtpd_router = 'handoff', smtpd_route = 'relay.test:2525' WHERE smtpd_user = 'alice'")
        submit("relay")
        self.assertEqual(query(self.db, "SELECT mail_remote FROM outbox ORDER BY mail_id"), [(None,), ("relay.test:2525",)])
        write(self.db, "UPDATE smtpd SET smtpd_router = 'reject', smtpd_route = 'Not from here' WHERE smtpd_user = 'alice'")
        with self.assertRaises(smtplib.SMTPException):
            submit("rejected")
        self.assertEqual(query(self.db, "SELECT COUNT(*) FROM outbox")[0][0], 2)


class OutboxRowsTest(unittest.TestCase):
    """outbox rows written by hand, with only the version-9 columns, and cmail-dispatchd."""

    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="cmail-foreign-outbox-")
        self.addCleanup(tmp.cleanup)
        self.tmp = tmp.name
        self.db = os.path.join(self.tmp, "master.db3")
        admin(self.db, "init")
        self.port = free_port()
        self.sink = Sink(self.port)
        self.addCleanup(self.sink.stop)
        self.dns = Dns(self.tmp)
        self.addCleanup(self.dns.stop)
        self.dispatchd = None

    def start(self, interval):
        conf = os.path.join(self.tmp, "dispatchd.conf")
        with open(conf, "w") as f:
            f.write(f"verbosity 3\ndatabase {self.db}\nannounce dispatch.local.test\nresolver {self.dns.address}\n"
                    f"portprio {self.port}@plain\ninterval {interval}\nbounce_from postmaster@local.test\n")
        self.dispatchd = subprocess.Popen([DISPATCHD, conf, "nodetach"], stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True)
        self.addCleanup(self.stop)
        line = self.dispatchd.stderr.readline()  # once its signal handlers are in place
        self.assertIn("delivering as", line)

    def stop(self):
        if self.dispatchd:
            code, err = stop_daemon(self.dispatchd)
            self.dispatchd = None
            self.assertEqual(code, 0, err)
            self.assertNotIn("Sanitizer", err)

    def queue(self):
        return query(self.db, "SELECT mail_id FROM outbox")

    def insert(self, to, data, sender="script@local.test"):
        return write(self.db, "INSERT INTO outbox (mail_envelopefrom, mail_envelopeto, mail_submitter, mail_data) "
                              "VALUES (?, ?, 'a site script', ?)", sender, to, data)

    def test_rows_are_delivered_within_the_poll_interval(self):
        self.insert("first@example.test", "Subject: first\r\n\r\nfound by the first scan\r\n")
        self.start(interval=1)
        self.assertTrue(wait_for(lambda: self.sink.count() == 1 and self.queue() == [], 10), self.queue())
        rows = [("a@example.test", "Subject: text\r\n\r\nas TEXT\r\n"),
                ("b@example.test", b"Subject: blob\n\nas a BLOB, LF only\n.dot\n"),
                ("c@example.test", "Subject: none\r\n\r\nno final line end"),
                ("d@example.test", None)]
        for to, data in rows:
            self.insert(to, data)
        # No notification reaches the dispatcher from this writer: its poll (1 s here) finds them.
        self.assertTrue(wait_for(lambda: self.sink.count() == 5, 15), (self.queue(), self.sink.messages))
        self.assertTrue(wait_for(lambda: self.queue() == [], 5))
        self.assertEqual(query(self.db, "SELECT COUNT(*) FROM faillog")[0][0], 0)
        got = {m[1][0]: m for m in self.sink.messages}
        for to, data in rows:
            sender, rcpts, content = got[to]
            self.assertEqual(sender, "script@local.test")
            self.assertEqual(content, on_the_wire(data), to)

    def test_a_writer_that_touches_the_notify_file_is_noticed_at_once(self):
        self.insert("a@example.test", "Subject: first\r\n\r\nfound by the first scan\r\n")
        self.start(interval=3600)  # after its first scan the poll would take an hour
        self.assertTrue(wait_for(lambda: self.sink.count() == 1 and self.queue() == [], 10), self.queue())
        # Idle now: one byte appended to the notify file after the commit wakes it.
        self.insert("b@example.test", "Subject: woken\r\n\r\nat once\r\n")
        with open(self.db + "-notify-queue", "ab") as f:
            f.write(b"x")
        self.assertTrue(wait_for(lambda: self.sink.count() == 2, 10), self.queue())
        self.assertTrue(wait_for(lambda: self.queue() == [], 5))


if __name__ == "__main__":
    harness.main()
