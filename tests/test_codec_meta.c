/* test_codec_meta.c — the meta protocol's codec, without a server.
 *
 * codec_meta.c is pure: a request line from checked arguments, a reply
 * decoded from bytes. These tests hand the decoders whole replies and the
 * same replies cut in two at every byte (the way they arrive from a
 * socket), and check the decoder contract of internal.h: MCR__MORE until
 * the reply is complete, offsets that lie inside the bytes given, every
 * field of a hit, the implied status of a quiet command, and MCR_EPROTO
 * for what a server cannot have sent. The client's use of the same codec
 * against memcached is test_client_meta.c.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Feeds reply[0..len) to decode as a socket would: the first `split`
 * bytes, then the rest, calling again while it consumes. Returns the
 * decoder's last return; *buf holds the bytes (free it). */
static int feed(mcr__decode_fn decode, void* ctx, const char* reply,
                size_t len, size_t split, char** buf, mcr__dec_t* last) {
  char* b = malloc(len ? len : 1);
  cr_assert_not_null(b);
  size_t have = split, pos = 0;
  memcpy(b, reply, split);
  int rc;
  for (;;) {
    mcr__dec_t d = {0};
    rc = decode(ctx, b, pos, have, &d);
    cr_assert(d.used <= have - pos, "consumed %zu of %zu", d.used, have - pos);
    pos += d.used;
    *last = d;
    if (rc != MCR__MORE)
      break;
    if (d.used)
      continue;
    cr_assert_lt(have, len, "MCR__MORE with the whole reply given");
    memcpy(b + have, reply + have, len - have);
    have = len;
  }
  *buf = b;
  return rc;
}

static mcr__meta_ctx_t ctx_for(char op, bool quiet) {
  return (mcr__meta_ctx_t){.accept = mcr__meta_codes(op),
                           .quiet = quiet,
                           .implied = mcr__meta_implied(op),
                           .value_max = 1024 * 1024};
}

Test(meta_decode, a_hit_with_every_field_at_every_split) {
  static const char reply[] =
      "VA 5 f7 c99 t-1 h1 l12 s5 O42 kZm9v b W X Z\r\nhello\r\n";
  size_t len = sizeof reply - 1;
  for (size_t split = 0; split <= len; split++) {
    mcr__meta_ctx_t x = ctx_for('g', false);
    char* buf;
    mcr__dec_t d;
    int rc = feed(mcr__meta_decode, &x, reply, len, split, &buf, &d);
    cr_assert_eq(rc, MCR__DONE, "split %zu: %d", split, rc);
    const mcr_meta_result_t* r = &x.rep.r;
    cr_assert_eq(r->status, MCR_OK);
    cr_assert(r->have & MCR_MR_VALUE);
    cr_assert_eq(r->value_len, 5);
    cr_assert(memcmp(buf + x.rep.val_off, "hello", 5) == 0);
    cr_assert_eq(r->client_flags, 7);
    cr_assert_eq(r->cas, 99);
    cr_assert_eq(r->ttl, -1);
    cr_assert_eq(r->hit, 1);
    cr_assert_eq(r->last_access, 12);
    cr_assert_eq(r->size, 5);
    cr_assert_eq(r->opaque, 42);
    cr_assert(x.rep.key_b64);
    cr_assert(r->win && r->stale && r->won_already);
    free(buf);
  }
}

Test(meta_decode, quiet_miss_is_the_mn_alone) {
  static const char reply[] = "MN\r\n";
  for (size_t split = 0; split <= 4; split++) {
    mcr__meta_ctx_t x = ctx_for('g', true);
    char* buf;
    mcr__dec_t d;
    cr_assert_eq(feed(mcr__meta_decode, &x, reply, 4, split, &buf, &d),
                 MCR__DONE);
    cr_assert_eq(x.rep.r.status, MCR_MISS);
    free(buf);
  }
  /* A quiet ms that stored: the MN alone means it succeeded. */
  mcr__meta_ctx_t x = ctx_for('s', true);
  char* buf;
  mcr__dec_t d;
  cr_assert_eq(feed(mcr__meta_decode, &x, reply, 4, 4, &buf, &d), MCR__DONE);
  cr_assert_eq(x.rep.r.status, MCR_OK);
  free(buf);
}

Test(meta_decode, a_quiet_reply_waits_for_its_mn) {
  static const char reply[] = "NS\r\nMN\r\n";
  mcr__meta_ctx_t x = ctx_for('s', true);
  mcr__dec_t d = {0};
  /* The NS alone is not the end of a quiet command's reply. */
  cr_assert_eq(mcr__meta_decode(&x, reply, 0, 4, &d), MCR__MORE);
  cr_assert_eq(d.used, 0);
  x = ctx_for('s', true);
  d = (mcr__dec_t){0};
  cr_assert_eq(mcr__meta_decode(&x, reply, 0, 8, &d), MCR__DONE);
  cr_assert_eq(d.used, 8);
  cr_assert_eq(x.rep.r.status, MCR_NOT_STORED);
}

