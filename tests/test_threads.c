/* test_threads.c — the threading model: one client handle per thread.
 *
 * A handle is single-threaded by contract; threads each create their own
 * from the same options and use them at the same time against the same
 * nodes. Eight threads write and read their own keys and must only ever see
 * their own values. CI runs this program under ThreadSanitizer as well
 * (tools/run), so any shared state inside the library that is not properly
 * synchronized (the fork generation, the resolver thread, the ring) is
 * reported. It is a plain program rather than a Criterion suite because
 * Criterion's runner cannot start under ThreadSanitizer (its fixed-address
 * arena collides with TSan's shadow memory). Its subject is isolation, not
 * speed: the timeouts are long enough that a loaded 2-core machine (CI runs
 * the suites in parallel, TSan slows everything tenfold) never turns a slow
 * reply into an error, and every failure says which of the two it was.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "support.h"

#define THREADS 8
#define ROUNDS 500

static mcd_t a, b;
static char servers[128];

static void setup(void) {
  mcd_start(&a, NULL);
  mcd_start(&b, NULL);
  snprintf(servers, sizeof servers, "%s,localhost:%d", mcd_servers_string(&a),
           b.port);
}

static void teardown(void) {
  mcd_stop(&a);
  mcd_stop(&b);
}

static void* worker(void* arg) {
  long id = (long)arg;
  mcr_client_opts_t o = opts_default();
  o.servers = servers;
  o.distribution = MCR_DIST_KETAMA_LIBMEMCACHED;
  o.compress_threshold = 64;
  o.connect_timeout_ms = 60000;
  o.io_timeout_ms = 60000;
  mcr_client_t* c = NULL;
  if (mcr_client_new(&c, &o, NULL, 0) != 0)
    return (void*)1;
  long bad = 0;
  for (int r = 0; r < ROUNDS; r++) {
    char key[32], val[128];
    int kl = snprintf(key, sizeof key, "t%ld-%d", id, r % 50);
    int vl = snprintf(val, sizeof val,
                      "thread %ld round %d padding padding padding padding "
                      "padding padding",
                      id, r);
    int rc =
        mcr_client_set(c, key, (size_t)kl, val, (size_t)vl, (uint32_t)id, 0, 0);
    if (rc != MCR_OK) {
      fprintf(stderr, "thread %ld: set %s: %s (%s)\n", id, key,
              mcr_err_name(rc), mcr_client_last_error(c));
      bad++;
      continue;
    }
    mcr_item_t it;
    rc = mcr_client_get(c, key, (size_t)kl, &it);
    if (rc != MCR_OK) {
      fprintf(stderr, "thread %ld: get %s: %s (%s)\n", id, key,
              mcr_err_name(rc), mcr_client_last_error(c));
      bad++;
    } else if (it.value_len != (size_t)vl ||
               memcmp(it.value, val, (size_t)vl) != 0 ||
               it.flags != (uint32_t)id) {
      fprintf(stderr, "thread %ld: get %s: wrong value (flags %u, %zu bytes)\n",
              id, key, it.flags, it.value_len);
      bad++;
    }
  }
  mcr_client_free(c);
  return (void*)bad;
}

int main(void) {
  setup();
  pthread_t t[THREADS];
  int failed = 0;
  for (long i = 0; i < THREADS; i++)
    if (pthread_create(&t[i], NULL, worker, (void*)i) != 0)
      return 2;
  for (int i = 0; i < THREADS; i++) {
    void* bad;
    pthread_join(t[i], &bad);
    if (bad) {
      fprintf(stderr, "thread %d saw %ld bad results\n", i, (long)bad);
      failed++;
    }
  }
  teardown();
  printf("threads: %d passed, %d failed\n", THREADS - failed, failed);
  return failed ? 1 : 0;
}
