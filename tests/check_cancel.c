/* SPDX-License-Identifier: MIT */
/*
 * check_cancel.c - cancellation: pending tasks never run, running tasks see
 * gather_cancel_requested(), done futures are untouched, and shutdown with
 * GATHER_CANCEL_PENDING.
 */
#include "testutil.h"

#include <sched.h>
#include <string.h>

static int marker_a, marker_b, marker_c;

/* Polls gather_cancel_requested() until true or `seconds` elapsed. */
static bool poll_cancel_requested(int seconds)
{
    uint64_t deadline = tu_mono_ns() + (uint64_t)seconds * 1000000000u;
    while (!gather_cancel_requested()) {
        if (tu_mono_ns() > deadline)
            return false;
        struct timespec ts = {0, 200000}; /* 0.2 ms between polls */
        nanosleep(&ts, NULL);
    }
    return true;
}

/* Done callback: records its thread and counts its runs. */
typedef struct cb_rec {
    atomic_int calls;
    pthread_t thread;
    int saw_done;
    int saw_error;
    void *saw_value;
    int saw_cancelled;
} cb_rec;

static void cb_record(gather_future *f, void *user_data)
{
    cb_rec *r = (cb_rec *)user_data;
    r->thread = pthread_self();
    r->saw_done = gather_future_done(f);
    r->saw_error = gather_future_error(f);
    r->saw_value = gather_future_value(f);
    r->saw_cancelled = gather_future_cancelled(f);
    atomic_fetch_add(&r->calls, 1);
}

static void stats(gather_pool *p, gather_pool_stats *st)
{
    memset(st, 0xff, sizeof *st);
    ck_assert_int_eq(gather_pool_stats_get(p, st), 0);
}

/* ---- pending tasks --------------------------------------------------------- */

START_TEST(test_cancel_pending_task_completes_at_once_and_never_runs)
{
    gather_pool *p = tu_pool(1);
    tu_gate gate;
    tu_count started;
    tu_gate_init(&gate);
    tu_count_init(&started);
    tu_gated blocker = {.gate = &gate, .started = &started, .value = &marker_a};
    gather_future *fb = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_gated, &blocker, &fb), 0);
    ck_assert_int_eq(tu_count_wait(&started, 1), 0); /* the only worker busy */

    atomic_int ran = 0;
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_count, &ran, &f), 0);
    cb_rec rec = {0};
    ck_assert_int_eq(gather_future_on_done(f, cb_record, &rec), 0);
    ck_assert_int_eq(atomic_load(&rec.calls), 0);

    ck_assert(gather_future_cancel(f));
    /* Done at once, callbacks already run on this thread. */
    ck_assert(gather_future_done(f));
    ck_assert_int_eq(gather_future_error(f), ECANCELED);
    ck_assert_ptr_null(gather_future_value(f));
    ck_assert(gather_future_cancelled(f));
    ck_assert_int_eq(atomic_load(&rec.calls), 1);
    ck_assert(pthread_equal(rec.thread, pthread_self()));
    ck_assert_int_eq(rec.saw_done, 1);
    ck_assert_int_eq(rec.saw_error, ECANCELED);
    ck_assert_ptr_null(rec.saw_value);
    ck_assert_int_eq(rec.saw_cancelled, 1);
    void *v = &marker_c;
    ck_assert_int_eq(gather_future_wait(f, &v), ECANCELED);
    ck_assert_ptr_null(v);

    gather_pool_stats st;
    stats(p, &st);
    ck_assert_uint_eq(st.cancelled, 1);
    ck_assert_uint_eq(st.completed, 0);

    tu_gate_open(&gate);
    ck_assert_int_eq(gather_future_wait(fb, NULL), 0);
    stats(p, &st);
    ck_assert_uint_eq(st.submitted, 2);
    ck_assert_uint_eq(st.completed, 1); /* the blocker only */
    ck_assert_uint_eq(st.cancelled, 1);
    gather_future_release(fb);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    ck_assert_int_eq(atomic_load(&ran), 0);
    ck_assert_int_eq(atomic_load(&rec.calls), 1);
    gather_future_release(f);
    tu_gate_destroy(&gate);
    tu_count_destroy(&started);
}
END_TEST

