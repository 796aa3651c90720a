#!/usr/bin/python3
"""Fills POP3 maildrops for the retrieval benchmarks (tests/bench/pop3_bench.sh), with the same
messages for every server: the headers of a delivered message and a body of 76-character
lines, SIZE octets with LF line ends.

    pop3_populate.py --port 10033 --users 50 --count 200          # through a running cmail-smtpd
    pop3_populate.py --maildir DIR/%s/Maildir --users 50 --count 200   # Dovecot's maildirs

Users are u01..uNN (--user sets the pattern). Through SMTP the messages are sent with CRLF line
ends to RCPT TO:<user@example.test> by eight sessions in parallel (cmail-smtpd adds its Received
header); with --maildir they are written as files into DIR/cur (seen), named the way Dovecot's
own delivery names them (S= and W= sizes). Exit 1 on any failure.
"""
import argparse
import os
import smtplib
import sys
import threading
import time


def message(i, size):
    hdr = ("Return-Path: <sender%d@example.org>\n"
           "Delivered-To: bench@example.test\n"
           "Received: from mx.example.org (mx.example.org [192.0.2.1])\n"
           "\tby mx.example.test with ESMTP id %08d; Tue, 1 Jan 2030 00:00:00 +0000\n"
           "From: Sender %d <sender%d@example.org>\n"
           "To: Bench <bench@example.test>\n"
           "Subject: benchmark message %d\n"
           "Date: Tue, 1 Jan 2030 00:00:00 +0000\n"
           "Message-ID: <%d.bench@example.org>\n"
           "MIME-Version: 1.0\n"
           "Content-Type: text/plain; charset=us-ascii\n\n") % (i, i, i, i, i, i)
    line = ("abcdefghijklmnopqrstuvwxyz0123456789" * 3)[:76] + "\n"
    n = max(0, size - len(hdr))
    body = (line * (n // len(line) + 1))[:n]
    if body and not body.endswith("\n"):
        body = body[:-1] + "\n"
    return (hdr + body).encode()


def to_maildirs(pattern, users, count, size):
    now = int(time.time())
    for u in users:
        root = pattern % u
        for d in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(root, d), exist_ok=True)
        for i in range(count):
            data = message(i, size)
            name = "%d.M%dP%d.bench,S=%d,W=%d:2,S" % (now - count + i, i, os.getpid(), len(data),
                                                       len(data) + data.count(b"\n"))
            with open(os.path.join(root, "cur", name), "wb") as f:
                f.write(data)
    return 0


def through_smtp(port, users, count, size):
    jobs = [(u, i) for u in users for i in range(count)]
    failures = []

    def worker(part):
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
                s.ehlo("populate.example.test")
                for u, i in part:
                    s.sendmail("sender%d@example.org" % i, [u + "@example.test"],
                               message(i, size).replace(b"\n", b"\r\n"))
        except Exception as e:  # noqa: BLE001 - reported below
            failures.append(e)

    threads = [threading.Thread(target=worker, args=(jobs[k::8],)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        print("populate failed: %r" % failures[0], file=sys.stderr)
        return 1
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, help="a cmail-smtpd on 127.0.0.1")
    ap.add_argument("--maildir", help="a maildir path with %%s for the user name")
    ap.add_argument("--user", default="u%02d", help="user name pattern, %%d is 1..USERS")
    ap.add_argument("--users", type=int, default=1)
    ap.add_argument("--count", type=int, default=10000, help="messages per user")
    ap.add_argument("--size", type=int, default=4096)
    a = ap.parse_args()
    users = [a.user % (k + 1) for k in range(a.users)]
    if a.maildir:
        return to_maildirs(a.maildir, users, a.count, a.size)
    if not a.port:
        ap.error("--port or --maildir")
    return through_smtp(a.port, users, a.count, a.size)


if __name__ == "__main__":
    sys.exit(main())
