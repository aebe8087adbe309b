/* SPDX-License-Identifier: MIT */
/*
 * blocking.c - elastic pools: noticing workers blocked inside tasks,
 * starting and waking spare threads, gather_blocking_begin/end, and the
 * rule that keeps `threads` tasks (not more) running on CPUs.
 *
 * DESIGN (docs/design.md, "Blocking work"): a pool's parallelism is
 * `threads`; an elastic pool may have up to `max_threads` threads. A
 * worker counts as running while it is inside a task, not parked in a
 * wait (where it is in the sleep registry, wakeable for work), not inside
 * a blocking region, and not marked blocked by the monitor.
 *
 * The monitor is one thread per elastic pool. It sleeps while every thread
 * of the pool is idle (sleep.c wakes it when one leaves the registry), and
 * otherwise ticks every TICK_NS. A tick does nothing more than a look at
 * the queues unless tasks are queued; then it classifies each busy worker:
 * progress (its completed counter moved) or CPU time advancing (its thread
 * CPU clock) means running; a stalled CPU clock with a kernel state other
 * than 'R' (running or runnable, /proc/self/task/TID/stat) means blocked.
 * A preempted thread is 'R', so it counts as running. When fewer than
 * `threads` workers run (or look for work) while tasks are queued, it wakes
 * sleepers, then starts spares, doubling the batch while every tick finds
 * the last batch blocked too (a slow start), bounded by the queued tasks
 * and max_threads.
 *
 * The fork-join hot path pays nothing for this: workers write their state
 * to their own cache line at top-level task boundaries only (worker.c),
 * and read one shared word (the live count) between top-level tasks.
 */
#include "internal.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Monitor tick while tasks run, and the faster one right after it started
 * spares (their tasks are likely to block too: see the slow start). */
#define TICK_NS 1000000u
#define RAMP_TICK_NS 200000u
/* Fast ticks after one that compensated: the threads it woke take tasks,
 * which the next tick samples and the one after judges. */
#define FAST_TICKS 4
/* Spares started per tick at most: the slow start's ceiling. */
#define BURST_MAX 64
/* A busy worker whose CPU clock advanced by less than elapsed/STALL_DIV
 * since the last sample is stalled (blocked, or waiting for a CPU). */
#define STALL_DIV 2
/* ... and one marked blocked runs again once its clock advances by more
 * than elapsed/RESUME_DIV; it is looked at every RESAMPLE_EVERY ticks. */
#define RESUME_DIV 8
#define RESAMPLE_EVERY 8
/* How long a thread beyond `threads` idles before it exits. */
#define KEEPALIVE_NS 1000000000u

struct gather__monitor {
    pthread_t thread;
    gather__parker parker;
    _Atomic bool stop;
    unsigned burst; /* monitor thread only */
    unsigned tick;  /* idem */
    unsigned fast;  /* idem: fast ticks left */
};

uint64_t gather__spare_keepalive_ns(void)
{
    return KEEPALIVE_NS;
}

bool gather__elastic(const gather_pool *p)
{
    gather_pool *q = (gather_pool *)p;
    return atomic_load_explicit(&q->max_threads, memory_order_relaxed) >
           atomic_load_explicit(&q->threads, memory_order_relaxed);
}

/* ---- who is running ----------------------------------------------------- */

/* Is w running a task on a CPU, as far as its own flags tell? The monitor's
 * `blocked` mark covers blocking that no flag shows. relaxed: hints. */
static bool counts_as_running(gather__worker *w)
{
    return atomic_load_explicit(&w->busy, memory_order_relaxed) &&
           !atomic_load_explicit(&w->waiting, memory_order_relaxed) &&
           atomic_load_explicit(&w->regions, memory_order_relaxed) == 0 &&
           !atomic_load_explicit(&w->blocked, memory_order_relaxed);
}

bool gather__elastic_overfull(gather__worker *w)
{
    gather_pool *p = w->pool;
    /* relaxed: hints. With at most `threads` threads alive the answer is
     * no without looking further: the fork-join path pays these two loads
     * between top-level tasks and nothing else. */
    size_t threads = atomic_load_explicit(&p->threads, memory_order_relaxed);
    if (atomic_load_explicit(&p->sleep.alive, memory_order_relaxed) <= threads)
        return false;
    size_t n, running = 0;
    gather__worker *const *slot = gather__pool_workers(p, &n);
    for (size_t i = 0; i < n; i++) {
        if (slot[i] != w && counts_as_running(slot[i]) && ++running >= threads)
            return true;
    }
    return false;
}

/* ---- sampling a worker -------------------------------------------------- */

