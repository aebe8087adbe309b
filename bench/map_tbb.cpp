/* SPDX-License-Identifier: MIT */
/* External map on oneTBB: n small jobs (about 100 ns each) from main, in a
 * task_arena of `threads` slots (main takes one and works too).
 *   mode=group  one task_group, n run(), one wait()   (runtime "tbb")
 *   mode=pfor   tbb::parallel_for over [0, n)          (runtime "tbb_pfor") */
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>
#include <tbb/task_group.h>

#include "common.h"

int main(int argc, char **argv)
{
    bench_opts o = bench_parse(argc, argv);
    long n = bench_arg(argc, argv, "n", 1000000);
    const char *mode = bench_arg_str(argc, argv, "mode", "group");
    bool pfor = strcmp(mode, "pfor") == 0;
    if (!pfor && strcmp(mode, "group") != 0)
        bench_fail("mode must be group or pfor");
    if (n < 1)
        bench_fail("n must be positive");
    size_t un = (size_t)n;
    uint64_t *out = static_cast<uint64_t *>(bench_xmalloc(un * sizeof *out));
    bench_touch(out, un * sizeof *out);
    uint64_t expect = map_expected(un);
    tbb::task_arena arena(o.threads);

    for (int r = 0; r < o.warmup + o.reps; r++) {
        uint64_t t0 = bench_now_ns();
        if (pfor) {
            arena.execute([&] {
                tbb::parallel_for(tbb::blocked_range<size_t>(0, un),
                                  [out](const tbb::blocked_range<size_t> &range) {
                                      for (size_t i = range.begin(); i != range.end(); i++)
                                          out[i] = bench_work(i, WORK_ROUNDS);
                                  });
            });
        } else {
            arena.execute([&] {
                tbb::task_group g;
                for (size_t i = 0; i < un; i++)
                    g.run([out, i] { out[i] = bench_work(i, WORK_ROUNDS); });
                g.wait();
            });
        }
        uint64_t t1 = bench_now_ns();
        map_verify(out, un, expect);
        memset(out, 0, un * sizeof *out);
        if (r >= o.warmup)
            map_report(pfor ? "tbb_pfor" : "tbb", o.threads, un, t0, t1);
    }
    free(out);
    return 0;
}
