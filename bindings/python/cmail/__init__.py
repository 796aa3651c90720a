"""cmail: Python bindings of cmail's C ABI (libcmail.so.0, include/cmail/cmail.h), with ctypes.

  cmail.smtp.Server, cmail.smtp.Client, cmail.pop3.Server,
  cmail.imap.Server                                        sans-I/O protocol engines (h11 style)
  cmail.Store                                              master database administration
  cmail.Server                                             the whole server in-process
  cmail.testing                                            a throw-away server for tests

Errors are cmail.Error (.status, .name) and its subclasses NotFound, InvalidArgument (also a
ValueError), AlreadyExists, ReadOnly, Unsupported, IoError (also an OSError), WrongState, NoSpace, and
Closed (an object used after close()). Each module says what it owns and whether it is
thread-safe; this one only re-exports.
"""
from ._lib import (AlreadyExists, Closed, Error, InvalidArgument, IoError, NoSpace, NotFound, ReadOnly,
                   Unsupported, WrongState, library_path)
from . import imap, pop3, smtp
from .server import Server
from .store import Address, Store, User


def version():
    """The library's version, e.g. "0.1.0"."""
    from ._lib import lib
    return lib().cmail_version().decode()


__all__ = ["Error", "NotFound", "InvalidArgument", "AlreadyExists", "ReadOnly", "Unsupported", "IoError",
           "WrongState", "NoSpace", "Closed", "Server", "Store", "User", "Address", "smtp", "pop3", "imap",
           "version", "library_path"]
