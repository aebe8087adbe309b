/* SPDX-License-Identifier: MIT */
/*
 * check_stress.c - randomized stress with a fixed seed.
 *
 * Several external pthreads, released together by a barrier, hammer one
 * shared pool with random operations: batches of tasks (successes, failures
 * with known codes and payloads, parents that submit and gather subtasks),
 * gathered with random flags, cancelled at random, gathered by two threads
 * at once, aggregated with gather_all, waited with gather_wait_any.
 * Afterwards EVERY future is checked against what its task must have
 * produced, every task ran at most once (exactly once unless cancelled
 * before it started), and the pool's counters add up.
 *
 * GATHER_STRESS_SEED overrides the seed (printed on stderr);
 * GATHER_STRESS_SCALE (a factor, e.g. 0.1 or 4) the amount of work, which is
 * cut by default under sanitizers and valgrind.
 */
#include "testutil.h"

#include <string.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define ST_HAVE_VALGRIND 1
#endif
#endif


#define ST_EXTERNAL 4     /* external pthreads */
#define ST_ROUNDS 1500    /* rounds per external thread at scale 1 */
#define ST_MAX_BATCH 12
#define ST_MAX_SUB 5
#define ST_CODE_BASE 2000 /* failure codes: ST_CODE_BASE + id % 97 */

enum { K_OK, K_FAIL, K_PARENT };

typedef struct st_task {
    int valid;         /* laid out by a batch */
    int id;
    int kind;
    int fail_code;
    int spin;
    int parent;        /* index of the parent task, -1 for a batch task */
    int sub_first;     /* K_PARENT: its subtasks */
    int nsub;
    unsigned sub_flags; /* K_PARENT: how it gathers them */
    int sub_use_all;    /* K_PARENT: through gather_all instead */
    gather_future *f;   /* set by whoever submitted it */
    atomic_int ran;
    atomic_int saw_cancel;
    atomic_int cancel_true; /* gather_future_cancel() returned true */
    atomic_int may_cancel;  /* a cancel may have been requested for it */
    /* Addresses used as results. */
    char value_slot, payload_slot, cancel_slot;
} st_task;

static st_task *tasks;
static size_t tasks_cap;
static atomic_size_t tasks_used;
static atomic_long submitted_count;
static gather_pool *st_pool;

/* ---- error log ---------------------------------------------------------- */

static atomic_long st_errors;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char first_errors[8][160];
static int nlogged;

static void st_fail(const char *what, int id, long a, long b)
{
    atomic_fetch_add(&st_errors, 1);
    pthread_mutex_lock(&log_lock);
    if (nlogged < 8)
        snprintf(first_errors[nlogged++], sizeof first_errors[0],
                 "%s (task %d: %ld vs %ld)", what, id, a, b);
    pthread_mutex_unlock(&log_lock);
}

/* ---- rng ---------------------------------------------------------------- */

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static unsigned rnd(uint64_t *s, unsigned n) { return (unsigned)(splitmix(s) % n); }

static unsigned rnd_flags(uint64_t *s)
{
    static const unsigned fl[3] = {0, GATHER_RETURN_ERRORS, GATHER_CANCEL_ON_ERROR};
    return fl[rnd(s, 3)];
}

/* ---- tasks -------------------------------------------------------------- */

static atomic_int spin_sink;

static void spin(int n)
{
    unsigned x = 0;
    for (int i = 0; i < n; i++)
        x = x * 31u + (unsigned)i;
    if (x == 42) /* keeps the loop; practically never true */
        atomic_fetch_add_explicit(&spin_sink, 1, memory_order_relaxed);
}

static int leaf_fn(void *arg, void **result)
{
    st_task *t = (st_task *)arg;
    atomic_fetch_add(&t->ran, 1);
    spin(t->spin);
    if (gather_cancel_requested()) {
        atomic_store(&t->saw_cancel, 1);
        *result = &t->cancel_slot;
        return ECANCELED;
    }
    if (t->kind == K_FAIL) {
        *result = &t->payload_slot;
        return t->fail_code;
    }
    *result = &t->value_slot;
    return 0;
}

