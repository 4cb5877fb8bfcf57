/* Watching plugin code: every thread records the plugin call it is in
 * (which instance, which function, which event), cheaply, so that
 *  - a crash leaves a note (DIR/crash.note) that the next start reads: it
 *    names the plugin, the event and the signal, and after crash_limit
 *    crashes in a row on one event that event is dead-lettered for the
 *    instance instead of delivered again (docs/operations.md);
 *  - a call that runs longer than a threshold is logged and counted, and
 *    shown as stuck in the figures;
 *  - shutdown has a deadline: past it, every cursor is saved, the stuck
 *    calls are named and the process exits without waiting for them. */
#ifndef EVB_WATCH_H
#define EVB_WATCH_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* One thread's current plugin call. Written by that thread only; read by
 * the watch thread and the crash handler. */
typedef struct evb_call {
    _Atomic int64_t since_ms;      /* monotonic start; 0 = not in a call */
    _Atomic uint64_t seq;          /* the event being delivered, 0 = none */
    _Atomic(const char *) id;      /* its id (alive during the call) */
    _Atomic(const char *) what;    /* "deliver", "tick", "shutdown", ... */
    const char *instance, *plugin; /* set once, before any call */
    int64_t reported;              /* since_ms of the call already logged */
} evb_call_t;

/* The calling thread's slot: set once per thread (workers) or around a
 * call (the main thread). */
extern __thread evb_call_t *evb_call_self;

static inline void evb_call_begin(evb_call_t *c, const char *what, uint64_t seq,
                                  const char *id, int64_t now_ms)
{
    atomic_store_explicit(&c->seq, seq, memory_order_relaxed);
    atomic_store_explicit(&c->id, id, memory_order_relaxed);
    atomic_store_explicit(&c->what, what, memory_order_relaxed);
    atomic_store_explicit(&c->since_ms, now_ms ? now_ms : 1,
                          memory_order_release);
}

static inline void evb_call_end(evb_call_t *c)
{
    atomic_store_explicit(&c->since_ms, 0, memory_order_release);
}

/* Calls running at least this long are slow (0 = never): logged once,
 * counted, and stuck while they last. Set before the watch starts. */
extern int64_t evb_watch_slow_ms;

/* Whether c is in a call that has run at least evb_watch_slow_ms; with
 * secs, for how long (whole seconds). */
int evb_call_stuck(evb_call_t *c, int64_t now_ms, int64_t *secs);

/* ------------------------------------------------------------- crashes */

/* What the previous run's crash note said. */
typedef struct evb_crash {
    int sig;
    char instance[80]; /* "" when the crash was not in a plugin call */
    char plugin[256];  /* also when the address was in a plugin's code on a
                          thread of its own ("what" is then "own thread") */
    char what[32];
    uint64_t seq; /* 0 when no event was being delivered */
    char id[260];
    int count; /* crashes in a row on this (instance, seq) */
} evb_crash_t;

/* Read and clear DIR/crash.note (the previous run's crash, if any): 1 with
 * *out filled (and the count of crashes in a row on the same event kept in
 * DIR/crash.count), 0 when the previous run did not crash. */
int evb_crash_previous(const char *dir, evb_crash_t *out);
/* The code of plugin `name` is the executable mapping that holds `sym` (a
 * function of it): a crash whose address lies there, on a thread the
 * plugin started itself, is put down to that plugin. Main thread, at
 * load; up to 64 plugins. */
void evb_watch_plugin_code(const void *sym, const char *name);
/* Give the calling thread a stack of its own for the crash handler, so a
 * stack overflow in plugin code still leaves a note; _end takes it back.
 * The worker threads call them; evb_crash_arm does it for the main
 * thread. */
void evb_watch_thread_begin(void);
void evb_watch_thread_end(void);
/* Install the fatal-signal handlers that write DIR/crash.note. 0 or -1. */
int evb_crash_arm(const char *dir);
/* An orderly exit after evb_crash_arm: the note and the count go. */
void evb_crash_disarm(const char *dir);

/* ------------------------------------------------------- the watch thread */

struct evbus_instance;

/* Look at every instance's calls once a second: log and count slow ones.
 * 0 or -1. */
int evb_watch_start(struct evbus_instance **instances, size_t n);
/* Shutdown has begun: at deadline_mono_ms (+ a second for shutdown()
 * calls and joins), unless evb_watch_stop came first, save every cursor,
 * name every call still running and _exit(1). */
void evb_watch_deadline(int64_t deadline_mono_ms);
void evb_watch_stop(void);

#endif
