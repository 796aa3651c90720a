#!/usr/bin/python3
"""tests/bench/python_bench.py: the Python embedding against aiosmtpd, same client, same run.

    tests/bench/python_bench.py BUILD_DIR [MESSAGES] [SESSIONS]

1. Intake: examples/asyncio_smtp.py (asyncio over the sans-I/O cmail.smtp.Server) and aiosmtpd
   (Debian's python3-aiosmtpd, its Sink handler: it keeps nothing, the cheapest handler it
   has), each sent MESSAGES (default 5000) messages of 4 KiB over SESSIONS (default 20)
   sessions by tests/bench/smtp_load.py (keep mode, two client processes). Both servers are
   one Python process on one core; both drop what they receive (the example's serve() is
   given a handler that keeps nothing, like aiosmtpd's Sink).
   Each server's CPU time (user + system, /proc) is measured around the run: on two cores the
   server and the two Python client processes share them, so messages per CPU second of the
   server is the figure that compares servers, messages per second the one users see.
2. Start and stop: cmail.testing.Harness (SMTP, POP3, IMAP, capture sink, a new data
   directory each time) and a bare cmail.Server with one SMTP listener, against aiosmtpd's
   Controller: from the constructor to a served NOOP, and the stop. RUNS (default 20) times
   each, the median and the worst printed.

Environment: RUNS=N; LOOP=uvloop runs both intake servers on uvloop (python3-uvloop);
LOAD=smtp-source sends with Postfix's C client (tests/bench/peers/install.sh installs it).
Prints one line per figure (key=value), then a summary.
"""
import os
import statistics
import subprocess
import sys
import threading
import time
import smtplib

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def load(port, messages, sessions):
    """The timed load: smtp_load.py's key=value line as a dict (LOAD=smtp-source: Postfix's C
    client, `smtp-source -d -s SESSIONS -m N -l 4096`, much lighter than the Python one)."""
    if os.environ.get("LOAD") == "smtp-source":
        t0 = time.monotonic()
        out = subprocess.run(["smtp-source", "-4", "-d", "-s", str(sessions), "-m", str(messages), "-l", "4096",
                              "-f", "loadgen@example.test", "-t", "bench@example.test", "-M", "loadgen.example.test",
                              f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=600)
        wall = time.monotonic() - t0
        errors = len(out.stderr.splitlines())
        return {"messages": str(messages), "errors": str(errors), "wall_s": f"{wall:.3f}",
                "msgs_per_s": f"{messages / wall:.0f}", "p50_ms": "-", "p99_ms": "-"}
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "bench", "smtp_load.py"), "--port", str(port),
                          "--sessions", str(sessions), "--messages", str(messages), "--size", "4096",
                          "--mode", "keep", "--procs", "2"], capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise SystemExit(f"smtp_load.py failed: {out.stderr}")
    line = out.stdout.strip().splitlines()[-1]
    return dict(kv.split("=", 1) for kv in line.split())


