/* SPDX-License-Identifier: MIT */
/*
 * check_gather.c - gather_futures(), gather_all(), gather_map() and
 * gather_wait_any(): ordering, fail-fast, GATHER_RETURN_ERRORS,
 * GATHER_CANCEL_ON_ERROR, aggregates, borrowing.
 *
 * Interleavings are forced with gates: a "held" task blocks its worker until
 * the test opens its gate, so the test knows exactly which futures are done
 * when it calls into the library.
 */
#include "testutil.h"

#include <sched.h>
#include <string.h>

#define NV 16
static int vals[NV];     /* success values: &vals[i] */
static int payloads[NV]; /* failure payloads: &payloads[i] */

/* ---- slots: one gated task and its future ------------------------------- */

typedef struct slot {
    tu_gate gate;
    tu_gated g;
    gather_future *f;
} slot;

/* A held task: blocks until its gate is opened. `started` may be NULL. */
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

/* A task that finishes as soon as it runs. */
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

/* Waits for a slot's future and checks its outcome. */
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

/* ---- a pthread that calls gather_futures() ------------------------------ */

typedef struct gjob {
    pthread_t th;
    gather_future **fs;
    size_t n;
    gather_result *res;
    unsigned flags;
    int rc;
    tu_count done;
} gjob;

static void *gjob_main(void *arg)
{
    gjob *j = (gjob *)arg;
    j->rc = gather_futures(j->fs, j->n, j->res, j->flags);
    tu_count_add(&j->done, 1);
    return NULL;
}

static void gjob_start(gjob *j, gather_future **fs, size_t n,
                       gather_result *res, unsigned flags)
{
    j->fs = fs;
    j->n = n;
    j->res = res;
    j->flags = flags;
    j->rc = -1;
    tu_count_init(&j->done);
    ck_assert_int_eq(pthread_create(&j->th, NULL, gjob_main, j), 0);
}

static bool gjob_returned(gjob *j) { return tu_count_get(&j->done) > 0; }

/* Waits (watchdog) for the gather to return, joins, returns its code. */
static int gjob_finish(gjob *j)
{
    ck_assert_int_eq(tu_count_wait(&j->done, 1), 0);
    pthread_join(j->th, NULL);
    tu_count_destroy(&j->done);
    return j->rc;
}

/* ======================================================================== */
/* gather_futures                                                           */
/* ======================================================================== */

START_TEST(test_results_follow_input_order_under_reverse_completion)
{
    enum { N = 5 };
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
    ck_assert_int_eq(tu_count_wait(&started, N), 0); /* all running */

    gather_result res[N];
    res_poison(res, N);
    gjob j;
    gjob_start(&j, fs, N, res, 0);
    /* Complete them last to first: each waited for before the next opens. */
    for (int i = N - 1; i >= 0; i--) {
        if (i == 0)
            ck_assert(!gjob_returned(&j)); /* fs[0] is still held */
        tu_gate_open(&s[i].gate);
        slot_expect(&s[i], 0, &vals[i]);
    }
    ck_assert_int_eq(gjob_finish(&j), 0);
    for (int i = 0; i < N; i++)
        RES_CHECK(res[i], 0, &vals[i]);

    /* Again, now that all are done, in a scrambled list. */
    gather_future *perm[N] = {fs[3], fs[0], fs[4], fs[2], fs[1]};
    const int pi[N] = {3, 0, 4, 2, 1};
    ck_assert_int_eq(gather_futures(perm, N, res, 0), 0);
    for (int i = 0; i < N; i++)
        RES_CHECK(res[i], 0, &vals[pi[i]]);

    ck_assert_int_eq(gather_pool_destroy(p), 0);
    for (int i = 0; i < N; i++)
        slot_fini(&s[i]);
    tu_count_destroy(&started);
}
END_TEST

/* Opens gates one after the other from its own thread. */
typedef struct opener {
    pthread_t th;
    slot *s;
    int n;
} opener;

static void *opener_main(void *arg)
{
    opener *o = (opener *)arg;
    for (int i = 0; i < o->n; i++)
        tu_gate_open(&o->s[i].gate);
    return NULL;
}

START_TEST(test_results_may_be_null)
{
    enum { N = 8 };
    gather_pool *p = tu_pool(2);
    slot s[N];
    gather_future *fs[N];

    /* Success, results NULL: returns 0 only once all are done. */
    for (int i = 0; i < N; i++) {
        slot_init(&s[i], NULL, 0, &vals[i]);
        slot_submit(p, &s[i]);
        fs[i] = s[i].f;
    }
    opener o = {.s = s, .n = N};
    ck_assert_int_eq(pthread_create(&o.th, NULL, opener_main, &o), 0);
    ck_assert_int_eq(gather_futures(fs, N, NULL, 0), 0);
    for (int i = 0; i < N; i++) {
        ck_assert(gather_future_done(fs[i]));
        ck_assert_int_eq(gather_future_error(fs[i]), 0);
        ck_assert_ptr_eq(gather_future_value(fs[i]), &vals[i]);
    }
    pthread_join(o.th, NULL);
    for (int i = 0; i < N; i++)
        slot_fini(&s[i]);

    /* A failure with results NULL: its code is returned. */
    for (int i = 0; i < N; i++) {
        if (i == 5)
            slot_init(&s[i], NULL, 1001, &payloads[5]);
        else
            slot_init(&s[i], NULL, 0, &vals[i]);
        slot_submit(p, &s[i]);
        fs[i] = s[i].f;
    }
    ck_assert_int_eq(pthread_create(&o.th, NULL, opener_main, &o), 0);
    ck_assert_int_eq(gather_futures(fs, N, NULL, 0), 1001);
    /* RETURN_ERRORS with results NULL: 0, and everything is done. */
    ck_assert_int_eq(gather_futures(fs, N, NULL, GATHER_RETURN_ERRORS), 0);
    for (int i = 0; i < N; i++)
        ck_assert(gather_future_done(fs[i]));
    pthread_join(o.th, NULL);

    ck_assert_int_eq(gather_pool_destroy(p), 0);
    for (int i = 0; i < N; i++)
        slot_fini(&s[i]);
}
END_TEST

START_TEST(test_fail_fast_returns_failure_while_sibling_held)
{
    gather_pool *p = tu_pool(2);
    tu_count started;
    tu_count_init(&started);
    slot held, bad;
    slot_init(&held, &started, 0, &vals[0]);
    slot_init_now(&bad, 1001, &payloads[1]);
    slot_submit(p, &held);
    ck_assert_int_eq(tu_count_wait(&started, 1), 0);
    slot_submit(p, &bad);

    gather_future *fs[2] = {held.f, bad.f};
    gather_result res[2];
    res_poison(res, 2);
    ck_assert_int_eq(gather_futures(fs, 2, res, 0), 1001);
    RES_CHECK(res[0], EINPROGRESS, NULL);
    RES_CHECK(res[1], 1001, &payloads[1]);
    ck_assert(!gather_future_done(held.f));

    /* The other order, with the held task twice. */
    gather_future *fs2[3] = {bad.f, held.f, held.f};
    gather_result res2[3];
    res_poison(res2, 3);
    ck_assert_int_eq(gather_futures(fs2, 3, res2, 0), 1001);
    RES_CHECK(res2[0], 1001, &payloads[1]);
    RES_CHECK(res2[1], EINPROGRESS, NULL);
    RES_CHECK(res2[2], EINPROGRESS, NULL);

    /* The held task was not cancelled: it completes normally. */
    tu_gate_open(&held.gate);
    slot_expect(&held, 0, &vals[0]);
    ck_assert_int_eq(slot_saw_cancel(&held), 0);
    ck_assert(!gather_future_cancelled(held.f));
    ck_assert_int_eq(slot_ran(&held), 1);

    ck_assert_int_eq(gather_pool_destroy(p), 0);
    slot_fini(&held);
    slot_fini(&bad);
    tu_count_destroy(&started);
}
END_TEST

START_TEST(test_fail_fast_returns_when_failure_arrives_during_wait)
{
    gather_pool *p = tu_pool(3);
    tu_count started;
    tu_count_init(&started);
    slot a, bad, c;
    slot_init(&a, &started, 0, &vals[0]);
    slot_init(&bad, &started, 1002, &payloads[2]);
    slot_init(&c, &started, 0, &vals[2]);
    slot_submit(p, &a);
    slot_submit(p, &bad);
    slot_submit(p, &c);
    ck_assert_int_eq(tu_count_wait(&started, 3), 0);

    gather_future *fs[3] = {a.f, bad.f, c.f};
    gather_result res[3];
    res_poison(res, 3);
    gjob j;
    gjob_start(&j, fs, 3, res, 0);
    tu_gate_open(&bad.gate);
    /* Returns while a and c are still held. */
    ck_assert_int_eq(gjob_finish(&j), 1002);
    RES_CHECK(res[0], EINPROGRESS, NULL);
    RES_CHECK(res[1], 1002, &payloads[2]);
    RES_CHECK(res[2], EINPROGRESS, NULL);
    ck_assert(!gather_future_done(a.f));
    ck_assert(!gather_future_done(c.f));

    tu_gate_open(&c.gate);
    tu_gate_open(&a.gate);
    slot_expect(&a, 0, &vals[0]);
    slot_expect(&c, 0, &vals[2]);
    ck_assert_int_eq(slot_saw_cancel(&a), 0);
    ck_assert_int_eq(slot_saw_cancel(&c), 0);

    ck_assert_int_eq(gather_pool_destroy(p), 0);
    slot_fini(&a);
    slot_fini(&bad);
    slot_fini(&c);
    tu_count_destroy(&started);
}
END_TEST

