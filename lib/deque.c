/* SPDX-License-Identifier: MIT */
/*
 * deque.c - the Chase-Lev work-stealing deque, one per worker.
 *
 * DESIGN: the owner pushes and pops at `bottom` (newest first, LIFO, so a
 * task that waits for the child it just pushed usually pops that child and
 * runs it inline); thieves take from `top` (oldest first), the big pieces of
 * a divide-and-conquer tree. The buffer is a power-of-two ring that the
 * owner doubles when full. A thief may still be reading the old ring after
 * the owner switched, so old rings are chained on the new one and freed only
 * when the deque is destroyed (total size of retired rings < current ring).
 * Indices are 64-bit and never wrap in practice.
 *
 * Orderings follow Le, Pop, Cohen, Zappa Nardelli, "Correct and Efficient
 * Work-Stealing for Weak Memory Models" (PPoPP'13), with two deliberate
 * changes, both as cheap as the fences they replace on x86 and Arm:
 *   - push publishes `bottom` with a release store instead of a release
 *     fence followed by a relaxed store (ThreadSanitizer does not model
 *     stand-alone fences; it does model the release store);
 *   - pop and steal use seq_cst accesses on `bottom`/`top` instead of
 *     seq_cst fences between relaxed ones (the same reason).
 * The ring pointer is published with release and read with acquire: the
 * paper's version published it too weakly (found by CDSChecker).
 * Slots are _Atomic and accessed relaxed: a thief may read a slot the owner
 * is overwriting; the CAS on `top` then fails and the value is dropped.
 */
#include "internal.h"

#include <string.h>

static gather__deque_buf *buf_new(int64_t capacity)
{
    size_t size;
    if (!gather__size((size_t)capacity, sizeof(_Atomic(void *)),
                      sizeof(gather__deque_buf), &size))
        return NULL;
    gather__deque_buf *b = gather__malloc(size);
    if (b == NULL)
        return NULL;
    b->mask = capacity - 1;
    b->retired = NULL;
    for (int64_t i = 0; i < capacity; i++)
        atomic_init(&b->slot[i], NULL);
    return b;
}

int gather__deque_init(gather__deque *d, size_t capacity)
{
    int64_t cap = 2;
    while ((size_t)cap < capacity)
        cap *= 2;
    gather__deque_buf *b = buf_new(cap);
    if (b == NULL)
        return ENOMEM;
    atomic_init(&d->top, 0);
    atomic_init(&d->bottom, 0);
    atomic_init(&d->buf, b);
    return 0;
}

void gather__deque_destroy(gather__deque *d)
{
    gather__deque_buf *b = atomic_load_explicit(&d->buf, memory_order_relaxed);
    while (b != NULL) {
        gather__deque_buf *older = b->retired;
        gather__free(b);
        b = older;
    }
    atomic_store_explicit(&d->buf, NULL, memory_order_relaxed);
}

/* Owner only: doubles the ring, copying the live items [t, b). */
static gather__deque_buf *grow(gather__deque *d, gather__deque_buf *old,
                               int64_t t, int64_t b)
{
    if (old->mask > INT64_MAX / 4)
        return NULL;
    gather__deque_buf *n = buf_new((old->mask + 1) * 2);
    if (n == NULL)
        return NULL;
    for (int64_t i = t; i < b; i++) {
        void *x = atomic_load_explicit(&old->slot[i & old->mask],
                                       memory_order_relaxed);
        atomic_store_explicit(&n->slot[i & n->mask], x, memory_order_relaxed);
    }
    n->retired = old;
    /* release: pairs with the acquire load of `buf` in steal(); a thief that
     * sees the new ring sees the items copied into it. */
    atomic_store_explicit(&d->buf, n, memory_order_release);
    return n;
}

