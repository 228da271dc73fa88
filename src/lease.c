#include "lease.h"

/* a + b and a - b, saturating at the int64 bounds. */
static int64_t sat_add(int64_t a, int64_t b)
{
	if (b > 0 && a > INT64_MAX - b)
		return INT64_MAX;
	if (b < 0 && a < INT64_MIN - b)
		return INT64_MIN;
	return a + b;
}

static int64_t sat_sub(int64_t a, int64_t b)
{
	if (b < 0 && a > INT64_MAX + b)
		return INT64_MAX;
	if (b > 0 && a < INT64_MIN + b)
		return INT64_MIN;
	return a - b;
}

int64_t lease_expires_at(bool ours, int64_t renewed_at, int64_t lease_ms, int64_t created_at,
                         int64_t stale_after_ms)
{
	if (ours)
		return sat_add(renewed_at, lease_ms);
	if (stale_after_ms == 0 || created_at == 0)
		return INT64_MAX;
	return sat_add(created_at, stale_after_ms);
}

int64_t lease_expired_for(bool ours, int64_t renewed_at, int64_t lease_ms, int64_t created_at,
                          int64_t stale_after_ms, int64_t now)
{
	int64_t end = lease_expires_at(ours, renewed_at, lease_ms, created_at, stale_after_ms);
	return end == INT64_MAX ? -1 : sat_sub(now, end);
}

int64_t lease_renewal_due(int64_t valid_until, int64_t lease_ms)
{
	return valid_until - lease_ms + lease_ms / 3;
}
