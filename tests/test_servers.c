/* test_servers.c — parsing of the server list through mcr_client_new.
 *
 * The list is comma-separated "host:port[:weight]" entries, IPv6 addresses
 * in brackets, unix sockets as "/path" or "unix:/path", and a missing port
 * means 11211 (a missing weight, 1). The client connects lazily, so these
 * tests need no server. The parser (mcr__servers_parse) is checked field by
 * field; mcr_client_new must give the same verdicts and node names
 * (mcr_client_node_name).
 */
#include <string.h>

#include <criterion/criterion.h>

#include "internal.h"
#include "support.h"

typedef struct {
  const char* host;
  const char* name;
  unsigned port;
  unsigned weight;
  bool is_unix;
} node_want_t;

typedef struct {
  const char* list;
  size_t n;
  node_want_t nodes[3];
} valid_row_t;

static const valid_row_t valid[] = {
    {"127.0.0.1:11211", 1, {{"127.0.0.1", "127.0.0.1:11211", 11211, 1, 0}}},
    {"127.0.0.1:1", 1, {{"127.0.0.1", "127.0.0.1:1", 1, 1, 0}}},
    {"localhost:65535", 1, {{"localhost", "localhost:65535", 65535, 1, 0}}},
    {"a:1,b:2:3", 2, {{"a", "a:1", 1, 1, 0}, {"b", "b:2", 2, 3, 0}}},
    {"a:1:1,b:2:100,c:3",
     3,
     {{"a", "a:1", 1, 1, 0}, {"b", "b:2", 2, 100, 0}, {"c", "c:3", 3, 1, 0}}},
    {"[::1]:11211", 1, {{"::1", "[::1]:11211", 11211, 1, 0}}},
    {"[::1]:1,127.0.0.1:2",
     2,
     {{"::1", "[::1]:1", 1, 1, 0}, {"127.0.0.1", "127.0.0.1:2", 2, 1, 0}}},
    {"[fe80::1:2]:7:5", 1, {{"fe80::1:2", "[fe80::1:2]:7", 7, 5, 0}}},
    {"/tmp/x.sock", 1, {{"/tmp/x.sock", "/tmp/x.sock", 0, 1, 1}}},
    {"unix:/tmp/x.sock", 1, {{"/tmp/x.sock", "/tmp/x.sock", 0, 1, 1}}},
    {"host", 1, {{"host", "host:11211", 11211, 1, 0}}},
    {"host,other:5",
     2,
     {{"host", "host:11211", 11211, 1, 0}, {"other", "other:5", 5, 1, 0}}},
    {"/tmp/a.sock,h:9",
     2,
     {{"/tmp/a.sock", "/tmp/a.sock", 0, 1, 1}, {"h", "h:9", 9, 1, 0}}},
};

typedef struct {
  const char* list;
  int err;
} invalid_row_t;

static const invalid_row_t invalid[] = {
    {"", MCR_ENOSERVERS},
    {":", MCR_ESERVERS},
    {"h:", MCR_ESERVERS},
    {":11211", MCR_ESERVERS},
    {"h:0", MCR_ESERVERS},
    {"h:65536", MCR_ESERVERS},
    {"h:99999999999999999999999", MCR_ESERVERS},
    {"h:-1", MCR_ESERVERS},
    {"h:abc", MCR_ESERVERS},
    {"h:12x", MCR_ESERVERS},
    {"[::1", MCR_ESERVERS},
    {"[::1:11211", MCR_ESERVERS},
    {"[::1]x", MCR_ESERVERS},
    {"[]:11211", MCR_ESERVERS},
    {"h:1:0", MCR_ESERVERS},
    {"h:1:x", MCR_ESERVERS},
    {"h:1:", MCR_ESERVERS},
    {"h:1:-2", MCR_ESERVERS},
    {"h:1:99999999999999999999", MCR_ESERVERS},
    {"h:1:2:3", MCR_ESERVERS},
    {"a:1,", MCR_ESERVERS},
    {",a:1", MCR_ESERVERS},
    {"a:1,,b:2", MCR_ESERVERS},
    {"unix:", MCR_ESERVERS},
};

Test(servers, parse_valid_lists) {
  for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
    const valid_row_t* v = &valid[i];
    mcr__server_t* srv = NULL;
    size_t n = 0;
    char err[256] = "";
    int rc = mcr__servers_parse(v->list, &srv, &n, err, sizeof err);
    cr_assert_eq(rc, 0, "%s: %s (%s)", v->list, mcr_err_name(rc), err);
    cr_assert_eq(n, v->n, "%s: %zu nodes", v->list, n);
    for (size_t j = 0; j < n; j++) {
      const node_want_t* w = &v->nodes[j];
      cr_assert_str_eq(srv[j].host, w->host, "%s: node %zu", v->list, j);
      cr_assert_str_eq(srv[j].name, w->name, "%s: node %zu", v->list, j);
      cr_assert_eq(srv[j].is_unix, w->is_unix, "%s: node %zu", v->list, j);
      if (!w->is_unix)
        cr_assert_eq(srv[j].port, w->port, "%s: node %zu", v->list, j);
      cr_assert_eq(srv[j].weight, w->weight, "%s: node %zu weight %u", v->list,
                   j, srv[j].weight);
    }
    mcr__servers_free(srv, n);
  }
}

