-- Each topic's number of members, kept by topic add and remove in the same
-- transaction. Both answer with the topic's size, and that was count(*)
-- over its members, inside the single writer's transaction: O(members) per
-- change. At 100,000 members each add held the writer for 6.5 ms, and
-- filling such a topic took minutes (bench/RESULTS.md).
-- A topic exists while it has members: its row goes with the last one.
CREATE TABLE topics (
	name		TEXT PRIMARY KEY,
	members		INTEGER NOT NULL CHECK (members > 0)
) STRICT, WITHOUT ROWID;
INSERT INTO topics (name, members) SELECT topic, count(*) FROM topic_members GROUP BY topic;
