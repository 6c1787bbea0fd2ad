"""notifyd's life: start, config precedence, locking, stale sockets, shutdown, durability."""
import contextlib
import os
import re
import socket
import sqlite3
import subprocess
import threading
import time

import pytest

from conftest import NOTIFYD, Client, Daemon, free_port


def run_notifyd(*args, env=None):
    e = dict(os.environ, **(env or {}))
    return subprocess.run([NOTIFYD, *args], capture_output=True, text=True, env=e, timeout=30)


def test_version_and_help():
    p = run_notifyd("--version")
    assert p.returncode == 0 and p.stdout.startswith("notifyd 0.1.0")
    p = run_notifyd("--help")
    assert p.returncode == 0
    for s in ("--data-dir DIR", "--http HOST:PORT", "--smtp HOST:PORT", "--socket PATH",
              "--config FILE", "-v, --verbose", "[store] sync", "NOTIFYD_HTTP_LISTEN"):
        assert s in p.stdout, s
    p = run_notifyd("--bogus")
    assert p.returncode == 2 and "unknown option --bogus" in p.stderr


def config_value(out, section, key):
    cur = None
    for line in out.splitlines():
        if line.startswith("["):
            cur = line.strip("[]")
        elif cur == section and line.startswith(key + " = "):
            return line.split(" = ", 1)[1]
    raise KeyError((section, key))


def test_config_precedence(tmp):
    cfg = os.path.join(tmp, "n.conf")
    with open(cfg, "w") as f:
        f.write("[http]\nlisten = 127.0.0.1:1111\n[smtp]\nlisten = 127.0.0.1:2222\n"
                "[control]\nsocket = /tmp/from-file.sock\n")
    env = {"NOTIFYD_SMTP_LISTEN": "127.0.0.1:3333", "NOTIFYD_CONTROL_SOCKET": "/tmp/env.sock"}
    p = run_notifyd("--config", cfg, "--socket", "/tmp/flag.sock", "--print-config", env=env)
    assert p.returncode == 0, p.stderr
    assert config_value(p.stdout, "http", "listen") == "127.0.0.1:1111"     # file beats default
    assert config_value(p.stdout, "smtp", "listen") == "127.0.0.1:3333"     # env beats file
    assert config_value(p.stdout, "control", "socket") == "/tmp/flag.sock"  # flag beats env
    assert config_value(p.stdout, "store", "sync") == "full"                # default
    # The printed config is itself a valid config file.
    out = os.path.join(tmp, "printed.conf")
    with open(out, "w") as f:
        f.write(p.stdout)
    p2 = run_notifyd("--config", out, "--print-config")
    assert p2.returncode == 0 and p2.stdout == p.stdout


def test_print_config_hides_secrets(tmp):
    cfg = os.path.join(tmp, "secret.conf")
    with open(cfg, "w") as f:
        f.write("[auth]\njwt_secret = file-secret-0123456789abcdef0123456789\n"
                "[mailer]\nusername = bob\n")
    p = run_notifyd("--config", cfg, "--print-config",
                    env={"NOTIFYD_MAILER_PASSWORD": "env-password-4711"})
    assert p.returncode == 0, p.stderr
    assert "file-secret" not in p.stdout and "env-password" not in p.stdout
    assert "; jwt_secret = (set, not shown)" in p.stdout.splitlines()
    assert "; password = (set, not shown)" in p.stdout.splitlines()
    assert config_value(p.stdout, "mailer", "username") == "bob"
    # Unset, they print as the empty values they are.
    p = run_notifyd("--print-config")
    assert config_value(p.stdout, "auth", "jwt_secret") == ""
    assert config_value(p.stdout, "mailer", "password") == ""


def test_config_errors_name_file_and_line(tmp):
    cfg = os.path.join(tmp, "bad.conf")
    for text, msg in [("[http]\nlisten = 1.2.3.4:80\nbogus = 1\n", ":3: unknown key 'bogus' in section [http]"),
                      ("[nope]\n", ":1: unknown section [nope]"),
                      ("\n[store]\nsync = maybe\n", ":3: store.sync: 'maybe' is not one of full|normal")]:
        with open(cfg, "w") as f:
            f.write(text)
        p = run_notifyd("--config", cfg, "--print-config")
        assert p.returncode == 2 and cfg + msg in p.stderr, p.stderr
    p = run_notifyd("--config", os.path.join(tmp, "missing.conf"))
    assert p.returncode == 2 and "No such file" in p.stderr
    p = run_notifyd("--print-config", env={"NOTIFYD_STORE_SYNC": "sometimes"})
    assert p.returncode == 2 and "NOTIFYD_STORE_SYNC" in p.stderr
    p = run_notifyd("--http", "nonsense", "--print-config")
    assert p.returncode == 2 and "http.listen" in p.stderr