START_TEST(test_fail_fast_returns_the_failure_seen_first)
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
    gather_result res[2];
    res_poison(res, 2);
    ck_assert_int_eq(gather_futures(fs, 2, res, 0), 1004);
    RES_CHECK(res[0], EINPROGRESS, NULL);
    RES_CHECK(res[1], 1004, &payloads[4]);

    tu_gate_open(&late.gate);
    slot_expect(&late, 1003, &payloads[3]);
    ck_assert_int_eq(gather_futures(fs, 2, NULL, GATHER_RETURN_ERRORS), 0);
    ck_assert_int_eq(gather_futures(fs, 1, res, 0), 1003);
    RES_CHECK(res[0], 1003, &payloads[3]);

    ck_assert_int_eq(gather_pool_destroy(p), 0);
    slot_fini(&late);
    slot_fini(&early);
    tu_count_destroy(&started);
}
END_TEST

START_TEST(test_return_errors_waits_for_all_and_captures_failures)
{
    gather_pool *p = tu_pool(4);
    tu_count started;
    tu_count_init(&started);
    slot s[4];
    slot_init(&s[0], &started, 0, &vals[0]);          /* held success */
    slot_init_now(&s[1], 1005, &payloads[5]);         /* fails at once */
    slot_init(&s[2], &started, 1006, &payloads[6]);   /* held failure */
    slot_init_now(&s[3], 0, &vals[3]);                /* succeeds at once */
    gather_future *fs[4];
    for (int i = 0; i < 4; i++) {
        slot_submit(p, &s[i]);
        fs[i] = s[i].f;
    }
    ck_assert_int_eq(tu_count_wait(&started, 2), 0);

    gather_result res[4];
    res_poison(res, 4);
    gjob j;
    gjob_start(&j, fs, 4, res, GATHER_RETURN_ERRORS);
    slot_expect(&s[1], 1005, &payloads[5]);
    slot_expect(&s[3], 0, &vals[3]);
    tu_gate_open(&s[2].gate);
    slot_expect(&s[2], 1006, &payloads[6]);
    ck_assert(!gjob_returned(&j)); /* s[0] is still held */
    tu_gate_open(&s[0].gate);
    ck_assert_int_eq(gjob_finish(&j), 0);
    RES_CHECK(res[0], 0, &vals[0]);
    RES_CHECK(res[1], 1005, &payloads[5]);
    RES_CHECK(res[2], 1006, &payloads[6]);
    RES_CHECK(res[3], 0, &vals[3]);

    ck_assert_int_eq(gather_pool_destroy(p), 0);
    for (int i = 0; i < 4; i++)
        slot_fini(&s[i]);
    tu_count_destroy(&started);
}
END_TEST

START_TEST(test_cancel_on_error_cancels_pending_and_flags_running)
{
    /* Pool A: `run` (listed) and `block` (not listed) occupy both threads;
     * pend1, pend2 (listed) and other (not listed) are queued behind them.
     * The failing task runs on pool B, so no thread of A frees up. */
    gather_pool *pa = tu_pool(2);
    gather_pool *pb = tu_pool(1);
    tu_count started;
    tu_count_init(&started);
    slot run, block, pend1, pend2, other, bad;
    slot_init(&run, &started, 0, &vals[0]);
    slot_init(&block, &started, 0, &vals[1]);
    slot_init_now(&pend1, 0, &vals[2]);
    slot_init_now(&pend2, 0, &vals[3]);
    slot_init_now(&other, 0, &vals[4]);
    slot_init(&bad, &started, 1007, &payloads[7]);
    slot_submit(pa, &run);
    slot_submit(pa, &block);
    slot_submit(pb, &bad);
    ck_assert_int_eq(tu_count_wait(&started, 3), 0);
    slot_submit(pa, &pend1);
    slot_submit(pa, &pend2);
    slot_submit(pa, &other);

    gather_future *fs[4] = {run.f, pend1.f, bad.f, pend2.f};
    gather_result res[4];
    res_poison(res, 4);
    gjob j;
    gjob_start(&j, fs, 4, res, GATHER_CANCEL_ON_ERROR);
    tu_gate_open(&bad.gate);
    ck_assert_int_eq(gjob_finish(&j), 1007);
    RES_CHECK(res[0], EINPROGRESS, NULL);
    RES_CHECK(res[1], ECANCELED, NULL);
    RES_CHECK(res[2], 1007, &payloads[7]);
    RES_CHECK(res[3], ECANCELED, NULL);

    /* The pending ones of the list were cancelled. */
    ck_assert(gather_future_done(pend1.f));
    ck_assert(gather_future_cancelled(pend1.f));
    ck_assert_int_eq(gather_future_error(pend2.f), ECANCELED);
    ck_assert(gather_future_cancelled(pend2.f));
    ck_assert_ptr_null(gather_future_value(pend2.f));
    /* The one outside the list was not. */
    ck_assert(!gather_future_done(other.f));
    ck_assert(!gather_future_done(run.f));

    tu_gate_open(&run.gate);
    slot_expect(&run, 0, &vals[0]);
    ck_assert_int_eq(slot_saw_cancel(&run), 1); /* running: flag set */
    tu_gate_open(&block.gate);
    slot_expect(&block, 0, &vals[1]);
    ck_assert_int_eq(slot_saw_cancel(&block), 0);
    slot_expect(&other, 0, &vals[4]);
    ck_assert(!gather_future_cancelled(other.f));

    ck_assert_int_eq(gather_pool_destroy(pa), 0);
    ck_assert_int_eq(gather_pool_destroy(pb), 0);
    ck_assert_int_eq(slot_ran(&pend1), 0); /* never ran */
    ck_assert_int_eq(slot_ran(&pend2), 0);
    ck_assert_int_eq(slot_ran(&other), 1);
    ck_assert_int_eq(slot_ran(&run), 1);

    slot_fini(&run);
    slot_fini(&block);
    slot_fini(&pend1);
    slot_fini(&pend2);
    slot_fini(&other);
    slot_fini(&bad);
    tu_count_destroy(&started);
}
END_TEST

START_TEST(test_cancel_on_error_with_return_errors_is_einval)
{
    gather_pool *p = tu_pool(1);
    slot a;
    slot_init_now(&a, 0, &vals[0]);
    slot_submit(p, &a);
    gather_future *fs[1] = {a.f};
    ck_assert_int_eq(gather_futures(fs, 1, NULL,
                                    GATHER_CANCEL_ON_ERROR | GATHER_RETURN_ERRORS),
                     EINVAL);
    slot_expect(&a, 0, &vals[0]);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    slot_fini(&a);
}
END_TEST

START_TEST(test_cancelled_future_counts_as_ecanceled)
{
    gather_pool *p = tu_pool(1);
    tu_count started;
    tu_count_init(&started);
    slot block, pend, ok;
    slot_init(&block, &started, 0, &vals[0]);
    slot_init_now(&pend, 0, &vals[1]);
    slot_init_now(&ok, 0, &vals[2]);
    slot_submit(p, &block);
    ck_assert_int_eq(tu_count_wait(&started, 1), 0);
    slot_submit(p, &pend);
    slot_submit(p, &ok);
    ck_assert(gather_future_cancel(pend.f));

    gather_result res[3];
    res_poison(res, 3);
    gather_future *fs1[1] = {pend.f};
    ck_assert_int_eq(gather_futures(fs1, 1, res, 0), ECANCELED);
    RES_CHECK(res[0], ECANCELED, NULL);

    /* Fail-fast: returned at once although block is still held. */
    gather_future *fs2[2] = {block.f, pend.f};
    res_poison(res, 2);
    ck_assert_int_eq(gather_futures(fs2, 2, res, 0), ECANCELED);
    RES_CHECK(res[0], EINPROGRESS, NULL);
    RES_CHECK(res[1], ECANCELED, NULL);

    tu_gate_open(&block.gate);
    gather_future *fs3[3] = {ok.f, pend.f, block.f};
    res_poison(res, 3);
    ck_assert_int_eq(gather_futures(fs3, 3, res, GATHER_RETURN_ERRORS), 0);
    RES_CHECK(res[0], 0, &vals[2]);
    RES_CHECK(res[1], ECANCELED, NULL);
    RES_CHECK(res[2], 0, &vals[0]);

    ck_assert_int_eq(gather_pool_destroy(p), 0);
    ck_assert_int_eq(slot_ran(&pend), 0);
    slot_fini(&block);
    slot_fini(&pend);
    slot_fini(&ok);
    tu_count_destroy(&started);
}
END_TEST

