/* test_fanout.c — the engine (lib/fanout.c) against misbehaving servers:
 * the right error, inside the call's deadline, recovery on the next call,
 * and the retry rule.
 *
 * Every failure is bounded: the call returns within its timeouts plus the
 * suite's slack (support.h, TEST_SLACK_MS: a bound that holds on a loaded
 * machine), and a timeout never fires early. Each test points a client at
 * a fake server from tests/support that misbehaves on its first connection
 * and relays to a real memcached afterwards, so the client's next call on
 * the same handle must succeed: the failed connection was closed and a new
 * one opened. Connect failures use a full accept queue (connects hang) and
 * a bound port with no listener (connects are refused); for recovery a
 * healthy relay then takes over that same port.
 *
 * Then scripted replies that a correct server never sends (bad and
 * overflowing numbers, a value for a key nobody asked for, short data
 * blocks, over-long lines, trailing bytes, endless stats, values larger
 * than item_size_max) and the three error lines. Error lines are complete
 * replies, so the connection stays open; anything else is a protocol error
 * that must close it. Last, the retry rule: a kept connection the server
 * closed is replaced and the request sent again only when it is
 * repeatable, once, inside the first deadline.
 */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "support.h"

#define IO_MS 300
#define CONNECT_MS 300

static mcd_t mcd;
static fake_t* fake;
static mcr_client_t* client;

static void setup(void) {
  mcd_start(&mcd, NULL);
  raw_set(&mcd, "k", "v", 1, 0);
}

static void teardown(void) {
  mcr_client_free(client);
  fake_stop(fake);
  mcd_stop(&mcd);
}

TestSuite(fanout, .init = setup, .fini = teardown, .timeout = 30);

static mcr_client_t* short_timeout_client(const char* servers) {
  mcr_client_opts_t o = opts_default();
  o.io_timeout_ms = IO_MS;
  o.connect_timeout_ms = CONNECT_MS;
  /* These tests time every failure, so none may be cut short by the node
   * being marked down (test_router covers that). */
  o.failure_limit = 0;
  return client_new(servers, &o);
}

/* A fake with `mode` on its first connection, relaying afterwards. */
static void start_bad_server(fake_mode_t mode) {
  fake = fake_start(&(fake_opts_t){
      .mode = mode, .bad_conns = 1, .then = FAKE_PROXY, .backend = &mcd});
  client = short_timeout_client(fake_servers_string(fake));
}

/* Asserts the bounds of a failed call that took `ms`: never more than the
 * timeout plus the slack, and for a timeout, not less than the timeout. */
static void assert_elapsed(int64_t ms, int limit, bool is_timeout) {
  cr_assert_leq(ms, limit + TEST_SLACK_MS, "took %lld ms, limit %d",
                (long long)ms, limit);
  if (is_timeout)
    cr_assert_geq(ms, limit - 5, "timed out early: %lld ms of %d",
                  (long long)ms, limit);
}

/* A get of "k" that must fail with `want` within the bounds. */
static void get_fails_in_time(int want, int limit, bool is_timeout) {
  mcr_item_t item;
  int64_t t0 = now_ms();
  int rc = mcr_client_get(client, "k", 1, &item);
  int64_t ms = now_ms() - t0;
  assert_rc(rc, want);
  assert_elapsed(ms, limit, is_timeout);
  cr_assert_neq(mcr_client_last_error(client)[0], '\0', "no last error");
}

/* The same, then a get that must succeed on the same client. */
static void get_fails_then_recovers(int want, int limit, bool is_timeout) {
  get_fails_in_time(want, limit, is_timeout);
  cl_expect(client, "k", "v");
}

Test(fanout, silent_server) {
  start_bad_server(FAKE_SILENT);
  get_fails_then_recovers(MCR_ETIMEOUT, IO_MS, true);
  cr_assert_eq(fake_connections(fake), 2);
}

Test(fanout, silent_server_on_a_write) {
  start_bad_server(FAKE_SILENT);
  int64_t t0 = now_ms();
  assert_rc(mcr_client_set(client, "w", 1, "v", 1, 0, 0, 0), MCR_ETIMEOUT);
  assert_elapsed(now_ms() - t0, IO_MS, true);
  cl_set(client, "w", "v2");
  cl_expect(client, "w", "v2");
}

