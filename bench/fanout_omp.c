/* SPDX-License-Identifier: MIT */
/* Fan-out with OpenMP tasks: inside `omp single`, n `omp task` of a trivial
 * child (writes its index), then `omp taskwait`. Reports the time per child
 * (warm runs) and the peak RSS growth per outstanding task over the first,
 * cold run (fanout<n>_rss). libgomp runs new tasks at once, undeferred, when
 * more than 64 per thread are queued, so its memory stays flat. */
#include <omp.h>

#include "common.h"

#ifndef BENCH_RUNTIME
#error "BENCH_RUNTIME must name the OpenMP runtime: gomp or libomp"
#endif

int main(int argc, char **argv)
{
    bench_opts o = bench_parse(argc, argv);
    long n = bench_arg(argc, argv, "n", 1000000);
    if (n < 1)
        bench_fail("n must be positive");
    size_t *res = bench_xmalloc((size_t)n * sizeof *res);
    bench_touch(res, (size_t)n * sizeof *res);
    char num[32], name[48], rss_name[56];
    snprintf(name, sizeof name, "fanout%s", bench_count(n, num, sizeof num));
    snprintf(rss_name, sizeof rss_name, "%s_rss", name);
#pragma omp parallel num_threads(o.threads)
    { /* threads started */
    }

    for (int r = 0; r <= o.reps; r++) {
        uint64_t rss0 = bench_peak_rss();
        uint64_t t0 = bench_now_ns();
#pragma omp parallel num_threads(o.threads)
#pragma omp single
        {
            for (size_t i = 0; i < (size_t)n; i++) {
#pragma omp task
                res[i] = i + 1;
            }
#pragma omp taskwait
        }
        uint64_t t1 = bench_now_ns();
        uint64_t rss1 = bench_peak_rss();
        uint64_t sum = 0;
        for (long i = 0; i < n; i++)
            sum += res[i];
        if (sum != (uint64_t)n * ((uint64_t)n + 1) / 2)
            bench_fail("fan-out results are wrong");
        double ns = (double)(t1 - t0) / (double)n;
        if (r == 0)
            bench_report(rss_name, BENCH_STR(BENCH_RUNTIME), o.threads,
                         (double)(rss1 - rss0) / (double)n, "B/task",
                         "n=%ld peak_rss_mb=%.1f cold_ns_per_task=%.1f", n,
                         (double)rss1 / 1048576.0, ns);
        else
            bench_report(name, BENCH_STR(BENCH_RUNTIME), o.threads, ns, "ns/task",
                         "n=%ld total_ms=%.2f", n, bench_ms(t0, t1));
    }
    free(res);
    return 0;
}
