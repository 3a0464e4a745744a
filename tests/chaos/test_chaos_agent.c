/* test_chaos_agent.c — the agent and its sources under faults.
 *
 * The ring every worker routes by comes from one agent process. These
 * tests break it while workers use its ring:
 *   - the agent SIGKILLed at random moments while the node list changes
 *     and forked workers route traffic through the ring directory: no
 *     worker ever sees a refused (torn) generation, generations only go
 *     up, and every restarted agent carries on;
 *   - the ring filesystem full during a publish (a small tmpfs when it can
 *     be mounted, else ENOSPC injected by the enospc.so shim): the agent
 *     logs it, the last ring stays in service, and the next publish after
 *     space comes back succeeds;
 *   - the configuration endpoint flapping between hanging, closing
 *     mid-reply, wrong byte counts, malformed nodes and being down: the
 *     published ring does not change until a good reply with a new list;
 *   - the endpoint slow (a reply trickled past the I/O timeout, and one
 *     trickled within it) and returning randomly mutated replies: the
 *     agent survives, keeps the last ring, and recovers.
 * Durations: MCR_CHAOS_SECONDS (default 3) per chaos phase; seeds are
 * printed and can be replayed with MCR_CHAOS_SEED.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/statvfs.h>

#include "chaos.h"
#include "fakecfg.h"

TestSuite(chaos_agent, .timeout = 120);

#define FAST \
  "--interval", "0.02", "--max-backoff", "0.05", "--io-timeout", "0.3"

/* Node list text of the subset `mask` (bit i: node i) of `n` ports: in
 * the fake endpoint's "host|ip|port" lines, or (file) in the agent's
 * --file format "host:port". */
static void nodes_fmt(char* out, size_t cap, const int* ports, int n,
                      unsigned mask, bool file) {
  size_t len = 0;
  out[0] = '\0';
  for (int i = 0; i < n; i++)
    if (mask & (1u << i))
      len += (size_t)(file ? snprintf(out + len, cap - len, "127.0.0.1:%d\n",
                                      ports[i])
                           : snprintf(out + len, cap - len,
                                      "n%d.test|127.0.0.1|%d\n", i, ports[i]));
}

static void nodes_text(char* out, size_t cap, const int* ports, int n,
                       unsigned mask) {
  nodes_fmt(out, cap, ports, n, mask, false);
}

static void nodes_file(char* out, size_t cap, const int* ports, int n,
                       unsigned mask) {
  nodes_fmt(out, cap, ports, n, mask, true);
}

/* ------------------------------------------------ SIGKILL under traffic */

typedef struct {
  uint64_t ops, errors, wrong, switches, ring_errors, backwards;
} wtally_t;

static void ring_worker(const char* ring, double end, int fd) {
  mcr_client_opts_t o = opts_default();
  o.ring_dir = ring;
  o.io_timeout_ms = 300;
  o.failure_limit = 0;
  mcr_client_t* c;
  char err[256];
  if (mcr_client_new(&c, &o, err, sizeof(err)) != 0) {
    fprintf(stderr, "worker: %s\n", err);
    _exit(3);
  }
  wtally_t t = {0};
  uint64_t last_gen = 0;
  unsigned seed = (unsigned)getpid();
  while (chaos_now_s() < end) {
    char key[32];
    int kl = snprintf(key, sizeof(key), "k%d-%d", getpid(), rand_r(&seed) % 50);
    int rc = mcr_client_set(c, key, (size_t)kl, key, (size_t)kl, 0, 0, 0);
    mcr_item_t it;
    if (rc == MCR_OK) {
      rc = mcr_client_get(c, key, (size_t)kl, &it);
      /* The ring may move the key between the two calls (a miss), but a
       * hit is this key's value. */
      if (rc == MCR_OK &&
          (it.value_len != (size_t)kl || memcmp(it.value, key, (size_t)kl)))
        t.wrong++;
    }
    if (rc < 0)
      t.errors++;
    uint64_t g = mcr_client_generation(c);
    if (g < last_gen)
      t.backwards++;
    last_gen = g;
    t.ops++;
  }
  mcr_client_stats_t st;
  mcr_client_stats(c, &st);
  t.switches = st.ring_switches;
  t.ring_errors = st.ring_errors;
  mcr_client_free(c);
  if (write(fd, &t, sizeof(t)) != (ssize_t)sizeof(t))
    _exit(4);
  _exit(0);
}

