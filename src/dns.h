/*
 * DNS answers too large for UDP, for libmongoc's mongodb+srv lookups in the
 * static musl build (issue #20).
 *
 * libmongoc asks for the SRV and TXT records of a mongodb+srv name with
 * res_search. musl 1.2.3 has that as an alias of res_query, which asks over
 * UDP only (src/network/res_msend.c has no TCP; 1.2.4 added it): an answer
 * larger than 512 bytes comes back truncated (TC set) and is used as it is,
 * so a headless Service with many endpoints gives libmongoc only the SRV
 * records that fit (6 of 40 in tests/k8s/test_dns.py). glibc asks again
 * over TCP. So does the res_search this module defines in the musl build:
 * musl's res_query first, and when its answer is truncated, the same query
 * (musl's res_mkquery) over TCP to the nameservers of /etc/resolv.conf, in
 * order. If no nameserver answers over TCP, the truncated answer stands,
 * as it did before. Everything else is musl's: the query, its UDP
 * exchange, the rcode handling, h_errno.
 *
 * The glibc build (development, tests) does not override anything: Debian's
 * libmongoc uses res_nsearch, which retries over TCP itself. The parts
 * below are compiled in both and unit-tested (tests/unit/test_dns.c).
 *
 * Threads: no state; safe from any thread (the heartbeat's client may look
 * up while the main thread does).
 */
#ifndef MI_DNS_H
#define MI_DNS_H

#include <stdbool.h>
#include <stdint.h>

/* At most this many nameservers are read, as in every resolver (MAXNS). */
#define DNS_MAX_NAMESERVERS 3

/* Whether a DNS message of len bytes has its TC (truncated) bit set. */
bool dns_truncated(const unsigned char *msg, int len);

/* The query (a whole DNS message) over TCP to each nameserver of the
 * resolv.conf at conf_path in turn (port: 53 but in tests), each given
 * timeout_ms for connecting and the exchange. The first answer that
 * carries the query's id is copied into answer (at most anslen bytes) and
 * its full length returned, which may be more than anslen, as res_query
 * does (libmongoc then asks again with a buffer that large). -1 when no
 * nameserver answered. */
int dns_tcp_exchange(const char *conf_path, uint16_t port, int timeout_ms,
                     const unsigned char *query, int qlen, unsigned char *answer, int anslen);

#endif
