/* SPDX-License-Identifier: MIT */
/*
 * check_then.c - gather_then() (SPEC.md, "Continuations"): fn runs once
 * prev is done, whatever its code, with prev borrowed and readable; next
 * gets fn's code and value; detached links; cancelling next before fn
 * starts; prev completing after the pool was shut down or destroyed; the
 * argument checks; the link's own reference to prev; the stats; and long
 * chains (of links, failing links, refused or cancelled links, nested
 * gather_all aggregates) in constant stack: the pools and the threads that
 * complete a chain's head run on 64 KiB stacks, where recursion per link
 * would overflow long before the end.
 *
 * main() installs a counting allocator (before any pool exists), so that a
 * test can see finished links freed while the chain still runs, and make
 * allocations fail.
 */
#include "testutil.h"

#include <limits.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

#define WATCHDOG_S (TU_VALGRIND ? 120 : 30)
/* Stacks of the pools and threads that run and complete chains. */
#define SMALL_STACK (64u * 1024u)

/* Chain lengths: SPEC.md's million, fewer where each step costs more. */
#define SCALED(n) (TU_VALGRIND || TU_SANITIZED ? (n) / 100 : (n))
#define CHAIN_LONG SCALED(1000000L)
#define CHAIN_MID SCALED(100000L)

static int marker_a, marker_b, marker_c;

/* ---- a counting allocator that fails on demand ------------------------------ */

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

static gather_pool *pool_of(size_t threads, size_t stack_size)
{
    gather_pool_options o;
    memset(&o, 0, sizeof o);
    o.threads = threads;
    o.stack_size = stack_size;
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

/* A gated task on a pool: started, then held until the gate opens. */
typedef struct gated {
    tu_gate gate;
    tu_count started;
    tu_gated g;
    gather_future *f;
} gated;

static void gated_start(gated *h, gather_pool *p, int code, void *value)
{
    memset(h, 0, sizeof *h);
    tu_gate_init(&h->gate);
    tu_count_init(&h->started);
    h->g.gate = &h->gate;
    h->g.started = &h->started;
    h->g.code = code;
    h->g.value = value;
    atomic_init(&h->g.ran, 0);
    atomic_init(&h->g.saw_cancel, 0);
    ck_assert_int_eq(gather_submit(p, tu_task_gated, &h->g, &h->f), 0);
    ck_assert_int_eq(count_wait_s(&h->started, 1, WATCHDOG_S), 0);
}

/* Opens the gate, waits, releases. */
static void gated_finish(gated *h)
{
    tu_gate_open(&h->gate);
    ck_assert_int_eq(gather_future_wait(h->f, NULL), h->g.code);
    gather_future_release(h->f);
    tu_gate_destroy(&h->gate);
    tu_count_destroy(&h->started);
}

/* Runs fn(arg) on a new thread with a SMALL_STACK stack, and joins it. */
typedef struct small_call {
    void (*fn)(void *);
    void *arg;
} small_call;

static void *small_main(void *arg)
{
    small_call *c = arg;
    c->fn(c->arg);
    return NULL;
}

static void on_small_stack(void (*fn)(void *), void *arg)
{
    pthread_attr_t attr;
    ck_assert_int_eq(pthread_attr_init(&attr), 0);
    ck_assert_int_eq(pthread_attr_setstacksize(&attr, SMALL_STACK), 0);
    small_call c = {fn, arg};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, &attr, small_main, &c), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    pthread_attr_destroy(&attr);
}

static void cancel_fn(void *f)
{
    (void)gather_future_cancel(f);
}

static void release_fn(void *f)
{
    gather_future_release(f);
}

/* ---- what a continuation sees ----------------------------------------------- */

typedef struct seen {
    atomic_int calls;
    gather_future *prev;
    int done;
    int error;
    void *value;
    int cancelled;
    int ret_code;      /* what fn returns */
    void *ret_value;   /* and its *result */
    tu_count *count;   /* counted after the call, if not NULL */
} seen;

static void seen_init(seen *s, int ret_code, void *ret_value)
{
    memset(s, 0, sizeof *s);
    atomic_init(&s->calls, 0);
    s->ret_code = ret_code;
    s->ret_value = ret_value;
    s->done = s->error = s->cancelled = -1;
}

static int then_record(gather_future *prev, void *arg, void **result)
{
    seen *s = arg;
    s->prev = prev;
    s->done = gather_future_done(prev);
    s->error = gather_future_error(prev);
    s->value = gather_future_value(prev);
    s->cancelled = gather_future_cancelled(prev);
    atomic_fetch_add(&s->calls, 1);
    *result = s->ret_value;
    if (s->count != NULL)
        tu_count_add(s->count, 1);
    return s->ret_code;
}

/* ---- basics ----------------------------------------------------------------- */

