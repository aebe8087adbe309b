/* SPDX-License-Identifier: MIT */
/*
 * gather.h - asyncio.gather() for C: a work-stealing pthread pool whose tasks
 * return futures, and calls that wait for lists of futures.
 *
 * Conventions (they hold for every function below unless it says otherwise):
 *
 *   - Functions that can fail return int: 0 on success, else a positive errno
 *     value, the way pthreads does. Bad arguments (NULL pointers, unknown flag
 *     bits, a count whose byte size overflows) give EINVAL and never crash.
 *   - Every function may be called from any thread, including from inside a
 *     running task or a done callback, except gather_replace_allocator().
 *   - Timeouts are relative, in nanoseconds; GATHER_FOREVER never expires.
 *   - Wherever a gather_pool * is taken, NULL means the process-wide default
 *     pool: created on first use with one thread per CPU this process may run
 *     on (or GATHER_THREADS, decimal 1..1024), elastic up to 512 threads for
 *     tasks that block (or GATHER_MAX_THREADS, decimal, GATHER_THREADS..4096;
 *     equal to the thread count: not elastic), and never destroyed.
 *   - "On a pool thread" means on one of the pool's worker threads. Every
 *     call that waits runs other tasks of the calling worker's pool while it
 *     waits there ("helping"), so nested waiting never deadlocks, even on a
 *     one-thread pool; off the pool it sleeps on a condition variable.
 *   - fork(): the child of a process that uses gather has one thread and no
 *     pool threads. There, the default pool is created anew on first use and
 *     new pools work as usual; every call on a pool created before the fork
 *     fails with ESHUTDOWN without touching it (its memory is left alone),
 *     and waiting for a future that was not done at the fork fails with
 *     EDEADLK (only gather_future_cancel() could still end it). A thread
 *     that forks inside a task is an ordinary thread in the child, which
 *     must exit (or exec) before that task would return.
 *
 * Memory visibility: everything a task wrote before returning happens-before
 * the return of any call that observes its future done (wait, wait_for,
 * done, error, value, gather_futures, gather_wait_any, gather_cq_next,
 * a done callback).
 */
#ifndef GATHER_H
#define GATHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* GATHER_API marks the exported symbols; everything else is hidden. */
#if defined(_WIN32)
#define GATHER_API
#elif defined(__GNUC__) && defined(GATHER_BUILDING)
#define GATHER_API __attribute__((visibility("default")))
#else
#define GATHER_API
#endif

/* GATHER_READS(ptr, count): the function only reads ptr[0..count). Lets
 * GCC >= 10 check callers without false -Wmaybe-uninitialized reports on
 * arrays filled up to count. Argument positions are 1-based. */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 10
#define GATHER_READS(ptr, count) __attribute__((access(read_only, ptr, count)))
#else
#define GATHER_READS(ptr, count)
#endif

#define GATHER_VERSION_MAJOR 0
#define GATHER_VERSION_MINOR 2
#define GATHER_VERSION_PATCH 0

/* A timeout that never expires. */
#define GATHER_FOREVER UINT64_MAX

/* gather_pool_shutdown(): cancel the tasks that have not started. */
#define GATHER_CANCEL_PENDING 1u

/* gather_futures() and friends: capture failures in the results instead of
 * returning the first one. */
#define GATHER_RETURN_ERRORS 1u
/* gather_futures() and friends: on the first failure, cancel every other
 * future of the list that is not done. EINVAL with GATHER_RETURN_ERRORS. */
#define GATHER_CANCEL_ON_ERROR 2u
/* gather_futures(), gather_futures_for(), gather_all(), gather_map(): return
 * (or complete) only once every future of the list is done, so that no
 * result is EINPROGRESS and no task of the list still runs. The code is
 * still the first failure's (without GATHER_RETURN_ERRORS); with
 * GATHER_CANCEL_ON_ERROR it is asyncio's TaskGroup: on the first failure
 * cancel the others, wait for all of them, return the first failure. With
 * GATHER_RETURN_ERRORS it changes nothing. */
#define GATHER_WAIT_ALL 4u

/* ------------------------------------------------------------------------ */
/* Tasks                                                                    */
/* ------------------------------------------------------------------------ */

/*
 * A task. Runs on a pool thread with the `arg` given to gather_submit().
 * Returns 0 on success or any non-zero code to fail (kept as-is; the C
 * counterpart of raising an exception). `*result` starts as NULL; the task
 * may set it on success, and on failure (an error payload). What `*result`
 * points to belongs to the application: the library never frees it.
 * A task should not return EINPROGRESS (it reads as "not done"); every
 * other code is kept as-is. A task that ends its own thread (pthread_exit)
 * completes with EOWNERDEAD and a NULL value, and so does every task that
 * was running beneath it on that thread (a wait that was helping); the
 * pool starts a thread in its place. (Not covered: a gather_map job that
 * ends its thread, which leaves that gather_map call waiting.)
 */
