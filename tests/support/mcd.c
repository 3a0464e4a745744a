/* mcd.c — a real memcached per test, and a raw connection to look at it.
 *
 * Criterion runs every test in its own forked process and several at once,
 * so each test starts its own memcached. Port choice is left to memcached:
 * it is started with "-p -1" (bind port 0) and MEMCACHED_PORT_FILENAME, and
 * reports the port the kernel gave it in that file (the mechanism of
 * memcached's own test suite), so two tests never race for a port. Unix
 * sockets get a path made of the test's pid and a counter. The child sets
 * PR_SET_PDEATHSIG, so memcached dies with the test process even when the
 * test crashes before its fini fixture runs.
 *
 * The raw_* connection speaks the text protocol by hand, without libmcring,
 * so tests can check what really is stored on the server (flags, bytes,
 * statistics) independently of the library under test.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "support.h"

static unsigned mcd_counter;

void ring_dir_make(char* dir, size_t len, const char* tag) {
  int n = snprintf(dir, len, "/tmp/mcr-%s-XXXXXX", tag);
  cr_assert(n > 0 && (size_t)n + 6 <= len, "ring_dir_make: %zu bytes", len);
  cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
  strcat(dir, "/ring");
}

void ring_dir_remove(const char* dir) {
  size_t n = strlen(dir);
  if (n <= 5)
    return;
  char cmd[160];
  snprintf(cmd, sizeof cmd, "rm -rf '%.*s'", (int)(n - 5), dir);
  if (system(cmd) != 0) {
    /* best effort: a leftover in /tmp fails no test */
  }
}

bool in_ci(void) {
  const char* ci = getenv("CI");
  return ci != NULL && strcmp(ci, "true") == 0;
}

int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

const char* mcd_binary(void) {
  const char* env = getenv("MCR_MEMCACHED");
  if (env != NULL && env[0] != '\0' && access(env, X_OK) == 0)
    return env;
  if (access("/usr/bin/memcached", X_OK) == 0)
    return "/usr/bin/memcached";
  return NULL;
}

bool mcd_have_ipv6(void) {
  int fd = socket(AF_INET6, SOCK_STREAM, 0);
  if (fd < 0)
    return false;
  struct sockaddr_in6 sa = {.sin6_family = AF_INET6,
                            .sin6_addr = in6addr_loopback};
  bool ok = bind(fd, (struct sockaddr*)&sa, sizeof sa) == 0;
  close(fd);
  return ok;
}

/* Connects a blocking socket to m with 5 s send and receive timeouts.
 * Returns the fd or -1. */
static int mcd_connect(const mcd_t* m) {
  int fd;
  if (m->path[0] != '\0') {
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", m->path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr*)&sa, sizeof sa) != 0) {
      close(fd);
      fd = -1;
    }
  } else if (m->ipv6) {
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6,
                              .sin6_port = htons((uint16_t)m->port),
                              .sin6_addr = in6addr_loopback};
    fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr*)&sa, sizeof sa) != 0) {
      close(fd);
      fd = -1;
    }
  } else {
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)m->port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr*)&sa, sizeof sa) != 0) {
      close(fd);
      fd = -1;
    }
  }
  if (fd >= 0) {
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  }
  return fd;
}

/* True when m answers "version" right now. */
static bool mcd_answers(const mcd_t* m) {
  int fd = mcd_connect(m);
  if (fd < 0)
    return false;
  if (m->tls) { /* it accepts: the handshake is the test's business */
    close(fd);
    return true;
  }
  char buf[128];
  bool ok = false;
  if (write(fd, "version\r\n", 9) == 9) {
    ssize_t n = read(fd, buf, sizeof buf - 1);
    ok = n > 8 && memcmp(buf, "VERSION ", 8) == 0;
  }
  close(fd);
  return ok;
}

/* Reads the port memcached wrote to its port file; 0 while not there. */
static int mcd_read_port(const mcd_t* m) {
  FILE* f = fopen(m->portfile, "r");
  if (f == NULL)
    return 0;
  char line[128];
  int port = 0;
  while (port == 0 && fgets(line, sizeof line, f) != NULL) {
    if (sscanf(line, "TCP INET6: %d", &port) == 1)
      break;
    if (sscanf(line, "TCP INET: %d", &port) == 1)
      break;
    port = 0;
  }
  fclose(f);
  return port;
}

