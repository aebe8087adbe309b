/*
 * pool.c - pools and their workers: submit, the worker loop, shutdown,
 * the default pool, stats.
 *
 * DESIGN: each worker owns a Chase-Lev deque (deque.c). A task submitted by
 * a worker of the same pool goes on that worker's deque; any other thread
 * submits to the pool's injection queue, a mutex-protected FIFO. A worker
 * looks for work in its own deque (newest first), then the injection queue,
 * then steals the oldest task of another worker, starting at a random
 * victim. Finding none, it spins briefly, then parks (sleep.c); a
 * submission wakes at most one parked thread per task.
 *
 * Drain: shutdown sets `stopping` under the injection lock, after which no
 * thread outside the pool can add work. The pool is drained when all its
 * workers are registered idle and no queue holds a task: then no task runs
 * (a running task's worker is not idle), none can be added, and none is
 * queued. The last worker to go idle, or shutdown itself, observes this
 * under the sleep registry's lock (gather__sleep_quiescent) and sets
 * `drained`. Nothing is counted per task for it.
 *
 * Locks: inject_lock guards the injection queue and the store to
 * `stopping`; drain_lock guards `drained` and `shutdown_waiters`; the
 * default-pool lock guards the creation of the default pool. Nesting: a
 * submitter wakes sleepers under inject_lock (inject_lock, then the sleep
 * registry's lock, then a parker's; see inject_push). No other lock is held
 * while another is taken; gather__sleep_quiescent() reads the queues'
 * atomics (not their locks) under the registry lock.
 */
#include "internal.h"

#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

struct gather__worker {
    gather__deque deque; /* first, cache-line aligned */
    gather_pool *pool;
    size_t index;
    pthread_t thread;
    uint64_t rng; /* xorshift state for victim choice */
    gather__parker parker;
    gather_future *cache; /* free task blocks, owner only (linked by next) */
    size_t cached;
    /* Single-writer counters: only this worker writes them (relaxed load,
     * relaxed store); gather_pool_stats_get() reads them relaxed. */
    _Atomic uint64_t submitted, completed, cancelled, stolen;
};

struct gather_pool {
    size_t nthreads;
    gather__worker *workers; /* nthreads, cache-line aligned */
    size_t started;          /* threads started (creation and join) */
    char *name;
    size_t stack_size;
    bool is_default;
    unsigned generation; /* gather__fork_generation when created */
    gather_pool *abandoned; /* fork: the default pools of older generations */

    alignas(GATHER__CACHELINE) pthread_mutex_t inject_lock;
    gather_future *inject_head, *inject_tail; /* guarded by inject_lock */
    _Atomic size_t inject_len;  /* written under inject_lock, read anywhere */
    _Atomic bool stopping;      /* written under inject_lock */
    _Atomic bool cancelling;    /* GATHER_CANCEL_PENDING shutdown */
    _Atomic bool exiting;       /* destroy: workers leave */

    alignas(GATHER__CACHELINE) gather__sleep sleep;

    pthread_mutex_t drain_lock;
    pthread_cond_t drain_cond;
    bool drained; /* guarded by drain_lock */
    size_t shutdown_waiters; /* guarded by drain_lock: threads in shutdown */

    /* Counters for threads that are not workers of this pool. */
    alignas(GATHER__CACHELINE) _Atomic uint64_t ext_submitted;
    _Atomic uint64_t ext_cancelled;
};

_Static_assert(offsetof(gather__worker, deque) == 0,
               "the deque leads the worker, on its own cache lines");
_Static_assert(sizeof(gather__worker) % GATHER__CACHELINE == 0,
               "workers do not share cache lines");

/* initial-exec: one %fs-relative load instead of a __tls_get_addr call in
 * the shared library (16 bytes of static TLS; fine for dlopen on glibc,
 * which reserves surplus static TLS for such libraries). */
