/* main.c — mcring-agent: options, configuration file, signals, poll loop.
 *
 * The agent is the one process per host that asks the cluster's
 * configuration source which nodes exist and publishes the Ketama ring for
 * every worker (see agent.h for the modules). This file is the daemon
 * around them:
 *
 *  - settings come from /etc/mcring/agent.conf (or --config PATH), one
 *    "key = value" per line with the long option names as keys, then from
 *    the command line, which wins; SIGHUP rebuilds them the same way and
 *    keeps the old ones when the new ones are invalid;
 *  - the loop polls, publishes when the node list changed, writes the
 *    status file, and sleeps the interval (or a jittered exponential
 *    backoff after failures) in sigtimedwait, so signals are handled
 *    synchronously between polls and never interrupt a publication;
 *  - a replaced ring file stays open in the agent a little while, so the
 *    agent, not a worker, pays for freeing it (publish.c);
 *  - every error keeps the last ring; a line is logged when the outcome
 *    changes, not on every poll;
 *  - foreground by default (systemd), --daemon forks away and its parent
 *    exits only once the child holds the ring directory's lock (and, with
 *    --wait-first, has published a ring), so the exit status of the start
 *    command tells whether the agent is running.
 *
 * Exit status: 0 clean exit or --once success; 1 discovery failed or the
 * reply was malformed (--once); 2 bad usage or configuration; 3 the ring
 * directory was refused, is locked by another agent, or publishing failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jemalloc/jemalloc.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "internal.h" /* mcr__ringdir_open */

#define DEFAULT_CONFIG "/etc/mcring/agent.conf"
#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)
#define DEFAULT_RUN_DIR "/run/mcring"
#define PATH_CAP 4096

enum { EXIT_DISCOVERY = 1, EXIT_USAGE = 2, EXIT_RINGDIR = 3 };

/* Every setting; copied by value, so strings are arrays. */
typedef struct {
  agent_src_kind_t kind;
  char source_arg[PATH_CAP];
  mcr_distribution_t mode;
  double interval;        /* seconds between good polls */
  double max_backoff;     /* longest delay after failures */
  double connect_timeout; /* seconds */
  double io_timeout;      /* seconds, whole exchange */
  char ring_dir[PATH_CAP];
  char name[128];
  char group[128];
  char pidfile[PATH_CAP];
  bool daemon, once, wait_first, use_syslog;
  agent_log_level_t log_level;
  unsigned stats_slots; /* slots of the host stats segment, 0 = none */
  /* TLS to the ElastiCache configuration endpoint (docs/tls.md). */
  bool tls, tls_insecure;
  char tls_ca[PATH_CAP], tls_cert[PATH_CAP], tls_key[PATH_CAP];
  char tls_name[256];
} conf_t;

static void conf_defaults(conf_t* c) {
  memset(c, 0, sizeof(*c));
  c->mode = MCR_DIST_KETAMA;
  c->interval = 5;
  c->max_backoff = 60;
  c->connect_timeout = 2;
  c->io_timeout = 5;
  snprintf(c->name, sizeof(c->name), "default");
  c->log_level = AGENT_LOG_INFO;
  c->stats_slots = 1024;
}

/* ---------------------------------------------------------------- options */

static const struct option long_opts[] = {
    {"config", required_argument, NULL, 'c'},
    {"elasticache", required_argument, NULL, 'e'},
    {"servers", required_argument, NULL, 's'},
    {"dns", required_argument, NULL, 'D'},
    {"file", required_argument, NULL, 'f'},
    {"distribution", required_argument, NULL, 'm'},
    {"interval", required_argument, NULL, 'i'},
    {"max-backoff", required_argument, NULL, 'B'},
    {"connect-timeout", required_argument, NULL, 'T'},
    {"io-timeout", required_argument, NULL, 't'},
    {"ring-dir", required_argument, NULL, 'r'},
    {"name", required_argument, NULL, 'n'},
    {"group", required_argument, NULL, 'g'},
    {"pidfile", required_argument, NULL, 'p'},
    {"daemon", no_argument, NULL, 'd'},
    {"syslog", no_argument, NULL, 'S'},
    {"log-level", required_argument, NULL, 'l'},
    {"once", no_argument, NULL, 'o'},
    {"wait-first", no_argument, NULL, 'w'},
    {"stats-slots", required_argument, NULL, 'K'},
    {"tls", no_argument, NULL, 'L'},
    {"tls-ca", required_argument, NULL, 'A'},
    {"tls-cert", required_argument, NULL, 'C'},
    {"tls-key", required_argument, NULL, 'Y'},
    {"tls-name", required_argument, NULL, 'N'},
    {"tls-insecure", no_argument, NULL, 'X'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0}};

