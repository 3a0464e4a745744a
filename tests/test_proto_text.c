/* test_proto_text.c — unit tests of the text protocol's building blocks:
 * the decimal writers and overflow-checked parsers, the offset tokenizer,
 * and the classification of server error lines. No server is involved. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

Test(numbers, u64_round_trip) {
  const uint64_t vals[] = {
      0, 1, 9, 10, 99, 12345, 4294967295ull, 18446744073709551615ull};
  for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
    char buf[24], ref[24];
    size_t n = mcr__u64_to_dec(buf, vals[i]);
    snprintf(ref, sizeof ref, "%llu", (unsigned long long)vals[i]);
    cr_assert_eq(n, strlen(ref));
    cr_assert(memcmp(buf, ref, n) == 0);
    uint64_t back;
    cr_assert_eq(mcr__dec_to_u64(buf, n, &back), 0);
    cr_assert_eq(back, vals[i]);
  }
}

Test(numbers, i64_extremes) {
  const int64_t vals[] = {0, -1, 1, INT64_MAX, INT64_MIN, -2592000};
  for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
    char buf[24], ref[24];
    size_t n = mcr__i64_to_dec(buf, vals[i]);
    snprintf(ref, sizeof ref, "%lld", (long long)vals[i]);
    cr_assert_eq(n, strlen(ref));
    cr_assert(memcmp(buf, ref, n) == 0);
    int64_t back;
    cr_assert_eq(mcr__dec_to_i64(buf, n, &back), 0);
    cr_assert_eq(back, vals[i]);
  }
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

Test(error_line, classes) {
  cr_assert_eq(mcr__error_line("ERROR", 5), MCR_ESERVERCMD);
  cr_assert_eq(mcr__error_line("ERROR unknown command", 21), MCR_ESERVERCMD);
  cr_assert_eq(mcr__error_line("ERRORS", 6), 0);
  cr_assert_eq(mcr__error_line("CLIENT_ERROR bad data chunk", 27),
               MCR_ECLIENTERR);
  cr_assert_eq(mcr__error_line("SERVER_ERROR out of memory", 26),
               MCR_ESERVERERR);
  cr_assert_eq(mcr__error_line("STORED", 6), 0);
}

Test(base64, round_trip_all_lengths) {
  unsigned char raw[64], back[64];
  char enc[96];
  for (size_t i = 0; i < sizeof raw; i++)
    raw[i] = (unsigned char)(i * 37);
  for (size_t len = 0; len <= sizeof raw; len++) {
    size_t e = mcr__base64_encode(raw, len, enc);
    cr_assert_eq(e, (len + 2) / 3 * 4);
    long d = mcr__base64_decode(enc, e, back);
    cr_assert_eq(d, (long)len);
    cr_assert(memcmp(raw, back, len) == 0);
  }
  cr_assert_eq(mcr__base64_decode("abc", 3, back), -1);
  cr_assert_eq(mcr__base64_decode("a=bc", 4, back), -1);
  cr_assert_eq(mcr__base64_decode("ab!c", 4, back), -1);
  char e2[8];
  cr_assert_eq(mcr__base64_encode("foo", 3, e2), 4);
  cr_assert(memcmp(e2, "Zm9v", 4) == 0);
}
