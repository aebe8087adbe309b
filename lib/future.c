/*
 * future.c - the future: one word of state, a lock-free list of listeners,
 * completion, cancellation, done callbacks and reference counts.
 *
 * DESIGN: a task and its future are one block (allocated by gather_submit).
 * Its state word packs a pointer to the newest listener with three flags
 * (internal.h): CLAIMED, DONE, CANCEL_REQ. Every transition is one atomic
 * read-modify-write on that word, so they are totally ordered:
 *
 *   0 (pending) --worker fetch_or CLAIMED--> CLAIMED (running)
 *   0 (pending) --cancel CAS--> CLAIMED|CANCEL_REQ (being cancelled)
 *   CLAIMED --cancel CAS--> CLAIMED|CANCEL_REQ (running, cancel requested)
 *   CLAIMED[|CANCEL_REQ] --claimer CAS--> DONE|CLAIMED[|CANCEL_REQ], list
 *                                           detached
 *
 * A listener (done callback, waiter entry, aggregate entry) is pushed with a
 * CAS unless the word says DONE; completion swaps the list out in the same
 * CAS that sets DONE, then fires the listeners oldest first. So each listener
 * fires exactly once, after DONE, and one pushed too late sees DONE and is
 * handled by its caller instead. There is no lock in this file.
 *
 * References: the submitter's (when it asked for the future) and the
 * queue's, dropped by the worker after completion. Whoever completes a
 * future holds a reference across the completion (rule: completing may
 * free; read what you need before publishing DONE).
 */
#include "internal.h"

typedef struct callback_node {
    gather__listener listener; /* first: fire() casts back */
    gather_done_fn cb;
    void *user_data;
} callback_node;

void gather__future_init(gather_future *f, uint8_t kind, uint32_t refs)
{
    atomic_init(&f->state, 0);
    atomic_init(&f->refs, refs);
    f->kind = kind;
    f->error = EINPROGRESS;
    f->value = NULL;
    f->fn = NULL;
    f->arg = NULL;
    f->pool = NULL;
    f->next = NULL;
    atomic_init(&f->runner, NULL);
}

uintptr_t gather__future_state(const gather_future *f)
{
    /* acquire: pairs with the acq_rel CAS in gather__future_complete(); a
     * reader that sees DONE sees error, value and the task's writes. */
    return atomic_load_explicit(&((gather_future *)f)->state,
                                memory_order_acquire);
}

static void fire_all(gather__listener *newest, gather_future *f)
{
    gather__listener *oldest = NULL;
    while (newest != NULL) { /* reverse: the list was pushed newest first */
        gather__listener *next = newest->next;
        newest->next = oldest;
        oldest = newest;
        newest = next;
    }
    while (oldest != NULL) {
        gather__listener *next = oldest->next; /* fire() may free it */
        oldest->fire(oldest, f);
        oldest = next;
    }
}

uintptr_t gather__future_complete(gather_future *f, int error, void *value,
                                  bool cancel_req)
{
    f->error = error;
    f->value = value;
    uintptr_t add = GATHER__CLAIMED | GATHER__DONE |
                    (cancel_req ? GATHER__CANCEL_REQ : 0);
    uintptr_t old = atomic_load_explicit(&f->state, memory_order_relaxed);
    uintptr_t next;
    do {
        next = (old & GATHER__FLAGS) | add;
        /* acq_rel: release publishes error/value (and the task's writes) to
         * every acquire reader of DONE; acquire makes the listeners pushed
         * with release (gather__future_listen) readable here. Failure
         * relaxed: the loop retries with the fresh value. */
    } while (!atomic_compare_exchange_weak_explicit(&f->state, &old, next,
                                                    memory_order_acq_rel,
                                                    memory_order_relaxed));
    fire_all((gather__listener *)(old & ~GATHER__FLAGS), f);
    return next;
}

bool gather__future_listen(gather_future *f, gather__listener *l)
{
    uintptr_t old = atomic_load_explicit(&f->state, memory_order_acquire);
    do {
        if (old & GATHER__DONE)
            return false;
        l->next = (gather__listener *)(old & ~GATHER__FLAGS);
        /* acq_rel on success: release publishes *l to the completer.
         * acquire on failure: a DONE seen here makes the result readable
         * by our caller. */
    } while (!atomic_compare_exchange_weak_explicit(
        &f->state, &old, (uintptr_t)l | (old & GATHER__FLAGS),
        memory_order_acq_rel, memory_order_acquire));
    return true;
}

bool gather__future_blocked_by_caller(const gather_future *f)
{
    gather__worker *w = gather__worker_self();
    if (w == NULL || f->kind != GATHER__TASK)
        return false;
    uintptr_t s = gather__future_state(f);
    if ((s & GATHER__DONE) || !(s & GATHER__CLAIMED))
        return false;
    /* relaxed: only this thread ever stores its own worker here, and it did
     * so before running the task, which has not returned (not DONE). */
    return atomic_load_explicit(&((gather_future *)f)->runner,
                                memory_order_relaxed) == (const void *)w;
}

