/* test_snapshot.c — the shared ring snapshot: writer, reader, and attacks.
 *
 * Every test works in its own mkdtemp directory (Criterion runs tests in
 * parallel processes). Four groups:
 *   - round trips: a published ring answers exactly like the ring built in
 *     process; generations advance, survive a writer restart, and stale
 *     files are cleaned up; one writer per directory;
 *   - a republish storm: one writer publishing as fast as it can while 8
 *     reader processes route keys, each result checked against a reference
 *     ring rebuilt for the generation the reader saw;
 *   - writers SIGKILLed at random points: the reader keeps a valid ring and
 *     the next writer recovers (MCR_LONG_TESTS=1 for 1,000 kills);
 *   - hostile files: each header field, random byte flips, truncation,
 *     unsafe permissions, a symlink, a foreign owner — each refused with a
 *     message while the last good ring stays in service. Every fixture has
 *     two readers: the default one (header, bounds and node table checked;
 *     damaged arrays may be served, but every lookup must stay in range)
 *     and one with opts.verify (everything checked, damage refused).
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ring.h"
#include "support.h"

/* ---------------------------------------------------------------- helpers */

typedef struct {
  char dir[64];
  mcr__snapshot_writer_t* w;
  mcr_snapshot_t* s; /* default reader */
  mcr_snapshot_t* v; /* opts.verify: checks the arrays too */
} fixture_t;

static void rm_rf(const char* dir) {
  DIR* d = opendir(dir);
  if (!d)
    return;
  struct dirent* de;
  while ((de = readdir(d)) != NULL)
    if (de->d_name[0] != '.')
      unlinkat(dirfd(d), de->d_name, 0);
  closedir(d);
  rmdir(dir);
  char parent[64];
  snprintf(parent, sizeof(parent), "%s", dir);
  char* slash = strrchr(parent, '/');
  if (slash)
    *slash = '\0';
  rmdir(parent);
}

/* Node list of generation g: deterministic, so any process can rebuild the
 * reference ring of any generation. Mode, size, weights and ports vary. */
static mcr_distribution_t gen_nodes(uint64_t g, mcr__ring_node_in_t* in,
                                    char (*hosts)[32], size_t* n) {
  *n = 2 + (size_t)(g % 6);
  for (size_t i = 0; i < *n; i++) {
    snprintf(hosts[i], 32, "10.%u.%zu.%u", (unsigned)(g % 200), i,
             (unsigned)(g / 200 % 250));
    in[i] =
        (mcr__ring_node_in_t){hosts[i], NULL, (uint16_t)(11211 + (g + i) % 3),
                              (uint32_t)(1 + (g + i) % 3), 0};
  }
  return (mcr_distribution_t)(g % 3);
}

/* The bucket index of every gen_nodes ring: the smallest there is. */
#define SMALL_BUCKETS (1u << MCR__BUCKET_BITS_MIN)

static mcr_ring_t* gen_ring(uint64_t g) {
  mcr__ring_node_in_t in[8];
  char hosts[8][32];
  size_t n;
  mcr_distribution_t mode = gen_nodes(g, in, hosts, &n);
  mcr_ring_t* r;
  cr_assert_eq(mcr__ring_build_nodes(&r, mode, in, n, NULL, 0), 0);
  return r;
}

static int publish_gen(mcr__snapshot_writer_t* w) {
  uint64_t g = mcr__snapshot_writer_generation(w) + 1;
  mcr__ring_node_in_t in[8];
  char hosts[8][32];
  size_t n;
  mcr_distribution_t mode = gen_nodes(g, in, hosts, &n);
  uint64_t got = 0;
  int rc = mcr__snapshot_writer_publish_nodes(w, mode, in, n, &got);
  if (rc == 0 && got != g)
    return -100;
  return rc;
}

/* Publishes the next generation and checks that both readers switch. */
static void publish_and_switch(fixture_t* f) {
  cr_assert_eq(publish_gen(f->w), 0, "%s", mcr__snapshot_writer_error(f->w));
  cr_assert_eq(mcr_snapshot_refresh(f->s), 1, "%s",
               mcr_snapshot_last_error(f->s));
  cr_assert_eq(mcr_snapshot_refresh(f->v), 1, "%s",
               mcr_snapshot_last_error(f->v));
}

static void fixture_open(fixture_t* f) {
  char tmpl[] = "/tmp/mcr-snap-XXXXXX";
  cr_assert_not_null(mkdtemp(tmpl));
  snprintf(f->dir, sizeof(f->dir), "%s/ring", tmpl);
  char err[256] = "";
  cr_assert_eq(mcr__snapshot_writer_open(&f->w, f->dir, err, sizeof(err)), 0,
               "%s", err);
  cr_assert_eq(publish_gen(f->w), 0);
  cr_assert_eq(mcr_snapshot_open(&f->s, f->dir, NULL, err, sizeof(err)), 0,
               "%s", err);
  mcr_snapshot_opts_t o;
  mcr_snapshot_opts_init(&o);
  cr_assert_eq(o.verify, 0);
  o.verify = 1;
  cr_assert_eq(mcr_snapshot_open(&f->v, f->dir, &o, err, sizeof(err)), 0, "%s",
               err);
}

static void fixture_close(fixture_t* f) {
  mcr_snapshot_free(f->s);
  mcr_snapshot_free(f->v);
  mcr__snapshot_writer_close(f->w);
  rm_rf(f->dir);
}

