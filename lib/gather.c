/*
 * gather.c - asyncio.gather() over futures: gather_futures(), the aggregate
 * future of gather_all(), and gather_wait_any() (gather_map() is map.c).
 *
 * DESIGN: the waiting calls are thin layers over gather__wait() (wait.c):
 * wait for the mode's condition, then read every future once and fill the
 * results on the caller's thread, so nothing ever writes into the caller's
 * array after the call returned.
 *
 * An aggregate is one block: the future, one listener entry per child, the
 * children (one reference each, until it completes) and the result
 * snapshot. Each entry fires when its child completes and counts it; the
 * entry that meets the condition claims the aggregate (CLAIMED bit, one
 * CAS, so a cancel and a last child cannot both complete it), takes the
 * snapshot, drops the children and completes the aggregate. References on
 * the aggregate: the caller's, one "engine" reference dropped at
 * completion, and one per registered entry, dropped when it fires (an
 * entry can fire long after a fail-fast completion).
 */
#include "internal.h"

#include <string.h>

#define KNOWN_FLAGS (GATHER_RETURN_ERRORS | GATHER_CANCEL_ON_ERROR)
int gather__check_flags(unsigned flags)
{
    if ((flags & ~KNOWN_FLAGS) != 0)
        return EINVAL;
    if ((flags & GATHER_RETURN_ERRORS) && (flags & GATHER_CANCEL_ON_ERROR))
        return EINVAL;
    return 0;
}

/* A list is valid when its byte size does not overflow and it has no NULL. */
static int check_list(gather_future *const fs[], size_t n)
{
    size_t bytes;
    if (!gather__size(n, sizeof(gather_result), 0, &bytes))
        return EINVAL;
    if (n > 0 && fs == NULL)
        return EINVAL;
    for (size_t i = 0; i < n; i++)
        if (fs[i] == NULL)
            return EINVAL;
    return 0;
}

static gather_result read_result(const gather_future *f)
{
    gather_result r = {EINPROGRESS, NULL};
    if (gather__future_state(f) & GATHER__DONE) {
        r.error = f->error;
        r.value = f->value;
    }
    return r;
}

/* The lowest index that is done and failed, or n. */
static size_t first_failure(gather_future *const fs[], size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((gather__future_state(fs[i]) & GATHER__DONE) && fs[i]->error != 0)
            return i;
    return n;
}

static void cancel_others(gather_future *const fs[], size_t n, size_t keep)
{
    for (size_t i = 0; i < n; i++)
        if (fs[i] != fs[keep])
            gather_future_cancel(fs[i]);
}

/* After the wait: the code gather_futures() returns, and the results. */
static int collect(gather_future *const fs[], size_t n,
                   gather_result *results, unsigned flags)
{
    int code = 0;
    if (!(flags & GATHER_RETURN_ERRORS)) {
        size_t bad = first_failure(fs, n);
        if (bad < n) {
            code = fs[bad]->error;
            if (flags & GATHER_CANCEL_ON_ERROR)
                cancel_others(fs, n, bad);
        }
    }
    if (results != NULL)
        for (size_t i = 0; i < n; i++)
            results[i] = read_result(fs[i]);
    return code;
}

static enum gather__wait_mode mode_for(unsigned flags)
{
    return (flags & GATHER_RETURN_ERRORS) ? GATHER__WAIT_ALL
                                          : GATHER__WAIT_FAIL_FAST;
}

int gather_futures(gather_future *const futures[], size_t n,
                   gather_result *results, unsigned flags)
{
    int rc = gather__check_flags(flags);
    if (rc == 0)
        rc = check_list(futures, n);
    if (rc != 0 || n == 0)
        return rc;
    rc = gather__wait(futures, n, mode_for(flags), NULL, NULL, NULL);
    if (rc != 0)
        return rc;
    return collect(futures, n, results, flags);
}

/* ---- gather_all ---------------------------------------------------------- */

typedef struct aggregate aggregate;

typedef struct agg_entry {
    gather__listener listener; /* first: fire() casts back */
    aggregate *agg;
} agg_entry;

struct aggregate {
    gather_future base; /* first: the aggregate is a future */
    unsigned flags;
    size_t n;
    _Atomic size_t remaining;  /* children not yet seen done */
    gather_future **children;  /* n; released at completion */
    gather_result *results;    /* n; the snapshot, the future's value */
    agg_entry entry[];
};

