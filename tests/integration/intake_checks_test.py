#!/usr/bin/python3
"""The sender checks of intake in the daemons: SPF (RFC 7208) and Authentication-Results
(RFC 8601) from cmail-smtpd and `cmail serve`, against tests/dns_server.py on loopback.

Usage: intake_checks_test.py BUILD_DIR

Each case starts the DNS server (with a query log) and the real daemons on ephemeral ports,
sends with smtplib, reads the stored copies back (POP3 through cmail-popd, or the database),
and stops everything, checking for clean exits. Every wait is bounded; the DNS server answers
at once, so no case waits on a time-out.
"""
import json
import os
import poplib
import smtplib
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import unittest

import authres

import harness
from harness import make_cert, read_ports, start_daemon, stop_daemon, wait_for

BUILD = sys.argv.pop(1) if len(sys.argv) > 1 else "build"
SMTPD = os.path.join(BUILD, "frontends", "cmail-smtpd", "cmail-smtpd")
POPD = os.path.join(BUILD, "frontends", "cmail-popd", "cmail-popd")
DISPATCHD = os.path.join(BUILD, "frontends", "cmail-dispatchd", "cmail-dispatchd")
CMAIL = os.path.join(BUILD, "frontends", "cmail", "cmail")
ADMIN = os.path.join(BUILD, "frontends", "cmail-admin", "cmail-admin")
DNS_SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "dns_server.py")

TLS = ssl.create_default_context()
TLS.check_hostname = False
TLS.verify_mode = ssl.CERT_NONE

# pass.test lets 127.0.0.1 send (RFC 7208 5.6 ip4, 2.6.3 pass); fail.test lets nobody (-all:
# fail, 2.6.4). far.test is a remote domain for outbound delivery, its MX on 127.0.0.2.
ZONE = {
    "pass.test": {"TXT": ["v=spf1 ip4:127.0.0.1 -all"]},
    "fail.test": {"TXT": ["v=spf1 -all"]},
    "far.test": {"MX": [[10, "mx.far.test"]]},
    "mx.far.test": {"A": ["127.0.0.2"]},
}


def admin(db, *args):
    subprocess.run([ADMIN, "-d", db, *args], check=True, capture_output=True, timeout=30)


