/* SPDX-License-Identifier: MIT */
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

#define KNOWN_FLAGS (GATHER_RETURN_ERRORS | GATHER_CANCEL_ON_ERROR | GATHER_WAIT_ALL)
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

/* Cancels every future of the list that is not done (a timeout counts as
 * a failure with GATHER_CANCEL_ON_ERROR). */
static void cancel_all(gather_future *const fs[], size_t n)
{
    for (size_t i = 0; i < n; i++)
        gather_future_cancel(fs[i]);
}

static void fill(gather_future *const fs[], size_t n, gather_result *results)
{
    if (results != NULL)
        for (size_t i = 0; i < n; i++)
            results[i] = read_result(fs[i]);
}

/* The first wait's condition: every future done, or (fail-fast) every one
 * done or one failed. GATHER_WAIT_ALL without CANCEL_ON_ERROR only delays
 * the return; with it, the first failure still matters at once (it
 * cancels the rest), and a second wait collects them. */
static enum gather__wait_mode mode_for(unsigned flags)
{
    if (flags & GATHER_RETURN_ERRORS)
        return GATHER__WAIT_ALL;
    if ((flags & GATHER_WAIT_ALL) && !(flags & GATHER_CANCEL_ON_ERROR))
        return GATHER__WAIT_ALL;
    return GATHER__WAIT_FAIL_FAST;
}

/*
 * gather_futures() and gather_futures_for() once the arguments are checked
 * (n > 0). `deadline`: CLOCK_MONOTONIC, NULL for none. The code is the
 * first failure seen, read before any cancel of ours can add failures.
 */
static int gather_list(gather_future *const fs[], size_t n,
                       gather_result *results, unsigned flags,
                       const struct timespec *deadline)
{
    bool structured = (flags & GATHER_WAIT_ALL) && (flags & GATHER_CANCEL_ON_ERROR);
    /* Reserved now: the second wait of a TaskGroup cannot fail for memory
     * after we cancelled the others. */
    gather__waitset *second = NULL;
    if (structured && (second = gather__waitset_reserve(n)) == NULL)
        return ENOMEM;
    bool timed_out = false;
    int rc = gather__wait(fs, n, mode_for(flags), deadline, &timed_out, NULL);
    if (rc != 0) {
        if (second != NULL)
            gather__waitset_unreserve(second);
        return rc;
    }
    int code = 0;
    if (!(flags & GATHER_RETURN_ERRORS)) {
        size_t bad = first_failure(fs, n);
        if (bad < n) {
            code = fs[bad]->error;
            if (flags & GATHER_CANCEL_ON_ERROR)
                cancel_others(fs, n, bad);
        }
    }
    if (timed_out && (flags & GATHER_CANCEL_ON_ERROR))
        cancel_all(fs, n);
    if (!timed_out && structured && code != 0) {
        /* TaskGroup: the others were cancelled; wait until they are all
         * over (pending ones are done already, running ones return). */
        rc = gather__wait(fs, n, GATHER__WAIT_ALL, deadline, &timed_out, second);
        second = NULL;
        if (rc != 0)
            return rc;
    }
    if (second != NULL)
        gather__waitset_unreserve(second);
    fill(fs, n, results);
    return timed_out ? ETIMEDOUT : code;
}

int gather_futures(gather_future *const futures[], size_t n,
                   gather_result *results, unsigned flags)
{
    int rc = gather__check_flags(flags);
    if (rc == 0)
        rc = check_list(futures, n);
    if (rc != 0 || n == 0)
        return rc;
    return gather_list(futures, n, results, flags, NULL);
}

int gather_futures_for(gather_future *const futures[], size_t n,
                       gather_result *results, unsigned flags,
                       uint64_t timeout_ns)
{
    int rc = gather__check_flags(flags);
    if (rc == 0)
        rc = check_list(futures, n);
    if (rc != 0 || n == 0)
        return rc;
    if (timeout_ns == GATHER_FOREVER)
        return gather_list(futures, n, results, flags, NULL);
    struct timespec deadline;
    gather__deadline(&deadline, timeout_ns);
    return gather_list(futures, n, results, flags, &deadline);
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
    /* Users of `children`: the completion (1) and entries cancelling the
     * others at a first failure (GATHER_WAIT_ALL | CANCEL_ON_ERROR). The
     * last one out releases the children. */
    _Atomic size_t child_users;
    _Atomic int first_error;   /* WAIT_ALL: the first failure seen, or 0 */
    gather_future **children;  /* n; released at completion */
    gather_result *results;    /* n; the snapshot, the future's value */
    agg_entry entry[];
};

