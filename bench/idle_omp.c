/* SPDX-License-Identifier: MIT */
/* Idle cost of an OpenMP runtime: a team of `threads` runs one task, then
 * the process's CPU time is measured while nothing runs (each runtime's
 * default wait policy: libgomp spins a while, libomp for KMP_BLOCKTIME). */
#include <omp.h>

#include "common.h"

#ifndef BENCH_RUNTIME
#error "BENCH_RUNTIME must name the OpenMP runtime: gomp or libomp"
#endif

int main(int argc, char **argv)
{
    bench_opts o = bench_parse(argc, argv);
    long ms = bench_arg(argc, argv, "ms", 1000);
    volatile int ran = 0;
#pragma omp parallel num_threads(o.threads)
#pragma omp single
    {
#pragma omp task
        ran = 1;
    }
    if (!ran)
        bench_fail("the task did not run");
    idle_measure(ms, BENCH_STR(BENCH_RUNTIME), o.threads);
    return 0;
}