Test(chaos_agent, sigkill_at_random_moments_under_traffic) {
  chaos_seed("sigkill_at_random_moments");
  chaos_env_t e;
  chaos_env_init(&e);
  mcd_t m[3];
  int ports[3];
  for (int i = 0; i < 3; i++) {
    mcd_start(&m[i], NULL);
    ports[i] = m[i].port;
  }
  char text[512];
  nodes_file(text, sizeof(text), ports, 3, 7);
  cr_assert_eq(fakecfg_write_file(e.nodes, text), 0);
  pid_t agent = chaos_agent_spawn(
      &e, NULL, (const char* const[]){"--file", e.nodes, FAST, NULL});
  ring_wait_gen(e.ring, 1, 8000);

  double secs = chaos_seconds();
  double end = chaos_now_s() + secs;
  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  enum { NW = 3 };
  pid_t w[NW];
  for (int i = 0; i < NW; i++) {
    w[i] = fork();
    cr_assert_geq(w[i], 0);
    if (w[i] == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      close(fds[0]);
      ring_worker(e.ring, end, fds[1]);
    }
  }
  close(fds[1]);
  int kills = 0;
  unsigned mask = 7;
  while (chaos_now_s() < end - 0.5) {
    /* Change the node list (never empty), then kill the agent a random
     * moment later: mid-poll, mid-publish, or idle. */
    unsigned next;
    do
      next = 1 + (unsigned)(rand() % 7);
    while (next == mask);
    mask = next;
    nodes_file(text, sizeof(text), ports, 3, mask);
    cr_assert_eq(fakecfg_write_file(e.nodes, text), 0);
    usleep((useconds_t)(rand() % 60000));
    kill(agent, SIGKILL);
    waitpid(agent, NULL, 0);
    kills++;
    agent = chaos_agent_spawn(
        &e, NULL, (const char* const[]){"--file", e.nodes, FAST, NULL});
  }
  wtally_t sum = {0};
  for (int i = 0; i < NW; i++) {
    wtally_t t;
    cr_assert_eq(read(fds[0], &t, sizeof(t)), (ssize_t)sizeof(t),
                 "a worker died");
    sum.ops += t.ops;
    sum.errors += t.errors;
    sum.wrong += t.wrong;
    sum.switches += t.switches;
    sum.ring_errors += t.ring_errors;
    sum.backwards += t.backwards;
    int st;
    waitpid(w[i], &st, 0);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "worker status %d", st);
  }
  close(fds[0]);
  uint64_t before = deploy_ring_gen(e.ring);
  /* The last agent is alive and still publishes a change. */
  nodes_file(text, sizeof(text), ports, 3, mask == 7 ? 3 : 7);
  cr_assert_eq(fakecfg_write_file(e.nodes, text), 0);
  uint64_t after = ring_wait_gen(e.ring, before + 1, 8000);
  fprintf(stderr,
          "%d agent kills in %.1f s: generations 1..%" PRIu64 ", %" PRIu64
          " ops, %" PRIu64 " ring switches, %" PRIu64 " errors, %" PRIu64
          " refused generations, %" PRIu64 " wrong values\n",
          kills, secs, after, sum.ops, sum.switches, sum.errors,
          sum.ring_errors, sum.wrong);
  cr_expect_eq(sum.ring_errors, 0, "a worker refused a generation");
  cr_expect_eq(sum.backwards, 0, "a generation went backwards");
  cr_expect_eq(sum.wrong, 0);
  cr_expect_gt(sum.switches, 0);
  cr_expect_gt(kills, 5);
  /* What killed agents left behind was cleaned by their successors. */
  cr_expect_leq(dir_count_prefix(e.ring, "ring."), 2);
  cr_expect_eq(dir_count_prefix(e.ring, "ctl.tmp."), 0);
  kill(agent, SIGTERM);
  cr_expect_eq(wait_exit(agent, 8000), 0);
  for (int i = 0; i < 3; i++)
    mcd_stop(&m[i]);
  chaos_env_fini(&e);
}

