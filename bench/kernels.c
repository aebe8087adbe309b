/* SPDX-License-Identifier: MIT */
/* The sequential kernels of the benchmarks (declared in common.h). Compiled
 * once, by the build's C compiler, and linked into every program. */
#include "common.h"

long fib_seq(long n)
{
    return n < 2 ? n : fib_seq(n - 1) + fib_seq(n - 2);
}

long nq_seq(unsigned all, unsigned cols, unsigned d1, unsigned d2)
{
    if (cols == all)
        return 1;
    long count = 0;
    unsigned avail = all & ~(cols | d1 | d2);
    while (avail) {
        unsigned bit = avail & (0u - avail);
        avail -= bit;
        count += nq_seq(all, cols | bit, ((d1 | bit) << 1) & all, (d2 | bit) >> 1);
    }
    return count;
}

void merge_seq(const int *A, size_t na, const int *B, size_t nb, int *dst)
{
    size_t i = 0, j = 0, k = 0;
    while (i < na && j < nb) {
        int a = A[i], b = B[j];
        size_t take_b = b < a; /* no branch to mispredict on random data */
        dst[k++] = take_b ? b : a;
        j += take_b;
        i += 1 - take_b;
    }
    while (i < na)
        dst[k++] = A[i++];
    while (j < nb)
        dst[k++] = B[j++];
}

void msort_seq(int *a, int *t, size_t n, int in_a)
{
    if (n <= 32) {
        for (size_t i = 1; i < n; i++) {
            int x = a[i];
            size_t j = i;
            for (; j > 0 && a[j - 1] > x; j--)
                a[j] = a[j - 1];
            a[j] = x;
        }
        if (!in_a)
            memcpy(t, a, n * sizeof *a);
        return;
    }
    size_t h = n / 2;
    msort_seq(a, t, h, !in_a);
    msort_seq(a + h, t + h, n - h, !in_a);
    if (in_a)
        merge_seq(t, h, t + h, n - h, a);
    else
        merge_seq(a, h, a + h, n - h, t);
}

uint64_t bench_work(uint64_t x, int rounds)
{
    for (int i = 0; i < rounds; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        x ^= x >> 29;
    }
    return x;
}
