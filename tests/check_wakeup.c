/* SPDX-License-Identifier: MIT */
/*
 * check_wakeup.c - lost wake-ups: loops that repeat, many times over, the
 * hand-offs where a missed wake-up leaves a thread asleep for good (a
 * submission to a parked worker, a completion to a parked waiter, the last
 * task to a shutdown waiting for the drain).
 *
 *   a) 1-thread pool: submit from outside, then wait; 10^5 times
 *   b) the same on a 2-thread pool whose other worker runs a spinning task
 *   c) nested gathers on a 1-thread pool, submitted and waited from outside
 *   d) create a pool, submit k detached tasks, destroy at once: all ran
 *   e) an outside waiter racing the task's completion
 *   f) a task spawns a child and keeps its worker busy: the other worker
 *      must be woken for the child
 *
 * A lost wake-up shows up as a hang, so every loop runs under a watchdog
 * thread: when the loop's iteration counter has not moved for WATCHDOG_S
 * seconds, it prints the loop and the iteration and aborts the test (Check's
 * timeout would also end it, but later and without saying where). Loops a
 * and b end with "aimed" iterations that time submissions to land as the
 * worker goes to sleep (see the aim below).
 */
#include "testutil.h"

#include <sched.h>
#include <stdbool.h>

#define WATCHDOG_S 10
/* submit_then_wait(): see the aim below. */
/* The last iterations of loops a and b aim (> 0: place_apart() runs at the
 * first aimed one). */
#define AIMED_LAST (TU_VALGRIND ? 100ul : 10000ul)
#define POLL_PAUSES 4096     /* an aimed iteration polls this long at most */
#define AIM_STEP 8           /* pauses the delay moves per aimed iteration */
#define AIM_SPREAD 64        /* pauses of random spread around the delay */
#define AIM_MAX 16384        /* pauses */
#define FOUND_SPINNING_NS 10000 /* a task started this soon: no wake needed */

/* Iterations per loop; sanitizer builds run them all too (each build's
 * whole suite takes well under a minute). valgrind runs one thread at a
 * time, about 100 times slower here: it runs 1 % of them. */
#define LOOP_SHORT (TU_VALGRIND ? 100ul : 10000ul)
#define LOOP_LONG (TU_VALGRIND ? 1000ul : 100000ul)

/* Checks inside the loops. A Check assertion that passes still writes its
 * location to a pipe in fork mode, one system call per check, which would
 * slow the loops and shift their timing: this calls Check only on failure. */
#define LOOP_CHECK(expr, i)                                                    \
    do {                                                                       \
        if (!(expr))                                                           \
            ck_abort_msg("iteration %lu: %s", (unsigned long)(i) + 1, #expr);  \
    } while (0)

/* ---- watchdog ----------------------------------------------------------- */

typedef struct watchdog {
    const char *loop;
    unsigned long total;
    atomic_ulong iteration; /* iterations completed; the loop's progress */
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC; signalled on stop */
    bool stop;           /* guarded by lock */
    pthread_t thread;
} watchdog;

static struct timespec mono_after(uint64_t ns)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ns += (uint64_t)ts.tv_nsec;
    ts.tv_sec += (time_t)(ns / 1000000000u);
    ts.tv_nsec = (long)(ns % 1000000000u);
    return ts;
}

static void *watchdog_main(void *arg)
{
    watchdog *wd = arg;
    unsigned long seen = 0;
    uint64_t last_progress = tu_mono_ns();
    pthread_mutex_lock(&wd->lock);
    while (!wd->stop) {
        struct timespec tick = mono_after(250 * 1000 * 1000);
        pthread_cond_timedwait(&wd->cond, &wd->lock, &tick);
        unsigned long now = atomic_load_explicit(&wd->iteration,
                                                 memory_order_relaxed);
        if (now != seen) {
            seen = now;
            last_progress = tu_mono_ns();
        } else if (!wd->stop &&
                   tu_mono_ns() - last_progress >= WATCHDOG_S * 1000000000ull) {
            if (now < wd->total)
                fprintf(stderr,
                        "wakeup: loop \"%s\" made no progress for %d s, stuck "
                        "in iteration %lu of %lu (a lost wake-up?)\n",
                        wd->loop, WATCHDOG_S, now + 1, wd->total);
            else
                fprintf(stderr,
                        "wakeup: loop \"%s\" made no progress for %d s after "
                        "its %lu iterations, in its teardown (a lost wake-up?)\n",
                        wd->loop, WATCHDOG_S, wd->total);
            abort();
        }
    }
    pthread_mutex_unlock(&wd->lock);
    return NULL;
}

