/* SPDX-License-Identifier: MIT */
/*
 * check_options.c - gather_submit_ex() and gather_future_take() (SPEC.md,
 * "Task options"): NULL and zero options are gather_submit(); the argument
 * checks; priorities of tasks submitted from outside (and none for
 * subtasks); value_free and take; arg_free on every way a task ends;
 * GATHER_TASK_BLOCKING on elastic and strict pools.
 *
 * Interleavings are forced with gates and counters. The blocking tests
 * turn the pool's monitor off (GATHER_BLOCKING_DETECT=0), so that a worker
 * held in a gated task looks like a task running on a CPU: only what the
 * BLOCKING flag does can let another task start then. The one "does not
 * start" check (a strict pool) watches a window where nothing could start
 * it: the only thread is held in a gated task.
 *
 * main() installs a pass-through allocator that a test can make fail
 * (gather_replace_allocator() works only before the first pool, so with
 * CK_FORK=no too).
 */
#include "testutil.h"

#include <limits.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

#define WATCHDOG_S (TU_VALGRIND ? 60 : 10)
#define OBSERVE_MS 100

static int marker_a, marker_b, marker_c;

/* ---- an allocator that fails on demand ------------------------------------ */

/* Named as check_alloc's: tests/valgrind.supp knows the default pool's
 * blocks allocated through it (they are only "possibly" reachable). */
static atomic_int al_fail;
static atomic_long al_live;

static void *counting_malloc(size_t size)
{
    if (atomic_load(&al_fail))
        return NULL;
    void *p = malloc(size);
    if (p != NULL)
        atomic_fetch_add(&al_live, 1);
    return p;
}

static void counting_free(void *ptr)
{
    if (ptr != NULL)
        atomic_fetch_sub(&al_live, 1);
    free(ptr);
}

/* ---- helpers ---------------------------------------------------------------- */

static gather_pool *pool_of(size_t threads, size_t max_threads)
{
    gather_pool_options o;
    memset(&o, 0, sizeof o);
    o.threads = threads;
    o.max_threads = max_threads;
    gather_pool *p = NULL;
    ck_assert_int_eq(gather_pool_create(&p, &o), 0);
    ck_assert_ptr_nonnull(p);
    return p;
}

static gather_pool_stats stats_of(gather_pool *p)
{
    gather_pool_stats st;
    memset(&st, 0, sizeof st);
    ck_assert_int_eq(gather_pool_stats_get(p, &st), 0);
    return st;
}

static int count_wait_s(tu_count *c, long target, int seconds)
{
    struct timespec dl = tu_deadline(seconds);
    return tu_count_reaches(c, target, &dl) ? 0 : ETIMEDOUT;
}

static bool count_stays_below(tu_count *c, long target, long ms)
{
    struct timespec dl = tu_deadline_ms(ms);
    return !tu_count_reaches(c, target, &dl);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        continue;
}

/* The pool's stats once spares_started >= spares, or after the watchdog
 * (the starter counts a spare after pthread_create returns). */
static gather_pool_stats stats_eventually(gather_pool *p, uint64_t spares)
{
    uint64_t limit = tu_mono_ns() + (uint64_t)WATCHDOG_S * 1000000000u;
    for (;;) {
        gather_pool_stats st = stats_of(p);
        if (st.spares_started >= spares || tu_mono_ns() > limit)
            return st;
        sleep_ms(1);
    }
}

/* A task holding a pool's thread: started, then gated. */
typedef struct holder {
    tu_gate gate;
    tu_count started;
    tu_gated g;
    gather_future *f;
} holder;

static void hold(holder *h, gather_pool *p)
{
    memset(h, 0, sizeof *h);
    tu_gate_init(&h->gate);
    tu_count_init(&h->started);
    h->g.gate = &h->gate;
    h->g.started = &h->started;
    h->g.value = &marker_c;
    atomic_init(&h->g.ran, 0);
    atomic_init(&h->g.saw_cancel, 0);
    ck_assert_int_eq(gather_submit(p, tu_task_gated, &h->g, &h->f), 0);
    ck_assert_int_eq(count_wait_s(&h->started, 1, WATCHDOG_S), 0);
}

static void unhold(holder *h)
{
    tu_gate_open(&h->gate);
    ck_assert_int_eq(gather_future_wait(h->f, NULL), 0);
    gather_future_release(h->f);
    tu_gate_destroy(&h->gate);
    tu_count_destroy(&h->started);
}

/* GATHER_BLOCKING_DETECT=0 while a test's pools exist (their monitors read
 * it when they start), restored afterwards (CK_FORK=no runs every test in
 * one process). */
static char *saved_detect;
static bool had_detect;

static void detection_off(void)
{
    const char *v = getenv("GATHER_BLOCKING_DETECT");
    had_detect = v != NULL;
    saved_detect = v != NULL ? strdup(v) : NULL;
    ck_assert_int_eq(setenv("GATHER_BLOCKING_DETECT", "0", 1), 0);
}

static void detection_restore(void)
{
    if (had_detect)
        setenv("GATHER_BLOCKING_DETECT", saved_detect, 1);
    else
        unsetenv("GATHER_BLOCKING_DETECT");
    free(saved_detect);
    saved_detect = NULL;
}

/* ---- recorders for the hooks ------------------------------------------------ */

/* value_free: calls, the last value, and a counter to wait on. */
static atomic_int vf_calls;
static _Atomic(void *) vf_last;
static tu_count vf_count;

static void value_free_rec(void *value)
{
    atomic_store(&vf_last, value);
    atomic_fetch_add(&vf_calls, 1);
    tu_count_add(&vf_count, 1);
}

/* arg_free: calls, the last arg, and a counter to wait on. */
static atomic_int af_calls;
static _Atomic(void *) af_last;
static tu_count af_count;

static void arg_free_rec(void *arg)
{
    atomic_store(&af_last, arg);
    atomic_fetch_add(&af_calls, 1);
    tu_count_add(&af_count, 1);
}

static void setup(void)
{
    atomic_store(&vf_calls, 0);
    atomic_store(&vf_last, NULL);
    tu_count_init(&vf_count);
    atomic_store(&af_calls, 0);
    atomic_store(&af_last, NULL);
    tu_count_init(&af_count);
    atomic_store(&al_fail, 0);
}

static void teardown(void)
{
    tu_count_destroy(&vf_count);
    tu_count_destroy(&af_count);
}

static gather_task_options opts_none(void)
{
    gather_task_options o;
    memset(&o, 0, sizeof o);
    return o;
}

/* ---- NULL and zero options, argument checks ------------------------------- */

static int task_submit_ex_inside(void *arg, void **result)
{
    (void)arg;
    gather_future *f = NULL;
    gather_task_options o = opts_none();
    int rc = gather_submit_ex(gather_current_pool(), tu_task_identity, &marker_b,
                              &o, &f);
    if (rc != 0)
        return rc;
    void *v = NULL;
    rc = gather_future_wait(f, &v);
    gather_future_release(f);
    *result = v;
    return rc;
}

