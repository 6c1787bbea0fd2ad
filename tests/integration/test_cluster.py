"""Several notifyd nodes on one PostgreSQL (issue 21): to every client they
behave as one notifyd. Three nodes per test, each with its own data
directory, socket and HTTP port, on one database of the private server."""
import asyncio
import json
import socket
import threading
import time

import pytest
import requests
import websockets

from conftest import WRAPPER, Client


def cluster(daemons, postgres, tmp, name, n=3, **kw):
    url = postgres.createdb(name)
    nodes = [daemons(data_dir="%s/n%d" % (tmp, i), socket_path="%s/n%d.sock" % (tmp, i),
                     env={"NOTIFYD_STORE_URL": url}, http=True, **kw) for i in range(n)]
    for d in nodes:
        d.start()
    return nodes


def ws_url(d, token, **q):
    q["token"] = token
    return "ws://127.0.0.1:%d/ws?" % d.port + "&".join("%s=%s" % kv for kv in q.items())


def burst(d, user, n, acked):
    """n sends to user through d's control socket, pipelined; their ids into acked."""
    c = Client(d.socket)
    c.send_raw(b"".join(b'{"id":%d,"cmd":"send","args":{"user":"%s","type":"m"}}\n'
                        % (j, user.encode()) for j in range(n)))
    acked.extend(c.read()["result"]["id"] for _ in range(n))
    c.close()


async def recv(ws, timeout=10):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def recv_type(ws, kind, timeout=10):
    """The next frame of type kind (an unread_count may come first)."""
    deadline = time.monotonic() + timeout
    while True:
        f = await recv(ws, max(0.1, deadline - time.monotonic()))
        if f["type"] == kind:
            return f


def test_a_send_on_one_node_reaches_clients_of_every_node(daemons, postgres, tmp):
    a, b, c = cluster(daemons, postgres, tmp, "fanout")
    # A token minted by A opens WebSockets on B and C: one secret for all.
    tok = a.ok("token", "ann")["token"]
    key = a.ok("key", "create", "k")["key"]
    api = requests.Session()
    api.headers["Authorization"] = "Bearer " + key

    async def go():
        async with websockets.connect(ws_url(b, tok)) as on_b, \
                websockets.connect(ws_url(c, tok)) as on_c, \
                websockets.connect(ws_url(a, tok)) as on_a:
            for ws in (on_a, on_b, on_c):
                assert (await recv(ws))["type"] == "connected"
            n = a.ok("send", "--user", "ann", "--type", "m", "--title", "from A")
            for ws in (on_a, on_b, on_c):
                f = await recv_type(ws, "notification")
                assert f["data"] == n
                assert await recv_type(ws, "unread_count") == {"type": "unread_count",
                                                              "data": {"count": 1}}
            # Read through C, with the key made on A: every device hears it.
            r = api.post(c.url + "/api/v1/users/ann/notifications/%d/read" % n["id"])
            assert r.status_code == 200, r.text
            for ws in (on_a, on_b, on_c):
                assert (await recv_type(ws, "read"))["data"] == {"ids": [n["id"]]}
                assert (await recv_type(ws, "unread_count"))["data"] == {"count": 0}
            # Marked read on B's WebSocket: A and C hear it.
            m = c.ok("send", "--user", "ann", "--type", "m", "--title", "from C")
            for ws in (on_a, on_b, on_c):
                assert (await recv_type(ws, "notification"))["data"]["id"] == m["id"]
            await on_b.send(json.dumps({"type": "mark_read", "ids": [m["id"]]}))
            for ws in (on_a, on_c):
                assert (await recv_type(ws, "read"))["data"] == {"ids": [m["id"]]}
            last = b.ok("send", "--user", "ann", "--type", "m", "--title", "from B")
            b.ok("read", "--user", "ann", "--all")
            for ws in (on_a, on_c):
                assert (await recv_type(ws, "read_all"))["data"] == {"up_to": last["id"]}
                assert (await recv_type(ws, "unread_count"))["data"] == {"count": 0}
    asyncio.run(go())
    # Every node heard all three (above); each counts the one it stored.
    for d in (a, b, c):
        assert "\nnotifyd_notifications_created_total 1\n" in requests.get(d.url + "/metrics").text

    # A key revoked on B stops working on A and C too, whose caches held it.
    assert api.get(a.url + "/api/v1/users/ann").status_code == 200
    assert api.get(c.url + "/api/v1/users/ann").status_code == 200
    b.ok("key", "revoke", "k")
    deadline = time.monotonic() + (30 if WRAPPER else 10)
    for d in (a, c):
        while api.get(d.url + "/api/v1/users/ann").status_code != 401:
            assert time.monotonic() < deadline, "the revoke never reached " + d.socket
            time.sleep(0.02)


