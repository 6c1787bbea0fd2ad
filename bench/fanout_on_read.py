"""bench/fanout_on_read.py: fan-out on read, prototyped, for the decision
bench/RESULTS.md asks for (issue 19's topic target). If a topic send were
one row (topic_sends) and each member's read, archive and delete state an
override row, what would a page of a member's inbox cost? notifyd's
schema is not used: this is the read side of that design alone, in
SQLite through Python (Debian 12's 3.40, WAL, one connection).

  /usr/bin/python3 bench/fanout_on_read.py TOPICS SENDS_PER_TOPIC OWN_ROWS
  e.g. 10 10000 10000: a user in 10 topics of 10,000 sends each, with
  10,000 notifications of their own, beside 200,000 of other users'.

Prints the median and p99 of a page of 50: the user's own rows alone
(today's page), one query per source merged by id in the program (what
notifyd would do), and one UNION ALL statement."""
import os, random, sqlite3, sys, time, statistics

import tempfile
DB = os.path.join(tempfile.mkdtemp(prefix="fanout-on-read."), "fo.db")
for f in (DB, DB + "-wal", DB + "-shm"):
    if os.path.exists(f): os.remove(f)
db = sqlite3.connect(DB, isolation_level=None)
db.executescript("""
PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
CREATE TABLE notifications (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL, type TEXT, title TEXT,
  body TEXT, created_at INTEGER, read_at INTEGER, archived_at INTEGER);
CREATE INDEX n_by_user ON notifications (user_id, id, archived_at);
CREATE TABLE topic_sends (id INTEGER PRIMARY KEY, topic_id INTEGER NOT NULL, type TEXT, title TEXT,
  body TEXT, created_at INTEGER);
CREATE INDEX s_by_topic ON topic_sends (topic_id, id);
CREATE TABLE memberships (user_id INTEGER, topic_id INTEGER, from_id INTEGER, to_id INTEGER,
  PRIMARY KEY (user_id, topic_id, from_id)) WITHOUT ROWID;
CREATE TABLE overrides (user_id INTEGER, id INTEGER, read_at INTEGER, archived_at INTEGER,
  deleted INTEGER, PRIMARY KEY (user_id, id)) WITHOUT ROWID;
CREATE TABLE users (id INTEGER PRIMARY KEY, unread INTEGER, read_before INTEGER DEFAULT 0);
""")
if len(sys.argv) != 4:
    sys.exit(__doc__)
TOPICS, SENDS_PER_TOPIC, OWN, USERS = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), 10000
U = 1  # the user whose inbox is read: member of every topic
random.seed(1)
db.execute("BEGIN")
db.executemany("INSERT INTO users (id, unread) VALUES (?, 0)", [(u,) for u in range(1, USERS + 1)])
for t in range(1, TOPICS + 1):
    db.execute("INSERT INTO memberships VALUES (?, ?, 0, NULL)", (U, t))
# interleave: own notifications and topic sends share one id sequence
events = [("own", None)] * OWN + [("send", t) for t in range(1, TOPICS + 1) for _ in range(SENDS_PER_TOPIC)]
random.shuffle(events)
own_rows, send_rows = [], []
for i, (kind, t) in enumerate(events, start=1):
    if kind == "own":
        own_rows.append((i, U, "m", "own %d" % i, "body", i))
    else:
        send_rows.append((i, t, "t", "send %d" % i, "body", i))
db.executemany("INSERT INTO notifications (id, user_id, type, title, body, created_at) VALUES (?,?,?,?,?,?)", own_rows)
# other users' own rows, to make the table realistic
base = len(events) + 1
db.executemany("INSERT INTO notifications (id, user_id, type, title, body, created_at) VALUES (?,?,?,?,?,?)",
               [(base + k, random.randint(2, USERS), "m", "x", "b", 0) for k in range(200000)])
db.executemany("INSERT INTO topic_sends VALUES (?,?,?,?,?,?)", send_rows)
# some overrides: 5% of the user's topic sends read, 1% archived
for (i, *_rest) in random.sample(send_rows, max(1, len(send_rows) // 20)):
    db.execute("INSERT OR REPLACE INTO overrides VALUES (?, ?, 1, NULL, NULL)", (U, i))
db.execute("COMMIT")
db.execute("ANALYZE")
last = len(events) + 1

OWN_PAGE = """SELECT id, type, title, read_at FROM notifications
  WHERE user_id = ?1 AND id < ?2 AND archived_at IS NULL ORDER BY id DESC LIMIT ?3"""
# one topic's page: its sends in the membership's window, less what the user archived or deleted
TOPIC_PAGE = """SELECT s.id, s.type, s.title, o.read_at FROM topic_sends s
  LEFT JOIN overrides o ON o.user_id = ?1 AND o.id = s.id
  WHERE s.topic_id = ?4 AND s.id > ?5 AND s.id < min(?2, coalesce(?6, ?2))
    AND o.archived_at IS NULL AND o.deleted IS NULL
  ORDER BY s.id DESC LIMIT ?3"""

def page_merged(before, limit=50):
    """What notifyd would do: one query per source, merged by id (here in Python)."""
    rows = db.execute(OWN_PAGE, (U, before, limit)).fetchall()
    for (t, f, to) in db.execute("SELECT topic_id, from_id, to_id FROM memberships WHERE user_id = ?", (U,)):
        rows += db.execute(TOPIC_PAGE, (U, before, limit, t, f, to)).fetchall()
    rows.sort(key=lambda r: -r[0])
    return rows[:limit]

UNION_PAGE = """SELECT id, type, title, read_at FROM (
  SELECT id, type, title, read_at FROM notifications
    WHERE user_id = ?1 AND id < ?2 AND archived_at IS NULL
  UNION ALL
  SELECT s.id, s.type, s.title, o.read_at FROM memberships m
    JOIN topic_sends s ON s.topic_id = m.topic_id AND s.id > m.from_id
      AND s.id < min(?2, coalesce(m.to_id, ?2))
    LEFT JOIN overrides o ON o.user_id = ?1 AND o.id = s.id
    WHERE m.user_id = ?1 AND o.archived_at IS NULL AND o.deleted IS NULL)
  ORDER BY id DESC LIMIT ?3"""

def page_union(before, limit=50):
    return db.execute(UNION_PAGE, (U, before, limit)).fetchall()

def timeit(f, n=200):
    ts = []
    for _ in range(n):
        t0 = time.perf_counter(); f(); ts.append((time.perf_counter() - t0) * 1000)
    ts.sort()
    return statistics.median(ts), ts[int(len(ts) * 0.99) - 1]

assert [r[0] for r in page_merged(last)] == [r[0] for r in page_union(last)]
own_only = lambda: db.execute(OWN_PAGE, (U, last, 50)).fetchall()
print("topics %d x %d sends, %d own rows" % (TOPICS, SENDS_PER_TOPIC, OWN))
for name, f in (("own rows only (today's page)", own_only), ("per source, merged by id, first page", lambda: page_merged(last)),
                ("per source, merged by id, deep page", lambda: page_merged(last // 3)),
                ("one UNION ALL statement, first page", lambda: page_union(last))):
    med, p99 = timeit(f, 50 if "UNION" in name else 200)
    print("  %-40s median %.3f ms, p99 %.3f ms" % (name, med, p99))

db.close()
for f in (DB, DB + "-wal", DB + "-shm"):
    if os.path.exists(f):
        os.remove(f)
os.rmdir(os.path.dirname(DB))
