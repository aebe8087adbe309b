/* SPDX-License-Identifier: MIT */
/* Blocking IO mix on oneTBB's default arena: one task_group, n run() of a
 * sleep of `ms` (default 10 ms) interleaved with n run() of about 1 ms of
 * CPU, one wait(). */
#include <tbb/task_arena.h>
#include <tbb/task_group.h>

#include <atomic>

#include "common.h"

int main(int argc, char **argv)
{
    bench_opts o = bench_parse(argc, argv);
    iomix_opts m = iomix_parse(argc, argv);
    size_t tasks = m.tasks;
    uint64_t sleep_ns = m.sleep_ns;
    volatile uint64_t *sink =
        static_cast<volatile uint64_t *>(bench_xmalloc(tasks * sizeof *sink));
    int threads = tbb::this_task_arena::max_concurrency();

    for (int r = 0; r < o.warmup + o.reps; r++) {
        std::atomic<uint64_t> sum{0};
        uint64_t t0 = bench_now_ns();
        tbb::task_group g;
        for (size_t i = 0; i < tasks; i++)
            g.run([i, sleep_ns, sink, &sum] {
                sum.fetch_add(iomix_task(i, sleep_ns, sink), std::memory_order_relaxed);
            });
        g.wait();
        uint64_t t1 = bench_now_ns();
        iomix_verify(sum.load(), tasks);
        if (r >= o.warmup)
            iomix_report("tbb", threads, &m, t0, t1);
    }
    free((void *)sink);
    return 0;
}
