/* SPDX-License-Identifier: MIT */
/*
 * check_cq.c - the completion queue: completion order, references, ENOENT
 * and ETIMEDOUT, concurrent consumers, waiting on a pool thread (helping,
 * and parked where both completions and new work wake it), destroy with
 * futures pending and while a thread waits, the descriptor's readiness,
 * and allocation failures.
 *
 * Completion order is forced with one gate per task. A done callback added
 * after gather_cq_add() runs after the queue's listener (callbacks and
 * listeners fire in the order they were added), so a test that waits for
 * that callback knows the future is in the queue.
 *
 * main() installs a counting allocator that can fail the next allocation,
 * before any pool exists (gather_replace_allocator() only works then).
 */
#include "internal.h"
#include "testutil.h"

#include <poll.h>
#include <sched.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#define MS(x) ((uint64_t)(x) * 1000000u)

static int marker_a, marker_b;

/* ---- the counting allocator --------------------------------------------- */

static atomic_long al_live;     /* blocks allocated and not yet freed */
static atomic_int al_fail_next; /* fail the next allocation */

static void *cq_test_malloc(size_t size)
{
    if (atomic_exchange(&al_fail_next, 0))
        return NULL;
    void *p = malloc(size);
    if (p)
        atomic_fetch_add(&al_live, 1);
    return p;
}

static void cq_test_free(void *p)
{
    if (p)
        atomic_fetch_sub(&al_live, 1);
    free(p);
}

/* ---- helpers -------------------------------------------------------------- */

/* Counts done callbacks: added after gather_cq_add(), it runs once the
 * queue's listener has put the future in the queue. */
static void cb_count(gather_future *f, void *ud)
{
    (void)f;
    tu_count_add((tu_count *)ud, 1);
}

static gather_cq *new_cq(void)
{
    gather_cq *cq = NULL;
    ck_assert_int_eq(gather_cq_create(&cq), 0);
    ck_assert_ptr_nonnull(cq);
    return cq;
}

/* Polls fd once without waiting: true when readable. */
static bool readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n = poll(&p, 1, 0);
    ck_assert_int_ge(n, 0);
    return n == 1 && (p.revents & POLLIN);
}

/* Waits (bounded) until a thread is inside gather_cq_next() on cq. */
static void wait_inside(gather_cq *cq, size_t n)
{
    time_t start = time(NULL);
    while (gather__cq_inside(cq) < n) {
        ck_assert_msg(time(NULL) - start < TU_WATCHDOG_S, "no thread entered next");
        sched_yield();
    }
}

/* N gated tasks, one gate each, each returning its index as value. */
#define NG 5
typedef struct gated_set {
    tu_gate gate[NG];
    tu_gated g[NG];
    gather_future *f[NG];
} gated_set;

static void gated_start(gather_pool *p, gated_set *s, int n)
{
    for (int i = 0; i < n; i++) {
        tu_gate_init(&s->gate[i]);
        memset(&s->g[i], 0, sizeof s->g[i]);
        s->g[i].gate = &s->gate[i];
        s->g[i].value = (void *)(intptr_t)(i + 100);
        ck_assert_int_eq(gather_submit(p, tu_task_gated, &s->g[i], &s->f[i]), 0);
    }
}

static void gated_end(gated_set *s, int n)
{
    for (int i = 0; i < n; i++) {
        tu_gate_open(&s->gate[i]); /* idempotent */
        ck_assert_int_eq(gather_future_wait(s->f[i], NULL), 0);
        gather_future_release(s->f[i]);
    }
    /* the gates are destroyed by the caller after the pool is gone */
}

static void gated_destroy(gated_set *s, int n)
{
    for (int i = 0; i < n; i++)
        tu_gate_destroy(&s->gate[i]);
}

/* ---- order ------------------------------------------------------------------ */

START_TEST(test_cq_hands_out_in_completion_order)
{
    gather_pool *p = tu_pool(NG);
    gated_set s;
    gated_start(p, &s, NG);
    gather_cq *cq = new_cq();
    tu_count queued;
    tu_count_init(&queued);
    for (int i = 0; i < NG; i++) {
        ck_assert_int_eq(gather_cq_add(cq, s.f[i], (void *)(intptr_t)i), 0);
        ck_assert_int_eq(gather_future_on_done(s.f[i], cb_count, &queued), 0);
    }
    gather_future *f = NULL;
    ck_assert_int_eq(gather_cq_next(cq, 0, &f, NULL), ETIMEDOUT);
    /* Completion order 3, 0, 4, 1, 2, each queued before the next runs. */
    static const int order[NG] = {3, 0, 4, 1, 2};
    for (int k = 0; k < NG; k++) {
        tu_gate_open(&s.gate[order[k]]);
        ck_assert_int_eq(tu_count_wait(&queued, k + 1), 0);
    }
    for (int k = 0; k < NG; k++) {
        void *ud = NULL;
        ck_assert_int_eq(gather_cq_next(cq, GATHER_FOREVER, &f, &ud), 0);
        ck_assert_ptr_eq(f, s.f[order[k]]);
        ck_assert_int_eq((intptr_t)ud, order[k]);
        ck_assert_ptr_eq(gather_future_value(f), (void *)(intptr_t)(order[k] + 100));
        gather_future_release(f);
    }
    ck_assert_int_eq(gather_cq_next(cq, GATHER_FOREVER, &f, NULL), ENOENT);
    ck_assert_int_eq(gather_cq_destroy(cq), 0);
    gated_end(&s, NG);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    gated_destroy(&s, NG);
    tu_count_destroy(&queued);
}
END_TEST

