/*
 * backup — a copy of this notifyd's data taken while it runs: a new
 * directory holding the database as of one moment and, beside it, the
 * secrets the data directory keeps (the token secret, the VAPID key),
 * without which tokens would not verify and browsers' subscriptions
 * would not be pushed to. notifyd runs from it as its data directory.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "config.h"
#include "lineio.h"
#include "log.h"
#include "ops.h"
#include "store.h"
#include "util.h"

/* What a data directory holds besides the database; each only if it is there. */
static const char *const secrets[] = {"jwt.secret", "vapid.pem"};

/* Copy from/name to to/name, 0600, synced; 1 copied, 0 not there, -1 with err. */
static int
copy_secret(const char *from, const char *to, const char *name, int64_t *bytes, char *err,
    size_t errlen)
{
	char src[4096], dst[4096], buf[8192];
	int in, out, rc = -1;
	ssize_t n;

	snprintf(src, sizeof src, "%s/%s", from, name);
	snprintf(dst, sizeof dst, "%s/%s", to, name);
	if ((in = open(src, O_RDONLY | O_CLOEXEC)) < 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", src, strerror(errno));
		return -1;
	}
	if ((out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0) {
		snprintf(err, errlen, "%s: %s", dst, strerror(errno));
		close(in);
		return -1;
	}
	while ((n = read(in, buf, sizeof buf)) > 0) {
		if (write_all(out, buf, (size_t)n) != 0)
			break;
		*bytes += n;
	}
	if (n == 0 && fsync(out) == 0)
		rc = 1;
	else
		snprintf(err, errlen, "%s: %s", dst, strerror(errno));
	close(in);
	close(out);
	return rc;
}

/* fsync a directory, so that the names made in it last. */
static int
sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = fd >= 0 && fsync(fd) == 0 ? 0 : -1;
	if (fd >= 0)
		close(fd);
	return rc;
}

static json_t *
backup(struct op_ctx *ctx, json_t *a)
{
	const char *dir = json_string_value(json_object_get(a, "path"));
	const char *data = ctx->app->cfg->data_dir;
	char db[4096], err[8400] = "", parent[4096];
	int64_t bytes = 0, db_bytes = 0;
	struct timespec t0, t1;
	json_t *files;
	int rc;

	if (dir == NULL || dir[0] != '/' || strlen(dir) > 3000)
		return op_fail(ctx, 422, "invalid_field",
		    "'path' must be an absolute path, a directory that does not exist yet");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (store_backup(ctx->app->store, NULL, &db_bytes, err, sizeof err) == -2)
		return op_fail(ctx, 422, "not_here", "%s", err);
	if (mkdir(dir, 0700) != 0) {
		if (errno == EEXIST)
			return op_fail(ctx, 409, "exists", "%s is there already: a backup goes "
			    "into a new directory", dir);
		return op_fail(ctx, 422, "invalid_field", "'path': %s: %s", dir, strerror(errno));
	}
	snprintf(db, sizeof db, "%s/notifyd.db", dir);
	rc = store_backup(ctx->app->store, db, &db_bytes, err, sizeof err);
	files = json_array();
	if (rc == 0)
		json_array_append_new(files, json_string("notifyd.db"));
	for (size_t i = 0; rc == 0 && i < sizeof secrets / sizeof secrets[0]; i++) {
		int got = copy_secret(data, dir, secrets[i], &bytes, err, sizeof err);
		if (got < 0)
			rc = -1;
		else if (got > 0)
			json_array_append_new(files, json_string(secrets[i]));
	}
	/* The directory's own name lasts once its parent is synced. */
	snprintf(parent, sizeof parent, "%s", dir);
	for (size_t l = strlen(parent); l > 1 && parent[l - 1] == '/'; l--)
		parent[l - 1] = '\0';
	char *slash = strrchr(parent, '/');
	slash[slash == parent] = '\0';		/* "/x" -> "/" */
	if (rc == 0 && (sync_dir(dir) != 0 || sync_dir(parent) != 0)) {
		snprintf(err, sizeof err, "%s: %s", dir, strerror(errno));
		rc = -1;
	}
	if (rc != 0) {
		/* Nothing half made stays: what it copied goes, then the directory. */
		size_t i;
		json_t *f;
		char path[4200];
		json_array_foreach(files, i, f) {
			snprintf(path, sizeof path, "%s/%s", dir, json_string_value(f));
			unlink(path);
		}
		for (i = 0; i < sizeof secrets / sizeof secrets[0]; i++) {
			snprintf(path, sizeof path, "%s/%s", dir, secrets[i]);
			unlink(path);	/* one whose copy failed half way */
		}
		/* And what the copy of the database may have left. */
		static const char *const left[] = {"-journal", "-wal", "-shm"};
		for (i = 0; i < sizeof left / sizeof left[0]; i++) {
			snprintf(path, sizeof path, "%s/notifyd.db.partial%s", dir, left[i]);
			unlink(path);
		}
		rmdir(dir);
		json_decref(files);
		return op_fail(ctx, 500, "backup_failed", "%s", err);	/* logged as it is answered */
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	int64_t ms = (int64_t)(t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	bytes += db_bytes;
	log_info("backup made", "path=%s bytes=%lld ms=%lld", dir, (long long)bytes,
	    (long long)ms);
	return json_pack("{s:s, s:o, s:I, s:I}", "path", dir, "files", files, "bytes",
	    (json_int_t)bytes, "ms", (json_int_t)ms);
}

const struct op_impl op_backup_impl = {.op = &op_backup, .fn = backup};
