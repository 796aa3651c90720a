#!/usr/bin/python3
"""SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (docs/scram.md) against the real daemons.

Usage: scram_test.py BUILD_DIR

cmail-smtpd, cmail-popd and cmail-imapd on one database, driven by smtplib, poplib and imaplib
with a SCRAM client written here from RFC 5802 (hashlib, hmac) that checks the server's
signature. The channel binding of -PLUS (tls-exporter, RFC 9266) comes from OpenSSL: Python
3.11's ssl module cannot export it, so `openssl s_client -keymatexport` makes the TLS session
(STARTTLS on SMTP) and the exchange goes through it; the server computes its own with mbedTLS,
so a login proves both agree. Also: a password changed in SQL by another program (the trigger
deletes the credentials: SCRAM fails, PLAIN works and makes new ones), cmail-admin's passwd,
unknown users (the same made-up salt on every try and from every daemon), the downgrade flag.
"""
import base64
import hashlib
import hmac
import imaplib
import os
import poplib
import re
import smtplib
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import unittest

import harness
from harness import make_cert, start_daemon, stop_daemon

BUILD = sys.argv.pop(1) if len(sys.argv) > 1 else "build"
SMTPD = os.path.join(BUILD, "frontends", "cmail-smtpd", "cmail-smtpd")
POPD = os.path.join(BUILD, "frontends", "cmail-popd", "cmail-popd")
IMAPD = os.path.join(BUILD, "frontends", "cmail-imapd", "cmail-imapd")
ADMIN = os.path.join(BUILD, "frontends", "cmail-admin", "cmail-admin")

PASSWORD = "wonderland"


def b64(data):
    return base64.b64encode(data).decode()


def tls_context(ems=True):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if not ems:
        ctx.options |= 1  # SSL_OP_NO_EXTENDED_MASTER_SECRET (OpenSSL 3.0): no RFC 7627
    return ctx


