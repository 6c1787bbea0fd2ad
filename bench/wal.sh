#!/bin/sh
# The WAL's size under commits that never pause: one control-socket client
# pipelining single sends (each its own commit), store.sync=full. For two or
# more builds, alternated; the peak is the WAL file's largest size seen.
#
#   sh bench/wal.sh [DIR...]          (each DIR holds notifyd; default bin/)
#   ROUNDS=2 SENDS=30000 sh bench/wal.sh /tmp/before bin
set -eu
ROUNDS=${ROUNDS:-1}
SENDS=${SENDS:-30000}
bench=wal
. "$(dirname "$0")/lib/setup.sh"
[ $# -ge 1 ] || set -- "$root/bin"

echo "| build | sends | seconds | sends/s | WAL peak (MB) | WAL at the end (MB) |"
echo "|---|---|---|---|---|---|"
r=0
while [ $r -lt "$ROUNDS" ]; do
	r=$((r + 1))
	for dir in "$@"; do
		rm -rf "$tmp/data" "$tmp/ctl.sock"
		"$dir/notifyd" --data-dir "$tmp/data" --socket "$tmp/ctl.sock" --http off \
		    --smtp off 2>>"$tmp/notifyd.log" &
		pid=$!
		pids=$pid
		/usr/bin/python3 - "$tmp/ctl.sock" "$tmp/data/notifyd.db-wal" "$SENDS" "$dir" <<'PY'
import os, socket, sys, time
path, wal, n, name = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
for _ in range(200):
    try:
        s = socket.socket(socket.AF_UNIX)
        s.connect(path)
        break
    except OSError:
        time.sleep(0.05)
f = s.makefile("rb")
f.readline()
line = b'{"id":1,"cmd":"send","args":{"user":"wal","type":"m","title":"t"}}\n'
peak, t0 = 0, time.monotonic()
for k in range(0, n, 500):
    m = min(500, n - k)
    s.sendall(line * m)
    for _ in range(m):
        assert b'"ok":true' in f.readline()
    peak = max(peak, os.path.getsize(wal))
t = time.monotonic() - t0
print("| %s | %d | %.1f | %.0f | %.1f | %.1f |" % (name, n, t, n / t, peak / 1e6,
                                                 os.path.getsize(wal) / 1e6))
PY
		kill "$pid"
		wait "$pid" || true
		pids=
	done
done
