"""The Python examples keep working: examples/intake.py takes mail for its addresses and prints
each message after the commit (before the client's 250), refuses others and postmaster@; a
second run finds its user and addresses; examples/asyncio_smtp.py serves SMTP on asyncio over
the sans-I/O engine; examples/test_with_harness.py passes under pytest. Each runs as its own
process with this checkout's package; every wait is bounded."""
import os
import re
import signal
import smtplib
import subprocess
import sys

from conftest import ROOT

EXAMPLES = os.path.join(ROOT, "examples")


def env():
    e = dict(os.environ)
    e["PYTHONPATH"] = os.path.join(ROOT, "bindings", "python") + os.pathsep + e.get("PYTHONPATH", "")
    return e


def start(args):
    p = subprocess.Popen([sys.executable] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=env())
    line = p.stdout.readline()  # bounded: the process prints it or exits (then readline gives "")
    m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
    if not m:
        p.kill()
        raise AssertionError(f"no port printed: {line!r}; stderr: {p.communicate(timeout=10)[1]}")
    return p, int(m.group(1))


def stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=15)
    except subprocess.TimeoutExpired:
        p.kill()
        raise
    out, err = p.stdout.read(), p.stderr.read()  # after what readline() took (communicate() would skip it)
    assert p.returncode == 0, err
    return out


def test_intake_example(tmp_path):
    data = str(tmp_path / "data")
    for subject in ("first run", "second run"):
        p, port = start([os.path.join(EXAMPLES, "intake.py"), data, "0", "me@example.test", "you@example.test"])
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
                refused = s.sendmail("a@b.test", ["me@example.test", "other@example.test", "postmaster@example.test"],
                                     f"Subject: {subject}\r\n\r\nhi there\r\n")
                assert sorted(refused) == ["other@example.test", "postmaster@example.test"]
                assert refused["postmaster@example.test"][0] == 550
            # The callback ran before the 250: its lines are written already.
            assert p.stdout.readline().startswith("--- message from <a@b.test> to <me@example.test>")
            assert p.stdout.readline() == f"Subject: {subject}\n"
        finally:
            rest = stop(p)
        assert rest == "\nhi there\n"


def test_asyncio_example():
    p, port = start([os.path.join(EXAMPLES, "asyncio_smtp.py"), "0", "example.test"])
    try:
        for n in range(3):  # sequential sessions on one loop
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
                assert s.ehlo("client.example")[0] == 250
                refused = s.sendmail("a@b.test", ["me@example.test", "x@elsewhere.test"],
                                     f"Subject: n{n}\r\n\r\n.leading dot\r\n")
                assert list(refused) == ["x@elsewhere.test"] and refused["x@elsewhere.test"][0] == 550
    finally:
        out = stop(p)
    assert out.count("--- message from <a@b.test> to <me@example.test> ---") == 3
    assert "Subject: n2\n\n.leading dot\n" in out  # dot-unstuffed by the engine


def test_harness_example():
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "cmail.pytest_plugin",
                        os.path.join(EXAMPLES, "test_with_harness.py")],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env(), timeout=120,
                       cwd=EXAMPLES)
    assert r.returncode == 0, r.stdout
    assert "3 passed" in r.stdout
