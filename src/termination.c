#include "termination.h"

#include "log.h"

#include <bson/bson.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

void termination_write(const char *path, const char *text)
{
	if (!path || !*path)
		return;
	/* One line a person reads in kubectl describe: no secret, and no
	 * control character but the final newline. */
	size_t tlen = strlen(text);
	bool nl = tlen > 0 && text[tlen - 1] == '\n';
	char *body = bson_strndup(text, nl ? tlen - 1 : tlen);
	char *redacted = log_redact(body);
	char *esc = log_escape_controls(redacted);
	char *red = bson_strdup_printf("%s%s", esc, nl ? "\n" : "");
	bson_free(body);
	bson_free(redacted);
	bson_free(esc);
	size_t len = strlen(red);
	if (len > TERMINATION_MAX) {
		/* Cut at a UTF-8 boundary and say so. */
		len = TERMINATION_MAX - 3;
		while (len > 0 && ((unsigned char)red[len] & 0xC0) == 0x80)
			len--;
		memcpy(red + len, "...", 3);
		len += 3;
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0644);
	if (fd < 0) {
		log_debug("termination message not written", F_STR("path", path),
		          F_STR("error", strerror(errno)));
		bson_free(red);
		return;
	}
	const char *p = red;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n <= 0)
			break;
		p += n;
		len -= (size_t)n;
	}
	close(fd);
	bson_free(red);
}
