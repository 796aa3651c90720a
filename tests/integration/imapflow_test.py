#!/usr/bin/python3
"""imapflow (npm, the IMAP client of Node.js mail applications) against cmail-imapd, with IDLE.

Usage: imapflow_test.py BUILD_DIR

imapflow comes from tests/integration/imapflow/package-lock.json, installed into
tests/integration/imapflow/node_modules by `./dev.sh test` (`npm ci`; a test-only dependency,
docs/dependencies.md). The script tests/integration/imapflow/client.js logs in, opens INBOX,
fetches every message (envelope, flags, source, body structure), flags one, lists the mailboxes,
and waits in IDLE (imapflow enters it by itself); a message delivered meanwhile through
cmail-smtpd, another process, must reach it as an 'exists' event within a second of the 250.
It then fetches and deletes that message (STORE \\Deleted and UID EXPUNGE) and logs out. Both
daemons listen on ephemeral loopback ports; every wait is bounded.
"""
import json
import os
import queue
import shutil
import smtplib
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from harness import start_daemon, stop_daemon

BUILD = sys.argv.pop(1) if len(sys.argv) > 1 else "build"
SMTPD = os.path.join(BUILD, "frontends", "cmail-smtpd", "cmail-smtpd")
IMAPD = os.path.join(BUILD, "frontends", "cmail-imapd", "cmail-imapd")
ADMIN = os.path.join(BUILD, "frontends", "cmail-admin", "cmail-admin")
HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "imapflow")
NODE = shutil.which("node") or "/usr/bin/node"


class ImapflowTest(unittest.TestCase):
    def setUp(self):
        if not os.path.isdir(os.path.join(HERE, "node_modules", "imapflow")):
            self.fail(f"imapflow is not installed: run `npm ci --prefix {HERE}` (./dev.sh test does)")
        tmp = tempfile.TemporaryDirectory(prefix="cmail-imapflow-")
        self.addCleanup(tmp.cleanup)
        self.db = os.path.join(tmp.name, "master.db3")
        for args in (["init"], ["user", "add", "alice", "wonderland"],
                     ["address", "add", "alice@local.test", "store", "alice"], ["imapd", "enable", "alice"]):
            subprocess.run([ADMIN, "-d", self.db, *args], check=True, capture_output=True, timeout=30)
        conf = os.path.join(tmp.name, "smtpd.conf")
        with open(conf, "w") as f:
            f.write(f"database {self.db}\nauth_checks off\nbind 127.0.0.1 0 announce=mx.local.test\n")
        smtpd, ports = start_daemon(SMTPD, conf, 1, "nodrop")
        self.addCleanup(lambda: self.assertEqual(stop_daemon(smtpd)[0], 0))
        self.smtp = ports["smtp"][0]
        conf = os.path.join(tmp.name, "imapd.conf")
        with open(conf, "w") as f:
            f.write(f"database {self.db}\nbind 127.0.0.1 0\n")
        imapd, ports = start_daemon(IMAPD, conf, 1, "nodrop")
        self.addCleanup(lambda: self.assertEqual(stop_daemon(imapd)[0], 0))
        self.imap = ports["imap"][0]

    def send(self, subject):
        with smtplib.SMTP("127.0.0.1", self.smtp, timeout=30) as s:
            s.sendmail("sender@remote.test", ["alice@local.test"],
                       f"Subject: {subject}\r\nFrom: sender@remote.test\r\n\r\nbody of {subject}\r\n")
            return time.monotonic()

    def test_fetch_flags_list_idle_delete(self):
        for subject in ("first", "second"):
            self.send(subject)
        proc = subprocess.Popen([NODE, os.path.join(HERE, "client.js"), str(self.imap), "alice", "wonderland"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=HERE)
        self.addCleanup(lambda: (proc.poll() is None and proc.kill(), proc.wait(10), proc.stdout.close(),
                                 proc.stderr.close()))
        lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout] + [lines.put(None)],
                         daemon=True).start()

        def step(name):
            deadline = time.monotonic() + 30
            while True:
                try:
                    line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
                except queue.Empty:
                    self.fail(f"no '{name}' from imapflow within 30 s")
                if line is None:
                    self.fail(f"client.js ended before '{name}': {proc.stderr.read()}")
                got = json.loads(line)
                self.assertNotIn("error", got, got.get("error"))
                if got.get("step") == name:
                    return got

        caps = step("capabilities")["list"]
        for c in ("IMAP4rev2", "IDLE", "UIDPLUS", "CONDSTORE", "SPECIAL-USE"):
            self.assertIn(c, caps)
        self.assertEqual(step("opened")["exists"], 2)
        fetched = step("fetched")["messages"]
        self.assertEqual([m["subject"] for m in fetched], ["first", "second"])
        self.assertEqual([m["uid"] for m in fetched], [1, 2])
        self.assertTrue(all(m["type"] == "text/plain" and m["size"] > 0 and not m["seen"] for m in fetched))
        self.assertEqual(step("flagged")["flags"], ["$Important", "\\Flagged"])
        mailboxes = dict(map(tuple, step("list")["mailboxes"]))
        self.assertEqual(mailboxes.get("Sent"), "\\Sent")
        self.assertIn("INBOX", mailboxes)
        step("idling")
        delivered = self.send("while idling")  # cmail-smtpd: another process
        ev = step("exists")
        latency = time.monotonic() - delivered
        self.assertEqual((ev["count"], ev["prevCount"]), (3, 2))
        self.assertLess(latency, 1.0, f"'exists' {latency:.3f} s after the 250")
        new = step("new")
        self.assertEqual((new["subject"], new["uid"]), ("while idling", 3))
        self.assertEqual(step("deleted")["exists"], 2)
        step("done")
        self.assertEqual(proc.wait(timeout=20), 0, proc.stderr.read())
        c = sqlite3.connect(self.db)
        try:  # the flags and the deletion are in the database
            rows = c.execute("SELECT mail_uid FROM mailbox WHERE mail_user = 'alice' ORDER BY mail_uid").fetchall()
        finally:
            c.close()
        self.assertEqual(rows, [(1,), (2,)])


if __name__ == "__main__":
    unittest.main(verbosity=2)
