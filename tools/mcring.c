/* mcring.c — the `mcring` command-line tool.
 *
 * A thin shell over libmcring for operators and scripts:
 *
 *   mcring [--servers LIST] [--distribution MODE] COMMAND [ARGS]
 *
 * Options may come before or after the command (GNU getopt permutation).
 * Exit status is the contract scripts rely on: 0 hit or success, 1 miss or
 * not stored, 2 error with one line on stderr. Values are written to stdout
 * as raw bytes, with no newline added, so `mcring get k > file` round-trips
 * `mcring set k - < file`.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mcring.h"

enum { EXIT_HIT = 0, EXIT_MISS = 1, EXIT_ERR = 2 };

typedef struct {
  mcr_client_opts_t opts;
  uint32_t flags;
  int64_t ttl;
  int noreply;
} cli_t;

typedef int (*cmd_fn)(cli_t* cli, mcr_client_t* c, int argc, char** argv);

static int die(const char* what, const char* detail) {
  fprintf(stderr, "mcring: %s%s%s\n", what, detail && *detail ? ": " : "",
          detail ? detail : "");
  return EXIT_ERR;
}

/* Maps a library result to the exit status, printing errors. */
static int outcome(mcr_client_t* c, int rc) {
  if (rc < 0) {
    const char* detail = mcr_client_last_error(c);
    fprintf(stderr, "mcring: %s%s%s\n", mcr_strerror(rc), *detail ? ": " : "",
            detail);
    return EXIT_ERR;
  }
  return rc == MCR_OK ? EXIT_HIT : EXIT_MISS;
}

static int parse_u64(const char* s, uint64_t max, uint64_t* out) {
  if (!*s || *s == '-' || *s == '+')
    return -1;
  char* end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end || v > max)
    return -1;
  *out = v;
  return 0;
}

static int parse_i64(const char* s, int64_t* out) {
  if (!*s)
    return -1;
  char* end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || *end)
    return -1;
  *out = v;
  return 0;
}