/* Checks what a gather reported against the futures' (final) states. */
static void check_outcome(gather_future *const fs[], size_t n,
                          const gather_result *res, int rc, unsigned flags,
                          int id, bool rc_from_entry)
{
    if (flags & GATHER_RETURN_ERRORS) {
        if (rc != 0)
            st_fail("RETURN_ERRORS gather returned non-zero", id, rc, 0);
    }
    int found = 0;
    for (size_t i = 0; i < n; i++) {
        if (res[i].error == EINPROGRESS) {
            if (rc == 0)
                st_fail("gather returned 0 with an entry in progress", id, 0, 0);
            if (res[i].value != NULL)
                st_fail("EINPROGRESS entry with a value", id, 0, 0);
            continue;
        }
        if (!gather_future_done(fs[i])) {
            st_fail("entry reported for a future not done", id, res[i].error, 0);
            continue;
        }
        if (res[i].error != gather_future_error(fs[i]))
            st_fail("entry error differs from its future", id, res[i].error,
                    gather_future_error(fs[i]));
        if (res[i].value != gather_future_value(fs[i]))
            st_fail("entry value differs from its future", id, 0, 0);
        if (rc == 0 && !(flags & GATHER_RETURN_ERRORS) && res[i].error != 0)
            st_fail("gather returned 0 with a failed entry", id, res[i].error, 0);
        if (rc != 0 && res[i].error == rc)
            found = 1;
    }
    if (rc_from_entry && rc != 0 && !found)
        st_fail("returned code matches no entry", id, rc, 0);
}

static int parent_fn(void *arg, void **result)
{
    st_task *t = (st_task *)arg;
    atomic_fetch_add(&t->ran, 1);
    gather_pool *me = gather_current_pool();
    if (me != st_pool)
        st_fail("parent on the wrong pool", t->id, 0, 0);
    gather_future *fs[ST_MAX_SUB];
    size_t n = 0;
    for (int i = 0; i < t->nsub; i++) {
        st_task *s = &tasks[t->sub_first + i];
        int rc = gather_submit(me, leaf_fn, s, &s->f);
        if (rc != 0) {
            st_fail("subtask submit failed", s->id, rc, 0);
            continue;
        }
        atomic_fetch_add(&submitted_count, 1);
        fs[n++] = s->f;
    }
    gather_result res[ST_MAX_SUB];
    if (t->sub_use_all) {
        gather_future *agg = NULL;
        int rc = gather_all(fs, n, t->sub_flags, &agg);
        if (rc != 0) {
            st_fail("gather_all in parent failed", t->id, rc, 0);
        } else {
            void *v = NULL;
            rc = gather_future_wait(agg, &v);
            if (n > 0 && v == NULL)
                st_fail("aggregate without a value", t->id, rc, 0);
            else if (n > 0)
                check_outcome(fs, n, (gather_result *)v, rc, t->sub_flags, t->id, true);
            gather_future_release(agg);
        }
    } else {
        int rc = gather_futures(fs, n, res, t->sub_flags);
        check_outcome(fs, n, res, rc, t->sub_flags, t->id, true);
    }
    if (gather_cancel_requested()) {
        atomic_store(&t->saw_cancel, 1);
        *result = &t->cancel_slot;
        return ECANCELED;
    }
    *result = &t->value_slot;
    return 0;
}

/* ---- external threads --------------------------------------------------- */

typedef struct ext {
    pthread_t th;
    int idx;
    int rounds;
    uint64_t rng;
    pthread_barrier_t *barrier;
    int old[64]; /* recent batch task ids, for random cancels */
    int nold;
} ext;

static void mark_may_cancel(st_task *t) { atomic_store(&t->may_cancel, 1); }

/* Marks every listed future's task (the list's tasks are batch tasks). */
static void mark_list(st_task **b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        mark_may_cancel(b[i]);
}

typedef struct overlap {
    pthread_t th;
    gather_future **fs;
    size_t n;
    unsigned flags;
    gather_result res[ST_MAX_BATCH];
    int rc;
} overlap;

static void *overlap_main(void *arg)
{
    overlap *o = (overlap *)arg;
    o->rc = gather_futures(o->fs, o->n, o->res, o->flags);
    return NULL;
}

