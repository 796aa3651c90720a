#!/usr/bin/python3
"""The cost of mail authentication in cmail-smtpd: SMTP intake of 4 KiB messages with the
sender checks (SPF, DKIM verification, DMARC) off and on, and submission with DKIM signing off
and on (RSA 2048, Ed25519), side by side in one run. Not a timed test: the figures go to
docs/performance.md with the command that produced them.

    tests/bench/auth_bench.py BUILD_DIR [N] [SESSIONS]

What runs: a name server on loopback answering for remote.test (SPF "ip4:127.0.0.1 -all", a DKIM
key, DMARC p=reject): dnsmasq (Debian's dnsmasq-base, C, answering from its configuration like a
local caching resolver answers from its cache: what a mail server has in production), or with
DNS=python tests/dns_server.py (Python: its CPU per query, on the same two cores, then limits the
intake case); a fresh master database and cmail-smtpd per case, with
`auth_checks off` or `resolver <the DNS server>`; the load from tests/bench/smtp_load.py (2
client processes, SESSIONS sessions, keep mode) sending the same message N times:
  intake     a message from joe@remote.test signed by dkimpy (rsa-sha256, relaxed/simple, the
             common signature), to bench@local.test, on the smtp listener;
  submission a message from bench@local.test, AUTH PLAIN on the submission listener, to
             far@remote.test (queued); local.test has no key (off), an RSA 2048 key, or an
             Ed25519 key.
For each case: messages/s and the server's CPU time per message (utime+stime of cmail-smtpd
from /proc over the timed load; the client processes share the two cores, so msg/s is bounded
by them, while CPU per message is the server's cost alone). Submission CPU includes one argon2id
log-in per session (SESSIONS of them, about 30 ms each), the same in every submission case.
Cases alternate within each of RUNS rounds (env RUNS, default 3); the best of each is printed.
Requires python3-dkim (dkimpy) and /usr/bin/python3.
"""
import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

import dkim

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from harness import start_daemon, stop_daemon  # noqa: E402

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
N = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
SESSIONS = int(sys.argv[3]) if len(sys.argv) > 3 else 20
RUNS = int(os.environ.get("RUNS", "3"))
SMTPD = os.path.join(BUILD, "frontends", "cmail-smtpd", "cmail-smtpd")
ADMIN = os.path.join(BUILD, "frontends", "cmail-admin", "cmail-admin")
DNS_SERVER = os.path.join(HERE, "..", "dns_server.py")
LOAD = os.path.join(HERE, "smtp_load.py")
TICK = os.sysconf("SC_CLK_TCK")