START_TEST(test_duplicate_futures_in_list)
{
    gather_pool *p = tu_pool(2);
    slot g, h, bad;
    slot_init(&g, NULL, 0, &vals[0]);
    slot_init_now(&h, 0, &vals[1]);
    slot_init_now(&bad, 1008, &payloads[8]);
    slot_submit(p, &g);
    slot_submit(p, &h);
    slot_submit(p, &bad);

    /* g (held) three times: the gather must wait for it, once. */
    gather_future *fs[4] = {g.f, h.f, g.f, g.f};
    gather_result res[4];
    res_poison(res, 4);
    gjob j;
    gjob_start(&j, fs, 4, res, 0);
    slot_expect(&h, 0, &vals[1]);
    ck_assert(!gjob_returned(&j));
    tu_gate_open(&g.gate);
    ck_assert_int_eq(gjob_finish(&j), 0);
    RES_CHECK(res[0], 0, &vals[0]);
    RES_CHECK(res[1], 0, &vals[1]);
    RES_CHECK(res[2], 0, &vals[0]);
    RES_CHECK(res[3], 0, &vals[0]);

    /* A failed future three times. */
    gather_future *fb[3] = {bad.f, bad.f, bad.f};
    res_poison(res, 3);
    ck_assert_int_eq(gather_futures(fb, 3, res, 0), 1008);
    ck_assert_int_eq(gather_futures(fb, 3, res, GATHER_RETURN_ERRORS), 0);
    for (int i = 0; i < 3; i++)
        RES_CHECK(res[i], 1008, &payloads[8]);

    ck_assert_int_eq(gather_pool_destroy(p), 0);
    slot_fini(&g);
    slot_fini(&h);
    slot_fini(&bad);
}
END_TEST

START_TEST(test_zero_futures_returns_zero)
{
    gather_future *fs[1] = {NULL};
    gather_result res[1] = {{-7, &vals[0]}};
    ck_assert_int_eq(gather_futures(NULL, 0, NULL, 0), 0);
    ck_assert_int_eq(gather_futures(fs, 0, res, 0), 0);
    ck_assert_int_eq(gather_futures(NULL, 0, NULL, GATHER_RETURN_ERRORS), 0);
    ck_assert_int_eq(gather_futures(NULL, 0, NULL, GATHER_CANCEL_ON_ERROR), 0);
    /* n == 0 touches nothing. */
    ck_assert_int_eq(res[0].error, -7);
    ck_assert_ptr_eq(res[0].value, &vals[0]);
}
END_TEST

START_TEST(test_futures_are_borrowed_not_released)
{
    /* Each future is released exactly once by the test after the gathers;
     * ASan/valgrind catch a gather that released (use after free, double
     * free) or kept (leak) a reference. */
    gather_pool *pa = tu_pool(2);
    gather_pool *pb = tu_pool(1);
    tu_count started;
    tu_count_init(&started);
    slot ok, held, bad, pend;
    slot_init_now(&ok, 0, &vals[0]);
    slot_init(&held, &started, 0, &vals[1]);
    slot_init(&bad, &started, 1009, &payloads[9]);
    slot_init_now(&pend, 0, &vals[3]);
    slot_submit(pa, &ok);
    slot_submit(pa, &held);
    slot_submit(pb, &bad);
    ck_assert_int_eq(tu_count_wait(&started, 2), 0);
    slot_expect(&ok, 0, &vals[0]);

    gather_future *fs[2] = {ok.f, ok.f};
    ck_assert_int_eq(gather_futures(fs, 2, NULL, 0), 0);
    ck_assert_int_eq(gather_futures(fs, 2, NULL, GATHER_RETURN_ERRORS), 0);

    /* A fail-fast return and a CANCEL_ON_ERROR return with futures left
     * pending: whatever the gather registered on them must not own them. */
    tu_count started2;
    tu_count_init(&started2);
    slot blk;
    slot_init(&blk, &started2, 0, &vals[4]);
    slot_submit(pa, &blk); /* pa now has both threads held */
    ck_assert_int_eq(tu_count_wait(&started2, 1), 0);
    slot_submit(pa, &pend);
    gather_future *fl[4] = {held.f, ok.f, pend.f, bad.f};
    gjob j;
    gjob_start(&j, fl, 4, NULL, GATHER_CANCEL_ON_ERROR);
    tu_gate_open(&bad.gate);
    ck_assert_int_eq(gjob_finish(&j), 1009);
    ck_assert(gather_future_cancelled(pend.f));
    gather_future *fl2[2] = {held.f, bad.f};
    ck_assert_int_eq(gather_futures(fl2, 2, NULL, 0), 1009);

    tu_gate_open(&held.gate);
    tu_gate_open(&blk.gate);
    slot_expect(&held, 0, &vals[1]);
    slot_expect(&blk, 0, &vals[4]);
    ck_assert_int_eq(gather_pool_destroy(pa), 0);
    ck_assert_int_eq(gather_pool_destroy(pb), 0);
    /* Still readable: we hold our references. */
    ck_assert_ptr_eq(gather_future_value(ok.f), &vals[0]);
    ck_assert_ptr_eq(gather_future_value(bad.f), &payloads[9]);
    ck_assert_int_eq(gather_future_error(pend.f), ECANCELED);
    slot_fini(&ok);
    slot_fini(&held);
    slot_fini(&bad);
    slot_fini(&pend);
    slot_fini(&blk);
    tu_count_destroy(&started);
    tu_count_destroy(&started2);
}
END_TEST

START_TEST(test_results_not_written_after_fail_fast_return)
{
    enum { N = 6 };
    gather_pool *p = tu_pool(N);
    tu_count started;
    tu_count_init(&started);
    slot s[N];
    gather_future *fs[N];
    for (int i = 0; i < N; i++) {
        if (i == 2)
            slot_init_now(&s[i], 1010, &payloads[10]);
        else
            slot_init(&s[i], &started, i == 4 ? 1011 : 0,
                      i == 4 ? (void *)&payloads[11] : (void *)&vals[i]);
        slot_submit(p, &s[i]);
        fs[i] = s[i].f;
    }
    ck_assert_int_eq(tu_count_wait(&started, N - 1), 0);

    gather_result res[N];
    res_poison(res, N);
    ck_assert_int_eq(gather_futures(fs, N, res, 0), 1010);
    for (int i = 0; i < N; i++) {
        if (i == 2)
            RES_CHECK(res[i], 1010, &payloads[10]);
        else
            RES_CHECK(res[i], EINPROGRESS, NULL);
    }
    /* The array is ours again: reuse it with a sentinel, then let the rest
     * complete. Nothing may write into it any more. */
    res_poison(res, N);
    for (int i = 0; i < N; i++)
        tu_gate_open(&s[i].gate);
    for (int i = 0; i < N; i++)
        gather_future_wait(fs[i], NULL);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(res[i].error, -12345);
        ck_assert_ptr_eq(res[i].value, &payloads[NV - 1]);
    }
    slot_expect(&s[4], 1011, &payloads[11]);
    slot_expect(&s[5], 0, &vals[5]);
    for (int i = 0; i < N; i++)
        slot_fini(&s[i]);
    tu_count_destroy(&started);
}
END_TEST

/* ======================================================================== */
/* gather_all                                                               */
/* ======================================================================== */

/* Waits for an aggregate; returns its code and its result array. */
static gather_result *agg_wait(gather_future *agg, int expect_code)
{
    void *v = (void *)&v;
    ck_assert_int_eq(gather_future_wait(agg, &v), expect_code);
    ck_assert_ptr_eq(v, gather_future_value(agg));
    return (gather_result *)v;
}

START_TEST(test_all_value_is_results_in_input_order)
{
    enum { N = 4 };
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
    gather_future *agg = NULL;
    ck_assert_int_eq(gather_all(fs, N, 0, &agg), 0);
    ck_assert_ptr_nonnull(agg);
    for (int i = N - 1; i >= 1; i--) {
        tu_gate_open(&s[i].gate);
        slot_expect(&s[i], 0, &vals[i]);
    }
    /* fs[0] is still held: not done. */
    ck_assert(!gather_future_done(agg));
    ck_assert_int_eq(gather_future_error(agg), EINPROGRESS);
    ck_assert_ptr_null(gather_future_value(agg));
    tu_gate_open(&s[0].gate);
    gather_result *r = agg_wait(agg, 0);
    ck_assert_ptr_nonnull(r);
    for (int i = 0; i < N; i++)
        RES_CHECK(r[i], 0, &vals[i]);
    ck_assert(!gather_future_cancelled(agg));

    ck_assert_int_eq(gather_pool_destroy(p), 0);
    gather_future_release(agg);
    for (int i = 0; i < N; i++)
        slot_fini(&s[i]);
    tu_count_destroy(&started);
}
END_TEST

START_TEST(test_all_empty_completes_with_null_value)
{
    gather_future *agg = NULL;
    ck_assert_int_eq(gather_all(NULL, 0, 0, &agg), 0);
    ck_assert_ptr_nonnull(agg);
    void *v = (void *)&v;
    ck_assert_int_eq(gather_future_wait(agg, &v), 0);
    ck_assert_ptr_null(v);
    ck_assert(gather_future_done(agg));
    ck_assert_int_eq(gather_future_error(agg), 0);
    gather_future_release(agg);

    ck_assert_int_eq(gather_all(NULL, 0, GATHER_RETURN_ERRORS, &agg), 0);
    ck_assert_int_eq(gather_future_wait(agg, &v), 0);
    ck_assert_ptr_null(v);
    gather_future_release(agg);
}
END_TEST