Test(meta_decode, codes_a_command_cannot_get_are_eproto) {
  static const struct {
    char op;
    const char* reply;
  } bad[] = {
      {'g', "NS\r\n"},           /* mg never says not stored */
      {'d', "VA 1\r\nx\r\n"},    /* md carries no value */
      {'s', "EN\r\n"},           /* ms never misses */
      {'g', "VA x\r\nx\r\n"},    /* size not a number */
      {'g', "VA 2\r\nxyz\r\n"},  /* value longer than announced */
      {'g', "HD f\r\n"},         /* flag without its number */
      {'g', "HD c18446744073709551616\r\n"}, /* cas past 64 bits */
      {'g', "XX\r\n"},           /* no such code */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    mcr__meta_ctx_t x = ctx_for(bad[i].op, false);
    char* buf;
    mcr__dec_t d;
    size_t len = strlen(bad[i].reply);
    int rc = feed(mcr__meta_decode, &x, bad[i].reply, len, len, &buf, &d);
    cr_assert_eq(rc, MCR_EPROTO, "%c on %s: %d", bad[i].op, bad[i].reply, rc);
    cr_assert_not_null(d.why);
    free(buf);
  }
}

Test(meta_decode, a_value_past_value_max_is_refused_before_it_arrives) {
  mcr__meta_ctx_t x = ctx_for('g', false);
  x.value_max = 100;
  mcr__dec_t d = {0};
  static const char head[] = "VA 101\r\n";
  /* Only the header: the decoder must not ask for 101 more bytes. */
  cr_assert_eq(mcr__meta_decode(&x, head, 0, sizeof head - 1, &d), MCR_EPROTO);
}

Test(meta_decode, error_lines_locate_the_line) {
  static const char reply[] = "SERVER_ERROR out of memory storing object\r\n";
  size_t len = sizeof reply - 1;
  mcr__meta_ctx_t x = ctx_for('s', false);
  char* buf;
  mcr__dec_t d;
  cr_assert_eq(feed(mcr__meta_decode, &x, reply, len, 3, &buf, &d),
               MCR_ESERVERERR);
  cr_assert_eq(d.used, len);
  cr_assert_eq(d.line_len, len - 2);
  cr_assert(memcmp(buf + d.line_off, reply, d.line_len) == 0);
  free(buf);
}

Test(meta_decode, an_opaque_for_another_command_is_eproto) {
  mcr__meta_ctx_t x = ctx_for('g', false);
  x.want_opaque = true;
  x.opaque = 7;
  mcr__dec_t d = {0};
  cr_assert_eq(mcr__meta_decode(&x, "HD O8\r\n", 0, 7, &d), MCR_EPROTO);
  x = ctx_for('g', false);
  x.want_opaque = true;
  x.opaque = 7;
  d = (mcr__dec_t){0};
  cr_assert_eq(mcr__meta_decode(&x, "HD O7\r\n", 0, 7, &d), MCR__DONE);
}

Test(meta_request, lines_carry_exactly_the_flags_asked) {
  mcr_meta_opts_t o = {
      .flags = MCR_META_VALUE | MCR_META_RET_CAS | MCR_META_TTL, .ttl = 30};
  char err[128];
  cr_assert_eq(
      mcr__meta_check('g', "k1", 2, NULL, 0, &o, 1024, err, sizeof err), 0);
  char line[MCR__META_LINE_MAX];
  size_t n = mcr__meta_request(line, 'g', "k1", 2, 0, &o);
  cr_assert_lt(n, sizeof line);
  cr_assert(n >= 2 && line[n - 2] == '\r' && line[n - 1] == '\n');
  cr_assert_eq(n, strlen("mg k1 v c T30\r\n"), "%.*s", (int)n, line);
  cr_assert(memcmp(line, "mg k1 ", 6) == 0, "%.*s", (int)n, line);
  for (const char* f = "v c T30"; *f; f++)
    cr_assert_not_null(memchr(line + 6, *f, n - 6), "%.*s", (int)n, line);
  /* A key with a space is refused before anything is written. */
  cr_assert_eq(mcr__meta_check('g', "a b", 3, NULL, 0, &o, 1024, err,
                               sizeof err),
               MCR_EKEY);
  /* A value over item_size_max is refused too. */
  mcr_meta_opts_t set = {0};
  char big[2000] = {0};
  cr_assert_eq(mcr__meta_check('s', "k", 1, big, sizeof big, &set, 1024, err,
                               sizeof err),
               MCR_ETOOBIG, "%s", err);
}
