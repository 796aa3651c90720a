"""tests/integration/harness.py: what the integration tests share (run with /usr/bin/python3).

The daemons print one line per listener ("smtp 127.0.0.1:40123") once they listen; tests read
the ports from there, talk to the daemons over loopback, and bound every wait: they wait for
the event itself (a reply, a row, a log line, a file), never for a fixed time.

Every test case starts from its own state (its own database and daemons, or a copy of a
template database), so cases do not depend on each other's order or outcome. main() runs a
file's cases like unittest.main() and can change their order to check that:
  CMAIL_TEST_ORDER=reverse        classes and cases in reverse order
  CMAIL_TEST_ORDER=shuffle[:SEED] a random order (the seed is printed; give it to repeat one)
  CMAIL_TEST_SHARD=I/N            only every N-th case, starting with the I-th (0-based), so
                                  that one file can run as N meson tests side by side
"""
import os
import random
import re
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import time
import unittest


SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def v9_install_sql(kind="master"):
    """cmail's install_master.sql (or, with kind="user", install_user.sql) for schema version 9
    (the original's last schema), from the project's one copy in libcmail/store/schema.cc,
    which new databases and the unit tests use."""
    name = {"master": "kMasterV9", "user": "kUserV9"}[kind]
    with open(os.path.join(SOURCE, "libcmail", "store", "schema.cc")) as f:
        m = re.search(name + r' = R"sql\((.*?)\)sql"', f.read(), re.S)
    assert m, name + " not found in libcmail/store/schema.cc"
    return m.group(1)


def read_ports(proc, count):
    """Reads `count` listener lines from a daemon's stdout: {kind: [port, ...]}."""
    ports = {}
    found = 0
    while found < count:
        line = proc.stdout.readline()  # the daemon prints them at once, or exits
        if not line:
            break
        m = re.match(r"(\w+) [\d.:]+:(\d+)$", line.strip())
        if m:
            ports.setdefault(m.group(1), []).append(int(m.group(2)))
            found += 1
    return ports


def start_daemon(exe, conf, listeners, *args):
    """Starts `exe conf nodetach` and reads its `listeners` port lines: (process, ports)."""
    proc = subprocess.Popen([exe, conf, "nodetach", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ports = read_ports(proc, listeners)
    if sum(len(v) for v in ports.values()) != listeners:
        code, err = stop_daemon(proc)
        raise RuntimeError(f"{exe} did not start ({code}): {err}")
    return proc, ports


def stop_daemon(proc, sig=signal.SIGTERM, timeout=15):
    """Stops a daemon started by start_daemon() (SIGKILL after `timeout`): (exit code, stderr)."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    err = proc.stderr.read() if proc.stderr else ""
    for f in (proc.stdout, proc.stderr, proc.stdin):
        if f:
            f.close()
    return proc.returncode, err


def make_cert(directory, cn, name="cert", san=None):
    """A self-signed P-256 certificate for `cn` in `directory`: (certificate path, key path)."""
    cert, key = os.path.join(directory, name + ".pem"), os.path.join(directory, name + "-key.pem")
    args = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=" + cn]
    if san:
        args += ["-addext", "subjectAltName=" + san]
    subprocess.run(args, check=True, capture_output=True)
    return cert, key


def copy_database(src, dst):
    """A consistent copy of the SQLite database `src` at `dst` (SQLite's online backup)."""
    a, b = sqlite3.connect(src), sqlite3.connect(dst)
    try:
        a.backup(b)
    finally:
        b.close()
        a.close()


def recv_until(s, marker, timeout=5):
    """Reads from socket `s` until `marker` arrived, the peer closed, or `timeout` passed."""
    s.settimeout(timeout)
    got = b""
    try:
        while marker not in got:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    except socket.timeout:
        pass
    return got


def read_until_closed(s, timeout=5):
    """Reads from socket `s` until the peer closes it: (what arrived, True), or (what arrived,
    False) when `timeout` passed first. A reset counts as closed."""
    deadline = time.time() + timeout
    got = b""
    try:
        while time.time() < deadline:
            s.settimeout(max(0.01, deadline - time.time()))
            chunk = s.recv(65536)
            if not chunk:
                return got, True
            got += chunk
    except socket.timeout:
        return got, False
    except (ConnectionResetError, ssl.SSLError):
        return got, True
    return got, False


def wait_for(predicate, timeout=10.0, step=0.02):
    """Polls `predicate` until it is true or `timeout` passed; returns its last value."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


def _arrange(suite):
    """The cases of `suite` in CMAIL_TEST_ORDER, only CMAIL_TEST_SHARD's, grouped by class."""
    cases = []

    def flatten(s):
        for t in s:
            if isinstance(t, unittest.TestSuite):
                flatten(t)
            else:
                cases.append(t)
    flatten(suite)
    shard = os.environ.get("CMAIL_TEST_SHARD")
    if shard:
        i, n = (int(x) for x in shard.split("/"))
        cases = [c for k, c in enumerate(cases) if k % n == i]
        print(f"shard {i}/{n}: {', '.join(c.id().rsplit('.', 1)[-1] for c in cases)}", file=sys.stderr)
    groups = {}
    for c in cases:
        groups.setdefault(type(c), []).append(c)  # a class's fixture is set up once
    order = os.environ.get("CMAIL_TEST_ORDER", "")
    classes = list(groups)
    if order == "reverse":
        classes.reverse()
        for k in classes:
            groups[k].reverse()
    elif order.startswith("shuffle"):
        seed = int(order.split(":", 1)[1]) if ":" in order else random.SystemRandom().randrange(1 << 32)
        print(f"CMAIL_TEST_ORDER=shuffle:{seed}", file=sys.stderr)
        rng = random.Random(seed)
        rng.shuffle(classes)
        for k in classes:
            rng.shuffle(groups[k])
    elif order:
        raise SystemExit(f"CMAIL_TEST_ORDER={order!r}: expected reverse or shuffle[:SEED]")
    return unittest.TestSuite(unittest.TestSuite(groups[k]) for k in classes)


class _Loader(unittest.TestLoader):
    def loadTestsFromModule(self, module, *args, **kwargs):
        return _arrange(super().loadTestsFromModule(module, *args, **kwargs))

    def loadTestsFromNames(self, names, module=None):
        return _arrange(super().loadTestsFromNames(names, module))


def main():
    """unittest.main() for the calling file, with CMAIL_TEST_ORDER and CMAIL_TEST_SHARD."""
    unittest.main(module="__main__", testLoader=_Loader(), verbosity=2)