class Dns:
    """tests/dns_server.py on ZONE, logging every query it gets."""

    def __init__(self, tmp):
        zone = os.path.join(tmp, "zone.json")
        with open(zone, "w") as f:
            json.dump(ZONE, f)
        self.log = os.path.join(tmp, "queries.log")
        open(self.log, "w").close()
        self.proc = subprocess.Popen(["/usr/bin/python3", DNS_SERVER, zone, "--lifetime", "300", "--query-log", self.log],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().split()
        assert line and line[0] == "dns", line
        self.address = line[1]

    def queries(self):
        with open(self.log) as f:
            return f.read().splitlines()

    def stop(self):
        stop_daemon(self.proc)


def results(message):
    """The Authentication-Results fields at the top of a stored message (bytes), unfolded."""
    head = message.split(b"\r\n\r\n", 1)[0].decode()
    fields = []
    for line in head.split("\r\n"):
        if line[:1] in (" ", "\t") and fields:
            fields[-1] += line
        else:
            fields.append(line)
    return [f for f in fields if f.lower().startswith("authentication-results:")]


class SmtpdChecksTest(unittest.TestCase):
    """cmail-smtpd with `resolver` at the loopback DNS server, cmail-popd to read the mail back."""

    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="cmail-intake-checks-")
        self.addCleanup(tmp.cleanup)
        self.tmp = tmp.name
        self.db = os.path.join(self.tmp, "master.db3")
        admin(self.db, "init")
        admin(self.db, "user", "add", "carol", "pw")
        admin(self.db, "address", "add", "carol@local.test", "store", "carol")
        admin(self.db, "smtpd", "enable", "carol", "any")
        admin(self.db, "popd", "enable", "carol")
        self.dns = Dns(self.tmp)
        self.addCleanup(self.dns.stop)

    def start(self, checks):
        """cmail-smtpd (smtp, and submission with AUTH) and cmail-popd; `checks` goes into the smtpd config."""
        conf = os.path.join(self.tmp, "smtpd.conf")
        with open(conf, "w") as f:
            f.write(f"database {self.db}\n{checks}\nbind 127.0.0.1 0 announce=mx.local.test\n"
                    f"bind 127.0.0.1 0 announce=mx.local.test auth=strict\n")
        smtpd, ports = start_daemon(SMTPD, conf, 2)
        self.addCleanup(lambda: self.assertEqual(stop_daemon(smtpd)[0], 0))
        self.smtp, self.submission = ports["smtp"][0], ports["submission"][0]
        pconf = os.path.join(self.tmp, "popd.conf")
        with open(pconf, "w") as f:
            f.write(f"database {self.db}\nbind 127.0.0.1 0\n")
        popd, ports = start_daemon(POPD, pconf, 1)
        self.addCleanup(lambda: self.assertEqual(stop_daemon(popd)[0], 0))
        self.pop3 = ports["pop3"][0]

    def mailbox(self):
        """carol's messages over POP3, in order."""
        p = poplib.POP3("127.0.0.1", self.pop3, timeout=30)
        try:
            p.user("carol")
            p.pass_("pw")
            return [b"\r\n".join(p.retr(i + 1)[1]) for i in range(p.stat()[0])]
        finally:
            p.quit()

    def test_spf_pass_and_fail_in_authentication_results(self):
        self.start(f"resolver {self.dns.address}")
        with smtplib.SMTP("127.0.0.1", self.smtp, timeout=30) as s:
            s.ehlo("client.test")
            s.sendmail("alice@pass.test", ["carol@local.test"], "Subject: one\r\n\r\nfrom pass.test\r\n")
            # A result under our own name that came with the message is forged (RFC 8601 5): dropped.
            s.sendmail("bob@fail.test", ["carol@local.test"],
                       "Authentication-Results: mx.local.test; spf=pass smtp.mailfrom=bob@fail.test\r\n"
                       "Subject: two\r\n\r\nfrom fail.test\r\n")
        # Authenticated submission is not checked.
        with smtplib.SMTP("127.0.0.1", self.submission, timeout=30) as s:
            s.login("carol", "pw")
            s.sendmail("carol@local.test", ["carol@local.test"], "Subject: three\r\n\r\nsubmitted\r\n")
        one, two, three = self.mailbox()
        self.assertTrue(one.startswith(b"Authentication-Results: mx.local.test;\r\n"
                                       b"\tspf=pass smtp.mailfrom=alice@pass.test;\r\n\tdkim=none\r\nReceived: "), one)
        self.assertEqual(results(two), ["Authentication-Results: mx.local.test;\tspf=fail smtp.mailfrom=bob@fail.test;\tdkim=none"])
        self.assertEqual(results(three), [])
        # An independent parser (python3-authres) reads what we wrote.
        for message, result, sender in ((one, "pass", "alice@pass.test"), (two, "fail", "bob@fail.test")):
            field = results(message)[0].split(":", 1)[1]
            parsed = authres.AuthenticationResultsHeader.parse_value(field)
            self.assertEqual(parsed.authserv_id, "mx.local.test")
            self.assertEqual([(r.method, r.result) for r in parsed.results], [("spf", result), ("dkim", "none")])
            self.assertEqual([(p.type, p.name, p.value) for p in parsed.results[0].properties],
                             [("smtp", "mailfrom", sender)])
        queries = self.dns.queries()
        self.assertIn("TXT pass.test", queries)
        self.assertIn("TXT fail.test", queries)
        self.assertFalse([q for q in queries if "local.test" in q], queries)  # nothing for the submission

    def test_checks_off_no_header_and_no_query(self):
        self.start(f"resolver {self.dns.address}\nauth_checks off")
        with smtplib.SMTP("127.0.0.1", self.smtp, timeout=30) as s:
            s.sendmail("alice@pass.test", ["carol@local.test"], "Subject: one\r\n\r\nunchecked\r\n")
        (one,) = self.mailbox()
        self.assertTrue(one.startswith(b"Received: from "), one)
        self.assertEqual(results(one), [])
        # With checks the end of data waits for the answer, so a query would be logged by now.
        self.assertEqual(self.dns.queries(), [])


class ConfigTest(unittest.TestCase):
    def check_refused(self, args, expected):
        r = subprocess.run(args, capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1, r)
        self.assertIn(expected, r.stderr)

    def test_bad_resolver_and_switch_name_file_and_line(self):
        with tempfile.TemporaryDirectory() as tmp:
            conf = os.path.join(tmp, "smtpd.conf")
            for text, line, message in (
                    ("resolver 127.0.0.1:53\nresolver 127.0.0.1:99999\n", 3,
                     "resolver '127.0.0.1:99999' is not a name server"),
                    ("resolver dns.example.test\n", 2, "resolver 'dns.example.test' is not a name server"),
                    ("resolver\n", 2, "'resolver' needs an argument"),
                    ("auth_checks maybe\n", 2, "auth_checks must be on or off"),
                    ("auth_checks off\nauth_checks on\n", 3, "a second 'auth_checks' directive")):
                with open(conf, "w") as f:
                    f.write("database /nonexistent\n" + text + "bind 127.0.0.1 0\n")
                self.check_refused([SMTPD, conf, "nodetach"], f"cmail-smtpd: {conf}:{line}: {message}")
                self.check_refused([CMAIL, "serve", "--config", conf], f"cmail: {conf}:{line}: {message}")
            # cmail-dispatchd's `resolver` lines name theirs the same way.
            with open(conf, "w") as f:
                f.write("database /nonexistent\nresolver 127.0.0.1:53\nresolver [::1\n")
            self.check_refused([DISPATCHD, conf, "nodetach"], f"cmail-dispatchd: {conf}:3: resolver '[::1' is not a name server")
            self.check_refused([CMAIL, "serve", "--dispatchd-config", conf, "--data", os.path.join(tmp, "d")],
                               f"cmail: {conf}:3: resolver '[::1' is not a name server")
            self.check_refused([CMAIL, "serve", "--data", os.path.join(tmp, "d"), "--resolver", "nowhere"],
                               "cmail: resolver: malformed name server 'nowhere'")


