/* alloc.c — the allocator hooks, growable buffers and the per-call arena.
 *
 * Everything libmcring allocates goes through mcr__malloc and friends, so a
 * host (a PHP extension, say) can route it to its own allocator with
 * mcr_replace_allocator. The library never links jemalloc: Debian's build
 * replaces malloc for the whole process and cannot be dlopen'ed.
 *
 * mcr_buf_t is a plain growable byte buffer (doubling). The arena hands out
 * memory for results that must stay valid until the next call on a client:
 * it is a chain of blocks that never move, so earlier pointers survive later
 * allocations in the same call; reset keeps the first block for reuse, so a
 * steady workload allocates nothing.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static void* (*alloc_malloc)(size_t) = malloc;
static void* (*alloc_realloc)(void*, size_t) = realloc;
static void* (*alloc_calloc)(size_t, size_t) = calloc;
static void (*alloc_free)(void*) = free;

int mcr_replace_allocator(void* (*malloc_fn)(size_t),
                          void* (*realloc_fn)(void*, size_t),
                          void* (*calloc_fn)(size_t, size_t),
                          void (*free_fn)(void*)) {
  if (!malloc_fn || !realloc_fn || !calloc_fn || !free_fn)
    return MCR_EINVAL;
  alloc_malloc = malloc_fn;
  alloc_realloc = realloc_fn;
  alloc_calloc = calloc_fn;
  alloc_free = free_fn;
  return 0;
}

void* mcr__malloc(size_t n) {
  return alloc_malloc(n);
}
void* mcr__realloc(void* p, size_t n) {
  return alloc_realloc(p, n);
}
void* mcr__calloc(size_t n, size_t size) {
  return alloc_calloc(n, size);
}
void mcr__free(void* p) {
  if (p)
    alloc_free(p);
}

char* mcr__strndup(const char* s, size_t n) {
  char* d = mcr__malloc(n + 1);
  if (!d)
    return NULL;
  memcpy(d, s, n);
  d[n] = '\0';
  return d;
}

int mcr__grow(char** data, size_t* cap, size_t len, size_t extra,
              size_t initial) {
  if (*cap - len >= extra)
    return 0;
  if (extra > SIZE_MAX / 4 - len)
    return MCR_ENOMEM;
  size_t c = *cap ? *cap : initial;
  while (c - len < extra)
    c *= 2;
  char* d = mcr__realloc(*data, c);
  if (!d)
    return MCR_ENOMEM;
  *data = d;
  *cap = c;
  return 0;
}

int mcr__buf_reserve(mcr_buf_t* b, size_t extra) {
  return mcr__grow(&b->data, &b->cap, b->len, extra, 256);
}

int mcr_buf_append(mcr_buf_t* b, const void* data, size_t len) {
  if (!b || (!data && len))
    return MCR_EINVAL;
  int rc = mcr__buf_reserve(b, len);
  if (rc)
    return rc;
  if (len)
    memcpy(b->data + b->len, data, len);
  b->len += len;
  return 0;
}

void mcr__buf_free(mcr_buf_t* b) {
  mcr__free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

struct mcr__arena_block {
  mcr__arena_block_t* next;
  size_t used, cap;
  max_align_t data[];
};

#define ARENA_BLOCK 16384

void* mcr__arena_alloc(mcr__arena_t* a, size_t n) {
  n = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
  mcr__arena_block_t* b = a->head;
  if (!b || b->cap - b->used < n) {
    size_t cap = n > ARENA_BLOCK ? n : ARENA_BLOCK;
    mcr__arena_block_t* nb = mcr__malloc(sizeof(*nb) + cap);
    if (!nb)
      return NULL;
    nb->next = b;
    nb->used = 0;
    nb->cap = cap;
    a->head = b = nb;
  }
  void* p = (char*)b->data + b->used;
  b->used += n;
  return p;
}

void mcr__arena_reset(mcr__arena_t* a) {
  mcr__arena_block_t* b = a->head;
  if (!b)
    return;
  /* Keep the oldest block (the one at the tail): it is the steady-state
   * one; later blocks only exist for calls with unusually large results. */
  while (b->next) {
    mcr__arena_block_t* next = b->next;
    mcr__free(b);
    b = next;
  }
  b->used = 0;
  a->head = b;
}

void mcr__arena_free(mcr__arena_t* a) {
  mcr__arena_block_t* b = a->head;
  while (b) {
    mcr__arena_block_t* next = b->next;
    mcr__free(b);
    b = next;
  }
  a->head = NULL;
}
