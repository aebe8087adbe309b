/* SPDX-License-Identifier: MIT */
/*
 * check_blocking.c - elastic pools (SPEC.md, "Blocking work"): a task that
 * blocks (read, nanosleep, a mutex, a wait for another pool) lets a queued
 * task start; a task running on a CPU does not; strict pools stay serial;
 * gather_blocking_begin/end; a resumed task does not push the pool past
 * `threads` running tasks; GATHER_MAX_THREADS; max_threads bounds the
 * threads; spares exit after idling; gather_pool_resize; the create-time
 * checks of max_threads; fork() while spares are alive.
 *
 * Every "it starts" check waits with a watchdog (WATCHDOG_S) and releases
 * the blocked task only after the queued one signalled, so a broken build
 * fails instead of hanging. "It does not start" can only be observed for a
 * bounded window (OBSERVE_MS): those checks say so.
 *
 * The default pool exists once per process, so the GATHER_MAX_THREADS tests
 * and the resize of the default pool run this binary again as a child
 * process (GATHER_TEST_CHILD in its environment), as check_pool.c does.
 */
#include "testutil.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* How long a task that should start may take to start. */
#define WATCHDOG_S (TU_VALGRIND ? 60 : 10)
/* How long a task that must not start is watched. */
#define OBSERVE_MS 200
/* Spares idle for 1 s before they exit; how long a test waits for that. */
#define SPARE_EXIT_S (TU_VALGRIND ? 30 : TU_SANITIZED ? 6 : 3)
/* A forked child must exit within this (see check_fork.c). */
#define CHILD_LIMIT_S (TU_VALGRIND ? 120 : TU_SANITIZED ? 15 : 5)

/* ---- helpers ---------------------------------------------------------------- */

/* tu_count_wait with its own watchdog: 0 once value >= target, else
 * ETIMEDOUT after `seconds`. */
static int count_wait_s(tu_count *c, long target, int seconds)
{
    struct timespec dl = tu_deadline(seconds);
    return tu_count_reaches(c, target, &dl) ? 0 : ETIMEDOUT;
}

/* Watches c for `ms`: true when it stayed below target all that time
 * (returns false as soon as it reaches target). */
static bool count_stays_below(tu_count *c, long target, long ms)
{
    struct timespec dl = tu_deadline_ms(ms);
    return !tu_count_reaches(c, target, &dl);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        continue;
}

static gather_pool *pool_of(size_t threads, size_t max_threads)
{
    gather_pool_options o = {0};
    o.threads = threads;
    o.max_threads = max_threads;
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

/* Polls stats.threads until it equals want; false after `seconds`. */
static bool threads_become(gather_pool *p, uint64_t want, int seconds)
{
    uint64_t limit = tu_mono_ns() + (uint64_t)seconds * 1000000000u;
    for (;;) {
        if (stats_of(p).threads == want)
            return true;
        if (tu_mono_ns() > limit)
            return false;
        sleep_ms(5);
    }
}

/* The pool's stats once spares_started >= spares and threads_peak >= peak,
 * or after the watchdog. Both are counted by the thread that starts a spare
 * after pthread_create returns, so a task that ran on a new spare can be
 * over before its spare is counted. */
static gather_pool_stats stats_eventually(gather_pool *p, uint64_t spares, uint64_t peak)
{
    uint64_t limit = tu_mono_ns() + (uint64_t)WATCHDOG_S * 1000000000u;
    gather_pool_stats st;
    for (;;) {
        memset(&st, 0, sizeof st);
        if (gather_pool_stats_get(p, &st) != 0)
            return st;
        if ((st.spares_started >= spares && st.threads_peak >= peak) || tu_mono_ns() > limit)
            return st;
        sleep_ms(1);
    }
}

static size_t affinity_cpus(void)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return 1;
    return (size_t)CPU_COUNT(&set);
}

/* Task: counts its start on the tu_count at arg. */
static int task_signal(void *arg, void **result)
{
    tu_count_add(arg, 1);
    *result = NULL;
    return 0;
}

/* Task: nothing. */
static int task_nop(void *arg, void **result)
{
    (void)arg;
    *result = NULL;
    return 0;
}

/* ---- tasks that block in different ways --------------------------------------- */

typedef enum { BLOCK_READ, BLOCK_SLEEP, BLOCK_MUTEX, BLOCK_WAIT } block_kind;

typedef struct blocker {
    block_kind kind;
    tu_count started;
    int fds[2];            /* BLOCK_READ: reads one byte from fds[0] */
    atomic_bool release;   /* BLOCK_SLEEP: sleeps until set */
    pthread_mutex_t mutex; /* BLOCK_MUTEX: locked by the test */
    gather_future *other;  /* BLOCK_WAIT: a future of another pool */
    tu_gate *other_gate;   /* ... held by this gate */
} blocker;

static void blocker_init(blocker *b, block_kind kind)
{
    memset(b, 0, sizeof *b);
    b->kind = kind;
    tu_count_init(&b->started);
    b->fds[0] = b->fds[1] = -1;
    if (kind == BLOCK_READ)
        ck_assert_int_eq(pipe(b->fds), 0);
    atomic_init(&b->release, false);
    pthread_mutex_init(&b->mutex, NULL);
}

static void blocker_destroy(blocker *b)
{
    if (b->fds[0] >= 0) {
        close(b->fds[0]);
        close(b->fds[1]);
    }
    pthread_mutex_destroy(&b->mutex);
    tu_count_destroy(&b->started);
}

static int task_block(void *arg, void **result)
{
    blocker *b = arg;
    *result = NULL;
    tu_count_add(&b->started, 1);
    switch (b->kind) {
    case BLOCK_READ: {
        char c;
        ssize_t n;
        do
            n = read(b->fds[0], &c, 1);
        while (n < 0 && errno == EINTR);
        return n == 1 ? 0 : EIO;
    }
    case BLOCK_SLEEP: {
        /* Asleep nearly all the time; bounded so it cannot outlive the
         * test (the test sets `release` before any assertion). */
        uint64_t limit = tu_mono_ns() + 3u * WATCHDOG_S * 1000000000ull;
        while (!atomic_load(&b->release)) {
            if (tu_mono_ns() > limit)
                return ETIMEDOUT;
            struct timespec ts = {0, 10000000};
            nanosleep(&ts, NULL);
        }
        return 0;
    }
    case BLOCK_MUTEX: {
        int rc = pthread_mutex_lock(&b->mutex);
        if (rc != 0)
            return rc;
        pthread_mutex_unlock(&b->mutex);
        return 0;
    }
    case BLOCK_WAIT:
        return gather_future_wait(b->other, NULL);
    }
    return EINVAL;
}

static void blocker_release(blocker *b)
{
    switch (b->kind) {
    case BLOCK_READ:
        ck_assert_int_eq(write(b->fds[1], "x", 1), 1);
        break;
    case BLOCK_SLEEP:
        atomic_store(&b->release, true);
        break;
    case BLOCK_MUTEX:
        pthread_mutex_unlock(&b->mutex);
        break;
    case BLOCK_WAIT:
        tu_gate_open(b->other_gate);
        break;
    }
}

/*
 * On an elastic one-thread pool (threads 1, max_threads 4): task A blocks
 * in the given way; task B, queued behind it, must start while A is still
 * blocked. A is released only after B signalled (or after the watchdog).
 */