#if defined(__GNUC__) && !defined(__APPLE__)
#define GATHER_TLS _Thread_local __attribute__((tls_model("initial-exec")))
#else
#define GATHER_TLS _Thread_local
#endif
static GATHER_TLS gather__worker *tls_worker;
static GATHER_TLS gather_future *tls_current; /* innermost running task */
static GATHER_TLS unsigned tls_depth; /* tasks running on this thread's stack */
/* The deque's bottom when the innermost running task started: entries from
 * there up are its own spawns; those below belong to the tasks it runs
 * beneath (its siblings and theirs). */
static GATHER_TLS int64_t tls_own_base;
static GATHER_TLS uintptr_t tls_stack_low, tls_stack_high; /* worker's stack */

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

static pthread_mutex_t default_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic(gather_pool *) default_pool;

_Atomic unsigned gather__fork_generation;
static gather_pool *abandoned_defaults; /* changed only in a forked child */
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* ---- fork() ------------------------------------------------------------- */

/*
 * A forked child has one thread: the pools of its parent have no workers
 * there, and their locks may be held by threads that do not exist. So in
 * the child every call on a parent's pool fails (ESHUTDOWN) without
 * touching it, a wait for a parent's future that was not done fails
 * (EDEADLK, wait.c), and the default pool is forgotten, so that the first
 * use in the child creates a new one. The parent's memory stays as it was
 * (the child cannot free what the parent's threads were using).
 *
 * A pool remembers the fork generation it was made in; the child's handler
 * bumps the generation. Relaxed everywhere: it only changes while the child
 * is single-threaded, before any thread of the child can read it.
 */
static bool from_parent(const gather_pool *p)
{
    return p->generation !=
           atomic_load_explicit(&gather__fork_generation, memory_order_relaxed);
}

/* Hold default_lock across fork(), so the child never inherits it locked
 * by a thread that is gone (halfway through creating the default pool). */
static void before_fork(void)
{
    gather__lock(&default_lock);
}

static void after_fork_in_parent(void)
{
    gather__unlock(&default_lock);
}

static void after_fork_in_child(void)
{
    atomic_store_explicit(&gather__fork_generation,
                          atomic_load_explicit(&gather__fork_generation,
                                               memory_order_relaxed) + 1,
                          memory_order_relaxed);
    /* The parent's default pool stays listed (reachable, for leak
     * checkers): its memory is the parent's state, never reused. */
    gather_pool *old = atomic_load_explicit(&default_pool, memory_order_relaxed);
    if (old != NULL) {
        old->abandoned = abandoned_defaults;
        abandoned_defaults = old;
    }
    atomic_store_explicit(&default_pool, NULL, memory_order_relaxed);
    /* The forking thread may have been a worker of a parent's pool: in
     * the child it is an ordinary thread. */
    tls_worker = NULL;
    tls_current = NULL;
    tls_depth = 0;
    tls_own_base = 0;
    tls_stack_low = tls_stack_high = 0;
    gather__barrier_after_fork();
    gather__unlock(&default_lock);
}

static void register_fork_handlers(void)
{
    /* Failure (ENOMEM) leaves fork() unprepared; nothing better to do in a
     * pthread_once routine, and pools work the same in this process. */
    (void)pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child);
}

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

gather_pool *gather_current_pool(void)
{
    return tls_worker != NULL ? tls_worker->pool : NULL;
}

bool gather__pool_cancelling(const gather_pool *pool)
{
    /* relaxed: a flag polled by tasks; nothing is published through it. */
    return atomic_load_explicit(&((gather_pool *)pool)->cancelling,
                                memory_order_relaxed);
}

void gather__pool_count_cancel(gather_pool *pool)
{
    atomic_fetch_add_explicit(&pool->ext_cancelled, 1, memory_order_relaxed);
}

/* ---- injection queue ---------------------------------------------------- */

/*
 * Appends task f; 0, or ESHUTDOWN once the pool stopped taking work from
 * outside (the caller still owns f then). `counted`: f is counted in the
 * stats (not a gather_map chunk). Only a push that makes the queue
 * non-empty (read under the lock, so exact) wakes a sleeper: while the
 * queue is not empty, a worker woken for its first task, or an awake
 * worker's re-check before it parks, finds the rest, and takers pass
 * wake-ups on (find_task). The wake-up is issued under inject_lock (lock
 * order: inject_lock, then the sleep registry's), so that once the lock is
 * released the submitter never touches the pool again: the task may
 * already have run and its waiter destroyed the pool.
 */
