# Sourced by bench/*.sh: seed DB N puts N notifications for 1000 users
# (u0 to u999) straight into a notifyd database that notifyd has made and
# is not running on, with each user's unread counter as notifyd keeps it.
seed() {
	sqlite3 "$1" >/dev/null <<SQL
PRAGMA journal_mode = WAL;
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 999)
INSERT INTO users (id, created_at) SELECT 'u' || i, 0 FROM n;
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < $2 - 1)
INSERT INTO notifications (user_id, type, title, body, data, created_at)
SELECT 'u' || (i % 1000), 'message', 'Seeded notification ' || i,
       'Body text of a seeded notification, about as long as a real one.',
       '{"order":"A-' || i || '"}', 1700000000000 + i FROM n;
-- What notifyd keeps itself: each user's unread count.
UPDATE users SET unread = c.n FROM (SELECT user_id, count(*) AS n FROM notifications
    GROUP BY user_id) AS c WHERE c.user_id = users.id;
COMMIT;
PRAGMA wal_checkpoint(TRUNCATE);
SQL
}