START_TEST(test_then_runs_after_prev_with_prev_readable)
{
    gather_pool *p = tu_pool(2);
    struct {
        int prev_code;
        void *prev_value;
        int code;
        void *value;
    } cases[] = {
        {0, &marker_a, 0, &marker_b},
        {0, &marker_a, 7, &marker_c},  /* fn fails */
        {13, &marker_b, 0, &marker_c}, /* prev failed with a payload */
        {13, NULL, 21, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gated h;
        gated_start(&h, p, cases[i].prev_code, cases[i].prev_value);
        seen s;
        seen_init(&s, cases[i].code, cases[i].value);
        gather_future *next = NULL;
        ck_assert_int_eq(gather_then(h.f, p, then_record, &s, &next), 0);
        ck_assert_ptr_nonnull(next);
        ck_assert(next != h.f);
        ck_assert(!gather_future_done(next));
        ck_assert_int_eq(gather_future_error(next), EINPROGRESS);
        gather_future *prev = gather_future_retain(h.f);
        gated_finish(&h);
        void *v = &marker_c;
        ck_assert_int_eq(gather_future_wait(next, &v), cases[i].code);
        ck_assert_ptr_eq(v, cases[i].value);
        ck_assert_ptr_eq(gather_future_value(next), cases[i].value);
        ck_assert(!gather_future_cancelled(next));
        ck_assert_int_eq(atomic_load(&s.calls), 1);
        ck_assert_ptr_eq(s.prev, prev);
        ck_assert_int_eq(s.done, 1);
        ck_assert_int_eq(s.error, cases[i].prev_code);
        ck_assert_ptr_eq(s.value, cases[i].prev_value);
        ck_assert_int_eq(s.cancelled, 0);
        /* prev is untouched by its continuation. */
        ck_assert_int_eq(gather_future_error(prev), cases[i].prev_code);
        gather_future_release(prev);
        gather_future_release(next);
    }
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

/* prev cancelled before it ran: fn still runs and sees ECANCELED. */
START_TEST(test_then_runs_after_prev_cancelled)
{
    gather_pool *src = tu_pool(1);
    gather_pool *p = tu_pool(1);
    gated h;
    gated_start(&h, src, 0, NULL);
    atomic_int ran = 0;
    gather_future *prev = NULL, *next = NULL;
    ck_assert_int_eq(gather_submit(src, tu_task_count, &ran, &prev), 0);
    seen s;
    seen_init(&s, 0, &marker_a);
    ck_assert_int_eq(gather_then(prev, p, then_record, &s, &next), 0);
    ck_assert(gather_future_cancel(prev));
    ck_assert_int_eq(gather_future_wait(next, NULL), 0);
    ck_assert_int_eq(atomic_load(&s.calls), 1);
    ck_assert_int_eq(s.error, ECANCELED);
    ck_assert_int_eq(s.cancelled, 1);
    ck_assert_ptr_null(s.value);
    ck_assert_ptr_eq(gather_future_value(next), &marker_a);
    gated_finish(&h);
    ck_assert_int_eq(atomic_load(&ran), 0);
    gather_future_release(prev);
    gather_future_release(next);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    ck_assert_int_eq(gather_pool_destroy(src), 0);
}
END_TEST

START_TEST(test_then_on_done_prev_and_detached)
{
    gather_pool *p = tu_pool(2);
    gather_future *prev = NULL, *next = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_identity, &marker_a, &prev), 0);
    ck_assert_int_eq(gather_future_wait(prev, NULL), 0);
    seen s;
    seen_init(&s, 5, &marker_b);
    ck_assert_int_eq(gather_then(prev, p, then_record, &s, &next), 0);
    ck_assert_int_eq(gather_future_wait(next, NULL), 5);
    ck_assert_int_eq(s.done, 1);
    ck_assert_ptr_eq(s.value, &marker_a);
    gather_future_release(next);

    /* Detached: on a done prev, and on a pending one. */
    tu_count count;
    tu_count_init(&count);
    seen d1, d2;
    seen_init(&d1, 0, NULL);
    seen_init(&d2, 0, NULL);
    d1.count = d2.count = &count;
    ck_assert_int_eq(gather_then(prev, p, then_record, &d1, NULL), 0);
    gated h;
    gated_start(&h, p, 3, &marker_c);
    ck_assert_int_eq(gather_then(h.f, p, then_record, &d2, NULL), 0);
    gated_finish(&h);
    ck_assert_int_eq(count_wait_s(&count, 2, WATCHDOG_S), 0);
    ck_assert_int_eq(gather_pool_shutdown(p, 0), 0);
    ck_assert_int_eq(atomic_load(&d1.calls), 1);
    ck_assert_int_eq(atomic_load(&d2.calls), 1);
    ck_assert_int_eq(d2.error, 3);
    ck_assert_ptr_eq(d2.value, &marker_c);
    gather_future_release(prev);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    tu_count_destroy(&count);
}
END_TEST