def test_check_config_reports_every_problem(tmp):
    cfg = os.path.join(tmp, "n.conf")
    with open(cfg, "w") as f:
        f.write("[http]\nlisen = 127.0.0.1:9000\nmax_body = 12Q\n"
                "[smtp]\nthis line is not ini\nmax_sesions = 3\n"
                "[nope]\nx = 1\n[server]\nstrict_templates = maybe\n"
                "[mailer]\nrelay = http://mail.example\n")
    p = run_notifyd("--config", cfg, "--check-config", "--http", "nonsense",
                    env={"NOTIFYD_STORE_SYNC": "sometimes"})
    assert p.returncode == 2 and p.stdout == "", p.stdout
    for want in (cfg + ":2: unknown key 'lisen' in section [http]; did you mean [http] listen?",
                 cfg + ":3: http.max_body: '12Q' is not a size",
                 cfg + ":5: syntax error",
                 cfg + ":6: unknown key 'max_sesions' in section [smtp]; "
                       "did you mean [smtp] max_sessions?",
                 cfg + ":7: unknown section [nope]",
                 cfg + ":10: server.strict_templates: 'maybe' is not true or false",
                 "NOTIFYD_STORE_SYNC", "--http: http.listen",
                 "[mailer] relay: 'http://mail.example' is not smtp://"):
        assert want in p.stderr, (want, p.stderr)
    # A key far from every known one gets no guess.
    with open(cfg, "w") as f:
        f.write("[http]\nzzzzzzzz = 1\n")
    p = run_notifyd("--config", cfg, "--check-config")
    assert p.returncode == 2 and "did you mean" not in p.stderr, p.stderr
    # The example configuration and a good one pass, and nothing is started.
    for text in (run_notifyd("--print-config", "--defaults").stdout,
                 "[http]\nlisten = 127.0.0.1:9000\n[server]\nstrict_templates = yes\n"):
        with open(cfg, "w") as f:
            f.write(text)
        p = run_notifyd("--config", cfg, "--check-config")
        assert (p.returncode, p.stdout) == (0, "notifyd: %s: ok\n" % cfg), p.stderr


def test_second_daemon_on_same_data_dir_refused(daemons, tmp):
    first = daemons().start()
    second = daemons(socket_path=os.path.join(tmp, "other.sock"))
    second.start(wait=False)
    assert second.proc.wait(10) == 1
    second.reader.join(5)
    assert "is in use by another notifyd (pid %d)" % first.proc.pid in second.log()
    assert first.ok("ping")["pong"]


def test_live_socket_not_stolen(daemons, tmp):
    first = daemons().start()
    second = daemons(data_dir=os.path.join(tmp, "data2"))
    second.start(wait=False)
    assert second.proc.wait(10) == 1
    second.reader.join(5)
    assert "another notifyd is listening there" in second.log()
    assert first.ok("ping")["pong"]


def test_control_clients_that_hang_up_at_once(nd):
    """A client may be gone, and its thread done with it, before the
    accepting thread has finished with the connection: nothing of it may be
    touched then (under valgrind or ASan a touch fails the daemon's exit)."""
    import socket
    for _ in range(300):
        s = socket.socket(socket.AF_UNIX)
        s.connect(nd.socket)
        s.close()
    # Their threads end as they notice; until then a new client may be one
    # too many (refused, exit 3), and then it is served.
    deadline = time.monotonic() + 30
    while True:
        rc, out, err = nd.ctl("ping")
        if rc != 3 or time.monotonic() > deadline:
            break
        assert "too many control clients" in err
        time.sleep(0.05)
    assert rc == 0 and out["pong"], (rc, out, err)


