/* SPDX-License-Identifier: MIT */
/*
 * check_nesting.c - tasks that wait for other tasks: recursive fib with every
 * way of waiting (gather_futures, gather_future_wait, gather_all,
 * gather_map, gather_wait_any), on one- and two-thread pools where only
 * helping avoids deadlock; deep chains; waits across pools;
 * gather_current_pool().
 */
#include "testutil.h"

#include <sched.h>
#include <string.h>

/* Facts recorded by tasks, asserted by the test thread. */
static atomic_int nest_errors;      /* an unexpected return code or value */
static atomic_int pool_mismatch;    /* gather_current_pool() was wrong */
static atomic_long subtasks;        /* successful gather_submit calls */
static gather_pool *expected_pool;  /* set before the first submit */

static void note_error(void) { atomic_fetch_add(&nest_errors, 1); }

static void reset_facts(gather_pool *p)
{
    atomic_store(&nest_errors, 0);
    atomic_store(&pool_mismatch, 0);
    atomic_store(&subtasks, 0);
    expected_pool = p;
}

static void check_pool(void)
{
    if (gather_current_pool() != expected_pool)
        atomic_fetch_add(&pool_mismatch, 1);
}

static intptr_t fib_ref(int n)
{
    intptr_t a = 0, b = 1;
    for (int i = 0; i < n; i++) {
        intptr_t t = a + b;
        a = b;
        b = t;
    }
    return a;
}

/* ---- fib ---------------------------------------------------------------- */

enum {
    FIB_GATHER = 0, /* both halves as subtasks, gather_futures */
    FIB_WAIT = 1,   /* fib(n-1) as subtask, fib(n-2) inline, future_wait */
    FIB_ALL = 2,    /* both halves as subtasks, gather_all, wait aggregate */
    FIB_MAP = 3,    /* gather_map over {n-1, n-2} */
    FIB_MIXED = 4   /* one of the above by n % 4 */
};

#define FIB_ARG(n, mode) ((void *)(intptr_t)((n) | ((mode) << 8)))

static int fib_task(void *arg, void **result);

static int submit_counted(gather_fn fn, void *arg, gather_future **f)
{
    int rc = gather_submit(gather_current_pool(), fn, arg, f);
    if (rc == 0)
        atomic_fetch_add(&subtasks, 1);
    else
        note_error();
    return rc;
}

static intptr_t fib_inline(int n, int mode)
{
    void *v = NULL;
    if (fib_task(FIB_ARG(n, mode), &v) != 0)
        note_error();
    return (intptr_t)v;
}

static int fib_task(void *arg, void **result)
{
    intptr_t a = (intptr_t)arg;
    int n = (int)(a & 0xff);
    int mode = (int)(a >> 8);
    check_pool();
    if (n < 2) {
        *result = (void *)(intptr_t)n;
        return 0;
    }
    if (mode == FIB_MIXED) {
        static const int modes[4] = {FIB_GATHER, FIB_WAIT, FIB_ALL, FIB_MAP};
        int m = modes[n % 4];
        /* Children stay mixed. */
        intptr_t sum = 0;
        if (m == FIB_WAIT) {
            gather_future *f = NULL;
            if (submit_counted(fib_task, FIB_ARG(n - 1, FIB_MIXED), &f) != 0)
                return 1;
            sum = fib_inline(n - 2, FIB_MIXED);
            void *v = NULL;
            if (gather_future_wait(f, &v) != 0)
                note_error();
            gather_future_release(f);
            *result = (void *)(sum + (intptr_t)v);
            return 0;
        }
        /* The chosen way of waiting, with mixed children. */
        gather_future *fs[2] = {NULL, NULL};
        gather_result res[2] = {{-1, NULL}, {-1, NULL}};
        if (m == FIB_MAP) {
            void *args[2] = {FIB_ARG(n - 1, FIB_MIXED), FIB_ARG(n - 2, FIB_MIXED)};
            if (gather_map(gather_current_pool(), fib_task, args, 2, res, 0) != 0)
                note_error();
            atomic_fetch_add(&subtasks, 2);
        } else {
            if (submit_counted(fib_task, FIB_ARG(n - 1, FIB_MIXED), &fs[0]) != 0 ||
                submit_counted(fib_task, FIB_ARG(n - 2, FIB_MIXED), &fs[1]) != 0)
                return 1;
            if (m == FIB_GATHER) {
                if (gather_futures(fs, 2, res, 0) != 0)
                    note_error();
            } else {
                gather_future *agg = NULL;
                if (gather_all(fs, 2, 0, &agg) != 0)
                    return 1;
                void *v = NULL;
                if (gather_future_wait(agg, &v) != 0 || v == NULL)
                    note_error();
                else
                    memcpy(res, v, sizeof res);
                gather_future_release(agg);
            }
            gather_future_release(fs[0]);
            gather_future_release(fs[1]);
        }
        if (res[0].error != 0 || res[1].error != 0)
            note_error();
        *result = (void *)((intptr_t)res[0].value + (intptr_t)res[1].value);
        return 0;
    }

    switch (mode) {
    case FIB_GATHER: {
        gather_future *fs[2] = {NULL, NULL};
        if (submit_counted(fib_task, FIB_ARG(n - 1, mode), &fs[0]) != 0 ||
            submit_counted(fib_task, FIB_ARG(n - 2, mode), &fs[1]) != 0)
            return 1;
        gather_result res[2];
        if (gather_futures(fs, 2, res, 0) != 0 || res[0].error || res[1].error)
            note_error();
        gather_future_release(fs[0]);
        gather_future_release(fs[1]);
        *result = (void *)((intptr_t)res[0].value + (intptr_t)res[1].value);
        return 0;
    }
    case FIB_WAIT: {
        gather_future *f = NULL;
        if (submit_counted(fib_task, FIB_ARG(n - 1, mode), &f) != 0)
            return 1;
        intptr_t other = fib_inline(n - 2, mode);
        void *v = NULL;
        if (gather_future_wait(f, &v) != 0)
            note_error();
        gather_future_release(f);
        *result = (void *)(other + (intptr_t)v);
        return 0;
    }
    case FIB_ALL: {
        gather_future *fs[2] = {NULL, NULL};
        if (submit_counted(fib_task, FIB_ARG(n - 1, mode), &fs[0]) != 0 ||
            submit_counted(fib_task, FIB_ARG(n - 2, mode), &fs[1]) != 0)
            return 1;
        gather_future *agg = NULL;
        if (gather_all(fs, 2, 0, &agg) != 0) {
            note_error();
            return 1;
        }
        /* The aggregate keeps the children alive. */
        gather_future_release(fs[0]);
        gather_future_release(fs[1]);
        void *v = NULL;
        intptr_t sum = 0;
        if (gather_future_wait(agg, &v) != 0 || v == NULL) {
            note_error();
        } else {
            gather_result *r = (gather_result *)v;
            if (r[0].error || r[1].error)
                note_error();
            sum = (intptr_t)r[0].value + (intptr_t)r[1].value;
        }
        gather_future_release(agg);
        *result = (void *)sum;
        return 0;
    }
    case FIB_MAP: {
        void *args[2] = {FIB_ARG(n - 1, mode), FIB_ARG(n - 2, mode)};
        gather_result res[2];
        if (gather_map(gather_current_pool(), fib_task, args, 2, res, 0) != 0 ||
            res[0].error || res[1].error)
            note_error();
        atomic_fetch_add(&subtasks, 2);
        *result = (void *)((intptr_t)res[0].value + (intptr_t)res[1].value);
        return 0;
    }
    default:
        note_error();
        return 1;
    }
}

