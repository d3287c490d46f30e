/* Pulling the fields an LLM benchmark needs out of each streamed event of an
 * OpenAI-style (SSE) or Ollama-style (NDJSON) response, in C and without
 * allocating per event: content and reasoning text are appended to
 * per-request buffers, the rarer objects (usage, timings, stats, errors, the
 * final Ollama object) are kept as raw JSON text for Lua to decode once at
 * the end. No Lua here.
 *
 * Recognised, wherever the servers put them:
 *   choices[0].delta|message .content / .reasoning_content / .reasoning,
 *   choices[0].text, choices[0].finish_reason, usage, timings (llama.cpp),
 *   stats (LM Studio /api/v0), content + stop (llama.cpp /completion),
 *   message.content / message.thinking, response, thinking, done, done_reason
 *   (Ollama), error, sim_ns (benchrun sim's send time), and "[DONE]";
 *   choices[0].delta|message .tool_calls (OpenAI, vLLM, llama.cpp: pieces
 *   of {index, id, type, function {name, arguments}}, arguments a string
 *   streamed in pieces) and message.tool_calls (Ollama: whole calls, their
 *   arguments a JSON object), assembled per call (br_llm_tool).
 *   choices[0].logprobs and llama.cpp's completion_probabilities are kept
 *   as raw JSON entries (one memcpy per event; Lua decodes them once).
 * Text inside <think>...</think> in the content goes to the reasoning
 * buffer, with tags split across events handled. */
#ifndef BENCHRUN_LLMCHUNK_H
#define BENCHRUN_LLMCHUNK_H

#include "sse.h"

#include <stddef.h>
#include <stdint.h>

/* One tool call, assembled from its deltas. */
typedef struct br_llm_tool {
  int64_t index;          /* the call's "index" (-1: the server gave none) */
  br_buf id, name;        /* unescaped, from the first delta that had them */
  br_buf args;            /* arguments: the string pieces joined with their escapes
                           * intact (a \u surrogate pair may span two pieces), or
                           * the raw JSON value when it was not a string (Ollama) */
  int args_raw;           /* args holds a raw JSON value, not string pieces */
  int pieces;             /* events that added to args */
  int split_utf8;         /* pieces that ended inside a UTF-8 character */
  size_t undo_id, undo_name, undo_args;   /* lengths before the current event */
  int undo_pieces, undo_split, undo_raw;
} br_llm_tool;

typedef struct br_llm {
  br_buf content;         /* answer text (unescaped UTF-8) */
  br_buf reasoning;       /* reasoning text, from fields or <think> */
  br_buf usage;           /* the last non-null "usage" object, raw JSON */
  br_buf timings;         /* the last "timings" object (llama.cpp) */
  br_buf stats;           /* the last "stats" object (LM Studio /api/v0) */
  br_buf final;           /* the whole event that said done (Ollama) */
  br_buf error;           /* the first in-stream "error" value, raw JSON */
  br_buf logprobs;        /* per-token logprob entries, raw JSON, comma-joined
                           * (choices[0].logprobs.content[*], llama.cpp's
                           * completion_probabilities[*], or a legacy
                           * /v1/completions logprobs object whole) */
  uint64_t logprob_events;   /* events that carried logprobs */
  uint64_t text_no_logprobs; /* events with text but without logprobs */
  char finish[32];        /* finish_reason / done_reason ("" if none) */
  int done;               /* saw [DONE], done:true or stop:true */
  int in_think;           /* inside <think> ... </think> */
  int think_seen;         /* content used <think> tags */
  char held[16];          /* the start of a possible tag, held back */
  int nheld;
  br_buf scratch;         /* text being split at <think> tags */
  int64_t sim_arrival_ns; /* benchrun sim: when the request arrived there (0: not said) */
  br_llm_tool *tools;     /* tool calls, in the order they began */
  int ntools, captools;
  uint64_t tools_dropped;  /* calls past BR_LLM_MAX_TOOLS, not kept */
  uint64_t bad_json;      /* events that were not valid JSON */
  uint64_t events;
} br_llm;

enum { BR_LLM_NONE = 0, BR_LLM_CONTENT = 1, BR_LLM_REASONING = 2, BR_LLM_TOOL = 3 };

/* At most this many tool calls per answer are kept; more are counted in
 * tools_dropped (a runaway server must not grow memory without end). */
enum { BR_LLM_MAX_TOOLS = 64 };

/* What one event carried. */
typedef struct br_llm_delta {
  int kind;              /* BR_LLM_NONE (no text), BR_LLM_CONTENT, BR_LLM_REASONING or
                          * BR_LLM_TOOL (only a tool call's name, id or arguments) */
  size_t content_added;  /* bytes appended to content by this event */
  size_t reasoning_added;
  int has_sim_ns;
  int64_t sim_ns;
  int done;              /* this event ended the stream */
} br_llm_delta;

void br_llm_init(br_llm *s);
void br_llm_free(br_llm *s);

/* Decode one event's data. Returns 0, -1 if it was not valid JSON (counted
 * in bad_json; the delta is then empty), or -2 when out of memory. */
int br_llm_event(br_llm *s, const char *data, size_t n, br_llm_delta *out);

/* A tool call's arguments as text: string pieces unescaped (0), or the raw
 * JSON value copied. -1 on a bad escape (out gets the raw text), -2 out of memory. */
int br_llm_tool_arguments(const br_llm_tool *t, br_buf *out);

/* End of stream: release held-back bytes of an unfinished tag as text. */
void br_llm_finish(br_llm *s);

/* Append the JSON string body s[0..n) (between the quotes, escapes intact)
 * to b as UTF-8. Returns 0, -1 on a bad escape, -2 out of memory. */
int br_json_unescape(br_buf *b, const char *s, size_t n);

/* Skip one JSON value starting at p (after whitespace); returns the byte
 * after it, or NULL if it is malformed or runs past end. */
const char *br_json_skip(const char *p, const char *end);

#endif
