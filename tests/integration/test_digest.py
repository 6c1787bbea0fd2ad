"""Digests from cron: one email per user and slot, exactly once, read from the sink."""
import datetime
import os
import re
import subprocess
import threading
import time
import zoneinfo

import pytest
import requests

from conftest import NOTIFYCTL, NOTIFYD, WRAPPER
from test_delivery import conf, deliveries, raw_mail, wait_delivery

FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


def digest(d, *args):
    return d.ok("digest", *args)


def park(d, user, n, tz=None, email=True, start=0):
    """user in daily mode with n order_shipped emails parked; their ids."""
    args = ["user", "set", user, "--name", user.title()]
    if email:
        args += ["--email", "%s@example.com" % user]
    if tz:
        args += ["--tz", tz]
    d.ok(*args)
    d.ok("prefs", "set", "--user", user, "digest", "daily")
    ids = []
    for i in range(start, start + n):
        ids.append(d.ok("send", "--user", user, "--type", "order_shipped", "--data",
                        "order_id=%s-%d" % (user, i), "--data", "carrier=DHL")["id"])
    return ids


def mails_to(d, user):
    page = requests.get(d.url + "/api/v1/search", params={"query": "to:%s@example.com" % user},
                        timeout=10).json()
    return page["messages"]


def digest_mail(d, user, n):
    """The one digest email to user, once it is in the sink; its text."""
    m = d.ok("mail", "wait", "--query", 'to:%s@example.com subject:"%d new notification"' % (user, n),
             "--timeout", "20s")
    return m, raw_mail(d, m["ID"])


@pytest.fixture
def dg(daemons, tmp):
    return daemons(http=True, smtp=True, args=conf(tmp, "[digest]\nmax_items = 4\n")).start()


def test_parked_email_goes_out_in_one_digest_per_user(dg):
    d = dg
    alice = park(d, "alice", 3, tz="Europe/Berlin")
    bob = park(d, "bob", 2, tz="America/New_York")
    # Not parked: an in-app-only type, a critical type, an urgent send.
    d.ok("send", "--user", "alice", "--type", "match_created", "--data", "name=Ann")
    crit = d.ok("send", "--user", "alice", "--type", "payment_failed", "--data", "amount=5",
                "--data", "currency=EUR")["id"]
    urg = d.ok("send", "--user", "alice", "--type", "message", "--title", "Now", "--priority",
               "urgent")["id"]
    # Both go out now, not parked; awaited, so that they are in the sink
    # before it is counted below.
    wait_delivery(d, crit, "email", "sent")
    wait_delivery(d, urg, "email", "sent")
    assert deliveries(d, alice[0])["email"]["status"] == "digest"
    # Read in the app before the digest: left out.
    d.ok("read", "--user", "alice", alice[1])
    # A dry run changes nothing and says who would get how many.
    dry = digest(d, "--period", "daily", "--dry-run")
    got = {x["user"]: (x["status"], x["items"], x["skipped_read"]) for x in dry["digests"]}
    assert got == {"alice": ("would_send", 2, 1), "bob": ("would_send", 2, 0)}
    assert deliveries(d, alice[0])["email"]["status"] == "digest"
    before = len(mails_to(d, "alice"))
    assert before == 2

    r = digest(d, "--period", "daily")
    assert (r["users_emailed"], r["items"], r["skipped_read"]) == (2, 4, 1)
    m, msg = digest_mail(d, "alice", 2)
    text = msg.get_body(("plain",)).get_content()
    # Newest first, the read one left out, times in Alice's zone.
    assert text.index("Order alice-2 has shipped") < text.index("Order alice-0 has shipped")
    assert "alice-1" not in text and "Hi Alice," in text
    local = datetime.datetime.now(zoneinfo.ZoneInfo("Europe/Berlin"))
    assert local.strftime("%a %-d %b") in text
    assert "2 new notifications" == msg["Subject"] and msg["Message-ID"]
    html = msg.get_body(("html",)).get_content()
    assert "Order alice-2 has shipped" in html
    _, bmsg = digest_mail(d, "bob", 2)
    assert "Order bob-1 has shipped" in bmsg.get_body(("plain",)).get_content()
    # Every parked delivery is digested now, and points at the digest.
    for nid in alice:
        e = deliveries(d, nid)["email"]
        assert e["status"] == "digested" and e["digest_id"] == r["digests"][0]["digest_id"]
    assert len(mails_to(d, "alice")) == before + 1

    # Again in the same slot: nothing twice; what came meanwhile waits for the next.
    later = park(d, "alice", 1, tz="Europe/Berlin", start=10)
    again = digest(d, "--period", "daily")
    assert again["users_emailed"] == 0 and again["already_done"] == 2
    assert {x["user"]: x["status"] for x in again["digests"]} == \
        {"alice": "already_done", "bob": "already_done"}
    assert deliveries(d, later[0])["email"]["status"] == "digest"
    assert len(mails_to(d, "alice")) == before + 1
    # Through REST, with an API key only.
    key = d.ok("key", "create", "cron")["key"]
    tok = d.ok("token", "alice")["token"]
    r = requests.post(d.url + "/api/v1/digests", json={"period": "weekly", "dry_run": True},
                      headers={"Authorization": "Bearer " + key})
    assert r.status_code == 200 and r.json()["period"] == "weekly"
    r = requests.post(d.url + "/api/v1/digests", json={"period": "daily"},
                      headers={"Authorization": "Bearer " + tok})
    assert r.status_code == 403


