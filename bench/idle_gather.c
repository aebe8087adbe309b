/* SPDX-License-Identifier: MIT */
/* Idle cost of a gather pool: create it, run one task, then measure the CPU
 * time the process burns while nothing is submitted (see idle_measure).
 * elastic=1: an elastic pool (max_threads = 4 x threads, with its monitor
 * thread) whose one task ran a blocking region: the monitor's ticks while
 * the task ran and its sleep after are part of the measurement (runtime
 * label gather_elastic). */
#include <gather.h>

#include "common.h"

static int nop(void *arg, void **result)
{
    (void)arg;
    (void)result;
    return 0;
}

static int block_briefly(void *arg, void **result)
{
    (void)arg;
    (void)result;
    gather_blocking_begin();
    bench_sleep_ns(2000000u);
    gather_blocking_end();
    return 0;
}

int main(int argc, char **argv)
{
    bench_opts o = bench_parse(argc, argv);
    long ms = bench_arg(argc, argv, "ms", 1000);
    bool elastic = bench_arg(argc, argv, "elastic", 0) != 0;
    gather_pool_options po;
    memset(&po, 0, sizeof po);
    po.threads = (size_t)o.threads;
    po.name = "bench";
    if (elastic)
        po.max_threads = 4 * (size_t)o.threads;
    gather_pool *pool;
    BENCH_CHECK(gather_pool_create(&pool, &po));
    gather_future *f;
    BENCH_CHECK(gather_submit(pool, elastic ? block_briefly : nop, NULL, &f));
    BENCH_CHECK(gather_future_wait(f, NULL));
    gather_future_release(f);
    idle_measure(ms, elastic ? "gather_elastic" : "gather", o.threads);
    BENCH_CHECK(gather_pool_destroy(pool));
    return 0;
}
