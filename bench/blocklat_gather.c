/* SPDX-License-Identifier: MIT */
/* How soon an elastic pool notices that every worker is blocked: a fresh
 * pool (threads = the CPUs, max_threads = threads + 4, so that no idle
 * spare is left from an earlier round) gets `threads` tasks that note the
 * time and then block `ms` in nanosleep, and one probe task queued behind
 * them that notes when it starts. The latency of a round is the probe's
 * start minus the moment the last blocker entered its sleep: the monitor's
 * detection plus the start of a spare. Reports the p50 and p99 over
 * `rounds` rounds in ms (blocklat_p50, blocklat_p99), and how many rounds
 * started a spare. Only gather has this mechanism: no peer.
 * Arguments: rounds= (default 200), ms= (default 20). */
#include <gather.h>

#include <stdatomic.h>
#include <stdlib.h>

#include "common.h"

static uint64_t g_sleep_ns;

typedef struct round_state {
    _Atomic uint64_t last_entered; /* the latest blocker's entry time */
    _Atomic uint64_t probe_started;
} round_state;

static int blocker(void *arg, void **result)
{
    round_state *r = arg;
    uint64_t now = bench_now_ns();
    uint64_t seen = atomic_load(&r->last_entered);
    while (now > seen && !atomic_compare_exchange_weak(&r->last_entered, &seen, now))
        ;
    bench_sleep_ns(g_sleep_ns);
    *result = NULL;
    return 0;
}

static int probe(void *arg, void **result)
{
    round_state *r = arg;
    atomic_store(&r->probe_started, bench_now_ns());
    *result = NULL;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* One round on a fresh pool; returns the latency in ns (0 when the probe
 * started before the last blocker slept: nothing to measure). */
static uint64_t run_round(size_t threads, uint64_t *spares)
{
    gather_pool_options po = {0};
    po.threads = threads;
    po.max_threads = threads + 4;
    gather_pool *pool;
    BENCH_CHECK(gather_pool_create(&pool, &po));
    round_state r;
    atomic_init(&r.last_entered, 0);
    atomic_init(&r.probe_started, 0);
    gather_future **fs = bench_xmalloc((threads + 1) * sizeof *fs);
    for (size_t i = 0; i < threads; i++)
        BENCH_CHECK(gather_submit(pool, blocker, &r, &fs[i]));
    BENCH_CHECK(gather_submit(pool, probe, &r, &fs[threads]));
    BENCH_CHECK(gather_futures(fs, threads + 1, NULL, 0));
    for (size_t i = 0; i <= threads; i++)
        gather_future_release(fs[i]);
    free(fs);
    gather_pool_stats st;
    BENCH_CHECK(gather_pool_stats_get(pool, &st));
    *spares += st.spares_started;
    BENCH_CHECK(gather_pool_destroy(pool));
    uint64_t start = atomic_load(&r.probe_started), last = atomic_load(&r.last_entered);
    return start > last ? start - last : 0;
}

int main(int argc, char **argv)
{
    bench_opts o = bench_parse(argc, argv);
    long rounds = bench_arg(argc, argv, "rounds", 200);
    long ms = bench_arg(argc, argv, "ms", 20);
    if (rounds < 1 || ms < 1 || ms > 10000)
        bench_fail("blocklat: rounds must be positive and ms in 1..10000");
    g_sleep_ns = (uint64_t)ms * 1000000u;
    size_t threads = gather_pool_threads(NULL);
    uint64_t *lat = bench_xmalloc((size_t)rounds * sizeof *lat);
    for (int rep = 0; rep < o.warmup + o.reps; rep++) {
        uint64_t spares = 0;
        for (long i = 0; i < rounds; i++)
            lat[i] = run_round(threads, &spares);
        qsort(lat, (size_t)rounds, sizeof *lat, cmp_u64);
        if (rep < o.warmup)
            continue;
        double p50 = (double)lat[rounds / 2] / 1e6;
        double p99 = (double)lat[(rounds * 99) / 100 < rounds ? (rounds * 99) / 100 : rounds - 1] / 1e6;
        bench_report("blocklat_p50", "gather", (int)threads, p50, "ms",
                     "rounds=%ld ms=%ld spares=%" PRIu64, rounds, ms, spares);
        bench_report("blocklat_p99", "gather", (int)threads, p99, "ms",
                     "rounds=%ld ms=%ld", rounds, ms);
    }
    free(lat);
    return 0;
}