START_TEST(test_all_fail_fast_snapshot_is_frozen)
{
    gather_pool *p = tu_pool(2);
    tu_count started;
    tu_count_init(&started);
    slot held, bad, ok;
    slot_init(&held, &started, 0, &vals[0]);
    slot_init_now(&bad, 1012, &payloads[12]);
    slot_init_now(&ok, 0, &vals[2]);
    slot_submit(p, &held);
    ck_assert_int_eq(tu_count_wait(&started, 1), 0);
    slot_submit(p, &ok);
    slot_expect(&ok, 0, &vals[2]);
    gather_future *fs[3] = {held.f, ok.f, NULL};
    slot_submit(p, &bad);
    fs[2] = bad.f;

    gather_future *agg = NULL;
    ck_assert_int_eq(gather_all(fs, 3, 0, &agg), 0);
    gather_result *r = agg_wait(agg, 1012); /* while held is held */
    ck_assert(!gather_future_done(held.f));
    RES_CHECK(r[0], EINPROGRESS, NULL);
    RES_CHECK(r[1], 0, &vals[2]);
    RES_CHECK(r[2], 1012, &payloads[12]);
    ck_assert_int_eq(gather_future_error(agg), 1012);

    tu_gate_open(&held.gate);
    slot_expect(&held, 0, &vals[0]);
    ck_assert_int_eq(slot_saw_cancel(&held), 0);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    /* The snapshot does not change after the child completed. */
    ck_assert_ptr_eq(gather_future_value(agg), r);
    RES_CHECK(r[0], EINPROGRESS, NULL);
    RES_CHECK(r[1], 0, &vals[2]);
    RES_CHECK(r[2], 1012, &payloads[12]);

    gather_future_release(agg);
    slot_fini(&held);
    slot_fini(&bad);
    slot_fini(&ok);
    tu_count_destroy(&started);
}
END_TEST

START_TEST(test_all_return_errors_waits_for_all)
{
    gather_pool *p = tu_pool(2);
    tu_count started;
    tu_count_init(&started);
    slot held, bad;
    slot_init(&held, &started, 0, &vals[0]);
    slot_init_now(&bad, 1013, &payloads[13]);
    slot_submit(p, &held);
    ck_assert_int_eq(tu_count_wait(&started, 1), 0);
    slot_submit(p, &bad);
    gather_future *fs[2] = {held.f, bad.f};
    gather_future *agg = NULL;
    ck_assert_int_eq(gather_all(fs, 2, GATHER_RETURN_ERRORS, &agg), 0);
    slot_expect(&bad, 1013, &payloads[13]);
    /* The failure does not complete it: held is still running. */
    ck_assert(!gather_future_wait_for(agg, 20 * 1000 * 1000));
    ck_assert(!gather_future_done(agg));
    tu_gate_open(&held.gate);
    gather_result *r = agg_wait(agg, 0);
    RES_CHECK(r[0], 0, &vals[0]);
    RES_CHECK(r[1], 1013, &payloads[13]);

    ck_assert_int_eq(gather_pool_destroy(p), 0);
    gather_future_release(agg);
    slot_fini(&held);
    slot_fini(&bad);
    tu_count_destroy(&started);
}
END_TEST

START_TEST(test_all_cancel_on_error_cancels_pending_children)
{
    gather_pool *pa = tu_pool(1);
    gather_pool *pb = tu_pool(1);
    tu_count started;
    tu_count_init(&started);
    slot block, pend, bad;
    slot_init(&block, &started, 0, &vals[0]);
    slot_init_now(&pend, 0, &vals[1]);
    slot_init(&bad, &started, 1014, &payloads[14]);
    slot_submit(pa, &block);
    slot_submit(pb, &bad);
    ck_assert_int_eq(tu_count_wait(&started, 2), 0);
    slot_submit(pa, &pend);
    gather_future *fs[2] = {pend.f, bad.f};
    gather_future *agg = NULL;
    ck_assert_int_eq(gather_all(fs, 2, GATHER_CANCEL_ON_ERROR, &agg), 0);
    ck_assert(!gather_future_done(agg));
    tu_gate_open(&bad.gate);
    gather_result *r = agg_wait(agg, 1014);
    RES_CHECK(r[0], ECANCELED, NULL);
    RES_CHECK(r[1], 1014, &payloads[14]);
    ck_assert(gather_future_cancelled(pend.f));
    ck_assert(!gather_future_cancelled(agg));

    tu_gate_open(&block.gate);
    ck_assert_int_eq(gather_pool_destroy(pa), 0);
    ck_assert_int_eq(gather_pool_destroy(pb), 0);
    ck_assert_int_eq(slot_ran(&pend), 0);
    gather_future_release(agg);
    slot_fini(&block);
    slot_fini(&pend);
    slot_fini(&bad);
    tu_count_destroy(&started);
}
END_TEST

START_TEST(test_all_aggregates_nest)
{
    gather_pool *p = tu_pool(2);
    tu_count started;
    tu_count_init(&started);
    slot s[4], bad;
    for (int i = 0; i < 3; i++)
        slot_init_now(&s[i], 0, &vals[i]);
    slot_init(&s[3], &started, 0, &vals[3]);
    slot_init_now(&bad, 1015, &payloads[15]);
    for (int i = 0; i < 4; i++)
        slot_submit(p, &s[i]);
    slot_submit(p, &bad);

    gather_future *l1[2] = {s[0].f, s[1].f};
    gather_future *l2[2] = {s[2].f, s[3].f};
    gather_future *a1 = NULL, *a2 = NULL, *top = NULL;
    ck_assert_int_eq(gather_all(l1, 2, 0, &a1), 0);
    ck_assert_int_eq(gather_all(l2, 2, 0, &a2), 0);
    gather_future *lt[2] = {a1, a2};
    ck_assert_int_eq(gather_all(lt, 2, 0, &top), 0);
    gather_result *r1 = agg_wait(a1, 0);
    ck_assert(!gather_future_done(top)); /* a2 waits for s[3] */
    ck_assert(!gather_future_done(a2));
    tu_gate_open(&s[3].gate);
    gather_result *rt = agg_wait(top, 0);
    gather_result *r2 = (gather_result *)gather_future_value(a2);
    ck_assert_ptr_nonnull(r2);
    RES_CHECK(rt[0], 0, r1);
    RES_CHECK(rt[1], 0, r2);
    gather_result *n0 = (gather_result *)rt[0].value;
    gather_result *n1 = (gather_result *)rt[1].value;
    RES_CHECK(n0[0], 0, &vals[0]);
    RES_CHECK(n0[1], 0, &vals[1]);
    RES_CHECK(n1[0], 0, &vals[2]);
    RES_CHECK(n1[1], 0, &vals[3]);

    /* A failure propagates up through the levels with its code. */
    gather_future *lb[2] = {s[0].f, bad.f};
    gather_future *ab = NULL, *top2 = NULL;
    ck_assert_int_eq(gather_all(lb, 2, 0, &ab), 0);
    gather_future *lt2[2] = {a1, ab};
    ck_assert_int_eq(gather_all(lt2, 2, 0, &top2), 0);
    gather_result *rt2 = agg_wait(top2, 1015);
    gather_result *rb = agg_wait(ab, 1015);
    RES_CHECK(rt2[0], 0, r1);
    RES_CHECK(rt2[1], 1015, rb);
    RES_CHECK(rb[0], 0, &vals[0]);
    RES_CHECK(rb[1], 1015, &payloads[15]);

    ck_assert_int_eq(gather_pool_destroy(p), 0);
    gather_future_release(top2);
    gather_future_release(ab);
    gather_future_release(top);
    gather_future_release(a1);
    gather_future_release(a2);
    for (int i = 0; i < 4; i++)
        slot_fini(&s[i]);
    slot_fini(&bad);
    tu_count_destroy(&started);
}
END_TEST

START_TEST(test_all_keeps_children_alive)
{
    gather_pool *p = tu_pool(2);
    tu_count started;
    tu_count_init(&started);
    slot s[3];
    slot_init(&s[0], &started, 0, &vals[0]);
    slot_init(&s[1], &started, 1016, &payloads[1]);
    slot_init(&s[2], NULL, 0, &vals[2]); /* queued behind the two */
    gather_future *fs[3];
    for (int i = 0; i < 3; i++) {
        slot_submit(p, &s[i]);
        fs[i] = s[i].f;
    }
    ck_assert_int_eq(tu_count_wait(&started, 2), 0);
    gather_future *agg = NULL;
    ck_assert_int_eq(gather_all(fs, 3, GATHER_RETURN_ERRORS, &agg), 0);
    /* Give up our references at once: the aggregate keeps them. */
    for (int i = 0; i < 3; i++) {
        gather_future_release(s[i].f);
        s[i].f = NULL;
    }
    for (int i = 0; i < 3; i++)
        tu_gate_open(&s[i].gate);
    gather_result *r = agg_wait(agg, 0);
    RES_CHECK(r[0], 0, &vals[0]);
    RES_CHECK(r[1], 1016, &payloads[1]);
    RES_CHECK(r[2], 0, &vals[2]);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(slot_ran(&s[i]), 1);
    /* The snapshot lives as long as the aggregate. */
    RES_CHECK(r[1], 1016, &payloads[1]);
    gather_future_release(agg);
    for (int i = 0; i < 3; i++)
        slot_fini(&s[i]);
    tu_count_destroy(&started);
}
END_TEST

