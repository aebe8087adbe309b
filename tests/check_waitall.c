/* SPDX-License-Identifier: MIT */
/*
 * check_waitall.c - GATHER_WAIT_ALL (gather_futures, gather_all,
 * gather_map) and gather_futures_for(), the timed gather.
 *
 * Interleavings are forced with gates and counters (testutil.h). Two kinds
 * of check need more than that:
 *   - "has not returned yet" is checked with a bounded wait that must time
 *     out (not_within()); the positive checks that follow (the held task
 *     finished before the call returned, no EINPROGRESS in the results) do
 *     not depend on timing;
 *   - the first failure's cancels are made visible: with
 *     GATHER_CANCEL_ON_ERROR the test waits until a pending future reads
 *     ECANCELED, or a running task sees gather_cancel_requested().
 *
 * main() installs a counting allocator before any pool exists, so that a
 * test can check that a zero-timeout poll allocates nothing.
 */
#include "testutil.h"

#include <limits.h>

#include <sched.h>
#include <string.h>

#define NV 16
static int vals[NV];     /* success values: &vals[i] */
static int payloads[NV]; /* failure payloads: &payloads[i] */

/* ---- counting allocator ------------------------------------------------- */

static atomic_long allocs;

static void *counting_malloc(size_t size)
{
    atomic_fetch_add(&allocs, 1);
    return malloc(size);
}

/* ---- slots: one gated task and its future ------------------------------- */

typedef struct slot {
    tu_gate gate;
    tu_gated g;
    gather_future *f;
} slot;

static void slot_init(slot *s, tu_count *started, int code, void *value)
{
    tu_gate_init(&s->gate);
    s->g.gate = &s->gate;
    s->g.started = started;
    s->g.code = code;
    s->g.value = value;
    atomic_init(&s->g.ran, 0);
    atomic_init(&s->g.saw_cancel, 0);
    s->f = NULL;
}

static void slot_init_now(slot *s, int code, void *value)
{
    slot_init(s, NULL, code, value);
    tu_gate_open(&s->gate);
}

static void slot_submit(gather_pool *p, slot *s)
{
    ck_assert_int_eq(gather_submit(p, tu_task_gated, &s->g, &s->f), 0);
    ck_assert_ptr_nonnull(s->f);
}

static void slot_fini(slot *s)
{
    gather_future_release(s->f);
    s->f = NULL;
    tu_gate_destroy(&s->gate);
}

static int slot_ran(slot *s) { return atomic_load(&s->g.ran); }
static int slot_saw_cancel(slot *s) { return atomic_load(&s->g.saw_cancel); }

static void slot_expect(slot *s, int code, void *value)
{
    void *v = (void *)&v;
    ck_assert_int_eq(gather_future_wait(s->f, &v), code);
    ck_assert_ptr_eq(v, value);
}

#define RES_CHECK(r, code, val)                                               \
    do {                                                                      \
        ck_assert_int_eq((r).error, (code));                                  \
        ck_assert_ptr_eq((r).value, (val));                                   \
    } while (0)

static void res_poison(gather_result *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        r[i].error = -12345;
        r[i].value = (void *)&payloads[NV - 1];
    }
}

/* A task that runs until its future is cancelled (it polls
 * gather_cancel_requested()), then returns ECANCELED. Counts its start. */
typedef struct coop {
    tu_count *started;
    atomic_int saw_cancel;
    atomic_int finished;
} coop;

static int coop_task(void *arg, void **result)
{
    coop *c = (coop *)arg;
    if (c->started)
        tu_count_add(c->started, 1);
    uint64_t give_up = tu_mono_ns() + (uint64_t)TU_WATCHDOG_S * 1000000000u;
    while (!gather_cancel_requested() && tu_mono_ns() < give_up)
        sched_yield();
    atomic_store(&c->saw_cancel, gather_cancel_requested() ? 1 : 0);
    *result = NULL;
    atomic_store(&c->finished, 1);
    return ECANCELED;
}

static void coop_init(coop *c, tu_count *started)
{
    c->started = started;
    atomic_init(&c->saw_cancel, 0);
    atomic_init(&c->finished, 0);
}

/* ---- a pthread that calls gather_futures_for() -------------------------- */

typedef struct gjob {
    pthread_t th;
    gather_future **fs;
    size_t n;
    gather_result *res;
    unsigned flags;
    uint64_t timeout_ns;
    int rc;
    /* Sampled right after the call returned: */
    int slow_finished;      /* *slow_flag, when slow_flag is set */
    atomic_int *slow_flag;
    tu_count done;
} gjob;

static void *gjob_main(void *arg)
{
    gjob *j = (gjob *)arg;
    if (j->timeout_ns == GATHER_FOREVER)
        j->rc = gather_futures(j->fs, j->n, j->res, j->flags);
    else
        j->rc = gather_futures_for(j->fs, j->n, j->res, j->flags, j->timeout_ns);
    if (j->slow_flag)
        j->slow_finished = atomic_load(j->slow_flag);
    tu_count_add(&j->done, 1);
    return NULL;
}

static void gjob_start(gjob *j, gather_future **fs, size_t n,
                       gather_result *res, unsigned flags, uint64_t timeout_ns)
{
    j->fs = fs;
    j->n = n;
    j->res = res;
    j->flags = flags;
    j->timeout_ns = timeout_ns;
    j->rc = -1;
    j->slow_finished = -1;
    tu_count_init(&j->done);
    ck_assert_int_eq(pthread_create(&j->th, NULL, gjob_main, j), 0);
}

/* True when `c` reaches 1 within `ms`: a call that must still be waiting
 * fails this check when it returned early. */
static bool within(tu_count *c, long ms)
{
    struct timespec dl = tu_deadline_ms(ms);
    return tu_count_reaches(c, 1, &dl);
}

static bool not_within(tu_count *c, long ms) { return !within(c, ms); }

static int gjob_finish(gjob *j)
{
    ck_assert_int_eq(tu_count_wait(&j->done, 1), 0);
    pthread_join(j->th, NULL);
    tu_count_destroy(&j->done);
    return j->rc;
}

/* The gated tasks of these tests record "finished" in a flag the gjob
 * samples when the call returns. */
typedef struct flagged {
    tu_gated g;
    atomic_int finished;
} flagged;

static int flagged_task(void *arg, void **result)
{
    flagged *f = (flagged *)arg;
    int rc = tu_task_gated(&f->g, result);
    atomic_store(&f->finished, 1);
    return rc;
}

static void no_einprogress(const gather_result *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ck_assert_int_ne(r[i].error, EINPROGRESS);
}

/* ======================================================================== */
/* gather_futures with GATHER_WAIT_ALL                                      */
/* ======================================================================== */

