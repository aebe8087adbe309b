/* SPDX-License-Identifier: MIT */
/*
 * check_future.c - futures: values and codes, waiting, reference counting,
 * detached tasks, done callbacks, lifetime past the pool, memory visibility,
 * self-waits.
 */
#include "testutil.h"

#include <sched.h>
#include <string.h>

/* ---- small tasks and helpers --------------------------------------------- */

static int marker_a, marker_b, marker_c;

static uint64_t cpu_ns(clockid_t cid)
{
    struct timespec ts;
    clock_gettime(cid, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#define MS(x) ((uint64_t)(x) * 1000000u)

/* ---- values and codes ------------------------------------------------------ */

START_TEST(test_submit_returns_future_with_value_and_code)
{
    gather_pool *p = tu_pool(2);
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_identity, &marker_a, &f), 0);
    ck_assert_ptr_nonnull(f);
    void *v = &marker_c;
    ck_assert_int_eq(gather_future_wait(f, &v), 0);
    ck_assert_ptr_eq(v, &marker_a);
    ck_assert(gather_future_done(f));
    ck_assert_int_eq(gather_future_error(f), 0);
    ck_assert_ptr_eq(gather_future_value(f), &marker_a);
    ck_assert(!gather_future_cancelled(f));
    /* Waiting again gives the same answer. */
    v = NULL;
    ck_assert_int_eq(gather_future_wait(f, &v), 0);
    ck_assert_ptr_eq(v, &marker_a);
    gather_future_release(f);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

START_TEST(test_success_with_unset_result_has_null_value)
{
    gather_pool *p = tu_pool(1);
    tu_fail_arg a = {0, NULL}; /* returns 0, leaves *result as it started */
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_fail_with, &a, &f), 0);
    void *v = &marker_c;
    ck_assert_int_eq(gather_future_wait(f, &v), 0);
    ck_assert_ptr_null(v);
    ck_assert_ptr_null(gather_future_value(f));
    gather_future_release(f);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

START_TEST(test_wait_with_null_value_still_returns_code)
{
    gather_pool *p = tu_pool(2);
    tu_fail_arg a = {17, &marker_b};
    gather_future *ok = NULL, *bad = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_identity, &marker_a, &ok), 0);
    ck_assert_int_eq(gather_submit(p, tu_task_fail_with, &a, &bad), 0);
    ck_assert_int_eq(gather_future_wait(ok, NULL), 0);
    ck_assert_int_eq(gather_future_wait(bad, NULL), 17);
    /* The value is still kept in the future. */
    ck_assert_ptr_eq(gather_future_value(ok), &marker_a);
    ck_assert_ptr_eq(gather_future_value(bad), &marker_b);
    gather_future_release(ok);
    gather_future_release(bad);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

START_TEST(test_failing_task_keeps_code_and_error_payload)
{
    gather_pool *p = tu_pool(2);
    /* Codes are kept as-is: errno values, arbitrary and negative numbers. */
    tu_fail_arg args[4] = {{EIO, &marker_a}, {12345, &marker_b}, {-7, NULL},
                        {ECANCELED, &marker_c}};
    gather_future *f[4];
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(gather_submit(p, tu_task_fail_with, &args[i], &f[i]), 0);
    for (int i = 0; i < 4; i++) {
        void *v = &marker_c;
        ck_assert_int_eq(gather_future_wait(f[i], &v), args[i].code);
        ck_assert_ptr_eq(v, args[i].payload);
        ck_assert(gather_future_done(f[i]));
        ck_assert_int_eq(gather_future_error(f[i]), args[i].code);
        ck_assert_ptr_eq(gather_future_value(f[i]), args[i].payload);
        /* No cancel was requested: a task returning ECANCELED by itself is
         * not "cancelled". */
        ck_assert(!gather_future_cancelled(f[i]));
        gather_future_release(f[i]);
    }
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

START_TEST(test_submit_to_default_pool_runs_task)
{
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(NULL, tu_task_identity, &marker_b, &f), 0);
    void *v = NULL;
    ck_assert_int_eq(gather_future_wait(f, &v), 0);
    ck_assert_ptr_eq(v, &marker_b);
    gather_future_release(f);
}
END_TEST

/* ---- state before and after completion ----------------------------------- */

