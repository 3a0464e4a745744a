/* fakecfg.c — a fake ElastiCache configuration endpoint (see fakecfg.h).
 *
 * The agent tests need an endpoint they can steer: change the node list,
 * keep or rewind the configuration version, answer like an old engine,
 * hang, cut a reply short or lie about its length. A real ElastiCache node
 * cannot do that, and plain memcached has no "config" command. This one is
 * a single thread with a poll loop over the listening socket, its client
 * connections and a wake-up pipe, so a hung connection never blocks the
 * next one and stopping is immediate. Requests are plain lines; each reply
 * is built from the node file read at that moment, so a test changes the
 * cluster simply by rewriting the file. It binds 127.0.0.1 only.
 */
#include "fakecfg.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <xxhash.h>

#define MAX_CONNS 64

typedef struct {
  int fd;
  char buf[4096];
  size_t len;
} conn_t;

struct fakecfg {
  pthread_t thread;
  pthread_mutex_t mu;
  int lfd;
  int wake[2];
  int port;
  char endpoint[32];
  char* nodes_file;
  /* Under mu: */
  fakecfg_mode_t mode;
  char engine_version[64];
  uint64_t version;
  bool frozen;
  int count_delta;
  char* last_list; /* node line served last, for version bumps */
  int n_config, n_get, n_version, n_other, n_conns;
  conn_t conns[MAX_CONNS];
};

int fakecfg_mode_parse(const char* s, fakecfg_mode_t* out) {
  static const char* const names[] = {"normal",   "error-config", "legacy-only",
                                      "hang",     "close-mid",    "bad-count",
                                      "malformed"};
  for (int i = 0; i < 7; i++) {
    if (strcmp(s, names[i]) == 0) {
      *out = (fakecfg_mode_t)i;
      return 0;
    }
  }
  return -1;
}

/* Reads the node file into one space-separated line (malloc'ed, no final
 * newline). Returns NULL when the file cannot be read. */
static char* read_node_line(const char* path) {
  FILE* f = fopen(path, "re");
  if (!f)
    return NULL;
  size_t cap = 4096, len = 0;
  char* out = malloc(cap);
  char line[1024];
  while (out && fgets(line, sizeof(line), f)) {
    char* hash = strchr(line, '#');
    if (hash)
      *hash = '\0';
    char* s = line;
    while (*s == ' ' || *s == '\t')
      s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' ||
                 s[n - 1] == '\t'))
      n--;
    if (!n)
      continue;
    if (len + n + 2 > cap) {
      cap = (len + n + 2) * 2;
      char* o = realloc(out, cap);
      if (!o) {
        free(out);
        out = NULL;
        break;
      }
      out = o;
    }
    if (len)
      out[len++] = ' ';
    memcpy(out + len, s, n);
    len += n;
  }
  fclose(f);
  if (out)
    out[len] = '\0';
  return out;
}

static void send_all(int fd, const char* p, size_t len) {
  while (len) {
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return;
    p += n;
    len -= (size_t)n;
  }
}

/* Builds and sends the reply to a config request; returns false when the
 * connection must be closed afterwards. Called with mu held. */
static bool reply_config(fakecfg_t* f, int fd, bool legacy) {
  char* list = read_node_line(f->nodes_file);
  if (!list)
    list = strdup("");
  if (!list)
    return false;
  if (f->last_list && strcmp(f->last_list, list) != 0 && !f->frozen)
    f->version++;
  free(f->last_list);
  f->last_list = strdup(list);
  size_t cap = strlen(list) + 256;
  char* block = malloc(cap);
  if (!block) {
    free(list);
    return false;
  }
  int blen =
      snprintf(block, cap, "%llu\n%s%s\n", (unsigned long long)f->version, list,
               f->mode == FAKECFG_MALFORMED ? " broken|10.9.9.9|99999" : "");
  free(list);
  long count = blen;
  if (f->mode == FAKECFG_BAD_COUNT)
    count += f->count_delta ? f->count_delta : 5;
  if (count < 0)
    count = 0;
  char head[128];
  int hlen = snprintf(
      head, sizeof(head), "%s %ld\r\n",
      legacy ? "VALUE AmazonElastiCache:cluster 0" : "CONFIG cluster 0", count);
  send_all(fd, head, (size_t)hlen);
  if (f->mode == FAKECFG_CLOSE_MID) {
    send_all(fd, block, (size_t)blen / 2);
    free(block);
    return false;
  }
  send_all(fd, block, (size_t)blen);
  send_all(fd, "\r\nEND\r\n", 7);
  free(block);
  return true;
}

/* Handles one request line; returns false to close the connection. Called
 * with mu held. */