Test(fanout, silent_server_multi_get) {
  start_bad_server(FAKE_SILENT);
  const char* keys[] = {"k", "other"};
  size_t lens[] = {1, 5};
  mcr_item_t items[2];
  int64_t t0 = now_ms();
  int hits = t_get_multi(client, 2, keys, lens, items);
  assert_elapsed(now_ms() - t0, IO_MS, true);
  cr_assert_eq(hits, 0);
  assert_rc(items[0].status, MCR_ETIMEOUT);
  assert_rc(items[1].status, MCR_ETIMEOUT);
  cr_assert_eq(t_get_multi(client, 2, keys, lens, items), 1);
  assert_rc(items[0].status, MCR_OK);
  assert_rc(items[1].status, MCR_MISS);
}

Test(fanout, half_reply_then_stall) {
  start_bad_server(FAKE_HALF);
  get_fails_then_recovers(MCR_ETIMEOUT, IO_MS, true);
}

Test(fanout, garbage_reply) {
  start_bad_server(FAKE_GARBAGE);
  get_fails_then_recovers(MCR_EPROTO, IO_MS, false);
}

Test(fanout, closed_mid_value) {
  start_bad_server(FAKE_CLOSE_MID);
  get_fails_then_recovers(MCR_ECLOSED, IO_MS, false);
}

Test(fanout, closed_at_once) {
  start_bad_server(FAKE_CLOSE);
  mcr_item_t item;
  int64_t t0 = now_ms();
  int rc = mcr_client_get(client, "k", 1, &item);
  assert_elapsed(now_ms() - t0, IO_MS, false);
  /* Whether the request met a FIN or a RST depends on timing. */
  cr_assert(rc == MCR_ECLOSED || rc == MCR_EIO, "got %d (%s)", rc,
            mcr_err_name(rc));
  cl_expect(client, "k", "v");
}

Test(fanout, paused_memcached) {
  /* A real server that stops answering mid-connection. */
  client = short_timeout_client(mcd.servers);
  cl_expect(client, "k", "v");
  mcd_pause(&mcd);
  get_fails_in_time(MCR_ETIMEOUT, IO_MS, true);
  mcd_resume(&mcd);
  cl_expect(client, "k", "v");
}

Test(fanout, io_timeout_is_per_call) {
  /* Two timed-out calls in a row each get the whole timeout: a deadline
   * left over from the first must not shorten the second. */
  fake = fake_start(&(fake_opts_t){.mode = FAKE_SILENT});
  client = short_timeout_client(fake_servers_string(fake));
  for (int i = 0; i < 2; i++)
    get_fails_in_time(MCR_ETIMEOUT, IO_MS, true);
}

Test(fanout, slow_drip_reply_is_bounded_by_the_call) {
  /* The I/O timeout covers the whole reply of a call, not each read: a
   * server that keeps sending a byte every 5 ms for longer than the
   * timeout still makes the call fail in time. */
  static char reply[512];
  char* p = reply + sprintf(reply, "VALUE k 0 200\r\n");
  memset(p, 'x', 200);
  memcpy(p + 200, "\r\nEND\r\n", 8);
  const char* script[] = {reply, "END\r\n", NULL};
  fake = fake_start(&(fake_opts_t){
      .mode = FAKE_SCRIPT, .script = script, .trickle_us = 5000});
  client = short_timeout_client(fake_servers_string(fake));
  get_fails_in_time(MCR_ETIMEOUT, IO_MS, true);
}

/* A server that accepts one connection, reads nothing for `delay_ms` (its
 * receive buffer is small, so the client's send fills up and waits), then
 * reads everything and never answers. */
typedef struct {
  int lfd;
  int delay_ms;
  pthread_t thread;
} slow_reader_t;

