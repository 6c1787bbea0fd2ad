"""The REST API with a real HTTP client against a private notifyd."""
import base64
import hashlib
import hmac
import http.client
import json
import gzip
import os
import threading
import time

import pytest
import requests

NOTIFICATION_KEYS = {"id", "user", "type", "category", "priority", "title", "body",
                     "data", "url", "created_at", "read_at", "archived_at"}


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(secret, claims, alg="HS256", header=None):
    """A token made the way any application's JWT library makes one."""
    h = header or {"alg": alg, "typ": "JWT"}
    signing = b64(json.dumps(h).encode()) + "." + b64(json.dumps(claims).encode())
    if alg == "none":
        return signing + "."
    digest = {"HS256": hashlib.sha256, "HS512": hashlib.sha512}[alg]
    return signing + "." + b64(hmac.new(secret, signing.encode(), digest).digest())


class Api:
    """A daemon with HTTP, an admin key and helpers."""

    def __init__(self, d):
        self.d = d
        self.key = d.ok("key", "create", "tests")["key"]
        self.s = requests.Session()
        self.s.headers["Authorization"] = "Bearer " + self.key

    def secret(self):
        with open(os.path.join(self.d.data_dir, "jwt.secret"), "rb") as f:
            return f.read().strip()

    def token(self, user, ttl="1h"):
        return self.d.ok("token", user, "--ttl", ttl)["token"]

    def req(self, method, path, token=None, **kw):
        headers = kw.pop("headers", {})
        if token is not None:
            headers["Authorization"] = "Bearer " + token
        return self.s.request(method, self.d.url + path, headers=headers, timeout=30, **kw)

    def send(self, **body):
        r = self.req("POST", "/api/v1/notifications", json=body)
        assert r.status_code in (200, 201), r.text
        return r.json()


@pytest.fixture
def api(daemons):
    a = Api(daemons(http=True).start())
    yield a
    # An idle keep-alive connection holds a civetweb worker, and stopping
    # waits for it to poll its stop flag (every 2 s): hang up first.
    a.s.close()


def err(r, status, code):
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["Content-Type"] == "application/json"
    body = r.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    assert body["error"]["message"]
    return body["error"]["message"]


def test_send_one_many_topic_and_idempotency(api):
    r = api.req("POST", "/api/v1/notifications", json={
        "user": "alice", "type": "order_shipped", "title": "Shipped", "body": "On its way",
        "data": {"order": "A-1", "n": 2}, "priority": "high", "category": "orders",
        "url": "https://shop.example/o/A-1", "key": "ship-A-1"})
    assert r.status_code == 201, r.text
    n = r.json()
    assert set(n) == NOTIFICATION_KEYS and n["data"] == {"order": "A-1", "n": 2}
    again = api.req("POST", "/api/v1/notifications", json={
        "user": "alice", "type": "order_shipped", "title": "other", "key": "ship-A-1"})
    assert again.status_code == 200 and again.json() == n

    r = api.req("POST", "/api/v1/notifications", json={"users": ["u1", "u2", "u3"], "type": "m",
                                                         "key": "k"})
    assert r.status_code == 201
    many = r.json()
    assert many["count"] == 3 and [x["user"] for x in many["notifications"]] == ["u1", "u2", "u3"]
    r = api.req("POST", "/api/v1/notifications", json={"users": ["u1", "u2", "u4"], "type": "m",
                                                         "key": "k"})
    assert r.status_code == 201  # u4 is new
    assert r.json()["notifications"][0] == many["notifications"][0]
    r = api.req("POST", "/api/v1/notifications", json={"users": ["u1", "u2"], "type": "m", "key": "k"})
    assert r.status_code == 200

    err(api.req("POST", "/api/v1/notifications", json={"topic": "team-7", "type": "m"}),
        404, "topic_not_found")
    for u in ("ann", "bo"):
        assert api.req("PUT", "/api/v1/topics/team-7/members/" + u).status_code == 201
    r = api.req("POST", "/api/v1/notifications", json={"topic": "team-7", "type": "m", "title": "t"})
    assert r.status_code == 201 and r.json()["count"] == 2
    assert api.req("GET", "/api/v1/users/bo/unread_count").json() == {"unread_count": 1}

    users = ["x%d" % i for i in range(1000)]
    r = api.req("POST", "/api/v1/notifications", json={"users": users, "type": "m"})
    assert r.status_code == 201 and r.json()["count"] == 1000
    msg = err(api.req("POST", "/api/v1/notifications", json={"users": users + ["y"], "type": "m"}),
              422, "invalid_field")
    assert "users" in msg
    err(api.req("POST", "/api/v1/notifications", json={"users": ["a", "a"], "type": "m"}),
        422, "invalid_field")
    err(api.req("POST", "/api/v1/notifications", json={"user": "a", "topic": "t", "type": "m"}),
        422, "invalid_field")
    err(api.req("POST", "/api/v1/notifications", json={"type": "m"}), 422, "missing_field")


