/* prefork.c — a pre-forked server using libmcring the intended way.
 *
 * The shape of Apache prefork or PHP-FPM: the master attaches to the cache
 * once, before forking (mcr_client_new with --ring-dir, the ring
 * mcring-agent publishes, or --servers, the same ring built in process),
 * may use the client itself, and forks N workers that inherit the handle
 * and just use it. No worker reuses a connection opened before the fork
 * (the library notices the fork), and with --ring-dir every call first
 * checks the published generation: the workers follow cluster changes
 * with no code here. A request is a line holding a key on a connection to
 * 127.0.0.1:--listen (or, without --listen, --requests keys a worker makes
 * up); the answer is HIT or MISS, cache-aside. ignore_errors is on: an
 * outage makes the server slower, never broken. SIGTERM to the master
 * stops the workers, each after its request. examples/README.md has more.
 *
 *   prefork --ring-dir /run/mcring/default --workers 8 --listen 8080
 *   printf 'user:1\nuser:2\n' | nc -q1 127.0.0.1 8080
 */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "args.h"
#include "mcring.h"

#define MAX_WORKERS 64

typedef struct {
  unsigned long requests, hits, misses, errors;
} counters_t;

static volatile sig_atomic_t stopping; /* set by SIGTERM or SIGINT */
static void on_stop(int sig) {
  stopping = sig;
}

/* Cache-aside for one key: value into out[cap]; returns "HIT" or "MISS". */
static const char* lookup(mcr_client_t* c, const char* key, char* out,
                          size_t cap, counters_t* n) {
  size_t klen = strlen(key);
  mcr_item_t item;
  n->requests++;
  if (mcr_client_get(c, key, klen, &item) == MCR_OK) {
    n->hits++;
    snprintf(out, cap, "%.*s", (int)item.value_len, item.value);
    return "HIT";
  }
  n->misses++;
  /* The work the cache saves: here, a string built from the key. */
  snprintf(out, cap, "value-of-%s@%ld", key, (long)getpid());
  if (mcr_client_set(c, key, klen, out, strlen(out), 0, 300, 0) != MCR_OK)
    n->errors++; /* not stored: the next request builds it again */
  return "MISS";
}

/* A worker: serves until SIGTERM, then reports and frees its copy of the
 * client (closing only its own connections). */
static int worker(mcr_client_t* c, int id, int lfd, long requests) {
  counters_t n = {0};
  char line[300], value[512];
  for (long i = 0; lfd < 0 && !stopping && i != requests; i++) {
    snprintf(line, sizeof line, "user:%d", rand() % 1000); /* no clients */
    lookup(c, line, value, sizeof value, &n);
    usleep(1000);
  }
  while (lfd >= 0 && !stopping) {
    int fd = accept(lfd, NULL, NULL); /* EINTR on SIGTERM */
    if (fd < 0 && errno != EINTR && errno != ECONNABORTED)
      break;
    FILE* in = fd >= 0 ? fdopen(fd, "r") : NULL;
    while (in && !stopping && fgets(line, sizeof line, in)) {
      line[strcspn(line, "\r\n")] = '\0';
      if (mcr_key_check(line, strlen(line)) != 0)
        dprintf(fd, "ERR invalid key\n");
      else
        dprintf(fd, "%s %s %s\n", lookup(c, line, value, sizeof value, &n),
                line, value);
    }
    if (in)
      fclose(in); /* closes fd */
    else if (fd >= 0)
      close(fd);
  }
  fprintf(stderr,
          "worker %d (pid %ld): %lu requests, %lu hits, %lu misses, %lu "
          "errors, ring generation %llu\n",
          id, (long)getpid(), n.requests, n.hits, n.misses, n.errors,
          (unsigned long long)mcr_client_generation(c));
  mcr_client_free(c);
  return 0;
}

static int listen_on(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
      bind(fd, (struct sockaddr*)&a, sizeof a) || listen(fd, 128)) {
    perror("prefork: listen");
    exit(1);
  }
  return fd;
}

