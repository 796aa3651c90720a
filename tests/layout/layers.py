#!/usr/bin/env python3
"""tests/layout/layers.py: the layer rules of docs/architecture.md, checked on the tree.

- A header or source of a layer includes only the standard library, system headers and cmail
  headers of its own or a lower layer (arrows point down).
- Public headers (include/cmail/) never include a third-party library's header (sqlite3.h,
  uv.h, mbedtls/, ares.h, argon2.h) nor a private one ("...").
- The core layers (proto, smtp, pop3, http, mail) include no third-party header at all, and contain
  no SQL and no sockets. They may use the crypto layer (cmail/crypto/), pure computation whose
  implementation (not its headers) uses mbedTLS and Nettle.
- The C binding (bindings/c/) sits on top of every library layer and reaches them through their
  public headers; it never includes the daemons' private code (daemon/). Its header,
  include/cmail/cmail.h, is C: it includes C headers only, never a C++ or cmail header.
Usage: layers.py SOURCE_ROOT. Exits 1 and names every violation.
"""
import os, re, sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
RANK = {"": 0, "crypto": 0.5, "proto": 1, "smtp": 2, "pop3": 2, "http": 2, "mail": 3, "imap": 4, "store": 5, "backends": 6, "net": 7, "daemon": 8,
        "bindings": 9}
C_HEADER = "include/cmail/cmail.h"
C_INCLUDES = {"stddef.h", "stdint.h"}
CORE = {"", "proto", "smtp", "pop3", "http", "imap", "mail"}
THIRD_PARTY = re.compile(r"^(sqlite3\.h|uv\.h|uv/|mbedtls/|nettle/|gmp\.h|ares|argon2\.h|CLI/)")
SYSTEM_IO = re.compile(r"^(sys/socket\.h|netinet/|arpa/|netdb\.h|poll\.h|sys/epoll\.h)")
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')

def layer_of(path):
    """The layer of a file of the tree, or None for files outside the layered code."""
    rel = os.path.relpath(path, ROOT).replace(os.sep, "/")
    for prefix in ("include/cmail/", "libcmail/"):
        if rel.startswith(prefix):
            rest = rel[len(prefix):]
            return rest.split("/")[0] if "/" in rest else ""
    if rel.startswith("frontends/daemon/"):
        return "daemon"
    if rel.startswith("bindings/"):
        return "bindings"
    return None

def layer_of_include(name):
    if name.startswith("cmail/"):
        rest = name[len("cmail/"):]
        return rest.split("/")[0] if "/" in rest else ""
    if name.startswith("daemon/"):
        return "daemon"
    return None

def main():
    problems = []
    for top in ("include/cmail", "libcmail", "frontends/daemon", "bindings"):
        for dirpath, _, files in os.walk(os.path.join(ROOT, top)):
            for f in files:
                if not f.endswith((".h", ".cc")):
                    continue
                path = os.path.join(dirpath, f)
                layer = layer_of(path)
                public = "/include/cmail/" in path.replace(os.sep, "/")
                rel = os.path.relpath(path, ROOT)
                text = open(path, encoding="utf-8").read()
                for n, line in enumerate(text.splitlines(), 1):
                    m = INCLUDE.match(line)
                    if not m:
                        continue
                    kind, name = m.groups()
                    where = f"{rel}:{n}: {layer or 'root'} includes {name}"
                    target = layer_of_include(name)
                    if target is not None and target in RANK and RANK[target] > RANK[layer]:
                        problems.append(where + f" (layer {target} is above)")
                    if public and kind == '"':
                        problems.append(where + " (a public header includes a private one)")
                    if (public or layer in CORE) and THIRD_PARTY.match(name):
                        problems.append(where + " (a third-party header)")
                    if layer in CORE and SYSTEM_IO.match(name):
                        problems.append(where + " (sockets in the core)")
                    if layer == "bindings" and target == "daemon":
                        problems.append(where + " (the daemons' private code)")
                    if rel.replace(os.sep, "/") == C_HEADER and name not in C_INCLUDES:
                        problems.append(where + " (the C header includes only " + ", ".join(sorted(C_INCLUDES)) + ")")
                if layer in CORE and re.search(r"\b(sqlite3_|uv_|mbedtls_|nettle_|ares_)\w*\(", text):
                    problems.append(f"{rel}: {layer or 'root'} calls a third-party library")
    for p in problems:
        print(p)
    print(f"{len(problems)} layering problem(s)")
    return 1 if problems else 0

if __name__ == "__main__":
    sys.exit(main())
