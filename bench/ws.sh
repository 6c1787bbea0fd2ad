#!/bin/sh
# WebSocket benchmark; see bench/ws.py for what it measures. Arguments pass through.
exec /usr/bin/python3 "$(dirname "$0")/ws.py" "$@"
