/* bench.power's sources on macOS (power.h). NEVER RUN by this project: it
 * is cross-compiled and linked for macOS (tests/macos/check.sh) and written
 * with care against the interfaces below, but no Mac has executed it.
 *
 *   ioreport:NAME      Apple silicon's energy counters: the "Energy Model"
 *                      group of IOReport (libIOReport.dylib, no root needed),
 *                      loaded with dlopen like IOKit in platform_darwin.c.
 *                      IOReport has no public header: the functions are
 *                      declared here as they are observed to behave (a
 *                      subscription to the group's channels; samples are
 *                      CF dictionaries whose "IOReportChannels" array holds
 *                      one dictionary per channel; the delta of two samples
 *                      gives each channel's energy over the interval, in the
 *                      unit its label names: mJ, uJ or nJ). The deltas are
 *                      added up into a counter per channel. Counted: "CPU
 *                      Energy", "GPU Energy", and the ANE* and DRAM*
 *                      channels; a per-die "..._CPU Energy" or "..._GPU
 *                      Energy" only where the whole-chip one is missing.
 *   thermal-pressure   the system's thermal pressure level, from the notify(3)
 *                      state of "com.apple.system.thermalpressurelevel"
 *                      (<libkern/OSThermalNotification.h>: nominal 0,
 *                      moderate 1, heavy 2, trapping 3, sleeping 4);
 *                      throttled from moderate up.
 * macOS gives no temperature or clock without private SMC calls: none here. */
#include "power.h"

#include <dlfcn.h>
#include <libkern/OSThermalNotification.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* notify(3), as <notify.h> declares it (that header is not in the
 * cross-compiler's SDK; the functions are libSystem's). NOTIFY_STATUS_OK = 0. */
uint32_t notify_register_check(const char *name, int *out_token);
uint32_t notify_get_state(int token, uint64_t *state64);
uint32_t notify_cancel(int token);

enum { MAX_SOURCES = 32 };
enum { K_IOREPORT, K_PRESSURE };

/* CoreFoundation and IOReport: opaque pointers, as their headers define them. */
typedef const void *cf_type;
static struct {
  cf_type (*str)(cf_type, const char *, unsigned);                 /* CFStringCreateWithCString */
  int (*str_get)(cf_type, char *, long, unsigned);                 /* CFStringGetCString */
  cf_type (*dict_get)(cf_type, cf_type);                           /* CFDictionaryGetValue */
  long (*dict_count)(cf_type);                                     /* CFDictionaryGetCount */
  cf_type (*dict_mcopy)(cf_type, long, cf_type);                   /* CFDictionaryCreateMutableCopy */
  long (*arr_count)(cf_type);                                      /* CFArrayGetCount */
  cf_type (*arr_at)(cf_type, long);                                /* CFArrayGetValueAtIndex */
  void (*release)(cf_type);                                        /* CFRelease */
  cf_type (*channels)(cf_type, cf_type, uint64_t, uint64_t, uint64_t);  /* IOReportCopyChannelsInGroup */
  cf_type (*subscribe)(void *, cf_type, cf_type *, uint64_t, cf_type);  /* IOReportCreateSubscription */
  cf_type (*samples)(cf_type, cf_type, cf_type);                   /* IOReportCreateSamples */
  cf_type (*delta)(cf_type, cf_type, cf_type);                     /* IOReportCreateSamplesDelta */
  cf_type (*ch_name)(cf_type);                                     /* IOReportChannelGetChannelName */
  cf_type (*ch_unit)(cf_type);                                     /* IOReportChannelGetUnitLabel */
  int64_t (*ch_int)(cf_type, int32_t);                             /* IOReportSimpleGetIntegerValue */
} io;

#define UTF8 0x08000100u   /* kCFStringEncodingUTF8 */

typedef struct {
  int kind;
  char channel[64];          /* ioreport: the channel's name */
  double total_j;            /* ioreport: the deltas added up */
  int token;                 /* pressure: the notify token */
} mac_src;

struct br_power_set {
  int n;
  br_power_source pub[MAX_SOURCES];
  mac_src priv[MAX_SOURCES];
  cf_type sub, subbed, prev;  /* the IOReport subscription, its channels, the last sample */
  cf_type key_channels;       /* CFSTR("IOReportChannels") */
};

static void note(char *notes, size_t size, const char *text) {
  size_t used = strlen(notes);
  if (used + 1 < size) snprintf(notes + used, size - used, "%s\n", text);
}

static char load_why[160];
static int loaded;
static pthread_once_t load_once = PTHREAD_ONCE_INIT;

