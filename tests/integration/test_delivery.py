"""Delivery: templates, preferences, quiet hours, the email outbox, scheduled sends.

Email is asserted on what actually arrives: in notifyd's own sink, or in a
fake relay that can refuse, fail for a while, or hang mid-transaction.
"""
import datetime
import email
import email.policy
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

import asyncio

import pytest
import requests

import websockets

from conftest import NOTIFYCTL, WRAPPER


def conf(tmp, text, name="d.conf"):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return ["--config", path]


def iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")


def mail_wait(d, query, timeout="20s"):
    """The message matching query once it is in the sink (notifyctl mail wait)."""
    return d.ok("mail", "wait", "--query", query, "--timeout", timeout)


def raw_mail(d, mid):
    r = requests.get(d.url + "/api/v1/message/%s/raw" % mid, timeout=10)
    assert r.status_code == 200
    return email.message_from_bytes(r.content, policy=email.policy.default)


def deliveries(d, nid):
    return {x["channel"]: x for x in d.ok("show", nid, "--deliveries")["deliveries"]}


def wait_delivery(d, nid, channel, status, timeout=20):
    """Poll show until the channel's delivery reaches status (the outbox has no event to await)."""
    deadline = time.monotonic() + timeout
    while True:
        got = deliveries(d, nid).get(channel)
        if got and got["status"] == status:
            return got
        assert time.monotonic() < deadline, "delivery %s: %r, want %s" % (channel, got, status)
        time.sleep(0.05)


@pytest.fixture
def dd(daemons, tmp):
    """A daemon with its sink, HTTP, and a user with an address."""
    d = daemons(http=True, smtp=True).start()
    d.ok("user", "set", "ann", "--email", "ann@example.com", "--name", "Ann Müller")
    return d


