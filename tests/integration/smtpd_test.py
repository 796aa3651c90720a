#!/usr/bin/python3
"""cmail-smtpd and `cmail serve` with real clients on loopback: Python's smtplib, swaks, curl.

Usage: smtpd_test.py BUILD_DIR

Each test case starts the real daemon on ephemeral ports (port 0 in its config, the bound
ports read from its stdout) on its own copy of a template master database, talks to it, checks
the database afterwards, and stops the daemon (checking for a clean exit) whatever its outcome.
"""
import base64
import os
import shutil
import signal
import smtplib
import socket
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import unittest

import harness
from harness import (copy_database, make_cert, read_ports, read_until_closed, recv_until, start_daemon, stop_daemon,
                     wait_for)

BUILD = sys.argv.pop(1) if len(sys.argv) > 1 else "build"
SMTPD = os.path.join(BUILD, "frontends", "cmail-smtpd", "cmail-smtpd")
CMAIL = os.path.join(BUILD, "frontends", "cmail", "cmail")
ADMIN = os.path.join(BUILD, "frontends", "cmail-admin", "cmail-admin")

TLS = ssl.create_default_context()
TLS.check_hostname = False
TLS.verify_mode = ssl.CERT_NONE




class Template:
    """The master database every case starts from, and the certificate (made once per class)."""

    def __init__(self, tmp):
        self.db = os.path.join(tmp, "master.db3")
        self.admin("init")
        self.admin("user", "add", "alice", "wonderland")
        self.admin("user", "add", "bob", "builder")
        self.admin("address", "add", "alice@local.test", "store", "alice")
        self.admin("address", "add", "bob@local.test", "store", "bob")
        self.admin("address", "add", "%@quoted.test", "store", "bob")  # any local part, quoted or not
        self.admin("smtpd", "enable", "alice", "any")
        self.cert, self.key = make_cert(tmp, "mx.local.test")

    def admin(self, *args):
        subprocess.run([ADMIN, "-d", self.db, *args], check=True, capture_output=True, timeout=30)


class Daemon:
    """A cmail-smtpd on 127.0.0.1 with three listeners: smtp (STARTTLS), submission, smtps."""

    def __init__(self, tmp, template, size=1000000, extra=""):
        self.tmp = tmp
        self.db = os.path.join(tmp, "master.db3")
        copy_database(template.db, self.db)
        cert, key = template.cert, template.key
        self.conf = os.path.join(tmp, "smtpd.conf")
        with open(self.conf, "w") as f:
            f.write(f"""# test configuration
verbosity 0
database {self.db}
auth_checks off
bind 127.0.0.1 0 announce=mx.local.test size={size} cert={cert} key={key}
bind 127.0.0.1 0 announce=mx.local.test size={size} cert={cert} key={key} auth=tlsonly,strict
bind 127.0.0.1 0 announce=mx.local.test size={size} cert={cert} key={key} tlsonly auth
{extra}""")
        self.proc, ports = start_daemon(SMTPD, self.conf, 3 + extra.count("bind"))
        assert ports.get("smtp") and ports.get("submission") and ports.get("smtps"), ports
        self.smtp, self.submission, self.smtps = ports["smtp"][0], ports["submission"][0], ports["smtps"][0]
        self.extra = ports["smtp"][1:]

    def q(self, sql, *args):
        c = sqlite3.connect(self.db)
        try:
            return c.execute(sql, args).fetchall()
        finally:
            c.close()

    def stop(self):
        code, self.stderr = stop_daemon(self.proc)
        return code


def raw(port, data=None, read_until=b"\r\n", timeout=5):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    got = b""
    while not got.endswith(b"\r\n"):
        got += s.recv(4096)
    if data is not None:
        s.sendall(data)
    return s, got




class SmtpdTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.template_dir = tempfile.mkdtemp(prefix="cmail-smtpd-template-")
        cls.template = Template(cls.template_dir)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.template_dir, ignore_errors=True)

    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="cmail-smtpd-test-")
        self.addCleanup(tmp.cleanup)
        self.tmp = tmp.name
        # A fourth listener with a 1 s timeout and room for 600 connections from one address, a
        # fifth that takes RFC 5321 paths only.
        self.d = Daemon(self.tmp, self.template, size=100000,
                        extra="bind 127.0.0.1 0 announce=slow.test timeout=1 maxperip=600\n"
                              "bind 127.0.0.1 0 announce=strict.test strict\n")
        self.addCleanup(self.stop_daemon)  # runs before tmp.cleanup, also after a failure

    def stop_daemon(self):
        code = self.d.stop()
        self.assertEqual(code, 0, f"cmail-smtpd exited {code}: {self.d.stderr}")

    def count(self, where, *args):
        return self.d.q("SELECT COUNT(*) FROM mailbox WHERE " + where, *args)[0][0]

    def test_smtplib_plain_and_starttls(self):
        with smtplib.SMTP("127.0.0.1", self.d.smtp, timeout=10) as s:
            code, caps = s.ehlo("client.test")
            self.assertEqual(code, 250)
            self.assertIn(b"STARTTLS", caps)
            self.assertNotIn(b"AUTH", caps)
            s.sendmail("sender@remote.test", ["alice@local.test"], "Subject: plain\r\n\r\nbody one\r\n")
            s.starttls(context=TLS)
            s.ehlo("client.test")
            s.sendmail("sender@remote.test", ["alice@local.test", "bob@local.test"], "Subject: tls\r\n\r\nbody two\r\n")
        self.assertEqual(self.count("mail_proto = 'esmtp' AND mail_data LIKE '%Subject: plain%'"), 1)
        self.assertEqual(self.count("mail_proto = 'esmtps' AND mail_data LIKE '%Subject: tls%'"), 2)
        data = self.d.q("SELECT mail_data FROM mailbox WHERE mail_data LIKE '%Subject: tls%' LIMIT 1")[0][0]
        self.assertTrue(data.startswith("Received: from client.test (127.0.0.1)\r\n\tby mx.local.test (cmail) with ESMTPS id "), data)

    def test_smtplib_submission_auth_plain_login_and_smtps(self):
        with smtplib.SMTP("127.0.0.1", self.d.submission, timeout=10) as s:
            s.ehlo()
            with self.assertRaises(smtplib.SMTPSenderRefused):  # 530 before AUTH
                s.sendmail("alice@local.test", ["far@remote.test"], "x")
            s.starttls(context=TLS)
            s.ehlo()
            s.login("alice", "wonderland")  # smtplib picks PLAIN
            s.sendmail("alice@local.test", ["far@remote.test"], "Subject: submitted\r\n\r\nx\r\n")
        with smtplib.SMTP_SSL("127.0.0.1", self.d.smtps, timeout=10, context=TLS) as s:
            s.ehlo()
            s.user, s.password = "alice", "wonderland"
            code, _ = s.auth("LOGIN", s.auth_login)
            self.assertEqual(code, 235)
            s.sendmail("alice@local.test", ["far2@remote.test", "bob@local.test"], "Subject: smtps\r\n\r\ny\r\n")
        with smtplib.SMTP_SSL("127.0.0.1", self.d.smtps, timeout=10, context=TLS) as s:
            with self.assertRaises(smtplib.SMTPAuthenticationError):
                s.login("alice", "wrong")
        rows = self.d.q("SELECT mail_envelopeto, mail_remote, mail_envelopefrom FROM outbox ORDER BY mail_id")
        self.assertIn(("far@remote.test", None, "alice@local.test"), rows)
        self.assertIn(("far2@remote.test", None, "alice@local.test"), rows)
        self.assertEqual(self.count("mail_user = 'bob' AND mail_proto = 'esmtpsa'"), 1)

    def test_auth_plain_and_login_with_a_trailing_space(self):
        # "AUTH PLAIN " has no initial response: 334, then the response line, as cmail and
        # Postfix do (RFC 4954 4; docs/compatibility.md#users-sasl-trailing-white-space).
        with smtplib.SMTP_SSL("127.0.0.1", self.d.smtps, timeout=10, context=TLS) as s:
            s.ehlo()
            self.assertEqual(s.docmd("AUTH", "PLAIN "), (334, b""))
            self.assertEqual(s.docmd(base64.b64encode(b"\0alice\0wonderland").decode())[0], 235)
            s.sendmail("alice@local.test", ["bob@local.test"], "Subject: trailing space\r\n\r\nx\r\n")
        with smtplib.SMTP_SSL("127.0.0.1", self.d.smtps, timeout=10, context=TLS) as s:
            s.ehlo()
            self.assertEqual(s.docmd("AUTH", "LOGIN  "), (334, b"VXNlcm5hbWU6"))
            self.assertEqual(s.docmd(base64.b64encode(b"alice").decode()), (334, b"UGFzc3dvcmQ6"))
            self.assertEqual(s.docmd(base64.b64encode(b"wonderland").decode())[0], 235)
        with smtplib.SMTP_SSL("127.0.0.1", self.d.smtps, timeout=10, context=TLS) as s:
            s.ehlo()
            self.assertEqual(s.docmd("AUTH", "PLAIN ")[0], 334)
            self.assertEqual(s.docmd(base64.b64encode(b"\0alice\0wrong").decode())[0], 535)
            self.assertEqual(s.docmd("AUTH", "PLAIN =")[0], 535)  # "=": an empty response, no PLAIN message
        # On the wire: exactly "334 " and CRLF.
        s = TLS.wrap_socket(socket.create_connection(("127.0.0.1", self.d.smtps), timeout=10))
        try:
            recv_until(s, b"\r\n")
            s.sendall(b"EHLO c.test\r\n")
            ehlo = recv_until(s, b"\r\n250 ")
            while not ehlo.endswith(b"\r\n"):
                ehlo += s.recv(4096)
            s.sendall(b"AUTH PLAIN \r\n")
            self.assertEqual(recv_until(s, b"\r\n"), b"334 \r\n")
            s.sendall(base64.b64encode(b"\0alice\0wonderland") + b"\r\nQUIT\r\n")
            self.assertTrue(recv_until(s, b"221").startswith(b"235 "))
        finally:
            s.close()
        self.assertEqual(self.count("mail_user = 'bob' AND mail_proto = 'esmtpsa' AND mail_data LIKE '%trailing space%'"), 1)

    def test_swaks_and_curl(self):
        r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(self.d.smtp), "--tls",
                            "--from", "swaks@remote.test", "--to", "alice@local.test", "--header", "Subject: swaks",
                            "--body", "via swaks"], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("250 2.0.0 OK queued as", r.stdout)
        msg = os.path.join(self.tmp, "curl.eml")
        with open(msg, "w") as f:
            f.write("Subject: curl\r\n\r\nvia curl\r\n")
        r = subprocess.run(["curl", "-sS", "--ssl-reqd", "-k", f"smtp://127.0.0.1:{self.d.submission}",
                            "--user", "alice:wonderland", "--mail-from", "alice@local.test",
                            "--mail-rcpt", "bob@local.test", "--upload-file", msg], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = subprocess.run(["curl", "-sS", "-k", f"smtps://127.0.0.1:{self.d.smtps}", "--user", "alice:wonderland",
                            "--mail-from", "alice@local.test", "--mail-rcpt", "bob@local.test", "--upload-file", msg],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.count("mail_data LIKE '%via swaks%' AND mail_user = 'alice'"), 1)
        self.assertEqual(self.count("mail_data LIKE '%via curl%' AND mail_user = 'bob'"), 2)

    def test_open_relay_matrix_on_the_wire(self):
        before = self.d.q("SELECT COUNT(*) FROM outbox")[0][0]
        with smtplib.SMTP("127.0.0.1", self.d.smtp, timeout=10) as s:
            s.ehlo("spammer.test")
            s.mail("spammer@remote.test")
            for rcpt in ["victim@remote.test", '"victim@remote.test"@remote.test', "victim%remote.test@other.test",
                         "remote.test!victim@other.test", "@local.test:victim@remote.test", "victim@[192.0.2.7]",
                         "victim@local.test.remote.test", "victim@LOCAL.TEST.remote.test"]:
                code, text = s.rcpt(rcpt if rcpt.startswith("@") is False else "<" + rcpt + ">")
                self.assertIn(code, (550, 501), (rcpt, code, text))
            code, _ = s.rcpt("victim@local.test.")  # trailing dot: a syntax error
            self.assertEqual(code, 501)
        self.assertEqual(self.d.q("SELECT COUNT(*) FROM outbox")[0][0], before)

    def conversation(self, port, commands):
        """Sends HELO, `commands` and QUIT pipelined; returns the reply line of each command."""
        s, _ = raw(port)
        try:
            s.sendall(b"HELO client.test\r\n" + b"".join(c + b"\r\n" for c in commands) + b"QUIT\r\n")
            got = recv_until(s, b"\r\n221 ", timeout=10)
        finally:
            s.close()
        lines = got.split(b"\r\n")
        self.assertTrue(lines[0].startswith(b"250 "), got)
        return [line.decode() for line in lines[1:1 + len(commands)]]

    def test_liberal_paths_as_cmail_and_postfix_take_them(self):
        for args in (["user", "add", "carol", "x"], ["address", "add", "test", "store", "carol"]):
            subprocess.run([ADMIN, "-d", self.d.db, *args], check=True, capture_output=True, timeout=30)
        replies = self.conversation(self.d.smtp, [
            b"MAIL FROM:sender@remote.test SIZE=100",
            b"RCPT TO:alice@local.test NOTIFY=NEVER",
            b"RCPT TO:<test>",
            b"RCPT TO:Bob the Builder <bob@local.test> (twice)",
            b"DATA", b"Subject: liberal\r\n\r\nbody\r\n."])
        self.assertEqual([r[:3] for r in replies], ["250", "250", "250", "250", "354", "250"], replies)
        rows = self.d.q("SELECT mail_user, mail_envelopeto, mail_envelopefrom FROM mailbox "
                        "WHERE mail_data LIKE '%Subject: liberal%' ORDER BY mail_user, mail_envelopeto")
        # The parameters were taken as parameters, never as part of a path.
        self.assertEqual(rows, [("alice", "alice@local.test", "sender@remote.test"),
                                ("bob", "bob@local.test", "sender@remote.test"),
                                ("carol", "test", "sender@remote.test")])
        # A `strict` listener takes RFC 5321 paths only.
        replies = self.conversation(self.d.extra[1], [
            b"MAIL FROM:sender@remote.test", b"MAIL FROM:<sender@remote.test>", b"RCPT TO:alice@local.test",
            b"RCPT TO:<test>", b"RCPT TO:<(c)alice@local.test>", b"RCPT TO:<alice@local.test>"])
        self.assertEqual([r[:9] for r in replies],
                         ["501 5.1.7", "250 2.1.0", "501 5.1.3", "501 5.1.3", "501 5.1.3", "250 2.1.5"], replies)

    def test_duplicate_recipients_stored_once(self):
        replies = self.conversation(self.d.smtp, [b"MAIL FROM:<a@remote.test>"] + [b"RCPT TO:<alice@local.test>"] * 60 +
                                    [b"RCPT TO:<Alice@LOCAL.test>", b"DATA", b"Subject: dup\r\n\r\n" + b"x" * 900 + b"\r\n."])
        self.assertEqual([r[:3] for r in replies], ["250"] * 62 + ["354", "250"], replies[-3:])
        self.assertEqual(self.count("mail_data LIKE '%Subject: dup%'"), 1)

    def test_nul_refused_never_stored(self):
        replies = self.conversation(self.d.smtp, [b"MAIL FROM:<a@remote.test>", b"RCPT TO:<alice@local.test>", b"DATA",
                                                  b"Subject: nul\r\n\r\nbefore\r\n\0.\r\nafter\r\n."])
        self.assertEqual(replies[3], "554 5.6.0 Message contains NUL octets, allowed only with BODY=BINARYMIME")
        self.assertEqual(self.count("mail_data LIKE '%Subject: nul%'"), 0)

    def test_quoted_local_parts_stored_as_received(self):
        # One mailbox each (RFC 5321 4.1.2); without the quotes the first would read as an
        # address at remote.example.
        replies = self.conversation(self.d.smtp, [b"MAIL FROM:<\"a b\"@remote.test>", b'RCPT TO:<"user@remote.example"@quoted.test>',
                                                  b'RCPT TO:<"john doe"@quoted.test>', b"DATA", b"Subject: quoted\r\n\r\nx\r\n."])
        self.assertEqual([r[:3] for r in replies], ["250", "250", "250", "354", "250"], replies)
        rows = self.d.q("SELECT mail_envelopeto, mail_envelopefrom FROM mailbox WHERE mail_data LIKE '%Subject: quoted%' ORDER BY 1")
        # Both go to bob's mailbox: one copy, under the address given first.
        self.assertEqual(rows, [('"user@remote.example"@quoted.test', '"a b"@remote.test')])

    def test_open_relay_matrix_in_the_liberal_forms(self):
        before = self.d.q("SELECT COUNT(*) FROM outbox")[0][0]
        forms = [b"victim@remote.test", b"victim@remote.test NOTIFY=NEVER", b"<(local.test)victim@remote.test>",
                 b"<victim@remote.test>(@local.test)", b"<victim(local.test)@remote.test>",
                 b"Local User <victim@remote.test>", b'"alice@local.test" <victim@remote.test>',
                 b"<victim\\@local.test@remote.test>", b"@local.test:victim@remote.test",
                 b"<victim@remote.test (local.test)>", b"victim@remote.test @local.test",
                 b"<victim@remote.test>@local.test", b"victim@remote.test<x@local.test>",
                 b"victim", b"<victim>", b'"victim@remote.test"', b"victim@remote.test,alice@local.test",
                 b"victim@remote.test\talice@local.test", b"<victim@local.test.>"]
        for start in range(0, len(forms), 8):  # a session ends after 10 errors
            batch = forms[start:start + 8]
            replies = self.conversation(self.d.smtp, [b"MAIL FROM:spammer@remote.test"] +
                                        [b"RCPT TO:" + f for f in batch] + [b"DATA"])
            self.assertTrue(replies[0].startswith("250 "), replies)
            for form, reply in zip(batch, replies[1:]):
                self.assertIn(reply[:3], ("550", "501"), (form, reply))
            self.assertTrue(replies[-1].startswith("554 "), replies)  # no recipient at all
        self.assertEqual(self.d.q("SELECT COUNT(*) FROM outbox")[0][0], before)

    def test_starttls_command_injection(self):
        s, greeting = raw(self.d.smtp)
        s.sendall(b"EHLO x.test\r\n")
        recv_until(s, b"250 ")
        s.sendall(b"STARTTLS\r\nMAIL FROM:<evil@remote.test>\r\n")  # injected into the TLS handshake
        got = recv_until(s, b"\r\n", timeout=2)
        self.assertTrue(got.startswith(b"220 2.0.0"), got)
        rest, closed = read_until_closed(s)  # the "handshake" fails: the connection ends unanswered
        self.assertTrue(closed)
        self.assertNotIn(b"250", rest)  # the injected MAIL was never answered
        s.close()

    def test_pipelining_garbage_and_long_lines(self):
        s, _ = raw(self.d.smtp)
        s.sendall(b"EHLO x.test\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@local.test>\r\nDATA\r\n"
                  b"Subject: pipelined\r\n\r\n..dot\r\n.\r\nNOOP " + b"x" * 600 + b"\r\nNOOP\r\nQUIT\r\n")
        got = recv_until(s, b"221 ")
        self.assertIn(b"250 2.0.0 OK queued as", got)
        self.assertIn(b"500 5.5.2 Line too long\r\n250 2.0.0 OK\r\n221 ", got)
        s.close()
        self.assertEqual(self.count("mail_data LIKE '%Subject: pipelined%' AND mail_data LIKE '%' || char(10) || '.dot%'"), 1)
        s, _ = raw(self.d.smtp)
        s.sendall(b"EHLO x.test\r\n" + b"GARBAGE\r\n" * 12)
        got = recv_until(s, b"421 ")
        self.assertIn(b"421 4.7.0", got)
        self.assertEqual(read_until_closed(s), (b"", True))  # closed
        s.close()

    def test_size_limit_and_disconnect_mid_data(self):
        big = "Subject: big\r\n\r\n" + ("x" * 70 + "\r\n") * 3000
        with smtplib.SMTP("127.0.0.1", self.d.smtp, timeout=10) as s:
            # smtplib announces SIZE=, so the refusal comes at MAIL (RFC 1870 6.1).
            with self.assertRaises(smtplib.SMTPSenderRefused) as e:
                s.sendmail("a@remote.test", ["alice@local.test"], big)
            self.assertEqual(e.exception.smtp_code, 552)
        # A client that does not announce the size is stopped while the data streams in.
        s, _ = raw(self.d.smtp)
        s.sendall(b"EHLO x.test\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@local.test>\r\nDATA\r\n")
        recv_until(s, b"354")
        s.sendall(big.encode() + b".\r\n")
        self.assertIn(b"552 5.3.4", recv_until(s, b"552"))
        s.close()
        self.assertEqual(self.count("mail_data LIKE '%Subject: big%'"), 0)
        s, _ = raw(self.d.smtp)
        s.sendall(b"EHLO x.test\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@local.test>\r\nDATA\r\nSubject: cut\r\n\r\nhalf")
        recv_until(s, b"354")
        s.shutdown(socket.SHUT_WR)  # the client vanishes mid-DATA: the server reads EOF there
        self.assertEqual(read_until_closed(s), (b"", True))  # and closes: it has acted on the EOF
        s.close()
        with smtplib.SMTP("127.0.0.1", self.d.smtp, timeout=10) as s:  # still serving
            self.assertEqual(s.noop()[0], 250)
            # Committed by the one writer after anything the cut session could have handed it.
            s.sendmail("a@remote.test", ["alice@local.test"], "Subject: later\r\n\r\nafter the cut\r\n")
        self.assertEqual(self.count("mail_data LIKE '%Subject: later%'"), 1)
        self.assertEqual(self.count("mail_data LIKE '%Subject: cut%'"), 0)

    def test_many_connections_at_once(self):
        socks = []
        for _ in range(500):
            socks.append(socket.create_connection(("127.0.0.1", self.d.smtp), timeout=10))
        # 50 per address by default: the first 50 get a greeting, the rest are closed at once.
        greeted = closed = 0
        for s in socks:
            data = recv_until(s, b"\r\n", timeout=5)
            if data.startswith(b"220 "):
                greeted += 1
            elif data == b"":
                closed += 1
        for s in socks:
            s.close()
        self.assertEqual(greeted, 50)
        self.assertEqual(closed, 450)

        def serves():
            try:
                with smtplib.SMTP("127.0.0.1", self.d.smtp, timeout=10) as s:
                    return s.noop()[0] == 250
            except (smtplib.SMTPServerDisconnected, ConnectionError):  # still over the limit
                return False
        self.assertTrue(wait_for(serves, 10))  # and it serves again once it has seen them close


    def test_slow_client_is_timed_out(self):
        s, greeting = raw(self.d.extra[0])
        self.assertTrue(greeting.startswith(b"220 slow.test"))
        s.sendall(b"EHLO x.test\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@local.test>\r\nDATA\r\nSubject: slow\r\n")
        got = recv_until(s, b"421", timeout=4)  # timeout=1: well within 4 s
        self.assertIn(b"421 4.4.2 slow.test Timeout exceeded", got)
        self.assertEqual(read_until_closed(s), (b"", True))  # closed
        s.close()
        self.assertEqual(self.count("mail_data LIKE '%Subject: slow%'"), 0)

    def trickle(self, port, start, byte, count=40, interval=0.2):
        """Sends `start`, then `byte` every `interval` s up to `count` times, reading all the while;
        returns (what arrived after `start`, whether the server closed the connection)."""
        s, _ = raw(port)
        try:
            s.sendall(start)
            got = b""
            s.settimeout(interval)
            for _ in range(count):
                try:
                    s.sendall(byte)
                    chunk = s.recv(4096)
                    if not chunk:
                        return got, True
                    got += chunk
                except socket.timeout:
                    pass
                except (BrokenPipeError, ConnectionResetError):
                    return got, True
            return got, False
        finally:
            s.close()

    def test_trickling_clients_meet_deadlines(self):
        # The listener's timeout is 1 s; one byte every 0.2 s never lets it pass, but a command
        # line, and DATA, must arrive whole in about that time (docs/smtpd.md#limits-and-replies).
        got, closed = self.trickle(self.d.extra[0], b"EHLO x.test\r\n", b"x")
        self.assertTrue(closed, got)
        self.assertIn(b"421 4.4.2 slow.test Timeout exceeded", got)
        got, closed = self.trickle(self.d.extra[0], b"EHLO x.test\r\nMAIL FROM:<a@remote.test>\r\n"
                                   b"RCPT TO:<alice@local.test>\r\nDATA\r\nSubject: trickle\r\n\r\n", b"y")
        self.assertTrue(closed, got)
        self.assertIn(b"354 ", got)
        self.assertTrue(got.endswith(b"421 4.4.2 slow.test Timeout exceeded, closing connection\r\n"), got)
        self.assertEqual(self.count("mail_data LIKE '%Subject: trickle%'"), 0)
        # Whole commands at the same pace are served: each line is a deadline of its own.
        got, closed = self.trickle(self.d.extra[0], b"", b"NOOP\r\n", count=10)
        self.assertFalse(closed, got)
        self.assertEqual(got.count(b"250 2.0.0 OK\r\n"), 10, got)

    def test_500_sessions_at_once(self):
        socks = [socket.create_connection(("127.0.0.1", self.d.extra[0]), timeout=10) for _ in range(500)]
        try:
            for s in socks:
                self.assertTrue(recv_until(s, b"\r\n").startswith(b"220 "))
            for s in socks:
                s.sendall(b"NOOP\r\n")
            replies = [recv_until(s, b"\r\n") for s in socks]
            self.assertEqual(replies.count(b"250 2.0.0 OK\r\n"), 500)
        finally:
            for s in socks:
                s.close()


class ConfigAndServeTest(unittest.TestCase):
    def test_bad_config_line_names_file_and_line(self):
        with tempfile.TemporaryDirectory() as tmp:
            conf = os.path.join(tmp, "bad.conf")
            with open(conf, "w") as f:
                f.write("database /nonexistent\nbind 127.0.0.1 0 annouce=x\n")
            r = subprocess.run([SMTPD, conf, "nodetach"], capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 1)
            self.assertIn(f"{conf}:2: unknown bind option 'annouce=x'", r.stderr)

    def test_v9_database_upgraded_on_start_in_one_line(self):
        with tempfile.TemporaryDirectory() as tmp:
            db = os.path.join(tmp, "master.db3")
            c = sqlite3.connect(db)
            c.executescript(harness.v9_install_sql())
            c.close()
            conf = os.path.join(tmp, "smtpd.conf")
            with open(conf, "w") as f:
                f.write(f"database {db}\nbind 127.0.0.1 0\n")
            p, _ = start_daemon(SMTPD, conf, 1)
            code, err = stop_daemon(p)
            self.assertEqual(code, 0, err)
            backups = [n for n in os.listdir(tmp) if n.startswith("master.db3.backup-v9-")]
            self.assertEqual(len(backups), 1, os.listdir(tmp))
            lines = [l for l in err.splitlines() if "upgraded" in l or "backup" in l]
            self.assertEqual(len(lines), 1, err)
            self.assertTrue(lines[0].endswith(f"upgraded {db} from schema version 9 to 14 (backup: "
                                              f"{os.path.join(tmp, backups[0])})"), lines[0])

    def test_pidfile_logfile_and_sighup_reopen(self):
        with tempfile.TemporaryDirectory() as tmp:
            db = os.path.join(tmp, "master.db3")
            subprocess.run([ADMIN, "-d", db, "init"], check=True, capture_output=True)
            conf, log, pid = (os.path.join(tmp, n) for n in ("smtpd.conf", "smtpd.log", "smtpd.pid"))
            with open(conf, "w") as f:
                f.write(f"verbosity 1\nlogfile {log}\npidfile {pid}\ndatabase {db}\nbind 127.0.0.1 0\n")
            p = subprocess.Popen([SMTPD, conf, "nodetach"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                port = read_ports(p, 1)["smtp"][0]
                self.assertEqual(open(pid).read().strip(), str(p.pid))  # cmail left it empty (docs/compatibility.md#daemons-pid-file)
                os.rename(log, log + ".1")  # log rotation, then SIGHUP reopens the file
                p.send_signal(signal.SIGHUP)
                self.assertTrue(wait_for(lambda: os.path.exists(log)), "SIGHUP did not reopen the log file")
                with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
                    s.noop()
                p.send_signal(signal.SIGTERM)
                self.assertEqual(p.wait(timeout=15), 0)
                self.assertTrue(os.path.exists(log), "SIGHUP did not reopen the log file")
                self.assertIn("stopped", open(log).read())
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
                p.stdout.close()
                p.stderr.close()

    def test_cmail_serve_zero_config(self):
        with tempfile.TemporaryDirectory() as tmp:
            data = os.path.join(tmp, "data")
            p = subprocess.Popen([CMAIL, "serve", "--data", data, "--smtp-port", "0", "--submission-port", "0",
                                  "--smtps-port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                ports = read_ports(p, 3)
                self.assertEqual(sorted(ports), ["smtp", "smtps", "submission"])
                for f in ("master.db3", "cert.pem", "key.pem"):
                    self.assertTrue(os.path.exists(os.path.join(data, f)), f)
                self.assertEqual(os.stat(os.path.join(data, "key.pem")).st_mode & 0o077, 0)
                db = os.path.join(data, "master.db3")
                for args in (["user", "add", "carol", "pw"], ["address", "add", "carol@localhost", "store", "carol"],
                             ["smtpd", "enable", "carol", "any"]):
                    subprocess.run([ADMIN, "-d", db, *args], check=True, capture_output=True)
                with smtplib.SMTP_SSL("127.0.0.1", ports["smtps"][0], timeout=10, context=TLS) as s:
                    s.login("carol", "pw")
                    s.sendmail("carol@localhost", ["carol@localhost"], "Subject: serve\r\n\r\nzero config\r\n")
                c = sqlite3.connect(db)
                self.assertEqual(c.execute("SELECT COUNT(*) FROM mailbox WHERE mail_user = 'carol'").fetchone()[0], 1)
                c.close()
                # SIGTERM: graceful stop, exit 0.
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
