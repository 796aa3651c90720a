#!/usr/bin/python3
"""MTA-STS (RFC 8461) and REQUIRETLS (RFC 8689) end to end on loopback.

Usage: tls_policy_test.py BUILD_DIR

A test CA made with openssl signs every certificate: the policy host's (mta-sts.example.test),
the MX's (mx1.example.test, or a name it does not match). The policy is served over HTTPS by
Python's http.server with ssl on 127.0.0.1 (an ephemeral port, given to cmail-dispatchd with the
test-only `mta_sts_port`); tests/dns_server.py answers the TXT record _mta-sts.example.test, the
MX and the A records (mta-sts.example.test -> 127.0.0.1, mx1.example.test -> 127.0.0.2);
cmail-smtpd is the MX on 127.0.0.2. Mail is submitted through a local cmail-smtpd and delivered
by cmail-dispatchd, which trusts the test CA (`tls_trustfile`).
"""
import http.server
import json
import os
import re
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
from harness import stop_daemon, wait_for

BUILD = sys.argv.pop(1) if len(sys.argv) > 1 else "build"
HERE = os.path.dirname(os.path.abspath(__file__))
SMTPD = os.path.join(BUILD, "frontends", "cmail-smtpd", "cmail-smtpd")
DISPATCHD = os.path.join(BUILD, "frontends", "cmail-dispatchd", "cmail-dispatchd")
ADMIN = os.path.join(BUILD, "frontends", "cmail-admin", "cmail-admin")
DNS_SERVER = os.path.join(HERE, "..", "dns_server.py")


def query(db, sql, *args):
    c = sqlite3.connect(db, timeout=30)
    try:
        return c.execute(sql, args).fetchall()
    finally:
        c.close()


def admin(db, *args):
    return subprocess.run([ADMIN, "-d", db, *args], check=True, capture_output=True, text=True, timeout=30)