START_TEST(test_pending_future_reports_not_done_then_done)
{
    gather_pool *p = tu_pool(2);
    tu_gate gate;
    tu_gate_init(&gate);
    tu_gated g = {.gate = &gate, .code = 0, .value = &marker_a};
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_gated, &g, &f), 0);

    ck_assert(!gather_future_wait_for(f, 0));
    ck_assert(!gather_future_done(f));
    ck_assert_int_eq(gather_future_error(f), EINPROGRESS);
    ck_assert_ptr_null(gather_future_value(f));
    ck_assert(!gather_future_cancelled(f));

    tu_gate_open(&gate);
    ck_assert(gather_future_wait_for(f, GATHER_FOREVER));
    ck_assert(gather_future_done(f));
    ck_assert(gather_future_wait_for(f, 0));
    ck_assert_int_eq(gather_future_error(f), 0);
    ck_assert_ptr_eq(gather_future_value(f), &marker_a);

    gather_future_release(f);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    tu_gate_destroy(&gate);
}
END_TEST

START_TEST(test_wait_for_times_out_after_its_timeout)
{
    gather_pool *p = tu_pool(1);
    tu_gate gate;
    tu_gate_init(&gate);
    tu_gated g = {.gate = &gate, .code = 3, .value = &marker_b};
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_gated, &g, &f), 0);

    uint64_t t0 = tu_mono_ns();
    ck_assert(!gather_future_wait_for(f, MS(50)));
    uint64_t dt = tu_mono_ns() - t0;
    ck_assert_uint_ge(dt, MS(40)); /* no early false */
    ck_assert(!gather_future_done(f));

    tu_gate_open(&gate);
    ck_assert(gather_future_wait_for(f, (uint64_t)TU_WATCHDOG_S * 1000000000u));
    ck_assert_int_eq(gather_future_error(f), 3);
    ck_assert_ptr_eq(gather_future_value(f), &marker_b);
    gather_future_release(f);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    tu_gate_destroy(&gate);
}
END_TEST

/* ---- reference counting ---------------------------------------------------- */

START_TEST(test_retained_future_stays_readable_after_submitter_release)
{
    gather_pool *p = tu_pool(2);
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_identity, &marker_a, &f), 0);
    gather_future *r = gather_future_retain(f);
    ck_assert_ptr_eq(r, f);
    gather_future_release(f); /* the submitter's reference */

    void *v = NULL;
    ck_assert_int_eq(gather_future_wait(r, &v), 0);
    ck_assert_ptr_eq(v, &marker_a);
    ck_assert_ptr_eq(gather_future_value(r), &marker_a);

    /* Several references, released one by one. */
    ck_assert_ptr_eq(gather_future_retain(r), r);
    ck_assert_ptr_eq(gather_future_retain(r), r);
    gather_future_release(r);
    gather_future_release(r);
    ck_assert_int_eq(gather_future_error(r), 0);
    gather_future_release(r);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

typedef struct finish_arg {
    tu_gate *gate;
    tu_count *started;
    atomic_int finished;
} finish_arg;

static int task_gate_then_finish(void *arg, void **result)
{
    finish_arg *a = (finish_arg *)arg;
    if (a->started)
        tu_count_add(a->started, 1);
    tu_gate_wait(a->gate);
    atomic_store(&a->finished, 1);
    *result = NULL;
    return 0;
}

START_TEST(test_release_does_not_cancel_running_task)
{
    gather_pool *p = tu_pool(1);
    tu_gate gate;
    tu_count started;
    tu_gate_init(&gate);
    tu_count_init(&started);
    finish_arg a = {.gate = &gate, .started = &started};
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, task_gate_then_finish, &a, &f), 0);
    ck_assert_int_eq(tu_count_wait(&started, 1), 0);
    gather_future_release(f); /* last reference, task still running */
    tu_gate_open(&gate);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    ck_assert_int_eq(atomic_load(&a.finished), 1);
    tu_gate_destroy(&gate);
    tu_count_destroy(&started);
}
END_TEST