/* The default pool, and a continuation made inside a task on its own pool
 * (a one-thread pool: the wait for next helps run the subtask and fn). */
static int task_then_inside(void *arg, void **result)
{
    (void)arg;
    gather_pool *self = gather_current_pool();
    gather_future *sub = NULL, *next = NULL;
    int rc = gather_submit(self, tu_task_identity, &marker_b, &sub);
    if (rc != 0)
        return rc;
    seen s;
    seen_init(&s, 0, &marker_c);
    rc = gather_then(sub, self, then_record, &s, &next);
    gather_future_release(sub);
    if (rc != 0)
        return rc;
    void *v = NULL;
    rc = gather_future_wait(next, &v);
    gather_future_release(next);
    if (rc == 0 && (v != &marker_c || s.value != &marker_b))
        rc = EPROTO;
    *result = v;
    return rc;
}

START_TEST(test_then_default_pool_and_inside_a_task)
{
    /* prev on a pool of its own, released last by this thread: a task
     * block freed on a default pool's thread would stay in its worker's
     * cache, which valgrind reports with CK_FORK=no (the default pool
     * lives to the end, reached only through interior pointers). */
    gather_pool *p = tu_pool(1);
    gather_future *prev = NULL, *next = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_identity, &marker_a, &prev), 0);
    seen s;
    seen_init(&s, 0, &marker_b);
    ck_assert_int_eq(gather_then(prev, NULL, then_record, &s, &next), 0);
    ck_assert_int_eq(gather_future_wait(next, NULL), 0);
    ck_assert_ptr_eq(s.value, &marker_a);
    gather_future_release(next);
    gather_future_release(prev);

    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, task_then_inside, NULL, &f), 0);
    void *v = NULL;
    ck_assert_int_eq(gather_future_wait(f, &v), 0);
    ck_assert_ptr_eq(v, &marker_c);
    gather_future_release(f);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

/* ---- cancelling next ---------------------------------------------------------- */

static void note_done(gather_future *f, void *user_data)
{
    (void)f;
    atomic_fetch_add((atomic_int *)user_data, 1);
}

/* Before fn starts: next completes with ECANCELED at once, fn never runs,
 * prev is not touched; counted as cancelled. prev still running, and prev
 * done with the link queued behind a held thread. */
