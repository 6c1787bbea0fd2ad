#!/usr/bin/python3
"""A topic send's write, on each store (bench/topic.sh): one notifyd on
SQLite (store.sync=full) and one on a private PostgreSQL (fsync on), each
with a topic of MEMBERS users and no client connected; SENDS sends to the
topic over HTTP, each timed from the request to the whole 201 read. What
it measures is the send's write and answer, not the fan-out (bench/ws.sh).

    /usr/bin/python3 bench/topic.py [--members 10000] [--sends 5] [--sqlite-only]

NOTIFYD_BIN names the notifyd to run (default bin/notifyd), so that two
builds can be alternated.
"""
import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
sys.path.insert(0, HERE)
import pgserver  # noqa: E402
from ws import Ctl, free_port  # noqa: E402

NOTIFYD = os.environ.get("NOTIFYD_BIN", os.path.join(HERE, "..", "bin", "notifyd"))


def run(store, url, members, sends):
    tmp = tempfile.mkdtemp(prefix="topic.")
    port, sock = free_port(), os.path.join(tmp, "ctl.sock")
    with open(os.path.join(tmp, "n.conf"), "w") as f:
        f.write("[server]\nlog_level = warn\n[store]\nsync = full\n%s" %
                ("url = %s\n" % url if url else ""))
    d = subprocess.Popen([NOTIFYD, "--config", os.path.join(tmp, "n.conf"), "--data-dir",
                          os.path.join(tmp, "data"), "--socket", sock, "--http",
                          "127.0.0.1:%d" % port, "--smtp", "off"])
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                ctl = Ctl(sock)
                break
            except OSError:
                if d.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("notifyd (%s) did not start" % store)
                time.sleep(0.05)
        fill, fifth = [], max(1, members // 5)
        for lo in range(0, members, fifth):
            hi = min(members, lo + fifth)
            t = time.monotonic()
            ctl.many([("topic.add", {"topic": "everyone", "user": "u%d" % i})
                      for i in range(lo, hi)])
            fill.append((hi - lo) / (time.monotonic() - t))
        key = ctl.many([("key.create", {"name": "bench"})])[0]["key"]
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        times = []
        for k in range(sends):
            t = time.monotonic()
            c.request("POST", "/api/v1/notifications",
                      json.dumps({"topic": "everyone", "type": "m", "title": "to all %d" % k}),
                      {"Authorization": "Bearer " + key, "Content-Type": "application/json"})
            r = c.getresponse()
            body = r.read()
            times.append((time.monotonic() - t) * 1000)
            if r.status != 201 or json.loads(body)["count"] != members:
                raise SystemExit("%s: send %d answered %d" % (store, k, r.status))
        return times, fill
    finally:
        d.terminate()
        d.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--members", type=int, default=10000)
    ap.add_argument("--sends", type=int, default=5)
    ap.add_argument("--sqlite-only", action="store_true")
    a = ap.parse_args()
    why = "--sqlite-only" if a.sqlite_only else pgserver.available()
    rows = [("SQLite", run("sqlite", None, a.members, a.sends))]
    if why is None:
        pg = pgserver.Server(fsync=True)
        try:
            rows.append(("PostgreSQL", run("postgresql", pg.createdb("topic"), a.members,
                                           a.sends)))
        finally:
            pg.stop()
    else:
        print("PostgreSQL skipped: %s" % why)
    print("Command: `/usr/bin/python3 bench/topic.py --members %d --sends %d%s` (no client "
          "connected; SQLite store.sync=full, PostgreSQL fsync on)\n" %
          (a.members, a.sends, " --sqlite-only" if a.sqlite_only else ""))
    print("| store | send to the whole 201, each send in turn (ms) | median | ratio to SQLite |")
    print("|---|---|---|---|")
    base = sorted(rows[0][1][0])[len(rows[0][1][0]) // 2]
    for name, (times, _) in rows:
        med = sorted(times)[len(times) // 2]
        print("| %s | %s | %.0f | %.2f |" % (name, " / ".join("%.0f" % t for t in times), med,
                                            med / base))
    print("\n| store | filling the topic: adds/s in each fifth (one control connection, "
          "pipelined) | last fifth / first |")
    print("|---|---|---|")
    for name, (_, fill) in rows:
        print("| %s | %s | %.2f |" % (name, " / ".join("%.0f" % f for f in fill),
                                     fill[-1] / fill[0]))


if __name__ == "__main__":
    main()
