/* bench_host.c — the host-level section of `make bench`: what a host of
 * many worker processes gets from mcring, next to what it would deploy
 * instead.
 *
 *   bench_host MEMCACHED NUTCRACKER PORTS [SECONDS]
 *
 * Starts three memcached on the first three of PORTS (four free loopback
 * ports, from `bench_kv ports 4`), a nutcracker on the fourth (twemproxy)
 * in front of them (ketama, md5, the same three nodes), and the agent's
 * two halves in this process: the snapshot writer that publishes the ring
 * of the three nodes into a private ring directory, and the host-stats
 * server that hands workers the host's health table (what mcring-agent
 * runs; docs/agent.md). Five clients, each in WORKERS forked processes
 * with a client handle of their own, do one-key gets (10-byte values,
 * 1,000 keys, no pause) over the three nodes:
 *
 *   ring       mcring following the agent's ring (ring_dir)
 *   embedded   mcring with the three servers (its own ring)
 *   libmc      libmemcached per worker (ketama weighted, its own failure
 *              tracking)
 *   mcr-nut    mcring through the local nutcracker
 *   lm-nut     libmemcached through the local nutcracker
 *
 * Steady state, for 8 and 64 workers, the clients interleaved (each N:
 * every client once, then the next N), SECONDS each (default 3): ops/s,
 * latency p50 / p99 / p99.9, CPU per op of the whole host (all of
 * /proc/stat's busy time: clients, proxy, servers, this process) and the
 * connections the memcached processes hold (curr_connections, ours
 * subtracted).
 *
 * The incident: 64 workers, node 2 of 3 SIGSTOPped for 5 s after 1 s of
 * load, then resumed, 3 s more. Per client: calls that failed, the total
 * time calls that failed spent waiting (summed over all workers), the time
 * from the resume to the last failure, and the p99 of calls made while the
 * node was stopped. Every client runs with a 500 ms I/O and connect
 * timeout, 2 failures to mark a node down and a 1 s retry; nutcracker with
 * timeout 500, server_failure_limit 2, server_retry_timeout 1000 and
 * auto_eject_hosts (its usual production setting: without it every
 * request for the stopped node waits its timeout).
 *
 * Output: "result NAME VALUE" lines (bench/run.sh collects them) and a
 * table for people on stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libmemcached/memcached.h>

#include "common.h"
#include "mcring.h"
#include "ring.h"

#define NMCD 3
#define MAXW 64
#define NKEYS 1000
#define NB 320 /* latency buckets: 16 per octave from 1 us */
#define IO_MS 500
#define RETRY_MS 1000
#define LIMIT 2
#define PAUSE_S 5

enum { RING, EMBED, LIBMC, MC_NUT, LM_NUT, NIMPL };
static const char* const impl_name[NIMPL] = {"ring", "embedded", "libmc",
                                             "mcr-nut", "lm-nut"};

typedef struct {
  uint64_t ops, fails;
  uint64_t wait_ns;      /* summed duration of the calls that failed */
  uint64_t last_fail_ns; /* end of the last failed call */
  uint64_t hist[NB];     /* every call */
  uint64_t hist_inc[NB]; /* calls that began while the node was stopped */
} wstat_t;

typedef struct {
  volatile int ready[MAXW];
  volatile uint64_t go, stop;            /* bench_now_ns(), 0 until set */
  volatile uint64_t pause_ns, resume_ns; /* the incident's window */
  wstat_t w[MAXW];
} board_t;

static int mcd_port[NMCD], nut_port;
static pid_t mcd_pid[NMCD], nut_pid;
static char ring_dir[128], tmp_dir[64];
static char servers[128];

/* ------------------------------------------------------------ processes */

static pid_t spawn(char* const argv[]) {
  pid_t p = fork();
  if (p < 0)
    bench_die("bench_host: fork: %s", strerror(errno));
  if (p == 0) {
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0) {
      dup2(null, 1);
      dup2(null, 2);
    }
    execv(argv[0], argv);
    _exit(127);
  }
  return p;
}

