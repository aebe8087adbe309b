/* SPDX-License-Identifier: MIT */
/*
 * fuzz_api.c - a libFuzzer target for the whole public API.
 *
 * The input is a small program: each operation is an opcode byte followed
 * by its parameter bytes (see the op_* functions; a missing byte reads 0).
 * It runs on a few slots - three pool slots and up to MAX_RECORDS futures -
 * and checks every return code against gather.h: a code gather.h does not
 * document for the call, or an outcome that contradicts it, aborts with a
 * message (a crash for libFuzzer). Bad arguments are made only where
 * gather.h promises an error code: a destroyed pool slot reads as NULL (the
 * default pool), never as a dangling pointer, and futures are never
 * released more often than they were retained.
 *
 * Tasks run small deterministic work chosen by the input (return a value,
 * fail with a code, wait on a gate, submit and wait for a child, submit a
 * detached child, poll for cancellation, gather_map subtasks, call the API
 * wrongly from inside a task, resize their own pool), some of it inside
 * blocking regions (gather_blocking_begin/end: balanced, nested, or left
 * unbalanced on purpose) or after a short sleep in a system call that an
 * elastic pool's monitor notices. Pools are strict or elastic
 * (max_threads), and are resized from the harness and from their tasks;
 * their stats are held against the sizes ever set (threads_peak never
 * above the largest max_threads). Continuations (gather_then) of any
 * future run such a task once their prev is done, on any pool: a pool shut
 * down or destroyed before the prev completes refuses them (ESHUTDOWN). A task's code is a function of its argument,
 * so every outcome can be checked against the set of codes the task can
 * produce ("natural" codes), plus ECANCELED when the future reports
 * cancelled.
 *
 * No wait can hang: the only task that blocks is the gated one (and a
 * "self" task for the instant until the harness publishes its future),
 * and the harness opens the gate before every call that may block (a wait
 * without a finite timeout, gather_futures, gather_map, shutdown,
 * destroy). At the
 * end of each input everything is released and every pool destroyed, and
 * the harness waits until no task of the input is left anywhere (detached
 * tasks on the default pool are counted), so LeakSanitizer sees leaks and
 * inputs do not disturb each other.
 *
 * Built two ways (tests/fuzz/CMakeLists.txt): with -fsanitize=fuzzer as
 * the libFuzzer target fuzz_api, and with GATHER_FUZZ_REPLAY_MAIN as
 * fuzz_replay, a plain program that runs the inputs named on its command
 * line (files, or every file of a directory).
 */
#define _GNU_SOURCE
#include <gather.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Bad counts below are passed on purpose (the run-time EINVAL is what is
 * checked); GCC's access attributes on gather.h would flag them. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wnonnull"
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define POOL_SLOTS 3
#define MAX_RECORDS 32
#define MAX_LIST 6
#define MAX_OPS 64
#define MAX_CALLBACKS 32 /* per future: bits of a uint64_t mask */
#define MAX_SPEC_LEVELS 3
/* A wait that should end long before this is a hang: report it. */
#define WATCHDOG_S 60

/* ------------------------------------------------------------------------ */
/* Failing                                                                  */
/* ------------------------------------------------------------------------ */