static void queued_task_starts_while_one_blocks(block_kind kind)
{
    gather_pool *p = pool_of(1, 4);
    blocker b;
    blocker_init(&b, kind);
    gather_pool *other = NULL;
    tu_gate other_gate;
    tu_gated other_task;
    memset(&other_task, 0, sizeof other_task);
    if (kind == BLOCK_WAIT) {
        /* A future of another (strict) pool, held by a gate. */
        other = pool_of(1, 0);
        tu_gate_init(&other_gate);
        other_task.gate = &other_gate;
        ck_assert_int_eq(gather_submit(other, tu_task_gated, &other_task, &b.other), 0);
        b.other_gate = &other_gate;
    }
    if (kind == BLOCK_MUTEX)
        pthread_mutex_lock(&b.mutex);

    tu_count queued_started;
    tu_count_init(&queued_started);
    gather_future *fa = NULL, *fb = NULL;
    ck_assert_int_eq(gather_submit(p, task_block, &b, &fa), 0);
    int a_started = count_wait_s(&b.started, 1, WATCHDOG_S);
    ck_assert_int_eq(gather_submit(p, task_signal, &queued_started, &fb), 0);
    int b_started = a_started == 0 ? count_wait_s(&queued_started, 1, WATCHDOG_S) : ETIMEDOUT;
    /* A is still blocked: B ran on a spare (the only thread is A's),
     * except in a wait, which may run B itself (helping). */
    bool spare = b_started == 0 && kind != BLOCK_WAIT;
    gather_pool_stats st = stats_eventually(p, spare ? 1 : 0, spare ? 2 : 1);
    blocker_release(&b);
    ck_assert_int_eq(gather_future_wait(fa, NULL), 0);
    ck_assert_int_eq(gather_future_wait(fb, NULL), 0);

    ck_assert_msg(a_started == 0, "the blocking task did not start");
    ck_assert_msg(b_started == 0,
                  "the queued task did not start within %d s while the running task was blocked",
                  WATCHDOG_S);
    ck_assert_uint_le(st.threads_peak, 4);
    ck_assert_uint_le(st.threads, 4);
    if (kind != BLOCK_WAIT) {
        ck_assert_uint_ge(st.spares_started, 1);
        ck_assert_uint_ge(st.threads_peak, 2);
    }
    ck_assert_uint_eq(gather_pool_threads(p), 1);

    gather_future_release(fa);
    gather_future_release(fb);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    if (other != NULL) {
        gather_future_release(b.other);
        ck_assert_int_eq(gather_pool_destroy(other), 0);
        tu_gate_destroy(&other_gate);
    }
    tu_count_destroy(&queued_started);
    blocker_destroy(&b);
}

START_TEST(test_task_blocked_in_read_lets_queued_task_start)
{
    queued_task_starts_while_one_blocks(BLOCK_READ);
}
END_TEST

START_TEST(test_task_in_nanosleep_lets_queued_task_start)
{
    queued_task_starts_while_one_blocks(BLOCK_SLEEP);
}
END_TEST

START_TEST(test_task_blocked_on_mutex_lets_queued_task_start)
{
    queued_task_starts_while_one_blocks(BLOCK_MUTEX);
}
END_TEST

START_TEST(test_task_waiting_on_other_pool_lets_queued_task_start)
{
    queued_task_starts_while_one_blocks(BLOCK_WAIT);
}
END_TEST

/* ---- a task running on a CPU is not blocked -------------------------------------- */

typedef struct spinner {
    tu_count started;
    atomic_bool stop;
} spinner;

static int task_spin(void *arg, void **result)
{
    spinner *s = arg;
    *result = NULL;
    tu_count_add(&s->started, 1);
    /* Bounded, so a failing test cannot leave it spinning. */
    uint64_t limit = tu_mono_ns() + 3u * WATCHDOG_S * 1000000000ull;
    unsigned i = 0;
    while (!atomic_load_explicit(&s->stop, memory_order_relaxed)) {
        if (++i % 4096 == 0 && tu_mono_ns() > limit)
            return ETIMEDOUT;
    }
    return 0;
}

START_TEST(test_task_running_on_cpu_starts_no_spare)
{
    /* valgrind runs one thread at a time: a thread waiting for its turn
     * sleeps in the kernel with its CPU clock stopped, which is what a
     * blocked thread looks like. */
    if (TU_VALGRIND)
        return;
    gather_pool *p = pool_of(1, 4);
    spinner s;
    tu_count_init(&s.started);
    atomic_init(&s.stop, false);
    tu_count queued_started;
    tu_count_init(&queued_started);
    gather_future *fa = NULL, *fb = NULL;
    ck_assert_int_eq(gather_submit(p, task_spin, &s, &fa), 0);
    int a_started = count_wait_s(&s.started, 1, WATCHDOG_S);
    ck_assert_int_eq(gather_submit(p, task_signal, &queued_started, &fb), 0);
    /* A bounded window: B must not start while A runs on a CPU. */
    bool b_waited = count_stays_below(&queued_started, 1, OBSERVE_MS);
    gather_pool_stats st = stats_of(p);
    atomic_store(&s.stop, true);
    ck_assert_int_eq(gather_future_wait(fa, NULL), 0);
    ck_assert_int_eq(gather_future_wait(fb, NULL), 0);

    ck_assert_int_eq(a_started, 0);
    ck_assert_msg(b_waited, "a queued task started while the only task ran on a CPU");
    ck_assert_uint_eq(st.spares_started, 0);
    ck_assert_uint_eq(st.threads, 1);
    ck_assert_uint_eq(tu_count_get(&queued_started), 1);
    ck_assert_uint_eq(stats_of(p).spares_started, 0);

    gather_future_release(fa);
    gather_future_release(fb);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    tu_count_destroy(&queued_started);
    tu_count_destroy(&s.started);
}
END_TEST

/* fib(n) with one task per call on the calling task's pool. */
static int task_fib(void *arg, void **result)
{
    intptr_t n = (intptr_t)arg;
    if (n < 2) {
        *result = (void *)n;
        return 0;
    }
    gather_future *f = NULL;
    void *a = NULL, *b = NULL;
    int rc = gather_submit(gather_current_pool(), task_fib, (void *)(n - 1), &f);
    if (rc != 0)
        return rc;
    task_fib((void *)(n - 2), &b);
    rc = gather_future_wait(f, &a);
    gather_future_release(f);
    *result = (void *)((intptr_t)a + (intptr_t)b);
    return rc;
}

static int task_crunch(void *arg, void **result)
{
    uint64_t x = (uint64_t)(uintptr_t)arg + 1;
    for (int i = 0; i < 20000; i++)
        x = x * 6364136223846793005u + 1442695040888963407u;
    *result = (void *)(uintptr_t)(x | 1);
    return 0;
}

/* CPU-bound fork-join and a map on an elastic pool: the waits of fib park
 * where new work wakes them (not blocked), and no task ever stalls in the
 * kernel, so the pool never grows past `threads`. */
