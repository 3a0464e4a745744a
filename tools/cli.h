/* cli.h — what the files of the `mcring` tool share: the parsed
 * command line, the exit-status contract, and the helpers the commands in
 * mcring.c and mcring_stat.c both use.
 */
#ifndef MCR_CLI_H
#define MCR_CLI_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "mcring.h"

/* The exit-status contract: 0 hit or success, 1 miss / not stored /
 * exists / not found, 2 error with one line on stderr. */
enum { EXIT_HIT = 0, EXIT_MISS = 1, EXIT_ERR = 2 };

typedef enum { STAT_TEXT, STAT_JSON, STAT_PROMETHEUS } stat_format_t;

typedef struct {
  /* The command run, and its synopsis for a usage line: one function
   * serves the commands that differ in one call (get / gets, set / add /
   * replace, append / prepend, incr / decr). */
  const char* name;
  const char* synopsis;
  mcr_client_opts_t opts;
  uint32_t flags;
  int64_t ttl;
  int noreply;
  int count; /* watch: stop after this many changes (0 = until a signal) */
  stat_format_t stat_format; /* stat: --json, --prometheus */
  bool stat_live;            /* stat: -w */
  double stat_interval;      /* stat -w: seconds between refreshes */
} cli_t;

typedef int (*cmd_fn)(cli_t* cli, mcr_client_t* c, int argc, char** argv);

/* Prints "mcring: what: detail" on stderr and returns EXIT_ERR. */
int die(const char* what, const char* detail);
/* Checks the argument count; prints the usage line when it is off. */
int need_args(int argc, int min, int max, const char* usage);
/* Set by SIGINT / SIGTERM (on_stop_signal) for the commands that run
 * until stopped (watch, stat -w). */
extern volatile sig_atomic_t watch_stop;
void on_stop_signal(int sig);
void sleep_ms(long ms);

/* Writes ring node nd's host-wide health (mcr_hoststats_health) as text:
 * "up", "down 2.1s by pid 812, next probe in 0.9s", "probing by pid 812".
 * Returns false (buf "?") when h has no health table. */
bool health_text(mcr_hoststats_t* h, const mcr_ring_node_t* nd, char* buf,
                 size_t len);

/* The commands of mcring_stat.c. */
int cmd_stat(cli_t* cli, mcr_client_t* unused, int argc, char** argv);

#endif /* MCR_CLI_H */
