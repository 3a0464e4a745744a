/* test_node.c — one node's life and health (lib/node.c), without a server.
 *
 * A node is built from a configured server or from a ring node and named
 * the way mcr_client_node_name shows it; its health follows the client's
 * failure rule: failure_limit connect or I/O failures in a row mark it
 * down for retry_timeout_ms, errors that say nothing about reaching it
 * (a malformed reply, a server error line, out of memory) never count, an
 * answer forgets the failures, and when the time is up it gets one try.
 * The same rule seen through calls against real memcached nodes is in
 * test_router.c (dead nodes, eject).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "internal.h"

Test(node, names_follow_the_ring_node) {
  mcr__node_t n;
  cr_assert_eq(mcr__node_from_ring(&n, "cache-1", "10.0.0.7", 11211, 1, 9), 0);
  cr_assert_str_eq(n.srv.name, "cache-1(10.0.0.7):11211");
  cr_assert_str_eq(n.srv.host, "10.0.0.7");
  cr_assert_eq(n.ident, 9);
  cr_assert_eq(n.conn.fd, -1);
  mcr__node_free(&n);
  cr_assert_eq(mcr__node_from_ring(&n, "10.0.0.7", "", 11211, 1, 0), 0);
  cr_assert_str_eq(n.srv.name, "10.0.0.7:11211");
  mcr__node_free(&n);
  cr_assert_eq(mcr__node_from_ring(&n, "h6", "::1", 11211, 1, 0), 0);
  cr_assert_str_eq(n.srv.name, "h6([::1]):11211");
  mcr__node_free(&n);
  cr_assert_eq(mcr__node_from_ring(&n, "/run/mc.sock", NULL, 0, 1, 0), 0);
  cr_assert(n.srv.is_unix);
  cr_assert_str_eq(n.srv.name, "/run/mc.sock");
  mcr__node_free(&n);
  cr_assert_null(n.srv.name); /* freeing leaves an empty node */
}

Test(node, limit_failures_in_a_row_mark_it_down) {
  mcr__health_t h = {.limit = 3, .retry_ms = 60000};
  mcr__node_t n = {.conn = {.fd = -1}, .hh = mcr__hh_none};
  int64_t left = 0;
  mcr__node_failed(&n, &h, MCR_ETIMEOUT);
  mcr__node_failed(&n, &h, MCR_ECONNECT);
  cr_assert_not(mcr__node_is_down(&n, &h, mcr__now_ms()));
  cr_assert_eq(mcr__node_available(&n, &h, mcr__now_ms(), &left), 0);
  mcr__node_ok(&n, &h); /* an answer: the count starts again */
  mcr__node_failed(&n, &h, MCR_ETIMEOUT);
  mcr__node_failed(&n, &h, MCR_ETIMEOUT);
  cr_assert_eq(h.ndown, 0);
  mcr__node_failed(&n, &h, MCR_ECLOSED);
  cr_assert_eq(h.ndown, 1);
  cr_assert(mcr__node_is_down(&n, &h, mcr__now_ms()));
  cr_assert_eq(mcr__node_available(&n, &h, mcr__now_ms(), &left),
               MCR_ENODEDOWN);
  cr_assert(left > 0 && left <= 60000, "%lld ms left", (long long)left);
  /* More failures while down change nothing. */
  mcr__node_failed(&n, &h, MCR_ETIMEOUT);
  cr_assert_eq(h.ndown, 1);
}

Test(node, errors_that_prove_it_answered_never_count) {
  mcr__health_t h = {.limit = 1, .retry_ms = 60000};
  mcr__node_t n = {.conn = {.fd = -1}, .hh = mcr__hh_none};
  const int answered[] = {MCR_EPROTO,     MCR_ESERVERCMD, MCR_ECLIENTERR,
                          MCR_ESERVERERR, MCR_ENOMEM,     MCR_EINVAL,
                          MCR_ENODEDOWN};
  for (size_t i = 0; i < sizeof answered / sizeof answered[0]; i++)
    mcr__node_failed(&n, &h, answered[i]);
  cr_assert_eq(n.fails, 0);
  cr_assert_eq(h.ndown, 0);
}

Test(node, when_the_time_is_up_it_gets_one_try) {
  mcr__health_t h = {.limit = 2, .retry_ms = 50};
  mcr__node_t n = {.conn = {.fd = -1}, .hh = mcr__hh_none};
  int64_t left = 0;
  mcr__node_failed(&n, &h, MCR_ETIMEOUT);
  mcr__node_failed(&n, &h, MCR_ETIMEOUT);
  int64_t until = n.down_until;
  cr_assert_neq(until, 0);
  /* At its down_until (a clock passed in, not slept on): one try. */
  cr_assert_eq(mcr__node_available(&n, &h, until, &left), 0);
  cr_assert_eq(h.ndown, 0);
  cr_assert_not(mcr__node_is_down(&n, &h, until));
  /* One more failure marks it down again at once. */
  mcr__node_failed(&n, &h, MCR_ETIMEOUT);
  cr_assert_eq(h.ndown, 1);
  cr_assert_neq(n.down_until, 0);
}

Test(node, limit_zero_never_marks_it_down) {
  mcr__health_t h = {.limit = 0, .retry_ms = 60000};
  mcr__node_t n = {.conn = {.fd = -1}, .hh = mcr__hh_none};
  for (int i = 0; i < 100; i++)
    mcr__node_failed(&n, &h, MCR_ETIMEOUT);
  cr_assert_eq(n.down_until, 0);
  cr_assert_eq(h.ndown, 0);
}
