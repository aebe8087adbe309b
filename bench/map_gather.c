/* SPDX-License-Identifier: MIT */
/* External map on gather: from main (not a pool thread), n small jobs
 * (about 100 ns each) and a wait for all of them.
 *   mode=map     one gather_map() call (runtime "gather")
 *   mode=submit  n gather_submit() + one gather_futures() + n releases
 *                (runtime "gather_submit") */
#include <gather.h>

#include "common.h"

static int job(void *arg, void **result)
{
    *result = (void *)(uintptr_t)bench_work((uintptr_t)arg, WORK_ROUNDS);
    return 0;
}

int main(int argc, char **argv)
{
    bench_opts o = bench_parse(argc, argv);
    long n = bench_arg(argc, argv, "n", 1000000);
    const char *mode = bench_arg_str(argc, argv, "mode", "map");
    int submit = strcmp(mode, "submit") == 0;
    if (!submit && strcmp(mode, "map") != 0)
        bench_fail("mode must be map or submit");
    if (n < 1)
        bench_fail("n must be positive");
    size_t un = (size_t)n;
    void **args = bench_xmalloc(un * sizeof *args);
    gather_future **futs = bench_xmalloc(un * sizeof *futs);
    gather_result *res = bench_xmalloc(un * sizeof *res);
    uint64_t *out = bench_xmalloc(un * sizeof *out);
    for (size_t i = 0; i < un; i++)
        args[i] = (void *)(uintptr_t)i;
    bench_touch(futs, un * sizeof *futs);
    bench_touch(res, un * sizeof *res);
    uint64_t expect = map_expected(un);

    gather_pool_options po;
    memset(&po, 0, sizeof po);
    po.threads = (size_t)o.threads;
    po.name = "bench";
    gather_pool *pool;
    BENCH_CHECK(gather_pool_create(&pool, &po));

    for (int r = 0; r < o.warmup + o.reps; r++) {
        uint64_t t0 = bench_now_ns();
        if (submit) {
            for (size_t i = 0; i < un; i++)
                BENCH_CHECK(gather_submit(pool, job, args[i], &futs[i]));
            BENCH_CHECK(gather_futures(futs, un, res, 0));
            for (size_t i = 0; i < un; i++)
                gather_future_release(futs[i]);
        } else {
            BENCH_CHECK(gather_map(pool, job, args, un, res, 0));
        }
        uint64_t t1 = bench_now_ns();
        for (size_t i = 0; i < un; i++)
            out[i] = (uintptr_t)res[i].value;
        map_verify(out, un, expect);
        memset(res, 0, un * sizeof *res);
        if (r >= o.warmup)
            map_report(submit ? "gather_submit" : "gather", o.threads, un, t0, t1);
    }
    BENCH_CHECK(gather_pool_destroy(pool));
    free(args);
    free(futs);
    free(res);
    free(out);
    return 0;
}
