/*
 * fuzz_route — the REST route matcher and query parsing: "METHOD PATH?QUERY"
 * (the first line of the input) as handle() takes it, without civetweb.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fuzz.h"
#include "http.h"
#include "ops.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line = strndup((const char *)data, size);
	if (line == NULL)
		return 0;
	line[strcspn(line, "\r\n")] = '\0';
	char *path = strchr(line, ' ');
	if (path != NULL) {
		*path++ = '\0';
		char *query = strchr(path, '?');
		if (query != NULL)
			*query++ = '\0';
		json_t *args = json_object();
		struct op_error err = {0};
		const char *op = http_route_probe(line, path, query, args, &err);
		if (op == NULL && err.status == 0)
			__builtin_trap();
		json_decref(args);
	}
	free(line);
	return 0;
}