static void* slow_reader_main(void* arg) {
  slow_reader_t* s = arg;
  int fd = accept(s->lfd, NULL, NULL);
  if (fd < 0)
    return NULL;
  usleep((useconds_t)s->delay_ms * 1000);
  int big = 4 << 20; /* now drain fast */
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  char buf[65536];
  while (recv(fd, buf, sizeof buf, 0) > 0) {
  }
  close(fd);
  return NULL;
}

Test(fanout, a_send_that_waits_counts_against_the_call) {
  /* The request takes the first 350 ms of a 500 ms call to get out; the
   * wait for the reply then has only what is left. A blocking send
   * followed by a receive with the full SO_RCVTIMEO would take 850 ms. */
  slow_reader_t s = {.delay_ms = 350};
  s.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  cr_assert(s.lfd >= 0);
  int small = 4096;
  setsockopt(s.lfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t sl = sizeof sa;
  cr_assert(bind(s.lfd, (struct sockaddr*)&sa, sizeof sa) == 0);
  cr_assert(listen(s.lfd, 4) == 0);
  cr_assert(getsockname(s.lfd, (struct sockaddr*)&sa, &sl) == 0);
  cr_assert(pthread_create(&s.thread, NULL, slow_reader_main, &s) == 0);
  char servers[64];
  snprintf(servers, sizeof servers, "127.0.0.1:%d", ntohs(sa.sin_port));
  mcr_client_opts_t o = opts_default();
  o.io_timeout_ms = 500;
  o.failure_limit = 0;
  o.item_size_max = 64u << 20;
  client = client_new(servers, &o);
  size_t len = 16u << 20; /* more than the socket buffers hold */
  char* v = calloc(1, len);
  cr_assert_not_null(v);
  int64_t t0 = now_ms();
  int rc = mcr_client_set(client, "k", 1, v, len, 0, 0, 0);
  int64_t ms = now_ms() - t0;
  assert_rc(rc, MCR_ETIMEOUT);
  assert_elapsed(ms, o.io_timeout_ms, true);
  free(v);
  mcr_client_free(client);
  client = NULL;
  pthread_join(s.thread, NULL);
  close(s.lfd);
}

/* ---------------------------------------------------------------- connect */

/* After a connect failure on `port`, a healthy relay takes the port over
 * and the same client must get through. The client's timeouts are short
 * (IO_MS) and a relay on a busy machine can miss one, so a timeout may be
 * retried a few times; anything else, or never getting through, fails. */
static void take_over_port(int port) {
  fake = fake_start(
      &(fake_opts_t){.mode = FAKE_PROXY, .backend = &mcd, .port = port});
  mcr_item_t item;
  for (int i = 0; i < 20; i++)
    if (mcr_client_get(client, "k", 1, &item) != MCR_ETIMEOUT)
      break;
  cl_expect(client, "k", "v");
}

Test(fanout, hung_connect) {
  blackhole_t b;
  blackhole_start(&b);
  client = short_timeout_client(b.servers);
  get_fails_in_time(MCR_ECONNTIMEOUT, CONNECT_MS, true);
  int64_t t0 = now_ms();
  assert_rc(mcr_client_set(client, "k", 1, "v", 1, 0, 0, 0), MCR_ECONNTIMEOUT);
  assert_elapsed(now_ms() - t0, CONNECT_MS, true);
  blackhole_stop(&b);
  take_over_port(b.port);
}

Test(fanout, connect_timeout_is_separate_from_io_timeout) {
  blackhole_t b;
  blackhole_start(&b);
  mcr_client_opts_t o = opts_default();
  o.io_timeout_ms = 2000;
  o.connect_timeout_ms = 150;
  client = client_new(b.servers, &o);
  get_fails_in_time(MCR_ECONNTIMEOUT, 150, true);
  blackhole_stop(&b);
}

Test(fanout, refused_connect) {
  refuser_t r;
  refuser_start(&r);
  client = short_timeout_client(r.servers);
  get_fails_in_time(MCR_ECONNECT, CONNECT_MS, false);
  refuser_stop(&r);
  take_over_port(r.port);
}

Test(fanout, unresolvable_host) {
  /* ".invalid" never resolves (RFC 6761); resolution is local, no packet
   * leaves the machine. */
  client = short_timeout_client("no-such-host.invalid:11211");
  get_fails_in_time(MCR_ERESOLVE, CONNECT_MS, false);
}

/* A program that dlopens libmcring (PHP loads it with an extension and
 * unloads both at shutdown) must not be able to unmap it while a resolver
 * thread may still run in it: the first name resolution pins the shared
 * library, so it stays loaded after the last dlclose. */
Test(fanout, a_resolver_thread_pins_the_shared_library) {
  const char* top = getenv("MCR_TOP_BUILDDIR");
  cr_assert_not_null(top, "MCR_TOP_BUILDDIR is not set");
  char path[512];
  snprintf(path, sizeof path, "%s/lib/.libs/libmcring.so", top);
  void* h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  cr_assert_not_null(h, "%s", dlerror());
  void (*opts_init)(mcr_client_opts_t*) =
      (void (*)(mcr_client_opts_t*))dlsym(h, "mcr_client_opts_init");
  int (*new_client)(mcr_client_t**, const mcr_client_opts_t*, char*, size_t) =
      (int (*)(mcr_client_t**, const mcr_client_opts_t*, char*, size_t))dlsym(
          h, "mcr_client_new");
  int (*get)(mcr_client_t*, const char*, size_t, mcr_item_t*) =
      (int (*)(mcr_client_t*, const char*, size_t, mcr_item_t*))dlsym(
          h, "mcr_client_get");
  void (*free_client)(mcr_client_t*) =
      (void (*)(mcr_client_t*))dlsym(h, "mcr_client_free");
  cr_assert(opts_init && new_client && get && free_client, "%s", dlerror());
  mcr_client_opts_t o;
  opts_init(&o);
  char servers[64];
  snprintf(servers, sizeof servers, "localhost:%d", mcd.port); /* a name */
  o.servers = servers;
  mcr_client_t* c = NULL;
  char err[256];
  cr_assert_eq(new_client(&c, &o, err, sizeof err), 0, "%s", err);
  mcr_item_t item;
  (void)get(c, "k", 1, &item); /* resolves "localhost" in a thread */
  free_client(c);
  cr_assert_eq(dlclose(h), 0);
  cr_assert_not_null(dlopen(path, RTLD_NOW | RTLD_NOLOAD),
                     "libmcring was unmapped after its last dlclose");
}

/* ---------------------------------------------------------------- replies */

typedef enum { OP_GET, OP_GETS, OP_SET, OP_INCR, OP_DELETE, OP_STATS } op_t;

typedef struct {
  const char* what;
  op_t op;
  const char* reply; /* the fake's answer to the first request */
  int want;
  int closes;      /* 1: the client must drop the connection; 0: keep it;
                      -1: either (see below) */
  const char* msg; /* part of the last error, or NULL */
} reply_row_t;

static char long_line[9000];

static const reply_row_t rows[] = {
    /* A get may span several request lines whose later answers are still
     * coming, so dropping the connection after an error line is allowed. */
    {"server error", OP_GET, "SERVER_ERROR out of memory\r\n", MCR_ESERVERERR,
     -1, "out of memory"},
    {"client error", OP_SET, "CLIENT_ERROR bad data chunk\r\n", MCR_ECLIENTERR,
     0, "bad data chunk"},
    {"plain error", OP_GET, "ERROR\r\n", MCR_ESERVERCMD, -1, NULL},
    {"plain error on delete", OP_DELETE, "ERROR\r\n", MCR_ESERVERCMD, 0, NULL},
    {"server error on incr", OP_INCR, "SERVER_ERROR busy\r\n", MCR_ESERVERERR,
     0, "busy"},
    {"bad length", OP_GET, "VALUE k 0 abc\r\nabc\r\nEND\r\n", MCR_EPROTO, 1,
     NULL},
    {"overflowing length", OP_GET,
     "VALUE k 0 99999999999999999999999\r\nx\r\nEND\r\n", MCR_EPROTO, 1, NULL},
    {"negative length", OP_GET, "VALUE k 0 -1\r\nx\r\nEND\r\n", MCR_EPROTO, 1,
     NULL},
    {"flags over 32 bits", OP_GET, "VALUE k 4294967296 1\r\nx\r\nEND\r\n",
     MCR_EPROTO, 1, NULL},
    {"value for a key not asked", OP_GET, "VALUE q 0 1\r\nx\r\nEND\r\n",
     MCR_EPROTO, 1, NULL},
    {"block longer than announced", OP_GET, "VALUE k 0 1\r\nxy\r\nEND\r\n",
     MCR_EPROTO, 1, NULL},
    {"missing END", OP_GET, "VALUE k 0 1\r\nx\r\nSTORED\r\n", MCR_EPROTO, 1,
     NULL},
    {"gets without cas", OP_GETS, "VALUE k 0 1\r\nx\r\nEND\r\n", MCR_EPROTO, 1,
     NULL},
    {"gets with a bad cas", OP_GETS, "VALUE k 0 1 12z\r\nx\r\nEND\r\n",
     MCR_EPROTO, 1, NULL},
    {"get answered STORED", OP_GET, "STORED\r\n", MCR_EPROTO, 1, NULL},
    {"set answered END", OP_SET, "END\r\n", MCR_EPROTO, 1, NULL},
    {"set answered lowercase", OP_SET, "stored\r\n", MCR_EPROTO, 1, NULL},
    {"incr overflow", OP_INCR, "18446744073709551616\r\n", MCR_EPROTO, 1, NULL},
    {"incr negative", OP_INCR, "-1\r\n", MCR_EPROTO, 1, NULL},
    {"incr empty", OP_INCR, "\r\n", MCR_EPROTO, 1, NULL},
    {"incr trailing junk", OP_INCR, "12 3\r\n", MCR_EPROTO, 1, NULL},
    {"delete answered OK", OP_DELETE, "OK\r\n", MCR_EPROTO, 1, NULL},
    {"stats answered VALUE", OP_STATS, "VALUE k 0 1\r\nx\r\nEND\r\n",
     MCR_EPROTO, 1, NULL},
    {"line over 8 KiB", OP_GET, long_line, MCR_EPROTO, 1, NULL},
};

static int run_op(op_t op) {
  mcr_item_t item;
  uint64_t v;
  const mcr_stat_t* st;
  switch (op) {
    case OP_GET:
      return mcr_client_get(client, "k", 1, &item);
    case OP_GETS:
      return mcr_client_gets(client, "k", 1, &item);
    case OP_SET:
      return mcr_client_set(client, "k", 1, "v", 1, 0, 0, 0);
    case OP_INCR:
      return mcr_client_incr(client, "k", 1, 1, &v, 0);
    case OP_DELETE:
      return mcr_client_delete(client, "k", 1, 0);
    case OP_STATS:
      return t_stats_node(client, 0, NULL, &st);
  }
  return 0;
}

Test(fanout, scripted_replies) {
  memset(long_line, 'A', sizeof long_line - 3);
  memcpy(long_line + sizeof long_line - 3, "\r\n", 3);
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    const char* script[] = {rows[i].reply, "END\r\n", NULL};
    fake = fake_start(&(fake_opts_t){.mode = FAKE_SCRIPT, .script = script});
    client = short_timeout_client(fake_servers_string(fake));
    int64_t t0 = now_ms();
    int rc = run_op(rows[i].op);
    int64_t ms = now_ms() - t0;
    cr_assert_eq(rc, rows[i].want, "%s: got %d (%s) want %s", rows[i].what, rc,
                 mcr_err_name(rc), mcr_err_name(rows[i].want));
    assert_elapsed(ms, IO_MS, rows[i].want == MCR_ETIMEOUT);
    if (rows[i].msg != NULL)
      cr_assert(strstr(mcr_client_last_error(client), rows[i].msg) != NULL,
                "%s: last error \"%s\"", rows[i].what,
                mcr_client_last_error(client));
    /* The next call gets the fake's next reply ("END": a miss), on the
     * same connection after an error line, on a new one otherwise. */
    mcr_item_t item;
    int rc2 = mcr_client_get(client, "k", 1, &item);
    cr_assert_eq(rc2, MCR_MISS, "%s: next call got %d (%s)", rows[i].what, rc2,
                 mcr_err_name(rc2));
    if (rows[i].closes >= 0)
      cr_assert_eq(fake_connections(fake), rows[i].closes ? 2 : 1,
                   "%s: %d connections", rows[i].what, fake_connections(fake));
    mcr_client_free(client);
    client = NULL;
    fake_stop(fake);
    fake = NULL;
  }
}