def test_stale_socket_after_kill(daemons):
    d = daemons().start()
    d.ok("send", "--user", "a", "--type", "m")
    assert d.stop("KILL") == -9
    assert os.path.exists(d.socket)  # left behind by the killed daemon
    d.start()
    assert "removed stale control socket" in d.log()
    assert d.ok("count", "--user", "a") == {"unread_count": 1}


def test_sigterm_finishes_in_flight_requests(daemons):
    d = daemons().start()
    c = d.connect()
    n = 500
    c.send_raw(b"".join(b'{"id":%d,"cmd":"send","args":{"user":"u","type":"m"}}\n' % i
                        for i in range(n)))
    first = c.read()
    assert first["ok"]
    d.proc.send_signal(15)
    replies = [first] + [c.read() for _ in range(n - 1)]
    assert all(r is not None and r["ok"] for r in replies)
    assert [r["id"] for r in replies] == list(range(n))
    assert c.read() is None  # then the daemon hangs up
    assert d.proc.wait(10) == 0
    d.reader.join(5)
    assert 'msg="notifyd stopped"' in d.log()
    assert not os.path.exists(d.socket)
    d.start()
    assert d.ok("count", "--user", "u")["unread_count"] == n


def test_sigint_stops_cleanly(daemons):
    d = daemons().start()
    assert d.stop("INT") == 0


def test_acknowledged_sends_survive_sigkill(daemons):
    """Kill -9 in the middle of a stream of sends: every acknowledged one is there."""
    d = daemons().start()
    acked = []
    done = threading.Event()

    def sender():
        c = Client(d.socket)
        i = 0
        try:
            while True:
                # Pipelined in small bursts, so the kill lands mid-burst.
                c.send_raw(b"".join(b'{"id":%d,"cmd":"send","args":{"user":"dur","type":"m","key":"k%d"}}\n'
                                    % (j, j) for j in range(i, i + 20)))
                for _ in range(20):
                    r = c.read()
                    if r is None:
                        return
                    acked.append(r["result"]["id"])
                    if len(acked) == 300:
                        done.set()
                i += 20
        except OSError:
            return
        finally:
            done.set()
    t = threading.Thread(target=sender)
    t.start()
    assert done.wait(30)
    d.proc.kill()
    d.proc.wait(10)
    t.join(10)
    assert len(acked) >= 300
    d.start()
    got = set()
    before = None
    while True:
        page = d.ok(*(["list", "--user", "dur", "--limit", "200"] + (["--before", before] if before else [])))
        got |= {x["id"] for x in page["notifications"]}
        before = page["next_before"]
        if before is None:
            break
    missing = set(acked) - got
    assert not missing, "acknowledged but lost: %r" % sorted(missing)[:10]


@pytest.mark.sqlite_only("a SQLite file of a newer schema")
def test_newer_database_refused_untouched(daemons, tmp):
    d = daemons().start()
    d.stop()
    db = os.path.join(d.data_dir, "notifyd.db")
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=DELETE")
    con.execute("PRAGMA user_version = 42")
    con.close()
    before = open(db, "rb").read()
    d2 = daemons(socket_path=os.path.join(tmp, "s2.sock"))
    d2.start(wait=False)
    assert d2.proc.wait(10) == 1
    d2.reader.join(5)
    assert "schema version 42 is newer than this notifyd understands" in d2.log()
    assert open(db, "rb").read() == before
    assert not os.path.exists(db + "-wal")


