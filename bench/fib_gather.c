/* SPDX-License-Identifier: MIT */
/* fib(n) on gather, one task per call: spawn fib(n-1) on the worker's own
 * pool, compute fib(n-2) inline, then wait for the child (usually still on
 * top of this worker's deque, so the wait runs it right here). At or below
 * `cutoff`, sequential. The root task is submitted from main, off the pool. */
#include <gather.h>

#include "common.h"

static long g_cutoff;

static long fib_par(long n);

static int fib_task(void *arg, void **result)
{
    *result = (void *)(intptr_t)fib_par((long)(intptr_t)arg);
    return 0;
}

static long fib_par(long n)
{
    if (n < 2)
        return n;
    if (n <= g_cutoff)
        return fib_seq(n);
    gather_future *f;
    BENCH_CHECK(gather_submit(gather_current_pool(), fib_task,
                              (void *)(intptr_t)(n - 1), &f));
    long y = fib_par(n - 2);
    void *x;
    BENCH_CHECK(gather_future_wait(f, &x));
    gather_future_release(f);
    return (long)(intptr_t)x + y;
}

int main(int argc, char **argv)
{
    bench_opts o = bench_parse(argc, argv);
    long n = bench_arg(argc, argv, "n", 32);
    g_cutoff = bench_arg(argc, argv, "cutoff", 0);
    long expect = fib_expected(n), spawns = fib_spawns(n, g_cutoff);
    char name[64];
    fib_case(n, g_cutoff, name, sizeof name);

    gather_pool_options po;
    memset(&po, 0, sizeof po);
    po.threads = (size_t)o.threads;
    po.name = "bench";
    gather_pool *pool;
    BENCH_CHECK(gather_pool_create(&pool, &po));

    for (int r = 0; r < o.warmup + o.reps; r++) {
        gather_pool_stats s0, s1;
        BENCH_CHECK(gather_pool_stats_get(pool, &s0));
        uint64_t t0 = bench_now_ns();
        gather_future *f;
        BENCH_CHECK(gather_submit(pool, fib_task, (void *)(intptr_t)n, &f));
        void *v;
        BENCH_CHECK(gather_future_wait(f, &v));
        uint64_t t1 = bench_now_ns();
        gather_future_release(f);
        BENCH_CHECK(gather_pool_stats_get(pool, &s1));
        if ((long)(intptr_t)v != expect)
            bench_fail("fib(%ld) = %ld, expected %ld", n, (long)(intptr_t)v, expect);
        if (r >= o.warmup)
            bench_report(name, "gather", o.threads, bench_ms(t0, t1), "ms",
                         "n=%ld cutoff=%ld spawns=%ld ns_per_spawn=%.1f stolen=%" PRIu64, n,
                         g_cutoff, spawns, spawns ? (double)(t1 - t0) / (double)spawns : 0.0,
                         s1.stolen - s0.stolen);
    }
    BENCH_CHECK(gather_pool_destroy(pool));
    return 0;
}
