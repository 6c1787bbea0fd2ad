"""WebSocket benchmark of notifyd: connections held, memory per connection,
send-to-receive latency of topic sends and of single-user sends.

    /usr/bin/python3 bench/ws.py [--conns 19000] [--topic 10000] [--rate 1000] [--secs 10]
        [--procs 2] [--client c|python]

Starts a private notifyd (ws_max_connections raised for the run), holds
--conns connections (some users with two devices) from --procs client
processes for the members of a topic and as many for everyone else
(bin/ws_client, or bench/ws_client.py, which parses every frame in
Python). With only the members' --topic connections open (the
single-user target's condition) it sends them single-user notifications
at --rate per second for --secs seconds (bin/post_client: 4 keep-alive
connections, paced) and measures each; then it opens everyone else's,
up to --conns, sends to the topic 5 times and measures when each
member's connection receives it. With notifyd stopped, it then runs
bin/fanout_floor, the kernel alone writing a frame of the same size to as
many loopback connections, as the topic sends' baseline. `sh bench/ws.sh`
builds the three tools. NOTIFYD_BIN names another notifyd to measure
(an older build, for an alternated comparison); bin/notifyd otherwise.
WS_PROFILE is a command run through the topic sends alone, {pid} the
daemon's, stopped with SIGINT after them (perf record -p {pid} ...).
Prints a markdown report for bench/RESULTS.md.
"""
import argparse
import http.client
import json
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
NOTIFYD = os.environ.get("NOTIFYD_BIN") or os.path.join(ROOT, "bin", "notifyd")
POST_CLIENT = os.path.join(ROOT, "bin", "post_client")
FANOUT_FLOOR = os.path.join(ROOT, "bin", "fanout_floor")
HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Ctl:
    """Pipelined control-protocol client."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.connect(path)
        self.f = self.s.makefile("rb")
        self.f.readline()

    def many(self, reqs):
        out = []
        for i in range(0, len(reqs), 500):
            chunk = reqs[i:i + 500]
            self.s.sendall(b"".join(json.dumps({"id": j, "cmd": c, "args": a}).encode() + b"\n"
                                    for j, (c, a) in enumerate(chunk)))
            for _ in chunk:
                r = json.loads(self.f.readline())
                if not r["ok"]:
                    raise RuntimeError(r)
                out.append(r["result"])
        return out


def cpu_ms(groups):
    """CPU ms (user + system) so far of each (name, pid, thread name or None) group."""
    tick = 1000 / os.sysconf("SC_CLK_TCK")
    out = {}
    for name, pid, comm in groups:
        total = 0
        for t in os.listdir("/proc/%d/task" % pid):
            try:
                st = open("/proc/%d/task/%s/stat" % (pid, t)).read()
            except OSError:
                continue
            tname = st[st.index("(") + 1:st.rindex(")")]
            f = st[st.rindex(")") + 2:].split()
            if comm is None or tname == comm:
                total += int(f[11]) + int(f[12])
        out[name] = out.get(name, 0) + total * tick
    return out


def kdamonds():
    """(pid, sampling interval in ms) of each running DAMON thread: a kernel
    memory monitor some VMs run, which takes a core for ms at every sample."""
    out = []
    root = "/sys/kernel/mm/damon/admin/kdamonds"
    for k in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        try:
            with open(os.path.join(root, k, "state")) as f:
                if f.read().strip() != "on":
                    continue
            with open(os.path.join(root, k, "pid")) as f:
                pid = int(f.read())
            with open(os.path.join(root, k, "contexts/0/monitoring_attrs/intervals/sample_us")) as f:
                out.append((pid, int(f.read()) / 1000))
        except (OSError, ValueError):
            continue
    return out


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))] if xs else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--conns", type=int, default=19000)
    ap.add_argument("--topic", type=int, default=10000)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--secs", type=int, default=10)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--client", choices=("c", "python"), default="c",
                    help="load client: bin/ws_client (C) or bench/ws_client.py")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.conns + 200 > hard:
        sys.exit("the open-file limit (%d) is below --conns + 200" % hard)

    for tool in (POST_CLIENT, FANOUT_FLOOR):
        if not os.access(tool, os.X_OK):
            sys.exit("build it first: make %s" % os.path.relpath(tool, ROOT))
    if args.client == "c":
        client = [os.path.join(ROOT, "bin", "ws_client")]
        if not os.access(client[0], os.X_OK):
            sys.exit("build it first: make bin/ws_client")
    else:
        client = [sys.executable, os.path.join(HERE, "ws_client.py")]
    tmp = tempfile.mkdtemp(prefix="notifyd-wsbench.")
    port = free_port()
    sock = os.path.join(tmp, "ctl.sock")
    with open(os.path.join(tmp, "n.conf"), "w") as f:
        f.write("[server]\nlog_level = warn\n[store]\nsync = normal\n"
                "[http]\nws_max_connections = %d\nws_per_user = 4\n"
                "max_per_address = 0\n" % (args.conns + 100))  # every client is 127.0.0.1
    t0 = time.monotonic()
    d = subprocess.Popen([NOTIFYD, "--config", os.path.join(tmp, "n.conf"), "--data-dir",
                          os.path.join(tmp, "data"), "--socket", sock, "--http",
                          "127.0.0.1:%d" % port, "--smtp", "off"], stderr=subprocess.PIPE, text=True)
    while True:
        try:
            ctl = Ctl(sock)
            break
        except OSError:
            if d.poll() is not None:
                sys.exit(d.stderr.read())
            time.sleep(0.01)
    start_s = time.monotonic() - t0
    rss_idle = rss_kib(d.pid)
    procs = []
    prof = None
    try:
        # Users: the first `twice` have two devices; everyone else one.
        twice = min(2000, args.conns // 10)
        nusers = args.conns - twice
        users = ["u%d" % i for i in range(nusers)]
        tokens = [r["token"] for r in ctl.many([("token", {"user": u, "ttl": "2h"}) for u in users])]
        conns = [(users[i], tokens[i]) for i in range(nusers)] + \
                [(users[i], tokens[i]) for i in range(twice)]
        # Topic members holding exactly --topic connections: one-device users
        # first, then two-device ones.
        topic_users, held_by = [], 0
        for i in list(range(twice, nusers)) + list(range(twice)):
            if held_by >= args.topic:
                break
            topic_users.append(users[i])
            held_by += 2 if i < twice else 1
        ctl.many([("topic.add", {"topic": "everyone", "user": u}) for u in topic_users])
        key = ctl.many([("key.create", {"name": "bench"})])[0]["key"]

        random.shuffle(conns)
        members = set(topic_users)
        outputs = []

        def open_conns(group):
            """Open group's connections from --procs clients; the seconds it took."""
            t = time.monotonic()
            ps = []
            for i in range(args.procs):
                p = subprocess.Popen(client,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                p.stdin.write(json.dumps({"url": "ws://127.0.0.1:%d/ws" % port,
                                          "conns": group[i::args.procs]}) + "\n")
                p.stdin.flush()
                procs.append(p)
                ps.append(p)
            for p in ps:
                line = p.stdout.readline().strip()
                if line != "ready":
                    raise RuntimeError("client: %s" % line)
            took = time.monotonic() - t
            for p in ps:
                lines = []
                outputs.append(lines)
                threading.Thread(target=lambda p=p, l=lines: l.extend(p.stdout),
                                 daemon=True).start()
            return took

        def post(c, body):
            """The 201's time (its status line in) and its body, unparsed."""
            c.request("POST", "/api/v1/notifications", json.dumps(body),
                      {"Authorization": "Bearer " + key, "Content-Type": "application/json"})
            r = c.getresponse()
            acked = time.time()  # the status line is in: the send is acknowledged
            data = r.read()
            if r.status != 201:
                raise RuntimeError(data)
            return acked, data

        # First the topic's members: --topic connections, the single-user
        # target's condition. Single-user sends to them at --rate per second
        # from bin/post_client (4 keep-alive connections, paced, in C).
        connect_s = open_conns([c for c in conns if c[0] in members])
        rss_members = rss_kib(d.pid)
        single_open = ctl.many([("connections", {})])[0]["total"]
        damon = kdamonds()
        damon_cpu = cpu_ms([("kdamond", pid, None) for pid, _ in damon]).get("kdamond", 0)
        pc = subprocess.Popen([POST_CLIENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
        out, _ = pc.communicate(json.dumps({"host": "127.0.0.1", "port": port, "key": key,
                                            "users": topic_users, "rate": args.rate,
                                            "secs": args.secs, "conns": 4}))
        single_ids, single_rtt, rate_s = set(), [], None
        for line in out.splitlines():
            parts = line.split()
            if parts[0] == "sent":
                single_ids.add(int(parts[1]))
                single_rtt.append(float(parts[2]))
            elif parts[0] == "done":
                rate_s = float(parts[2])
        if pc.returncode != 0 or rate_s is None:
            raise RuntimeError("post_client: %s" % out[-500:])
        damon_cpu = cpu_ms([("kdamond", pid, None) for pid, _ in damon]).get("kdamond", 0) - damon_cpu

        # Then everyone else, up to --conns held.
        rss_before_others = rss_kib(d.pid)
        connect_s += open_conns([c for c in conns if c[0] not in members])
        held = ctl.many([("connections", {})])[0]["total"]
        rss_full = rss_kib(d.pid)
        rss_conns = (rss_members - rss_idle) + (rss_full - rss_before_others)

        # Topic sends: 5, a second apart, with the CPU each took: the HTTP
        # workers (the request, which also runs the write and builds the
        # frames), notifyd's own threads (hub senders, timers) and the clients.
        c = http.client.HTTPConnection("127.0.0.1", port)
        topic_ids, topic_send, topic_ack = set(), {}, []
        groups = [("http workers", d.pid, "civetweb-worker"), ("notifyd threads", d.pid, "notifyd"),
                  ("clients", procs[0].pid, None)] + [("clients", p.pid, None) for p in procs[1:]]
        topic_cpu = []
        # A profiler for the topic sends alone, e.g. WS_PROFILE='perf record
        # -g -o /tmp/p.data -p {pid}': started here, stopped (SIGINT) after.
        # In a session of its own, so that the SIGINT reaches the profiler
        # and not only the shell that started it (dash does not exec it).
        if os.environ.get("WS_PROFILE"):
            prof = subprocess.Popen(os.environ["WS_PROFILE"].format(pid=d.pid), shell=True,
                                    start_new_session=True)
            time.sleep(1)  # perf attaches to 19,000 threads before it samples
        for k in range(5):
            before = cpu_ms(groups)
            sent_at = time.time()
            acked, body = post(c, {"topic": "everyone", "type": "m", "title": "all",
                                   "data": {"sent_at": "%.6f" % sent_at}})
            topic_ack.append((acked - sent_at) * 1000)
            time.sleep(1)
            after = cpu_ms(groups)
            # Parsed once the second is over: 10,000 notifications of JSON are
            # tens of ms of this process's CPU, on the cores the send runs on.
            r = json.loads(body)
            topic_ids |= {n["id"] for n in r["notifications"]}
            frame_bytes = len(json.dumps({"type": "notification", "data": r["notifications"][0]},
                                         separators=(",", ":")))
            topic_send.update((n["id"], k) for n in r["notifications"])
            topic_cpu.append({g: after[g] - before[g] for g in after})
        if prof is not None:
            os.killpg(prof.pid, signal.SIGINT)
            prof.wait(60)
            prof = None
    finally:
        if prof is not None:
            os.killpg(prof.pid, signal.SIGKILL)
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
        d.terminate()
        d.wait(60)
        shutil.rmtree(tmp, ignore_errors=True)

    # The baseline, with notifyd stopped: the kernel alone writing one frame
    # of the same size to as many loopback connections, read by one process.
    floor = subprocess.run([FANOUT_FLOOR, str(held_by), str(frame_bytes), "5"],
                           capture_output=True, text=True, check=True).stdout.split("\n")
    floor_p99 = [float(line.split()[2]) for line in floor if line.startswith("round ")]

    topic_lat, single_lat, single_srv = [], [], []
    per_send = [[] for _ in range(5)]
    for lines in outputs:
        for line in lines:
            parts = line.split()
            if len(parts) != 4:
                continue
            nid, ms, srv = int(parts[1]), float(parts[2]), float(parts[3])
            if nid in topic_ids:
                topic_lat.append(ms)
                per_send[topic_send[nid]].append(ms)
            elif nid in single_ids:
                single_lat.append(ms)
                single_srv.append(srv)
    single_expected = len(single_ids)  # at least one receipt each
    print("Machine: %d cores, %s, Linux %s; open-file limit %d." % (
        os.cpu_count(), open("/proc/cpuinfo").read().split("model name")[1].split(":")[1]
        .split("\n")[0].strip(), os.uname().release, hard))
    print("Command: `/usr/bin/python3 bench/ws.py --conns %d --topic %d --rate %d --secs %d "
          "--procs %d --client %s` (store.sync=normal, log_level=warn; clients are %d %s "
          "processes on the same cores, %d for the topic's members)." % (
              args.conns, args.topic, args.rate, args.secs, args.procs, args.client,
              2 * args.procs, "C" if args.client == "c" else "Python", args.procs))
    print()
    print("| measure | value |")
    print("|---|---|")
    print("| notifyd start (ws_max_connections=%d, %d workers) | %.2f s |" % (
        args.conns + 100, args.conns + 164, start_s))
    print("| RSS idle after start | %.1f MiB |" % (rss_idle / 1024))
    print("| connections held | %d (of %d; %d users, %d with two) |" % (held, args.conns, nusers, twice))
    print("| time to open them | %.1f s |" % connect_s)
    print("| RSS with them open | %.1f MiB |" % (rss_full / 1024))
    print("| RSS per connection (growth while connecting, / held) | %.1f KiB |" % (
        rss_conns / max(held, 1)))
    print("| topic send to %d connections: receipts | %d of %d |" % (held_by, len(topic_lat), 5 * held_by))
    print("| topic send: send to receive, min / p50 / p99 / max | %.1f / %.1f / %.1f / %.1f ms |" % (
        min(topic_lat or [float("nan")]), pct(topic_lat, 50), pct(topic_lat, 99),
        max(topic_lat or [float("nan")])))
    # The target counts from the acknowledgement: the send's own write
    # (10,000 rows, atomic) is before it, whatever the fan-out does.
    after_ack = [min(x) - topic_ack[k] for k, x in enumerate(per_send) if x]
    print("| topic send: acknowledged (201's status line in), each send in turn | %s ms |" % " / ".join(
        "%.1f" % x for x in topic_ack))
    print("| topic send: first receipt after the acknowledgement, each send in turn | %s ms |" % " / ".join(
        "%.1f" % x for x in after_ack))
    print("| topic send: p99 of each send in turn | %s ms |" % " / ".join(
        "%.0f" % pct(x, 99) for x in per_send))
    # A send's two phases: up to its first receipt the write (one core),
    # from there to its p99 the fan-out, which is what fanout_floor does.
    firsts = [min(x) for x in per_send if x]
    spread = [pct(x, 99) - min(x) for x in per_send if x]
    print("| topic send: first receipt after the send (the write), each send in turn | %s ms |" % " / ".join(
        "%.1f" % x for x in firsts))
    print("| topic send: p99 after its first receipt (the fan-out), each send in turn | %s ms |" % " / ".join(
        "%.0f" % x for x in spread))
    print("| baseline, bin/fanout_floor: one %d-byte write to each of %d loopback connections, "
          "p99 receipt of each round | %s ms |" % (frame_bytes, held_by, " / ".join(
              "%.1f" % x for x in floor_p99)))
    print("| topic send p99 (sends 2-5) / baseline p99 (rounds 2-5) | %.1f× |" % (
        sum(pct(x, 99) for x in per_send[1:]) / sum(floor_p99[1:])))
    print("| topic send's fan-out alone (p99 after the first receipt, sends 2-5) / baseline p99 | %.1f× |" % (
        sum(spread[1:]) / sum(floor_p99[1:])))
    for g in ("http workers", "notifyd threads", "clients"):
        print("| topic send: CPU of %s, each send in turn | %s ms |" % (
            g, " / ".join("%.0f" % x[g] for x in topic_cpu)))
    print("| single-user sends (first, before the others connect): connections open | %d |" % single_open)
    print("| single-user sends: rate achieved | %.0f/s for %d s |" % (len(single_ids) / rate_s, args.secs))
    print("| single-user sends: receipts | %d (for %d sends) |" % (len(single_lat), single_expected))
    print("| single-user send to receive p50 / p99 | %.2f / %.2f ms |" % (
        pct(single_lat, 50), pct(single_lat, 99)))
    print("| single-user stored (created_at, ms clock) to receive p50 / p99 | %.2f / %.2f ms |" % (
        pct(single_srv, 50), pct(single_srv, 99)))
    print("| single-user POST round trip (201 received) p50 / p99 | %.2f / %.2f ms |" % (
        pct(single_rtt, 50), pct(single_rtt, 99)))
    if damon:
        print("| DAMON (kdamond) running: sampling every / CPU during the single-user sends | "
              "%s ms / %.0f ms |" % (", ".join("%.0f" % ms for _, ms in damon), damon_cpu))


if __name__ == "__main__":
    main()
