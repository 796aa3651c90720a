"""cmail._lib: loads libcmail.so.0 (the C ABI of include/cmail/cmail.h) with ctypes and declares
every function the package uses, with its argument and result types.

Where the library comes from, first found wins:
  1. $CMAIL_LIBRARY, a path to the library (what the tests and an unusual install use);
  2. the library `meson install` put beside this package (_paths.py, written at install time,
     says where libdir is relative to the package, so a --destdir staging works too);
  3. a build tree of the source checkout this package sits in (build*/bindings/c/), the most
     recently built one that is not sanitized: running from the source tree without installing;
  4. the system loader (ldconfig's directories, LD_LIBRARY_PATH).

Errors: check() turns a non-zero status into cmail.Error (or its subclass for that status)
carrying the library's message; every message is freed with cmail_free, so no call leaks.

Thread-safety: loading happens once, under a lock, on first use; the module's functions are
the library's own (see cmail.h for which handles may be used from which threads). ctypes
releases the GIL around every call into the library.
"""
import ctypes
import glob
import json
import os
import threading
from ctypes import (CFUNCTYPE, POINTER, Structure, c_char_p, c_int, c_int64, c_size_t, c_uint,
                    c_uint16, c_uint32, c_uint64, c_void_p)

SONAME = "libcmail.so.0"

# cmail_status
OK = 0
NOT_FOUND = 1
INVALID_ARGUMENT = 2
ALREADY_EXISTS = 3
CONSTRAINT = 4
BUSY = 5
READ_ONLY = 6
CORRUPTION = 7
UNSUPPORTED = 8
IO_ERROR = 9
INTERNAL = 10
WRONG_STATE = 11
NO_SPACE = 12


class Error(Exception):
    """A call into libcmail failed: .status is the cmail_status code, .name its name
    ("NotFound", ...), str() the library's message."""

    status = INTERNAL

    def __init__(self, message, status=None):
        super().__init__(message)
        if status is not None:
            self.status = status

    @property
    def name(self):
        return _STATUS_NAMES.get(self.status, "Unknown")


class NotFound(Error):
    status = NOT_FOUND


class InvalidArgument(Error, ValueError):
    status = INVALID_ARGUMENT


class AlreadyExists(Error):
    status = ALREADY_EXISTS


class ReadOnly(Error):
    status = READ_ONLY


class Unsupported(Error):
    status = UNSUPPORTED


class IoError(Error, OSError):
    status = IO_ERROR


class WrongState(Error):
    status = WRONG_STATE


class NoSpace(Error):
    """The disk (or a simulated full disk, Server.disk_full) has no room."""
    status = NO_SPACE


class Closed(InvalidArgument):
    """The Python object was closed (its handle freed): nothing is passed to the library,
    whose freed handle addresses may already belong to new handles."""


_STATUS_NAMES = {OK: "OK", NOT_FOUND: "NotFound", INVALID_ARGUMENT: "InvalidArgument",
                 ALREADY_EXISTS: "AlreadyExists", CONSTRAINT: "Constraint", BUSY: "Busy",
                 READ_ONLY: "ReadOnly", CORRUPTION: "Corruption", UNSUPPORTED: "Unsupported",
                 IO_ERROR: "IoError", INTERNAL: "Internal", WRONG_STATE: "WrongState",
                 NO_SPACE: "NoSpace"}
_BY_STATUS = {c.status: c for c in (NotFound, InvalidArgument, AlreadyExists, ReadOnly, Unsupported,
                                     IoError, WrongState, NoSpace)}


def error(status, message):
    """The exception for a status code and message."""
    cls = _BY_STATUS.get(status, Error)
    return cls(f"{_STATUS_NAMES.get(status, 'Unknown')}: {message}", status)


# ---- structs of cmail.h (field order and types exactly as declared there) ---------------------

class SmtpServerOptions(Structure):
    _fields_ = [("hostname", c_char_p), ("max_message_size", c_uint64), ("max_recipients", c_size_t),
                ("max_errors", c_int), ("max_auth_failures", c_int), ("starttls_available", c_int),
                ("tls_active", c_int), ("auth_enabled", c_int), ("auth_requires_tls", c_int),
                ("require_auth", c_int), ("authenticated_user", c_char_p), ("chunking", c_int),
                ("dsn", c_int), ("strict_envelopes", c_int), ("command_timeout_ms", c_int64),
                ("data_timeout_ms", c_int64), ("min_data_rate", c_uint32), ("decisions", c_uint)]


