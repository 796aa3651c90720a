#!/usr/bin/python3
"""tests/c_abi/exports.py: libcmail.so exports the C ABI and nothing else.

- Every dynamic symbol the library defines (`nm -D --defined-only`) starts with `cmail_`, but
  for the version node of bindings/c/libcmail.map (CMAIL_0, an absolute symbol).
- Every function include/cmail/cmail.h declares is exported, and every exported one declared.
- The soname is libcmail.so.0.
- tests/c_abi/c_abi_test.c calls every declared function.

Usage: exports.py LIBRARY HEADER TEST_SOURCE. Exits 1 and names every problem.
"""
import re
import subprocess
import sys


def main():
    lib, header, test = sys.argv[1:4]
    problems = []
    nm = subprocess.run(["nm", "-D", "--defined-only", lib], check=True, capture_output=True, text=True).stdout
    exported = set()
    for line in nm.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        kind, name = parts[1], parts[2].split("@")[0]
        if kind == "A" and name == "CMAIL_0":
            continue
        if not name.startswith("cmail_"):
            problems.append(f"exported symbol without the cmail_ prefix: {name} ({kind})")
        exported.add(name)
    text = open(header, encoding="utf-8").read()
    declared = set(re.findall(r"CMAIL_API\s[^;(]*?\b(cmail_\w+)\s*\(", text))
    if not declared:
        problems.append(f"no CMAIL_API function found in {header}")
    for name in sorted(declared - exported):
        problems.append(f"declared in cmail.h, not exported: {name}")
    for name in sorted(exported - declared):
        problems.append(f"exported, not declared in cmail.h: {name}")
    called = set(re.findall(r"\b(cmail_\w+)\s*\(", open(test, encoding="utf-8").read()))
    for name in sorted(declared - called):
        problems.append(f"not called by {test}: {name}")
    dyn = subprocess.run(["readelf", "-d", lib], check=True, capture_output=True, text=True).stdout
    if "Library soname: [libcmail.so.0]" not in dyn:
        problems.append("the soname is not libcmail.so.0")
    for p in problems:
        print(p)
    print(f"{len(exported)} exported symbols, {len(declared)} declared; {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