/* Every key of a sample routes the same on a and b, node by node. */
static void expect_same_routing(const mcr_ring_t* a, const mcr_ring_t* b) {
  cr_assert_eq(mcr_ring_node_count(a), mcr_ring_node_count(b));
  cr_assert_eq(mcr_ring_point_count(a), mcr_ring_point_count(b));
  char key[32];
  for (int k = 0; k < 20000; k++) {
    int len = snprintf(key, sizeof(key), "item-%d", k);
    cr_assert_eq(mcr_ring_locate(a, key, (size_t)len),
                 mcr_ring_locate(b, key, (size_t)len));
  }
}

/* a routes like b, and every node reads the same (shares included, which
 * a mapped ring takes from its arcs). */
static void expect_same_ring(const mcr_ring_t* a, const mcr_ring_t* b) {
  expect_same_routing(a, b);
  for (size_t i = 0; i < mcr_ring_node_count(a); i++) {
    mcr_ring_node_t x, y;
    mcr_ring_node(a, i, &x);
    mcr_ring_node(b, i, &y);
    cr_expect_str_eq(x.host, y.host);
    cr_expect_str_eq(x.address, y.address);
    cr_expect_eq(x.port, y.port);
    cr_expect_eq(x.weight, y.weight);
    cr_expect_eq(x.points, y.points);
    cr_expect_eq(x.share, y.share);
    cr_expect_eq(x.state, MCR_NODE_UP);
  }
}

/* ---------------------------------------------------------------- round trip
 */

Test(snapshot, round_trip_and_generations) {
  fixture_t f;
  fixture_open(&f);
  const mcr_ring_t* r = mcr_snapshot_ring(f.s);
  cr_assert_eq(mcr_snapshot_generation(f.s), 1);
  cr_assert_eq(mcr_ring_generation(r), 1);
  cr_assert(mcr_ring_publish_time_ns(r) > 1600000000ull * 1000000000ull);
  mcr_ring_t* ref = gen_ring(1);
  expect_same_ring(r, ref);
  mcr_ring_free(ref);

  cr_assert_eq(mcr_snapshot_refresh(f.s), 0);
  for (uint64_t g = 2; g <= 5; g++) {
    publish_and_switch(&f);
    cr_assert_eq(mcr_snapshot_refresh(f.s), 0);
    cr_assert_eq(mcr_snapshot_generation(f.s), g);
    ref = gen_ring(g);
    expect_same_routing(mcr_snapshot_ring(f.s), ref);
    mcr_ring_free(ref);
  }
  /* Only the current generation's file is left. */
  cr_expect_eq(dir_count_prefix(f.dir, "ring."), 1);
  struct stat st;
  char p[128];
  snprintf(p, sizeof(p), "%s/ring.5", f.dir);
  cr_assert_eq(stat(p, &st), 0);
  cr_expect_eq(st.st_mode & 0777, 0640);
  cr_assert_eq(stat(f.dir, &st), 0);
  cr_expect_eq(st.st_mode & 0007, 0);
  fixture_close(&f);
}

static void expect_lookups_in_range(const mcr_ring_t* r);

/* A ring of over 524,288 points gets a bigger bucket index (docs/
 * snapshot.md): the writer publishes it, the verifying reader checks every
 * entry of it, and both readers route like the ring built here. */
Test(snapshot, a_big_ring_has_a_bigger_bucket_index, .timeout = 120) {
  fixture_t f;
  fixture_open(&f);
  enum { N = 4000 }; /* 640,000 points: 17 bits */
  static mcr__ring_node_in_t in[N];
  static char hosts[N][32];
  for (size_t i = 0; i < N; i++) {
    snprintf(hosts[i], 32, "10.%zu.%zu.%zu", i / 65536, i / 256 % 256, i % 256);
    in[i] = (mcr__ring_node_in_t){hosts[i], NULL, 11211, 1, 0};
  }
  for (int mode = 0; mode < 3; mode++) {
    uint64_t got;
    cr_assert_eq(mcr__snapshot_writer_publish_nodes(
                     f.w, (mcr_distribution_t)mode, in, N, &got),
                 0, "%s", mcr__snapshot_writer_error(f.w));
    cr_assert_eq(mcr_snapshot_refresh(f.s), 1, "%s",
                 mcr_snapshot_last_error(f.s));
    cr_assert_eq(mcr_snapshot_refresh(f.v), 1, "%s",
                 mcr_snapshot_last_error(f.v));
    mcr_ring_t* ref;
    cr_assert_eq(
        mcr__ring_build_nodes(&ref, (mcr_distribution_t)mode, in, N, NULL, 0),
        0);
    cr_assert_eq(ref->npoints, N * 160);
    cr_assert_eq(ref->bucket_shift, 32 - 17);
    cr_assert_eq(mcr_snapshot_ring(f.s)->bucket_shift, 32 - 17);
    expect_same_routing(mcr_snapshot_ring(f.s), ref);
    expect_same_routing(mcr_snapshot_ring(f.v), ref);
    expect_lookups_in_range(mcr_snapshot_ring(f.s));
    mcr_ring_free(ref);
  }
  fixture_close(&f);
}

