/* SPDX-License-Identifier: MIT */
/* fib(n), sequential: the baseline of the fib cases (fib32, fib40_cut25). */
#include "common.h"

int main(int argc, char **argv)
{
    bench_opts o = bench_parse(argc, argv);
    long n = bench_arg(argc, argv, "n", 32);
    long cutoff = bench_arg(argc, argv, "cutoff", 0);
    long expect = fib_expected(n);
    char name[64];
    fib_case(n, cutoff, name, sizeof name);

    for (int r = 0; r < o.warmup + o.reps; r++) {
        uint64_t t0 = bench_now_ns();
        volatile long v = fib_seq(n);
        uint64_t t1 = bench_now_ns();
        if (v != expect)
            bench_fail("fib(%ld) = %ld, expected %ld", n, (long)v, expect);
        if (r >= o.warmup)
            bench_report(name, "seq", 1, bench_ms(t0, t1), "ms", "n=%ld", n);
    }
    return 0;
}