START_TEST(test_null_and_zero_options_are_submit)
{
    gather_pool *p = tu_pool(2);
    gather_task_options zero = opts_none();
    gather_future *f1 = NULL, *f2 = NULL, *f3 = NULL;
    ck_assert_int_eq(gather_submit_ex(p, tu_task_identity, &marker_a, NULL, &f1), 0);
    ck_assert_int_eq(gather_submit_ex(p, tu_task_identity, &marker_b, &zero, &f2), 0);
    tu_fail_arg fa = {23, &marker_c};
    ck_assert_int_eq(gather_submit_ex(p, tu_task_fail_with, &fa, &zero, &f3), 0);
    void *v = NULL;
    ck_assert_int_eq(gather_future_wait(f1, &v), 0);
    ck_assert_ptr_eq(v, &marker_a);
    ck_assert_int_eq(gather_future_wait(f2, &v), 0);
    ck_assert_ptr_eq(v, &marker_b);
    ck_assert_int_eq(gather_future_wait(f3, &v), 23);
    ck_assert_ptr_eq(v, &marker_c);
    ck_assert(!gather_future_cancelled(f3));

    /* Detached, both ways. */
    atomic_int ran = 0;
    ck_assert_int_eq(gather_submit_ex(p, tu_task_count, &ran, NULL, NULL), 0);
    ck_assert_int_eq(gather_submit_ex(p, tu_task_count, &ran, &zero, NULL), 0);
    /* From inside a task of the pool. */
    gather_future *f4 = NULL;
    ck_assert_int_eq(gather_submit_ex(p, task_submit_ex_inside, NULL, &zero, &f4), 0);
    ck_assert_int_eq(gather_future_wait(f4, &v), 0);
    ck_assert_ptr_eq(v, &marker_b);
    /* The default pool (with a hook: a plain task block freed on one of
     * its threads would stay in that worker's cache, which valgrind reports
     * with CK_FORK=no, the default pool living to the end). */
    gather_future *f5 = NULL;
    gather_task_options hooked = opts_none();
    hooked.arg_free = arg_free_rec;
    ck_assert_int_eq(gather_submit_ex(NULL, tu_task_identity, &marker_a, &hooked, &f5), 0);
    ck_assert_int_eq(gather_future_wait(f5, &v), 0);
    ck_assert_ptr_eq(v, &marker_a);

    ck_assert_int_eq(gather_pool_shutdown(p, 0), 0);
    ck_assert_int_eq(atomic_load(&ran), 2);
    gather_pool_stats st = stats_of(p);
    ck_assert_uint_eq(st.submitted, 7);
    ck_assert_uint_eq(st.completed, 7);
    ck_assert_uint_eq(st.cancelled, 0);
    gather_future *fs[] = {f1, f2, f3, f4, f5};
    for (size_t i = 0; i < 5; i++)
        gather_future_release(fs[i]);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

static void check_refused(gather_pool *p, gather_fn fn, const gather_task_options *o,
                          int want)
{
    gather_future *f = (gather_future *)&marker_c; /* sentinel */
    ck_assert_int_eq(gather_submit_ex(p, fn, &marker_a, o, &f), want);
    ck_assert_ptr_null(f);
    ck_assert_int_eq(gather_submit_ex(p, fn, &marker_a, o, NULL), want);
}

START_TEST(test_bad_arguments_are_einval)
{
    gather_pool *p = tu_pool(1);
    gather_task_options o = opts_none();
    o.arg_free = arg_free_rec;
    o.value_free = value_free_rec;
    check_refused(p, NULL, NULL, EINVAL);
    check_refused(p, NULL, &o, EINVAL);
    unsigned bad_flags[] = {2u, 4u, 0x80000000u, ~0u, GATHER_TASK_BLOCKING | 2u};
    for (size_t i = 0; i < sizeof bad_flags / sizeof bad_flags[0]; i++) {
        o.flags = bad_flags[i];
        check_refused(p, tu_task_identity, &o, EINVAL);
    }
    o.flags = 0;
    int bad_prio[] = {2, -2, 3, INT_MIN, INT_MAX};
    for (size_t i = 0; i < sizeof bad_prio / sizeof bad_prio[0]; i++) {
        o.priority = bad_prio[i];
        check_refused(p, tu_task_identity, &o, EINVAL);
        o.flags = GATHER_TASK_BLOCKING;
        check_refused(p, tu_task_identity, &o, EINVAL);
        o.flags = 0;
    }
    /* The default pool checks the same. */
    o.priority = 2;
    check_refused(NULL, tu_task_identity, &o, EINVAL);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    ck_assert_int_eq(atomic_load(&af_calls), 0);
    ck_assert_int_eq(atomic_load(&vf_calls), 0);
}
END_TEST

START_TEST(test_submit_after_shutdown_is_eshutdown)
{
    gather_pool *pools[2] = {pool_of(1, 0), pool_of(1, 4)};
    for (int k = 0; k < 2; k++) {
        gather_pool *p = pools[k];
        ck_assert_int_eq(gather_pool_shutdown(p, 0), 0);
        gather_task_options o = opts_none();
        o.arg_free = arg_free_rec;
        o.value_free = value_free_rec;
        for (int prio = -1; prio <= 1; prio++) {
            o.priority = prio;
            o.flags = 0;
            check_refused(p, tu_task_identity, &o, ESHUTDOWN);
            o.flags = GATHER_TASK_BLOCKING;
            check_refused(p, tu_task_identity, &o, ESHUTDOWN);
        }
        check_refused(p, tu_task_identity, NULL, ESHUTDOWN);
        gather_pool_stats st = stats_of(p);
        ck_assert_uint_eq(st.submitted, 0);
        ck_assert_uint_eq(st.spares_started, 0);
        ck_assert_int_eq(gather_pool_destroy(p), 0);
    }
    ck_assert_int_eq(atomic_load(&af_calls), 0);
    ck_assert_int_eq(atomic_load(&vf_calls), 0);
}
END_TEST

START_TEST(test_out_of_memory_calls_no_hook)
{
    gather_pool *p = tu_pool(1);
    gather_task_options hooked = opts_none();
    hooked.arg_free = arg_free_rec;
    hooked.value_free = value_free_rec;
    gather_task_options prio = opts_none();
    prio.priority = GATHER_PRIORITY_HIGH;
    gather_task_options blocking = opts_none();
    blocking.flags = GATHER_TASK_BLOCKING;
    const gather_task_options *all[] = {&hooked, &prio, &blocking, NULL};
    atomic_store(&al_fail, 1);
    for (size_t i = 0; i < 4; i++)
        check_refused(p, tu_task_identity, all[i], ENOMEM);
    atomic_store(&al_fail, 0);
    /* The pool still works. */
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit_ex(p, tu_task_identity, &marker_a, &hooked, &f), 0);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    ck_assert_int_eq(atomic_load(&af_calls), 1);
    ck_assert_ptr_eq(atomic_load(&af_last), &marker_a);
    gather_future_release(f);
    ck_assert_int_eq(count_wait_s(&vf_count, 1, WATCHDOG_S), 0);
    ck_assert_uint_eq(stats_of(p).submitted, 1);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

/* ---- priorities ------------------------------------------------------------- */

#define ORDER_MAX 64

typedef struct order_rec {
    atomic_int next;
    int seq[ORDER_MAX];
} order_rec;

typedef struct order_task {
    order_rec *rec;
    int id;
} order_task;

static int task_record(void *arg, void **result)
{
    order_task *t = arg;
    int i = atomic_fetch_add(&t->rec->next, 1);
    if (i < ORDER_MAX)
        t->rec->seq[i] = t->id;
    *result = arg;
    return 0;
}

enum { ID_HIGH = 0, ID_NORMAL = 100, ID_LOW = 200 };

/* One thread held in a gated task; LOW, NORMAL and HIGH tasks interleaved
 * from outside (some with hooks, so the kind with hooks is in its lane too;
 * one BLOCKING task on this strict pool is an ordinary one): once the gate
 * opens, every HIGH starts before any NORMAL, every NORMAL before any LOW,
 * and each priority in submission order. */
START_TEST(test_priorities_order_injected_tasks)
{
    gather_pool *p = pool_of(1, 0);
    holder h;
    hold(&h, p);
    enum { PER = 4 };
    order_rec rec;
    memset(&rec, 0, sizeof rec);
    atomic_init(&rec.next, 0);
    order_task t[3 * PER];
    gather_future *f[3 * PER];
    size_t n = 0;
    for (int i = 0; i < PER; i++) {
        static const int prios[3] = {GATHER_PRIORITY_LOW, GATHER_PRIORITY_NORMAL,
                                     GATHER_PRIORITY_HIGH};
        for (int k = 0; k < 3; k++) {
            gather_task_options o = opts_none();
            o.priority = prios[k];
            if (i % 2 == 1)
                o.arg_free = arg_free_rec;
            if (i == 2)
                o.value_free = value_free_rec;
            if (i == 3 && k == 1)
                o.flags = GATHER_TASK_BLOCKING;
            t[n].rec = &rec;
            t[n].id = (prios[k] == GATHER_PRIORITY_HIGH ? ID_HIGH
                       : prios[k] == GATHER_PRIORITY_LOW ? ID_LOW
                                                         : ID_NORMAL) + i;
            if (i == 0 && k == 1) /* plain gather_submit is NORMAL */
                ck_assert_int_eq(gather_submit(p, task_record, &t[n], &f[n]), 0);
            else
                ck_assert_int_eq(gather_submit_ex(p, task_record, &t[n], &o, &f[n]), 0);
            n++;
        }
    }
    ck_assert_int_eq(atomic_load(&rec.next), 0); /* held */
    unhold(&h);
    for (size_t i = 0; i < n; i++) {
        ck_assert_int_eq(gather_future_wait(f[i], NULL), 0);
        gather_future_release(f[i]);
    }
    ck_assert_int_eq(atomic_load(&rec.next), 3 * PER);
    for (int i = 0; i < PER; i++) {
        ck_assert_int_eq(rec.seq[i], ID_HIGH + i);
        ck_assert_int_eq(rec.seq[PER + i], ID_NORMAL + i);
        ck_assert_int_eq(rec.seq[2 * PER + i], ID_LOW + i);
    }
    ck_assert_int_eq(atomic_load(&af_calls), 3 * (PER / 2));
    ck_assert_int_eq(atomic_load(&vf_calls), 3);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

/* A task submits a HIGH then a LOW subtask to its own pool: they keep the
 * work-stealing order (the worker's own deque, newest first, before the
 * injection queue), not the priorities. */
typedef struct sub_ctx {
    tu_gate gate;
    tu_count started;
    order_rec rec;
    order_task self, sub_high, sub_low;
    int rc_high, rc_low;
} sub_ctx;

static int task_submits_prioritised_subtasks(void *arg, void **result)
{
    sub_ctx *c = arg;
    task_record(&c->self, result);
    tu_count_add(&c->started, 1);
    tu_gate_wait(&c->gate);
    gather_task_options o = opts_none();
    o.priority = GATHER_PRIORITY_HIGH;
    c->rc_high = gather_submit_ex(gather_current_pool(), task_record, &c->sub_high, &o, NULL);
    o.priority = GATHER_PRIORITY_LOW;
    o.arg_free = arg_free_rec;
    c->rc_low = gather_submit_ex(gather_current_pool(), task_record, &c->sub_low, &o, NULL);
    return 0;
}

START_TEST(test_subtasks_keep_work_stealing_order)
{
    gather_pool *p = pool_of(1, 0);
    sub_ctx c;
    memset(&c, 0, sizeof c);
    tu_gate_init(&c.gate);
    tu_count_init(&c.started);
    atomic_init(&c.rec.next, 0);
    c.self = (order_task){&c.rec, 1};
    c.sub_high = (order_task){&c.rec, 2};
    c.sub_low = (order_task){&c.rec, 3};
    order_task inj_high = {&c.rec, 4}, inj_normal = {&c.rec, 5};
    gather_future *fa = NULL, *fb = NULL, *fc = NULL;
    ck_assert_int_eq(gather_submit(p, task_submits_prioritised_subtasks, &c, &fa), 0);
    ck_assert_int_eq(count_wait_s(&c.started, 1, WATCHDOG_S), 0);
    gather_task_options o = opts_none();
    o.priority = GATHER_PRIORITY_HIGH;
    ck_assert_int_eq(gather_submit_ex(p, task_record, &inj_high, &o, &fb), 0);
    ck_assert_int_eq(gather_submit(p, task_record, &inj_normal, &fc), 0);
    tu_gate_open(&c.gate);
    ck_assert_int_eq(gather_future_wait(fa, NULL), 0);
    ck_assert_int_eq(gather_future_wait(fb, NULL), 0);
    ck_assert_int_eq(gather_future_wait(fc, NULL), 0);
    ck_assert_int_eq(gather_pool_shutdown(p, 0), 0); /* the detached subtasks */
    ck_assert_int_eq(c.rc_high, 0);
    ck_assert_int_eq(c.rc_low, 0);
    ck_assert_int_eq(atomic_load(&c.rec.next), 5);
    int want[5] = {1, 3, 2, 4, 5};
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(c.rec.seq[i], want[i]);
    ck_assert_int_eq(atomic_load(&af_calls), 1);
    ck_assert_ptr_eq(atomic_load(&af_last), &c.sub_low);
    gather_future_release(fa);
    gather_future_release(fb);
    gather_future_release(fc);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    tu_gate_destroy(&c.gate);
    tu_count_destroy(&c.started);
}
END_TEST

/* ---- value_free and take ---------------------------------------------------- */

static gather_task_options opts_vf(void)
{
    gather_task_options o = opts_none();
    o.value_free = value_free_rec;
    return o;
}

START_TEST(test_value_free_at_last_release)
{
    gather_pool *p = tu_pool(2);
    gather_task_options o = opts_vf();
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit_ex(p, tu_task_identity, &marker_a, &o, &f), 0);
    void *v = NULL;
    ck_assert_int_eq(gather_future_wait(f, &v), 0);
    ck_assert_ptr_eq(v, &marker_a);
    gather_future *g = gather_future_retain(f);
    ck_assert_ptr_eq(g, f);
    gather_future_release(f);
    ck_assert_int_eq(atomic_load(&vf_calls), 0);
    ck_assert_ptr_eq(gather_future_value(g), &marker_a); /* still readable */
    gather_future_release(g);
    /* The worker holds a reference across the completion: the last
     * release may be its own, a moment after the wait returned. */
    ck_assert_int_eq(count_wait_s(&vf_count, 1, WATCHDOG_S), 0);
    ck_assert_int_eq(atomic_load(&vf_calls), 1);
    ck_assert_ptr_eq(atomic_load(&vf_last), &marker_a);

    /* A failure payload alike. */
    tu_fail_arg fa = {31, &marker_b};
    ck_assert_int_eq(gather_submit_ex(p, tu_task_fail_with, &fa, &o, &f), 0);
    ck_assert_int_eq(gather_future_wait(f, &v), 31);
    ck_assert_ptr_eq(v, &marker_b);
    ck_assert_int_eq(atomic_load(&vf_calls), 1);
    gather_future_release(f);
    ck_assert_int_eq(count_wait_s(&vf_count, 2, WATCHDOG_S), 0);
    ck_assert_int_eq(atomic_load(&vf_calls), 2);
    ck_assert_ptr_eq(atomic_load(&vf_last), &marker_b);

    /* A NULL value is not passed on, success or failure. */
    ck_assert_int_eq(gather_submit_ex(p, tu_task_identity, NULL, &o, &f), 0);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    gather_future_release(f);
    tu_fail_arg fn = {32, NULL};
    ck_assert_int_eq(gather_submit_ex(p, tu_task_fail_with, &fn, &o, &f), 0);
    ck_assert_int_eq(gather_future_wait(f, NULL), 32);
    gather_future_release(f);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    ck_assert_int_eq(atomic_load(&vf_calls), 2);
}
END_TEST

START_TEST(test_value_free_of_detached_task_when_it_completes)
{
    gather_pool *p = tu_pool(2);
    gather_task_options o = opts_vf();
    ck_assert_int_eq(gather_submit_ex(p, tu_task_identity, &marker_a, &o, NULL), 0);
    ck_assert_int_eq(count_wait_s(&vf_count, 1, WATCHDOG_S), 0);
    ck_assert_ptr_eq(atomic_load(&vf_last), &marker_a);
    tu_fail_arg fa = {5, &marker_b};
    ck_assert_int_eq(gather_submit_ex(p, tu_task_fail_with, &fa, &o, NULL), 0);
    ck_assert_int_eq(count_wait_s(&vf_count, 2, WATCHDOG_S), 0);
    ck_assert_ptr_eq(atomic_load(&vf_last), &marker_b);
    /* NULL values: never passed on (the drain waits for the tasks). */
    ck_assert_int_eq(gather_submit_ex(p, tu_task_identity, NULL, &o, NULL), 0);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    ck_assert_int_eq(atomic_load(&vf_calls), 2);
}
END_TEST

/* The caller's reference goes while the task runs: the worker's completion
 * drops the last one and frees the value then. */
START_TEST(test_value_free_when_released_before_completion)
{
    gather_pool *p = tu_pool(1);
    tu_gate gate;
    tu_count started;
    tu_gate_init(&gate);
    tu_count_init(&started);
    tu_gated g;
    memset(&g, 0, sizeof g);
    g.gate = &gate;
    g.started = &started;
    g.value = &marker_b;
    atomic_init(&g.ran, 0);
    atomic_init(&g.saw_cancel, 0);
    gather_task_options o = opts_vf();
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit_ex(p, tu_task_gated, &g, &o, &f), 0);
    ck_assert_int_eq(count_wait_s(&started, 1, WATCHDOG_S), 0);
    ck_assert_ptr_null(gather_future_take(f)); /* not done: nothing taken */
    gather_future_release(f);
    ck_assert_int_eq(atomic_load(&vf_calls), 0);
    tu_gate_open(&gate);
    ck_assert_int_eq(count_wait_s(&vf_count, 1, WATCHDOG_S), 0);
    ck_assert_ptr_eq(atomic_load(&vf_last), &marker_b);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    ck_assert_int_eq(atomic_load(&vf_calls), 1);
    tu_gate_destroy(&gate);
    tu_count_destroy(&started);
}
END_TEST