START_TEST(test_cancel_next_before_fn_starts)
{
    gather_pool *p = tu_pool(2);
    gated h;
    gated_start(&h, p, 11, &marker_a);
    seen s;
    seen_init(&s, 0, NULL);
    gather_future *next = NULL;
    ck_assert_int_eq(gather_then(h.f, p, then_record, &s, &next), 0);
    atomic_int callbacks = 0;
    ck_assert_int_eq(gather_future_on_done(next, note_done, &callbacks), 0);
    ck_assert(gather_future_cancel(next));
    ck_assert_int_eq(atomic_load(&callbacks), 1);
    ck_assert(gather_future_done(next));
    ck_assert(gather_future_cancelled(next));
    ck_assert_int_eq(gather_future_error(next), ECANCELED);
    ck_assert_ptr_null(gather_future_value(next));
    ck_assert(!gather_future_cancel(next));
    /* prev: still running, not cancelled, finishes with its own result. */
    ck_assert(!gather_future_done(h.f));
    ck_assert_int_eq(atomic_load(&h.g.saw_cancel), 0);
    gather_future *prev = gather_future_retain(h.f);
    gated_finish(&h);
    ck_assert_int_eq(gather_future_error(prev), 11);
    ck_assert_ptr_eq(gather_future_value(prev), &marker_a);
    ck_assert(!gather_future_cancelled(prev));
    ck_assert_int_eq(atomic_load(&h.g.saw_cancel), 0);
    ck_assert_int_eq(gather_pool_shutdown(p, 0), 0);
    ck_assert_int_eq(atomic_load(&s.calls), 0);
    gather_pool_stats st = stats_of(p);
    ck_assert_uint_eq(st.submitted, 2);
    ck_assert_uint_eq(st.completed, 1);
    ck_assert_uint_eq(st.cancelled, 1);
    gather_future_release(next);
    ck_assert_int_eq(gather_pool_destroy(p), 0);

    /* prev done, the link queued behind a held thread. */
    p = tu_pool(1);
    gated hold;
    gated_start(&hold, p, 0, NULL);
    ck_assert_int_eq(gather_then(prev, p, then_record, &s, &next), 0);
    ck_assert(gather_future_cancel(next));
    ck_assert_int_eq(gather_future_error(next), ECANCELED);
    gated_finish(&hold);
    ck_assert_int_eq(gather_pool_shutdown(p, 0), 0);
    ck_assert_int_eq(atomic_load(&s.calls), 0);
    st = stats_of(p);
    ck_assert_uint_eq(st.submitted, 2);
    ck_assert_uint_eq(st.cancelled, 1);
    gather_future_release(next);
    gather_future_release(prev);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

/* ---- the pool goes first -------------------------------------------------------- */

/* prev completes after the link's pool was shut down (destroyed: its memory
 * is kept until the link is done with it): next completes with ESHUTDOWN,
 * fn does not run. prev completes on its own pool's thread, or by a cancel
 * on this thread. */
START_TEST(test_prev_completes_after_pool_shutdown_or_destroy)
{
    for (int destroy = 0; destroy <= 1; destroy++) {
        for (int by_cancel = 0; by_cancel <= 1; by_cancel++) {
            gather_pool *src = tu_pool(1);
            gather_pool *p = tu_pool(1);
            gated h;
            gated_start(&h, src, 0, &marker_a);
            atomic_int ran = 0;
            gather_future *prev = h.f;
            if (by_cancel) /* pending behind the held thread */
                ck_assert_int_eq(gather_submit(src, tu_task_count, &ran, &prev), 0);
            seen s, d;
            seen_init(&s, 0, NULL);
            seen_init(&d, 0, NULL);
            gather_future *next = NULL;
            ck_assert_int_eq(gather_then(prev, p, then_record, &s, &next), 0);
            ck_assert_int_eq(gather_then(prev, p, then_record, &d, NULL), 0);
            if (destroy) {
                ck_assert_int_eq(gather_pool_destroy(p), 0);
                p = NULL;
            } else {
                ck_assert_int_eq(gather_pool_shutdown(p, 0), 0);
            }
            if (by_cancel) {
                ck_assert(gather_future_cancel(prev));
                ck_assert(gather_future_done(next));
                gather_future_release(prev);
            }
            gated_finish(&h);
            ck_assert_int_eq(gather_future_wait(next, NULL), ESHUTDOWN);
            ck_assert_ptr_null(gather_future_value(next));
            /* The detached one is done once src's thread is (destroy joins). */
            ck_assert_int_eq(gather_pool_destroy(src), 0);
            ck_assert_int_eq(atomic_load(&s.calls), 0);
            ck_assert_int_eq(atomic_load(&d.calls), 0);
            ck_assert_int_eq(atomic_load(&ran), 0);
            if (p != NULL) {
                gather_pool_stats st = stats_of(p);
                ck_assert_uint_eq(st.submitted, 2);
                ck_assert_uint_eq(st.cancelled, 2);
                ck_assert_uint_eq(st.completed, 0);
                ck_assert_int_eq(gather_pool_destroy(p), 0);
            }
            gather_future_release(next);
        }
    }
}
END_TEST

/* ---- errors ------------------------------------------------------------------------ */

START_TEST(test_then_errors)
{
    gather_pool *p = tu_pool(1);
    gather_future *prev = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_identity, &marker_a, &prev), 0);
    seen s;
    seen_init(&s, 0, NULL);
    gather_future *next = (gather_future *)&marker_c;
    ck_assert_int_eq(gather_then(NULL, p, then_record, &s, &next), EINVAL);
    ck_assert_ptr_null(next);
    next = (gather_future *)&marker_c;
    ck_assert_int_eq(gather_then(prev, p, NULL, &s, &next), EINVAL);
    ck_assert_ptr_null(next);
    ck_assert_int_eq(gather_then(NULL, NULL, NULL, NULL, NULL), EINVAL);
    ck_assert_int_eq(gather_then(prev, NULL, NULL, &s, NULL), EINVAL);

    /* Out of memory: nothing made, prev untouched. */
    next = (gather_future *)&marker_c;
    atomic_store(&al_fail, 1);
    int rc = gather_then(prev, p, then_record, &s, &next);
    atomic_store(&al_fail, 0);
    ck_assert_int_eq(rc, ENOMEM);
    ck_assert_ptr_null(next);

    ck_assert_int_eq(gather_pool_shutdown(p, 0), 0);
    next = (gather_future *)&marker_c;
    ck_assert_int_eq(gather_then(prev, p, then_record, &s, &next), ESHUTDOWN);
    ck_assert_ptr_null(next);
    ck_assert_int_eq(gather_then(prev, p, then_record, &s, NULL), ESHUTDOWN);
    gather_pool_stats st = stats_of(p);
    ck_assert_uint_eq(st.submitted, 1);
    ck_assert_uint_eq(st.cancelled, 0);
    ck_assert_int_eq(atomic_load(&s.calls), 0);
    /* prev's references are as before: one, ours. */
    ck_assert_int_eq(gather_future_wait(prev, NULL), 0);
    gather_future_release(prev);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

/* ---- the link's reference to prev ------------------------------------------------- */