static void watchdog_start(watchdog *wd, const char *loop, unsigned long total)
{
    wd->loop = loop;
    wd->total = total;
    atomic_init(&wd->iteration, 0);
    wd->stop = false;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&wd->cond, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&wd->lock, NULL);
    ck_assert_int_eq(pthread_create(&wd->thread, NULL, watchdog_main, wd), 0);
}

/* Iteration i is complete (the last one: the loop's teardown begins). */
static void watchdog_tick(watchdog *wd, unsigned long i)
{
    atomic_store_explicit(&wd->iteration, i + 1, memory_order_relaxed);
}

/* After the teardown: every wait the loop made has ended. */
static void watchdog_stop(watchdog *wd)
{
    pthread_mutex_lock(&wd->lock);
    wd->stop = true;
    pthread_cond_signal(&wd->cond);
    pthread_mutex_unlock(&wd->lock);
    pthread_join(wd->thread, NULL);
    pthread_cond_destroy(&wd->cond);
    pthread_mutex_destroy(&wd->lock);
}

static void cpu_pause(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#else
    atomic_signal_fence(memory_order_seq_cst); /* keeps the loop */
#endif
}

static void report(const char *loop, unsigned long n, uint64_t t0)
{
    fprintf(stderr, "wakeup: %s: %lu iterations, %.2f s\n", loop, n,
            (double)(tu_mono_ns() - t0) / 1e9);
}

/* Polls f for up to POLL_PAUSES pauses; true once it is done. */
static bool poll_done(gather_future *f)
{
    for (unsigned i = 0; i < POLL_PAUSES; i++) {
        if (gather_future_done(f))
            return true;
        cpu_pause();
    }
    return false;
}

/*
 * Aiming submissions at the instant a worker parks. After a task, an idle
 * worker spins for a while, then registers as a sleeper and parks; a
 * submission that lands between its last look at the queues and its
 * registration is the one that only the sleep protocol's re-check and
 * barriers can save. Loops a and b first submit and wait plainly (the
 * waiter parks, the completion wakes it; on an idle machine the worker is
 * then usually still spinning when the next submission comes), then, for
 * their last AIMED_LAST iterations, aim: each iteration polls for the
 * completion, so the loop knows within a pause when the worker went idle,
 * then waits `delay` pauses (plus a little random spread) before the next
 * submission; the loop and the worker are pinned to two CPUs for it
 * (place_apart). The delay is
 * steered by a staircase: when the next task started within
 * FOUND_SPINNING_NS of its submission, the worker was still spinning, so
 * the delay grows; when it started later, the worker had parked and had to
 * be woken, so the delay shrinks. It settles where the worker parks,
 * whatever its spin length, the build or the machine's load.
 */
typedef struct aim {
    int delay;            /* pauses after an aimed completion */
    bool pending;         /* the next submission was aimed */
    uint64_t rng;
    unsigned long spinning, woken; /* aimed submissions of each kind */
} aim;

static void aim_init(aim *a, uint64_t seed)
{
    a->delay = 0;
    a->pending = false;
    a->rng = seed;
    a->spinning = a->woken = 0;
}

/* The aimed submission's task started `latency_ns` after it was submitted. */
static void aim_learn(aim *a, uint64_t latency_ns)
{
    if (!a->pending)
        return;
    a->pending = false;
    bool spinning = latency_ns < FOUND_SPINNING_NS;
    if (spinning)
        a->spinning++;
    else
        a->woken++;
    a->delay += spinning ? AIM_STEP : -AIM_STEP;
    if (a->delay < 0)
        a->delay = 0;
    if (a->delay > AIM_MAX)
        a->delay = AIM_MAX;
}