typedef int (*gather_fn)(void *arg, void **result);

/* ------------------------------------------------------------------------ */
/* Pools                                                                    */
/* ------------------------------------------------------------------------ */

typedef struct gather_pool gather_pool; /* opaque */

/*
 * Pool options. Zero-initialise, then set what you need; fields may be added
 * at the end in later versions.
 */
typedef struct gather_pool_options {
    size_t threads;    /* 0: one per CPU this process may run on
                          (sched_getaffinity); at most 1024 */
    size_t stack_size; /* 0: the system default; else rounded up to pages */
    const char *name;  /* thread-name prefix; NULL: "gather". Threads are
                          named "<prefix>-<index>", the prefix shortened when
                          the system limit would cut the index */
    size_t max_threads; /* 0: threads (a strict pool, no spare threads).
                          Otherwise threads <= max_threads <= 4096: the most
                          threads the pool may have while tasks block (an
                          elastic pool, see "Blocking work" below) */
} gather_pool_options;

/*
 * Creates a pool and starts its threads.
 *
 * Ownership: *pool receives a new pool owned by the caller, who frees it with
 * gather_pool_destroy(). `opts` is borrowed (may be NULL for defaults); the
 * name string is copied.
 * Errors:
 *   EINVAL  pool is NULL, threads > 1024, max_threads > 4096, an explicit
 *           threads with 0 < max_threads < threads, or a stack size the
 *           system refuses. (With threads == 0, a max_threads below the CPU
 *           count is raised to it.)
 *   ENOMEM  out of memory; nothing was created.
 *   EAGAIN  a thread could not be started (also a stack size too large to
 *           map); nothing was created.
 */
GATHER_API int gather_pool_create(gather_pool **pool,
                                  const gather_pool_options *opts);

/*
 * Stops the pool taking work from outside its own threads, then waits until
 * every task has finished. Tasks may still submit subtasks while the pool
 * drains, and those run too. With GATHER_CANCEL_PENDING, tasks that have not
 * started are cancelled instead of run (their futures complete with
 * ECANCELED, also subtasks submitted during the drain), and running tasks see
 * gather_cancel_requested() turn true. Calling it again returns 0.
 *
 * Ownership: `pool` is borrowed.
 * Errors:
 *   EINVAL   pool is NULL (the default pool is never shut down) or unknown
 *            flag bits.
 *   EDEADLK  called from one of this pool's own threads (a task or a done
 *            callback running there); nothing is done.
 *   ESHUTDOWN  in a forked child, on a pool created before the fork.
 * After it returns 0: gather_submit() from a thread outside the pool fails
 * with ESHUTDOWN, and every task's effects happen-before the return.
 */
GATHER_API int gather_pool_shutdown(gather_pool *pool, unsigned flags);

/*
 * gather_pool_shutdown(pool, 0), then joins the threads and frees the pool.
 * Futures outlive their pool: they stay valid and readable until released.
 *
 * Ownership: takes `pool`; it is invalid once this returns 0.
 * Errors:
 *   EINVAL   pool is NULL.
 *   EDEADLK  called from one of this pool's own threads; nothing is done.
 *   ESHUTDOWN  in a forked child, on a pool created before the fork; nothing
 *            is done (the pool stays, unusable, in the child).
 */
GATHER_API int gather_pool_destroy(gather_pool *pool);

/* The pool's parallelism `threads` (NULL: the default pool, created if
 * needed; 0 if that fails, or for a pool of the parent in a forked child).
 * Never counts spare threads: gather_pool_stats_get() reports those. */
GATHER_API size_t gather_pool_threads(const gather_pool *pool);

/* The pool whose worker thread calls this, else NULL. Borrowed. */
GATHER_API gather_pool *gather_current_pool(void);

/* ------------------------------------------------------------------------ */
/* Blocking work                                                            */
/* ------------------------------------------------------------------------ */

