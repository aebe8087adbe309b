/* SPDX-License-Identifier: MIT */
/* Parallel merge sort of n ints on gather: sort the two halves (one spawned,
 * one inline, then wait), then a parallel merge (split the larger run at its
 * middle, binary-search the other, spawn one side). Leaves of SORT_LEAF /
 * MERGE_LEAF elements run the sequential kernels of common.h. */
#include <gather.h>

#include "common.h"

typedef struct sort_arg {
    int *a, *t;
    size_t n;
    int in_a;
} sort_arg;

typedef struct merge_arg {
    const int *A, *B;
    size_t na, nb;
    int *dst;
} merge_arg;

static void pmerge(const int *A, size_t na, const int *B, size_t nb, int *dst);
static void psort(int *a, int *t, size_t n, int in_a);

static int merge_task(void *arg, void **result)
{
    const merge_arg *m = arg;
    (void)result;
    pmerge(m->A, m->na, m->B, m->nb, m->dst);
    return 0;
}

static int sort_task(void *arg, void **result)
{
    const sort_arg *s = arg;
    (void)result;
    psort(s->a, s->t, s->n, s->in_a);
    return 0;
}

static void join(gather_future *f)
{
    BENCH_CHECK(gather_future_wait(f, NULL));
    gather_future_release(f);
}

static void pmerge(const int *A, size_t na, const int *B, size_t nb, int *dst)
{
    if (na < nb) {
        const int *p = A;
        A = B;
        B = p;
        size_t x = na;
        na = nb;
        nb = x;
    }
    if (na + nb <= MERGE_LEAF) {
        merge_seq(A, na, B, nb, dst);
        return;
    }
    size_t ma = na / 2, mb = lower_bound_int(B, nb, A[ma]);
    dst[ma + mb] = A[ma];
    merge_arg left = {A, B, ma, mb, dst};
    gather_future *f;
    BENCH_CHECK(gather_submit(gather_current_pool(), merge_task, &left, &f));
    pmerge(A + ma + 1, na - ma - 1, B + mb, nb - mb, dst + ma + mb + 1);
    join(f);
}

/* Result in a when in_a, else in t (see msort_seq). */
static void psort(int *a, int *t, size_t n, int in_a)
{
    if (n <= SORT_LEAF) {
        msort_seq(a, t, n, in_a);
        return;
    }
    size_t h = n / 2;
    sort_arg left = {a, t, h, !in_a};
    gather_future *f;
    BENCH_CHECK(gather_submit(gather_current_pool(), sort_task, &left, &f));
    psort(a + h, t + h, n - h, !in_a);
    join(f);
    if (in_a)
        pmerge(t, h, t + h, n - h, a);
    else
        pmerge(a, h, a + h, n - h, t);
}

int main(int argc, char **argv)
{
    bench_opts o = bench_parse(argc, argv);
    long n = bench_arg(argc, argv, "n", 10000000);
    if (n < 1)
        bench_fail("n must be positive");
    int *a = bench_xmalloc((size_t)n * sizeof *a);
    int *t = bench_xmalloc((size_t)n * sizeof *t);
    char num[32], name[48];
    snprintf(name, sizeof name, "msort%s", bench_count(n, num, sizeof num));

    gather_pool_options po;
    memset(&po, 0, sizeof po);
    po.threads = (size_t)o.threads;
    po.name = "bench";
    gather_pool *pool;
    BENCH_CHECK(gather_pool_create(&pool, &po));

    for (int r = 0; r < o.warmup + o.reps; r++) {
        sort_fill(a, (size_t)n, 42u + (uint64_t)r);
        uint64_t sum = sort_sum(a, (size_t)n);
        sort_arg root = {a, t, (size_t)n, 1};
        uint64_t t0 = bench_now_ns();
        gather_future *f;
        BENCH_CHECK(gather_submit(pool, sort_task, &root, &f));
        join(f);
        uint64_t t1 = bench_now_ns();
        sort_verify(a, (size_t)n, sum);
        if (r >= o.warmup)
            bench_report(name, "gather", o.threads, bench_ms(t0, t1), "ms", "n=%ld", n);
    }
    BENCH_CHECK(gather_pool_destroy(pool));
    free(a);
    free(t);
    return 0;
}
