/* The simulator's options: one table that drives the parsing of argv, the
 * defaults, the ranges a value must be in, `benchrun sim --help`, and, for
 * Lua, bench.sim.options() (bench.dryrun builds a rehearsal's flags from a
 * plan's dry_run keys with it; docs/sim.md lists the same options, and
 * tests/lua/sim_options_test.lua checks that all of these agree). */
#include "sim.h"
#include "benchrun/runtime.h"

#include <errno.h>
#include <lauxlib.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <strings.h>

static const char *const fault_names[F_COUNT] = {
  "none", "refuse", "http500", "http503", "stall-first-byte", "stall-mid", "drop", "bad-json",
  "content-type", "huge-event", "endless-line", "crash"
};

int sim_find_fault(const char *s, size_t n) {
  for (int i = 1; i < F_COUNT; i++)
    if (strlen(fault_names[i]) == n && !strncasecmp(fault_names[i], s, n)) return i;
  return F_NONE;
}

/* ------------------------------------------------------------------ */
/* values                                                               */

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

/* ------------------------------------------------------------------ */
/* the table                                                            */

enum kind {
  K_HEADING,   /* not an option: a heading of --help */
  K_SWITCH,    /* no value: sets an int to 1 */
  K_TEXT,      /* const char * */
  K_INT,       /* int, min..max */
  K_LONG,      /* long, min..max */
  K_NUM,       /* double, min..max */
  K_DURATION,  /* int64_t ns; min..max in seconds */
  K_SIZE,      /* uint64_t bytes, min..max */
  K_SIZE_T,    /* size_t bytes, min..max */
  K_CHOICE,    /* int: the value of the named choice */
  K_CUSTOM     /* its own function */
};

typedef struct { const char *name; int value; } choice;
typedef struct option option;
struct option {
  const char *flag;
  const char *arg;          /* the value's name in --help */
  int kind;
  size_t off;               /* its field in sim_cfg */
  double min, max;          /* the accepted range (numbers, durations in s, sizes in bytes) */
  int above_min;            /* min itself is not accepted */
  const choice *choices;    /* K_CHOICE: the names (aliases after the first of a value) */
  const char *expect;       /* "expected ..." of its error */
  const char *def;          /* its default value, parsed as given values are */
  const char *shown;        /* the default as --help says it, when not a value */
  const char *help;
  const char *plan;         /* the key of a plan's dry_run: that sets it (bench.dryrun) */
  const char *plan_true;    /* for a boolean plan key: the value `true` gives */
  const char *(*custom)(sim_cfg *c, const char *v);   /* K_CUSTOM (below) */
};

#define AT(f) offsetof(sim_cfg, f)

static const choice dialects[] = {
  {"openai", D_OPENAI}, {"vllm", D_OPENAI}, {"llama.cpp", D_LLAMA}, {"llama-server", D_LLAMA},
  {"llama", D_LLAMA}, {"lmstudio", D_LMSTUDIO}, {"ollama", D_OLLAMA}, {NULL, 0}};
static const choice reasonings[] = {{"none", R_NONE}, {"field", R_FIELD}, {"think", R_THINK}, {NULL, 0}};
static const choice tool_modes[] = {{"on", 1}, {"off", 0}, {NULL, 0}};
static const choice tool_args_kinds[] = {{"valid", TA_VALID}, {"split-utf8", TA_SPLIT_UTF8}, {"invalid", TA_INVALID},
                                         {NULL, 0}};
static const choice queue_statuses[] = {{"503", 503}, {"429", 429}, {NULL, 0}};

/* K_CUSTOM parsers: NULL when set, BAD when v is not a value ("expected
 * <expect>"), else the error's own words. */
static const char BAD[] = "";

static const char *set_model(sim_cfg *c, const char *v) {
  if (!*v) return BAD;
  if (c->nmodels == MAX_MODELS) return "too many models (at most 32)";
  c->models[c->nmodels++] = v;
  return NULL;
}

static const char *set_seed(sim_cfg *c, const char *v) {
  char *end;
  errno = 0;
  unsigned long long s = strtoull(v, &end, 10);
  if (end == v || *end || errno) return BAD;
  c->seed = s;
  return NULL;
}

/* 503 or 429, read as a number (so "+429" is 429) */
static const char *set_queue_status(sim_cfg *c, const char *v) {
  long l;
  if (parse_long(v, 429, 503, &l) || (l != 429 && l != 503)) return BAD;
  c->queue_status = (int)l;
  return NULL;
}

