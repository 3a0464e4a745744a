/* bench_kv.c — single get / set and a 100-key multi-get, three ways.
 *
 * The same operations run through three clients against the same memcached
 * processes on loopback: mcring (mcr_client_*), libmemcached (Debian's,
 * text protocol, TCP_NODELAY, requests not buffered) and a raw floor, a
 * plain blocking send/recv loop over one socket that sends the very bytes
 * mcring sends and parses the reply only as far as it must to know where it
 * ends. The floor is what any client pays for the round trip; the ratios
 * say how much of it mcring and libmemcached add.
 *
 *   bench_kv ports N            prints N free loopback ports ("p1,p2,...")
 *   bench_kv wait PORTS         waits until every port accepts connections
 *   bench_kv time PORTS         wall clock: each op, each client, 5 rounds
 *                               of interleaved slices; prints medians as
 *                               result lines
 *   bench_kv loop IMPL OP N PORTS
 *                               sets up IMPL (mcring | libmemcached | raw),
 *                               warms up, then runs OP N times and exits:
 *                               the target of callgrind and strace, which
 *                               bench/run.sh runs at two N so that start-up
 *                               cancels out of the per-op figures.
 *
 * OP: get10, get4k, set10, set4k (one node: the first port), mget (100 keys
 * over the four ports, ketama-libmemcached on the mcring side and
 * KETAMA_WEIGHTED on the libmemcached side, so every client sends each node
 * the same keys; the floor's per-node request lines come from the same
 * ring). Every key is stored before anything is timed, so gets are hits.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libmemcached/memcached.h>

#include "common.h"
#include "mcring.h"

#define NODES 4
#define MGET_KEYS 100
#define MGET_VALUE 100
#define ROUNDS 5
#define SLICES 15
#define SLICE_SECONDS 0.02

typedef enum { IMPL_RAW, IMPL_MCRING, IMPL_LM, NIMPL } impl_t;
static const char* const impl_names[NIMPL] = {"raw", "mcring", "libmemcached"};

typedef enum { OP_GET10, OP_GET4K, OP_SET10, OP_SET4K, OP_MGET, NOPS } op_t;
static const char* const op_names[NOPS] = {"get10", "get4k", "set10", "set4k",
                                           "mget"};

static int ports[NODES];
static int nports;

/* The single-key workload: a key and a value per size. */
typedef struct {
  const char* key;
  size_t key_len;
  char* value;
  size_t value_len;
  char* get_req; /* "get <key>\r\n" */
  size_t get_req_len;
  char* set_req; /* "set <key> 0 0 <len>\r\n<value>\r\n" */
  size_t set_req_len;
} single_t;
static single_t small = {.key = "bench:single:10", .value_len = 10};
static single_t large = {.key = "bench:single:4k", .value_len = 4096};

/* The multi-get workload. */
static char mget_keys[MGET_KEYS][32];
static const char* mget_key_ptrs[MGET_KEYS];
static size_t mget_key_lens[MGET_KEYS];
static char mget_value[MGET_VALUE];
static char* mget_req[NODES]; /* one "get k1 k2 ...\r\n" per node, or NULL */
static size_t mget_req_len[NODES];
static mcr_item_t mget_items[MGET_KEYS];

/* Clients. */
static mcr_client_t* mc_one;   /* mcring, first port */
static mcr_client_t* mc_multi; /* mcring, four ports */
static memcached_st* lm_one;
static memcached_st* lm_multi;
static memcached_result_st lm_res;
static int raw_fd = -1;
static int raw_fds[NODES] = {-1, -1, -1, -1};
static char rbuf[NODES][1 << 16];

static volatile size_t sink;

/* ------------------------------------------------------------ setup */

static char* server_list(int n) {
  char* s = malloc((size_t)n * 24 + 1);
  size_t off = 0;
  for (int i = 0; i < n; i++)
    off += (size_t)sprintf(s + off, "%s127.0.0.1:%d", i ? "," : "", ports[i]);
  return s;
}

