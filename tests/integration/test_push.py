"""Web Push: VAPID (RFC 8292), aes128gcm (RFC 8291), and how notifyd treats a
push service's answers.

The push service here is written in the test with Python's cryptography: it
checks the VAPID JWT against notifyd's public key, decrypts each message as a
browser would, and answers as told (201, 410, 413, 429 with Retry-After, 500).
"""
import base64
import concurrent.futures
import hashlib
import hmac
import http.server
import json
import os
import stat
import threading
import time

import pytest
import requests

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from conftest import STORE


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def hkdf1(salt, ikm, info, n):
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()[:n]


class Browser:
    """A subscription's keys, as a browser keeps them, and its decryption."""

    def __init__(self):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.public = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        self.auth = os.urandom(16)

    def keys(self):
        return {"p256dh": b64u(self.public), "auth": b64u(self.auth)}

    def decrypt(self, body):
        salt, rs, idlen = body[:16], int.from_bytes(body[16:20], "big"), body[20]
        as_public = body[21:21 + idlen]
        assert rs >= 18 and idlen == 65
        sender = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), as_public)
        secret = self.key.exchange(ec.ECDH(), sender)
        ikm = hkdf1(self.auth, secret, b"WebPush: info\x00" + self.public + as_public, 32)
        cek = hkdf1(salt, ikm, b"Content-Encoding: aes128gcm\x00", 16)
        nonce = hkdf1(salt, ikm, b"Content-Encoding: nonce\x00", 12)
        plain = AESGCM(cek).decrypt(nonce, body[21 + idlen:], None)
        plain = plain.rstrip(b"\x00")
        assert plain.endswith(b"\x02"), "one record, the last"
        return json.loads(plain[:-1])


class PushService:
    """Endpoints /push/NAME; each answers with its script of statuses, then 201."""

    def __init__(self, vapid_key, subject):
        self.vapid = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(),
                                                                  unb64u(vapid_key))
        self.vapid_b64 = vapid_key
        self.subject = subject
        self.scripts = {}
        self.received = []      # (name, headers, payload, time)
        self.errors = []
        self.cond = threading.Condition()
        self.browsers = {}
        svc = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                name = self.path.rsplit("/", 1)[1]
                with svc.cond:
                    script = svc.scripts.get(name, [])
                    status = script.pop(0) if script else 201
                try:
                    payload = svc.check(name, self.headers, body)
                except Exception as e:  # recorded: the test fails on it
                    svc.errors.append(repr(e))
                    payload = None
                    status = 400
                with svc.cond:
                    svc.received.append((name, dict(self.headers), payload, time.monotonic(),
                                         status))
                    svc.cond.notify_all()
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", "2")
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def endpoint(self, name):
        return "http://127.0.0.1:%d/push/%s" % (self.server.server_port, name)

    def browser(self, name):
        self.browsers[name] = Browser()
        return {"endpoint": self.endpoint(name), "expirationTime": None,
                "keys": self.browsers[name].keys()}

    def check(self, name, headers, body):
        """What a push service and the browser behind it verify."""
        scheme, _, params = headers["Authorization"].partition(" ")
        assert scheme == "vapid", headers["Authorization"]
        p = dict(x.strip().split("=", 1) for x in params.split(","))
        assert p["k"] == self.vapid_b64
        head, claims, sig = p["t"].split(".")
        assert json.loads(unb64u(head)) == {"typ": "JWT", "alg": "ES256"} or \
            json.loads(unb64u(head))["alg"] == "ES256"
        raw = unb64u(sig)
        assert len(raw) == 64, "JWS ES256: r || s"
        der = utils.encode_dss_signature(int.from_bytes(raw[:32], "big"),
                                         int.from_bytes(raw[32:], "big"))
        self.vapid.verify(der, (head + "." + claims).encode(), ec.ECDSA(hashes.SHA256()))
        c = json.loads(unb64u(claims))
        assert c["aud"] == "http://127.0.0.1:%d" % self.server.server_port
        assert c["sub"] == self.subject
        assert time.time() < c["exp"] <= time.time() + 24 * 3600
        assert headers["Content-Encoding"] == "aes128gcm"
        assert int(headers["TTL"]) > 0
        assert len(body) <= 4096
        return self.browsers[name].decrypt(body)

    def wait(self, n, timeout=20):
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.received) < n:
                left = deadline - time.monotonic()
                assert left > 0, (self.received, self.errors)
                self.cond.wait(left)
            assert not self.errors, self.errors
            return list(self.received)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


SUBJECT = "mailto:ops@example.com"


