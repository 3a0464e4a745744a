/* test_tls.c — TLS to real memcached (lib/tls.c under lib/conn.c).
 *
 * Debian's memcached is built with TLS: each test starts `memcached -Z`
 * with certificates made for it by tests/support/tls_certs.sh (a CA, a
 * server certificate for localhost / 127.0.0.1, a client certificate, one
 * for the wrong name, an expired one, a self-signed one, another CA). It
 * checks every command over TLS, a multi-get over three TLS nodes, values
 * of several records; that every bad certificate (unknown CA, wrong name,
 * expired, self-signed) is refused with MCR_ETLSVERIFY and a reason, and a
 * plain or silent server fails within the connect timeout with nothing
 * sent in clear; mutual TLS accepted and refused; that a reconnect resumes
 * the session; and that forked children never read their parent's
 * records. Bounds are the promised timeouts plus TEST_SLACK_MS.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <openssl/err.h>

#include "fakecfg.h"
#include "support.h"

static char certs[64];
static char chain_opt[512]; /* the -o argument of a TLS memcached */

/* Makes this test's certificates in a fresh directory. */
static void setup(void) {
  snprintf(certs, sizeof certs, "/tmp/mcr-tls-XXXXXX");
  cr_assert_not_null(mkdtemp(certs));
  char script[512];
  const char* top = getenv("MCR_TOP_SRCDIR");
  snprintf(script, sizeof script, "%s/tests/support/tls_certs.sh",
           top ? top : ".");
  const char* argv[] = {"/bin/sh", script, certs, NULL};
  cr_assert_eq(wait_exit(spawn_prog(argv, NULL), 60000), 0,
               "tls_certs.sh failed (is openssl installed?)");
}

static void teardown(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", certs);
  cr_expect_eq(system(cmd), 0);
}

TestSuite(tls, .init = setup, .fini = teardown, .timeout = 120);

static const char* cert(const char* name) {
  static char paths[8][128];
  static int next;
  char* p = paths[next++ % 8];
  snprintf(p, sizeof paths[0], "%s/%s", certs, name);
  return p;
}

/* A TLS memcached serving certificate `name` (server, expired, ...);
 * with `verify_clients`, it demands a client certificate of the CA. */
static void start_tls(mcd_t* m, const char* name, bool verify_clients) {
  snprintf(chain_opt, sizeof chain_opt,
           "ssl_chain_cert=%s/%s.pem,ssl_key=%s/%s.key%s%s%s", certs, name,
           certs, name, verify_clients ? ",ssl_verify_mode=2,ssl_ca_cert=" : "",
           verify_clients ? certs : "", verify_clients ? "/ca.pem" : "");
  const char* const extra[] = {"-Z", "-o", chain_opt, NULL};
  mcd_start(m, &(mcd_opts_t){.extra = extra, .tls = true});
}

/* A number from `stats` of node i of c (0 when absent). */
static uint64_t node_stat(mcr_client_t* c, size_t i, const char* name) {
  const mcr_stat_t* st;
  size_t n = 0;
  assert_rc(mcr_client_stats_node(c, i, NULL, &st, &n), MCR_OK);
  for (size_t j = 0; j < n; j++)
    if (strcmp(st[j].name, name) == 0)
      return strtoull(st[j].value, NULL, 10);
  return 0;
}

static mcr_client_opts_t tls_opts(void) {
  mcr_client_opts_t o = opts_default();
  o.tls.enable = 1;
  o.tls.ca_file = cert("ca.pem");
  return o;
}

/* A client of `servers` with `o`; the call that fails is the first get. */
static int first_get(const char* servers, mcr_client_opts_t* o,
                     int64_t* took_ms, char* why, size_t cap) {
  mcr_client_t* c = client_new(servers, o);
  mcr_item_t it;
  int64_t t0 = now_ms();
  int rc = mcr_client_get(c, "k", 1, &it);
  *took_ms = now_ms() - t0;
  snprintf(why, cap, "%s", mcr_client_last_error(c));
  mcr_client_free(c);
  return rc;
}

