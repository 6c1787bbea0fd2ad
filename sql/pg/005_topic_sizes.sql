-- As SQLite's 016_topic_sizes.sql: each topic's number of members, kept
-- by topic add and remove in the same transaction, instead of count(*)
-- over its members on every change. Concurrent changes to one topic, from
-- any node, queue on its row.
CREATE TABLE topics (
	name		text PRIMARY KEY,
	members		bigint NOT NULL CHECK (members > 0)
);
INSERT INTO topics (name, members) SELECT topic, count(*) FROM topic_members GROUP BY topic;