def conf(tmp, extra=""):
    path = os.path.join(tmp, "push.conf")
    with open(path, "w") as f:
        f.write("[push]\nallow_private = true\nsubject = %s\n[mailer]\nretry_base = 200ms\n%s"
                % (SUBJECT, extra))
    return ["--config", path]


@pytest.fixture
def pushd(daemons, tmp):
    made = []

    def make(extra=""):
        d = daemons(http=True, args=conf(tmp, extra)).start()
        key = requests.get(d.url + "/api/v1/push/vapid_public_key", timeout=10).json()
        svc = PushService(key["public_key"], SUBJECT)
        made.append(svc)
        return d, svc
    yield make
    for s in made:
        s.close()


def subscribe(d, user, sub, token=None):
    if token is None:
        token = d.ok("token", user)["token"]
    return requests.post(d.url + "/api/v1/users/%s/push_subscriptions" % user, json=sub,
                         headers={"Authorization": "Bearer " + token}, timeout=10)


def deliveries(d, nid, channel="push"):
    return [x for x in d.ok("show", nid, "--deliveries")["deliveries"] if x["channel"] == channel]


def wait_status(d, nid, status, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        got = deliveries(d, nid)
        if got and all(x["status"] == status for x in got):
            return got
        assert time.monotonic() < deadline, [(x["status"], x["last_error"]) for x in got]
        time.sleep(0.05)


@pytest.mark.skipif(STORE != "sqlite", reason="the key is a file on SQLite")
def test_a_broken_vapid_key_is_refused_when_wanted(daemons, tmp):
    d = daemons(http=True)
    os.makedirs(d.data_dir, mode=0o700, exist_ok=True)
    with open(os.path.join(d.data_dir, "vapid.pem"), "w") as f:
        f.write("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    os.chmod(os.path.join(d.data_dir, "vapid.pem"), 0o600)
    d.start()
    for _ in range(2):
        r = requests.get(d.url + "/api/v1/push/vapid_public_key", timeout=10)
        assert r.status_code == 503 and "VAPID" in r.json()["error"]["message"], r.text
    assert d.count_log("Web Push is off") == 1     # why: said once, not per request
    assert d.stop() == 0


def test_vapid_key_is_made_once_and_kept(daemons, tmp):
    d = daemons(http=True).start()
    if STORE == "sqlite":
        # Made when first wanted, not at start (OpenSSL's start-up is 2.4 MiB).
        assert not os.path.exists(os.path.join(d.data_dir, "vapid.pem"))
    r = requests.get(d.url + "/api/v1/push/vapid_public_key", timeout=10)
    assert r.status_code == 200            # no credentials: a page needs it to subscribe
    key = unb64u(r.json()["public_key"])
    ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), key)
    assert d.ok("push", "key")["public_key"] == r.json()["public_key"]
    if STORE == "sqlite":
        mode = os.stat(os.path.join(d.data_dir, "vapid.pem")).st_mode
        assert stat.S_IMODE(mode) == 0o600
    d.stop()
    d.start()
    again = requests.get(d.url + "/api/v1/push/vapid_public_key", timeout=10).json()
    assert again["public_key"] == r.json()["public_key"]


def test_push_reaches_the_browser_encrypted_and_signed(pushd):
    d, svc = pushd()
    r = subscribe(d, "ann", svc.browser("ann1"))
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    # The same browser subscribing again is the same subscription, with new keys.
    again = subscribe(d, "ann", svc.browser("ann1"))
    assert again.status_code == 200 and again.json()["id"] == sid
    assert subscribe(d, "ann", svc.browser("ann2")).status_code == 201
    n = d.ok("send", "--user", "ann", "--type", "message", "--title", "Build green",
             "--body", "main passed", "--url", "https://ci.example/1", "--priority", "high")
    got = svc.wait(2)
    assert sorted(g[0] for g in got) == ["ann1", "ann2"]
    for name, headers, payload, _, _ in got:
        assert payload["id"] == n["id"] and payload["title"] == "Build green"
        assert payload["body"] == "main passed" and payload["url"] == "https://ci.example/1"
        assert payload["type"] == "message"
        assert headers["Urgency"] == "high"
        assert int(headers["TTL"]) == 86400
        assert 0 < len(headers["Topic"]) <= 32
    wait_status(d, n["id"], "sent")
    listed = d.ok("push", "list", "--user", "ann")["subscriptions"]
    assert len(listed) == 2 and listed[0]["id"] == sid
    assert all(s["last_sent_at"] for s in listed)
    # Two different messages: two different encryptions.
    d.ok("send", "--user", "ann", "--type", "message", "--title", "again")
    assert len(svc.wait(4)) == 4


