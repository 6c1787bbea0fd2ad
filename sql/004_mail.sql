-- The development mail sink: every message received over SMTP, kept intact.

CREATE TABLE mail (
	id		INTEGER PRIMARY KEY AUTOINCREMENT,
	uid		TEXT NOT NULL UNIQUE,		-- the ID clients see (Mailpit-style)
	received_at	INTEGER NOT NULL,
	mail_from	TEXT NOT NULL,			-- envelope sender, '' for <>
	rcpt_to		TEXT NOT NULL CHECK (json_valid(rcpt_to)),
	size		INTEGER NOT NULL,
	read		INTEGER NOT NULL DEFAULT 0,
	summary		TEXT NOT NULL CHECK (json_valid(summary)),	-- parsed at receipt
	search		TEXT NOT NULL DEFAULT '',	-- lower-cased words for search
	raw		BLOB NOT NULL
) STRICT;

CREATE INDEX mail_unread ON mail (id) WHERE read = 0;
CREATE INDEX mail_received ON mail (received_at);	-- retention by age
