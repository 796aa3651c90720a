"""cmail.smtp: the SMTP server and client engines, sans-I/O, in h11's style.

The caller moves the bytes: receive_data(bytes) what was read (b"" at EOF), data_to_send()
what to write, next_event() until it returns None. A Server's decisions (Helo, Auth, Mail,
Rcpt, DataEnd) are answered with accept()/reject()/authenticated()/fail(), at once or later;
until then the engine parses nothing further. StartTls and Close are the transport's events.
The engines read no clock: arm a timer with timeout_ms() and call on_timeout() when it fires.

Ownership: each object owns its C engine and frees it in close() (also a context manager);
events are plain dataclasses copied out of the engine, valid for ever.
Thread-safety: none; one thread at a time per engine (one engine per connection).
"""
import ctypes
from dataclasses import dataclass
from typing import Optional, Tuple

from . import _lib
from ._engine import Engine, Functions, ServerQueries, size_array

# decisions given as events (the others take the engine's defaults)
DECIDE_HELO = 0x01
DECIDE_AUTH = 0x02
DECIDE_MAIL = 0x04
DECIDE_RCPT = 0x08
DECIDE_DATA_END = 0x10
DECIDE_ALL = 0x1F

# client TLS policy
TLS_NONE = 0
TLS_OPPORTUNISTIC = 1
TLS_REQUIRED = 2

# client failure kinds
FAIL_CONNECTION = 0
FAIL_PROTOCOL = 1
FAIL_IMPLEMENTATION = 2
FAIL_RESPONSE = 3

_EV_STARTTLS, _EV_CLOSE = 1, 2


@dataclass(frozen=True)
class Session:
    """The conversation when an event was queued."""
    helo: Optional[str]
    esmtp: bool
    tls: bool
    user: Optional[str]
    protocol: Optional[str]


@dataclass(frozen=True)
class StartTls:
    """Send the pending output in plaintext, then start TLS; trailing bytes belong to the
    handshake. Call tls_established() after it."""
    trailing: bytes


@dataclass(frozen=True)
class Close:
    """Send the pending output, then close the connection."""


# ---- server events ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Helo:
    """Decide: HELO/EHLO."""
    helo: str
    esmtp: bool
    session: Session


@dataclass(frozen=True)
class Auth:
    """Decide: answer authenticated(identity), reject() or fail()."""
    authzid: str
    authcid: str
    password: str
    session: Session


@dataclass(frozen=True)
class Mail:
    """Decide: MAIL FROM (address "" for <>) with its parameters."""
    address: str
    size: Optional[int]
    body: int  # 0 7BIT, 1 8BITMIME, 2 BINARYMIME
    smtputf8: bool
    ret: Optional[str]
    envid: Optional[str]
    auth: Optional[str]
    session: Session


@dataclass(frozen=True)
class Rcpt:
    """Decide: RCPT TO."""
    address: str
    notify: Optional[str]
    orcpt: Optional[str]
    session: Session


@dataclass(frozen=True)
class Data:
    """Message bytes, dot-unstuffed, CRLF line ends; no answer."""
    chunk: bytes


@dataclass(frozen=True)
class DataEnd:
    """Decide: the whole message arrived; store it, then accept()."""
    session: Session


@dataclass(frozen=True)
class Reset:
    """The transaction ended without DataEnd; no answer."""
    session: Session


class Server(Engine, ServerQueries):
    """One SMTP server conversation. Keyword options are cmail_smtp_server_options' fields
    (hostname, max_message_size, starttls_available, auth_enabled, require_auth, decisions, ...);
    the 220 greeting is queued at once."""

    _kind = "SMTP server engine"
    _prefix = "cmail_smtp_server_"
    _c = Functions("cmail_smtp_server_")
    _output_grows = False  # replies are queued whole
    _free_name = "cmail_smtp_server_free"

    def __init__(self, **options):
        super().__init__()
        lib = _lib.lib()
        opts = _lib.SmtpServerOptions()
        lib.cmail_smtp_server_options_init(ctypes.byref(opts))
        self._keep = []
        for name, value in options.items():
            if name not in dict(opts._fields_):
                raise TypeError(f"unknown SMTP server option {name!r}")
            if isinstance(value, str):
                value = value.encode()
                self._keep.append(value)
            setattr(opts, name, value)
        ptr = ctypes.c_void_p()
        _lib.check(lib.cmail_smtp_server_new, ctypes.byref(opts), ctypes.byref(ptr))
        self._bind(ptr.value)

    def _bind(self, ptr):
        super()._bind(ptr)
        self._ev = _lib.SmtpEvent()  # reused: every field is copied out before the next call
        self._evp = ctypes.byref(self._ev)
        self._session_key = self._session = None

    def next_event(self):
        """The next event (copied out), or None when none waits."""
        ev = self._ev
        st = self._c.next_event(self._ptr, self._evp, self._errp)
        if st:
            self._raise(st)
        t = ev.type
        if t == 0:
            return None
        if t == 14:
            return Data(_lib.take(ev.data, ev.data_len))
        d = _lib.dec
        key = (ev.helo, ev.esmtp, ev.tls, ev.user, ev.protocol)
        if key != self._session_key:  # the same conversation state: the same Session object
            self._session_key = key
            self._session = Session(d(key[0]), bool(key[1]), bool(key[2]), d(key[3]), d(key[4]))
        session = self._session
        if t == 13:
            return Rcpt(d(ev.address) or "", d(ev.notify), d(ev.orcpt), session)
        if t == 12:
            return Mail(d(ev.address) or "", ev.size if ev.has_size else None, ev.body, bool(ev.smtputf8),
                        d(ev.ret), d(ev.envid), d(ev.auth), session)
        if t == 15:
            return DataEnd(session)
        if t == 16:
            return Reset(session)
        if t == 10:
            return Helo(d(ev.helo) or "", bool(ev.esmtp), session)
        if t == 11:
            return Auth(d(ev.authzid) or "", d(ev.authcid) or "", d(ev.password) or "", session)
        if t == _EV_STARTTLS:
            return StartTls(_lib.take(ev.data, ev.data_len))
        if t == _EV_CLOSE:
            return Close()
        raise _lib.Error(f"Internal: unknown SMTP server event type {t}")

    def accept(self, text=None):
        """Accepts the pending decision (not AUTH); text ends the reply (None: "OK")."""
        st = self._c.accept(self._ptr, None if text is None else _lib.enc(text), self._errp)
        if st:
            self._raise(st)

    def authenticated(self, identity):
        """AUTH: the credentials are good; the client is now identity."""
        _lib.check(_lib.lib().cmail_smtp_server_authenticated, self._h(), _lib.enc(identity))

    def reject(self, code, enhanced=None, text=None):
        """Refuses the pending decision: code 400-599, enhanced "5.x.y" (None: "<class>.0.0")."""
        _lib.check(_lib.lib().cmail_smtp_server_reject, self._h(), code, _lib.enc(enhanced), _lib.enc(text))

    def fail(self, reason=None):
        """A backend failure: the peer gets 451 (454 for AUTH); reason is for logs."""
        _lib.check(_lib.lib().cmail_smtp_server_fail, self._h(), _lib.enc(reason))

    @property
    def messages(self):
        """Messages accepted on this connection so far."""
        return _lib.lib().cmail_smtp_server_messages(self._h())


