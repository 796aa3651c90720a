#!/usr/bin/python3
"""cmail-imapd and IMAP in `cmail serve` with real IMAP clients on loopback: Python's imaplib,
curl, isync's mbsync and offlineimap3 (two-way sync with a Maildir) and fetchmail in IMAP mode. Mail arrives through the real cmail-smtpd (or `cmail serve`'s SMTP listener), so the
whole path (SMTP in, store, IMAP STATUS out) is tested.

Usage: imapd_test.py BUILD_DIR

The daemons listen on ephemeral ports (port 0 in their configs, the bound ports read from
their stdout); every wait is bounded. Every test case gets its own copy of a template master
database and its own daemons, stopped (and checked for a clean exit) after the case whatever
its outcome.
"""
import imaplib
import os
import poplib
import random
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
from harness import copy_database, make_cert, read_ports, read_until_closed, recv_until, start_daemon, stop_daemon

BUILD = sys.argv.pop(1) if len(sys.argv) > 1 else "build"
SMTPD = os.path.join(BUILD, "frontends", "cmail-smtpd", "cmail-smtpd")
IMAPD = os.path.join(BUILD, "frontends", "cmail-imapd", "cmail-imapd")
POPD = os.path.join(BUILD, "frontends", "cmail-popd", "cmail-popd")
CMAIL = os.path.join(BUILD, "frontends", "cmail", "cmail")
ADMIN = os.path.join(BUILD, "frontends", "cmail-admin", "cmail-admin")

TLS = ssl.create_default_context()
TLS.check_hostname = False
TLS.verify_mode = ssl.CERT_NONE

STATUS_ITEMS = "(MESSAGES UNSEEN DELETED SIZE UIDNEXT UIDVALIDITY HIGHESTMODSEQ RECENT)"


class Template:
    """The master database every case starts from, and the certificate (made once per class)."""

    USERS = (("alice", "wonderland"), ("bob", "builder"), ("carol", "singer"), ("al", "aliaspw"))

    def __init__(self, tmp):
        self.db = os.path.join(tmp, "master.db3")
        self.admin("init")
        for user, pw in self.USERS:
            self.admin("user", "add", user, pw)
            self.admin("address", "add", f"{user}@local.test", "store", user)
        self.admin("user", "alias", "al", "alice")
        for user in ("alice", "bob"):
            self.admin("imapd", "enable", user)
        self.admin("popd", "enable", "carol")  # POP3 only: no IMAP
        self.admin("popd", "enable", "bob")  # IMAP and POP3 on one mailbox
        # 127.0.0.1 as a DNS name too: mbsync matches the host it was given against DNS names.
        self.cert, self.key = make_cert(tmp, "imap.local.test", san="DNS:imap.local.test,DNS:127.0.0.1,IP:127.0.0.1")

    def admin(self, *args):
        subprocess.run([ADMIN, "-d", self.db, *args], check=True, capture_output=True, timeout=30)


class Mail:
    """A master database, a cmail-smtpd that stores into it and a cmail-imapd that serves it."""

    def __init__(self, tmp, template):
        self.db = os.path.join(tmp, "master.db3")
        copy_database(template.db, self.db)
        smtpd_conf = os.path.join(tmp, "smtpd.conf")
        with open(smtpd_conf, "w") as f:
            f.write(f"database {self.db}\nauth_checks off\nbind 127.0.0.1 0 announce=mx.local.test\n")
        self.smtpd, ports = start_daemon(SMTPD, smtpd_conf, 1)
        self.smtp = ports["smtp"][0]
        tls = f"cert={template.cert} key={template.key}"
        conf = os.path.join(tmp, "imapd.conf")
        with open(conf, "w") as f:
            f.write(f"""# test configuration: STARTTLS, STARTTLS with tlsrequire, IMAPS, a 1 s idle timeout
verbosity 1
database {self.db}
bind 127.0.0.1 0 announce=imap.local.test {tls} ciphers=NORMAL
bind 127.0.0.1 0 announce=imap.local.test {tls} tlsrequire
bind 127.0.0.1 0 announce=imap.local.test {tls} tlsonly dhparams=/nonexistent/dh.pem
bind 127.0.0.1 0 announce=slow.local.test timeout=1 maxperip=2
""")
        try:
            self.imapd, ports = start_daemon(IMAPD, conf, 4)
        except Exception:
            stop_daemon(self.smtpd)
            raise
        self.imapd_result = None
        self.imap, self.required, self.slow = ports["imap"]
        self.imaps = ports["imaps"][0]

    def q(self, sql, *args):
        c = sqlite3.connect(self.db, timeout=30)
        try:
            return c.execute(sql, args).fetchall()
        finally:
            c.close()

    def send(self, to, body, subject="test"):
        with smtplib.SMTP("127.0.0.1", self.smtp, timeout=60) as s:
            s.ehlo("client.test")
            s.sendmail("sender@remote.test", [to], f"Subject: {subject}\r\nFrom: sender@remote.test\r\n\r\n{body}")

    def stop_imapd(self):
        """Stops cmail-imapd once: (exit code, stderr)."""
        if self.imapd_result is None:
            self.imapd_result = stop_daemon(self.imapd)
        return self.imapd_result

    def stop(self):
        return [self.stop_imapd(), stop_daemon(self.smtpd)]


def status_of(imap, mailbox="INBOX", items=STATUS_ITEMS):
    """STATUS as a dict {item: number}."""
    typ, dat = imap.status(mailbox, items)
    assert typ == "OK", (typ, dat)
    inside = re.search(rb"\((.*)\)", dat[0]).group(1).split()
    return {inside[i].decode(): int(inside[i + 1]) for i in range(0, len(inside), 2)}


