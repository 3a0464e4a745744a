/* cluster.c — the demo's deployment: memcached nodes, the fake
 * configuration endpoint, mcring-agent and the forked workers, and the
 * registry of every process the master started.
 *
 * The programs are started with tools/deploy.h (each dies with the
 * master), with their output in log files of the private directory so a
 * failure can show the end of the log. Every child goes into one registry
 * (d->children) with what it is and whether we stopped it on purpose:
 * children_check then tells an expected exit from a crash, and
 * cluster_stop can stop them all in order, workers first (asked through
 * shared memory, so each finishes its call), then the servers.
 * memcached is started on a port that was free a moment ago; a lost race
 * is retried on another one.
 */
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "demo.h"
#include "deploy.h"

static child_t* child_add(demo_t* d, pid_t pid, kind_t kind, int index) {
  if (d->nchildren == MAX_CHILDREN)
    return NULL;
  child_t* ch = &d->children[d->nchildren++];
  *ch = (child_t){.pid = pid, .kind = kind, .index = index};
  return ch;
}

static child_t* child_find(demo_t* d, pid_t pid) {
  for (int i = 0; i < d->nchildren; i++)
    if (d->children[i].pid == pid)
      return &d->children[i];
  return NULL;
}

/* Starts argv[0] with stdin from /dev/null and stdout and stderr appended
 * to the log file `log` (stdout to `out` instead when given) and registers
 * it. Returns the pid or -1. */
static pid_t spawn(demo_t* d, kind_t kind, int index, const char* const* argv,
                   const char* log, const char* out) {
  fflush(NULL);
  deploy_spawn_opts_t o = {.in = "/dev/null",
                           .out = out ? out : log,
                           .out_append = !out,
                           .err = log,
                           .err_append = true};
  pid_t pid = deploy_spawn(argv, &o);
  if (pid > 0)
    child_add(d, pid, kind, index);
  return pid;
}

void child_stop(demo_t* d, pid_t pid, int sig) {
  child_t* ch = child_find(d, pid);
  if (!ch || ch->pid <= 0)
    return;
  ch->expect_end = true;
  deploy_stop(pid, sig, 3000);
  ch->pid = 0;
}

/* A port that was free a moment ago. */
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

int node_start(demo_t* d, int i) {
  node_t* n = &d->nodes[i];
  snprintf(n->name, sizeof n->name, "mc%d", i + 1);
  char log[320];
  snprintf(log, sizeof log, "%s/%s.log", d->tmp, n->name);
  for (int attempt = 0; attempt < 5; attempt++) {
    int port = free_port();
    if (port <= 0)
      continue;
    char ports[16];
    snprintf(ports, sizeof ports, "%d", port);
    const char* argv[16] = {d->cf.memcached,
                            "-l",
                            "127.0.0.1",
                            "-p",
                            ports,
                            "-U",
                            "0",
                            "-t",
                            "2",
                            "-m",
                            "64"};
    if (geteuid() == 0) { /* memcached refuses to run as root without -u */
      argv[11] = "-u";
      argv[12] = "root";
    }
    pid_t pid = spawn(d, K_MEMCACHED, i, argv, log, NULL);
    if (pid < 0)
      return -1;
    for (int t = 0; t < 300 && deploy_alive(pid); t++) {
      if (can_connect(port)) {
        n->port = port;
        n->pid = pid;
        return 0;
      }
      if (!nap(0.01))
        return -1;
    }
    child_stop(d, pid, SIGKILL);
  }
  fprintf(stderr, "demo: cannot start %s (see %s)\n", d->cf.memcached, log);
  return -1;
}

int nodes_write(demo_t* d) {
  char path[320], tmp[330];
  snprintf(path, sizeof path, "%s/nodes", d->tmp);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE* f = fopen(tmp, "w");
  if (!f)
    return -1;
  for (int i = 0; i < MAX_NODES; i++)
    if (d->nodes[i].listed)
      fprintf(f, "%s.demo|127.0.0.1|%d\n", d->nodes[i].name, d->nodes[i].port);
  if (fclose(f) != 0)
    return -1;
  return rename(tmp, path);
}

/* Starts tests/fakecfg on the node file; it prints "127.0.0.1:PORT" on
 * stdout once listening, which becomes d->endpoint. */
static int fakecfg_start(demo_t* d) {
  char nodes[320], log[320], out[320];
  snprintf(nodes, sizeof nodes, "%s/nodes", d->tmp);
  snprintf(log, sizeof log, "%s/fakecfg.log", d->tmp);
  snprintf(out, sizeof out, "%s/fakecfg.out", d->tmp);
  const char* argv[] = {d->cf.fakecfg, "--nodes", nodes, NULL};
  pid_t pid = spawn(d, K_FAKECFG, 0, argv, log, out);
  if (pid < 0)
    return -1;
  char* nl = NULL;
  double end = mono_s() + 5.0;
  while (deploy_alive(pid) && mono_s() < end && nap(0.005)) {
    deploy_slurp_into(out, d->endpoint, sizeof d->endpoint);
    if ((nl = strchr(d->endpoint, '\n')))
      break;
  }
  if (!nl) {
    fprintf(stderr, "demo: %s did not start (see %s)\n", d->cf.fakecfg, log);
    return -1;
  }
  *nl = '\0';
  return 0;
}

