/* report.c — everything the demo prints.
 *
 * The output is for a person watching: a timestamped line per event
 * ("[  4.1s] ..."), one progress line per second between the steps, a
 * table per worker after each change (ops/s, hit rate, errors, wrong
 * values, when it switched rings), and at the end a summary and the
 * checks that decide the exit status. The figures come from samples of
 * the workers' shared counters (sample_take), so a rate is always the
 * difference of two samples over the time between them. stdout is line
 * buffered and flushed after each block, so the lines interleave sanely
 * with anything a child writes.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#include "demo.h"

/* "[  4.1s] <prefix><text>" */
static void vsay(const demo_t* d, const char* prefix, const char* fmt,
                 va_list ap) {
  printf("[%5.1fs] %s", mono_s() - d->t0, prefix);
  vprintf(fmt, ap);
  putchar('\n');
  fflush(stdout);
}

void say(const demo_t* d, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsay(d, "", fmt, ap);
  va_end(ap);
}

void fail(demo_t* d, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsay(d, "FAILED: ", fmt, ap);
  va_end(ap);
  d->failed = true;
}

void log_tail(const demo_t* d, const char* name) {
  char path[320];
  snprintf(path, sizeof path, "%s/%s", d->tmp, name);
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

void report_header(const conf_t* cf) {
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

void sample_take(const demo_t* d, sample_t* s) {
  s->t = mono_s();
  for (int i = 0; i < d->cf.workers; i++) {
    const wslot_t* w = &d->shm->w[i];
    s->w[i] = (wsample_t){.ops = LOAD(&w->ops),
                          .lookups = LOAD(&w->lookups),
                          .hits = LOAD(&w->hits),
                          .errors = LOAD(&w->errors),
                          .wrong = LOAD(&w->wrong),
                          .gen = LOAD(&w->gen)};
  }
}

double pct(uint64_t a, uint64_t b) {
  return b ? 100.0 * (double)a / (double)b : 0.0;
}

void sample_totals(const demo_t* d, const sample_t* s, wsample_t* t) {
  *t = (wsample_t){0};
  for (int i = 0; i < d->cf.workers; i++) {
    t->ops += s->w[i].ops;
    t->lookups += s->w[i].lookups;
    t->hits += s->w[i].hits;
    t->errors += s->w[i].errors;
    t->wrong += s->w[i].wrong;
  }
}

void report_progress(const demo_t* d, const sample_t* a, const sample_t* b) {
  double dt = b->t - a->t;
  wsample_t ta, tb;
  sample_totals(d, a, &ta);
  sample_totals(d, b, &tb);
  double lo = 1e18, hi = 0;
  uint64_t glo = UINT64_MAX, ghi = 0;
  for (int i = 0; i < d->cf.workers; i++) {
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
  say(d,
      "gen %s  %6.1fk ops/s (%.1fk-%.1fk per worker)  hit %5.1f%%  "
      "errors %" PRIu64 "  wrong %" PRIu64,
      gens, (double)(tb.ops - ta.ops) / dt / 1e3, lo / 1e3, hi / 1e3,
      pct(tb.hits - ta.hits, tb.lookups - ta.lookups), tb.errors, tb.wrong);
}

void report_workers(const demo_t* d, const sample_t* a, const sample_t* b,
                    const char* title) {
  double dt = b->t - a->t;
  printf("         %s\n", title);
  printf(
      "         worker    pid  gen  switched    ops/s   hit%%  errors  "
      "wrong\n");
  for (int i = 0; i < d->cf.workers; i++) {
    const wsample_t *x = &a->w[i], *y = &b->w[i];
    char sw[24] = "-";
    if (d->switch_ms[i] >= 0)
      snprintf(sw, sizeof sw, "+%" PRId64 " ms", d->switch_ms[i]);
    printf("         w%-3d  %7d  %3" PRIu64 "  %8s  %7.0f  %5.1f  %6" PRIu64
           "  %5" PRIu64 "\n",
           i + 1, (int)LOAD(&d->shm->w[i].pid), y->gen, sw,
           (double)(y->ops - x->ops) / dt,
           pct(y->hits - x->hits, y->lookups - x->lookups), y->errors,
           y->wrong);
  }
  fflush(stdout);
}

void report_final(demo_t* d, const sample_t* start, const sample_t* end,
                  int steps_done) {
  double dt = end->t - start->t;
  printf("\nSummary over %.1f s of traffic\n", dt);
  printf(
      "         worker    pid    calls    ops/s   hit%%  errors  wrong  "
      "ring errors\n");
  wsample_t t;
  sample_totals(d, end, &t);
  uint64_t ring_errors = 0;
  for (int i = 0; i < d->cf.workers; i++) {
    const wsample_t* y = &end->w[i];
    uint64_t re = LOAD(&d->shm->w[i].ring_errors);
    ring_errors += re;
    printf("         w%-3d  %7d  %7" PRIu64 "  %7.0f  %5.1f  %6" PRIu64
           "  %5" PRIu64 "  %11" PRIu64 "\n",
           i + 1, (int)LOAD(&d->shm->w[i].pid), y->ops - start->w[i].ops,
           (double)(y->ops - start->w[i].ops) / dt,
           pct(y->hits - start->w[i].hits, y->lookups - start->w[i].lookups),
           y->errors, y->wrong, re);
  }
  printf("         all   %7s  %7" PRIu64 "  %7.0f  %5.1f  %6" PRIu64
         "  %5" PRIu64 "  %11" PRIu64 "\n",
         "", t.ops, (double)t.ops / dt, pct(t.hits, t.lookups), t.errors,
         t.wrong, ring_errors);
  for (int i = 0; i < d->cf.workers; i++)
    if (LOAD(&d->shm->w[i].note_set))
      printf("         w%d first problem: %s\n", i + 1, d->shm->w[i].note);
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
        d->slowest_ms);
  else
    printf("  FAIL %d of 4 cluster changes done\n", steps_done);
  printf("  %-4s %" PRIu64 " ring generations refused by the workers\n",
         ring_errors ? "FAIL" : "ok", ring_errors);
  if (t.wrong || t.errors || steps_done != 4 || ring_errors)
    d->failed = true;
  if (d->failed)
    log_tail(d, "agent.log");
  fflush(stdout);
}
