/* SPDX-License-Identifier: MIT */
/*
 * check_lifecycle.c - shutdown and destroy: draining, ESHUTDOWN, subtasks
 * during the drain, EDEADLK from the pool's own threads, futures outliving
 * their pool, races between shutdown and submitters, create/destroy churn.
 */
#include "testutil.h"

#include <string.h>
#include <unistd.h>

/* An atomic read that reads well in assertion messages. */
static inline int load_int_(atomic_int *p)
{
    return atomic_load(p);
}
static inline long load_long_(atomic_long *p)
{
    return atomic_load(p);
}
#define LOAD(p) _Generic((p), atomic_int *: load_int_, atomic_long *: load_long_)(p)

#define SLOW_BUILD TU_SANITIZED

/* ---- helpers ------------------------------------------------------------------ */

static int task_count(void *arg, void **result)
{
    atomic_fetch_add((atomic_long *)arg, 1);
    *result = arg;
    return 0;
}

/* Shuts a pool down on its own pthread; `returned` turns 1 afterwards. */
typedef struct shutdown_thread {
    pthread_t tid;
    gather_pool *pool;
    unsigned flags;
    int destroy; /* 1: gather_pool_destroy instead of shutdown */
    int rc;
    atomic_int returned;
} shutdown_thread;

static void *shutdown_main(void *arg)
{
    shutdown_thread *t = arg;
    t->rc = t->destroy ? gather_pool_destroy(t->pool) : gather_pool_shutdown(t->pool, t->flags);
    atomic_store(&t->returned, 1);
    return NULL;
}

static void start_shutdown(shutdown_thread *t, gather_pool *p, int destroy)
{
    memset(t, 0, sizeof *t);
    t->pool = p;
    t->destroy = destroy;
    t->rc = -1;
    ck_assert_int_eq(pthread_create(&t->tid, NULL, shutdown_main, t), 0);
}

/* Waits until gather_submit() from this (outside) thread fails with
 * ESHUTDOWN, i.e. until the shutdown running on another thread has begun.
 * Each probe that is still accepted runs task_count on *probes_ran and is
 * counted in *probes_ok. Only for shutdown, never destroy (the pool must
 * stay valid). */
static void wait_until_shut(gather_pool *p, atomic_long *probes_ran, long *probes_ok)
{
    for (long i = 0; i < 1000000; i++) {
        int rc = gather_submit(p, task_count, probes_ran, NULL);
        if (rc == ESHUTDOWN)
            return;
        ck_assert_int_eq(rc, 0);
        (*probes_ok)++;
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
    ck_abort_msg("shutdown never began");
}

/* ---- shutdown waits ------------------------------------------------------------ */

START_TEST(test_shutdown_waits_for_running_and_queued_tasks)
{
    enum { K = 2, N = 6 };
    gather_pool *p = tu_pool(K);
    tu_gate gate;
    tu_count started;
    tu_gate_init(&gate);
    tu_count_init(&started);
    tu_gated g[N];
    gather_future *f[N];
    memset(g, 0, sizeof g);
    for (int i = 0; i < N; i++) {
        g[i].gate = &gate;
        g[i].started = &started;
        g[i].value = &g[i];
        g[i].code = i;
        ck_assert_int_eq(gather_submit(p, tu_task_gated, &g[i], &f[i]), 0);
    }
    /* K running, N-K queued. */
    ck_assert_int_eq(tu_count_wait(&started, K), 0);

    shutdown_thread t;
    start_shutdown(&t, p, 0);
    atomic_long probes_ran = 0;
    long probes_ok = 0;
    wait_until_shut(p, &probes_ran, &probes_ok);
    /* Shutdown has begun; it cannot return while the gate is closed. */
    struct timespec ts = {0, 20000000}; /* only makes an early return likelier to show */
    nanosleep(&ts, NULL);
    ck_assert_int_eq(LOAD(&t.returned), 0);
    for (int i = 0; i < N; i++)
        ck_assert(!gather_future_done(f[i]));

    tu_gate_open(&gate);
    ck_assert_int_eq(pthread_join(t.tid, NULL), 0);
    ck_assert_int_eq(t.rc, 0);
    /* Every task finished before shutdown returned. */
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(LOAD(&g[i].ran), 1);
        ck_assert(gather_future_done(f[i]));
        ck_assert_int_eq(gather_future_error(f[i]), i);
        ck_assert_ptr_eq(gather_future_value(f[i]), &g[i]);
        gather_future_release(f[i]);
    }
    ck_assert_int_eq(LOAD(&probes_ran), probes_ok);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    tu_gate_destroy(&gate);
    tu_count_destroy(&started);
}
END_TEST