START_TEST(test_link_holds_its_own_reference_to_prev)
{
    gather_pool *p = tu_pool(2);
    gated h;
    gated_start(&h, p, 0, &marker_b);
    seen s;
    seen_init(&s, 0, NULL);
    gather_future *next = NULL;
    ck_assert_int_eq(gather_then(h.f, p, then_record, &s, &next), 0);
    gather_future_release(h.f); /* ours goes at once */
    tu_gate_open(&h.gate);
    ck_assert_int_eq(gather_future_wait(next, NULL), 0);
    ck_assert_ptr_eq(s.value, &marker_b);
    ck_assert_int_eq(s.error, 0);
    ck_assert_int_eq(s.done, 1);
    gather_future_release(next);

    /* prev already done, released at once, the link queued behind a held
     * thread. */
    gather_pool *one = tu_pool(1);
    gated hold;
    gated_start(&hold, one, 0, NULL);
    gather_future *prev = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_identity, &marker_c, &prev), 0);
    ck_assert_int_eq(gather_future_wait(prev, NULL), 0);
    seen s2;
    seen_init(&s2, 0, NULL);
    ck_assert_int_eq(gather_then(prev, one, then_record, &s2, &next), 0);
    gather_future_release(prev);
    gated_finish(&hold);
    ck_assert_int_eq(gather_future_wait(next, NULL), 0);
    ck_assert_ptr_eq(s2.value, &marker_c);
    gather_future_release(next);
    ck_assert_int_eq(gather_pool_destroy(one), 0);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    tu_gate_destroy(&h.gate);
    tu_count_destroy(&h.started);
}
END_TEST

START_TEST(test_stats_count_the_continuation_at_the_call)
{
    gather_pool *src = tu_pool(1);
    gather_pool *p = tu_pool(1);
    gated h;
    gated_start(&h, src, 0, NULL);
    seen s;
    seen_init(&s, 0, NULL);
    gather_future *n1 = NULL, *n2 = NULL;
    ck_assert_int_eq(gather_then(h.f, p, then_record, &s, &n1), 0);
    ck_assert_uint_eq(stats_of(p).submitted, 1);
    ck_assert_int_eq(gather_then(h.f, p, then_record, &s, &n2), 0);
    ck_assert_uint_eq(stats_of(p).submitted, 2);
    ck_assert_uint_eq(stats_of(p).cancelled, 0);
    ck_assert(gather_future_cancel(n2));
    ck_assert_uint_eq(stats_of(p).cancelled, 1);
    gated_finish(&h);
    ck_assert_int_eq(gather_future_wait(n1, NULL), 0);
    gather_pool_stats st = stats_of(p);
    ck_assert_uint_eq(st.submitted, 2);
    ck_assert_uint_eq(st.completed, 1);
    ck_assert_uint_eq(st.cancelled, 1);
    ck_assert_int_eq(atomic_load(&s.calls), 1);
    gather_future_release(n1);
    gather_future_release(n2);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    ck_assert_int_eq(gather_pool_destroy(src), 0);
}
END_TEST

/* prev completes (cancelled on one thread) while next is cancelled on
 * another, after the link's pool was destroyed: whichever claims the link,
 * the pool's memory outlives every use of it (ASan, valgrind), next ends
 * with ECANCELED or ESHUTDOWN, and fn never runs. */
typedef struct race_arg {
    pthread_barrier_t *barrier;
    gather_future *f;
} race_arg;

static void *race_cancel_main(void *arg)
{
    race_arg *a = arg;
    pthread_barrier_wait(a->barrier);
    (void)gather_future_cancel(a->f);
    return NULL;
}

static int then_never(gather_future *prev, void *arg, void **result);

START_TEST(test_cancel_next_races_with_prev_on_destroyed_pool)
{
    gather_pool *src = tu_pool(1);
    gated h;
    gated_start(&h, src, 0, NULL);
    atomic_int ran = 0;
    atomic_long calls = 0;
    int rounds = TU_VALGRIND ? 30 : 300;
    int refused = 0, cancelled = 0;
    for (int i = 0; i < rounds; i++) {
        gather_pool *p = tu_pool(1);
        gather_future *prev = NULL, *next = NULL;
        ck_assert_int_eq(gather_submit(src, tu_task_count, &ran, &prev), 0);
        ck_assert_int_eq(gather_then(prev, p, then_never, &calls, &next), 0);
        ck_assert_int_eq(gather_pool_destroy(p), 0);
        pthread_barrier_t barrier;
        ck_assert_int_eq(pthread_barrier_init(&barrier, NULL, 2), 0);
        race_arg a = {&barrier, next}, b = {&barrier, prev};
        pthread_t ta, tb;
        ck_assert_int_eq(pthread_create(&ta, NULL, race_cancel_main, &a), 0);
        ck_assert_int_eq(pthread_create(&tb, NULL, race_cancel_main, &b), 0);
        ck_assert_int_eq(pthread_join(ta, NULL), 0);
        ck_assert_int_eq(pthread_join(tb, NULL), 0);
        pthread_barrier_destroy(&barrier);
        ck_assert(gather_future_done(next));
        int err = gather_future_error(next);
        ck_assert_msg(err == ECANCELED || err == ESHUTDOWN, "next: %d", err);
        if (err == ECANCELED)
            cancelled++;
        else
            refused++;
        gather_future_release(next);
        gather_future_release(prev);
    }
    gated_finish(&h);
    ck_assert_int_eq(gather_pool_destroy(src), 0);
    ck_assert_int_eq(atomic_load(&calls), 0);
    ck_assert_int_eq(atomic_load(&ran), 0);
    ck_assert_int_eq(cancelled + refused, rounds);
}
END_TEST

