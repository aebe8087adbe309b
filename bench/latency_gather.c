/* SPDX-License-Identifier: MIT */
/* Latency on gather, from main (not a pool thread): submit one task, block
 * in gather_future_wait(). Per sample: submit -> task start, and submit ->
 * waiter woken (start latency plus task end -> waiter running; the task spins
 * spin_us so that the waiter is parked by then). Warm: samples back to back.
 * Parked: park_ms of idleness before each sample, so the workers sleep. */
#include <gather.h>

#include "common.h"

static int lat_task(void *arg, void **result)
{
    (void)result;
    lat_body(arg);
    return 0;
}

static void run(gather_pool *pool, lat_series *ls, size_t n, uint64_t pause_ns,
                uint64_t spin_ns)
{
    ls->n = 0;
    for (size_t k = 0; k < n; k++) {
        if (pause_ns)
            bench_sleep_ns(pause_ns);
        lat_sample s = {0, 0, spin_ns};
        gather_future *f;
        uint64_t t0 = bench_now_ns();
        BENCH_CHECK(gather_submit(pool, lat_task, &s, &f));
        BENCH_CHECK(gather_future_wait(f, NULL));
        uint64_t t1 = bench_now_ns();
        gather_future_release(f);
        lat_record(ls, &s, t0, t1);
    }
}

int main(int argc, char **argv)
{
    bench_opts o = bench_parse(argc, argv);
    lat_opts lo = lat_parse(argc, argv);
    gather_pool_options po;
    memset(&po, 0, sizeof po);
    po.threads = (size_t)o.threads;
    po.name = "bench";
    gather_pool *pool;
    BENCH_CHECK(gather_pool_create(&pool, &po));
    lat_series ls = lat_alloc(lo.warm > lo.parked ? lo.warm : lo.parked);

    run(pool, &ls, lo.warm / 10 + 1, 0, lo.spin_ns); /* warm-up */
    run(pool, &ls, lo.warm, 0, lo.spin_ns);
    lat_print(&ls, "warm", "gather", o.threads);
    run(pool, &ls, lo.parked, lo.park_ns, lo.spin_ns);
    lat_print(&ls, "parked", "gather", o.threads);

    lat_free(&ls);
    BENCH_CHECK(gather_pool_destroy(pool));
    return 0;
}