START_TEST(test_submit_after_shutdown_is_eshutdown)
{
    gather_pool *p = tu_pool(2);
    atomic_long ran = 0;
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, task_count, &ran, &f), 0);
    ck_assert_int_eq(gather_pool_shutdown(p, 0), 0);
    /* The accepted task ran before shutdown returned. */
    ck_assert(gather_future_done(f));
    ck_assert_int_eq(LOAD(&ran), 1);
    gather_future_release(f);

    gather_future *g = (gather_future *)&ran; /* must be overwritten with NULL */
    ck_assert_int_eq(gather_submit(p, task_count, &ran, &g), ESHUTDOWN);
    ck_assert_ptr_null(g);
    ck_assert_int_eq(gather_submit(p, task_count, &ran, NULL), ESHUTDOWN);
    void *args[2] = {&ran, &ran};
    gather_result r[2];
    ck_assert_int_eq(gather_map(p, task_count, args, 2, r, 0), ESHUTDOWN);
    ck_assert_int_eq(LOAD(&ran), 1);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    ck_assert_int_eq(LOAD(&ran), 1);
}
END_TEST

START_TEST(test_shutdown_rejects_bad_arguments)
{
    ck_assert_int_eq(gather_pool_shutdown(NULL, 0), EINVAL);
    ck_assert_int_eq(gather_pool_destroy(NULL), EINVAL);
    gather_pool *p = tu_pool(1);
    ck_assert_int_eq(gather_pool_shutdown(p, 2u), EINVAL);
    ck_assert_int_eq(gather_pool_shutdown(p, 0x80u), EINVAL);
    /* Nothing was done: the pool still takes work. */
    atomic_long ran = 0;
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, task_count, &ran, &f), 0);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    gather_future_release(f);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    ck_assert_int_eq(LOAD(&ran), 1);
}
END_TEST

/* A gated task that, once released, submits 100 detached subtasks. */
typedef struct drain_ctx {
    gather_pool *pool;
    tu_gate *gate;
    tu_count *started;
    atomic_long sub_ran;
    atomic_int submit_failures;
    atomic_int last_rc;
} drain_ctx;

static int task_sub(void *arg, void **result)
{
    drain_ctx *d = arg;
    atomic_fetch_add(&d->sub_ran, 1);
    (void)result;
    return 0;
}

static int task_submit_during_drain(void *arg, void **result)
{
    drain_ctx *d = arg;
    tu_count_add(d->started, 1);
    tu_gate_wait(d->gate);
    for (int i = 0; i < 100; i++) {
        int rc = gather_submit(d->pool, task_sub, d, NULL);
        if (rc != 0) {
            atomic_fetch_add(&d->submit_failures, 1);
            atomic_store(&d->last_rc, rc);
        }
    }
    (void)result;
    return 0;
}