START_TEST(test_cq_next_waits_for_the_first_to_finish)
{
    gather_pool *p = tu_pool(3);
    gated_set s;
    gated_start(p, &s, 3);
    gather_cq *cq = new_cq();
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(gather_cq_add(cq, s.f[i], NULL), 0);
    for (int k = 2; k >= 0; k--) {
        tu_gate_open(&s.gate[k]);
        gather_future *f = NULL;
        ck_assert_int_eq(gather_cq_next(cq, GATHER_FOREVER, &f, NULL), 0);
        ck_assert_ptr_eq(f, s.f[k]);
        gather_future_release(f);
    }
    ck_assert_int_eq(gather_cq_destroy(cq), 0);
    gated_end(&s, 3);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    gated_destroy(&s, 3);
}
END_TEST

START_TEST(test_cq_already_done_future_is_ready_at_once)
{
    gather_pool *p = tu_pool(2);
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_identity, &marker_a, &f), 0);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    gather_cq *cq = new_cq();
    ck_assert_int_eq(gather_cq_add(cq, f, &marker_b), 0);
    gather_future *got = NULL;
    void *ud = NULL;
    ck_assert_int_eq(gather_cq_next(cq, 0, &got, &ud), 0); /* 0: only looks */
    ck_assert_ptr_eq(got, f);
    ck_assert_ptr_eq(ud, &marker_b);
    ck_assert_ptr_eq(gather_future_value(got), &marker_a);
    gather_future_release(got);
    ck_assert_int_eq(gather_cq_next(cq, 0, &got, &ud), ENOENT);
    gather_future_release(f);
    ck_assert_int_eq(gather_cq_destroy(cq), 0);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

START_TEST(test_cq_same_future_added_twice_is_handed_out_twice)
{
    gather_pool *p = tu_pool(1);
    gated_set s;
    gated_start(p, &s, 1);
    gather_cq *cq = new_cq();
    ck_assert_int_eq(gather_cq_add(cq, s.f[0], &marker_a), 0);
    ck_assert_int_eq(gather_cq_add(cq, s.f[0], &marker_b), 0);
    tu_gate_open(&s.gate[0]);
    gather_future *f1 = NULL, *f2 = NULL;
    void *u1 = NULL, *u2 = NULL;
    ck_assert_int_eq(gather_cq_next(cq, GATHER_FOREVER, &f1, &u1), 0);
    ck_assert_int_eq(gather_cq_next(cq, GATHER_FOREVER, &f2, &u2), 0);
    ck_assert_ptr_eq(f1, s.f[0]);
    ck_assert_ptr_eq(f2, s.f[0]);
    /* Same completion: listeners fire in the order they were added. */
    ck_assert_ptr_eq(u1, &marker_a);
    ck_assert_ptr_eq(u2, &marker_b);
    gather_future_release(f1); /* two references: one per hand-out */
    gather_future_release(f2);
    ck_assert_int_eq(gather_cq_next(cq, GATHER_FOREVER, &f1, NULL), ENOENT);
    /* And an already-done future added twice. */
    ck_assert_int_eq(gather_cq_add(cq, s.f[0], NULL), 0);
    ck_assert_int_eq(gather_cq_add(cq, s.f[0], NULL), 0);
    ck_assert_int_eq(gather_cq_next(cq, 0, &f1, NULL), 0);
    ck_assert_int_eq(gather_cq_next(cq, 0, &f2, NULL), 0);
    ck_assert_ptr_eq(f1, f2);
    gather_future_release(f1);
    gather_future_release(f2);
    ck_assert_int_eq(gather_cq_destroy(cq), 0);
    gated_end(&s, 1);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    gated_destroy(&s, 1);
}
END_TEST

/* ---- answers ------------------------------------------------------------------ */

