/* fuzz_ecparse.c — libFuzzer target for the ElastiCache configuration
 * endpoint reply parser (mcr__ec_parse in lib/elasticache.c).
 *
 * The agent trusts the configuration endpoint for the node list every
 * worker routes by, so its reply parser is the one place where a broken or
 * hostile endpoint could reach the ring. It is pure (a buffer in, a node
 * list out), so the fuzzer calls it directly, in both forms ("config get
 * cluster" and the legacy "get AmazonElastiCache:cluster") and on the
 * version reply. Properties checked beyond memory safety:
 *   - an accepted reply yields 1..n nodes with NUL-terminated host and
 *     address, ports 1..65535, weight >= 1, and no duplicate host:port;
 *   - every strict prefix of an accepted reply is MCR__EC_INCOMPLETE (the
 *     agent reads until the parser says complete, so a prefix that parsed
 *     as an error or as complete would lose or truncate a good reply);
 *   - the result is one of the documented codes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"

static void check_nodes(const mcr__nodes_t* l) {
  if (l->n == 0 || !l->has_version)
    abort();
  for (size_t i = 0; i < l->n; i++) {
    const mcr__dnode_t* a = &l->v[i];
    if (!memchr(a->host, 0, sizeof(a->host)) ||
        !memchr(a->addr, 0, sizeof(a->addr)) || a->port == 0 ||
        a->weight == 0 || a->host[0] == '\0')
      abort();
    for (size_t j = 0; j < i; j++)
      if (l->v[j].port == a->port && strcmp(l->v[j].host, a->host) == 0)
        abort();
  }
}

static void check_rc(int rc) {
  if (!(rc == 0 || rc == MCR__EC_INCOMPLETE || rc == MCR__EC_ERROR_REPLY ||
        rc == MCR_EPROTO || rc == MCR_ESERVERERR || rc == MCR_ECLIENTERR ||
        rc == MCR_ENOMEM))
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1)
    return 0;
  mcr__ec_form_t form = (data[0] & 1) ? MCR__EC_LEGACY : MCR__EC_CONFIG;
  /* A copy of exactly the reply bytes, so ASan catches any read past it. */
  size_t len = size - 1;
  char* buf = malloc(len ? len : 1);
  if (!buf)
    return 0;
  memcpy(buf, data + 1, len);
  mcr__nodes_t nodes = {0};
  char err[256];
  int rc = mcr__ec_parse(form, buf, len, &nodes, err, sizeof(err));
  check_rc(rc);
  if (rc == 0) {
    check_nodes(&nodes);
    size_t cuts[3] = {len - 1, len / 2, 1};
    for (int i = 0; i < 3; i++) {
      if (cuts[i] == 0 || cuts[i] >= len)
        continue;
      mcr__nodes_t pre = {0};
      int prc = mcr__ec_parse(form, buf, cuts[i], &pre, err, sizeof(err));
      if (prc != MCR__EC_INCOMPLETE)
        abort();
      mcr__nodes_free(&pre);
    }
  }
  mcr__nodes_free(&nodes);
  unsigned maj, min, patch;
  rc = mcr__ec_parse_version(buf, len, &maj, &min, &patch);
  if (!(rc == 0 || rc == MCR__EC_INCOMPLETE || rc == MCR__EC_ERROR_REPLY ||
        rc == MCR_EPROTO))
    abort();
  free(buf);
  return 0;
}
