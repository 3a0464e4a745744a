/* fuzz_snapshot.c — libFuzzer target for the ring snapshot validator and
 * reader (lib/snapshot.c).
 *
 * A worker maps whatever file the control word names; the design promises
 * that validation (header and section bounds when the file is mapped, a
 * node entry and its strings when it is read) makes any file either
 * refused or safe to route by, even without the full checks (checksum,
 * every entry, totals, order, owners, bucket index) that the writer makes
 * and a reader makes only on request. This target tests that promise
 * both ways. Two ways to build the file:
 *   - raw: the input is the file image;
 *   - patched: a valid ring of fuzzer-chosen nodes is encoded by the real
 *     writer, then fuzzer-chosen byte patches are applied (so mutations hit
 *     the fields of a file that is otherwise right, beyond the checksum).
 * Control byte bits: 0 re-seal the checksum after patching (to reach the
 * checks behind it), 1 go through the filesystem and the public reader
 * (ring.<gen> + ctl in a private directory, mcr_snapshot_open, and a client
 * on that ring_dir) instead of the in-memory validator, 2 patched mode,
 * 3 full validation (opts.verify / ring_verify on the filesystem path).
 * Whatever is accepted is then used as a worker would: keys located (the
 * node index must be < node count), every node read (refused with
 * MCR_ESNAPSHOT, or read with strings that can be walked; after the full
 * check, always read), every client node named.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <fcntl.h>

#include "fuzz_decode.h"
#include "ring.h"

static volatile uint8_t sink;

static void use_ring(const mcr_ring_t* r, bool full) {
  size_t nn = mcr_ring_node_count(r);
  if (nn == 0 || mcr_ring_point_count(r) == 0)
    abort();
  char key[16];
  for (unsigned k = 0; k < 64; k++) {
    int len = snprintf(key, sizeof(key), "key-%u", k * 2654435761u);
    if (mcr_ring_locate(r, key, (size_t)len) >= nn)
      abort();
  }
  for (uint32_t h = 0; h < 64; h++) /* hashes at the bucket edges */
    if (mcr__ring_find(r, h * 0x04000000u + (h & 1 ? 0xffffu : 0)) >= nn)
      abort();
  for (size_t i = 0; i < nn; i++) {
    mcr_ring_node_t n;
    int rc = mcr_ring_node(r, i, &n);
    if (rc == MCR_ESNAPSHOT && !full)
      continue; /* a damaged entry, refused where it is read */
    if (rc != 0)
      abort();
    sink ^= (uint8_t)(strlen(n.host) + strlen(n.address));
  }
}

/* Patched mode: a good image of a ring chosen by the input, then patches
 * "u32 offset, u8 length, bytes" until the input runs out. */
static unsigned char* patched_image(fuzz_in_t* in, size_t* size) {
  /* The good image depends only on the first bytes of the input; building
   * it (the bucket index alone is 256 KiB) dominates the cost, so the last
   * one is kept and reused while those bytes repeat. */
  static uint8_t last_key[2 + 3 * 8 + 1];
  static size_t last_key_len;
  static unsigned char* last_img;
  static size_t last_size;
  const uint8_t* key = in->p;
  size_t n = 1 + (in->n ? in->p[0] : 0) % 8;
  size_t key_len = 2 + 3 * n + 1;
  if (in->n < key_len)
    return NULL;
  if (!last_img || key_len != last_key_len ||
      memcmp(last_key, key, key_len) != 0) {
    mcr__ring_node_in_t nodes[8];
    char hosts[8][32];
    fuzz_u8(in);
    mcr_distribution_t mode = (mcr_distribution_t)(fuzz_u8(in) % 3);
    for (size_t i = 0; i < n; i++) {
      snprintf(hosts[i], sizeof(hosts[i]), "10.0.%zu.%u", i, fuzz_u8(in));
      uint16_t port = (uint16_t)(11211 + fuzz_u8(in));
      nodes[i] = (mcr__ring_node_in_t){hosts[i], NULL, port,
                                       1 + fuzz_u8(in) % 4u, MCR__NODE_UP};
    }
    uint64_t gen = 1 + fuzz_u8(in);
    mcr_ring_t* r;
    free(last_img);
    last_img = NULL;
    if (mcr__ring_build_nodes(&r, mode, nodes, n, NULL, 0) != 0)
      return NULL; /* duplicate nodes: not interesting */
    last_size = mcr__snapshot_size(r, 0);
    last_img = malloc(last_size);
    if (!last_img)
      abort();
    mcr__snapshot_encode(r, gen, 1, NULL, NULL, last_img, last_size);
    mcr_ring_free(r);
    memcpy(last_key, key, key_len);
    last_key_len = key_len;
  } else {
    in->p += key_len;
    in->n -= key_len;
  }
  *size = last_size;
  unsigned char* buf = malloc(*size);
  if (!buf)
    abort();
  memcpy(buf, last_img, *size);
  while (in->n >= 5) {
    uint32_t off = fuzz_u32(in);
    size_t len = fuzz_u8(in) % 9;
    /* Offsets near the start (the header, the node table) are the most
     * interesting: the top bit of the offset picks them. */
    off = (off & 0x80000000u) ? off % 512 : off % (uint32_t)*size;
    for (size_t i = 0; i < len && off + i < *size; i++)
      buf[off + i] = fuzz_u8(in);
  }
  return buf;
}

