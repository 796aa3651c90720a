"""tests/integration/harness.py: what the integration tests share (run with /usr/bin/python3).

The daemons print one line per listener ("smtp 127.0.0.1:40123") once they listen; tests read
the ports from there, talk to the daemons over loopback, and bound every wait.
"""
import re
import socket
import time


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


def wait_for(predicate, timeout=10.0, step=0.05):
    """Polls `predicate` until it is true or `timeout` passed; returns its last value."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()
