"""notifyctl against a private notifyd: every command, shapes, exit statuses."""
import os
import re
import subprocess

from conftest import NOTIFYCTL

NOTIFICATION_KEYS = {"id", "user", "type", "category", "priority", "title", "body",
                     "data", "url", "created_at", "read_at", "archived_at"}


def test_ping(nd):
    r = nd.ok("ping")
    assert r["pong"] is True and r["protocol"] == 1 and r["version"]


def test_send_list_show_read_count(nd):
    n = nd.ok("send", "--user", "alice", "--type", "order_shipped", "--title", "Shipped",
              "--body", "Your order is on its way", "--data", "order=A-1",
              "--data", "items:=3", "--priority", "high", "--category", "orders",
              "--url", "https://shop.example/o/A-1")
    assert set(n) == NOTIFICATION_KEYS
    assert n["user"] == "alice" and n["type"] == "order_shipped"
    assert n["data"] == {"order": "A-1", "items": 3}
    assert n["priority"] == "high" and n["read_at"] is None
    assert n["created_at"].endswith("Z") and "T" in n["created_at"]

    m = nd.ok("send", "--user", "alice", "--type", "message", "--title", "Second")
    assert m["id"] > n["id"]
    assert m["priority"] == "normal" and m["data"] is None and m["category"] is None

    page = nd.ok("list", "--user", "alice")
    assert set(page) == {"notifications", "next_before", "unread_count"}
    assert [x["id"] for x in page["notifications"]] == [m["id"], n["id"]]
    assert page["unread_count"] == 2 and page["next_before"] is None
    assert page["notifications"][1] == n

    assert nd.ok("show", n["id"]) == n
    assert nd.ok("count", "--user", "alice") == {"unread_count": 2}

    r = nd.ok("read", "--user", "alice", n["id"])
    assert r == {"ids": [n["id"]], "unread_count": 1}
    assert nd.ok("show", n["id"])["read_at"] is not None
    # Reading again changes nothing and says so.
    assert nd.ok("read", "--user", "alice", n["id"]) == {"ids": [], "unread_count": 1}
    assert [x["id"] for x in nd.ok("list", "--user", "alice", "--unread")["notifications"]] == [m["id"]]

    r = nd.ok("unread", "--user", "alice", n["id"])
    assert r == {"ids": [n["id"]], "unread_count": 2}

    r = nd.ok("read", "--user", "alice", "--all")
    assert r == {"up_to": m["id"], "marked": 2, "unread_count": 0}
    assert nd.ok("count", "--user", "alice") == {"unread_count": 0}


def test_idempotency_key(nd):
    a = nd.ok("send", "--user", "alice", "--type", "message", "--title", "one", "--key", "evt-1")
    b = nd.ok("send", "--user", "alice", "--type", "message", "--title", "two", "--key", "evt-1")
    assert a == b and b["title"] == "one"
    c = nd.ok("send", "--user", "bob", "--type", "message", "--key", "evt-1")
    assert c["id"] != a["id"]
    assert len(nd.ok("list", "--user", "alice")["notifications"]) == 1


def test_pagination_and_filters(nd):
    c = nd.connect()
    for i in range(125):
        c.send("send", {"user": "pat", "type": "even" if i % 2 == 0 else "odd",
                        "category": "c%d" % (i % 3)}, id=i)
    ids = [c.read()["result"]["id"] for _ in range(125)]
    c.close()
    seen, before = [], None
    while True:
        args = ["list", "--user", "pat"] + (["--before", before] if before else [])
        page = nd.ok(*args)
        seen += [x["id"] for x in page["notifications"]]
        before = page["next_before"]
        if before is None:
            break
        assert len(page["notifications"]) == 50
    assert seen == sorted(ids, reverse=True)
    page = nd.ok("list", "--user", "pat", "--limit", "200", "--type", "odd")
    assert len(page["notifications"]) == 62 and all(x["type"] == "odd" for x in page["notifications"])
    page = nd.ok("list", "--user", "pat", "--limit", "200", "--category", "c1")
    assert len(page["notifications"]) == 42
    assert nd.ok("list", "--user", "pat", "--limit", "1")["next_before"] == ids[-1]
    rc, _, err = nd.ctl("list", "--user", "pat", "--limit", "201")
    assert rc == 1 and "limit" in err


