/* Blocking IO mix, sequential: the 2n tasks of iomix one after the other
 * (n sleeps of 1 ms, n CPU tasks of about 1 ms). */
#include "common.h"

int main(int argc, char **argv)
{
    bench_opts o = bench_parse(argc, argv);
    long n = bench_arg(argc, argv, "n", 256);
    if (n < 1)
        bench_fail("n must be positive");
    size_t tasks = 2 * (size_t)n;
    volatile uint64_t *sink = bench_xmalloc(tasks * sizeof *sink);

    for (int r = 0; r < o.warmup + o.reps; r++) {
        uint64_t sum = 0;
        uint64_t t0 = bench_now_ns();
        for (size_t i = 0; i < tasks; i++)
            sum += iomix_task(i, sink);
        uint64_t t1 = bench_now_ns();
        iomix_verify(sum, tasks);
        if (r >= o.warmup)
            iomix_report("seq", 1, n, t0, t1);
    }
    free((void *)sink);
    return 0;
}
