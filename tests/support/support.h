/* support.h — fixtures shared by mcring's tests.
 *
 * Two kinds of servers for tests to talk to:
 *   mcd_*   a real memcached (Debian's binary) started for one test on a
 *           loopback port that memcached picks itself (so parallel tests
 *           never race for a port), or on a unix socket, and stopped at the
 *           end; it dies with the test process even when that one crashes.
 *   fake_*  a misbehaving server in a thread of the test process: silent,
 *           stalling after half a reply, sending garbage, closing mid-value,
 *           or replying scripted bytes; it can misbehave on its first
 *           connections only and then relay to a real memcached, so a test
 *           can check that the client recovers on its next call.
 * Plus a raw text-protocol connection (raw_*) that bypasses libmcring, for
 * reading what really is on the server, and small client helpers.
 *
 * Every helper fails the current Criterion test on a setup error, so tests
 * do not check their return values. When memcached is missing the test is
 * skipped, except when CI=true, where it fails.
 */
#ifndef MCR_TEST_SUPPORT_H
#define MCR_TEST_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <criterion/criterion.h> /* skip_or_fail, assert_rc, assert_value */

#include "deploy.h" /* spawn_prog and friends wrap it */
#include "mcring.h"

/* ---------------------------------------------------------------- TLS front */

/* tls_proxy.c (linked into the TLS tests only): TLS on a free 127.0.0.1
 * port with cert / key, relaying to the plain server on backend_port. */
typedef struct tls_proxy tls_proxy_t;
tls_proxy_t* tls_proxy_start(int backend_port, const char* cert,
                             const char* key);
const char* tls_proxy_endpoint(const tls_proxy_t* t); /* "127.0.0.1:PORT" */
void tls_proxy_stop(tls_proxy_t* t);

/* ---------------------------------------------------------------- memcached */

typedef struct {
  pid_t pid;          /* 0 when not running */
  int port;           /* TCP port, 0 on a unix socket */
  bool ipv6;          /* listening on [::1] instead of 127.0.0.1 */
  char path[108];     /* unix socket path, "" for TCP */
  char servers[160];  /* "127.0.0.1:PORT", "[::1]:PORT" or the path */
  char portfile[128]; /* where memcached reports the port it bound */
  const char* extra[16];
  size_t nextra;
  bool tls; /* started with -Z: answers in TLS only */
} mcd_t;

typedef struct {
  bool unix_socket;         /* listen on a fresh unix socket path only */
  bool ipv6;                /* listen on ::1 (see mcd_have_ipv6) */
  const char* const* extra; /* more arguments, NULL-terminated, or NULL */
  bool tls; /* extra makes it a TLS server: it is up once it accepts */
} mcd_opts_t;

/* Starts memcached (MCR_MEMCACHED, else /usr/bin/memcached) and waits until
 * it answers "version". opts may be NULL (TCP on 127.0.0.1). */
void mcd_start(mcd_t* m, const mcd_opts_t* opts);
/* SIGTERM, then SIGKILL after 200 ms; reaps the process; removes the
 * socket file. Safe on a stopped or never-started server. */
void mcd_stop(mcd_t* m);
/* Starts n memcached with default options into m[0..n) and writes their
 * servers strings, joined by commas, into servers[cap]. */
void mcd_start_n(mcd_t* m, int n, char* servers, size_t cap);
/* Stops and starts memcached again on the same port or path (empty). */
void mcd_restart(mcd_t* m);
void mcd_pause(mcd_t* m);  /* SIGSTOP */
void mcd_resume(mcd_t* m); /* SIGCONT */
const char* mcd_servers_string(const mcd_t* m);
/* True when the kernel lets us bind ::1. */
bool mcd_have_ipv6(void);
/* Path of the memcached binary, or NULL when there is none (the test has
 * then been skipped, or failed under CI). */
const char* mcd_binary(void);

/* ---------------------------------------------------------------- raw */

/* A plain blocking text-protocol connection with a 5 s timeout. */
typedef struct {
  int fd;
  char* buf; /* NUL-terminated reply bytes */
  size_t len, cap;
} raw_t;

