/* SPDX-License-Identifier: MIT */
/* Merge sort of n pseudo-random ints, sequential (the same kernel the
 * parallel versions run at their leaves): the baseline of msort. */
#include "common.h"

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
        msort_seq(a, t, (size_t)n, 1);
        uint64_t t1 = bench_now_ns();
        sort_verify(a, (size_t)n, sum);
        if (r >= o.warmup)
            bench_report(name, "seq", 1, bench_ms(t0, t1), "ms", "n=%ld", n);
    }
    free(a);
    free(t);
    return 0;
}
