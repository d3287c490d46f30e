/* benchrun sim: a simulated OpenAI-compatible LLM server (issue 3).
 *
 * One thread, the engine's event loop (br_io / br_timer), no Lua. Each
 * connection carries at most one request at a time; a generation request
 * either holds one of --slots batch slots or waits in one FIFO queue. A
 * sequence in a slot first "prefills" (prompt_tokens / prefill rate), then
 * emits one token per event at its decode rate, which falls as the batch
 * grows. Every event is stamped with br_now() just before the write that
 * carries it ("sim_ns"), so a client on the same host can check its own
 * timestamps against ground truth. When several events of one stream are due
 * at once (decode rate 0, or a late tick) they leave in one write.
 *
 * The wire formats of the dialects and the exact timing model are described
 * in docs/sim.md; keep the two in step. */
#include "benchrun/loop.h"
#include "benchrun/runtime.h"
#include "platform.h"
#include "sock.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

enum { EXIT_USAGE = 2 };

/* ------------------------------------------------------------------ */
/* configuration                                                        */

enum dialect { D_OPENAI, D_LLAMA, D_LMSTUDIO, D_OLLAMA };
enum reasoning { R_NONE, R_FIELD, R_THINK };
enum fault {
  F_NONE, F_REFUSE, F_HTTP500, F_HTTP503, F_STALL_FIRST, F_STALL_MID, F_DROP, F_BAD_JSON,
  F_CONTENT_TYPE, F_HUGE_EVENT, F_ENDLESS_LINE, F_CRASH, F_COUNT
};
static const char *const fault_names[F_COUNT] = {
  "none", "refuse", "http500", "http503", "stall-first-byte", "stall-mid", "drop", "bad-json",
  "content-type", "huge-event", "endless-line", "crash"
};

enum { MAX_MODELS = 32, MAX_SPEEDUPS = 16, MAX_STOPS = 4 };

typedef struct {
  const char *host;
  int port;
  const char *port_file;
  int reuse_port;            /* SO_REUSEPORT, as llama-server binds */
  const char *oom_record;    /* the simulated kernel's OOM record goes here */
  int dialect;
  const char *models[MAX_MODELS];
  int nmodels;
  int strict_models;
  int64_t load_ns;
  uint64_t model_memory;
  double prefill_tps, decode_tps;
  int slots;
  double batch_slowdown;
  long max_queue;            /* -1: unlimited */
  int queue_status;          /* 503 or 429 */
  double jitter;
  uint64_t seed;
  int reasoning;
  int reasoning_tokens;
  int output_tokens;         /* answer length when a request sets no max_tokens */
  int ctx_size;
  double speedup;            /* product of the --speedup-env factors that apply */
  double fault_prob[F_COUNT];
  long crash_after;          /* -1: never */
  uint64_t oom_at;           /* 0: never */
  uint64_t kv_bytes_per_token;
  int64_t header_timeout_ns, idle_timeout_ns;
  size_t max_body, max_head;
  size_t huge_event_bytes;
} sim_cfg;

/* ------------------------------------------------------------------ */
/* growable byte buffers (out of memory aborts: nothing sane to do)      */

typedef struct { char *p; size_t len, cap; } sbuf;

static void sb_grow(sbuf *b, size_t need) {
  size_t cap = b->cap ? b->cap : 256;
  while (cap < need) cap *= 2;
  char *p = realloc(b->p, cap);
  if (!p) abort();
  b->p = p;
  b->cap = cap;
}
static inline void sb_mem(sbuf *b, const void *s, size_t n) {
  if (n == 0) return;
  if (b->len + n > b->cap) sb_grow(b, b->len + n);
  memcpy(b->p + b->len, s, n);
  b->len += n;
}
#define SB_LIT(b, s) sb_mem((b), "" s, sizeof(s) - 1)   /* literals only */
static inline void sb_str(sbuf *b, const char *s) { sb_mem(b, s, strlen(s)); }
static inline void sb_u64(sbuf *b, uint64_t v) {
  char tmp[24];
  int i = 24;
  do { tmp[--i] = (char)('0' + v % 10); v /= 10; } while (v);
  sb_mem(b, tmp + i, (size_t)(24 - i));
}
static inline void sb_i64(sbuf *b, int64_t v) {
  if (v < 0) { SB_LIT(b, "-"); sb_u64(b, (uint64_t)(-(v + 1)) + 1); }
  else sb_u64(b, (uint64_t)v);
}
static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char tmp[512];
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n < sizeof tmp) { sb_mem(b, tmp, (size_t)n); return; }
  if (b->len + (size_t)n + 1 > b->cap) sb_grow(b, b->len + (size_t)n + 1);
  va_start(ap, fmt);
  vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}
/* A double as JSON (finite only; the sim never produces others). */
static void sb_double(sbuf *b, double v) {
  if (!isfinite(v)) v = 0;
  char tmp[40];
  for (int prec = 15; prec <= 17; prec++) {   /* shortest text that reads back exactly */
    snprintf(tmp, sizeof tmp, "%.*g", prec, v);
    if (strtod(tmp, NULL) == v) break;
  }
  if (!strpbrk(tmp, ".eEn")) strcat(tmp, ".0");
  sb_str(b, tmp);
}
/* JSON string contents (no quotes), escaped. */
static void sb_json_esc(sbuf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  size_t start = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch >= 0x20 && ch != '"' && ch != '\\') continue;
    sb_mem(b, s + start, i - start);
    switch (ch) {
    case '"': SB_LIT(b, "\\\""); break;
    case '\\': SB_LIT(b, "\\\\"); break;
    case '\n': SB_LIT(b, "\\n"); break;
    case '\r': SB_LIT(b, "\\r"); break;
    case '\t': SB_LIT(b, "\\t"); break;
    default: {
      char u[6] = {'\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15]};
      sb_mem(b, u, 6);
    }
    }
    start = i + 1;
  }
  sb_mem(b, s + start, n - start);
}
static void sb_free(sbuf *b) { free(b->p); b->p = NULL; b->len = b->cap = 0; }

/* ------------------------------------------------------------------ */
/* deterministic text                                                  */

static uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
static double rng_unit(uint64_t *s) { return (double)(splitmix(s) >> 11) / 9007199254740992.0; }
static uint64_t fnv1a(const char *s, size_t n, uint64_t h) {
  for (size_t i = 0; i < n; i++) { h ^= (unsigned char)s[i]; h *= 0x100000001b3ULL; }
  return h;
}

/* 64 words; each output token is " " + one of them (ASCII: no escaping on
 * the per-token path). */
static const char *const words[64] = {
  "the", "model", "answers", "with", "simulated", "tokens", "that", "arrive", "at", "a",
  "steady", "rate", "while", "batching", "changes", "speed", "of", "each", "sequence", "and",
  "queue", "waits", "for", "free", "slots", "prompt", "prefill", "takes", "time", "before",
  "first", "token", "decode", "continues", "until", "limit", "is", "reached", "memory", "grows",
  "as", "cache", "fills", "server", "reports", "usage", "numbers", "clients", "measure", "latency",
  "throughput", "in", "benchmarks", "on", "loopback", "so", "every", "event", "carries", "its",
  "send", "clock", "value", "exactly"
};
static unsigned char word_len[64];

/* ------------------------------------------------------------------ */
/* server state                                                        */

enum conn_state {
  CS_HEAD,       /* reading the request head */
  CS_BODY,       /* reading the body */
  CS_QUEUED,     /* waiting for a slot (or for the model to load) */
  CS_ACTIVE,     /* holds a slot: prefill or decode */
  CS_STALLED,    /* a stall fault: send nothing more, keep the socket */
  CS_ENDLESS,    /* the endless-line fault */
  CS_DRAIN,      /* response done; write what is left, then close */
  CS_LINGER      /* our side shut down; discard input until EOF, then close */
};

enum endpoint {
  EP_NONE, EP_CHAT, EP_COMPL, EP_LLAMA_COMPL, EP_LMS_CHAT, EP_LMS_COMPL, EP_OLLAMA_CHAT, EP_OLLAMA_GEN
};

typedef struct conn conn;
struct conn {
  int fd;
  br_io io;
  br_timer tmo;          /* header / idle timeout */
  br_timer tick;         /* next token due / burst continuation */
  conn *prev, *next;     /* all connections */
  conn *qprev, *qnext;   /* the wait queue */
  int state;
  int in_queue;
  int in_slot;
  int want_write;        /* BR_WRITE registered */
  int close_after_write;
  int resume_on_drain;   /* generation paused for output backpressure */
  sbuf in;
  size_t head_len, body_len;
  sbuf out;
  size_t out_off;
  /* the request */
  int http10, keepalive, chunked;
  int ep;
  int stream, include_usage;
  int fault;
  int target;            /* tokens to produce */
  int reasoning_n;       /* of which the first reasoning_n are reasoning */
  int max_tokens_set;
  int emitted;
  int fault_at;
  int fault_done;
  int finished;          /* the finish_reason: 0 none yet, 1 length, 2 stop */
  int fin_sent;          /* a token event already carried the finish_reason */
  time_t created;
  int think;             /* R_* for this request */
  int load_only;         /* Ollama /api/generate without a prompt: 1 load, 2 unload */
  int prompt_tokens;
  int n_stops;
  char *stops[MAX_STOPS];
  sbuf tail;             /* recent output, for stop strings */
  sbuf text, rtext;      /* full answer (non-streaming) */
  sbuf model;            /* JSON-escaped model name */
  sbuf prompt_echo;      /* llama.cpp /completion echoes its prompt (escaped) */
  char id[40];
  uint64_t rng;
  uint64_t req_id;
  long seed_field;
  int64_t t_arrive, t_slot, t_first, t_last, next_due, waited_load_ns;
  int64_t t_read;        /* when the bytes of the last read arrived (the kernel's stamp) */
  size_t endless_sent;
};

typedef struct {
  sim_cfg cfg;
  br_loop *loop;
  int lfd;
  br_io lio;
  br_timer accept_retry;
  br_timer load_timer;
  conn *conns;
  conn *qhead, *qtail;
  long qlen;
  int active;
  int loaded;
  int64_t t_start, t_loaded;
  char *mem;
  uint64_t mem_touched;
  char *kv_mem;               /* KV-cache memory: touched up to its high-water mark */
  uint64_t kv_cap, kv_touched;
  int64_t kv_tokens;          /* prompt + generated tokens of the sequences in slots */
  uint64_t next_req_id;
  uint64_t gen_requests;      /* generation requests started (for --crash-after) */
  long nconns;
  uint64_t rng;
  /* counters for /metrics */
  uint64_t c_requests, c_success, c_errors, c_prompt_tokens, c_gen_tokens, c_events, c_writes;
  uint64_t c_rejected;
  double c_prompt_seconds, c_gen_seconds;
  uint64_t late_buckets[11];
  double late_sum;
  uint64_t late_count;
  sbuf scratch;
  time_t start_wall;
} sim_t;

static sim_t G;
static volatile sig_atomic_t stop_signal;

static const int64_t late_bounds_ns[10] = {
  50000, 100000, 250000, 500000, 1000000, 2000000, 5000000, 10000000, 50000000, 1000000000
};

static void conn_close(conn *c);
static void conn_linger(conn *c);
static void tmo_cb(br_loop *loop, br_timer *t);
static int conn_flush(conn *c);
static int conn_begin_next(conn *c);
static void gen_step(conn *c);
static void admit_queued(void);
static void answer_load_waiters(void);
static void tick_cb(br_loop *loop, br_timer *t);

/* ------------------------------------------------------------------ */
/* parsing flag values                                                 */

static int parse_duration(const char *s, int64_t *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || errno || v < 0 || !isfinite(v)) return -1;
  double mult;
  if (!strcmp(end, "ns")) mult = 1;
  else if (!strcmp(end, "us")) mult = 1e3;
  else if (!strcmp(end, "ms")) mult = 1e6;
  else if (!strcmp(end, "s") || !*end) mult = 1e9;
  else if (!strcmp(end, "m")) mult = 60e9;
  else if (!strcmp(end, "h")) mult = 3600e9;
  else return -1;
  double ns = v * mult;
  if (ns > 9e18) return -1;
  *out = (int64_t)llround(ns);
  return 0;
}

static int parse_size(const char *s, uint64_t *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || errno || v < 0 || !isfinite(v)) return -1;
  static const struct { const char *suf; double mult; } units[] = {
    {"", 1}, {"B", 1}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
    {"K", 1024.0}, {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0},
    {"TiB", 1099511627776.0}, {"k", 1e3}, {"M", 1048576.0}, {"G", 1073741824.0},
  };
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
    if (!strcmp(end, units[i].suf)) {
      double b = v * units[i].mult;
      if (b > 1.8e19) return -1;
      *out = (uint64_t)b;
      return 0;
    }
  }
  return -1;
}

static int parse_long(const char *s, long lo, long hi, long *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (end == s || *end || errno || v < lo || v > hi) return -1;
  *out = v;
  return 0;
}

static int parse_double(const char *s, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || *end || errno || !isfinite(v) || v < lo || v > hi) return -1;
  *out = v;
  return 0;
}

static int find_fault(const char *s, size_t n) {
  for (int i = 1; i < F_COUNT; i++)
    if (strlen(fault_names[i]) == n && !strncasecmp(fault_names[i], s, n)) return i;
  return F_NONE;
}

static const char *const sim_help =
  "usage: benchrun sim [options]\n"
  "\n"
  "A simulated OpenAI-compatible LLM server (see docs/sim.md).\n"
  "\n"
  "  --host ADDR            listen address (default 127.0.0.1)\n"
  "  --port N               port, 0 = any free port (default 8080)\n"
  "  --port-file PATH       write the port number there once listening\n"
  "  --dialect D            openai | llama.cpp | lmstudio | ollama (default openai)\n"
  "  --model NAME           a served model (repeatable; default sim-model)\n"
  "  --strict-models        unknown model names get 404 (default: echo any name)\n"
  "  --load-time DUR        'loading' for this long after start (default 0s)\n"
  "  --model-memory SIZE    touch this much memory while loading (default 0)\n"
  "  --prefill-tps N        prompt tokens per second (default 2000)\n"
  "  --decode-tps N         tokens per second per sequence; 0 = as fast as possible (default 50)\n"
  "  --slots N              sequences decoded at once (default 4)\n"
  "  --batch-slowdown K     rate = decode_tps / (1 + K*(active-1)) (default 0.05)\n"
  "  --max-queue N          queued requests beyond this are rejected (default unlimited)\n"
  "  --queue-status 503|429 status of that rejection (default 503)\n"
  "  --jitter F             each interval times 1 +- F, uniform (default 0)\n"
  "  --seed N               seed of texts, jitter and faults (default 1)\n"
  "  --reasoning MODE       none | field | think (default none)\n"
  "  --reasoning-tokens N   reasoning tokens before the answer (default 32 when on)\n"
  "  --output-tokens N      answer length when a request sets no max_tokens (default 128)\n"
  "  --ctx-size N           context per slot, for KV-cache use (default 4096)\n"
  "  --speedup-env NAME=F   if env NAME is set, not empty and not \"0\": rates times F (repeatable)\n"
  "  --fault KIND[:P]       inject a fault into each request with probability P (default 1)\n"
  "                         refuse http500 http503 stall-first-byte stall-mid drop bad-json\n"
  "                         content-type huge-event endless-line crash; per request also the\n"
  "                         header X-Sim-Fault: KIND or the body field \"sim_fault\": \"KIND\"\n"
  "  --crash-after N        crash (abort, SIGABRT) when generation request N+1 arrives\n"
  "  --kv-bytes-per-token SIZE  touch this much memory per token in the slots (default 0)\n"
  "  --oom-at-memory SIZE   SIGKILL itself when touched memory would exceed SIZE\n"
  "  --oom-record FILE      before that SIGKILL, write the simulated kernel's OOM record\n"
  "                         (one JSON line: pid, needed and limit bytes) to FILE\n"
  "  --reuse-port           bind with SO_REUSEPORT, as llama-server does\n"
  "  --header-timeout DUR   request head and body must arrive within this (default 10s)\n"
  "  --idle-timeout DUR     close idle keep-alive connections after this (default 60s)\n"
  "  --max-body SIZE        larger request bodies get 413 (default 8MiB)\n"
  "  --huge-event SIZE      size of the huge-event fault's event (default 4MiB)\n"
  "\n"
  "Durations: 100ms, 2s, 1.5m, 1h. Sizes: 512MiB, 2GiB, 100MB, bytes.\n"
  "SIGTERM or SIGINT: clean shutdown, exit 0. Bad options: exit 2.\n";