/*
 * An elastic pool (max_threads > threads; the default pool is one) keeps
 * `threads` tasks running on CPUs while other tasks block. When a worker is
 * blocked inside a task (a system call, a sleep, a lock, a wait with nothing
 * to help) while tasks of its pool are queued, the pool wakes or starts a
 * spare thread. It notices by itself within a few milliseconds (a monitor
 * thread samples the busy workers' CPU clocks and kernel states, only while
 * tasks run and work is queued); it never starts a spare for a task that is
 * running or runnable on a CPU. A task parked in a wait stays wakeable: new
 * work wakes it to help before any spare is started. When blocked tasks
 * resume, a worker that finishes its task takes a new one only while fewer
 * than `threads` others run; threads beyond `threads` that idle for 1 s
 * exit. The monitor thread (one per elastic pool) sleeps while the pool is
 * idle. The environment variable GATHER_BLOCKING_DETECT=0, read when a pool
 * becomes elastic, keeps the monitor asleep (regions still compensate).
 */

/*
 * Brackets code that the calling task knows will block (tokio's
 * block_in_place, Java's ForkJoinPool.managedBlock): on an elastic pool the
 * task stops counting against `threads` at once, and a spare thread is
 * started or woken when no idle thread is left, without waiting for the
 * monitor to notice. Calls nest (counted); each begin needs its end in the
 * same task. Harmless no-ops outside a task and on a pool that is not
 * elastic. No error, nothing owned.
 */
GATHER_API void gather_blocking_begin(void);
GATHER_API void gather_blocking_end(void);

/*
 * Changes `threads` and `max_threads` of a live pool (NULL: the default
 * pool). threads == 0: the CPUs; max_threads == 0: threads (strict). Extra
 * threads exit once their task is done; missing ones start at once. May be
 * called from a task of the pool.
 * Ownership: `pool` is borrowed.
 * Errors:
 *   EINVAL     as for gather_pool_create() (threads > 1024, max_threads >
 *              4096, an explicit threads above a non-zero max_threads).
 *   ESHUTDOWN  the pool is shut down (or a parent's pool in a forked child).
 *   EAGAIN     a thread could not be started; the new sizes apply and the
 *              pool runs with the threads it has.
 *   ENOMEM     the default pool could not be created.
 */
GATHER_API int gather_pool_resize(gather_pool *pool, size_t threads,
                                  size_t max_threads);

/* ------------------------------------------------------------------------ */
/* Futures                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct gather_future gather_future; /* opaque, reference-counted */

/* A done callback. `future` is borrowed for the duration of the call. */
typedef void (*gather_done_fn)(gather_future *future, void *user_data);

/*
 * Queues fn(arg) on `pool` (NULL: the default pool). From a worker of the
 * same pool the task goes on that worker's own deque (other workers may
 * steal it); from elsewhere, on the pool's injection queue. Inside a task,
 * NULL still means the default pool: pass gather_current_pool() to submit
 * subtasks to the task's own pool.
 *
 * Ownership: `arg` is passed through untouched. When `future` is not NULL,
 * *future receives a new future holding one reference, owned by the caller
 * and given up with gather_future_release(); releasing it does not cancel the
 * task. When `future` is NULL the task runs detached. On error *future is
 * set to NULL.
 * Errors:
 *   EINVAL     fn is NULL.
 *   ESHUTDOWN  the pool is shut down and the caller is not one of its tasks,
 *              or (in a forked child) the pool was created before the fork.
 *   ENOMEM     out of memory (the task was not queued).
 *   EAGAIN     the default pool could not start its threads.
 * Visibility: writes made before the call happen-before the task runs.
 */
GATHER_API int gather_submit(gather_pool *pool, gather_fn fn, void *arg,
                             gather_future **future);

/*
 * Waits until `f` is done; returns the task's code (0 on success, ECANCELED
 * when cancelled) and stores its *result in *value when `value` is not NULL.
 * On a pool thread it runs other tasks of that pool while it waits.
 * A future is done before its done callbacks run, so a wait may return
 * while callbacks of that future are still running on another thread.
 *
 * Depth: waits nest on the caller's stack only while it has room (depth
 * 4096, a reserve of 256 KiB or a quarter of the stack); beyond, a wait
 * parks and the pool lets another thread run what it waits for, even on a
 * pool that is not elastic (a spare, counted in stats.threads and
 * stats.spares_started, that exits after idling 1 s; the parked task does
 * not count as running). So nesting never overflows the stack or hangs.
 * Ownership: `f` is borrowed; *value is the task's pointer (application's).
 * Errors (returned instead of the task's code; *value is left untouched):
 *   EINVAL   f is NULL.
 *   EDEADLK  the calling task waits for its own future, or for a task that
 *            runs beneath it on the same thread (a wait that could never
 *            end). Helping can place an unrelated task beneath a waiting
 *            one, so a task that waits for a future that is not its own
 *            subtask may get EDEADLK where, on another run, it would have
 *            waited; fork-join (waiting for one's own subtasks) never does.
 *            For the same reason, do not hold a lock across a wait that
 *            another task of the pool may need. Not detected: a wait on an
 *            aggregate that contains the caller's own future.
 *   ENOMEM   the future is not done and the wait record could not be
 *            allocated (gather_future_done() tells this from a task that
 *            returned ENOMEM). A thread reuses one small wait record, so
 *            this needs an allocation only on its first blocking wait, in
 *            nested waits, or while a timed-out wait's record is still
 *            held by its futures.
 *   EDEADLK  also: in a forked child, f was not done at the fork (see the
 *            conventions at the top).
 */