START_TEST(test_release_does_not_cancel_pending_task)
{
    gather_pool *p = tu_pool(1);
    tu_gate gate;
    tu_count started;
    tu_gate_init(&gate);
    tu_count_init(&started);
    tu_gated blocker = {.gate = &gate, .started = &started};
    gather_future *fb = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_gated, &blocker, &fb), 0);
    ck_assert_int_eq(tu_count_wait(&started, 1), 0);

    atomic_int ran = 0;
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_count, &ran, &f), 0);
    gather_future_release(f); /* released while still queued */
    ck_assert_int_eq(atomic_load(&ran), 0);

    tu_gate_open(&gate);
    ck_assert_int_eq(gather_future_wait(fb, NULL), 0);
    gather_future_release(fb);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    ck_assert_int_eq(atomic_load(&ran), 1);
    tu_gate_destroy(&gate);
    tu_count_destroy(&started);
}
END_TEST

START_TEST(test_detached_submit_runs_task)
{
    gather_pool *p = tu_pool(2);
    atomic_int ran = 0;
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(gather_submit(p, tu_task_count, &ran, NULL), 0);
    ck_assert_int_eq(gather_pool_destroy(p), 0); /* drains */
    ck_assert_int_eq(atomic_load(&ran), 10);
}
END_TEST

/* ---- done callbacks -------------------------------------------------------- */

typedef struct cb_ctx {
    gather_pool *pool;
    pthread_t main_thread;
    atomic_int pos;
    int order[8];
    int calls[8];
    int on_pool[8];   /* gather_current_pool() == pool inside */
    int off_main[8];  /* not the test's thread */
    int saw_done[8];  /* gather_future_done(future) inside */
    int saw_error[8];
    void *saw_value[8];
    tu_count ran;
} cb_ctx;

typedef struct cb_arg {
    cb_ctx *ctx;
    int id;
} cb_arg;

static void cb_record(gather_future *future, void *user_data)
{
    cb_arg *a = (cb_arg *)user_data;
    cb_ctx *c = a->ctx;
    int slot = atomic_fetch_add(&c->pos, 1);
    if (slot < 8)
        c->order[slot] = a->id;
    c->calls[a->id]++;
    c->on_pool[a->id] = gather_current_pool() == c->pool;
    c->off_main[a->id] = !pthread_equal(pthread_self(), c->main_thread);
    c->saw_done[a->id] = gather_future_done(future);
    c->saw_error[a->id] = gather_future_error(future);
    c->saw_value[a->id] = gather_future_value(future);
    tu_count_add(&c->ran, 1);
}

static void cb_ctx_init(cb_ctx *c, gather_pool *pool)
{
    memset(c, 0, sizeof *c);
    c->pool = pool;
    c->main_thread = pthread_self();
    atomic_init(&c->pos, 0);
    tu_count_init(&c->ran);
}

START_TEST(test_callbacks_run_once_in_order_on_completing_pool_thread)
{
    gather_pool *p = tu_pool(2);
    tu_gate gate;
    tu_gate_init(&gate);
    tu_gated g = {.gate = &gate, .code = 5, .value = &marker_c};
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_gated, &g, &f), 0);

    cb_ctx c;
    cb_ctx_init(&c, p);
    cb_arg args[3] = {{&c, 0}, {&c, 1}, {&c, 2}};
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(gather_future_on_done(f, cb_record, &args[i]), 0);
    ck_assert(!gather_future_done(f));
    ck_assert_int_eq(tu_count_get(&c.ran), 0); /* none ran early */

    tu_gate_open(&gate);
    ck_assert_int_eq(gather_future_wait(f, NULL), 5);
    ck_assert_int_eq(tu_count_wait(&c.ran, 3), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(c.order[i], i);
        ck_assert_int_eq(c.calls[i], 1);
        ck_assert_int_eq(c.on_pool[i], 1);
        ck_assert_int_eq(c.off_main[i], 1);
        ck_assert_int_eq(c.saw_done[i], 1);
        ck_assert_int_eq(c.saw_error[i], 5);
        ck_assert_ptr_eq(c.saw_value[i], &marker_c);
    }
    gather_future_release(f);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    /* Still exactly once each after everything has settled. */
    ck_assert_int_eq(atomic_load(&c.pos), 3);
    tu_count_destroy(&c.ran);
    tu_gate_destroy(&gate);
}
END_TEST