static int bad_flag(const char *flag, const char *why, const char *val) {
  if (val) fprintf(stderr, "benchrun sim: %s: %s, got '%s'\n", flag, why, val);
  else fprintf(stderr, "benchrun sim: %s: %s\n", flag, why);
  return EXIT_USAGE;
}

/* Parse argv into G.cfg. Returns -1 to go on, else an exit status. */
static int parse_args(int argc, char **argv) {
  sim_cfg *c = &G.cfg;
  c->host = "127.0.0.1";
  c->port = 8080;
  c->dialect = D_OPENAI;
  c->prefill_tps = 2000;
  c->decode_tps = 50;
  c->slots = 4;
  c->batch_slowdown = 0.05;
  c->max_queue = -1;
  c->queue_status = 503;
  c->seed = 1;
  c->reasoning_tokens = -1;
  c->output_tokens = 128;
  c->ctx_size = 4096;
  c->speedup = 1;
  c->crash_after = -1;
  c->header_timeout_ns = 10000000000LL;
  c->idle_timeout_ns = 60000000000LL;
  c->max_body = 8u << 20;
  c->max_head = 16u << 10;
  c->huge_event_bytes = 4u << 20;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) { fputs(sim_help, stdout); return 0; }
    if (!strcmp(a, "--strict-models")) { c->strict_models = 1; continue; }
    if (!strcmp(a, "--reuse-port")) { c->reuse_port = 1; continue; }
    if (strncmp(a, "--", 2) != 0) return bad_flag(a, "unexpected argument (options start with --)", NULL);
    const char *v;
    char flagbuf[64];
    const char *eq = strchr(a, '=');
    const char *flag = a;
    if (eq && (size_t)(eq - a) < sizeof flagbuf) {
      memcpy(flagbuf, a, (size_t)(eq - a));
      flagbuf[eq - a] = 0;
      flag = flagbuf;
      v = eq + 1;
    } else {
      if (i + 1 >= argc) return bad_flag(a, "missing value", NULL);
      v = argv[++i];
    }
    long l;
    double d;
    int64_t ns;
    uint64_t sz;
    if (!strcmp(flag, "--host")) c->host = v;
    else if (!strcmp(flag, "--port")) {
      if (parse_long(v, 0, 65535, &l)) return bad_flag(flag, "expected a port number 0..65535", v);
      c->port = (int)l;
    } else if (!strcmp(flag, "--port-file")) c->port_file = v;
    else if (!strcmp(flag, "--oom-record")) c->oom_record = v;
    else if (!strcmp(flag, "--dialect")) {
      if (!strcmp(v, "openai") || !strcmp(v, "vllm")) c->dialect = D_OPENAI;
      else if (!strcmp(v, "llama.cpp") || !strcmp(v, "llama-server") || !strcmp(v, "llama")) c->dialect = D_LLAMA;
      else if (!strcmp(v, "lmstudio")) c->dialect = D_LMSTUDIO;
      else if (!strcmp(v, "ollama")) c->dialect = D_OLLAMA;
      else return bad_flag(flag, "expected openai, llama.cpp, lmstudio or ollama", v);
    } else if (!strcmp(flag, "--model")) {
      if (!*v) return bad_flag(flag, "expected a model name", v);
      if (c->nmodels == MAX_MODELS) return bad_flag(flag, "too many models (at most 32)", v);
      c->models[c->nmodels++] = v;
    } else if (!strcmp(flag, "--load-time")) {
      if (parse_duration(v, &ns)) return bad_flag(flag, "expected a duration like 2s or 500ms", v);
      c->load_ns = ns;
    } else if (!strcmp(flag, "--model-memory")) {
      if (parse_size(v, &sz)) return bad_flag(flag, "expected a size like 512MiB", v);
      c->model_memory = sz;
    } else if (!strcmp(flag, "--kv-bytes-per-token")) {
      if (parse_size(v, &sz) || sz > (1ull << 30)) return bad_flag(flag, "expected a size like 160KiB", v);
      c->kv_bytes_per_token = sz;
    } else if (!strcmp(flag, "--oom-at-memory")) {
      if (parse_size(v, &sz) || sz == 0) return bad_flag(flag, "expected a size like 1GiB", v);
      c->oom_at = sz;
    } else if (!strcmp(flag, "--prefill-tps")) {
      if (parse_double(v, 1e-3, 1e12, &d)) return bad_flag(flag, "expected a positive number", v);
      c->prefill_tps = d;
    } else if (!strcmp(flag, "--decode-tps")) {
      if (parse_double(v, 0, 1e9, &d)) return bad_flag(flag, "expected a number >= 0", v);
      c->decode_tps = d;
    } else if (!strcmp(flag, "--slots")) {
      if (parse_long(v, 1, 1000000, &l)) return bad_flag(flag, "expected an integer >= 1", v);
      c->slots = (int)l;
    } else if (!strcmp(flag, "--batch-slowdown")) {
      if (parse_double(v, 0, 1e6, &d)) return bad_flag(flag, "expected a number >= 0", v);
      c->batch_slowdown = d;
    } else if (!strcmp(flag, "--max-queue")) {
      if (parse_long(v, -1, 100000000, &l)) return bad_flag(flag, "expected an integer >= 0 (-1: unlimited)", v);
      c->max_queue = l;
    } else if (!strcmp(flag, "--queue-status")) {
      if (parse_long(v, 429, 503, &l) || (l != 429 && l != 503)) return bad_flag(flag, "expected 503 or 429", v);
      c->queue_status = (int)l;
    } else if (!strcmp(flag, "--jitter")) {
      if (parse_double(v, 0, 1, &d)) return bad_flag(flag, "expected a fraction 0..1", v);
      c->jitter = d;
    } else if (!strcmp(flag, "--seed")) {
      char *end;
      errno = 0;
      unsigned long long s = strtoull(v, &end, 10);
      if (end == v || *end || errno) return bad_flag(flag, "expected an unsigned integer", v);
      c->seed = s;
    } else if (!strcmp(flag, "--reasoning")) {
      if (!strcmp(v, "none")) c->reasoning = R_NONE;
      else if (!strcmp(v, "field")) c->reasoning = R_FIELD;
      else if (!strcmp(v, "think")) c->reasoning = R_THINK;
      else return bad_flag(flag, "expected none, field or think", v);
    } else if (!strcmp(flag, "--reasoning-tokens")) {
      if (parse_long(v, 0, 10000000, &l)) return bad_flag(flag, "expected an integer >= 0", v);
      c->reasoning_tokens = (int)l;
    } else if (!strcmp(flag, "--output-tokens")) {
      if (parse_long(v, 1, 100000000, &l)) return bad_flag(flag, "expected an integer >= 1", v);
      c->output_tokens = (int)l;
    } else if (!strcmp(flag, "--ctx-size")) {
      if (parse_long(v, 1, 100000000, &l)) return bad_flag(flag, "expected an integer >= 1", v);
      c->ctx_size = (int)l;
    } else if (!strcmp(flag, "--speedup-env")) {
      const char *e = strchr(v, '=');
      if (!e || e == v || parse_double(e + 1, 1e-6, 1e6, &d))
        return bad_flag(flag, "expected NAME=FACTOR with FACTOR > 0", v);
      char name[256];
      size_t n = (size_t)(e - v);
      if (n >= sizeof name) return bad_flag(flag, "variable name too long", v);
      memcpy(name, v, n);
      name[n] = 0;
      const char *ev = getenv(name);
      if (ev && *ev && strcmp(ev, "0") != 0) {
        c->speedup *= d;
        /* as a real engine logs a setting it read (benchrun shows it in report.md) */
        fprintf(stderr, "benchrun sim: read %s=%s: rates x%g\n", name, ev, d);
      }
    } else if (!strcmp(flag, "--fault")) {
      const char *colon = strchr(v, ':');
      size_t n = colon ? (size_t)(colon - v) : strlen(v);
      int f = find_fault(v, n);
      if (f == F_NONE) return bad_flag(flag, "unknown fault kind (see --help)", v);
      d = 1;
      if (colon && parse_double(colon + 1, 0, 1, &d)) return bad_flag(flag, "expected a probability 0..1 after ':'", v);
      c->fault_prob[f] = d;
    } else if (!strcmp(flag, "--crash-after")) {
      if (parse_long(v, 0, 1000000000, &l)) return bad_flag(flag, "expected an integer >= 0", v);
      c->crash_after = l;
    } else if (!strcmp(flag, "--header-timeout")) {
      if (parse_duration(v, &ns) || ns <= 0) return bad_flag(flag, "expected a positive duration", v);
      c->header_timeout_ns = ns;
    } else if (!strcmp(flag, "--idle-timeout")) {
      if (parse_duration(v, &ns) || ns <= 0) return bad_flag(flag, "expected a positive duration", v);
      c->idle_timeout_ns = ns;
    } else if (!strcmp(flag, "--max-body")) {
      if (parse_size(v, &sz) || sz == 0 || sz > (1ull << 32)) return bad_flag(flag, "expected a size like 8MiB", v);
      c->max_body = (size_t)sz;
    } else if (!strcmp(flag, "--huge-event")) {
      if (parse_size(v, &sz) || sz == 0 || sz > (1ull << 31)) return bad_flag(flag, "expected a size like 4MiB", v);
      c->huge_event_bytes = (size_t)sz;
    } else return bad_flag(flag, "unknown option (see benchrun sim --help)", NULL);
  }
  if (c->nmodels == 0) c->models[c->nmodels++] = "sim-model";
  if (c->reasoning_tokens < 0) c->reasoning_tokens = c->reasoning == R_NONE ? 0 : 32;
  return -1;
}

/* ------------------------------------------------------------------ */
/* memory touched while loading                                        */

/* A simulated OOM kill: SIGKILL, as the kernel's OOM killer sends. What
 * tells a supervisor that it was memory is not the signal but the kernel's
 * record of the kill; the simulator plays the kernel too and writes that
 * record to --oom-record (the supervisor's /dev/kmsg), never to its output. */
static void oom_kill(uint64_t needed) {
  fprintf(stderr, "benchrun sim: touched memory would exceed --oom-at-memory; killing itself\n");
  fflush(stderr);
  if (G.cfg.oom_record) {
    FILE *f = fopen(G.cfg.oom_record, "a");
    if (f) {
      fprintf(f, "{\"oom_kill\":true,\"pid\":%ld,\"needed_bytes\":%llu,\"limit_bytes\":%llu}\n", (long)getpid(),
              (unsigned long long)needed, (unsigned long long)G.cfg.oom_at);
      fclose(f);
    }
  }
  kill(getpid(), SIGKILL);
  abort();   /* not reached */
}

/* A crash, as a server's failed assertion ends (GGML_ASSERT, a CUDA error):
 * abort(), SIGABRT. No core file: a test run should not fill the disk. */
static void crash(const char *why) {
  fprintf(stderr, "benchrun sim: %s: crashing (abort)\n", why);
  fflush(stderr);
  struct rlimit no_core = {0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  signal(SIGABRT, SIG_DFL);
  abort();
}

/* Touch memory up to `upto` bytes of the model (one write per page). */
static void touch_memory(uint64_t upto) {
  if (upto > G.cfg.model_memory) upto = G.cfg.model_memory;
  if (G.cfg.oom_at && upto + G.kv_touched > G.cfg.oom_at) {
    uint64_t room = G.cfg.oom_at > G.kv_touched ? G.cfg.oom_at - G.kv_touched : 0;
    if (room > G.mem_touched) touch_memory(room);
    oom_kill(upto + G.kv_touched);
  }
  if (upto <= G.mem_touched) return;
  if (!G.mem) {
    G.mem = malloc(G.cfg.model_memory);
    if (!G.mem) {
      fprintf(stderr, "benchrun sim: cannot allocate --model-memory %llu bytes\n",
              (unsigned long long)G.cfg.model_memory);
      exit(1);
    }
  }
  for (uint64_t i = G.mem_touched; i < upto; i += 4096) G.mem[i] = (char)(i >> 12 | 1);
  G.mem[upto - 1] = 1;
  G.mem_touched = upto;
}

/* The KV cache grows with the tokens held in slots; like a real server's
 * pool, what was touched stays touched (its high-water mark). */
static void touch_kv(void) {
  uint64_t need = (uint64_t)G.kv_tokens * G.cfg.kv_bytes_per_token;
  if (need <= G.kv_touched) return;
  if (G.cfg.oom_at && G.mem_touched + need > G.cfg.oom_at) oom_kill(G.mem_touched + need);
  if (need > G.kv_cap) {
    uint64_t cap = G.kv_cap ? G.kv_cap * 2 : (1u << 20);
    if (cap < need) cap = need;
    char *p = realloc(G.kv_mem, cap);
    if (!p) oom_kill(G.mem_touched + need);   /* the allocator said no: die as an OOM kill would */
    G.kv_mem = p;
    G.kv_cap = cap;
  }
  for (uint64_t i = G.kv_touched; i < need; i += 4096) G.kv_mem[i] = 1;
  G.kv_mem[need - 1] = 1;
  G.kv_touched = need;
}

static void load_tick(br_loop *loop, br_timer *t) {
  int64_t now = br_now();
  int64_t done_at = G.t_start + G.cfg.load_ns;
  if (now >= done_at) {
    touch_memory(G.cfg.model_memory);
    G.loaded = 1;
    G.t_loaded = now;
    answer_load_waiters();
    admit_queued();
    return;
  }
  double frac = (double)(now - G.t_start) / (double)G.cfg.load_ns;
  touch_memory((uint64_t)(frac * (double)G.cfg.model_memory));
  int64_t next = now + 10000000;
  br_timer_start(loop, t, next < done_at ? next : done_at, load_tick, NULL);
}

/* ------------------------------------------------------------------ */
/* output                                                               */

static void want_write(conn *c, int on) {
  if (c->want_write == on) return;
  c->want_write = on;
  br_io_start(G.loop, &c->io, c->fd, BR_READ | (on ? BR_WRITE : 0), c->io.cb, c);
}

/* Queue bytes; write at once when nothing is pending. Returns -1 if the
 * connection broke (it is then closed). */
static int conn_send_iov(conn *c, struct iovec *iov, int n) {
  size_t total = 0;
  for (int i = 0; i < n; i++) total += iov[i].iov_len;
  size_t done = 0;
  if (c->out.len == c->out_off) {
    c->out.len = c->out_off = 0;
    ssize_t w = writev(c->fd, iov, n);
    G.c_writes++;
    if (w < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) { conn_close(c); return -1; }
      w = 0;
    }
    done = (size_t)w;
    if (done == total) return 0;
  }
  for (int i = 0; i < n; i++) {
    size_t len = iov[i].iov_len;
    if (done >= len) { done -= len; continue; }
    sb_mem(&c->out, (char *)iov[i].iov_base + done, len - done);
    done = 0;
  }
  want_write(c, 1);
  return 0;
}