Test(fanout, trailing_bytes_after_a_reply) {
  /* A complete reply followed by bytes nobody asked for: the call
   * succeeds, but the stream is out of sync, so the next call must not
   * read those bytes as its reply. */
  const char* script[] = {
      "VALUE k 0 1\r\nx\r\nEND\r\nVALUE k 0 1\r\ny\r\nEND\r\n", "END\r\n",
      NULL};
  fake = fake_start(&(fake_opts_t){.mode = FAKE_SCRIPT, .script = script});
  client = short_timeout_client(fake_servers_string(fake));
  cl_expect(client, "k", "x");
  usleep(50 * 1000); /* let the stray bytes arrive */
  cl_expect_miss(client, "k");
  cr_assert_eq(fake_connections(fake), 2);
}

Test(fanout, reply_arrives_one_byte_at_a_time) {
  /* A valid reply split into many reads is not an error. */
  const char* script[] = {"VALUE k 0 5\r\nhello\r\nEND\r\n", NULL};
  fake = fake_start(&(fake_opts_t){
      .mode = FAKE_SCRIPT, .script = script, .trickle_us = 2000});
  client = short_timeout_client(fake_servers_string(fake));
  cl_expect(client, "k", "hello");
}

/* ------------------------------------------------ retries (round 2, B) */