START_TEST(test_callback_on_done_future_runs_at_once_on_caller)
{
    gather_pool *p = tu_pool(2);
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_identity, &marker_b, &f), 0);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);

    cb_ctx c;
    cb_ctx_init(&c, p);
    cb_arg a0 = {&c, 0}, a1 = {&c, 1};
    ck_assert_int_eq(gather_future_on_done(f, cb_record, &a0), 0);
    /* Ran before on_done returned, on this thread (not a pool thread). */
    ck_assert_int_eq(tu_count_get(&c.ran), 1);
    ck_assert_int_eq(atomic_load(&c.pos), 1);
    ck_assert_int_eq(c.calls[0], 1);
    ck_assert_int_eq(c.off_main[0], 0);
    ck_assert_int_eq(c.on_pool[0], 0);
    ck_assert_int_eq(c.saw_done[0], 1);
    ck_assert_int_eq(c.saw_error[0], 0);
    ck_assert_ptr_eq(c.saw_value[0], &marker_b);

    ck_assert_int_eq(gather_future_on_done(f, cb_record, &a1), 0);
    ck_assert_int_eq(tu_count_get(&c.ran), 2);
    ck_assert_int_eq(atomic_load(&c.pos), 2);
    ck_assert_int_eq(c.order[1], 1);
    ck_assert_int_eq(c.off_main[1], 0);

    gather_future_release(f);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    ck_assert_int_eq(c.calls[0], 1);
    ck_assert_int_eq(c.calls[1], 1);
    tu_count_destroy(&c.ran);
}
END_TEST

/* Callbacks added while the future completes: each runs exactly once. */
typedef struct race_ctx {
    atomic_int calls[64];
} race_ctx;

static void cb_count_slot(gather_future *future, void *user_data)
{
    (void)future;
    atomic_fetch_add((atomic_int *)user_data, 1);
}

START_TEST(test_callbacks_added_during_completion_run_exactly_once)
{
    gather_pool *p = tu_pool(2);
    for (int round = 0; round < 20; round++) {
        tu_gate gate;
        tu_gate_init(&gate);
        tu_gated g = {.gate = &gate, .code = 0, .value = NULL};
        gather_future *f = NULL;
        ck_assert_int_eq(gather_submit(p, tu_task_gated, &g, &f), 0);
        race_ctx rc;
        for (int i = 0; i < 64; i++)
            atomic_init(&rc.calls[i], 0);
        for (int i = 0; i < 64; i++) {
            if (i == 16)
                tu_gate_open(&gate); /* completion races the rest */
            ck_assert_int_eq(gather_future_on_done(f, cb_count_slot,
                                                   &rc.calls[i]), 0);
        }
        ck_assert_int_eq(gather_future_wait(f, NULL), 0);
        gather_future_release(f);
        /* Completing thread may still be running callbacks: poll, bounded. */
        uint64_t deadline = tu_mono_ns() + (uint64_t)TU_WATCHDOG_S * 1000000000u;
        for (;;) {
            int all = 1;
            for (int i = 0; i < 64; i++)
                if (atomic_load(&rc.calls[i]) == 0)
                    all = 0;
            if (all || tu_mono_ns() > deadline)
                break;
            sched_yield();
        }
        for (int i = 0; i < 64; i++)
            ck_assert_int_eq(atomic_load(&rc.calls[i]), 1);
        /* The pool is drained by the next round's wait or by destroy; a
         * callback running twice would bump a count again: check after the
         * destroy on the last round below. */
        tu_gate_destroy(&gate);
        if (round == 19) {
            ck_assert_int_eq(gather_pool_destroy(p), 0);
            for (int i = 0; i < 64; i++)
                ck_assert_int_eq(atomic_load(&rc.calls[i]), 1);
        }
    }
}
END_TEST

/* A callback calling the API: it submits a task, waits for it, releases the
 * sub-future and the last user reference of the future it is called for. */
typedef struct api_cb_ctx {
    gather_pool *pool;
    gather_future *extra_ref;  /* released inside the callback */
    int submit_rc;
    int wait_rc;
    void *sub_value;
    void *own_value;           /* read after releasing extra_ref */
    int own_error;
    tu_count done;
} api_cb_ctx;