def test_a_long_body_is_cut_to_fit_4k(pushd):
    d, svc = pushd()
    subscribe(d, "bo", svc.browser("bo"))
    n = d.ok("send", "--user", "bo", "--type", "message", "--title", "t",
             "--body", "é" * 3000)
    payload = svc.wait(1)[0][2]
    assert payload["id"] == n["id"] and 0 < len(payload["body"]) < 3000
    assert set(payload["body"]) == {"é"}


def test_gone_subscription_is_removed(pushd):
    d, svc = pushd()
    subscribe(d, "cy", svc.browser("cy"))
    svc.scripts["cy"] = [410]
    n = d.ok("send", "--user", "cy", "--type", "message", "--title", "t")
    svc.wait(1)
    (dl,) = wait_status(d, n["id"], "failed")
    assert "410" in dl["last_error"] and "removed" in dl["last_error"]
    assert d.ok("push", "list", "--user", "cy")["subscriptions"] == []
    # Nothing more goes to it.
    n2 = d.ok("send", "--user", "cy", "--type", "message", "--title", "t2")
    assert deliveries(d, n2["id"]) == []


def test_413_fails_for_good_with_the_reason(pushd):
    d, svc = pushd()
    subscribe(d, "di", svc.browser("di"))
    svc.scripts["di"] = [413]
    n = d.ok("send", "--user", "di", "--type", "message", "--title", "t")
    (dl,) = wait_status(d, n["id"], "failed")
    assert "413" in dl["last_error"] and dl["attempts"] == 1
    assert len(d.ok("push", "list", "--user", "di")["subscriptions"]) == 1


def test_429_and_500_are_retried_and_retry_after_is_honoured(pushd):
    d, svc = pushd()
    subscribe(d, "ed", svc.browser("ed"))
    svc.scripts["ed"] = [429, 500]
    n = d.ok("send", "--user", "ed", "--type", "message", "--title", "t")
    got = svc.wait(3, timeout=30)
    assert [g[4] for g in got] == [429, 500, 201]
    # Retry-After: 2 outweighs a 200 ms backoff.
    assert got[1][3] - got[0][3] >= 1.9
    (dl,) = wait_status(d, n["id"], "sent")
    assert dl["attempts"] == 3
    assert d.wait_log('msg="push attempt failed"')
    metrics = requests.get(d.url + "/metrics", timeout=10).text
    assert "notifyd_push_retried_total 2\n" in metrics
    assert "notifyd_push_sent_total 1\n" in metrics


def test_preferences_route_push(pushd):
    d, svc = pushd()
    subscribe(d, "fa", svc.browser("fa"))
    d.ok("prefs", "set", "--user", "fa", "push", "off", "--type", "message")
    off = d.ok("send", "--user", "fa", "--type", "message", "--title", "muted")
    (dl,) = wait_status(d, off["id"], "skipped")
    assert dl["last_error"] == "push turned off"
    # A critical type ignores the opt-out (payment_failed is critical).
    d.ok("prefs", "set", "--user", "fa", "push", "off")
    crit = d.ok("send", "--user", "fa", "--type", "payment_failed",
                "--data", "amount=5", "--data", "currency=EUR")
    got = svc.wait(1)
    assert got[0][2]["id"] == crit["id"]
    # Quiet hours around now (UTC, the user's zone) hold a push until they end.
    d.ok("prefs", "set", "--user", "fa", "push", "default", "--type", "message")
    d.ok("prefs", "set", "--user", "fa", "push", "on")
    now = time.gmtime()
    around = "%02d:00-%02d:00" % ((now.tm_hour + 23) % 24, (now.tm_hour + 2) % 24)
    d.ok("prefs", "set", "--user", "fa", "quiet", around)
    held = d.ok("send", "--user", "fa", "--type", "message", "--title", "later")
    (dl,) = wait_status(d, held["id"], "deferred")
    assert dl["last_error"] == "quiet hours" and dl["next_attempt_at"]
    # Being held is not an attempt: quiet hours never use up max_attempts.
    assert dl["attempts"] == 0
    urgent = d.ok("send", "--user", "fa", "--type", "message", "--title", "now",
                  "--priority", "urgent")
    got = svc.wait(2)
    assert got[1][2]["id"] == urgent["id"]


