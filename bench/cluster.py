#!/usr/bin/python3
"""Several notifyd nodes on one PostgreSQL (issue 21), in one run against
one notifyd on SQLite (store.sync=full; PostgreSQL with fsync on and its
default synchronous_commit), all on this machine (bench/cluster.sh):

- POST /api/v1/notifications with wrk, CONNS connections in all: SQLite,
  then 1, 2 and 3 PostgreSQL nodes (one wrk per node, CONNS/n each, summed);
  GET /healthz of one node as the ceiling;
- send->receive: a WebSocket on node B (bin/ws_client), notifications
  POSTed RATE a second for SECS by bin/post_client (8 keep-alive
  connections, paced) to node A (across nodes) and then to B itself
  (within one node), each carrying its send time; p50/p99 of arrival and
  of the POST's answer. On two fresh nodes and a database of their own,
  before the create runs.
"""
import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import websockets

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
sys.path.insert(0, HERE)
import pgserver  # noqa: E402
from conftest import Daemon  # noqa: E402
from inbox import LUA, wrk  # noqa: E402


def post_lua(tmp, key, users=1000):
    path = os.path.join(tmp, "post.lua")
    with open(path, "w") as f:
        f.write(LUA + 'wrk.headers["Authorization"] = "Bearer %s"\n' % key +
                'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                'local n = 0\nrequest = function()\n  n = n + 1\n'
                '  return wrk.format(nil, nil, nil, string.format(\'{"user":"u%d",'
                '"type":"order_shipped","title":"Your order shipped","data":{"order":"A-%d"}}\','
                ' n % ' + str(users) + ', n))\nend\n')
    return path


def creates(nodes, script, dur, conns):
    """wrk against every node at once, conns shared out: summed rate, worst p99."""
    results = [None] * len(nodes)

    def one(i):
        results[i] = wrk(nodes[i].url + "/api/v1/notifications", script, dur,
                         max(1, conns // len(nodes)))
    ts = [threading.Thread(target=one, args=(i,)) for i in range(len(nodes))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(r[0] for r in results), max(r[2] for r in results), sum(r[4] for r in results)


ROOT = os.path.join(HERE, "..")
POST_CLIENT = os.path.join(ROOT, "bin", "post_client")
WS_CLIENT = os.path.join(ROOT, "bin", "ws_client")


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))] if xs else float("nan")


