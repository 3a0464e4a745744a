/* test_num.c — decimal numbers and tokens (lib/num.c), without a server.
 *
 * The writers against printf, the overflow-checked parsers at and past
 * every limit (they read server replies, so a 21st digit or a sign is a
 * refusal, never a wrap), and the single-space tokenizer's offsets and
 * limits.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* A writer and its parser over the values: the writer's digits are what
 * printf's `fmt` makes of the value (cast to `ptype`), and the parser
 * reads them back to the same value. One body for the two widths. */
#define EXPECT_ROUND_TRIPS(type, to_dec, from_dec, fmt, ptype, ...)            \
  do {                                                                         \
    const type vals[] = {__VA_ARGS__};                                         \
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {                \
      char buf[24], ref[24];                                                   \
      size_t n = to_dec(buf, vals[i]);                                         \
      snprintf(ref, sizeof ref, fmt, (ptype)vals[i]);                          \
      cr_assert_eq(n, strlen(ref), "%s: %zu digits for %s", #to_dec, n, ref);  \
      cr_assert(memcmp(buf, ref, n) == 0, "%s: %.*s want %s", #to_dec, (int)n, \
                buf, ref);                                                     \
      type back;                                                               \
      cr_assert_eq(from_dec(buf, n, &back), 0, "%s(%s)", #from_dec, ref);      \
      cr_assert_eq(back, vals[i], "%s(%s)", #from_dec, ref);                   \
    }                                                                          \
  } while (0)

Test(numbers, u64_round_trip) {
  EXPECT_ROUND_TRIPS(uint64_t, mcr__u64_to_dec, mcr__dec_to_u64, "%llu",
                     unsigned long long, 0, 1, 9, 10, 99, 12345, 4294967295ull,
                     18446744073709551615ull);
}

Test(numbers, i64_extremes) {
  EXPECT_ROUND_TRIPS(int64_t, mcr__i64_to_dec, mcr__dec_to_i64, "%lld",
                     long long, 0, -1, 1, INT64_MAX, INT64_MIN, -2592000);
}

Test(numbers, rejects_bad_input) {
  uint64_t u;
  int64_t s;
  cr_assert_eq(mcr__dec_to_u64("", 0, &u), -1);
  cr_assert_eq(mcr__dec_to_u64("18446744073709551616", 20, &u), -1);
  cr_assert_eq(mcr__dec_to_u64("99999999999999999999", 20, &u), -1);
  cr_assert_eq(mcr__dec_to_u64("000000000000000000001", 21, &u), -1);
  cr_assert_eq(mcr__dec_to_u64("12a", 3, &u), -1);
  cr_assert_eq(mcr__dec_to_u64("-1", 2, &u), -1);
  cr_assert_eq(mcr__dec_to_u64(" 1", 2, &u), -1);
  cr_assert_eq(mcr__dec_to_i64("-", 1, &s), -1);
  cr_assert_eq(mcr__dec_to_i64("9223372036854775808", 19, &s), -1);
  cr_assert_eq(mcr__dec_to_i64("-9223372036854775809", 20, &s), -1);
  /* The length bounds the scan: digits past it are not read. */
  cr_assert_eq(mcr__dec_to_u64("123456", 3, &u), 0);
  cr_assert_eq(u, 123);
}

Test(tokenize, offsets_and_limits) {
  const char* line = "VALUE key 5 10 77";
  mcr__tok_t t[5];
  int n = mcr__tokenize(line, strlen(line), t, 5);
  cr_assert_eq(n, 5);
  cr_assert_eq(t[0].off, 0);
  cr_assert_eq(t[0].len, 5);
  cr_assert_eq(t[1].off, 6);
  cr_assert_eq(t[1].len, 3);
  cr_assert_eq(t[4].off, 15);
  cr_assert_eq(t[4].len, 2);
  cr_assert_eq(mcr__tokenize(line, strlen(line), t, 4), -1);
  cr_assert_eq(mcr__tokenize("a  b", 4, t, 5), -1);
  cr_assert_eq(mcr__tokenize(" a", 2, t, 5), -1);
  cr_assert_eq(mcr__tokenize("a ", 2, t, 5), -1);
  cr_assert_eq(mcr__tokenize("", 0, t, 5), 0);
}
