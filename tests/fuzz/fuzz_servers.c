/* fuzz_servers.c — libFuzzer target for the node-list parsers.
 *
 * Node lists reach mcring from configuration: the client's servers string
 * (lib/servers.c), the agent's --servers list and its --file node file
 * (agent/source_static.c, agent/source_file.c). A typo or a hostile file
 * must give an error with a message, never a crash or an out-of-range
 * node. Properties checked: results are the documented codes; an accepted
 * list has 1..n entries with NUL-terminated names, ports that fit, weights
 * >= 1, and the agent never accepts a unix socket path.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "internal.h"

/* What the agent's parsers must give: a documented code, and on success
 * nodes with a port, a weight and no unix socket path. Frees the list. */
static void check_agent_nodes(int rc, mcr__nodes_t* l) {
  if (rc != 0 && rc != MCR_ESERVERS && rc != MCR_ENOSERVERS && rc != MCR_ENOMEM)
    abort();
  for (size_t i = 0; rc == 0 && i < l->n; i++)
    if (l->v[i].port == 0 || l->v[i].weight == 0 || l->v[i].host[0] == '/')
      abort();
  mcr__nodes_free(l);
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  char* s = malloc(size + 1);
  if (!s)
    return 0;
  memcpy(s, data, size);
  s[size] = '\0';
  char err[256];

  mcr__server_t* srv;
  size_t n;
  int rc = mcr__servers_parse(s, &srv, &n, err, sizeof(err));
  if (rc == 0) {
    if (n == 0)
      abort();
    for (size_t i = 0; i < n; i++)
      if (!srv[i].host || !srv[i].name || strlen(srv[i].name) == 0 ||
          (!srv[i].is_unix && srv[i].port == 0))
        abort();
    mcr__servers_free(srv, n);
  } else if (rc != MCR_ESERVERS && rc != MCR_ENOSERVERS && rc != MCR_ENOMEM) {
    abort();
  }

  mcr__nodes_t l = {0};
  check_agent_nodes(agent_file_parse(s, size, &l, err, sizeof(err)), &l);
  check_agent_nodes(mcr__nodes_add_list(s, &l, err, sizeof(err)), &l);
  free(s);
  return 0;
}
