/*
 * digest — when a user's digest is due and which slot it fills, and what
 * its email shows. A digest is made by `notifyctl digest` (run by cron),
 * one per user, period and slot: the user's local day for a daily digest,
 * the local ISO week for a weekly one. The making itself is the store's
 * (one transaction per user); this module knows time zones and templates.
 */
#ifndef NOTIFYD_DIGEST_H
#define NOTIFYD_DIGEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "prefs.h"
#include "tz.h"

/* The slot a digest made at some instant fills, in the user's zone. */
struct digest_slot {
	char		 name[16];	/* "2026-11-30" (daily) or "2026-W48" (weekly) */
	int64_t		 start, end;	/* ms: its local midnight bounds */
	struct civil	 local;		/* the wall-clock time it was made at */
};

/* The slot of period at now in zone z. */
void	 digest_slot(enum digest_mode period, const struct tz *z, int64_t now,
	    struct digest_slot *out);
/*
 * Is a digest due at s.local: local_hour (-1: any) is the local hour, and
 * local_day (0 Monday .. 6 Sunday, -1: any) the local day?
 */
bool	 digest_due(const struct digest_slot *s, int local_hour, int local_day);
/*
 * What the digest template renders: a notification of type "digest" whose
 * data holds count, items (title, body, url, type, time in zone z, read),
 * more (past max), inbox_url, period. digest is store_digest_get()'s.
 */
json_t	*digest_notification(json_t *digest, const struct tz *z, const char *inbox_url,
	    int64_t max_items);
/* Sample data for `notifyctl template render digest`. */
json_t	*digest_sample(void);

#endif
