/* main.c — the demo's command line and timeline (demo.h has the map).
 *
 * The master parses the options, makes a private directory, starts the
 * deployment (cluster.c), then does what a pre-forked server does: opens
 * the client on the agent's ring (opts.ring_dir) and uses it once, then
 * forks the workers, which inherit the client; the library's fork guard
 * makes each worker open its own connections. While they run, the master
 * samples their counters once a second and runs the four steps of the
 * scenario at fixed fractions of --duration. SIGINT, SIGTERM and SIGHUP
 * only set a flag (demo_interrupted): every wait checks it, and the
 * master then stops everything it started before exiting 130.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "demo.h"
#include "deploy.h"

volatile sig_atomic_t demo_interrupted;

static void on_signal(int sig) {
  demo_interrupted = sig;
}

bool nap(double s) {
  if (demo_interrupted)
    return false;
  if (s > 0) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL); /* a signal ends it early */
  }
  return !demo_interrupted;
}

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

/* The option's number in [lo, hi] into *v, or false (said why). */
static bool number_arg(const char* name, double lo, double hi, const char* unit,
                       double* v) {
  char* end;
  *v = strtod(optarg, &end);
  if (end != optarg && !*end && *v >= lo && *v <= hi)
    return true;
  fprintf(stderr, "demo: --%s takes %g to %g%s\n", name, lo, hi, unit);
  return false;
}