static void run_fib(size_t threads, int n, int mode)
{
    gather_pool *p = tu_pool(threads);
    reset_facts(p);
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, fib_task, FIB_ARG(n, mode), &f), 0);
    void *v = NULL;
    ck_assert_int_eq(gather_future_wait(f, &v), 0);
    ck_assert_int_eq((intptr_t)v, fib_ref(n));
    ck_assert_int_eq(atomic_load(&nest_errors), 0);
    ck_assert_int_eq(atomic_load(&pool_mismatch), 0);
    ck_assert_int_eq(gather_pool_shutdown(p, 0), 0);
    gather_pool_stats st;
    ck_assert_int_eq(gather_pool_stats_get(p, &st), 0);
    uint64_t total = 1 + (uint64_t)atomic_load(&subtasks);
    ck_assert_uint_eq(st.submitted, total);
    ck_assert_uint_eq(st.completed, total);
    ck_assert_uint_eq(st.cancelled, 0);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    gather_future_release(f);
}

START_TEST(test_fib_gather_futures_one_thread)
{
    run_fib(1, 15, FIB_GATHER);
}
END_TEST

START_TEST(test_fib_gather_futures_two_threads)
{
    run_fib(2, 18, FIB_GATHER);
}
END_TEST

START_TEST(test_fib_future_wait_one_thread)
{
    run_fib(1, 16, FIB_WAIT);
}
END_TEST

START_TEST(test_fib_future_wait_two_threads)
{
    run_fib(2, 18, FIB_WAIT);
}
END_TEST

START_TEST(test_fib_gather_all_one_thread)
{
    run_fib(1, 15, FIB_ALL);
}
END_TEST

START_TEST(test_fib_gather_all_two_threads)
{
    run_fib(2, 17, FIB_ALL);
}
END_TEST

START_TEST(test_fib_gather_map_one_thread)
{
    run_fib(1, 15, FIB_MAP);
}
END_TEST

START_TEST(test_fib_gather_map_two_threads)
{
    run_fib(2, 17, FIB_MAP);
}
END_TEST

START_TEST(test_fib_mixed_waits_two_threads)
{
    run_fib(2, 17, FIB_MIXED);
}
END_TEST

START_TEST(test_fib_mixed_waits_one_thread)
{
    run_fib(1, 15, FIB_MIXED);
}
END_TEST

/* ---- one task gathering many subtasks on a one-thread pool -------------- */

static int square_task(void *arg, void **result)
{
    check_pool();
    intptr_t x = (intptr_t)arg;
    *result = (void *)(x * x);
    return 0;
}

typedef struct fan {
    int n;
    int rc;
    int bad_entries;
    intptr_t sum;
} fan;

static int fan_out_task(void *arg, void **result)
{
    fan *fo = (fan *)arg;
    check_pool();
    gather_future *fs[64];
    for (int i = 0; i < fo->n; i++)
        if (submit_counted(square_task, (void *)(intptr_t)(i + 1), &fs[i]) != 0)
            return 1;
    gather_result res[64];
    fo->rc = gather_futures(fs, (size_t)fo->n, res, 0);
    fo->sum = 0;
    fo->bad_entries = 0;
    for (int i = 0; i < fo->n; i++) {
        if (res[i].error != 0 ||
            res[i].value != (void *)(intptr_t)((i + 1) * (i + 1)))
            fo->bad_entries++;
        fo->sum += (intptr_t)res[i].value;
        gather_future_release(fs[i]);
    }
    check_pool(); /* still right after helping */
    *result = fo;
    return 0;
}

