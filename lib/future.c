/* SPDX-License-Identifier: MIT */
/*
 * future.c - the future: one word of state, a lock-free list of listeners,
 * completion, cancellation, done callbacks and reference counts.
 *
 * DESIGN: a task and its future are one block (allocated by gather_submit).
 * Its state word packs four flags (internal.h: CLAIMED, DONE, CANCEL_REQ,
 * LISTENED) with the reference count, so every transition and every
 * reference change is one atomic read-modify-write on that word, totally
 * ordered with the others:
 *
 *   pending --worker fetch_or CLAIMED--> running
 *   pending --cancel CAS CLAIMED|CANCEL_REQ--> being cancelled
 *   running --cancel CAS CANCEL_REQ--> running, cancel requested
 *   claimed --claimer CAS DONE (and, with no listener, -1 reference)--> done
 *
 * Listeners (done callbacks, waiter entries, aggregate entries) live on a
 * second word, a lock-free stack. A listener first sets LISTENED on the
 * state word (unless DONE), then pushes itself unless the completer already
 * closed the list. A completer that sees LISTENED in the CAS that set DONE
 * swaps the list for the closed marker and fires it oldest first; one that
 * does not may drop its reference in that same CAS (the fork-join common
 * case: one RMW to finish a task). Each listener fires exactly once, after
 * DONE; one that comes too late sees DONE or the closed list, and its
 * caller handles the done future itself. There is no lock in this file.
 *
 * References: the submitter's (when it asked for the future) and the
 * queue's, given up by the worker with the completion. Whoever completes a
 * future holds a reference across the completion (rule: completing may
 * free; read what you need before publishing DONE).
 */
#include "internal.h"

typedef struct callback_node {
    gather__listener listener; /* first: fire() casts back */
    gather_done_fn cb;
    void *user_data;
} callback_node;

gather__listener gather__listeners_closed;

void gather__future_init(gather_future *f, uint8_t kind, uint32_t refs)
{
    atomic_init(&f->state, (uintptr_t)refs << GATHER__REF_SHIFT);
    atomic_init(&f->listeners, NULL);
    f->kind = kind;
    f->lane = GATHER__LANE_NORMAL;
    f->generation = (uint16_t)atomic_load_explicit(&gather__fork_generation,
                                                   memory_order_relaxed);
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
    /* acquire: pairs with the acq_rel CAS in publish_done(); a reader that
     * sees DONE sees error, value and the task's writes. */
    return atomic_load_explicit(&((gather_future *)f)->state,
                                memory_order_acquire);
}

