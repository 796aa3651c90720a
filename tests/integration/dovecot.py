"""Dovecot's IMAP on loopback, for tests and benchmarks that compare cmail with it.

    from dovecot import Dovecot
    d = Dovecot(root, messages=[b"..."], extra="service imap { process_limit = 2000 }")
    ... imaplib.IMAP4("127.0.0.1", d.port) ... login("test", "pw") ...
    d.stop()

Dovecot (/usr/sbin/dovecot, Debian's dovecot-imapd) runs in the foreground with a minimal
configuration written into `root` (a temporary directory the caller owns and removes), one
passwd-file user `test` with password `pw`, a Maildir under `root` holding `messages` (octets,
written into cur/ in order; none gives an empty INBOX), listening on a free port of 127.0.0.1
only. `extra` is appended to the configuration (limits for a benchmark). Every wait is bounded;
stop() ends it (SIGTERM, then SIGKILL) and may be called more than once.
"""
import getpass
import grp
import os
import pwd
import signal
import socket
import subprocess
import time

DOVECOT = "/usr/sbin/dovecot"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Dovecot:
    """Dovecot in the foreground in a temporary directory; stop() always, bounded."""

    def __init__(self, root, messages=(), extra=""):
        self.root = root
        self.port = free_port()
        self.maildir = os.path.join(root, "Maildir")
        user = getpass.getuser()
        # Dovecot refuses to run its login process and mail access as root: when the caller runs
        # as root, they use Debian's dovenull and dovecot users.
        if os.getuid() == 0:
            login_user, mail = "dovenull", pwd.getpwnam("dovecot")
            self.uid, self.gid = mail.pw_uid, mail.pw_gid
        else:
            login_user, self.uid, self.gid = user, os.getuid(), os.getgid()
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(self.maildir, sub))
        for i, data in enumerate(messages):
            with open(os.path.join(self.maildir, "cur", "%d.M%dP1.cmail:2," % (1700000000 + i, i)), "wb") as f:
                f.write(data)
        with open(os.path.join(root, "passwd"), "w") as f:
            f.write("test:{PLAIN}pw:%d:%d::%s\n" % (self.uid, self.gid, root))
        conf = f"""
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
default_internal_user = {user}
default_internal_group = {grp.getgrgid(os.getgid()).gr_name}
default_login_user = {login_user}
first_valid_uid = 1
mail_location = maildir:{self.maildir}
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
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
{extra}
"""
        self.conf = os.path.join(root, "dovecot.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        os.chmod(root, 0o755)
        for d, _, files in os.walk(self.maildir):
            os.chown(d, self.uid, self.gid)
            for name in files:
                os.chown(os.path.join(d, name), self.uid, self.gid)
        with open(os.path.join(root, "stderr"), "wb") as err:
            self.proc = subprocess.Popen([DOVECOT, "-F", "-c", self.conf], stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 15
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("dovecot exited: " + self.log())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("dovecot did not listen: " + self.log())
                time.sleep(0.05)

    def log(self):
        out = ""
        for name in ("dovecot.log", "stderr"):
            try:
                with open(os.path.join(self.root, name), errors="replace") as f:
                    out += f.read()[-4000:]
            except OSError:
                pass
        return out

    def pids(self):
        """The master and every process under it (login, imap, auth...), from /proc."""
        children = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                except (OSError, ValueError, IndexError):
                    continue
                children.setdefault(ppid, []).append(int(entry))
        out, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            out.append(pid)
            todo += children.get(pid, [])
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