START_TEST(test_take_owns_the_value)
{
    gather_pool *p = tu_pool(2);
    gather_task_options o = opts_vf();
    ck_assert_ptr_null(gather_future_take(NULL));
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit_ex(p, tu_task_identity, &marker_a, &o, &f), 0);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    ck_assert_ptr_eq(gather_future_take(f), &marker_a);
    ck_assert_ptr_null(gather_future_take(f)); /* a second take */
    /* Reading still works after the take. */
    ck_assert_ptr_eq(gather_future_value(f), &marker_a);
    void *v = NULL;
    ck_assert_int_eq(gather_future_wait(f, &v), 0);
    ck_assert_ptr_eq(v, &marker_a);
    ck_assert_int_eq(gather_future_error(f), 0);
    gather_result r[1];
    ck_assert_int_eq(gather_futures(&f, 1, r, 0), 0);
    ck_assert_ptr_eq(r[0].value, &marker_a);
    gather_future_release(f);
    ck_assert_int_eq(atomic_load(&vf_calls), 0);

    /* A failure payload is taken the same way. */
    tu_fail_arg fa = {9, &marker_b};
    ck_assert_int_eq(gather_submit_ex(p, tu_task_fail_with, &fa, &o, &f), 0);
    ck_assert_int_eq(gather_future_wait(f, NULL), 9);
    ck_assert_ptr_eq(gather_future_take(f), &marker_b);
    ck_assert_ptr_null(gather_future_take(f));
    gather_future_release(f);
    ck_assert_int_eq(atomic_load(&vf_calls), 0);

    /* Plain futures: a take returns the value once and frees nothing. */
    ck_assert_int_eq(gather_submit(p, tu_task_identity, &marker_c, &f), 0);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    ck_assert_ptr_eq(gather_future_take(f), &marker_c);
    ck_assert_ptr_null(gather_future_take(f));
    ck_assert_ptr_eq(gather_future_value(f), &marker_c);
    gather_future_release(f);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    ck_assert_int_eq(atomic_load(&vf_calls), 0);
}
END_TEST

