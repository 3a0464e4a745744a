/* source_file.c — a node list kept in a file that something else edits.
 *
 * One "host:port[:weight]" entry per line (IPv6 in brackets), '#' starts a
 * comment, blank lines are ignored. Configuration management tools rewrite
 * such files at any time, usually by rename, so the file is re-read only
 * when its identity or shape changed (device, inode, size, mtime with
 * nanoseconds) and the parsed list — or the parse error — is kept for the
 * polls in between: an unchanged broken file is reported, not re-parsed.
 * The list is resolved on every poll because names may move.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"

#define FILE_MAX (16u << 20)

int agent_file_parse(const char* text, size_t len, mcr__nodes_t* out, char* err,
                     size_t errlen) {
  mcr__nodes_clear(out);
  size_t lineno = 0;
  const char* p = text;
  const char* end = text + len;
  while (p < end) {
    lineno++;
    const char* nl = memchr(p, '\n', (size_t)(end - p));
    const char* le = nl ? nl : end;
    const char* hash = memchr(p, '#', (size_t)(le - p));
    const char* ce = hash ? hash : le;
    const char* s = p;
    while (s < ce && (*s == ' ' || *s == '\t' || *s == '\r'))
      s++;
    while (ce > s && (ce[-1] == ' ' || ce[-1] == '\t' || ce[-1] == '\r'))
      ce--;
    if (ce > s) {
      char e[200];
      int rc = mcr__nodes_add_entry(s, (size_t)(ce - s), out, e, sizeof(e));
      if (rc) {
        snprintf(err, errlen, "line %zu: %s", lineno, e);
        return rc == MCR_ENOMEM ? rc : MCR_ESERVERS;
      }
    }
    p = nl ? nl + 1 : end;
  }
  mcr__nodes_sort(out);
  return mcr__nodes_check(out, err, errlen);
}

/* Reads the whole file; *text is malloc'ed (NUL-terminated). */
static int slurp(int fd, size_t size, char** text, size_t* len) {
  char* b = malloc(size + 1);
  if (!b)
    return MCR_ENOMEM;
  size_t got = 0;
  while (got < size) {
    ssize_t n = read(fd, b + got, size - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      free(b);
      return MCR_ESYS;
    }
    if (n == 0)
      break; /* shrank while reading: take what is there */
    got += (size_t)n;
  }
  b[got] = '\0';
  *text = b;
  *len = got;
  return 0;
}

int agent_file_poll(agent_source_t* s, mcr__nodes_t* out, char* err,
                    size_t errlen) {
  mcr__nodes_clear(out);
  int fd = open(s->arg, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    snprintf(err, errlen, "open %s: %s", s->arg, strerror(errno));
    return MCR_ESYS;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
      (uint64_t)st.st_size > FILE_MAX) {
    snprintf(err, errlen, "%s: not a regular file of at most %u bytes", s->arg,
             FILE_MAX);
    close(fd);
    return MCR_ESYS;
  }
  int64_t mtime = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
  bool same = s->file_seen && s->file_dev == st.st_dev &&
              s->file_ino == st.st_ino && s->file_size == st.st_size &&
              s->file_mtime_ns == mtime;
  if (!same) {
    char* text = NULL;
    size_t len = 0;
    int rc = slurp(fd, (size_t)st.st_size, &text, &len);
    if (rc) {
      snprintf(err, errlen, "read %s: %s", s->arg, strerror(errno));
      close(fd);
      return rc;
    }
    s->file_rc = agent_file_parse(text, len, &s->file_nodes, s->file_err,
                                  sizeof(s->file_err));
    free(text);
    s->file_seen = true;
    s->file_dev = st.st_dev;
    s->file_ino = st.st_ino;
    s->file_size = st.st_size;
    s->file_mtime_ns = mtime;
  }
  close(fd);
  if (s->file_rc) {
    snprintf(err, errlen, "%s: %s", s->arg, s->file_err);
    return s->file_rc;
  }
  int rc = mcr__nodes_copy(out, &s->file_nodes);
  if (!rc)
    rc = mcr__nodes_resolve(out, err, errlen);
  if (!rc) /* two names of one address */
    rc = mcr__nodes_check(out, err, errlen);
  return rc;
}