/* ---- long chains ------------------------------------------------------------------ */

typedef struct chain {
    atomic_long counter; /* the index of the last link that ran */
    atomic_long bad;     /* links that saw something wrong */
    int head_code;       /* what link 1 expects of the head */
    int propagate;       /* links return their prev's code */
} chain;

/* Link i's arg is i (cast); the chain is a global, one test at a time. */
static chain *g_chain;

static int then_link(gather_future *prev, void *arg, void **result)
{
    chain *c = g_chain;
    long idx = (long)(intptr_t)arg;
    int want = idx == 1 ? c->head_code : c->propagate ? c->head_code : 0;
    int err = gather_future_error(prev);
    if (atomic_load_explicit(&c->counter, memory_order_relaxed) != idx - 1 ||
        !gather_future_done(prev) || err != want)
        atomic_fetch_add(&c->bad, 1);
    atomic_store_explicit(&c->counter, idx, memory_order_relaxed);
    *result = arg;
    return c->propagate ? err : 0;
}

/* Builds links 1..n after head on p, releasing each after making the next
 * (and head, when release_head); returns the last. */
static gather_future *build_chain(gather_future *head, gather_pool *p, long n,
                                  bool release_head)
{
    gather_future *prev = head;
    for (long i = 1; i <= n; i++) {
        gather_future *next = NULL;
        ck_assert_int_eq(gather_then(prev, p, then_link, (void *)(intptr_t)i, &next), 0);
        if (prev != head || release_head)
            gather_future_release(prev);
        prev = next;
    }
    return prev;
}

/* A million links on a pool with 64 KiB stacks, the head completed on a
 * pool thread, then by a cancel on a thread with a 64 KiB stack: all run,
 * in order, and the finished ones are freed while the chain runs. */
START_TEST(test_long_chain_runs_in_order_in_constant_stack)
{
    gather_pool *p = pool_of(2, SMALL_STACK);
    for (int off_pool = 0; off_pool <= 1; off_pool++) {
        chain c;
        memset(&c, 0, sizeof c);
        atomic_init(&c.counter, 0);
        atomic_init(&c.bad, 0);
        g_chain = &c;
        gather_pool *src = off_pool ? tu_pool(1) : p;
        gated h;
        gated_start(&h, src, 0, &marker_a);
        gather_future *head = h.f;
        atomic_int ran = 0;
        if (off_pool) { /* pending behind the held thread, cancelled */
            ck_assert_int_eq(gather_submit(src, tu_task_count, &ran, &head), 0);
            c.head_code = ECANCELED;
        }
        long live_before = atomic_load(&al_live);
        gather_future *last = build_chain(head, p, CHAIN_LONG, off_pool);
        long live_built = atomic_load(&al_live);
        /* (Other blocks come and go meanwhile: a sanity check only.) */
        ck_assert_int_ge(live_built - live_before, CHAIN_LONG / 2);
        if (off_pool)
            on_small_stack(cancel_fn, head);
        tu_gate_open(&h.gate);
        void *v = NULL;
        ck_assert_int_eq(gather_future_wait(last, &v), 0);
        long live_after = atomic_load(&al_live);
        ck_assert_ptr_eq(v, (void *)(intptr_t)CHAIN_LONG);
        ck_assert_int_eq(atomic_load(&c.counter), CHAIN_LONG);
        ck_assert_int_eq(atomic_load(&c.bad), 0);
        /* Every finished link but the last was freed by then. */
        ck_assert_msg(live_after - live_before < 1000,
                      "%ld blocks still live after the chain ran",
                      live_after - live_before);
        gather_future_release(last);
        ck_assert_int_eq(gather_future_wait(h.f, NULL), 0);
        gather_future_release(h.f);
        tu_gate_destroy(&h.gate);
        tu_count_destroy(&h.started);
        if (off_pool) {
            ck_assert_int_eq(atomic_load(&ran), 0);
            ck_assert_int_eq(gather_pool_destroy(src), 0);
        }
    }
    gather_pool_stats st = stats_of(p);
    ck_assert_uint_eq(st.completed, (uint64_t)(2 * CHAIN_LONG + 1));
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    g_chain = NULL;
}
END_TEST

