/* demo.c — examples/demo, the demo behind `bash tools/run demo`: the main
 * job of mcring, one agent and one shared ring serving a pre-forked server
 * whose memcached cluster changes under live traffic.
 *
 * One program orchestrates everything with fork/exec, so that one place
 * owns every process and can stop them all, also on Ctrl-C (SIGINT/SIGTERM
 * handler, then kill + waitpid of every child; each child also gets
 * PR_SET_PDEATHSIG so nothing outlives a master killed with SIGKILL):
 *
 *  - 3 memcached on free 127.0.0.1 ports, a node file listing them, the
 *    fake ElastiCache configuration endpoint (tests/fakecfg) serving that
 *    file, and mcring-agent polling it every 0.2 s into a private ring
 *    directory;
 *  - a master that opens the client on the ring (ring_dir) and uses it
 *    once, then forks 8 workers, as Apache prefork or PHP-FPM would: the
 *    workers inherit the client and the master's open sockets, and the
 *    library's fork guard makes each worker open its own connections;
 *  - the workers do cache-aside traffic on their own keys (get, set on a
 *    miss, get_multi, and sets of new versions). Every value encodes its
 *    key and version plus a filler derived from both, and every read is
 *    compared with the exact value the worker last wrote, so a value of
 *    another key, an older version or a corrupted one is counted as wrong.
 *    Counters, the generation each worker routes by and the moment it
 *    switched go to a shared memory block the master reads;
 *  - while they run the master changes the cluster: adds a fourth node,
 *    removes one of the first three (and stops it once no worker uses it),
 *    kills the agent with SIGKILL and starts it again. After each change it
 *    prints the ring generation the agent published, the share of keys
 *    that moved, when each worker switched (ms after the change) and a
 *    per-worker table (ops/s, hit rate, errors, wrong values); between
 *    steps one line per second.
 *
 * Exit status: 0 when every check passed (no wrong value, no error, every
 * worker switched to every new generation, nothing died), 1 when one
 * failed, 2 on bad usage or when the setup failed, 130 when interrupted.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <mcring.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_WORKERS 64
#define MAX_NODES 4
#define MAX_CHILDREN (MAX_WORKERS + 16)
#define VALUE_MAX 320
#define MULTI_KEYS 4
#define SAMPLE_KEYS                                        \
  20000 /* keys used to measure how much of the ring moved \
         */

/* ---------------------------------------------------------------- time */

static int64_t now_ns(clockid_t clk) {
  struct timespec ts;
  clock_gettime(clk, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
static int64_t real_ns(void) {
  return now_ns(CLOCK_REALTIME);
}
static double mono_s(void) {
  return (double)now_ns(CLOCK_MONOTONIC) / 1e9;
}

static volatile sig_atomic_t g_interrupted;
static void on_signal(int sig) {
  g_interrupted = sig;
}

/* Sleeps `s` seconds unless interrupted. Returns false when interrupted. */
static bool nap(double s) {
  if (g_interrupted)
    return false;
  if (s > 0) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL); /* a signal ends it early */
  }
  return !g_interrupted;
}

/* ------------------------------------------------- shared worker stats */

/* One slot per worker, written only by that worker (relaxed stores of
 * monotonic counters; gen is stored with release after switch_ns), read by
 * the master. */
typedef struct {
  uint64_t ops;     /* calls made */
  uint64_t lookups; /* keys looked up (a get_multi counts each key) */
  uint64_t hits;
  uint64_t sets;
  uint64_t errors;    /* negative results of any call */
  uint64_t wrong;     /* values that were not exactly the one last written */
  uint64_t gen;       /* generation the last call was routed by */
  uint64_t switch_ns; /* CLOCK_REALTIME when gen was first used */
  uint64_t ring_errors;
  int32_t pid;
  int32_t note_set;
  char note[200]; /* the first error or wrong value, for the report */
} __attribute__((aligned(64))) wslot_t;

typedef struct {
  int32_t stop;
  wslot_t w[MAX_WORKERS];
} shm_t;

static shm_t* g_shm;

#define LOAD(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)

/* ---------------------------------------------------------------- setup */

typedef struct {
  const char* build_dir;
  const char* agent;
  const char* fakecfg;
  const char* memcached;
  double duration;
  int workers;
  int keys;
} conf_t;

typedef enum { K_MEMCACHED, K_FAKECFG, K_AGENT, K_WORKER } kind_t;

typedef struct {
  pid_t pid;
  kind_t kind;
  int index;       /* node or worker number */
  bool expect_end; /* we stopped it: its exit is not a failure */
} child_t;

static child_t g_children[MAX_CHILDREN];
static int g_nchildren;
static pid_t g_master;
static char g_tmp[256]; /* private directory: node file, ring, logs */
static double g_t0;     /* program start, CLOCK_MONOTONIC */
static bool g_failed;

typedef struct {
  char name[16]; /* mc1 .. mc4 */
  int port;
  pid_t pid;
  bool listed; /* in the node file */
} node_t;

static node_t g_nodes[MAX_NODES];

/* One timestamped line: "[  4.1s] <prefix><text>". */
static void vsay(const char* prefix, const char* fmt, va_list ap) {
  printf("[%5.1fs] %s", mono_s() - g_t0, prefix);
  vprintf(fmt, ap);
  putchar('\n');
  fflush(stdout);
}

static void say(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsay("", fmt, ap);
  va_end(ap);
}

/* Like say(), and the demo will exit non-zero. */
static void fail(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsay("FAILED: ", fmt, ap);
  va_end(ap);
  g_failed = true;
}

