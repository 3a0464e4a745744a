/* test_elasticache.c — the agent's parsers, and one poll of the endpoint.
 *
 * A table of ElastiCache Auto Discovery replies (both forms) that must
 * parse, and one of replies that must be refused whole — byte counts off
 * either way, bad hosts, addresses and ports, framing errors — plus the
 * property that every strict prefix of a good reply asks for more bytes,
 * that the framing read piece by piece says what the whole parser says,
 * and a mutation loop that must never crash the parser (the seed of the
 * fuzzing the parser is built for). Also the version-reply parser, the
 * node-file parser and the static list. Last, mcr__ec_poll against the
 * fake endpoint (tests/support/fakecfg.c, a thread of this process): the
 * cache of the last reply that parsed, used only for the same bytes.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "fakecfg.h"

/* Builds a reply around `block` with the byte count off by `delta`. */
static char* mk(mcr__ec_form_t form, const char* block, int delta,
                size_t* len) {
  size_t cap = strlen(block) + 128;
  char* b = malloc(cap);
  int n = snprintf(b, cap, "%s 0 %ld\r\n%s\r\nEND\r\n",
                   form == MCR__EC_CONFIG ? "CONFIG cluster"
                                          : "VALUE AmazonElastiCache:cluster",
                   (long)strlen(block) + delta, block);
  *len = (size_t)n;
  return b;
}

static int parse_block(mcr__ec_form_t form, const char* block, int delta,
                       mcr__nodes_t* out, char* err) {
  size_t len;
  char* b = mk(form, block, delta, &len);
  int rc = mcr__ec_parse(form, b, len, out, err, 256);
  free(b);
  return rc;
}

Test(ec_parse, config_form_three_nodes) {
  mcr__nodes_t l = {0};
  char err[256];
  int rc = parse_block(MCR__EC_CONFIG,
                       "12\nb.example.com|10.0.0.2|11211 "
                       "a.example.com|10.0.0.1|11211 "
                       "c.example.com|10.0.0.3|11212\n",
                       0, &l, err);
  cr_assert_eq(rc, 0, "rc %d: %s", rc, err);
  cr_assert_eq(l.n, 3);
  cr_assert(l.has_version);
  cr_assert_eq(l.version, 12);
  /* Sorted by host. */
  cr_assert_str_eq(l.v[0].host, "a.example.com");
  cr_assert_str_eq(l.v[0].addr, "10.0.0.1");
  cr_assert_eq(l.v[2].port, 11212);
  cr_assert_eq(l.v[1].weight, 1);
  mcr__nodes_free(&l);
}

Test(ec_parse, legacy_form) {
  mcr__nodes_t l = {0};
  char err[256];
  int rc = parse_block(MCR__EC_LEGACY, "1\nh1|192.168.1.1|11211\n", 0, &l, err);
  cr_assert_eq(rc, 0, "%s", err);
  cr_assert_eq(l.n, 1);
  cr_assert_eq(l.version, 1);
  /* A legacy reply is not accepted as an answer to config get cluster. */
  size_t len;
  char* b = mk(MCR__EC_LEGACY, "1\nh1|192.168.1.1|11211\n", 0, &len);
  rc = mcr__ec_parse(MCR__EC_CONFIG, b, len, &l, err, sizeof(err));
  cr_assert_eq(rc, MCR_EPROTO);
  free(b);
  mcr__nodes_free(&l);
}

Test(ec_parse, ipv6_and_empty_ip) {
  mcr__nodes_t l = {0};
  char err[256];
  int rc = parse_block(MCR__EC_CONFIG,
                       "3\nv6.node|2001:db8::1|11211 noip.node||11211 "
                       "br.node|[::1]|11300 2001:db8::7||11211\n",
                       0, &l, err);
  cr_assert_eq(rc, 0, "%s", err);
  cr_assert_eq(l.n, 4);
  /* Sorted: "2001:db8::7" < "br.node" < "noip.node" < "v6.node". */
  cr_assert_str_eq(l.v[0].host, "2001:db8::7");
  cr_assert_str_eq(l.v[0].addr, "2001:db8::7"); /* numeric host */
  cr_assert_str_eq(l.v[1].addr, "::1");
  cr_assert_str_eq(l.v[2].addr, ""); /* resolved later */
  cr_assert_str_eq(l.v[3].addr, "2001:db8::1");
  mcr__nodes_free(&l);
}

