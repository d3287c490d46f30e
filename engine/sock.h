/* Socket and file-descriptor helpers shared by bench.http's native
 * transport, the simulator and process control. */
#ifndef BENCHRUN_SOCK_H
#define BENCHRUN_SOCK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Make fd non-blocking and close-on-exec (every socket and pipe the engine
 * polls). 0, or -1 with errno. */
int br_fd_nonblock(int fd);

/* A new stream socket of that family, non-blocking and close-on-exec: in
 * the socket() call where the platform can (Linux), saving three fcntl
 * calls per connection. The descriptor, or -1 with errno. */
int br_socket_stream(int family);

/* Make room for n open files in this process's file table now, so that
 * opening the n-th socket later costs what opening the first did. Linux
 * grows the table on demand (64, 256, 512, ... slots), and when the
 * process has threads (curl's resolver, the samplers) each growth waits
 * for an RCU grace period: 10-30 ms on a VM, in the middle of whichever
 * request opened the socket that crossed the boundary (measured: one
 * request in 64 sent 17 ms late, counted as the client's send delay).
 * Best effort: nothing is reported when it cannot. */
void br_fd_reserve(int n);

/* Ask the kernel to stamp what arrives on fd (see br_recv_stamped). */
void br_sock_stamp_arrivals(int fd);

/* recv() into buf; *at gets when the kernel received what was read (its
 * stamp, moved to br_now()'s clock) where it gave one, else `fallback`. A
 * stamp is a true arrival time even when the loop reaches the socket late:
 * after other ready events, or a slow Lua callback. Returns as recv(). */
ssize_t br_recv_stamped(int fd, void *buf, size_t len, int64_t fallback, int64_t *at);

#endif
