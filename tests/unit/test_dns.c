/*
 * Unit tests: the TCP retry of a truncated DNS answer (src/dns.h), which the
 * static musl build's res_search uses for libmongoc's mongodb+srv lookups.
 * A nameserver of our own on 127.0.0.1 (a thread: accept, read the framed
 * query, answer as told); a resolv.conf of our own naming it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "dns.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum behaviour { ANSWER, WRONG_ID, SILENT, CLOSE };

struct server {
	int fd;
	uint16_t port;
	enum behaviour how;
	int answer_len;
	unsigned char query[512];
	int qlen;
	pthread_t thread;
};

static bool read_n(int fd, unsigned char *b, size_t n)
{
	while (n > 0) {
		ssize_t r = recv(fd, b, n, 0);
		if (r <= 0)
			return false;
		b += r;
		n -= (size_t)r;
	}
	return true;
}

static void *serve(void *arg)
{
	struct server *s = arg;
	int c = accept(s->fd, NULL, NULL);
	if (c < 0)
		return NULL;
	unsigned char len2[2];
	if (read_n(c, len2, 2)) {
		s->qlen = len2[0] << 8 | len2[1];
		if (s->qlen <= (int)sizeof s->query && read_n(c, s->query, (size_t)s->qlen)) {
			if (s->how == SILENT) {
				sleep(2);
			} else if (s->how != CLOSE) {
				/* An answer of answer_len bytes: the query's id (or
				 * not), QR set, then a byte pattern to check. */
				unsigned char *a = calloc(1, (size_t)s->answer_len + 2);
				a[0] = (unsigned char)(s->answer_len >> 8);
				a[1] = (unsigned char)s->answer_len;
				a[2] = s->query[0] ^ (s->how == WRONG_ID ? 0xff : 0);
				a[3] = s->query[1];
				a[4] = 0x80;
				for (int i = 12; i < s->answer_len; i++)
					a[2 + i] = (unsigned char)i;
				send(c, a, (size_t)s->answer_len + 2, MSG_NOSIGNAL);
				free(a);
			}
		}
	}
	close(c);
	return NULL;
}

static void server_start(struct server *s, enum behaviour how, int answer_len)
{
	memset(s, 0, sizeof *s);
	s->how = how;
	s->answer_len = answer_len;
	s->fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(s->fd >= 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(s->fd, 4), 0);
	socklen_t l = sizeof a;
	assert_int_equal(getsockname(s->fd, (struct sockaddr *)&a, &l), 0);
	s->port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
}

static void server_stop(struct server *s)
{
	shutdown(s->fd, SHUT_RDWR);
	pthread_join(s->thread, NULL);
	close(s->fd);
}

static char conf[64];

static void write_conf(const char *text)
{
	snprintf(conf, sizeof conf, "/tmp/mi-test-dns-%d.conf", (int)getpid());
	FILE *f = fopen(conf, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* A query for _mongodb._tcp.x.y.z SRV, id 0x4d49. */
static const unsigned char query[] = {
    0x4d, 0x49, 1, 0,   0,   1,   0,   0, 0,   0, 0,   0, 8,   '_', 'm', 'o', 'n', 'g', 'o',
    'd',  'b',  4, '_', 't', 'c', 'p', 1, 'x', 1, 'y', 1, 'z', 0,   0,   33,  0,   1};

static void test_truncated_bit(void **state)
{
	(void)state;
	unsigned char m[12] = {0};
	assert_false(dns_truncated(m, 12));
	m[2] = 0x02;
	assert_true(dns_truncated(m, 12));
	assert_false(dns_truncated(m, 11)); /* not even a header */
	m[2] = 0x81;                        /* QR and RD, no TC */
	assert_false(dns_truncated(m, 12));
}

static void test_whole_answer_over_tcp(void **state)
{
	(void)state;
	struct server s;
	server_start(&s, ANSWER, 3000);
	write_conf("# comment\nsearch a.b\nnameserver 127.0.0.1\noptions ndots:5\n");
	unsigned char ans[4096];
	int n = dns_tcp_exchange(conf, s.port, 2000, query, sizeof query, ans, sizeof ans);
	server_stop(&s);
	assert_int_equal(n, 3000);
	assert_int_equal(s.qlen, (int)sizeof query);
	assert_memory_equal(s.query, query, sizeof query);
	assert_int_equal(ans[0], 0x4d);
	assert_int_equal(ans[2999], (unsigned char)2999);
}

/* Like res_query: the full length, what fits copied; libmongoc then asks
 * again with a larger buffer. */
static void test_answer_larger_than_buffer(void **state)
{
	(void)state;
	struct server s;
	server_start(&s, ANSWER, 3000);
	write_conf("nameserver 127.0.0.1\n");
	unsigned char ans[1024];
	int n = dns_tcp_exchange(conf, s.port, 2000, query, sizeof query, ans, sizeof ans);
	server_stop(&s);
	assert_int_equal(n, 3000);
	assert_int_equal(ans[1023], (unsigned char)1023);
}

static void test_next_nameserver(void **state)
{
	(void)state;
	struct server s;
	server_start(&s, ANSWER, 100);
	/* 127.0.0.2: nothing listens there (connection refused); then ours. */
	write_conf("nameserver 127.0.0.2\nnameserver\tnot-an-address\nnameserver 127.0.0.1\n");
	unsigned char ans[512];
	int n = dns_tcp_exchange(conf, s.port, 2000, query, sizeof query, ans, sizeof ans);
	server_stop(&s);
	assert_int_equal(n, 100);
}

static void test_failures(void **state)
{
	(void)state;
	unsigned char ans[512];
	struct server s;
	/* An answer to another query. */
	server_start(&s, WRONG_ID, 100);
	write_conf("nameserver 127.0.0.1\n");
	assert_int_equal(dns_tcp_exchange(conf, s.port, 2000, query, sizeof query, ans, sizeof ans),
	                 -1);
	server_stop(&s);
	/* Closed without an answer. */
	server_start(&s, CLOSE, 100);
	assert_int_equal(dns_tcp_exchange(conf, s.port, 2000, query, sizeof query, ans, sizeof ans),
	                 -1);
	server_stop(&s);
	/* No answer: the timeout holds. */
	server_start(&s, SILENT, 100);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(dns_tcp_exchange(conf, s.port, 300, query, sizeof query, ans, sizeof ans),
	                 -1);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	assert_true(ms >= 250 && ms < 1500);
	server_stop(&s);
	/* No nameserver line, no file. */
	write_conf("search cluster.local\n");
	assert_int_equal(dns_tcp_exchange(conf, 53, 300, query, sizeof query, ans, sizeof ans), -1);
	unlink(conf);
	assert_int_equal(dns_tcp_exchange(conf, 53, 300, query, sizeof query, ans, sizeof ans), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_truncated_bit),
	    cmocka_unit_test(test_whole_answer_over_tcp),
	    cmocka_unit_test(test_answer_larger_than_buffer),
	    cmocka_unit_test(test_next_nameserver),
	    cmocka_unit_test(test_failures),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
