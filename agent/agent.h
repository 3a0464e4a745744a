/* agent.h — what the modules of mcring-agent share.
 *
 * The agent is a small pipeline run once per poll:
 *
 *   source_*.c   ask a discovery source for the cluster's node list
 *                (ElastiCache configuration endpoint, static list, DNS,
 *                watched file) and fill an mcr__nodes_t
 *   nodes.c      the node list itself: append, validate, sort, compare
 *   publish.c    compare with the last published list, build and publish
 *                the ring through the library's snapshot writer, and keep
 *                the small status file beside the snapshot
 *   log.c        levelled logging to stderr or syslog
 *   main.c       options, config file, signals, the poll loop
 *
 * Sources never log and never exit: they return 0 or a negative MCR_E*
 * code with a one-line message, so they can be unit-tested (and the
 * ElastiCache reply parser fuzzed) without the daemon around them.
 * Agent-internal symbols are prefixed agent_.
 */
#ifndef MCR_AGENT_H
#define MCR_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "discovery.h" /* node lists, the ElastiCache poll (lib/) */
#include "internal.h"  /* the client's transport (conn.c, tls.c) */
#include "mcring.h"

/* ---------------------------------------------------------------- sources */

typedef enum {
  AGENT_SRC_NONE = 0,
  AGENT_SRC_ELASTICACHE,
  AGENT_SRC_STATIC,
  AGENT_SRC_DNS,
  AGENT_SRC_FILE
} agent_src_kind_t;

/* Name of a source kind ("elasticache", "static", "dns", "file"). */
const char* agent_src_name(agent_src_kind_t k);

/* A configured source with the state it keeps between polls. */
typedef struct {
  agent_src_kind_t kind;
  char* arg; /* endpoint, server list, DNS name or file path */
  int connect_timeout_ms;
  int io_timeout_ms;
  mcr__tls_t* tls; /* TLS to the ElastiCache endpoint, or NULL (not owned) */
  /* file source: identity of the file last read and its node list */
  bool file_seen;
  dev_t file_dev;
  ino_t file_ino;
  off_t file_size;
  int64_t file_mtime_ns;
  mcr__nodes_t file_nodes;
  int file_rc; /* result of the last read of that file version */
  char file_err[256];
  bool ec_legacy;           /* last ElastiCache poll used the legacy form */
  mcr__ec_cache_t ec_cache; /* the endpoint's last reply that parsed */
} agent_source_t;

/* Polls the source once; on success out holds a sorted, checked node list
 * with addresses. Returns 0 or a negative MCR_E* with a message. */
int agent_source_poll(agent_source_t* s, mcr__nodes_t* out, char* err,
                      size_t errlen);

/* Frees what the source keeps between polls (not s->arg). */
void agent_source_reset(agent_source_t* s);

/* The individual sources (see each file). */
int agent_static_poll(const char* list, mcr__nodes_t* out, char* err,
                      size_t errlen);
int agent_dns_poll(const char* spec, mcr__nodes_t* out, char* err,
                   size_t errlen);
int agent_file_poll(agent_source_t* s, mcr__nodes_t* out, char* err,
                    size_t errlen);
/* Parses the text of a node file (host:port[:weight] per line, '#'
 * comments, blank lines) into out (cleared first). Returns 0 or
 * MCR_ESERVERS / MCR_ENOSERVERS / MCR_ENOMEM with "line N: ..." messages. */
int agent_file_parse(const char* text, size_t len, mcr__nodes_t* out, char* err,
                     size_t errlen);
/* ---------------------------------------------------------------- log.c */

typedef enum {
  AGENT_LOG_ERROR = 0,
  AGENT_LOG_WARNING,
  AGENT_LOG_INFO,
  AGENT_LOG_DEBUG
} agent_log_level_t;

/* Sends messages at or below `level` to syslog (ident "mcring-agent") when
 * use_syslog, else to stderr with a timestamp and the level. */
void agent_log_init(bool use_syslog, agent_log_level_t level);
void agent_log(agent_log_level_t level, const char* fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Parses "error", "warning", "info", "debug". Returns 0 or -1. */
int agent_log_level_parse(const char* s, agent_log_level_t* out);

/* ---------------------------------------------------------------- publish.c */

typedef struct agent_pub agent_pub_t;

/* Opens the ring directory through the snapshot writer (which creates it
 * 0750, refuses a world-writable one and takes the single-writer lock).
 * With a non-NULL group, the directory gets that group and the setgid bit
 * so every file created in it inherits the group. Returns 0 or a negative
 * error with a message. */
int agent_pub_open(agent_pub_t** out, const char* dir, const char* group,
                   char* err, size_t errlen);

/* Publishes `nodes` (sorted, checked) as a new generation in `mode`, unless
 * it equals the list published last by this process in the same mode.
 * Warns (once per version) when the configuration version went backwards.
 * Sets *published and *gen (the current generation either way). Returns 0
 * or a negative error with a message (the last ring stays published). */
int agent_pub_apply(agent_pub_t* p, mcr_distribution_t mode,
                    const mcr__nodes_t* nodes, bool* published, uint64_t* gen,
                    char* err, size_t errlen);

/* Closes the ring file the last publication replaced once it has been
 * held AGENT_PUB_HOLD_MS (publish.c says why it is held); now_ms is
 * CLOCK_MONOTONIC (mcr__now_ms). Called once per poll. */
void agent_pub_release(agent_pub_t* p, int64_t now_ms);

/* Generation currently published in the directory (0 when none). */
uint64_t agent_pub_generation(const agent_pub_t* p);

/* What the status file reports after a poll. */
typedef struct {
  const char* source;   /* "elasticache cfg.example:11211" */
  int64_t poll_time_ms; /* CLOCK_REALTIME */
  int rc;               /* 0 or the poll's error */
  const char* message;  /* the error's message, or "" */
  bool has_version;
  uint64_t version;
  size_t nodes;       /* of the published list */
  int64_t last_ok_ms; /* CLOCK_REALTIME of the last good poll, 0 = never */
  unsigned failures;  /* consecutive failed polls */
} agent_status_t;

/* Writes the status file "status" in the ring directory atomically (a
 * temporary file created O_EXCL|O_NOFOLLOW relative to the directory, then
 * renamed over it). Returns 0 or MCR_ESYS with a message. */
int agent_pub_status(agent_pub_t* p, const agent_status_t* st, char* err,
                     size_t errlen);

/* Releases the lock and a held ring file; the published ring and the
 * status file stay. */
void agent_pub_close(agent_pub_t* p);

#endif /* MCR_AGENT_H */
