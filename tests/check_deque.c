/* SPDX-License-Identifier: MIT */
/*
 * check_deque.c - the Chase-Lev deque (lib/deque.c), through its internal
 * API: order, growth, invariants, and "every item taken exactly once" with
 * one owner pushing and popping while thieves steal.
 */
#include "internal.h"
#include "testutil.h"

#include <sched.h>
#include <string.h>

/* Items are indices + 1 (NULL means "empty"). */
#define ITEM(i) ((void *)(uintptr_t)((i) + 1))
#define INDEX(p) ((size_t)(uintptr_t)(p) - 1)

START_TEST(test_owner_pops_newest_first_every_length)
{
    for (size_t len = 0; len <= 256; len++) {
        gather__deque d;
        ck_assert_int_eq(gather__deque_init(&d, 2), 0);
        for (size_t i = 0; i < len; i++)
            ck_assert_int_eq(gather__deque_push_owner(&d, ITEM(i)), 0);
        ck_assert(gather__deque_valid(&d));
        ck_assert(gather__deque_nonempty(&d) == (len > 0));
        for (size_t i = len; i-- > 0;)
            ck_assert_ptr_eq(gather__deque_pop_owner(&d), ITEM(i));
        ck_assert_ptr_null(gather__deque_pop_owner(&d));
        ck_assert(!gather__deque_nonempty(&d));
        ck_assert(gather__deque_valid(&d));
        gather__deque_destroy(&d);
    }
}
END_TEST

START_TEST(test_thief_steals_oldest_first_every_length)
{
    for (size_t len = 0; len <= 256; len++) {
        gather__deque d;
        ck_assert_int_eq(gather__deque_init(&d, 2), 0);
        for (size_t i = 0; i < len; i++)
            ck_assert_int_eq(gather__deque_push_owner(&d, ITEM(i)), 0);
        for (size_t i = 0; i < len; i++) {
            void *x = NULL;
            ck_assert_int_eq(gather__deque_steal(&d, &x), 0);
            ck_assert_ptr_eq(x, ITEM(i));
        }
        void *x = NULL;
        ck_assert_int_eq(gather__deque_steal(&d, &x), ENOENT);
        ck_assert(gather__deque_valid(&d));
        gather__deque_destroy(&d);
    }
}
END_TEST

START_TEST(test_mixed_ends_keep_every_item_once)
{
    /* Interleave pushes, pops and steals on one thread across growths. */
    gather__deque d;
    ck_assert_int_eq(gather__deque_init(&d, 2), 0);
    enum { N = 5000 };
    static unsigned char seen[N];
    memset(seen, 0, sizeof seen);
    size_t pushed = 0, taken = 0;
    uint64_t rng = 42;
    while (taken < N) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        unsigned op = (unsigned)(rng >> 60) % 4;
        if (op <= 1 && pushed < N) {
            ck_assert_int_eq(gather__deque_push_owner(&d, ITEM(pushed)), 0);
            pushed++;
        } else if (op == 2) {
            void *x = gather__deque_pop_owner(&d);
            if (x != NULL) {
                seen[INDEX(x)]++;
                taken++;
            }
        } else {
            void *x = NULL;
            if (gather__deque_steal(&d, &x) == 0) {
                seen[INDEX(x)]++;
                taken++;
            }
        }
        if (pushed == N && !gather__deque_nonempty(&d))
            break;
        ck_assert(gather__deque_valid(&d));
    }
    ck_assert_uint_eq(taken, N);
    for (size_t i = 0; i < N; i++)
        ck_assert_uint_eq(seen[i], 1);
    gather__deque_destroy(&d);
}
END_TEST

/* ---- concurrent: one owner, seven thieves ------------------------------- */

/*
 * One owner pushes and pops while seven thieves steal, on a deque that
 * starts with two slots. Phase 1: the owner pushes one long burst, so that
 * more than 2^GROWTHS items are in the deque at once and the ring doubles at
 * least GROWTHS times while thieves read it; then it pops the rest back.
 * Phase 2: random bursts of pushes (half of them of 1 to 4 items), each
 * followed by a random number of pops or by pops until empty, so both ends
 * are busy and the owner's pop races the thieves for the last item. Every
 * item has its own counter of takes: each must end at exactly 1, and the
 * takes must add up to the pushes. Sanitizer builds push fewer items (phase
 * 2 is shorter), with the same 21 growths.
 */