/* Forks worker `id`, which starts with the signal mask `mask`. */
static pid_t spawn(mcr_client_t* c, int id, int lfd, long requests,
                   const sigset_t* mask) {
  pid_t pid = fork();
  if (pid == 0) {
    sigprocmask(SIG_SETMASK, mask, NULL);
    srand((unsigned)getpid());
    _exit(worker(c, id, lfd, requests));
  }
  if (pid < 0)
    perror("prefork: fork");
  return pid;
}

int main(int argc, char** argv) {
  mcr_client_opts_t opts;
  mcr_client_opts_init(&opts);
  long workers = 4, port = 0, requests = -1; /* -1: until SIGTERM */
  const arg_t args[] = {ARG_TEXT("--ring-dir", &opts.ring_dir),
                        ARG_TEXT("--servers", &opts.servers),
                        ARG_NUMBER("--workers", &workers),
                        ARG_NUMBER("--listen", &port),
                        ARG_NUMBER("--requests", &requests),
                        ARG_END};
  if (!args_parse(argc, argv, args) || !opts.ring_dir == !opts.servers ||
      workers < 1 || workers > MAX_WORKERS) {
    fprintf(stderr,
            "usage: prefork (--ring-dir DIR | --servers LIST) "
            "[--workers N] [--listen PORT | --requests N]\n");
    return 2;
  }
  opts.ignore_errors = 1;   /* an outage is a cold cache, not a 500 */
  opts.io_timeout_ms = 200; /* what one request may spend on the cache */
  opts.retry_timeout_ms = 1000;

  /* Attach once, in the master. */
  mcr_client_t* c;
  char err[256], value[512];
  int rc = mcr_client_new(&c, &opts, err, sizeof err);
  if (rc) {
    fprintf(stderr, "prefork: %s: %s\n", mcr_err_name(rc), err);
    return 1;
  }
  /* The master may use the client too; its connections stay its own. */
  counters_t mine = {0};
  lookup(c, "prefork:master", value, sizeof value, &mine);
  fprintf(stderr, "master %ld: %zu nodes, ring generation %llu, cache %s\n",
          (long)getpid(), mcr_client_node_count(c),
          (unsigned long long)mcr_client_generation(c),
          mine.errors ? "unreachable (serving without it)" : "ok");
  int lfd = port ? listen_on(port) : -1;

  /* Signals, before forking so no worker starts without them: a worker
   * takes SIGTERM in on_stop (no SA_RESTART: a blocked accept or read
   * returns EINTR); the master keeps them blocked and waits for them. */
  struct sigaction sa = {.sa_handler = on_stop};
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sigset_t block, normal;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGCHLD);
  sigprocmask(SIG_BLOCK, &block, &normal);

  pid_t pids[MAX_WORKERS] = {0};
  int running = 0;
  for (int i = 0; i < workers; i++)
    running += (pids[i] = spawn(c, i, lfd, requests, &normal)) > 0;
  /* Replace a worker that died, until SIGTERM or SIGINT (or until every
   * worker has made its --requests). */
  for (int sig; running > 0 && sigwait(&block, &sig) == 0 && sig == SIGCHLD;) {
    int st, i;
    for (pid_t pid; (pid = waitpid(-1, &st, WNOHANG)) > 0;) {
      for (i = 0; i < workers && pids[i] != pid; i++)
        continue;
      if (i == workers)
        continue;
      pids[i] = 0;
      running--;
      if (WIFEXITED(st) && WEXITSTATUS(st) == 0 && requests >= 0)
        continue; /* done */
      fprintf(stderr, "worker %d (pid %ld) died; starting another\n", i,
              (long)pid);
      running += (pids[i] = spawn(c, i, lfd, requests, &normal)) > 0;
    }
  }
  for (int i = 0; i < workers; i++) /* stop */
    if (pids[i] > 0)
      kill(pids[i], SIGTERM);
  while (wait(NULL) > 0) /* each ends its request first */
    continue;
  mcr_client_free(c);
  if (lfd >= 0)
    close(lfd);
  fprintf(stderr, "master %ld: all workers stopped\n", (long)getpid());
  return 0;
}