Test(ec_parse, five_hundred_nodes) {
  size_t cap = 500 * 64 + 32, len = 0;
  char* block = malloc(cap);
  len += (size_t)snprintf(block, cap, "77\n");
  for (int i = 0; i < 500; i++)
    len += (size_t)snprintf(block + len, cap - len, "%snode%d.x|10.1.%d.%d|%d",
                            i ? " " : "", i, i / 250, i % 250, 11211 + i);
  snprintf(block + len, cap - len, "\n");
  mcr__nodes_t l = {0};
  char err[256];
  int rc = parse_block(MCR__EC_CONFIG, block, 0, &l, err);
  cr_assert_eq(rc, 0, "%s", err);
  cr_assert_eq(l.n, 500);
  cr_assert_eq(l.version, 77);
  mcr__nodes_free(&l);
  free(block);
}

Test(ec_parse, every_prefix_is_incomplete) {
  size_t len;
  char* b =
      mk(MCR__EC_CONFIG, "5\na|10.0.0.1|11211 b|10.0.0.2|11211\n", 0, &len);
  mcr__nodes_t l = {0};
  char err[256];
  for (size_t i = 0; i < len; i++) {
    int rc = mcr__ec_parse(MCR__EC_CONFIG, b, i, &l, err, sizeof(err));
    cr_assert_eq(rc, MCR__EC_INCOMPLETE, "prefix %zu: rc %d (%s)", i, rc, err);
  }
  cr_assert_eq(mcr__ec_parse(MCR__EC_CONFIG, b, len, &l, err, sizeof(err)), 0);
  free(b);
  mcr__nodes_free(&l);
}

Test(ec_parse, error_replies) {
  mcr__nodes_t l = {0};
  char err[256];
  cr_assert_eq(mcr__ec_parse(MCR__EC_CONFIG, NULL, 0, &l, err, 256),
               MCR__EC_INCOMPLETE);
  cr_assert_eq(mcr__ec_parse(MCR__EC_CONFIG, "ERROR\r\n", 7, &l, err, 256),
               MCR__EC_ERROR_REPLY);
  cr_assert_eq(mcr__ec_parse(MCR__EC_CONFIG, "ERR", 3, &l, err, 256),
               MCR__EC_INCOMPLETE);
  const char* se = "SERVER_ERROR out of memory\r\n";
  cr_assert_eq(mcr__ec_parse(MCR__EC_CONFIG, se, strlen(se), &l, err, 256),
               MCR_ESERVERERR);
  cr_assert(strstr(err, "out of memory"));
  cr_assert_eq(mcr__ec_parse(MCR__EC_LEGACY, "END\r\n", 5, &l, err, 256),
               MCR_EPROTO);
  cr_assert_eq(mcr__ec_parse(MCR__EC_CONFIG, "STORED\r\n", 8, &l, err, 256),
               MCR_EPROTO);
  /* Garbage is refused before any line end arrives. */
  cr_assert_eq(mcr__ec_parse(MCR__EC_CONFIG, "HTTP/1.1", 8, &l, err, 256),
               MCR_EPROTO);
  mcr__nodes_free(&l);
}

/* Blocks that must be refused with MCR_EPROTO. */
static const char* const bad_blocks[] = {
    "x1\na|10.0.0.1|11211\n",                  /* version not a number */
    "\na|10.0.0.1|11211\n",                    /* empty version */
    "1\n\n",                                   /* no nodes */
    "1\na|10.0.0.1|11211",                     /* no final newline */
    "1\na|10.0.0.1|11211\nb|10.0.0.2|11211\n", /* two node lines */
    "1\na|10.0.0.1|0\n",                       /* port 0 */
    "1\na|10.0.0.1|65536\n",                   /* port too big */
    "1\na|10.0.0.1|11a11\n",                   /* port not a number */
    "1\na|10.0.0.1|\n",                        /* empty port */
    "1\na|10.0.0.1|+11211\n",                  /* signed port */
    "1\na|300.0.0.1|11211\n",                  /* bad IPv4 */
    "1\na|10.0.0|11211\n",                     /* short IPv4 */
    "1\na|2001:db8:::1|11211\n",               /* bad IPv6 */
    "1\na|10.0.0.1 |11211\n",                  /* space inside */
    "1\n|10.0.0.1|11211\n",                    /* empty host */
    "1\nbad_host!|10.0.0.1|11211\n",           /* bad host char */
    "1\na..b|10.0.0.1|11211\n",                /* empty label */
    "1\na|10.0.0.1\n",                         /* two fields */
    "1\na|10.0.0.1|11211|x\n",                 /* four fields */
    "1\na|10.0.0.1|11211  b|10.0.0.2|11211\n", /* two spaces */
    "1\na|10.0.0.1|11211 \n",                  /* trailing space */
    "1\n a|10.0.0.1|11211\n",                  /* leading space */
    "1\na|10.0.0.1|11211 a|10.0.0.9|11211\n",  /* duplicate host:port */
    "1\na|10.0.0.1|11211\tb|10.0.0.2|11211\n", /* tab */
    "1\na|10.0.0.\x01|11211\n",                /* control byte */
    "18446744073709551616\na|10.0.0.1|11211\n" /* version overflow */
};