START_TEST(test_cancel_one_pending_task_leaves_its_neighbours_running)
{
    gather_pool *p = tu_pool(2);
    tu_gate gate;
    tu_count started;
    tu_gate_init(&gate);
    tu_count_init(&started);
    tu_gated b[2] = {{.gate = &gate, .started = &started},
                     {.gate = &gate, .started = &started}};
    gather_future *fb[2];
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(gather_submit(p, tu_task_gated, &b[i], &fb[i]), 0);
    ck_assert_int_eq(tu_count_wait(&started, 2), 0); /* both workers busy */

    atomic_int ran[3] = {0, 0, 0};
    gather_future *f[3];
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(gather_submit(p, tu_task_count, &ran[i], &f[i]), 0);
    ck_assert(gather_future_cancel(f[1]));
    ck_assert(!gather_future_done(f[0]));
    ck_assert(!gather_future_done(f[2]));

    tu_gate_open(&gate);
    void *v = NULL;
    ck_assert_int_eq(gather_future_wait(f[0], &v), 0);
    ck_assert_ptr_eq(v, &ran[0]);
    ck_assert_int_eq(gather_future_wait(f[2], &v), 0);
    ck_assert_ptr_eq(v, &ran[2]);
    ck_assert_int_eq(gather_future_wait(f[1], NULL), ECANCELED);
    ck_assert(!gather_future_cancelled(f[0]));
    ck_assert(!gather_future_cancelled(f[2]));
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(gather_future_wait(fb[i], NULL), 0);
        gather_future_release(fb[i]);
    }
    gather_pool_stats st;
    stats(p, &st);
    ck_assert_uint_eq(st.submitted, 5);
    ck_assert_uint_eq(st.completed, 4);
    ck_assert_uint_eq(st.cancelled, 1);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    ck_assert_int_eq(atomic_load(&ran[0]), 1);
    ck_assert_int_eq(atomic_load(&ran[1]), 0);
    ck_assert_int_eq(atomic_load(&ran[2]), 1);
    for (int i = 0; i < 3; i++)
        gather_future_release(f[i]);
    tu_gate_destroy(&gate);
    tu_count_destroy(&started);
}
END_TEST

/* A waiter blocked on a pending future wakes up when it is cancelled. */
typedef struct waiter {
    gather_future *f;
    tu_count *entering;
    int rc;
    void *value;
} waiter;

static void *waiter_main(void *arg)
{
    waiter *w = (waiter *)arg;
    tu_count_add(w->entering, 1);
    w->rc = gather_future_wait(w->f, &w->value);
    return NULL;
}

START_TEST(test_cancel_pending_wakes_waiters)
{
    gather_pool *p = tu_pool(1);
    tu_gate gate;
    tu_count started, entering;
    tu_gate_init(&gate);
    tu_count_init(&started);
    tu_count_init(&entering);
    tu_gated blocker = {.gate = &gate, .started = &started};
    gather_future *fb = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_gated, &blocker, &fb), 0);
    ck_assert_int_eq(tu_count_wait(&started, 1), 0);
    atomic_int ran = 0;
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_count, &ran, &f), 0);

    waiter w = {.f = f, .entering = &entering, .rc = -1, .value = &marker_c};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, waiter_main, &w), 0);
    ck_assert_int_eq(tu_count_wait(&entering, 1), 0);
    ck_assert(!gather_future_wait_for(f, 20000000u)); /* let it block */
    ck_assert(gather_future_cancel(f));
    ck_assert_int_eq(pthread_join(t, NULL), 0); /* gate still closed */
    ck_assert_int_eq(w.rc, ECANCELED);
    ck_assert_ptr_null(w.value);

    tu_gate_open(&gate);
    gather_future_release(fb);
    gather_future_release(f);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    ck_assert_int_eq(atomic_load(&ran), 0);
    tu_gate_destroy(&gate);
    tu_count_destroy(&started);
    tu_count_destroy(&entering);
}
END_TEST

/* A task cancels a pending task: the callbacks run on that task's thread
 * before the cancel returns. */
typedef struct canceller_ctx {
    tu_gate go;
    tu_count *started;
    gather_future *target; /* set before `go` opens */
    cb_rec *rec;
    int cancel_result;
    int calls_after_cancel;
    int same_thread;
} canceller_ctx;

static int task_canceller(void *arg, void **result)
{
    canceller_ctx *c = (canceller_ctx *)arg;
    tu_count_add(c->started, 1);
    tu_gate_wait(&c->go);
    c->cancel_result = gather_future_cancel(c->target);
    c->calls_after_cancel = atomic_load(&c->rec->calls);
    c->same_thread = c->calls_after_cancel == 1 &&
                     pthread_equal(c->rec->thread, pthread_self());
    *result = NULL;
    return 0;
}

START_TEST(test_cancel_from_task_runs_callbacks_on_that_thread)
{
    gather_pool *p = tu_pool(2);
    tu_gate gate;
    tu_count started;
    tu_gate_init(&gate);
    tu_count_init(&started);
    tu_gated blocker = {.gate = &gate, .started = &started};
    canceller_ctx c;
    memset(&c, 0, sizeof c);
    tu_gate_init(&c.go);
    c.started = &started;
    c.cancel_result = -1;
    cb_rec rec = {0};
    c.rec = &rec;

    gather_future *fb = NULL, *fc = NULL, *f = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_gated, &blocker, &fb), 0);
    ck_assert_int_eq(gather_submit(p, task_canceller, &c, &fc), 0);
    ck_assert_int_eq(tu_count_wait(&started, 2), 0); /* both workers busy */
    atomic_int ran = 0;
    ck_assert_int_eq(gather_submit(p, tu_task_count, &ran, &f), 0);
    ck_assert_int_eq(gather_future_on_done(f, cb_record, &rec), 0);
    c.target = f;
    tu_gate_open(&c.go);

    ck_assert_int_eq(gather_future_wait(fc, NULL), 0);
    ck_assert_int_eq(c.cancel_result, 1);
    ck_assert_int_eq(c.calls_after_cancel, 1);
    ck_assert_int_eq(c.same_thread, 1);
    ck_assert(gather_future_cancelled(f));
    ck_assert_int_eq(gather_future_error(f), ECANCELED);

    tu_gate_open(&gate);
    gather_future_release(fb);
    gather_future_release(fc);
    gather_future_release(f);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    ck_assert_int_eq(atomic_load(&ran), 0);
    ck_assert_int_eq(atomic_load(&rec.calls), 1);
    tu_gate_destroy(&gate);
    tu_gate_destroy(&c.go);
    tu_count_destroy(&started);
}
END_TEST