Test(servers, parse_invalid_lists_say_why) {
  for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
    mcr__server_t* srv = NULL;
    size_t n = 0;
    char err[256] = "";
    int rc = mcr__servers_parse(invalid[i].list, &srv, &n, err, sizeof err);
    cr_assert_eq(rc, invalid[i].err, "\"%s\": got %s", invalid[i].list,
                 mcr_err_name(rc));
    if (rc == MCR_ESERVERS)
      cr_assert_neq(err[0], '\0', "\"%s\": no message", invalid[i].list);
  }
}

Test(servers, client_node_names) {
  /* Through the public API, including lists of several nodes. The
   * libmemcached mode hashes names as given, so made-up host names need no
   * DNS (the default `ketama` mode resolves them: see below). */
  mcr_client_opts_t o = opts_default();
  o.distribution = MCR_DIST_KETAMA_LIBMEMCACHED;
  for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
    mcr_client_t* c = client_new(valid[i].list, &o);
    cr_assert_eq(mcr_client_node_count(c), valid[i].n, "%s: %zu nodes",
                 valid[i].list, mcr_client_node_count(c));
    for (size_t j = 0; j < valid[i].n; j++) {
      const char* name = mcr_client_node_name(c, j);
      cr_assert_not_null(name, "%s: node %zu", valid[i].list, j);
      cr_assert_str_eq(name, valid[i].nodes[j].name, "%s: node %zu",
                       valid[i].list, j);
    }
    cr_assert_null(mcr_client_node_name(c, valid[i].n), "%s", valid[i].list);
    mcr_client_free(c);
  }
}

Test(servers, invalid_lists) {
  for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
    mcr_client_opts_t o = opts_default();
    o.servers = invalid[i].list;
    mcr_client_t* c = NULL;
    int rc = mcr_client_new(&c, &o, NULL, 0);
    cr_assert_eq(rc, invalid[i].err, "\"%s\": got %d (%s) want %s",
                 invalid[i].list, rc, mcr_err_name(rc),
                 mcr_err_name(invalid[i].err));
    mcr_client_free(c);
  }
}

Test(servers, null_list_and_null_opts) {
  mcr_client_opts_t o = opts_default();
  o.servers = NULL;
  mcr_client_t* c = NULL;
  int rc = mcr_client_new(&c, &o, NULL, 0);
  cr_assert(rc == MCR_ENOSERVERS || rc == MCR_EINVAL, "got %s",
            mcr_err_name(rc));
  mcr_client_free(c);
  c = NULL;
  assert_rc(mcr_client_new(&c, NULL, NULL, 0), MCR_EINVAL);
  mcr_client_free(c);
  mcr_client_free(NULL);
}

Test(servers, options_defaults) {
  mcr_client_opts_t o;
  memset(&o, 0xab, sizeof o);
  mcr_client_opts_init(&o);
  cr_assert_null(o.servers);
  cr_assert_eq(o.distribution, MCR_DIST_KETAMA);
  cr_assert_eq(o.connect_timeout_ms, 1000);
  cr_assert_eq(o.io_timeout_ms, 1000);
  cr_assert_eq(o.tcp_keepalive, 0);
  cr_assert_eq(o.noreply, 0);
  cr_assert_eq(o.ignore_errors, 0);
  cr_assert_eq(o.item_size_max, (size_t)1 << 20);
  cr_assert_eq(o.compress_threshold, 0);
  cr_assert_eq(o.compress_level, 1);
  cr_assert_null(o.serde);
}

Test(servers, every_distribution_accepts_a_list) {
  const mcr_distribution_t d[] = {MCR_DIST_KETAMA, MCR_DIST_KETAMA_LIBMEMCACHED,
                                  MCR_DIST_XXH3};
  for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) {
    mcr_client_opts_t o = opts_default();
    o.distribution = d[i];
    mcr_client_t* c = client_new("127.0.0.1:1,127.0.0.2:2:3,[::1]:4", &o);
    cr_assert_eq(mcr_client_node_count(c), 3);
    cr_assert_not_null(mcr_client_ring(c));
    mcr_client_free(c);
  }
}

Test(servers, ketama_needs_resolvable_hosts) {
  /* `ketama` hashes "<ip>:<port>", so a name that does not resolve is an
   * error at creation, with the host in the message. */
  mcr_client_opts_t o = opts_default();
  o.servers = "no-such-host.invalid:1,127.0.0.1:2";
  o.connect_timeout_ms = 2000;
  mcr_client_t* c = NULL;
  char err[256] = "";
  int rc = mcr_client_new(&c, &o, err, sizeof err);
  cr_assert_eq(rc, MCR_ERESOLVE, "got %s (%s)", mcr_err_name(rc), err);
  cr_assert_null(c);
  cr_assert(strstr(err, "no-such-host.invalid") != NULL, "%s", err);
}

Test(servers, the_list_is_copied) {
  /* opts.servers may be freed or reused after mcr_client_new. */
  char list[] = "abc:1";
  mcr_client_t* c = client_new(list, NULL);
  memset(list, 'z', sizeof list - 1);
  cr_assert_str_eq(mcr_client_node_name(c, 0), "abc:1");
  mcr_client_free(c);
}