START_TEST(test_task_gathers_subtasks_on_one_thread_pool)
{
    gather_pool *p = tu_pool(1);
    reset_facts(p);
    fan fo = {.n = 40, .rc = -1};
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, fan_out_task, &fo, &f), 0);
    void *v = NULL;
    ck_assert_int_eq(gather_future_wait(f, &v), 0);
    ck_assert_ptr_eq(v, &fo);
    ck_assert_int_eq(fo.rc, 0);
    ck_assert_int_eq(fo.bad_entries, 0);
    ck_assert_int_eq(fo.sum, 40 * 41 * 81 / 6);
    ck_assert_int_eq(atomic_load(&pool_mismatch), 0);
    ck_assert_int_eq(atomic_load(&nest_errors), 0);
    gather_future_release(f);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

/* Several fan-out tasks on a one-thread pool, each gathering its own
 * subtasks, all gathered by one more task: waits nested in waits. */
static int fan_of_fans_task(void *arg, void **result)
{
    fan *fans = (fan *)arg;
    gather_future *fs[4];
    for (int i = 0; i < 4; i++)
        if (submit_counted(fan_out_task, &fans[i], &fs[i]) != 0)
            return 1;
    int rc = gather_futures(fs, 4, NULL, GATHER_RETURN_ERRORS);
    for (int i = 0; i < 4; i++)
        gather_future_release(fs[i]);
    *result = NULL;
    return rc;
}

START_TEST(test_nested_fan_out_on_one_thread_pool)
{
    gather_pool *p = tu_pool(1);
    reset_facts(p);
    fan fans[4];
    for (int i = 0; i < 4; i++)
        fans[i] = (fan){.n = 10 + i, .rc = -1};
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, fan_of_fans_task, fans, &f), 0);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    for (int i = 0; i < 4; i++) {
        intptr_t m = 10 + i;
        ck_assert_int_eq(fans[i].rc, 0);
        ck_assert_int_eq(fans[i].bad_entries, 0);
        ck_assert_int_eq(fans[i].sum, m * (m + 1) * (2 * m + 1) / 6);
    }
    ck_assert_int_eq(atomic_load(&pool_mismatch), 0);
    ck_assert_int_eq(atomic_load(&nest_errors), 0);
    gather_future_release(f);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

/* ---- a chain of 100 tasks, each waiting for its single child ------------ */

static int chain_task(void *arg, void **result)
{
    intptr_t d = (intptr_t)arg;
    check_pool();
    if (d == 0) {
        *result = NULL;
        return 0;
    }
    gather_future *f = NULL;
    if (submit_counted(chain_task, (void *)(d - 1), &f) != 0)
        return 1;
    void *v = NULL;
    int rc;
    if (d % 2 == 0) {
        rc = gather_future_wait(f, &v);
    } else {
        gather_result r = {-1, NULL};
        gather_future *l[1] = {f};
        rc = gather_futures(l, 1, &r, 0);
        v = r.value;
        if (rc == 0 && r.error != 0)
            rc = r.error;
    }
    gather_future_release(f);
    if (rc != 0)
        note_error();
    *result = (void *)(d + (intptr_t)v);
    return rc;
}

START_TEST(test_deep_chain_of_waits_on_one_thread_pool)
{
    enum { DEPTH = 100 };
    gather_pool *p = tu_pool(1);
    reset_facts(p);
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, chain_task, (void *)(intptr_t)DEPTH, &f), 0);
    void *v = NULL;
    ck_assert_int_eq(gather_future_wait(f, &v), 0);
    ck_assert_int_eq((intptr_t)v, DEPTH * (DEPTH + 1) / 2);
    ck_assert_int_eq(atomic_load(&nest_errors), 0);
    ck_assert_int_eq(atomic_load(&pool_mismatch), 0);
    ck_assert_int_eq(atomic_load(&subtasks), DEPTH);
    gather_future_release(f);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

/* ---- wait_any inside a task --------------------------------------------- */

typedef struct any_job {
    int rounds;
    int order_violations; /* a lower index done than the one reported */
    int rc_errors;
    intptr_t sum;
} any_job;

static int wait_any_task(void *arg, void **result)
{
    enum { N = 6 };
    any_job *aj = (any_job *)arg;
    gather_future *fs[N];
    for (int i = 0; i < N; i++)
        if (submit_counted(square_task, (void *)(intptr_t)(i + 1), &fs[i]) != 0)
            return 1;
    gather_future *left[N];
    int nleft = N;
    memcpy(left, fs, sizeof fs);
    aj->sum = 0;
    while (nleft > 0) {
        size_t idx = 1000;
        int rc = gather_wait_any(left, (size_t)nleft, GATHER_FOREVER, &idx);
        aj->rounds++;
        if (rc != 0 || idx >= (size_t)nleft) {
            aj->rc_errors++;
            break;
        }
        /* One thread: nothing else runs now, so the answer still holds. */
        if (!gather_future_done(left[idx]))
            aj->order_violations++;
        for (size_t j = 0; j < idx; j++)
            if (gather_future_done(left[j]))
                aj->order_violations++;
        aj->sum += (intptr_t)gather_future_value(left[idx]);
        left[idx] = left[--nleft];
    }
    for (int i = 0; i < N; i++)
        gather_future_release(fs[i]);
    *result = aj;
    return 0;
}

