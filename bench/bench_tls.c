/* bench_tls.c — what TLS costs a client: mcring over TLS next to plain.
 *
 * The same memcached build serves plain TCP on some ports and TLS (-Z) on
 * others; bench/run.sh starts both and makes the certificates
 * (tests/support/tls_certs.sh). In one run, interleaved in short slices so
 * that the machine's drift falls on both alike:
 *   - one-key get of 10 bytes, ops/s, plain and TLS (one node each);
 *   - a 100-key multi-get over three nodes, keys/s, plain and TLS;
 *   - the cost of a connection: a full handshake (a new client each time:
 *     no session to offer; the cost of making the client and its TLS
 *     context, measured apart, is subtracted) and a resumed one (the same
 *     client reconnects and offers its last session), each followed by
 *     one get.
 *
 *   bench_tls time PLAIN_PORTS TLS_PORTS CA    wall clock, result lines
 *   bench_tls loop get10 N TLS_PORT CA         N gets over TLS, for
 *                                              callgrind and strace
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "mcring.h"

#define NODES 3
#define MGET_KEYS 100
#define ROUNDS 5
#define SLICE_SECONDS 0.05

static const char* ca_file;

static mcr_client_t* client(const int* ports, int n, bool tls) {
  char servers[256];
  size_t len = 0;
  for (int i = 0; i < n; i++)
    len += (size_t)snprintf(servers + len, sizeof servers - len,
                            "%s127.0.0.1:%d", i ? "," : "", ports[i]);
  mcr_client_opts_t o;
  mcr_client_opts_init(&o);
  o.servers = servers;
  o.distribution = MCR_DIST_KETAMA_LIBMEMCACHED;
  o.host_stats = 0;
  if (tls) {
    o.tls.enable = 1;
    o.tls.ca_file = ca_file;
  }
  mcr_client_t* c;
  char err[256];
  if (mcr_client_new(&c, &o, err, sizeof err) != 0)
    bench_die("mcr_client_new: %s", err);
  return c;
}

static void must(mcr_client_t* c, int rc, const char* what) {
  if (rc != MCR_OK)
    bench_die("%s: %s: %s", what, mcr_strerror(rc), mcr_client_last_error(c));
}

static char keys[MGET_KEYS][24];
static const char* key_ptrs[MGET_KEYS];
static size_t key_lens[MGET_KEYS];

static void fill(mcr_client_t* c) {
  must(c, mcr_client_set(c, "bench:tls:10", 12, "0123456789", 10, 0, 0, 0),
       "set");
  for (int i = 0; i < MGET_KEYS; i++) {
    key_lens[i] = (size_t)snprintf(keys[i], sizeof keys[i], "bench:tls:m%d", i);
    key_ptrs[i] = keys[i];
    must(c, mcr_client_set(c, keys[i], key_lens[i], "v", 1, 0, 0, 0), "set");
  }
}

static void get10(mcr_client_t* c) {
  mcr_item_t it;
  must(c, mcr_client_get(c, "bench:tls:10", 12, &it), "get");
}

static void mget(mcr_client_t* c) {
  static mcr_item_t items[MGET_KEYS];
  size_t hits = 0;
  must(c, mcr_client_get_multi(c, MGET_KEYS, key_ptrs, key_lens, items, &hits),
       "get_multi");
  if (hits != MGET_KEYS)
    bench_die("get_multi: %zu hits of %d", hits, MGET_KEYS);
}

/* Operations per second of op(c) for one slice. */
static double slice(mcr_client_t* c, void (*op)(mcr_client_t*)) {
  double t0 = bench_now(), t;
  long n = 0;
  do {
    for (int i = 0; i < 32; i++)
      op(c);
    n += 32;
  } while ((t = bench_now()) - t0 < SLICE_SECONDS);
  return (double)n / (t - t0);
}

/* Microseconds to make and free a TLS client (its context: the CA file
 * loaded), with no connection. */
static double context_us(const int* port, int n) {
  double t0 = bench_now();
  for (int i = 0; i < n; i++)
    mcr_client_free(client(port, 1, true));
  return (bench_now() - t0) * 1e6 / n;
}

