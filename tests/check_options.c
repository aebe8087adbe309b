/* SPDX-License-Identifier: MIT */
/*
 * check_options.c - gather_submit_ex() and its task options (blocking,
 * priority, value_free, arg_free), and gather_future_take().
 *
 * Tasks that must stay pending wait behind a gated task on a one-thread
 * pool; start order is recorded by the tasks themselves.
 */
#include "testutil.h"

#include <string.h>

/* A one-thread pool whose worker is held in a gated task. */
typedef struct held {
    gather_pool *pool;
    tu_gate gate;
    tu_count started;
    tu_gated blocker;
    gather_future *blocker_f;
} held;

static void hold_pool(held *h, size_t max_threads)
{
    gather_pool_options o = {0};
    o.threads = 1;
    o.max_threads = max_threads;
    ck_assert_int_eq(gather_pool_create(&h->pool, &o), 0);
    tu_gate_init(&h->gate);
    tu_count_init(&h->started);
    memset(&h->blocker, 0, sizeof h->blocker);
    h->blocker.gate = &h->gate;
    h->blocker.started = &h->started;
    ck_assert_int_eq(gather_submit(h->pool, tu_task_gated, &h->blocker, &h->blocker_f), 0);
    ck_assert_int_eq(tu_count_wait(&h->started, 1), 0);
}

static void open_pool(held *h)
{
    tu_gate_open(&h->gate);
    ck_assert_int_eq(gather_future_wait(h->blocker_f, NULL), 0);
}

static void release_pool(held *h)
{
    gather_future_release(h->blocker_f);
    ck_assert_int_eq(gather_pool_destroy(h->pool), 0);
    tu_gate_destroy(&h->gate);
    tu_count_destroy(&h->started);
}

/* ---- arguments ----------------------------------------------------------- */

static void must_not_free(void *p)
{
    (void)p;
    ck_abort_msg("arg_free called on a refused task");
}

