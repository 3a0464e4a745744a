/* fakecfg.h — a fake ElastiCache configuration endpoint for the tests.
 *
 * It speaks the exact Auto Discovery wire format on a free 127.0.0.1 port
 * (never any other address), from a thread of the calling process:
 *
 *   version                        -> VERSION <engine version>\r\n
 *   config get cluster             -> CONFIG cluster 0 <bytes>\r\n
 *                                     <version>\n<host>|<ip>|<port> ...\n
 *                                     \r\nEND\r\n
 *   get AmazonElastiCache:cluster  -> VALUE AmazonElastiCache:cluster 0
 *                                     <bytes>\r\n<same block>\r\nEND\r\n
 *   anything else                  -> ERROR\r\n
 *
 * The node list comes from a file of "host|ip|port" lines (blank lines and
 * '#' comments ignored), read again on every request; the configuration
 * version starts at opts.version and grows by one whenever the file's node
 * list changes (unless frozen, to imitate a node replaced in place). A
 * mode makes it misbehave. Every request is counted by its first word.
 * Functions return NULL / -1 on a setup error instead of failing a test so
 * that the standalone tests/fakecfg program can use them as well.
 */
#ifndef MCR_TEST_FAKECFG_H
#define MCR_TEST_FAKECFG_H

#include <stdbool.h>
#include <stdint.h>

typedef enum {
  FAKECFG_NORMAL = 0,   /* both requests served */
  FAKECFG_ERROR_CONFIG, /* ERROR to "config ..."; the legacy get served */
  FAKECFG_LEGACY_ONLY,  /* an engine older than 1.4.14: ERROR to "config",
                           version "1.4.5" unless engine_version is set */
  FAKECFG_HANG,         /* reads requests and never answers */
  FAKECFG_CLOSE_MID,    /* header and half the block, then close */
  FAKECFG_BAD_COUNT,    /* byte count off by count_delta (default +5) */
  FAKECFG_MALFORMED     /* one extra node entry with an invalid port */
} fakecfg_mode_t;

typedef struct {
  fakecfg_mode_t mode;
  const char* nodes_file;     /* required: host|ip|port per line */
  const char* engine_version; /* default "1.6.21" ("1.4.5" legacy-only) */
  uint64_t version;           /* first configuration version, default 1 */
  int count_delta;            /* FAKECFG_BAD_COUNT; 0 means +5 */
  int port;                   /* 0: any free port */
} fakecfg_opts_t;

typedef struct fakecfg fakecfg_t;

/* Starts the endpoint. Returns NULL on failure (errno-style message on
 * stderr). opts->nodes_file is copied. */
fakecfg_t* fakecfg_start(const fakecfg_opts_t* opts);
/* Stops the thread, closes every socket, frees. NULL is ignored. */
void fakecfg_stop(fakecfg_t* f);
int fakecfg_port(const fakecfg_t* f);
/* "127.0.0.1:PORT" */
const char* fakecfg_endpoint(const fakecfg_t* f);

void fakecfg_set_mode(fakecfg_t* f, fakecfg_mode_t mode);
/* The version served from now on (also for an unchanged list). */
void fakecfg_set_version(fakecfg_t* f, uint64_t version);
/* While frozen, node list changes do not bump the version. */
void fakecfg_freeze_version(fakecfg_t* f, bool frozen);
void fakecfg_set_engine_version(fakecfg_t* f, const char* v);
uint64_t fakecfg_version(fakecfg_t* f);

/* Requests received whose first word is `cmd` ("config", "get",
 * "version"), or all requests when cmd is NULL. */
int fakecfg_requests(fakecfg_t* f, const char* cmd);
int fakecfg_connections(fakecfg_t* f);

/* Parses "normal", "error-config", "legacy-only", "hang", "close-mid",
 * "bad-count", "malformed". Returns 0 or -1. */
int fakecfg_mode_parse(const char* s, fakecfg_mode_t* out);

/* Writes a node file with n nodes "node<i>.test|127.0.<i/250>.<i%250+1>|
 * <base_port + i>" (atomically: temp + rename). Returns 0 or -1. */
int fakecfg_write_nodes(const char* path, int n, int base_port);
/* Writes `text` as the node file (temp + rename). Returns 0 or -1. */
int fakecfg_write_file(const char* path, const char* text);

#endif /* MCR_TEST_FAKECFG_H */
