/* health.c — node health shared by every worker of a host.
 *
 * Without it each client handle learns alone that a node is dead: with 256
 * workers and a node that accepts connections but never answers, every
 * worker pays failure_limit × io_timeout before it stops trying, and pays
 * it again at every retry. Here the agent owns one table for the host (a
 * sealed memfd it hands to every worker that registers for host stats,
 * hoststats_server.c). The host counts a node's failures in a row
 * together (by any worker, no success by anyone in between), so with many
 * workers stuck on a hung node the limit-th timeout anywhere marks it
 * down; the worker that reaches it writes the mark there, and every other
 * worker sees it at its next call to that node (two loads from one cache
 * line on the hot path) and fails fast, or routes around it with eject. When
 * the retry time comes one worker wins the probe (a compare-and-swap on the
 * node's state word) and tries the node while the others keep failing fast; its
 * success sets the node up for everyone, its failure marks it down again. No
 * ring generation changes: placement moves only with eject, as it would for one
 * handle.
 *
 * The table: MCR__HH_CAP entries of eight 64-bit words, one cache line
 * (identity, state, down since, times marked down, failures in a row with
 * the time of the last, three spare), an open-addressing hash table on the
 * node's identity (a hash of host, address and port, the same in every
 * worker whatever the ring generation). An entry is claimed by a worker
 * when it binds a node (compare-and-swap of the identity from 0) and never
 * given back while the agent lives. The state word is 0 for up, else
 * deadline (CLOCK_MONOTONIC ms, host-wide) << 24 | probing << 23 | pid.
 *
 * Trust (docs/health.md): every process of the agent's group can write the
 * table. The mapping's size is fixed by seals (no SIGBUS, no resize), every
 * entry index is computed here from the identity and the table's fixed
 * mask, never read from it, and a state word is only ever honoured for the
 * reader's own retry_timeout_ms: after that the reader claims the probe
 * and tries the node itself. So a hostile worker can at worst mark a node
 * of the ring down for one retry interval per write; it cannot move a key,
 * make another worker fault, or make it read or write outside the table.
 */
#include <ck_pr.h>
#include <unistd.h>

#include "internal.h"

uint64_t mcr__hh_none[MCR__HH_WORDS];

#define PID_BITS 23
#define PROBE_BIT (UINT64_C(1) << PID_BITS)
#define PID_MASK (PROBE_BIT - 1)
#define DEADLINE_SHIFT 24

static uint64_t state_word(int64_t deadline_ms, bool probe) {
  uint64_t d = deadline_ms > 0 ? (uint64_t)deadline_ms : 1;
  return d << DEADLINE_SHIFT | (probe ? PROBE_BIT : 0) |
         ((uint64_t)getpid() & PID_MASK);
}

void mcr__hh_decode(uint64_t s, mcr__hh_state_t* out) {
  out->down = s != 0;
  out->probing = (s & PROBE_BIT) != 0;
  out->pid = (uint32_t)(s & PID_MASK);
  out->mine = out->down && out->pid == ((uint32_t)getpid() & PID_MASK);
  out->deadline_ms = (int64_t)(s >> DEADLINE_SHIFT);
}

uint64_t* mcr__hh_find(uint64_t* table, uint64_t ident, bool claim) {
  if (!table || !ident)
    return NULL;
  uint32_t home = (uint32_t)(ident ^ ident >> 32) & (MCR__HH_CAP - 1);
  for (int pass = 0; pass < 2; pass++) {
    /* Every slot of the window is read: entries are never freed, but a
     * hostile writer may have zeroed one before ours. */
    for (uint32_t i = 0; i < MCR__HH_PROBES; i++) {
      uint64_t* e =
          table + (size_t)((home + i) & (MCR__HH_CAP - 1)) * MCR__HH_WORDS;
      uint64_t id = ck_pr_load_64(&e[0]);
      if (id == ident)
        return e;
      if (pass == 1 && id == 0 && ck_pr_cas_64(&e[0], 0, ident))
        return e;
      if (pass == 1 && ck_pr_load_64(&e[0]) == ident)
        return e; /* another worker claimed it for the same node */
    }
    if (!claim)
      return NULL;
  }
  return NULL; /* the window is full: this node's health stays private */
}

/* The handle takes in state word s: a node marked up clears its own mark
 * (someone's probe succeeded), a node marked down is down here until the
 * mark's deadline, never longer than our own retry time. */
static void adopt(mcr__node_t* n, mcr__health_t* h, uint64_t s, int64_t now) {
  n->hh_seen = s;
  if (!s) {
    if (n->down_until)
      h->ndown--;
    n->down_until = 0;
    n->fails = 0;
    return;
  }
  int64_t until = (int64_t)(s >> DEADLINE_SHIFT);
  if (until > now + h->retry_ms)
    until = now + h->retry_ms;
  if (until <= now)
    until = now; /* an old mark: the probe is due */
  if (!n->down_until)
    h->ndown++;
  n->down_until = until ? until : 1;
  n->fails = h->limit;
}

void mcr__hh_sync(mcr__node_t* n, mcr__health_t* h, int64_t now) {
  uint64_t s = ck_pr_load_64(&n->hh[1]);
  if (s != n->hh_seen)
    adopt(n, h, s, now);
}

/* Word 4: the failures in a row (low 16 bits) and the time of the last
 * one (ms, above). A writer that keeps changing it cannot hold us here:
 * after a few lost races the failure counts only in this handle. */
bool mcr__hh_failure(mcr__node_t* n, mcr__health_t* h, int64_t now) {
  for (int tries = 0; tries < 8; tries++) {
    uint64_t old = ck_pr_load_64(&n->hh[4]);
    uint64_t count = old & 0xffff;
    int64_t last = (int64_t)(old >> 16);
    if (last > now || now - last > h->probe_ms)
      count = 0; /* another incident, or a time from nowhere */
    if (count < 0xffff)
      count++;
    if (ck_pr_cas_64(&n->hh[4], old, (uint64_t)now << 16 | count))
      return count >= (uint64_t)h->limit;
  }
  return false;
}

void mcr__hh_mark_down(mcr__node_t* n, mcr__health_t* h, int64_t until) {
  uint64_t s = state_word(until, false);
  if (ck_pr_load_64(&n->hh[1]) == 0) {
    ck_pr_store_64(&n->hh[2], (uint64_t)mcr__now_ms());
    ck_pr_inc_64(&n->hh[3]);
  }
  ck_pr_store_64(&n->hh[1], s);
  n->hh_seen = s;
  n->hh_probing = false;
  (void)h;
}

bool mcr__hh_claim_probe(mcr__node_t* n, mcr__health_t* h, int64_t now) {
  uint64_t mine = state_word(now + h->probe_ms, true);
  if (ck_pr_cas_64(&n->hh[1], n->hh_seen, mine)) {
    n->hh_seen = mine;
    n->hh_probing = true;
    return true;
  }
  adopt(n, h, ck_pr_load_64(&n->hh[1]), now);
  return false;
}

void mcr__hh_probe_ok(mcr__node_t* n, mcr__health_t* h) {
  n->hh_probing = false;
  if (ck_pr_cas_64(&n->hh[1], n->hh_seen, 0)) {
    n->hh_seen = 0;
    return;
  }
  adopt(n, h, ck_pr_load_64(&n->hh[1]), mcr__now_ms());
}