GATHER_API int gather_future_wait(gather_future *f, void **value);

/*
 * Waits at most `timeout_ns` (GATHER_FOREVER: no limit) for `f`; returns
 * true once it is done. False at once for NULL or for a task waiting for its
 * own future; false (after the timeout at the latest) when a wait record
 * could not be allocated. On a pool thread it helps; a task it runs may keep
 * it past the timeout.
 */
GATHER_API bool gather_future_wait_for(gather_future *f, uint64_t timeout_ns);

/* True once `f` is done (completed or cancelled). NULL: false. */
GATHER_API bool gather_future_done(const gather_future *f);

/* The task's code once done; EINPROGRESS before; EINVAL for NULL. */
GATHER_API int gather_future_error(const gather_future *f);

/* The task's *result once done; NULL before, and for NULL. The pointer
 * belongs to the application. */
GATHER_API void *gather_future_value(const gather_future *f);

/*
 * Cancels `f`. A task that has not started never runs: its future completes
 * at once with ECANCELED and a NULL value, its done callbacks run on the
 * calling thread before this returns, and the call returns true. A running
 * task cannot be stopped: the call sets the flag gather_cancel_requested()
 * reports to it and returns false. A done future: false, nothing changes.
 * An aggregate (gather_all) that is not done: cancels its children that are
 * not finished, completes with ECANCELED, returns true; false when its last
 * child is completing it at that moment (it is then done an instant later,
 * with that child's outcome). NULL: false.
 */
GATHER_API bool gather_future_cancel(gather_future *f);

/* True when a cancel was requested (gather_future_cancel(), or a
 * GATHER_CANCEL_PENDING shutdown while the task ran) and the future completed
 * with ECANCELED. NULL: false. */
GATHER_API bool gather_future_cancelled(const gather_future *f);

/*
 * Adds a done callback. Callbacks run exactly once each, in the order they
 * were added, on the thread that completes the future (inside a callback the
 * future reports done), or at once on the calling thread when `f` is already
 * done. A callback may call any function of this API.
 *
 * Ownership: `f` is borrowed, `user_data` passed through untouched.
 * Errors:
 *   EINVAL  f or cb is NULL.
 *   ENOMEM  out of memory; the callback was not added and will not run.
 */
GATHER_API int gather_future_on_done(gather_future *f, gather_done_fn cb,
                                     void *user_data);

/* Takes one more reference to `f` and returns it (NULL for NULL). */
GATHER_API gather_future *gather_future_retain(gather_future *f);

/* Gives up one reference; the last one frees the future (never its task's
 * result). Does not cancel the task. NULL: nothing. */
GATHER_API void gather_future_release(gather_future *f);

/* Inside a task: true once its future was cancelled or its pool shut down
 * with GATHER_CANCEL_PENDING. Elsewhere: false. */
GATHER_API bool gather_cancel_requested(void);

/* ------------------------------------------------------------------------ */
/* Continuations                                                            */
/* ------------------------------------------------------------------------ */

/*
 * A continuation: runs once `prev` is done. `prev` is borrowed for the
 * call (done, whatever its code); the return value and *result become the
 * continuation's future's code and value, as for a gather_fn.
 */
typedef int (*gather_then_fn)(gather_future *prev, void *arg, void **result);

/*
 * Once `prev` is done, whatever its code (cancelled included), runs
 * fn(prev, arg, &result) as a task on `pool` (NULL: the default pool), like
 * folly's thenTry. The continuation is queued when prev completes, never
 * run on the completing thread's stack, so a chain of any length runs in
 * constant stack, and a finished link is freed once nothing else holds it.
 *
 * Cancelling *next before fn starts means fn never runs: *next completes at
 * once with ECANCELED, and prev is not touched (not cancelled). When prev
 * completes after `pool` was shut down, *next completes with ESHUTDOWN and
 * fn does not run. The pool counts the continuation as submitted when this
 * is called (and as cancelled when it never runs).
 *
 * Ownership: `prev` is borrowed by the call; the continuation takes its
 * own reference and holds it until fn returns (or until the continuation
 * is freed unrun). When `next` is not NULL, *next receives a new future
 * with one reference owned by the caller; NULL runs it detached. `arg` is
 * passed through untouched. `pool` is borrowed; it may be destroyed while
 * the continuation waits (its memory is kept until prev completes).
 * Errors (*next set to NULL):
 *   EINVAL     prev or fn is NULL.
 *   ENOMEM     out of memory; nothing was made.
 *   ESHUTDOWN  the pool is already shut down at the call (and the caller is
 *              not one of its tasks), or was created before a fork.
 *   EAGAIN     the default pool could not start its threads.
 */