START_TEST(test_wait_all_returns_only_after_slow_task_finishes)
{
    gather_pool *p = tu_pool(2);
    tu_count started;
    tu_count_init(&started);
    tu_gate gate;
    tu_gate_init(&gate);
    flagged slow = {.g = {.gate = &gate, .started = &started, .code = 0,
                          .value = &vals[0]}};
    atomic_init(&slow.finished, 0);
    gather_future *fslow = NULL;
    ck_assert_int_eq(gather_submit(p, flagged_task, &slow, &fslow), 0);
    ck_assert_int_eq(tu_count_wait(&started, 1), 0);
    slot bad;
    slot_init_now(&bad, 1001, &payloads[1]);
    slot_submit(p, &bad);

    gather_future *fs[2] = {fslow, bad.f};
    gather_result res[2];
    res_poison(res, 2);
    gjob j = {.slow_flag = &slow.finished};
    gjob_start(&j, fs, 2, res, GATHER_WAIT_ALL, GATHER_FOREVER);
    slot_expect(&bad, 1001, &payloads[1]);
    /* Without the flag it would have returned 1001 by now. */
    ck_assert(not_within(&j.done, 100));
    ck_assert(!gather_future_done(fslow));
    tu_gate_open(&gate);
    ck_assert_int_eq(gjob_finish(&j), 1001);
    ck_assert_int_eq(j.slow_finished, 1); /* finished before the return */
    ck_assert(gather_future_done(fslow));
    no_einprogress(res, 2);
    RES_CHECK(res[0], 0, &vals[0]);
    RES_CHECK(res[1], 1001, &payloads[1]);
    ck_assert_int_eq(atomic_load(&slow.g.saw_cancel), 0); /* not cancelled */

    ck_assert_int_eq(gather_pool_destroy(p), 0);
    gather_future_release(fslow);
    slot_fini(&bad);
    tu_gate_destroy(&gate);
    tu_count_destroy(&started);
}
END_TEST

START_TEST(test_wait_all_with_results_null_and_all_succeeding)
{
    enum { N = 6 };
    gather_pool *p = tu_pool(3);
    slot s[N];
    gather_future *fs[N];
    for (int i = 0; i < N; i++) {
        slot_init_now(&s[i], 0, &vals[i]);
        slot_submit(p, &s[i]);
        fs[i] = s[i].f;
    }
    ck_assert_int_eq(gather_futures(fs, N, NULL, GATHER_WAIT_ALL), 0);
    for (int i = 0; i < N; i++)
        ck_assert(gather_future_done(fs[i]));
    gather_result res[N];
    res_poison(res, N);
    ck_assert_int_eq(gather_futures(fs, N, res, GATHER_WAIT_ALL), 0);
    for (int i = 0; i < N; i++)
        RES_CHECK(res[i], 0, &vals[i]);
    ck_assert_int_eq(gather_futures(NULL, 0, NULL, GATHER_WAIT_ALL), 0);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    for (int i = 0; i < N; i++)
        slot_fini(&s[i]);
}
END_TEST

/* Both fail; the lower index fails last. The code is the one seen failed
 * first. Done futures are looked at when the call starts, so `early`, done
 * before the call, is seen first; the hook's cancel of `pend` shows that
 * it ran before `late` was let go. */
START_TEST(test_wait_all_returns_first_failure_not_lowest_index)
{
    gather_pool *pa = tu_pool(1);
    gather_pool *pb = tu_pool(1);
    tu_count started;
    tu_count_init(&started);
    slot late, early, pend;
    slot_init(&late, &started, 1003, &payloads[3]);
    slot_init_now(&early, 1004, &payloads[4]);
    slot_init_now(&pend, 0, &vals[5]);
    slot_submit(pa, &late);
    ck_assert_int_eq(tu_count_wait(&started, 1), 0);
    slot_submit(pa, &pend); /* queued behind late on a one-thread pool */
    slot_submit(pb, &early);
    slot_expect(&early, 1004, &payloads[4]);

    gather_future *fs[3] = {late.f, early.f, pend.f};
    gather_result res[3];
    res_poison(res, 3);
    gjob j = {0};
    gjob_start(&j, fs, 3, res, GATHER_WAIT_ALL | GATHER_CANCEL_ON_ERROR,
               GATHER_FOREVER);
    slot_expect(&pend, ECANCELED, NULL); /* the hook ran */
    ck_assert(not_within(&j.done, 50)); /* late still runs */
    tu_gate_open(&late.gate);
    ck_assert_int_eq(gjob_finish(&j), 1004);
    RES_CHECK(res[0], 1003, &payloads[3]);
    RES_CHECK(res[1], 1004, &payloads[4]);
    RES_CHECK(res[2], ECANCELED, NULL);
    ck_assert_int_eq(slot_ran(&pend), 0);
    ck_assert_int_eq(slot_saw_cancel(&late), 1);

    ck_assert_int_eq(gather_pool_destroy(pa), 0);
    ck_assert_int_eq(gather_pool_destroy(pb), 0);
    slot_fini(&late);
    slot_fini(&early);
    slot_fini(&pend);
    tu_count_destroy(&started);
}
END_TEST

START_TEST(test_wait_all_cancel_on_error_cancels_pending_and_waits_for_running)
{
    /* Pool A: `run` (listed, cooperative: returns once it sees the cancel)
     * and `block` (not listed) hold both threads; pend1, pend2 (listed) and
     * other (not listed) are queued behind them. `bad` fails on pool B. */
    gather_pool *pa = tu_pool(2);
    gather_pool *pb = tu_pool(1);
    tu_count started;
    tu_count_init(&started);
    coop run;
    coop_init(&run, &started);
    gather_future *frun = NULL;
    ck_assert_int_eq(gather_submit(pa, coop_task, &run, &frun), 0);
    slot block, pend1, pend2, other, bad;
    slot_init(&block, &started, 0, &vals[1]);
    slot_init_now(&pend1, 0, &vals[2]);
    slot_init_now(&pend2, 0, &vals[3]);
    slot_init_now(&other, 0, &vals[4]);
    slot_init(&bad, &started, 1007, &payloads[7]);
    slot_submit(pa, &block);
    slot_submit(pb, &bad);
    ck_assert_int_eq(tu_count_wait(&started, 3), 0);
    slot_submit(pa, &pend1);
    slot_submit(pa, &pend2);
    slot_submit(pa, &other);

    gather_future *fs[4] = {frun, pend1.f, bad.f, pend2.f};
    gather_result res[4];
    res_poison(res, 4);
    gjob j = {.slow_flag = &run.finished};
    gjob_start(&j, fs, 4, res, GATHER_CANCEL_ON_ERROR | GATHER_WAIT_ALL,
               GATHER_FOREVER);
    tu_gate_open(&bad.gate);
    /* The running task sees the cancel and returns; the call waited. */
    ck_assert_int_eq(gjob_finish(&j), 1007);
    ck_assert_int_eq(j.slow_finished, 1);
    ck_assert_int_eq(atomic_load(&run.saw_cancel), 1);
    no_einprogress(res, 4);
    RES_CHECK(res[0], ECANCELED, NULL);
    RES_CHECK(res[1], ECANCELED, NULL);
    RES_CHECK(res[2], 1007, &payloads[7]);
    RES_CHECK(res[3], ECANCELED, NULL);
    ck_assert(gather_future_cancelled(frun));
    ck_assert(gather_future_cancelled(pend1.f));
    ck_assert(gather_future_cancelled(pend2.f));

    tu_gate_open(&block.gate);
    slot_expect(&other, 0, &vals[4]); /* not listed: not cancelled */
    ck_assert(!gather_future_cancelled(other.f));
    ck_assert_int_eq(gather_pool_destroy(pa), 0);
    ck_assert_int_eq(gather_pool_destroy(pb), 0);
    ck_assert_int_eq(slot_ran(&pend1), 0);
    ck_assert_int_eq(slot_ran(&pend2), 0);
    ck_assert_int_eq(slot_saw_cancel(&block), 0);
    gather_future_release(frun);
    slot_fini(&block);
    slot_fini(&pend1);
    slot_fini(&pend2);
    slot_fini(&other);
    slot_fini(&bad);
    tu_count_destroy(&started);
}
END_TEST