static void single_init(single_t* s) {
  s->key_len = strlen(s->key);
  s->value = malloc(s->value_len);
  for (size_t i = 0; i < s->value_len; i++)
    s->value[i] = (char)('a' + i % 26);
  s->get_req = malloc(s->key_len + 8);
  s->get_req_len = (size_t)sprintf(s->get_req, "get %s\r\n", s->key);
  s->set_req = malloc(s->key_len + s->value_len + 64);
  int h = sprintf(s->set_req, "set %s 0 0 %zu\r\n", s->key, s->value_len);
  memcpy(s->set_req + h, s->value, s->value_len);
  memcpy(s->set_req + h + s->value_len, "\r\n", 2);
  s->set_req_len = (size_t)h + s->value_len + 2;
}

static mcr_client_t* mc_new(const char* servers) {
  mcr_client_opts_t o;
  mcr_client_opts_init(&o);
  o.servers = servers;
  o.distribution = MCR_DIST_KETAMA_LIBMEMCACHED;
  mcr_client_t* c;
  char err[256];
  int rc = mcr_client_new(&c, &o, err, sizeof err);
  if (rc)
    bench_die("mcr_client_new: %s: %s", mcr_strerror(rc), err);
  return c;
}

static memcached_st* lm_new(int n) {
  memcached_st* m = memcached_create(NULL);
  memcached_behavior_set(m, MEMCACHED_BEHAVIOR_TCP_NODELAY, 1);
  memcached_behavior_set(m, MEMCACHED_BEHAVIOR_BUFFER_REQUESTS, 0);
  if (n > 1)
    memcached_behavior_set(m, MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, 1);
  memcached_server_list_st list = NULL;
  for (int i = 0; i < n; i++) {
    memcached_return_t rc;
    list = memcached_server_list_append_with_weight(
        list, "127.0.0.1", (in_port_t)ports[i], 1, &rc);
  }
  memcached_server_push(m, list);
  memcached_server_list_free(list);
  return m;
}

/* Groups the multi-get keys per node with mcring's ring (the same placement
 * libmemcached's KETAMA_WEIGHTED computes, checked below). */
static void mget_init(void) {
  memset(mget_value, 'v', sizeof mget_value);
  for (int k = 0; k < MGET_KEYS; k++) {
    mget_key_lens[k] = (size_t)snprintf(mget_keys[k], sizeof mget_keys[k],
                                        "bench:mget:%03d", k);
    mget_key_ptrs[k] = mget_keys[k];
  }
  char* list = server_list(nports);
  mcr_ring_t* ring;
  if (mcr_ring_build(&ring, MCR_DIST_KETAMA_LIBMEMCACHED, list, NULL, 0))
    bench_die("mcr_ring_build");
  memcached_st* m = lm_new(nports);
  for (int j = 0; j < nports; j++) {
    mget_req[j] = malloc(MGET_KEYS * 34 + 8);
    mget_req_len[j] = (size_t)sprintf(mget_req[j], "get");
  }
  for (int k = 0; k < MGET_KEYS; k++) {
    size_t j = mcr_ring_locate(ring, mget_keys[k], mget_key_lens[k]);
    if (j != memcached_generate_hash(m, mget_keys[k], mget_key_lens[k]))
      bench_die("mcring and libmemcached place %s differently", mget_keys[k]);
    mget_req_len[j] +=
        (size_t)sprintf(mget_req[j] + mget_req_len[j], " %s", mget_keys[k]);
  }
  for (int j = 0; j < nports; j++) {
    if (mget_req_len[j] == 3) {
      free(mget_req[j]);
      mget_req[j] = NULL;
      continue;
    }
    memcpy(mget_req[j] + mget_req_len[j], "\r\n", 2);
    mget_req_len[j] += 2;
  }
  memcached_free(m);
  mcr_ring_free(ring);
  free(list);
}

static void preload(void) {
  mcr_client_t* c = mc_new(server_list(nports)); /* leaked: one-shot */
  single_t* s[2] = {&small, &large};
  mcr_client_t* one = mc_new(server_list(1));
  for (int i = 0; i < 2; i++)
    if (mcr_client_set(one, s[i]->key, s[i]->key_len, s[i]->value,
                       s[i]->value_len, 0, 0, 0) != MCR_OK)
      bench_die("preload set: %s", mcr_client_last_error(one));
  for (int k = 0; k < MGET_KEYS; k++)
    if (mcr_client_set(c, mget_keys[k], mget_key_lens[k], mget_value,
                       sizeof mget_value, 0, 0, 0) != MCR_OK)
      bench_die("preload set: %s", mcr_client_last_error(c));
  mcr_client_free(one);
  mcr_client_free(c);
}

