#!/usr/bin/python3
"""tests/install/install_test.py: an embedder builds against the installed tree alone.

1. `meson install --destdir TMP` of this build.
2. The installed tree holds the public headers and nothing else under includedir (no private
   header from libcmail/ or frontends/daemon/), the three libraries and their pkg-config files
   (not the daemons' private library), the executables with the cmail-admin-* links, and the
   man pages of docs/man/.
3. A copy of examples/intake.cc is compiled with this build's C++ compiler and only the flags of
   `pkg-config --cflags --libs --static cmail-net` (PKG_CONFIG_PATH and PKG_CONFIG_SYSROOT_DIR
   point into TMP), plus -std=c++20 (the headers' language) and, in a sanitized build, the
   sanitizer flags the installed libraries were compiled with.
4. The program runs briefly: it listens on a free port, takes one message over SMTP and prints
   it. What the test relies on is only the example's contract (`intake ADDRESS PORT`, a line
   "listening on 127.0.0.1:PORT", each accepted message printed to stdout), not its code.
5. The C ABI: libcmail.so with its soname links, cmail.pc and cmail/cmail.h are installed, and a
   copy of tests/c_abi/c_abi_test.c is compiled with this build's C compiler as C99 with
   -Wall -Wextra -Werror and only the flags of `pkg-config --cflags --libs cmail` (plus
   -pthread, and the sanitizer flags in a sanitized build), then run against the installed
   library (LD_LIBRARY_PATH): it must pass.
6. The Python package: cmail/*.py and its _paths.py are installed in /usr/bin/python3's purelib
   directory for the prefix, and /usr/bin/python3 with only that directory added to its path
   (no CMAIL_LIBRARY) imports it, loads the installed libcmail.so.0 through _paths.py, starts a
   cmail.testing.Harness and gets one message through it (with the ASan runtime preloaded in a
   sanitized build).

TMP is removed at the end, the program is stopped, and every step has a time limit.

Usage: install_test.py BUILD_ROOT SOURCE_ROOT MESON [--sanitize LIST] [--cc CC] -- CXX...
"""
import argparse
import json
import os
import queue
import re
import shlex
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import threading
import time

ADDRESS = "me@example.test"
EXECUTABLES = ["cmail", "cmail-smtpd", "cmail-dispatchd", "cmail-popd", "cmail-imapd", "cmail-admin"]
ADMIN_LINKS = ["user", "address", "smtpd", "popd", "permissions"]
LIBRARIES = ["cmail-core", "cmail-store", "cmail-net"]
PRIVATE_LIBRARIES = ["cmail-daemon"]

failures = []


def check(ok, what):
    if not ok:
        failures.append(what)
        print("FAIL:", what)
    return ok


def run(cmd, timeout, **kw):
    print("+", shlex.join(cmd), flush=True)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=timeout, **kw)
    if p.returncode != 0:
        print(p.stdout)
        raise SystemExit(f"failed ({p.returncode}): {shlex.join(cmd)}")
    return p.stdout