static void load_libs(void) {
  void *cf = dlopen("/System/Library/Frameworks/CoreFoundation.framework/CoreFoundation", RTLD_NOW | RTLD_LOCAL);
  void *ior = dlopen("/usr/lib/libIOReport.dylib", RTLD_NOW | RTLD_LOCAL);
  if (!cf || !ior) {
    snprintf(load_why, sizeof load_why, "ioreport: not available: cannot load libIOReport.dylib");
    return;
  }
  *(void **)&io.str = dlsym(cf, "CFStringCreateWithCString");
  *(void **)&io.str_get = dlsym(cf, "CFStringGetCString");
  *(void **)&io.dict_get = dlsym(cf, "CFDictionaryGetValue");
  *(void **)&io.dict_count = dlsym(cf, "CFDictionaryGetCount");
  *(void **)&io.dict_mcopy = dlsym(cf, "CFDictionaryCreateMutableCopy");
  *(void **)&io.arr_count = dlsym(cf, "CFArrayGetCount");
  *(void **)&io.arr_at = dlsym(cf, "CFArrayGetValueAtIndex");
  *(void **)&io.release = dlsym(cf, "CFRelease");
  *(void **)&io.channels = dlsym(ior, "IOReportCopyChannelsInGroup");
  *(void **)&io.subscribe = dlsym(ior, "IOReportCreateSubscription");
  *(void **)&io.samples = dlsym(ior, "IOReportCreateSamples");
  *(void **)&io.delta = dlsym(ior, "IOReportCreateSamplesDelta");
  *(void **)&io.ch_name = dlsym(ior, "IOReportChannelGetChannelName");
  *(void **)&io.ch_unit = dlsym(ior, "IOReportChannelGetUnitLabel");
  *(void **)&io.ch_int = dlsym(ior, "IOReportSimpleGetIntegerValue");
  if (!io.str || !io.str_get || !io.dict_get || !io.dict_count || !io.dict_mcopy || !io.arr_count || !io.arr_at ||
      !io.release || !io.channels || !io.subscribe || !io.samples || !io.delta || !io.ch_name || !io.ch_unit ||
      !io.ch_int) {
    snprintf(load_why, sizeof load_why, "ioreport: not available: libIOReport.dylib lacks a function it is expected to have");
    return;
  }
  loaded = 1;
}

static void cf_text(cf_type s, char *buf, size_t size) {
  buf[0] = 0;
  if (!s || !io.str_get(s, buf, (long)size, UTF8)) buf[0] = 0;
}

/* J per unit of a channel's unit label; 0 when it is not an energy unit */
static double unit_j(cf_type ch) {
  char u[16];
  cf_text(io.ch_unit(ch), u, sizeof u);
  if (!strcmp(u, "mJ")) return 1e-3;
  if (!strcmp(u, "uJ")) return 1e-6;
  if (!strcmp(u, "nJ")) return 1e-9;
  return 0;
}

/* the domain of an Energy Model channel, and whether it is counted; -1: not ours */
static int channel_domain(const char *name, int whole_cpu, int whole_gpu, int *counted) {
  size_t n = strlen(name);
  int ends_cpu = n >= 10 && !strcmp(name + n - 10, "CPU Energy");
  int ends_gpu = n >= 10 && !strcmp(name + n - 10, "GPU Energy");
  *counted = 1;
  if (!strcmp(name, "CPU Energy")) return BR_PDOM_CPU;
  if (!strcmp(name, "GPU Energy")) return BR_PDOM_GPU;
  if (ends_cpu) { *counted = !whole_cpu; return BR_PDOM_CPU; }   /* per die */
  if (ends_gpu) { *counted = !whole_gpu; return BR_PDOM_GPU; }
  if (!strncmp(name, "ANE", 3)) return BR_PDOM_ANE;
  if (!strncmp(name, "DRAM", 4)) return BR_PDOM_DRAM;
  return -1;
}

/* The channels of a sample (the "IOReportChannels" array), or NULL. */
static cf_type sample_channels(br_power_set *set, cf_type sample) {
  return sample ? io.dict_get(sample, set->key_channels) : NULL;
}

static void open_ioreport(br_power_set *set, char *notes, size_t size) {
  pthread_once(&load_once, load_libs);
  if (!loaded) { note(notes, size, load_why); return; }
  cf_type group = io.str(NULL, "Energy Model", UTF8);
  set->key_channels = io.str(NULL, "IOReportChannels", UTF8);
  cf_type chans = group ? io.channels(group, NULL, 0, 0, 0) : NULL;
  if (group) io.release(group);
  if (!chans || !set->key_channels) { note(notes, size, "ioreport: no \"Energy Model\" channels"); return; }
  cf_type desired = io.dict_mcopy(NULL, io.dict_count(chans), chans);
  io.release(chans);
  set->sub = desired ? io.subscribe(NULL, desired, &set->subbed, 0, NULL) : NULL;
  if (desired) io.release(desired);
  if (!set->sub || !set->subbed) { note(notes, size, "ioreport: cannot subscribe to the \"Energy Model\" channels"); return; }
  set->prev = io.samples(set->sub, set->subbed, NULL);
  cf_type arr = sample_channels(set, set->prev);
  long n = arr ? io.arr_count(arr) : 0;
  int whole_cpu = 0, whole_gpu = 0;
  char name[64];
  for (long i = 0; i < n; i++) {
    cf_text(io.ch_name(io.arr_at(arr, i)), name, sizeof name);
    whole_cpu |= !strcmp(name, "CPU Energy");
    whole_gpu |= !strcmp(name, "GPU Energy");
  }
  for (long i = 0; i < n && set->n < MAX_SOURCES; i++) {
    cf_type ch = io.arr_at(arr, i);
    cf_text(io.ch_name(ch), name, sizeof name);
    int counted, domain = channel_domain(name, whole_cpu, whole_gpu, &counted);
    if (domain < 0 || unit_j(ch) == 0) continue;
    br_power_source *p = &set->pub[set->n];
    mac_src *s = &set->priv[set->n];
    memset(p, 0, sizeof *p);
    memset(s, 0, sizeof *s);
    snprintf(p->name, sizeof p->name, "ioreport:%.48s", name);
    snprintf(p->detail, sizeof p->detail, "IOReport Energy Model channel%s", counted ? "" : " (per die: listed, not counted)");
    p->domain = domain;
    p->counted = counted;
    p->caps = BR_PCAP_ENERGY;
    s->kind = K_IOREPORT;
    snprintf(s->channel, sizeof s->channel, "%s", name);
    set->n++;
  }
  if (n == 0) note(notes, size, "ioreport: the \"Energy Model\" group has no channel here (not Apple silicon?)");
}

