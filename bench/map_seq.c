/* SPDX-License-Identifier: MIT */
/* The map case's n small jobs (about 100 ns each) run in a plain loop: the
 * cost of the work itself, the baseline of map. */
#include "common.h"

int main(int argc, char **argv)
{
    bench_opts o = bench_parse(argc, argv);
    long n = bench_arg(argc, argv, "n", 1000000);
    if (n < 1)
        bench_fail("n must be positive");
    uint64_t *out = bench_xmalloc((size_t)n * sizeof *out);
    bench_touch(out, (size_t)n * sizeof *out);
    uint64_t expect = map_expected((size_t)n);

    for (int r = 0; r < o.warmup + o.reps; r++) {
        uint64_t t0 = bench_now_ns();
        for (size_t i = 0; i < (size_t)n; i++)
            out[i] = bench_work(i, WORK_ROUNDS);
        uint64_t t1 = bench_now_ns();
        map_verify(out, (size_t)n, expect);
        memset(out, 0, (size_t)n * sizeof *out);
        if (r >= o.warmup)
            map_report("seq", 1, (size_t)n, t0, t1);
    }
    free(out);
    return 0;
}
