/* SPDX-License-Identifier: MIT */
/*
 * map.c - gather_map(): fn(args[i]) for every i, gathered in order.
 *
 * DESIGN: one task per job would cost a task block, a future, a listener
 * and an injection-queue round trip per job (SPEC.md only asks for the
 * semantics of submitting each job and gathering the futures). Instead the
 * call submits one *chunk* task for the range [0, n); a chunk splits off
 * the upper half of its range as a new chunk while the range is longer
 * than the grain, and also, one job at a time, while the pool has sleeping
 * threads that could take it (lazy binary splitting, as in rayon and TBB's
 * auto partitioner), then runs its jobs in order. Thieves take the oldest,
 * largest halves. Each job's result goes to its own slot; the last chunk to
 * finish, or (without GATHER_RETURN_ERRORS) the first failing job,
 * completes the run's internal future, which the caller waits for as
 * gather_futures() would, then reads the slots.
 *
 * What users see stays that of one task per job: the pool's stats count
 * jobs (chunks are "weightless" tasks, pool.c); a job that has not started
 * when GATHER_CANCEL_ON_ERROR trips, or when a GATHER_CANCEL_PENDING
 * shutdown runs, never runs and reports ECANCELED; running jobs see
 * gather_cancel_requested(); after an early return (a failure without
 * GATHER_RETURN_ERRORS) the other jobs keep running, writing only to the
 * run's own block, which lives until the caller and every chunk have let
 * go of it (the internal future's reference count). The args array is
 * copied, so it may be freed when the call returns; what args[i] points to
 * must outlive its job, as with gather_submit().
 *
 * The difference: jobs of one chunk run one after another on one thread,
 * so a job that blocks delays the jobs after it in its chunk while every
 * other thread of the pool is busy (with an idle thread, the chunk splits
 * at the next job boundary). Chunks are at most `grain` jobs long (about
 * n / (16 * threads), at most MAP_GRAIN_MAX), and a job that waits helps
 * like any task.
 */
#include "internal.h"

#include <limits.h>
#include <string.h>

/* A job's slot: PENDING, then either RUNNING once its chunk claimed it
 * and DONE with its code (any int), or CANCELLED in one step (so a job
 * that never runs never reads as running). */
enum { SLOT_PENDING = 0, SLOT_RUNNING = 1, SLOT_DONE = 2, SLOT_CANCELLED = 3 };

/* Longest chunk split eagerly; beyond, only idle threads make it split. */
#define MAP_GRAIN_MAX 1024
/* Chunks per thread aimed at by the eager split. */
#define MAP_CHUNKS_PER_THREAD 16

typedef struct map_slot {
    /* SLOT_*. DONE is stored with release after `error` and `value`;
     * readers acquire it before reading them. */
    _Atomic int state;
    int error;
    void *value;
} map_slot;

typedef struct map_run {
    /* first: the run is freed through its future's last reference (the
     * caller's, and one per chunk task not finished). */
    gather_future done;
    gather_pool *pool;
    gather_fn fn;
    unsigned flags;
    size_t n;
    size_t grain;
    _Atomic size_t remaining; /* jobs not yet finished or cancelled */
    /* The first job to fail, or SIZE_MAX (set without RETURN_ERRORS only;
     * with CANCEL_ON_ERROR, set means the jobs not started are cancelled). */
    _Atomic size_t failed_at;
    void **args;              /* n, copied */
    map_slot *slots;          /* n */
} map_run;

typedef struct map_chunk {
    map_run *run;
    size_t begin, end;
} map_chunk;

/* Completes the run's future once: the caller may return. The claim is a
 * plain arbitration between finishers (relaxed); publishing is the
 * completion's release. The finisher holds a reference. */
static void run_finish(map_run *m)
{
    uintptr_t old = atomic_fetch_or_explicit(&m->done.state, GATHER__CLAIMED,
                                             memory_order_relaxed);
    if (!(old & GATHER__CLAIMED))
        gather__future_complete(&m->done, 0, NULL, false);
}

/* Submits [begin, end) as a new chunk: 0, ENOMEM or ESHUTDOWN. */
static int spawn_chunk(map_run *m, size_t begin, size_t end)
{
    map_chunk *c = gather__malloc(sizeof *c);
    if (c == NULL)
        return ENOMEM;
    c->run = m;
    c->begin = begin;
    c->end = end;
    gather_future_retain(&m->done); /* the chunk's reference */
    int rc = gather__submit_chunk(m->pool, gather__map_chunk_task, c);
    if (rc != 0) {
        /* Not the last reference: the caller, or the chunk splitting, has
         * one. relaxed: nothing to publish, nobody freed by it. */
        atomic_fetch_sub_explicit(&m->done.state, GATHER__REF_ONE,
                                  memory_order_relaxed);
        gather__free(c);
    }
    return rc;
}

/* CANCEL_ON_ERROR and a job failed: the jobs not started are cancelled. */
static bool run_cancelled(const map_run *m)
{
    /* relaxed: a polled flag; a job that starts just before it turns only
     * runs as it would have with one task per job. */
    return (m->flags & GATHER_CANCEL_ON_ERROR) &&
           atomic_load_explicit(&((map_run *)m)->failed_at, memory_order_relaxed) != SIZE_MAX;
}