START_TEST(test_wait_any_inside_task_helps)
{
    gather_pool *p = tu_pool(1);
    reset_facts(p);
    any_job aj;
    memset(&aj, 0, sizeof aj);
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, wait_any_task, &aj, &f), 0);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    ck_assert_int_eq(aj.rc_errors, 0);
    ck_assert_int_eq(aj.order_violations, 0);
    ck_assert_int_eq(aj.rounds, 6);
    ck_assert_int_eq(aj.sum, 1 + 4 + 9 + 16 + 25 + 36);
    ck_assert_int_eq(atomic_load(&pool_mismatch), 0);
    gather_future_release(f);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

/* ---- across pools ------------------------------------------------------- */

static gather_pool *pool_a, *pool_b;

typedef struct cross_job {
    gather_pool *target; /* where the subtasks go */
    int rc;
    int bad;
    intptr_t sum;
} cross_job;

static int pool_tag_task(void *arg, void **result)
{
    /* Value: the pool it ran on. */
    (void)arg;
    *result = gather_current_pool();
    return 0;
}

static int cross_task(void *arg, void **result)
{
    cross_job *cj = (cross_job *)arg;
    gather_future *fs[8];
    for (int i = 0; i < 8; i++)
        if (gather_submit(cj->target, pool_tag_task, NULL, &fs[i]) != 0)
            return 1;
    gather_result res[8];
    cj->rc = gather_futures(fs, 8, res, 0);
    for (int i = 0; i < 8; i++) {
        if (res[i].error != 0 || res[i].value != cj->target)
            cj->bad++;
        gather_future_release(fs[i]);
    }
    /* And with a plain wait and wait_any. */
    gather_future *g = NULL;
    if (gather_submit(cj->target, pool_tag_task, NULL, &g) != 0)
        return 1;
    size_t idx = 5;
    if (gather_wait_any(&g, 1, GATHER_FOREVER, &idx) != 0 || idx != 0)
        cj->bad++;
    void *v = NULL;
    if (gather_future_wait(g, &v) != 0 || v != cj->target)
        cj->bad++;
    gather_future_release(g);
    *result = gather_current_pool();
    return 0;
}

START_TEST(test_task_waits_for_futures_of_another_pool)
{
    pool_a = tu_pool(1);
    pool_b = tu_pool(1);
    cross_job cj = {.target = pool_b, .rc = -1};
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(pool_a, cross_task, &cj, &f), 0);
    void *v = NULL;
    ck_assert_int_eq(gather_future_wait(f, &v), 0);
    ck_assert_ptr_eq(v, pool_a);
    ck_assert_int_eq(cj.rc, 0);
    ck_assert_int_eq(cj.bad, 0);
    gather_future_release(f);
    ck_assert_int_eq(gather_pool_destroy(pool_a), 0);
    ck_assert_int_eq(gather_pool_destroy(pool_b), 0);
}
END_TEST

/* A task on A waits for a task on B, which waits for a task on A, ...:
 * the waiting thread of A must run A's new task while it waits. */
static int ping_pong_task(void *arg, void **result)
{
    intptr_t d = (intptr_t)arg;
    gather_pool *here = (d % 2 == 0) ? pool_a : pool_b;
    gather_pool *there = (d % 2 == 0) ? pool_b : pool_a;
    if (gather_current_pool() != here)
        atomic_fetch_add(&pool_mismatch, 1);
    if (d == 0) {
        *result = NULL;
        return 0;
    }
    gather_future *f = NULL;
    if (gather_submit(there, ping_pong_task, (void *)(d - 1), &f) != 0) {
        note_error();
        return 1;
    }
    void *v = NULL;
    int rc = gather_future_wait(f, &v);
    gather_future_release(f);
    if (rc != 0)
        note_error();
    *result = (void *)(d + (intptr_t)v);
    return rc;
}

START_TEST(test_cross_pool_ping_pong_one_thread_each)
{
    enum { DEPTH = 12 };
    pool_a = tu_pool(1);
    pool_b = tu_pool(1);
    reset_facts(NULL);
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(pool_a, ping_pong_task,
                                   (void *)(intptr_t)DEPTH, &f), 0);
    void *v = NULL;
    ck_assert_int_eq(gather_future_wait(f, &v), 0);
    ck_assert_int_eq((intptr_t)v, DEPTH * (DEPTH + 1) / 2);
    ck_assert_int_eq(atomic_load(&nest_errors), 0);
    ck_assert_int_eq(atomic_load(&pool_mismatch), 0);
    gather_future_release(f);
    ck_assert_int_eq(gather_pool_destroy(pool_a), 0);
    ck_assert_int_eq(gather_pool_destroy(pool_b), 0);
}
END_TEST

/* ---- gather_current_pool / gather_pool_threads -------------------------- */

START_TEST(test_current_pool_is_null_outside_tasks)
{
    ck_assert_ptr_null(gather_current_pool());
    gather_pool *p = tu_pool(2);
    ck_assert_ptr_null(gather_current_pool());
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, pool_tag_task, NULL, &f), 0);
    void *v = NULL;
    ck_assert_int_eq(gather_future_wait(f, &v), 0);
    ck_assert_ptr_eq(v, p);
    ck_assert_ptr_null(gather_current_pool());
    gather_future_release(f);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    ck_assert_ptr_null(gather_current_pool());
}
END_TEST