static char dir[64];
static mcr__snapshot_writer_t* writer;

static void cleanup(void) {
  char path[128];
  snprintf(path, sizeof(path), "%s/ctl", dir);
  unlink(path);
  snprintf(path, sizeof(path), "%s/status", dir);
  unlink(path);
  mcr__snapshot_writer_close(writer);
  rmdir(dir);
}

static void through_files(const unsigned char* buf, size_t size, bool full) {
  if (!writer) {
    snprintf(dir, sizeof(dir), "/tmp/mcr-fuzz-snap-%ld", (long)getpid());
    char err[256];
    if (mcr__snapshot_writer_open(&writer, dir, err, sizeof(err)) != 0)
      abort();
    atexit(cleanup);
  }
  uint64_t gen = 1;
  if (size >= 32)
    memcpy(&gen, buf + 24, 8);
  if (gen == 0)
    gen = 1;
  char path[128];
  snprintf(path, sizeof(path), "%s/ring.%" PRIu64, dir, gen);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0640);
  if (fd < 0)
    abort();
  if (size && write(fd, buf, size) != (ssize_t)size)
    abort();
  close(fd);
  mcr__snapshot_writer_store_generation(writer, gen);
  mcr_snapshot_t* s;
  char err[256];
  mcr_snapshot_opts_t so;
  mcr_snapshot_opts_init(&so);
  so.verify = full;
  if (mcr_snapshot_open(&s, dir, &so, err, sizeof(err)) == 0) {
    use_ring(mcr_snapshot_ring(s), full);
    mcr_snapshot_free(s);
    /* A worker's client on the same directory takes its nodes from the
     * ring (connections are lazy: nothing is contacted). */
    mcr_client_opts_t o;
    mcr_client_opts_init(&o);
    o.ring_dir = dir;
    o.ring_verify = full;
    mcr_client_t* c;
    if (mcr_client_new(&c, &o, NULL, 0) == 0) {
      for (size_t i = 0; i < mcr_client_node_count(c); i++) {
        const char* name = mcr_client_node_name(c, i);
        if (!name && full)
          abort(); /* a verified ring has no damaged entry */
        if (name)
          sink ^= (uint8_t)strlen(name);
      }
      mcr_client_free(c);
    }
  }
  unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1)
    return 0;
  uint8_t ctl = data[0];
  fuzz_in_t in = {data + 1, size - 1};
  unsigned char* buf;
  size_t len;
  if (ctl & 4) {
    buf = patched_image(&in, &len);
    if (!buf)
      return 0;
  } else {
    len = in.n;
    buf = malloc(len ? len : 1);
    if (!buf)
      abort();
    memcpy(buf, in.p, len);
  }
  if ((ctl & 1) && len >= 8)
    mcr__snapshot_seal(buf, len);
  if (ctl & 2) {
    through_files(buf, len, (ctl & 8) != 0);
  } else {
    mcr_ring_t* r;
    char err[256];
    if (mcr__snapshot_validate(buf, len, 0, (ctl & 8) != 0, &r, err,
                               sizeof(err)) == 0) {
      use_ring(r, (ctl & 8) != 0);
      mcr_ring_free(r);
    }
  }
  free(buf);
  return 0;
}