def test_inbox_routes(api):
    ids = [api.send(user="pat", type="even" if i % 2 == 0 else "odd", category="c%d" % (i % 3))["id"]
           for i in range(7)]
    base = "/api/v1/users/pat/notifications"
    page = api.req("GET", base, params={"limit": 3}).json()
    assert set(page) == {"notifications", "next_before", "unread_count"}
    assert [x["id"] for x in page["notifications"]] == ids[:-4:-1]
    assert page["next_before"] == ids[4] and page["unread_count"] == 7
    page2 = api.req("GET", base, params={"limit": 3, "before": page["next_before"]}).json()
    assert [x["id"] for x in page2["notifications"]] == ids[3:0:-1]
    assert {x["type"] for x in api.req("GET", base + "?type=odd").json()["notifications"]} == {"odd"}
    assert len(api.req("GET", base + "?category=c0").json()["notifications"]) == 3

    one = api.req("GET", "%s/%d" % (base, ids[0]))
    assert one.status_code == 200 and one.json()["id"] == ids[0]
    r = api.req("POST", "%s/%d/read" % (base, ids[0]))
    assert r.json() == {"ids": [ids[0]], "unread_count": 6}
    assert [x["id"] for x in api.req("GET", base + "?unread=true&limit=200").json()["notifications"]] \
        == ids[:0:-1]
    r = api.req("POST", "%s/%d/unread" % (base, ids[0]))
    assert r.json() == {"ids": [ids[0]], "unread_count": 7}
    r = api.req("POST", base + "/read", json={"ids": ids[:2]})
    assert r.json()["unread_count"] == 5
    r = api.req("POST", "%s/%d/archive" % (base, ids[6]))
    assert r.json() == {"ids": [ids[6]], "unread_count": 4}
    assert ids[6] not in [x["id"] for x in api.req("GET", base).json()["notifications"]]
    assert [x["id"] for x in api.req("GET", base + "?archived=true").json()["notifications"]] == [ids[6]]
    assert api.req("POST", "%s/%d/unarchive" % (base, ids[6])).json()["unread_count"] == 5
    r = api.req("POST", base + "/read_all")
    assert r.json() == {"up_to": ids[6], "marked": 5, "unread_count": 0}
    assert api.req("GET", "/api/v1/users/pat/unread_count").json() == {"unread_count": 0}
    r = api.req("DELETE", "%s/%d" % (base, ids[3]))
    assert r.status_code == 200 and r.json() == {"id": ids[3], "deleted": True}
    err(api.req("GET", "%s/%d" % (base, ids[3])), 404, "not_found")
    err(api.req("DELETE", "%s/%d" % (base, ids[3])), 404, "not_found")
    err(api.req("GET", base + "/999999"), 404, "not_found")
    err(api.req("GET", base + "/abc"), 404, "not_found")
    err(api.req("GET", "/api/v1/users/ghost/notifications"), 404, "user_not_found")
    err(api.req("GET", "/api/v1/users/ghost/unread_count"), 404, "user_not_found")
    err(api.req("GET", base + "?limit=500"), 422, "invalid_field")
    assert "limit" in err(api.req("GET", base + "?limit=x"), 422, "invalid_field")
    assert "colour" in err(api.req("GET", base + "?colour=red"), 422, "unknown_field")


def test_user_profiles(api):
    err(api.req("GET", "/api/v1/users/zed"), 404, "user_not_found")
    r = api.req("PUT", "/api/v1/users/zed", json={"email": "zed@example.com", "name": "Zed",
                                                   "tz": "America/New_York", "locale": "en-US"})
    assert r.status_code == 201
    assert set(r.json()) == {"id", "email", "name", "tz", "locale", "created_at"}
    r = api.req("PUT", "/api/v1/users/zed", json={"name": "Zed Z", "email": None})
    assert r.status_code == 200 and r.json()["email"] is None and r.json()["tz"] == "America/New_York"
    assert api.req("GET", "/api/v1/users/zed").json()["name"] == "Zed Z"
    for field, value in (("tz", "Mars/Olympus"), ("tz", "../../etc/passwd"), ("email", "not-an-email"),
                         ("locale", "english!")):
        assert field in err(api.req("PUT", "/api/v1/users/zed", json={field: value}), 422, "invalid_field")
    assert "'user'" in err(api.req("PUT", "/api/v1/users/zed", json={"user": "other"}), 422,
                            "invalid_field")


