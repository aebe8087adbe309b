/* SPDX-License-Identifier: MIT */
/* Blocking IO mix with OpenMP tasks on the default team: `omp single`, n
 * tasks that sleep `ms` (default 10 ms) interleaved with n CPU tasks of about
 * 1 ms, then the barrier. */
#include <omp.h>

#include "common.h"

#ifndef BENCH_RUNTIME
#error "BENCH_RUNTIME must name the OpenMP runtime: gomp or libomp"
#endif

int main(int argc, char **argv)
{
    bench_opts o = bench_parse(argc, argv);
    iomix_opts m = iomix_parse(argc, argv);
    size_t tasks = m.tasks;
    uint64_t sleep_ns = m.sleep_ns;
    volatile uint64_t *sink = bench_xmalloc(tasks * sizeof *sink);
    int threads = omp_get_max_threads();

    for (int r = 0; r < o.warmup + o.reps; r++) {
        uint64_t sum = 0;
        uint64_t t0 = bench_now_ns();
#pragma omp parallel
#pragma omp single
        for (size_t i = 0; i < tasks; i++) {
#pragma omp task
            {
                uint64_t v = iomix_task(i, sleep_ns, sink);
#pragma omp atomic
                sum += v;
            }
        }
        uint64_t t1 = bench_now_ns();
        iomix_verify(sum, tasks);
        if (r >= o.warmup)
            iomix_report(BENCH_STR(BENCH_RUNTIME), threads, &m, t0, t1);
    }
    free((void *)sink);
    return 0;
}
