"""README's five-minute tour, pasted top to bottom into a fresh shell.

The tour talks to the notifyd of `make run`: ports 8025 and 1025, the
default control socket, bin/notifyctl. Here the same commands talk to a
private notifyd: only those addresses are replaced, and NOTIFYD_CONTROL_SOCKET
points notifyctl at it. Blocks that start with "# in another terminal" run
in a fresh shell of their own, as a second terminal would, and stay open
until the end (then Ctrl-C or Ctrl-D, as the tour says).
"""
import os
import re
import select
import signal
import subprocess
import time

import pytest

from conftest import NOTIFYCTL, WRAPPER

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OTHER = "# in another terminal"

# What each block must print, found by a piece of its text. A block the tour
# drops or changes fails here, so the tour and this list move together.
EXPECT = [
    ("order_id=A-17", ["notification 1 for alice", "Order A-17 has shipped", "1 unread"]),
    ("count --user alice", ["1\n", "0 unread", "\n0\n"]),
    ("order=A-18", ["warning: order_shipped: 'order_id' is not in the data"]),
    ("Deploy done", ["notification 3 for bob"]),
    ("key create tour", ['"count":2', '"title":"Lunch is here"', '{"unread_count":2}']),
    ("payment_succeeded", ["notification 6 for alice", '"marked":3']),
    ("A-19", ["Subject   Order A-19 has shipped", "Hi Alice, Your order A-19 is on its way with DHL.", '"messages_count":1']),
    ("Password reset", ["Password reset", "1 shown of 1 matching"]),
    ("email off", ["in_app", "skipped   attempts 0: email turned off"]),
    ("quiet 22:00-07:00", ["quiet hours      22:00-07:00 starting mon,tue,wed,thu,fri"]),
    ("--at +15m", ["title        Stand-up in 15 minutes", "deliver_at   20",
                   "in_app     pending", " cancelled\n"]),
    ("digest --period daily", ["alice                    queued        2 item(s)",
                               "Subject   2 new notifications", "Order A-21 was delivered"]),
]

# When a second terminal is ready, and what it must have shown at the end.
OTHERS = {
    "notifyctl watch": ("log", 'msg="watch started"', ["bob", "Deploy done"]),
    "python3 -m websockets": ("output", '"type":"connected"',
                              ['"type":"notification"', "payment_succeeded", '"type":"read_all"']),
}


def tour_blocks():
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    start = text.index("## A five-minute tour")
    end = text.index("\n## ", start + 1)
    return re.findall(r"^```sh\n(.*?)^```", text[start:end], re.S | re.M)


class Shell:
    """One bash reading the blocks as a terminal would; output per block."""

    def __init__(self, env, cwd):
        self.p = subprocess.Popen(["bash", "--norc", "--noprofile"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                                  cwd=cwd)
        self.run("trap 'echo \"__FAILED__ $BASH_COMMAND\"' ERR")

    def run(self, block, timeout=60):
        self.p.stdin.write(block.encode() + b"\nprintf '\\n__END__\\n'\n")
        self.p.stdin.flush()
        out = b""
        deadline = time.monotonic() + timeout
        while not out.endswith(b"\n__END__\n"):
            left = deadline - time.monotonic()
            assert left > 0, "block did not finish:\n%s\n%s" % (block, out.decode())
            if select.select([self.p.stdout], [], [], left)[0]:
                chunk = os.read(self.p.stdout.fileno(), 65536)
                assert chunk, "the shell exited:\n" + out.decode()
                out += chunk
        return out[:-len(b"__END__\n")].decode()

    def close(self):
        self.p.stdin.close()
        self.p.wait(10)


def as_in_a_terminal():
    """A terminal's foreground job takes Ctrl-C. A runner started in the
    background (nohup, `&` in a script) hands its children SIGINT
    ignored, and Ctrl-C would then stop nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


class Terminal:
    """A second terminal: a fresh shell running one block until stopped."""

    def __init__(self, block, env, cwd):
        self.out = b""
        self.p = subprocess.Popen(["bash", "--norc", "--noprofile", "-c", block],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                  start_new_session=True, preexec_fn=as_in_a_terminal)

    def read_until(self, needle, timeout=20):
        """Output until needle is in it; needle None: to its end, which
        must come in time (a hang fails the test, never stalls it)."""
        deadline = time.monotonic() + timeout
        while needle is None or needle.encode() not in self.out:
            left = deadline - time.monotonic()
            assert left > 0, "never saw %r:\n%s" % (needle or "the end", self.out.decode())
            if select.select([self.p.stdout], [], [], left)[0]:
                chunk = os.read(self.p.stdout.fileno(), 65536)
                if not chunk and needle is None:
                    return
                assert chunk, "ended before %r:\n%s" % (needle, self.out.decode())
                self.out += chunk

    def stop(self, how):
        if how == "ctrl-c":
            os.killpg(self.p.pid, signal.SIGINT)
        self.p.stdin.close()  # Ctrl-D
        self.read_until(None)
        return self.p.wait(20)


@pytest.mark.skipif(bool(WRAPPER), reason="the tour's own programs are not the daemon's memory")
def test_the_tour_works_as_written(daemons, tmp):
    d = daemons(http=True, smtp=True).start()
    env = dict(os.environ, NOTIFYD_CONTROL_SOCKET=d.socket, HOME=tmp)

    def localise(block):
        return (block.replace("localhost:8025", "127.0.0.1:%d" % d.port)
                .replace("localhost:1025", "127.0.0.1:%d" % d.smtp_port)
                .replace("bin/notifyctl", NOTIFYCTL))

    blocks = tour_blocks()
    assert len(blocks) >= 10
    shell, others, seen = Shell(env, tmp), [], set()
    try:
        for block in blocks:
            if block.startswith(OTHER):
                key = next(k for k in OTHERS if k in block)
                how, ready, _ = OTHERS[key]
                t = Terminal(localise(block), env, tmp)
                others.append((key, t))
                if how == "log":
                    d.wait_log(ready, 20)
                else:
                    t.read_until(ready)
                continue
            out = shell.run(localise(block))
            assert "__FAILED__" not in out, "a command failed:\n%s\n%s" % (block, out)
            for piece, wants in EXPECT:
                if piece in block:
                    seen.add(piece)
                    for w in wants:
                        assert w in out, "%r not in the output of\n%s\n%s" % (w, block, out)
        for key, t in others:
            for w in OTHERS[key][2]:
                t.read_until(w)
            rc = t.stop("ctrl-c" if "watch" in key else "ctrl-d")
            assert rc in (0, -signal.SIGINT, 130), (key, rc, t.out.decode())
    finally:
        shell.close()
        for _, t in others:
            if t.p.poll() is None:
                os.killpg(t.p.pid, signal.SIGKILL)
                t.p.wait()
    assert seen == {piece for piece, _ in EXPECT}, "the tour lost: %s" % (
        {piece for piece, _ in EXPECT} - seen)
