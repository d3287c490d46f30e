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
 * The files of engine/sim/, one idea each (docs/sim.md, "Source layout"):
 *   options.c     the option table: parsing, --help, ranges, bench.sim for Lua
 *   sim.c         br_sim_main: setup, the loop, shutdown
 *   conn.c        connections: accept, read, HTTP framing, write, keep-alive
 *   endpoints.c   routing, the GET endpoints, generation requests' admission
 *   metrics.c     GET /metrics in the dialect's names
 *   request.c     a generation request's JSON body
 *   gen.c         generation: the timing model, slots and queue, the token step
 *   memory.c      model and KV-cache memory, the OOM kill, crashes
 *   prefix.c      the prefix cache (--prefix-cache) and its reset endpoints
 *   logprobs.c    the logprob model (--logprob-noise) and its wire entries
 *   energy.c      the synthetic power source (--power-sysfs): energy, heat, throttling
 *   wire*.c       the wire formats: wire.c picks one; wire_openai.c (OpenAI SSE
 *                 and JSON in each dialect's variant), wire_llama.c (llama.cpp's
 *                 /completion), wire_ollama.c (Ollama's NDJSON)
 *   out.c         JSON text into a br_buf
 * The wire formats of the dialects and the exact timing model are described
 * in docs/sim.md; keep the two in step.
 *
 * All state lives in one sim_t, reached from each connection (c->sim) and
 * each callback's data: no file-scope state but the signal flag. */
#ifndef BENCHRUN_SIM_H
#define BENCHRUN_SIM_H

#include "benchrun/loop.h"
#include "buf.h"

#include <cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>

enum { SIM_EXIT_USAGE = 2 };

/* ------------------------------------------------------------------ */
/* configuration                                                        */

enum dialect { D_OPENAI, D_LLAMA, D_LMSTUDIO, D_OLLAMA };
enum reasoning { R_NONE, R_FIELD, R_THINK };
enum tool_args { TA_VALID, TA_SPLIT_UTF8, TA_INVALID };
enum fault {
  F_NONE, F_REFUSE, F_HTTP500, F_HTTP503, F_STALL_FIRST, F_STALL_MID, F_DROP, F_BAD_JSON,
  F_CONTENT_TYPE, F_HUGE_EVENT, F_ENDLESS_LINE, F_CRASH, F_COUNT
};

enum { MAX_MODELS = 32, MAX_STOPS = 4 };

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
  int decode_steps;            /* tokens due on a shared grid of the decode interval */
  long max_queue;            /* -1: unlimited */
  int queue_status;          /* 503 or 429 */
  double jitter;
  uint64_t seed;
  int reasoning;
  int reasoning_tokens;
  int reasoning_exhaust;     /* every token of a request with max_tokens is reasoning */
  int tool_calls;            /* answer a request that offers tools with a call */
  int tool_args;             /* TA_*: how the call's arguments are sent */
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
  int prefix_cache;          /* tokens the prefix cache holds (0: off; prefix.c) */
  double logprob_noise;      /* quantization-like noise on logprobs (logprobs.c) */
  /* energy.c: the synthetic power source */
  const char *power_sysfs;
  double power_idle_w, power_j_per_token, heat_c_per_j, throttle_temp_c, throttle_slowdown;
  int64_t cool_ns;
} sim_cfg;

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

typedef struct sim sim_t;
typedef struct conn conn;
struct conn {
  sim_t *sim;
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
  br_buf in;
  size_t head_len, body_len;
  br_buf out;
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
  br_buf tail;           /* recent output, for stop strings */
  br_buf text, rtext;    /* full answer (non-streaming) */
  br_buf model;          /* JSON-escaped model name */
  br_buf prompt_echo;    /* llama.cpp /completion echoes its prompt (escaped) */
  int tool;              /* the answer is a tool call (tools.c) */
  br_buf tool_name;      /* its function's name (escaped) */
  br_buf tool_args;      /* its arguments (raw JSON text, unescaped) */
  size_t tool_off;       /* arguments sent so far */
  int tool_fits;         /* the whole call fits in max_tokens: it ends with "tool_calls" */
  char id[40];
  uint64_t rng;
  uint64_t req_id;
  long seed_field;
  int64_t t_arrive, t_slot, t_first, t_last, next_due, waited_load_ns;
  int64_t t_read;        /* when the bytes of the last read arrived (the kernel's stamp) */
  size_t endless_sent;
  int cached_tokens;     /* prompt tokens the prefix cache held (prefix.c) */
  int n_probs;           /* top logprobs asked for; -1: no logprobs (logprobs.c) */
  int lp_n;
  int lp_ids[8];
  double lp_vals[8], lp_chosen;
  uint64_t lp_chain;
  uint64_t lp_offset;    /* text offset of the token (legacy completions logprobs) */
};

struct sim {
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
  br_buf scratch;
  time_t start_wall;
  uint64_t *pc_keys;          /* the prefix cache's block hashes (prefix.c) */
  size_t pc_cap, pc_len, pc_next;
  uint64_t c_prefix_queries, c_prefix_hits;   /* prompt tokens looked up / found */
  /* energy.c: the synthetic machine's counters */
  br_timer power_timer;
  double pw_energy_uj, pw_heat_c;
  uint64_t pw_throttle_count;
  int pw_throttled;
  int64_t pw_last_ns;
};

