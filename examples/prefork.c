/* prefork.c — a pre-forked server using libmcring the intended way.
 *
 * The shape of Apache prefork or PHP-FPM: a master process sets everything
 * up once and forks N workers that serve requests until told to stop. The
 * master attaches to the cache once, before forking: mcr_client_new with
 * --ring-dir (follow the ring mcring-agent publishes) or --servers (build
 * the same ring in process, no agent). It may use the client itself (here
 * it checks that the cache answers); the workers inherit the handle and
 * just use it. Each worker opens its own connections on first use: a
 * connection opened before the fork is never reused by a child (the
 * library notices the fork), and with --ring-dir every call first checks
 * the published generation, so all workers follow cluster changes without
 * any code here.
 *
 * A request is one line, a key, on a TCP connection to --listen PORT
 * (127.0.0.1); the worker answers "HIT <key> <value>" or, on a miss, builds
 * the value (the "expensive" work a real server would do), stores it with
 * a TTL and answers "MISS <key> <value>" (cache-aside). Without --listen,
 * each worker makes up --requests keys itself. ignore_errors is on: a
 * cache outage makes the server slower, never broken. SIGTERM or SIGINT to
 * the master stops the workers (each finishes its request, prints its
 * counters and frees the client) and then the master. A worker that dies
 * is replaced.
 *
 *   prefork --ring-dir /run/mcring/default --workers 8 --listen 8080
 *   printf 'user:1\nuser:2\n' | nc -q1 127.0.0.1 8080
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mcring.h"

#define MAX_WORKERS 64

static volatile sig_atomic_t stopping;
static sigset_t normal_mask; /* the mask before the master blocked signals */

static void on_stop(int sig) {
  (void)sig;
  stopping = 1;
}

static void on_child(int sig) {
  (void)sig; /* only interrupts sigsuspend */
}

typedef struct {
  unsigned long requests, hits, misses, errors;
} counters_t;

/* Cache-aside for one key: value into out[cap]; returns "HIT" or "MISS". */
static const char* lookup(mcr_client_t* c, const char* key, char* out,
                          size_t cap, counters_t* n) {
  size_t klen = strlen(key);
  mcr_item_t item;
  int rc = mcr_client_get(c, key, klen, &item);
  n->requests++;
  if (rc == MCR_OK) {
    n->hits++;
    snprintf(out, cap, "%.*s", (int)item.value_len, item.value);
    return "HIT";
  }
  n->misses++;
  /* The work the cache saves: here, a string built from the key. */
  snprintf(out, cap, "value-of-%s@%ld", key, (long)getpid());
  rc = mcr_client_set(c, key, klen, out, strlen(out), 0, 300, 0);
  if (rc != MCR_OK)
    n->errors++; /* not stored: the next request builds it again */
  return "MISS";
}

/* Serves one connection: a key per line, an answer per line. Reading and
 * writing use two streams (one FILE may not switch from input to output
 * without a seek, which a socket cannot do). */
static void serve_conn(mcr_client_t* c, int fd, counters_t* n) {
  int wfd = dup(fd);
  FILE* in = fdopen(fd, "r");
  FILE* out = wfd >= 0 ? fdopen(wfd, "w") : NULL;
  if (!in || !out) {
    if (in)
      fclose(in);
    else
      close(fd);
    if (out)
      fclose(out);
    else if (wfd >= 0)
      close(wfd);
    return;
  }
  char line[300], value[512];
  while (!stopping && fgets(line, sizeof line, in)) {
    line[strcspn(line, "\r\n")] = '\0';
    if (mcr_key_check(line, strlen(line)) != 0) {
      fprintf(out, "ERR invalid key\n");
    } else {
      const char* what = lookup(c, line, value, sizeof value, n);
      fprintf(out, "%s %s %s\n", what, line, value);
    }
    fflush(out);
  }
  fclose(in);
  fclose(out);
}

/* A worker: serves until SIGTERM, then reports and frees its copy of the
 * client (closing only its own connections). */
