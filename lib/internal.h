/* SPDX-License-Identifier: MIT */
/*
 * internal.h - what the files of lib/ share. Nothing here is public.
 *
 * Name tiers (after libuv): public gather_* / GATHER_*; cross-file internal
 * gather__* ; file-local statics with plain names.
 *
 * Map of lib/:
 *   alloc.c   replaceable allocator, fault hook
 *   deque.c   Chase-Lev work-stealing deque (one per worker)
 *   sleep.c   parkers and the registry of sleeping threads (wake one, never
 *             lose a wake-up)
 *   pool.c    pool lifecycle (create, shutdown, destroy, resize), submit,
 *             stats, starting worker threads
 *   worker.c  the worker loop: find, steal, run and help with tasks; idle
 *             and parking; task block cache
 *   inject.c  the injection queue (tasks submitted from outside the pool)
 *   blocking.c elastic pools: the monitor that notices blocked workers,
 *             spare threads, gather_blocking_begin/end
 *   default_pool.c the process-wide default pool, its environment, fork()
 *   future.c  the future state machine, completion, cancel, callbacks, refs
 *   wait.c    every blocking wait: helping on pool threads, parking elsewhere
 *   gather.c  gather_futures, gather_all, gather_wait_any
 *   map.c     gather_map: jobs in chunks that split lazily
 *   cq.c      the completion queue (gather_cq_*) and its descriptor
 *
 * The reasoning behind the memory orders is in docs/design.md.
 */
#ifndef GATHER_INTERNAL_H
#define GATHER_INTERNAL_H

#include "gather.h"

#include <errno.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define GATHER__CACHELINE 64
#define GATHER__MAX_THREADS 1024

#if defined(__x86_64__) || defined(__i386__)
#define gather__cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__) || defined(__arm__)
#define gather__cpu_relax() __asm__ __volatile__("yield" ::: "memory")
#else
#define gather__cpu_relax() ((void)0)
#endif

/* Sanitizer builds (gcc defines __SANITIZE_*__, clang has __has_feature). */
#if defined(__SANITIZE_THREAD__)
#define GATHER__TSAN 1
#elif defined(__SANITIZE_ADDRESS__)
#define GATHER__ASAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GATHER__TSAN 1
#elif __has_feature(address_sanitizer)
#define GATHER__ASAN 1
#endif
#endif

/* A seq_cst fence. ThreadSanitizer does not model stand-alone fences (gcc
 * refuses them under -fsanitize=thread), so its build uses a seq_cst RMW on
 * one shared location instead: all such RMWs are totally ordered and each
 * synchronizes with the previous one, which gives the same store-load
 * ordering for the Dekker patterns that use this (sleep.c). */
#ifdef GATHER__TSAN
extern _Atomic unsigned gather__tsan_fence_word;
#define gather__fence_seq_cst() \
    ((void)atomic_fetch_add_explicit(&gather__tsan_fence_word, 0, memory_order_seq_cst))
#else
#define gather__fence_seq_cst() atomic_thread_fence(memory_order_seq_cst)
#endif

/* initial-exec: one %fs-relative load instead of a __tls_get_addr call in
 * the shared library (static TLS; fine for dlopen on glibc, which reserves
 * surplus static TLS for such libraries). */
#if defined(__GNUC__) && !defined(__APPLE__)
#define GATHER_TLS _Thread_local __attribute__((tls_model("initial-exec")))
#else
#define GATHER_TLS _Thread_local
#endif

/* ---- clocks (every file) ------------------------------------------------ */

/* A timespec in nanoseconds. */
static inline uint64_t gather__ns(const struct timespec *ts)
{
    return (uint64_t)ts->tv_sec * 1000000000u + (uint64_t)ts->tv_nsec;
}

/* CLOCK_MONOTONIC now, in nanoseconds. */
static inline uint64_t gather__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return gather__ns(&ts);
}