START_TEST(test_options_arguments)
{
    gather_task_options o;
    memset(&o, 0, sizeof o);
    o.arg_free = must_not_free;
    gather_future *f = (gather_future *)&o;
    ck_assert_int_eq(gather_submit_ex(NULL, NULL, NULL, &o, &f), EINVAL);
    ck_assert_ptr_null(f);
    o.flags = 2u;
    f = (gather_future *)&o;
    ck_assert_int_eq(gather_submit_ex(NULL, tu_task_identity, NULL, &o, &f), EINVAL);
    ck_assert_ptr_null(f);
    o.flags = 0;
    o.priority = 2;
    ck_assert_int_eq(gather_submit_ex(NULL, tu_task_identity, NULL, &o, &f), EINVAL);
    o.priority = -2;
    ck_assert_int_eq(gather_submit_ex(NULL, tu_task_identity, NULL, &o, &f), EINVAL);

    /* NULL options and zero options are gather_submit(). */
    ck_assert_int_eq(gather_submit_ex(NULL, tu_task_identity, &o, NULL, &f), 0);
    void *v = NULL;
    ck_assert_int_eq(gather_future_wait(f, &v), 0);
    ck_assert_ptr_eq(v, &o);
    gather_future_release(f);
    gather_task_options zero;
    memset(&zero, 0, sizeof zero);
    ck_assert_int_eq(gather_submit_ex(NULL, tu_task_identity, &zero, &zero, &f), 0);
    ck_assert_int_eq(gather_future_wait(f, &v), 0);
    ck_assert_ptr_eq(v, &zero);
    gather_future_release(f);

    /* A shut-down pool refuses, and arg_free is not called. */
    gather_pool *p = tu_pool(1);
    ck_assert_int_eq(gather_pool_shutdown(p, 0), 0);
    o.priority = GATHER_PRIORITY_HIGH;
    f = (gather_future *)&o;
    ck_assert_int_eq(gather_submit_ex(p, tu_task_identity, NULL, &o, &f), ESHUTDOWN);
    ck_assert_ptr_null(f);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

/* ---- priorities ---------------------------------------------------------- */

typedef struct order_log {
    pthread_mutex_t lock;
    int seq[64];
    int n;
} order_log;

typedef struct ordered {
    order_log *log;
    int id;
} ordered;

static int task_log_start(void *arg, void **result)
{
    ordered *o = (ordered *)arg;
    pthread_mutex_lock(&o->log->lock);
    o->log->seq[o->log->n++] = o->id;
    pthread_mutex_unlock(&o->log->lock);
    *result = NULL;
    return 0;
}

START_TEST(test_priorities_order_queued_outside_tasks)
{
    held h;
    hold_pool(&h, 0);
    order_log log = {.n = 0};
    pthread_mutex_init(&log.lock, NULL);
    /* Interleaved: low, normal, high, three rounds; ids encode the class
     * (100s: high, 200s: normal, 300s: low) and the submission order. */
    static const int prio[3] = {GATHER_PRIORITY_LOW, GATHER_PRIORITY_NORMAL,
                                GATHER_PRIORITY_HIGH};
    static const int base[3] = {300, 200, 100};
    ordered tasks[9];
    gather_future *fs[9];
    for (int round = 0; round < 3; round++) {
        for (int c = 0; c < 3; c++) {
            int k = round * 3 + c;
            tasks[k] = (ordered){&log, base[c] + round};
            gather_task_options o = {0};
            o.priority = prio[c];
            ck_assert_int_eq(gather_submit_ex(h.pool, task_log_start, &tasks[k], &o, &fs[k]), 0);
        }
    }
    open_pool(&h);
    ck_assert_int_eq(gather_futures(fs, 9, NULL, 0), 0);
    static const int want[9] = {100, 101, 102, 200, 201, 202, 300, 301, 302};
    ck_assert_int_eq(log.n, 9);
    for (int i = 0; i < 9; i++)
        ck_assert_int_eq(log.seq[i], want[i]);
    for (int i = 0; i < 9; i++)
        gather_future_release(fs[i]);
    pthread_mutex_destroy(&log.lock);
    release_pool(&h);
}
END_TEST

/* Inside the pool a priority does not reorder: a HIGH subtask goes on the
 * worker's own deque and runs when the parent waits for it. */
static int task_spawns_high(void *arg, void **result)
{
    gather_task_options o = {0};
    o.priority = GATHER_PRIORITY_HIGH;
    gather_future *f;
    int rc = gather_submit_ex(gather_current_pool(), task_log_start, arg, &o, &f);
    if (rc != 0)
        return rc;
    rc = gather_future_wait(f, NULL);
    gather_future_release(f);
    *result = NULL;
    return rc;
}

START_TEST(test_priority_of_a_subtask_keeps_work_stealing_order)
{
    gather_pool *p = tu_pool(1);
    order_log log = {.n = 0};
    pthread_mutex_init(&log.lock, NULL);
    ordered sub = {&log, 1};
    gather_future *f;
    ck_assert_int_eq(gather_submit(p, task_spawns_high, &sub, &f), 0);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    ck_assert_int_eq(log.n, 1);
    gather_future_release(f);
    pthread_mutex_destroy(&log.lock);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

/* ---- value_free and gather_future_take ----------------------------------- */

static atomic_int values_freed;
static void *_Atomic last_freed;
/* The last reference may be the worker's, dropped just after a waiter
 * returned: tests wait for the count (not sleeping: a condition). */
static tu_count freed_count;

static void count_value_free(void *v)
{
    atomic_store(&last_freed, v);
    atomic_fetch_add(&values_freed, 1);
    tu_count_add(&freed_count, 1);
}

static void wait_freed(long n)
{
    ck_assert_int_eq(tu_count_wait(&freed_count, n), 0);
    ck_assert_int_eq(atomic_load(&values_freed), n);
}

static int task_fail_with_payload(void *arg, void **result)
{
    *result = arg;
    return EIO;
}

static int task_null_value(void *arg, void **result)
{
    (void)arg;
    *result = NULL;
    return 0;
}

START_TEST(test_value_free_runs_once_for_a_value_nobody_took)
{
    atomic_store(&values_freed, 0);
    tu_count_init(&freed_count);
    gather_task_options o = {0};
    o.value_free = count_value_free;
    int payload_a, payload_b, payload_c;
    gather_future *f;

    /* Success: freed with the last reference, not before. */
    ck_assert_int_eq(gather_submit_ex(NULL, tu_task_identity, &payload_a, &o, &f), 0);
    void *v = NULL;
    ck_assert_int_eq(gather_future_wait(f, &v), 0); /* reading takes nothing */
    ck_assert_ptr_eq(v, &payload_a);
    ck_assert_ptr_eq(gather_future_value(f), &payload_a);
    ck_assert_int_eq(atomic_load(&values_freed), 0);
    gather_future *extra = gather_future_retain(f);
    gather_future_release(f);
    ck_assert_int_eq(atomic_load(&values_freed), 0);
    gather_future_release(extra);
    wait_freed(1);
    ck_assert_ptr_eq(atomic_load(&last_freed), &payload_a);

    /* A failure's payload too. */
    ck_assert_int_eq(gather_submit_ex(NULL, task_fail_with_payload, &payload_b, &o, &f), 0);
    ck_assert_int_eq(gather_future_wait(f, NULL), EIO);
    gather_future_release(f);
    wait_freed(2);
    ck_assert_ptr_eq(atomic_load(&last_freed), &payload_b);

    /* NULL: nothing to free. */
    ck_assert_int_eq(gather_submit_ex(NULL, task_null_value, NULL, &o, &f), 0);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    gather_future_release(f);

    /* Taken: the caller owns it; value() still reads it. */
    ck_assert_int_eq(gather_submit_ex(NULL, tu_task_identity, &payload_c, &o, &f), 0);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    ck_assert_ptr_eq(gather_future_take(f), &payload_c);
    ck_assert_ptr_null(gather_future_take(f)); /* a second take */
    ck_assert_ptr_eq(gather_future_value(f), &payload_c);
    gather_future_release(f);
    /* A taken value is not freed: the next free to come is this one's
     * (a wrong free of payload_c would show as a count of 4, or as the
     * last value freed). */
    int marker;
    ck_assert_int_eq(gather_submit_ex(NULL, tu_task_identity, &marker, &o, NULL), 0);
    wait_freed(3);
    ck_assert_ptr_eq(atomic_load(&last_freed), &marker);
    tu_count_destroy(&freed_count);
}
END_TEST

START_TEST(test_take_before_done_and_of_other_futures)
{
    ck_assert_ptr_null(gather_future_take(NULL));
    held h;
    hold_pool(&h, 0);
    int payload;
    gather_future *f;
    ck_assert_int_eq(gather_submit(h.pool, tu_task_identity, &payload, &f), 0);
    ck_assert_ptr_null(gather_future_take(f)); /* not done yet */
    open_pool(&h);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    ck_assert_ptr_eq(gather_future_take(f), &payload); /* a plain future */
    ck_assert_ptr_null(gather_future_take(f));
    gather_future_release(f);
    release_pool(&h);
}
END_TEST

START_TEST(test_value_free_of_a_detached_task_runs_when_it_completes)
{
    atomic_store(&values_freed, 0);
    tu_count_init(&freed_count);
    gather_pool *p = tu_pool(1);
    gather_task_options o = {0};
    o.value_free = count_value_free;
    int payload;
    ck_assert_int_eq(gather_submit_ex(p, tu_task_identity, &payload, &o, NULL), 0);
    ck_assert_int_eq(gather_pool_shutdown(p, 0), 0); /* every task is over */
    wait_freed(1);
    ck_assert_ptr_eq(atomic_load(&last_freed), &payload);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    tu_count_destroy(&freed_count);
}
END_TEST

/* ---- arg_free ------------------------------------------------------------ */

typedef struct owned_arg {
    atomic_int freed;
    atomic_int freed_before_done; /* arg_free saw its future not done */
    gather_future *_Atomic f;
    atomic_int ran;
} owned_arg;

static void free_owned(void *arg)
{
    owned_arg *a = (owned_arg *)arg;
    gather_future *f = atomic_load(&a->f);
    if (f != NULL && !gather_future_done(f))
        atomic_fetch_add(&a->freed_before_done, 1);
    atomic_fetch_add(&a->freed, 1);
}

static int task_owned(void *arg, void **result)
{
    owned_arg *a = (owned_arg *)arg;
    atomic_fetch_add(&a->ran, 1);
    *result = NULL;
    return 0;
}

START_TEST(test_arg_free_runs_once_before_done)
{
    held h;
    hold_pool(&h, 0);
    gather_task_options o = {0};
    o.arg_free = free_owned;
    owned_arg a = {0};
    gather_future *f;
    ck_assert_int_eq(gather_submit_ex(h.pool, task_owned, &a, &o, &f), 0);
    atomic_store(&a.f, f);
    open_pool(&h);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    /* The wait returned: arg_free has run, before DONE. */
    ck_assert_int_eq(atomic_load(&a.freed), 1);
    ck_assert_int_eq(atomic_load(&a.freed_before_done), 1);
    ck_assert_int_eq(atomic_load(&a.ran), 1);
    gather_future_release(f);
    release_pool(&h);
}
END_TEST

static void *shutdown_cancelling(void *pool)
{
    ck_assert_int_eq(gather_pool_shutdown((gather_pool *)pool, GATHER_CANCEL_PENDING), 0);
    return NULL;
}

START_TEST(test_arg_free_of_a_task_cancelled_unrun)
{
    held h;
    hold_pool(&h, 0);
    gather_task_options o = {0};
    o.arg_free = free_owned;
    owned_arg a = {0};
    gather_future *f;
    ck_assert_int_eq(gather_submit_ex(h.pool, task_owned, &a, &o, &f), 0);
    atomic_store(&a.f, f);
    ck_assert(gather_future_cancel(f)); /* on this thread, before it returns */
    ck_assert_int_eq(atomic_load(&a.freed), 1);
    ck_assert_int_eq(atomic_load(&a.freed_before_done), 1);

    /* A cancelling shutdown refuses queued ones: freed once each, at once
     * (the shutdown waits for the held task, on its own thread). */
    owned_arg b[3];
    memset(b, 0, sizeof b);
    gather_future *g[3];
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(gather_submit_ex(h.pool, task_owned, &b[i], &o, &g[i]), 0);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, shutdown_cancelling, h.pool), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(gather_future_wait(g[i], NULL), ECANCELED);
        ck_assert_int_eq(atomic_load(&b[i].freed), 1);
        ck_assert_int_eq(atomic_load(&b[i].freed_before_done), 0); /* f unset */
        ck_assert_int_eq(atomic_load(&b[i].ran), 0);
        gather_future_release(g[i]);
    }
    tu_gate_open(&h.gate);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_int_eq(atomic_load(&a.ran), 0);
    gather_future_release(f);
    ck_assert_int_eq(gather_future_wait(h.blocker_f, NULL), 0);
    release_pool(&h);
}
END_TEST

