#!/bin/sh
# REST throughput and latency of notifyd, each as a ratio to GET /healthz
# measured in the same run, on a database holding SEED notifications; then
# the floor of a durable create on this machine, bin/commit_floor (civetweb
# alone waiting for an fdatasync'd group commit), against its own /healthz.
#
#   sh bench/rest.sh            (after make; make bench runs it)
#   DUR=30s CONNS=64 SEED=1000000 SYNC=full sh bench/rest.sh
#
# Prints a markdown table for bench/RESULTS.md.
set -eu
DUR=${DUR:-10s}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
SEED=${SEED:-1000000}
SYNC=${SYNC:-full}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/bin
make -s -C "$root" bin/commit_floor
tmp=$(mktemp -d /tmp/notifyd-bench.XXXXXX)
pid=
. "$root/bench/lib/seed.sh"

cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf '[store]\nsync = %s\n' "$SYNC" > "$tmp/notifyd.conf"
ctl() { "$bin/notifyctl" -s "$tmp/ctl.sock" "$@"; }

start() {
	"$bin/notifyd" --config "$tmp/notifyd.conf" --data-dir "$tmp/data" --socket "$tmp/ctl.sock" \
	    --http "127.0.0.1:$port" --smtp off 2>>"$tmp/notifyd.log" &
	pid=$!
	i=0
	until ctl ping >/dev/null 2>&1; do
		i=$((i + 1)); [ $i -lt 200 ] || { cat "$tmp/notifyd.log"; exit 1; }
		sleep 0.05
	done
}
stop() { kill "$pid"; wait "$pid" || true; pid=; }

# Schema first, then SEED notifications for 1000 users straight into SQLite.
start
stop
echo "seeding $SEED notifications..." >&2
t0=$(date +%s)
seed "$tmp/data/notifyd.db" "$SEED"
echo "seeded in $(( $(date +%s) - t0 ))s" >&2
start
key=$(ctl key create bench)

cat > "$tmp/report.lua" <<'LUA'
done = function(summary, latency, requests)
  local secs = summary.duration / 1e6
  io.write(string.format("RESULT %.1f %.3f %.3f %d %d %d\n",
    summary.requests / secs, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
LUA
{ cat "$tmp/report.lua"; cat <<LUA; } > "$tmp/post.lua"
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer $key"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"user":"bench","type":"order_shipped","title":"Your order shipped","body":"Order A-17 is on its way","data":{"order":"A-17"}}'
LUA
{ cat "$tmp/report.lua"; cat <<LUA; } > "$tmp/get.lua"
wrk.headers["Authorization"] = "Bearer $key"
LUA

# run NAME SCRIPT PATH: one wrk run; sets r_rps r_p50 r_p99 r_n r_bad.
run() {
	out=$(wrk -t "$THREADS" -c "$CONNS" -d "$DUR" -s "$2" "http://127.0.0.1:$port$3" 2>&1)
	set -- $(printf '%s\n' "$out" | sed -n 's/^RESULT //p')
	[ $# -eq 6 ] || { printf '%s\n' "$out" >&2; exit 1; }
	r_rps=$1 r_p50=$2 r_p99=$3 r_n=$4 r_bad=$(( $5 + $6 ))
}

before=$(sqlite3 "$tmp/data/notifyd.db" "SELECT count(*) FROM notifications")
run healthz "$tmp/report.lua" /healthz
h_rps=$r_rps h_p50=$r_p50 h_p99=$r_p99 h_bad=$r_bad
run post "$tmp/post.lua" /api/v1/notifications
p_rps=$r_rps p_p50=$r_p50 p_p99=$r_p99 p_n=$r_n p_bad=$r_bad
run page "$tmp/get.lua" "/api/v1/users/u42/notifications?limit=50"
g_rps=$r_rps g_p50=$r_p50 g_p99=$r_p99 g_bad=$r_bad
after=$(sqlite3 "$tmp/data/notifyd.db" "SELECT count(*) FROM notifications")
stats=$(curl -s "http://127.0.0.1:$port/metrics" | sed -n 's/^notifyd_store_\(commits\|writes\)_total //p' | tr '\n' ' ')
stop

# Every 201 wrk counted must be in the database (more may be: requests in flight at the end).
stored=$((after - before))
if [ "$p_bad" -ne 0 ] || [ "$stored" -lt "$p_n" ]; then
	echo "FAIL: $p_n created, $p_bad errors, $stored rows stored" >&2
	exit 1
fi

# The baseline: civetweb alone, with a handler that waits for a group
# commit (one fdatasync per batch on this filesystem) and WORK_US of serial
# CPU per request in the committer, against its own /healthz (bin/commit_floor).
floor() {
	port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	"$bin/commit_floor" "127.0.0.1:$port" "$tmp/floor.wal" "$1" > "$tmp/floor.out" &
	pid=$!
	i=0
	until grep -q ready "$tmp/floor.out" 2>/dev/null; do
		i=$((i + 1)); [ $i -lt 200 ] || { echo "commit_floor did not start" >&2; exit 1; }
		sleep 0.05
	done
	run healthz "$tmp/report.lua" /healthz
	fh_rps=$r_rps
	run commit "$tmp/post.lua" /commit
	fc_rps=$r_rps fc_p50=$r_p50 fc_p99=$r_p99 fc_bad=$r_bad
	kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
}
floor 0
f0_h=$fh_rps f0_c=$fc_rps f0_p50=$fc_p50 f0_p99=$fc_p99 f0_bad=$fc_bad
floor 20
f20_h=$fh_rps f20_c=$fc_rps f20_p50=$fc_p50 f20_p99=$fc_p99 f20_bad=$fc_bad

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
cat <<EOF2
Machine: $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), \
$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), Linux $(uname -r); \
notifyd $("$bin/notifyd" --version | cut -d' ' -f2), store.sync=$SYNC.
Command: \`DUR=$DUR CONNS=$CONNS THREADS=$THREADS SEED=$SEED SYNC=$SYNC sh bench/rest.sh\` \
(wrk -t$THREADS -c$CONNS -d$DUR, keep-alive, loopback; database of $before notifications).

| request | requests/s | ratio to /healthz | p50 ms | p99 ms | errors |
|---|---|---|---|---|---|
| GET /healthz | $h_rps | 1.00 | $h_p50 | $h_p99 | $h_bad |
| POST /api/v1/notifications | $p_rps | $(ratio "$p_rps" "$h_rps") | $p_p50 | $p_p99 | $p_bad |
| GET /api/v1/users/u42/notifications?limit=50 | $g_rps | $(ratio "$g_rps" "$h_rps") | $g_p50 | $g_p99 | $g_bad |
| baseline (bin/commit_floor, civetweb alone): waits for a group commit, no work | $f0_c | $(ratio "$f0_c" "$f0_h") of its /healthz ($f0_h) | $f0_p50 | $f0_p99 | $f0_bad |
| baseline, with 20 µs of serial work per request in the commit | $f20_c | $(ratio "$f20_c" "$f20_h") of its /healthz ($f20_h) | $f20_p50 | $f20_p99 | $f20_bad |

Every one of the $p_n creates answered 201 and is in the database ($stored rows added);
commits and writes carried (group commit): $stats
EOF2
