/* source.c — dispatches one poll to the configured discovery source.
 *
 * The poll loop in main.c knows only agent_source_t; this file maps its
 * kind to the module that does the work (lib/elasticache.c,
 * source_static.c, source_dns.c, source_file.c) and frees the state a
 * source keeps between polls when the configuration changes.
 */
#include <stdio.h>

#include "agent.h"

const char* agent_src_name(agent_src_kind_t k) {
  switch (k) {
    case AGENT_SRC_ELASTICACHE:
      return "elasticache";
    case AGENT_SRC_STATIC:
      return "static";
    case AGENT_SRC_DNS:
      return "dns";
    case AGENT_SRC_FILE:
      return "file";
    default:
      return "none";
  }
}

int agent_source_poll(agent_source_t* s, mcr__nodes_t* out, char* err,
                      size_t errlen) {
  switch (s->kind) {
    case AGENT_SRC_ELASTICACHE:
      return mcr__ec_poll(s->arg, s->connect_timeout_ms, s->io_timeout_ms,
                          s->tls, &s->ec_cache, out, &s->ec_legacy, err,
                          errlen);
    case AGENT_SRC_STATIC:
      return agent_static_poll(s->arg, out, err, errlen);
    case AGENT_SRC_DNS:
      return agent_dns_poll(s->arg, out, err, errlen);
    case AGENT_SRC_FILE:
      return agent_file_poll(s, out, err, errlen);
    default:
      snprintf(err, errlen, "no source configured");
      return MCR_EINVAL;
  }
}

void agent_source_reset(agent_source_t* s) {
  mcr__nodes_free(&s->file_nodes);
  s->file_seen = false;
  s->file_rc = 0;
  s->file_err[0] = '\0';
  s->ec_legacy = false;
  mcr__ec_cache_free(&s->ec_cache);
}