START_TEST(test_wait_all_with_return_errors_is_return_errors)
{
    gather_pool *p = tu_pool(4);
    tu_count started;
    tu_count_init(&started);
    slot s[4];
    slot_init(&s[0], &started, 0, &vals[0]);         /* held success */
    slot_init_now(&s[1], 1005, &payloads[5]);        /* fails at once */
    slot_init(&s[2], &started, 1006, &payloads[6]);  /* held failure */
    slot_init_now(&s[3], 0, &vals[3]);
    gather_future *fs[4];
    for (int i = 0; i < 4; i++) {
        slot_submit(p, &s[i]);
        fs[i] = s[i].f;
    }
    ck_assert_int_eq(tu_count_wait(&started, 2), 0);
    gather_result res[4];
    res_poison(res, 4);
    gjob j = {0};
    gjob_start(&j, fs, 4, res, GATHER_RETURN_ERRORS | GATHER_WAIT_ALL,
               GATHER_FOREVER);
    slot_expect(&s[1], 1005, &payloads[5]);
    tu_gate_open(&s[2].gate);
    slot_expect(&s[2], 1006, &payloads[6]);
    ck_assert(not_within(&j.done, 50)); /* s[0] is still held */
    tu_gate_open(&s[0].gate);
    ck_assert_int_eq(gjob_finish(&j), 0);
    RES_CHECK(res[0], 0, &vals[0]);
    RES_CHECK(res[1], 1005, &payloads[5]);
    RES_CHECK(res[2], 1006, &payloads[6]);
    RES_CHECK(res[3], 0, &vals[3]);
    ck_assert_int_eq(slot_saw_cancel(&s[0]), 0);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    for (int i = 0; i < 4; i++)
        slot_fini(&s[i]);
    tu_count_destroy(&started);
}
END_TEST

/* Inside a task on a one-thread pool: the children only run because the
 * wait helps; the hook runs on the helping path. */
typedef struct nest_arg {
    int rc;
    int rc_coe;
    gather_result res[3];
    gather_result res_coe[2];
} nest_arg;

static int nest_task(void *arg, void **result)
{
    nest_arg *a = (nest_arg *)arg;
    gather_pool *me = gather_current_pool();
    gather_future *fs[3] = {NULL, NULL, NULL};
    gather_submit(me, tu_task_identity, &vals[0], &fs[0]);
    gather_submit(me, tu_task_fail, (void *)(intptr_t)1011, &fs[1]);
    gather_submit(me, tu_task_identity, &vals[2], &fs[2]);
    a->rc = gather_futures(fs, 3, a->res, GATHER_WAIT_ALL);
    for (int i = 0; i < 3; i++)
        gather_future_release(fs[i]);

    /* CANCEL_ON_ERROR: newest first, the failure runs before `ok`, which
     * the hook then cancels (or, had it run first, it succeeded). */
    gather_future *gs[2] = {NULL, NULL};
    gather_submit(me, tu_task_identity, &vals[3], &gs[0]);
    gather_submit(me, tu_task_fail, (void *)(intptr_t)1012, &gs[1]);
    a->rc_coe = gather_futures(gs, 2, a->res_coe,
                               GATHER_WAIT_ALL | GATHER_CANCEL_ON_ERROR);
    for (int i = 0; i < 2; i++)
        gather_future_release(gs[i]);
    *result = NULL;
    return 0;
}

START_TEST(test_wait_all_inside_task_helps)
{
    gather_pool *p = tu_pool(1);
    nest_arg a;
    memset(&a, 0, sizeof a);
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, nest_task, &a, &f), 0);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    ck_assert_int_eq(a.rc, 1011);
    RES_CHECK(a.res[0], 0, &vals[0]);
    RES_CHECK(a.res[1], 1011, (void *)(intptr_t)1011);
    RES_CHECK(a.res[2], 0, &vals[2]);
    ck_assert_int_eq(a.rc_coe, 1012);
    no_einprogress(a.res_coe, 2);
    ck_assert(a.res_coe[0].error == 0 || a.res_coe[0].error == ECANCELED);
    RES_CHECK(a.res_coe[1], 1012, (void *)(intptr_t)1012);
    gather_future_release(f);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

/* ======================================================================== */
/* gather_all with GATHER_WAIT_ALL                                          */
/* ======================================================================== */

START_TEST(test_all_wait_all_completes_only_when_every_child_is_done)
{
    gather_pool *p = tu_pool(2);
    tu_count started;
    tu_count_init(&started);
    slot slow, bad;
    slot_init(&slow, &started, 0, &vals[0]);
    slot_init_now(&bad, 1001, &payloads[1]);
    slot_submit(p, &slow);
    ck_assert_int_eq(tu_count_wait(&started, 1), 0);
    slot_submit(p, &bad);

    gather_future *fs[2] = {slow.f, bad.f};
    gather_future *agg = NULL;
    ck_assert_int_eq(gather_all(fs, 2, GATHER_WAIT_ALL, &agg), 0);
    slot_expect(&bad, 1001, &payloads[1]);
    /* Without the flag the failure would have completed it by now. */
    ck_assert(!gather_future_wait_for(agg, 100 * 1000 * 1000));
    tu_gate_open(&slow.gate);
    void *v = NULL;
    ck_assert_int_eq(gather_future_wait(agg, &v), 1001);
    gather_result *r = (gather_result *)v;
    RES_CHECK(r[0], 0, &vals[0]);
    RES_CHECK(r[1], 1001, &payloads[1]);
    ck_assert(!gather_future_cancelled(agg));
    gather_future_release(agg);

    /* All done already: completes at creation, no EINPROGRESS. */
    ck_assert_int_eq(gather_all(fs, 2, GATHER_WAIT_ALL, &agg), 0);
    ck_assert(gather_future_done(agg));
    ck_assert_int_eq(gather_future_error(agg), 1001);
    gather_future_release(agg);
    ck_assert_int_eq(gather_all(NULL, 0, GATHER_WAIT_ALL, &agg), 0);
    ck_assert_int_eq(gather_future_wait(agg, &v), 0);
    ck_assert_ptr_null(v);
    gather_future_release(agg);

    ck_assert_int_eq(gather_pool_destroy(p), 0);
    slot_fini(&slow);
    slot_fini(&bad);
    tu_count_destroy(&started);
}
END_TEST