Test(ec_parse, malformed_blocks_refused) {
  mcr__nodes_t l = {0};
  char err[256];
  for (size_t i = 0; i < sizeof(bad_blocks) / sizeof(*bad_blocks); i++) {
    int rc = parse_block(MCR__EC_CONFIG, bad_blocks[i], 0, &l, err);
    cr_assert_eq(rc, MCR_EPROTO, "block %zu accepted (rc %d)", i, rc);
    cr_assert(err[0], "block %zu: no message", i);
    cr_assert_eq(l.n, 0, "block %zu left nodes behind", i);
  }
  mcr__nodes_free(&l);
}

Test(ec_parse, wrong_byte_counts_refused) {
  const char* block = "9\na|10.0.0.1|11211 b|10.0.0.2|11211\n";
  mcr__nodes_t l = {0};
  char err[256];
  int deltas[] = {-30, -5, -1, 1, 2, 5, 7, 100};
  for (size_t i = 0; i < sizeof(deltas) / sizeof(*deltas); i++) {
    int rc = parse_block(MCR__EC_CONFIG, block, deltas[i], &l, err);
    cr_assert_eq(rc, MCR_EPROTO, "delta %d: rc %d", deltas[i], rc);
    cr_assert(strstr(err, "byte count") || strstr(err, "newline"),
              "delta %d: %s", deltas[i], err);
  }
  mcr__nodes_free(&l);
}

Test(ec_parse, framing_errors) {
  mcr__nodes_t l = {0};
  char err[256];
  const char* bad[] = {
      "CONFIG cluster 0 17\r\n1\na|10.0.0.1|1\n\r\nEND\r\nEND\r\n",
      "CONFIG cluster 0 17\r\n1\na|10.0.0.1|1\n\r\nEND\n",
      "CONFIG cluster 0 17\r\n1\na|10.0.0.1|1\n\nEND\r\n",
      "CONFIG cluster x 17\r\n1\na|10.0.0.1|1\n\r\nEND\r\n",
      "CONFIG cluster 0 -17\r\n1\na|10.0.0.1|1\n\r\nEND\r\n",
      "CONFIG cluster 0 99999999999\r\n",
      "CONFIG cluster 0  17\r\n1\na|10.0.0.1|1\n\r\nEND\r\n",
      "CONFIG clusters 0 17\r\n1\na|10.0.0.1|1\n\r\nEND\r\n",
      "ERROR\r\nEND\r\n",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
    int rc = mcr__ec_parse(MCR__EC_CONFIG, bad[i], strlen(bad[i]), &l, err,
                           sizeof(err));
    cr_assert_eq(rc, MCR_EPROTO, "reply %zu: rc %d", i, rc);
  }
  mcr__nodes_free(&l);
}

/* Random single-byte edits, truncations and insertions of good replies:
 * the parser must return one of its documented results, never crash or
 * read out of bounds (run under ASan in CI). */