/* Absolute CLOCK_MONOTONIC deadline timeout_ns from now. */
static inline void gather__deadline(struct timespec *ts, uint64_t timeout_ns)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    /* Saturate at the largest time_t (minus a second for the carry below)
     * instead of overflowing; time_t may be 32 or 64 bits. */
    uint64_t time_max = sizeof(time_t) >= 8 ? (uint64_t)INT64_MAX
                                            : (uint64_t)INT32_MAX;
    uint64_t room = time_max - (uint64_t)ts->tv_sec - 1;
    uint64_t s = timeout_ns / 1000000000u;
    if (s > room)
        s = room;
    ts->tv_sec += (time_t)s;
    ts->tv_nsec += (long)(timeout_ns % 1000000000u);
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* ---- alloc.c ------------------------------------------------------------ */

void *gather__malloc(size_t size);
void gather__free(void *ptr);
/* align: a power of two >= sizeof(void *). */
void *gather__malloc_aligned(size_t size, size_t align);
void gather__free_aligned(void *ptr);
/* size = a * b + c, false on overflow. */
bool gather__size(size_t a, size_t b, size_t c, size_t *size);
/* Called on every injected or real allocation failure: a breakpoint target. */
void gather__fault(void);
/* Records that a pool exists: the allocator can no longer be replaced. */
void gather__allocator_freeze(void);
/* Aborts on a pthread lock/unlock failure, which pthreads only reports for
 * a corrupted or wrongly used mutex: a bug in this library, not a condition
 * to recover from. */
void gather__lock(pthread_mutex_t *m);
void gather__unlock(pthread_mutex_t *m);

/* ---- deque.c ------------------------------------------------------------ */

typedef struct gather__deque_buf {
    int64_t mask;                          /* capacity - 1, capacity 2^k */
    struct gather__deque_buf *retired;     /* older buffers, freed at destroy */
    _Atomic(void *) slot[];                /* relaxed: see deque.c */
} gather__deque_buf;

typedef struct gather__deque {
    alignas(GATHER__CACHELINE) _Atomic int64_t top; /* thieves CAS it */
    alignas(GATHER__CACHELINE) _Atomic int64_t bottom; /* owner writes it */
    _Atomic(gather__deque_buf *) buf;
} gather__deque;

int gather__deque_init(gather__deque *d, size_t capacity);
void gather__deque_destroy(gather__deque *d);
/* Owner only. 0, or ENOMEM when the buffer had to grow and could not. */
int gather__deque_push_owner(gather__deque *d, void *item);
/* Owner only. The newest item, or NULL when empty. */
void *gather__deque_pop_owner(gather__deque *d);
/* Any thread. 0 and *item: took the oldest; ENOENT: empty; EAGAIN: lost a
 * race with another taker, retry. */
int gather__deque_steal(gather__deque *d, void **item);
/* Any thread; a hint, exact only when the deque is quiescent. */
bool gather__deque_nonempty(gather__deque *d);
/* Debug invariant check (owner, or quiescent deque). */
bool gather__deque_valid(gather__deque *d);

/* ---- sleep.c ------------------------------------------------------------ */

/* A parker: one sleeping thread's mutex, condition variable and token. */
typedef struct gather__parker {
    pthread_mutex_t lock;
    pthread_cond_t cond;              /* CLOCK_MONOTONIC */
    bool notified;                    /* guarded by lock */
    /* registry links, guarded by the registry's lock */
    struct gather__parker *prev, *next;
    bool registered;
    bool idle;                        /* an idle worker, not a waiting task */
} gather__parker;

int gather__parker_init(gather__parker *p);
void gather__parker_destroy(gather__parker *p);
/* Consumes the token, waiting for it until `deadline` (CLOCK_MONOTONIC;
 * NULL: none). 0 or ETIMEDOUT. */
int gather__park(gather__parker *p, const struct timespec *deadline);
void gather__unpark(gather__parker *p);

typedef struct gather__sleep {
    pthread_mutex_t lock;             /* guards the list and the counts */
    gather__parker *head, *tail;      /* guarded by lock: idle ones first */
    /* Written under lock, read anywhere (relaxed, as hints): */
    _Atomic size_t idle;              /* registered idle workers */
    _Atomic size_t sleepers;          /* registered parkers */
    gather__parker *watcher;          /* guarded by lock: woken when a thread
                                         leaves an idle pool (blocking.c) */
    /* The pool's live threads (pool.c, blocking.c), on a line of its own:
     * workers read it between top-level tasks, and it changes only when a
     * thread starts or retires, unlike the counts above. */
    alignas(GATHER__CACHELINE) _Atomic size_t alive;
    _Atomic size_t retiring;          /* threads that retired and have not
                                         yet made their last touch */
    bool closed;                      /* guarded by lock: destroy, no more
                                         retiring */
} gather__sleep;