START_TEST(test_tasks_submit_subtasks_while_pool_drains)
{
    gather_pool *p = tu_pool(2);
    tu_gate gate;
    tu_count started;
    tu_gate_init(&gate);
    tu_count_init(&started);
    drain_ctx d = {.pool = p, .gate = &gate, .started = &started};
    ck_assert_int_eq(gather_submit(p, task_submit_during_drain, &d, NULL), 0);
    ck_assert_int_eq(tu_count_wait(&started, 1), 0);

    shutdown_thread t;
    start_shutdown(&t, p, 0);
    atomic_long probes_ran = 0;
    long probes_ok = 0;
    wait_until_shut(p, &probes_ran, &probes_ok);
    /* Draining: the task now submits its subtasks. */
    tu_gate_open(&gate);
    ck_assert_int_eq(pthread_join(t.tid, NULL), 0);
    ck_assert_int_eq(t.rc, 0);
    ck_assert_msg(LOAD(&d.submit_failures) == 0, "%d subtask submits failed (last rc %d)",
                  LOAD(&d.submit_failures), LOAD(&d.last_rc));
    ck_assert_int_eq(LOAD(&d.sub_ran), 100);
    ck_assert_int_eq(LOAD(&probes_ran), probes_ok);
    gather_pool_stats s;
    ck_assert_int_eq(gather_pool_stats_get(p, &s), 0);
    ck_assert_uint_eq(s.submitted, (uint64_t)(1 + probes_ok + 100));
    ck_assert_uint_eq(s.completed, (uint64_t)(1 + probes_ok + 100));
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    tu_gate_destroy(&gate);
    tu_count_destroy(&started);
}
END_TEST

START_TEST(test_shutdown_twice_returns_zero_and_destroy_follows)
{
    gather_pool *p = tu_pool(2);
    atomic_long ran = 0;
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(gather_submit(p, task_count, &ran, NULL), 0);
    ck_assert_int_eq(gather_pool_shutdown(p, 0), 0);
    ck_assert_int_eq(LOAD(&ran), 10);
    ck_assert_int_eq(gather_pool_shutdown(p, 0), 0);
    ck_assert_int_eq(gather_pool_shutdown(p, GATHER_CANCEL_PENDING), 0);
    ck_assert_int_eq(gather_submit(p, task_count, &ran, NULL), ESHUTDOWN);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    ck_assert_int_eq(LOAD(&ran), 10);
}
END_TEST

/* ---- destroy ----------------------------------------------------------------------- */

START_TEST(test_destroy_runs_queued_tasks)
{
    enum { N = 50 };
    gather_pool *p = tu_pool(1);
    tu_gate gate;
    tu_count started;
    tu_gate_init(&gate);
    tu_count_init(&started);
    tu_gated g = {.gate = &gate, .started = &started};
    gather_future *gf = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_gated, &g, &gf), 0);
    ck_assert_int_eq(tu_count_wait(&started, 1), 0);
    /* The only thread is blocked: these stay queued. */
    atomic_long ran = 0;
    gather_future *f[N];
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(gather_submit(p, task_count, &ran, i % 2 ? &f[i] : NULL), 0);
    shutdown_thread t;
    start_shutdown(&t, p, 1);
    /* Whether destroy has begun or not, it must run them all. The pause only
     * makes a destroy that drops queued tasks likelier to show. */
    struct timespec ts = {0, 5000000};
    nanosleep(&ts, NULL);
    ck_assert_int_eq(LOAD(&t.returned), 0);
    tu_gate_open(&gate);
    ck_assert_int_eq(pthread_join(t.tid, NULL), 0);
    ck_assert_int_eq(t.rc, 0);
    ck_assert_int_eq(LOAD(&ran), N);
    ck_assert_int_eq(LOAD(&g.ran), 1);
    /* Futures outlive the pool. */
    ck_assert(gather_future_done(gf));
    ck_assert_int_eq(gather_future_error(gf), 0);
    gather_future_release(gf);
    for (int i = 1; i < N; i += 2) {
        ck_assert(gather_future_done(f[i]));
        ck_assert_int_eq(gather_future_error(f[i]), 0);
        ck_assert_ptr_eq(gather_future_value(f[i]), &ran);
        ck_assert(!gather_future_cancelled(f[i]));
        gather_future_release(f[i]);
    }
    tu_gate_destroy(&gate);
    tu_count_destroy(&started);
}
END_TEST

static void cb_count(gather_future *f, void *ud)
{
    (void)f;
    atomic_fetch_add((atomic_int *)ud, 1);
}