class Scram:
    """A SCRAM-SHA-256 client from RFC 5802 3 and 5 and RFC 7677, for smtplib.auth,
    imaplib.authenticate and by hand: call it with each challenge (None or b"" for the first)."""

    def __init__(self, user, password, cbind=None, flag=None, nonce=None):
        self.user, self.password = user, password
        self.cbind = cbind  # the tls-exporter's 32 octets for -PLUS
        self.nonce = nonce or b64(os.urandom(18))
        self.gs2 = (flag or ("p=tls-exporter" if cbind is not None else "n")) + ",,"
        self.first_bare = "n=" + user.replace("=", "=3D").replace(",", "=2C") + ",r=" + self.nonce
        self.round = 0
        self.verified = False
        self.server_first = None

    def first(self):
        return self.gs2 + self.first_bare

    def final(self, server_first):
        self.server_first = server_first
        attrs = dict(a.split("=", 1) for a in server_first.split(","))
        assert attrs["r"].startswith(self.nonce) and len(attrs["r"]) > len(self.nonce), server_first
        salted = hashlib.pbkdf2_hmac("sha256", self.password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"]))
        client_key = hmac.new(salted, b"Client Key", "sha256").digest()
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = "c=" + b64(self.gs2.encode() + (self.cbind or b"")) + ",r=" + attrs["r"]
        auth_message = (self.first_bare + "," + server_first + "," + without_proof).encode()
        signature = hmac.new(stored_key, auth_message, "sha256").digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        server_key = hmac.new(salted, b"Server Key", "sha256").digest()
        self.server_signature = hmac.new(server_key, auth_message, "sha256").digest()
        return without_proof + ",p=" + b64(proof)

    def check(self, server_final):
        """The server-final-message: True when v= is the signature only the ServerKey makes."""
        if not server_final.startswith("v="):
            return False
        self.verified = hmac.compare_digest(base64.b64decode(server_final[2:]), self.server_signature)
        return self.verified

    def __call__(self, challenge=None):
        text = challenge.decode() if isinstance(challenge, bytes) else (challenge or "")
        self.round += 1
        if self.round == 1 and not text:
            return self.first()
        if self.server_first is None:
            if self.round == 1:
                raise AssertionError("a challenge before the client-first-message: " + text)
            return self.final(text)
        if not self.check(text):
            return None  # imaplib cancels with "*"; smtplib would fail encoding it
        return ""


def salt_in(server_first):
    return dict(a.split("=", 1) for a in server_first.split(","))["s"]


class Daemons:
    """A database with alice (smtpd, popd and imapd enabled), a certificate, the three daemons
    with STARTTLS listeners that allow authentication."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.db = os.path.join(tmp, "master.db3")
        for args in (("init",), ("user", "add", "alice", PASSWORD), ("address", "add", "alice@local.test", "store", "alice"),
                     ("smtpd", "enable", "alice", "any"), ("popd", "enable", "alice"), ("imapd", "enable", "alice")):
            self.admin(*args)
        cert, key = make_cert(tmp, "mx.local.test")
        tls = f"cert={cert} key={key}"
        self.procs = []
        self.smtp = self.start(SMTPD, "smtpd", f"bind 127.0.0.1 0 announce=mx.local.test {tls} auth\n")["smtp"][0]
        self.pop3 = self.start(POPD, "popd", f"bind 127.0.0.1 0 announce=pop.local.test {tls}\n")["pop3"][0]
        self.imap = self.start(IMAPD, "imapd", f"bind 127.0.0.1 0 announce=imap.local.test {tls}\n")["imap"][0]

    def admin(self, *args):
        subprocess.run([ADMIN, "-d", self.db, *args], check=True, capture_output=True, timeout=60)

    def start(self, exe, name, listeners):
        conf = os.path.join(self.tmp, name + ".conf")
        with open(conf, "w") as f:
            f.write(f"database {self.db}\n{listeners}")
        proc, ports = start_daemon(exe, conf, 1)
        self.procs.append(proc)
        return ports

    def q(self, sql, *args):
        c = sqlite3.connect(self.db, timeout=30)
        try:
            rows = c.execute(sql, args).fetchall()
            c.commit()
            return rows
        finally:
            c.close()

    def stop(self):
        return [stop_daemon(p) for p in self.procs]

    # SMTP: a new connection with STARTTLS; (reply code, the client) for one SCRAM exchange.
    def smtp_scram(self, client, mechanism="SCRAM-SHA-256", ems=True):
        with smtplib.SMTP("127.0.0.1", self.smtp, timeout=30) as s:
            s.starttls(context=tls_context(ems))
            s.ehlo("client.test")
            try:
                code, _ = s.auth(mechanism, client)
            except smtplib.SMTPAuthenticationError as e:
                code = e.smtp_code
            return code

    def smtp_plain(self, user, password):
        with smtplib.SMTP("127.0.0.1", self.smtp, timeout=30) as s:
            s.starttls(context=tls_context())
            s.ehlo("client.test")
            code, _ = s.docmd("AUTH", "PLAIN " + b64(f"\0{user}\0{password}".encode()))
            return code

    def smtp_server_first(self, user):
        """The server-first-message a SCRAM exchange for `user` gets (then cancelled)."""
        with smtplib.SMTP("127.0.0.1", self.smtp, timeout=30) as s:
            s.starttls(context=tls_context())
            s.ehlo("client.test")
            code, resp = s.docmd("AUTH", "SCRAM-SHA-256 " + b64(Scram(user, "x").first().encode()))
            assert code == 334, (code, resp)
            s.docmd("*")
            return base64.b64decode(resp).decode()


class OpenSslSmtp:
    """`openssl s_client -starttls smtp` to cmail-smtpd, with the session's tls-exporter
    (RFC 9266: the label EXPORTER-Channel-Binding, 32 octets) printed as -keymatexport."""

    def __init__(self, port):
        self.proc = subprocess.Popen(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-starttls", "smtp", "-name", "client.test",
             "-keymatexport", "EXPORTER-Channel-Binding", "-keymatexportlen", "32", "-nocommands", "-ign_eof"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.exporter = None
        while self.exporter is None:
            line = self.proc.stdout.readline().decode(errors="replace")
            if not line:
                raise RuntimeError("openssl s_client ended: " + self.proc.stderr.read().decode(errors="replace"))
            m = re.search(r"Keying material: ([0-9A-Fa-f]{64})", line)
            if m:
                self.exporter = bytes.fromhex(m.group(1))

    def send(self, line):
        self.proc.stdin.write(line.encode() + b"\r\n")
        self.proc.stdin.flush()

    def reply(self):
        """The next complete SMTP reply: (code, [texts])."""
        texts = []
        while True:
            line = self.proc.stdout.readline().decode(errors="replace")
            if not line:
                raise RuntimeError("openssl s_client ended")
            m = re.match(r"^(\d{3})([ -])(.*?)\r?$", line.rstrip("\n"))
            if not m:
                continue  # s_client's own chatter
            texts.append(m.group(3))
            if m.group(2) == " ":
                return int(m.group(1)), texts

    def close(self):
        self.proc.stdin.close()
        self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            f.close()


class ScramTest(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="cmail-scram-test-")
        self.addCleanup(tmp.cleanup)
        self.d = Daemons(tmp.name)
        self.addCleanup(self.stop_daemons)

    def stop_daemons(self):
        for code, err in self.d.stop():
            self.assertEqual(code, 0, err)
            self.assertNotIn(PASSWORD, err)

    def test_smtp_pop3_imap_scram_with_the_server_signature_checked(self):
        # The credentials cmail-admin made: 10000 iterations, base64 salt and keys.
        (salt, iterations, stored, server), = self.d.q(
            "SELECT scram_salt, scram_iterations, scram_stored_key, scram_server_key FROM scram WHERE scram_user = 'alice'")
        self.assertEqual(iterations, 10000)
        self.assertEqual(len(base64.b64decode(salt)), 16)
        self.assertEqual(len(base64.b64decode(stored)), 32)
        self.assertEqual(len(base64.b64decode(server)), 32)

        with smtplib.SMTP("127.0.0.1", self.d.smtp, timeout=30) as s:
            s.ehlo("client.test")
            # Not TLS: SCRAM-SHA-256 only; -PLUS needs a channel to bind to.
            self.assertEqual(s.esmtp_features["auth"].split(), ["PLAIN", "LOGIN", "SCRAM-SHA-256"])
            s.starttls(context=tls_context())
            s.ehlo("client.test")
            self.assertEqual(s.esmtp_features["auth"].split(), ["PLAIN", "LOGIN", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"])
            client = Scram("alice", PASSWORD)
            code, _ = s.auth("SCRAM-SHA-256", client)
            self.assertEqual(code, 235)
            self.assertTrue(client.verified)
            self.assertEqual(salt_in(client.server_first), salt)
            s.sendmail("alice@local.test", ["alice@local.test"], "Subject: scram\r\n\r\nsent after SCRAM\r\n")
        # A TLS session without the extended master secret (RFC 7627) has no tls-exporter to
        # bind to (RFC 9266 2): no -PLUS.
        with smtplib.SMTP("127.0.0.1", self.d.smtp, timeout=30) as s:
            s.starttls(context=tls_context(ems=False))
            s.ehlo("client.test")
            self.assertNotIn("SCRAM-SHA-256-PLUS", s.esmtp_features["auth"])
            self.assertIn("SCRAM-SHA-256", s.esmtp_features["auth"])

        wrong = Scram("alice", "wrong")
        self.assertEqual(self.d.smtp_scram(wrong), 535)
        self.assertFalse(wrong.verified)

        # POP3 AUTH (RFC 5034) with an initial response, after STLS.
        p = poplib.POP3("127.0.0.1", self.d.pop3, timeout=30)
        p.stls(context=tls_context())
        self.assertEqual(p.capa()["SASL"], ["PLAIN", "LOGIN", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"])
        client = Scram("alice", PASSWORD)
        p._putcmd("AUTH SCRAM-SHA-256 " + b64(client.first().encode()))
        challenge = p._getresp()
        self.assertTrue(challenge.startswith(b"+ "), challenge)
        p._putcmd(b64(client.final(base64.b64decode(challenge[2:]).decode()).encode()))
        challenge = p._getresp()
        self.assertTrue(client.check(base64.b64decode(challenge[2:]).decode()), challenge)
        p._putcmd("")
        self.assertTrue(p._getresp().startswith(b"+OK Logged in, maildrop has 1 messages"))
        self.assertEqual(p.stat()[0], 1)
        p.quit()

        # IMAP AUTHENTICATE through imaplib (no SASL-IR: the empty challenge first).
        imap = imaplib.IMAP4("127.0.0.1", self.d.imap, timeout=30)
        self.assertIn("AUTH=SCRAM-SHA-256", imap.capabilities)
        self.assertNotIn("AUTH=SCRAM-SHA-256-PLUS", imap.capabilities)
        imap.starttls(ssl_context=tls_context())
        client = Scram("alice", PASSWORD)
        typ, _ = imap.authenticate("SCRAM-SHA-256", client)
        self.assertEqual(typ, "OK")
        self.assertTrue(client.verified)
        typ, data = imap.select("INBOX")
        self.assertEqual((typ, data), ("OK", [b"1"]))
        imap.logout()
        imap = imaplib.IMAP4("127.0.0.1", self.d.imap, timeout=30)
        imap.starttls(ssl_context=tls_context())
        with self.assertRaises(imaplib.IMAP4.error) as e:
            imap.authenticate("SCRAM-SHA-256", Scram("alice", "wrong"))
        self.assertIn("AUTHENTICATIONFAILED", str(e.exception))
        imap.logout()

    def test_plus_with_openssls_tls_exporter_and_a_mismatch_refused(self):
        c = OpenSslSmtp(self.d.smtp)
        try:
            c.send("EHLO client.test")
            code, lines = c.reply()
            self.assertEqual(code, 250)
            self.assertIn("AUTH PLAIN LOGIN SCRAM-SHA-256 SCRAM-SHA-256-PLUS", lines)
            client = Scram("alice", PASSWORD, cbind=c.exporter)
            c.send("AUTH SCRAM-SHA-256-PLUS " + b64(client.first().encode()))
            code, lines = c.reply()
            self.assertEqual(code, 334)
            c.send(b64(client.final(base64.b64decode(lines[0]).decode()).encode()))
            code, lines = c.reply()
            self.assertEqual(code, 334, lines)
            self.assertTrue(client.check(base64.b64decode(lines[0]).decode()))
            c.send("")
            self.assertEqual(c.reply()[0], 235)
        finally:
            c.close()
        # Bound to something else than this connection: refused (RFC 5802 6).
        c = OpenSslSmtp(self.d.smtp)
        try:
            c.send("EHLO client.test")
            c.reply()
            other = bytes([c.exporter[0] ^ 1]) + c.exporter[1:]
            client = Scram("alice", PASSWORD, cbind=other)
            c.send("AUTH SCRAM-SHA-256-PLUS " + b64(client.first().encode()))
            code, lines = c.reply()
            self.assertEqual(code, 334)
            c.send(b64(client.final(base64.b64decode(lines[0]).decode()).encode()))
            self.assertEqual(c.reply()[0], 535)
            # "y": the client could bind but saw no -PLUS, which the server offered: a downgrade.
            c.send("AUTH SCRAM-SHA-256 " + b64(Scram("alice", PASSWORD, flag="y").first().encode()))
            self.assertEqual(c.reply()[0], 535)
        finally:
            c.close()

    def test_password_changed_by_sql_and_by_cmail_admin(self):
        self.assertEqual(self.d.smtp_scram(Scram("alice", PASSWORD)), 235)
        # Another program writes a new (legacy) hash straight into users: the trigger drops the
        # SCRAM credentials, so neither the old password nor the new one logs in through SCRAM.
        legacy = "salt:" + hashlib.sha256(b"salt" + b"changed").hexdigest()
        self.d.q("UPDATE users SET user_authdata = ? WHERE user_name = 'alice'", legacy)
        self.assertEqual(self.d.q("SELECT COUNT(*) FROM scram"), [(0,)])
        self.assertEqual(self.d.smtp_scram(Scram("alice", PASSWORD)), 535)
        self.assertEqual(self.d.smtp_scram(Scram("alice", "changed")), 535)
        # PLAIN with the new password works, upgrades the legacy hash and makes SCRAM
        # credentials with it; SCRAM works again.
        self.assertEqual(self.d.smtp_plain("alice", "changed"), 235)
        (authdata,), = self.d.q("SELECT user_authdata FROM users WHERE user_name = 'alice'")
        self.assertTrue(authdata.startswith("$argon2id$"), authdata)
        self.assertEqual(self.d.q("SELECT scram_iterations FROM scram WHERE scram_user = 'alice'"), [(10000,)])
        client = Scram("alice", "changed")
        self.assertEqual(self.d.smtp_scram(client), 235)
        self.assertTrue(client.verified)
        # cmail-admin user passwd: new credentials at once.
        self.d.admin("user", "passwd", "alice", "third")
        self.assertEqual(self.d.smtp_scram(Scram("alice", "changed")), 535)
        self.assertEqual(self.d.smtp_scram(Scram("alice", "third")), 235)
        # A login disabled (revoke): no credentials, refused like anyone unknown.
        self.d.admin("user", "revoke", "alice")
        self.assertEqual(self.d.q("SELECT COUNT(*) FROM scram"), [(0,)])
        self.assertEqual(self.d.smtp_scram(Scram("alice", "third")), 535)

    def test_unknown_users_look_like_real_ones(self):
        first = self.d.smtp_server_first("nobody")
        attrs = dict(a.split("=", 1) for a in first.split(","))
        self.assertEqual(attrs["i"], "10000")
        self.assertEqual(len(base64.b64decode(attrs["s"])), 16)
        # The same made-up salt on every try, and from every daemon (the secret is the database's).
        self.assertEqual(salt_in(self.d.smtp_server_first("nobody")), attrs["s"])
        self.assertNotEqual(salt_in(self.d.smtp_server_first("somebody")), attrs["s"])
        imap = imaplib.IMAP4("127.0.0.1", self.d.imap, timeout=30)
        imap.starttls(ssl_context=tls_context())
        seen = []

        def spy(challenge):
            if challenge:
                seen.append(challenge.decode())
            return Scram("nobody", "x", nonce="abc")(challenge) if not challenge else None

        with self.assertRaises(imaplib.IMAP4.error):
            imap.authenticate("SCRAM-SHA-256", spy)
        imap.logout()
        self.assertEqual(salt_in(seen[0]), attrs["s"])
        # And the exchange fails as a wrong password does, with the same reply.
        self.assertEqual(self.d.smtp_scram(Scram("nobody", PASSWORD)), 535)
        self.assertEqual(self.d.smtp_scram(Scram("alice", "wrong")), 535)


if __name__ == "__main__":
    harness.main()
