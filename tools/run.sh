#!/bin/sh
# make run: notifyd in the foreground with its data in ./var, and, once it
# answers, the links to its pages: an inbox signed in as the user "demo".
# Ctrl-C stops it: the terminal signals both this script and notifyd, and
# this script waits for notifyd to finish and exits with its status.
set -u
BIN=${BIN:-bin}
DATA=${DATA:-./var}
"$BIN/notifyd" --data-dir "$DATA" "$@" &
pid=$!
trap 'kill -INT $pid 2>/dev/null' INT
trap 'kill -TERM $pid 2>/dev/null' TERM HUP
# Wait until it answers on its control socket, or is gone.
until "$BIN/notifyctl" ping >/dev/null 2>&1; do
	kill -0 $pid 2>/dev/null || { wait $pid; exit $?; }
	sleep 0.1
done
base=$("$BIN/notifyctl" --json status | sed -n 's/.*"base_url":"\([^"]*\)".*/\1/p')
token=$("$BIN/notifyctl" token demo --ttl 7d)
cat <<MSG

notifyd is running with its data in $DATA. Open:

  $base/                      what is running
  $base/inbox#token=$token
                              the inbox of the user "demo"
  $base/mail                  the mail the SMTP sink caught

In another terminal try:

  $BIN/notifyctl send --user demo --type message --title 'Hello' --body 'It works'
  $BIN/notifyctl demo         the marketplace story, step by step

Ctrl-C stops notifyd.

MSG
wait $pid
status=$?
# A signal makes wait return at once: let notifyd finish stopping.
while kill -0 $pid 2>/dev/null; do wait $pid; status=$?; done
exit $status