/* Chooses membarrier or fences for the sleep protocol; call before a pool
 * starts its threads. */
void gather__barrier_init(void);
/* In a forked child (single-threaded): renews the membarrier registration. */
void gather__barrier_after_fork(void);
int gather__sleep_init(gather__sleep *s);
void gather__sleep_destroy(gather__sleep *s);
/* Registers p; returns whether every live thread is now registered idle. */
bool gather__sleep_enter(gather__sleep *s, gather__parker *p, bool idle);
/* Unregisters p; false when a waker had already taken it (and unparked it). */
bool gather__sleep_leave(gather__sleep *s, gather__parker *p);
/* After publishing work: wake one sleeper, if any. */
void gather__sleep_wake_one(gather__sleep *s);
/* Wakes up to n sleepers (idle workers first); returns how many. */
size_t gather__sleep_wake_n(gather__sleep *s, size_t n);
void gather__sleep_wake_all(gather__sleep *s);
/* Under the registry lock: is every live thread registered idle and
 * pred(ctx) false? Parkers must leave the registry (taking the lock) before
 * they take work, so the answer cannot be invalidated by a worker racing
 * out. */
bool gather__sleep_quiescent(gather__sleep *s, bool (*work_visible)(void *),
                             void *ctx);
/* Counts one more live thread if fewer than `limit` live; *alive gets the
 * count. Callers serialize (the pool's grow_lock), so the check holds. */
bool gather__sleep_admit(gather__sleep *s, size_t limit, size_t *alive);
/* Undoes an admit whose thread could not start. */
void gather__sleep_unadmit(gather__sleep *s);
/* A thread leaves the pool: unregisters p (may be NULL) and uncounts the
 * thread if more than `keep` live, unless a waker took p (it was woken for
 * work). True when the thread must exit; it is then counted in `retiring`
 * until gather__sleep_retired(). */
bool gather__sleep_retire(gather__sleep *s, gather__parker *p, size_t keep);
/* The retired thread's last touch of the pool. */
void gather__sleep_retired(gather__sleep *s);
/* Destroy: no thread retires from now on; waits until every retired
 * thread made its last touch. */
void gather__sleep_close(gather__sleep *s);
/* The monitor: if every live thread is idle, records `watcher` to be
 * unparked by the next thread that leaves the registry, and returns true. */
bool gather__sleep_watch(gather__sleep *s, gather__parker *watcher);
void gather__sleep_unwatch(gather__sleep *s);

/* ---- future.c ----------------------------------------------------------- */

/*
 * Future state word: five flags in the low bits, the reference count above.
 *   CLAIMED     someone owns the completion: a worker runs the task, or a
 *               canceller completes it. Set once, never cleared.
 *   DONE        error and value are published. Implies CLAIMED.
 *   CANCEL_REQ  a cancel was requested (set by gather_future_cancel).
 *   LISTENED    a listener was added (its own word, `listeners`): completion
 *               must take that list and fire it. Without it, completion is
 *               one CAS that also drops the completer's reference.
 *   TAKEN       gather_future_take() took the value (set once, after DONE).
 */
#define GATHER__CLAIMED ((uintptr_t)1)
#define GATHER__DONE ((uintptr_t)2)
#define GATHER__CANCEL_REQ ((uintptr_t)4)
#define GATHER__LISTENED ((uintptr_t)8)
#define GATHER__TAKEN ((uintptr_t)16)
#define GATHER__REF_SHIFT 5
#define GATHER__REF_ONE ((uintptr_t)1 << GATHER__REF_SHIFT)
#define gather__refs(state) ((state) >> GATHER__REF_SHIFT)

typedef struct gather__listener gather__listener;
/* Called once, by the completing thread, after DONE is published. May free
 * the listener. `f` stays valid during the call. */
typedef void (*gather__fire_fn)(gather__listener *self, gather_future *f);
struct gather__listener {
    gather__listener *next;
    gather__fire_fn fire;
};
/* The value of a future's `listeners` once its completer took the list. */
extern gather__listener gather__listeners_closed;

