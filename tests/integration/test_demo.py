"""make demo and make run: the marketplace story checked through the APIs,
and the links both print."""
import os
import re
import select
import signal
import subprocess

import pytest
import requests

from conftest import NOTIFYCTL, NOTIFYD, WRAPPER

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.dirname(NOTIFYCTL)


def demo(d, *args):
    """tools/demo.sh against d, found on the control socket as make demo finds notifyd."""
    env = dict(os.environ, BIN=BIN, NOTIFYD_CONTROL_SOCKET=d.socket)
    return subprocess.run(["sh", os.path.join(ROOT, "tools", "demo.sh"), *args], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=120 if WRAPPER else 60)


def test_the_story_happens_as_told(daemons):
    d = daemons(http=True, smtp=True).start()
    p = demo(d, "--fast")
    assert p.returncode == 0, p.stdout + p.stderr
    out = p.stdout
    # One line per step, numbered; the mail link and a link per user first.
    steps = re.findall(r"^\[ ?(\d+)/(\d+)\] ", out, re.M)
    assert [int(s) for s, _ in steps] == list(range(1, 14)) and steps[0][1] == "13"
    head = out[:out.index("[ 1/13]")]
    assert head.index("/mail") < head.index("/inbox#token=")
    tokens = dict(re.findall(r"^  (\w+) \((?:buyer|seller)\) +\S+/inbox#token=(\S+)$", head, re.M))
    assert sorted(tokens) == ["ava", "ben", "cleo"]
    key = d.ok("key", "create", "checker")["key"]
    api = requests.Session()
    api.headers["Authorization"] = "Bearer " + key

    def get(path):
        r = api.get(d.url + path, timeout=10)
        assert r.status_code == 200, (path, r.text)
        return r.json()

    # Each printed link signs its user in: the token reads that inbox.
    for user, token in tokens.items():
        r = requests.get(d.url + "/api/v1/users/%s/notifications" % user,
                         headers={"Authorization": "Bearer " + token}, timeout=10)
        assert r.status_code == 200, r.text

    users = {u: get("/api/v1/users/" + u) for u in ("ava", "ben", "cleo")}
    assert len({u["tz"] for u in users.values()}) == 3, "three time zones"
    assert all(u["email"] for u in users.values())

    def inbox(user):
        return {n["type"]: n for n in get("/api/v1/users/%s/notifications" % user)["notifications"]}

    def email_of(user, n):
        full = get("/api/v1/users/%s/notifications/%d?deliveries=true" % (user, n["id"]))
        return [x for x in full["deliveries"] if x["channel"] == "email"]

    ava, ben, cleo = inbox("ava"), inbox("ben"), inbox("cleo")
    assert sorted(ava) == ["match_created", "message", "order_created", "order_delivered",
                           "order_shipped"]
    assert sorted(ben) == ["message", "payment_failed", "payment_succeeded"]
    assert sorted(cleo) == ["match_created", "message", "payout_completed"]
    # The reminder was scheduled and cancelled: nobody sees it.
    assert "Your bid expires" not in str(ava)
    assert ava["message"]["title"] == ben["message"]["title"] == "New drop on Friday"

    # ben in quiet hours: the critical one was sent, the others wait for 07:00 his time.
    assert [x["status"] for x in email_of("ben", ben["payment_failed"])] == ["sent"]
    for t in ("payment_succeeded", "message"):
        e = email_of("ben", ben[t])
        assert [x["status"] for x in e] == ["deferred"], e
        assert e[0]["next_attempt_at"]
    prefs = get("/api/v1/users/ben/preferences")
    assert prefs["quiet_hours"]["start"] == "22:00" and prefs["quiet_hours"]["end"] == "07:00"
    # cleo in digest mode: both emails went out in one digest; match_created is in-app only.
    digested = [email_of("cleo", cleo[t])[0] for t in ("payout_completed", "message")]
    assert [x["status"] for x in digested] == ["digested", "digested"]
    assert digested[0]["digest_id"] == digested[1]["digest_id"]
    assert [x["status"] for x in email_of("cleo", cleo["match_created"])] == ["skipped"]

    # The sink holds exactly the emails the story promised.
    mail = get("/api/v1/messages")["messages"]
    subjects = sorted((m["To"][0]["Address"].split(".")[0], m["Subject"]) for m in mail)
    order = re.search(r"order (A-\w+) for ava", out).group(1)
    assert subjects == sorted([
        ("ava", "Order %s received" % order), ("ava", "Order %s has shipped" % order),
        ("ava", "Order %s was delivered" % order), ("ava", "New drop on Friday"),
        ("ben", "Payment of 180.00 USD failed"), ("cleo", "2 new notifications")]), subjects
    digest = get("/api/v1/message/" + [m["ID"] for m in mail if m["Subject"] ==
                                        "2 new notifications"][0])
    assert "Payout of 228.00 USD sent" in digest["Text"] and "New drop on Friday" in digest["Text"]
    assert "Done: 11 notifications, 6 emails" in out

    # Played again on the same notifyd, it tells the story again beside the
    # first; cleo's digest for today went out, so hers waits for tomorrow.
    p = demo(d, "--fast")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "cleo had today's digest already" in p.stdout
    assert len(get("/api/v1/messages")["messages"]) == 11