START_TEST(test_cpu_bound_work_starts_no_spare)
{
    /* valgrind: see test_task_running_on_cpu_starts_no_spare. Sanitizers:
     * their runtime's own locks make a worker sleep in the kernel for
     * whole ticks on a loaded machine (a lock holder preempted), which
     * is blocking as the monitor sees it, though not the task's. */
    if (TU_VALGRIND || TU_SANITIZED)
        return;
    gather_pool *p = pool_of(2, 8);
    for (int round = 0; round < 3; round++) {
        gather_future *f = NULL;
        void *v = NULL;
        ck_assert_int_eq(gather_submit(p, task_fib, (void *)(intptr_t)22, &f), 0);
        ck_assert_int_eq(gather_future_wait(f, &v), 0);
        ck_assert_int_eq((intptr_t)v, 17711);
        gather_future_release(f);
        enum { JOBS = 4000 };
        static void *args[JOBS];
        static gather_result res[JOBS];
        for (size_t i = 0; i < JOBS; i++)
            args[i] = (void *)(uintptr_t)i;
        ck_assert_int_eq(gather_map(p, task_crunch, args, JOBS, res, 0), 0);
        for (size_t i = 0; i < JOBS; i++)
            ck_assert_ptr_nonnull(res[i].value);
    }
    gather_pool_stats st = stats_of(p);
    ck_assert_uint_eq(st.spares_started, 0);
    ck_assert_uint_eq(st.threads_peak, 2);
    ck_assert_uint_eq(st.threads, 2);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

/* ---- strict pools stay serial ---------------------------------------------------- */

START_TEST(test_strict_pool_blocked_task_holds_the_only_thread)
{
    gather_pool *p = pool_of(1, 0);
    gather_pool_stats st0 = stats_of(p);
    ck_assert_uint_eq(st0.threads, 1);
    ck_assert_uint_eq(st0.spares_started, 0);

    blocker b;
    blocker_init(&b, BLOCK_READ);
    tu_count queued_started;
    tu_count_init(&queued_started);
    gather_future *fa = NULL, *fb = NULL;
    ck_assert_int_eq(gather_submit(p, task_block, &b, &fa), 0);
    int a_started = count_wait_s(&b.started, 1, WATCHDOG_S);
    ck_assert_int_eq(gather_submit(p, task_signal, &queued_started, &fb), 0);
    bool b_waited = count_stays_below(&queued_started, 1, OBSERVE_MS);
    gather_pool_stats st = stats_of(p);
    blocker_release(&b);
    ck_assert_int_eq(gather_future_wait(fa, NULL), 0);
    ck_assert_int_eq(gather_future_wait(fb, NULL), 0);

    ck_assert_int_eq(a_started, 0);
    ck_assert_msg(b_waited, "a strict one-thread pool ran a second task while one blocked");
    ck_assert_uint_eq(st.threads, 1);
    ck_assert_uint_eq(st.threads_peak, 1);
    ck_assert_uint_eq(st.spares_started, 0);
    ck_assert_uint_eq(tu_count_get(&queued_started), 1);
    st = stats_of(p);
    ck_assert_uint_eq(st.threads, 1);
    ck_assert_uint_eq(st.spares_started, 0);

    gather_future_release(fa);
    gather_future_release(fb);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    tu_count_destroy(&queued_started);
    blocker_destroy(&b);
}
END_TEST

/* ---- gather_blocking_begin/end ----------------------------------------------------- */

/* GATHER_BLOCKING_DETECT=0 while the pools of a test are created and run
 * (their monitors read it when they start), restored afterwards. */
static char *saved_detect;
static bool had_detect;

static void detection_off(void)
{
    const char *v = getenv("GATHER_BLOCKING_DETECT");
    had_detect = v != NULL;
    saved_detect = v != NULL ? strdup(v) : NULL;
    ck_assert_int_eq(setenv("GATHER_BLOCKING_DETECT", "0", 1), 0);
}

/* Only once the pools are destroyed (monitors joined). */
static void detection_restore(void)
{
    if (had_detect)
        setenv("GATHER_BLOCKING_DETECT", saved_detect, 1);
    else
        unsetenv("GATHER_BLOCKING_DETECT");
    free(saved_detect);
    saved_detect = NULL;
}

typedef struct region_task {
    tu_count *started;   /* counted first (may be NULL) */
    tu_gate *before;     /* waited for outside any region (may be NULL) */
    tu_count *in_region; /* counted inside the region (may be NULL) */
    tu_gate *inside;     /* waited for inside the region */
} region_task;

/* begin, begin, end: still inside the outer region while it waits. */
static int task_region(void *arg, void **result)
{
    region_task *r = arg;
    *result = NULL;
    if (r->started)
        tu_count_add(r->started, 1);
    if (r->before && tu_gate_wait(r->before) != 0)
        return ETIMEDOUT;
    gather_blocking_begin();
    gather_blocking_begin();
    gather_blocking_end();
    if (r->in_region)
        tu_count_add(r->in_region, 1);
    int rc = tu_gate_wait(r->inside);
    gather_blocking_end();
    return rc;
}

START_TEST(test_blocking_region_compensates_without_the_monitor)
{
    detection_off();
    gather_pool *p = pool_of(1, 4);
    tu_gate before, inside, gate_b;
    tu_gate_init(&before);
    tu_gate_init(&inside);
    tu_gate_init(&gate_b);
    tu_count started, in_region, b_started, c_started;
    tu_count_init(&started);
    tu_count_init(&in_region);
    tu_count_init(&b_started);
    tu_count_init(&c_started);
    region_task r = {&started, &before, &in_region, &inside};
    tu_gated gb;
    memset(&gb, 0, sizeof gb);
    gb.gate = &gate_b;
    gb.started = &b_started;
    gather_future *fa = NULL, *fb = NULL, *fc = NULL;
    ck_assert_int_eq(gather_submit(p, task_region, &r, &fa), 0);
    int a_started = count_wait_s(&started, 1, WATCHDOG_S);
    ck_assert_int_eq(gather_submit(p, tu_task_gated, &gb, &fb), 0);

    /* A blocks outside any region, with the monitor off: nothing notices
     * (a bounded window). */
    bool waited_outside = count_stays_below(&b_started, 1, OBSERVE_MS);
    gather_pool_stats st_outside = stats_of(p);

    /* A enters a region and blocks there: B starts at once, on a spare. */
    tu_gate_open(&before);
    int in = count_wait_s(&in_region, 1, WATCHDOG_S);
    int b_in = count_wait_s(&b_started, 1, WATCHDOG_S);
    /* A did begin, begin, end: its region is still open. So when B
     * returns, B's thread may take C (a thread takes a new task only while
     * fewer than `threads` others run, and A does not count). */
    int b_done = -1, c_in = -1;
    if (b_in == 0) {
        ck_assert_int_eq(gather_submit(p, task_signal, &c_started, &fc), 0);
        tu_gate_open(&gate_b);
        b_done = gather_future_wait(fb, NULL);
        c_in = count_wait_s(&c_started, 1, WATCHDOG_S);
    }
    gather_pool_stats st_inside = stats_of(p);
    tu_gate_open(&inside);
    tu_gate_open(&gate_b);
    ck_assert_int_eq(gather_future_wait(fa, NULL), 0);
    ck_assert_int_eq(gather_future_wait(fb, NULL), 0);
    if (fc != NULL)
        ck_assert_int_eq(gather_future_wait(fc, NULL), 0);

    ck_assert_int_eq(a_started, 0);
    ck_assert_msg(waited_outside, "with GATHER_BLOCKING_DETECT=0 a blocked task was compensated");
    ck_assert_uint_eq(st_outside.spares_started, 0);
    ck_assert_uint_eq(st_outside.threads, 1);
    ck_assert_int_eq(in, 0);
    ck_assert_msg(b_in == 0, "a queued task did not start while the running one sat in a region");
    ck_assert_int_eq(b_done, 0);
    ck_assert_msg(c_in == 0, "after begin, begin, end the task no longer counted as blocked");
    ck_assert_uint_ge(st_inside.spares_started, 1);
    ck_assert_uint_le(st_inside.threads_peak, 4);

    gather_future_release(fa);
    gather_future_release(fb);
    gather_future_release(fc);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    detection_restore();
    tu_count_destroy(&started);
    tu_count_destroy(&in_region);
    tu_count_destroy(&b_started);
    tu_count_destroy(&c_started);
    tu_gate_destroy(&before);
    tu_gate_destroy(&inside);
    tu_gate_destroy(&gate_b);
}
END_TEST

START_TEST(test_blocking_regions_stop_at_max_threads)
{
    enum { TASKS = 3, MAX = 2 };
    detection_off();
    gather_pool *p = pool_of(1, MAX);
    tu_gate inside;
    tu_gate_init(&inside);
    tu_count in_region;
    tu_count_init(&in_region);
    region_task r = {NULL, NULL, &in_region, &inside};
    gather_future *f[TASKS];
    for (int i = 0; i < TASKS; i++)
        ck_assert_int_eq(gather_submit(p, task_region, &r, &f[i]), 0);
    int reached = count_wait_s(&in_region, MAX, WATCHDOG_S);
    bool capped = count_stays_below(&in_region, MAX + 1, OBSERVE_MS);
    long n_in_region = tu_count_get(&in_region);
    gather_pool_stats st = stats_of(p);
    tu_gate_open(&inside);
    ck_assert_int_eq(gather_futures(f, TASKS, NULL, 0), 0);

    ck_assert_msg(reached == 0, "only %ld tasks in regions, expected %d", n_in_region, MAX);
    ck_assert_msg(capped, "more than max_threads tasks ran at once");
    ck_assert_uint_eq(st.threads, MAX);
    ck_assert_uint_eq(st.threads_peak, MAX);
    ck_assert_uint_eq(st.spares_started, MAX - 1);
    ck_assert_uint_eq(tu_count_get(&in_region), TASKS);

    for (int i = 0; i < TASKS; i++)
        gather_future_release(f[i]);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    detection_restore();
    tu_count_destroy(&in_region);
    tu_gate_destroy(&inside);
}
END_TEST

/* A task that blocked (in a region) and resumes does not push the pool past
 * `threads` running tasks: its worker takes no new task while `threads`
 * others run. Detection is off, so only the region and the rule act: A
 * blocks in a region, its spare runs B (which blocks outside any region, so
 * it counts as running); C is queued. When A returns, C must still wait,
 * until B returns. */
START_TEST(test_resumed_task_does_not_oversubscribe)
{
    detection_off();
    gather_pool *p = pool_of(1, 4);
    tu_gate before, gate_a, gate_b;
    tu_gate_init(&before);
    tu_gate_init(&gate_a);
    tu_gate_init(&gate_b);
    tu_count a_started, in_region, b_started, c_started;
    tu_count_init(&a_started);
    tu_count_init(&in_region);
    tu_count_init(&b_started);
    tu_count_init(&c_started);
    /* B is queued before A enters its region, so that the spare the
     * region starts finds it (a spare idles only 1 s). */
    region_task ra = {&a_started, &before, &in_region, &gate_a};
    tu_gated gb;
    memset(&gb, 0, sizeof gb);
    gb.gate = &gate_b;
    gb.started = &b_started;
    gather_future *fa = NULL, *fb = NULL, *fc = NULL;
    ck_assert_int_eq(gather_submit(p, task_region, &ra, &fa), 0);
    int a_in = count_wait_s(&a_started, 1, WATCHDOG_S);
    ck_assert_int_eq(gather_submit(p, tu_task_gated, &gb, &fb), 0);
    tu_gate_open(&before);
    int b_in = count_wait_s(&b_started, 1, WATCHDOG_S);
    ck_assert_int_eq(gather_submit(p, task_signal, &c_started, &fc), 0);
    tu_gate_open(&gate_a);
    int a_done = gather_future_wait(fa, NULL);
    /* A's worker is free now, but B runs: `threads` (1) tasks run. */
    bool c_waited = count_stays_below(&c_started, 1, OBSERVE_MS);
    tu_gate_open(&gate_b);
    ck_assert_int_eq(gather_future_wait(fb, NULL), 0);
    int c_ran = count_wait_s(&c_started, 1, WATCHDOG_S);
    ck_assert_int_eq(gather_future_wait(fc, NULL), 0);

    ck_assert_int_eq(a_in, 0);
    ck_assert_msg(b_in == 0, "the region did not compensate");
    ck_assert_int_eq(a_done, 0);
    ck_assert_msg(c_waited, "a worker took a task while `threads` other tasks ran");
    ck_assert_int_eq(c_ran, 0);
    ck_assert_uint_le(stats_of(p).threads_peak, 4);

    gather_future_release(fa);
    gather_future_release(fb);
    gather_future_release(fc);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    detection_restore();
    tu_count_destroy(&a_started);
    tu_count_destroy(&in_region);
    tu_count_destroy(&b_started);
    tu_count_destroy(&c_started);
    tu_gate_destroy(&before);
    tu_gate_destroy(&gate_a);
    tu_gate_destroy(&gate_b);
}
END_TEST

START_TEST(test_blocking_region_is_a_noop_outside_tasks_and_on_strict_pools)
{
    /* Outside any task, balanced or not: nothing happens. */
    gather_blocking_begin();
    gather_blocking_end();
    gather_blocking_end();
    gather_blocking_begin();
    gather_blocking_begin();
    gather_blocking_end();

    /* Inside a task of a strict pool: no spare; the pool stays serial. */
    gather_pool *p = pool_of(1, 0);
    tu_gate inside;
    tu_gate_init(&inside);
    tu_count in_region, queued_started;
    tu_count_init(&in_region);
    tu_count_init(&queued_started);
    region_task r = {NULL, NULL, &in_region, &inside};
    gather_future *fa = NULL, *fb = NULL;
    ck_assert_int_eq(gather_submit(p, task_region, &r, &fa), 0);
    int in = count_wait_s(&in_region, 1, WATCHDOG_S);
    ck_assert_int_eq(gather_submit(p, task_signal, &queued_started, &fb), 0);
    bool b_waited = count_stays_below(&queued_started, 1, OBSERVE_MS);
    gather_pool_stats st = stats_of(p);
    tu_gate_open(&inside);
    ck_assert_int_eq(gather_future_wait(fa, NULL), 0);
    ck_assert_int_eq(gather_future_wait(fb, NULL), 0);

    ck_assert_int_eq(in, 0);
    ck_assert_msg(b_waited, "a region on a strict pool let a second task run");
    ck_assert_uint_eq(st.threads, 1);
    ck_assert_uint_eq(st.threads_peak, 1);
    ck_assert_uint_eq(st.spares_started, 0);

    gather_future_release(fa);
    gather_future_release(fb);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    tu_count_destroy(&in_region);
    tu_count_destroy(&queued_started);
    tu_gate_destroy(&inside);

    /* Still nothing on this (non-pool) thread afterwards. */
    gather_blocking_end();
    gather_blocking_begin();
    gather_blocking_end();
}
END_TEST

/* ---- max_threads bounds the threads ------------------------------------------------ */

typedef struct sleepers {
    atomic_int active;
    atomic_int max_active;
} sleepers;

static int task_sleep_20ms(void *arg, void **result)
{
    sleepers *s = arg;
    int now = atomic_fetch_add(&s->active, 1) + 1;
    int seen = atomic_load(&s->max_active);
    while (now > seen && !atomic_compare_exchange_weak(&s->max_active, &seen, now))
        continue;
    struct timespec ts = {0, 20000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        continue;
    atomic_fetch_sub(&s->active, 1);
    *result = NULL;
    return 0;
}

START_TEST(test_threads_peak_stays_within_max_threads)
{
    enum { MAX = 64 };
    const int n = TU_VALGRIND ? 200 : 1000;
    gather_pool *p = pool_of(2, MAX);
    sleepers s;
    atomic_init(&s.active, 0);
    atomic_init(&s.max_active, 0);
    gather_future **f = calloc((size_t)n, sizeof *f);
    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(gather_submit(p, task_sleep_20ms, &s, &f[i]), 0);
    ck_assert_int_eq(gather_futures(f, (size_t)n, NULL, 0), 0);
    gather_pool_stats st = stats_eventually(p, 1, 3);
    ck_assert_uint_eq(st.completed, (uint64_t)n);
    ck_assert_uint_le(st.threads_peak, MAX);
    ck_assert_uint_le(st.threads, MAX);
    ck_assert_int_le(atomic_load(&s.max_active), MAX);
    /* The pool did grow: sleeping tasks are blocked ones. */
    ck_assert_uint_gt(st.threads_peak, 2);
    ck_assert_uint_gt(st.spares_started, 0);
    ck_assert_int_gt(atomic_load(&s.max_active), 2);
    for (int i = 0; i < n; i++)
        gather_future_release(f[i]);
    free(f);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

/* ---- spares exit after idling -------------------------------------------------------- */

START_TEST(test_spares_exit_after_idling)
{
    enum { TASKS = 3 };
    gather_pool *p = pool_of(1, 4);
    tu_gate gate;
    tu_gate_init(&gate);
    tu_count started;
    tu_count_init(&started);
    tu_gated g[TASKS];
    memset(g, 0, sizeof g);
    gather_future *f[TASKS];
    for (int i = 0; i < TASKS; i++) {
        g[i].gate = &gate;
        g[i].started = &started;
        ck_assert_int_eq(gather_submit(p, tu_task_gated, &g[i], &f[i]), 0);
    }
    int all = count_wait_s(&started, TASKS, WATCHDOG_S);
    long n_started = tu_count_get(&started);
    gather_pool_stats st = stats_eventually(p, TASKS - 1, TASKS);
    tu_gate_open(&gate);
    ck_assert_int_eq(gather_futures(f, TASKS, NULL, 0), 0);
    ck_assert_msg(all == 0, "only %ld of %d blocked tasks started", n_started, TASKS);
    ck_assert_uint_eq(st.threads, TASKS);
    ck_assert_uint_ge(st.spares_started, TASKS - 1);

    /* Keep-alive 1 s: back to `threads` soon after. */
    ck_assert_msg(threads_become(p, 1, SPARE_EXIT_S),
                  "spares still alive %d s after their tasks (threads %llu)", SPARE_EXIT_S,
                  (unsigned long long)stats_of(p).threads);
    ck_assert_uint_eq(gather_pool_threads(p), 1);
    /* ... never below it, and the pool still works. */
    gather_future *h = NULL;
    ck_assert_int_eq(gather_submit(p, task_nop, NULL, &h), 0);
    ck_assert_int_eq(gather_future_wait(h, NULL), 0);
    gather_future_release(h);
    ck_assert_uint_eq(stats_of(p).threads, 1);

    for (int i = 0; i < TASKS; i++)
        gather_future_release(f[i]);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    tu_count_destroy(&started);
    tu_gate_destroy(&gate);
}
END_TEST

/* ---- gather_pool_create checks --------------------------------------------------------- */

START_TEST(test_create_checks_max_threads)
{
    gather_pool *p = (gather_pool *)&p;
    gather_pool_options o = {0};
    o.threads = 1;
    o.max_threads = 4097;
    ck_assert_int_eq(gather_pool_create(&p, &o), EINVAL);
    ck_assert_ptr_null(p);
    o.threads = 4;
    o.max_threads = 2;
    ck_assert_int_eq(gather_pool_create(&p, &o), EINVAL);
    o.threads = 0;
    o.max_threads = 4097;
    ck_assert_int_eq(gather_pool_create(&p, &o), EINVAL);

    /* The bounds themselves are fine. */
    o.threads = 1;
    o.max_threads = 4096;
    ck_assert_int_eq(gather_pool_create(&p, &o), 0);
    ck_assert_uint_eq(gather_pool_threads(p), 1);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    o.threads = 4;
    o.max_threads = 4;
    ck_assert_int_eq(gather_pool_create(&p, &o), 0);
    gather_pool_stats st = stats_of(p);
    ck_assert_uint_eq(st.threads, 4);
    ck_assert_uint_eq(st.threads_peak, 4);
    ck_assert_uint_eq(st.spares_started, 0);
    ck_assert_int_eq(gather_pool_destroy(p), 0);

    /* threads 0 (the CPUs) with max_threads below them: raised. */
    size_t cpus = affinity_cpus();
    o.threads = 0;
    o.max_threads = 1;
    ck_assert_int_eq(gather_pool_create(&p, &o), 0);
    ck_assert_uint_eq(gather_pool_threads(p), cpus);
    st = stats_of(p);
    ck_assert_uint_eq(st.threads, cpus);
    ck_assert_uint_eq(st.spares_started, 0);
    ck_assert_int_eq(gather_pool_destroy(p), 0);

    /* A strict pool (max_threads 0) has exactly `threads` threads. */
    o.threads = 3;
    o.max_threads = 0;
    ck_assert_int_eq(gather_pool_create(&p, &o), 0);
    st = stats_of(p);
    ck_assert_uint_eq(st.threads, 3);
    ck_assert_uint_eq(st.threads_peak, 3);
    ck_assert_uint_eq(st.spares_started, 0);
    ck_assert_uint_eq(gather_pool_threads(p), 3);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

/* ---- gather_pool_resize ------------------------------------------------------------------ */

typedef struct resize_call {
    size_t threads, max_threads;
    int rc;
    size_t threads_after;
} resize_call;

static int task_resize_own_pool(void *arg, void **result)
{
    resize_call *c = arg;
    *result = NULL;
    c->rc = gather_pool_resize(gather_current_pool(), c->threads, c->max_threads);
    c->threads_after = gather_pool_threads(gather_current_pool());
    return 0;
}

START_TEST(test_resize_checks_arguments)
{
    gather_pool *p = pool_of(2, 0);
    ck_assert_int_eq(gather_pool_resize(p, 1025, 0), EINVAL);
    ck_assert_int_eq(gather_pool_resize(p, 1, 4097), EINVAL);
    ck_assert_int_eq(gather_pool_resize(p, 4, 2), EINVAL);
    ck_assert_int_eq(gather_pool_resize(p, 0, 4097), EINVAL);
    /* A refused resize changes nothing. */
    ck_assert_uint_eq(gather_pool_threads(p), 2);
    ck_assert_uint_eq(stats_of(p).threads, 2);
    /* threads 0: the CPUs, max raised to them. */
    ck_assert_int_eq(gather_pool_resize(p, 0, 1), 0);
    ck_assert_uint_eq(gather_pool_threads(p), affinity_cpus());
    ck_assert_int_eq(gather_pool_resize(p, 3, 3), 0);
    ck_assert_uint_eq(gather_pool_threads(p), 3);
    ck_assert_int_eq(gather_pool_shutdown(p, 0), 0);
    ck_assert_int_eq(gather_pool_resize(p, 2, 0), ESHUTDOWN);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

START_TEST(test_resize_from_a_task_of_the_pool)
{
    gather_pool *p = pool_of(2, 0);
    /* Down to one thread from inside: the caller's own thread is extra. */
    resize_call down = {1, 0, -1, 0};
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, task_resize_own_pool, &down, &f), 0);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    gather_future_release(f);
    ck_assert_int_eq(down.rc, 0);
    ck_assert_uint_eq(down.threads_after, 1);
    ck_assert_uint_eq(gather_pool_threads(p), 1);
    ck_assert(threads_become(p, 1, SPARE_EXIT_S));
    /* And up, elastic, again from inside. */
    resize_call up = {2, 4, -1, 0};
    ck_assert_int_eq(gather_submit(p, task_resize_own_pool, &up, &f), 0);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    gather_future_release(f);
    ck_assert_int_eq(up.rc, 0);
    ck_assert_uint_eq(up.threads_after, 2);
    ck_assert_uint_eq(gather_pool_threads(p), 2);
    ck_assert_uint_eq(stats_of(p).threads, 2);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

START_TEST(test_resize_up_lets_queued_task_start)
{
    gather_pool *p = pool_of(1, 0);
    tu_gate gate;
    tu_gate_init(&gate);
    tu_count started, queued_started;
    tu_count_init(&started);
    tu_count_init(&queued_started);
    tu_gated g;
    memset(&g, 0, sizeof g);
    g.gate = &gate;
    g.started = &started;
    gather_future *fa = NULL, *fb = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_gated, &g, &fa), 0);
    int a_started = count_wait_s(&started, 1, WATCHDOG_S);
    ck_assert_int_eq(gather_submit(p, task_signal, &queued_started, &fb), 0);
    int rc = gather_pool_resize(p, 2, 0);
    size_t threads = gather_pool_threads(p);
    int b_started = count_wait_s(&queued_started, 1, WATCHDOG_S);
    gather_pool_stats st = stats_of(p);
    tu_gate_open(&gate);
    ck_assert_int_eq(gather_future_wait(fa, NULL), 0);
    ck_assert_int_eq(gather_future_wait(fb, NULL), 0);

    ck_assert_int_eq(a_started, 0);
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_eq(threads, 2);
    ck_assert_msg(b_started == 0, "resize to 2 threads did not start the queued task");
    ck_assert_uint_eq(st.threads, 2);
    ck_assert_uint_eq(st.spares_started, 0); /* a strict pool grew, no spare */

    gather_future_release(fa);
    gather_future_release(fb);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    tu_count_destroy(&started);
    tu_count_destroy(&queued_started);
    tu_gate_destroy(&gate);
}
END_TEST

/* A strict pool made elastic by resize notices a blocked task (the monitor
 * starts with the resize); made strict again, it stops compensating. */
START_TEST(test_resize_switches_elasticity)
{
    gather_pool *p = pool_of(1, 0);
    blocker b;
    blocker_init(&b, BLOCK_READ);
    tu_count queued_started;
    tu_count_init(&queued_started);
    gather_future *fa = NULL, *fb = NULL;
    ck_assert_int_eq(gather_submit(p, task_block, &b, &fa), 0);
    int a_started = count_wait_s(&b.started, 1, WATCHDOG_S);
    ck_assert_int_eq(gather_submit(p, task_signal, &queued_started, &fb), 0);
    int rc = gather_pool_resize(p, 1, 4);
    int b_started = count_wait_s(&queued_started, 1, WATCHDOG_S);
    blocker_release(&b);
    ck_assert_int_eq(gather_future_wait(fa, NULL), 0);
    ck_assert_int_eq(gather_future_wait(fb, NULL), 0);
    ck_assert_int_eq(a_started, 0);
    ck_assert_int_eq(rc, 0);
    ck_assert_msg(b_started == 0, "a pool made elastic did not compensate a blocked task");
    ck_assert_uint_eq(gather_pool_threads(p), 1);
    gather_future_release(fa);
    gather_future_release(fb);

    /* Strict again: the spare leaves, and a blocked task holds the pool. */
    ck_assert_int_eq(gather_pool_resize(p, 1, 0), 0);
    ck_assert(threads_become(p, 1, SPARE_EXIT_S));
    uint64_t spares = stats_of(p).spares_started;
    tu_count_destroy(&b.started);
    tu_count_init(&b.started);
    tu_count_destroy(&queued_started);
    tu_count_init(&queued_started);
    ck_assert_int_eq(gather_submit(p, task_block, &b, &fa), 0);
    a_started = count_wait_s(&b.started, 1, WATCHDOG_S);
    ck_assert_int_eq(gather_submit(p, task_signal, &queued_started, &fb), 0);
    bool b_waited = count_stays_below(&queued_started, 1, OBSERVE_MS);
    gather_pool_stats st = stats_of(p);
    blocker_release(&b);
    ck_assert_int_eq(gather_future_wait(fa, NULL), 0);
    ck_assert_int_eq(gather_future_wait(fb, NULL), 0);
    ck_assert_int_eq(a_started, 0);
    ck_assert_msg(b_waited, "a pool made strict again still compensated");
    ck_assert_uint_eq(st.threads, 1);
    ck_assert_uint_eq(st.spares_started, spares);

    gather_future_release(fa);
    gather_future_release(fb);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    tu_count_destroy(&queued_started);
    blocker_destroy(&b);
}
END_TEST

START_TEST(test_resize_down_makes_the_pool_serial)
{
    enum { T = 4 };
    gather_pool *p = pool_of(T, 0);
    tu_gate gate;
    tu_gate_init(&gate);
    tu_count started;
    tu_count_init(&started);
    tu_gated g[T];
    memset(g, 0, sizeof g);
    gather_future *f[T];
    for (int i = 0; i < T; i++) {
        g[i].gate = &gate;
        g[i].started = &started;
        ck_assert_int_eq(gather_submit(p, tu_task_gated, &g[i], &f[i]), 0);
    }
    int all = count_wait_s(&started, T, WATCHDOG_S);
    int rc = gather_pool_resize(p, 1, 0);
    size_t threads = gather_pool_threads(p);
    uint64_t alive_during = stats_of(p).threads; /* the busy ones stay */
    tu_gate_open(&gate);
    ck_assert_int_eq(gather_futures(f, T, NULL, 0), 0);
    ck_assert_int_eq(all, 0);
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_eq(threads, 1);
    ck_assert_uint_eq(alive_during, T);
    for (int i = 0; i < T; i++)
        gather_future_release(f[i]);
    /* Extra threads leave once their task is done. */
    ck_assert_msg(threads_become(p, 1, SPARE_EXIT_S), "threads %llu after resize to 1",
                  (unsigned long long)stats_of(p).threads);

    /* Serial now: of two blocked tasks, the second waits for the first. */
    tu_gate gate2;
    tu_gate_init(&gate2);
    tu_count started2;
    tu_count_init(&started2);
    tu_gated h[2];
    memset(h, 0, sizeof h);
    h[0].gate = &gate2; /* both on a closed gate */
    h[1].gate = &gate2;
    h[0].started = h[1].started = &started2;
    gather_future *hf[2];
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(gather_submit(p, tu_task_gated, &h[i], &hf[i]), 0);
    int first = count_wait_s(&started2, 1, WATCHDOG_S);
    bool serial = count_stays_below(&started2, 2, OBSERVE_MS);
    gather_pool_stats st = stats_of(p);
    tu_gate_open(&gate2);
    ck_assert_int_eq(gather_futures(hf, 2, NULL, 0), 0);
    ck_assert_int_eq(first, 0);
    ck_assert_msg(serial, "two tasks ran at once on a pool resized to one thread");
    ck_assert_uint_eq(st.threads, 1);
    ck_assert_uint_eq(st.spares_started, 0);
    for (int i = 0; i < 2; i++)
        gather_future_release(hf[i]);

    ck_assert_int_eq(gather_pool_destroy(p), 0);
    tu_count_destroy(&started);
    tu_count_destroy(&started2);
    tu_gate_destroy(&gate);
    tu_gate_destroy(&gate2);
}
END_TEST

/* ---- child processes: the default pool ----------------------------------------------- */

static long env_long(const char *name)
{
    const char *v = getenv(name);
    return v != NULL ? strtol(v, NULL, 10) : -1;
}

/* Runs in a fresh process: the default pool does not exist yet. Submits
 * GATHER_TEST_TASKS tasks that block on a gate to the default pool, and
 * checks that exactly GATHER_TEST_EXPECT of them run at once (that many
 * threads: the first `threads` and spares), and that the pool has
 * GATHER_TEST_THREADS threads. Exit status 0 when all holds. */
static int child_max_threads(void)
{
    long tasks = env_long("GATHER_TEST_TASKS");
    long expect = env_long("GATHER_TEST_EXPECT");
    long threads = env_long("GATHER_TEST_THREADS");
    if (tasks <= 0 || expect <= 0 || expect > tasks || threads <= 0)
        return 10;
    const char *max = getenv("GATHER_MAX_THREADS");
    size_t n = gather_pool_threads(NULL);
    if (n != (size_t)threads) {
        fprintf(stderr, "child: default pool has %zu threads, expected %ld\n", n, threads);
        return 1;
    }
    tu_gate gate;
    tu_count started;
    tu_gate_init(&gate);
    tu_count_init(&started);
    tu_gated *g = calloc((size_t)tasks, sizeof *g);
    gather_future **f = calloc((size_t)tasks, sizeof *f);
    if (g == NULL || f == NULL)
        return 11;
    for (long i = 0; i < tasks; i++) {
        g[i].gate = &gate;
        g[i].started = &started;
        if (gather_submit(NULL, tu_task_gated, &g[i], &f[i]) != 0)
            return 12;
    }
    int status = 0;
    if (count_wait_s(&started, expect, WATCHDOG_S) != 0) {
        fprintf(stderr, "child: GATHER_MAX_THREADS=%s: only %ld of %ld blocked tasks started\n",
                max ? max : "(unset)", tu_count_get(&started), expect);
        status = 2;
    } else if (expect < tasks && !count_stays_below(&started, expect + 1, OBSERVE_MS)) {
        fprintf(stderr, "child: GATHER_MAX_THREADS=%s: %ld blocked tasks ran at once, at most %ld expected\n",
                max ? max : "(unset)", tu_count_get(&started), expect);
        status = 3;
    }
    gather_pool_stats st = stats_eventually(NULL, 0, (uint64_t)expect);
    if (status == 0 && st.threads < (uint64_t)expect)
        status = 13;
    if (status == 0 && expect < tasks &&
        (st.threads_peak != (uint64_t)expect || st.threads != (uint64_t)expect)) {
        fprintf(stderr, "child: GATHER_MAX_THREADS=%s: threads %llu, peak %llu, expected %ld\n",
                max ? max : "(unset)", (unsigned long long)st.threads,
                (unsigned long long)st.threads_peak, expect);
        status = 4;
    }
    if (status == 0 && st.threads_peak < (uint64_t)expect)
        status = 5;
    if (status == 0 && expect == threads && st.spares_started != 0) {
        fprintf(stderr, "child: GATHER_MAX_THREADS=%s: %llu spares on a strict default pool\n",
                max ? max : "(unset)", (unsigned long long)st.spares_started);
        status = 6;
    }
    tu_gate_open(&gate);
    for (long i = 0; i < tasks; i++) {
        if (gather_future_wait(f[i], NULL) != 0 && status == 0)
            status = 7;
        gather_future_release(f[i]);
    }
    free(g);
    free(f);
    return status;
}

/* With GATHER_THREADS=1: spares of the default pool start for blocked
 * tasks and exit after idling; then the process exits. */
static int child_spares_exit_default(void)
{
    enum { TASKS = 3 };
    if (gather_pool_threads(NULL) != 1)
        return 10;
    tu_gate gate;
    tu_count started;
    tu_gate_init(&gate);
    tu_count_init(&started);
    tu_gated g[TASKS];
    memset(g, 0, sizeof g);
    gather_future *f[TASKS];
    for (int i = 0; i < TASKS; i++) {
        g[i].gate = &gate;
        g[i].started = &started;
        if (gather_submit(NULL, tu_task_gated, &g[i], &f[i]) != 0)
            return 11;
    }
    int all = count_wait_s(&started, TASKS, WATCHDOG_S);
    tu_gate_open(&gate);
    int status = all == 0 ? 0 : 1;
    for (int i = 0; i < TASKS; i++) {
        if (gather_future_wait(f[i], NULL) != 0 && status == 0)
            status = 2;
        gather_future_release(f[i]);
    }
    uint64_t limit = tu_mono_ns() + (uint64_t)SPARE_EXIT_S * 1000000000u;
    gather_pool_stats st;
    while (status == 0) {
        if (gather_pool_stats_get(NULL, &st) != 0) {
            status = 3;
        } else if (st.threads == 1) {
            break;
        } else if (tu_mono_ns() > limit) {
            fprintf(stderr, "child: %llu threads %d s after the blocked tasks\n",
                    (unsigned long long)st.threads, SPARE_EXIT_S);
            status = 4;
        }
        sleep_ms(5);
    }
    return status;
}

/* gather_pool_resize(NULL, ...): the default pool becomes one thread that
 * may grow to 3. */
static int child_resize_default(void)
{
    enum { TASKS = 5, MAX = 3 };
    if (gather_pool_threads(NULL) == 0)
        return 10;
    if (gather_pool_resize(NULL, 1, MAX) != 0)
        return 1;
    if (gather_pool_threads(NULL) != 1)
        return 2;
    if (gather_pool_resize(NULL, 2, 1) != EINVAL || gather_pool_threads(NULL) != 1)
        return 3;
    tu_gate gate;
    tu_count started;
    tu_gate_init(&gate);
    tu_count_init(&started);
    tu_gated g[TASKS];
    memset(g, 0, sizeof g);
    gather_future *f[TASKS];
    for (int i = 0; i < TASKS; i++) {
        g[i].gate = &gate;
        g[i].started = &started;
        if (gather_submit(NULL, tu_task_gated, &g[i], &f[i]) != 0)
            return 11;
    }
    int status = 0;
    if (count_wait_s(&started, MAX, WATCHDOG_S) != 0) {
        fprintf(stderr, "child: only %ld of %d blocked tasks started on the resized default pool\n",
                tu_count_get(&started), MAX);
        status = 4;
    } else if (!count_stays_below(&started, MAX + 1, OBSERVE_MS)) {
        fprintf(stderr, "child: more than %d tasks at once on the resized default pool\n", MAX);
        status = 5;
    }
    gather_pool_stats st;
    if (gather_pool_stats_get(NULL, &st) != 0 || (status == 0 && st.threads != MAX)) {
        fprintf(stderr, "child: %llu threads on the resized default pool, expected %d\n",
                (unsigned long long)st.threads, MAX);
        status = status != 0 ? status : 6;
    }
    tu_gate_open(&gate);
    for (int i = 0; i < TASKS; i++) {
        if (gather_future_wait(f[i], NULL) != 0 && status == 0)
            status = 7;
        gather_future_release(f[i]);
    }
    return status;
}

/* Runs this binary with GATHER_TEST_CHILD=mode, the given extra variables
 * ("NAME=value"; NULL-terminated), and none of the inherited GATHER_*
 * variables. Returns its exit status, or -1 when it died of a signal.
 * tsan_thread_leaks: false turns off ThreadSanitizer's thread-leak report
 * at exit (see test_default_pool_spares_exit_and_are_joined). */
static int run_child(const char *mode, const char *const vars[], bool tsan_thread_leaks)
{
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    ck_assert_int_gt(len, 0);
    exe[len] = '\0';

    size_t ne = 0, nv = 0;
    while (environ[ne])
        ne++;
    while (vars[nv])
        nv++;
    char **envp = calloc(ne + nv + 3, sizeof *envp);
    ck_assert_ptr_nonnull(envp);
    size_t k = 0;
    for (size_t i = 0; i < ne; i++) {
        if (strncmp(environ[i], "GATHER_", 7) == 0)
            continue;
#if TU_TSAN
        if (strncmp(environ[i], "TSAN_OPTIONS=", 13) == 0)
            continue;
#endif
        envp[k++] = environ[i];
    }
#if TU_TSAN
    /* ThreadSanitizer sleeps a second at exit by default. */
    char tsan_var[1024];
    const char *tsan = getenv("TSAN_OPTIONS");
    snprintf(tsan_var, sizeof tsan_var, "TSAN_OPTIONS=%s%satexit_sleep_ms=0%s", tsan ? tsan : "",
             tsan && *tsan ? " " : "", tsan_thread_leaks ? "" : " report_thread_leaks=0");
    envp[k++] = tsan_var;
#else
    (void)tsan_thread_leaks;
#endif
    char mode_var[64];
    snprintf(mode_var, sizeof mode_var, "GATHER_TEST_CHILD=%s", mode);
    envp[k++] = mode_var;
    for (size_t i = 0; i < nv; i++)
        envp[k++] = (char *)vars[i];
    envp[k] = NULL;

    char *argv[] = {exe, NULL};
    pid_t pid;
    int rc = posix_spawn(&pid, exe, NULL, NULL, argv, envp);
    free(envp);
    ck_assert_int_eq(rc, 0);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        ck_assert_int_eq(errno, EINTR);
    if (!WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

/* The default pool with GATHER_THREADS=threads and GATHER_MAX_THREADS=max
 * (NULL: unset) runs `expect` of `tasks` blocked tasks at once. */
static int max_threads_child(const char *threads, const char *max, int tasks, int expect)
{
    char t[64], m[128], n[64], e[64], te[64];
    snprintf(t, sizeof t, "GATHER_THREADS=%s", threads);
    snprintf(m, sizeof m, "GATHER_MAX_THREADS=%s", max ? max : "");
    snprintf(n, sizeof n, "GATHER_TEST_TASKS=%d", tasks);
    snprintf(e, sizeof e, "GATHER_TEST_EXPECT=%d", expect);
    snprintf(te, sizeof te, "GATHER_TEST_THREADS=%s", threads);
    const char *vars[] = {t, n, e, te, max ? m : NULL, NULL};
    /* Spares that idle out before the child exits are not joined (see
     * test_default_pool_spares_exit_and_are_joined): not what these check. */
    return run_child("max_threads", vars, false);
}

START_TEST(test_gather_max_threads_caps_the_default_pool)
{
    ck_assert_int_eq(max_threads_child("1", "3", 5, 3), 0);
    /* Decimal, leading zeros included. */
    ck_assert_int_eq(max_threads_child("1", "03", 5, 3), 0);
    ck_assert_int_eq(max_threads_child("2", "4", 6, 4), 0);
    /* Above the default of 512 (600 threads: plain builds only; under
     * ThreadSanitizer that many take seconds to start). */
    if (!TU_SANITIZED)
        ck_assert_int_eq(max_threads_child("1", "600", 610, 600), 0);
}
END_TEST

START_TEST(test_gather_max_threads_equal_to_threads_turns_elasticity_off)
{
    ck_assert_int_eq(max_threads_child("1", "1", 2, 1), 0);
    ck_assert_int_eq(max_threads_child("2", "2", 3, 2), 0);
}
END_TEST

START_TEST(test_gather_max_threads_unset_is_512)
{
    ck_assert_int_eq(max_threads_child("1", NULL, 6, 6), 0);
    if (!TU_SANITIZED) /* 512 threads: see above */
        ck_assert_int_eq(max_threads_child("1", NULL, 520, 512), 0);
}
END_TEST

START_TEST(test_gather_max_threads_invalid_values_are_ignored)
{
    /* Ignored means 512: six blocked tasks all run (more than 3). */
    const char *bad[] = {"abc", "0", "4097", "", "3x", " 3", "+3", "-3", "0x3",
                         "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(max_threads_child("1", bad[i], 6, 6) == 0,
                      "GATHER_MAX_THREADS=\"%s\" should be ignored", bad[i]);
    /* Below GATHER_THREADS: ignored too (not an error, not strict). */
    ck_assert_msg(max_threads_child("4", "3", 6, 6) == 0,
                  "GATHER_MAX_THREADS below GATHER_THREADS should be ignored");
}
END_TEST

START_TEST(test_resize_of_the_default_pool)
{
    const char *vars[] = {NULL};
    ck_assert_int_eq(run_child("resize_default", vars, false), 0);
}
END_TEST

/* The default pool lives to the end of the process, so its spares that
 * exit must not be left for pool destruction to join: a process whose
 * spares idled out would end with finished, never-joined threads (their
 * stacks still mapped; ThreadSanitizer reports each as a thread leak at
 * exit, which fails this test's child with exit status 66 in TSan
 * builds). In other builds this checks that the default pool's spares
 * exit. */
START_TEST(test_default_pool_spares_exit_and_are_joined)
{
    const char *vars[] = {"GATHER_THREADS=1", NULL};
    int rc = run_child("spares_exit_default", vars, true);
    ck_assert_msg(rc == 0, "child exit status %d%s", rc,
                  rc == 66 ? " (ThreadSanitizer reported: thread leak of exited spares)" : "");
}
END_TEST

/* ---- fork() while spares are alive ------------------------------------------------------- */

/* Child exit codes: 0 ok, else the number of the check that failed. */
#define CHILD_CHECK(n, cond)                                                    \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "child: check %d failed: %s\n", (n), #cond);        \
            _exit(n);                                                           \
        }                                                                       \
    } while (0)

/* Waits for the child, killing it after CHILD_LIMIT_S. Returns its exit
 * status, or -1 when it hung or died of a signal. */
static int reap_child(pid_t pid)
{
    uint64_t limit = tu_mono_ns() + (uint64_t)CHILD_LIMIT_S * 1000000000u;
    for (;;) {
        int status = 0;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            if (WIFEXITED(status))
                return WEXITSTATUS(status);
            fprintf(stderr, "child died of signal %d\n", WTERMSIG(status));
            return -1;
        }
        if (tu_mono_ns() > limit) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fprintf(stderr, "child did not exit within %d s\n", CHILD_LIMIT_S);
            return -1;
        }
        sleep_ms(1);
    }
}

