#!/usr/bin/python3
"""Faults with figures: what notifyd survives, and what is found afterwards.

    /usr/bin/python3 bench/faults.py sigkill [--cycles 50]
    /usr/bin/python3 bench/faults.py relay
    /usr/bin/python3 bench/faults.py locked
    /usr/bin/python3 bench/faults.py disk
    /usr/bin/python3 bench/faults.py soak [--seconds 600]    (bench/soak.sh)

sigkill: mixed load (REST sends, a WebSocket reading with since=, SMTP
ingest, the outbox emailing to the sink) while notifyd is killed with
SIGKILL and restarted, CYCLES times. Afterwards every acknowledged
notification and captured mail must be there exactly once, no email may
have gone out under two Message-IDs, the WebSocket must have seen every
notification of its user, and PRAGMA integrity_check must say ok.

relay: the outbox against a relay that is down, then up, then one that
takes DATA and never answers: every email arrives once, with one
Message-ID. locked: the database held by another process past the busy
timeout: 503 busy with Retry-After, and nothing acknowledged lost.

soak: the mixed load for SECONDS without faults; RSS after warm-up against
RSS at the end, and the exit status at SIGTERM (under a leak checker, a
leak makes it non-zero).

disk: a 24 MiB tmpfs filled under load (needs mount, so root); the test of
the same is tests/integration/test_faults.py.
Figures go to bench/RESULTS.md by hand, with the machine and the command.
"""
import argparse
import asyncio
import json
import os
import random
import re
import shutil
import socket
import sqlite3
import sys
import tempfile
import threading
import time

import requests
import websockets

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
sys.path.insert(0, os.path.dirname(__file__))
from conftest import Daemon  # noqa: E402  the test suite's own private notifyd
from test_delivery import FakeRelay  # noqa: E402  and its scriptable relay
from test_faults import smtp_message  # noqa: E402
from ws import rss_kib  # noqa: E402


def conf(tmp, text):
    path = os.path.join(tmp, "faults.conf")
    with open(path, "w") as f:
        f.write(text)
    return ["--config", path]


