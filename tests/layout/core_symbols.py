#!/usr/bin/env python3
"""tests/layout/core_symbols.py: cmail-core links nothing but the C++ standard library.

Reads the undefined symbols of libcmail-core.a (nm -u) and fails, naming each, when one belongs
to a library the core must not use: SQLite, libuv, mbedTLS, c-ares, libargon2 (or any symbol
of the other cmail libraries, which sit above it). What is left is the C and C++ runtime.

Usage: core_symbols.py LIBCMAIL_CORE_A
"""
import re
import subprocess
import sys

FORBIDDEN = re.compile(r"^(sqlite3_|uv_|mbedtls_|ares_|argon2|_ZN5cmail(5store|8backends|3net|6daemon)\b)")


def main():
    lib = sys.argv[1]
    out = subprocess.run(["nm", "-u", "--format=posix", lib], check=True, capture_output=True, text=True).stdout
    symbols = sorted({line.split()[0] for line in out.splitlines() if line and not line.endswith(":")})
    bad = [s for s in symbols if FORBIDDEN.match(s)]
    for s in bad:
        print(f"{lib}: needs {s}")
    print(f"{len(symbols)} undefined symbols, {len(bad)} from a library the core must not use")
    return 1 if bad or not symbols else 0


if __name__ == "__main__":
    sys.exit(main())