/*
 * Kinds of future. future.c runs one state machine for all of them and
 * knows none by name: what differs (how a cancel reaches it, how its block
 * is freed, what a task of the kind does around its run) is in the kind's
 * operations, found through gather__kinds[f->kind] (kinds.c). Each kind
 * lives in the file of the call that makes it.
 */
enum {
    GATHER__TASK,      /* gather_submit() (pool.c) */
    GATHER__CHUNK,     /* a gather_map() chunk task, no future of its own,
                          not counted in the stats (map.c) */
    GATHER__TASK_EX,   /* gather_submit_ex() with options (task_options.c) */
    GATHER__THEN,      /* gather_then() (then.c) */
    GATHER__AGGREGATE, /* gather_all() (gather.c) */
    GATHER__MAP,       /* the internal future of a gather_map() call */
    GATHER__KINDS
};
/* Kinds from here on run as tasks of a pool with hooks (the `task_over` and
 * `cancel_requested` operations); the fork-join path tests this one byte. */
#define GATHER__HOOKED_TASK GATHER__TASK_EX

typedef struct gather__future_ops {
    /* Runs as a task on a worker (deadlock detection looks for it there). */
    bool is_task;
    /* gather_future_cancel() of a future that is not done; returns true
     * when the cancel completed it. NULL: gather__task_cancel (a task's
     * claim, or a flag for a running one). */
    bool (*cancel)(gather_future *f);
    /* The last reference went: frees the block. */
    void (*destroy)(gather_future *f);
    /* A task of a hooked kind is over (it returned, or it was cancelled or
     * refused without running): runs on the completing thread before DONE.
     * NULL: nothing. */
    void (*task_over)(gather_future *f);
    /* Inside a running task of a hooked kind: another source of cancel
     * requests than the future's flag and the pool. NULL: none. */
    bool (*cancel_requested)(const gather_future *f);
} gather__future_ops;

extern const gather__future_ops *const gather__kinds[GATHER__KINDS];
extern const gather__future_ops gather__task_ops, gather__chunk_ops,
    gather__task_ex_ops, gather__then_ops, gather__aggregate_ops,
    gather__map_ops;

struct gather_future {
    _Atomic uintptr_t state;          /* flags and references, see above */
    _Atomic(gather__listener *) listeners; /* newest first, or closed */
    uint8_t kind;                     /* GATHER__TASK, ... (above) */
    uint8_t lane;                     /* injection lane (inject.c) */
    uint16_t generation;              /* fork generation at creation (pool.c) */
    int error;                        /* written by the claimer before DONE */
    void *value;                      /* idem */
    union {
        gather_fn fn;                 /* task: immutable after submit */
        gather_future *deferred;      /* once DONE: the completing thread's
                                         queue of deferred fires (future.c) */
    };
    void *arg;
    gather_pool *pool;                /* task: valid until DONE */
    gather_future *next;              /* injection queue link (its lock) */
    _Atomic(const void *) runner;     /* relaxed: the worker that claimed it */
};

/* Initialises a future with `refs` references, not claimed. */
void gather__future_init(gather_future *f, uint8_t kind, uint32_t refs);
/* The claimer publishes the result: DONE, then listeners and callbacks in
 * the order they were added. The caller must hold a reference across the
 * call. `cancel_req` ors CANCEL_REQ in. */
void gather__future_complete(gather_future *f, int error, void *value,
                             bool cancel_req);
/* The same, and gives up the caller's reference (f may be gone after). */
void gather__future_complete_release(gather_future *f, int error, void *value,
                                     bool cancel_req);
/* Gives up one reference, like gather_future_release(), without freeing:
 * true when it was the last one (the caller then destroys f through its
 * kind's operations). */
bool gather__future_unref(gather_future *f);
/* Adds `l` to f's listeners unless f is done; false when done (then the
 * result is readable). */
bool gather__future_listen(gather_future *f, gather__listener *l);
/* Failing completions so far in the process (any pool, any future), bumped
 * with release after the failure is published: lets a long wait notice a
 * failure without scanning its list after every task (wait.c). */
extern _Atomic uint64_t gather__failures;
/* Acquire load of the state word. */
uintptr_t gather__future_state(const gather_future *f);
/* Would waiting for f from this thread never end: f runs beneath us, or f
 * was not done when this process was forked from its creator? */
