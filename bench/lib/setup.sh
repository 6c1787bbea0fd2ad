# Sourced by bench/*.sh after `set -eu`: a private temporary directory
# ($tmp, named after $bench), the processes started into it ($pids: append
# each one's pid), both cleaned up on every exit, and port() for a free
# loopback TCP port.
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d "/tmp/notifyd-$bench.XXXXXX")
pids=
cleanup() {
	# Under set -e a failing kill or wait (a killed child) would end the
	# trap before the directory is removed.
	for p in $pids; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