static void start_servers(const char* memcached, const char* nutcracker) {
  for (int i = 0; i < NMCD; i++) {
    char port[16];
    snprintf(port, sizeof port, "%d", mcd_port[i]);
    char* argv[] = {(char*)memcached,
                    "-l",
                    "127.0.0.1",
                    "-p",
                    port,
                    "-U",
                    "0",
                    "-t",
                    "1",
                    "-m",
                    "64",
                    "-c",
                    "4096",
                    geteuid() == 0 ? "-u" : NULL,
                    "nobody",
                    NULL};
    mcd_pid[i] = spawn(argv);
  }
  for (int i = 0; i < NMCD; i++)
    if (bench_wait_port(mcd_port[i], 5000) != 0)
      bench_die("bench_host: memcached on %d did not start", mcd_port[i]);
  snprintf(servers, sizeof servers, "127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d",
           mcd_port[0], mcd_port[1], mcd_port[2]);

  char conf[128];
  snprintf(conf, sizeof conf, "%s/nutcracker.yml", tmp_dir);
  FILE* c = fopen(conf, "w");
  if (!c)
    bench_die("bench_host: %s: %s", conf, strerror(errno));
  fprintf(c,
          "pool:\n"
          "  listen: 127.0.0.1:%d\n"
          "  hash: md5\n"
          "  distribution: ketama\n"
          "  timeout: %d\n"
          "  server_failure_limit: %d\n"
          "  server_retry_timeout: %d\n"
          "  auto_eject_hosts: true\n"
          "  preconnect: true\n"
          "  servers:\n",
          nut_port, IO_MS, LIMIT, RETRY_MS);
  for (int i = 0; i < NMCD; i++)
    fprintf(c, "   - 127.0.0.1:%d:1\n", mcd_port[i]);
  fclose(c);
  char* nargv[] = {(char*)nutcracker, "-c", conf, NULL};
  nut_pid = spawn(nargv);
  if (bench_wait_port(nut_port, 5000) != 0)
    bench_die("bench_host: nutcracker on %d did not start (is %s there?)",
              nut_port, nutcracker);
}

static void stop_servers(void) {
  for (int i = 0; i < NMCD; i++)
    if (mcd_pid[i] > 0) {
      kill(mcd_pid[i], SIGCONT);
      kill(mcd_pid[i], SIGTERM);
      waitpid(mcd_pid[i], NULL, 0);
    }
  if (nut_pid > 0) {
    kill(nut_pid, SIGTERM);
    waitpid(nut_pid, NULL, 0);
  }
}

/* The agent's halves: the ring of the three nodes published into
 * ring_dir, and the host-stats server (with the health table). */
static mcr_hoststats_server_t* start_agent(void) {
  snprintf(ring_dir, sizeof ring_dir, "%s/ring", tmp_dir);
  char err[256];
  mcr__snapshot_writer_t* w;
  if (mcr__snapshot_writer_open(&w, ring_dir, err, sizeof err) != 0)
    bench_die("bench_host: %s", err);
  mcr__ring_node_in_t in[NMCD];
  for (int i = 0; i < NMCD; i++)
    in[i] = (mcr__ring_node_in_t){
        .host = "127.0.0.1", .port = (uint16_t)mcd_port[i], .weight = 1};
  if (mcr__snapshot_writer_publish_nodes(w, MCR_DIST_KETAMA, in, NMCD, NULL))
    bench_die("bench_host: cannot publish the ring");
  mcr__snapshot_writer_close(w);
  mcr_hoststats_server_t* s;
  if (mcr_hoststats_serve(&s, ring_dir, 1024, err, sizeof err) != 0)
    bench_die("bench_host: %s", err);
  return s;
}

/* Sum of curr_connections over the nodes, the asking connections left
 * out. */
static long node_connections(void) {
  long total = 0;
  for (int i = 0; i < NMCD; i++) {
    int fd = bench_connect(mcd_port[i]);
    bench_send_all(fd, "stats\r\n", 7);
    char buf[8192];
    size_t got = 0;
    while (got < sizeof buf - 1) {
      ssize_t r = read(fd, buf + got, sizeof buf - 1 - got);
      if (r <= 0)
        break;
      got += (size_t)r;
      buf[got] = '\0';
      if (strstr(buf, "END\r\n"))
        break;
    }
    buf[got] = '\0';
    close(fd);
    const char* p = strstr(buf, "STAT curr_connections ");
    if (p)
      total += atol(p + 22) - 1;
  }
  return total;
}

/* ------------------------------------------------------------ workers */

typedef struct {
  int impl;
  mcr_client_t* c;
  memcached_st* lm;
} client_t;

