/* hoststats.h — the layouts the two halves of host stats agree on.
 *
 * hoststats.c is the worker's half (a segment of its own, registered with
 * the agent) and the reader's (`mcring stat`); hoststats_server.c is the
 * agent's (the registry that holds every worker's segment and answers
 * readers). docs/agent.md, "Host statistics", describes the design; this
 * header holds only what both sides must read the same way. Integers are
 * in host byte order: every party runs on the same host.
 */
#ifndef MCR_HOSTSTATS_H
#define MCR_HOSTSTATS_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "internal.h"

/* The agent's socket in the ring directory. */
#define MCR__HS_SOCK "stats.sock"

/* ---------------------------------------------------------------- segment */

/* A worker's segment: a sealed memfd (no shrink, no grow) the worker
 * creates, writes alone and hands to the agent, who only reads it with
 * pread (so nothing in it can fault or steer the agent).
 *   0    header (64 bytes)
 *   64   entry i at 64 + i * 320: char node[64] (NUL-padded), then the
 *        u64 counters of mcr_node_counters_t, then padding */
#define MCR__HS_MAGIC "MCRHSW01"
#define MCR__HS_HEAD 64u
#define MCR__HS_NAME 64u
#define MCR__HS_ENTRY 320u
/* Entries a segment can hold: one per node of the largest ring. Only the
 * pages of entries in use are ever allocated. */
#define MCR__HS_CAP 65536u

typedef struct {
  char magic[8];
  uint32_t header_size; /* MCR__HS_HEAD */
  uint32_t entry_size;  /* MCR__HS_ENTRY */
  uint32_t capacity;    /* entries the segment's size has room for */
  uint32_t used;        /* entries [0, used) are meaningful */
  uint64_t generation;  /* ring generation the worker routes by */
  uint32_t pid;
  uint8_t pad[28];
} mcr__hs_head_t;

_Static_assert(sizeof(mcr__hs_head_t) == MCR__HS_HEAD, "segment header");
_Static_assert(MCR__HS_NAME + sizeof(mcr_node_counters_t) <= MCR__HS_ENTRY,
               "counters fit an entry");

/* ---------------------------------------------------------------- socket */

/* The first message of every connection to the agent's socket. A worker
 * sends MCR__HS_REGISTER with its segment's fd (SCM_RIGHTS) and reads one
 * mcr__hs_msg_t back (status MCR__HS_OK or a refusal); the connection then
 * stays open, idle, for as long as the registration lives. A reader sends
 * MCR__HS_READ and gets an mcr__hs_msg_t whose `count` rows of
 * mcr__hs_wire_row_t follow, then the end of the stream. */
#define MCR__HS_WIRE_MAGIC "MCRAGT01"
enum { MCR__HS_REGISTER = 1, MCR__HS_READ = 2 };
enum {
  MCR__HS_OK = 0,
  MCR__HS_FULL = 1,     /* every registration slot is taken */
  MCR__HS_BADSEG = 2,   /* the fd is not a sealed segment of the right size */
  MCR__HS_TRUNCATED = 3 /* a read: rows were left out (too many) */
};

typedef struct {
  char magic[8];
  uint32_t kind;   /* MCR__HS_REGISTER / MCR__HS_READ, echoed in replies */
  uint32_t status; /* replies: MCR__HS_OK ... */
  uint64_t count;  /* replies to MCR__HS_READ: rows that follow */
} mcr__hs_msg_t;

typedef struct {
  uint32_t pid;
  uint32_t slot; /* the registration's number, unique while it lives */
  uint64_t generation;
  char node[64];
  mcr_node_counters_t c;
} mcr__hs_wire_row_t;

_Static_assert(sizeof(mcr__hs_msg_t) == 24, "message");
_Static_assert(sizeof(mcr__hs_wire_row_t) == 80 + sizeof(mcr_node_counters_t),
               "row");

/* Sends what it can of buf[len] on the socket fd, with the descriptor
 * `pass` attached (SCM_RIGHTS) when >= 0; returns what sendmsg returns. */
ssize_t mcr__hs_send(int fd, const void* buf, size_t len, int pass);
/* Takes the descriptors of a received message: the first into *fd (when
 * it is still -1), every other one closed and counted (the return). */
int mcr__hs_take_fds(struct msghdr* mh, int* fd);

/* Most rows one read returns (about 80 MiB); the agent leaves out the rest
 * and says so (MCR__HS_TRUNCATED). */
#define MCR__HS_ROWS_MAX (1u << 18)

#endif /* MCR_HOSTSTATS_H */
