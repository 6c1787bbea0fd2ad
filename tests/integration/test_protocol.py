"""The control protocol on the wire: greeting, pipelining, bad input, limits."""
import json
import os
import socket
import stat
import threading

from conftest import Client


def test_greeting_and_socket_mode(nd):
    c = nd.connect()
    assert c.greeting == {"notifyd": "0.1.0", "protocol": 1}
    assert stat.S_IMODE(os.stat(nd.socket).st_mode) == 0o600
    c.close()


def test_pipelined_replies_in_order(nd):
    c = nd.connect()
    blob = b"".join(json.dumps({"id": "req-%d" % i, "cmd": "send",
                                "args": {"user": "u", "type": "m", "title": str(i)}}).encode() + b"\n"
                    for i in range(300))
    c.send_raw(blob)
    replies = [c.read() for _ in range(300)]
    assert [r["id"] for r in replies] == ["req-%d" % i for i in range(300)]
    assert all(r["ok"] for r in replies)
    assert [r["result"]["title"] for r in replies] == [str(i) for i in range(300)]
    ids = [r["result"]["id"] for r in replies]
    assert ids == sorted(ids) and len(set(ids)) == 300
    c.close()


def test_bad_lines_get_errors_and_connection_survives(nd):
    c = nd.connect()
    cases = [
        (b"this is not json\n", 400, "malformed_json"),
        (b'{"id":1,"cmd":"send","args":{"user":"a"\n', 400, "malformed_json"),
        (b"[1,2,3]\n", 400, "invalid_request"),
        (b'{"id":2}\n', 400, "invalid_request"),
        (b'{"id":3,"cmd":42}\n', 400, "invalid_request"),
        (b'{"id":4,"cmd":"ping","extra":1}\n', 400, "invalid_request"),
        (b'{"id":5,"cmd":"ping","cmd":"send"}\n', 400, "malformed_json"),
        (b'{"id":6,"cmd":"launch_missiles"}\n', 404, "unknown_command"),
        (b'{"id":7,"cmd":"send","args":[]}\n', 422, "invalid_arguments"),
        (b'{"id":8,"cmd":"send","args":{"user":"a","type":"m","nope":1}}\n', 422, "unknown_field"),
        (b'{"id":9,"cmd":"send","args":{"type":"m"}}\n', 422, "missing_field"),
        (b'{"id":10,"cmd":"list","args":{"user":"a","limit":"5"}}\n', 422, "invalid_field"),
        (b'\xff\xfe{"id":11}\n', 400, "malformed_json"),
    ]
    for line, status, code in cases:
        c.send_raw(line)
        r = c.read()
        assert r["ok"] is False, line
        assert (r["error"]["status"], r["error"]["code"]) == (status, code), (line, r)
        assert r["error"]["message"]
    # Blank lines are ignored; the connection still works.
    c.send_raw(b"\n\r\n")
    assert c.call("ping", id=99)["ok"] is True
    c.close()
    # Each bad request is logged exactly once.
    assert nd.wait_count("code=unknown_command", 1) == 1
    assert nd.wait_count("code=malformed_json", 4) == 4


def test_request_ids_echoed_verbatim(nd):
    c = nd.connect()
    for rid in (0, -5, "x", None, {"a": [1]}, 1.5):
        c.send_raw(json.dumps({"id": rid, "cmd": "ping"}).encode() + b"\n")
        assert c.read()["id"] == rid
    c.send_raw(b'{"cmd":"ping"}\n')
    assert c.read()["id"] is None
    c.close()


def test_oversize_line_closes_only_that_connection(nd):
    victim = nd.connect()
    other = nd.connect()
    big = b'{"id":1,"cmd":"send","args":{"user":"a","type":"m","body":"' + b"x" * (1024 * 1024 + 10)
    try:
        victim.send_raw(big + b'"}}\n')
    except (BrokenPipeError, ConnectionResetError):
        pass  # the daemon may close before everything was written
    r = victim.read()
    assert r["ok"] is False and r["error"]["code"] == "line_too_long"
    assert victim.f.readline() == b""  # closed
    victim.close()
    assert other.call("ping")["ok"] is True
    assert nd.connect().call("ping")["ok"] is True
    assert nd.wait_count("code=line_too_long", 1) == 1


def test_line_just_under_limit_is_served(nd):
    c = nd.connect()
    # A valid request of 1 MiB - 1 bytes: refused as too large a body, but read whole.
    head = b'{"id":1,"cmd":"send","args":{"user":"a","type":"m","body":"'
    tail = b'"}}'
    body = b"y" * (1024 * 1024 - 1 - len(head) - len(tail))
    c.send_raw(head + body + tail + b"\n")
    r = c.read()
    assert r["error"]["code"] == "invalid_field" and "body" in r["error"]["message"]
    assert c.call("ping")["ok"] is True


def test_many_concurrent_clients(nd):
    errors = []
    n_threads, per = 40, 25

    def worker(t):
        try:
            c = Client(nd.socket)
            for i in range(per):
                r = c.call("send", {"user": "crowd", "type": "m", "key": "%d-%d" % (t, i)}, id=i)
                if not r["ok"] or r["id"] != i:
                    errors.append(r)
            c.close()
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(repr(e))
    threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert nd.ok("count", "--user", "crowd")["unread_count"] == n_threads * per


def test_client_limit(daemons, tmp):
    cfg = os.path.join(tmp, "n.conf")
    with open(cfg, "w") as f:
        f.write("[control]\nmax_clients = 2\n")
    d = daemons(args=["--config", cfg, "-v"]).start()
    a, b = d.connect(), d.connect()
    assert a.call("ping")["ok"] and b.call("ping")["ok"]
    s = socket.socket(socket.AF_UNIX)
    s.connect(d.socket)
    r = json.loads(s.makefile().readline())
    assert r["ok"] is False and r["error"]["code"] == "too_many_clients"
    s.close()
    a.close()
    # Once a client leaves (the daemon logs it), a new one is served.
    d.wait_log("control client closed", 10)
    c = d.connect()
    assert c.greeting["protocol"] == 1 and c.call("ping")["ok"]
