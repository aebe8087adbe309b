/* SPDX-License-Identifier: MIT */
/* Parallel merge sort of n ints on oneTBB: task_group run() one half, the
 * other inline, wait(); then the same parallel merge as the other runtimes. */
#include <tbb/task_arena.h>
#include <tbb/task_group.h>

#include <utility>

#include "common.h"

static void pmerge(const int *A, size_t na, const int *B, size_t nb, int *dst)
{
    if (na < nb) {
        std::swap(A, B);
        std::swap(na, nb);
    }
    if (na + nb <= MERGE_LEAF) {
        merge_seq(A, na, B, nb, dst);
        return;
    }
    size_t ma = na / 2, mb = lower_bound_int(B, nb, A[ma]);
    dst[ma + mb] = A[ma];
    tbb::task_group g;
    g.run([=] { pmerge(A, ma, B, mb, dst); });
    pmerge(A + ma + 1, na - ma - 1, B + mb, nb - mb, dst + ma + mb + 1);
    g.wait();
}

static void psort(int *a, int *t, size_t n, int in_a)
{
    if (n <= SORT_LEAF) {
        msort_seq(a, t, n, in_a);
        return;
    }
    size_t h = n / 2;
    tbb::task_group g;
    g.run([=] { psort(a, t, h, !in_a); });
    psort(a + h, t + h, n - h, !in_a);
    g.wait();
    if (in_a)
        pmerge(t, h, t + h, n - h, a);
    else
        pmerge(a, h, a + h, n - h, t);
}

int main(int argc, char **argv)
{
    bench_opts o = bench_parse(argc, argv);
    long n = bench_arg(argc, argv, "n", 10000000);
    if (n < 1)
        bench_fail("n must be positive");
    int *a = static_cast<int *>(bench_xmalloc((size_t)n * sizeof *a));
    int *t = static_cast<int *>(bench_xmalloc((size_t)n * sizeof *t));
    char num[32], name[48];
    snprintf(name, sizeof name, "msort%s", bench_count(n, num, sizeof num));
    tbb::task_arena arena(o.threads);

    for (int r = 0; r < o.warmup + o.reps; r++) {
        sort_fill(a, (size_t)n, 42u + (uint64_t)r);
        uint64_t sum = sort_sum(a, (size_t)n);
        uint64_t t0 = bench_now_ns();
        arena.execute([&] { psort(a, t, (size_t)n, 1); });
        uint64_t t1 = bench_now_ns();
        sort_verify(a, (size_t)n, sum);
        if (r >= o.warmup)
            bench_report(name, "tbb", o.threads, bench_ms(t0, t1), "ms", "n=%ld", n);
    }
    free(a);
    free(t);
    return 0;
}