static void setup(impl_t impl) {
  switch (impl) {
    case IMPL_MCRING:
      mc_one = mc_new(server_list(1));
      mc_multi = mc_new(server_list(nports));
      break;
    case IMPL_LM:
      lm_one = lm_new(1);
      lm_multi = lm_new(nports);
      memcached_result_create(lm_multi, &lm_res);
      break;
    case IMPL_RAW:
      raw_fd = bench_connect(ports[0]);
      for (int j = 0; j < nports; j++)
        raw_fds[j] = bench_connect(ports[j]);
      break;
    default:
      break;
  }
}

/* ------------------------------------------------------------ the floor */

/* Parses the decimal number that ends line[0..len). */
static size_t last_number(const char* line, size_t len) {
  size_t i = len, v = 0, mul = 1;
  while (i > 0 && line[i - 1] >= '0' && line[i - 1] <= '9') {
    v += (size_t)(line[i - 1] - '0') * mul;
    mul *= 10;
    i--;
  }
  return v;
}

/* One get: send the request, recv until the reply is complete. Returns 1
 * on a hit. */
static int raw_get(const single_t* s) {
  bench_send_all(raw_fd, s->get_req, s->get_req_len);
  char* b = rbuf[0];
  size_t have = 0, need = 0;
  for (;;) {
    ssize_t r = recv(raw_fd, b + have, sizeof rbuf[0] - have, 0);
    if (r <= 0)
      bench_die("raw recv: %s", r ? strerror(errno) : "closed");
    have += (size_t)r;
    if (!need) {
      char* eol = memmem(b, have, "\r\n", 2);
      if (!eol)
        continue;
      size_t hl = (size_t)(eol - b);
      if (hl == 3 && memcmp(b, "END", 3) == 0)
        return 0;
      need = hl + 2 + last_number(b, hl) + 2 + 5;
    }
    if (have >= need)
      return 1;
  }
}

/* One set: send the request, recv "STORED\r\n". */
static int raw_set(const single_t* s) {
  bench_send_all(raw_fd, s->set_req, s->set_req_len);
  size_t have = 0;
  while (have < 2 || memcmp(rbuf[0] + have - 2, "\r\n", 2) != 0) {
    ssize_t r = recv(raw_fd, rbuf[0] + have, sizeof rbuf[0] - have, 0);
    if (r <= 0)
      bench_die("raw recv: %s", r ? strerror(errno) : "closed");
    have += (size_t)r;
  }
  return have == 8 && memcmp(rbuf[0], "STORED", 6) == 0;
}

/* Consumes the complete units of one node's reply buffer. Returns 1 when
 * END was seen. */
static int raw_mget_parse(const char* b, size_t have, size_t* off, int* hits) {
  for (;;) {
    const char* eol = memmem(b + *off, have - *off, "\r\n", 2);
    if (!eol)
      return 0;
    size_t hl = (size_t)(eol - (b + *off));
    if (hl == 3 && memcmp(b + *off, "END", 3) == 0)
      return 1;
    size_t total = hl + 2 + last_number(b + *off, hl) + 2;
    if (have - *off < total)
      return 0;
    *off += total;
    (*hits)++;
  }
}

/* The multi-get floor: every node's line is sent first, then replies are
 * read with poll as they arrive. Returns the number of hits. */
static int raw_mget(void) {
  struct pollfd pfd[NODES];
  int idx[NODES], np = 0, hits = 0;
  size_t have[NODES] = {0}, off[NODES] = {0};
  for (int j = 0; j < nports; j++) {
    if (!mget_req[j])
      continue;
    bench_send_all(raw_fds[j], mget_req[j], mget_req_len[j]);
    pfd[np] = (struct pollfd){.fd = raw_fds[j], .events = POLLIN};
    idx[np++] = j;
  }
  while (np > 0) {
    if (poll(pfd, (nfds_t)np, 5000) <= 0)
      bench_die("raw mget: poll timed out");
    for (int i = 0; i < np; i++) {
      if (!pfd[i].revents)
        continue;
      int j = idx[i];
      ssize_t r = recv(pfd[i].fd, rbuf[j] + have[j], sizeof rbuf[j] - have[j],
                       MSG_DONTWAIT);
      if (r <= 0)
        bench_die("raw mget recv: %s", r ? strerror(errno) : "closed");
      have[j] += (size_t)r;
      if (raw_mget_parse(rbuf[j], have[j], &off[j], &hits)) {
        pfd[i] = pfd[np - 1];
        idx[i] = idx[np - 1];
        np--;
        i--;
      }
    }
  }
  return hits;
}

