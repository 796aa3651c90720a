#!/usr/bin/python3
"""cmail-dispatchd (and `cmail serve`'s dispatcher) against real peers on loopback.

Usage: dispatchd_test.py BUILD_DIR

Mail is submitted through the real cmail-smtpd (AUTH, the `any` outbound router) and queued in
its master database; cmail-dispatchd delivers it. DNS answers come from tests/dns_server.py on a
loopback port, named with the `resolver` directive. The receiving side is either the project's
own cmail-smtpd (as the MX, with its own database) or an aiosmtpd sink in this process that can
be told to answer 4xx/5xx at any step, drop the connection or stall. MX hosts are told apart by
their loopback addresses (127.0.0.2, 127.0.0.3, ::1) on one port, the `portprio` port.
After each case the databases are checked: entries gone, retries in faillog, bounces parsed as
RFC 3464 reports.
"""
import asyncio
import email
import email.policy
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
import threading
import unittest

from aiosmtpd.controller import Controller

import harness
from harness import make_cert, stop_daemon, wait_for

BUILD = sys.argv.pop(1) if len(sys.argv) > 1 else "build"
HERE = os.path.dirname(os.path.abspath(__file__))
SMTPD = os.path.join(BUILD, "frontends", "cmail-smtpd", "cmail-smtpd")
DISPATCHD = os.path.join(BUILD, "frontends", "cmail-dispatchd", "cmail-dispatchd")
CMAIL = os.path.join(BUILD, "frontends", "cmail", "cmail")
ADMIN = os.path.join(BUILD, "frontends", "cmail-admin", "cmail-admin")
DNS_SERVER = os.path.join(HERE, "..", "dns_server.py")


def free_port():
    """A TCP port free on 127.0.0.2, 127.0.0.3 and ::1 (the MX hosts share one port)."""
    for _ in range(50):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        ok = True
        for fam, host in ((socket.AF_INET, "127.0.0.2"), (socket.AF_INET, "127.0.0.3"), (socket.AF_INET6, "::1")):
            t = socket.socket(fam)
            try:
                t.bind((host, port))
            except OSError:
                ok = False
            finally:
                t.close()
        if ok:
            return port
    raise RuntimeError("no free port")




def query(db, sql, *args):
    c = sqlite3.connect(db, timeout=30)
    try:
        rows = c.execute(sql, args).fetchall()
        c.commit()
        return rows
    finally:
        c.close()


def admin(db, *args, check=True):
    return subprocess.run([ADMIN, "-d", db, *args], check=check, capture_output=True, text=True, timeout=30)


class Dns:
    """tests/dns_server.py with a zone that the test may change."""

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


class Sink:
    """An aiosmtpd server that records what it accepts and misbehaves on request.

    `rules` maps a step ("mail", "rcpt:<address>", "data") to a reply line, "drop" (close the
    connection without a reply) or ("stall", seconds) (wait, then accept)."""

    def __init__(self, host, port, **smtp_kwargs):
        self.messages = []
        self.rules = {}
        self.reached = []      # every step a client got to, in order ("mail", "rcpt:<address>", ...)
        self.sessions = 0
        self.in_data = 0       # transactions in DATA right now
        self.max_in_data = 0   # the most at once
        self.lock = threading.Lock()
        sink = self

        class Handler:
            async def handle_EHLO(self, server, session, envelope, hostname, responses):
                with sink.lock:
                    sink.sessions += 1
                session.host_name = hostname
                r = await sink.rule("ehlo", server)
                return [r] if r else responses

            async def handle_HELO(self, server, session, envelope, hostname):
                session.host_name = hostname
                r = await sink.rule("helo", server)
                return r or "250 sink"

            async def handle_MAIL(self, server, session, envelope, address, options):
                r = await sink.rule("mail", server)
                if r:
                    return r
                envelope.mail_from = address
                envelope.mail_options.extend(options)
                return "250 2.1.0 OK"

            async def handle_RCPT(self, server, session, envelope, address, options):
                r = await sink.rule("rcpt:" + address, server)
                if r:
                    return r
                envelope.rcpt_tos.append(address)
                envelope.rcpt_options.extend(options)
                return "250 2.1.5 OK"

            async def handle_DATA(self, server, session, envelope):
                with sink.lock:
                    sink.in_data += 1
                    sink.max_in_data = max(sink.max_in_data, sink.in_data)
                try:
                    r = await sink.rule("data", server)
                finally:
                    with sink.lock:
                        sink.in_data -= 1
                if r:
                    return r
                with sink.lock:
                    sink.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                                          "data": envelope.original_content, "options": list(envelope.mail_options),
                                          "helo": session.host_name, "peer": session.peer[0]})
                return "250 2.0.0 queued"

        self.controller = Controller(Handler(), hostname=host, port=port, **smtp_kwargs)
        self.controller.start()

    async def rule(self, step, server):
        with self.lock:
            self.reached.append(step)
        r = self.rules.get(step)
        if r is None:
            return None
        if r == "drop":
            server.transport.close()
            return "421 gone"  # never reaches the client
        if isinstance(r, tuple) and r[0] == "stall":
            await asyncio.sleep(r[1])
            return None
        return r

    def stop(self):
        self.controller.stop()

    def count(self):
        with self.lock:
            return len(self.messages)

    def has_reached(self, step):
        with self.lock:
            return step in self.reached