@pytest.mark.sqlite_only("looks at the size of SQLite's WAL file")
def test_wal_stays_bounded_under_back_to_back_commits(daemons):
    """One client's sends, pipelined, commit one after another with no
    pause: the passive checkpoint never found a moment to let the WAL start
    over, and the file grew by every commit (90-170 MB for these 8,000, and
    on without end). It must stay near its 32 MiB limit, and every send
    must be there."""
    d = daemons().start()
    wal = os.path.join(d.data_dir, "notifyd.db-wal")
    c = Client(d.socket)
    peak, ids = 0, []
    for _ in range(16):
        c.send_raw(b'{"id":1,"cmd":"send","args":{"user":"wal","type":"m"}}\n' * 500)
        ids += [c.read()["result"]["id"] for _ in range(500)]
        peak = max(peak, os.path.getsize(wal))
    c.close()
    assert peak < 48 << 20, "the WAL grew to %d bytes" % peak
    assert d.ok("count", "--user", "wal")["unread_count"] == len(set(ids)) == 8000
    assert d.ok("check", "--full")["ok"] is True


ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def version_6_database(data_dir, extra=""):
    """A database as notifyd left it at schema version 6, with some of everything."""
    os.makedirs(data_dir)
    con = sqlite3.connect(os.path.join(data_dir, "notifyd.db"))
    for name in sorted(os.listdir(os.path.join(ROOT, "sql")))[:6]:
        con.executescript(open(os.path.join(ROOT, "sql", name)).read())
    con.executescript("""
        PRAGMA foreign_keys = ON;
        INSERT INTO users (id, email, created_at, digest, quiet_start, quiet_end, quiet_days)
            VALUES ('alice', 'alice@example.com', 1, 'daily', 60, 420, 127),
                   ('bob', NULL, 2, 'off', NULL, NULL, NULL);
        INSERT INTO notifications (id, user_id, type, priority, title, created_at, read_at)
            VALUES (5, 'alice', 'm', 'high', 'five', 10, NULL),
                   (7, 'bob', 'm', 'low', 'seven', 11, 12);
        INSERT INTO deliveries (notification_id, channel, status, created_at, updated_at)
            VALUES (5, 'in_app', 'sent', 10, 10), (5, 'email', 'digest', 10, 10),
                   (7, 'in_app', 'sent', 11, 11), (7, 'email', 'skipped', 11, 11);
        INSERT INTO topic_members VALUES ('t', 'alice', 1), ('t', 'bob', 1);
        INSERT INTO preferences VALUES ('alice', 'm', 'email', 0);
        -- ids 8..40 were made and deleted: the sequence is past the largest id.
        UPDATE sqlite_sequence SET seq = 40 WHERE name = 'notifications';
        PRAGMA user_version = 6;
    """ + extra)
    con.commit()
    con.close()
    return os.path.join(data_dir, "notifyd.db")


@pytest.mark.sqlite_only("SQLite's migrations")
def test_upgrade_from_version_6_keeps_everything(daemons, tmp):
    """Migration 007 rebuilds users, notifications and deliveries: what was
    stored is all there, ids go on past the old sequence, and every
    constraint (CHECK, foreign key, cascade, unique) still holds."""
    db = version_6_database(os.path.join(tmp, "data"))
    d = daemons().start()
    assert "migration=sql/007_check_or.sql" in d.log()
    page = d.ok("list", "--user", "alice")["notifications"]
    assert [(n["id"], n["title"], n["priority"]) for n in page] == [(5, "five", "high")]
    assert [n["read_at"] is not None for n in d.ok("list", "--user", "bob")["notifications"]] == [True]
    alice = d.ok("user", "show", "alice")
    assert alice["email"] == "alice@example.com"
    assert sorted(m for m in d.ok("topic", "show", "t")["members"]) == ["alice", "bob"]
    # 016 counted the topic's members into its kept size.
    assert d.ok("topic", "add", "t", "carol")["count"] == 3
    assert d.ok("check")["topic_mismatches"] == []
    assert d.ok("send", "--user", "alice", "--type", "m", "--title", "new")["id"] == 41
    assert d.stop() == 0

    con = sqlite3.connect(db)
    con.execute("PRAGMA foreign_keys = ON")
    schema = dict(con.execute("SELECT name, sql FROM sqlite_schema WHERE type = 'table'"))
    assert "priority IN" not in schema["notifications"]
    assert "status IN" not in schema["deliveries"] and "digest IN" not in schema["users"]
    assert {r[0] for r in con.execute("SELECT name FROM sqlite_schema WHERE type = 'index'")} >= {
        "notifications_by_user", "notifications_unread", "notifications_scheduled",
        "deliveries_due", "topic_members_by_user"}
    assert con.execute("SELECT digest, quiet_start, quiet_end, quiet_days FROM users "
                       "WHERE id = 'alice'").fetchone() == ("daily", 60, 420, 127)
    assert con.execute("SELECT status FROM deliveries WHERE notification_id = 5 "
                       "ORDER BY channel").fetchall() == [("digest",), ("sent",)]
    assert con.execute("SELECT * FROM preferences").fetchall() == [("alice", "m", "email", 0)]
    for bad in ("INSERT INTO notifications (user_id, type, priority, created_at) "
                "VALUES ('alice', 'm', 'bogus', 1)",
                "INSERT INTO notifications (user_id, type, created_at) VALUES ('nobody', 'm', 1)",
                "INSERT INTO deliveries (notification_id, channel, status, created_at, updated_at) "
                "VALUES (5, 'email', 'bogus', 1, 1)",
                "INSERT INTO deliveries (notification_id, channel, status, created_at, updated_at) "
                "VALUES (5, 'email', 'sent', 1, 1)",
                "UPDATE users SET digest = 'hourly' WHERE id = 'bob'"):
        try:
            con.execute(bad)
        except sqlite3.IntegrityError:
            continue
        raise AssertionError("accepted: " + bad)
    con.execute("DELETE FROM notifications WHERE id = 5")
    assert con.execute("SELECT count(*) FROM deliveries WHERE notification_id = 5").fetchone() == (0,)
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    con.close()