/* ---- public accessors --------------------------------------------------- */

bool gather_future_done(const gather_future *f)
{
    return f != NULL && (gather__future_state(f) & GATHER__DONE) != 0;
}

int gather_future_error(const gather_future *f)
{
    if (f == NULL)
        return EINVAL;
    return (gather__future_state(f) & GATHER__DONE) ? f->error : EINPROGRESS;
}

void *gather_future_value(const gather_future *f)
{
    if (f == NULL)
        return NULL;
    return (gather__future_state(f) & GATHER__DONE) ? f->value : NULL;
}

bool gather_future_cancelled(const gather_future *f)
{
    if (f == NULL)
        return false;
    uintptr_t s = gather__future_state(f);
    return (s & GATHER__DONE) && (s & GATHER__CANCEL_REQ) &&
           f->error == ECANCELED;
}

gather_future *gather_future_retain(gather_future *f)
{
    if (f != NULL) /* relaxed: the caller already holds a reference */
        atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    return f;
}

void gather_future_release(gather_future *f)
{
    if (f == NULL)
        return;
    /* A count of 1 is ours alone: nobody else can retain or release, so the
     * RMW is skipped (acquire: every other holder's release happened-before,
     * so their uses precede the free). Otherwise acq_rel: release orders
     * this holder's uses before the free; acquire (taken by the last holder)
     * orders the free after everyone's uses. An acq_rel RMW, not release +
     * acquire fence: ThreadSanitizer does not model fences. */
    if (atomic_load_explicit(&f->refs, memory_order_acquire) == 1 ||
        atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1) {
        if (f->kind == GATHER__TASK)
            gather__task_free(f); /* recycled on a worker (pool.c) */
        else
            gather__free(f); /* an aggregate: one block */
    }
}

/* ---- cancellation ------------------------------------------------------- */

bool gather_future_cancel(gather_future *f)
{
    if (f == NULL)
        return false;
    if (f->kind == GATHER__AGGREGATE)
        return gather__aggregate_cancel(f);
    uintptr_t old = atomic_load_explicit(&f->state, memory_order_relaxed);
    for (;;) {
        if (old & GATHER__DONE)
            return false;
        if (old & GATHER__CLAIMED) {
            /* Running (or another canceller is finishing it): only flag it.
             * relaxed: the flag is polled; nothing is published with it. */
            if ((old & GATHER__CANCEL_REQ) ||
                atomic_compare_exchange_weak_explicit(
                    &f->state, &old, old | GATHER__CANCEL_REQ,
                    memory_order_relaxed, memory_order_relaxed))
                return false;
            continue;
        }
        /* relaxed: the CAS arbitrates against the worker's claim; the
         * result we publish goes out with the completion's release. */
        if (atomic_compare_exchange_weak_explicit(
                &f->state, &old, old | GATHER__CLAIMED | GATHER__CANCEL_REQ,
                memory_order_relaxed, memory_order_relaxed))
            break;
    }
    /* We own the completion of a task that never ran. The queue still holds
     * its reference, and its worker waits for DONE before dropping it, so
     * f->pool is alive until the completion below. Hold our own reference
     * anyway: a callback may release the caller's. */
    gather_future_retain(f);
    gather__pool_count_cancel(f->pool);
    gather__future_complete(f, ECANCELED, NULL, true);
    gather_future_release(f);
    return true;
}

bool gather_cancel_requested(void)
{
    gather_future *f = gather__current_task();
    if (f == NULL)
        return false;
    /* relaxed: a polled flag (see gather_future_cancel). */
    if (atomic_load_explicit(&f->state, memory_order_relaxed) & GATHER__CANCEL_REQ)
        return true;
    return gather__pool_cancelling(f->pool);
}

/* ---- done callbacks ----------------------------------------------------- */

static void fire_callback(gather__listener *l, gather_future *f)
{
    callback_node *node = (callback_node *)l;
    gather_done_fn cb = node->cb;
    void *user_data = node->user_data;
    gather__free(node); /* before the call: the callback may do anything */
    cb(f, user_data);
}

int gather_future_on_done(gather_future *f, gather_done_fn cb, void *user_data)
{
    if (f == NULL || cb == NULL)
        return EINVAL;
    if (!(gather__future_state(f) & GATHER__DONE)) {
        callback_node *node = gather__malloc(sizeof *node);
        if (node == NULL)
            return ENOMEM;
        node->listener.fire = fire_callback;
        node->cb = cb;
        node->user_data = user_data;
        if (gather__future_listen(f, &node->listener))
            return 0;
        gather__free(node); /* completed meanwhile: run it here */
    }
    cb(f, user_data);
    return 0;
}
