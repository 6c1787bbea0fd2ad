/*
 * replay — run a fuzz target once on each input file (or each file of each
 * directory) named, without libFuzzer: how `make test` checks the seed
 * corpora and the crashes found before, with no new executions.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

/* Run the target on one file; -1 when it cannot be read. */
static int
run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return -1;
	size_t cap = 4096, len = 0, n;
	uint8_t *buf = malloc(cap);
	while (buf != NULL && (n = fread(buf + len, 1, cap - len, f)) > 0) {
		len += n;
		if (len == cap) {
			uint8_t *more = realloc(buf, cap * 2);
			if (more == NULL)
				free(buf);
			buf = more;
			cap *= 2;
		}
	}
	fclose(f);
	if (buf == NULL)
		return -1;
	/* An exact copy, so that reading past the end is caught as libFuzzer would. */
	uint8_t *exact = malloc(len ? len : 1);
	memcpy(exact, buf, len);
	free(buf);
	LLVMFuzzerTestOneInput(exact, len);
	free(exact);
	return 0;
}

int
main(int argc, char **argv)
{
	int runs = 0, bad = 0;
	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) != 0) {
			fprintf(stderr, "replay: %s: not found\n", argv[i]);
			bad++;
			continue;
		}
		if (!S_ISDIR(st.st_mode)) {
			bad += run_file(argv[i]) != 0;
			runs++;
			continue;
		}
		struct dirent **names;
		int n = scandir(argv[i], &names, NULL, alphasort);
		for (int j = 0; j < n; j++) {
			char path[4096];
			snprintf(path, sizeof path, "%s/%s", argv[i], names[j]->d_name);
			if (names[j]->d_name[0] != '.' && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
				bad += run_file(path) != 0;
				runs++;
			}
			free(names[j]);
		}
		free(names);
	}
	printf("%s: %d inputs replayed%s\n", argv[0], runs, bad ? ", some unreadable" : "");
	return bad != 0 || runs == 0;
}