static void mcd_exec(const mcd_t* m, pid_t parent) {
  /* Dies with the test process; covers a parent that died before prctl. */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent)
    _exit(127);
  syscall(SYS_close_range, 3u, ~0u, 0u);
  int devnull = open("/dev/null", O_RDWR);
  if (devnull >= 0)
    dup2(devnull, STDOUT_FILENO);
  const char* argv[48];
  size_t n = 0;
  char portbuf[16];
  argv[n++] = mcd_binary();
  argv[n++] = "-U";
  argv[n++] = "0";
  argv[n++] = "-t";
  argv[n++] = "2";
  if (geteuid() == 0) {
    argv[n++] = "-u";
    argv[n++] = "root";
  }
  if (m->path[0] != '\0') {
    argv[n++] = "-s";
    argv[n++] = m->path;
  } else {
    snprintf(portbuf, sizeof portbuf, "%d", m->port > 0 ? m->port : -1);
    argv[n++] = "-l";
    argv[n++] = m->ipv6 ? "::1" : "127.0.0.1";
    argv[n++] = "-p";
    argv[n++] = portbuf;
    setenv("MEMCACHED_PORT_FILENAME", m->portfile, 1);
  }
  for (size_t i = 0; i < m->nextra; i++)
    argv[n++] = m->extra[i];
  argv[n] = NULL;
  execv(argv[0], (char* const*)argv);
  _exit(127);
}

/* Starts memcached with m's settings (port 0 = let it choose). Returns true
 * once it answers, false when it exited (e.g. the fixed port was taken). */
static bool mcd_spawn(mcd_t* m) {
  unlink(m->portfile);
  if (m->path[0] != '\0')
    unlink(m->path);
  pid_t parent = getpid();
  pid_t pid = fork();
  cr_assert(pid >= 0, "fork: %s", strerror(errno));
  if (pid == 0)
    mcd_exec(m, parent);
  m->pid = pid;
  bool chose_port = m->path[0] == '\0' && m->port == 0;
  int64_t deadline = now_ms() + 10000;
  while (now_ms() < deadline) {
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      m->pid = 0;
      if (chose_port)
        m->port = 0;
      return false;
    }
    if (m->path[0] == '\0' && m->port == 0)
      m->port = mcd_read_port(m);
    if ((m->path[0] != '\0' || m->port != 0) && mcd_answers(m))
      return true;
    sleep_ms(5);
  }
  cr_assert_fail("memcached did not answer within 10 s");
  return false;
}

static void mcd_set_servers(mcd_t* m) {
  if (m->path[0] != '\0')
    snprintf(m->servers, sizeof m->servers, "%s", m->path);
  else if (m->ipv6)
    snprintf(m->servers, sizeof m->servers, "[::1]:%d", m->port);
  else
    snprintf(m->servers, sizeof m->servers, "127.0.0.1:%d", m->port);
}

void mcd_start(mcd_t* m, const mcd_opts_t* opts) {
  memset(m, 0, sizeof *m);
  if (mcd_binary() == NULL)
    skip_or_fail("memcached is not installed");
  unsigned id = mcd_counter++;
  snprintf(m->portfile, sizeof m->portfile, "/tmp/mcr-test-%d-%u.port",
           (int)getpid(), id);
  if (opts != NULL) {
    m->ipv6 = opts->ipv6;
    m->tls = opts->tls;
    if (opts->unix_socket)
      snprintf(m->path, sizeof m->path, "/tmp/mcr-test-%d-%u.sock",
               (int)getpid(), id);
    for (size_t i = 0; opts->extra != NULL && opts->extra[i] != NULL; i++) {
      cr_assert_lt(m->nextra, sizeof m->extra / sizeof m->extra[0]);
      m->extra[m->nextra++] = opts->extra[i];
    }
  }
  cr_assert(mcd_spawn(m), "memcached exited at start (bad arguments?)");
  mcd_set_servers(m);
}

void mcd_start_n(mcd_t* m, int n, char* servers, size_t cap) {
  size_t len = 0;
  servers[0] = '\0';
  for (int i = 0; i < n; i++) {
    mcd_start(&m[i], NULL);
    len += (size_t)snprintf(servers + len, cap - len, "%s%s", i ? "," : "",
                            m[i].servers);
    cr_assert_lt(len, cap, "server list longer than %zu bytes", cap);
  }
}

void mcd_stop(mcd_t* m) {
  if (m->pid > 0) {
    kill(m->pid, SIGCONT);
    kill(m->pid, SIGTERM);
    /* memcached notices SIGTERM on its next clock tick (once a second);
     * tests need no graceful exit, so wait only briefly. */
    int64_t deadline = now_ms() + 200;
    int status;
    while (waitpid(m->pid, &status, WNOHANG) == 0) {
      if (now_ms() > deadline) {
        kill(m->pid, SIGKILL);
        waitpid(m->pid, &status, 0);
        break;
      }
      sleep_ms(2);
    }
    m->pid = 0;
  }
  if (m->path[0] != '\0')
    unlink(m->path);
  if (m->portfile[0] != '\0')
    unlink(m->portfile);
}

