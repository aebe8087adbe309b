/* SPDX-License-Identifier: MIT */
/*
 * deque.c - GenMC harness for the real lib/deque.c (Chase-Lev deque).
 *
 * The owner (main) pushes ITEMS items on a deque that starts at capacity 2,
 * so the third push grows the ring while thieves may be reading the old
 * one; then it pops until the deque is empty. Two thieves make
 * STEAL_ATTEMPTS steal attempts each. After joining, every item must have
 * been taken exactly once.
 *
 * What GenMC checks besides the assertions: data races on non-atomic
 * memory (an item's payload, written by the owner before the push and read
 * by whoever takes the item; a ring's `mask`, written before the ring is
 * published), accesses to freed memory (a retired ring) and double frees.
 *
 * Build knobs (-D): ITEMS (default 3), STEAL_ATTEMPTS (default 1).
 */
#include "shims.h"

/* Found through -I<repository root>; run.sh puts a directory holding a
 * mutated lib/deque.c first. */
#include "lib/deque.c"

#ifndef ITEMS
#define ITEMS 3
#endif
#ifndef STEAL_ATTEMPTS
#define STEAL_ATTEMPTS 1
#endif
#define THIEVES 2

struct item {
    int payload; /* plain: must be published by the push */
};

static gather__deque deque;
static struct item items[ITEMS];
/* taken[t][i]: how many times thread t (0: owner) took item i. Each row is
 * written by its thread only and read by main after the joins. */
static int taken[THIEVES + 1][ITEMS];

/* Checks that x is one of the items, fully published, and counts it. */
static void record_take(int taker, void *x)
{
    assert(x != NULL);
    struct item *it = x;
    long i = it - items;
    assert(i >= 0 && i < ITEMS);
    assert(it->payload == (int)i + 1);
    taken[taker][i]++;
}

static void *thief(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int k = 0; k < STEAL_ATTEMPTS; k++) {
        void *x = NULL;
        if (gather__deque_steal(&deque, &x) == 0)
            record_take(id, x);
    }
    return NULL;
}

static void owner(void)
{
    for (int i = 0; i < ITEMS; i++) {
        items[i].payload = i + 1;
        int rc = gather__deque_push_owner(&deque, &items[i]);
        assert(rc == 0);
        (void)rc;
    }
    /* NULL means empty, or the last item went to a thief: either way every
     * item has been taken once it is returned (no more pushes). */
    for (int i = 0; i <= ITEMS; i++) {
        void *x = gather__deque_pop_owner(&deque);
        if (x == NULL)
            break;
        record_take(0, x);
    }
}

int main(void)
{
    int rc = gather__deque_init(&deque, 2);
    assert(rc == 0);
    (void)rc;
    pthread_t t[THIEVES];
    for (int i = 0; i < THIEVES; i++)
        pthread_create(&t[i], NULL, thief, (void *)(intptr_t)(i + 1));
    owner();
    for (int i = 0; i < THIEVES; i++)
        pthread_join(t[i], NULL);

    for (int i = 0; i < ITEMS; i++) {
        int n = 0;
        for (int k = 0; k <= THIEVES; k++)
            n += taken[k][i];
        assert(n == 1); /* neither lost nor taken twice */
    }
    assert(gather__deque_valid(&deque));
    assert(!gather__deque_nonempty(&deque));
    gather__deque_destroy(&deque);
    return 0;
}
