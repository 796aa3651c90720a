"""cmail.server: the whole mail server in-process (cmail_server): a master database in a data
directory, SMTP, POP3 and IMAP listeners served by a thread the library owns, and two Python
hooks: on_rcpt (policy for each recipient) and on_delivered (each message after its durable
commit, before the client's 250). Outbound delivery (outbound()) either goes to other hosts
or, in capture mode, to a sink inside the server that keeps it (captured()), with fake DNS
entries; faults on purpose (fault(), disk_full()) for the server's own SMTP intake and for
the sink.

Ownership: a Server owns its C server; close() (or leaving the `with` block) stops it and frees
it. It keeps the ctypes callback objects for its whole life (the library calls them until it is
freed). Server.store is lent by the server and dies with it.
Thread-safety: listen, on_delivered, on_rcpt, on_log, tls_certificate, outbound, dns_*,
start, stop and close are for one thread at a time, never from inside a callback; fault,
clear_faults, disk_full, captured, wait_captured and clear_captured from any thread, also
while the server runs. The callbacks run on the server's thread: keep them short
and guard what they share (the GIL makes single list appends safe). An exception raised by a
callback is logged (logger "cmail"), counted in callback_errors, kept in last_callback_error,
and the library gets a safe answer: on_rcpt 451 (try later), on_delivered nothing (the message
is stored already). Server.store may be used from any thread while the server runs. Servers
still open when the interpreter exits are closed by an atexit hook, so that no callback runs
into a finalizing interpreter.
"""
import atexit
import logging
import sys
import threading
import weakref
from collections import namedtuple
from ctypes import byref, c_int, c_size_t, c_void_p

from . import _lib
from .store import Store

log = logging.getLogger("cmail")

PROTOCOLS = {"smtp": 1, "pop3": 2, "imap": 3}
_live = weakref.WeakSet()  # servers not closed yet: closed at exit, before the interpreter goes


@atexit.register
def _close_all():
    for srv in list(_live):
        srv.close()

STARTTLS, TLS, AUTH, REQUIRE_AUTH, PLAINTEXT_AUTH = 0x01, 0x02, 0x04, 0x08, 0x10
OUTBOUND = {"dns": 1, "capture": 2}
FAULT_TARGETS = {"intake": 1, "capture": 2}
PHASES = {"mail": 1, "rcpt": 2, "data": 3}
ACTIONS = {"reply": 1, "disconnect": 2, "delay": 3}

# A message the capture sink kept: id (1, 2, ...), the reverse path ("" for <>), the
# recipients, the client's HELO name, and the octets as received.
Captured = namedtuple("Captured", "id mail_from rcpt_to helo data")


def _choice(table, value, what):
    if value not in table:
        raise _lib.InvalidArgument(f"InvalidArgument: {what} {value!r} is not one of {sorted(table)}",
                                   _lib.INVALID_ARGUMENT)
    return table[value]


