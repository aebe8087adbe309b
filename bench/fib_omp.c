/* SPDX-License-Identifier: MIT */
/* fib(n) with OpenMP tasks, one task per call: `omp task` for fib(n-1),
 * fib(n-2) inline, `omp taskwait`. At or below `cutoff`, sequential. Built
 * twice: with gcc (libgomp, runtime "gomp") and clang (libomp, "libomp"). */
#include <omp.h>

#include "common.h"

#ifndef BENCH_RUNTIME
#error "BENCH_RUNTIME must name the OpenMP runtime: gomp or libomp"
#endif

static long g_cutoff;

static long fib_par(long n)
{
    if (n < 2)
        return n;
    if (n <= g_cutoff)
        return fib_seq(n);
    long x, y;
#pragma omp task shared(x)
    x = fib_par(n - 1);
    y = fib_par(n - 2);
#pragma omp taskwait
    return x + y;
}

int main(int argc, char **argv)
{
    bench_opts o = bench_parse(argc, argv);
    long n = bench_arg(argc, argv, "n", 32);
    g_cutoff = bench_arg(argc, argv, "cutoff", 0);
    long expect = fib_expected(n), spawns = fib_spawns(n, g_cutoff);
    char name[64];
    fib_case(n, g_cutoff, name, sizeof name);

    for (int r = 0; r < o.warmup + o.reps; r++) {
        long v = 0;
        uint64_t t0 = bench_now_ns();
#pragma omp parallel num_threads(o.threads)
#pragma omp single
        v = fib_par(n);
        uint64_t t1 = bench_now_ns();
        if (v != expect)
            bench_fail("fib(%ld) = %ld, expected %ld", n, v, expect);
        if (r >= o.warmup)
            bench_report(name, BENCH_STR(BENCH_RUNTIME), o.threads, bench_ms(t0, t1), "ms",
                         "n=%ld cutoff=%ld spawns=%ld ns_per_spawn=%.1f", n, g_cutoff, spawns,
                         spawns ? (double)(t1 - t0) / (double)spawns : 0.0);
    }
    return 0;
}
