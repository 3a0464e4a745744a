/* mcring.c — the `mcring` command-line tool.
 *
 * A thin shell over libmcring for operators and scripts, in the spirit of
 * libmemcached-tools but one binary with subcommands:
 *
 *   mcring [--servers LIST | --ring-dir DIR | --elasticache HOST:PORT]
 *          COMMAND [ARGS]
 *
 * Every classic memcached command has a subcommand (get, gets, set, add,
 * replace, append, prepend, cas, delete, incr, decr, touch, stats,
 * flush_all, version), plus `locate` and `ring` for routing, `watch`,
 * which follows the ring mcring-agent publishes, and `stat`, which adds up
 * the host-wide counters every worker keeps in the agent's stats segment
 * (text, live like varnishstat, JSON or Prometheus). Options may come before or
 * after the command (GNU getopt permutation); `mcring COMMAND --help`
 * describes one command. Exit status is the contract scripts rely on: 0 hit
 * or success, 1 miss / not stored / exists / not found, 2 error with one
 * line on stderr. A single value is written to stdout as raw bytes with no
 * newline added, so `mcring get k > file` round-trips
 * `mcring set k - < file`. The tool only formats: every check of keys,
 * values and numbers the server would refuse is the library's.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

int die(const char* what, const char* detail) {
  fprintf(stderr, "mcring: %s%s%s\n", what, detail && *detail ? ": " : "",
          detail ? detail : "");
  return EXIT_ERR;
}

/* Maps a library result to the exit status, printing errors: MCR_OK is 0,
 * any other outcome (miss, not stored, exists, not found) 1. */
static int outcome(mcr_client_t* c, int rc) {
  if (rc < 0) {
    const char* detail = mcr_client_last_error(c);
    fprintf(stderr, "mcring: %s%s%s\n", mcr_strerror(rc), *detail ? ": " : "",
            detail);
    return EXIT_ERR;
  }
  return rc == MCR_OK ? EXIT_HIT : EXIT_MISS;
}

/* Outcome of a write that had nothing to print: a refused write also says
 * why on stderr, so `mcring add k v` that exits 1 is not silent. */
static int write_outcome(mcr_client_t* c, const char* key, int rc) {
  if (rc > 0)
    fprintf(stderr, "mcring: %s: %s\n", key, mcr_status_name(rc));
  return outcome(c, rc);
}

/* Decimal digits only, at most 20 of them, with an overflow check; no sign,
 * no space, no base prefix. Returns 0, or -1 when `s` is not a number in
 * 0..max. */
static int parse_u64(const char* s, uint64_t max, uint64_t* out) {
  size_t len = strnlen(s, 21);
  if (len == 0 || len > 20)
    return -1;
  uint64_t v = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    unsigned d = (unsigned)(s[i] - '0');
    if (v > (UINT64_MAX - d) / 10)
      return -1;
    v = v * 10 + d;
  }
  if (v > max)
    return -1;
  *out = v;
  return 0;
}

/* An optional '-' then parse_u64's rules, within int64_t. */
static int parse_i64(const char* s, int64_t* out) {
  bool neg = *s == '-';
  uint64_t v;
  if (parse_u64(s + neg, neg ? (uint64_t)INT64_MAX + 1 : INT64_MAX, &v))
    return -1;
  *out = neg ? (int64_t)(0 - v) : (int64_t)v;
  return 0;
}

int need_args(int argc, int min, int max, const char* usage) {
  if (argc >= min && argc <= max)
    return 0;
  fprintf(stderr, "mcring: usage: mcring %s\n", usage);
  return -1;
}

/* Reads all of stdin into a malloc'ed buffer. */
static char* read_stdin(size_t* len) {
  size_t cap = 65536, n = 0;
  char* buf = malloc(cap);
  if (!buf)
    return NULL;
  for (;;) {
    if (n == cap) {
      char* nb = realloc(buf, cap *= 2);
      if (!nb) {
        free(buf);
        return NULL;
      }
      buf = nb;
    }
    ssize_t r = read(0, buf + n, cap - n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      free(buf);
      return NULL;
    }
    if (r == 0)
      break;
    n += (size_t)r;
  }
  *len = n;
  return buf;
}

/* The value argument: the bytes given, or all of stdin for "-". *buf gets
 * what the caller frees. Returns 0, or -1 after printing the error. */
static int value_arg(const char* arg, const char** value, size_t* len,
                     char** buf) {
  *buf = NULL;
  if (strcmp(arg, "-") != 0) {
    *value = arg;
    *len = strlen(arg);
    return 0;
  }
  *buf = read_stdin(len);
  if (!*buf) {
    die("cannot read stdin", strerror(errno));
    return -1;
  }
  *value = *buf;
  return 0;
}

static int write_all(const char* p, size_t len) {
  while (len) {
    ssize_t w = write(1, p, len);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return -1;
    p += w;
    len -= (size_t)w;
  }
  return 0;
}

static unsigned cflags_of(const cli_t* cli) {
  return cli->noreply ? MCR_CALL_NOREPLY : 0;
}

/* ---------------------------------------------------------------- reads */

/* For a multi-key call on the keys argv[0..n): their lengths, and a
 * zeroed result array of n elements of `size` bytes. -1 when out of
 * memory (nothing allocated then). */
static int key_arrays(size_t n, char** argv, size_t** lens, void** per_key,
                      size_t size) {
  *lens = calloc(n, sizeof(**lens));
  *per_key = calloc(n, size);
  if (!*lens || !*per_key) {
    free(*lens);
    free(*per_key);
    return -1;
  }
  for (size_t i = 0; i < n; i++)
    (*lens)[i] = strlen(argv[i]);
  return 0;
}