GATHER_API int gather_then(gather_future *prev, gather_pool *pool,
                           gather_then_fn fn, void *arg, gather_future **next);

/* ------------------------------------------------------------------------ */
/* Task options                                                             */
/* ------------------------------------------------------------------------ */

/* The task is expected to block (tokio's spawn_blocking): on an elastic
 * pool it starts on an idle or a spare thread at once and does not count
 * against `threads` while it runs. On other pools: an ordinary task. */
#define GATHER_TASK_BLOCKING 1u

/* Priorities of tasks submitted from outside the pool. */
#define GATHER_PRIORITY_LOW (-1)
#define GATHER_PRIORITY_NORMAL 0
#define GATHER_PRIORITY_HIGH 1

/* Options of one task. Zero-initialise, then set what you need; fields may
 * be added at the end in later versions. */
typedef struct gather_task_options {
    unsigned flags;                    /* GATHER_TASK_BLOCKING, or 0 */
    int priority;                      /* GATHER_PRIORITY_* */
    void (*value_free)(void *value);   /* frees a value nobody took */
    void (*arg_free)(void *arg);       /* frees arg once the task is over */
} gather_task_options;

/*
 * gather_submit() with options (opts NULL or zero-initialised: exactly
 * gather_submit()).
 *
 *   flags GATHER_TASK_BLOCKING: see above. Also from inside a task of the
 *     same pool, the task goes to the pool's queue, not the caller's deque.
 *   priority: among tasks submitted from outside the pool that wait to
 *     start, every higher-priority task starts before any lower one; equal
 *     priorities start in submission order. Subtasks submitted from a
 *     worker of the same pool keep the work-stealing order (no priority).
 *   value_free: when the future's last reference is released (for a
 *     detached task: when it completes), a non-NULL value that nobody took
 *     with gather_future_take() is passed to value_free, success and
 *     failure payloads alike, exactly once.
 *   arg_free: called exactly once with `arg` when the task is over: after
 *     it returned, or when it was cancelled (or cancelled by a
 *     GATHER_CANCEL_PENDING shutdown) without running. It runs on the
 *     thread that ends the task, before the future is marked done, so a
 *     waiter may free what `arg` pointed into once its wait returns.
 *
 * Ownership: as gather_submit(); on success, arg belongs to the task when
 * arg_free is set. On error arg_free is not called: the caller still owns
 * `arg`. *future (when future is not NULL) is set to NULL on error.
 * Errors:
 *   EINVAL     fn is NULL, unknown flag bits, or a priority other than
 *              GATHER_PRIORITY_LOW, _NORMAL or _HIGH.
 *   ESHUTDOWN, ENOMEM, EAGAIN  as gather_submit().
 */
GATHER_API int gather_submit_ex(gather_pool *pool, gather_fn fn, void *arg,
                                const gather_task_options *opts,
                                gather_future **future);

/*
 * Takes the value of a done future: returns it and makes the caller its
 * owner, so that the task's value_free will not be called on it. A second
 * take, or a take before the future is done, returns NULL (so does NULL).
 * gather_future_value() and the waits still read the value after a take;
 * reading does not take it. Futures made by other calls have no
 * value_free: a take only marks their value taken.
 */
GATHER_API void *gather_future_take(gather_future *f);

/* ------------------------------------------------------------------------ */
/* Gathering                                                                */
/* ------------------------------------------------------------------------ */

typedef struct gather_result {
    int error;   /* 0, the task's code, ECANCELED, or EINPROGRESS (not done) */
    void *value; /* the task's *result (NULL while EINPROGRESS) */
} gather_result;