/* Every link fails with its prev's code: the head failed, or was
 * cancelled. */
START_TEST(test_failing_chain)
{
    gather_pool *p = pool_of(1, SMALL_STACK);
    for (int cancelled = 0; cancelled <= 1; cancelled++) {
        chain c;
        memset(&c, 0, sizeof c);
        atomic_init(&c.counter, 0);
        atomic_init(&c.bad, 0);
        c.propagate = 1;
        g_chain = &c;
        gated h;
        gated_start(&h, p, 77, &marker_a);
        gather_future *head = h.f;
        atomic_int ran = 0;
        if (cancelled) {
            ck_assert_int_eq(gather_submit(p, tu_task_count, &ran, &head), 0);
            c.head_code = ECANCELED;
        } else {
            c.head_code = 77;
        }
        gather_future *last = build_chain(head, p, CHAIN_MID, cancelled);
        if (cancelled)
            ck_assert(gather_future_cancel(head));
        tu_gate_open(&h.gate);
        ck_assert_int_eq(gather_future_wait(last, NULL), c.head_code);
        ck_assert_int_eq(atomic_load(&c.counter), CHAIN_MID);
        ck_assert_int_eq(atomic_load(&c.bad), 0);
        ck_assert_int_eq(atomic_load(&ran), 0);
        gather_future_release(last);
        ck_assert_int_eq(gather_future_wait(h.f, NULL), 77);
        gather_future_release(h.f);
        tu_gate_destroy(&h.gate);
        tu_count_destroy(&h.started);
    }
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    g_chain = NULL;
}
END_TEST

static int then_never(gather_future *prev, void *arg, void **result)
{
    (void)prev;
    (void)result;
    atomic_fetch_add((atomic_long *)arg, 1);
    return 0;
}

/* A chain of pending links on a pool that is then shut down (or destroyed),
 * and then the head completes (on a 64 KiB pool thread, or cancelled on a
 * 64 KiB thread): every link completes with ESHUTDOWN, one completion
 * after the other on the completing thread, without running. Then the
 * links are released in chain order, the last from a 64 KiB thread, so
 * that freeing the chain (each unrun link holds its prev) takes constant
 * stack too. */
START_TEST(test_refused_chain_completes_in_constant_stack)
{
    const long n = CHAIN_MID;
    for (int variant = 0; variant < 2; variant++) {
        gather_pool *src = pool_of(1, SMALL_STACK);
        gather_pool *p = tu_pool(1);
        gated h;
        gated_start(&h, src, 0, &marker_a);
        gather_future *head = h.f;
        atomic_int ran = 0;
        if (variant == 1)
            ck_assert_int_eq(gather_submit(src, tu_task_count, &ran, &head), 0);
        atomic_long calls = 0;
        gather_future **links = malloc((size_t)n * sizeof *links);
        ck_assert_ptr_nonnull(links);
        gather_future *prev = head;
        for (long i = 0; i < n; i++) {
            ck_assert_int_eq(gather_then(prev, p, then_never, &calls, &links[i]), 0);
            prev = links[i];
        }
        if (variant == 0) {
            ck_assert_int_eq(gather_pool_shutdown(p, 0), 0);
            tu_gate_open(&h.gate); /* the head completes on src's thread */
        } else {
            ck_assert_int_eq(gather_pool_destroy(p), 0);
            p = NULL;
            on_small_stack(cancel_fn, head);
            tu_gate_open(&h.gate);
        }
        ck_assert_int_eq(gather_future_wait(links[n - 1], NULL), ESHUTDOWN);
        for (long i = 0; i < n; i++) {
            ck_assert(gather_future_done(links[i]));
            ck_assert_int_eq(gather_future_error(links[i]), ESHUTDOWN);
        }
        ck_assert_int_eq(atomic_load(&calls), 0);
        ck_assert_int_eq(atomic_load(&ran), 0);
        if (p != NULL) {
            gather_pool_stats st = stats_of(p);
            ck_assert_uint_eq(st.submitted, (uint64_t)n);
            ck_assert_uint_eq(st.cancelled, (uint64_t)n);
            ck_assert_int_eq(gather_pool_destroy(p), 0);
        }
        if (variant == 1)
            gather_future_release(head);
        for (long i = 0; i < n - 1; i++)
            gather_future_release(links[i]);
        on_small_stack(release_fn, links[n - 1]);
        free(links);
        gather_future_wait(h.f, NULL);
        gather_future_release(h.f);
        ck_assert_int_eq(gather_pool_destroy(src), 0);
        tu_gate_destroy(&h.gate);
        tu_count_destroy(&h.started);
    }
}
END_TEST