START_TEST(test_futures_outlive_their_pool)
{
    enum { N = 8 };
    gather_pool *p = tu_pool(2);
    int vals[N];
    gather_future *f[N];
    for (int i = 0; i < N; i++) {
        vals[i] = i;
        if (i % 2)
            ck_assert_int_eq(gather_submit(p, tu_task_identity, &vals[i], &f[i]), 0);
        else
            ck_assert_int_eq(gather_submit(p, tu_task_fail, (void *)(intptr_t)(100 + i), &f[i]), 0);
    }
    gather_future *extra = gather_future_retain(f[1]);
    ck_assert_ptr_eq(extra, f[1]);
    ck_assert_int_eq(gather_pool_destroy(p), 0);

    /* All readable after the pool is gone; waits return at once. */
    gather_result r[N];
    ck_assert_int_eq(gather_futures(f, N, r, GATHER_RETURN_ERRORS), 0);
    for (int i = 0; i < N; i++) {
        ck_assert(gather_future_done(f[i]));
        if (i % 2) {
            ck_assert_int_eq(r[i].error, 0);
            ck_assert_ptr_eq(r[i].value, &vals[i]);
            ck_assert_ptr_eq(gather_future_value(f[i]), &vals[i]);
        } else {
            ck_assert_int_eq(r[i].error, 100 + i);
            ck_assert_int_eq(gather_future_error(f[i]), 100 + i);
            ck_assert_ptr_eq(r[i].value, (void *)(intptr_t)(100 + i));
        }
        void *v = NULL;
        ck_assert_int_eq(gather_future_wait(f[i], &v), i % 2 ? 0 : 100 + i);
        ck_assert(gather_future_wait_for(f[i], 0));
    }
    /* A callback added now runs at once on this thread. */
    atomic_int calls = 0;
    ck_assert_int_eq(gather_future_on_done(f[3], cb_count, &calls), 0);
    ck_assert_int_eq(LOAD(&calls), 1);
    /* An aggregate of orphaned futures completes too. */
    gather_future *agg = NULL;
    ck_assert_int_eq(gather_all(f, N, GATHER_RETURN_ERRORS, &agg), 0);
    ck_assert_int_eq(gather_future_wait(agg, NULL), 0);
    gather_result *ar = gather_future_value(agg);
    ck_assert_ptr_nonnull(ar);
    ck_assert_ptr_eq(ar[1].value, &vals[1]);
    ck_assert_int_eq(ar[2].error, 102);
    gather_future_release(agg);
    for (int i = 0; i < N; i++)
        gather_future_release(f[i]);
    /* The extra reference keeps f[1] alive. */
    ck_assert_ptr_eq(gather_future_value(extra), &vals[1]);
    gather_future_release(extra);
}
END_TEST

/* ---- EDEADLK from the pool's own threads ---------------------------------------------- */

typedef struct self_ctx {
    gather_pool *pool;
    gather_pool *other;
    int shutdown_rc;
    int destroy_rc;
    int other_rc;
    gather_pool *cur;
    atomic_int calls;
} self_ctx;

static int task_shutdown_self(void *arg, void **result)
{
    self_ctx *c = arg;
    c->cur = gather_current_pool();
    c->shutdown_rc = gather_pool_shutdown(c->pool, 0);
    c->destroy_rc = gather_pool_destroy(c->pool);
    if (c->other)
        c->other_rc = gather_pool_shutdown(c->other, 0);
    *result = c;
    return 0;
}

static void cb_shutdown_self(gather_future *f, void *ud)
{
    (void)f;
    self_ctx *c = ud;
    c->cur = gather_current_pool();
    c->shutdown_rc = gather_pool_shutdown(c->pool, GATHER_CANCEL_PENDING);
    c->destroy_rc = gather_pool_destroy(c->pool);
    atomic_fetch_add(&c->calls, 1);
}

/* Checks that p still runs tasks and takes outside work. */
static void check_pool_works(gather_pool *p)
{
    int x = 5;
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_identity, &x, &f), 0);
    void *v = NULL;
    ck_assert_int_eq(gather_future_wait(f, &v), 0);
    ck_assert_ptr_eq(v, &x);
    gather_future_release(f);
}