/* Fills cf from the command line. 0, or the exit status (2) on an error. */
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
  double v;
  for (int c; (c = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
    switch (c) {
      case 'b':
        cf->build_dir = optarg;
        break;
      case 'd':
        if (!number_arg("duration", 10, 86400, " seconds", &v))
          return 2;
        cf->duration = v;
        break;
      case 'w':
        if (!number_arg("workers", 1, MAX_WORKERS, "", &v))
          return 2;
        cf->workers = (int)v;
        break;
      case 'k':
        if (!number_arg("keys", 1, 10000000, "", &v))
          return 2;
        cf->keys = (int)v;
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
    deploy_build_path(cf->build_dir, "mcring-agent", cf->agent_buf,
                      sizeof cf->agent_buf);
    cf->agent = cf->agent_buf;
  }
  if (!cf->fakecfg) {
    deploy_build_path(cf->build_dir, "tests/fakecfg", cf->fakecfg_buf,
                      sizeof cf->fakecfg_buf);
    cf->fakecfg = cf->fakecfg_buf;
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

/* The master attaches to the ring and uses the client once, as a
 * pre-forked server does: its connections are the master's, and each
 * worker must open its own. NULL when that failed (said why). */
static mcr_client_t* master_attach(demo_t* d) {
  mcr_client_opts_t o;
  mcr_client_opts_init(&o);
  o.ring_dir = d->ring;
  /* Generous timeouts: the workers saturate the CPUs on purpose, and on a
   * busy machine a memcached thread can wait long for its turn. */
  o.io_timeout_ms = 2000;
  o.connect_timeout_ms = 2000;
  mcr_client_t* c;
  char err[256] = "";
  int rc = mcr_client_new(&c, &o, err, sizeof err);
  if (rc < 0) {
    fail(d, "mcr_client_new: %s: %s", mcr_err_name(rc), err);
    return NULL;
  }
  for (int i = 0; i < 3; i++) {
    char key[32];
    int kl = snprintf(key, sizeof key, "demo:master:%d", i);
    if ((rc = mcr_client_set(c, key, (size_t)kl, "hello", 5, 0, 0, 0)) < 0) {
      fail(d, "master set: %s: %s", mcr_err_name(rc), mcr_client_last_error(c));
      mcr_client_free(c);
      return NULL;
    }
  }
  say(d,
      "master: client open on generation %" PRIu64
      " (%zu nodes) and used; forking %d workers",
      mcr_client_generation(c), mcr_client_node_count(c), d->cf.workers);
  return c;
}

/* The traffic phase: a progress line a second, the four steps at 20%,
 * 45%, 70% and 80% of the duration (the restart at least 2 s after the
 * kill), a worker table the second after a switch. Returns the number of
 * steps done. */
static int timeline(demo_t* d, const sample_t* first, sample_t* last) {
  scenario_t* sc = calloc(1, sizeof *sc);
  if (!sc) {
    fail(d, "out of memory");
    return 0;
  }
  double dur = d->cf.duration;
  double at[4] = {dur * 0.2, dur * 0.45, dur * 0.7,
                  dur * 0.7 + (dur * 0.1 > 2 ? dur * 0.1 : 2)};
  sample_t prev = *first;
  double t_traffic = mono_s(), next_tick = t_traffic + 1;
  int steps = 0;
  bool detail = false;
  while (!d->failed && !demo_interrupted) {
    if (!nap(next_tick - mono_s()) || !children_check(d))
      break;
    sample_take(d, last);
    if (detail)
      report_workers(d, &prev, last,
                     "per worker, ops/s and hit% over the second after the "
                     "switch:");
    else
      report_progress(d, &prev, last);
    detail = false;
    prev = *last;
    next_tick += 1;
    double t = mono_s() - t_traffic;
    if (steps == 4 && t >= dur - 0.05)
      break;
    if (steps < 4 && t >= at[steps]) {
      if (!scenario_step(d, sc, steps))
        break;
      steps++;
      detail = steps != 3; /* no switch after the kill */
      sample_take(d, &prev);
      next_tick = mono_s() + 1;
    }
  }
  free(sc);
  return steps;
}

/* Stops everything and says how it ended. */
static int finish(demo_t* d, int rc, const char* why) {
  cluster_stop(d);
  if (demo_interrupted) {
    printf("\ninterrupted: every process stopped\n");
    return 130;
  }
  if (why)
    printf("\ndemo FAILED: %s\n", why);
  return rc;
}

int main(int argc, char** argv) {
  static demo_t demo; /* large (the samples); zeroed */
  demo_t* d = &demo;
  int rc = parse_args(argc, argv, &d->cf);
  if (rc)
    return rc;
  setvbuf(stdout, NULL, _IOLBF, 0);
  d->t0 = mono_s();
  struct sigaction sa = {.sa_handler = on_signal};
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  const char* tmpdir = getenv("TMPDIR");
  snprintf(d->tmp, sizeof d->tmp, "%s/mcring-demo.XXXXXX",
           tmpdir && *tmpdir ? tmpdir : "/tmp");
  if (!mkdtemp(d->tmp)) {
    fprintf(stderr, "demo: mkdtemp %s: %s\n", d->tmp, strerror(errno));
    return 2;
  }
  d->shm = mmap(NULL, sizeof *d->shm, PROT_READ | PROT_WRITE,
                MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (d->shm == MAP_FAILED) {
    d->shm = NULL;
    fprintf(stderr, "demo: mmap: %s\n", strerror(errno));
    return finish(d, 2, NULL);
  }
  report_header(&d->cf);
  if (cluster_start(d) != 0)
    return finish(d, 2, "setup");
  mcr_client_t* c = master_attach(d);
  if (!c)
    return finish(d, 1, NULL);
  int steps = 0;
  sample_t first, last;
  bool forked = cluster_fork_workers(d, c) == 0;
  sample_take(d, &first);
  if (forked)
    steps = timeline(d, &first, &last);
  sample_take(d, &last);
  if (!demo_interrupted) {
    children_check(d);
    report_final(d, &first, &last, steps);
  }
  mcr_client_free(c);
  rc = finish(d, d->failed ? 1 : 0, NULL);
  if (rc == 130)
    return rc;
  printf("\ndemo %s in %.1f s; every process it started is stopped\n",
         d->failed ? "FAILED" : "passed", mono_s() - d->t0);
  return rc;
}