def test_presence_and_disconnect_answer_for_every_node(daemons, postgres, tmp):
    a, b, c = cluster(daemons, postgres, tmp, "presence")
    tok = a.ok("token", "zed")["token"]

    async def go():
        async with websockets.connect(ws_url(b, tok)) as on_b, \
                websockets.connect(ws_url(c, tok)) as on_c, \
                websockets.connect(ws_url(c, tok)) as on_c2:
            for ws in (on_b, on_c, on_c2):
                assert (await recv(ws))["type"] == "connected"
            # Asked of A, which has none of them.
            assert a.ok("presence", "zed") == {"user": "zed", "connected": True,
                                               "connections": 3}
            conns = a.ok("connections")
            assert conns["users"] == {"zed": 3} and conns["total"] == 3, conns
            assert a.ok("disconnect", "zed", "--reason", "maintenance")["closed"] == 0
            for ws in (on_b, on_c, on_c2):
                f = await recv_type(ws, "error")
                assert f["data"] == {"code": "disconnected", "message": "maintenance"}
                with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
                    await recv(ws)
                assert closed.value.code == 4002
    asyncio.run(go())
    deadline = time.monotonic() + (30 if WRAPPER else 10)
    while a.ok("presence", "zed")["connections"] != 0:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert a.ok("connections")["users"] == {}


def test_a_dead_nodes_connections_stop_counting_after_the_ttl(daemons, postgres, tmp):
    """A node killed with its clients connected cannot take its presence
    rows back: they count until PRESENCE_TTL (30 s) passes without its
    beat. The rows are aged here instead of waiting: what is tested is that
    nothing else keeps them fresh and that presence reads past them."""
    a, b = cluster(daemons, postgres, tmp, "ttl", n=2)
    tok = a.ok("token", "kai")["token"]

    async def go():
        async with websockets.connect(ws_url(b, tok)) as ws:
            assert (await recv(ws))["type"] == "connected"
            assert a.ok("presence", "kai")["connections"] == 1
            assert b.stop("KILL") == -9
    asyncio.run(go())
    # Killed, its rows stay, and count while the TTL has not passed.
    assert a.ok("presence", "kai") == {"user": "kai", "connected": True, "connections": 1}
    postgres.psql("UPDATE presence SET seen_at = seen_at - 31000 WHERE user_id = 'kai'",
                  db="ttl")
    assert a.ok("presence", "kai") == {"user": "kai", "connected": False, "connections": 0}
    assert a.ok("connections")["users"] == {}


def test_replay_has_no_gap_while_sends_race_on_three_nodes(daemons, postgres, tmp):
    """Ids come from one sequence, and three nodes commit sends to one user
    at once: a client that saw id N must still get every id below N that
    commits later. Each create locks the user's row before it draws its id,
    so ids of one user are drawn in commit order."""
    nodes = cluster(daemons, postgres, tmp, "replay")
    tok = nodes[0].ok("token", "ray")["token"]
    first = [nodes[0].ok("send", "--user", "ray", "--type", "m")["id"] for _ in range(3)]
    stop = threading.Event()

    def hammer(d):
        # Bounded: each replay below is of everything since the first ids.
        c = Client(d.socket)
        i = 0
        while not stop.is_set() and i < 600:
            c.send_raw(b"".join(b'{"id":%d,"cmd":"send","args":{"user":"ray","type":"m"}}\n' % j
                                for j in range(i, i + 10)))
            for _ in range(10):
                assert "result" in c.read()
            i += 10
        c.close()
    threads = [threading.Thread(target=hammer, args=(d,)) for d in nodes]
    for t in threads:
        t.start()

    async def client(d, since):
        async with websockets.connect(ws_url(d, tok, since=since), max_size=None) as ws:
            assert (await recv(ws))["type"] == "connected"
            ids = []
            end = time.monotonic() + 0.5
            while time.monotonic() < end:
                try:
                    f = await recv(ws, 0.5)
                except asyncio.TimeoutError:
                    break
                if f["type"] == "notification":
                    ids.append(f["data"]["id"])
            return ids

    async def many():
        results = []
        for k in range(6):
            since = first[k % len(first)]
            results.append((since, await client(nodes[k % 3], since)))
        return results
    try:
        results = asyncio.run(many())
    finally:
        stop.set()
        for t in threads:
            t.join()
    stored, before = [], None
    while True:
        page = nodes[1].ok(*(["list", "--user", "ray", "--limit", "200"] +
                             (["--before", before] if before else [])))
        stored += [x["id"] for x in page["notifications"]]
        before = page["next_before"]
        if before is None:
            break
    stored.sort()
    assert len(stored) > 60
    for since, ids in results:
        assert ids, "nothing replayed after %d" % since
        assert ids == sorted(set(ids)), "out of order or duplicated"
        # Everything up to the last id it saw, whichever node committed it.
        expected = [i for i in stored if since < i <= ids[-1]]
        assert ids == expected, "gap: missing %r" % sorted(set(expected) - set(ids))[:5]