def test_errors_and_exit_status(nd, tmp):
    nd.ok("send", "--user", "alice", "--type", "message")
    bob = nd.ok("send", "--user", "bob", "--type", "message")
    # 1: refused by notifyd, with a one-line message.
    for args, words in [
        (["list", "--user", "ghost"], "no user 'ghost'"),
        (["count", "--user", "ghost"], "no user 'ghost'"),
        (["show", "9999"], "no notification 9999"),
        (["read", "--user", "alice", bob["id"]], "no notification"),
        (["send", "--user", "a", "--type", "message", "--priority", "max"], "priority"),
        (["send", "--user", "a", "--type", "Not A Type"], "'type'"),
        (["send", "--user", "a", "--type", "m", "--url", "javascript:alert(1)"], "'url'"),
        (["read", "--user", "alice"], "either 'ids' or 'all'"),
    ]:
        rc, out, err = nd.ctl(*args)
        assert rc == 1, args
        assert err.startswith("notifyctl: ") and words in err and err.count("\n") == 1, err
    # 2: usage, before any contact with notifyd.
    for args in (["send", "--user", "a"], ["frobnicate"], ["list", "--user", "a", "--limit", "x"],
                 ["show"], ["show", "0"], ["send", "--user", "a", "--type", "m", "--data", "novalue"],
                 ["list", "--user", "a", "--bogus", "1"], ["read", "--user", "a", "x"]):
        rc, _, err = nd.ctl(*args)
        assert rc == 2, (args, err)
        assert err.startswith("notifyctl: ")
    # 3: unreachable.
    p = subprocess.run([NOTIFYCTL, "-s", os.path.join(tmp, "none.sock"), "ping"],
                       capture_output=True, text=True)
    assert p.returncode == 3 and "cannot reach notifyd" in p.stderr