Test(tls, every_command_over_tls) {
  mcd_t m;
  start_tls(&m, "server", false);
  mcr_client_opts_t o = tls_opts();
  mcr_client_t* c = client_new(m.servers, &o);
  cl_set(c, "a", "1");
  cl_expect(c, "a", "1");
  mcr_item_t it;
  assert_rc(mcr_client_gets(c, "a", 1, &it), MCR_OK);
  uint64_t cas = it.cas;
  assert_rc(mcr_client_cas(c, "a", 1, "2", 1, 0, 0, cas, 0), MCR_OK);
  assert_rc(mcr_client_add(c, "a", 1, "x", 1, 0, 0, 0), MCR_NOT_STORED);
  assert_rc(mcr_client_replace(c, "a", 1, "5", 1, 0, 0, 0), MCR_OK);
  assert_rc(mcr_client_append(c, "a", 1, "0", 1, 0), MCR_OK);
  assert_rc(mcr_client_prepend(c, "a", 1, "1", 1, 0), MCR_OK);
  cl_expect(c, "a", "150");
  uint64_t v;
  assert_rc(mcr_client_incr(c, "a", 1, 7, &v, 0), MCR_OK);
  cr_assert_eq(v, 157);
  assert_rc(mcr_client_decr(c, "a", 1, 57, &v, 0), MCR_OK);
  cr_assert_eq(v, 100);
  assert_rc(mcr_client_touch(c, "a", 1, 300, 0), MCR_OK);
  assert_rc(mcr_client_gat(c, "a", 1, 300, &it), MCR_OK);
  assert_rc(mcr_client_delete(c, "a", 1, 0), MCR_OK);
  assert_rc(mcr_client_get(c, "a", 1, &it), MCR_MISS);
  /* Values of several TLS records (16 KiB each), both ways. */
  size_t big = 600 * 1024;
  char* val = malloc(big);
  for (size_t i = 0; i < big; i++)
    val[i] = (char)('a' + i % 26);
  assert_rc(mcr_client_set(c, "big", 3, val, big, 0, 0, 0), MCR_OK);
  assert_rc(mcr_client_get(c, "big", 3, &it), MCR_OK);
  cr_assert_eq(it.value_len, big);
  cr_assert(memcmp(it.value, val, big) == 0);
  free(val);
  const char* ver;
  assert_rc(mcr_client_version(c, 0, &ver), MCR_OK);
  cr_assert(strncmp(ver, "1.", 2) == 0, "%s", ver);
  cr_assert_gt(node_stat(c, 0, "curr_connections"), 0);
  mcr_meta_opts_t set = {0}, mo = {.flags = MCR_META_VALUE};
  mcr_meta_result_t r;
  assert_rc(mcr_client_ms(c, "m", 1, "meta", 4, &set, &r), MCR_OK);
  assert_rc(mcr_client_mg(c, "m", 1, &mo, &r), MCR_OK);
  cr_assert(r.value_len == 4 && memcmp(r.value, "meta", 4) == 0);
  assert_rc(mcr_client_flush_all(c, 0, 0), MCR_OK);
  cr_assert_eq(cl_stats(c).tls_handshakes, 1, "one connection, one handshake");
  mcr_client_free(c);
  mcd_stop(&m);
}

Test(tls, multi_get_over_three_tls_nodes) {
  mcd_t m[3];
  char servers[256] = "";
  static char opts3[3][512];
  for (int i = 0; i < 3; i++) {
    start_tls(&m[i], "server", false);
    /* start_tls reuses its buffer: keep each node's arguments. */
    snprintf(opts3[i], sizeof opts3[i], "%s", chain_opt);
    m[i].extra[2] = opts3[i];
    size_t l = strlen(servers);
    snprintf(servers + l, sizeof servers - l, "%s%s", i ? "," : "",
             m[i].servers);
  }
  mcr_client_opts_t o = tls_opts();
  mcr_client_t* c = client_new(servers, &o);
  enum { N = 300 };
  static char kb[N][16];
  const char* keys[N];
  size_t lens[N];
  const void* vals[N];
  int st[N];
  for (int i = 0; i < N; i++) {
    lens[i] = (size_t)snprintf(kb[i], sizeof kb[i], "key%d", i);
    keys[i] = vals[i] = kb[i];
  }
  size_t done = 0;
  assert_rc(
      mcr_client_set_multi(c, N, keys, lens, vals, lens, 0, 0, st, 0, &done),
      MCR_OK);
  cr_assert_eq(done, N);
  mcr_item_t items[N];
  size_t hits = 0;
  assert_rc(mcr_client_get_multi(c, N, keys, lens, items, &hits), MCR_OK);
  cr_assert_eq(hits, N);
  for (int i = 0; i < N; i++)
    cr_assert(items[i].value_len == lens[i] &&
              memcmp(items[i].value, keys[i], lens[i]) == 0);
  for (int i = 0; i < 3; i++)
    cr_assert_gt(node_stat(c, (size_t)i, "curr_items"), 0, "node %d unused", i);
  /* Another user of OpenSSL in the process left an error in this thread's
   * queue (SSL_get_error reads it): the next calls, whose reads of a
   * half-million-byte value wait for bytes, must not fail. */
  size_t big_len = 512 * 1024; /* many records: reads that must wait */
  char* big = malloc(big_len);
  cr_assert_not_null(big);
  for (size_t i = 0; i < big_len; i++)
    big[i] = (char)('a' + i % 26);
  assert_rc(mcr_client_set(c, "big", 3, big, big_len, 0, 0, 0), MCR_OK);
  for (int round = 0; round < 3; round++) {
    ERR_raise(ERR_LIB_USER, 1);
    mcr_item_t it;
    assert_rc(mcr_client_get(c, "big", 3, &it), MCR_OK);
    cr_assert(it.value_len == big_len && memcmp(it.value, big, big_len) == 0);
    ERR_raise(ERR_LIB_USER, 1);
    hits = 0;
    assert_rc(mcr_client_get_multi(c, N, keys, lens, items, &hits), MCR_OK);
    cr_assert_eq(hits, N);
    ERR_raise(ERR_LIB_USER, 1);
    cl_expect(c, "key7", "key7");
  }
  free(big);
  mcr_client_free(c);
  for (int i = 0; i < 3; i++)
    mcd_stop(&m[i]);
}

