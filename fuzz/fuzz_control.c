/*
 * fuzz_control — a control-socket client's whole byte stream: the line
 * reader splits it (over a pipe, as over the socket), and each line is
 * answered as notifyd answers it.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <unistd.h>

#include "control.h"
#include "fuzz.h"
#include "lineio.h"
#include "proto.h"
#include "util.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct app *app = fuzz_app();
	int p[2];
	if (size > 60000 || pipe2(p, O_CLOEXEC) != 0)	/* what a pipe holds unread */
		return 0;
	if (write_all(p[1], data, size) != 0)
		__builtin_trap();
	close(p[1]);
	struct line_reader r;
	struct buf out;
	char *line;
	size_t len;
	enum line_status st;
	line_reader_init(&r, p[0], 4096);
	buf_init(&out);
	while ((st = line_read(&r, &line, &len)) == LINE_OK) {
		json_t *stream = NULL;
		buf_reset(&out);
		control_answer(app, 1, line, len, &out, &stream);
		if (out.len == 0 || out.data[out.len - 1] != '\n')
			__builtin_trap();	/* every request gets one reply line */
		json_decref(stream);
	}
	buf_free(&out);
	line_reader_free(&r);
	close(p[0]);
	return 0;
}