Test(snapshot, writer_restart_carries_generation_and_cleans) {
  fixture_t f;
  fixture_open(&f);
  cr_assert_eq(publish_gen(f.w), 0);
  mcr__snapshot_writer_close(f.w);
  /* Leftovers of a killed writer: a partial next generation, an older
   * generation, a temporary control file. */
  const char* junk[] = {"ring.3", "ring.1", "ctl.tmp.999"};
  for (int i = 0; i < 3; i++) {
    char p[128];
    snprintf(p, sizeof(p), "%s/%s", f.dir, junk[i]);
    int fd = open(p, O_CREAT | O_WRONLY, 0640);
    cr_assert(fd >= 0);
    close(fd);
  }
  char err[256] = "";
  cr_assert_eq(mcr__snapshot_writer_open(&f.w, f.dir, err, sizeof(err)), 0,
               "%s", err);
  cr_expect_eq(mcr__snapshot_writer_generation(f.w), 2);
  cr_expect_eq(dir_count_prefix(f.dir, "ring."), 1);
  cr_expect_eq(dir_count_prefix(f.dir, "ctl.tmp"), 0);
  publish_and_switch(&f);
  cr_assert_eq(mcr_snapshot_generation(f.s), 3);
  fixture_close(&f);
}

Test(snapshot, single_writer_lock) {
  fixture_t f;
  fixture_open(&f);
  mcr__snapshot_writer_t* w2;
  char err[256] = "";
  cr_assert_eq(mcr__snapshot_writer_open(&w2, f.dir, err, sizeof(err)),
               MCR_ESNAPSHOT);
  cr_expect(strstr(err, "lock") != NULL, "%s", err);
  fixture_close(&f);
}

Test(snapshot, refuses_unsafe_directories) {
  char tmpl[] = "/tmp/mcr-snap-XXXXXX";
  cr_assert_not_null(mkdtemp(tmpl));
  char dir[80], link[80];
  snprintf(dir, sizeof(dir), "%s/open", tmpl);
  cr_assert_eq(mkdir(dir, 0777), 0);
  cr_assert_eq(chmod(dir, 0777), 0);
  mcr__snapshot_writer_t* w;
  char err[256] = "";
  cr_expect_eq(mcr__snapshot_writer_open(&w, dir, err, sizeof(err)), MCR_EPERM);
  cr_expect(strstr(err, "world-writable") != NULL, "%s", err);
  snprintf(link, sizeof(link), "%s/link", tmpl);
  cr_assert_eq(symlink(dir, link), 0);
  cr_expect_eq(mcr__snapshot_writer_open(&w, link, err, sizeof(err)),
               MCR_EPERM);
  /* Readers: nothing published, missing directory. */
  mcr_snapshot_t* s;
  cr_expect_eq(
      mcr_snapshot_open(&s, "/nonexistent/mcr", NULL, err, sizeof(err)),
      MCR_ESNAPSHOT);
  char empty[80];
  snprintf(empty, sizeof(empty), "%s/empty", tmpl);
  cr_assert_eq(mcr__snapshot_writer_open(&w, empty, err, sizeof(err)), 0);
  cr_expect_eq(mcr_snapshot_open(&s, empty, NULL, err, sizeof(err)),
               MCR_ESNAPSHOT);
  cr_expect(strstr(err, "no ring published") != NULL, "%s", err);
  mcr__snapshot_writer_close(w);
  unlink(link);
  rmdir(dir);
  rm_rf(empty);
}

/* ---------------------------------------------------------------- storm */

#define STORM_READERS 8
#define STORM_GENERATIONS 300

/* A reader process: routes keys, checking each against the reference ring
 * of the generation it saw, until the writer says it is done (a byte on
 * `stop`); then one more refresh, which must find the last generation.
 * Writes {lookups, mismatches, switches, last generation seen}. */
static void storm_reader(const char* dir, int fd, int stop, unsigned seed) {
  mcr_snapshot_t* s = NULL;
  while (mcr_snapshot_open(&s, dir, NULL, NULL, 0) != 0)
    usleep(1000);
  uint64_t res[4] = {0, 0, 0, 0};
  uint64_t ref_gen = 0;
  mcr_ring_t* ref = NULL;
  char key[40];
  for (bool last = false;;) {
    char b;
    last = read(stop, &b, 1) == 1;
    for (int batch = 0; batch < 256; batch++) {
      if (mcr_snapshot_refresh(s) < 0)
        res[1]++; /* never expected */
      const mcr_ring_t* r = mcr_snapshot_ring(s);
      uint64_t g = mcr_ring_generation(r);
      if (g != ref_gen) {
        mcr_ring_free(ref);
        ref = gen_ring(g);
        ref_gen = g;
        res[2]++;
      }
      seed = seed * 1103515245u + 12345u;
      int len = snprintf(key, sizeof(key), "k:%u", seed);
      size_t got = mcr_ring_locate(r, key, (size_t)len);
      res[1] += got != mcr_ring_locate(ref, key, (size_t)len);
      res[0]++;
    }
    if (last)
      break;
  }
  res[3] = ref_gen;
  mcr_ring_free(ref);
  mcr_snapshot_free(s);
  ssize_t wr = write(fd, res, sizeof(res));
  _exit(wr == (ssize_t)sizeof(res) ? 0 : 3);
}

/* Readers route while the writer publishes STORM_GENERATIONS generations as
 * fast as it can. Whatever the machine's speed: no lookup ever disagrees
 * with the ring of the generation the reader had, no reader fails, and
 * every reader ends on the last generation. How many switches a reader
 * sees depends on scheduling, so it is only reported. */