/* In the forked child: a new default pool, with no spares of the parent,
 * that runs tasks and starts spares of its own for blocked ones. */
static void fork_child_body(void)
{
    CHILD_CHECK(1, gather_current_pool() == NULL);
    size_t threads = gather_pool_threads(NULL);
    CHILD_CHECK(2, threads > 0);
    gather_pool_stats st;
    CHILD_CHECK(3, gather_pool_stats_get(NULL, &st) == 0);
    CHILD_CHECK(4, st.threads == threads);
    CHILD_CHECK(5, st.spares_started == 0);

    tu_gate gate;
    tu_count started;
    tu_gate_init(&gate);
    tu_count_init(&started);
    enum { MAXT = 64 };
    size_t n = threads + 1 < MAXT ? threads + 1 : MAXT;
    tu_gated g[MAXT];
    gather_future *f[MAXT];
    memset(g, 0, sizeof g);
    for (size_t i = 0; i < n; i++) {
        g[i].gate = &gate;
        g[i].started = &started;
        CHILD_CHECK(6, gather_submit(NULL, tu_task_gated, &g[i], &f[i]) == 0);
    }
    int all = count_wait_s(&started, (long)n, CHILD_LIMIT_S);
    tu_gate_open(&gate);
    CHILD_CHECK(7, all == 0);
    CHILD_CHECK(8, gather_futures(f, n, NULL, 0) == 0);
    st = stats_eventually(NULL, 1, n);
    CHILD_CHECK(9, st.spares_started >= 1);
    CHILD_CHECK(10, st.threads_peak >= n);
    /* Success: exec, as POSIX advises a child of a threaded process (and
     * no leak report for the parent's vanished threads). */
    execl("/bin/true", "true", (char *)NULL);
    _exit(0);
}

