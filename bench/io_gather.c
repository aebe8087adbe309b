/* SPDX-License-Identifier: MIT */
/* Blocking IO on gather's default pool, as a new user writes it: main
 * submits n tasks that each block `ms` in nanosleep (an API call) to the
 * default pool (NULL, not sized here: no GATHER_THREADS, no resize) and
 * gathers them with gather_futures(). Reports the wall time in seconds
 * (io<n>, or io<n>_<ms>ms for another delay than 100 ms), then the peak RSS
 * and the pool's threads_peak and spares_started (gather_report.h).
 * Arguments: n= (default 64), ms= (default 100), reps=, warmup=. */
#include <gather.h>

#include "common.h"
#include "gather_report.h"

#define IO_MS 100

static uint64_t g_sleep_ns;

static int task(void *arg, void **result)
{
    bench_sleep_ns(g_sleep_ns);
    *result = arg;
    return 0;
}

/* One gather of n blocking tasks; checks that each ran once. Returns the
 * wall time in ns. */
static uint64_t run_once(size_t n, gather_future **futs, gather_result *res)
{
    uint64_t t0 = bench_now_ns();
    for (size_t i = 0; i < n; i++)
        BENCH_CHECK(gather_submit(NULL, task, (void *)(uintptr_t)(i + 1), &futs[i]));
    BENCH_CHECK(gather_futures(futs, n, res, 0));
    uint64_t t1 = bench_now_ns();
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        sum += (uintptr_t)res[i].value;
        gather_future_release(futs[i]);
    }
    if (sum != (uint64_t)n * ((uint64_t)n + 1) / 2)
        bench_fail("io: not every task ran exactly once");
    return t1 - t0;
}

int main(int argc, char **argv)
{
    bench_opts o = bench_parse(argc, argv);
    long n = bench_arg(argc, argv, "n", 64);
    long ms = bench_arg(argc, argv, "ms", IO_MS);
    if (n < 1 || ms < 0 || ms > 60000)
        bench_fail("io: n must be positive and ms in 0..60000");
    g_sleep_ns = (uint64_t)ms * 1000000u;
    gather_future **futs = bench_xmalloc((size_t)n * sizeof *futs);
    gather_result *res = bench_xmalloc((size_t)n * sizeof *res);
    int threads = (int)gather_pool_threads(NULL); /* creates the pool */
    if (threads == 0)
        bench_fail("the default pool could not start");
    char name[48];
    if (ms == IO_MS)
        snprintf(name, sizeof name, "io%ld", n);
    else
        snprintf(name, sizeof name, "io%ld_%ldms", n, ms);

    for (int r = 0; r < o.warmup + o.reps; r++) {
        uint64_t ns = run_once((size_t)n, futs, res);
        if (r >= o.warmup)
            bench_report(name, "gather", threads, (double)ns / 1e9, "s",
                         "n=%ld ms=%ld floor_s=%.3f", n, ms, (double)ms / 1e3);
    }
    bench_gather_pool_report(name, threads);
    free(futs);
    free(res);
    return 0;
}