static void cb_use_api(gather_future *future, void *user_data)
{
    api_cb_ctx *c = (api_cb_ctx *)user_data;
    gather_future *sub = NULL;
    c->submit_rc = gather_submit(c->pool, tu_task_identity, &marker_c, &sub);
    c->wait_rc = gather_future_wait(sub, &c->sub_value);
    gather_future_release(sub);
    gather_future_release(c->extra_ref);
    /* `future` stays borrowed for the whole call. */
    c->own_value = gather_future_value(future);
    c->own_error = gather_future_error(future);
    tu_count_add(&c->done, 1);
}

START_TEST(test_callback_may_submit_wait_and_release)
{
    gather_pool *p = tu_pool(2);
    tu_gate gate;
    tu_gate_init(&gate);
    tu_gated g = {.gate = &gate, .code = 0, .value = &marker_a};
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_gated, &g, &f), 0);

    api_cb_ctx c = {.pool = p, .submit_rc = -1, .wait_rc = -1};
    tu_count_init(&c.done);
    c.extra_ref = gather_future_retain(f);
    ck_assert_int_eq(gather_future_on_done(f, cb_use_api, &c), 0);
    gather_future_release(f); /* only the callback's reference is left */

    tu_gate_open(&gate);
    ck_assert_int_eq(tu_count_wait(&c.done, 1), 0);
    ck_assert_int_eq(c.submit_rc, 0);
    ck_assert_int_eq(c.wait_rc, 0);
    ck_assert_ptr_eq(c.sub_value, &marker_c);
    ck_assert_ptr_eq(c.own_value, &marker_a);
    ck_assert_int_eq(c.own_error, 0);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    tu_count_destroy(&c.done);
    tu_gate_destroy(&gate);
}
END_TEST

START_TEST(test_callback_on_caller_thread_may_submit_and_wait)
{
    gather_pool *p = tu_pool(2);
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_identity, &marker_a, &f), 0);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);

    api_cb_ctx c = {.pool = p, .submit_rc = -1, .wait_rc = -1};
    tu_count_init(&c.done);
    c.extra_ref = gather_future_retain(f);
    ck_assert_int_eq(gather_future_on_done(f, cb_use_api, &c), 0);
    ck_assert_int_eq(tu_count_get(&c.done), 1);
    ck_assert_int_eq(c.submit_rc, 0);
    ck_assert_int_eq(c.wait_rc, 0);
    ck_assert_ptr_eq(c.sub_value, &marker_c);
    ck_assert_ptr_eq(c.own_value, &marker_a);
    gather_future_release(f);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    tu_count_destroy(&c.done);
}
END_TEST

/* ---- lifetime past the pool ------------------------------------------------ */

static void cb_flag(gather_future *future, void *user_data)
{
    atomic_store((atomic_int *)user_data, gather_future_done(future) ? 1 : 2);
}

START_TEST(test_futures_outlive_their_pool)
{
    gather_pool *p = tu_pool(2);
    tu_fail_arg bad_arg = {42, &marker_b};
    gather_future *ok = NULL, *bad = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_identity, &marker_a, &ok), 0);
    ck_assert_int_eq(gather_submit(p, tu_task_fail_with, &bad_arg, &bad), 0);
    ck_assert_int_eq(gather_pool_destroy(p), 0); /* drains, then frees */

    ck_assert(gather_future_done(ok));
    ck_assert(gather_future_done(bad));
    ck_assert_int_eq(gather_future_error(ok), 0);
    ck_assert_ptr_eq(gather_future_value(ok), &marker_a);
    ck_assert_int_eq(gather_future_error(bad), 42);
    ck_assert_ptr_eq(gather_future_value(bad), &marker_b);
    void *v = NULL;
    ck_assert_int_eq(gather_future_wait(bad, &v), 42);
    ck_assert_ptr_eq(v, &marker_b);
    ck_assert(gather_future_wait_for(ok, 0));
    ck_assert(!gather_future_cancel(ok));
    ck_assert(!gather_future_cancelled(ok));
    atomic_int flag = 0;
    ck_assert_int_eq(gather_future_on_done(ok, cb_flag, &flag), 0);
    ck_assert_int_eq(atomic_load(&flag), 1);
    ck_assert_ptr_eq(gather_future_retain(ok), ok);
    gather_future_release(ok);
    gather_future_release(ok);
    gather_future_release(bad);
}
END_TEST

/* ---- memory visibility ----------------------------------------------------- */

