/*
 * prefs — a user's delivery preferences, and what they decide for one
 * notification: which channels it goes to, and when its email goes.
 *
 * A channel is on or off per type, else per user ("*"), else by the
 * type's default (its template's meta). Quiet hours hold email until
 * they end, in the user's time zone; digest mode parks email for the
 * digest; "email if unread" waits and sends only if still unread.
 * Critical types ignore opt-outs, quiet hours and digests; urgent
 * priority ignores quiet hours and digests.
 */
#ifndef NOTIFYD_PREFS_H
#define NOTIFYD_PREFS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tz.h"

/* Channels, as bits. */
#define CHANNEL_IN_APP	0x01
#define CHANNEL_EMAIL	0x02
#define CHANNEL_PUSH	0x04	/* Web Push to the user's browsers */
#define CHANNEL_WEBHOOK	0x08	/* the application's endpoints: not a preference */

#define PREFS_MAX_RULES	256

/* One channel switched on or off for one type ("*": every type). */
struct prefs_rule {
	char		 type[65];
	unsigned	 channel;	/* CHANNEL_IN_APP, CHANNEL_EMAIL or CHANNEL_PUSH */
	bool		 enabled;
};

enum digest_mode { DIGEST_OFF, DIGEST_DAILY, DIGEST_WEEKLY };

struct prefs {
	struct prefs_rule rules[PREFS_MAX_RULES];
	size_t		 n;
	bool		 quiet;			/* quiet hours set */
	int		 quiet_start, quiet_end;	/* minutes after local midnight */
	unsigned	 quiet_days;		/* days a quiet period starts: bit 0 Monday .. 6 Sunday */
	enum digest_mode digest;
	int64_t		 email_if_unread;	/* ms; 0: email at once */
};

/* Delivery statuses, as stored. */
enum delivery_status {
	DS_PENDING,
	DS_SENT,
	DS_FAILED,
	DS_SKIPPED,
	DS_DEFERRED,
	DS_DIGEST,
	DS_CANCELLED,
};

const char	*delivery_status_name(enum delivery_status s);

/* What a notification's type and send say, for routing. */
struct route_in {
	const char	*type;
	unsigned	 type_channels;	/* the type's defaults, CHANNEL_* */
	bool		 critical;
	bool		 urgent;
	bool		 has_email;	/* the user has an address */
	const char	*tz;		/* the user's zone, NULL: UTC */
	int64_t		 at;		/* when it becomes visible (ms) */
};

/* The decision for one channel. */
struct routing {
	enum delivery_status status;	/* PENDING, SENT (in-app at once), SKIPPED, DEFERRED, DIGEST */
	int64_t		 next_at;	/* PENDING/DEFERRED: when to act (ms) */
	const char	*why;		/* SKIPPED/DEFERRED/DIGEST: a short reason */
};

/* A channel's name as stored and in documents ("in_app", ...), and back (0: unknown). */
const char	*prefs_channel_name(unsigned channel);
unsigned	 prefs_channel_of(const char *name);
/* Is channel on for type? */
bool	 prefs_enabled(const struct prefs *p, const char *type, unsigned channel,
	    unsigned type_channels);
/* Route both channels of a notification. */
void	 prefs_route(const struct prefs *p, const struct route_in *in, struct routing *in_app,
	    struct routing *email);
/*
 * Route a push due at 'at' (ms): SKIPPED when the user turned push off for
 * the type, DEFERRED to the end of quiet hours, else PENDING at once.
 * Critical types ignore both; urgent ones ignore quiet hours.
 */
void	 prefs_route_push(const struct prefs *p, const struct route_in *in, struct routing *push);
/* When the quiet period holding t ends (ms), or 0 when t is not in one. */
int64_t	 prefs_quiet_until(const struct prefs *p, const struct tz *z, int64_t t);

/* Parse "22:00-07:00" into minutes; false when malformed. */
bool	 prefs_parse_quiet(const char *s, int *start, int *end);
/* Parse "mon-fri", "sat,sun", "all" into day bits; false when malformed. */
bool	 prefs_parse_days(const char *s, unsigned *days);
bool	 prefs_parse_digest(const char *s, enum digest_mode *d);

/* The preferences document (GET/PUT/PATCH .../preferences). */
json_t	*prefs_to_json(const struct prefs *p);
/*
 * Apply a document onto p: replace resets p first (PUT), else it is a
 * merge patch (PATCH; null removes). err names the field that is wrong.
 */
bool	 prefs_apply_json(struct prefs *p, json_t *doc, bool replace, char *err, size_t errlen);
/* The names the document uses: "off", "daily", "weekly"; "mon" .. "sun" (0 Monday). */
const char *prefs_digest_name(enum digest_mode d);
const char *prefs_day_name(int day);

#endif
