/*
 * hub — the live clients of each user (WebSocket connections, control
 * socket watchers) and what they are sent. It listens to core's events and
 * turns each into frames, built once and queued to every client of the
 * user; a few sender threads drain the queues, so a client that does not
 * read holds up nobody else, and one whose queue overflows is dropped.
 * The hub knows nothing of civetweb: a client is reached through a
 * transport the caller hands in. The frames are built here (frame_new)
 * and described in notifyd-api(7).
 */
#ifndef NOTIFYD_HUB_H
#define NOTIFYD_HUB_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct app;
struct hub;
struct hub_conn;

/* One text frame of several sent at once. */
struct hub_iov {
	const char	*data;
	size_t		 len;
};

/* How to reach one client. */
struct hub_transport {
	/* Send one text frame (a line for watchers); <0 when the client is gone. */
	int	(*send)(void *ctx, const char *data, size_t len);
	/* Say goodbye with a close code and reason; the client then goes away. */
	void	(*close)(void *ctx, int code, const char *reason);
	/* Optional: send n frames in one write; <0 when the client is gone. */
	int	(*sendv)(void *ctx, const struct hub_iov *v, int n);
};

struct hub_options {
	int	 max_conns;	/* WebSocket connections at once */
	int	 per_user;	/* WebSocket connections per user */
	int	 queue;		/* frames queued per client before it is dropped */
	int	 senders;	/* sender threads */
};

/* What hub_reserve() refused. */
enum hub_refusal {
	HUB_OK,
	HUB_USER_LIMIT,		/* the user has per_user connections */
	HUB_FULL,		/* max_conns are open */
};

int	 hub_start(struct hub **out, struct app *app, const struct hub_options *o);
/*
 * Stop the threads; events from then on are ignored. The store's threads
 * (the checkpointer, PostgreSQL's listener) may still emit until the
 * store is closed, so the hub is freed only after that, by hub_free.
 */
void	 hub_stop(struct hub *h);
void	 hub_free(struct hub *h);

/* Hold a place for a connection of user (NULL: a mailbox client) before it is accepted. */
enum hub_refusal hub_reserve(struct hub *h, const char *user);
/* Give back a place reserved but never attached. */
void	 hub_unreserve(struct hub *h, const char *user);
/*
 * Take a reserved place: send "connected", then every visible
 * notification after since (since < 0: none), then live frames. Runs in
 * the caller's thread until the replay is sent. expires: ms, token expiry.
 */
struct hub_conn *hub_attach(struct hub *h, const char *user, int64_t expires, int64_t since,
	    const struct hub_transport *t, void *ctx);
/* A text frame from the client. */
void	 hub_receive(struct hub_conn *c, const char *data, size_t len);
/* A frame the client may not send (binary, fragmented, too large). */
void	 hub_reject(struct hub_conn *c, const char *code, const char *message);
/* The client is gone: once this returns, its transport is never used again. */
void	 hub_detach(struct hub_conn *c);

/* A watcher: every event (user NULL) or one user's, as lines, until hub_detach(). */
struct hub_conn *hub_watch(struct hub *h, const char *user, const struct hub_transport *t,
	    void *ctx);

/*
 * A Mailpit /api/events client: mailbox events only, as
 * {"Type":"new"|"delete"|"truncate"|"prune"|"stats","Data":...}, until hub_detach().
 * Takes a place reserved with hub_reserve(h, NULL), whether it succeeds or not.
 * Called before the handshake's answer, so that a client sees every event
 * after it; they wait in its queue until hub_release().
 */
struct hub_conn *hub_watch_mailbox(struct hub *h, const struct hub_transport *t, void *ctx);
/* The handshake is answered: send what waited, and everything after. */
void	 hub_release(struct hub_conn *c);

/* Open WebSocket connections of user (0: not connected). */
int	 hub_presence(struct hub *h, const char *user);
/* {"total":N,"users":{"alice":2,...},"mailbox":N}: total counts every WebSocket. */
json_t	*hub_connections(struct hub *h);
/* Close every connection of user; the number closed. */
int	 hub_disconnect(struct hub *h, const char *user, const char *reason);
/* Open WebSocket connections, /api/events ones included. */
int	 hub_open(struct hub *h);

#endif
