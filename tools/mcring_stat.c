/* mcring_stat.c — `mcring stat`: the host-wide counters of every client
 * handle following a ring directory, as the agent reports them.
 *
 * One read of the agent's host stats (mcr_hoststats_read) is a row per
 * (handle, node); this file adds them up per node and per handle and
 * renders them as text, as one JSON object, in the Prometheus text format,
 * or live (-w) with rates per second like varnishstat. It is apart from
 * mcring.c because it is the tool's only renderer of its own; the command
 * table there points to cmd_stat.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mcring.h"
#include "cli.h"

/* Sums of counters under one name: a node (over every worker), a worker
 * (over its nodes), or the host. */
typedef struct {
  char name[64];
  int pid;
  unsigned slot;
  uint64_t generation;
  mcr_node_counters_t c;
} sum_t;

typedef struct {
  sum_t total;
  sum_t* nodes;
  size_t nnodes;
  sum_t* workers;
  size_t nworkers;
} host_sums_t;

static void counters_add(mcr_node_counters_t* to,
                         const mcr_node_counters_t* from) {
  to->gets += from->gets;
  to->sets += from->sets;
  to->deletes += from->deletes;
  to->others += from->others;
  to->hits += from->hits;
  to->misses += from->misses;
  to->errors += from->errors;
  to->timeouts += from->timeouts;
  to->bytes_out += from->bytes_out;
  to->bytes_in += from->bytes_in;
  for (int i = 0; i < MCR_LATENCY_BUCKETS; i++)
    to->latency[i] += from->latency[i];
}

/* Finds the sum named `name` (nodes) or of `slot` (workers) in arr[*n],
 * appending a zeroed one when absent; arr has room for every row. */
static sum_t* sum_find(sum_t* arr, size_t* n, const char* name, int pid,
                       unsigned slot) {
  for (size_t i = 0; i < *n; i++)
    if (name ? strcmp(arr[i].name, name) == 0 : arr[i].slot == slot)
      return &arr[i];
  sum_t* s = &arr[(*n)++];
  memset(s, 0, sizeof *s);
  snprintf(s->name, sizeof s->name, "%s", name ? name : "");
  s->pid = pid;
  s->slot = slot;
  return s;
}

static void host_sums_free(host_sums_t* hs) {
  free(hs->nodes);
  free(hs->workers);
  memset(hs, 0, sizeof *hs);
}

/* Adds up the rows of one read. Returns 0 or -1 (out of memory). */
static int host_sums(const mcr_hoststat_row_t* rows, size_t n,
                     host_sums_t* hs) {
  memset(hs, 0, sizeof *hs);
  snprintf(hs->total.name, sizeof hs->total.name, "total");
  hs->nodes = calloc(n ? n : 1, sizeof *hs->nodes);
  hs->workers = calloc(n ? n : 1, sizeof *hs->workers);
  if (!hs->nodes || !hs->workers) {
    host_sums_free(hs);
    return -1;
  }
  for (size_t i = 0; i < n; i++) {
    const mcr_hoststat_row_t* r = &rows[i];
    counters_add(&hs->total.c, &r->c);
    if (r->node[0]) /* "": a handle that has counted nothing yet */
      counters_add(&sum_find(hs->nodes, &hs->nnodes, r->node, 0, 0)->c, &r->c);
    sum_t* w = sum_find(hs->workers, &hs->nworkers, NULL, r->pid, r->slot);
    w->generation = r->generation;
    counters_add(&w->c, &r->c);
  }
  return 0;
}

/* Upper bound in microseconds of the latency bucket that holds quantile q
 * (0 when there are no samples). */
static uint64_t latency_quantile_us(const mcr_node_counters_t* c, double q) {
  uint64_t n = 0, seen = 0;
  for (int i = 0; i < MCR_LATENCY_BUCKETS; i++)
    n += c->latency[i];
  if (n == 0)
    return 0;
  uint64_t want = (uint64_t)(q * (double)n);
  if (want == 0)
    want = 1;
  for (int i = 0; i < MCR_LATENCY_BUCKETS; i++) {
    seen += c->latency[i];
    if (seen >= want)
      return (uint64_t)2 << i;
  }
  return (uint64_t)2 << (MCR_LATENCY_BUCKETS - 1);
}

static void stat_text_header(void) {
  printf("%-28s %10s %10s %8s %8s %10s %10s %7s %7s %12s %12s %7s %7s\n", "",
         "gets", "sets", "deletes", "others", "hits", "misses", "errors",
         "timeout", "bytes_out", "bytes_in", "p50_us", "p99_us");
}

