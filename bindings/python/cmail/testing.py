"""cmail.testing: a real mail server for a test's few seconds. A context manager (Harness) and
a pytest fixture (`cmail_server`, from cmail.pytest_plugin) give a cmail.Server on free
loopback ports (SMTP, POP3, IMAP; passwords allowed without TLS) over a throw-away data
directory, whose outbound mail is captured instead of leaving the machine, with:

  .ports                         {"smtp": N, "pop3": N, "imap": N}
  .add_user(name, password, address=None)
                                 a user who may use POP3 and IMAP, and SMTP AUTH to send to
                                 any address, with address (default name@<hostname>) routed to
                                 the user's mailbox
  .messages()                    every message the server accepted so far, as
                                 email.message.EmailMessage with .envelope (mail_from,
                                 rcpt_to) and .raw (the bytes)
  .wait_for_messages(count, timeout)
                                 blocks until count messages were accepted or timeout seconds
                                 passed (a condition variable, no polling); returns messages()
  .outbound()                    the mail the server's delivery sent to other hosts, as it left
                                 (envelope, .helo, .raw), kept by a sink inside the server
  .wait_for_outbound(count, timeout)
  fake DNS (Harness(mx=..., addresses=..., txt=..., nxdomain=...)): every other domain leads
                                 to the sink; an NXDOMAIN or a null MX bounces, an address
                                 other than 127.0.0.1 is a host that cannot be reached
                                 (retried); TXT records are what SPF checks of incoming mail
                                 find (the result is in the stored copy's
                                 Authentication-Results header; the harness's clients are
                                 127.0.0.1)
  .fail(phase, recipient, code, text, times, outbound=False)
                                 reply code (4xx or 5xx) at phase "mail", "rcpt" or "data"
                                 for a recipient (None: any); outbound=True: the sink does it
  .disconnect(phase, recipient, times, outbound=False)
                                 drop the connection at that phase with no reply
  .slow(phase, seconds, recipient, times, outbound=False)
                                 give the usual reply that much later
  .disk_full()                   a full disk until the returned object's end() (or the end of
                                 its `with` block): intake answers 452 4.3.1, nothing is stored
  .clear_faults()
  .purge()                       forgets the messages and the captured mail and empties the
                                 harness users' mailboxes
  .reset()                       purge(), clear_faults(), ends a full disk, then deletes the
                                 users the harness added
  .store, .server                the cmail.Store and cmail.Server underneath

Ownership: the harness owns its server and its temporary directory; leaving the `with` block
(or close()) stops the server and removes the directory.
Thread-safety: messages are gathered on the server's thread under a lock; every method may be
called from any one test thread while the server runs.
"""
import email.parser
import email.policy
import shutil
import tempfile
import threading
from collections import namedtuple

from ._lib import INVALID_ARGUMENT, Closed
from .server import Server

Envelope = namedtuple("Envelope", "mail_from rcpt_to")
PHASES = ("mail", "rcpt", "data")