def cpu_seconds(pid):
    """User plus system CPU time of a process so far (/proc/PID/stat, fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(p, port, messages, sessions):
    load(port, 200, sessions)  # warm-up
    c0 = cpu_seconds(p.pid)
    v = load(port, messages, sessions)
    cpu = cpu_seconds(p.pid) - c0
    v["server_cpu_s"] = f"{cpu:.2f}"
    v["msgs_per_cpu_s"] = f"{int(v['messages']) / cpu:.0f}" if cpu > 0 else "inf"
    return v


def drain(pipe):
    for _ in iter(lambda: pipe.read(65536), b""):
        pass


def start_server(argv, env, ready_prefix):
    p = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    line = p.stdout.readline().decode()
    if not line.startswith(ready_prefix):
        p.kill()
        raise SystemExit(f"{argv[1]} did not start: {line!r}")
    threading.Thread(target=drain, args=(p.stdout,), daemon=True).start()
    return p, line


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


AIOSMTPD = """
import signal, sys
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Sink
c = Controller(Sink(), hostname="127.0.0.1", port=int(sys.argv[1]))
c.start()
print("listening on 127.0.0.1:%d" % c.port, flush=True)
signal.sigwait([signal.SIGTERM])
c.stop()
"""


# The example's serve() with a handler that keeps nothing, as aiosmtpd's Sink does (the
# example's own handler prints every message).
EXAMPLE = f"""
import asyncio, sys
sys.path.insert(0, {os.path.join(ROOT, "examples")!r})
import asyncio_smtp
asyncio.run(asyncio_smtp.serve(0, "example.test", on_message=lambda *message: None))
"""


def python(script, *args, uvloop=False):
    """argv running a script (a path or code) with this Python, on uvloop if asked."""
    code = f"import runpy, sys; sys.argv = {[script, *args]!r}; runpy.run_path({script!r}, run_name='__main__')" \
        if os.path.isfile(script) else script
    if uvloop:
        code = "import uvloop; uvloop.install()\n" + code
    return [sys.executable, "-c", code, *([] if os.path.isfile(script) else args)]


def intake(env, messages, sessions, uvloop):
    servers = [
        ("cmail-asyncio", python(EXAMPLE, uvloop=uvloop)),
        ("aiosmtpd", python(AIOSMTPD, str(free_port()), uvloop=uvloop)),
    ]
    results = {}
    for name, argv in servers:
        p, line = start_server(argv, env, "listening on")
        try:
            results[name] = measured(p, int(line.rsplit(":", 1)[1]), messages, sessions)
        finally:
            p.terminate()
            p.wait(10)
    return results


def noop(port):
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        assert s.noop()[0] == 250


def timed(start_stop, runs):
    starts, stops = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        handle, port = start_stop(None)
        noop(port)
        t1 = time.perf_counter()
        start_stop(handle)
        t2 = time.perf_counter()
        starts.append((t1 - t0) * 1000)
        stops.append((t2 - t1) * 1000)
    return starts, stops


def harness(handle):
    from cmail.testing import Harness
    if handle is not None:
        return handle.close()
    h = Harness().start()
    return h, h.ports["smtp"]


def bare_server(handle):
    import shutil
    import tempfile
    import cmail
    if handle is not None:
        srv, d = handle
        srv.close()
        shutil.rmtree(d)
        return None
    d = tempfile.mkdtemp(prefix="cmail-bench-")
    srv = cmail.Server(d + "/data")
    port = srv.listen("smtp")
    srv.start()
    return (srv, d), port


def controller(handle):
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Sink
    if handle is not None:
        return handle.stop()
    c = Controller(Sink(), hostname="127.0.0.1", port=free_port())
    c.start()
    return c, c.port


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    build = os.path.abspath(sys.argv[1])
    messages = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
    sessions = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    runs = int(os.environ.get("RUNS", "20"))
    lib = os.path.join(build, "bindings", "c", "libcmail.so.0")
    env = dict(os.environ, CMAIL_LIBRARY=lib, PYTHONPATH=os.path.join(ROOT, "bindings", "python"))
    os.environ.update(CMAIL_LIBRARY=lib)
    sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))

    uvloop = os.environ.get("LOOP") == "uvloop"
    r = intake(env, messages, sessions, uvloop)
    for name, v in r.items():
        print(f"intake loop={'uvloop' if uvloop else 'asyncio'} server={name} messages={v['messages']} errors={v['errors']} msgs_per_s={v['msgs_per_s']} "
              f"p50_ms={v['p50_ms']} p99_ms={v['p99_ms']} server_cpu_s={v['server_cpu_s']} "
              f"msgs_per_cpu_s={v['msgs_per_cpu_s']}")
    ratio = float(r["cmail-asyncio"]["msgs_per_s"]) / float(r["aiosmtpd"]["msgs_per_s"])
    cpu_ratio = float(r["cmail-asyncio"]["msgs_per_cpu_s"]) / float(r["aiosmtpd"]["msgs_per_cpu_s"])

    lines = []
    for name, fn in (("cmail-harness", harness), ("cmail-server-smtp-only", bare_server),
                     ("aiosmtpd-controller", controller)):
        fn(fn(None)[0])  # warm-up: imports, the library loaded
        starts, stops = timed(fn, runs)
        lines.append(f"startstop what={name} runs={runs} start_to_noop_ms_median={statistics.median(starts):.1f} "
                     f"start_max_ms={max(starts):.1f} stop_ms_median={statistics.median(stops):.1f} "
                     f"stop_max_ms={max(stops):.1f}")
    for line in lines:
        print(line)
    print(f"summary: cmail asyncio example / aiosmtpd = {ratio:.2f}x messages per second, "
          f"{cpu_ratio:.2f}x messages per second of the server's CPU")


if __name__ == "__main__":
    main()
