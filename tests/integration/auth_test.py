#!/usr/bin/python3
"""Password guessing against the real daemons (docs/logging.md#authentication-penalties), and
the operator log lines they write (docs/logging.md).

Usage: auth_test.py BUILD_DIR

A guessing client on 127.0.0.1 (smtplib AUTH PLAIN with wrong passwords, one attempt per
connection, then poplib USER/PASS) is slowed, by a wait that grows with its failures, and then
refused without a password check, while alice logs in from 127.0.0.2 (loopback takes all of
127/8 on Linux) at once. `cmail serve` shares one guard between SMTP and POP3; cmail-smtpd and
cmail-popd each have their own. The logs must hold one key=value line per failure, with the
address, the user and the protocol, and never a password; the fail2ban filter shipped in
docs/fail2ban/ must match exactly the failure lines (its failregex checked with Python's re,
fail2ban's <HOST> turned into a group). Small delays and thresholds keep it fast.
"""
import base64
import configparser
import os
import poplib
import re
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import harness
from harness import copy_database, read_ports, start_daemon, stop_daemon, wait_for

BUILD = sys.argv.pop(1) if len(sys.argv) > 1 else "build"
SMTPD = os.path.join(BUILD, "frontends", "cmail-smtpd", "cmail-smtpd")
POPD = os.path.join(BUILD, "frontends", "cmail-popd", "cmail-popd")
CMAIL = os.path.join(BUILD, "frontends", "cmail", "cmail")
ADMIN = os.path.join(BUILD, "frontends", "cmail-admin", "cmail-admin")
FILTER = os.path.join(harness.SOURCE, "docs", "fail2ban", "filter.d", "cmail.conf")

PASSWORD = "wonderland"
GUESSES = ("guess-0-x", "guess-1-x", "guess-2-x", "guess-3-x", "guess-4-x", "guess-5-x")
# The daemons' timestamp (docs/compatibility.md#daemons-logging).
STAMP = re.compile(r"^\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4} ")


def fail2ban_regex():
    """The shipped filter's failregex, with <HOST> as the group `host`."""
    conf = configparser.ConfigParser(interpolation=None)
    conf.read(FILTER)
    lines = [l.strip() for l in conf["Definition"]["failregex"].splitlines() if l.strip()]
    return [re.compile(l.replace("<HOST>", r"(?P<host>[0-9a-fA-F:.]+)")) for l in lines]


def read(path):
    with open(path) as f:
        return f.read()


def log_records(text):
    """The daemon's log lines without their timestamps (every line must have one)."""
    out = []
    for line in text.splitlines():
        m = STAMP.match(line)
        assert m, f"a log line without the timestamp: {line!r}"
        out.append(line[m.end():])
    return out


def fields(record):
    """key=value fields of a record (values bare or quoted)."""
    return {k: (v[1:-1] if v.startswith('"') else v)
            for k, v in re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', record)}


class Database:
    def __init__(self, tmp):
        self.db = os.path.join(tmp, "master.db3")
        for args in (("init",), ("user", "add", "alice", PASSWORD), ("user", "add", "bob", "builder"),
                     ("address", "add", "alice@local.test", "store", "alice"),
                     ("address", "add", "bob@local.test", "store", "bob"),
                     ("smtpd", "enable", "alice", "any"), ("popd", "enable", "alice"), ("popd", "enable", "bob")):
            subprocess.run([ADMIN, "-d", self.db, *args], check=True, capture_output=True, timeout=30)


def smtp_auth(port, user, password, source="127.0.0.1"):
    """One AUTH PLAIN on a new connection: (reply code, seconds the AUTH took)."""
    with smtplib.SMTP("127.0.0.1", port, source_address=(source, 0), timeout=20) as s:
        s.ehlo("guesser.test")
        start = time.monotonic()
        code, _ = s.docmd("AUTH", "PLAIN " + base64.b64encode(f"\0{user}\0{password}".encode()).decode())
        return code, time.monotonic() - start


class SourcePOP3(poplib.POP3):
    """poplib.POP3 from a given local address."""

    def __init__(self, port, source):
        self.source = source
        super().__init__("127.0.0.1", port, timeout=20)

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout, source_address=(self.source, 0))