/* ------------------------------------------------ filesystem full */

Test(chaos_agent, ring_filesystem_full_keeps_last_ring) {
  chaos_env_t e;
  chaos_env_init(&e);
  char fs[80], flag[80], filler[128], env_flag[160], env_pre[600];
  snprintf(fs, sizeof(fs), "%s/fs", e.dir);
  snprintf(flag, sizeof(flag), "%s/full", e.dir);
  cr_assert_eq(mkdir(fs, 0755), 0);
  /* A 1 MiB tmpfs holds a few ring files (~270 KiB each); without the
   * privilege to mount one, inject ENOSPC with the shim instead. */
  bool tmpfs = mount("tmpfs", fs, "tmpfs", 0, "size=1m,mode=0755") == 0;
  const char* envs[4] = {NULL};
  if (tmpfs) {
    snprintf(e.ring, sizeof(e.ring), "%s/ring", fs);
  } else {
    const char* top = getenv("MCR_TOP_BUILDDIR");
    snprintf(env_pre, sizeof(env_pre),
             "LD_PRELOAD=%s/tests/chaos/.libs/enospc.so", top ? top : ".");
    snprintf(env_flag, sizeof(env_flag), "MCR_ENOSPC_FLAG=%s", flag);
    cr_assert_eq(access(env_pre + strlen("LD_PRELOAD="), R_OK), 0,
                 "no shim: %s", env_pre);
    envs[0] = env_pre;
    envs[1] = env_flag;
    /* Under ASan the shim comes before the ASan runtime: allow it. */
    envs[2] = "ASAN_OPTIONS=verify_asan_link_order=0:detect_leaks=0";
  }
  fprintf(stderr, "filesystem full by %s\n",
          tmpfs ? "a 1 MiB tmpfs" : "the ENOSPC shim");
  cr_assert_eq(fakecfg_write_file(e.nodes, "127.0.0.1:11211\n"), 0);
  pid_t agent = chaos_agent_spawn(
      &e, envs, (const char* const[]){"--file", e.nodes, FAST, NULL});
  ring_wait_gen(e.ring, 1, 8000);
  mcr_snapshot_t* s;
  char err[256] = "";
  cr_assert_eq(mcr_snapshot_open(&s, e.ring, NULL, err, sizeof(err)), 0, "%s",
               err);

  /* Fill the disk, then change the nodes: the publish must fail. */
  if (tmpfs) {
    snprintf(filler, sizeof(filler), "%s/filler", fs);
    struct statvfs v;
    cr_assert_eq(statvfs(fs, &v), 0);
    off_t room = (off_t)(v.f_bavail * v.f_bsize) - 64 * 1024;
    int fd = open(filler, O_WRONLY | O_CREAT, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(posix_fallocate(fd, 0, room), 0);
    close(fd);
  } else {
    cr_assert_eq(fakecfg_write_file(flag, "1"), 0);
  }
  cr_assert_eq(
      fakecfg_write_file(e.nodes, "127.0.0.1:11211\n127.0.0.2:11211\n"), 0);
  int64_t deadline = now_ms() + 8000;
  while (!strstr(deploy_slurp(e.log), "No space left on device")) {
    cr_assert(now_ms() < deadline, "the agent never logged ENOSPC:\n%s",
              deploy_slurp(e.log));
    usleep(10000);
  }
  usleep(200000); /* several more failed polls */
  cr_expect(deploy_alive(agent), "the agent died on a full filesystem");
  /* The last ring stays in service, for old and new readers alike. */
  cr_expect_eq(mcr_snapshot_refresh(s), 0);
  cr_expect_eq(mcr_snapshot_generation(s), 1);
  cr_expect_eq(mcr_ring_node_count(mcr_snapshot_ring(s)), 1);
  cr_expect_eq(deploy_ring_gen(e.ring), 1);
  /* Each failed poll creates ring.2 and removes it again: between two
   * polls there is one ring file. A partial file that stayed would be
   * there at every look. */
  deadline = now_ms() + 8000;
  while (dir_count_prefix(e.ring, "ring.") != 1 && now_ms() < deadline)
    usleep(1000);
  cr_expect_eq(dir_count_prefix(e.ring, "ring."), 1,
               "a partial ring file stayed");
  /* Space comes back: the change is published. */
  if (tmpfs)
    cr_assert_eq(unlink(filler), 0);
  else
    cr_assert_eq(unlink(flag), 0);
  ring_wait_gen(e.ring, 2, 8000);
  cr_expect_eq(mcr_snapshot_refresh(s), 1, "%s", mcr_snapshot_last_error(s));
  cr_expect_eq(mcr_ring_node_count(mcr_snapshot_ring(s)), 2);
  mcr_snapshot_free(s);
  kill(agent, SIGTERM);
  cr_expect_eq(wait_exit(agent, 8000), 0);
  if (tmpfs)
    umount2(fs, MNT_DETACH);
  chaos_env_fini(&e);
}

/* ------------------------------------------------ endpoint flapping */

Test(chaos_agent, endpoint_flapping_keeps_last_ring) {
  chaos_seed("endpoint_flapping");
  chaos_env_t e;
  chaos_env_init(&e);
  int ports[3] = {21001, 21002, 21003};
  char text[512];
  nodes_text(text, sizeof(text), ports, 3, 7);
  cr_assert_eq(fakecfg_write_file(e.nodes, text), 0);
  fakecfg_opts_t fo = {.mode = FAKECFG_NORMAL, .nodes_file = e.nodes};
  fakecfg_t* f = fakecfg_start(&fo);
  cr_assert(f);
  int port = fakecfg_port(f);
  char ep[64];
  snprintf(ep, sizeof(ep), "%s", fakecfg_endpoint(f));
  pid_t agent = chaos_agent_spawn(
      &e, NULL, (const char* const[]){"--elasticache", ep, FAST, NULL});
  ring_wait_gen(e.ring, 1, 8000);

  static const fakecfg_mode_t bad[] = {FAKECFG_HANG, FAKECFG_CLOSE_MID,
                                       FAKECFG_BAD_COUNT, FAKECFG_MALFORMED};
  int flaps = 0, downs = 0;
  double end = chaos_now_s() + chaos_seconds();
  while (chaos_now_s() < end) {
    int pick = rand() % 6;
    if (pick == 5 && f) { /* down for a while, then back on the same port */
      fakecfg_stop(f);
      f = NULL;
      downs++;
    } else {
      if (!f) {
        fo.port = port;
        f = fakecfg_start(&fo);
        cr_assert(f, "cannot restart the endpoint on port %d", port);
      }
      /* Normal now and then: the same list, so still nothing to publish. */
      fakecfg_set_mode(f, pick < 4 ? bad[pick] : FAKECFG_NORMAL);
    }
    flaps++;
    usleep(30000 + (useconds_t)(rand() % 120000));
    cr_assert_eq(deploy_ring_gen(e.ring), 1,
                 "the ring changed during the flapping");
    cr_assert(deploy_alive(agent), "the agent died:\n%s", deploy_slurp(e.log));
  }
  if (!f) {
    fo.port = port;
    f = fakecfg_start(&fo);
    cr_assert(f);
  }
  fakecfg_set_mode(f, FAKECFG_NORMAL);
  nodes_text(text, sizeof(text), ports, 3, 5);
  cr_assert_eq(fakecfg_write_file(e.nodes, text), 0);
  ring_wait_gen(e.ring, 2, 8000);
  int got[3];
  cr_expect_eq(chaos_ring_ports(e.ring, got, 3), 2);
  fprintf(stderr, "%d flaps (%d times down): ring kept, then followed\n", flaps,
          downs);
  kill(agent, SIGTERM);
  cr_expect_eq(wait_exit(agent, 8000), 0);
  fakecfg_stop(f);
  chaos_env_fini(&e);
}

/* ------------------------------------------------ slow and garbage */

typedef enum { EP_GOOD, EP_SLOW, EP_GARBAGE } ep_mode_t;

typedef struct {
  int lfd, port;
  pthread_t th;
  volatile int stop;
  volatile ep_mode_t mode;
  volatile int trickle_ms; /* EP_SLOW: whole reply spread over this */
  char body[256];          /* the Auto Discovery block */
  unsigned seed;
  volatile int replies;
} ep_t;

static void ep_reply(ep_t* ep, int fd) {
  char out[1024];
  int n = snprintf(out, sizeof(out), "CONFIG cluster 0 %zu\r\n%s\r\nEND\r\n",
                   strlen(ep->body), ep->body);
  if (ep->mode == EP_GARBAGE) {
    /* 1..4 random edits of a valid reply: flips, deletions, insertions,
     * truncation. */
    int edits = 1 + (int)(rand_r(&ep->seed) % 4);
    for (int k = 0; k < edits && n > 0; k++) {
      int at = (int)(rand_r(&ep->seed) % (unsigned)n);
      switch (rand_r(&ep->seed) % 4) {
        case 0:
          out[at] ^= (char)(1 + rand_r(&ep->seed) % 255);
          break;
        case 1:
          memmove(out + at, out + at + 1, (size_t)(n - at - 1));
          n--;
          break;
        case 2:
          if (n < (int)sizeof(out) - 1) {
            memmove(out + at + 1, out + at, (size_t)(n - at));
            out[at] = "|: \n\r0123456789.x"[rand_r(&ep->seed) % 17];
            n++;
          }
          break;
        case 3:
          n = at;
          break;
      }
    }
  }
  if (ep->mode == EP_SLOW) {
    int per = ep->trickle_ms * 1000 / (n ? n : 1);
    for (int i = 0; i < n && !ep->stop; i++) {
      if (send(fd, out + i, 1, MSG_NOSIGNAL) != 1)
        return;
      usleep((useconds_t)per);
    }
  } else if (n > 0 && send(fd, out, (size_t)n, MSG_NOSIGNAL) < 0) {
    return;
  }
  ep->replies++;
}

/* One connection: answers "version" and "config get cluster" lines. */
static void ep_serve(ep_t* ep, int fd) {
  char buf[512];
  size_t len = 0;
  while (!ep->stop) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 50) <= 0)
      continue;
    ssize_t r = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
    if (r <= 0)
      return;
    len += (size_t)r;
    buf[len] = '\0';
    char* nl;
    while ((nl = strstr(buf, "\r\n")) != NULL) {
      *nl = '\0';
      if (strcmp(buf, "version") == 0) {
        if (send(fd, "VERSION 1.6.21\r\n", 16, MSG_NOSIGNAL) < 0)
          return;
      } else if (strncmp(buf, "config get", 10) == 0) {
        ep_reply(ep, fd);
        return; /* and close: a mutated reply cannot leave us waiting */
      } else if (send(fd, "ERROR\r\n", 7, MSG_NOSIGNAL) < 0) {
        return;
      }
      size_t used = (size_t)(nl + 2 - buf);
      memmove(buf, buf + used, len - used + 1);
      len -= used;
    }
    if (len >= sizeof(buf) - 1)
      return;
  }
}