/* Each bad certificate: MCR_ETLSVERIFY at the first call, in time, with
 * OpenSSL's reason in the message. */
static void expect_refused(const char* server_cert, const char* ca,
                           const char* name, const char* reason) {
  mcd_t m;
  start_tls(&m, server_cert, false);
  mcr_client_opts_t o = tls_opts();
  o.tls.ca_file = cert(ca);
  o.tls.server_name = name;
  o.connect_timeout_ms = 2000;
  int64_t took;
  char why[512];
  int rc = first_get(m.servers, &o, &took, why, sizeof why);
  assert_rc(rc, MCR_ETLSVERIFY);
  cr_assert(strstr(why, reason), "reason \"%s\" not in \"%s\"", reason, why);
  cr_assert_lt(took, 2000 + TEST_SLACK_MS);
  mcd_stop(&m);
}

Test(tls, unknown_ca_is_refused) {
  expect_refused("server", "other-ca.pem", NULL, "unable to get local issuer");
}

Test(tls, wrong_name_is_refused) {
  expect_refused("wrongname", "ca.pem", NULL, "mismatch");
  expect_refused("server", "ca.pem", "wrong.example", "mismatch");
}

Test(tls, expired_certificate_is_refused) {
  expect_refused("expired", "ca.pem", NULL, "expired");
}

Test(tls, self_signed_is_refused_unless_insecure) {
  expect_refused("selfsigned", "ca.pem", NULL, "self-signed");
  mcd_t m;
  start_tls(&m, "selfsigned", false);
  mcr_client_opts_t o = tls_opts();
  o.tls.insecure = 1;
  mcr_client_t* c = client_new(m.servers, &o);
  cl_set(c, "k", "v");
  cl_expect(c, "k", "v");
  mcr_client_free(c);
  mcd_stop(&m);
}

Test(tls, a_plain_server_fails_in_time_with_nothing_in_clear) {
  fx_setup(); /* a plain memcached */
  fake_t* f =
      fake_start(&(fake_opts_t){.mode = FAKE_PROXY, .backend = &fx_mcd});
  mcr_client_opts_t o = tls_opts();
  o.connect_timeout_ms = 1000;
  int64_t took;
  char why[512];
  int rc = first_get(fake_servers_string(f), &o, &took, why, sizeof why);
  cr_assert(rc == MCR_ETLS || rc == MCR_ECONNTIMEOUT, "%s: %s",
            mcr_err_name(rc), why);
  cr_assert(strstr(why, "TLS"), "%s", why);
  cr_assert_lt(took, 1000 + TEST_SLACK_MS);
  char got[4096];
  size_t n = fake_received(f, got, sizeof got);
  cr_assert_gt(n, 5);
  cr_assert(got[0] == 0x16 && got[1] == 0x03, "not a TLS handshake record");
  cr_assert_null(memmem(got, n, "get k", 5), "the request went in clear");
  fake_stop(f);
  fx_teardown();
}

