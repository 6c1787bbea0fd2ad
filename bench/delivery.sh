#!/bin/sh
# Email delivery: emails/s from send to stored in notifyd's own sink (the
# default relay, over real SMTP), beside the rate the same sink ingests
# messages of the same size from postfix's smtp-source, in the same run.
# Then webhooks: signed calls/s from send to answered by a local receiver
# (bin/hook_sink), beside that receiver's own rate under wrk.
#
#   sh bench/delivery.sh            (after make; make bench runs it)
#   N=5000 SESSIONS=4 sh bench/delivery.sh
set -eu
N=${N:-3000}
SESSIONS=${SESSIONS:-4}
bench=delivbench
. "$(dirname "$0")/lib/setup.sh"
sp=$(port)
printf '[smtp]\nmail_max = 0\n[mailer]\nworkers = %s\n[webhook]\nallow_private = true\n' \
    "$SESSIONS" > "$tmp/notifyd.conf"
"$root/bin/notifyd" --config "$tmp/notifyd.conf" --data-dir "$tmp/data" --socket "$tmp/ctl.sock" \
    --http off --smtp "127.0.0.1:$sp" 2>"$tmp/notifyd.log" &
pids="$pids $!"
ctl() { "$root/bin/notifyctl" -s "$tmp/ctl.sock" "$@"; }
i=0
until ctl ping >/dev/null 2>&1; do
	i=$((i + 1)); [ $i -lt 200 ] || exit 1; sleep 0.05
done
ctl user set bench --email bench@example.com --name "Bench User" >/dev/null

# The size of one email as the mailer writes it, so the baseline sends the same.
ctl send --user bench --type order_shipped --data order_id=B-0 --data carrier=DHL >/dev/null
ctl mail wait --query subject:B-0 --timeout 30s >/dev/null
size=$(ctl --json mail list | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["messages"][0]["Size"])')
ctl mail clear >/dev/null

# Wait until the sink holds want messages; prints the seconds since t0.
until_stored() {
	/usr/bin/python3 - "$tmp/ctl.sock" "$1" "$2" <<'EOF'
import json, socket, sys, time
path, want, t0 = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_UNIX); s.connect(path); f = s.makefile("rb"); f.readline()
# mail.wait would return at the first; count with mail.info, woken by nothing but time.
while True:
    s.sendall(b'{"id":1,"cmd":"mail.info"}\n')
    n = json.loads(f.readline())["result"]["Messages"]
    if n >= want:
        print("%.3f" % (time.time() - t0)); break
    time.sleep(0.01)
EOF
}

# send_n ARGS: N sends of ARGS (a JSON object; "{i}" in its strings is the
# send's number, from 1) over SESSIONS pipelined control connections, until
# every one is acknowledged.
send_n() {
	/usr/bin/python3 - "$tmp/ctl.sock" "$N" "$SESSIONS" "$1" <<'EOF'
import json, socket, sys, threading
path, n, conns, proto = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

def client(first, count):
    s = socket.socket(socket.AF_UNIX); s.connect(path); f = s.makefile("rb"); f.readline()
    def send():
        # Written while the answers are read: a pipelined client must read as it writes.
        for i in range(first, first + count):
            args = json.loads(proto.replace("{i}", str(i + 1)))
            s.sendall(json.dumps({"id": i, "cmd": "send", "args": args}).encode() + b"\n")
    threading.Thread(target=send, daemon=True).start()
    for _ in range(count):
        r = json.loads(f.readline())
        assert r["ok"], r

share = [n // conns + (k < n % conns) for k in range(conns)]
ts = [threading.Thread(target=client, args=(sum(share[:k]), share[k])) for k in range(conns)]
for t in ts: t.start()
for t in ts: t.join()
EOF
}

# Baseline: the sink's ingest of the same number of same-size messages.
t0=$(date +%s.%N)
smtp-source -s "$SESSIONS" -m "$N" -l "$size" -f bench@example.com -t bench@example.com \
    "127.0.0.1:$sp"
ingest_s=$(until_stored "$N" "$t0")
ctl mail clear >/dev/null

# Delivery: N sends over SESSIONS pipelined control connections, until all N are in the sink.
t0=$(date +%s.%N)
send_n '{"user": "bench", "type": "order_shipped", "data": {"order_id": "B-{i}", "carrier": "DHL"}}'
sent_s=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }')
deliver_s=$(until_stored "$N" "$t0")
failed=$(grep -c 'msg="email attempt failed"' "$tmp/notifyd.log" || true)

