#!/usr/bin/python3
"""IMAP side by side: cmail-imapd and Dovecot on loopback, the same client (Python's imaplib),
the same messages, in one run. Not a test: run on demand, record the figures in
docs/performance.md.

Usage (as root or a normal user; Debian's dovecot-imapd installed):
    tests/bench/imap_bench.py BUILD_DIR [MESSAGES] [CLIENTS]

For each server, with MESSAGES messages of about 4 KiB (default 2000) and CLIENTS parallel
clients (default 8), it measures:
  append      APPEND of every message over one connection (each durable before its OK), msg/s
  flags       SELECT INBOX, then FETCH 1:* (UID FLAGS RFC822.SIZE), seconds
  headers     FETCH 1:* (BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE)]), seconds
  bodies      FETCH 1:* BODY.PEEK[] over one connection, MB/s
  search      SEARCH BODY "<a word in one message>", seconds
  parallel    CLIENTS connections at once, each FETCH 1:* BODY.PEEK[], MB/s in all
  store       STORE 1:* +FLAGS.SILENT (\\Seen) then -FLAGS.SILENT (\\Seen), seconds
State lives in a temporary directory removed at the end; both servers listen on 127.0.0.1.
"""
import getpass
import grp
import imaplib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
N = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
CLIENTS = int(sys.argv[3]) if len(sys.argv) > 3 else 8
IMAPD = os.path.join(BUILD, "frontends", "cmail-imapd", "cmail-imapd")
ADMIN = os.path.join(BUILD, "frontends", "cmail-admin", "cmail-admin")
DOVECOT = "/usr/sbin/dovecot"


def message(i):
    words = " ".join(f"word{(i * 7 + k) % 997}" for k in range(600))
    body = "\r\n".join(words[j:j + 72] for j in range(0, len(words), 72))
    return (f"From: Sender {i} <sender{i}@example.org>\r\nTo: test@local.test\r\nSubject: bench message {i}\r\n"
            f"Date: Thu, 03 Dec 2026 07:00:00 +0000\r\nMessage-ID: <{i}@bench>\r\n\r\n"
            f"needle{i}\r\n{body}\r\n").encode()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, proc, what):
    deadline = time.monotonic() + 15
    while True:
        if proc.poll() is not None:
            raise RuntimeError(what + " exited")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(what + " did not listen")
            time.sleep(0.05)


def start_cmail(root):
    db = os.path.join(root, "master.db3")
    for args in (["init"], ["user", "add", "test", "pw"], ["imapd", "enable", "test"]):
        subprocess.run([ADMIN, "-d", db, *args], check=True, capture_output=True, timeout=60)
    port = free_port()
    conf = os.path.join(root, "imapd.conf")
    with open(conf, "w") as f:
        f.write(f"database {db}\nbind 127.0.0.1 {port}\n")
    proc = subprocess.Popen([IMAPD, conf, "nodrop", "nodetach"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_listening(port, proc, "cmail-imapd")
    return proc, port


def start_dovecot(root):
    port = free_port()
    user = getpass.getuser()
    if os.getuid() == 0:  # Dovecot will not run its login and mail processes as root
        login_user, mail = "dovenull", pwd.getpwnam("dovecot")
        uid, gid = mail.pw_uid, mail.pw_gid
    else:
        login_user, uid, gid = user, os.getuid(), os.getgid()
    maildir = os.path.join(root, "Maildir")
    os.makedirs(maildir)
    with open(os.path.join(root, "passwd"), "w") as f:
        f.write("test:{PLAIN}pw:%d:%d::%s\n" % (uid, gid, root))
    conf = os.path.join(root, "dovecot.conf")
    with open(conf, "w") as f:
        f.write(f"""base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
default_internal_user = {user}
default_internal_group = {grp.getgrgid(os.getgid()).gr_name}
default_login_user = {login_user}
first_valid_uid = 1
mail_location = maildir:{maildir}
passdb {{
  driver = passwd-file
  args = {root}/passwd
}}
userdb {{
  driver = passwd-file
  args = {root}/passwd
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
""")
    os.chmod(root, 0o755)
    os.chown(maildir, uid, gid)
    proc = subprocess.Popen([DOVECOT, "-F", "-c", conf], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_listening(port, proc, "dovecot")
    return proc, port


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def connect(port):
    im = imaplib.IMAP4("127.0.0.1", port, timeout=120)
    im.login("test", "pw")
    return im


def timed(fn):
    start = time.monotonic()
    fn()
    return time.monotonic() - start


def run(port, messages):
    total = sum(len(m) for m in messages)
    out = {}
    im = connect(port)
    def append_all():
        for m in messages:
            typ, dat = im.append("INBOX", None, None, m)
            assert typ == "OK", (typ, dat)
    t = timed(append_all)
    out["append"] = f"{len(messages) / t:8.0f} msg/s"
    def select_and_flags():
        typ, dat = im.select("INBOX")
        assert typ == "OK" and int(dat[0]) == len(messages), (typ, dat)
        im.fetch("1:*", "(UID FLAGS RFC822.SIZE)")
    t = timed(select_and_flags)
    out["flags"] = f"{t:8.3f} s"
    t = timed(lambda: im.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE)])"))
    out["headers"] = f"{t:8.3f} s"
    got = []
    t = timed(lambda: got.append(im.fetch("1:*", "BODY.PEEK[]")))
    fetched = sum(len(p[1]) for p in got[0][1] if isinstance(p, tuple))
    assert fetched >= total * 0.99, (fetched, total)
    out["bodies"] = f"{fetched / t / 1e6:8.1f} MB/s"
    target = len(messages) // 2
    found = []
    t = timed(lambda: found.append(im.search(None, "BODY", f"needle{target}")))
    assert found[0][1][0].split() == [str(target + 1).encode()], found
    out["search"] = f"{t:8.3f} s"
    t = timed(lambda: (im.store("1:*", "+FLAGS.SILENT", "(\\Seen)"), im.store("1:*", "-FLAGS.SILENT", "(\\Seen)")))
    out["store"] = f"{t:8.3f} s"
    im.logout()

    errors = []

    def client():
        try:
            c = connect(port)
            c.select("INBOX", readonly=True)
            c.fetch("1:*", "BODY.PEEK[]")
            c.logout()
        except Exception as e:  # reported below
            errors.append(e)
    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    start = time.monotonic()
    for th in threads:
        th.start()
    for th in threads:
        th.join(600)
    t = time.monotonic() - start
    assert not errors, errors
    out["parallel"] = f"{CLIENTS * total / t / 1e6:8.1f} MB/s"
    return out


def main():
    messages = [message(i) for i in range(N)]
    root = tempfile.mkdtemp(prefix="cmail-imap-bench-")
    os.chmod(root, 0o755)  # Dovecot's mail processes run as its own user when we are root
    results = {}
    try:
        for name, start in (("cmail-imapd", start_cmail), ("dovecot", start_dovecot)):
            d = os.path.join(root, name)
            os.makedirs(d)
            proc, port = start(d)
            try:
                results[name] = run(port, messages)
            finally:
                stop(proc)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"IMAP, {N} messages of {sum(map(len, messages)) // N} octets, {CLIENTS} parallel clients, imaplib")
    names = list(results)
    print(f"{'':10}" + "".join(f"{n:>18}" for n in names))
    for key in results[names[0]]:
        print(f"{key:10}" + "".join(f"{results[n][key]:>18}" for n in names))


if __name__ == "__main__":
    main()
