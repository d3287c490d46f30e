/* Socket helpers shared by bench.http's native transport and the simulator
 * (sock.h). The platform says how its kernel stamps a receive; this file
 * reads the stamp and puts it on the monotonic clock. */
#include "sock.h"

#include "benchrun/loop.h"
#include "platform.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

int br_fd_nonblock(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) return -1;
  return fcntl(fd, F_SETFD, FD_CLOEXEC);
}

int br_socket_stream(int family) {
#if defined(SOCK_NONBLOCK) && defined(SOCK_CLOEXEC)
  return socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
#else
  int fd = socket(family, SOCK_STREAM, 0);
  if (fd >= 0 && br_fd_nonblock(fd) != 0) {
    int err = errno;
    close(fd);
    errno = err;
    return -1;
  }
  return fd;
#endif
}

void br_fd_reserve(int n) {
  if (n < 2) return;
  /* duplicating any open descriptor onto slot n-1 grows the table to hold
   * it; closing it again keeps the table (tables never shrink) */
  int probe = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (probe < 0) return;
  int high = fcntl(probe, F_DUPFD_CLOEXEC, n - 1);
  if (high >= 0) close(high);
  close(probe);
}

void br_sock_stamp_arrivals(int fd) { br_platform_rx_stamp_enable(fd); }

ssize_t br_recv_stamped(int fd, void *buf, size_t len, int64_t fallback, int64_t *at) {
  union { struct cmsghdr align; char b[64]; } ctl;   /* aligned for CMSG_FIRSTHDR */
  struct iovec iov = {buf, len};
  struct msghdr m;
  memset(&m, 0, sizeof m);
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  size_t space = br_platform_rx_stamp_space();
  m.msg_control = ctl.b;
  m.msg_controllen = space <= sizeof ctl.b ? space : 0;
  *at = fallback;
  ssize_t n = recvmsg(fd, &m, 0);
  if (n <= 0 || !m.msg_controllen) return n;
  for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h)) {
    int64_t wall;
    if (!br_platform_rx_stamp_of(h, &wall)) continue;
    /* wall clock to br_now()'s by the two clocks' offset now; a stamp in
     * the future or far in the past (a clock step in between) is not used */
    int64_t mono = br_now();
    int64_t t = wall - (br_platform_wall_ns() - mono);
    if (t <= mono && t > mono - 10 * (int64_t)1000000000) *at = t;
  }
  return n;
}
