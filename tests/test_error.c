/* test_error.c — the error list and the outcome names.
 *
 * Every MCR_E* code comes from one X-macro list that also yields
 * mcr_strerror() and mcr_err_name(). These tests walk that same list from
 * the public header, so a code added later without a name or a message, or
 * two codes sharing a number, fail here. Outcomes (mcr_status_t) are not
 * errors and have their own names.
 */
#include <string.h>

#include <criterion/criterion.h>

#include "mcring.h"

typedef struct {
  int code;
  const char* name;
  const char* text;
} err_row_t;

static const err_row_t rows[] = {
#define ROW(name, code, text) {code, #name, text},
    MCR_ERRNO_MAP(ROW)
#undef ROW
};
#define NROWS (sizeof rows / sizeof rows[0])

Test(error, every_code_is_negative_and_unique) {
  for (size_t i = 0; i < NROWS; i++) {
    cr_assert_lt(rows[i].code, 0, "%s", rows[i].name);
    for (size_t j = i + 1; j < NROWS; j++)
      cr_assert_neq(rows[i].code, rows[j].code, "%s and %s", rows[i].name,
                    rows[j].name);
  }
}

Test(error, every_code_has_its_name) {
  for (size_t i = 0; i < NROWS; i++)
    cr_assert_str_eq(mcr_err_name(rows[i].code), rows[i].name);
}

Test(error, every_code_has_its_message) {
  for (size_t i = 0; i < NROWS; i++) {
    const char* s = mcr_strerror(rows[i].code);
    cr_assert_not_null(s, "%s", rows[i].name);
    cr_assert_str_eq(s, rows[i].text, "%s", rows[i].name);
    cr_assert_str_neq(s, "unknown error", "%s", rows[i].name);
  }
}

Test(error, enum_matches_the_list) {
  cr_assert_eq(MCR_EINVAL, -1);
  cr_assert_eq(MCR_EKEY, -3);
  cr_assert_eq(MCR_ETIMEOUT, -8);
  cr_assert_eq(MCR_ESYS, -24);
  cr_assert_eq(MCR_ETLS, -25);
  cr_assert_eq(MCR_ETLSVERIFY, -26);
  cr_assert_eq(NROWS, 26);
}

Test(error, unknown_codes) {
  const int unknown[] = {0, 1, 5, -27, -1000, 12345, -2147483647 - 1};
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
    cr_assert_str_eq(mcr_err_name(unknown[i]), "UNKNOWN", "%d", unknown[i]);
    cr_assert_str_eq(mcr_strerror(unknown[i]), "unknown error", "%d",
                     unknown[i]);
  }
}

Test(error, status_names) {
  cr_assert_str_eq(mcr_status_name(MCR_OK), "OK");
  cr_assert_str_eq(mcr_status_name(MCR_MISS), "MISS");
  cr_assert_str_eq(mcr_status_name(MCR_NOT_STORED), "NOT_STORED");
  cr_assert_str_eq(mcr_status_name(MCR_EXISTS), "EXISTS");
  cr_assert_str_eq(mcr_status_name(MCR_NOT_FOUND), "NOT_FOUND");
}

Test(error, status_values_are_not_errors) {
  cr_assert_eq(MCR_OK, 0);
  cr_assert_gt(MCR_MISS, 0);
  cr_assert_gt(MCR_NOT_STORED, 0);
  cr_assert_gt(MCR_EXISTS, 0);
  cr_assert_gt(MCR_NOT_FOUND, 0);
}

Test(error, status_name_out_of_range_is_not_null) {
  /* The header lists only five names; anything else must still be a
   * printable string, never NULL. */
  const int other[] = {5, 99, -1};
  for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
    const char* s = mcr_status_name(other[i]);
    cr_assert_not_null(s, "%d", other[i]);
    cr_assert_str_neq(s, "OK");
  }
}