def free_port(host):
    s = socket.socket()
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Ca:
    """A test CA (openssl) and the certificates it signs."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.cert, self.key = os.path.join(tmp, "ca.pem"), os.path.join(tmp, "ca-key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", self.key, "-out", self.cert, "-days", "2", "-subj", "/CN=cmail test CA",
                        "-addext", "basicConstraints=critical,CA:TRUE",
                        "-addext", "keyUsage=critical,keyCertSign,cRLSign"], check=True, capture_output=True)

    def issue(self, name, dns):
        cert, key, csr = (os.path.join(self.tmp, name + s) for s in (".pem", "-key.pem", ".csr"))
        ext = os.path.join(self.tmp, name + ".ext")
        with open(ext, "w") as f:
            f.write(f"subjectAltName=DNS:{dns}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
        subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", key, "-out", csr, "-subj", "/CN=" + dns], check=True, capture_output=True)
        subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key, "-CAcreateserial",
                        "-out", cert, "-days", "2", "-extfile", ext], check=True, capture_output=True)
        return cert, key


class PolicyServer:
    """https://mta-sts.example.test/.well-known/mta-sts.txt on 127.0.0.1, Python's http.server."""

    def __init__(self, cert, key):
        self.body = ""
        self.content_type = "text/plain"
        self.requests = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append((self.path, self.headers.get("Host")))
                body = outer.body.encode()
                self.send_response(200 if self.path == "/.well-known/mta-sts.txt" else 404)
                self.send_header("Content-Type", outer.content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.httpd.handle_error = lambda *a: None  # a client that refused our certificate
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def policy(self, mode, mx, max_age=86400):
        self.body = "version: STSv1\r\nmode: %s\r\n%smax_age: %d\r\n" % (mode, "".join(f"mx: {m}\r\n" for m in mx), max_age)

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Dns:
    def __init__(self, tmp, zone):
        self.path = os.path.join(tmp, "zone.json")
        self.set(zone)
        self.proc = subprocess.Popen(["/usr/bin/python3", DNS_SERVER, self.path, "--lifetime", "300"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().split()
        assert line and line[0] == "dns", line
        self.address = line[1]

    def set(self, zone):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(zone, f)
        os.replace(tmp, self.path)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.proc.stdin.close()
        self.proc.stdout.close()


def client_context(cafile):
    """Trusts the test CA; the submission server is reached by address, so no name check."""
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = False
    return ctx


def start_smtpd(conf):
    p = subprocess.Popen([SMTPD, conf, "nodetach"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline().strip()
    m = re.match(r"\w+ [\d.]+:(\d+)$", line)
    assert m, "smtpd did not start: " + line
    return p, int(m.group(1))


class TlsPolicyTest(unittest.TestCase):
    def setUp(self):
        self.tmpdir = tempfile.TemporaryDirectory()
        self.tmp = self.tmpdir.name
        self.procs = []
        self.ca = Ca(self.tmp)
        sts_cert, sts_key = self.ca.issue("sts", "mta-sts.example.test")
        self.web = PolicyServer(sts_cert, sts_key)
        self.zone = {
            "example.test": {"MX": [[10, "mx1.example.test"]]},
            "mx1.example.test": {"A": ["127.0.0.2"]},
            "_mta-sts.example.test": {"TXT": ["v=STSv1; id=first"]},
            "mta-sts.example.test": {"A": ["127.0.0.1"]},
        }
        self.dns = Dns(self.tmp, self.zone)
        # The sending side: submission (AUTH) into the queue of local.db3.
        self.db = os.path.join(self.tmp, "local.db3")
        admin(self.db, "init")
        admin(self.db, "user", "add", "alice", "wonderland")
        admin(self.db, "address", "add", "alice@local.test", "store", "alice")
        admin(self.db, "smtpd", "enable", "alice", "any")
        self.local_cert, self.local_key = self.ca.issue("local", "local.test")
        conf = os.path.join(self.tmp, "smtpd.conf")
        with open(conf, "w") as f:
            f.write(f"database {self.db}\nauth_checks off\n"
                    f"bind 127.0.0.1 0 announce=local.test auth cert={self.local_cert} key={self.local_key}\n")
        self.smtpd, self.submission = start_smtpd(conf)
        self.procs.append(self.smtpd)
        self.mx_db = os.path.join(self.tmp, "mx.db3")
        admin(self.mx_db, "init")
        admin(self.mx_db, "user", "add", "bob", "x")
        admin(self.mx_db, "address", "add", "bob@example.test", "store", "bob")
        self.mx = None
        self.dispatchd = None

    def tearDown(self):
        try:
            for p in self.procs:
                if p.poll() is None:
                    p.terminate()
                    p.wait(timeout=15)
                for f in (p.stdout, p.stderr):
                    if f:
                        f.close()
        finally:
            self.web.stop()
            self.dns.stop()
            self.tmpdir.cleanup()

    def start_mx(self, cert_name, extra=""):
        """cmail-smtpd as mx1.example.test on 127.0.0.2, with a certificate for `cert_name`."""
        cert, key = self.ca.issue("mx-" + cert_name, cert_name)
        self.mx_port = free_port("127.0.0.2")
        conf = os.path.join(self.tmp, "mx.conf")
        with open(conf, "w") as f:
            f.write(f"database {self.mx_db}\nauth_checks off\n{extra}"
                    f"bind 127.0.0.2 {self.mx_port} announce=mx1.example.test cert={cert} key={key}\n")
        self.mx, _ = start_smtpd(conf)
        self.procs.append(self.mx)

    def start_dispatchd(self, extra=""):
        conf = os.path.join(self.tmp, "dispatchd.conf")
        with open(conf, "w") as f:
            f.write(f"verbosity 3\ndatabase {self.db}\nannounce dispatch.local.test\nresolver {self.dns.address}\n"
                    f"portprio {self.mx_port}\ninterval 1\nretries 50\nretryinterval 1\nmaxretryinterval 1\ntimeout 3\n"
                    f"tls_trustfile {self.ca.cert}\nmta_sts_port {self.web.port}\n{extra}")
        self.dispatchd = subprocess.Popen([DISPATCHD, conf, "nodetach"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True)
        self.procs.append(self.dispatchd)
        line = self.dispatchd.stderr.readline()
        self.assertIn("delivering as", line)

    def stop_dispatchd(self):
        code, log = stop_daemon(self.dispatchd, timeout=20)
        self.procs.remove(self.dispatchd)
        self.assertEqual(code, 0, log[-2000:])
        return log

    def send(self, subject, options=(), starttls=False, headers=""):
        msg = (f"From: alice@local.test\r\nTo: bob@example.test\r\nSubject: {subject}\r\n{headers}"
               f"Message-ID: <{subject}@local.test>\r\n\r\nHello.\r\n")
        with smtplib.SMTP("127.0.0.1", self.submission, timeout=10) as s:
            if starttls:
                s.starttls(context=client_context(self.ca.cert))
                s.ehlo("client.test")
            s.login("alice", "wonderland")
            s.sendmail("alice@local.test", ["bob@example.test"], msg.encode(), mail_options=list(options))

    def delivered(self):
        return [r[0] for r in query(self.mx_db, "SELECT mail_data FROM mailbox WHERE mail_user = 'bob'")]

    def faillog(self):
        return [r[0] for r in query(self.db, "SELECT fail_message FROM faillog ORDER BY rowid")]

    def queued(self):
        return query(self.db, "SELECT count(*) FROM outbox")[0][0]

    # --- MTA-STS ---

    def test_enforce_with_a_matching_certificate_delivers_over_verified_tls(self):
        self.web.policy("enforce", ["mx1.example.test", "*.backup.example.test"])
        self.start_mx("mx1.example.test")
        self.start_dispatchd()
        self.send("enforced")
        self.assertTrue(wait_for(lambda: len(self.delivered()) == 1, 15), self.faillog())
        self.assertTrue(wait_for(lambda: self.queued() == 0, 5))
        self.assertEqual(query(self.mx_db, "SELECT mail_proto FROM mailbox")[0][0], "esmtps")
        self.assertEqual(self.web.requests, [("/.well-known/mta-sts.txt", f"mta-sts.example.test:{self.web.port}")])
        # A second message: the cached policy (same id), no second fetch.
        self.send("enforced-again")
        self.assertTrue(wait_for(lambda: len(self.delivered()) == 2, 15), self.faillog())
        self.assertEqual(len(self.web.requests), 1)
        log = self.stop_dispatchd()
        self.assertIn("MTA-STS: policy of example.test id=first mode=enforce max_age=86400", log)
        # RFC 8461 5.1: the policy outlives a restart (table mta_sts); the same id, no new fetch.
        self.assertEqual(query(self.db, "SELECT sts_domain, sts_id FROM mta_sts"), [("example.test", "first")])
        self.start_dispatchd()
        self.send("after-restart")
        self.assertTrue(wait_for(lambda: len(self.delivered()) == 3, 15), self.faillog())
        self.assertEqual(len(self.web.requests), 1)
        self.stop_dispatchd()

    def test_enforce_defers_when_no_mx_matches_then_a_new_id_brings_a_new_policy(self):
        self.web.policy("enforce", ["mx.elsewhere.test"])
        self.start_mx("mx1.example.test")
        self.start_dispatchd()
        self.send("nomatch")
        self.assertTrue(wait_for(lambda: any("MTA-STS: no MX host of example.test matches the policy" in f
                                             for f in self.faillog()), 15), self.faillog())
        self.assertEqual(self.delivered(), [])
        self.assertEqual(self.queued(), 1)  # deferred, not returned
        self.assertTrue(self.faillog()[0].startswith("4.7.5 "), self.faillog())
        # RFC 8461 5.1: a changed id is a new policy, fetched before the next attempt.
        self.web.policy("enforce", ["mx1.example.test"])
        self.zone["_mta-sts.example.test"] = {"TXT": ["v=STSv1; id=second"]}
        self.dns.set(self.zone)
        self.assertTrue(wait_for(lambda: len(self.delivered()) == 1, 20), self.faillog())
        log = self.stop_dispatchd()
        self.assertIn("id=second mode=enforce", log)

    def test_enforce_defers_when_the_certificate_does_not_match_the_mx(self):
        self.web.policy("enforce", ["mx1.example.test"])
        self.start_mx("mx1.wrong.test")
        self.start_dispatchd()
        self.send("badcert")
        self.assertTrue(wait_for(lambda: any("MTA-STS: certificate not valid for mx1.example.test" in f
                                             for f in self.faillog()), 15), self.faillog())
        self.assertEqual(self.delivered(), [])
        self.assertEqual(self.queued(), 1)
        self.stop_dispatchd()

    def test_testing_mode_delivers_and_logs_what_enforce_would_refuse(self):
        self.web.policy("testing", ["mx.elsewhere.test"])
        self.start_mx("mx1.wrong.test")
        self.start_dispatchd()
        self.send("testing")
        self.assertTrue(wait_for(lambda: len(self.delivered()) == 1, 15), self.faillog())
        log = self.stop_dispatchd()
        self.assertIn("MTA-STS testing: MX host mx1.example.test does not match the policy of example.test", log)
        self.assertIn("MTA-STS testing: the certificate of mx1.example.test is not valid for it (", log)

    def test_a_policy_that_cannot_be_fetched_is_no_policy(self):
        # Served as text/html: not a policy (RFC 8461 3.3); the mail goes as without MTA-STS.
        self.web.policy("enforce", ["mx.elsewhere.test"])
        self.web.content_type = "text/html"
        self.start_mx("mx1.example.test")
        self.start_dispatchd()
        self.send("nopolicy")
        self.assertTrue(wait_for(lambda: len(self.delivered()) == 1, 15), self.faillog())
        log = self.stop_dispatchd()
        self.assertIn("MTA-STS: cannot fetch the policy of example.test: Content-Type is not text/plain", log)

    def test_a_policy_host_without_a_valid_certificate_gives_no_policy(self):
        # RFC 8461 3.3: the policy host's certificate must be valid for mta-sts.<domain>.
        self.web.stop()
        cert, key = self.ca.issue("sts-wrong", "www.example.test")
        self.web = PolicyServer(cert, key)
        self.web.policy("enforce", ["mx.elsewhere.test"])
        self.start_mx("mx1.example.test")
        self.start_dispatchd()
        self.send("badhost")
        self.assertTrue(wait_for(lambda: len(self.delivered()) == 1, 15), self.faillog())
        log = self.stop_dispatchd()
        self.assertRegex(log, r"MTA-STS: cannot fetch the policy of example.test: TLS: .*mta-sts.example.test")
        self.assertEqual(self.web.requests, [])  # the request was never sent

    def test_mta_sts_off(self):
        self.web.policy("enforce", ["mx.elsewhere.test"])
        self.start_mx("mx1.example.test")
        self.start_dispatchd("mta_sts off\n")
        self.send("off")
        self.assertTrue(wait_for(lambda: len(self.delivered()) == 1, 15), self.faillog())
        self.stop_dispatchd()
        self.assertEqual(self.web.requests, [])

    # --- REQUIRETLS ---

    def mailbox(self, user="alice"):
        return [r[0] for r in query(self.db, "SELECT mail_data FROM mailbox WHERE mail_user = ?", user)]

    def stop_mx(self):
        code, log = stop_daemon(self.mx, timeout=20)
        self.procs.remove(self.mx)
        self.assertEqual(code, 0, log[-2000:])
        return log

    def test_requiretls_is_taken_inside_tls_only(self):
        with smtplib.SMTP("127.0.0.1", self.submission, timeout=10) as s:
            s.ehlo("client.test")
            self.assertNotIn("requiretls", s.esmtp_features)
            s.starttls(context=client_context(self.ca.cert))
            s.ehlo("client.test")
            self.assertIn("requiretls", s.esmtp_features)  # RFC 8689 3: offered inside TLS
        with smtplib.SMTP("127.0.0.1", self.submission, timeout=10) as s:
            s.login("alice", "wonderland")
            code, reply = s.docmd("MAIL FROM:<alice@local.test> REQUIRETLS")
            self.assertEqual((code, reply), (530, b"5.7.10 REQUIRETLS needs a TLS connection"))
        # Recorded on the queued message: REQUIRETLS, or the header field TLS-Required: No.
        self.send("tagged", options=["REQUIRETLS"], starttls=True)
        self.send("optional", headers="TLS-Required: No\r\n")
        self.send("plain")
        rows = query(self.db, "SELECT mail_queueid, mail_requiretls FROM outbox ORDER BY mail_id")
        self.assertEqual([r[1] for r in rows], [1, -1, 0])

    def test_tls_required_no_ignores_the_mta_sts_policy(self):
        # RFC 8689 5: the sender asks that recipient TLS policies be ignored for this message.
        self.web.policy("enforce", ["mx.elsewhere.test"])
        self.start_mx("mx1.wrong.test")
        self.start_dispatchd()
        self.send("held")
        self.send("optional", headers="TLS-Required: No\r\n")
        self.assertTrue(wait_for(lambda: len(self.delivered()) == 1, 15), self.faillog())
        self.assertIn("Subject: optional", self.delivered()[0])
        self.assertTrue(wait_for(lambda: any("MTA-STS: no MX host" in f for f in self.faillog()), 10), self.faillog())
        # The delivered one leaves the queue once the dispatcher settled it (after the MX stored
        # it); the other one waits for a policy that allows it.
        self.assertTrue(wait_for(lambda: self.queued() == 1, 10), self.queued())
        self.stop_dispatchd()
        self.assertEqual(self.queued(), 1)

    def test_requiretls_goes_over_verified_tls_to_an_mta_sts_enforced_mx(self):
        self.web.policy("enforce", ["mx1.example.test"])
        self.start_mx("mx1.example.test", extra="verbosity 3\n")
        self.send("secret", options=["REQUIRETLS"], starttls=True)
        self.start_dispatchd()
        self.assertTrue(wait_for(lambda: len(self.delivered()) == 1, 15), self.faillog())
        self.assertEqual(query(self.mx_db, "SELECT mail_proto FROM mailbox")[0][0], "esmtps")
        self.stop_dispatchd()
        mx_log = self.stop_mx()
        self.assertRegex(mx_log, r"requiretls=yes")  # sent with MAIL FROM ... REQUIRETLS (RFC 8689 4.2.1)

    def test_requiretls_without_a_secured_mx_is_returned_not_downgraded(self):
        del self.zone["_mta-sts.example.test"]  # no MTA-STS: the MX answer is not secured
        self.dns.set(self.zone)
        self.start_mx("mx1.example.test")
        self.send("unsecured", options=["REQUIRETLS"], starttls=True)
        self.start_dispatchd("tls_verify always\n")  # even with a verified certificate
        self.assertTrue(wait_for(lambda: len(self.mailbox()) == 1, 15), self.faillog())
        self.assertEqual(self.delivered(), [])
        # The bounce (RFC 8689 4.2.1: a non-delivery notification), replacing the entry and its faillog.
        bounce = self.mailbox()[0]
        self.assertIn("Status: 5.7.10", bounce)
        self.assertIn("REQUIRETLS: the MX host mx1.example.test is not secured by an MTA-STS policy in enforce mode",
                      bounce.replace("\r\n ", " "))
        log = self.stop_dispatchd()
        self.assertIn("result=failed", log)


if __name__ == "__main__":
    harness.main()