/* ---- running tasks --------------------------------------------------------- */

/* Runs one gated task with the given code and value, cancels it while it
 * runs, lets it finish, and checks what the running-task rules say. */
static void check_cancel_running(int code, void *value, bool expect_cancelled)
{
    gather_pool *p = tu_pool(2);
    tu_gate gate;
    tu_count started;
    tu_gate_init(&gate);
    tu_count_init(&started);
    tu_gated g = {.gate = &gate, .started = &started, .code = code,
                  .value = value};
    atomic_init(&g.saw_cancel, -1);
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_gated, &g, &f), 0);
    ck_assert_int_eq(tu_count_wait(&started, 1), 0);

    ck_assert(!gather_future_cancel(f)); /* running: cannot be stopped */
    ck_assert(!gather_future_done(f));
    ck_assert(!gather_future_cancelled(f));
    ck_assert_int_eq(gather_future_error(f), EINPROGRESS);
    ck_assert(!gather_future_cancel(f)); /* twice: still false */

    tu_gate_open(&gate);
    void *v = &marker_c;
    ck_assert_int_eq(gather_future_wait(f, &v), code);
    ck_assert_ptr_eq(v, value); /* its own result, also on ECANCELED */
    ck_assert_int_eq(atomic_load(&g.saw_cancel), 1);
    ck_assert_int_eq(gather_future_error(f), code);
    ck_assert_ptr_eq(gather_future_value(f), value);
    ck_assert_int_eq(gather_future_cancelled(f), expect_cancelled);
    ck_assert_int_eq(atomic_load(&g.ran), 1);

    gather_pool_stats st;
    stats(p, &st);
    ck_assert_uint_eq(st.completed, 1); /* it ran */
    ck_assert_uint_eq(st.cancelled, 0); /* counts only tasks that never ran */

    gather_future_release(f);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    tu_gate_destroy(&gate);
    tu_count_destroy(&started);
}

START_TEST(test_cancel_running_task_returning_zero_is_not_cancelled)
{
    check_cancel_running(0, &marker_a, false);
}
END_TEST

START_TEST(test_cancel_running_task_returning_ecanceled_is_cancelled)
{
    check_cancel_running(ECANCELED, &marker_b, true);
}
END_TEST

START_TEST(test_cancel_running_task_returning_other_error_is_not_cancelled)
{
    check_cancel_running(EIO, &marker_b, false);
}
END_TEST

START_TEST(test_cancel_request_is_per_task)
{
    gather_pool *p = tu_pool(2);
    tu_gate gate;
    tu_count started;
    tu_gate_init(&gate);
    tu_count_init(&started);
    tu_gated a = {.gate = &gate, .started = &started};
    tu_gated b = {.gate = &gate, .started = &started};
    atomic_init(&a.saw_cancel, -1);
    atomic_init(&b.saw_cancel, -1);
    gather_future *fa = NULL, *fb = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_gated, &a, &fa), 0);
    ck_assert_int_eq(gather_submit(p, tu_task_gated, &b, &fb), 0);
    ck_assert_int_eq(tu_count_wait(&started, 2), 0);
    /* Queued behind them: runs after a cancelled task on the same thread. */
    atomic_int later1 = -1, later2 = -1;
    gather_future *fl1 = NULL, *fl2 = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_record_cancel_requested, &later1, &fl1), 0);
    ck_assert_int_eq(gather_submit(p, tu_task_record_cancel_requested, &later2, &fl2), 0);

    ck_assert(!gather_future_cancel(fa));
    tu_gate_open(&gate);
    ck_assert_int_eq(gather_future_wait(fa, NULL), 0);
    ck_assert_int_eq(gather_future_wait(fb, NULL), 0);
    ck_assert_int_eq(gather_future_wait(fl1, NULL), 0);
    ck_assert_int_eq(gather_future_wait(fl2, NULL), 0);
    ck_assert_int_eq(atomic_load(&a.saw_cancel), 1);
    ck_assert_int_eq(atomic_load(&b.saw_cancel), 0);
    ck_assert_int_eq(atomic_load(&later1), 0);
    ck_assert_int_eq(atomic_load(&later2), 0);
    ck_assert(!gather_cancel_requested()); /* not in a task */
    gather_future_release(fa);
    gather_future_release(fb);
    gather_future_release(fl1);
    gather_future_release(fl2);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    tu_gate_destroy(&gate);
    tu_count_destroy(&started);
}
END_TEST

