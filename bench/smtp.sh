#!/bin/sh
# SMTP ingest: messages/s stored by notifyd's sink with 16 parallel
# smtp-source sessions, beside postfix's smtp-sink (which stores nothing)
# in the same run, for 5 KiB and 1 MiB messages.
#
#   sh bench/smtp.sh            (after make; make bench runs it)
#   SMALL=5000 LARGE=200 sh bench/smtp.sh
set -eu
SMALL=${SMALL:-5000}
LARGE=${LARGE:-200}
SESSIONS=${SESSIONS:-16}
bench=smtpbench
. "$(dirname "$0")/lib/setup.sh"
nd=$(port)
ref=$(port)
"$root/bin/notifyd" --data-dir "$tmp/data" --socket "$tmp/ctl.sock" --http off \
    --smtp "127.0.0.1:$nd" 2>"$tmp/notifyd.log" &
pids="$pids $!"
# smtp-sink refuses to run as root without -u.
if [ "$(id -u)" = 0 ]; then smtp-sink -u nobody "127.0.0.1:$ref" 256 &
else smtp-sink "127.0.0.1:$ref" 256 &
fi
pids="$pids $!"
i=0
until "$root/bin/notifyctl" -s "$tmp/ctl.sock" ping >/dev/null 2>&1; do
	i=$((i + 1)); [ $i -lt 200 ] || exit 1; sleep 0.05
done

# rate PORT COUNT SIZE: messages per second for COUNT messages of SIZE bytes.
rate() {
	t0=$(date +%s.%N)
	smtp-source -s "$SESSIONS" -m "$2" -l "$3" -f bench@example.com -t sink@example.com \
	    "127.0.0.1:$1"
	t1=$(date +%s.%N)
	awk -v n="$2" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }'
}

# The npm maildev sink too, if it installs (into build/, never into git).
mddir=$root/build/bench-maildev
md=$mddir/node_modules/.bin/maildev
if [ ! -x "$md" ] && command -v npm >/dev/null 2>&1; then
	mkdir -p "$mddir"
	(cd "$mddir" && npm install --no-audit --no-fund --silent maildev >/dev/null 2>&1) || true
fi
s_md=
if [ -x "$md" ]; then
	mdp=$(port)
	"$md" --smtp "$mdp" --ip 127.0.0.1 --web "$(port)" --web-ip 127.0.0.1 >"$tmp/maildev.log" 2>&1 &
	mdpid=$!
	pids="$pids $mdpid"
	i=0
	until /usr/bin/python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $mdp), 1)" 2>/dev/null; do
		i=$((i + 1)); [ $i -lt 200 ] || break; sleep 0.05
	done
	s_md=$(rate "$mdp" "$SMALL" 5120)
	kill "$mdpid" 2>/dev/null; wait "$mdpid" 2>/dev/null || true	# not to share the cores below
fi

s_ref=$(rate "$ref" "$SMALL" 5120)
s_nd=$(rate "$nd" "$SMALL" 5120)
l_ref=$(rate "$ref" "$LARGE" 1048576)
l_nd=$(rate "$nd" "$LARGE" 1048576)
stored=$("$root/bin/notifyctl" -s "$tmp/ctl.sock" --json mail info |
    /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["RuntimeStats"]["SMTPAccepted"])')
[ "$stored" -eq $((SMALL + LARGE)) ] || { echo "FAIL: $stored stored of $((SMALL + LARGE))" >&2; exit 1; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
cat <<EOF2
Machine: $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), Linux $(uname -r); \
notifyd defaults (store.sync=full, mail_max=5000).
Command: \`SMALL=$SMALL LARGE=$LARGE SESSIONS=$SESSIONS sh bench/smtp.sh\` ($SESSIONS parallel smtp-source sessions, loopback).

| message size | postfix smtp-sink (stores nothing) | notifyd sink (stored, parsed) | ratio |
|---|---|---|---|
| 5 KiB, $SMALL messages | $s_ref/s | $s_nd/s | $(ratio "$s_nd" "$s_ref") |
| 1 MiB, $LARGE messages | $l_ref/s | $l_nd/s | $(ratio "$l_nd" "$l_ref") |

All $stored messages sent to notifyd were accepted with 250 and stored.
$(if [ -n "$s_md" ]; then echo "npm maildev $("$md" --version 2>/dev/null) (keeps mail in memory), 5 KiB, $SMALL messages: $s_md/s, $(ratio "$s_md" "$s_ref") of smtp-sink."; else echo "npm maildev: did not install; not measured."; fi)
EOF2
