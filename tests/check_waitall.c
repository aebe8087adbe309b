/*
 * check_waitall.c - GATHER_WAIT_ALL (gather_futures, gather_all, gather_map)
 * and gather_futures_for(): asyncio's TaskGroup and wait_for(gather(...)).
 *
 * Pending and running tasks are set up with gated tasks on one-thread pools
 * of their own: a task queued behind a gated one stays pending, a gated one
 * stays running, whatever the scheduler does. A call that must NOT return
 * yet runs on its own thread; the test checks that it has not returned
 * while what it waits for is still gated (bounded by NOT_YET_MS), then
 * opens the gate.
 */
#include "testutil.h"

#include <limits.h>
/* The argument-error tests pass NULL where GATHER_READS declares a read. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wnonnull"
#endif
#include <string.h>

#define NOT_YET_MS 200

static gather_pool *pool1(void)
{
    return tu_pool(1);
}

/* A pool whose only worker is held in a gated task, so that whatever is
 * submitted to it next stays pending until the gate opens. */
typedef struct held_pool {
    gather_pool *pool;
    tu_gate gate;
    tu_count started;
    tu_gated blocker;
    gather_future *blocker_f;
} held_pool;

static void hold(held_pool *h)
{
    h->pool = pool1();
    tu_gate_init(&h->gate);
    tu_count_init(&h->started);
    memset(&h->blocker, 0, sizeof h->blocker);
    h->blocker.gate = &h->gate;
    h->blocker.started = &h->started;
    ck_assert_int_eq(gather_submit(h->pool, tu_task_gated, &h->blocker, &h->blocker_f), 0);
    ck_assert_int_eq(tu_count_wait(&h->started, 1), 0);
}

static void unhold(held_pool *h)
{
    tu_gate_open(&h->gate);
    ck_assert_int_eq(gather_future_wait(h->blocker_f, NULL), 0);
    gather_future_release(h->blocker_f);
    ck_assert_int_eq(gather_pool_destroy(h->pool), 0);
    tu_gate_destroy(&h->gate);
    tu_count_destroy(&h->started);
}

/* A running task (alone on its pool) held at a gate. */
typedef struct running {
    gather_pool *pool;
    tu_gate gate;
    tu_count started;
    tu_gated task;
    gather_future *f;
} running;

static void start_running(running *r, int code)
{
    r->pool = pool1();
    tu_gate_init(&r->gate);
    tu_count_init(&r->started);
    memset(&r->task, 0, sizeof r->task);
    r->task.gate = &r->gate;
    r->task.started = &r->started;
    r->task.code = code;
    r->task.value = &r->task;
    ck_assert_int_eq(gather_submit(r->pool, tu_task_gated, &r->task, &r->f), 0);
    ck_assert_int_eq(tu_count_wait(&r->started, 1), 0);
}

static void end_running(running *r)
{
    tu_gate_open(&r->gate);
    gather_future_wait(r->f, NULL);
    gather_future_release(r->f);
    ck_assert_int_eq(gather_pool_destroy(r->pool), 0);
    tu_gate_destroy(&r->gate);
    tu_count_destroy(&r->started);
}

static gather_future *failed_future(int code)
{
    gather_future *f;
    ck_assert_int_eq(gather_submit(NULL, tu_task_fail, (void *)(intptr_t)code, &f), 0);
    ck_assert_int_eq(gather_future_wait(f, NULL), code);
    return f;
}

/* ---- a gather_futures() / gather_futures_for() call on its own thread --- */

typedef struct call {
    gather_future **fs;
    size_t n;
    unsigned flags;
    uint64_t timeout_ns; /* GATHER_FOREVER: gather_futures() */
    gather_result res[8];
    int rc;
    bool all_done_at_return;
    tu_count returned;
    pthread_t thread;
} call;

static void *call_main(void *arg)
{
    call *c = (call *)arg;
    c->rc = c->timeout_ns == GATHER_FOREVER
                ? gather_futures(c->fs, c->n, c->res, c->flags)
                : gather_futures_for(c->fs, c->n, c->res, c->flags, c->timeout_ns);
    c->all_done_at_return = true;
    for (size_t i = 0; i < c->n; i++)
        c->all_done_at_return = c->all_done_at_return && gather_future_done(c->fs[i]);
    tu_count_add(&c->returned, 1);
    return NULL;
}