START_TEST(test_all_wait_all_code_is_first_failure)
{
    gather_pool *p = tu_pool(2);
    tu_count started;
    tu_count_init(&started);
    slot late, early;
    slot_init(&late, &started, 1003, &payloads[3]);
    slot_init_now(&early, 1004, &payloads[4]);
    slot_submit(p, &late);
    ck_assert_int_eq(tu_count_wait(&started, 1), 0);
    slot_submit(p, &early);
    slot_expect(&early, 1004, &payloads[4]);
    gather_future *fs[2] = {late.f, early.f};
    gather_future *agg = NULL;
    ck_assert_int_eq(gather_all(fs, 2, GATHER_WAIT_ALL, &agg), 0);
    ck_assert(!gather_future_done(agg));
    tu_gate_open(&late.gate);
    void *v = NULL;
    ck_assert_int_eq(gather_future_wait(agg, &v), 1004); /* not index 0's */
    gather_result *r = (gather_result *)v;
    RES_CHECK(r[0], 1003, &payloads[3]);
    RES_CHECK(r[1], 1004, &payloads[4]);
    gather_future_release(agg);
    /* With RETURN_ERRORS it is RETURN_ERRORS: 0. */
    ck_assert_int_eq(gather_all(fs, 2, GATHER_WAIT_ALL | GATHER_RETURN_ERRORS,
                                &agg), 0);
    ck_assert_int_eq(gather_future_wait(agg, NULL), 0);
    gather_future_release(agg);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    slot_fini(&late);
    slot_fini(&early);
    tu_count_destroy(&started);
}
END_TEST

START_TEST(test_all_wait_all_cancel_on_error_is_a_task_group)
{
    gather_pool *pa = tu_pool(1);
    gather_pool *pb = tu_pool(1);
    tu_count started;
    tu_count_init(&started);
    coop run;
    coop_init(&run, &started);
    gather_future *frun = NULL;
    ck_assert_int_eq(gather_submit(pa, coop_task, &run, &frun), 0);
    ck_assert_int_eq(tu_count_wait(&started, 1), 0);
    slot pend, bad;
    slot_init_now(&pend, 0, &vals[1]);
    slot_init(&bad, NULL, 1009, &payloads[9]);
    slot_submit(pa, &pend); /* queued behind run */
    slot_submit(pb, &bad);

    gather_future *fs[3] = {frun, pend.f, bad.f};
    gather_future *agg = NULL;
    ck_assert_int_eq(gather_all(fs, 3, GATHER_WAIT_ALL | GATHER_CANCEL_ON_ERROR,
                                &agg), 0);
    ck_assert(!gather_future_done(agg));
    tu_gate_open(&bad.gate);
    void *v = NULL;
    ck_assert_int_eq(gather_future_wait(agg, &v), 1009);
    /* It completed only once the running child had seen the cancel. */
    ck_assert_int_eq(atomic_load(&run.finished), 1);
    ck_assert_int_eq(atomic_load(&run.saw_cancel), 1);
    gather_result *r = (gather_result *)v;
    no_einprogress(r, 3);
    RES_CHECK(r[0], ECANCELED, NULL);
    RES_CHECK(r[1], ECANCELED, NULL);
    RES_CHECK(r[2], 1009, &payloads[9]);
    ck_assert_int_eq(slot_ran(&pend), 0);
    gather_future_release(agg);

    ck_assert_int_eq(gather_pool_destroy(pa), 0);
    ck_assert_int_eq(gather_pool_destroy(pb), 0);
    gather_future_release(frun);
    slot_fini(&pend);
    slot_fini(&bad);
    tu_count_destroy(&started);
}
END_TEST

/* Cancelling the aggregate itself completes it at once, also with
 * WAIT_ALL. Then a child fails: with CANCEL_ON_ERROR its entry cancels the
 * other children outside the aggregate's completion (`c`, done before the
 * aggregate existed, is held by the aggregate alone). Here the two happen
 * one after the other; when they race, the children's pins (gather.c) keep
 * them alive. */
START_TEST(test_all_wait_all_cancel_of_aggregate_completes_at_once)
{
    const unsigned modes[2] = {GATHER_WAIT_ALL,
                               GATHER_WAIT_ALL | GATHER_CANCEL_ON_ERROR};
    for (int m = 0; m < 2; m++) {
        gather_pool *p = tu_pool(3); /* a and b hold two, c runs on one */
        tu_count started;
        tu_count_init(&started);
        slot a, b, c;
        slot_init(&a, &started, 1013, &payloads[3]);
        slot_init(&b, &started, 0, &vals[4]);
        slot_init_now(&c, 0, &vals[5]);
        slot_submit(p, &a);
        slot_submit(p, &b);
        ck_assert_int_eq(tu_count_wait(&started, 2), 0);
        slot_submit(p, &c);
        slot_expect(&c, 0, &vals[5]);
        gather_future *fs[3] = {a.f, b.f, c.f};
        gather_future *agg = NULL;
        ck_assert_int_eq(gather_all(fs, 3, modes[m], &agg), 0);
        gather_future_release(c.f); /* the aggregate's is the last one */
        c.f = NULL;
        ck_assert(!gather_future_done(agg));
        ck_assert(gather_future_cancel(agg));
        ck_assert(gather_future_done(agg));
        ck_assert(gather_future_cancelled(agg));
        void *v = NULL;
        ck_assert_int_eq(gather_future_wait(agg, &v), ECANCELED);
        gather_result *r = (gather_result *)v;
        RES_CHECK(r[0], EINPROGRESS, NULL);
        RES_CHECK(r[1], EINPROGRESS, NULL);
        RES_CHECK(r[2], 0, &vals[5]);
        gather_future_release(agg); /* the caller lets go first */
        tu_gate_open(&a.gate);
        slot_expect(&a, 1013, &payloads[3]);
        tu_gate_open(&b.gate);
        slot_expect(&b, 0, &vals[4]);
        ck_assert_int_eq(slot_saw_cancel(&a), 1);
        ck_assert_int_eq(slot_saw_cancel(&b), 1);
        ck_assert_int_eq(gather_pool_destroy(p), 0);
        slot_fini(&a);
        slot_fini(&b);
        slot_fini(&c);
        tu_count_destroy(&started);
    }
}
END_TEST

/* ======================================================================== */
/* gather_map with GATHER_WAIT_ALL                                          */
/* ======================================================================== */

#define MAP_MAGIC 0x5eed1234

typedef struct mapjob {
    int magic;      /* MAP_MAGIC until the caller's frame is gone */
    int code;
    tu_gate *gate;  /* NULL: not held */
    tu_count *started;
    atomic_int *active; /* jobs running now */
    atomic_int *bad_reads; /* jobs that found their arg dead */
} mapjob;

static int map_fn(void *arg, void **result)
{
    mapjob *j = (mapjob *)arg;
    atomic_fetch_add(j->active, 1);
    if (j->started)
        tu_count_add(j->started, 1);
    if (j->gate)
        tu_gate_wait(j->gate);
    if (j->magic != MAP_MAGIC)
        atomic_fetch_add(j->bad_reads, 1);
    *result = j;
    int code = j->code;
    atomic_fetch_sub(j->active, 1);
    return code;
}

typedef struct stack_map {
    pthread_t th;
    gather_pool *pool;
    tu_gate *gate;
    tu_count *started;
    atomic_int active;
    atomic_int bad_reads;
    int rc;
    int active_at_return;
    gather_result res[4];
    tu_count done;
} stack_map;