static int conn_send(conn *c, const char *p, size_t n) {
  struct iovec iov = {(void *)p, n};
  return conn_send_iov(c, &iov, 1);
}

/* Send body bytes of a streamed response, chunk-framed unless HTTP/1.0. */
static int conn_send_body(conn *c, const char *p, size_t n) {
  if (n == 0) return 0;
  if (!c->chunked) return conn_send(c, p, n);
  char hdr[20];
  int hl = snprintf(hdr, sizeof hdr, "%zx\r\n", n);
  struct iovec iov[3] = {{hdr, (size_t)hl}, {(void *)p, n}, {"\r\n", 2}};
  return conn_send_iov(c, iov, 3);
}

static size_t conn_pending(const conn *c) { return c->out.len - c->out_off; }

/* The events gen_step formatted into b after EV_RESERVE bytes: frame them
 * as one HTTP chunk in place and send them with a single write. */
enum { EV_RESERVE = 12 };
static int send_events(conn *c, sbuf *b) {
  size_t n = b->len - EV_RESERVE;
  if (n == 0) return 0;
  if (!c->chunked) return conn_send(c, b->p + EV_RESERVE, n);
  char *p = b->p + EV_RESERVE;   /* "<hex>\r\n" written backwards before the events */
  *--p = '\n';
  *--p = '\r';
  size_t v = n;
  do { *--p = "0123456789abcdef"[v & 15]; v >>= 4; } while (v);
  SB_LIT(b, "\r\n");
  return conn_send(c, p, (size_t)(b->p + b->len - p));
}

/* Write pending output. Returns -1 if the connection was closed. */
static int conn_flush(conn *c) {
  while (c->out_off < c->out.len) {
    ssize_t w = write(c->fd, c->out.p + c->out_off, c->out.len - c->out_off);
    G.c_writes++;
    if (w < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
      if (errno == EINTR) continue;
      conn_close(c);
      return -1;
    }
    c->out_off += (size_t)w;
  }
  c->out.len = c->out_off = 0;
  if (c->out.cap > (1u << 20)) sb_free(&c->out);   /* after a huge event */
  want_write(c, 0);
  if (c->close_after_write) { conn_linger(c); return -1; }
  return 0;
}

/* ------------------------------------------------------------------ */
/* HTTP responses                                                      */

static const char *status_text(int code) {
  switch (code) {
  case 100: return "Continue";
  case 200: return "OK";
  case 400: return "Bad Request";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 411: return "Length Required";
  case 413: return "Payload Too Large";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 503: return "Service Unavailable";
  case 505: return "HTTP Version Not Supported";
  default: return "Error";
  }
}

static void head_common(sbuf *b, conn *c, int code, const char *ctype) {
  sb_printf(b, "HTTP/1.%d %d %s\r\n", c->http10 ? 0 : 1, code, status_text(code));
  switch (G.cfg.dialect) {
  case D_LLAMA: SB_LIT(b, "Server: llama.cpp\r\nAccess-Control-Allow-Origin: \r\n"); break;
  case D_OPENAI: SB_LIT(b, "server: uvicorn\r\n"); break;
  default: break;
  }
  sb_printf(b, "Content-Type: %s\r\n", ctype);
  SB_LIT(b, "X-Sim-Request-Id: ");
  sb_u64(b, c->req_id);
  SB_LIT(b, "\r\n");
  if (!c->keepalive) SB_LIT(b, "Connection: close\r\n");
  else if (c->http10) SB_LIT(b, "Connection: keep-alive\r\n");
  else if (G.cfg.dialect == D_LLAMA) SB_LIT(b, "Keep-Alive: timeout=5, max=100\r\n");
}

/* A complete response with a body. After it, the connection reads the next
 * request (keep-alive) or closes. Returns -1 if the connection is gone. */
static int send_full(conn *c, int code, const char *ctype, const char *body, size_t n, const char *extra) {
  sbuf b = {0};
  head_common(&b, c, code, ctype);
  if (extra) sb_str(&b, extra);
  SB_LIT(&b, "Content-Length: ");
  sb_u64(&b, n);
  SB_LIT(&b, "\r\n\r\n");
  struct iovec iov[2] = {{b.p, b.len}, {(void *)body, n}};
  int r = conn_send_iov(c, iov, 2);
  sb_free(&b);
  if (r < 0) return -1;
  if (code >= 400) G.c_errors++;
  return conn_begin_next(c);
}

/* An error in the dialect's own shape. */
static int send_error(conn *c, int code, const char *type, const char *msg) {
  sbuf b = {0};
  size_t ml = strlen(msg);
  switch (G.cfg.dialect) {
  case D_LLAMA:
    SB_LIT(&b, "{\"error\":{\"code\":");
    sb_i64(&b, code);
    SB_LIT(&b, ",\"message\":\"");
    sb_json_esc(&b, msg, ml);
    SB_LIT(&b, "\",\"type\":\"");
    sb_str(&b, type);
    SB_LIT(&b, "\"}}");
    break;
  case D_OLLAMA:
    SB_LIT(&b, "{\"error\":\"");
    sb_json_esc(&b, msg, ml);
    SB_LIT(&b, "\"}");
    break;
  case D_LMSTUDIO:
    SB_LIT(&b, "{\"error\":{\"message\":\"");
    sb_json_esc(&b, msg, ml);
    SB_LIT(&b, "\",\"type\":\"");
    sb_str(&b, type);
    SB_LIT(&b, "\",\"code\":");
    sb_i64(&b, code);
    SB_LIT(&b, "}}");
    break;
  default:   /* vLLM's ErrorResponse */
    SB_LIT(&b, "{\"object\":\"error\",\"message\":\"");
    sb_json_esc(&b, msg, ml);
    SB_LIT(&b, "\",\"type\":\"");
    sb_str(&b, type);
    SB_LIT(&b, "\",\"param\":null,\"code\":");
    sb_i64(&b, code);
    SB_LIT(&b, "}");
  }
  const char *extra = NULL;
  if (code == 405) extra = c->ep ? "Allow: POST\r\n" : "Allow: GET\r\n";
  int r = send_full(c, code, "application/json", b.p, b.len, extra);
  sb_free(&b);
  return r;
}

/* Errors that end the connection (the request could not be framed). */
static void send_error_close(conn *c, int code, const char *msg) {
  c->keepalive = 0;
  send_error(c, code, code == 408 ? "timeout_error" : "invalid_request_error", msg);
}

/* ------------------------------------------------------------------ */
/* connection lifecycle                                                */

/* Wait for a slot (or, for a load-only request, for the model) at the tail. */
static void queue_append(conn *c) {
  c->state = CS_QUEUED;
  c->in_queue = 1;
  c->qprev = G.qtail;
  c->qnext = NULL;
  if (G.qtail) G.qtail->qnext = c; else G.qhead = c;
  G.qtail = c;
  G.qlen++;
}

static void queue_remove(conn *c) {
  if (!c->in_queue) return;
  if (c->qprev) c->qprev->qnext = c->qnext; else G.qhead = c->qnext;
  if (c->qnext) c->qnext->qprev = c->qprev; else G.qtail = c->qprev;
  c->qprev = c->qnext = NULL;
  c->in_queue = 0;
  G.qlen--;
}

static void release_slot(conn *c) {
  if (!c->in_slot) return;
  c->in_slot = 0;
  G.active--;
  G.kv_tokens -= c->prompt_tokens + c->emitted;
  br_timer_stop(G.loop, &c->tick);
  admit_queued();
}

static void req_reset(conn *c) {
  for (int i = 0; i < c->n_stops; i++) free(c->stops[i]);
  c->n_stops = 0;
  c->tail.len = c->text.len = c->rtext.len = c->model.len = c->prompt_echo.len = 0;
  c->ep = EP_NONE;
  c->fault = F_NONE;
  c->emitted = c->finished = c->fault_done = c->fin_sent = 0;
  c->resume_on_drain = 0;
  c->endless_sent = 0;
  c->waited_load_ns = 0;
  c->load_only = 0;
}

static void conn_close(conn *c) {
  queue_remove(c);
  release_slot(c);
  br_io_stop(G.loop, &c->io);
  br_timer_stop(G.loop, &c->tmo);
  br_timer_stop(G.loop, &c->tick);
  close(c->fd);
  if (c->prev) c->prev->next = c->next; else G.conns = c->next;
  if (c->next) c->next->prev = c->prev;
  req_reset(c);
  sb_free(&c->in);
  sb_free(&c->out);
  sb_free(&c->tail);
  sb_free(&c->text);
  sb_free(&c->rtext);
  sb_free(&c->model);
  sb_free(&c->prompt_echo);
  G.nconns--;
  free(c);
}

/* Close after a last response without losing it: closing a socket with
 * unread input makes the kernel send a reset, which can destroy the response
 * before the client reads it. So shut down our side, read and discard until
 * the client closes (or 2 s pass), then close. */
static void conn_linger(conn *c) {
  queue_remove(c);
  release_slot(c);
  br_timer_stop(G.loop, &c->tick);
  want_write(c, 0);
  c->state = CS_LINGER;
  shutdown(c->fd, SHUT_WR);
  br_timer_start(G.loop, &c->tmo, br_now() + 2000000000LL, tmo_cb, c);
}

static void tmo_cb(br_loop *loop, br_timer *t) {
  conn *c = t->data;
  if ((c->state == CS_HEAD || c->state == CS_BODY) && c->in.len > 0) {
    send_error_close(c, 408, "request head or body did not arrive in time (--header-timeout)");
    return;
  }
  conn_close(c);
}

static void handle_input(conn *c);

/* The response is complete: read the next request, or close. Returns -1
 * if the connection is gone. */
static int conn_begin_next(conn *c) {
  req_reset(c);
  if (!c->keepalive) {
    c->state = CS_DRAIN;
    c->close_after_write = 1;
    if (conn_pending(c) == 0) { conn_linger(c); return -1; }
    return 0;
  }
  c->state = CS_HEAD;
  /* drop the request just served from the input */
  size_t used = c->head_len + c->body_len;
  if (used > c->in.len) used = c->in.len;
  memmove(c->in.p, c->in.p + used, c->in.len - used);
  c->in.len -= used;
  c->head_len = c->body_len = 0;
  br_timer_start(G.loop, &c->tmo, br_now() + (c->in.len ? G.cfg.header_timeout_ns : G.cfg.idle_timeout_ns),
                 tmo_cb, c);
  if (c->in.len) handle_input(c);
  return 0;
}

/* ------------------------------------------------------------------ */
/* generation: timing                                                  */


static int64_t jittered(int64_t ns, uint64_t *rng) {
  if (G.cfg.jitter <= 0 || ns <= 0) return ns;
  double f = 1 + G.cfg.jitter * (2 * rng_unit(rng) - 1);
  return (int64_t)((double)ns * f);
}

/* Interval to the next token at the current batch size; 0 = packed. */
static int64_t decode_interval(conn *c) {
  if (G.cfg.decode_tps <= 0) return 0;
  double rate = G.cfg.decode_tps * G.cfg.speedup / (1 + G.cfg.batch_slowdown * (G.active - 1));
  return jittered((int64_t)(1e9 / rate), &c->rng);
}

static int64_t prefill_ns(conn *c) {
  double s = c->prompt_tokens / (G.cfg.prefill_tps * G.cfg.speedup);
  return jittered((int64_t)(s * 1e9), &c->rng);
}

static void record_lateness(int64_t late) {
  if (late < 0) late = 0;
  int i = 0;
  while (i < 10 && late > late_bounds_ns[i]) i++;
  G.late_buckets[i]++;
  G.late_sum += (double)late / 1e9;
  G.late_count++;
}

/* ------------------------------------------------------------------ */
/* generation: wire formats                                            */

static int is_chat(const conn *c) {
  return c->ep == EP_CHAT || c->ep == EP_LMS_CHAT || c->ep == EP_OLLAMA_CHAT;
}

static const char llama_fingerprint[] = "b4748-c392e5094";

/* RFC 3339 UTC with nanoseconds, as Ollama's created_at. */
static void sb_created_at(sbuf *b) {
  int64_t w = br_platform_wall_ns();
  time_t s = (time_t)(w / 1000000000);
  struct tm tm;
  gmtime_r(&s, &tm);
  sb_printf(b, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
            tm.tm_hour, tm.tm_min, tm.tm_sec, (long)(w % 1000000000));
}

/* The event's send time, and in the first token's event when the request
 * arrived (the read that completed it): a client on the same host can tell
 * the server's own TTFT from its own error, on both sides of the wire. */
static void sb_stamp_end(sbuf *b, const conn *c, int64_t stamp) {
  SB_LIT(b, ",\"sim_ns\":");
  sb_i64(b, stamp);
  if (c->emitted == 0) {
    SB_LIT(b, ",\"sim_arrival_ns\":");
    sb_i64(b, c->t_arrive);
  }
  SB_LIT(b, "}");
}

/* The head of an OpenAI-style chunk up to the choices array. */
static void chunk_head(sbuf *b, conn *c) {
  int chat = is_chat(c);
  if (G.cfg.dialect == D_LLAMA) {
    SB_LIT(b, "data: {\"choices\":[");
    return;
  }
  SB_LIT(b, "data: {\"id\":\"");
  sb_str(b, c->id);
  if (chat) SB_LIT(b, "\",\"object\":\"chat.completion.chunk\",\"created\":");
  else SB_LIT(b, "\",\"object\":\"text_completion\",\"created\":");
  sb_i64(b, (int64_t)c->created);
  SB_LIT(b, ",\"model\":\"");
  sb_mem(b, c->model.p, c->model.len);
  if (G.cfg.dialect == D_LMSTUDIO) {
    SB_LIT(b, "\",\"system_fingerprint\":\"");
    sb_mem(b, c->model.p, c->model.len);
  } else if (G.cfg.dialect == D_OLLAMA) {
    SB_LIT(b, "\",\"system_fingerprint\":\"fp_ollama");
  }
  SB_LIT(b, "\",\"choices\":[");
}

/* llama.cpp puts id/model after the choices. */
static void chunk_tail_llama(sbuf *b, conn *c) {
  if (is_chat(c)) {
    SB_LIT(b, "],\"created\":");
    sb_i64(b, (int64_t)c->created);
    SB_LIT(b, ",\"id\":\"");
    sb_str(b, c->id);
    SB_LIT(b, "\",\"model\":\"");
    sb_mem(b, c->model.p, c->model.len);
    SB_LIT(b, "\",\"system_fingerprint\":\"");
    sb_str(b, llama_fingerprint);
    SB_LIT(b, "\",\"object\":\"chat.completion.chunk\"");
  } else {
    SB_LIT(b, "],\"created\":");
    sb_i64(b, (int64_t)c->created);
    SB_LIT(b, ",\"model\":\"");
    sb_mem(b, c->model.p, c->model.len);
    SB_LIT(b, "\",\"system_fingerprint\":\"");
    sb_str(b, llama_fingerprint);
    SB_LIT(b, "\",\"object\":\"text_completion\",\"id\":\"");
    sb_str(b, c->id);
    SB_LIT(b, "\"");
  }
}

