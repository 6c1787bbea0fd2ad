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
 * SQLite makes a commit visible to them only after that sync. store.c uses
 * it only then.
 */
#include "walvfs.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

/*
 * Gathered at most, then written: the default VFS's write cannot take more
 * than 128 KiB - 1 at once (its pwrite is masked with 0x1ffff).
 */
#define WAL_BUF (1 << 16)

struct wal_file {
	sqlite3_file	 base;
	sqlite3_file	*real;		/* the default VFS's file, just after this */
	unsigned char	*buf;
	int		 len;
	sqlite3_int64	 off;		/* where buf[0] goes */
};

static sqlite3_vfs vfs;
static sqlite3_vfs *root;

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

static int
vfs_open(sqlite3_vfs *v, sqlite3_filename name, sqlite3_file *p, int flags, int *out_flags)
{
	(void)v;
	if (!(flags & SQLITE_OPEN_WAL))
		return root->xOpen(root, name, p, flags, out_flags);	/* the default's, as is */
	struct wal_file *f = (struct wal_file *)p;
	memset(f, 0, sizeof *f);
	f->real = (sqlite3_file *)(f + 1);
	int rc = root->xOpen(root, name, f->real, flags, out_flags);
	f->base.pMethods = rc == SQLITE_OK ? &wal_methods : NULL;
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
		vfs.szOsFile = (int)sizeof(struct wal_file) + root->szOsFile;
		vfs.xOpen = vfs_open;
		if (sqlite3_vfs_register(&vfs, 0) != SQLITE_OK) {
			root = NULL;
			return NULL;
		}
	}
	return vfs.zName;
}