START_TEST(test_current_pool_inside_tasks_is_their_pool)
{
    gather_pool *p1 = tu_pool(1);
    gather_pool *p3 = tu_pool(3);
    enum { N = 12 };
    gather_future *f1[N], *f3[N], *fd[N];
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(gather_submit(p1, pool_tag_task, NULL, &f1[i]), 0);
        ck_assert_int_eq(gather_submit(p3, pool_tag_task, NULL, &f3[i]), 0);
        ck_assert_int_eq(gather_submit(NULL, pool_tag_task, NULL, &fd[i]), 0);
    }
    gather_result r1[N], r3[N], rd[N];
    ck_assert_int_eq(gather_futures(f1, N, r1, 0), 0);
    ck_assert_int_eq(gather_futures(f3, N, r3, 0), 0);
    ck_assert_int_eq(gather_futures(fd, N, rd, 0), 0);
    gather_pool *dflt = (gather_pool *)rd[0].value;
    ck_assert_ptr_nonnull(dflt);
    ck_assert_ptr_ne(dflt, p1);
    ck_assert_ptr_ne(dflt, p3);
    for (int i = 0; i < N; i++) {
        ck_assert_ptr_eq(r1[i].value, p1);
        ck_assert_ptr_eq(r3[i].value, p3);
        ck_assert_ptr_eq(rd[i].value, dflt);
        gather_future_release(f1[i]);
        gather_future_release(f3[i]);
        gather_future_release(fd[i]);
    }
    /* The default pool's threads report the same pool as NULL does. */
    ck_assert_uint_eq(gather_pool_threads(dflt), gather_pool_threads(NULL));
    /* Nested tasks too (checked inside the fan-out tasks). */
    reset_facts(p3);
    fan fo = {.n = 30, .rc = -1};
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p3, fan_out_task, &fo, &f), 0);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    ck_assert_int_eq(fo.bad_entries, 0);
    ck_assert_int_eq(atomic_load(&pool_mismatch), 0);
    gather_future_release(f);
    ck_assert_int_eq(gather_pool_destroy(p1), 0);
    ck_assert_int_eq(gather_pool_destroy(p3), 0);
}
END_TEST

START_TEST(test_pool_threads_reports_thread_count)
{
    for (size_t k = 1; k <= 4; k++) {
        gather_pool *p = tu_pool(k);
        ck_assert_uint_eq(gather_pool_threads(p), k);
        ck_assert_int_eq(gather_pool_destroy(p), 0);
    }
    cpu_set_t set;
    CPU_ZERO(&set);
    ck_assert_int_eq(sched_getaffinity(0, sizeof set, &set), 0);
    gather_pool *p = tu_pool(0);
    ck_assert_uint_eq(gather_pool_threads(p), (size_t)CPU_COUNT(&set));
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    ck_assert_uint_ge(gather_pool_threads(NULL), 1);
}
END_TEST

/* ---- review regressions ---------------------------------------------------- */

#define MANY_WAITERS (TU_SANITIZED ? 3000 : 20000)

typedef struct shared_wait {
    gather_future *shared; /* a gated task every waiter waits for */
    tu_count entered;
} shared_wait;

static int task_wait_shared(void *arg, void **result)
{
    shared_wait *sw = arg;
    tu_count_add(&sw->entered, 1);
    void *v = NULL;
    int rc = gather_future_wait(sw->shared, &v);
    *result = v;
    return rc;
}

typedef struct map_call {
    gather_pool *pool;
    void **args;
    gather_result *results;
    int rc;
} map_call;

static void *run_map(void *arg)
{
    map_call *m = arg;
    m->rc = gather_map(m->pool, task_wait_shared, m->args, MANY_WAITERS,
                       m->results, GATHER_RETURN_ERRORS);
    return NULL;
}

/* Many queued tasks that each wait for one gated task: helping must not
 * nest them without bound on a worker's stack (it used to overflow). The
 * stack is small on purpose; the gate opens once helping has nested some. */
START_TEST(test_helping_many_waiters_does_not_overflow_small_stack)
{
    gather_pool_options o = {0};
    o.threads = 2;
    o.stack_size = 512 * 1024;
    gather_pool *p = NULL;
    ck_assert_int_eq(gather_pool_create(&p, &o), 0);
    tu_gate gate;
    tu_gate_init(&gate);
    tu_gated held = {.gate = &gate, .value = &gate};
    shared_wait sw;
    tu_count_init(&sw.entered);
    ck_assert_int_eq(gather_submit(p, tu_task_gated, &held, &sw.shared), 0);

    map_call m = {.pool = p};
    m.args = malloc(MANY_WAITERS * sizeof *m.args);
    m.results = malloc(MANY_WAITERS * sizeof *m.results);
    ck_assert_ptr_nonnull(m.args);
    ck_assert_ptr_nonnull(m.results);
    for (size_t i = 0; i < MANY_WAITERS; i++)
        m.args[i] = &sw;
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, run_map, &m), 0);
    /* A waiter has started on the free worker (how many nest depends on
     * frame sizes: sanitizers nest fewer). */
    ck_assert_int_eq(tu_count_wait(&sw.entered, 1), 0);
    tu_gate_open(&gate);
    pthread_join(t, NULL);
    ck_assert_int_eq(m.rc, 0);
    for (size_t i = 0; i < MANY_WAITERS; i++) {
        ck_assert_int_eq(m.results[i].error, 0);
        ck_assert_ptr_eq(m.results[i].value, &gate);
    }
    ck_assert_int_eq(tu_count_get(&sw.entered), MANY_WAITERS);
    gather_future_release(sw.shared);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    free(m.args);
    free(m.results);
    tu_count_destroy(&sw.entered);
    tu_gate_destroy(&gate);
}
END_TEST

/* Sibling subtasks on a worker's own deque that each wait for a task of
 * another pool: a waiting sibling helps from its own deque, which holds
 * the next sibling, and so on. Deep in the stack, a wait now runs only the
 * waiting task's own spawns (it used to nest every sibling, overflowing
 * the stack; found by the fuzzer). The other pool's tasks are slow work
 * (a short sleep), so that the siblings find them not done; correctness
 * does not depend on how slow. */
