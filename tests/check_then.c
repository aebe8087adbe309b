/* SPDX-License-Identifier: MIT */
/*
 * check_then.c - gather_then(): continuations.
 *
 * A previous future that must stay pending waits behind a gated task on a
 * one-thread pool of its own.
 */
#include "testutil.h"

#include <string.h>

typedef struct held {
    gather_pool *pool;
    tu_gate gate;
    tu_count started;
    tu_gated blocker;
    gather_future *blocker_f;
} held;

static void hold_pool(held *h)
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

static void release_pool(held *h)
{
    tu_gate_open(&h->gate);
    ck_assert_int_eq(gather_future_wait(h->blocker_f, NULL), 0);
    gather_future_release(h->blocker_f);
    ck_assert_int_eq(gather_pool_destroy(h->pool), 0);
    tu_gate_destroy(&h->gate);
    tu_count_destroy(&h->started);
}

/* What a continuation saw of its prev. */
typedef struct seen {
    atomic_int runs;
    int done;
    int error;
    void *value;
    int code;     /* what it returns */
    void *result; /* and sets */
} seen;

static int then_record(gather_future *prev, void *arg, void **result)
{
    seen *s = (seen *)arg;
    s->done = gather_future_done(prev);
    s->error = gather_future_error(prev);
    s->value = gather_future_value(prev);
    atomic_fetch_add(&s->runs, 1);
    *result = s->result;
    return s->code;
}