/* Microseconds per connection: reconnect (quit, then a get) `n` times on
 * c; with fresh, a new client each time instead (no session to resume). */
static double connect_us(const int* port, bool fresh, mcr_client_t* c, int n) {
  double t0 = bench_now();
  for (int i = 0; i < n; i++) {
    if (fresh) {
      mcr_client_t* f = client(port, 1, true);
      get10(f);
      mcr_client_free(f);
    } else {
      mcr_client_quit(c);
      get10(c);
    }
  }
  return (bench_now() - t0) * 1e6 / n;
}

static int mode_time(const int* plain, const int* tls) {
  mcr_client_t* p1 = client(plain, 1, false);
  mcr_client_t* t1 = client(tls, 1, true);
  mcr_client_t* p3 = client(plain, NODES, false);
  mcr_client_t* t3 = client(tls, NODES, true);
  fill(p3);
  fill(t3);
  fill(p1);
  fill(t1);
  double g[2][ROUNDS * 4], m[2][ROUNDS * 4], full[ROUNDS], res[ROUNDS],
      ctx[ROUNDS];
  int k = 0;
  for (int r = 0; r < ROUNDS; r++) {
    for (int s = 0; s < 4; s++, k++) {
      g[0][k] = slice(p1, get10);
      g[1][k] = slice(t1, get10);
      m[0][k] = slice(p3, mget) * MGET_KEYS;
      m[1][k] = slice(t3, mget) * MGET_KEYS;
    }
    ctx[r] = context_us(tls, 50);
    full[r] = connect_us(tls, true, NULL, 50) - ctx[r];
    res[r] = connect_us(tls, false, t1, 50);
  }
  mcr_client_stats_t st;
  mcr_client_stats(t1, &st);
  double gp = bench_median(g[0], (size_t)k), gt = bench_median(g[1], (size_t)k);
  double mp = bench_median(m[0], (size_t)k), mt = bench_median(m[1], (size_t)k);
  bench_result("tls_get10_ops_plain", gp);
  bench_result("tls_get10_ops_tls", gt);
  bench_result("tls_get_ratio", gt / gp);
  bench_result("tls_mget_keys_plain", mp);
  bench_result("tls_mget_keys_tls", mt);
  bench_result("tls_mget_ratio", mt / mp);
  bench_result("tls_context_us", bench_median(ctx, ROUNDS));
  bench_result("tls_handshake_full_us", bench_median(full, ROUNDS));
  bench_result("tls_handshake_resumed_us", bench_median(res, ROUNDS));
  bench_result("tls_resumed_share",
               (double)st.tls_resumed / (double)st.tls_handshakes);
  mcr_client_free(p1);
  mcr_client_free(t1);
  mcr_client_free(p3);
  mcr_client_free(t3);
  return 0;
}

int main(int argc, char** argv) {
  int plain[NODES], tls[NODES];
  if (argc == 5 && strcmp(argv[1], "time") == 0) {
    ca_file = argv[4];
    if (bench_parse_ports(argv[2], plain, NODES) != NODES ||
        bench_parse_ports(argv[3], tls, NODES) != NODES)
      bench_die("want %d plain and %d TLS ports", NODES, NODES);
    return mode_time(plain, tls);
  }
  if (argc == 6 && strcmp(argv[1], "loop") == 0 &&
      strcmp(argv[2], "get10") == 0) {
    ca_file = argv[5];
    long n = atol(argv[3]);
    bench_parse_ports(argv[4], tls, 1);
    mcr_client_t* c = client(tls, 1, true);
    fill(c);
    for (int i = 0; i < 100; i++) /* warm up */
      get10(c);
    for (long i = 0; i < n; i++)
      get10(c);
    mcr_client_free(c);
    return 0;
  }
  fprintf(stderr,
          "usage: bench_tls time PLAIN_PORTS TLS_PORTS CA\n"
          "       bench_tls loop get10 N TLS_PORT CA\n");
  return 2;
}