static void usage(FILE* f) {
  fprintf(f,
          "usage: mcring-agent SOURCE [options]\n"
          "Discovers a memcached cluster and publishes its Ketama ring.\n"
          "\n"
          "Source (exactly one):\n"
          "  --elasticache HOST:PORT  ElastiCache configuration endpoint\n"
          "  --servers LIST           static host:port[:weight],...\n"
          "  --dns NAME[:PORT]        A/AAAA records, or SRV for "
          "_service._proto.name\n"
          "  --file PATH              host:port[:weight] per line, reread "
          "on change\n"
          "Options:\n"
          "  --config PATH            config file (default " DEFAULT_CONFIG
          ")\n"
          "  --distribution MODE      ketama (default), ketama-libmemcached,"
          " xxh3\n"
          "  --interval SEC           poll interval, decimals allowed "
          "(default 5)\n"
          "  --max-backoff SEC        longest delay after failures (default "
          "60)\n"
          "  --connect-timeout SEC    default 2\n"
          "  --io-timeout SEC         default 5\n"
          "  --ring-dir DIR           default " DEFAULT_RUN_DIR
          "/NAME\n"
          "  --name NAME              ring name (default \"default\")\n"
          "  --group GROUP            group owner of the ring files\n"
          "  --once                   poll and publish once, then exit\n"
          "  --wait-first             finish start-up only after the first "
          "ring\n"
          "  --daemon                 detach (default: foreground)\n"
          "  --pidfile PATH           write the pid there\n"
          "  --syslog                 log to syslog instead of stderr\n"
          "  --log-level LEVEL        error, warning, info (default), "
          "debug\n"
          "  --stats-slots N          client handles host stats can "
          "register\n"
          "                           (default 1024; 0: no host stats)\n"
          "TLS to the ElastiCache endpoint (in-transit encryption):\n"
          "  --tls                    connect with TLS, verifying the "
          "endpoint's\n"
          "                           certificate for its host name\n"
          "  --tls-ca FILE            trusted CAs (default: the system's)\n"
          "  --tls-cert FILE, --tls-key FILE   client certificate\n"
          "  --tls-name NAME          verify NAME instead of the host name\n"
          "  --tls-insecure           verify nothing (tests only)\n");
}

/* Parses a non-negative decimal number of seconds ("0.05", "5"). */
static int parse_seconds(const char* s, double min, double max, double* out) {
  char* end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !isfinite(v) || v < min || v > max)
    return -1;
  *out = v;
  return 0;
}

static int parse_bool(const char* s, bool* out) {
  if (!strcmp(s, "yes") || !strcmp(s, "true") || !strcmp(s, "1") ||
      !strcmp(s, "on")) {
    *out = true;
    return 0;
  }
  if (!strcmp(s, "no") || !strcmp(s, "false") || !strcmp(s, "0") ||
      !strcmp(s, "off")) {
    *out = false;
    return 0;
  }
  return -1;
}

static int set_str(char* dst, size_t cap, const char* v, const char* key,
                   char* err, size_t errlen) {
  if (strlen(v) >= cap) {
    snprintf(err, errlen, "%s: value too long", key);
    return -1;
  }
  snprintf(dst, cap, "%s", v);
  return 0;
}

/* Applies one setting (option letter `opt`, from --key or "key = value")
 * to c. Returns 0 or -1 with a message. */
