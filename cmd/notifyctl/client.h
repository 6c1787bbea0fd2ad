/* client — notifyctl's side of the control protocol. */
#ifndef NOTIFYCTL_CLIENT_H
#define NOTIFYCTL_CLIENT_H

#include <jansson.h>
#include <stdarg.h>

#include "lineio.h"
#include "proto.h"

#define EXIT_FAILED	1
#define EXIT_USAGE	2
#define EXIT_UNREACHABLE 3

/* Print "notifyctl: MESSAGE" and exit with status. */
void	 die(int status, const char *fmt, ...)
	    __attribute__((noreturn, format(printf, 2, 3)));
/* Connect to notifyd at path and check its greeting; dies with status 3 when it cannot. */
int	 connect_daemon(const char *path, struct line_reader *r);
/* Send one request (args is taken) and read its reply {"id","ok","result"|"error"}. */
json_t	*request(int fd, struct line_reader *r, const char *cmd, json_t *args);

#endif