@pytest.mark.sqlite_only("SQLite's migrations")
def test_upgrade_to_a_partial_key_index_keeps_everything(daemons, tmp):
    """Migration 015 rebuilds notifications so that only keyed rows are in
    the unique index of (user, key): every row, id, key and delivery is
    kept, ids go on past the old sequence, and a key still names one
    notification per user."""
    data = os.path.join(tmp, "data")
    os.makedirs(data)
    db = os.path.join(data, "notifyd.db")
    con = sqlite3.connect(db)
    for name in sorted(os.listdir(os.path.join(ROOT, "sql")))[:14]:
        con.executescript(open(os.path.join(ROOT, "sql", name)).read())
    con.executescript("""
        PRAGMA foreign_keys = ON;
        INSERT INTO users (id, created_at, unread) VALUES ('alice', 1, 2), ('bob', 2, 0);
        INSERT INTO notifications (id, user_id, type, title, dedupe_key, created_at, read_at,
                                   email_skipped)
            VALUES (3, 'alice', 'm', 'keyed', 'k1', 10, NULL, NULL),
                   (4, 'alice', 'm', 'plain', NULL, 11, NULL, 'no address'),
                   (6, 'bob', 'm', 'read', 'k1', 12, 13, NULL);
        INSERT INTO deliveries (notification_id, channel, status, created_at, updated_at)
            VALUES (3, 'email', 'digest', 10, 10);
        UPDATE sqlite_sequence SET seq = 20 WHERE name = 'notifications';
        PRAGMA user_version = 14;
    """)
    con.commit()
    con.close()
    d = daemons().start()
    assert "migration=sql/015_key_index_partial.sql" in d.log()
    page = d.ok("list", "--user", "alice")
    assert [(n["id"], n["title"]) for n in page["notifications"]] == [(4, "plain"), (3, "keyed")]
    assert page["unread_count"] == 2
    # The key still names alice's notification, and it is bob's too.
    again = d.ok("send", "--user", "alice", "--type", "m", "--title", "x", "--key", "k1")
    assert (again["id"], again["title"]) == (3, "keyed")
    assert d.ok("send", "--user", "bob", "--type", "m", "--title", "x", "--key", "k1")["id"] == 6
    # Past the old sequence (the two repeats above may have drawn ids of their own).
    first = d.ok("send", "--user", "alice", "--type", "m", "--title", "new")["id"]
    assert first > 20
    assert d.ok("send", "--user", "alice", "--type", "m", "--title", "new")["id"] == first + 1
    assert d.stop() == 0

    con = sqlite3.connect(db)
    con.execute("PRAGMA foreign_keys = ON")
    assert "UNIQUE" not in con.execute("SELECT sql FROM sqlite_schema "
                                       "WHERE name = 'notifications'").fetchone()[0]
    indexes = dict(con.execute("SELECT name, sql FROM sqlite_schema WHERE type = 'index' "
                               "AND tbl_name = 'notifications'"))
    assert set(indexes) == {"notifications_key", "notifications_by_user", "notifications_unread",
                            "notifications_archived", "notifications_scheduled"}
    assert "WHERE dedupe_key IS NOT NULL" in indexes["notifications_key"]
    assert con.execute("SELECT email_skipped FROM notifications WHERE id = 4").fetchone() == \
        ("no address",)
    assert con.execute("SELECT status FROM deliveries WHERE notification_id = 3").fetchall() == \
        [("digest",)]
    try:
        con.execute("INSERT INTO notifications (user_id, type, dedupe_key, created_at) "
                    "VALUES ('alice', 'm', 'k1', 1)")
        raise AssertionError("a second k1 for alice was accepted")
    except sqlite3.IntegrityError:
        pass
    con.execute("INSERT INTO notifications (user_id, type, created_at) VALUES ('alice', 'm', 1)")
    con.execute("DELETE FROM notifications WHERE id = 3")
    assert con.execute("SELECT count(*) FROM deliveries").fetchone() == (0,)
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    con.close()