void mcd_restart(mcd_t* m) {
  mcd_stop(m);
  /* The port is free again at once (memcached sets SO_REUSEADDR), unless
   * another test grabbed it in between: retry for a while. */
  for (int i = 0; i < 50; i++) {
    if (mcd_spawn(m))
      return;
    sleep_ms(20);
  }
  cr_assert_fail("memcached could not be restarted on port %d", m->port);
}

void mcd_pause(mcd_t* m) {
  cr_assert(m->pid > 0 && kill(m->pid, SIGSTOP) == 0);
  /* kill() returns before every thread has stopped; a worker thread still
   * running could answer one more request. WUNTRACED reports the stop once
   * the whole process has stopped. */
  int status;
  cr_assert_eq(waitpid(m->pid, &status, WUNTRACED), m->pid);
  cr_assert(WIFSTOPPED(status), "memcached did not stop");
}

void mcd_resume(mcd_t* m) {
  cr_assert(m->pid > 0 && kill(m->pid, SIGCONT) == 0);
  int status;
  cr_assert_eq(waitpid(m->pid, &status, WCONTINUED), m->pid);
}

const char* mcd_servers_string(const mcd_t* m) {
  return m->servers;
}

/* ---------------------------------------------------------------- raw */

void raw_open(raw_t* r, const mcd_t* m) {
  memset(r, 0, sizeof *r);
  r->fd = mcd_connect(m);
  cr_assert(r->fd >= 0, "raw connect to %s: %s", m->servers, strerror(errno));
}

void raw_close(raw_t* r) {
  if (r->fd >= 0)
    close(r->fd);
  r->fd = -1;
  free(r->buf);
  r->buf = NULL;
  r->len = r->cap = 0;
}

void raw_send(raw_t* r, const void* data, size_t len) {
  const char* p = data;
  while (len > 0) {
    ssize_t n = write(r->fd, p, len);
    cr_assert(n > 0, "raw write: %s", strerror(errno));
    p += n;
    len -= (size_t)n;
  }
}

/* Reads more bytes into r->buf; fails the test on EOF or timeout. */
static void raw_fill(raw_t* r) {
  if (r->cap - r->len < 4097) {
    r->cap = r->cap ? r->cap * 2 : 65536;
    r->buf = realloc(r->buf, r->cap);
    cr_assert(r->buf != NULL);
  }
  ssize_t n = read(r->fd, r->buf + r->len, r->cap - r->len - 1);
  cr_assert(n > 0, "raw read: %s", n == 0 ? "closed" : strerror(errno));
  r->len += (size_t)n;
  r->buf[r->len] = '\0';
}

const char* raw_until(raw_t* r, const char* terminator) {
  size_t tl = strlen(terminator);
  r->len = 0;
  for (;;) {
    /* A whole-line terminator ("END\r\n") must start a line; "\r\n"
     * alone ends any line. */
    if (r->len >= tl && memcmp(r->buf + r->len - tl, terminator, tl) == 0 &&
        (tl == 2 || r->len == tl || r->buf[r->len - tl - 1] == '\n'))
      return r->buf;
    raw_fill(r);
  }
}

const char* raw_cmd(raw_t* r, const char* cmd, const char* terminator) {
  raw_send(r, cmd, strlen(cmd));
  return raw_until(r, terminator);
}

uint64_t mcd_stat(const mcd_t* m, const char* name) {
  raw_t r;
  raw_open(&r, m);
  const char* reply = raw_cmd(&r, "stats\r\n", "END\r\n");
  char pat[128];
  snprintf(pat, sizeof pat, "STAT %s ", name);
  const char* p = strstr(reply, pat);
  cr_assert(p != NULL, "no statistic %s", name);
  uint64_t v = strtoull(p + strlen(pat), NULL, 10);
  raw_close(&r);
  return v;
}

void raw_set(const mcd_t* m, const char* key, const void* value, size_t len,
             uint32_t flags) {
  raw_t r;
  raw_open(&r, m);
  char head[512];
  int n = snprintf(head, sizeof head, "set %s %u 0 %zu\r\n", key, flags, len);
  raw_send(&r, head, (size_t)n);
  raw_send(&r, value, len);
  raw_send(&r, "\r\n", 2);
  const char* reply = raw_until(&r, "\r\n");
  cr_assert_str_eq(reply, "STORED\r\n");
  raw_close(&r);
}