def smtp_send(port, subject):
    """One message; its ID when the sink said 250, else None."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        f = s.makefile("rb")

        def reply():
            while True:
                line = f.readline()
                if not line:
                    raise OSError("closed")
                if line[3:4] != b"-":
                    return line
        reply()
        s.sendall(b"EHLO x\r\nMAIL FROM:<a@x>\r\nRCPT TO:<sink@y>\r\nDATA\r\n")
        for _ in range(4):
            reply()
        s.sendall(b"Subject: " + subject.encode() + b"\r\n\r\nbody\r\n.\r\nQUIT\r\n")
        last = reply()
        s.close()
        m = re.match(rb"250 .*queued as (\S+)", last)
        return m.group(1).decode() if m else None
    except OSError:
        return None


def all_mail(d):
    """Every captured message's summary, paging Mailpit's way."""
    out, start = [], 0
    while True:
        page = requests.get(d.url + "/api/v1/messages", params={"start": start, "limit": 1000},
                            timeout=30).json()
        out += page["messages"]
        start += len(page["messages"])
        if not page["messages"] or start >= page["total"]:
            return out


def all_notifications(d, user):
    got, before = [], None
    while True:
        page = d.ok("list", "--user", user, "--limit", "200",
                    *(["--before", before] if before else []))
        got += page["notifications"]
        before = page["next_before"]
        if before is None:
            return got


class Load:
    """Mixed load on d: REST sends, a WebSocket reading u0's inbox with since=,
    SMTP ingest, reads and marks; what was acknowledged is kept."""

    def __init__(self, d):
        self.d = d
        self.key = d.ok("key", "create", "faults")["key"]
        self.users = ["u%d" % i for i in range(8)]
        for u in self.users[:4]:   # half of them are emailed, half in-app only
            d.ok("user", "set", u, "--email", "%s@example.com" % u)
        self.token = d.ok("token", "u0", "--ttl", "24h")["token"]
        self.stop_ev = threading.Event()
        self.acked = {}        # title -> (user, id)
        self.mails = {}        # subject -> ID
        self.ws_seen = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=f) for f in (self.rest, self.smtp, self.ws)]

    def start(self):
        for t in self.threads:
            t.start()

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join()

    def session(self):
        s = requests.Session()
        s.headers["Authorization"] = "Bearer " + self.key
        return s

    def rest(self):
        s, seq = self.session(), 0
        while not self.stop_ev.is_set():
            title = "t%d" % seq
            user = self.users[seq % len(self.users)]
            try:
                r = s.post(self.d.url + "/api/v1/notifications", timeout=10,
                           json={"user": user, "type": "message", "title": title, "key": title})
                if r.status_code in (200, 201):
                    with self.lock:
                        self.acked[title] = (user, r.json()["id"])
                    seq += 1
                if seq % 5 == 0:   # reads and marks, as clients do
                    s.get(self.d.url + "/api/v1/users/%s/notifications?limit=20" % user, timeout=10)
                    s.get(self.d.url + "/api/v1/users/%s/unread_count" % user, timeout=10)
                if seq % 50 == 0:
                    s.post(self.d.url + "/api/v1/users/%s/notifications/read_all" % user, timeout=10)
            except requests.RequestException:
                s = self.session()
                time.sleep(0.01)   # the daemon is restarting: ask again soon

    def smtp(self):
        seq = 0
        while not self.stop_ev.is_set():
            subject = "mail %d" % seq
            uid = smtp_send(self.d.smtp_port, subject)
            if uid is not None:
                with self.lock:
                    self.mails[subject] = uid
                seq += 1
            else:
                time.sleep(0.01)

    def ws(self):
        async def run():
            last = 0
            while not self.stop_ev.is_set():
                try:
                    async with websockets.connect("ws://127.0.0.1:%d/ws?token=%s&since=%d"
                                                  % (self.d.port, self.token, last),
                                                  close_timeout=1) as c:
                        while not self.stop_ev.is_set():
                            try:
                                f = json.loads(await asyncio.wait_for(c.recv(), 0.5))
                            except asyncio.TimeoutError:
                                continue
                            if f["type"] == "notification":
                                self.ws_seen.append(f["data"]["id"])
                                last = max(last, f["data"]["id"])
                except (OSError, websockets.exceptions.WebSocketException):
                    await asyncio.sleep(0.01)
        asyncio.run(run())


def faults_conf(tmp):
    return conf(tmp, "[smtp]\nmail_max = 0\nmail_max_bytes = 0\n[mailer]\nretry_base = 100ms\n")


def sigkill(args):
    tmp = tempfile.mkdtemp(prefix="nd-faults-")
    d = Daemon(tmp, http=True, smtp=True, args=faults_conf(tmp))
    d.start()
    load = Load(d)
    users, acked, mails, ws_seen = load.users, load.acked, load.mails, load.ws_seen
    load.start()
    t0 = time.monotonic()
    kills = 0
    for i in range(args.cycles):
        time.sleep(random.uniform(0.2, 1.0))
        d.stop("KILL")
        kills += 1
        d.start()
    # A last stretch under load, then quiet: the outbox drains.
    time.sleep(1)
    load.stop()
    took = time.monotonic() - t0
    emailed = {t for t, (u, _) in acked.items() if u in users[:4]}
    deadline = time.monotonic() + 120
    while True:
        subjects = {m["Subject"] for m in all_mail(d)}
        if emailed <= subjects or time.monotonic() > deadline:
            break
        time.sleep(0.5)

    # What is there.
    found = {}
    for u in users:
        for n in all_notifications(d, u):
            found.setdefault(n["title"], []).append((u, n["id"]))
    missing = [t for t in acked if t not in found]
    doubled = [t for t, v in found.items() if len(v) > 1]
    wrong = [t for t in acked if t in found and found[t][0] != acked[t]]
    captured = all_mail(d)
    by_subject = {}
    for m in captured:
        by_subject.setdefault(m["Subject"], []).append(m)
    by_id = {}
    for m in captured:
        by_id[m["ID"]] = by_id.get(m["ID"], 0) + 1
    mail_missing = [s for s, uid in mails.items() if uid not in by_id]
    mail_doubled = [s for s, uid in mails.items() if by_id.get(uid, 0) > 1]
    # Stored, but the 250 never reached the client (killed between the two), which
    # sent it again: SMTP has no idempotency; the acknowledged copy is the one counted.
    unacked = sum(len(by_subject.get(s, [])) - 1 for s in mails)
    email_missing = [t for t in emailed if t not in by_subject]
    two_ids = [t for t in emailed if len({m["MessageID"] for m in by_subject.get(t, [])}) > 1]
    resent = sum(len(by_subject.get(t, [])) - 1 for t in emailed if t in by_subject)
    u0 = {i for t, (u, i) in acked.items() if u == "u0"}
    ws_missing = sorted(u0 - set(ws_seen))
    ws_dup = len(ws_seen) - len(set(ws_seen))
    assert d.stop() == 0
    con = sqlite3.connect(os.path.join(d.data_dir, "notifyd.db"))
    integrity = con.execute("PRAGMA integrity_check").fetchone()[0]
    con.close()
    shutil.rmtree(tmp, ignore_errors=True)

    rows = [
        ("SIGKILLs under load", kills, "%.0f s in all" % took),
        ("notifications acknowledged / found once", "%d / %d" % (len(acked), len(acked) - len(missing) - len(wrong)),
         "missing %d, doubled %d, wrong user %d" % (len(missing), len(doubled), len(wrong))),
        ("mail acknowledged (250) / found once", "%d / %d" % (len(mails), len(mails) - len(mail_missing) - len(mail_doubled)),
         "missing %d, doubled %d; stored unacknowledged, then sent again: %d"
         % (len(mail_missing), len(mail_doubled), unacked)),
        ("emails of acknowledged notifications / arrived", "%d / %d" % (len(emailed), len(emailed) - len(email_missing)),
         "sent again after a kill: %d, under two Message-IDs: %d" % (resent, len(two_ids))),
        ("u0's notifications seen on its WebSocket", "%d / %d" % (len(u0) - len(ws_missing), len(u0)),
         "frames seen twice (replayed after reconnects): %d" % ws_dup),
        ("PRAGMA integrity_check", integrity, ""),
    ]
    print("| fault: SIGKILL loop | figure | detail |\n|---|---|---|")
    for r in rows:
        print("| %s | %s | %s |" % r)
    ok = not (missing or doubled or wrong or mail_missing or mail_doubled or email_missing or two_ids
              or ws_missing) and integrity == "ok"
    print("result:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


def soak(args):
    """Mixed load for args.seconds: RSS after warm-up against RSS at the end."""
    tmp = tempfile.mkdtemp(prefix="nd-soak-")
    d = Daemon(tmp, http=True, smtp=True, args=conf(
        tmp, "[smtp]\nmail_max = 2000\n[mailer]\nretry_base = 100ms\n"))
    d.start()
    load = Load(d)
    try:
        load.start()
        warm = max(10.0, args.seconds / 10)
        time.sleep(warm)    # a soak is measured over time: these sleeps are the clock
        samples = [(warm, rss_kib(d.proc.pid))]
        t0 = time.monotonic()
        while time.monotonic() - t0 < args.seconds - warm:
            time.sleep(min(10, args.seconds / 20))
            samples.append((warm + time.monotonic() - t0, rss_kib(d.proc.pid)))
    finally:
        # Interrupted or not, nothing is left running.
        load.stop()
        rc = d.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    first, last = samples[0][1], samples[-1][1]
    growth = (last - first) / first if first else 0
    print("| soak (%s) | figure |\n|---|---|" % os.path.basename(d.notifyd))
    print("| load | %.0f s: %d notifications, %d mails acknowledged |" % (
        args.seconds, len(load.acked), len(load.mails)))
    print("| RSS after warm-up (%.0f s) / at the end | %d KiB / %d KiB (%+.1f%%) |" % (
        warm, first, last, 100 * growth))
    print("| RSS samples (s: KiB) | %s |" % ", ".join("%.0f: %d" % x for x in samples))
    print("| exit status at SIGTERM (leak checkers make it non-zero) | %d |" % rc)
    ok = abs(growth) <= 0.10 and rc == 0
    print("result:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


def relay(args):
    tmp = tempfile.mkdtemp(prefix="nd-faults-")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()   # nothing listens there: the relay is down
    d = Daemon(tmp, args=conf(tmp, "[mailer]\nrelay = smtp://127.0.0.1:%d\nstarttls = off\n"
                                   "retry_base = 200ms\ntimeout = 2s\n" % port))
    d.start()
    d.ok("user", "set", "a", "--email", "a@example.com")
    ids = [d.ok("send", "--user", "a", "--type", "message", "--title", "down %d" % i)["id"]
           for i in range(20)]
    d.wait_log("connect", 10)   # the first attempts fail against the closed port
    time.sleep(1)   # and are retried with backoff meanwhile
    failed_attempts = sum(d.ok("show", i, "--deliveries")["deliveries"][-1]["attempts"] for i in ids)
    r = FakeRelay(port=port)   # up
    r.wait(lambda x: len(x.messages) >= 20, 60)
    down_ok = len(r.messages)
    r.script = ["hang"]        # takes DATA, then never answers
    hid = d.ok("send", "--user", "a", "--type", "message", "--title", "hang")["id"]
    r.wait(lambda x: len(x.messages) >= 22, 60)   # the hung one, then its retry
    d.wait_log("email sent", 10)
    deadline = time.monotonic() + 30
    while d.ok("show", hid, "--deliveries")["deliveries"][-1]["status"] != "sent":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    st = d.ok("show", hid, "--deliveries")["deliveries"][-1]
    got = [m for m, acked in r.messages]
    mids = [re.search(rb"Message-ID: <([^>]+)>", m, re.I).group(1) for m in got]
    hung = [re.search(rb"Message-ID: <([^>]+)>", m, re.I).group(1) for m, acked in r.messages
            if not acked]
    d.stop()
    r.close()
    shutil.rmtree(tmp, ignore_errors=True)
    print("| fault: relay | figure |\n|---|---|")
    print("| emails sent while the relay was down / delivered once it was up | 20 / %d |" % down_ok)
    print("| failed attempts meanwhile (retried with backoff, no send slowed) | %d |" % failed_attempts)
    print("| relay took DATA and hung: that email after | %s, %d attempts, "
          "the retry under the same Message-ID: %s |" % (st["status"], st["attempts"],
                                                         mids.count(hung[0]) == 2 if hung else "-"))
    print("| emails the relay got / distinct Message-IDs | %d / %d |" % (len(got), len(set(mids))))
    ok = down_ok == 20 and st["status"] == "sent" and len(set(mids)) == 21 and len(hung) == 1
    print("result:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


def disk(args):
    """A 24 MiB file system filled under load (needs mount: root)."""
    import subprocess
    tmp = tempfile.mkdtemp(prefix="nd-faults-")
    small = os.path.join(tmp, "small")
    os.mkdir(small)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", small],
                       capture_output=True, text=True)
    if p.returncode != 0:
        print("disk: cannot mount a small file system here:", p.stderr.strip())
        return 1
    try:
        d = Daemon(tmp, http=True, smtp=True, data_dir=os.path.join(small, "data"),
                   args=conf(tmp, "[smtp]\ndisk_reserve = 6M\nmail_max_bytes = 0\n"))
        d.start()
        key = d.ok("key", "create", "k")["key"]
        ballast = os.path.join(small, "ballast")
        with open(ballast, "wb") as f:
            f.write(b"\0" * (4 << 20))
        s = requests.Session()
        s.headers["Authorization"] = "Bearer " + key
        acked, mail, first452, body = 0, {}, None, "x" * 60000
        while True:
            r = s.post(d.url + "/api/v1/notifications", timeout=30,
                       json={"user": "u", "type": "m", "body": body})
            if r.status_code != 201:
                refusal = (r.status_code, r.json()["error"]["code"], r.headers.get("Retry-After"))
                break
            acked += 1
            if acked % 10 == 0:
                c = smtp_message(d.smtp_port, (b"m" * 76 + b"\r\n") * 650)
                mail[c] = mail.get(c, 0) + 1
                if c == 452 and first452 is None:
                    first452 = acked
        up = requests.get(d.url + "/healthz").status_code
        t0 = time.monotonic()
        os.remove(ballast)
        r = s.post(d.url + "/api/v1/notifications", json={"user": "u", "type": "m"})
        recovered = (r.status_code, time.monotonic() - t0)
        count = len(all_notifications(d, "u"))
        d.stop()
        con = sqlite3.connect(os.path.join(small, "data", "notifyd.db"))
        integrity = con.execute("PRAGMA integrity_check").fetchone()[0]
        con.close()
    finally:
        subprocess.run(["umount", "-l", small], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    print("| fault: disk full (24 MiB tmpfs, disk_reserve 6M) | figure |\n|---|---|")
    print("| 60 KB notifications acknowledged before the disk was full | %d |" % acked)
    print("| mail meanwhile, by reply | %s (the first 452 after notification %s) |" % (
        ", ".join("%d x %d" % (n, c) for c, n in sorted(mail.items())), first452))
    print("| the write that found the disk full | %d %s, Retry-After %s |" % refusal)
    print("| /healthz while full | %d |" % up)
    print("| after a 4 MiB file was deleted: the next write | %d, %.0f ms later |" % (
        recovered[0], recovered[1] * 1000))
    print("| notifications found / acknowledged | %d / %d |" % (count, acked + 1))
    print("| PRAGMA integrity_check | %s |" % integrity)
    ok = refusal[:2] == (503, "storage_full") and recovered[0] == 201 and count == acked + 1 \
        and integrity == "ok" and 452 in mail
    print("result:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


def locked(args):
    tmp = tempfile.mkdtemp(prefix="nd-faults-")
    d = Daemon(tmp, http=True, env={"NOTIFYD_STORE_BUSY_TIMEOUT": "1s"})
    d.start()
    key = d.ok("key", "create", "k")["key"]
    s = requests.Session()
    s.headers["Authorization"] = "Bearer " + key
    acked, codes = [], {}
    con = sqlite3.connect(os.path.join(d.data_dir, "notifyd.db"), timeout=10, isolation_level=None)
    for phase in ("before", "locked", "after"):
        if phase == "locked":
            con.execute("BEGIN EXCLUSIVE")
        for i in range(5 if phase == "locked" else 50):
            r = s.post(d.url + "/api/v1/notifications", json={"user": "a", "type": "m",
                                                               "title": "%s %d" % (phase, i)})
            codes.setdefault(phase, {}).setdefault(r.status_code, 0)
            codes[phase][r.status_code] += 1
            if r.status_code == 201:
                acked.append(r.json()["id"])
            elif phase == "locked":
                assert r.json()["error"]["code"] == "busy" and r.headers["Retry-After"] == "5"
        if phase == "locked":
            con.execute("ROLLBACK")
    con.close()
    found = {n["id"] for n in all_notifications(d, "a")}
    d.stop()
    shutil.rmtree(tmp, ignore_errors=True)
    print("| fault: database locked by another process | statuses |\n|---|---|")
    for phase in ("before", "locked", "after"):
        print("| %s | %s |" % (phase, ", ".join("%d x %d" % (n, c) for c, n in sorted(codes[phase].items()))))
    print("| acknowledged / found | %d / %d |" % (len(acked), len(found & set(acked))))
    ok = codes["locked"] == {503: 5} and found == set(acked)
    print("result:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    k = sub.add_parser("sigkill")
    k.add_argument("--cycles", type=int, default=50)
    sub.add_parser("relay")
    sub.add_parser("locked")
    sub.add_parser("disk")
    k = sub.add_parser("soak")
    k.add_argument("--seconds", type=float, default=600)
    a = p.parse_args()
    return {"sigkill": sigkill, "relay": relay, "locked": locked, "soak": soak,
            "disk": disk}[a.what](a)


if __name__ == "__main__":
    sys.exit(main())