bool gather__future_never_done_for_caller(const gather_future *f);
/* Claims the completion of f (a pending task); false when someone (its
 * worker, a canceller) already had it. */
bool gather__future_try_claim(gather_future *f);
/* The cancel of a task kind: claims a pending task and completes it with
 * ECANCELED (counted on its pool; the kind's task_over runs first), or
 * flags a running one. True when it completed it. */
bool gather__task_cancel(gather_future *f);
static inline const gather__future_ops *gather__ops(const gather_future *f)
{
    return gather__kinds[f->kind];
}

/* ---- pools and workers (pool.c, worker.c, inject.c, blocking.c,
 *      default_pool.c) ---------------------------------------------------- */

/* A worker slot's thread (guarded by the pool's grow_lock, except that the
 * thread itself stores ZOMBIE, with release, when it leaves; whoever joins
 * it then sets FREE: a start reusing the slot, the monitor, or destroy). */
enum { GATHER__SLOT_FREE = 0, GATHER__SLOT_LIVE = 1, GATHER__SLOT_ZOMBIE = 2 };

typedef struct gather__worker {
    gather__deque deque; /* first, cache-line aligned */
    gather_pool *pool;
    size_t index;        /* its slot, fixed: names the thread */
    pthread_t thread;    /* valid while LIVE or ZOMBIE */
    uint64_t rng;        /* xorshift state for victim choice */
    gather__parker parker;
    gather_future *cache; /* free task blocks, owner only (linked by next) */
    size_t cached;
    /* Single-writer counters: only this worker writes them (relaxed load,
     * relaxed store); gather_pool_stats_get() reads them relaxed. */
    _Atomic uint64_t submitted, completed, cancelled, stolen;
    /* The worker's state as the monitor and its peers see it (blocking.c).
     * Owner writes, relaxed, on its own line: at a top-level task's start
     * and end, around a parked wait, around a blocking region; never per
     * nested task. Readers take them as hints. */
    _Atomic uint8_t busy;       /* inside a task (top-level one or deeper) */
    _Atomic uint8_t waiting;    /* parked in a wait, in the sleep registry */
    _Atomic uint32_t regions;   /* gather_blocking_begin() nesting */

    /* Monitor-written (blocking.c); the owner only reads `blocked`, and
     * clears it when its top-level task ends. */
    alignas(GATHER__CACHELINE) _Atomic uint8_t blocked; /* seen blocked */
    _Atomic int slot_state;     /* GATHER__SLOT_* */
    _Atomic int tid;            /* kernel thread id while LIVE, else 0;
                                   release-stored after cpu_clock */
    _Atomic clockid_t cpu_clock; /* the thread's CPU-time clock (relaxed:
                                   ordered by tid) */
    _Atomic bool has_clock;
    _Atomic uint64_t started_ns; /* CLOCK_MONOTONIC when the thread was
                                   started (relaxed; read after tid) */
    /* The monitor's private samples. */
    uint64_t seen_cpu_ns, seen_wall_ns;
    int seen_tid;               /* the thread they belong to */
} gather__worker;

/* Worker slots, grown by copying: a reader that saw `nslots` entries (acquire)
 * finds them in the array it loads next (published before nslots). Old
 * arrays stay until the pool is freed, as the deque's buffers do. */
typedef struct gather__slots {
    struct gather__slots *retired;
    size_t cap;
    gather__worker *w[];
} gather__slots;

typedef struct gather__monitor gather__monitor;

/* Lanes of the injection queue, taken in this order (inject.c): blocking
 * tasks first (they do not count against `threads`), then by priority. */
enum {
    GATHER__LANE_BLOCKING,
    GATHER__LANE_HIGH,
    GATHER__LANE_NORMAL,
    GATHER__LANE_LOW,
    GATHER__LANES
};

