-- Topics (named groups of users to send to) and API keys.

-- A topic exists while it has members.
CREATE TABLE topic_members (
	topic		TEXT NOT NULL,
	user_id		TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	added_at	INTEGER NOT NULL,
	PRIMARY KEY (topic, user_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX topic_members_by_user ON topic_members (user_id);

-- Only the SHA-256 of a key is kept; the key itself is shown once.
CREATE TABLE api_keys (
	id		INTEGER PRIMARY KEY AUTOINCREMENT,
	name		TEXT NOT NULL,
	hash		BLOB NOT NULL UNIQUE,
	created_at	INTEGER NOT NULL,
	last_used_at	INTEGER,
	revoked_at	INTEGER
) STRICT;

-- A name is unique among keys in use; a revoked key's name may be reused.
CREATE UNIQUE INDEX api_keys_live_name ON api_keys (name) WHERE revoked_at IS NULL;