START_TEST(test_cancel_flag_does_not_leak_to_next_task_on_one_thread)
{
    gather_pool *p = tu_pool(1);
    tu_gate gate;
    tu_count started;
    tu_gate_init(&gate);
    tu_count_init(&started);
    tu_gated a = {.gate = &gate, .started = &started, .code = ECANCELED};
    atomic_init(&a.saw_cancel, -1);
    gather_future *fa = NULL, *fl = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_gated, &a, &fa), 0);
    ck_assert_int_eq(tu_count_wait(&started, 1), 0);
    atomic_int later = -1;
    ck_assert_int_eq(gather_submit(p, tu_task_record_cancel_requested, &later, &fl), 0);
    ck_assert(!gather_future_cancel(fa));
    tu_gate_open(&gate);
    ck_assert_int_eq(gather_future_wait(fl, NULL), 0);
    ck_assert_int_eq(gather_future_wait(fa, NULL), ECANCELED);
    ck_assert(gather_future_cancelled(fa));
    ck_assert_int_eq(atomic_load(&a.saw_cancel), 1);
    ck_assert_int_eq(atomic_load(&later), 0);
    gather_future_release(fa);
    gather_future_release(fl);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    tu_gate_destroy(&gate);
    tu_count_destroy(&started);
}
END_TEST

/* ---- done futures and repeated cancels ------------------------------------- */

START_TEST(test_cancel_done_future_changes_nothing)
{
    gather_pool *p = tu_pool(2);
    tu_fail_arg bad = {9, &marker_b};
    gather_future *ok = NULL, *fail = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_identity, &marker_a, &ok), 0);
    ck_assert_int_eq(gather_submit(p, tu_task_fail_with, &bad, &fail), 0);
    ck_assert_int_eq(gather_future_wait(ok, NULL), 0);
    ck_assert_int_eq(gather_future_wait(fail, NULL), 9);
    cb_rec rec = {0};
    ck_assert_int_eq(gather_future_on_done(ok, cb_record, &rec), 0);
    ck_assert_int_eq(atomic_load(&rec.calls), 1);

    ck_assert(!gather_future_cancel(ok));
    ck_assert(!gather_future_cancel(fail));
    ck_assert(gather_future_done(ok));
    ck_assert_int_eq(gather_future_error(ok), 0);
    ck_assert_ptr_eq(gather_future_value(ok), &marker_a);
    ck_assert(!gather_future_cancelled(ok));
    ck_assert_int_eq(gather_future_error(fail), 9);
    ck_assert_ptr_eq(gather_future_value(fail), &marker_b);
    ck_assert(!gather_future_cancelled(fail));
    ck_assert_int_eq(atomic_load(&rec.calls), 1); /* no second run */

    gather_pool_stats st;
    stats(p, &st);
    ck_assert_uint_eq(st.cancelled, 0);
    ck_assert_uint_eq(st.completed, 2);
    gather_future_release(ok);
    gather_future_release(fail);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

START_TEST(test_cancel_pending_twice_second_returns_false)
{
    gather_pool *p = tu_pool(1);
    tu_gate gate;
    tu_count started;
    tu_gate_init(&gate);
    tu_count_init(&started);
    tu_gated blocker = {.gate = &gate, .started = &started};
    gather_future *fb = NULL, *f = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_gated, &blocker, &fb), 0);
    ck_assert_int_eq(tu_count_wait(&started, 1), 0);
    atomic_int ran = 0;
    ck_assert_int_eq(gather_submit(p, tu_task_count, &ran, &f), 0);
    cb_rec rec = {0};
    ck_assert_int_eq(gather_future_on_done(f, cb_record, &rec), 0);

    ck_assert(gather_future_cancel(f));
    ck_assert(!gather_future_cancel(f));
    ck_assert(gather_future_cancelled(f));
    ck_assert_int_eq(gather_future_error(f), ECANCELED);
    ck_assert_ptr_null(gather_future_value(f));
    ck_assert_int_eq(atomic_load(&rec.calls), 1);
    gather_pool_stats st;
    stats(p, &st);
    ck_assert_uint_eq(st.cancelled, 1);

    tu_gate_open(&gate);
    gather_future_release(fb);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    ck_assert_int_eq(atomic_load(&ran), 0);
    ck_assert_int_eq(atomic_load(&rec.calls), 1);
    gather_future_release(f);
    tu_gate_destroy(&gate);
    tu_count_destroy(&started);
}
END_TEST

START_TEST(test_task_returning_ecanceled_without_request_is_not_cancelled)
{
    gather_pool *p = tu_pool(1);
    tu_fail_arg a = {ECANCELED, &marker_c};
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_fail_with, &a, &f), 0);
    void *v = NULL;
    ck_assert_int_eq(gather_future_wait(f, &v), ECANCELED);
    ck_assert_ptr_eq(v, &marker_c);
    ck_assert_int_eq(gather_future_error(f), ECANCELED);
    ck_assert(!gather_future_cancelled(f));
    gather_pool_stats st;
    stats(p, &st);
    ck_assert_uint_eq(st.cancelled, 0);
    ck_assert_uint_eq(st.completed, 1);
    gather_future_release(f);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

START_TEST(test_cancel_null_future_is_false)
{
    ck_assert(!gather_future_cancel(NULL));
    ck_assert(!gather_future_cancelled(NULL));
}
END_TEST