/* ------------------------------------------------------------ one op */

static int lm_mget(void) {
  memcached_return_t rc =
      memcached_mget(lm_multi, mget_key_ptrs, mget_key_lens, MGET_KEYS);
  if (rc != MEMCACHED_SUCCESS)
    bench_die("memcached_mget: %s", memcached_strerror(lm_multi, rc));
  int hits = 0;
  while (memcached_fetch_result(lm_multi, &lm_res, &rc))
    hits++;
  return hits;
}

static int lm_get(const single_t* s) {
  size_t len;
  uint32_t flags;
  memcached_return_t rc;
  char* v = memcached_get(lm_one, s->key, s->key_len, &len, &flags, &rc);
  free(v);
  return v != NULL;
}

static int run_op(impl_t impl, op_t op) {
  const single_t* s = (op == OP_GET4K || op == OP_SET4K) ? &large : &small;
  mcr_item_t it;
  switch (impl * NOPS + op) {
    case IMPL_RAW* NOPS + OP_GET10:
    case IMPL_RAW* NOPS + OP_GET4K:
      return raw_get(s);
    case IMPL_RAW* NOPS + OP_SET10:
    case IMPL_RAW* NOPS + OP_SET4K:
      return raw_set(s);
    case IMPL_RAW* NOPS + OP_MGET:
      return raw_mget();
    case IMPL_MCRING* NOPS + OP_GET10:
    case IMPL_MCRING* NOPS + OP_GET4K:
      return mcr_client_get(mc_one, s->key, s->key_len, &it) == MCR_OK;
    case IMPL_MCRING* NOPS + OP_SET10:
    case IMPL_MCRING* NOPS + OP_SET4K:
      return mcr_client_set(mc_one, s->key, s->key_len, s->value, s->value_len,
                            0, 0, 0) == MCR_OK;
    case IMPL_MCRING* NOPS + OP_MGET: {
      size_t hits = 0;
      int rc = mcr_client_get_multi(mc_multi, MGET_KEYS, mget_key_ptrs,
                                    mget_key_lens, mget_items, &hits);
      return rc < 0 ? rc : (int)hits;
    }
    case IMPL_LM* NOPS + OP_GET10:
    case IMPL_LM* NOPS + OP_GET4K:
      return lm_get(s);
    case IMPL_LM* NOPS + OP_SET10:
    case IMPL_LM* NOPS + OP_SET4K:
      return memcached_set(lm_one, s->key, s->key_len, s->value, s->value_len,
                           0, 0) == MEMCACHED_SUCCESS;
    case IMPL_LM* NOPS + OP_MGET:
      return lm_mget();
  }
  return -1;
}

/* The expected result of one op: 1 (hit / stored) or 100 (mget hits). */
static int expected(op_t op) {
  return op == OP_MGET ? MGET_KEYS : 1;
}

static void check_op(impl_t impl, op_t op) {
  int got = run_op(impl, op);
  if (got != expected(op))
    bench_die("%s %s returned %d, expected %d", impl_names[impl], op_names[op],
              got, expected(op));
}

/* Ops per second of impl on op over about `seconds`. */
static double time_op(impl_t impl, op_t op, double seconds) {
  size_t n = 0;
  int acc = 0;
  double t0 = bench_now(), t;
  do {
    for (int i = 0; i < 64; i++)
      acc += run_op(impl, op);
    n += 64;
    t = bench_now();
  } while (t - t0 < seconds);
  if (acc != (int)n * expected(op))
    bench_die("%s %s: %d of %zu ops failed", impl_names[impl], op_names[op],
              (int)n * expected(op) - acc, n);
  sink = (size_t)acc;
  return (double)n / (t - t0);
}

/* ------------------------------------------------------------ modes */

static int mode_ports(int n) {
  int fds[16];
  if (n < 1 || n > 16)
    bench_die("ports: 1..16");
  for (int i = 0; i < n; i++) {
    fds[i] = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    if (bind(fds[i], (struct sockaddr*)&sa, sizeof sa) != 0 ||
        getsockname(fds[i], (struct sockaddr*)&sa, &sl) != 0)
      bench_die("bind: %s", strerror(errno));
    printf("%s%d", i ? "," : "", ntohs(sa.sin_port));
  }
  printf("\n");
  for (int i = 0; i < n; i++)
    close(fds[i]);
  return 0;
}