def test_topics(api):
    assert api.req("PUT", "/api/v1/topics/ops/members/a").status_code == 201
    r = api.req("PUT", "/api/v1/topics/ops/members/a")
    assert r.status_code == 200 and r.json() == {"topic": "ops", "user": "a", "count": 1}
    # The membership and the topic's size, not its member list.
    assert api.req("PUT", "/api/v1/topics/ops/members/b").json() == {"topic": "ops", "user": "b",
                                                                     "count": 2}
    assert api.req("GET", "/api/v1/topics/ops").json()["members"] == ["a", "b"]
    assert api.req("DELETE", "/api/v1/topics/ops/members/a").json() == {"topic": "ops",
                                                                        "user": "a", "count": 1}
    assert api.req("GET", "/api/v1/topics/ops").json()["members"] == ["b"]
    err(api.req("DELETE", "/api/v1/topics/ops/members/a"), 404, "not_found")
    api.req("DELETE", "/api/v1/topics/ops/members/b")
    err(api.req("GET", "/api/v1/topics/ops"), 404, "topic_not_found")
    err(api.req("PUT", "/api/v1/topics/Bad%20Name/members/a"), 422, "invalid_field")


@pytest.mark.sqlite_only("reads api_keys from the SQLite file")
def test_keys(api):
    r = api.req("POST", "/api/v1/keys", json={"name": "deploy"})
    assert r.status_code == 201
    k = r.json()
    assert k["key"].startswith("nk_") and len(k["key"]) == 3 + 43
    assert api.req("GET", "/api/v1/users/nobody/unread_count", token=k["key"]).status_code == 404
    listed = api.req("GET", "/api/v1/keys").json()["keys"]
    assert [x["name"] for x in listed] == ["tests", "deploy"]
    assert all("key" not in x and "hash" not in x for x in listed)
    err(api.req("POST", "/api/v1/keys", json={"name": "deploy"}), 409, "key_exists")
    assert api.req("DELETE", "/api/v1/keys/deploy").json() == {"key": "deploy", "revoked": True}
    err(api.req("GET", "/api/v1/keys", token=k["key"]), 401, "invalid_key")
    err(api.req("DELETE", "/api/v1/keys/deploy"), 404, "not_found")
    # Only its hash is stored.
    import sqlite3
    con = sqlite3.connect(os.path.join(api.d.data_dir, "notifyd.db"))
    stored = [r[0] for r in con.execute("SELECT hash FROM api_keys")]
    con.close()
    assert hashlib.sha256(k["key"].encode()).digest() in stored
    assert not any(k["key"].encode() in bytes(h) for h in stored)


@pytest.mark.sqlite_only("signs tokens with the data directory's secret file")
def test_auth_failures_are_distinct_401s(api):
    secret = api.secret()
    now = int(time.time())
    cases = [
        ({}, "missing_credentials"),
        ({"Authorization": "Basic YTpi"}, "malformed_credentials"),
        ({"Authorization": "Bearer nk_notarealkey"}, "invalid_key"),
        ({"Authorization": "Bearer garbage"}, "malformed_credentials"),
        ({"Authorization": "Bearer " + jwt(secret, {"sub": "alice", "exp": now + 60}, "none")},
         "unsupported_algorithm"),
        ({"Authorization": "Bearer " + jwt(secret, {"sub": "alice", "exp": now + 60}, "HS512")},
         "unsupported_algorithm"),
        ({"Authorization": "Bearer " + jwt(b"wrong-secret-0123456789", {"sub": "alice", "exp": now + 60})},
         "invalid_signature"),
        ({"Authorization": "Bearer " + jwt(secret, {"sub": "alice", "exp": now - 5})}, "token_expired"),
        ({"Authorization": "Bearer " + jwt(secret, {"sub": "alice"})}, "invalid_claims"),
        ({"Authorization": "Bearer " + jwt(secret, {"exp": now + 60})}, "invalid_claims"),
    ]
    plain = requests.Session()
    for headers, code in cases:
        r = plain.get(api.d.url + "/api/v1/users/alice/unread_count", headers=headers, timeout=10)
        err(r, 401, code)
        assert r.headers.get("WWW-Authenticate", "").startswith("Bearer")
    # A token made by the application's own JWT library with the shared secret works.
    api.send(user="alice", type="m")
    mine = jwt(secret, {"sub": "alice", "exp": now + 60})
    r = plain.get(api.d.url + "/api/v1/users/alice/unread_count",
                  headers={"Authorization": "Bearer " + mine}, timeout=10)
    assert r.json() == {"unread_count": 1}
    metrics = plain.get(api.d.url + "/metrics", timeout=10).text
    assert "notifyd_http_auth_failures_total %d" % len(cases) in metrics