/* Completes the aggregate if nobody did yet; false if someone did. */
static bool agg_finish(aggregate *a, bool by_cancel)
{
    uintptr_t claim = GATHER__CLAIMED | (by_cancel ? GATHER__CANCEL_REQ : 0);
    uintptr_t old = atomic_load_explicit(&a->base.state, memory_order_relaxed);
    do {
        if (old & GATHER__CLAIMED)
            return false;
        /* acquire: the children's results, read below, were published
         * before the entries that brought us here fired (and are read with
         * acquire loads anyway). */
    } while (!atomic_compare_exchange_weak_explicit(&a->base.state, &old,
                                                    old | claim,
                                                    memory_order_acquire,
                                                    memory_order_relaxed));
    int code = 0;
    if (by_cancel) {
        for (size_t i = 0; i < a->n; i++)
            gather_future_cancel(a->children[i]);
        code = ECANCELED;
    } else if (!(a->flags & GATHER_RETURN_ERRORS)) {
        size_t bad = first_failure(a->children, a->n);
        if (bad < a->n) {
            code = a->children[bad]->error;
            if (a->flags & GATHER_CANCEL_ON_ERROR)
                cancel_others(a->children, a->n, bad);
        }
    }
    for (size_t i = 0; i < a->n; i++) {
        a->results[i] = read_result(a->children[i]);
        gather_future_release(a->children[i]);
        a->children[i] = NULL;
    }
    gather__future_complete(&a->base, code, a->n > 0 ? a->results : NULL,
                            by_cancel);
    gather_future_release(&a->base); /* the engine reference */
    return true;
}

static void agg_fire(gather__listener *l, gather_future *child)
{
    aggregate *a = ((agg_entry *)l)->agg;
    /* acq_rel: counts are combined across completing threads. */
    size_t left = atomic_fetch_sub_explicit(&a->remaining, 1,
                                            memory_order_acq_rel) - 1;
    if (left == 0 || (!(a->flags & GATHER_RETURN_ERRORS) && child->error != 0))
        agg_finish(a, false);
    gather_future_release(&a->base); /* the entry's reference */
}

bool gather__aggregate_cancel(gather_future *f)
{
    return agg_finish((aggregate *)f, true);
}

static void agg_destroy(gather_future *f)
{
    gather__free(f); /* one block: entries, children, results */
}

const gather__future_ops gather__aggregate_ops = {
    .cancel = gather__aggregate_cancel,
    .destroy = agg_destroy,
};

static aggregate *agg_alloc(size_t n)
{
    /* entry[n], then children[n], then results[n]. */
    size_t per = sizeof(agg_entry) + sizeof(gather_future *) + sizeof(gather_result);
    size_t size;
    if (n > UINT32_MAX / 2 || !gather__size(n, per, sizeof(aggregate), &size))
        return NULL;
    aggregate *a = gather__malloc(size);
    if (a == NULL)
        return NULL;
    a->n = n;
    a->children = (gather_future **)(void *)&a->entry[n];
    a->results = (gather_result *)(void *)&a->children[n];
    return a;
}

int gather_all(gather_future *const futures[], size_t n, unsigned flags,
               gather_future **aggregate_out)
{
    if (aggregate_out == NULL)
        return EINVAL;
    *aggregate_out = NULL;
    int rc = gather__check_flags(flags);
    if (rc == 0)
        rc = check_list(futures, n);
    if (rc != 0)
        return rc;
    aggregate *a = agg_alloc(n);
    if (a == NULL)
        return ENOMEM;
    /* The caller's reference, the engine's, and one per entry. */
    gather__future_init(&a->base, GATHER__AGGREGATE, (uint32_t)(2 + n));
    a->flags = flags;
    atomic_init(&a->remaining, n);
    for (size_t i = 0; i < n; i++)
        a->children[i] = gather_future_retain(futures[i]);

    size_t skipped = 0;
    bool hit = n == 0;
    for (size_t i = 0; i < n; i++) {
        agg_entry *e = &a->entry[i];
        e->listener.fire = agg_fire;
        e->agg = a;
        if (gather__future_listen(futures[i], &e->listener))
            continue;
        skipped++; /* already done */
        if (!(flags & GATHER_RETURN_ERRORS) && futures[i]->error != 0)
            hit = true;
    }
    if (skipped > 0) {
        atomic_fetch_sub_explicit(&a->base.state, skipped * GATHER__REF_ONE,
                                  memory_order_relaxed); /* we hold two more */
        if (atomic_fetch_sub_explicit(&a->remaining, skipped,
                                      memory_order_acq_rel) == skipped)
            hit = true;
    }
    if (hit)
        agg_finish(a, false);
    *aggregate_out = &a->base;
    return 0;
}

/* ---- gather_wait_any ----------------------------------------------------- */

int gather_wait_any(gather_future *const futures[], size_t n,
                    uint64_t timeout_ns, size_t *index)
{
    if (index == NULL || n == 0)
        return EINVAL;
    int rc = check_list(futures, n);
    if (rc != 0)
        return rc;
    struct timespec deadline;
    if (timeout_ns != GATHER_FOREVER)
        gather__deadline(&deadline, timeout_ns);
    bool timed_out = false;
    rc = gather__wait(futures, n, GATHER__WAIT_ANY,
                      timeout_ns != GATHER_FOREVER ? &deadline : NULL,
                      &timed_out, NULL);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (gather__future_state(futures[i]) & GATHER__DONE) {
            *index = i;
            return 0;
        }
    }
    return ETIMEDOUT;
}
