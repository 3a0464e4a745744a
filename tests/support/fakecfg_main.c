/* fakecfg_main.c — tests/fakecfg, the fake ElastiCache configuration
 * endpoint as a standalone program, for the demo, the benchmark and manual
 * checks of mcring-agent from a shell.
 *
 *   tests/fakecfg --nodes FILE [--port N] [--mode MODE]
 *                 [--engine-version V] [--config-version N]
 *                 [--port-file PATH]
 *
 * It prints "127.0.0.1:PORT" on stdout once listening (and writes the port
 * to --port-file), serves FILE (host|ip|port per line; edit it to change
 * the cluster: the version is bumped), and runs until SIGTERM or SIGINT.
 * SIGUSR1 prints the request counts on stderr. Loopback only.
 */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fakecfg.h"

static void usage(void) {
  fprintf(stderr,
          "usage: fakecfg --nodes FILE [--port N] [--mode MODE] "
          "[--engine-version V]\n"
          "               [--config-version N] [--port-file PATH]\n"
          "MODE: normal error-config legacy-only hang close-mid bad-count "
          "malformed\n");
}

int main(int argc, char** argv) {
  static const struct option opts[] = {
      {"nodes", required_argument, NULL, 'n'},
      {"port", required_argument, NULL, 'p'},
      {"mode", required_argument, NULL, 'm'},
      {"engine-version", required_argument, NULL, 'e'},
      {"config-version", required_argument, NULL, 'v'},
      {"port-file", required_argument, NULL, 'P'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  fakecfg_opts_t o = {0};
  const char* port_file = NULL;
  int c;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
      case 'n':
        o.nodes_file = optarg;
        break;
      case 'p':
        o.port = atoi(optarg);
        break;
      case 'm':
        if (fakecfg_mode_parse(optarg, &o.mode) != 0) {
          usage();
          return 2;
        }
        break;
      case 'e':
        o.engine_version = optarg;
        break;
      case 'v':
        o.version = strtoull(optarg, NULL, 10);
        break;
      case 'P':
        port_file = optarg;
        break;
      default:
        usage();
        return c == 'h' ? 0 : 2;
    }
  }
  if (!o.nodes_file) {
    usage();
    return 2;
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &set, NULL); /* before the server thread */
  fakecfg_t* f = fakecfg_start(&o);
  if (!f)
    return 1;
  if (port_file) {
    char b[16];
    snprintf(b, sizeof(b), "%d\n", fakecfg_port(f));
    if (fakecfg_write_file(port_file, b) != 0) {
      fprintf(stderr, "fakecfg: cannot write %s\n", port_file);
      fakecfg_stop(f);
      return 1;
    }
  }
  printf("%s\n", fakecfg_endpoint(f));
  fflush(stdout);
  for (;;) {
    int sig = 0;
    sigwait(&set, &sig);
    if (sig != SIGUSR1)
      break;
    fprintf(stderr,
            "fakecfg: %d requests (%d config, %d get, %d version), "
            "%d connections, version %llu\n",
            fakecfg_requests(f, NULL), fakecfg_requests(f, "config"),
            fakecfg_requests(f, "get"), fakecfg_requests(f, "version"),
            fakecfg_connections(f), (unsigned long long)fakecfg_version(f));
  }
  fakecfg_stop(f);
  return 0;
}
