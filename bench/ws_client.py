"""One load process of bench/ws.py: hold WebSocket connections, time notifications.

Reads a JSON job on stdin: {"url": "ws://...", "conns": [[user, token], ...]}.
Prints "ready" once every connection has its "connected" frame, then one line
per notification received: "<user> <id> <ms since sent_at> <ms since created_at>":
data.sent_at is set by the sender before its request, created_at by notifyd.
Stops on SIGTERM.
"""
import asyncio
import gc
import json
import signal
import sys
import time

import websockets


async def hold(url, user, token, gate, ready, out):
    async with gate:  # a bounded number of handshakes at once
        ws = await websockets.connect("%s?token=%s" % (url, token), ping_interval=None,
                                      max_size=None, close_timeout=1, open_timeout=60)
        hello = json.loads(await ws.recv())
        assert hello["type"] == "connected", hello
    ready()
    async for msg in ws:
        now = time.time()
        if not msg.startswith('{"type":"notification"'):
            continue
        f = json.loads(msg)
        sent = (f["data"].get("data") or {}).get("sent_at")
        if sent is not None:
            # created_at: when notifyd stored it (ms), free of the sender's own delays.
            c = f["data"]["created_at"]
            created = time.mktime(time.strptime(c[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone \
                + int(c[20:23]) / 1000
            out.append("%s %d %.3f %.3f" % (user, f["data"]["id"], (now - float(sent)) * 1000,
                                            (now - created) * 1000))


async def main():
    job = json.loads(sys.stdin.readline())
    out, left = [], [len(job["conns"])]
    all_ready = asyncio.Event()

    def ready():
        left[0] -= 1
        if left[0] == 0:
            all_ready.set()
    gate = asyncio.Semaphore(100)
    tasks = [asyncio.ensure_future(hold(job["url"], u, t, gate, ready, out))
             for u, t in job["conns"]]
    waiter = asyncio.ensure_future(all_ready.wait())
    await asyncio.wait([waiter] + tasks, return_when=asyncio.FIRST_COMPLETED)
    for t in tasks:
        if t.done() and t.exception():
            print("error %r" % t.exception(), flush=True)
            return
    # Thousands of long-lived connection objects make a full collection pause
    # the loop for tens of ms, which would show up as latency: freeze them.
    gc.collect()
    gc.freeze()
    gc.disable()
    print("ready", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), 0.2)
        except asyncio.TimeoutError:
            pass
        if out:
            lines, out[:] = out[:], []
            sys.stdout.write("\n".join(lines) + "\n")
            sys.stdout.flush()
    for t in tasks:
        t.cancel()


asyncio.run(main())
