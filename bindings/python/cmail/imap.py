"""cmail.imap: the IMAP server engine, sans-I/O, in h11's style.

receive_data(bytes) what was read (b"" at EOF), data_to_send() what to write, next_event()
until None. The engine runs the protocol (literals, states, CAPABILITY, STARTTLS, IDLE,
LOGOUT, sequence numbers); every decision about the mailboxes is an event answered with a
verdict method, at once or later (until then the engine parses nothing further):

  Login      user(identity)            List     mailboxes([Mailbox...])
  Status     counts(...)               Create, Delete, Rename, Subscribe: accept()
  Select     selected(...)             Changes  changes(...)
  Expunge    expunged(uids)            Store    stored([MessageState...])
  Copy       copied(uidvalidity, source, target)
  Append     accept(), then AppendData events, then AppendEnd: appended(uidvalidity, uid)
  Fetch, Search (message requests): message(uid, ...) for each UID asked that exists, then done()
  any decision: reject(text, code) or fail(reason)

Unselect and AppendAbort need no answer. Fetch and Search name the messages whose data the
engine needs; the library computes ENVELOPE, BODYSTRUCTURE, sections and every SEARCH key
from what message() gives (the raw octets when the event's need_octets is set), so the
embedder never parses IMAP or MIME. A Search holds one message at a time; a Fetch batch holds
the part trees and only the octets its items send (at most 16 messages when they send content)
until done(). Flags are the SEEN,
ANSWERED, FLAGGED, DELETED, DRAFT bits; keywords are tuples of atoms.

Ownership: the object owns its C engine and frees it in close(); events are copies.
Thread-safety: none; one thread at a time per engine.
"""
import ctypes
from dataclasses import dataclass, field
from typing import Optional, Tuple

from . import _lib
from ._engine import Engine, Functions, ServerQueries
from .smtp import Close, StartTls

__all__ = ["Server", "Login", "List", "Status", "Create", "Delete", "Rename", "Subscribe", "Select", "Unselect",
           "Changes", "Expunge", "Store", "Copy", "Append", "AppendData", "AppendEnd", "AppendAbort", "Fetch",
           "Search", "StartTls", "Close", "Mailbox", "MessageState"]

SEEN, ANSWERED, FLAGGED, DELETED, DRAFT = 0x01, 0x02, 0x04, 0x08, 0x10
STORE_REPLACE, STORE_ADD, STORE_REMOVE = 0, 1, 2

(RESP_NONE, RESP_AUTHENTICATIONFAILED, RESP_AUTHORIZATIONFAILED, RESP_UNAVAILABLE, RESP_CONTACTADMIN, RESP_LIMIT,
 RESP_TRYCREATE, RESP_NONEXISTENT, RESP_ALREADYEXISTS, RESP_CANNOT, RESP_HASCHILDREN, RESP_INUSE, RESP_NOPERM,
 RESP_OVERQUOTA, RESP_SERVERBUG, RESP_USEATTR) = range(16)

_SUBSCRIBED, _NONEXISTENT = 0x01, 0x02

_ev = dataclass(frozen=True, slots=True)


@_ev
class Login:
    """Decide: answer user(identity) or reject(code=RESP_AUTHENTICATIONFAILED)."""
    authzid: str
    authcid: str
    password: str


@_ev
class List:
    """Decide: every mailbox of the user and every subscribed name: mailboxes()."""


@_ev
class Status:
    """Decide: counts() of mailbox; RESP_NONEXISTENT for an unknown one."""
    mailbox: str


@_ev
class Create:
    """Decide: create mailbox (its parents too) with special_use ("" or "\\\\Sent", ...): accept()."""
    mailbox: str
    special_use: str


@_ev
class Delete:
    mailbox: str


@_ev
class Rename:
    """Decide: rename mailbox (and its children) to target: accept()."""
    mailbox: str
    target: str


@_ev
class Subscribe:
    """Decide: subscribe (True) or unsubscribe mailbox: accept()."""
    mailbox: str
    subscribe: bool


@_ev
class Select:
    """Decide: selected() with the mailbox's messages; read_only for EXAMINE."""
    mailbox: str
    read_only: bool