START_TEST(test_cq_enoent_on_empty_queue_and_after_draining)
{
    gather_cq *cq = new_cq();
    gather_future *f = (gather_future *)&marker_a;
    ck_assert_int_eq(gather_cq_next(cq, GATHER_FOREVER, &f, NULL), ENOENT);
    ck_assert_int_eq(gather_cq_next(cq, 0, &f, NULL), ENOENT);
    ck_assert_ptr_eq(f, (gather_future *)&marker_a); /* untouched */

    gather_pool *p = tu_pool(2);
    gather_future *fs[3];
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(gather_submit(p, tu_task_identity, &marker_b, &fs[i]), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(gather_cq_add(cq, fs[i], NULL), 0);
        gather_future_release(fs[i]);
    }
    int n = 0;
    while (gather_cq_next(cq, GATHER_FOREVER, &f, NULL) == 0) {
        ck_assert_ptr_eq(gather_future_value(f), &marker_b);
        gather_future_release(f);
        n++;
    }
    ck_assert_int_eq(n, 3);
    ck_assert_int_eq(gather_cq_next(cq, GATHER_FOREVER, &f, NULL), ENOENT);
    ck_assert_int_eq(gather_cq_next(cq, MS(10), &f, NULL), ENOENT);
    ck_assert_int_eq(gather_cq_destroy(cq), 0);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

START_TEST(test_cq_times_out_with_zero_and_small_timeouts)
{
    gather_pool *p = tu_pool(1);
    gated_set s;
    gated_start(p, &s, 1);
    gather_cq *cq = new_cq();
    ck_assert_int_eq(gather_cq_add(cq, s.f[0], NULL), 0);
    gather_future *f = NULL;
    uint64_t t0 = tu_mono_ns();
    ck_assert_int_eq(gather_cq_next(cq, 0, &f, NULL), ETIMEDOUT);
    ck_assert_int_eq(gather_cq_next(cq, MS(30), &f, NULL), ETIMEDOUT);
    uint64_t dt = tu_mono_ns() - t0;
    ck_assert_uint_ge(dt, MS(25)); /* no early answer */
    ck_assert_ptr_null(f);
    tu_gate_open(&s.gate[0]);
    ck_assert_int_eq(gather_cq_next(cq, (uint64_t)TU_WATCHDOG_S * 1000000000u, &f, NULL), 0);
    ck_assert_ptr_eq(f, s.f[0]);
    gather_future_release(f);
    ck_assert_int_eq(gather_cq_destroy(cq), 0);
    gated_end(&s, 1);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    gated_destroy(&s, 1);
}
END_TEST

START_TEST(test_cq_einval_for_every_null)
{
    gather_pool *p = tu_pool(1);
    gather_cq *cq = new_cq();
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_identity, NULL, &f), 0);
    int fd = -1;
    void *ud = NULL;
    ck_assert_int_eq(gather_cq_create(NULL), EINVAL);
    ck_assert_int_eq(gather_cq_add(NULL, f, NULL), EINVAL);
    ck_assert_int_eq(gather_cq_add(cq, NULL, NULL), EINVAL);
    gather_future *got = NULL;
    ck_assert_int_eq(gather_cq_next(NULL, 0, &got, &ud), EINVAL);
    ck_assert_int_eq(gather_cq_next(cq, 0, NULL, &ud), EINVAL);
    ck_assert_int_eq(gather_cq_next(cq, GATHER_FOREVER, NULL, NULL), EINVAL);
    ck_assert_int_eq(gather_cq_fd(NULL, &fd), EINVAL);
    ck_assert_int_eq(gather_cq_fd(cq, NULL), EINVAL);
    ck_assert_int_eq(gather_cq_destroy(NULL), EINVAL);
    ck_assert_int_eq(fd, -1);
    /* user_data NULL is allowed */
    ck_assert_int_eq(gather_cq_add(cq, f, NULL), 0);
    ck_assert_int_eq(gather_cq_next(cq, GATHER_FOREVER, &got, NULL), 0);
    ck_assert_ptr_eq(got, f);
    gather_future_release(got);
    gather_future_release(f);
    ck_assert_int_eq(gather_cq_destroy(cq), 0);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

/* ---- references and lifetime ------------------------------------------------ */