rate() { awk -v n="$N" -v s="$1" 'BEGIN { printf "%.0f", n / s }'; }

# Webhooks: the receiver's own rate first (wrk, bodies of a call's size),
# then N sends to a user without email, each one signed call to it.
hp=$(port)
mkfifo "$tmp/hook.out"
"$root/bin/hook_sink" "$hp" "$N" > "$tmp/hook.out" &
pids="$pids $!"
exec 3<"$tmp/hook.out"
read -r _ <&3
ctl webhook add "http://127.0.0.1:$hp/hook" --users hooked >/dev/null
# The size of one call's body, for wrk's.
body_size=$(/usr/bin/python3 -c 'import json; n={"id":1000,"user":"hooked","type":"message","category":None,"priority":"normal","title":"Hook H-1000","body":"b","data":None,"url":None,"created_at":"2026-11-30T00:00:00.000Z","read_at":None,"archived_at":None}; print(len(json.dumps({"type":"notification.created","timestamp":"2026-11-30T00:00:00.000Z","data":n},separators=(",",":"))))')
cat > "$tmp/post.lua" <<EOF3
wrk.method = "POST"
wrk.body = string.rep("x", $body_size)
wrk.headers["Content-Type"] = "application/json"
EOF3
wrk_rate=$(wrk -t 2 -c "$SESSIONS" -d 5s -s "$tmp/post.lua" "http://127.0.0.1:$hp/hook" |
    awk '/Requests\/sec/ {printf "%.0f", $2}')
# Sent for a moment a little later, so that the calls are timed from the
# outbox alone: all N fall due at once, and the receiver times first to last.
due=$(date -u -d "@$(( $(date +%s) + 2 + N / 1000 ))" +%Y-%m-%dT%H:%M:%SZ)
send_n '{"user": "hooked", "type": "message", "title": "Hook H-{i}", "body": "b", "at": "'"$due"'"}'
read -r _ hook_s <&3
hook_failed=$(grep -c 'msg="webhook attempt failed"' "$tmp/notifyd.log" || true)

cat <<EOF2
Machine: $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), Linux $(uname -r); \
notifyd defaults (store.sync=full) with mailer.workers=$SESSIONS.
Command: \`N=$N SESSIONS=$SESSIONS sh bench/delivery.sh\` ($size-byte emails, $body_size-byte webhook bodies, loopback).

| | rate | |
|---|---|---|
| sink ingest, $SESSIONS smtp-source sessions | $(rate "$ingest_s")/s | baseline |
| send → rendered → relayed → stored in the sink, $SESSIONS mailer workers | $(rate "$deliver_s")/s | $(awk -v a="$ingest_s" -v b="$deliver_s" 'BEGIN { printf "%.2f", a / b }')× |
| the $N sends themselves, $SESSIONS control connections (acknowledged, durable) | $(rate "$sent_s")/s | |
| webhook receiver (bin/hook_sink) under wrk, $SESSIONS connections | $wrk_rate/s | baseline |
| scheduled sends falling due at once → signed call → 2xx from that receiver, $SESSIONS workers (first call to last) | $(rate "$hook_s")/s | $(awk -v a="$wrk_rate" -v b="$hook_s" -v n="$N" 'BEGIN { printf "%.3f", n / b / a }')× |

Every one of the $N emails was stored; $failed attempts failed.
Every one of the $N webhook calls was answered; $hook_failed attempts failed.
EOF2