/* ---- GATHER_TASK_BLOCKING ------------------------------------------------ */

static int task_signal_and_gate(void *arg, void **result)
{
    tu_gated *g = (tu_gated *)arg;
    return tu_task_gated(g, result);
}

START_TEST(test_blocking_task_starts_at_once_on_an_elastic_pool)
{
    held h;
    hold_pool(&h, 4); /* elastic: 1 thread, up to 4 */
    /* The only worker is busy in a CPU task; a blocking task still starts. */
    tu_gate gate;
    tu_count started;
    tu_gate_init(&gate);
    tu_count_init(&started);
    tu_gated b = {.gate = &gate, .started = &started};
    gather_task_options o = {0};
    o.flags = GATHER_TASK_BLOCKING;
    gather_future *bf;
    ck_assert_int_eq(gather_submit_ex(h.pool, task_signal_and_gate, &b, &o, &bf), 0);
    ck_assert_int_eq(tu_count_wait(&started, 1), 0); /* the gate is still shut */
    gather_pool_stats st;
    ck_assert_int_eq(gather_pool_stats_get(h.pool, &st), 0);
    ck_assert_uint_ge(st.spares_started, 1);

    /* While it runs it does not count against `threads`: with the CPU task
     * done, a queued CPU task starts although the blocking one still runs. */
    open_pool(&h);
    atomic_int ran = 0;
    gather_future *cf;
    ck_assert_int_eq(gather_submit(h.pool, tu_task_count, &ran, &cf), 0);
    ck_assert_int_eq(gather_future_wait(cf, NULL), 0);
    ck_assert(!gather_future_done(bf));
    tu_gate_open(&gate);
    ck_assert_int_eq(gather_future_wait(bf, NULL), 0);
    gather_future_release(bf);
    gather_future_release(cf);
    release_pool(&h);
    tu_gate_destroy(&gate);
    tu_count_destroy(&started);
}
END_TEST