static int mode_wait(void) {
  for (int i = 0; i < nports; i++)
    if (bench_wait_port(ports[i], 5000) != 0)
      bench_die("memcached on port %d did not come up", ports[i]);
  return 0;
}

/* Each of the ROUNDS rounds is SLICES short slices per client, the clients
 * taking turns slice by slice, so a burst of load from elsewhere on the
 * machine hits all three alike. A round's figure for a client is its ops
 * over its slices; the ratios are per round; the medians are reported. */
static int mode_time(void) {
  for (int impl = 0; impl < NIMPL; impl++)
    setup((impl_t)impl);
  for (int op = 0; op < NOPS; op++)
    for (int impl = 0; impl < NIMPL; impl++)
      check_op((impl_t)impl, (op_t)op);
  for (int op = 0; op < NOPS; op++) {
    double ops[NIMPL][ROUNDS], r_raw[ROUNDS], r_lm[ROUNDS];
    for (int round = 0; round < ROUNDS; round++) {
      double sum[NIMPL] = {0};
      for (int slice = 0; slice < SLICES; slice++)
        for (int k = 0; k < NIMPL; k++) {
          /* Rotate the order so no client always runs first. */
          int impl = (k + slice) % NIMPL;
          sum[impl] += time_op((impl_t)impl, (op_t)op, SLICE_SECONDS);
        }
      for (int impl = 0; impl < NIMPL; impl++)
        ops[impl][round] = sum[impl] / SLICES;
      r_raw[round] = ops[IMPL_MCRING][round] / ops[IMPL_RAW][round];
      r_lm[round] = ops[IMPL_MCRING][round] / ops[IMPL_LM][round];
    }
    char name[64];
    for (int impl = 0; impl < NIMPL; impl++) {
      snprintf(name, sizeof name, "%s_ops_%s", op_names[op], impl_names[impl]);
      bench_result(name, bench_median(ops[impl], ROUNDS));
    }
    snprintf(name, sizeof name, "%s_ratio_floor", op_names[op]);
    bench_result(name, bench_median(r_raw, ROUNDS));
    snprintf(name, sizeof name, "%s_ratio_libmemcached", op_names[op]);
    bench_result(name, bench_median(r_lm, ROUNDS));
  }
  return 0;
}

static int mode_loop(const char* impl_s, const char* op_s, long n) {
  int impl = -1, op = -1;
  for (int i = 0; i < NIMPL; i++)
    if (strcmp(impl_s, impl_names[i]) == 0)
      impl = i;
  for (int i = 0; i < NOPS; i++)
    if (strcmp(op_s, op_names[i]) == 0)
      op = i;
  if (impl < 0 || op < 0 || n < 1)
    bench_die("loop: bad client, op or count");
  setup((impl_t)impl);
  for (int i = 0; i < 10; i++) /* connect and warm the buffers */
    check_op((impl_t)impl, (op_t)op);
  int acc = 0;
  for (long i = 0; i < n; i++)
    acc += run_op((impl_t)impl, (op_t)op);
  if (acc != n * expected((op_t)op))
    bench_die("loop: %ld ops failed", n * expected((op_t)op) - acc);
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 3 && strcmp(argv[1], "ports") == 0)
    return mode_ports(atoi(argv[2]));
  const char* list = argc > 1 ? argv[argc - 1] : "";
  if (argc < 3)
    goto usage;
  nports = bench_parse_ports(list, ports, NODES);
  if (strcmp(argv[1], "wait") == 0)
    return mode_wait();
  if (nports != NODES)
    bench_die("need %d ports", NODES);
  single_init(&small);
  single_init(&large);
  mget_init();
  preload();
  if (argc == 3 && strcmp(argv[1], "time") == 0)
    return mode_time();
  if (argc == 6 && strcmp(argv[1], "loop") == 0)
    return mode_loop(argv[2], argv[3], atol(argv[4]));
usage:
  fprintf(stderr,
          "usage: bench_kv ports N | wait PORTS | time PORTS |\n"
          "       bench_kv loop mcring|libmemcached|raw "
          "get10|get4k|set10|set4k|mget N PORTS\n");
  return 2;
}