START_TEST(test_fork_while_default_pool_has_spares)
{
    /* As in check_fork.c: TSan stops a child of a multi-threaded process
     * that starts threads (its die_after_fork), and clang 14's ASan takes
     * no lock of its allocator across fork(), so a child forked while
     * another thread is inside ASan's malloc can hang in its first malloc.
     * Plain builds and valgrind run it. */
    if (TU_SANITIZED)
        return;
    size_t threads = gather_pool_threads(NULL);
    ck_assert_uint_gt(threads, 0);
    enum { MAXT = 64 };
    size_t n = threads + 2 < MAXT ? threads + 2 : MAXT;
    tu_gate gate;
    tu_gate_init(&gate);
    tu_count started;
    tu_count_init(&started);
    tu_gated g[MAXT];
    gather_future *f[MAXT];
    memset(g, 0, sizeof g);
    for (size_t i = 0; i < n; i++) {
        g[i].gate = &gate;
        g[i].started = &started;
        g[i].value = &g[i];
        ck_assert_int_eq(gather_submit(NULL, tu_task_gated, &g[i], &f[i]), 0);
    }
    int all = count_wait_s(&started, (long)n, WATCHDOG_S);
    long n_started = tu_count_get(&started);
    gather_pool_stats st = stats_eventually(NULL, 1, (uint64_t)n);

    /* No Check call between fork and reap in the parent is needed; the
     * pool threads never call Check (see check_fork.c). */
    pid_t pid = fork();
    if (pid == 0)
        fork_child_body();
    int child = pid > 0 ? reap_child(pid) : -2;

    tu_gate_open(&gate);
    gather_result res[MAXT];
    ck_assert_int_eq(gather_futures(f, n, res, 0), 0);
    for (size_t i = 0; i < n; i++) {
        ck_assert_ptr_eq(res[i].value, &g[i]);
        gather_future_release(f[i]);
    }
    ck_assert_msg(all == 0, "only %ld of %zu blocked tasks started on the default pool",
                  n_started, n);
    ck_assert_uint_ge(st.spares_started, 1);
    ck_assert_int_ge(pid, 0);
    ck_assert_msg(child == 0, "the forked child failed (%d)", child);
    tu_count_destroy(&started);
    tu_gate_destroy(&gate);
}
END_TEST

