/* libFuzzer: numbers, durations, Go booleans and Go time layouts. */
#include "parse.h"
#include "gotime.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	uint64_t u;
	int64_t i;
	bool b;
	/* Whatever parse_uint accepts, strtoull reads the same. */
	if (parse_uint(s, UINT64_MAX, &u) && strtoull(s, NULL, 10) != u)
		abort();
	if (parse_duration_ms(s, &i) && i < 0)
		abort();
	(void)parse_go_int(s, &i);
	(void)parse_go_bool(s, &b);
	struct tm tm = {.tm_year = 124,
	                .tm_mon = 11,
	                .tm_mday = 31,
	                .tm_hour = 23,
	                .tm_min = 59,
	                .tm_sec = 59,
	                .tm_zone = "UTC"};
	char out[128];
	go_time_format(s, &tm, 999999999, out, sizeof out);
	if (strlen(out) >= sizeof out)
		abort();
	free(s);
	return 0;
}