static void open_pressure(br_power_set *set, char *notes, size_t size) {
  int token;
  if (notify_register_check(kOSThermalNotificationPressureLevelName, &token) != 0) {
    note(notes, size, "thermal-pressure: notify_register_check failed");
    return;
  }
  if (set->n >= MAX_SOURCES) { notify_cancel(token); return; }
  br_power_source *p = &set->pub[set->n];
  memset(p, 0, sizeof *p);
  memset(&set->priv[set->n], 0, sizeof set->priv[set->n]);
  snprintf(p->name, sizeof p->name, "thermal-pressure");
  snprintf(p->detail, sizeof p->detail, "notify state of %s (0 nominal .. 4 sleeping)", kOSThermalNotificationPressureLevelName);
  p->domain = -1;
  p->caps = BR_PCAP_THROTTLE;
  set->priv[set->n].kind = K_PRESSURE;
  set->priv[set->n].token = token;
  set->n++;
}

br_power_set *br_power_open(char *notes, size_t size) {
  if (size) notes[0] = 0;
  br_power_set *set = calloc(1, sizeof *set);
  if (!set) return NULL;
  open_ioreport(set, notes, size);
  open_pressure(set, notes, size);
  return set;
}

int br_power_count(const br_power_set *set) { return set->n; }

const br_power_source *br_power_source_at(const br_power_set *set, int i) { return &set->pub[i]; }

/* One new IOReport sample: each channel's energy since the last is added to its source. */
static void read_ioreport(br_power_set *set, br_power_reading *out) {
  cf_type cur = set->sub ? io.samples(set->sub, set->subbed, NULL) : NULL;
  cf_type d = cur && set->prev ? io.delta(set->prev, cur, NULL) : NULL;
  cf_type arr = sample_channels(set, d);
  long n = arr ? io.arr_count(arr) : 0;
  char name[64];
  int seen[MAX_SOURCES] = {0};
  for (long i = 0; i < n; i++) {
    cf_type ch = io.arr_at(arr, i);
    cf_text(io.ch_name(ch), name, sizeof name);
    for (int k = 0; k < set->n; k++) {
      mac_src *s = &set->priv[k];
      if (s->kind != K_IOREPORT || strcmp(s->channel, name)) continue;
      int64_t v = io.ch_int(ch, 0);
      if (v >= 0) { s->total_j += (double)v * unit_j(ch); seen[k] = 1; }
    }
  }
  for (int k = 0; k < set->n; k++) {
    if (set->priv[k].kind != K_IOREPORT) continue;
    out[k].energy_j = set->priv[k].total_j;
    if (!seen[k]) {
      out[k].ok = 0;
      snprintf(out[k].why, sizeof out[k].why, "IOReport gave no reading for this channel");
    }
  }
  if (d) io.release(d);
  if (cur) {
    if (set->prev) io.release(set->prev);
    set->prev = cur;
  }
}

void br_power_read(br_power_set *set, br_power_reading *out) {
  for (int i = 0; i < set->n; i++) {
    br_power_reading *r = &out[i];
    memset(r, 0, sizeof *r);
    r->ok = 1;
    r->temp_c = r->clock_mhz = r->power_w = NAN;
    r->throttled = -1;
    if (set->priv[i].kind == K_PRESSURE) {
      uint64_t level = 0;
      if (notify_get_state(set->priv[i].token, &level) != 0) {
        r->ok = 0;
        snprintf(r->why, sizeof r->why, "notify_get_state failed");
        continue;
      }
      r->reasons = level;
      r->throttled = level >= kOSThermalPressureLevelModerate;
    }
  }
  if (set->sub) read_ioreport(set, out);
}

void br_power_close(br_power_set *set) {
  for (int i = 0; i < set->n; i++)
    if (set->priv[i].kind == K_PRESSURE) notify_cancel(set->priv[i].token);
  if (set->prev) io.release(set->prev);
  if (set->subbed) io.release(set->subbed);
  if (set->sub) io.release(set->sub);
  if (set->key_channels) io.release(set->key_channels);
  free(set);
}