/* Waits the aimed delay, from a completion just seen, before the next
 * submission. */
static void aim_fire(aim *a)
{
    a->rng = a->rng * 6364136223846793005ull + 1442695040888963407ull;
    int spread = (int)(a->rng >> 40) % AIM_SPREAD - AIM_SPREAD / 2;
    for (int i = a->delay + spread; i > 0; i--)
        cpu_pause();
    a->pending = true;
}

/* A task that records when it started. */
typedef struct stamped {
    atomic_uint_least64_t started_ns;
} stamped;

static int task_stamp(void *arg, void **result)
{
    stamped *st = arg;
    atomic_store_explicit(&st->started_ns, tu_mono_ns(), memory_order_relaxed);
    *result = arg;
    return 0;
}

/* Iteration i of loops a and b: submits from outside the pool, waits,
 * checks; aimed as described above once i reaches LOOP_LONG - AIMED_LAST. */
static void submit_then_wait(gather_pool *p, unsigned long i, aim *a)
{
    stamped st;
    atomic_init(&st.started_ns, 0);
    uint64_t submitted_ns = tu_mono_ns();
    gather_future *f = NULL;
    LOOP_CHECK(gather_submit(p, task_stamp, &st, &f) == 0, i);
    bool aimed = i >= LOOP_LONG - AIMED_LAST && poll_done(f);
    void *v = NULL;
    LOOP_CHECK(gather_future_wait(f, &v) == 0, i);
    LOOP_CHECK(v == &st, i);
    gather_future_release(f);
    aim_learn(a, atomic_load_explicit(&st.started_ns, memory_order_relaxed) -
                     submitted_ns);
    if (aimed)
        aim_fire(a);
}

/*
 * Aiming needs the loop and the worker on two CPUs of their own: after
 * parked waits the scheduler tends to leave both on one CPU, where the
 * worker cannot spin while the loop polls, and the staircase then drifts
 * to a delay of 0 (measured: the mutation "no re-check before parking" in
 * lib/pool.c idle_wait() was then caught in only some runs; pinned, within
 * a few hundred aimed iterations in every run). Loops a and b pin them
 * apart for their aimed iterations when the process may run on two CPUs or
 * more (b's spinning task is left free: it yields all the time).
 */
typedef struct placement {
    bool pinned;
#if defined(__linux__)
    cpu_set_t saved; /* the loop thread's affinity before */
#endif
} placement;

#if defined(__linux__)
static int pin_to(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

/* Task: pins the worker that runs it to CPU (intptr_t)arg. */
static int task_pin(void *arg, void **result)
{
    *result = NULL;
    return pin_to((int)(intptr_t)arg);
}
#endif

/* Pins the loop thread, and the one worker of `p` not busy with a task, to
 * two different CPUs. */
static void place_apart(gather_pool *p, placement *pl)
{
    pl->pinned = false;
#if defined(__linux__)
    if (pthread_getaffinity_np(pthread_self(), sizeof pl->saved, &pl->saved) != 0 ||
        CPU_COUNT(&pl->saved) < 2)
        return;
    int cpu[2], found = 0;
    for (int c = 0; c < CPU_SETSIZE && found < 2; c++)
        if (CPU_ISSET(c, &pl->saved))
            cpu[found++] = c;
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, task_pin, (void *)(intptr_t)cpu[1], &f), 0);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    gather_future_release(f);
    ck_assert_int_eq(pin_to(cpu[0]), 0);
    pl->pinned = true;
#else
    (void)p;
#endif
}

static void place_restore(placement *pl)
{
#if defined(__linux__)
    if (pl->pinned)
        ck_assert_int_eq(pthread_setaffinity_np(pthread_self(), sizeof pl->saved,
                                                &pl->saved), 0);
#endif
    pl->pinned = false;
}

/* Loops a and b: LOOP_LONG times submit then wait on p, from outside; the
 * worker to wake is p's only free one; the last AIMED_LAST iterations aim. */
