/* SPDX-License-Identifier: MIT */
/*
 * task_options.c - gather_submit_ex(): tasks with options (blocking,
 * priority, value_free, arg_free), and their kind of future.
 *
 * A task whose options need no hook (a priority alone) is a plain task
 * block in another lane of the injection queue. One with a hook is a
 * GATHER__TASK_EX block: the plain future plus the two destructors. Its
 * hooks run at the two ends of its life: task_over (arg_free) on the
 * thread that ends the task, before DONE, exactly once because only the
 * claimer of the future gets there (the worker that ran it, or the
 * canceller that completed it unrun); destroy (value_free) with the last
 * reference, when no other thread can read the value any more.
 */
#include "internal.h"

typedef struct task_ex {
    gather_future base; /* first: the kind's operations cast back */
    void (*value_free)(void *value);
    void (*arg_free)(void *arg);
} task_ex;

static void ex_task_over(gather_future *f)
{
    task_ex *t = (task_ex *)f;
    if (t->arg_free != NULL)
        t->arg_free(f->arg);
}

static void ex_destroy(gather_future *f)
{
    task_ex *t = (task_ex *)f;
    /* relaxed: the last reference was dropped with an acquire (or ours was
     * the only one), so DONE, the value and TAKEN are visible. */
    uintptr_t s = atomic_load_explicit(&f->state, memory_order_relaxed);
    if (t->value_free != NULL && f->value != NULL && (s & GATHER__DONE) &&
        !(s & GATHER__TAKEN))
        t->value_free(f->value);
    gather__free(t);
}

const gather__future_ops gather__task_ex_ops = {
    .is_task = true,
    .destroy = ex_destroy,
    .task_over = ex_task_over,
};

static bool options_valid(const gather_task_options *o)
{
    return (o->flags & ~GATHER_TASK_BLOCKING) == 0 &&
           o->priority >= GATHER_PRIORITY_LOW &&
           o->priority <= GATHER_PRIORITY_HIGH;
}

static uint8_t lane_for(gather_pool *p, const gather_task_options *o)
{
    /* On a pool that is not elastic a blocking task is an ordinary one. */
    if ((o->flags & GATHER_TASK_BLOCKING) && gather__elastic(p))
        return GATHER__LANE_BLOCKING;
    if (o->priority == GATHER_PRIORITY_HIGH)
        return GATHER__LANE_HIGH;
    return o->priority == GATHER_PRIORITY_LOW ? GATHER__LANE_LOW
                                              : GATHER__LANE_NORMAL;
}

static gather_future *new_task_ex(gather_pool *p, gather_fn fn, void *arg,
                                  const gather_task_options *o, uint32_t refs)
{
    bool hooked = (o->flags & GATHER_TASK_BLOCKING) || o->value_free != NULL ||
                  o->arg_free != NULL;
    if (!hooked) /* a priority alone: a plain task in another lane */
        return gather__task_new(p, GATHER__TASK, fn, arg, refs);
    task_ex *t = gather__malloc(sizeof *t);
    if (t == NULL)
        return NULL;
    gather__future_init(&t->base, GATHER__TASK_EX, refs);
    t->base.fn = fn;
    t->base.arg = arg;
    t->base.pool = p;
    t->value_free = o->value_free;
    t->arg_free = o->arg_free;
    return &t->base;
}

int gather_submit_ex(gather_pool *pool, gather_fn fn, void *arg,
                     const gather_task_options *opts, gather_future **future)
{
    if (future != NULL)
        *future = NULL;
    if (fn == NULL || (opts != NULL && !options_valid(opts)))
        return EINVAL;
    if (opts == NULL)
        return gather_submit(pool, fn, arg, future);
    int err = 0;
    gather_pool *p = gather__pool_resolve(pool, &err);
    if (p == NULL)
        return err;
    /* relaxed: an early answer before allocating (gather_submit's). */
    if (gather_current_pool() != p &&
        atomic_load_explicit(&p->stopping, memory_order_relaxed))
        return ESHUTDOWN;
    gather_future *f = new_task_ex(p, fn, arg, opts, future != NULL ? 2 : 1);
    if (f == NULL)
        return ENOMEM;
    f->lane = lane_for(p, opts);
    int rc = gather__pool_queue(p, f, true);
    if (rc != 0) {
        gather__ops(f)->destroy(f); /* arg_free not called: arg is the caller's */
        return rc;
    }
    if (future != NULL)
        *future = f; /* not touched otherwise: a detached task may be gone */
    return 0;
}