static void stat_text_line(const char* label, const mcr_node_counters_t* c) {
  printf("%-28.28s %10" PRIu64 " %10" PRIu64 " %8" PRIu64 " %8" PRIu64
         " %10" PRIu64 " %10" PRIu64 " %7" PRIu64 " %7" PRIu64 " %12" PRIu64
         " %12" PRIu64 " %7" PRIu64 " %7" PRIu64 "\n",
         label, c->gets, c->sets, c->deletes, c->others, c->hits, c->misses,
         c->errors, c->timeouts, c->bytes_out, c->bytes_in,
         latency_quantile_us(c, 0.5), latency_quantile_us(c, 0.99));
}

static void stat_text(const host_sums_t* hs) {
  printf("workers %zu nodes %zu\n", hs->nworkers, hs->nnodes);
  stat_text_header();
  stat_text_line("total", &hs->total.c);
  printf("# nodes\n");
  for (size_t i = 0; i < hs->nnodes; i++)
    stat_text_line(hs->nodes[i].name, &hs->nodes[i].c);
  printf("# workers\n");
  for (size_t i = 0; i < hs->nworkers; i++) {
    char label[64];
    snprintf(label, sizeof label, "pid %d slot %u gen %" PRIu64,
             hs->workers[i].pid, hs->workers[i].slot,
             hs->workers[i].generation);
    stat_text_line(label, &hs->workers[i].c);
  }
}

/* A JSON string: quotes, backslashes and control bytes escaped. */
static void json_str(const char* s) {
  putchar('"');
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\')
      printf("\\%c", ch);
    else if (ch < 0x20)
      printf("\\u%04x", ch);
    else
      putchar(ch);
  }
  putchar('"');
}

static void json_counters(const mcr_node_counters_t* c) {
  printf("\"gets\":%" PRIu64 ",\"sets\":%" PRIu64 ",\"deletes\":%" PRIu64
         ",\"others\":%" PRIu64 ",\"hits\":%" PRIu64 ",\"misses\":%" PRIu64
         ",\"errors\":%" PRIu64 ",\"timeouts\":%" PRIu64
         ",\"bytes_out\":%" PRIu64 ",\"bytes_in\":%" PRIu64
         ",\"latency_us_buckets\":[",
         c->gets, c->sets, c->deletes, c->others, c->hits, c->misses, c->errors,
         c->timeouts, c->bytes_out, c->bytes_in);
  for (int i = 0; i < MCR_LATENCY_BUCKETS; i++)
    printf("%s%" PRIu64, i ? "," : "", c->latency[i]);
  printf("]");
}

/* One JSON object: totals, per node, per worker (slot) with its nodes. */
static void stat_json(const host_sums_t* hs, const mcr_hoststat_row_t* rows,
                      size_t n) {
  printf("{\"workers\":%zu,\"total\":{", hs->nworkers);
  json_counters(&hs->total.c);
  printf("},\"nodes\":[");
  for (size_t i = 0; i < hs->nnodes; i++) {
    printf("%s{\"node\":", i ? "," : "");
    json_str(hs->nodes[i].name);
    printf(",");
    json_counters(&hs->nodes[i].c);
    printf("}");
  }
  printf("],\"slots\":[");
  for (size_t i = 0; i < hs->nworkers; i++) {
    const sum_t* w = &hs->workers[i];
    printf("%s{\"pid\":%d,\"slot\":%u,\"generation\":%" PRIu64 ",",
           i ? "," : "", w->pid, w->slot, w->generation);
    json_counters(&w->c);
    printf(",\"nodes\":[");
    int first = 1;
    for (size_t j = 0; j < n; j++) {
      if (rows[j].slot != w->slot || !rows[j].node[0])
        continue;
      printf("%s{\"node\":", first ? "" : ",");
      first = 0;
      json_str(rows[j].node);
      printf(",");
      json_counters(&rows[j].c);
      printf("}");
    }
    printf("]}");
  }
  printf("]}\n");
}

/* Prometheus text exposition, per node (workers are summed: a label per
 * pid would make a series per worker restart). The latency histogram has
 * no _sum: the segment keeps bucket counts only. */
