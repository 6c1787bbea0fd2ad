/*
 * fuzz — what the fuzz targets share. Each fuzz_*.c defines libFuzzer's
 * LLVMFuzzerTestOneInput(); `make fuzz` links it with libFuzzer (clang),
 * `make test` with replay.c, which runs it once on each file of its seed
 * corpus (fuzz/corpus/TARGET/), crashes found before included.
 */
#ifndef NOTIFYD_FUZZ_H
#define NOTIFYD_FUZZ_H

#include <stddef.h>
#include <stdint.h>

struct app;

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * A notifyd without listeners, made once per process: a store in a
 * temporary directory (removed at exit), templates, the hub; no mailer.
 */
struct app	*fuzz_app(void);

#endif