START_TEST(test_cq_keeps_future_alive_after_caller_releases)
{
    gather_pool *p = tu_pool(1);
    gated_set s;
    gated_start(p, &s, 1);
    gather_cq *cq = new_cq();
    uintptr_t before = gather__refs(gather__future_state(s.f[0]));
    ck_assert_int_eq(gather_cq_add(cq, s.f[0], NULL), 0);
    ck_assert_uint_eq(gather__refs(gather__future_state(s.f[0])), before + 1);
    gather_future *mine = s.f[0];
    gather_future_release(mine); /* the submitter's: the queue keeps one */
    tu_gate_open(&s.gate[0]);
    gather_future *f = NULL;
    ck_assert_int_eq(gather_cq_next(cq, GATHER_FOREVER, &f, NULL), 0);
    ck_assert_ptr_eq(f, mine);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    ck_assert_ptr_eq(gather_future_value(f), (void *)(intptr_t)100);
    /* Once the worker let go, ours is the only reference left. */
    time_t start = time(NULL);
    while (gather__refs(gather__future_state(f)) != 1) {
        ck_assert(time(NULL) - start < TU_WATCHDOG_S);
        sched_yield();
    }
    gather_future_release(f); /* frees it (ASan/valgrind: no leak, no UAF) */
    ck_assert_int_eq(gather_cq_destroy(cq), 0);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    gated_destroy(&s, 1);
}
END_TEST

START_TEST(test_cq_destroy_releases_ready_and_pending_futures)
{
    gather_pool *p = tu_pool(2);
    gated_set s;
    gated_start(p, &s, 2);
    gather_cq *cq = new_cq();
    tu_count queued;
    tu_count_init(&queued);
    int fd = -1;
    ck_assert_int_eq(gather_cq_fd(cq, &fd), 0);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(gather_cq_add(cq, s.f[i], NULL), 0);
        ck_assert_int_eq(gather_future_on_done(s.f[i], cb_count, &queued), 0);
    }
    /* f[0] done and queued; f[1] still running. */
    tu_gate_open(&s.gate[0]);
    ck_assert_int_eq(tu_count_wait(&queued, 1), 0);
    ck_assert_int_eq(gather_cq_destroy(cq), 0);
    ck_assert_int_eq(fcntl(fd, F_GETFD), -1); /* the descriptor is closed */
    ck_assert_int_eq(errno, EBADF);
    /* The pending task keeps running and finishes after the destroy; its
     * listener must not touch the freed queue. Release ours first, so the
     * listener holds the last reference to the future when it fires. */
    gather_future *f1 = s.f[1];
    ck_assert_int_eq(gather_future_on_done(f1, cb_count, &queued), 0);
    gather_future_release(f1);
    tu_gate_open(&s.gate[1]);
    ck_assert_int_eq(tu_count_wait(&queued, 3), 0);
    ck_assert(s.g[1].ran == 1);
    ck_assert_int_eq(gather_future_wait(s.f[0], NULL), 0);
    gather_future_release(s.f[0]);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    gated_destroy(&s, 2);
    tu_count_destroy(&queued);
}
END_TEST

/* ---- threads ------------------------------------------------------------------ */

typedef struct waiter_arg {
    gather_cq *cq;
    int rc;
    gather_future *f;
    void *ud;
    uint64_t timeout;
} waiter_arg;

static void *waiter_main(void *arg)
{
    waiter_arg *a = arg;
    a->rc = gather_cq_next(a->cq, a->timeout, &a->f, &a->ud);
    return NULL;
}

START_TEST(test_cq_destroy_is_ebusy_while_a_thread_waits_in_next)
{
    gather_pool *p = tu_pool(1);
    gated_set s;
    gated_start(p, &s, 1);
    gather_cq *cq = new_cq();
    ck_assert_int_eq(gather_cq_add(cq, s.f[0], &marker_a), 0);
    waiter_arg a = {.cq = cq, .rc = -1, .timeout = GATHER_FOREVER};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, waiter_main, &a), 0);
    wait_inside(cq, 1);
    ck_assert_int_eq(gather_cq_destroy(cq), EBUSY);
    /* nothing was done: the queue still works */
    int fd = -1;
    ck_assert_int_eq(gather_cq_fd(cq, &fd), 0);
    ck_assert(!readable(fd));
    tu_gate_open(&s.gate[0]);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_int_eq(a.rc, 0);
    ck_assert_ptr_eq(a.f, s.f[0]);
    ck_assert_ptr_eq(a.ud, &marker_a);
    gather_future_release(a.f);
    ck_assert(!readable(fd));
    ck_assert_int_eq(gather_cq_destroy(cq), 0);
    gated_end(&s, 1);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    gated_destroy(&s, 1);
}
END_TEST