enum { THIEVES = 7 };

#if TU_SANITIZED
#define STRESS_ITEMS 4000000u
#else
#define STRESS_ITEMS 30000000u
#endif
#define STRESS_GROWTHS 21
/* Thieves take at most a quarter of phase 1's items (see thief_may_steal);
 * the burst leaves more than 2^STRESS_GROWTHS in the deque even then. */
#define BURST_ITEMS ((((size_t)1 << STRESS_GROWTHS) + 1 + 2 * THIEVES) * 4 / 3 + 1)
_Static_assert(BURST_ITEMS < STRESS_ITEMS, "phase 2 has items to push");

typedef struct concurrent {
    gather__deque d;
    size_t n;
    atomic_uchar *taken;       /* per item: times taken */
    pthread_barrier_t start;
    /* Own cache lines: the owner writes the first, the thieves the second. */
    alignas(GATHER__CACHELINE) atomic_size_t pushed; /* phase 1's pushes */
    atomic_bool first_burst;   /* phase 1: thieves are rationed */
    atomic_bool owner_done;
    alignas(GATHER__CACHELINE) atomic_size_t stolen; /* thieves' takes */
    atomic_size_t foreign; /* takes of something that was never pushed */
} concurrent;

/* In phase 1 a thief steals only while the thieves hold less than a quarter
 * of what was pushed: on two cores seven thieves could otherwise keep the
 * deque nearly empty, and the ring would not grow. (Seven thieves passing
 * the test at once, each with a steal not yet counted, overshoot by a few:
 * BURST_ITEMS allows for 2 * THIEVES.) */
static bool thief_may_steal(concurrent *c)
{
    if (!atomic_load_explicit(&c->first_burst, memory_order_relaxed))
        return true;
    size_t pushed = atomic_load_explicit(&c->pushed, memory_order_relaxed);
    size_t stolen = atomic_load_explicit(&c->stolen, memory_order_relaxed);
    return (stolen + 1) * 4 <= pushed;
}

static void take(concurrent *c, void *x)
{
    if (x == NULL || INDEX(x) >= c->n) /* an empty or garbage slot was taken */
        atomic_fetch_add_explicit(&c->foreign, 1, memory_order_relaxed);
    else
        atomic_fetch_add_explicit(&c->taken[INDEX(x)], 1, memory_order_relaxed);
}

static void *thief(void *arg)
{
    concurrent *c = arg;
    pthread_barrier_wait(&c->start);
    for (;;) {
        void *x = NULL;
        int rc = thief_may_steal(c) ? gather__deque_steal(&c->d, &x) : ENOENT;
        if (rc == 0) {
            take(c, x);
            atomic_fetch_add_explicit(&c->stolen, 1, memory_order_relaxed);
        } else if (rc == ENOENT) {
            if (atomic_load_explicit(&c->owner_done, memory_order_acquire) &&
                !gather__deque_nonempty(&c->d))
                break;
            sched_yield(); /* two cores: let the owner push */
        }
    }
    return NULL;
}

/* No ck_assert in the owner's loops: in fork mode every Check assertion
 * that passes still writes its location to a pipe (a system call). */
static void owner_push(concurrent *c, size_t item, size_t *failed)
{
    if (gather__deque_push_owner(&c->d, ITEM(item)) != 0)
        (*failed)++;
}

/* Pops up to `count` items; returns how many it got. */
static size_t owner_pop(concurrent *c, size_t count)
{
    size_t got = 0;
    for (; got < count; got++) {
        void *x = gather__deque_pop_owner(&c->d);
        if (x == NULL)
            break;
        take(c, x);
    }
    return got;
}

/* Growths so far: the ring started with 2 slots and each growth retired
 * the previous ring onto the new one's chain. */
static int growths(gather__deque *d)
{
    gather__deque_buf *b = atomic_load_explicit(&d->buf, memory_order_relaxed);
    int n = 0;
    for (gather__deque_buf *r = b->retired; r != NULL; r = r->retired)
        n++;
    ck_assert_int_eq((int64_t)2 << n, b->mask + 1);
    return n;
}