START_TEST(test_then_runs_after_prev_with_its_outcome)
{
    int payload, out;
    gather_pool *p = tu_pool(2);
    /* Success. */
    gather_future *prev, *next;
    ck_assert_int_eq(gather_submit(p, tu_task_identity, &payload, &prev), 0);
    seen s = {.code = 5, .result = &out};
    ck_assert_int_eq(gather_then(prev, p, then_record, &s, &next), 0);
    void *v = NULL;
    ck_assert_int_eq(gather_future_wait(next, &v), 5); /* fn's code */
    ck_assert_ptr_eq(v, &out);                         /* fn's value */
    ck_assert_int_eq(atomic_load(&s.runs), 1);
    ck_assert_int_eq(s.done, 1);
    ck_assert_int_eq(s.error, 0);
    ck_assert_ptr_eq(s.value, &payload);
    gather_future_release(next);
    gather_future_release(prev);

    /* Failure. */
    ck_assert_int_eq(gather_submit(p, tu_task_fail, (void *)(intptr_t)EIO, &prev), 0);
    seen f = {.code = 0};
    ck_assert_int_eq(gather_then(prev, p, then_record, &f, &next), 0);
    ck_assert_int_eq(gather_future_wait(next, NULL), 0);
    ck_assert_int_eq(f.error, EIO);
    gather_future_release(next);
    gather_future_release(prev);

    /* Already done at the call; the caller's reference released at once
     * (the continuation holds its own). */
    ck_assert_int_eq(gather_submit(p, tu_task_identity, &payload, &prev), 0);
    ck_assert_int_eq(gather_future_wait(prev, NULL), 0);
    seen d = {.code = 0};
    ck_assert_int_eq(gather_then(prev, NULL, then_record, &d, &next), 0);
    gather_future_release(prev);
    ck_assert_int_eq(gather_future_wait(next, NULL), 0);
    ck_assert_ptr_eq(d.value, &payload);
    gather_future_release(next);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

START_TEST(test_then_runs_after_a_cancelled_prev)
{
    held h;
    hold_pool(&h);
    atomic_int ran = 0;
    gather_future *prev, *next;
    ck_assert_int_eq(gather_submit(h.pool, tu_task_count, &ran, &prev), 0);
    seen s = {.code = 0};
    ck_assert_int_eq(gather_then(prev, NULL, then_record, &s, &next), 0);
    ck_assert(gather_future_cancel(prev));
    ck_assert_int_eq(gather_future_wait(next, NULL), 0);
    ck_assert_int_eq(s.error, ECANCELED);
    ck_assert_int_eq(atomic_load(&ran), 0);
    gather_future_release(next);
    gather_future_release(prev);
    release_pool(&h);
}
END_TEST

START_TEST(test_then_detached_still_runs)
{
    gather_pool *p = tu_pool(1);
    gather_future *prev;
    int payload;
    ck_assert_int_eq(gather_submit(p, tu_task_identity, &payload, &prev), 0);
    seen s = {.code = 0};
    ck_assert_int_eq(gather_then(prev, p, then_record, &s, NULL), 0);
    gather_future_release(prev);
    ck_assert_int_eq(gather_pool_shutdown(p, 0), 0); /* drains it */
    ck_assert_int_eq(atomic_load(&s.runs), 1);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

START_TEST(test_cancelling_next_before_it_starts)
{
    held h;
    hold_pool(&h);
    tu_fail_arg fa = {EPIPE, &fa};
    gather_future *prev, *next;
    ck_assert_int_eq(gather_submit(h.pool, tu_task_fail_with, &fa, &prev), 0);
    seen s = {.code = 0};
    gather_pool *p = tu_pool(1);
    ck_assert_int_eq(gather_then(prev, p, then_record, &s, &next), 0);
    ck_assert(gather_future_cancel(next));
    ck_assert(gather_future_done(next)); /* at once */
    ck_assert_int_eq(gather_future_error(next), ECANCELED);
    ck_assert(gather_future_cancelled(next));
    ck_assert(!gather_future_done(prev)); /* prev not touched */
    release_pool(&h);                     /* prev runs now */
    ck_assert_int_eq(gather_future_wait(prev, NULL), EPIPE);
    ck_assert(!gather_future_cancelled(prev));
    ck_assert_int_eq(gather_pool_shutdown(p, 0), 0);
    ck_assert_int_eq(atomic_load(&s.runs), 0); /* fn never ran */
    gather_pool_stats st;
    ck_assert_int_eq(gather_pool_stats_get(p, &st), 0);
    ck_assert_uint_eq(st.submitted, 1);
    ck_assert_uint_eq(st.cancelled, 1);
    ck_assert_uint_eq(st.completed, 0);
    gather_future_release(next);
    gather_future_release(prev);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

START_TEST(test_prev_done_after_the_pool_shut_down)
{
    gather_pool *p = tu_pool(1);
    held h;
    hold_pool(&h);
    atomic_int ran = 0;
    gather_future *prev, *next, *next2;
    ck_assert_int_eq(gather_submit(h.pool, tu_task_count, &ran, &prev), 0);
    seen s = {.code = 0}, s2 = {.code = 0};
    ck_assert_int_eq(gather_then(prev, p, then_record, &s, &next), 0);
    ck_assert_int_eq(gather_then(prev, p, then_record, &s2, &next2), 0);
    ck_assert_int_eq(gather_pool_shutdown(p, 0), 0);
    /* The pool is even destroyed while the continuation waits. */
    gather_pool *q = tu_pool(1);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    release_pool(&h);
    ck_assert_int_eq(gather_future_wait(next, NULL), ESHUTDOWN);
    ck_assert_int_eq(gather_future_wait(next2, NULL), ESHUTDOWN);
    ck_assert_int_eq(atomic_load(&s.runs) + atomic_load(&s2.runs), 0);
    /* A shut-down pool at the call. */
    ck_assert_int_eq(gather_pool_shutdown(q, 0), 0);
    gather_future *n3 = (gather_future *)&s;
    ck_assert_int_eq(gather_then(prev, q, then_record, &s, &n3), ESHUTDOWN);
    ck_assert_ptr_null(n3);
    ck_assert_int_eq(gather_pool_destroy(q), 0);
    gather_future_release(next);
    gather_future_release(next2);
    gather_future_release(prev);
}
END_TEST

START_TEST(test_then_argument_errors)
{
    gather_future *prev;
    ck_assert_int_eq(gather_submit(NULL, tu_task_identity, NULL, &prev), 0);
    gather_future *next = (gather_future *)&prev;
    ck_assert_int_eq(gather_then(NULL, NULL, then_record, NULL, &next), EINVAL);
    ck_assert_ptr_null(next);
    next = (gather_future *)&prev;
    ck_assert_int_eq(gather_then(prev, NULL, NULL, NULL, &next), EINVAL);
    ck_assert_ptr_null(next);
    ck_assert_int_eq(gather_then(prev, NULL, NULL, NULL, NULL), EINVAL);
    ck_assert_int_eq(gather_future_wait(prev, NULL), 0);
    gather_future_release(prev);
}
END_TEST

/* ---- chains -------------------------------------------------------------- */

static atomic_long chain_next; /* the index the next link must have */
static atomic_long chain_bad;

static int then_link(gather_future *prev, void *arg, void **result)
{
    long i = (long)(intptr_t)arg;
    if (atomic_load(&chain_next) != i)
        atomic_fetch_add(&chain_bad, 1);
    atomic_store(&chain_next, i + 1);
    *result = arg;
    return gather_future_error(prev); /* a failure runs down the chain */
}

static long chain_length(void)
{
    return TU_VALGRIND ? 20000 : TU_SANITIZED ? 100000 : 1000000;
}

/* A chain of `n` links behind `head` on `pool`, the caller's references to
 * the links released as it goes: only the last is kept. */
static gather_future *build_chain(gather_future *head, gather_pool *pool, long n)
{
    gather_future *prev = gather_future_retain(head);
    for (long i = 0; i < n; i++) {
        gather_future *next;
        ck_assert_int_eq(gather_then(prev, pool, then_link, (void *)(intptr_t)i, &next), 0);
        gather_future_release(prev);
        prev = next;
    }
    return prev;
}

START_TEST(test_million_link_chain_on_a_small_stack)
{
    gather_pool_options o = {0};
    o.threads = 1;
    o.stack_size = 64 * 1024;
    gather_pool *p;
    ck_assert_int_eq(gather_pool_create(&p, &o), 0);
    held h;
    hold_pool(&h);
    atomic_int ran = 0;
    gather_future *head;
    ck_assert_int_eq(gather_submit(h.pool, tu_task_count, &ran, &head), 0);
    long n = chain_length();
    atomic_store(&chain_next, 0);
    atomic_store(&chain_bad, 0);
    gather_future *last = build_chain(head, p, n);
    release_pool(&h); /* the head completes; the chain runs on p */
    void *v = NULL;
    ck_assert_int_eq(gather_future_wait(last, &v), 0);
    ck_assert_int_eq((long)(intptr_t)v, n - 1);
    ck_assert_int_eq(atomic_load(&chain_next), n);
    ck_assert_int_eq(atomic_load(&chain_bad), 0);
    gather_future_release(last);
    gather_future_release(head);
    gather_pool_stats st;
    ck_assert_int_eq(gather_pool_stats_get(p, &st), 0);
    ck_assert_uint_eq(st.submitted, (uint64_t)n);
    ck_assert_uint_eq(st.completed, (uint64_t)n);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

START_TEST(test_chain_with_a_failing_and_a_cancelled_head)
{
    gather_pool *p = tu_pool(2);
    held h;
    hold_pool(&h);
    gather_future *head;
    ck_assert_int_eq(gather_submit(h.pool, tu_task_fail, (void *)(intptr_t)EIO, &head), 0);
    long n = chain_length() / 10;
    atomic_store(&chain_next, 0);
    atomic_store(&chain_bad, 0);
    gather_future *last = build_chain(head, p, n);
    atomic_int ran = 0;
    gather_future *head2;
    ck_assert_int_eq(gather_submit(h.pool, tu_task_count, &ran, &head2), 0);
    release_pool(&h);
    ck_assert_int_eq(gather_future_wait(last, NULL), EIO); /* passed down */
    ck_assert_int_eq(atomic_load(&chain_next), n);
    ck_assert_int_eq(atomic_load(&chain_bad), 0);
    gather_future_release(last);
    gather_future_release(head);
    gather_future_release(head2);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

START_TEST(test_pending_chain_refused_by_a_shut_down_pool)
{
    /* The head completes (from this thread, by a cancel) after the pool
     * shut down: the first link completes with ESHUTDOWN, which completes
     * the next one's prev, and so on down the chain, without recursion. */
    gather_pool *p = tu_pool(1);
    held h;
    hold_pool(&h);
    atomic_int ran = 0;
    gather_future *head;
    ck_assert_int_eq(gather_submit(h.pool, tu_task_count, &ran, &head), 0);
    long n = chain_length() / 10;
    atomic_store(&chain_next, 0);
    gather_future *last = build_chain(head, p, n);
    ck_assert_int_eq(gather_pool_shutdown(p, 0), 0);
    ck_assert(gather_future_cancel(head));
    ck_assert(gather_future_done(last));
    ck_assert_int_eq(gather_future_error(last), ESHUTDOWN);
    ck_assert_int_eq(atomic_load(&chain_next), 0); /* no link ran */
    gather_pool_stats st;
    ck_assert_int_eq(gather_pool_stats_get(p, &st), 0);
    ck_assert_uint_eq(st.cancelled, (uint64_t)n);
    gather_future_release(last);
    gather_future_release(head);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    release_pool(&h);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("then");
    TCase *tc = tcase_create("then");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_then_runs_after_prev_with_its_outcome);
    tcase_add_test(tc, test_then_runs_after_a_cancelled_prev);
    tcase_add_test(tc, test_then_detached_still_runs);
    tcase_add_test(tc, test_cancelling_next_before_it_starts);
    tcase_add_test(tc, test_prev_done_after_the_pool_shut_down);
    tcase_add_test(tc, test_then_argument_errors);
    tcase_add_test(tc, test_million_link_chain_on_a_small_stack);
    tcase_add_test(tc, test_chain_with_a_failing_and_a_cancelled_head);
    tcase_add_test(tc, test_pending_chain_refused_by_a_shut_down_pool);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