static void call_start(call *c, gather_future **fs, size_t n, unsigned flags,
                       uint64_t timeout_ns)
{
    c->fs = fs;
    c->n = n;
    c->flags = flags;
    c->timeout_ns = timeout_ns;
    c->rc = -1;
    tu_count_init(&c->returned);
    ck_assert_int_eq(pthread_create(&c->thread, NULL, call_main, c), 0);
}

static bool call_returned_within(call *c, long ms)
{
    struct timespec dl = tu_deadline_ms(ms);
    return tu_count_reaches(&c->returned, 1, &dl);
}

static void call_join(call *c)
{
    ck_assert_int_eq(pthread_join(c->thread, NULL), 0);
    tu_count_destroy(&c->returned);
}

/* ---- GATHER_WAIT_ALL ----------------------------------------------------- */

START_TEST(test_wait_all_returns_only_when_every_future_is_done)
{
    running slow;
    start_running(&slow, 0);
    gather_future *bad = failed_future(EIO);
    gather_future *fs[2] = {slow.f, bad};
    call c;
    call_start(&c, fs, 2, GATHER_WAIT_ALL, GATHER_FOREVER);
    /* Without the flag it would return EIO at once. */
    ck_assert(!call_returned_within(&c, NOT_YET_MS));
    tu_gate_open(&slow.gate);
    call_join(&c);
    ck_assert_int_eq(c.rc, EIO); /* still the first failure's code */
    ck_assert(c.all_done_at_return);
    ck_assert_int_eq(c.res[0].error, 0);
    ck_assert_ptr_eq(c.res[0].value, &slow.task);
    ck_assert_int_eq(c.res[1].error, EIO);
    ck_assert_int_eq(atomic_load(&slow.task.saw_cancel), 0); /* not cancelled */
    end_running(&slow);
    gather_future_release(bad);
}
END_TEST

START_TEST(test_wait_all_with_cancel_on_error_is_a_task_group)
{
    running r;     /* running when the failure comes: flagged, waited for */
    held_pool h;   /* p queued behind its blocker: cancelled, never runs */
    start_running(&r, ECANCELED);
    hold(&h);
    atomic_int p_ran = 0;
    gather_future *p;
    ck_assert_int_eq(gather_submit(h.pool, tu_task_count, &p_ran, &p), 0);
    running fr;    /* the one that fails, when the test says so */
    start_running(&fr, EPIPE);
    gather_future *fs[3] = {r.f, p, fr.f};
    call c;
    call_start(&c, fs, 3, GATHER_WAIT_ALL | GATHER_CANCEL_ON_ERROR, GATHER_FOREVER);
    tu_gate_open(&fr.gate);
    ck_assert_int_eq(gather_future_wait(fr.f, NULL), EPIPE);
    ck_assert_int_eq(gather_future_wait(p, NULL), ECANCELED); /* cancelled at once */
    ck_assert(gather_future_cancelled(p));
    ck_assert(!call_returned_within(&c, NOT_YET_MS)); /* r still runs */
    tu_gate_open(&r.gate);
    call_join(&c);
    ck_assert_int_eq(c.rc, EPIPE); /* the first failure, not a cancel */
    ck_assert(c.all_done_at_return);
    ck_assert_int_eq(atomic_load(&r.task.saw_cancel), 1);
    ck_assert_int_eq(c.res[0].error, ECANCELED);
    ck_assert(gather_future_cancelled(r.f));
    ck_assert_int_eq(c.res[1].error, ECANCELED);
    ck_assert_int_eq(c.res[2].error, EPIPE);
    unhold(&h);
    ck_assert_int_eq(atomic_load(&p_ran), 0);
    gather_future_release(p);
    end_running(&r);
    end_running(&fr);
}
END_TEST