def expected_status(m, user):
    """What STATUS INBOX must say, from the database."""
    (count, unseen, size), = m.q("SELECT COUNT(*), SUM(mail_read = 0), COALESCE(SUM(mail_size), 0) FROM mailbox "
                                 "WHERE mail_user = ?", user)
    (uidvalidity, uidnext, modseq), = m.q("SELECT folder_uidvalidity, folder_uidnext, folder_highestmodseq "
                                          "FROM folders WHERE folder_user = ? AND folder_name = 'INBOX'", user)
    return {"MESSAGES": count, "UNSEEN": unseen or 0, "DELETED": 0, "SIZE": size, "UIDNEXT": uidnext,
            "UIDVALIDITY": uidvalidity, "HIGHESTMODSEQ": modseq, "RECENT": 0}


def login_error(imap, user, password):
    """The text of a refused LOGIN."""
    try:
        imap.login(user, password)
    except imaplib.IMAP4.error as e:
        return str(e)
    raise AssertionError(f"LOGIN {user} was accepted")


class ImapdTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.template_dir = tempfile.mkdtemp(prefix="cmail-imapd-template-")
        cls.template = Template(cls.template_dir)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.template_dir, ignore_errors=True)

    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="cmail-imapd-test-")
        self.addCleanup(tmp.cleanup)
        self.m = Mail(tmp.name, self.template)
        self.addCleanup(self.stop_daemons)  # runs before tmp.cleanup, also after a failure

    def stop_daemons(self):
        (icode, ierr), (scode, serr) = self.m.stop()
        self.assertEqual(icode, 0, f"cmail-imapd exited {icode}: {ierr}")
        self.assertEqual(scode, 0, f"cmail-smtpd exited {scode}: {serr}")

    def test_capability_login_list_status_logout(self):
        for i in range(3):
            self.m.send("alice@local.test", f"message {i}\r\n", f"imap {i}")
        imap = imaplib.IMAP4("127.0.0.1", self.m.imap, timeout=30)
        self.assertIn(b"imap.local.test IMAP server ready", imap.welcome)
        for cap in ("IMAP4REV2", "IMAP4REV1", "STARTTLS", "AUTH=PLAIN", "AUTH=LOGIN", "LITERAL+", "ID"):
            self.assertIn(cap, imap.capabilities)
        self.assertNotIn("LOGINDISABLED", imap.capabilities)  # no tlsrequire on this listener
        self.assertIn("[AUTHENTICATIONFAILED]", login_error(imap, "alice", "wrong"))
        self.assertIn("[AUTHENTICATIONFAILED]", login_error(imap, "nobody", "x"))
        imap.logout()
        imap = imaplib.IMAP4("127.0.0.1", self.m.imap, timeout=30)
        # A right password without an imapd row (carol may use POP3 only).
        self.assertIn("[AUTHORIZATIONFAILED] IMAP access is not enabled for this account",
                      login_error(imap, "carol", "singer"))
        typ, dat = imap.login("alice", "wonderland")
        self.assertEqual(typ, "OK")
        self.assertIn(b"Logged in", dat[0])
        typ, dat = imap.capability()
        self.assertIn(b"STATUS=SIZE", dat[0])
        typ, dat = imap.list()
        self.assertEqual(typ, "OK")
        # INBOX, and the special-use folders a first log-in creates (RFC 6154).
        self.assertEqual(dat[0], b'(\\HasNoChildren) "/" INBOX')
        for name in ("Sent", "Drafts", "Trash", "Junk", "Archive"):
            self.assertIn(f'(\\HasNoChildren \\{name}) "/" {name}'.encode(), dat)
        st = status_of(imap)
        self.assertEqual(st["MESSAGES"], 3)
        self.assertEqual(st, expected_status(self.m, "alice"))
        self.assertEqual(st["UNSEEN"], 3)
        self.assertEqual(status_of(imap, "inbox", "(MESSAGES)"), {"MESSAGES": 3})  # INBOX in any case
        typ, dat = imap.status("Nowhere", "(MESSAGES)")
        self.assertEqual(typ, "NO")
        self.assertIn(b"[NONEXISTENT]", dat[0])
        typ, dat = imap.create("Archive")
        self.assertEqual(typ, "NO")
        self.assertIn(b"[ALREADYEXISTS]", dat[0])
        # Mail that arrives during the session is counted at the next STATUS.
        self.m.send("alice@local.test", "one more\r\n", "later")
        self.assertEqual(status_of(imap)["MESSAGES"], 4)
        typ, dat = imap.logout()
        self.assertEqual(typ, "BYE")
        self.assertEqual(self.m.q("SELECT COUNT(*) FROM mailbox WHERE mail_user = 'alice'"), [(4,)])  # nothing changed

    def test_select_fetch_store_search_copy_move_expunge_append(self):
        for i in range(3):
            self.m.send("alice@local.test", f"body {i}\r\n", f"subject {i}")
        imap = imaplib.IMAP4("127.0.0.1", self.m.imap, timeout=30)
        imap.login("alice", "wonderland")
        for cap in ("UIDPLUS", "MOVE", "IDLE", "UNSELECT", "CONDSTORE", "ESEARCH"):
            self.assertIn(cap, imap.capabilities if cap in imap.capabilities else imap.capability()[1][0].decode().split())
        self.assertEqual(imap.select("INBOX"), ("OK", [b"3"]))
        (uidvalidity,), = self.m.q("SELECT folder_uidvalidity FROM folders WHERE folder_user = 'alice' "
                                   "AND folder_name = 'INBOX'")
        self.assertEqual(imap.response("UIDVALIDITY")[1], [str(uidvalidity).encode()])
        typ, dat = imap.fetch("1:3", "(UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        self.assertEqual(typ, "OK")
        subjects = [part[1] for part in dat if isinstance(part, tuple)]
        self.assertEqual(subjects, [f"Subject: subject {i}\r\n\r\n".encode() for i in range(3)])
        self.assertEqual(self.m.q("SELECT COUNT(*) FROM mailbox WHERE mail_user = 'alice' AND mail_read = 1"), [(0,)])
        # BODY[] sends the stored octets, RFC822.SIZE counts them, and \Seen is set durably.
        typ, dat = imap.fetch("2", "(RFC822.SIZE BODY[])")
        size = int(re.search(rb"RFC822\.SIZE (\d+)", dat[0][0]).group(1))
        self.assertEqual(size, len(dat[0][1]))
        self.assertIn(b"body 1", dat[0][1])
        self.assertEqual(self.m.q("SELECT mail_read FROM mailbox WHERE mail_user = 'alice' AND mail_uid = 2"), [(1,)])
        typ, dat = imap.fetch("1", "(BODYSTRUCTURE ENVELOPE)")
        self.assertIn(b'BODYSTRUCTURE ("text" "plain"', dat[0])
        self.assertIn(b'"subject 0"', dat[0])
        self.assertEqual(imap.search(None, "UNSEEN"), ("OK", [b"1 3"]))
        self.assertEqual(imap.search(None, 'SUBJECT "subject 1"'), ("OK", [b"2"]))
        self.assertEqual(imap.uid("SEARCH", "BODY", '"body 2"'), ("OK", [b"3"]))
        typ, dat = imap.store("1", "+FLAGS", "(\\Flagged $Work)")
        self.assertEqual(typ, "OK")
        self.assertIn(b"\\Flagged $Work", dat[0])
        self.assertEqual(self.m.q("SELECT mail_flags & 4, mail_keywords FROM mailbox WHERE mail_user = 'alice' "
                                  "AND mail_uid = 1"), [(4, "$Work")])
        typ, dat = imap.copy("1:2", "Archive")
        self.assertEqual(typ, "OK")
        self.assertRegex(dat[0], rb"^\[COPYUID \d+ 1:2 1:2\]|^\[COPYUID \d+ 1,2 1,2\]")
        typ, dat = imap.uid("MOVE", "3", "Archive")
        self.assertEqual(typ, "OK")
        self.assertEqual(imap.response("EXPUNGE"), ("EXPUNGE", [b"3"]))  # RFC 6851 3.3
        def count(folder):
            return self.m.q("SELECT COUNT(*) FROM mailbox JOIN folders ON folder_id = mail_folder "
                            "WHERE mail_user = 'alice' AND folder_name = ?", folder)[0][0]
        self.assertEqual((count("INBOX"), count("Archive")), (2, 3))
        self.assertEqual(imap.copy("1", "Nowhere")[0], "NO")
        self.assertIn(b"[TRYCREATE]", imap.response("TRYCREATE")[1][0] or b"[TRYCREATE]")
        imap.store("1", "+FLAGS.SILENT", "(\\Deleted)")
        self.assertEqual(imap.expunge(), ("OK", [b"1"]))
        self.assertEqual(count("INBOX"), 1)
        # APPEND: into Drafts with a flag; the message comes back byte for byte.
        draft = b"Subject: draft\r\nFrom: alice@local.test\r\n\r\nwork in progress\r\n"
        typ, dat = imap.append("Drafts", "(\\Draft)", None, draft)
        self.assertEqual(typ, "OK")
        self.assertRegex(dat[0], rb"^\[APPENDUID \d+ 1\]")
        self.assertEqual(imap.append("Nowhere", None, None, draft)[0], "NO")
        self.assertEqual(imap.select("Drafts"), ("OK", [b"1"]))
        typ, dat = imap.fetch("1", "(FLAGS BODY.PEEK[])")
        self.assertIn(b"\\Draft", dat[0][0])
        self.assertEqual(dat[0][1], draft)
        # Folders: CREATE with parents, RENAME, DELETE, SUBSCRIBE.
        self.assertEqual(imap.create("Projects/2026")[0], "OK")
        self.assertEqual(imap.rename("Projects/2026", "Projects/2027")[0], "OK")
        typ, dat = imap.list('""', "Projects/*")
        self.assertEqual(dat, [b'(\\HasNoChildren) "/" Projects/2027'])
        self.assertEqual(imap.subscribe("Projects/2027")[0], "OK")
        self.assertIn(b'"/" Projects/2027', b" ".join(imap.lsub()[1]))
        self.assertEqual(imap.delete("Projects/2027")[0], "OK")
        self.assertEqual(imap.close()[0], "OK")
        self.assertEqual(imap.logout()[0], "BYE")

    def test_idle_sees_changes_made_by_other_processes(self):
        imap = imaplib.IMAP4("127.0.0.1", self.m.imap, timeout=30)
        imap.login("alice", "wonderland")
        self.assertEqual(imap.select("INBOX"), ("OK", [b"0"]))
        imap.send(b"i1 IDLE\r\n")
        self.assertEqual(imap.readline(), b"+ idling\r\n")
        for n in (1, 2):
            start = time.monotonic()
            self.m.send("alice@local.test", f"wake up {n}\r\n")  # through cmail-smtpd, another process
            sent = time.monotonic()
            imap.sock.settimeout(5)
            self.assertEqual(imap.readline(), f"* {n} EXISTS\r\n".encode())
            # RFC 2177: the new message is reported while idling, well within a second of the commit.
            self.assertLess(time.monotonic() - sent, 1.0, f"EXISTS {time.monotonic() - sent:.3f} s after the 250")
            self.assertLess(time.monotonic() - start, 5.0)
        # A flag change and an expunge by a session of another cmail-imapd process wake it too.
        conf = os.path.join(os.path.dirname(self.m.db), "second-imapd.conf")
        with open(conf, "w") as f:
            f.write(f"database {self.m.db}\nbind 127.0.0.1 0\n")
        second, ports = start_daemon(IMAPD, conf, 1, "nodrop")
        self.addCleanup(lambda: self.assertEqual(stop_daemon(second)[0], 0))
        other = imaplib.IMAP4("127.0.0.1", ports["imap"][0], timeout=30)
        other.login("alice", "wonderland")
        other.select("INBOX")
        other.store("1", "+FLAGS", "(\\Flagged)")
        self.assertEqual(imap.readline(), b"* 1 FETCH (UID 1 FLAGS (\\Flagged))\r\n")
        other.store("2", "+FLAGS.SILENT", "(\\Deleted)")
        other.expunge()
        lines = [imap.readline()]  # the \\Deleted flag may come first, or only the expunge
        if lines[0] != b"* 2 EXPUNGE\r\n":
            lines.append(imap.readline())
        self.assertEqual(lines[-1], b"* 2 EXPUNGE\r\n")
        other.logout()
        imap.send(b"DONE\r\n")
        line = imap.readline()
        while line.startswith(b"*"):
            line = imap.readline()
        self.assertEqual(line, b"i1 OK IDLE terminated\r\n")
        imap.sock.settimeout(30)
        self.assertEqual(imap.logout()[0], "BYE")

    def test_pop3_deletion_shows_as_expunge_in_idle(self):
        for i in (1, 2, 3):
            self.m.send("bob@local.test", f"body {i}\r\n", f"both {i}")
        imap = imaplib.IMAP4("127.0.0.1", self.m.imap, timeout=30)
        imap.login("bob", "builder")
        self.assertEqual(imap.select("INBOX"), ("OK", [b"3"]))
        imap.send(b"i1 IDLE\r\n")
        self.assertEqual(imap.readline(), b"+ idling\r\n")
        conf = os.path.join(os.path.dirname(self.m.db), "popd.conf")
        with open(conf, "w") as f:
            f.write(f"database {self.m.db}\nbind 127.0.0.1 0\n")
        popd, ports = start_daemon(POPD, conf, 1, "nodrop")
        self.addCleanup(lambda: self.assertEqual(stop_daemon(popd)[0], 0))
        pop = poplib.POP3("127.0.0.1", ports["pop3"][0], timeout=30)
        pop.user("bob")
        pop.pass_("builder")
        self.assertEqual(pop.stat()[0], 3)  # POP3 sees what IMAP sees
        self.assertTrue(pop.dele(2).startswith(b"+OK"))
        self.assertTrue(pop.quit().startswith(b"+OK"))  # RFC 1939 6: the deletion happens here
        imap.sock.settimeout(5)
        self.assertEqual(imap.readline(), b"* 2 EXPUNGE\r\n")  # within the IDLE, another process
        imap.send(b"DONE\r\n")
        self.assertEqual(imap.readline(), b"i1 OK IDLE terminated\r\n")
        imap.sock.settimeout(30)
        typ, dat = imap.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        subjects = [p[1].strip() for p in dat if isinstance(p, tuple)]
        self.assertEqual(subjects, [b"Subject: both 1", b"Subject: both 3"])  # nothing lost, nothing twice
        imap.logout()

    def test_kill_during_append_and_expunge_keeps_every_ok(self):
        """SIGKILL cmail-imapd during APPEND and EXPUNGE load: every OK'd change is there after."""
        seed = int(os.environ.get("CMAIL_TEST_SEED", random.randrange(1 << 30)))
        rng = random.Random(seed)
        appended, expunged, stop = [], [], threading.Event()

        def appender():
            try:
                c = imaplib.IMAP4("127.0.0.1", self.m.imap, timeout=30)
                c.login("alice", "wonderland")
                for k in range(100000):
                    if stop.is_set():
                        return
                    typ, dat = c.append("INBOX", None, None, f"Subject: load {k}\r\n\r\nbody {k}\r\n".encode())
                    if typ == "OK":  # [APPENDUID validity uid] (RFC 4315 3)
                        appended.append((int(re.search(rb"APPENDUID \d+ (\d+)", dat[0]).group(1)), k))
            except (OSError, imaplib.IMAP4.abort, imaplib.IMAP4.error):
                return  # the kill

        def expunger():
            try:
                c = imaplib.IMAP4("127.0.0.1", self.m.imap, timeout=30)
                c.login("alice", "wonderland")
                c.select("INBOX")
                while not stop.is_set():
                    candidates = [uid for uid, _ in appended[:-1] if uid % 3 == 0 and uid not in expunged]
                    if not candidates:
                        c.noop()
                        continue
                    uid = candidates[0]
                    c.uid("STORE", str(uid), "+FLAGS.SILENT", "(\\Deleted)")
                    typ, _ = c.uid("EXPUNGE", str(uid))  # UIDPLUS: only this one
                    if typ == "OK":
                        expunged.append(uid)
            except (OSError, imaplib.IMAP4.abort, imaplib.IMAP4.error):
                return

        threads = [threading.Thread(target=appender), threading.Thread(target=expunger)]
        for t in threads:
            t.start()
        delay = rng.uniform(0.5, 1.5)
        time.sleep(delay)  # the kill moment is the point: random, from the printed seed
        self.m.imapd.send_signal(signal.SIGKILL)
        self.m.imapd.wait(timeout=10)
        stop.set()
        for t in threads:
            t.join(30)
        self.m.imapd_result = stop_daemon(self.m.imapd)
        self.assertEqual(self.m.imapd_result[0], -signal.SIGKILL)
        self.m.imapd_result = (0, "")  # killed on purpose: the cleanup checks the restarted one
        msg = f"seed {seed} (CMAIL_TEST_SEED={seed}), killed after {delay:.3f} s"
        self.assertGreater(len(appended), 0, msg)
        self.assertGreater(len(expunged), 0, msg)
        self.assertEqual(self.m.q("PRAGMA integrity_check"), [("ok",)], msg)
        conf = os.path.join(os.path.dirname(self.m.db), "imapd.conf")
        again, ports = start_daemon(IMAPD, conf, 4)
        self.addCleanup(lambda: self.assertEqual(stop_daemon(again)[0], 0))
        c = imaplib.IMAP4("127.0.0.1", ports["imap"][0], timeout=30)
        c.login("alice", "wonderland")
        c.select("INBOX")
        typ, dat = c.uid("SEARCH", "ALL")
        present = {int(x) for x in dat[0].split()}
        for uid, k in appended:
            if uid in expunged:
                self.assertNotIn(uid, present, msg)
                continue
            self.assertIn(uid, present, f"APPEND {k} (UID {uid}) was OK'd and is gone; {msg}")
            typ, dat = c.uid("FETCH", str(uid), "(BODY.PEEK[TEXT])")
            self.assertEqual(dat[0][1], f"body {k}\r\n".encode(), msg)
        c.logout()

    def test_mbsync_two_way_sync_with_flags_and_deletions(self):
        """isync's mbsync over IMAPS against a local Maildir: mail, flags and deletions both ways."""
        for i in range(3):
            self.m.send("alice@local.test", f"sync body {i}\r\n", f"sync {i}")
        work = tempfile.mkdtemp(prefix="cmail-mbsync-")
        self.addCleanup(shutil.rmtree, work, True)
        maildir = os.path.join(work, "mail")
        os.makedirs(maildir)
        conf = os.path.join(work, "mbsyncrc")
        with open(conf, "w") as f:
            f.write(f"""IMAPAccount cmail
Host 127.0.0.1
Port {self.m.imaps}
User alice
Pass wonderland
SSLType IMAPS
CertificateFile {self.template.cert}
SystemCertificates no

IMAPStore remote
Account cmail

MaildirStore local
Path {maildir}/
Inbox {maildir}/INBOX
SubFolders Verbatim

Channel sync
Far :remote:
Near :local:
Patterns INBOX Archive
Create Both
Expunge Both
SyncState *
Sync All
""")

        def mbsync():
            r = subprocess.run(["mbsync", "-c", conf, "-a"], capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

        def local(folder="INBOX"):
            files = []
            for sub in ("cur", "new"):
                d = os.path.join(maildir, folder, sub)
                files += [os.path.join(d, n) for n in sorted(os.listdir(d))] if os.path.isdir(d) else []
            return files

        mbsync()
        files = local()
        self.assertEqual(len(files), 3)
        def body(path):  # mbsync stores Maildir files with LF line ends
            with open(path, "rb") as f:
                return f.read().replace(b"\r\n", b"\n").split(b"\n\n", 1)[1]
        self.assertEqual(sorted(body(p) for p in files), [f"sync body {i}\n".encode() for i in range(3)])
        # Locally: one message read and flagged, one deleted; remotely: a new message.
        by_body = {body(p): p for p in files}
        seen = by_body[b"sync body 0\n"]
        os.rename(seen, os.path.join(maildir, "INBOX", "cur", os.path.basename(seen).split(":")[0] + ":2,FS"))
        os.unlink(by_body[b"sync body 1\n"])
        self.m.send("alice@local.test", "from the server\r\n", "later")
        mbsync()
        rows = self.m.q("SELECT mail_uid, mail_flags FROM mailbox JOIN folders ON folder_id = mail_folder "
                        "WHERE mail_user = 'alice' AND folder_name = 'INBOX' ORDER BY mail_uid")
        self.assertEqual([r[0] for r in rows], [1, 3, 4])  # the local deletion was expunged on the server
        self.assertEqual(rows[0][1] & 5, 5, rows)  # \\Seen and \\Flagged of "sync body 0" arrived
        self.assertEqual(len(local()), 3)
        # A flag set and a message expunged on the server reach the Maildir.
        imap = imaplib.IMAP4_SSL("127.0.0.1", self.m.imaps, ssl_context=TLS, timeout=30)
        imap.login("alice", "wonderland")
        imap.select("INBOX")
        self.assertEqual(imap.uid("SEARCH", "BODY", '"sync body 2"')[1], [b"3"])
        imap.uid("STORE", "3", "+FLAGS", "(\\Answered)")
        imap.uid("STORE", "4", "+FLAGS", "(\\Deleted)")
        imap.expunge()
        imap.logout()
        mbsync()
        names = [os.path.basename(p) for p in local()]
        self.assertEqual(len(names), 2, names)
        self.assertTrue(any(":2," in n and "R" in n.split(":2,")[1] for n in names), names)

    def test_offlineimap_sync_with_flags_and_deletions(self):
        """offlineimap3 against a local Maildir: mail down, a local \\Seen and a local deletion up."""
        for i in range(3):
            self.m.send("alice@local.test", f"offline body {i}\r\n", f"offline {i}")
        work = tempfile.mkdtemp(prefix="cmail-offlineimap-")
        self.addCleanup(shutil.rmtree, work, True)
        maildir = os.path.join(work, "mail")
        rc = os.path.join(work, "offlineimaprc")
        with open(rc, "w") as f:
            f.write(f"""[general]
accounts = cmail
metadata = {work}/meta
ui = quiet

[Account cmail]
localrepository = local
remoterepository = remote

[Repository local]
type = Maildir
localfolders = {maildir}

[Repository remote]
type = IMAP
remotehost = 127.0.0.1
remoteport = {self.m.imap}
remoteuser = alice
remotepass = wonderland
ssl = no
starttls = no
folderfilter = lambda name: name == 'INBOX'
""")

        def offlineimap():
            r = subprocess.run(["offlineimap", "-c", rc, "-o", "-u", "quiet"], capture_output=True, text=True,
                               timeout=120, env=dict(os.environ, HOME=work))
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

        def files():
            out = []
            for sub in ("cur", "new"):
                d = os.path.join(maildir, "INBOX", sub)
                out += [os.path.join(d, n) for n in sorted(os.listdir(d))] if os.path.isdir(d) else []
            return out

        offlineimap()
        self.assertEqual(len(files()), 3)
        by_body = {}
        for p in files():
            with open(p, "rb") as f:
                by_body[f.read().replace(b"\r\n", b"\n").split(b"\n\n", 1)[1]] = p
        first = by_body[b"offline body 0\n"]
        base = os.path.basename(first).split(":2,")[0]
        os.rename(first, os.path.join(maildir, "INBOX", "cur", base + ":2,S"))
        os.unlink(by_body[b"offline body 1\n"])
        offlineimap()
        rows = self.m.q("SELECT mail_uid, mail_flags FROM mailbox WHERE mail_user = 'alice' ORDER BY mail_uid")
        self.assertEqual([r[0] for r in rows], [1, 3], rows)  # the local deletion expunged on the server
        self.assertEqual(rows[0][1] & 1, 1, rows)  # \\Seen arrived

    def test_fetchmail_imap_fetches_and_deletes(self):
        """fetchmail in IMAP mode over STARTTLS (tlsrequire): every message fetched, then expunged."""
        import getpass
        for i in range(3):
            self.m.send("bob@local.test", f"imap fetch body {i}\r\n", f"imap fetch {i}")
        home = tempfile.mkdtemp(prefix="cmail-fetchmail-")
        self.addCleanup(shutil.rmtree, home, True)
        mbox = os.path.join(home, "mbox")
        rc = os.path.join(home, "fetchmailrc")
        with open(rc, "w") as f:
            f.write(f"""set no syslog
poll 127.0.0.1 service {self.m.required} proto IMAP auth password timeout 30
  user "bob" there with password "builder" is "{getpass.getuser()}" here
  options no sslcertck sslproto "TLS1.2+" fetchall nokeep
  mda "/bin/sh -c 'cat >> {mbox}'"
""")
        os.chmod(rc, 0o600)
        env = dict(os.environ, FETCHMAILHOME=home, HOME=home)
        r = subprocess.run(["fetchmail", "-f", rc, "-N", "-v"], capture_output=True, text=True, timeout=120, env=env)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("STARTTLS", r.stdout + r.stderr)  # tlsrequire: fetchmail had to use TLS
        with open(mbox, "rb") as f:
            got = f.read().replace(b"\r\n", b"\n")
        for i in range(3):
            self.assertIn(f"Subject: imap fetch {i}\n".encode(), got)
            self.assertIn(f"\nimap fetch body {i}\n".encode(), got)
        self.assertEqual(self.m.q("SELECT COUNT(*) FROM mailbox WHERE mail_user = 'bob'"), [(0,)])

    def test_starttls_and_tlsrequire(self):
        imap = imaplib.IMAP4("127.0.0.1", self.m.required, timeout=30)
        self.assertIn("LOGINDISABLED", imap.capabilities)  # RFC 9051 6.2.3
        self.assertIn("STARTTLS", imap.capabilities)
        self.assertFalse([c for c in imap.capabilities if c.startswith("AUTH=")])
        self.assertIn("[PRIVACYREQUIRED]", login_error(imap, "bob", "builder"))
        typ, _ = imap.starttls(ssl_context=TLS)
        self.assertEqual(typ, "OK")
        self.assertNotIn("LOGINDISABLED", imap.capabilities)
        self.assertNotIn("STARTTLS", imap.capabilities)
        self.assertIn("AUTH=PLAIN", imap.capabilities)
        self.assertEqual(imap.login("bob", "builder")[0], "OK")
        self.assertEqual(status_of(imap, items="(MESSAGES UIDNEXT)"), {"MESSAGES": 0, "UIDNEXT": 1})
        imap.logout()
        # STARTTLS on the listener without tlsrequire, then LOGIN.
        self.m.send("bob@local.test", "over tls\r\n")
        imap = imaplib.IMAP4("127.0.0.1", self.m.imap, timeout=30)
        imap.starttls(ssl_context=TLS)
        self.assertEqual(imap.login("bob", "builder")[0], "OK")
        self.assertEqual(status_of(imap), expected_status(self.m, "bob"))
        imap.logout()

    def test_starttls_command_injection(self):
        s = socket.create_connection(("127.0.0.1", self.m.imap), timeout=10)
        recv_until(s, b"\r\n")
        s.sendall(b"a1 STARTTLS\r\na2 LOGIN bob builder\r\n")  # injected into the TLS handshake
        got, closed = read_until_closed(s, timeout=10)  # the "handshake" fails: the connection ends
        self.assertTrue(closed)
        self.assertIn(b"a1 OK", got)
        self.assertNotIn(b"a2 ", got)  # never answered
        s.close()

    def test_imaps_with_the_self_signed_certificate(self):
        self.m.send("alice@local.test", "for the alias\r\n")
        verified = ssl.create_default_context(cafile=self.template.cert)  # verifies the chain, not the name
        verified.check_hostname = False
        imap = imaplib.IMAP4_SSL("127.0.0.1", self.m.imaps, ssl_context=verified, timeout=30)
        self.assertIn(b"imap.local.test IMAP server ready", imap.welcome)
        self.assertNotIn("STARTTLS", imap.capabilities)  # already inside TLS
        self.assertIn("AUTH=PLAIN", imap.capabilities)
        self.assertEqual(imap.login("al", "aliaspw")[0], "OK")  # an alias logs in as its target
        self.assertEqual(status_of(imap), expected_status(self.m, "alice"))
        self.assertEqual(status_of(imap)["MESSAGES"], 1)
        imap.logout()

    def test_authenticate_plain_and_three_failures(self):
        imap = imaplib.IMAP4_SSL("127.0.0.1", self.m.imaps, ssl_context=TLS, timeout=30)
        typ, _ = imap.authenticate("PLAIN", lambda _: b"\0bob\0builder")
        self.assertEqual(typ, "OK")
        imap.logout()
        imap = imaplib.IMAP4_SSL("127.0.0.1", self.m.imaps, ssl_context=TLS, timeout=30)
        for _ in range(2):
            self.assertIn("[AUTHENTICATIONFAILED]", login_error(imap, "bob", "wrong"))
        # The third failure ends the connection (BYE, then close).
        imap.send(b"a3 LOGIN bob wrong\r\n")
        rest, closed = read_until_closed(imap.sock, timeout=10)
        self.assertTrue(closed)
        self.assertIn(b"* BYE", rest)
        imap.shutdown()

    def test_log_lines(self):
        imap = imaplib.IMAP4_SSL("127.0.0.1", self.m.imaps, ssl_context=TLS, timeout=30)
        login_error(imap, "carol", "singer")
        login_error(imap, "bob", "wrong")
        self.assertEqual(imap.login("al", "aliaspw")[0], "OK")
        imap.logout()
        code, err = self.m.stop_imapd()
        self.assertEqual(code, 0, err)
        lines = err.splitlines()

        def logged(*parts):
            return [l for l in lines if all(p in l for p in parts)]
        self.assertEqual(len(logged("login denied proto=imap addr=127.0.0.1 user=carol reason=imap-not-enabled")), 1, err)
        self.assertEqual(len(logged("auth failed proto=imap addr=127.0.0.1 user=bob reason=bad-credentials")), 1, err)
        self.assertEqual(len(logged("auth ok proto=imap addr=127.0.0.1 user=al identity=alice")), 1, err)
        self.assertEqual(len(logged(" connect proto=imap listener=imaps addr=127.0.0.1")), 1, err)
        self.assertEqual(len(logged("disconnect proto=imap listener=imaps", "tls=yes user=alice")), 1, err)
        self.assertFalse(logged("aliaspw") or logged("singer"), err)  # never a password

    def test_idle_timeout_and_trickled_command(self):
        s = socket.create_connection(("127.0.0.1", self.m.slow), timeout=10)
        self.assertIn(b"slow.local.test IMAP server ready", recv_until(s, b"\r\n"))
        start = time.time()
        rest, closed = read_until_closed(s, timeout=10)
        self.assertTrue(closed)
        self.assertIn(b"* BYE", rest)  # RFC 9051 5.4: autologout
        self.assertLess(time.time() - start, 8)
        s.close()
        # A byte before every timeout still does not keep a command open past its deadline.
        s = socket.create_connection(("127.0.0.1", self.m.slow), timeout=10)
        recv_until(s, b"\r\n")
        start, closed = time.time(), False
        for ch in b"a1 NOOP and more and more":
            try:
                s.sendall(bytes([ch]))
            except OSError:
                closed = True
                break
            got, closed = read_until_closed(s, timeout=0.4)
            if closed:
                break
        self.assertTrue(closed)
        self.assertLess(time.time() - start, 8)
        s.close()

    def test_connections_per_address(self):
        first = socket.create_connection(("127.0.0.1", self.m.slow), timeout=10)
        second = socket.create_connection(("127.0.0.1", self.m.slow), timeout=10)
        self.assertIn(b"IMAP server ready", recv_until(first, b"\r\n"))
        self.assertIn(b"IMAP server ready", recv_until(second, b"\r\n"))
        third = socket.create_connection(("127.0.0.1", self.m.slow), timeout=10)
        got, closed = read_until_closed(third, timeout=5)  # maxperip=2: refused
        self.assertTrue(closed)
        self.assertNotIn(b"IMAP server ready", got)
        for s in (first, second, third):
            s.close()

    def test_sessions_per_user(self):
        conf = os.path.join(os.path.dirname(self.m.db), "peruser-imapd.conf")
        with open(conf, "w") as f:
            f.write(f"database {self.m.db}\nmaxperuser 2\nbind 127.0.0.1 0\nbind 127.0.0.1 0\n")
        imapd, ports = start_daemon(IMAPD, conf, 2, "nodrop")
        self.addCleanup(lambda: self.assertEqual(stop_daemon(imapd)[0], 0))
        first, second = ports["imap"]
        a = imaplib.IMAP4("127.0.0.1", first, timeout=30)
        a.login("alice", "wonderland")
        b = imaplib.IMAP4("127.0.0.1", second, timeout=30)  # the limit spans the listeners
        b.login("al", "aliaspw")  # an alias counts as its target
        c = imaplib.IMAP4("127.0.0.1", first, timeout=30)
        self.assertIn("[LIMIT]", login_error(c, "alice", "wonderland"))  # RFC 5530 3
        bob = imaplib.IMAP4("127.0.0.1", first, timeout=30)
        self.assertEqual(bob.login("bob", "builder")[0], "OK")  # another user's places
        a.logout()
        deadline = time.monotonic() + 5  # the place comes back when the session has ended
        while True:
            try:
                self.assertEqual(c.login("alice", "wonderland")[0], "OK")
                break
            except imaplib.IMAP4.error:
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.05)
        for k in (b, c, bob):
            k.logout()

    def test_curl_capability_and_list(self):
        base = ["curl", "-sS", "--max-time", "30", "-k", "--user", "alice:wonderland"]
        r = subprocess.run(base + ["--ssl-reqd", f"imap://127.0.0.1:{self.m.required}/"], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.strip().splitlines()
        self.assertEqual(lines[0], '* LIST (\\HasNoChildren) "/" INBOX')
        self.assertIn('* LIST (\\HasNoChildren \\Sent) "/" Sent', lines)
        r = subprocess.run(base + [f"imaps://127.0.0.1:{self.m.imaps}/"], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("INBOX", r.stdout)
        r = subprocess.run(base + ["-X", "CAPABILITY", f"imaps://127.0.0.1:{self.m.imaps}/"], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("* CAPABILITY IMAP4rev2 IMAP4rev1", r.stdout)
        self.assertIn("STATUS=SIZE", r.stdout)  # asked after the log-in
        # A right password without the row: curl fails the log-in.
        r = subprocess.run(["curl", "-sS", "--max-time", "30", "-k", "--user", "carol:singer",
                            f"imaps://127.0.0.1:{self.m.imaps}/"], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 67, r.stderr)  # CURLE_LOGIN_DENIED


class ConfigAndServeTest(unittest.TestCase):
    def test_bad_config_line_names_file_and_line(self):
        with tempfile.TemporaryDirectory() as tmp:
            conf = os.path.join(tmp, "bad.conf")
            with open(conf, "w") as f:
                f.write("database /nonexistent\nbind 127.0.0.1 0 size=5\n")
            r = subprocess.run([IMAPD, conf, "nodetach"], capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 1)
            self.assertIn(f"{conf}:2: unknown bind option 'size=5'", r.stderr)
            with open(conf, "w") as f:
                f.write("database /nonexistent\nbind 127.0.0.1 0 tlsrequire\n")
            r = subprocess.run([IMAPD, conf, "nodetach"], capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 1)
            self.assertIn(f"{conf}:2: tlsrequire needs cert= and key=", r.stderr)
            r = subprocess.run([IMAPD], capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 1)
            self.assertIn("Provide IMAP access to mailboxes", r.stdout)

    def test_cmail_serve_with_config_files(self):
        with tempfile.TemporaryDirectory() as tmp:
            db = os.path.join(tmp, "master.db3")
            subprocess.run([ADMIN, "-d", db, "init"], check=True, capture_output=True, timeout=30)
            for args in (["user", "add", "dora", "explorer"], ["imapd", "enable", "dora"]):
                subprocess.run([ADMIN, "-d", db, *args], check=True, capture_output=True, timeout=30)
            smtpd_conf, imapd_conf = os.path.join(tmp, "smtpd.conf"), os.path.join(tmp, "imapd.conf")
            with open(smtpd_conf, "w") as f:
                f.write(f"database {db}\nauth_checks off\nbind 127.0.0.1 0\n")
            with open(imapd_conf, "w") as f:
                f.write(f"database {db}\nbind 127.0.0.1 0 announce=files.local.test\n")
            # Without --imapd-config, --config runs no IMAP; with it, the file's listeners.
            p = subprocess.Popen([CMAIL, "serve", "--config", smtpd_conf, "--imapd-config", imapd_conf],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                ports = read_ports(p, 2)
                self.assertEqual(sorted(ports), ["imap", "smtp"])
                imap = imaplib.IMAP4("127.0.0.1", ports["imap"][0], timeout=30)
                self.assertIn(b"files.local.test IMAP server ready", imap.welcome)
                self.assertEqual(imap.login("dora", "explorer")[0], "OK")
                imap.logout()
                p.send_signal(signal.SIGTERM)
                self.assertEqual(p.wait(timeout=15), 0)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
                p.stdout.close()
                p.stderr.close()
            with open(imapd_conf, "w") as f:
                f.write(f"database {os.path.join(tmp, 'other.db3')}\nbind 127.0.0.1 0\n")
            r = subprocess.run([CMAIL, "serve", "--config", smtpd_conf, "--imapd-config", imapd_conf],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 1)
            self.assertIn(f"{imapd_conf} names database", r.stderr)

    def test_cmail_serve_zero_config_imap(self):
        with tempfile.TemporaryDirectory() as tmp:
            data = os.path.join(tmp, "data")
            p = subprocess.Popen([CMAIL, "serve", "--data", data, "--smtp-port", "0", "--submission-port", "0",
                                  "--smtps-port", "0", "--pop3-port", "0", "--pop3s-port", "0", "--imap-port", "0",
                                  "--imaps-port", "0", "--no-auth-checks"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                ports = read_ports(p, 7)
                self.assertEqual(sorted(ports), ["imap", "imaps", "pop3", "pop3s", "smtp", "smtps", "submission"])
                self.assertTrue(all(port != 0 for v in ports.values() for port in v), ports)
                rest = p.stdout.readline()
                self.assertTrue(rest.startswith("database "), rest)
                self.assertIn("imapd enable alice", p.stdout.readline())  # how to add a user
                db = os.path.join(data, "master.db3")
                for args in (["user", "add", "carol", "pw"], ["address", "add", "carol@localhost", "store", "carol"],
                             ["imapd", "enable", "carol"]):
                    subprocess.run([ADMIN, "-d", db, *args], check=True, capture_output=True, timeout=30)
                with smtplib.SMTP("127.0.0.1", ports["smtp"][0], timeout=10) as s:
                    s.sendmail("x@remote.test", ["carol@localhost"], "Subject: serve\r\n\r\nzero config\r\n")
                imap = imaplib.IMAP4("127.0.0.1", ports["imap"][0], timeout=30)
                self.assertIn("LOGINDISABLED", imap.capabilities)  # passwords only inside TLS
                imap.starttls(ssl_context=TLS)
                self.assertEqual(imap.login("carol", "pw")[0], "OK")
                self.assertEqual(status_of(imap, items="(MESSAGES UNSEEN)"), {"MESSAGES": 1, "UNSEEN": 1})
                imap.logout()
                imap = imaplib.IMAP4_SSL("127.0.0.1", ports["imaps"][0], ssl_context=TLS, timeout=30)
                self.assertEqual(imap.login("carol", "pw")[0], "OK")
                typ, dat = imap.list()
                self.assertEqual((typ, dat[0]), ("OK", b'(\\HasNoChildren) "/" INBOX'))
                self.assertIn(b'(\\HasNoChildren \\Trash) "/" Trash', dat)
                imap.logout()
                r = subprocess.run(["curl", "-sS", "--max-time", "30", "-k", "--ssl-reqd", "--user", "carol:pw",
                                    f"imap://127.0.0.1:{ports['imap'][0]}/"], capture_output=True, text=True, timeout=60)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn("INBOX", r.stdout)
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