static int worker(mcr_client_t* c, int id, int lfd, long requests) {
  counters_t n = {0};
  char key[64], value[512];
  if (lfd >= 0) {
    while (!stopping) {
      int fd = accept(lfd, NULL, NULL);
      if (fd >= 0)
        serve_conn(c, fd, &n);
      else if (errno != EINTR && errno != ECONNABORTED)
        break;
    }
  } else {
    for (long i = 0; !stopping && (requests < 0 || i < requests); i++) {
      snprintf(key, sizeof key, "user:%ld", (long)(rand() % 1000));
      lookup(c, key, value, sizeof value, &n);
      usleep(1000);
    }
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
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
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

static pid_t spawn(mcr_client_t* c, int id, int lfd, long requests) {
  pid_t pid = fork();
  if (pid == 0) {
    sigprocmask(SIG_SETMASK, &normal_mask, NULL);
    srand((unsigned)getpid());
    _exit(worker(c, id, lfd, requests));
  }
  if (pid < 0)
    perror("prefork: fork");
  return pid;
}

static void usage(void) {
  fprintf(stderr,
          "usage: prefork (--ring-dir DIR | --servers LIST) [--workers N]\n"
          "               [--listen PORT | --requests N]\n");
  exit(2);
}

int main(int argc, char** argv) {
  static const struct option longopts[] = {
      {"ring-dir", required_argument, NULL, 'r'},
      {"servers", required_argument, NULL, 's'},
      {"workers", required_argument, NULL, 'w'},
      {"listen", required_argument, NULL, 'l'},
      {"requests", required_argument, NULL, 'n'},
      {NULL, 0, NULL, 0}};
  mcr_client_opts_t opts;
  mcr_client_opts_init(&opts);
  int nworkers = 4, port = 0;
  long requests = -1;
  for (int o; (o = getopt_long(argc, argv, "", longopts, NULL)) != -1;) {
    switch (o) {
      case 'r':
        opts.ring_dir = optarg;
        break;
      case 's':
        opts.servers = optarg;
        break;
      case 'w':
        nworkers = atoi(optarg);
        break;
      case 'l':
        port = atoi(optarg);
        break;
      case 'n':
        requests = atol(optarg);
        break;
      default:
        usage();
    }
  }
  if (optind != argc || !opts.ring_dir == !opts.servers || nworkers < 1 ||
      nworkers > MAX_WORKERS)
    usage();
  opts.ignore_errors = 1;   /* an outage is a cold cache, not a 500 */
  opts.io_timeout_ms = 200; /* what one request may spend on the cache */
  opts.retry_timeout_ms = 1000;

  /* Attach once, in the master. */
  mcr_client_t* c;
  char err[256];
  int rc = mcr_client_new(&c, &opts, err, sizeof err);
  if (rc) {
    fprintf(stderr, "prefork: %s: %s\n", mcr_err_name(rc), err);
    return 1;
  }
  /* The master may use the client too; its connections stay its own. */
  char value[512];
  counters_t mine = {0};
  lookup(c, "prefork:master", value, sizeof value, &mine);
  fprintf(stderr, "master %ld: %zu nodes, ring generation %llu, cache %s\n",
          (long)getpid(), mcr_client_node_count(c),
          (unsigned long long)mcr_client_generation(c),
          mine.errors ? "unreachable (serving without it)" : "ok");
  int lfd = port ? listen_on(port) : -1;

  /* Signals: set before forking so no worker starts without them. No
   * SA_RESTART, so accept() in a worker returns EINTR on SIGTERM. */
  struct sigaction sa = {.sa_handler = on_stop};
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sa.sa_handler = on_child;
  sigaction(SIGCHLD, &sa, NULL);
  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGCHLD);
  sigprocmask(SIG_BLOCK, &block, &normal_mask);

  pid_t pids[MAX_WORKERS] = {0};
  for (int i = 0; i < nworkers; i++) {
    pids[i] = spawn(c, i, lfd, requests);
    if (pids[i] == 0) /* never: the child exits in spawn */
      return 1;
  }
  int running = nworkers;
  while (running > 0) {
    if (!stopping)
      sigsuspend(&normal_mask); /* wakes on SIGTERM, SIGINT or SIGCHLD */
    if (stopping) {
      for (int i = 0; i < nworkers; i++)
        if (pids[i] > 0)
          kill(pids[i], SIGTERM);
    }
    int st;
    pid_t pid;
    sigprocmask(SIG_SETMASK, &normal_mask, NULL);
    while ((pid = waitpid(-1, &st, stopping ? 0 : WNOHANG)) > 0) {
      for (int i = 0; i < nworkers; i++) {
        if (pids[i] != pid)
          continue;
        pids[i] = 0;
        running--;
        bool done = WIFEXITED(st) && WEXITSTATUS(st) == 0;
        if (!stopping && !(done && requests >= 0)) {
          fprintf(stderr, "worker %d (pid %ld) died; starting another\n", i,
                  (long)pid);
          pids[i] = spawn(c, i, lfd, requests);
          if (pids[i] > 0)
            running++;
        }
      }
    }
    sigprocmask(SIG_BLOCK, &block, NULL);
  }
  mcr_client_free(c);
  if (lfd >= 0)
    close(lfd);
  fprintf(stderr, "master %ld: all workers stopped\n", (long)getpid());
  return 0;
}
