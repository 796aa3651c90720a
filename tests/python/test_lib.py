"""cmail._lib: which library is loaded, a clear ImportError when none can be, the status
mapping of errors, and the version."""
import os
import subprocess
import sys

import cmail
from conftest import ROOT


def test_loads_the_library_named_by_the_environment():
    if os.environ.get("CMAIL_LIBRARY"):
        assert cmail.library_path() == os.environ["CMAIL_LIBRARY"]
    assert cmail.version() == "0.1.0"


def test_a_missing_library_is_a_clear_import_error(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "bindings", "python"),
               CMAIL_LIBRARY=str(tmp_path / "libcmail.so.0"))
    r = subprocess.run([sys.executable, "-c", "import cmail; cmail.version()"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, env=env, timeout=60)
    assert r.returncode == 1
    assert "ImportError: cannot load libcmail.so.0 (set CMAIL_LIBRARY to its path)" in r.stderr
    assert f"{tmp_path / 'libcmail.so.0'}: no such file" in r.stderr


def test_errors_map_to_their_classes():
    from cmail._lib import error
    assert type(error(1, "x")) is cmail.NotFound
    assert type(error(9, "x")) is cmail.IoError and isinstance(error(9, "x"), OSError)
    e = error(4, "refused")
    assert type(e) is cmail.Error and e.status == 4 and e.name == "Constraint" and str(e) == "Constraint: refused"
    assert error(99, "x").name == "Unknown"
