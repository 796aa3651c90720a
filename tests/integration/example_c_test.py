#!/usr/bin/python3
"""The C embedding example (examples/intake.c) takes mail for its addresses, hands each message
to its callback after the commit (printed before the client's 250 arrives), refuses other
recipients and, by its policy callback, postmaster@; a second run on the same data directory
finds its user and addresses there.

Usage: example_c_test.py INTAKE_C_BINARY
"""
import re
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile

exe = sys.argv[1]
data = tempfile.mkdtemp(prefix="cmail-intake-c-")


def run_once(subject):
    p = subprocess.Popen([exe, data, "0", "me@example.test", "you@example.test"], stdout=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        port = int(re.search(r"listening on 127\.0\.0\.1:(\d+)", line).group(1))
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
            refused = s.sendmail("a@b.test", ["me@example.test", "other@example.test", "postmaster@example.test"],
                                 f"Subject: {subject}\r\n\r\nhi there\r\n")
            assert sorted(refused) == ["other@example.test", "postmaster@example.test"], refused
            assert refused["postmaster@example.test"][0] == 550, refused
        # The callback ran before the 250: its lines are already written.
        header = p.stdout.readline()
        assert header.startswith("--- message from <a@b.test> to <me@example.test>"), header
        assert p.stdout.readline() == f"Subject: {subject}\n"
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=10) == 0, p.returncode
        rest = p.stdout.read()  # after the lines read above (communicate() would skip them)
        assert rest == "\nhi there\n", repr(rest)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


try:
    run_once("first")
    run_once("second")
    print("ok: the C example took and printed the message, twice on one data directory")
finally:
    shutil.rmtree(data, ignore_errors=True)