void raw_open(raw_t* r, const mcd_t* m);
void raw_close(raw_t* r);
/* Sends `len` bytes. */
void raw_send(raw_t* r, const void* data, size_t len);
/* Reads until the buffer ends with `terminator` (e.g. "END\r\n"); returns
 * the NUL-terminated reply (valid until the next raw call). */
const char* raw_until(raw_t* r, const char* terminator);
/* Sends `cmd` and returns the reply up to a line that is `terminator`. */
const char* raw_cmd(raw_t* r, const char* cmd, const char* terminator);
/* One statistic of "stats" as a number (fails the test when absent). */
uint64_t mcd_stat(const mcd_t* m, const char* name);
/* Stores bytes with a raw set (any flags), expecting STORED. */
void raw_set(const mcd_t* m, const char* key, const void* value, size_t len,
             uint32_t flags);
/* Fetches a key with a raw get. Returns false on a miss; on a hit copies at
 * most cap bytes to value and sets *len (the stored length) and *flags. */
bool raw_get(const mcd_t* m, const char* key, void* value, size_t cap,
             size_t* len, uint32_t* flags);
/* True when the server holds key (a raw get, bypassing libmcring). */
bool raw_has(const mcd_t* m, const char* key);

/* Remaining TTL of key as the server reports it through "mg <key> t":
 * -1 = never expires; fails the test on a miss. */
int64_t raw_ttl(const mcd_t* m, const char* key);

/* ---------------------------------------------------------------- fake */

typedef enum {
  FAKE_SILENT,     /* reads requests, never answers */
  FAKE_HALF,       /* answers "VALUE <key> 0 10\r\nabc" and stalls */
  FAKE_GARBAGE,    /* answers a line that is no memcached reply */
  FAKE_CLOSE_MID,  /* answers "VALUE <key> 0 10\r\nabc" and closes */
  FAKE_SCRIPT,     /* answers script[i] to the i-th request (last repeats) */
  FAKE_PROXY,      /* relays bytes to and from a real memcached */
  FAKE_CLOSE,      /* closes every connection at once */
  FAKE_APPLY_CLOSE /* relays to a real memcached, but the drop_at-th request
                      (0-based) on a connection is applied there and then
                      answered by closing, after drop_delay_ms, without a
                      byte (a proxy or server that dies after applying) */
} fake_mode_t;

typedef struct {
  fake_mode_t mode;          /* behaviour of the first `bad_conns` ones */
  int bad_conns;             /* 0: every connection behaves as `mode` */
  fake_mode_t then;          /* behaviour of later connections */
  const char* const* script; /* FAKE_SCRIPT replies, NULL-terminated */
  const mcd_t* backend;      /* FAKE_PROXY target */
  int port;                  /* 0: any free port; else this one */
  int trickle_us;            /* FAKE_SCRIPT: send one byte per this many us */
  int split_at;              /* FAKE_SCRIPT: send this many bytes of each */
  int split_us;              /* reply, wait split_us, then send the rest */
  int drop_at;               /* FAKE_APPLY_CLOSE: which request */
  int drop_delay_ms;         /* FAKE_APPLY_CLOSE: silence before closing */
} fake_opts_t;

typedef struct fake fake_t;

/* Starts a fake server on a free 127.0.0.1 port in a thread. */
fake_t* fake_start(const fake_opts_t* opts);
void fake_stop(fake_t* f);
int fake_port(const fake_t* f);
const char* fake_servers_string(const fake_t* f);
/* Copies every byte received so far (all connections, in arrival order)
 * into out[cap]; returns how many bytes were received in total. */
size_t fake_received(fake_t* f, char* out, size_t cap);
int fake_connections(fake_t* f);
/* Number of complete requests read (a storage command with its data block
 * counts once). */
int fake_requests(fake_t* f);

/* A listener whose accept queue is full and never drained, so a further
 * connect to it hangs until the client gives up. Returns the port; the
 * sockets stay open until blackhole_stop. */
typedef struct {
  int fds[16];
  int nfds;
  int port;
  char servers[64];
} blackhole_t;
void blackhole_start(blackhole_t* b);
void blackhole_stop(blackhole_t* b);