START_TEST(test_wait_all_with_return_errors_changes_nothing)
{
    gather_future *bad = failed_future(EIO);
    gather_future *good;
    ck_assert_int_eq(gather_submit(NULL, tu_task_identity, &good, &good), 0);
    gather_future *fs[2] = {bad, good};
    gather_result res[2];
    ck_assert_int_eq(gather_futures(fs, 2, res, GATHER_RETURN_ERRORS | GATHER_WAIT_ALL), 0);
    ck_assert_int_eq(res[0].error, EIO);
    ck_assert_int_eq(res[1].error, 0);
    ck_assert_int_eq(gather_futures_for(fs, 2, res, GATHER_RETURN_ERRORS | GATHER_WAIT_ALL,
                                        1000000000u), 0);
    gather_future_release(bad);
    gather_future_release(good);
}
END_TEST

START_TEST(test_gather_all_wait_all_completes_when_every_child_is_done)
{
    running slow;
    start_running(&slow, 0);
    gather_future *bad = failed_future(EIO);
    gather_future *fs[2] = {slow.f, bad};
    gather_future *agg;
    ck_assert_int_eq(gather_all(fs, 2, GATHER_WAIT_ALL, &agg), 0);
    ck_assert(!gather_future_done(agg)); /* slow still runs */
    tu_gate_open(&slow.gate);
    ck_assert_int_eq(gather_future_wait(agg, NULL), EIO);
    gather_result *snap = gather_future_value(agg);
    ck_assert_int_eq(snap[0].error, 0);
    ck_assert_int_eq(snap[1].error, EIO);
    gather_future_release(agg);

    /* And as a TaskGroup: the pending child is cancelled at the failure,
     * the running one flagged and waited for. */
    running r;
    held_pool h;
    start_running(&r, 0);
    hold(&h);
    atomic_int p_ran = 0;
    gather_future *p;
    ck_assert_int_eq(gather_submit(h.pool, tu_task_count, &p_ran, &p), 0);
    running fr;
    start_running(&fr, EPIPE);
    gather_future *gs[3] = {r.f, p, fr.f};
    ck_assert_int_eq(gather_all(gs, 3, GATHER_WAIT_ALL | GATHER_CANCEL_ON_ERROR, &agg), 0);
    tu_gate_open(&fr.gate);
    ck_assert_int_eq(gather_future_wait(p, NULL), ECANCELED);
    ck_assert(!gather_future_done(agg)); /* r still runs */
    tu_gate_open(&r.gate);
    ck_assert_int_eq(gather_future_wait(agg, NULL), EPIPE);
    snap = gather_future_value(agg);
    for (int i = 0; i < 3; i++)
        ck_assert_int_ne(snap[i].error, EINPROGRESS);
    ck_assert_int_eq(atomic_load(&r.task.saw_cancel), 1);
    gather_future_release(agg);
    unhold(&h);
    ck_assert_int_eq(atomic_load(&p_ran), 0);
    gather_future_release(p);
    end_running(&r);
    end_running(&fr);
    end_running(&slow);
    gather_future_release(bad);
}
END_TEST

START_TEST(test_gather_all_wait_all_with_a_failed_child_already_done)
{
    /* The failure is known when gather_all() is called: still waits. */
    running slow;
    start_running(&slow, 0);
    gather_future *bad = failed_future(EIO);
    gather_future *fs[2] = {bad, slow.f};
    gather_future *agg;
    ck_assert_int_eq(gather_all(fs, 2, GATHER_WAIT_ALL | GATHER_CANCEL_ON_ERROR, &agg), 0);
    ck_assert(!gather_future_done(agg));
    tu_gate_open(&slow.gate);
    ck_assert_int_eq(gather_future_wait(agg, NULL), EIO);
    ck_assert_int_eq(atomic_load(&slow.task.saw_cancel), 1);
    gather_future_release(agg);
    end_running(&slow);
    gather_future_release(bad);
}
END_TEST

/* ---- gather_map ---------------------------------------------------------- */

typedef struct map_job {
    tu_gate *gate; /* NULL: returns at once */
    int code;
    atomic_int *finished;
} map_job;

static int job_main(void *arg, void **result)
{
    map_job *j = (map_job *)arg;
    if (j->gate != NULL)
        tu_gate_wait(j->gate);
    *result = arg;
    atomic_fetch_add(j->finished, 1);
    return j->code;
}