START_TEST(test_take_before_done_takes_nothing)
{
    gather_pool *p = tu_pool(1);
    tu_gate gate;
    tu_count started;
    tu_gate_init(&gate);
    tu_count_init(&started);
    tu_gated g;
    memset(&g, 0, sizeof g);
    g.gate = &gate;
    g.started = &started;
    g.value = &marker_a;
    atomic_init(&g.ran, 0);
    atomic_init(&g.saw_cancel, 0);
    gather_task_options o = opts_vf();
    gather_future *f = NULL, *q = NULL;
    ck_assert_int_eq(gather_submit_ex(p, tu_task_gated, &g, &o, &f), 0);
    ck_assert_int_eq(count_wait_s(&started, 1, WATCHDOG_S), 0);
    /* Running, and queued behind it. */
    ck_assert_int_eq(gather_submit_ex(p, tu_task_identity, &marker_b, &o, &q), 0);
    ck_assert_ptr_null(gather_future_take(f));
    ck_assert_ptr_null(gather_future_take(q));
    tu_gate_open(&gate);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    ck_assert_int_eq(gather_future_wait(q, NULL), 0);
    /* The early takes took nothing: the value is still there to take. */
    ck_assert_ptr_eq(gather_future_take(f), &marker_a);
    gather_future_release(f);
    ck_assert_int_eq(atomic_load(&vf_calls), 0);
    /* Nor did they keep value_free from running. */
    gather_future_release(q);
    ck_assert_int_eq(count_wait_s(&vf_count, 1, WATCHDOG_S), 0);
    ck_assert_int_eq(atomic_load(&vf_calls), 1);
    ck_assert_ptr_eq(atomic_load(&vf_last), &marker_b);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    tu_gate_destroy(&gate);
    tu_count_destroy(&started);
}
END_TEST