/* NAME=F: if env NAME is set (not empty, not "0"), rates times F. */
static const char *set_speedup(sim_cfg *c, const char *v) {
  double d;
  const char *e = strchr(v, '=');
  if (!e || e == v || parse_double(e + 1, 1e-6, 1e6, &d)) return BAD;
  char name[256];
  size_t n = (size_t)(e - v);
  if (n >= sizeof name) return "variable name too long";
  memcpy(name, v, n);
  name[n] = 0;
  const char *ev = getenv(name);
  if (ev && *ev && strcmp(ev, "0") != 0) {
    c->speedup *= d;
    /* as a real engine logs a setting it read (benchrun shows it in report.md) */
    fprintf(stderr, "benchrun sim: read %s=%s: rates x%g\n", name, ev, d);
  }
  return NULL;
}

static const char *set_fault(sim_cfg *c, const char *v) {
  const char *colon = strchr(v, ':');
  size_t n = colon ? (size_t)(colon - v) : strlen(v);
  int f = sim_find_fault(v, n);
  if (f == F_NONE) return "unknown fault kind (see --help)";
  double d = 1;
  if (colon && parse_double(colon + 1, 0, 1, &d)) return "expected a probability 0..1 after ':'";
  c->fault_prob[f] = d;
  return NULL;
}

