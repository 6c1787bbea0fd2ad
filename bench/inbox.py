#!/usr/bin/python3
"""Inbox reads and writes against inbox size (issue 19), each as a ratio to
GET /healthz in the same run (bench/inbox.sh).

A database of 1M notifications for 1,000 users, plus users holding 10,
10,000, 100,000 and 1,000,000 unread, seeded straight into SQLite with the
counters notifyd keeps. Then, with wrk (32 connections, keep-alive):
- GET .../unread_count for 10, 10,000 and 1,000,000 unread: O(1) means the
  same rate and p99 for all three;
- a page of 50 of the user with 100,000 notifications: the inbox, its
  unread, and the 20th page down;
- POST /api/v1/notifications to a user with a WebSocket open and nothing
  unread, then to one with a WebSocket open and 100,000 unread;
and mark all read of 100,000 unread with two devices connected: how long
it takes, and what each device receives.
"""
import argparse
import asyncio
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

import requests
import websockets

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
from conftest import Daemon  # noqa: E402

SIZES = {"n10": 10, "n10k": 10_000, "n100k": 100_000, "n1m": 1_000_000, "r100k": 100_000,
         "c100k": 100_000}


def seed(db, base):
    """base notifications over 1,000 users, and each SIZES user's, all unread."""
    c = sqlite3.connect(db)
    c.execute("PRAGMA journal_mode = WAL")
    with c:
        c.execute("""WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 999)
                     INSERT INTO users (id, created_at) SELECT 'u' || i, 0 FROM n""")
        c.execute("""WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
                     INSERT INTO notifications (user_id, type, title, body, data, created_at)
                     SELECT 'u' || (i % 1000), 'message', 'Seeded notification ' || i,
                     'Body text of a seeded notification, about as long as a real one.',
                     '{"order":"A-' || i || '"}', 1700000000000 + i FROM n""", (base - 1,))
        for user, size in SIZES.items():
            c.execute("INSERT INTO users (id, created_at) VALUES (?, 0)", (user,))
            c.execute("""WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
                         INSERT INTO notifications (user_id, type, title, body, data, created_at)
                         SELECT ?, 'message', 'Seeded notification ' || i,
                         'Body text of a seeded notification, about as long as a real one.',
                         '{"order":"A-' || i || '"}', 1700000000000 + i FROM n""", (size - 1, user))
        c.execute("""UPDATE users SET unread = c.n FROM (SELECT user_id, count(*) AS n
                     FROM notifications GROUP BY user_id) AS c WHERE c.user_id = users.id""")
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    c.close()


LUA = """
done = function(summary, latency, requests)
  local secs = summary.duration / 1e6
  io.write(string.format("RESULT %.1f %.3f %.3f %d %d\\n",
    summary.requests / secs, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout))
end
"""


def wrk(url, script, dur, conns):
    out = subprocess.run(["wrk", "-t2", "-c%d" % conns, "-d" + dur, "-s", script, url],
                         capture_output=True, text=True).stdout
    m = re.search(r"RESULT (\S+) (\S+) (\S+) (\d+) (\d+)", out)
    assert m, out
    return float(m.group(1)), float(m.group(2)), float(m.group(3)), int(m.group(4)), int(m.group(5))