static void do_batch(ext *e)
{
    uint64_t *rng = &e->rng;
    size_t k = 1 + rnd(rng, ST_MAX_BATCH);
    st_task *b[ST_MAX_BATCH];
    gather_future *fs[ST_MAX_BATCH];
    size_t n = 0;
    for (size_t i = 0; i < k; i++) {
        unsigned r = rnd(rng, 100);
        int kind = r < 55 ? K_OK : r < 80 ? K_FAIL : K_PARENT;
        /* A parent's subtasks are laid out right after it. */
        size_t need = kind == K_PARENT ? 1 + 2 + rnd(rng, ST_MAX_SUB - 1) : 1;
        size_t first = atomic_fetch_add(&tasks_used, need);
        if (first + need > tasks_cap)
            break; /* out of records (not expected with the sizes used) */
        st_task *t = &tasks[first];
        t->valid = 1;
        t->id = (int)first;
        t->kind = kind;
        t->fail_code = ST_CODE_BASE + (int)(first % 97);
        t->spin = rnd(rng, 4) == 0 ? (int)rnd(rng, 2000) : (int)rnd(rng, 50);
        t->parent = -1;
        t->f = NULL;
        if (kind == K_PARENT) {
            t->sub_first = (int)first + 1;
            t->nsub = (int)need - 1;
            t->sub_flags = rnd_flags(rng);
            t->sub_use_all = rnd(rng, 3) == 0;
            for (int j = 0; j < t->nsub; j++) {
                st_task *s = &tasks[first + 1 + (size_t)j];
                s->valid = 1;
                s->id = (int)first + 1 + j;
                s->kind = rnd(rng, 3) == 0 ? K_FAIL : K_OK;
                s->fail_code = ST_CODE_BASE + (s->id % 97);
                s->spin = (int)rnd(rng, 100);
                s->parent = (int)first;
                s->f = NULL;
                if (t->sub_flags & GATHER_CANCEL_ON_ERROR)
                    mark_may_cancel(s);
            }
        }
        b[n++] = t;
    }
    if (n == 0)
        return;
    for (size_t i = 0; i < n; i++) {
        int rc = gather_submit(st_pool, b[i]->kind == K_PARENT ? parent_fn : leaf_fn,
                               b[i], &b[i]->f);
        if (rc != 0) {
            st_fail("batch submit failed", b[i]->id, rc, 0);
            return;
        }
        atomic_fetch_add(&submitted_count, 1);
        fs[i] = b[i]->f;
        if (e->nold < 64)
            e->old[e->nold++] = b[i]->id;
        else
            e->old[rnd(rng, 64)] = b[i]->id;
    }

    gather_result res[ST_MAX_BATCH];
    switch (rnd(rng, 7)) {
    case 0:
    case 1: { /* gather with random flags */
        unsigned fl = rnd_flags(rng);
        if (fl & GATHER_CANCEL_ON_ERROR)
            mark_list(b, n);
        int rc = gather_futures(fs, n, res, fl);
        check_outcome(fs, n, res, rc, fl, b[0]->id, true);
        break;
    }
    case 2: { /* random cancels (this batch and older ones), then gather */
        for (int c = (int)rnd(rng, 4); c >= 0; c--) {
            st_task *t;
            if (rnd(rng, 2) == 0 || e->nold == 0)
                t = b[rnd(rng, (unsigned)n)];
            else
                t = &tasks[e->old[rnd(rng, (unsigned)e->nold)]];
            mark_may_cancel(t);
            if (gather_future_cancel(t->f))
                atomic_fetch_add(&t->cancel_true, 1);
        }
        unsigned fl = rnd(rng, 2) ? GATHER_RETURN_ERRORS : 0;
        int rc = gather_futures(fs, n, res, fl);
        check_outcome(fs, n, res, rc, fl, b[0]->id, true);
        break;
    }
    case 3: { /* gather_all, sometimes cancelled */
        unsigned fl = rnd_flags(rng);
        int cancel = rnd(rng, 4) == 0;
        if ((fl & GATHER_CANCEL_ON_ERROR) || cancel)
            mark_list(b, n);
        gather_future *agg = NULL;
        int rc = gather_all(fs, n, fl, &agg);
        if (rc != 0) {
            st_fail("gather_all failed", b[0]->id, rc, 0);
            break;
        }
        int cancelled = cancel && gather_future_cancel(agg);
        void *v = NULL;
        rc = gather_future_wait(agg, &v);
        if (v == NULL) {
            st_fail("aggregate without a value", b[0]->id, rc, 0);
        } else if (cancelled) {
            if (rc != ECANCELED || !gather_future_cancelled(agg))
                st_fail("cancelled aggregate not ECANCELED", b[0]->id, rc, 0);
            /* Entries: in progress, or the child's state. */
            check_outcome(fs, n, (gather_result *)v, ECANCELED, 0,
                          b[0]->id, false);
        } else {
            check_outcome(fs, n, (gather_result *)v, rc, fl, b[0]->id, true);
        }
        gather_future_release(agg);
        break;
    }
    case 4: { /* wait_any, then the rest */
        size_t idx = ST_MAX_BATCH + 1;
        int rc = gather_wait_any(fs, n, GATHER_FOREVER, &idx);
        if (rc != 0 || idx >= n)
            st_fail("wait_any failed", b[0]->id, rc, (long)idx);
        else if (!gather_future_done(fs[idx]))
            st_fail("wait_any index not done", b[idx]->id, (long)idx, 0);
        rc = gather_futures(fs, n, res, GATHER_RETURN_ERRORS);
        check_outcome(fs, n, res, rc, GATHER_RETURN_ERRORS, b[0]->id, true);
        break;
    }
    case 5: { /* two threads gather the same list at once */
        overlap o;
        o.fs = fs;
        o.n = n;
        o.flags = rnd_flags(rng);
        o.rc = -1;
        unsigned fl = rnd_flags(rng);
        if ((fl | o.flags) & GATHER_CANCEL_ON_ERROR)
            mark_list(b, n);
        if (pthread_create(&o.th, NULL, overlap_main, &o) != 0) {
            st_fail("pthread_create", 0, 0, 0);
            break;
        }
        int rc = gather_futures(fs, n, res, fl);
        pthread_join(o.th, NULL);
        check_outcome(fs, n, res, rc, fl, b[0]->id, true);
        check_outcome(fs, n, o.res, o.rc, o.flags, b[0]->id, true);
        break;
    }
    default: /* left alone: checked at the end */
        break;
    }
}

