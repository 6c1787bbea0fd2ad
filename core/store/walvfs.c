/*
 * walvfs — the default SQLite VFS, with a WAL file's writes gathered.
 *
 * SQLite writes each WAL frame as two pwrite(2)s, header then page, so a
 * commit of a few pages is a dozen system calls, and a system call is
 * dear on a virtual machine. Here a WAL file's contiguous writes are kept
 * in a buffer and written with one pwrite when SQLite syncs, reads, asks
 * the size, truncates or closes the file, or when a write is not
 * contiguous. Every other file is the default VFS's own, untouched.
 *
 * This is only right when every commit syncs the WAL (synchronous=FULL):
 * other connections read committed frames from their own descriptors, and
 * SQLite makes a commit visible to them only after that sync. core/store/engine.c uses
 * it only then.
 *
 * A transaction that spilled pages into the WAL and was rolled back can
 * leave the tail of its frames here, unwritten. Written later, they would
 * land on frames another writer committed meanwhile (a second process on
 * the same database: notifyd's lock file keeps out another notifyd, not
 * the sqlite3 shell); tests/unit/test_walvfs.c lost 10 of another
 * process's 300 rows that way. So the buffer is dropped whenever the
 * connection lets go of the WAL write lock: after a commit it is empty
 * already (the commit synced), after a rollback what it holds belongs to
 * no transaction. For that the main database file is wrapped as well, to
 * see its xShmLock, and each connection's WAL is paired with its database
 * through the name SQLite gives both (sqlite3_filename_database).
 */
#include "walvfs.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

/*
 * Gathered at most, then written: the default VFS's write cannot take more
 * than 128 KiB - 1 at once (its pwrite is masked with 0x1ffff).
 */
#define WAL_BUF (1 << 16)

struct db_file;

struct wal_file {
	sqlite3_file	 base;
	sqlite3_file	*real;		/* the default VFS's file, just after this */
	unsigned char	*buf;
	int		 len;
	sqlite3_int64	 off;		/* where buf[0] goes */
	struct db_file	*db;		/* the same connection's database file */
};

/* A main database file: the default VFS's, seen through, but for xShmLock. */
struct db_file {
	sqlite3_file	 base;
	sqlite3_file	*real;
	sqlite3_filename name;		/* SQLite's, the same pointer its WAL's name leads to */
	struct wal_file	*wal;		/* its connection's WAL, once open */
	struct db_file	*next;		/* in open_dbs */
};

static sqlite3_vfs vfs;
static sqlite3_vfs *root;
/* The open main database files, for their WALs to find; under dbs_lock. */
static pthread_mutex_t dbs_lock = PTHREAD_MUTEX_INITIALIZER;
static struct db_file *open_dbs;

/* Write what is gathered. */
static int
wal_flush(struct wal_file *f)
{
	if (f->len == 0)
		return SQLITE_OK;
	int rc = f->real->pMethods->xWrite(f->real, f->buf, f->len, f->off);
	f->len = 0;
	return rc;
}

static int
wal_close(sqlite3_file *p)
{
	struct wal_file *f = (struct wal_file *)p;
	pthread_mutex_lock(&dbs_lock);
	if (f->db != NULL)
		f->db->wal = NULL;
	pthread_mutex_unlock(&dbs_lock);
	int rc = wal_flush(f);
	int rc2 = f->real->pMethods->xClose(f->real);
	free(f->buf);
	f->buf = NULL;
	return rc != SQLITE_OK ? rc : rc2;
}

static int
wal_read(sqlite3_file *p, void *out, int amt, sqlite3_int64 off)
{
	struct wal_file *f = (struct wal_file *)p;
	int rc = wal_flush(f);
	return rc != SQLITE_OK ? rc : f->real->pMethods->xRead(f->real, out, amt, off);
}

static int
wal_write(sqlite3_file *p, const void *data, int amt, sqlite3_int64 off)
{
	struct wal_file *f = (struct wal_file *)p;
	if (f->len > 0 && off == f->off + f->len && f->len + amt <= WAL_BUF) {
		memcpy(f->buf + f->len, data, (size_t)amt);
		f->len += amt;
		return SQLITE_OK;
	}
	int rc = wal_flush(f);
	if (rc != SQLITE_OK)
		return rc;
	if (f->buf == NULL)
		f->buf = malloc(WAL_BUF);
	if (f->buf == NULL || amt > WAL_BUF)
		return f->real->pMethods->xWrite(f->real, data, amt, off);
	memcpy(f->buf, data, (size_t)amt);
	f->len = amt;
	f->off = off;
	return SQLITE_OK;
}

static int
wal_truncate(sqlite3_file *p, sqlite3_int64 size)
{
	struct wal_file *f = (struct wal_file *)p;
	int rc = wal_flush(f);
	return rc != SQLITE_OK ? rc : f->real->pMethods->xTruncate(f->real, size);
}