class SmtpEvent(Structure):
    _fields_ = [("type", c_int), ("data", c_void_p), ("data_len", c_size_t), ("address", c_char_p),
                ("has_size", c_int), ("size", c_uint64), ("body", c_int), ("smtputf8", c_int),
                ("ret", c_char_p), ("envid", c_char_p), ("auth", c_char_p), ("notify", c_char_p),
                ("orcpt", c_char_p), ("authzid", c_char_p), ("authcid", c_char_p), ("password", c_char_p),
                ("helo", c_char_p), ("esmtp", c_int), ("tls", c_int), ("user", c_char_p),
                ("protocol", c_char_p)]


class SmtpClientOptions(Structure):
    _fields_ = [("helo_name", c_char_p), ("tls", c_int), ("tls_active", c_int), ("auth_user", c_char_p),
                ("auth_password", c_char_p), ("auth_without_tls", c_int), ("chunking", c_int),
                ("greeting_timeout_ms", c_int64), ("command_timeout_ms", c_int64),
                ("data_block_timeout_ms", c_int64), ("data_end_timeout_ms", c_int64)]


class SmtpClientEvent(Structure):
    _fields_ = [("type", c_int), ("data", c_void_p), ("data_len", c_size_t), ("index", c_size_t),
                ("reply_code", c_int), ("reply_enhanced", c_char_p), ("reply_text", c_char_p),
                ("accepted", POINTER(c_size_t)), ("accepted_count", c_size_t), ("fail_kind", c_int),
                ("reason", c_char_p), ("permanent", c_int)]


class Pop3ServerOptions(Structure):
    _fields_ = [("hostname", c_char_p), ("starttls_available", c_int), ("tls_active", c_int),
                ("tls_required", c_int), ("max_errors", c_int), ("max_login_failures", c_int),
                ("idle_timeout_ms", c_int64)]


class Pop3Event(Structure):
    _fields_ = [("type", c_int), ("data", c_void_p), ("data_len", c_size_t), ("authzid", c_char_p),
                ("authcid", c_char_p), ("password", c_char_p), ("index", c_size_t),
                ("deleted", POINTER(c_size_t)), ("deleted_count", c_size_t)]


class ImapServerOptions(Structure):
    _fields_ = [("hostname", c_char_p), ("starttls_available", c_int), ("tls_active", c_int),
                ("tls_required", c_int), ("max_errors", c_int), ("max_login_failures", c_int),
                ("idle_timeout_ms", c_int64), ("max_command_line", c_size_t), ("max_append", c_uint64),
                ("max_message", c_uint64)]


class ImapEvent(Structure):
    _fields_ = [("type", c_int), ("data", c_void_p), ("data_len", c_size_t), ("authzid", c_char_p),
                ("authcid", c_char_p), ("password", c_char_p), ("mailbox", c_char_p), ("target", c_char_p),
                ("special_use", c_char_p), ("subscribe", c_int), ("read_only", c_int), ("move", c_int),
                ("uids", POINTER(c_uint32)), ("uid_count", c_size_t), ("op", c_int), ("flags", c_uint32),
                ("keywords", c_char_p), ("has_modseq", c_int), ("modseq", c_uint64), ("uidnext", c_uint32),
                ("has_date", c_int), ("internal_date", c_int64), ("size", c_uint64), ("need_octets", c_int),
                ("set_seen", c_int)]


class ImapMessage(Structure):
    _fields_ = [("uid", c_uint32), ("flags", c_uint32), ("keywords", c_char_p), ("modseq", c_uint64),
                ("internal_date", c_int64), ("octets", c_char_p), ("octets_len", c_size_t), ("size", c_uint64),
                ("seen_set", c_int)]


class ImapStatus(Structure):
    _fields_ = [("messages", c_uint32), ("recent", c_uint32), ("uidnext", c_uint32), ("uidvalidity", c_uint32),
                ("unseen", c_uint32), ("deleted", c_uint32), ("size", c_uint64), ("highest_modseq", c_uint64)]


DELIVERED_FN = CFUNCTYPE(None, c_void_p, c_char_p, POINTER(c_char_p), c_size_t, c_void_p, c_size_t)
RCPT_FN = CFUNCTYPE(c_int, c_void_p, c_char_p, c_char_p)
LOG_FN = CFUNCTYPE(None, c_void_p, c_int, c_char_p)

_E = POINTER(c_void_p)  # char** errmsg, read as a void* so that it can be given to cmail_free
_P = c_void_p           # an opaque handle
_S = c_char_p


