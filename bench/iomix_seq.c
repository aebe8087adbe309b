/* SPDX-License-Identifier: MIT */
/* Blocking IO mix, sequential: the 2n tasks of iomix one after the other
 * (n sleeps of `ms`, default 10 ms, and n CPU tasks of about 1 ms). */
#include "common.h"

int main(int argc, char **argv)
{
    bench_opts o = bench_parse(argc, argv);
    iomix_opts m = iomix_parse(argc, argv);
    volatile uint64_t *sink = bench_xmalloc(m.tasks * sizeof *sink);

    for (int r = 0; r < o.warmup + o.reps; r++) {
        uint64_t sum = 0;
        uint64_t t0 = bench_now_ns();
        for (size_t i = 0; i < m.tasks; i++)
            sum += iomix_task(i, m.sleep_ns, sink);
        uint64_t t1 = bench_now_ns();
        iomix_verify(sum, m.tasks);
        if (r >= o.warmup)
            iomix_report("seq", 1, &m, t0, t1);
    }
    free((void *)sink);
    return 0;
}