bool raw_get(const mcd_t* m, const char* key, void* value, size_t cap,
             size_t* len, uint32_t* flags) {
  raw_t r;
  raw_open(&r, m);
  char cmd[512];
  int n = snprintf(cmd, sizeof cmd, "get %s\r\n", key);
  raw_send(&r, cmd, (size_t)n);
  char* eol;
  while ((eol = strstr(r.buf ? r.buf : "", "\r\n")) == NULL)
    raw_fill(&r);
  if (strncmp(r.buf, "END\r\n", 5) == 0) {
    raw_close(&r);
    return false;
  }
  unsigned f;
  size_t bytes;
  cr_assert(sscanf(r.buf, "VALUE %*s %u %zu", &f, &bytes) == 2,
            "raw get reply: %.60s", r.buf);
  size_t head = (size_t)(eol + 2 - r.buf);
  while (r.len < head + bytes + 2 + 5)
    raw_fill(&r);
  cr_assert(memcmp(r.buf + head + bytes, "\r\nEND\r\n", 7) == 0);
  memcpy(value, r.buf + head, bytes < cap ? bytes : cap);
  *len = bytes;
  *flags = f;
  raw_close(&r);
  return true;
}

bool raw_has(const mcd_t* m, const char* key) {
  char buf[64];
  size_t len;
  uint32_t flags;
  return raw_get(m, key, buf, sizeof buf, &len, &flags);
}

int64_t raw_ttl(const mcd_t* m, const char* key) {
  raw_t r;
  raw_open(&r, m);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "mg %s t\r\n", key);
  const char* reply = raw_cmd(&r, cmd, "\r\n");
  long long ttl;
  cr_assert(sscanf(reply, "HD t%lld", &ttl) == 1, "mg %s: %s", key, reply);
  raw_close(&r);
  return ttl;
}

/* ---------------------------------------------------------------- client */

mcd_t fx_mcd;
mcr_client_t* fx_client;

void fx_setup(void) {
  mcd_start(&fx_mcd, NULL);
  fx_client = client_new(fx_mcd.servers, NULL);
}

void fx_teardown(void) {
  mcr_client_free(fx_client);
  fx_client = NULL;
  mcd_stop(&fx_mcd);
}

void cl_set(mcr_client_t* c, const char* key, const char* value) {
  int rc = mcr_client_set(c, key, strlen(key), value, strlen(value), 0, 0, 0);
  cr_assert_eq(rc, MCR_OK, "set %s: %s (%s)", key,
               rc < 0 ? mcr_err_name(rc) : mcr_status_name(rc),
               mcr_client_last_error(c));
}

void cl_expect(mcr_client_t* c, const char* key, const char* value) {
  mcr_item_t item;
  int rc = mcr_client_get(c, key, strlen(key), &item);
  cr_assert_eq(rc, MCR_OK, "get %s: %s (%s)", key,
               rc < 0 ? mcr_err_name(rc) : mcr_status_name(rc),
               mcr_client_last_error(c));
  cr_assert_eq(item.value_len, strlen(value), "get %s: %zu bytes, want %zu",
               key, item.value_len, strlen(value));
  cr_assert(memcmp(item.value, value, item.value_len) == 0,
            "get %s: %.*s, want %s", key, (int)item.value_len, item.value,
            value);
}

void cl_expect_miss(mcr_client_t* c, const char* key) {
  mcr_item_t item;
  int rc = mcr_client_get(c, key, strlen(key), &item);
  cr_assert_eq(rc, MCR_MISS, "get %s: %s (%s)", key,
               rc < 0 ? mcr_err_name(rc) : mcr_status_name(rc),
               mcr_client_last_error(c));
}

mcr_client_stats_t cl_stats(mcr_client_t* c) {
  mcr_client_stats_t st;
  mcr_client_stats(c, &st);
  return st;
}

mcr_client_opts_t opts_default(void) {
  mcr_client_opts_t o;
  mcr_client_opts_init(&o);
  return o;
}

mcr_client_t* client_new(const char* servers, const mcr_client_opts_t* opts) {
  mcr_client_opts_t o;
  if (opts != NULL) {
    o = *opts;
  } else {
    mcr_client_opts_init(&o);
  }
  if (servers != NULL)
    o.servers = servers;
  mcr_client_t* c = NULL;
  int rc = mcr_client_new(&c, &o, NULL, 0);
  cr_assert_eq(rc, 0, "mcr_client_new(%s): %s", o.servers, mcr_err_name(rc));
  cr_assert_not_null(c);
  return c;
}