static void submit_then_wait_loop(gather_pool *p, watchdog *wd,
                                  const char *loop, uint64_t seed)
{
    uint64_t t0 = tu_mono_ns();
    aim a;
    aim_init(&a, seed);
    placement pl;
    for (unsigned long i = 0; i < LOOP_LONG; i++) {
        if (i == LOOP_LONG - AIMED_LAST)
            place_apart(p, &pl);
        submit_then_wait(p, i, &a);
        watchdog_tick(wd, i);
    }
    bool pinned = pl.pinned;
    place_restore(&pl);
    fprintf(stderr,
            "wakeup: %s: %lu iterations, %.2f s; aimed %d pauses after a "
            "completion%s: %lu found the worker spinning, %lu woke it\n",
            loop, (unsigned long)LOOP_LONG, (double)(tu_mono_ns() - t0) / 1e9,
            a.delay, pinned ? " (pinned)" : "", a.spinning, a.woken);
}

/* ---- a) one worker: every submission must reach the parked worker ------- */

START_TEST(test_one_thread_submit_then_wait)
{
    const char *loop = "a: 1-thread pool, submit then wait";
    watchdog wd;
    watchdog_start(&wd, loop, LOOP_LONG);
    gather_pool *p = tu_pool(1);
    submit_then_wait_loop(p, &wd, loop, 3);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    watchdog_stop(&wd);
}
END_TEST

/* ---- b) two workers, one busy: the other must be the one woken ---------- */

typedef struct spinner {
    atomic_bool spin;
    tu_count started;
} spinner;

/* Occupies its worker until the test clears `spin`. */
static int task_spin(void *arg, void **result)
{
    spinner *s = arg;
    tu_count_add(&s->started, 1);
    while (atomic_load_explicit(&s->spin, memory_order_acquire))
        sched_yield(); /* two cores: leave one to the loop */
    *result = NULL;
    return 0;
}

START_TEST(test_busy_worker_other_is_woken)
{
    const char *loop = "b: 2-thread pool with one worker spinning, submit then wait";
    watchdog wd;
    watchdog_start(&wd, loop, LOOP_LONG);
    gather_pool *p = tu_pool(2);
    spinner s;
    atomic_init(&s.spin, true);
    tu_count_init(&s.started);
    gather_future *busy = NULL;
    ck_assert_int_eq(gather_submit(p, task_spin, &s, &busy), 0);
    ck_assert_int_eq(tu_count_wait(&s.started, 1), 0);

    submit_then_wait_loop(p, &wd, loop, 5);

    ck_assert(!gather_future_done(busy)); /* it really occupied a worker */
    atomic_store_explicit(&s.spin, false, memory_order_release);
    ck_assert_int_eq(gather_future_wait(busy, NULL), 0);
    gather_future_release(busy);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    tu_count_destroy(&s.started);
    watchdog_stop(&wd);
}
END_TEST

/* ---- c) nested gathers on one worker ------------------------------------ */

enum { NEST_CHILDREN = 4, NEST_GRANDCHILDREN = 2 };

static atomic_long leaves_run;

static int task_leaf(void *arg, void **result)
{
    atomic_fetch_add_explicit(&leaves_run, 1, memory_order_relaxed);
    *result = arg;
    return 0;
}

/* Submits grandchildren to its own pool and waits for each in turn. */
static int task_child(void *arg, void **result)
{
    gather_future *fs[NEST_GRANDCHILDREN];
    for (int i = 0; i < NEST_GRANDCHILDREN; i++) {
        int rc = gather_submit(gather_current_pool(), task_leaf, arg, &fs[i]);
        if (rc != 0)
            return rc;
    }
    int failed = 0;
    for (int i = 0; i < NEST_GRANDCHILDREN; i++) {
        void *v = NULL;
        if (gather_future_wait(fs[i], &v) != 0 || v != arg)
            failed = EPROTO;
        gather_future_release(fs[i]);
    }
    *result = arg;
    return failed;
}

