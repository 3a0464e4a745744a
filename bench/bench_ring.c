/* bench_ring.c — what sharing the ring buys a host with many workers.
 *
 * Three measurements need forked worker processes that each open the ring
 * the way a pre-forked PHP-FPM or Apache worker would (mcr_client_new with
 * opts.ring_dir) and then route keys:
 *
 *  - Ring memory. The library's own snapshot writer publishes a 500-node
 *    ring into a tmpfs directory; 64, then 256 workers attach and route a
 *    few keys. The PSS of the ring.N mapping summed over all workers
 *    (/proc/PID/smaps) divided by the ring file's size is what the host
 *    pays in units of one ring; a client that builds its ring in process
 *    pays N times its heap ring (measured here too).
 *  - Propagation. With 256 workers each routing one key per millisecond,
 *    the writer publishes a changed ring; each worker records when its
 *    first call routed by the new generation. Latency is measured from the
 *    generation store (the writer reads the clock just before it), so a
 *    publisher preempted after the store cannot hide the workers' delay;
 *    5 publishes, each reporting min / median / max over
 *    the workers. The swap cost per worker (first call after a publish
 *    minus a normal call) is measured alone, before any worker exists, and
 *    split into the snapshot reader's part (mcr_snapshot_refresh on its own
 *    handle) and the rest (the client's node reconcile).
 *  - Discovery load. The tests' fake ElastiCache endpoint (fakecfg.c, run
 *    in a thread here) serves 500 nodes; the built mcring-agent polls it
 *    every 0.2 s and publishes; 256 workers attach and keep routing. The
 *    endpoint's own request counters, sampled every 2 ms, give the polls
 *    per interval. Then the node list changes and the time from the
 *    agent's publish stamp (taken before it writes the ring file) to each
 *    worker's switch is reported as the end-to-end figure.
 *
 * Workers route with mcr__call_start + mcr__route, the first two steps of
 * every keyed mcr_client_* call (the generation check happens in the
 * first), and do no network I/O: the ring's nodes need not exist.
 *
 *   bench_ring AGENT_BINARY
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "deploy.h"
#include "fakecfg.h"
#include "internal.h"
#include "ring.h"

#define NODES 500
#define MAX_NODES 65535 /* --swap-profile's NODES, worker_memory's rings */
#define MAX_WORKERS 1024
#define REPS 5
#define BASE_PORT 20000
#define AGENT_INTERVAL 0.2

enum { CMD_WAIT = 0, CMD_RUN, CMD_EXIT };

typedef struct {
  pid_t pid;
  int failed;
  double heap_bytes;       /* heap growth from mcr_client_new */
  double rss_kb;           /* RSS growth (worker_memory) */
  uint64_t gen_seen[REPS]; /* generation a switch was seen for */
  uint64_t t_switch[REPS]; /* CLOCK_MONOTONIC ns after that first call */
  uint64_t rt_switch;      /* CLOCK_REALTIME ns (agent run) */
  uint64_t rt_publish;     /* the ring's publish stamp (agent run) */
  uint64_t call_ns[REPS];  /* duration of that first call */
} slot_t;

typedef struct {
  _Atomic int cmd;
  _Atomic int ready;
  _Atomic uint64_t target_gen; /* generation workers report switches to */
  _Atomic int rep;
  long pace_us;
  slot_t slot[MAX_WORKERS];
} shared_t;

static shared_t* sh;
static char top[256];
/* --swap-profile-all: every node moves at each publication (the worst
 * case of a switch: no identity kept). */
static bool move_all;
/* --swap-profile-idle: the worker has routed one key, not used every node. */
static bool idle_worker;

/* ------------------------------------------------------------ helpers */

static void nodes_make(mcr__ring_node_in_t* in, char (*hosts)[32],
                       char (*addrs)[32], size_t n, unsigned variant) {
  for (size_t i = 0; i < n; i++) {
    /* Each variant moves one node to another port: a real change. */
    bool moved = move_all ? (variant & 1) : i == variant % n;
    /* Addresses are distinct, so ports may repeat (65,535 nodes). */
    unsigned port = BASE_PORT + (unsigned)(i % 40000) + (moved ? 1 : 0);
    snprintf(hosts[i], 32, "node%zu.test", i);
    snprintf(addrs[i], 32, "127.%zu.%zu.%zu", i / 62500, i / 250 % 250,
             i % 250 + 1);
    in[i] = (mcr__ring_node_in_t){.host = hosts[i],
                                  .address = addrs[i],
                                  .port = (uint16_t)port,
                                  .weight = 1,
                                  .state = MCR__NODE_UP};
  }
}

