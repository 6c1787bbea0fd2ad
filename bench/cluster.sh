#!/bin/sh
# bench/cluster.sh: several notifyd nodes on one PostgreSQL (issue 21),
# against one notifyd on SQLite in the same run: create throughput with 1,
# 2 and 3 nodes, and send->receive latency across nodes at 1,000 sends/s
# beside the same within one node; see bench/cluster.py.
#   DUR=10s CONNS=32 RATE=1000 SECS=5 sh bench/cluster.sh
set -eu
cd "$(dirname "$0")/.."
make -s bin/notifyd bin/notifyctl bin/post_client bin/ws_client
NOTIFYD_BIN=bin/notifyd NOTIFYCTL_BIN=bin/notifyctl \
    /usr/bin/python3 bench/cluster.py --dur "${DUR:-10s}" --conns "${CONNS:-32}" \
    --rate "${RATE:-1000}" --secs "${SECS:-5}"