static int need_args(int argc, int min, int max, const char* usage) {
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

/* One key: the value's raw bytes. Several: one multi-get, then a line
 * "KEY VALUE" per hit in the order asked (misses print nothing); the exit
 * status is 1 when any key missed. */
static int cmd_get(cli_t* cli, mcr_client_t* c, int argc, char** argv) {
  if (need_args(argc, 1, 100000, "get KEY [KEY...]"))
    return EXIT_ERR;
  if (argc == 1) {
    mcr_item_t it;
    int rc = mcr_client_get(c, argv[0], strlen(argv[0]), &it);
    if (rc == MCR_OK && write_all(it.value, it.value_len))
      return die("cannot write to stdout", strerror(errno));
    return outcome(c, rc);
  }
  size_t n = (size_t)argc;
  size_t* lens = calloc(n, sizeof(*lens));
  mcr_item_t* items = calloc(n, sizeof(*items));
  if (!lens || !items)
    return die("out of memory", "");
  for (size_t i = 0; i < n; i++)
    lens[i] = strlen(argv[i]);
  int rc = mcr_client_get_multi(c, n, (const char* const*)argv, lens, items);
  int status = rc < 0 ? outcome(c, rc) : EXIT_HIT;
  for (size_t i = 0; rc >= 0 && i < n; i++) {
    if (items[i].status == MCR_OK) {
      if (write_all(argv[i], lens[i]) || write_all(" ", 1) ||
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

static int cmd_set(cli_t* cli, mcr_client_t* c, int argc, char** argv) {
  if (need_args(argc, 2, 2, "set KEY VALUE|- [--flags N] [--ttl S]"))
    return EXIT_ERR;
  char* buf = NULL;
  const char* value = argv[1];
  size_t len = strlen(value);
  if (strcmp(value, "-") == 0) {
    buf = read_stdin(&len);
    if (!buf)
      return die("cannot read stdin", strerror(errno));
    value = buf;
  }
  int rc = mcr_client_set(c, argv[0], strlen(argv[0]), value, len, cli->flags,
                          cli->ttl, cli->noreply ? MCR_CALL_NOREPLY : 0);
  free(buf);
  return outcome(c, rc);
}

static int cmd_delete(cli_t* cli, mcr_client_t* c, int argc, char** argv) {
  if (need_args(argc, 1, 1, "delete KEY"))
    return EXIT_ERR;
  int rc = mcr_client_delete(c, argv[0], strlen(argv[0]),
                             cli->noreply ? MCR_CALL_NOREPLY : 0);
  return outcome(c, rc);
}

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
    int n = mcr_client_stats_node(c, i, argc ? argv[0] : NULL, &st);
    if (n < 0) {
      status = outcome(c, n);
      continue;
    }
    node_header(c, i);
    for (int j = 0; j < n; j++)
      printf("%s %s\n", st[j].name, st[j].value);
  }
  return status;
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

static int cmd_locate(cli_t* cli, mcr_client_t* c, int argc, char** argv) {
  if (need_args(argc, 0, 0, "locate < KEYS (one per line)"))
    return EXIT_ERR;
  const mcr_ring_t* r = mcr_client_ring(c);
  char* line = NULL;
  size_t cap = 0;
  ssize_t len;
  int status = EXIT_HIT;
  char name[600];
  while ((len = getline(&line, &cap, stdin)) > 0) {
    if (line[len - 1] == '\n')
      line[--len] = '\0';
    if (len > 0 && line[len - 1] == '\r')
      line[--len] = '\0';
    if (mcr_key_check(line, (size_t)len) < 0) {
      fprintf(stderr, "mcring: invalid key \"%s\"\n", line);
      status = EXIT_ERR;
      continue;
    }
    if (r)
      ring_node_name(r, mcr_ring_locate(r, line, (size_t)len), name,
                     sizeof name);
    else
      snprintf(name, sizeof name, "%s", mcr_client_node_name(c, 0));
    printf("%s %s\n", line, name);
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
    printf("generation %llu\npublished %s\n", (unsigned long long)gen, when);
  } else {
    printf("generation 0 (built in process)\n");
  }
  printf("mode %s\nnodes %zu\npoints %zu\n",
         mcr_distribution_name(mcr_ring_distribution(r)),
         mcr_ring_node_count(r), mcr_ring_point_count(r));
  printf("%-32s %-40s %6s %7s %7s\n", "host", "address:port", "weight",
         "points", "share");
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
    printf("%-32s %-40s %6u %7u %6.2f%%\n", nd.host, addr, nd.weight, nd.points,
           nd.share * 100);
  }
  return EXIT_HIT;
}

static const struct {
  const char* name;
  cmd_fn fn;
  const char* help;
} commands[] = {
    {"get", cmd_get,
     "get KEY [KEY...]   the value to stdout; several: \"KEY VALUE\" lines"},
    {"set", cmd_set, "set KEY VALUE|-    store VALUE (- reads stdin)"},
    {"delete", cmd_delete, "delete KEY         remove KEY"},
    {"stats", cmd_stats, "stats [ARG]        server statistics per node"},
    {"version", cmd_version, "version            server version per node"},
    {"locate", cmd_locate,
     "locate             read keys on stdin, print \"KEY HOST:PORT\""},
    {"ring", cmd_ring,
     "ring               the ring: generation, nodes, shares"},
};

static void usage(FILE* f) {
  fprintf(f,
          "usage: mcring [OPTIONS] COMMAND [ARGS]\n\n"
          "Commands:\n");
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(f, "  %s\n", commands[i].help);
  fprintf(f,
          "\nOptions (before or after the command):\n"
          "  -s, --servers LIST       host:port[:weight],... ([v6]:port, "
          "/unix/path)\n"
          "                           default $MCRING_SERVERS or "
          "127.0.0.1:11211\n"
          "  -r, --ring-dir DIR       route by the ring mcring-agent "
          "publishes in DIR\n"
          "  -d, --distribution MODE  ketama | ketama-libmemcached | xxh3\n"
          "      --flags N            client flags for set (default 0)\n"
          "      --ttl S              expiry for set in seconds (default 0)\n"
          "      --noreply            do not wait for the server's reply\n"
          "      --connect-timeout MS connect timeout (default 1000)\n"
          "      --timeout MS         I/O timeout (default 1000)\n"
          "  -h, --help               this text\n\n"
          "Exit status: 0 hit or success, 1 miss or not stored, 2 error.\n");
}

int main(int argc, char** argv) {
  cli_t cli = {0};
  mcr_client_opts_init(&cli.opts);
  cli.opts.servers = getenv("MCRING_SERVERS");
  if (!cli.opts.servers || !*cli.opts.servers)
    cli.opts.servers = "127.0.0.1:11211";

  enum { OPT_FLAGS = 256, OPT_TTL, OPT_NOREPLY, OPT_CTIMEOUT, OPT_TIMEOUT };
  static const struct option longopts[] = {
      {"servers", required_argument, NULL, 's'},
      {"distribution", required_argument, NULL, 'd'},
      {"ring-dir", required_argument, NULL, 'r'},
      {"flags", required_argument, NULL, OPT_FLAGS},
      {"ttl", required_argument, NULL, OPT_TTL},
      {"noreply", no_argument, NULL, OPT_NOREPLY},
      {"connect-timeout", required_argument, NULL, OPT_CTIMEOUT},
      {"timeout", required_argument, NULL, OPT_TIMEOUT},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  int opt, servers_given = 0;
  uint64_t u;
  opterr = 0;
  while ((opt = getopt_long(argc, argv, "s:d:r:h", longopts, NULL)) != -1) {
    switch (opt) {
      case 's':
        cli.opts.servers = optarg;
        servers_given = 1;
        break;
      case 'r':
        cli.opts.ring_dir = optarg;
        break;
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
      case OPT_CTIMEOUT:
      case OPT_TIMEOUT:
        if (parse_u64(optarg, 3600000, &u) || u == 0)
          return die("timeouts want 1..3600000 ms", optarg);
        *(opt == OPT_CTIMEOUT ? &cli.opts.connect_timeout_ms
                              : &cli.opts.io_timeout_ms) = (int)u;
        break;
      case 'h':
        usage(stdout);
        return EXIT_HIT;
      default:
        fprintf(stderr, "mcring: bad option %s (see mcring --help)\n",
                argv[optind - 1]);
        return EXIT_ERR;
    }
  }
  if (optind >= argc) {
    usage(stderr);
    return EXIT_ERR;
  }
  if (cli.opts.ring_dir) {
    if (servers_given)
      return die("use --servers or --ring-dir, not both", "");
    cli.opts.servers = NULL;
  }
  const char* name = argv[optind];
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
    if (strcmp(name, commands[i].name) != 0)
      continue;
    mcr_client_t* c;
    int rc = mcr_client_new(&c, &cli.opts);
    if (rc < 0)
      return die(mcr_strerror(rc), cli.opts.servers);
    int status = commands[i].fn(&cli, c, argc - optind - 1, argv + optind + 1);
    mcr_client_free(c);
    return status;
  }
  return die("unknown command", name);
}
