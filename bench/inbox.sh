#!/bin/sh
# bench/inbox.sh [BASE]: inbox reads and writes against inbox size (counts at
# 10 / 10,000 / 1,000,000 unread, pages of a 100,000 inbox, creates to a
# connected user with 100,000 unread, mark all read of 100,000) on a
# database of BASE (1,000,000) more, against /healthz; see bench/inbox.py.
set -eu
cd "$(dirname "$0")/.."
make -s bin/notifyd bin/notifyctl
NOTIFYD_BIN=bin/notifyd NOTIFYCTL_BIN=bin/notifyctl \
    /usr/bin/python3 bench/inbox.py --base "${1:-1000000}"