/* get / gets. get with one key writes the raw value. Otherwise one
 * multi-get and a line per hit in the order asked: "KEY VALUE" (get) or
 * "KEY CAS VALUE" (gets); misses print nothing. Exit 1 when any key
 * missed, 2 when any key failed. */
static int cmd_get(cli_t* cli, mcr_client_t* c, int argc, char** argv) {
  if (need_args(argc, 1, 1000000, cli->synopsis))
    return EXIT_ERR;
  bool cas = strcmp(cli->name, "gets") == 0;
  if (!cas && argc == 1) {
    mcr_item_t it;
    int rc = mcr_client_get(c, argv[0], strlen(argv[0]), &it);
    if (rc == MCR_OK && write_all(it.value, it.value_len))
      return die("cannot write to stdout", strerror(errno));
    return outcome(c, rc);
  }
  size_t n = (size_t)argc;
  size_t* lens;
  mcr_item_t* items;
  if (key_arrays(n, argv, &lens, (void**)&items, sizeof(*items)))
    return die("out of memory", "");
  const char* const* keys = (const char* const*)argv;
  int rc = cas ? mcr_client_gets_multi(c, n, keys, lens, items, NULL)
               : mcr_client_get_multi(c, n, keys, lens, items, NULL);
  int status = rc < 0 ? outcome(c, rc) : EXIT_HIT;
  for (size_t i = 0; rc >= 0 && i < n; i++) {
    if (items[i].status == MCR_OK) {
      char cas_text[32];
      int cl =
          snprintf(cas_text, sizeof cas_text, " %" PRIu64 " ", items[i].cas);
      if (write_all(argv[i], lens[i]) ||
          (cas ? write_all(cas_text, (size_t)cl) : write_all(" ", 1)) ||
          write_all(items[i].value, items[i].value_len) || write_all("\n", 1))
        status = die("cannot write to stdout", strerror(errno));
    } else if (items[i].status == MCR_MISS) {
      if (status == EXIT_HIT)
        status = EXIT_MISS;
    } else {
      fprintf(stderr, "mcring: %s: %s\n", argv[i],
              mcr_strerror(items[i].status));
      status = EXIT_ERR;
    }
  }
  free(lens);
  free(items);
  return status;
}

/* ---------------------------------------------------------------- writes */

typedef int (*store_fn)(mcr_client_t* c, const char* key, size_t key_len,
                        const void* value, size_t value_len, uint32_t flags,
                        int64_t ttl, unsigned cflags);

/* set / add / replace KEY VALUE|- */
static int cmd_store(cli_t* cli, mcr_client_t* c, int argc, char** argv) {
  if (need_args(argc, 2, 2, cli->synopsis))
    return EXIT_ERR;
  store_fn fn = strcmp(cli->name, "add") == 0       ? mcr_client_add
                : strcmp(cli->name, "replace") == 0 ? mcr_client_replace
                                                    : mcr_client_set;
  const char* value;
  size_t len;
  char* buf;
  if (value_arg(argv[1], &value, &len, &buf))
    return EXIT_ERR;
  int rc = fn(c, argv[0], strlen(argv[0]), value, len, cli->flags, cli->ttl,
              cflags_of(cli));
  free(buf);
  return write_outcome(c, argv[0], rc);
}

/* append / prepend KEY VALUE|-: neither flags nor a TTL. */
static int cmd_concat(cli_t* cli, mcr_client_t* c, int argc, char** argv) {
  if (need_args(argc, 2, 2, cli->synopsis))
    return EXIT_ERR;
  bool append = strcmp(cli->name, "append") == 0;
  const char* value;
  size_t len;
  char* buf;
  if (value_arg(argv[1], &value, &len, &buf))
    return EXIT_ERR;
  size_t klen = strlen(argv[0]);
  int rc =
      append ? mcr_client_append(c, argv[0], klen, value, len, cflags_of(cli))
             : mcr_client_prepend(c, argv[0], klen, value, len, cflags_of(cli));
  free(buf);
  return write_outcome(c, argv[0], rc);
}

static int cmd_cas(cli_t* cli, mcr_client_t* c, int argc, char** argv) {
  if (need_args(argc, 3, 3, "cas KEY CAS VALUE|-"))
    return EXIT_ERR;
  uint64_t cas;
  if (parse_u64(argv[1], UINT64_MAX, &cas))
    return die("CAS wants a number (from mcring gets)", argv[1]);
  const char* value;
  size_t len;
  char* buf;
  if (value_arg(argv[2], &value, &len, &buf))
    return EXIT_ERR;
  int rc = mcr_client_cas(c, argv[0], strlen(argv[0]), value, len, cli->flags,
                          cli->ttl, cas, cflags_of(cli));
  free(buf);
  return write_outcome(c, argv[0], rc);
}

/* delete KEY: one delete. Several keys: one delete per node for all of
 * them; exit 1 when any was not found, 2 when any failed. */