START_TEST(test_on_done_after_cancel_runs_at_once)
{
    gather_pool *p = tu_pool(1);
    tu_gate gate;
    tu_count started;
    tu_gate_init(&gate);
    tu_count_init(&started);
    tu_gated blocker = {.gate = &gate, .started = &started};
    gather_future *fb = NULL, *f = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_gated, &blocker, &fb), 0);
    ck_assert_int_eq(tu_count_wait(&started, 1), 0);
    atomic_int ran = 0;
    ck_assert_int_eq(gather_submit(p, tu_task_count, &ran, &f), 0);
    ck_assert(gather_future_cancel(f));
    cb_rec rec = {0};
    ck_assert_int_eq(gather_future_on_done(f, cb_record, &rec), 0);
    ck_assert_int_eq(atomic_load(&rec.calls), 1);
    ck_assert(pthread_equal(rec.thread, pthread_self()));
    ck_assert_int_eq(rec.saw_error, ECANCELED);
    ck_assert_int_eq(rec.saw_cancelled, 1);
    tu_gate_open(&gate);
    gather_future_release(fb);
    gather_future_release(f);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    ck_assert_int_eq(atomic_load(&ran), 0);
    tu_gate_destroy(&gate);
    tu_count_destroy(&started);
}
END_TEST

/* ---- shutdown with GATHER_CANCEL_PENDING ------------------------------------ */

typedef struct shut_ctx {
    gather_pool *pool;
    unsigned flags;
    int rc;
    atomic_int returned;
} shut_ctx;

static void *shutdown_main(void *arg)
{
    shut_ctx *s = (shut_ctx *)arg;
    s->rc = gather_pool_shutdown(s->pool, s->flags);
    atomic_store(&s->returned, 1);
    return NULL;
}

/* Submits trivial tasks from this (outside) thread until the pool answers
 * ESHUTDOWN; returns how many were accepted before. */
static long submit_until_eshutdown(gather_pool *p, atomic_int *ran)
{
    long accepted = 0;
    uint64_t deadline = tu_mono_ns() + (uint64_t)TU_WATCHDOG_S * 1000000000u;
    for (;;) {
        gather_future *f = (gather_future *)&marker_c; /* sentinel */
        int rc = gather_submit(p, tu_task_count, ran, &f);
        if (rc == ESHUTDOWN) {
            ck_assert_ptr_null(f);
            return accepted;
        }
        ck_assert_int_eq(rc, 0);
        gather_future_release(f);
        accepted++;
        ck_assert(tu_mono_ns() < deadline);
        sched_yield();
    }
}

/* Gated task that, after the gate, polls for the cancel request (shutdown
 * may set it a little after it starts refusing outside work). */
typedef struct poll_task {
    tu_gate *gate;
    tu_count *started;
    int code;
    void *value;
    atomic_int saw_cancel;
} poll_task;

static int task_gate_then_poll_cancel(void *arg, void **result)
{
    poll_task *t = (poll_task *)arg;
    tu_count_add(t->started, 1);
    tu_gate_wait(t->gate);
    atomic_store(&t->saw_cancel, poll_cancel_requested(10) ? 1 : 0);
    *result = t->value;
    return t->code;
}

START_TEST(test_shutdown_cancel_pending_cancels_queued_and_flags_running)
{
    gather_pool *p = tu_pool(2);
    tu_gate gate;
    tu_count started;
    tu_gate_init(&gate);
    tu_count_init(&started);
    /* Two running tasks: one returns 0, one notices and returns ECANCELED. */
    poll_task run[2] = {
        {.gate = &gate, .started = &started, .code = 0, .value = &marker_a},
        {.gate = &gate, .started = &started, .code = ECANCELED,
         .value = &marker_b}};
    gather_future *fr[2];
    for (int i = 0; i < 2; i++) {
        atomic_init(&run[i].saw_cancel, -1);
        ck_assert_int_eq(gather_submit(p, task_gate_then_poll_cancel, &run[i],
                                       &fr[i]), 0);
    }
    ck_assert_int_eq(tu_count_wait(&started, 2), 0); /* both workers busy */

    atomic_int queued_ran = 0;
    gather_future *fq[3];
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(gather_submit(p, tu_task_count, &queued_ran, &fq[i]), 0);

    shut_ctx s = {.pool = p, .flags = GATHER_CANCEL_PENDING, .rc = -1};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, shutdown_main, &s), 0);
    atomic_int polled_ran = 0;
    long accepted = submit_until_eshutdown(p, &polled_ran);
    /* Shutdown has begun but must wait for the gated tasks. */
    ck_assert_int_eq(atomic_load(&s.returned), 0);
    tu_gate_open(&gate);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_int_eq(s.rc, 0);

    /* Running tasks saw the request and finished with their own code. */
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(atomic_load(&run[i].saw_cancel), 1);
        ck_assert(gather_future_done(fr[i]));
        ck_assert_int_eq(gather_future_error(fr[i]), run[i].code);
        ck_assert_ptr_eq(gather_future_value(fr[i]), run[i].value);
    }
    ck_assert(!gather_future_cancelled(fr[0]));
    ck_assert(gather_future_cancelled(fr[1]));

    /* Queued tasks were cancelled and never ran. */
    for (int i = 0; i < 3; i++) {
        ck_assert(gather_future_done(fq[i]));
        ck_assert_int_eq(gather_future_error(fq[i]), ECANCELED);
        ck_assert_ptr_null(gather_future_value(fq[i]));
        ck_assert(gather_future_cancelled(fq[i]));
    }
    ck_assert_int_eq(atomic_load(&queued_ran), 0);
    ck_assert_int_eq(atomic_load(&polled_ran), 0);

    gather_pool_stats st;
    stats(p, &st);
    ck_assert_uint_eq(st.submitted, (uint64_t)(5 + accepted));
    ck_assert_uint_eq(st.completed, 2);
    ck_assert_uint_eq(st.cancelled, (uint64_t)(3 + accepted));

    /* Shutting down again is harmless; outside submits still refused. */
    ck_assert_int_eq(gather_pool_shutdown(p, GATHER_CANCEL_PENDING), 0);
    ck_assert_int_eq(gather_pool_shutdown(p, 0), 0);
    gather_future *late = (gather_future *)&marker_c;
    ck_assert_int_eq(gather_submit(p, tu_task_count, &queued_ran, &late), ESHUTDOWN);
    ck_assert_ptr_null(late);

    for (int i = 0; i < 2; i++)
        gather_future_release(fr[i]);
    for (int i = 0; i < 3; i++)
        gather_future_release(fq[i]);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    ck_assert_int_eq(atomic_load(&queued_ran), 0);
    ck_assert_int_eq(atomic_load(&polled_ran), 0);
    tu_gate_destroy(&gate);
    tu_count_destroy(&started);
}
END_TEST