@pytest.mark.sqlite_only("SQLite's migrations")
def test_migration_that_breaks_a_foreign_key_is_refused(daemons, tmp):
    """Migrations run with foreign keys off; a broken reference found after
    one is refused, and the database is left as it was."""
    db = version_6_database(os.path.join(tmp, "data"), """
        PRAGMA foreign_keys = OFF;
        INSERT INTO deliveries (notification_id, channel, status, created_at, updated_at)
            VALUES (99, 'in_app', 'sent', 1, 1);
    """)
    d = daemons()
    d.start(wait=False)
    assert d.proc.wait(10) == 1
    d.reader.join(5)
    assert "migration sql/007_check_or.sql failed: it breaks a foreign key: deliveries" in d.log()
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA user_version").fetchone() == (6,)
    assert "priority IN" in con.execute("SELECT sql FROM sqlite_schema "
                                        "WHERE name = 'notifications'").fetchone()[0]
    con.close()


def test_logs_are_logfmt_and_hold_no_secrets(nd):
    nd.ok("send", "--user", "alice smith", "--type", "m", "--title", "secret-title-text")
    nd.ok("read", "--user", "alice smith", "--all")     # logged at info, with the user
    nd.wait_log('user="alice smith"')
    for line in nd.log().splitlines():
        assert line.startswith("ts=") and " level=" in line and " msg=" in line, line
    assert "secret-title-text" not in nd.log()


def test_a_send_to_many_logs_one_line_and_each_only_at_debug(daemons):
    """A send to several users is one line at info; each notification's own
    line (with its id) is written at debug only."""
    for verbose in (False, True):
        d = daemons(args=["-v"] if verbose else []).start()
        r = d.ok("send", "--users", "ann", "--users", "bob", "--users", "cy", "--type", "m",
                 "--title", "t")
        d.wait_log('msg="notifications created" created=3 recipients=3')
        ids = [n["id"] for n in r["notifications"]]
        each = [line for line in d.log().splitlines() if 'msg="notification created"' in line]
        if verbose:
            assert sorted(int(line.split(" id=")[1].split()[0]) for line in each) == sorted(ids)
            assert all(" type=m" in line for line in each), each
        else:
            assert each == []
        d.stop()