START_TEST(test_cq_waiter_gets_enoent_when_another_takes_the_last)
{
    gather_pool *p = tu_pool(1);
    gated_set s;
    gated_start(p, &s, 1);
    gather_cq *cq = new_cq();
    ck_assert_int_eq(gather_cq_add(cq, s.f[0], NULL), 0);
    waiter_arg a[2] = {{.cq = cq, .rc = -1, .timeout = GATHER_FOREVER},
                       {.cq = cq, .rc = -1, .timeout = GATHER_FOREVER}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, waiter_main, &a[i]), 0);
    wait_inside(cq, 2);
    tu_gate_open(&s.gate[0]);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_join(t[i], NULL), 0);
    /* One got it, the other learned that nothing is left. */
    ck_assert_int_eq(a[0].rc + a[1].rc, ENOENT);
    waiter_arg *got = a[0].rc == 0 ? &a[0] : &a[1];
    ck_assert_ptr_eq(got->f, s.f[0]);
    gather_future_release(got->f);
    ck_assert_int_eq(gather_cq_destroy(cq), 0);
    gated_end(&s, 1);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    gated_destroy(&s, 1);
}
END_TEST

#define CONSUMERS 4
#define ITEMS (TU_VALGRIND ? 200 : 4000)

typedef struct consumer_arg {
    gather_cq *cq;
    pthread_barrier_t *start;
    atomic_int *seen;
    long got;
    int last_rc;
} consumer_arg;

static void *consumer_main(void *arg)
{
    consumer_arg *c = arg;
    pthread_barrier_wait(c->start);
    gather_future *f;
    void *ud;
    while ((c->last_rc = gather_cq_next(c->cq, GATHER_FOREVER, &f, &ud)) == 0) {
        intptr_t i = (intptr_t)ud;
        atomic_fetch_add(&c->seen[i], 1);
        if (gather_future_value(f) != ud)
            atomic_fetch_add(&c->seen[i], 100); /* wrong pairing */
        gather_future_release(f);
        c->got++;
    }
    return NULL;
}

START_TEST(test_cq_concurrent_consumers_each_get_distinct_futures)
{
    gather_pool *p = tu_pool(2);
    gather_cq *cq = new_cq();
    atomic_int *seen = calloc(ITEMS, sizeof *seen);
    ck_assert_ptr_nonnull(seen);
    for (intptr_t i = 0; i < ITEMS; i++) {
        gather_future *f = NULL;
        ck_assert_int_eq(gather_submit(p, tu_task_identity, (void *)i, &f), 0);
        ck_assert_int_eq(gather_cq_add(cq, f, (void *)i), 0);
        gather_future_release(f);
    }
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, CONSUMERS + 1);
    consumer_arg c[CONSUMERS];
    pthread_t t[CONSUMERS];
    for (int k = 0; k < CONSUMERS; k++) {
        c[k] = (consumer_arg){.cq = cq, .start = &start, .seen = seen};
        ck_assert_int_eq(pthread_create(&t[k], NULL, consumer_main, &c[k]), 0);
    }
    pthread_barrier_wait(&start);
    long total = 0;
    for (int k = 0; k < CONSUMERS; k++) {
        ck_assert_int_eq(pthread_join(t[k], NULL), 0);
        ck_assert_int_eq(c[k].last_rc, ENOENT);
        total += c[k].got;
    }
    ck_assert_int_eq(total, ITEMS);
    for (int i = 0; i < ITEMS; i++)
        ck_assert_int_eq(atomic_load(&seen[i]), 1);
    pthread_barrier_destroy(&start);
    free(seen);
    ck_assert_int_eq(gather_cq_destroy(cq), 0);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

/* ---- on a pool thread ------------------------------------------------------- */

static int task_index(void *arg, void **result)
{
    *result = arg;
    return 0;
}

/* On a one-thread pool: queues subtasks on its own pool and drains them
 * through a queue. Only helping can run them. */
static int task_drain_own_subtasks(void *arg, void **result)
{
    (void)arg;
    gather_cq *cq = NULL;
    if (gather_cq_create(&cq) != 0)
        return 1;
    intptr_t sum = 0;
    for (intptr_t i = 1; i <= 8; i++) {
        gather_future *f = NULL;
        if (gather_submit(gather_current_pool(), task_index, (void *)i, &f) != 0)
            return 2;
        if (gather_cq_add(cq, f, NULL) != 0)
            return 3;
        gather_future_release(f);
    }
    gather_future *f;
    int n = 0;
    while (gather_cq_next(cq, GATHER_FOREVER, &f, NULL) == 0) {
        sum += (intptr_t)gather_future_value(f);
        gather_future_release(f);
        n++;
    }
    if (gather_cq_destroy(cq) != 0 || n != 8)
        return 4;
    *result = (void *)sum;
    return 0;
}

START_TEST(test_cq_next_on_one_thread_pool_helps_instead_of_deadlocking)
{
    gather_pool *p = tu_pool(1);
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, task_drain_own_subtasks, NULL, &f), 0);
    ck_assert(gather_future_wait_for(f, (uint64_t)TU_WATCHDOG_S * 1000000000u));
    ck_assert_int_eq(gather_future_error(f), 0);
    ck_assert_int_eq((intptr_t)gather_future_value(f), 36);
    gather_future_release(f);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