# ---- client events ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Reply:
    code: int  # 0: no reply
    enhanced: str
    text: str


@dataclass(frozen=True)
class Ready:
    """Greeted (and TLS and AUTH done): send_mail() may be called."""


@dataclass(frozen=True)
class RcptResult:
    """index into the recipients given to send_mail; reply 2xx: accepted."""
    index: int
    reply: Reply


@dataclass(frozen=True)
class MailResult:
    """The final reply for the message; the indexes of the accepted recipients."""
    reply: Reply
    accepted: Tuple[int, ...]


@dataclass(frozen=True)
class Failed:
    """kind FAIL_*; reply.code 0 when there was no reply."""
    kind: int
    reason: str
    reply: Reply
    permanent: bool


class Client(Engine):
    """One SMTP client conversation. Keyword options are cmail_smtp_client_options' fields
    (helo_name, tls=TLS_*, auth_user, auth_password, auth_without_tls, chunking, ...)."""

    _kind = "SMTP client engine"
    _prefix = "cmail_smtp_client_"
    _c = Functions("cmail_smtp_client_")
    _free_name = "cmail_smtp_client_free"

    def __init__(self, **options):
        super().__init__()
        lib = _lib.lib()
        opts = _lib.SmtpClientOptions()
        lib.cmail_smtp_client_options_init(ctypes.byref(opts))
        self._keep = []
        for name, value in options.items():
            if name not in dict(opts._fields_):
                raise TypeError(f"unknown SMTP client option {name!r}")
            if isinstance(value, str):
                value = value.encode()
                self._keep.append(value)
            setattr(opts, name, value)
        ptr = ctypes.c_void_p()
        _lib.check(lib.cmail_smtp_client_new, ctypes.byref(opts), ctypes.byref(ptr))
        self._bind(ptr.value)

    def next_event(self):
        """The next result (copied out), or None: results in order, then transport events."""
        ev = _lib.SmtpClientEvent()
        _lib.check(_lib.lib().cmail_smtp_client_next_event, self._h(), ctypes.byref(ev))
        t = ev.type
        if t == 0:
            return None
        d = _lib.dec
        reply = Reply(ev.reply_code, d(ev.reply_enhanced) or "", d(ev.reply_text) or "")
        if t == _EV_STARTTLS:
            return StartTls(_lib.take(ev.data, ev.data_len))
        if t == _EV_CLOSE:
            return Close()
        if t == 20:
            return Ready()
        if t == 21:
            return RcptResult(ev.index, reply)
        if t == 22:
            return MailResult(reply, size_array(ev.accepted, ev.accepted_count))
        if t == 23:
            return Failed(ev.fail_kind, d(ev.reason) or "", reply, bool(ev.permanent))
        raise _lib.Error(f"Internal: unknown SMTP client event type {t}")

    def send_mail(self, mail_from, recipients, message):
        """One message: mail_from ("" for <>), recipients (str), message bytes as stored (CRLF
        line ends, no dot-stuffing). Only after Ready."""
        if isinstance(recipients, (str, bytes)):
            raise TypeError("recipients is a list of addresses")
        encoded = [_lib.enc(r) for r in recipients]
        arr = (ctypes.c_char_p * max(1, len(encoded)))(*encoded)
        message = bytes(message)
        _lib.check(_lib.lib().cmail_smtp_client_send_mail, self._h(), _lib.enc(mail_from), arr, len(encoded),
                   message, len(message))

    def quit(self):
        """QUIT, then Close."""
        _lib.check(_lib.lib().cmail_smtp_client_quit, self._h())
