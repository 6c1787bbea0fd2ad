/* smtpd — the development SMTP sink (RFC 5321): every message it receives is stored. */
#ifndef NOTIFYD_SMTPD_H
#define NOTIFYD_SMTPD_H

#include <jansson.h>
#include <stddef.h>

struct app;
struct smtpd;

/* Listen on cfg's [smtp] listen and serve every session from one epoll thread. */
int	 smtpd_start(struct smtpd **out, struct app *app, char *err, size_t errlen);
int	 smtpd_port(const struct smtpd *s);
/* Stop accepting, end the sessions, free everything. */
void	 smtpd_stop(struct smtpd *s);
/*
 * Store a message that came another way than SMTP (Mailpit's send API)
 * as the sink stores what it receives: Return-Path and Received: first
 * (from ip, with HTTP), the same size and depth limits, retention and
 * events. Its ID into uid. 1 stored; 0 too large; -3 nested too deep; -2
 * no room (disk reserve or a full disk); -1 the store failed; err says
 * which.
 */
int	 smtpd_store_message(struct app *app, const char *from, json_t *rcpts, const char *data,
	    size_t len, const char *ip, const char *user, char uid[23], char *err, size_t errn);

#endif
