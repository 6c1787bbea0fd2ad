#!/bin/sh
# bench/topic.sh: a topic send's write and answer on SQLite and on
# PostgreSQL, in one run; see bench/topic.py.
#   MEMBERS=10000 SENDS=5 sh bench/topic.sh
set -eu
cd "$(dirname "$0")/.."
make -s bin/notifyd bin/notifyctl
NOTIFYD_BIN=bin/notifyd /usr/bin/python3 bench/topic.py --members "${MEMBERS:-10000}" \
    --sends "${SENDS:-5}"