/* A port with a bound, non-listening socket on it: connects are refused
 * and nobody else can take the port while it is held. */
typedef struct {
  int fd;
  int port;
  char servers[64];
} refuser_t;
void refuser_start(refuser_t* r);
void refuser_stop(refuser_t* r);

/* ---------------------------------------------------------------- programs */
/* Programs are started with tools/deploy.h (shared with the bench and the
 * demo); these wrap it for tests, failing the test where it cannot go on.
 * Every child dies with the test process. */
/* How spawn_prog starts a program; every field may be left zero. */
typedef deploy_spawn_opts_t spawn_opts_t;
/* deploy_spawn, failing the test when fork fails. */
pid_t spawn_prog(const char* const* argv, const spawn_opts_t* o);
/* deploy_wait: pid's exit status within timeout_ms, or -1 (killed by a
 * signal, or at the timeout, after which it is killed and reaped). */
int wait_exit(pid_t pid, int timeout_ms);
/* The built program `name` ("mcring", "mcring-agent") under
 * $MCR_TOP_BUILDDIR, in static storage that holds the last two; fails the
 * test when it is not there. */
const char* built_prog(const char* name);
/* Starts the built mcring-agent with the arguments `args` then `more`
 * (each NULL-terminated; more may be NULL), as `o` says (may be NULL). */
pid_t agent_spawn(const spawn_opts_t* o, const char* const* args,
                  const char* const* more);
/* deploy_wait_gen, failing the test when the generation published in
 * ring_dir is still below `want` after timeout_ms. Returns it. */
uint64_t ring_wait_gen(const char* ring_dir, uint64_t want, int timeout_ms);

/* How many entries of directory dir have names starting with prefix (0
 * when dir cannot be read): the ring.N and ctl.tmp files a publisher left. */
size_t dir_count_prefix(const char* dir, const char* prefix);

/* ---------------------------------------------------------------- hostile */

/* The agent's host stats socket as any member of the workers' group can
 * use it (hostile.c), for tests that play a hostile worker. hs_connect:
 * a connection to DIR/stats.sock, or -1. hs_register: sends a
 * registration with segfd on sock; with wait, returns the agent's status
 * (MCR__HS_*), or -1 when it closed without one; else 0 once sent. Neither
 * asserts: they run in processes that switched users. */
int hs_connect(const char* ring_dir);
int hs_register(int sock, int segfd, bool wait);

/* ---------------------------------------------------------------- client */

/* The common fixture, for .init / .fini: a memcached on a fresh port
 * (fx_mcd) and a client with default options on it (fx_client). */
extern mcd_t fx_mcd;
extern mcr_client_t* fx_client;
void fx_setup(void);
/* Frees fx_client (NULL afterwards) and stops fx_mcd. */
void fx_teardown(void);

/* Options as mcr_client_opts_init leaves them, for tests to adjust. */
mcr_client_opts_t opts_default(void);
/* mcr_client_new with opts (default options with `servers` when NULL);
 * fails the test on an error. */
mcr_client_t* client_new(const char* servers, const mcr_client_opts_t* opts);
/* Stores the NUL-terminated value under key (flags 0, no TTL) and asserts
 * MCR_OK. */
void cl_set(mcr_client_t* c, const char* key, const char* value);
/* Asserts that key holds exactly the NUL-terminated value. */
void cl_expect(mcr_client_t* c, const char* key, const char* value);
/* Asserts that key is a miss. */
void cl_expect_miss(mcr_client_t* c, const char* key);
/* The client's counters (mcr_client_stats). */
mcr_client_stats_t cl_stats(mcr_client_t* c);
/* Milliseconds on CLOCK_MONOTONIC. */
int64_t now_ms(void);
/* What every wall-clock bound a test asserts adds to the deadline it
 * checks: a loaded 2-core machine, or valgrind, may leave a process
 * unscheduled for this long. Tests assert what must hold whatever the
 * speed (a call never outlives its deadline plus this, a timeout never
 * fires early); how fast things are is `make bench`'s business. */