START_TEST(test_waits_and_reads_do_not_take)
{
    gather_pool *p = tu_pool(2);
    gather_task_options o = opts_vf();
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit_ex(p, tu_task_identity, &marker_a, &o, &f), 0);
    ck_assert(gather_future_wait_for(f, GATHER_FOREVER));
    void *v = NULL;
    ck_assert_int_eq(gather_future_wait(f, &v), 0);
    ck_assert_ptr_eq(v, &marker_a);
    ck_assert_ptr_eq(gather_future_value(f), &marker_a);
    gather_result r[2];
    gather_future *two[2] = {f, f};
    ck_assert_int_eq(gather_futures(two, 2, r, GATHER_RETURN_ERRORS), 0);
    size_t idx = 9;
    ck_assert_int_eq(gather_wait_any(&f, 1, GATHER_FOREVER, &idx), 0);
    gather_future *agg = NULL;
    ck_assert_int_eq(gather_all(&f, 1, 0, &agg), 0);
    ck_assert_int_eq(gather_future_wait(agg, NULL), 0);
    gather_future_release(agg);
    gather_future_release(f);
    ck_assert_int_eq(count_wait_s(&vf_count, 1, WATCHDOG_S), 0);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    ck_assert_int_eq(atomic_load(&vf_calls), 1);
    ck_assert_ptr_eq(atomic_load(&vf_last), &marker_a);
}
END_TEST

/* Cancelled before it ran: the value is NULL and value_free is not called;
 * the task never runs. */
START_TEST(test_cancelled_before_run_frees_no_value)
{
    gather_pool *p = pool_of(1, 0);
    holder h;
    hold(&h, p);
    atomic_int ran = 0;
    gather_task_options o = opts_vf();
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit_ex(p, tu_task_count, &ran, &o, &f), 0);
    ck_assert(gather_future_cancel(f));
    ck_assert(gather_future_done(f));
    ck_assert(gather_future_cancelled(f));
    ck_assert_int_eq(gather_future_error(f), ECANCELED);
    ck_assert_ptr_null(gather_future_value(f));
    ck_assert_ptr_null(gather_future_take(f));
    gather_future_release(f);
    unhold(&h);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    ck_assert_int_eq(atomic_load(&ran), 0);
    ck_assert_int_eq(atomic_load(&vf_calls), 0);
}
END_TEST

/* Threads race to take one value: exactly one gets it. */
typedef struct take_race {
    gather_future *f;
    pthread_barrier_t barrier;
    _Atomic(void *) got[4];
} take_race;

typedef struct take_arg {
    take_race *race;
    int i;
} take_arg;

static void *take_main(void *arg)
{
    take_arg *a = arg;
    pthread_barrier_wait(&a->race->barrier);
    atomic_store(&a->race->got[a->i], gather_future_take(a->race->f));
    return NULL;
}

START_TEST(test_concurrent_takes_have_one_winner)
{
    gather_pool *p = tu_pool(2);
    gather_task_options o = opts_vf();
    for (int round = 0; round < (TU_VALGRIND ? 5 : 50); round++) {
        take_race race;
        memset(&race, 0, sizeof race);
        ck_assert_int_eq(gather_submit_ex(p, tu_task_identity, &marker_a, &o, &race.f), 0);
        ck_assert_int_eq(gather_future_wait(race.f, NULL), 0);
        ck_assert_int_eq(pthread_barrier_init(&race.barrier, NULL, 4), 0);
        pthread_t t[4];
        take_arg a[4];
        for (int i = 0; i < 4; i++) {
            a[i] = (take_arg){&race, i};
            ck_assert_int_eq(pthread_create(&t[i], NULL, take_main, &a[i]), 0);
        }
        int winners = 0;
        for (int i = 0; i < 4; i++) {
            ck_assert_int_eq(pthread_join(t[i], NULL), 0);
            void *got = atomic_load(&race.got[i]);
            if (got != NULL) {
                ck_assert_ptr_eq(got, &marker_a);
                winners++;
            }
        }
        ck_assert_int_eq(winners, 1);
        pthread_barrier_destroy(&race.barrier);
        gather_future_release(race.f);
    }
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    ck_assert_int_eq(atomic_load(&vf_calls), 0);
}
END_TEST

/* ---- arg_free --------------------------------------------------------------- */

typedef struct af_ctx {
    tu_gate gate;
    _Atomic(gather_future *) f;
    atomic_int returned;   /* the task is about to return */
    atomic_int freed;      /* arg_free calls */
    atomic_int returned_in_free;
    atomic_int done_in_free;
    atomic_int error_in_free;
    atomic_int freed_in_callback;
    pthread_t free_thread;
    int code;
    tu_count started;
} af_ctx;

static void af_ctx_init(af_ctx *c, int code)
{
    memset(c, 0, sizeof *c);
    tu_gate_init(&c->gate);
    atomic_init(&c->f, NULL);
    atomic_init(&c->returned, 0);
    atomic_init(&c->freed, 0);
    atomic_init(&c->returned_in_free, -1);
    atomic_init(&c->done_in_free, -1);
    atomic_init(&c->error_in_free, -1);
    atomic_init(&c->freed_in_callback, -1);
    c->code = code;
    tu_count_init(&c->started);
}

static int task_af(void *arg, void **result)
{
    af_ctx *c = arg;
    tu_gate_wait(&c->gate);
    *result = &marker_a;
    atomic_store(&c->returned, 1);
    return c->code;
}

static void af_free(void *arg)
{
    af_ctx *c = arg;
    atomic_store(&c->returned_in_free, atomic_load(&c->returned));
    gather_future *f = atomic_load(&c->f);
    if (f != NULL) {
        atomic_store(&c->done_in_free, gather_future_done(f) ? 1 : 0);
        atomic_store(&c->error_in_free, gather_future_error(f));
    }
    c->free_thread = pthread_self();
    atomic_fetch_add(&c->freed, 1);
}

static void af_done_cb(gather_future *f, void *user_data)
{
    (void)f;
    af_ctx *c = user_data;
    atomic_store(&c->freed_in_callback, atomic_load(&c->freed));
}

/* arg_free runs once, after the task returned and before the future is
 * done: the waiter, its done callback and every reader see it ran. */
