"""notifyctl backup: the data of a running notifyd, as of one moment, in a
new directory that notifyd runs from as it is."""
import os
import stat
import subprocess
import threading

import pytest
import requests

from conftest import NOTIFYCTL, STORE


@pytest.mark.sqlite_only("PostgreSQL is backed up with its own tools")
def test_a_backup_taken_while_sends_go_on_runs_as_a_data_dir(daemons, tmp):
    d = daemons(http=True).start()
    key = d.ok("key", "create", "app")["key"]
    token = d.ok("token", "ann", "--ttl", "1h")["token"]
    vapid = d.ok("push", "key")["public_key"]
    d.ok("topic", "add", "team", "ann")
    d.ok("prefs", "set", "--user", "ann", "quiet", "22:00-07:00")

    # Sends acknowledged one after another, the backup taken in their midst.
    acked, stop = [], threading.Event()

    def sender():
        s = requests.Session()
        s.headers["Authorization"] = "Bearer " + key
        i = 0
        while not stop.is_set() or i < 20:
            r = s.post(d.url + "/api/v1/notifications", timeout=30,
                       json={"user": "ann", "type": "message", "title": "n%d" % i})
            assert r.status_code == 201, r.text
            acked.append(r.json()["id"])
            i += 1
    t = threading.Thread(target=sender)
    t.start()
    try:
        while len(acked) < 20:
            threading.Event().wait(0.01)
        before = len(acked)
        out = d.ok("backup", os.path.join(tmp, "bk"))
        after = len(acked)
    finally:
        stop.set()
        t.join(60)
    path = os.path.join(tmp, "bk")
    assert out["path"] == path and out["files"] == ["notifyd.db", "jwt.secret", "vapid.pem"]
    assert out["bytes"] == sum(os.path.getsize(os.path.join(path, f)) for f in out["files"])
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o700
    for f in out["files"]:
        assert stat.S_IMODE(os.stat(os.path.join(path, f)).st_mode) == 0o600
    assert sorted(os.listdir(path)) == sorted(out["files"])      # no partial file left
    assert d.wait_log('msg="backup made" path=%s' % path, 10)

    # The copy runs as a notifyd of its own: the data as of one moment,
    # whole, under the same secrets.
    b = daemons(http=True, data_dir=path, socket_path=os.path.join(tmp, "b.sock")).start()
    got, page = [], b.ok("list", "--user", "ann", "--limit", "200")
    while True:
        got += [n["id"] for n in page["notifications"]]
        if not page.get("next_before"):
            break
        page = b.ok("list", "--user", "ann", "--limit", "200", "--before", page["next_before"])
    assert set(acked[:before]) <= set(got) <= set(acked), (before, after, len(got))
    assert sorted(got) == sorted(acked)[:len(got)]           # a prefix: no write half in
    assert b.ok("count", "--user", "ann")["unread_count"] == len(got)
    assert b.ok("check", "--full")["ok"] is True
    assert b.ok("push", "key")["public_key"] == vapid
    assert b.ok("topic", "show", "team")["members"] == ["ann"]
    assert b.ok("prefs", "get", "--user", "ann")["quiet_hours"]["start"] == "22:00"
    r = requests.get(b.url + "/api/v1/users/ann/unread_count", timeout=10,
                     headers={"Authorization": "Bearer " + token})
    assert r.status_code == 200 and r.json() == {"unread_count": len(got)}
    r = requests.get(b.url + "/api/v1/users/ann/unread_count", timeout=10,
                     headers={"Authorization": "Bearer " + key})
    assert r.status_code == 200
    # The original went on and is untouched by it.
    assert d.ok("count", "--user", "ann")["unread_count"] == len(acked)


@pytest.mark.sqlite_only("PostgreSQL is backed up with its own tools")
def test_a_relative_path_is_notifyctls(daemons, tmp):
    d = daemons().start()
    work = os.path.join(tmp, "work")
    os.mkdir(work)
    p = subprocess.run([NOTIFYCTL, "-s", d.socket, "backup", "nightly"], cwd=work,
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("backed up to %s/nightly in " % work), p.stdout
    assert "notifyd.db jwt.secret (" in p.stdout, p.stdout    # no VAPID key made yet
    assert os.path.exists(os.path.join(work, "nightly", "notifyd.db"))
    # Over the socket itself a path must be whole: notifyd's directory is not the caller's.
    c = d.connect()
    r = c.call("backup", {"path": "nightly"})
    c.close()
    assert r["ok"] is False and r["error"]["code"] == "invalid_field", r


def test_a_backup_refused_leaves_nothing(daemons, tmp):
    d = daemons().start()
    d.ok("send", "--user", "ann", "--type", "message", "--title", "kept")
    there = os.path.join(tmp, "there")
    os.mkdir(there)
    with open(os.path.join(there, "mine"), "w") as f:
        f.write("not notifyd's")
    if STORE == "postgresql":
        rc, _, err = d.ctl("backup", os.path.join(tmp, "new"))
        assert rc == 1 and "the store is PostgreSQL: back it up with pg_dump" in err, err
        assert not os.path.exists(os.path.join(tmp, "new"))
        return
    rc, _, err = d.ctl("backup", there)
    assert rc == 1 and "is there already" in err, err
    assert os.listdir(there) == ["mine"]
    rc, _, err = d.ctl("backup", os.path.join(tmp, "no", "such"))
    assert rc == 1 and "No such file or directory" in err, err
    assert not os.path.exists(os.path.join(tmp, "no"))
    # A copy that fails half way takes back what it made.
    os.mkdir(os.path.join(d.data_dir, "vapid.pem"))       # unreadable as a file
    rc, _, err = d.ctl("backup", os.path.join(tmp, "half"))
    assert rc == 1 and "vapid.pem" in err, err
    assert not os.path.exists(os.path.join(tmp, "half"))
    line = d.wait_log("cmd=backup status=500 code=backup_failed", 10)
    assert "vapid.pem" in line, line
    assert d.ok("count", "--user", "ann")["unread_count"] == 1
