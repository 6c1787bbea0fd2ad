#!/bin/sh
# make demo: the marketplace story (notifyctl demo) against the notifyd that
# answers on the control socket, or else a new one with its data in a
# temporary directory, which is left running to browse.
# Usage: demo.sh [--fast]
set -eu
BIN=${BIN:-bin}
fast=
for a in "$@"; do
	case $a in
	--fast) fast=--fast ;;
	*) echo "usage: demo.sh [--fast]" >&2; exit 2 ;;
	esac
done
if "$BIN/notifyctl" ping >/dev/null 2>&1; then
	echo "demo: playing against the running notifyd ($("$BIN/notifyctl" ping))"
	exec "$BIN/notifyctl" demo $fast
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/notifyd-demo.XXXXXX")
# start HTTP SMTP: a notifyd of its own session (Ctrl-C here leaves it be),
# on the usual control socket, so that notifyctl and the next make demo find
# it; true once it answers, false if it exits first.
start() {
	setsid "$BIN/notifyd" --data-dir "$dir" --http "$1" --smtp "$2" \
	    >>"$dir/notifyd.log" 2>&1 < /dev/null &
	pid=$!
	until "$BIN/notifyctl" ping >/dev/null 2>&1; do
		kill -0 $pid 2>/dev/null || return 1
		sleep 0.1
	done
}
# The usual ports, or any free ones when those are taken.
if ! start 127.0.0.1:8025 127.0.0.1:1025; then
	start 127.0.0.1:0 127.0.0.1:0 || { cat "$dir/notifyd.log" >&2; exit 1; }
fi
echo "demo: started notifyd (pid $pid) with its data in $dir"
"$BIN/notifyctl" demo $fast
cat <<MSG

notifyd (pid $pid) is still running, for you to browse; $BIN/notifyctl talks to
it, and make demo plays the story on it again. To stop it and remove its data:

  kill $pid && rm -r $dir
MSG
