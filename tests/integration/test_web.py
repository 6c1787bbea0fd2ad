"""The pages as HTTP: what they are sent with (headers, gzip, ETag, HEAD),
/api/v1/status and who may read it, and a new user's empty inbox."""
import gzip
import os
import re

import requests

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PAGES = {"/": "index.html", "/inbox": "inbox.html", "/mail": "mail.html"}


def source(name):
    with open(os.path.join(ROOT, "web", name), "rb") as f:
        return f.read()


def test_pages_and_assets_are_the_files_of_web(daemons):
    d = daemons(http=True).start()
    names = [n for n in os.listdir(os.path.join(ROOT, "web"))]
    assert {"index.html", "inbox.html", "mail.html", "style.css", "common.js"} <= set(names)
    for path, name in list(PAGES.items()) + [("/assets/" + n, n) for n in names]:
        r = requests.get(d.url + path, headers={"Accept-Encoding": "identity"}, timeout=10)
        assert r.status_code == 200, path
        assert r.content == source(name), path
        ext = name.rsplit(".", 1)[1]
        assert r.headers["Content-Type"].startswith({"html": "text/html", "css": "text/css",
                                                     "js": "text/javascript",
                                                     "svg": "image/svg+xml"}[ext]), path
        csp = r.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Referrer-Policy"] == "no-referrer"
        assert r.headers["Cache-Control"] == "no-cache"
        assert "Accept-Encoding" in r.headers["Vary"]
    # No inline script or style in the pages: the CSP would refuse them.
    for name in PAGES.values():
        html = source(name).decode()
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), name
        assert "<style" not in html and " style=" not in html and " on" + "click=" not in html


def test_gzip_etag_and_head(daemons):
    d = daemons(http=True).start()
    url = d.url + "/assets/inbox.js"
    plain = requests.get(url, headers={"Accept-Encoding": "identity"}, timeout=10)
    r = requests.get(url, headers={"Accept-Encoding": "br, gzip;q=0.8"}, stream=True, timeout=10)
    raw = r.raw.read()
    assert r.headers["Content-Encoding"] == "gzip"
    assert int(r.headers["Content-Length"]) == len(raw) < len(plain.content) / 2
    assert gzip.decompress(raw) == plain.content
    # A different representation, a different tag; each revalidates to 304.
    assert r.headers["ETag"] != plain.headers["ETag"]
    for enc, tag in (("identity", plain.headers["ETag"]), ("gzip", r.headers["ETag"])):
        nm = requests.get(url, headers={"Accept-Encoding": enc, "If-None-Match": 'W/"x", ' + tag},
                          timeout=10)
        assert nm.status_code == 304 and nm.content == b"" and nm.headers["ETag"] == tag
    # gzip refused with q=0, or a stale tag: the whole file again.
    r = requests.get(url, headers={"Accept-Encoding": "gzip;q=0", "If-None-Match": '"stale"'},
                     timeout=10)
    assert r.status_code == 200 and "Content-Encoding" not in r.headers and r.content == plain.content
    # HEAD: the headers of GET, no body; on the API too.
    h = requests.head(d.url + "/inbox", headers={"Accept-Encoding": "identity"}, timeout=10)
    assert h.status_code == 200 and h.content == b""
    assert int(h.headers["Content-Length"]) == len(source("inbox.html"))
    h = requests.head(d.url + "/healthz", timeout=10)
    assert h.status_code == 200 and h.content == b"" and int(h.headers["Content-Length"]) > 0
    assert "HEAD" in requests.post(d.url + "/inbox", timeout=10).headers["Allow"]


def test_unknown_assets_are_404(daemons):
    d = daemons(http=True).start()
    for path in ("/assets/nope.js", "/assets/..%2fMakefile", "/assets/", "/assets/inbox.js/x",
                 "/inbox/x"):
        r = requests.get(d.url + path, timeout=10)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", path


def test_the_api_reference_is_the_man_page(daemons):
    d = daemons(http=True).start()
    r = requests.get(d.url + "/api", timeout=10)
    assert r.status_code == 200 and "text/html" in r.headers["Content-Type"]
    for heading in ("REST API", "WebSocket stream", "Control protocol", "Operations"):
        assert heading in r.text.replace("\n  ", " ")
    assert "/api/v1/status" in r.text


def test_status_is_for_this_machine_or_an_api_key(daemons):
    d = daemons(http=True, smtp=True).start()
    d.ok("send", "--user", "ann", "--type", "message", "--title", "Hi")
    s = requests.get(d.url + "/api/v1/status", timeout=10).json()
    assert s["listeners"] == {"http": "127.0.0.1:%d" % d.port, "smtp": "127.0.0.1:%d" % d.smtp_port,
                              "control": d.socket}
    assert s["counts"]["notifications"] == 1 and s["counts"]["users"] == 1
    assert s["base_url"] == "http://localhost:%d" % d.port and s["uptime_s"] >= 0
    c = d.ok("status")      # notifyctl status is the same operation
    assert (c["listeners"], c["counts"], c["version"]) == (s["listeners"], s["counts"], s["version"])
    # Another site's page, or a name that is not this host: credentials needed.
    r = requests.get(d.url + "/api/v1/status", headers={"Host": "evil.example"}, timeout=10)
    assert r.status_code == 401
    r = requests.get(d.url + "/api/v1/status", headers={"Origin": "https://evil.example"}, timeout=10)
    assert r.status_code == 401
    key = d.ok("key", "create", "ops")["key"]
    r = requests.get(d.url + "/api/v1/status", headers={"Host": "evil.example",
                                                        "Authorization": "Bearer " + key}, timeout=10)
    assert r.status_code == 200
    token = d.ok("token", "ann")["token"]
    r = requests.get(d.url + "/api/v1/status", headers={"Authorization": "Bearer " + token}, timeout=10)
    assert r.status_code == 403


def test_a_new_users_own_token_reads_an_empty_inbox(daemons):
    d = daemons(http=True).start()
    tok = {"Authorization": "Bearer " + d.ok("token", "newbie")["token"]}
    base = d.url + "/api/v1/users/newbie"

    def get(path, **kw):
        r = requests.get(base + path, headers=tok, timeout=10, **kw)
        assert r.status_code == 200, (path, r.text)
        return r.json()
    assert get("/notifications") == {"notifications": [], "next_before": None, "unread_count": 0}
    assert get("/unread_count") == {"unread_count": 0}
    assert get("/preferences")["digest"] == "off"
    assert get("") == {"id": "newbie", "email": None, "name": None, "tz": None, "locale": None,
                       "created_at": None}
    r = requests.post(base + "/notifications/read_all", headers=tok, timeout=10)
    assert r.status_code == 200 and r.json()["marked"] == 0
    # Nothing was created by reading; an API key still hears the truth.
    key = {"Authorization": "Bearer " + d.ok("key", "create", "svc")["key"]}
    r = requests.get(base + "/notifications", headers=key, timeout=10)
    assert r.status_code == 404 and r.json()["error"]["code"] == "user_not_found"
    # Another user's token may not look, whether that user exists or not.
    other = {"Authorization": "Bearer " + d.ok("token", "someone")["token"]}
    assert requests.get(base + "/notifications", headers=other, timeout=10).status_code == 403