START_TEST(test_arg_free_after_return_before_done)
{
    for (int code = 0; code <= 44; code += 44) {
        gather_pool *p = tu_pool(2);
        af_ctx c;
        af_ctx_init(&c, code);
        gather_task_options o = opts_none();
        o.arg_free = af_free;
        gather_future *f = NULL;
        ck_assert_int_eq(gather_submit_ex(p, task_af, &c, &o, &f), 0);
        atomic_store(&c.f, f);
        ck_assert_int_eq(gather_future_on_done(f, af_done_cb, &c), 0);
        tu_gate_open(&c.gate);
        void *v = NULL;
        int rc = gather_future_wait(f, &v);
        int freed_at_return = atomic_load(&c.freed);
        ck_assert_int_eq(rc, code);
        ck_assert_ptr_eq(v, &marker_a);
        ck_assert_int_eq(freed_at_return, 1);
        ck_assert_int_eq(atomic_load(&c.returned_in_free), 1);
        ck_assert_int_eq(atomic_load(&c.done_in_free), 0);
        ck_assert_int_eq(atomic_load(&c.error_in_free), EINPROGRESS);
        gather_future_release(f);
        /* The drain waits for the completion, callbacks included. */
        ck_assert_int_eq(gather_pool_destroy(p), 0);
        ck_assert_int_eq(atomic_load(&c.freed_in_callback), 1);
        ck_assert_int_eq(atomic_load(&c.freed), 1);
        tu_gate_destroy(&c.gate);
        tu_count_destroy(&c.started);
    }
}
END_TEST

/* A task whose arg_free frees its argument, detached and not: nothing
 * leaks (valgrind, ASan) and nothing touches the argument afterwards. */
static int task_read_heap_arg(void *arg, void **result)
{
    *result = NULL;
    return *(int *)arg;
}

static void free_and_count(void *arg)
{
    free(arg);
    tu_count_add(&af_count, 1);
}

START_TEST(test_arg_free_frees_the_argument)
{
    gather_pool *p = tu_pool(2);
    gather_task_options o = opts_none();
    o.arg_free = free_and_count;
    enum { N = 16 };
    gather_future *f[N];
    for (int i = 0; i < N; i++) {
        int *arg = malloc(sizeof *arg);
        ck_assert_ptr_nonnull(arg);
        *arg = i;
        ck_assert_int_eq(gather_submit_ex(p, task_read_heap_arg, arg, &o,
                                          i % 2 ? &f[i] : NULL), 0);
    }
    for (int i = 1; i < N; i += 2) {
        ck_assert_int_eq(gather_future_wait(f[i], NULL), i);
        gather_future_release(f[i]);
    }
    ck_assert_int_eq(count_wait_s(&af_count, N, WATCHDOG_S), 0);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    ck_assert_int_eq(tu_count_get(&af_count), N);
}
END_TEST

/* Cancelled before it ran: arg_free runs on the cancelling thread before
 * gather_future_cancel() returns; the task never runs. */
START_TEST(test_arg_free_on_cancel_before_run)
{
    gather_pool *p = pool_of(1, 0);
    holder h;
    hold(&h, p);
    af_ctx c;
    af_ctx_init(&c, 0);
    tu_gate_open(&c.gate);
    gather_task_options o = opts_none();
    o.arg_free = af_free;
    o.value_free = value_free_rec;
    o.priority = GATHER_PRIORITY_LOW;
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit_ex(p, task_af, &c, &o, &f), 0);
    atomic_store(&c.f, f);
    ck_assert_int_eq(gather_future_on_done(f, af_done_cb, &c), 0);
    ck_assert(gather_future_cancel(f));
    int freed = atomic_load(&c.freed);
    ck_assert_int_eq(freed, 1);
    ck_assert(pthread_equal(c.free_thread, pthread_self()));
    ck_assert_int_eq(atomic_load(&c.done_in_free), 0);
    ck_assert_int_eq(atomic_load(&c.freed_in_callback), 1);
    ck_assert_int_eq(gather_future_error(f), ECANCELED);
    ck_assert(!gather_future_cancel(f)); /* done: nothing more */
    gather_future_release(f);
    unhold(&h);
    ck_assert_int_eq(gather_pool_shutdown(p, 0), 0);
    ck_assert_int_eq(atomic_load(&c.returned), 0); /* never ran */
    ck_assert_int_eq(atomic_load(&c.freed), 1);
    ck_assert_int_eq(atomic_load(&vf_calls), 0);
    gather_pool_stats st = stats_of(p);
    ck_assert_uint_eq(st.cancelled, 1);
    ck_assert_uint_eq(st.submitted, 2);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    tu_gate_destroy(&c.gate);
    tu_count_destroy(&c.started);
}
END_TEST

/* Cancelled while it runs (the cancel only flags it): arg_free once, after
 * it returned. */
static int task_af_poll(void *arg, void **result)
{
    af_ctx *c = arg;
    tu_count_add(&c->started, 1);
    tu_gate_wait(&c->gate);
    *result = NULL;
    atomic_store(&c->returned, 1);
    return gather_cancel_requested() ? ECANCELED : 0;
}

START_TEST(test_arg_free_once_when_cancelled_while_running)
{
    gather_pool *p = pool_of(1, 0);
    af_ctx c;
    af_ctx_init(&c, 0);
    gather_task_options o = opts_none();
    o.arg_free = af_free;
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit_ex(p, task_af_poll, &c, &o, &f), 0);
    atomic_store(&c.f, f);
    ck_assert_int_eq(count_wait_s(&c.started, 1, WATCHDOG_S), 0);
    ck_assert(!gather_future_cancel(f)); /* running: only flagged */
    ck_assert_int_eq(atomic_load(&c.freed), 0);
    tu_gate_open(&c.gate);
    ck_assert_int_eq(gather_future_wait(f, NULL), ECANCELED);
    ck_assert(gather_future_cancelled(f));
    ck_assert_int_eq(atomic_load(&c.freed), 1);
    gather_future_release(f);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    ck_assert_int_eq(atomic_load(&c.freed), 1);
    ck_assert_int_eq(atomic_load(&c.returned_in_free), 1);
    ck_assert_int_eq(atomic_load(&c.done_in_free), 0);
    tu_gate_destroy(&c.gate);
    tu_count_destroy(&c.started);
}
END_TEST

typedef struct shut_ctx {
    gather_pool *pool;
    unsigned flags;
    int rc;
} shut_ctx;

static void *shutdown_main(void *arg)
{
    shut_ctx *s = arg;
    s->rc = gather_pool_shutdown(s->pool, s->flags);
    return NULL;
}

/* A GATHER_CANCEL_PENDING shutdown refuses the queued tasks: arg_free for
 * each, none runs, the futures read ECANCELED. */