static void drop_children(aggregate *a)
{
    /* acq_rel: the last user releases after every other user's reads. */
    if (atomic_fetch_sub_explicit(&a->child_users, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < a->n; i++) {
        gather_future_release(a->children[i]);
        a->children[i] = NULL;
    }
}

/* Joins the users of `children` unless they are already released. */
static bool use_children(aggregate *a)
{
    size_t users = atomic_load_explicit(&a->child_users, memory_order_relaxed);
    do {
        if (users == 0)
            return false;
        /* acquire on success: after the completion's snapshot, if any. */
    } while (!atomic_compare_exchange_weak_explicit(&a->child_users, &users,
                                                    users + 1,
                                                    memory_order_acquire,
                                                    memory_order_relaxed));
    return true;
}

/* The code the aggregate completes with, and the cancels it makes. */
static int agg_code(aggregate *a, bool by_cancel)
{
    if (by_cancel) {
        for (size_t i = 0; i < a->n; i++)
            gather_future_cancel(a->children[i]);
        return ECANCELED;
    }
    if (a->flags & GATHER_RETURN_ERRORS)
        return 0;
    if (a->flags & GATHER_WAIT_ALL) /* all done: the first failure seen */
        return atomic_load_explicit(&a->first_error, memory_order_relaxed);
    size_t bad = first_failure(a->children, a->n);
    if (bad == a->n)
        return 0;
    if (a->flags & GATHER_CANCEL_ON_ERROR)
        cancel_others(a->children, a->n, bad);
    return a->children[bad]->error;
}

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
    int code = agg_code(a, by_cancel);
    for (size_t i = 0; i < a->n; i++)
        a->results[i] = read_result(a->children[i]);
    drop_children(a);
    gather__future_complete(&a->base, code, a->n > 0 ? a->results : NULL,
                            by_cancel);
    gather_future_release(&a->base); /* the engine reference */
    return true;
}

/* GATHER_WAIT_ALL: the first failure is noted; with CANCEL_ON_ERROR it
 * cancels the other children (the aggregate completes when all are done). */
static void agg_first_failure(aggregate *a, gather_future *child)
{
    int none = 0;
    /* relaxed: the value is read by the completion, after the last fire's
     * acq_rel on `remaining`. */
    if (!atomic_compare_exchange_strong_explicit(&a->first_error, &none,
                                                 child->error,
                                                 memory_order_relaxed,
                                                 memory_order_relaxed))
        return;
    if (!(a->flags & GATHER_CANCEL_ON_ERROR) || !use_children(a))
        return;
    for (size_t i = 0; i < a->n; i++)
        if (a->children[i] != child)
            gather_future_cancel(a->children[i]);
    drop_children(a);
}

static void agg_fire(gather__listener *l, gather_future *child)
{
    aggregate *a = ((agg_entry *)l)->agg;
    bool failed = child->error != 0 && !(a->flags & GATHER_RETURN_ERRORS);
    if (failed && (a->flags & GATHER_WAIT_ALL))
        agg_first_failure(a, child);
    /* acq_rel: counts are combined across completing threads. */
    size_t left = atomic_fetch_sub_explicit(&a->remaining, 1,
                                            memory_order_acq_rel) - 1;
    if (left == 0 || (failed && !(a->flags & GATHER_WAIT_ALL)))
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
    atomic_init(&a->child_users, 1);
    atomic_init(&a->first_error, 0);
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
        if (!(flags & GATHER_RETURN_ERRORS) && futures[i]->error != 0) {
            if (flags & GATHER_WAIT_ALL)
                agg_first_failure(a, futures[i]); /* complete when all are */
            else
                hit = true;
        }
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