typedef struct map_call {
    gather_pool *pool;
    void **args;
    size_t n;
    unsigned flags;
    gather_result *res;
    int rc;
    int finished_at_return;
    atomic_int *finished;
    tu_count returned;
} map_call;

static void *map_main(void *arg)
{
    map_call *m = (map_call *)arg;
    m->rc = gather_map(m->pool, job_main, m->args, m->n, m->res, m->flags);
    m->finished_at_return = atomic_load(m->finished);
    tu_count_add(&m->returned, 1);
    return NULL;
}

START_TEST(test_gather_map_wait_all_returns_when_no_job_runs)
{
    gather_pool *p = tu_pool(2);
    tu_gate gate;
    tu_gate_init(&gate);
    atomic_int finished = 0;
    /* Arguments on this stack: safe with WAIT_ALL. */
    map_job jobs[2] = {{&gate, 0, &finished}, {NULL, EIO, &finished}};
    void *args[2] = {&jobs[0], &jobs[1]};
    gather_result res[2];
    map_call m = {.pool = p, .args = args, .n = 2, .flags = GATHER_WAIT_ALL,
                  .res = res, .rc = -1, .finished_at_return = -1,
                  .finished = &finished};
    tu_count_init(&m.returned);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, map_main, &m), 0);
    struct timespec dl = tu_deadline_ms(NOT_YET_MS);
    ck_assert(!tu_count_reaches(&m.returned, 1, &dl));
    tu_gate_open(&gate);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_int_eq(m.rc, EIO);
    ck_assert_int_eq(m.finished_at_return, 2);
    ck_assert_int_eq(res[0].error, 0);
    ck_assert_int_eq(res[1].error, EIO);
    tu_count_destroy(&m.returned);
    tu_gate_destroy(&gate);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