Test(snapshot, republish_storm, .timeout = 120) {
  fixture_t f;
  fixture_open(&f);
  int pfd[2], stop[2];
  cr_assert_eq(pipe(pfd), 0);
  cr_assert_eq(pipe2(stop, O_NONBLOCK), 0);
  pid_t readers[STORM_READERS];
  for (int i = 0; i < STORM_READERS; i++) {
    readers[i] = fork();
    cr_assert(readers[i] >= 0);
    if (readers[i] == 0)
      storm_reader(f.dir, pfd[1], stop[0], 1000u + (unsigned)i);
  }
  /* The writer publishes in this process as fast as it can. */
  for (int i = 0; i < STORM_GENERATIONS; i++)
    cr_assert_eq(publish_gen(f.w), 0, "%s", mcr__snapshot_writer_error(f.w));
  uint64_t last = mcr__snapshot_writer_generation(f.w);
  for (int i = 0; i < STORM_READERS; i++)
    cr_assert_eq(write(stop[1], "s", 1), 1);
  uint64_t lookups = 0, mismatches = 0, switches = 0;
  for (int i = 0; i < STORM_READERS; i++) {
    int st;
    cr_assert_eq(waitpid(readers[i], &st, 0), readers[i]);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "reader %d died", i);
    uint64_t res[4];
    cr_assert_eq(read(pfd[0], res, sizeof(res)), (ssize_t)sizeof(res));
    lookups += res[0];
    mismatches += res[1];
    switches += res[2];
    cr_expect_eq(res[3], last, "a reader ended on generation %" PRIu64, res[3]);
  }
  close(pfd[0]);
  close(pfd[1]);
  close(stop[0]);
  close(stop[1]);
  cr_log_info("storm: %d generations, %" PRIu64 " lookups, %" PRIu64
              " reader switches",
              STORM_GENERATIONS, lookups, switches);
  cr_expect_eq(mismatches, 0);
  cr_expect_geq(switches, STORM_READERS);
  cr_expect_eq(dir_count_prefix(f.dir, "ring."), 1);
  fixture_close(&f);
}

/* ---------------------------------------------------------------- SIGKILL */

Test(snapshot, writer_killed_mid_publication, .timeout = 120) {
  fixture_t f;
  fixture_open(&f);
  mcr__snapshot_writer_close(f.w);
  f.w = NULL;
  const char* lt = getenv("MCR_LONG_TESTS");
  int iterations = lt && strcmp(lt, "1") == 0 ? 1000 : 200;
  srand((unsigned)getpid());
  for (int it = 0; it < iterations; it++) {
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
      mcr__snapshot_writer_t* w;
      if (mcr__snapshot_writer_open(&w, f.dir, NULL, 0) != 0)
        _exit(2);
      for (;;)
        if (publish_gen(w) != 0)
          _exit(3);
    }
    usleep((useconds_t)(rand() % 3000));
    kill(pid, SIGKILL);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFSIGNALED(st), "writer exited with %d", WEXITSTATUS(st));
    /* The reader never sees a partial ring. */
    int rc = mcr_snapshot_refresh(f.s);
    cr_assert(rc == 0 || rc == 1, "refresh: %s (%s)", mcr_strerror(rc),
              mcr_snapshot_last_error(f.s));
    const mcr_ring_t* r = mcr_snapshot_ring(f.s);
    mcr_ring_t* ref = gen_ring(mcr_ring_generation(r));
    char key[32];
    for (int k = 0; k < 200; k++) {
      int len = snprintf(key, sizeof(key), "it%d-%d", it, k);
      cr_assert_eq(mcr_ring_locate(r, key, (size_t)len),
                   mcr_ring_locate(ref, key, (size_t)len));
    }
    mcr_ring_free(ref);
  }
  /* The next writer recovers: generation carried on (how many writers got
   * to publish before their kill depends on the machine's speed), the
   * readers on it, leftovers gone. */
  char err[256] = "";
  cr_assert_eq(mcr__snapshot_writer_open(&f.w, f.dir, err, sizeof(err)), 0,
               "%s", err);
  uint64_t g = mcr__snapshot_writer_generation(f.w);
  cr_assert_geq(g, 1);
  cr_assert_geq(mcr_snapshot_refresh(f.s), 0);
  cr_assert_eq(mcr_snapshot_generation(f.s), g);
  cr_expect_eq(dir_count_prefix(f.dir, "ring."), 1);
  cr_expect_eq(dir_count_prefix(f.dir, "ctl.tmp"), 0);
  publish_and_switch(&f);
  cr_assert_eq(mcr_snapshot_generation(f.s), g + 1);
  fixture_close(&f);
}

/* ---------------------------------------------------------------- hostile */

/* The good image of generation `gen` (the ring of gen_nodes(gen)). */
static unsigned char* good_image(uint64_t gen, size_t* size) {
  mcr_ring_t* r = gen_ring(gen);
  *size = mcr__snapshot_size(r, 0);
  unsigned char* buf = malloc(*size);
  mcr__snapshot_encode(r, gen, 1700000000ull * 1000000000ull, NULL, NULL, buf,
                       *size);
  mcr_ring_free(r);
  return buf;
}

/* Writes buf as ring.<gen> with `mode`, publishes gen (test seam). */
static void plant(fixture_t* f, uint64_t gen, const void* buf, size_t size,
                  mode_t mode) {
  char p[128];
  snprintf(p, sizeof(p), "%s/ring.%" PRIu64, f->dir, gen);
  unlink(p);
  int fd = open(p, O_CREAT | O_EXCL | O_WRONLY, 0600);
  cr_assert(fd >= 0);
  cr_assert_eq(write(fd, buf, size), (ssize_t)size);
  cr_assert_eq(fchmod(fd, mode), 0);
  close(fd);
  mcr__snapshot_writer_store_generation(f->w, gen);
}

