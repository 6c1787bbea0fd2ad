"""[store] url: PostgreSQL. So far the connection (issue 21, first step):
--check-config reports the server, and a start with url set refuses
plainly instead of quietly storing in SQLite."""
import subprocess

from conftest import NOTIFYD


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
    import os
    p = notifyd(tmp, url=postgres.url())
    assert p.returncode != 0
    assert "PostgreSQL store is not built yet" in p.stderr
    assert not os.path.exists(tmp + "/data/notifyd.db")