static const char *finish_str(const conn *c) { return c->finished == 2 ? "stop" : "length"; }

static void sb_usage(sbuf *b, conn *c) {
  SB_LIT(b, "\"usage\":{");
  if (G.cfg.dialect == D_OPENAI) {
    SB_LIT(b, "\"prompt_tokens\":");
    sb_i64(b, c->prompt_tokens);
    SB_LIT(b, ",\"total_tokens\":");
    sb_i64(b, c->prompt_tokens + c->emitted);
    SB_LIT(b, ",\"completion_tokens\":");
    sb_i64(b, c->emitted);
  } else {
    SB_LIT(b, "\"completion_tokens\":");
    sb_i64(b, c->emitted);
    SB_LIT(b, ",\"prompt_tokens\":");
    sb_i64(b, c->prompt_tokens);
    SB_LIT(b, ",\"total_tokens\":");
    sb_i64(b, c->prompt_tokens + c->emitted);
  }
  SB_LIT(b, "}");
}

static void sb_llama_timings(sbuf *b, conn *c) {
  double prompt_ms = (double)(c->t_first - c->t_slot) / 1e6;
  double pred_ms = (double)(c->t_last - c->t_first) / 1e6;
  int k = c->emitted;
  SB_LIT(b, "\"timings\":{\"prompt_n\":");
  sb_i64(b, c->prompt_tokens);
  SB_LIT(b, ",\"prompt_ms\":");
  sb_double(b, prompt_ms);
  SB_LIT(b, ",\"prompt_per_token_ms\":");
  sb_double(b, c->prompt_tokens ? prompt_ms / c->prompt_tokens : 0);
  SB_LIT(b, ",\"prompt_per_second\":");
  sb_double(b, prompt_ms > 0 ? c->prompt_tokens * 1e3 / prompt_ms : 0);
  SB_LIT(b, ",\"predicted_n\":");
  sb_i64(b, k);
  SB_LIT(b, ",\"predicted_ms\":");
  sb_double(b, pred_ms);
  SB_LIT(b, ",\"predicted_per_token_ms\":");
  sb_double(b, k ? pred_ms / k : 0);
  SB_LIT(b, ",\"predicted_per_second\":");
  sb_double(b, pred_ms > 0 ? k * 1e3 / pred_ms : 0);
  SB_LIT(b, "}");
}

/* The end of llama.cpp's last /completion object: from the prompt's text
 * to the timings (streamed and not). */
static void sb_llama_stop_fields(sbuf *b, conn *c) {
  sb_mem(b, c->prompt_echo.p, c->prompt_echo.len);
  SB_LIT(b, "\",\"has_new_line\":false,\"truncated\":false,\"stop_type\":\"");
  sb_str(b, c->finished == 2 ? (c->n_stops ? "word" : "eos") : "limit");
  SB_LIT(b, "\",\"stopping_word\":\"\",\"tokens_cached\":");
  sb_i64(b, c->prompt_tokens + c->emitted);
  SB_LIT(b, ",");
  sb_llama_timings(b, c);
}

static void sb_lms_stats(sbuf *b, conn *c) {
  double gen_s = (double)(c->t_last - c->t_first) / 1e9;
  SB_LIT(b, "\"stats\":{\"tokens_per_second\":");
  sb_double(b, gen_s > 0 ? c->emitted / gen_s : 0);
  SB_LIT(b, ",\"time_to_first_token\":");
  sb_double(b, (double)(c->t_first - c->t_arrive) / 1e9);
  SB_LIT(b, ",\"generation_time\":");
  sb_double(b, gen_s);
  SB_LIT(b, ",\"stop_reason\":\"");
  sb_str(b, c->finished == 2 ? (c->n_stops ? "stopStringFound" : "eosFound") : "maxPredictedTokensReached");
  SB_LIT(b, "\"},\"model_info\":{\"arch\":\"llama\",\"quant\":\"Q4_K_M\",\"format\":\"gguf\",\"context_length\":");
  sb_i64(b, G.cfg.ctx_size);
  SB_LIT(b, "},\"runtime\":{\"name\":\"llama.cpp-sim\",\"version\":\"1.0.0\",\"supported_formats\":[\"gguf\"]}");
}

static void sb_ollama_stats(sbuf *b, conn *c, int64_t now) {
  SB_LIT(b, ",\"total_duration\":");
  sb_i64(b, now - c->t_arrive);
  SB_LIT(b, ",\"load_duration\":");
  sb_i64(b, c->waited_load_ns);
  SB_LIT(b, ",\"prompt_eval_count\":");
  sb_i64(b, c->prompt_tokens);
  SB_LIT(b, ",\"prompt_eval_duration\":");
  sb_i64(b, c->t_first - c->t_slot);
  SB_LIT(b, ",\"eval_count\":");
  sb_i64(b, c->emitted);
  SB_LIT(b, ",\"eval_duration\":");
  sb_i64(b, c->t_last - c->t_first);
}

static int token_id(int w) { return 1000 + w * 37; }

/* One token event. `reasoning`: the token belongs to the reasoning part and
 * goes to the reasoning field (R_FIELD); R_THINK tokens are plain content. */
static void fmt_token(sbuf *b, conn *c, const char *t, size_t n, int reasoning, int last, int wid, int64_t stamp) {
  int field = reasoning && c->think == R_FIELD;
  switch (c->ep) {
  case EP_OLLAMA_CHAT:
  case EP_OLLAMA_GEN:
    SB_LIT(b, "{\"model\":\"");
    sb_mem(b, c->model.p, c->model.len);
    SB_LIT(b, "\",\"created_at\":\"");
    sb_created_at(b);
    if (c->ep == EP_OLLAMA_CHAT) {
      if (field) {
        SB_LIT(b, "\",\"message\":{\"role\":\"assistant\",\"content\":\"\",\"thinking\":\"");
        sb_mem(b, t, n);
      } else {
        SB_LIT(b, "\",\"message\":{\"role\":\"assistant\",\"content\":\"");
        sb_mem(b, t, n);
      }
      SB_LIT(b, "\"},\"done\":false");
    } else {
      sb_str(b, field ? "\",\"response\":\"\",\"thinking\":\"" : "\",\"response\":\"");
      sb_mem(b, t, n);
      SB_LIT(b, "\",\"done\":false");
    }
    sb_stamp_end(b, c, stamp);
    SB_LIT(b, "\n");
    return;
  case EP_LLAMA_COMPL:
    SB_LIT(b, "data: {\"index\":0,\"content\":\"");
    sb_mem(b, t, n);
    SB_LIT(b, "\",\"tokens\":[");
    sb_i64(b, token_id(wid));
    SB_LIT(b, "],\"stop\":false,\"id_slot\":-1,\"tokens_predicted\":");
    sb_i64(b, c->emitted + 1);
    SB_LIT(b, ",\"tokens_evaluated\":");
    sb_i64(b, c->prompt_tokens);
    sb_stamp_end(b, c, stamp);
    SB_LIT(b, "\n\n");
    return;
  default:
    break;
  }
  int chat = is_chat(c);
  int fin = last && G.cfg.dialect != D_LLAMA && G.cfg.dialect != D_LMSTUDIO;
  chunk_head(b, c);
  if (G.cfg.dialect == D_LLAMA) {
    if (chat) {
      SB_LIT(b, "{\"finish_reason\":null,\"index\":0,\"delta\":{\"");
      if (field) SB_LIT(b, "reasoning_content\":\""); else SB_LIT(b, "content\":\"");
      sb_mem(b, t, n);
      SB_LIT(b, "\"}}");
    } else {
      SB_LIT(b, "{\"text\":\"");
      sb_mem(b, t, n);
      SB_LIT(b, "\",\"index\":0,\"logprobs\":null,\"finish_reason\":null}");
    }
    chunk_tail_llama(b, c);
  } else if (chat) {
    SB_LIT(b, "{\"index\":0,\"delta\":{");
    if (G.cfg.dialect == D_LMSTUDIO || G.cfg.dialect == D_OLLAMA) SB_LIT(b, "\"role\":\"assistant\",");
    if (field) SB_LIT(b, "\"reasoning_content\":\""); else SB_LIT(b, "\"content\":\"");
    sb_mem(b, t, n);
    SB_LIT(b, "\"},\"logprobs\":null,\"finish_reason\":");
    if (fin) { SB_LIT(b, "\""); sb_str(b, finish_str(c)); SB_LIT(b, "\"}]"); c->fin_sent = 1; }
    else SB_LIT(b, "null}]");
  } else {
    SB_LIT(b, "{\"index\":0,\"text\":\"");
    sb_mem(b, t, n);
    SB_LIT(b, "\",\"logprobs\":null,\"finish_reason\":");
    if (fin) { SB_LIT(b, "\""); sb_str(b, finish_str(c)); SB_LIT(b, "\""); c->fin_sent = 1; }
    else SB_LIT(b, "null");
    if (G.cfg.dialect == D_OPENAI) SB_LIT(b, ",\"stop_reason\":null");
    SB_LIT(b, "}]");
  }
  sb_stamp_end(b, c, stamp);
  SB_LIT(b, "\n\n");
}

/* vLLM sends the assistant role alone before the first token. */
static void fmt_role(sbuf *b, conn *c, int64_t stamp) {
  chunk_head(b, c);
  SB_LIT(b, "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]");
  sb_stamp_end(b, c, stamp);
  SB_LIT(b, "\n\n");
}

/* The closing events: finish reason where it has not been sent, usage,
 * server timings, [DONE]. */