static void *ext_main(void *arg)
{
    ext *e = (ext *)arg;
    pthread_barrier_wait(e->barrier);
    for (int r = 0; r < e->rounds; r++)
        do_batch(e);
    return NULL;
}

/* ---- the final check ---------------------------------------------------- */

static void check_task(st_task *t, uint64_t *ran_n, uint64_t *never_n,
                       uint64_t *with_future)
{
    int ran = atomic_load(&t->ran);
    gather_future *f = t->f;
    if (f == NULL) {
        /* Only a subtask whose parent never ran. */
        if (t->parent < 0 || atomic_load(&tasks[t->parent].ran) != 0)
            st_fail("task without a future", t->id, t->parent, 0);
        if (ran != 0)
            st_fail("unsubmitted task ran", t->id, ran, 0);
        return;
    }
    (*with_future)++;
    if (!gather_future_done(f)) {
        st_fail("future not done at the end", t->id, 0, 0);
        gather_future_release(f);
        return;
    }
    int err = gather_future_error(f);
    void *val = gather_future_value(f);
    bool cancelled = gather_future_cancelled(f);
    if (ran < 0 || ran > 1)
        st_fail("task ran more than once", t->id, ran, 1);
    if (atomic_load(&t->cancel_true) > 0 && ran != 0)
        st_fail("cancel returned true but the task ran", t->id, ran, 0);
    if (ran == 0) {
        (*never_n)++;
        if (err != ECANCELED || val != NULL || !cancelled)
            st_fail("never-run task not cancelled cleanly", t->id, err, cancelled);
        if (!atomic_load(&t->may_cancel))
            st_fail("task never ran though nobody cancelled it", t->id, 0, 0);
    } else {
        (*ran_n)++;
        if (atomic_load(&t->saw_cancel)) {
            if (!atomic_load(&t->may_cancel))
                st_fail("task saw a cancel nobody requested", t->id, 0, 0);
            if (err != ECANCELED || val != &t->cancel_slot || !cancelled)
                st_fail("task that saw cancel has the wrong outcome", t->id, err,
                        cancelled);
        } else if (t->kind == K_FAIL) {
            if (err != t->fail_code || val != &t->payload_slot || cancelled)
                st_fail("failing task has the wrong outcome", t->id, err,
                        t->fail_code);
        } else {
            if (err != 0 || val != &t->value_slot || cancelled)
                st_fail("successful task has the wrong outcome", t->id, err, 0);
        }
    }
    gather_future_release(f);
}

static double stress_scale(void)
{
    const char *s = getenv("GATHER_STRESS_SCALE");
    if (s && *s) {
        double d = strtod(s, NULL);
        if (d > 0)
            return d;
    }
    double scale = 1.0;
#if TU_SANITIZED
    scale = 0.25;
#endif
#ifdef ST_HAVE_VALGRIND
    if (RUNNING_ON_VALGRIND)
        scale = 0.15;
#endif
    return scale;
}

