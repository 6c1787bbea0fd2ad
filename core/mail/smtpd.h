/* smtpd — the development SMTP sink (RFC 5321): every message it receives is stored. */
#ifndef NOTIFYD_SMTPD_H
#define NOTIFYD_SMTPD_H

#include <stddef.h>

struct app;
struct smtpd;

/* Listen on cfg's [smtp] listen and serve every session from one epoll thread. */
int	 smtpd_start(struct smtpd **out, struct app *app, char *err, size_t errlen);
int	 smtpd_port(const struct smtpd *s);
/* Stop accepting, end the sessions, free everything. */
void	 smtpd_stop(struct smtpd *s);

#endif
