/* bench.sys's kernel knobs: sysctl values read and changed with a restore
 * journal (the rest of bench.sys is in sys.c, which says how it works).
 *
 * Every sysctl change is first recorded in a journal on disk
 * ($BENCHRUN_STATE_DIR, else $XDG_STATE_HOME/benchrun, else
 * ~/.local/state/benchrun; file restore.json), then made. The journal is
 * undone by sys.restore_all() (the plan runner calls it at the end, on error
 * and on interrupt), by the module's finalizer when the Lua state closes
 * (normal end, error, SIGINT/SIGTERM/SIGHUP: br_runtime_close), and, for a
 * benchrun that was SIGKILLed, when the next benchrun opens this module
 * (entries whose owner pid is gone).
 *
 * Changes are made directly when benchrun is root (/proc/sys,
 * sysctlbyname), else with `sudo -n sysctl -w name=value`. BENCHRUN_SYSCTL
 * names another sysctl program (used for reads too) and BENCHRUN_SUDO another
 * privilege helper (always used when set): tests put fakes there.
 *
 * The helper programs are run synchronously with a 10 s limit: a sysctl
 * change happens between measurements, sudo -n never prompts, and the same
 * code must work inside finalizers where the loop cannot run. */
#include "benchrun/runtime.h"
#include "platform.h"
#include "class.h"
#include "sysctl.h"

#include <cJSON.h>
#include <lauxlib.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define GUARD_MT "bench.sys.Guard"

/* ---- small helpers ---- */

static int64_t mono_ns(void) { return br_platform_monotonic_ns(); }

static int valid_name(const char *n) {
  if (!*n || strlen(n) > 200 || n[0] == '.' || n[0] == '-' || strstr(n, "..")) return 0;
  for (const char *p = n; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
          *p == '.' || *p == '_' || *p == '-' || *p == '/'))
      return 0;
  return 1;
}

static int valid_value(const char *v) {
  if (strlen(v) > 1000) return 0;
  for (const char *p = v; *p; p++) if (*p == '\n' || *p == '\r' || *p == 0) return 0;
  return 1;
}

/* Resolve a program name against PATH (before fork: execvp may allocate). */
static char *find_program(const char *name) {
  if (strchr(name, '/')) return access(name, X_OK) == 0 ? strdup(name) : NULL;
  const char *path = getenv("PATH");
  if (!path) path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  for (const char *p = path;;) {
    const char *end = strchr(p, ':');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    char *cand = malloc(n + strlen(name) + 2);
    if (!cand) return NULL;
    sprintf(cand, "%.*s/%s", (int)n, n ? p : ".", name);
    struct stat st;
    if (stat(cand, &st) == 0 && S_ISREG(st.st_mode) && access(cand, X_OK) == 0) return cand;
    free(cand);
    if (!end) return NULL;
    p = end + 1;
  }
}

/* Run argv (no shell), output (stdout+stderr) into out, with a time limit.
 * Returns the exit code, 128+signal, or -1 with out saying why. */