def pop3_login(port, user, password, source="127.0.0.1"):
    """USER/PASS on a new connection: (the PASS reply or error, seconds PASS took)."""
    p = SourcePOP3(port, source)
    p.user(user)
    start = time.monotonic()
    try:
        reply = p.pass_(password).decode()
    except poplib.error_proto as e:
        reply = e.args[0].decode()
    took = time.monotonic() - start
    try:
        p.quit()
    except (poplib.error_proto, OSError):
        pass
    p.close()
    return reply, took


class SharedGuardTest(unittest.TestCase):
    """`cmail serve`: one guard for its SMTP and POP3 listeners."""

    def test_guessing_is_slowed_then_refused_while_alice_logs_in_from_elsewhere(self):
        with tempfile.TemporaryDirectory() as tmp:
            db = Database(tmp).db
            smtpd_conf, popd_conf = os.path.join(tmp, "smtpd.conf"), os.path.join(tmp, "popd.conf")
            with open(smtpd_conf, "w") as f:
                f.write(f"database {db}\nauth_checks off\nbind 127.0.0.1 0 auth\n")
            with open(popd_conf, "w") as f:
                f.write(f"database {db}\nbind 127.0.0.1 0\n")
            proc = subprocess.Popen([CMAIL, "serve", "--config", smtpd_conf, "--popd-config", popd_conf,
                                     "--authguard", "delay=200 maxdelay=800 ipfailures=6 userfailures=5 forget=60"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            ports = read_ports(proc, 2)
            try:
                smtp, pop3 = ports["smtp"][0], ports["pop3"][0]
                # Three SMTP failures and two POP3 ones, from 127.0.0.1: the wait before each
                # check is 0, 200, 400, 800, 800 ms (a timer: lower bounds, whatever the load).
                took = []
                for i in range(3):
                    code, t = smtp_auth(smtp, "alice", GUESSES[i])
                    self.assertEqual(code, 535)
                    took.append(t)
                for i in range(3, 5):
                    reply, t = pop3_login(pop3, "alice", GUESSES[i])
                    self.assertTrue(reply.startswith("-ERR [AUTH]"), reply)
                    took.append(t)
                for t, floor in zip(took[1:], (0.2, 0.4, 0.8, 0.8)):
                    self.assertGreaterEqual(t, floor - 0.01, f"waits {took}")
                # Five failures for alice from 127.0.0.1 (SMTP's counted for POP3: one guard):
                # refused now, even with the right password, which is not even checked, and at
                # once (no wait: the wait before a check would now be 800 ms).
                code, t = smtp_auth(smtp, "alice", PASSWORD)
                self.assertEqual(code, 454)
                self.assertLess(t, 0.75)
                reply, _ = pop3_login(pop3, "alice", PASSWORD)
                self.assertTrue(reply.startswith("-ERR [SYS/TEMP]"), reply)
                # Meanwhile alice, from 127.0.0.2, logs in at once over both.
                code, t = smtp_auth(smtp, "alice", PASSWORD, source="127.0.0.2")
                self.assertEqual(code, 235)
                self.assertLess(t, 0.75)
                reply, _ = pop3_login(pop3, "alice", PASSWORD, source="127.0.0.2")
                self.assertTrue(reply.startswith("+OK"), reply)
                # bob from 127.0.0.1 is only slowed (the pair limit is alice's); his failure is
                # the address's sixth: then 127.0.0.1 is refused for every name.
                code, t = smtp_auth(smtp, "bob", GUESSES[5])
                self.assertEqual(code, 535)
                self.assertGreaterEqual(t, 0.79)
                reply, _ = pop3_login(pop3, "bob", "builder")
                self.assertTrue(reply.startswith("-ERR [SYS/TEMP]"), reply)
            finally:
                code, err = stop_daemon(proc)
            self.assertEqual(code, 0, err)
            records = log_records(err)

            def lines(event, **want):
                return [r for r in records if r.startswith(event + " ") and
                        all(fields(r).get(k) == v for k, v in want.items())]

            self.assertEqual(len(lines("auth failed", proto="smtp", addr="127.0.0.1", user="alice",
                                       reason="bad-credentials")), 3, err)
            self.assertEqual(len(lines("auth failed", proto="pop3", addr="127.0.0.1", user="alice")), 2, err)
            self.assertEqual(len(lines("auth failed", proto="smtp", addr="127.0.0.1", user="bob")), 1, err)
            self.assertEqual(len(lines("auth blocked", addr="127.0.0.1", user="alice", scope="user")), 2, err)
            self.assertEqual(len(lines("auth blocked", proto="pop3", addr="127.0.0.1", user="bob",
                                       scope="address")), 1, err)
            self.assertEqual(len(lines("auth ok", addr="127.0.0.2", user="alice")), 2, err)
            self.assertEqual(lines("auth ok", addr="127.0.0.1"), [])
            # Connection lines at the default verbosity, with the listener and the outcome.
            connects = lines("connect", proto="smtp", listener="smtp")
            self.assertEqual(len(connects), 6, err)
            ends = lines("disconnect", proto="smtp", addr="127.0.0.2", user="alice", tls="no", messages="0")
            self.assertEqual(len(ends), 1, err)
            self.assertRegex(ends[0], r" duration=\d+\.\d{3}s$")
            self.assertEqual(len(lines("disconnect", proto="pop3", listener="pop3")), 5, err)
            # Never a password, nor an AUTH payload.
            for secret in (PASSWORD, "builder", *GUESSES, "AGFsaWNl"):
                self.assertNotIn(secret, err)
            # The fail2ban filter matches every failure and refusal, with the client's address,
            # and nothing else.
            regexes = fail2ban_regex()
            matched = [r for r in records if any(x.search(r) for x in regexes)]
            self.assertEqual(matched, [r for r in records if r.startswith(("auth failed ", "auth blocked "))])
            self.assertEqual(len(matched), 9)
            for r in matched:
                self.assertEqual({m.group("host") for x in regexes for m in [x.search(r)] if m}, {"127.0.0.1"})


class SeparateDaemonsTest(unittest.TestCase):
    """cmail-smtpd and cmail-popd: each has its own guard; the `authguard` directive; log files."""

    def test_each_daemon_counts_alone_and_logs_to_its_file(self):
        with tempfile.TemporaryDirectory() as tmp:
            db = Database(tmp).db
            smtp_log, pop_log = os.path.join(tmp, "smtpd.log"), os.path.join(tmp, "popd.log")
            smtpd_conf, popd_conf = os.path.join(tmp, "smtpd.conf"), os.path.join(tmp, "popd.conf")
            with open(smtpd_conf, "w") as f:  # verbosity 0: the failures are warnings, still logged
                f.write(f"database {db}\nauth_checks off\nlogfile {smtp_log}\nauthguard delay=50 maxdelay=50 ipfailures=2 userfailures=0\n"
                        f"bind 127.0.0.1 0 auth\n")
            with open(popd_conf, "w") as f:
                f.write(f"database {db}\nlogfile {pop_log}\nverbosity 1\nauthguard off\nbind 127.0.0.1 0\n")
            smtpd, sp = start_daemon(SMTPD, smtpd_conf, 1)
            popd, pp = start_daemon(POPD, popd_conf, 1)
            try:
                for guess in GUESSES[:2]:
                    self.assertEqual(smtp_auth(sp["smtp"][0], "alice", guess)[0], 535)
                self.assertEqual(smtp_auth(sp["smtp"][0], "alice", PASSWORD)[0], 454)
                # cmail-popd has its own guard, here off: SMTP's failures do not count, nor its own.
                for guess in GUESSES[2:5]:
                    self.assertTrue(pop3_login(pp["pop3"][0], "alice", guess)[0].startswith("-ERR [AUTH]"))
                self.assertTrue(pop3_login(pp["pop3"][0], "alice", PASSWORD)[0].startswith("+OK"))
                # A message from 127.0.0.2 after AUTH: a transaction line (at verbosity 1 only).
                with smtplib.SMTP("127.0.0.1", sp["smtp"][0], source_address=("127.0.0.2", 0), timeout=20) as s:
                    s.login("alice", PASSWORD)
                    s.sendmail("alice@local.test", ["bob@local.test"], b"Subject: hi\r\n\r\nhello\r\n")
                wait_for(lambda: "auth ok proto=pop3" in read(pop_log))
            finally:
                c1, e1 = stop_daemon(smtpd)
                c2, e2 = stop_daemon(popd)
            self.assertEqual((c1, c2), (0, 0), e1 + e2)
            smtp_records, pop_records = log_records(read(smtp_log)), log_records(read(pop_log))
            self.assertEqual(len([r for r in smtp_records if r.startswith("auth failed proto=smtp addr=127.0.0.1 user=alice ")]), 2)
            self.assertEqual(len([r for r in smtp_records if r.startswith("auth blocked proto=smtp addr=127.0.0.1 user=alice ")]), 1)
            self.assertEqual([r for r in smtp_records if r.startswith(("connect", "message"))], [])  # verbosity 0
            self.assertEqual(len([r for r in pop_records if r.startswith("auth failed proto=pop3 addr=127.0.0.1 user=alice ")]), 3)
            self.assertEqual([r for r in pop_records if r.startswith("auth blocked")], [])
            self.assertTrue(any(r.startswith("connect proto=pop3 listener=pop3 addr=127.0.0.1 port=") for r in pop_records))
            for secret in (PASSWORD, *GUESSES):
                self.assertNotIn(secret, read(smtp_log) + read(pop_log))
            regexes = fail2ban_regex()
            hits = [r for r in smtp_records + pop_records if any(x.search(r) for x in regexes)]
            self.assertEqual(len(hits), 6)

    def test_transaction_and_connection_lines_at_verbosity_1(self):
        with tempfile.TemporaryDirectory() as tmp:
            db = Database(tmp).db
            log = os.path.join(tmp, "smtpd.log")
            conf = os.path.join(tmp, "smtpd.conf")
            with open(conf, "w") as f:
                f.write(f"database {db}\nauth_checks off\nlogfile {log}\nverbosity 1\nbind 127.0.0.1 0 auth\n")
            smtpd, sp = start_daemon(SMTPD, conf, 1)
            try:
                with smtplib.SMTP("127.0.0.1", sp["smtp"][0], timeout=20) as s:
                    s.login("alice", PASSWORD)
                    s.sendmail("alice@local.test", ["bob@local.test", "alice@local.test"],
                               b"Subject: hi\r\n\r\nhello\r\n")
                    s.sendmail("alice@local.test", ["bob@local.test"], b"Subject: again\r\n\r\nhello\r\n")
                wait_for(lambda: "disconnect " in read(log))
            finally:
                code, err = stop_daemon(smtpd)
            self.assertEqual(code, 0, err)
            records = log_records(read(log))
            messages = [fields(r) for r in records if r.startswith("message ")]
            self.assertEqual(len(messages), 2, records)
            self.assertEqual(messages[0]["from"], "<alice@local.test>")
            self.assertEqual((messages[0]["rcpts"], messages[1]["rcpts"]), ("2", "1"))
            self.assertEqual(messages[0]["result"], "accepted")
            self.assertEqual(messages[0]["user"], "alice")
            self.assertRegex(messages[0]["id"], r"^\w+$")
            self.assertGreater(int(messages[0]["size"]), len("Subject: hi\r\n\r\nhello\r\n"))
            ends = [fields(r) for r in records if r.startswith("disconnect ")]
            self.assertEqual(len(ends), 1, records)
            self.assertEqual((ends[0]["messages"], ends[0]["user"], ends[0]["listener"]), ("2", "alice", "smtp"))
            self.assertNotIn(PASSWORD, read(log))


if __name__ == "__main__":
    harness.main()