/*
 * asyncio.gather(): waits for futures[0..n). results[i] belongs to
 * futures[i] whatever order they finish in (results may be NULL).
 *
 *   flags 0: returns 0 once every future succeeded; as soon as one fails,
 *     returns that failure's code at once, without waiting for the rest, and
 *     fills results with what is known then (EINPROGRESS for futures still
 *     running). The other tasks are not cancelled.
 *   GATHER_RETURN_ERRORS: waits for every future and returns 0; failures are
 *     only reported in results[i].error.
 *   GATHER_CANCEL_ON_ERROR: on the first failure, cancels every other future
 *     of the list that is not done, then returns as with flags 0.
 *   GATHER_WAIT_ALL: returns only once every future is done (results then
 *     hold no EINPROGRESS); the code is still the first failure's. With
 *     GATHER_CANCEL_ON_ERROR: asyncio's TaskGroup (cancel the others at the
 *     first failure, wait for all, return the first failure).
 *
 * A cancelled future counts as a failure with ECANCELED. The same future may
 * appear more than once. n == 0 returns 0 at once.
 * Ownership: `futures` and its futures are borrowed (no reference is taken or
 * released); `results` is written by the caller's thread only, before return.
 * Errors:
 *   EINVAL   futures is NULL with n > 0, an entry is NULL, unknown flag bits,
 *            RETURN_ERRORS with CANCEL_ON_ERROR, or n * sizeof(gather_result)
 *            overflows.
 *   EDEADLK  a task lists its own future (or one running beneath it).
 *   ENOMEM   a wait record could not be allocated (nothing was waited for).
 *   other    the first failure's code, without GATHER_RETURN_ERRORS.
 */
GATHER_API GATHER_READS(1, 2)
int gather_futures(gather_future *const futures[], size_t n,
                              gather_result *results, unsigned flags);

/*
 * gather_futures() with a deadline, as asyncio.wait_for(asyncio.gather(...),
 * timeout): when the futures have not all finished (or, without
 * GATHER_RETURN_ERRORS, none has failed; with GATHER_WAIT_ALL, not all are
 * done) within timeout_ns, returns ETIMEDOUT and fills results with the
 * snapshot at that moment (EINPROGRESS for futures not done). Without
 * GATHER_CANCEL_ON_ERROR the tasks keep running; with it a timeout counts
 * as a failure: every future of the list that is not done is cancelled
 * before the call returns, and the snapshot is taken after the cancels
 * (futures cancelled before they started read ECANCELED, running ones
 * EINPROGRESS). A timeout of 0 only looks (it neither sleeps nor
 * allocates); GATHER_FOREVER makes it gather_futures(). With
 * GATHER_WAIT_ALL | GATHER_CANCEL_ON_ERROR it still returns ETIMEDOUT at
 * the deadline, with the others cancelled.
 *
 * Ownership and errors: as gather_futures(), plus ETIMEDOUT.
 */
GATHER_API GATHER_READS(1, 2)
int gather_futures_for(gather_future *const futures[], size_t n,
                       gather_result *results, unsigned flags,
                       uint64_t timeout_ns);

/*
 * gather_futures() as a future, so that gathers compose and nest: the
 * aggregate completes when gather_futures() would return, with the error
 * gather_futures() would return, and its value is a gather_result array of n
 * entries (NULL when n == 0): a snapshot taken when it completes (entries of
 * children still running stay EINPROGRESS), owned by the aggregate and freed
 * with it. Cancelling the aggregate cancels every child not finished and
 * completes it at once with ECANCELED; a child's cancellation alone does not
 * cancel the aggregate. With GATHER_WAIT_ALL it completes only when every
 * child is done (its snapshot has no EINPROGRESS), with the first failure's
 * code; cancelling it still completes it at once.
 *
 * Ownership: `futures` is borrowed; the aggregate holds a reference to each
 * child until it completes. *aggregate receives a new future with one
 * reference owned by the caller.
 * Errors:
 *   EINVAL  aggregate is NULL, futures is NULL with n > 0, a NULL entry,
 *           bad flags, or an overflowing n.
 *   ENOMEM  out of memory; nothing was created, no reference taken.
 */
GATHER_API GATHER_READS(1, 2)
int gather_all(gather_future *const futures[], size_t n,
                          unsigned flags, gather_future **aggregate);

