#!/usr/bin/python3
"""Several notifyd nodes on one PostgreSQL (issue 21), in one run against
one notifyd on SQLite (store.sync=full; PostgreSQL with fsync on and its
default synchronous_commit), all on this machine (bench/cluster.sh):

- POST /api/v1/notifications with wrk, CONNS connections in all: SQLite,
  then 1, 2 and 3 PostgreSQL nodes (one wrk per node, CONNS/n each, summed);
  GET /healthz of one node as the ceiling;
- send->receive: a WebSocket on node B, notifications sent RATE a second
  for SECS through 8 connections to the control socket of node A (across
  nodes) and then of B itself (within one node), each carrying its send
  time; p50/p99.
"""
import argparse
import asyncio
import json
import os
import shutil
import socket
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


SENDERS = 8


def latency(sender, receiver, token, rate, secs):
    """p50, p99 ms and how many of the sends arrived, from sender's control socket to
    receiver's WebSocket."""
    got = []
    ready = threading.Event()

    async def listen(total):
        url = "ws://127.0.0.1:%d/ws?token=%s" % (receiver.port, token)
        async with websockets.connect(url, max_queue=None) as ws:
            json.loads(await ws.recv())
            ready.set()
            deadline = time.monotonic() + secs + 10
            while len(got) < total and time.monotonic() < deadline:
                try:
                    f = json.loads(await asyncio.wait_for(ws.recv(), 1))
                except asyncio.TimeoutError:
                    continue
                if f["type"] == "notification":
                    got.append(time.monotonic_ns() - int(f["data"]["title"]))
    total = int(rate * secs)
    t = threading.Thread(target=lambda: asyncio.run(listen(total)))
    t.start()
    assert ready.wait(10)
    # Spread over several control connections, as many senders would be:
    # one connection is answered in order, a round trip each, which alone
    # caps it below 1,000/s on PostgreSQL whatever the server could take.
    conns, sent, acked = [], [0] * total, [0] * total
    for k in range(SENDERS):
        s = socket.socket(socket.AF_UNIX)
        s.connect(receiver.socket if sender is None else sender.socket)
        f = s.makefile("rb")
        f.readline()
        n = len(range(k, total, SENDERS))

        def answers(f=f, n=n):
            for _ in range(n):
                i = json.loads(f.readline())["id"]
                acked[i] = time.monotonic_ns() - sent[i]
        a = threading.Thread(target=answers)
        a.start()
        conns.append((s, f, a))
    start = time.monotonic()
    for i in range(total):
        due = start + i / rate
        while time.monotonic() < due:
            time.sleep(max(0, due - time.monotonic()))
        sent[i] = time.monotonic_ns()
        conns[i % SENDERS][0].sendall(
            b'{"id":%d,"cmd":"send","args":{"user":"lat","type":"m","title":"%d"}}\n'
            % (i, sent[i]))
    for s, f, a in conns:
        a.join()
    t.join()
    for s, f, a in conns:
        f.close()
        s.close()
    got.sort()
    ms = [g / 1e6 for g in got] or [float("nan")]
    ack = sorted(x / 1e6 for x in acked)
    return (ms[len(ms) // 2], ms[int(len(ms) * 0.99)], ack[len(ack) // 2],
            ack[int(len(ack) * 0.99)], len(got), total)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--dur", default="10s")
    p.add_argument("--conns", type=int, default=32)
    p.add_argument("--rate", type=int, default=1000)
    p.add_argument("--secs", type=float, default=5)
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
        for n in (1, 2, 3):
            if a.latency_only and n != 2:
                continue
            url = server.createdb("n%d" % n)
            nodes = [start("pg%d_%d" % (n, i), url) for i in range(n)]
            k = nodes[0].ok("key", "create", "bench")["key"]
            r = (0, 0, 0) if a.latency_only else creates(nodes, post_lua(tmp, k), a.dur, a.conns)
            rows.append(("create, PostgreSQL, %d node%s" % (n, "s" if n > 1 else ""), *r))
            if n == 2:
                tok = nodes[0].ok("token", "lat")["token"]
                across = latency(nodes[0], nodes[1], tok, a.rate, a.secs)
                within = latency(None, nodes[1], tok, a.rate, a.secs)
            for d in nodes:
                d.stop()
        lite.stop()
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
    print("| across nodes (A's control socket, B's WebSocket) | %.2f | %.2f | %.2f | %.2f "
          "| %d of %d |" % across)
    print("| within one node (B, B) | %.2f | %.2f | %.2f | %.2f | %d of %d |" % within)


def _get_lua(tmp):
    path = os.path.join(tmp, "get.lua")
    with open(path, "w") as f:
        f.write(LUA)
    return path


if __name__ == "__main__":
    main()