def test_user_token_isolation(api):
    a = api.send(user="alice", type="m")
    b = api.send(user="bob", type="m")
    alice = api.token("alice")
    base = "/api/v1/users/%s/notifications"
    assert [x["id"] for x in api.req("GET", base % "alice", token=alice).json()["notifications"]] == [a["id"]]
    for method, path in (("GET", base % "bob"), ("GET", "/api/v1/users/bob/unread_count"),
                         ("POST", base % "bob" + "/read_all"), ("GET", "/api/v1/users/bob"),
                         ("GET", "%s/%d" % (base % "bob", b["id"])),
                         ("POST", "%s/%d/read" % (base % "bob", b["id"]))):
        err(api.req(method, path, token=alice), 403, "forbidden")
    # bob's notification through alice's own path is simply not there.
    err(api.req("GET", "%s/%d" % (base % "alice", b["id"]), token=alice), 404, "not_found")
    err(api.req("POST", "%s/%d/read" % (base % "alice", b["id"]), token=alice), 404, "not_found")
    err(api.req("DELETE", "%s/%d" % (base % "alice", b["id"]), token=alice), 404, "not_found")
    err(api.req("POST", "/api/v1/notifications", token=alice, json={"user": "alice", "type": "m"}),
        403, "forbidden")
    for method, path in (("GET", "/api/v1/keys"), ("GET", "/api/v1/topics/t"),
                         ("PUT", "/api/v1/topics/t/members/alice")):
        err(api.req(method, path, token=alice), 403, "forbidden")
    # What alice may do to her own things.
    assert api.req("POST", "%s/%d/read" % (base % "alice", a["id"]), token=alice).status_code == 200
    assert api.req("PUT", "/api/v1/users/alice", token=alice, json={"name": "Al"}).status_code == 200
    assert api.req("GET", "/api/v1/users/bob/unread_count").json() == {"unread_count": 1}


def test_http_errors(daemons, tmp):
    cfg = os.path.join(tmp, "n.conf")
    with open(cfg, "w") as f:
        f.write("[http]\nmax_body = 2K\nrate_limit = 20\n")
    api = Api(daemons(http=True, args=["--config", cfg]).start())
    url = "/api/v1/notifications"
    m = err(api.req("POST", url, data='{"user": "a",\n "type": }',
                    headers={"Content-Type": "application/json"}), 400, "malformed_json")
    assert "line 2" in m and "column" in m
    err(api.req("POST", url, data="[1]", headers={"Content-Type": "application/json"}), 400, "malformed_json")
    err(api.req("POST", url, data="user=a", headers={"Content-Type": "application/x-www-form-urlencoded"}),
        415, "unsupported_media_type")
    m = err(api.req("POST", url, data=gzip.compress(b'{"user": "a", "type": "m"}'),
                    headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}),
            415, "unsupported_media_type")
    assert "Content-Encoding gzip" in m
    assert api.req("POST", url, data='{"user": "a", "type": "m"}', headers={
        "Content-Type": "application/json", "Content-Encoding": "identity"}).status_code == 201
    err(api.req("POST", url, json={"user": "a", "type": "m", "body": "x" * 3000}), 413, "body_too_large")
    err(api.req("GET", "/api/v1/users/a/unread_count", data="{}",
                headers={"Content-Type": "application/json"}), 400, "unexpected_body")
    err(api.req("GET", "/api/v2/whatever"), 404, "not_found")
    err(api.req("GET", "/nope"), 404, "not_found")
    r = api.req("DELETE", url)
    err(r, 405, "method_not_allowed")
    assert r.headers["Allow"] == "POST"
    r = api.req("GET", "/api/v1/users/a/notifications/read_all")
    assert r.status_code == 405 and r.headers["Allow"] == "POST"
    assert "priority" in err(api.req("POST", url, json={"user": "a", "type": "m", "priority": "max"}),
                             422, "invalid_field")
    # Errors name what the request holds: the body's own key where the route
    # renames it, no operation's name, none of jansson's flags.
    assert err(api.req("POST", url, json={"user": "a", "type": "m", "deliver_at": "soon"}),
               422, "invalid_field") == "'deliver_at' must be an RFC 3339 time or +DURATION"
    assert err(api.req("POST", url, json={"user": "a", "type": "m", "title": 5}),
               422, "invalid_field").startswith("'title' must be ")
    m = err(api.req("POST", url, data='{"user": "a\\u0000b", "type": "m"}',
                    headers={"Content-Type": "application/json"}), 400, "malformed_json")
    assert "\\u0000 is not allowed near" in m and "JSON_ALLOW_NUL" not in m, m
    # Rate limit: 20/s per client; a burst of 60 must meet 429 with Retry-After.
    codes = [api.req("GET", "/api/v1/users/nobody/unread_count") for _ in range(60)]
    limited = [r for r in codes if r.status_code == 429]
    assert limited and limited[0].headers["Retry-After"].isdigit()
    err(limited[0], 429, "rate_limited")
    # Each refused request is logged once, without credentials.
    log = api.d.log()
    assert log.count("code=unsupported_media_type") == 2
    assert api.key not in log


