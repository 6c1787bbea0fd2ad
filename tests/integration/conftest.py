"""Fixtures: a private notifyd per test, on a temporary data dir and socket."""
import itertools
import json
import os
import random
import socket
import subprocess
import threading
import time

import pytest

NOTIFYD = os.path.abspath(os.environ.get("NOTIFYD_BIN", "bin/notifyd"))
NOTIFYCTL = os.path.abspath(os.environ.get("NOTIFYCTL_BIN", "bin/notifyctl"))
# Set NOTIFYD_WRAPPER="valgrind --leak-check=full --error-exitcode=99" to run
# every daemon under a checker; its exit status is asserted at teardown.
WRAPPER = os.environ.get("NOTIFYD_WRAPPER", "").split()
START_TIMEOUT = 60 if WRAPPER else 10
_databases = itertools.count()


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "no_valgrind: reaches no memory path the rest do not (the build, the "
        "docs, timing alone); left out of the valgrind pass of make check")
    config.addinivalue_line(
        "markers", "sqlite_only(why): looks into SQLite's own files (the database, the "
        "token secret's file); skipped when NOTIFYD_TEST_STORE=postgresql")
    config.addinivalue_line(
        "markers", "transport_only(why): times a connection (slow reads, dropped pings, "
        "trickled headers) whatever the store holds; run in the first pass only")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("NOTIFYD_TEST_STORE", "sqlite") != "postgresql":
        return
    for item in items:
        m = item.get_closest_marker("sqlite_only")
        if m is not None:
            item.add_marker(pytest.mark.skip(reason="SQLite only: " + m.args[0]))
        elif item.get_closest_marker("transport_only") is not None:
            item.add_marker(pytest.mark.skip(reason="the transport alone: run in the "
                                             "first pass"))
        elif item.module.__name__ in ("test_postgres", "test_cluster"):
            item.add_marker(pytest.mark.skip(reason="chooses its own store: run in the "
                                             "first pass"))


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port():
    """A free port below the kernel's ephemeral range. A daemon keeps its
    ports across restarts; one the kernel gave (port 0) is in that range,
    and any client connection made while the daemon was down could be given
    it, its TIME_WAIT then refusing the restart's bind for a minute."""
    low = _ephemeral_low()
    while True:
        port = random.randrange(10000, low)
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # as civetweb binds
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()


class Daemon:
    """One notifyd process, its log, and clients for it."""

    def __init__(self, tmp, args=(), env=None, data_dir=None, socket_path=None,
                 pass_socket=True, http=False, smtp=False, binaries=(NOTIFYD, NOTIFYCTL)):
        self.tmp = tmp
        self.notifyd, self.notifyctl = binaries
        self.data_dir = data_dir or os.path.join(tmp, "data")
        self.socket = socket_path or os.path.join(tmp, "ctl.sock")
        self.args = list(args)
        self.pass_socket = pass_socket
        self.http = http
        self.port = None
        self.smtp = smtp
        self.smtp_port = None
        self.env = dict(os.environ, **(env or {}))
        self.env.pop("NOTIFYD_CONTROL_SOCKET", None)
        self.proc = None
        self.lines = []
        self.cond = threading.Condition()

    def start(self, wait=True):
        chosen = False
        if self.http and self.port is None:
            self.port, chosen = free_port(), True
        if self.smtp and self.smtp_port is None:
            self.smtp_port, chosen = free_port(), True
        cmd = WRAPPER + [self.notifyd, "--data-dir", self.data_dir,
                         "--http", "127.0.0.1:%d" % self.port if self.http else "off",
                         "--smtp", "127.0.0.1:%d" % self.smtp_port if self.smtp else "off"
                         ] + self.args
        if self.pass_socket:
            cmd += ["--socket", self.socket]
        self.lines = []
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=self.env)
        self.reader = threading.Thread(target=self._read, args=(self.proc,), daemon=True)
        self.reader.start()
        if wait:
            try:
                self.wait_log('msg="notifyd started"', START_TIMEOUT)
            except AssertionError:
                # Another test's daemon took a port chosen here first: choose again.
                if not chosen or "cannot listen" not in self.log():
                    raise
                self.reader.join(5)
                if self.http:
                    self.port = None
                if self.smtp:
                    self.smtp_port = None
                return self.start(wait)
        return self

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def _read(self, proc):
        for raw in proc.stdout:
            with self.cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_log(self, needle, timeout=10):
        """Wait until a log line contains needle; the event, not a sleep."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines:
                    if needle in line:
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self.reader.is_alive()):
                    raise AssertionError(f"no log line with {needle!r}; log:\n" + self.log())
                self.cond.wait(left)

    def log(self):
        with self.cond:
            return "\n".join(self.lines)

    def count_log(self, needle):
        with self.cond:
            return sum(needle in l for l in self.lines)

    def wait_count(self, needle, n, timeout=10):
        """How many log lines hold needle, once there are n (or the time is up):
        the daemon logs before it answers, but its lines reach us on their own."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                c = sum(needle in l for l in self.lines)
                left = deadline - time.monotonic()
                if c >= n or left <= 0:
                    return c
                self.cond.wait(left)

    def stop(self, sig="TERM", timeout=None):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal({"TERM": 15, "INT": 2, "KILL": 9}[sig])
        rc = self.proc.wait(timeout or (60 if WRAPPER else 10))
        self.reader.join(5)
        return rc

    def ctl(self, *args, check=None, env=None):
        """Run notifyctl --json; returns (exit status, parsed stdout or text, stderr)."""
        e = dict(os.environ, **(env or {}))
        e.pop("NOTIFYD_CONTROL_SOCKET", None)
        p = subprocess.run([self.notifyctl, "-s", self.socket, "--json", *map(str, args)],
                           capture_output=True, text=True, env=e, timeout=30)
        out = p.stdout
        try:
            out = json.loads(p.stdout) if p.stdout.strip() else None
        except ValueError:
            pass
        if check is not None:
            assert p.returncode == check, (p.returncode, p.stdout, p.stderr)
        return p.returncode, out, p.stderr

    def ok(self, *args):
        return self.ctl(*args, check=0)[1]

    def connect(self):
        return Client(self.socket)