/* ---- queued tasks are cancelled at once, while every worker is busy ----- */

#define PROMPT_QUEUED 1000
#define PROMPT_SUBTASKS 3
#define PROMPT_JOBS 64

/* A gated task that first spawns subtasks on its own deque (queued behind
 * it: nobody else is free to steal them). */
typedef struct spawner {
    tu_gate *gate;
    tu_count *started;
    atomic_int *sub_ran;
    gather_future *sub[PROMPT_SUBTASKS];
} spawner;

static int task_spawn_then_gate(void *arg, void **result)
{
    spawner *s = (spawner *)arg;
    (void)result;
    for (int i = 0; i < PROMPT_SUBTASKS; i++)
        ck_assert_int_eq(gather_submit(gather_current_pool(), tu_task_count,
                                       s->sub_ran, &s->sub[i]), 0);
    tu_count_add(s->started, 1);
    tu_gate_wait(s->gate);
    return 0;
}

typedef struct waiter_ctx {
    gather_future *f;
    int rc;
    tu_count *woke;
} waiter_ctx;

static void *prompt_waiter_main(void *arg)
{
    waiter_ctx *w = (waiter_ctx *)arg;
    w->rc = gather_future_wait(w->f, NULL);
    tu_count_add(w->woke, 1);
    return NULL;
}

typedef struct map_ctx {
    gather_pool *pool;
    atomic_int *ran;
    int rc;
    gather_result res[PROMPT_JOBS];
    tu_count *woke;
} map_ctx;

static void *map_main(void *arg)
{
    map_ctx *m = (map_ctx *)arg;
    void *args[PROMPT_JOBS];
    for (int i = 0; i < PROMPT_JOBS; i++)
        args[i] = m->ran;
    m->rc = gather_map(m->pool, tu_task_count, args, PROMPT_JOBS, m->res,
                       GATHER_RETURN_ERRORS);
    tu_count_add(m->woke, 1);
    return NULL;
}

