#!/usr/bin/python3
"""Digests at scale, against single emails in the same run (bench/digest.sh).

USERS users in daily-digest mode with ITEMS emails parked each; then
`notifyctl digest --period daily` queues every digest, and the outbox sends
them to notifyd's own sink. Baseline, in the same run: USERS other users
(mode off) are each sent one notification, whose USERS single emails go the
same way. Reported: the time to queue the digests, the time until the sink
holds every email, and each as a rate and a ratio to the single emails'.
"""
import argparse
import concurrent.futures
import os
import shutil
import subprocess
import sys
import tempfile
import time

import requests

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
from conftest import NOTIFYCTL, Daemon  # noqa: E402


def total_mail(d):
    return requests.get(d.url + "/api/v1/messages", params={"limit": 1}, timeout=30).json()["total"]


def wait_mail(d, n, timeout=900):
    deadline = time.monotonic() + timeout
    while total_mail(d) < n:
        assert time.monotonic() < deadline, "the sink holds %d of %d" % (total_mail(d), n)
        time.sleep(0.2)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--users", type=int, default=10000)
    p.add_argument("--items", type=int, default=20)
    a = p.parse_args()
    tmp = tempfile.mkdtemp(prefix="nd-digest-")
    path = os.path.join(tmp, "d.conf")
    with open(path, "w") as f:
        f.write("[smtp]\nmail_max = 0\nmail_max_bytes = 0\n[http]\nmax_per_address = 0\n")
    d = Daemon(tmp, http=True, smtp=True, args=["--config", path])
    d.start()
    key = d.ok("key", "create", "bench")["key"]
    s = requests.Session()
    s.headers["Authorization"] = "Bearer " + key
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=16)
    s.mount("http://", adapter)
    digest_users = ["d%05d" % i for i in range(a.users)]
    single_users = ["s%05d" % i for i in range(a.users)]

    def profile(u):
        r = s.put(d.url + "/api/v1/users/" + u, json={"email": u + "@example.com"}, timeout=60)
        assert r.status_code in (200, 201), r.text
        if u.startswith("d"):
            r = s.patch(d.url + "/api/v1/users/%s/preferences" % u, json={"digest": "daily"},
                        timeout=60)
            assert r.status_code == 200, r.text
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        list(ex.map(profile, digest_users + single_users))
    for i in range(a.items):
        for j in range(0, a.users, 1000):
            r = s.post(d.url + "/api/v1/notifications", timeout=120, json={
                "users": digest_users[j:j + 1000], "type": "order_shipped",
                "data": {"order_id": "O-%d" % i, "carrier": "DHL"}})
            assert r.status_code == 201, r.text
    setup = time.monotonic() - t0
    assert total_mail(d) == 0   # everything parked

    # Baseline: one single email each to as many users.
    t0 = time.monotonic()
    for j in range(0, a.users, 1000):
        r = s.post(d.url + "/api/v1/notifications", timeout=120, json={
            "users": single_users[j:j + 1000], "type": "order_shipped",
            "data": {"order_id": "S", "carrier": "DHL"}})
        assert r.status_code == 201, r.text
    single_queued = time.monotonic() - t0
    wait_mail(d, a.users)
    single_all = time.monotonic() - t0

    # The digests.
    t0 = time.monotonic()
    out = subprocess.run([NOTIFYCTL, "-s", d.socket, "--json", "digest", "--period", "daily"],
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr
    digest_queued = time.monotonic() - t0
    wait_mail(d, 2 * a.users)
    digest_all = time.monotonic() - t0
    d.stop()
    shutil.rmtree(tmp, ignore_errors=True)

    print("| digests: %d users x %d parked emails (setup %.0f s) | queued | in the sink | per email |"
          % (a.users, a.items, setup))
    print("|---|---|---|---|")
    print("| %d single emails (baseline, same run) | %.2f s | %.2f s | %.2f ms |"
          % (a.users, single_queued, single_all, 1000 * single_all / a.users))
    print("| %d digests of %d items | %.2f s | %.2f s | %.2f ms |"
          % (a.users, a.items, digest_queued, digest_all, 1000 * digest_all / a.users))
    print("| ratio, digest / single | %.2fx | %.2fx | |"
          % (digest_queued / single_queued, digest_all / single_all))


if __name__ == "__main__":
    main()