/* A client of a proxy that applies the second request of its first
 * connection at memcached and then closes instead of answering; later
 * connections relay normally. io_ms is the client's I/O timeout. */
static void start_apply_close(int drop_delay_ms, fake_mode_t then, int io_ms) {
  fake = fake_start(&(fake_opts_t){.mode = FAKE_APPLY_CLOSE,
                                   .bad_conns = 1,
                                   .then = then,
                                   .backend = &mcd,
                                   .drop_at = 1,
                                   .drop_delay_ms = drop_delay_ms});
  mcr_client_opts_t o = opts_default();
  o.io_timeout_ms = io_ms;
  o.connect_timeout_ms = CONNECT_MS;
  o.failure_limit = 0;
  client = client_new(fake_servers_string(fake), &o);
}

/* A connection kept from an earlier call that fails before any reply byte
 * may have been closed by a server that applied the request first (a proxy,
 * a crash): a command whose repetition changes the result is never sent
 * again. incr ran once: the value is 2, and the caller hears that the
 * connection closed. */
Test(fanout, a_command_that_repetition_changes_is_never_retried) {
  raw_set(&mcd, "n", "1", 1, 0);
  start_apply_close(0, FAKE_PROXY, 2000);
  cl_set(client, "warm", "up"); /* request 0: the connection is kept */
  uint64_t v = 0;
  assert_rc(mcr_client_incr(client, "n", 1, 1, &v, 0), MCR_ECLOSED);
  char buf[16];
  size_t len;
  uint32_t flags;
  cr_assert(raw_get(&mcd, "n", buf, sizeof buf, &len, &flags));
  cr_assert(len == 1 && buf[0] == '2', "incr applied %.*s", (int)len, buf);
  cr_assert(strstr(mcr_client_last_error(client), "may have been applied"),
            "%s", mcr_client_last_error(client));
  /* The next call uses a new connection. */
  assert_rc(mcr_client_incr(client, "n", 1, 1, &v, 0), MCR_OK);
  cr_assert_eq(v, 3);
}