class Harness:
    """Harness(hostname="localhost", smtp=True, pop3=True, imap=True): see the module docstring."""

    def __init__(self, hostname="localhost", smtp=True, pop3=True, imap=True, capture=True, mx=None,
                 addresses=None, txt=None, nxdomain=()):
        """mx: {domain: [host, ...] or [(preference, host), ...]}; addresses: {host: [address,
        ...]}; txt: {name: text or [text, ...]}; nxdomain: names that do not exist.
        capture=False: no outbound delivery at all (mail for other hosts stays queued, and no
        SPF checks)."""
        self.hostname = hostname
        self._protocols = [p for p, on in (("smtp", smtp), ("pop3", pop3), ("imap", imap)) if on]
        self._capture = capture
        self._dns = (dict(mx or {}), dict(addresses or {}), dict(txt or {}), tuple(nxdomain))
        if not capture and (mx or addresses or txt or nxdomain):
            raise ValueError("fake DNS entries are for capture mode (capture=True)")
        self._cond = threading.Condition()
        self._delivered = []  # (mail_from, rcpt_to, raw bytes)
        self._users = {}      # name -> (password, address)
        self._dir = None
        self.server = None

    # ---- lifetime ----
    def start(self):
        self._dir = tempfile.mkdtemp(prefix="cmail-harness-")
        try:
            self.server = Server(self._dir + "/data", self.hostname)
            for p in self._protocols:
                self.server.listen(p, "127.0.0.1", 0, auth=(p == "smtp"), plaintext_auth=True)
            self.server.on_delivered(self._on_delivered)
            if self._capture:
                self._fake_dns()
            self.server.start()
        except BaseException:
            self.close()
            raise
        return self

    def _fake_dns(self):
        srv = self.server
        srv.outbound("capture")
        mx, addresses, txt, nxdomain = self._dns
        for domain, hosts in mx.items():
            for n, h in enumerate(hosts):
                pref, host = h if isinstance(h, tuple) else (10 * (n + 1), h)
                srv.dns_mx(domain, host, pref)
        for host, addrs in addresses.items():
            for a in ([addrs] if isinstance(addrs, str) else addrs):
                srv.dns_address(host, a)
        for name, texts in txt.items():
            for t in ([texts] if isinstance(texts, str) else texts):
                srv.dns_txt(name, t)
        for name in nxdomain:
            srv.dns_nxdomain(name)

    def close(self):
        if self.server is not None:
            self.server.close()
            self.server = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    # ---- what the tests use ----
    def _server(self):
        if self.server is None:
            raise Closed("InvalidArgument: this harness is not running (closed, or not started)", INVALID_ARGUMENT)
        return self.server

    @property
    def ports(self):
        return dict(self._server().ports)

    @property
    def store(self):
        return self._server().store

    @property
    def data_dir(self):
        return self._server().data_dir

    def add_user(self, name, password, address=None):
        """Adds a user with POP3, IMAP and SMTP (router "any") and an address routed to the
        user's mailbox; returns the address."""
        address = address or f"{name}@{self.hostname}"
        self._create(name, password, address)
        self._users[name] = (password, address)
        return address

    def _create(self, name, password, address):
        st = self.store
        st.add_user(name, password)
        st.enable_pop3(name)
        st.enable_imap(name)
        st.enable_smtp(name, "any")
        st.add_address(address, "store", name)

    def messages(self):
        """The messages stored so far, oldest first."""
        with self._cond:
            delivered = list(self._delivered)
        return [_message(*d) for d in delivered]

    def wait_for_messages(self, count, timeout=5.0):
        """Waits until at least count messages were stored; raises TimeoutError after timeout
        seconds, naming how many arrived."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._delivered) >= count, timeout):
                raise TimeoutError(f"{len(self._delivered)} of {count} messages arrived in {timeout} s")
        return self.messages()

    def outbound(self):
        """The mail the server's outbound delivery sent so far (capture mode), oldest first, as
        EmailMessage with .envelope, .helo and .raw (the octets as they left)."""
        if not self._capture:
            return []
        out = []
        for c in self._server().captured():
            msg = _message(c.mail_from, c.rcpt_to, c.data)
            msg.helo = c.helo
            out.append(msg)
        return out

    def wait_for_outbound(self, count, timeout=10.0):
        """Waits until at least count messages went out; raises TimeoutError after timeout
        seconds, naming how many did. Delivery runs at once for new mail; a deferred one is
        retried on the queue's schedule (minutes), not within a test's wait."""
        got = self._server().wait_captured(count, timeout) if self._capture else 0
        if got < count:
            raise TimeoutError(f"{got} of {count} outbound messages arrived in {timeout} s")
        return self.outbound()

    # ---- faults on purpose ----
    def fail(self, phase, recipient=None, code=451, text=None, times=0, outbound=False):
        """Reply code (400-599) and text at phase ("mail", "rcpt", "data") for recipient (None:
        any) times times (0: until cleared); outbound=True: at the sink, for outbound mail."""
        self._fault(phase, recipient, times, outbound, action="reply", code=code, text=text)

    def disconnect(self, phase, recipient=None, times=0, outbound=False):
        """Drop the connection at phase with no reply (at "data": after the message's last
        line, before any reply: the client cannot know whether it was kept; it was not)."""
        self._fault(phase, recipient, times, outbound, action="disconnect")

    def slow(self, phase, seconds, recipient=None, times=0, outbound=False):
        """The usual reply at phase, seconds late."""
        self._fault(phase, recipient, times, outbound, action="delay", delay=seconds)

    def _fault(self, phase, recipient, times, outbound, **how):
        if phase not in PHASES:
            raise ValueError(f"phase {phase!r} is not one of {PHASES}")
        if outbound and not self._capture:
            raise ValueError("outbound faults are for capture mode (capture=True)")
        self._server().fault(phase, recipient, times=times, target="capture" if outbound else "intake", **how)

    def clear_faults(self):
        """Removes every fault, on intake and on the sink."""
        srv = self._server()
        srv.clear_faults("intake")
        if self._capture:
            srv.clear_faults("capture")

    def disk_full(self):
        """A simulated full disk from now until end() of the returned object (or its `with`
        block's end): every write of the store fails, SMTP intake answers 452 4.3.1."""
        self._server().disk_full(True)
        return _DiskFull(self)

    def purge(self):
        """Forgets the messages and the outbound mail gathered so far and empties the mailboxes
        of the harness's users (each is deleted with its mail and made again with the same
        password and address)."""
        self._server()
        self._forget()
        for name, (password, address) in self._users.items():
            self._remove(name, address)
            self._create(name, password, address)

    def reset(self):
        """Forgets the messages and outbound mail, clears the faults, ends a full disk, then
        deletes the users (and their addresses) that add_user made."""
        self._server().disk_full(False)
        self.clear_faults()
        self._forget()
        for name, (_, address) in self._users.items():
            self._remove(name, address)
        self._users.clear()

    def _forget(self):
        with self._cond:
            self._delivered.clear()
        if self._capture:
            self.server.clear_captured()

    def _remove(self, name, address):
        st = self.store
        st.delete_user(name)
        for row in st.list_addresses(address):  # when the user's deletion left the row
            st.delete_address(row.order)

    def _on_delivered(self, mail_from, rcpt_to, raw):
        with self._cond:
            self._delivered.append((mail_from, tuple(rcpt_to), raw))
            self._cond.notify_all()


class _DiskFull:
    """The full disk of Harness.disk_full(): end() (or leaving `with`) gives the room back."""

    def __init__(self, harness):
        self._harness = harness

    def end(self):
        if self._harness.server is not None:
            self._harness.server.disk_full(False)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.end()


def _message(mail_from, rcpt_to, raw):
    msg = email.parser.BytesParser(policy=email.policy.default).parsebytes(raw)
    msg.envelope = Envelope(mail_from, rcpt_to)
    msg.raw = raw
    return msg