static void fmt_final(sbuf *b, conn *c, int64_t stamp) {
  int64_t now = stamp;
  switch (c->ep) {
  case EP_OLLAMA_CHAT:
  case EP_OLLAMA_GEN:
    SB_LIT(b, "{\"model\":\"");
    sb_mem(b, c->model.p, c->model.len);
    SB_LIT(b, "\",\"created_at\":\"");
    sb_created_at(b);
    if (c->ep == EP_OLLAMA_CHAT) SB_LIT(b, "\",\"message\":{\"role\":\"assistant\",\"content\":\"\"}");
    else SB_LIT(b, "\",\"response\":\"\"");
    SB_LIT(b, ",\"done_reason\":\"");
    sb_str(b, finish_str(c));
    SB_LIT(b, "\",\"done\":true");
    sb_ollama_stats(b, c, now);
    sb_stamp_end(b, c, stamp);
    SB_LIT(b, "\n");
    return;
  case EP_LLAMA_COMPL:
    SB_LIT(b, "data: {\"index\":0,\"content\":\"\",\"tokens\":[],\"id_slot\":0,\"stop\":true,\"model\":\"");
    sb_mem(b, c->model.p, c->model.len);
    SB_LIT(b, "\",\"tokens_predicted\":");
    sb_i64(b, c->emitted);
    SB_LIT(b, ",\"tokens_evaluated\":");
    sb_i64(b, c->prompt_tokens);
    SB_LIT(b, ",\"generation_settings\":{\"n_predict\":");
    sb_i64(b, c->max_tokens_set ? c->target : -1);
    SB_LIT(b, ",\"seed\":");
    sb_i64(b, c->seed_field);
    SB_LIT(b, ",\"temperature\":0.800000011920929,\"top_k\":40,\"top_p\":0.949999988079071,\"stream\":true,\"max_tokens\":");
    sb_i64(b, c->max_tokens_set ? c->target : -1);
    SB_LIT(b, "},\"prompt\":\"");
    sb_llama_stop_fields(b, c);
    sb_stamp_end(b, c, stamp);
    SB_LIT(b, "\n\n");
    return;
  default:
    break;
  }
  int chat = is_chat(c);
  if (G.cfg.dialect == D_LLAMA) {
    chunk_head(b, c);
    if (chat) SB_LIT(b, "{\"finish_reason\":\"");
    else SB_LIT(b, "{\"text\":\"\",\"index\":0,\"logprobs\":null,\"finish_reason\":\"");
    sb_str(b, finish_str(c));
    if (chat) SB_LIT(b, "\",\"index\":0,\"delta\":{}}");
    else SB_LIT(b, "\"}");
    chunk_tail_llama(b, c);
    SB_LIT(b, ",");
    sb_usage(b, c);
    SB_LIT(b, ",");
    sb_llama_timings(b, c);
    sb_stamp_end(b, c, stamp);
    SB_LIT(b, "\n\ndata: [DONE]\n\n");
    return;
  }
  if (G.cfg.dialect == D_LMSTUDIO) {
    chunk_head(b, c);
    if (chat) SB_LIT(b, "{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"");
    else SB_LIT(b, "{\"index\":0,\"text\":\"\",\"logprobs\":null,\"finish_reason\":\"");
    sb_str(b, finish_str(c));
    SB_LIT(b, "\"}]");
    if (c->include_usage) { SB_LIT(b, ","); sb_usage(b, c); }
    /* no stats, model_info or runtime here: LM Studio sends them only in
     * non-streamed /api/v0 answers (lmstudio-bug-tracker#676, 0.3.x) */
    sb_stamp_end(b, c, stamp);
    SB_LIT(b, "\n\ndata: [DONE]\n\n");
    return;
  }
  if (!c->fin_sent) {
    chunk_head(b, c);
    if (chat) SB_LIT(b, "{\"index\":0,\"delta\":{\"content\":\"\"},\"logprobs\":null,\"finish_reason\":\"");
    else SB_LIT(b, "{\"index\":0,\"text\":\"\",\"logprobs\":null,\"finish_reason\":\"");
    sb_str(b, finish_str(c));
    SB_LIT(b, "\"");
    if (!chat && G.cfg.dialect == D_OPENAI) SB_LIT(b, ",\"stop_reason\":null");
    SB_LIT(b, "}]");
    sb_stamp_end(b, c, stamp);
    SB_LIT(b, "\n\n");
  }
  if (c->include_usage) {
    chunk_head(b, c);
    SB_LIT(b, "],");
    sb_usage(b, c);
    sb_stamp_end(b, c, stamp);
    SB_LIT(b, "\n\n");
  }
  SB_LIT(b, "data: [DONE]\n\n");
}

/* The whole answer of a non-streaming request. */
static void fmt_full(sbuf *b, conn *c, int64_t stamp) {
  int chat = is_chat(c);
  switch (c->ep) {
  case EP_OLLAMA_CHAT:
  case EP_OLLAMA_GEN:
    SB_LIT(b, "{\"model\":\"");
    sb_mem(b, c->model.p, c->model.len);
    SB_LIT(b, "\",\"created_at\":\"");
    sb_created_at(b);
    if (chat) {
      SB_LIT(b, "\",\"message\":{\"role\":\"assistant\",\"content\":\"");
      sb_json_esc(b, c->text.p ? c->text.p : "", c->text.len);
      if (c->rtext.len) { SB_LIT(b, "\",\"thinking\":\""); sb_json_esc(b, c->rtext.p, c->rtext.len); }
      SB_LIT(b, "\"}");
    } else {
      SB_LIT(b, "\",\"response\":\"");
      sb_json_esc(b, c->text.p ? c->text.p : "", c->text.len);
      if (c->rtext.len) { SB_LIT(b, "\",\"thinking\":\""); sb_json_esc(b, c->rtext.p, c->rtext.len); }
      SB_LIT(b, "\"");
    }
    SB_LIT(b, ",\"done_reason\":\"");
    sb_str(b, finish_str(c));
    SB_LIT(b, "\",\"done\":true");
    sb_ollama_stats(b, c, stamp);
    sb_stamp_end(b, c, stamp);
    return;
  case EP_LLAMA_COMPL:
    SB_LIT(b, "{\"index\":0,\"content\":\"");
    sb_json_esc(b, c->text.p ? c->text.p : "", c->text.len);
    SB_LIT(b, "\",\"tokens\":[],\"id_slot\":0,\"stop\":true,\"model\":\"");
    sb_mem(b, c->model.p, c->model.len);
    SB_LIT(b, "\",\"tokens_predicted\":");
    sb_i64(b, c->emitted);
    SB_LIT(b, ",\"tokens_evaluated\":");
    sb_i64(b, c->prompt_tokens);
    SB_LIT(b, ",\"prompt\":\"");
    sb_llama_stop_fields(b, c);
    sb_stamp_end(b, c, stamp);
    return;
  default:
    break;
  }
  if (G.cfg.dialect == D_LLAMA) SB_LIT(b, "{\"choices\":[");
  else {
    SB_LIT(b, "{\"id\":\"");
    sb_str(b, c->id);
    sb_str(b, chat ? "\",\"object\":\"chat.completion\",\"created\":" : "\",\"object\":\"text_completion\",\"created\":");
    sb_i64(b, (int64_t)c->created);
    SB_LIT(b, ",\"model\":\"");
    sb_mem(b, c->model.p, c->model.len);
    SB_LIT(b, "\",\"choices\":[");
  }
  if (chat) {
    if (G.cfg.dialect == D_LLAMA) {
      SB_LIT(b, "{\"finish_reason\":\"");
      sb_str(b, finish_str(c));
      SB_LIT(b, "\",\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"");
    } else SB_LIT(b, "{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"");
    sb_json_esc(b, c->text.p ? c->text.p : "", c->text.len);
    SB_LIT(b, "\"");
    if (c->rtext.len) {
      SB_LIT(b, ",\"reasoning_content\":\"");
      sb_json_esc(b, c->rtext.p, c->rtext.len);
      SB_LIT(b, "\"");
    }
    SB_LIT(b, "}");
    if (G.cfg.dialect != D_LLAMA) {
      SB_LIT(b, ",\"logprobs\":null,\"finish_reason\":\"");
      sb_str(b, finish_str(c));
      SB_LIT(b, "\"");
      if (G.cfg.dialect == D_OPENAI) SB_LIT(b, ",\"stop_reason\":null");
    }
    SB_LIT(b, "}]");
  } else {
    SB_LIT(b, "{\"text\":\"");
    sb_json_esc(b, c->text.p ? c->text.p : "", c->text.len);
    SB_LIT(b, "\",\"index\":0,\"logprobs\":null,\"finish_reason\":\"");
    sb_str(b, finish_str(c));
    SB_LIT(b, "\"}]");
  }
  if (G.cfg.dialect == D_LLAMA) {
    SB_LIT(b, ",\"created\":");
    sb_i64(b, (int64_t)c->created);
    SB_LIT(b, ",\"model\":\"");
    sb_mem(b, c->model.p, c->model.len);
    SB_LIT(b, "\",\"system_fingerprint\":\"");
    sb_str(b, llama_fingerprint);
    sb_str(b, chat ? "\",\"object\":\"chat.completion\"," : "\",\"object\":\"text_completion\",");
    sb_usage(b, c);
    SB_LIT(b, ",\"id\":\"");
    sb_str(b, c->id);
    SB_LIT(b, "\",");
    sb_llama_timings(b, c);
  } else {
    SB_LIT(b, ",");
    sb_usage(b, c);
    if (c->ep == EP_LMS_CHAT || c->ep == EP_LMS_COMPL) { SB_LIT(b, ","); sb_lms_stats(b, c); }
  }
  sb_stamp_end(b, c, stamp);
}

/* ------------------------------------------------------------------ */
/* generation: the per-sequence step                                   */

static void endless_step(conn *c);

static void stream_headers(conn *c) {
  sbuf b = {0};
  const char *ctype;
  if (c->fault == F_CONTENT_TYPE) ctype = "text/plain; charset=utf-8";
  else if (c->ep == EP_OLLAMA_CHAT || c->ep == EP_OLLAMA_GEN) ctype = "application/x-ndjson";
  else if (G.cfg.dialect == D_OPENAI) ctype = "text/event-stream; charset=utf-8";
  else ctype = "text/event-stream";
  head_common(&b, c, 200, ctype);
  if (G.cfg.dialect != D_LLAMA && G.cfg.dialect != D_OLLAMA) SB_LIT(&b, "Cache-Control: no-cache\r\n");
  if (c->chunked) SB_LIT(&b, "Transfer-Encoding: chunked\r\n");
  SB_LIT(&b, "\r\n");
  conn_send(c, b.p, b.len);
  sb_free(&b);
}

/* The generated text of the next token: " word"; in think mode the first
 * and last reasoning tokens are the tags themselves, as real models emit. */
static size_t next_token_text(conn *c, char *buf, int *wid) {
  int w = (int)(splitmix(&c->rng) & 63);
  *wid = w;
  int i = c->emitted;
  if (c->think == R_THINK && i < c->reasoning_n) {
    if (c->reasoning_n == 1) { memcpy(buf, "<think></think>", 15); return 15; }
    if (i == 0) { memcpy(buf, "<think>", 7); return 7; }
    if (i == c->reasoning_n - 1) { memcpy(buf, "</think>", 8); return 8; }
  }
  buf[0] = ' ';
  memcpy(buf + 1, words[w], word_len[w]);
  return 1 + (size_t)word_len[w];
}

/* Stop strings: does the text so far contain one? Returns how many bytes of
 * the new token to keep (the part before the match), or -1 for no match. */
static long stop_match(conn *c, const char *t, size_t n) {
  size_t before = c->tail.len;
  sb_mem(&c->tail, t, n);
  const char *first = NULL;
  for (int i = 0; i < c->n_stops; i++) {
    const char *hit = memmem(c->tail.p, c->tail.len, c->stops[i], strlen(c->stops[i]));
    if (hit && (!first || hit < first)) first = hit;
  }
  if (first) {
    long keep = (long)(first - c->tail.p) - (long)before;
    if (keep >= 0) return keep;
    /* it began in earlier tokens: a whole answer can drop that part; a
     * stream has sent it already */
    size_t back = (size_t)-keep;
    if (!c->stream) c->text.len = c->text.len > back ? c->text.len - back : 0;
    return 0;
  }
  /* keep enough of the text for the longest stop string to span tokens */
  size_t keep = 64;
  for (int i = 0; i < c->n_stops; i++) if (strlen(c->stops[i]) + 64 > keep) keep = strlen(c->stops[i]) + 64;
  if (c->tail.len > 2 * keep) {
    memmove(c->tail.p, c->tail.p + c->tail.len - keep, keep);
    c->tail.len = keep;
  }
  return -1;
}

static void finish_request(conn *c, sbuf *b, int64_t now);

/* Faults that fire mid-response. Returns 1 when the stream must stop here
 * (the connection may be closed: check the return of the caller's flush). */
static int mid_fault(conn *c, sbuf *b) {
  c->fault_done = 1;
  switch (c->fault) {
  case F_BAD_JSON:
    if (c->stream) {
      if (c->ep == EP_OLLAMA_CHAT || c->ep == EP_OLLAMA_GEN) SB_LIT(b, "{\"model\":\"x\",\"message\":{\"content\":\" broken\"\n");
      else SB_LIT(b, "data: {\"choices\":[{\"delta\":{\"content\":\" broken\"}\n\n");
    }
    return 0;
  case F_HUGE_EVENT:
    return 0;   /* handled as the token itself */
  case F_STALL_MID: case F_DROP: case F_ENDLESS_LINE: case F_CRASH:
    return 1;
  default:
    return 0;
  }
}

/* Called when tokens are due (timer) or the socket drained (packed mode). */
static void gen_step(conn *c) {
  sbuf *b = &G.scratch;
  if (b->cap < EV_RESERVE) sb_grow(b, 65536);
  b->len = EV_RESERVE;
  int64_t now = br_now();
  int packed = G.cfg.decode_tps <= 0;
  int stop_now = 0;
  while (c->emitted < c->target) {
    if (!packed && c->next_due > now) break;
    if (c->stream && (b->len >= 65536 || conn_pending(c) > (4u << 20))) break;
    if (c->fault_at == c->emitted && !c->fault_done && c->fault != F_NONE) {
      if (mid_fault(c, b)) { stop_now = 1; break; }
    }
    char tok[64];
    int wid;
    size_t n = next_token_text(c, tok, &wid);
    int reasoning = c->emitted < c->reasoning_n;
    long keep = c->n_stops && !reasoning ? stop_match(c, tok, n) : -1;
    if (keep == 0) { c->finished = 2; break; }   /* the stop string starts this token */
    int64_t stamp = br_now();
    if (c->emitted == 0) c->t_first = stamp;
    if (!packed) record_lateness(stamp - c->next_due);
    int last = c->emitted + 1 == c->target;
    if (keep > 0) { n = (size_t)keep; last = 1; c->finished = 2; }
    else if (last) c->finished = c->max_tokens_set ? 1 : 2;
    int huge = c->fault == F_HUGE_EVENT && c->fault_at == c->emitted;
    if (c->stream) {
      if (c->emitted == 0 && is_chat(c) && G.cfg.dialect == D_OPENAI) fmt_role(b, c, stamp);
      if (huge) {
        char *pad = malloc(G.cfg.huge_event_bytes);
        if (!pad) abort();
        memset(pad, 'a', G.cfg.huge_event_bytes);
        fmt_token(b, c, pad, G.cfg.huge_event_bytes, reasoning, last, wid, stamp);
        free(pad);
      } else {
        fmt_token(b, c, tok, n, reasoning, last, wid, stamp);
      }
      G.c_events++;
    } else {
      sbuf *dst = reasoning && c->think == R_FIELD ? &c->rtext : &c->text;
      sb_mem(dst, tok, n);
      if (huge) {
        if (dst->len + G.cfg.huge_event_bytes > dst->cap) sb_grow(dst, dst->len + G.cfg.huge_event_bytes);
        memset(dst->p + dst->len, 'a', G.cfg.huge_event_bytes);
        dst->len += G.cfg.huge_event_bytes;
      }
    }
    c->emitted++;
    c->t_last = stamp;
    G.c_gen_tokens++;
    G.kv_tokens++;
    if (G.cfg.kv_bytes_per_token) touch_kv();
    if (keep > 0) break;
    if (!packed) c->next_due += decode_interval(c);
  }
  if (!stop_now && (c->finished || c->emitted >= c->target) && c->fault != F_NONE && !c->fault_done) {
    if (mid_fault(c, b)) stop_now = 1;
  }
  if (stop_now) {
    int f = c->fault;
    if (c->stream && send_events(c, b) < 0) return;
    if (!c->stream && (f == F_STALL_MID || f == F_DROP || f == F_ENDLESS_LINE)) {
      /* a non-streaming answer breaks off after its headers promised more */
      sbuf h = {0};
      head_common(&h, c, 200, "application/json");
      SB_LIT(&h, "Content-Length: 1000000\r\n\r\n{\"id\":\"");
      sb_str(&h, c->id);
      SB_LIT(&h, "\",\"choices\":[");
      int r = conn_send(c, h.p, h.len);
      sb_free(&h);
      if (r < 0) return;
    }
    release_slot(c);
    if (f == F_CRASH) crash("crash fault");
    if (f == F_DROP) {
      c->keepalive = 0;
      c->state = CS_DRAIN;
      c->close_after_write = 1;
      if (conn_pending(c) == 0) conn_linger(c);
      return;
    }
    if (f == F_ENDLESS_LINE) {
      c->state = CS_ENDLESS;
      if (c->stream) {
        static const char start[] = "data: {\"choices\":[{\"delta\":{\"content\":\"";
        if (conn_send_body(c, start, sizeof start - 1) < 0) return;
      }
      endless_step(c);
      return;
    }
    c->state = CS_STALLED;   /* stall-mid */
    return;
  }
  if (c->emitted >= c->target || c->finished) {
    finish_request(c, b, br_now());
    return;
  }
  if (c->stream && send_events(c, b) < 0) return;
  if (packed) {
    if (conn_pending(c)) c->resume_on_drain = 1;
    else br_timer_start(G.loop, &c->tick, now, tick_cb, c);
  } else if (c->stream && conn_pending(c) > (4u << 20)) {
    c->resume_on_drain = 1;
  } else {
    br_timer_start(G.loop, &c->tick, c->next_due, tick_cb, c);
  }
}

static void finish_request(conn *c, sbuf *b, int64_t now) {
  if (!c->finished) c->finished = c->max_tokens_set ? 1 : 2;
  if (c->emitted == 0) c->t_first = c->t_last = now;
  if (c->stream) {
    fmt_final(b, c, now);
    if (send_events(c, b) < 0) return;
    if (c->chunked && conn_send(c, "0\r\n\r\n", 5) < 0) return;
    if (c->http10) c->keepalive = 0;
  } else {
    sbuf body = {0};
    fmt_full(&body, c, now);
    if (c->fault == F_BAD_JSON && body.len > 2) body.len -= 2;
    const char *ctype = c->fault == F_CONTENT_TYPE ? "text/plain; charset=utf-8" : "application/json";
    release_slot(c);
    G.c_success++;
    G.c_prompt_seconds += (double)(c->t_first - c->t_slot) / 1e9;
    G.c_gen_seconds += (double)(c->t_last - c->t_first) / 1e9;
    send_full(c, 200, ctype, body.p, body.len, NULL);   /* c may be gone after this */
    sb_free(&body);
    return;
  }
  release_slot(c);
  G.c_success++;
  G.c_prompt_seconds += (double)(c->t_first - c->t_slot) / 1e9;
  G.c_gen_seconds += (double)(c->t_last - c->t_first) / 1e9;
  conn_begin_next(c);
}

static void endless_step(conn *c) {
  static char xs[65536];
  if (!xs[0]) memset(xs, 'x', sizeof xs);
  if (c->endless_sent >= (256u << 20)) { conn_close(c); return; }
  if (conn_pending(c) == 0) {
    if (conn_send_body(c, xs, sizeof xs) < 0) return;
    c->endless_sent += sizeof xs;
  }
  br_timer_start(G.loop, &c->tick, br_now() + 10000000, tick_cb, c);
}

static void tick_cb(br_loop *loop, br_timer *t) {
  conn *c = t->data;
  if (c->state == CS_ENDLESS) endless_step(c);
  else if (c->state == CS_ACTIVE) gen_step(c);
}

/* A sequence gets its slot: prefill, then decode. */
static void start_sequence(conn *c) {
  c->state = CS_ACTIVE;
  c->in_slot = 1;
  G.active++;
  G.kv_tokens += c->prompt_tokens;
  if (G.cfg.kv_bytes_per_token) touch_kv();
  int64_t now = br_now();
  c->t_slot = now;
  if (!G.loaded) return;
  if (c->waited_load_ns == 0 && G.t_loaded > c->t_arrive) c->waited_load_ns = G.t_loaded - c->t_arrive;
  c->next_due = now + prefill_ns(c);
  br_timer_start(G.loop, &c->tick, c->next_due, tick_cb, c);
}

static void admit_queued(void) {
  if (!G.loaded) return;
  while (G.qhead && G.active < G.cfg.slots) {
    conn *c = G.qhead;
    queue_remove(c);
    start_sequence(c);
  }
}

/* ------------------------------------------------------------------ */
/* request parsing                                                     */

static int json_text_bytes(const cJSON *content, size_t *bytes) {
  if (cJSON_IsString(content)) { *bytes += strlen(content->valuestring); return 0; }
  if (cJSON_IsNull(content)) return 0;
  if (cJSON_IsArray(content)) {
    const cJSON *part;
    cJSON_ArrayForEach(part, content) {
      if (cJSON_IsString(part)) { *bytes += strlen(part->valuestring); continue; }
      const cJSON *txt = cJSON_GetObjectItemCaseSensitive(part, "text");
      if (cJSON_IsString(txt)) *bytes += strlen(txt->valuestring);
    }
    return 0;
  }
  return -1;
}

/* The fault of this request: asked for (header, then body field), else
 * drawn for --fault. -1: an unknown kind was asked for. */
static int pick_fault(conn *c, const char *header_fault, size_t hlen, const cJSON *body) {
  if (header_fault) {
    if (hlen == 4 && !strncasecmp(header_fault, "none", 4)) return F_NONE;
    int k = find_fault(header_fault, hlen);
    return k == F_NONE ? -1 : k;
  }
  const cJSON *f = body ? cJSON_GetObjectItemCaseSensitive(body, "sim_fault") : NULL;
  if (f && !cJSON_IsNull(f)) {
    if (!cJSON_IsString(f)) return -1;
    if (!strcmp(f->valuestring, "none")) return F_NONE;
    int k = find_fault(f->valuestring, strlen(f->valuestring));
    return k == F_NONE ? -1 : k;
  }
  for (int i = 1; i < F_COUNT; i++)
    if (G.cfg.fault_prob[i] > 0 && rng_unit(&G.rng) < G.cfg.fault_prob[i]) return i;
  return F_NONE;
}

/* Fill the request fields from its JSON. Returns 0, or sends an error and
 * returns -1. */
static int parse_generation(conn *c, cJSON *root) {
  char msg[160];
  if (!cJSON_IsObject(root)) {
    send_error(c, G.cfg.dialect == D_LLAMA ? 500 : 400, "invalid_request_error",
               "request body: expected a JSON object");
    return -1;
  }
  int ollama = c->ep == EP_OLLAMA_CHAT || c->ep == EP_OLLAMA_GEN;
  size_t bytes = 0;
  if (is_chat(c)) {
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(root, "messages");
    if (!cJSON_IsArray(msgs)) {
      send_error(c, 400, "invalid_request_error", "messages: expected a list of messages");
      return -1;
    }
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs) {
      if (!cJSON_IsObject(m) || json_text_bytes(cJSON_GetObjectItemCaseSensitive(m, "content"), &bytes)) {
        send_error(c, 400, "invalid_request_error", "messages: each message needs a string (or text parts) content");
        return -1;
      }
    }
  } else {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "prompt");
    if (!p && !ollama) {
      send_error(c, 400, "invalid_request_error", "prompt: required");
      return -1;
    }
    if (cJSON_IsString(p)) {
      bytes += strlen(p->valuestring);
      if (c->ep == EP_LLAMA_COMPL) sb_json_esc(&c->prompt_echo, p->valuestring, strlen(p->valuestring));
    } else if (cJSON_IsArray(p)) {
      const cJSON *x;
      cJSON_ArrayForEach(x, p) {
        if (cJSON_IsString(x)) bytes += strlen(x->valuestring);
        else if (cJSON_IsNumber(x)) bytes += 4;   /* a token id is one token */
        else { send_error(c, 400, "invalid_request_error", "prompt: expected a string or a list"); return -1; }
      }
    } else if (p && !cJSON_IsNull(p)) {
      send_error(c, 400, "invalid_request_error", "prompt: expected a string or a list");
      return -1;
    }
    if (ollama) {
      const cJSON *sys = cJSON_GetObjectItemCaseSensitive(root, "system");
      if (cJSON_IsString(sys)) bytes += strlen(sys->valuestring);
      /* Ollama's GenerateHandler: an empty prompt loads the model (or, with
       * keep_alive 0, unloads it) and generates nothing */
      if (!p || cJSON_IsNull(p) || (cJSON_IsString(p) && !p->valuestring[0])) {
        const cJSON *ka = cJSON_GetObjectItemCaseSensitive(root, "keep_alive");
        int zero = (cJSON_IsNumber(ka) && ka->valuedouble == 0) ||
                   (cJSON_IsString(ka) && (!strcmp(ka->valuestring, "0") || !strcmp(ka->valuestring, "0s") ||
                                           !strcmp(ka->valuestring, "0m")));
        c->load_only = zero ? 2 : 1;
      }
    }
  }
  c->prompt_tokens = (int)((bytes + 3) / 4);
  if (c->prompt_tokens > 100000000) c->prompt_tokens = 100000000;

  /* model */
  const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
  const char *mname = G.cfg.models[0];
  if (cJSON_IsString(model) && model->valuestring[0] && G.cfg.dialect != D_LLAMA) {
    int known = 0;
    for (int i = 0; i < G.cfg.nmodels; i++) if (!strcmp(G.cfg.models[i], model->valuestring)) known = 1;
    if (!known && G.cfg.strict_models) {
      snprintf(msg, sizeof msg, "The model `%.100s` does not exist.", model->valuestring);
      send_error(c, 404, "NotFoundError", msg);
      return -1;
    }
    mname = model->valuestring;
  }
  sb_json_esc(&c->model, mname, strlen(mname));

  /* stream */
  const cJSON *st = cJSON_GetObjectItemCaseSensitive(root, "stream");
  c->stream = ollama ? !cJSON_IsFalse(st) : cJSON_IsTrue(st);
  const cJSON *so = cJSON_GetObjectItemCaseSensitive(root, "stream_options");
  c->include_usage = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(so, "include_usage"));

  /* n */
  const cJSON *nn = cJSON_GetObjectItemCaseSensitive(root, "n");
  if (nn && !cJSON_IsNull(nn) && !(cJSON_IsNumber(nn) && nn->valuedouble == 1)) {
    send_error(c, 400, "invalid_request_error", "n: only n=1 is supported by the simulator");
    return -1;
  }

  /* max tokens */
  const cJSON *mt = NULL;
  if (ollama) mt = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "options"), "num_predict");
  else if (c->ep == EP_LLAMA_COMPL) mt = cJSON_GetObjectItemCaseSensitive(root, "n_predict");
  if (!mt || cJSON_IsNull(mt)) mt = cJSON_GetObjectItemCaseSensitive(root, "max_completion_tokens");
  if (!mt || cJSON_IsNull(mt)) mt = cJSON_GetObjectItemCaseSensitive(root, "max_tokens");
  c->max_tokens_set = 0;
  int target = G.cfg.output_tokens + G.cfg.reasoning_tokens;
  if (mt && !cJSON_IsNull(mt)) {
    if (!cJSON_IsNumber(mt) || mt->valuedouble != floor(mt->valuedouble)) {
      send_error(c, 400, "invalid_request_error", "max_tokens: expected an integer");
      return -1;
    }
    double v = mt->valuedouble;
    if (v >= 0 && v < 1 && !ollama && c->ep != EP_LLAMA_COMPL) {
      send_error(c, 400, "invalid_request_error", "max_tokens: must be at least 1");
      return -1;
    }
    if (v >= 1) {   /* -1 (llama.cpp, Ollama, LM Studio): no limit */
      c->max_tokens_set = 1;
      target = v > 100000000 ? 100000000 : (int)v;
    }
  }
  c->target = target;

  /* reasoning */
  c->think = G.cfg.reasoning;
  const cJSON *think = cJSON_GetObjectItemCaseSensitive(root, "think");
  if (ollama && cJSON_IsFalse(think)) c->think = R_NONE;
  if (ollama && cJSON_IsTrue(think) && c->think == R_NONE) c->think = R_FIELD;
  c->reasoning_n = c->think == R_NONE ? 0 : G.cfg.reasoning_tokens;
  if (c->think != R_NONE && c->reasoning_n == 0) c->think = R_NONE;

  /* stop */
  const cJSON *stop = cJSON_GetObjectItemCaseSensitive(root, "stop");
  if (ollama) stop = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "options"), "stop");
  if (cJSON_IsString(stop) && stop->valuestring[0]) {
    c->stops[c->n_stops++] = strdup(stop->valuestring);
  } else if (cJSON_IsArray(stop)) {
    const cJSON *s;
    cJSON_ArrayForEach(s, stop) {
      if (!cJSON_IsString(s) || c->n_stops == MAX_STOPS) {
        send_error(c, 400, "invalid_request_error", "stop: expected a string or up to 4 strings");
        return -1;
      }
      if (s->valuestring[0]) c->stops[c->n_stops++] = strdup(s->valuestring);
    }
  } else if (stop && !cJSON_IsNull(stop)) {
    send_error(c, 400, "invalid_request_error", "stop: expected a string or up to 4 strings");
    return -1;
  }

  /* seed: the text depends on --seed, the request's seed and its prompt */
  const cJSON *seed = cJSON_GetObjectItemCaseSensitive(root, "seed");
  if (ollama) seed = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "options"), "seed");
  c->seed_field = cJSON_IsNumber(seed) ? (long)seed->valuedouble : -1;
  uint64_t h = fnv1a((const char *)&G.cfg.seed, sizeof G.cfg.seed, 0xcbf29ce484222325ULL);
  h = fnv1a((const char *)&c->seed_field, sizeof c->seed_field, h);
  h ^= (uint64_t)bytes * 0x9e3779b97f4a7c15ULL;
  c->rng = h;
  static const char alnum[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  const char *pre = is_chat(c) || G.cfg.dialect == D_LLAMA ? "chatcmpl-" : "cmpl-";
  size_t pl = strlen(pre);
  memcpy(c->id, pre, pl);
  uint64_t idr = G.rng ^ (c->req_id * 0x9e3779b97f4a7c15ULL);
  for (int i = 0; i < 24; i++) c->id[pl + i] = alnum[splitmix(&idr) % 62];
  c->id[pl + 24] = 0;
  return 0;
}

