/* log — one logfmt line per event on stderr. */
#ifndef NOTIFYD_LOG_H
#define NOTIFYD_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Set the lowest level that is written (default LOG_INFO). */
void log_set_level(enum log_level level);

/* Whether a line at level would be written: for work done only to log it. */
int log_enabled(enum log_level level);

/*
 * Write one line: ts=... level=... msg=<msg> followed by the pairs fmt makes.
 * fmt is a small printf: %s (a string, quoted and escaped as logfmt needs;
 * NULL prints as empty), %d, %u, %ld, %lld, %zu and %%. Everything else in
 * fmt is copied as is, so fmt holds the keys: "user=%s id=%lld".
 */
void log_write(enum log_level level, const char *msg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(...) log_write(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  log_write(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_write(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)

#endif
