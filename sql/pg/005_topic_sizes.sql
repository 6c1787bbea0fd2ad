-- As SQLite's 016_topic_sizes.sql: each topic's number of members, kept
-- in the same transaction as every change to them, instead of count(*)
-- over the members on each add and remove.
--
-- Here a trigger keeps it, so that a node still running the version before
-- this one (a rolling upgrade) keeps it too; notifyd only reads it.
-- Concurrent changes to one topic, from any node, queue on its row. The
-- members are locked against writes from the count to the commit, so that
-- none lands between them uncounted.
LOCK TABLE topic_members IN SHARE MODE;
CREATE TABLE topics (
	name		text PRIMARY KEY,
	members		bigint NOT NULL CHECK (members > 0)
);
INSERT INTO topics (name, members) SELECT topic, count(*) FROM topic_members GROUP BY topic;

-- A topic exists while it has members: its row goes with the last one.
CREATE FUNCTION topic_members_size() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP IN ('INSERT', 'UPDATE') THEN
		INSERT INTO topics (name, members) VALUES (NEW.topic, 1)
		    ON CONFLICT (name) DO UPDATE SET members = topics.members + 1;
	END IF;
	IF TG_OP IN ('DELETE', 'UPDATE') THEN
		DELETE FROM topics WHERE name = OLD.topic AND members = 1;
		IF NOT FOUND THEN
			UPDATE topics SET members = members - 1 WHERE name = OLD.topic;
		END IF;
	END IF;
	RETURN NULL;
END
$$;
CREATE TRIGGER topic_members_size AFTER INSERT OR DELETE OR UPDATE OF topic
    ON topic_members FOR EACH ROW EXECUTE FUNCTION topic_members_size();
