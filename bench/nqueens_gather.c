/* SPDX-License-Identifier: MIT */
/* n-queens(n) on gather: in the first `depth` rows, one task per free
 * column, all gathered with one gather_futures(); below, sequential. */
#include <gather.h>

#include "common.h"

typedef struct nq_arg {
    unsigned all, cols, d1, d2;
} nq_arg;

static int g_depth;

static long nq_par(unsigned all, unsigned cols, unsigned d1, unsigned d2);

static int nq_task(void *arg, void **result)
{
    const nq_arg *a = arg;
    *result = (void *)(intptr_t)nq_par(a->all, a->cols, a->d1, a->d2);
    return 0;
}

static long nq_par(unsigned all, unsigned cols, unsigned d1, unsigned d2)
{
    if (cols == all)
        return 1;
    if (bench_popcount(cols) >= g_depth)
        return nq_seq(all, cols, d1, d2);
    nq_arg args[32];
    gather_future *futs[32];
    gather_result res[32];
    size_t k = 0;
    unsigned avail = all & ~(cols | d1 | d2);
    while (avail) {
        unsigned bit = avail & (0u - avail);
        avail -= bit;
        args[k].all = all;
        args[k].cols = cols | bit;
        args[k].d1 = ((d1 | bit) << 1) & all;
        args[k].d2 = (d2 | bit) >> 1;
        BENCH_CHECK(gather_submit(gather_current_pool(), nq_task, &args[k], &futs[k]));
        k++;
    }
    BENCH_CHECK(gather_futures(futs, k, res, 0));
    long count = 0;
    for (size_t i = 0; i < k; i++) {
        count += (long)(intptr_t)res[i].value;
        gather_future_release(futs[i]);
    }
    return count;
}

int main(int argc, char **argv)
{
    bench_opts o = bench_parse(argc, argv);
    int n = (int)bench_arg(argc, argv, "n", 12);
    g_depth = (int)bench_arg(argc, argv, "depth", 3);
    if (n < 1 || n > 15)
        bench_fail("n must be 1..15");
    nq_arg root = {(1u << n) - 1, 0, 0, 0};
    char name[32];
    snprintf(name, sizeof name, "nqueens%d", n);

    gather_pool_options po;
    memset(&po, 0, sizeof po);
    po.threads = (size_t)o.threads;
    po.name = "bench";
    gather_pool *pool;
    BENCH_CHECK(gather_pool_create(&pool, &po));

    for (int r = 0; r < o.warmup + o.reps; r++) {
        uint64_t t0 = bench_now_ns();
        gather_future *f;
        BENCH_CHECK(gather_submit(pool, nq_task, &root, &f));
        void *v;
        BENCH_CHECK(gather_future_wait(f, &v));
        uint64_t t1 = bench_now_ns();
        gather_future_release(f);
        if ((long)(intptr_t)v != nq_expected(n))
            bench_fail("nqueens(%d) = %ld, expected %ld", n, (long)(intptr_t)v,
                       nq_expected(n));
        if (r >= o.warmup)
            bench_report(name, "gather", o.threads, bench_ms(t0, t1), "ms",
                         "n=%d depth=%d", n, g_depth);
    }
    BENCH_CHECK(gather_pool_destroy(pool));
    return 0;
}
