#!/usr/bin/python3
"""DKIM (RFC 6376, RFC 8463) and DMARC (RFC 7489) with the real daemons and an independent
implementation, dkimpy (Debian's python3-dkim, Ed25519 through python3-nacl).

Usage: dkim_test.py BUILD_DIR

- Keys made by `cmail-admin dkim generate` sign what users submit through cmail-smtpd; dkimpy
  verifies both signatures (RSA and Ed25519) of the queued message, and notices a change.
- Messages signed by dkimpy, sent to cmail-smtpd from outside, are verified by cmail against
  tests/dns_server.py; the Authentication-Results field is parsed by python3-authres; a DMARC
  failure is stored, refused (550 5.7.1) or filed into Junk as `cmail-admin dmarc` says.
- `cmail-admin dkim check` against the DNS server: matching, differing and missing records.
Every wait is bounded; the DNS server answers at once.
"""
import base64
import json
import os
import re
import smtplib
import sqlite3
import subprocess
import sys
import tempfile
import unittest

import authres
import dkim
import nacl.signing

from harness import start_daemon, stop_daemon

BUILD = sys.argv.pop(1) if len(sys.argv) > 1 else "build"
SMTPD = os.path.join(BUILD, "frontends", "cmail-smtpd", "cmail-smtpd")
ADMIN = os.path.join(BUILD, "frontends", "cmail-admin", "cmail-admin")
DNS_SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "dns_server.py")


def admin(db, *args, check=True):
    return subprocess.run([ADMIN, "-d", db, *args], check=check, capture_output=True, text=True, timeout=60)


def published(output):
    """The TXT record text of `cmail-admin dkim generate|record` output: its strings joined."""
    line = [l for l in output.splitlines() if " IN TXT " in l][0]
    name = line.split()[0].rstrip(".")
    return name, "".join(re.findall(r'"([^"]*)"', line))