@pytest.mark.sqlite_only("breaks the SQLite file under the daemon")
def test_internal_errors_show_no_internals(daemons):
    # A write that fails inside the store for no passing reason: here its table
    # renamed underneath notifyd by another process.
    import sqlite3
    api = Api(daemons(http=True).start())
    db = os.path.join(api.d.data_dir, "notifyd.db")
    con = sqlite3.connect(db, timeout=10)
    con.execute("ALTER TABLE notifications RENAME TO gone")
    con.commit()
    r = api.req("POST", "/api/v1/notifications", json={"user": "a", "type": "m"})
    err(r, 500, "internal")
    assert r.json()["error"]["message"] == "internal error"
    assert "notifications" not in r.text and "table" not in r.text
    con.execute("ALTER TABLE gone RENAME TO notifications")
    con.commit()
    con.close()
    assert api.req("POST", "/api/v1/notifications", json={"user": "a", "type": "m"}).status_code == 201
    api.s.close()


@pytest.mark.sqlite_only("locks the SQLite file")
def test_a_locked_database_is_503_and_passes(daemons):
    # The database locked by another process past notifyd's busy timeout: a passing
    # state, 503 with Retry-After, nothing changed; then it goes on.
    import sqlite3
    api = Api(daemons(http=True, env={"NOTIFYD_STORE_BUSY_TIMEOUT": "1s"}).start())
    con = sqlite3.connect(os.path.join(api.d.data_dir, "notifyd.db"), timeout=10)
    con.execute("BEGIN EXCLUSIVE")  # holds the write lock past notifyd's busy timeout
    try:
        t0 = time.monotonic()
        r = api.req("POST", "/api/v1/notifications", json={"user": "a", "type": "m"})
        assert time.monotonic() - t0 >= 0.9
    finally:
        con.rollback()
        con.close()
    err(r, 503, "busy")
    assert r.headers["Retry-After"] == "5"
    assert "database" not in r.text and "locked" not in r.text
    assert api.req("POST", "/api/v1/notifications", json={"user": "a", "type": "m"}).status_code == 201
    assert len(api.req("GET", "/api/v1/users/a/notifications").json()["notifications"]) == 1
    api.s.close()