/* The args live on this thread's stack and die when gather_map returns. */
static void *stack_map_main(void *arg)
{
    stack_map *s = (stack_map *)arg;
    mapjob jobs[4];
    void *args[4];
    for (int i = 0; i < 4; i++) {
        jobs[i].magic = MAP_MAGIC;
        jobs[i].code = i == 1 ? 1021 : 0;
        jobs[i].gate = i == 2 ? s->gate : NULL;
        jobs[i].started = i == 2 ? s->started : NULL;
        jobs[i].active = &s->active;
        jobs[i].bad_reads = &s->bad_reads;
        args[i] = &jobs[i];
    }
    s->rc = gather_map(s->pool, map_fn, args, 4, s->res, GATHER_WAIT_ALL);
    s->active_at_return = atomic_load(&s->active);
    for (int i = 0; i < 4; i++) {
        jobs[i].magic = 0; /* the frame is about to go */
        s->res[i].value = s->res[i].value == &jobs[i] ? (void *)(intptr_t)(i + 1)
                                                      : NULL;
    }
    tu_count_add(&s->done, 1);
    return NULL;
}

START_TEST(test_map_wait_all_keeps_stack_args_safe)
{
    gather_pool *p = tu_pool(4);
    tu_gate gate;
    tu_gate_init(&gate);
    tu_count started;
    tu_count_init(&started);
    stack_map s = {.pool = p, .gate = &gate, .started = &started};
    atomic_init(&s.active, 0);
    atomic_init(&s.bad_reads, 0);
    tu_count_init(&s.done);
    ck_assert_int_eq(pthread_create(&s.th, NULL, stack_map_main, &s), 0);
    ck_assert_int_eq(tu_count_wait(&started, 1), 0); /* job 2 is held */
    ck_assert(not_within(&s.done, 100)); /* job 1 failed; still waits */
    tu_gate_open(&gate);
    ck_assert_int_eq(tu_count_wait(&s.done, 1), 0);
    pthread_join(s.th, NULL);
    ck_assert_int_eq(s.rc, 1021);
    ck_assert_int_eq(s.active_at_return, 0);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(s.res[i].error, i == 1 ? 1021 : 0);
        ck_assert_ptr_eq(s.res[i].value, (void *)(intptr_t)(i + 1));
    }
    /* Nothing runs after the return: destroy drains, then no job read a
     * dead argument. */
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    ck_assert_int_eq(atomic_load(&s.bad_reads), 0);
    ck_assert_int_eq(atomic_load(&s.active), 0);
    tu_count_destroy(&s.done);
    tu_count_destroy(&started);
    tu_gate_destroy(&gate);
}
END_TEST

/* Job 0 runs until it sees the cancel that job 1's failure causes, then
 * fails too: the code is job 1's (the first failure), not job 0's (the
 * lowest index). */
typedef struct first_arg {
    int code;
    bool wait_cancel;
    tu_count *started;
} first_arg;

static int first_fn(void *arg, void **result)
{
    first_arg *a = (first_arg *)arg;
    *result = NULL;
    if (!a->wait_cancel)
        return a->code;
    tu_count_add(a->started, 1);
    uint64_t give_up = tu_mono_ns() + (uint64_t)TU_WATCHDOG_S * 1000000000u;
    while (!gather_cancel_requested() && tu_mono_ns() < give_up)
        sched_yield();
    return a->code;
}

START_TEST(test_map_wait_all_cancel_on_error_code_and_no_job_left)
{
    gather_pool *p = tu_pool(2);
    tu_count started;
    tu_count_init(&started);
    first_arg a0 = {1031, true, &started};
    first_arg a1 = {1032, false, NULL};
    void *args[2] = {&a0, &a1};
    gather_result res[2];
    res_poison(res, 2);
    ck_assert_int_eq(gather_map(p, first_fn, args, 2, res,
                                GATHER_WAIT_ALL | GATHER_CANCEL_ON_ERROR),
                     1032);
    RES_CHECK(res[0], 1031, NULL);
    RES_CHECK(res[1], 1032, NULL);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    tu_count_destroy(&started);
}
END_TEST

/* One thread: the first job to run fails; every job not started is
 * cancelled; at the return every job is accounted for in the stats (no
 * shutdown needed: nothing is left to run). */
static atomic_int order_ctr;

static int first_fails_fn(void *arg, void **result)
{
    *result = arg;
    return atomic_fetch_add(&order_ctr, 1) == 0 ? 1041 : 0;
}