/* ---- suite --------------------------------------------------------------------------------- */

int main(void)
{
    const char *child = getenv("GATHER_TEST_CHILD");
    if (child != NULL) {
        if (strcmp(child, "max_threads") == 0)
            return child_max_threads();
        if (strcmp(child, "resize_default") == 0)
            return child_resize_default();
        if (strcmp(child, "spares_exit_default") == 0)
            return child_spares_exit_default();
        fprintf(stderr, "child: unknown mode %s\n", child);
        return 100;
    }

    Suite *s = suite_create("blocking");

    TCase *tc = tcase_create("detect");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_task_blocked_in_read_lets_queued_task_start);
    tcase_add_test(tc, test_task_in_nanosleep_lets_queued_task_start);
    tcase_add_test(tc, test_task_blocked_on_mutex_lets_queued_task_start);
    tcase_add_test(tc, test_task_waiting_on_other_pool_lets_queued_task_start);
    tcase_add_test(tc, test_task_running_on_cpu_starts_no_spare);
    tcase_add_test(tc, test_cpu_bound_work_starts_no_spare);
    tcase_add_test(tc, test_strict_pool_blocked_task_holds_the_only_thread);
    suite_add_tcase(s, tc);

    tc = tcase_create("regions");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_blocking_region_compensates_without_the_monitor);
    tcase_add_test(tc, test_blocking_regions_stop_at_max_threads);
    tcase_add_test(tc, test_resumed_task_does_not_oversubscribe);
    tcase_add_test(tc, test_blocking_region_is_a_noop_outside_tasks_and_on_strict_pools);
    suite_add_tcase(s, tc);

    tc = tcase_create("threads");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_threads_peak_stays_within_max_threads);
    tcase_add_test(tc, test_spares_exit_after_idling);
    tcase_add_test(tc, test_create_checks_max_threads);
    suite_add_tcase(s, tc);

    tc = tcase_create("resize");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_resize_checks_arguments);
    tcase_add_test(tc, test_resize_from_a_task_of_the_pool);
    tcase_add_test(tc, test_resize_up_lets_queued_task_start);
    tcase_add_test(tc, test_resize_switches_elasticity);
    tcase_add_test(tc, test_resize_down_makes_the_pool_serial);
    suite_add_tcase(s, tc);

    tc = tcase_create("default_pool");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_gather_max_threads_caps_the_default_pool);
    tcase_add_test(tc, test_gather_max_threads_equal_to_threads_turns_elasticity_off);
    tcase_add_test(tc, test_gather_max_threads_unset_is_512);
    tcase_add_test(tc, test_gather_max_threads_invalid_values_are_ignored);
    tcase_add_test(tc, test_resize_of_the_default_pool);
    tcase_add_test(tc, test_default_pool_spares_exit_and_are_joined);
    tcase_add_test(tc, test_fork_while_default_pool_has_spares);
    suite_add_tcase(s, tc);

    return tu_run_suite(s);
}