/* Nodes of the published rings: NODES, or --swap-profile's choice. */
static size_t nnodes = NODES;

static uint64_t publish(mcr__snapshot_writer_t* w, unsigned variant) {
  static mcr__ring_node_in_t in[MAX_NODES];
  static char hosts[MAX_NODES][32], addrs[MAX_NODES][32];
  nodes_make(in, hosts, addrs, nnodes, variant);
  uint64_t gen;
  if (mcr__snapshot_writer_publish_nodes(w, MCR_DIST_KETAMA, in, nnodes, &gen))
    bench_die("publish: %s", mcr__snapshot_writer_error(w));
  return gen;
}

static size_t ring_file_size(const char* dir, uint64_t gen) {
  char p[512];
  struct stat st;
  snprintf(p, sizeof p, "%s/ring.%llu", dir, (unsigned long long)gen);
  if (stat(p, &st) != 0)
    bench_die("stat %s: %s", p, strerror(errno));
  return (size_t)st.st_size;
}

static size_t heap_used(void) {
  struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

static mcr_client_t* attach(const char* dir) {
  mcr_client_opts_t o;
  mcr_client_opts_init(&o);
  o.ring_dir = dir;
  mcr_client_t* c;
  char err[256];
  int rc = mcr_client_new(&c, &o, err, sizeof err);
  if (rc)
    bench_die("attach %s: %s", dir, err);
  return c;
}

/* One routed "operation" without I/O: what a keyed call does before it
 * sends. Returns the node index. */
static size_t route(mcr_client_t* c, const char* key, size_t len) {
  mcr__call_start(c);
  mcr__node_t* n = mcr__route(c, key, len);
  if (!n)
    bench_die("route: %s", mcr_client_last_error(c));
  return n->at;
}

static void sleep_us(long us) {
  struct timespec ts = {.tv_sec = us / 1000000,
                        .tv_nsec = (us % 1000000) * 1000};
  nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------ workers */

static void worker(int id, const char* dir) {
  slot_t* s = &sh->slot[id];
  char key[32];
  size_t klen = (size_t)snprintf(key, sizeof key, "worker:%d:session", id);
  size_t h0 = heap_used();
  mcr_client_t* c = attach(dir);
  s->heap_bytes = (double)(heap_used() - h0);
  volatile size_t acc = 0;
  for (int i = 0; i < 100; i++) /* "a few lookups" */
    acc += route(c, key, klen);
  atomic_fetch_add(&sh->ready, 1);
  while (atomic_load(&sh->cmd) == CMD_WAIT)
    sleep_us(1000);
  uint64_t last = mcr_client_generation(c);
  while (atomic_load(&sh->cmd) == CMD_RUN) {
    uint64_t t0 = bench_now_ns();
    acc += route(c, key, klen);
    uint64_t gen = mcr_client_generation(c);
    if (gen != last) {
      uint64_t t1 = bench_now_ns();
      int rep = atomic_load(&sh->rep);
      if (rep >= 0 && rep < REPS && gen == atomic_load(&sh->target_gen)) {
        s->call_ns[rep] = t1 - t0;
        s->t_switch[rep] = t1;
        s->gen_seen[rep] = gen;
      }
      struct timespec rt;
      clock_gettime(CLOCK_REALTIME, &rt);
      s->rt_switch = (uint64_t)rt.tv_sec * 1000000000u + (uint64_t)rt.tv_nsec;
      s->rt_publish = mcr_ring_publish_time_ns(mcr_client_ring(c));
      last = gen;
    }
    sleep_us(sh->pace_us);
  }
  mcr_client_free(c);
  _exit(0);
}

static int spawn(int n, const char* dir, pid_t* pids) {
  atomic_store(&sh->cmd, CMD_WAIT);
  atomic_store(&sh->ready, 0);
  atomic_store(&sh->rep, -1);
  memset(sh->slot, 0, sizeof sh->slot);
  fflush(NULL);
  for (int i = 0; i < n; i++) {
    pid_t p = fork();
    if (p < 0)
      bench_die("fork: %s", strerror(errno));
    if (p == 0)
      worker(i, dir);
    pids[i] = p;
    sh->slot[i].pid = p;
  }
  double end = bench_now() + 30;
  while (atomic_load(&sh->ready) < n) {
    if (bench_now() > end)
      bench_die("only %d of %d workers attached", atomic_load(&sh->ready), n);
    sleep_us(2000);
  }
  return 0;
}

static void reap(int n, pid_t* pids) {
  atomic_store(&sh->cmd, CMD_EXIT);
  for (int i = 0; i < n; i++) {
    int st;
    waitpid(pids[i], &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
      bench_die("worker %d failed", i);
  }
}

/* True when a /proc/PID/maps or smaps header line maps a ring.* file of
 * dir; sets the address range. */
static int ring_mapping(const char* line, const char* dir, unsigned long* a,
                        unsigned long* b) {
  char perms[8];
  if (sscanf(line, "%lx-%lx %7s", a, b, perms) != 3)
    return -1; /* not a header line */
  const char* path = strchr(line, '/');
  size_t dlen = strlen(dir);
  return path && strncmp(path, dir, dlen) == 0 &&
         strncmp(path + dlen, "/ring.", 6) == 0;
}

/* Exact PSS in bytes of the ring mappings of pid: for every resident page,
 * 4096 / (number of mappings of that page) from /proc/PID/pagemap and
 * /proc/kpagecount. smaps reports Pss in whole kB per process, which at
 * 256 sharers of a page truncates most of it away. Returns -1 when the
 * page frame numbers are not readable (no CAP_SYS_ADMIN). */
static int ring_pss_exact(pid_t pid, const char* dir, double* pss,
                          double* rss) {
  static int kpc = -2;
  if (kpc == -2)
    kpc = open("/proc/kpagecount", O_RDONLY | O_CLOEXEC);
  if (kpc < 0)
    return -1;
  char p[64], line[1024];
  snprintf(p, sizeof p, "/proc/%d/maps", (int)pid);
  FILE* f = fopen(p, "r");
  snprintf(p, sizeof p, "/proc/%d/pagemap", (int)pid);
  int pm = open(p, O_RDONLY | O_CLOEXEC);
  if (!f || pm < 0)
    bench_die("open /proc/%d: %s", (int)pid, strerror(errno));
  long page = sysconf(_SC_PAGESIZE);
  int rc = 0;
  while (rc == 0 && fgets(line, sizeof line, f)) {
    unsigned long a, b;
    if (ring_mapping(line, dir, &a, &b) != 1)
      continue;
    size_t np = (b - a) / (unsigned long)page;
    uint64_t* ent = malloc(np * 8);
    if (pread(pm, ent, np * 8, (off_t)(a / (unsigned long)page * 8)) !=
        (ssize_t)(np * 8))
      bench_die("read pagemap: %s", strerror(errno));
    for (size_t i = 0; i < np && rc == 0; i++) {
      if (!(ent[i] >> 63))
        continue; /* not resident */
      uint64_t pfn = ent[i] & ((1ull << 55) - 1), count = 0;
      if (pfn == 0 || pread(kpc, &count, 8, (off_t)(pfn * 8)) != 8 ||
          count == 0) {
        rc = -1;
        break;
      }
      *pss += (double)page / (double)count;
      *rss += (double)page;
    }
    free(ent);
  }
  fclose(f);
  close(pm);
  return rc;
}

/* Sums Pss and Rss (bytes) of the ring mappings from smaps (whole kB per
 * process: the fallback when ring_pss_exact cannot run). */
static void ring_pss_smaps(pid_t pid, const char* dir, double* pss,
                           double* rss) {
  char p[64], line[1024];
  snprintf(p, sizeof p, "/proc/%d/smaps", (int)pid);
  FILE* f = fopen(p, "r");
  if (!f)
    bench_die("open %s: %s", p, strerror(errno));
  int in_ring = 0;
  while (fgets(line, sizeof line, f)) {
    unsigned long a, b;
    int m = ring_mapping(line, dir, &a, &b);
    if (m >= 0) {
      in_ring = m;
      continue;
    }
    double kb;
    if (in_ring && sscanf(line, "Pss: %lf kB", &kb) == 1)
      *pss += kb * 1024;
    else if (in_ring && sscanf(line, "Rss: %lf kB", &kb) == 1)
      *rss += kb * 1024;
  }
  fclose(f);
}

/* ------------------------------------------------------------ phase A */

static void measure_memory(int n, const char* dir, size_t ring_size,
                           size_t private_ring, pid_t* pids) {
  spawn(n, dir, pids);
  double pss = 0, rss = 0, heap[MAX_WORKERS];
  int exact = 1;
  for (int i = 0; i < n && exact; i++)
    exact = ring_pss_exact(pids[i], dir, &pss, &rss) == 0;
  if (!exact) {
    pss = rss = 0;
    for (int i = 0; i < n; i++)
      ring_pss_smaps(pids[i], dir, &pss, &rss);
  }
  for (int i = 0; i < n; i++)
    heap[i] = sh->slot[i].heap_bytes;
  char name[64];
  snprintf(name, sizeof name, "ring_pss_ratio_%d", n);
  bench_result(name, pss / (double)ring_size);
  snprintf(name, sizeof name, "ring_pss_exact_%d", n);
  bench_result(name, exact);
  snprintf(name, sizeof name, "ring_pss_total_kb_%d", n);
  bench_result(name, pss / 1024);
  snprintf(name, sizeof name, "ring_rss_total_kb_%d", n);
  bench_result(name, rss / 1024);
  snprintf(name, sizeof name, "ring_private_ratio_%d", n);
  bench_result(name, (double)n * (double)private_ring / (double)ring_size);
  snprintf(name, sizeof name, "worker_client_heap_bytes_%d", n);
  bench_result(name, bench_median(heap, (size_t)n));
}

static void swap_cost(mcr__snapshot_writer_t* w, const char* dir,
                      unsigned* variant) {
  mcr_client_t* c = attach(dir);
  mcr_snapshot_t* s;
  char err[256];
  if (mcr_snapshot_open(&s, dir, NULL, err, sizeof err))
    bench_die("snapshot open: %s", err);
  double swap[REPS], normal[REPS], reader[REPS], faults[REPS];
  volatile size_t acc = 0;
  for (int rep = 0; rep < REPS; rep++) {
    double t[1001];
    for (int i = 0; i < 1001; i++) {
      uint64_t t0 = bench_now_ns();
      acc += route(c, "swap:key", 8);
      t[i] = (double)(bench_now_ns() - t0);
    }
    normal[rep] = bench_median(t, 1001);
    publish(w, ++*variant);
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    uint64_t t0 = bench_now_ns();
    acc += route(c, "swap:key", 8);
    uint64_t t1 = bench_now_ns();
    getrusage(RUSAGE_SELF, &ru1);
    faults[rep] = (double)(ru1.ru_minflt - ru0.ru_minflt);
    if (mcr_snapshot_refresh(s) != 1)
      bench_die("snapshot refresh did not switch");
    uint64_t t2 = bench_now_ns();
    swap[rep] = (double)(t1 - t0) - normal[rep];
    reader[rep] = (double)(t2 - t1);
  }
  bench_result("swap_call_ns_normal", bench_median(normal, REPS));
  bench_result("swap_us_500", bench_median(swap, REPS) / 1e3);
  bench_result("swap_reader_us_500", bench_median(reader, REPS) / 1e3);
  bench_result("swap_minor_faults_500", bench_median(faults, REPS));
  mcr_snapshot_free(s);
  mcr_client_free(c);
}

static int cmp_u64(const void* a, const void* b) {
  uint64_t x = *(const uint64_t*)a, y = *(const uint64_t*)b;
  return x < y ? -1 : x > y;
}

/* Workers are running (CMD_RUN); publishes REPS changes and reports the
 * switch latencies, named with `tag` after the worker count. */
static void propagation(mcr__snapshot_writer_t* w, int n, unsigned* variant,
                        const char* tag) {
  double mins[REPS], meds[REPS], maxs[REPS], calls[REPS];
  int missing = 0;
  for (int rep = 0; rep < REPS; rep++) {
    sleep_us(200000);
    uint64_t next = mcr__snapshot_writer_generation(w) + 1;
    atomic_store(&sh->target_gen, next);
    atomic_store(&sh->rep, rep);
    uint64_t gen = publish(w, ++*variant);
    /* From the generation store, not from publish()'s return: a publisher
     * preempted after the store would return after the workers switched. */
    uint64_t t_pub = (uint64_t)mcr__snapshot_writer_stored_ns(w);
    if (gen != next)
      bench_die("unexpected generation");
    double end = bench_now() + 3;
    int done;
    do {
      sleep_us(2000);
      done = 0;
      for (int i = 0; i < n; i++)
        done += sh->slot[i].gen_seen[rep] == gen;
    } while (done < n && bench_now() < end);
    missing += n - done;
    uint64_t lat[MAX_WORKERS];
    double cns[MAX_WORKERS];
    int m = 0;
    for (int i = 0; i < n; i++) {
      if (sh->slot[i].gen_seen[rep] != gen) {
        lat[m] = 3000000000u; /* never: counts as the 3 s timeout */
        cns[m++] = 0;
        continue;
      }
      uint64_t ts = sh->slot[i].t_switch[rep];
      lat[m] = ts > t_pub ? ts - t_pub : 0;
      cns[m++] = (double)sh->slot[i].call_ns[rep];
    }
    qsort(lat, (size_t)m, sizeof lat[0], cmp_u64);
    mins[rep] = (double)lat[0] / 1e6;
    meds[rep] = (double)lat[m / 2] / 1e6;
    maxs[rep] = (double)lat[m - 1] / 1e6;
    calls[rep] = bench_median(cns, (size_t)m) / 1e3;
  }
  /* 256 workers report under the plain names (the headline); 512 and
   * 1,024 with their count appended. */
  char name[64];
#define PROP_RESULT(base, v)                                \
  do {                                                      \
    if (n == 256)                                           \
      snprintf(name, sizeof name, "%s%s", base, tag);       \
    else                                                    \
      snprintf(name, sizeof name, "%s_%d%s", base, n, tag); \
    bench_result(name, v);                                  \
  } while (0)
  PROP_RESULT("propagation_ms_min", bench_median(mins, REPS));
  PROP_RESULT("propagation_ms_median", bench_median(meds, REPS));
  PROP_RESULT("propagation_ms_max", bench_median(maxs, REPS));
  double worst = 0;
  for (int rep = 0; rep < REPS; rep++)
    worst = maxs[rep] > worst ? maxs[rep] : worst;
  PROP_RESULT("propagation_ms_max_worst", worst);
  PROP_RESULT("propagation_switch_call_us_contended",
              bench_median(calls, REPS));
  PROP_RESULT("propagation_workers_missing", missing);
#undef PROP_RESULT
}

/* Memory of an idle worker against the ring's size: for rings of 500 to
 * 65,535 nodes, a forked process attaches (mcr_client_new with
 * opts.ring_dir) and makes one routed call; its heap growth (mallinfo2:
 * private, what every worker of a host pays) and RSS growth
 * (/proc/self/status VmRSS: new heap pages plus the pages of the shared
 * ring it touched) over the two. */
static long rss_kb(void) {
  FILE* f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
      break;
  if (f)
    fclose(f);
  return kb;
}

static void worker_memory(void) {
  static const size_t sizes[] = {500, 5000, 20000, 65535};
  size_t keep = nnodes;
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    char dir[300], err[256];
    snprintf(dir, sizeof dir, "%s/m%zu", top, sizes[k]);
    mcr__snapshot_writer_t* w;
    if (mcr__snapshot_writer_open(&w, dir, err, sizeof err))
      bench_die("writer: %s", err);
    nnodes = sizes[k];
    publish(w, 0);
    fflush(NULL);
    pid_t p = fork();
    if (p < 0)
      bench_die("fork: %s", strerror(errno));
    if (p == 0) {
      size_t h0 = heap_used();
      long r0 = rss_kb();
      mcr_client_t* c = attach(dir);
      volatile size_t acc = route(c, "worker:memory", 13);
      (void)acc;
      sh->slot[0].heap_bytes = (double)(heap_used() - h0);
      sh->slot[0].rss_kb = (double)(rss_kb() - r0);
      _exit(0);
    }
    int st;
    waitpid(p, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
      bench_die("worker memory at %zu nodes failed", sizes[k]);
    char name[64];
    snprintf(name, sizeof name, "worker_heap_kb_%zu", sizes[k]);
    bench_result(name, sh->slot[0].heap_bytes / 1024);
    snprintf(name, sizeof name, "worker_rss_kb_%zu", sizes[k]);
    bench_result(name, sh->slot[0].rss_kb);
    mcr__snapshot_writer_close(w);
  }
  nnodes = keep;
}

/* Issue 21's point on the curve: 256 workers on a 5,000-node ring with
 * host stats served (as the agent serves them), so every switch also
 * binds the counters of the nodes a worker holds. */
static void propagation_5000(pid_t* pids, unsigned* variant) {
  char dir[300], err[256];
  snprintf(dir, sizeof dir, "%s/w5000", top);
  mcr__snapshot_writer_t* w;
  if (mcr__snapshot_writer_open(&w, dir, err, sizeof err))
    bench_die("writer: %s", err);
  mcr_hoststats_server_t* stats;
  if (mcr_hoststats_serve(&stats, dir, MAX_WORKERS + 8, err, sizeof err))
    bench_die("host stats: %s", err);
  size_t keep = nnodes;
  nnodes = 5000;
  publish(w, ++*variant);
  spawn(256, dir, pids);
  atomic_store(&sh->cmd, CMD_RUN);
  propagation(w, 256, variant, "_5000nodes");
  reap(256, pids);
  nnodes = keep;
  mcr_hoststats_server_free(stats);
  mcr__snapshot_writer_close(w);
}

static void phase_writer(void) {
  char dir[300];
  snprintf(dir, sizeof dir, "%s/w", top);
  char err[256];
  mcr__snapshot_writer_t* w;
  if (mcr__snapshot_writer_open(&w, dir, err, sizeof err))
    bench_die("writer: %s", err);
  unsigned variant = 0;
  uint64_t gen = publish(w, variant);
  size_t ring_size = ring_file_size(dir, gen);
  bench_result("ring_bytes_500", (double)ring_size);

  /* A ring built in process (what every worker of another client keeps). */
  static mcr__ring_node_in_t in[NODES];
  static char hosts[NODES][32], addrs[NODES][32];
  nodes_make(in, hosts, addrs, NODES, 0);
  size_t h0 = heap_used();
  mcr_ring_t* own;
  if (mcr__ring_build_nodes(&own, MCR_DIST_KETAMA, in, NODES, err, sizeof err))
    bench_die("ring build: %s", err);
  size_t private_ring = heap_used() - h0;
  mcr_ring_free(own);
  bench_result("ring_private_bytes_500", (double)private_ring);

  swap_cost(w, dir, &variant);
  gen = mcr__snapshot_writer_generation(w);
  ring_size = ring_file_size(dir, gen);

  static pid_t pids[MAX_WORKERS];
  measure_memory(64, dir, ring_size, private_ring, pids);
  reap(64, pids);
  measure_memory(256, dir, ring_size, private_ring, pids);
  sh->pace_us = 1000;
  atomic_store(&sh->cmd, CMD_RUN);
  propagation(w, 256, &variant, "");
  reap(256, pids);
  /* The same with 512 and 1,024 workers (issue 20's line). */
  for (int n = 512; n <= MAX_WORKERS; n *= 2) {
    spawn(n, dir, pids);
    atomic_store(&sh->cmd, CMD_RUN);
    propagation(w, n, &variant, "");
    reap(n, pids);
  }
  mcr__snapshot_writer_close(w);
  propagation_5000(pids, &variant);
  worker_memory();
}

/* ------------------------------------------------------------ phase B */

/* Starts the agent polling the endpoint on `port` into dir, its stderr
 * in `log` (it dies with the bench: tools/deploy.h). */
static pid_t start_agent(const char* agent, int port, const char* dir,
                         const char* log) {
  char ep[64], iv[16], conf[300];
  snprintf(ep, sizeof ep, "127.0.0.1:%d", port);
  snprintf(iv, sizeof iv, "%g", AGENT_INTERVAL);
  snprintf(conf, sizeof conf, "%s/agent.conf", top);
  FILE* f = fopen(conf, "w");
  if (!f)
    bench_die("%s: %s", conf, strerror(errno));
  fclose(f);
  fflush(NULL);
  const char* argv[] = {agent, "--config",    conf,      "--elasticache",
                        ep,    "--ring-dir",  dir,       "--interval",
                        iv,    "--log-level", "warning", NULL};
  pid_t p = deploy_spawn(argv, &(deploy_spawn_opts_t){.err = log});
  if (p < 0)
    bench_die("fork: %s", strerror(errno));
  return p;
}

static int polls(fakecfg_t* f) {
  return fakecfg_requests(f, "config") + fakecfg_requests(f, "get");
}

static void phase_agent(const char* agent) {
  char dir[300], nodes[300], log[300];
  snprintf(dir, sizeof dir, "%s/a", top);
  snprintf(nodes, sizeof nodes, "%s/nodes", top);
  snprintf(log, sizeof log, "%s/agent.log", top);
  if (fakecfg_write_nodes(nodes, NODES, BASE_PORT) != 0)
    bench_die("cannot write %s", nodes);
  fakecfg_opts_t fo = {.nodes_file = nodes};
  fakecfg_t* f = fakecfg_start(&fo);
  if (!f)
    bench_die("fakecfg did not start");
  pid_t ap = start_agent(agent, fakecfg_port(f), dir, log);
  if (!deploy_wait_gen(dir, 1, 10000)) {
    deploy_stop(ap, SIGTERM, 5000);
    bench_die("mcring-agent published nothing in 10 s (see %s)", log);
  }

  static pid_t pids[MAX_WORKERS];
  int n = 256;
  spawn(n, dir, pids);
  sh->pace_us = 10000;
  atomic_store(&sh->cmd, CMD_RUN);

  /* Count polls at the endpoint over about 12 intervals, aligned on polls:
   * from the first increment seen to the last. */
  int first = -1, last = -1, cur = polls(f), total0 = 0, total1 = 0;
  double t_first = 0, t_last = 0;
  double end = bench_now() + 12 * AGENT_INTERVAL + 0.3;
  while (bench_now() < end) {
    sleep_us(2000);
    int p = polls(f);
    if (p != cur) {
      double t = bench_now();
      if (first < 0) {
        first = p;
        t_first = t;
        total0 = fakecfg_requests(f, NULL);
      } else {
        last = p;
        t_last = t;
        total1 = fakecfg_requests(f, NULL);
      }
      cur = p;
    }
  }
  if (first < 0 || last <= first)
    bench_die("the agent did not poll (see %s)", log);
  double intervals = (t_last - t_first) / AGENT_INTERVAL;
  bench_result("endpoint_polls_per_interval_256", (last - first) / intervals);
  bench_result("endpoint_requests_per_interval_256",
               (total1 - total0) / intervals);
  bench_result("endpoint_polls_in_window", last - first);
  bench_result("endpoint_window_s", t_last - t_first);

  /* End to end: the endpoint's node list changes; the agent polls and
   * publishes; every worker switches. */
  for (int i = 0; i < n; i++)
    sh->slot[i].rt_switch = 0;
  uint64_t before = 0;
  {
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    before = (uint64_t)rt.tv_sec * 1000000000u + (uint64_t)rt.tv_nsec;
  }
  if (fakecfg_write_nodes(nodes, NODES - 1, BASE_PORT) != 0)
    bench_die("cannot write %s", nodes);
  end = bench_now() + 5;
  int done = 0;
  while (done < n && bench_now() < end) {
    sleep_us(5000);
    done = 0;
    for (int i = 0; i < n; i++)
      done += sh->slot[i].rt_switch > before;
  }
  double lat[MAX_WORKERS];
  int m = 0;
  for (int i = 0; i < n; i++)
    if (sh->slot[i].rt_switch > before)
      lat[m++] = (double)(sh->slot[i].rt_switch - sh->slot[i].rt_publish) / 1e6;
  if (m) {
    double mx = 0;
    for (int i = 0; i < m; i++)
      mx = lat[i] > mx ? lat[i] : mx;
    bench_result("agent_propagation_ms_max", mx);
    bench_result("agent_propagation_ms_median", bench_median(lat, (size_t)m));
  }
  bench_result("agent_propagation_workers_missing", n - m);
  reap(n, pids);
  deploy_stop(ap, SIGTERM, 5000);
  fakecfg_stop(f);
}

/* ------------------------------------------------------------ main */

static void rm_rf(const char* path) {
  DIR* d = opendir(path);
  if (!d) {
    unlink(path);
    return;
  }
  struct dirent* e;
  while ((e = readdir(d))) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    char p[600];
    snprintf(p, sizeof p, "%s/%s", path, e->d_name);
    rm_rf(p);
  }
  closedir(d);
  rmdir(path);
}

/* The target of callgrind --toggle-collect=mcr__router_refresh: `n`
 * publishes, each followed by one routed call that swaps. Host stats are
 * served as the agent serves them, so each switch also binds the worker's
 * counters to the new ring's nodes. The worker has used every node of the
 * ring (the most a switch can have to move), or one with
 * --swap-profile-idle; every node moves at each publish with
 * --swap-profile-all, else one. */
static int swap_profile(int n) {
  char dir[300], err[256];
  snprintf(dir, sizeof dir, "%s/p", top);
  mcr__snapshot_writer_t* w;
  if (mcr__snapshot_writer_open(&w, dir, err, sizeof err))
    bench_die("writer: %s", err);
  mcr_hoststats_server_t* stats;
  if (mcr_hoststats_serve(&stats, dir, 64, err, sizeof err))
    bench_die("host stats: %s", err);
  unsigned variant = 0;
  publish(w, variant);
  mcr_client_t* c = attach(dir);
  /* The worst case of a switch: a worker that has used every node of the
   * ring (naming a node makes it, as a call to it would), so each switch
   * moves all of them. The handle must really count by node in a
   * registered segment: one row per node of the ring, read back through
   * the agent's socket. */
  volatile size_t acc = route(c, "swap:key", 8);
  size_t used = idle_worker ? 1 : mcr_client_node_count(c);
  for (size_t i = 0; i < used && !idle_worker; i++)
    if (!mcr_client_node_name(c, i))
      bench_die("node %zu: %s", i, mcr_client_last_error(c));
  mcr_hoststats_t* hs;
  const mcr_hoststat_row_t* rows;
  size_t nrows = 0;
  if (mcr_hoststats_open(&hs, dir, -1, err, sizeof err) ||
      mcr_hoststats_read(hs, &rows, &nrows) || nrows != used)
    bench_die("host stats: %zu rows for %zu nodes used", nrows, used);
  mcr_hoststats_free(hs);
  for (int i = 0; i < n; i++) {
    publish(w, ++variant);
    acc += route(c, "swap:key", 8);
  }
  mcr_client_free(c);
  mcr_hoststats_server_free(stats);
  mcr__snapshot_writer_close(w);
  return 0;
}

static void rm_rf(const char* path);

int main(int argc, char** argv) {
  if (argc != 2 && !((argc == 3 || argc == 4) &&
                     (strcmp(argv[1], "--swap-profile") == 0 ||
                      strcmp(argv[1], "--swap-profile-all") == 0 ||
                      strcmp(argv[1], "--swap-profile-idle") == 0))) {
    fprintf(stderr,
            "usage: bench_ring AGENT_BINARY | bench_ring "
            "--swap-profile[-all|-idle] N [NODES]\n");
    return 2;
  }
  if (argc == 4) {
    nnodes = strtoul(argv[3], NULL, 10);
    if (nnodes < 2 || nnodes > MAX_NODES) {
      fprintf(stderr, "bench_ring: NODES must be 2..%d\n", MAX_NODES);
      return 2;
    }
  }
  move_all = argc >= 3 && strcmp(argv[1], "--swap-profile-all") == 0;
  idle_worker = argc >= 3 && strcmp(argv[1], "--swap-profile-idle") == 0;
  const char* base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  snprintf(top, sizeof top, "%s/mcring-bench-XXXXXX", base);
  if (!mkdtemp(top))
    bench_die("mkdtemp: %s", strerror(errno));
  chmod(top, 0750);
  sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE,
            MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (sh == MAP_FAILED)
    bench_die("mmap: %s", strerror(errno));
  if (argc >= 3) {
    int rc = swap_profile(atoi(argv[2]));
    rm_rf(top);
    return rc;
  }
  phase_writer();
  phase_agent(argv[1]);
  rm_rf(top);
  return 0;
}