Test(tls, a_silent_server_fails_within_the_connect_timeout) {
  fake_t* f = fake_start(&(fake_opts_t){.mode = FAKE_SILENT});
  mcr_client_opts_t o = tls_opts();
  o.connect_timeout_ms = 500;
  o.io_timeout_ms = 5000;
  int64_t took;
  char why[512];
  assert_rc(first_get(fake_servers_string(f), &o, &took, why, sizeof why),
            MCR_ECONNTIMEOUT);
  cr_assert(strstr(why, "TLS handshake"), "%s", why);
  cr_assert_geq(took, 450);
  cr_assert_lt(took, 500 + TEST_SLACK_MS);
  fake_stop(f);
}

Test(tls, mutual_tls_accepted_and_refused) {
  mcd_t m;
  start_tls(&m, "server", true);
  mcr_client_opts_t o = tls_opts();
  o.tls.cert_file = cert("client.pem");
  o.tls.key_file = cert("client.key");
  mcr_client_t* c = client_new(m.servers, &o);
  cl_set(c, "k", "v");
  cl_expect(c, "k", "v");
  mcr_client_free(c);
  /* Without a certificate the server ends the session: in TLS 1.3 the
   * client learns it at its first read, not in the handshake. */
  o = tls_opts();
  int64_t took;
  char why[512];
  int rc = first_get(m.servers, &o, &took, why, sizeof why);
  cr_assert(rc == MCR_ETLS || rc == MCR_ECLOSED, "%s: %s", mcr_err_name(rc),
            why);
  mcd_stop(&m);
}

Test(tls, a_reconnect_resumes_the_session) {
  mcd_t m;
  start_tls(&m, "server", false);
  mcr_client_opts_t o = tls_opts();
  mcr_client_t* c = client_new(m.servers, &o);
  cl_set(c, "k", "v");
  for (int i = 0; i < 5; i++) {
    assert_rc(mcr_client_quit(c), MCR_OK); /* closes the connection */
    cl_expect(c, "k", "v");
  }
  mcr_client_stats_t st = cl_stats(c);
  cr_assert_eq(st.tls_handshakes, 6);
  cr_assert_geq(st.tls_resumed, 4, "%llu of 5 reconnects resumed",
                (unsigned long long)st.tls_resumed);
  /* A restarted server knows no session: a full handshake, then on. */
  mcd_restart(&m);
  cl_set(c, "k", "w");
  cl_expect(c, "k", "w");
  mcr_client_free(c);
  mcd_stop(&m);
}

Test(tls, forked_children_never_read_their_parents_records) {
  mcd_t m;
  start_tls(&m, "server", false);
  mcr_client_opts_t o = tls_opts();
  mcr_client_t* c = client_new(m.servers, &o);
  char key[16], val[16];
  for (int i = 0; i < 50; i++) {
    snprintf(key, sizeof key, "f%d", i);
    snprintf(val, sizeof val, "v%d", i);
    cl_set(c, key, val);
  }
  /* The parent's connection is live when the children are made. */
  enum { KIDS = 4 };
  pid_t kids[KIDS];
  for (int k = 0; k < KIDS; k++) {
    kids[k] = fork();
    cr_assert_geq(kids[k], 0);
    if (kids[k] == 0) {
      int bad = 0;
      for (int r = 0; r < 400; r++) {
        int i = (r * 7 + k) % 50;
        snprintf(key, sizeof key, "f%d", i);
        snprintf(val, sizeof val, "v%d", i);
        mcr_item_t it;
        if (mcr_client_get(c, key, strlen(key), &it) != MCR_OK ||
            it.value_len != strlen(val) ||
            memcmp(it.value, val, it.value_len) != 0)
          bad++;
      }
      _exit(bad ? 1 : 0);
    }
  }
  for (int r = 0; r < 400; r++) {
    int i = r % 50;
    snprintf(key, sizeof key, "f%d", i);
    snprintf(val, sizeof val, "v%d", i);
    cl_expect(c, key, val);
  }
  for (int k = 0; k < KIDS; k++)
    cr_assert_eq(wait_exit(kids[k], 60000), 0, "child %d read wrong values", k);
  mcr_client_free(c);
  mcd_stop(&m);
}

