"""Faults from outside: a full disk, with nothing acknowledged lost and nothing half-written."""
import os
import socket
import sqlite3
import subprocess

import pytest
import requests

from conftest import WRAPPER


@pytest.fixture
def small_fs(tmp):
    """A 24 MiB file system of the test's own (tmpfs); skipped where mount is not allowed."""
    path = os.path.join(tmp, "small")
    os.mkdir(path)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", path],
                       capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip("cannot mount a small file system here: " + p.stderr.strip())
    yield path
    subprocess.run(["umount", "-l", path], capture_output=True)


def smtp_message(port, body):
    """Send one message; the reply code to its end of DATA."""
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    f = s.makefile("rb")

    def code():
        while True:
            line = f.readline()
            if line[3:4] != b"-":
                return int(line[:3])
    code()
    s.sendall(b"EHLO x\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n")
    [code() for _ in range(4)]
    s.sendall(b"Subject: fill\r\n\r\n" + body + b"\r\n.\r\nQUIT\r\n")
    rc = code()
    f.close()
    s.close()
    return rc


@pytest.mark.skipif(bool(WRAPPER), reason="filling a disk under valgrind proves nothing more")
@pytest.mark.sqlite_only("the data directory's disk fills")
def test_disk_full_refuses_cleanly_and_recovers(daemons, tmp, small_fs):
    data = os.path.join(small_fs, "data")
    conf = os.path.join(tmp, "c.conf")
    with open(conf, "w") as f:
        f.write("[smtp]\ndisk_reserve = 6M\nmail_max_bytes = 0\n")
    d = daemons(http=True, smtp=True, data_dir=data, args=["--config", conf]).start()
    key = d.ok("key", "create", "k")["key"]
    # Room to give back later, so recovery needs no operator but a deleted file.
    ballast = os.path.join(small_fs, "ballast")
    with open(ballast, "wb") as f:
        f.write(b"\0" * (4 << 20))
    s = requests.Session()
    s.headers["Authorization"] = "Bearer " + key
    body = "x" * 60000
    acked, mail, refusals = [], [], {}
    for i in range(2000):
        r = s.post(d.url + "/api/v1/notifications",
                   json={"user": "u", "type": "m", "body": body, "key": "k%d" % i}, timeout=30)
        if r.status_code == 201:
            acked.append(r.json()["id"])
        else:
            refusals[r.status_code] = r.json()["error"]["code"]
            break
        if i % 10 == 0:   # mail keeps arriving meanwhile
            mail.append(smtp_message(d.smtp_port, (b"m" * 76 + b"\r\n") * 650))
    # The sink stopped at its reserve, with a 452, well before the inbox did.
    assert 250 in mail and mail[-1] == 452 and set(mail) <= {250, 452}, mail
    assert refusals == {503: "storage_full"}, refusals
    r = s.post(d.url + "/api/v1/notifications", json={"user": "u", "type": "m", "body": body})
    assert r.status_code == 503 and r.headers["Retry-After"] == "5"
    assert requests.get(d.url + "/healthz").status_code == 200   # up, reads answer
    assert d.ok("ping")["pong"] is True
    # Space comes back: writes go on at once.
    os.remove(ballast)
    r = s.post(d.url + "/api/v1/notifications", json={"user": "u", "type": "m", "key": "after"})
    assert r.status_code == 201
    acked.append(r.json()["id"])
    assert smtp_message(d.smtp_port, b"back") in (250, 452)
    # Every acknowledged one is there once; nothing refused was half-written.
    got, before = [], None
    while True:
        page = d.ok("list", "--user", "u", "--limit", "200", *(["--before", before] if before else []))
        got += [n["id"] for n in page["notifications"]]
        before = page["next_before"]
        if before is None:
            break
    assert sorted(got) == sorted(acked)
    assert d.stop() == 0
    con = sqlite3.connect(os.path.join(data, "notifyd.db"))
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("SELECT count(*) FROM notifications").fetchone()[0] == len(acked)
    con.close()