static bool handle(fakecfg_t* f, int fd, const char* line) {
  const char* sp = strchr(line, ' ');
  size_t w = sp ? (size_t)(sp - line) : strlen(line);
  bool is_config = w == 6 && memcmp(line, "config", 6) == 0;
  bool is_get = w == 3 && memcmp(line, "get", 3) == 0;
  bool is_version = strcmp(line, "version") == 0;
  if (is_config)
    f->n_config++;
  else if (is_get)
    f->n_get++;
  else if (is_version)
    f->n_version++;
  else
    f->n_other++;
  if (f->mode == FAKECFG_HANG)
    return true;
  if (strcmp(line, "quit") == 0)
    return false;
  if (is_version) {
    char b[96];
    int n = snprintf(b, sizeof(b), "VERSION %s\r\n", f->engine_version);
    send_all(fd, b, (size_t)n);
    return true;
  }
  if (is_config) {
    if (f->mode == FAKECFG_ERROR_CONFIG || f->mode == FAKECFG_LEGACY_ONLY ||
        strcmp(line, "config get cluster") != 0) {
      send_all(fd, "ERROR\r\n", 7);
      return true;
    }
    return reply_config(f, fd, false);
  }
  if (is_get) {
    if (strcmp(line, "get AmazonElastiCache:cluster") == 0)
      return reply_config(f, fd, true);
    send_all(fd, "END\r\n", 5);
    return true;
  }
  send_all(fd, "ERROR\r\n", 7);
  return true;
}

static void conn_close(conn_t* c) {
  if (c->fd >= 0)
    close(c->fd);
  c->fd = -1;
  c->len = 0;
}

/* Reads from c and handles every complete line. */
static void conn_read(fakecfg_t* f, conn_t* c) {
  ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len - 1, 0);
  if (n <= 0) {
    if (n < 0 && errno == EINTR)
      return;
    conn_close(c);
    return;
  }
  c->len += (size_t)n;
  for (;;) {
    char* nl = memchr(c->buf, '\n', c->len);
    if (!nl)
      break;
    size_t ll = (size_t)(nl - c->buf);
    char line[4096];
    memcpy(line, c->buf, ll);
    if (ll && line[ll - 1] == '\r')
      ll--;
    line[ll] = '\0';
    memmove(c->buf, nl + 1, c->len - (size_t)(nl + 1 - c->buf));
    c->len -= (size_t)(nl + 1 - c->buf);
    pthread_mutex_lock(&f->mu);
    bool keep = handle(f, c->fd, line);
    pthread_mutex_unlock(&f->mu);
    if (!keep) {
      conn_close(c);
      return;
    }
  }
  if (c->len == sizeof(c->buf) - 1)
    conn_close(c); /* line too long */
}