START_TEST(test_all_cancel_cancels_children)
{
    gather_pool *p = tu_pool(2);
    tu_count started;
    tu_count_init(&started);
    slot run, block, pend, done;
    slot_init(&run, &started, 0, &vals[0]);
    slot_init(&block, &started, 0, &vals[1]);
    slot_init_now(&pend, 0, &vals[2]);
    slot_init_now(&done, 0, &vals[3]);
    slot_submit(p, &done);
    slot_expect(&done, 0, &vals[3]);
    slot_submit(p, &run);
    slot_submit(p, &block);
    ck_assert_int_eq(tu_count_wait(&started, 2), 0);
    slot_submit(p, &pend);

    gather_future *fs[3] = {run.f, pend.f, done.f};
    gather_future *agg = NULL;
    ck_assert_int_eq(gather_all(fs, 3, GATHER_RETURN_ERRORS, &agg), 0);
    ck_assert(!gather_future_done(agg));
    ck_assert(gather_future_cancel(agg));
    /* Completed at once. */
    ck_assert(gather_future_done(agg));
    ck_assert(gather_future_cancelled(agg));
    gather_result *r = agg_wait(agg, ECANCELED);
    ck_assert_ptr_nonnull(r);
    RES_CHECK(r[0], EINPROGRESS, NULL); /* running: still in progress */
    RES_CHECK(r[1], ECANCELED, NULL);
    RES_CHECK(r[2], 0, &vals[3]);
    /* The pending child was cancelled, the running one flagged. */
    ck_assert(gather_future_done(pend.f));
    ck_assert(gather_future_cancelled(pend.f));
    ck_assert(!gather_future_done(run.f));
    ck_assert(!gather_future_cancel(agg)); /* already done */

    tu_gate_open(&run.gate);
    slot_expect(&run, 0, &vals[0]);
    ck_assert_int_eq(slot_saw_cancel(&run), 1);
    tu_gate_open(&block.gate);
    slot_expect(&block, 0, &vals[1]);
    ck_assert_int_eq(slot_saw_cancel(&block), 0);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    ck_assert_int_eq(slot_ran(&pend), 0);
    /* Snapshot unchanged. */
    RES_CHECK(r[0], EINPROGRESS, NULL);
    ck_assert(!gather_future_cancelled(done.f));

    gather_future_release(agg);
    slot_fini(&run);
    slot_fini(&block);
    slot_fini(&pend);
    slot_fini(&done);
    tu_count_destroy(&started);
}
END_TEST

START_TEST(test_all_child_cancel_does_not_cancel_aggregate)
{
    gather_pool *p = tu_pool(1);
    tu_count started;
    tu_count_init(&started);
    slot block, c1, q1, c2, q2;
    slot_init(&block, &started, 0, &vals[0]);
    slot_init_now(&c1, 0, &vals[1]);
    slot_init_now(&q1, 0, &vals[2]);
    slot_init_now(&c2, 0, &vals[3]);
    slot_init_now(&q2, 0, &vals[4]);
    slot_submit(p, &block);
    ck_assert_int_eq(tu_count_wait(&started, 1), 0);
    slot_submit(p, &c1);
    slot_submit(p, &q1);
    slot_submit(p, &c2);
    slot_submit(p, &q2);

    /* RETURN_ERRORS: the cancelled child is just an ECANCELED entry. */
    gather_future *l1[2] = {c1.f, q1.f};
    gather_future *a1 = NULL;
    ck_assert_int_eq(gather_all(l1, 2, GATHER_RETURN_ERRORS, &a1), 0);
    ck_assert(gather_future_cancel(c1.f));
    ck_assert(!gather_future_done(a1)); /* q1 is still queued */

    /* Flags 0: the aggregate fails with ECANCELED but is not cancelled, and
     * its other child is not cancelled either. */
    gather_future *l2[2] = {c2.f, q2.f};
    gather_future *a2 = NULL;
    ck_assert_int_eq(gather_all(l2, 2, 0, &a2), 0);
    ck_assert(gather_future_cancel(c2.f));
    gather_result *r2 = agg_wait(a2, ECANCELED);
    ck_assert(!gather_future_cancelled(a2));
    RES_CHECK(r2[0], ECANCELED, NULL);
    RES_CHECK(r2[1], EINPROGRESS, NULL); /* block still holds the thread */

    tu_gate_open(&block.gate);
    gather_result *r1 = agg_wait(a1, 0);
    ck_assert(!gather_future_cancelled(a1));
    RES_CHECK(r1[0], ECANCELED, NULL);
    RES_CHECK(r1[1], 0, &vals[2]);
    slot_expect(&q2, 0, &vals[4]);
    ck_assert(!gather_future_cancelled(q2.f));
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    ck_assert_int_eq(slot_ran(&c1), 0);
    ck_assert_int_eq(slot_ran(&c2), 0);
    ck_assert_int_eq(slot_ran(&q1), 1);
    ck_assert_int_eq(slot_ran(&q2), 1);

    gather_future_release(a1);
    gather_future_release(a2);
    slot_fini(&block);
    slot_fini(&c1);
    slot_fini(&q1);
    slot_fini(&c2);
    slot_fini(&q2);
    tu_count_destroy(&started);
}
END_TEST

typedef struct cb_log {
    tu_count calls;
    atomic_int next;
    int order[4];
    int saw_done[4];
    int saw_error[4];
    void *saw_value[4];
    pthread_t thread[4];
} cb_log;

typedef struct cb_arg {
    cb_log *log;
    int id;
} cb_arg;

static void agg_cb(gather_future *f, void *ud)
{
    cb_arg *a = (cb_arg *)ud;
    int k = atomic_fetch_add(&a->log->next, 1);
    if (k < 4) {
        a->log->order[k] = a->id;
        a->log->saw_done[k] = gather_future_done(f);
        a->log->saw_error[k] = gather_future_error(f);
        a->log->saw_value[k] = gather_future_value(f);
        a->log->thread[k] = pthread_self();
    }
    tu_count_add(&a->log->calls, 1);
}

START_TEST(test_all_done_callbacks_run_in_order)
{
    gather_pool *p = tu_pool(2);
    slot s[2];
    slot_init(&s[0], NULL, 0, &vals[0]);
    slot_init(&s[1], NULL, 1017, &payloads[2]);
    gather_future *fs[2];
    for (int i = 0; i < 2; i++) {
        slot_submit(p, &s[i]);
        fs[i] = s[i].f;
    }
    gather_future *agg = NULL;
    ck_assert_int_eq(gather_all(fs, 2, GATHER_RETURN_ERRORS, &agg), 0);
    cb_log log;
    memset(&log, 0, sizeof log);
    tu_count_init(&log.calls);
    atomic_init(&log.next, 0);
    cb_arg a0 = {&log, 10}, a1 = {&log, 11}, a2 = {&log, 12};
    ck_assert_int_eq(gather_future_on_done(agg, agg_cb, &a0), 0);
    ck_assert_int_eq(gather_future_on_done(agg, agg_cb, &a1), 0);
    ck_assert_int_eq(tu_count_get(&log.calls), 0);
    tu_gate_open(&s[1].gate);
    tu_gate_open(&s[0].gate);
    gather_result *r = agg_wait(agg, 0);
    ck_assert_int_eq(tu_count_wait(&log.calls, 2), 0);
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(log.order[k], 10 + k);
        ck_assert(log.saw_done[k]);
        ck_assert_int_eq(log.saw_error[k], 0);
        ck_assert_ptr_eq(log.saw_value[k], r);
    }
    /* Added after completion: runs at once, on this thread. */
    ck_assert_int_eq(gather_future_on_done(agg, agg_cb, &a2), 0);
    ck_assert_int_eq(tu_count_get(&log.calls), 3);
    ck_assert_int_eq(log.order[2], 12);
    ck_assert(pthread_equal(log.thread[2], pthread_self()));
    ck_assert_ptr_eq(log.saw_value[2], r);
    RES_CHECK(r[0], 0, &vals[0]);
    RES_CHECK(r[1], 1017, &payloads[2]);

    ck_assert_int_eq(gather_pool_destroy(p), 0);
    ck_assert_int_eq(tu_count_get(&log.calls), 3); /* exactly once each */
    gather_future_release(agg);
    slot_fini(&s[0]);
    slot_fini(&s[1]);
    tu_count_destroy(&log.calls);
}
END_TEST

/* A task on a one-thread pool that gathers its own subtasks through an
 * aggregate: the wait must run them. */
typedef struct helper_job {
    atomic_int fails;
    int wait_rc;
    int gather_rc;
    void *vals[4];
    int errs[4];
} helper_job;

static int agg_in_task(void *arg, void **result)
{
    helper_job *hj = (helper_job *)arg;
    gather_pool *me = gather_current_pool();
    gather_future *kids[4] = {NULL, NULL, NULL, NULL};
    for (int i = 0; i < 4; i++) {
        int rc = i == 2 ? gather_submit(me, tu_task_fail, (void *)(intptr_t)1018, &kids[i])
                        : gather_submit(me, tu_task_identity, &vals[i], &kids[i]);
        if (rc != 0)
            atomic_fetch_add(&hj->fails, 1);
    }
    gather_future *agg = NULL;
    if (gather_all(kids, 4, GATHER_RETURN_ERRORS, &agg) != 0) {
        atomic_fetch_add(&hj->fails, 1);
        return 1;
    }
    for (int i = 0; i < 4; i++)
        gather_future_release(kids[i]);
    void *v = NULL;
    hj->wait_rc = gather_future_wait(agg, &v);
    gather_result *r = (gather_result *)v;
    for (int i = 0; r && i < 4; i++) {
        hj->errs[i] = r[i].error;
        hj->vals[i] = r[i].value;
    }
    if (!r)
        atomic_fetch_add(&hj->fails, 1);
    gather_future *l[2] = {agg, agg};
    hj->gather_rc = gather_futures(l, 2, NULL, 0);
    gather_future_release(agg);
    *result = hj;
    return 0;
}