def test_the_cap_and_and_n_more(dg):
    d = dg
    park(d, "carl", 7, tz="Asia/Kolkata")
    r = digest(d, "--period", "daily")
    assert r["items"] == 7
    _, msg = digest_mail(d, "carl", 7)
    text = msg.get_body(("plain",)).get_content()
    assert text.count("has shipped") == 4       # [digest] max_items = 4
    assert re.search(r"\.\.\. and 3 more: http://localhost:%d/inbox" % d.port, text), text
    assert "and 3 more" in msg.get_body(("html",)).get_content()


def test_include_read_lists_them_marked(daemons, tmp):
    d = daemons(http=True, smtp=True, args=conf(tmp, "[digest]\ninclude_read = true\n")).start()
    ids = park(d, "dora", 2)
    d.ok("read", "--user", "dora", ids[0])
    r = digest(d, "--period", "daily")
    assert (r["items"], r["skipped_read"]) == (2, 0)
    _, msg = digest_mail(d, "dora", 2)
    text = msg.get_body(("plain",)).get_content()
    assert "Order dora-0 has shipped (read)" in text and "dora-1 has shipped\r\n" in text


def test_nothing_left_sends_nothing_but_is_done(dg):
    d = dg
    ids = park(d, "eve", 2)
    d.ok("read", "--user", "eve", "--all")
    r = digest(d, "--period", "daily")
    assert r["users_emailed"] == 0 and r["digests"][0]["status"] == "nothing_left"
    assert all(deliveries(d, i)["email"]["status"] == "digested" for i in ids)
    assert mails_to(d, "eve") == []
    # Never sent later either.
    assert digest(d, "--period", "daily")["digests"][0]["status"] == "already_done"
    assert mails_to(d, "eve") == []


def local_now(tz):
    return datetime.datetime.now(zoneinfo.ZoneInfo(tz))


def test_local_hour_and_weekly_local_day(dg):
    d = dg
    zones = {"fay": "Europe/Berlin", "gus": "America/New_York", "hal": "Asia/Kolkata"}
    for u, tz in zones.items():
        park(d, u, 1, tz=tz)
        d.ok("prefs", "set", "--user", u, "digest", "weekly")
    h = local_now("Asia/Kolkata").hour
    r = digest(d, "--period", "weekly", "--local-hour", h,
               "--local-day", local_now("Asia/Kolkata").strftime("%a").lower())
    emailed = {x["user"] for x in r["digests"] if x["status"] == "queued"}
    expect = {u for u, tz in zones.items()
              if local_now(tz).hour == h and local_now(tz).weekday() == local_now("Asia/Kolkata").weekday()}
    assert emailed == expect and "hal" in emailed
    assert {x["user"]: x["status"] for x in r["digests"] if x["user"] not in expect} == \
        {u: "not_due" for u in zones if u not in expect}
    slot = local_now("Asia/Kolkata").isocalendar()
    assert [x["slot"] for x in r["digests"] if x["user"] == "hal"] == \
        ["%04d-W%02d" % (slot[0], slot[1])]
    # A day that is not today anywhere it matters: nobody.
    other = (local_now("Asia/Kolkata").weekday() + 3) % 7
    r = digest(d, "--period", "weekly", "--local-day", ["mon", "tue", "wed", "thu", "fri",
                                                        "sat", "sun"][other])
    assert r["users_emailed"] == 0


def faketime_env(at):
    """Run notifyd as if it were at (a UTC datetime), its clock moving on from there."""
    offset = int((at - datetime.datetime.now(datetime.timezone.utc)).total_seconds())
    return {"LD_PRELOAD": FAKETIME, "FAKETIME": "%+ds" % offset,
            "FAKETIME_DONT_FAKE_MONOTONIC": "1", "FAKETIME_NO_CACHE": "1",
            "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"}


