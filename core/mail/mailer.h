/*
 * mailer — the delivery worker. It works the outbox the store keeps:
 * releases scheduled notifications when they fall due and sends email
 * through an SMTP relay with libcurl, retrying failures with
 * exponential backoff and jitter. Everything it needs is in the
 * database, so a restart resumes where it stopped.
 */
#ifndef NOTIFYD_MAILER_H
#define NOTIFYD_MAILER_H

#include <stddef.h>

struct app;
struct mailer;

/* Start the workers; relay is the smtp:// or smtps:// URL email goes to ("": none). */
int	 mailer_start(struct mailer **out, struct app *app, const char *relay, char *err,
	    size_t errlen);
/* Stop after the attempts under way end. */
void	 mailer_stop(struct mailer *m);
/* Something may have fallen due: look at the outbox now. */
void	 mailer_kick(struct mailer *m);

#endif
