/* SPDX-License-Identifier: MIT */
/* Continuation chains on gather: n gather_then() links built off the pool
 * behind a held head task (each link released as soon as the next one
 * exists, as an application drops what it no longer needs), then the head
 * is let go and the time until the last link is done is divided by n:
 * ns per link, each run as a task by whichever worker completed the link
 * before it. mode=live: the same chain built while it runs (the head is
 * not held), the builder racing the workers. Every link checks that it
 * runs after the one before it. */
#include <gather.h>

#include <stdatomic.h>

#include "common.h"

static atomic_int go;
static atomic_long ran;

static int head(void *arg, void **result)
{
    (void)arg;
    (void)result;
    while (!atomic_load_explicit(&go, memory_order_acquire))
        sched_yield();
    return 0;
}

static int link_fn(gather_future *prev, void *arg, void **result)
{
    (void)prev;
    long index = (long)(intptr_t)arg;
    /* relaxed: links run one after the other, ordered by the chain. */
    if (atomic_load_explicit(&ran, memory_order_relaxed) != index)
        bench_fail("link %ld ran out of order", index);
    atomic_store_explicit(&ran, index + 1, memory_order_relaxed);
    *result = arg;
    return 0;
}

int main(int argc, char **argv)
{
    bench_opts o = bench_parse(argc, argv);
    long n = bench_arg(argc, argv, "n", 1000000);
    const char *mode = bench_arg_str(argc, argv, "mode", "held");
    bool held = strcmp(mode, "held") == 0;
    if (n < 1 || (!held && strcmp(mode, "live") != 0))
        bench_fail("n must be positive, mode held or live");
    char num[32], name[48];
    snprintf(name, sizeof name, "then%s%s", bench_count(n, num, sizeof num),
             held ? "" : "_live");

    gather_pool_options po;
    memset(&po, 0, sizeof po);
    po.threads = (size_t)o.threads;
    po.name = "bench";
    gather_pool *pool;
    BENCH_CHECK(gather_pool_create(&pool, &po));
    for (int r = -o.warmup; r < o.reps; r++) {
        atomic_store(&go, held ? 0 : 1);
        atomic_store(&ran, 0);
        uint64_t t0 = bench_now_ns();
        gather_future *prev;
        BENCH_CHECK(gather_submit(pool, head, NULL, &prev));
        for (long i = 0; i < n; i++) {
            gather_future *next;
            BENCH_CHECK(gather_then(prev, pool, link_fn, (void *)(intptr_t)i, &next));
            gather_future_release(prev);
            prev = next;
        }
        uint64_t built = bench_now_ns();
        if (held)
            atomic_store_explicit(&go, 1, memory_order_release);
        uint64_t t1 = held ? built : t0;
        void *value;
        BENCH_CHECK(gather_future_wait(prev, &value));
        uint64_t t2 = bench_now_ns();
        gather_future_release(prev);
        if ((intptr_t)value != n - 1 || atomic_load(&ran) != n)
            bench_fail("the chain did not run to its end");
        if (r >= 0)
            bench_report(name, "gather", o.threads, (double)(t2 - t1) / (double)n,
                         "ns/link", "n=%ld build_ns_per_link=%.1f peak_rss_mb=%.1f",
                         n, (double)(built - t0) / (double)n,
                         (double)bench_peak_rss() / 1048576.0);
    }
    BENCH_CHECK(gather_pool_destroy(pool));
    return 0;
}
