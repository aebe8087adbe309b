/* SPDX-License-Identifier: MIT */
/* n-queens(n) on oneTBB: in the first `depth` rows, one task_group run() per
 * free column, then wait(); below, sequential. */
#include <tbb/task_arena.h>
#include <tbb/task_group.h>

#include "common.h"

static int g_depth;

static long nq_par(unsigned all, unsigned cols, unsigned d1, unsigned d2)
{
    if (cols == all)
        return 1;
    if (bench_popcount(cols) >= g_depth)
        return nq_seq(all, cols, d1, d2);
    long counts[32];
    int k = 0;
    tbb::task_group g;
    unsigned avail = all & ~(cols | d1 | d2);
    while (avail) {
        unsigned bit = avail & (0u - avail);
        avail -= bit;
        long *slot = &counts[k++];
        g.run([=] {
            *slot = nq_par(all, cols | bit, ((d1 | bit) << 1) & all, (d2 | bit) >> 1);
        });
    }
    g.wait();
    long count = 0;
    for (int i = 0; i < k; i++)
        count += counts[i];
    return count;
}

int main(int argc, char **argv)
{
    bench_opts o = bench_parse(argc, argv);
    int n = (int)bench_arg(argc, argv, "n", 12);
    g_depth = (int)bench_arg(argc, argv, "depth", 3);
    if (n < 1 || n > 15)
        bench_fail("n must be 1..15");
    unsigned all = (1u << n) - 1;
    char name[32];
    snprintf(name, sizeof name, "nqueens%d", n);
    tbb::task_arena arena(o.threads);

    for (int r = 0; r < o.warmup + o.reps; r++) {
        long v = 0;
        uint64_t t0 = bench_now_ns();
        arena.execute([&] { v = nq_par(all, 0, 0, 0); });
        uint64_t t1 = bench_now_ns();
        if (v != nq_expected(n))
            bench_fail("nqueens(%d) = %ld, expected %ld", n, v, nq_expected(n));
        if (r >= o.warmup)
            bench_report(name, "tbb", o.threads, bench_ms(t0, t1), "ms",
                         "n=%d depth=%d", n, g_depth);
    }
    return 0;
}
