#!/usr/bin/python3
"""The embedding example (examples/intake.cc) accepts mail for its one address and prints it.

Usage: example_test.py INTAKE_BINARY
"""
import re
import signal
import smtplib
import subprocess
import sys

exe = sys.argv[1]
p = subprocess.Popen([exe, "me@example.test", "0"], stdout=subprocess.PIPE, text=True)
try:
    port = int(re.search(r":(\d+)", p.stdout.readline()).group(1))
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        refused = s.sendmail("a@b.test", ["me@example.test", "other@example.test"], "Subject: embed\r\n\r\nhi there\r\n")
        assert list(refused) == ["other@example.test"], refused
    p.send_signal(signal.SIGTERM)
    out = p.communicate(timeout=10)[0]
    assert "--- message from" in out and "Subject: embed" in out and "hi there" in out, out
    assert p.returncode == 0, p.returncode
    print("ok: the example printed the message")
finally:
    if p.poll() is None:
        p.kill()