static child_t* child_add(pid_t pid, kind_t kind, int index) {
  if (g_nchildren == MAX_CHILDREN)
    return NULL;
  child_t* ch = &g_children[g_nchildren++];
  *ch = (child_t){.pid = pid, .kind = kind, .index = index};
  return ch;
}

static child_t* child_find(pid_t pid) {
  for (int i = 0; i < g_nchildren; i++)
    if (g_children[i].pid == pid)
      return &g_children[i];
  return NULL;
}

/* In a fresh child: die with the master, restore default signals. */
static void child_setup(void) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != g_master)
    _exit(127); /* the master is already gone */
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  signal(SIGHUP, SIG_DFL);
  signal(SIGPIPE, SIG_DFL);
}

/* Starts argv[0] with stdout to out_fd (or the log) and stderr to the log
 * file `log` (appended). Returns the pid or -1. */
static pid_t spawn(char* const argv[], int out_fd, const char* log) {
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    child_setup();
    int lfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (lfd >= 0) {
      dup2(lfd, STDERR_FILENO);
      dup2(out_fd >= 0 ? out_fd : lfd, STDOUT_FILENO);
    }
    int nul = open("/dev/null", O_RDONLY);
    if (nul >= 0)
      dup2(nul, STDIN_FILENO);
    execv(argv[0], argv);
    fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  return pid;
}

/* A port that was free a moment ago (memcached is started on it next; a
 * lost race is retried by the caller). */
static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return -1;
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  int port = -1;
  if (bind(fd, (struct sockaddr*)&a, sizeof a) == 0 &&
      getsockname(fd, (struct sockaddr*)&a, &len) == 0)
    port = ntohs(a.sin_port);
  close(fd);
  return port;
}

static bool can_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return false;
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  bool ok = connect(fd, (struct sockaddr*)&a, sizeof a) == 0;
  close(fd);
  return ok;
}

/* False once `pid` exited (it is reaped then). */
static bool alive(pid_t pid) {
  if (waitpid(pid, NULL, WNOHANG) == 0)
    return true;
  child_t* ch = child_find(pid);
  if (ch)
    ch->pid = 0;
  return false;
}

/* Reaps a child we stopped on purpose. */
static void stop_child(pid_t pid, int sig) {
  child_t* ch = child_find(pid);
  if (!ch || ch->pid <= 0)
    return;
  ch->expect_end = true;
  kill(pid, sig);
  for (int i = 0; i < 300; i++) {
    if (waitpid(pid, NULL, WNOHANG) == pid) {
      ch->pid = 0;
      return;
    }
    struct timespec ts = {0, 10000000};
    nanosleep(&ts, NULL);
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  ch->pid = 0;
}

static int start_memcached(const conf_t* cf, int i) {
  node_t* n = &g_nodes[i];
  snprintf(n->name, sizeof n->name, "mc%d", i + 1);
  char log[320];
  snprintf(log, sizeof log, "%s/%s.log", g_tmp, n->name);
  for (int attempt = 0; attempt < 5; attempt++) {
    int port = free_port();
    if (port <= 0)
      continue;
    char ports[16];
    snprintf(ports, sizeof ports, "%d", port);
    char* argv[16];
    int a = 0;
    argv[a++] = (char*)cf->memcached;
    argv[a++] = "-l";
    argv[a++] = "127.0.0.1";
    argv[a++] = "-p";
    argv[a++] = ports;
    argv[a++] = "-U";
    argv[a++] = "0";
    argv[a++] = "-t";
    argv[a++] = "2";
    argv[a++] = "-m";
    argv[a++] = "64";
    if (geteuid() == 0) {
      argv[a++] = "-u";
      argv[a++] = "root";
    }
    argv[a] = NULL;
    pid_t pid = spawn(argv, -1, log);
    if (pid < 0)
      return -1;
    child_add(pid, K_MEMCACHED, i);
    for (int t = 0; t < 300 && alive(pid); t++) {
      if (can_connect(port)) {
        n->port = port;
        n->pid = pid;
        return 0;
      }
      if (!nap(0.01))
        return -1;
    }
    stop_child(pid, SIGKILL);
  }
  fprintf(stderr, "demo: cannot start %s (see %s)\n", cf->memcached, log);
  return -1;
}

/* Writes the node file the fake endpoint serves (temp + rename). */
static int write_nodes(void) {
  char path[320], tmp[330];
  snprintf(path, sizeof path, "%s/nodes", g_tmp);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE* f = fopen(tmp, "w");
  if (!f)
    return -1;
  for (int i = 0; i < MAX_NODES; i++)
    if (g_nodes[i].listed)
      fprintf(f, "%s.demo|127.0.0.1|%d\n", g_nodes[i].name, g_nodes[i].port);
  if (fclose(f) != 0)
    return -1;
  return rename(tmp, path);
}

static char g_endpoint[64];
static pid_t g_agent;

static int start_fakecfg(const conf_t* cf) {
  char nodes[320], log[320];
  snprintf(nodes, sizeof nodes, "%s/nodes", g_tmp);
  snprintf(log, sizeof log, "%s/fakecfg.log", g_tmp);
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0)
    return -1;
  char* argv[] = {(char*)cf->fakecfg, "--nodes", nodes, NULL};
  pid_t pid = spawn(argv, p[1], log);
  close(p[1]);
  if (pid < 0) {
    close(p[0]);
    return -1;
  }
  child_add(pid, K_FAKECFG, 0);
  /* It prints "127.0.0.1:PORT" once listening. */
  size_t got = 0;
  struct pollfd pfd = {.fd = p[0], .events = POLLIN};
  while (got < sizeof g_endpoint - 1 && !strchr(g_endpoint, '\n')) {
    if (poll(&pfd, 1, 5000) <= 0)
      break;
    ssize_t r = read(p[0], g_endpoint + got, sizeof g_endpoint - 1 - got);
    if (r <= 0)
      break;
    got += (size_t)r;
  }
  close(p[0]);
  char* nl = strchr(g_endpoint, '\n');
  if (!nl) {
    fprintf(stderr, "demo: %s did not start (see %s)\n", cf->fakecfg, log);
    return -1;
  }
  *nl = '\0';
  return 0;
}