static const option options[] = {
  {.kind = K_HEADING, .help = "Listening"},
  {"--host", "ADDR", K_TEXT, AT(host), .def = "127.0.0.1", .help = "listen address"},
  {"--port", "N", K_INT, AT(port), 0, 65535, .expect = "a port number 0..65535", .def = "8080",
   .help = "port, 0 = any free port"},
  {"--port-file", "PATH", K_TEXT, AT(port_file), .help = "write the port number there once listening"},
  {"--reuse-port", NULL, K_SWITCH, AT(reuse_port), .help = "bind with SO_REUSEPORT, as llama-server does"},
  {.kind = K_HEADING, .help = "The model: its load, speed and memory"},
  {"--model", "NAME", K_CUSTOM, 0, .expect = "a model name", .shown = "sim-model", .custom = set_model,
   .help = "a served model (repeatable)"},
  {"--strict-models", NULL, K_SWITCH, AT(strict_models),
   .help = "unknown model names get 404 (default: any name is echoed)"},
  {"--load-time", "DUR", K_DURATION, AT(load_ns), 0, 9e9, .expect = "a duration like 2s or 500ms", .def = "0s",
   .help = "'loading' for this long after start", .plan = "load_time"},
  {"--decode-tps", "N", K_NUM, AT(decode_tps), 0, 1e9, .expect = "a number >= 0", .def = "50",
   .help = "tokens per second per sequence; 0 = as fast as possible", .plan = "decode_tps"},
  {"--prefill-tps", "N", K_NUM, AT(prefill_tps), 1e-3, 1e12, .expect = "a positive number", .def = "2000",
   .help = "prompt tokens per second", .plan = "prefill_tps"},
  {"--model-memory", "SIZE", K_SIZE, AT(model_memory), 0, 1.8e19, .expect = "a size like 512MiB", .def = "0",
   .help = "touch this much memory while loading", .plan = "model_memory"},
  {"--oom-at-memory", "SIZE", K_SIZE, AT(oom_at), 0, 1.8e19, .above_min = 1, .expect = "a size like 1GiB",
   .shown = "never", .help = "SIGKILL itself when touched memory would exceed SIZE", .plan = "oom_at_memory"},
  {"--oom-record", "FILE", K_TEXT, AT(oom_record),
   .help = "before that SIGKILL, write the simulated kernel's OOM record\n"
           "(one JSON line: pid, needed and limit bytes) to FILE"},
  {"--kv-bytes-per-token", "SIZE", K_SIZE, AT(kv_bytes_per_token), 0, 1073741824.0, .expect = "a size like 160KiB",
   .def = "0", .help = "touch this much memory per token in the slots"},
  {"--slots", "N", K_INT, AT(slots), 1, 1000000, .expect = "an integer >= 1", .def = "4",
   .help = "sequences decoded at once", .plan = "slots"},
  {"--batch-slowdown", "K", K_NUM, AT(batch_slowdown), 0, 1e6, .expect = "a number >= 0", .def = "0.05",
   .help = "rate = decode_tps / (1 + K*(active-1))", .plan = "batch_slowdown"},
  {"--decode-steps", NULL, K_SWITCH, AT(decode_steps),
   .help = "sequences share decode steps: every token is due on one clock-wide grid\n"
           "of the decode interval, as a batching server emits one token per\n"
           "running sequence each step (default: each sequence on its own clock)"},
  {"--max-queue", "N", K_LONG, AT(max_queue), -1, 100000000, .expect = "an integer >= 0 (-1: unlimited)",
   .def = "-1", .shown = "unlimited", .help = "queued requests beyond this are rejected; -1 = no limit"},
  {"--queue-status", "CODE", K_CUSTOM, AT(queue_status), .choices = queue_statuses, .expect = "503 or 429",
   .def = "503", .custom = set_queue_status, .help = "status of that rejection"},
  {"--jitter", "F", K_NUM, AT(jitter), 0, 1, .expect = "a fraction 0..1", .def = "0",
   .help = "each interval times 1 +- F, uniform", .plan = "jitter"},
  {"--seed", "N", K_CUSTOM, AT(seed), 0, 18446744073709551615.0, .expect = "an unsigned integer", .def = "1",
   .custom = set_seed, .help = "seed of texts, jitter and faults"},
  {"--speedup-env", "NAME=F", K_CUSTOM, 0, .expect = "NAME=FACTOR with FACTOR > 0", .custom = set_speedup,
   .help = "if env NAME is set, not empty and not \"0\": rates times F\n(F in 1e-06..1e+06; repeatable)",
   .plan = "speedup_env"},
  {.kind = K_HEADING, .help = "Answers"},
  {"--reasoning", "MODE", K_CHOICE, AT(reasoning), .choices = reasonings, .expect = "none, field or think",
   .def = "none", .help = "reasoning before the answer: a field, or <think> in the content",
   .plan = "reasoning", .plan_true = "field"},
  {"--reasoning-tokens", "N", K_INT, AT(reasoning_tokens), 0, 10000000, .expect = "an integer >= 0",
   .shown = "32 when reasoning is on", .help = "reasoning tokens before the answer"},
  {"--reasoning-exhaust", NULL, K_SWITCH, AT(reasoning_exhaust),
   .help = "with --reasoning: a request that sets max_tokens gets only reasoning\n"
           "(the budget runs out before any answer, finish_reason length)"},
  {"--tool-calls", "MODE", K_CHOICE, AT(tool_calls), .choices = tool_modes, .expect = "on or off", .def = "on",
   .help = "on: a chat request that offers tools is answered with a call of\nthe first one (docs/sim.md)"},
  {"--tool-args", "KIND", K_CHOICE, AT(tool_args), .choices = tool_args_kinds,
   .expect = "valid, split-utf8 or invalid", .def = "valid",
   .help = "the call's streamed arguments: valid JSON cut on characters,\n"
           "pieces cut inside UTF-8 characters, or not JSON"},
  {"--output-tokens", "N", K_INT, AT(output_tokens), 1, 100000000, .expect = "an integer >= 1", .def = "128",
   .help = "answer length when a request sets no max_tokens"},
  {"--ctx-size", "N", K_INT, AT(ctx_size), 1, 100000000, .expect = "an integer >= 1", .def = "4096",
   .help = "context per slot, for KV-cache use"},
  {"--prefix-cache", "N", K_INT, AT(prefix_cache), 0, 100000000, .expect = "an integer >= 0", .def = "0",
   .help = "prompt tokens a prefix cache holds; a repeated prefix prefills\nfaster and is reported as cached (0 = off)",
   .plan = "prefix_cache"},
  {"--logprob-noise", "F", K_NUM, AT(logprob_noise), 0, 100, .expect = "a number >= 0", .def = "0",
   .help = "quantization-like noise on the logits behind logprobs", .plan = "logprob_noise"},
  {"--dialect", "D", K_CHOICE, AT(dialect), .choices = dialects, .expect = "openai, llama.cpp, lmstudio or ollama",
   .def = "openai", .help = "the server to look like (vllm = openai; llama-server, llama = llama.cpp)",
   .plan = "dialect"},
  {.kind = K_HEADING, .help = "HTTP limits"},
  {"--header-timeout", "DUR", K_DURATION, AT(header_timeout_ns), 0, 9e9, .above_min = 1,
   .expect = "a positive duration", .def = "10s", .help = "request head and body must arrive within this"},
  {"--idle-timeout", "DUR", K_DURATION, AT(idle_timeout_ns), 0, 9e9, .above_min = 1,
   .expect = "a positive duration", .def = "60s", .help = "close idle keep-alive connections after this"},
  {"--max-body", "SIZE", K_SIZE_T, AT(max_body), 0, 4294967296.0, .above_min = 1, .expect = "a size like 8MiB",
   .def = "8MiB", .help = "larger request bodies get 413"},
  {.kind = K_HEADING, .help = "Faults"},
  {"--fault", "KIND[:P]", K_CUSTOM, 0, .custom = set_fault,
   .help = "inject a fault into each request with probability P (0..1, default 1):\n"
           "refuse http500 http503 stall-first-byte stall-mid drop bad-json\n"
           "content-type huge-event endless-line crash; per request also the\n"
           "header X-Sim-Fault: KIND or the body field \"sim_fault\": \"KIND\""},
  {"--crash-after", "N", K_LONG, AT(crash_after), 0, 1000000000, .expect = "an integer >= 0", .def = NULL,
   .shown = "never", .help = "crash (abort, SIGABRT) when generation request N+1 arrives"},
  {"--huge-event", "SIZE", K_SIZE_T, AT(huge_event_bytes), 0, 2147483648.0, .above_min = 1,
   .expect = "a size like 4MiB", .def = "4MiB", .help = "size of the huge-event fault's event"},
  {.kind = K_HEADING, .help = "A synthetic power source (engine/sim/energy.c; docs/power.md)"},
  {"--power-sysfs", "DIR", K_TEXT, AT(power_sysfs),
   .help = "write a RAPL package, a thermal zone and a throttle count under\n"
           "DIR in the kernel's formats (benchrun reads them with\nBENCHRUN_SYSFS_ROOT=DIR)"},
  {"--power-idle-w", "W", K_NUM, AT(power_idle_w), 0, 10000, .expect = "watts 0..10000", .def = "20",
   .help = "power drawn all the time"},
  {"--power-j-per-token", "J", K_NUM, AT(power_j_per_token), 0, 1e6, .expect = "joules >= 0", .def = "1",
   .help = "energy of each generated token"},
  {"--heat-c-per-j", "C", K_NUM, AT(heat_c_per_j), 0, 1e6, .expect = "a number >= 0", .def = "0",
   .help = "degrees a joule of tokens heats the machine (from 40 C)"},
  {"--cool-time", "DUR", K_DURATION, AT(cool_ns), 0, 3600, .expect = "a duration like 2s", .def = "1s",
   .help = "time constant of cooling back to 40 C"},
  {"--throttle-temp", "C", K_NUM, AT(throttle_temp_c), 0, 1000, .expect = "degrees 0..1000", .def = "0",
   .shown = "never", .help = "throttled at or above this temperature"},
  {"--throttle-slowdown", "F", K_NUM, AT(throttle_slowdown), 1, 1e6, .expect = "a factor >= 1", .def = "2",
   .help = "decode rate divided by F while throttled"},
};
enum { N_OPTIONS = sizeof options / sizeof options[0] };