START_TEST(test_map_wait_all_cancel_on_error_accounts_every_job)
{
    enum { N = 40 };
    gather_pool *p = tu_pool(1);
    atomic_store(&order_ctr, 0);
    void *args[N];
    for (int i = 0; i < N; i++)
        args[i] = &vals[i % NV];
    gather_result res[N];
    res_poison(res, N);
    ck_assert_int_eq(gather_map(p, first_fails_fn, args, N, res,
                                GATHER_WAIT_ALL | GATHER_CANCEL_ON_ERROR),
                     1041);
    gather_pool_stats st;
    ck_assert_int_eq(gather_pool_stats_get(p, &st), 0);
    int failed = 0, ran_ok = 0, cancelled = 0;
    for (int i = 0; i < N; i++) {
        ck_assert_int_ne(res[i].error, EINPROGRESS);
        if (res[i].error == 1041)
            failed++;
        else if (res[i].error == 0)
            ran_ok++;
        else if (res[i].error == ECANCELED)
            cancelled++;
    }
    ck_assert_int_eq(failed, 1);
    ck_assert_int_eq(failed + ran_ok + cancelled, N);
    ck_assert_int_eq(atomic_load(&order_ctr), failed + ran_ok);
    ck_assert_uint_eq(st.submitted, N);
    ck_assert_uint_eq(st.completed, (uint64_t)(failed + ran_ok));
    ck_assert_uint_eq(st.cancelled, (uint64_t)cancelled);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

/* ======================================================================== */
/* gather_futures_for                                                       */
/* ======================================================================== */

START_TEST(test_for_times_out_with_snapshot_and_tasks_keep_running)
{
    gather_pool *p = tu_pool(2);
    tu_count started;
    tu_count_init(&started);
    slot held, ok;
    slot_init(&held, &started, 0, &vals[0]);
    slot_init_now(&ok, 0, &vals[1]);
    slot_submit(p, &held);
    slot_submit(p, &ok);
    ck_assert_int_eq(tu_count_wait(&started, 1), 0);
    slot_expect(&ok, 0, &vals[1]);
    gather_future *fs[2] = {held.f, ok.f};
    const unsigned modes[3] = {0, GATHER_RETURN_ERRORS, GATHER_WAIT_ALL};
    for (int m = 0; m < 3; m++) {
        gather_result res[2];
        res_poison(res, 2);
        uint64_t t0 = tu_mono_ns();
        ck_assert_int_eq(gather_futures_for(fs, 2, res, modes[m],
                                            30 * 1000 * 1000), ETIMEDOUT);
        ck_assert_uint_ge(tu_mono_ns() - t0, 25 * 1000 * 1000); /* waited */
        RES_CHECK(res[0], EINPROGRESS, NULL);
        RES_CHECK(res[1], 0, &vals[1]);
    }
    /* Not cancelled: it finishes normally afterwards. */
    ck_assert(!gather_future_done(held.f));
    tu_gate_open(&held.gate);
    slot_expect(&held, 0, &vals[0]);
    ck_assert_int_eq(slot_saw_cancel(&held), 0);
    ck_assert(!gather_future_cancelled(held.f));
    gather_result res[2];
    ck_assert_int_eq(gather_futures_for(fs, 2, res, 0, 30 * 1000 * 1000), 0);
    RES_CHECK(res[0], 0, &vals[0]);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    slot_fini(&held);
    slot_fini(&ok);
    tu_count_destroy(&started);
}
END_TEST

START_TEST(test_for_zero_timeout_only_looks)
{
    gather_pool *p = tu_pool(1);
    tu_count started;
    tu_count_init(&started);
    slot held, done_ok, done_bad;
    slot_init(&held, &started, 0, &vals[0]);
    slot_init_now(&done_ok, 0, &vals[1]);
    slot_init_now(&done_bad, 1051, &payloads[1]);
    slot_submit(p, &done_ok);
    slot_submit(p, &done_bad);
    slot_expect(&done_ok, 0, &vals[1]);
    slot_expect(&done_bad, 1051, &payloads[1]);
    slot_submit(p, &held);
    ck_assert_int_eq(tu_count_wait(&started, 1), 0);

    gather_future *fs[2] = {held.f, done_ok.f};
    gather_result res[2];
    /* Polling allocates nothing and leaves nothing on the futures. */
    long before = atomic_load(&allocs);
    for (int i = 0; i < 1000; i++) {
        res_poison(res, 2);
        ck_assert_int_eq(gather_futures_for(fs, 2, res, 0, 0), ETIMEDOUT);
        RES_CHECK(res[0], EINPROGRESS, NULL);
        RES_CHECK(res[1], 0, &vals[1]);
        ck_assert_int_eq(gather_futures_for(fs, 2, NULL, GATHER_WAIT_ALL, 0),
                         ETIMEDOUT);
    }
    ck_assert_int_eq(atomic_load(&allocs), before);
    /* A failure is seen by a look too; done lists answer at once. */
    gather_future *fb[2] = {held.f, done_bad.f};
    ck_assert_int_eq(gather_futures_for(fb, 2, res, 0, 0), 1051);
    RES_CHECK(res[0], EINPROGRESS, NULL);
    RES_CHECK(res[1], 1051, &payloads[1]);
    ck_assert_int_eq(gather_futures_for(fb, 2, res, GATHER_WAIT_ALL, 0),
                     ETIMEDOUT);
    RES_CHECK(res[1], 1051, &payloads[1]);
    ck_assert_int_eq(gather_futures_for(&fs[1], 1, res, GATHER_WAIT_ALL, 0), 0);
    ck_assert_int_eq(gather_futures_for(&fb[1], 1, res, GATHER_WAIT_ALL, 0),
                     1051);

    tu_gate_open(&held.gate);
    slot_expect(&held, 0, &vals[0]);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    slot_fini(&held);
    slot_fini(&done_ok);
    slot_fini(&done_bad);
    tu_count_destroy(&started);
}
END_TEST

/* On a one-thread pool, a zero timeout does not help: the child queued on
 * the task's own deque does not run. */
typedef struct look_arg {
    int rc0, rc_wait;
    int child_ran_after_look;
    atomic_int child_ran;
} look_arg;

static int look_task(void *arg, void **result)
{
    look_arg *a = (look_arg *)arg;
    gather_future *c = NULL;
    gather_submit(gather_current_pool(), tu_task_count, &a->child_ran, &c);
    a->rc0 = gather_futures_for(&c, 1, NULL, 0, 0);
    a->child_ran_after_look = atomic_load(&a->child_ran);
    a->rc_wait = gather_futures_for(&c, 1, NULL, GATHER_WAIT_ALL,
                                    (uint64_t)TU_WATCHDOG_S * 1000000000u);
    gather_future_release(c);
    *result = NULL;
    return 0;
}

START_TEST(test_for_on_pool_thread_zero_looks_and_timed_wait_helps)
{
    gather_pool *p = tu_pool(1);
    look_arg a = {0};
    atomic_init(&a.child_ran, 0);
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, look_task, &a, &f), 0);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    ck_assert_int_eq(a.rc0, ETIMEDOUT);
    ck_assert_int_eq(a.child_ran_after_look, 0);
    ck_assert_int_eq(a.rc_wait, 0); /* it helped: the only thread is ours */
    ck_assert_int_eq(atomic_load(&a.child_ran), 1);
    gather_future_release(f);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

START_TEST(test_for_success_and_failure_before_the_deadline)
{
    enum { N = 4 };
    const uint64_t long_ns = (uint64_t)TU_WATCHDOG_S * 1000000000u;
    gather_pool *p = tu_pool(N);
    tu_count started;
    tu_count_init(&started);
    slot s[N];
    gather_future *fs[N];
    for (int i = 0; i < N; i++) {
        slot_init(&s[i], &started, 0, &vals[i]);
        slot_submit(p, &s[i]);
        fs[i] = s[i].f;
    }
    ck_assert_int_eq(tu_count_wait(&started, N), 0);
    gather_result res[N];
    res_poison(res, N);
    gjob j = {0};
    gjob_start(&j, fs, N, res, 0, long_ns);
    for (int i = N - 1; i >= 0; i--)
        tu_gate_open(&s[i].gate);
    ck_assert_int_eq(gjob_finish(&j), 0);
    for (int i = 0; i < N; i++)
        RES_CHECK(res[i], 0, &vals[i]);
    for (int i = 0; i < N; i++)
        slot_fini(&s[i]);

    /* A failure before the deadline: returned at once, siblings still run. */
    slot held, bad;
    slot_init(&held, &started, 0, &vals[0]);
    slot_init(&bad, &started, 1061, &payloads[1]);
    slot_submit(p, &held);
    slot_submit(p, &bad);
    ck_assert_int_eq(tu_count_wait(&started, N + 2), 0);
    gather_future *fb[2] = {held.f, bad.f};
    res_poison(res, 2);
    gjob_start(&j, fb, 2, res, 0, long_ns);
    tu_gate_open(&bad.gate);
    ck_assert_int_eq(gjob_finish(&j), 1061);
    RES_CHECK(res[0], EINPROGRESS, NULL);
    RES_CHECK(res[1], 1061, &payloads[1]);
    /* With GATHER_FOREVER it is gather_futures(). */
    ck_assert_int_eq(gather_futures_for(fb, 2, res, 0, GATHER_FOREVER), 1061);
    RES_CHECK(res[0], EINPROGRESS, NULL);
    /* WAIT_ALL and a deadline that passes while `held` runs: ETIMEDOUT, the
     * failure in the snapshot. */
    res_poison(res, 2);
    ck_assert_int_eq(gather_futures_for(fb, 2, res, GATHER_WAIT_ALL,
                                        20 * 1000 * 1000), ETIMEDOUT);
    RES_CHECK(res[0], EINPROGRESS, NULL);
    RES_CHECK(res[1], 1061, &payloads[1]);
    ck_assert_int_eq(slot_saw_cancel(&held), 0);
    /* WAIT_ALL and a long deadline: it waits for held. */
    res_poison(res, 2);
    gjob_start(&j, fb, 2, res, GATHER_WAIT_ALL, long_ns);
    ck_assert(not_within(&j.done, 50));
    tu_gate_open(&held.gate);
    ck_assert_int_eq(gjob_finish(&j), 1061);
    RES_CHECK(res[0], 0, &vals[0]);
    RES_CHECK(res[1], 1061, &payloads[1]);
    ck_assert(!gather_future_cancelled(held.f));

    ck_assert_int_eq(gather_pool_destroy(p), 0);
    slot_fini(&held);
    slot_fini(&bad);
    tu_count_destroy(&started);
}
END_TEST

