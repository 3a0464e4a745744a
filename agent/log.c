/* log.c — levelled logging for the agent, to stderr or to syslog.
 *
 * The agent runs under systemd (stderr goes to the journal) or as a
 * classic daemon (--syslog). Each message is one line; stderr lines carry
 * a UTC timestamp and the level so that a plain log file reads well too.
 * Library code never logs; sources return messages and main.c decides what
 * is worth a line (once per change of state, not once per poll).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "agent.h"

static bool log_syslog;
static agent_log_level_t log_level = AGENT_LOG_INFO;

static const char* const level_names[] = {"error", "warning", "info", "debug"};

void agent_log_init(bool use_syslog, agent_log_level_t level) {
  if (use_syslog && !log_syslog)
    openlog("mcring-agent", LOG_PID | LOG_NDELAY, LOG_DAEMON);
  else if (!use_syslog && log_syslog)
    closelog();
  log_syslog = use_syslog;
  log_level = level;
}

int agent_log_level_parse(const char* s, agent_log_level_t* out) {
  for (int i = 0; i < 4; i++) {
    if (strcmp(s, level_names[i]) == 0) {
      *out = (agent_log_level_t)i;
      return 0;
    }
  }
  return -1;
}

void agent_log(agent_log_level_t level, const char* fmt, ...) {
  if (level > log_level)
    return;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (log_syslog) {
    static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
    syslog(prio[level], "%s", msg);
    return;
  }
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  char when[32];
  strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
  fprintf(stderr, "%s.%03ldZ mcring-agent %s: %s\n", when, ts.tv_nsec / 1000000,
          level_names[level], msg);
}