@contextlib.contextmanager
def traced_notifyd(tmp, syscalls, *args):
    """notifyd (with args) started under strace -e trace=syscalls; yields
    its pid once it has started, stops it at the end of the block (it must
    exit 0), then reads the trace into the list yielded second."""
    trace, text = os.path.join(tmp, "trace"), []
    # LeakSanitizer cannot stop a traced process's threads to look for leaks.
    env = dict(os.environ, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0")
    p = subprocess.Popen(["strace", "-f", "-qq", "-e", "trace=" + syscalls, "-o", trace,
                          NOTIFYD, "--data-dir", os.path.join(tmp, "data"),
                          "--socket", os.path.join(tmp, "ctl.sock"), "--smtp", "off", *args],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, env=env)
    try:
        for line in p.stdout:
            if 'msg="notifyd started"' in line:
                break
        with open("/proc/%d/task/%d/children" % (p.pid, p.pid)) as f:
            pid = int(f.read().split()[0])
        yield pid, text
        os.kill(pid, 15)
        assert p.wait(60) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    with open(trace) as f:
        text.append(f.read())


def test_workers_start_without_a_sigaction_each(tmp):
    """civetweb starts each worker with sigaction(SIGPIPE, SIG_IGN), and Linux
    makes every such call walk all of the process's threads: N workers took
    time in N² to start (19,164 took 35-44 s). notifyd has already ignored
    SIGPIPE, so it answers those calls without the system call."""
    cfg = os.path.join(tmp, "n.conf")
    with open(cfg, "w") as f:
        f.write("[http]\nws_max_connections = 300\n")
    with traced_notifyd(tmp, "rt_sigaction", "--config", cfg,
                        "--http", "127.0.0.1:0") as (pid, trace):
        # Every worker has started: 300 + the reserve of 64, and the rest.
        assert len(os.listdir("/proc/%d/task" % pid)) > 364
    calls = trace[0].count("rt_sigaction(SIGPIPE, {sa_handler=SIG_IGN")
    assert 1 <= calls <= 2, calls


def test_futex_hash_is_sized_for_the_threads(tmp):
    """Linux 6.16 and later size a process's own futex hash by its CPUs (16
    slots on two), and civetweb's idle workers all wait on one futex, so
    waking any futex of their slot walked thousands of waiters. notifyd
    asks for slots for twice the threads its limits allow, a power of
    two, before it starts any; an older kernel refuses (EINVAL), which
    notifyd lets be."""
    cfg = os.path.join(tmp, "n.conf")
    with open(cfg, "w") as f:
        f.write("[http]\nws_max_connections = 1000\n")
    with traced_notifyd(tmp, "prctl,clone,clone3", "--config", cfg,
                        "--http", "127.0.0.1:0") as (_, trace):
        pass
    lines = trace[0].splitlines()
    asks = [i for i, l in enumerate(lines) if re.search(r"prctl\((PR_FUTEX_HASH|0x4e\b)", l)]
    assert len(asks) == 1, lines[:5]
    m = re.search(r"prctl\((?:PR_FUTEX_HASH|0x4e[^,]*), (?:PR_FUTEX_HASH_SET_SLOTS|0x1), "
                  r"(0x[0-9a-f]+|\d+)", lines[asks[0]])
    slots = int(m.group(1), 0)
    # Threads: 1,000 WebSockets, the reserve of 64 and the other limits' few hundred.
    assert slots & (slots - 1) == 0 and 2 * (1000 + 64) <= slots <= 4 * 2000, slots
    assert re.search(r"= 0$|EINVAL", lines[asks[0]]), lines[asks[0]]
    first_thread = next(i for i, l in enumerate(lines) if re.search(r"\bclone3?\(", l))
    assert asks[0] < first_thread


def test_no_htpasswd_is_looked_for(tmp):
    """civetweb, left to itself, looks for a .htpasswd at the root of the
    file system on every request (a failed stat each), and if one is there
    asks every request, /healthz too, for HTTP digest credentials from it.
    notifyd decides access itself: nothing is looked up, whatever the
    route or answer."""
    import requests
    port = free_port()
    with traced_notifyd(tmp, "%file", "--http", "127.0.0.1:%d" % port) as (_, trace):
        url = "http://127.0.0.1:%d" % port
        assert requests.get(url + "/healthz", timeout=30).status_code == 200
        assert requests.get(url + "/api/v1/users/ann/notifications",
                            timeout=30).status_code == 401
        assert requests.get(url + "/ws", timeout=30).status_code in (400, 401, 426)
        assert requests.get(url + "/inbox", timeout=30).status_code == 200
    assert "notifyd.db" in trace[0]         # the trace saw the daemon's files
    assert "htpasswd" not in trace[0]


@pytest.mark.parametrize("abstract", [False, True])
def test_tells_systemd_it_is_ready_reloading_and_stopping(daemons, tmp, abstract):
    # The sd_notify protocol, spoken without libsystemd: a datagram each.
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if abstract:
        name = "@notifyd-test-%d" % os.getpid()
        s.bind("\0" + name[1:])
    else:
        name = os.path.join(tmp, "notify.sock")
        s.bind(name)
    s.settimeout(60)
    try:
        d = daemons(env={"NOTIFY_SOCKET": name}).start()
        assert s.recv(256) == b"READY=1"
        d.proc.send_signal(1)
        assert s.recv(256) == b"RELOADING=1"
        assert s.recv(256) == b"READY=1"
        assert d.stop() == 0
        assert s.recv(256) == b"STOPPING=1"
    finally:
        s.close()
    assert "not told" not in d.log()