typedef struct plain_data {
    int a;
    double b;
    char text[64];
    long arr[256];
} plain_data;

static int task_write_plain(void *arg, void **result)
{
    plain_data *d = (plain_data *)arg;
    d->a = 1234;
    d->b = 2.5;
    strcpy(d->text, "written by the task");
    for (int i = 0; i < 256; i++)
        d->arr[i] = (long)i * 3;
    *result = d;
    return 0;
}

static void check_plain(const plain_data *d)
{
    ck_assert_int_eq(d->a, 1234);
    ck_assert(d->b == 2.5);
    ck_assert_str_eq(d->text, "written by the task");
    for (int i = 0; i < 256; i++)
        ck_assert_int_eq(d->arr[i], (long)i * 3);
}

START_TEST(test_task_writes_visible_after_wait)
{
    gather_pool *p = tu_pool(2);
    for (int i = 0; i < 4; i++) {
        plain_data *d = calloc(1, sizeof *d);
        ck_assert_ptr_nonnull(d);
        gather_future *f = NULL;
        ck_assert_int_eq(gather_submit(p, task_write_plain, d, &f), 0);
        void *v = NULL;
        ck_assert_int_eq(gather_future_wait(f, &v), 0);
        ck_assert_ptr_eq(v, d);
        check_plain(d);
        gather_future_release(f);
        free(d);
    }
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

START_TEST(test_task_writes_visible_after_done_or_wait_for)
{
    gather_pool *p = tu_pool(2);
    plain_data *d1 = calloc(1, sizeof *d1), *d2 = calloc(1, sizeof *d2);
    ck_assert_ptr_nonnull(d1);
    ck_assert_ptr_nonnull(d2);
    gather_future *f1 = NULL, *f2 = NULL;
    ck_assert_int_eq(gather_submit(p, task_write_plain, d1, &f1), 0);
    ck_assert_int_eq(gather_submit(p, task_write_plain, d2, &f2), 0);
    /* Observing done by polling is enough for visibility. */
    uint64_t deadline = tu_mono_ns() + (uint64_t)TU_WATCHDOG_S * 1000000000u;
    while (!gather_future_done(f1) && tu_mono_ns() < deadline)
        sched_yield();
    ck_assert(gather_future_done(f1));
    check_plain(d1);
    ck_assert(gather_future_wait_for(f2, GATHER_FOREVER));
    check_plain(d2);
    gather_future_release(f1);
    gather_future_release(f2);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    free(d1);
    free(d2);
}
END_TEST

/* ---- off-pool waiting ------------------------------------------------------ */

typedef struct waiter {
    gather_future *f;
    tu_count *entering;
    atomic_int returned;
    int rc;
    void *value;
    clockid_t cpu;
} waiter;

static void *waiter_main(void *arg)
{
    waiter *w = (waiter *)arg;
    pthread_getcpuclockid(pthread_self(), &w->cpu);
    tu_count_add(w->entering, 1);
    w->rc = gather_future_wait(w->f, &w->value);
    atomic_store(&w->returned, 1);
    return NULL;
}

START_TEST(test_off_pool_wait_blocks_until_done)
{
    gather_pool *p = tu_pool(1);
    tu_gate gate;
    tu_count entering;
    tu_gate_init(&gate);
    tu_count_init(&entering);
    tu_gated g = {.gate = &gate, .code = 9, .value = &marker_a};
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_gated, &g, &f), 0);

    waiter w = {.f = f, .entering = &entering, .rc = -1, .value = NULL};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, waiter_main, &w), 0);
    ck_assert_int_eq(tu_count_wait(&entering, 1), 0);
    /* Gives the waiter time to return wrongly; the task cannot be done. */
    ck_assert(!gather_future_wait_for(f, MS(30)));
    ck_assert_int_eq(atomic_load(&w.returned), 0);

    tu_gate_open(&gate);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_int_eq(atomic_load(&w.returned), 1);
    ck_assert_int_eq(w.rc, 9);
    ck_assert_ptr_eq(w.value, &marker_a);
    gather_future_release(f);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    tu_gate_destroy(&gate);
    tu_count_destroy(&entering);
}
END_TEST