def test_a_listener_cut_off_catches_its_clients_up(daemons, postgres, tmp):
    """Each node hears the others through one LISTEN connection. Cut while
    sends commit, it misses their NOTIFYs: once it listens again it sends
    its clients what they missed, in order and once, with a fresh count.
    A read of so many ids that its NOTIFY would be too large is told the
    same way."""
    a, b = cluster(daemons, postgres, tmp, "cut", n=2)
    # Ids of 11 digits: 700 of them overflow a NOTIFY payload (8000 bytes).
    postgres.psql("SELECT setval('notification_ids', 10000000000)", db="cut")
    tok = a.ok("token", "cy")["token"]
    cut = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity " \
          "WHERE application_name = 'notifyd listener' AND datname = 'cut'"
    acked = []

    def hammer():
        burst(a, "cy", 700, acked)

    async def go():
        async with websockets.connect(ws_url(b, tok), max_size=None) as ws:
            assert (await recv(ws))["type"] == "connected"
            t = threading.Thread(target=hammer)
            t.start()
            try:
                # Cut both nodes' listeners five times while the sends commit,
                # each time once they have come back.
                for i in range(1, 6):
                    assert postgres.psql(cut, db="cut") == [["2"]]
                    for d in (a, b):
                        assert d.wait_count("clients caught up", i, 60) == i
            finally:
                t.join()
            got = []
            while len(got) < len(acked):
                f = await recv(ws, 30)
                if f["type"] == "notification":
                    got.append(f["data"]["id"])
            assert got == acked
            count = await recv_type(ws, "unread_count")
            while count["data"]["count"] != len(acked):
                count = await recv_type(ws, "unread_count")
            # All read at once on A: B's client hears the count.
            assert len(json.dumps(acked)) > 8000
            assert len(a.ok("read", "--user", "cy", *map(str, acked))["ids"]) == len(acked)
            assert a.wait_log("event too large to relay: its user is caught up")
            # (A count from the last catching up may come first.)
            f = await recv(ws, 30)
            while f == {"type": "unread_count", "data": {"count": len(acked)}}:
                f = await recv(ws, 30)
            assert f == {"type": "unread_count", "data": {"count": 0}}, f
    asyncio.run(go())