class Device:
    """A WebSocket of user, reading every frame in a thread."""

    def __init__(self, url, token):
        self.frames = []
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.t = threading.Thread(target=lambda: asyncio.run(self.run(url, token)), daemon=True)
        self.t.start()
        assert self.ready.wait(30)

    async def run(self, url, token):
        async with websockets.connect(url.replace("http", "ws") + "/ws?token=" + token,
                                      max_queue=None) as ws:
            self.ready.set()
            while not self.stop.is_set():
                try:
                    self.frames.append(json.loads(await asyncio.wait_for(ws.recv(), 0.2)))
                except asyncio.TimeoutError:
                    pass

    def close(self):
        self.stop.set()
        self.t.join()


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--base", type=int, default=1_000_000)
    p.add_argument("--dur", default="10s")
    p.add_argument("--conns", type=int, default=32)
    p.add_argument("--rounds", type=int, default=1,
                   help="ABBA rounds of creates to a connected recipient (two runs each per round)")
    a = p.parse_args()
    tmp = tempfile.mkdtemp(prefix="nd-inbox-")
    conf = os.path.join(tmp, "d.conf")
    with open(conf, "w") as f:
        f.write("[store]\nsync = full\n[http]\nmax_per_address = 0\nrate_limit = 0\n")
    d = Daemon(tmp, http=True, args=["--config", conf])
    d.start()
    d.stop()
    t0 = time.monotonic()
    seed(os.path.join(d.data_dir, "notifyd.db"), a.base)
    seeded = time.monotonic() - t0
    d.start()
    key = d.ok("key", "create", "bench")["key"]
    total = d.ok("status")["counts"]["notifications"]
    auth = 'wrk.headers["Authorization"] = "Bearer %s"\n' % key
    get_lua = os.path.join(tmp, "get.lua")
    with open(get_lua, "w") as f:
        f.write(LUA + auth)

    def post_lua(user):
        path = os.path.join(tmp, "post-%s.lua" % user)
        with open(path, "w") as f:
            f.write(LUA + auth + 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                    'wrk.body = \'{"user":"%s","type":"order_shipped","title":"Your order shipped",'
                    '"body":"Order A-17 is on its way","data":{"order":"A-17"}}\'\n' % user)
        return path

    rows = []

    def run(label, path, script=get_lua):
        r = wrk(d.url + path, script, a.dur, a.conns)
        rows.append((label, r))
        return r

    h = run("GET /healthz", "/healthz")
    for u in ("n10", "n10k", "n1m"):
        run("unread count, %s unread" % format(SIZES[u], ","), "/api/v1/users/%s/unread_count" % u)
    run("page of 50, 100,000 in the inbox", "/api/v1/users/n100k/notifications?limit=50")
    run("page of 50, unread only", "/api/v1/users/n100k/notifications?limit=50&unread=true")
    first = requests.get(d.url + "/api/v1/users/n100k/notifications?limit=50",
                         headers={"Authorization": "Bearer " + key}).json()
    deep = first["notifications"][-1]["id"] - 950
    run("page of 50, 20 pages down", "/api/v1/users/n100k/notifications?limit=50&before=%d" % deep)

    # Creates to a connected recipient: nothing unread, then 100,000 unread,
    # then the other way round, so that what drifts over the runs (the WAL
    # growing between checkpoints) falls on both alike.
    fresh, full = [], []

    def creates(user, label, out):
        dev = Device(d.url, d.ok("token", user)["token"])
        out.append(run(label, "/api/v1/notifications", post_lua(user)))
        dev.close()
    for k in range(a.rounds):
        # A fresh user each time: one that still has nothing unread of its own.
        creates("fresh%da" % k, "create, recipient connected, nothing unread at the start (%d)"
                % (2 * k + 1), fresh)
        creates("c100k", "create, recipient connected, 100,000 or more unread (%d)" % (2 * k + 1), full)
        creates("c100k", "create, recipient connected, 100,000 or more unread (%d)" % (2 * k + 2), full)
        creates("fresh%db" % k, "create, recipient connected, nothing unread at the start (%d)"
                % (2 * k + 2), fresh)

    # Mark all read of 100,000 unread, two devices connected.
    tok = d.ok("token", "r100k")["token"]
    devs = [Device(d.url, tok), Device(d.url, tok)]
    t0 = time.monotonic()
    r = requests.post(d.url + "/api/v1/users/r100k/notifications/read_all",
                      headers={"Authorization": "Bearer " + key}, timeout=60)
    took = (time.monotonic() - t0) * 1000
    assert r.status_code == 200 and r.json()["marked"] == 100_000, r.text
    deadline = time.monotonic() + 10
    while any(not any(f["type"] == "read_all" for f in x.frames) for x in devs):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # The watermark's rows written in the background (sql/013): until when.
    import sqlite3
    db = sqlite3.connect(os.path.join(d.data_dir, "notifyd.db"))
    try:
        while db.execute("SELECT read_before FROM users WHERE id = 'r100k'").fetchone()[0]:
            assert time.monotonic() - t0 < 60
            time.sleep(0.01)
    except sqlite3.OperationalError:
        pass    # a notifyd from before the watermark

    settled = (time.monotonic() - t0) * 1000
    db.close()
    time.sleep(0.5)     # anything more they would get
    got = [sorted({f["type"] for f in x.frames if f["type"] != "connected"}) for x in devs]
    counts = [sum(f["type"] != "connected" for f in x.frames) for x in devs]
    for x in devs:
        x.close()
    check = d.ok("check")
    d.stop()
    shutil.rmtree(tmp, ignore_errors=True)

    print("Machine: %d cores, %s; database of %s notifications (seeded in %.0f s), "
          "store.sync=full; wrk -t2 -c%d -d%s." % (
              os.cpu_count(), open("/proc/cpuinfo").read().split("model name")[1].split(":")[1]
              .split("\n")[0].strip(), format(total, ","), seeded, a.conns, a.dur))
    print()
    print("| request | requests/s | ratio to /healthz | p50 ms | p99 ms | errors |")
    print("|---|---|---|---|---|---|")
    for label, (rps, p50, p99, n, bad) in rows:
        print("| %s | %.0f | %.2f | %.2f | %.2f | %d |" % (label, rps, rps / h[0], p50, p99, bad))
    print()
    print("| mark all read, 100,000 unread, two devices connected | figure |")
    print("|---|---|")
    print("| time to the answer | %.0f ms |" % took)
    print("| rows settled in the background, from the request | %.0f ms |" % settled)
    print("| frames each device received | %s: %s |" % (counts, got))
    print("| creates to a connected recipient, 100,000 unread / nothing unread (mean of %d "
          "runs each, ABBA) | %.2f |" % (len(full), sum(b[0] for b in full) / sum(a[0] for a in fresh)))
    spread = [b[0] / a[0] for a, b in zip(fresh[::2], fresh[1::2])]
    print("| the same, nothing unread run against nothing unread, each round (the noise) | %s |"
          % " / ".join("%.2f" % x for x in spread))
    print("| notifyctl check afterwards | %s |" % ("ok" if check["ok"] else check))


if __name__ == "__main__":
    main()
