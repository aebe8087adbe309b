/* SPDX-License-Identifier: MIT */
/*
 * worker.c - a pool's worker threads: the loop that finds, steals and runs
 * tasks, helping inside waits, spinning and parking when idle, and the
 * per-worker cache of task blocks.
 *
 * DESIGN: each worker owns a Chase-Lev deque (deque.c). A task submitted by
 * a worker of the same pool goes on that worker's deque; any other thread
 * submits to the pool's injection queue (inject.c). A worker looks for work
 * in its own deque (newest first), then the injection queue, then steals
 * the oldest task of another worker, starting at a random victim. Finding
 * none, it spins briefly, then parks (sleep.c); a submission wakes at most
 * one parked thread per task.
 *
 * On an elastic pool (blocking.c) a worker between two top-level tasks
 * first asks whether `threads` other tasks already run; if so it takes
 * nothing and parks, so that blocked tasks that resume do not oversubscribe
 * the CPUs. A thread beyond `threads` that idles for the keep-alive, or
 * beyond `max_threads` after a resize, leaves.
 */
#include "internal.h"

#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Task blocks a worker keeps for reuse (72 bytes each on x86-64). */
#define BLOCK_CACHE_MAX 1024

/* AddressSanitizer builds free every block, so use-after-free stays
 * detectable; recycling would hide it. */
#ifdef GATHER__ASAN
#define BLOCK_CACHE 0
#else
#define BLOCK_CACHE 1
#endif

/* Spin rounds an idle worker makes before parking (each a few pauses). */
#define SPIN_ROUNDS 64
#define SPIN_PAUSES 16
#define SPIN_YIELD_EVERY 8

/*
 * Helping nests a task on the waiting task's stack. For the tasks of the
 * worker's own deque (its own spawns) the depth is that of the program's
 * recursion. Unrelated tasks (the injection queue, other workers' deques)
 * can nest without bound (each may wait in turn), so a wait takes them only
 * while the stack has HELP_STACK_RESERVE bytes left (a quarter of a smaller
 * stack), as TBB does; beyond that it helps from its own deque and parks.
 * HELP_DEPTH_MAX caps the depth where the stack cannot be measured (e.g. a
 * sanitizer's fake stack).
 */
#define HELP_STACK_RESERVE (256 * 1024)
#define HELP_DEPTH_MAX 4096

static GATHER_TLS gather__worker *tls_worker;
static GATHER_TLS gather_future *tls_current; /* innermost running task */
static GATHER_TLS unsigned tls_depth; /* tasks running on this thread's stack */
/* The deque's bottom when the innermost running task started: entries from
 * there up are its own spawns; those below belong to the tasks it runs
 * beneath (its siblings and theirs). */
static GATHER_TLS int64_t tls_own_base;
static GATHER_TLS uintptr_t tls_stack_low, tls_stack_high; /* worker's stack */
/* Below this address a wait runs nothing on this stack, not even its own
 * spawns: it parks and lets another thread run them (0: not known). */
static GATHER_TLS uintptr_t tls_stack_floor;

/* ---- small helpers ------------------------------------------------------ */