static int start_agent(const conf_t* cf) {
  char ring[320], log[320];
  snprintf(ring, sizeof ring, "%s/ring", g_tmp);
  snprintf(log, sizeof log, "%s/agent.log", g_tmp);
  char* argv[] = {(char*)cf->agent,
                  "--elasticache",
                  g_endpoint,
                  "--ring-dir",
                  ring,
                  "--interval",
                  "0.2",
                  "--connect-timeout",
                  "0.5",
                  "--io-timeout",
                  "1",
                  "--max-backoff",
                  "1",
                  "--config",
                  "/dev/null",
                  NULL};
  pid_t pid = spawn(argv, -1, log);
  if (pid < 0)
    return -1;
  child_add(pid, K_AGENT, 0);
  g_agent = pid;
  return 0;
}

static void show_log_tail(const char* name) {
  char path[320];
  snprintf(path, sizeof path, "%s/%s", g_tmp, name);
  FILE* f = fopen(path, "r");
  if (!f)
    return;
  char lines[8][256];
  int n = 0;
  while (fgets(lines[n % 8], sizeof lines[0], f))
    n++;
  fclose(f);
  printf("        last lines of %s:\n", name);
  for (int i = n > 8 ? n - 8 : 0; i < n; i++)
    printf("          %s", lines[i % 8]);
  fflush(stdout);
}

/* ---------------------------------------------------------------- worker */

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