static int run_sync(char *const argv[], char *out, size_t outsz, int64_t limit_ns) {
  out[0] = 0;
  char *path = find_program(argv[0]);
  if (!path) {
    snprintf(out, outsz, strchr(argv[0], '/') ? "'%s' does not exist or is not executable" : "'%s' not found in PATH",
             argv[0]);
    return -1;
  }
  int p[2];
  if (pipe(p) != 0) { free(path); snprintf(out, outsz, "pipe: %s", strerror(errno)); return -1; }
  fcntl(p[0], F_SETFD, FD_CLOEXEC);
  pid_t pid = fork();
  if (pid == 0) {
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    dup2(p[1], 1);
    dup2(p[1], 2);
    br_platform_close_fds(-1);
    execve(path, argv, environ);
    _exit(127);
  }
  int fork_errno = errno;
  free(path);
  close(p[1]);
  if (pid < 0) { close(p[0]); snprintf(out, outsz, "fork: %s", strerror(fork_errno)); return -1; }
  size_t len = 0;
  int64_t deadline = mono_ns() + limit_ns;
  int timed_out = 0;
  for (;;) {
    int64_t left = deadline - mono_ns();
    if (left <= 0) { timed_out = 1; break; }
    struct pollfd pfd = {p[0], POLLIN, 0};
    int r = poll(&pfd, 1, (int)(left / 1000000) + 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    char tmp[512];
    ssize_t n = read(p[0], tmp, sizeof tmp);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    size_t k = (size_t)n;
    if (len + k >= outsz) k = outsz - 1 - len;
    memcpy(out + len, tmp, k);
    len += k;
    out[len] = 0;
  }
  close(p[0]);
  if (timed_out) kill(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  while (len > 0 && (out[len - 1] == '\n' || out[len - 1] == ' ')) out[--len] = 0;
  if (timed_out) { snprintf(out, outsz, "'%s' did not finish within 10 s", argv[0]); return -1; }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}

/* ---- reading and writing one sysctl ---- */

/* The program used instead of direct access, or NULL. */
static const char *sysctl_program(void) {
  const char *p = getenv("BENCHRUN_SYSCTL");
  return p && *p ? p : NULL;
}

static int sysctl_read(const char *name, char *buf, size_t size, char *why, size_t whysz) {
  const char *prog = sysctl_program();
  if (!prog) {
    int rc = br_platform_sysctl_read(name, buf, size);
    if (rc == 0) return 0;
    snprintf(why, whysz, "cannot read sysctl %s: %s", name, rc == -ENOENT ? "no such parameter" : strerror(-rc));
    return -1;
  }
  char *argv[] = {(char *)prog, "-n", (char *)name, NULL};
  int rc = run_sync(argv, buf, size, 10 * 1000000000LL);
  if (rc == 0) return 0;
  snprintf(why, whysz, "cannot read sysctl %s: %s", name, buf[0] ? buf : "the sysctl program failed");
  return -1;
}

/* Change name to value: directly as root, else through sudo -n. */
static int sysctl_write(const char *name, const char *value, const char *prog, char *why, size_t whysz) {
  const char *sudo = getenv("BENCHRUN_SUDO");
  int use_sudo = (sudo && *sudo) || geteuid() != 0;
  if (!use_sudo && !prog) {
    int rc = br_platform_sysctl_write(name, value);
    if (rc == 0) return 0;
    snprintf(why, whysz, "cannot set sysctl %s=%s: %s", name, value, strerror(-rc));
    return -1;
  }
  char assign[1300];
  snprintf(assign, sizeof assign, "%s=%s", name, value);
  char *argv[6];
  int n = 0;
  if (use_sudo) {
    argv[n++] = (char *)(sudo && *sudo ? sudo : "sudo");
    argv[n++] = "-n";
  }
  argv[n++] = (char *)(prog ? prog : "sysctl");
  argv[n++] = "-w";
  argv[n++] = assign;
  argv[n] = NULL;
  char out[1024];
  int rc = run_sync(argv, out, sizeof out, 10 * 1000000000LL);
  if (rc == 0) return 0;
  if (rc == -1)   /* the helper could not even run (not installed, timed out) */
    snprintf(why, whysz, "cannot set sysctl %s=%s: %s", name, value, out);
  /* Words, not a kind, and on purpose: `sudo -n` says it refused only in
   * its message (it exits 1, as sysctl may), so the message picks which
   * advice to give; nothing else depends on it (the failure is the same). */
  else if (use_sudo && (strstr(out, "password") || strstr(out, "sudo:")))
    snprintf(why, whysz,
             "cannot set sysctl %s=%s: sudo refused (%s); run `sudo -v` first, allow `sysctl` in sudoers "
             "without a password, or run benchrun as root",
             name, value, out[0] ? out : "no output");
  else
    snprintf(why, whysz, "cannot set sysctl %s=%s: %s", name, value, out[0] ? out : "the sysctl program failed");
  return -1;
}

/* ---- the journal ---- */

static void state_dir(char *buf, size_t size) {
  const char *d = getenv("BENCHRUN_STATE_DIR");
  if (d && *d) { snprintf(buf, size, "%s", d); return; }
  d = getenv("XDG_STATE_HOME");
  if (d && *d) { snprintf(buf, size, "%s/benchrun", d); return; }
  d = getenv("HOME");
  snprintf(buf, size, "%s/.local/state/benchrun", d && *d ? d : "/tmp");
}

static int mkdir_p(const char *dir) {
  char tmp[1024];
  snprintf(tmp, sizeof tmp, "%s", dir);
  for (char *p = tmp + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(tmp, 0700) != 0 && errno != EEXIST) return -1;
    *p = '/';
  }
  return mkdir(tmp, 0700) == 0 || errno == EEXIST ? 0 : -1;
}

typedef struct {
  char dir[1024], path[1100];
  int lockfd;
} journal;

/* This process changed a sysctl (its entries may be in the journal), and
 * how many of them the last restore at the end could not put back. */
static volatile int changed_any;
static int final_unrestored;

/* Lock the journal (other benchruns may share it) and return its entries.
 * A journal that exists but cannot be read (torn, edited, unreadable) is
 * never treated as empty: it may hold the only record of an original
 * value, so it is kept as it is and the caller gets NULL and why. */
static cJSON *journal_open(journal *j, char *why, size_t whysz) {
  state_dir(j->dir, sizeof j->dir);
  snprintf(j->path, sizeof j->path, "%s/restore.json", j->dir);
  j->lockfd = -1;
  if (mkdir_p(j->dir) != 0) {
    snprintf(why, whysz, "cannot create the state folder %s: %s", j->dir, strerror(errno));
    return NULL;
  }
  char lock[1200];
  snprintf(lock, sizeof lock, "%s/restore.lock", j->dir);
  j->lockfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (j->lockfd < 0) {
    snprintf(why, whysz, "cannot open the journal lock %s: %s", lock, strerror(errno));
    return NULL;
  }
  /* one benchrun (or thread: the hard exit path) at a time */
  while (flock(j->lockfd, LOCK_EX) != 0 && errno == EINTR) {}
  cJSON *entries = NULL;
  const char *bad = NULL;
  FILE *f = fopen(j->path, "r");
  if (!f && errno != ENOENT) bad = strerror(errno);
  if (f) {
    char *text = NULL;
    size_t len = 0, cap = 0;
    char tmp[4096];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0) {
      if (len + n + 1 > cap) {
        cap = (len + n + 1) * 2;
        char *t = realloc(text, cap);
        if (!t) break;
        text = t;
      }
      memcpy(text + len, tmp, n);
      len += n;
    }
    if (ferror(f)) bad = "read error";
    fclose(f);
    if (text) text[len] = 0;
    cJSON *doc = text && !bad ? cJSON_Parse(text) : NULL;
    free(text);
    cJSON *e = doc ? cJSON_DetachItemFromObjectCaseSensitive(doc, "entries") : NULL;
    if (cJSON_IsArray(e)) entries = e;
    else {
      cJSON_Delete(e);
      if (!bad) bad = len == 0 ? "it is empty" : "it is not a JSON object with an entries list";
    }
    cJSON_Delete(doc);
  }
  if (bad) {
    snprintf(why, whysz,
             "the sysctl restore journal %s cannot be read (%s); it is kept as it is: it may hold the original "
             "values of sysctls a benchrun changed. Check the values it names (sysctl -n NAME), put back the "
             "\"original\" ones, then remove the file",
             j->path, bad);
    flock(j->lockfd, LOCK_UN);
    close(j->lockfd);
    j->lockfd = -1;
    return NULL;
  }
  if (!entries) entries = cJSON_CreateArray();
  return entries;
}

