/* common.h — small helpers shared by the bench programs (bench/common.c).
 *
 * Clocks, medians, blocking loopback sockets and the one output format the
 * driver (bench/run.sh) collects: every measured figure is printed as a
 * line "result <name> <value>" on stdout, anything else is for people.
 */
#ifndef MCR_BENCH_COMMON_H
#define MCR_BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* CLOCK_MONOTONIC in nanoseconds and in seconds. */
uint64_t bench_now_ns(void);
double bench_now(void);

/* Median of v[0..n) (sorts v in place). 0 for n == 0. */
double bench_median(double* v, size_t n);

/* Prints "result <name> <value>" (the driver's input) and flushes. */
void bench_result(const char* name, double value);

/* Prints the message and exits with status 1. */
void bench_die(const char* fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

/* Parses "p1,p2,..." into ports[0..max). Returns the count (dies on a bad
 * list). */
int bench_parse_ports(const char* s, int* ports, int max);

/* A blocking TCP connection to 127.0.0.1:port with TCP_NODELAY. Dies on
 * failure. */
int bench_connect(int port);

/* Returns 0 once 127.0.0.1:port accepts a connection, -1 after timeout_ms. */
int bench_wait_port(int port, int timeout_ms);

/* Sends all len bytes on a blocking socket; dies on failure. */
void bench_send_all(int fd, const void* buf, size_t len);

#endif /* MCR_BENCH_COMMON_H */
