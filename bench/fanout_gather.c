/* SPDX-License-Identifier: MIT */
/* Fan-out on gather: one task submits n children (trivial: each returns its
 * index) and gathers them all with one gather_futures(), then releases the
 * futures. Reports the time per child (fanout<n>, warm runs) and the peak
 * RSS growth per outstanding task + future over the first, cold run
 * (fanout<n>_rss), with the application's future and result arrays touched
 * beforehand so that they are not counted. */
#include <gather.h>

#include "common.h"

typedef struct fan {
    size_t n;
    gather_future **futs;
    gather_result *res;
} fan;

static int child(void *arg, void **result)
{
    *result = arg;
    return 0;
}

static int root(void *arg, void **result)
{
    fan *f = arg;
    gather_pool *pool = gather_current_pool();
    (void)result;
    for (size_t i = 0; i < f->n; i++)
        BENCH_CHECK(gather_submit(pool, child, (void *)(uintptr_t)(i + 1), &f->futs[i]));
    int rc = gather_futures(f->futs, f->n, f->res, 0);
    for (size_t i = 0; i < f->n; i++)
        gather_future_release(f->futs[i]);
    return rc;
}

static int nop(void *arg, void **result)
{
    (void)arg;
    (void)result;
    return 0;
}

int main(int argc, char **argv)
{
    bench_opts o = bench_parse(argc, argv);
    long n = bench_arg(argc, argv, "n", 1000000);
    if (n < 1)
        bench_fail("n must be positive");
    fan f = {(size_t)n, bench_xmalloc((size_t)n * sizeof(gather_future *)),
             bench_xmalloc((size_t)n * sizeof(gather_result))};
    bench_touch(f.futs, (size_t)n * sizeof(gather_future *));
    bench_touch(f.res, (size_t)n * sizeof(gather_result));
    char num[32], name[48], rss_name[56];
    snprintf(name, sizeof name, "fanout%s", bench_count(n, num, sizeof num));
    snprintf(rss_name, sizeof rss_name, "%s_rss", name);

    gather_pool_options po;
    memset(&po, 0, sizeof po);
    po.threads = (size_t)o.threads;
    po.name = "bench";
    gather_pool *pool;
    BENCH_CHECK(gather_pool_create(&pool, &po));
    gather_future *w;
    BENCH_CHECK(gather_submit(pool, nop, NULL, &w)); /* threads started */
    BENCH_CHECK(gather_future_wait(w, NULL));
    gather_future_release(w);

    /* Run 0 is cold and measures memory; runs 1..reps are timed. */
    for (int r = 0; r <= o.reps; r++) {
        uint64_t rss0 = bench_peak_rss();
        uint64_t t0 = bench_now_ns();
        gather_future *rf;
        BENCH_CHECK(gather_submit(pool, root, &f, &rf));
        BENCH_CHECK(gather_future_wait(rf, NULL));
        uint64_t t1 = bench_now_ns();
        gather_future_release(rf);
        uint64_t rss1 = bench_peak_rss();
        uint64_t sum = 0;
        for (long i = 0; i < n; i++)
            sum += (uintptr_t)f.res[i].value;
        if (sum != (uint64_t)n * ((uint64_t)n + 1) / 2)
            bench_fail("fan-out results are wrong");
        double ns = (double)(t1 - t0) / (double)n;
        if (r == 0)
            bench_report(rss_name, "gather", o.threads,
                         (double)(rss1 - rss0) / (double)n, "B/task",
                         "n=%ld peak_rss_mb=%.1f cold_ns_per_task=%.1f", n,
                         (double)rss1 / 1048576.0, ns);
        else
            bench_report(name, "gather", o.threads, ns, "ns/task",
                         "n=%ld total_ms=%.2f", n, bench_ms(t0, t1));
    }
    BENCH_CHECK(gather_pool_destroy(pool));
    free(f.futs);
    free(f.res);
    return 0;
}
