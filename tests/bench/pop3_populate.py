#!/usr/bin/python3
"""Fills POP3 maildrops for the retrieval benchmarks through a running cmail-smtpd.

    pop3_populate.py --port 10032 --user bench --count 10000 --size 4096
    pop3_populate.py --port 10032 --user u%02d --users 50 --count 200

Each message is the same text the peers' Dovecot maildir gets (the headers of a delivered
message and a body of 76-character lines, SIZE octets with LF line ends), sent with CRLF line
ends to RCPT TO:<user@example.test>; cmail-smtpd adds its Received header. Eight SMTP
sessions send in parallel (the store commits them in groups). Exit 1 on any failure.
"""
import argparse
import smtplib
import sys
import threading


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
    return (hdr + body).replace("\n", "\r\n").encode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--user", default="bench", help="a name, or a pattern with %%d for --users")
    ap.add_argument("--users", type=int, default=0)
    ap.add_argument("--count", type=int, default=10000, help="messages per user")
    ap.add_argument("--size", type=int, default=4096)
    a = ap.parse_args()
    users = [a.user % (k + 1) for k in range(a.users)] if a.users else [a.user]
    jobs = [(u, i) for u in users for i in range(a.count)]
    failures = []

    def worker(part):
        try:
            with smtplib.SMTP("127.0.0.1", a.port, timeout=60) as s:
                s.ehlo("populate.example.test")
                for u, i in part:
                    s.sendmail("sender%d@example.org" % i, [u + "@example.test"], message(i, a.size))
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


if __name__ == "__main__":
    sys.exit(main())