class StalledClient:
    """A WebSocket that reads nothing until its frames are asked for, with a
    receive buffer of a few KiB: what notifyd's socket cannot hold waits in
    notifyd, its sender blocked on the write."""

    def __init__(self, d, token):
        self.s = socket.socket()
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.s.connect(("127.0.0.1", d.port))
        self.s.sendall(("GET /ws?token=%s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                        "Sec-WebSocket-Version: 13\r\n\r\n" % token).encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self.buf += self.s.recv(4096)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head
        assert self.frame()["type"] == "connected"
        self.s.settimeout(10)  # a frame that never comes fails the test

    def take(self, n):
        while len(self.buf) < n:
            got = self.s.recv(65536)
            assert got, "notifyd closed the connection"
            self.buf += got
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def frame(self):
        """The next text frame, parsed (server frames are not masked)."""
        while True:
            b0, b1 = self.take(2)
            n = b1 & 0x7F
            if n == 126:
                n = int.from_bytes(self.take(2), "big")
            elif n == 127:
                n = int.from_bytes(self.take(8), "big")
            data = self.take(n)
            assert b0 & 0x0F != 8, "closed: %r" % data
            if b0 & 0x0F == 1:
                return json.loads(data)


def test_frames_queued_behind_a_slow_client_survive_a_catching_up(daemons, postgres, tmp):
    """A client reads nothing while 150 notifications are told to it, more
    than the kernel holds for it, so the last of them wait in notifyd. The
    listener is cut and cannot come back while 5 more commit; once it does,
    the catching up sends those 5. The waiting ones must still go out, and
    before them: the catching up once took everything up to its newest as
    sent already (44d068b)."""
    a, b = cluster(daemons, postgres, tmp, "stall", n=2)
    tok = a.ok("token", "sam")["token"]
    body, n = "x" * 50000, 150
    with open("/proc/sys/net/ipv4/tcp_wmem") as f:
        assert n * len(body) > int(f.read().split()[2]) * 1.5, "the kernel would hold them all"

    def send(n):
        c, ids = Client(a.socket), []
        for k in range(0, n, 5):  # their answers read as they come
            m = min(5, n - k)
            c.send_raw(b"".join(b'{"id":%d,"cmd":"send","args":{"user":"sam","type":"m",'
                                b'"body":"%s"}}\n' % (j, body.encode()) for j in range(m)))
            ids += [c.read()["result"]["id"] for _ in range(m)]
        c.close()
        return ids

    stalled = StalledClient(b, tok)

    async def go():
        async with websockets.connect(ws_url(b, tok), max_size=None) as ws:
            assert (await recv(ws))["type"] == "connected"
            told = send(n)
            # B has told both clients all of them once the reading one has them.
            got = []
            while len(got) < len(told):
                got.append((await recv_type(ws, "notification"))["data"]["id"])
            assert got == told
            # No new connection to the database: B's listener cannot come back.
            postgres.psql("ALTER DATABASE stall ALLOW_CONNECTIONS false")
            try:
                assert postgres.psql(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
                    "application_name = 'notifyd listener' AND datname = 'stall'") == [["2"]]
                b.wait_log("lost PostgreSQL for other nodes' events")
                missed = send(5)
            finally:
                postgres.psql("ALTER DATABASE stall ALLOW_CONNECTIONS true")
            assert b.wait_count("clients caught up", 1, 30) == 1
            while len(got) < len(told) + len(missed):
                got.append((await recv_type(ws, "notification"))["data"]["id"])
            assert got == told + missed
            # And a count that holds them all, on both.
            count = await recv_type(ws, "unread_count")
            while count["data"]["count"] != len(got):
                count = await recv_type(ws, "unread_count")
        return told + missed

    acked = asyncio.run(go())
    seen = []
    while len(seen) < len(acked):
        f = stalled.frame()
        if f["type"] == "notification":
            seen.append(f["data"]["id"])
    assert seen == acked
    f = stalled.frame()
    while f != {"type": "unread_count", "data": {"count": len(acked)}}:
        f = stalled.frame()
    stalled.s.close()


def test_a_node_killed_its_clients_reconnect_elsewhere_and_miss_nothing(daemons, postgres,
                                                                        tmp):
    """B dies (SIGKILL) while A sends: B's client reconnects to C with
    since= the last id it saw and gets every other one, in order and once."""
    a, b, c = cluster(daemons, postgres, tmp, "killed")
    tok = a.ok("token", "kim")["token"]
    acked = []

    def hammer():
        burst(a, "kim", 300, acked)

    async def go():
        seen = []
        async with websockets.connect(ws_url(b, tok)) as ws:
            assert (await recv(ws))["type"] == "connected"
            t = threading.Thread(target=hammer)
            t.start()
            while len(seen) < 20:
                seen.append((await recv_type(ws, "notification"))["data"]["id"])
            b.stop("KILL")
            try:
                while True:
                    f = await recv(ws)
                    if f["type"] == "notification":
                        seen.append(f["data"]["id"])
            except websockets.exceptions.ConnectionClosed:
                pass
        t.join()
        async with websockets.connect(ws_url(c, tok, since=seen[-1])) as ws:
            hello = await recv(ws)
            assert hello["type"] == "connected" and hello["data"]["last_id"] == acked[-1]
            while len(seen) < len(acked):
                f = await recv(ws)
                if f["type"] == "notification":
                    seen.append(f["data"]["id"])
        assert seen == acked
    asyncio.run(go())


def test_postgresql_restarted_mid_load_loses_nothing_acknowledged(daemons, postgres, tmp):
    """The server goes away under load and comes back: writes answer 503
    meanwhile and /healthz says so, WebSocket clients stay connected, and
    every write a client was told was stored is there afterwards; a client
    that reconnects with since= catches up."""
    a, b = cluster(daemons, postgres, tmp, "outage", n=2)
    key = a.ok("key", "create", "k")["key"]
    tok = a.ok("token", "pat")["token"]
    first = a.ok("send", "--user", "pat", "--type", "m")["id"]
    acked, refused, stop = [], [], threading.Event()

    def load():
        s = requests.Session()
        s.headers["Authorization"] = "Bearer " + key
        i = 0
        while not stop.is_set():
            i += 1
            try:
                r = s.post(a.url + "/api/v1/notifications", json={"user": "pat", "type": "m",
                           "title": "n%d" % i}, timeout=30)
            except requests.RequestException:
                continue
            if r.status_code == 201:
                acked.append(r.json()["id"])
            else:
                assert r.status_code == 503, r.text
                refused.append(r.json()["error"]["code"])
    t = threading.Thread(target=load)

    async def go():
        async with websockets.connect(ws_url(b, tok)) as ws:
            assert (await recv(ws))["type"] == "connected"
            t.start()
            deadline = time.monotonic() + 30
            while len(acked) < 20:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            postgres.halt()
            try:
                deadline = time.monotonic() + 30
                while not refused:
                    assert time.monotonic() < deadline, "no write refused while it was down"
                    await asyncio.sleep(0.01)
                h = requests.get(a.url + "/healthz", timeout=30)
                assert h.status_code == 503 and h.json()["status"] == "unavailable"
                # Mailpit's probes: not ready, and alive all the same.
                assert requests.get(a.url + "/readyz", timeout=30).status_code == 503
                assert requests.get(a.url + "/livez", timeout=30).status_code == 200
            finally:
                postgres.start()
            n = len(acked)
            deadline = time.monotonic() + 30
            while len(acked) < n + 20:
                assert time.monotonic() < deadline, "writes did not resume"
                await asyncio.sleep(0.01)
            stop.set()
            # Still connected through it all.
            await ws.send(json.dumps({"type": "ping"}))
            await recv_type(ws, "pong")
    try:
        asyncio.run(go())
    finally:
        stop.set()
        if t.is_alive():
            t.join()
    assert requests.get(a.url + "/healthz", timeout=30).status_code == 200
    assert set(refused) == {"unavailable"}, set(refused)
    stored, before = [], None
    while True:
        page = b.ok(*(["list", "--user", "pat", "--limit", "200"] +
                      (["--before", before] if before else [])))
        stored += [x["id"] for x in page["notifications"]]
        before = page["next_before"]
        if before is None:
            break
    assert set(acked) <= set(stored), sorted(set(acked) - set(stored))[:5]

    # A client that comes back with since= gets everything after it.
    async def catch_up():
        async with websockets.connect(ws_url(b, tok, since=first), max_size=None) as ws:
            assert (await recv(ws))["type"] == "connected"
            got = []
            while len(got) < len(stored) - 1:
                f = await recv(ws)
                if f["type"] == "notification":
                    got.append(f["data"]["id"])
            return got
    assert asyncio.run(catch_up()) == sorted(i for i in stored if i > first)


def test_work_is_done_once_while_nodes_are_killed(daemons, postgres, tmp):
    """Three nodes share one outbox. Each email is sent by one node, and one
    that a killed node had claimed is taken up by another once its claim
    runs out, as the same message; scheduled notifications are released
    once; two digest runs at the same moment make each digest once."""
    sink = daemons(data_dir=tmp + "/sink", socket_path=tmp + "/sink.sock", http=True,
                   smtp=True).start()
    # Node 0's relay takes connections and never answers: what node 0 claims
    # hangs there until node 0 is killed, and must be sent by another node.
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(64)
    held = []
    threading.Thread(target=lambda: [held.append(hole.accept()) for _ in iter(int, 1)],
                     daemon=True).start()
    url = postgres.createdb("once")
    nodes = []
    for i in range(3):
        relay = hole.getsockname()[1] if i == 0 else sink.smtp_port
        nodes.append(daemons(data_dir="%s/n%d" % (tmp, i), socket_path="%s/n%d.sock" % (tmp, i),
                             env={"NOTIFYD_STORE_URL": url, "NOTIFYD_STORE_CLAIM_LEASE": "2s",
                                  "NOTIFYD_MAILER_RELAY": "smtp://127.0.0.1:%d" % relay}))
    for d in nodes:
        d.start()
    users = ["w%d" % i for i in range(6)]
    for u in users:
        nodes[0].ok("user", "set", u, "--email", "%s@example.com" % u)
    for u in users[:2]:
        nodes[0].ok("prefs", "set", "--user", u, "digest", "daily")
    # Emails, sent through every node; one node killed part way.
    sent = []
    for i in range(45):
        if i == 15:
            # Node 0 has taken an email to its relay: killed holding the claim.
            deadline = time.monotonic() + 20
            while not held:
                assert time.monotonic() < deadline, "node 0 never tried its relay"
                time.sleep(0.01)
            nodes[0].stop("KILL")
        d = nodes[i % 3] if i < 15 else nodes[1 + i % 2]
        sent.append(d.ok("send", "--user", users[2 + i % 4], "--type", "order_shipped",
                         "--data", "order_id=E%d" % i)["id"])
    # Scheduled ones, due in a moment, on the nodes still running (to a user
    # without an address: no email of theirs among the ones counted below).
    at = datetime_in(1.5)
    later = [nodes[1 + i % 2].ok("send", "--user", "nomail", "--type", "message", "--title",
                                 "later %d" % i, "--at", at)["id"] for i in range(10)]
    # Parked for a digest, then two runs at the same moment.
    for u in users[:2]:
        for i in range(2):
            nodes[1].ok("send", "--user", u, "--type", "order_shipped", "--data",
                        "order_id=D%d" % i)
    runs = [threading.Thread(target=nodes[k].ok, args=("digest", "--period", "daily"))
            for k in (1, 2)]
    for t in runs:
        t.start()
    for t in runs:
        t.join()

    def messages():
        got, start = [], 0
        while True:
            page = requests.get(sink.url + "/api/v1/messages", params={"start": start,
                                "limit": 200}, timeout=10).json()
            got += page["messages"]
            start += len(page["messages"])
            if not page["messages"]:
                return got
    deadline = time.monotonic() + (120 if WRAPPER else 40)
    while len({m["MessageID"] for m in messages()}) < len(sent) + 2:
        assert time.monotonic() < deadline, len({m["MessageID"] for m in messages()})
        time.sleep(0.1)
    mails = messages()
    ids = {m["MessageID"] for m in mails}
    # One message per email (a claim a node died holding is sent again as itself).
    assert len(ids) == len(sent) + 2, (len(ids), len(sent))
    for u in users[:2]:
        digests = {m["MessageID"] for m in mails if m["To"][0]["Address"] == "%s@example.com" % u}
        assert len(digests) == 1, (u, digests)
    # Each scheduled one released once, under a new id that names it.
    deadline = time.monotonic() + (60 if WRAPPER else 20)
    while True:
        inbox = nodes[2].ok("list", "--user", "nomail", "--limit", "100")["notifications"]
        released = [n["scheduled_id"] for n in inbox if n.get("scheduled_id")]
        if len(released) >= len(later):
            break
        assert time.monotonic() < deadline, (released, later)
        time.sleep(0.1)
    assert sorted(released) == sorted(later), (released, later)
    # What node 0 held (a delivery of any node's send: a worker claims any
    # that is due) was sent by another node once its claim ran out.
    retried = [x for n in sent for x in nodes[1].ok("show", n, "--deliveries")["deliveries"]
               if x["channel"] == "email" and x["attempts"] >= 2]
    assert retried and all(x["status"] == "sent" for x in retried), retried
    hole.close()


def datetime_in(seconds):
    import datetime
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")