static void client_open(client_t* k, int impl) {
  k->impl = impl;
  k->c = NULL;
  k->lm = NULL;
  char nut[64];
  snprintf(nut, sizeof nut, "127.0.0.1:%d", nut_port);
  if (impl == LIBMC || impl == LM_NUT) {
    k->lm = memcached_create(NULL);
    memcached_behavior_set(k->lm, MEMCACHED_BEHAVIOR_TCP_NODELAY, 1);
    memcached_behavior_set(k->lm, MEMCACHED_BEHAVIOR_CONNECT_TIMEOUT, IO_MS);
    memcached_behavior_set(k->lm, MEMCACHED_BEHAVIOR_POLL_TIMEOUT, IO_MS);
    memcached_behavior_set(k->lm, MEMCACHED_BEHAVIOR_SERVER_FAILURE_LIMIT,
                           LIMIT);
    memcached_behavior_set(k->lm, MEMCACHED_BEHAVIOR_RETRY_TIMEOUT,
                           RETRY_MS / 1000);
    if (impl == LIBMC) {
      memcached_behavior_set(k->lm, MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, 1);
      for (int i = 0; i < NMCD; i++)
        memcached_server_add(k->lm, "127.0.0.1", (in_port_t)mcd_port[i]);
    } else {
      memcached_server_add(k->lm, "127.0.0.1", (in_port_t)nut_port);
    }
    return;
  }
  mcr_client_opts_t o;
  mcr_client_opts_init(&o);
  o.io_timeout_ms = IO_MS;
  o.connect_timeout_ms = IO_MS;
  o.failure_limit = LIMIT;
  o.retry_timeout_ms = RETRY_MS;
  if (impl == RING)
    o.ring_dir = ring_dir;
  else if (impl == EMBED)
    o.servers = servers;
  else
    o.servers = nut;
  char err[256];
  if (mcr_client_new(&k->c, &o, err, sizeof err) < 0)
    bench_die("bench_host: %s: %s", impl_name[impl], err);
}

static void client_close(client_t* k) {
  if (k->c)
    mcr_client_free(k->c);
  if (k->lm)
    memcached_free(k->lm);
}

/* One get: true when it was answered (a hit, or a miss). */
static int client_get(client_t* k, const char* key, size_t len) {
  if (k->c) {
    mcr_item_t it;
    int rc = mcr_client_get(k->c, key, len, &it);
    return rc == MCR_OK || rc == MCR_MISS;
  }
  size_t vlen;
  uint32_t flags;
  memcached_return_t rc;
  char* v = memcached_get(k->lm, key, len, &vlen, &flags, &rc);
  free(v);
  return rc == MEMCACHED_SUCCESS || rc == MEMCACHED_NOTFOUND;
}

static int bucket(uint64_t ns) {
  double us = (double)ns / 1000.0;
  if (us <= 1)
    return 0;
  int b = (int)(16.0 * log2(us));
  return b < NB ? b : NB - 1;
}

static double bucket_us(int b) {
  return pow(2.0, (b + 1) / 16.0); /* the bucket's upper bound */
}

static void worker(board_t* bd, int id, int impl) {
  client_t k;
  client_open(&k, impl);
  wstat_t* w = &bd->w[id];
  unsigned seed = (unsigned)id * 7919u + 17u;
  bd->ready[id] = 1;
  while (!bd->go)
    usleep(200);
  while (!bd->stop) {
    char key[16];
    int kl = snprintf(key, sizeof key, "hk%d", (int)(rand_r(&seed) % NKEYS));
    uint64_t t0 = bench_now_ns();
    int ok = client_get(&k, key, (size_t)kl);
    uint64_t t1 = bench_now_ns();
    w->ops++;
    w->hist[bucket(t1 - t0)]++;
    uint64_t p = bd->pause_ns, r = bd->resume_ns;
    if (p && t0 >= p && (!r || t0 < r))
      w->hist_inc[bucket(t1 - t0)]++;
    if (!ok) {
      w->fails++;
      w->wait_ns += t1 - t0;
      w->last_fail_ns = t1;
    }
  }
  client_close(&k);
}

/* ------------------------------------------------------------ runs */

static uint64_t host_busy_ticks(void) {
  FILE* f = fopen("/proc/stat", "r");
  if (!f)
    return 0;
  unsigned long long u, n, s, idle, io, irq, sirq, steal;
  int got = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &u, &n, &s,
                   &idle, &io, &irq, &sirq, &steal);
  fclose(f);
  return got == 8 ? u + n + s + irq + sirq + steal : 0;
}

static double quantile(const uint64_t* h, double q) {
  uint64_t total = 0;
  for (int b = 0; b < NB; b++)
    total += h[b];
  if (!total)
    return 0;
  uint64_t want = (uint64_t)ceil(q * (double)total), seen = 0;
  for (int b = 0; b < NB; b++)
    if ((seen += h[b]) >= want)
      return bucket_us(b);
  return bucket_us(NB - 1);
}

