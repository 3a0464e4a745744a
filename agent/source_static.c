/* source_static.c — a fixed node list given on the command line.
 *
 * "--servers host:port[:weight],..." parsed by the library's own
 * server-list parser, so the syntax is the client's (IPv6 in brackets;
 * port 11211 and weight 1 when absent). Unix sockets are refused
 * because a ring node needs an address other hosts could share. Host names
 * are resolved on every poll, so a static list of names still follows DNS
 * changes the way the ElastiCache source does; the `ketama` mode hashes the
 * resolved address, `ketama-libmemcached` the name as written.
 */
#include <stdio.h>
#include <string.h>

#include "agent.h"

int agent_static_poll(const char* list, mcr__nodes_t* out, char* err,
                      size_t errlen) {
  mcr__nodes_clear(out);
  int rc = mcr__nodes_add_list(list, out, err, errlen);
  if (rc)
    return rc;
  return mcr__nodes_finish(out, err, errlen);
}