Test(tls, options_are_checked) {
  mcr_client_opts_t o = tls_opts();
  o.tls.min_version = 11;
  mcr_client_t* c = NULL;
  char err[256];
  assert_rc(mcr_client_new(&c, &(mcr_client_opts_t){0}, err, sizeof err),
            MCR_EINVAL);
  o.servers = "127.0.0.1:1";
  assert_rc(mcr_client_new(&c, &o, err, sizeof err), MCR_EINVAL);
  cr_assert(strstr(err, "min_version"), "%s", err);
  o = tls_opts();
  o.servers = "127.0.0.1:1";
  o.tls.ca_file = "/nonexistent/ca.pem";
  assert_rc(mcr_client_new(&c, &o, err, sizeof err), MCR_ETLS);
  cr_assert(strstr(err, "/nonexistent/ca.pem"), "%s", err);
  o = tls_opts();
  o.servers = "/tmp/mc.sock";
  assert_rc(mcr_client_new(&c, &o, err, sizeof err), MCR_EINVAL);
  cr_assert(strstr(err, "unix"), "%s", err);
  cr_assert_null(c);
}

/* A client that discovers its nodes itself (opts.elasticache, no agent)
 * from an endpoint behind a TLS front, which replies `host`|127.0.0.1|port
 * of m. Returns the first get's code, its error text in why. */
static int embedded_get(const char* host, const mcd_t* m, char* why,
                        size_t cap) {
  char nodes[128], line[160];
  snprintf(nodes, sizeof nodes, "%s/nodes-%s", certs, host);
  snprintf(line, sizeof line, "%s|127.0.0.1|%d\n", host, m->port);
  cr_assert_eq(fakecfg_write_file(nodes, line), 0);
  fakecfg_t* f = fakecfg_start(&(fakecfg_opts_t){.nodes_file = nodes});
  cr_assert_not_null(f);
  tls_proxy_t* px =
      tls_proxy_start(fakecfg_port(f), cert("server.pem"), cert("server.key"));
  mcr_client_opts_t o = tls_opts();
  o.elasticache = tls_proxy_endpoint(px);
  o.connect_timeout_ms = 2000;
  mcr_client_t* c = NULL;
  char err[512] = "";
  assert_rc(mcr_client_new(&c, &o, err, sizeof err), MCR_OK);
  cr_assert_eq(mcr_client_node_count(c), 1, "the endpoint's node list");
  mcr_item_t it;
  int rc = mcr_client_get(c, "k", 1, &it);
  snprintf(why, cap, "%s", mcr_client_last_error(c));
  mcr_client_free(c);
  tls_proxy_stop(px);
  fakecfg_stop(f);
  unlink(nodes);
  return rc;
}

/* Embedded discovery over TLS: the endpoint is verified, and each node is
 * verified against the host name the endpoint gives while the address it
 * gives is what is dialled. The memcached's certificate names only
 * wrong.example, which does not resolve here: reached as that name at
 * 127.0.0.1, and refused when the endpoint calls it localhost. */
Test(tls, embedded_discovery_verifies_each_node_by_its_name) {
  mcd_t m;
  start_tls(&m, "wrongname", false);
  char why[512];
  /* a miss: the server answered over the verified connection */
  int rc = embedded_get("wrong.example", &m, why, sizeof why);
  cr_assert_eq(rc, MCR_MISS, "rc %d: %s", rc, why);
  assert_rc(embedded_get("localhost", &m, why, sizeof why), MCR_ETLSVERIFY);
  cr_assert(strstr(why, "mismatch"), "%s", why);
  mcd_stop(&m);
}

/* A TLS setting given while TLS is off would leave the traffic in clear
 * although the caller asked for verification: refused, not ignored. */
Test(tls, tls_settings_without_tls_are_refused) {
  mcr_client_t* c = NULL;
  char err[256];
  for (int i = 0; i < 7; i++) {
    mcr_client_opts_t o = tls_opts();
    o.tls = (mcr_tls_opts_t){0};
    o.servers = "127.0.0.1:1";
    switch (i) {
      case 0:
        o.tls.ca_file = cert("ca.pem");
        break;
      case 1:
        o.tls.ca_dir = certs;
        break;
      case 2:
        o.tls.cert_file = cert("client.pem");
        break;
      case 3:
        o.tls.key_file = cert("client.key");
        break;
      case 4:
        o.tls.server_name = "localhost";
        break;
      case 5:
        o.tls.insecure = 1;
        break;
      case 6:
        o.tls.min_version = 13;
        break;
    }
    assert_rc(mcr_client_new(&c, &o, err, sizeof err), MCR_EINVAL);
    cr_assert(strstr(err, "tls.enable is 0"), "case %d: %s", i, err);
    cr_assert_null(c);
  }
  /* The agent: --tls-ca without --tls stops it before any poll. */
  char log[128], ring[128];
  snprintf(log, sizeof log, "%s/agent-notls.log", certs);
  snprintf(ring, sizeof ring, "%s/ring-notls", certs);
  const char* args[] = {
      "--config", "/dev/null", "--elasticache", "127.0.0.1:1",   "--ring-dir",
      ring,       "--tls-ca",  cert("ca.pem"),  "--stats-slots", "0",
      NULL};
  pid_t pid = agent_spawn(&(spawn_opts_t){.err = log}, args, NULL);
  int status = wait_exit(pid, 10000);
  cr_assert(status > 0, "the agent ran (exit %d): %s", status,
            deploy_slurp(log));
  cr_assert(strstr(deploy_slurp(log), "need tls"), "%s", deploy_slurp(log));
}