static int
wal_sync(sqlite3_file *p, int flags)
{
	struct wal_file *f = (struct wal_file *)p;
	int rc = wal_flush(f);
	return rc != SQLITE_OK ? rc : f->real->pMethods->xSync(f->real, flags);
}

static int
wal_file_size(sqlite3_file *p, sqlite3_int64 *size)
{
	struct wal_file *f = (struct wal_file *)p;
	int rc = wal_flush(f);
	return rc != SQLITE_OK ? rc : f->real->pMethods->xFileSize(f->real, size);
}

static int
wal_lock(sqlite3_file *p, int level)
{
	struct wal_file *f = (struct wal_file *)p;
	return f->real->pMethods->xLock(f->real, level);
}

static int
wal_unlock(sqlite3_file *p, int level)
{
	struct wal_file *f = (struct wal_file *)p;
	return f->real->pMethods->xUnlock(f->real, level);
}

static int
wal_check_reserved(sqlite3_file *p, int *out)
{
	struct wal_file *f = (struct wal_file *)p;
	return f->real->pMethods->xCheckReservedLock(f->real, out);
}

static int
wal_file_control(sqlite3_file *p, int op, void *arg)
{
	struct wal_file *f = (struct wal_file *)p;
	int rc = wal_flush(f);
	return rc != SQLITE_OK ? rc : f->real->pMethods->xFileControl(f->real, op, arg);
}

static int
wal_sector_size(sqlite3_file *p)
{
	struct wal_file *f = (struct wal_file *)p;
	return f->real->pMethods->xSectorSize(f->real);
}

static int
wal_device(sqlite3_file *p)
{
	struct wal_file *f = (struct wal_file *)p;
	return f->real->pMethods->xDeviceCharacteristics(f->real);
}

/* A WAL file needs no shared memory or mapping: version 1. */
static const sqlite3_io_methods wal_methods = {
	.iVersion = 1,
	.xClose = wal_close,
	.xRead = wal_read,
	.xWrite = wal_write,
	.xTruncate = wal_truncate,
	.xSync = wal_sync,
	.xFileSize = wal_file_size,
	.xLock = wal_lock,
	.xUnlock = wal_unlock,
	.xCheckReservedLock = wal_check_reserved,
	.xFileControl = wal_file_control,
	.xSectorSize = wal_sector_size,
	.xDeviceCharacteristics = wal_device,
};

/* The main database file's methods: the default's, and the WAL write lock's release. */
#define DB(p) (((struct db_file *)(p))->real)
#define DBM(p) (DB(p)->pMethods)

static int
db_close(sqlite3_file *p)
{
	struct db_file *d = (struct db_file *)p;
	pthread_mutex_lock(&dbs_lock);
	for (struct db_file **dp = &open_dbs; *dp != NULL; dp = &(*dp)->next)
		if (*dp == d) {
			*dp = d->next;
			break;
		}
	if (d->wal != NULL)
		d->wal->db = NULL;
	pthread_mutex_unlock(&dbs_lock);
	return DBM(p)->xClose(DB(p));
}

static int
db_read(sqlite3_file *p, void *out, int amt, sqlite3_int64 off)
{
	return DBM(p)->xRead(DB(p), out, amt, off);
}

static int
db_write(sqlite3_file *p, const void *data, int amt, sqlite3_int64 off)
{
	return DBM(p)->xWrite(DB(p), data, amt, off);
}

static int
db_truncate(sqlite3_file *p, sqlite3_int64 size)
{
	return DBM(p)->xTruncate(DB(p), size);
}

static int
db_sync(sqlite3_file *p, int flags)
{
	return DBM(p)->xSync(DB(p), flags);
}

static int
db_file_size(sqlite3_file *p, sqlite3_int64 *size)
{
	return DBM(p)->xFileSize(DB(p), size);
}

static int
db_lock(sqlite3_file *p, int level)
{
	return DBM(p)->xLock(DB(p), level);
}

static int
db_unlock(sqlite3_file *p, int level)
{
	return DBM(p)->xUnlock(DB(p), level);
}

static int
db_check_reserved(sqlite3_file *p, int *out)
{
	return DBM(p)->xCheckReservedLock(DB(p), out);
}

static int
db_file_control(sqlite3_file *p, int op, void *arg)
{
	return DBM(p)->xFileControl(DB(p), op, arg);
}

static int
db_sector_size(sqlite3_file *p)
{
	return DBM(p)->xSectorSize(DB(p));
}

static int
db_device(sqlite3_file *p)
{
	return DBM(p)->xDeviceCharacteristics(DB(p));
}

static int
db_shm_map(sqlite3_file *p, int page, int size, int extend, void volatile **out)
{
	return DBM(p)->xShmMap(DB(p), page, size, extend, out);
}