START_TEST(test_arg_free_on_cancel_pending_shutdown)
{
    gather_pool *p = pool_of(1, 0);
    holder h;
    hold(&h, p);
    atomic_int ran = 0;
    enum { N = 6 };
    gather_future *f[N];
    for (int i = 0; i < N; i++) {
        gather_task_options o = opts_none();
        o.arg_free = arg_free_rec;
        o.value_free = value_free_rec;
        o.priority = i % 3 - 1;
        o.flags = i == 4 ? GATHER_TASK_BLOCKING : 0;
        ck_assert_int_eq(gather_submit_ex(p, tu_task_count, &ran, &o,
                                          i == 5 ? NULL : &f[i]), 0);
    }
    shut_ctx s = {p, GATHER_CANCEL_PENDING, -1};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, shutdown_main, &s), 0);
    /* Until the pool refuses outside work, what it accepts is cancelled
     * too. */
    long accepted = 0;
    uint64_t limit = tu_mono_ns() + (uint64_t)WATCHDOG_S * 1000000000u;
    for (;;) {
        gather_task_options o = opts_none();
        o.arg_free = arg_free_rec;
        int rc = gather_submit_ex(p, tu_task_count, &ran, &o, NULL);
        if (rc == ESHUTDOWN)
            break;
        ck_assert_int_eq(rc, 0);
        accepted++;
        ck_assert(tu_mono_ns() < limit);
        sched_yield();
    }
    unhold(&h);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_int_eq(s.rc, 0);
    ck_assert_int_eq(atomic_load(&ran), 0);
    ck_assert_int_eq(atomic_load(&af_calls), N + accepted);
    for (int i = 0; i < N - 1; i++) {
        ck_assert_int_eq(gather_future_error(f[i]), ECANCELED);
        ck_assert(gather_future_cancelled(f[i]));
        ck_assert_ptr_null(gather_future_value(f[i]));
        gather_future_release(f[i]);
    }
    ck_assert_int_eq(atomic_load(&vf_calls), 0);
    gather_pool_stats st = stats_of(p);
    ck_assert_uint_eq(st.cancelled, (uint64_t)(N + accepted));
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

/* ---- GATHER_TASK_BLOCKING ---------------------------------------------------- */

typedef struct blk_task {
    tu_count started;
    tu_gate gate;
} blk_task;

static void blk_init(blk_task *b)
{
    tu_count_init(&b->started);
    tu_gate_init(&b->gate);
}

static void blk_destroy(blk_task *b)
{
    tu_count_destroy(&b->started);
    tu_gate_destroy(&b->gate);
}

static int task_blk(void *arg, void **result)
{
    blk_task *b = arg;
    tu_count_add(&b->started, 1);
    *result = arg;
    return tu_gate_wait(&b->gate);
}

static int task_signal(void *arg, void **result)
{
    tu_count_add((tu_count *)arg, 1);
    *result = NULL;
    return 0;
}

static gather_task_options opts_blocking(void)
{
    gather_task_options o = opts_none();
    o.flags = GATHER_TASK_BLOCKING;
    o.arg_free = arg_free_rec;
    return o;
}

/* Elastic pool, its only worker held in a task that looks like CPU work
 * (the monitor is off): a BLOCKING task starts at once, on a spare; a CPU
 * task queued before it stays queued (the pool runs `threads` CPU tasks). */
START_TEST(test_blocking_task_starts_at_once_on_elastic_pool)
{
    detection_off();
    gather_pool *p = pool_of(1, 4);
    holder h;
    hold(&h, p);
    tu_count cpu_started;
    tu_count_init(&cpu_started);
    gather_future *fc = NULL, *fb = NULL;
    ck_assert_int_eq(gather_submit(p, task_signal, &cpu_started, &fc), 0);
    blk_task b;
    blk_init(&b);
    gather_task_options o = opts_blocking();
    ck_assert_int_eq(gather_submit_ex(p, task_blk, &b, &o, &fb), 0);
    int b_started = count_wait_s(&b.started, 1, WATCHDOG_S);
    long cpu_before = tu_count_get(&cpu_started);
    bool holder_busy = !gather_future_done(h.f);
    gather_pool_stats st = stats_eventually(p, 1);
    tu_gate_open(&b.gate);
    ck_assert_int_eq(b_started, 0);
    ck_assert(holder_busy);
    ck_assert_int_eq(cpu_before, 0);
    ck_assert_uint_ge(st.spares_started, 1);
    ck_assert_uint_ge(st.threads_peak, 2);
    ck_assert_int_eq(gather_future_wait(fb, NULL), 0);
    ck_assert_ptr_eq(gather_future_value(fb), &b);
    ck_assert_int_eq(atomic_load(&af_calls), 1);
    ck_assert_ptr_eq(atomic_load(&af_last), &b);
    unhold(&h);
    ck_assert_int_eq(gather_future_wait(fc, NULL), 0);
    gather_future_release(fb);
    gather_future_release(fc);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    detection_restore();
    blk_destroy(&b);
    tu_count_destroy(&cpu_started);
}
END_TEST

/* While a BLOCKING task runs (held), it does not count against `threads`:
 * a CPU task queued then still starts on a pool of one thread. */
START_TEST(test_running_blocking_task_does_not_hold_back_cpu_tasks)
{
    detection_off();
    gather_pool *p = pool_of(1, 4);
    blk_task b;
    blk_init(&b);
    gather_task_options o = opts_blocking();
    gather_future *fb = NULL, *fc = NULL, *fd = NULL;
    ck_assert_int_eq(gather_submit_ex(p, task_blk, &b, &o, &fb), 0);
    ck_assert_int_eq(count_wait_s(&b.started, 1, WATCHDOG_S), 0);
    tu_count cpu_started;
    tu_count_init(&cpu_started);
    ck_assert_int_eq(gather_submit(p, task_signal, &cpu_started, &fc), 0);
    int c_started = count_wait_s(&cpu_started, 1, WATCHDOG_S);
    /* And another one after that one finished. */
    ck_assert_int_eq(gather_submit(p, task_signal, &cpu_started, &fd), 0);
    int d_started = count_wait_s(&cpu_started, 2, WATCHDOG_S);
    bool b_busy = !gather_future_done(fb);
    tu_gate_open(&b.gate);
    ck_assert_int_eq(c_started, 0);
    ck_assert_int_eq(d_started, 0);
    ck_assert(b_busy);
    ck_assert_int_eq(gather_future_wait(fb, NULL), 0);
    ck_assert_int_eq(gather_future_wait(fc, NULL), 0);
    ck_assert_int_eq(gather_future_wait(fd, NULL), 0);
    gather_future_release(fb);
    gather_future_release(fc);
    gather_future_release(fd);
    gather_pool_stats st = stats_of(p);
    ck_assert_uint_le(st.threads_peak, 4);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    ck_assert_int_eq(atomic_load(&af_calls), 1);
    detection_restore();
    blk_destroy(&b);
    tu_count_destroy(&cpu_started);
}
END_TEST

/* At max_threads, a thread beyond `threads` that finishes a blocking task
 * while `threads` CPU tasks run is overfull: it takes no CPU task, but it
 * still takes the next BLOCKING task, which starts while the CPU task that
 * makes it overfull is still held. */