static void free_future(gather_future *f)
{
    gather__ops(f)->destroy(f);
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

/* Publishes the result. Without LISTENED it also subtracts `drop` from the
 * count, in the same CAS. Returns the state before. */
static uintptr_t publish_done(gather_future *f, int error, void *value,
                              bool cancel_req, uintptr_t drop)
{
    f->error = error;
    f->value = value;
    uintptr_t add = GATHER__CLAIMED | GATHER__DONE |
                    (cancel_req ? GATHER__CANCEL_REQ : 0);
    uintptr_t old = atomic_load_explicit(&f->state, memory_order_relaxed);
    uintptr_t next;
    do {
        next = (old | add) - ((old & GATHER__LISTENED) ? 0 : drop);
        /* acq_rel: release publishes error/value (and the task's writes) to
         * every acquire reader of DONE; acquire orders a free that follows
         * after the other holders' releases. Failure relaxed: retried. */
    } while (!atomic_compare_exchange_weak_explicit(&f->state, &old, next,
                                                    memory_order_acq_rel,
                                                    memory_order_relaxed));
    return old;
}

/*
 * Firing without recursion. A listener may complete another future (an
 * aggregate, a continuation refused by a shut-down pool, a callback that
 * cancels), whose listeners may complete another, and so on: a chain of a
 * million would need a million frames. Up to FIRE_DEPTH_MAX nested fires
 * run at once on the completing thread (so a callback that cancels a
 * pending task still sees that task's callbacks done when the cancel
 * returns, as SPEC.md asks, for any reasonable nesting); deeper ones are
 * queued on the thread, each future holding a reference, and the outermost
 * fire drains the queue in a loop. The list is taken from the future only
 * when its turn comes: a listener added meanwhile lands on the open list
 * and fires with it.
 */
#define FIRE_DEPTH_MAX 32

static GATHER_TLS unsigned tls_fire_depth;
static GATHER_TLS gather_future *tls_deferred_head, *tls_deferred_tail;

static void take_and_fire(gather_future *f)
{
    /* acq_rel: acquire reads the listeners pushed with release; release
     * lets a late listener that sees the closed marker read the result. */
    gather__listener *l = atomic_exchange_explicit(
        &f->listeners, &gather__listeners_closed, memory_order_acq_rel);
    fire_all(l, f);
}

static void close_and_fire(gather_future *f)
{
    if (tls_fire_depth >= FIRE_DEPTH_MAX) {
        /* f is DONE, so its `fn` is no longer read: it links the queue. */
        gather_future_retain(f);
        f->deferred = NULL;
        if (tls_deferred_tail != NULL)
            tls_deferred_tail->deferred = f;
        else
            tls_deferred_head = f;
        tls_deferred_tail = f;
        return;
    }
    tls_fire_depth++;
    take_and_fire(f);
    if (tls_fire_depth == 1) {
        /* The outermost fire: run what deeper ones queued (and what those
         * queue in turn) at depth 1. */
        gather_future *g;
        while ((g = tls_deferred_head) != NULL) {
            tls_deferred_head = g->deferred;
            if (tls_deferred_head == NULL)
                tls_deferred_tail = NULL;
            take_and_fire(g);
            gather_future_release(g);
        }
    }
    tls_fire_depth--;
}

_Atomic uint64_t gather__failures;

/* After a failure is published (DONE), for waiters' cheap checks (wait.c).
 * release: a waiter that reads the new count (acquire) sees DONE. Only
 * failures pay for this shared line. */
static void count_failure(int error)
{
    if (error != 0)
        atomic_fetch_add_explicit(&gather__failures, 1, memory_order_release);
}

void gather__future_complete(gather_future *f, int error, void *value,
                             bool cancel_req)
{
    uintptr_t old = publish_done(f, error, value, cancel_req, 0);
    count_failure(error);
    if (old & GATHER__LISTENED)
        close_and_fire(f);
}

void gather__future_complete_release(gather_future *f, int error, void *value,
                                     bool cancel_req)
{
    uintptr_t old = publish_done(f, error, value, cancel_req, GATHER__REF_ONE);
    count_failure(error); /* f may be gone: only the error is used */
    if (old & GATHER__LISTENED) {
        close_and_fire(f); /* our reference is still held */
        gather_future_release(f);
    } else if (gather__refs(old) == 1) {
        free_future(f); /* ours was the last reference */
    }
    /* Otherwise our reference went with DONE: f is not touched again. */
}

bool gather__future_listen(gather_future *f, gather__listener *l)
{
    uintptr_t s = atomic_load_explicit(&f->state, memory_order_acquire);
    for (;;) {
        /* Done, even if its completer has not closed the list yet: the
         * result is readable now, so nobody waits for the listener. */
        if (s & GATHER__DONE)
            return false;
        if (s & GATHER__LISTENED)
            break;
        /* acq_rel: orders our push after the flag, and (acquire on
         * failure) a DONE read here makes the result readable. */
        if (atomic_compare_exchange_weak_explicit(&f->state, &s,
                                                  s | GATHER__LISTENED,
                                                  memory_order_acq_rel,
                                                  memory_order_acquire))
            break;
    }
    gather__listener *head = atomic_load_explicit(&f->listeners,
                                                  memory_order_acquire);
    do {
        if (head == &gather__listeners_closed)
            return false; /* acquire: the completer's exchange published */
        l->next = head;
        /* release (in acq_rel): publishes *l to the completer's exchange. */
    } while (!atomic_compare_exchange_weak_explicit(&f->listeners, &head, l,
                                                    memory_order_acq_rel,
                                                    memory_order_acquire));
    return true;
}

bool gather__future_never_done_for_caller(const gather_future *f)
{
    uintptr_t s = gather__future_state(f);
    if (s & GATHER__DONE)
        return false;
    /* Created before fork(): the threads that would finish it are in the
     * parent. (Only a cancel could still end it; waiting cannot.) */
    if (gather__future_from_parent(f))
        return true;
    gather__worker *w = gather__worker_self();
    if (w == NULL || !gather__ops(f)->is_task || !(s & GATHER__CLAIMED))
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

void *gather_future_take(gather_future *f)
{
    if (f == NULL || !(gather__future_state(f) & GATHER__DONE))
        return NULL;
    /* acq_rel: one taker wins (the RMW order); acquire on top of the DONE
     * read above, release so that value_free at the last release (which
     * acquires) sees the value taken. */
    uintptr_t old = atomic_fetch_or_explicit(&f->state, GATHER__TAKEN,
                                             memory_order_acq_rel);
    return (old & GATHER__TAKEN) ? NULL : f->value;
}

gather_future *gather_future_retain(gather_future *f)
{
    if (f != NULL) /* relaxed: the caller already holds a reference */
        atomic_fetch_add_explicit(&f->state, GATHER__REF_ONE,
                                  memory_order_relaxed);
    return f;
}

bool gather__future_unref(gather_future *f)
{
    /* A count of 1 is ours alone: nobody else can retain, release or
     * complete (a completer holds a reference), so the RMW is skipped
     * (acquire: every other holder's release happened-before, so their uses
     * precede the free). Otherwise acq_rel: release orders this holder's
     * uses before the free; acquire (taken by the last holder) orders the
     * free after everyone's uses. An acq_rel RMW rather than release plus
     * an acquire fence: ThreadSanitizer does not model fences. */
    uintptr_t s = atomic_load_explicit(&f->state, memory_order_acquire);
    return gather__refs(s) == 1 ||
           gather__refs(atomic_fetch_sub_explicit(&f->state, GATHER__REF_ONE,
                                                  memory_order_acq_rel)) == 1;
}

void gather_future_release(gather_future *f)
{
    if (f != NULL && gather__future_unref(f))
        free_future(f);
}

/* ---- cancellation ------------------------------------------------------- */

bool gather__future_try_claim(gather_future *f)
{
    /* relaxed: the claim only arbitrates between the worker and cancellers;
     * what the winner publishes goes out with the completion's release. */
    return !(atomic_fetch_or_explicit(&f->state, GATHER__CLAIMED,
                                      memory_order_relaxed) & GATHER__CLAIMED);
}

bool gather__task_cancel(gather_future *f)
{
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
    const gather__future_ops *ops = gather__ops(f);
    if (ops->task_over != NULL)
        ops->task_over(f);
    gather__future_complete(f, ECANCELED, NULL, true);
    gather_future_release(f);
    return true;
}

/*
 * Cancelling without recursion. Cancelling an aggregate cancels its
 * children, which may be aggregates, and so on: a chain of a million would
 * need a million frames. Up to CANCEL_DEPTH_MAX nested cancels run at once;
 * a deeper cancel of a future that is not a task (an aggregate: what
 * recurses) is queued on the thread, with a reference, and the outermost
 * cancel runs the queue in a loop. It then answers true, as the cancel of
 * a pending aggregate does (its caller at that depth is an aggregate
 * cancelling its children, which ignores the answer). Tasks are cancelled
 * at once at any depth: completing one fires its listeners, which close_
 * and_fire() queues when deep. The queue is an array of the thread's,
 * allocated only when a cancel goes that deep and freed once drained; when
 * it cannot grow, the cancel runs at once (deeper, as before).
 */
#define CANCEL_DEPTH_MAX 32

static GATHER_TLS unsigned tls_cancel_depth;
static GATHER_TLS gather_future **tls_cancel_q;
static GATHER_TLS size_t tls_cancel_len, tls_cancel_cap, tls_cancel_next;

static bool cancel_now(gather_future *f)
{
    bool (*cancel)(gather_future *) = gather__ops(f)->cancel;
    return cancel != NULL ? cancel(f) : gather__task_cancel(f);
}

static bool cancel_queue_room(void)
{
    if (tls_cancel_len < tls_cancel_cap)
        return true;
    size_t cap = tls_cancel_cap == 0 ? 64 : 2 * tls_cancel_cap;
    size_t bytes;
    if (!gather__size(cap, sizeof *tls_cancel_q, 0, &bytes))
        return false;
    gather_future **q = gather__malloc(bytes);
    if (q == NULL)
        return false;
    for (size_t i = 0; i < tls_cancel_len; i++)
        q[i] = tls_cancel_q[i];
    gather__free(tls_cancel_q);
    tls_cancel_q = q;
    tls_cancel_cap = cap;
    return true;
}

static void drain_cancels(void)
{
    while (tls_cancel_next < tls_cancel_len) {
        gather_future *g = tls_cancel_q[tls_cancel_next++];
        cancel_now(g);
        gather_future_release(g);
    }
    gather__free(tls_cancel_q);
    tls_cancel_q = NULL;
    tls_cancel_len = tls_cancel_cap = tls_cancel_next = 0;
}

bool gather_future_cancel(gather_future *f)
{
    if (f == NULL)
        return false;
    if (tls_cancel_depth >= CANCEL_DEPTH_MAX && !gather__ops(f)->is_task) {
        if (gather__future_state(f) & GATHER__DONE)
            return false;
        if (cancel_queue_room()) {
            tls_cancel_q[tls_cancel_len++] = gather_future_retain(f);
            return true;
        }
    }
    tls_cancel_depth++;
    bool cancelled = cancel_now(f);
    if (tls_cancel_depth == 1 && tls_cancel_q != NULL)
        drain_cancels();
    tls_cancel_depth--;
    return cancelled;
}

bool gather_cancel_requested(void)
{
    gather_future *f = gather__current_task();
    if (f == NULL)
        return false;
    /* relaxed: a polled flag (see gather_future_cancel). */
    if (atomic_load_explicit(&f->state, memory_order_relaxed) & GATHER__CANCEL_REQ)
        return true;
    bool (*more)(const gather_future *) = gather__ops(f)->cancel_requested;
    if (more != NULL && more(f))
        return true; /* say, a gather_map job's run (map.c) */
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