/* Should the jobs not started be cancelled? */
static bool jobs_stopping(const map_run *m)
{
    return run_cancelled(m) || gather__pool_cancelling(m->pool);
}

/* CANCEL_ON_ERROR: a job starts only if it was not cancelled, and it is
 * cancelled only if it has not started: one CAS on the slot each way, so
 * no reader ever sees a cancelled job as running. */
static bool claim_slot(map_slot *s)
{
    int expected = SLOT_PENDING;
    /* relaxed: arbitration only; the result is published by publish(). */
    return atomic_compare_exchange_strong_explicit(&s->state, &expected,
                                                   SLOT_RUNNING,
                                                   memory_order_relaxed,
                                                   memory_order_relaxed);
}

/* The slot's owner (its claimer, or its chunk without CANCEL_ON_ERROR)
 * publishes the job's outcome. */
static void publish(map_slot *s, int error, void *value)
{
    s->error = error;
    s->value = value;
    /* release: the outcome, and the job's writes, to the acquire reader. */
    atomic_store_explicit(&s->state, SLOT_DONE, memory_order_release);
}

static bool cancel_slot(map_slot *s)
{
    int expected = SLOT_PENDING;
    /* release: like a job's result, for the acquire reader. */
    return atomic_compare_exchange_strong_explicit(&s->state, &expected,
                                                   SLOT_CANCELLED,
                                                   memory_order_release,
                                                   memory_order_relaxed);
}

static void job_failed(map_run *m, size_t i)
{
    if (m->flags & GATHER_RETURN_ERRORS)
        return;
    /* relaxed: the job's code was published with its slot (release); the
     * caller reads it with acquire after the run's completion. */
    size_t none = SIZE_MAX;
    atomic_compare_exchange_strong_explicit(&m->failed_at, &none, i,
                                            memory_order_relaxed,
                                            memory_order_relaxed);
    if (!(m->flags & GATHER_WAIT_ALL))
        run_finish(m); /* fail-fast; with WAIT_ALL the last chunk does */
}

/* Split [begin, *end) while it is long, or while a thread sleeps: the
 * upper halves go to new chunks, *end shrinks. */
static void split_chunk(map_run *m, size_t begin, size_t *end)
{
    while (*end - begin > 1 &&
           (*end - begin > m->grain || gather__pool_has_sleepers(m->pool))) {
        size_t mid = begin + (*end - begin) / 2;
        if (spawn_chunk(m, mid, *end) != 0)
            return; /* out of memory: run it all here */
        *end = mid;
    }
}

int gather__map_chunk_task(void *arg, void **result)
{
    map_chunk *c = arg;
    *result = NULL;
    map_run *m = c->run;
    bool claim = (m->flags & GATHER_CANCEL_ON_ERROR) != 0;
    size_t ran = 0, cancelled = 0;
    size_t end = c->end;
    for (size_t i = c->begin; i < end; i++) {
        split_chunk(m, i, &end);
        map_slot *s = &m->slots[i];
        if (jobs_stopping(m)) {
            if (!claim) {
                /* release: as cancel_slot (nobody else writes this slot). */
                atomic_store_explicit(&s->state, SLOT_CANCELLED, memory_order_release);
                cancelled++;
            } else if (cancel_slot(s)) {
                cancelled++; /* else the caller cancelled (and counted) it */
            }
            continue;
        }
        if (claim && !claim_slot(s))
            continue; /* the caller cancelled it (and counted it) */
        void *value = NULL;
        int rc = m->fn(m->args[i], &value);
        publish(s, rc, value);
        ran++;
        if (rc != 0)
            job_failed(m, i);
    }
    /* Counted before the run can complete (SPEC.md: before DONE). */
    gather__pool_count_jobs(m->pool, 0, ran, cancelled);
    size_t mine = end - c->begin;
    /* acq_rel: release our slots; the last one acquires every chunk's. */
    if (atomic_fetch_sub_explicit(&m->remaining, mine, memory_order_acq_rel) == mine)
        run_finish(m);
    gather__free(c);
    gather_future_release(&m->done);
    return 0;
}

bool gather__map_cancel_requested(const void *arg)
{
    const map_chunk *c = arg;
    return run_cancelled(c->run);
}

/* A chunk's jobs see a cancel of their run (GATHER_CANCEL_ON_ERROR). */
static bool chunk_cancel_requested(const gather_future *f)
{
    return gather__map_cancel_requested(f->arg);
}

/* Chunks are task blocks without hooks; the run's future is internal: it
 * is never handed out, so nothing cancels it. */
const gather__future_ops gather__chunk_ops = {
    .is_task = true,
    .destroy = gather__task_free,
    .cancel_requested = chunk_cancel_requested,
};

static bool map_never_cancelled(gather_future *f)
{
    (void)f;
    return false;
}

static void map_destroy(gather_future *f)
{
    gather__free(f); /* the run: its future comes first */
}

