"""[store] url: PostgreSQL (issue 21). --check-config reports the server; a
start with url set migrates (once, however many nodes start together) and
stores there; the store's contract (test_store) holds on it. The whole
integration suite runs against it with NOTIFYD_TEST_STORE=postgresql."""
import concurrent.futures
import os
import subprocess

from conftest import NOTIFYD

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def notifyd(tmp, *args, url):
    return subprocess.run([NOTIFYD, "--data-dir", tmp + "/data", "--socket", tmp + "/ctl.sock",
                           "--http", "off", "--smtp", "off", *args],
                          env={"NOTIFYD_STORE_URL": url, "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=60)


def test_check_config_reports_the_server(postgres, tmp):
    p = notifyd(tmp, "--check-config", url=postgres.url())
    assert p.returncode == 0, p.stderr
    assert "[store] url: PostgreSQL 15." in p.stdout and "answers" in p.stdout


def test_unreachable_is_a_clear_error_without_the_password(tmp):
    url = "postgresql://app:s3cret-pw@127.0.0.1:1/notifyd"
    p = notifyd(tmp, "--check-config", url=url)
    assert p.returncode != 0
    assert "[store] url:" in p.stderr and "127.0.0.1" in p.stderr
    assert "s3cret-pw" not in p.stderr + p.stdout
    p = notifyd(tmp, url=url)
    assert p.returncode != 0 and "[store] url:" in p.stderr
    assert "s3cret-pw" not in p.stderr + p.stdout
    # Nor does --print-config show it.
    p = notifyd(tmp, "--print-config", url=url)
    assert "s3cret-pw" not in p.stdout


def node(daemons, tmp, url, i=0, **kw):
    """A notifyd of its own (data directory, socket) on the database at url."""
    return daemons(data_dir="%s/n%d" % (tmp, i), socket_path="%s/n%d.sock" % (tmp, i),
                   env={"NOTIFYD_STORE_URL": url}, **kw)


def test_a_start_with_url_stores_in_postgresql(daemons, postgres, tmp):
    url = postgres.createdb("stores")
    d = node(daemons, tmp, url).start()
    n = d.ok("send", "--user", "ann", "--type", "message", "--title", "hello")
    assert d.ok("count", "--user", "ann")["unread_count"] == 1
    assert not os.path.exists(tmp + "/n0/notifyd.db")
    assert postgres.psql("SELECT id, user_id, title FROM notifications", db="stores") == \
        [[str(n["id"]), "ann", "hello"]]
    # The token secret is the cluster's, in the database, not a file of the node's.
    assert not os.path.exists(tmp + "/n0/jwt.secret")
    assert len(postgres.psql("SELECT value FROM settings WHERE name = 'token_secret'",
                             db="stores")) == 1


def test_nodes_starting_together_migrate_once(daemons, postgres, tmp):
    url = postgres.createdb("together")
    nodes = [node(daemons, tmp, url, i) for i in range(4)]
    for d in nodes:
        d.start(wait=False)
    for d in nodes:
        d.wait_log('msg="notifyd started"', 30)
    versions = postgres.psql("SELECT version, name FROM schema_migrations ORDER BY version",
                             db="together")
    migrations = sorted(f for f in os.listdir(os.path.join(ROOT, "sql", "pg")) if f.endswith(".sql"))
    assert [v for v, _ in versions] == [str(i + 1) for i in range(len(migrations))]
    assert [os.path.basename(n) for _, n in versions] == migrations
    tables = {r[0] for r in postgres.psql("SELECT tablename FROM pg_tables WHERE schemaname = "
                                          "'public'", db="together")}
    assert {"users", "notifications", "scheduled", "deliveries", "digests", "preferences",
            "topic_members", "api_keys", "mail", "settings"} <= tables
    # Only keyed notifications are in the key's unique index (004_key_index_partial.sql).
    indexes = {r[0]: r[1] for r in postgres.psql("SELECT indexname, indexdef FROM pg_indexes "
                                                 "WHERE tablename = 'notifications'",
                                                 db="together")}
    assert "WHERE (dedupe_key IS NOT NULL)" in indexes["notifications_key"]
    assert "notifications_user_id_dedupe_key_key" not in indexes
    # One secret of each kind for all: a token one node made is good on
    # another, and a browser subscribed through one gets pushes from all.
    # The VAPID key is made when first wanted: here, by all four at once.
    keys = set()
    with concurrent.futures.ThreadPoolExecutor(len(nodes)) as pool:
        for r in pool.map(lambda d: d.ok("push", "key"), nodes):
            keys.add(r["public_key"])
    assert len(keys) == 1
    names = postgres.psql("SELECT name FROM settings ORDER BY name", db="together")
    assert [n[0] for n in names] == ["token_secret", "vapid_private_key"]
    for d in nodes:
        assert d.stop() == 0
    # Once more: nothing to do, nothing doubled.
    nodes[0].start()
    assert len(postgres.psql("SELECT * FROM schema_migrations", db="together")) == len(migrations)


def test_topic_sizes_are_counted_at_the_upgrade_kept_by_a_trigger_and_checked(
        daemons, postgres, tmp):
    """005_topic_sizes.sql counts each topic's members into its kept size,
    and a trigger keeps it, so a change a node of the version before makes
    (plain SQL here) is counted too; check finds a size (and an unread
    counter) that drifted, and repairs it."""
    url = postgres.createdb("sizes")
    d = node(daemons, tmp, url).start()
    d.ok("send", "--user", "ann", "--type", "message", "--title", "hello")
    for t, u in (("team", "ann"), ("team", "bo"), ("gone", "ann"), ("solo", "bo")):
        d.ok("topic", "add", t, u)
    assert d.stop() == 0
    # Back to the schema before 005: no sizes kept.
    postgres.psql("DROP TRIGGER topic_members_size ON topic_members; "
                  "DROP FUNCTION topic_members_size(); DROP TABLE topics; "
                  "DELETE FROM schema_migrations WHERE version = 5", db="sizes")
    d.start()
    assert d.ok("check")["topic_mismatches"] == []
    assert d.ok("topic", "add", "team", "cy")["count"] == 3
    postgres.psql("INSERT INTO topic_members (topic, user_id, added_at) "
                  "VALUES ('new', 'ann', 1), ('new', 'bo', 1)", db="sizes")
    postgres.psql("DELETE FROM topic_members WHERE topic = 'team' AND user_id = 'cy'", db="sizes")
    assert d.ok("topic", "add", "new", "cy")["count"] == 3
    assert d.ok("topic", "add", "team", "cy")["count"] == 3
    assert d.ok("check")["topic_mismatches"] == []
    # Drift, with the trigger off for the session.
    postgres.psql("SET session_replication_role = replica; "
                  "UPDATE users SET unread = 9 WHERE id = 'ann'; "
                  "UPDATE topics SET members = 5 WHERE name = 'team'; "
                  "DELETE FROM topic_members WHERE topic = 'gone'; "
                  "DELETE FROM topics WHERE name = 'solo'", db="sizes")
    check = d.ctl("check", check=1)[1]
    assert not check["ok"]
    assert check["unread_mismatches"] == [{"user": "ann", "counter": 9, "actual": 1}]
    assert check["topic_mismatches"] == [
        {"topic": "gone", "counter": 1, "actual": 0}, {"topic": "solo", "counter": 0, "actual": 1},
        {"topic": "team", "counter": 5, "actual": 3}]
    assert d.ok("check", "--repair")["repaired"] == 4
    check = d.ok("check")
    assert check["ok"] and check["unread_mismatches"] == [] and check["topic_mismatches"] == []
    assert d.ok("topic", "add", "solo", "cy")["count"] == 2
    assert d.ok("topic", "add", "gone", "cy")["count"] == 1
    assert d.ok("topic", "rm", "gone", "cy")["count"] == 0
    assert postgres.psql("SELECT count(*) FROM topics WHERE name = 'gone'", db="sizes") == [["0"]]


def test_a_newer_schema_is_refused(daemons, postgres, tmp):
    url = postgres.createdb("newer")
    d = node(daemons, tmp, url).start()
    assert d.stop() == 0
    postgres.psql("INSERT INTO schema_migrations (version, name) VALUES (999, 'future')",
                  db="newer")
    p = notifyd(tmp, url=url)
    assert p.returncode != 0 and "newer than this notifyd" in p.stderr


def test_the_store_contract_holds_on_postgresql(postgres):
    """test_store's cases, through the store interface (store.h), against
    PostgreSQL: the second backend answers as the first. The cases about
    SQLite's own files, query plans and read watermark are skipped there."""
    binary = os.path.join(ROOT, os.environ.get("OUT", "build/default"), "tests", "test_store")
    p = subprocess.run([binary], env=dict(os.environ, NOTIFYD_TEST_PG_URL=postgres.createdb(
        "contract")), capture_output=True, text=True, timeout=300)
    out = p.stdout + p.stderr
    assert p.returncode == 0 and "[  PASSED  ]" in out and "SKIPPED" in out, out
