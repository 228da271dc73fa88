/* libFuzzer: migration file names. */
#include "source.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	struct fname_parts p;
	if (source_parse_name(s, &p)) {
		/* The parts must lie inside the name and be what they claim. */
		if (p.name < s || p.name + p.name_len > s + strlen(s) || p.ext < s ||
		    (s[0] < '0' || s[0] > '9'))
			abort();
	}
	free(s);
	return 0;
}
