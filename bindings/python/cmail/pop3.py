"""cmail.pop3: the POP3 server engine, sans-I/O, in h11's style.

receive_data(bytes) what was read (b"" at EOF), data_to_send() what to write, next_event()
until None. Decisions: Login (answer maildrop(identity, messages) or reject()/fail()),
Retrieve (answer message(bytes)), Update (delete the messages durably, then accept()).

Ownership: the object owns its C engine and frees it in close(); events are copies.
Thread-safety: none; one thread at a time per engine.
"""
import ctypes
from dataclasses import dataclass
from typing import Tuple

from . import _lib
from ._engine import Engine, Functions, ServerQueries, size_array
from .smtp import Close, StartTls

__all__ = ["Server", "Login", "Retrieve", "Update", "StartTls", "Close"]

RESP_NONE = 0
RESP_IN_USE = 1
RESP_LOGIN_DELAY = 2
RESP_SYS_TEMP = 3
RESP_SYS_PERM = 4
RESP_AUTH = 5


@dataclass(frozen=True)
class Login:
    """Decide: authzid ("" for USER/PASS), authcid, password."""
    authzid: str
    authcid: str
    password: str


@dataclass(frozen=True)
class Retrieve:
    """Decide: give message number index+1 with message()."""
    index: int


@dataclass(frozen=True)
class Update:
    """Decide: delete these 0-based indexes (ascending) durably, then accept()."""
    deleted: Tuple[int, ...]


class Server(Engine, ServerQueries):
    """One POP3 server conversation. Keyword options are cmail_pop3_server_options' fields
    (hostname, starttls_available, tls_active, tls_required, idle_timeout_ms, ...)."""

    _kind = "POP3 server engine"
    _prefix = "cmail_pop3_server_"
    _c = Functions("cmail_pop3_server_")
    _free_name = "cmail_pop3_server_free"

    def __init__(self, **options):
        super().__init__()
        lib = _lib.lib()
        opts = _lib.Pop3ServerOptions()
        lib.cmail_pop3_server_options_init(ctypes.byref(opts))
        self._keep = []
        for name, value in options.items():
            if name not in dict(opts._fields_):
                raise TypeError(f"unknown POP3 server option {name!r}")
            if isinstance(value, str):
                value = value.encode()
                self._keep.append(value)
            setattr(opts, name, value)
        ptr = ctypes.c_void_p()
        _lib.check(lib.cmail_pop3_server_new, ctypes.byref(opts), ctypes.byref(ptr))
        self._bind(ptr.value)

    def next_event(self):
        """The next event (copied out), or None."""
        ev = _lib.Pop3Event()
        _lib.check(_lib.lib().cmail_pop3_server_next_event, self._h(), ctypes.byref(ev))
        t, d = ev.type, _lib.dec
        if t == 0:
            return None
        if t == 1:
            return StartTls(_lib.take(ev.data, ev.data_len))
        if t == 2:
            return Close()
        if t == 30:
            return Login(d(ev.authzid) or "", d(ev.authcid) or "", d(ev.password) or "")
        if t == 31:
            return Retrieve(ev.index)
        if t == 32:
            return Update(size_array(ev.deleted, ev.deleted_count))
        raise _lib.Error(f"Internal: unknown POP3 server event type {t}")

    def maildrop(self, identity, messages):
        """Login: the client is identity and holds messages, a list of (size, uid): size in
        octets with CRLF line ends, uid 1-70 characters 0x21-0x7E."""
        messages = list(messages)
        sizes = (ctypes.c_uint64 * max(1, len(messages)))(*[s for s, _ in messages])
        uids = (ctypes.c_char_p * max(1, len(messages)))(*[_lib.enc(u) for _, u in messages])
        _lib.check(_lib.lib().cmail_pop3_server_maildrop, self._h(), _lib.enc(identity), sizes, uids,
                   len(messages))

    def message(self, data):
        """Retrieve: the message as stored; its size must be the listed one."""
        data = bytes(data)
        _lib.check(_lib.lib().cmail_pop3_server_message, self._h(), data, len(data))

    def accept(self):
        """Update: the deletions are durable."""
        _lib.check(_lib.lib().cmail_pop3_server_accept, self._h())

    def reject(self, text=None, code=RESP_NONE):
        """"-ERR [code] text" for any decision."""
        _lib.check(_lib.lib().cmail_pop3_server_reject, self._h(), code, _lib.enc(text))

    def fail(self, reason=None):
        """A backend failure: -ERR [SYS/TEMP]; reason is for logs."""
        _lib.check(_lib.lib().cmail_pop3_server_fail, self._h(), _lib.enc(reason))