/*
 * Runs fn(args[i]) for each i on `pool` (NULL: default) as its tasks and
 * gathers them with gather_futures()' semantics into results (may be
 * NULL): results[i] belongs to args[i]. The pool's stats count one task per
 * job. With GATHER_CANCEL_ON_ERROR, jobs not started at the first failure
 * never run and report ECANCELED; running ones see gather_cancel_requested().
 *
 * Scheduling: jobs are handed out in chunks of consecutive indices, split
 * in halves while they are long (about n / (16 * threads) jobs, at most
 * 1024) and whenever a thread of the pool is idle, so a large map costs a
 * few instructions per job. Jobs of one chunk run in order on one thread: a
 * job that blocks (say, waiting for another job of the same call) can hold
 * back the jobs after it in its chunk while every other thread is busy.
 * With n <= 32 * threads every job is its own chunk.
 *
 * Ownership: the `args` array is copied (it may be freed once the call
 * returns); each args[i] is passed through untouched. Without
 * GATHER_RETURN_ERRORS the call returns at the first failure while the other
 * jobs keep running (as in gather_futures), and nothing is left to wait for
 * them: whatever args[i] points to must outlive those jobs. Use
 * GATHER_RETURN_ERRORS or GATHER_WAIT_ALL when it does not (for example,
 * argument structs on the caller's stack): with GATHER_WAIT_ALL the call
 * returns the first failure's code once no job runs or will run (with
 * GATHER_CANCEL_ON_ERROR the jobs not started by then read ECANCELED).
 * Every code a job returns is kept as-is, INT_MIN included.
 * Errors:
 *   EINVAL     fn NULL, args NULL with n > 0, bad flags, overflowing n.
 *   ESHUTDOWN  the pool is shut down (except from a task of that pool), or
 *              was created before this (forked) process was forked; no job
 *              ran, every entry reports ESHUTDOWN.
 *   ENOMEM     out of memory before any job was submitted; no job ran,
 *              every entry reports ENOMEM. (Memory needed later, to split
 *              chunks, is optional: without it a chunk runs whole.)
 *   EAGAIN     the default pool could not start its threads.
 *   other      the first failure's code, without GATHER_RETURN_ERRORS.
 */
GATHER_API GATHER_READS(3, 4)
int gather_map(gather_pool *pool, gather_fn fn,
                          void *const args[], size_t n,
                          gather_result *results, unsigned flags);

/*
 * Waits until at least one of futures[0..n) is done and stores the lowest
 * done index in *index.
 *
 * Ownership: everything borrowed.
 * Errors:
 *   EINVAL     futures or index NULL, n == 0, a NULL entry, overflowing n.
 *   ETIMEDOUT  none was done within timeout_ns (*index untouched).
 *   EDEADLK    a task lists its own future (or one running beneath it) and no
 *              entry is done.
 *   ENOMEM     a wait record could not be allocated.
 */
GATHER_API GATHER_READS(1, 2)
int gather_wait_any(gather_future *const futures[], size_t n,
                               uint64_t timeout_ns, size_t *index);

/* ------------------------------------------------------------------------ */
/* Completion order                                                         */
/* ------------------------------------------------------------------------ */

/*
 * A completion queue hands futures out in the order they finish, like
 * asyncio.as_completed(), Java's ExecutorCompletionService or tokio's
 * JoinSet, and offers a file descriptor that an event loop can watch.
 * Since 0.2.
 */
typedef struct gather_cq gather_cq; /* opaque */

/*
 * Creates an empty completion queue.
 *
 * Ownership: *cq receives a new queue owned by the caller, who frees it with
 * gather_cq_destroy(). On error *cq is set to NULL (when cq is not NULL).
 * Errors:
 *   EINVAL  cq is NULL.
 *   ENOMEM  out of memory; nothing was created.
 */
GATHER_API int gather_cq_create(gather_cq **cq);

/*
 * Adds `f` to the queue: once it is done (at once when it already is), it
 * waits in the queue to be handed out by gather_cq_next(), in completion
 * order. Adding the same future twice hands it out twice. Adding does not
 * change the task (it keeps running; releasing the caller's reference does
 * not cancel it).
 *
 * Ownership: `cq` is borrowed. The queue takes a reference of its own to
 * `f` (the caller keeps its reference), handed to whoever gets the future
 * from gather_cq_next(). `user_data` is passed through untouched.
 * Errors:
 *   EINVAL  cq or f is NULL.
 *   ENOMEM  out of memory; nothing was added and no reference taken.
 */
GATHER_API int gather_cq_add(gather_cq *cq, gather_future *f, void *user_data);

/*
 * Hands out the added future that finished first among those not handed
 * out yet, waiting until one is done if none is: *f receives it and
 * *user_data (when user_data is not NULL) the pointer given to
 * gather_cq_add(). Every added future is handed out once, also when several
 * threads call this at once. It waits as gather_future_wait() does: on a
 * pool thread it runs other tasks of that pool meanwhile (so a one-thread
 * pool's worker may wait for tasks queued on its own pool), elsewhere it
 * sleeps. A timeout of 0 only looks; GATHER_FOREVER never expires. So
 * `while (gather_cq_next(cq, GATHER_FOREVER, &f, &ud) == 0)` visits every
 * added future in completion order and ends. Unlike gather_future_wait()
 * it does not check for EDEADLK: a task that waits on a queue holding its
 * own future (or one running beneath it) waits until another one is ready,
 * or until its timeout.
 *
 * Ownership: `cq` is borrowed. *f receives the reference the queue held:
 * the caller owns it and gives it up with gather_future_release().
 * Errors (*f and *user_data are left untouched):
 *   EINVAL     cq or f is NULL.
 *   ENOENT     every added future has been handed out (at once, without
 *              waiting); also when another thread takes the last one while
 *              this call waits.
 *   ETIMEDOUT  none was ready within timeout_ns (a task run while helping
 *              may keep the call past it).
 *   ENOMEM, EAGAIN  a pool thread's or a sleeping thread's condition
 *              variable could not be made to wait on (pthreads allows it;
 *              glibc never does); nothing was handed out.
 * Visibility: everything the task wrote happens-before the return.
 */
