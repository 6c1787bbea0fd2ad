"""Untrusted input that once crashed or exposed the daemon, each against a private notifyd."""
import asyncio
import base64
import hashlib
import hmac
import json
import os
import socket
import sqlite3

import pytest
import requests
import websockets

from conftest import WRAPPER, Client


def deep_json(levels, inner="1"):
    return "[" * levels + inner + "]" * levels


@pytest.fixture
def hd(daemons):
    d = daemons(http=True, smtp=True).start()
    d.key = d.ok("key", "create", "hardening")["key"]
    return d


def metric(d, name):
    """The value of a counter on /metrics."""
    import re
    text = requests.get(d.url + "/metrics", timeout=10).text
    return int(re.search(r"^%s (\d+)$" % name, text, re.M).group(1))


def alive(d):
    assert requests.get(d.url + "/healthz", timeout=10).status_code == 200
    assert d.ok("ping")["pong"] is True


def test_json_nested_deep_is_refused_on_every_path(hd):
    d = hd
    token = d.ok("token", "alice")["token"]
    body = '{"x":' + deep_json(1000) + "}"   # about 2 KB
    assert len(body) < 2100
    # A user's own token, PATCHing preferences: crashed a civetweb worker.
    r = requests.patch(d.url + "/api/v1/users/alice/preferences", data=body,
                       headers={"Authorization": "Bearer " + token,
                                "Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["code"] == "too_deep", r.text
    # The mailbox from loopback, with no credentials at all.
    r = requests.put(d.url + "/api/v1/messages", data='{"IDs":' + deep_json(1000, '"x"') + "}",
                     headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["code"] == "too_deep"
    # data nested 300 deep in a send: crashed in json_dumps.
    r = requests.post(d.url + "/api/v1/notifications",
                      data='{"user":"bob","type":"m","data":{"x":' + deep_json(300) + "}}",
                      headers={"Authorization": "Bearer " + d.key,
                               "Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["code"] == "too_deep"
    # The limit is the same everywhere: 32 levels in all are fine, 33 are not.
    ok = '{"user":"bob","type":"m","data":{"x":' + deep_json(30) + "}}"
    too = '{"user":"bob","type":"m","data":{"x":' + deep_json(31) + "}}"
    for text, status in ((ok, 201), (too, 400)):
        r = requests.post(d.url + "/api/v1/notifications", data=text,
                          headers={"Authorization": "Bearer " + d.key,
                                   "Content-Type": "application/json"}, timeout=10)
        assert r.status_code == status, r.text

    # One WebSocket text frame.
    async def ws():
        async with websockets.connect("ws://127.0.0.1:%d/ws?token=%s" % (d.port, token)) as c:
            assert json.loads(await c.recv())["type"] == "connected"
            await c.send('{"type":"mark_read","ids":' + deep_json(1000) + "}")
            err = json.loads(await asyncio.wait_for(c.recv(), 10))
            assert err["type"] == "error" and err["data"]["code"] == "too_deep", err
            await c.send('{"type":"ping"}')
            assert json.loads(await asyncio.wait_for(c.recv(), 10))["type"] == "pong"
    asyncio.run(ws())

    # A control-socket line.
    c = Client(d.socket)
    c.send_raw(b'{"id":1,"cmd":"send","args":{"user":"x","type":"m","data":'
               + deep_json(100000).encode() + b"}}\n")
    r = c.read()
    assert r["ok"] is False and r["error"]["code"] == "too_deep"
    assert c.call("ping")["ok"] is True
    c.close()

    # A user token whose claims nest deep: libjwt parses them before the signature.
    def b64(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    signing = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(('{"sub":' + deep_json(3000) + "}").encode())
    bad = signing + "." + b64(hmac.new(b"x", signing.encode(), hashlib.sha256).digest())
    r = requests.get(d.url + "/api/v1/users/alice/notifications",
                     headers={"Authorization": "Bearer " + bad}, timeout=10)
    assert r.status_code == 401
    alive(d)


def nested_multipart(levels, leaf=b"deep inside\r\n"):
    """A message whose multipart/mixed parts nest levels deep."""
    head = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: nested %d\r\n" % levels
    open_, close = [], []
    for i in range(levels):
        open_.append(b"Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n" % (i, i))
        close.insert(0, b"\r\n--b%d--\r\n" % i)
    return head + b"".join(open_) + b"Content-Type: text/plain\r\n\r\n" + leaf + b"".join(close)


def smtp_send(port, raw):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    f = s.makefile("rb")
    codes = []

    def code():
        while True:
            line = f.readline()
            if line[3:4] != b"-":
                return int(line[:3])
    codes.append(code())
    s.sendall(b"EHLO x\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n")
    codes += [code() for _ in range(4)]
    s.sendall(raw.replace(b"\r\n.", b"\r\n..") + b"\r\n.\r\nQUIT\r\n")
    codes += [code(), code()]
    f.close()
    s.close()
    return codes


def test_mime_nested_deep_is_refused_at_the_dot(hd):
    d = hd
    assert smtp_send(d.smtp_port, nested_multipart(400))[-2] == 554
    assert smtp_send(d.smtp_port, nested_multipart(45))[-2] == 250
    msgs = requests.get(d.url + "/api/v1/messages").json()["messages"]
    assert [m["Subject"] for m in msgs] == ["nested 45"]
    full = requests.get(d.url + "/api/v1/message/" + msgs[0]["ID"]).json()
    assert full["Text"].strip() == "deep inside"
    # A message/rfc822 part is a level too.
    inner = nested_multipart(30)
    wrapped = inner
    for i in range(25):
        wrapped = (b"Subject: wrap %d\r\nContent-Type: message/rfc822\r\n\r\n" % i) + wrapped
    assert smtp_send(d.smtp_port, wrapped)[-2] == 554
    assert d.wait_log("reason=mime_depth")
    alive(d)


def test_a_content_type_folded_past_1_kib_is_read_not_overrun(hd):
    """The depth scan kept a Content-Type in a 1 KiB buffer; a folded line
    after it was full was copied past its end. One SMTP message of 8 KiB
    took the daemon down (found by fuzz_send)."""
    d = hd
    params = b"".join(b' x%d="%s";\r\n' % (i, b"a" * 200) for i in range(40))
    raw = (b"Subject: long type\r\nContent-Type: multipart/mixed;\r\n" + params +
           b" boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nstill here\r\n--b--\r\n")
    assert smtp_send(d.smtp_port, raw)[-2] == 250
    alive(d)
    full = requests.get(d.url + "/api/v1/message/latest").json()
    assert full["Subject"] == "long type" and "still here" in full["Text"]


@pytest.mark.sqlite_only("writes the mail row into the SQLite file")
def test_deep_mail_stored_before_the_limit_is_shown_raw(daemons, tmp):
    """A poison pill stored by an older notifyd: shown as text, never parsed."""
    d = daemons(http=True, smtp=True).start()
    assert smtp_send(d.smtp_port, b"Subject: plain\r\n\r\nhello\r\n")[-2] == 250
    d.stop()
    raw = b"Received: from x\r\n" + nested_multipart(400)
    db = sqlite3.connect(os.path.join(d.data_dir, "notifyd.db"))
    summary = {"MessageID": "", "From": None, "To": [], "Cc": [], "Bcc": [], "ReplyTo": [],
               "Subject": "poison", "Tags": [], "Attachments": 0, "Snippet": ""}
    db.execute("INSERT INTO mail (uid, received_at, mail_from, rcpt_to, size, summary, search, raw)"
               " VALUES ('poison0000000000000000', 1, 'a@x', '[\"b@y\"]', ?, ?, 'poison', ?)",
               (len(raw), json.dumps(summary), raw))
    db.commit()
    db.close()
    d.start()
    for _ in range(2):  # every read, after every restart
        full = requests.get(d.url + "/api/v1/message/poison0000000000000000", timeout=10)
        assert full.status_code == 200 and "deep inside" in full.json()["Text"]
        assert full.json()["Attachments"] == [] and full.json()["HTML"] == ""
        h = requests.get(d.url + "/api/v1/message/poison0000000000000000/headers").json()
        assert h["Subject"] == ["nested 400"] and h["Received"] == ["from x"]
        assert requests.get(d.url + "/view/poison0000000000000000.txt").status_code == 200
        assert requests.get(d.url + "/api/v1/message/poison0000000000000000/part/1"
                            ).status_code == 404
        assert d.ok("mail", "show", "poison0000000000000000")["Subject"] == "poison"
    alive(d)


def write_conf(tmp, name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return ["--config", path]


def mail_with_parts(port):
    """One message with an HTML body, a script, an SVG and a PNG attachment."""
    raw = (b"From: a@example.com\r\nTo: b@example.com\r\nSubject: reset code 4711\r\n"
           b"Content-Type: multipart/mixed; boundary=\"m\"\r\n\r\n"
           b"--m\r\nContent-Type: text/html\r\n\r\n<script>fetch('/api/v1/messages')</script>"
           b"<p>code 4711</p>\r\n"
           b"--m\r\nContent-Type: image/svg+xml\r\nContent-Disposition: attachment; "
           b"filename=\"x.svg\"\r\n\r\n<svg xmlns=\"http://www.w3.org/2000/svg\"><script>"
           b"alert(1)</script></svg>\r\n"
           b"--m\r\nContent-Type: image/png\r\nContent-Disposition: inline; "
           b"filename=\"a \\\"b\\\".png\"\r\n\r\nPNG\r\n"
           b"--m--\r\n")
    assert smtp_send(port, raw)[-2] == 250


def test_mailbox_needs_a_local_program_or_a_key(daemons, tmp):
    d = daemons(http=True, smtp=True, args=write_conf(tmp, "c.conf",
                                                      "[http]\ncors_origins = *\n")).start()
    key = d.ok("key", "create", "k")["key"]
    mail_with_parts(d.smtp_port)
    url = d.url + "/api/v1/messages"
    assert requests.get(url).status_code == 200                       # curl, a script
    here = "127.0.0.1:%d" % d.port
    assert requests.get(url, headers={"Host": "localhost:%d" % d.port}).status_code == 200
    assert requests.get(url, headers={"Origin": "http://" + here}).status_code == 200
    # A page of another site (the browser is a loopback peer too), DNS rebinding.
    for h in ({"Origin": "https://evil.example"}, {"Host": "evil.example:%d" % d.port},
              {"Host": "localhost:1"}):
        r = requests.get(url, headers=h)
        assert r.status_code == 401 and "Access-Control-Allow-Origin" not in r.headers, h
    assert requests.get(url, headers={"Origin": "https://evil.example",
                                      "Authorization": "Bearer " + key}).status_code == 200
    # cors_origins = * opens the notification API, never the mailbox.
    pre = {"Origin": "https://evil.example", "Access-Control-Request-Method": "DELETE"}
    r = requests.options(url, headers=pre)
    assert r.status_code == 403 and "Access-Control-Allow-Origin" not in r.headers
    r = requests.options(d.url + "/api/v1/users/a/notifications",
                         headers=dict(pre, **{"Access-Control-Request-Method": "GET"}))
    assert r.status_code == 204 and r.headers["Access-Control-Allow-Origin"] == "https://evil.example"
    r = requests.get(url, headers={"Origin": "https://evil.example",
                                   "Authorization": "Bearer " + key})
    assert "Access-Control-Allow-Origin" not in r.headers

    async def events(headers):
        """The first event the stream shows after a mail arrives."""
        async with websockets.connect("ws://%s/api/events" % here, extra_headers=headers) as ws:
            await asyncio.get_running_loop().run_in_executor(
                None, smtp_send, d.smtp_port, b"Subject: live\r\n\r\nx\r\n")
            return json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert asyncio.run(events({}))["Type"] == "new"
    assert asyncio.run(events({"Origin": "http://" + here}))["Type"] == "new"
    with pytest.raises(websockets.exceptions.InvalidStatusCode) as e:
        asyncio.run(events({"Origin": "https://evil.example"}))
    assert e.value.status_code == 403
    assert d.ok("connections")["total"] == 0    # and it took no place meanwhile
    alive(d)


def test_mail_cors_and_trust_proxy(daemons, tmp):
    d = daemons(http=True, smtp=True, args=write_conf(
        tmp, "c.conf", "[http]\ncors_origins = https://mail.example\nmail_cors = true\n"
                       "trust_proxy = 127.0.0.1\n")).start()
    key = d.ok("key", "create", "k")["key"]
    url = d.url + "/api/v1/messages"
    r = requests.options(url, headers={"Origin": "https://mail.example",
                                       "Access-Control-Request-Method": "DELETE"})
    assert r.status_code == 204 and r.headers["Access-Control-Allow-Origin"] == "https://mail.example"
    # Behind the proxy every request comes from loopback: none is local.
    assert requests.get(url).status_code == 401
    assert requests.get(url, headers={"Authorization": "Bearer " + key}).status_code == 200


def test_captured_mail_is_served_sandboxed(hd):
    d = hd
    mail_with_parts(d.smtp_port)
    m = requests.get(d.url + "/api/v1/messages").json()["messages"][0]
    full = requests.get(d.url + "/api/v1/message/" + m["ID"]).json()
    for path in ("/view/%s.html" % m["ID"], "/view/%s.txt" % m["ID"],
                 "/api/v1/message/%s/raw" % m["ID"]):
        r = requests.get(d.url + path)
        assert r.status_code == 200
        csp = r.headers["Content-Security-Policy"]
        assert csp.startswith("sandbox;") and "default-src 'none'" in csp and "img-src data:" in csp
        assert "script-src" not in csp and r.headers["X-Content-Type-Options"] == "nosniff"
    parts = {a["FileName"]: a["PartID"] for a in full["Attachments"] + full["Inline"]}
    svg = requests.get(d.url + "/api/v1/message/%s/part/%s" % (m["ID"], parts["x.svg"]))
    assert svg.headers["Content-Disposition"] == \
        "attachment; filename=\"x.svg\"; filename*=UTF-8''x.svg"
    assert svg.headers["Content-Security-Policy"].startswith("sandbox;")
    png = requests.get(d.url + "/api/v1/message/%s/part/%s" % (m["ID"], parts['a "b".png']))
    assert png.headers["Content-Disposition"] == \
        "inline; filename=\"a _b_.png\"; filename*=UTF-8''a%20%22b%22.png"


def test_a_user_token_may_not_change_the_email_address(hd):
    d = hd
    d.ok("user", "set", "alice", "--email", "alice@example.com")
    tok = d.ok("token", "alice")["token"]
    u = d.url + "/api/v1/users/alice"
    r = requests.put(u, json={"email": "thief@example.com"}, headers={"Authorization": "Bearer " + tok})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    r = requests.put(u, json={"email": None}, headers={"Authorization": "Bearer " + tok})
    assert r.status_code == 403
    r = requests.put(u, json={"name": "Alice", "tz": "Europe/Berlin", "locale": "de"},
                     headers={"Authorization": "Bearer " + tok})
    assert r.status_code == 200 and r.json()["email"] == "alice@example.com"
    r = requests.put(u, json={"email": "new@example.com"}, headers={"Authorization": "Bearer " + d.key})
    assert r.status_code == 200 and r.json()["email"] == "new@example.com"


@pytest.mark.sqlite_only("the SQLite files' modes")
def test_files_are_for_the_owner_only(daemons, tmp):
    data = os.path.join(tmp, "data")
    os.mkdir(data, 0o755)
    os.chmod(data, 0o755)
    old = os.umask(0o022)
    try:
        d = daemons(data_dir=data).start()
    finally:
        os.umask(old)
    d.ok("send", "--user", "a", "--type", "m")
    d.wait_log("data directory is open to others")
    for name in ("notifyd.db", "notifyd.db-wal", "jwt.secret", "notifyd.lock"):
        mode = os.stat(os.path.join(data, name)).st_mode & 0o777
        assert mode & 0o077 == 0, (name, oct(mode))


def connect_from(src, port):
    """A TCP connection to our port whose source address is src (any of 127/8 is local)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((src, 0))
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    return s


def get_healthz(src, port):
    """GET /healthz from src; (status, seconds)."""
    import time
    t0 = time.monotonic()
    s = connect_from(src, port)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    return int(data.split(b" ", 2)[1]), time.monotonic() - t0


def read_all(s):
    data = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    return data


def http_raw(port, raw):
    """Send raw bytes as one HTTP client; everything that comes back until
    the server closes (a server that keeps the connection open fails it)."""
    s = connect_from("127.0.0.1", port)
    try:
        s.sendall(raw)
        data = read_all(s)
    except socket.timeout:
        raise AssertionError("the server kept the connection open")
    finally:
        s.close()
    return data


def test_a_body_with_two_lengths_is_refused_and_its_connection_closed(hd):
    """A body whose length two parties could read differently (RFC 9112
    6.1, 6.3): Content-Length with Transfer-Encoding, two different
    Content-Lengths, or one that is not a number. civetweb would go by the
    chunks or by the first length, and serve what follows as a request of
    its own, where a proxy in front that went by the (other) length passes
    it as part of this one. 400, the connection closed, nothing stored."""
    body = b'{"user":"smuggle","type":"m","title":"x"}'
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    hidden = (b"POST /api/v1/notifications HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
              + hd.key.encode() + b"\r\nContent-Type: application/json\r\nContent-Length: "
              + b"%d\r\n\r\n" % len(body) + body)
    head = (b"POST /api/v1/notifications HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + hd.key.encode() + b"\r\nContent-Type: application/json\r\n")
    cl, te = b"Content-Length: %d" % (len(chunked) + len(hidden)), b"Transfer-Encoding: chunked"
    cases = [
        ([cl, te], chunked),
        ([te, cl], chunked),
        ([b"Content-Length: %d" % len(body), b"Content-Length: %d" % (len(body) + len(hidden))], body),
        ([b"Content-Length: %d" % (len(body) + len(hidden)), b"Content-Length: %d" % len(body)], body),
        ([b"Content-Length: %d, %d" % (len(body), len(body) + len(hidden))], body),
        ([b"Content-Length: +%d" % len(body)], body),
    ]
    for headers, first in cases:
        data = http_raw(hd.port, head + b"".join(h + b"\r\n" for h in headers) + b"\r\n"
                        + first + hidden)
        assert data.count(b"HTTP/1.1 ") == 1, (headers, data)
        assert data.startswith(b"HTTP/1.1 400 "), (headers, data)
        assert b"\r\nConnection: close\r\n" in data, (headers, data)
        assert json.loads(data.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "bad_request"
    hd.ctl("count", "--user", "smuggle", check=1)     # no such user: nothing was stored
    assert hd.wait_count('msg="http request refused"', len(cases)) == len(cases)   # once each
    # One length said twice alike, or with whitespace after it, is one length.
    for headers in ([b"Content-Length: %d" % len(body)] * 2, [b"Content-Length: %d " % len(body)]):
        data = http_raw(hd.port, head + b"".join(h + b"\r\n" for h in headers)
                        + b"Connection: close\r\n\r\n" + body)
        assert data.startswith(b"HTTP/1.1 201 "), (headers, data)
    assert hd.ok("count", "--user", "smuggle")["unread_count"] == 2
    alive(hd)


def test_civetwebs_own_refusals_say_they_close(hd):
    """What civetweb refuses before notifyd sees a request (a malformed
    line, an unknown HTTP version, headers too large, a transfer coding it
    cannot read) ends the connection, and the answer says so; a request
    sent after it is not served."""
    after = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    cases = [
        (b"GARBAGE\r\n\r\n", 400, "bad_request"),
        (b"GET / HTTP/9.9\r\nHost: x\r\n\r\n", 505, "http_version_not_supported"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 70000 + b"\r\n\r\n", 400, "bad_request"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400, "bad_request"),
    ]
    for raw, status, code in cases:
        data = http_raw(hd.port, raw + after)
        assert data.count(b"HTTP/1.1 ") == 1, (raw[:40], data)
        assert data.startswith(b"HTTP/1.1 %d " % status), (raw[:40], data)
        assert b"\r\nConnection: close\r\n" in data, (raw[:40], data)
        err = json.loads(data.split(b"\r\n\r\n", 1)[1])["error"]
        assert err["code"] == code, (raw[:40], err)
        if status == 505:   # civetweb's reason, not hidden as an internal error
            assert err["message"] != "internal error", err
    alive(hd)


def test_a_body_refused_for_its_size_ends_the_connection(daemons, tmp):
    """A 413 (and any refusal of a request whose declared body is larger
    than max_body) says Connection: close and closes, rather than keep a
    connection whose client is still sending that body."""
    cfg = os.path.join(tmp, "n.conf")
    with open(cfg, "w") as f:
        f.write("[http]\nmax_body = 2K\n")
    d = daemons(http=True, args=["--config", cfg]).start()
    key = d.ok("key", "create", "big")["key"]
    big = b"x" * 4096
    for auth in (b"Authorization: Bearer " + key.encode() + b"\r\n", b""):
        data = http_raw(d.port, b"POST /api/v1/notifications HTTP/1.1\r\nHost: x\r\n" + auth
                        + b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(big)
                        + big)
        assert data.startswith(b"HTTP/1.1 413 " if auth else b"HTTP/1.1 401 "), data
        assert b"\r\nConnection: close\r\n" in data, data
    # A small body refused stays a kept-alive connection's business.
    s = connect_from("127.0.0.1", d.port)
    for _ in range(2):
        s.sendall(b"POST /api/v1/notifications HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(4096)
        assert head.startswith(b"HTTP/1.1 401 ") and b"Connection: keep-alive" in head, head
    s.close()


@pytest.mark.transport_only("one address's half-open requests")
def test_slowloris_from_one_address_stalls_no_one_else(daemons, tmp):
    import threading
    import time
    d = daemons(http=True, args=write_conf(tmp, "c.conf", "[http]\nws_max_connections = 16\n"
                                           "ws_reserve = 8\nmax_per_address = 8\n"
                                           "header_timeout = 3s\n")).start()
    # 300 connections from 127.0.0.1, each sending half a request, a byte at a time.
    stop = threading.Event()
    held, refused = [], []
    for i in range(300):
        s = connect_from("127.0.0.1", d.port)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-a: ")
        held.append(s)

    def trickle():
        while not stop.wait(0.5):
            for s in held:
                try:
                    s.send(b"a")
                except OSError:
                    pass
    t = threading.Thread(target=trickle)
    t.start()
    try:
        # /healthz from another address answers at once, throughout.
        worst = 0
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            status, took = get_healthz("127.0.0.2", d.port)
            assert status == 200
            worst = max(worst, took)
        assert WRAPPER or worst < 0.1, worst   # valgrind is slower than that for anyone
    finally:
        stop.set()
        t.join()
    # All but 8 were answered 503 at once, without a worker; those 8 were cut
    # off by header_timeout (3 s) however they trickled.
    answers = [read_all(s) for s in held]
    for s in held:
        s.close()
    busy = [a for a in answers if b" 503 " in a.split(b"\r\n", 1)[0]]
    assert len(busy) == 292, len(busy)
    assert all(b"Retry-After: 5" in a and b"too_many_connections" in a for a in busy)
    assert metric(d, "notifyd_http_refused_per_address_total") == 292
    assert d.count_log("http connections refused") <= 6   # at most once a second
    alive(d)


def test_full_means_503_at_once_not_a_queue(daemons, tmp):
    d = daemons(http=True, args=write_conf(tmp, "c.conf", "[http]\nws_max_connections = 4\n"
                                           "ws_reserve = 4\nmax_per_address = 3\n")).start()
    idle = [connect_from("127.0.0.%d" % (3 + i // 3), d.port) for i in range(8)]
    # Every worker now holds an idle connection (3 + 3 + 2 from three addresses):
    # accept takes connections in the order they came, so the next one finds them.
    import time
    deadline = time.monotonic() + 5
    s = connect_from("127.0.0.9", d.port)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    head = read_all(s)
    s.close()
    assert b" 503 " in head.split(b"\r\n")[0] and b"server_full" in head, head
    assert WRAPPER or time.monotonic() < deadline
    for c in idle:
        c.close()
    # Places come back as the workers see the connections close.
    deadline = time.monotonic() + 10
    while get_healthz("127.0.0.9", d.port)[0] != 200:
        assert time.monotonic() < deadline
    assert metric(d, "notifyd_http_refused_full_total") >= 1
    alive(d)


@pytest.mark.transport_only("headers sent a byte at a time")
def test_headers_that_trickle_are_cut_off(daemons, tmp):
    """header_timeout bounds a request's headers in all, however they trickle."""
    import time
    d = daemons(http=True, args=write_conf(tmp, "c.conf", "[http]\nheader_timeout = 1s\n")).start()
    s = connect_from("127.0.0.1", d.port)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    t0 = time.monotonic()
    answer = b""
    s.settimeout(0.3)
    while time.monotonic() - t0 < 10:   # a header byte every 0.3 s, never the end
        try:
            s.send(b"X-a: b\r\n")
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
        except socket.timeout:
            continue
        except OSError:
            break
    took = time.monotonic() - t0
    s.close()
    assert b" 408 " in answer.split(b"\r\n")[0] and b"header_timeout" in answer, answer
    assert 0.9 < took < (10 if WRAPPER else 3), took
    assert metric(d, "notifyd_http_header_timeouts_total") == 1
    # A WebSocket whose upgrade came whole lives past it (the time is the subject here).
    tok = d.ok("token", "w")["token"]

    async def ws():
        async with websockets.connect("ws://127.0.0.1:%d/ws?token=%s" % (d.port, tok)) as c:
            assert json.loads(await c.recv())["type"] == "connected"
            await asyncio.sleep(2.5)
            await c.send('{"type":"ping"}')
            assert json.loads(await asyncio.wait_for(c.recv(), 10))["type"] == "pong"
    asyncio.run(ws())
    assert metric(d, "notifyd_http_header_timeouts_total") == 1
    alive(d)


class Smtp:
    """A raw SMTP session, one reply at a time."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.f = self.s.makefile("rb")
        assert self.code() == 220

    def code(self):
        while True:
            line = self.f.readline()
            assert line, "the server hung up"
            if line[3:4] != b"-":
                self.last = line
                return int(line[:3])

    def cmd(self, line):
        self.s.sendall(line + b"\r\n")
        return self.code()

    def start(self, size=None):
        assert self.cmd(b"EHLO x") == 250
        assert self.cmd(b"MAIL FROM:<a@x>" + (b" SIZE=%d" % size if size else b"")) == 250
        assert self.cmd(b"RCPT TO:<b@y>") == 250
        assert self.cmd(b"DATA") == 354

    def close(self):
        self.f.close()
        self.s.close()


def tcp_queues(local_port, remote_port):
    """(tx_queue, rx_queue) of this host's IPv4 TCP socket local_port ->
    remote_port (/proc/net/tcp), or None when there is none."""
    with open("/proc/net/tcp") as f:
        for row in f.readlines()[1:]:
            fields = row.split()
            if (int(fields[1].split(":")[1], 16), int(fields[2].split(":")[1], 16)) == \
                    (local_port, remote_port):
                tx, rx = fields[4].split(":")
                return int(tx, 16), int(rx, 16)
    return None


def read_by_server(client, server_port, timeout=20):
    """Until the server has read every byte client sent: nothing unacked on
    the client's side, nothing unread on the server's."""
    import time
    me = client.getsockname()[1]
    deadline = time.monotonic() + timeout
    while (tcp_queues(me, server_port) or (1, 0))[0] or \
            (tcp_queues(server_port, me) or (0, 1))[1]:
        assert time.monotonic() < deadline, "the server did not read what was sent"
        time.sleep(0.01)


def test_sink_budgets(daemons, tmp):
    d = daemons(http=True, smtp=True, args=write_conf(
        tmp, "c.conf", "[smtp]\nmax_inflight = 1M\nmax_size = 2M\nmail_max_bytes = 1M\n")).start()
    # RFC 5321: 1,000 octets a line, CRLF included.
    c = Smtp(d.smtp_port)
    c.start()
    c.s.sendall(b"Subject: ok\r\n\r\n" + b"a" * 998 + b"\r\n.\r\n")
    assert c.code() == 250
    c.start()
    c.s.sendall(b"Subject: long\r\n\r\n" + b"a" * 999 + b"\r\n.\r\n")
    assert c.code() == 500 and b"Line too long" in c.last
    # The budget: a message held open counts against every other.
    line = b"b" * 900 + b"\r\n"
    held = Smtp(d.smtp_port)
    held.start()
    held.s.sendall(b"Subject: held\r\n\r\n" + line * 800)   # 721 KB, no dot yet
    # Counted once read: await that, or other's message may come first.
    read_by_server(held.s, d.smtp_port)
    other = Smtp(d.smtp_port)
    other.start()
    other.s.sendall(b"Subject: other\r\n\r\n" + line * 400 + b".\r\n")
    assert other.code() == 451 and b"in flight" in other.last
    assert other.cmd(b"MAIL FROM:<a@x> SIZE=400000") == 452
    assert other.cmd(b"RSET") == 250
    held.s.sendall(b".\r\n")
    assert held.code() == 250
    other.start(size=400000)
    other.s.sendall(b"Subject: other\r\n\r\n" + line * 400 + b".\r\n")
    assert other.code() == 250
    # Retention by bytes: 1 MiB in all, the newest kept.
    for i in range(3):
        other.start()
        other.s.sendall(b"Subject: big %d\r\n\r\n" % i + line * 400 + b".\r\n")
        assert other.code() == 250
    subjects = [m["Subject"] for m in requests.get(d.url + "/api/v1/messages").json()["messages"]]
    assert subjects == ["big 2", "big 1"], subjects
    for x in (c, held, other):
        x.close()
    assert d.wait_count("reason=line", 1) == 1 and d.wait_count("reason=inflight", 2) == 2


def test_a_session_ends_however_busy(daemons, tmp):
    import time
    d = daemons(smtp=True, args=write_conf(tmp, "c.conf", "[smtp]\nmax_session_time = 2s\n")).start()
    c = Smtp(d.smtp_port)
    t0 = time.monotonic()
    code = 250
    while code == 250:
        code = c.cmd(b"NOOP")   # busy all the time: never idle
    assert code == 421 and b"Session too long" in c.last
    assert 1.9 < time.monotonic() - t0 < 5
    c.close()


def test_the_sink_leaves_the_disk_reserve_to_notifications(daemons, tmp):
    d = daemons(http=True, smtp=True, args=write_conf(tmp, "c.conf", "[smtp]\ndisk_reserve = 1024G\n")).start()
    c = Smtp(d.smtp_port)
    c.start()
    c.s.sendall(b"Subject: x\r\n\r\nbody\r\n.\r\n")
    assert c.code() == 452 and b"storage" in c.last
    c.close()
    assert requests.get(d.url + "/api/v1/messages").json()["total"] == 0
    assert d.ok("send", "--user", "a", "--type", "m")["id"] > 0


def test_https_is_refused_rather_than_raced(daemons, tmp):
    """civetweb reads TLS on one thread while pushes write from others: no TLS listener."""
    args = write_conf(tmp, "c.conf", "[http]\ntls_cert = /etc/ssl/certs/x.pem\n")
    d = daemons(http=True, args=args)
    d.start(wait=False)
    assert d.proc.wait(20) != 0
    d.reader.join(5)
    assert "does not serve HTTPS itself" in d.log() and "notifyd(8)" in d.log()
    from conftest import NOTIFYD
    import subprocess
    p = subprocess.run([NOTIFYD, args[0], args[1], "--check-config"], capture_output=True, text=True)
    assert p.returncode == 2 and "TLS proxy" in p.stderr