struct gather_pool {
    _Atomic size_t threads;     /* the parallelism (gather_pool_resize) */
    _Atomic size_t max_threads; /* threads, spares included */
    _Atomic(gather__slots *) slots;
    _Atomic size_t nslots;      /* slots ever used; never shrinks */
    pthread_mutex_t grow_lock;  /* slots, thread starts, resize, monitor */
    _Atomic uint64_t threads_peak;   /* written under grow_lock */
    _Atomic uint64_t spares_started; /* idem */
    /* blocking.c; set under grow_lock (release), read by retiring threads
     * (acquire) to have their thread joined. */
    _Atomic(gather__monitor *) monitor;
    _Atomic size_t zombies;     /* slots in state ZOMBIE, to be joined */
    _Atomic size_t deep_waits;  /* waits parked too deep to help (blocking.c) */
    char *name;
    size_t stack_size;
    bool is_default;
    unsigned generation; /* gather__fork_generation when created */
    gather_pool *abandoned; /* fork: the default pools of older generations */

    alignas(GATHER__CACHELINE) pthread_mutex_t inject_lock;
    struct {
        gather_future *head, *tail;
    } lane[GATHER__LANES];      /* guarded by inject_lock */
    _Atomic size_t inject_len;  /* all lanes; written under inject_lock,
                                   read anywhere */
    _Atomic size_t blocking_len; /* the blocking lane; idem */
    _Atomic bool stopping;      /* written under inject_lock */
    _Atomic bool cancelling;    /* GATHER_CANCEL_PENDING shutdown */
    _Atomic bool exiting;       /* destroy: workers leave */

    alignas(GATHER__CACHELINE) gather__sleep sleep;

    pthread_mutex_t drain_lock;
    pthread_cond_t drain_cond;
    bool drained; /* guarded by drain_lock */
    size_t sweeping; /* guarded by drain_lock: cancelling sweeps running */
    size_t shutdown_waiters; /* guarded by drain_lock: threads in shutdown */

    /* Counters for threads that are not workers of this pool. */
    alignas(GATHER__CACHELINE) _Atomic uint64_t ext_submitted;
    _Atomic uint64_t ext_cancelled;
    /* The pool's memory: the owner's hold (given up by destroy) and one per
     * continuation not yet queued (then.c). The last one frees it. */
    _Atomic size_t holds;
};

/* Limits of gather_pool_options (SPEC.md). */
#define GATHER__MAX_SPARE_THREADS 4096

/* ---- worker.c ---- */

/* The worker this thread is, else NULL. */
gather__worker *gather__worker_self(void);
/* One step of helping from w's own deque only (the fork-join fast path). */
bool gather__worker_help_local(gather__worker *w);
/* Queues task f (counted already) as the calling thread's next task when
 * it is a worker of p between top-level tasks: on its own deque, waking
 * nobody, since the loop pops it next (thieves may still take it). False
 * when that is not the case: queue it with gather__pool_queue() instead.
 * A continuation's fast path (then.c). */
bool gather__worker_queue_next(gather_pool *p, gather_future *f);
/* So close to the end of this worker's stack that a wait runs nothing on
 * it (wait.c parks and lets another thread run the work). */
bool gather__worker_stack_exhausted(void);
/* Drops the queue's reference to a task a canceller claimed first, once
 * the canceller has published DONE (it counts the cancel on the pool
 * before that, so the pool must stay alive until then). A few
 * instructions, no user code: a yield loop. */
void gather__discard_cancelled(gather_future *f);
/* Deep in nested tasks: waits help only from their own deque. */
bool gather__worker_helps_locally_only(void);
/* One step of helping: finds a task of w's pool and runs it. */
bool gather__worker_help(gather__worker *w);
/* Is there work w could take (a hint, cheap)? */
bool gather__worker_work_visible(gather__worker *w);
gather__sleep *gather__worker_sleep(gather__worker *w);
/* Task blocks, recycled through the calling worker's cache. */
gather_future *gather__task_alloc(void);
void gather__task_free(gather_future *f);
/* The future of the task this thread is running, else NULL. */
gather_future *gather__current_task(void);
/* Is this thread a worker inside a task? */
bool gather__in_task(void);
/* The thread of a worker slot. */
void *gather__worker_main(void *worker);
/* Forgets this thread's worker state (fork child). */
void gather__worker_forget_thread(void);
/* The worker list as readers see it: *n entries of the returned array. */
gather__worker *const *gather__pool_workers(const gather_pool *p, size_t *n);

/* ---- inject.c ---- */