int agent_start(demo_t* d) {
  char log[320];
  snprintf(log, sizeof log, "%s/agent.log", d->tmp);
  const char* argv[] = {
      d->cf.agent, "--elasticache", d->endpoint, "--ring-dir",
      d->ring,     "--interval",    "0.2",       "--connect-timeout",
      "0.5",       "--io-timeout",  "1",         "--max-backoff",
      "1",         "--config",      "/dev/null", NULL};
  pid_t pid = spawn(d, K_AGENT, 0, argv, log, NULL);
  if (pid < 0)
    return -1;
  d->agent = pid;
  return 0;
}

uint64_t agent_wait_gen(demo_t* d, uint64_t want, double timeout_s) {
  double end = mono_s() + timeout_s;
  uint64_t gen = 0;
  while (!gen && !demo_interrupted && mono_s() < end && deploy_alive(d->agent))
    gen = deploy_wait_gen(d->ring, want, 10);
  return gen;
}

int cluster_start(demo_t* d) {
  snprintf(d->ring, sizeof d->ring, "%s/ring", d->tmp);
  for (int i = 0; i < 3; i++) {
    if (node_start(d, i) != 0)
      return -1;
    d->nodes[i].listed = true;
  }
  say(d, "memcached mc1 127.0.0.1:%d, mc2 127.0.0.1:%d, mc3 127.0.0.1:%d",
      d->nodes[0].port, d->nodes[1].port, d->nodes[2].port);
  if (nodes_write(d) != 0 || fakecfg_start(d) != 0)
    return -1;
  say(d, "fake configuration endpoint %s serves the node list (%s/nodes)",
      d->endpoint, d->tmp);
  if (agent_start(d) != 0)
    return -1;
  char err[256] = "no generation";
  if (!agent_wait_gen(d, 1, 5.0) ||
      mcr_snapshot_open(&d->snap, d->ring, NULL, err, sizeof err) != 0) {
    if (!demo_interrupted) {
      fprintf(stderr, "demo: no ring published in %s: %s\n", d->ring, err);
      log_tail(d, "agent.log");
    }
    return -1;
  }
  char shares[256];
  ring_shares(d, shares, sizeof shares);
  say(d, "mcring-agent (pid %d) published ring generation %" PRIu64 ": %s",
      (int)d->agent, mcr_snapshot_generation(d->snap), shares);
  return 0;
}

int cluster_fork_workers(demo_t* d, mcr_client_t* c) {
  for (int i = 0; i < d->cf.workers; i++) {
    d->switch_ms[i] = -1;
    fflush(NULL);
    pid_t pid = deploy_fork();
    if (pid < 0) {
      fail(d, "fork: %s", strerror(errno));
      return -1;
    }
    if (pid == 0) {
      /* The master's handlers are not the worker's business. */
      signal(SIGINT, SIG_DFL);
      signal(SIGTERM, SIG_DFL);
      signal(SIGHUP, SIG_DFL);
      signal(SIGPIPE, SIG_DFL);
      worker_run(d->shm, i, c, d->cf.keys);
    }
    child_add(d, pid, K_WORKER, i);
  }
  return 0;
}

bool children_check(demo_t* d) {
  static const char* kinds[] = {"memcached", "the configuration endpoint",
                                "mcring-agent", "worker"};
  bool ok = true;
  int st;
  pid_t pid;
  while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
    child_t* ch = child_find(d, pid);
    if (!ch)
      continue;
    ch->pid = 0;
    if (ch->expect_end)
      continue;
    char what[64];
    if (ch->kind == K_WORKER)
      snprintf(what, sizeof what, "worker w%d", ch->index + 1);
    else if (ch->kind == K_MEMCACHED)
      snprintf(what, sizeof what, "memcached %s", d->nodes[ch->index].name);
    else
      snprintf(what, sizeof what, "%s", kinds[ch->kind]);
    if (WIFSIGNALED(st))
      fail(d, "%s (pid %d) died of signal %d", what, (int)pid, WTERMSIG(st));
    else
      fail(d, "%s (pid %d) exited with status %d", what, (int)pid,
           WEXITSTATUS(st));
    if (ch->kind == K_AGENT)
      log_tail(d, "agent.log");
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

void cluster_stop(demo_t* d) {
  if (d->shm)
    STORE(&d->shm->stop, 1);
  /* pass 0: the workers, asked through shm; pass 1: everything else, with
   * SIGTERM. Each pass has 2 s in all before what is left is killed. */
  for (int pass = 0; pass < 2; pass++) {
    double end = mono_s() + 2.0;
    for (int i = 0; i < d->nchildren; i++) {
      child_t* ch = &d->children[i];
      if (ch->pid > 0 && pass == 1 && ch->kind != K_WORKER)
        kill(ch->pid, SIGTERM);
    }
    for (int i = 0; i < d->nchildren; i++) {
      child_t* ch = &d->children[i];
      if (ch->pid <= 0 || (ch->kind == K_WORKER) != (pass == 0))
        continue;
      double left = end - mono_s();
      deploy_wait(ch->pid, left > 0 ? (int)(left * 1000) : 0);
      ch->pid = 0;
    }
  }
  if (d->snap) {
    mcr_snapshot_free(d->snap);
    d->snap = NULL;
  }
  if (d->tmp[0]) {
    nftw(d->tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    d->tmp[0] = '\0';
  }
}