START_TEST(test_shutdown_cancel_pending_is_prompt_while_workers_are_busy)
{
    gather_pool *p = tu_pool(2);
    tu_gate gate;
    tu_count started, woke;
    tu_gate_init(&gate);
    tu_count_init(&started);
    tu_count_init(&woke);
    atomic_int sub_ran = 0, queued_ran = 0, jobs_ran = 0;
    /* Both workers stay in a task until the gate opens; one has subtasks
     * queued on its deque. */
    spawner sp = {.gate = &gate, .started = &started, .sub_ran = &sub_ran};
    tu_gated other = {.gate = &gate, .started = &started};
    gather_future *busy[2];
    ck_assert_int_eq(gather_submit(p, task_spawn_then_gate, &sp, &busy[0]), 0);
    ck_assert_int_eq(gather_submit(p, tu_task_gated, &other, &busy[1]), 0);
    ck_assert_int_eq(tu_count_wait(&started, 2), 0);

    gather_future **fq = malloc(PROMPT_QUEUED * sizeof *fq);
    ck_assert_ptr_nonnull(fq);
    for (int i = 0; i < PROMPT_QUEUED; i++)
        ck_assert_int_eq(gather_submit(p, tu_task_count, &queued_ran, &fq[i]), 0);
    /* A gather_map from outside, its chunk queued (its jobs are counted in
     * `submitted` once the chunk is queued). */
    map_ctx m = {.pool = p, .ran = &jobs_ran, .rc = -1, .woke = &woke};
    pthread_t tm;
    ck_assert_int_eq(pthread_create(&tm, NULL, map_main, &m), 0);
    gather_pool_stats st;
    uint64_t want = 2 + PROMPT_SUBTASKS + PROMPT_QUEUED + PROMPT_JOBS;
    uint64_t deadline = tu_mono_ns() + (uint64_t)TU_WATCHDOG_S * 1000000000u;
    do {
        stats(p, &st);
        ck_assert(tu_mono_ns() < deadline);
        sched_yield();
    } while (st.submitted < want);
    /* Waiters for the last queued task and for a subtask. */
    waiter_ctx wq = {.f = fq[PROMPT_QUEUED - 1], .rc = -1, .woke = &woke};
    waiter_ctx ws = {.f = sp.sub[0], .rc = -1, .woke = &woke};
    pthread_t tq, tsub;
    ck_assert_int_eq(pthread_create(&tq, NULL, prompt_waiter_main, &wq), 0);
    ck_assert_int_eq(pthread_create(&tsub, NULL, prompt_waiter_main, &ws), 0);

    shut_ctx s = {.pool = p, .flags = GATHER_CANCEL_PENDING, .rc = -1};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, shutdown_main, &s), 0);
    /* Every waiter wakes while the gate is still shut: nothing waited for
     * a worker to pop the queued tasks. */
    ck_assert_int_eq(tu_count_wait(&woke, 3), 0);
    ck_assert_int_eq(wq.rc, ECANCELED);
    ck_assert_int_eq(ws.rc, ECANCELED);
    for (int i = 0; i < PROMPT_QUEUED; i++) {
        ck_assert(gather_future_cancelled(fq[i]));
        ck_assert_ptr_null(gather_future_value(fq[i]));
    }
    for (int i = 0; i < PROMPT_SUBTASKS; i++)
        ck_assert(gather_future_cancelled(sp.sub[i]));
    ck_assert_int_eq(m.rc, 0);
    for (int i = 0; i < PROMPT_JOBS; i++)
        ck_assert_int_eq(m.res[i].error, ECANCELED);
    ck_assert_int_eq(atomic_load(&s.returned), 0); /* the gated tasks run */
    ck_assert(!gather_future_done(busy[0]) && !gather_future_done(busy[1]));
    stats(p, &st);
    ck_assert_uint_eq(st.cancelled, PROMPT_SUBTASKS + PROMPT_QUEUED + PROMPT_JOBS);

    tu_gate_open(&gate);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_int_eq(s.rc, 0);
    ck_assert_int_eq(pthread_join(tq, NULL), 0);
    ck_assert_int_eq(pthread_join(tsub, NULL), 0);
    ck_assert_int_eq(pthread_join(tm, NULL), 0);
    ck_assert_int_eq(atomic_load(&queued_ran), 0);
    ck_assert_int_eq(atomic_load(&sub_ran), 0);
    ck_assert_int_eq(atomic_load(&jobs_ran), 0);
    stats(p, &st);
    ck_assert_uint_eq(st.completed, 2);
    for (int i = 0; i < PROMPT_QUEUED; i++)
        gather_future_release(fq[i]);
    free(fq);
    for (int i = 0; i < PROMPT_SUBTASKS; i++)
        gather_future_release(sp.sub[i]);
    gather_future_release(busy[0]);
    gather_future_release(busy[1]);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    tu_gate_destroy(&gate);
    tu_count_destroy(&started);
    tu_count_destroy(&woke);
}
END_TEST

/* A running task that notices a CANCEL_PENDING shutdown submits subtasks:
 * they are accepted and complete with ECANCELED without running. */
typedef struct drain_ctx {
    gather_pool *pool;
    tu_count started;
    int saw_cancel;
    int submit_rc;
    gather_future *sub;
    int sub_wait_rc;
    void *sub_value;
    int detached_rc;
    int map_rc;
    gather_result map_res[2];
    atomic_int sub_ran;
} drain_ctx;

static int task_submit_during_drain(void *arg, void **result)
{
    drain_ctx *c = (drain_ctx *)arg;
    tu_count_add(&c->started, 1);
    c->saw_cancel = poll_cancel_requested(10);
    c->submit_rc = gather_submit(c->pool, tu_task_count, &c->sub_ran, &c->sub);
    c->sub_value = &marker_c;
    c->sub_wait_rc = gather_future_wait(c->sub, &c->sub_value);
    c->detached_rc = gather_submit(c->pool, tu_task_count, &c->sub_ran, NULL);
    void *args[2] = {&c->sub_ran, &c->sub_ran};
    for (int i = 0; i < 2; i++)
        c->map_res[i] = (gather_result){-1, &marker_c};
    c->map_rc = gather_map(c->pool, tu_task_count, args, 2, c->map_res,
                           GATHER_RETURN_ERRORS);
    *result = &marker_a;
    return 0;
}