static int cmd_delete(cli_t* cli, mcr_client_t* c, int argc, char** argv) {
  if (need_args(argc, 1, 1000000, "delete KEY [KEY...]"))
    return EXIT_ERR;
  if (argc == 1)
    return write_outcome(
        c, argv[0],
        mcr_client_delete(c, argv[0], strlen(argv[0]), cflags_of(cli)));
  size_t n = (size_t)argc;
  size_t* lens;
  int* statuses;
  if (key_arrays(n, argv, &lens, (void**)&statuses, sizeof(*statuses)))
    return die("out of memory", "");
  int rc = mcr_client_delete_multi(c, n, (const char* const*)argv, lens,
                                   statuses, cflags_of(cli), NULL);
  int status = rc < 0 ? outcome(c, rc) : EXIT_HIT;
  for (size_t i = 0; rc >= 0 && i < n; i++) {
    if (statuses[i] == MCR_OK)
      continue;
    if (statuses[i] > 0) {
      fprintf(stderr, "mcring: %s: %s\n", argv[i],
              mcr_status_name(statuses[i]));
      if (status == EXIT_HIT)
        status = EXIT_MISS;
    } else {
      fprintf(stderr, "mcring: %s: %s\n", argv[i], mcr_strerror(statuses[i]));
      status = EXIT_ERR;
    }
  }
  free(lens);
  free(statuses);
  return status;
}

/* incr / decr KEY [DELTA]: prints the new value (nothing with --noreply). */
static int cmd_arith(cli_t* cli, mcr_client_t* c, int argc, char** argv) {
  if (need_args(argc, 1, 2, cli->synopsis))
    return EXIT_ERR;
  bool incr = strcmp(cli->name, "incr") == 0;
  uint64_t delta = 1, value = 0;
  if (argc == 2 && parse_u64(argv[1], UINT64_MAX, &delta))
    return die("DELTA wants 0..18446744073709551615", argv[1]);
  size_t klen = strlen(argv[0]);
  int rc =
      incr ? mcr_client_incr(c, argv[0], klen, delta, &value, cflags_of(cli))
           : mcr_client_decr(c, argv[0], klen, delta, &value, cflags_of(cli));
  if (rc == MCR_OK && !cli->noreply)
    printf("%" PRIu64 "\n", value);
  return write_outcome(c, argv[0], rc);
}

static int cmd_touch(cli_t* cli, mcr_client_t* c, int argc, char** argv) {
  if (need_args(argc, 2, 2, "touch KEY TTL"))
    return EXIT_ERR;
  int64_t ttl;
  if (parse_i64(argv[1], &ttl))
    return die("TTL wants seconds", argv[1]);
  return write_outcome(
      c, argv[0],
      mcr_client_touch(c, argv[0], strlen(argv[0]), ttl, cflags_of(cli)));
}

/* ---------------------------------------------------------------- nodes */

/* Per-node commands print a "# host:port" header when there are several
 * nodes, so the output of one node stays plain. */
static void node_header(mcr_client_t* c, size_t i) {
  if (mcr_client_node_count(c) > 1)
    printf("# %s\n", mcr_client_node_name(c, i));
}

static int cmd_stats(cli_t* cli, mcr_client_t* c, int argc, char** argv) {
  if (need_args(argc, 0, 1, "stats [ARG]"))
    return EXIT_ERR;
  int status = EXIT_HIT;
  for (size_t i = 0; i < mcr_client_node_count(c); i++) {
    const mcr_stat_t* st;
    size_t n;
    int rc = mcr_client_stats_node(c, i, argc ? argv[0] : NULL, &st, &n);
    if (rc < 0) {
      status = outcome(c, rc);
      continue;
    }
    node_header(c, i);
    for (size_t j = 0; j < n; j++)
      printf("%s %s\n", st[j].name, st[j].value);
  }
  return status;
}

static int cmd_flush_all(cli_t* cli, mcr_client_t* c, int argc, char** argv) {
  if (need_args(argc, 0, 1, "flush_all [DELAY]"))
    return EXIT_ERR;
  int64_t delay = 0;
  if (argc == 1 && parse_i64(argv[0], &delay))
    return die("DELAY wants seconds", argv[0]);
  return outcome(c, mcr_client_flush_all(c, delay, cflags_of(cli)));
}

static int cmd_version(cli_t* cli, mcr_client_t* c, int argc, char** argv) {
  if (need_args(argc, 0, 0, "version"))
    return EXIT_ERR;
  int status = EXIT_HIT;
  for (size_t i = 0; i < mcr_client_node_count(c); i++) {
    const char* v;
    int rc = mcr_client_version(c, i, &v);
    if (rc < 0) {
      status = outcome(c, rc);
      continue;
    }
    if (mcr_client_node_count(c) > 1)
      printf("%s %s\n", mcr_client_node_name(c, i), v);
    else
      printf("%s\n", v);
  }
  return status;
}

/* ---------------------------------------------------------------- ring */

/* "host:port" of ring node i, brackets around IPv6, the path for a unix
 * socket. */
static void ring_node_name(const mcr_ring_t* r, size_t i, char* buf,
                           size_t len) {
  mcr_ring_node_t nd;
  if (mcr_ring_node(r, i, &nd) < 0) {
    snprintf(buf, len, "?");
  } else if (nd.port == 0) {
    snprintf(buf, len, "%s", nd.host);
  } else {
    snprintf(buf, len, strchr(nd.host, ':') ? "[%s]:%u" : "%s:%u", nd.host,
             nd.port);
  }
}

/* Prints "KEY HOST:PORT" for one key; returns the exit status for it. */
static int locate_one(mcr_client_t* c, const mcr_ring_t* r, const char* key,
                      size_t len) {
  char name[600];
  if (mcr_key_check(key, len) < 0) {
    fprintf(stderr, "mcring: invalid key \"%s\"\n", key);
    return EXIT_ERR;
  }
  if (r)
    ring_node_name(r, mcr_ring_locate(r, key, len), name, sizeof name);
  else
    snprintf(name, sizeof name, "%s", mcr_client_node_name(c, 0));
  printf("%s %s\n", key, name);
  return EXIT_HIT;
}

