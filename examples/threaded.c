/* threaded.c — a threaded service that caches through libmcring.
 *
 * The pattern docs/decisions.md prescribes for threads: every thread opens
 * its own client handle (mcr_client_new) and uses only that one, so the
 * operation path takes no lock; handles are independent and may run
 * concurrently. The process then holds at most one connection per node per
 * thread, and every handle that follows an agent's --ring-dir maps the same
 * ring file (the pages exist once per host).
 *
 * Each thread serves simulated requests: look the item up (get), and on a
 * miss "compute" it and store it with a TTL (set) — cache-aside. Errors
 * are treated as the cache being cold, the way a service should: the
 * request is still served, the error is counted and its text printed once.
 *
 *   examples/threaded --servers 127.0.0.1:11211 [--threads 8] [--requests N]
 *   examples/threaded --ring-dir /run/mcring/main
 */
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcring.h"

typedef struct {
  int id;
  const mcr_client_opts_t* opts; /* shared, read-only */
  long requests;
  /* Results, written by this thread only, read after pthread_join. */
  long hits, misses, stores, errors;
  int failed; /* the handle could not be created */
} worker_t;

/* Stands in for the expensive work the cache saves (a database query). */
static int compute(const char* key, char* out, size_t cap) {
  return snprintf(out, cap, "value-of-%s", key);
}

static void* worker_main(void* arg) {
  worker_t* w = arg;
  mcr_client_t* c;
  char err[256];
  /* One handle per thread, created by the thread that uses it. */
  int rc = mcr_client_new(&c, w->opts, err, sizeof err);
  if (rc < 0) {
    fprintf(stderr, "thread %d: %s: %s\n", w->id, mcr_strerror(rc), err);
    w->failed = 1;
    return NULL;
  }
  int said = 0;
  for (long i = 0; i < w->requests; i++) {
    char key[64], value[128];
    /* A small key space, so threads hit what other threads stored. */
    int klen = snprintf(key, sizeof key, "user:%ld", (i * 7 + w->id) % 200);
    mcr_item_t it;
    rc = mcr_client_get(c, key, (size_t)klen, &it);
    if (rc == MCR_OK) {
      w->hits++; /* it.value is valid until the next call on c */
      continue;
    }
    if (rc < 0) {
      w->errors++;
      if (!said++)
        fprintf(stderr, "thread %d: get: %s (%s)\n", w->id, mcr_strerror(rc),
                mcr_client_last_error(c));
    } else {
      w->misses++;
    }
    int vlen = compute(key, value, sizeof value);
    rc = mcr_client_set(c, key, (size_t)klen, value, (size_t)vlen, 0, 300, 0);
    if (rc == MCR_OK)
      w->stores++;
    else if (rc < 0)
      w->errors++;
  }
  mcr_client_free(c);
  return NULL;
}

int main(int argc, char** argv) {
  mcr_client_opts_t opts;
  mcr_client_opts_init(&opts);
  opts.servers = "127.0.0.1:11211";
  opts.io_timeout_ms = 200;
  long threads = 8, requests = 10000;
  static const struct option longopts[] = {
      {"servers", required_argument, NULL, 's'},
      {"ring-dir", required_argument, NULL, 'r'},
      {"threads", required_argument, NULL, 't'},
      {"requests", required_argument, NULL, 'n'},
      {NULL, 0, NULL, 0},
  };
  int opt;
  while ((opt = getopt_long(argc, argv, "s:r:t:n:", longopts, NULL)) != -1) {
    switch (opt) {
      case 's':
        opts.servers = optarg;
        break;
      case 'r':
        opts.ring_dir = optarg;
        opts.servers = NULL;
        break;
      case 't':
        threads = strtol(optarg, NULL, 10);
        break;
      case 'n':
        requests = strtol(optarg, NULL, 10);
        break;
      default:
        fprintf(stderr,
                "usage: threaded [--servers LIST | --ring-dir DIR] "
                "[--threads N] [--requests N]\n");
        return 2;
    }
  }
  if (threads < 1 || threads > 256 || requests < 0) {
    fprintf(stderr, "threaded: --threads 1..256, --requests >= 0\n");
    return 2;
  }

  worker_t* w = calloc((size_t)threads, sizeof *w);
  pthread_t* tid = calloc((size_t)threads, sizeof *tid);
  if (!w || !tid)
    return 2;
  for (long i = 0; i < threads; i++) {
    w[i].id = (int)i;
    w[i].opts = &opts;
    w[i].requests = requests;
    if (pthread_create(&tid[i], NULL, worker_main, &w[i]) != 0) {
      fprintf(stderr, "threaded: pthread_create failed\n");
      return 2;
    }
  }
  long hits = 0, misses = 0, stores = 0, errors = 0, failed = 0;
  for (long i = 0; i < threads; i++) {
    pthread_join(tid[i], NULL);
    hits += w[i].hits;
    misses += w[i].misses;
    stores += w[i].stores;
    errors += w[i].errors;
    failed += w[i].failed;
  }
  printf("threads %ld requests %ld hits %ld misses %ld stores %ld errors %ld\n",
         threads, threads * requests, hits, misses, stores, errors);
  free(w);
  free(tid);
  return failed ? 2 : errors ? 1 : 0;
}