#define TEST_SLACK_MS 2000
/* True when CI=true is set in the environment. */
bool in_ci(void);
/* Makes a fresh directory /tmp/mcr-<tag>-XXXXXX and puts the path of a
 * ring directory inside it ("<that>/ring", not created: the snapshot
 * writer creates it) in dir[len]. */
void ring_dir_make(char* dir, size_t len, const char* tag);
/* Removes what ring_dir_make made, best effort. */
void ring_dir_remove(const char* dir);
/* Skips the test with `why`, or fails it under CI. */
#define skip_or_fail(why)                                \
  do {                                                   \
    if (in_ci())                                         \
      cr_assert_fail("not skipped under CI: %s", (why)); \
    cr_skip_test("%s", (why));                           \
  } while (0)

/* The multi-key calls as tests read them: the count they give through an
 * out-parameter, or the negative error when they fail. t_count joins the
 * two; it reads *n only once the call has returned. */
static inline int t_count(int rc, const size_t* n) {
  return rc < 0 ? rc : (int)*n;
}
static inline int t_get_multi(mcr_client_t* c, size_t n,
                              const char* const* keys, const size_t* lens,
                              mcr_item_t* items) {
  size_t hits = 0;
  return t_count(mcr_client_get_multi(c, n, keys, lens, items, &hits), &hits);
}
static inline int t_gets_multi(mcr_client_t* c, size_t n,
                               const char* const* keys, const size_t* lens,
                               mcr_item_t* items) {
  size_t hits = 0;
  return t_count(mcr_client_gets_multi(c, n, keys, lens, items, &hits), &hits);
}
static inline int t_set_multi(mcr_client_t* c, size_t n,
                              const char* const* keys, const size_t* lens,
                              const void* const* values,
                              const size_t* value_lens, uint32_t flags,
                              int64_t ttl, int* statuses, unsigned cflags) {
  size_t ok = 0;
  return t_count(mcr_client_set_multi(c, n, keys, lens, values, value_lens,
                                      flags, ttl, statuses, cflags, &ok),
                 &ok);
}
static inline int t_delete_multi(mcr_client_t* c, size_t n,
                                 const char* const* keys, const size_t* lens,
                                 int* statuses, unsigned cflags) {
  size_t ok = 0;
  return t_count(
      mcr_client_delete_multi(c, n, keys, lens, statuses, cflags, &ok), &ok);
}
static inline int t_meta_pipeline(mcr_client_t* c, mcr_meta_cmd_t* cmds,
                                  size_t n) {
  size_t ok = 0;
  return t_count(mcr_client_meta_pipeline(c, cmds, n, &ok), &ok);
}
static inline int t_stats_node(mcr_client_t* c, size_t node, const char* arg,
                               const mcr_stat_t** stats) {
  size_t n = 0;
  return t_count(mcr_client_stats_node(c, node, arg, stats, &n), &n);
}
static inline int t_hoststats_read(mcr_hoststats_t* h,
                                   const mcr_hoststat_row_t** rows) {
  size_t n = 0;
  return t_count(mcr_hoststats_read(h, rows, &n), &n);
}

/* Asserts that an mcring call returned `want`, naming both codes. */
#define assert_rc(got, want)                                                   \
  do {                                                                         \
    int rc__ = (got), want__ = (want);                                         \
    cr_assert_eq(rc__, want__, "%s: got %d (%s) want %d (%s)", #got, rc__,     \
                 rc__ < 0 ? mcr_err_name(rc__) : mcr_status_name(rc__),        \
                 want__,                                                       \
                 want__ < 0 ? mcr_err_name(want__) : mcr_status_name(want__)); \
  } while (0)

/* Asserts that item holds exactly `len` bytes of `val`. */
#define assert_value(item, val, len)                                        \
  do {                                                                      \
    cr_assert_eq((item).value_len, (size_t)(len), "value_len %zu want %zu", \
                 (item).value_len, (size_t)(len));                          \
    cr_assert(memcmp((item).value, (val), (len)) == 0, "value differs");    \
  } while (0)

#endif /* MCR_TEST_SUPPORT_H */
