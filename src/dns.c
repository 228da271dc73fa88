#include "dns.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef __GLIBC__
#include <resolv.h>
#endif

bool dns_truncated(const unsigned char *msg, int len)
{
	return len >= 12 && (msg[2] & 0x02);
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for fd to be ready for events, until deadline; false on timeout. */
static bool wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - mono_ms();
		if (left <= 0)
			return false;
		struct pollfd p = {.fd = fd, .events = events};
		int r = poll(&p, 1, (int)left);
		if (r > 0)
			return true;
		if (r < 0 && errno != EINTR)
			return false;
	}
}

static bool send_all(int fd, const unsigned char *buf, size_t len, int64_t deadline)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n > 0) {
			buf += n;
			len -= (size_t)n;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (!wait_fd(fd, POLLOUT, deadline))
				return false;
		} else {
			return false;
		}
	}
	return true;
}

/* Reads len bytes into buf, or skips them when buf is NULL (the part of an
 * answer past the caller's buffer). */
static bool recv_all(int fd, unsigned char *buf, size_t len, int64_t deadline)
{
	unsigned char sink[512];
	while (len > 0) {
		unsigned char *to = buf ? buf : sink;
		size_t want = buf ? len : (len < sizeof sink ? len : sizeof sink);
		ssize_t n = recv(fd, to, want, 0);
		if (n > 0) {
			if (buf)
				buf += n;
			len -= (size_t)n;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (!wait_fd(fd, POLLIN, deadline))
				return false;
		} else {
			return false; /* closed early, or an error */
		}
	}
	return true;
}

/* One nameserver: RFC 1035 4.2.2, each message preceded by its length. */
static int exchange(const struct sockaddr *sa, socklen_t salen, int timeout_ms,
                    const unsigned char *query, int qlen, unsigned char *answer, int anslen)
{
	int64_t deadline = mono_ms() + timeout_ms;
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	int rc = -1;
	if (connect(fd, sa, salen) != 0) {
		int err = 0;
		socklen_t el = sizeof err;
		if (errno != EINPROGRESS || !wait_fd(fd, POLLOUT, deadline) ||
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err != 0)
			goto out;
	}
	unsigned char len2[2] = {(unsigned char)(qlen >> 8), (unsigned char)qlen};
	if (!send_all(fd, len2, 2, deadline) || !send_all(fd, query, (size_t)qlen, deadline))
		goto out;
	if (!recv_all(fd, len2, 2, deadline))
		goto out;
	int alen = len2[0] << 8 | len2[1];
	if (alen < 12)
		goto out;
	int keep = alen < anslen ? alen : anslen;
	if (keep < 12) {
		/* Too small a buffer even for the header: read the id here. */
		unsigned char head[12];
		if (!recv_all(fd, head, 12, deadline) ||
		    !recv_all(fd, NULL, (size_t)(alen - 12), deadline))
			goto out;
		if (head[0] != query[0] || head[1] != query[1])
			goto out;
		memcpy(answer, head, (size_t)(keep > 0 ? keep : 0));
	} else {
		if (!recv_all(fd, answer, (size_t)keep, deadline) ||
		    !recv_all(fd, NULL, (size_t)(alen - keep), deadline))
			goto out;
		if (answer[0] != query[0] || answer[1] != query[1])
			goto out;
	}
	rc = alen;
out:
	close(fd);
	return rc;
}

int dns_tcp_exchange(const char *conf_path, uint16_t port, int timeout_ms,
                     const unsigned char *query, int qlen, unsigned char *answer, int anslen)
{
	if (qlen < 12 || qlen > 65535)
		return -1;
	FILE *f = fopen(conf_path, "re");
	if (!f)
		return -1;
	char line[512], portstr[8];
	snprintf(portstr, sizeof portstr, "%u", (unsigned)port);
	int asked = 0, rc = -1;
	while (rc < 0 && asked < DNS_MAX_NAMESERVERS && fgets(line, sizeof line, f)) {
		char addr[256];
		if (strncmp(line, "nameserver", 10) != 0 || (line[10] != ' ' && line[10] != '\t') ||
		    sscanf(line + 10, " %255s", addr) != 1)
			continue;
		asked++;
		/* A numeric address only (never a lookup), as the resolver reads it. */
		struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
		                         .ai_socktype = SOCK_STREAM};
		struct addrinfo *ai = NULL;
		if (getaddrinfo(addr, portstr, &hints, &ai) != 0 || !ai)
			continue;
		rc = exchange(ai->ai_addr, ai->ai_addrlen, timeout_ms, query, qlen, answer, anslen);
		freeaddrinfo(ai);
	}
	fclose(f);
	return rc;
}

#ifndef __GLIBC__
/* The static musl build: libmongoc's res_search (see dns.h). musl defines
 * res_search as a weak alias of res_query, so this definition is the one
 * the link takes. */

int res_search(const char *name, int class, int type, unsigned char *answer, int anslen)
{
	int n = res_query(name, class, type, answer, anslen);
	if (n < 0 || !dns_truncated(answer, n < anslen ? n : anslen))
		return n;
	unsigned char q[280], *tcp = NULL;
	int qlen = res_mkquery(0 /* QUERY */, name, class, type, NULL, 0, NULL, q, sizeof q);
	if (qlen < 0)
		return n;
	/* Into a buffer of our own: the truncated answer stays the result
	 * unless a whole one comes. musl's default: 5 s a nameserver. */
	tcp = malloc((size_t)anslen);
	if (!tcp)
		return n;
	int t = dns_tcp_exchange("/etc/resolv.conf", 53, 5000, q, qlen, tcp, anslen);
	if (t >= 12 && !dns_truncated(tcp, t < anslen ? t : anslen) && (tcp[3] & 15) == 0) {
		memcpy(answer, tcp, (size_t)(t < anslen ? t : anslen));
		n = t;
	}
	free(tcp);
	return n;
}
#endif
