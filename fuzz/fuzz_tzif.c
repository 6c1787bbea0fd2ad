/*
 * fuzz_tzif — the TZif reader (RFC 8536): a zone file as it might be found
 * in /usr/share/zoneinfo, then asked about a few instants and wall times.
 */
#include "fuzz.h"
#include "tz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tz *z = tz_parse_tzif(data, size);
	if (z == NULL)
		return 0;
	static const int64_t at[] = {INT64_MIN / 2, -1, 0, 1700000000000, 4102444800000,
	    INT64_MAX / 2};
	for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
		struct civil c;
		tz_offset(z, at[i]);
		tz_local(z, at[i], &c);
		if (c.year > -300000000 && c.year < 300000000)
			tz_instant(z, &c);
	}
	tz_free(z);
	return 0;
}