/* The upper bounds of the event-lateness histogram's buckets (ns). */
extern const int64_t sim_late_bounds_ns[10];

/* ------------------------------------------------------------------ */
/* out.c: JSON text into a br_buf. Out of memory aborts: a simulator
 * that cannot hold its output has nothing sane left to do. These run
 * once or more per token event: keep them inline and free of stdio. */

void sim_out_of_memory(void) __attribute__((noreturn));
static inline void out_mem(br_buf *b, const void *s, size_t n) {
  if (n && br_buf_add(b, s, n) != 0) sim_out_of_memory();
}
#define OUT_LIT(b, s) out_mem((b), "" s, sizeof(s) - 1)   /* literals only */
static inline void out_str(br_buf *b, const char *s) { out_mem(b, s, strlen(s)); }
static inline void out_u64(br_buf *b, uint64_t v) {
  char tmp[24];
  int i = 24;
  do { tmp[--i] = (char)('0' + v % 10); v /= 10; } while (v);
  out_mem(b, tmp + i, (size_t)(24 - i));
}
static inline void out_i64(br_buf *b, int64_t v) {
  if (v < 0) { OUT_LIT(b, "-"); out_u64(b, (uint64_t)(-(v + 1)) + 1); }
  else out_u64(b, (uint64_t)v);
}
/* Room for n more bytes (and the NUL). */
static inline void out_reserve(br_buf *b, size_t n) {
  if (br_buf_reserve(b, n) != 0) sim_out_of_memory();
}
void out_printf(br_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void out_double(br_buf *b, double v);                    /* finite, shortest exact */
void out_json_esc(br_buf *b, const char *s, size_t n);   /* string contents, escaped */

/* Deterministic pseudo-random numbers and hashes (texts, ids, jitter). */
static inline uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
static inline double rng_unit(uint64_t *s) { return (double)(splitmix(s) >> 11) / 9007199254740992.0; }
static inline uint64_t fnv1a(const char *s, size_t n, uint64_t h) {
  for (size_t i = 0; i < n; i++) { h ^= (unsigned char)s[i]; h *= 0x100000001b3ULL; }
  return h;
}

/* ------------------------------------------------------------------ */
/* options.c */

/* Parse argv into cfg (defaults first). -1 to go on, else an exit status
 * (0 after --help, SIM_EXIT_USAGE after a bad option, printed). */
int sim_parse_args(sim_cfg *cfg, int argc, char **argv);
/* The fault kind named by s[0..n) (case-insensitive), or F_NONE. */
int sim_find_fault(const char *s, size_t n);

/* ------------------------------------------------------------------ */
/* conn.c */

int sim_open_listener(sim_t *sim);
int sim_write_port_file(sim_t *sim);
void sim_listen_cb(br_loop *loop, br_io *io, int events);
void sim_conn_close(conn *c);
void sim_conn_linger(conn *c);
/* Queue bytes; write at once when nothing is pending. -1: the connection
 * broke (it is then closed). */
int sim_send_iov(conn *c, struct iovec *iov, int n);
int sim_send(conn *c, const char *p, size_t n);
/* Body bytes of a streamed response, chunk-framed unless HTTP/1.0. */
int sim_send_body(conn *c, const char *p, size_t n);
/* The events formatted into b after SIM_EV_RESERVE bytes, as one chunk. */
enum { SIM_EV_RESERVE = 12 };
int sim_send_events(conn *c, br_buf *b);
static inline size_t sim_pending(const conn *c) { return c->out.len - c->out_off; }
/* The status line and the headers every response has. */
void sim_head_common(br_buf *b, conn *c, int code, const char *ctype);
/* A complete response with a body; then the next request or the close.
 * -1: the connection is gone. */
int sim_send_full(conn *c, int code, const char *ctype, const char *body, size_t n, const char *extra);
/* An error in the dialect's own shape (wire.c's body), as sim_send_full. */
int sim_send_error(conn *c, int code, const char *type, const char *msg);
/* The response is complete: read the next request, or close. -1: gone. */
int sim_begin_next(conn *c);

/* ------------------------------------------------------------------ */
/* endpoints.c, metrics.c, request.c */

/* A complete request is in c->in: route and answer it. */
void sim_dispatch(conn *c);
/* Load-only requests waiting in the queue are answered when the load ends. */
void sim_answer_load_waiters(sim_t *sim);
void sim_get_metrics(conn *c);
/* tokenize.c: POST /tokenize and /detokenize (llama.cpp's; vLLM's for the openai dialect) */
void sim_tokenize(conn *c);
void sim_detokenize(conn *c);
/* The fault of this request: asked for (header, then body field), else
 * drawn for --fault. -1: an unknown kind was asked for. */
int sim_pick_fault(conn *c, const char *header_fault, size_t hlen, const cJSON *body);
/* Fill the request fields from its JSON: 0, or an error was sent: -1. */
int sim_parse_generation(conn *c, cJSON *root);

/* ------------------------------------------------------------------ */
/* gen.c, memory.c */

void sim_queue_append(conn *c);
void sim_queue_remove(conn *c);
void sim_release_slot(conn *c);
void sim_start_sequence(conn *c);
void sim_admit_queued(sim_t *sim);
void sim_gen_step(conn *c);
/* The headers of a streamed response, sent on admission. */
void sim_stream_headers(conn *c);
void sim_load_tick(br_loop *loop, br_timer *t);
void sim_touch_memory(sim_t *sim, uint64_t upto);
void sim_touch_kv(sim_t *sim);
void sim_crash(const char *why) __attribute__((noreturn));

/* prefix.c: the prefix cache and its reset endpoints */
void sim_prefix_lookup(conn *c, const cJSON *root);
int sim_prefix_reset(conn *c, const char *path, size_t pl, const char *query, size_t ql);

/* logprobs.c: the logprob model and its wire entries; gen.c's words */
int sim_parse_logprobs(conn *c, const cJSON *root);
int sim_logprob_step(conn *c);
void sim_put_logprob_entry(br_buf *b, const conn *c, const char *t, size_t n);
void sim_put_logprob_legacy(br_buf *b, const conn *c, const char *t, size_t n);
size_t sim_word_text(int w, char *buf);
/* energy.c: the synthetic power source under --power-sysfs */
void sim_power_start(sim_t *sim);
void sim_power_stop(sim_t *sim);
void sim_power_token(sim_t *sim);
double sim_power_slowdown(const sim_t *sim);

/* ------------------------------------------------------------------ */
/* wire*.c: the bytes of each dialect's answers */

static inline int sim_is_chat(const conn *c) {
  return c->ep == EP_CHAT || c->ep == EP_LMS_CHAT || c->ep == EP_OLLAMA_CHAT;
}
static inline int sim_is_ollama(const conn *c) { return c->ep == EP_OLLAMA_CHAT || c->ep == EP_OLLAMA_GEN; }
static inline const char *sim_finish_str(const conn *c) {
  return c->finished == 2 ? (c->tool && !sim_is_ollama(c) ? "tool_calls" : "stop") : "length";
}

/* One token event; `reasoning`: the token belongs to the reasoning part. */
void sim_fmt_token(br_buf *b, conn *c, const char *t, size_t n, int reasoning, int last, int wid, int64_t stamp);
/* The event before the first token, where the dialect sends one. */
void sim_fmt_first(br_buf *b, conn *c, int64_t stamp);
/* The closing events of a stream. */
void sim_fmt_final(br_buf *b, conn *c, int64_t stamp);
/* The whole answer of a non-streaming request. */
void sim_fmt_full(br_buf *b, conn *c, int64_t stamp);
/* The body of an error response. */
void sim_fmt_error(br_buf *b, int dialect, int code, const char *type, const char *msg);
/* The Content-Type of a streamed answer. */
const char *sim_stream_ctype(const conn *c);
/* The end of every event: its send time (and, in the first, the arrival). */
void put_stamp_end(br_buf *b, const conn *c, int64_t stamp);

/* tools.c: a request that offers tools, answered with a call */
int sim_parse_tools(conn *c, cJSON *root);           /* 0, or an error was sent: -1 */
void sim_tool_token(br_buf *b, conn *c, int64_t stamp);   /* one event of the call */
void sim_tool_message(br_buf *b, conn *c);           /* "tool_calls":[...] of a whole answer */

/* wire_openai.c */
void oai_token(br_buf *b, conn *c, const char *t, size_t n, int field, int last, int64_t stamp);
void oai_role(br_buf *b, conn *c, int64_t stamp);
void oai_final(br_buf *b, conn *c, int64_t stamp);
void oai_full(br_buf *b, conn *c, int64_t stamp);
void put_usage(br_buf *b, conn *c);
/* One tool-call chunk: with id (the call's first event, or a whole call) or
 * a piece of the arguments (args[0..n), raw, escaped here). */
void oai_tool_event(br_buf *b, conn *c, const char *id, int head, const char *args, size_t n, int64_t stamp);

/* wire_llama.c */
extern const char llama_fingerprint[];
void llama_token(br_buf *b, conn *c, const char *t, size_t n, int wid, int64_t stamp);
void llama_final(br_buf *b, conn *c, int64_t stamp);
void llama_full(br_buf *b, conn *c, int64_t stamp);
void put_llama_timings(br_buf *b, conn *c);

/* wire_ollama.c */
void ollama_token(br_buf *b, conn *c, const char *t, size_t n, int field, int64_t stamp);
void ollama_final(br_buf *b, conn *c, int64_t stamp);
void ollama_full(br_buf *b, conn *c, int64_t stamp);
void ollama_load_answer(br_buf *b, conn *c);
void ollama_tool_event(br_buf *b, conn *c, int64_t stamp);
void ollama_tool_calls(br_buf *b, conn *c);   /* "tool_calls":[...], arguments an object */
void ollama_model_entry(sim_t *sim, br_buf *b, const char *name, int ps);

#endif