static int apply(conf_t* c, int opt, const char* key, const char* v, char* err,
                 size_t errlen) {
  agent_src_kind_t kind = AGENT_SRC_NONE;
  bool b;
  switch (opt) {
    case 'e':
      kind = AGENT_SRC_ELASTICACHE;
      break;
    case 's':
      kind = AGENT_SRC_STATIC;
      break;
    case 'D':
      kind = AGENT_SRC_DNS;
      break;
    case 'f':
      kind = AGENT_SRC_FILE;
      break;
    case 'm':
      if (mcr_distribution_parse(v, &c->mode) != 0) {
        snprintf(err, errlen, "%s: unknown distribution \"%s\"", key, v);
        return -1;
      }
      return 0;
    case 'i':
      if (parse_seconds(v, 0.001, 86400, &c->interval) != 0) {
        snprintf(err, errlen, "%s: want seconds (0.001..86400), got \"%s\"",
                 key, v);
        return -1;
      }
      return 0;
    case 'K': {
      double slots;
      if (parse_seconds(v, 0, 65536, &slots) != 0 || slots != (unsigned)slots) {
        snprintf(err, errlen, "%s: want 0..65536 slots, got \"%s\"", key, v);
        return -1;
      }
      c->stats_slots = (unsigned)slots;
      return 0;
    }
    case 'B':
      if (parse_seconds(v, 0.001, 86400, &c->max_backoff) != 0) {
        snprintf(err, errlen, "%s: want seconds, got \"%s\"", key, v);
        return -1;
      }
      return 0;
    case 'T':
    case 't':
      if (parse_seconds(v, 0.001, 3600,
                        opt == 'T' ? &c->connect_timeout : &c->io_timeout)) {
        snprintf(err, errlen, "%s: want seconds (0.001..3600), got \"%s\"", key,
                 v);
        return -1;
      }
      return 0;
    case 'r':
      return set_str(c->ring_dir, sizeof(c->ring_dir), v, key, err, errlen);
    case 'A':
      return set_str(c->tls_ca, sizeof(c->tls_ca), v, key, err, errlen);
    case 'C':
      return set_str(c->tls_cert, sizeof(c->tls_cert), v, key, err, errlen);
    case 'Y':
      return set_str(c->tls_key, sizeof(c->tls_key), v, key, err, errlen);
    case 'N':
      return set_str(c->tls_name, sizeof(c->tls_name), v, key, err, errlen);
    case 'n':
      if (!*v || !strcmp(v, ".") || !strcmp(v, "..") ||
          strspn(v,
                 "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                 "0123456789._-") != strlen(v)) {
        snprintf(err, errlen,
                 "%s: \"%s\" is not a valid name "
                 "([A-Za-z0-9._-])",
                 key, v);
        return -1;
      }
      return set_str(c->name, sizeof(c->name), v, key, err, errlen);
    case 'g':
      return set_str(c->group, sizeof(c->group), v, key, err, errlen);
    case 'p':
      return set_str(c->pidfile, sizeof(c->pidfile), v, key, err, errlen);
    case 'l':
      if (agent_log_level_parse(v, &c->log_level) != 0) {
        snprintf(err, errlen, "%s: unknown level \"%s\"", key, v);
        return -1;
      }
      return 0;
    case 'd':
    case 'S':
    case 'o':
    case 'w':
    case 'L':
    case 'X':
      if (!v) {
        b = true;
      } else if (parse_bool(v, &b) != 0) {
        snprintf(err, errlen, "%s: want yes or no, got \"%s\"", key, v);
        return -1;
      }
      if (opt == 'd')
        c->daemon = b;
      if (opt == 'S')
        c->use_syslog = b;
      if (opt == 'o')
        c->once = b;
      if (opt == 'w')
        c->wait_first = b;
      if (opt == 'L')
        c->tls = b;
      if (opt == 'X')
        c->tls_insecure = b;
      return 0;
    default:
      snprintf(err, errlen, "unknown setting \"%s\"", key);
      return -1;
  }
  /* A source. The last one given wins within one layer; the command line
   * replaces the file's source. */
  if (!*v) {
    snprintf(err, errlen, "%s: empty value", key);
    return -1;
  }
  c->kind = kind;
  return set_str(c->source_arg, sizeof(c->source_arg), v, key, err, errlen);
}

/* Reads the config file into c. A missing file is fine when it is the
 * default one (required = false). Returns 0 or -1 with a message. */
static int read_config_file(conf_t* c, const char* path, bool required,
                            char* err, size_t errlen) {
  FILE* f = fopen(path, "re");
  if (!f) {
    if (!required && errno == ENOENT)
      return 0;
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return -1;
  }
  char line[PATH_CAP + 128];
  int lineno = 0, rc = 0;
  while (!rc && fgets(line, sizeof(line), f)) {
    lineno++;
    char* hash = strchr(line, '#');
    if (hash)
      *hash = '\0';
    char* s = line;
    while (*s == ' ' || *s == '\t')
      s++;
    char* e = s + strlen(s);
    while (e > s &&
           (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
      *--e = '\0';
    if (!*s)
      continue;
    char* eq = strchr(s, '=');
    if (!eq) {
      snprintf(err, errlen, "%s:%d: want \"key = value\"", path, lineno);
      rc = -1;
      break;
    }
    char* ke = eq;
    while (ke > s && (ke[-1] == ' ' || ke[-1] == '\t'))
      ke--;
    *ke = '\0';
    char* v = eq + 1;
    while (*v == ' ' || *v == '\t')
      v++;
    int opt = 0;
    for (const struct option* o = long_opts; o->name; o++)
      if (!strcmp(o->name, s))
        opt = o->val;
    if (opt == 'c' || opt == 'h' || opt == 'V')
      opt = 0;
    char e2[300];
    if (apply(c, opt, s, v, e2, sizeof(e2)) != 0) {
      snprintf(err, errlen, "%s:%d: %s", path, lineno, e2);
      rc = -1;
    }
  }
  fclose(f);
  return rc;
}

/* Builds the settings: defaults, then the config file, then argv. Returns
 * 0, or -1 with a message, or 1 when --help / --version was handled. */
static int load_conf(conf_t* c, int argc, char** argv, char* err,
                     size_t errlen) {
  conf_defaults(c);
  /* Pass 1: find --config. */
  const char* cfg = NULL;
  optind = 1;
  opterr = 0;
  int opt;
  while ((opt = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
    if (opt == 'c')
      cfg = optarg;
    if (opt == 'h') {
      usage(stdout);
      return 1;
    }
    if (opt == 'V') {
      printf("mcring-agent %d.%d.%d\n", MCR_VERSION_MAJOR, MCR_VERSION_MINOR,
             MCR_VERSION_PATCH);
      return 1;
    }
    if (opt == '?') {
      snprintf(err, errlen, "unknown or incomplete option \"%s\"",
               argv[optind - 1]);
      return -1;
    }
  }
  if (optind < argc) {
    snprintf(err, errlen, "unexpected argument \"%s\"", argv[optind]);
    return -1;
  }
  if (read_config_file(c, cfg ? cfg : DEFAULT_CONFIG, cfg != NULL, err,
                       errlen) != 0)
    return -1;
  /* Pass 2: the command line over the file. */
  optind = 1;
  int nsrc = 0;
  while ((opt = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
    if (opt == 'c')
      continue;
    if (opt == 'e' || opt == 's' || opt == 'D' || opt == 'f')
      nsrc++;
    const char* key = argv[optind - 1];
    if (apply(c, opt, key, optarg, err, errlen) != 0)
      return -1;
  }
  if (nsrc > 1) {
    snprintf(err, errlen,
             "give one source: --elasticache, --servers, --dns "
             "or --file");
    return -1;
  }
  if (c->kind == AGENT_SRC_NONE) {
    snprintf(err, errlen,
             "no source: give --elasticache, --servers, --dns "
             "or --file (or set one in the config file)");
    return -1;
  }
  if (!c->ring_dir[0] &&
      snprintf(c->ring_dir, sizeof(c->ring_dir), DEFAULT_RUN_DIR "/%s",
               c->name) >= (int)sizeof(c->ring_dir)) {
    snprintf(err, errlen, "ring directory path too long");
    return -1;
  }
  if (c->max_backoff < c->interval)
    c->max_backoff = c->interval;
  if ((c->tls || c->tls_ca[0] || c->tls_cert[0] || c->tls_key[0] ||
       c->tls_name[0] || c->tls_insecure) &&
      c->kind != AGENT_SRC_ELASTICACHE) {
    snprintf(err, errlen, "the tls settings apply to --elasticache only");
    return -1;
  }
  if (!c->tls && (c->tls_ca[0] || c->tls_cert[0] || c->tls_key[0] ||
                  c->tls_name[0] || c->tls_insecure)) {
    snprintf(err, errlen,
             "tls-ca, tls-cert, tls-key, tls-name and tls-insecure need tls "
             "(--tls, or tls = yes): without it the endpoint is polled in "
             "clear");
    return -1;
  }
  return 0;
}

/* The TLS context of the endpoint polls for c (NULL without tls). Returns
 * 0 or a negative error with a message (a CA, certificate or key that
 * cannot be used). */
static int tls_from_conf(const conf_t* c, mcr__tls_t** out, char* err,
                         size_t errlen) {
  *out = NULL;
  if (!c->tls)
    return 0;
  mcr_tls_opts_t o = {.enable = 1,
                      .ca_file = c->tls_ca[0] ? c->tls_ca : NULL,
                      .cert_file = c->tls_cert[0] ? c->tls_cert : NULL,
                      .key_file = c->tls_key[0] ? c->tls_key : NULL,
                      .server_name = c->tls_name[0] ? c->tls_name : NULL,
                      .insecure = c->tls_insecure};
  return mcr__tls_new(out, &o, err, errlen);
}

/* ---------------------------------------------------------------- process */

/* Writes the pid file atomically (temp + rename, no symlink following). */
static int write_pidfile(const char* path) {
  char tmp[PATH_CAP + 32];
  snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
  int fd =
      open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0)
    return -1;
  char b[32];
  int n = snprintf(b, sizeof(b), "%ld\n", (long)getpid());
  bool ok = write(fd, b, (size_t)n) == n;
  close(fd);
  if (!ok || rename(tmp, path) != 0) {
    unlink(tmp);
    return -1;
  }
  return 0;
}

/* Detaches: fork, setsid, fork. The original process waits on a pipe for
 * the daemon's start-up verdict ('R' ready, else failure) and exits with
 * it. Returns the write end of that pipe in the daemon. */
static int daemonize(void) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) {
    agent_log(AGENT_LOG_ERROR, "pipe: %s", strerror(errno));
    exit(EXIT_RINGDIR);
  }
  pid_t pid = fork();
  if (pid < 0) {
    agent_log(AGENT_LOG_ERROR, "fork: %s", strerror(errno));
    exit(EXIT_RINGDIR);
  }
  if (pid > 0) {
    close(p[1]);
    char v = 0;
    ssize_t n;
    do {
      n = read(p[0], &v, 1);
    } while (n < 0 && errno == EINTR);
    _exit(n == 1 && v == 'R' ? 0 : n == 1 ? v - '0' : EXIT_RINGDIR);
  }
  close(p[0]);
  setsid();
  pid = fork();
  if (pid < 0)
    _exit(EXIT_RINGDIR);
  if (pid > 0)
    _exit(0);
  if (chdir("/") != 0) { /* keep going: nothing depends on the cwd */
  }
  umask(027);
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null >= 0) {
    dup2(null, 0);
    dup2(null, 1);
    close(null);
  }
  return p[1];
}

/* Tells the waiting parent (if any) how start-up went, once. */
static void report_start(int* fd, char verdict) {
  if (*fd < 0)
    return;
  if (write(*fd, &verdict, 1) != 1) { /* parent gone: nothing to do */
  }
  close(*fd);
  *fd = -1;
}

/* ---------------------------------------------------------------- loop */

static uint64_t rng_state;

/* Uniform double in [0, 1) from xorshift64*; jitter only, not crypto. */
static double rnd(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (double)((rng_state * 2685821657736338717ull) >> 11) /
         9007199254740992.0;
}

/* Delay before the next poll: the interval +-10% after a good poll; after
 * `failures` bad ones, interval * 2^failures capped at max_backoff, then
 * scaled by a random factor in [0.5, 1) so that hosts that failed together
 * do not retry together. */
static double next_delay(const conf_t* c, unsigned failures) {
  if (failures == 0)
    return c->interval * (0.9 + 0.2 * rnd());
  double d = c->interval * ldexp(1.0, failures > 30 ? 30 : (int)failures);
  if (d > c->max_backoff)
    d = c->max_backoff;
  return d * (0.5 + 0.5 * rnd());
}

static int64_t realtime_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void source_from_conf(agent_source_t* s, const conf_t* c) {
  agent_source_reset(s);
  s->kind = c->kind;
  s->arg = (char*)c->source_arg;
  s->connect_timeout_ms = (int)(c->connect_timeout * 1000 + 0.5);
  s->io_timeout_ms = (int)(c->io_timeout * 1000 + 0.5);
}

/* Returns the agent's free memory to the system now, instead of after
 * jemalloc's decay time (which an idle agent may never reach). */
static void release_memory(void) {
  mallctl("arena." STRINGIFY(MALLCTL_ARENAS_ALL) ".purge", NULL, NULL, NULL, 0);
}

/* What the loop remembers between polls for logging once per change. */
typedef struct {
  unsigned failures;
  int last_rc;
  char last_msg[512];
  int64_t last_ok_ms;
  bool ever_polled;
  bool have_version;
  uint64_t version;
  size_t nodes;
} loop_state_t;

/* One poll: discover, publish when the list changed, log changes of
 * state, write the status file. Returns 0 or the poll's negative error;
 * *publish_failed tells a failure of the ring directory (exit status 3 for
 * --once) from a failure of discovery (status 1). */
static int poll_once(const conf_t* c, agent_source_t* src, agent_pub_t* pub,
                     mcr__nodes_t* nodes, loop_state_t* ls,
                     bool* publish_failed) {
  char err[512] = "";
  *publish_failed = false;
  agent_pub_release(pub, mcr__now_ms());
  int rc = agent_source_poll(src, nodes, err, sizeof(err));
  int64_t now = realtime_ms();
  if (!rc) {
    bool published = false;
    uint64_t gen = 0;
    rc = agent_pub_apply(pub, c->mode, nodes, &published, &gen, err,
                         sizeof(err));
    if (rc) {
      *publish_failed = true;
    } else {
      char ver[40] = "";
      if (nodes->has_version)
        snprintf(ver, sizeof(ver), ", config version %" PRIu64, nodes->version);
      if (published)
        agent_log(AGENT_LOG_INFO,
                  "published generation %" PRIu64 ": %zu nodes%s", gen,
                  nodes->n, ver);
      if (!published)
        agent_log(AGENT_LOG_DEBUG, "poll: %zu nodes, unchanged", nodes->n);
      ls->have_version = nodes->has_version;
      ls->version = nodes->version;
      ls->nodes = nodes->n;
    }
  }
  if (rc) {
    /* A refused reply may have grown the list (up to MCR__NODES_MAX
     * entries) and the heap: give both back before the next poll. */
    mcr__nodes_trim(nodes);
    release_memory();
    /* --once reports the failure itself, on stderr, as it exits. */
    if (!c->once &&
        (!ls->ever_polled || ls->last_rc != rc || strcmp(ls->last_msg, err)))
      agent_log(AGENT_LOG_ERROR, "%s %s: %s (%s); keeping the last ring",
                agent_src_name(c->kind), c->source_arg, err, mcr_err_name(rc));
    ls->failures++;
    snprintf(ls->last_msg, sizeof(ls->last_msg), "%s", err);
  } else {
    if (ls->ever_polled && ls->last_rc != 0)
      agent_log(AGENT_LOG_INFO, "%s %s: recovered after %u failed polls",
                agent_src_name(c->kind), c->source_arg, ls->failures);
    ls->failures = 0;
    ls->last_ok_ms = now;
    ls->last_msg[0] = '\0';
  }
  ls->last_rc = rc;
  ls->ever_polled = true;
  char srcdesc[PATH_CAP + 32];
  snprintf(srcdesc, sizeof(srcdesc), "%s %s%s", agent_src_name(c->kind),
           c->source_arg,
           c->kind == AGENT_SRC_ELASTICACHE && src->ec_legacy && !rc
               ? " (legacy get)"
               : "");
  agent_status_t st = {.source = srcdesc,
                       .poll_time_ms = now,
                       .rc = rc,
                       .message = ls->last_msg,
                       .has_version = ls->have_version,
                       .version = ls->version,
                       .nodes = ls->nodes,
                       .last_ok_ms = ls->last_ok_ms,
                       .failures = ls->failures};
  char serr[300];
  if (agent_pub_status(pub, &st, serr, sizeof(serr)) != 0)
    agent_log(AGENT_LOG_WARNING, "status file: %s", serr);
  return rc;
}

/* Rebuilds the settings on SIGHUP; keeps the old ones on any error. */
static void reload(conf_t* c, int argc, char** argv, agent_source_t* src) {
  conf_t n;
  char err[512];
  int rc = load_conf(&n, argc, argv, err, sizeof(err));
  if (rc != 0) {
    agent_log(AGENT_LOG_ERROR, "reload: %s; keeping the current settings",
              rc < 0 ? err : "nothing to do");
    return;
  }
  if (strcmp(n.ring_dir, c->ring_dir) || strcmp(n.group, c->group) ||
      n.daemon != c->daemon || strcmp(n.pidfile, c->pidfile))
    agent_log(AGENT_LOG_WARNING,
              "reload: ring-dir, name, group, daemon and pidfile changes "
              "take effect at the next restart");
  strcpy(n.ring_dir, c->ring_dir);
  strcpy(n.group, c->group);
  strcpy(n.pidfile, c->pidfile);
  n.daemon = c->daemon;
  n.once = c->once;
  n.wait_first = c->wait_first;
  mcr__tls_t* tls;
  if (tls_from_conf(&n, &tls, err, sizeof(err)) != 0) {
    agent_log(AGENT_LOG_ERROR, "reload: %s; keeping the current settings", err);
    return;
  }
  bool src_changed =
      n.kind != c->kind || strcmp(n.source_arg, c->source_arg) != 0;
  *c = n;
  mcr__tls_free(src->tls);
  src->tls = tls;
  agent_log_init(c->use_syslog, c->log_level);
  /* src->arg points into c, which now holds the new text. */
  if (src_changed) {
    source_from_conf(src, c);
  } else {
    src->connect_timeout_ms = (int)(c->connect_timeout * 1000 + 0.5);
    src->io_timeout_ms = (int)(c->io_timeout * 1000 + 0.5);
  }
  agent_log(AGENT_LOG_INFO,
            "reloaded: source %s %s, distribution %s, "
            "interval %gs",
            agent_src_name(c->kind), c->source_arg,
            mcr_distribution_name(c->mode), c->interval);
}

int main(int argc, char** argv) {
  static conf_t conf; /* large: keep it off the stack */
  char err[512];
  int rc = load_conf(&conf, argc, argv, err, sizeof(err));
  if (rc > 0)
    return 0;
  if (rc < 0) {
    fprintf(stderr, "mcring-agent: %s\n(try --help)\n", err);
    return EXIT_USAGE;
  }
  agent_log_init(conf.use_syslog, conf.log_level);
  rng_state = ((uint64_t)getpid() << 32) ^ (uint64_t)realtime_ms() ^
              0x9e3779b97f4a7c15ull;
  if (rng_state == 0)
    rng_state = 1;

  /* Signals are blocked for good and taken synchronously in sigtimedwait
   * between polls, so a publication is never interrupted half-way. */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGHUP);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigprocmask(SIG_BLOCK, &sigs, NULL);
  signal(SIGPIPE, SIG_IGN);

  int start_fd = -1;
  if (conf.daemon && !conf.once) {
    start_fd = daemonize();
    if (conf.use_syslog) {
      int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
      if (null >= 0) {
        dup2(null, 2);
        close(null);
      }
    }
  }

  /* The parent of the ring directory (/run/mcring) may not exist yet. */
  char parent[PATH_CAP];
  snprintf(parent, sizeof(parent), "%s", conf.ring_dir);
  char* slash = strrchr(parent, '/');
  if (slash && slash != parent) {
    *slash = '\0';
    if (mkdir(parent, 0755) != 0 && errno != EEXIST)
      agent_log(AGENT_LOG_WARNING, "mkdir %s: %s", parent, strerror(errno));
  }
  agent_pub_t* pub = NULL;
  rc = agent_pub_open(&pub, conf.ring_dir, conf.group[0] ? conf.group : NULL,
                      err, sizeof(err));
  if (rc) {
    agent_log(AGENT_LOG_ERROR, "ring directory %s: %s", conf.ring_dir, err);
    report_start(&start_fd, '0' + EXIT_RINGDIR);
    return EXIT_RINGDIR;
  }
  /* Readers judge the directory by who could have made it (ringdir.c):
   * say so now rather than leave every worker to refuse it. */
  uid_t owner;
  int tfd = mcr__ringdir_open(conf.ring_dir, -1, &owner, err, sizeof(err));
  if (tfd >= 0)
    close(tfd);
  else if (tfd == MCR_EPERM)
    agent_log(AGENT_LOG_WARNING,
              "workers will refuse this ring directory unless they name "
              "uid %u as its owner: %s",
              (unsigned)geteuid(), err);
  /* The registry of the workers' counter segments (mcring stat). Without
   * it workers keep their counters private, so a failure is only a
   * warning. */
  mcr_hoststats_server_t* stats = NULL;
  if (conf.stats_slots && !conf.once &&
      mcr_hoststats_serve(&stats, conf.ring_dir, conf.stats_slots, err,
                          sizeof(err)) != 0)
    agent_log(AGENT_LOG_WARNING, "host stats: %s", err);
  if (!conf.once)
    agent_log(AGENT_LOG_INFO,
              "started: source %s %s, ring %s (%s), generation %" PRIu64
              ", interval %gs",
              agent_src_name(conf.kind), conf.source_arg, conf.ring_dir,
              mcr_distribution_name(conf.mode), agent_pub_generation(pub),
              conf.interval);

  agent_source_t src = {0};
  source_from_conf(&src, &conf);
  if (tls_from_conf(&conf, &src.tls, err, sizeof(err)) != 0) {
    fprintf(stderr, "mcring-agent: %s\n", err);
    agent_pub_close(pub);
    mcr_hoststats_server_free(stats);
    return EXIT_USAGE;
  }
  mcr__nodes_t nodes = {0};
  loop_state_t ls = {0};
  bool started = false;
  int exit_code = 0;

  for (;;) {
    bool pub_failed = false;
    rc = poll_once(&conf, &src, pub, &nodes, &ls, &pub_failed);
    if (conf.once) {
      if (rc) {
        fprintf(stderr,
                "mcring-agent: %s %s: %s (%s); ring directory left "
                "unchanged\n",
                agent_src_name(conf.kind), conf.source_arg, ls.last_msg,
                mcr_err_name(rc));
        exit_code = pub_failed ? EXIT_RINGDIR : EXIT_DISCOVERY;
      }
      break;
    }
    if (!started && (!conf.wait_first || rc == 0)) {
      started = true;
      if (conf.pidfile[0] && write_pidfile(conf.pidfile) != 0)
        agent_log(AGENT_LOG_WARNING, "pidfile %s: %s", conf.pidfile,
                  strerror(errno));
      report_start(&start_fd, 'R');
    }
    double d = next_delay(&conf, ls.failures);
    struct timespec ts = {.tv_sec = (time_t)d,
                          .tv_nsec = (long)((d - floor(d)) * 1e9)};
    int sig = sigtimedwait(&sigs, NULL, &ts);
    if (sig == SIGTERM || sig == SIGINT) {
      agent_log(
          AGENT_LOG_INFO, "%s: exiting; generation %" PRIu64 " stays published",
          sig == SIGTERM ? "SIGTERM" : "SIGINT", agent_pub_generation(pub));
      break;
    }
    if (sig == SIGHUP)
      reload(&conf, argc, argv, &src);
  }
  if (started && conf.pidfile[0])
    unlink(conf.pidfile);
  report_start(&start_fd, '0' + EXIT_RINGDIR);
  agent_source_reset(&src);
  mcr__tls_free(src.tls);
  mcr__nodes_free(&nodes);
  mcr_hoststats_server_free(stats);
  agent_pub_close(pub);
  return exit_code;
}
