/* hostile.c — the agent's host stats socket as any member of the workers'
 * group can use it, for tests that play a hostile worker.
 *
 * It speaks lib/hoststats.h's protocol by hand, so a test can hand the
 * agent what the library never would (unsealed or odd-sized segments,
 * counts past the end, silence). Nothing here asserts: these run in
 * processes that switched users, whose failures are their exit status.
 */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "hoststats.h"
#include "support.h"

int hs_connect(const char* ring_dir) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%.90s/%s", ring_dir,
           MCR__HS_SOCK);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  struct timeval tv = {.tv_sec = 5};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (connect(fd, (struct sockaddr*)&sa, sizeof sa) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

int hs_register(int sock, int segfd, bool wait) {
  mcr__hs_msg_t m = {.kind = MCR__HS_REGISTER};
  memcpy(m.magic, MCR__HS_WIRE_MAGIC, 8);
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } u;
  memset(&u, 0, sizeof u);
  struct iovec iov = {.iov_base = &m, .iov_len = sizeof m};
  struct msghdr mh = {.msg_iov = &iov,
                      .msg_iovlen = 1,
                      .msg_control = u.buf,
                      .msg_controllen = sizeof u.buf};
  struct cmsghdr* cm = CMSG_FIRSTHDR(&mh);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(cm), &segfd, sizeof segfd);
  if (sendmsg(sock, &mh, MSG_NOSIGNAL) != (ssize_t)sizeof m)
    return -1;
  if (!wait)
    return 0;
  mcr__hs_msg_t ack;
  if (recv(sock, &ack, sizeof ack, MSG_WAITALL) != (ssize_t)sizeof ack)
    return -1;
  return (int)ack.status;
}