START_TEST(test_gather_map_task_group_cancels_jobs_not_started)
{
    /* One thread: job 0 fails, the rest are not started yet. */
    gather_pool *p = tu_pool(1);
    atomic_int finished = 0;
    enum { N = 8 };
    map_job jobs[N];
    void *args[N];
    for (int i = 0; i < N; i++) {
        jobs[i] = (map_job){NULL, i == 0 ? EIO : 0, &finished};
        args[i] = &jobs[i];
    }
    gather_result res[N];
    ck_assert_int_eq(gather_map(p, job_main, args, N, res,
                                GATHER_WAIT_ALL | GATHER_CANCEL_ON_ERROR), EIO);
    ck_assert_int_eq(res[0].error, EIO);
    for (int i = 1; i < N; i++)
        ck_assert_int_eq(res[i].error, ECANCELED);
    ck_assert_int_eq(atomic_load(&finished), 1);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

/* ---- every code is kept --------------------------------------------------- */

static int job_code(void *arg, void **result)
{
    *result = NULL;
    return (int)(intptr_t)arg;
}

START_TEST(test_int_min_is_kept_as_is)
{
    void *args[3] = {(void *)(intptr_t)INT_MIN, (void *)(intptr_t)(INT_MIN + 1),
                     (void *)(intptr_t)INT_MAX};
    gather_result res[3];
    ck_assert_int_eq(gather_map(NULL, job_code, args, 3, res, GATHER_RETURN_ERRORS), 0);
    ck_assert_int_eq(res[0].error, INT_MIN);
    ck_assert_int_eq(res[1].error, INT_MIN + 1);
    ck_assert_int_eq(res[2].error, INT_MAX);
    ck_assert_int_eq(gather_map(NULL, job_code, args, 1, res, GATHER_WAIT_ALL), INT_MIN);
    gather_future *f;
    ck_assert_int_eq(gather_submit(NULL, job_code, args[0], &f), 0);
    ck_assert_int_eq(gather_future_wait(f, NULL), INT_MIN);
    gather_future_release(f);
}
END_TEST

/* ---- gather_futures_for -------------------------------------------------- */

START_TEST(test_futures_for_times_out_with_a_snapshot)
{
    running g;
    start_running(&g, 7);
    gather_future *d;
    ck_assert_int_eq(gather_submit(NULL, tu_task_identity, &d, &d), 0);
    ck_assert_int_eq(gather_future_wait(d, NULL), 0);
    gather_future *fs[2] = {g.f, d};
    gather_result res[2];
    ck_assert_int_eq(gather_futures_for(fs, 2, res, 0, 1000000u), ETIMEDOUT);
    ck_assert_int_eq(res[0].error, EINPROGRESS);
    ck_assert_ptr_null(res[0].value);
    ck_assert_int_eq(res[1].error, 0);
    ck_assert_ptr_eq(res[1].value, &d);
    /* A zero timeout only looks. */
    memset(res, 0, sizeof res);
    ck_assert_int_eq(gather_futures_for(fs, 2, res, GATHER_WAIT_ALL, 0), ETIMEDOUT);
    ck_assert_int_eq(res[0].error, EINPROGRESS);
    ck_assert_int_eq(gather_futures_for(&d, 1, res, 0, 0), 0);
    /* The task was not cancelled: it finishes with its own code. */
    tu_gate_open(&g.gate);
    ck_assert_int_eq(gather_future_wait(g.f, NULL), 7);
    ck_assert(!gather_future_cancelled(g.f));
    ck_assert_int_eq(atomic_load(&g.task.saw_cancel), 0);
    ck_assert_int_eq(gather_futures_for(fs, 2, res, GATHER_RETURN_ERRORS, GATHER_FOREVER), 0);
    ck_assert_int_eq(res[0].error, 7);
    end_running(&g);
    gather_future_release(d);
}
END_TEST

START_TEST(test_futures_for_returns_a_failure_before_the_deadline)
{
    running g;
    start_running(&g, 0);
    gather_future *bad = failed_future(EIO);
    gather_future *fs[2] = {g.f, bad};
    gather_result res[2];
    ck_assert_int_eq(gather_futures_for(fs, 2, res, 0, 30ull * 1000000000u), EIO);
    ck_assert_int_eq(res[0].error, EINPROGRESS);
    ck_assert_int_eq(res[1].error, EIO);
    end_running(&g);
    gather_future_release(bad);
}
END_TEST

START_TEST(test_futures_for_cancel_on_error_cancels_at_the_deadline)
{
    running r;
    held_pool h;
    start_running(&r, 0);
    hold(&h);
    atomic_int p_ran = 0;
    gather_future *p;
    ck_assert_int_eq(gather_submit(h.pool, tu_task_count, &p_ran, &p), 0);
    gather_future *fs[2] = {r.f, p};
    gather_result res[2];
    ck_assert_int_eq(gather_futures_for(fs, 2, res, GATHER_CANCEL_ON_ERROR, 1000000u),
                     ETIMEDOUT);
    /* The snapshot is taken after the cancels. */
    ck_assert_int_eq(res[0].error, EINPROGRESS);
    ck_assert_int_eq(res[1].error, ECANCELED);
    ck_assert(gather_future_cancelled(p));
    tu_gate_open(&r.gate);
    ck_assert_int_eq(gather_future_wait(r.f, NULL), 0);
    ck_assert_int_eq(atomic_load(&r.task.saw_cancel), 1);

    /* TaskGroup with a deadline: the failure cancels the others; a running
     * one still holds the call at the deadline, which returns ETIMEDOUT. */
    running r2, fr;
    start_running(&r2, 0);
    start_running(&fr, EPIPE);
    gather_future *gs[2] = {r2.f, fr.f};
    tu_gate_open(&fr.gate);
    ck_assert_int_eq(gather_future_wait(fr.f, NULL), EPIPE);
    ck_assert_int_eq(gather_futures_for(gs, 2, res, GATHER_WAIT_ALL | GATHER_CANCEL_ON_ERROR,
                                        20000000u), ETIMEDOUT);
    ck_assert_int_eq(res[0].error, EINPROGRESS);
    ck_assert_int_eq(res[1].error, EPIPE);
    tu_gate_open(&r2.gate);
    ck_assert_int_eq(gather_future_wait(r2.f, NULL), 0);
    ck_assert_int_eq(atomic_load(&r2.task.saw_cancel), 1);

    unhold(&h);
    ck_assert_int_eq(atomic_load(&p_ran), 0);
    gather_future_release(p);
    end_running(&r);
    end_running(&r2);
    end_running(&fr);
}
END_TEST

START_TEST(test_futures_for_argument_errors)
{
    gather_future *d;
    ck_assert_int_eq(gather_submit(NULL, tu_task_identity, &d, &d), 0);
    gather_future *fs[2] = {d, NULL};
    gather_result res[2];
    ck_assert_int_eq(gather_futures_for(NULL, 1, res, 0, 0), EINVAL);
    ck_assert_int_eq(gather_futures_for(fs, 2, res, 0, 0), EINVAL);
    ck_assert_int_eq(gather_futures_for(fs, 1, res, 8u, 0), EINVAL);
    ck_assert_int_eq(gather_futures_for(fs, 1, res, GATHER_RETURN_ERRORS | GATHER_CANCEL_ON_ERROR,
                                        0), EINVAL);
    ck_assert_int_eq(gather_futures_for(NULL, 0, NULL, 0, 0), 0);
    ck_assert_int_eq(gather_futures_for(NULL, 0, NULL, 8u, 0), EINVAL);
    ck_assert_int_eq(gather_futures_for(fs, 1, NULL, 0, GATHER_FOREVER), 0);
    gather_future_release(d);
}
END_TEST

/* A task: gather_futures_for over its subtasks (helping runs them here). */
static int task_futures_for(void *arg, void **result)
{
    (void)arg;
    gather_future *sub[4];
    for (int i = 0; i < 4; i++)
        if (gather_submit(gather_current_pool(), tu_task_identity, &sub[i], &sub[i]) != 0)
            return ENOMEM;
    gather_result res[4];
    int rc = gather_futures_for(sub, 4, res, 0, 30ull * 1000000000u);
    for (int i = 0; i < 4; i++) {
        if (rc == 0 && res[i].value != &sub[i])
            rc = EBADMSG;
        gather_future_release(sub[i]);
    }
    *result = NULL;
    return rc;
}

typedef struct self_ref {
    gather_future *_Atomic me;
    tu_gate gate;
    int rc;
} self_ref;

static int task_lists_itself(void *arg, void **result)
{
    self_ref *s = (self_ref *)arg;
    tu_gate_wait(&s->gate);
    gather_future *me = atomic_load(&s->me);
    s->rc = gather_futures_for(&me, 1, NULL, 0, 1000000u);
    *result = NULL;
    return 0;
}

START_TEST(test_futures_for_on_a_pool_thread)
{
    gather_pool *p = pool1(); /* helping: the subtasks run on this thread */
    gather_future *f;
    ck_assert_int_eq(gather_submit(p, task_futures_for, NULL, &f), 0);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    gather_future_release(f);

    self_ref s = {.rc = -1};
    tu_gate_init(&s.gate);
    ck_assert_int_eq(gather_submit(p, task_lists_itself, &s, &f), 0);
    atomic_store(&s.me, f);
    tu_gate_open(&s.gate);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    ck_assert_int_eq(s.rc, EDEADLK);
    gather_future_release(f);
    tu_gate_destroy(&s.gate);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("waitall");
    TCase *tc = tcase_create("wait_all");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_wait_all_returns_only_when_every_future_is_done);
    tcase_add_test(tc, test_wait_all_with_cancel_on_error_is_a_task_group);
    tcase_add_test(tc, test_wait_all_with_return_errors_changes_nothing);
    tcase_add_test(tc, test_gather_all_wait_all_completes_when_every_child_is_done);
    tcase_add_test(tc, test_gather_all_wait_all_with_a_failed_child_already_done);
    tcase_add_test(tc, test_gather_map_wait_all_returns_when_no_job_runs);
    tcase_add_test(tc, test_gather_map_task_group_cancels_jobs_not_started);
    tcase_add_test(tc, test_int_min_is_kept_as_is);
    suite_add_tcase(s, tc);

    tc = tcase_create("futures_for");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_futures_for_times_out_with_a_snapshot);
    tcase_add_test(tc, test_futures_for_returns_a_failure_before_the_deadline);
    tcase_add_test(tc, test_futures_for_cancel_on_error_cancels_at_the_deadline);
    tcase_add_test(tc, test_futures_for_argument_errors);
    tcase_add_test(tc, test_futures_for_on_a_pool_thread);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
