/*
 * check_deque.c - the Chase-Lev deque (lib/deque.c), through its internal
 * API: order, growth, invariants, and "every item taken exactly once" with
 * one owner pushing and popping while thieves steal.
 */
#include "internal.h"
#include "testutil.h"

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

/* ---- concurrent: one owner, several thieves ------------------------------- */

enum { THIEVES = 3 };

typedef struct concurrent {
    gather__deque d;
    size_t n;
    atomic_uchar *taken;   /* per item: times taken */
    atomic_bool owner_done;
    atomic_size_t stolen;
    pthread_barrier_t start;
} concurrent;

static void *thief(void *arg)
{
    concurrent *c = arg;
    pthread_barrier_wait(&c->start);
    for (;;) {
        void *x = NULL;
        int rc = gather__deque_steal(&c->d, &x);
        if (rc == 0) {
            atomic_fetch_add_explicit(&c->taken[INDEX(x)], 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&c->stolen, 1, memory_order_relaxed);
        } else if (rc == ENOENT &&
                   atomic_load_explicit(&c->owner_done, memory_order_acquire) &&
                   !gather__deque_nonempty(&c->d)) {
            break;
        }
    }
    return NULL;
}

START_TEST(test_concurrent_steals_take_every_item_exactly_once)
{
    concurrent c;
    c.n = TU_SANITIZED ? 200000 : 2000000;
    c.taken = calloc(c.n, sizeof *c.taken);
    ck_assert_ptr_nonnull(c.taken);
    ck_assert_int_eq(gather__deque_init(&c.d, 2), 0); /* grows ~20 times */
    atomic_init(&c.owner_done, false);
    atomic_init(&c.stolen, 0);
    pthread_barrier_init(&c.start, NULL, THIEVES + 1);
    pthread_t t[THIEVES];
    for (int i = 0; i < THIEVES; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, thief, &c), 0);
    pthread_barrier_wait(&c.start);

    /* The owner pushes in bursts and pops part of each burst back, so both
     * ends are busy and the last-item race between pop and steal happens. */
    uint64_t rng = 7;
    size_t next = 0;
    while (next < c.n) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        size_t burst = 1 + (size_t)(rng >> 58); /* 1..64 */
        for (size_t i = 0; i < burst && next < c.n; i++, next++)
            ck_assert_int_eq(gather__deque_push_owner(&c.d, ITEM(next)), 0);
        size_t pops = (size_t)(rng >> 40) % (burst + 1);
        for (size_t i = 0; i < pops; i++) {
            void *x = gather__deque_pop_owner(&c.d);
            if (x == NULL)
                break;
            atomic_fetch_add_explicit(&c.taken[INDEX(x)], 1, memory_order_relaxed);
        }
    }
    for (void *x; (x = gather__deque_pop_owner(&c.d)) != NULL;)
        atomic_fetch_add_explicit(&c.taken[INDEX(x)], 1, memory_order_relaxed);
    atomic_store_explicit(&c.owner_done, true, memory_order_release);
    for (int i = 0; i < THIEVES; i++)
        pthread_join(t[i], NULL);

    size_t bad = 0;
    for (size_t i = 0; i < c.n; i++)
        if (atomic_load(&c.taken[i]) != 1)
            bad++;
    ck_assert_uint_eq(bad, 0);
    ck_assert(gather__deque_valid(&c.d));
    printf("deque: %zu items, %zu stolen by %d thieves\n", c.n,
           atomic_load(&c.stolen), THIEVES);
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