START_TEST(test_shutdown_and_destroy_from_own_task_are_edeadlk)
{
    for (size_t threads = 1; threads <= 2; threads++) {
        gather_pool *p = tu_pool(threads);
        self_ctx c = {.pool = p, .shutdown_rc = -1, .destroy_rc = -1};
        gather_future *f = NULL;
        ck_assert_int_eq(gather_submit(p, task_shutdown_self, &c, &f), 0);
        ck_assert_int_eq(gather_future_wait(f, NULL), 0);
        gather_future_release(f);
        ck_assert_ptr_eq(c.cur, p);
        ck_assert_int_eq(c.shutdown_rc, EDEADLK);
        ck_assert_int_eq(c.destroy_rc, EDEADLK);
        /* Nothing was done. */
        check_pool_works(p);
        ck_assert_int_eq(gather_pool_destroy(p), 0);
    }
}
END_TEST

START_TEST(test_shutdown_from_done_callback_on_pool_thread_is_edeadlk)
{
    gather_pool *p = tu_pool(1);
    tu_gate gate;
    tu_count started;
    tu_gate_init(&gate);
    tu_count_init(&started);
    tu_gated g = {.gate = &gate, .started = &started};
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_gated, &g, &f), 0);
    ck_assert_int_eq(tu_count_wait(&started, 1), 0);
    /* Added before completion: runs on the worker that completes f. */
    self_ctx c = {.pool = p, .shutdown_rc = -1, .destroy_rc = -1};
    ck_assert_int_eq(gather_future_on_done(f, cb_shutdown_self, &c), 0);
    tu_gate_open(&gate);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    /* The callback may still be running after the wait: run one more task
     * on the one-thread pool, which comes after it. */
    check_pool_works(p);
    ck_assert_int_eq(LOAD(&c.calls), 1);
    ck_assert_ptr_eq(c.cur, p);
    ck_assert_int_eq(c.shutdown_rc, EDEADLK);
    ck_assert_int_eq(c.destroy_rc, EDEADLK);
    check_pool_works(p);
    gather_future_release(f);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    tu_gate_destroy(&gate);
    tu_count_destroy(&started);
}
END_TEST

/* A task of one pool may shut down another pool. */
START_TEST(test_task_may_shut_down_another_pool)
{
    gather_pool *a = tu_pool(1);
    gather_pool *b = tu_pool(1);
    atomic_long ran = 0;
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(gather_submit(b, task_count, &ran, NULL), 0);
    self_ctx c = {.pool = a, .other = b, .shutdown_rc = -1, .destroy_rc = -1, .other_rc = -1};
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(a, task_shutdown_self, &c, &f), 0);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    gather_future_release(f);
    ck_assert_int_eq(c.shutdown_rc, EDEADLK);
    ck_assert_int_eq(c.other_rc, 0);
    ck_assert_int_eq(LOAD(&ran), 5);
    ck_assert_int_eq(gather_submit(b, task_count, &ran, NULL), ESHUTDOWN);
    check_pool_works(a);
    ck_assert_int_eq(gather_pool_destroy(a), 0);
    ck_assert_int_eq(gather_pool_destroy(b), 0);
}
END_TEST

/* ---- races and churn -------------------------------------------------------------------- */

typedef struct racer {
    pthread_t tid;
    gather_pool *pool;
    atomic_long *ran;
    tu_count *progress;
    long ok;
    long other_rc;
} racer;

static void *racer_main(void *arg)
{
    racer *r = arg;
    for (long i = 0; i < 200000; i++) {
        gather_future *f = NULL;
        int rc = gather_submit(r->pool, task_count, r->ran, (i & 1) ? &f : NULL);
        if (rc == ESHUTDOWN)
            break;
        if (rc != 0) {
            r->other_rc = rc;
            break;
        }
        r->ok++;
        if (f) {
            /* Some futures are waited, some just released. */
            if ((i & 3) == 1 && gather_future_wait(f, NULL) != 0)
                r->other_rc = -1;
            gather_future_release(f);
        }
        if (i % 16 == 0)
            tu_count_add(r->progress, 16);
    }
    return NULL;
}