/* A task that waits in gather_cq_next() on the future of a gated task. */
typedef struct pooled_wait {
    gather_cq *cq;
    gather_future *expect;
} pooled_wait;

static int task_wait_in_cq(void *arg, void **result)
{
    pooled_wait *w = arg;
    gather_future *f = NULL;
    int rc = gather_cq_next(w->cq, GATHER_FOREVER, &f, NULL);
    if (rc != 0)
        return rc;
    if (f != w->expect)
        return 5;
    *result = gather_future_value(f);
    gather_future_release(f);
    return 0;
}

static int task_open_gate(void *arg, void **result)
{
    (void)result;
    tu_gate_open((tu_gate *)arg);
    return 0;
}

START_TEST(test_cq_parked_pool_waiter_is_woken_by_new_work_and_by_completion)
{
    /* Two threads: one runs the gated task, the other waits in next with
     * nothing to help, parked. A task submitted from outside can run only
     * on the parked waiter (registry wake-up); it opens the gate, and the
     * completion wakes the waiter again. */
    gather_pool *p = tu_pool(2);
    tu_count started;
    tu_count_init(&started);
    gated_set s;
    tu_gate_init(&s.gate[0]);
    memset(&s.g[0], 0, sizeof s.g[0]);
    s.g[0].gate = &s.gate[0];
    s.g[0].started = &started;
    s.g[0].value = &marker_a;
    ck_assert_int_eq(gather_submit(p, tu_task_gated, &s.g[0], &s.f[0]), 0);
    ck_assert_int_eq(tu_count_wait(&started, 1), 0);
    gather_cq *cq = new_cq();
    ck_assert_int_eq(gather_cq_add(cq, s.f[0], NULL), 0);
    pooled_wait w = {cq, s.f[0]};
    gather_future *waiter = NULL;
    ck_assert_int_eq(gather_submit(p, task_wait_in_cq, &w, &waiter), 0);
    wait_inside(cq, 1);
    gather_future *opener = NULL;
    ck_assert_int_eq(gather_submit(p, task_open_gate, &s.gate[0], &opener), 0);
    ck_assert(gather_future_wait_for(waiter, (uint64_t)TU_WATCHDOG_S * 1000000000u));
    ck_assert_int_eq(gather_future_error(waiter), 0);
    ck_assert_ptr_eq(gather_future_value(waiter), &marker_a);
    ck_assert_int_eq(gather_future_wait(opener, NULL), 0);
    gather_future_release(opener);
    gather_future_release(waiter);
    ck_assert_int_eq(gather_cq_destroy(cq), 0);
    ck_assert_int_eq(gather_future_wait(s.f[0], NULL), 0);
    gather_future_release(s.f[0]);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    tu_gate_destroy(&s.gate[0]);
    tu_count_destroy(&started);
}
END_TEST

/* A task that waits in gather_cq_next() with a timeout; value: the code. */
static int task_next_with_timeout(void *arg, void **result)
{
    pooled_wait *w = arg;
    gather_future *f = NULL;
    int rc = gather_cq_next(w->cq, MS(30), &f, NULL);
    if (rc == 0)
        gather_future_release(f);
    *result = (void *)(intptr_t)rc;
    return 0;
}

START_TEST(test_cq_next_on_pool_thread_times_out)
{
    /* One thread: the waiting task has nothing to help with (the gated
     * task runs on another pool), parks in the registry with a deadline,
     * and answers ETIMEDOUT. */
    gather_pool *p = tu_pool(1), *q = tu_pool(1);
    gated_set s;
    gated_start(q, &s, 1);
    gather_cq *cq = new_cq();
    ck_assert_int_eq(gather_cq_add(cq, s.f[0], NULL), 0);
    pooled_wait w = {cq, s.f[0]};
    gather_future *waiter = NULL;
    uint64_t t0 = tu_mono_ns();
    ck_assert_int_eq(gather_submit(p, task_next_with_timeout, &w, &waiter), 0);
    ck_assert_int_eq(gather_future_wait(waiter, NULL), 0);
    ck_assert_uint_ge(tu_mono_ns() - t0, MS(25));
    ck_assert_int_eq((intptr_t)gather_future_value(waiter), ETIMEDOUT);
    gather_future_release(waiter);
    /* The pool still runs tasks (the waiter left the registry). */
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_identity, &marker_a, &f), 0);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    gather_future_release(f);
    tu_gate_open(&s.gate[0]);
    ck_assert_int_eq(gather_cq_next(cq, GATHER_FOREVER, &f, NULL), 0);
    gather_future_release(f);
    ck_assert_int_eq(gather_cq_destroy(cq), 0);
    gated_end(&s, 1);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    ck_assert_int_eq(gather_pool_destroy(q), 0);
    gated_destroy(&s, 1);
}
END_TEST