GATHER_API int gather_cq_next(gather_cq *cq, uint64_t timeout_ns,
                              gather_future **f, void **user_data);

/*
 * A file descriptor that polls readable (POLLIN, EPOLLIN) exactly while a
 * finished future waits in the queue to be handed out: it becomes readable
 * when a future completes into an empty queue (at once, when this call
 * makes it while futures are ready), and stops being readable when
 * gather_cq_next() hands out the last ready one. An event loop (epoll,
 * poll, libuv's uv_poll_t, GLib) watches it and, when it fires, calls
 * gather_cq_next(cq, 0, ...) until ETIMEDOUT or ENOENT, never blocking the
 * loop. Level-triggered use is the simple one; with edge-triggered epoll,
 * drain until ETIMEDOUT each time. Made on the first call (a queue whose
 * descriptor is never asked for makes no system call for it); later calls
 * return the same one.
 *
 * Ownership: the descriptor belongs to the queue and is closed by
 * gather_cq_destroy(): never read, write or close it (only poll it).
 * Errors:
 *   EINVAL          cq or fd is NULL.
 *   EMFILE, ENFILE  no descriptor could be made (process or system limit);
 *   ENOMEM          or no memory for it. The queue still works without one,
 *                   and a later call tries again.
 */
GATHER_API int gather_cq_fd(gather_cq *cq, int *fd);

/*
 * Destroys the queue: gives up the references it holds to futures not yet
 * handed out (those tasks keep running; a future still pending is released
 * when it completes) and closes its descriptor. Futures already handed out
 * are the callers'.
 *
 * Ownership: takes `cq`; it is invalid once this returns 0.
 * Errors:
 *   EINVAL  cq is NULL.
 *   EBUSY   a thread is inside gather_cq_next() on it (also this thread,
 *           from a task run while its gather_cq_next() helps); nothing was
 *           done.
 */
GATHER_API int gather_cq_destroy(gather_cq *cq);

/* ------------------------------------------------------------------------ */
/* Inspection and hooks                                                     */
/* ------------------------------------------------------------------------ */

typedef struct gather_pool_stats {
    uint64_t submitted; /* tasks accepted */
    uint64_t completed; /* tasks that finished running (any code) */
    uint64_t cancelled; /* tasks cancelled before they ran */
    uint64_t stolen;    /* tasks a worker took from another worker's deque */
    uint64_t threads;   /* pool threads alive now, spares included */
    uint64_t threads_peak;   /* most pool threads alive at once */
    uint64_t spares_started; /* threads started beyond `threads` because
                                tasks blocked (elastic pools), or for a
                                wait nested too deep to run what it waits
                                for (any pool, see gather_future_wait) */
} gather_pool_stats;

/*
 * Reads the pool's counters (NULL: the default pool). A task is counted in
 * completed or cancelled before its future is marked done, so after a wait
 * the counters include it. Counters are read one by one, not as a snapshot.
 * Errors: EINVAL stats is NULL; ENOMEM/EAGAIN creating the default pool;
 *   ESHUTDOWN in a forked child, for a pool created before the fork.
 */
GATHER_API int gather_pool_stats_get(const gather_pool *pool,
                                     gather_pool_stats *stats);

/*
 * Routes every allocation of the library through malloc_fn/free_fn.
 * (NULL, NULL) restores malloc and free. Not thread-safe: call it before any
 * other function of the library.
 * Errors:
 *   EINVAL  exactly one of the pair is NULL.
 *   EBUSY   a pool exists or has existed (blocks are never freed with
 *           another allocator than the one that made them).
 */
GATHER_API int gather_replace_allocator(void *(*malloc_fn)(size_t),
                                        void (*free_fn)(void *));

/* "MAJOR.MINOR.PATCH", static storage. */
GATHER_API const char *gather_version(void);

#ifdef __cplusplus
}
#endif

#endif /* GATHER_H */
