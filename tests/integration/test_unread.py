"""Each user's unread counter against the rows it counts: after a random run
of every operation that changes it, and after SIGKILLs under load."""
import datetime
import os
import random
import threading
import time

import pytest
import requests

from conftest import WRAPPER

USERS = ["u0", "u1", "u2", "u3", "u4"]


def iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")


def api(d):
    s = requests.Session()
    s.headers["Authorization"] = "Bearer " + d.ok("key", "create", "k%d" % time.monotonic_ns())["key"]
    return s


def unread_by_rows(d, s, user):
    """The user's unread notifications counted from pages of the inbox: not the counter."""
    n, before = 0, None
    while True:
        q = {"unread": "true", "limit": 200}
        if before:
            q["before"] = before
        page = s.get(d.url + "/api/v1/users/%s/notifications" % user, params=q, timeout=30).json()
        n += len(page["notifications"])
        if not page["next_before"]:
            return n, page["unread_count"]
        before = page["next_before"]


def assert_counters_agree(d, s, users=USERS):
    check = d.ok("check")
    assert check["ok"] and check["unread_mismatches"] == [], check
    for u in users:
        rows, counted = unread_by_rows(d, s, u)
        r = s.get(d.url + "/api/v1/users/%s/unread_count" % u, timeout=30)
        if r.status_code == 404:
            assert rows == 0
            continue
        assert rows == counted == r.json()["unread_count"], (u, rows, counted, r.json())


def test_the_counter_follows_every_change(daemons):
    d = daemons(http=True).start()
    s = api(d)
    seed = int(os.environ.get("UNREAD_SEED", time.time()))
    rng = random.Random(seed)
    for u in USERS:
        s.put(d.url + "/api/v1/topics/all/members/" + u, timeout=10)
    # u3 switched in-app off for one type: those are stored archived, never unread.
    s.put(d.url + "/api/v1/users/u3/preferences", json={"types": {"muted": {"in_app": False}}},
          timeout=10)
    ids = {u: [] for u in USERS}
    scheduled = []
    # Releases of scheduled ones, heard as they happen by a reader that keeps
    # up with the stream (a watcher that falls behind is dropped).
    released = set()
    heard = threading.Condition()
    watch = d.connect()
    watch.call("watch")

    def listen():
        while True:
            try:
                ev = watch.read()
            except OSError:
                return
            if ev is None:
                return
            if ev.get("type") == "notification" and ev["data"].get("scheduled_id"):
                with heard:
                    released.add(ev["data"]["scheduled_id"])
                    heard.notify_all()
    listener = threading.Thread(target=listen, daemon=True)
    listener.start()

    def send(body):
        r = s.post(d.url + "/api/v1/notifications", json=body, timeout=30)
        assert r.status_code in (200, 201), (seed, r.text)
        j = r.json()
        for n in j.get("notifications", [j]):
            if body.get("deliver_at"):
                scheduled.append(n["id"])
            else:
                ids[n["user"]].append(n["id"])
        return j

    def mark(how):
        u = rng.choice(USERS)
        if not ids[u]:
            return
        pick = rng.sample(ids[u], min(len(ids[u]), rng.randint(1, 4)))
        r = s.post(d.url + "/api/v1/users/%s/notifications/%s/%s" %
                   (u, ",".join(map(str, pick)), how), timeout=30)
        assert r.status_code in (200, 404), (seed, r.text)

    for step in range(500):
        k = rng.random()
        if k < 0.30:
            send({"user": rng.choice(USERS), "type": rng.choice(["message", "muted"]),
                  "title": "n%d" % step})
        elif k < 0.36:
            send({"users": rng.sample(USERS, 3), "type": "message", "title": "many %d" % step})
        elif k < 0.40:
            send({"topic": "all", "type": rng.choice(["message", "muted"]), "title": "all %d" % step})
        elif k < 0.45:
            j = send({"user": rng.choice(USERS), "type": "message", "title": "later %d" % step,
                      "deliver_at": iso(time.time() + rng.uniform(0.2, 1.0))})
            if rng.random() < 0.3:
                r = s.post(d.url + "/api/v1/notifications/%d/cancel" % j["id"], timeout=30)
                if r.status_code == 200:
                    scheduled.remove(j["id"])
        elif k < 0.60:
            mark("read")
        elif k < 0.70:
            mark("unread")
        elif k < 0.78:
            mark("archive")
        elif k < 0.84:
            mark("unarchive")
        elif k < 0.92:
            u = rng.choice(USERS)
            if ids[u]:
                nid = ids[u].pop(rng.randrange(len(ids[u])))
                r = s.delete(d.url + "/api/v1/users/%s/notifications/%d" % (u, nid), timeout=30)
                assert r.status_code in (200, 404), (seed, r.text)
        else:
            s.post(d.url + "/api/v1/users/%s/notifications/read_all" % rng.choice(USERS),
                   timeout=30)
    # Every scheduled one not cancelled is released (an event each), then counted.
    with heard:
        assert heard.wait_for(lambda: set(scheduled) <= released, 60 if WRAPPER else 20), \
            (seed, set(scheduled) - released)
    watch.sock.shutdown(2)
    listener.join()
    watch.close()
    assert_counters_agree(d, s)