static void stat_prometheus(const host_sums_t* hs) {
  static const struct {
    const char* kind;
    size_t off;
  } ops[] = {
      {"get", offsetof(mcr_node_counters_t, gets)},
      {"set", offsetof(mcr_node_counters_t, sets)},
      {"delete", offsetof(mcr_node_counters_t, deletes)},
      {"other", offsetof(mcr_node_counters_t, others)},
  };
  static const struct {
    const char* name;
    const char* help;
    size_t off;
  } ctrs[] = {
      {"mcring_hits_total", "Retrievals that found the key.",
       offsetof(mcr_node_counters_t, hits)},
      {"mcring_misses_total", "Retrievals that did not find the key.",
       offsetof(mcr_node_counters_t, misses)},
      {"mcring_errors_total", "Keys whose call failed, timeouts included.",
       offsetof(mcr_node_counters_t, errors)},
      {"mcring_timeouts_total", "Keys whose call timed out.",
       offsetof(mcr_node_counters_t, timeouts)},
      {"mcring_sent_bytes_total", "Request bytes sent.",
       offsetof(mcr_node_counters_t, bytes_out)},
      {"mcring_received_bytes_total", "Reply bytes received.",
       offsetof(mcr_node_counters_t, bytes_in)},
  };
#define CTR(sum, off) (*(const uint64_t*)((const char*)&(sum)->c + (off)))
  printf(
      "# HELP mcring_workers Client handles with a live stats slot.\n"
      "# TYPE mcring_workers gauge\nmcring_workers %zu\n",
      hs->nworkers);
  printf(
      "# HELP mcring_operations_total Keys operated on, by kind.\n"
      "# TYPE mcring_operations_total counter\n");
  for (size_t i = 0; i < hs->nnodes; i++)
    for (size_t k = 0; k < sizeof ops / sizeof *ops; k++)
      printf("mcring_operations_total{node=\"%s\",kind=\"%s\"} %" PRIu64 "\n",
             hs->nodes[i].name, ops[k].kind, CTR(&hs->nodes[i], ops[k].off));
  for (size_t m = 0; m < sizeof ctrs / sizeof *ctrs; m++) {
    printf("# HELP %s %s\n# TYPE %s counter\n", ctrs[m].name, ctrs[m].help,
           ctrs[m].name);
    for (size_t i = 0; i < hs->nnodes; i++)
      printf("%s{node=\"%s\"} %" PRIu64 "\n", ctrs[m].name, hs->nodes[i].name,
             CTR(&hs->nodes[i], ctrs[m].off));
  }
#undef CTR
  printf(
      "# HELP mcring_latency_seconds Time to the first reply line.\n"
      "# TYPE mcring_latency_seconds histogram\n");
  for (size_t i = 0; i < hs->nnodes; i++) {
    uint64_t cum = 0;
    for (int b = 0; b < MCR_LATENCY_BUCKETS - 1; b++) {
      cum += hs->nodes[i].c.latency[b];
      printf("mcring_latency_seconds_bucket{node=\"%s\",le=\"%g\"} %" PRIu64
             "\n",
             hs->nodes[i].name, (double)((uint64_t)2 << b) / 1e6, cum);
    }
    cum += hs->nodes[i].c.latency[MCR_LATENCY_BUCKETS - 1];
    printf("mcring_latency_seconds_bucket{node=\"%s\",le=\"+Inf\"} %" PRIu64
           "\nmcring_latency_seconds_count{node=\"%s\"} %" PRIu64 "\n",
           hs->nodes[i].name, cum, hs->nodes[i].name, cum);
  }
}

/* The -w screen: totals and per node with rates per second since the last
 * refresh (prev), like varnishstat. */
static void stat_live(const host_sums_t* hs, const host_sums_t* prev,
                      double secs) {
  printf("\033[H\033[2J");
  time_t now = time(NULL);
  struct tm tm;
  char when[32];
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
  printf("mcring stat  %s  workers %zu nodes %zu  (every %.1fs; ^C quits)\n\n",
         when, hs->nworkers, hs->nnodes, secs);
  printf("%-28s %10s %10s %10s %10s %8s %8s %7s\n", "", "gets/s", "sets/s",
         "hits/s", "misses/s", "errors/s", "hit%", "p99_us");
  for (size_t i = 0; i <= hs->nnodes; i++) {
    const sum_t* cur = i == 0 ? &hs->total : &hs->nodes[i - 1];
    const sum_t* old = NULL;
    if (prev && i == 0)
      old = &prev->total;
    for (size_t j = 0; prev && i > 0 && j < prev->nnodes; j++)
      if (strcmp(prev->nodes[j].name, cur->name) == 0)
        old = &prev->nodes[j];
    mcr_node_counters_t z = {0};
    const mcr_node_counters_t* o = old ? &old->c : &z;
    double d = prev ? secs : 1;
#define RATE(f) ((cur->c.f >= o->f ? (double)(cur->c.f - o->f) : 0) / d)
    double hits = RATE(hits), misses = RATE(misses);
    printf("%-28.28s %10.0f %10.0f %10.0f %10.0f %8.0f %7.1f%% %7" PRIu64 "\n",
           cur->name, RATE(gets), RATE(sets), hits, misses, RATE(errors),
           hits + misses > 0 ? 100 * hits / (hits + misses) : 0.0,
           latency_quantile_us(&cur->c, 0.99));
#undef RATE
  }
  fflush(stdout);
}