START_TEST(test_concurrent_steals_take_every_item_exactly_once)
{
    concurrent c;
    c.n = STRESS_ITEMS;
    c.taken = calloc(c.n, sizeof *c.taken);
    ck_assert_ptr_nonnull(c.taken);
    ck_assert_int_eq(gather__deque_init(&c.d, 2), 0);
    atomic_init(&c.pushed, 0);
    atomic_init(&c.stolen, 0);
    atomic_init(&c.foreign, 0);
    atomic_init(&c.first_burst, true);
    atomic_init(&c.owner_done, false);
    pthread_barrier_init(&c.start, NULL, THIEVES + 1);
    pthread_t t[THIEVES];
    for (int i = 0; i < THIEVES; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, thief, &c), 0);
    pthread_barrier_wait(&c.start);
    uint64_t t0 = tu_mono_ns();

    size_t next = 0, push_failed = 0;
    for (; next < BURST_ITEMS; next++) {
        owner_push(&c, next, &push_failed);
        atomic_store_explicit(&c.pushed, next + 1, memory_order_relaxed);
    }
    atomic_store_explicit(&c.first_burst, false, memory_order_relaxed);
    int burst_growths = growths(&c.d);
    /* The owner takes back what is left of the burst, meeting the thieves
     * somewhere in the middle; phase 2 then starts from an empty deque, so
     * its pops race the thieves for the last item. */
    size_t popped = owner_pop(&c, SIZE_MAX);

    uint64_t rng = 7;
    while (next < c.n) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        /* Half the bursts are tiny, and half the rounds pop until empty:
         * each of those ends in a race with the thieves for the last item
         * (a pop whose store-load order or CAS were wrong loses items or
         * takes them twice here). */
        size_t burst = 1 + (size_t)(rng >> 58); /* 1..64 */
        if (rng & (1u << 20))
            burst = 1 + burst % 4;
        for (size_t i = 0; i < burst && next < c.n; i++, next++)
            owner_push(&c, next, &push_failed);
        size_t pops = (size_t)(rng >> 40) % (burst + 1);
        popped += owner_pop(&c, (rng & (1u << 21)) ? SIZE_MAX : pops);
    }
    popped += owner_pop(&c, SIZE_MAX);
    atomic_store_explicit(&c.owner_done, true, memory_order_release);
    for (int i = 0; i < THIEVES; i++)
        pthread_join(t[i], NULL);

    size_t stolen = atomic_load(&c.stolen), bad = 0;
    for (size_t i = 0; i < c.n; i++)
        if (atomic_load_explicit(&c.taken[i], memory_order_relaxed) != 1)
            bad++;
    int total_growths = growths(&c.d);
    fprintf(stderr,
            "deque stress: %zu items, %zu stolen by %d thieves, %zu popped, "
            "%zu taken other than once, %d growths (%d in the first burst of "
            "%zu), capacity %lld, %.2f s\n",
            c.n, stolen, THIEVES, popped, bad, total_growths, burst_growths,
            (size_t)BURST_ITEMS, (long long)2 << total_growths,
            (double)(tu_mono_ns() - t0) / 1e9);
    ck_assert_uint_eq(push_failed, 0);
    size_t foreign = atomic_load(&c.foreign);
    ck_assert_uint_eq(foreign, 0);
    ck_assert_uint_eq(bad, 0);
    ck_assert_uint_eq(stolen + popped, c.n);
    ck_assert_int_ge(burst_growths, STRESS_GROWTHS);
    ck_assert(gather__deque_valid(&c.d));
    pthread_barrier_destroy(&c.start);
    gather__deque_destroy(&c.d);
    free(c.taken);
}
END_TEST

static Suite *deque_suite(void)
{
    Suite *s = suite_create("deque");
    TCase *tc = tcase_create("sequential");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_owner_pops_newest_first_every_length);
    tcase_add_test(tc, test_thief_steals_oldest_first_every_length);
    tcase_add_test(tc, test_mixed_ends_keep_every_item_once);
    suite_add_tcase(s, tc);
    tc = tcase_create("concurrent");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_concurrent_steals_take_every_item_exactly_once);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(deque_suite());
}
