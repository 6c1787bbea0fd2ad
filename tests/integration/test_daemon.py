"""notifyd's life: start, config precedence, locking, stale sockets, shutdown, durability."""
import os
import sqlite3
import subprocess
import threading

from conftest import NOTIFYD, Client, Daemon


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


def test_logs_are_logfmt_and_hold_no_secrets(nd):
    nd.ok("send", "--user", "alice smith", "--type", "m", "--title", "secret-title-text")
    for line in nd.log().splitlines():
        assert line.startswith("ts=") and " level=" in line and " msg=" in line, line
    assert 'user="alice smith"' in nd.log()
    assert "secret-title-text" not in nd.log()