/* The thread's CPU time, or false when it cannot be read (exited). */
static bool cpu_ns(gather__worker *w, uint64_t *ns)
{
    struct timespec ts;
    if (!atomic_load_explicit(&w->has_clock, memory_order_relaxed) ||
        clock_gettime(atomic_load_explicit(&w->cpu_clock, memory_order_relaxed), &ts) != 0)
        return false;
    *ns = gather__ns(&ts);
    return true;
}

/* Is the thread running or runnable ('R') in the kernel's view? Where that
 * cannot be read, a stalled CPU clock alone decides (no /proc: a preempted
 * thread may then be taken for a blocked one). */
static bool runnable(int tid)
{
#if defined(__linux__)
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t len = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (len <= 0)
        return false;
    buf[len] = '\0';
    /* "tid (comm) S ...": comm may hold spaces and parentheses; the state
     * follows the last ')'. */
    char *end = strrchr(buf, ')');
    return end != NULL && end[1] == ' ' && end[2] == 'R';
#else
    (void)tid;
    return false;
#endif
}

/*
 * Classifies busy worker w at time `now`; true when it runs. Updates the
 * monitor's samples and w's `blocked` mark (monitor-written; relaxed, the
 * readers take it as a hint). *newly: it was just found blocked. A worker
 * already marked is looked at again only every RESAMPLE_EVERY ticks (to
 * see it resume within its task; a task that ends clears the mark itself),
 * so a tick costs a clock read per running worker, not per blocked one.
 */
static bool sample(gather__worker *w, uint64_t now, unsigned tick, bool *newly)
{
    *newly = false;
    if (atomic_load_explicit(&w->regions, memory_order_relaxed) != 0)
        return false; /* announced: no need to look */
    if (atomic_load_explicit(&w->waiting, memory_order_relaxed))
        return false; /* parked in a wait: wakeable, not running */
    bool was_blocked = atomic_load_explicit(&w->blocked, memory_order_relaxed);
    if (was_blocked && (tick + w->index) % RESAMPLE_EVERY != 0)
        return false;
    /* acquire: pairs with publish_identity(); cpu_clock is then valid. */
    int tid = atomic_load_explicit(&w->tid, memory_order_acquire);
    uint64_t cpu;
    if (tid == 0 || !cpu_ns(w, &cpu))
        return true;
    if (tid != w->seen_tid) {
        /* A thread not sampled before: its CPU clock started at 0 when it
         * was started, which is the baseline, so it is judged at once. */
        w->seen_tid = tid;
        w->seen_cpu_ns = 0;
        w->seen_wall_ns = atomic_load_explicit(&w->started_ns, memory_order_relaxed);
    }
    uint64_t dcpu = cpu - w->seen_cpu_ns, dwall = now - w->seen_wall_ns;
    w->seen_cpu_ns = cpu;
    w->seen_wall_ns = now;
    if (was_blocked) {
        if (dcpu * RESUME_DIV <= dwall)
            return false;
        atomic_store_explicit(&w->blocked, 0, memory_order_relaxed);
        return true;
    }
    if (dcpu * STALL_DIV >= dwall || (tid > 0 && runnable(tid)))
        return true;
    atomic_store_explicit(&w->blocked, 1, memory_order_relaxed);
    *newly = true;
    return false;
}

/* ---- compensating ------------------------------------------------------- */

/* Starts up to n spares (grow_lock taken here); returns how many started. */
static size_t start_spares(gather_pool *p, size_t n)
{
    size_t started = 0;
    gather__lock(&p->grow_lock);
    size_t max = atomic_load_explicit(&p->max_threads, memory_order_relaxed);
    /* relaxed: stopping only ends the pool's intake from outside; spares
     * still help a draining pool finish its blocked tasks. exiting: the
     * threads are being joined, so none may start. */
    while (started < n && !atomic_load_explicit(&p->exiting, memory_order_relaxed) &&
           gather__pool_start_worker(p, max, true) == 0)
        started++;
    gather__unlock(&p->grow_lock);
    return started;
}

/* One tick's look at p. Returns true when it compensated (woke or started
 * threads): the next tick comes sooner, since a batch of blocking tasks
 * usually has more of them queued. */
