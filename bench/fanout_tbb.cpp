/* SPDX-License-Identifier: MIT */
/* Fan-out on oneTBB: one task_group, n run() of a trivial child (writes its
 * index), one wait(), inside a task_arena of `threads` slots. Reports the
 * time per child (warm runs) and the peak RSS growth per outstanding task
 * over the first, cold run (fanout<n>_rss). */
#include <tbb/task_arena.h>
#include <tbb/task_group.h>

#include "common.h"

int main(int argc, char **argv)
{
    bench_opts o = bench_parse(argc, argv);
    long n = bench_arg(argc, argv, "n", 1000000);
    if (n < 1)
        bench_fail("n must be positive");
    size_t *res = static_cast<size_t *>(bench_xmalloc((size_t)n * sizeof *res));
    bench_touch(res, (size_t)n * sizeof *res);
    char num[32], name[48], rss_name[56];
    snprintf(name, sizeof name, "fanout%s", bench_count(n, num, sizeof num));
    snprintf(rss_name, sizeof rss_name, "%s_rss", name);
    tbb::task_arena arena(o.threads);
    arena.execute([] {}); /* threads started */

    for (int r = 0; r <= o.reps; r++) {
        uint64_t rss0 = bench_peak_rss();
        uint64_t t0 = bench_now_ns();
        arena.execute([&] {
            tbb::task_group g;
            for (size_t i = 0; i < (size_t)n; i++)
                g.run([res, i] { res[i] = i + 1; });
            g.wait();
        });
        uint64_t t1 = bench_now_ns();
        uint64_t rss1 = bench_peak_rss();
        uint64_t sum = 0;
        for (long i = 0; i < n; i++)
            sum += res[i];
        if (sum != (uint64_t)n * ((uint64_t)n + 1) / 2)
            bench_fail("fan-out results are wrong");
        double ns = (double)(t1 - t0) / (double)n;
        if (r == 0)
            bench_report(rss_name, "tbb", o.threads,
                         (double)(rss1 - rss0) / (double)n, "B/task",
                         "n=%ld peak_rss_mb=%.1f cold_ns_per_task=%.1f", n,
                         (double)rss1 / 1048576.0, ns);
        else
            bench_report(name, "tbb", o.threads, ns, "ns/task",
                         "n=%ld total_ms=%.2f", n, bench_ms(t0, t1));
    }
    free(res);
    return 0;
}