class ServeTest(unittest.TestCase):
    """`cmail serve --resolver`: one resolver for intake's checks and outbound delivery."""

    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="cmail-intake-serve-")
        self.addCleanup(tmp.cleanup)
        self.tmp = tmp.name
        self.dns = Dns(self.tmp)
        self.addCleanup(self.dns.stop)

    def serve(self, *extra):
        args = [CMAIL, "serve", "--data", os.path.join(self.tmp, "data"), "--hostname", "mx.local.test",
                "--resolver", self.dns.address, *extra]
        for kind in ("smtp", "submission", "smtps", "pop3", "pop3s", "imap", "imaps"):
            args += [f"--{kind}-port", "0"]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: self.assertEqual(stop_daemon(proc)[0], 0))
        ports = read_ports(proc, 7)
        self.assertEqual(len(ports), 7, ports)
        self.db = os.path.join(self.tmp, "data", "master.db3")
        for args in (["user", "add", "carol", "pw"], ["address", "add", "carol@local.test", "store", "carol"],
                     ["smtpd", "enable", "carol", "any"]):
            admin(self.db, *args)
        return ports

    def stored(self, db, user):
        c = sqlite3.connect(db)
        try:
            return [r[0].encode() if isinstance(r[0], str) else bytes(r[0]) for r in c.execute("SELECT mail_data FROM mailbox WHERE mail_user = ? ORDER BY mail_id",
                                                   (user,))]
        finally:
            c.close()

    def test_one_resolver_for_intake_and_delivery(self):
        # The MX of far.test: a cmail-smtpd on 127.0.0.2, without checks of its own.
        far_db = os.path.join(self.tmp, "far.db3")
        admin(far_db, "init")
        admin(far_db, "user", "add", "zoe", "x")
        admin(far_db, "address", "add", "zoe@far.test", "store", "zoe")
        far_conf = os.path.join(self.tmp, "far.conf")
        with open(far_conf, "w") as f:
            f.write(f"database {far_db}\nauth_checks off\nbind 127.0.0.2 0 announce=mx.far.test\n")
        far, far_ports = start_daemon(SMTPD, far_conf, 1)
        self.addCleanup(lambda: self.assertEqual(stop_daemon(far)[0], 0))
        dconf = os.path.join(self.tmp, "dispatch.conf")
        with open(dconf, "w") as f:
            f.write(f"portprio {far_ports['smtp'][0]}\n")
        ports = self.serve("--dispatchd-config", dconf)
        with smtplib.SMTP("127.0.0.1", ports["smtp"][0], timeout=30) as s:
            s.sendmail("alice@pass.test", ["carol@local.test"], "Subject: in\r\n\r\ninbound\r\n")
        with smtplib.SMTP("127.0.0.1", ports["submission"][0], timeout=30) as s:
            s.starttls(context=TLS)
            s.login("carol", "pw")
            s.sendmail("carol@local.test", ["zoe@far.test"], "Subject: out\r\n\r\noutbound\r\n")
        (inbound,) = self.stored(self.db, "carol")
        self.assertEqual(results(inbound), ["Authentication-Results: mx.local.test;\tspf=pass smtp.mailfrom=alice@pass.test;\tdkim=none"])
        self.assertTrue(wait_for(lambda: self.stored(far_db, "zoe"), 30), "not delivered to far.test")
        (outbound,) = self.stored(far_db, "zoe")
        self.assertIn(b"outbound", outbound)
        queries = self.dns.queries()
        self.assertIn("TXT pass.test", queries)  # intake
        self.assertIn("MX far.test", queries)    # delivery

    def test_no_auth_checks(self):
        ports = self.serve("--no-auth-checks")
        with smtplib.SMTP("127.0.0.1", ports["smtp"][0], timeout=30) as s:
            s.sendmail("alice@pass.test", ["carol@local.test"], "Subject: in\r\n\r\nunchecked\r\n")
        (inbound,) = self.stored(self.db, "carol")
        self.assertEqual(results(inbound), [])
        self.assertEqual(self.dns.queries(), [])


if __name__ == "__main__":
    harness.main()