const gather__future_ops gather__map_ops = {
    .cancel = map_never_cancelled,
    .destroy = map_destroy,
};

/* ---- the caller's side -------------------------------------------------- */

static map_run *run_alloc(size_t n)
{
    size_t per = sizeof(void *) + sizeof(map_slot);
    size_t size;
    if (!gather__size(n, per, sizeof(map_run), &size))
        return NULL;
    map_run *m = gather__malloc(size);
    if (m == NULL)
        return NULL;
    m->slots = (map_slot *)(void *)(m + 1);
    m->args = (void **)(void *)&m->slots[n];
    return m;
}

static size_t grain_for(size_t n, size_t threads)
{
    size_t g = n / (threads * MAP_CHUNKS_PER_THREAD);
    if (g < 1)
        g = 1;
    return g < MAP_GRAIN_MAX ? g : MAP_GRAIN_MAX;
}

/* CANCEL_ON_ERROR after a failure: cancel the jobs that have not started
 * (they never will), as gather_futures() cancels pending futures. */
static void cancel_pending(map_run *m)
{
    size_t cancelled = 0;
    for (size_t i = 0; i < m->n; i++)
        if (cancel_slot(&m->slots[i]))
            cancelled++;
    gather__pool_count_jobs(m->pool, 0, 0, cancelled);
}

static gather_result read_slot(map_slot *s)
{
    gather_result r = {EINPROGRESS, NULL};
    /* acquire: pairs with publish()'s release store. */
    int state = atomic_load_explicit(&s->state, memory_order_acquire);
    if (state == SLOT_DONE) {
        r.error = s->error;
        r.value = s->value;
    } else if (state == SLOT_CANCELLED) {
        r.error = ECANCELED;
    }
    return r;
}

static int map_collect(map_run *m, gather_result *results)
{
    bool errors_in_results = (m->flags & GATHER_RETURN_ERRORS) != 0;
    if (run_cancelled(m))
        cancel_pending(m);
    int code = 0;
    size_t first = atomic_load_explicit(&m->failed_at, memory_order_relaxed);
    if ((m->flags & (GATHER_CANCEL_ON_ERROR | GATHER_WAIT_ALL)) && first != SIZE_MAX)
        code = read_slot(&m->slots[first]).error; /* the first failure seen */
    for (size_t i = 0; i < m->n; i++) {
        gather_result r = read_slot(&m->slots[i]);
        if (code == 0 && !errors_in_results && r.error != 0 &&
            r.error != EINPROGRESS)
            code = r.error; /* the lowest index failed when we look */
        if (results != NULL)
            results[i] = r;
        else if (code != 0 || errors_in_results)
            break;
    }
    return code;
}

static int map_unsubmitted(gather_result *results, size_t n, int why)
{
    if (results != NULL)
        for (size_t i = 0; i < n; i++) {
            results[i].error = why;
            results[i].value = NULL;
        }
    return why;
}

int gather_map(gather_pool *pool, gather_fn fn, void *const args[], size_t n,
               gather_result *results, unsigned flags)
{
    size_t bytes;
    int rc = gather__check_flags(flags);
    if (rc != 0)
        return rc;
    if (fn == NULL || (n > 0 && args == NULL) ||
        !gather__size(n, sizeof(gather_result), 0, &bytes))
        return EINVAL;
    if (n == 0)
        return 0;
    gather_pool *p = gather__pool_resolve(pool, &rc);
    if (p == NULL)
        return map_unsubmitted(results, n, rc);
    map_run *m = run_alloc(n);
    if (m == NULL)
        return map_unsubmitted(results, n, ENOMEM);
    /* Reserved now, so the wait below cannot fail for memory. */
    gather__waitset *ws = gather__waitset_reserve(1);
    if (ws == NULL) {
        gather__free(m);
        return map_unsubmitted(results, n, ENOMEM);
    }
    gather__future_init(&m->done, GATHER__MAP, 1); /* the caller's */
    m->pool = p;
    m->fn = fn;
    m->flags = flags;
    m->n = n;
    m->grain = grain_for(n, gather_pool_threads(p));
    atomic_init(&m->remaining, n);
    atomic_init(&m->failed_at, SIZE_MAX);
    memcpy(m->args, args, n * sizeof *args);
    for (size_t i = 0; i < n; i++) {
        atomic_init(&m->slots[i].state, SLOT_PENDING);
        m->slots[i].error = 0;
        m->slots[i].value = NULL;
    }
    /* The one submission that can fail visibly: after it, splits that
     * cannot be made are run in place. */
    rc = spawn_chunk(m, 0, n);
    if (rc != 0) {
        gather__waitset_unreserve(ws);
        gather_future_release(&m->done);
        return map_unsubmitted(results, n, rc);
    }
    gather__pool_count_jobs(p, n, 0, 0);
    gather_future *done = &m->done;
    (void)gather__wait(&done, 1, GATHER__WAIT_ALL, NULL, NULL, ws);
    rc = map_collect(m, results);
    gather_future_release(&m->done);
    return rc;
}
