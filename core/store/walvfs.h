/* walvfs — the default SQLite VFS, with each WAL file's writes gathered until it syncs. */
#ifndef NOTIFYD_WALVFS_H
#define NOTIFYD_WALVFS_H

/*
 * Register the VFS (once) and return its name for sqlite3_open_v2, or NULL.
 * Only for connections with synchronous=FULL (see walvfs.c).
 */
const char	*walvfs_register(void);

#endif
