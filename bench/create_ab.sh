#!/bin/sh
# Creates against /healthz, for two or more builds of notifyd alternated,
# with notifyd's own CPU and voluntary context switches per create. For a
# change to the create path, where the machine's drift between runs is
# larger than the change: alternate, and read the ranges.
#
#   sh bench/create_ab.sh DIR1 DIR2 [...]   (each DIR holds notifyd and notifyctl)
#   ROUNDS=3 DUR=5s CONNS=32 sh bench/create_ab.sh /tmp/before bin
#   sh bench/create_ab.sh                  (bin/ alone, as make bench runs it)
#
# Each round starts each build on an empty database (store.sync=full),
# warms it with 2 s of creates, then runs wrk on /healthz and on
# POST /api/v1/notifications for DUR each. Prints one line per run.
set -eu
ROUNDS=${ROUNDS:-3}
DUR=${DUR:-5s}
CONNS=${CONNS:-32}
bench=create_ab
. "$(dirname "$0")/lib/setup.sh"
[ $# -ge 1 ] || set -- "$root/bin"

# CPU ticks (user + system) and voluntary switches of every thread of $pid.
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
csw() { cat /proc/"$pid"/task/*/status | awk '/^voluntary_ctxt_switches/ {s += $2} END {print s}'; }

run() {
	dir=$1
	rm -rf "$tmp/data" "$tmp/ctl.sock"
	port=$(port)
	printf '[store]\nsync = full\n' > "$tmp/notifyd.conf"
	"$dir/notifyd" --config "$tmp/notifyd.conf" --data-dir "$tmp/data" --socket "$tmp/ctl.sock" \
	    --http "127.0.0.1:$port" --smtp off 2>>"$tmp/notifyd.log" &
	pid=$!
	pids=$pid
	i=0
	until "$dir/notifyctl" -s "$tmp/ctl.sock" ping >/dev/null 2>&1; do
		i=$((i + 1)); [ $i -lt 200 ] || { cat "$tmp/notifyd.log"; exit 1; }
		sleep 0.05
	done
	key=$("$dir/notifyctl" -s "$tmp/ctl.sock" key create bench 2>/dev/null)
	cat > "$tmp/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer $key"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"user":"bench","type":"order_shipped","title":"Your order shipped","body":"Order A-17 is on its way","data":{"order":"A-17"}}'
LUA
	url=http://127.0.0.1:$port
	wrk -t2 -c"$CONNS" -d2s -s "$tmp/post.lua" "$url/api/v1/notifications" >/dev/null
	h=$(wrk -t2 -c"$CONNS" -d"$DUR" "$url/healthz" | awk '/^Requests\/sec/ {print $2}')
	c0=$(cpu) s0=$(csw)
	out=$(wrk -t2 -c"$CONNS" -d"$DUR" -s "$tmp/post.lua" "$url/api/v1/notifications")
	c1=$(cpu) s1=$(csw)
	kill "$pid"
	wait "$pid" || true
	pids=
	if printf '%s\n' "$out" | grep -q 'Non-2xx'; then
		printf '%s\n' "$out" >&2
		exit 1
	fi
	printf '%s\n' "$out" | awk -v d="$dir" -v h="$h" -v c=$((c1 - c0)) -v s=$((s1 - s0)) \
	    -v tk="$(getconf CLK_TCK)" '
		/^Requests\/sec/ {p = $2}
		/requests in/ {n = $1}
		END {printf "| %s | %.0f | %.0f | %.3f | %.1f | %.2f |\n", d, h, p, p / h,
		    c * 1e6 / tk / n, s / n}'
}

echo "| build | /healthz req/s | creates/s | ratio | notifyd CPU µs per create | voluntary switches per create |"
echo "|---|---|---|---|---|---|"
r=0
while [ $r -lt "$ROUNDS" ]; do
	for dir in "$@"; do
		run "$dir"
	done
	r=$((r + 1))
done