static int header_is(const char *name, size_t nl, const char *want) {
  return strlen(want) == nl && !strncasecmp(name, want, nl);
}

/* ------------------------------------------------------------------ */
/* GET endpoints                                                       */


static void get_models(conn *c, int lms) {
  sbuf b = {0};
  SB_LIT(&b, "{\"object\":\"list\",\"data\":[");
  for (int i = 0; i < G.cfg.nmodels; i++) {
    if (i) SB_LIT(&b, ",");
    SB_LIT(&b, "{\"id\":\"");
    sb_json_esc(&b, G.cfg.models[i], strlen(G.cfg.models[i]));
    if (lms) {
      SB_LIT(&b, "\",\"object\":\"model\",\"type\":\"llm\",\"publisher\":\"benchrun\",\"arch\":\"llama\","
                 "\"compatibility_type\":\"gguf\",\"quantization\":\"Q4_K_M\",\"state\":\"");
      sb_str(&b, G.loaded ? "loaded" : "not-loaded");
      SB_LIT(&b, "\",\"max_context_length\":");
      sb_i64(&b, G.cfg.ctx_size);
      SB_LIT(&b, "}");
    } else if (G.cfg.dialect == D_LLAMA) {
      SB_LIT(&b, "\",\"object\":\"model\",\"created\":");
      sb_i64(&b, (int64_t)G.start_wall);
      SB_LIT(&b, ",\"owned_by\":\"llamacpp\",\"meta\":{\"vocab_type\":1,\"n_vocab\":32064,\"n_ctx_train\":");
      sb_i64(&b, G.cfg.ctx_size);
      SB_LIT(&b, ",\"n_embd\":4096,\"n_params\":7000000000,\"size\":");
      sb_u64(&b, G.cfg.model_memory);
      SB_LIT(&b, "}}");
    } else if (G.cfg.dialect == D_OLLAMA) {
      SB_LIT(&b, "\",\"object\":\"model\",\"created\":");
      sb_i64(&b, (int64_t)G.start_wall);
      SB_LIT(&b, ",\"owned_by\":\"library\"}");
    } else {
      SB_LIT(&b, "\",\"object\":\"model\",\"created\":");
      sb_i64(&b, (int64_t)G.start_wall);
      SB_LIT(&b, ",\"owned_by\":\"");
      sb_str(&b, G.cfg.dialect == D_LMSTUDIO ? "organization_owner" : "vllm");
      SB_LIT(&b, "\",\"max_model_len\":");
      sb_i64(&b, G.cfg.ctx_size);
      SB_LIT(&b, "}");
    }
  }
  SB_LIT(&b, "]}");
  send_full(c, 200, "application/json", b.p, b.len, NULL);
  sb_free(&b);
}

static void ollama_model_entry(sbuf *b, const char *name, int ps) {
  SB_LIT(b, "{\"name\":\"");
  sb_json_esc(b, name, strlen(name));
  SB_LIT(b, "\",\"model\":\"");
  sb_json_esc(b, name, strlen(name));
  SB_LIT(b, "\",");
  if (!ps) SB_LIT(b, "\"modified_at\":\"2025-01-01T00:00:00Z\",");
  SB_LIT(b, "\"size\":");
  sb_u64(b, G.cfg.model_memory);
  SB_LIT(b, ",\"digest\":\"");
  char hex[65];
  uint64_t h = fnv1a(name, strlen(name), 0xcbf29ce484222325ULL);
  for (int i = 0; i < 64; i++) hex[i] = "0123456789abcdef"[splitmix(&h) & 15];
  hex[64] = 0;
  sb_str(b, hex);
  SB_LIT(b, "\",\"details\":{\"parent_model\":\"\",\"format\":\"gguf\",\"family\":\"llama\","
            "\"families\":[\"llama\"],\"parameter_size\":\"7B\",\"quantization_level\":\"Q4_K_M\"}");
  if (ps) {
    SB_LIT(b, ",\"expires_at\":\"2099-01-01T00:00:00Z\",\"size_vram\":");
    sb_u64(b, G.cfg.model_memory);
  }
  SB_LIT(b, "}");
}