/* Keys from the arguments, or one per line on stdin when there are none. */
static int cmd_locate(cli_t* cli, mcr_client_t* c, int argc, char** argv) {
  const mcr_ring_t* r = mcr_client_ring(c);
  int status = EXIT_HIT;
  if (argc > 0) {
    for (int i = 0; i < argc; i++)
      if (locate_one(c, r, argv[i], strlen(argv[i])) != EXIT_HIT)
        status = EXIT_ERR;
    return status;
  }
  char* line = NULL;
  size_t cap = 0;
  ssize_t len;
  while ((len = getline(&line, &cap, stdin)) > 0) {
    if (line[len - 1] == '\n')
      line[--len] = '\0';
    if (len > 0 && line[len - 1] == '\r')
      line[--len] = '\0';
    if (locate_one(c, r, line, (size_t)len) != EXIT_HIT)
      status = EXIT_ERR;
  }
  free(line);
  return status;
}

/* Prints the agent's status file (DIR/status: "key value" lines) under a
 * "# agent" header; says so when there is none. */
static void print_agent_status(const char* dir) {
  char path[4096];
  snprintf(path, sizeof path, "%s/status", dir);
  FILE* f = fopen(path, "r");
  if (!f) {
    printf("# agent: no status file (%s)\n", strerror(errno));
    return;
  }
  printf("# agent\n");
  char line[1024];
  while (fgets(line, sizeof line, f))
    fputs(line, stdout);
  fclose(f);
  printf("# ring\n");
}

/* UTC "YYYY-MM-DDTHH:MM:SS.mmmZ" of a time in ns since the epoch. */
static void format_time_ns(uint64_t ns, char* buf, size_t len) {
  time_t t = (time_t)(ns / 1000000000u);
  struct tm tm;
  char when[32];
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", gmtime_r(&t, &tm));
  snprintf(buf, len, "%s.%03uZ", when, (unsigned)(ns % 1000000000u / 1000000u));
}

static int cmd_ring(cli_t* cli, mcr_client_t* c, int argc, char** argv) {
  if (need_args(argc, 0, 0, "ring"))
    return EXIT_ERR;
  if (cli->opts.ring_dir)
    print_agent_status(cli->opts.ring_dir);
  const mcr_ring_t* r = mcr_client_ring(c);
  if (!r) {
    printf("single node %s: no ring\n", mcr_client_node_name(c, 0));
    return EXIT_HIT;
  }
  uint64_t gen = mcr_ring_generation(r);
  if (gen) {
    uint64_t ns = mcr_ring_publish_time_ns(r);
    time_t t = (time_t)(ns / 1000000000u);
    struct tm tm;
    char when[64];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
    printf("generation %" PRIu64 "\npublished %s\n", gen, when);
  } else if (cli->opts.elasticache) {
    printf("generation 0 (built in process from %s)\n", cli->opts.elasticache);
  } else {
    printf("generation 0 (built in process)\n");
  }
  printf("mode %s\nnodes %zu\npoints %zu\n",
         mcr_distribution_name(mcr_ring_distribution(r)),
         mcr_ring_node_count(r), mcr_ring_point_count(r));
  /* With the agent's ring: each node's host-wide health too. */
  mcr_hoststats_t* hs = NULL;
  if (gen && cli->opts.ring_dir &&
      mcr_hoststats_open(&hs, cli->opts.ring_dir, cli->opts.ring_owner_uid,
                         NULL, 0) == 0) {
    const mcr_hoststat_row_t* rows;
    size_t nrows;
    if (mcr_hoststats_read(hs, &rows, &nrows) < 0) {
      mcr_hoststats_free(hs);
      hs = NULL;
    }
  }
  printf("%-32s %-40s %6s %7s %7s%s\n", "host", "address:port", "weight",
         "points", "share", hs ? "  health" : "");
  for (size_t i = 0; i < mcr_ring_node_count(r); i++) {
    mcr_ring_node_t nd;
    if (mcr_ring_node(r, i, &nd) < 0)
      continue;
    char addr[600];
    if (nd.port == 0)
      snprintf(addr, sizeof addr, "%s", nd.address);
    else
      snprintf(addr, sizeof addr, strchr(nd.address, ':') ? "[%s]:%u" : "%s:%u",
               nd.address, nd.port);
    char health[160] = "";
    if (hs) {
      health[0] = ' ';
      health[1] = ' ';
      health_text(hs, &nd, health + 2, sizeof health - 2);
    }
    printf("%-32s %-40s %6u %7u %6.2f%%%s\n", nd.host, addr, nd.weight,
           nd.points, nd.share * 100, health);
  }
  mcr_hoststats_free(hs);
  return EXIT_HIT;
}

/* ---------------------------------------------------------------- watch */

/* The node names of one generation, copied out of the ring (the ring is
 * unmapped when the reader switches). */
typedef struct {
  char** names;
  size_t n;
} nodeset_t;

static void nodeset_free(nodeset_t* s) {
  for (size_t i = 0; i < s->n; i++)
    free(s->names[i]);
  free(s->names);
  s->names = NULL;
  s->n = 0;
}

/* Copies "host:port" (and " (address)" when the agent resolved the host
 * to another address) of every node. Returns 0 or -1 (out of memory). */