START_TEST(test_subtasks_during_cancel_pending_drain_are_cancelled)
{
    gather_pool *p = tu_pool(1);
    drain_ctx c;
    memset(&c, 0, sizeof c);
    c.pool = p;
    c.submit_rc = c.sub_wait_rc = c.detached_rc = c.map_rc = -1;
    atomic_init(&c.sub_ran, 0);
    tu_count_init(&c.started);
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, task_submit_during_drain, &c, &f), 0);
    ck_assert_int_eq(tu_count_wait(&c.started, 1), 0);

    shut_ctx s = {.pool = p, .flags = GATHER_CANCEL_PENDING, .rc = -1};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, shutdown_main, &s), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_int_eq(s.rc, 0);

    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    ck_assert(!gather_future_cancelled(f));
    ck_assert_int_eq(c.saw_cancel, 1);
    ck_assert_int_eq(c.submit_rc, 0);
    ck_assert_ptr_nonnull(c.sub);
    ck_assert_int_eq(c.sub_wait_rc, ECANCELED);
    ck_assert_ptr_null(c.sub_value);
    ck_assert(gather_future_done(c.sub));
    ck_assert_int_eq(gather_future_error(c.sub), ECANCELED);
    ck_assert_ptr_null(gather_future_value(c.sub));
    ck_assert(gather_future_cancelled(c.sub));
    ck_assert_int_eq(c.detached_rc, 0);
    /* gather_map from a task during the drain works like gather_submit. */
    ck_assert_int_eq(c.map_rc, 0);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(c.map_res[i].error, ECANCELED);
        ck_assert_ptr_null(c.map_res[i].value);
    }
    ck_assert_int_eq(atomic_load(&c.sub_ran), 0);

    gather_pool_stats st;
    stats(p, &st);
    ck_assert_uint_eq(st.submitted, 5);
    ck_assert_uint_eq(st.completed, 1);
    ck_assert_uint_eq(st.cancelled, 4);

    gather_future_release(c.sub);
    gather_future_release(f);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    ck_assert_int_eq(atomic_load(&c.sub_ran), 0);
    tu_count_destroy(&c.started);
}
END_TEST

/* Without GATHER_CANCEL_PENDING, running tasks see no cancel request and
 * queued tasks run. */
START_TEST(test_plain_shutdown_requests_no_cancel)
{
    gather_pool *p = tu_pool(1);
    tu_gate gate;
    tu_count started;
    tu_gate_init(&gate);
    tu_count_init(&started);
    tu_gated g = {.gate = &gate, .started = &started};
    atomic_init(&g.saw_cancel, -1);
    gather_future *fg = NULL, *fq = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_gated, &g, &fg), 0);
    ck_assert_int_eq(tu_count_wait(&started, 1), 0);
    atomic_int queued_cancel = -1;
    ck_assert_int_eq(gather_submit(p, tu_task_record_cancel_requested,
                                   &queued_cancel, &fq), 0);

    shut_ctx s = {.pool = p, .flags = 0, .rc = -1};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, shutdown_main, &s), 0);
    atomic_int polled_ran = 0;
    long accepted = submit_until_eshutdown(p, &polled_ran);
    ck_assert_int_eq(atomic_load(&s.returned), 0);
    tu_gate_open(&gate);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_int_eq(s.rc, 0);
    ck_assert_int_eq(atomic_load(&g.saw_cancel), 0);
    ck_assert_int_eq(gather_future_error(fq), 0);
    ck_assert_int_eq(atomic_load(&queued_cancel), 0);
    ck_assert_int_eq(atomic_load(&polled_ran), (int)accepted);
    gather_pool_stats st;
    stats(p, &st);
    ck_assert_uint_eq(st.cancelled, 0);
    ck_assert_uint_eq(st.completed, (uint64_t)(2 + accepted));
    gather_future_release(fg);
    gather_future_release(fq);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    tu_gate_destroy(&gate);
    tu_count_destroy(&started);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cancel");

    TCase *tc = tcase_create("pending");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_cancel_pending_task_completes_at_once_and_never_runs);
    tcase_add_test(tc, test_cancel_one_pending_task_leaves_its_neighbours_running);
    tcase_add_test(tc, test_cancel_pending_wakes_waiters);
    tcase_add_test(tc, test_cancel_from_task_runs_callbacks_on_that_thread);
    tcase_add_test(tc, test_cancel_pending_twice_second_returns_false);
    tcase_add_test(tc, test_on_done_after_cancel_runs_at_once);
    suite_add_tcase(s, tc);

    tc = tcase_create("running");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_cancel_running_task_returning_zero_is_not_cancelled);
    tcase_add_test(tc, test_cancel_running_task_returning_ecanceled_is_cancelled);
    tcase_add_test(tc, test_cancel_running_task_returning_other_error_is_not_cancelled);
    tcase_add_test(tc, test_cancel_request_is_per_task);
    tcase_add_test(tc, test_cancel_flag_does_not_leak_to_next_task_on_one_thread);
    suite_add_tcase(s, tc);

    tc = tcase_create("done");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_cancel_done_future_changes_nothing);
    tcase_add_test(tc, test_task_returning_ecanceled_without_request_is_not_cancelled);
    tcase_add_test(tc, test_cancel_null_future_is_false);
    suite_add_tcase(s, tc);

    tc = tcase_create("shutdown");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_shutdown_cancel_pending_cancels_queued_and_flags_running);
    tcase_add_test(tc, test_shutdown_cancel_pending_is_prompt_while_workers_are_busy);
    tcase_add_test(tc, test_subtasks_during_cancel_pending_drain_are_cancelled);
    tcase_add_test(tc, test_plain_shutdown_requests_no_cancel);
    suite_add_tcase(s, tc);

    return tu_run_suite(s);
}