/* Refreshes reader s onto a hostile generation and expects it refused with
 * `want` and a message containing `msg` (NULL: any), the previous ring
 * kept and serving. */
static void expect_reader_refused(mcr_snapshot_t* s, int want,
                                  const char* msg) {
  uint64_t good = mcr_snapshot_generation(s);
  const mcr_ring_t* before = mcr_snapshot_ring(s);
  int rc = mcr_snapshot_refresh(s);
  cr_assert_eq(rc, want, "got %s (%s)", mcr_err_name(rc),
               mcr_snapshot_last_error(s));
  const char* e = mcr_snapshot_last_error(s);
  cr_expect(e[0] != '\0');
  if (msg)
    cr_expect(strstr(e, msg) != NULL, "message \"%s\" lacks \"%s\"", e, msg);
  /* Refused once, not retried on every call; last good ring serves. */
  cr_assert_eq(mcr_snapshot_refresh(s), 0);
  cr_assert_eq(mcr_snapshot_ring(s), before);
  cr_assert_eq(mcr_snapshot_generation(s), good);
  mcr_ring_t* ref = gen_ring(good);
  expect_same_routing(before, ref);
  mcr_ring_free(ref);
}

/* Every key of a sample, and a hash at each end of every bucket, lands on
 * a node of the ring. */
static void expect_lookups_in_range(const mcr_ring_t* r) {
  size_t nn = mcr_ring_node_count(r);
  for (int k = 0; k < 2000; k++) {
    char key[16];
    int len = snprintf(key, sizeof(key), "x%d", k);
    cr_assert_lt(mcr_ring_locate(r, key, (size_t)len), nn);
  }
  uint32_t shift = r->bucket_shift;
  for (uint32_t b = 0; b < mcr__ring_nbuckets(r); b++) {
    cr_assert_lt(mcr__ring_find(r, b << shift), nn);
    cr_assert_lt(mcr__ring_find(r, b << shift | ((1u << shift) - 1)), nn);
  }
}

/* Both readers refuse the hostile generation; then a good one moves on. */
static void expect_refused(fixture_t* f, int want, const char* msg) {
  expect_reader_refused(f->s, want, msg);
  expect_reader_refused(f->v, want, msg);
  publish_and_switch(f);
}

/* Damage only the full check sees: the verifying reader refuses it with
 * `msg`; the default reader serves it, every lookup in range. */
static void expect_verify_refused(fixture_t* f, const char* msg) {
  expect_reader_refused(f->v, MCR_ESNAPSHOT, msg);
  cr_assert_eq(mcr_snapshot_refresh(f->s), 1, "%s",
               mcr_snapshot_last_error(f->s));
  expect_lookups_in_range(mcr_snapshot_ring(f->s));
  publish_and_switch(f);
}

/* Damage to one node's entry, or to totals no lookup depends on: the
 * verifying reader refuses the file with `msg`; the default reader maps
 * it (it reads entries when they are used) with every lookup in range,
 * and reading entry `bad` is refused, not served (bad = -1: only totals
 * are damaged, and every entry reads). */
static void expect_entry_refused(fixture_t* f, const char* msg, int bad) {
  expect_reader_refused(f->v, MCR_ESNAPSHOT, msg);
  cr_assert_eq(mcr_snapshot_refresh(f->s), 1, "%s",
               mcr_snapshot_last_error(f->s));
  const mcr_ring_t* r = mcr_snapshot_ring(f->s);
  expect_lookups_in_range(r);
  for (size_t i = 0; i < mcr_ring_node_count(r); i++) {
    mcr_ring_node_t n;
    int rc = mcr_ring_node(r, i, &n);
    if ((int)i == bad)
      cr_assert_eq(rc, MCR_ESNAPSHOT, "node %zu: %s", i, mcr_err_name(rc));
    else if (bad < 0) /* only totals damaged: every entry reads */
      cr_assert_eq(rc, 0, "node %zu: %s", i, mcr_err_name(rc));
    else /* others may share the damage (a cut strings section) */
      cr_assert(rc == 0 || rc == MCR_ESNAPSHOT, "node %zu: %d", i, rc);
  }
  publish_and_switch(f);
}

/* Plants a copy of the good image with one field overwritten (resealed, so
 * the field check itself must refuse it): by both readers, or only by the
 * verifying one when `arrays_only` (then 1: served, lookups in range; 2:
 * an entry damaged, see expect_entry_refused with `bad`). */
static int bad_entry = -1;
static void corrupt_in(fixture_t* f, size_t section, size_t off,
                       const void* val, size_t len, const char* msg,
                       int arrays_only) {
  uint64_t gen = mcr__snapshot_writer_generation(f->w) + 1;
  size_t size;
  unsigned char* buf = good_image(gen, &size);
  uint64_t base = 0;
  if (section != SIZE_MAX)
    memcpy(&base, buf + section, 8);
  memcpy(buf + base + off, val, len);
  mcr__snapshot_seal(buf, size);
  plant(f, gen, buf, size, 0640);
  free(buf);
  if (arrays_only == 2)
    expect_entry_refused(f, msg, bad_entry);
  else if (arrays_only)
    expect_verify_refused(f, msg);
  else
    expect_refused(f, MCR_ESNAPSHOT, msg);
}

static void corrupt_at(fixture_t* f, size_t section, size_t off,
                       const void* val, size_t len, const char* msg) {
  corrupt_in(f, section, off, val, len, msg, 0);
}

