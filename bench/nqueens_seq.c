/* SPDX-License-Identifier: MIT */
/* n-queens(n), sequential bitmask backtracking: the baseline of nqueens. */
#include "common.h"

int main(int argc, char **argv)
{
    bench_opts o = bench_parse(argc, argv);
    int n = (int)bench_arg(argc, argv, "n", 12);
    if (n < 1 || n > 15)
        bench_fail("n must be 1..15");
    unsigned all = (1u << n) - 1;
    char name[32];
    snprintf(name, sizeof name, "nqueens%d", n);

    for (int r = 0; r < o.warmup + o.reps; r++) {
        uint64_t t0 = bench_now_ns();
        volatile long v = nq_seq(all, 0, 0, 0);
        uint64_t t1 = bench_now_ns();
        if (v != nq_expected(n))
            bench_fail("nqueens(%d) = %ld, expected %ld", n, (long)v, nq_expected(n));
        if (r >= o.warmup)
            bench_report(name, "seq", 1, bench_ms(t0, t1), "ms", "n=%d", n);
    }
    return 0;
}