START_TEST(test_shutdown_racing_submitters_loses_no_task)
{
    enum { R = 4 };
    int rounds = SLOW_BUILD ? 3 : 10;
    for (int round = 0; round < rounds; round++) {
        gather_pool *p = tu_pool(2);
        atomic_long ran = 0;
        tu_count progress;
        tu_count_init(&progress);
        racer r[R];
        memset(r, 0, sizeof r);
        for (int i = 0; i < R; i++) {
            r[i].pool = p;
            r[i].ran = &ran;
            r[i].progress = &progress;
            ck_assert_int_eq(pthread_create(&r[i].tid, NULL, racer_main, &r[i]), 0);
        }
        /* Let the submitters get going, then shut down under them. */
        ck_assert_int_eq(tu_count_wait(&progress, 200), 0);
        ck_assert_int_eq(gather_pool_shutdown(p, 0), 0);
        long after_shutdown = atomic_load(&ran);
        long ok = 0;
        for (int i = 0; i < R; i++) {
            ck_assert_int_eq(pthread_join(r[i].tid, NULL), 0);
            ck_assert_int_eq(r[i].other_rc, 0);
            ok += r[i].ok;
        }
        /* Every accepted task ran, and before shutdown returned. */
        ck_assert_int_eq(LOAD(&ran), ok);
        ck_assert_int_eq(after_shutdown, ok);
        gather_pool_stats s;
        ck_assert_int_eq(gather_pool_stats_get(p, &s), 0);
        ck_assert_uint_eq(s.submitted, (uint64_t)ok);
        ck_assert_uint_eq(s.completed, (uint64_t)ok);
        ck_assert_uint_eq(s.cancelled, 0);
        ck_assert_int_eq(gather_pool_destroy(p), 0);
        tu_count_destroy(&progress);
    }
}
END_TEST

START_TEST(test_create_destroy_churn)
{
    int pools = SLOW_BUILD ? 60 : 200;
    for (int i = 0; i < pools; i++) {
        gather_pool *p = tu_pool(1 + (size_t)(i % 2));
        int vals[3] = {i, i + 1, i + 2};
        void *args[3] = {&vals[0], &vals[1], &vals[2]};
        gather_result r[3];
        ck_assert_int_eq(gather_map(p, tu_task_identity, args, 3, r, 0), 0);
        for (int j = 0; j < 3; j++) {
            ck_assert_int_eq(r[j].error, 0);
            ck_assert_ptr_eq(r[j].value, &vals[j]);
        }
        ck_assert_int_eq(gather_pool_destroy(p), 0);
    }
}
END_TEST

START_TEST(test_destroy_right_after_last_submit)
{
    int rounds = SLOW_BUILD ? 300 : 1000;
    for (int i = 0; i < rounds; i++) {
        gather_pool *p = tu_pool(1);
        atomic_long ran = 0;
        gather_future *f = NULL;
        ck_assert_int_eq(gather_submit(p, task_count, &ran, (i & 1) ? &f : NULL), 0);
        ck_assert_int_eq(gather_pool_destroy(p), 0);
        ck_assert_int_eq(LOAD(&ran), 1);
        if (f) {
            ck_assert(gather_future_done(f));
            ck_assert_ptr_eq(gather_future_value(f), &ran);
            gather_future_release(f);
        }
    }
}
END_TEST

/* ---- a task that ends its own thread ----------------------------------- */

static int task_exits_thread(void *arg, void **result)
{
    (void)arg;
    *result = &result; /* never seen: the future reads NULL */
    pthread_exit(NULL);
}

typedef struct exit_parent {
    gather_future *child;
    int child_rc;
} exit_parent;

/* Waits for a subtask that ends the thread: the subtask runs nested on this
 * very thread (a one-thread pool helps), so both end with it. */