class Dns:
    """tests/dns_server.py on a zone that a test may change while it runs."""

    def __init__(self, tmp, zone):
        self.path = os.path.join(tmp, "zone.json")
        self.write(zone)
        self.proc = subprocess.Popen(["/usr/bin/python3", DNS_SERVER, self.path, "--lifetime", "300"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().split()
        assert line and line[0] == "dns", line
        self.address = line[1]

    def write(self, zone):
        tmp = self.path + ".new"
        with open(tmp, "w") as f:
            json.dump(zone, f)
        os.replace(tmp, self.path)

    def stop(self):
        stop_daemon(self.proc)


class DkimTest(unittest.TestCase):
    def setUp(self):
        t = tempfile.TemporaryDirectory(prefix="cmail-dkim-")
        self.addCleanup(t.cleanup)
        self.tmp = t.name
        self.db = os.path.join(self.tmp, "master.db3")
        admin(self.db, "init")
        admin(self.db, "user", "add", "carol", "pw")
        admin(self.db, "address", "add", "carol@local.test", "store", "carol")
        admin(self.db, "smtpd", "enable", "carol", "any")
        self.zone = {"remote.test": {"TXT": ["v=spf1 -all"]}}  # SPF fails: DMARC rests on DKIM
        self.dns = Dns(self.tmp, self.zone)
        self.addCleanup(self.dns.stop)

    def start(self):
        conf = os.path.join(self.tmp, "smtpd.conf")
        with open(conf, "w") as f:
            f.write(f"database {self.db}\nresolver {self.dns.address}\n"
                    "bind 127.0.0.1 0 announce=mx.local.test\n"
                    "bind 127.0.0.1 0 announce=mx.local.test auth=strict\n")
        smtpd, ports = start_daemon(SMTPD, conf, 2)
        self.addCleanup(lambda: self.assertEqual(stop_daemon(smtpd)[0], 0))
        self.smtp, self.submission = ports["smtp"][0], ports["submission"][0]

    def query(self, sql):
        with sqlite3.connect(self.db) as c:
            return c.execute(sql).fetchall()

    def test_our_signatures_verified_by_dkimpy(self):
        rsa = admin(self.db, "dkim", "generate", "local.test", "--selector", "r1").stdout
        ed = admin(self.db, "dkim", "generate", "local.test", "--algorithm", "ed25519", "--selector", "e1").stdout
        records = dict([published(rsa), published(ed)])
        self.assertEqual(set(records), {"r1._domainkey.local.test", "e1._domainkey.local.test"})
        self.assertTrue(records["e1._domainkey.local.test"].startswith("v=DKIM1; k=ed25519; p="))
        # What `list` shows has no private key in it.
        listing = admin(self.db, "dkim", "list").stdout
        self.assertIn("r1", listing)
        self.assertNotIn("PRIVATE", listing)
        self.start()
        with smtplib.SMTP("127.0.0.1", self.submission, timeout=30) as s:
            s.login("carol", "pw")
            s.sendmail("carol@local.test", ["far@remote.test"],
                       "From: Carol <carol@local.test>\r\nTo: far@remote.test\r\nSubject: signed\r\n"
                       "Date: Fri, 04 Dec 2026 12:00:00 +0000\r\nMessage-ID: <1@local.test>\r\n\r\n"
                       "Hello,\r\n\r\nthis is signed twice.\r\n\r\n")
        (data,), = self.query("SELECT mail_data FROM outbox")
        message = data.encode() if isinstance(data, str) else bytes(data)
        self.assertTrue(message.startswith(b"DKIM-Signature: "), message[:200])

        def dns(name, timeout=5):
            return records.get(name.decode().rstrip("."), "").encode()

        def verifies(m, idx):
            try:
                return dkim.DKIM(m).verify(idx=idx, dnsfunc=dns)
            except dkim.ValidationError:  # dkimpy raises for some failures, returns False for others
                return False

        self.assertTrue(verifies(message, 0))
        self.assertTrue(verifies(message, 1))
        algorithms = sorted(re.findall(rb"a=([a-z0-9-]+);", message.split(b"\r\n\r\n")[0]))
        self.assertEqual(algorithms, [b"ed25519-sha256", b"rsa-sha256"])
        changed = message.replace(b"signed twice", b"signed thrice")
        self.assertFalse(verifies(changed, 0))
        self.assertFalse(verifies(changed, 1))
        # A second From above the signed one breaks it: From is over-signed.
        self.assertFalse(verifies(b"From: mallory@evil.test\r\n" + message, 1))

    def sign_remote(self, body="Dinner at eight.\r\n", sender="joe@remote.test"):
        """A message from remote.test signed by dkimpy with RSA (selector rs) and Ed25519 (es)."""
        key = subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
                             check=True, capture_output=True, timeout=60).stdout
        der = subprocess.run(["openssl", "pkey", "-pubout", "-outform", "DER"], input=key, check=True,
                             capture_output=True, timeout=60).stdout
        seed = os.urandom(32)
        ed_pub = nacl.signing.SigningKey(seed).verify_key.encode()
        self.zone["rs._domainkey.remote.test"] = {"TXT": ["v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()]}
        self.zone["es._domainkey.remote.test"] = {"TXT": ["v=DKIM1; k=ed25519; p=" + base64.b64encode(ed_pub).decode()]}
        self.zone["_dmarc.remote.test"] = {"TXT": ["v=DMARC1; p=reject; rua=mailto:d@remote.test"]}
        self.dns.write(self.zone)
        message = (f"From: Joe <{sender}>\r\nTo: carol@local.test\r\nSubject: dinner\r\n"
                   f"Date: Fri, 04 Dec 2026 12:00:00 +0000\r\n\r\n{body}").encode()
        sig_rsa = dkim.sign(message, b"rs", b"remote.test", key, canonicalize=(b"relaxed", b"simple"))
        sig_ed = dkim.sign(message, b"es", b"remote.test", base64.b64encode(seed), signature_algorithm=b"ed25519-sha256",
                           canonicalize=(b"relaxed", b"relaxed"))
        return sig_ed + sig_rsa + message

    def stored(self):
        rows = self.query("SELECT mail_data, folder_name FROM mailbox JOIN folders ON mail_folder = folder_id "
                          "ORDER BY mail_id")
        return [(d.encode() if isinstance(d, str) else bytes(d), f) for d, f in rows]

    @staticmethod
    def results(message):
        head = message.split(b"\r\n\r\n", 1)[0].decode()
        fields = []
        for line in head.split("\r\n"):
            if line[:1] in (" ", "\t") and fields:
                fields[-1] += line
            else:
                fields.append(line)
        field = [f for f in fields if f.lower().startswith("authentication-results:")]
        assert len(field) == 1, fields
        return authres.AuthenticationResultsHeader.parse_value(field[0].split(":", 1)[1])

    def test_dkimpy_signatures_verified_by_us_and_dmarc(self):
        self.start()
        good = self.sign_remote()
        with smtplib.SMTP("127.0.0.1", self.smtp, timeout=30) as s:
            s.sendmail("joe@remote.test", ["carol@local.test"], good)
        (data, folder), = self.stored()
        self.assertEqual(folder, "INBOX")
        parsed = self.results(data)
        self.assertEqual(parsed.authserv_id, "mx.local.test")
        got = [(r.method, r.result) for r in parsed.results]
        self.assertEqual(got, [("spf", "fail"), ("dkim", "pass"), ("dkim", "pass"), ("dmarc", "pass")], data[:800])
        dkim_props = [{p.type + "." + p.name: p.value for p in r.properties} for r in parsed.results if r.method == "dkim"]
        self.assertEqual(sorted(p["header.s"] for p in dkim_props), ["es", "rs"])
        self.assertEqual({p["header.d"] for p in dkim_props}, {"remote.test"})
        self.assertEqual(sorted(p["header.a"] for p in dkim_props), ["ed25519-sha256", "rsa-sha256"])
        self.assertTrue(all(len(p["header.b"]) == 8 for p in dkim_props))

        # The body changed on the way: both fail, DMARC fails; reported, stored in INBOX.
        bad = good.replace(b"Dinner at eight.", b"Dinner at nine.")
        with smtplib.SMTP("127.0.0.1", self.smtp, timeout=30) as s:
            s.sendmail("joe@remote.test", ["carol@local.test"], bad)
        data, folder = self.stored()[1]
        self.assertEqual(folder, "INBOX")
        got = [(r.method, r.result) for r in self.results(data).results]
        self.assertEqual(got, [("spf", "fail"), ("dkim", "fail"), ("dkim", "fail"), ("dmarc", "fail")])

        # local.test enforces: p=reject refused at the end of DATA, nothing stored.
        admin(self.db, "dmarc", "set", "local.test", "enforce")
        with smtplib.SMTP("127.0.0.1", self.smtp, timeout=30) as s:
            with self.assertRaises(smtplib.SMTPDataError) as e:
                s.sendmail("joe@remote.test", ["carol@local.test"], bad)
            self.assertEqual(e.exception.smtp_code, 550)
            self.assertIn(b"5.7.1", e.exception.smtp_error)
            # Signed mail still comes in.
            s.sendmail("joe@remote.test", ["carol@local.test"], good)
        self.assertEqual(len(self.stored()), 3)

        # p=quarantine: into Junk.
        self.zone["_dmarc.remote.test"] = {"TXT": ["v=DMARC1; p=quarantine"]}
        self.dns.write(self.zone)
        with smtplib.SMTP("127.0.0.1", self.smtp, timeout=30) as s:
            s.sendmail("joe@remote.test", ["carol@local.test"], bad)
        self.assertEqual(self.stored()[-1][1], "Junk")

    def test_admin_dkim_check(self):
        rsa = admin(self.db, "dkim", "generate", "local.test", "--selector", "r1").stdout
        admin(self.db, "dkim", "generate", "local.test", "--algorithm", "ed25519", "--selector", "e1")
        admin(self.db, "dkim", "generate", "local.test", "--algorithm", "ed25519", "--selector", "e2")
        name, text = published(rsa)
        self.zone[name] = {"TXT": [[text[:200], text[200:]]]}  # one record of two strings, joined
        self.zone["e1._domainkey.local.test"] = {"TXT": ["v=DKIM1; k=ed25519; p=" + base64.b64encode(b"x" * 32).decode()]}
        self.dns.write(self.zone)
        r = admin(self.db, "dkim", "check", "local.test", "--resolver", self.dns.address, check=False)
        self.assertEqual(r.returncode, 2, r)
        lines = dict(l.split(": ", 1) for l in r.stdout.splitlines())
        self.assertEqual(lines["r1._domainkey.local.test"], "ok")
        self.assertEqual(lines["e1._domainkey.local.test"], "the published key differs")
        self.assertTrue(lines["e2._domainkey.local.test"].startswith("no TXT record"))
        # Rotation: e1 and e2 retired, only r1 left: all published.
        admin(self.db, "dkim", "delete", "local.test", "e1")
        admin(self.db, "dkim", "delete", "local.test", "e2")
        r = admin(self.db, "dkim", "check", "local.test", "--resolver", self.dns.address, check=False)
        self.assertEqual((r.returncode, r.stdout), (0, "r1._domainkey.local.test: ok\n"))
        # Bad input: one line on stderr, non-zero, no change.
        r = admin(self.db, "dkim", "delete", "local.test", "nope", check=False)
        self.assertEqual(r.returncode, 2)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1)
        r = admin(self.db, "dkim", "generate", "local.test", "--algorithm", "dsa", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(len(self.query("SELECT * FROM dkim_keys")), 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
