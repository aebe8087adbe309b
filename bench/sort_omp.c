/* SPDX-License-Identifier: MIT */
/* Parallel merge sort of n ints with OpenMP tasks: `omp task` one half, the
 * other inline, `omp taskwait`; then the same parallel merge as the other
 * runtimes. */
#include <omp.h>

#include "common.h"

#ifndef BENCH_RUNTIME
#error "BENCH_RUNTIME must name the OpenMP runtime: gomp or libomp"
#endif

static void pmerge(const int *A, size_t na, const int *B, size_t nb, int *dst)
{
    if (na < nb) {
        const int *p = A;
        A = B;
        B = p;
        size_t x = na;
        na = nb;
        nb = x;
    }
    if (na + nb <= MERGE_LEAF) {
        merge_seq(A, na, B, nb, dst);
        return;
    }
    size_t ma = na / 2, mb = lower_bound_int(B, nb, A[ma]);
    dst[ma + mb] = A[ma];
#pragma omp task
    pmerge(A, ma, B, mb, dst);
    pmerge(A + ma + 1, na - ma - 1, B + mb, nb - mb, dst + ma + mb + 1);
#pragma omp taskwait
}

static void psort(int *a, int *t, size_t n, int in_a)
{
    if (n <= SORT_LEAF) {
        msort_seq(a, t, n, in_a);
        return;
    }
    size_t h = n / 2;
#pragma omp task
    psort(a, t, h, !in_a);
    psort(a + h, t + h, n - h, !in_a);
#pragma omp taskwait
    if (in_a)
        pmerge(t, h, t + h, n - h, a);
    else
        pmerge(a, h, a + h, n - h, t);
}

int main(int argc, char **argv)
{
    bench_opts o = bench_parse(argc, argv);
    long n = bench_arg(argc, argv, "n", 10000000);
    if (n < 1)
        bench_fail("n must be positive");
    int *a = bench_xmalloc((size_t)n * sizeof *a);
    int *t = bench_xmalloc((size_t)n * sizeof *t);
    char num[32], name[48];
    snprintf(name, sizeof name, "msort%s", bench_count(n, num, sizeof num));

    for (int r = 0; r < o.warmup + o.reps; r++) {
        sort_fill(a, (size_t)n, 42u + (uint64_t)r);
        uint64_t sum = sort_sum(a, (size_t)n);
        uint64_t t0 = bench_now_ns();
#pragma omp parallel num_threads(o.threads)
#pragma omp single
        psort(a, t, (size_t)n, 1);
        uint64_t t1 = bench_now_ns();
        sort_verify(a, (size_t)n, sum);
        if (r >= o.warmup)
            bench_report(name, BENCH_STR(BENCH_RUNTIME), o.threads,
                         bench_ms(t0, t1), "ms", "n=%ld", n);
    }
    free(a);
    free(t);
    return 0;
}