def test_cors(daemons, tmp):
    plain = daemons(http=True).start()
    r = requests.options(plain.url + "/api/v1/notifications",
                         headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"})
    assert r.status_code == 403 and "Access-Control-Allow-Origin" not in r.headers
    cfg = os.path.join(tmp, "c.conf")
    with open(cfg, "w") as f:
        f.write("[http]\ncors_origins = https://app.example, https://admin.example\n")
    d = daemons(http=True, args=["--config", cfg], data_dir=os.path.join(tmp, "d2"),
                socket_path=os.path.join(tmp, "c2.sock")).start()
    r = requests.options(d.url + "/api/v1/users/a/notifications",
                         headers={"Origin": "https://app.example", "Access-Control-Request-Method": "GET",
                                  "Access-Control-Request-Headers": "authorization"})
    assert r.status_code == 204
    assert r.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "GET" in r.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in r.headers["Access-Control-Allow-Headers"]
    assert r.headers["Vary"] == "Origin"
    r = requests.options(d.url + "/api/v1/users/a/notifications",
                         headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    assert r.status_code == 403 and "Access-Control-Allow-Origin" not in r.headers
    r = requests.get(d.url + "/healthz", headers={"Origin": "https://admin.example"})
    assert r.headers["Access-Control-Allow-Origin"] == "https://admin.example"
    r = requests.get(d.url + "/healthz", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in r.headers


def test_keep_alive_and_concurrent_clients(api):
    c = http.client.HTTPConnection("127.0.0.1", api.d.port, timeout=10)
    headers = {"Authorization": "Bearer " + api.key, "Content-Type": "application/json"}
    c.connect()
    sock = c.sock
    for i in range(50):
        c.request("POST", "/api/v1/notifications", body=json.dumps({"user": "ka", "type": "m"}),
                  headers=headers)
        r = c.getresponse()
        assert r.status == 201
        r.read()
        assert c.sock is sock, "the server closed a keep-alive connection"
    c.close()

    errors, ids = [], []
    lock = threading.Lock()

    def worker(t):
        s = requests.Session()
        s.headers["Authorization"] = "Bearer " + api.key
        for i in range(40):
            r = s.post(api.d.url + "/api/v1/notifications", json={"user": "crowd", "type": "m",
                                                                  "key": "%d-%d" % (t, i)}, timeout=30)
            with lock:
                if r.status_code != 201:
                    errors.append(r.text)
                else:
                    ids.append(r.json()["id"])
    threads = [threading.Thread(target=worker, args=(t,)) for t in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(set(ids)) == 16 * 40
    assert api.req("GET", "/api/v1/users/crowd/unread_count").json() == {"unread_count": 640}


def test_healthz_and_metrics(api):
    for probe in ("/healthz", "/readyz", "/livez"):
        r = requests.get(api.d.url + probe)
        assert r.status_code == 200 and r.json() == {"status": "ok"}, probe
    for _ in range(3):
        api.send(user="m", type="m")
    # A request is counted once its answer is written, so the third 201 may
    # be read before its worker has counted it: look again until it has.
    # (On PostgreSQL a notification is counted when its NOTIFY comes back.)
    want = 'notifyd_http_requests_total{method="POST",route="/api/v1/notifications",status="201"} 3'
    deadline = time.monotonic() + 30
    while True:
        text = requests.get(api.d.url + "/metrics").text
        if (want in text and "notifyd_notifications_created_total 3" in text) or \
                time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert "notifyd_notifications_created_total 3" in text
    assert want in text
    assert 'notifyd_http_request_duration_seconds_bucket{method="POST",route="/api/v1/notifications",le="+Inf"} 3' in text
    assert "# TYPE notifyd_http_request_duration_seconds histogram" in text
    assert "notifyd_store_commits_total" in text


def test_acknowledged_201s_survive_sigkill(daemons):
    d = daemons(http=True).start()
    api = Api(d)
    acked, lock, enough = [], threading.Lock(), threading.Event()
    stop = threading.Event()

    def worker(t):
        s = requests.Session()
        s.headers["Authorization"] = "Bearer " + api.key
        i = 0
        while not stop.is_set():
            try:
                r = s.post(d.url + "/api/v1/notifications",
                           json={"user": "dur", "type": "m", "key": "%d-%d" % (t, i)}, timeout=10)
            except requests.RequestException:
                return
            if r.status_code == 201:
                with lock:
                    acked.append(r.json()["id"])
                    if len(acked) >= 400:
                        enough.set()
            i += 1
    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    assert enough.wait(60)
    d.proc.kill()
    d.proc.wait(10)
    stop.set()
    for t in threads:
        t.join(15)
    d.start()
    got, before = set(), None
    while True:
        params = {"limit": 200}
        if before:
            params["before"] = before
        page = api.req("GET", "/api/v1/users/dur/notifications", params=params).json()
        got |= {x["id"] for x in page["notifications"]}
        before = page["next_before"]
        if before is None:
            break
    assert set(acked) <= got, "lost: %r" % sorted(set(acked) - got)[:10]
