/* proto — what both ends of the control protocol know; see proto.h. */
#include "proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

void
proto_default_socket(char *out, size_t n)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	if (xdg != NULL && *xdg == '/')
		snprintf(out, n, "%s/notifyd.sock", xdg);
	else
		snprintf(out, n, "/tmp/notifyd-%u/notifyd.sock", (unsigned)getuid());
}