def test_human_output(nd):
    p = subprocess.run([NOTIFYCTL, "-s", nd.socket, "send", "--user", "al", "--type", "message",
                        "--title", "Hello\nworld"], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout == "notification 1 for al\n"
    p = subprocess.run([NOTIFYCTL, "-s", nd.socket, "list", "--user", "al"],
                       capture_output=True, text=True)
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["ID", "CREATED", "STATE", "TYPE", "TITLE"]
    assert lines[1].split()[0] == "1" and "unread" in lines[1] and "Hello?world" in lines[1]
    assert lines[-1] == "1 unread"
    p = subprocess.run([NOTIFYCTL, "-s", nd.socket, "count", "--user", "al"],
                       capture_output=True, text=True)
    assert p.stdout == "1\n"


def test_help_comes_from_the_table(nd):
    p = subprocess.run([NOTIFYCTL, "help"], capture_output=True, text=True)
    assert p.returncode == 0
    for cmd in ("ping", "send", "list", "show", "read", "unread", "count", "help"):
        assert "\n  %s " % cmd in p.stdout
    p = subprocess.run([NOTIFYCTL, "help", "send"], capture_output=True, text=True)
    assert "--user USER" in p.stdout and "--key KEY" in p.stdout and "(required)" in p.stdout
    p = subprocess.run([NOTIFYCTL, "read", "--help"], capture_output=True, text=True)
    assert p.stdout.startswith("usage: notifyctl read --user USER [ID...] [--all]")
    # A group of commands, alone, asked about, or with --help: its commands.
    for argv, rc, out in ((["mail"], 2, "stderr"), (["help", "mail"], 0, "stdout"),
                          (["mail", "--help"], 0, "stdout")):
        p = subprocess.run([NOTIFYCTL] + argv, capture_output=True, text=True)
        text = getattr(p, out)
        assert p.returncode == rc and text.startswith("usage: notifyctl mail COMMAND"), (argv, p)
        assert "\n  mail list " in text and "\n  mail wait " in text and "\n  send " not in text
    p = subprocess.run([NOTIFYCTL, "mailx"], capture_output=True, text=True)
    assert p.returncode == 2 and "unknown command 'mailx'" in p.stderr


def test_default_socket_from_xdg(daemons, tmp):
    """notifyd and notifyctl agree on the socket without being told."""
    run = os.path.join(tmp, "run")
    os.mkdir(run, 0o700)
    env = {"XDG_RUNTIME_DIR": run}
    d = daemons(env=env, socket_path=os.path.join(run, "notifyd.sock"), pass_socket=False)
    d.start()
    assert os.path.exists(d.socket)
    p = subprocess.run([NOTIFYCTL, "--json", "ping"], capture_output=True, text=True,
                       env=dict(os.environ, XDG_RUNTIME_DIR=run), cwd="/")
    assert p.returncode == 0, p.stderr
    env_sock = dict(os.environ, NOTIFYD_CONTROL_SOCKET=os.path.join(run, "notifyd.sock"))
    env_sock.pop("XDG_RUNTIME_DIR", None)
    p = subprocess.run([NOTIFYCTL, "ping"], capture_output=True, text=True, env=env_sock)
    assert p.returncode == 0, p.stderr


def test_rest_era_commands(nd):
    """The commands the REST issue added, through notifyctl's own parsing."""
    r = nd.ok("send", "--users", "a", "--users", "b", "--type", "m", "--title", "hi")
    assert r["count"] == 2 and [n["user"] for n in r["notifications"]] == ["a", "b"]
    assert nd.ok("topic", "add", "team", "a") == {"topic": "team", "user": "a", "count": 1}
    assert nd.ok("topic", "add", "team", "c")["count"] == 2
    assert nd.ok("topic", "show", "team") == {"topic": "team", "count": 2, "members": ["a", "c"]}
    assert nd.ok("send", "--topic", "team", "--type", "m")["count"] == 2
    assert nd.ok("topic", "rm", "team", "a") == {"topic": "team", "user": "a", "count": 1}
    assert nd.ok("topic", "show", "team")["members"] == ["c"]
    rc, _, err = nd.ctl("topic", "rm", "team", "a")
    assert rc == 1 and "not a member" in err

    first = nd.ok("list", "--user", "a")["notifications"][0]["id"]
    assert nd.ok("archive", "--user", "a", first) == {"ids": [first], "unread_count": 1}
    assert [n["id"] for n in nd.ok("list", "--user", "a", "--archived")["notifications"]] == [first]
    assert nd.ok("unarchive", "--user", "a", first)["unread_count"] == 2
    assert nd.ok("delete", first) == {"id": first, "deleted": True}
    assert nd.ctl("show", first)[0] == 1

    u = nd.ok("user", "set", "a", "--email", "a@example.com", "--tz", "Europe/Berlin")
    assert u["email"] == "a@example.com" and u["tz"] == "Europe/Berlin"
    assert nd.ok("user", "show", "a")["tz"] == "Europe/Berlin"
    assert nd.ok("user", "set", "a", "--email", "")["email"] is None
    rc, _, err = nd.ctl("user", "set", "a", "--tz", "Nowhere/Else")
    assert rc == 1 and "'tz'" in err

    # key create prints the key alone on stdout (for $(...)), the notice on stderr.
    p = subprocess.run([NOTIFYCTL, "-s", nd.socket, "key", "create", "ci"], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.startswith("nk_") and p.stdout.count("\n") == 1
    assert "shown only this once" in p.stderr
    assert [k["name"] for k in nd.ok("key", "list")["keys"]] == ["ci"]
    assert nd.ok("key", "revoke", "ci")["revoked"] is True
    assert nd.ok("key", "list")["keys"][0]["revoked_at"] is not None
    t = nd.ok("token", "a", "--ttl", "10m")
    assert t["user"] == "a" and t["token"].count(".") == 2
    assert nd.ctl("token", "a", "--ttl", "soon")[0] == 2
    assert p.stdout.strip() not in nd.log() and t["token"] not in nd.log()


def test_missing_template_variables_are_warned_of(nd, daemons, tmp):
    # order_shipped shows {{order_id}}; "order" is a typo the user would not see.
    p = subprocess.run([NOTIFYCTL, "-s", nd.socket, "send", "--user", "al", "--type",
                        "order_shipped", "--data", "order=A-17", "--data", "carrier=DHL"],
                       capture_output=True, text=True)
    assert p.returncode == 0 and p.stderr == (
        "notifyctl: warning: order_shipped: 'order_id' is not in the data, so it renders "
        "empty in title, body\n"), p.stderr
    n = nd.ok("send", "--user", "al", "--type", "order_shipped", "--data", "order=A-18")
    assert [w["variable"] for w in n["warnings"]] == ["order_id"]
    assert n["warnings"][0]["parts"] == ["title", "body"] and n["title"] == "Order  has shipped"
    # Given, or tested for by a section ({{#carrier}}), nothing is missing.
    n = nd.ok("send", "--user", "al", "--type", "order_shipped", "--data", "order_id=A-19")
    assert "warnings" not in n and n["title"] == "Order A-19 has shipped"
    # The generic type's own fields may be left out.
    assert "warnings" not in nd.ok("send", "--user", "al", "--type", "message", "--title", "t")
    # An email part counts too (order_created's HTML shows order_id; title and body given).
    n = nd.ok("send", "--user", "al", "--type", "order_created", "--title", "t", "--body", "b")
    assert n["warnings"][0]["parts"] == ["txt", "html"], n["warnings"]
    r = nd.ok("template", "render", "payment_failed", "--data", "amount=5")
    assert [w["variable"] for w in r["warnings"]] == ["currency"]

    cfg = os.path.join(tmp, "strict.conf")
    with open(cfg, "w") as f:
        f.write("[server]\nstrict_templates = true\n")
    strict = daemons(args=["--config", cfg], data_dir=os.path.join(tmp, "d2"),
                     socket_path=os.path.join(tmp, "s2.sock")).start()
    rc, out, err = strict.ctl("send", "--user", "al", "--type", "payment_failed",
                              "--data", "amount=5")
    assert rc == 1 and "payment_failed: the data lacks currency" in err, err
    assert strict.ctl("list", "--user", "al")[2] == "notifyctl: no user 'al'\n"  # nothing stored
    assert strict.ok("send", "--user", "al", "--type", "payment_failed", "--data", "amount=5",
                     "--data", "currency=EUR")["title"] == "Payment of 5 EUR failed"


def test_bash_completion_comes_from_the_table(tmp):
    script = subprocess.run([NOTIFYCTL, "completion", "bash"], capture_output=True, text=True,
                            check=True).stdout
    path = os.path.join(tmp, "notifyctl.bash")
    with open(path, "w") as f:
        f.write(script)

    def complete(*words):
        """What bash offers after `notifyctl WORDS...` (the last word being typed)."""
        quoted = " ".join("'%s'" % w for w in ("notifyctl",) + words)
        p = subprocess.run(["bash", "--norc", "--noprofile", "-c",
                            'source "$1"; COMP_WORDS=(%s); COMP_CWORD=%d; _notifyctl; '
                            'printf "%%s\\n" "${COMPREPLY[@]}"' % (quoted, len(words)),
                            "bash", path], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        return set(p.stdout.split())

    help_text = subprocess.run([NOTIFYCTL, "help"], capture_output=True, text=True).stdout
    commands = re.findall(r"^  ([a-z]+(?: [a-z]+)?) {2,}", help_text, re.M)
    assert len(commands) > 30
    first = complete("")
    for cmd in commands:
        words = cmd.split()
        assert words[0] in first, cmd
        if len(words) == 2:
            assert words[1] in complete(words[0], ""), cmd
        if cmd == "help":
            assert complete("help", "") >= {"send", "mail"}
            continue
        usage = subprocess.run([NOTIFYCTL, "help", *words], capture_output=True,
                               text=True).stdout.splitlines()[0]
        flags = set(re.findall(r"--[a-z-]+", usage))
        offered = complete(*words, "--")
        assert flags <= offered, (cmd, flags - offered)
    # Global options before the command, and prefixes.
    assert complete("--json", "mail", "") >= {"list", "show", "wait"}
    assert complete("-s", "/tmp/x", "se") == {"send"}
    assert complete("send", "--us") == {"--user", "--users"}