int gather__deque_push_owner(gather__deque *d, void *item)
{
    /* relaxed: only the owner writes bottom. */
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed);
    /* acquire: pairs with the thieves' CAS on top, so the slots they freed
     * are really free before the owner reuses them. */
    int64_t t = atomic_load_explicit(&d->top, memory_order_acquire);
    gather__deque_buf *a = atomic_load_explicit(&d->buf, memory_order_relaxed);
    if (b - t > a->mask) {
        a = grow(d, a, t, b);
        if (a == NULL)
            return ENOMEM;
    }
    atomic_store_explicit(&a->slot[b & a->mask], item, memory_order_relaxed);
    /* release: pairs with the seq_cst (acquire) load of bottom in steal();
     * a thief that sees b + 1 sees the slot and everything the submitter
     * wrote into the task before pushing it. */
    atomic_store_explicit(&d->bottom, b + 1, memory_order_release);
    return 0;
}

void *gather__deque_pop_owner(gather__deque *d)
{
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed) - 1;
    gather__deque_buf *a = atomic_load_explicit(&d->buf, memory_order_relaxed);
    /* seq_cst store then seq_cst load of top: the owner's claim on slot b
     * and a thief's claim on slot t must not both succeed (store-load
     * ordering, the StoreLoad fence of the paper). */
    atomic_store_explicit(&d->bottom, b, memory_order_seq_cst);
    int64_t t = atomic_load_explicit(&d->top, memory_order_seq_cst);
    if (t > b) { /* empty: undo */
        atomic_store_explicit(&d->bottom, b + 1, memory_order_relaxed);
        return NULL;
    }
    void *x = atomic_load_explicit(&a->slot[b & a->mask], memory_order_relaxed);
    if (t == b) {
        /* Last item: race the thieves for it on top. seq_cst as in the
         * paper; failure relaxed, the value is not used. */
        if (!atomic_compare_exchange_strong_explicit(&d->top, &t, t + 1,
                                                     memory_order_seq_cst,
                                                     memory_order_relaxed))
            x = NULL;
        atomic_store_explicit(&d->bottom, b + 1, memory_order_relaxed);
    }
    return x;
}

int gather__deque_steal(gather__deque *d, void **item)
{
    /* seq_cst load of top, then seq_cst load of bottom: the load-load order
     * the paper gets from its seq_cst fence; bottom's load also acquires
     * the owner's push (release store). */
    int64_t t = atomic_load_explicit(&d->top, memory_order_seq_cst);
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_seq_cst);
    if (t >= b)
        return ENOENT;
    /* acquire: pairs with the release store in grow(). */
    gather__deque_buf *a = atomic_load_explicit(&d->buf, memory_order_acquire);
    void *x = atomic_load_explicit(&a->slot[t & a->mask], memory_order_relaxed);
    /* seq_cst: orders against the owner's pop of the last item; a success
     * makes slot t ours. Failure relaxed: we retry from scratch. */
    if (!atomic_compare_exchange_strong_explicit(&d->top, &t, t + 1,
                                                 memory_order_seq_cst,
                                                 memory_order_relaxed))
        return EAGAIN;
    *item = x;
    return 0;
}

bool gather__deque_nonempty(gather__deque *d)
{
    /* seq_cst: used in the sleep protocol's re-check, which must not be
     * reordered before the sleeper's registration (see sleep.c). */
    int64_t t = atomic_load_explicit(&d->top, memory_order_seq_cst);
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_seq_cst);
    return t < b;
}

bool gather__deque_valid(gather__deque *d)
{
    int64_t t = atomic_load_explicit(&d->top, memory_order_relaxed);
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed);
    gather__deque_buf *a = atomic_load_explicit(&d->buf, memory_order_relaxed);
    if (a == NULL || t < 0 || b < t || b - t > a->mask + 1)
        return false;
    if ((a->mask & (a->mask + 1)) != 0)
        return false; /* capacity must be a power of two */
    for (gather__deque_buf *r = a->retired; r != NULL; r = r->retired)
        if (r->mask >= a->mask)
            return false; /* retired rings are strictly smaller */
    return true;
}