static void* serve(void* arg) {
  fakecfg_t* f = arg;
  for (;;) {
    struct pollfd pfd[MAX_CONNS + 2];
    int idx[MAX_CONNS + 2];
    int n = 0;
    pfd[n] = (struct pollfd){.fd = f->wake[0], .events = POLLIN};
    idx[n++] = -2;
    pfd[n] = (struct pollfd){.fd = f->lfd, .events = POLLIN};
    idx[n++] = -1;
    for (int i = 0; i < MAX_CONNS; i++) {
      if (f->conns[i].fd < 0)
        continue;
      pfd[n] = (struct pollfd){.fd = f->conns[i].fd, .events = POLLIN};
      idx[n++] = i;
    }
    if (poll(pfd, (nfds_t)n, -1) < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    if (pfd[0].revents)
      break;
    for (int k = 1; k < n; k++) {
      if (!pfd[k].revents)
        continue;
      if (idx[k] == -1) {
        int fd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
          continue;
        int slot = -1;
        for (int i = 0; i < MAX_CONNS && slot < 0; i++)
          if (f->conns[i].fd < 0)
            slot = i;
        if (slot < 0) {
          close(fd);
          continue;
        }
        f->conns[slot].fd = fd;
        f->conns[slot].len = 0;
        pthread_mutex_lock(&f->mu);
        f->n_conns++;
        pthread_mutex_unlock(&f->mu);
      } else {
        conn_read(f, &f->conns[idx[k]]);
      }
    }
  }
  return NULL;
}

fakecfg_t* fakecfg_start(const fakecfg_opts_t* opts) {
  fakecfg_t* f = calloc(1, sizeof(*f));
  if (!f || !opts->nodes_file) {
    free(f);
    return NULL;
  }
  pthread_mutex_init(&f->mu, NULL);
  for (int i = 0; i < MAX_CONNS; i++)
    f->conns[i].fd = -1;
  f->nodes_file = strdup(opts->nodes_file);
  f->mode = opts->mode;
  f->version = opts->version ? opts->version : 1;
  f->count_delta = opts->count_delta;
  snprintf(f->engine_version, sizeof(f->engine_version), "%s",
           opts->engine_version                ? opts->engine_version
           : opts->mode == FAKECFG_LEGACY_ONLY ? "1.4.5"
                                               : "1.6.21");
  f->wake[0] = f->wake[1] = -1;
  f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(f->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)opts->port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t sl = sizeof(sa);
  if (f->lfd < 0 || bind(f->lfd, (struct sockaddr*)&sa, sizeof(sa)) != 0 ||
      listen(f->lfd, 64) != 0 ||
      getsockname(f->lfd, (struct sockaddr*)&sa, &sl) != 0 ||
      pipe2(f->wake, O_CLOEXEC) != 0) {
    fprintf(stderr, "fakecfg: listen: %s\n", strerror(errno));
    if (f->lfd >= 0)
      close(f->lfd);
    free(f->nodes_file);
    free(f);
    return NULL;
  }
  f->port = ntohs(sa.sin_port);
  snprintf(f->endpoint, sizeof(f->endpoint), "127.0.0.1:%d", f->port);
  if (pthread_create(&f->thread, NULL, serve, f) != 0) {
    close(f->lfd);
    close(f->wake[0]);
    close(f->wake[1]);
    free(f->nodes_file);
    free(f);
    return NULL;
  }
  return f;
}

void fakecfg_stop(fakecfg_t* f) {
  if (!f)
    return;
  char b = 1;
  if (write(f->wake[1], &b, 1) != 1) { /* the thread then never wakes */
  }
  pthread_join(f->thread, NULL);
  for (int i = 0; i < MAX_CONNS; i++)
    conn_close(&f->conns[i]);
  close(f->lfd);
  close(f->wake[0]);
  close(f->wake[1]);
  pthread_mutex_destroy(&f->mu);
  /* The clients that polled this endpoint counted themselves in a small
   * per-user file (mcr__ec_peers, lib/elasticache.c); it dies with the
   * endpoint, so test runs leave nothing in /dev/shm. */
  char peers[160];
  snprintf(peers, sizeof peers, "%s/mcring-ec-%u-%016llx",
           access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp",
           (unsigned)geteuid(),
           (unsigned long long)XXH3_64bits(f->endpoint, strlen(f->endpoint)));
  unlink(peers);
  free(f->last_list);
  free(f->nodes_file);
  free(f);
}

int fakecfg_port(const fakecfg_t* f) {
  return f->port;
}

const char* fakecfg_endpoint(const fakecfg_t* f) {
  return f->endpoint;
}

void fakecfg_set_mode(fakecfg_t* f, fakecfg_mode_t mode) {
  pthread_mutex_lock(&f->mu);
  f->mode = mode;
  pthread_mutex_unlock(&f->mu);
}

void fakecfg_set_version(fakecfg_t* f, uint64_t version) {
  pthread_mutex_lock(&f->mu);
  f->version = version;
  pthread_mutex_unlock(&f->mu);
}

void fakecfg_freeze_version(fakecfg_t* f, bool frozen) {
  pthread_mutex_lock(&f->mu);
  f->frozen = frozen;
  pthread_mutex_unlock(&f->mu);
}

void fakecfg_set_engine_version(fakecfg_t* f, const char* v) {
  pthread_mutex_lock(&f->mu);
  snprintf(f->engine_version, sizeof(f->engine_version), "%s", v);
  pthread_mutex_unlock(&f->mu);
}

uint64_t fakecfg_version(fakecfg_t* f) {
  pthread_mutex_lock(&f->mu);
  uint64_t v = f->version;
  pthread_mutex_unlock(&f->mu);
  return v;
}

int fakecfg_requests(fakecfg_t* f, const char* cmd) {
  pthread_mutex_lock(&f->mu);
  int n = !cmd ? f->n_config + f->n_get + f->n_version + f->n_other
          : strcmp(cmd, "config") == 0  ? f->n_config
          : strcmp(cmd, "get") == 0     ? f->n_get
          : strcmp(cmd, "version") == 0 ? f->n_version
                                        : f->n_other;
  pthread_mutex_unlock(&f->mu);
  return n;
}

int fakecfg_connections(fakecfg_t* f) {
  pthread_mutex_lock(&f->mu);
  int n = f->n_conns;
  pthread_mutex_unlock(&f->mu);
  return n;
}

int fakecfg_write_file(const char* path, const char* text) {
  char tmp[4200];
  snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
  FILE* fp = fopen(tmp, "we");
  if (!fp)
    return -1;
  bool ok = fputs(text, fp) >= 0;
  ok = (fclose(fp) == 0) && ok;
  if (!ok || rename(tmp, path) != 0) {
    unlink(tmp);
    return -1;
  }
  return 0;
}

int fakecfg_write_nodes(const char* path, int n, int base_port) {
  size_t cap = (size_t)n * 64 + 1;
  char* text = malloc(cap);
  if (!text)
    return -1;
  size_t len = 0;
  for (int i = 0; i < n; i++)
    len +=
        (size_t)snprintf(text + len, cap - len, "node%d.test|127.0.%d.%d|%d\n",
                         i, i / 250, i % 250 + 1, base_port + i);
  int rc = fakecfg_write_file(path, text);
  free(text);
  return rc;
}
