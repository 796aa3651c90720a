#!/usr/bin/python3
"""POP3 retrieval with many clients at once: each logs in (USER/PASS) as its own user, LISTs
the maildrop, RETRs every message one at a time (waiting for each, as a plain client does)
and QUITs without deleting. All sessions start together.

    pop3_concurrent.py --port 10111 --user u%02d --password bench --clients 50

Prints one line of key=value pairs (wall time, messages and octets per second, per-session
p50/p99, and logins_done_s: when the last session was logged in, which separates the cost of
50 password checks from the retrieval). Every read has a timeout and the run a deadline. Exit 1 on any error.
"""
import argparse
import asyncio
import sys
import time


async def session(host, port, user, password, end):
    r, w = await asyncio.wait_for(asyncio.open_connection(host, port, limit=1 << 22), timeout=30)
    t0 = time.monotonic()

    async def line():
        left = end - time.monotonic()
        ln = await asyncio.wait_for(r.readuntil(b"\r\n"), timeout=max(0.1, min(left, 60)))
        if not ln.startswith(b"+OK"):
            raise RuntimeError("%s: %r" % (user, ln[:200]))
        return ln

    async def multiline():
        left = end - time.monotonic()
        data = await asyncio.wait_for(r.readuntil(b"\r\n.\r\n"), timeout=max(0.1, min(left, 60)))
        return data

    try:
        await line()
        w.write(b"USER %s\r\n" % user.encode())
        await line()
        w.write(b"PASS %s\r\n" % password.encode())
        await line()
        logged_in = time.monotonic()
        w.write(b"LIST\r\n")
        await line()
        listing = await multiline()
        numbers = [int(x.split()[0]) for x in listing.split(b"\r\n")[:-2] if x]
        octets = 0
        for n in numbers:
            w.write(b"RETR %d\r\n" % n)
            await line()
            octets += len(await multiline()) - 3
        w.write(b"QUIT\r\n")
        await line()
        return time.monotonic() - t0, len(numbers), octets, logged_in
    finally:
        w.close()


async def run(a):
    end = time.monotonic() + a.limit
    t0 = time.monotonic()
    res = await asyncio.gather(*[session(a.host, a.port, a.user % (k + 1), a.password, end)
                                 for k in range(a.clients)], return_exceptions=True)
    wall = time.monotonic() - t0
    errs = [r for r in res if isinstance(r, BaseException)]
    ok = sorted(r[0] for r in res if not isinstance(r, BaseException))
    msgs = sum(r[1] for r in res if not isinstance(r, BaseException))
    octets = sum(r[2] for r in res if not isinstance(r, BaseException))
    logins = max((r[3] for r in res if not isinstance(r, BaseException)), default=t0) - t0

    def pct(p):
        return ok[min(len(ok) - 1, int(round(p / 100 * (len(ok) - 1))))] if ok else 0

    out = ("clients=%d ok=%d failed=%d wall_s=%.3f messages=%d bytes=%d msgs_per_s=%.1f MiB_per_s=%.1f "
           "session_p50_s=%.3f session_p99_s=%.3f logins_done_s=%.3f" % (
               a.clients, len(ok), len(errs), wall, msgs, octets, msgs / wall, octets / wall / 1048576, pct(50),
               pct(99), logins))
    if errs:
        out += " first_error=%r" % (str(errs[0])[:160],)
    return out, not errs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--user", default="u%02d")
    ap.add_argument("--password", default="bench")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--limit", type=float, default=120.0)
    a = ap.parse_args()
    out, ok = asyncio.run(run(a))
    print(out)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
