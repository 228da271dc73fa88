/* libFuzzer: database URLs: x- options, secret registration, redaction. */
#include "url.h"
#include "log.h"

#include <bson/bson.h>

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int take(void *arg, const char *key, const char *value, const char *raw)
{
	(void)raw;
	(void)value;
	if (strncmp(key, "x-", 2) != 0)
		abort();
	return *(int *)arg;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *url = malloc(size + 1);
	memcpy(url, data, size);
	url[size] = '\0';
	int stop = size > 0 && data[0] == 'X';
	char *out = NULL;
	if (url_take_x_options(url, &out, take, &stop) == 0) {
		/* No key of the query (after the first '?') may start with x-. */
		const char *q = strchr(out, '?');
		for (const char *p = q; p && *p;) {
			p++;
			if (strncasecmp(p, "x-", 2) == 0)
				abort();
			p += strcspn(p, "&;");
		}
		bson_free(out);
	}
	url_register_secrets(url);
	char *red = log_redact(url);
	bson_free(red);
	log_shutdown();
	free(url);
	return 0;
}