@pytest.mark.skipif(not os.path.exists(FAKETIME), reason="faketime is not installed")
@pytest.mark.skipif(bool(WRAPPER), reason="valgrind and LD_PRELOAD'd clocks do not mix")
def test_local_hour_in_three_zones_at_a_dst_change(daemons, tmp):
    # 2026-03-29 01:30 UTC: Berlin has just gone from 02:00 to 03:00 (a 23-hour day),
    # New York is still on the 28th (21:30), Kolkata at 07:00; the server's zone is Tokyo.
    at = datetime.datetime(2026, 3, 29, 1, 30, tzinfo=datetime.timezone.utc)
    env = dict(faketime_env(at), TZ="Asia/Tokyo")
    d = daemons(http=True, smtp=True, env=env).start()
    zones = {"ber": "Europe/Berlin", "nyc": "America/New_York", "kol": "Asia/Kolkata", "tok": None}
    for u, tz in zones.items():
        park(d, u, 1, tz=tz)
    seen = {}
    for hour, want in ((3, "ber"), (21, "nyc"), (7, "kol"), (10, "tok"), (2, None)):
        r = digest(d, "--period", "daily", "--local-hour", hour)
        queued = [x for x in r["digests"] if x["status"] == "queued"]
        assert [x["user"] for x in queued] == ([want] if want else []), (hour, r)
        for x in queued:
            seen[x["user"]] = x
    assert seen["ber"]["slot"] == "2026-03-29" and seen["nyc"]["slot"] == "2026-03-28"
    assert seen["kol"]["slot"] == "2026-03-29" and seen["tok"]["slot"] == "2026-03-29"
    # Berlin's day: from midnight CET to midnight CEST, 23 hours.
    assert (seen["ber"]["window_start"], seen["ber"]["window_end"]) == \
        ("2026-03-28T23:00:00.000Z", "2026-03-29T22:00:00.000Z")
    assert (seen["nyc"]["window_start"], seen["nyc"]["window_end"]) == \
        ("2026-03-28T04:00:00.000Z", "2026-03-29T04:00:00.000Z")
    for u in zones:
        digest_mail(d, u, 1)


def test_two_runs_at_once_send_each_digest_once(dg):
    d = dg
    users = ["u%02d" % i for i in range(30)]
    parked = {u: park(d, u, 3) for u in users}
    out = []

    def run():
        p = subprocess.run([NOTIFYCTL, "-s", d.socket, "--json", "digest", "--period", "daily"],
                           capture_output=True, text=True)
        out.append(p)
    ts = [threading.Thread(target=run) for _ in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    import json
    results = [json.loads(p.stdout) for p in out]
    assert sum(r["users_emailed"] for r in results) == len(users)
    for u in users:
        digest_mail(d, u, 3)
    requests.get(d.url + "/api/v1/messages", timeout=10)
    for u in users:
        assert len(mails_to(d, u)) == 1, u
        assert {deliveries(d, n)["email"]["status"] for n in parked[u]} == {"digested"}


def test_sigkill_mid_run_redoes_what_did_not_commit(daemons, tmp):
    d = daemons(http=True, smtp=True).start()
    users = ["k%03d" % i for i in range(200)]
    for u in users:
        d.ok("user", "set", u, "--email", "%s@example.com" % u)
        d.ok("prefs", "set", "--user", u, "digest", "daily")
    key = d.ok("key", "create", "k")["key"]
    s = requests.Session()
    s.headers["Authorization"] = "Bearer " + key
    for i in range(2):
        r = s.post(d.url + "/api/v1/notifications", json={"users": users, "type": "order_shipped",
                                                          "data": {"order_id": "R%d" % i}})
        assert r.status_code == 201
    run = subprocess.Popen([NOTIFYCTL, "-s", d.socket, "digest", "--period", "daily"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    d.wait_log('msg="digest queued"')   # some have committed: kill it now
    d.stop("KILL")
    run.wait(30)
    d.start()
    # Each committed digest is done; the rest are made whole now; none twice.
    r = digest(d, "--period", "daily")
    assert r["users_emailed"] + r["already_done"] == len(users), r
    for u in users:
        digest_mail(d, u, 2)
    # One digest each. An email the kill caught between its sending and its
    # record is sent again after the restart, as the same message (the same
    # Message-ID): at least once, never a second digest.
    for u in users:
        assert len({m["MessageID"] for m in mails_to(d, u)}) == 1, u


def test_switching_modes(daemons, tmp, dg):
    d = dg
    # Off again with flush_on_off (the default): what was parked goes at once.
    ids = park(d, "ivy", 2)
    r = d.ok("prefs", "set", "--user", "ivy", "digest", "off")
    assert r["digest"] == "off" and r["digest_sent"]["users_emailed"] == 1
    digest_mail(d, "ivy", 2)
    assert {deliveries(d, n)["email"]["status"] for n in ids} == {"digested"}
    # Without it: the next run of that period sends them, though the user is off now.
    d2 = daemons(http=True, smtp=True, data_dir=os.path.join(tmp, "d2"),
                 socket_path=os.path.join(tmp, "s2.sock"),
                 args=conf(tmp, "[digest]\nflush_on_off = false\n", "d2.conf")).start()
    ids = park(d2, "jo", 2)
    d2.ok("prefs", "set", "--user", "jo", "digest", "off")
    assert {deliveries(d2, n)["email"]["status"] for n in ids} == {"digest"}
    assert digest(d2, "--period", "weekly")["users_emailed"] == 0
    assert digest(d2, "--period", "daily")["users_emailed"] == 1
    digest_mail(d2, "jo", 2)
    # And new sends go out one by one.
    n = d2.ok("send", "--user", "jo", "--type", "message", "--title", "single")["id"]
    assert deliveries(d2, n)["email"]["status"] in ("pending", "sent")


def test_template_render_shows_a_sample(dg):
    r = dg.ok("template", "render", "digest")
    assert r["subject"] == "53 new notifications" and "warnings" not in r
    assert "Order A-17 has shipped" in r["text"] and "... and 50 more" in r["text"]
    assert "New match: Ann (read)" in r["text"]