START_TEST(test_overfull_thread_takes_blocking_tasks)
{
    detection_off();
    gather_pool *p = pool_of(1, 2);
    holder h;
    hold(&h, p);
    blk_task b1;
    blk_init(&b1);
    gather_task_options o = opts_blocking();
    gather_future *f1 = NULL, *f2 = NULL, *fc = NULL;
    ck_assert_int_eq(gather_submit_ex(p, task_blk, &b1, &o, &f1), 0);
    int b1_started = count_wait_s(&b1.started, 1, WATCHDOG_S);
    tu_count cpu_started, b2_started;
    tu_count_init(&cpu_started);
    tu_count_init(&b2_started);
    ck_assert_int_eq(gather_submit(p, task_signal, &cpu_started, &fc), 0);
    ck_assert_int_eq(gather_submit_ex(p, task_signal, &b2_started, &o, &f2), 0);
    tu_gate_open(&b1.gate); /* its thread is now the overfull one */
    int b2 = count_wait_s(&b2_started, 1, WATCHDOG_S);
    long cpu_before = tu_count_get(&cpu_started);
    bool holder_busy = !gather_future_done(h.f);
    gather_pool_stats st = stats_of(p);
    unhold(&h);
    ck_assert_int_eq(b1_started, 0);
    ck_assert_int_eq(b2, 0);
    ck_assert(holder_busy);
    ck_assert_int_eq(cpu_before, 0);
    ck_assert_uint_le(st.threads_peak, 2);
    ck_assert_int_eq(gather_future_wait(f1, NULL), 0);
    ck_assert_int_eq(gather_future_wait(f2, NULL), 0);
    ck_assert_int_eq(gather_future_wait(fc, NULL), 0);
    gather_future_release(f1);
    gather_future_release(f2);
    gather_future_release(fc);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    ck_assert_int_eq(atomic_load(&af_calls), 2);
    detection_restore();
    blk_destroy(&b1);
    tu_count_destroy(&cpu_started);
    tu_count_destroy(&b2_started);
}
END_TEST

/* On a strict pool BLOCKING is an ordinary task: with the only thread held
 * in a gated task, it cannot start until the gate opens. */
START_TEST(test_blocking_task_is_ordinary_on_strict_pool)
{
    gather_pool *p = pool_of(1, 0);
    holder h;
    hold(&h, p);
    tu_count started;
    tu_count_init(&started);
    gather_task_options o = opts_blocking();
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit_ex(p, task_signal, &started, &o, &f), 0);
    bool waited = count_stays_below(&started, 1, OBSERVE_MS);
    gather_pool_stats st = stats_of(p);
    unhold(&h);
    ck_assert_msg(waited, "a BLOCKING task started on a strict pool whose only thread was held");
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    ck_assert_int_eq(tu_count_get(&started), 1);
    ck_assert_uint_eq(st.threads, 1);
    ck_assert_uint_eq(st.spares_started, 0);
    st = stats_of(p);
    ck_assert_uint_eq(st.threads_peak, 1);
    ck_assert_uint_eq(st.spares_started, 0);
    gather_future_release(f);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    ck_assert_int_eq(atomic_load(&af_calls), 1);
    tu_count_destroy(&started);
}
END_TEST

/* From inside a task of the same elastic pool, a BLOCKING task goes to the
 * pool's queue, not behind its submitter: it starts while the submitter
 * is still held. */
typedef struct inside_ctx {
    tu_gate gate;
    tu_count started;
    blk_task b;
    gather_future *fb;
    int rc;
} inside_ctx;

static int task_submits_blocking(void *arg, void **result)
{
    inside_ctx *c = arg;
    gather_task_options o = opts_blocking();
    c->rc = gather_submit_ex(gather_current_pool(), task_blk, &c->b, &o, &c->fb);
    tu_count_add(&c->started, 1);
    *result = NULL;
    return tu_gate_wait(&c->gate);
}

START_TEST(test_blocking_subtask_starts_at_once)
{
    detection_off();
    gather_pool *p = pool_of(1, 4);
    inside_ctx c;
    memset(&c, 0, sizeof c);
    tu_gate_init(&c.gate);
    tu_count_init(&c.started);
    blk_init(&c.b);
    gather_future *fa = NULL;
    ck_assert_int_eq(gather_submit(p, task_submits_blocking, &c, &fa), 0);
    ck_assert_int_eq(count_wait_s(&c.started, 1, WATCHDOG_S), 0);
    int b_started = count_wait_s(&c.b.started, 1, WATCHDOG_S);
    bool a_busy = !gather_future_done(fa);
    tu_gate_open(&c.b.gate);
    tu_gate_open(&c.gate);
    ck_assert_int_eq(gather_future_wait(fa, NULL), 0);
    ck_assert_int_eq(c.rc, 0);
    ck_assert_int_eq(b_started, 0);
    ck_assert(a_busy);
    ck_assert_int_eq(gather_future_wait(c.fb, NULL), 0);
    gather_future_release(c.fb);
    gather_future_release(fa);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    ck_assert_int_eq(atomic_load(&af_calls), 1);
    detection_restore();
    blk_destroy(&c.b);
    tu_gate_destroy(&c.gate);
    tu_count_destroy(&c.started);
}
END_TEST

int main(void)
{
    /* Before any pool exists. */
    if (gather_replace_allocator(counting_malloc, counting_free) != 0) {
        fprintf(stderr, "could not install the test allocator\n");
        return EXIT_FAILURE;
    }
    Suite *s = suite_create("options");

    TCase *tc = tcase_create("arguments");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_null_and_zero_options_are_submit);
    tcase_add_test(tc, test_bad_arguments_are_einval);
    tcase_add_test(tc, test_submit_after_shutdown_is_eshutdown);
    tcase_add_test(tc, test_out_of_memory_calls_no_hook);
    suite_add_tcase(s, tc);

    tc = tcase_create("priority");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_priorities_order_injected_tasks);
    tcase_add_test(tc, test_subtasks_keep_work_stealing_order);
    suite_add_tcase(s, tc);

    tc = tcase_create("value_free");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_value_free_at_last_release);
    tcase_add_test(tc, test_value_free_of_detached_task_when_it_completes);
    tcase_add_test(tc, test_value_free_when_released_before_completion);
    tcase_add_test(tc, test_take_owns_the_value);
    tcase_add_test(tc, test_take_before_done_takes_nothing);
    tcase_add_test(tc, test_waits_and_reads_do_not_take);
    tcase_add_test(tc, test_cancelled_before_run_frees_no_value);
    tcase_add_test(tc, test_concurrent_takes_have_one_winner);
    suite_add_tcase(s, tc);

    tc = tcase_create("arg_free");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_arg_free_after_return_before_done);
    tcase_add_test(tc, test_arg_free_frees_the_argument);
    tcase_add_test(tc, test_arg_free_on_cancel_before_run);
    tcase_add_test(tc, test_arg_free_once_when_cancelled_while_running);
    tcase_add_test(tc, test_arg_free_on_cancel_pending_shutdown);
    suite_add_tcase(s, tc);

    tc = tcase_create("blocking");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_blocking_task_starts_at_once_on_elastic_pool);
    tcase_add_test(tc, test_running_blocking_task_does_not_hold_back_cpu_tasks);
    tcase_add_test(tc, test_overfull_thread_takes_blocking_tasks);
    tcase_add_test(tc, test_blocking_task_is_ordinary_on_strict_pool);
    tcase_add_test(tc, test_blocking_subtask_starts_at_once);
    suite_add_tcase(s, tc);

    return tu_run_suite(s);
}