/* ------------------------------------------------------------------ */
/* parsing                                                              */

static int in_range(const option *o, double v) {
  return v >= o->min && v <= o->max && !(o->above_min && v == o->min);
}

/* Set o from the text v: NULL, or BAD when v is not a value of o, or the
 * error's own words. */
static const char *set_option(sim_cfg *c, const option *o, const char *v) {
  char *at = (char *)c + o->off;
  long l;
  double d;
  int64_t ns;
  uint64_t sz;
  switch (o->kind) {
  case K_TEXT: *(const char **)at = v; return NULL;
  case K_INT:
    if (parse_long(v, (long)o->min, (long)o->max, &l)) return BAD;
    *(int *)at = (int)l;
    return NULL;
  case K_LONG:
    if (parse_long(v, (long)o->min, (long)o->max, &l)) return BAD;
    *(long *)at = l;
    return NULL;
  case K_NUM:
    if (parse_double(v, o->min, o->max, &d)) return BAD;
    *(double *)at = d;
    return NULL;
  case K_DURATION:
    if (parse_duration(v, &ns) || !in_range(o, (double)ns / 1e9)) return BAD;
    *(int64_t *)at = ns;
    return NULL;
  case K_SIZE:
  case K_SIZE_T:
    if (parse_size(v, &sz) || !in_range(o, (double)sz)) return BAD;
    if (o->kind == K_SIZE) *(uint64_t *)at = sz;
    else *(size_t *)at = (size_t)sz;
    return NULL;
  case K_CHOICE:
    for (const choice *ch = o->choices; ch->name; ch++)
      if (!strcmp(ch->name, v)) { *(int *)at = ch->value; return NULL; }
    return BAD;
  case K_CUSTOM: return o->custom(c, v);
  default: return BAD;
  }
}