/* The same failure on a read is retried, transparently. */
Test(fanout, a_read_is_retried_on_a_new_connection) {
  start_apply_close(0, FAKE_PROXY, 2000);
  cl_set(client, "warm", "up");
  cl_expect(client, "k", "v"); /* request 1: dropped, retried */
  cr_assert_eq(fake_connections(fake), 2);
}

/* The retry runs inside the first attempt's deadline: a server that holds
 * the request for most of the I/O timeout and then closes, followed by one
 * that never answers, costs one I/O timeout, not two. */
Test(fanout, a_retry_stays_inside_the_first_deadline, .timeout = 60) {
  const int io = 3000;
  start_apply_close(io - 300, FAKE_SILENT, io);
  cl_set(client, "warm", "up");
  mcr_item_t it;
  int64_t t0 = now_ms();
  assert_rc(mcr_client_get(client, "k", 1, &it), MCR_ETIMEOUT);
  int64_t ms = now_ms() - t0;
  cr_assert_leq(ms, CONNECT_MS + io + TEST_SLACK_MS,
                "took %lld ms: the retry got a deadline of its own",
                (long long)ms);
  cr_assert_geq(ms, io - 5, "timed out early: %lld ms", (long long)ms);
}

/* A meta pipeline gets the same (safe) retry: a connection memcached
 * closed while idle (here: a restart) costs nothing. */