static void get_metrics(conn *c) {
  sbuf b = {0};
  long kv_tokens = 0;
  for (conn *x = G.conns; x; x = x->next)
    if (x->in_slot) kv_tokens += x->prompt_tokens + x->emitted;
  double kv_use = (double)kv_tokens / ((double)G.cfg.slots * G.cfg.ctx_size);
  if (kv_use > 1) kv_use = 1;
  if (G.cfg.dialect == D_LLAMA) {
    sb_printf(&b,
      "# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.\n"
      "# TYPE llamacpp:prompt_tokens_total counter\nllamacpp:prompt_tokens_total %llu\n"
      "# HELP llamacpp:prompt_seconds_total Prompt process time\n"
      "# TYPE llamacpp:prompt_seconds_total counter\nllamacpp:prompt_seconds_total %.3f\n",
      (unsigned long long)G.c_prompt_tokens, G.c_prompt_seconds);
    sb_printf(&b,
      "# HELP llamacpp:tokens_predicted_total Number of generation tokens processed.\n"
      "# TYPE llamacpp:tokens_predicted_total counter\nllamacpp:tokens_predicted_total %llu\n"
      "# HELP llamacpp:tokens_predicted_seconds_total Predict process time\n"
      "# TYPE llamacpp:tokens_predicted_seconds_total counter\nllamacpp:tokens_predicted_seconds_total %.3f\n",
      (unsigned long long)G.c_gen_tokens, G.c_gen_seconds);
    sb_printf(&b,
      "# HELP llamacpp:kv_cache_usage_ratio KV-cache usage. 1 means 100 percent usage.\n"
      "# TYPE llamacpp:kv_cache_usage_ratio gauge\nllamacpp:kv_cache_usage_ratio %g\n"
      "# HELP llamacpp:kv_cache_tokens KV-cache tokens.\n"
      "# TYPE llamacpp:kv_cache_tokens gauge\nllamacpp:kv_cache_tokens %ld\n"
      "# HELP llamacpp:requests_processing Number of requests processing.\n"
      "# TYPE llamacpp:requests_processing gauge\nllamacpp:requests_processing %d\n"
      "# HELP llamacpp:requests_deferred Number of requests deferred.\n"
      "# TYPE llamacpp:requests_deferred gauge\nllamacpp:requests_deferred %ld\n",
      kv_use, kv_tokens, G.active, G.qlen);
  } else {
    sbuf lbl = {0};
    SB_LIT(&lbl, "{model_name=\"");
    sb_str(&lbl, G.cfg.models[0]);
    SB_LIT(&lbl, "\"}");
    sb_mem(&lbl, "", 1);
    sb_printf(&b,
      "# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
      "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running%s %d.0\n"
      "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n"
      "# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting%s %ld.0\n",
      lbl.p, G.active, lbl.p, G.qlen);
    sb_printf(&b,
      "# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.\n"
      "# TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc%s %g\n"
      "# HELP vllm:gpu_cache_usage_perc GPU KV-cache usage. 1 means 100 percent usage.\n"
      "# TYPE vllm:gpu_cache_usage_perc gauge\nvllm:gpu_cache_usage_perc%s %g\n",
      lbl.p, kv_use, lbl.p, kv_use);
    sb_printf(&b,
      "# HELP vllm:prompt_tokens_total Number of prefill tokens processed.\n"
      "# TYPE vllm:prompt_tokens_total counter\nvllm:prompt_tokens_total%s %llu.0\n"
      "# HELP vllm:generation_tokens_total Number of generation tokens processed.\n"
      "# TYPE vllm:generation_tokens_total counter\nvllm:generation_tokens_total%s %llu.0\n",
      lbl.p, (unsigned long long)G.c_prompt_tokens, lbl.p, (unsigned long long)G.c_gen_tokens);
    sb_free(&lbl);
  }
  sb_printf(&b,
    "# HELP sim_requests_total Generation requests received.\n# TYPE sim_requests_total counter\n"
    "sim_requests_total %llu\n"
    "# HELP sim_requests_rejected_total Requests rejected (loading, queue full).\n"
    "# TYPE sim_requests_rejected_total counter\nsim_requests_rejected_total %llu\n"
    "# HELP sim_responses_error_total Error responses (4xx, 5xx) sent.\n"
    "# TYPE sim_responses_error_total counter\nsim_responses_error_total %llu\n"
    "# HELP sim_requests_success_total Generation requests completed.\n"
    "# TYPE sim_requests_success_total counter\nsim_requests_success_total %llu\n",
    (unsigned long long)G.c_requests, (unsigned long long)G.c_rejected, (unsigned long long)G.c_errors,
    (unsigned long long)G.c_success);
  sb_printf(&b,
    "# HELP sim_events_total Streamed token events.\n# TYPE sim_events_total counter\nsim_events_total %llu\n"
    "# HELP sim_writes_total write system calls.\n# TYPE sim_writes_total counter\nsim_writes_total %llu\n"
    "# HELP sim_connections Open connections.\n# TYPE sim_connections gauge\nsim_connections %ld\n"
    "# HELP sim_memory_touched_bytes Model memory touched so far.\n# TYPE sim_memory_touched_bytes gauge\n"
    "sim_memory_touched_bytes %llu\n",
    (unsigned long long)G.c_events, (unsigned long long)G.c_writes, G.nconns,
    (unsigned long long)(G.mem_touched + G.kv_touched));
  SB_LIT(&b, "# HELP sim_event_lateness_seconds Event send time minus its scheduled time.\n"
             "# TYPE sim_event_lateness_seconds histogram\n");
  uint64_t cum = 0;
  for (int i = 0; i < 10; i++) {
    cum += G.late_buckets[i];
    sb_printf(&b, "sim_event_lateness_seconds_bucket{le=\"%g\"} %llu\n", (double)late_bounds_ns[i] / 1e9,
              (unsigned long long)cum);
  }
  cum += G.late_buckets[10];
  sb_printf(&b, "sim_event_lateness_seconds_bucket{le=\"+Inf\"} %llu\nsim_event_lateness_seconds_sum %.9f\n"
                "sim_event_lateness_seconds_count %llu\n",
            (unsigned long long)cum, G.late_sum, (unsigned long long)G.late_count);
  send_full(c, 200, "text/plain; version=0.0.4; charset=utf-8", b.p, b.len, NULL);
  sb_free(&b);
}

static void get_slots(conn *c) {
  sbuf b = {0};
  SB_LIT(&b, "[");
  conn *in_slot[64];
  int n = 0;
  for (conn *x = G.conns; x && n < 64; x = x->next) if (x->in_slot) in_slot[n++] = x;
  int shown = G.cfg.slots < 64 ? G.cfg.slots : 64;
  for (int i = 0; i < shown; i++) {
    conn *x = i < n ? in_slot[i] : NULL;
    if (i) SB_LIT(&b, ",");
    SB_LIT(&b, "{\"id\":");
    sb_i64(&b, i);
    SB_LIT(&b, ",\"id_task\":");
    sb_i64(&b, x ? (int64_t)x->req_id : -1);
    SB_LIT(&b, ",\"n_ctx\":");
    sb_i64(&b, G.cfg.ctx_size);
    SB_LIT(&b, ",\"speculative\":false,\"is_processing\":");
    sb_str(&b, x ? "true" : "false");
    SB_LIT(&b, ",\"params\":{\"n_predict\":");
    sb_i64(&b, x && x->max_tokens_set ? x->target : -1);
    SB_LIT(&b, ",\"seed\":4294967295,\"temperature\":0.800000011920929,\"stream\":");
    sb_str(&b, x && x->stream ? "true" : "false");
    SB_LIT(&b, "},\"prompt\":\"\",\"next_token\":{\"has_next_token\":");
    sb_str(&b, x ? "true" : "false");
    SB_LIT(&b, ",\"has_new_line\":false,\"n_remain\":");
    sb_i64(&b, x ? x->target - x->emitted : -1);
    SB_LIT(&b, ",\"n_decoded\":");
    sb_i64(&b, x ? x->emitted : 0);
    SB_LIT(&b, ",\"stopping_word\":\"\"}}");
  }
  SB_LIT(&b, "]");
  send_full(c, 200, "application/json", b.p, b.len, NULL);
  sb_free(&b);
}

static void get_health(conn *c) {
  if (G.loaded) {
    static const char ok[] = "{\"status\":\"ok\"}";
    send_full(c, 200, "application/json", ok, sizeof ok - 1, NULL);
  } else if (G.cfg.dialect == D_LLAMA) {
    static const char ld[] = "{\"error\":{\"code\":503,\"message\":\"Loading model\",\"type\":\"unavailable_error\"}}";
    send_full(c, 503, "application/json", ld, sizeof ld - 1, NULL);
  } else {
    static const char ld[] = "{\"status\":\"loading\"}";
    send_full(c, 503, "application/json", ld, sizeof ld - 1, NULL);
  }
}

/* ------------------------------------------------------------------ */
/* dispatch                                                            */

static int route(const char *path, size_t pl, int *is_post) {
  static const struct { const char *path; int ep; int dialects; } posts[] = {
    {"/v1/chat/completions", EP_CHAT, 15},
    {"/v1/completions", EP_COMPL, 15},
    {"/completion", EP_LLAMA_COMPL, 1 << D_LLAMA},
    {"/completions", EP_LLAMA_COMPL, 1 << D_LLAMA},
    {"/chat/completions", EP_CHAT, 1 << D_LLAMA},
    {"/api/v0/chat/completions", EP_LMS_CHAT, 1 << D_LMSTUDIO},
    {"/api/v0/completions", EP_LMS_COMPL, 1 << D_LMSTUDIO},
    {"/api/chat", EP_OLLAMA_CHAT, 1 << D_OLLAMA},
    {"/api/generate", EP_OLLAMA_GEN, 1 << D_OLLAMA},
  };
  for (size_t i = 0; i < sizeof posts / sizeof posts[0]; i++) {
    if (strlen(posts[i].path) == pl && !memcmp(posts[i].path, path, pl) &&
        (posts[i].dialects & (1 << G.cfg.dialect))) {
      *is_post = 1;
      return posts[i].ep;
    }
  }
  *is_post = 0;
  return EP_NONE;
}

static int path_is(const char *p, size_t n, const char *want) { return strlen(want) == n && !memcmp(p, want, n); }

static void handle_get(conn *c, const char *path, size_t pl) {
  int d = G.cfg.dialect;
  if (path_is(path, pl, "/health") || (d == D_OLLAMA && path_is(path, pl, "/"))) {
    if (d == D_OLLAMA && path_is(path, pl, "/")) {
      static const char s[] = "Ollama is running";
      send_full(c, 200, "text/plain; charset=utf-8", s, sizeof s - 1, NULL);
      return;
    }
    get_health(c);
  } else if (path_is(path, pl, "/v1/models") || (d == D_LLAMA && path_is(path, pl, "/models"))) {
    get_models(c, 0);
  } else if (path_is(path, pl, "/metrics")) {
    get_metrics(c);
  } else if (d == D_LLAMA && path_is(path, pl, "/slots")) {
    get_slots(c);
  } else if (d == D_LMSTUDIO && path_is(path, pl, "/api/v0/models")) {
    get_models(c, 1);
  } else if (d == D_LMSTUDIO && pl > 15 && !memcmp(path, "/api/v0/models/", 15)) {
    sbuf name = {0};
    sb_mem(&name, path + 15, pl - 15);
    sb_mem(&name, "", 1);
    int found = -1;
    for (int i = 0; i < G.cfg.nmodels; i++) if (!strcmp(G.cfg.models[i], name.p)) found = i;
    if (found < 0) {
      sb_free(&name);
      send_error(c, 404, "invalid_request_error", "model not found");
      return;
    }
    sbuf b = {0};
    SB_LIT(&b, "{\"id\":\"");
    sb_json_esc(&b, name.p, name.len - 1);
    SB_LIT(&b, "\",\"object\":\"model\",\"type\":\"llm\",\"publisher\":\"benchrun\",\"arch\":\"llama\","
               "\"compatibility_type\":\"gguf\",\"quantization\":\"Q4_K_M\",\"state\":\"");
    sb_str(&b, G.loaded ? "loaded" : "not-loaded");
    SB_LIT(&b, "\",\"max_context_length\":");
    sb_i64(&b, G.cfg.ctx_size);
    SB_LIT(&b, "}");
    send_full(c, 200, "application/json", b.p, b.len, NULL);
    sb_free(&b);
    sb_free(&name);
  } else if (d == D_OLLAMA && (path_is(path, pl, "/api/tags") || path_is(path, pl, "/api/ps"))) {
    int ps = path_is(path, pl, "/api/ps");
    sbuf b = {0};
    SB_LIT(&b, "{\"models\":[");
    if (!ps || G.loaded) {
      for (int i = 0; i < G.cfg.nmodels; i++) {
        if (i) SB_LIT(&b, ",");
        ollama_model_entry(&b, G.cfg.models[i], ps);
      }
    }
    SB_LIT(&b, "]}");
    send_full(c, 200, "application/json; charset=utf-8", b.p, b.len, NULL);
    sb_free(&b);
  } else if (d == D_OLLAMA && path_is(path, pl, "/api/version")) {
    static const char v[] = "{\"version\":\"0.5.7\"}";
    send_full(c, 200, "application/json; charset=utf-8", v, sizeof v - 1, NULL);
  } else {
    int post;
    int ep = route(path, pl, &post);
    if (ep != EP_NONE) {
      c->ep = ep;   /* for the Allow header */
      send_error(c, 405, "invalid_request_error", "method not allowed (use POST)");
      return;
    }
    send_error(c, 404, "invalid_request_error", "not found");
  }
}

/* The answer to a load-only (or unload) /api/generate, as Ollama's
 * GenerateHandler sends it (server/routes.go): one JSON object, streamed or
 * not, with an empty response, done_reason "load" or "unload" and no
 * durations. A load is answered once the model is loaded. */
static void send_ollama_load(conn *c) {
  sbuf b = {0};
  SB_LIT(&b, "{\"model\":\"");
  sb_mem(&b, c->model.p, c->model.len);
  SB_LIT(&b, "\",\"created_at\":\"");
  sb_created_at(&b);
  SB_LIT(&b, "\",\"response\":\"\",\"done\":true,\"done_reason\":\"");
  sb_str(&b, c->load_only == 2 ? "unload" : "load");
  SB_LIT(&b, "\"}");
  send_full(c, 200, "application/json; charset=utf-8", b.p, b.len, NULL);
  sb_free(&b);
}

/* Load-only requests waiting in the queue are answered when the load ends. */
static void answer_load_waiters(void) {
  conn *c = G.qhead;
  while (c) {
    conn *next = c->qnext;
    if (c->load_only) {
      queue_remove(c);
      send_ollama_load(c);
    }
    c = next;
  }
}