/* Submits children to its own pool and gathers them. */
static int task_parent(void *arg, void **result)
{
    gather_future *fs[NEST_CHILDREN];
    for (int i = 0; i < NEST_CHILDREN; i++) {
        int rc = gather_submit(gather_current_pool(), task_child, arg, &fs[i]);
        if (rc != 0)
            return rc;
    }
    gather_result r[NEST_CHILDREN];
    int rc = gather_futures(fs, NEST_CHILDREN, r, 0);
    for (int i = 0; i < NEST_CHILDREN; i++) {
        if (rc == 0 && r[i].value != arg)
            rc = EPROTO;
        gather_future_release(fs[i]);
    }
    *result = arg;
    return rc;
}

START_TEST(test_nested_gathers_one_thread)
{
    const char *loop = "c: 1-thread pool, nested gathers submitted from outside";
    watchdog wd;
    watchdog_start(&wd, loop, LOOP_SHORT);
    gather_pool *p = tu_pool(1);
    atomic_store(&leaves_run, 0);
    uint64_t t0 = tu_mono_ns();
    for (unsigned long i = 0; i < LOOP_SHORT; i++) {
        void *arg = (void *)(uintptr_t)(i + 1);
        gather_future *f = NULL;
        LOOP_CHECK(gather_submit(p, task_parent, arg, &f) == 0, i);
        void *v = NULL;
        LOOP_CHECK(gather_future_wait(f, &v) == 0, i);
        LOOP_CHECK(v == arg, i);
        gather_future_release(f);
        LOOP_CHECK(atomic_load(&leaves_run) ==
                       (long)(i + 1) * NEST_CHILDREN * NEST_GRANDCHILDREN, i);
        watchdog_tick(&wd, i);
    }
    report(loop, LOOP_SHORT, t0);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    watchdog_stop(&wd);
}
END_TEST

/* ---- d) destroy right after the last submission ------------------------- */

START_TEST(test_destroy_right_after_submit)
{
    const char *loop = "d: create, submit k detached tasks, destroy at once";
    enum { K_MAX = 8 };
    watchdog wd;
    watchdog_start(&wd, loop, LOOP_SHORT);
    uint64_t t0 = tu_mono_ns();
    for (unsigned long i = 0; i < LOOP_SHORT; i++) {
        size_t threads = 1 + i % 2;
        int k = 1 + (int)(i / 2 % K_MAX);
        atomic_int ran;
        atomic_init(&ran, 0);
        gather_pool *p = tu_pool(threads);
        for (int j = 0; j < k; j++)
            LOOP_CHECK(gather_submit(p, tu_task_count, &ran, NULL) == 0, i);
        LOOP_CHECK(gather_pool_destroy(p) == 0, i);
        int ran_before_return = atomic_load(&ran);
        if (ran_before_return != k)
            ck_abort_msg("iteration %lu: %d of %d tasks ran before destroy returned",
                         i + 1, ran_before_return, k);
        watchdog_tick(&wd, i);
    }
    report(loop, LOOP_SHORT, t0);
    watchdog_stop(&wd);
}
END_TEST

/* ---- e) an outside waiter races the completion -------------------------- */

typedef struct race {
    atomic_bool started; /* the task is running, waiting for go */
    atomic_bool go;      /* the test is about to wait */
    unsigned delay;      /* pauses between go and completing */
} race;

/* Completes `delay` pauses after the waiter said go, so that across the
 * loop the completion lands anywhere in the waiter's path: before its first
 * check, while it arms its wait record, after it parked. */
static int task_race(void *arg, void **result)
{
    race *r = arg;
    atomic_store_explicit(&r->started, true, memory_order_release);
    while (!atomic_load_explicit(&r->go, memory_order_acquire))
        sched_yield();
    for (unsigned i = 0; i < r->delay; i++)
        cpu_pause();
    *result = arg;
    return 0;
}