/* Write atomically (temp + rename; fsync so a crash right after keeps it). */
static int journal_save(journal *j, cJSON *entries, char *why, size_t whysz) {
  if (cJSON_GetArraySize(entries) == 0) {
    if (unlink(j->path) != 0 && errno != ENOENT) {
      snprintf(why, whysz, "cannot remove %s: %s", j->path, strerror(errno));
      return -1;
    }
    return 0;
  }
  cJSON *doc = cJSON_CreateObject();
  cJSON_AddNumberToObject(doc, "version", 1);
  cJSON_AddItemReferenceToObject(doc, "entries", entries);
  char *text = cJSON_Print(doc);
  cJSON_Delete(doc);
  if (!text) { snprintf(why, whysz, "out of memory"); return -1; }
  char tmp[1200];
  snprintf(tmp, sizeof tmp, "%s.tmp.%d", j->path, (int)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  int ok = fd >= 0;
  if (ok) {
    size_t n = strlen(text);
    ok = write(fd, text, n) == (ssize_t)n && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
  }
  free(text);
  if (!ok || rename(tmp, j->path) != 0) {
    snprintf(why, whysz, "cannot write the restore journal %s: %s", j->path, strerror(errno));
    unlink(tmp);
    return -1;
  }
  /* the rename itself must survive a crash too */
  int dfd = open(j->dir, O_RDONLY | O_CLOEXEC);
  if (dfd >= 0) { fsync(dfd); close(dfd); }
  return 0;
}

static void journal_close(journal *j, cJSON *entries) {
  cJSON_Delete(entries);
  if (j->lockfd >= 0) { flock(j->lockfd, LOCK_UN); close(j->lockfd); }
  j->lockfd = -1;
}

static const char *jstr(cJSON *o, const char *k) {
  cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int jint(cJSON *o, const char *k) {
  cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsNumber(v) ? v->valueint : 0;
}

static const char *copy_field(cJSON *o, const char *k, char *buf, size_t size) {
  const char *v = jstr(o, k);
  if (!v) return NULL;
  snprintf(buf, size, "%s", v);
  return buf;
}

/* A journal entry's owner is alive: its pid exists and, where the system
 * tells (Linux /proc/PID/comm), is a benchrun: after a reboot or a long
 * time the pid may belong to anything else, and the entry must not be held
 * forever by a stranger. */
static int owner_alive(int pid) {
  if (pid <= 0) return 0;
  if (pid == (int)getpid()) return 1;
  if (!(kill(pid, 0) == 0 || errno == EPERM)) return 0;
  char path[64], comm[64] = "";
  snprintf(path, sizeof path, "/proc/%d/comm", pid);
  FILE *f = fopen(path, "r");
  if (!f) return 1;   /* no /proc (macOS): the pid is all we know */
  int got = fgets(comm, sizeof comm, f) != NULL;
  fclose(f);
  return !got || strncmp(comm, "benchrun", 8) == 0;
}

/* Entries to undo: mine (mode 0), those of dead owners (mode 1), or both
 * (mode 2). Undone newest first; each undone entry leaves the journal at
 * once, so an interruption midway loses nothing. Pushes (when L) a list of
 * {name, value, ok, error}; returns the number of failures. */
enum { MINE, ORPHANED, ALL };

static int restore(lua_State *L, int mode, int quiet) {
  char why[1400];
  journal j;
  cJSON *entries = journal_open(&j, why, sizeof why);
  if (L) lua_newtable(L);
  if (!entries) {
    /* loud even when quiet: a restore that cannot happen must be seen */
    fprintf(stderr, "benchrun: WARNING: %s\n", why);
    if (L) {
      lua_createtable(L, 0, 2);
      lua_pushboolean(L, 0);
      lua_setfield(L, -2, "ok");
      lua_pushstring(L, why);
      lua_setfield(L, -2, "error");
      lua_rawseti(L, -2, 1);
    }
    return 1;
  }
  int failures = 0, out = 1;
  for (int i = cJSON_GetArraySize(entries) - 1; i >= 0; i--) {
    cJSON *e = cJSON_GetArrayItem(entries, i);
    int pid = jint(e, "pid");
    int mine = pid == (int)getpid();
    int orphan = !owner_alive(pid);
    if (!((mode == MINE && mine) || (mode == ORPHANED && orphan) || (mode == ALL && (mine || orphan)))) continue;
    /* copies: the entry is deleted before the report is built */
    char name_buf[256], orig_buf[1100];
    const char *name = copy_field(e, "name", name_buf, sizeof name_buf);
    const char *orig = copy_field(e, "original", orig_buf, sizeof orig_buf);
    int ok = 0;
    why[0] = 0;
    if (name && orig) {
      /* restore with the program it was changed with */
      ok = sysctl_write(name, orig, jstr(e, "program"), why, sizeof why) == 0;
    } else {
      snprintf(why, sizeof why, "malformed journal entry (dropped)");
    }
    if (ok || !name || !orig) {
      if (!quiet && !mine && ok)
        fprintf(stderr, "benchrun: restored sysctl %s=%s (left changed by benchrun pid %d, which is gone)\n",
                name, orig, pid);
      cJSON_DeleteItemFromArray(entries, i);
      char why2[1400];
      if (journal_save(&j, entries, why2, sizeof why2) != 0 && !quiet) fprintf(stderr, "benchrun: %s\n", why2);
    } else {
      failures++;
      if (!quiet) fprintf(stderr, "benchrun: %s (still in %s)\n", why, j.path);
    }
    if (L) {
      lua_createtable(L, 0, 4);
      if (name) { lua_pushstring(L, name); lua_setfield(L, -2, "name"); }
      if (orig) { lua_pushstring(L, orig); lua_setfield(L, -2, "value"); }
      lua_pushboolean(L, ok);
      lua_setfield(L, -2, "ok");
      if (!ok) { lua_pushstring(L, why); lua_setfield(L, -2, "error"); }
      lua_rawseti(L, -2, out++);
    }
  }
  journal_close(&j, entries);
  return failures;
}

/* ---- Lua functions ---- */

/* sys.sysctl_get(name) -> value (string) | nil, message */
static int l_sysctl_get(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  if (!valid_name(name)) return luaL_argerror(L, 1, lua_pushfstring(L, "'%s' is not a sysctl name", name));
  char buf[1100], why[1400];
  if (sysctl_read(name, buf, sizeof buf, why, sizeof why) != 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "sys.sysctl_get: %s", why);
    return 2;
  }
  lua_pushstring(L, buf);
  return 1;
}

/* A new journal entry: this run changes name from original to value. */
static cJSON *journal_add(cJSON *entries, const char *name, const char *original, const char *value) {
  cJSON *e = cJSON_CreateObject();
  cJSON_AddStringToObject(e, "name", name);
  cJSON_AddStringToObject(e, "original", original);
  cJSON_AddStringToObject(e, "value", value);
  cJSON_AddNumberToObject(e, "pid", (double)getpid());
  cJSON_AddNumberToObject(e, "time", (double)time(NULL));
  if (sysctl_program()) cJSON_AddStringToObject(e, "program", sysctl_program());
  cJSON_AddItemToArray(entries, e);
  return e;
}

/* sys.sysctl_set(name, value) -> previous value | nil, message.
 * Journaled before the change; the first original is kept when a run
 * changes the same name twice. One benchrun owns a name at a time: a name
 * another live benchrun changed is refused (two runs restoring each
 * other's values would leave the wrong one for good), and the entry of a
 * benchrun that is gone is taken over with its original, the true one.
 * The value is read under the journal's lock, so no other benchrun changes
 * it between the read and the journal entry. */
static int l_sysctl_set(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  if (!valid_name(name)) return luaL_argerror(L, 1, lua_pushfstring(L, "'%s' is not a sysctl name", name));
  luaL_checkany(L, 2);
  const char *value = luaL_tolstring(L, 2, NULL);
  if (!valid_value(value)) return luaL_argerror(L, 2, "expected a one-line value");
  char prev[1100], why[1400];
  journal j;
  cJSON *entries = journal_open(&j, why, sizeof why);
  if (!entries) {
    lua_pushnil(L);
    lua_pushfstring(L, "sys.sysctl_set: %s (nothing changed)", why);
    return 2;
  }
  if (sysctl_read(name, prev, sizeof prev, why, sizeof why) != 0) {
    journal_close(&j, entries);
    lua_pushnil(L);
    lua_pushfstring(L, "sys.sysctl_set: %s", why);
    return 2;
  }
  int me = (int)getpid();
  cJSON *e = NULL, *mine = NULL;
  cJSON_ArrayForEach(e, entries) {
    const char *n = jstr(e, "name");
    if (!n || strcmp(n, name) != 0) continue;
    int pid = jint(e, "pid");
    if (pid == me) { mine = e; break; }
    const char *orig = jstr(e, "original");
    if (owner_alive(pid)) {
      char msg[1600];
      snprintf(msg, sizeof msg,
               "sys.sysctl_set: sysctl %s is in use by another benchrun (pid %d changed it from %s to %s; its "
               "journal restores %s when it ends); nothing changed: run one benchrun at a time that changes %s, "
               "or wait for pid %d to end",
               name, pid, orig ? orig : "?", jstr(e, "value") ? jstr(e, "value") : "?", orig ? orig : "?", name, pid);
      journal_close(&j, entries);
      lua_pushnil(L);
      lua_pushstring(L, msg);
      return 2;
    }
    /* its owner is gone: its original is the truth; this run restores it */
    fprintf(stderr, "benchrun: sysctl %s: taking over the journal entry of benchrun pid %d, which is gone "
            "(original %s is kept and will be restored)\n", name, pid, orig ? orig : "?");
    cJSON_ReplaceItemInObjectCaseSensitive(e, "pid", cJSON_CreateNumber((double)me));
    mine = e;
    break;
  }
  cJSON *added = NULL;
  if (!mine) added = journal_add(entries, name, prev, value);
  else cJSON_ReplaceItemInObjectCaseSensitive(mine, "value", cJSON_CreateString(value));
  if (journal_save(&j, entries, why, sizeof why) != 0) {
    journal_close(&j, entries);
    lua_pushnil(L);
    lua_pushfstring(L, "sys.sysctl_set: %s (nothing changed)", why);
    return 2;
  }
  changed_any = 1;
  if (sysctl_write(name, value, sysctl_program(), why, sizeof why) != 0) {
    char why2[1400];
    if (added) {   /* nothing changed: the entry goes */
      cJSON_DeleteItemFromArray(entries, cJSON_GetArraySize(entries) - 1);
      journal_save(&j, entries, why2, sizeof why2);
    }
    journal_close(&j, entries);
    lua_pushnil(L);
    lua_pushfstring(L, "sys.sysctl_set: %s", why);
    return 2;
  }
  journal_close(&j, entries);
  lua_pushstring(L, prev);
  return 1;
}

/* sys.restore_all() -> {{name, value, ok, error}...}: undo this run's
 * changes and those of runs that were killed. */
static int l_restore_all(lua_State *L) {
  restore(L, ALL, 1);
  return 1;
}

/* sys.restore_pending() -> the same, for changes left by runs that are gone */
static int l_restore_pending(lua_State *L) {
  restore(L, ORPHANED, 1);
  return 1;
}

/* sys.journal() -> {{name, original, value, pid, time, alive}...} (read only) */
static int l_journal(lua_State *L) {
  char why[1400];
  journal j;
  cJSON *entries = journal_open(&j, why, sizeof why);
  if (!entries) {
    lua_pushnil(L);
    lua_pushfstring(L, "sys.journal: %s", why);
    return 2;
  }
  lua_newtable(L);
  int i = 1;
  cJSON *e;
  cJSON_ArrayForEach(e, entries) {
    lua_createtable(L, 0, 6);
    const char *k[] = {"name", "original", "value", "program"};
    for (int x = 0; x < 4; x++)
      if (jstr(e, k[x])) { lua_pushstring(L, jstr(e, k[x])); lua_setfield(L, -2, k[x]); }
    lua_pushinteger(L, jint(e, "pid"));
    lua_setfield(L, -2, "pid");
    cJSON *t = cJSON_GetObjectItemCaseSensitive(e, "time");
    if (cJSON_IsNumber(t)) { lua_pushinteger(L, (lua_Integer)t->valuedouble); lua_setfield(L, -2, "time"); }
    lua_pushboolean(L, owner_alive(jint(e, "pid")));
    lua_setfield(L, -2, "alive");
    lua_rawseti(L, -2, i++);
  }
  journal_close(&j, entries);
  lua_pushstring(L, j.path);
  return 2;
}

/* sys.state_dir() -> the folder of the restore journal */
static int l_state_dir(lua_State *L) {
  char d[1024];
  state_dir(d, sizeof d);
  lua_pushstring(L, d);
  return 1;
}

/* Undo this process's changes, without Lua: the guard's finalizer, and the
 * hard exit path of a second signal (a thread of its own). Returns the
 * number of values that could not be put back (they stay journaled). */
int br_sys_restore_mine(void) {
  if (!changed_any) return 0;
  final_unrestored = restore(NULL, MINE, 0);
  return final_unrestored;
}

int br_sys_unrestored(void) { return final_unrestored; }

/* The guard's finalizer runs when the state closes: whatever this process
 * changed is put back, whatever the reason for closing. */
static int guard_gc(lua_State *L) {
  (void)L;
  br_sys_restore_mine();
  return 0;
}

/* Add the sysctl functions to the module table at the top (bench.sys's
 * luaopen), undo what a killed benchrun left changed, and tie the restore
 * of this process's changes to the state's end (the guard). */
void br_sysctl_open(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"sysctl_get", l_sysctl_get}, {"sysctl_set", l_sysctl_set},
    {"restore_all", l_restore_all}, {"restore_pending", l_restore_pending}, {"journal", l_journal},
    {"state_dir", l_state_dir}, {NULL, NULL}};
  /* A benchrun killed with changes in effect: undo them now. Quick when
   * there is no journal (one failed open). */
  char d[1024], p[1100];
  state_dir(d, sizeof d);
  snprintf(p, sizeof p, "%s/restore.json", d);
  if (access(p, F_OK) == 0) restore(NULL, ORPHANED, 0);
  luaL_setfuncs(L, funcs, 0);
  lua_newuserdatauv(L, 1, 0);
  br_class(L, GUARD_MT, (const luaL_Reg[]){{"__gc", guard_gc}, {NULL, NULL}}, NULL);
  lua_setmetatable(L, -2);
  lua_setfield(L, -2, "_guard");   /* lives as long as the module table */
}