def test_the_counter_survives_sigkill_under_load(daemons):
    d = daemons(http=True).start()
    s = api(d)
    stop = threading.Event()

    def load(seed):
        rng = random.Random(seed)
        sess = requests.Session()
        sess.headers.update(s.headers)
        while not stop.is_set():
            u = rng.choice(USERS)
            try:
                if rng.random() < 0.5:
                    sess.post(d.url + "/api/v1/notifications", json={"user": u, "type": "message",
                              "title": "x"}, timeout=5)
                else:
                    page = sess.get(d.url + "/api/v1/users/%s/notifications" % u, timeout=5).json()
                    got = [n["id"] for n in page.get("notifications", [])][:3]
                    if got:
                        how = rng.choice(["read", "unread", "archive", "unarchive"])
                        sess.post(d.url + "/api/v1/users/%s/notifications/%s/%s" %
                                  (u, ",".join(map(str, got)), how), timeout=5)
            except (requests.RequestException, ValueError):
                pass    # the daemon is down for a moment: that is the test
    threads = [threading.Thread(target=load, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    def created():
        return d.ok("status")["counts"]["notifications"]
    try:
        for _ in range(3):
            before = created()
            deadline = time.monotonic() + 30
            while created() < before + 20:     # the load is writing again
                assert time.monotonic() < deadline
            d.stop("KILL")
            d.start()
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert_counters_agree(d, s)


@pytest.mark.sqlite_only("writes wrong counters into the SQLite file")
def test_check_finds_and_repairs_a_wrong_counter(daemons):
    import sqlite3
    import subprocess
    from conftest import NOTIFYCTL
    d = daemons().start()
    for i in range(3):
        d.ok("send", "--user", "ann", "--type", "message", "--title", "t%d" % i)
    for u in ("ann", "bo"):
        d.ok("topic", "add", "team", u)
    d.ok("topic", "add", "gone", "ann")
    d.ok("topic", "add", "solo", "bo")
    db = sqlite3.connect(os.path.join(d.data_dir, "notifyd.db"))
    with db:
        db.execute("UPDATE users SET unread = 9 WHERE id = 'ann'")
        # A size that drifted, a topic whose members are gone, a topic whose size row is gone.
        db.execute("UPDATE topics SET members = 5 WHERE name = 'team'")
        db.execute("DELETE FROM topic_members WHERE topic = 'gone'")
        db.execute("DELETE FROM topics WHERE name = 'solo'")
    db.close()
    p = subprocess.run([NOTIFYCTL, "-s", d.socket, "check"], capture_output=True, text=True)
    assert p.returncode == 1, p.stdout
    for line in ("ann: counter 9, rows 3", "topic sizes    wrong", "team: counter 5, members 2",
                 "gone: counter 1, members 0", "solo: counter 0, members 1"):
        assert line in p.stdout, p.stdout
    assert d.ok("check", "--repair")["repaired"] == 4
    assert d.ok("check") == {"ok": True, "integrity": "ok", "integrity_errors": [],
                             "foreign_key_errors": [], "unread_mismatches": [],
                             "topic_mismatches": [], "repaired": 0}
    assert d.ok("count", "--user", "ann")["unread_count"] == 3
    assert d.ok("topic", "add", "team", "cy")["count"] == 3
    assert d.ok("topic", "add", "solo", "cy")["count"] == 2
    assert d.ok("topic", "add", "gone", "cy")["count"] == 1
    assert d.ok("check", "--full")["integrity"] == "ok"


def inbox(d, s, user, **q):
    """Every notification of user's inbox (or of what q selects), newest first."""
    out, before = [], None
    while True:
        params = dict(q, limit=200, **({"before": before} if before else {}))
        page = s.get(d.url + "/api/v1/users/%s/notifications" % user, params=params,
                     timeout=30).json()
        out += page["notifications"]
        if not page["next_before"]:
            return out
        before = page["next_before"]


def watermark(d, user):
    import sqlite3
    db = sqlite3.connect(os.path.join(d.data_dir, "notifyd.db"))
    try:
        return db.execute("SELECT read_before FROM users WHERE id = ?", (user,)).fetchone()[0]
    finally:
        db.close()


def settled(d, user):
    """Wait for the background thread to write read_at into the rows a
    read_all's watermark covers: nothing announces it, so ask the database."""
    deadline = time.monotonic() + (120 if WRAPPER else 30)
    while watermark(d, user) != 0:
        assert time.monotonic() < deadline, "the watermark of %s never settled" % user
        time.sleep(0.05)


@pytest.mark.sqlite_only("SQLite's read watermark")
def test_read_all_of_many_is_a_watermark_that_settles(daemons):
    """Mark all read of a large inbox sets a watermark (sql/013) instead of
    writing each row; the rows are written later in the background. Reads,
    marks, archives and deletes in between see exactly what they would have
    seen had every row been written at once, and so does a restart after
    SIGKILL before the rows are settled."""
    d = daemons(http=True).start()
    s = api(d)
    n = 600                             # above WATERMARK_MIN (256) in notifications.c
    ids = []
    for i in range(n):
        r = s.post(d.url + "/api/v1/notifications", json={"user": "big", "type": "message",
                   "title": "t%d" % i}, timeout=30)
        ids.append(r.json()["id"])
    s.post(d.url + "/api/v1/users/big/notifications/%d,%d/archive" % (ids[3], ids[4]), timeout=30)
    r = s.post(d.url + "/api/v1/users/big/notifications/read_all", timeout=30).json()
    assert r["marked"] == n - 2 and r["unread_count"] == 0 and r["up_to"] == ids[-1]
    # Between read_all and the settling: one moment's view, whatever has been written.
    seen = inbox(d, s, "big")
    assert len(seen) == n - 2
    when = {x["read_at"] for x in seen}
    assert len(when) == 1 and None not in when, when
    assert inbox(d, s, "big", unread="true") == []
    assert [x["read_at"] for x in inbox(d, s, "big", archived="true")] == [when.pop()] * 2
    # Unread again: the newest, one in the middle, the oldest (the middle and
    # oldest most likely still under the watermark).
    again = [ids[-1], ids[n // 2], ids[0]]
    r = s.post(d.url + "/api/v1/users/big/notifications/%s/unread" % ",".join(map(str, again)),
               timeout=30).json()
    assert sorted(r["ids"]) == sorted(again) and r["unread_count"] == 3, r
    # Read ones: deleting, archiving and unarchiving change no count.
    assert s.delete(d.url + "/api/v1/users/big/notifications/%d" % ids[10],
                    timeout=30).status_code == 200
    assert s.get(d.url + "/api/v1/users/big/unread_count", timeout=30).json()["unread_count"] == 3
    r = s.post(d.url + "/api/v1/users/big/notifications/%d/archive" % ids[11], timeout=30).json()
    assert r["unread_count"] == 3
    r = s.post(d.url + "/api/v1/users/big/notifications/%d/unarchive" % ids[11], timeout=30).json()
    assert r["unread_count"] == 3
    # Marking read an already read one changes nothing.
    r = s.post(d.url + "/api/v1/users/big/notifications/%d/read" % ids[12], timeout=30).json()
    assert r["ids"] == [] and r["unread_count"] == 3
    assert [x["id"] for x in inbox(d, s, "big", unread="true")] == sorted(again, reverse=True)
    before = inbox(d, s, "big")
    assert_counters_agree(d, s, ["big"])
    settled(d, "big")
    assert inbox(d, s, "big") == before
    assert_counters_agree(d, s, ["big"])

    # Again, killed before the rows are written: a restart settles them.
    for i in range(n):
        s.post(d.url + "/api/v1/notifications", json={"user": "big", "type": "message",
               "title": "u%d" % i}, timeout=30)
    r = s.post(d.url + "/api/v1/users/big/notifications/read_all", timeout=30).json()
    assert r["marked"] == n + 3 and r["unread_count"] == 0
    d.stop("KILL")
    d.start()
    before = inbox(d, s, "big")
    assert all(x["read_at"] is not None for x in before)
    settled(d, "big")
    assert inbox(d, s, "big") == before
    assert_counters_agree(d, s, ["big"])


@pytest.mark.sqlite_only("SQLite's migrations")
def test_the_migration_counts_what_is_there(daemons, tmp):
    """A database of schema 8 (no counter) gets each user's count at the upgrade."""
    import sqlite3
    d = daemons().start()
    for i in range(4):
        d.ok("send", "--user", "bob", "--type", "message", "--title", "t%d" % i)
    d.ok("read", "--user", "bob", "1")
    d.ok("archive", "--user", "bob", "2")
    later = d.ok("send", "--user", "bob", "--type", "message", "--title", "later",
                 "--at", iso(time.time() + 3600))
    assert d.stop() == 0
    db = sqlite3.connect(os.path.join(d.data_dir, "notifyd.db"))
    # Back to schema 8: no counter, the indexes of then, and a scheduled one
    # waiting as a notification 2^52 ms in the future with its in-app delivery.
    db.executescript("""
        INSERT INTO notifications (id, user_id, type, category, priority, title, body, data,
            action_url, dedupe_key, created_at, deliver_at)
        SELECT id, user_id, type, category, priority, title, body, data, action_url,
            dedupe_key, created_at, deliver_at + 4503599627370496 FROM scheduled;
        INSERT INTO deliveries (notification_id, channel, status, next_attempt_at, created_at,
            updated_at) SELECT id, 'in_app', 'pending', deliver_at, created_at, created_at
            FROM scheduled;
        DROP TABLE scheduled;
        ALTER TABLE notifications DROP COLUMN email_skipped;
        ALTER TABLE users DROP COLUMN unread;
        DROP INDEX notifications_archived;
        DROP INDEX notifications_unread;
        CREATE INDEX notifications_unread ON notifications (user_id, deliver_at)
            WHERE read_at IS NULL AND archived_at IS NULL;
        DROP INDEX notifications_by_user;
        CREATE INDEX notifications_by_user ON notifications (user_id, id);
        DROP INDEX users_settling;
        ALTER TABLE users DROP COLUMN read_before;
        ALTER TABLE users DROP COLUMN read_all_at;
        DROP TABLE push_subscriptions;
        DROP TABLE webhooks;
        DROP TABLE topics;
    """)
    db.execute("PRAGMA user_version = 8")
    db.commit()
    db.close()
    d.start()
    assert d.ok("count", "--user", "bob")["unread_count"] == 2
    assert d.ok("check")["ok"]
    # The waiting one still waits, under the id its send returned.
    shown = d.ok("show", later["id"], "--deliveries")
    assert shown["title"] == "later" and shown["deliver_at"] == later["deliver_at"]
    assert shown["deliveries"][0]["status"] == "pending"
    assert [n["title"] for n in d.ok("list", "--user", "bob")["notifications"]] == ["t3", "t2", "t0"]


def test_pages_over_http_are_the_pages_of_the_operation(daemons):
    """HTTP writes a page as text straight from the rows; the control socket
    builds it as an object. Both say the same, field for field."""
    d = daemons(http=True).start()
    s = api(d)
    bodies = [
        {"title": "plain", "body": "b"},
        {"title": "quote \" back \\ tab\t nl\n ctl \u0001 del \u007f", "body": None},
        {"title": "ünïcödé ✓ 𝄞 ", "body": "emoji 🎉", "category": "cat", "priority": "high",
         "url": "https://example.com/a?b=c&d=\"e\"", "data": {"n": [1, 2.5, True, None],
                                                         "s": "ü\"\\", "o": {"k": {}}}},
        {"title": None, "body": None, "data": {}},
    ]
    for b in bodies:
        body = {"user": "pat", "type": "message", **{k: v for k, v in b.items() if v is not None}}
        assert s.post(d.url + "/api/v1/notifications", json=body, timeout=10).status_code == 201
    s.post(d.url + "/api/v1/notifications", json={"user": "pat", "type": "message",
           "title": "later", "deliver_at": iso(time.time() + 0.3)}, timeout=10)
    d.ok("read", "--user", "pat", "2")
    d.ok("archive", "--user", "pat", "3")
    listener = d.connect()
    listener.call("watch")
    while True:     # the scheduled one, released
        ev = listener.read()
        if ev.get("type") == "notification" and ev["data"].get("scheduled_id"):
            break
    listener.close()
    for q in ({}, {"unread": "true"}, {"archived": "true"}, {"limit": 2},
              {"limit": 2, "before": 4}, {"type": "message", "category": "cat"}):
        over_http = s.get(d.url + "/api/v1/users/pat/notifications", params=q, timeout=10)
        assert over_http.status_code == 200
        args = ["list", "--user", "pat"]
        for k, v in q.items():
            args += ["--" + k] if v == "true" else ["--" + k, str(v)]
        assert over_http.json() == d.ok(*args), q
    page = s.get(d.url + "/api/v1/users/pat/notifications", timeout=10).json()
    assert any(n.get("scheduled_id") and n.get("deliver_at") for n in page["notifications"])


def test_sends_over_http_answer_and_announce_the_objects_of_the_operation(daemons):
    """HTTP answers a send with text written from what was stored, and the
    hub frames that text; the control socket gets the objects. Key for key,
    in the same order, they are the same notification."""
    import json
    d = daemons(http=True).start()
    s = api(d)
    class Pairs(list):  # an object's members, in the order written
        pass
    ordered = lambda text: json.loads(text, object_pairs_hook=Pairs)
    plain = lambda x: {k: plain(v) for k, v in x} if isinstance(x, Pairs) else \
        [plain(v) for v in x] if isinstance(x, list) else x
    moving = ("id", "user", "created_at", "archived_at", "deliver_at")

    def same(a, b):     # two sends of the same thing, to another user or at another time
        return [(k, v) for k, v in a if k not in moving] == \
            [(k, v) for k, v in b if k not in moving] and [k for k, _ in a] == [k for k, _ in b]
    watcher = d.connect()
    watcher.call("watch")
    d.ok("topic", "add", "crew", "ann")
    d.ok("topic", "add", "crew", "bo")
    d.ok("prefs", "set", "--user", "bo", "--type", "message", "in_app", "off")
    bodies = [
        {"title": "plain", "body": "b"},
        {"title": "quote \" back \\ tab\t nl\n ctl \u0001 del \u007f", "body": None},
        {"title": "ünïcödé ✓ 𝄞 ", "body": "emoji 🎉", "category": "cat", "priority": "high",
         "url": "https://example.com/a?b=c&d=\"e\"", "data": {"n": [1, 2.5, 1e300, True, None],
                                                         "s": "ü\"\\", "o": {"k": {}}}},
        {"title": None, "body": None, "data": {}},
    ]
    for i, b in enumerate(bodies):
        b = {k: v for k, v in b.items() if v is not None}
        for to in ({"user": "pat"}, {"users": ["pat", "sam"]}, {"topic": "crew"},
                   {"user": "pat", "deliver_at": iso(time.time() + 3600)}):
            body = {**to, "type": "message", **b}
            r = s.post(d.url + "/api/v1/notifications", json=body, timeout=10)
            assert r.status_code == 201, r.text
            args = dict(body)
            if "deliver_at" in args:
                args["at"] = args.pop("deliver_at")
            ctl = d.connect()
            op = ctl.call("send", args)["result"]
            ctl.close()
            if "user" in to:
                answer, by_op = [ordered(r.text)], [op]
            else:
                top = ordered(r.text)
                assert [k for k, _ in top] == ["count", "notifications"], r.text
                answer, by_op = top[1][1], op["notifications"]
                assert top[0][1] == len(by_op)
            for a, o in zip(answer, by_op, strict=True):
                assert same(a, ordered(json.dumps(o))), (a, o)
                n = plain(a)
                hidden = n["user"] == "bo"
                assert (n["archived_at"] is not None) == hidden, n
                if "deliver_at" in n:
                    continue
                # As stored and read back.
                assert s.get(d.url + "/api/v1/users/%s/notifications/%d" % (n["user"], n["id"]),
                             timeout=10).json() == n
                if hidden:
                    continue
                while True:     # the watcher's frame, made from the same text
                    ev = watcher.read()
                    if ev.get("type") == "notification" and ev["data"]["id"] == n["id"]:
                        break
                assert ev["user"] == n["user"] and ev["data"] == n
    # A send that names an existing key answers with the stored one (dumped).
    first = s.post(d.url + "/api/v1/notifications", json={"user": "pat", "type": "message",
                   "title": "once", "key": "k1"}, timeout=10)
    again = s.post(d.url + "/api/v1/notifications", json={"users": ["pat", "zed"],
                   "type": "message", "title": "twice", "key": "k1"}, timeout=10)
    assert first.status_code == 201 and again.status_code == 201
    assert again.json()["notifications"][0] == first.json()
    # Warnings ride along, on the one notification or beside the many.
    r = s.post(d.url + "/api/v1/notifications", json={"user": "pat", "type": "order_shipped",
               "data": {"order": "A-18"}}, timeout=10)
    w = ordered(r.text)
    assert r.status_code == 201 and w[-1][0] == "warnings" and [k for k, _ in w[:-1]] == \
        [k for k, _ in ordered(json.dumps(d.ok("show", str(plain(w)["id"]))))][:len(w) - 1]
    r = s.post(d.url + "/api/v1/notifications", json={"users": ["pat", "sam"],
               "type": "order_shipped", "data": {"order": "A-18"}}, timeout=10)
    assert [k for k, _ in ordered(r.text)] == ["count", "notifications", "warnings"]
    assert r.json()["warnings"][0]["variable"] == "order_id"
    watcher.close()


@pytest.mark.sqlite_only("reads the rows from the SQLite file")
def test_a_create_writes_the_rows_that_can_happen(daemons):
    """In-app shown at once and email that cannot happen are no delivery rows,
    yet show reports both as before."""
    import sqlite3
    d = daemons().start()
    nobody = d.ok("send", "--user", "nomail", "--type", "message", "--title", "a")["id"]
    d.ok("user", "set", "off", "--email", "off@example.com")
    d.ok("prefs", "set", "--user", "off", "email", "off")
    opted_out = d.ok("send", "--user", "off", "--type", "message", "--title", "b")["id"]
    d.ok("user", "set", "on", "--email", "on@example.com")
    emailed = d.ok("send", "--user", "on", "--type", "message", "--title", "c")["id"]

    def show(nid):
        return {x["channel"]: x for x in d.ok("show", nid, "--deliveries")["deliveries"]}
    assert show(nobody)["in_app"]["status"] == "sent"
    assert (show(nobody)["email"]["status"], show(nobody)["email"]["last_error"]) == \
        ("skipped", "no email address")
    assert show(opted_out)["email"]["last_error"] == "email turned off"
    assert show(emailed)["email"]["status"] in ("pending", "sent", "failed")
    assert [x["channel"] for x in d.ok("show", emailed, "--deliveries")["deliveries"]] == \
        ["in_app", "email"]
    db = sqlite3.connect(os.path.join(d.data_dir, "notifyd.db"))
    rows = db.execute("SELECT notification_id, channel FROM deliveries ORDER BY id").fetchall()
    db.close()
    assert rows == [(emailed, "email")]
