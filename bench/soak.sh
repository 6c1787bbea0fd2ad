#!/bin/sh
# bench/soak.sh [DURATION]: mixed load (REST sends, reads and marks, a
# WebSocket, SMTP ingest, the outbox) on a private notifyd for DURATION
# seconds (default 600): RSS at the end must be within 10% of RSS after
# warm-up. Then the same load for a tenth of the time on the ASan + UBSan
# build, whose LeakSanitizer makes the exit status non-zero on a leak.
set -eu
cd "$(dirname "$0")/.."
dur=${1:-600}
make -s bin/notifyd bin/notifyctl
make -s SANITIZE=1 build/sanitize/bin/notifyd build/sanitize/bin/notifyctl
echo "== soak, $dur s (bin/notifyd)"
NOTIFYD_BIN=bin/notifyd NOTIFYCTL_BIN=bin/notifyctl \
    /usr/bin/python3 bench/faults.py soak --seconds "$dur"
leak=$(( dur / 10 > 30 ? dur / 10 : 30 ))
echo "== soak, $leak s (build/sanitize/bin/notifyd: leaks)"
NOTIFYD_BIN=build/sanitize/bin/notifyd NOTIFYCTL_BIN=build/sanitize/bin/notifyctl \
    /usr/bin/python3 bench/faults.py soak --seconds "$leak" | grep -E "exit status|load|result"