Test(fanout, a_meta_pipeline_retries_an_idle_closed_connection) {
  mcr_client_opts_t o = opts_default();
  client = client_new(mcd.servers, &o);
  cl_set(client, "p", "1");
  mcd_restart(&mcd);
  raw_set(&mcd, "p", "2", 1, 0);
  mcr_meta_cmd_t cmds[2] = {
      {.op = 'g', .key = "p", .key_len = 1, .opts = {.flags = MCR_META_VALUE}},
      {.op = 'g', .key = "none", .key_len = 4}};
  assert_rc(t_meta_pipeline(client, cmds, 2), 1);
  assert_rc(cmds[0].result.status, MCR_OK);
  cr_assert(cmds[0].result.value_len == 1 && cmds[0].result.value[0] == '2');
  assert_rc(cmds[1].result.status, MCR_MISS);
}

/* ------------------------------------------------ hostile sizes (C) */

/* A reply announcing a value larger than item_size_max is a protocol
 * error at once: no buffer grows for it (it used to reserve up to 1 GiB,
 * per node of a multi-get) and nothing waits for the bytes. */
Test(fanout, a_value_larger_than_item_size_max_is_refused_at_once) {
  static const char* const script[] = {"VALUE k 0 1073741000\r\n",
                                       "VA 1073741000 v\r\n", NULL};
  fake = fake_start(&(fake_opts_t){.mode = FAKE_SCRIPT, .script = script});
  mcr_client_opts_t o = opts_default();
  o.io_timeout_ms = 5000;
  client = client_new(fake_servers_string(fake), &o);
  mcr_item_t it;
  int64_t t0 = now_ms();
  assert_rc(mcr_client_get(client, "k", 1, &it), MCR_EPROTO);
  cr_assert_lt(now_ms() - t0, 5000, "waited for a value it cannot take");
  cr_assert(strstr(mcr_client_last_error(client), "item_size_max"), "%s",
            mcr_client_last_error(client));
  mcr_meta_opts_t mo = {.flags = MCR_META_VALUE};
  mcr_meta_result_t r;
  t0 = now_ms();
  assert_rc(mcr_client_mg(client, "k", 1, &mo, &r), MCR_EPROTO);
  cr_assert_lt(now_ms() - t0, 5000, "waited for a value it cannot take");
}

/* A stats reply without end: refused past the bound (docs/client.md),
 * not grown into all memory. */
Test(fanout, an_endless_stats_reply_is_bounded) {
  enum { LINES = 120000 };
  char* big = malloc((size_t)LINES * 16 + 1);
  size_t len = 0;
  for (int i = 0; i < LINES; i++)
    len += (size_t)sprintf(big + len, "STAT s%d 1\r\n", i);
  const char* script[] = {big, NULL};
  fake = fake_start(&(fake_opts_t){.mode = FAKE_SCRIPT, .script = script});
  mcr_client_opts_t o = opts_default();
  o.io_timeout_ms = 5000;
  client = client_new(fake_servers_string(fake), &o);
  const mcr_stat_t* st;
  assert_rc(t_stats_node(client, 0, NULL, &st), MCR_EPROTO);
  free(big);
}
