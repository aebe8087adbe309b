/* SPDX-License-Identifier: MIT */
/*
 * wakeup.c - GenMC harness for the no-lost-wake-up protocol: the real
 * lib/sleep.c (registry, Dekker pattern, fence variant) and lib/deque.c,
 * driven by extractions of lib/pool.c's submit and park paths.
 *
 * One waker and SLEEPERS idle workers. Each sleeper runs idle_wait():
 * register, re-check, and park if it saw nothing. The waker publishes
 * something and wakes, by MODE:
 *   MODE_INJECT  a thread outside the pool submits a task (inject_push);
 *   MODE_SPAWN   a worker submits from a task: push on its own deque, then
 *                gather__sleep_wake_one (gather_submit's own-thread path);
 *   MODE_EXIT    pool destruction: exiting = true, then wake_all
 *                (stop_threads).
 * The property (no lost wake-up): some sleeper saw the work (or the exit
 * flag) in its re-check, or some sleeper that parked holds its parker's
 * token, so its park returns. For MODE_EXIT every sleeper must: each one
 * has to leave.
 *
 * Parking itself is not run (GenMC has no condition variables): a sleeper
 * that would park stops there, and main checks its token after the joins.
 * gather__park returns exactly when the token is set, so "parked and no
 * token after every other thread finished" is a sleeper that never wakes.
 *
 * Membarrier: GenMC cannot model membarrier(2) (a system call that makes
 * every running thread execute a full barrier), so sleep.c is compiled
 * without it (__NR_membarrier undefined), which is the seq_cst-fence path
 * that GATHER_MEMBARRIER=0 or a kernel without membarrier selects.
 *
 * Build knobs (-D): MODE (default MODE_INJECT), SLEEPERS (default 1).
 */
#include <sys/syscall.h>
#undef __NR_membarrier /* the fence variant of sleep.c: see above */

#include "shims.h"

/* Found through -I<repository root>; run.sh puts a directory holding a
 * mutated lib/sleep.c or lib/deque.c first. */
#include "lib/sleep.c"
#include "lib/deque.c"

#define MODE_INJECT 1
#define MODE_SPAWN 2
#define MODE_EXIT 3
#ifndef MODE
#define MODE MODE_INJECT
#endif
#ifndef SLEEPERS
#define SLEEPERS 1
#endif
#define WORKERS (SLEEPERS + 1) /* in MODE_SPAWN worker 0 is the waker */

/* The fields of struct gather_pool / gather__worker (lib/pool.c) that the
 * protocol touches. */
struct task {
    struct task *next;
};

struct worker {
    gather__deque deque;
    gather__parker parker;
};

static struct {
    pthread_mutex_t inject_lock;
    struct task *inject_head, *inject_tail; /* guarded by inject_lock */
    _Atomic size_t inject_len;
    _Atomic bool exiting;
    gather__sleep sleep;
    struct worker workers[WORKERS];
} pool;

static struct task the_task;

/* Per sleeper, written by it, read by main after the joins: saw the work
 * (or, in MODE_EXIT, the exit flag) in its re-check; would park. */
static bool saw_work[WORKERS];
static bool would_park[WORKERS];

/* pool.c work_visible(): the injection queue's length, then every deque. */
static bool work_visible(void)
{
    if (atomic_load_explicit(&pool.inject_len, memory_order_seq_cst) != 0)
        return true;
    for (size_t i = 0; i < WORKERS; i++)
        if (gather__deque_nonempty(&pool.workers[i].deque))
            return true;
    return false;
}

/* pool.c idle_wait(), up to gather__park (the exiting flag, the re-check,
 * and leaving the registry when either shows something). The drain check
 * (stopping, check_drained) is left out: it does not wake anybody. */
static void idle_wait(size_t i)
{
    struct worker *w = &pool.workers[i];
    gather__sleep_enter(&pool.sleep, &w->parker, true);
    if (atomic_load_explicit(&pool.exiting, memory_order_acquire)) {
        gather__sleep_leave(&pool.sleep, &w->parker);
        saw_work[i] = true;
        return;
    }
    if (work_visible()) {
        gather__sleep_leave(&pool.sleep, &w->parker);
        saw_work[i] = true;
        return;
    }
    would_park[i] = true; /* gather__park(&w->parker, NULL) from here */
}

/* pool.c inject_push() for one task (minus the stopping check and the
 * statistics counter). */
static void inject_push(struct task *t)
{
    gather__lock(&pool.inject_lock);
    t->next = NULL;
    bool was_empty = pool.inject_head == NULL;
    if (pool.inject_tail != NULL)
        pool.inject_tail->next = t;
    else
        pool.inject_head = t;
    pool.inject_tail = t;
    atomic_store_explicit(&pool.inject_len,
                          atomic_load_explicit(&pool.inject_len, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    if (was_empty)
        gather__sleep_wake_one(&pool.sleep);
    gather__unlock(&pool.inject_lock);
}

static void *sleeper(void *arg)
{
    idle_wait((size_t)(uintptr_t)arg);
    return NULL;
}

static void *waker(void *arg)
{
    (void)arg;
#if MODE == MODE_INJECT
    inject_push(&the_task);
#elif MODE == MODE_SPAWN
    /* gather_submit() on a worker: push on its own deque, then wake one. */
    int rc = gather__deque_push_owner(&pool.workers[0].deque, &the_task);
    assert(rc == 0);
    (void)rc;
    gather__sleep_wake_one(&pool.sleep);
#elif MODE == MODE_EXIT
    /* pool.c stop_threads(). */
    atomic_store_explicit(&pool.exiting, true, memory_order_release);
    gather__sleep_wake_all(&pool.sleep);
#else
#error "unknown MODE"
#endif
    return NULL;
}

int main(void)
{
    int rc = pthread_mutex_init(&pool.inject_lock, NULL);
    assert(rc == 0);
    rc = gather__sleep_init(&pool.sleep);
    assert(rc == 0);
    for (size_t i = 0; i < WORKERS; i++) {
        rc = gather__deque_init(&pool.workers[i].deque, 2);
        assert(rc == 0);
        rc = gather__parker_init(&pool.workers[i].parker);
        assert(rc == 0);
    }
    atomic_init(&pool.inject_len, 0);
    atomic_init(&pool.exiting, false);

    pthread_t t[WORKERS];
    pthread_create(&t[0], NULL, waker, NULL);
    for (size_t i = 1; i < WORKERS; i++)
        pthread_create(&t[i], NULL, sleeper, (void *)(uintptr_t)i);
    for (size_t i = 0; i < WORKERS; i++)
        pthread_join(t[i], NULL);

    /* A sleeper whose park would return: it saw the work in its re-check,
     * or it parked and a waker left the token. */
    size_t awake = 0;
    for (size_t i = 1; i < WORKERS; i++) {
        bool token = pool.workers[i].parker.notified;
        if (saw_work[i] || (would_park[i] && token))
            awake++;
#if MODE == MODE_EXIT
        assert(saw_work[i] || token); /* every worker must leave */
#endif
    }
    assert(awake >= 1); /* the task, or the exit, was not missed */

    for (size_t i = 0; i < WORKERS; i++) {
        gather__parker_destroy(&pool.workers[i].parker);
        gather__deque_destroy(&pool.workers[i].deque);
    }
    gather__sleep_destroy(&pool.sleep);
    pthread_mutex_destroy(&pool.inject_lock);
    return 0;
}