/* Cancelling every link of a pending chain (last first, so that no link is
 * queued by its prev's cancel), then releasing them in chain order: fn
 * never runs, and freeing the chain takes constant stack. */
START_TEST(test_cancelled_chain_is_freed_in_constant_stack)
{
    const long n = CHAIN_LONG;
    gather_pool *p = pool_of(1, SMALL_STACK);
    gated h;
    gated_start(&h, p, 0, NULL);
    atomic_long calls = 0;
    gather_future **links = malloc((size_t)n * sizeof *links);
    ck_assert_ptr_nonnull(links);
    gather_future *prev = h.f;
    for (long i = 0; i < n; i++) {
        ck_assert_int_eq(gather_then(prev, p, then_never, &calls, &links[i]), 0);
        prev = links[i];
    }
    for (long i = n - 1; i >= 0; i--)
        ck_assert(gather_future_cancel(links[i]));
    for (long i = 0; i < n - 1; i++)
        gather_future_release(links[i]);
    on_small_stack(release_fn, links[n - 1]);
    gated_finish(&h);
    ck_assert_int_eq(gather_pool_shutdown(p, 0), 0);
    ck_assert_int_eq(atomic_load(&calls), 0);
    gather_pool_stats st = stats_of(p);
    ck_assert_uint_eq(st.cancelled, (uint64_t)n);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    free(links);
}
END_TEST

/* ---- nested aggregates -------------------------------------------------------------- */

/* A million aggregates, each gathering the previous one, over one leaf:
 * the leaf completes on a 64 KiB pool thread (succeeding or failing) or is
 * cancelled on a 64 KiB thread; the outermost completes with the leaf's
 * outcome. */
START_TEST(test_nested_aggregates_complete_in_constant_stack)
{
    const long n = CHAIN_LONG;
    gather_pool *p = pool_of(1, SMALL_STACK);
    int codes[3] = {0, 55, ECANCELED};
    for (int variant = 0; variant < 3; variant++) {
        gated h;
        gated_start(&h, p, codes[variant] == ECANCELED ? 0 : codes[variant], &marker_a);
        gather_future *leaf = h.f;
        atomic_int ran = 0;
        if (variant == 2)
            ck_assert_int_eq(gather_submit(p, tu_task_count, &ran, &leaf), 0);
        gather_future *prev = leaf;
        for (long i = 0; i < n; i++) {
            gather_future *agg = NULL;
            ck_assert_int_eq(gather_all(&prev, 1, 0, &agg), 0);
            if (prev != leaf)
                gather_future_release(prev);
            prev = agg;
        }
        if (variant == 2)
            on_small_stack(cancel_fn, leaf);
        tu_gate_open(&h.gate);
        ck_assert_int_eq(gather_future_wait(prev, NULL), codes[variant]);
        gather_result *r = gather_future_value(prev);
        ck_assert_ptr_nonnull(r);
        ck_assert_int_eq(r[0].error, codes[variant]);
        on_small_stack(release_fn, prev);
        if (variant == 2)
            gather_future_release(leaf);
        ck_assert_int_eq(gather_future_wait(h.f, NULL), variant == 1 ? 55 : 0);
        gather_future_release(h.f);
        tu_gate_destroy(&h.gate);
        tu_count_destroy(&h.started);
        ck_assert_int_eq(atomic_load(&ran), 0);
    }
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

int main(void)
{
    if (gather_replace_allocator(counting_malloc, counting_free) != 0) {
        fprintf(stderr, "could not install the test allocator\n");
        return EXIT_FAILURE;
    }
    Suite *s = suite_create("then");

    TCase *tc = tcase_create("basics");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_then_runs_after_prev_with_prev_readable);
    tcase_add_test(tc, test_then_runs_after_prev_cancelled);
    tcase_add_test(tc, test_then_on_done_prev_and_detached);
    tcase_add_test(tc, test_then_default_pool_and_inside_a_task);
    tcase_add_test(tc, test_cancel_next_before_fn_starts);
    tcase_add_test(tc, test_prev_completes_after_pool_shutdown_or_destroy);
    tcase_add_test(tc, test_then_errors);
    tcase_add_test(tc, test_link_holds_its_own_reference_to_prev);
    tcase_add_test(tc, test_stats_count_the_continuation_at_the_call);
    tcase_add_test(tc, test_cancel_next_races_with_prev_on_destroyed_pool);
    suite_add_tcase(s, tc);

    tc = tcase_create("chains");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_long_chain_runs_in_order_in_constant_stack);
    tcase_add_test(tc, test_failing_chain);
    tcase_add_test(tc, test_refused_chain_completes_in_constant_stack);
    tcase_add_test(tc, test_cancelled_chain_is_freed_in_constant_stack);
    tcase_add_test(tc, test_nested_aggregates_complete_in_constant_stack);
    suite_add_tcase(s, tc);

    return tu_run_suite(s);
}
