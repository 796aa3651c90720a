#!/usr/bin/python3
"""examples/asyncio_smtp.py: an SMTP server on asyncio over the sans-I/O cmail.smtp.Server.

asyncio owns the sockets and the clock; cmail's engine owns the protocol: each connection feeds
what it reads to receive_data(), writes data_to_send(), answers the engine's decisions
(here: every recipient in the domain given is accepted, others refused with 550) and keeps the
engine's time-out: a deadline moved after every exchange, and one timer that, when it fires
early, waits for the rest (a timer per exchange would cost more than the protocol).
Accepted messages are printed to stdout.

    examples/asyncio_smtp.py PORT DOMAIN        (port 0: any free port)

It prints "listening on 127.0.0.1:PORT", then "--- message from <a> to <b>" and the message for
each one; SIGINT or SIGTERM stops it. One thread: the engines never see another one.
"""
import asyncio
import signal
import sys

from cmail import smtp


class Connection(asyncio.Protocol):
    """One engine per connection, driven from asyncio's callbacks."""

    def __init__(self, domain, on_message):
        self.domain, self.on_message = domain, on_message
        self.engine = smtp.Server(hostname="localhost")
        self.loop = asyncio.get_running_loop()
        self.timer, self.deadline = None, 0.0
        self.envelope, self.chunks = None, []

    def connection_made(self, transport):
        self.transport = transport
        self.pump()

    def data_received(self, data):
        self.engine.receive_data(data)
        self.pump()

    def eof_received(self):
        self.engine.receive_data(b"")
        self.pump()

    def connection_lost(self, exc):
        if self.timer:
            self.timer.cancel()
        self.engine.close()

    def timed_out(self):
        self.timer = None
        left = self.deadline - self.loop.time()
        if left > 0:  # the deadline moved since the timer was set: wait for the rest
            self.timer = self.loop.call_later(left, self.timed_out)
            return
        self.engine.on_timeout()
        self.pump()

    def pump(self):
        if not self.engine.is_open:
            return
        while (ev := self.engine.next_event()) is not None:
            if isinstance(ev, smtp.Mail):
                self.envelope, self.chunks = (ev.address, []), []
                self.engine.accept()
            elif isinstance(ev, smtp.Rcpt):
                if ev.address.lower().endswith("@" + self.domain):
                    self.envelope[1].append(ev.address)
                    self.engine.accept()
                else:
                    self.engine.reject(550, "5.1.1", "No such user here")
            elif isinstance(ev, smtp.Data):
                self.chunks.append(ev.chunk)
            elif isinstance(ev, smtp.DataEnd):
                self.on_message(self.envelope[0], self.envelope[1], b"".join(self.chunks))
                self.engine.accept("Queued")
            elif isinstance(ev, smtp.Reset):
                self.chunks = []
            elif isinstance(ev, smtp.Close):
                self.transport.write(self.engine.data_to_send())
                self.transport.close()
                return
            else:  # Helo, Auth (not offered), StartTls (not offered)
                self.engine.accept()
        out = self.engine.data_to_send()
        if out:
            self.transport.write(out)
        self.deadline = self.loop.time() + self.engine.timeout_ms() / 1000
        if self.timer is None or self.deadline < self.timer.when():  # a shorter wait now
            if self.timer:
                self.timer.cancel()
            self.timer = self.loop.call_at(self.deadline, self.timed_out)


def print_message(mail_from, recipients, message):
    to = " ".join(f"<{r}>" for r in recipients)
    sys.stdout.write(f"--- message from <{mail_from}> to {to} ---\n")
    sys.stdout.write(message.decode("utf-8", "replace").replace("\r\n", "\n"))
    sys.stdout.flush()


async def serve(port, domain, on_message=print_message):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Connection(domain, on_message), "127.0.0.1", port)
    print(f"listening on 127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    asyncio.run(serve(int(sys.argv[1]), sys.argv[2].lower()))