static uint64_t stress_seed(void)
{
    const char *s = getenv("GATHER_STRESS_SEED");
    if (s && *s)
        return strtoull(s, NULL, 0);
    return 0x5EED2024ull;
}

static void run_stress(size_t pool_threads, uint64_t seed_mix)
{
    uint64_t seed = stress_seed();
    double scale = stress_scale();
    int rounds = (int)(ST_ROUNDS * scale);
    if (rounds < 1)
        rounds = 1;
    fprintf(stderr, "stress: pool of %zu threads, seed=0x%llx (GATHER_STRESS_SEED), "
            "scale=%g (GATHER_STRESS_SCALE), %d rounds x %d threads\n",
            pool_threads, (unsigned long long)seed, scale, rounds, ST_EXTERNAL);

    tasks_cap = (size_t)ST_EXTERNAL * (size_t)rounds * ST_MAX_BATCH * (1 + ST_MAX_SUB);
    tasks = calloc(tasks_cap, sizeof *tasks);
    ck_assert_ptr_nonnull(tasks);
    for (size_t i = 0; i < tasks_cap; i++) {
        atomic_init(&tasks[i].ran, 0);
        atomic_init(&tasks[i].saw_cancel, 0);
        atomic_init(&tasks[i].cancel_true, 0);
        atomic_init(&tasks[i].may_cancel, 0);
    }
    atomic_store(&tasks_used, 0);
    atomic_store(&submitted_count, 0);
    atomic_store(&st_errors, 0);
    nlogged = 0;

    st_pool = tu_pool(pool_threads);
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, ST_EXTERNAL);
    ext e[ST_EXTERNAL];
    for (int i = 0; i < ST_EXTERNAL; i++) {
        memset(&e[i], 0, sizeof e[i]);
        e[i].idx = i;
        e[i].rounds = rounds;
        uint64_t s = seed ^ seed_mix;
        e[i].rng = splitmix(&s) + (uint64_t)i * 0x9E3779B97F4A7C15ull;
        e[i].barrier = &barrier;
        ck_assert_int_eq(pthread_create(&e[i].th, NULL, ext_main, &e[i]), 0);
    }
    for (int i = 0; i < ST_EXTERNAL; i++)
        pthread_join(e[i].th, NULL);
    pthread_barrier_destroy(&barrier);

    /* Drain: parents still running submit their last subtasks. */
    ck_assert_int_eq(gather_pool_shutdown(st_pool, 0), 0);
    gather_pool_stats st;
    ck_assert_int_eq(gather_pool_stats_get(st_pool, &st), 0);
    ck_assert_int_eq(gather_pool_destroy(st_pool), 0);
    st_pool = NULL;

    size_t used = atomic_load(&tasks_used);
    if (used > tasks_cap)
        used = tasks_cap;
    uint64_t ran_n = 0, never_n = 0, with_future = 0;
    for (size_t i = 0; i < used; i++)
        if (tasks[i].valid)
            check_task(&tasks[i], &ran_n, &never_n, &with_future);

    fprintf(stderr, "stress: %zu tasks, %llu submitted, %llu ran, %llu cancelled "
            "before running, %llu stolen, %ld errors\n",
            used, (unsigned long long)with_future, (unsigned long long)ran_n,
            (unsigned long long)never_n, (unsigned long long)st.stolen,
            atomic_load(&st_errors));
    for (int i = 0; i < nlogged; i++)
        fprintf(stderr, "stress error: %s\n", first_errors[i]);
    long errors = atomic_load(&st_errors);
    free(tasks);
    tasks = NULL;

    ck_assert_int_eq(errors, 0);
    ck_assert_uint_eq(with_future, (uint64_t)atomic_load(&submitted_count));
    ck_assert_uint_eq(st.submitted, with_future);
    ck_assert_uint_eq(st.submitted, st.completed + st.cancelled);
    ck_assert_uint_eq(st.completed, ran_n);
    ck_assert_uint_eq(st.cancelled, never_n);
    ck_assert_uint_gt(with_future, (uint64_t)rounds); /* it did work */
}

START_TEST(test_stress_random_ops_two_thread_pool)
{
    run_stress(2, 0);
}
END_TEST

START_TEST(test_stress_random_ops_four_thread_pool)
{
    run_stress(4, 0xABCDEF);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("stress");
    TCase *tc = tcase_create("random");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_stress_random_ops_two_thread_pool);
    tcase_add_test(tc, test_stress_random_ops_four_thread_pool);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