START_TEST(test_for_forever_is_gather_futures)
{
    enum { N = 3 };
    gather_pool *p = tu_pool(N);
    tu_count started;
    tu_count_init(&started);
    slot s[N];
    gather_future *fs[N];
    for (int i = 0; i < N; i++) {
        slot_init(&s[i], &started, i == 1 ? 1071 : 0,
                  i == 1 ? (void *)&payloads[1] : (void *)&vals[i]);
        slot_submit(p, &s[i]);
        fs[i] = s[i].f;
    }
    ck_assert_int_eq(tu_count_wait(&started, N), 0);
    gather_result res[N];
    res_poison(res, N);
    gjob j = {0};
    /* A timeout that is practically forever (gjob_main calls
     * gather_futures() only for GATHER_FOREVER itself): the deadline
     * saturates instead of wrapping. */
    gjob_start(&j, fs, N, res, GATHER_RETURN_ERRORS, GATHER_FOREVER - 1);
    tu_gate_open(&s[2].gate);
    tu_gate_open(&s[1].gate);
    ck_assert(not_within(&j.done, 30));
    tu_gate_open(&s[0].gate);
    ck_assert_int_eq(gjob_finish(&j), 0);
    RES_CHECK(res[1], 1071, &payloads[1]);
    res_poison(res, N);
    ck_assert_int_eq(gather_futures_for(fs, N, res, 0, GATHER_FOREVER), 1071);
    RES_CHECK(res[0], 0, &vals[0]);
    RES_CHECK(res[1], 1071, &payloads[1]);
    RES_CHECK(res[2], 0, &vals[2]);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    for (int i = 0; i < N; i++)
        slot_fini(&s[i]);
    tu_count_destroy(&started);
}
END_TEST

START_TEST(test_for_cancel_on_error_timeout_cancels_what_is_not_done)
{
    /* One thread: `run` (listed) holds it; `pend` (listed) and `other` (not
     * listed) are queued; `ok` is done. */
    gather_pool *p = tu_pool(1);
    tu_count started;
    tu_count_init(&started);
    slot run, pend, other, ok;
    slot_init(&run, &started, 0, &vals[0]);
    slot_init_now(&pend, 0, &vals[1]);
    slot_init_now(&other, 0, &vals[2]);
    slot_init_now(&ok, 0, &vals[3]);
    slot_submit(p, &ok);
    slot_expect(&ok, 0, &vals[3]);
    slot_submit(p, &run);
    ck_assert_int_eq(tu_count_wait(&started, 1), 0);
    slot_submit(p, &pend);
    slot_submit(p, &other);
    gather_future *fs[3] = {run.f, pend.f, ok.f};
    gather_result res[3];
    res_poison(res, 3);
    ck_assert_int_eq(gather_futures_for(fs, 3, res, GATHER_CANCEL_ON_ERROR,
                                        20 * 1000 * 1000), ETIMEDOUT);
    RES_CHECK(res[0], EINPROGRESS, NULL); /* running: flagged only */
    RES_CHECK(res[1], ECANCELED, NULL);   /* cancelled before it started */
    RES_CHECK(res[2], 0, &vals[3]);       /* done: untouched */
    ck_assert(gather_future_cancelled(pend.f));
    ck_assert(!gather_future_done(other.f));
    tu_gate_open(&run.gate);
    slot_expect(&run, 0, &vals[0]);
    ck_assert_int_eq(slot_saw_cancel(&run), 1);
    slot_expect(&other, 0, &vals[2]);
    ck_assert(!gather_future_cancelled(other.f));
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    ck_assert_int_eq(slot_ran(&pend), 0);
    slot_fini(&run);
    slot_fini(&pend);
    slot_fini(&other);
    slot_fini(&ok);
    tu_count_destroy(&started);
}
END_TEST

/* TaskGroup with a deadline: the failure cancels the pending one, the
 * running one does not react; at the deadline the call returns ETIMEDOUT
 * without waiting for it. A zero timeout does the same at once. */
START_TEST(test_for_wait_all_cancel_on_error_returns_at_the_deadline)
{
    const uint64_t timeouts[2] = {20 * 1000 * 1000, 0};
    for (int t = 0; t < 2; t++) {
        gather_pool *pa = tu_pool(1);
        gather_pool *pb = tu_pool(1);
        tu_count started;
        tu_count_init(&started);
        slot run, pend, bad;
        slot_init(&run, &started, 0, &vals[0]);
        slot_init_now(&pend, 0, &vals[1]);
        slot_init_now(&bad, 1081, &payloads[1]);
        slot_submit(pa, &run);
        ck_assert_int_eq(tu_count_wait(&started, 1), 0);
        slot_submit(pa, &pend);
        slot_submit(pb, &bad);
        slot_expect(&bad, 1081, &payloads[1]);
        gather_future *fs[3] = {run.f, pend.f, bad.f};
        gather_result res[3];
        res_poison(res, 3);
        ck_assert_int_eq(gather_futures_for(fs, 3, res,
                                            GATHER_WAIT_ALL | GATHER_CANCEL_ON_ERROR,
                                            timeouts[t]), ETIMEDOUT);
        RES_CHECK(res[0], EINPROGRESS, NULL);
        RES_CHECK(res[1], ECANCELED, NULL);
        RES_CHECK(res[2], 1081, &payloads[1]);
        ck_assert(!gather_future_done(run.f));
        tu_gate_open(&run.gate);
        slot_expect(&run, 0, &vals[0]);
        ck_assert_int_eq(slot_saw_cancel(&run), 1);
        ck_assert_int_eq(gather_pool_destroy(pa), 0);
        ck_assert_int_eq(gather_pool_destroy(pb), 0);
        ck_assert_int_eq(slot_ran(&pend), 0);
        slot_fini(&run);
        slot_fini(&pend);
        slot_fini(&bad);
        tu_count_destroy(&started);
    }
}
END_TEST

/* A count the compiler cannot see (a NULL list with n > 0 would warn). */
static volatile size_t opaque_one_v = 1;
#define opaque_one ((size_t)opaque_one_v)