static bool check(gather_pool *p, gather__monitor *m)
{
    if (!gather__pool_work_visible(p)) {
        m->burst = 1;
        return false;
    }
    uint64_t now = gather__now_ns();
    m->tick++;
    size_t n, busy = 0, running = 0, newly_blocked = 0;
    gather__worker *const *slot = gather__pool_workers(p, &n);
    for (size_t i = 0; i < n; i++) {
        gather__worker *w = slot[i];
        if (!atomic_load_explicit(&w->busy, memory_order_relaxed))
            continue; /* its last sample stays the baseline (see sample) */
        busy++;
        bool newly;
        if (sample(w, now, m->tick, &newly))
            running++;
        newly_blocked += newly;
    }
    size_t threads = atomic_load_explicit(&p->threads, memory_order_relaxed);
    size_t alive = atomic_load_explicit(&p->sleep.alive, memory_order_relaxed);
    size_t idle = atomic_load_explicit(&p->sleep.idle, memory_order_relaxed);
    /* Threads neither busy nor registered idle are looking for work: they
     * take the queued tasks without help. */
    size_t looking = alive > idle + busy ? alive - idle - busy : 0;
    if (running + looking >= threads) {
        m->burst = 1;
        return false;
    }
    size_t need = threads - running - looking;
    size_t woken = gather__sleep_wake_n(&p->sleep, need);
    need -= woken;
    if (need == 0)
        return woken > 0;
    size_t queued = gather__pool_queued(p);
    size_t batch = need * m->burst;
    if (batch > queued)
        batch = queued;
    if (batch == 0)
        return woken > 0;
    size_t started = start_spares(p, batch);
    /* Slow start: the next tick finds these blocked too (io-bound batches),
     * or running (then need drops to 0 and the burst resets). */
    if (newly_blocked > 0 && m->burst < BURST_MAX)
        m->burst *= 2;
    return woken + started > 0;
}

static bool detection_enabled(void)
{
    const char *s = getenv("GATHER_BLOCKING_DETECT");
    return s == NULL || strcmp(s, "0") != 0;
}

/* "<prefix>-m", the prefix shortened to the system's limit. */
static void name_monitor(const gather_pool *p)
{
#if defined(__linux__) || defined(__GLIBC__)
    char name[16];
    size_t plen = strlen(p->name);
    if (plen > sizeof name - 3)
        plen = sizeof name - 3;
    memcpy(name, p->name, plen);
    memcpy(name + plen, "-m", 3);
    pthread_setname_np(pthread_self(), name);
#else
    (void)p;
#endif
}

static void *monitor_main(void *arg)
{
    gather_pool *p = arg;
    gather__monitor *m = atomic_load_explicit(&p->monitor, memory_order_acquire);
    name_monitor(p);
    bool detect = detection_enabled();
    while (!atomic_load_explicit(&m->stop, memory_order_acquire)) {
        /* acquire: pairs with a leaving thread's release increment. */
        if (atomic_load_explicit(&p->zombies, memory_order_acquire) != 0) {
            gather__lock(&p->grow_lock);
            gather__pool_reap(p);
            gather__unlock(&p->grow_lock);
        }
        if (!detect || !gather__elastic(p) ||
            gather__sleep_watch(&p->sleep, &m->parker)) {
            /* Every thread idle (or detection off): sleep until a thread
             * leaves the registry (sleep.c) or the pool is destroyed. */
            gather__park(&m->parker, NULL);
            continue;
        }
        struct timespec deadline;
        gather__deadline(&deadline, m->fast > 0 ? RAMP_TICK_NS : TICK_NS);
        gather__park(&m->parker, &deadline);
        if (atomic_load_explicit(&m->stop, memory_order_acquire))
            break;
        if (check(p, m))
            m->fast = FAST_TICKS;
        else if (m->fast > 0)
            m->fast--;
    }
    gather__sleep_unwatch(&p->sleep);
    return NULL;
}

int gather__monitor_start(gather_pool *p)
{
    if (atomic_load_explicit(&p->monitor, memory_order_relaxed) != NULL)
        return 0;
    gather__monitor *m = gather__malloc(sizeof *m);
    if (m == NULL)
        return ENOMEM;
    if (gather__parker_init(&m->parker) != 0) {
        gather__free(m);
        return ENOMEM;
    }
    atomic_init(&m->stop, false);
    m->burst = 1;
    m->tick = 0;
    m->fast = 0;
    /* release: a leaving thread that loads it (acquire) finds it built. */
    atomic_store_explicit(&p->monitor, m, memory_order_release);
    int rc = pthread_create(&m->thread, NULL, monitor_main, p);
    if (rc != 0) {
        gather__fault();
        atomic_store_explicit(&p->monitor, NULL, memory_order_relaxed);
        gather__parker_destroy(&m->parker);
        gather__free(m);
        return EAGAIN;
    }
    return 0;
}

void gather__monitor_kick(gather_pool *p)
{
    gather__monitor *m = atomic_load_explicit(&p->monitor, memory_order_acquire);
    if (m != NULL)
        gather__unpark(&m->parker);
}

