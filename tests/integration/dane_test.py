#!/usr/bin/python3
"""DANE (RFC 7672) in cmail-dispatchd against cmail-smtpd as the MX, on loopback.

Usage: dane_test.py BUILD_DIR

The DNS answers come from tests/dns_server.py, which sets the AD bit (RFC 4035 3.2.3) for the
names marked "AD": true when the query asks for it; cmail-dispatchd runs with `dnssec on` and
`resolver` naming it. The MX is the project's cmail-smtpd on 127.0.0.2, presenting a chain
made here with openssl: a leaf for mx1.example.test signed by a test CA, and the CA. TLSA data
are computed from them with openssl (selector 1: the DER SubjectPublicKeyInfo; selector 0: the
DER certificate). Each case: delivered over TLS (the MX stores "esmtps"), or deferred with the
reason in the queue's failure record (faillog) and nothing at the MX.
"""
import hashlib
import json
import os
import re
import signal
import smtplib
import socket
import sqlite3
import subprocess
import sys
import tempfile
import unittest

import harness
from harness import stop_daemon, wait_for

BUILD = sys.argv.pop(1) if len(sys.argv) > 1 else "build"
HERE = os.path.dirname(os.path.abspath(__file__))
SMTPD = os.path.join(BUILD, "frontends", "cmail-smtpd", "cmail-smtpd")
DISPATCHD = os.path.join(BUILD, "frontends", "cmail-dispatchd", "cmail-dispatchd")
ADMIN = os.path.join(BUILD, "frontends", "cmail-admin", "cmail-admin")
DNS_SERVER = os.path.join(HERE, "..", "dns_server.py")


def free_port():
    """A TCP port free on 127.0.0.2 (the MX)."""
    for _ in range(50):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        t = socket.socket()
        try:
            t.bind(("127.0.0.2", port))
            return port
        except OSError:
            continue
        finally:
            t.close()
    raise RuntimeError("no free port")


def query(db, sql, *args):
    c = sqlite3.connect(db, timeout=30)
    try:
        return c.execute(sql, args).fetchall()
    finally:
        c.close()


def admin(db, *args):
    return subprocess.run([ADMIN, "-d", db, *args], check=True, capture_output=True, text=True, timeout=30)


def openssl(*args, data=None):
    return subprocess.run(["openssl", *args], check=True, capture_output=True, input=data, timeout=30).stdout


class Pki:
    """A test CA and a leaf it signed for `name` (subjectAltName), P-256, in `tmp`."""

    def __init__(self, tmp, name="mx1.example.test"):
        self.ca, self.ca_key = os.path.join(tmp, "ca.pem"), os.path.join(tmp, "ca-key.pem")
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                self.ca_key, "-out", self.ca, "-days", "2", "-subj", "/CN=cmail DANE test CA",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
        key, csr = os.path.join(tmp, "leaf-key.pem"), os.path.join(tmp, "leaf.csr")
        self.leaf = os.path.join(tmp, "leaf.pem")
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", csr,
                "-subj", "/CN=" + name)
        ext = os.path.join(tmp, "ext.cnf")
        with open(ext, "w") as f:
            f.write(f"subjectAltName=DNS:{name}\n")
        openssl("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key, "-CAcreateserial", "-out",
                self.leaf, "-days", "2", "-extfile", ext)
        self.key = key
        self.chain = os.path.join(tmp, "chain.pem")  # what the MX presents: the leaf, then the CA
        with open(self.chain, "w") as out, open(self.leaf) as leaf, open(self.ca) as ca:
            out.write(leaf.read() + ca.read())

    @staticmethod
    def tlsa(cert, usage, selector):
        """usage selector 1 <SHA-256 hex> for the certificate in PEM file `cert`."""
        der = openssl("x509", "-in", cert, "-outform", "der")
        if selector == 1:
            der = openssl("pkey", "-pubin", "-outform", "der", data=openssl("x509", "-in", cert, "-pubkey", "-noout"))
        return [usage, selector, 1, hashlib.sha256(der).hexdigest()]


class DaneTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.classdir = tempfile.TemporaryDirectory()
        cls.pki = Pki(cls.classdir.name)

    @classmethod
    def tearDownClass(cls):
        cls.classdir.cleanup()

    def setUp(self):
        self.tmpdir = tempfile.TemporaryDirectory()
        self.tmp = self.tmpdir.name
        self.port = free_port()
        self.tlsa_name = f"_{self.port}._tcp.mx1.example.test"  # RFC 6698 3: the port connected to
        self.zone_path = os.path.join(self.tmp, "zone.json")
        self.dns = None
        self.procs = []

    def tearDown(self):
        try:
            for name, p in reversed(self.procs):
                code, err = stop_daemon(p, timeout=20)
                if os.environ.get("SHOW_LOGS"):
                    print(f"--- {name}\n{err}", file=sys.stderr)
                self.assertEqual(code, 0, f"{name} exited with {code}: {err[-2000:]}")
                self.assertNotIn("Sanitizer", err)
        finally:
            if self.dns:
                self.dns.terminate()
                self.dns.wait(timeout=10)
                self.dns.stdin.close()
                self.dns.stdout.close()
            self.tmpdir.cleanup()

    def zone(self, tlsa, ad=True, mx_host="mx1.example.test"):
        """MX example.test -> mx_host (127.0.0.2) with `tlsa` at its TLSA name; every name signed
        when `ad` (a TLSA value that is a string is a failure mode: "SERVFAIL")."""
        tlsa_name = f"_{self.port}._tcp.{mx_host}"
        z = {
            "example.test": {"MX": [[10, mx_host]], "AD": ad},
            mx_host: {"A": ["127.0.0.2"], "AD": ad},
            tlsa_name: tlsa if isinstance(tlsa, str) else {"TLSA": tlsa, "AD": ad},
        }
        with open(self.zone_path + ".tmp", "w") as f:
            json.dump(z, f)
        os.replace(self.zone_path + ".tmp", self.zone_path)
        if not self.dns:
            self.dns = subprocess.Popen(["/usr/bin/python3", DNS_SERVER, self.zone_path, "--lifetime", "300"],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            line = self.dns.stdout.readline().split()
            assert line and line[0] == "dns", line
            self.dns_address = line[1]

    def start(self, dnssec="on"):
        """The MX (cmail-smtpd with the chain), the local cmail-smtpd and cmail-dispatchd."""
        self.remote_db = os.path.join(self.tmp, "mx.db3")
        admin(self.remote_db, "init")
        admin(self.remote_db, "user", "add", "bob", "x")
        admin(self.remote_db, "address", "add", "bob@example.test", "store", "bob")
        conf = os.path.join(self.tmp, "mx.conf")
        with open(conf, "w") as f:
            f.write(f"database {self.remote_db}\nauth_checks off\n"
                    f"bind 127.0.0.2 {self.port} announce=mx1.example.test cert={self.pki.chain} key={self.pki.key}\n")
        mx = subprocess.Popen([SMTPD, conf, "nodetach"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(("mx", mx))
        self.assertTrue(mx.stdout.readline().startswith("smtp "))

        self.db = os.path.join(self.tmp, "local.db3")
        admin(self.db, "init")
        admin(self.db, "user", "add", "alice", "wonderland")
        admin(self.db, "address", "add", "alice@local.test", "store", "alice")
        admin(self.db, "smtpd", "enable", "alice", "any")
        conf = os.path.join(self.tmp, "smtpd.conf")
        with open(conf, "w") as f:
            f.write(f"database {self.db}\nauth_checks off\nbind 127.0.0.1 0 announce=local.test auth\n")
        smtpd = subprocess.Popen([SMTPD, conf, "nodetach"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(("smtpd", smtpd))
        m = re.match(r"\w+ [\d.]+:(\d+)$", smtpd.stdout.readline().strip())
        self.assertTrue(m, "smtpd did not start")
        self.submission = int(m.group(1))

        conf = os.path.join(self.tmp, "dispatchd.conf")
        with open(conf, "w") as f:
            f.write(f"verbosity 3\ndatabase {self.db}\nannounce dispatch.local.test\nresolver {self.dns_address}\n"
                    f"dnssec {dnssec}\nportprio {self.port}\ninterval 1\nretries 5\nretryinterval 60\ntimeout 5\n")
        d = subprocess.Popen([DISPATCHD, conf, "nodetach"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(("dispatchd", d))
        line = d.stderr.readline()
        self.assertIn("delivering as", line)

    def send(self, subject):
        msg = f"From: alice@local.test\r\nTo: bob@example.test\r\nSubject: {subject}\r\n\r\nHello.\r\n"
        with smtplib.SMTP("127.0.0.1", self.submission, timeout=10) as s:
            s.login("alice", "wonderland")
            s.sendmail("alice@local.test", ["bob@example.test"], msg.encode())

    def delivered(self):
        """Waits for the message at the MX; its protocol there ("esmtps" over TLS)."""
        self.assertTrue(wait_for(lambda: query(self.remote_db, "SELECT count(*) FROM mailbox")[0][0] == 1, 15),
                        query(self.db, "SELECT fail_message FROM faillog"))
        self.assertTrue(wait_for(lambda: query(self.db, "SELECT count(*) FROM outbox")[0][0] == 0, 5))
        return query(self.remote_db, "SELECT mail_proto FROM mailbox")[0][0]

    def deferred(self, reason):
        """Waits for the failure record; the entry stays queued and nothing reached the MX."""
        self.assertTrue(wait_for(lambda: query(self.db, "SELECT count(*) FROM faillog")[0][0] >= 1, 15))
        record, fatal = query(self.db, "SELECT fail_message, fail_fatal FROM faillog")[0]
        self.assertIn(reason, record)
        self.assertEqual(fatal, 0)  # temporary: RFC 7672 2.2, later or another server
        self.assertEqual(query(self.db, "SELECT count(*) FROM outbox")[0][0], 1)
        self.assertEqual(query(self.remote_db, "SELECT count(*) FROM mailbox")[0][0], 0)
        return record

    def test_dane_ee_spki_match_is_delivered_over_tls(self):
        self.zone([Pki.tlsa(self.pki.leaf, 3, 1)])
        self.start()
        self.send("dane-ee")
        self.assertEqual(self.delivered(), "esmtps")

    def test_a_certificate_no_record_matches_is_deferred_with_the_reason(self):
        self.zone([[3, 1, 1, "00" * 32], Pki.tlsa(self.pki.ca, 3, 1)])  # the CA's key is not the leaf's
        self.start()
        self.send("mismatch")
        record = self.deferred("DANE: certificate of mx1.example.test matches no TLSA record")
        self.assertTrue(record.startswith("4.4.1 "), record)
        self.assertIn("[127.0.0.2]", record)

    def test_without_the_ad_bit_or_without_dnssec_on_tlsa_is_ignored(self):
        # The same mismatching records, but the zone is not signed: opportunistic TLS as usual.
        self.zone([[3, 1, 1, "00" * 32]], ad=False)
        self.start()
        self.send("insecure")
        self.assertEqual(self.delivered(), "esmtps")

    def test_an_untrusted_resolvers_ad_bit_means_nothing(self):
        self.zone([[3, 1, 1, "00" * 32]], ad=True)
        self.start(dnssec="off")
        self.send("untrusted")
        self.assertEqual(self.delivered(), "esmtps")

    def test_dane_ta_of_the_ca_with_the_name_is_delivered(self):
        self.zone([Pki.tlsa(self.pki.ca, 2, 0)])
        self.start()
        self.send("dane-ta")
        self.assertEqual(self.delivered(), "esmtps")

    def test_dane_ta_without_the_name_is_deferred(self):
        # mx2.example.test has the address of the MX, whose certificate names mx1 only.
        self.zone([Pki.tlsa(self.pki.ca, 2, 0)], mx_host="mx2.example.test")
        self.start()
        self.send("dane-ta-name")
        self.deferred("DANE: certificate of mx2.example.test matches a DANE-TA record, but it does not carry the "
                      "name mx2.example.test, example.test")

    def test_a_failed_tlsa_lookup_defers_and_unusable_records_still_need_tls(self):
        self.zone("SERVFAIL")
        self.start()
        self.send("servfail")
        record = self.deferred(f"DANE: TLSA lookup for {self.tlsa_name} failed")
        self.assertTrue(record.startswith("4.7.5 "), record)
        # RFC 7672 2.2: secure records, all unusable (PKIX-EE): TLS without authentication.
        self.zone([[1, 1, 1, "00" * 32]])
        admin(self.db, "queue", "flush")
        self.assertEqual(self.delivered(), "esmtps")


if __name__ == "__main__":
    harness.main()