START_TEST(test_for_argument_errors)
{
    gather_pool *p = tu_pool(1);
    slot a;
    slot_init_now(&a, 0, &vals[0]);
    slot_submit(p, &a);
    slot_expect(&a, 0, &vals[0]);
    gather_future *one[1] = {a.f};
    gather_future *with_null[2] = {a.f, NULL};
    gather_result res[2];
    const uint64_t ts[3] = {0, 1000, GATHER_FOREVER};
    for (int t = 0; t < 3; t++) {
        uint64_t to = ts[t];
        ck_assert_int_eq(gather_futures_for(NULL, 0, NULL, 0, to), 0);
        ck_assert_int_eq(gather_futures_for(NULL, 0, res, GATHER_WAIT_ALL, to), 0);
        ck_assert_int_eq(gather_futures_for(NULL, 0, NULL, 8u, to), EINVAL);
        ck_assert_int_eq(gather_futures_for(NULL, 0, NULL,
                                            GATHER_RETURN_ERRORS | GATHER_CANCEL_ON_ERROR,
                                            to), EINVAL);
        ck_assert_int_eq(gather_futures_for(NULL, 0, NULL,
                                            GATHER_RETURN_ERRORS | GATHER_CANCEL_ON_ERROR |
                                                GATHER_WAIT_ALL,
                                            to), EINVAL);
        ck_assert_int_eq(gather_futures_for(NULL, opaque_one, res, 0, to), EINVAL);
        ck_assert_int_eq(gather_futures_for(with_null, 2, res, 0, to), EINVAL);
        ck_assert_int_eq(gather_futures_for(one, 1, res, 1u << 31, to), EINVAL);
        ck_assert_int_eq(gather_futures_for(one, 1, res, 0, to), 0);
        /* WAIT_ALL goes with either other flag. */
        ck_assert_int_eq(gather_futures_for(one, 1, res,
                                            GATHER_WAIT_ALL | GATHER_RETURN_ERRORS,
                                            to), 0);
        ck_assert_int_eq(gather_futures_for(one, 1, res,
                                            GATHER_WAIT_ALL | GATHER_CANCEL_ON_ERROR,
                                            to), 0);
    }
    gather_future *agg = NULL;
    ck_assert_int_eq(gather_all(one, 1, 8u, &agg), EINVAL);
    ck_assert_int_eq(gather_all(one, 1, GATHER_WAIT_ALL | GATHER_RETURN_ERRORS |
                                            GATHER_CANCEL_ON_ERROR, &agg), EINVAL);
    void *args[1] = {&vals[0]};
    ck_assert_int_eq(gather_map(p, tu_task_identity, args, 1, res,
                                GATHER_WAIT_ALL | GATHER_RETURN_ERRORS |
                                    GATHER_CANCEL_ON_ERROR), EINVAL);
    ck_assert_int_eq(gather_map(p, tu_task_identity, args, 1, res,
                                GATHER_WAIT_ALL | GATHER_RETURN_ERRORS), 0);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    slot_fini(&a);
}
END_TEST

/* A task that lists its own future. */
typedef struct self_arg {
    tu_gate go;
    gather_future *me;
    int rc[3];
} self_arg;

static int self_task(void *arg, void **result)
{
    self_arg *a = (self_arg *)arg;
    tu_gate_wait(&a->go);
    gather_future *fs[1] = {a->me};
    a->rc[0] = gather_futures_for(fs, 1, NULL, 0, 1000 * 1000);
    a->rc[1] = gather_futures_for(fs, 1, NULL, GATHER_WAIT_ALL, 0);
    a->rc[2] = gather_futures(fs, 1, NULL, GATHER_WAIT_ALL);
    *result = NULL;
    return 0;
}

START_TEST(test_for_own_future_is_edeadlk)
{
    gather_pool *p = tu_pool(1);
    self_arg a;
    memset(&a, 0, sizeof a);
    tu_gate_init(&a.go);
    ck_assert_int_eq(gather_submit(p, self_task, &a, &a.me), 0);
    tu_gate_open(&a.go);
    ck_assert_int_eq(gather_future_wait(a.me, NULL), 0);
    ck_assert_int_eq(a.rc[0], EDEADLK);
    ck_assert_int_eq(a.rc[1], EDEADLK);
    ck_assert_int_eq(a.rc[2], EDEADLK);
    gather_future_release(a.me);
    tu_gate_destroy(&a.go);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

/* ======================================================================== */

/* ---- more (every code kept; a TaskGroup map on one thread; a failed
 * child already done when gather_all() is called) ---------------------- */

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
    /* A pool of its own: the default pool's blocks would come from this
     * suite's counting allocator and outlive the test (valgrind). */
    gather_pool *p = tu_pool(1);
    ck_assert_int_eq(gather_map(p, job_code, args, 3, res, GATHER_RETURN_ERRORS), 0);
    ck_assert_int_eq(res[0].error, INT_MIN);
    ck_assert_int_eq(res[1].error, INT_MIN + 1);
    ck_assert_int_eq(res[2].error, INT_MAX);
    ck_assert_int_eq(gather_map(p, job_code, args, 1, res, GATHER_WAIT_ALL), INT_MIN);
    gather_future *f;
    ck_assert_int_eq(gather_submit(p, job_code, args[0], &f), 0);
    ck_assert_int_eq(gather_future_wait(f, NULL), INT_MIN);
    gather_future_release(f);
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

int main(void)
{
    /* Before any pool: afterwards it is EBUSY. */
    if (gather_replace_allocator(counting_malloc, free) != 0)
        return EXIT_FAILURE;
    for (int i = 0; i < NV; i++) {
        vals[i] = i;
        payloads[i] = 100 + i;
    }
    Suite *s = suite_create("waitall");

    TCase *tf = tcase_create("gather_futures_wait_all");
    tcase_set_timeout(tf, 60);
    tcase_add_test(tf, test_wait_all_returns_only_after_slow_task_finishes);
    tcase_add_test(tf, test_wait_all_with_results_null_and_all_succeeding);
    tcase_add_test(tf, test_wait_all_returns_first_failure_not_lowest_index);
    tcase_add_test(tf, test_wait_all_cancel_on_error_cancels_pending_and_waits_for_running);
    tcase_add_test(tf, test_wait_all_with_return_errors_is_return_errors);
    tcase_add_test(tf, test_wait_all_inside_task_helps);
    suite_add_tcase(s, tf);

    TCase *ta = tcase_create("gather_all_wait_all");
    tcase_set_timeout(ta, 60);
    tcase_add_test(ta, test_all_wait_all_completes_only_when_every_child_is_done);
    tcase_add_test(ta, test_all_wait_all_code_is_first_failure);
    tcase_add_test(ta, test_all_wait_all_cancel_on_error_is_a_task_group);
    tcase_add_test(ta, test_all_wait_all_cancel_of_aggregate_completes_at_once);
    suite_add_tcase(s, ta);

    TCase *tm = tcase_create("gather_map_wait_all");
    tcase_set_timeout(tm, 60);
    tcase_add_test(tm, test_map_wait_all_keeps_stack_args_safe);
    tcase_add_test(tm, test_map_wait_all_cancel_on_error_code_and_no_job_left);
    tcase_add_test(tm, test_map_wait_all_cancel_on_error_accounts_every_job);
    suite_add_tcase(s, tm);

    TCase *tt = tcase_create("gather_futures_for");
    tcase_set_timeout(tt, 60);
    tcase_add_test(tt, test_for_times_out_with_snapshot_and_tasks_keep_running);
    tcase_add_test(tt, test_for_zero_timeout_only_looks);
    tcase_add_test(tt, test_for_on_pool_thread_zero_looks_and_timed_wait_helps);
    tcase_add_test(tt, test_for_success_and_failure_before_the_deadline);
    tcase_add_test(tt, test_for_forever_is_gather_futures);
    tcase_add_test(tt, test_for_cancel_on_error_timeout_cancels_what_is_not_done);
    tcase_add_test(tt, test_for_wait_all_cancel_on_error_returns_at_the_deadline);
    tcase_add_test(tt, test_for_argument_errors);
    tcase_add_test(tt, test_for_own_future_is_edeadlk);
    tcase_add_test(tt, test_int_min_is_kept_as_is);
    tcase_add_test(tt, test_gather_map_task_group_cancels_jobs_not_started);
    suite_add_tcase(s, tt);

    return tu_run_suite(s);
}