class Client:
    """A raw control-protocol connection."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(path)
        self.f = self.sock.makefile("rb")
        self.greeting = self.read()

    def send_raw(self, data):
        # sendall's timeout bounds the whole call, and megabytes of requests
        # take notifyd longer than that under valgrind: it bounds each piece.
        view = memoryview(data)
        for i in range(0, len(view), 1 << 16):
            self.sock.sendall(view[i:i + (1 << 16)])

    def send(self, cmd, args=None, id=1):
        req = {"id": id, "cmd": cmd}
        if args is not None:
            req["args"] = args
        self.sock.sendall(json.dumps(req).encode() + b"\n")

    def read(self):
        line = self.f.readline()
        return json.loads(line) if line else None

    def call(self, cmd, args=None, id=1):
        self.send(cmd, args, id)
        return self.read()

    def close(self):
        self.f.close()
        self.sock.close()


@pytest.fixture
def tmp(tmp_path):
    # Unix socket paths are short; tmp_path can be long, so use /tmp.
    import tempfile, shutil
    d = tempfile.mkdtemp(prefix="nd-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


# NOTIFYD_TEST_STORE=postgresql: every daemon stores in PostgreSQL (a
# database of its own on the session's private server, one per data
# directory, so a restart finds its data), not in SQLite.
STORE = os.environ.get("NOTIFYD_TEST_STORE", "sqlite")


@pytest.fixture
def daemons(tmp, request):
    started = []
    databases = {}

    def make(**kw):
        d = Daemon(tmp, **kw)
        if STORE == "postgresql" and "NOTIFYD_STORE_URL" not in (kw.get("env") or {}):
            if d.data_dir not in databases:
                server = request.getfixturevalue("postgres")
                databases[d.data_dir] = server.createdb("d%d_%d" % (os.getpid(),
                                                                    next(_databases)))
            d.env["NOTIFYD_STORE_URL"] = databases[d.data_dir]
        started.append(d)
        return d
    yield make
    # A daemon still running is stopped with SIGTERM and must exit 0: under
    # ASan, LeakSanitizer or valgrind a leak or error changes the status.
    bad = []
    for d in started:
        if d.proc is not None and d.proc.poll() is None:
            rc = d.stop()
            if rc != 0:
                bad.append(f"notifyd exited {rc}:\n" + d.log())
    if bad:
        pytest.fail("\n".join(bad))


@pytest.fixture
def nd(daemons):
    return daemons().start()


@pytest.fixture(scope="session")
def postgres():
    """A private PostgreSQL (tests/integration/pgserver.py), one per test worker."""
    import pgserver
    why = pgserver.available()
    if why:
        pytest.skip(why)
    server = pgserver.Server()
    yield server
    server.stop()