static int task_waits_for_exiting_child(void *arg, void **result)
{
    exit_parent *e = (exit_parent *)arg;
    (void)result;
    ck_assert_int_eq(gather_submit(gather_current_pool(), task_exits_thread,
                                   NULL, &e->child), 0);
    e->child_rc = gather_future_wait(e->child, NULL); /* never returns */
    return 0;
}

static void count_arg_free(void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
}

START_TEST(test_task_ending_its_thread_completes_with_eownerdead)
{
    gather_pool *p = tu_pool(1);
    gather_future *f;
    ck_assert_int_eq(gather_submit(p, task_exits_thread, NULL, &f), 0);
    void *value = &value;
    ck_assert_int_eq(gather_future_wait(f, &value), EOWNERDEAD);
    ck_assert_ptr_null(value);
    gather_future_release(f);

    /* The pool replaced the thread: tasks still run, one thread. */
    atomic_int ran = 0;
    ck_assert_int_eq(gather_submit(p, tu_task_count, &ran, &f), 0);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    gather_future_release(f);
    ck_assert_int_eq(atomic_load(&ran), 1);

    /* Nested: the waiting parent ends with its child's thread. */
    exit_parent e = {.child = NULL, .child_rc = -1};
    ck_assert_int_eq(gather_submit(p, task_waits_for_exiting_child, &e, &f), 0);
    ck_assert_int_eq(gather_future_wait(f, NULL), EOWNERDEAD);
    ck_assert_int_eq(gather_future_wait(e.child, NULL), EOWNERDEAD);
    ck_assert_int_eq(e.child_rc, -1);
    gather_future_release(e.child);
    gather_future_release(f);

    /* A task with options: its arg_free still runs, once. */
    atomic_int freed = 0;
    gather_task_options o = {0};
    o.arg_free = count_arg_free;
    ck_assert_int_eq(gather_submit_ex(p, task_exits_thread, &freed, &o, &f), 0);
    ck_assert_int_eq(gather_future_wait(f, NULL), EOWNERDEAD);
    ck_assert_int_eq(atomic_load(&freed), 1);
    gather_future_release(f);

    /* And the last replacement runs tasks too. */
    ck_assert_int_eq(gather_submit(p, tu_task_count, &ran, &f), 0);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    gather_future_release(f);
    ck_assert_int_eq(atomic_load(&ran), 2);
    ck_assert_int_eq(gather_pool_shutdown(p, 0), 0);
    gather_pool_stats st;
    ck_assert_int_eq(gather_pool_stats_get(p, &st), 0);
    ck_assert_uint_eq(st.completed, 6);
    /* Live threads: the replacement (a retiring one is not counted, a
     * replacement may be an instant from counting). */
    ck_assert_uint_le(st.threads, 1);
    ck_assert_uint_eq(gather_pool_threads(p), 1);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("lifecycle");

    TCase *tc = tcase_create("shutdown");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_shutdown_waits_for_running_and_queued_tasks);
    tcase_add_test(tc, test_submit_after_shutdown_is_eshutdown);
    tcase_add_test(tc, test_shutdown_rejects_bad_arguments);
    tcase_add_test(tc, test_tasks_submit_subtasks_while_pool_drains);
    tcase_add_test(tc, test_shutdown_twice_returns_zero_and_destroy_follows);
    suite_add_tcase(s, tc);

    tc = tcase_create("destroy");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_destroy_runs_queued_tasks);
    tcase_add_test(tc, test_futures_outlive_their_pool);
    tcase_add_test(tc, test_shutdown_and_destroy_from_own_task_are_edeadlk);
    tcase_add_test(tc, test_shutdown_from_done_callback_on_pool_thread_is_edeadlk);
    tcase_add_test(tc, test_task_may_shut_down_another_pool);
    tcase_add_test(tc, test_task_ending_its_thread_completes_with_eownerdead);
    suite_add_tcase(s, tc);

    tc = tcase_create("races");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_shutdown_racing_submitters_loses_no_task);
    tcase_add_test(tc, test_create_destroy_churn);
    tcase_add_test(tc, test_destroy_right_after_last_submit);
    suite_add_tcase(s, tc);

    return tu_run_suite(s);
}
