/* Idle cost of a gather pool: create it, run one task, then measure the CPU
 * time the process burns while nothing is submitted (see idle_measure). */
#include <gather.h>

#include "common.h"

static int nop(void *arg, void **result)
{
    (void)arg;
    (void)result;
    return 0;
}

int main(int argc, char **argv)
{
    bench_opts o = bench_parse(argc, argv);
    long ms = bench_arg(argc, argv, "ms", 1000);
    gather_pool_options po;
    memset(&po, 0, sizeof po);
    po.threads = (size_t)o.threads;
    po.name = "bench";
    gather_pool *pool;
    BENCH_CHECK(gather_pool_create(&pool, &po));
    gather_future *f;
    BENCH_CHECK(gather_submit(pool, nop, NULL, &f));
    BENCH_CHECK(gather_future_wait(f, NULL));
    gather_future_release(f);
    idle_measure(ms, "gather", o.threads);
    BENCH_CHECK(gather_pool_destroy(pool));
    return 0;
}