START_TEST(test_outside_wait_races_completion)
{
    const char *loop = "e: outside waiter vs concurrent completion";
    watchdog wd;
    watchdog_start(&wd, loop, LOOP_LONG);
    gather_pool *p = tu_pool(1);
    uint64_t rng = 11;
    uint64_t t0 = tu_mono_ns();
    for (unsigned long i = 0; i < LOOP_LONG; i++) {
        race r;
        atomic_init(&r.started, false);
        atomic_init(&r.go, false);
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        r.delay = (unsigned)(rng >> 58); /* 0..63 */
        gather_future *f = NULL;
        LOOP_CHECK(gather_submit(p, task_race, &r, &f) == 0, i);
        while (!atomic_load_explicit(&r.started, memory_order_acquire))
            sched_yield();
        atomic_store_explicit(&r.go, true, memory_order_release);
        void *v = NULL;
        LOOP_CHECK(gather_future_wait(f, &v) == 0, i);
        LOOP_CHECK(v == &r, i);
        gather_future_release(f);
        watchdog_tick(&wd, i);
    }
    report(loop, LOOP_LONG, t0);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    watchdog_stop(&wd);
}
END_TEST

/* ---- f) a task's spawn must wake an idle worker ------------------------- */

/*
 * A task that pushes a child on its own deque and then keeps its worker busy
 * until the child ran (without a gather wait, which would run the child
 * itself): only the pool's other worker can run the child, and it must be
 * woken for it (the push's wake-up). The parent first lets 0..4095 pauses
 * pass, so that the other worker is sometimes still spinning from the last
 * iteration and usually parked.
 */
typedef struct spawner {
    atomic_bool child_ran;
    unsigned delay; /* pauses before the spawn */
} spawner;

static int task_set_flag(void *arg, void **result)
{
    atomic_store_explicit((atomic_bool *)arg, true, memory_order_release);
    *result = NULL;
    return 0;
}

static int task_spawn_and_spin(void *arg, void **result)
{
    spawner *sp = arg;
    *result = NULL;
    for (unsigned i = 0; i < sp->delay; i++)
        cpu_pause();
    int rc = gather_submit(gather_current_pool(), task_set_flag,
                           &sp->child_ran, NULL);
    if (rc != 0)
        return rc;
    while (!atomic_load_explicit(&sp->child_ran, memory_order_acquire))
        sched_yield();
    return 0;
}

START_TEST(test_spawn_wakes_idle_worker)
{
    const char *loop = "f: 2-thread pool, a task spawns and keeps its worker busy";
    watchdog wd;
    watchdog_start(&wd, loop, LOOP_SHORT);
    gather_pool *p = tu_pool(2);
    uint64_t rng = 13;
    uint64_t t0 = tu_mono_ns();
    for (unsigned long i = 0; i < LOOP_SHORT; i++) {
        spawner sp;
        atomic_init(&sp.child_ran, false);
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        sp.delay = (unsigned)(rng >> 52); /* 0..4095 */
        gather_future *f = NULL;
        LOOP_CHECK(gather_submit(p, task_spawn_and_spin, &sp, &f) == 0, i);
        LOOP_CHECK(gather_future_wait(f, NULL) == 0, i);
        gather_future_release(f);
        watchdog_tick(&wd, i);
    }
    report(loop, LOOP_SHORT, t0);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    watchdog_stop(&wd);
}
END_TEST

/* One test case per loop, so that CK_RUN_CASE can pick one. */
static void add_loop(Suite *s, const char *name, const TTest *test)
{
    TCase *tc = tcase_create(name);
    /* A loop takes seconds; its watchdog ends it WATCHDOG_S after it stops
     * making progress. Check's timeout (times CK_TIMEOUT_MULTIPLIER in the
     * sanitizer runs) is only the backstop. */
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test);
    suite_add_tcase(s, tc);
}

static Suite *wakeup_suite(void)
{
    Suite *s = suite_create("wakeup");
    add_loop(s, "a_one_thread", test_one_thread_submit_then_wait);
    add_loop(s, "b_busy_worker", test_busy_worker_other_is_woken);
    add_loop(s, "c_nested", test_nested_gathers_one_thread);
    add_loop(s, "d_destroy", test_destroy_right_after_submit);
    add_loop(s, "e_wait_vs_complete", test_outside_wait_races_completion);
    add_loop(s, "f_spawn", test_spawn_wakes_idle_worker);
    return s;
}

int main(void)
{
    return tu_run_suite(wakeup_suite());
}