class Fault(Structure):
    _fields_ = [("target", c_int), ("phase", c_int), ("recipient", c_char_p), ("action", c_int), ("code", c_int),
                ("text", c_char_p), ("delay_ms", c_uint32), ("times", c_uint32)]

# name: (restype, argtypes); "errmsg" functions end in _E.
_SIGNATURES = {
    "cmail_status_name": (c_char_p, [c_int]),
    "cmail_free": (None, [c_void_p]),
    "cmail_version": (c_char_p, []),
    # SMTP server engine
    "cmail_smtp_server_options_init": (None, [POINTER(SmtpServerOptions)]),
    "cmail_smtp_server_new": (c_int, [POINTER(SmtpServerOptions), POINTER(_P), _E]),
    "cmail_smtp_server_free": (None, [_P]),
    "cmail_smtp_server_receive": (c_int, [_P, c_char_p, c_size_t, _E]),
    "cmail_smtp_server_receive_eof": (c_int, [_P, _E]),
    "cmail_smtp_server_pending_output": (c_int, [_P, POINTER(c_void_p), POINTER(c_size_t), _E]),
    "cmail_smtp_server_consume_output": (c_int, [_P, c_size_t, _E]),
    "cmail_smtp_server_next_event": (c_int, [_P, POINTER(SmtpEvent), _E]),
    "cmail_smtp_server_tls_established": (c_int, [_P, _S, _S, c_int, _E]),
    "cmail_smtp_server_on_timeout": (c_int, [_P, _E]),
    "cmail_smtp_server_wants_read": (c_int, [_P]),
    "cmail_smtp_server_is_closed": (c_int, [_P]),
    "cmail_smtp_server_timeout_ms": (c_int64, [_P]),
    "cmail_smtp_server_deadline": (c_int, [_P, POINTER(c_uint64), POINTER(c_int64), _E]),
    "cmail_smtp_server_state": (c_int, [_P]),
    "cmail_smtp_server_messages": (c_uint64, [_P]),
    "cmail_smtp_server_accept": (c_int, [_P, _S, _E]),
    "cmail_smtp_server_authenticated": (c_int, [_P, _S, _E]),
    "cmail_smtp_server_reject": (c_int, [_P, c_int, _S, _S, _E]),
    "cmail_smtp_server_fail": (c_int, [_P, _S, _E]),
    # SMTP client engine
    "cmail_smtp_client_options_init": (None, [POINTER(SmtpClientOptions)]),
    "cmail_smtp_client_new": (c_int, [POINTER(SmtpClientOptions), POINTER(_P), _E]),
    "cmail_smtp_client_free": (None, [_P]),
    "cmail_smtp_client_receive": (c_int, [_P, c_char_p, c_size_t, _E]),
    "cmail_smtp_client_receive_eof": (c_int, [_P, _E]),
    "cmail_smtp_client_pending_output": (c_int, [_P, POINTER(c_void_p), POINTER(c_size_t), _E]),
    "cmail_smtp_client_consume_output": (c_int, [_P, c_size_t, _E]),
    "cmail_smtp_client_next_event": (c_int, [_P, POINTER(SmtpClientEvent), _E]),
    "cmail_smtp_client_tls_established": (c_int, [_P, _S, _S, c_int, _E]),
    "cmail_smtp_client_on_timeout": (c_int, [_P, _E]),
    "cmail_smtp_client_wants_read": (c_int, [_P]),
    "cmail_smtp_client_is_closed": (c_int, [_P]),
    "cmail_smtp_client_timeout_ms": (c_int64, [_P]),
    "cmail_smtp_client_send_mail": (c_int, [_P, _S, POINTER(c_char_p), c_size_t, c_char_p, c_size_t, _E]),
    "cmail_smtp_client_quit": (c_int, [_P, _E]),
    # POP3 server engine
    "cmail_pop3_server_options_init": (None, [POINTER(Pop3ServerOptions)]),
    "cmail_pop3_server_new": (c_int, [POINTER(Pop3ServerOptions), POINTER(_P), _E]),
    "cmail_pop3_server_free": (None, [_P]),
    "cmail_pop3_server_receive": (c_int, [_P, c_char_p, c_size_t, _E]),
    "cmail_pop3_server_receive_eof": (c_int, [_P, _E]),
    "cmail_pop3_server_pending_output": (c_int, [_P, POINTER(c_void_p), POINTER(c_size_t), _E]),
    "cmail_pop3_server_consume_output": (c_int, [_P, c_size_t, _E]),
    "cmail_pop3_server_next_event": (c_int, [_P, POINTER(Pop3Event), _E]),
    "cmail_pop3_server_tls_established": (c_int, [_P, _S, _S, c_int, _E]),
    "cmail_pop3_server_on_timeout": (c_int, [_P, _E]),
    "cmail_pop3_server_wants_read": (c_int, [_P]),
    "cmail_pop3_server_is_closed": (c_int, [_P]),
    "cmail_pop3_server_timeout_ms": (c_int64, [_P]),
    "cmail_pop3_server_deadline": (c_int, [_P, POINTER(c_uint64), POINTER(c_int64), _E]),
    "cmail_pop3_server_state": (c_int, [_P]),
    "cmail_pop3_server_maildrop": (c_int, [_P, _S, POINTER(c_uint64), POINTER(c_char_p), c_size_t, _E]),
    "cmail_pop3_server_message": (c_int, [_P, c_char_p, c_size_t, _E]),
    "cmail_pop3_server_accept": (c_int, [_P, _E]),
    "cmail_pop3_server_reject": (c_int, [_P, c_int, _S, _E]),
    "cmail_pop3_server_fail": (c_int, [_P, _S, _E]),
    # IMAP server engine
    "cmail_imap_server_options_init": (None, [POINTER(ImapServerOptions)]),
    "cmail_imap_server_new": (c_int, [POINTER(ImapServerOptions), POINTER(_P), _E]),
    "cmail_imap_server_free": (None, [_P]),
    "cmail_imap_server_receive": (c_int, [_P, c_char_p, c_size_t, _E]),
    "cmail_imap_server_receive_eof": (c_int, [_P, _E]),
    "cmail_imap_server_pending_output": (c_int, [_P, POINTER(c_void_p), POINTER(c_size_t), _E]),
    "cmail_imap_server_consume_output": (c_int, [_P, c_size_t, _E]),
    "cmail_imap_server_next_event": (c_int, [_P, POINTER(ImapEvent), _E]),
    "cmail_imap_server_tls_established": (c_int, [_P, _S, _S, c_int, _E]),
    "cmail_imap_server_on_timeout": (c_int, [_P, _E]),
    "cmail_imap_server_wants_read": (c_int, [_P]),
    "cmail_imap_server_is_closed": (c_int, [_P]),
    "cmail_imap_server_timeout_ms": (c_int64, [_P]),
    "cmail_imap_server_deadline": (c_int, [_P, POINTER(c_uint64), POINTER(c_int64), _E]),
    "cmail_imap_server_state": (c_int, [_P]),
    "cmail_imap_server_idling": (c_int, [_P]),
    "cmail_imap_server_mailbox_changed": (c_int, [_P, _E]),
    "cmail_imap_server_user": (c_int, [_P, _S, _E]),
    "cmail_imap_server_accept": (c_int, [_P, _E]),
    "cmail_imap_server_mailboxes": (c_int, [_P, POINTER(c_char_p), POINTER(c_char_p), POINTER(c_uint), c_size_t, _E]),
    "cmail_imap_server_counts": (c_int, [_P, POINTER(ImapStatus), _E]),
    "cmail_imap_server_selected": (c_int, [_P, c_uint32, c_uint32, c_uint64, c_int, POINTER(c_uint32),
                                           POINTER(c_uint32), POINTER(c_char_p), POINTER(c_uint64), c_size_t, _S,
                                           _E]),
    "cmail_imap_server_changes": (c_int, [_P, c_uint32, c_uint64, POINTER(c_uint32), POINTER(c_uint32),
                                          POINTER(c_char_p), POINTER(c_uint64), c_size_t, POINTER(c_uint32),
                                          c_size_t, _E]),
    "cmail_imap_server_expunged": (c_int, [_P, POINTER(c_uint32), c_size_t, _E]),
    "cmail_imap_server_stored": (c_int, [_P, POINTER(c_uint32), POINTER(c_uint32), POINTER(c_char_p),
                                         POINTER(c_uint64), c_size_t, POINTER(c_uint32), c_size_t, _E]),
    "cmail_imap_server_copied": (c_int, [_P, c_uint32, POINTER(c_uint32), POINTER(c_uint32), c_size_t, _E]),
    "cmail_imap_server_appended": (c_int, [_P, c_uint32, c_uint32, _E]),
    "cmail_imap_server_message": (c_int, [_P, POINTER(ImapMessage), _E]),
    "cmail_imap_server_done": (c_int, [_P, _E]),
    "cmail_imap_server_reject": (c_int, [_P, c_int, _S, _E]),
    "cmail_imap_server_fail": (c_int, [_P, _S, _E]),
    # store
    "cmail_store_open": (c_int, [_S, c_uint, POINTER(_P), _E]),
    "cmail_store_close": (None, [_P]),
    "cmail_store_add_user": (c_int, [_P, _S, _S, _E]),
    "cmail_store_set_password": (c_int, [_P, _S, _S, _E]),
    "cmail_store_delete_user": (c_int, [_P, _S, _E]),
    "cmail_store_authenticate": (c_int, [_P, _S, _S, POINTER(c_void_p), _E]),
    "cmail_store_list_users": (c_int, [_P, _S, POINTER(_P), _E]),
    "cmail_user_list_count": (c_size_t, [_P]),
    "cmail_user_list_name": (c_char_p, [_P, c_size_t]),
    "cmail_user_list_login_enabled": (c_int, [_P, c_size_t]),
    "cmail_user_list_alias": (c_char_p, [_P, c_size_t]),
    "cmail_user_list_addresses": (c_int64, [_P, c_size_t]),
    "cmail_user_list_mails": (c_int64, [_P, c_size_t]),
    "cmail_user_list_free": (None, [_P]),
    "cmail_store_enable_smtp": (c_int, [_P, _S, _S, _S, _E]),
    "cmail_store_enable_pop3": (c_int, [_P, _S, _E]),
    "cmail_store_enable_imap": (c_int, [_P, _S, _E]),
    "cmail_store_add_address": (c_int, [_P, _S, _S, _S, POINTER(c_int64), POINTER(c_int64), _E]),
    "cmail_store_delete_address": (c_int, [_P, c_int64, _E]),
    "cmail_store_list_addresses": (c_int, [_P, _S, POINTER(_P), _E]),
    "cmail_store_route_address": (c_int, [_P, _S, POINTER(_P), _E]),
    "cmail_address_list_count": (c_size_t, [_P]),
    "cmail_address_list_order": (c_int64, [_P, c_size_t]),
    "cmail_address_list_expression": (c_char_p, [_P, c_size_t]),
    "cmail_address_list_router": (c_char_p, [_P, c_size_t]),
    "cmail_address_list_route": (c_char_p, [_P, c_size_t]),
    "cmail_address_list_free": (None, [_P]),
    # in-process server
    "cmail_server_new": (c_int, [_S, _S, POINTER(_P), _E]),
    "cmail_server_free": (None, [_P]),
    "cmail_server_store": (_P, [_P]),
    "cmail_server_listen": (c_int, [_P, c_int, _S, c_uint16, c_uint, POINTER(c_int), _E]),
    "cmail_server_port": (c_uint16, [_P, c_int]),
    "cmail_server_on_delivered": (c_int, [_P, DELIVERED_FN, c_void_p, _E]),
    "cmail_server_on_rcpt": (c_int, [_P, RCPT_FN, c_void_p, _E]),
    "cmail_server_on_log": (c_int, [_P, LOG_FN, c_void_p, c_int, _E]),
    "cmail_server_tls_certificate": (c_int, [_P, _S, _S, _E]),
    "cmail_server_start": (c_int, [_P, _E]),
    "cmail_server_stop": (c_int, [_P, c_int64, _E]),
    # outbound delivery, capture, faults
    "cmail_server_outbound": (c_int, [_P, c_int, _E]),
    "cmail_server_dns_mx": (c_int, [_P, _S, c_uint16, _S, _E]),
    "cmail_server_dns_address": (c_int, [_P, _S, _S, _E]),
    "cmail_server_dns_nxdomain": (c_int, [_P, _S, _E]),
    "cmail_server_dns_txt": (c_int, [_P, _S, _S, _E]),
    "cmail_fault_init": (None, [POINTER(Fault)]),
    "cmail_server_fault": (c_int, [_P, POINTER(Fault), _E]),
    "cmail_server_clear_faults": (c_int, [_P, c_int, _E]),
    "cmail_server_disk_full": (c_int, [_P, c_int, _E]),
    "cmail_server_captured": (c_int, [_P, POINTER(_P), _E]),
    "cmail_server_wait_captured": (c_size_t, [_P, c_size_t, c_int64]),
    "cmail_server_clear_captured": (c_int, [_P, _E]),
    "cmail_captured_list_count": (c_size_t, [_P]),
    "cmail_captured_list_id": (c_uint64, [_P, c_size_t]),
    "cmail_captured_list_from": (c_char_p, [_P, c_size_t]),
    "cmail_captured_list_helo": (c_char_p, [_P, c_size_t]),
    "cmail_captured_list_recipient_count": (c_size_t, [_P, c_size_t]),
    "cmail_captured_list_recipient": (c_char_p, [_P, c_size_t, c_size_t]),
    "cmail_captured_list_data": (c_void_p, [_P, c_size_t, POINTER(c_size_t)]),
    "cmail_captured_list_free": (None, [_P]),
}