START_TEST(test_all_wait_from_pool_thread_helps)
{
    gather_pool *p = tu_pool(1);
    helper_job hj;
    memset(&hj, 0, sizeof hj);
    atomic_init(&hj.fails, 0);
    hj.wait_rc = hj.gather_rc = -1;
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, agg_in_task, &hj, &f), 0);
    void *v = NULL;
    ck_assert_int_eq(gather_future_wait(f, &v), 0);
    ck_assert_ptr_eq(v, &hj);
    ck_assert_int_eq(atomic_load(&hj.fails), 0);
    ck_assert_int_eq(hj.wait_rc, 0);
    ck_assert_int_eq(hj.gather_rc, 0);
    for (int i = 0; i < 4; i++) {
        if (i == 2) {
            ck_assert_int_eq(hj.errs[i], 1018);
            ck_assert_ptr_eq(hj.vals[i], (void *)(intptr_t)1018);
        } else {
            ck_assert_int_eq(hj.errs[i], 0);
            ck_assert_ptr_eq(hj.vals[i], &vals[i]);
        }
    }
    gather_future_release(f);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

/* ======================================================================== */
/* gather_map                                                               */
/* ======================================================================== */

typedef struct mtask {
    tu_gate gate;
    tu_count *started;
    tu_count *finished;
    int code;
    void *value;
    atomic_int ran;
    atomic_int saw_cancel;
} mtask;

static void mtask_init(mtask *m, tu_count *started, tu_count *finished,
                       int code, void *value, int open)
{
    tu_gate_init(&m->gate);
    m->started = started;
    m->finished = finished;
    m->code = code;
    m->value = value;
    atomic_init(&m->ran, 0);
    atomic_init(&m->saw_cancel, 0);
    if (open)
        tu_gate_open(&m->gate);
}

static int mtask_fn(void *arg, void **result)
{
    mtask *m = (mtask *)arg;
    atomic_fetch_add(&m->ran, 1);
    if (m->started)
        tu_count_add(m->started, 1);
    tu_gate_wait(&m->gate);
    atomic_store(&m->saw_cancel, gather_cancel_requested() ? 1 : 0);
    if (m->finished)
        tu_count_add(m->finished, 1);
    *result = m->value;
    return m->code;
}

typedef struct mjob {
    pthread_t th;
    gather_pool *pool;
    gather_fn fn;
    void **args;
    size_t n;
    gather_result *res;
    unsigned flags;
    int rc;
    tu_count done;
} mjob;

static void *mjob_main(void *arg)
{
    mjob *j = (mjob *)arg;
    j->rc = gather_map(j->pool, j->fn, j->args, j->n, j->res, j->flags);
    tu_count_add(&j->done, 1);
    return NULL;
}

static void mjob_start(mjob *j, gather_pool *pool, gather_fn fn, void **args,
                       size_t n, gather_result *res, unsigned flags)
{
    j->pool = pool;
    j->fn = fn;
    j->args = args;
    j->n = n;
    j->res = res;
    j->flags = flags;
    j->rc = -1;
    tu_count_init(&j->done);
    ck_assert_int_eq(pthread_create(&j->th, NULL, mjob_main, j), 0);
}

static int mjob_finish(mjob *j)
{
    ck_assert_int_eq(tu_count_wait(&j->done, 1), 0);
    pthread_join(j->th, NULL);
    tu_count_destroy(&j->done);
    return j->rc;
}

START_TEST(test_map_results_in_input_order)
{
    enum { N = 4 };
    gather_pool *p = tu_pool(N);
    tu_count started, finished;
    tu_count_init(&started);
    tu_count_init(&finished);
    mtask m[N];
    void *args[N];
    for (int i = 0; i < N; i++) {
        mtask_init(&m[i], &started, &finished, 0, &vals[i], 0);
        args[i] = &m[i];
    }
    gather_result res[N];
    res_poison(res, N);
    mjob j;
    mjob_start(&j, p, mtask_fn, args, N, res, 0);
    ck_assert_int_eq(tu_count_wait(&started, N), 0);
    const int order[N] = {2, 0, 3, 1};
    for (int k = 0; k < N; k++) {
        ck_assert_int_eq(tu_count_get(&j.done), 0);
        tu_gate_open(&m[order[k]].gate);
        ck_assert_int_eq(tu_count_wait(&finished, k + 1), 0);
    }
    ck_assert_int_eq(mjob_finish(&j), 0);
    for (int i = 0; i < N; i++) {
        RES_CHECK(res[i], 0, &vals[i]);
        ck_assert_int_eq(atomic_load(&m[i].ran), 1);
    }
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    for (int i = 0; i < N; i++)
        tu_gate_destroy(&m[i].gate);
    tu_count_destroy(&started);
    tu_count_destroy(&finished);
}
END_TEST

START_TEST(test_map_fail_fast)
{
    gather_pool *p = tu_pool(3);
    tu_count finished;
    tu_count_init(&finished);
    mtask m[3];
    mtask_init(&m[0], NULL, &finished, 0, &vals[0], 0);         /* held */
    mtask_init(&m[1], NULL, &finished, 1019, &payloads[3], 1);  /* fails */
    mtask_init(&m[2], NULL, &finished, 0, &vals[2], 0);         /* held */
    void *args[3] = {&m[0], &m[1], &m[2]};
    gather_result res[3];
    res_poison(res, 3);
    ck_assert_int_eq(gather_map(p, mtask_fn, args, 3, res, 0), 1019);
    RES_CHECK(res[0], EINPROGRESS, NULL);
    RES_CHECK(res[1], 1019, &payloads[3]);
    RES_CHECK(res[2], EINPROGRESS, NULL);
    /* The others still run to completion, not cancelled. */
    tu_gate_open(&m[0].gate);
    tu_gate_open(&m[2].gate);
    ck_assert_int_eq(tu_count_wait(&finished, 3), 0);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(atomic_load(&m[i].ran), 1);
        ck_assert_int_eq(atomic_load(&m[i].saw_cancel), 0);
        tu_gate_destroy(&m[i].gate);
    }
    tu_count_destroy(&finished);
}
END_TEST

START_TEST(test_map_return_errors)
{
    enum { N = 6 };
    gather_pool *p = tu_pool(2);
    tu_count started, finished;
    tu_count_init(&started);
    tu_count_init(&finished);
    mtask m[N];
    void *args[N];
    for (int i = 0; i < N; i++) {
        int fail = (i % 3) == 1;
        mtask_init(&m[i], i == 0 ? &started : NULL, &finished,
                   fail ? 1020 + i : 0,
                   fail ? (void *)&payloads[i] : (void *)&vals[i], i != 0);
        args[i] = &m[i];
    }
    gather_result res[N];
    res_poison(res, N);
    mjob j;
    mjob_start(&j, p, mtask_fn, args, N, res, GATHER_RETURN_ERRORS);
    ck_assert_int_eq(tu_count_wait(&started, 1), 0);
    ck_assert_int_eq(tu_count_wait(&finished, N - 1), 0);
    ck_assert_int_eq(tu_count_get(&j.done), 0); /* m[0] is still held */
    tu_gate_open(&m[0].gate);
    ck_assert_int_eq(mjob_finish(&j), 0);
    for (int i = 0; i < N; i++) {
        if ((i % 3) == 1)
            RES_CHECK(res[i], 1020 + i, &payloads[i]);
        else
            RES_CHECK(res[i], 0, &vals[i]);
    }
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    for (int i = 0; i < N; i++)
        tu_gate_destroy(&m[i].gate);
    tu_count_destroy(&started);
    tu_count_destroy(&finished);
}
END_TEST

static int square_task(void *arg, void **result)
{
    intptr_t x = (intptr_t)arg;
    *result = (void *)(x * x);
    return 0;
}

typedef struct map_in_task {
    int rc;
    intptr_t sum;
    int order_ok;
    gather_pool *seen_pool;
} map_in_task;

static int map_from_task(void *arg, void **result)
{
    enum { N = 24 };
    map_in_task *mt = (map_in_task *)arg;
    void *args[N];
    gather_result res[N];
    for (intptr_t i = 0; i < N; i++)
        args[i] = (void *)(i + 1);
    mt->seen_pool = gather_current_pool();
    mt->rc = gather_map(mt->seen_pool, square_task, args, N, res, 0);
    mt->order_ok = 1;
    mt->sum = 0;
    for (intptr_t i = 0; i < N; i++) {
        if (res[i].error != 0 || res[i].value != (void *)((i + 1) * (i + 1)))
            mt->order_ok = 0;
        mt->sum += (intptr_t)res[i].value;
    }
    *result = NULL;
    return 0;
}

START_TEST(test_map_inside_task_on_one_thread_pool)
{
    gather_pool *p = tu_pool(1);
    map_in_task mt = {.rc = -1};
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, map_from_task, &mt, &f), 0);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    ck_assert_ptr_eq(mt.seen_pool, p);
    ck_assert_int_eq(mt.rc, 0);
    ck_assert_int_eq(mt.order_ok, 1);
    ck_assert_int_eq(mt.sum, 24 * 25 * 49 / 6);
    gather_future_release(f);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