/* ---- the descriptor --------------------------------------------------------- */

START_TEST(test_cq_fd_readable_exactly_while_a_future_is_ready)
{
    gather_pool *p = tu_pool(3);
    gated_set s;
    gated_start(p, &s, 3);
    gather_cq *cq = new_cq();
    tu_count queued;
    tu_count_init(&queued);
    int fd = -1, fd2 = -1;
    ck_assert_int_eq(gather_cq_fd(cq, &fd), 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(gather_cq_fd(cq, &fd2), 0);
    ck_assert_int_eq(fd, fd2); /* the same one */
    ck_assert(!readable(fd)); /* empty */
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(gather_cq_add(cq, s.f[i], NULL), 0);
        ck_assert_int_eq(gather_future_on_done(s.f[i], cb_count, &queued), 0);
    }
    ck_assert(!readable(fd)); /* added, none done */
    tu_gate_open(&s.gate[0]);
    ck_assert_int_eq(tu_count_wait(&queued, 1), 0);
    ck_assert(readable(fd));
    ck_assert(readable(fd)); /* polling does not consume it */
    tu_gate_open(&s.gate[1]);
    ck_assert_int_eq(tu_count_wait(&queued, 2), 0);
    ck_assert(readable(fd));
    gather_future *f = NULL;
    ck_assert_int_eq(gather_cq_next(cq, 0, &f, NULL), 0);
    ck_assert_ptr_eq(f, s.f[0]);
    gather_future_release(f);
    ck_assert(readable(fd)); /* one still ready */
    ck_assert_int_eq(gather_cq_next(cq, 0, &f, NULL), 0);
    ck_assert_ptr_eq(f, s.f[1]);
    gather_future_release(f);
    ck_assert(!readable(fd)); /* drained */
    ck_assert_int_eq(gather_cq_next(cq, 0, &f, NULL), ETIMEDOUT);
    ck_assert(!readable(fd));
    tu_gate_open(&s.gate[2]);
    ck_assert_int_eq(tu_count_wait(&queued, 3), 0);
    ck_assert(readable(fd)); /* again on the next completion */
    ck_assert_int_eq(gather_cq_next(cq, 0, &f, NULL), 0);
    gather_future_release(f);
    ck_assert(!readable(fd));
    ck_assert_int_eq(gather_cq_next(cq, 0, &f, NULL), ENOENT);
    ck_assert(!readable(fd));
    /* An already-done future added: readable at once. */
    ck_assert_int_eq(gather_cq_add(cq, s.f[2], NULL), 0);
    ck_assert(readable(fd));
    ck_assert_int_eq(gather_cq_next(cq, 0, &f, NULL), 0);
    gather_future_release(f);
    ck_assert(!readable(fd));
    ck_assert_int_eq(gather_cq_destroy(cq), 0);
    gated_end(&s, 3);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    gated_destroy(&s, 3);
    tu_count_destroy(&queued);
}
END_TEST

START_TEST(test_cq_fd_made_after_futures_became_ready_is_readable)
{
    gather_pool *p = tu_pool(2);
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_identity, &marker_a, &f), 0);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    gather_cq *cq = new_cq();
    ck_assert_int_eq(gather_cq_add(cq, f, NULL), 0);
    ck_assert_int_eq(gather_cq_add(cq, f, NULL), 0);
    int fd = -1;
    ck_assert_int_eq(gather_cq_fd(cq, &fd), 0);
    ck_assert(readable(fd));
    gather_future *got;
    ck_assert_int_eq(gather_cq_next(cq, 0, &got, NULL), 0);
    gather_future_release(got);
    ck_assert(readable(fd));
    ck_assert_int_eq(gather_cq_next(cq, 0, &got, NULL), 0);
    gather_future_release(got);
    ck_assert(!readable(fd));
    gather_future_release(f);
    ck_assert_int_eq(gather_cq_destroy(cq), 0);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

START_TEST(test_cq_fd_loop_never_misses_a_completion)
{
    /* An event loop: block in poll() on the descriptor, then drain with
     * timeout 0, while two workers complete tasks. A missed edge would
     * leave poll() waiting for the watchdog. */
    gather_pool *p = tu_pool(2);
    gather_cq *cq = new_cq();
    int fd = -1;
    ck_assert_int_eq(gather_cq_fd(cq, &fd), 0);
    for (intptr_t i = 0; i < ITEMS; i++) {
        gather_future *f = NULL;
        ck_assert_int_eq(gather_submit(p, task_index, (void *)i, &f), 0);
        ck_assert_int_eq(gather_cq_add(cq, f, NULL), 0);
        gather_future_release(f);
    }
    long got = 0;
    int rc = 0;
    while (rc != ENOENT) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        ck_assert_int_eq(poll(&pf, 1, TU_WATCHDOG_S * 1000), 1);
        gather_future *f;
        while ((rc = gather_cq_next(cq, 0, &f, NULL)) == 0) {
            gather_future_release(f);
            got++;
        }
        ck_assert(rc == ETIMEDOUT || rc == ENOENT);
    }
    ck_assert_int_eq(got, ITEMS);
    ck_assert(!readable(fd)); /* nothing left: no spurious readiness */
    ck_assert_int_eq(gather_cq_destroy(cq), 0);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