void gather__monitor_stop(gather_pool *p)
{
    gather__monitor *m = atomic_load_explicit(&p->monitor, memory_order_relaxed);
    if (m == NULL)
        return;
    /* release: the monitor's acquire load after its park sees it. */
    atomic_store_explicit(&m->stop, true, memory_order_release);
    gather__unpark(&m->parker);
    pthread_join(m->thread, NULL);
    gather__parker_destroy(&m->parker);
    gather__free(m);
    atomic_store_explicit(&p->monitor, NULL, memory_order_relaxed);
}

/* ---- blocking regions --------------------------------------------------- */

/*
 * The task says it will block: it stops counting as running at once. If no
 * idle thread is left to take queued (or soon queued) work, start a spare
 * now instead of waiting for the monitor to notice; if one is idle and
 * work is queued, wake it.
 */
static void compensate(gather_pool *p)
{
    size_t max = atomic_load_explicit(&p->max_threads, memory_order_relaxed);
    size_t alive = atomic_load_explicit(&p->sleep.alive, memory_order_relaxed);
    if (atomic_load_explicit(&p->sleep.idle, memory_order_relaxed) > 0) {
        if (gather__pool_work_visible(p))
            gather__sleep_wake_one(&p->sleep);
        return;
    }
    if (alive < max)
        (void)start_spares(p, 1);
}

/*
 * Deep waits. A wait nested too deep to run tasks on its own stack parks,
 * and the tasks it waits for may be queued with no other thread to run
 * them (a one-thread pool): the pool then lets one more thread run them,
 * elastic or not. The parked task is not running, so at most `threads`
 * tasks run at once. Bound: max_threads plus one thread per parked deep
 * wait; each such thread is a spare that exits after its keep-alive.
 */
void gather__deep_wait_enter(gather_pool *p)
{
    /* relaxed: a bound read under grow_lock by compensations; a stale
     * value lets one spare more or fewer start, and the waiter retries. */
    atomic_fetch_add_explicit(&p->deep_waits, 1, memory_order_relaxed);
}

void gather__deep_wait_leave(gather_pool *p)
{
    atomic_fetch_sub_explicit(&p->deep_waits, 1, memory_order_relaxed);
}

void gather__deep_wait_compensate(gather_pool *p)
{
    if (atomic_load_explicit(&p->sleep.idle, memory_order_relaxed) > 0) {
        gather__sleep_wake_one(&p->sleep);
        return;
    }
    gather__lock(&p->grow_lock);
    size_t limit = atomic_load_explicit(&p->max_threads, memory_order_relaxed) +
                   atomic_load_explicit(&p->deep_waits, memory_order_relaxed);
    if (!atomic_load_explicit(&p->exiting, memory_order_relaxed))
        (void)gather__pool_start_worker(p, limit, true);
    gather__unlock(&p->grow_lock);
}

/*
 * A blocking task is about to be queued: with no idle thread to take it,
 * start a spare now (the push that follows wakes an idle one).
 */
static void compensate_for_new_work(gather_pool *p)
{
    size_t max = atomic_load_explicit(&p->max_threads, memory_order_relaxed);
    if (atomic_load_explicit(&p->sleep.idle, memory_order_relaxed) == 0 &&
        atomic_load_explicit(&p->sleep.alive, memory_order_relaxed) < max)
        (void)start_spares(p, 1);
}

void gather__blocking_prepare(gather_pool *p)
{
    if (gather__elastic(p))
        compensate_for_new_work(p);
}

void gather__blocking_region_begin(gather__worker *w)
{
    uint32_t depth = atomic_load_explicit(&w->regions, memory_order_relaxed);
    if (depth == UINT32_MAX)
        return; /* unbalanced use; saturate rather than wrap */
    atomic_store_explicit(&w->regions, depth + 1, memory_order_relaxed);
    if (depth == 0 && gather__elastic(w->pool)) {
        /* Store-load order against an overfull worker registering idle
         * (its heavy barrier, then it reads our `regions`): either it sees
         * us in the region and takes work, or we see it idle and wake it
         * (found with lib/elastic.pml's weak-memory note). */
        gather__fence_seq_cst();
        compensate(w->pool);
    }
}

void gather__blocking_region_end(gather__worker *w)
{
    uint32_t depth = atomic_load_explicit(&w->regions, memory_order_relaxed);
    if (depth > 0)
        atomic_store_explicit(&w->regions, depth - 1, memory_order_relaxed);
}

void gather_blocking_begin(void)
{
    if (gather__in_task())
        gather__blocking_region_begin(gather__worker_self());
}

void gather_blocking_end(void)
{
    if (gather__in_task())
        gather__blocking_region_end(gather__worker_self());
}
