#!/usr/bin/python3
"""cmail-popd and `cmail serve` with real POP3 clients on loopback: Python's poplib, curl,
fetchmail and getmail6. Mail arrives through the real cmail-smtpd first, so the whole path
(SMTP in, store, POP3 out) is tested.

Usage: popd_test.py BUILD_DIR

The daemons listen on ephemeral ports (port 0 in their configs, the bound ports read from
their stdout); every wait is bounded. Every test case gets its own copy of a template master
database and its own daemons, stopped (and checked for a clean exit) after the case whatever
its outcome, so no case sees another's mail, locks or connections.
"""
import getpass
import hashlib
import os
import poplib
import re
import shutil
import signal
import smtplib
import socket
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import harness
from harness import (copy_database, make_cert, read_ports, read_until_closed, recv_until, start_daemon, stop_daemon,
                     wait_for)

BUILD = sys.argv.pop(1) if len(sys.argv) > 1 else "build"
SMTPD = os.path.join(BUILD, "frontends", "cmail-smtpd", "cmail-smtpd")
POPD = os.path.join(BUILD, "frontends", "cmail-popd", "cmail-popd")
CMAIL = os.path.join(BUILD, "frontends", "cmail", "cmail")
ADMIN = os.path.join(BUILD, "frontends", "cmail-admin", "cmail-admin")

TLS = ssl.create_default_context()
TLS.check_hostname = False
TLS.verify_mode = ssl.CERT_NONE


class Template:
    """The master database every case starts from, and the certificate (made once per class)."""

    USERS = (("alice", "wonderland"), ("bob", "builder"), ("carol", "singer"), ("dave", "diver"),
             ("erin", "eagle"), ("frank", "fisher"), ("big", "bigpw"), ("al", "aliaspw"))

    def __init__(self, tmp):
        self.db = os.path.join(tmp, "master.db3")
        self.admin("init")
        for user, pw in self.USERS:
            self.admin("user", "add", user, pw)
            self.admin("address", "add", f"{user}@local.test", "store", user)
        self.admin("user", "alias", "al", "alice")
        for user in ("alice", "bob", "dave", "erin", "frank", "big"):  # carol: no POP3
            self.admin("popd", "enable", user)
        self.admin("user", "userdb", "dave", os.path.join(tmp, "missing", "dave.db3"))
        self.cert, self.key = make_cert(tmp, "pop.local.test")

    def admin(self, *args):
        subprocess.run([ADMIN, "-d", self.db, *args], check=True, capture_output=True, timeout=30)


class Mail:
    """A master database, a cmail-smtpd that stores into it and a cmail-popd that serves it."""

    def __init__(self, tmp, template):
        self.tmp = tmp
        self.db = os.path.join(tmp, "master.db3")
        copy_database(template.db, self.db)
        cert, key = template.cert, template.key
        self.cert, self.key = cert, key
        smtpd_conf = os.path.join(tmp, "smtpd.conf")
        with open(smtpd_conf, "w") as f:
            f.write(f"database {self.db}\nauth_checks off\nbind 127.0.0.1 0 announce=mx.local.test size=41943040\n")
        self.smtpd, ports = start_daemon(SMTPD, smtpd_conf, 1)
        self.smtp = ports["smtp"][0]
        self.popd_conf = os.path.join(tmp, "popd.conf")
        tls = f"cert={cert} key={key}"
        with open(self.popd_conf, "w") as f:
            f.write(f"""# test configuration: STLS, STLS with tlsrequire, POP3S, and a 1 s idle timeout
verbosity 1
database {self.db}
bind 127.0.0.1 0 announce=pop.local.test {tls} ciphers=NORMAL
bind 127.0.0.1 0 announce=pop.local.test {tls} tlsrequire
bind 127.0.0.1 0 announce=pop.local.test {tls} tlsonly dhparams=/nonexistent/dh.pem
bind 127.0.0.1 0 announce=slow.local.test timeout=1
""")
        try:
            self.popd, ports = start_daemon(POPD, self.popd_conf, 4)
        except Exception:
            stop_daemon(self.smtpd)
            raise
        self.pop3, self.required, self.slow = ports["pop3"]
        self.pop3s = ports["pop3s"][0]

    def q(self, sql, *args):
        c = sqlite3.connect(self.db, timeout=30)
        try:
            return c.execute(sql, args).fetchall()
        finally:
            c.close()

    def send(self, to, body, subject="test", eight_bit=False):
        """Delivers one message through the real smtpd; returns what was sent after the headers."""
        msg = f"Subject: {subject}\r\nFrom: sender@remote.test\r\n\r\n{body}".encode()
        with smtplib.SMTP("127.0.0.1", self.smtp, timeout=60) as s:
            s.ehlo("client.test")
            s.sendmail("sender@remote.test", [to], msg, mail_options=["BODY=8BITMIME"] if eight_bit else [])
        return msg

    def stop(self):
        return [stop_daemon(self.popd), stop_daemon(self.smtpd)]