static int nodeset_take(nodeset_t* s, const mcr_ring_t* r) {
  size_t n = mcr_ring_node_count(r);
  s->names = calloc(n ? n : 1, sizeof(*s->names));
  if (!s->names)
    return -1;
  for (size_t i = 0; i < n; i++) {
    char name[600], full[1300];
    mcr_ring_node_t nd;
    ring_node_name(r, i, name, sizeof name);
    if (mcr_ring_node(r, i, &nd) == 0 && strcmp(nd.host, nd.address) != 0)
      snprintf(full, sizeof full, "%s(%s)", name, nd.address);
    else
      snprintf(full, sizeof full, "%s", name);
    if (!(s->names[i] = strdup(full)))
      return -1;
    s->n = i + 1;
  }
  return 0;
}

static bool nodeset_has(const nodeset_t* s, const char* name) {
  for (size_t i = 0; i < s->n; i++)
    if (strcmp(s->names[i], name) == 0)
      return true;
  return false;
}

/* One line per generation: publish time, generation, mode, node count,
 * then "+node" for each node added and "-node" for each removed since
 * `old` (every node on the first line). */
static void watch_print(const mcr_ring_t* r, const nodeset_t* old,
                        const nodeset_t* cur) {
  char when[48];
  format_time_ns(mcr_ring_publish_time_ns(r), when, sizeof when);
  printf("%s generation %" PRIu64 " %s nodes %zu", when, mcr_ring_generation(r),
         mcr_distribution_name(mcr_ring_distribution(r)), cur->n);
  for (size_t i = 0; i < cur->n; i++)
    if (!nodeset_has(old, cur->names[i]))
      printf(" +%s", cur->names[i]);
  for (size_t i = 0; i < old->n; i++)
    if (!nodeset_has(cur, old->names[i]))
      printf(" -%s", old->names[i]);
  printf("\n");
  fflush(stdout);
}

volatile sig_atomic_t watch_stop;

void on_stop_signal(int sig) {
  watch_stop = 1;
}

void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL); /* a signal ends it early, which is what we want */
}

/* Follows the snapshot of --ring-dir: a line for the generation found,
 * then one per generation published, checking every 100 ms (one atomic load
 * while nothing changes). Waits for the first generation when the
 * directory has none yet. A refused generation is reported on stderr and
 * watching goes on (the reader keeps the last good ring). Ends on SIGINT
 * or SIGTERM with 0, or after --count changes. */
static int cmd_watch(cli_t* cli, mcr_client_t* unused, int argc, char** argv) {
  if (need_args(argc, 0, 0, "watch --ring-dir DIR"))
    return EXIT_ERR;
  const char* dir = cli->opts.ring_dir;
  if (!dir)
    return die("watch needs --ring-dir DIR", "");
  struct stat st;
  if (stat(dir, &st) != 0)
    return die(dir, strerror(errno));
  if (!S_ISDIR(st.st_mode))
    return die(dir, "not a directory");

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  mcr_snapshot_opts_t so;
  mcr_snapshot_opts_init(&so);
  so.expected_uid = cli->opts.ring_owner_uid;
  so.verify = cli->opts.ring_verify;
  mcr_snapshot_t* snap = NULL;
  char err[512] = "";
  bool said_waiting = false;
  while (!watch_stop) {
    int rc = mcr_snapshot_open(&snap, dir, &so, err, sizeof err);
    if (rc == 0)
      break;
    if (rc != MCR_ESNAPSHOT)
      return die(mcr_strerror(rc), err);
    if (!said_waiting) {
      fprintf(stderr, "mcring: waiting for a ring in %s (%s)\n", dir, err);
      said_waiting = true;
    }
    sleep_ms(100);
  }
  if (!snap)
    return EXIT_HIT;

  int status = EXIT_HIT, changes = 0;
  nodeset_t old = {0}, cur = {0};
  if (nodeset_take(&cur, mcr_snapshot_ring(snap))) {
    status = die("out of memory", "");
    goto out;
  }
  watch_print(mcr_snapshot_ring(snap), &old, &cur);
  while (!watch_stop && (cli->count == 0 || changes < cli->count)) {
    sleep_ms(100);
    int rc = mcr_snapshot_refresh(snap);
    if (rc < 0) {
      fprintf(stderr, "mcring: generation refused: %s\n",
              mcr_snapshot_last_error(snap));
      continue;
    }
    if (rc == 0)
      continue;
    nodeset_free(&old);
    old = cur;
    memset(&cur, 0, sizeof cur);
    if (nodeset_take(&cur, mcr_snapshot_ring(snap))) {
      status = die("out of memory", "");
      break;
    }
    watch_print(mcr_snapshot_ring(snap), &old, &cur);
    changes++;
  }
out:
  nodeset_free(&old);
  nodeset_free(&cur);
  mcr_snapshot_free(snap);
  return status;
}

/* ---------------------------------------------------------------- table */

enum {
  NO_CLIENT = 1, /* the command opens no client */
  NO_STATS = 2   /* its client talks to no node: no host stats */
};

