#!/bin/sh
# Resident memory of notifyd with its default config: idle after start,
# then after a first use of each part (a send, an inbox page, the VAPID key,
# a captured mail, and a user with an email address so the mailer runs),
# against bin/idle_floor in the same run: the same libraries mapped and as
# many threads waiting, with nothing else.
#
#   sh bench/idle.sh            (after make; make bench runs it)
#   IDLE=5 sh bench/idle.sh     (seconds idle before the first reading)
#
# Prints a markdown table for bench/RESULTS.md.
set -eu
IDLE=${IDLE:-2}
bench=idle
. "$(dirname "$0")/lib/setup.sh"
bin=$root/bin
make -s -C "$root" bin/idle_floor
http=$(port)
smtp=$(port)
ctl() { "$bin/notifyctl" -s "$tmp/ctl.sock" "$@"; }
mem() {	# VmRSS RssAnon RssFile Threads, in KiB and a count
	awk '/^(VmRSS|RssAnon|RssFile|Threads):/ { printf "%s ", $2 } END { print "" }' \
	    "/proc/$1/status"
}
row() {	# label, then mem's four fields
	awk -v l="$1" -v r="$2" -v a="$3" -v f="$4" -v t="$5" \
	    'BEGIN { printf "| %s | %.1f | %.1f | %.1f | %s |\n", l, r / 1024, a / 1024, f / 1024, t }'
}

NOTIFYD_CONFIG=/dev/null "$bin/notifyd" --data-dir "$tmp/data" --socket "$tmp/ctl.sock" \
    --http "127.0.0.1:$http" --smtp "127.0.0.1:$smtp" 2>>"$tmp/notifyd.log" &
pid=$!
pids="$pid"
i=0
until ctl ping >/dev/null 2>&1; do
	i=$((i + 1)); [ $i -lt 200 ] || { cat "$tmp/notifyd.log"; exit 1; }
	sleep 0.05
done
sleep "$IDLE"
idle=$(mem "$pid")
workers=$(grep -c '^civetweb-worker$' /proc/"$pid"/task/*/comm | awk -F: '{ s += $2 } END { print s }')
threads=$(echo "$idle" | awk '{ print $4 }')

# A first use of each part.
ctl user set alice --email alice@example.com >/dev/null
ctl send --user alice --type bench --title hello >/dev/null
key=$(ctl key create bench 2>/dev/null)
curl -sf -H "Authorization: Bearer $key" "http://127.0.0.1:$http/api/v1/users/alice/notifications?limit=50" >/dev/null
curl -sf "http://127.0.0.1:$http/api/v1/push/vapid_public_key" >/dev/null
/usr/bin/python3 - "$smtp" <<'PYEOF'
import smtplib, sys
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=10) as s:
    s.sendmail("a@example.com", ["b@example.com"], "Subject: hi\r\n\r\nbody\r\n")
PYEOF
ctl mail list >/dev/null
i=0
until ctl show 1 --deliveries 2>/dev/null | grep -q 'email.*\(sent\|pending\|failed\)'; do
	i=$((i + 1)); [ $i -lt 100 ] || break
	sleep 0.05
done
sleep "$IDLE"
used=$(mem "$pid")
kill "$pid"; wait "$pid" || true

"$bin/idle_floor" "$workers" $((threads - workers - 1)) > "$tmp/floor.out" &
pid=$!
pids="$pid"
until grep -q ready "$tmp/floor.out"; do sleep 0.05; done
floor=$(mem "$pid")

echo "Machine: $(nproc) cores, $(uname -r); notifyd $(cd "$root" && git describe --always --dirty 2>/dev/null || echo '?'); idle $IDLE s."
echo
echo "| process | RSS MiB | anonymous MiB | file MiB | threads |"
echo "|---|---|---|---|---|"
# shellcheck disable=SC2086
row "notifyd, default config, idle after start" $idle
# shellcheck disable=SC2086
row "notifyd, after a first use of each part" $used
# shellcheck disable=SC2086
row "bin/idle_floor: the same libraries and threads ($workers at 100 KiB)" $floor
