#!/usr/bin/python3
"""Integration tests for cmail-admin: the real binaries on a temporary master database.

Usage: admin_test.py BUILD_DIR

Every command's effect is checked in the database with Python's sqlite3 module; every bad
input is checked to change nothing (a dump before and after).
"""
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import unittest

import harness

BUILD = sys.argv.pop(1) if len(sys.argv) > 1 else "build"
BIN = os.path.join(BUILD, "frontends", "cmail-admin")
ADMIN = os.path.join(BIN, "cmail-admin")

V9 = harness.v9_install_sql()  # made with Python's sqlite3, as the original tools left databases
CURRENT = 14  # this build's schema version


def file_bytes(path):
    with open(path, "rb") as f:
        return f.read()


class AdminTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cmail-admin-test-")
        os.chmod(self.tmp, 0o777)
        self.db = os.path.join(self.tmp, "master.db3")
        r = self.admin("init")
        self.assertEqual(r.returncode, 0, r.stderr)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def admin(self, *args, tool=None, stdin=None, env=None, prefix=(), db=None):
        exe = os.path.join(BIN, "cmail-admin-" + tool) if tool else ADMIN
        e = dict(os.environ, **(env or {}))
        e.pop("CMAIL_MASTER_DB", None)
        return subprocess.run(list(prefix) + [exe, "-d", db or self.db, *args], input=stdin, capture_output=True,
                              text=True, timeout=60, env=e)

    def make_v9(self, name="master.db3"):
        """A fresh cmail version-9 master database in the test's directory, made from the
        original's install script, with a row in every table the tools manage."""
        path = os.path.join(self.tmp, name)
        if os.path.exists(path):
            os.remove(path)
        c = sqlite3.connect(path)
        c.executescript(V9)
        c.executescript("""
            INSERT INTO users (user_name) VALUES ('cbdev'), ('other');
            INSERT INTO addresses VALUES ('cb@bar.baz', 101, 'store', 'cbdev');
            INSERT INTO smtpd VALUES ('cbdev', 'any', NULL);
            INSERT INTO popd VALUES ('cbdev', 0);
            INSERT INTO api_access VALUES ('cbdev', 'admin');
            INSERT INTO outbox (mail_envelopefrom, mail_envelopeto, mail_data) VALUES ('cb@bar.baz', 'far@remote.test', 'x');
        """)
        c.commit()
        c.close()
        return path

    def backups(self, path):
        base = os.path.basename(path)
        return [os.path.join(self.tmp, f) for f in sorted(os.listdir(self.tmp)) if f.startswith(base + ".backup-")]

    def assert_upgraded(self, r, path, what):
        """`r` succeeded after upgrading `path` from version 9, saying so in exactly one stderr
        line that names the backup; the backup is the version-9 file. Returns the backup."""
        self.assertEqual(r.returncode, 0, f"{what}: {r.stdout} {r.stderr}")
        lines = r.stderr.splitlines()
        self.assertEqual(len(lines), 1, f"{what}: expected one stderr line, got {r.stderr!r}")
        m = re.fullmatch(r"cmail-admin-\w+: upgraded (\S+) from schema version 9 to (\d+) \(backup: (\S+)\)", lines[0])
        self.assertIsNotNone(m, f"{what}: {lines[0]}")
        self.assertEqual(m.group(1), path)
        self.assertEqual(int(m.group(2)), CURRENT)
        backup = m.group(3)
        self.assertTrue(backup.startswith(path + ".backup-v9-"), backup)
        self.assertEqual(self.backups(path), [backup], what)
        b = sqlite3.connect(backup)
        self.assertEqual(b.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall(), [("9",)])
        b.close()
        c = sqlite3.connect(path)
        self.assertEqual(c.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall(), [(str(CURRENT),)])
        c.close()
        return backup

    def assert_refused_untouched(self, code, path, *args, tool=None, message=None):
        """The command fails with `code` and one stderr line; the file keeps every byte and no
        file (backup, WAL) appears beside it."""
        before, files = file_bytes(path), sorted(os.listdir(self.tmp))
        r = self.admin(*args, tool=tool, db=path)
        self.assertEqual(r.returncode, code, f"{tool} {args}: {r.stdout} {r.stderr}")
        lines = r.stderr.splitlines()
        self.assertEqual(len(lines), 1, f"{tool} {args}: expected one stderr line, got {r.stderr!r}")
        if message:
            self.assertIn(message, lines[0])
        self.assertEqual(file_bytes(path), before, f"{tool} {args} changed {path}")
        self.assertEqual(sorted(os.listdir(self.tmp)), files, f"{tool} {args} left files")
        return r

    def ok(self, *args, tool=None, stdin=None):
        r = self.admin(*args, tool=tool, stdin=stdin)
        self.assertEqual(r.returncode, 0, f"{args}: {r.stderr}")
        self.assertEqual(r.stderr, "", f"{args}: success must be silent on stderr")
        return r.stdout

    def q(self, sql, *params):
        c = sqlite3.connect(self.db)
        try:
            return c.execute(sql, params).fetchall()
        finally:
            c.close()

    def dump(self):
        c = sqlite3.connect(self.db)
        try:
            return list(c.iterdump())
        finally:
            c.close()

    def refused(self, code, *args, tool=None, stdin=None, message=None):
        """The command fails with `code`, one line on stderr, and changes nothing."""
        before = self.dump()
        r = self.admin(*args, tool=tool, stdin=stdin)
        self.assertEqual(r.returncode, code, f"{args}: {r.stdout} {r.stderr}")
        lines = [l for l in r.stderr.splitlines() if l]
        self.assertEqual(len(lines), 1, f"{args}: expected one stderr line, got {r.stderr!r}")
        if message:
            self.assertIn(message, lines[0])
        self.assertEqual(self.dump(), before, f"{args} changed the database")
        return r

    # users

    def test_user_commands(self):
        self.ok("add", "alice", "secret", tool="user")
        auth = self.q("SELECT user_authdata FROM users WHERE user_name = 'alice'")[0][0]
        self.assertTrue(auth.startswith("$argon2id$"), auth)
        self.assertNotIn("secret", auth)
        self.ok("user", "add", "bob", stdin="pw from stdin\n")  # no terminal: one line from stdin
        self.assertTrue(self.q("SELECT user_authdata FROM users WHERE user_name = 'bob'")[0][0].startswith("$argon2id$"))
        self.ok("user", "add", "carol", stdin="\n")  # blank: login disabled
        self.assertEqual(self.q("SELECT user_authdata FROM users WHERE user_name = 'carol'"), [(None,)])
        self.ok("user", "passwd", "carol", "new")
        self.assertIsNotNone(self.q("SELECT user_authdata FROM users WHERE user_name = 'carol'")[0][0])
        self.ok("user", "revoke", "carol")
        self.assertEqual(self.q("SELECT user_authdata FROM users WHERE user_name = 'carol'"), [(None,)])
        self.ok("user", "alias", "bob", "alice")
        self.assertEqual(self.q("SELECT user_alias FROM users WHERE user_name = 'bob'"), [("alice",)])
        self.ok("user", "alias", "bob", "bob")  # to itself: removed
        self.assertEqual(self.q("SELECT user_alias FROM users WHERE user_name = 'bob'"), [(None,)])
        self.ok("user", "userdb", "alice", "/var/mail/alice.db3")
        self.assertEqual(self.q("SELECT user_database FROM users WHERE user_name = 'alice'"), [("/var/mail/alice.db3",)])
        self.ok("user", "userdb", "alice")
        self.assertEqual(self.q("SELECT user_database FROM users WHERE user_name = 'alice'"), [(None,)])
        out = self.ok("user", "list")
        self.assertEqual(out.splitlines()[0], "%20s | %5s | %15s | %16s | %6s | %14s" % (
            "User", "Auth", "Alias", "Linked addresses", "Mails", "User database"))
        self.assertIn("%20s | %5d | %15s | %16d | %6d | %20s" % ("alice", 1, "", 0, 0, ""), out)
        self.assertIn("%20s | %5d | " % ("carol", 0), out)
        self.assertEqual(len(self.ok("user", "list", "a%").splitlines()), 3)
        # delete cascades (smtpd, popd, permissions), aliases pointing at it become NULL,
        # addresses stay (docs/compatibility.md#admin-tools-user)
        self.ok("user", "alias", "bob", "alice")
        self.ok("smtpd", "enable", "alice", "any")
        self.ok("popd", "enable", "alice")
        self.ok("imapd", "enable", "alice")
        self.ok("permissions", "grant", "alice", "admin")
        self.ok("address", "add", "alice@x.test", "store", "alice")
        self.ok("user", "delete", "alice")
        self.assertEqual(self.q("SELECT COUNT(*) FROM users WHERE user_name = 'alice'"), [(0,)])
        self.assertEqual(self.q("SELECT user_alias FROM users WHERE user_name = 'bob'"), [(None,)])
        self.assertEqual(self.q("SELECT COUNT(*) FROM smtpd"), [(0,)])
        self.assertEqual(self.q("SELECT COUNT(*) FROM popd"), [(0,)])
        self.assertEqual(self.q("SELECT COUNT(*) FROM imapd"), [(0,)])
        self.assertEqual(self.q("SELECT COUNT(*) FROM api_access"), [(0,)])
        self.assertEqual(self.q("SELECT COUNT(*) FROM addresses"), [(1,)])

    def test_user_bad_input(self):
        self.ok("user", "add", "alice", "pw")
        self.refused(255, "user", "add", "alice", "pw", message="already exists")
        self.refused(2, "user", "passwd", "nobody", "pw", message="No such user")
        self.refused(2, "user", "delete", "nobody", message="No such user")
        self.refused(2, "user", "alias", "alice", "nobody")
        self.refused(2, "user", "revoke", "nobody")
        self.refused(3, "user", "add", "bad name", "pw")
        self.refused(255, "user", "revoke", "alice", "extra")
        r = self.refused(255, "user", "frobnicate")
        self.assertIn("Usage", r.stdout)
        self.refused(11, "user", "add", "zed", stdin="x" * 300 + "\n")

    # addresses

    def test_address_commands(self):
        self.ok("user", "add", "alice", "pw")
        self.ok("address", "add", "alice@x.test", "store", "alice")
        self.ok("address", "add", "%@x.test", "reject", "No such user here", "5")
        self.ok("address", "add", "fwd@x.test", "redirect", "(to-local)@y.test", "200")
        self.ok("address", "add", "drop@x.test", "drop", "", "300")
        rows = self.q("SELECT address_order, address_expression, address_router, address_route FROM addresses ORDER BY 1")
        self.assertEqual(rows, [(1, "alice@x.test", "store", "alice"), (5, "%@x.test", "reject", "No such user here"),
                                (200, "fwd@x.test", "redirect", "(to-local)@y.test"), (300, "drop@x.test", "drop", "")])
        out = self.ok("address", "test", "ALICE@x.test").splitlines()
        self.assertEqual(out[0], "%5s | %30s | %10s | %20s" % ("Order", "Expression", "Router", "Argument"))
        self.assertEqual(out[2], "%5d | %30s | %10s | %20s" % (5, "%@x.test", "reject", "No such user here"))
        self.assertEqual(out[3], "%5d | %30s | %10s | %20s" % (1, "alice@x.test", "store", "alice"))
        self.assertEqual(len(self.ok("address", "list", "f%").splitlines()), 3)
        self.ok("address", "update", "1", "redirect", "a@b.test")
        self.assertEqual(self.q("SELECT address_router, address_route FROM addresses WHERE address_order = 1"),
                         [("redirect", "a@b.test")])
        self.ok("address", "update", "1", "drop")
        self.assertEqual(self.q("SELECT address_route FROM addresses WHERE address_order = 1"), [(None,)])
        self.ok("address", "swap", "1", "200")
        self.assertEqual(self.q("SELECT address_expression FROM addresses WHERE address_order IN (1, 200) ORDER BY address_order"),
                         [("fwd@x.test",), ("alice@x.test",)])
        self.ok("address", "swap", "300", "400")  # second missing: the first moves
        # (docs/compatibility.md#admin-tools-address)
        self.assertEqual(self.q("SELECT address_order FROM addresses WHERE address_expression = 'drop@x.test'"), [(400,)])
        self.ok("address", "delete", "400")
        self.assertEqual(self.q("SELECT COUNT(*) FROM addresses"), [(3,)])

    def test_address_bad_input(self):
        self.ok("address", "add", "a@x.test", "drop", "", "7")
        r = self.refused(3, "address", "add", "b@x.test", "stroe", "alice", message="unknown router 'stroe'")
        self.assertIn("store, redirect, handoff, reject, drop", r.stderr)
        self.refused(3, "address", "add", "b c@x.test", "drop", message="whitespace")
        self.refused(3, "address", "add", "b@c@x.test", "drop")
        self.refused(3, "address", "add", "<b@x.test>", "drop")
        self.refused(5, "address", "add", "b@x.test", "drop", "", "7", message="taken")
        self.refused(3, "address", "add", "b@x.test", "drop", "", "seven")
        self.refused(255, "address", "add", "b@x.test", "drop", "", "8", "extra")
        self.refused(255, "address", "add", "b@x.test")
        self.refused(2, "address", "delete", "99", message="No such address")
        self.refused(2, "address", "update", "99", "drop")
        self.refused(3, "address", "update", "7", "any")  # an outbound router is not inbound
        self.refused(20, "address", "swap", "98", "99")
        self.refused(1, "address", "bogus")

    # smtpd, popd, permissions

    def test_smtpd_popd_permissions(self):
        for u in ("alice", "bob"):
            self.ok("user", "add", u, "pw")
        self.ok("enable", "alice", tool="smtpd")  # the original tool name
        self.assertEqual(self.q("SELECT smtpd_router, smtpd_route FROM smtpd"), [("drop", None)])
        self.ok("update", "alice", "handoff", "u:p@relay.test:587/starttls", tool="smtpd")
        self.ok("smtpd", "enable", "bob", "defined")
        out = self.ok("list", tool="smtpd").splitlines()
        self.assertEqual(out[0], "%20s | %10s | %15s" % ("User", "Router", "Argument"))
        self.assertIn("%20s | %10s | %15s" % ("alice", "handoff", "u:p@relay.test:587/starttls"), out)
        self.ok("smtpd", "disable", "bob")
        self.assertEqual(self.q("SELECT smtpd_user FROM smtpd"), [("alice",)])
        self.refused(3, "smtpd", "update", "alice", "store", message="unknown router")
        self.refused(2, "smtpd", "disable", "bob", message="No entry found")
        self.refused(2, "smtpd", "enable", "nobody", message="no such user")
        self.refused(5, "smtpd", "enable", "alice")
        self.refused(20, "smtpd", "bogus")
        r = self.admin(tool="smtpd")
        self.assertEqual(r.returncode, 10)  # no command: the smtpd tool's code
        self.assertIn("No command specified", r.stderr)

        self.ok("popd", "enable", "alice")
        self.q("SELECT 1")
        c = sqlite3.connect(self.db)
        c.execute("UPDATE popd SET pop_lock = 1")
        c.commit()
        c.close()
        out = self.ok("popd", "list").splitlines()
        self.assertEqual(out[2], "%20s | %5d" % ("alice", 1))
        self.ok("popd", "unlock", "alice")
        self.assertEqual(self.q("SELECT pop_lock FROM popd"), [(0,)])
        self.ok("popd", "disable", "alice")
        self.refused(2, "popd", "disable", "alice", message="POPD entry not found.")
        r = self.refused(20, "popd", "bogus")
        self.assertIn("Invalid or no arguments.", r.stdout)

        # imapd (schema 13): its own table, POP3 access is not IMAP access.
        self.ok("popd", "enable", "alice")
        self.assertEqual(self.q("SELECT COUNT(*) FROM imapd"), [(0,)])
        self.ok("imapd", "enable", "alice")
        self.ok("enable", "bob", tool="imapd")  # also under its own name, as the original tools
        self.assertEqual(self.q("SELECT imap_user FROM imapd ORDER BY imap_user"), [("alice",), ("bob",)])
        out = self.ok("imapd", "list").splitlines()
        self.assertEqual(out[0], "%20s" % "User")
        self.assertEqual(out[2:], ["%20s" % "alice", "%20s" % "bob"])
        self.assertEqual(self.ok("list", "b%", tool="imapd").splitlines()[2:], ["%20s" % "bob"])
        self.refused(5, "imapd", "enable", "alice")  # already enabled
        self.refused(2, "imapd", "enable", "nobody", message="no such user")
        self.ok("imapd", "disable", "bob")
        self.assertEqual(self.q("SELECT imap_user FROM imapd"), [("alice",)])
        self.refused(2, "imapd", "disable", "bob", message="IMAPD entry not found.")
        r = self.refused(20, "imapd", "unlock", "alice")  # IMAP has no maildrop lock
        self.assertIn("Invalid or no arguments.", r.stdout)
        self.refused(20, "imapd", "enable")
        self.ok("popd", "disable", "alice")
        self.assertEqual(self.q("SELECT imap_user FROM imapd"), [("alice",)])

        self.ok("permissions", "grant", "alice", "admin")
        self.ok("permissions", "grant", "alice", "delegate")
        self.ok("permissions", "grant", "bob", "delegate")
        self.assertEqual(len(self.ok("permissions", "rlist", "deleg%").splitlines()), 4)
        self.ok("permissions", "revoke", "alice", "admin")
        self.assertEqual(self.q("SELECT api_permission FROM api_access WHERE api_user = 'alice'"), [("delegate",)])
        self.ok("permissions", "revoke", "bob")  # all of them (the original did nothing)
        self.assertEqual(self.q("SELECT COUNT(*) FROM api_access WHERE api_user = 'bob'"), [(0,)])
        self.refused(2, "permissions", "revoke", "bob")
        self.ok("permissions", "delegate", "user", "alice", "bob")
        self.ok("permissions", "delegate", "address", "alice", "%@x.test")
        out = self.ok("permissions", "delegate")
        self.assertIn("Delegated users:", out)
        self.assertIn("Delegated address space:", out)
        self.assertIn("%@x.test", out)
        self.assertEqual(self.q("SELECT api_user, api_delegate FROM api_user_delegates"), [("alice", "bob")])
        self.ok("permissions", "delete", "user", "alice", "bob")
        self.ok("permissions", "delete", "expression", "alice", "%@x.test")
        self.assertEqual(self.q("SELECT COUNT(*) FROM api_address_delegates"), [(0,)])
        self.refused(5, "permissions", "grant", "alice", "delegate")
        self.refused(2, "permissions", "grant", "nobody", "admin")
        self.refused(20, "permissions", "grant", "alice")
        self.refused(120, "permissions", "delete", "group", "alice", "x")
        self.refused(20, "permissions", "bogus")

    def test_queue_commands(self):
        c = sqlite3.connect(self.db)
        c.execute("PRAGMA foreign_keys = ON")
        c.execute("INSERT INTO outbox (mail_envelopefrom, mail_envelopeto, mail_data, mail_queueid, mail_next_attempt) "
                  "VALUES ('a@x.test', 'far@remote.test', 'Subject: queued' || char(13) || char(10) || char(13) || char(10) || 'body', 'Q1', 4000000000)")
        c.execute("INSERT INTO outbox (mail_envelopefrom, mail_envelopeto, mail_remote, mail_data, mail_queueid, mail_next_attempt) "
                  "VALUES (NULL, 'b@remote.test', 'relay.test:25', 'x', 'Q2', 4000000000)")
        c.execute("INSERT INTO faillog (fail_mail, fail_message, fail_fatal) VALUES (1, '451 4.3.0 try later', 0)")
        c.commit()
        c.close()
        out = self.ok("queue", "list")
        self.assertIn("far@remote.test", out)
        self.assertIn("relay.test:25", out)
        self.assertIn("<>", out)  # the bounce's null sender
        out = self.ok("queue", "show", "1")
        self.assertIn("Attempt at", out)
        self.assertIn("451 4.3.0 try later", out)
        self.assertIn("Subject: queued", out)
        self.assertIn("1 entry due now", self.ok("queue", "retry", "1"))
        self.assertEqual(self.q("SELECT mail_next_attempt FROM outbox ORDER BY mail_id"), [(0,), (4000000000,)])
        self.assertIn("1 entry due now", self.ok("queue", "flush"))
        self.ok("queue", "delete", "1")
        self.assertEqual(self.q("SELECT COUNT(*) FROM outbox"), [(1,)])
        self.assertEqual(self.q("SELECT COUNT(*) FROM faillog"), [(0,)])
        self.refused(2, "queue", "delete", "1")
        self.refused(2, "queue", "show", "77")
        self.refused(2, "queue", "retry", "77")
        self.refused(3, "queue", "delete", "x1")
        self.refused(20, "queue", "bogus")

    # the database as a whole

    def test_missing_database(self):
        r = subprocess.run([ADMIN, "-d", os.path.join(self.tmp, "nope.db3"), "user", "list"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(len(r.stderr.splitlines()), 1)
        self.assertIn("nope.db3", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "nope.db3")))
        r = subprocess.run([os.path.join(BIN, "cmail-admin-smtpd"), "-d", os.path.join(self.tmp, "nope.db3"), "list"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 10)

    def test_not_a_cmail_database(self):
        other = os.path.join(self.tmp, "other.db")
        c = sqlite3.connect(other)
        c.execute("CREATE TABLE t (a)")
        c.commit()
        c.close()
        before = open(other, "rb").read()
        r = subprocess.run([ADMIN, "-d", other, "user", "add", "x", "y"], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 11)
        self.assertIn("not a cmail database", r.stderr)
        self.assertEqual(open(other, "rb").read(), before)

    def test_locked_database(self):
        self.ok("user", "add", "alice", "pw")
        holder = sqlite3.connect(self.db, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            before = self.q("SELECT * FROM users")
            r = self.admin("user", "add", "bob", "pw", env={"CMAIL_BUSY_TIMEOUT_MS": "300"})
            self.assertEqual(r.returncode, 6, r.stderr)
            self.assertIn("locked", r.stderr)
            self.assertEqual(len(r.stderr.splitlines()), 1)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        self.assertEqual(self.q("SELECT * FROM users"), before)
        self.ok("user", "add", "bob", "pw")  # and once released it works

    def test_read_only_database(self):
        # Tests run as root, which ignores permission bits: run the tool as nobody.
        setpriv = shutil.which("setpriv")
        if os.geteuid() != 0 or not setpriv:
            self.skipTest("needs root and setpriv to act as an unprivileged user")
        self.ok("user", "add", "alice", "pw")
        os.chmod(self.db, 0o444)
        for f in (self.db + "-wal", self.db + "-shm"):
            if os.path.exists(f):
                os.chmod(f, 0o666)
        before = self.dump()
        r = self.admin("user", "add", "bob", "pw", prefix=(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"))
        self.assertEqual(r.returncode, 7, r.stdout + r.stderr)
        self.assertIn("not writable", r.stderr)
        self.assertEqual(self.dump(), before)
        # Reading still works.
        r = self.admin("user", "list", prefix=(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("alice", r.stdout)

    # cmail's version-9 databases (docs/compatibility.md#admin-tools-older-schemas)

    def test_v9_database_upgrades_on_any_command(self):
        os.remove(self.db)
        c = sqlite3.connect(self.db)
        c.executescript(V9)
        c.execute("INSERT INTO users VALUES ('cbdev', 'piAFN50Roc:x', NULL, NULL)")
        c.execute("INSERT INTO addresses VALUES ('cb@bar.baz', 101, 'store', 'cbdev')")
        c.execute("INSERT INTO mailbox (mail_user, mail_envelopeto, mail_envelopefrom, mail_data) VALUES ('cbdev', 'a', 'b', 'hello')")
        c.commit()
        c.close()
        # A provisioning script written for cmail: the command works, after one line on stderr.
        r = self.admin("add", "alice", "pw", tool="user")
        backup = self.assert_upgraded(r, self.db, "add")
        self.assertEqual(r.stdout, "")
        b = sqlite3.connect(backup)
        self.assertEqual(b.execute("SELECT user_name FROM users").fetchall(), [("cbdev",)])  # before the command
        b.close()
        self.assertEqual(self.q("SELECT user_name FROM users ORDER BY rowid"), [("cbdev",), ("alice",)])
        self.assertEqual(self.q("SELECT mail_uid, mail_size FROM mailbox"), [(1, 5)])
        # From now on the file is current: silent, no second backup.
        out = self.ok("user", "list")
        self.assertIn("cbdev", out)
        self.assertIn("alice", out)
        self.assertIn("nothing to do", self.ok("migrate"))
        self.assertIn("ok", self.ok("check"))
        self.assertEqual(self.backups(self.db), [backup])

    def test_v9_database_with_migrate(self):
        os.remove(self.db)
        self.db = self.make_v9()
        r = self.admin("migrate")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        m = re.fullmatch(rf"upgraded {re.escape(self.db)} from schema version 9 to {CURRENT} \(backup: (\S+)\)\n", r.stdout)
        self.assertIsNotNone(m, r.stdout)
        self.assertEqual(self.backups(self.db), [m.group(1)])
        b = sqlite3.connect(m.group(1))
        self.assertEqual(b.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall(), [("9",)])
        b.close()
        self.assertEqual(self.ok("migrate"), f"{self.db} is at schema version {CURRENT}, nothing to do\n")
        self.assertEqual(self.ok("--no-upgrade", "migrate"), f"{self.db} is at schema version {CURRENT}, nothing to do\n")
        self.assertIn("cbdev", self.ok("user", "list"))

    def test_every_tool_name_upgrades_a_v9_file(self):
        # (tool name, a command that writes, what it wrote, a command that only reads, what it shows)
        cases = [
            (None, ("user", "add", "alice", "pw"), "SELECT COUNT(*) FROM users WHERE user_name = 'alice'",
             ("user", "list"), "cbdev"),
            ("user", ("add", "alice", "pw"), "SELECT COUNT(*) FROM users WHERE user_name = 'alice'", ("list",), "other"),
            ("address", ("add", "o@bar.baz", "store", "other"), "SELECT COUNT(*) FROM addresses WHERE address_route = 'other'",
             ("test", "cb@bar.baz"), "cb@bar.baz"),
            ("smtpd", ("enable", "other", "defined"), "SELECT COUNT(*) FROM smtpd WHERE smtpd_router = 'defined'",
             ("list",), "cbdev"),
            ("popd", ("enable", "other"), "SELECT COUNT(*) FROM popd WHERE pop_user = 'other'", ("list",), "cbdev"),
            ("imapd", ("enable", "other"), "SELECT COUNT(*) FROM imapd WHERE imap_user = 'other'", ("list",), "User"),
            ("permissions", ("grant", "other", "delegate"), "SELECT COUNT(*) FROM api_access WHERE api_user = 'other'",
             ("list",), "admin"),
            (None, ("queue", "delete", "1"), "SELECT COUNT(*) + 1 FROM outbox", ("queue", "list"), "far@remote.test"),
            (None, ("backup", "copy.db3"), "SELECT 1", ("check",), "ok: "),
        ]
        for i, (tool, write, effect, read, shown) in enumerate(cases):
            with self.subTest(tool=tool, command=write):
                path = self.make_v9(f"w{i}.db3")
                if write[0] == "backup":
                    write = ("backup", os.path.join(self.tmp, f"copy{i}.db3"))
                r = self.admin(*write, tool=tool, db=path)
                self.assert_upgraded(r, path, f"{tool} {write}")
                c = sqlite3.connect(path)
                self.assertEqual(c.execute(effect).fetchall(), [(1,)])
                c.close()
            with self.subTest(tool=tool, command=read):
                path = self.make_v9(f"r{i}.db3")
                r = self.admin(*read, tool=tool, db=path)
                self.assert_upgraded(r, path, f"{tool} {read}")
                self.assertIn(shown, r.stdout)
        # A user added under one name is listed under another, each on its own fresh v9 file.
        path = self.make_v9("again.db3")
        self.assert_upgraded(self.admin("add", "alice", "pw", tool="user", db=path), path, "add")
        r = self.admin("user", "list", db=path)
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        self.assertIn("alice", r.stdout)

    def test_no_upgrade_refuses_a_v9_file_untouched(self):
        path = self.make_v9("old.db3")
        for tool, args in [(None, ("--no-upgrade", "user", "list")), ("user", ("add", "alice", "pw", "--no-upgrade")),
                           ("address", ("--no-upgrade", "list")), ("smtpd", ("list", "--no-upgrade")),
                           ("popd", ("--no-upgrade", "enable", "cbdev")), ("permissions", ("--no-upgrade", "list")),
                           (None, ("queue", "list", "--no-upgrade")), (None, ("--no-upgrade", "check"))]:
            with self.subTest(tool=tool, args=args):
                r = self.assert_refused_untouched(11, path, *args, tool=tool, message="needs an upgrade")
                self.assertIn("run: cmail-admin migrate", r.stderr)
        # On a current database the flag changes nothing.
        self.ok("--no-upgrade", "user", "add", "alice", "pw")
        self.assertIn("alice", self.ok("user", "list", "--no-upgrade"))

    def test_newer_or_foreign_files_are_refused_untouched(self):
        newer = os.path.join(self.tmp, "newer.db3")
        shutil.copy(self.db, newer)
        c = sqlite3.connect(newer)
        c.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
        c.commit()
        c.execute("PRAGMA journal_mode = DELETE")  # one self-contained file to compare
        c.close()
        foreign = os.path.join(self.tmp, "other.sqlite")
        c = sqlite3.connect(foreign)
        c.execute("CREATE TABLE t (a)")
        c.commit()
        c.close()
        text = os.path.join(self.tmp, "notes.txt")
        with open(text, "w") as f:
            f.write("not a database, just a text file of more than sixteen bytes\n")
        for path, message in [(newer, "newer than this build"), (foreign, "not a cmail database"),
                              (text, "not an SQLite database")]:
            for tool, args in [("user", ("list",)), ("user", ("add", "alice", "pw")), (None, ("address", "list")),
                               (None, ("migrate",)), (None, ("check",)), ("popd", ("--no-upgrade", "list"))]:
                with self.subTest(path=os.path.basename(path), tool=tool, args=args):
                    self.assert_refused_untouched(11, path, *args, tool=tool, message=message)

    def test_v9_file_that_cannot_be_written(self):
        # Tests run as root, which ignores permission bits: run the tool as nobody.
        setpriv = shutil.which("setpriv")
        if os.geteuid() != 0 or not setpriv:
            self.skipTest("needs root and setpriv to act as an unprivileged user")
        path = self.make_v9("old.db3")
        os.chmod(path, 0o644)
        nobody = (setpriv, "--reuid=65534", "--regid=65534", "--clear-groups")
        before, files = file_bytes(path), sorted(os.listdir(self.tmp))
        for args in (("user", "list"), ("user", "add", "alice", "pw")):
            r = self.admin(*args, db=path, prefix=nobody)
            self.assertEqual(r.returncode, 7, r.stdout + r.stderr)
            self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
            self.assertIn("needs an upgrade from schema version 9", r.stderr)
            self.assertIn("not writable", r.stderr)
            self.assertIn("cmail-admin migrate", r.stderr)
            self.assertEqual(file_bytes(path), before)
            self.assertEqual(sorted(os.listdir(self.tmp)), files)
        # Its owner can: the command upgrades it.
        self.assert_upgraded(self.admin("user", "list", db=path), path, "list")

    def test_check_and_backup(self):
        self.ok("user", "add", "alice", "pw")
        self.assertTrue(self.ok("check").startswith("ok"))
        copy = os.path.join(self.tmp, "copy.db3")
        self.ok("backup", copy)
        c = sqlite3.connect(copy)
        self.assertEqual(c.execute("SELECT user_name FROM users").fetchall(), [("alice",)])
        c.close()
        self.refused(5, "backup", copy)  # never overwrites
        c = sqlite3.connect(self.db)
        c.execute("PRAGMA foreign_keys = OFF")
        c.execute("INSERT INTO popd (pop_user, pop_lock) VALUES ('ghost', 0)")
        c.commit()
        c.close()
        r = self.admin("check")
        self.assertEqual(r.returncode, 4)
        self.assertIn("foreign key", r.stdout)

    def test_concurrent_admin_processes(self):
        # Several cmail-admin processes writing at once: nothing is lost.
        procs = [subprocess.Popen([ADMIN, "-d", self.db, "address", "add", f"u{i}@x.test", "drop"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(12)]
        codes = [p.wait(timeout=60) for p in procs]
        self.assertEqual(codes, [0] * 12)
        self.assertEqual(self.q("SELECT COUNT(DISTINCT address_order), COUNT(*) FROM addresses"), [(12, 12)])

    def test_help_and_names(self):
        r = self.admin()
        self.assertEqual(r.returncode, 1)
        for tool in ("user", "address", "smtpd", "popd", "imapd", "permissions"):
            self.assertTrue(os.path.islink(os.path.join(BIN, "cmail-admin-" + tool)))
        r = self.admin("-h", tool="address")
        self.assertEqual(r.returncode, 1)
        self.assertIn("Usage", r.stdout)
        r = subprocess.run([ADMIN, "user", "list", "-d"], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn("needs an argument", r.stderr)
        # CMAIL_MASTER_DB is the default database.
        r = subprocess.run([ADMIN, "user", "list"], capture_output=True, text=True, timeout=30,
                           env=dict(os.environ, CMAIL_MASTER_DB=self.db))
        self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    harness.main()