@_ev
class Unselect:
    """The mailbox is no longer selected; no answer."""


@_ev
class Changes:
    """Decide: changes() since modseq `since`, UIDs from `uidnext` on."""
    since: int
    uidnext: int


@_ev
class Expunge:
    """Decide: remove the messages with \\\\Deleted among uids (all of them when uids is empty):
    expunged(uids removed)."""
    uids: Tuple[int, ...]


@_ev
class Store:
    """Decide: change the flags of uids (op STORE_*), unchanged_since (CONDSTORE) or None:
    stored()."""
    uids: Tuple[int, ...]
    op: int
    flags: int
    keywords: Tuple[str, ...]
    unchanged_since: Optional[int]


@_ev
class Copy:
    """Decide: copy (or move) uids to target: copied(); RESP_TRYCREATE when it does not exist."""
    uids: Tuple[int, ...]
    target: str
    move: bool


@_ev
class Append:
    """Decide: a message of size octets for mailbox: accept() to receive it (AppendData
    events, then AppendEnd)."""
    mailbox: str
    flags: int
    keywords: Tuple[str, ...]
    internal_date: Optional[int]
    size: int


@_ev
class AppendData:
    """The next octets of the accepted APPEND; no answer."""
    data: bytes


@_ev
class AppendEnd:
    """Decide: store the message durably: appended(uidvalidity, uid)."""


@_ev
class AppendAbort:
    """The accepted APPEND ends without storing; no answer."""


@_ev
class Fetch:
    """Message request: message() for each of uids that exists, then done(). need_octets: give
    the octets; set_seen: set \\\\Seen on each first, durably (seen_set=True where it changed);
    changed_since: messages whose modseq is not above it are left out by the library."""
    uids: Tuple[int, ...]
    need_octets: bool
    set_seen: bool
    changed_since: Optional[int]


@_ev
class Search:
    """Message request: message() for each of uids (the view, in sequence order) that exists,
    then done(); the library evaluates the keys."""
    uids: Tuple[int, ...]
    need_octets: bool


@dataclass(frozen=True)
class Mailbox:
    """One entry of mailboxes(): a mailbox, or (exists=False) a name that is only subscribed."""
    name: str
    special_use: Optional[str] = None
    subscribed: bool = False
    exists: bool = True


@dataclass(frozen=True)
class MessageState:
    """One message for selected(), changes() and stored()."""
    uid: int
    flags: int = 0
    keywords: Tuple[str, ...] = field(default_factory=tuple)
    modseq: int = 0


def _words(b):
    return tuple(b.decode("utf-8", "surrogateescape").split()) if b else ()


def _join(keywords):
    if not keywords:
        return None
    if isinstance(keywords, str):
        return keywords.encode()
    return " ".join(keywords).encode()


def _u32(values):
    values = list(values)
    return (ctypes.c_uint32 * len(values))(*values) if values else None, len(values)


def _states(messages):
    """Parallel arrays (uids, flags, keywords, modseqs, count) of MessageStates or (uid, flags)
    tuples."""
    messages = [m if isinstance(m, MessageState) else MessageState(*m) for m in messages]
    n = len(messages)
    if not n:
        return None, None, None, None, 0
    uids = (ctypes.c_uint32 * n)(*[m.uid for m in messages])
    flags = (ctypes.c_uint32 * n)(*[m.flags for m in messages])
    kws = None
    if any(m.keywords for m in messages):
        kws = (ctypes.c_char_p * n)(*[_join(m.keywords) for m in messages])
    modseqs = None
    if any(m.modseq for m in messages):
        modseqs = (ctypes.c_uint64 * n)(*[m.modseq for m in messages])
    return uids, flags, kws, modseqs, n


