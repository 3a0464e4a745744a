/* ringdir.c — whether a ring directory can be trusted, opening it, and
 * walking its entries (the agent's clean-ups).
 *
 * Every worker follows whatever ring its ring directory holds, so the
 * directory decides where keys (and their values) are sent. The files in
 * it are checked one by one (owner, mode, no symlink: snapshot.c), but by
 * default their expected owner is whoever owns the directory itself. That
 * is only sound when nobody but that owner (or root) could have created
 * the directory: in a parent like /tmp or /dev/shm, a local user can make
 * the directory first, run an agent of their own in it, and every worker
 * then sends its keys to their server (while the real agent fails with
 * EACCES). So unless the caller names the expected owner explicitly
 * (ring_owner_uid, `mcring --ring-owner`), a ring directory is refused
 * when:
 *   - it is a symlink (the agent never follows one either);
 *   - it is writable by others;
 *   - its parent is not owned by root or by the directory's owner, or is
 *     writable by group or others, sticky or not (a squatter creates the
 *     directory before the agent does);
 *   - a directory further up is not owned by root or that owner, or is
 *     writable by group or others without the sticky bit (its entries,
 *     the parent included, could then be renamed away and replaced).
 * The parents are found through "..", so a symlink higher up in the path
 * (/var/run -> /run) is judged by where it leads. The checks cost a few
 * fstat calls once per handle, never per operation.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

/* Deepest directory chain looked at; deeper ones are refused. */
#define MAX_DEPTH 64

int mcr__ringdir_open(const char* dir, long expected_uid, uid_t* owner,
                      char* err, size_t errlen) {
  struct stat st;
  if (lstat(dir, &st) == 0 && S_ISLNK(st.st_mode)) {
    snprintf(err, errlen, "%s is a symlink: refused", dir);
    return MCR_EPERM;
  }
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 || fstat(fd, &st) != 0) {
    int e = errno;
    snprintf(err, errlen, "%s: %s", dir,
             e == ELOOP ? "is a symlink: refused" : strerror(e));
    if (fd >= 0)
      close(fd);
    return e == ENOENT ? MCR_ESNAPSHOT : e == ELOOP ? MCR_EPERM : MCR_ESYS;
  }
  if (st.st_mode & S_IWOTH) {
    snprintf(err, errlen, "%s is world-writable: refused", dir);
    close(fd);
    return MCR_EPERM;
  }
  *owner = expected_uid >= 0 ? (uid_t)expected_uid : st.st_uid;
  if (expected_uid >= 0)
    return fd; /* the caller named the owner: files are checked against it */

  /* Walk up through "..", holding each level open so that what is checked
   * is what the next ".." is taken from. */
  uid_t dir_owner = st.st_uid;
  int cur = fd, rc = 0;
  struct stat child = st;
  for (int depth = 0; depth < MAX_DEPTH; depth++) {
    int up = openat(cur, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct stat pst;
    if (up < 0 || fstat(up, &pst) != 0) {
      snprintf(err, errlen, "%s: a parent directory: %s", dir, strerror(errno));
      rc = MCR_ESYS;
      if (up >= 0)
        close(up);
      break;
    }
    if (cur != fd)
      close(cur);
    cur = up;
    bool root = pst.st_dev == child.st_dev && pst.st_ino == child.st_ino;
    bool owner_ok = pst.st_uid == 0 || pst.st_uid == dir_owner;
    bool writable = pst.st_mode & (S_IWGRP | S_IWOTH);
    if (!owner_ok || (writable && (depth == 0 || !(pst.st_mode & S_ISVTX)))) {
      snprintf(err, errlen,
               "%s: %s (uid %u, mode %04o) lets another user create "
               "or replace the ring directory; move it under a directory "
               "only root can write (for example /run/mcring), or name the "
               "agent's user as the expected owner (ring_owner_uid, "
               "--ring-owner)",
               dir, depth == 0 ? "its parent" : "a directory above it",
               (unsigned)pst.st_uid, (unsigned)(pst.st_mode & 07777));
      rc = MCR_EPERM;
      break;
    }
    if (root)
      break;
    child = pst;
    if (depth == MAX_DEPTH - 1) {
      snprintf(err, errlen, "%s: more than %d directories deep", dir,
               MAX_DEPTH);
      rc = MCR_EPERM;
    }
  }
  if (cur != fd)
    close(cur);
  if (rc) {
    close(fd);
    return rc;
  }
  return fd;
}

void mcr__ringdir_walk(int dirfd, void (*fn)(int, const char*, void*),
                       void* arg) {
  int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return;
  DIR* d = fdopendir(fd);
  if (!d) {
    close(fd);
    return;
  }
  struct dirent* de;
  while ((de = readdir(d)) != NULL)
    if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
      fn(dirfd, de->d_name, arg);
  closedir(d);
}
