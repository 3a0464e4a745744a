/* lease.c — stampede protection: one process recomputes a missing or
 * stale value while the others wait briefly or use the stale one.
 *
 * memcached already knows how to elect one client per key: mg with N
 * (vivify) turns a miss into a placeholder item and gives the first
 * caller the win flag W and every later one Z; mg with R gives W to one
 * caller once the item's TTL falls below R; md with I marks an item stale
 * (X) and the next mg wins it. This file turns those flags into one
 * decision per call (hit, won, stale, busy), waits a bounded time for the
 * winner's value, and fills with the cas of the won item so a fill never
 * overwrites a newer value. It is built on the public meta calls
 * (client_meta.c) and adds no state: everything lives in memcached, so a
 * crashed winner's lease ends when its placeholder expires.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define TTL_MAX 2147483647LL /* memcached parses T / N / R as 32 bits */

void mcr_lease_opts_init(mcr_lease_opts_t* o) {
  if (!o)
    return;
  memset(o, 0, sizeof *o);
  o->lease_ttl = 30;
  o->wait_ms = 1000;
  o->poll_ms = 10;
}

static int check_opts(mcr_client_t* c, const mcr_lease_opts_t* o) {
  if (o->lease_ttl < 1 || o->lease_ttl > TTL_MAX)
    return mcr__set_error(c, MCR_ERANGE, "lease_ttl %lld is outside 1..%lld",
                          (long long)o->lease_ttl, TTL_MAX);
  if (o->recache_ttl < 0 || o->recache_ttl > TTL_MAX)
    return mcr__set_error(c, MCR_ERANGE, "recache_ttl %lld is outside 0..%lld",
                          (long long)o->recache_ttl, TTL_MAX);
  if (o->poll_ms == 0)
    return mcr__set_error(c, MCR_EINVAL, "poll_ms must be > 0");
  return 0;
}

/* Sleeps ns nanoseconds (signals do not shorten it). */
static void sleep_ns(int64_t ns) {
  struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
}

/* Reads one mg reply into *l. Returns true when it was memcached's
 * placeholder for a value another process is computing (Z, no value,
 * not stale): the caller should wait. */
static bool decide(const mcr_meta_result_t* r, mcr_lease_t* l) {
  memset(l, 0, sizeof *l);
  if (r->status == MCR_MISS) {
    /* No vivify happened: a softened error (ignore_errors). Compute; the
     * fill adds. */
    l->state = MCR_LEASE_WON;
    return false;
  }
  l->value = r->value ? r->value : "";
  l->value_len = r->value_len;
  l->client_flags = r->client_flags;
  l->cas = r->cas;
  l->stale = r->stale;
  l->has_value = r->stale || r->value_len > 0;
  if (r->win)
    l->state = MCR_LEASE_WON;
  else if (r->stale)
    l->state = MCR_LEASE_STALE;
  else if (r->won_already && r->value_len == 0)
    l->state = MCR_LEASE_BUSY;
  else
    l->state = MCR_LEASE_HIT;
  return l->state == MCR_LEASE_BUSY;
}

int mcr_client_lease_get(mcr_client_t* c, const char* key, size_t key_len,
                         const mcr_lease_opts_t* o, mcr_lease_t* l) {
  if (!c || !l)
    return MCR_EINVAL;
  memset(l, 0, sizeof *l);
  mcr_lease_opts_t def;
  if (!o) {
    mcr_lease_opts_init(&def);
    o = &def;
  }
  mcr__call_start(c);
  int rc = check_opts(c, o);
  if (rc)
    return rc;
  mcr_meta_opts_t mo = {.flags = MCR_META_VALUE | MCR_META_RET_CAS |
                                 MCR_META_RET_FLAGS | MCR_META_VIVIFY |
                                 (o->recache_ttl > 0 ? MCR_META_RECACHE : 0),
                        .vivify_ttl = o->lease_ttl,
                        .recache_ttl = o->recache_ttl};
  int64_t until = mcr__now_ns() + (int64_t)o->wait_ms * 1000000;
  for (;;) {
    mcr_meta_result_t r;
    rc = mcr_client_mg(c, key, key_len, &mo, &r);
    if (rc < 0)
      return rc;
    if (!decide(&r, l))
      return MCR_OK;
    int64_t left = until - mcr__now_ns();
    if (left <= 0)
      return MCR_OK; /* MCR_LEASE_BUSY */
    sleep_ns(left < (int64_t)o->poll_ms * 1000000
                 ? left
                 : (int64_t)o->poll_ms * 1000000);
  }
}

int mcr_client_lease_fill(mcr_client_t* c, const char* key, size_t key_len,
                          const void* value, size_t value_len,
                          uint32_t client_flags, int64_t ttl,
                          const mcr_lease_t* l) {
  if (!c || !l || !value)
    return MCR_EINVAL;
  if (value_len == 0) {
    mcr__call_start(c);
    return mcr__set_error(c, MCR_EINVAL,
                          "an empty value would read as a lease placeholder");
  }
  mcr_meta_opts_t mo = {.flags = MCR_META_TTL | MCR_META_SET_FLAGS,
                        .ttl = ttl,
                        .client_flags = client_flags};
  int rc;
  if (l->cas) {
    /* Compare with the won item's cas: a newer value or a newer
     * invalidation wins over ours. */
    mo.flags |= MCR_META_COMPARE_CAS;
    mo.cas = l->cas;
    rc = mcr_client_ms(c, key, key_len, value, value_len, &mo, NULL);
    if (rc != MCR_NOT_FOUND)
      return rc;
    mo.flags &= ~MCR_META_COMPARE_CAS;
    mo.cas = 0;
  }
  /* The placeholder expired (or no lease was given out): store unless
   * another process did first. */
  mo.flags |= MCR_META_MODE;
  mo.mode = MCR_MS_ADD;
  return mcr_client_ms(c, key, key_len, value, value_len, &mo, NULL);
}

int mcr_client_lease_invalidate(mcr_client_t* c, const char* key,
                                size_t key_len, int64_t stale_ttl) {
  if (!c)
    return MCR_EINVAL;
  if (stale_ttl < 1 || stale_ttl > TTL_MAX) {
    mcr__call_start(c);
    return mcr__set_error(c, MCR_ERANGE, "stale_ttl %lld is outside 1..%lld",
                          (long long)stale_ttl, TTL_MAX);
  }
  mcr_meta_opts_t mo = {.flags = MCR_META_INVALIDATE | MCR_META_TTL,
                        .ttl = stale_ttl};
  return mcr_client_md(c, key, key_len, &mo, NULL);
}
