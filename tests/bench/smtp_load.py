#!/usr/bin/python3
"""SMTP load generator for the intake benchmarks (tests/bench/smtp_bench.sh): N parallel
sessions send M messages in all to one server on loopback and it prints what it measured.

    smtp_load.py --port 10031 --sessions 20 --messages 10000 --size 4096 --mode keep
    smtp_load.py --port 10031 --sessions 20 --messages 5000 --mode conn --procs 2

Scenarios:
  keep  each session connects once, EHLO, then MAIL, RCPT, DATA, message, one after the other
        (each command waits for its reply, no PIPELINING), for message after message; QUIT.
  conn  a connection per message: connect, banner, EHLO, one transaction, QUIT, close.

Messages: a few headers (From, To, Subject with the message's number, Date, Message-ID) and a
body of SIZE octets in 76-character lines, to RCPT TO:<bench@example.test>. A message counts
when its final 250 arrived; anything else is an error (counted, first one printed).
--procs K runs K client processes with SESSIONS/K sessions each (Python is one core per
process; on a small machine the client can otherwise be the limit). --limit bounds the run.

--message FILE sends that message (as it is: CRLF lines, no dot-stuffing needed for lines that
do not start with "."; a final CRLF is added when missing) instead of the generated one, the
same octets every time; --from and --to set the envelope; --auth USER:PASSWORD logs in with AUTH
PLAIN (RFC 4616) after EHLO, for submission listeners.

Output: one line of key=value pairs: messages, errors, wall_s, msgs_per_s, p50_ms and p99_ms
(per message, from MAIL, or from connect in conn mode, to the final 250).
"""
import argparse
import asyncio
import base64
import multiprocessing
import sys
import time


def body(size):
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-+\r\n"
    out = (line * (size // len(line) + 1))[:size]
    return out[:-2] + b"\r\n" if size >= 2 else b""


class Failed(Exception):
    pass


async def reply(r, expect):
    """Reads one (possibly multi-line) reply; raises Failed unless its code starts with `expect`."""
    while True:
        line = await r.readline()
        if not line:
            raise Failed("connection closed")
        if len(line) < 4 or line[3:4] != b"-":
            break
    if not line.startswith(expect):
        raise Failed(line[:120].decode(errors="replace").strip())


ENVELOPE = {"from": b"loadgen@example.test", "to": b"bench@example.test", "message": None, "auth": None}


async def transaction(r, w, n, payload):
    w.write(b"MAIL FROM:<%s>\r\n" % ENVELOPE["from"])
    await reply(r, b"250")
    w.write(b"RCPT TO:<%s>\r\n" % ENVELOPE["to"])
    await reply(r, b"250")
    w.write(b"DATA\r\n")
    await reply(r, b"354")
    if ENVELOPE["message"] is not None:
        w.write(ENVELOPE["message"])
    else:
        w.write(b"From: <loadgen@example.test>\r\nTo: <bench@example.test>\r\nSubject: load %d\r\n"
                b"Date: Tue, 1 Jan 2030 00:00:00 +0000\r\nMessage-ID: <%d.load@example.test>\r\n\r\n" % (n, n))
        w.write(payload)
    w.write(b".\r\n")
    await reply(r, b"250")


async def open_session(host, port):
    r, w = await asyncio.open_connection(host, port, limit=1 << 20)
    await reply(r, b"220")
    w.write(b"EHLO loadgen.example.test\r\n")
    await reply(r, b"250")
    if ENVELOPE["auth"] is not None:
        w.write(b"AUTH PLAIN %s\r\n" % ENVELOPE["auth"])
        await reply(r, b"235")
    return r, w


async def close_session(r, w):
    try:
        w.write(b"QUIT\r\n")
        await asyncio.wait_for(reply(r, b"221"), 5)
    finally:
        w.close()


async def run(a, sessions, messages):
    payload = body(a.size)
    todo = iter(range(messages))
    lat, errors = [], []

    async def keep():
        r, w = await open_session(a.host, a.port)
        for n in todo:
            t0 = time.monotonic()
            await transaction(r, w, n, payload)
            lat.append(time.monotonic() - t0)
        await close_session(r, w)

    async def conn():
        for n in todo:
            t0 = time.monotonic()
            r, w = await open_session(a.host, a.port)
            await transaction(r, w, n, payload)
            await close_session(r, w)
            lat.append(time.monotonic() - t0)

    async def session():
        try:
            await (keep() if a.mode == "keep" else conn())
        except (Failed, OSError, asyncio.IncompleteReadError) as e:
            errors.append(str(e) or type(e).__name__)

    t0 = time.monotonic()
    tasks = [asyncio.ensure_future(session()) for _ in range(sessions)]
    done, pending = await asyncio.wait(tasks, timeout=a.limit)
    for t in pending:
        t.cancel()
        errors.append("time limit")
    return t0, time.monotonic(), lat, errors


def worker(args):
    a, sessions, messages = args
    ENVELOPE["from"] = a.mail_from.encode()
    ENVELOPE["to"] = a.rcpt_to.encode()
    if a.message:
        with open(a.message, "rb") as f:
            m = f.read()
        ENVELOPE["message"] = m if m.endswith(b"\r\n") else m + b"\r\n"
    if a.auth:
        user, password = a.auth.split(":", 1)
        ENVELOPE["auth"] = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode())
    return asyncio.run(run(a, sessions, messages))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--messages", type=int, default=10000)
    ap.add_argument("--size", type=int, default=4096, help="body octets")
    ap.add_argument("--mode", choices=("keep", "conn"), default="keep")
    ap.add_argument("--procs", type=int, default=1)
    ap.add_argument("--limit", type=float, default=120.0, help="seconds")
    ap.add_argument("--message", help="send this message file instead of the generated one")
    ap.add_argument("--from", dest="mail_from", default="loadgen@example.test")
    ap.add_argument("--to", dest="rcpt_to", default="bench@example.test")
    ap.add_argument("--auth", help="USER:PASSWORD for AUTH PLAIN")
    a = ap.parse_args()
    procs = max(1, min(a.procs, a.sessions))
    parts = [(a, a.sessions // procs + (k < a.sessions % procs), a.messages // procs + (k < a.messages % procs))
             for k in range(procs)]
    if procs == 1:
        results = [worker(parts[0])]
    else:
        with multiprocessing.Pool(procs) as pool:
            results = pool.map(worker, parts)
    start = min(r[0] for r in results)   # CLOCK_MONOTONIC: one clock for every process
    end = max(r[1] for r in results)
    lat = sorted(x for r in results for x in r[2])
    errors = [e for r in results for e in r[3]]
    wall = end - start

    def pct(p):
        return 1000 * lat[min(len(lat) - 1, int(p / 100 * len(lat)))] if lat else 0.0

    out = "messages=%d errors=%d wall_s=%.3f msgs_per_s=%.0f p50_ms=%.2f p99_ms=%.2f" % (
        len(lat), len(errors), wall, len(lat) / wall if wall > 0 else 0, pct(50), pct(99))
    if errors:
        out += " first_error=%r" % errors[0][:100]
    print(out, flush=True)
    return 0 if not errors and len(lat) == a.messages else 1


if __name__ == "__main__":
    sys.exit(main())
