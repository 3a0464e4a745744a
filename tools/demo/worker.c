/* worker.c — what each forked worker of the demo does: cache-aside
 * traffic through the client it inherited from the master, every read
 * checked.
 *
 * A worker works on its own keys (demo:w<W>:k<K>): get, and set on a miss
 * (cache-aside), get_multi of a few keys, and sets of new versions. Every
 * value encodes its key and version plus a filler derived from both, and
 * every read is compared with the exact value the worker last wrote, so a
 * value of another key, an older version or a corrupted one is counted as
 * wrong: that is what would show a worker routing by a stale or torn ring.
 * Counters, the generation the worker routes by and the moment it
 * switched go to its slot of the shared block for the master to read.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "demo.h"

#define VALUE_MAX 320

static uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

static size_t make_key(char* buf, int w, uint32_t k) {
  return (size_t)snprintf(buf, 48, "demo:w%d:k%" PRIu32, w + 1, k);
}

/* "w<W>:k<K>:v<VER>:" then 8..199 filler letters derived from all three. */
static size_t make_value(char* buf, int w, uint32_t k, uint64_t ver) {
  int n =
      snprintf(buf, VALUE_MAX, "w%d:k%" PRIu32 ":v%" PRIu64 ":", w + 1, k, ver);
  uint64_t h = mix64(((uint64_t)(w + 1) << 40) ^ ((uint64_t)k << 20) ^ ver);
  size_t len = (size_t)n + 8 + h % 192;
  for (size_t i = (size_t)n; i < len; i++) {
    h = h * 6364136223846793005ULL + 1442695040888963407ULL;
    buf[i] = (char)('a' + (h >> 58) % 26);
  }
  return len;
}

typedef struct {
  int w;
  wslot_t* s;
  mcr_client_t* c;
  uint64_t* ver;   /* the version last written per key (0: never) */
  uint8_t* unsure; /* a set of this key failed: see check_hit */
  uint64_t ops, lookups, hits, sets, errors, wrong, loops;
} worker_t;