enum { SIBLINGS = 3000 };

typedef struct siblings {
    gather_pool *other;
    atomic_int ran;
} siblings;

static int slow_leaf(void *arg, void **result)
{
    (void)arg;
    struct timespec ts = {0, 20 * 1000};
    nanosleep(&ts, NULL);
    *result = NULL;
    return 0;
}

static int sibling_waiting_on_other_pool(void *arg, void **result)
{
    siblings *sb = arg;
    gather_future *f = NULL;
    int rc = gather_submit(sb->other, slow_leaf, NULL, &f);
    if (rc == 0) {
        rc = gather_future_wait(f, NULL);
        gather_future_release(f);
    }
    atomic_fetch_add(&sb->ran, 1);
    *result = NULL;
    return rc;
}

static int spawn_siblings_and_gather(void *arg, void **result)
{
    siblings *sb = arg;
    static gather_future *fs[SIBLINGS];
    *result = NULL;
    for (size_t i = 0; i < SIBLINGS; i++)
        if (gather_submit(gather_current_pool(), sibling_waiting_on_other_pool,
                          sb, &fs[i]) != 0)
            return ENOMEM;
    int rc = gather_futures(fs, SIBLINGS, NULL, GATHER_RETURN_ERRORS);
    for (size_t i = 0; i < SIBLINGS; i++)
        gather_future_release(fs[i]);
    return rc;
}

START_TEST(test_siblings_waiting_on_another_pool_do_not_overflow_the_stack)
{
    gather_pool_options o = {0};
    o.threads = 1;
    o.stack_size = 512 * 1024;
    gather_pool *p = NULL, *other = NULL;
    ck_assert_int_eq(gather_pool_create(&p, &o), 0);
    gather_pool_options b = {0};
    b.threads = 1;
    ck_assert_int_eq(gather_pool_create(&other, &b), 0);
    siblings sb = {.other = other};
    atomic_init(&sb.ran, 0);
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, spawn_siblings_and_gather, &sb, &f), 0);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    ck_assert_int_eq(atomic_load(&sb.ran), SIBLINGS);
    gather_future_release(f);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    ck_assert_int_eq(gather_pool_destroy(other), 0);
}
END_TEST

typedef struct self_list {
    gather_future *self;
    tu_gate ready; /* opened once `self` is stored */
    int rc;
} self_list;

/* A task listing its own future next to an already failed one gets
 * EDEADLK, not the other future's failure: EDEADLK comes first. */
static int task_gather_self_and_failed(void *arg, void **result)
{
    self_list *sl = arg;
    (void)result;
    tu_gate_wait(&sl->ready);
    gather_future *failed = NULL;
    if (gather_submit(gather_current_pool(), tu_task_fail, (void *)(intptr_t)7,
                      &failed) != 0)
        return -1;
    (void)gather_future_wait(failed, NULL); /* done, with code 7 */
    gather_future *list[2] = {sl->self, failed};
    sl->rc = gather_futures(list, 2, NULL, 0);
    gather_future_release(failed);
    return 0;
}

START_TEST(test_self_in_list_with_failed_future_is_edeadlk_first)
{
    gather_pool *p = tu_pool(1);
    self_list sl = {.rc = -1};
    tu_gate_init(&sl.ready);
    ck_assert_int_eq(gather_submit(p, task_gather_self_and_failed, &sl, &sl.self), 0);
    tu_gate_open(&sl.ready);
    ck_assert_int_eq(gather_future_wait(sl.self, NULL), 0);
    ck_assert_int_eq(sl.rc, EDEADLK);
    gather_future_release(sl.self);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    tu_gate_destroy(&sl.ready);
}
END_TEST

/* ---- deep waits make progress ------------------------------------------ */

/* A fork-join recursion `deep_target` levels deep on a pool; at the bottom
 * the task waits (blocking) until the test has queued a task from outside,
 * then waits for that task with gather_future_wait(). Past the helping
 * bounds (depth 4096, the end of the stack) the waits cannot run it on
 * their own stack: the pool must let another thread run it. */
static long deep_target;
static tu_count deep_reached;
static tu_gate deep_gate;
static gather_future *_Atomic deep_outside;

static int deep_outside_task(void *arg, void **result)
{
    *result = arg;
    return 0;
}

static int deep_level(void *arg, void **result)
{
    long level = (long)(intptr_t)arg;
    if (level == deep_target) {
        tu_count_add(&deep_reached, 1);
        tu_gate_wait(&deep_gate);
        void *v = NULL;
        int rc = gather_future_wait(atomic_load(&deep_outside), &v);
        *result = v;
        return rc;
    }
    gather_future *child;
    if (gather_submit(gather_current_pool(), deep_level,
                      (void *)(intptr_t)(level + 1), &child) != 0)
        return ENOMEM;
    int rc = gather_future_wait(child, result);
    gather_future_release(child);
    return rc;
}

static void run_deep_wait(gather_pool *p, long depth)
{
    deep_target = depth;
    tu_count_init(&deep_reached);
    tu_gate_init(&deep_gate);
    atomic_store(&deep_outside, NULL);
    gather_future *root, *outside;
    ck_assert_int_eq(gather_submit(p, deep_level, (void *)(intptr_t)0, &root), 0);
    ck_assert_int_eq(tu_count_wait(&deep_reached, 1), 0);
    /* Every thread of the pool is inside the recursion or parked beneath
     * it: the outside task is queued behind them. */
    ck_assert_int_eq(gather_submit(p, deep_outside_task, &deep_target, &outside), 0);
    atomic_store(&deep_outside, outside);
    tu_gate_open(&deep_gate);
    void *v = NULL;
    ck_assert_int_eq(gather_future_wait(root, &v), 0);
    ck_assert_ptr_eq(v, &deep_target);
    gather_future_release(root);
    gather_future_release(outside);
    tu_gate_destroy(&deep_gate);
    tu_count_destroy(&deep_reached);
}