static const option *find_option(const char *flag) {
  for (int i = 0; i < N_OPTIONS; i++)
    if (options[i].flag && !strcmp(options[i].flag, flag)) return &options[i];
  return NULL;
}

/* The defaults: each option's def, parsed as a given value is; the rest
 * ("never", "unlimited", ...) are the values the code reads as such. */
static void set_defaults(sim_cfg *c) {
  c->reasoning_tokens = -1;   /* 32 when reasoning is on, 0 when off (after parsing) */
  c->speedup = 1;
  c->crash_after = -1;
  c->max_head = 16u << 10;
  for (int i = 0; i < N_OPTIONS; i++) {
    if (options[i].def && set_option(c, &options[i], options[i].def) != NULL) {
      fprintf(stderr, "benchrun sim: %s: bad built-in default '%s'\n", options[i].flag, options[i].def);
      abort();
    }
  }
}

static int bad_flag(const char *flag, const char *why, const char *val) {
  if (val) fprintf(stderr, "benchrun sim: %s: %s, got '%s'\n", flag, why, val);
  else fprintf(stderr, "benchrun sim: %s: %s\n", flag, why);
  return SIM_EXIT_USAGE;
}

static void print_help(FILE *f);

int sim_parse_args(sim_cfg *c, int argc, char **argv) {
  set_defaults(c);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) { print_help(stdout); return 0; }
    const option *o = find_option(a);
    if (o && o->kind == K_SWITCH) { *(int *)((char *)c + o->off) = 1; continue; }
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
    o = find_option(flag);
    if (!o || o->kind == K_SWITCH) return bad_flag(flag, "unknown option (see benchrun sim --help)", NULL);
    const char *bad = set_option(c, o, v);
    if (bad) {
      char why[160];
      if (bad == BAD) snprintf(why, sizeof why, "expected %s", o->expect);
      else snprintf(why, sizeof why, "%s", bad);
      return bad_flag(flag, why, v);
    }
  }
  if (c->nmodels == 0) c->models[c->nmodels++] = "sim-model";
  if (c->reasoning_tokens < 0) c->reasoning_tokens = c->reasoning == R_NONE ? 0 : 32;
  return -1;
}

/* ------------------------------------------------------------------ */
/* --help                                                               */

/* A size as --help writes it: 8MiB, 1GiB, or bytes. */
static void size_text(char *out, size_t n, double v) {
  static const struct { const char *unit; double mult; } units[] = {
    {"GiB", 1073741824.0}, {"MiB", 1048576.0}, {"KiB", 1024.0}};
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
    if (v >= units[i].mult && fmod(v, units[i].mult) == 0) {
      snprintf(out, n, "%.0f%s", v / units[i].mult, units[i].unit);
      return;
    }
  }
  snprintf(out, n, "%.0f", v);
}

/* The values an option accepts, as --help says it ("" when any text). */
static void range_text(const option *o, char *out, size_t n) {
  char lo[32], hi[32];
  out[0] = 0;
  switch (o->kind) {
  case K_INT: case K_LONG: snprintf(out, n, "%.0f..%.0f", o->min, o->max); break;
  case K_NUM: snprintf(out, n, "%g..%g", o->min, o->max); break;
  case K_DURATION: snprintf(out, n, o->above_min ? "> 0" : ">= 0"); break;
  case K_SIZE: case K_SIZE_T:
    size_text(lo, sizeof lo, o->min);
    size_text(hi, sizeof hi, o->max);
    if (o->max >= 1.8e19) snprintf(out, n, o->above_min ? "> %s" : ">= %s", lo);
    else snprintf(out, n, o->above_min ? "%s < SIZE <= %s" : "%s..%s", lo, hi);
    break;
  case K_CHOICE: case K_CUSTOM: {
    if (o->custom == set_seed) { snprintf(out, n, "0..2^64-1"); break; }
    size_t len = 0;   /* each value's first name (the others are aliases) */
    for (const choice *ch = o->choices; ch && ch->name && len < n; ch++)
      if (ch == o->choices || ch[-1].value != ch->value)
        len += (size_t)snprintf(out + len, n - len, "%s%s", len ? " | " : "", ch->name);
    break;
  }
  default: break;
  }
}