/* One node's entry (bad >= 0) or the totals (bad = -1) damaged. */
static void corrupt_entry(fixture_t* f, size_t section, size_t off,
                          const void* val, size_t len, const char* msg,
                          int bad) {
  bad_entry = bad;
  corrupt_in(f, section, off, val, len, msg, 2);
}

static void corrupt_array(fixture_t* f, size_t section, size_t off,
                          const void* val, size_t len, const char* msg) {
  corrupt_in(f, section, off, val, len, msg, 1);
}

static void corrupt_field(fixture_t* f, size_t off, const void* val, size_t len,
                          const char* msg) {
  corrupt_at(f, SIZE_MAX, off, val, len, msg);
}

#define FIELD(name) offsetof(mcr__snap_header_t, name)

static void corrupt_u64(fixture_t* f, size_t off, uint64_t v, const char* msg) {
  corrupt_field(f, off, &v, 8, msg);
}

static void corrupt_u32(fixture_t* f, size_t off, uint32_t v, const char* msg) {
  corrupt_field(f, off, &v, 4, msg);
}

Test(snapshot, hostile_header_fields) {
  fixture_t f;
  fixture_open(&f);
  corrupt_field(&f, 0, "MCRRINGX", 8, "magic");
  uint16_t major = 2;
  corrupt_field(&f, FIELD(abi_major), &major, 2, "ABI major");
  corrupt_u32(&f, FIELD(header_size), 8, "header size");
  corrupt_u32(&f, FIELD(header_size), 1u << 30, "header size");
  corrupt_u64(&f, FIELD(total_size), 12345, "total size");
  corrupt_u64(&f, FIELD(generation), 999999, "generation");
  corrupt_u32(&f, FIELD(mode), 7, "mode");
  corrupt_u32(&f, FIELD(node_count), 0, "node count");
  corrupt_u32(&f, FIELD(node_count), 70000, "node count");
  corrupt_u32(&f, FIELD(node_count), 1, "node");
  corrupt_u32(&f, FIELD(point_count), 0, "point count");
  corrupt_u32(&f, FIELD(point_count), 7, "section");
  corrupt_u32(&f, FIELD(point_count), UINT32_MAX, "point count");
  corrupt_u32(&f, FIELD(bucket_bits), 12, "bucket bits");
  corrupt_u32(&f, FIELD(bucket_bits), 25, "bucket bits");
  corrupt_u32(&f, FIELD(bucket_bits), 17, "bucket section length");
  static const struct {
    size_t off;
    const char* name;
  } sections[] = {{FIELD(nodes_off), "node"},
                  {FIELD(strings_off), "string"},
                  {FIELD(points_off), "point"},
                  {FIELD(owners_off), "owner"},
                  {FIELD(buckets_off), "bucket"}};
  for (size_t i = 0; i < 5; i++) {
    /* Offset far out, offset + length overflowing, misaligned, length
     * wrong, length overflowing. */
    corrupt_u64(&f, sections[i].off, UINT64_MAX - 3, sections[i].name);
    corrupt_u64(&f, sections[i].off, 1u << 20, sections[i].name);
    corrupt_u64(&f, sections[i].off, 0, sections[i].name);
    corrupt_u64(&f, sections[i].off + 8, UINT64_MAX, sections[i].name);
    uint64_t four = 4;
    if (sections[i].off == FIELD(strings_off)) /* node 0's strings cut */
      corrupt_entry(&f, SIZE_MAX, sections[i].off + 8, &four, 8, "node 0", 0);
    else
      corrupt_u64(&f, sections[i].off + 8, 4, NULL);
  }
  /* The identity and remap sections (ABI minor 3). */
  corrupt_u64(&f, FIELD(idents_off), UINT64_MAX - 3, "identity");
  corrupt_u64(&f, FIELD(idents_len), 8, "identity");
  corrupt_u64(&f, FIELD(remap_len), 6, "remap length");
  corrupt_u64(&f, FIELD(remap_len), 1u << 20, "remap length");
  uint64_t far_map[2] = {UINT64_MAX - 3, 8}; /* remap_off, remap_len */
  corrupt_field(&f, FIELD(remap_off), far_map, 16, "remap section");
  /* A map whose entries are whatever bytes it covers: refused by the full
   * check; a client checks every entry it uses against the identities. */
  uint64_t eight = 8;
  corrupt_entry(&f, SIZE_MAX, FIELD(remap_len), &eight, 8, "remap entry", -1);
  /* Identities that do not match their entries: refused by the full
   * check; routing is not hurt (a client only matches old nodes by them). */
  uint64_t noid = 77;
  corrupt_entry(&f, FIELD(idents_off), 8, &noid, 8, "node 1", -1);
  corrupt_u64(&f, FIELD(arcs_off), UINT64_MAX - 3, "arc");
  corrupt_u64(&f, FIELD(arcs_off), 4, "arc");
  corrupt_u64(&f, FIELD(arcs_len), 8, "arc");
  /* The bucket index must end at the point count. */
  uint32_t big = UINT32_MAX;
  corrupt_at(&f, FIELD(buckets_off), 4 * SMALL_BUCKETS, &big, 4,
             "bucket index");
  /* Strings without their NUL (the first host is at most 15 bytes). */
  corrupt_entry(&f, FIELD(strings_off), 0, "!!!!!!!!!!!!!!!!", 16, "node 0", 0);
  /* Per-node point counts and arcs that do not add up. */
  corrupt_entry(&f, FIELD(nodes_off), offsetof(mcr__snap_node_t, points), &big,
                4, "point counts", -1);
  uint64_t arc = 12345;
  corrupt_entry(&f, FIELD(arcs_off), 0, &arc, 8, "arcs add up", -1);
  arc = (1ull << 32) + 1;
  corrupt_entry(&f, FIELD(arcs_off), 8, &arc, 8, "node 1", 1);

  /* Damage to the arrays: unsorted points, an owner out of range, wrong
   * buckets (in range and beyond the points), counts that add up but
   * disagree with the continuum. The verifying reader refuses each; the
   * default one serves it without a lookup leaving the arrays. */
  corrupt_array(&f, FIELD(points_off), 0, &big, 4, "not sorted");
  corrupt_array(&f, FIELD(owners_off), 8, &big, 4, "names node");
  uint32_t b1 = 12345;
  corrupt_array(&f, FIELD(buckets_off), 4 * 1000, &b1, 4, "bucket");
  corrupt_array(&f, FIELD(buckets_off), 4 * 1000, &big, 4, "bucket");
  corrupt_array(&f, FIELD(buckets_off), 0, &big, 4, "bucket");
  /* Node 0 claims one point more and node 1 one less: the totals hold. */
  size_t size;
  unsigned char* img =
      good_image(mcr__snapshot_writer_generation(f.w) + 1, &size);
  mcr__snap_header_t h;
  memcpy(&h, img, sizeof(h));
  unsigned char patch[MCR__SNAP_NODE_SIZE + 4];
  size_t at = h.nodes_off + offsetof(mcr__snap_node_t, points);
  memcpy(patch, img + at, sizeof(patch));
  free(img);
  uint32_t p0, p1;
  memcpy(&p0, patch, 4);
  memcpy(&p1, patch + MCR__SNAP_NODE_SIZE, 4);
  p0++;
  p1--;
  memcpy(patch, &p0, 4);
  memcpy(patch + MCR__SNAP_NODE_SIZE, &p1, 4);
  corrupt_array(&f, FIELD(nodes_off), offsetof(mcr__snap_node_t, points), patch,
                sizeof(patch), "disagrees");
  fixture_close(&f);
}