Test(ec_parse, mutations_never_crash) {
  size_t len;
  char* good = mk(MCR__EC_CONFIG,
                  "42\nnode-1.example|10.0.0.1|11211 n2|2001:db8::2|11212 "
                  "n3||11213\n",
                  0, &len);
  mcr__nodes_t l = {0};
  char err[256];
  unsigned seed = 12345;
  for (int it = 0; it < 20000; it++) {
    char* b = malloc(len + 1);
    memcpy(b, good, len);
    size_t n = len;
    seed = seed * 1103515245u + 12345u;
    size_t pos = (seed >> 8) % len;
    switch (it % 3) {
      case 0:
        b[pos] = (char)(seed >> 16);
        break;
      case 1:
        n = pos;
        break;
      case 2:
        memmove(b + pos + 1, b + pos, len - pos);
        b[pos] = (char)(seed >> 20);
        n = len + 1;
        break;
    }
    int rc = mcr__ec_parse(MCR__EC_CONFIG, b, n, &l, err, sizeof(err));
    cr_assert(rc == 0 || rc == MCR__EC_INCOMPLETE || rc == MCR_EPROTO ||
                  rc == MCR__EC_ERROR_REPLY || rc == MCR_ESERVERERR ||
                  rc == MCR_ECLIENTERR,
              "rc %d", rc);
    if (rc == 0)
      cr_assert(l.n >= 1);
    free(b);
  }
  free(good);
  mcr__nodes_free(&l);
}

Test(ec_parse, version_reply) {
  unsigned a, b, c;
  cr_assert_eq(mcr__ec_parse_version("VERSION 1.4.14\r\n", 16, &a, &b, &c), 0);
  cr_assert(a == 1 && b == 4 && c == 14);
  cr_assert_eq(
      mcr__ec_parse_version("VERSION 1.6.21-custom\r\n", 23, &a, &b, &c), 0);
  cr_assert(a == 1 && b == 6 && c == 21);
  cr_assert_eq(mcr__ec_parse_version("VERSION 1.4.5\r\n", 15, &a, &b, &c), 0);
  cr_assert(a == 1 && b == 4 && c == 5);
  cr_assert_eq(mcr__ec_parse_version("VERS", 4, &a, &b, &c),
               MCR__EC_INCOMPLETE);
  cr_assert_eq(mcr__ec_parse_version("ERROR\r\n", 7, &a, &b, &c),
               MCR__EC_ERROR_REPLY);
  cr_assert_eq(mcr__ec_parse_version("VERSION x\r\n", 11, &a, &b, &c),
               MCR_EPROTO);
  cr_assert_eq(mcr__ec_parse_version("STORED\r\n", 8, &a, &b, &c), MCR_EPROTO);
}

Test(file_parse, entries_comments_weights) {
  const char* text =
      "# cache nodes\n"
      "\n"
      "10.0.0.2:11211   # second\n"
      "  10.0.0.1:11211:3\r\n"
      "[2001:db8::5]:11300:2\n"
      "cache-a.internal\n";
  mcr__nodes_t l = {0};
  char err[256];
  int rc = agent_file_parse(text, strlen(text), &l, err, sizeof(err));
  cr_assert_eq(rc, 0, "%s", err);
  cr_assert_eq(l.n, 4);
  cr_assert_str_eq(l.v[0].host, "10.0.0.1");
  cr_assert_eq(l.v[0].weight, 3);
  cr_assert_str_eq(l.v[2].host, "2001:db8::5");
  cr_assert_eq(l.v[2].port, 11300);
  cr_assert_eq(l.v[2].weight, 2);
  cr_assert_str_eq(l.v[3].host, "cache-a.internal");
  cr_assert_eq(l.v[3].port, 11211);
  cr_assert_str_eq(l.v[3].addr, "");
  mcr__nodes_free(&l);
}

