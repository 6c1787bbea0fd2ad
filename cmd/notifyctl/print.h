/* print — how notifyctl shows results to people (and as JSON to scripts). */
#ifndef NOTIFYCTL_PRINT_H
#define NOTIFYCTL_PRINT_H

#include <jansson.h>
#include <stdio.h>

#include "decl.h"

/* The result exactly as notifyd sent it, one line of JSON. */
void	print_json(FILE *f, json_t *result);
/* One streamed event {"type","user","data"}, for a person. */
void	print_event(FILE *f, json_t *ev);
/* The result of operation op, for a person (as JSON when it has no printer). */
void	print_result(FILE *f, const struct op *op, json_t *result);

#endif