START_TEST(test_deep_wait_progresses_at_depth_4096_on_one_thread)
{
    gather_pool *p = tu_pool(1); /* strict: max_threads == threads */
    run_deep_wait(p, 4200);
    gather_pool_stats st;
    ck_assert_int_eq(gather_pool_stats_get(p, &st), 0);
    ck_assert_uint_ge(st.spares_started, 1); /* the compensation thread */
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

START_TEST(test_deep_wait_progresses_at_depth_100000_on_one_thread)
{
    /* About 25 MB of frames: more than one stack, so the recursion itself
     * continues on compensation threads once a stack is nearly used up. */
    /* ThreadSanitizer records at most 65,536 frames of one stack: under it,
     * a depth that stays below (still beyond the 4,096 bound). */
    long depth = TU_TSAN ? 8000 : TU_VALGRIND ? 20000 : 100000;
    gather_pool *p = tu_pool(1);
    run_deep_wait(p, depth);
    gather_pool_stats st;
    ck_assert_int_eq(gather_pool_stats_get(p, &st), 0);
    if (getenv("GATHER_TEST_VERBOSE"))
        printf("depth %ld: %llu threads at most, %llu started for deep waits\n",
               depth, (unsigned long long)st.threads_peak,
               (unsigned long long)st.spares_started);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

/* Uses three quarters of its 256 KiB stack in plain C frames (measured,
 * since sanitizers' frames are larger), then waits for a task queued from
 * outside. */
static int burn_stack_then_wait(uintptr_t stop, gather_future *f)
{
    volatile char pad[512];
    pad[0] = 1;
    if ((uintptr_t)__builtin_frame_address(0) > stop)
        return burn_stack_then_wait(stop, f) + pad[0] - 1;
    return gather_future_wait(f, NULL);
}

static uintptr_t stack_low_of_this_thread(size_t *size)
{
    pthread_attr_t attr;
    void *addr = NULL;
    *size = 0;
    ck_assert_int_eq(pthread_getattr_np(pthread_self(), &attr), 0);
    ck_assert_int_eq(pthread_attr_getstack(&attr, &addr, size), 0);
    pthread_attr_destroy(&attr);
    return (uintptr_t)addr;
}

typedef struct near_end {
    tu_count *started;
    tu_gate *gate;
    gather_future *_Atomic f;
} near_end;

static int task_near_stack_end(void *arg, void **result)
{
    near_end *n = (near_end *)arg;
    (void)result;
    tu_count_add(n->started, 1);
    tu_gate_wait(n->gate);
    size_t size;
    uintptr_t low = stack_low_of_this_thread(&size);
    return burn_stack_then_wait(low + size / 4, atomic_load(&n->f));
}

START_TEST(test_wait_near_the_end_of_a_small_stack_progresses)
{
    gather_pool_options o = {0};
    o.threads = 1;
    o.stack_size = 256 * 1024;
    gather_pool *p;
    ck_assert_int_eq(gather_pool_create(&p, &o), 0);
    tu_count started;
    tu_gate gate;
    tu_count_init(&started);
    tu_gate_init(&gate);
    near_end n = {.started = &started, .gate = &gate};
    atomic_init(&n.f, NULL);
    gather_future *t, *outside;
    ck_assert_int_eq(gather_submit(p, task_near_stack_end, &n, &t), 0);
    ck_assert_int_eq(tu_count_wait(&started, 1), 0);
    ck_assert_int_eq(gather_submit(p, deep_outside_task, NULL, &outside), 0);
    atomic_store(&n.f, outside);
    tu_gate_open(&gate);
    ck_assert_int_eq(gather_future_wait(t, NULL), 0);
    gather_future_release(t);
    gather_future_release(outside);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    tu_gate_destroy(&gate);
    tu_count_destroy(&started);
}
END_TEST

/* A one-thread pool whose worker is held in a gated task: tasks submitted
 * to it stay pending until release_pool(). */
typedef struct held_or_pending {
    gather_pool *pool;
    tu_gate gate;
    tu_count started;
    tu_gated blocker;
    gather_future *blocker_f;
} held_or_pending;

static void hold_pool(held_or_pending *h)
{
    h->pool = tu_pool(1);
    tu_gate_init(&h->gate);
    tu_count_init(&h->started);
    memset(&h->blocker, 0, sizeof h->blocker);
    h->blocker.gate = &h->gate;
    h->blocker.started = &h->started;
    ck_assert_int_eq(gather_submit(h->pool, tu_task_gated, &h->blocker, &h->blocker_f), 0);
    ck_assert_int_eq(tu_count_wait(&h->started, 1), 0);
}

static void release_pool(held_or_pending *h)
{
    tu_gate_open(&h->gate);
    ck_assert_int_eq(gather_future_wait(h->blocker_f, NULL), 0);
    gather_future_release(h->blocker_f);
    ck_assert_int_eq(gather_pool_destroy(h->pool), 0);
    tu_gate_destroy(&h->gate);
    tu_count_destroy(&h->started);
}

/* ---- chains of a million aggregates: constant stack --------------------- */

static long chain_length(void)
{
    return TU_VALGRIND ? 20000 : TU_SANITIZED ? 100000 : 1000000;
}

/* Builds a chain of aggregates over `leaf`, each gather_all() of the one
 * before, keeping only the outermost (each holds its child). */
static gather_future *aggregate_chain(gather_future *leaf, long length)
{
    gather_future *inner = gather_future_retain(leaf);
    for (long i = 0; i < length; i++) {
        gather_future *outer;
        ck_assert_int_eq(gather_all(&inner, 1, 0, &outer), 0);
        gather_future_release(inner);
        inner = outer;
    }
    return inner;
}

START_TEST(test_million_aggregates_complete_on_a_small_pool_stack)
{
    gather_pool_options o = {0};
    o.threads = 1;
    o.stack_size = 64 * 1024;
    gather_pool *p;
    ck_assert_int_eq(gather_pool_create(&p, &o), 0);
    tu_gate gate;
    tu_count started;
    tu_gate_init(&gate);
    tu_count_init(&started);
    tu_gated g = {.gate = &gate, .started = &started, .code = EPIPE};
    gather_future *leaf;
    ck_assert_int_eq(gather_submit(p, tu_task_gated, &g, &leaf), 0);
    gather_future *top = aggregate_chain(leaf, chain_length());
    ck_assert(!gather_future_done(top));
    /* The leaf fails on the 64 KiB pool stack: every aggregate completes
     * there, one after the other. */
    tu_gate_open(&gate);
    ck_assert_int_eq(gather_future_wait(top, NULL), EPIPE);
    gather_future_release(top);
    gather_future_release(leaf);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    tu_gate_destroy(&gate);
    tu_count_destroy(&started);
}
END_TEST

START_TEST(test_million_aggregates_complete_and_cancel_off_the_pool)
{
    /* Completed from this thread: cancelling the pending leaf completes it
     * here, and with it the whole chain. */
    held_or_pending hp;
    hold_pool(&hp);
    gather_future *leaf;
    atomic_int ran = 0;
    ck_assert_int_eq(gather_submit(hp.pool, tu_task_count, &ran, &leaf), 0);
    gather_future *top = aggregate_chain(leaf, chain_length());
    ck_assert(gather_future_cancel(leaf));
    ck_assert(gather_future_done(top));
    ck_assert_int_eq(gather_future_error(top), ECANCELED);
    gather_future_release(top);
    gather_future_release(leaf);

    /* Cancelling the outermost cancels down the chain to the leaf. */
    ck_assert_int_eq(gather_submit(hp.pool, tu_task_count, &ran, &leaf), 0);
    top = aggregate_chain(leaf, chain_length());
    ck_assert(gather_future_cancel(top));
    ck_assert(gather_future_cancelled(top));
    ck_assert(gather_future_cancelled(leaf));
    gather_future_release(top);
    gather_future_release(leaf);
    release_pool(&hp);
    ck_assert_int_eq(atomic_load(&ran), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("nesting");

    TCase *tf = tcase_create("fib");
    tcase_set_timeout(tf, 60);
    tcase_add_test(tf, test_fib_gather_futures_one_thread);
    tcase_add_test(tf, test_fib_gather_futures_two_threads);
    tcase_add_test(tf, test_fib_future_wait_one_thread);
    tcase_add_test(tf, test_fib_future_wait_two_threads);
    tcase_add_test(tf, test_fib_gather_all_one_thread);
    tcase_add_test(tf, test_fib_gather_all_two_threads);
    tcase_add_test(tf, test_fib_gather_map_one_thread);
    tcase_add_test(tf, test_fib_gather_map_two_threads);
    tcase_add_test(tf, test_fib_mixed_waits_one_thread);
    tcase_add_test(tf, test_fib_mixed_waits_two_threads);
    suite_add_tcase(s, tf);

    TCase *th = tcase_create("helping");
    tcase_set_timeout(th, 60);
    tcase_add_test(th, test_task_gathers_subtasks_on_one_thread_pool);
    tcase_add_test(th, test_nested_fan_out_on_one_thread_pool);
    tcase_add_test(th, test_deep_chain_of_waits_on_one_thread_pool);
    tcase_add_test(th, test_wait_any_inside_task_helps);
    tcase_add_test(th, test_helping_many_waiters_does_not_overflow_small_stack);
    tcase_add_test(th, test_self_in_list_with_failed_future_is_edeadlk_first);
    suite_add_tcase(s, th);

    TCase *td = tcase_create("deep_waits");
    tcase_set_timeout(td, 120);
    tcase_add_test(td, test_deep_wait_progresses_at_depth_4096_on_one_thread);
    tcase_add_test(td, test_deep_wait_progresses_at_depth_100000_on_one_thread);
    tcase_add_test(td, test_wait_near_the_end_of_a_small_stack_progresses);
    tcase_add_test(td, test_million_aggregates_complete_on_a_small_pool_stack);
    tcase_add_test(td, test_million_aggregates_complete_and_cancel_off_the_pool);
    suite_add_tcase(s, td);

    TCase *tc = tcase_create("cross_pool");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_task_waits_for_futures_of_another_pool);
    tcase_add_test(tc, test_cross_pool_ping_pong_one_thread_each);
    suite_add_tcase(s, tc);

    TCase *tp = tcase_create("current_pool");
    tcase_set_timeout(tp, 60);
    tcase_add_test(tp, test_current_pool_is_null_outside_tasks);
    tcase_add_test(tp, test_current_pool_inside_tasks_is_their_pool);
    tcase_add_test(tp, test_pool_threads_reports_thread_count);
    tcase_add_test(tp, test_siblings_waiting_on_another_pool_do_not_overflow_the_stack);
    suite_add_tcase(s, tp);

    return tu_run_suite(s);
}
