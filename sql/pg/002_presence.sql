-- Who is connected to which node (issue 21): each node keeps its own
-- count per user as clients come and go, and a heartbeat (seen_at) every
-- few seconds; presence and connections add up the nodes heard from in
-- the last PRESENCE_TTL (store.h), so a node that died counts for nothing
-- once it is silent, and a node that starts drops what it counted before.
CREATE TABLE presence (
	node		text NOT NULL,
	user_id		text NOT NULL,
	conns		integer NOT NULL,
	seen_at		bigint NOT NULL,
	PRIMARY KEY (node, user_id)
);