static void handle_generation(conn *c, const char *fault_hdr, size_t fhl) {
  const char *body = c->in.p + c->head_len;
  cJSON *root = cJSON_ParseWithLength(body, c->body_len);
  G.c_requests++;
  if (!root) {
    char msg[200];
    const char *where = cJSON_GetErrorPtr();
    long off = where && where >= body && where <= body + c->body_len ? (long)(where - body) : -1;
    snprintf(msg, sizeof msg, "request body: invalid JSON at byte %ld", off);
    if (G.cfg.dialect == D_LLAMA) send_error(c, 500, "server_error", msg);
    else send_error(c, 400, G.cfg.dialect == D_OPENAI ? "BadRequestError" : "invalid_request_error", msg);
    return;
  }
  int fault = pick_fault(c, fault_hdr, fhl, root);
  if (fault < 0) {
    cJSON_Delete(root);
    send_error(c, 400, "invalid_request_error",
               "X-Sim-Fault / sim_fault: unknown fault kind (refuse, http500, http503, stall-first-byte, "
               "stall-mid, drop, bad-json, content-type, huge-event, endless-line, crash, none)");
    return;
  }
  int r = parse_generation(c, root);
  cJSON_Delete(root);
  if (r < 0) return;
  if (c->load_only) {
    if (G.loaded || c->load_only == 2) {
      send_ollama_load(c);
      return;
    }
    queue_append(c);
    return;
  }
  c->fault = fault;
  G.gen_requests++;
  if (G.cfg.crash_after >= 0 && G.gen_requests > (uint64_t)G.cfg.crash_after) {
    char why[64];
    snprintf(why, sizeof why, "--crash-after %ld reached", G.cfg.crash_after);
    crash(why);
  }
  switch (fault) {
  case F_REFUSE:
    conn_close(c);
    return;
  case F_HTTP500:
    send_error(c, 500, "InternalServerError", "simulated internal error (fault http500)");
    return;
  case F_HTTP503:
    send_error(c, 503, "ServiceUnavailableError", "simulated overload (fault http503)");
    return;
  case F_STALL_FIRST:
    c->state = CS_STALLED;
    return;
  default:
    break;
  }
  if (!G.loaded && G.cfg.dialect != D_OLLAMA) {
    G.c_rejected++;
    send_error(c, 503, "unavailable_error", "Loading model");
    return;
  }
  int full = G.active >= G.cfg.slots || G.qhead || !G.loaded;
  if (full && G.cfg.max_queue >= 0 && G.qlen >= G.cfg.max_queue) {
    G.c_rejected++;
    send_error(c, G.cfg.queue_status, G.cfg.queue_status == 429 ? "rate_limit_error" : "unavailable_error",
               "server busy: queue full (--max-queue)");
    return;
  }
  G.c_prompt_tokens += (uint64_t)c->prompt_tokens;
  c->fault_at = c->target / 2;
  c->t_arrive = c->t_read ? c->t_read : br_now();
  c->created = time(NULL);
  if (c->stream) stream_headers(c);
  if (full) {
    queue_append(c);
  } else {
    start_sequence(c);
  }
}

/* A complete request is in c->in: dispatch it. */
static void dispatch(conn *c) {
  br_timer_stop(G.loop, &c->tmo);
  c->req_id = ++G.next_req_id;
  const char *p = c->in.p;
  const char *sp1 = memchr(p, ' ', c->head_len);
  const char *method = p;
  size_t ml = sp1 ? (size_t)(sp1 - p) : 0;
  const char *path = sp1 + 1;
  const char *sp2 = memchr(path, ' ', c->head_len - (size_t)(path - p));
  size_t pl = (size_t)(sp2 - path);
  const char *q = memchr(path, '?', pl);
  if (q) pl = (size_t)(q - path);
  const char *fault_hdr = NULL;
  size_t fhl = 0;
  /* find X-Sim-Fault again (headers were validated in parse_head) */
  const char *line = memchr(p, '\n', c->head_len) + 1;
  const char *end = p + c->head_len;
  while (line < end) {
    const char *nl = memchr(line, '\n', (size_t)(end - line));
    if (!nl) break;
    const char *colon = memchr(line, ':', (size_t)(nl - line));
    if (colon && header_is(line, (size_t)(colon - line), "x-sim-fault")) {
      const char *v = colon + 1;
      while (v < nl && (*v == ' ' || *v == '\t')) v++;
      const char *ve = nl;
      while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ')) ve--;
      fault_hdr = v;
      fhl = (size_t)(ve - v);
    }
    line = nl + 1;
  }
  int post;
  int ep = route(path, pl, &post);
  if (ml == 3 && !memcmp(method, "GET", 3)) { handle_get(c, path, pl); return; }
  if (ml == 4 && !memcmp(method, "POST", 4)) {
    if (ep == EP_NONE) {
      /* a GET-only path: 405; anything else: 404 */
      if (path_is(path, pl, "/health") || path_is(path, pl, "/v1/models") || path_is(path, pl, "/metrics"))
        send_error(c, 405, "invalid_request_error", "method not allowed (use GET)");
      else send_error(c, 404, "invalid_request_error", "not found");
      return;
    }
    c->ep = ep;
    handle_generation(c, fault_hdr, fhl);
    return;
  }
  c->ep = ep;
  send_error(c, 405, "invalid_request_error", "method not allowed");
}

/* Parse the request head. Returns 0 when it is complete and valid (body
 * length known), 1 when more input is needed, -1 when an error was sent. */
static int parse_head(conn *c) {
  char *p = c->in.p;
  size_t n = c->in.len;
  char *e = memmem(p, n, "\r\n\r\n", 4);
  size_t hl;
  if (e) hl = (size_t)(e - p) + 4;
  else if ((e = memmem(p, n, "\n\n", 2))) hl = (size_t)(e - p) + 2;
  else {
    if (n > G.cfg.max_head) { send_error_close(c, 431, "request head too large"); return -1; }
    return 1;
  }
  if (hl > G.cfg.max_head) { send_error_close(c, 431, "request head too large"); return -1; }
  c->head_len = hl;
  char *nl = memchr(p, '\n', hl);
  char *sp1 = memchr(p, ' ', (size_t)(nl - p));
  char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(nl - sp1 - 1)) : NULL;
  c->keepalive = 1;
  c->http10 = 0;
  if (!sp1 || !sp2 || sp1 == p || sp2 == sp1 + 1 || sp1[1] != '/') {
    send_error_close(c, 400, "malformed request line");
    return -1;
  }
  size_t vl = (size_t)(nl - sp2 - 1);
  if (vl && sp2[vl] == '\r') vl--;
  if (vl == 8 && !memcmp(sp2 + 1, "HTTP/1.1", 8)) c->http10 = 0;
  else if (vl == 8 && !memcmp(sp2 + 1, "HTTP/1.0", 8)) { c->http10 = 1; c->keepalive = 0; }
  else { send_error_close(c, 505, "only HTTP/1.0 and HTTP/1.1 are served"); return -1; }
  c->chunked = !c->http10;
  long long clen = -1;
  int expect = 0, te = 0;
  char *line = nl + 1;
  char *end = p + hl;
  while (line < end) {
    char *lnl = memchr(line, '\n', (size_t)(end - line));
    if (!lnl || lnl == line || (lnl == line + 1 && *line == '\r')) break;
    char *colon = memchr(line, ':', (size_t)(lnl - line));
    if (!colon || colon == line) { send_error_close(c, 400, "malformed header line"); return -1; }
    size_t nlen = (size_t)(colon - line);
    char *v = colon + 1;
    while (v < lnl && (*v == ' ' || *v == '\t')) v++;
    char *ve = lnl;
    while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t')) ve--;
    size_t vlen = (size_t)(ve - v);
    if (header_is(line, nlen, "content-length")) {
      char tmp[24];
      if (vlen == 0 || vlen >= sizeof tmp) { send_error_close(c, 400, "bad Content-Length"); return -1; }
      memcpy(tmp, v, vlen);
      tmp[vlen] = 0;
      char *ep;
      long long x = strtoll(tmp, &ep, 10);
      if (*ep || x < 0) { send_error_close(c, 400, "bad Content-Length"); return -1; }
      clen = x;
    } else if (header_is(line, nlen, "transfer-encoding")) {
      te = 1;
    } else if (header_is(line, nlen, "connection")) {
      if (vlen == 5 && !strncasecmp(v, "close", 5)) c->keepalive = 0;
      if (vlen == 10 && !strncasecmp(v, "keep-alive", 10)) c->keepalive = 1;
    } else if (header_is(line, nlen, "expect")) {
      if (vlen == 12 && !strncasecmp(v, "100-continue", 12)) expect = 1;
    }
    line = lnl + 1;
  }
  if (te) { send_error_close(c, 411, "chunked request bodies are not supported: send Content-Length"); return -1; }
  if (clen < 0) clen = 0;
  if ((unsigned long long)clen > G.cfg.max_body) {
    send_error_close(c, 413, "request body too large (--max-body)");
    return -1;
  }
  c->body_len = (size_t)clen;
  if (expect && c->in.len < hl + c->body_len) {
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    if (conn_send(c, cont, sizeof cont - 1) < 0) return -1;
  }
  return 0;
}

/* Parse and dispatch what the input holds. */
static void handle_input(conn *c) {
  if (c->state == CS_HEAD) {
    int r = parse_head(c);
    if (r != 0) return;
    c->state = CS_BODY;
  }
  if (c->state == CS_BODY && c->in.len >= c->head_len + c->body_len) dispatch(c);
}

static void conn_io(br_loop *loop, br_io *io, int events) {
  conn *c = io->data;
  if (events & BR_WRITE) {
    if (conn_flush(c) < 0) return;
    if (c->resume_on_drain && conn_pending(c) == 0) {
      c->resume_on_drain = 0;
      if (c->state == CS_ACTIVE) {
        gen_step(c);
        return;
      }
    }
  }
  if (events & (BR_READ | BR_HUP)) {
    for (;;) {
      int reading = c->state == CS_HEAD || c->state == CS_BODY;
      size_t limit = G.cfg.max_head + G.cfg.max_body + 65536;
      if (c->in.len >= limit) {
        if (reading) { send_error_close(c, 413, "request too large"); return; }
        /* a client that talks over a streamed response: drop the excess */
        c->in.len = c->head_len + c->body_len;
      }
      size_t want = c->in.cap - c->in.len;
      if (want < 4096) {
        sb_grow(&c->in, c->in.len + 16384);
        want = c->in.cap - c->in.len;
      }
      /* the kernel's arrival time of these bytes: the request arrived with
       * the read that completed it (t_arrive), however late this loop got here */
      ssize_t r = br_recv_stamped(c->fd, c->in.p + c->in.len, want, br_now(), &c->t_read);
      if (r > 0 && c->state == CS_LINGER) continue;   /* discarded */
      if (r > 0) {
        if (c->state == CS_HEAD && c->in.len == 0)
          br_timer_start(G.loop, &c->tmo, br_now() + G.cfg.header_timeout_ns, tmo_cb, c);
        c->in.len += (size_t)r;
        if (reading) {
          handle_input(c);
          return;   /* c may be gone; level-triggered polling brings us back */
        }
        continue;
      }
      if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        conn_close(c);   /* client went away: cancels its request */
        return;
      }
      if (errno == EINTR) continue;
      break;
    }
  }
}

/* ------------------------------------------------------------------ */
/* listening                                                           */

static void listen_cb(br_loop *loop, br_io *io, int events);

static void accept_retry_cb(br_loop *loop, br_timer *t) {
  br_io_start(loop, &G.lio, G.lfd, BR_READ, listen_cb, NULL);
}

static void listen_cb(br_loop *loop, br_io *io, int events) {
  for (int i = 0; i < 256; i++) {
    int fd = accept(G.lfd, NULL, NULL);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        /* out of descriptors: pause accepting for a moment */
        br_io_stop(loop, &G.lio);
        br_timer_start(loop, &G.accept_retry, br_now() + 50000000, accept_retry_cb, NULL);
      }
      return;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    br_sock_stamp_arrivals(fd);
    conn *c = calloc(1, sizeof *c);
    if (!c) { close(fd); return; }
    c->fd = fd;
    c->state = CS_HEAD;
    c->keepalive = 1;
    c->next = G.conns;
    if (G.conns) G.conns->prev = c;
    G.conns = c;
    G.nconns++;
    if (br_io_start(loop, &c->io, fd, BR_READ, conn_io, c) != 0) { conn_close(c); continue; }
    br_timer_start(loop, &c->tmo, br_now() + G.cfg.idle_timeout_ns, tmo_cb, c);
  }
}

static int open_listener(void) {
  struct addrinfo hints = {0}, *res = NULL;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  char port[16];
  snprintf(port, sizeof port, "%d", G.cfg.port);
  int rc = getaddrinfo(G.cfg.host, port, &hints, &res);
  if (rc != 0) {
    fprintf(stderr, "benchrun sim: --host %s: %s\n", G.cfg.host, gai_strerror(rc));
    return -1;
  }
  int fd = -1;
  int err = 0;
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0) { err = errno; continue; }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (G.cfg.reuse_port) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 4096) == 0) break;
    err = errno;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0) {
    fprintf(stderr, "benchrun sim: cannot listen on %s:%d: %s\n", G.cfg.host, G.cfg.port, strerror(err));
    return -1;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  getsockname(fd, (struct sockaddr *)&ss, &sl);
  int bound = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                       : ntohs(((struct sockaddr_in *)&ss)->sin_port);
  G.cfg.port = bound;
  G.lfd = fd;
  return 0;
}

static int write_port_file(void) {
  if (!G.cfg.port_file) return 0;
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp%ld", G.cfg.port_file, (long)getpid());
  FILE *f = fopen(tmp, "w");
  if (!f || fprintf(f, "%d\n", G.cfg.port) < 0 || fclose(f) != 0 || rename(tmp, G.cfg.port_file) != 0) {
    fprintf(stderr, "benchrun sim: --port-file %s: %s\n", G.cfg.port_file, strerror(errno));
    return -1;
  }
  return 0;
}

static void on_signal(int sig) {
  stop_signal = sig;
  if (G.loop) br_loop_wakeup(G.loop);
}

/* Wait for the next event. epoll waits in whole milliseconds (rounded up),
 * so the last part of the wait before a token is due is a precise sleep:
 * that keeps events within ~0.1 ms of schedule at a cost of at most 1 ms
 * of I/O latency. */
static void run_loop(void) {
  while (!stop_signal) {
    int64_t next = br_loop_next_timer(G.loop);
    int64_t timeout = -1;
    if (next != INT64_MAX) {
      int64_t d = next - br_now();
      if (d >= 1000000) timeout = d / 1000000 * 1000000;
      else {
        if (d > 0) {
          struct timespec ts = {0, (long)d};
          nanosleep(&ts, NULL);
        }
        timeout = 0;
      }
    }
    br_loop_run_once(G.loop, timeout);
  }
}

int br_sim_main(int argc, char **argv) {
  memset(&G, 0, sizeof G);
  stop_signal = 0;
  int r = parse_args(argc, argv);
  if (r >= 0) return r;
  for (int i = 0; i < 64; i++) word_len[i] = (unsigned char)strlen(words[i]);
  G.rng = G.cfg.seed * 0x2545f4914f6cdd1dULL + 12345;
  G.start_wall = time(NULL);

  /* many connections: raise the descriptor limit to its ceiling */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  signal(SIGPIPE, SIG_IGN);
  G.loop = br_loop_new();
  if (!G.loop) { fprintf(stderr, "benchrun sim: cannot create the event loop\n"); return 1; }
  if (open_listener() < 0) { br_loop_free(G.loop); return 1; }

  G.t_start = br_now();
  if (G.cfg.load_ns == 0) {
    touch_memory(G.cfg.model_memory);
    G.loaded = 1;
    G.t_loaded = G.t_start;
  }
  br_io_start(G.loop, &G.lio, G.lfd, BR_READ, listen_cb, NULL);
  if (write_port_file() < 0) { close(G.lfd); br_loop_free(G.loop); return 1; }
  printf("benchrun sim listening on http://%s%s%s:%d\n", strchr(G.cfg.host, ':') ? "[" : "", G.cfg.host,
         strchr(G.cfg.host, ':') ? "]" : "", G.cfg.port);
  fflush(stdout);
  if (!G.loaded) load_tick(G.loop, &G.load_timer);

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  run_loop();

  while (G.conns) conn_close(G.conns);
  br_io_stop(G.loop, &G.lio);
  br_timer_stop(G.loop, &G.load_timer);
  br_timer_stop(G.loop, &G.accept_retry);
  close(G.lfd);
  br_loop_free(G.loop);
  G.loop = NULL;
  free(G.mem);
  free(G.kv_mem);
  sb_free(&G.scratch);
  return 0;
}
