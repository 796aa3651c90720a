"""tests/python/conftest.py: the cmail package's tests run against this checkout's
bindings/python (put first on sys.path) and the library named by CMAIL_LIBRARY (meson sets it
to this build's libcmail.so.0; without it the package finds a build tree itself).

Random splits come from a seed: CMAIL_TEST_SEED=N, else one derived from the test's name;
each test prints it (shown by pytest for a failing test) with the command to repeat it.
"""
import os
import random
import sys
import zlib

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))

pytest_plugins = ["cmail.pytest_plugin"]


@pytest.fixture
def rng(request):
    seed = int(os.environ.get("CMAIL_TEST_SEED") or zlib.crc32(request.node.nodeid.encode()))
    print(f"[seed] {request.node.nodeid} uses seed {seed}; again: CMAIL_TEST_SEED={seed} "
          f"/usr/bin/python3 -m pytest '{request.node.nodeid}'")
    return random.Random(seed)


def splits(data, mode, rng):
    """data whole, byte by byte, or in random pieces of 1-17 bytes."""
    if mode == "whole":
        return [data]
    if mode == "bytes":
        return [data[i:i + 1] for i in range(len(data))]
    out, at = [], 0
    while at < len(data):
        n = rng.randint(1, 17)
        out.append(data[at:at + n])
        at += n
    return out


MODES = ["whole", "bytes", "random"]