/* Appends task f to its lane (f->lane) of p's injection queue and wakes a
 * sleeper; 0, or ESHUTDOWN once the pool stopped taking work from outside
 * (`inside`: the submitter is a task of p, accepted while it drains). */
int gather__inject_push(gather_pool *p, gather_future *f, bool counted,
                        bool inside);
/* Takes the oldest task of the first non-empty lane (only the blocking
 * lane when `blocking_only`), or NULL. */
gather_future *gather__inject_take(gather_pool *p, bool blocking_only);
/* Empties the injection queue (every lane): returns its tasks linked by
 * `next`, or NULL when it was empty. */
gather_future *gather__inject_take_all(gather_pool *p);
/* Is a task queued anywhere in p (injection queue or a deque)? A hint. */
bool gather__pool_work_visible(void *pool);
/* About how many tasks are queued in p (a hint). */
size_t gather__pool_queued(gather_pool *p);

/* ---- pool.c ---- */

/* Resolves NULL to the default pool; NULL and *err set on failure. */
gather_pool *gather__pool_resolve(const gather_pool *pool, int *err);
/* Creates a pool (default_pool.c makes the default one with is_default). */
int gather__pool_create(gather_pool **out, const gather_pool_options *opts,
                        bool is_default);
/* Starts one more worker thread, if fewer than `limit` live (grow_lock
 * held). 0; EAGAIN at the limit or when the thread could not start;
 * ENOMEM. `spare`: counted in stats.spares_started. */
int gather__pool_start_worker(gather_pool *p, size_t limit, bool spare);
/* The CPUs this process may run on (at most 1024). */
size_t gather__cpu_count(void);
/* Was p made before this process was forked (its threads are the parent's)? */
bool gather__pool_from_parent(const gather_pool *p);
/* Keeps p's memory (not its threads) past gather_pool_destroy(), until
 * the matching unhold: a late continuation then finds it shut down. */
void gather__pool_hold(gather_pool *p);
void gather__pool_unhold(gather_pool *p);
/* A canceller completed a pending task of `pool` before it ran. */
void gather__pool_count_cancel(gather_pool *pool);
/* Is the pool cancelling everything (GATHER_CANCEL_PENDING shutdown)? */
bool gather__pool_cancelling(const gather_pool *pool);
/* Called by the last thread to go idle while stopping: maybe drained. */
void gather__pool_check_drained(gather_pool *p);

/* ---- blocking.c ---- */

/* Is p elastic (max_threads > threads)? relaxed. */
bool gather__elastic(const gather_pool *p);
/* Starts the pool's monitor if it has none (grow_lock held): an elastic
 * pool's, or a resized pool's (it joins the threads that leave). */
int gather__monitor_start(gather_pool *p);
/* Joins the threads that left (ZOMBIE slots; grow_lock held). */
void gather__pool_reap(gather_pool *p);
/* A thread left: wakes the monitor to join it (from the leaving thread,
 * before its last touch). */
void gather__monitor_kick(gather_pool *p);
/* Stops and joins the monitor (destroy; nothing else runs on p). */
void gather__monitor_stop(gather_pool *p);
/* Should w, between tasks, leave the work to the `threads` tasks that run? */
bool gather__elastic_overfull(gather__worker *w);
/* A blocking region of w's task begins (counted; compensates at once on an
 * elastic pool) or ends: gather_blocking_begin/end, and the whole run of a
 * GATHER_TASK_BLOCKING task. */
void gather__blocking_region_begin(gather__worker *w);
void gather__blocking_region_end(gather__worker *w);
/* Before a blocking task is queued on p: on an elastic pool with no idle
 * thread, starts a spare to take it. */
void gather__blocking_prepare(gather_pool *p);
/* A wait on a worker of p that cannot run the work it waits for (nested
 * too deep) parks (enter/leave count it in p->deep_waits). Compensate:
 * while work is queued, wakes an idle thread or starts a spare, up to
 * max_threads plus the deep waits, on any pool, elastic or not. */
void gather__deep_wait_enter(gather_pool *p);
void gather__deep_wait_leave(gather_pool *p);
void gather__deep_wait_compensate(gather_pool *p);
/* Idle keep-alive of a thread beyond `threads`, in nanoseconds. */
uint64_t gather__spare_keepalive_ns(void);

/* ---- default_pool.c ---- */