static int inject_push(gather_pool *p, gather_future *f, bool counted)
{
    gather__lock(&p->inject_lock);
    /* relaxed: stopping is written under inject_lock, which we hold. */
    if (atomic_load_explicit(&p->stopping, memory_order_relaxed)) {
        gather__unlock(&p->inject_lock);
        return ESHUTDOWN;
    }
    f->next = NULL;
    bool was_empty = p->inject_head == NULL;
    if (p->inject_tail != NULL)
        p->inject_tail->next = f;
    else
        p->inject_head = f;
    p->inject_tail = f;
    /* relaxed: a hint for lock-free readers; the sleep protocol's barriers
     * order it against the sleeper count (sleep.c). */
    atomic_store_explicit(&p->inject_len,
                          atomic_load_explicit(&p->inject_len, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    if (counted)
        atomic_fetch_add_explicit(&p->ext_submitted, 1, memory_order_relaxed);
    if (was_empty)
        gather__sleep_wake_one(&p->sleep);
    gather__unlock(&p->inject_lock);
    return 0;
}

/*
 * Takes the oldest task of the injection queue. One task per take, not a
 * batch moved to our deque: a batch would wait behind this worker when its
 * first task blocks, and tasks submitted from outside would no longer start
 * in submission order across workers (users saturating a pool with blocking
 * tasks rely on that).
 */
static gather_future *inject_take(gather__worker *w)
{
    gather_pool *p = w->pool;
    if (atomic_load_explicit(&p->inject_len, memory_order_relaxed) == 0)
        return NULL;
    /* trylock: a busy lock means a submitter or another worker is at the
     * queue; rather than queue up behind it (futex sleeps on the submitter's
     * path), go steal or spin and look again. Nothing is missed: before it
     * parks, a worker re-checks inject_len (work_visible). */
    if (pthread_mutex_trylock(&p->inject_lock) != 0)
        return NULL;
    gather_future *f = p->inject_head;
    if (f != NULL) {
        p->inject_head = f->next;
        if (p->inject_head == NULL)
            p->inject_tail = NULL;
        atomic_store_explicit(&p->inject_len,
                              atomic_load_explicit(&p->inject_len, memory_order_relaxed) - 1,
                              memory_order_relaxed);
    }
    gather__unlock(&p->inject_lock);
    return f;
}

static bool work_visible(void *pool)
{
    gather_pool *p = pool;
    if (atomic_load_explicit(&p->inject_len, memory_order_seq_cst) != 0)
        return true;
    for (size_t i = 0; i < p->nthreads; i++)
        if (gather__deque_nonempty(&p->workers[i].deque))
            return true;
    return false;
}

bool gather__worker_work_visible(gather__worker *w)
{
    return work_visible(w->pool);
}

/* ---- running tasks ------------------------------------------------------ */

static gather_future *steal_any(gather__worker *w)
{
    gather_pool *p = w->pool;
    size_t n = p->nthreads;
    if (n < 2)
        return NULL;
    size_t start = (size_t)(next_random(w) % n);
    bool contended = true;
    while (contended) {
        contended = false;
        for (size_t i = 0; i < n; i++) {
            gather__worker *v = &p->workers[(start + i) % n];
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
 * enough (inject_push), and no task waits behind a worker that is blocked
 * in a long task (a batch it took, or its spawns) while another sleeps.
 */
static void pass_wake_on(gather_pool *p)
{
    /* relaxed: a hint; gather__sleep_wake_one re-reads it after its
     * barrier. */
    if (atomic_load_explicit(&p->sleep.sleepers, memory_order_relaxed) != 0 &&
        work_visible(p))
        gather__sleep_wake_one(&p->sleep);
}

static gather_future *find_task(gather__worker *w)
{
    gather_future *f = gather__deque_pop_owner(&w->deque);
    if (f != NULL)
        return f; /* our own spawns: their pushes woke sleepers already */
    f = inject_take(w);
    if (f == NULL)
        f = steal_any(w);
    if (f != NULL)
        pass_wake_on(w->pool);
    return f;
}

/* A canceller claimed f first: it counts the cancel on the pool and then
 * publishes DONE. Wait for DONE before dropping the queue's reference, so
 * the pool cannot be drained and freed under the canceller. The window is
 * a few instructions long and contains no user code. */
static void discard_cancelled(gather_future *f)
{
    while (!(gather__future_state(f) & GATHER__DONE))
        sched_yield();
    gather_future_release(f);
}

static void run_task(gather__worker *w, gather_future *f)
{
    /* relaxed: the claim only arbitrates against gather_future_cancel();
     * the task's fields were published by the push we took it from. */
    uintptr_t old = atomic_fetch_or_explicit(&f->state, GATHER__CLAIMED,
                                             memory_order_relaxed);
    if (old & GATHER__CLAIMED) {
        discard_cancelled(f);
        return;
    }
    gather_pool *p = w->pool;
    if (gather__pool_cancelling(p) && !f->chunk) { /* chunks cancel their jobs */
        bump(&w->cancelled);
        gather__future_complete_release(f, ECANCELED, NULL, true);
        return;
    }
    /* relaxed: compared only by this thread (gather__future_never_done_for_caller)
     * to find tasks running beneath it; other threads never match it. */
    atomic_store_explicit(&f->runner, w, memory_order_relaxed);
    gather_future *outer = tls_current;
    int64_t outer_base = tls_own_base;
    tls_current = f;
    /* relaxed: only this thread, the deque's owner, writes bottom. */
    tls_own_base = atomic_load_explicit(&w->deque.bottom, memory_order_relaxed);
    tls_depth++;
    void *result = NULL;
    int rc = f->fn(f->arg, &result);
    tls_depth--;
    tls_current = outer;
    tls_own_base = outer_base;
    if (!f->chunk)
        bump(&w->completed); /* counted before DONE, as SPEC.md asks */
    bool cancel_req = rc == ECANCELED && gather__pool_cancelling(p);
    /* Completes and gives up the queue's reference, in one CAS when
     * nobody listens (future.c). */
    gather__future_complete_release(f, rc, result, cancel_req);
}

bool gather__worker_help_local(gather__worker *w)
{
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
    size_t size = tls_stack_high - tls_stack_low;
    size_t reserve = size / 4 < HELP_STACK_RESERVE ? size / 4 : HELP_STACK_RESERVE;
    return here - tls_stack_low < reserve; /* stacks grow down */
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
    }
    pthread_attr_destroy(&attr);
#endif
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

/* ---- idle, drain, worker loop ------------------------------------------- */

static void check_drained(gather_pool *p)
{
    if (!gather__sleep_quiescent(&p->sleep, p->nthreads, work_visible, p))
        return;
    gather__lock(&p->drain_lock);
    p->drained = true;
    pthread_cond_broadcast(&p->drain_cond);
    gather__unlock(&p->drain_lock);
}

/* Parks an idle worker until woken. Returns true when the worker must exit. */
static bool idle_wait(gather__worker *w)
{
    gather_pool *p = w->pool;
    size_t n_idle = gather__sleep_enter(&p->sleep, &w->parker, true);
    /* The registration's fence orders these loads after it (sleep.c). */
    if (atomic_load_explicit(&p->exiting, memory_order_acquire)) {
        gather__sleep_leave(&p->sleep, &w->parker);
        return true;
    }
    if (work_visible(p)) {
        gather__sleep_leave(&p->sleep, &w->parker);
        return false;
    }
    if (n_idle == p->nthreads &&
        atomic_load_explicit(&p->stopping, memory_order_acquire))
        check_drained(p);
    gather__park(&w->parker, NULL);
    gather__sleep_leave(&p->sleep, &w->parker);
    return false;
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
        if (work_visible(p))
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
    size_t room = sizeof name - 1 - (size_t)slen; /* slen <= 5: index < 1024 */
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

static void *worker_main(void *arg)
{
    gather__worker *w = arg;
    tls_worker = w;
    record_stack();
    name_thread(w);
    for (;;) {
        if (gather__worker_help(w))
            continue;
        if (spin_for_work(w->pool))
            continue;
        if (idle_wait(w))
            break;
    }
    tls_worker = NULL;
    return NULL;
}

/* ---- creation and destruction ------------------------------------------- */

static size_t cpu_count(void)
{
    size_t n = 0;
#if defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        n = (size_t)CPU_COUNT(&set);
#endif
    if (n == 0) {
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        n = online > 0 ? (size_t)online : 1;
    }
    return n > GATHER__MAX_THREADS ? GATHER__MAX_THREADS : n;
}

static size_t stack_size_for(size_t requested)
{
    if (requested == 0)
        return 0;
    long page = sysconf(_SC_PAGESIZE);
    size_t pg = page > 0 ? (size_t)page : 4096;
    size_t min = PTHREAD_STACK_MIN;
    if (requested < min)
        requested = min;
    if (requested > SIZE_MAX - pg)
        return SIZE_MAX; /* refused by pthread_attr_setstacksize: EINVAL */
    return (requested + pg - 1) / pg * pg;
}

/* Stops and joins the threads started so far (creation failure, destroy). */
static void stop_threads(gather_pool *p)
{
    atomic_store_explicit(&p->exiting, true, memory_order_release);
    gather__sleep_wake_all(&p->sleep);
    for (size_t i = 0; i < p->started; i++)
        pthread_join(p->workers[i].thread, NULL);
    p->started = 0;
}

static void free_pool(gather_pool *p, size_t workers_ready)
{
    for (size_t i = 0; i < workers_ready; i++) {
        while (p->workers[i].cache != NULL) {
            gather_future *f = p->workers[i].cache;
            p->workers[i].cache = f->next;
            gather__free(f);
        }
        gather__parker_destroy(&p->workers[i].parker);
        gather__deque_destroy(&p->workers[i].deque);
    }
    gather__free_aligned(p->workers);
    pthread_cond_destroy(&p->drain_cond);
    pthread_mutex_destroy(&p->drain_lock);
    gather__sleep_destroy(&p->sleep);
    pthread_mutex_destroy(&p->inject_lock);
    gather__free(p->name);
    gather__free_aligned(p);
}

static int init_worker(gather_pool *p, size_t i)
{
    gather__worker *w = &p->workers[i];
    if (gather__deque_init(&w->deque, 64) != 0)
        return ENOMEM;
    if (gather__parker_init(&w->parker) != 0) {
        gather__deque_destroy(&w->deque);
        return ENOMEM;
    }
    w->pool = p;
    w->index = i;
    w->rng = 0x9E3779B97F4A7C15ull * (i + 1) ^ (uint64_t)(uintptr_t)p;
    if (w->rng == 0)
        w->rng = 1;
    atomic_init(&w->submitted, 0);
    atomic_init(&w->completed, 0);
    atomic_init(&w->cancelled, 0);
    atomic_init(&w->stolen, 0);
    return 0;
}

static int start_threads(gather_pool *p)
{
    pthread_attr_t attr;
    int rc = pthread_attr_init(&attr);
    if (rc != 0)
        return ENOMEM;
    if (p->stack_size != 0 &&
        pthread_attr_setstacksize(&attr, p->stack_size) != 0) {
        pthread_attr_destroy(&attr);
        return EINVAL;
    }
    for (size_t i = 0; i < p->nthreads; i++) {
        rc = pthread_create(&p->workers[i].thread, &attr, worker_main,
                            &p->workers[i]);
        if (rc != 0) {
            gather__fault();
            rc = rc == EINVAL ? EINVAL : EAGAIN;
            break;
        }
        p->started++;
    }
    pthread_attr_destroy(&attr);
    return rc;
}

static int init_locks(gather_pool *p)
{
    if (pthread_mutex_init(&p->inject_lock, NULL) != 0)
        return ENOMEM;
    if (gather__sleep_init(&p->sleep) != 0)
        goto fail_sleep;
    if (pthread_mutex_init(&p->drain_lock, NULL) != 0)
        goto fail_drain_lock;
    if (pthread_cond_init(&p->drain_cond, NULL) != 0)
        goto fail_drain_cond;
    return 0;
fail_drain_cond:
    pthread_mutex_destroy(&p->drain_lock);
fail_drain_lock:
    gather__sleep_destroy(&p->sleep);
fail_sleep:
    pthread_mutex_destroy(&p->inject_lock);
    return ENOMEM;
}

static int pool_create(gather_pool **out, const gather_pool_options *opts,
                       bool is_default)
{
    size_t threads = opts != NULL ? opts->threads : 0;
    if (threads > GATHER__MAX_THREADS)
        return EINVAL;
    if (threads == 0)
        threads = cpu_count();
    const char *name = opts != NULL && opts->name != NULL ? opts->name : "gather";
    gather__barrier_init();
    pthread_once(&atfork_once, register_fork_handlers);

    gather_pool *p = gather__malloc_aligned(sizeof *p, GATHER__CACHELINE);
    if (p == NULL)
        return ENOMEM;
    memset(p, 0, sizeof *p);
    p->nthreads = threads;
    p->is_default = is_default;
    p->generation = atomic_load_explicit(&gather__fork_generation,
                                         memory_order_relaxed);
    p->stack_size = stack_size_for(opts != NULL ? opts->stack_size : 0);
    atomic_init(&p->inject_len, 0);
    atomic_init(&p->stopping, false);
    atomic_init(&p->cancelling, false);
    atomic_init(&p->exiting, false);
    atomic_init(&p->ext_submitted, 0);
    atomic_init(&p->ext_cancelled, 0);

    size_t name_len = strlen(name);
    p->name = gather__malloc(name_len + 1);
    if (p->name == NULL)
        goto fail_name;
    memcpy(p->name, name, name_len + 1);
    if (init_locks(p) != 0)
        goto fail_locks;
    p->workers = gather__malloc_aligned(threads * sizeof *p->workers,
                                        GATHER__CACHELINE);
    if (p->workers == NULL)
        goto fail_workers;
    memset(p->workers, 0, threads * sizeof *p->workers);
    size_t ready = 0;
    for (; ready < threads; ready++)
        if (init_worker(p, ready) != 0)
            break;
    int rc = ready < threads ? ENOMEM : start_threads(p);
    if (rc != 0) {
        stop_threads(p);
        free_pool(p, ready);
        return rc;
    }
    /* A pool exists from here on: its blocks must be freed by the allocator
     * that made them, so the allocator can no longer change. (A failed
     * create freed everything it allocated.) */
    gather__allocator_freeze();
    *out = p;
    return 0;

fail_workers:
    pthread_cond_destroy(&p->drain_cond);
    pthread_mutex_destroy(&p->drain_lock);
    gather__sleep_destroy(&p->sleep);
    pthread_mutex_destroy(&p->inject_lock);
fail_locks:
    gather__free(p->name);
fail_name:
    gather__free_aligned(p);
    return ENOMEM;
}

int gather_pool_create(gather_pool **pool, const gather_pool_options *opts)
{
    if (pool == NULL)
        return EINVAL;
    *pool = NULL;
    return pool_create(pool, opts, false);
}

static bool on_own_thread(const gather_pool *p)
{
    return tls_worker != NULL && tls_worker->pool == p;
}

int gather_pool_shutdown(gather_pool *pool, unsigned flags)
{
    if (pool == NULL || (flags & ~GATHER_CANCEL_PENDING) != 0 || pool->is_default)
        return EINVAL;
    if (from_parent(pool))
        return ESHUTDOWN; /* its threads and locks are the parent's */
    if (on_own_thread(pool))
        return EDEADLK;
    /* Counted before touching anything else: a concurrent destroy frees the
     * pool only once every caller in here has left (found with lib/drain.pml). */
    gather__lock(&pool->drain_lock);
    pool->shutdown_waiters++;
    gather__unlock(&pool->drain_lock);
    if (flags & GATHER_CANCEL_PENDING)
        atomic_store_explicit(&pool->cancelling, true, memory_order_relaxed);
    gather__lock(&pool->inject_lock);
    /* release: a worker that reads stopping == true (acquire, idle_wait)
     * also sees every task pushed before it. */
    atomic_store_explicit(&pool->stopping, true, memory_order_release);
    gather__unlock(&pool->inject_lock);
    /* Wake sleepers so that queued tasks are cancelled promptly and the
     * last idle worker re-checks for the drain. */
    gather__sleep_wake_all(&pool->sleep);
    check_drained(pool);
    gather__lock(&pool->drain_lock);
    while (!pool->drained)
        pthread_cond_wait(&pool->drain_cond, &pool->drain_lock);
    pool->shutdown_waiters--;
    pthread_cond_broadcast(&pool->drain_cond); /* a destroy may wait for us */
    gather__unlock(&pool->drain_lock);
    return 0;
}

int gather_pool_destroy(gather_pool *pool)
{
    int rc = gather_pool_shutdown(pool, 0);
    if (rc != 0)
        return rc;
    /* Other threads may still be returning from gather_pool_shutdown() on
     * this pool, or from a submit that was refused (it held inject_lock):
     * let them leave before the pool is freed. */
    gather__lock(&pool->drain_lock);
    while (pool->shutdown_waiters > 0)
        pthread_cond_wait(&pool->drain_cond, &pool->drain_lock);
    gather__unlock(&pool->drain_lock);
    gather__lock(&pool->inject_lock);
    gather__unlock(&pool->inject_lock);
    stop_threads(pool);
    free_pool(pool, pool->nthreads);
    return 0;
}

size_t gather_pool_threads(const gather_pool *pool)
{
    int err;
    gather_pool *p = gather__pool_resolve(pool, &err);
    return p != NULL ? p->nthreads : 0;
}

/* ---- the default pool --------------------------------------------------- */

static size_t env_threads(void)
{
    const char *s = getenv("GATHER_THREADS");
    if (s == NULL || *s == '\0')
        return 0;
    size_t v = 0;
    for (const char *c = s; *c != '\0'; c++) {
        if (*c < '0' || *c > '9')
            return 0;
        v = v * 10 + (size_t)(*c - '0');
        if (v > GATHER__MAX_THREADS)
            return 0;
    }
    return v; /* 0 means "ignored": one per CPU */
}

gather_pool *gather__pool_resolve(const gather_pool *pool, int *err)
{
    if (pool != NULL) {
        if (from_parent(pool)) {
            *err = ESHUTDOWN; /* its threads and locks are the parent's */
            return NULL;
        }
        return (gather_pool *)pool;
    }
    /* acquire: pairs with the release store below; the pool is fully built. */
    gather_pool *p = atomic_load_explicit(&default_pool, memory_order_acquire);
    if (p != NULL)
        return p;
    /* Before default_lock: a fork() while we hold it must find the
     * handlers that take it (see before_fork). */
    pthread_once(&atfork_once, register_fork_handlers);
    gather__lock(&default_lock);
    p = atomic_load_explicit(&default_pool, memory_order_relaxed);
    if (p == NULL) {
        gather_pool_options o = {0};
        o.threads = env_threads();
        int rc = pool_create(&p, &o, true);
        if (rc != 0) {
            *err = rc;
            p = NULL;
        } else {
            atomic_store_explicit(&default_pool, p, memory_order_release);
        }
    }
    gather__unlock(&default_lock);
    return p;
}

/* ---- submit and stats --------------------------------------------------- */

/* A new task block with `refs` references, or NULL. */
static gather_future *new_task(gather_pool *p, gather_fn fn, void *arg,
                               uint32_t refs)
{
    gather_future *f = gather__task_alloc();
    if (f != NULL) {
        gather__future_init(f, GATHER__TASK, refs);
        f->fn = fn;
        f->arg = arg;
        f->pool = p;
    }
    return f;
}

/* gather_submit() once the pool is resolved; `chunk`: a gather_map chunk
 * (not counted, see gather__submit_chunk). */
static int submit_one(gather_pool *p, gather_fn fn, void *arg,
                      gather_future **future, bool chunk)
{
    gather__worker *w = on_own_thread(p) ? tls_worker : NULL;
    if (w == NULL && atomic_load_explicit(&p->stopping, memory_order_relaxed))
        return ESHUTDOWN; /* early answer; inject_push decides under the lock */

    gather_future *f = new_task(p, fn, arg, future != NULL ? 2 : 1);
    if (f == NULL)
        return ENOMEM;
    f->chunk = chunk;
    if (w != NULL) {
        if (!chunk)
            bump(&w->submitted); /* before the push: a thief may finish it first */
        if (gather__deque_push_owner(&w->deque, f) != 0) {
            if (!chunk)
                atomic_store_explicit(&w->submitted,
                                      atomic_load_explicit(&w->submitted, memory_order_relaxed) - 1,
                                      memory_order_relaxed);
            gather__task_free(f);
            return ENOMEM;
        }
        /* On our own deque: the pool cannot be destroyed while this task
         * runs, so waking after the push is safe. */
        gather__sleep_wake_one(&p->sleep);
    } else {
        int rc = inject_push(p, f, !chunk); /* wakes under its lock */
        if (rc != 0) {
            gather__task_free(f);
            return rc;
        }
    }
    /* With a NULL `future` the task may already be finished and freed: f is
     * not touched again below, nor is the pool. */
    if (future != NULL)
        *future = f;
    return 0;
}

int gather_submit(gather_pool *pool, gather_fn fn, void *arg,
                  gather_future **future)
{
    if (future != NULL)
        *future = NULL;
    if (fn == NULL)
        return EINVAL;
    int err = 0;
    gather_pool *p = gather__pool_resolve(pool, &err);
    if (p == NULL)
        return err;
    return submit_one(p, fn, arg, future, false);
}

int gather__submit_chunk(gather_pool *p, gather_fn fn, void *arg)
{
    return submit_one(p, fn, arg, NULL, true);
}

static void add(_Atomic uint64_t *counter, uint64_t n)
{
    /* Single writer, as bump(). */
    atomic_store_explicit(counter,
                          atomic_load_explicit(counter, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

void gather__pool_count_jobs(gather_pool *p, uint64_t submitted,
                             uint64_t completed, uint64_t cancelled)
{
    gather__worker *w = on_own_thread(p) ? tls_worker : NULL;
    if (w != NULL) {
        add(&w->submitted, submitted);
        add(&w->completed, completed);
        add(&w->cancelled, cancelled);
        return;
    }
    /* Off the pool: jobs are submitted or cancelled here, but completed
     * only by chunks, which run on the pool's workers. */
    (void)completed;
    atomic_fetch_add_explicit(&p->ext_submitted, submitted, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->ext_cancelled, cancelled, memory_order_relaxed);
}

bool gather__pool_has_sleepers(const gather_pool *p)
{
    /* relaxed: a hint for splitting work; a wrong answer costs a split. */
    return atomic_load_explicit(&((gather_pool *)p)->sleep.sleepers,
                                memory_order_relaxed) != 0;
}

int gather_pool_stats_get(const gather_pool *pool, gather_pool_stats *stats)
{
    if (stats == NULL)
        return EINVAL;
    int err = 0;
    gather_pool *p = gather__pool_resolve(pool, &err);
    if (p == NULL)
        return err;
    gather_pool_stats s = {0};
    s.submitted = atomic_load_explicit(&p->ext_submitted, memory_order_relaxed);
    s.cancelled = atomic_load_explicit(&p->ext_cancelled, memory_order_relaxed);
    for (size_t i = 0; i < p->nthreads; i++) {
        gather__worker *w = &p->workers[i];
        s.submitted += atomic_load_explicit(&w->submitted, memory_order_relaxed);
        s.completed += atomic_load_explicit(&w->completed, memory_order_relaxed);
        s.cancelled += atomic_load_explicit(&w->cancelled, memory_order_relaxed);
        s.stolen += atomic_load_explicit(&w->stolen, memory_order_relaxed);
    }
    *stats = s;
    return 0;
}