Test(file_parse, errors_name_the_line) {
  mcr__nodes_t l = {0};
  char err[256];
  struct {
    const char* text;
    const char* want;
  } cases[] = {
      {"10.0.0.1:11211\n10.0.0.2:99999\n", "line 2"},
      {"10.0.0.1:11211:0\n", "weight"},
      {"/tmp/mc.sock\n", "unix"},
      {"[::1:11211\n", "]"},
      {"bad host:11211\n", "line 1"},
      {"10.0.0.1:11211\n10.0.0.1:11211\n", "twice"},
      {"# nothing\n\n", "empty"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    int rc = agent_file_parse(cases[i].text, strlen(cases[i].text), &l, err,
                              sizeof(err));
    cr_assert_lt(rc, 0, "case %zu accepted", i);
    cr_assert(strstr(err, cases[i].want), "case %zu: \"%s\" lacks \"%s\"", i,
              err, cases[i].want);
  }
  mcr__nodes_free(&l);
}

Test(static_list, parse_and_compare) {
  mcr__nodes_t a = {0}, b = {0};
  char err[256];
  cr_assert_eq(
      agent_static_poll("127.0.0.2:11212:2, 127.0.0.1", &a, err, sizeof(err)),
      0, "%s", err);
  cr_assert_eq(a.n, 2);
  cr_assert_str_eq(a.v[0].addr, "127.0.0.1");
  cr_assert_eq(a.v[1].weight, 2);
  cr_assert_eq(agent_static_poll("127.0.0.1:11211,127.0.0.2:11212:2", &b, err,
                                 sizeof(err)),
               0);
  cr_assert(mcr__nodes_equal(&a, &b), "order must not matter");
  cr_assert_eq(agent_static_poll("127.0.0.1:11211,127.0.0.2:11212:3", &b, err,
                                 sizeof(err)),
               0);
  cr_assert(!mcr__nodes_equal(&a, &b), "a weight change is a change");
  cr_assert_lt(agent_static_poll("", &b, err, sizeof(err)), 0);
  cr_assert_lt(agent_static_poll("127.0.0.1:0", &b, err, sizeof(err)), 0);
  mcr__nodes_free(&a);
  mcr__nodes_free(&b);
}

Test(dns, localhost_addresses) {
  mcr__nodes_t l = {0};
  char err[256];
  int rc = agent_dns_poll("localhost:11333", &l, err, sizeof(err));
  cr_assert_eq(rc, 0, "%s", err);
  cr_assert_geq(l.n, 1);
  for (size_t i = 0; i < l.n; i++) {
    cr_assert_eq(l.v[i].port, 11333);
    cr_assert_str_eq(l.v[i].host, l.v[i].addr);
  }
  cr_assert_lt(agent_dns_poll("bad name:1", &l, err, sizeof(err)), 0);
  mcr__nodes_free(&l);
}

/* ---------------------------------------------------------------- limits */

/* One server under two names would sit on the ring twice, with twice its
 * share of the keys: the same address and port, or a host name that
 * differs only in case (DNS ignores case). Refused whole. */
Test(ec_parse, one_server_under_two_names_refused) {
  mcr__nodes_t l = {0};
  char err[256];
  int rc = parse_block(MCR__EC_CONFIG,
                       "1\na|127.0.0.1|23211 b|127.0.0.1|23211\n", 0, &l, err);
  cr_assert_eq(rc, MCR_EPROTO);
  cr_assert(strstr(err, "both 127.0.0.1 port 23211"), "%s", err);
  rc = parse_block(MCR__EC_CONFIG, "1\nMC1.test||11211 mc1.test||11211\n", 0,
                   &l, err);
  cr_assert_eq(rc, MCR_EPROTO);
  cr_assert(strstr(err, "ignore case"), "%s", err);
  /* One address on two ports is two servers. */
  cr_assert_eq(
      parse_block(MCR__EC_CONFIG, "1\na|127.0.0.1|23211 b|127.0.0.1|23212\n", 0,
                  &l, err),
      0, "%s", err);
  /* The static list: two names that resolve to one address. */
  cr_assert_eq(agent_static_poll("localhost:11211,127.0.0.1:11211", &l, err,
                                 sizeof(err)),
               MCR_ESERVERS);
  cr_assert(strstr(err, "one server listed twice"), "%s", err);
  mcr__nodes_free(&l);
}

/* A reply listing more nodes than a ring can hold is refused as soon as
 * the count passes the limit, before the list has grown for all of them
 * (426,390 entries used to cost 150 MB). */
Test(ec_parse, too_many_nodes_refused_early) {
  enum { N = 380000 };
  size_t cap = (size_t)N * 12 + 32;
  char* block = malloc(cap);
  size_t len = (size_t)snprintf(block, cap, "1\n");
  for (int i = 0; i < N; i++)
    len += (size_t)snprintf(block + len, cap - len, "%sh%x||1", i ? " " : "",
                            (unsigned)i);
  block[len++] = '\n';
  block[len] = '\0';
  mcr__nodes_t l = {0};
  char err[256];
  cr_assert_eq(parse_block(MCR__EC_CONFIG, block, 0, &l, err), MCR_EPROTO);
  cr_assert(strstr(err, "more than 65535 nodes"), "%s", err);
  cr_assert_leq(l.cap, 65536, "the list grew to %zu entries", l.cap);
  mcr__nodes_trim(&l);
  cr_assert_leq(l.cap, 16, "memory kept after the refusal: %zu entries", l.cap);
  mcr__nodes_free(&l);
  free(block);
}

/* ------------------------------------------------ framing read in pieces */

/* Feeds reply[0..len) to mcr__ec_frame in pieces of 1, 2, ... 7 bytes
 * (cycling), carrying `checked` as the poll loop does, and checks that
 * after every piece it says exactly what mcr__ec_parse says about the
 * same prefix (whose framing it shares): incomplete, an error, or
 * complete (0 from the framing; the parse of the list may still refuse). */
static void frame_in_pieces(mcr__ec_form_t form, const char* reply,
                            size_t len) {
  mcr__nodes_t l = {0};
  char err[256], ferr[256];
  size_t checked = 0, have = 0, step = 1;
  while (have < len) {
    have += step;
    if (have > len)
      have = len;
    step = step % 7 + 1;
    int frc = mcr__ec_frame(form, reply, have, &checked, ferr, sizeof(ferr));
    int prc = mcr__ec_parse(form, reply, have, &l, err, sizeof(err));
    if (frc == 0)
      cr_assert(prc == 0 || prc == MCR_EPROTO || prc == MCR_ENOMEM,
                "prefix %zu: framed whole, parse says %d", have, prc);
    else
      cr_assert_eq(frc, prc, "prefix %zu: frame %d (%s), parse %d (%s)", have,
                   frc, ferr, prc, err);
    if (frc != MCR__EC_INCOMPLETE)
      break;
  }
  mcr__nodes_free(&l);
}

Test(ec_frame, pieces_agree_with_the_whole_parse) {
  static const char* blocks[] = {
      "5\na|10.0.0.1|11211 b|10.0.0.2|11211\n",
      "5\na|10.0.0.1|11211 b|10.0.0.2|\n",     /* parses badly */
      "5\na|10.0.0.1|11211\r\nb|10.0.0.2|1\n", /* a '\r' inside */
  };
  static const int deltas[] = {0, 5, -5, 1, -1};
  for (size_t b = 0; b < sizeof(blocks) / sizeof(blocks[0]); b++)
    for (size_t d = 0; d < sizeof(deltas) / sizeof(deltas[0]); d++)
      for (int form = 0; form < 2; form++) {
        size_t len;
        char* r = mk((mcr__ec_form_t)form, blocks[b], deltas[d], &len);
        frame_in_pieces((mcr__ec_form_t)form, r, len);
        /* The other form's header is refused the same way. */
        frame_in_pieces((mcr__ec_form_t)!form, r, len);
        free(r);
      }
  static const char* others[] = {"ERROR\r\n", "END\r\n",
                                 "SERVER_ERROR busy\r\n", "CONFIG x\r\n",
                                 "ERROR\r\nX"};
  for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
    frame_in_pieces(MCR__EC_CONFIG, others[i], strlen(others[i]));
}

/* A '\r' that an earlier piece already passed is not searched again, yet
 * a '\r' in the new bytes still fails the count at once. */
Test(ec_frame, a_short_block_fails_on_the_piece_that_shows_it) {
  size_t len;
  char* r = mk(MCR__EC_CONFIG, "5\na|10.0.0.1|11211\n", 40, &len);
  char err[256];
  size_t checked = 0;
  size_t header = (size_t)(strchr(r, '\n') - r) + 1;
  cr_assert_eq(
      mcr__ec_frame(MCR__EC_CONFIG, r, header + 5, &checked, err, sizeof(err)),
      MCR__EC_INCOMPLETE);
  cr_assert_eq(checked, 5);
  cr_assert_eq(
      mcr__ec_frame(MCR__EC_CONFIG, r, len, &checked, err, sizeof(err)),
      MCR_EPROTO);
  cr_assert(strstr(err, "does not match"), "%s", err);
  free(r);
}

/* ------------------------------------------ the poll and its reply cache */

typedef struct {
  char dir[64], nodes[96];
  fakecfg_t* f;
  mcr__ec_cache_t cache;
  mcr__nodes_t l;
  char err[512];
} pollfix_t;

static void pollfix_start(pollfix_t* t, int n) {
  memset(t, 0, sizeof(*t));
  snprintf(t->dir, sizeof(t->dir), "/tmp/mcr-ec-XXXXXX");
  cr_assert(mkdtemp(t->dir));
  snprintf(t->nodes, sizeof(t->nodes), "%s/nodes", t->dir);
  cr_assert_eq(fakecfg_write_nodes(t->nodes, n, 20000), 0);
  fakecfg_opts_t o = {.nodes_file = t->nodes};
  t->f = fakecfg_start(&o);
  cr_assert(t->f);
}

static int pollfix_poll(pollfix_t* t) {
  return mcr__ec_poll(fakecfg_endpoint(t->f), 2000, 2000, NULL, &t->cache,
                      &t->l, NULL, t->err, sizeof(t->err));
}

static void pollfix_stop(pollfix_t* t) {
  fakecfg_stop(t->f);
  mcr__ec_cache_free(&t->cache);
  mcr__nodes_free(&t->l);
  unlink(t->nodes);
  rmdir(t->dir);
}

/* The same reply again is taken from the cache, not parsed: the test
 * alters the cached list, and the next poll of an unchanged endpoint
 * returns the alteration. A changed reply is parsed afresh. */
Test(ec_poll, an_unchanged_reply_is_not_parsed_again) {
  pollfix_t t;
  pollfix_start(&t, 50);
  cr_assert_eq(pollfix_poll(&t), 0, "%s", t.err);
  cr_assert_eq(t.l.n, 50);
  cr_assert(t.cache.valid);
  cr_assert_eq(t.cache.nodes.n, 50);
  uint16_t port0 = t.l.v[0].port;
  t.cache.nodes.v[0].port = 1;
  cr_assert_eq(pollfix_poll(&t), 0, "%s", t.err);
  cr_assert_eq(t.l.v[0].port, 1, "an unchanged reply was parsed again");
  cr_assert_eq(fakecfg_write_nodes(t.nodes, 51, 20000), 0);
  cr_assert_eq(pollfix_poll(&t), 0, "%s", t.err);
  cr_assert_eq(t.l.n, 51);
  cr_assert_eq(t.l.v[0].port, port0);
  cr_assert_eq(t.cache.nodes.n, 51);
  pollfix_stop(&t);
}

/* A reply that does not parse is refused even after a good one, and does
 * not replace the cached one; neither does a reply cut short. */
Test(ec_poll, a_bad_reply_after_a_good_one_is_refused) {
  pollfix_t t;
  pollfix_start(&t, 20);
  cr_assert_eq(pollfix_poll(&t), 0, "%s", t.err);
  size_t len = t.cache.len;
  fakecfg_set_mode(t.f, FAKECFG_MALFORMED);
  cr_assert_eq(pollfix_poll(&t), MCR_EPROTO);
  fakecfg_set_mode(t.f, FAKECFG_BAD_COUNT);
  cr_assert_eq(pollfix_poll(&t), MCR_EPROTO);
  fakecfg_set_mode(t.f, FAKECFG_CLOSE_MID);
  cr_assert_lt(pollfix_poll(&t), 0);
  cr_assert(t.cache.valid);
  cr_assert_eq(t.cache.len, len);
  fakecfg_set_mode(t.f, FAKECFG_NORMAL);
  cr_assert_eq(pollfix_poll(&t), 0, "%s", t.err);
  cr_assert_eq(t.l.n, 20);
  pollfix_stop(&t);
}

/* The cache answers only the request it holds a reply to. */
Test(ec_poll, the_cache_is_per_request_form) {
  pollfix_t t;
  pollfix_start(&t, 10);
  cr_assert_eq(pollfix_poll(&t), 0, "%s", t.err);
  cr_assert_eq(t.cache.form, MCR__EC_CONFIG);
  fakecfg_set_mode(t.f, FAKECFG_ERROR_CONFIG);
  bool legacy = false;
  cr_assert_eq(mcr__ec_poll(fakecfg_endpoint(t.f), 2000, 2000, NULL, &t.cache,
                            &t.l, &legacy, t.err, sizeof(t.err)),
               0, "%s", t.err);
  cr_assert(legacy);
  cr_assert_eq(t.cache.form, MCR__EC_LEGACY);
  cr_assert_eq(t.l.n, 10);
  pollfix_stop(&t);
}
