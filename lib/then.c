/* SPDX-License-Identifier: MIT */
/*
 * then.c - gather_then(): continuations, and their kind of future.
 *
 * A link is a task block that is not queued until the future it follows
 * (`prev`) is done: a listener on prev queues it (on the completing
 * worker's own deque when that worker belongs to the link's pool, else in
 * the injection queue), so completing prev never runs the continuation on
 * the completer's stack, and a chain of any length runs in constant stack.
 * A worker that completes prev at the end of a top-level task queues the
 * link as its own next task without waking another thread: a chain then
 * runs link after link on one worker, at the cost of a deque push and pop.
 * Until then the link is an ordinary pending task to gather_future_cancel()
 * (the task protocol's claim), which is how a cancel before the start
 * keeps fn from running without touching prev.
 *
 * Lifetimes: the link holds a reference to prev until fn returns (or the
 * link is freed unrun), and a hold on its pool from the call until its
 * listener has queued it (pool.c: a destroyed pool's memory stays while
 * held, so a late prev finds a shut-down pool and completes the link with
 * ESHUTDOWN). Once queued, the pool's drain accounts for it as for any
 * task.
 */
#include "internal.h"

typedef struct then_link {
    gather_future base;       /* first: a task with fn = run_link, arg = link */
    gather__listener on_prev; /* fires once prev is done */
    gather_future *prev;      /* our reference, until fn returned */
    gather_then_fn fn;
    void *arg;
} then_link;

static then_link *link_of(gather__listener *l)
{
    return (then_link *)(void *)((char *)l - offsetof(then_link, on_prev));
}

static int run_link(void *arg, void **result)
{
    then_link *l = arg;
    int rc = l->fn(l->prev, l->arg, result);
    gather_future *prev = l->prev;
    l->prev = NULL; /* finished links do not keep the chain alive */
    gather_future_release(prev);
    return rc;
}

/* An unrun link (cancelled or refused) still holds its prev, which may be
 * an unrun link holding its own prev, and so on: releasing the last
 * reference to such a chain frees it in this loop, not by recursion
 * through gather_future_release() (a million links, a million frames). */
static void link_destroy(gather_future *f)
{
    for (;;) {
        then_link *l = (then_link *)f;
        gather_future *prev = l->prev;
        gather__free(l);
        if (prev == NULL || !gather__future_unref(prev))
            return;
        if (prev->kind != GATHER__THEN) {
            gather__ops(prev)->destroy(prev);
            return;
        }
        f = prev;
    }
}

const gather__future_ops gather__then_ops = {
    .is_task = true,
    .destroy = link_destroy,
};

/* prev is done: queue the link, unless it was cancelled meanwhile. */
static void on_prev_done(gather__listener *listener, gather_future *prev)
{
    (void)prev;
    then_link *l = link_of(listener);
    gather_future *next = &l->base;
    gather_pool *p = next->pool; /* held by us: valid until the unhold */
    /* relaxed: a hint; the worker's claim decides, and a link cancelled
     * after this load is discarded by the worker that pops it. */
    if (atomic_load_explicit(&next->state, memory_order_relaxed) & GATHER__CLAIMED) {
        /* Cancelled unrun: wait for the canceller's DONE before our unhold
         * may free the pool under it (lib/then.pml, BUGGY_NO_DISCARD_WAIT). */
        gather__discard_cancelled(next);
    } else if (!gather__worker_queue_next(p, next)) {
        int rc = gather__pool_queue(p, next, false); /* counted when made */
        if (rc != 0) {
            /* The pool was shut down (or memory ran out) before prev was
             * done: fn will not run. */
            if (gather__future_try_claim(next)) {
                gather__pool_count_cancel(p);
                gather__future_complete_release(next, rc, NULL, false);
            } else {
                gather__discard_cancelled(next); /* as above */
            }
        }
    }
    gather__pool_unhold(p);
}

int gather_then(gather_future *prev, gather_pool *pool, gather_then_fn fn,
                void *arg, gather_future **next)
{
    if (next != NULL)
        *next = NULL;
    if (prev == NULL || fn == NULL)
        return EINVAL;
    int err = 0;
    gather_pool *p = gather__pool_resolve(pool, &err);
    if (p == NULL)
        return err;
    /* relaxed: an early answer, as gather_submit's; a shutdown racing with
     * this call is answered when the link is queued. */
    if (gather_current_pool() != p &&
        atomic_load_explicit(&p->stopping, memory_order_relaxed))
        return ESHUTDOWN;
    then_link *l = gather__malloc(sizeof *l);
    if (l == NULL)
        return ENOMEM;
    /* The caller's reference (if it keeps one) and the queue's. */
    gather__future_init(&l->base, GATHER__THEN, next != NULL ? 2 : 1);
    l->base.fn = run_link;
    l->base.arg = l;
    l->base.pool = p;
    l->base.lane = GATHER__LANE_NORMAL;
    l->prev = gather_future_retain(prev);
    l->fn = fn;
    l->arg = arg;
    l->on_prev.fire = on_prev_done;
    gather__pool_count_jobs(p, 1, 0, 0);
    gather__pool_hold(p);
    if (next != NULL)
        *next = &l->base;
    if (!gather__future_listen(prev, &l->on_prev))
        on_prev_done(&l->on_prev, prev); /* already done */
    return 0;
}