_lock = threading.Lock()
_lib = None
_path = None


def _candidates():
    env = os.environ.get("CMAIL_LIBRARY")
    if env:
        yield env
        return  # an explicit choice is not second-guessed
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        from . import _paths  # written by `meson install`
        yield os.path.normpath(os.path.join(here, _paths.LIBRARY_FROM_PACKAGE, SONAME))
    except ImportError:
        pass
    root = os.path.normpath(os.path.join(here, "..", "..", ".."))  # bindings/python/cmail -> repo
    if os.path.isfile(os.path.join(root, "include", "cmail", "cmail.h")):
        built = glob.glob(os.path.join(root, "build*", "bindings", "c", SONAME))
        built = [b for b in built if not _sanitized(os.path.dirname(os.path.dirname(os.path.dirname(b))))]
        yield from sorted(built, key=os.path.getmtime, reverse=True)
    yield SONAME  # the system loader


def _sanitized(build_dir):
    """True for a sanitized build tree: its library aborts a process that did not load the
    sanitizer runtime first (use it with CMAIL_LIBRARY and LD_PRELOAD, as tests/python does)."""
    try:
        with open(os.path.join(build_dir, "meson-info", "intro-buildoptions.json")) as f:
            options = {o["name"]: o["value"] for o in json.load(f)}
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return options.get("b_sanitize", "none") != "none"


