/*
 * proto — the control protocol spoken over notifyd's Unix socket.
 *
 * One JSON object per line ("\n"-terminated, UTF-8) each way: a request
 * at most PROTO_MAX_LINE bytes, a reply at most PROTO_MAX_REPLY (a page of
 * 200 notifications with 64 KiB bodies is ~13 MB).
 *
 *   server, on connect:  {"notifyd":"0.1.0","protocol":1}
 *   client request:      {"id":N,"cmd":"send","args":{...}}
 *   server reply:        {"id":N,"ok":true,"result":...}
 *                     or {"id":N,"ok":false,"error":{"code":"...","message":"...","status":N}}
 *
 * Requests may be pipelined; replies come back in request order and carry
 * the request's id (any JSON value; null when the request had none).
 * A line that is not a JSON object gets an error reply with id null and
 * the connection stays usable; a line over PROTO_MAX_LINE gets an error
 * reply and the connection is closed. A client refuses a greeting whose
 * protocol it does not speak. See notifyd-api(7).
 */
#ifndef NOTIFYD_PROTO_H
#define NOTIFYD_PROTO_H

#include <stddef.h>

#define NOTIFYD_VERSION	"0.1.0"
#define PROTO_VERSION	1
#define PROTO_MAX_LINE	(1024 * 1024)
#define PROTO_MAX_REPLY	(64 * 1024 * 1024)

/* The socket when none is configured: $XDG_RUNTIME_DIR/notifyd.sock, else /tmp/notifyd-UID/. */
void	 proto_default_socket(char *out, size_t n);

#endif
