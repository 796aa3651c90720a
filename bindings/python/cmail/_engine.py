"""cmail._engine: what the three sans-I/O engine classes share: the byte plumbing over the C
engine handles (receive, pending output taken and consumed, EOF, time-outs, TLS done).

Ownership: an engine object owns its C handle and frees it in close() (or when collected);
event data is copied out of the handle before the next call, as cmail.h requires.
Thread-safety: none; use an engine from one thread at a time (one engine per connection).
"""
from ctypes import byref, c_int64, c_size_t, c_uint64, c_void_p

from . import _lib


class Engine(_lib.Handle):
    """Base of smtp.Server, smtp.Client and pop3.Server: _prefix names the C functions."""

    _prefix = None

    def _fn(self, name):
        return getattr(_lib.lib(), self._prefix + name)

    def receive_data(self, data):
        """Bytes read from the peer, any split; b"" means the peer closed its side (EOF)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError("receive_data takes bytes")
        data = bytes(data)
        if data:
            _lib.check(self._fn("receive"), self._h(), data, len(data))
        else:
            _lib.check(self._fn("receive_eof"), self._h())

    def pending_output(self):
        """What waits to be sent, without taking it."""
        ptr, n = c_void_p(), c_size_t()
        _lib.check(self._fn("pending_output"), self._h(), byref(ptr), byref(n))
        return _lib.take(ptr.value, n.value)

    def consume_output(self, n):
        """n octets of the pending output were sent."""
        _lib.check(self._fn("consume_output"), self._h(), n)

    def data_to_send(self):
        """Takes all the pending output: the bytes to send now (b"" when none)."""
        out = []
        while True:  # consuming may encode more (a POP3 RETR); take it all
            chunk = self.pending_output()
            if not chunk:
                return b"".join(out)
            out.append(chunk)
            self.consume_output(len(chunk))

    def tls_established(self, version=None, cipher=None, bits=0):
        """The TLS handshake asked for by a StartTls event finished."""
        _lib.check(self._fn("tls_established"), self._h(), _lib.enc(version), _lib.enc(cipher), bits)

    def on_timeout(self):
        """The wait of timeout_ms() (or the deadline's budget) passed."""
        _lib.check(self._fn("on_timeout"), self._h())

    def timeout_ms(self):
        """How long to wait for the peer now, in milliseconds."""
        return self._fn("timeout_ms")(self._h())

    @property
    def wants_read(self):
        """True when the engine takes input now (False while a decision or TLS is pending)."""
        return bool(self._fn("wants_read")(self._h()))

    @property
    def closed(self):
        """True once Close was queued, or after close()."""
        return self._ptr is None or bool(self._fn("is_closed")(self._ptr))


class ServerQueries:
    """What the server engines (SMTP and POP3) tell besides the shared plumbing."""

    @property
    def state(self):
        """The engine's state number (see cmail.h)."""
        return self._fn("state")(self._h())

    def deadline(self):
        """(phase, budget_ms): restart a clock when phase changes; on_timeout() after budget_ms
        (0: no bound)."""
        phase, budget = c_uint64(), c_int64()
        _lib.check(self._fn("deadline"), self._h(), byref(phase), byref(budget))
        return phase.value, budget.value


def size_array(ptr, n):
    """A const size_t[n] copied into a tuple."""
    return tuple(ptr[i] for i in range(n)) if n else ()


__all__ = ["Engine", "ServerQueries", "size_array"]