/* SQLite's WAL write lock is the first shared-memory lock (WAL_WRITE_LOCK, 0). */
static int
db_shm_lock(sqlite3_file *p, int offset, int n, int flags)
{
	struct db_file *d = (struct db_file *)p;
	/* Before the lock goes: from then on another writer may commit. */
	if ((flags & SQLITE_SHM_UNLOCK) && (flags & SQLITE_SHM_EXCLUSIVE) && offset == 0 &&
	    d->wal != NULL)
		d->wal->len = 0;
	return DBM(p)->xShmLock(DB(p), offset, n, flags);
}

static void
db_shm_barrier(sqlite3_file *p)
{
	DBM(p)->xShmBarrier(DB(p));
}

static int
db_shm_unmap(sqlite3_file *p, int delete_flag)
{
	return DBM(p)->xShmUnmap(DB(p), delete_flag);
}

static int
db_fetch(sqlite3_file *p, sqlite3_int64 off, int amt, void **out)
{
	return DBM(p)->xFetch(DB(p), off, amt, out);
}

static int
db_unfetch(sqlite3_file *p, sqlite3_int64 off, void *ptr)
{
	return DBM(p)->xUnfetch(DB(p), off, ptr);
}

static const sqlite3_io_methods db_methods = {
	.iVersion = 3,
	.xClose = db_close,
	.xRead = db_read,
	.xWrite = db_write,
	.xTruncate = db_truncate,
	.xSync = db_sync,
	.xFileSize = db_file_size,
	.xLock = db_lock,
	.xUnlock = db_unlock,
	.xCheckReservedLock = db_check_reserved,
	.xFileControl = db_file_control,
	.xSectorSize = db_sector_size,
	.xDeviceCharacteristics = db_device,
	.xShmMap = db_shm_map,
	.xShmLock = db_shm_lock,
	.xShmBarrier = db_shm_barrier,
	.xShmUnmap = db_shm_unmap,
	.xFetch = db_fetch,
	.xUnfetch = db_unfetch,
};

static int
vfs_open(sqlite3_vfs *v, sqlite3_filename name, sqlite3_file *p, int flags, int *out_flags)
{
	(void)v;
	if (flags & SQLITE_OPEN_MAIN_DB) {
		struct db_file *d = (struct db_file *)p;
		memset(d, 0, sizeof *d);
		d->real = (sqlite3_file *)(d + 1);
		d->name = name;
		int rc = root->xOpen(root, name, d->real, flags, out_flags);
		/* The default's methods are version 3 (shared memory, mapping) on every Unix. */
		if (rc != SQLITE_OK || d->real->pMethods == NULL ||
		    d->real->pMethods->iVersion < 3) {
			if (rc == SQLITE_OK && d->real->pMethods != NULL)
				d->real->pMethods->xClose(d->real);
			d->base.pMethods = NULL;
			return rc == SQLITE_OK ? SQLITE_CANTOPEN : rc;
		}
		d->base.pMethods = &db_methods;
		pthread_mutex_lock(&dbs_lock);
		d->next = open_dbs;
		open_dbs = d;
		pthread_mutex_unlock(&dbs_lock);
		return SQLITE_OK;
	}
	if (!(flags & SQLITE_OPEN_WAL))
		return root->xOpen(root, name, p, flags, out_flags);	/* the default's, as is */
	struct wal_file *f = (struct wal_file *)p;
	memset(f, 0, sizeof *f);
	f->real = (sqlite3_file *)(f + 1);
	int rc = root->xOpen(root, name, f->real, flags, out_flags);
	f->base.pMethods = rc == SQLITE_OK ? &wal_methods : NULL;
	if (rc == SQLITE_OK) {
		sqlite3_filename db = sqlite3_filename_database(name);
		pthread_mutex_lock(&dbs_lock);
		for (struct db_file *d = open_dbs; d != NULL; d = d->next)
			if (d->name == db) {
				d->wal = f;
				f->db = d;
			}
		pthread_mutex_unlock(&dbs_lock);
	}
	return rc;
}

const char *
walvfs_register(void)
{
	if (root == NULL) {
		root = sqlite3_vfs_find(NULL);
		if (root == NULL)
			return NULL;
		vfs = *root;		/* every other method is the default's */
		vfs.pNext = NULL;
		vfs.zName = "notifyd-wal";
		vfs.szOsFile = (int)(sizeof(struct wal_file) > sizeof(struct db_file) ?
		    sizeof(struct wal_file) : sizeof(struct db_file)) + root->szOsFile;
		vfs.xOpen = vfs_open;
		if (sqlite3_vfs_register(&vfs, 0) != SQLITE_OK) {
			root = NULL;
			return NULL;
		}
	}
	return vfs.zName;
}