static void run_worker(int w, mcr_client_t* c, int nkeys) {
  wslot_t* s = &g_shm->w[w];
  worker_t wk = {.w = w, .s = s, .c = c};
  wk.ver = calloc((size_t)nkeys, sizeof *wk.ver);
  wk.unsure = calloc((size_t)nkeys, 1);
  if (!wk.ver || !wk.unsure)
    _exit(3);
  STORE(&s->pid, (int32_t)getpid());
  uint64_t rng = mix64((uint64_t)getpid() * 7919 + (uint64_t)w);
  while (!LOAD(&g_shm->stop)) {
    rng = mix64(rng + 0x9e3779b97f4a7c15ULL);
    unsigned pick = (unsigned)(rng % 100);
    uint32_t k = (uint32_t)((rng >> 8) % (uint64_t)nkeys);
    if (pick < 20) { /* a new version of the key */
      wk.ver[k]++;
      store(&wk, k);
    } else if (pick < 30) { /* a page that needs several keys at once */
      char keys[MULTI_KEYS][48];
      const char* kp[MULTI_KEYS];
      size_t kl[MULTI_KEYS];
      uint32_t ks[MULTI_KEYS];
      mcr_item_t items[MULTI_KEYS];
      for (int i = 0; i < MULTI_KEYS; i++) {
        rng = mix64(rng + (uint64_t)i + 1);
        ks[i] = (uint32_t)(rng % (uint64_t)nkeys);
        kl[i] = make_key(keys[i], w, ks[i]);
        kp[i] = keys[i];
      }
      int rc = mcr_client_get_multi(c, MULTI_KEYS, kp, kl, items, NULL);
      wk.ops++;
      if (rc < 0) {
        call_failed(&wk, "get_multi", rc);
      } else {
        /* Check every item before any refill: a set reuses the memory
         * the items point into. */
        bool refill[MULTI_KEYS] = {false};
        for (int i = 0; i < MULTI_KEYS; i++) {
          wk.lookups++;
          if (items[i].status == MCR_OK)
            check_hit(&wk, ks[i], &items[i]);
          else if (items[i].status == MCR_MISS)
            refill[i] = true;
          else
            call_failed(&wk, "get_multi key", items[i].status);
        }
        for (int i = 0; i < MULTI_KEYS; i++) {
          if (!refill[i])
            continue;
          if (!wk.ver[ks[i]])
            wk.ver[ks[i]] = 1;
          store(&wk, ks[i]);
        }
      }
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

/* ---------------------------------------------------------------- master */

typedef struct {
  uint64_t ops, lookups, hits, errors, wrong, gen;
} wsample_t;

typedef struct {
  double t;
  wsample_t w[MAX_WORKERS];
} sample_t;

static int g_nworkers;
static mcr_snapshot_t* g_snap;           /* the master's own view of the ring */
static int64_t g_switch_ms[MAX_WORKERS]; /* last switch, ms after a change */
static int64_t g_slowest_ms;             /* over every change */

static void take_sample(sample_t* s) {
  s->t = mono_s();
  for (int i = 0; i < g_nworkers; i++) {
    const wslot_t* w = &g_shm->w[i];
    s->w[i] = (wsample_t){.ops = LOAD(&w->ops),
                          .lookups = LOAD(&w->lookups),
                          .hits = LOAD(&w->hits),
                          .errors = LOAD(&w->errors),
                          .wrong = LOAD(&w->wrong),
                          .gen = LOAD(&w->gen)};
  }
}

static double pct(uint64_t a, uint64_t b) {
  return b ? 100.0 * (double)a / (double)b : 0.0;
}

static void totals(const sample_t* s, wsample_t* t) {
  *t = (wsample_t){0};
  for (int i = 0; i < g_nworkers; i++) {
    t->ops += s->w[i].ops;
    t->lookups += s->w[i].lookups;
    t->hits += s->w[i].hits;
    t->errors += s->w[i].errors;
    t->wrong += s->w[i].wrong;
  }
}

/* One line per second between the steps. */
static void progress_line(const sample_t* a, const sample_t* b) {
  double dt = b->t - a->t;
  wsample_t ta, tb;
  totals(a, &ta);
  totals(b, &tb);
  double lo = 1e18, hi = 0;
  uint64_t glo = UINT64_MAX, ghi = 0;
  for (int i = 0; i < g_nworkers; i++) {
    double r = (double)(b->w[i].ops - a->w[i].ops) / dt;
    lo = r < lo ? r : lo;
    hi = r > hi ? r : hi;
    glo = b->w[i].gen < glo ? b->w[i].gen : glo;
    ghi = b->w[i].gen > ghi ? b->w[i].gen : ghi;
  }
  char gens[32];
  if (glo == ghi)
    snprintf(gens, sizeof gens, "%" PRIu64, ghi);
  else
    snprintf(gens, sizeof gens, "%" PRIu64 "-%" PRIu64, glo, ghi);
  say("gen %s  %6.1fk ops/s (%.1fk-%.1fk per worker)  hit %5.1f%%  "
      "errors %" PRIu64 "  wrong %" PRIu64,
      gens, (double)(tb.ops - ta.ops) / dt / 1e3, lo / 1e3, hi / 1e3,
      pct(tb.hits - ta.hits, tb.lookups - ta.lookups), tb.errors, tb.wrong);
}

/* The per-worker table: ops/s and hit rate over the window a..b, errors
 * and wrong values since the start. */
static void worker_table(const sample_t* a, const sample_t* b,
                         const char* title) {
  double dt = b->t - a->t;
  printf("         %s\n", title);
  printf(
      "         worker    pid  gen  switched    ops/s   hit%%  errors  "
      "wrong\n");
  for (int i = 0; i < g_nworkers; i++) {
    const wsample_t *x = &a->w[i], *y = &b->w[i];
    char sw[24] = "-";
    if (g_switch_ms[i] >= 0)
      snprintf(sw, sizeof sw, "+%" PRId64 " ms", g_switch_ms[i]);
    printf("         w%-3d  %7d  %3" PRIu64 "  %8s  %7.0f  %5.1f  %6" PRIu64
           "  %5" PRIu64 "\n",
           i + 1, (int)LOAD(&g_shm->w[i].pid), y->gen, sw,
           (double)(y->ops - x->ops) / dt,
           pct(y->hits - x->hits, y->lookups - x->lookups), y->errors,
           y->wrong);
  }
  fflush(stdout);
}

static const char* node_name_by_port(int port) {
  for (int i = 0; i < MAX_NODES; i++)
    if (g_nodes[i].port == port)
      return g_nodes[i].name;
  return "?";
}

/* "mc1 33.2%  mc2 34.0%  mc3 32.8%": each node's share of the key space. */
static void ring_shares(char* out, size_t cap) {
  const mcr_ring_t* r = mcr_snapshot_ring(g_snap);
  size_t len = 0;
  out[0] = '\0';
  for (size_t i = 0; i < mcr_ring_node_count(r) && len < cap; i++) {
    mcr_ring_node_t rn;
    if (mcr_ring_node(r, i, &rn) == 0)
      len +=
          (size_t)snprintf(out + len, cap - len, "%s%s %.1f%%", i ? "  " : "",
                           node_name_by_port(rn.port), rn.share * 100);
  }
}

/* The port of the node owning each sample key, to count moved keys. */
static void ring_owners(uint16_t* owners) {
  const mcr_ring_t* r = mcr_snapshot_ring(g_snap);
  for (int i = 0; i < SAMPLE_KEYS; i++) {
    char key[32];
    int kl = snprintf(key, sizeof key, "sample:%d", i);
    mcr_ring_node_t rn;
    mcr_ring_node(r, mcr_ring_locate(r, key, (size_t)kl), &rn);
    owners[i] = rn.port;
  }
}

/* "24.9% of keys moved: mc1->mc4 8.2%, mc2->mc4 8.4%, mc3->mc4 8.3%" */
static void keys_moved(const uint16_t* before, const uint16_t* after) {
  struct {
    uint16_t from, to;
    int n;
  } pairs[MAX_NODES * MAX_NODES] = {{0}};
  int npairs = 0, moved = 0;
  for (int i = 0; i < SAMPLE_KEYS; i++) {
    if (before[i] == after[i])
      continue;
    moved++;
    int p = 0;
    while (p < npairs &&
           (pairs[p].from != before[i] || pairs[p].to != after[i]))
      p++;
    if (p == npairs && npairs < MAX_NODES * MAX_NODES)
      pairs[npairs++] = (typeof(pairs[0])){before[i], after[i], 0};
    if (p < npairs)
      pairs[p].n++;
  }
  char line[512];
  size_t len = (size_t)snprintf(line, sizeof line, "%.1f%% of the keys moved",
                                pct((uint64_t)moved, SAMPLE_KEYS));
  for (int p = 0; p < npairs && len < sizeof line; p++)
    len += (size_t)snprintf(line + len, sizeof line - len, "%s %s->%s %.1f%%",
                            p ? "," : ":", node_name_by_port(pairs[p].from),
                            node_name_by_port(pairs[p].to),
                            pct((uint64_t)pairs[p].n, SAMPLE_KEYS));
  say("   %s", line);
}

/* Waits until the agent publishes a generation above `above`. Returns it,
 * or 0 after `timeout` seconds. */
static uint64_t wait_generation(uint64_t above, double timeout) {
  double end = mono_s() + timeout;
  while (mono_s() < end && !g_interrupted) {
    int rc = mcr_snapshot_refresh(g_snap);
    if (rc < 0) {
      fail("the master's snapshot reader refused a generation: %s",
           mcr_snapshot_last_error(g_snap));
      return 0;
    }
    if (mcr_snapshot_generation(g_snap) > above)
      return mcr_snapshot_generation(g_snap);
    nap(0.001);
  }
  return 0;
}

/* After a change made at change_ns (CLOCK_REALTIME): waits for the agent's
 * new generation, shows it, and waits for every worker to route by it. */
static bool follow_change(int64_t change_ns, const uint16_t* before) {
  uint64_t g0 = mcr_snapshot_generation(g_snap);
  uint64_t gen = wait_generation(g0, 5.0);
  if (!gen) {
    if (!g_interrupted) {
      fail("the agent published no new generation within 5 s");
      show_log_tail("agent.log");
    }
    return false;
  }
  const mcr_ring_t* r = mcr_snapshot_ring(g_snap);
  int64_t pub = (int64_t)mcr_ring_publish_time_ns(r);
  if (pub <= 0)
    pub = real_ns();
  char shares[256];
  ring_shares(shares, sizeof shares);
  say("   agent published ring generation %" PRIu64 " %" PRId64
      " ms after the change: %s",
      gen, (pub - change_ns) / 1000000, shares);
  static uint16_t after[SAMPLE_KEYS];
  ring_owners(after);
  keys_moved(before, after);

  double end = mono_s() + 3.0;
  bool all = false;
  while (!all && mono_s() < end && nap(0.001)) {
    all = true;
    for (int i = 0; i < g_nworkers; i++)
      all = all && LOAD(&g_shm->w[i].gen) >= gen;
  }
  if (g_interrupted)
    return false;
  char line[512];
  size_t len = 0;
  int64_t slowest = 0;
  for (int i = 0; i < g_nworkers && len < sizeof line; i++) {
    uint64_t g = LOAD(&g_shm->w[i].gen);
    int64_t sw = (int64_t)LOAD(&g_shm->w[i].switch_ns);
    if (g < gen) {
      g_switch_ms[i] = -1;
      len +=
          (size_t)snprintf(line + len, sizeof line - len, " w%d never", i + 1);
      continue;
    }
    g_switch_ms[i] = (sw - change_ns) / 1000000;
    slowest = g_switch_ms[i] > slowest ? g_switch_ms[i] : slowest;
    len += (size_t)snprintf(line + len, sizeof line - len, " w%d +%" PRId64,
                            i + 1, g_switch_ms[i]);
  }
  say("   workers switched (ms after the change):%s", line);
  if (!all) {
    fail("a worker did not switch to generation %" PRIu64 " within 3 s", gen);
    return false;
  }
  g_slowest_ms = slowest > g_slowest_ms ? slowest : g_slowest_ms;
  int64_t after_pub = slowest - (pub - change_ns) / 1000000;
  say("   all %d workers on generation %" PRIu64 " within %" PRId64
      " ms of the change (%" PRId64 " ms after the agent published it)",
      g_nworkers, gen, slowest, after_pub < 0 ? 0 : after_pub);
  return true;
}

/* Reaps children that exited; one we did not stop is a failure. */
static bool check_children(void) {
  bool ok = true;
  int st;
  pid_t pid;
  while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
    child_t* ch = child_find(pid);
    if (!ch)
      continue;
    ch->pid = 0;
    if (ch->expect_end)
      continue;
    static const char* kinds[] = {"memcached", "the configuration endpoint",
                                  "mcring-agent", "worker"};
    char what[64];
    if (ch->kind == K_WORKER)
      snprintf(what, sizeof what, "worker w%d", ch->index + 1);
    else if (ch->kind == K_MEMCACHED)
      snprintf(what, sizeof what, "memcached %s", g_nodes[ch->index].name);
    else
      snprintf(what, sizeof what, "%s", kinds[ch->kind]);
    if (WIFSIGNALED(st))
      fail("%s (pid %d) died of signal %d", what, (int)pid, WTERMSIG(st));
    else
      fail("%s (pid %d) exited with status %d", what, (int)pid,
           WEXITSTATUS(st));
    if (ch->kind == K_AGENT)
      show_log_tail("agent.log");
    ok = false;
  }
  return ok;
}

static int rm_entry(const char* path, const struct stat* sb, int flag,
                    struct FTW* ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  remove(path);
  return 0;
}

/* Stops every process we started (workers first, letting them finish
 * their call), then removes the private directory. Idempotent. */
static void cleanup(void) {
  if (getpid() != g_master)
    return;
  if (g_shm)
    STORE(&g_shm->stop, 1);
  for (int pass = 0; pass < 2; pass++) {
    /* pass 0: workers (asked through shm), pass 1: everything else. */
    for (int i = 0; i < g_nchildren; i++) {
      child_t* ch = &g_children[i];
      if (ch->pid > 0 && (ch->kind == K_WORKER) == (pass == 0) && pass == 1)
        kill(ch->pid, SIGTERM);
    }
    double end = mono_s() + 2.0;
    for (;;) {
      bool left = false;
      for (int i = 0; i < g_nchildren; i++) {
        child_t* ch = &g_children[i];
        if (ch->pid <= 0 || (ch->kind == K_WORKER) != (pass == 0))
          continue;
        if (waitpid(ch->pid, NULL, WNOHANG) != 0)
          ch->pid = 0;
        else
          left = true;
      }
      if (!left)
        break;
      if (mono_s() > end) {
        for (int i = 0; i < g_nchildren; i++) {
          child_t* ch = &g_children[i];
          if (ch->pid > 0 && (ch->kind == K_WORKER) == (pass == 0)) {
            kill(ch->pid, SIGKILL);
            waitpid(ch->pid, NULL, 0);
            ch->pid = 0;
          }
        }
        break;
      }
      struct timespec ts = {0, 5000000};
      nanosleep(&ts, NULL);
    }
  }
  if (g_snap) {
    mcr_snapshot_free(g_snap);
    g_snap = NULL;
  }
  if (g_tmp[0]) {
    nftw(g_tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    g_tmp[0] = '\0';
  }
}

/* ---------------------------------------------------------------- steps */

static uint16_t g_before[SAMPLE_KEYS];
static uint64_t g_kill_gen; /* generation published when the agent died */
static sample_t g_kill_sample;

static bool step_add(const conf_t* cf) {
  say("STEP 1/4: add a fourth node");
  if (start_memcached(cf, 3) != 0) {
    fail("cannot start a fourth memcached");
    return false;
  }
  g_nodes[3].listed = true;
  ring_owners(g_before);
  int64_t change = real_ns();
  if (write_nodes() != 0) {
    fail("cannot write the node file");
    return false;
  }
  say("   memcached mc4 started on 127.0.0.1:%d and added to the node "
      "list the endpoint serves",
      g_nodes[3].port);
  return follow_change(change, g_before);
}

static bool step_remove(void) {
  node_t* n = &g_nodes[1];
  say("STEP 2/4: remove node %s (127.0.0.1:%d) from the cluster", n->name,
      n->port);
  n->listed = false;
  ring_owners(g_before);
  int64_t change = real_ns();
  if (write_nodes() != 0) {
    fail("cannot write the node file");
    return false;
  }
  if (!follow_change(change, g_before))
    return false;
  stop_child(n->pid, SIGTERM);
  say("   memcached %s stopped: no worker routes to it any more", n->name);
  return true;
}

static bool step_kill(void) {
  say("STEP 3/4: kill the agent with SIGKILL (pid %d)", (int)g_agent);
  g_kill_gen = mcr_snapshot_generation(g_snap);
  stop_child(g_agent, SIGKILL);
  take_sample(&g_kill_sample);
  say("   agent gone; generation %" PRIu64
      " stays published and the workers keep routing by it",
      g_kill_gen);
  return true;
}

static bool step_restart(const conf_t* cf) {
  sample_t now;
  take_sample(&now);
  wsample_t a, b;
  totals(&g_kill_sample, &a);
  totals(&now, &b);
  bool stayed = true;
  for (int i = 0; i < g_nworkers; i++)
    stayed = stayed && now.w[i].gen == g_kill_gen;
  say("   while the agent was dead (%.1f s): %" PRIu64 " calls, %" PRIu64
      " errors, %s",
      now.t - g_kill_sample.t, b.ops - a.ops, b.errors - a.errors,
      stayed ? "every worker stayed on its ring" : "a generation changed!");
  if (!stayed || b.errors != a.errors)
    fail("the workers did not keep serving on the last ring");
  say("STEP 4/4: start the agent again");
  ring_owners(g_before);
  int64_t change = real_ns();
  if (start_agent(cf) != 0) {
    fail("cannot start mcring-agent");
    return false;
  }
  say("   mcring-agent started (pid %d); a new agent publishes its first "
      "ring under a new generation",
      (int)g_agent);
  return follow_change(change, g_before);
}

/* ---------------------------------------------------------------- main */

static void usage(FILE* f) {
  fprintf(f,
          "usage: demo --build-dir DIR [--duration SECONDS] [--workers N]\n"
          "            [--keys N] [--memcached PATH] [--agent PATH] "
          "[--fakecfg PATH]\n"
          "Runs the mcring demo: 3-4 memcached, the fake configuration "
          "endpoint,\n"
          "mcring-agent and a pre-forked master with N workers (default 8) "
          "while\n"
          "the cluster changes. DIR is the build directory (mcring-agent and\n"
          "tests/fakecfg are taken from it). Default duration 20 s.\n");
}

static void header(const conf_t* cf) {
  printf(
      "mcring demo: one agent, one shared ring, %d pre-forked workers, and a\n"
      "memcached cluster that changes under their traffic.\n"
      "\n"
      "  * 3 memcached nodes on loopback ports; a fake ElastiCache "
      "configuration\n"
      "    endpoint serving their list; mcring-agent polling it every 0.2 s "
      "and\n"
      "    publishing the Ketama ring as a read-only shared snapshot.\n"
      "  * A master opens the client on that ring (opts.ring_dir), uses it, "
      "then\n"
      "    forks %d workers like PHP-FPM does. Each worker does cache-aside\n"
      "    traffic on its own %d keys: get (set on a miss), get_multi of %d "
      "keys,\n"
      "    and sets of new versions. Every value holds its key and version "
      "and\n"
      "    every read is checked: anything but the value last written is "
      "wrong.\n"
      "  * Then the cluster changes: a 4th node is added, one node is "
      "removed,\n"
      "    and the agent is killed with SIGKILL and started again. For each "
      "change\n"
      "    you see the ring generation the agent published, how many keys "
      "moved,\n"
      "    when each worker switched to it (ms after the change) and each\n"
      "    worker's ops/s, hit rate, errors and wrong values. The hit rate "
      "climbs\n"
      "    as the cache warms up and dips when keys move to another node.\n"
      "\n"
      "Runs %.0f s (--duration for longer); Ctrl-C stops everything.\n"
      "\n",
      cf->workers, cf->workers, cf->keys, MULTI_KEYS, cf->duration);
  fflush(stdout);
}

static char g_paths[3][4096];

static int parse_args(int argc, char** argv, conf_t* cf) {
  static const struct option opts[] = {
      {"build-dir", required_argument, NULL, 'b'},
      {"duration", required_argument, NULL, 'd'},
      {"workers", required_argument, NULL, 'w'},
      {"keys", required_argument, NULL, 'k'},
      {"memcached", required_argument, NULL, 'm'},
      {"agent", required_argument, NULL, 'a'},
      {"fakecfg", required_argument, NULL, 'f'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  *cf = (conf_t){.memcached = "/usr/bin/memcached",
                 .duration = 20,
                 .workers = 8,
                 .keys = 20000};
  int c;
  char* end;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
      case 'b':
        cf->build_dir = optarg;
        break;
      case 'd':
        cf->duration = strtod(optarg, &end);
        if (*end || !(cf->duration >= 10 && cf->duration <= 86400)) {
          fprintf(stderr, "demo: --duration takes 10 to 86400 seconds\n");
          return 2;
        }
        break;
      case 'w':
        cf->workers = atoi(optarg);
        if (cf->workers < 1 || cf->workers > MAX_WORKERS) {
          fprintf(stderr, "demo: --workers takes 1 to %d\n", MAX_WORKERS);
          return 2;
        }
        break;
      case 'k':
        cf->keys = atoi(optarg);
        if (cf->keys < 1 || cf->keys > 10000000) {
          fprintf(stderr, "demo: --keys takes 1 to 10000000\n");
          return 2;
        }
        break;
      case 'm':
        cf->memcached = optarg;
        break;
      case 'a':
        cf->agent = optarg;
        break;
      case 'f':
        cf->fakecfg = optarg;
        break;
      case 'h':
        usage(stdout);
        exit(0);
      default:
        usage(stderr);
        return 2;
    }
  }
  if (optind != argc || (!cf->build_dir && (!cf->agent || !cf->fakecfg))) {
    usage(stderr);
    return 2;
  }
  if (!cf->agent) {
    snprintf(g_paths[0], sizeof g_paths[0], "%s/mcring-agent", cf->build_dir);
    cf->agent = g_paths[0];
  }
  if (!cf->fakecfg) {
    snprintf(g_paths[1], sizeof g_paths[1], "%s/tests/fakecfg", cf->build_dir);
    cf->fakecfg = g_paths[1];
  }
  const char* need[] = {cf->memcached, cf->agent, cf->fakecfg};
  for (int i = 0; i < 3; i++) {
    if (access(need[i], X_OK) != 0) {
      fprintf(stderr, "demo: %s: %s\n", need[i], strerror(errno));
      return 2;
    }
  }
  return 0;
}

/* Starts the cluster, the endpoint and the agent; opens the ring. */
static int setup(const conf_t* cf) {
  for (int i = 0; i < 3; i++) {
    if (start_memcached(cf, i) != 0)
      return -1;
    g_nodes[i].listed = true;
  }
  say("memcached mc1 127.0.0.1:%d, mc2 127.0.0.1:%d, mc3 127.0.0.1:%d",
      g_nodes[0].port, g_nodes[1].port, g_nodes[2].port);
  if (write_nodes() != 0 || start_fakecfg(cf) != 0)
    return -1;
  say("fake configuration endpoint %s serves the node list (%s/nodes)",
      g_endpoint, g_tmp);
  if (start_agent(cf) != 0)
    return -1;
  char ring[320], err[256] = "";
  snprintf(ring, sizeof ring, "%s/ring", g_tmp);
  double end = mono_s() + 5.0;
  while (mcr_snapshot_open(&g_snap, ring, NULL, err, sizeof err) != 0) {
    if (mono_s() > end || !alive(g_agent) || !nap(0.01)) {
      if (!g_interrupted) {
        fprintf(stderr, "demo: no ring published in %s: %s\n", ring, err);
        show_log_tail("agent.log");
      }
      return -1;
    }
  }
  char shares[256];
  ring_shares(shares, sizeof shares);
  say("mcring-agent (pid %d) published ring generation %" PRIu64 ": %s",
      (int)g_agent, mcr_snapshot_generation(g_snap), shares);
  return 0;
}

static void final_report(const sample_t* start, const sample_t* end,
                         int steps_done) {
  double dt = end->t - start->t;
  printf("\nSummary over %.1f s of traffic\n", dt);
  printf(
      "         worker    pid    calls    ops/s   hit%%  errors  wrong  "
      "ring errors\n");
  wsample_t t;
  totals(end, &t);
  uint64_t ring_errors = 0;
  for (int i = 0; i < g_nworkers; i++) {
    const wsample_t* y = &end->w[i];
    uint64_t re = LOAD(&g_shm->w[i].ring_errors);
    ring_errors += re;
    printf("         w%-3d  %7d  %7" PRIu64 "  %7.0f  %5.1f  %6" PRIu64
           "  %5" PRIu64 "  %11" PRIu64 "\n",
           i + 1, (int)LOAD(&g_shm->w[i].pid), y->ops - start->w[i].ops,
           (double)(y->ops - start->w[i].ops) / dt,
           pct(y->hits - start->w[i].hits, y->lookups - start->w[i].lookups),
           y->errors, y->wrong, re);
  }
  printf("         all   %7s  %7" PRIu64 "  %7.0f  %5.1f  %6" PRIu64
         "  %5" PRIu64 "  %11" PRIu64 "\n",
         "", t.ops, (double)t.ops / dt, pct(t.hits, t.lookups), t.errors,
         t.wrong, ring_errors);
  for (int i = 0; i < g_nworkers; i++)
    if (LOAD(&g_shm->w[i].note_set))
      printf("         w%d first problem: %s\n", i + 1, g_shm->w[i].note);
  printf("\nChecks\n");
  printf("  %-4s %" PRIu64 " wrong values among %" PRIu64
         " values read back and compared\n",
         t.wrong ? "FAIL" : "ok", t.wrong, t.hits + t.wrong);
  printf("  %-4s %" PRIu64 " errors in %" PRIu64 " calls\n",
         t.errors ? "FAIL" : "ok", t.errors, t.ops);
  if (steps_done == 4)
    printf(
        "  ok   4 of 4 cluster changes; every worker followed each new "
        "ring within %" PRId64 " ms of the change\n",
        g_slowest_ms);
  else
    printf("  FAIL %d of 4 cluster changes done\n", steps_done);
  printf("  %-4s %" PRIu64 " ring generations refused by the workers\n",
         ring_errors ? "FAIL" : "ok", ring_errors);
  if (t.wrong || t.errors || steps_done != 4 || ring_errors)
    g_failed = true;
  if (g_failed)
    show_log_tail("agent.log");
  fflush(stdout);
}

int main(int argc, char** argv) {
  conf_t cf;
  int rc = parse_args(argc, argv, &cf);
  if (rc)
    return rc;
  setvbuf(stdout, NULL, _IOLBF, 0);
  g_t0 = mono_s();
  g_master = getpid();
  g_nworkers = cf.workers;
  struct sigaction sa = {.sa_handler = on_signal};
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  const char* tmpdir = getenv("TMPDIR");
  snprintf(g_tmp, sizeof g_tmp, "%s/mcring-demo.XXXXXX",
           tmpdir && *tmpdir ? tmpdir : "/tmp");
  if (!mkdtemp(g_tmp)) {
    fprintf(stderr, "demo: mkdtemp %s: %s\n", g_tmp, strerror(errno));
    return 2;
  }
  atexit(cleanup);
  g_shm = mmap(NULL, sizeof *g_shm, PROT_READ | PROT_WRITE,
               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (g_shm == MAP_FAILED) {
    g_shm = NULL;
    fprintf(stderr, "demo: mmap: %s\n", strerror(errno));
    return 2;
  }
  header(&cf);

  if (setup(&cf) != 0) {
    cleanup();
    if (g_interrupted) {
      printf("\ninterrupted: every process stopped\n");
      return 130;
    }
    printf("\ndemo FAILED: setup\n");
    return 2;
  }

  /* Attach in the master and use the client once: its connections are
   * the master's, and each worker must open its own. */
  mcr_client_opts_t o;
  mcr_client_opts_init(&o);
  char ring[320], err[256] = "";
  snprintf(ring, sizeof ring, "%s/ring", g_tmp);
  o.ring_dir = ring;
  /* Generous timeouts: the workers saturate the CPUs on purpose, and on a
   * busy machine a memcached thread can wait long for its turn. */
  o.io_timeout_ms = 2000;
  o.connect_timeout_ms = 2000;
  mcr_client_t* c;
  if ((rc = mcr_client_new(&c, &o, err, sizeof err)) < 0) {
    fail("mcr_client_new: %s: %s", mcr_err_name(rc), err);
    cleanup();
    return 1;
  }
  for (int i = 0; i < 3; i++) {
    char key[32];
    int kl = snprintf(key, sizeof key, "demo:master:%d", i);
    if ((rc = mcr_client_set(c, key, (size_t)kl, "hello", 5, 0, 0, 0)) < 0) {
      fail("master set: %s: %s", mcr_err_name(rc), mcr_client_last_error(c));
      mcr_client_free(c);
      cleanup();
      return 1;
    }
  }
  say("master: client open on generation %" PRIu64
      " (%zu nodes) and used; forking %d workers",
      mcr_client_generation(c), mcr_client_node_count(c), cf.workers);
  for (int i = 0; i < cf.workers; i++) {
    g_switch_ms[i] = -1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
      fail("fork: %s", strerror(errno));
      break;
    }
    if (pid == 0) {
      child_setup();
      run_worker(i, c, cf.keys);
    }
    child_add(pid, K_WORKER, i);
  }

  sample_t first, prev, cur;
  take_sample(&first);
  prev = first;
  double t_traffic = mono_s();
  double at[4];
  at[0] = cf.duration * 0.2;
  at[1] = cf.duration * 0.45;
  at[2] = cf.duration * 0.7;
  at[3] = at[2] + (cf.duration * 0.1 > 2 ? cf.duration * 0.1 : 2);
  double next_tick = t_traffic + 1;
  int steps = 0;
  bool detail = false;
  while (!g_failed && !g_interrupted) {
    if (!nap(next_tick - mono_s()))
      break;
    if (!check_children())
      break;
    take_sample(&cur);
    if (detail)
      worker_table(&prev, &cur,
                   "per worker, ops/s and hit% over the second after the "
                   "switch:");
    else
      progress_line(&prev, &cur);
    detail = false;
    prev = cur;
    next_tick += 1;
    double t = mono_s() - t_traffic;
    if (steps == 4 && t >= cf.duration - 0.05)
      break;
    if (steps < 4 && t >= at[steps]) {
      bool ok = steps == 0   ? step_add(&cf)
                : steps == 1 ? step_remove()
                : steps == 2 ? step_kill()
                             : step_restart(&cf);
      if (!ok)
        break;
      steps++;
      detail = steps != 3;
      take_sample(&prev);
      next_tick = mono_s() + 1;
    }
  }

  take_sample(&cur);
  bool interrupted = g_interrupted != 0;
  if (!interrupted) {
    check_children();
    final_report(&first, &cur, steps);
  }
  mcr_client_free(c);
  cleanup();
  if (interrupted) {
    printf("\ninterrupted: every process stopped\n");
    return 130;
  }
  printf("\ndemo %s in %.1f s; every process it started is stopped\n",
         g_failed ? "FAILED" : "passed", mono_s() - g_t0);
  return g_failed ? 1 : 0;
}
