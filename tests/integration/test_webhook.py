"""Webhooks: the application's endpoints, called through the outbox.

Receivers here verify the Standard Webhooks signature with their own HMAC
(Python's hmac, not notifyd's code), and fail, hang or answer 410 as told.
"""
import base64
import hashlib
import hmac
import http.server
import json
import os
import threading
import time

import pytest
import requests

from conftest import STORE, WRAPPER


def verify(secret, headers, body):
    """Standard Webhooks: v1,base64(HMAC-SHA256(key, id.timestamp.body)), key from whsec_."""
    assert secret.startswith("whsec_")
    key = base64.b64decode(secret[len("whsec_"):])
    msg_id, ts = headers["webhook-id"], headers["webhook-timestamp"]
    assert abs(int(ts) - time.time()) < 300
    want = base64.b64encode(hmac.new(key, ("%s.%s." % (msg_id, ts)).encode() + body,
                                     hashlib.sha256).digest()).decode()
    sigs = [s.split(",", 1)[1] for s in headers["webhook-signature"].split() if s.startswith("v1,")]
    assert any(hmac.compare_digest(want, s) for s in sigs), (want, sigs)


class Receiver:
    """POST /NAME: each name answers with its script (statuses, or "slow"), then 200."""

    def __init__(self):
        self.scripts = {}
        self.calls = []     # (name, headers, body, status, time)
        self.cond = threading.Condition()
        self.release = threading.Event()
        rcv = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                name = self.path.strip("/")
                with rcv.cond:
                    script = rcv.scripts.get(name, [])
                    step = script.pop(0) if script else 200
                if step == "slow":
                    rcv.release.wait(30)
                    step = 200
                with rcv.cond:
                    rcv.calls.append((name, {k.lower(): v for k, v in self.headers.items()},
                                      body, step, time.monotonic()))
                    rcv.cond.notify_all()
                try:
                    self.send_response(step)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass    # the slow one: notifyd gave up and hung up

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, name):
        return "http://127.0.0.1:%d/%s" % (self.server.server_port, name)

    def wait(self, name, n, timeout=20):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                got = [c for c in self.calls if c[0] == name]
                if len(got) >= n:
                    return got
                left = deadline - time.monotonic()
                assert left > 0, (name, n, self.calls)
                self.cond.wait(left)

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def rcv():
    r = Receiver()
    yield r
    r.close()


def conf(tmp, extra=""):
    path = os.path.join(tmp, "hook.conf")
    with open(path, "w") as f:
        f.write("[webhook]\nallow_private = true\n%s\n"
                "[mailer]\nretry_base = 200ms\n" % extra)
    return ["--config", path]


@pytest.fixture
def hookd(daemons, tmp):
    def make(extra=""):
        return daemons(http=True, args=conf(tmp, extra)).start()
    return make


def hook_deliveries(d, nid):
    return [x for x in d.ok("show", nid, "--deliveries")["deliveries"]
            if x["channel"] == "webhook"]


