"""cmail.testing: a real mail server for a test's few seconds. A context manager (Harness) and
a pytest fixture (`cmail_server`, from cmail.pytest_plugin) give a cmail.Server on free
loopback ports (SMTP, POP3, IMAP; passwords allowed without TLS) over a throw-away data
directory, with:

  .ports                         {"smtp": N, "pop3": N, "imap": N}
  .add_user(name, password, address=None)
                                 a user who may use POP3 and IMAP (and SMTP AUTH), with address
                                 (default name@localhost) routed to the user's mailbox
  .messages()                    every message stored so far, as email.message.EmailMessage
                                 with .envelope (mail_from, rcpt_to) and .raw (the bytes)
  .wait_for_messages(count, timeout)
                                 blocks until count messages were stored or timeout seconds
                                 passed (a condition variable, no polling); returns messages()
  .purge()                       forgets the messages and empties the harness users' mailboxes
  .reset()                       purge(), then deletes the users the harness added
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


class Harness:
    """Harness(hostname="localhost", smtp=True, pop3=True, imap=True): see the module docstring."""

    def __init__(self, hostname="localhost", smtp=True, pop3=True, imap=True):
        self.hostname = hostname
        self._protocols = [p for p, on in (("smtp", smtp), ("pop3", pop3), ("imap", imap)) if on]
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
            self.server.start()
        except BaseException:
            self.close()
            raise
        return self

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

    def purge(self):
        """Forgets the messages gathered so far and empties the mailboxes of the harness's users
        (each is deleted with its mail and made again with the same password and address)."""
        self._server()
        with self._cond:
            self._delivered.clear()
        for name, (password, address) in self._users.items():
            self._remove(name, address)
            self._create(name, password, address)

    def reset(self):
        """purge(), then deletes the users (and their addresses) that add_user made."""
        self._server()
        with self._cond:
            self._delivered.clear()
        for name, (_, address) in self._users.items():
            self._remove(name, address)
        self._users.clear()

    def _remove(self, name, address):
        st = self.store
        st.delete_user(name)
        for row in st.list_addresses(address):  # when the user's deletion left the row
            st.delete_address(row.order)

    def _on_delivered(self, mail_from, rcpt_to, raw):
        with self._cond:
            self._delivered.append((mail_from, tuple(rcpt_to), raw))
            self._cond.notify_all()


def _message(mail_from, rcpt_to, raw):
    msg = email.parser.BytesParser(policy=email.policy.default).parsebytes(raw)
    msg.envelope = Envelope(mail_from, rcpt_to)
    msg.raw = raw
    return msg