START_TEST(test_off_pool_waits_sleep_instead_of_spinning)
{
    gather_pool *p = tu_pool(1);
    tu_gate gate;
    tu_count entering;
    tu_gate_init(&gate);
    tu_count_init(&entering);
    tu_gated g = {.gate = &gate, .code = 0, .value = NULL};
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_gated, &g, &f), 0);

    waiter w = {.f = f, .entering = &entering, .rc = -1};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, waiter_main, &w), 0);
    ck_assert_int_eq(tu_count_wait(&entering, 1), 0);

    uint64_t helper0 = cpu_ns(w.cpu);
    uint64_t self0 = cpu_ns(CLOCK_THREAD_CPUTIME_ID);
    uint64_t wall0 = tu_mono_ns();
    ck_assert(!gather_future_wait_for(f, MS(200)));
    uint64_t wall = tu_mono_ns() - wall0;
    uint64_t self = cpu_ns(CLOCK_THREAD_CPUTIME_ID) - self0;
    uint64_t helper = cpu_ns(w.cpu) - helper0;
    ck_assert_uint_ge(wall, MS(150));
    /* A sleeping wait uses next to no CPU; a spinning one uses ~all of it. */
    ck_assert_uint_lt(self, MS(100));
    ck_assert_uint_lt(helper, MS(100));

    tu_gate_open(&gate);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_int_eq(w.rc, 0);
    gather_future_release(f);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    tu_gate_destroy(&gate);
    tu_count_destroy(&entering);
}
END_TEST

START_TEST(test_many_off_pool_waiters_all_wake)
{
    enum { N = 4 };
    gather_pool *p = tu_pool(1);
    tu_gate gate;
    tu_count entering;
    tu_gate_init(&gate);
    tu_count_init(&entering);
    tu_gated g = {.gate = &gate, .code = 0, .value = &marker_b};
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_gated, &g, &f), 0);
    waiter w[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        w[i] = (waiter){.f = f, .entering = &entering, .rc = -1};
        ck_assert_int_eq(pthread_create(&t[i], NULL, waiter_main, &w[i]), 0);
    }
    ck_assert_int_eq(tu_count_wait(&entering, N), 0);
    tu_gate_open(&gate);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(pthread_join(t[i], NULL), 0);
        ck_assert_int_eq(w[i].rc, 0);
        ck_assert_ptr_eq(w[i].value, &marker_b);
    }
    gather_future_release(f);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    tu_gate_destroy(&gate);
    tu_count_destroy(&entering);
}
END_TEST

/* ---- self-waits ------------------------------------------------------------ */

typedef struct self_ctx {
    tu_gate gate;
    gather_future *self; /* stored after submit, before the gate opens */
    int wait_rc;
    void *wait_value;    /* preset; must stay untouched */
    int wait_for_result;
    int wait_for_zero_result;
    int gather_rc;
    int wait_any_rc;
    size_t wait_any_index;
    int done_inside;
} self_ctx;

static int task_wait_self(void *arg, void **result)
{
    self_ctx *c = (self_ctx *)arg;
    tu_gate_wait(&c->gate);
    c->wait_value = &marker_c;
    c->wait_rc = gather_future_wait(c->self, &c->wait_value);
    c->wait_for_result = gather_future_wait_for(c->self, GATHER_FOREVER);
    c->wait_for_zero_result = gather_future_wait_for(c->self, 0);
    c->done_inside = gather_future_done(c->self);
    *result = &marker_a;
    return 0;
}

START_TEST(test_task_waiting_for_own_future_gets_edeadlk)
{
    gather_pool *p = tu_pool(1); /* even a one-thread pool must not hang */
    self_ctx c;
    memset(&c, 0, sizeof c);
    tu_gate_init(&c.gate);
    c.wait_rc = -1;
    c.wait_for_result = -1;
    c.wait_for_zero_result = -1;
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, task_wait_self, &c, &f), 0);
    c.self = f;
    tu_gate_open(&c.gate);
    void *v = NULL;
    ck_assert_int_eq(gather_future_wait(f, &v), 0);
    ck_assert_ptr_eq(v, &marker_a);
    ck_assert_int_eq(c.wait_rc, EDEADLK);
    ck_assert_ptr_eq(c.wait_value, &marker_c); /* untouched on error */
    ck_assert_int_eq(c.wait_for_result, 0);
    ck_assert_int_eq(c.wait_for_zero_result, 0);
    ck_assert_int_eq(c.done_inside, 0);
    gather_future_release(f);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    tu_gate_destroy(&c.gate);
}
END_TEST

