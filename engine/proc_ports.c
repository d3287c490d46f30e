/* bench.proc and the server's port (proc.h): proc.probe_port (a TCP connect
 * on the loop), proc.free_port, and who listens on a port
 * (proc.port_owners, proc.process_info), which the port checks of
 * scripts/bench/proc/servers.lua read. */
#include "proc.h"
#include "platform.h"
#include "class.h"
#include "sock.h"
#include "benchrun/sched.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- the port probe (proc.probe_port; proc.wait_ready is Lua, in
 * scripts/bench/proc/ready.lua, and asks HTTP through bench.http) ---- */

typedef struct {
  br_wait w;
  br_io io;
  br_timer timer;
  br_loop *loop;
  int fd;
  int timed_out;
  int err;
} probe;

static void probe_finish(probe *p) {
  br_io_stop(p->loop, &p->io);
  br_timer_stop(p->loop, &p->timer);
  br_wait_done(&p->w);
}

/* writable: the connect finished, one way or the other */
static void probe_io(br_loop *loop, br_io *io, int events) {
  probe *p = io->data;
  int e = 0;
  socklen_t len = sizeof e;
  getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &e, &len);
  p->err = e;
  probe_finish(p);
}

static void probe_timeout(br_loop *loop, br_timer *t) {
  probe *p = t->data;
  p->timed_out = 1;
  br_io_stop(loop, &p->io);
  br_wait_done(&p->w);
}

static void probe_cancel(br_wait *w) {
  probe *p = (probe *)w;
  br_io_stop(p->loop, &p->io);
  br_timer_stop(p->loop, &p->timer);
}

static int probe_gc(lua_State *L) {
  probe *p = lua_touserdata(L, 1);
  if (p->fd >= 0) { close(p->fd); p->fd = -1; }
  return 0;
}

static int probe_k(lua_State *L, int status, lua_KContext ctx) {
  probe *p = (probe *)ctx;
  if (br_wait_cancelled(&p->w)) return br_wait_raise(L, &p->w);
  if (p->timed_out) { lua_pushnil(L); lua_pushliteral(L, "timed out"); return 2; }
  if (p->err) { lua_pushnil(L); lua_pushstring(L, strerror(p->err)); return 2; }
  lua_pushboolean(L, 1);
  return 1;
}

/* proc.probe_port(port[, host = "127.0.0.1"[, timeout = 1]]) -> true | nil, message */
int proc_probe_port(lua_State *L) {
  lua_Integer port = luaL_checkinteger(L, 1);
  luaL_argcheck(L, port > 0 && port < 65536, 1, "expected a port 1..65535");
  const char *host = luaL_optstring(L, 2, "127.0.0.1");
  lua_Number timeout = luaL_optnumber(L, 3, 1);
  char ps[16];
  snprintf(ps, sizeof ps, "%d", (int)port);
  probe *p = lua_newuserdatauv(L, sizeof *p, 0);
  memset(p, 0, sizeof *p);
  p->fd = -1;
  br_class(L, PROBE_MT, (const luaL_Reg[]){{"__gc", probe_gc}, {NULL, NULL}}, NULL);
  lua_setmetatable(L, -2);
  p->loop = br_sched_loop(L);
  struct addrinfo hints, *ai = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  /* localhost and literal addresses resolve without the network */
  int gai = getaddrinfo(host, ps, &hints, &ai);
  if (gai != 0 || !ai) {
    lua_pushnil(L);
    lua_pushfstring(L, "cannot resolve '%s': %s", host, gai_strerror(gai));
    return 2;
  }
  p->fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
  if (p->fd < 0) {
    freeaddrinfo(ai);
    lua_pushnil(L);
    lua_pushstring(L, strerror(errno));
    return 2;
  }
  br_fd_nonblock(p->fd);
  int rc = connect(p->fd, ai->ai_addr, ai->ai_addrlen);
  freeaddrinfo(ai);
  if (rc != 0 && errno != EINPROGRESS) {
    lua_pushnil(L);
    lua_pushstring(L, strerror(errno));
    return 2;
  }
  br_wait_init(&p->w, L);
  p->w.cancel = probe_cancel;
  br_io_start(p->loop, &p->io, p->fd, BR_WRITE, probe_io, p);
  br_timer_start(p->loop, &p->timer, br_now() + (int64_t)(timeout * 1e9), probe_timeout, p);
  return br_await(L, &p->w, (lua_KContext)p, probe_k);
}

/* proc.free_port([host]) -> a port the kernel says is free now */
int proc_free_port(lua_State *L) {
  const char *host = luaL_optstring(L, 1, "127.0.0.1");
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1) return luaL_argerror(L, 1, "expected an IPv4 address");
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) { lua_pushnil(L); lua_pushstring(L, strerror(errno)); return 2; }
  socklen_t len = sizeof a;
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
    int e = errno;
    close(fd);
    lua_pushnil(L);
    lua_pushstring(L, strerror(e));
    return 2;
  }
  close(fd);
  lua_pushinteger(L, ntohs(a.sin_port));
  return 1;
}

/* ---- who listens on a port ---- */

/* Push {pid, ppid, pgid, command} of pid; 0 (nothing pushed) when it is gone. */
static int push_process_info(lua_State *L, int pid) {
  int ppid = 0, pgid = 0;
  char cmd[1024];
  if (br_platform_proc_info(pid, &ppid, &pgid, cmd, sizeof cmd) != 0) return 0;
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, pid);
  lua_setfield(L, -2, "pid");
  lua_pushinteger(L, ppid);
  lua_setfield(L, -2, "ppid");
  lua_pushinteger(L, pgid);
  lua_setfield(L, -2, "pgid");
  lua_pushstring(L, cmd);
  lua_setfield(L, -2, "command");
  return 1;
}

/* proc.process_info(pid) -> {pid, ppid, pgid, command} | nil, message */
int proc_process_info(lua_State *L) {
  lua_Integer pid = luaL_checkinteger(L, 1);
  luaL_argcheck(L, pid > 0 && pid <= 0x7fffffff, 1, "expected a pid > 0");
  if (push_process_info(L, (int)pid)) return 1;
  lua_pushnil(L);
  lua_pushfstring(L, "proc.process_info: no process with pid %d (or it cannot be read)", (int)pid);
  return 2;
}

/* proc.port_owners(port) -> {owners = {{pid, ppid, pgid, command}...},
 * unowned = n} | nil, message where the platform cannot tell. */
int proc_port_owners(lua_State *L) {
  lua_Integer port = luaL_checkinteger(L, 1);
  luaL_argcheck(L, port > 0 && port < 65536, 1, "expected a port 1..65535");
  int pids[64], unowned = 0;
  int n = br_platform_port_listeners((int)port, pids, 64, &unowned);
  if (n < 0) {
    lua_pushnil(L);
    lua_pushliteral(L, "proc.port_owners: this platform cannot tell which process listens on a port");
    return 2;
  }
  lua_createtable(L, 0, 2);
  lua_createtable(L, n, 0);
  int k = 1;
  for (int i = 0; i < n; i++)
    if (push_process_info(L, pids[i])) lua_rawseti(L, -2, k++);   /* a pid gone meanwhile is skipped */
  lua_setfield(L, -2, "owners");
  lua_pushinteger(L, unowned);
  lua_setfield(L, -2, "unowned");
  return 1;
}