START_TEST(test_map_default_pool)
{
    enum { N = 32 };
    void *args[N];
    gather_result res[N];
    for (intptr_t i = 0; i < N; i++)
        args[i] = (void *)(i + 3);
    res_poison(res, N);
    ck_assert_int_eq(gather_map(NULL, square_task, args, N, res, 0), 0);
    for (intptr_t i = 0; i < N; i++)
        RES_CHECK(res[i], 0, (void *)((i + 3) * (i + 3)));
    /* Fail-fast on the default pool too. */
    for (intptr_t i = 0; i < 4; i++)
        args[i] = (void *)(1030 + i);
    res_poison(res, 4);
    ck_assert_int_eq(gather_map(NULL, tu_task_fail, args, 4, res,
                                GATHER_RETURN_ERRORS), 0);
    for (intptr_t i = 0; i < 4; i++)
        RES_CHECK(res[i], (int)(1030 + i), (void *)(1030 + i));
    ck_assert_int_eq(gather_map(NULL, square_task, NULL, 0, NULL, 0), 0);
}
END_TEST

/* gather_map runs its jobs in chunks (lib/map.c); what users see must stay
 * one task per job: the stats count jobs, and a job that blocks does not
 * hold back the jobs of other chunks. */
START_TEST(test_map_large_counts_jobs_not_chunks)
{
    enum { N = 20000 };
    gather_pool *p = tu_pool(2);
    void **args = malloc(N * sizeof *args);
    gather_result *res = malloc(N * sizeof *res);
    ck_assert_ptr_nonnull(args);
    ck_assert_ptr_nonnull(res);
    for (intptr_t i = 0; i < N; i++)
        args[i] = (void *)i;
    res_poison(res, N);
    ck_assert_int_eq(gather_map(p, square_task, args, N, res, 0), 0);
    for (intptr_t i = 0; i < N; i++)
        RES_CHECK(res[i], 0, (void *)(i * i));
    gather_pool_stats st;
    ck_assert_int_eq(gather_pool_stats_get(p, &st), 0);
    ck_assert_uint_eq(st.submitted, N);
    ck_assert_uint_eq(st.completed, N);
    ck_assert_uint_eq(st.cancelled, 0);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    free(args);
    free(res);
}
END_TEST

typedef struct hold_first {
    size_t n;
    atomic_size_t upper_ran; /* jobs of the upper half that ran */
    atomic_int first_saw_upper;
} hold_first;

typedef struct hold_arg {
    hold_first *h;
    size_t index;
} hold_arg;

/* Job 0 waits until a job of the upper half has run: that needs the jobs to
 * be split across threads, not queued behind it. */
static int hold_first_job(void *arg, void **result)
{
    hold_arg *a = (hold_arg *)arg;
    *result = NULL;
    if (a->index >= a->h->n / 2) {
        atomic_fetch_add(&a->h->upper_ran, 1);
        return 0;
    }
    if (a->index != 0)
        return 0;
    uint64_t limit = tu_mono_ns() + (uint64_t)TU_WATCHDOG_S * 1000000000u;
    while (atomic_load(&a->h->upper_ran) == 0 && tu_mono_ns() < limit)
        sched_yield();
    atomic_store(&a->h->first_saw_upper, atomic_load(&a->h->upper_ran) > 0);
    return 0;
}

START_TEST(test_map_blocked_job_does_not_hold_other_chunks)
{
    enum { N = 4096 };
    gather_pool *p = tu_pool(2);
    hold_first h = {.n = N};
    atomic_init(&h.upper_ran, 0);
    atomic_init(&h.first_saw_upper, 0);
    static hold_arg a[N];
    void *args[N];
    for (size_t i = 0; i < N; i++) {
        a[i].h = &h;
        a[i].index = i;
        args[i] = &a[i];
    }
    ck_assert_int_eq(gather_map(p, hold_first_job, args, N, NULL, 0), 0);
    ck_assert_int_eq(atomic_load(&h.first_saw_upper), 1);
    ck_assert_uint_eq(atomic_load(&h.upper_ran), N / 2);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

/* GATHER_CANCEL_PENDING shutdown during a map: job 0 runs until it sees
 * the cancel request; every job not started reports ECANCELED. */
static tu_count first_job_started;

static int run_until_cancel_requested(void *arg, void **result)
{
    *result = arg;
    if ((intptr_t)arg != 0)
        return 0;
    tu_count_add(&first_job_started, 1);
    uint64_t limit = tu_mono_ns() + (uint64_t)TU_WATCHDOG_S * 1000000000u;
    while (!gather_cancel_requested() && tu_mono_ns() < limit)
        sched_yield();
    return gather_cancel_requested() ? 0 : ETIMEDOUT;
}

static void *shutdown_cancelling(void *arg)
{
    ck_assert_int_eq(gather_pool_shutdown(arg, GATHER_CANCEL_PENDING), 0);
    return NULL;
}

START_TEST(test_map_cancel_pending_shutdown_cancels_jobs_not_started)
{
    enum { N = 1000 };
    gather_pool *p = tu_pool(1);
    void *args[N];
    for (intptr_t i = 0; i < N; i++)
        args[i] = (void *)i;
    gather_result res[N];
    res_poison(res, N);
    mjob j;
    tu_count_init(&first_job_started);
    mjob_start(&j, p, run_until_cancel_requested, args, N, res,
               GATHER_RETURN_ERRORS);
    /* Shut down while job 0 runs (it cannot end before the request). */
    ck_assert_int_eq(tu_count_wait(&first_job_started, 1), 0);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, shutdown_cancelling, p), 0);
    ck_assert_int_eq(mjob_finish(&j), 0);
    pthread_join(t, NULL);
    RES_CHECK(res[0], 0, (void *)0);
    for (intptr_t i = 1; i < N; i++)
        RES_CHECK(res[i], ECANCELED, NULL);
    gather_pool_stats st;
    ck_assert_int_eq(gather_pool_stats_get(p, &st), 0);
    ck_assert_uint_eq(st.submitted, N);
    ck_assert_uint_eq(st.completed, 1);
    ck_assert_uint_eq(st.cancelled, N - 1);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    tu_count_destroy(&first_job_started);
}
END_TEST

/* CANCEL_ON_ERROR on a one-thread pool: the first task to start fails; the
 * others block on a gate. At most one can start between the failure and the
 * cancellation (it then holds the only thread); every other never runs. */
typedef struct coe_shared {
    atomic_int order;
    atomic_int ran;
    atomic_int saw_cancel;
    tu_gate rest;
} coe_shared;

typedef struct coe_arg {
    coe_shared *sh;
    atomic_int ran;
    atomic_int role; /* 0 never ran, 1 failer, 2 other */
} coe_arg;

static int coe_task(void *arg, void **result)
{
    coe_arg *a = (coe_arg *)arg;
    atomic_fetch_add(&a->ran, 1);
    atomic_fetch_add(&a->sh->ran, 1);
    if (atomic_fetch_add(&a->sh->order, 1) == 0) {
        atomic_store(&a->role, 1);
        *result = &payloads[0];
        return 1040;
    }
    atomic_store(&a->role, 2);
    tu_gate_wait(&a->sh->rest);
    if (gather_cancel_requested())
        atomic_fetch_add(&a->sh->saw_cancel, 1);
    *result = a;
    return 0;
}

START_TEST(test_map_cancel_on_error_cancels_the_rest)
{
    enum { N = 12 };
    gather_pool *p = tu_pool(1);
    coe_shared sh;
    atomic_init(&sh.order, 0);
    atomic_init(&sh.ran, 0);
    atomic_init(&sh.saw_cancel, 0);
    tu_gate_init(&sh.rest);
    coe_arg a[N];
    void *args[N];
    for (int i = 0; i < N; i++) {
        a[i].sh = &sh;
        atomic_init(&a[i].ran, 0);
        atomic_init(&a[i].role, 0);
        args[i] = &a[i];
    }
    gather_result res[N];
    res_poison(res, N);
    mjob j;
    mjob_start(&j, p, coe_task, args, N, res, GATHER_CANCEL_ON_ERROR);
    ck_assert_int_eq(mjob_finish(&j), 1040);
    tu_gate_open(&sh.rest);
    ck_assert_int_eq(gather_pool_shutdown(p, 0), 0);
    gather_pool_stats st;
    ck_assert_int_eq(gather_pool_stats_get(p, &st), 0);
    ck_assert_int_eq(gather_pool_destroy(p), 0);

    int ran = atomic_load(&sh.ran);
    ck_assert_int_le(ran, 2);
    ck_assert_int_ge(ran, 1);
    ck_assert_int_eq(atomic_load(&sh.saw_cancel), ran - 1);
    ck_assert_uint_eq(st.completed, (uint64_t)ran);
    ck_assert_uint_eq(st.submitted, st.completed + st.cancelled);
    int failers = 0;
    for (int i = 0; i < N; i++) {
        int role = atomic_load(&a[i].role);
        ck_assert_int_eq(atomic_load(&a[i].ran), role != 0);
        if (role == 1) {
            failers++;
            RES_CHECK(res[i], 1040, &payloads[0]);
        } else if (role == 2) {
            RES_CHECK(res[i], EINPROGRESS, NULL);
        } else {
            RES_CHECK(res[i], ECANCELED, NULL);
        }
    }
    ck_assert_int_eq(failers, 1);
    tu_gate_destroy(&sh.rest);
}
END_TEST