static const struct {
  const char* name;
  cmd_fn fn;
  unsigned how;
  const char* synopsis; /* after "mcring " */
  const char* summary;  /* one line for the command list */
  const char* help;     /* `mcring COMMAND --help`, after the synopsis */
} commands[] = {
    {"get", cmd_get, 0, "get KEY [KEY...]", "fetch values",
     "One key: writes the value's raw bytes to stdout, no newline added.\n"
     "Several keys: one request per node; a line \"KEY VALUE\" per hit, in\n"
     "the order given; misses print nothing.\n"
     "Exit: 0 every key hit, 1 a key missed, 2 error.\n"},
    {"gets", cmd_get, 0, "gets KEY [KEY...]", "fetch values with their CAS",
     "A line \"KEY CAS VALUE\" per hit, in the order given; misses print\n"
     "nothing. CAS is the number `mcring cas` takes.\n"
     "Exit: 0 every key hit, 1 a key missed, 2 error.\n"},
    {"set", cmd_store, 0, "set KEY VALUE|- [--flags N] [--ttl S] [--noreply]",
     "store a value",
     "Stores VALUE (\"-\": all of stdin, byte for byte) under KEY.\n"
     "Exit: 0 stored, 2 error.\n"},
    {"add", cmd_store, 0, "add KEY VALUE|- [--flags N] [--ttl S] [--noreply]",
     "store only if KEY is absent",
     "Stores VALUE only when KEY holds nothing.\n"
     "Exit: 0 stored, 1 not stored (KEY exists), 2 error.\n"},
    {"replace", cmd_store, 0,
     "replace KEY VALUE|- [--flags N] [--ttl S] [--noreply]",
     "store only if KEY exists",
     "Stores VALUE only when KEY already holds a value.\n"
     "Exit: 0 stored, 1 not stored (no such KEY), 2 error.\n"},
    {"append", cmd_concat, 0, "append KEY VALUE|- [--noreply]",
     "add bytes after a value",
     "Appends VALUE's bytes to the value of KEY (flags and TTL unchanged).\n"
     "Exit: 0 stored, 1 not stored (no such KEY), 2 error.\n"},
    {"prepend", cmd_concat, 0, "prepend KEY VALUE|- [--noreply]",
     "add bytes before a value",
     "Prepends VALUE's bytes to the value of KEY (flags and TTL unchanged).\n"
     "Exit: 0 stored, 1 not stored (no such KEY), 2 error.\n"},
    {"cas", cmd_cas, 0, "cas KEY CAS VALUE|- [--flags N] [--ttl S] [--noreply]",
     "store if unchanged since gets",
     "Stores VALUE only when KEY's CAS unique is still CAS (from gets).\n"
     "Exit: 0 stored, 1 exists (changed since) or not found, 2 error.\n"},
    {"delete", cmd_delete, 0, "delete KEY [KEY...] [--noreply]", "remove keys",
     "Removes every KEY (several keys: one request per node).\n"
     "Exit: 0 all deleted, 1 a key was not found, 2 error.\n"},
    {"incr", cmd_arith, 0, "incr KEY [DELTA] [--noreply]", "add to a number",
     "Adds DELTA (default 1) to the decimal number stored under KEY and\n"
     "prints the new value (wraps at 2^64, as memcached does).\n"
     "Exit: 0 done, 1 not found, 2 error (also: the value is no number).\n"},
    {"decr", cmd_arith, 0, "decr KEY [DELTA] [--noreply]",
     "subtract from a number",
     "Subtracts DELTA (default 1) from the number stored under KEY, stopping\n"
     "at 0, and prints the new value.\n"
     "Exit: 0 done, 1 not found, 2 error (also: the value is no number).\n"},
    {"touch", cmd_touch, 0, "touch KEY TTL [--noreply]", "set a new TTL",
     "Gives KEY a new expiry: TTL seconds (up to 30 days), a unix time, 0\n"
     "for never; a negative TTL needs \"--\" before it.\n"
     "Exit: 0 touched, 1 not found, 2 error.\n"},
    {"stats", cmd_stats, 0, "stats [ARG]", "server statistics per node",
     "\"stats\" on every node: \"NAME VALUE\" lines, under a \"# host:port\"\n"
     "header when there are several nodes. ARG is a memcached group:\n"
     "settings, items, slabs, sizes, conns, ...\n"
     "Exit: 0 every node answered, 2 error.\n"},
    {"flush_all", cmd_flush_all, 0, "flush_all [DELAY] [--noreply]",
     "invalidate every item on every node",
     "Sends flush_all (in DELAY seconds, default now) to every node.\n"
     "Exit: 0 every node answered OK, 2 error.\n"},
    {"version", cmd_version, 0, "version", "server version per node",
     "Prints the version of the only node, or \"host:port VERSION\" lines.\n"
     "Exit: 0 every node answered, 2 error.\n"},
    {"locate", cmd_locate, NO_STATS, "locate [KEY...]",
     "the node that owns a key",
     "Prints \"KEY HOST:PORT\" for each KEY given, or for each line of stdin\n"
     "when no KEY is given. Nothing is sent to any server.\n"
     "Exit: 0 done, 2 an invalid key (the others are still printed).\n"},
    {"ring", cmd_ring, NO_STATS, "ring", "the ring: generation, nodes, shares",
     "Prints the ring keys are routed by: generation and publish time,\n"
     "mode, nodes with their weight, points and share of the key space.\n"
     "With --ring-dir, the agent's status file first.\n"
     "Exit: 0 done, 2 error.\n"},
    {"watch", cmd_watch, NO_CLIENT, "watch --ring-dir DIR [--count N]",
     "print ring changes as they are published",
     "Prints a line for the current generation, then one per generation\n"
     "mcring-agent publishes in DIR (checked every 100 ms):\n"
     "  TIME generation N MODE nodes K +added... -removed...\n"
     "TIME is the publish time (UTC); a node is \"host:port\", followed by\n"
     "\"(address)\" when the agent resolved it. Waits for a first ring when\n"
     "DIR has none. Runs until SIGINT or SIGTERM, or --count N changes.\n"
     "Exit: 0 stopped, 2 error.\n"},
    {"stat", cmd_stat, NO_CLIENT,
     "stat --ring-dir DIR [-w [--interval S]] [--json | --prometheus]",
     "host-wide client statistics of every worker",
     "Adds up the per-node counters of every client handle following DIR,\n"
     "as the agent reports them (DIR/stats.sock): keys by kind, hits,\n"
     "misses, errors, timeouts, bytes, and latency (p50 / p99: upper bound\n"
     "of the histogram bucket, microseconds). Prints the host total, one\n"
     "line per node and one per client handle (pid, slot, ring\n"
     "generation).\n"
     "  -w, --live        refresh every --interval seconds (default 1),\n"
     "                    rates per second, like varnishstat; ^C quits\n"
     "      --json        one JSON object (totals, nodes, slots)\n"
     "      --prometheus  Prometheus text format, per node\n"
     "Exit: 0 done, 2 error (no agent socket: no agent, or no stats).\n"},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static const char options_help[] =
    "Options (before or after the command):\n"
    "  -s, --servers LIST       host:port[:weight],... ([v6]:port, "
    "/unix/path)\n"
    "                           default $MCRING_SERVERS or 127.0.0.1:11211\n"
    "  -r, --ring-dir DIR       route by the ring mcring-agent publishes in "
    "DIR\n"
    "      --elasticache EP     the nodes an ElastiCache configuration "
    "endpoint\n"
    "                           (host:port) lists, polled by this process\n"
    "      --verify             check the ring file in full (checksum, point "
    "order)\n"
    "      --ring-owner USER    the user the agent runs as (its files must be\n"
    "                           owned by it); default: the owner of DIR, "
    "which\n"
    "                           must then sit where only root and that owner\n"
    "                           can create it\n"
    "  -d, --distribution MODE  ketama | ketama-libmemcached | xxh3\n"
    "      --flags N            client flags for set/add/replace/cas "
    "(default 0)\n"
    "      --ttl S              expiry for set/add/replace/cas (default 0)\n"
    "      --noreply            do not wait for the server's reply\n"
    "      --tls                TLS to every node, verifying each certificate\n"
    "      --tls-ca FILE        trusted CAs (default: the system's)\n"
    "      --tls-cert FILE      client certificate (mutual TLS); --tls-key "
    "FILE\n"
    "      --tls-name NAME      verify NAME instead of each node's host name\n"
    "      --tls-insecure       verify nothing (tests against self-made "
    "certs)\n"
    "      --connect-timeout MS connect timeout (default 1000)\n"
    "      --timeout MS         I/O timeout (default 1000)\n"
    "      --count N            watch: exit after N changes\n"
    "  -w, --live               stat: refresh like top\n"
    "      --interval S         stat -w: seconds between refreshes (default "
    "1)\n"
    "      --json, --prometheus stat: machine-readable output\n"
    "  -h, --help               this text; mcring COMMAND --help for one\n";

static void usage(FILE* f) {
  fprintf(f, "usage: mcring [OPTIONS] COMMAND [ARGS]\n\nCommands:\n");
  for (size_t i = 0; i < NCOMMANDS; i++)
    fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
  fprintf(f,
          "\n%s\nExit status: 0 hit or success, 1 miss, not stored, exists "
          "or not found,\n2 error (one line on stderr).\n",
          options_help);
}

static void command_usage(size_t i) {
  printf("usage: mcring %s\n\n%s\n%s", commands[i].synopsis, commands[i].help,
         options_help);
}

int main(int argc, char** argv) {
  cli_t cli = {.stat_interval = 1.0};
  mcr_client_opts_init(&cli.opts);
  cli.opts.servers = getenv("MCRING_SERVERS");
  if (!cli.opts.servers || !*cli.opts.servers)
    cli.opts.servers = "127.0.0.1:11211";

  enum {
    OPT_FLAGS = 256,
    OPT_TTL,
    OPT_NOREPLY,
    OPT_CTIMEOUT,
    OPT_TIMEOUT,
    OPT_COUNT,
    OPT_JSON,
    OPT_PROMETHEUS,
    OPT_INTERVAL,
    OPT_VERIFY,
    OPT_RING_OWNER,
    OPT_TLS,
    OPT_TLS_CA,
    OPT_TLS_CERT,
    OPT_TLS_KEY,
    OPT_TLS_NAME,
    OPT_TLS_INSECURE,
    OPT_ELASTICACHE
  };
  static const struct option longopts[] = {
      {"servers", required_argument, NULL, 's'},
      {"distribution", required_argument, NULL, 'd'},
      {"ring-dir", required_argument, NULL, 'r'},
      {"elasticache", required_argument, NULL, OPT_ELASTICACHE},
      {"verify", no_argument, NULL, OPT_VERIFY},
      {"ring-owner", required_argument, NULL, OPT_RING_OWNER},
      {"tls", no_argument, NULL, OPT_TLS},
      {"tls-ca", required_argument, NULL, OPT_TLS_CA},
      {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
      {"tls-key", required_argument, NULL, OPT_TLS_KEY},
      {"tls-name", required_argument, NULL, OPT_TLS_NAME},
      {"tls-insecure", no_argument, NULL, OPT_TLS_INSECURE},
      {"flags", required_argument, NULL, OPT_FLAGS},
      {"ttl", required_argument, NULL, OPT_TTL},
      {"noreply", no_argument, NULL, OPT_NOREPLY},
      {"connect-timeout", required_argument, NULL, OPT_CTIMEOUT},
      {"timeout", required_argument, NULL, OPT_TIMEOUT},
      {"count", required_argument, NULL, OPT_COUNT},
      {"live", no_argument, NULL, 'w'},
      {"interval", required_argument, NULL, OPT_INTERVAL},
      {"json", no_argument, NULL, OPT_JSON},
      {"prometheus", no_argument, NULL, OPT_PROMETHEUS},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  int opt, servers_given = 0, help = 0;
  uint64_t u;
  opterr = 0;
  while ((opt = getopt_long(argc, argv, "s:d:r:hw", longopts, NULL)) != -1) {
    switch (opt) {
      case 's':
        cli.opts.servers = optarg;
        servers_given = 1;
        break;
      case 'r':
        cli.opts.ring_dir = optarg;
        break;
      case OPT_ELASTICACHE:
        cli.opts.elasticache = optarg;
        break;
      case OPT_VERIFY:
        cli.opts.ring_verify = 1;
        break;
      case OPT_RING_OWNER: {
        struct passwd* pw = getpwnam(optarg);
        if (pw)
          cli.opts.ring_owner_uid = (long)pw->pw_uid;
        else if (!parse_u64(optarg, UINT32_MAX - 1, &u))
          cli.opts.ring_owner_uid = (long)u;
        else
          return die("--ring-owner wants a user name or uid", optarg);
        break;
      }
      case 'd':
        if (mcr_distribution_parse(optarg, &cli.opts.distribution) < 0)
          return die("unknown distribution", optarg);
        break;
      case OPT_FLAGS:
        if (parse_u64(optarg, UINT32_MAX, &u))
          return die("--flags wants 0..4294967295", optarg);
        cli.flags = (uint32_t)u;
        break;
      case OPT_TTL:
        if (parse_i64(optarg, &cli.ttl))
          return die("--ttl wants seconds", optarg);
        break;
      case OPT_NOREPLY:
        cli.noreply = 1;
        break;
      case OPT_TLS:
        cli.opts.tls.enable = 1;
        break;
      case OPT_TLS_CA:
        cli.opts.tls.ca_file = optarg;
        break;
      case OPT_TLS_CERT:
        cli.opts.tls.cert_file = optarg;
        break;
      case OPT_TLS_KEY:
        cli.opts.tls.key_file = optarg;
        break;
      case OPT_TLS_NAME:
        cli.opts.tls.server_name = optarg;
        break;
      case OPT_TLS_INSECURE:
        cli.opts.tls.insecure = 1;
        break;
      case OPT_CTIMEOUT:
      case OPT_TIMEOUT:
        if (parse_u64(optarg, 3600000, &u) || u == 0)
          return die("timeouts want 1..3600000 ms", optarg);
        *(opt == OPT_CTIMEOUT ? &cli.opts.connect_timeout_ms
                              : &cli.opts.io_timeout_ms) = (int)u;
        break;
      case OPT_COUNT:
        if (parse_u64(optarg, 1000000000, &u) || u == 0)
          return die("--count wants 1..1000000000", optarg);
        cli.count = (int)u;
        break;
      case 'w':
        cli.stat_live = true;
        break;
      case OPT_INTERVAL:
        if (parse_u64(optarg, 3600, &u) || u == 0)
          return die("--interval wants 1..3600 seconds", optarg);
        cli.stat_interval = (double)u;
        break;
      case OPT_JSON:
        cli.stat_format = STAT_JSON;
        break;
      case OPT_PROMETHEUS:
        cli.stat_format = STAT_PROMETHEUS;
        break;
      case 'h':
        help = 1;
        break;
      default:
        if (optopt && optopt < 256 && strchr("sdr", optopt))
          fprintf(stderr, "mcring: option -%c needs an argument\n", optopt);
        else
          fprintf(stderr, "mcring: bad option %s (see mcring --help)\n",
                  argv[optind - 1]);
        return EXIT_ERR;
    }
  }
  if (optind >= argc) {
    usage(help ? stdout : stderr);
    return help ? EXIT_HIT : EXIT_ERR;
  }
  const char* name = argv[optind];
  size_t ci = NCOMMANDS;
  for (size_t i = 0; i < NCOMMANDS; i++)
    if (strcmp(name, commands[i].name) == 0)
      ci = i;
  if (ci == NCOMMANDS)
    return die("unknown command (see mcring --help)", name);
  if (help) {
    command_usage(ci);
    return EXIT_HIT;
  }
  if (cli.opts.ring_dir || cli.opts.elasticache) {
    if (servers_given + !!cli.opts.ring_dir + !!cli.opts.elasticache > 1)
      return die("use one of --servers, --ring-dir and --elasticache", "");
    cli.opts.servers = NULL;
  }
  if (commands[ci].how & NO_STATS)
    cli.opts.host_stats = 0;
  mcr_client_t* c = NULL;
  if (!(commands[ci].how & NO_CLIENT)) {
    char err[512] = "";
    int rc = mcr_client_new(&c, &cli.opts, err, sizeof err);
    if (rc < 0)
      return die(mcr_strerror(rc), *err                ? err
                                   : cli.opts.servers  ? cli.opts.servers
                                   : cli.opts.ring_dir ? cli.opts.ring_dir
                                                       : cli.opts.elasticache);
  }
  cli.name = commands[ci].name;
  cli.synopsis = commands[ci].synopsis;
  int status = commands[ci].fn(&cli, c, argc - optind - 1, argv + optind + 1);
  mcr_client_free(c);
  if (fflush(stdout) != 0 || ferror(stdout))
    return die("cannot write to stdout", strerror(errno));
  return status;
}
