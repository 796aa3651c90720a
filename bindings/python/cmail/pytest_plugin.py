"""cmail.pytest_plugin: the `cmail_server` pytest fixture, a running cmail.testing.Harness per
test (a fresh server, ports and data directory each, closed after the test whatever its
outcome).

Use it with `pytest -p cmail.pytest_plugin`, or in a conftest.py: `pytest_plugins =
["cmail.pytest_plugin"]`. Owns nothing beyond the harness it yields; not for sharing between
threads other than as cmail.testing says.
"""
import pytest

from .testing import Harness


@pytest.fixture
def cmail_server():
    with Harness() as h:
        yield h
