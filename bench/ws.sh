#!/bin/sh
# WebSocket benchmark; see bench/ws.py for what it measures. Arguments pass through.
make -s -C "$(dirname "$0")/.." bin/ws_client bin/post_client bin/fanout_floor
exec /usr/bin/python3 "$(dirname "$0")/ws.py" "$@"