/* The agent polls an ElastiCache endpoint over TLS (a TLS front before the
 * fake endpoint): verified, it publishes; with a CA that did not sign the
 * endpoint's certificate it publishes nothing and says why. */
static void agent_case(const char* ca, bool expect_ring) {
  char nodes[128], ring[128], log[128];
  snprintf(nodes, sizeof nodes, "%s/nodes", certs);
  snprintf(ring, sizeof ring, "%s/ring", certs);
  snprintf(log, sizeof log, "%s/agent.log", certs);
  cr_assert_eq(fakecfg_write_file(nodes, "localhost|127.0.0.1|11211\n"), 0);
  fakecfg_t* f = fakecfg_start(&(fakecfg_opts_t){.nodes_file = nodes});
  cr_assert_not_null(f);
  tls_proxy_t* px =
      tls_proxy_start(fakecfg_port(f), cert("server.pem"), cert("server.key"));
  const char* args[] = {"--config",
                        "/dev/null",
                        "--elasticache",
                        tls_proxy_endpoint(px),
                        "--ring-dir",
                        ring,
                        "--interval",
                        "0.2",
                        "--tls",
                        "--tls-ca",
                        cert(ca),
                        "--tls-name",
                        "localhost",
                        "--stats-slots",
                        "0",
                        NULL};
  pid_t pid = agent_spawn(&(spawn_opts_t){.err = log}, args, NULL);
  if (expect_ring) {
    ring_wait_gen(ring, 1, 10000);
  } else {
    int64_t end = now_ms() + 10000;
    while (!strstr(deploy_slurp(log), "certificate") && now_ms() < end)
      usleep(20000);
    cr_assert(strstr(deploy_slurp(log), "TLS certificate"), "%s",
              deploy_slurp(log));
    cr_assert_eq(deploy_ring_gen(ring), 0,
                 "published without a verified "
                 "endpoint");
  }
  cr_assert_eq(deploy_stop(pid, SIGTERM, 10000), 0);
  tls_proxy_stop(px);
  fakecfg_stop(f);
}

Test(tls, the_agent_polls_a_tls_endpoint) {
  agent_case("ca.pem", true);
}

Test(tls, the_agent_refuses_an_unverified_endpoint) {
  agent_case("other-ca.pem", false);
}

/* mcring --tls: a round trip, and a refusal that names the reason. */
Test(tls, the_cli_speaks_tls) {
  mcd_t m;
  start_tls(&m, "server", false);
  char out[128], errf[128];
  snprintf(out, sizeof out, "%s/out", certs);
  snprintf(errf, sizeof errf, "%s/err", certs);
  const char* mcring = built_prog("mcring");
  const char* set[] = {mcring,         "-s",  m.servers, "--tls",    "--tls-ca",
                       cert("ca.pem"), "set", "k",       "over-tls", NULL};
  cr_assert_eq(wait_exit(spawn_prog(set, NULL), 30000), 0);
  const char* get[] = {mcring,         "-s",  m.servers, "--tls", "--tls-ca",
                       cert("ca.pem"), "get", "k",       NULL};
  cr_assert_eq(wait_exit(spawn_prog(get, &(spawn_opts_t){.out = out}), 30000),
               0);
  cr_assert_str_eq(deploy_slurp(out), "over-tls");
  const char* bad[] = {mcring,  "-s",       m.servers,
                       "--tls", "--tls-ca", cert("other-ca.pem"),
                       "get",   "k",        NULL};
  cr_assert_eq(wait_exit(spawn_prog(bad, &(spawn_opts_t){.err = errf}), 30000),
               2);
  cr_assert(strstr(deploy_slurp(errf), "certificate"), "%s",
            deploy_slurp(errf));
  mcd_stop(&m);
}