def latency(sender, receiver, key, token, rate, secs):
    """From POSTs to sender's REST API (bin/post_client: paced, 8 keep-alive
    connections, in C) to user lat's WebSocket on receiver (bin/ws_client):
    p50 and p99 of arrival and of the POST's answer, ms; how many arrived."""
    ws = subprocess.Popen([WS_CLIENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        ws.stdin.write(json.dumps({"url": "ws://127.0.0.1:%d/ws" % receiver.port,
                                   "conns": [["lat", token]]}) + "\n")
        ws.stdin.flush()
        line = ws.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError("ws_client: %s" % line)
        got, arrived = {}, threading.Condition()

        def read():
            for line in ws.stdout:
                parts = line.split()
                with arrived:
                    got[int(parts[1])] = float(parts[2])
                    arrived.notify_all()
        threading.Thread(target=read, daemon=True).start()
        out = subprocess.run([POST_CLIENT], input=json.dumps({
            "host": "127.0.0.1", "port": sender.port, "key": key, "users": ["lat"], "rate": rate,
            "secs": secs, "conns": 8}), capture_output=True, text=True).stdout
        ids, rtt = [], []
        for line in out.splitlines():
            parts = line.split()
            if parts[0] == "sent":
                ids.append(int(parts[1]))
                rtt.append(float(parts[2]))
            elif parts[0] == "error":
                raise RuntimeError("post_client: " + line)
        deadline = time.monotonic() + 10
        with arrived:
            while not all(i in got for i in ids) and time.monotonic() < deadline:
                arrived.wait(0.5)
            lat = [got[i] for i in ids if i in got]
    finally:
        ws.terminate()
        ws.wait(10)
    return pct(lat, 0.5), pct(lat, 0.99), pct(rtt, 0.5), pct(rtt, 0.99), len(lat), len(ids)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--dur", default="10s")
    p.add_argument("--conns", type=int, default=32)
    p.add_argument("--rate", type=int, default=1000)
    p.add_argument("--secs", type=int, default=5)
    p.add_argument("--latency-only", action="store_true", help="skip the creates with wrk")
    a = p.parse_args()
    why = pgserver.available()
    if why:
        sys.exit("bench/cluster.py: " + why)
    tmp = tempfile.mkdtemp(prefix="nd-cluster-")
    server = pgserver.Server(fsync=True)
    conf = os.path.join(tmp, "d.conf")
    with open(conf, "w") as f:
        f.write("[store]\nsync = full\n[http]\nmax_per_address = 0\nrate_limit = 0\n")
    running = []

    def start(name, url=None):
        env = {"NOTIFYD_STORE_URL": url} if url else {}
        d = Daemon(tmp, http=True, args=["--config", conf], env=env,
                   data_dir=os.path.join(tmp, name), socket_path=os.path.join(tmp, name + ".sock"))
        d.start()
        running.append(d)
        return d

    rows = []
    try:
        lite = start("sqlite")
        key = lite.ok("key", "create", "bench")["key"]
        script = post_lua(tmp, key)
        h = wrk(lite.url + "/healthz", _get_lua(tmp), a.dur, a.conns)
        rows.append(("GET /healthz (one node)", h[0], h[2], 0))
        r = (1, 0, 0) if a.latency_only else creates([lite], script, a.dur, a.conns)
        rows.append(("create, SQLite, one notifyd", *r))
        base = r[0]
        lite.stop()
        # Latency on two nodes of a database of its own, before the creates
        # leave PostgreSQL checkpointing and vacuuming what wrk wrote.
        url = server.createdb("lat")
        nodes = [start("lat%d" % i, url) for i in range(2)]
        k = nodes[0].ok("key", "create", "bench")["key"]
        tok = nodes[0].ok("token", "lat")["token"]
        across = latency(nodes[0], nodes[1], k, tok, a.rate, a.secs)
        within = latency(nodes[1], nodes[1], k, tok, a.rate, a.secs)
        for d in nodes:
            d.stop()
        for n in () if a.latency_only else (1, 2, 3):
            url = server.createdb("n%d" % n)
            nodes = [start("pg%d_%d" % (n, i), url) for i in range(n)]
            k = nodes[0].ok("key", "create", "bench")["key"]
            r = creates(nodes, post_lua(tmp, k), a.dur, a.conns)
            rows.append(("create, PostgreSQL, %d node%s" % (n, "s" if n > 1 else ""), *r))
            for d in nodes:
                d.stop()
    finally:
        for d in running:
            d.stop()
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    print("Machine: %d cores, %s; PostgreSQL %s with fsync on; SQLite store.sync=full; "
          "wrk -t2, %d connections in all, %s." % (
              os.cpu_count(), open("/proc/cpuinfo").read().split("model name")[1].split(":")[1]
              .split("\n")[0].strip(), os.path.basename(os.path.dirname(server.bindir)),
              a.conns, a.dur))
    print()
    print("| run | requests/s | ratio to SQLite | p99 ms | errors |")
    print("|---|---|---|---|---|")
    for label, rps, p99, errors in rows:
        print("| %s | %.0f | %.2f | %.2f | %d |" % (label, rps, rps / base, p99, errors))
    print()
    print("| send->receive, %d/s for %gs | p50 ms | p99 ms | answered p50 ms | answered p99 ms "
          "| received |" % (a.rate, a.secs))
    print("|---|---|---|---|---|---|")
    print("| across nodes (POST to A, B's WebSocket) | %.2f | %.2f | %.2f | %.2f "
          "| %d of %d |" % across)
    print("| within one node (B, B) | %.2f | %.2f | %.2f | %.2f | %d of %d |" % within)


def _get_lua(tmp):
    path = os.path.join(tmp, "get.lua")
    with open(path, "w") as f:
        f.write(LUA)
    return path


if __name__ == "__main__":
    main()