/* From a task of the same elastic pool, which then blocks itself. */
typedef struct inside_ctx {
    tu_gated *b;
    int rc;
} inside_ctx;

static int task_submits_blocking(void *arg, void **result)
{
    inside_ctx *c = (inside_ctx *)arg;
    gather_task_options o = {0};
    o.flags = GATHER_TASK_BLOCKING;
    gather_future *bf;
    c->rc = gather_submit_ex(gather_current_pool(), task_signal_and_gate, c->b, &o, &bf);
    if (c->rc == 0) {
        /* It starts on another thread while this task holds the worker. */
        c->rc = tu_count_wait(c->b->started, 1);
        tu_gate_open(c->b->gate);
        int rc = gather_future_wait(bf, NULL);
        if (c->rc == 0)
            c->rc = rc;
        gather_future_release(bf);
    }
    *result = NULL;
    return 0;
}

START_TEST(test_blocking_task_from_inside_starts_at_once)
{
    gather_pool_options po = {0};
    po.threads = 1;
    po.max_threads = 3;
    gather_pool *p;
    ck_assert_int_eq(gather_pool_create(&p, &po), 0);
    tu_gate gate;
    tu_count started;
    tu_gate_init(&gate);
    tu_count_init(&started);
    tu_gated b = {.gate = &gate, .started = &started};
    inside_ctx c = {.b = &b, .rc = -1};
    gather_future *f;
    ck_assert_int_eq(gather_submit(p, task_submits_blocking, &c, &f), 0);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    ck_assert_int_eq(c.rc, 0);
    gather_future_release(f);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    tu_gate_destroy(&gate);
    tu_count_destroy(&started);
}
END_TEST