/* Counts the fork() children this process descends from. Relaxed: it
 * changes only in a child's atfork handler, when one thread exists. */
extern _Atomic unsigned gather__fork_generation;
/* Registers the fork handlers once (before any pool lock can be held). */
void gather__fork_handlers_once(void);
/* The default pool, created on first use; NULL and *err on failure. */
gather_pool *gather__default_pool(int *err);
/* Was f created before this process was forked (its pool's threads are in
 * the parent, so a task not done then can only end by a cancel)? */
static inline bool gather__future_from_parent(const gather_future *f)
{
    return f->generation !=
           (uint16_t)atomic_load_explicit(&gather__fork_generation,
                                          memory_order_relaxed);
}

/* A new task block of `kind` for fn(arg) on p with `refs` references (the
 * caller's, if it keeps one, and the queue's), in the normal lane; NULL
 * when out of memory. Freed with the kind's destroy. */
gather_future *gather__task_new(gather_pool *p, uint8_t kind, gather_fn fn,
                               void *arg, uint32_t refs);
/* Queues task f on p: on the calling worker's own deque when it is one of
 * p's (except blocking tasks), else in its lane of the injection queue.
 * `counted`: counts it in stats.submitted. 0, ENOMEM, or ESHUTDOWN (from
 * outside a pool that stopped taking work); on error the caller still owns
 * f. Once it returns 0, f may already be done and gone unless the caller
 * holds a reference. */
int gather__pool_queue(gather_pool *p, gather_future *f, bool counted);
/* Submits a gather_map chunk (fn(arg), no future): queued like
 * gather_submit(p, fn, arg, NULL), but not counted in the stats (its jobs
 * are, with gather__pool_count_jobs), and run even when the pool cancels
 * pending tasks (the chunk cancels its jobs itself). 0, ENOMEM, ESHUTDOWN. */
int gather__submit_chunk(gather_pool *p, gather_fn fn, void *arg);
/* Adds to the stats counters of p, as the calling thread. */
void gather__pool_count_jobs(gather_pool *p, uint64_t submitted,
                             uint64_t completed, uint64_t cancelled);
/* Does a thread of p sleep, that new work would wake (a hint)? */
bool gather__pool_has_sleepers(const gather_pool *p);

/* ---- wait.c ------------------------------------------------------------- */

enum gather__wait_mode {
    GATHER__WAIT_ALL,       /* until every future is done */
    GATHER__WAIT_FAIL_FAST, /* until every one is done or one failed */
    GATHER__WAIT_ANY        /* until one is done */
};

typedef struct gather__waitset gather__waitset;

/*
 * Blocks until the mode's condition holds for fs[0..n), or until the
 * deadline (CLOCK_MONOTONIC, NULL: none). Helps on pool threads. Returns 0
 * (condition met, or *timed_out set), EDEADLK, or ENOMEM. `reserved` is a
 * waitset from gather__waitset_reserve() to use instead of allocating, or
 * NULL; it is consumed either way.
 */
int gather__wait(gather_future *const fs[], size_t n,
                 enum gather__wait_mode mode, const struct timespec *deadline,
                 bool *timed_out, gather__waitset *reserved);
/* Allocates a waitset for n futures in advance (NULL when out of memory). */
gather__waitset *gather__waitset_reserve(size_t n);
void gather__waitset_unreserve(gather__waitset *ws);

/* ---- gather.c ----------------------------------------------------------- */

/* Cancels an aggregate (gather_future_cancel() on a GATHER__AGGREGATE). */
bool gather__aggregate_cancel(gather_future *f);
/* 0, or EINVAL for unknown or conflicting gather flags. */
int gather__check_flags(unsigned flags);

/* ---- map.c -------------------------------------------------------------- */

/* The task of a gather_map chunk. */
int gather__map_chunk_task(void *arg, void **result);
/* Has the gather_map run of this chunk (a chunk task's arg) been cancelled
 * (GATHER_CANCEL_ON_ERROR after a failure)? */
bool gather__map_cancel_requested(const void *chunk_arg);

/* ---- cq.c --------------------------------------------------------------- */

/* Threads inside gather_cq_next() on cq now (a snapshot, for the tests). */
size_t gather__cq_inside(gather_cq *cq);

#endif /* GATHER_INTERNAL_H */