static void note(worker_t* wk, const char* fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void note(worker_t* wk, const char* fmt, ...) {
  if (wk->s->note_set)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(wk->s->note, sizeof wk->s->note, fmt, ap);
  va_end(ap);
  STORE(&wk->s->note_set, 1);
}

static void call_failed(worker_t* wk, const char* what, int rc) {
  wk->errors++;
  note(wk, "%s: %s (%s)", what, mcr_err_name(rc), mcr_client_last_error(wk->c));
}

/* Stores the current version of key k (cache-aside refill or new
 * version). */
static void store(worker_t* wk, uint32_t k) {
  char key[48], val[VALUE_MAX];
  size_t kl = make_key(key, wk->w, k);
  size_t vl = make_value(val, wk->w, k, wk->ver[k]);
  int rc = mcr_client_set(wk->c, key, kl, val, vl, (uint32_t)wk->w + 1, 0, 0);
  wk->ops++;
  if (rc == MCR_OK)
    wk->sets++;
  else if (rc < 0) {
    /* The set may still land later (memcached can run it after the
     * client gave up on the connection), so the key is unsure from now
     * on: see check_hit. The error itself already fails the demo. */
    call_failed(wk, "set", rc);
    wk->unsure[k] = 1;
  }
}

/* True when the item is exactly version `ver` of key k. */
static bool is_version(const worker_t* wk, uint32_t k, uint64_t ver,
                       const mcr_item_t* it) {
  char val[VALUE_MAX];
  size_t vl = make_value(val, wk->w, k, ver);
  return it->value_len == vl && memcmp(it->value, val, vl) == 0 &&
         it->flags == (uint32_t)wk->w + 1;
}

/* Checks a hit against the exact value last written for key k. After a
 * failed set of the key, any exact earlier version of it is accepted too
 * (which one the node kept is unknown); a value that is not one of the
 * key's own is wrong in every case. */
static void check_hit(worker_t* wk, uint32_t k, const mcr_item_t* it) {
  if (wk->ver[k] && is_version(wk, k, wk->ver[k], it)) {
    wk->hits++;
    return;
  }
  int w;
  uint32_t kk;
  uint64_t v;
  if (wk->unsure[k] && it->value_len < VALUE_MAX) {
    char head[VALUE_MAX];
    memcpy(head, it->value, it->value_len);
    head[it->value_len] = '\0';
    if (sscanf(head, "w%d:k%" SCNu32 ":v%" SCNu64 ":", &w, &kk, &v) == 3 &&
        w == wk->w + 1 && kk == k && v <= wk->ver[k] &&
        is_version(wk, k, v, it)) {
      wk->hits++;
      return;
    }
  }
  wk->wrong++;
  int shown = it->value_len < 60 ? (int)it->value_len : 60;
  note(wk,
       "wrong value for demo:w%d:k%" PRIu32 " (expected v%" PRIu64
       ", flags %d): got %zu bytes, flags %" PRIu32 ": \"%.*s\"",
       wk->w + 1, k, wk->ver[k], wk->w + 1, it->value_len, it->flags, shown,
       it->value);
}

static void after_call(worker_t* wk) {
  wslot_t* s = wk->s;
  uint64_t g = mcr_client_generation(wk->c);
  if (g != s->gen) {
    __atomic_store_n(&s->switch_ns, (uint64_t)real_ns(), __ATOMIC_RELAXED);
    STORE(&s->gen, g);
  }
  __atomic_store_n(&s->ops, wk->ops, __ATOMIC_RELAXED);
  __atomic_store_n(&s->lookups, wk->lookups, __ATOMIC_RELAXED);
  __atomic_store_n(&s->hits, wk->hits, __ATOMIC_RELAXED);
  __atomic_store_n(&s->sets, wk->sets, __ATOMIC_RELAXED);
  __atomic_store_n(&s->errors, wk->errors, __ATOMIC_RELAXED);
  __atomic_store_n(&s->wrong, wk->wrong, __ATOMIC_RELAXED);
  if ((++wk->loops & 1023) == 0) {
    mcr_client_stats_t st;
    mcr_client_stats(wk->c, &st);
    __atomic_store_n(&s->ring_errors, st.ring_errors, __ATOMIC_RELAXED);
  }
}

static void one_get(worker_t* wk, uint32_t k) {
  char key[48];
  size_t kl = make_key(key, wk->w, k);
  mcr_item_t it;
  int rc = mcr_client_get(wk->c, key, kl, &it);
  wk->ops++;
  wk->lookups++;
  if (rc == MCR_OK)
    check_hit(wk, k, &it);
  else if (rc == MCR_MISS) {
    if (!wk->ver[k])
      wk->ver[k] = 1;
    store(wk, k); /* cache-aside: compute and fill */
  } else if (rc < 0)
    call_failed(wk, "get", rc);
}

/* One get_multi of MULTI_KEYS random keys, each hit checked and each miss
 * refilled. */
static void multi_get(worker_t* wk, uint64_t* rng, int nkeys) {
  char keys[MULTI_KEYS][48];
  const char* kp[MULTI_KEYS];
  size_t kl[MULTI_KEYS];
  uint32_t ks[MULTI_KEYS];
  mcr_item_t items[MULTI_KEYS];
  for (int i = 0; i < MULTI_KEYS; i++) {
    *rng = mix64(*rng + (uint64_t)i + 1);
    ks[i] = (uint32_t)(*rng % (uint64_t)nkeys);
    kl[i] = make_key(keys[i], wk->w, ks[i]);
    kp[i] = keys[i];
  }
  int rc = mcr_client_get_multi(wk->c, MULTI_KEYS, kp, kl, items, NULL);
  wk->ops++;
  if (rc < 0) {
    call_failed(wk, "get_multi", rc);
    return;
  }
  /* Check every item before any refill: a set reuses the memory the items
   * point into. */
  bool refill[MULTI_KEYS] = {false};
  for (int i = 0; i < MULTI_KEYS; i++) {
    wk->lookups++;
    if (items[i].status == MCR_OK)
      check_hit(wk, ks[i], &items[i]);
    else if (items[i].status == MCR_MISS)
      refill[i] = true;
    else
      call_failed(wk, "get_multi key", items[i].status);
  }
  for (int i = 0; i < MULTI_KEYS; i++) {
    if (!refill[i])
      continue;
    if (!wk->ver[ks[i]])
      wk->ver[ks[i]] = 1;
    store(wk, ks[i]);
  }
}

void worker_run(shm_t* shm, int w, mcr_client_t* c, int nkeys) {
  wslot_t* s = &shm->w[w];
  worker_t wk = {.w = w, .s = s, .c = c};
  wk.ver = calloc((size_t)nkeys, sizeof *wk.ver);
  wk.unsure = calloc((size_t)nkeys, 1);
  if (!wk.ver || !wk.unsure)
    _exit(3);
  STORE(&s->pid, (int32_t)getpid());
  uint64_t rng = mix64((uint64_t)getpid() * 7919 + (uint64_t)w);
  while (!LOAD(&shm->stop)) {
    rng = mix64(rng + 0x9e3779b97f4a7c15ULL);
    unsigned pick = (unsigned)(rng % 100);
    uint32_t k = (uint32_t)((rng >> 8) % (uint64_t)nkeys);
    if (pick < 20) { /* a new version of the key */
      wk.ver[k]++;
      store(&wk, k);
    } else if (pick < 30) { /* a page that needs several keys at once */
      multi_get(&wk, &rng, nkeys);
    } else {
      one_get(&wk, k);
    }
    after_call(&wk);
  }
  mcr_client_stats_t st;
  mcr_client_stats(c, &st);
  __atomic_store_n(&s->ring_errors, st.ring_errors, __ATOMIC_RELAXED);
  mcr_client_free(c);
  free(wk.ver);
  free(wk.unsure);
  _exit(0);
}