START_TEST(test_blocking_task_is_ordinary_on_a_strict_pool)
{
    held h;
    hold_pool(&h, 0);
    atomic_int ran = 0;
    gather_task_options o = {0};
    o.flags = GATHER_TASK_BLOCKING;
    gather_future *f;
    ck_assert_int_eq(gather_submit_ex(h.pool, tu_task_count, &ran, &o, &f), 0);
    /* The only worker is held: nothing starts it (a strict pool never has
     * more threads than `threads`). */
    ck_assert(!gather_future_wait_for(f, 50000000u));
    ck_assert_int_eq(atomic_load(&ran), 0);
    gather_pool_stats st;
    ck_assert_int_eq(gather_pool_stats_get(h.pool, &st), 0);
    ck_assert_uint_eq(st.threads, 1);
    ck_assert_uint_eq(st.spares_started, 0);
    open_pool(&h);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    ck_assert_int_eq(atomic_load(&ran), 1);
    gather_future_release(f);
    release_pool(&h);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("options");
    TCase *tc = tcase_create("options");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_options_arguments);
    tcase_add_test(tc, test_priorities_order_queued_outside_tasks);
    tcase_add_test(tc, test_priority_of_a_subtask_keeps_work_stealing_order);
    tcase_add_test(tc, test_value_free_runs_once_for_a_value_nobody_took);
    tcase_add_test(tc, test_take_before_done_and_of_other_futures);
    tcase_add_test(tc, test_value_free_of_a_detached_task_runs_when_it_completes);
    tcase_add_test(tc, test_arg_free_runs_once_before_done);
    tcase_add_test(tc, test_arg_free_of_a_task_cancelled_unrun);
    tcase_add_test(tc, test_blocking_task_starts_at_once_on_an_elastic_pool);
    tcase_add_test(tc, test_blocking_task_from_inside_starts_at_once);
    tcase_add_test(tc, test_blocking_task_is_ordinary_on_a_strict_pool);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