def login(port, user, password, tls=False, stls=False):
    p = poplib.POP3_SSL("127.0.0.1", port, context=TLS, timeout=30) if tls else poplib.POP3("127.0.0.1", port, timeout=30)
    try:
        if stls:
            p.stls(TLS)
        p.user(user)
        p.pass_(password)
    except Exception:
        p.close()
        raise
    return p


def drop(p):
    """Ends a poplib session without QUIT: the connection just goes away."""
    p.sock.shutdown(socket.SHUT_RDWR)
    p.close()




class PopdTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.template_dir = tempfile.mkdtemp(prefix="cmail-popd-template-")
        cls.template = Template(cls.template_dir)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.template_dir, ignore_errors=True)

    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="cmail-popd-test-")
        self.addCleanup(tmp.cleanup)
        self.tmp = tmp.name
        self.m = Mail(self.tmp, self.template)
        self.addCleanup(self.stop_daemons)  # runs before tmp.cleanup, also after a failure

    def stop_daemons(self):
        (pcode, perr), (scode, serr) = self.m.stop()
        self.assertEqual(pcode, 0, f"cmail-popd exited {pcode}: {perr}")
        self.assertEqual(scode, 0, f"cmail-smtpd exited {scode}: {serr}")

    def mails(self, user):
        return self.m.q("SELECT COUNT(*) FROM mailbox WHERE mail_user = ?", user)[0][0]

    def lock(self, user):
        return self.m.q("SELECT pop_lock FROM popd WHERE pop_user = ?", user)[0][0]

    def test_poplib_user_pass_stat_list_retr_top_uidl_dele(self):
        sent = [self.m.send("alice@local.test", "first\r\n", "one"),
                self.m.send("alice@local.test", ".leading dot\r\n..two\r\n.\r\nend\r\n", "dots"),
                self.m.send("alice@local.test", "grüße, ünïcödé\r\n", "utf-8", eight_bit=True)]
        p = login(self.m.pop3, "alice", "wonderland", stls=True)
        count, total = p.stat()
        self.assertEqual(count, 3)
        _, listing, _ = p.list()
        sizes = [int(line.split()[1]) for line in listing]
        self.assertEqual(sum(sizes), total)
        stored = self.m.q("SELECT mail_data FROM mailbox WHERE mail_user = 'alice' ORDER BY mail_uid")
        for i in range(3):
            resp, lines, octets = p.retr(i + 1)
            self.assertEqual(resp, f"+OK {sizes[i]} octets".encode())
            self.assertEqual(octets, sizes[i])  # LIST's size is what RETR sent, in octets (not characters)
            message = b"\r\n".join(lines) + b"\r\n"
            self.assertEqual(len(message), sizes[i])
            self.assertTrue(message.endswith(sent[i]), (message, sent[i]))  # after cmail's Received header
            self.assertEqual(message, stored[i][0].encode())
        resp, lines, _ = p.top(2, 1)
        self.assertEqual(lines[-2:], [b"", b".leading dot"])
        _, uids, _ = p.uidl()
        self.assertEqual(len(set(u.split()[1] for u in uids)), 3)
        p.dele(1)
        self.assertEqual(p.stat(), (2, total - sizes[0]))
        _, uids_after, _ = p.uidl()
        self.assertEqual([u.split()[0] for u in uids_after], [b"2", b"3"])
        self.assertEqual(p.quit(), b"+OK pop.local.test POP3 server signing off (1 messages deleted)")
        self.assertEqual(self.mails("alice"), 2)
        self.assertEqual(self.lock("alice"), 0)
        # Unique-ids are stable across sessions.
        p = login(self.m.pop3s, "al", "aliaspw", tls=True)  # an alias reads its target's maildrop
        _, again, _ = p.uidl()
        self.assertEqual([u.split()[1] for u in again], [u.split()[1] for u in uids[1:]])
        p.dele(1)
        p.dele(2)
        p.quit()
        self.assertEqual(self.mails("alice"), 0)

    def test_capa_stls_and_tlsrequire(self):
        p = poplib.POP3("127.0.0.1", self.m.required, timeout=30)
        caps = p.capa()
        self.assertIn("STLS", caps)
        self.assertNotIn("USER", caps)
        self.assertNotIn("SASL", caps)
        with self.assertRaises(poplib.error_proto) as e:
            p.user("bob")
        self.assertIn(b"[AUTH]", e.exception.args[0])
        p.stls(TLS)
        caps = p.capa()
        self.assertEqual(caps["SASL"], ["PLAIN", "LOGIN", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"])  # docs/scram.md
        self.assertNotIn("STLS", caps)
        for cap in ("TOP", "UIDL", "USER", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"):
            self.assertIn(cap, caps)
        self.assertNotIn("APOP", caps)
        p.user("bob")
        self.assertTrue(p.pass_("builder").startswith(b"+OK Logged in"))
        p.quit()
        s = socket.create_connection(("127.0.0.1", self.m.pop3s), timeout=10)
        t = TLS.wrap_socket(s)
        self.assertTrue(recv_until(t, b"\r\n").startswith(b"+OK pop.local.test POP3 server ready"))
        t.close()

    def test_stls_command_injection(self):
        s = socket.create_connection(("127.0.0.1", self.m.pop3), timeout=10)
        recv_until(s, b"\r\n")
        s.sendall(b"STLS\r\nUSER bob\r\n")  # injected into the TLS handshake
        got = recv_until(s, b"\r\n", timeout=2)
        self.assertEqual(got, b"+OK Begin TLS negotiation\r\n")
        rest, closed = read_until_closed(s)  # the "handshake" fails: the connection ends unanswered
        self.assertTrue(closed)
        self.assertEqual(rest.find(b"+OK Send PASS"), -1)
        s.close()

    def test_sasl_plain_and_login_with_poplib(self):
        self.m.send("bob@local.test", "sasl\r\n")
        p = poplib.POP3_SSL("127.0.0.1", self.m.pop3s, context=TLS, timeout=30)
        import base64
        resp = p._shortcmd("AUTH PLAIN " + base64.b64encode(b"\0bob\0builder").decode())
        self.assertTrue(resp.startswith(b"+OK Logged in"))
        p.quit()
        p = poplib.POP3_SSL("127.0.0.1", self.m.pop3s, context=TLS, timeout=30)
        self.assertEqual(p._shortcmd("AUTH LOGIN"), b"+ VXNlcm5hbWU6")
        self.assertEqual(p._shortcmd(base64.b64encode(b"bob").decode()), b"+ UGFzc3dvcmQ6")
        self.assertTrue(p._shortcmd(base64.b64encode(b"builder").decode()).startswith(b"+OK Logged in"))
        p.quit()

    def test_sasl_with_a_trailing_space(self):
        # "AUTH PLAIN " and "AUTH LOGIN " have no initial response: "+ " continuations, as
        # cmail did (RFC 5034 4; docs/compatibility.md#users-sasl-trailing-white-space).
        import base64
        self.m.send("bob@local.test", "trailing space\r\n")
        p = poplib.POP3_SSL("127.0.0.1", self.m.pop3s, context=TLS, timeout=30)
        self.assertEqual(p._shortcmd("AUTH PLAIN "), b"+ ")
        self.assertTrue(p._shortcmd(base64.b64encode(b"\0bob\0builder").decode()).startswith(b"+OK Logged in"))
        self.assertEqual(p.stat()[0], 1)
        p.quit()
        p = poplib.POP3_SSL("127.0.0.1", self.m.pop3s, context=TLS, timeout=30)
        self.assertEqual(p._shortcmd("AUTH LOGIN \t"), b"+ VXNlcm5hbWU6")
        self.assertEqual(p._shortcmd(base64.b64encode(b"bob").decode()), b"+ UGFzc3dvcmQ6")
        self.assertTrue(p._shortcmd(base64.b64encode(b"builder").decode()).startswith(b"+OK Logged in"))
        p.quit()

    def test_who_may_log_in(self):
        with self.assertRaises(poplib.error_proto) as e:
            login(self.m.pop3s, "carol", "singer", tls=True)  # no popd row
        self.assertEqual(e.exception.args[0], b"-ERR [AUTH] POP3 access is not enabled for this account")
        p = poplib.POP3_SSL("127.0.0.1", self.m.pop3s, context=TLS, timeout=30)
        for attempt in range(2):
            p.user("bob")
            with self.assertRaises(poplib.error_proto) as e:
                p.pass_("wrong")
            self.assertEqual(e.exception.args[0], b"-ERR [AUTH] Invalid user name or password")
        p.user("bob")
        with self.assertRaises(poplib.error_proto):
            p.pass_("wrong")  # the third failure ends the connection
        self.assertEqual(read_until_closed(p.sock), (b"", True))
        p.close()
        self.assertEqual(self.lock("bob"), 0)

    def test_two_sessions_for_one_maildrop(self):
        self.m.send("erin@local.test", "one at a time\r\n")
        first = login(self.m.pop3s, "erin", "eagle", tls=True)
        with self.assertRaises(poplib.error_proto) as e:
            login(self.m.pop3s, "erin", "eagle", tls=True)
        self.assertEqual(e.exception.args[0], b"-ERR [IN-USE] Maildrop is locked by another session")
        first.quit()
        second = login(self.m.pop3s, "erin", "eagle", tls=True)
        self.assertEqual(second.stat()[0], self.mails("erin"))
        second.quit()

    def test_killed_session_holding_the_lock_is_taken_over(self):
        self.m.send("frank@local.test", "survives a crash\r\n")
        conf = os.path.join(self.tmp, "other-popd.conf")
        with open(conf, "w") as f:
            f.write(f"database {self.m.db}\nbind 127.0.0.1 0 announce=other.local.test\n")
        other, ports = start_daemon(POPD, conf, 1)
        try:
            p = login(ports["pop3"][0], "frank", "fisher")
            p.dele(1)
            # The lock holds across processes...
            with self.assertRaises(poplib.error_proto) as e:
                login(self.m.pop3s, "frank", "fisher", tls=True)
            self.assertIn(b"[IN-USE]", e.exception.args[0])
            owner = self.m.q("SELECT pop_lock_owner FROM popd WHERE pop_user = 'frank'")[0][0]
            self.assertIn(f"pid={other.pid} ", owner)
            other.kill()  # ...until its holder dies without releasing it
            other.wait(timeout=10)
            p.close()
        finally:
            stop_daemon(other, signal.SIGKILL)
        self.assertEqual(self.lock("frank"), 1)  # still marked
        q = login(self.m.pop3s, "frank", "fisher", tls=True)  # taken over: the holder is gone
        self.assertEqual(q.stat()[0], 1)  # the killed session's DELE never happened
        q.quit()
        self.assertEqual(self.lock("frank"), 0)
        self.assertEqual(self.mails("frank"), 1)
        # A lock the original cmail-popd left (pop_lock = 1, no holder) is taken over too.
        c = sqlite3.connect(self.m.db, timeout=30)
        c.execute("UPDATE popd SET pop_lock = 1 WHERE pop_user = 'frank'")
        c.commit()
        c.close()
        login(self.m.pop3s, "frank", "fisher", tls=True).quit()

    def test_dele_then_dropped_connection_deletes_nothing(self):
        self.m.send("bob@local.test", "keep me\r\n")
        before = self.mails("bob")
        p = login(self.m.pop3s, "bob", "builder", tls=True)
        for i in range(before):
            p.dele(i + 1)
        drop(p)  # no QUIT: RFC 1939 6, no UPDATE state
        self.assertTrue(wait_for(lambda: self.lock("bob") == 0))
        self.assertEqual(self.mails("bob"), before)
        p = login(self.m.pop3s, "bob", "builder", tls=True)
        self.assertEqual(p.stat()[0], before)
        p.quit()

    def test_idle_timeout(self):
        s = socket.create_connection(("127.0.0.1", self.m.slow), timeout=10)
        self.assertTrue(recv_until(s, b"\r\n").startswith(b"+OK slow.local.test"))
        got = recv_until(s, b"Autologout", timeout=4)  # timeout=1: well within 4 s
        self.assertIn(b"-ERR Autologout", got)
        self.assertEqual(read_until_closed(s), (b"", True))
        s.close()

    def test_a_trickled_command_line_meets_its_deadline(self):
        # One byte every 0.2 s never lets the 1 s timeout pass, but a line must arrive whole
        # within it (docs/popd.md).
        s = socket.create_connection(("127.0.0.1", self.m.slow), timeout=10)
        self.assertTrue(recv_until(s, b"\r\n").startswith(b"+OK slow.local.test"))
        s.settimeout(0.2)
        got, closed = b"", False
        for _ in range(40):
            try:
                s.sendall(b"x")
                chunk = s.recv(4096)
                if not chunk:
                    closed = True
                    break
                got += chunk
            except socket.timeout:
                pass
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
        s.close()
        self.assertTrue(closed, got)
        self.assertIn(b"-ERR Autologout", got)

    def test_memory_returned_after_password_checks(self):
        # Each argon2id check takes 19 MiB; glibc kept it in every worker thread's arena, so a
        # daemon grew by about 80 MB after a burst of log-ins and stayed there. This daemon runs
        # without AddressSanitizer's quarantine (which holds freed blocks on purpose), so that
        # the figure is the allocator's in every build.
        conf = os.path.join(self.tmp, "popd-memory.conf")
        with open(conf, "w") as f:
            f.write(f"verbosity 0\ndatabase {self.m.db}\nbind 127.0.0.1 0\n")
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = ":".join(o for o in (env.get("ASAN_OPTIONS"), "quarantine_size_mb=0") if o)
        proc = subprocess.Popen([POPD, conf, "nodetach"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env)
        try:
            port = read_ports(proc, 1)["pop3"][0]

            def rss_kib():
                with open(f"/proc/{proc.pid}/status") as f:
                    return int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M).group(1))

            p = poplib.POP3("127.0.0.1", port, timeout=30)
            p.capa()
            idle = rss_kib()  # served a connection, checked no password yet

            def guesses():
                for _ in range(5):
                    q = poplib.POP3("127.0.0.1", port, timeout=30)
                    q.user("bob")
                    with self.assertRaises(poplib.error_proto):
                        q.pass_("not the password")  # argon2id runs all the same
                    q.quit()
            threads = [threading.Thread(target=guesses) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            p.quit()
            grown = rss_kib() - idle
            self.assertLess(grown, 20 * 1024, f"{grown} KiB more than idle after 40 password checks")
        finally:
            code, err = stop_daemon(proc)
        self.assertEqual(code, 0, err)

    def test_user_database_that_cannot_be_opened(self):
        self.m.send("dave@local.test", "stored in the master instead\r\n")  # the master fallback (docs/compatibility.md#database-user-databases)
        with self.assertRaises(poplib.error_proto) as e:
            login(self.m.pop3s, "dave", "diver", tls=True)
        self.assertEqual(e.exception.args[0], b"-ERR [SYS/TEMP] Maildrop unavailable, try again later")
        self.assertEqual(self.lock("dave"), 0)  # cmail left it locked (docs/compatibility.md#pop3-maildrop-lock)

    def test_20_mib_message(self):
        line = "x" * 76 + "\r\n"
        body = line * (20 * 1024 * 1024 // len(line) + 1)
        sent = self.m.send("big@local.test", body, "big")
        p = login(self.m.pop3s, "big", "bigpw", tls=True)
        _, listing, _ = p.list()
        size = int(listing[0].split()[1])
        self.assertGreater(size, 20 * 1024 * 1024)
        t0 = time.time()
        resp, lines, octets = p.retr(1)
        elapsed = time.time() - t0
        self.assertEqual(octets, size)
        message = b"\r\n".join(lines) + b"\r\n"
        self.assertEqual(hashlib.sha256(message[-len(sent):]).hexdigest(), hashlib.sha256(sent).hexdigest())
        self.assertLess(elapsed, 30)
        p.dele(1)
        p.quit()
        self.assertEqual(self.mails("big"), 0)

    def test_curl_pop3_and_pop3s(self):
        for i in range(2):
            self.m.send("erin@local.test", f"via curl {i}\r\n", f"curl {i}")
        base = ["curl", "-sS", "--max-time", "30", "-k", "--user", "erin:eagle"]
        r = subprocess.run(base + ["--ssl-reqd", f"pop3://127.0.0.1:{self.m.required}/"], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        listing = [line.split() for line in r.stdout.splitlines()]
        self.assertGreaterEqual(len(listing), 2)
        n = len(listing)
        r = subprocess.run(base + [f"pop3s://127.0.0.1:{self.m.pop3s}/{n}"], capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.endswith(b"via curl 1\r\n"), r.stdout)
        self.assertEqual(len(r.stdout), int(listing[-1][1]))
        r = subprocess.run(base + ["--ssl-reqd", "-X", "DELE", "-I", f"pop3://127.0.0.1:{self.m.pop3}/{n}"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.m.q("SELECT COUNT(*) FROM mailbox WHERE mail_user = 'erin' AND "
                                  "mail_data LIKE '%via curl 1%'")[0][0], 0)

    def test_fetchmail_and_getmail6_fetch_and_delete(self):
        local = getpass.getuser()
        for i in range(3):
            self.m.send("frank@local.test", f".dotted body {i}\r\nline\r\n", f"fetch {i}")
        before = self.mails("frank")
        home = os.path.join(self.tmp, "fetchmail")
        os.makedirs(home)
        mbox = os.path.join(home, "mbox")
        rc = os.path.join(home, "fetchmailrc")
        with open(rc, "w") as f:
            f.write(f"""set no syslog
poll 127.0.0.1 service {self.m.required} proto POP3 auth password timeout 30
  user "frank" there with password "fisher" is "{local}" here
  options no sslcertck sslproto "TLS1.2+" fetchall nokeep
  mda "/bin/sh -c 'cat >> {mbox}'"
""")
        os.chmod(rc, 0o600)
        env = dict(os.environ, FETCHMAILHOME=home, HOME=home)
        r = subprocess.run(["fetchmail", "-f", rc, "-N", "-v"], capture_output=True, text=True, timeout=120, env=env)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("STLS", r.stdout + r.stderr)  # tlsrequire: fetchmail had to use TLS
        with open(mbox, "rb") as f:
            got = f.read().replace(b"\r\n", b"\n")
        for i in range(3):
            self.assertIn(f"Subject: fetch {i}\n".encode(), got)
            self.assertIn(f"\n.dotted body {i}\nline\n".encode(), got)  # unstuffed again
        self.assertEqual(self.mails("frank"), 0, before)
        self.assertEqual(self.lock("frank"), 0)

        for i in range(2):
            self.m.send("frank@local.test", f"for getmail {i}\r\n", f"getmail {i}")
        gdir = os.path.join(self.tmp, "getmail")
        os.makedirs(gdir)
        out = os.path.join(gdir, "mbox")
        with open(os.path.join(gdir, "getmailrc"), "w") as f:
            f.write(f"""[retriever]
type = SimplePOP3SSLRetriever
server = 127.0.0.1
port = {self.m.pop3s}
username = frank
password = fisher

[destination]
type = MDA_external
path = /bin/sh
arguments = ("-c", "cat >> {out}")
allow_root_commands = true

[options]
delete = true
read_all = true
""")
        r = subprocess.run(["getmail", "--getmaildir", gdir, "--rcfile", "getmailrc"], capture_output=True, text=True,
                           timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("2 messages", r.stdout + r.stderr)
        with open(out, "rb") as f:
            got = f.read().replace(b"\r\n", b"\n")
        self.assertIn(b"Subject: getmail 0\n", got)
        self.assertIn(b"for getmail 1\n", got)
        self.assertEqual(self.mails("frank"), 0)


class ConfigAndServeTest(unittest.TestCase):
    def test_bad_config_line_names_file_and_line(self):
        with tempfile.TemporaryDirectory() as tmp:
            conf = os.path.join(tmp, "bad.conf")
            with open(conf, "w") as f:
                f.write("database /nonexistent\nbind 127.0.0.1 0 size=5\n")
            r = subprocess.run([POPD, conf, "nodetach"], capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 1)
            self.assertIn(f"{conf}:2: unknown bind option 'size=5'", r.stderr)
            r = subprocess.run([POPD], capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 1)
            self.assertIn("Provide POP3 access to mailboxes", r.stdout)

    def test_cmail_serve_zero_config_pop3(self):
        with tempfile.TemporaryDirectory() as tmp:
            data = os.path.join(tmp, "data")
            p = subprocess.Popen([CMAIL, "serve", "--data", data, "--smtp-port", "0", "--submission-port", "0",
                                  "--smtps-port", "0", "--pop3-port", "0", "--pop3s-port", "0", "--imap-port", "0",
                                  "--imaps-port", "0", "--no-auth-checks"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                ports = read_ports(p, 5)
                self.assertEqual(sorted(ports), ["pop3", "pop3s", "smtp", "smtps", "submission"])
                db = os.path.join(data, "master.db3")
                for args in (["user", "add", "carol", "pw"], ["address", "add", "carol@localhost", "store", "carol"],
                             ["popd", "enable", "carol"]):
                    subprocess.run([ADMIN, "-d", db, *args], check=True, capture_output=True)
                with smtplib.SMTP("127.0.0.1", ports["smtp"][0], timeout=10) as s:
                    s.sendmail("x@remote.test", ["carol@localhost"], "Subject: serve\r\n\r\nzero config\r\n")
                q = poplib.POP3("127.0.0.1", ports["pop3"][0], timeout=30)
                self.assertNotIn("USER", q.capa())  # passwords only inside TLS
                q.stls(TLS)
                q.user("carol")
                q.pass_("pw")
                self.assertTrue(b"\r\n".join(q.retr(1)[1]).endswith(b"zero config"))
                q.quit()
                r = login(ports["pop3s"][0], "carol", "pw", tls=True)
                self.assertEqual(r.stat()[0], 1)
                r.quit()
                p.send_signal(signal.SIGTERM)
                self.assertEqual(p.wait(timeout=15), 0)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
                p.stdout.close()
                p.stderr.close()


if __name__ == "__main__":
    harness.main()
