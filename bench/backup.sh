#!/bin/sh
# notifyctl backup of a database holding SEED notifications, taken while
# creates go on: how long it takes, how large it is, and what the creates
# see meanwhile, against the same creates without a backup in the same run.
#
#   sh bench/backup.sh                       (make bench runs it)
#   SEED=1000000 DUR=10s CONNS=32 sh bench/backup.sh
#
# Prints a markdown table for bench/RESULTS.md.
set -eu
SEED=${SEED:-1000000}
DUR=${DUR:-10s}
CONNS=${CONNS:-32}
bench=backup
. "$(dirname "$0")/lib/setup.sh"
. "$root/bench/lib/seed.sh"
bin=$root/bin
ctl() { "$bin/notifyctl" -s "$tmp/ctl.sock" "$@"; }
port=$(port)
printf '[store]\nsync = full\n' > "$tmp/notifyd.conf"

start() {
	"$bin/notifyd" --config "$tmp/notifyd.conf" --data-dir "$tmp/data" --socket "$tmp/ctl.sock" \
	    --http "127.0.0.1:$port" --smtp off 2>>"$tmp/notifyd.log" &
	pid=$!
	pids="$pids $pid"
	i=0
	until ctl ping >/dev/null 2>&1; do
		i=$((i + 1)); [ $i -lt 200 ] || { cat "$tmp/notifyd.log"; exit 1; }
		sleep 0.05
	done
}

# The schema from notifyd, then SEED notifications for 1000 users straight into SQLite.
start
kill "$pid"; wait "$pid" || true
seed "$tmp/data/notifyd.db" "$SEED"
start
key=$(ctl key create bench 2>/dev/null)
cat > "$tmp/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer $key"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"user":"u7","type":"message","title":"During the backup"}'
done = function(summary, latency, requests)
  io.write(string.format("RESULT %.0f %.2f %.2f %d\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.errors.status))
end
LUA
url=http://127.0.0.1:$port/api/v1/notifications
creates() { wrk -t2 -c"$CONNS" -d"$DUR" -s "$tmp/post.lua" "$url" | awk '/^RESULT/ {print $2, $3, $4, $5}'; }

alone=$(creates)
# The same creates with a backup started a second into them.
creates > "$tmp/during" &
wpid=$!
sleep 1
t0=$(date +%s%N)
out=$(ctl --json backup "$tmp/bk")
t1=$(date +%s%N)
wait "$wpid"
during=$(cat "$tmp/during")
bytes=$(printf '%s' "$out" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes"])')
ms=$(printf '%s' "$out" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["ms"])')
rows=$(sqlite3 "$tmp/bk/notifyd.db" 'SELECT count(*) FROM notifications')
check=$(sqlite3 "$tmp/bk/notifyd.db" 'PRAGMA quick_check')

echo "Machine: $(nproc) cores, $(uname -r); store.sync=full."
echo "Command: \`SEED=$SEED DUR=$DUR CONNS=$CONNS sh bench/backup.sh\`"
echo
echo "| measure | value |"
echo "|---|---|"
echo "| backup of $SEED notifications: time (notifyd's / notifyctl's) | $ms ms / $(( (t1 - t0) / 1000000 )) ms |"
echo "| its size | $((bytes / 1048576)) MiB ($rows notifications; quick_check: $check) |"
set -- $alone
echo "| creates alone: req/s, p50, p99 ms, non-2xx | $1, $2, $3, $4 |"
set -- $during
echo "| creates with the backup in them: req/s, p50, p99 ms, non-2xx | $1, $2, $3, $4 |"