/* Refreshes s onto a damaged generation: refused, or served with every
 * lookup in range. */
static void expect_refused_or_safe(mcr_snapshot_t* s) {
  int rc = mcr_snapshot_refresh(s);
  cr_assert(rc == 1 || rc == MCR_ESNAPSHOT, "%d", rc);
  expect_lookups_in_range(mcr_snapshot_ring(s));
}

Test(snapshot, hostile_checksum_and_byte_flips) {
  fixture_t f;
  fixture_open(&f);
  srand(99);
  /* Any single flipped byte, header or payload, fails the verifying
   * reader's checksum; the default reader refuses it or serves it safely. */
  for (int i = 0; i < 300; i++) {
    uint64_t gen = mcr__snapshot_writer_generation(f.w) + 1;
    size_t size;
    unsigned char* buf = good_image(gen, &size);
    size_t at = i < 192 ? (size_t)i : (size_t)rand() % (size - 8);
    buf[at] ^= (unsigned char)(1 + rand() % 255);
    plant(&f, gen, buf, size, 0640);
    free(buf);
    expect_reader_refused(f.v, MCR_ESNAPSHOT, NULL);
    expect_refused_or_safe(f.s);
    publish_and_switch(&f);
  }
  /* Resealed random damage to the arrays: refused or, when the damage
   * passes the checks a reader makes, served without a lookup leaving the
   * file. */
  for (int i = 0; i < 100; i++) {
    uint64_t gen = mcr__snapshot_writer_generation(f.w) + 1;
    size_t size;
    unsigned char* buf = good_image(gen, &size);
    for (int k = 0; k < 4; k++)
      buf[192 + (size_t)rand() % (size - 200)] ^= (unsigned char)rand();
    mcr__snapshot_seal(buf, size);
    plant(&f, gen, buf, size, 0640);
    free(buf);
    expect_refused_or_safe(f.s);
    expect_refused_or_safe(f.v);
    publish_and_switch(&f);
  }
  fixture_close(&f);
}

/* A bucket entry far beyond the points, over points that are all below
 * the hash: without the clamp in the lookup, the scan would run through
 * the owners, the index and off the end of the mapping. */
Test(snapshot, lookups_stay_inside_a_damaged_file) {
  fixture_t f;
  fixture_open(&f);
  uint64_t gen = mcr__snapshot_writer_generation(f.w) + 1;
  size_t size;
  unsigned char* buf = good_image(gen, &size);
  mcr__snap_header_t h;
  memcpy(&h, buf, sizeof(h));
  memset(buf + h.points_off, 0, h.points_len);
  uint32_t start = 0, end = 0x80000000u;
  memcpy(buf + h.buckets_off + 4 * (SMALL_BUCKETS - 2), &start, 4);
  memcpy(buf + h.buckets_off + 4 * (SMALL_BUCKETS - 1), &end, 4);
  mcr__snapshot_seal(buf, size);
  plant(&f, gen, buf, size, 0640);
  free(buf);
  expect_verify_refused(&f, "not sorted");
  fixture_close(&f);
}

/* A file from a writer of ABI minor 0 has no arcs section: the reader
 * computes the arcs, so it checks such a file in full, damage included. */