class Server(Engine, ServerQueries):
    """One IMAP server conversation. Keyword options are cmail_imap_server_options' fields
    (hostname, starttls_available, tls_active, tls_required, max_errors, max_login_failures,
    idle_timeout_ms, max_command_line, max_append, max_message)."""

    _kind = "IMAP server engine"
    _prefix = "cmail_imap_server_"
    _c = Functions("cmail_imap_server_")
    _free_name = "cmail_imap_server_free"

    def __init__(self, **options):
        super().__init__()
        lib = _lib.lib()
        opts = _lib.ImapServerOptions()
        lib.cmail_imap_server_options_init(ctypes.byref(opts))
        keep = []
        for name, value in options.items():
            if name not in dict(opts._fields_):
                raise TypeError(f"unknown IMAP server option {name!r}")
            if isinstance(value, str):
                value = value.encode()
                keep.append(value)
            setattr(opts, name, value)
        ptr = ctypes.c_void_p()
        _lib.check(lib.cmail_imap_server_new, ctypes.byref(opts), ctypes.byref(ptr))
        self._bind(ptr.value)
        self._ev = _lib.ImapEvent()  # reused: every field is copied out before the next call
        self._evp = ctypes.byref(self._ev)
        self._msg = _lib.ImapMessage()  # reused by message()
        self._msgp = ctypes.byref(self._msg)

    def next_event(self):
        """The next event (copied out), or None."""
        ev = self._ev
        st = self._c.next_event(self._ptr, self._evp, self._errp)
        if st:
            self._raise(st)
        t, d = ev.type, _lib.dec
        if t == 0:
            return None
        if t in (57, 58):  # the hot ones first
            uids = tuple(ev.uids[:ev.uid_count])
            if t == 57:
                return Fetch(uids, bool(ev.need_octets), bool(ev.set_seen), ev.modseq if ev.has_modseq else None)
            return Search(uids, bool(ev.need_octets))
        if t == 54:
            return AppendData(_lib.take(ev.data, ev.data_len))
        if t == 49:
            return Changes(ev.modseq, ev.uidnext)
        if t == 40:
            return Login(d(ev.authzid) or "", d(ev.authcid) or "", d(ev.password) or "")
        if t == 41:
            return List()
        if t == 42:
            return Status(d(ev.mailbox) or "")
        if t == 43:
            return Create(d(ev.mailbox) or "", d(ev.special_use) or "")
        if t == 44:
            return Delete(d(ev.mailbox) or "")
        if t == 45:
            return Rename(d(ev.mailbox) or "", d(ev.target) or "")
        if t == 46:
            return Subscribe(d(ev.mailbox) or "", bool(ev.subscribe))
        if t == 47:
            return Select(d(ev.mailbox) or "", bool(ev.read_only))
        if t == 48:
            return Unselect()
        if t == 50:
            return Expunge(tuple(ev.uids[:ev.uid_count]))
        if t == 51:
            return Store(tuple(ev.uids[:ev.uid_count]), ev.op, ev.flags, _words(ev.keywords),
                         ev.modseq if ev.has_modseq else None)
        if t == 52:
            return Copy(tuple(ev.uids[:ev.uid_count]), d(ev.target) or "", bool(ev.move))
        if t == 53:
            return Append(d(ev.mailbox) or "", ev.flags, _words(ev.keywords),
                          ev.internal_date if ev.has_date else None, ev.size)
        if t == 55:
            return AppendEnd()
        if t == 56:
            return AppendAbort()
        if t == 1:
            return StartTls(_lib.take(ev.data, ev.data_len))
        if t == 2:
            return Close()
        raise _lib.Error(f"Internal: unknown IMAP server event type {t}")

    @property
    def idling(self):
        """True while the client idles (IDLE)."""
        return bool(self._c.idling(self._h()))

    def mailbox_changed(self):
        """The selected mailbox changed elsewhere: a Changes event comes at once while idling,
        else at the end of the next command that may report changes."""
        st = self._c.mailbox_changed(self._ptr, self._errp)
        if st:
            self._raise(st)

    def _call(self, fn, *args):
        st = fn(self._ptr, *args, self._errp)
        if st:
            self._raise(st)

    # ---- verdicts ----

    def user(self, identity):
        """Login: the client is now identity."""
        self._call(self._c.user, _lib.enc(identity))

    def accept(self):
        """Create, Delete, Rename, Subscribe: done, durably; Append: send the message."""
        self._call(self._c.accept)

    def mailboxes(self, mailboxes):
        """List: Mailbox entries (or plain names)."""
        boxes = [m if isinstance(m, Mailbox) else Mailbox(m) for m in mailboxes]
        n = len(boxes)
        names = (ctypes.c_char_p * max(1, n))(*[_lib.enc(m.name) for m in boxes])
        uses = (ctypes.c_char_p * max(1, n))(*[_lib.enc(m.special_use) for m in boxes])
        attrs = (ctypes.c_uint * max(1, n))(*[(_SUBSCRIBED if m.subscribed else 0) |
                                               (0 if m.exists else _NONEXISTENT) for m in boxes])
        self._call(self._c.mailboxes, names, uses, attrs, n)

    def counts(self, messages=0, uidnext=1, uidvalidity=1, unseen=0, deleted=0, size=0, highest_modseq=0,
               recent=0):
        """Status: the mailbox's counts."""
        st = _lib.ImapStatus(messages, recent, uidnext, uidvalidity, unseen, deleted, size, highest_modseq)
        self._call(self._c.counts, ctypes.byref(st))

    def selected(self, uidvalidity, uidnext, messages=(), highest_modseq=0, keywords=(), read_only=False):
        """Select: every message (MessageState or (uid, flags) tuples, UIDs ascending), the
        keywords defined in the mailbox; read_only makes a SELECT read-only."""
        uids, flags, kws, modseqs, n = _states(messages)
        self._call(self._c.selected, uidvalidity, uidnext, highest_modseq, int(read_only), uids, flags, kws, modseqs,
                   n, _join(keywords))

    def changes(self, uidnext, highest_modseq=0, messages=(), expunged=()):
        """Changes: messages added or changed since then (current flags) and UIDs expunged."""
        uids, flags, kws, modseqs, n = _states(messages)
        gone, gone_n = _u32(expunged)
        self._call(self._c.changes, uidnext, highest_modseq, uids, flags, kws, modseqs, n, gone, gone_n)

    def expunged(self, uids):
        """Expunge: the UIDs removed."""
        arr, n = _u32(uids)
        self._call(self._c.expunged, arr, n)

    def stored(self, messages, modified=()):
        """Store: every message of the set that exists, with its flags after the change;
        modified: UIDs left alone because of unchanged_since."""
        uids, flags, kws, modseqs, n = _states(messages)
        mod, mod_n = _u32(modified)
        self._call(self._c.stored, uids, flags, kws, modseqs, n, mod, mod_n)

    def copied(self, uidvalidity, source, target):
        """Copy: the target's UIDVALIDITY and the UIDs pairwise (source ascending)."""
        src, n = _u32(source)
        dst, m = _u32(target)
        if n != m:
            raise ValueError("source and target differ in length")
        self._call(self._c.copied, uidvalidity, src, dst, n)

    def appended(self, uidvalidity, uid):
        """AppendEnd: stored as uid."""
        self._call(self._c.appended, uidvalidity, uid)

    def message(self, uid, flags=0, keywords=(), modseq=0, internal_date=0, octets=None, size=None,
                seen_set=False):
        """Fetch, Search: one message of the request: its octets as stored (bytes) when the
        event's need_octets is set, else its size."""
        m = self._msg
        m.uid = uid
        m.flags = flags
        m.keywords = _join(keywords)
        m.modseq = modseq
        m.internal_date = internal_date
        if octets is not None:
            if type(octets) is not bytes:
                octets = bytes(octets)
            m.octets = octets
            m.octets_len = len(octets)
            m.size = len(octets)
        else:
            m.octets = None
            m.octets_len = 0
            m.size = size or 0
        m.seen_set = 1 if seen_set else 0
        st = self._c.message(self._ptr, self._msgp, self._errp)
        m.octets = None  # the library copied what it needs
        if st:
            self._raise(st)

    def done(self):
        """Fetch, Search: every message of the request that exists was given."""
        self._call(self._c.done)

    def reject(self, text=None, code=RESP_NONE):
        """"tag NO [code] text" for any decision."""
        self._call(self._c.reject, code, _lib.enc(text))

    def fail(self, reason=None):
        """A backend failure: NO [UNAVAILABLE]; reason is for logs."""
        self._call(self._c.fail, _lib.enc(reason))