def wait_status(d, nid, status, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        got = hook_deliveries(d, nid)
        if got and all(x["status"] == status for x in got):
            return got
        assert time.monotonic() < deadline, [(x["status"], x["last_error"]) for x in got]
        time.sleep(0.05)


def test_signed_calls_filtered_by_type_and_user(hookd, rcv):
    d = hookd()
    every = d.ok("webhook", "add", rcv.url("every"))
    assert every["secret"].startswith("whsec_") and every["format"] == "json"
    orders = d.ok("webhook", "add", rcv.url("orders"), "--types", "order_shipped,order_created")
    assert orders["types"] == ["order_shipped", "order_created"]
    bob = d.ok("webhook", "add", rcv.url("bob"), "--users", "bob")
    # The secret is shown once: never in a list.
    assert all("secret" not in h for h in d.ok("webhook", "list")["webhooks"])
    n1 = d.ok("send", "--user", "ann", "--type", "order_shipped", "--data", "order=7",
              "--data", "carrier=UPS")
    n2 = d.ok("send", "--user", "bob", "--type", "message", "--title", "hi bob")
    # The outbox's workers call in parallel: the two may come in either order.
    calls = {json.loads(c[2])["data"]["id"]: c for c in rcv.wait("every", 2)}
    assert sorted(calls) == [n1["id"], n2["id"]]
    e1 = calls[n1["id"]]
    for call in calls.values():
        verify(every["secret"], call[1], call[2])
        assert json.loads(call[2])["type"] == "notification.created"
        assert call[1]["webhook-id"] and call[1]["content-type"] == "application/json"
    (o1,) = rcv.wait("orders", 1)
    verify(orders["secret"], o1[1], o1[2])
    assert json.loads(o1[2])["data"]["id"] == n1["id"]
    (b1,) = rcv.wait("bob", 1)
    assert json.loads(b1[2])["data"]["id"] == n2["id"]
    wait_status(d, n1["id"], "sent")
    wait_status(d, n2["id"], "sent")
    assert len(hook_deliveries(d, n1["id"])) == 2    # every, orders
    assert len(hook_deliveries(d, n2["id"])) == 2    # every, bob
    listed = {h["id"]: h for h in d.ok("webhook", "list")["webhooks"]}
    assert listed[bob["id"]]["last_status"] == 200 and listed[bob["id"]]["failures"] == 0
    # A tampered body does not verify.
    with pytest.raises(AssertionError):
        verify(every["secret"], e1[1], e1[2] + b" ")


def test_failing_twice_then_ok_is_one_success(hookd, rcv):
    d = hookd()
    h = d.ok("webhook", "add", rcv.url("flaky"))
    rcv.scripts["flaky"] = [500, 503]
    n = d.ok("send", "--user", "cy", "--type", "message", "--title", "t")
    calls = rcv.wait("flaky", 3)
    assert [c[3] for c in calls] == [500, 503, 200]
    # Every attempt carries the same id, each its own timestamp and signature.
    assert len({c[1]["webhook-id"] for c in calls}) == 1
    for c in calls:
        verify(h["secret"], c[1], c[2])
    (dl,) = wait_status(d, n["id"], "sent")
    assert dl["attempts"] == 3
    (listed,) = d.ok("webhook", "list")["webhooks"]
    assert listed["failures"] == 0 and listed["last_status"] == 200
    assert d.count_log('msg="webhook sent"') == 1
    metrics = requests.get(d.url + "/metrics", timeout=10).text
    assert "notifyd_webhook_sent_total 1\n" in metrics
    assert "notifyd_webhook_retried_total 2\n" in metrics
    time.sleep(0.5)   # nothing more is coming: the delivery is finished
    assert len(rcv.wait("flaky", 3)) == 3


def test_slow_endpoint_times_out_and_is_retried(hookd, rcv):
    d = hookd("timeout = 1s")
    d.ok("webhook", "add", rcv.url("slow"))
    rcv.scripts["slow"] = ["slow"]
    n = d.ok("send", "--user", "di", "--type", "message", "--title", "t")
    d.wait_log('msg="webhook attempt failed"')
    log = [l for l in d.log().splitlines() if 'msg="webhook attempt failed"' in l][0]
    assert "timed out" in log.lower() or "timeout" in log.lower(), log
    rcv.release.set()
    (dl,) = wait_status(d, n["id"], "sent")
    assert dl["attempts"] == 2


def test_410_disables_the_endpoint(hookd, rcv):
    d = hookd()
    h = d.ok("webhook", "add", rcv.url("gone"))
    rcv.scripts["gone"] = [410]
    n = d.ok("send", "--user", "ed", "--type", "message", "--title", "t")
    (dl,) = wait_status(d, n["id"], "failed")
    assert "410" in dl["last_error"]
    d.wait_log('msg="webhook endpoint disabled"')
    (listed,) = d.ok("webhook", "list")["webhooks"]
    assert listed["id"] == h["id"] and listed["disabled_at"] and listed["last_status"] == 410
    n2 = d.ok("send", "--user", "ed", "--type", "message", "--title", "t2")
    assert hook_deliveries(d, n2["id"]) == []


def test_failing_longer_than_disable_after_disables(hookd, rcv):
    d = hookd("disable_after = 0s")
    d.ok("webhook", "add", rcv.url("down"))
    rcv.scripts["down"] = [500] * 5
    n = d.ok("send", "--user", "fo", "--type", "message", "--title", "t")
    (dl,) = wait_status(d, n["id"], "failed")
    assert dl["attempts"] == 1
    (listed,) = d.ok("webhook", "list")["webhooks"]
    assert listed["disabled_at"] and listed["failures"] == 1


def test_slack_format(hookd, rcv):
    d = hookd()
    d.ok("webhook", "add", rcv.url("chat"), "--format", "slack")
    d.ok("send", "--user", "gu", "--type", "message", "--title", "Deploy <done>",
         "--body", "v1.2 & more", "--url", "https://example.com/d/1")
    (c,) = rcv.wait("chat", 1)
    assert json.loads(c[2]) == {
        "text": "*Deploy &lt;done&gt;*\nv1.2 &amp; more\n<https://example.com/d/1>"}


def test_test_command_and_rest(hookd, rcv):
    d = hookd()
    key = d.ok("key", "create", "app")["key"]
    auth = {"Authorization": "Bearer " + key}
    for bad in ("short", "whsec_!!notbase64!!", "whsec_" + base64.b64encode(b"x" * 8).decode()):
        r = requests.post(d.url + "/api/v1/webhooks", headers=auth, timeout=10,
                          json={"url": rcv.url("rest"), "secret": bad})
        assert r.status_code == 422 and "secret" in r.json()["error"]["message"], r.text
    r = requests.post(d.url + "/api/v1/webhooks", headers=auth, timeout=10,
                      json={"url": rcv.url("rest"), "format": "xml"})
    assert r.status_code == 422
    secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    r = requests.post(d.url + "/api/v1/webhooks", headers=auth, timeout=10,
                      json={"url": rcv.url("rest"), "secret": secret, "types": ["message"]})
    assert r.status_code == 201 and "secret" not in r.json()
    hid = r.json()["id"]
    r = requests.post(d.url + "/api/v1/webhooks/%d/test" % hid, headers=auth, timeout=10)
    assert r.status_code == 200 and r.json()["ok"] is True and r.json()["status"] == 200
    (c,) = rcv.wait("rest", 1)
    verify(secret, c[1], c[2])
    assert json.loads(c[2])["type"] == "webhook.test"
    rcv.scripts["rest"] = [502]
    # It printed the answer, and its exit status says the endpoint failed.
    _, t, _ = d.ctl("webhook", "test", hid, check=1)
    assert t["ok"] is False and t["status"] == 502
    # A user token may not manage endpoints.
    tok = {"Authorization": "Bearer " + d.ok("token", "x")["token"]}
    assert requests.get(d.url + "/api/v1/webhooks", headers=tok, timeout=10).status_code == 403
    r = requests.delete(d.url + "/api/v1/webhooks/%d" % hid, headers=auth, timeout=10)
    assert r.status_code == 200
    assert requests.delete(d.url + "/api/v1/webhooks/%d" % hid, headers=auth,
                           timeout=10).status_code == 404


def test_only_http_urls_and_no_private_addresses_by_default(daemons, rcv):
    d = daemons().start()
    for url in ("ftp://example.com/x", "file:///etc/passwd", "gopher://x",
                "http://user:pw@example.com/"):
        code, _, err = d.ctl("webhook", "add", url)
        assert code == 1, (url, err)
    for url in (rcv.url("x"), "http://localhost:9/x", "http://10.1.2.3/x",
                "http://[::1]:9/x", "http://169.254.169.254/latest/meta-data",
                "http://192.168.1.1/", "http://0.0.0.0/"):
        code, _, err = d.ctl("webhook", "add", url)
        assert code == 1 and "private" in err, (url, err)
    assert d.ok("webhook", "list")["webhooks"] == []


def test_an_endpoint_added_after_sends_gets_the_next_ones(hookd, rcv):
    # A store with no endpoint and no subscription skips queueing them on a
    # send; the first endpoint added must end that.
    d = hookd()
    first = d.ok("send", "--user", "ka", "--type", "message", "--title", "before")
    assert hook_deliveries(d, first["id"]) == []
    d.ok("webhook", "add", rcv.url("late"))
    n = d.ok("send", "--user", "ka", "--type", "message", "--title", "after")
    (c,) = rcv.wait("late", 1)
    assert json.loads(c[2])["data"]["id"] == n["id"]


def mapped(d, name):
    with open("/proc/%d/maps" % d.proc.pid) as f:
        return name in f.read()


def test_libcurl_is_loaded_when_first_needed(hookd, rcv):
    # Mapping libcurl (and its LDAP, Kerberos, GnuTLS ...) at start cost an
    # idle notifyd 6 MiB; it is opened by the first call that needs it.
    d = hookd()
    d.ok("send", "--user", "u", "--type", "t", "--title", "no curl needed")
    assert not mapped(d, "/libcurl.so")
    if STORE == "sqlite":
        assert not mapped(d, "/libpq.so")
    hid = d.ok("webhook", "add", rcv.url("lazy"))["id"]
    assert d.ok("webhook", "test", str(hid))["ok"] is True
    rcv.wait("lazy", 1)
    assert mapped(d, "/libcurl.so")
    assert d.stop() == 0


class KeepAlive:
    """An HTTP/1.1 endpoint that keeps its connections open; hang() makes its
    next call wait (until close), and tells when that call has arrived."""

    def __init__(self):
        self.calls = 0
        self.hang_next = False
        self.arrived = threading.Event()
        self.release = threading.Event()
        ka = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                ka.calls += 1
                if ka.hang_next:
                    ka.hang_next = False
                    ka.arrived.set()
                    ka.release.wait(60)
                try:
                    self.send_response(200)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = "http://127.0.0.1:%d/hook" % self.server.server_port

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def test_stopping_interrupts_a_call_on_an_older_kept_alive_connection(daemons, tmp):
    # One worker; endpoint a's connection is kept alive, then b's is opened
    # after it, then a call to a hangs on the older one. Stopping must not
    # wait out [webhook] timeout for it.
    a, b = KeepAlive(), KeepAlive()
    try:
        d = daemons(args=conf(tmp, "timeout = 60s\n[mailer]\nworkers = 1")).start()
        d.ok("webhook", "add", a.url, "--types", "ta")
        d.ok("webhook", "add", b.url, "--types", "tb")
        for t, ep in (("ta", a), ("tb", b)):
            d.ok("send", "--user", "u", "--type", t, "--title", "x")
            deadline = time.monotonic() + 20
            while ep.calls == 0:
                assert time.monotonic() < deadline
                time.sleep(0.02)
        a.hang_next = True
        d.ok("send", "--user", "u", "--type", "ta", "--title", "hangs")
        assert a.arrived.wait(20)
        t0 = time.monotonic()
        assert d.stop(timeout=50) == 0
        assert time.monotonic() - t0 < (20 if WRAPPER else 5)
    finally:
        a.close()
        b.close()
