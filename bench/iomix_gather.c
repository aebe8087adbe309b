/* SPDX-License-Identifier: MIT */
/* Blocking IO mix on gather's default pool (NULL, not sized here: one
 * thread per CPU or GATHER_THREADS): main submits n tasks that sleep `ms`
 * (default 10 ms) interleaved with n CPU tasks of about 1 ms, then gathers
 * all 2n futures. After the timed runs: peak RSS and the pool's
 * threads_peak and spares_started (gather_report.h). */
#include <gather.h>

#include "common.h"
#include "gather_report.h"

static volatile uint64_t *g_sink;
static uint64_t g_sleep_ns;

static int task(void *arg, void **result)
{
    *result = (void *)(uintptr_t)iomix_task((uintptr_t)arg, g_sleep_ns, g_sink);
    return 0;
}

int main(int argc, char **argv)
{
    bench_opts o = bench_parse(argc, argv);
    iomix_opts m = iomix_parse(argc, argv);
    size_t tasks = m.tasks;
    g_sleep_ns = m.sleep_ns;
    g_sink = bench_xmalloc(tasks * sizeof *g_sink);
    gather_future **futs = bench_xmalloc(tasks * sizeof *futs);
    gather_result *res = bench_xmalloc(tasks * sizeof *res);
    int threads = (int)gather_pool_threads(NULL);
    if (threads == 0)
        bench_fail("the default pool could not start");

    for (int r = 0; r < o.warmup + o.reps; r++) {
        uint64_t t0 = bench_now_ns();
        for (size_t i = 0; i < tasks; i++)
            BENCH_CHECK(gather_submit(NULL, task, (void *)(uintptr_t)i, &futs[i]));
        BENCH_CHECK(gather_futures(futs, tasks, res, 0));
        uint64_t t1 = bench_now_ns();
        uint64_t sum = 0;
        for (size_t i = 0; i < tasks; i++) {
            sum += (uintptr_t)res[i].value;
            gather_future_release(futs[i]);
        }
        iomix_verify(sum, tasks);
        if (r >= o.warmup)
            iomix_report("gather", threads, &m, t0, t1);
    }
    char name[48];
    bench_gather_pool_report(iomix_name(&m, name, sizeof name), threads);
    free((void *)g_sink);
    free(futs);
    free(res);
    return 0;
}