bool health_text(mcr_hoststats_t* h, const mcr_ring_node_t* nd, char* buf,
                 size_t len) {
  mcr_node_health_t hl;
  if (mcr_hoststats_health(h, nd, &hl) < 0) {
    snprintf(buf, len, "?");
    return false;
  }
  if (!hl.down)
    snprintf(buf, len, "up");
  else if (hl.probing)
    snprintf(buf, len, "probing by pid %u (down %.1fs)", hl.pid,
             (double)hl.down_ms / 1000);
  else
    snprintf(buf, len, "down %.1fs by pid %u, next probe in %.1fs",
             (double)hl.down_ms / 1000, hl.pid, (double)hl.next_ms / 1000);
  return true;
}

/* "# health": each node of the agent's ring and its host-wide health
 * (docs/health.md), after a read of h. */
static void stat_health(mcr_hoststats_t* h, const char* dir, long owner) {
  mcr_snapshot_opts_t so;
  mcr_snapshot_opts_init(&so);
  so.expected_uid = owner;
  mcr_snapshot_t* snap;
  char err[256];
  if (mcr_snapshot_open(&snap, dir, &so, err, sizeof err) < 0)
    return;
  const mcr_ring_t* r = mcr_snapshot_ring(snap);
  printf("# health (host-wide)\n");
  for (size_t i = 0; i < mcr_ring_node_count(r); i++) {
    mcr_ring_node_t nd;
    char name[600], health[160];
    if (mcr_ring_node(r, i, &nd) < 0)
      continue;
    snprintf(name, sizeof name, "%s:%u", nd.host, nd.port);
    if (!health_text(h, &nd, health, sizeof health))
      break; /* an agent without a health table */
    printf("%-40s %s\n", name, health);
  }
  mcr_snapshot_free(snap);
}

/* Host-wide statistics of every worker following --ring-dir, from the
 * stats segment the agent creates there (mcr_hoststats_*). */
int cmd_stat(cli_t* cli, mcr_client_t* unused, int argc, char** argv) {
  if (need_args(argc, 0, 0, "stat --ring-dir DIR [-w] [--json|--prometheus]"))
    return EXIT_ERR;
  const char* dir = cli->opts.ring_dir;
  if (!dir)
    return die("stat needs --ring-dir DIR", "");
  if (cli->stat_live && cli->stat_format != STAT_TEXT)
    return die("-w prints text: leave out --json / --prometheus", "");
  mcr_hoststats_t* h;
  char err[512] = "";
  int rc =
      mcr_hoststats_open(&h, dir, cli->opts.ring_owner_uid, err, sizeof err);
  if (rc < 0)
    return die(mcr_strerror(rc), err);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  int status = EXIT_HIT;
  host_sums_t prev = {0};
  bool have_prev = false;
  do {
    const mcr_hoststat_row_t* rows;
    size_t n;
    int rc = mcr_hoststats_read(h, &rows, &n);
    if (rc < 0) {
      status = die(mcr_strerror(rc), mcr_hoststats_last_error(h));
      break;
    }
    host_sums_t hs;
    if (host_sums(rows, n, &hs)) {
      status = die("out of memory", "");
      break;
    }
    if (cli->stat_live) {
      if (have_prev) /* the first read is only the base of the rates */
        stat_live(&hs, &prev, cli->stat_interval);
    } else if (cli->stat_format == STAT_JSON)
      stat_json(&hs, rows, n);
    else if (cli->stat_format == STAT_PROMETHEUS)
      stat_prometheus(&hs);
    else {
      stat_text(&hs);
      stat_health(h, dir, cli->opts.ring_owner_uid);
    }
    host_sums_free(&prev);
    prev = hs;
    have_prev = true;
    if (cli->stat_live && !watch_stop)
      sleep_ms((long)(cli->stat_interval * 1000));
  } while (cli->stat_live && !watch_stop);
  host_sums_free(&prev);
  mcr_hoststats_free(h);
  return status;
}
