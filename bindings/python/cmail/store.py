"""cmail.store: administration of a master database (cmail_store): users with passwords,
the protocols they may use, addresses with their routers, and where an address goes.

Ownership: Store.open() returns a Store that owns its handle and closes it in close() (also a
context manager). The store of a cmail.Server is lent: it belongs to the server, close() on it
does nothing, and it raises Closed once the server is closed.
Thread-safety: a Store may be used from any number of threads at once (the library's store is
thread-safe), also while its server runs.
"""
import ctypes
from ctypes import byref, c_int64, c_void_p
from dataclasses import dataclass
from typing import Optional

from . import _lib

CREATE = 0x01
READ_ONLY = 0x02
NO_UPGRADE = 0x04


@dataclass(frozen=True)
class User:
    name: str
    login_enabled: bool
    alias: Optional[str]
    addresses: int  # linked (router store)
    mails: int      # in the master mailbox


@dataclass(frozen=True)
class Address:
    order: int
    expression: str
    router: str
    route: Optional[str]


class Store(_lib.Handle):
    """A master database. Store.open(path) creates it when missing (create=True)."""

    _kind = "store"
    _free_name = "cmail_store_close"

    def __init__(self, ptr=None, owner=None):
        super().__init__()
        self._ptr = ptr
        self._owner = owner  # a Server lending its store, or None

    @classmethod
    def open(cls, path, create=True, read_only=False, upgrade=True):
        flags = (CREATE if create else 0) | (READ_ONLY if read_only else 0) | (0 if upgrade else NO_UPGRADE)
        ptr = c_void_p()
        _lib.check(_lib.lib().cmail_store_open, _lib.enc(str(path)), flags, byref(ptr))
        return cls(ptr.value)

    def _h(self):
        if self._owner is not None and not self._owner.is_open:
            raise _lib.Closed("InvalidArgument: the server owning this store is closed", _lib.INVALID_ARGUMENT)
        return super()._h()

    def close(self):
        if self._owner is None:
            super().close()  # a lent store is the server's

    # ---- users ----
    def add_user(self, name, password=None):
        """password None or "": login disabled. argon2id: tens of milliseconds."""
        _lib.check(_lib.lib().cmail_store_add_user, self._h(), _lib.enc(name), _lib.enc(password))

    def set_password(self, name, password):
        _lib.check(_lib.lib().cmail_store_set_password, self._h(), _lib.enc(name), _lib.enc(password))

    def delete_user(self, name):
        """Deletes the user and everything that refers to it."""
        _lib.check(_lib.lib().cmail_store_delete_user, self._h(), _lib.enc(name))

    def authenticate(self, name, password):
        """The authorized identity for good credentials, else None."""
        ident = c_void_p()
        try:
            _lib.check(_lib.lib().cmail_store_authenticate, self._h(), _lib.enc(name), _lib.enc(password),
                       byref(ident))
        except _lib.NotFound:
            return None
        try:
            return ctypes.string_at(ident.value).decode()
        finally:
            _lib.lib().cmail_free(ident)

    def list_users(self, like=None):
        lib = _lib.lib()
        lst = c_void_p()
        _lib.check(lib.cmail_store_list_users, self._h(), _lib.enc(like), byref(lst))
        try:
            return [User(_lib.dec(lib.cmail_user_list_name(lst, i)), bool(lib.cmail_user_list_login_enabled(lst, i)),
                         _lib.dec(lib.cmail_user_list_alias(lst, i)), lib.cmail_user_list_addresses(lst, i),
                         lib.cmail_user_list_mails(lst, i))
                    for i in range(lib.cmail_user_list_count(lst))]
        finally:
            lib.cmail_user_list_free(lst)

    # ---- protocols ----
    def enable_smtp(self, user, router="any", route=None):
        """The outbound router after AUTH: "any", "defined", "handoff", "reject", "drop"."""
        _lib.check(_lib.lib().cmail_store_enable_smtp, self._h(), _lib.enc(user), _lib.enc(router), _lib.enc(route))

    def enable_pop3(self, user):
        _lib.check(_lib.lib().cmail_store_enable_pop3, self._h(), _lib.enc(user))

    def enable_imap(self, user):
        _lib.check(_lib.lib().cmail_store_enable_imap, self._h(), _lib.enc(user))

    # ---- addresses ----
    def add_address(self, expression, router="store", route=None, order=None):
        """An SQL LIKE pattern over local@domain with its inbound router ("store" with the user
        as route, "redirect", "handoff", "reject", "drop"); returns the order given (None:
        after every other; higher orders are tried first)."""
        out = c_int64()
        want = byref(c_int64(order)) if order is not None else None
        _lib.check(_lib.lib().cmail_store_add_address, self._h(), _lib.enc(expression), _lib.enc(router),
                   _lib.enc(route), want, byref(out))
        return out.value

    def delete_address(self, order):
        _lib.check(_lib.lib().cmail_store_delete_address, self._h(), order)

    def _addresses(self, fn, arg):
        lib = _lib.lib()
        lst = c_void_p()
        _lib.check(fn, self._h(), _lib.enc(arg), byref(lst))
        try:
            return [Address(lib.cmail_address_list_order(lst, i), _lib.dec(lib.cmail_address_list_expression(lst, i)),
                            _lib.dec(lib.cmail_address_list_router(lst, i)),
                            _lib.dec(lib.cmail_address_list_route(lst, i)))
                    for i in range(lib.cmail_address_list_count(lst))]
        finally:
            lib.cmail_address_list_free(lst)

    def list_addresses(self, like=None):
        """Address rows matching the LIKE pattern (None: all), highest order first."""
        return self._addresses(_lib.lib().cmail_store_list_addresses, like)

    def route_address(self, path):
        """The rows matching local@domain, the one used first."""
        return self._addresses(_lib.lib().cmail_store_route_address, path)
