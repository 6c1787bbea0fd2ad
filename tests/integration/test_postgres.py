"""[store] url: PostgreSQL. So far the connection and the schema (issue 21,
first steps): --check-config reports the server, a start with url set
migrates (once, however many nodes start together) and then refuses
plainly instead of quietly storing in SQLite."""
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


def test_a_start_with_url_refuses_rather_than_use_sqlite(postgres, tmp):
    p = notifyd(tmp, url=postgres.createdb("refuses"))
    assert p.returncode != 0
    assert "PostgreSQL store is not built yet" in p.stderr
    assert not os.path.exists(tmp + "/data/notifyd.db")


def test_nodes_starting_together_migrate_once(postgres, tmp):
    url = postgres.createdb("together")
    env = {"NOTIFYD_STORE_URL": url, "PATH": "/usr/bin:/bin"}
    procs = [subprocess.Popen([NOTIFYD, "--data-dir", "%s/n%d" % (tmp, i), "--socket",
                               "%s/n%d.sock" % (tmp, i), "--http", "off", "--smtp", "off"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(4)]
    outs = [p.communicate(timeout=60) for p in procs]
    versions = postgres.psql("SELECT version, name FROM schema_migrations ORDER BY version",
                             db="together")
    migrations = sorted(f for f in os.listdir(os.path.join(ROOT, "sql", "pg")) if f.endswith(".sql"))
    assert [v for v, _ in versions] == [str(i + 1) for i in range(len(migrations))]
    assert [os.path.basename(n) for _, n in versions] == migrations
    for (_, err) in outs:
        assert "schema version %d is in place" % len(migrations) in err, err
    tables = {r[0] for r in postgres.psql("SELECT tablename FROM pg_tables WHERE schemaname = "
                                          "'public'", db="together")}
    assert {"users", "notifications", "scheduled", "deliveries", "digests", "preferences",
            "topic_members", "api_keys", "mail", "settings"} <= tables
    # Once more: nothing to do, nothing doubled.
    notifyd(tmp, url=url)
    assert len(postgres.psql("SELECT * FROM schema_migrations", db="together")) == len(migrations)


def test_a_newer_schema_is_refused(postgres, tmp):
    url = postgres.createdb("newer")
    notifyd(tmp, url=url)
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
