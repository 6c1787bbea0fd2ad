#!/bin/sh
# bench/digest.sh [USERS [ITEMS]]: digests for USERS users (default 10000)
# with ITEMS parked emails each (20), queued by notifyctl digest and sent
# through the outbox to the sink, against as many single emails in the same
# run; see bench/digest.py.
set -eu
cd "$(dirname "$0")/.."
make -s bin/notifyd bin/notifyctl
NOTIFYD_BIN=bin/notifyd NOTIFYCTL_BIN=bin/notifyctl \
    /usr/bin/python3 bench/digest.py --users "${1:-10000}" --items "${2:-20}"
