/* control — the Unix socket notifyctl talks to (protocol in proto.h). */
#ifndef NOTIFYD_CONTROL_H
#define NOTIFYD_CONTROL_H

#include <jansson.h>
#include <stddef.h>

struct app;
struct buf;
struct control;

/* Listen on path (replacing a stale socket, refusing a live one) and serve. */
int	 control_start(struct control **out, struct app *app, const char *path,
	    int max_clients, char *err, size_t errlen);
/* Stop accepting, let every client finish the requests it sent, and clean up. */
void	 control_stop(struct control *c);
/*
 * Answer one request line of client into b (a reply line); *stream gets
 * the result of a streaming operation (watch), whose events follow.
 */
void	 control_answer(struct app *app, unsigned client, const char *line, size_t len,
	    struct buf *b, json_t **stream);

#endif