/* ======================================================================== */
/* gather_wait_any                                                          */
/* ======================================================================== */

START_TEST(test_wait_any_returns_lowest_done_index)
{
    gather_pool *p = tu_pool(3);
    tu_count started;
    tu_count_init(&started);
    slot s[4];
    slot_init(&s[0], &started, 0, &vals[0]);
    slot_init_now(&s[1], 0, &vals[1]);
    slot_init_now(&s[2], 1050, &payloads[2]);
    slot_init(&s[3], &started, 0, &vals[3]);
    slot_submit(p, &s[0]);
    slot_submit(p, &s[3]);
    ck_assert_int_eq(tu_count_wait(&started, 2), 0);
    slot_submit(p, &s[2]);
    slot_submit(p, &s[1]);
    slot_expect(&s[2], 1050, &payloads[2]);
    slot_expect(&s[1], 0, &vals[1]);
    gather_future *fs[4] = {s[0].f, s[1].f, s[2].f, s[3].f};
    size_t idx = 99;
    ck_assert_int_eq(gather_wait_any(fs, 4, GATHER_FOREVER, &idx), 0);
    ck_assert_uint_eq(idx, 1);
    idx = 99;
    ck_assert_int_eq(gather_wait_any(fs, 4, 0, &idx), 0);
    ck_assert_uint_eq(idx, 1);
    gather_future *fs2[3] = {s[3].f, s[2].f, s[1].f};
    ck_assert_int_eq(gather_wait_any(fs2, 3, GATHER_FOREVER, &idx), 0);
    ck_assert_uint_eq(idx, 1); /* a failed future is done too */

    tu_gate_open(&s[0].gate);
    slot_expect(&s[0], 0, &vals[0]);
    ck_assert_int_eq(gather_wait_any(fs, 4, GATHER_FOREVER, &idx), 0);
    ck_assert_uint_eq(idx, 0);
    tu_gate_open(&s[3].gate);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    for (int i = 0; i < 4; i++)
        slot_fini(&s[i]);
    tu_count_destroy(&started);
}
END_TEST

START_TEST(test_wait_any_counts_cancelled_as_done)
{
    gather_pool *p = tu_pool(1);
    tu_count started;
    tu_count_init(&started);
    slot block, pend;
    slot_init(&block, &started, 0, &vals[0]);
    slot_init_now(&pend, 0, &vals[1]);
    slot_submit(p, &block);
    ck_assert_int_eq(tu_count_wait(&started, 1), 0);
    slot_submit(p, &pend);
    gather_future *fs[2] = {block.f, pend.f};
    size_t idx = 99;
    ck_assert_int_eq(gather_wait_any(fs, 2, 0, &idx), ETIMEDOUT);
    ck_assert_uint_eq(idx, 99);
    ck_assert(gather_future_cancel(pend.f));
    ck_assert_int_eq(gather_wait_any(fs, 2, GATHER_FOREVER, &idx), 0);
    ck_assert_uint_eq(idx, 1);
    tu_gate_open(&block.gate);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    slot_fini(&block);
    slot_fini(&pend);
    tu_count_destroy(&started);
}
END_TEST

START_TEST(test_wait_any_times_out_when_none_done)
{
    gather_pool *p = tu_pool(2);
    slot s[2];
    slot_init(&s[0], NULL, 0, &vals[0]);
    slot_init(&s[1], NULL, 0, &vals[1]);
    slot_submit(p, &s[0]);
    slot_submit(p, &s[1]);
    gather_future *fs[2] = {s[0].f, s[1].f};
    size_t idx = 777;
    uint64_t t0 = tu_mono_ns();
    ck_assert_int_eq(gather_wait_any(fs, 2, 30 * 1000 * 1000, &idx), ETIMEDOUT);
    uint64_t el = tu_mono_ns() - t0;
    ck_assert_uint_eq(idx, 777);
    ck_assert_uint_ge(el, 25 * 1000 * 1000); /* it did wait */
    ck_assert_int_eq(gather_wait_any(fs, 2, 0, &idx), ETIMEDOUT);
    ck_assert_uint_eq(idx, 777);
    ck_assert_int_eq(gather_wait_any(fs, 0, 0, &idx), EINVAL);
    tu_gate_open(&s[0].gate);
    tu_gate_open(&s[1].gate);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    slot_fini(&s[0]);
    slot_fini(&s[1]);
}
END_TEST

typedef struct wjob {
    pthread_t th;
    gather_future **fs;
    size_t n;
    size_t idx;
    int rc;
    tu_count done;
} wjob;

static void *wjob_main(void *arg)
{
    wjob *j = (wjob *)arg;
    j->rc = gather_wait_any(j->fs, j->n, GATHER_FOREVER, &j->idx);
    tu_count_add(&j->done, 1);
    return NULL;
}

START_TEST(test_wait_any_wakes_when_one_completes)
{
    enum { N = 3 };
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
    wjob j = {.fs = fs, .n = N, .idx = 99, .rc = -1};
    tu_count_init(&j.done);
    ck_assert_int_eq(pthread_create(&j.th, NULL, wjob_main, &j), 0);
    tu_gate_open(&s[1].gate);
    ck_assert_int_eq(tu_count_wait(&j.done, 1), 0);
    pthread_join(j.th, NULL);
    ck_assert_int_eq(j.rc, 0);
    ck_assert_uint_eq(j.idx, 1);
    ck_assert(!gather_future_done(fs[0]));
    ck_assert(!gather_future_done(fs[2]));
    tu_gate_open(&s[0].gate);
    tu_gate_open(&s[2].gate);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    for (int i = 0; i < N; i++)
        slot_fini(&s[i]);
    tu_count_destroy(&j.done);
    tu_count_destroy(&started);
}
END_TEST

/* ======================================================================== */

int main(void)
{
    for (int i = 0; i < NV; i++) {
        vals[i] = i;
        payloads[i] = 100 + i;
    }
    Suite *s = suite_create("gather");

    TCase *tf = tcase_create("gather_futures");
    tcase_set_timeout(tf, 60);
    tcase_add_test(tf, test_results_follow_input_order_under_reverse_completion);
    tcase_add_test(tf, test_results_may_be_null);
    tcase_add_test(tf, test_fail_fast_returns_failure_while_sibling_held);
    tcase_add_test(tf, test_fail_fast_returns_when_failure_arrives_during_wait);
    tcase_add_test(tf, test_fail_fast_returns_the_failure_seen_first);
    tcase_add_test(tf, test_return_errors_waits_for_all_and_captures_failures);
    tcase_add_test(tf, test_cancel_on_error_cancels_pending_and_flags_running);
    tcase_add_test(tf, test_cancel_on_error_with_return_errors_is_einval);
    tcase_add_test(tf, test_cancelled_future_counts_as_ecanceled);
    tcase_add_test(tf, test_duplicate_futures_in_list);
    tcase_add_test(tf, test_zero_futures_returns_zero);
    tcase_add_test(tf, test_futures_are_borrowed_not_released);
    tcase_add_test(tf, test_results_not_written_after_fail_fast_return);
    suite_add_tcase(s, tf);

    TCase *ta = tcase_create("gather_all");
    tcase_set_timeout(ta, 60);
    tcase_add_test(ta, test_all_value_is_results_in_input_order);
    tcase_add_test(ta, test_all_empty_completes_with_null_value);
    tcase_add_test(ta, test_all_fail_fast_snapshot_is_frozen);
    tcase_add_test(ta, test_all_return_errors_waits_for_all);
    tcase_add_test(ta, test_all_cancel_on_error_cancels_pending_children);
    tcase_add_test(ta, test_all_aggregates_nest);
    tcase_add_test(ta, test_all_keeps_children_alive);
    tcase_add_test(ta, test_all_cancel_cancels_children);
    tcase_add_test(ta, test_all_child_cancel_does_not_cancel_aggregate);
    tcase_add_test(ta, test_all_done_callbacks_run_in_order);
    tcase_add_test(ta, test_all_wait_from_pool_thread_helps);
    suite_add_tcase(s, ta);

    TCase *tm = tcase_create("gather_map");
    tcase_set_timeout(tm, 60);
    tcase_add_test(tm, test_map_results_in_input_order);
    tcase_add_test(tm, test_map_fail_fast);
    tcase_add_test(tm, test_map_return_errors);
    tcase_add_test(tm, test_map_inside_task_on_one_thread_pool);
    tcase_add_test(tm, test_map_default_pool);
    tcase_add_test(tm, test_map_cancel_on_error_cancels_the_rest);
    tcase_add_test(tm, test_map_large_counts_jobs_not_chunks);
    tcase_add_test(tm, test_map_blocked_job_does_not_hold_other_chunks);
    tcase_add_test(tm, test_map_cancel_pending_shutdown_cancels_jobs_not_started);
    suite_add_tcase(s, tm);

    TCase *tw = tcase_create("gather_wait_any");
    tcase_set_timeout(tw, 60);
    tcase_add_test(tw, test_wait_any_returns_lowest_done_index);
    tcase_add_test(tw, test_wait_any_counts_cancelled_as_done);
    tcase_add_test(tw, test_wait_any_times_out_when_none_done);
    tcase_add_test(tw, test_wait_any_wakes_when_one_completes);
    suite_add_tcase(s, tw);

    return tu_run_suite(s);
}
