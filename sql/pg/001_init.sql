-- notifyd's schema on PostgreSQL (issue 21): the same tables as SQLite's
-- sql/001..012 reach, in one migration. Times are milliseconds since the
-- epoch (bigint), as in SQLite, so both stores read and write the same
-- values. Migrations run in order, each in its own transaction, under an
-- advisory lock, so nodes starting together migrate once
-- (core/store/pg.c).
--
-- Ids and replay. A client that saw notification 102 must never miss a
-- 101 that commits later. Every write that creates notifications for a
-- user first takes that user's row lock (the upsert of users, which keeps
-- the unread counter anyway) and only then draws ids: for one user, ids
-- are then drawn in commit order, and since=ID replay, which is per user,
-- stays exact. A send to many users locks them in id order, so two sends
-- cannot deadlock.

CREATE TABLE users (
	id		text PRIMARY KEY,
	email		text,
	name		text,
	tz		text,
	locale		text,
	created_at	bigint NOT NULL,
	quiet_start	integer,
	quiet_end	integer,
	quiet_days	integer,
	digest		text NOT NULL DEFAULT 'off' CHECK (digest IN ('off', 'daily', 'weekly')),
	email_if_unread	bigint,
	unread		bigint NOT NULL DEFAULT 0 CHECK (unread >= 0),
	read_before	bigint NOT NULL DEFAULT 0,	-- a read_all's watermark (sql/013)
	read_all_at	bigint
);

-- One sequence for notifications and scheduled ones: an id names one thing
-- whichever table holds it (a scheduled send's id still resolves once
-- released, as scheduled_id).
CREATE SEQUENCE notification_ids;

CREATE TABLE notifications (
	id		bigint PRIMARY KEY DEFAULT nextval('notification_ids'),
	user_id		text NOT NULL REFERENCES users(id),
	type		text NOT NULL,
	category	text,
	priority	text NOT NULL DEFAULT 'normal'
			CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
	title		text,
	body		text,
	data		json,	-- as sent: the same text back, as SQLite gives
	action_url	text,
	dedupe_key	text,
	created_at	bigint NOT NULL,
	deliver_at	bigint,
	read_at		bigint,
	seen_at		bigint,
	archived_at	bigint,
	scheduled_id	bigint,
	email_skipped	text,
	UNIQUE (user_id, dedupe_key)
);
CREATE INDEX notifications_by_user ON notifications (user_id, id);
CREATE INDEX notifications_unread ON notifications (user_id, id)
	WHERE read_at IS NULL AND archived_at IS NULL;
CREATE INDEX notifications_archived ON notifications (user_id, id)
	WHERE archived_at IS NOT NULL;
CREATE INDEX notifications_scheduled ON notifications (scheduled_id)
	WHERE scheduled_id IS NOT NULL;

CREATE TABLE scheduled (
	id		bigint PRIMARY KEY DEFAULT nextval('notification_ids'),
	user_id		text NOT NULL REFERENCES users(id),
	type		text NOT NULL,
	category	text,
	priority	text NOT NULL DEFAULT 'normal',
	title		text,
	body		text,
	data		json,	-- as sent: the same text back, as SQLite gives
	action_url	text,
	dedupe_key	text,
	created_at	bigint NOT NULL,
	deliver_at	bigint NOT NULL,
	in_app		text NOT NULL,
	in_app_why	text,
	email		text,
	email_next_at	bigint,
	email_why	text,
	UNIQUE (user_id, dedupe_key)
);
CREATE INDEX scheduled_due ON scheduled (deliver_at);

CREATE TABLE digests (
	id		bigserial PRIMARY KEY,
	user_id		text NOT NULL REFERENCES users(id),
	period		text NOT NULL CHECK (period IN ('daily', 'weekly')),
	slot		text NOT NULL,
	window_start	bigint NOT NULL,
	window_end	bigint NOT NULL,
	items		bigint NOT NULL,
	read_skipped	bigint NOT NULL,
	created_at	bigint NOT NULL,
	delivery_id	bigint,
	UNIQUE (user_id, period, slot)
);

-- The outbox. A worker claims with FOR UPDATE SKIP LOCKED, so each delivery
-- is carried out by one node; a claim is a lease (claimed_until), so a
-- node that dies leaves work that another takes up when the lease ends.
CREATE TABLE deliveries (
	id		bigserial PRIMARY KEY,
	notification_id	bigint REFERENCES notifications(id) ON DELETE CASCADE,
	channel		text NOT NULL CHECK (channel IN ('in_app', 'email')),
	status		text NOT NULL CHECK (status IN ('pending', 'sent', 'failed', 'skipped',
			    'deferred', 'digest', 'digested', 'cancelled')),
	attempts	integer NOT NULL DEFAULT 0,
	next_attempt_at	bigint,
	last_error	text,
	created_at	bigint NOT NULL,
	updated_at	bigint NOT NULL,
	sent_at		bigint,
	claimed_until	bigint,
	claimed_by	text,		-- the node (store_options.node) that holds the claim
	digest_id	bigint REFERENCES digests(id),
	CHECK (notification_id IS NOT NULL OR digest_id IS NOT NULL),
	UNIQUE (notification_id, channel)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at)
	WHERE status IN ('pending', 'deferred');
CREATE INDEX deliveries_parked ON deliveries (notification_id) WHERE status = 'digest';
CREATE INDEX deliveries_of_digest ON deliveries (digest_id) WHERE digest_id IS NOT NULL;

CREATE TABLE preferences (
	user_id		text NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	type		text NOT NULL,
	channel		text NOT NULL CHECK (channel IN ('in_app', 'email')),
	enabled		boolean NOT NULL,
	PRIMARY KEY (user_id, type, channel)
);

CREATE TABLE topic_members (
	topic		text NOT NULL,
	user_id		text NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	added_at	bigint NOT NULL,
	PRIMARY KEY (topic, user_id)
);
CREATE INDEX topic_members_by_user ON topic_members (user_id);

CREATE TABLE api_keys (
	id		bigserial PRIMARY KEY,
	name		text NOT NULL,
	hash		bytea NOT NULL UNIQUE,
	created_at	bigint NOT NULL,
	last_used_at	bigint,
	revoked_at	bigint
);
CREATE UNIQUE INDEX api_keys_live_name ON api_keys (name) WHERE revoked_at IS NULL;

CREATE TABLE mail (
	id		bigserial PRIMARY KEY,
	uid		text NOT NULL UNIQUE,
	received_at	bigint NOT NULL,
	mail_from	text NOT NULL,
	rcpt_to		json NOT NULL,
	size		bigint NOT NULL,
	read		boolean NOT NULL DEFAULT false,
	summary		json NOT NULL,	-- json, not jsonb: the text as stored
	search		text NOT NULL DEFAULT '',
	raw		bytea NOT NULL
);
CREATE INDEX mail_unread ON mail (id) WHERE NOT read;
CREATE INDEX mail_received ON mail (received_at);

-- What the cluster shares besides the tables: the token secret, so a user
-- token minted by one node is good on every node (unless [auth] jwt_secret
-- names one).
CREATE TABLE settings (
	name		text PRIMARY KEY,
	value		bytea NOT NULL
);