/* " ([range], default D)" as --help ends an option's text; "" if neither. */
static void values_text(const option *o, char *out, size_t n) {
  char range[160];
  range_text(o, range, sizeof range);
  const char *def = o->shown ? o->shown : o->def;
  if (range[0] && def) snprintf(out, n, " ([%s], default %s)", range, def);
  else if (range[0]) snprintf(out, n, " ([%s])", range);
  else if (def) snprintf(out, n, " (default %s)", def);
  else out[0] = 0;
}

static void print_help(FILE *f) {
  fputs("usage: benchrun sim [options]\n\n"
        "A simulated OpenAI-compatible LLM server (see docs/sim.md). Each option\n"
        "says the values it accepts in [brackets] and its default.\n", f);
  for (int i = 0; i < N_OPTIONS; i++) {
    const option *o = &options[i];
    if (o->kind == K_HEADING) { fprintf(f, "\n%s:\n", o->help); continue; }
    char left[64], tail[256];
    snprintf(left, sizeof left, "%s%s%s", o->flag, o->arg ? " " : "", o->arg ? o->arg : "");
    values_text(o, tail, sizeof tail);
    /* the help text's lines, then the values: after the last line where
     * that fits in 100 columns, else on a line of their own */
    const char *h = o->help, *nl;
    const char *col = left;
    for (; (nl = strchr(h, '\n')); h = nl + 1, col = "") fprintf(f, "  %-26s %.*s\n", col, (int)(nl - h), h);
    if (29 + strlen(h) + strlen(tail) <= 100) fprintf(f, "  %-26s %s%s\n", col, h, tail);
    else fprintf(f, "  %-26s %s\n  %-26s %s\n", col, h, "", tail + 1);
  }
  fputs("\nDurations: 100ms, 2s, 1.5m, 1h. Sizes: 512MiB, 2GiB, 100MB, bytes.\n"
        "Options also take --name=value.\n"
        "SIGTERM or SIGINT: clean shutdown, exit 0. Bad options: exit 2.\n", f);
}

/* ------------------------------------------------------------------ */
/* bench.sim for Lua                                                    */

static const char *kind_name(const option *o) {
  switch (o->kind) {
  case K_SWITCH: return "switch";
  case K_TEXT: return "text";
  case K_INT: case K_LONG: return "integer";
  case K_NUM: return "number";
  case K_DURATION: return "duration";
  case K_SIZE: case K_SIZE_T: return "size";
  case K_CHOICE: return "choice";
  default: return o->custom == set_seed ? "integer" : o->choices ? "choice" : "text";
  }
}

static void set_str(lua_State *L, const char *k, const char *v) {
  if (!v) return;
  lua_pushstring(L, v);
  lua_setfield(L, -2, k);
}

/* bench.sim.options() -> a list, in --help's order, of {flag, arg, kind,
 * min, max, above_min, choices, default, help, range, plan, plan_true}. */
static int l_options(lua_State *L) {
  lua_createtable(L, N_OPTIONS, 0);
  int n = 0;
  for (int i = 0; i < N_OPTIONS; i++) {
    const option *o = &options[i];
    if (o->kind == K_HEADING) continue;
    lua_createtable(L, 0, 12);
    set_str(L, "flag", o->flag);
    set_str(L, "arg", o->arg);
    set_str(L, "kind", kind_name(o));
    set_str(L, "help", o->help);
    set_str(L, "default", o->shown ? o->shown : o->def);
    set_str(L, "plan", o->plan);
    set_str(L, "plan_true", o->plan_true);
    char range[160];
    range_text(o, range, sizeof range);
    if (range[0]) set_str(L, "range", range);
    if (o->min != o->max) {
      lua_pushnumber(L, o->min);
      lua_setfield(L, -2, "min");
      lua_pushnumber(L, o->max);
      lua_setfield(L, -2, "max");
      lua_pushboolean(L, o->above_min);
      lua_setfield(L, -2, "above_min");
    }
    if (o->choices) {
      lua_newtable(L);
      int k = 0;
      for (const choice *ch = o->choices; ch->name; ch++) {
        lua_pushstring(L, ch->name);
        lua_rawseti(L, -2, ++k);
      }
      lua_setfield(L, -2, "choices");
    }
    lua_rawseti(L, -2, ++n);
  }
  return 1;
}

int luaopen_bench_sim(lua_State *L) {
  static const luaL_Reg funcs[] = {{"options", l_options}, {NULL, NULL}};
  luaL_newlib(L, funcs);
  return 1;
}