static void fail_check(const char *file, int line, const char *expr,
                       const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "fuzz_api: %s:%d: check failed: %s: ", file, line, expr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        if (!(cond))                                                         \
            fail_check(__FILE__, __LINE__, #cond, __VA_ARGS__);              \
    } while (0)

/* GATHER_FUZZ_TRACE=1 in the environment: one line per operation on
 * stderr (to read a crashing input). */
static bool tracing;

#define TRACE(...)                                                           \
    do {                                                                     \
        if (tracing)                                                         \
            trace_line(__VA_ARGS__);                                         \
    } while (0)

static void trace_line(const char *fmt, ...)
{
    va_list ap;
    fputs("fuzz_api:   ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* Keeps the compiler from seeing a constant (bad) count at a call site. */
static size_t opaque_size(size_t n)
{
    volatile size_t v = n;
    return v;
}

static struct timespec watchdog_deadline(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += WATCHDOG_S;
    return ts;
}

static bool past(const struct timespec *deadline)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return now.tv_sec > deadline->tv_sec ||
           (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec);
}

/* ------------------------------------------------------------------------ */
/* The gate and the count of detached tasks                                 */
/* ------------------------------------------------------------------------ */

static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool gate_is_open; /* guarded by gate_lock */

static void gate_set(bool open)
{
    pthread_mutex_lock(&gate_lock);
    gate_is_open = open;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);
}

/* Gated tasks block here until the harness opens the gate. */
static void gate_pass(void)
{
    struct timespec dl = watchdog_deadline();
    pthread_mutex_lock(&gate_lock);
    while (!gate_is_open) {
        int rc = pthread_cond_timedwait(&gate_cond, &gate_lock, &dl);
        CHECK(rc != ETIMEDOUT || gate_is_open,
              "a gated task waited %d s: the harness left the gate closed",
              WATCHDOG_S);
    }
    pthread_mutex_unlock(&gate_lock);
}

/* Detached tasks on the default pool (never shut down, so never drained):
 * counted from before their submission to the end of their body. */
static pthread_mutex_t detached_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t detached_cond = PTHREAD_COND_INITIALIZER;
static long detached_live; /* guarded by detached_lock */

static void detached_add(long delta)
{
    pthread_mutex_lock(&detached_lock);
    detached_live += delta;
    CHECK(detached_live >= 0, "detached count %ld", detached_live);
    if (detached_live == 0)
        pthread_cond_broadcast(&detached_cond);
    pthread_mutex_unlock(&detached_lock);
}

static void detached_wait_zero(void)
{
    struct timespec dl = watchdog_deadline();
    pthread_mutex_lock(&detached_lock);
    while (detached_live != 0) {
        int rc = pthread_cond_timedwait(&detached_cond, &detached_lock, &dl);
        CHECK(rc != ETIMEDOUT || detached_live == 0,
              "%ld detached tasks still unfinished after %d s", detached_live,
              WATCHDOG_S);
    }
    pthread_mutex_unlock(&detached_lock);
}

/* ------------------------------------------------------------------------ */
/* Task specs and their codes                                               */
/* ------------------------------------------------------------------------ */

/*
 * A task's argument is an integer (never a pointer, so a task can outlive
 * whatever the harness frees):
 *   bit 0        counted: a detached task on the default pool
 *   bits 1..6    "self": 1 + the record index of its own future, or 0
 *   bits 8..31   spec: up to three levels of one byte each, the task's own
 *                level first; a level is kind (bits 0..2) | param << 3 |
 *                block << 6 (enum block: what the task does around its
 *                work with gather_blocking_begin/end).
 * The levels after the first describe the child of CHILD, DETACH and MAP.
 */
enum kind {
    K_RETURN, /* return 0. param 1: sleep 1 ms first (a slow job, so that
                 other workers get ahead of it; nothing waits for it) */
    K_FAIL,   /* return fail_codes[param] */
    K_GATED,  /* wait for the gate, then return 0 or fail_codes[param] */
    K_CHILD,  /* submit the child, wait for it, return its code. param:
                 1 to the default pool (else the current one), 2 cancel it
                 first, 4 wait with gather_futures */
    K_DETACH, /* submit the child detached. param 1: to the current pool
                 (else the default one) */
    K_POLL,   /* param 1: wait for the gate first; return ECANCELED when
                 gather_cancel_requested() */
    K_MAP,    /* gather_map of 1 + (param >> 2) children on the current
                 pool with flags param & 3 (3 is invalid: EINVAL) */
    K_MISUSE  /* wrong calls from inside a task (shutdown of its own pool,
                 NULL arguments, waits for its own future); returns 0.
                 param 1: cancel its own future (it keeps running);
                 param bits 1-2 (enum inside_resize): resize its own pool */
};

/* Bits 6-7 of a spec level: blocking regions around the task's work. Every
 * mode is bounded (sleeps of BLOCK_SLEEP_NS), so the fuzzer stays fast. */
enum block {
    B_NONE,
    B_REGION,     /* begin, a short sleep, end; then the work */
    B_NESTED,     /* begin, begin, a short sleep, end, the work (its waits
                     and helping inside the region), end */
    B_UNBALANCED  /* an end without a begin, then begin, begin, a short
                     sleep, end: one region left open when the task returns
                     (misuse: the pool must not be harmed) */
};
#define BLOCK_SLEEP_NS (100 * 1000)

/* K_MISUSE param bits 1-2: gather_pool_resize() of the task's own pool.
 * The sizes are fixed, so the harness knows every size a pool may get
 * (see mark_inside_resizes). On the default pool only the sizes of
 * DEFAULT_SIZES_* are set (restored at the end of the input). */
enum inside_resize {
    R_NONE,
    R_ELASTIC,  /* (1, 4): one thread, up to four */
    R_STRICT,   /* (2, 0): two threads, strict */
    R_INVALID   /* (3, 2) and (1025, 0): EINVAL */
};
#define INSIDE_MAX_THREADS 4 /* the largest effective max_threads set */

#define ARG_COUNTED ((uintptr_t)1)
#define ARG_SELF_SHIFT 1
#define ARG_SELF_MASK ((uintptr_t)0x3F)
#define ARG_SPEC_SHIFT 8

static uintptr_t make_arg(uint32_t spec, unsigned self, bool counted)
{
    return ((uintptr_t)spec << ARG_SPEC_SHIFT) |
           ((uintptr_t)self << ARG_SELF_SHIFT) | (counted ? ARG_COUNTED : 0);
}

static uint32_t arg_spec(uintptr_t arg)
{
    return (uint32_t)(arg >> ARG_SPEC_SHIFT);
}

static unsigned arg_self(uintptr_t arg)
{
    return (unsigned)((arg >> ARG_SELF_SHIFT) & ARG_SELF_MASK);
}

static unsigned spec_kind(uint32_t spec)
{
    return spec & 7u;
}

static unsigned spec_param(uint32_t spec)
{
    return (spec >> 3) & 7u;
}

static unsigned spec_block(uint32_t spec)
{
    return (spec >> 6) & 3u;
}

static uint32_t spec_child(uint32_t spec)
{
    return spec >> 8;
}

/* The value every task stores in *result: never NULL, so a NULL value
 * tells a task that never ran. */
static void *value_of(uintptr_t arg)
{
    return (void *)(arg | 0x80);
}

/* Every code a task may complete with, as bit positions of masks. */
static const int known_codes[] = {0,      1,  EIO,    EDOM,   ECANCELED, 42,
                                  -1,     ERANGE, INT_MAX, ENOMEM, EINVAL,
                                  EAGAIN, ESHUTDOWN /* continuations only */};
#define N_KNOWN_CODES (sizeof known_codes / sizeof known_codes[0])

static int fail_code(unsigned param)
{
    return known_codes[1 + (param & 7u)]; /* 1 .. INT_MAX above */
}

static uint32_t code_bit(int code)
{
    for (size_t i = 0; i < N_KNOWN_CODES; i++)
        if (known_codes[i] == code)
            return (uint32_t)1 << i;
    return 0;
}

/* The codes a task with this spec may return when it runs (cancellation
 * before it runs adds ECANCELED, checked separately). */
static uint32_t natural_codes(uint32_t spec)
{
    unsigned p = spec_param(spec);
    uint32_t child = spec_child(spec);
    switch (spec_kind(spec)) {
    case K_FAIL:
        return code_bit(fail_code(p));
    case K_GATED:
        return code_bit(p != 0 ? fail_code(p) : 0);
    case K_CHILD: /* the child's code; ENOMEM: submit or wait record */
        return natural_codes(child) | code_bit(ECANCELED) | code_bit(ENOMEM);
    case K_DETACH:
        return code_bit(0) | code_bit(ENOMEM) | code_bit(EAGAIN);
    case K_POLL:
        return code_bit(0) | code_bit(ECANCELED);
    case K_MAP:
        if ((p & 3u) == 3u)
            return code_bit(EINVAL);
        return natural_codes(child) | code_bit(0) | code_bit(ECANCELED) |
               code_bit(ENOMEM);
    default: /* K_RETURN, K_MISUSE */
        return code_bit(0);
    }
}

/* A spec that cannot fail (for fail-fast gather_map on the default pool,
 * whose tasks must all be waited for: see op_map). */
static uint32_t never_failing(uint32_t spec, int level)
{
    if (level == MAX_SPEC_LEVELS)
        return 0;
    unsigned k = spec_kind(spec), p = spec_param(spec);
    uint32_t child = never_failing(spec_child(spec), level + 1) << 8;
    uint32_t block = spec & 0xC0u; /* codes do not depend on it */
    switch (k) {
    case K_GATED:
        return K_GATED | block;
    case K_CHILD:
        return K_CHILD | ((p & 5u) << 3) | block | child;
    case K_DETACH:
        return K_DETACH | (p << 3) | block | child;
    case K_POLL:
    case K_MISUSE:
        return k | (p << 3) | block;
    default: /* K_FAIL, K_MAP: may fail */
        return K_RETURN | block;
    }
}

/* Does a task of this spec, or a descendant, resize its own pool? */
static bool spec_resizes(uint32_t spec, int level)
{
    if (level == MAX_SPEC_LEVELS)
        return false;
    if (spec_kind(spec) == K_MISUSE)
        return ((spec_param(spec) >> 1) & 3u) != R_NONE;
    return spec_resizes(spec_child(spec), level + 1);
}

/* ------------------------------------------------------------------------ */
/* Shared with tasks and callbacks                                          */
/* ------------------------------------------------------------------------ */

/* Written once before the first input, read by tasks. */
static gather_pool *default_pool;

/* The default pool's sizes while an input runs: set before the first input
 * and restored after each one that resized it (so that inputs do not
 * disturb each other). Elastic, but bounded well below the library's
 * default of 512 threads. */
#define DEFAULT_MAX_THREADS 64
static bool default_resized; /* the harness thread only */

/* The futures of tasks submitted with "self" (K_MISUSE): set by the
 * harness right after gather_submit() returns; the task waits for it. */
static _Atomic(gather_future *) self_cell[MAX_RECORDS];

/* Done callbacks: fired[r] has bit s set once callback s of record r ran
 * (set last: after that the callback touches nothing of the input);
 * listed_last[r] is the highest s that ran from the future's list. */
static _Atomic uint64_t cb_fired[MAX_RECORDS];
static _Atomic int cb_listed_last[MAX_RECORDS];
/* The user_data of the callback that gather_future_on_done() is adding on
 * this thread: if it runs inside that call, it ran "at once". */
static _Thread_local uintptr_t cb_adding;

static int fuzz_task(void *arg, void **result);

/* Off a pool and in tasks: waits until f is done when a wait gave up
 * (ENOMEM: its wait record could not be allocated). */
static void settle(gather_future *f)
{
    while (!gather_future_done(f))
        sched_yield();
}

/* A done task future of `arg`: its outcome is one the task can have. */
static void check_task_outcome(const gather_future *f, uintptr_t arg)
{
    CHECK(gather_future_done(f), "not done");
    int e = gather_future_error(f);
    void *v = gather_future_value(f);
    bool c = gather_future_cancelled(f);
    CHECK(e != EINPROGRESS, "done but EINPROGRESS");
    CHECK(!c || e == ECANCELED, "cancelled with code %d", e);
    CHECK((natural_codes(arg_spec(arg)) & code_bit(e)) != 0 ||
              (e == ECANCELED && c),
          "task %#lx completed with %d", (unsigned long)arg, e);
    CHECK(v == value_of((uintptr_t)arg) || (c && v == NULL),
          "task %#lx: value %p (error %d, cancelled %d)", (unsigned long)arg,
          v, e, (int)c);
}

/* A gather_result entry for a task of `arg`, filled after a call. */
static void check_task_entry(const gather_result *r, uintptr_t arg)
{
    if (r->error == EINPROGRESS) {
        CHECK(r->value == NULL, "EINPROGRESS entry with value %p", r->value);
        return;
    }
    CHECK((natural_codes(arg_spec(arg)) & code_bit(r->error)) != 0 ||
              r->error == ECANCELED,
          "entry of task %#lx: code %d", (unsigned long)arg, r->error);
    CHECK(r->value == value_of(arg) ||
              (r->error == ECANCELED && r->value == NULL),
          "entry of task %#lx: value %p", (unsigned long)arg, r->value);
}

/* ------------------------------------------------------------------------ */
/* Tasks                                                                    */
/* ------------------------------------------------------------------------ */

static int task_child(uint32_t spec)
{
    unsigned p = spec_param(spec);
    uintptr_t arg = make_arg(spec_child(spec), 0, false);
    gather_pool *target = (p & 1u) ? NULL : gather_current_pool();
    gather_future *f = NULL;
    int rc = gather_submit(target, fuzz_task, (void *)arg, &f);
    if (rc != 0) {
        CHECK(rc == ENOMEM, "submit from a task: %d", rc);
        CHECK(f == NULL, "failed submit left a future");
        return rc;
    }
    if (p & 2u)
        (void)gather_future_cancel(f);
    if (p & 4u) {
        gather_result r = {-12345, &r};
        rc = gather_futures(&f, 1, &r, 0);
        /* Fork-join: waiting for one's own subtask never gets EDEADLK. */
        CHECK(rc != EDEADLK, "gather_futures(child): EDEADLK");
        if (rc == ENOMEM && !gather_future_done(f))
            settle(f);
        else
            CHECK(r.error == rc && r.value == gather_future_value(f),
                  "child entry %d/%p vs %d", r.error, r.value, rc);
    } else {
        void *v = &rc;
        rc = gather_future_wait(f, &v);
        CHECK(rc != EDEADLK, "wait(child): EDEADLK");
        if (rc == ENOMEM && !gather_future_done(f))
            settle(f);
        else
            CHECK(rc == gather_future_error(f) && v == gather_future_value(f),
                  "wait(child) %d/%p vs %d", rc, v, gather_future_error(f));
    }
    rc = gather_future_error(f);
    check_task_outcome(f, arg);
    gather_future_release(f);
    return rc;
}

static int task_detach(uint32_t spec)
{
    gather_pool *target =
        (spec_param(spec) & 1u) ? gather_current_pool() : NULL;
    /* Own pools are drained by their destroy; the default pool never is. */
    bool counted = target == NULL || target == default_pool;
    if (counted)
        detached_add(1);
    uintptr_t arg = make_arg(spec_child(spec), 0, counted);
    int rc = gather_submit(target, fuzz_task, (void *)arg, NULL);
    if (rc != 0) {
        CHECK(rc == ENOMEM || rc == EAGAIN, "detached submit: %d", rc);
        if (counted)
            detached_add(-1);
    }
    return rc;
}

static int task_map(uint32_t spec)
{
    unsigned p = spec_param(spec);
    unsigned flags = p & 3u;
    size_t n = 1 + (p >> 2);
    gather_pool *cur = gather_current_pool();
    /* Fail-fast would leave subtasks running on the default pool, where
     * nothing waits for them at the end of the input: WAIT_ALL does. */
    if (cur == default_pool && flags != 3u)
        flags |= GATHER_WAIT_ALL;
    uintptr_t arg = make_arg(spec_child(spec), 0, false);
    void *args[2] = {(void *)arg, (void *)arg};
    gather_result res[2] = {{-12345, &res}, {-12345, &res}};
    int rc = gather_map(cur, fuzz_task, args, n, res, flags);
    if (flags == 3u) {
        CHECK(rc == EINVAL, "gather_map, both flags: %d", rc);
        return rc;
    }
    /* From a task of that pool: no ESHUTDOWN even while it drains, no
     * EDEADLK (its own subtasks); else a subtask's code. */
    CHECK(((natural_codes(spec_child(spec)) | code_bit(0) | code_bit(ENOMEM) |
            code_bit(ECANCELED)) & code_bit(rc)) != 0,
          "gather_map from a task: %d", rc);
    for (size_t i = 0; i < n; i++)
        check_task_entry(&res[i], arg);
    if (flags & GATHER_RETURN_ERRORS)
        CHECK(rc == 0 || rc == ENOMEM, "RETURN_ERRORS map: %d", rc);
    if (rc == 0)
        for (size_t i = 0; i < n; i++)
            CHECK(res[i].error == 0 || (flags & GATHER_RETURN_ERRORS),
                  "map returned 0 with entry %d", res[i].error);
    if ((flags & GATHER_WAIT_ALL) && rc != ENOMEM)
        for (size_t i = 0; i < n; i++)
            CHECK(res[i].error != EINPROGRESS, "WAIT_ALL map: entry running");
    return rc;
}

/* Waits for the harness to publish the task's own future. */
static gather_future *own_future(unsigned self)
{
    gather_future *me;
    while ((me = atomic_load(&self_cell[self - 1])) == NULL)
        sched_yield();
    return me;
}

static void misuse_own_future(gather_future *me, unsigned param)
{
    size_t index = 777;
    CHECK(gather_future_wait(me, NULL) == EDEADLK, "wait for own future");
    CHECK(!gather_future_wait_for(me, 0), "wait_for(own, 0)");
    CHECK(!gather_future_wait_for(me, GATHER_FOREVER), "wait_for(own)");
    CHECK(gather_futures(&me, 1, NULL, 0) == EDEADLK, "gather own future");
    CHECK(gather_futures(&me, 1, NULL, GATHER_RETURN_ERRORS) == EDEADLK,
          "gather own future, RETURN_ERRORS");
    CHECK(gather_wait_any(&me, 1, GATHER_FOREVER, &index) == EDEADLK &&
              index == 777,
          "wait_any own future");
    CHECK(!gather_future_done(me) && gather_future_error(me) == EINPROGRESS &&
              gather_future_value(me) == NULL,
          "own future looks done");
    if (param & 1u) {
        CHECK(!gather_future_cancel(me), "cancel of a running task: true");
        CHECK(gather_cancel_requested(), "cancel not seen by the task");
    }
}

/* gather_pool_resize() of the task's own pool (K_MISUSE). Tasks may run
 * while their pool drains: then a valid resize is refused. */
static void resize_own_pool(gather_pool *cur, unsigned how)
{
    bool deflt = cur == default_pool;
    int rc;
    switch (how) {
    case R_ELASTIC:
        rc = deflt ? gather_pool_resize(NULL, 0, 8) : gather_pool_resize(cur, 1, 4);
        break;
    case R_STRICT:
        rc = deflt ? gather_pool_resize(NULL, 0, 0) : gather_pool_resize(cur, 2, 0);
        break;
    case R_INVALID:
        CHECK(gather_pool_resize(cur, 3, 2) == EINVAL,
              "resize from a task, max_threads below threads");
        CHECK(gather_pool_resize(cur, 1025, 0) == EINVAL,
              "resize from a task, 1025 threads");
        return;
    default:
        return;
    }
    TRACE("task resizes its %s pool (%s) -> %d", deflt ? "default" : "own",
          how == R_ELASTIC ? "elastic" : "strict", rc);
    CHECK(rc == 0 || rc == EAGAIN || (!deflt && rc == ESHUTDOWN),
          "resize of its own pool from a task: %d", rc);
    if (rc != ESHUTDOWN)
        CHECK(gather_pool_threads(cur) >= 1, "threads after a resize");
}

static void task_misuse(uintptr_t arg)
{
    gather_pool *cur = gather_current_pool();
    CHECK(cur != NULL, "no current pool in a task");
    int own = cur == default_pool ? EINVAL : EDEADLK;
    gather_future *f = (gather_future *)&cur;
    gather_pool_stats st;
    CHECK(gather_pool_shutdown(cur, 0) == own, "shutdown own pool");
    CHECK(gather_pool_shutdown(cur, GATHER_CANCEL_PENDING) == own,
          "shutdown(CANCEL_PENDING) own pool");
    CHECK(gather_pool_destroy(cur) == own, "destroy own pool");
    CHECK(gather_pool_shutdown(cur, 4u) == EINVAL, "bad shutdown flags");
    CHECK(gather_submit(cur, NULL, NULL, &f) == EINVAL && f == NULL,
          "submit NULL fn");
    CHECK(gather_futures(NULL, opaque_size(1), NULL, 0) == EINVAL,
          "gather NULL list");
    CHECK(gather_pool_stats_get(cur, NULL) == EINVAL, "stats NULL");
    CHECK(gather_pool_stats_get(cur, &st) == 0, "stats");
    CHECK(gather_pool_threads(cur) >= 1, "threads");
    resize_own_pool(cur, (spec_param(arg_spec(arg)) >> 1) & 3u);
    unsigned self = arg_self(arg);
    if (self != 0)
        misuse_own_future(own_future(self), spec_param(arg_spec(arg)));
}

static void block_sleep(void)
{
    nanosleep(&(struct timespec){0, BLOCK_SLEEP_NS}, NULL);
}

/* Before the work: the regions that block (and open) enum block asks. */
static void block_before(unsigned mode)
{
    switch (mode) {
    case B_REGION:
        gather_blocking_begin();
        block_sleep();
        gather_blocking_end();
        break;
    case B_NESTED:
        gather_blocking_begin();
        gather_blocking_begin();
        block_sleep();
        gather_blocking_end();
        break; /* the outer region ends after the work */
    case B_UNBALANCED:
        gather_blocking_end(); /* none open: must be a no-op */
        gather_blocking_begin();
        gather_blocking_begin();
        block_sleep();
        gather_blocking_end();
        break; /* one region left open */
    default:
        break;
    }
    CHECK(gather_current_pool() != NULL, "a task left its pool");
}

static int fuzz_task(void *arg, void **result)
{
    uintptr_t a = (uintptr_t)arg;
    uint32_t spec = arg_spec(a);
    unsigned p = spec_param(spec);
    unsigned block = spec_block(spec);
    int rc = 0;
    *result = value_of(a);
    block_before(block);
    switch (spec_kind(spec)) {
    case K_RETURN:
        if (p & 1u)
            nanosleep(&(struct timespec){0, 1000 * 1000}, NULL);
        break;
    case K_FAIL:
        rc = fail_code(p);
        break;
    case K_GATED:
        gate_pass();
        rc = p != 0 ? fail_code(p) : 0;
        break;
    case K_CHILD:
        rc = task_child(spec);
        break;
    case K_DETACH:
        rc = task_detach(spec);
        break;
    case K_POLL:
        if (p & 1u)
            gate_pass();
        rc = gather_cancel_requested() ? ECANCELED : 0;
        break;
    case K_MAP:
        rc = task_map(spec);
        break;
    case K_MISUSE:
        task_misuse(a);
        break;
    default:
        break;
    }
    if (block == B_NESTED)
        gather_blocking_end();
    if (a & ARG_COUNTED)
        detached_add(-1); /* last: the input may end once it is 0 */
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Done callbacks                                                           */
/* ------------------------------------------------------------------------ */

static uintptr_t cb_data(size_t rec, unsigned seq, unsigned action)
{
    return ((uintptr_t)(rec + 1) << 16) | ((uintptr_t)seq << 8) | action;
}

/* What a callback does besides checking (every call of the API is allowed
 * in a callback; the future is done). */
static void callback_action(gather_future *f, unsigned action)
{
    gather_pool *cur = gather_current_pool();
    gather_result r;
    gather_future *agg = NULL;
    size_t index = 777;
    switch (action) {
    case 1:
        CHECK(!gather_future_cancel(f), "cancel of a done future: true");
        break;
    case 2: /* the harness thread, the default pool, or a pool's own thread */
        CHECK(gather_pool_shutdown(cur, 0) ==
                  (cur == NULL || cur == default_pool ? EINVAL : EDEADLK),
              "shutdown from a callback");
        break;
    case 3:
        detached_add(1);
        if (gather_submit(NULL, fuzz_task, (void *)make_arg(0, 0, true),
                          NULL) != 0)
            detached_add(-1);
        break;
    case 4:
        CHECK(gather_future_retain(f) == f, "retain");
        gather_future_release(f);
        break;
    case 5:
        CHECK(gather_future_wait(f, NULL) == gather_future_error(f),
              "wait on a done future");
        break;
    case 6:
        CHECK(gather_futures(&f, 1, &r, GATHER_RETURN_ERRORS) == 0 &&
                  r.error == gather_future_error(f) &&
                  r.value == gather_future_value(f),
              "gather a done future");
        CHECK(gather_wait_any(&f, 1, 0, &index) == 0 && index == 0,
              "wait_any on a done future");
        break;
    case 7:
        if (gather_all(&f, 1, 0, &agg) == 0) {
            CHECK(gather_future_done(agg) &&
                      gather_future_error(agg) == gather_future_error(f),
                  "aggregate of a done future");
            gather_future_release(agg);
        }
        break;
    default:
        break;
    }
}

static void on_done_cb(gather_future *f, void *user_data)
{
    uintptr_t ud = (uintptr_t)user_data;
    size_t rec = (size_t)(ud >> 16) - 1;
    unsigned seq = (unsigned)(ud >> 8) & 0xFFu;
    CHECK(gather_future_done(f), "callback of a future not done");
    CHECK(gather_future_error(f) != EINPROGRESS, "callback sees EINPROGRESS");
    if (ud != cb_adding) { /* from the list: in the order added */
        int before = atomic_exchange(&cb_listed_last[rec], (int)seq);
        CHECK(before < (int)seq, "callback %u ran after %d", seq, before);
    }
    callback_action(f, (unsigned)(ud & 0xFFu));
    uint64_t bit = (uint64_t)1 << seq;
    uint64_t old = atomic_fetch_or(&cb_fired[rec], bit);
    CHECK((old & bit) == 0, "callback %u of record %zu ran twice", seq, rec);
}

/* ------------------------------------------------------------------------ */
/* Harness state (the harness thread only)                                  */
/* ------------------------------------------------------------------------ */

typedef enum { POOL_EMPTY, POOL_LIVE, POOL_SHUT } pool_state;

typedef struct pool_slot {
    gather_pool *pool;
    pool_state state;
    unsigned id;        /* this pool instance; 0 is the default pool */
    size_t threads;     /* expected gather_pool_threads() (the harness's
                           last create or resize) */
    uint64_t threads_may; /* bit t: gather_pool_threads() may be t (t < 64;
                           tasks resize too, see mark_inside_resizes) */
    size_t max_ever;    /* the largest effective max_threads ever set:
                           no stats may count more threads */
    bool elastic_ever;  /* it was elastic at some time (spares possible) */
    bool resized;       /* a resize may have changed its sizes */
    bool inside;        /* its tasks may resize it (K_MISUSE) */
    uint64_t accepted;  /* tasks the harness submitted to it */
} pool_slot;

typedef enum { REC_TASK, REC_AGGREGATE, REC_THEN } rec_kind;

/* A future of the input. The harness holds one reference of its own
 * (dropped at the end of the input) besides the user_refs the ops retain
 * and release, so a record's future is never dangling. */
typedef struct record {
    gather_future *f;
    rec_kind kind;
    unsigned pool_id;  /* task: the pool instance it went to */
    uintptr_t arg;     /* task */
    uint32_t natural;  /* codes it may complete with, not cancelled */
    unsigned flags;    /* aggregate */
    size_t n;          /* aggregate: children */
    size_t child[MAX_LIST];
    int user_refs;
    bool cancel_won;   /* gather_future_cancel() returned true */
    bool shut;         /* continuation: its pool was shut down or destroyed
                          (it may be refused) */
    unsigned cb_added;
} record;

static struct {
    pool_slot pool[POOL_SLOTS];
    record rec[MAX_RECORDS];
    size_t nrec;
    unsigned pool_ids;
} h;

typedef struct reader {
    const uint8_t *p;
    size_t n;
} reader;

static uint8_t take(reader *r)
{
    if (r->n == 0)
        return 0;
    r->n--;
    return *r->p++;
}

/* A task spec: one byte per level, a next level only for kinds with a
 * child. */
static uint32_t read_spec(reader *r)
{
    uint32_t spec = 0;
    for (int level = 0; level < MAX_SPEC_LEVELS; level++) {
        uint8_t b = take(r);
        spec |= (uint32_t)b << (8 * level);
        unsigned k = b & 7u;
        if (k != K_CHILD && k != K_DETACH && k != K_MAP)
            break;
    }
    return spec;
}

static size_t cpu_count(void)
{
    size_t n = 0;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        n = (size_t)CPU_COUNT(&set);
    if (n == 0) {
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        n = online > 0 ? (size_t)online : 1;
    }
    return n > 1024 ? 1024 : n;
}

/* gather.h's rule for threads and max_threads (create and resize): true
 * when valid, with the effective sizes. */
static bool sizes_valid(size_t threads, size_t max, size_t *t, size_t *m)
{
    if (threads > 1024 || max > 4096 || (threads != 0 && max != 0 && max < threads))
        return false;
    *t = threads != 0 ? threads : cpu_count();
    *m = max < *t ? *t : max;
    return true;
}

static uint64_t threads_bit(size_t t)
{
    return t < 64 ? (uint64_t)1 << t : 0;
}

/* A create or resize of slot s set these (effective) sizes. */
static void slot_sizes_set(pool_slot *s, size_t t, size_t m)
{
    s->threads = t;
    s->threads_may |= threads_bit(t);
    if (m > s->max_ever)
        s->max_ever = m;
    if (m > t)
        s->elastic_ever = true;
}

/* A task submitted to slot s (or a descendant on s) may resize it with the
 * sizes of resize_own_pool(). */
static void mark_inside_resizes(pool_slot *s)
{
    s->resized = true;
    s->inside = true;
    s->threads_may |= threads_bit(1) | threads_bit(2);
    if (s->max_ever < INSIDE_MAX_THREADS)
        s->max_ever = INSIDE_MAX_THREADS;
    s->elastic_ever = true;
}

/* A task that may resize its own pool (or a descendant, which may run on
 * the default pool) went to slot `slot` (-1: the default pool). */
static void mark_resizer(int slot)
{
    if (slot >= 0)
        mark_inside_resizes(&h.pool[slot]);
    default_resized = true;
}

/* gather_pool_threads() of slot s is one it can have. */
static void check_slot_threads(const pool_slot *s, const char *where)
{
    size_t t = gather_pool_threads(s->pool);
    if (!s->inside)
        CHECK(t == s->threads, "%s: threads %zu, expected %zu", where, t,
              s->threads);
    else
        CHECK((threads_bit(t) & s->threads_may) != 0 || t == s->threads,
              "%s: threads %zu, not a size ever set (mask %#llx)", where, t,
              (unsigned long long)s->threads_may);
}

/* Stats of slot s against the sizes ever set (any time, not only once
 * drained). */
static void check_slot_sizes(const pool_slot *s, const gather_pool_stats *st)
{
    /* Beyond max_threads only threads started for waits parked too deep to
     * help (gather.h, gather_future_wait: "Depth"; strict pools too), each
     * counted as a spare: a task's gather_map or child on a small stack
     * can do that here. */
    uint64_t beyond = st->spares_started;
    CHECK(st->threads_peak <= s->max_ever + beyond &&
              st->threads <= s->max_ever + beyond,
          "threads %llu, peak %llu, but max_threads never above %zu and only "
          "%llu spares started", (unsigned long long)st->threads,
          (unsigned long long)st->threads_peak, s->max_ever,
          (unsigned long long)beyond);
    if (!s->elastic_ever && !s->resized)
        CHECK(st->threads <= s->threads + beyond &&
                  st->threads_peak <= s->threads + beyond &&
                  st->threads_peak >= s->threads,
              "a strict pool of %zu threads: threads %llu, peak %llu, "
              "spares started %llu", s->threads,
              (unsigned long long)st->threads,
              (unsigned long long)st->threads_peak,
              (unsigned long long)beyond);
}

static uint64_t full_mask(unsigned n)
{
    return n >= 64 ? UINT64_MAX : ((uint64_t)1 << n) - 1;
}

/* The pool a selector byte names: a slot's pool (live or shut down), or
 * NULL for a fourth value and for an empty slot. *slot: the slot or -1. */
static gather_pool *pick_pool(uint8_t b, int *slot)
{
    int s = b % (POOL_SLOTS + 1);
    *slot = -1;
    if (s == POOL_SLOTS || h.pool[s].state == POOL_EMPTY)
        return NULL;
    *slot = s;
    return h.pool[s].pool;
}

/* A record a byte names; 0xFF (or no record yet) names NULL. */
static record *pick_record(uint8_t b)
{
    if (b == 0xFF || h.nrec == 0)
        return NULL;
    return &h.rec[b % h.nrec];
}

static size_t add_record(gather_future *f, rec_kind kind)
{
    size_t i = h.nrec++;
    record *r = &h.rec[i];
    memset(r, 0, sizeof *r);
    r->f = gather_future_retain(f); /* the harness's own reference */
    r->kind = kind;
    r->user_refs = 1;
    return i;
}

/* ------------------------------------------------------------------------ */
/* Outcome checks                                                           */
/* ------------------------------------------------------------------------ */

static void check_record(const record *r);

static void check_aggregate(const record *r)
{
    const gather_future *f = r->f;
    int e = gather_future_error(f);
    bool c = gather_future_cancelled(f);
    const gather_result *res = gather_future_value(f);
    CHECK(!c || e == ECANCELED, "aggregate cancelled with %d", e);
    CHECK(!r->cancel_won || c, "cancel won but not cancelled");
    CHECK((r->natural & code_bit(e)) != 0, "aggregate code %d", e);
    if (r->n == 0) {
        CHECK(res == NULL && e == 0, "empty aggregate: %d, %p", e, (void *)res);
        return;
    }
    CHECK(res != NULL, "aggregate of %zu without results", r->n);
    bool all_done = true, all_ok = true, has_e = false;
    for (size_t i = 0; i < r->n; i++) {
        const gather_future *cf = h.rec[r->child[i]].f;
        if (res[i].error == EINPROGRESS) {
            CHECK(res[i].value == NULL, "EINPROGRESS entry with a value");
            all_done = false;
            all_ok = false;
            continue;
        }
        /* A snapshot of a done child: the child's (immutable) outcome. */
        CHECK(gather_future_done(cf) &&
                  res[i].error == gather_future_error(cf) &&
                  res[i].value == gather_future_value(cf),
              "aggregate entry %zu: %d/%p vs child %d/%p", i, res[i].error,
              res[i].value, gather_future_error(cf), gather_future_value(cf));
        all_ok = all_ok && res[i].error == 0;
        has_e = has_e || res[i].error == e;
    }
    if (c)
        return; /* cancelled: any snapshot */
    if (r->flags & GATHER_WAIT_ALL)
        CHECK(all_done, "WAIT_ALL aggregate (code %d) with a child running", e);
    if (r->flags & GATHER_RETURN_ERRORS)
        CHECK(e == 0 && all_done, "RETURN_ERRORS aggregate: %d, all done %d",
              e, (int)all_done);
    else if (e == 0)
        CHECK(all_ok, "aggregate succeeded with a child not successful");
    else
        CHECK(has_e, "aggregate failed with %d, no entry has it", e);
}

/* A done record: its outcome is consistent with what it is. */
static void check_record(const record *r)
{
    CHECK(gather_future_done(r->f), "record not done");
    if (r->kind == REC_AGGREGATE) {
        check_aggregate(r);
        return;
    }
    if (r->kind == REC_THEN && gather_future_error(r->f) == ESHUTDOWN &&
        gather_future_value(r->f) == NULL) {
        CHECK(r->shut && !gather_future_cancelled(r->f),
              "continuation refused (ESHUTDOWN), its pool shut down %d, "
              "cancelled %d", (int)r->shut, (int)gather_future_cancelled(r->f));
        return;
    }
    check_task_outcome(r->f, r->arg);
    if (r->cancel_won)
        CHECK(gather_future_cancelled(r->f) &&
                  gather_future_value(r->f) == NULL,
              "cancelled before it ran, yet cancelled %d value %p",
              (int)gather_future_cancelled(r->f), gather_future_value(r->f));
}

/* Continuations on pool instance `pool_id` not done yet. */
static uint64_t links_pending(unsigned pool_id)
{
    uint64_t n = 0;
    for (size_t i = 0; i < h.nrec; i++)
        if (h.rec[i].kind == REC_THEN && h.rec[i].pool_id == pool_id &&
            !gather_future_done(h.rec[i].f))
            n++;
    return n;
}

/* Before a shutdown or destroy of pool instance `pool_id`: its pending
 * continuations may be refused from now on. */
static void mark_links_shut(unsigned pool_id)
{
    for (size_t i = 0; i < h.nrec; i++)
        if (h.rec[i].kind == REC_THEN && h.rec[i].pool_id == pool_id)
            h.rec[i].shut = true;
}

/* Once a pool is drained: every task the harness gave it is done. */
static void check_pool_tasks_done(unsigned pool_id)
{
    for (size_t i = 0; i < h.nrec; i++)
        if (h.rec[i].kind == REC_TASK && h.rec[i].pool_id == pool_id) {
            CHECK(gather_future_done(h.rec[i].f),
                  "task of a drained pool not done");
            check_record(&h.rec[i]);
        }
}

/* A list of futures from the input, with the misuse it carries. */
typedef struct list_args {
    gather_future *fs[MAX_LIST];
    size_t idx[MAX_LIST];
    size_t n;                    /* entries filled */
    gather_future *const *ptr;   /* passed */
    size_t count;                /* passed */
    bool bad;                    /* EINVAL expected */
    bool results_null;
    bool out_null;               /* index / aggregate pointer NULL */
} list_args;

/* sel: n (bits 0..2, at most MAX_LIST) and a mode (bits 3..5): 1 NULL
 * list, 2 SIZE_MAX, 3 an overflowing count, 4 a NULL entry, 5 NULL
 * results, 6 NULL index/aggregate pointer. Then one byte per entry. */
static void read_list(reader *r, list_args *l)
{
    uint8_t sel = take(r);
    size_t n = sel & 7u;
    unsigned mode = (sel >> 3) & 7u;
    memset(l, 0, sizeof *l);
    if (n > MAX_LIST)
        n = MAX_LIST;
    if (h.nrec == 0)
        n = 0;
    for (size_t i = 0; i < n; i++) {
        l->idx[i] = take(r) % h.nrec;
        l->fs[i] = h.rec[l->idx[i]].f;
    }
    l->n = n;
    l->ptr = l->fs;
    l->count = n;
    switch (mode) {
    case 1:
        l->ptr = NULL;
        l->bad = n > 0;
        break;
    case 2:
        l->count = opaque_size(SIZE_MAX);
        l->bad = true;
        break;
    case 3:
        l->count = opaque_size(SIZE_MAX / sizeof(gather_result) + 1);
        l->bad = true;
        break;
    case 4:
        if (n > 0) {
            l->fs[take(r) % n] = NULL;
            l->bad = true;
        }
        break;
    case 5:
        l->results_null = true;
        break;
    case 6:
        l->out_null = true;
        break;
    default:
        break;
    }
}

/* A flags byte b: gather_flags_tab[b % 6] (8u: an unknown bit), plus
 * GATHER_WAIT_ALL when bit 6 is set. (Before 0.2, entry 4 was 4u, then an
 * unknown bit; it is GATHER_WAIT_ALL now.) */
static const unsigned gather_flags_tab[] = {
    0, GATHER_RETURN_ERRORS, GATHER_CANCEL_ON_ERROR,
    GATHER_RETURN_ERRORS | GATHER_CANCEL_ON_ERROR, 8u, 0x80000000u};
#define FLAGS_WAIT_ALL_BIT 0x40u

static bool gather_flags_bad(unsigned flags)
{
    return (flags & ~7u) != 0 ||
           (flags & 3u) == (GATHER_RETURN_ERRORS | GATHER_CANCEL_ON_ERROR);
}

static unsigned flags_of(uint8_t b)
{
    unsigned flags = gather_flags_tab[b % (sizeof gather_flags_tab /
                                           sizeof gather_flags_tab[0])];
    return (b & FLAGS_WAIT_ALL_BIT) ? flags | GATHER_WAIT_ALL : flags;
}

static unsigned read_gather_flags(reader *r)
{
    return flags_of(take(r));
}

static bool list_has_failure(const list_args *l, int code)
{
    for (size_t i = 0; i < l->n; i++)
        if (gather_future_done(l->fs[i]) &&
            gather_future_error(l->fs[i]) == code)
            return true;
    return false;
}

/* gather_futures() (or gather_futures_for(), `timed`) with valid arguments
 * and n > 0 returned rc. */
static void check_gathered(const list_args *l, const gather_result *res,
                           unsigned flags, int rc, bool timed)
{
    CHECK(rc != EDEADLK, "EDEADLK off the pool");
    if (timed && rc == ETIMEDOUT && !list_has_failure(l, rc)) {
        /* The snapshot: EINPROGRESS, or what a done future holds. */
        for (size_t i = 0; res != NULL && i < l->n; i++)
            CHECK(res[i].error == EINPROGRESS
                      ? res[i].value == NULL
                      : gather_future_done(l->fs[i]) &&
                            res[i].error == gather_future_error(l->fs[i]) &&
                            res[i].value == gather_future_value(l->fs[i]),
                  "timed out, entry %zu: %d", i, res[i].error);
        return;
    }
    if (rc != 0 && !list_has_failure(l, rc)) {
        CHECK(rc == ENOMEM, "gather_futures: %d, no entry failed so", rc);
        return; /* its wait record could not be allocated */
    }
    if (flags & GATHER_RETURN_ERRORS)
        CHECK(rc == 0, "RETURN_ERRORS: %d", rc);
    bool has_rc = false;
    for (size_t i = 0; i < l->n; i++) {
        gather_future *f = l->fs[i];
        if (flags & GATHER_WAIT_ALL)
            CHECK(gather_future_done(f), "WAIT_ALL returned %d, entry %zu "
                  "not done", rc, i);
        if (rc == 0)
            CHECK(gather_future_done(f) && (gather_future_error(f) == 0 ||
                                            (flags & GATHER_RETURN_ERRORS)),
                  "gathered with 0 but entry %zu is %d", i,
                  gather_future_error(f));
        if (res == NULL)
            continue;
        if (res[i].error == EINPROGRESS) {
            CHECK(rc != 0 && res[i].value == NULL, "entry %zu EINPROGRESS", i);
            continue;
        }
        CHECK(gather_future_done(f) && res[i].error == gather_future_error(f) &&
                  res[i].value == gather_future_value(f),
              "entry %zu: %d/%p vs future %d/%p", i, res[i].error, res[i].value,
              gather_future_error(f), gather_future_value(f));
        has_rc = has_rc || res[i].error == rc;
    }
    CHECK(rc == 0 || res == NULL || has_rc, "no entry has the code %d", rc);
}

/* ------------------------------------------------------------------------ */
/* Operations                                                               */
/* ------------------------------------------------------------------------ */

/* The thread counts and max_threads values a byte picks. Valid counts stay
 * small (no input starts hundreds of threads); max_threads goes up to the
 * limit, since spares start only for blocked tasks with work queued. */
static const size_t threads_tab[] = {0, 1, 2, 3, 4, 5, 1025, SIZE_MAX};
static const size_t max_tab[] = {0, 1, 2, 3, 4, 6, 8, 16,
                                 64, 4096, 4097, 1025, SIZE_MAX, 2, 5, 0};

/* Creates a pool in slot s with `threads`, `max` and options byte o (see
 * op_pool_create), checking the code against gather.h. */
static void create_in_slot(pool_slot *s, size_t threads, size_t max, uint8_t o)
{
    static const size_t stack_tab[] = {0, 64 * 1024, 1024 * 1024, SIZE_MAX};
    static const char *const name_tab[] = {NULL, "", "fz",
                                           "fuzz-pool-with-a-long-name"};
    gather_pool_options opts = {0};
    opts.threads = threads;
    opts.max_threads = max;
    opts.stack_size = (o & 0x40) ? SIZE_MAX / 4 : stack_tab[o & 3u];
    opts.name = name_tab[(o >> 2) & 3u];
    const gather_pool_options *op = (o & 0x10) ? NULL : &opts;
    if (o & 0x20) {
        CHECK(gather_pool_create(NULL, op) == EINVAL, "create(NULL)");
        return;
    }
    if (s->state != POOL_EMPTY)
        return;
    gather_pool *p = NULL;
    int rc = gather_pool_create(&p, op);
    TRACE("create slot %d: threads %zu max_threads %zu stack %zu name %s%s -> %d",
          (int)(s - h.pool), threads, max, opts.stack_size,
          opts.name ? opts.name : "NULL", op ? "" : " (NULL options)", rc);
    size_t t = cpu_count(), m = t;
    if (op != NULL && !sizes_valid(threads, max, &t, &m)) {
        CHECK(rc == EINVAL, "create with threads %zu, max_threads %zu: %d",
              threads, max, rc);
        CHECK(p == NULL, "failed create left a pool");
        return;
    }
    if (op != NULL && opts.stack_size == SIZE_MAX) {
        CHECK(rc == EINVAL, "create with stack SIZE_MAX: %d", rc);
        return;
    }
    if (op != NULL && opts.stack_size == SIZE_MAX / 4) {
        CHECK(rc == EINVAL || rc == EAGAIN, "create with a huge stack: %d", rc);
        if (rc != 0)
            return;
    }
    if (rc != 0) { /* out of memory or threads: nothing was created */
        CHECK(rc == ENOMEM || rc == EAGAIN, "create: %d", rc);
        return;
    }
    CHECK(p != NULL, "create returned 0 without a pool");
    memset(s, 0, sizeof *s);
    s->pool = p;
    s->state = POOL_LIVE;
    s->id = ++h.pool_ids;
    slot_sizes_set(s, t, m);
    CHECK(gather_pool_threads(p) == s->threads, "threads %zu, expected %zu",
          gather_pool_threads(p), s->threads);
    gather_pool_stats st;
    CHECK(gather_pool_stats_get(p, &st) == 0, "stats of a new pool");
    check_slot_sizes(s, &st);
}

/* [slot][threads][options]: options bits 0-1 stack size, 2-3 name, 4 NULL
 * options, 5 NULL pool pointer, 6 a stack too large to map. */
static void op_pool_create(reader *r)
{
    pool_slot *s = &h.pool[take(r) % POOL_SLOTS];
    size_t threads = threads_tab[take(r) % 8];
    uint8_t o = take(r);
    create_in_slot(s, threads, 0, o);
}

/* [slot][threads][max_threads][options]: an elastic pool (or EINVAL);
 * options as for op_pool_create. */
static void op_pool_create_elastic(reader *r)
{
    pool_slot *s = &h.pool[take(r) % POOL_SLOTS];
    size_t threads = threads_tab[take(r) % 8];
    size_t max = max_tab[take(r) % 16];
    uint8_t o = take(r);
    create_in_slot(s, threads, max, o);
}

/* [pool][threads][max_threads]: gather_pool_resize() from the harness
 * thread. On the default pool (NULL) only invalid sizes, and valid ones
 * with threads 0 (its threads stay the CPUs; finish_input restores its
 * max_threads). */
static void op_resize(reader *r)
{
    int slot;
    gather_pool *p = pick_pool(take(r), &slot);
    size_t threads = threads_tab[take(r) % 8];
    size_t max = max_tab[take(r) % 16];
    size_t t, m;
    bool valid = sizes_valid(threads, max, &t, &m);
    if (p == NULL) {
        if (valid && threads != 0)
            return;
        int rc = gather_pool_resize(NULL, threads, max);
        TRACE("resize default pool: threads %zu max_threads %zu -> %d",
              threads, max, rc);
        CHECK(valid ? rc == 0 || rc == EAGAIN : rc == EINVAL,
              "resize of the default pool (%zu, %zu): %d", threads, max, rc);
        CHECK(gather_pool_threads(NULL) == cpu_count(),
              "the default pool's threads %zu", gather_pool_threads(NULL));
        if (valid)
            default_resized = true;
        return;
    }
    pool_slot *s = &h.pool[slot];
    bool shut = s->state == POOL_SHUT;
    if (valid && !shut) { /* the sizes may apply before any check below */
        s->resized = true;
        slot_sizes_set(s, t, m);
    }
    int rc = gather_pool_resize(p, threads, max);
    TRACE("resize slot %d: threads %zu max_threads %zu -> %d", slot, threads,
          max, rc);
    if (!valid)
        CHECK(rc == EINVAL || (shut && rc == ESHUTDOWN),
              "resize (%zu, %zu): %d", threads, max, rc);
    else if (shut)
        CHECK(rc == ESHUTDOWN, "resize of a shut-down pool: %d", rc);
    else
        CHECK(rc == 0 || rc == EAGAIN, "resize (%zu, %zu): %d", threads, max,
              rc);
    check_slot_threads(s, "after a resize");
    gather_pool_stats st;
    CHECK(gather_pool_stats_get(p, &st) == 0, "stats after a resize");
    check_slot_sizes(s, &st);
}

/* [mode]: gather_blocking_begin/end on the harness thread, outside any
 * task: no-ops, balanced or not. mode & 3: 0 begin, end; 1 begin only; 2
 * end only; 3 (mode >> 2) begins, then as many ends. */
static void op_blocking(reader *r)
{
    uint8_t mode = take(r);
    switch (mode & 3u) {
    case 0:
        gather_blocking_begin();
        gather_blocking_end();
        break;
    case 1:
        gather_blocking_begin();
        break;
    case 2:
        gather_blocking_end();
        break;
    default:
        for (unsigned i = 0; i < (mode >> 2); i++)
            gather_blocking_begin();
        for (unsigned i = 0; i < (mode >> 2); i++)
            gather_blocking_end();
        break;
    }
    TRACE("blocking outside a task: mode %#x", mode);
    CHECK(gather_current_pool() == NULL && !gather_cancel_requested(),
          "blocking regions outside a task changed the thread");
}

/* [pool][flags] spec: flags 1 detached, 2 NULL fn, 4 "self" (K_MISUSE). */
static void op_submit(reader *r)
{
    int slot;
    gather_pool *p = pick_pool(take(r), &slot);
    uint8_t fl = take(r);
    uint32_t spec = read_spec(r);
    bool detached = (fl & 1u) || h.nrec == MAX_RECORDS;
    bool null_fn = (fl & 2u) != 0;
    bool shut = slot >= 0 && h.pool[slot].state == POOL_SHUT;
    bool counted = detached && p == NULL;
    unsigned self = 0;
    if (!detached && (fl & 4u) && spec_kind(spec) == K_MISUSE)
        self = (unsigned)h.nrec + 1;
    uintptr_t arg = make_arg(spec, self, counted);
    gather_future *f = (gather_future *)&h; /* must be overwritten */
    /* Flag 8: gather_submit_ex with options from bits 4-7 (priority
     * (fl >> 4 & 3) - 1, so 3 is an invalid 2; bit 6 blocking; bit 7 an
     * unknown flag bit). */
    bool ex = (fl & 8u) != 0;
    gather_task_options opts = {0};
    opts.priority = (int)((fl >> 4) & 3u) - 1;
    opts.flags = ((fl & 0x40u) ? GATHER_TASK_BLOCKING : 0) | ((fl & 0x80u) ? 2u : 0);
    bool bad_opts = ex && (opts.priority > GATHER_PRIORITY_HIGH || (opts.flags & 2u));
    if (counted && !bad_opts)
        detached_add(1);
    int rc = ex ? gather_submit_ex(p, null_fn ? NULL : fuzz_task, (void *)arg, &opts,
                                   detached ? NULL : &f)
                : gather_submit(p, null_fn ? NULL : fuzz_task, (void *)arg,
                                detached ? NULL : &f);
    TRACE("submit to %d: spec %06x%s%s%s -> %d (record %d)", slot,
          (unsigned)spec, detached ? " detached" : "",
          null_fn ? " NULL fn" : "", self ? " self" : "", rc,
          detached || rc ? -1 : (int)h.nrec);
    if (rc != 0 && counted && !bad_opts)
        detached_add(-1);
    if (!detached)
        CHECK(rc == 0 || f == NULL, "failed submit left *future %p", (void *)f);
    if (null_fn || bad_opts) {
        CHECK(rc == EINVAL, "submit(NULL fn or bad options): %d", rc);
        return;
    }
    if (shut) {
        CHECK(rc == ESHUTDOWN, "submit to a shut-down pool: %d", rc);
        return;
    }
    if (rc != 0) {
        CHECK(rc == ENOMEM || rc == EAGAIN, "submit: %d", rc);
        return;
    }
    if (slot >= 0)
        h.pool[slot].accepted++;
    if (spec_resizes(spec, 0))
        mark_resizer(slot);
    if (detached)
        return;
    CHECK(f != NULL && f != (gather_future *)&h, "submit gave no future");
    size_t i = add_record(f, REC_TASK);
    record *rec = &h.rec[i];
    rec->pool_id = slot >= 0 ? h.pool[slot].id : 0;
    rec->arg = arg;
    rec->natural = natural_codes(spec);
    if (self != 0)
        atomic_store(&self_cell[i], f);
}

/* A continuation's fn: prev is done; then a task of the spec in arg. */
static int fuzz_then(gather_future *prev, void *arg, void **result)
{
    CHECK(prev != NULL && gather_future_done(prev),
          "continuation runs before its prev is done");
    CHECK(gather_future_error(prev) != EINPROGRESS, "prev done, EINPROGRESS");
    return fuzz_task(arg, result);
}

/* [prev record][pool][flags] spec: gather_then. flags 1 detached (only on
 * the default pool, which never refuses it: it is counted until it ran),
 * 2 NULL fn, 4 cancel it at once (before prev is done, the cancel must
 * win), 8 a NULL prev. */
static void op_then(reader *r)
{
    record *prev = pick_record(take(r));
    int slot;
    gather_pool *p = pick_pool(take(r), &slot);
    uint8_t fl = take(r);
    uint32_t spec = read_spec(r);
    bool null_prev = prev == NULL || (fl & 8u);
    bool null_fn = (fl & 2u) != 0;
    bool detached = ((fl & 1u) && p == NULL) || h.nrec == MAX_RECORDS;
    bool shut = slot >= 0 && h.pool[slot].state == POOL_SHUT;
    bool bad = null_prev || null_fn;
    /* A detached continuation must run (its run is counted: ARG_COUNTED),
     * so none on a pool that could refuse it. */
    if (detached && p != NULL && !bad)
        return;
    uintptr_t arg = make_arg(spec, 0, detached && !bad);
    if (detached && !bad)
        detached_add(1);
    gather_future *next = (gather_future *)&h; /* must be overwritten */
    int rc = gather_then(null_prev ? NULL : prev->f, p,
                         null_fn ? NULL : fuzz_then, (void *)arg,
                         detached ? NULL : &next);
    TRACE("then of record %d on %d: spec %06x%s -> %d (record %d)",
          null_prev ? -1 : (int)(prev - h.rec), slot, (unsigned)spec,
          detached ? " detached" : "", rc, detached || rc ? -1 : (int)h.nrec);
    if (rc != 0 && detached && !bad)
        detached_add(-1);
    if (!detached)
        CHECK(rc == 0 || next == NULL, "failed then left *next %p",
              (void *)next);
    if (bad) {
        CHECK(rc == EINVAL, "then with a NULL prev or fn: %d", rc);
        return;
    }
    if (shut) {
        CHECK(rc == ESHUTDOWN, "then on a shut-down pool: %d", rc);
        return;
    }
    if (rc != 0) {
        CHECK(rc == ENOMEM || rc == EAGAIN, "then: %d", rc);
        return;
    }
    if (slot >= 0)
        h.pool[slot].accepted++;
    if (spec_resizes(spec, 0))
        mark_resizer(slot);
    if (detached)
        return;
    CHECK(next != NULL && next != (gather_future *)&h, "then gave no future");
    size_t i = add_record(next, REC_THEN);
    record *rec = &h.rec[i];
    rec->pool_id = slot >= 0 ? h.pool[slot].id : 0;
    rec->arg = arg;
    rec->natural = natural_codes(spec) | code_bit(ESHUTDOWN);
    if (fl & 4u) {
        bool won = gather_future_cancel(next);
        TRACE("cancel of the new continuation -> %d", (int)won);
        /* Losing means the link was queued: prev was done. */
        CHECK(won || gather_future_done(prev->f),
              "cancel of a continuation whose prev is pending returned false");
        if (won) {
            rec->cancel_won = true;
            CHECK(gather_future_done(next) && gather_future_cancelled(next) &&
                      gather_future_value(next) == NULL,
                  "cancelled continuation not done");
        }
    }
}

/* [record][flags]: flags 1 value NULL. */
static void op_wait(reader *r)
{
    record *rec = pick_record(take(r));
    bool value_null = (take(r) & 1u) != 0;
    void *v = &v;
    if (rec == NULL) {
        CHECK(gather_future_wait(NULL, &v) == EINVAL, "wait(NULL)");
        return;
    }
    gate_set(true);
    int rc = gather_future_wait(rec->f, value_null ? NULL : &v);
    TRACE("wait record %zu -> %d", (size_t)(rec - h.rec), rc);
    if (rc == ENOMEM && !gather_future_done(rec->f)) {
        settle(rec->f); /* its wait record could not be allocated */
        return;
    }
    /* A task may itself return EINVAL (K_MAP), never EDEADLK. */
    CHECK(rc != EDEADLK, "wait off the pool: EDEADLK");
    CHECK(gather_future_done(rec->f) && rc == gather_future_error(rec->f),
          "wait returned %d, future says %d", rc, gather_future_error(rec->f));
    CHECK(value_null || v == gather_future_value(rec->f), "wait value %p", v);
    check_record(rec);
}

static const uint64_t timeout_tab[] = {0, 1000, 10 * 1000, 100 * 1000,
                                       GATHER_FOREVER};

/* [record][timeout] */
static void op_wait_for(reader *r)
{
    record *rec = pick_record(take(r));
    uint64_t t = timeout_tab[take(r) % 5];
    if (rec == NULL) {
        CHECK(!gather_future_wait_for(NULL, t), "wait_for(NULL)");
        return;
    }
    if (t == GATHER_FOREVER)
        gate_set(true);
    bool done = gather_future_wait_for(rec->f, t);
    TRACE("wait_for record %zu, %llu ns -> %d", (size_t)(rec - h.rec),
          (unsigned long long)t, (int)done);
    /* FOREVER gives false only when no wait record can be allocated, which
     * this harness (no allocator faults) never sees. */
    CHECK(done || t != GATHER_FOREVER, "wait_for(FOREVER) false");
    CHECK(!done || gather_future_done(rec->f), "wait_for true, not done");
}

/* [record] */
static void op_cancel(reader *r)
{
    record *rec = pick_record(take(r));
    if (rec == NULL) {
        CHECK(!gather_future_cancel(NULL), "cancel(NULL)");
        return;
    }
    bool was_done = gather_future_done(rec->f);
    bool won = gather_future_cancel(rec->f);
    TRACE("cancel record %zu -> %d", (size_t)(rec - h.rec), (int)won);
    CHECK(!(was_done && won), "cancel of a done future returned true");
    if (!won)
        return;
    rec->cancel_won = true;
    CHECK(gather_future_done(rec->f) &&
              gather_future_error(rec->f) == ECANCELED &&
              gather_future_cancelled(rec->f),
          "cancel true: done %d error %d", (int)gather_future_done(rec->f),
          gather_future_error(rec->f));
    /* Completed on this thread: its callbacks ran before cancel returned. */
    size_t i = (size_t)(rec - h.rec);
    CHECK(atomic_load(&cb_fired[i]) == full_mask(rec->cb_added),
          "cancel returned before callbacks ran (%#llx of %u)",
          (unsigned long long)atomic_load(&cb_fired[i]), rec->cb_added);
    check_record(rec);
}

/* [record][action]: action bits 0-2 what the callback does, 3 NULL
 * callback, 4 NULL future. */
static void op_on_done(reader *r)
{
    record *rec = pick_record(take(r));
    uint8_t a = take(r);
    if (rec == NULL || (a & 0x10u)) {
        CHECK(gather_future_on_done(NULL, on_done_cb, NULL) == EINVAL,
              "on_done(NULL future)");
        return;
    }
    if (a & 0x08u) {
        CHECK(gather_future_on_done(rec->f, NULL, NULL) == EINVAL,
              "on_done(NULL callback)");
        return;
    }
    if (rec->cb_added == MAX_CALLBACKS)
        return;
    size_t i = (size_t)(rec - h.rec);
    unsigned seq = rec->cb_added;
    uintptr_t ud = cb_data(i, seq, a & 7u);
    bool was_done = gather_future_done(rec->f);
    cb_adding = ud;
    int rc = gather_future_on_done(rec->f, on_done_cb, (void *)ud);
    cb_adding = 0;
    if (rc == ENOMEM)
        return; /* not added, will not run */
    TRACE("on_done record %zu: callback %u action %u -> %d%s", i, seq, a & 7u,
          rc, was_done ? " (done: ran at once)" : "");
    CHECK(rc == 0, "on_done: %d", rc);
    rec->cb_added++;
    if (was_done)
        CHECK(atomic_load(&cb_fired[i]) & ((uint64_t)1 << seq),
              "callback on a done future did not run at once");
}

/* [record][mode]: mode 1 release (else retain), 2 NULL. */
static void op_ref(reader *r)
{
    record *rec = pick_record(take(r));
    uint8_t m = take(r);
    if (rec == NULL || (m & 2u)) {
        CHECK(gather_future_retain(NULL) == NULL, "retain(NULL)");
        gather_future_release(NULL);
        return;
    }
    if ((m & 1u) == 0) {
        CHECK(gather_future_retain(rec->f) == rec->f, "retain");
        rec->user_refs++;
    } else if (rec->user_refs > 0) {
        gather_future_release(rec->f);
        rec->user_refs--;
    }
}

/* [flags] list. Flags byte bit 7: gather_futures_for() with the timeout
 * timeout_tab[bits 4-5] (0, 1, 10 or 100 us; the gate stays as it is). */
static void op_gather_futures(reader *r)
{
    uint8_t fb = take(r);
    unsigned flags = flags_of(fb);
    bool timed = (fb & 0x80u) != 0;
    uint64_t t = timeout_tab[(fb >> 4) & 3u];
    list_args l;
    read_list(r, &l);
    bool bad = l.bad || gather_flags_bad(flags);
    gather_result res[MAX_LIST];
    for (size_t i = 0; i < MAX_LIST; i++)
        res[i] = (gather_result){-12345, &res};
    /* Bad arguments must be refused before any waiting: gate left as is. */
    if (!bad && l.count > 0 && !timed)
        gate_set(true);
    gather_result *rp = l.results_null ? NULL : res;
    int rc = timed ? gather_futures_for(l.ptr, l.count, rp, flags, t)
                   : gather_futures(l.ptr, l.count, rp, flags);
    TRACE("gather_futures%s n %zu (passed %zu%s) flags %#x -> %d",
          timed ? "_for" : "", l.n, l.count, l.ptr ? "" : ", NULL list",
          flags, rc);
    if (bad) {
        CHECK(rc == EINVAL, "gather_futures with bad arguments: %d", rc);
        return;
    }
    if (l.count == 0) {
        CHECK(rc == 0, "gather_futures of none: %d", rc);
        return;
    }
    check_gathered(&l, rp, flags, rc, timed);
}

/* [flags] list: the aggregate becomes a record. */
static void op_gather_all(reader *r)
{
    unsigned flags = read_gather_flags(r);
    list_args l;
    read_list(r, &l);
    bool bad = l.bad || l.out_null || gather_flags_bad(flags);
    gather_future *agg = NULL;
    if (!bad && h.nrec == MAX_RECORDS)
        return;
    int rc = gather_all(l.ptr, l.count, flags, l.out_null ? NULL : &agg);
    TRACE("gather_all n %zu (passed %zu%s) flags %#x -> %d (record %zu)", l.n,
          l.count, l.ptr ? "" : ", NULL list", flags, rc, h.nrec);
    if (bad) {
        CHECK(rc == EINVAL, "gather_all with bad arguments: %d", rc);
        return;
    }
    if (rc == ENOMEM)
        return;
    CHECK(rc == 0 && agg != NULL, "gather_all: %d", rc);
    size_t i = add_record(agg, REC_AGGREGATE);
    record *rec = &h.rec[i];
    rec->flags = flags;
    rec->n = l.n;
    rec->natural = code_bit(0) | code_bit(ECANCELED);
    for (size_t k = 0; k < l.n; k++) {
        rec->child[k] = l.idx[k];
        rec->natural |= h.rec[l.idx[k]].natural;
    }
    if (l.n == 0)
        CHECK(gather_future_done(agg) && gather_future_error(agg) == 0 &&
                  gather_future_value(agg) == NULL,
              "aggregate of none");
}

/* Jobs of a "wide" gather_map: enough for its range to be split into
 * chunks that other workers steal. */
#define MAP_WIDE 32

/* [pool][n and mode][flags] n specs: n (bits 0..2) is 0..4, mode (bits
 * 3..5) 1 NULL fn, 2 NULL args, 3 SIZE_MAX, 4 an overflowing count, 5 NULL
 * results, 6 wide: MAP_WIDE jobs, the specs applied in equal blocks. */
static void op_map(reader *r)
{
    int slot;
    gather_pool *p = pick_pool(take(r), &slot);
    uint8_t sel = take(r);
    unsigned flags = read_gather_flags(r);
    size_t nspecs = (sel & 7u) % 5;
    unsigned mode = (sel >> 3) & 7u;
    bool shut = slot >= 0 && h.pool[slot].state == POOL_SHUT;
    uintptr_t spec_arg[4] = {0, 0, 0, 0};
    for (size_t i = 0; i < nspecs; i++) {
        uint32_t spec = read_spec(r);
        /* Fail-fast returns while the other tasks run on; on the default
         * pool nothing would wait for them before the input ends. */
        if (p == NULL && !(flags & (GATHER_RETURN_ERRORS | GATHER_WAIT_ALL)))
            spec = never_failing(spec, 0);
        spec_arg[i] = make_arg(spec, 0, false);
    }
    size_t n = (mode == 6 && nspecs > 0) ? MAP_WIDE : nspecs;
    void *args[MAP_WIDE] = {NULL};
    uintptr_t argv[MAP_WIDE] = {0};
    for (size_t i = 0; i < n; i++) {
        argv[i] = spec_arg[i * nspecs / n];
        args[i] = (void *)argv[i];
    }
    gather_fn fn = mode == 1 ? NULL : fuzz_task;
    void *const *ap = mode == 2 ? NULL : args;
    size_t overflowing = SIZE_MAX / sizeof(gather_result) + 1;
    size_t count = mode == 3   ? opaque_size(SIZE_MAX)
                   : mode == 4 ? opaque_size(overflowing)
                               : n;
    bool bad = gather_flags_bad(flags) || fn == NULL || mode == 3 ||
               mode == 4 || (ap == NULL && n > 0);
    gather_result res[MAP_WIDE];
    gather_result *rp = mode == 5 ? NULL : res;
    for (size_t i = 0; i < MAP_WIDE; i++)
        res[i] = (gather_result){-12345, &res};
    if (!bad && n > 0 && !shut)
        gate_set(true);
    for (size_t i = 0; !bad && !shut && i < nspecs; i++)
        if (spec_resizes(arg_spec(spec_arg[i]), 0))
            mark_resizer(slot); /* before the jobs can run */
    int rc = gather_map(p, fn, ap, count, rp, flags);
    TRACE("gather_map on %d: n %zu (passed %zu) mode %u flags %#x -> %d", slot,
          n, count, mode, flags, rc);
    if (bad) {
        CHECK(rc == EINVAL, "gather_map with bad arguments: %d", rc);
        return;
    }
    if (n == 0) {
        CHECK(rc == 0, "gather_map of none: %d", rc);
        return;
    }
    if (shut) {
        CHECK(rc == ESHUTDOWN, "gather_map on a shut-down pool: %d", rc);
        for (size_t i = 0; rp != NULL && i < n; i++)
            CHECK(res[i].error == ESHUTDOWN && res[i].value == NULL,
                  "unsubmitted entry %zu: %d", i, res[i].error);
        return;
    }
    CHECK(rc != EDEADLK && rc != ESHUTDOWN, "gather_map: %d", rc);
    uint32_t natural = code_bit(0) | code_bit(ENOMEM);
    for (size_t i = 0; i < n; i++)
        natural |= natural_codes(arg_spec(argv[i]));
    CHECK((natural & code_bit(rc)) != 0, "gather_map returned %d", rc);
    if (flags & GATHER_RETURN_ERRORS)
        CHECK(rc == 0 || rc == ENOMEM, "RETURN_ERRORS map: %d", rc);
    bool has_rc = false;
    for (size_t i = 0; rp != NULL && i < n; i++) {
        check_task_entry(&res[i], argv[i]);
        /* Nobody cancels these (no CANCEL_PENDING can run meanwhile), so
         * ECANCELED is a code the task chose or CANCEL_ON_ERROR's doing. */
        if (rc == 0)
            CHECK(res[i].error != EINPROGRESS &&
                      (res[i].error == 0 || (flags & GATHER_RETURN_ERRORS)),
                  "map returned 0 with entry %zu %d", i, res[i].error);
        if ((flags & GATHER_WAIT_ALL) && rc != ENOMEM)
            CHECK(res[i].error != EINPROGRESS,
                  "WAIT_ALL map returned %d with entry %zu running", rc, i);
        uint32_t codes = natural_codes(arg_spec(argv[i]));
        if (flags & GATHER_RETURN_ERRORS)
            CHECK((codes & code_bit(res[i].error)) != 0,
                  "RETURN_ERRORS entry %zu: %d", i, res[i].error);
        has_rc = has_rc || res[i].error == rc;
    }
    CHECK(rc == 0 || rc == ENOMEM || rp == NULL || has_rc,
          "map failed with %d, no entry has it", rc);
    if (rc == 0 && slot >= 0)
        h.pool[slot].accepted += n;
}

/* [timeout] list: list mode 6 is a NULL index. */
static void op_wait_any(reader *r)
{
    uint64_t t = timeout_tab[take(r) % 5];
    list_args l;
    read_list(r, &l);
    size_t index = 777;
    bool bad = l.bad || l.out_null || l.count == 0;
    size_t first_done = SIZE_MAX;
    for (size_t i = 0; !bad && i < l.n; i++)
        if (first_done == SIZE_MAX && gather_future_done(l.fs[i]))
            first_done = i;
    if (!bad && t == GATHER_FOREVER)
        gate_set(true);
    int rc = gather_wait_any(l.ptr, l.count, t, l.out_null ? NULL : &index);
    TRACE("wait_any n %zu (passed %zu), %llu ns -> %d, index %zu", l.n, l.count,
          (unsigned long long)t, rc, index);
    if (bad) {
        CHECK(rc == EINVAL, "wait_any with bad arguments: %d", rc);
        return;
    }
    if (rc == ETIMEDOUT) {
        CHECK(t != GATHER_FOREVER && first_done == SIZE_MAX && index == 777,
              "wait_any timed out (timeout %llu, first done %zu, index %zu)",
              (unsigned long long)t, first_done, index);
        return;
    }
    if (rc == ENOMEM)
        return;
    CHECK(rc == 0, "wait_any: %d", rc);
    CHECK(index < l.n && gather_future_done(l.fs[index]) && index <= first_done,
          "wait_any index %zu (first done before: %zu)", index, first_done);
}

/* After a drain: every task that was accepted ran or was cancelled. */
static void check_drained_stats(const pool_slot *s)
{
    gather_pool_stats st;
    /* A continuation whose prev is not done is counted as submitted, and
     * as cancelled once refused (before it is marked done): at most the
     * ones pending before the read are not counted yet. */
    uint64_t pending = links_pending(s->id);
    CHECK(gather_pool_stats_get(s->pool, &st) == 0, "stats");
    CHECK(st.submitted >= st.completed + st.cancelled &&
              st.submitted - (st.completed + st.cancelled) <= pending,
          "drained: submitted %llu, completed %llu, cancelled %llu, "
          "continuations pending %llu", (unsigned long long)st.submitted,
          (unsigned long long)st.completed, (unsigned long long)st.cancelled,
          (unsigned long long)pending);
    CHECK(st.submitted >= s->accepted, "submitted %llu < accepted %llu",
          (unsigned long long)st.submitted, (unsigned long long)s->accepted);
    check_slot_sizes(s, &st);
    /* Drained, the peak counts every live thread once a start in flight is
     * over (the monitor may start a spare it decided on before the drain;
     * threads is counted before the peak). */
    for (int k = 0; k < 200 && st.threads > st.threads_peak; k++) {
        nanosleep(&(struct timespec){0, 5 * 1000 * 1000}, NULL);
        CHECK(gather_pool_stats_get(s->pool, &st) == 0, "stats");
    }
    CHECK(st.threads <= st.threads_peak, "drained: threads %llu above the "
          "peak %llu for 1 s", (unsigned long long)st.threads,
          (unsigned long long)st.threads_peak);
}

/* [pool][flags]: flags 0, CANCEL_PENDING, or an unknown bit. */
static void op_shutdown(reader *r)
{
    static const unsigned flags_tab[] = {0, GATHER_CANCEL_PENDING, 2u};
    int slot;
    gather_pool *p = pick_pool(take(r), &slot);
    unsigned flags = flags_tab[take(r) % 3];
    if (p == NULL) {
        CHECK(gather_pool_shutdown(NULL, flags) == EINVAL, "shutdown(NULL)");
        return;
    }
    if (flags == 2u) {
        CHECK(gather_pool_shutdown(p, flags) == EINVAL, "shutdown, bad flags");
        return;
    }
    gate_set(true);
    mark_links_shut(h.pool[slot].id);
    int rc = gather_pool_shutdown(p, flags);
    TRACE("shutdown slot %d flags %#x -> %d", slot, flags, rc);
    CHECK(rc == 0, "shutdown: %d", rc);
    pool_slot *s = &h.pool[slot];
    s->state = POOL_SHUT;
    check_pool_tasks_done(s->id);
    check_drained_stats(s);
    check_slot_threads(s, "after shutdown");
}

/* [pool] */
static void op_destroy(reader *r)
{
    int slot;
    gather_pool *p = pick_pool(take(r), &slot);
    if (p == NULL) {
        CHECK(gather_pool_destroy(NULL) == EINVAL, "destroy(NULL)");
        return;
    }
    gate_set(true);
    mark_links_shut(h.pool[slot].id);
    int rc = gather_pool_destroy(p);
    TRACE("destroy slot %d -> %d", slot, rc);
    CHECK(rc == 0, "destroy: %d", rc);
    pool_slot *s = &h.pool[slot];
    s->state = POOL_EMPTY;
    s->pool = NULL;
    /* Futures outlive their pool: read them all now. */
    check_pool_tasks_done(s->id);
}

/* [pool][mode]: mode 1 NULL stats. */
static void op_stats(reader *r)
{
    int slot;
    gather_pool *p = pick_pool(take(r), &slot);
    gather_pool_stats st;
    if (take(r) & 1u) {
        CHECK(gather_pool_stats_get(p, NULL) == EINVAL, "stats(NULL)");
        return;
    }
    int rc = gather_pool_stats_get(p, &st);
    TRACE("stats of %d -> %d: submitted %llu completed %llu cancelled %llu "
          "threads %llu peak %llu spares %llu", slot, rc,
          (unsigned long long)st.submitted, (unsigned long long)st.completed,
          (unsigned long long)st.cancelled, (unsigned long long)st.threads,
          (unsigned long long)st.threads_peak,
          (unsigned long long)st.spares_started);
    CHECK(rc == 0, "stats: %d", rc);
    if (slot < 0)
        return;
    CHECK(st.submitted >= h.pool[slot].accepted, "submitted %llu < %llu",
          (unsigned long long)st.submitted,
          (unsigned long long)h.pool[slot].accepted);
    check_slot_threads(&h.pool[slot], "stats");
    check_slot_sizes(&h.pool[slot], &st);
    if (h.pool[slot].state == POOL_SHUT)
        check_drained_stats(&h.pool[slot]);
}

/* [mode]: 1 open the gate, else close it. */
static void op_gate(reader *r)
{
    gate_set((take(r) & 1u) != 0);
}

/* [record]: the non-blocking accessors agree with each other. */
static void op_inspect(reader *r)
{
    record *rec = pick_record(take(r));
    CHECK(gather_current_pool() == NULL, "current pool off the pool");
    CHECK(!gather_cancel_requested(), "cancel requested off the pool");
    if (rec == NULL) {
        CHECK(!gather_future_done(NULL) &&
                  gather_future_error(NULL) == EINVAL &&
                  gather_future_value(NULL) == NULL &&
                  !gather_future_cancelled(NULL),
              "accessors of NULL");
        return;
    }
    /* Read in this order: each is monotonic once the future is done. */
    int e = gather_future_error(rec->f);
    void *v = gather_future_value(rec->f);
    bool c = gather_future_cancelled(rec->f);
    bool d = gather_future_done(rec->f);
    CHECK(e == EINPROGRESS || d, "error %d before done", e);
    CHECK(v == NULL || d, "value before done");
    CHECK(!c || (d && gather_future_error(rec->f) == ECANCELED),
          "cancelled but %d", gather_future_error(rec->f));
    /* A take hands out the value once (nothing here has a value_free). */
    void *t1 = gather_future_take(rec->f);
    bool d2 = gather_future_done(rec->f); /* it may have completed since */
    void *v2 = gather_future_value(rec->f);
    CHECK(d2 ? t1 == NULL || t1 == v2 : t1 == NULL,
          "take %p of a future whose value is %p (done %d)", t1, v2, (int)d2);
    void *t2 = gather_future_take(rec->f);
    /* Done before the first take: it took the value (or one before it did). */
    CHECK(!d || t2 == NULL, "second take");
    CHECK(!d2 || gather_future_value(rec->f) == v2, "value changed by a take");
    if (d)
        check_record(rec);
}

typedef void (*op_fn)(reader *r);

/* Opcodes 0..15 are those of version 0.1's harness; 16.. came with
 * elastic pools. Inputs of 0.1 keep their meaning once converted: opcode
 * bytes modulo 16, spec bytes masked to bits 0-5 (kind 7: bits 0-3); see
 * tests/fuzz/regressions/README.md. */
static const op_fn ops[] = {
    op_pool_create, op_submit,  op_wait,    op_wait_for,
    op_cancel,      op_on_done, op_ref,     op_gather_futures,
    op_gather_all,  op_map,     op_wait_any, op_shutdown,
    op_destroy,     op_stats,   op_gate,    op_inspect,
    op_pool_create_elastic, op_resize, op_blocking, op_then,
};
#define N_OPS (sizeof ops / sizeof ops[0])

static const char *const op_names[N_OPS] = {
    "pool_create", "submit",  "wait",     "wait_for",
    "cancel",      "on_done", "ref",      "gather_futures",
    "gather_all",  "map",     "wait_any", "shutdown",
    "destroy",     "stats",   "gate",     "inspect",
    "pool_create_elastic", "resize", "blocking", "then",
};

/* ------------------------------------------------------------------------ */
/* Input lifetime                                                           */
/* ------------------------------------------------------------------------ */

static int report_pool(void *arg, void **result)
{
    (void)arg;
    *result = gather_current_pool();
    return 0;
}

/* The default pool's sizes for every input: the CPUs, elastic up to
 * DEFAULT_MAX_THREADS. */
static void set_default_sizes(void)
{
    int rc = gather_pool_resize(NULL, 0, DEFAULT_MAX_THREADS);
    CHECK(rc == 0, "resize of the default pool: %d", rc);
    CHECK(gather_pool_threads(NULL) == cpu_count(), "default pool threads");
    default_resized = false;
}

/* Once per process: the default pool's address (for tasks to tell it). */
static void init_once(void)
{
    gather_future *f = NULL;
    void *v = NULL;
    CHECK(gather_submit(NULL, report_pool, NULL, &f) == 0, "default pool");
    CHECK(gather_future_wait(f, &v) == 0 && v != NULL, "default pool task");
    gather_future_release(f);
    default_pool = v;
    CHECK(gather_pool_threads(NULL) >= 1, "default pool threads");
    set_default_sizes();
    char version[32];
    snprintf(version, sizeof version, "%d.%d.%d", GATHER_VERSION_MAJOR,
             GATHER_VERSION_MINOR, GATHER_VERSION_PATCH);
    CHECK(strcmp(gather_version(), version) == 0, "version %s",
          gather_version());
}

/* Waits until every callback added to record i has run to its end. */
static void wait_callbacks(size_t i)
{
    struct timespec dl = watchdog_deadline();
    uint64_t want = full_mask(h.rec[i].cb_added);
    while (atomic_load(&cb_fired[i]) != want) {
        CHECK(!past(&dl), "callbacks of record %zu: %#llx of %#llx", i,
              (unsigned long long)atomic_load(&cb_fired[i]),
              (unsigned long long)want);
        sched_yield();
    }
}

/* Ends the input: nothing of it is left running, referenced or allocated. */
static void finish_input(void)
{
    gate_set(true);
    for (size_t s = 0; s < POOL_SLOTS; s++) {
        if (h.pool[s].state == POOL_EMPTY)
            continue;
        mark_links_shut(h.pool[s].id);
        CHECK(gather_pool_destroy(h.pool[s].pool) == 0, "final destroy");
        check_pool_tasks_done(h.pool[s].id);
        h.pool[s].state = POOL_EMPTY;
        h.pool[s].pool = NULL;
    }
    for (size_t i = 0; i < h.nrec; i++) {
        int rc = gather_future_wait(h.rec[i].f, NULL);
        if (rc == ENOMEM && !gather_future_done(h.rec[i].f))
            settle(h.rec[i].f);
        check_record(&h.rec[i]);
    }
    for (size_t i = 0; i < h.nrec; i++)
        wait_callbacks(i);
    detached_wait_zero();
    if (default_resized)
        set_default_sizes();
    for (size_t i = 0; i < h.nrec; i++) {
        for (int k = 0; k < h.rec[i].user_refs; k++)
            gather_future_release(h.rec[i].f);
        gather_future_release(h.rec[i].f); /* the harness's own */
        atomic_store(&self_cell[i], NULL);
        atomic_store(&cb_fired[i], 0);
        atomic_store(&cb_listed_last[i], -1);
    }
    memset(h.rec, 0, sizeof h.rec);
    h.nrec = 0;
    gate_set(false);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool initialised;
    if (!initialised) {
        tracing = getenv("GATHER_FUZZ_TRACE") != NULL;
        init_once();
        for (size_t i = 0; i < MAX_RECORDS; i++)
            atomic_store(&cb_listed_last[i], -1);
        initialised = true;
    }
    reader r = {data, size};
    for (int n = 0; n < MAX_OPS && r.n > 0; n++) {
        uint8_t op = take(&r) % N_OPS;
        TRACE("op %d at byte %zu: %s", n, size - r.n - 1, op_names[op]);
        ops[op](&r);
    }
    finish_input();
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Replay driver (fuzz_replay): runs saved inputs without libFuzzer         */
/* ------------------------------------------------------------------------ */

#ifdef GATHER_FUZZ_REPLAY_MAIN
#include <dirent.h>
#include <sys/stat.h>

static int replay_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        perror(path);
        return 1;
    }
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            uint8_t *nb = realloc(buf, cap);
            CHECK(nb != NULL, "out of memory reading %s", path);
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len, fp);
        len += got;
        if (got == 0)
            break;
    }
    int err = ferror(fp);
    fclose(fp);
    if (err) {
        fprintf(stderr, "fuzz_replay: cannot read %s\n", path);
        free(buf);
        return 1;
    }
    printf("fuzz_replay: %s (%zu bytes)\n", path, len);
    fflush(stdout);
    LLVMFuzzerTestOneInput(buf, len);
    free(buf);
    return 0;
}

static bool is_note(const char *name)
{
    size_t n = strlen(name);
    return name[0] == '.' || (n >= 3 && strcmp(name + n - 3, ".md") == 0);
}

/* Every regular file of a directory, in name order (notes skipped). */
static int replay_dir(const char *dir, size_t *count)
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    if (n < 0) {
        perror(dir);
        return 1;
    }
    int failed = 0;
    for (int i = 0; i < n; i++) {
        char path[4096];
        struct stat st;
        if (!is_note(names[i]->d_name) &&
            snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name) <
                (int)sizeof path &&
            stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            failed |= replay_file(path);
            ++*count;
        }
        free(names[i]);
    }
    free(names);
    return failed;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
        return 2;
    }
    size_t count = 0;
    int failed = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            perror(argv[i]);
            failed = 1;
        } else if (S_ISDIR(st.st_mode)) {
            failed |= replay_dir(argv[i], &count);
        } else {
            failed |= replay_file(argv[i]);
            count++;
        }
    }
    printf("fuzz_replay: %zu inputs replayed%s\n", count,
           failed ? ", some could not be read" : "");
    return failed ? 1 : 0;
}
#endif /* GATHER_FUZZ_REPLAY_MAIN */