class Env:
    """A local cmail-smtpd (submission with AUTH, queues outbound mail) and cmail-dispatchd."""

    def __init__(self, tmp, port, dns, extra_conf=""):
        self.tmp = tmp
        self.port = port
        self.dns = dns
        self.db = os.path.join(tmp, "local.db3")
        admin(self.db, "init")
        admin(self.db, "user", "add", "alice", "wonderland")
        admin(self.db, "address", "add", "alice@local.test", "store", "alice")
        admin(self.db, "smtpd", "enable", "alice", "any")
        conf = os.path.join(tmp, "smtpd.conf")
        with open(conf, "w") as f:
            f.write(f"database {self.db}\nauth_checks off\nbind 127.0.0.1 0 announce=local.test auth\n")
        self.smtpd = subprocess.Popen([SMTPD, conf, "nodetach"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True)
        m = re.match(r"\w+ [\d.]+:(\d+)$", self.smtpd.stdout.readline().strip())
        assert m, "smtpd did not start"
        self.submission = int(m.group(1))
        self.conf = os.path.join(tmp, "dispatchd.conf")
        with open(self.conf, "w") as f:
            f.write(f"""# test configuration
verbosity 3
database {self.db}
announce dispatch.local.test
resolver {dns.address}
portprio {port}
interval 1
retries 3
retryinterval 1
maxretryinterval 1
timeout 3
bounce_from postmaster@local.test
{extra_conf}
""")
        self.dispatchd = None

    def start_dispatchd(self, *mode):
        self.dispatchd = subprocess.Popen([DISPATCHD, self.conf, "nodetach", *mode], stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True)
        if not mode:  # the daemon says who it is once its signal handlers are in place
            line = self.dispatchd.stderr.readline()
            assert "delivering as" in line, line
        return self.dispatchd

    def send(self, to, subject="test", sender="alice@local.test", body="Hello.\r\n", options=(), rcpt_options=()):
        msg = f"From: {sender}\r\nTo: {', '.join(to)}\r\nSubject: {subject}\r\nMessage-ID: <{subject}@local.test>\r\n\r\n{body}"
        with smtplib.SMTP("127.0.0.1", self.submission, timeout=10) as s:
            s.login("alice", "wonderland")
            s.sendmail(sender, to, msg.encode(), mail_options=list(options), rcpt_options=list(rcpt_options))

    def queue(self):
        return query(self.db, "SELECT mail_id, mail_envelopeto FROM outbox ORDER BY mail_id")

    def faillog(self):
        return query(self.db, "SELECT fail_mail, fail_message, fail_fatal FROM faillog ORDER BY rowid")

    def mailbox(self, user="alice"):
        return [r[0] for r in query(self.db, "SELECT mail_data FROM mailbox WHERE mail_user = ? ORDER BY mail_id", user)]

    def stop(self):
        out, codes = {}, {}
        for name, p in (("dispatchd", self.dispatchd), ("smtpd", self.smtpd)):
            if p is not None:
                if p.poll() is None:
                    p.send_signal(signal.SIGCONT)  # in case a case stopped it and then failed
                codes[name], out[name] = stop_daemon(p, timeout=20)
        self.dispatchd = self.smtpd = None
        # Every daemon is gone by now; then: a clean stop, exit 0 after SIGTERM, nothing from the
        # sanitizers.
        for name, code in codes.items():
            assert code == 0, f"{name} exited with {code}: {out[name][-2000:]}"
            assert "Sanitizer" not in out[name] and "runtime error" not in out[name], out[name][-4000:]
        return out


def parse_bounce(data):
    """The parts of an RFC 3464 report: (message, per-message fields, [per-recipient fields], returned part)."""
    if isinstance(data, str):
        data = data.encode()
    m = email.message_from_bytes(data, policy=email.policy.default)
    assert m.get_content_type() == "multipart/report", m.get_content_type()
    assert m.get_param("report-type") == "delivery-status"
    parts = list(m.iter_parts())
    assert parts[0].get_content_type() == "text/plain"
    kind = parts[1].get_content_type()
    if kind == "message/delivery-status":
        blocks = [dict(b.items()) for b in parts[1].get_payload()]
    else:  # RFC 6533 message/global-delivery-status (UTF-8 addresses): the same fields, as text
        assert kind == "message/global-delivery-status", kind
        payload = parts[1].get_payload()
        if isinstance(payload, list):  # parsed as a message container
            blocks = [dict(b.items()) for b in payload]
            if len(blocks) == 1:  # the blocks after the first stayed in its body
                body = payload[0].get_payload()
                blocks += [dict(line.split(": ", 1) for line in b.splitlines())
                           for b in re.split(r"\r?\n\r?\n", body.strip()) if b]
        else:
            blocks = [dict(line.split(": ", 1) for line in b.splitlines())
                      for b in re.split(r"\r?\n\r?\n", payload.strip())]
    return m, blocks[0], blocks[1:], parts[2]


class DispatchTest(unittest.TestCase):
    def setUp(self):
        self.tmpdir = tempfile.TemporaryDirectory()
        self.tmp = self.tmpdir.name
        self.port = free_port()
        self.sinks = []
        self.dns = Dns(self.tmp, {
            "example.test": {"MX": [[10, "mx1.example.test"]]},
            "mx1.example.test": {"A": ["127.0.0.2"]},
        })
        self.env = None

    def tearDown(self):
        try:  # the daemons' clean stop is checked, but nothing is left running either way
            logs = self.env.stop() if self.env else {}
            if os.environ.get("SHOW_LOGS"):
                print(logs.get("dispatchd", ""), file=sys.stderr)
        finally:
            for s in self.sinks:
                s.stop()
            self.dns.stop()
            self.tmpdir.cleanup()

    def sink(self, host, **kw):
        s = Sink(host, self.port, **kw)
        self.sinks.append(s)
        return s

    def start(self, extra_conf="", mode=()):
        self.env = Env(self.tmp, self.port, self.dns, extra_conf)
        if not mode:
            self.env.start_dispatchd()
        return self.env

    def stop(self):
        """Stops the daemons (checking for a clean exit), so that nothing they do is still to
        come: what a case asserts did not happen has not happened by then. Returns their logs."""
        logs = self.env.stop()
        self.env = None
        return logs

    def test_mx_delivery_noticed_at_once(self):
        sink = self.sink("127.0.0.2")
        # No polling help: after its first scan the dispatcher looks again in 60 s, so mail
        # delivered within the 5 s bounds below was noticed through the notify file.
        env = self.start("interval 60")
        env.send(["bob@example.test", "carol@Example.TEST"], subject="first")
        self.assertTrue(wait_for(lambda: sink.count() == 1, 5), env.queue())
        m = sink.messages[0]
        self.assertEqual(m["from"], "alice@local.test")
        self.assertEqual(sorted(m["to"]), ["bob@example.test", "carol@Example.TEST"])  # one transaction
        self.assertEqual(m["helo"], "dispatch.local.test")
        self.assertIn(b"Subject: first", m["data"])
        self.assertTrue(wait_for(lambda: env.queue() == [], 5))
        self.assertEqual(env.faillog(), [])
        # Idle now (its first scan may have found "first" without help): a commit wakes it.
        env.send(["bob@example.test"], subject="idle")
        self.assertTrue(wait_for(lambda: sink.count() == 2, 5))
        # The notify file removed under it: the next commit makes a new one, still noticed.
        notify = env.db + "-notify-queue"
        env.dispatchd.send_signal(signal.SIGSTOP)  # so that the commit, not the dispatcher, makes it
        os.remove(notify)
        env.send(["bob@example.test"], subject="second")
        self.assertTrue(wait_for(lambda: os.path.exists(notify), 5))
        env.dispatchd.send_signal(signal.SIGCONT)
        self.assertTrue(wait_for(lambda: sink.count() == 3, 5))
        # Removed while it runs: it watches a new one (it makes it), and the next commit is noticed.
        self.assertTrue(wait_for(lambda: env.queue() == [], 5))
        os.remove(notify)
        self.assertTrue(wait_for(lambda: os.path.exists(notify), 5))
        env.send(["bob@example.test"], subject="third")
        self.assertTrue(wait_for(lambda: sink.count() == 4, 5))

    def test_quoted_local_parts_are_queued_and_relayed_as_received(self):
        # "user@remote.example"@example.test is one mailbox at example.test; without its quotes
        # it would be user@remote.example@example.test, which the next hop may route to
        # remote.example (RFC 5321 4.1.2).
        sink = self.sink("127.0.0.2")
        env = self.start("interval 60")
        env.dispatchd.send_signal(signal.SIGSTOP)  # to see the queue before delivery
        try:
            env.send(['"user@remote.example"@example.test', '"john doe"@example.test'], subject="quoted")
            self.assertEqual(sorted(r[1] for r in env.queue()), ['"john doe"@example.test', '"user@remote.example"@example.test'])
        finally:
            env.dispatchd.send_signal(signal.SIGCONT)
        self.assertTrue(wait_for(lambda: sink.count() == 1, 5), env.queue())
        self.assertEqual(sorted(sink.messages[0]["to"]), ['"john doe"@example.test', '"user@remote.example"@example.test'])
        self.assertTrue(wait_for(lambda: env.queue() == [], 5))

    def test_mx_preference_implicit_mx_and_ipv6(self):
        # mx1 (preference 10) refuses connections; mx2 (20) takes the mail.
        self.dns.set({
            "example.test": {"MX": [[20, "mx2.example.test"], [10, "mx1.example.test"]]},
            "mx1.example.test": {"A": ["127.0.0.3"]},
            "mx2.example.test": {"A": ["127.0.0.2"]},
            "plain.test": {"A": ["127.0.0.2"]},          # no MX: the implicit MX (RFC 5321 5.1)
            "six.test": {"MX": [[5, "v6.six.test"]]},
            "v6.six.test": {"AAAA": ["::1"]},
        })
        sink = self.sink("127.0.0.2")
        sink6 = self.sink("::1")
        env = self.start()
        env.send(["bob@example.test"], subject="pref")
        env.send(["dave@plain.test"], subject="implicit")
        env.send(["erin@six.test"], subject="six")
        self.assertTrue(wait_for(lambda: sink.count() == 2 and sink6.count() == 1, 10), (env.queue(), env.faillog()))
        self.assertEqual(sorted(m["to"][0] for m in sink.messages), ["bob@example.test", "dave@plain.test"])
        self.assertEqual(sink6.messages[0]["peer"], "::1")
        self.assertTrue(wait_for(lambda: env.queue() == [], 5))
        self.assertEqual(env.faillog(), [])  # a refused MX is not a failure of the message

    def test_null_mx_and_nxdomain_bounce_at_once_to_the_local_sender(self):
        self.dns.set({"nullmx.test": {"MX": [[0, "."]]}})
        env = self.start()
        env.send(["bob@nullmx.test"], subject="nullmx")
        env.send(["bob@nowhere.test"], subject="nxdomain")
        self.assertTrue(wait_for(lambda: len(env.mailbox()) == 2, 10), (env.queue(), env.faillog()))
        self.assertTrue(wait_for(lambda: env.queue() == [], 5))
        statuses = {}
        for data in env.mailbox():
            m, per_msg, rcpts, returned = parse_bounce(data)
            self.assertEqual(m["To"].addresses[0].addr_spec, "alice@local.test")
            self.assertEqual(m["From"].addresses[0].addr_spec, "postmaster@local.test")
            self.assertEqual(m["Auto-Submitted"], "auto-replied")
            self.assertEqual(per_msg["Reporting-MTA"], "dns; dispatch.local.test")
            self.assertEqual(len(rcpts), 1)
            self.assertEqual(rcpts[0]["Action"], "failed")
            self.assertEqual(returned.get_content_type(), "text/rfc822-headers")
            subject = re.search(r"Subject: (\w+)", returned.get_content()).group(1)
            statuses[subject] = (rcpts[0]["Final-Recipient"], rcpts[0]["Status"])
        self.assertEqual(statuses["nullmx"], ("rfc822; bob@nullmx.test", "5.1.10"))
        self.assertEqual(statuses["nxdomain"], ("rfc822; bob@nowhere.test", "5.1.2"))
        # Stored locally with the null sender, not sent through DNS.
        self.assertEqual(query(env.db, "SELECT DISTINCT mail_envelopefrom FROM mailbox"), [("",)])

    def test_a_server_that_refuses_the_greeting_is_a_temporary_failure(self):
        sink = self.sink("127.0.0.2")
        sink.rules["ehlo"] = "554 5.7.1 not you"
        sink.rules["helo"] = "554 5.7.1 not you either"
        env = self.start()
        env.send(["bob@example.test"], subject="ehlo")
        self.assertTrue(wait_for(lambda: len(env.faillog()) >= 1, 10))
        self.assertEqual(env.faillog()[0][2], 0)  # temporary: another MX or a later try may work
        self.assertIn("Failed to reach any MX: 554 5.7.1 not you either (from mx1.example.test)", env.faillog()[0][1])
        del sink.rules["ehlo"], sink.rules["helo"]
        self.assertTrue(wait_for(lambda: sink.count() == 1, 10))
        self.assertTrue(wait_for(lambda: env.queue() == [], 5))

    def test_temporary_failures_retry_then_deliver(self):
        sink = self.sink("127.0.0.2")
        sink.rules["rcpt:bob@example.test"] = "451 4.3.0 try later"
        env = self.start()
        env.send(["bob@example.test"], subject="retry")
        self.assertTrue(wait_for(lambda: len(env.faillog()) >= 2, 10), env.faillog())
        fails = env.faillog()
        self.assertEqual(fails[0][1], "451 4.3.0 try later (from mx1.example.test)")
        self.assertEqual(fails[0][2], 0)
        del sink.rules["rcpt:bob@example.test"]
        self.assertTrue(wait_for(lambda: sink.count() == 1, 10))
        self.assertTrue(wait_for(lambda: env.queue() == [], 5))
        self.assertEqual(env.faillog(), [])  # removed with the entry
        self.assertEqual(env.mailbox(), [])  # no bounce

    def test_mixed_results_one_bounce_for_the_failed_recipients(self):
        sink = self.sink("127.0.0.2")
        sink.rules["rcpt:nobody@example.test"] = "550 5.1.1 No such user"
        sink.rules["rcpt:nobody2@example.test"] = "553 5.1.3 Bad address"
        env = self.start()
        env.send(["bob@example.test", "nobody@example.test", "nobody2@example.test"], subject="mixed",
                 options=["RET=FULL", "ENVID=env42"])
        self.assertTrue(wait_for(lambda: sink.count() == 1 and len(env.mailbox()) == 1, 10), (env.queue(), env.faillog()))
        self.assertEqual(sink.messages[0]["to"], ["bob@example.test"])
        self.assertTrue(wait_for(lambda: env.queue() == [], 5))
        m, per_msg, rcpts, returned = parse_bounce(env.mailbox()[0])
        self.assertEqual(per_msg["Original-Envelope-Id"], "env42")
        self.assertEqual(sorted((r["Final-Recipient"], r["Status"], r["Diagnostic-Code"], r["Remote-MTA"]) for r in rcpts), [
            ("rfc822; nobody2@example.test", "5.1.3", "smtp; 553 5.1.3 Bad address", "dns; mx1.example.test"),
            ("rfc822; nobody@example.test", "5.1.1", "smtp; 550 5.1.1 No such user", "dns; mx1.example.test"),
        ])
        self.assertEqual(returned.get_content_type(), "message/rfc822")  # RET=FULL
        self.assertIn("Hello.", returned.as_string())

    def test_refusals_at_mail_and_data_and_retries_used_up(self):
        sink = self.sink("127.0.0.2")
        env = self.start()
        sink.rules["mail"] = "550 5.7.1 Sender refused"
        env.send(["bob@example.test"], subject="mailrefused")
        self.assertTrue(wait_for(lambda: len(env.mailbox()) == 1, 10), env.faillog())
        self.assertEqual(parse_bounce(env.mailbox()[0])[2][0]["Status"], "5.7.1")
        del sink.rules["mail"]
        sink.rules["data"] = "554 5.6.0 Content refused"
        env.send(["bob@example.test"], subject="datarefused")
        self.assertTrue(wait_for(lambda: len(env.mailbox()) == 2, 10), env.faillog())
        self.assertEqual(parse_bounce(env.mailbox()[1])[2][0]["Status"], "5.6.0")
        sink.rules["data"] = "452 4.3.1 Out of space"
        env.send(["bob@example.test"], subject="full")
        # retries 3: three temporary failures, then a report saying it gave up.
        self.assertTrue(wait_for(lambda: len(env.mailbox()) == 3, 15), env.faillog())
        _, _, rcpts, _ = parse_bounce(env.mailbox()[2])
        self.assertEqual(rcpts[0]["Status"], "4.3.1")
        self.assertIn("gave up after 3 attempts", parse_bounce(env.mailbox()[2])[0].get_payload()[0].get_content())
        self.assertTrue(wait_for(lambda: env.queue() == [], 5))
        self.assertEqual(sink.count(), 0)

    def test_dropped_connection_and_stall_are_temporary(self):
        sink = self.sink("127.0.0.2")
        sink.rules["data"] = "drop"
        env = self.start()
        env.send(["bob@example.test"], subject="drop")
        self.assertTrue(wait_for(lambda: len(env.faillog()) >= 1, 10))
        self.assertEqual(env.faillog()[0][2], 0)
        sink.rules["data"] = ("stall", 5)  # longer than `timeout 3`
        self.assertTrue(wait_for(lambda: len(env.faillog()) >= 2, 15), env.faillog())
        self.assertIn("timeout", env.faillog()[-1][1])
        del sink.rules["data"]
        self.assertTrue(wait_for(lambda: env.queue() == [], 15), env.faillog())
        self.assertEqual(env.mailbox(), [])

    def test_killed_mid_delivery_neither_lost_nor_sent_twice(self):
        sink = self.sink("127.0.0.2")
        sink.rules["rcpt:bob@example.test"] = ("stall", 30)
        env = self.start("timeout 60")
        env.send(["bob@example.test"], subject="kill")
        self.assertTrue(wait_for(lambda: sink.has_reached("rcpt:bob@example.test"), 10))  # inside RCPT now
        leased = query(env.db, "SELECT mail_lease_owner FROM outbox")
        self.assertEqual(len(leased), 1)
        self.assertIsNotNone(leased[0][0])
        env.dispatchd.kill()  # SIGKILL: no chance to clean up
        env.dispatchd.wait()
        env.dispatchd.stderr.close()
        env.dispatchd.stdout.close()
        del sink.rules["rcpt:bob@example.test"]
        # Sees the dead owner's lease and takes the entry over at once (the lease would hold for
        # 900 s: delivery within the 10 s bound is the takeover).
        env.start_dispatchd()
        self.assertTrue(wait_for(lambda: sink.count() >= 1, 10))
        self.assertTrue(wait_for(lambda: env.queue() == [], 5))
        logs = self.stop()  # nothing is in flight any more
        self.assertEqual(sink.count(), 1)
        self.assertEqual(env.faillog(), [])
        self.assertIn("released the leases of ", logs["dispatchd"])
        self.assertIn(", which is no longer running", logs["dispatchd"])

    def test_handoff_with_auth_over_verified_starttls_to_the_projects_smtpd(self):
        # The receiving side: another cmail-smtpd with submission (STARTTLS, AUTH) on localhost.
        remote_db = os.path.join(self.tmp, "remote.db3")
        admin(remote_db, "init")
        admin(remote_db, "user", "add", "relay", "s3cret:pw")
        admin(remote_db, "smtpd", "enable", "relay", "any")
        admin(remote_db, "user", "add", "zoe", "x")
        admin(remote_db, "address", "add", "zoe@far.test", "store", "zoe")
        cert, key = make_cert(self.tmp, "localhost", name="remote", san="DNS:localhost")
        conf = os.path.join(self.tmp, "remote.conf")
        with open(conf, "w") as f:
            f.write(f"database {remote_db}\nauth_checks off\nbind 127.0.0.1 0 announce=far.test cert={cert} key={key} auth=tlsonly,strict\n")
        remote = subprocess.Popen([SMTPD, conf, "nodetach"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            rport = int(remote.stdout.readline().strip().rsplit(":", 1)[1])
            env = self.start(f"tls_trustfile {cert}")
            admin(env.db, "smtpd", "update", "alice", "handoff", f"relay:s3cret:pw@localhost:{rport}/starttls")
            env.send(["zoe@far.test"], subject="handoff")
            self.assertTrue(wait_for(lambda: query(remote_db, "SELECT count(*) FROM mailbox")[0][0] == 1, 10),
                            env.faillog())
            data = query(remote_db, "SELECT mail_data, mail_proto FROM mailbox")[0]
            self.assertIn("Subject: handoff", data[0])
            self.assertEqual(data[1], "esmtpsa")  # TLS and AUTH were used
            self.assertTrue(wait_for(lambda: env.queue() == [], 5))
            # A name the certificate does not carry: refused (verification is required with credentials).
            admin(env.db, "smtpd", "update", "alice", "handoff", f"relay:s3cret:pw@127.0.0.1:{rport}/starttls")
            env.send(["zoe@far.test"], subject="wrongname")
            self.assertTrue(wait_for(lambda: len(env.faillog()) >= 1, 10))
            self.assertIn("TLS", env.faillog()[0][1])
            self.assertEqual(query(remote_db, "SELECT count(*) FROM mailbox")[0][0], 1)
            # Nothing secret in logs or in faillog.
            self.assertFalse(any("s3cret" in f[1] for f in env.faillog()))
            logs = self.stop()
            self.assertIn("relay:***@127.0.0.1", logs["dispatchd"])
            self.assertNotIn("s3cret", logs["dispatchd"])
        finally:
            remote.terminate()
            remote.wait(timeout=10)
            remote.stdout.close()
            remote.stderr.close()

    def test_bad_handoff_spec_and_bounce_of_a_bounce(self):
        env = self.start()
        admin(env.db, "smtpd", "update", "alice", "handoff", "relay.test:25x")
        env.send(["bob@example.test"], subject="badspec")
        self.assertTrue(wait_for(lambda: len(env.mailbox()) == 1, 10), env.faillog())
        _, _, rcpts, _ = parse_bounce(env.mailbox()[0])
        self.assertEqual(rcpts[0]["Status"], "5.3.5")
        self.assertTrue(wait_for(lambda: env.queue() == [], 5))
        # Mail with the null sender that fails is dropped, never bounced.
        admin(env.db, "smtpd", "update", "alice", "any")
        env.send(["bob@nowhere.test"], sender="", subject="nullsender")
        self.assertTrue(wait_for(lambda: env.queue() == [], 10), env.faillog())
        self.assertEqual(len(env.mailbox()), 1)

    def test_notify_success_to_a_server_without_dsn_gets_a_relayed_report(self):
        sink = self.sink("127.0.0.2")  # aiosmtpd offers no DSN extension
        env = self.start()
        env.send(["bob@example.test", "carol@example.test"], subject="relay", options=["ENVID=e77"],
                 rcpt_options=["NOTIFY=SUCCESS,FAILURE"])
        env.send(["dave@example.test"], subject="quiet")  # no NOTIFY: no report on success
        self.assertTrue(wait_for(lambda: sink.count() == 2 and len(env.mailbox()) == 1, 10), env.faillog())
        self.assertTrue(wait_for(lambda: env.queue() == [], 5))
        self.stop()  # a report for "quiet" would have been stored by now
        self.assertEqual(len(env.mailbox()), 1)
        m, per_msg, rcpts, returned = parse_bounce(env.mailbox()[0])
        self.assertEqual(m["Subject"], "Successful Mail Delivery Report")
        self.assertEqual(per_msg["Original-Envelope-Id"], "e77")
        self.assertEqual(sorted((r["Final-Recipient"], r["Action"], r["Status"], r["Remote-MTA"]) for r in rcpts), [
            ("rfc822; bob@example.test", "relayed", "2.0.0", "dns; mx1.example.test"),
            ("rfc822; carol@example.test", "relayed", "2.0.0", "dns; mx1.example.test"),
        ])
        self.assertEqual(returned.get_content_type(), "text/rfc822-headers")

    def test_notify_success_for_a_local_recipient_gets_a_delivered_report(self):
        env = self.start()
        admin(env.db, "user", "add", "zed", "x")
        admin(env.db, "address", "add", "zed@local.test", "store", "zed")
        env.send(["zed@local.test"], subject="local", rcpt_options=["NOTIFY=SUCCESS", "ORCPT=rfc822;Zed@local.test"])
        env.send(["zed@local.test"], subject="plain")  # no NOTIFY: no report
        self.assertTrue(wait_for(lambda: len(env.mailbox("zed")) == 2 and len(env.mailbox()) == 1, 10))
        self.stop()  # a report for "plain" would have been stored by now
        self.assertEqual(len(env.mailbox()), 1)
        m, per_msg, rcpts, returned = parse_bounce(env.mailbox()[0])
        self.assertEqual(m["Subject"], "Successful Mail Delivery Report")
        self.assertEqual(per_msg["Reporting-MTA"], "dns; local.test")
        self.assertEqual([(r["Final-Recipient"], r["Action"], r["Status"], r["Original-Recipient"]) for r in rcpts],
                         [("rfc822; zed@local.test", "delivered", "2.0.0", "rfc822;Zed@local.test")])
        self.assertIn("Subject: local", returned.get_content())
        self.assertEqual(env.queue(), [])

    def test_notify_never(self):
        env = self.start("interval 60")
        env.send(["bob@nowhere.test"], subject="never", rcpt_options=["NOTIFY=NEVER"])
        # The entry leaves the queue in the same commit that would have stored a report.
        self.assertTrue(wait_for(lambda: env.queue() == [], 10), env.faillog())
        logs = self.stop()
        self.assertEqual(env.mailbox(), [])  # the sender asked for no report
        self.assertIn("recipient(s) after failure: the sender asked for no report", logs["dispatchd"])

    def test_admin_flush_and_sighup_run_the_queue_at_once(self):
        sink = self.sink("127.0.0.2")
        sink.rules["rcpt:bob@example.test"] = "451 4.3.0 later"
        env = self.start("interval 60\nretryinterval 3600\nmaxretryinterval 3600")
        env.send(["bob@example.test"], subject="flush")
        self.assertTrue(wait_for(lambda: len(env.faillog()) == 1, 10))
        del sink.rules["rcpt:bob@example.test"]
        # Not due for an hour, and out of the dispatcher's hands (settled with the failure).
        self.assertEqual(query(env.db, "SELECT mail_lease_owner IS NULL, mail_next_attempt - strftime('%s','now') > 3500 "
                                       "FROM outbox"), [(1, 1)])
        self.assertEqual(sink.count(), 0)
        out = admin(env.db, "queue", "flush")
        self.assertIn("1 entry due now", out.stdout)  # still queued, undelivered, when flushed
        # The next scan would come in 60 s (interval): within the bound, the flush woke it.
        self.assertTrue(wait_for(lambda: sink.count() == 1, 10))
        # SIGHUP also runs the queue at once.
        sink.rules["rcpt:bob@example.test"] = "451 4.3.0 later"
        env.send(["bob@example.test"], subject="hup")
        self.assertTrue(wait_for(lambda: len(env.faillog()) == 1, 10))
        del sink.rules["rcpt:bob@example.test"]
        # Due, but nobody told the dispatcher (this write touches no notify file; its next scan
        # is 60 s away): within the bound, SIGHUP made it look.
        query(env.db, "UPDATE outbox SET mail_next_attempt = 0")
        self.assertEqual(sink.count(), 1)
        env.dispatchd.send_signal(signal.SIGHUP)
        self.assertTrue(wait_for(lambda: sink.count() == 2, 10))

    def test_one_shot_modes(self):
        sink = self.sink("127.0.0.2")
        env = self.start(mode=("deliver",))
        env.send(["bob@example.test"], subject="oneshot")
        env.send(["bob@nowhere.test"], subject="other")

        def once(*mode):
            p = env.start_dispatchd(*mode)
            out, err = p.communicate(timeout=30)
            env.dispatchd = None
            self.assertEqual(p.returncode, 0, err)
            self.assertNotIn("Sanitizer", err)
            return out

        self.assertIn("Updating delivery domain to EXAMPLE.test", once("deliver", "EXAMPLE.test"))
        self.assertEqual(sink.count(), 1)
        self.assertEqual([r[1] for r in env.queue()], ["bob@nowhere.test"])  # the other domain waits
        self.assertEqual(env.mailbox(), [])
        once("deliver", "nowhere.test")
        self.assertEqual(env.faillog()[0][2], 1)  # NXDOMAIN: permanent, but no bounce in this mode
        self.assertEqual(env.mailbox(), [])
        once("genbounces")
        self.assertEqual(len(env.mailbox()), 1)
        self.assertEqual(env.queue(), [])
        # handoff REMOTE: only entries whose remote is exactly that.
        admin(env.db, "smtpd", "update", "alice", "handoff", f"127.0.0.2:{self.port}")
        env.send(["x@far.test"], subject="viahandoff")
        admin(env.db, "smtpd", "update", "alice", "handoff", f"127.0.0.3:{self.port}")
        env.send(["y@far.test"], subject="other")
        once("handoff", f"127.0.0.2:{self.port}")
        self.assertEqual(sink.count(), 2)
        self.assertEqual(sink.messages[1]["to"], ["x@far.test"])
        self.assertEqual([r[1] for r in env.queue()], ["y@far.test"])

    def test_ratelimit_per_destination(self):
        sink = self.sink("127.0.0.2")
        env = self.start("ratelimit 2")
        for i in range(5):
            env.send(["bob@example.test"], subject=f"rate{i}")
        self.assertTrue(wait_for(lambda: sink.count() == 2, 10))

        def waiting():
            return query(env.db, "SELECT mail_next_attempt - strftime('%s','now'), mail_lease_owner FROM outbox")

        def put_back():  # the other three wait for the rate, out of the dispatcher's hands
            rows = waiting()
            return len(rows) == 3 and all(w > 50 and o is None for w, o in rows)
        self.assertTrue(wait_for(put_back, 10), waiting())
        self.assertEqual(sink.count(), 2)
        self.assertTrue(all(50 < w <= 61 for w, _ in waiting()), waiting())
        self.assertEqual(env.faillog(), [])  # waiting for the rate is not a failure

    def test_the_projects_smtpd_as_the_mx_with_opportunistic_tls_and_8bitmime(self):
        remote_db = os.path.join(self.tmp, "mx.db3")
        admin(remote_db, "init")
        admin(remote_db, "user", "add", "bob", "x")
        admin(remote_db, "address", "add", "bob@example.test", "store", "bob")
        cert, key = make_cert(self.tmp, "mx1.example.test", name="mx")
        conf = os.path.join(self.tmp, "mx.conf")
        with open(conf, "w") as f:
            f.write(f"database {remote_db}\nauth_checks off\nbind 127.0.0.2 {self.port} announce=mx1.example.test cert={cert} key={key}\n")
        mx = subprocess.Popen([SMTPD, conf, "nodetach"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            self.assertTrue(mx.stdout.readline().startswith("smtp "))
            env = self.start()
            env.send(["bob@example.test"], subject="tothemx", body="Gr\u00fc\u00dfe aus K\u00f6ln.\r\n",
                     rcpt_options=["NOTIFY=SUCCESS"])
            self.assertTrue(wait_for(lambda: query(remote_db, "SELECT count(*) FROM mailbox")[0][0] == 1, 10), env.faillog())
            data, proto, sender = query(remote_db, "SELECT mail_data, mail_proto, mail_envelopefrom FROM mailbox")[0]
            self.assertEqual(proto, "esmtps")  # STARTTLS taken although not required (RFC 7435)
            self.assertEqual(sender, "alice@local.test")
            self.assertIn("Grüße aus Köln.", data)  # 8-bit data went as BODY=8BITMIME
            self.assertEqual(len(re.findall(r"^Received: ", data, re.M)), 2)  # ours and the MX's
            self.assertTrue(wait_for(lambda: env.queue() == [], 5))
            self.stop()  # a relay report would have been stored by now
            self.assertEqual(env.mailbox(), [])  # the MX offers DSN: reporting success is its job
        finally:
            mx.terminate()
            mx.wait(timeout=15)
            mx.stdout.close()
            mx.stderr.close()

    def test_what_the_server_cannot_take_is_refused_before_sending(self):
        sink = self.sink("127.0.0.2", data_size_limit=2000, enable_SMTPUTF8=False)  # SIZE 2000, no SMTPUTF8
        env = self.start()
        env.send(["bob@example.test"], subject="big", body=("x" * 70 + "\r\n") * 40)
        env.send(["j\u00f6rg@example.test"], subject="utf8", options=["SMTPUTF8"])
        self.assertTrue(wait_for(lambda: len(env.mailbox()) == 2, 10), env.faillog())
        statuses = sorted(parse_bounce(d)[2][0]["Status"] for d in env.mailbox())
        self.assertEqual(statuses, ["5.3.4", "5.6.7"])
        self.assertEqual(sink.count(), 0)

    def test_dns_failure_is_temporary_then_returned(self):
        self.dns.set({"example.test": "SERVFAIL"})
        env = self.start()
        env.send(["bob@example.test"], subject="servfail")
        self.assertTrue(wait_for(lambda: len(env.mailbox()) == 1, 15), env.faillog())
        _, _, rcpts, _ = parse_bounce(env.mailbox()[0])
        self.assertEqual(rcpts[0]["Status"], "4.4.3")
        self.assertTrue(wait_for(lambda: env.queue() == [], 5))

    def test_connections_at_once_per_destination_and_overall(self):
        self.dns.set({
            "example.test": {"MX": [[10, "mx1.example.test"]]},
            "other.test": {"MX": [[10, "mx1.example.test"]]},
            "mx1.example.test": {"A": ["127.0.0.2"]},
        })
        sink = self.sink("127.0.0.2")
        sink.rules["data"] = ("stall", 0.5)
        env = self.start("maxperdestination 2\nmaxconnections 3\ninterval 60")
        env.dispatchd.send_signal(signal.SIGSTOP)  # queue everything first, then deliver
        for i in range(6):
            env.send([f"u{i}@example.test"], subject=f"c{i}")
            env.send([f"u{i}@other.test"], subject=f"o{i}")
        env.dispatchd.send_signal(signal.SIGCONT)
        env.dispatchd.send_signal(signal.SIGHUP)
        self.assertTrue(wait_for(lambda: sink.count() == 12, 20), (sink.count(), env.faillog()))
        self.assertEqual(sink.max_in_data, 3)  # 2 + 2 allowed per destination, 3 overall
        self.assertLess(sink.sessions, 12)     # connections carried several messages each

    def test_cmail_serve_delivers_outbound_mail(self):
        sink = self.sink("127.0.0.2")
        data = os.path.join(self.tmp, "serve")
        dconf = os.path.join(self.tmp, "serve-dispatch.conf")
        with open(dconf, "w") as f:
            f.write(f"portprio {self.port}\nretryinterval 1\n")
        proc = subprocess.Popen([CMAIL, "serve", "--data", data, "--smtp-port", "0", "--submission-port", "0",
                                 "--smtps-port", "0", "--resolver", self.dns.address, "--dispatchd-config", dconf],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            ports = {}
            for _ in range(3):
                kind, addr = proc.stdout.readline().split()
                ports[kind] = int(addr.rsplit(":", 1)[1])
            db = os.path.join(data, "master.db3")
            admin(db, "user", "add", "alice", "wonderland")
            admin(db, "smtpd", "enable", "alice", "any")
            ctx = __import__("ssl").create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = 0
            with smtplib.SMTP("127.0.0.1", ports["submission"], timeout=10) as s:
                s.starttls(context=ctx)
                s.login("alice", "wonderland")
                s.sendmail("alice@localhost", ["bob@example.test"], b"Subject: serve\r\n\r\nhi\r\n")
            self.assertTrue(wait_for(lambda: sink.count() == 1, 10))
            self.assertEqual(sink.messages[0]["helo"], "localhost")
            self.assertTrue(wait_for(lambda: query(db, "SELECT count(*) FROM outbox")[0][0] == 0, 5))
        finally:
            proc.terminate()
            proc.wait(timeout=15)
            proc.stdout.close()
            proc.stderr.close()

    def test_two_dispatchers_never_send_a_recipient_twice(self):
        sink = self.sink("127.0.0.2")
        sink.rules["data"] = ("stall", 0.05)
        env = self.start("interval 60")
        second = subprocess.Popen([DISPATCHD, env.conf, "nodetach"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        try:
            self.assertIn("delivering as", second.stderr.readline())
            # Each commit wakes both, and they compete for the leases. Which one wins is up to
            # the scheduler, so for a third of the mail each one in turn is stopped (while
            # idle: the queue is empty), and both are sure to deliver some.
            first = env.dispatchd
            for phase, stopped in enumerate((None, first, second)):
                if stopped:
                    stopped.send_signal(signal.SIGSTOP)
                try:
                    for i in range(phase * 10, phase * 10 + 10):
                        env.send([f"u{i}@example.test", f"v{i}@example.test"], subject=f"twice{i}")
                    self.assertTrue(wait_for(lambda: env.queue() == [], 20), len(env.queue()))
                finally:
                    if stopped:
                        stopped.send_signal(signal.SIGCONT)
        finally:
            code2, err2 = stop_daemon(second, timeout=20)
        err1 = self.stop()["dispatchd"]
        # Both have stopped: anything either still had in flight has arrived.
        delivered = [(re.search(rb"Subject: (\w+)", m["data"]).group(1), r) for m in sink.messages for r in m["to"]]
        self.assertEqual(len(delivered), 60)
        self.assertEqual(len(set(delivered)), 60)  # each recipient exactly once
        self.assertEqual(code2, 0, err2[-2000:])
        counts = [int(re.search(r"stopped: (\d+) delivered", e).group(1)) for e in (err1, err2)]
        self.assertEqual(sum(counts), 60)
        self.assertTrue(all(c > 0 for c in counts), counts)  # both took part

    def test_bounce_copy_and_bind(self):
        sink = self.sink("127.0.0.2")
        env = self.start("bind 127.0.0.5\nbounce_copy postmaster@local.test")
        admin(env.db, "user", "add", "postmaster", "x")
        admin(env.db, "address", "add", "postmaster@local.test", "store", "postmaster")
        env.send(["bob@example.test"], subject="bound")
        self.assertTrue(wait_for(lambda: sink.count() == 1, 10))
        self.assertEqual(sink.messages[0]["peer"], "127.0.0.5")  # from the `bind` address
        env.send(["bob@nowhere.test"], subject="copied")
        self.assertTrue(wait_for(lambda: len(env.mailbox("postmaster")) == 1 and len(env.mailbox()) == 1, 10))
        m, _, rcpts, _ = parse_bounce(env.mailbox("postmaster")[0])
        self.assertEqual(m["To"].addresses[0].addr_spec, "alice@local.test")  # a copy of alice's bounce
        self.assertEqual(rcpts[0]["Final-Recipient"], "rfc822; bob@nowhere.test")


if __name__ == "__main__":
    harness.main()