static void* ep_main(void* arg) {
  ep_t* ep = arg;
  while (!ep->stop) {
    struct pollfd p = {.fd = ep->lfd, .events = POLLIN};
    if (poll(&p, 1, 50) <= 0)
      continue;
    int fd = accept(ep->lfd, NULL, NULL);
    if (fd < 0)
      continue;
    ep_serve(ep, fd);
    close(fd);
  }
  return NULL;
}

static void ep_start(ep_t* ep, const char* body, unsigned seed) {
  memset(ep, 0, sizeof(*ep));
  snprintf(ep->body, sizeof(ep->body), "%s", body);
  ep->seed = seed;
  ep->lfd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof(a);
  cr_assert_eq(bind(ep->lfd, (struct sockaddr*)&a, sizeof(a)), 0);
  cr_assert_eq(listen(ep->lfd, 16), 0);
  getsockname(ep->lfd, (struct sockaddr*)&a, &al);
  ep->port = ntohs(a.sin_port);
  cr_assert_eq(pthread_create(&ep->th, NULL, ep_main, ep), 0);
}

static void ep_stop(ep_t* ep) {
  ep->stop = 1;
  pthread_join(ep->th, NULL);
  close(ep->lfd);
}

Test(chaos_agent, endpoint_slow_and_garbage) {
  unsigned seed = chaos_seed("endpoint_slow_and_garbage");
  chaos_env_t e;
  chaos_env_init(&e);
  ep_t ep;
  ep_start(&ep, "1\na.test|10.1.0.1|11211 b.test|10.1.0.2|11211\n", seed);
  char endpoint[32];
  snprintf(endpoint, sizeof(endpoint), "127.0.0.1:%d", ep.port);
  pid_t agent = chaos_agent_spawn(
      &e, NULL,
      (const char* const[]){"--elasticache", endpoint, "--interval", "0.02",
                            "--max-backoff", "0.05", "--io-timeout", "0.4",
                            NULL});
  ring_wait_gen(e.ring, 1, 8000);

  /* Slow past the I/O timeout: every poll times out, the ring stays. */
  snprintf(ep.body, sizeof(ep.body), "2\na.test|10.1.0.1|11211\n");
  ep.trickle_ms = 1200;
  ep.mode = EP_SLOW;
  int before = ep.replies;
  int64_t deadline = now_ms() + 8000;
  while (!strstr(deploy_slurp(e.log), "ETIMEOUT") &&
         !strstr(deploy_slurp(e.log), "timed out")) {
    cr_assert(now_ms() < deadline, "no timeout logged:\n%s",
              deploy_slurp(e.log));
    usleep(20000);
  }
  usleep(600000);
  cr_expect_eq(deploy_ring_gen(e.ring), 1,
               "a reply slower than the timeout won");
  (void)before;
  /* Slow but within the timeout: published. */
  ep.trickle_ms = 100;
  ring_wait_gen(e.ring, 2, 8000);

  /* Garbage: mutated replies for a while. The agent must live through it;
   * a mutation can still be a valid reply (another address), so only
   * survival and recovery are checked here (mcr__ec_parse is fuzzed). */
  ep.mode = EP_GARBAGE;
  int r0 = ep.replies;
  double end = chaos_now_s() + chaos_seconds();
  while (chaos_now_s() < end) {
    usleep(50000);
    cr_assert(deploy_alive(agent), "the agent died on garbage:\n%s",
              deploy_slurp(e.log));
  }
  int garbage = ep.replies - r0;
  uint64_t g = deploy_ring_gen(e.ring);
  /* Recovery: a good reply with a new list is published. */
  snprintf(ep.body, sizeof(ep.body),
           "3\nc.test|10.1.0.3|11211 d.test|10.1.0.4|11211 "
           "e.test|10.1.0.5|11211\n");
  ep.mode = EP_GOOD;
  int64_t end_ms = now_ms() + 8000;
  int got[8];
  while (chaos_ring_ports(e.ring, got, 8) != 3) {
    cr_assert(now_ms() < end_ms, "no recovery after the garbage");
    usleep(10000);
  }
  fprintf(stderr,
          "slow endpoint timed out and kept the ring; %d mutated replies, "
          "generation %" PRIu64 " after them, recovered\n",
          garbage, g);
  cr_expect_gt(garbage, 20);
  kill(agent, SIGTERM);
  cr_expect_eq(wait_exit(agent, 8000), 0);
  ep_stop(&ep);
  chaos_env_fini(&e);
}