Test(snapshot, minor_0_files_are_checked_in_full) {
  fixture_t f;
  fixture_open(&f);
  for (int damaged = 0; damaged < 2; damaged++) {
    uint64_t gen = mcr__snapshot_writer_generation(f.w) + 1;
    size_t size;
    unsigned char* buf = good_image(gen, &size);
    mcr__snap_header_t h;
    memcpy(&h, buf, sizeof(h));
    h.abi_minor = 0;
    h.arcs_off = h.arcs_len = 0;
    memcpy(buf, &h, sizeof(h));
    if (damaged)
      memset(buf + h.points_off, 0xff, 4);
    mcr__snapshot_seal(buf, size);
    plant(&f, gen, buf, size, 0640);
    free(buf);
    if (damaged) {
      expect_refused(&f, MCR_ESNAPSHOT, "not sorted");
      continue;
    }
    cr_assert_eq(mcr_snapshot_refresh(f.s), 1, "%s",
                 mcr_snapshot_last_error(f.s));
    mcr_ring_t* ref = gen_ring(gen);
    expect_same_ring(mcr_snapshot_ring(f.s), ref);
    mcr_ring_free(ref);
    cr_assert_eq(mcr_snapshot_refresh(f.v), 1);
  }
  fixture_close(&f);
}

Test(snapshot, hostile_truncated_and_extended) {
  fixture_t f;
  fixture_open(&f);
  size_t cuts[] = {0, 1, 100, 191, 199, 200, 4096, 0, 0};
  for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
    uint64_t gen = mcr__snapshot_writer_generation(f.w) + 1;
    size_t size;
    unsigned char* buf = good_image(gen, &size);
    size_t len = cuts[i] ? cuts[i] : i == 7 ? size / 2 : size - 1;
    plant(&f, gen, buf, len, 0640);
    free(buf);
    expect_refused(&f, MCR_ESNAPSHOT, len < 200 ? "size" : NULL);
  }
  /* Longer than its header says. */
  uint64_t gen = mcr__snapshot_writer_generation(f.w) + 1;
  size_t size;
  unsigned char* buf = good_image(gen, &size);
  buf = realloc(buf, size + 64);
  memset(buf + size, 0, 64);
  plant(&f, gen, buf, size + 64, 0640);
  free(buf);
  expect_refused(&f, MCR_ESNAPSHOT, "total size");
  /* Published but missing. */
  mcr__snapshot_writer_store_generation(
      f.w, mcr__snapshot_writer_generation(f.w) + 1);
  expect_refused(&f, MCR_ESNAPSHOT, "missing");
  fixture_close(&f);
}

static void plant_good(fixture_t* f, mode_t mode, uid_t owner) {
  uint64_t gen = mcr__snapshot_writer_generation(f->w) + 1;
  size_t size;
  unsigned char* buf = good_image(gen, &size);
  plant(f, gen, buf, size, mode);
  free(buf);
  if (owner != (uid_t)-1) {
    char p[128];
    snprintf(p, sizeof(p), "%s/ring.%" PRIu64, f->dir, gen);
    cr_assert_eq(chown(p, owner, (gid_t)-1), 0, "chown: %s", strerror(errno));
  }
}

Test(snapshot, hostile_permissions_owner_symlink) {
  fixture_t f;
  fixture_open(&f);
  plant_good(&f, 0660, (uid_t)-1);
  expect_refused(&f, MCR_EPERM, "writable by group");
  plant_good(&f, 0642, (uid_t)-1);
  expect_refused(&f, MCR_EPERM, "writable by group or other");
  if (geteuid() == 0) {
    plant_good(&f, 0640, 4242);
    expect_refused(&f, MCR_EPERM, "owned by uid 4242");
  }
  /* A symlink to a perfectly good file is still refused. */
  uint64_t gen = mcr__snapshot_writer_generation(f.w) + 1;
  size_t size;
  unsigned char* buf = good_image(gen, &size);
  char target[128], p[128];
  snprintf(target, sizeof(target), "%s/elsewhere", f.dir);
  int fd = open(target, O_CREAT | O_WRONLY | O_TRUNC, 0640);
  cr_assert_eq(write(fd, buf, size), (ssize_t)size);
  close(fd);
  free(buf);
  snprintf(p, sizeof(p), "%s/ring.%" PRIu64, f.dir, gen);
  cr_assert_eq(symlink(target, p), 0);
  mcr__snapshot_writer_store_generation(f.w, gen);
  expect_refused(&f, MCR_EPERM, "symlink");
  unlink(target);
  /* A directory in place of the file. */
  gen = mcr__snapshot_writer_generation(f.w) + 1;
  snprintf(p, sizeof(p), "%s/ring.%" PRIu64, f.dir, gen);
  cr_assert_eq(mkdir(p, 0750), 0);
  mcr__snapshot_writer_store_generation(f.w, gen);
  expect_refused(&f, MCR_EPERM, "regular");
  rmdir(p);
  fixture_close(&f);
}

Test(snapshot, expected_owner_is_configurable) {
  fixture_t f;
  fixture_open(&f);
  mcr_snapshot_opts_t o;
  mcr_snapshot_opts_init(&o);
  cr_assert_eq(o.expected_uid, -1);
  o.expected_uid = (long)geteuid() + 1;
  mcr_snapshot_t* s;
  char err[256] = "";
  cr_assert_eq(mcr_snapshot_open(&s, f.dir, &o, err, sizeof(err)), MCR_EPERM);
  cr_expect(strstr(err, "owned by uid") != NULL, "%s", err);
  o.expected_uid = (long)geteuid();
  cr_assert_eq(mcr_snapshot_open(&s, f.dir, &o, err, sizeof(err)), 0, "%s",
               err);
  mcr_snapshot_free(s);
  fixture_close(&f);
}
