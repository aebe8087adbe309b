/* SPDX-License-Identifier: MIT */
/* Idle cost of oneTBB: a task_arena of `threads` slots runs one task_group
 * task, then the process's CPU time is measured while nothing runs. */
#include <tbb/task_arena.h>
#include <tbb/task_group.h>

#include "common.h"

int main(int argc, char **argv)
{
    bench_opts o = bench_parse(argc, argv);
    long ms = bench_arg(argc, argv, "ms", 1000);
    tbb::task_arena arena(o.threads);
    arena.execute([] {
        tbb::task_group g;
        g.run([] {});
        g.wait();
    });
    idle_measure(ms, "tbb", o.threads);
    return 0;
}