def test_demo_says_what_is_wrong(daemons):
    d = daemons().start()          # no HTTP listener
    p = demo(d, "--fast")
    assert p.returncode == 1 and "HTTP listener is off" in p.stderr, p.stderr
    p = demo(d, "--slow")
    assert p.returncode == 2 and "usage" in p.stderr


@pytest.mark.no_valgrind    # the script, not the daemon: the story's test covers that
def test_make_run_prints_a_working_inbox_link(tmp):
    """tools/run.sh (make run): notifyd in the foreground, then the links."""
    env = dict(os.environ, BIN=BIN, DATA=os.path.join(tmp, "var"), XDG_RUNTIME_DIR=tmp)
    env.pop("NOTIFYD_CONTROL_SOCKET", None)
    p = subprocess.Popen(["sh", os.path.join(ROOT, "tools", "run.sh"), "--http", "127.0.0.1:0",
                          "--smtp", "127.0.0.1:0"], cwd=tmp, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        lines = []
        for line in p.stdout:
            lines.append(line)
            if "Ctrl-C stops notifyd" in line:
                break
        text = "".join(lines)
        m = re.search(r"(http://\S+)/inbox#token=(\S+)", text)
        assert m, text
        base, token = m.groups()
        r = requests.get(base + "/inbox", timeout=10)
        assert r.status_code == 200 and "text/html" in r.headers["Content-Type"]
        r = requests.get(base + "/api/v1/users/demo/notifications",
                         headers={"Authorization": "Bearer " + token}, timeout=10)
        assert r.status_code == 200 and r.json()["notifications"] == []
        # Ctrl-C: the terminal signals the whole group; notifyd stops cleanly.
        os.killpg(p.pid, signal.SIGINT)
        assert p.wait(20) == 0
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


@pytest.mark.no_valgrind    # the script's own notifyd is not under the wrapper
def test_demo_starts_a_notifyd_when_none_answers(tmp):
    """No notifyd on the control socket: make demo starts one with its data in a
    temporary directory, plays the story on it, and leaves it running."""
    env = dict(os.environ, BIN=BIN, XDG_RUNTIME_DIR=tmp, TMPDIR=tmp)
    env.pop("NOTIFYD_CONTROL_SOCKET", None)
    p = subprocess.run(["sh", os.path.join(ROOT, "tools", "demo.sh"), "--fast"], cwd=ROOT,
                       capture_output=True, text=True, env=env, timeout=60)
    m = re.search(r"kill (\d+) && rm -r (\S+)", p.stdout)
    pid = int(m.group(1)) if m else None
    try:
        assert p.returncode == 0, p.stdout + p.stderr
        assert m.group(2).startswith(tmp)
        os.kill(pid, 0)     # still running, to browse
        st = subprocess.run([NOTIFYCTL, "--json", "status"], env=env, capture_output=True,
                            text=True, timeout=10)
        assert st.returncode == 0 and '"notifications":11' in st.stdout, st.stdout + st.stderr
    finally:
        if pid:
            # Not our child: wait for it to go through a pidfd.
            fd = os.pidfd_open(pid)
            os.kill(pid, signal.SIGTERM)
            select.select([fd], [], [], 20)
            os.close(fd)