static int task_list_self(void *arg, void **result)
{
    self_ctx *c = (self_ctx *)arg;
    tu_gate_wait(&c->gate);
    gather_future *list[1] = {c->self};
    gather_result res[1];
    c->gather_rc = gather_futures(list, 1, res, GATHER_RETURN_ERRORS);
    c->wait_any_index = 77;
    c->wait_any_rc = gather_wait_any(list, 1, GATHER_FOREVER, &c->wait_any_index);
    *result = NULL;
    return 0;
}

START_TEST(test_task_listing_own_future_gets_edeadlk)
{
    gather_pool *p = tu_pool(1);
    self_ctx c;
    memset(&c, 0, sizeof c);
    tu_gate_init(&c.gate);
    c.gather_rc = -1;
    c.wait_any_rc = -1;
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, task_list_self, &c, &f), 0);
    c.self = f;
    tu_gate_open(&c.gate);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    ck_assert_int_eq(c.gather_rc, EDEADLK);
    ck_assert_int_eq(c.wait_any_rc, EDEADLK);
    ck_assert_uint_eq(c.wait_any_index, 77);
    gather_future_release(f);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    tu_gate_destroy(&c.gate);
}
END_TEST

/* ---- gather_cancel_requested() outside cancellation ------------------------ */


START_TEST(test_cancel_requested_false_outside_tasks_and_when_not_cancelled)
{
    ck_assert(!gather_cancel_requested());
    gather_pool *p = tu_pool(2);
    atomic_int seen = -1;
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_record_cancel_requested, &seen, &f), 0);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    ck_assert_int_eq(atomic_load(&seen), 0);
    ck_assert(!gather_cancel_requested());
    gather_future_release(f);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    ck_assert(!gather_cancel_requested());
}
END_TEST

/* ---- suite ----------------------------------------------------------------- */

int main(void)
{
    Suite *s = suite_create("future");

    TCase *tc = tcase_create("values");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_submit_returns_future_with_value_and_code);
    tcase_add_test(tc, test_success_with_unset_result_has_null_value);
    tcase_add_test(tc, test_wait_with_null_value_still_returns_code);
    tcase_add_test(tc, test_failing_task_keeps_code_and_error_payload);
    tcase_add_test(tc, test_submit_to_default_pool_runs_task);
    tcase_add_test(tc, test_pending_future_reports_not_done_then_done);
    tcase_add_test(tc, test_wait_for_times_out_after_its_timeout);
    suite_add_tcase(s, tc);

    tc = tcase_create("references");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_retained_future_stays_readable_after_submitter_release);
    tcase_add_test(tc, test_release_does_not_cancel_running_task);
    tcase_add_test(tc, test_release_does_not_cancel_pending_task);
    tcase_add_test(tc, test_detached_submit_runs_task);
    tcase_add_test(tc, test_futures_outlive_their_pool);
    suite_add_tcase(s, tc);

    tc = tcase_create("callbacks");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_callbacks_run_once_in_order_on_completing_pool_thread);
    tcase_add_test(tc, test_callback_on_done_future_runs_at_once_on_caller);
    tcase_add_test(tc, test_callbacks_added_during_completion_run_exactly_once);
    tcase_add_test(tc, test_callback_may_submit_wait_and_release);
    tcase_add_test(tc, test_callback_on_caller_thread_may_submit_and_wait);
    suite_add_tcase(s, tc);

    tc = tcase_create("waiting");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_task_writes_visible_after_wait);
    tcase_add_test(tc, test_task_writes_visible_after_done_or_wait_for);
    tcase_add_test(tc, test_off_pool_wait_blocks_until_done);
    tcase_add_test(tc, test_off_pool_waits_sleep_instead_of_spinning);
    tcase_add_test(tc, test_many_off_pool_waiters_all_wake);
    tcase_add_test(tc, test_task_waiting_for_own_future_gets_edeadlk);
    tcase_add_test(tc, test_task_listing_own_future_gets_edeadlk);
    tcase_add_test(tc, test_cancel_requested_false_outside_tasks_and_when_not_cancelled);
    suite_add_tcase(s, tc);

    return tu_run_suite(s);
}