def _declare(lib):
    for name, (restype, argtypes) in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    return lib


def lib():
    """The loaded library (loaded and declared on the first call)."""
    global _lib, _path
    if _lib is None:
        with _lock:
            if _lib is None:
                tried = []
                for path in _candidates():
                    if path != SONAME and not os.path.exists(path):
                        tried.append(f"{path}: no such file")
                        continue
                    try:
                        loaded = ctypes.CDLL(path)
                    except OSError as e:
                        tried.append(f"{path}: {e}")
                        continue
                    _path = path
                    _lib = _declare(loaded)
                    break
                else:
                    raise ImportError("cannot load libcmail.so.0 (set CMAIL_LIBRARY to its path); tried:\n  "
                                      + "\n  ".join(tried))
    return _lib


def library_path():
    """The path (or soname) the library was loaded from."""
    lib()
    return _path


def check(fn, *args):
    """Calls fn(*args, &errmsg); raises the Error for a non-zero status; frees the message."""
    err = c_void_p()
    status = fn(*args, ctypes.byref(err))
    if err.value:
        message = ctypes.string_at(err.value).decode("utf-8", "replace")
        lib().cmail_free(err)
    else:
        message = "(no message)"
    if status != OK:
        raise error(status, message)


def enc(s):
    """str -> UTF-8 bytes for a const char*; None stays NULL; bytes pass as they are."""
    if s is None or isinstance(s, bytes):
        return s
    if not isinstance(s, str):
        raise TypeError(f"expected str, got {type(s).__name__}")
    return s.encode("utf-8")


def dec(b):
    """A const char* field (bytes or None) -> str or None."""
    return None if b is None else b.decode("utf-8", "surrogateescape")


def take(ptr, n):
    """Copies n bytes at ptr (0/NULL: b"")."""
    return ctypes.string_at(ptr, n) if ptr and n else b""


class Handle:
    """Owns one library handle: ._ptr until close(), which frees it once (idempotent). Using a
    closed object raises Closed before anything reaches the library."""

    _kind = "handle"
    _free_name = None

    def __init__(self):
        self._ptr = None

    def _h(self):
        if self._ptr is None:
            raise Closed(f"InvalidArgument: this {self._kind} is closed (its handle was freed)", INVALID_ARGUMENT)
        return self._ptr

    def close(self):
        ptr, self._ptr = self._ptr, None
        if ptr is not None:
            getattr(lib(), self._free_name)(ptr)

    @property
    def is_open(self):
        return self._ptr is not None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