static void bump(_Atomic uint64_t *counter)
{
    /* Single writer: a plain increment is enough and costs no lock prefix. */
    atomic_store_explicit(counter,
                          atomic_load_explicit(counter, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

static uint64_t next_random(gather__worker *w)
{
    uint64_t x = w->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    w->rng = x;
    return x;
}

gather__worker *gather__worker_self(void)
{
    return tls_worker;
}

gather__sleep *gather__worker_sleep(gather__worker *w)
{
    return &w->pool->sleep;
}

gather_future *gather__current_task(void)
{
    return tls_current;
}

bool gather__in_task(void)
{
    return tls_worker != NULL && tls_depth > 0;
}

gather_pool *gather_current_pool(void)
{
    return tls_worker != NULL ? tls_worker->pool : NULL;
}

void gather__worker_forget_thread(void)
{
    tls_worker = NULL;
    tls_current = NULL;
    tls_depth = 0;
    tls_own_base = 0;
    tls_stack_low = tls_stack_high = tls_stack_floor = 0;
}

gather__worker *const *gather__pool_workers(const gather_pool *p, size_t *n)
{
    /* acquire, count first: the array loaded next holds at least that many
     * entries, all initialised (published before the count; pool.c). */
    *n = atomic_load_explicit(&((gather_pool *)p)->nslots, memory_order_acquire);
    gather__slots *s = atomic_load_explicit(&((gather_pool *)p)->slots,
                                            memory_order_acquire);
    return s != NULL ? s->w : NULL;
}

/*
 * Task blocks: a worker recycles the blocks of the tasks it frees through a
 * private free list, so the spawn/complete path of steady-state fork-join
 * makes no allocator call. Blocks freed off the pool (or beyond the cache
 * size) go back through the replaceable allocator; a pool's caches are
 * returned to it when the pool is destroyed. Blocks are interchangeable
 * between pools: they all come from the one allocator.
 */
gather_future *gather__task_alloc(void)
{
    gather__worker *w = tls_worker;
    if (BLOCK_CACHE && w != NULL && w->cache != NULL) {
        gather_future *f = w->cache;
        w->cache = f->next;
        w->cached--;
        return f;
    }
    return gather__malloc(sizeof(gather_future));
}

void gather__task_free(gather_future *f)
{
    gather__worker *w = tls_worker;
    if (BLOCK_CACHE && w != NULL && w->cached < BLOCK_CACHE_MAX) {
        f->next = w->cache;
        w->cache = f;
        w->cached++;
        return;
    }
    gather__free(f);
}

/* Plain tasks: no hooks, and a cancel is the task protocol's. */
const gather__future_ops gather__task_ops = {
    .is_task = true,
    .destroy = gather__task_free,
};

bool gather__worker_work_visible(gather__worker *w)
{
    return gather__pool_work_visible(w->pool);
}

/* ---- finding a task ----------------------------------------------------- */

static gather_future *steal_any(gather__worker *w)
{
    size_t n;
    gather__worker *const *slot = gather__pool_workers(w->pool, &n);
    if (n < 2)
        return NULL;
    size_t start = (size_t)(next_random(w) % n);
    bool contended = true;
    while (contended) {
        contended = false;
        for (size_t i = 0; i < n; i++) {
            gather__worker *v = slot[(start + i) % n];
            if (v == w)
                continue;
            void *item;
            int rc = gather__deque_steal(&v->deque, &item);
            if (rc == 0) {
                bump(&w->stolen);
                return item;
            }
            if (rc == EAGAIN)
                contended = true;
        }
    }
    return NULL;
}

/*
 * The wake-up chain: a worker that took a task from the injection queue or
 * from another worker, while tasks are still visible somewhere and threads
 * sleep, wakes one more. So a single wake-up per burst of submissions is
 * enough (inject.c), and no task waits behind a worker that is blocked in a
 * long task (a batch it took, or its spawns) while another sleeps.
 */
static void pass_wake_on(gather_pool *p)
{
    /* relaxed: a hint; gather__sleep_wake_one re-reads it after its
     * barrier. */
    if (atomic_load_explicit(&p->sleep.sleepers, memory_order_relaxed) != 0 &&
        gather__pool_work_visible(p))
        gather__sleep_wake_one(&p->sleep);
}

static gather_future *find_task(gather__worker *w)
{
    gather_future *f = gather__deque_pop_owner(&w->deque);
    if (f != NULL)
        return f; /* our own spawns: their pushes woke sleepers already */
    f = gather__inject_take(w->pool, false);
    if (f == NULL)
        f = steal_any(w);
    if (f != NULL)
        pass_wake_on(w->pool);
    return f;
}

/* ---- running a task ----------------------------------------------------- */

/* A canceller claimed f first: it counts the cancel on the pool and then
 * publishes DONE. Wait for DONE before dropping the queue's reference, so
 * the pool cannot be drained and freed under the canceller. The window is
 * a few instructions long and contains no user code. */
void gather__discard_cancelled(gather_future *f)
{
    while (!(gather__future_state(f) & GATHER__DONE))
        sched_yield();
    gather_future_release(f);
}

/* A top-level task starts or ends on w: the state the monitor and the
 * overfull check read (relaxed stores to w's own line; never per nested
 * task). A `blocked` mark of the monitor belongs to the task that ended. */
static void set_busy(gather__worker *w, bool busy)
{
    atomic_store_explicit(&w->busy, busy, memory_order_relaxed);
    if (busy)
        return;
    if (atomic_load_explicit(&w->blocked, memory_order_relaxed))
        atomic_store_explicit(&w->blocked, 0, memory_order_relaxed);
    /* A task that left a blocking region open does not leave it open for
     * the next task. */
    if (atomic_load_explicit(&w->regions, memory_order_relaxed) != 0)
        atomic_store_explicit(&w->regions, 0, memory_order_relaxed);
}

/* A task of a hooked kind is over (returned, or cancelled unrun): its
 * kind's hook, before DONE (say, gather_submit_ex's arg_free). */
static void task_over(gather_future *f)
{
    void (*over)(gather_future *) = gather__ops(f)->task_over;
    if (over != NULL)
        over(f);
}

/* Runs f's function with the thread's task state around it. */
static int call_task(gather__worker *w, gather_future *f, void **result)
{
    /* relaxed: compared only by this thread (gather__future_never_done_for_caller)
     * to find tasks running beneath it; other threads never match it. */
    atomic_store_explicit(&f->runner, w, memory_order_relaxed);
    gather_future *outer = tls_current;
    int64_t outer_base = tls_own_base;
    /* The tasks running on this thread, innermost first, linked through
     * `next` (free while a task runs): a thread that ends inside them
     * completes them all (thread_ended_in_task). */
    f->next = outer;
    tls_current = f;
    /* relaxed: only this thread, the deque's owner, writes bottom. */
    tls_own_base = atomic_load_explicit(&w->deque.bottom, memory_order_relaxed);
    tls_depth++;
    int rc = f->fn(f->arg, result);
    tls_depth--;
    tls_current = outer;
    tls_own_base = outer_base;
    return rc;
}

/* A GATHER_TASK_BLOCKING task runs as one blocking region (blocking.c). */
static int call_blocking_task(gather__worker *w, gather_future *f, void **result)
{
    gather__blocking_region_begin(w);
    int rc = call_task(w, f, result);
    gather__blocking_region_end(w);
    return rc;
}

static void run_task(gather__worker *w, gather_future *f)
{
    /* relaxed: the claim only arbitrates against gather_future_cancel();
     * the task's fields were published by the push we took it from. */
    uintptr_t old = atomic_fetch_or_explicit(&f->state, GATHER__CLAIMED,
                                             memory_order_relaxed);
    if (old & GATHER__CLAIMED) {
        gather__discard_cancelled(f);
        return;
    }
    gather_pool *p = w->pool;
    /* One byte tells the fork-join path that no hook applies. */
    bool hooked = f->kind >= GATHER__HOOKED_TASK;
    bool counted = f->kind != GATHER__CHUNK;
    if (gather__pool_cancelling(p) && counted) { /* chunks cancel their jobs */
        bump(&w->cancelled);
        if (hooked)
            task_over(f);
        gather__future_complete_release(f, ECANCELED, NULL, true);
        return;
    }
    bool top = tls_depth == 0;
    if (top)
        set_busy(w, true);
    void *result = NULL;
    int rc = hooked && f->lane == GATHER__LANE_BLOCKING
                 ? call_blocking_task(w, f, &result)
                 : call_task(w, f, &result);
    if (counted)
        bump(&w->completed); /* counted before DONE, as SPEC.md asks */
    if (hooked)
        task_over(f);
    bool cancel_req = rc == ECANCELED && gather__pool_cancelling(p);
    /* Completes and gives up the queue's reference, in one CAS when
     * nobody listens (future.c). */
    gather__future_complete_release(f, rc, result, cancel_req);
    if (top)
        set_busy(w, false);
}

bool gather__worker_queue_next(gather_pool *p, gather_future *f)
{
    gather__worker *w = tls_worker;
    /* Between top-level tasks (a completion at the end of run_task), not
     * overfull (see the loop: it would park before looking at its deque;
     * relaxed: hints, as in gather__elastic_overfull). */
    if (w == NULL || w->pool != p || tls_depth != 0 ||
        atomic_load_explicit(&p->sleep.alive, memory_order_relaxed) >
            atomic_load_explicit(&p->threads, memory_order_relaxed))
        return false;
    return gather__deque_push_owner(&w->deque, f) == 0;
}

static size_t help_reserve(size_t stack_size)
{
    return stack_size / 4 < HELP_STACK_RESERVE ? stack_size / 4 : HELP_STACK_RESERVE;
}

bool gather__worker_stack_exhausted(void)
{
    return (uintptr_t)__builtin_frame_address(0) < tls_stack_floor;
}

bool gather__worker_help_local(gather__worker *w)
{
    /* Near the end of the stack, not even our own spawns: the wait parks
     * and another thread runs them (wait.c: deep_sleep). One compare. */
    if (gather__worker_stack_exhausted())
        return false;
    /* Deep in nested tasks, only the waiting task's own spawns: a sibling
     * that also waits would nest the next sibling beneath it, as deep as
     * there are siblings (found by the fuzzer). relaxed: our own bottom. */
    if (atomic_load_explicit(&w->deque.bottom, memory_order_relaxed) <= tls_own_base &&
        gather__worker_helps_locally_only())
        return false;
    gather_future *f = gather__deque_pop_owner(&w->deque);
    if (f == NULL)
        return false;
    run_task(w, f);
    return true;
}

bool gather__worker_helps_locally_only(void)
{
    /* Only helping inside a running task nests: a worker's own loop (depth
     * 0) always takes any work, whatever its stack size. */
    if (tls_depth == 0)
        return false;
    if (tls_depth >= HELP_DEPTH_MAX)
        return true;
    char probe;
    uintptr_t here = (uintptr_t)&probe;
    if (here <= tls_stack_low || here >= tls_stack_high)
        return false; /* not measurable here: the depth cap decides */
    size_t reserve = help_reserve(tls_stack_high - tls_stack_low);
    return here - tls_stack_low < reserve; /* stacks grow down */
}

bool gather__worker_help(gather__worker *w)
{
    if (gather__worker_helps_locally_only())
        return gather__worker_help_local(w);
    gather_future *f = find_task(w);
    if (f == NULL)
        return false;
    run_task(w, f);
    return true;
}

/* ---- idle, leaving, the loop -------------------------------------------- */

static size_t threads_of(const gather_pool *p)
{
    /* relaxed: resize changes it; a worker acting on the old value for one
     * more task is within "extra threads exit once their task is done". */
    return atomic_load_explicit(&((gather_pool *)p)->threads, memory_order_relaxed);
}

static size_t alive_of(const gather_pool *p)
{
    return atomic_load_explicit(&((gather_pool *)p)->sleep.alive, memory_order_relaxed);
}

/* Is a blocking task queued (a hint; see idle_wait)? */
static bool blocking_queued(gather_pool *p)
{
    return atomic_load_explicit(&p->blocking_len, memory_order_seq_cst) != 0;
}

/* Why the loop ends. */
enum { STAY, EXIT_DESTROY, EXIT_RETIRED };

/* After a resize lowered max_threads: a thread at the top of its loop with
 * an empty deque leaves while more than max_threads live. */
static int beyond_max(gather__worker *w)
{
    gather_pool *p = w->pool;
    /* A thread started for a deep wait (blocking.c) counts beyond it. */
    size_t max = atomic_load_explicit(&p->max_threads, memory_order_relaxed) +
                 atomic_load_explicit(&p->deep_waits, memory_order_relaxed);
    if (alive_of(p) <= max || gather__deque_nonempty(&w->deque))
        return STAY;
    return gather__sleep_retire(&p->sleep, NULL, max) ? EXIT_RETIRED : STAY;
}

/*
 * Parks an idle worker until woken. Returns EXIT_DESTROY or EXIT_RETIRED
 * when the worker must exit (destroy, or a spare whose keep-alive ran
 * out), else STAY. `overfull`: the pool runs `threads` tasks already, so
 * the worker parks although work may be queued (one of the running
 * workers takes it when its task ends, or the monitor wakes us when one
 * blocks).
 */
static int idle_wait(gather__worker *w, bool overfull)
{
    gather_pool *p = w->pool;
    bool all_idle = gather__sleep_enter(&p->sleep, &w->parker, true);
    /* The registration's fence orders these loads after it (sleep.c). */
    if (atomic_load_explicit(&p->exiting, memory_order_acquire)) {
        gather__sleep_leave(&p->sleep, &w->parker);
        return EXIT_DESTROY;
    }
    if (overfull ? !gather__elastic_overfull(w) || blocking_queued(p)
                 : gather__pool_work_visible(p)) {
        gather__sleep_leave(&p->sleep, &w->parker);
        return STAY;
    }
    if (all_idle && atomic_load_explicit(&p->stopping, memory_order_acquire))
        gather__pool_check_drained(p);
    /* Beyond `threads`: this thread is a spare, and leaves after idling for
     * the keep-alive (unless it has spawns of its own left to steal). */
    bool spare = alive_of(p) > threads_of(p);
    struct timespec deadline;
    if (spare)
        gather__deadline(&deadline, gather__spare_keepalive_ns());
    int rc = gather__park(&w->parker, spare ? &deadline : NULL);
    if (rc == ETIMEDOUT && !gather__deque_nonempty(&w->deque) &&
        gather__sleep_retire(&p->sleep, &w->parker, threads_of(p)))
        return EXIT_RETIRED;
    gather__sleep_leave(&p->sleep, &w->parker);
    return STAY;
}

/*
 * Spins briefly for new work before parking (parking and waking cost
 * microseconds, and a membarrier on the way in). Every few rounds it yields
 * the CPU, so that on an oversubscribed machine the thread producing the
 * work gets to run instead of watching us spin.
 */
static bool spin_for_work(gather_pool *p)
{
    for (int round = 0; round < SPIN_ROUNDS; round++) {
        for (int i = 0; i < SPIN_PAUSES; i++)
            gather__cpu_relax();
        if (gather__pool_work_visible(p))
            return true;
        if (round % SPIN_YIELD_EVERY == SPIN_YIELD_EVERY - 1)
            sched_yield();
    }
    return false;
}

static void name_thread(gather__worker *w)
{
    char suffix[24];
    int slen = snprintf(suffix, sizeof suffix, "-%zu", w->index);
    char name[16]; /* Linux: 15 characters and the NUL */
    size_t room = sizeof name - 1 - (size_t)slen; /* slen <= 5: index < 4096 */
    size_t plen = strlen(w->pool->name);
    if (plen > room)
        plen = room; /* shorten the prefix, keep the index */
    memcpy(name, w->pool->name, plen);
    memcpy(name + plen, suffix, (size_t)slen + 1);
#if defined(__APPLE__)
    pthread_setname_np(name);
#elif defined(__linux__) || defined(__GLIBC__)
    pthread_setname_np(pthread_self(), name);
#endif
}

static void record_stack(void)
{
#if defined(__GLIBC__)
    pthread_attr_t attr;
    void *addr;
    size_t size;
    if (pthread_getattr_np(pthread_self(), &attr) != 0)
        return;
    if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
        tls_stack_low = (uintptr_t)addr;
        tls_stack_high = (uintptr_t)addr + size;
        /* Half the helping reserve: room for the wait that parks here and
         * for what signal handlers and the C library need. */
        tls_stack_floor = tls_stack_low + help_reserve(size) / 2;
    }
    pthread_attr_destroy(&attr);
#endif
}

/* What the monitor needs to sample this thread (blocking.c): its CPU clock,
 * then its kernel id, published with release. */
static void publish_identity(gather__worker *w)
{
    clockid_t clock;
    bool ok = pthread_getcpuclockid(pthread_self(), &clock) == 0;
    atomic_store_explicit(&w->cpu_clock, ok ? clock : 0, memory_order_relaxed);
    atomic_store_explicit(&w->has_clock, ok, memory_order_relaxed);
    int tid = 0;
#if defined(__linux__) && defined(SYS_gettid)
    tid = (int)syscall(SYS_gettid);
#endif
    atomic_store_explicit(&w->tid, tid > 0 ? tid : -1, memory_order_release);
}

/*
 * A task ended its worker's thread (pthread_exit, or a cancellation that
 * the task enabled): this destructor of exit_key runs on the dying thread
 * (its TLS still readable) instead of a return to the loop. Every task that
 * was running on the thread, innermost first, completes with EOWNERDEAD
 * (counted as completed, its kind's hook run first), so no waiter waits
 * for ever; the thread then retires like a spare, after starting its
 * replacement, so the pool keeps `threads` threads and shutdown and
 * destroy return as usual (destroy joins the slot). The tasks still on its
 * deque stay there for thieves; one sleeper is woken for them.
 */
static pthread_key_t exit_key;
static bool exit_key_ok;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;

static void thread_ended_in_task(void *arg);

static void exit_key_init(void)
{
    exit_key_ok = pthread_key_create(&exit_key, thread_ended_in_task) == 0;
}

static void leave(gather__worker *w, int why);

static void thread_ended_in_task(void *arg)
{
    gather__worker *w = arg;
    gather_pool *p = w->pool;
    gather_future *f = tls_current;
    tls_current = NULL;
    tls_depth = 0;
    while (f != NULL) {
        gather_future *outer = f->next;
        if (f->kind != GATHER__CHUNK)
            bump(&w->completed);
        if (f->kind >= GATHER__HOOKED_TASK)
            task_over(f);
        gather__future_complete_release(f, EOWNERDEAD, NULL, false);
        f = outer;
    }
    set_busy(w, false);
    /* Retire, then start the replacement, under grow_lock (a replacement
     * started first would see one thread too many and leave again). The
     * pool has one thread fewer in between; nothing queued is lost: a
     * drain is only declared with no work visible. */
    int why = EXIT_DESTROY; /* only when destroy already closed the pool */
    gather__lock(&p->grow_lock);
    if (gather__sleep_retire(&p->sleep, NULL, 0)) {
        why = EXIT_RETIRED;
        /* relaxed: exiting is set by destroy, which takes grow_lock after
         * the drain; a replacement started before it is joined by it. */
        if (!atomic_load_explicit(&p->exiting, memory_order_relaxed))
            (void)gather__pool_start_worker(p, threads_of(p), false);
    }
    gather__unlock(&p->grow_lock);
    if (why == EXIT_RETIRED && gather__deque_nonempty(&w->deque))
        gather__sleep_wake_one(&p->sleep);
    leave(w, why);
}

/*
 * A thread leaves, joinable. Stopped by destroy, destroy joins it after
 * its ZOMBIE store. Retired (a spare's keep-alive, a resize), it must be
 * joined by someone else: the default pool is never destroyed, and a
 * thread left unjoined keeps its stack (and is a leak to ThreadSanitizer).
 * So it wakes the monitor, which joins it (or a start reusing its slot
 * does), and makes its last touch of the pool by leaving `retiring`, which
 * destroy waits for before it stops the monitor. (Detaching itself was
 * tried: gcc 12's ThreadSanitizer aborts in pthread_detach(pthread_self())
 * once glibc reuses the thread descriptor.)
 */
static void leave(gather__worker *w, int why)
{
    if (exit_key_ok)
        (void)pthread_setspecific(exit_key, NULL); /* a normal exit */
    gather__worker_forget_thread();
    atomic_store_explicit(&w->tid, 0, memory_order_relaxed);
    gather_pool *p = w->pool;
    if (why == EXIT_RETIRED &&
        atomic_load_explicit(&p->stopping, memory_order_acquire)) {
        /* A retire during a drain may leave every remaining thread idle:
         * this thread makes the drain check an idle one would have made. */
        gather__pool_check_drained(p);
    }
    /* release: whoever joins us (acquire) sees all of this thread's writes;
     * from here this thread reads nothing of w. */
    atomic_store_explicit(&w->slot_state, GATHER__SLOT_ZOMBIE, memory_order_release);
    if (why == EXIT_RETIRED) {
        atomic_fetch_add_explicit(&p->zombies, 1, memory_order_release);
        gather__monitor_kick(p);
        gather__sleep_retired(&p->sleep);
    }
}

void *gather__worker_main(void *arg)
{
    gather__worker *w = arg;
    tls_worker = w;
    (void)pthread_once(&exit_once, exit_key_init);
    if (exit_key_ok)
        (void)pthread_setspecific(exit_key, w);
    record_stack();
    name_thread(w);
    publish_identity(w);
    int why = STAY;
    while (why == STAY) {
        why = beyond_max(w);
        if (why != STAY)
            break;
        if (gather__elastic_overfull(w)) {
            /* Blocking tasks do not count against `threads`: take them. */
            gather_future *f = gather__inject_take(w->pool, true);
            if (f != NULL)
                run_task(w, f);
            else
                why = idle_wait(w, true);
            continue;
        }
        if (gather__worker_help(w))
            continue;
        if (spin_for_work(w->pool))
            continue;
        why = idle_wait(w, false);
    }
    leave(w, why);
    return NULL;
}