def files_under(root):
    """Every file and symlink under root, as paths relative to it."""
    out = set()
    for dirpath, dirs, files in os.walk(root):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(dirpath, d))]:
            out.add(os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/"))
    return out


def installed_dirs(build, destdir):
    """bindir, libdir, includedir, mandir of this build, inside destdir."""
    with open(os.path.join(build, "meson-info", "intro-buildoptions.json")) as f:
        opts = {o["name"]: o["value"] for o in json.load(f)}
    prefix = opts["prefix"]
    dirs = {}
    for name in ("bindir", "libdir", "includedir", "mandir"):
        d = os.path.join(prefix, opts[name])  # relative to prefix unless absolute
        dirs[name] = destdir + d
    return dirs


def check_tree(source, destdir, dirs):
    # Headers: exactly include/cmail/** of the source tree, with its folders.
    public = files_under(os.path.join(source, "include"))
    got = files_under(dirs["includedir"])
    check(got == public, "installed headers are include/ of the source tree: "
          f"missing {sorted(public - got)}, unexpected {sorted(got - public)}")
    # The private headers as they are included: "store/sqlite.h", "daemon/config.h".
    private = {rel for rel in files_under(os.path.join(source, "libcmail")) if rel.endswith(".h")}
    private |= {"daemon/" + rel for rel in files_under(os.path.join(source, "frontends", "daemon"))
                if rel.endswith(".h")}
    leaked = sorted(h for h in got if h in private or h.removeprefix("cmail/") in private)
    check(not leaked, f"no private header installed: {leaked}")

    for lib in LIBRARIES:
        check(os.path.isfile(os.path.join(dirs["libdir"], f"lib{lib}.a")), f"lib{lib}.a installed")
        check(os.path.isfile(os.path.join(dirs["libdir"], "pkgconfig", f"{lib}.pc")), f"{lib}.pc installed")
    for name in ("libcmail.so", "libcmail.so.0", "libcmail.so.0.1.0"):
        check(os.path.exists(os.path.join(dirs["libdir"], name)), f"{name} installed")
    check(os.path.islink(os.path.join(dirs["libdir"], "libcmail.so.0")), "libcmail.so.0 is the soname link")
    check(os.path.isfile(os.path.join(dirs["libdir"], "pkgconfig", "cmail.pc")), "cmail.pc installed")
    everything = files_under(destdir)
    for lib in PRIVATE_LIBRARIES:
        check(not [f for f in everything if lib in os.path.basename(f)], f"nothing of {lib} installed")

    for exe in EXECUTABLES:
        path = os.path.join(dirs["bindir"], exe)
        check(os.path.isfile(path) and os.access(path, os.X_OK), f"executable {exe} installed")
    for tool in ADMIN_LINKS:
        path = os.path.join(dirs["bindir"], "cmail-admin-" + tool)
        check(os.path.islink(path) and os.readlink(path) == "cmail-admin", f"symlink cmail-admin-{tool} -> cmail-admin")

    for page in sorted(os.listdir(os.path.join(source, "docs", "man"))):
        section = page.rsplit(".", 1)[-1]
        check(os.path.isfile(os.path.join(dirs["mandir"], "man" + section, page)), f"man page {page} installed")


def pkg_config_env(destdir, dirs):
    env = dict(os.environ)
    env["PKG_CONFIG_PATH"] = os.path.join(dirs["libdir"], "pkgconfig")  # the system's stay after it
    env["PKG_CONFIG_SYSROOT_DIR"] = destdir
    return env


def build_example(source, destdir, dirs, cxx, sanitize, work):
    env = pkg_config_env(destdir, dirs)
    pc = shlex.split(run(["pkg-config", "--cflags", "--libs", "--static", "cmail-net"], 30, env=env))
    print("pkg-config:", shlex.join(pc))
    check(not [f for f in pc if source in f], "no pkg-config flag points into the source tree")
    check(f"-I{dirs['includedir']}" in pc, "the include flag points into the installed tree")
    src = os.path.join(work, "intake.cc")  # a copy: nothing next to it to include by accident
    shutil.copy(os.path.join(source, "examples", "intake.cc"), src)
    exe = os.path.join(work, "intake")
    extra = ["-std=c++20"] + ([f"-fsanitize={sanitize}"] if sanitize else [])
    run(cxx + extra + [src, "-o", exe] + pc, 600, cwd=work)
    return exe


def build_and_run_c_test(source, destdir, dirs, cc, sanitize, work):
    env = pkg_config_env(destdir, dirs)
    pc = shlex.split(run(["pkg-config", "--cflags", "--libs", "cmail"], 30, env=env))
    print("pkg-config cmail:", shlex.join(pc))
    check(f"-I{dirs['includedir']}" in pc and f"-L{dirs['libdir']}" in pc, "cmail.pc points into the installed tree")
    src = os.path.join(work, "c_abi_test.c")
    shutil.copy(os.path.join(source, "tests", "c_abi", "c_abi_test.c"), src)
    exe = os.path.join(work, "c_abi_test")
    extra = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pthread"] + ([f"-fsanitize={sanitize}"] if sanitize else [])
    run(cc + extra + [src, "-o", exe] + pc, 300, cwd=work)
    env = dict(os.environ, LD_LIBRARY_PATH=dirs["libdir"], TMPDIR=work)
    out = run([exe], 120, env=env, cwd=work)
    print(out.strip().splitlines()[-1] if out.strip() else "(no output)")
    check(re.search(r"\d+ checks, 0 failed", out) is not None, "the C ABI test passes against the installed library")


PYTHON_CHECK = r"""
import smtplib, sys
import cmail, cmail.testing
print("library", cmail.library_path())
with cmail.testing.Harness() as h:
    a = h.add_user("alice", "pw")
    with smtplib.SMTP("127.0.0.1", h.ports["smtp"], timeout=10) as s:
        s.sendmail("a@b.test", [a], "Subject: installed\r\n\r\nx\r\n")
    print("subject", h.wait_for_messages(1, 10)[0]["Subject"])
"""


def check_python_package(build, destdir, dirs, cc, sanitize):
    with open(os.path.join(build, "meson-info", "intro-installed.json")) as f:
        installed = json.load(f).values()
    init = [p for p in installed if p.endswith("/cmail/__init__.py")]
    if not check(len(init) == 1, f"the Python package is installed once: {init}"):
        return
    package = destdir + os.path.dirname(init[0])
    for name in ("__init__.py", "_lib.py", "_paths.py", "smtp.py", "pop3.py", "server.py", "store.py", "testing.py",
                 "pytest_plugin.py"):
        check(os.path.isfile(os.path.join(package, name)), f"cmail/{name} installed")
    env = {k: v for k, v in os.environ.items() if k not in ("CMAIL_LIBRARY", "PYTHONPATH", "LD_LIBRARY_PATH")}
    env["PYTHONPATH"] = os.path.dirname(package)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if "address" in sanitize:
        name = "libclang_rt.asan-x86_64.so" if "clang" in " ".join(cc) else "libasan.so"
        # libstdc++ too: ASan's __cxa_throw interceptor needs it loaded at start-up (tests/python/meson.build)
        env["LD_PRELOAD"] = (run(cc + [f"-print-file-name={name}"], 30).strip() + " "
                             + run(cc + ["-print-file-name=libstdc++.so.6"], 30).strip())
        env["ASAN_OPTIONS"] = "detect_leaks=0:abort_on_error=1"  # the interpreter's own memory at exit
    out = run(["/usr/bin/python3", "-c", PYTHON_CHECK], 120, env=env, cwd="/")
    print(out.strip())
    m = re.search(r"^library (.*)$", out, re.M)
    check(m is not None and os.path.realpath(m.group(1)) == os.path.realpath(os.path.join(dirs["libdir"], "libcmail.so.0")),
          "the installed package loads the installed libcmail.so.0")
    check("subject installed" in out, "the installed package's harness took a message")


def run_example(exe):
    p = subprocess.Popen([exe, ADDRESS, "0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = queue.Queue()

    def reader():
        for line in p.stdout:
            lines.put(line)

    threading.Thread(target=reader, daemon=True).start()
    out = []

    def read_until(pattern, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                line = lines.get(timeout=max(0.01, deadline - time.time()))
            except queue.Empty:
                break
            out.append(line)
            m = re.search(pattern, line)
            if m:
                return m
        return None

    try:
        m = read_until(r"listening on 127\.0\.0\.1:(\d+)", 10)
        if not check(m is not None, "the installed-tree example prints its port"):
            return
        subject = f"installed tree {os.getpid()}"
        with smtplib.SMTP("127.0.0.1", int(m.group(1)), timeout=10) as s:
            refused = s.sendmail("a@b.test", [ADDRESS], f"Subject: {subject}\r\n\r\nfrom pkg-config\r\n")
            check(not refused, f"the example accepted mail for {ADDRESS}: {refused}")
        check(read_until(re.escape(subject), 10) is not None, "the example printed the message")
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
        print("example output:\n" + "".join(out))


def main():
    if "--" not in sys.argv:
        raise SystemExit(__doc__)
    split = sys.argv.index("--")
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("source")
    ap.add_argument("meson")
    ap.add_argument("--sanitize", default="none")
    ap.add_argument("--cc", default="cc", help="the C compiler command (shell words)")
    a = ap.parse_args(sys.argv[1:split])
    cxx = sys.argv[split + 1:]
    sanitize = "" if a.sanitize == "none" else a.sanitize
    work = tempfile.mkdtemp(prefix="cmail-install-test-")
    try:
        destdir = os.path.join(work, "destdir")
        run([a.meson, "install", "-C", a.build, "--no-rebuild", "--destdir", destdir], 300)
        dirs = installed_dirs(a.build, destdir)
        check_tree(a.source, destdir, dirs)
        exe = build_example(a.source, destdir, dirs, cxx, sanitize, work)
        run_example(exe)
        build_and_run_c_test(a.source, destdir, dirs, shlex.split(a.cc), sanitize, work)
        check_python_package(a.build, destdir, dirs, shlex.split(a.cc), sanitize)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    print("ok: installed tree complete; examples/intake.cc built from it with pkg-config alone and took a message;"
          " the C ABI test built with cmail.pc passed against the installed libcmail.so;"
          " the installed Python package loaded it and its harness took a message")
    return 0


if __name__ == "__main__":
    sys.exit(main())