def test_subscriptions_are_checked_and_scoped(pushd, daemons, tmp):
    d, svc = pushd()
    sub = svc.browser("gi")
    bad = dict(sub, keys={"p256dh": sub["keys"]["p256dh"][:-4], "auth": sub["keys"]["auth"]})
    assert subscribe(d, "gi", bad).status_code == 422
    off_curve = bytearray(unb64u(sub["keys"]["p256dh"]))
    off_curve[40] ^= 1
    bad = dict(sub, keys={"p256dh": b64u(bytes(off_curve)), "auth": sub["keys"]["auth"]})
    r = subscribe(d, "gi", bad)
    assert r.status_code == 422 and "P-256" in r.json()["error"]["message"]
    assert subscribe(d, "gi", dict(sub, endpoint="ftp://x/y")).status_code == 422
    # A user's token manages its own subscriptions only.
    other = d.ok("token", "mallory")["token"]
    assert subscribe(d, "gi", sub, token=other).status_code == 403
    sid = subscribe(d, "gi", sub).json()["id"]
    h = {"Authorization": "Bearer " + other}
    r = requests.delete(d.url + "/api/v1/users/gi/push_subscriptions/%d" % sid, headers=h,
                        timeout=10)
    assert r.status_code == 403
    own = {"Authorization": "Bearer " + d.ok("token", "gi")["token"]}
    r = requests.get(d.url + "/api/v1/users/gi/push_subscriptions", headers=own, timeout=10)
    assert r.status_code == 200 and r.json()["subscriptions"][0]["id"] == sid
    r = requests.delete(d.url + "/api/v1/users/gi/push_subscriptions/%d" % sid, headers=own,
                        timeout=10)
    assert r.status_code == 200
    assert d.ctl("push", "rm", sid, "--user", "gi")[0] == 1
    # Without allow_private, a loopback endpoint is refused.
    strict = daemons(http=True, data_dir=os.path.join(tmp, "strict"),
                     socket_path=os.path.join(tmp, "strict.sock")).start()
    r = subscribe(strict, "gi", sub)
    assert r.status_code == 422 and "private" in r.json()["error"]["message"]


def test_long_endpoints_are_shown_cut(pushd):
    d, svc = pushd()
    sub = svc.browser("h" * 80)
    assert subscribe(d, "hu", sub).status_code == 201
    (s,) = d.ok("push", "list", "--user", "hu")["subscriptions"]
    assert s["endpoint"].endswith("...") and len(s["endpoint"]) < len(sub["endpoint"])


def test_a_scheduled_send_pushes_when_it_falls_due(pushd):
    d, svc = pushd()
    subscribe(d, "ivy", svc.browser("ivy"))
    at = time.time() + 1.5
    due = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + ".%03dZ" % (at % 1 * 1000)
    n = d.ok("send", "--user", "ivy", "--type", "message", "--title", "later", "--at", due)
    got = svc.wait(1)
    assert time.time() >= at - 0.05, "not before it is due"
    # Released with a new id: the push carries the one the inbox shows.
    released = d.ok("show", n["id"])
    assert got[0][2]["id"] == released["id"] and got[0][2]["title"] == "later"


def test_padded_keys_are_taken(pushd):
    d, svc = pushd()
    sub = svc.browser("jo")
    sub["keys"] = {k: v + "=" * (-len(v) % 4) for k, v in sub["keys"].items()}
    assert sub["keys"]["auth"].endswith("==")
    assert subscribe(d, "jo", sub).status_code == 201
    n = d.ok("send", "--user", "jo", "--type", "message", "--title", "padded")
    assert svc.wait(1)[0][2]["id"] == n["id"]


def test_a_user_holds_at_most_max_per_user_subscriptions(pushd):
    # Each subscription is an outbound call per notification: bounded.
    d, svc = pushd("[push]\nmax_per_user = 3\n")
    subs = [svc.browser("lim%d" % i) for i in range(4)]
    for s in subs[:3]:
        assert subscribe(d, "lim", s).status_code == 201
    r = subscribe(d, "lim", subs[3])
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "too_many_subscriptions"
    assert "remove one" in r.json()["error"]["message"]
    assert subscribe(d, "lim", subs[0]).status_code == 200     # a renewal still is
    assert len(d.ok("push", "list", "--user", "lim")["subscriptions"]) == 3
    first = d.ok("push", "list", "--user", "lim")["subscriptions"][0]["id"]
    d.ok("push", "rm", first, "--user", "lim")
    assert subscribe(d, "lim", subs[3]).status_code == 201
    # Many at once: exactly max get in, on either store.
    token = d.ok("token", "race")["token"]
    many = [svc.browser("race%d" % i) for i in range(12)]
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        codes = sorted(pool.map(lambda s: subscribe(d, "race", s, token).status_code, many))
    assert codes == [201] * 3 + [409] * 9, codes
    assert len(d.ok("push", "list", "--user", "race")["subscriptions"]) == 3