def body(size=4096):
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-+\r\n"
    return (line * (size // len(line) + 1))[:size - 2] + b"\r\n"


def message(sender):
    return (b"From: Joe <%s>\r\nTo: bench@local.test\r\nSubject: load\r\n"
            b"Date: Fri, 04 Dec 2026 12:00:00 +0000\r\nMessage-ID: <1.load@remote.test>\r\n\r\n" % sender) + body()


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (proc(5): fields 14, 15)


def admin(db, *args):
    return subprocess.run([ADMIN, "-d", db, *args], check=True, capture_output=True, text=True, timeout=60).stdout


def run_case(tmp, dns_address, case, signed_path, plain_path):
    work = tempfile.mkdtemp(dir=tmp)
    db = os.path.join(work, "master.db3")
    admin(db, "init")
    admin(db, "user", "add", "bench", "pw")
    admin(db, "address", "add", "%@local.test", "store", "bench")
    admin(db, "smtpd", "enable", "bench", "any")
    if case == "submission-rsa":
        admin(db, "dkim", "generate", "local.test", "--selector", "r")
    if case == "submission-ed25519":
        admin(db, "dkim", "generate", "local.test", "--algorithm", "ed25519", "--selector", "e")
    checks = f"resolver {dns_address}" if case == "intake-checks" else "auth_checks off"
    conf = os.path.join(work, "smtpd.conf")
    with open(conf, "w") as f:
        f.write(f"database {db}\n{checks}\nbind 127.0.0.1 0 announce=mx.local.test\n"
                f"bind 127.0.0.1 0 announce=mx.local.test auth=strict\n")
    proc, ports = start_daemon(SMTPD, conf, 2)
    try:
        if case.startswith("intake"):
            args = ["--port", str(ports["smtp"][0]), "--message", signed_path, "--from", "joe@remote.test",
                    "--to", "bench@local.test"]
        else:
            args = ["--port", str(ports["submission"][0]), "--message", plain_path, "--from", "bench@local.test",
                    "--to", "far@remote.test", "--auth", "bench:pw"]
        subprocess.run(["/usr/bin/python3", LOAD, *args, "--sessions", "4", "--messages", "200", "--limit", "60"],
                       check=True, capture_output=True, timeout=120)  # warm-up
        c0 = cpu_seconds(proc.pid)
        out = subprocess.run(["/usr/bin/python3", LOAD, *args, "--sessions", str(SESSIONS), "--messages", str(N),
                              "--procs", "2", "--limit", "300"], capture_output=True, text=True, timeout=400).stdout
        c1 = cpu_seconds(proc.pid)
    finally:
        stop_daemon(proc)
    fields = dict(kv.split("=", 1) for kv in out.split() if "=" in kv)
    if fields.get("errors") != "0":
        raise SystemExit(f"{case}: {out}")
    return float(fields["msgs_per_s"]), (c1 - c0) / N * 1e6


def start_dnsmasq(zone):
    """dnsmasq answering the zone's TXT records (strings of at most 255 octets) on a free port."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
            "--listen-address=127.0.0.1", "--bind-interfaces", f"--port={port}", "--user=root", "--cache-size=0"]
    for name, records in zone.items():
        for text in records["TXT"]:
            pieces = [text[i:i + 255] for i in range(0, len(text), 255)]
            args.append(f"--txt-record={name}," + ",".join(f'"{p}"' for p in pieces))
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # wait until it answers
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.2)
            q = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x06remote\x04test\x00\x00\x10\x00\x01"
            try:
                s.sendto(q, ("127.0.0.1", port))
                if s.recv(512)[:2] == b"\x12\x34":
                    return proc, f"127.0.0.1:{port}"
            except OSError:
                time.sleep(0.05)
    raise SystemExit("dnsmasq did not start: " + proc.stderr.read().decode(errors="replace"))


def main():
    tmp = tempfile.mkdtemp(prefix="cmail-auth-bench-")
    key = subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
                         check=True, capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubout", "-outform", "DER"], input=key, check=True,
                         capture_output=True).stdout
    zone = {
        "remote.test": {"TXT": ["v=spf1 ip4:127.0.0.1 -all"]},
        "sel._domainkey.remote.test": {"TXT": ["v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()]},
        "_dmarc.remote.test": {"TXT": ["v=DMARC1; p=reject"]},
    }
    zone_path = os.path.join(tmp, "zone.json")
    with open(zone_path, "w") as f:
        json.dump(zone, f)
    m = message(b"joe@remote.test")
    signed = dkim.sign(m, b"sel", b"remote.test", key, canonicalize=(b"relaxed", b"simple")) + m
    signed_path, plain_path = os.path.join(tmp, "signed.eml"), os.path.join(tmp, "plain.eml")
    with open(signed_path, "wb") as f:
        f.write(signed)
    with open(plain_path, "wb") as f:
        f.write(message(b"bench@local.test"))
    if os.environ.get("DNS", "dnsmasq") == "python":
        dns = subprocess.Popen(["/usr/bin/python3", DNS_SERVER, zone_path, "--lifetime", "3600"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        dns_address = dns.stdout.readline().split()[1]
    else:
        dns, dns_address = start_dnsmasq(zone)
    cases = ["intake-off", "intake-checks", "submission-off", "submission-rsa", "submission-ed25519"]
    best = {c: (0.0, float("inf")) for c in cases}
    try:
        for r in range(RUNS):
            for c in cases:
                rate, cpu = run_case(tmp, dns_address, c, signed_path, plain_path)
                print(f"run={r + 1} case={c} msgs_per_s={rate:.0f} server_cpu_us_per_msg={cpu:.0f}", flush=True)
                best[c] = (max(best[c][0], rate), min(best[c][1], cpu))
    finally:
        stop_daemon(dns)
    print(f"best of {RUNS} (N={N}, sessions={SESSIONS}, 4 KiB messages):")
    for c in cases:
        base = best["intake-off" if c.startswith("intake") else "submission-off"]
        print(f"  {c:20s} {best[c][0]:7.0f} msg/s ({best[c][0] / base[0] * 100:5.1f}%)  "
              f"{best[c][1]:6.0f} us server CPU/msg (+{best[c][1] - base[1]:.0f})")


if __name__ == "__main__":
    main()