class Server(_lib.Handle):
    """Server(data_dir, hostname=None): opens or creates data_dir/master.db3 and a self-signed
    certificate there. listen() binds (port 0: a free one) and returns the port; start() serves."""

    _kind = "server"
    _free_name = "cmail_server_free"

    def __init__(self, data_dir, hostname=None):
        super().__init__()
        ptr = c_void_p()
        _lib.check(_lib.lib().cmail_server_new, _lib.enc(str(data_dir)), _lib.enc(hostname), byref(ptr))
        self._ptr = ptr.value
        self.data_dir = str(data_dir)
        self.ports = {}  # listener name -> port, e.g. {"smtp": 2525}
        self.callback_errors = 0
        self.last_callback_error = None
        self._errors_lock = threading.Lock()
        self._delivered_fn = self._rcpt_fn = self._log_fn = None  # ctypes callbacks, alive as long as the server
        self._store = Store(_lib.lib().cmail_server_store(self._ptr), owner=self)
        self.running = False
        _live.add(self)

    @property
    def store(self):
        """The server's store (users, addresses), lent by the server."""
        self._h()
        return self._store

    def listen(self, protocol, host="127.0.0.1", port=0, *, starttls=False, tls=False, auth=False,
               require_auth=False, plaintext_auth=False, name=None):
        """Binds a listener now: protocol "smtp", "pop3" or "imap"; returns the bound port, also
        kept in .ports under name (default: the protocol, with "s" for implicit TLS). A port in
        use raises IoError."""
        if protocol not in PROTOCOLS:
            raise _lib.InvalidArgument(f"InvalidArgument: protocol {protocol!r} is not one of {sorted(PROTOCOLS)}",
                                       _lib.INVALID_ARGUMENT)
        flags = ((STARTTLS if starttls else 0) | (TLS if tls else 0) | (AUTH if auth else 0)
                 | (REQUIRE_AUTH if require_auth else 0) | (PLAINTEXT_AUTH if plaintext_auth else 0))
        listener = c_int(-1)
        lib = _lib.lib()
        _lib.check(lib.cmail_server_listen, self._h(), PROTOCOLS[protocol], _lib.enc(host), port, flags,
                   byref(listener))
        bound = lib.cmail_server_port(self._ptr, listener.value)
        base = name or (protocol + ("s" if tls else ""))
        key, n = base, 1
        while key in self.ports:  # a second listener of a kind: "smtp-2"
            n += 1
            key = f"{base}-{n}"
        self.ports[key] = bound
        return bound

    def _callback_failed(self, what):
        with self._errors_lock:
            self.callback_errors += 1
        self.last_callback_error = sys.exc_info()[1]
        log.exception("cmail.Server: the %s callback raised", what)

    def on_delivered(self, fn):
        """fn(mail_from, recipients, message_bytes) for every stored message (before start);
        None removes it. Returns fn (usable as a decorator)."""
        if fn is None:
            cb = _lib.DELIVERED_FN()
        else:
            def cb_py(_user, mail_from, rcpts, count, data, length):
                try:
                    fn(_lib.dec(mail_from), [_lib.dec(rcpts[i]) for i in range(count)], _lib.take(data, length))
                except BaseException:  # never into the library's thread
                    self._callback_failed("on_delivered")
            cb = _lib.DELIVERED_FN(cb_py)
        _lib.check(_lib.lib().cmail_server_on_delivered, self._h(), cb, None)
        self._delivered_fn = cb
        return fn

    def on_rcpt(self, fn):
        """fn(mail_from, rcpt_to) -> None/0 (let the routing decide) or an SMTP code 400-599
        (refuse), for every RCPT after an accepted MAIL (before start). An exception, or a result
        that is not an int, answers 451."""
        if fn is None:
            cb = _lib.RCPT_FN()
        else:
            def cb_py(_user, mail_from, rcpt_to):
                try:
                    code = fn(_lib.dec(mail_from), _lib.dec(rcpt_to))
                    if code is None:
                        return 0
                    if not isinstance(code, int) or isinstance(code, bool):
                        raise TypeError(f"on_rcpt returned {code!r}, not None or an SMTP code")
                    return code
                except BaseException:
                    self._callback_failed("on_rcpt")
                    return 451
            cb = _lib.RCPT_FN(cb_py)
        _lib.check(_lib.lib().cmail_server_on_rcpt, self._h(), cb, None)
        self._rcpt_fn = cb
        return fn

    def on_log(self, fn, verbosity=1):
        """fn(level, line) for every log line up to verbosity (0 errors, 1 connections,
        messages, log-ins, deliveries; up to 4), on the server's thread; None: no logging.
        Before the first listen(). Returns fn."""
        if fn is None:
            cb = _lib.LOG_FN()
        else:
            def cb_py(_user, level, line):
                try:
                    fn(level, _lib.dec(line))
                except BaseException:
                    self._callback_failed("on_log")
            cb = _lib.LOG_FN(cb_py)
        _lib.check(_lib.lib().cmail_server_on_log, self._h(), cb, None, verbosity)
        self._log_fn = cb
        return fn

    def tls_certificate(self, cert_file, key_file):
        """The certificate chain and key (PEM files) the TLS listeners present instead of the
        data directory's self-signed one. Before the first TLS listener."""
        _lib.check(_lib.lib().cmail_server_tls_certificate, self._h(), _lib.enc(str(cert_file)),
                   _lib.enc(str(key_file)))

    # ---- outbound delivery and capture ----
    def outbound(self, mode="capture"):
        """Outbound delivery of the mail routed to other hosts (before start): "dns" delivers
        to the Internet, "capture" to the server's sink, which keeps it (captured())."""
        _lib.check(_lib.lib().cmail_server_outbound, self._h(), _choice(OUTBOUND, mode, "mode"))

    def dns_mx(self, domain, host, preference=10):
        """Capture mode, before start: an MX record (host "" and preference 0: a null MX)."""
        _lib.check(_lib.lib().cmail_server_dns_mx, self._h(), _lib.enc(domain), preference, _lib.enc(host))

    def dns_address(self, host, address):
        """Capture mode, before start: an address for host (only 127.0.0.1 reaches the sink)."""
        _lib.check(_lib.lib().cmail_server_dns_address, self._h(), _lib.enc(host), _lib.enc(address))

    def dns_nxdomain(self, name):
        """Capture mode, before start: name does not exist."""
        _lib.check(_lib.lib().cmail_server_dns_nxdomain, self._h(), _lib.enc(name))

    def dns_txt(self, name, text):
        """Capture mode, before start: a TXT record of name (an SPF policy, say: with outbound
        delivery the server checks SPF of mail from unauthenticated clients and writes the
        result into an Authentication-Results header of the stored copy)."""
        _lib.check(_lib.lib().cmail_server_dns_txt, self._h(), _lib.enc(name), _lib.enc(text))

    def captured(self):
        """The messages the sink kept so far, oldest first, as Captured tuples."""
        lib = _lib.lib()
        ptr = c_void_p()
        _lib.check(lib.cmail_server_captured, self._h(), byref(ptr))
        try:
            out = []
            for i in range(lib.cmail_captured_list_count(ptr)):
                n = c_size_t()
                data = lib.cmail_captured_list_data(ptr, i, byref(n))
                rcpts = tuple(_lib.dec(lib.cmail_captured_list_recipient(ptr, i, j))
                              for j in range(lib.cmail_captured_list_recipient_count(ptr, i)))
                out.append(Captured(lib.cmail_captured_list_id(ptr, i), _lib.dec(lib.cmail_captured_list_from(ptr, i)),
                                    rcpts, _lib.dec(lib.cmail_captured_list_helo(ptr, i)), _lib.take(data, n.value)))
            return out
        finally:
            lib.cmail_captured_list_free(ptr)

    def wait_captured(self, count, timeout=5.0):
        """Waits until the sink keeps count messages or timeout seconds passed; returns how
        many it keeps (0 without capture mode)."""
        return _lib.lib().cmail_server_wait_captured(self._h(), count, int(timeout * 1000))

    def clear_captured(self):
        _lib.check(_lib.lib().cmail_server_clear_captured, self._h())

    # ---- faults on purpose ----
    def fault(self, phase, recipient=None, *, action="reply", code=451, text=None, delay=1.0, times=0,
              target="intake"):
        """A fault at phase "mail", "rcpt" or "data" (the end of data of a message for the
        recipient), for recipient (None: any), on target "intake" (this server's SMTP
        listeners) or "capture" (the sink outbound mail meets). action "reply" answers code
        (400-599) and text instead, "disconnect" closes the connection with no reply,
        "delay" gives the usual answer delay seconds late. times: then it is gone (0:
        always). Any thread, also while the server runs."""
        f = _lib.Fault()
        lib = _lib.lib()
        lib.cmail_fault_init(byref(f))
        f.target = _choice(FAULT_TARGETS, target, "target")
        f.phase = _choice(PHASES, phase, "phase")
        f.action = _choice(ACTIONS, action, "action")
        f.recipient = _lib.enc(recipient)
        f.code = code
        f.text = _lib.enc(text)
        if not 0 <= delay <= 600:
            raise _lib.InvalidArgument("InvalidArgument: delay is 0 to 600 seconds", _lib.INVALID_ARGUMENT)
        f.delay_ms = int(round(delay * 1000))
        if times < 0:
            raise _lib.InvalidArgument("InvalidArgument: times is 0 (always) or more", _lib.INVALID_ARGUMENT)
        f.times = times
        _lib.check(lib.cmail_server_fault, self._h(), byref(f))

    def clear_faults(self, target="intake"):
        _lib.check(_lib.lib().cmail_server_clear_faults, self._h(), _choice(FAULT_TARGETS, target, "target"))

    def disk_full(self, on=True):
        """A simulated full disk: while on, every write of the store fails (SMTP intake answers
        452 4.3.1; Store calls raise NoSpace)."""
        _lib.check(_lib.lib().cmail_server_disk_full, self._h(), 1 if on else 0)

    def start(self):
        """Serves on the library's thread. Once only."""
        _lib.check(_lib.lib().cmail_server_start, self._h())
        self.running = True

    def stop(self, grace=1.0):
        """Stops accepting, lets connections finish for up to grace seconds, closes the rest."""
        _lib.check(_lib.lib().cmail_server_stop, self._h(), int(grace * 1000))
        self.running = False

    def close(self):
        """Stops (if running) and frees the server; idempotent. The callbacks are released after."""
        super().close()
        self.running = False
        self._delivered_fn = self._rcpt_fn = self._log_fn = None

    def __enter__(self):
        if not self.running:
            self.start()
        return self