class FakeRelay:
    """An SMTP server whose answers a test scripts, one behaviour per transaction.

    ok: accept; temp: 451 at RCPT; perm: 550 at RCPT; hang: take DATA, then
    never answer (until release()).
    """

    def __init__(self, script=(), port=0):
        self.script = list(script)
        self.messages = []          # (bytes, acknowledged)
        self.transactions = 0
        self.cond = threading.Condition()
        self.released = threading.Event()
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", port))
        self.srv.listen(16)
        self.port = self.srv.getsockname()[1]
        self.conns = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self):
        return "smtp://127.0.0.1:%d" % self.port

    def _accept(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        f = c.makefile("rb")
        try:
            c.sendall(b"220 fake ESMTP\r\n")
            behaviour = "ok"
            while True:
                line = f.readline()
                if not line:
                    return
                cmd = line[:4].upper()
                if cmd in (b"EHLO", b"HELO"):
                    c.sendall(b"250-fake\r\n250 PIPELINING\r\n")
                elif cmd == b"MAIL":
                    with self.cond:
                        self.transactions += 1
                        behaviour = self.script.pop(0) if self.script else "ok"
                        self.cond.notify_all()
                    c.sendall(b"250 ok\r\n")
                elif cmd == b"RCPT":
                    c.sendall({"temp": b"451 4.3.0 try later\r\n",
                               "perm": b"550 5.1.1 no such user\r\n"}.get(behaviour, b"250 ok\r\n"))
                elif cmd == b"DATA":
                    c.sendall(b"354 go\r\n")
                    data = b""
                    while True:
                        l = f.readline()
                        if not l or l == b".\r\n":
                            break
                        data += l
                    acked = behaviour != "hang"
                    with self.cond:
                        self.messages.append((data, acked))
                        self.cond.notify_all()
                    if not acked:
                        self.released.wait()
                        return
                    c.sendall(b"250 2.0.0 queued\r\n")
                elif cmd == b"QUIT":
                    c.sendall(b"221 bye\r\n")
                    return
                else:
                    c.sendall(b"250 ok\r\n")
        except OSError:
            pass
        finally:
            f.close()
            c.close()

    def wait(self, pred, timeout=20):
        with self.cond:
            assert self.cond.wait_for(lambda: pred(self), timeout), (
                self.transactions, len(self.messages))

    def close(self):
        self.released.set()
        self.srv.close()
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@pytest.fixture
def relays():
    made = []

    def make(script=()):
        r = FakeRelay(script)
        made.append(r)
        return r
    yield make
    for r in made:
        r.close()


# Templates


def test_send_renders_the_type_template_and_explicit_fields_win(dd):
    n = dd.ok("send", "--user", "ann", "--type", "order_shipped", "--data", "order_id=A-7",
              "--data", "carrier=DHL")
    assert n["title"] == "Order A-7 has shipped"
    assert n["body"] == "Your order A-7 is on its way with DHL."
    n = dd.ok("send", "--user", "ann", "--type", "order_shipped", "--data", "order_id=B",
              "--title", "Mine")
    assert n["title"] == "Mine" and n["body"].startswith("Your order B")
    # An unknown type uses the generic message template; a missing variable renders empty.
    n = dd.ok("send", "--user", "ann", "--type", "custom_thing", "--data", "title=Hi")
    assert n["title"] == "Hi" and n["body"] is None


def test_template_list_and_render(dd):
    types = {t["type"]: t for t in dd.ok("template", "list")["templates"]}
    assert set(types) >= {"match_created", "order_created", "order_shipped", "order_delivered",
                          "payment_succeeded", "payment_failed", "refund_issued",
                          "payout_completed", "message"}
    assert types["payment_failed"]["critical"] is True
    assert types["match_created"]["channels"] == ["in_app"]
    r = dd.ok("template", "render", "order_created", "--user", "ann", "--data", "order_id=X1",
              "--data", 'items:=[{"name":"<Shoe>","quantity":2,"price":"9.50"}]',
              "--data", "total=19.00", "--data", "currency=EUR")
    assert r["title"] == "Order X1 received"
    assert r["subject"] == "Order X1 received"
    assert "- 2 x <Shoe>  9.50" in r["text"] and "Hi Ann Müller," in r["text"]
    assert "2 &times; &lt;Shoe&gt;" in r["html"] and "<!DOCTYPE html>" in r["html"]
    # The human form shows every part.
    out = dd.ctl("template", "render", "order_shipped", "--data", "order_id=9")[1]
    assert "Order 9 has shipped" in json.dumps(out)


def test_templates_dir_overrides_reload_and_broken_ones(daemons, tmp):
    tdir = os.path.join(tmp, "tpl")
    os.mkdir(tdir)
    with open(os.path.join(tdir, "order_shipped.title"), "w") as f:
        f.write("Shipped {{order_id}}!\n")
    args = conf(tmp, "[server]\ntemplates_dir = %s\n" % tdir)
    d = daemons(args=args).start()
    assert d.ok("send", "--user", "u", "--type", "order_shipped",
                "--data", "order_id=1")["title"] == "Shipped 1!"

    # SIGHUP reloads; a broken file keeps the old set and says why.
    with open(os.path.join(tdir, "order_shipped.title"), "w") as f:
        f.write("Now {{order_id}}\n")
    d.proc.send_signal(signal.SIGHUP)
    d.wait_log('msg="templates reloaded"')
    assert d.ok("send", "--user", "u", "--type", "order_shipped",
                "--data", "order_id=2")["title"] == "Now 2"
    with open(os.path.join(tdir, "order_shipped.body"), "w") as f:
        f.write("line one\n{{#items}}\n")
    d.proc.send_signal(signal.SIGHUP)
    line = d.wait_log('msg="templates not reloaded, keeping the old set"')
    assert "order_shipped.body:2: section 'items' is never closed" in line
    assert d.ok("send", "--user", "u", "--type", "order_shipped",
                "--data", "order_id=3")["title"] == "Now 3"
    assert d.stop() == 0

    # At start, the same mistake stops notifyd with the file and line.
    bad = daemons(args=args, socket_path=os.path.join(tmp, "b.sock"),
                  data_dir=os.path.join(tmp, "bdata")).start(wait=False)
    bad.wait_log("order_shipped.body:2: section 'items' is never closed", 30)
    assert bad.proc.wait(30) != 0


# Preferences


def test_preferences_rest_put_patch_and_tokens(dd):
    key = dd.ok("key", "create", "admin")["key"]
    admin = {"Authorization": "Bearer " + key}
    url = dd.url + "/api/v1/users/ann/preferences"
    r = requests.get(url, headers=admin, timeout=10)
    assert r.status_code == 200
    assert r.json() == {"user": "ann", "channels": {}, "types": {}, "quiet_hours": None,
                        "digest": "off", "email_if_unread": None}
    doc = {"channels": {"email": False}, "types": {"order_shipped": {"email": True}},
           "quiet_hours": {"start": "22:00", "end": "07:00", "days": ["mon", "tue"]},
           "digest": "daily", "email_if_unread": "10m"}
    r = requests.put(url, json=doc, headers=admin, timeout=10)
    assert r.status_code == 200, r.text
    assert {k: v for k, v in r.json().items() if k != "user"} == doc
    # PATCH merges; null removes.
    r = requests.patch(url, json={"types": {"order_shipped": None}, "digest": "off",
                                  "quiet_hours": None}, headers=admin, timeout=10)
    assert r.status_code == 200
    got = r.json()
    assert got["types"] == {} and got["channels"] == {"email": False}
    assert got["quiet_hours"] is None and got["email_if_unread"] == "10m"
    # PUT of what GET gave is accepted (it names the user).
    assert requests.put(url, json=requests.get(url, headers=admin).json(), headers=admin,
                        timeout=10).status_code == 200
    # A user token changes its own, not another's.
    tok = dd.ok("token", "ann")["token"]
    mine = {"Authorization": "Bearer " + tok}
    r = requests.patch(url, json={"digest": "weekly"}, headers=mine, timeout=10)
    assert r.status_code == 200 and r.json()["digest"] == "weekly"
    r = requests.get(dd.url + "/api/v1/users/bob/preferences", headers=mine, timeout=10)
    assert r.status_code == 403
    # Invalid values are named.
    for body, needle in [({"digest": "hourly"}, "'digest'"),
                         ({"quiet_hours": {"start": "25:00", "end": "07:00"}}, "'quiet_hours'"),
                         ({"channels": {"sms": True}}, "'channels.sms'"),
                         ({"colour": 1}, "'colour'")]:
        r = requests.patch(url, json=body, headers=admin, timeout=10)
        assert r.status_code == 422 and needle in r.json()["error"]["message"], r.text
    r = requests.patch(url, data="{bad", headers=dict(admin, **{"Content-Type":
                       "application/json"}), timeout=10)
    assert r.status_code == 400
    assert requests.get(url.replace("ann", "nobody"), headers=admin).status_code == 404


def test_preferences_cli(dd):
    assert dd.ok("prefs", "show", "--user", "ann")["digest"] == "off"
    dd.ok("prefs", "set", "--user", "ann", "--type", "order_shipped", "email", "off")
    dd.ok("prefs", "set", "--user", "ann", "quiet", "22:00-07:00", "--days", "mon-fri")
    dd.ok("prefs", "set", "--user", "ann", "email-if-unread", "10m")
    p = dd.ok("prefs", "get", "--user", "ann")
    assert p["types"] == {"order_shipped": {"email": False}}
    assert p["quiet_hours"] == {"start": "22:00", "end": "07:00",
                                "days": ["mon", "tue", "wed", "thu", "fri"]}
    assert p["email_if_unread"] == "10m"
    for args, needle in [(["quiet", "7pm-8am"], "HH:MM-HH:MM"),
                         (["quiet", "22:00-07:00", "--days", "weekdays"], "'days'"),
                         (["digest", "hourly"], "'digest'"),
                         (["email", "maybe"], "on, off"),
                         (["sms", "on"], "'setting'")]:
        rc, _, err = dd.ctl("prefs", "set", "--user", "ann", *args)
        assert rc == 1 and needle in err, (args, err)


# Email


def test_email_arrives_in_the_sink_as_proper_mime(dd):
    n = dd.ok("send", "--user", "ann", "--type", "order_shipped", "--data", "order_id=Ä-1",
              "--data", "carrier=<DHL>", "--url", "https://shop.example/o/1")
    m = mail_wait(dd, "to:ann@example.com")
    msg = raw_mail(dd, m["ID"])
    assert msg["Subject"] == "Order Ä-1 has shipped"
    assert msg["To"].addresses[0].addr_spec == "ann@example.com"
    assert re.fullmatch(r"<notifyd\.\d+@localhost>", msg["Message-ID"])
    assert msg["Date"] is not None
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text.get_content_charset() == "utf-8" and html.get_content_charset() == "utf-8"
    assert "Your order Ä-1 is on its way with <DHL>." in text.get_content()
    assert "with &lt;DHL&gt;" in html.get_content() and "https://shop.example/o/1" in html.get_content()
    dl = wait_delivery(dd, n["id"], "email", "sent")
    assert dl["attempts"] == 1 and dl["sent_at"]
    assert deliveries(dd, n["id"])["in_app"]["status"] == "sent"
    # The REST form of the same.
    key = dd.ok("key", "create", "k")["key"]
    r = requests.get(dd.url + "/api/v1/users/ann/notifications/%d?deliveries=true" % n["id"],
                     headers={"Authorization": "Bearer " + key}, timeout=10)
    assert {x["channel"]: x["status"] for x in r.json()["deliveries"]} == {
        "in_app": "sent", "email": "sent"}


def test_opt_outs_no_address_and_critical(dd):
    dd.ok("prefs", "set", "--user", "ann", "email", "off")
    n1 = dd.ok("send", "--user", "ann", "--type", "order_shipped", "--data", "order_id=1")
    # Critical types ignore the opt-out.
    n2 = dd.ok("send", "--user", "ann", "--type", "payment_failed", "--data", "amount=5",
               "--data", "currency=EUR")
    mail_wait(dd, "subject:\"payment of 5 eur failed\"")
    assert deliveries(dd, n1["id"])["email"]["status"] == "skipped"
    assert deliveries(dd, n1["id"])["email"]["last_error"] == "email turned off"
    wait_delivery(dd, n2["id"], "email", "sent")
    # No address: skipped, and said why.
    n3 = dd.ok("send", "--user", "noaddr", "--type", "message", "--title", "x")
    d3 = deliveries(dd, n3["id"])
    assert d3["email"]["status"] == "skipped" and d3["email"]["last_error"] == "no email address"
    # In-app off: stored archived, out of the inbox, not pushed.
    dd.ok("prefs", "set", "--user", "ann", "--type", "refund_issued", "in_app", "off")
    n4 = dd.ok("send", "--user", "ann", "--type", "refund_issued", "--data", "amount=1")
    assert n4["archived_at"] is not None
    inbox = [x["id"] for x in dd.ok("list", "--user", "ann")["notifications"]]
    assert n4["id"] not in inbox and n1["id"] in inbox
    assert deliveries(dd, n4["id"])["in_app"]["status"] == "skipped"
    # The match_created type is in-app only by default.
    n5 = dd.ok("send", "--user", "ann", "--type", "match_created", "--data", "name=Bo")
    assert deliveries(dd, n5["id"])["email"]["status"] == "skipped"
    assert len(dd.ok("mail", "list")["messages"]) == 1


def test_one_send_to_many_routes_each_by_their_own_preferences(dd):
    # The recipients' preferences are read together (one read transaction):
    # each notification still gets its own recipient's routing.
    dd.ok("user", "set", "bea", "--email", "bea@example.com")
    dd.ok("prefs", "set", "--user", "bea", "email", "off")
    dd.ok("user", "set", "cy", "--email", "cy@example.com")
    dd.ok("prefs", "set", "--user", "cy", "--type", "message", "in_app", "off")
    r = dd.ok("send", "--users", "noaddr2", "--users", "bea", "--users", "ann",
              "--users", "cy", "--type", "message", "--title", "to all")
    by = {n["user"]: n for n in r["notifications"]}
    assert deliveries(dd, by["noaddr2"]["id"])["email"]["last_error"] == "no email address"
    assert deliveries(dd, by["bea"]["id"])["email"]["last_error"] == "email turned off"
    wait_delivery(dd, by["ann"]["id"], "email", "sent")
    assert by["cy"]["archived_at"] is not None and by["ann"]["archived_at"] is None
    assert deliveries(dd, by["cy"]["id"])["in_app"]["status"] == "skipped"


def test_a_send_to_many_stores_what_one_by_one_would(daemons, tmp):
    # PostgreSQL writes a send to many without keys as a few statements for
    # all (create_many_w), and one with keys recipient by recipient: the
    # same send both ways stores the same rows, counts and events.
    cfg = os.path.join(tmp, "hooks.conf")
    with open(cfg, "w") as f:
        f.write("[webhook]\nallow_private = true\n")
    dd = daemons(http=True, smtp=True, args=["--config", cfg]).start()
    dd.ok("user", "set", "ann", "--email", "ann@example.com")
    now = datetime.datetime.now(datetime.timezone.utc)
    quiet = "%s-%s" % ((now - datetime.timedelta(hours=1)).strftime("%H:%M"),
                       (now + datetime.timedelta(hours=1)).strftime("%H:%M"))
    dd.ok("user", "set", "bea", "--email", "bea@example.com")
    dd.ok("prefs", "set", "--user", "bea", "email", "off")
    dd.ok("user", "set", "cy", "--email", "cy@example.com")
    dd.ok("prefs", "set", "--user", "cy", "--type", "message", "in_app", "off")
    dd.ok("user", "set", "dee", "--email", "dee@example.com", "--tz", "UTC")
    dd.ok("prefs", "set", "--user", "dee", "quiet", quiet, "--days", "all")
    dd.ok("user", "set", "eve \"q\\", "--email", "eve@example.com")
    dd.ok("prefs", "set", "--user", "eve \"q\\", "digest", "daily")
    dd.ok("webhook", "add", "http://127.0.0.1:9/hook", "--users", "ann,cy")
    users = ["noaddr", "bea", "ann", "cy", "dee", "eve \"q\\", "fresh"]
    watcher = dd.connect()
    watcher.call("watch")
    sends = []
    for key in (None, "k"):
        args = [a for u in users for a in ("--users", u)]
        r = dd.ok("send", *args, "--type", "message", "--title", "to all", "--data", "n=1",
                  *(["--key", key] if key else []))
        sends.append({n["user"]: n for n in r["notifications"]})
    many, each = sends      # without keys (all at once), with (one by one)
    for u in users:
        a, b = many[u], each[u]
        assert a["id"] != b["id"] and (a["archived_at"] is None) == (b["archived_at"] is None)
        assert {k: v for k, v in a.items() if k not in ("id", "created_at", "archived_at")} == \
            {k: v for k, v in b.items() if k not in ("id", "created_at", "archived_at")}
        da, db = deliveries(dd, a["id"]), deliveries(dd, b["id"])
        assert sorted(da) == sorted(db), u
        # As routing left them; what the worker sends (ann's email, the
        # webhooks) moves on, each at its own pace, and is awaited below.
        settled = ("skipped", "deferred", "digest")
        for ch in ("in_app", "email"):
            if ch in da and (ch == "in_app" or da[ch]["status"] in settled or
                             db[ch]["status"] in settled):
                assert (da[ch]["status"], da[ch]["last_error"]) == \
                    (db[ch]["status"], db[ch]["last_error"]), (u, ch, da[ch], db[ch])
    assert many["cy"]["archived_at"] is not None
    assert sorted(deliveries(dd, many["ann"]["id"])) == ["email", "in_app", "webhook"]
    assert deliveries(dd, many["cy"]["id"])["in_app"]["status"] == "skipped"
    assert "webhook" in deliveries(dd, many["cy"]["id"])
    assert "webhook" not in deliveries(dd, many["bea"]["id"])
    assert deliveries(dd, many["dee"]["id"])["email"]["status"] == "deferred"
    assert deliveries(dd, many["eve \"q\\"]["id"])["email"]["status"] == "digest"
    wait_delivery(dd, each["ann"]["id"], "email", "sent")
    wait_delivery(dd, many["ann"]["id"], "email", "sent")
    for u in users:
        assert dd.ok("count", "--user", u)["unread_count"] == (0 if u == "cy" else 2), u
    told = set()
    want = {n["id"] for s in sends for n in s.values() if n["archived_at"] is None}
    while told != want:
        ev = watcher.read()
        if ev.get("type") == "notification":
            assert ev["data"]["id"] in want, ev
            told.add(ev["data"]["id"])
    watcher.close()


def test_quiet_hours_defer_and_urgent_goes_through(dd):
    # Quiet from an hour ago to an hour ahead, in the user's zone.
    dd.ok("user", "set", "ann", "--tz", "UTC")
    now = datetime.datetime.now(datetime.timezone.utc)
    start = (now - datetime.timedelta(hours=1)).strftime("%H:%M")
    end = (now + datetime.timedelta(hours=1)).strftime("%H:%M")
    dd.ok("prefs", "set", "--user", "ann", "quiet", "%s-%s" % (start, end), "--days", "all")
    n = dd.ok("send", "--user", "ann", "--type", "message", "--title", "held")
    dl = deliveries(dd, n["id"])["email"]
    assert dl["status"] == "deferred" and dl["last_error"] == "quiet hours"
    want = (now + datetime.timedelta(hours=1)).replace(second=0, microsecond=0)
    assert dl["next_attempt_at"].startswith(want.strftime("%Y-%m-%dT%H:%M:00"))
    u = dd.ok("send", "--user", "ann", "--type", "message", "--title", "urgent one",
              "--priority", "urgent")
    mail_wait(dd, "subject:\"urgent one\"")
    wait_delivery(dd, u["id"], "email", "sent")
    assert deliveries(dd, n["id"])["email"]["status"] == "deferred"
    assert [m["Subject"] for m in dd.ok("mail", "list")["messages"]] == ["urgent one"]


def test_digest_mode_parks_email(dd):
    dd.ok("prefs", "set", "--user", "ann", "digest", "daily")
    n = dd.ok("send", "--user", "ann", "--type", "message", "--title", "parked")
    assert deliveries(dd, n["id"])["email"]["status"] == "digest"


def test_email_if_unread(daemons, tmp):
    d = daemons(http=True, smtp=True).start()
    d.ok("user", "set", "ann", "--email", "ann@example.com")
    d.ok("prefs", "set", "--user", "ann", "email-if-unread", "1s")
    read = d.ok("send", "--user", "ann", "--type", "message", "--title", "read in time")
    unread = d.ok("send", "--user", "ann", "--type", "message", "--title", "left unread")
    d.ok("read", "--user", "ann", read["id"])
    mail_wait(d, "subject:\"left unread\"")
    dl = wait_delivery(d, read["id"], "email", "cancelled")
    assert "read" in dl["last_error"]
    wait_delivery(d, unread["id"], "email", "sent")
    assert [m["Subject"] for m in d.ok("mail", "list")["messages"]] == ["left unread"]


def test_retries_with_backoff_then_success(daemons, tmp, relays):
    relay = relays(["temp", "temp"])
    d = daemons(args=conf(tmp, "[mailer]\nrelay = %s\nretry_base = 50ms\n" % relay.url)).start()
    d.ok("user", "set", "ann", "--email", "ann@example.com")
    n = d.ok("send", "--user", "ann", "--type", "message", "--title", "third time")
    relay.wait(lambda r: len(r.messages) == 1)
    dl = wait_delivery(d, n["id"], "email", "sent")
    assert dl["attempts"] == 3 and relay.transactions == 3
    assert "451" in dl["last_error"]
    assert d.wait_count('msg="email attempt failed"', 2) == 2


def test_permanent_refusal_and_attempts_used_up(daemons, tmp, relays):
    relay = relays(["perm", "temp", "temp", "temp"])
    d = daemons(args=conf(tmp, "[mailer]\nrelay = %s\nretry_base = 20ms\nmax_attempts = 3\n"
                          % relay.url)).start()
    d.ok("user", "set", "ann", "--email", "ann@example.com")
    n1 = d.ok("send", "--user", "ann", "--type", "message", "--title", "refused")
    dl = wait_delivery(d, n1["id"], "email", "failed")
    assert dl["attempts"] == 1 and "550" in dl["last_error"]
    n2 = d.ok("send", "--user", "ann", "--type", "message", "--title", "gives up")
    dl = wait_delivery(d, n2["id"], "email", "failed")
    assert dl["attempts"] == 3 and "451" in dl["last_error"]
    assert relay.messages == []


def test_relay_down_does_not_slow_sends(daemons, tmp):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()   # nothing listens there
    d = daemons(args=conf(tmp, "[mailer]\nrelay = smtp://127.0.0.1:%d\nretry_base = 1h\n"
                          % port)).start()
    d.ok("user", "set", "ann", "--email", "ann@example.com")
    c = d.connect()
    t0 = time.monotonic()
    for i in range(50):
        r = c.call("send", {"user": "ann", "type": "message", "title": "t%d" % i}, id=i)
        assert r["ok"], r
    elapsed = time.monotonic() - t0
    c.close()
    d.wait_log('msg="email attempt failed"')
    assert elapsed < 5, elapsed
    assert d.ok("count", "--user", "ann")["unread_count"] == 50


def test_kill_during_delivery_resends_with_the_same_message_id(daemons, tmp, relays):
    relay = relays(["hang"])
    args = conf(tmp, "[mailer]\nrelay = %s\n" % relay.url)
    d = daemons(args=args).start()
    d.ok("user", "set", "ann", "--email", "ann@example.com")
    n = d.ok("send", "--user", "ann", "--type", "message", "--title", "once at least")
    relay.wait(lambda r: len(r.messages) == 1)   # the relay has it, notifyd not the 250
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait(30)
    relay.released.set()
    d.start()
    relay.wait(lambda r: len(r.messages) == 2)
    dl = wait_delivery(d, n["id"], "email", "sent")
    assert dl["attempts"] == 2
    first, second = (email.message_from_bytes(m, policy=email.policy.default)
                     for m, _ in relay.messages)
    assert first["Message-ID"] == second["Message-ID"]
    assert re.fullmatch(r"<notifyd\.\d+@localhost>", first["Message-ID"])
    assert [a for _, a in relay.messages] == [False, True]


# Scheduled sends


def test_scheduled_send_is_invisible_until_due_then_pushed_and_emailed(dd):
    tok = dd.ok("token", "ann")["token"]
    due = time.time() + 1.5
    n = dd.ok("send", "--user", "ann", "--type", "message", "--title", "later on",
              "--at", iso(due))
    assert n["deliver_at"]
    assert dd.ok("list", "--user", "ann")["notifications"] == []
    assert dd.ok("count", "--user", "ann")["unread_count"] == 0
    key = dd.ok("key", "create", "k")["key"]
    r = requests.get(dd.url + "/api/v1/users/ann/notifications/%d" % n["id"],
                     headers={"Authorization": "Bearer " + tok})
    assert r.status_code == 404
    assert deliveries(dd, n["id"])["in_app"]["status"] == "pending"

    async def stream():
        async with websockets.connect("ws://127.0.0.1:%d/ws?token=%s" % (dd.port, tok)) as ws:
            hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert hello["type"] == "connected" and hello["data"]["unread_count"] == 0
            while True:
                f = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if f["type"] == "notification":
                    return f["data"]
    # When due: pushed, listed, emailed.
    got = asyncio.run(stream())
    assert time.time() >= due - 0.05
    # Released with a new id, as if sent now; scheduled_id is the one the sender got.
    assert got["id"] > n["id"] and got["scheduled_id"] == n["id"] and got["title"] == "later on"
    assert [x["id"] for x in dd.ok("list", "--user", "ann")["notifications"]] == [got["id"]]
    mail_wait(dd, "subject:\"later on\"")
    assert deliveries(dd, got["id"])["in_app"]["status"] == "sent"
    # Too late to cancel now.
    rc, _, err = dd.ctl("cancel", n["id"])
    assert rc == 1 and "delivered as notification %d" % got["id"] in err
    r = requests.post(dd.url + "/api/v1/notifications/%d/cancel" % n["id"],
                      headers={"Authorization": "Bearer " + key})
    assert r.status_code == 409 and r.json()["error"]["code"] == "already_delivered"


def test_a_released_notification_answers_to_the_id_its_send_returned(dd):
    """The sender kept the id the send returned; after the release it still
    reaches the notification, now under its new id, and only for its user."""
    tok = dd.ok("token", "ann")["token"]
    hdr = {"Authorization": "Bearer " + tok}
    base = dd.url + "/api/v1/users/ann/notifications/"

    async def released():
        async with websockets.connect("ws://127.0.0.1:%d/ws?token=%s" % (dd.port, tok)) as ws:
            await asyncio.wait_for(ws.recv(), 10)        # connected
            n = dd.ok("send", "--user", "ann", "--type", "message", "--title", "kept id",
                      "--at", iso(time.time() + 1))
            while True:
                f = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if f["type"] == "notification":
                    return n["id"], f["data"]["id"]
    old, new = asyncio.run(released())
    assert new != old
    r = requests.get(base + str(old), headers=hdr)
    assert r.status_code == 200 and r.json()["id"] == new and r.json()["scheduled_id"] == old
    shown = dd.ok("show", old, "--deliveries")
    assert shown["id"] == new and shown["deliveries"][0]["status"] == "sent"
    # Marks act on it and report the id it has now.
    r = requests.post(base + "%d/read" % old, headers=hdr)
    assert r.status_code == 200 and r.json()["ids"] == [new] and r.json()["unread_count"] == 0
    assert dd.ok("show", new)["read_at"] is not None
    assert dd.ok("unread", "--user", "ann", old)["ids"] == [new]
    # Not another user's: bob's token finds nothing, and learns no new id.
    bob = {"Authorization": "Bearer " + dd.ok("token", "bob")["token"]}
    r = requests.get(dd.url + "/api/v1/users/bob/notifications/%d" % old, headers=bob)
    assert r.status_code == 404 and str(new) not in r.text
    r = requests.delete(dd.url + "/api/v1/users/bob/notifications/%d" % old, headers=bob)
    assert r.status_code == 404 and str(new) not in r.text
    r = requests.delete(base + str(old), headers=hdr)
    assert r.status_code == 200 and r.json() == {"id": new, "deleted": True}
    assert requests.get(base + str(new), headers=hdr).status_code == 404
    assert requests.get(base + str(old), headers=hdr).status_code == 404


def test_cancel_before_due(dd):
    key = dd.ok("key", "create", "k")["key"]
    hdr = {"Authorization": "Bearer " + key}
    a = dd.ok("send", "--user", "ann", "--type", "message", "--title", "never A",
              "--at", iso(time.time() + 2))
    r = requests.post(dd.url + "/api/v1/notifications", headers=hdr, timeout=10, json={
        "user": "ann", "type": "message", "title": "never B",
        "deliver_at": iso(time.time() + 2)})
    assert r.status_code == 201, r.text
    b = r.json()
    assert dd.ok("cancel", a["id"])["cancelled"] is True
    r = requests.delete(dd.url + "/api/v1/users/ann/notifications/%d" % b["id"], headers=hdr)
    assert r.status_code == 200 and r.json()["cancelled"] is True
    assert dd.ctl("show", a["id"])[0] == 1
    rc, _, err = dd.ctl("cancel", a["id"])
    assert rc == 1 and "no notification" in err
    # Past the due time nothing shows up and nothing is mailed.
    c = dd.ok("send", "--user", "ann", "--type", "message", "--title", "marker",
              "--at", iso(time.time() + 2.5))
    mail_wait(dd, "subject:marker")
    assert [m["Subject"] for m in dd.ok("mail", "list")["messages"]] == ["marker"]
    assert [x["scheduled_id"] for x in dd.ok("list", "--user", "ann")["notifications"]] == [c["id"]]
    r = requests.post(dd.url + "/api/v1/notifications", headers=hdr, json={
        "user": "ann", "type": "message", "deliver_at": "tomorrow"})
    assert r.status_code == 422 and "'deliver_at'" in r.json()["error"]["message"]


def test_a_send_at_a_duration_from_now(dd):
    """--at +15m and deliver_at "+1s": counted from when notifyd takes the
    send, then as any scheduled send."""
    def when(n):
        return datetime.datetime.fromisoformat(n["deliver_at"]).timestamp()
    before = time.time()
    n = dd.ok("send", "--user", "ann", "--type", "message", "--title", "in an hour and a half",
              "--at", "+1h30m")
    after = time.time()
    assert before + 5400 - 0.002 <= when(n) <= after + 5400 + 0.002, n
    assert dd.ok("count", "--user", "ann")["unread_count"] == 0
    assert dd.ok("cancel", n["id"])["cancelled"] is True
    # For a person, the send says it is scheduled, and when for.
    p = subprocess.run([NOTIFYCTL, "-s", dd.socket, "send", "--user", "ann", "--type", "message",
                        "--at", "+15m"], capture_output=True, text=True, timeout=30)
    m = re.fullmatch(r"notification (\d+) for ann, scheduled for (\S+Z)\n", p.stdout)
    assert p.returncode == 0 and m, p.stdout
    assert 899 <= datetime.datetime.fromisoformat(m.group(2)).timestamp() - time.time() <= 900
    assert dd.ok("cancel", m.group(1))["cancelled"] is True
    key = dd.ok("key", "create", "k")["key"]
    hdr = {"Authorization": "Bearer " + key}
    before = time.time()
    r = requests.post(dd.url + "/api/v1/notifications", headers=hdr, timeout=10, json={
        "user": "ann", "type": "message", "title": "in a second", "deliver_at": "+1s"})
    after = time.time()
    assert r.status_code == 201, r.text
    n = r.json()
    assert before + 1 - 0.002 <= when(n) <= after + 1 + 0.002, n
    mail_wait(dd, "subject:\"in a second\"")
    assert time.time() >= when(n)
    [got] = dd.ok("list", "--user", "ann")["notifications"]
    assert got["scheduled_id"] == n["id"] and got["title"] == "in a second"
    # Not a time: refused by notifyctl before it asks, and by the API.
    for bad in ("+soon", "+15", "15m", "+-15m", "+3661d"):
        r = requests.post(dd.url + "/api/v1/notifications", headers=hdr, timeout=10, json={
            "user": "ann", "type": "message", "deliver_at": bad})
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["error"]["message"].startswith("'deliver_at' must be an RFC 3339 time or "
                                                      "+DURATION"), (bad, r.text)
    for bad in ("+soon", "+15", "15m"):
        rc, _, err = dd.ctl("send", "--user", "ann", "--type", "message", "--at", bad)
        assert rc == 2 and "nor +DURATION such as +15m" in err, (bad, err)
    assert len(dd.ok("list", "--user", "ann")["notifications"]) == 1


def test_scheduled_sends_survive_a_restart(daemons, tmp):
    d = daemons(http=True, smtp=True).start()
    d.ok("user", "set", "ann", "--email", "ann@example.com")
    n = d.ok("send", "--user", "ann", "--type", "message", "--title", "after restart",
             "--at", iso(time.time() + 2))
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait(30)
    d.start()
    mail_wait(d, "subject:\"after restart\"")
    [got] = d.ok("list", "--user", "ann")["notifications"]
    assert got["scheduled_id"] == n["id"]
    assert deliveries(d, got["id"])["in_app"]["status"] == "sent"


def test_relay_with_starttls_auth_and_list_unsubscribe(daemons, tmp):
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj",
                    "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1", "-days", "1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    # Our own sink as the relay, insisting on TLS and AUTH; the mailer insists on STARTTLS.
    d = daemons(http=True, smtp=True, args=conf(tmp, (
        "[smtp]\ntls_cert = %s\ntls_key = %s\nauth = required\n"
        "[mailer]\nstarttls = required\nca_file = %s\nusername = app\npassword = secret\n"
        "unsubscribe_url = https://app.example/prefs?u={{user.id}}\n") % (cert, key, cert))).start()
    d.ok("user", "set", "ann", "--email", "ann@example.com")
    d.ok("send", "--user", "ann", "--type", "message", "--title", "over tls")
    m = mail_wait(d, "subject:\"over tls\"")
    msg = raw_mail(d, m["ID"])
    assert "ESMTPSA" in msg["Received"]
    assert msg["List-Unsubscribe"] == "<https://app.example/prefs?u=ann>"
    assert "https://app.example/prefs?u=ann" in msg.get_body(("html",)).get_content()


def test_starttls_required_but_not_offered_fails(daemons, tmp):
    d = daemons(http=True, smtp=True, args=conf(
        tmp, "[mailer]\nstarttls = required\nmax_attempts = 1\n")).start()
    d.ok("user", "set", "ann", "--email", "ann@example.com")
    n = d.ok("send", "--user", "ann", "--type", "message", "--title", "plain")
    dl = wait_delivery(d, n["id"], "email", "failed")
    assert dl["attempts"] == 1 and dl["last_error"]
    assert d.ok("mail", "list")["messages"] == []


def test_replay_since_sees_a_scheduled_one_released_later(dd):
    """A scheduled notification falls due after later ones were sent: since=ID still gets it."""
    tok = dd.ok("token", "ann")["token"]
    sched = dd.ok("send", "--user", "ann", "--type", "message", "--title", "scheduled",
                  "--at", iso(time.time() + 1.2))
    later = dd.ok("send", "--user", "ann", "--type", "message", "--title", "sent after it")
    assert later["id"] > sched["id"]
    mail_wait(dd, "subject:scheduled")
    deadline = time.monotonic() + 10
    while True:     # the release and its email are separate deliveries
        released = [x for x in dd.ok("list", "--user", "ann")["notifications"]
                    if x.get("scheduled_id") == sched["id"]]
        if released or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    [released] = released

    async def replay():
        url = "ws://127.0.0.1:%d/ws?token=%s&since=%d" % (dd.port, tok, later["id"])
        async with websockets.connect(url) as ws:
            frames = []
            while not any(f["type"] == "notification" for f in frames):
                frames.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
            return [f["data"]["id"] for f in frames if f["type"] == "notification"]
    assert asyncio.run(replay()) == [released["id"]]
    # The same notification is never seen twice with two ids.
    ids = [x["id"] for x in dd.ok("list", "--user", "ann")["notifications"]]
    assert sorted(ids) == sorted([later["id"], released["id"]])


def test_stop_abandons_an_attempt_at_a_hung_relay_and_restart_resends(daemons, tmp, relays):
    relay = relays(["hang"])
    d = daemons(args=conf(tmp, "[mailer]\nrelay = %s\n" % relay.url)).start()
    d.ok("user", "set", "ann", "--email", "ann@example.com")
    n = d.ok("send", "--user", "ann", "--type", "message", "--title", "stuck")
    relay.wait(lambda r: len(r.messages) == 1)
    t0 = time.monotonic()
    assert d.stop() == 0                    # not held up by the relay's 30 s timeout
    assert time.monotonic() - t0 < (20 if WRAPPER else 5)
    assert 'msg="email attempt abandoned: stopping"' in d.log()
    relay.released.set()
    d.start()
    relay.wait(lambda r: len(r.messages) == 2 and r.messages[1][1])
    assert wait_delivery(d, n["id"], "email", "sent")["attempts"] == 2