/* ---- allocation failures ------------------------------------------------------ */

START_TEST(test_cq_add_and_create_fail_with_enomem_and_leak_nothing)
{
    gather_pool *p = tu_pool(1);
    gated_set s;
    gated_start(p, &s, 1);
    long live = atomic_load(&al_live);
    gather_cq *cq = (gather_cq *)&marker_a;
    atomic_store(&al_fail_next, 1);
    ck_assert_int_eq(gather_cq_create(&cq), ENOMEM);
    ck_assert_ptr_null(cq);
    ck_assert_int_eq(atomic_load(&al_live), live);

    cq = new_cq();
    live = atomic_load(&al_live);
    uintptr_t refs = gather__refs(gather__future_state(s.f[0]));
    atomic_store(&al_fail_next, 1);
    ck_assert_int_eq(gather_cq_add(cq, s.f[0], NULL), ENOMEM);
    ck_assert_int_eq(atomic_load(&al_live), live);
    ck_assert_uint_eq(gather__refs(gather__future_state(s.f[0])), refs);
    gather_future *f = NULL;
    ck_assert_int_eq(gather_cq_next(cq, GATHER_FOREVER, &f, NULL), ENOENT); /* nothing added */
    /* It still works afterwards. */
    ck_assert_int_eq(gather_cq_add(cq, s.f[0], NULL), 0);
    tu_gate_open(&s.gate[0]);
    ck_assert_int_eq(gather_cq_next(cq, GATHER_FOREVER, &f, NULL), 0);
    gather_future_release(f);
    ck_assert_int_eq(gather_cq_destroy(cq), 0);
    gated_end(&s, 1);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    gated_destroy(&s, 1);
}
END_TEST

int main(void)
{
    /* Before any pool exists (with CK_FORK=no, tests share this process). */
    if (gather_replace_allocator(cq_test_malloc, cq_test_free) != 0) {
        fprintf(stderr, "check_cq: could not install the allocator\n");
        return EXIT_FAILURE;
    }
    Suite *s = suite_create("cq");

    TCase *tc = tcase_create("order");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_cq_hands_out_in_completion_order);
    tcase_add_test(tc, test_cq_next_waits_for_the_first_to_finish);
    tcase_add_test(tc, test_cq_already_done_future_is_ready_at_once);
    tcase_add_test(tc, test_cq_same_future_added_twice_is_handed_out_twice);
    suite_add_tcase(s, tc);

    tc = tcase_create("answers");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_cq_enoent_on_empty_queue_and_after_draining);
    tcase_add_test(tc, test_cq_times_out_with_zero_and_small_timeouts);
    tcase_add_test(tc, test_cq_einval_for_every_null);
    suite_add_tcase(s, tc);

    tc = tcase_create("lifetime");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_cq_keeps_future_alive_after_caller_releases);
    tcase_add_test(tc, test_cq_destroy_releases_ready_and_pending_futures);
    tcase_add_test(tc, test_cq_add_and_create_fail_with_enomem_and_leak_nothing);
    suite_add_tcase(s, tc);

    tc = tcase_create("threads");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_cq_destroy_is_ebusy_while_a_thread_waits_in_next);
    tcase_add_test(tc, test_cq_waiter_gets_enoent_when_another_takes_the_last);
    tcase_add_test(tc, test_cq_concurrent_consumers_each_get_distinct_futures);
    tcase_add_test(tc, test_cq_next_on_one_thread_pool_helps_instead_of_deadlocking);
    tcase_add_test(tc, test_cq_parked_pool_waiter_is_woken_by_new_work_and_by_completion);
    tcase_add_test(tc, test_cq_next_on_pool_thread_times_out);
    suite_add_tcase(s, tc);

    tc = tcase_create("fd");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_cq_fd_readable_exactly_while_a_future_is_ready);
    tcase_add_test(tc, test_cq_fd_made_after_futures_became_ready_is_readable);
    tcase_add_test(tc, test_cq_fd_loop_never_misses_a_completion);
    suite_add_tcase(s, tc);

    return tu_run_suite(s);
}
