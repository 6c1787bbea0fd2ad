/* demo — notifyctl demo: the marketplace story against a running notifyd. */
#ifndef NOTIFYCTL_DEMO_H
#define NOTIFYCTL_DEMO_H

#include <stdio.h>

/* Its help, as notifyctl help demo prints it. */
void	 demo_help(FILE *f);
/* Run it against the notifyd at sock; argv[0] is "demo". The exit status. */
int	 demo_main(const char *sock, int argc, char **argv);

#endif
