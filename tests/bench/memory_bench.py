#!/usr/bin/python3
"""Peak memory of cmail-smtpd while it takes large messages: one, then four at once.

    tests/bench/memory_bench.py [BUILD_DIR] [--mib 30] [--parallel 1 4]

For each case a fresh cmail-smtpd (its own temporary master database, port 0 on 127.0.0.1,
the bound port read from its stdout) first takes one small message, so that its start-up
allocations and the store's first transaction are behind it; then VmHWM (the peak resident
set, /proc/PID/status) is read, PARALLEL sessions each send one MIB MiB message (76-character
lines of text, CRLF) at the same time, and VmHWM is read again once every 250 arrived. The
growth is what those messages cost at the peak. Prints one line per case and exits 1 on any
error. Not a timed test; the figures go to docs/performance.md.
"""
import argparse
import os
import shutil
import smtplib
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from harness import start_daemon, stop_daemon  # noqa: E402


def vm(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])  # kB
    raise RuntimeError(f"{key} not in /proc/{pid}/status")


def message(mib, k):
    line = b"%-74s\r\n" % (b"memory bench message %d" % k)
    body = line * (mib * 1048576 // len(line))
    return b"Subject: memory bench %d\r\nFrom: <load@example.test>\r\n\r\n" % k + body


def case(build, tmp, mib, parallel):
    admin = os.path.join(build, "frontends", "cmail-admin", "cmail-admin")
    smtpd = os.path.join(build, "frontends", "cmail-smtpd", "cmail-smtpd")
    db = os.path.join(tmp, "master.db3")
    for args in (["init"], ["user", "add", "bench", "bench"], ["address", "add", "bench@example.test", "store", "bench"]):
        subprocess.run([admin, "-d", db, *args], check=True, capture_output=True, timeout=60)
    conf = os.path.join(tmp, "smtpd.conf")
    with open(conf, "w") as f:
        f.write(f"database {db}\nauth_checks off\nbind 127.0.0.1 0 announce=mem.example.test size={(mib + 8) * 1048576}\n")
    proc, ports = start_daemon(smtpd, conf, 1)
    port = ports["smtp"][0]
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
            s.sendmail("load@example.test", ["bench@example.test"], b"Subject: warm-up\r\n\r\nx\r\n")
        rss0, hwm0 = vm(proc.pid, "VmRSS"), vm(proc.pid, "VmHWM")
        msgs = [message(mib, k) for k in range(parallel)]
        errors = []
        start = threading.Barrier(parallel)

        def send(data):
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=300) as s:
                    s.ehlo("mem.example.test")
                    start.wait(60)
                    s.sendmail("load@example.test", ["bench@example.test"], data)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=send, args=(m,)) for m in msgs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise RuntimeError(f"sending failed: {errors[0]!r}")
        hwm1, rss1 = vm(proc.pid, "VmHWM"), vm(proc.pid, "VmRSS")
    finally:
        code, err = stop_daemon(proc)
    if code != 0:
        raise RuntimeError(f"cmail-smtpd exited {code}: {err}")
    return hwm0, hwm1, rss0, rss1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build", nargs="?", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "build"))
    ap.add_argument("--mib", type=int, default=30)
    ap.add_argument("--parallel", type=int, nargs="+", default=[1, 4])
    a = ap.parse_args()
    for n in a.parallel:
        tmp = tempfile.mkdtemp(prefix="cmail-memory-bench-")
        try:
            hwm0, hwm1, rss0, rss1 = case(a.build, tmp, a.mib, n)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        grow = (hwm1 - hwm0) / 1024
        print(f"messages={n} size_mib={a.mib} vmhwm_before_mib={hwm0 / 1024:.1f} vmhwm_after_mib={hwm1 / 1024:.1f} "
              f"growth_mib={grow:.1f} growth_per_message_mib={grow / n:.1f} per_message_over_size={grow / n / a.mib:.2f} "
              f"vmrss_after_mib={rss1 / 1024:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
