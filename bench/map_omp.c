/* SPDX-License-Identifier: MIT */
/* External map with OpenMP: n small jobs (about 100 ns each) from main, on a
 * team of `threads` (main is one of them).
 *   mode=task  `omp single`, n `omp task`, barrier   (runtime "<rt>")
 *   mode=pfor  `omp parallel for` over [0, n)        (runtime "<rt>_pfor") */
#include <omp.h>

#include "common.h"

#ifndef BENCH_RUNTIME
#error "BENCH_RUNTIME must name the OpenMP runtime: gomp or libomp"
#endif

int main(int argc, char **argv)
{
    bench_opts o = bench_parse(argc, argv);
    long n = bench_arg(argc, argv, "n", 1000000);
    const char *mode = bench_arg_str(argc, argv, "mode", "task");
    int pfor = strcmp(mode, "pfor") == 0;
    if (!pfor && strcmp(mode, "task") != 0)
        bench_fail("mode must be task or pfor");
    if (n < 1)
        bench_fail("n must be positive");
    size_t un = (size_t)n;
    uint64_t *out = bench_xmalloc(un * sizeof *out);
    bench_touch(out, un * sizeof *out);
    uint64_t expect = map_expected(un);
    const char *runtime = pfor ? BENCH_STR(BENCH_RUNTIME) "_pfor" : BENCH_STR(BENCH_RUNTIME);

    for (int r = 0; r < o.warmup + o.reps; r++) {
        uint64_t t0 = bench_now_ns();
        if (pfor) {
#pragma omp parallel for num_threads(o.threads)
            for (size_t i = 0; i < un; i++)
                out[i] = bench_work(i, WORK_ROUNDS);
        } else {
#pragma omp parallel num_threads(o.threads)
#pragma omp single
            for (size_t i = 0; i < un; i++) {
#pragma omp task
                out[i] = bench_work(i, WORK_ROUNDS);
            }
        }
        uint64_t t1 = bench_now_ns();
        map_verify(out, un, expect);
        memset(out, 0, un * sizeof *out);
        if (r >= o.warmup)
            map_report(runtime, o.threads, un, t0, t1);
    }
    free(out);
    return 0;
}