typedef struct {
  double ops_s, p50, p99, p999, cpu_us_op;
  long conns;
  uint64_t fails;
  double wait_s, recover_ms, inc_p99_ms;
} outcome_t;

/* Runs `n` workers of `impl` for `seconds`; with `incident`, node 2 is
 * stopped after 1 s for PAUSE_S seconds. */
static outcome_t run(int impl, int n, double seconds, int incident) {
  board_t* bd = mmap(NULL, sizeof *bd, PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (bd == MAP_FAILED)
    bench_die("bench_host: mmap: %s", strerror(errno));
  pid_t pids[MAXW];
  for (int i = 0; i < n; i++) {
    pids[i] = fork();
    if (pids[i] < 0)
      bench_die("bench_host: fork: %s", strerror(errno));
    if (pids[i] == 0) {
      worker(bd, i, impl);
      _exit(0);
    }
  }
  for (int i = 0; i < n; i++)
    while (!bd->ready[i])
      usleep(1000);
  usleep(100 * 1000);
  outcome_t o = {0};
  uint64_t busy0 = host_busy_ticks();
  uint64_t t0 = bench_now_ns();
  bd->go = t0;
  if (incident) {
    usleep(1000 * 1000);
    bd->pause_ns = bench_now_ns();
    kill(mcd_pid[1], SIGSTOP);
    usleep(PAUSE_S * 1000 * 1000);
    kill(mcd_pid[1], SIGCONT);
    bd->resume_ns = bench_now_ns();
    usleep((useconds_t)(seconds * 1e6));
  } else {
    usleep((useconds_t)(seconds * 1e6 / 2));
    o.conns = node_connections();
    usleep((useconds_t)(seconds * 1e6 / 2));
  }
  bd->stop = bench_now_ns();
  uint64_t busy1 = host_busy_ticks();
  for (int i = 0; i < n; i++)
    waitpid(pids[i], NULL, 0);
  uint64_t ops = 0, hist[NB] = {0}, hinc[NB] = {0}, wait = 0, last = 0;
  for (int i = 0; i < n; i++) {
    wstat_t* w = &bd->w[i];
    ops += w->ops;
    o.fails += w->fails;
    wait += w->wait_ns;
    if (w->last_fail_ns > last)
      last = w->last_fail_ns;
    for (int b = 0; b < NB; b++) {
      hist[b] += w->hist[b];
      hinc[b] += w->hist_inc[b];
    }
  }
  double secs = (double)(bd->stop - t0) / 1e9;
  o.ops_s = (double)ops / secs;
  o.p50 = quantile(hist, 0.5);
  o.p99 = quantile(hist, 0.99);
  o.p999 = quantile(hist, 0.999);
  o.cpu_us_op = ops ? (double)(busy1 - busy0) * 1e6 /
                          (double)sysconf(_SC_CLK_TCK) / (double)ops
                    : 0;
  o.wait_s = (double)wait / 1e9;
  o.recover_ms = incident && last > bd->resume_ns
                     ? (double)(last - bd->resume_ns) / 1e6
                     : 0;
  o.inc_p99_ms = quantile(hinc, 0.99) / 1000.0;
  munmap(bd, sizeof *bd);
  return o;
}

static void preload(void) {
  mcr_client_opts_t o;
  mcr_client_opts_init(&o);
  o.ring_dir = ring_dir;
  mcr_client_t* c;
  char err[256];
  if (mcr_client_new(&c, &o, err, sizeof err) < 0)
    bench_die("bench_host: %s", err);
  /* Through every placement the clients use: the ring's, libmemcached's
   * and nutcracker's may differ, so each stores the keys its own way. */
  client_t ks[3];
  client_open(&ks[0], LIBMC);
  client_open(&ks[1], MC_NUT);
  client_open(&ks[2], EMBED);
  for (int i = 0; i < NKEYS; i++) {
    char key[16];
    int kl = snprintf(key, sizeof key, "hk%d", i);
    mcr_client_set(c, key, (size_t)kl, "0123456789", 10, 0, 0, 0);
    memcached_set(ks[0].lm, key, (size_t)kl, "0123456789", 10, 0, 0);
    mcr_client_set(ks[1].c, key, (size_t)kl, "0123456789", 10, 0, 0, 0);
    mcr_client_set(ks[2].c, key, (size_t)kl, "0123456789", 10, 0, 0, 0);
  }
  for (int i = 0; i < 3; i++)
    client_close(&ks[i]);
  mcr_client_free(c);
}

int main(int argc, char** argv) {
  if (argc < 4)
    bench_die("usage: bench_host MEMCACHED NUTCRACKER PORTS [SECONDS]");
  int ports[NMCD + 1];
  if (bench_parse_ports(argv[3], ports, NMCD + 1) != NMCD + 1)
    bench_die("bench_host: PORTS must be four ports");
  for (int i = 0; i < NMCD; i++)
    mcd_port[i] = ports[i];
  nut_port = ports[NMCD];
  double seconds = argc > 4 ? atof(argv[4]) : 3.0;
  snprintf(tmp_dir, sizeof tmp_dir, "/tmp/mcr-bench-host-XXXXXX");
  if (!mkdtemp(tmp_dir))
    bench_die("bench_host: mkdtemp: %s", strerror(errno));
  start_servers(argv[1], argv[2]);
  mcr_hoststats_server_t* agent = start_agent();
  preload();

  static const int ns[2] = {8, 64};
  outcome_t st[2][NIMPL], inc[NIMPL];
  for (int a = 0; a < 2; a++)
    for (int i = 0; i < NIMPL; i++)
      st[a][i] = run(i, ns[a], seconds, 0);
  for (int i = 0; i < NIMPL; i++)
    inc[i] = run(i, MAXW, 3.0, 1);

  fprintf(stderr,
          "\nHost: N workers doing one-key gets over 3 memcached (steady)\n"
          "%-9s %4s %10s %8s %8s %9s %10s %6s\n",
          "client", "N", "ops/s", "p50 us", "p99 us", "p99.9 us", "CPU us/op",
          "conns");
  for (int a = 0; a < 2; a++)
    for (int i = 0; i < NIMPL; i++) {
      outcome_t* o = &st[a][i];
      fprintf(stderr, "%-9s %4d %10.0f %8.0f %8.0f %9.0f %10.1f %6ld\n",
              impl_name[i], ns[a], o->ops_s, o->p50, o->p99, o->p999,
              o->cpu_us_op, o->conns);
      char name[96];
#define R(field, val)                                                       \
  snprintf(name, sizeof name, "host_%s_%d_%s", impl_name[i], ns[a], field); \
  bench_result(name, val)
      R("ops", o->ops_s);
      R("p50_us", o->p50);
      R("p99_us", o->p99);
      R("p999_us", o->p999);
      R("cpu_us_per_op", o->cpu_us_op);
      R("conns", (double)o->conns);
#undef R
    }
  fprintf(stderr,
          "\nIncident: 64 workers, node 2 of 3 SIGSTOPped for %d s, then "
          "resumed\n%-9s %8s %12s %14s %12s\n",
          PAUSE_S, "client", "failed", "waited s", "last fail ms",
          "p99 ms (in)");
  for (int i = 0; i < NIMPL; i++) {
    outcome_t* o = &inc[i];
    fprintf(stderr, "%-9s %8llu %12.2f %14.0f %12.1f\n", impl_name[i],
            (unsigned long long)o->fails, o->wait_s, o->recover_ms,
            o->inc_p99_ms);
    char name[96];
    snprintf(name, sizeof name, "incident_%s_failed", impl_name[i]);
    bench_result(name, (double)o->fails);
    snprintf(name, sizeof name, "incident_%s_wait_s", impl_name[i]);
    bench_result(name, o->wait_s);
    snprintf(name, sizeof name, "incident_%s_last_fail_ms", impl_name[i]);
    bench_result(name, o->recover_ms);
    snprintf(name, sizeof name, "incident_%s_p99_ms", impl_name[i]);
    bench_result(name, o->inc_p99_ms);
  }
  for (int a = 0; a < 2; a++) {
    char name[64];
    snprintf(name, sizeof name, "host_ratio_ring_nutcracker_%d", ns[a]);
    bench_result(name, st[a][MC_NUT].ops_s > 0
                           ? st[a][RING].ops_s / st[a][MC_NUT].ops_s
                           : 0);
  }
  bench_result(
      "incident_wait_ratio_ring_libmc",
      inc[LIBMC].wait_s > 0 ? inc[RING].wait_s / inc[LIBMC].wait_s : 0);
  mcr_hoststats_server_free(agent);
  stop_servers();
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmp_dir);
  if (system(cmd) != 0) {
  }
  return 0;
}
