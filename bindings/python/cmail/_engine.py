"""cmail._engine: what the three sans-I/O engine classes share: the byte plumbing over the C
engine handles (receive, pending output taken and consumed, EOF, time-outs, TLS done).

Ownership: an engine object owns its C handle and frees it in close() (or when collected);
event data is copied out of the handle before the next call, as cmail.h requires.
Thread-safety: none; use an engine from one thread at a time (one engine per connection).
"""
from ctypes import byref, c_int64, c_size_t, c_uint64, c_void_p, string_at

from . import _lib


class Functions:
    """The C functions of one engine kind, looked up once: .receive is cmail_<kind>_receive.
    (The per-call lookups and the error-pointer allocations were most of the Python cost of a
    conversation: docs/performance.md.)"""

    def __init__(self, prefix):
        self._prefix = prefix

    def __getattr__(self, name):
        fn = getattr(_lib.lib(), self._prefix + name)
        setattr(self, name, fn)
        return fn


class Engine(_lib.Handle):
    """Base of smtp.Server, smtp.Client and pop3.Server: _c holds the kind's C functions.
    Each object keeps its own errmsg pointer and output out-parameters, reused by every call."""

    _prefix = None
    _c = None  # Functions(_prefix), set by each subclass

    def _bind(self, ptr):
        """Takes the new C handle; sets up the reused out-parameters."""
        self._ptr = ptr
        self._err = c_void_p()
        self._errp = byref(self._err)
        self._out = c_void_p()
        self._out_n = c_size_t()
        self._outp = byref(self._out)
        self._out_np = byref(self._out_n)

    def _raise(self, status):
        """The Error for a failed call, with the library's message (freed). The hot calls pass
        self._ptr as it is: once closed that is NULL (never a freed address), which the library
        refuses, and the error raised is Closed."""
        self._h()
        if self._err.value:
            message = string_at(self._err.value).decode("utf-8", "replace")
            _lib.lib().cmail_free(self._err)
            self._err.value = None
        else:
            message = "(no message)"
        raise _lib.error(status, message)

    def receive_data(self, data):
        """Bytes read from the peer, any split; b"" means the peer closed its side (EOF)."""
        if type(data) is not bytes:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise TypeError("receive_data takes bytes")
            data = bytes(data)
        h = self._ptr
        st = self._c.receive(h, data, len(data), self._errp) if data else self._c.receive_eof(h, self._errp)
        if st:
            self._raise(st)

    def pending_output(self):
        """What waits to be sent, without taking it."""
        st = self._c.pending_output(self._ptr, self._outp, self._out_np, self._errp)
        if st:
            self._raise(st)
        n = self._out_n.value
        return string_at(self._out.value, n) if n else b""

    def consume_output(self, n):
        """n octets of the pending output were sent."""
        st = self._c.consume_output(self._ptr, n, self._errp)
        if st:
            self._raise(st)

    # False where consuming never makes more output (only a POP3 RETR or an SMTP client's
    # message is encoded as it is taken): data_to_send() then asks once.
    _output_grows = True

    def data_to_send(self):
        """Takes all the pending output: the bytes to send now (b"" when none)."""
        out = b""
        while True:  # consuming may encode more (a POP3 RETR); take it all
            chunk = self.pending_output()
            if not chunk:
                return out
            self.consume_output(len(chunk))
            if not self._output_grows:
                return chunk
            out = out + chunk if out else chunk

    def tls_established(self, version=None, cipher=None, bits=0):
        """The TLS handshake asked for by a StartTls event finished."""
        _lib.check(self._c.tls_established, self._h(), _lib.enc(version), _lib.enc(cipher), bits)

    def on_timeout(self):
        """The wait of timeout_ms() (or the deadline's budget) passed."""
        st = self._c.on_timeout(self._ptr, self._errp)
        if st:
            self._raise(st)

    def timeout_ms(self):
        """How long to wait for the peer now, in milliseconds."""
        if self._ptr is None:
            self._h()
        return self._c.timeout_ms(self._ptr)

    @property
    def wants_read(self):
        """True when the engine takes input now (False while a decision or TLS is pending)."""
        return bool(self._c.wants_read(self._h()))

    @property
    def closed(self):
        """True once Close was queued, or after close()."""
        return self._ptr is None or bool(self._c.is_closed(self._ptr))


class ServerQueries:
    """What the server engines (SMTP and POP3) tell besides the shared plumbing."""

    @property
    def state(self):
        """The engine's state number (see cmail.h)."""
        return self._c.state(self._h())

    def deadline(self):
        """(phase, budget_ms): restart a clock when phase changes; on_timeout() after budget_ms
        (0: no bound)."""
        phase, budget = c_uint64(), c_int64()
        _lib.check(self._c.deadline, self._h(), byref(phase), byref(budget))
        return phase.value, budget.value


def size_array(ptr, n):
    """A const size_t[n] copied into a tuple."""
    return tuple(ptr[i] for i in range(n)) if n else ()


__all__ = ["Engine", "Functions", "ServerQueries", "size_array"]
