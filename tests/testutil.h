/* SPDX-License-Identifier: MIT */
/*
 * testutil.h - helpers shared by the Check suites.
 *
 * Interleavings are forced with gates and counters, never with sleeps:
 *   - tu_gate: a one-shot latch; tasks block in tu_gate_wait() until the test
 *     calls tu_gate_open(). Saturate a pool with gated tasks, act, then open.
 *   - tu_count: a counter a test can wait on until it reaches a value
 *     ("all N workers are now inside their task").
 * Every wait has a generous watchdog (TU_WATCHDOG_S) so a broken build fails
 * its test instead of hanging CTest.
 */
#ifndef GATHER_TESTUTIL_H
#define GATHER_TESTUTIL_H

#include <check.h>
#include <errno.h>
#include <gather.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define TU_WATCHDOG_S 30

/* Sanitizer builds (gcc defines __SANITIZE_*__, clang has __has_feature):
 * suites scale their sizes down under them. */
#if defined(__SANITIZE_THREAD__)
#define TU_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TU_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define TU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TU_ASAN 1
#endif
#endif
#ifndef TU_TSAN
#define TU_TSAN 0
#endif
#ifndef TU_ASAN
#define TU_ASAN 0
#endif
#define TU_SANITIZED (TU_TSAN || TU_ASAN)

/* Under valgrind (a run-time test; valgrind.h comes with the valgrind
 * package): suites scale their sizes and time limits. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define TU_VALGRIND (RUNNING_ON_VALGRIND != 0)
#endif
#endif
#ifndef TU_VALGRIND
#define TU_VALGRIND 0
#endif

static inline struct timespec tu_deadline(int seconds)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += seconds;
    return ts;
}

/* The same, `ms` milliseconds from now. */
static inline struct timespec tu_deadline_ms(long ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* CLOCK_MONOTONIC now, in nanoseconds (for elapsed-time checks). */
static inline uint64_t tu_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- gate: one-shot latch ---------------------------------------------- */

typedef struct tu_gate {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int open;
} tu_gate;

static inline void tu_gate_init(tu_gate *g)
{
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->cond, NULL);
    g->open = 0;
}

static inline void tu_gate_destroy(tu_gate *g)
{
    pthread_mutex_destroy(&g->lock);
    pthread_cond_destroy(&g->cond);
}

static inline void tu_gate_open(tu_gate *g)
{
    pthread_mutex_lock(&g->lock);
    g->open = 1;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

/* Returns 0 once open, ETIMEDOUT after the watchdog. */
static inline int tu_gate_wait(tu_gate *g)
{
    struct timespec dl = tu_deadline(TU_WATCHDOG_S);
    int rc = 0;
    pthread_mutex_lock(&g->lock);
    while (!g->open && rc == 0)
        rc = pthread_cond_timedwait(&g->cond, &g->lock, &dl);
    int open = g->open;
    pthread_mutex_unlock(&g->lock);
    return open ? 0 : ETIMEDOUT;
}

/* ---- count: a counter to wait on --------------------------------------- */

typedef struct tu_count {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    long value;
} tu_count;

static inline void tu_count_init(tu_count *c)
{
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    c->value = 0;
}

static inline void tu_count_destroy(tu_count *c)
{
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->cond);
}

static inline void tu_count_add(tu_count *c, long delta)
{
    pthread_mutex_lock(&c->lock);
    c->value += delta;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

static inline long tu_count_get(tu_count *c)
{
    pthread_mutex_lock(&c->lock);
    long v = c->value;
    pthread_mutex_unlock(&c->lock);
    return v;
}

/* Waits until value >= target or the CLOCK_REALTIME deadline; true when
 * the target was reached. */
static inline bool tu_count_reaches(tu_count *c, long target,
                                    const struct timespec *deadline)
{
    int rc = 0;
    pthread_mutex_lock(&c->lock);
    while (c->value < target && rc == 0)
        rc = pthread_cond_timedwait(&c->cond, &c->lock, deadline);
    bool ok = c->value >= target;
    pthread_mutex_unlock(&c->lock);
    return ok;
}

/* Returns 0 once value >= target, ETIMEDOUT after the watchdog. */
static inline int tu_count_wait(tu_count *c, long target)
{
    struct timespec dl = tu_deadline(TU_WATCHDOG_S);
    return tu_count_reaches(c, target, &dl) ? 0 : ETIMEDOUT;
}

/* ---- common tasks -------------------------------------------------------- */

/* Task: sets *result = arg, returns 0. */
static inline int tu_task_identity(void *arg, void **result)
{
    *result = arg;
    return 0;
}

/* Task: fails with the code (int)(intptr_t)arg; payload = arg. */
static inline int tu_task_fail(void *arg, void **result)
{
    *result = arg;
    return (int)(intptr_t)arg;
}

/* Task: counts its runs in the atomic_int at arg; value = arg. */
static inline int tu_task_count(void *arg, void **result)
{
    atomic_fetch_add((atomic_int *)arg, 1);
    *result = arg;
    return 0;
}

/* Task: fails with a code and an error payload. */
typedef struct tu_fail_arg {
    int code;
    void *payload;
} tu_fail_arg;

static inline int tu_task_fail_with(void *arg, void **result)
{
    tu_fail_arg *a = (tu_fail_arg *)arg;
    *result = a->payload;
    return a->code;
}

/* Task: records gather_cancel_requested() into the atomic_int at arg. */
static inline int tu_task_record_cancel_requested(void *arg, void **result)
{
    atomic_store((atomic_int *)arg, gather_cancel_requested() ? 1 : 0);
    *result = NULL;
    return 0;
}

/* A gated task: announces it started (started may be NULL), then blocks on
 * the gate, then returns `code` with `value`. */
typedef struct tu_gated {
    tu_gate *gate;
    tu_count *started;
    int code;
    void *value;
    atomic_int ran;
    atomic_int saw_cancel; /* gather_cancel_requested() after the gate */
} tu_gated;

static inline int tu_task_gated(void *arg, void **result)
{
    tu_gated *g = (tu_gated *)arg;
    atomic_fetch_add(&g->ran, 1);
    if (g->started)
        tu_count_add(g->started, 1);
    tu_gate_wait(g->gate);
    atomic_store(&g->saw_cancel, gather_cancel_requested() ? 1 : 0);
    *result = g->value;
    return g->code;
}

/* Creates a pool of `threads` threads or fails the test. */
static inline gather_pool *tu_pool(size_t threads)
{
    gather_pool_options o = {0};
    o.threads = threads;
    gather_pool *p = NULL;
    ck_assert_int_eq(gather_pool_create(&p, &o), 0);
    ck_assert_ptr_nonnull(p);
    return p;
}

/* Runs a suite with CK_NORMAL output; returns the process exit status. */
static inline int tu_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif /* GATHER_TESTUTIL_H */
