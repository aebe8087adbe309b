/* SPDX-License-Identifier: MIT */
/*
 * bench/common.h - what every benchmark program shares: arguments, clocks,
 * memory and CPU accounting, the one-line report, result checks, and the
 * declarations of the sequential kernels (fib, n-queens, merge sort, the
 * small hash job, defined in kernels.c) that both the sequential baselines
 * and the parallel versions call at their leaves.
 *
 * Valid C11 and C++ (the TBB programs include it too); everything but the
 * kernels is static inline. Needs _GNU_SOURCE (bench/CMakeLists.txt sets it)
 * for sched_getaffinity.
 *
 * Every program prints one line per measurement on stdout:
 *
 *   case=fib32 runtime=gather threads=2 value=12.3 unit=ms n=32 ...
 *
 * `value` is the figure of merit in `unit` (always lower is better); the
 * key=value pairs after it are details. A program that computes a wrong
 * result prints the reason on stderr and exits with status 1.
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <errno.h>
#include <sched.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Arguments: key=value words, e.g. `bench_fib_gather threads=2 n=32 reps=3` */
/* ------------------------------------------------------------------------ */

static inline long bench_arg(int argc, char **argv, const char *key, long def)
{
    size_t len = strlen(key);
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], key, len) == 0 && argv[i][len] == '=') {
            char *end;
            errno = 0;
            long v = strtol(argv[i] + len + 1, &end, 10);
            if (errno || *end || end == argv[i] + len + 1) {
                fprintf(stderr, "bad argument %s\n", argv[i]);
                exit(2);
            }
            return v;
        }
    }
    return def;
}

static inline const char *bench_arg_str(int argc, char **argv, const char *key,
                                        const char *def)
{
    size_t len = strlen(key);
    for (int i = 1; i < argc; i++)
        if (strncmp(argv[i], key, len) == 0 && argv[i][len] == '=')
            return argv[i] + len + 1;
    return def;
}

/* Common arguments: threads (default: CPUs), reps (timed runs, default 1),
 * warmup (untimed runs first, default 1). */
typedef struct bench_opts {
    int threads;
    int reps;
    int warmup;
} bench_opts;

/* CPUs this process may run on (what containers limit), as gather counts
 * them for its default pool. */
static inline int bench_ncpu(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static inline bench_opts bench_parse(int argc, char **argv)
{
    bench_opts o;
    o.threads = (int)bench_arg(argc, argv, "threads", 0);
    if (o.threads <= 0)
        o.threads = bench_ncpu();
    o.reps = (int)bench_arg(argc, argv, "reps", 1);
    o.warmup = (int)bench_arg(argc, argv, "warmup", 1);
    if (o.reps < 1 || o.warmup < 0 || o.threads > 1024) {
        fprintf(stderr, "bad threads/reps/warmup\n");
        exit(2);
    }
    return o;
}

/* ------------------------------------------------------------------------ */
/* Reporting and failing                                                    */
/* ------------------------------------------------------------------------ */

#if defined(__GNUC__)
#define BENCH_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define BENCH_NORETURN __attribute__((noreturn))
#else
#define BENCH_PRINTF(f, a)
#define BENCH_NORETURN
#endif

/* BENCH_STR(gomp) is "gomp": the OpenMP programs get their runtime's name
 * as a bare word (-DBENCH_RUNTIME=gomp), which needs no shell quoting. */
#define BENCH_STR_(x) #x
#define BENCH_STR(x) BENCH_STR_(x)

/* One measurement line; `fmt` adds " key=value" details (may be ""). */
static inline BENCH_PRINTF(6, 7) void
bench_report(const char *case_name, const char *runtime, int threads,
             double value, const char *unit, const char *fmt, ...)
{
    char extra[512] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(extra, sizeof extra, fmt, ap);
    va_end(ap);
    printf("case=%s runtime=%s threads=%d value=%.6g unit=%s%s%s\n", case_name,
           runtime, threads, value, unit, extra[0] ? " " : "", extra);
    fflush(stdout);
}

static inline BENCH_PRINTF(1, 2) BENCH_NORETURN void bench_fail(const char *fmt, ...)
{
    va_list ap;
    fputs("bench: FAILED: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

/* Fails on a non-zero errno-style code from a runtime call. */
#define BENCH_CHECK(call)                                                      \
    do {                                                                       \
        int bench_rc_ = (call);                                                \
        if (bench_rc_ != 0)                                                    \
            bench_fail("%s:%d: %s returned %d (%s)", __FILE__, __LINE__,       \
                       #call, bench_rc_, strerror(bench_rc_));                 \
    } while (0)

static inline void *bench_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        bench_fail("out of memory (%zu bytes)", n);
    return p;
}

/* "10M", "100k", or the plain number: for case names. */
static inline const char *bench_count(long n, char *buf, size_t len)
{
    if (n >= 1000000 && n % 1000000 == 0)
        snprintf(buf, len, "%ldM", n / 1000000);
    else if (n >= 1000 && n % 1000 == 0)
        snprintf(buf, len, "%ldk", n / 1000);
    else
        snprintf(buf, len, "%ld", n);
    return buf;
}

/* ------------------------------------------------------------------------ */
/* Clocks, CPU time, memory                                                 */
/* ------------------------------------------------------------------------ */

static inline uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline double bench_ms(uint64_t t0, uint64_t t1)
{
    return (double)(t1 - t0) / 1e6;
}

static inline void bench_sleep_ns(uint64_t ns)
{
    struct timespec ts;
    ts.tv_sec = (time_t)(ns / 1000000000u);
    ts.tv_nsec = (long)(ns % 1000000000u);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* User + system CPU time of the whole process (every thread), in ns. */
static inline uint64_t bench_cpu_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) *
               1000000000u +
           ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000u;
}

/* Peak resident set size of the process so far, in bytes (VmHWM, else
 * ru_maxrss). */
static inline uint64_t bench_peak_rss(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (f) {
        char line[256];
        unsigned long long kb = 0;
        int found = 0;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "VmHWM: %llu kB", &kb) == 1) {
                found = 1;
                break;
            }
        fclose(f);
        if (found)
            return (uint64_t)kb * 1024u;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)ru.ru_maxrss * 1024u;
}

/* Touches every page of [p, p+n) so that it counts in the baseline RSS. */
static inline void bench_touch(void *p, size_t n)
{
    memset(p, 0, n);
}

static inline int bench_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Percentile (0..100) of v[0..n), sorting v in place. */
static inline uint64_t bench_percentile(uint64_t *v, size_t n, double pct)
{
    qsort(v, n, sizeof *v, bench_cmp_u64);
    size_t i = (size_t)(pct / 100.0 * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

/* ------------------------------------------------------------------------ */
/* Kernels                                                                  */
/* ------------------------------------------------------------------------ */

/* The sequential kernels live in kernels.c, compiled once by the build's C
 * compiler into a static library that every program links, also those built
 * by the other compiler (libomp with clang, or libgomp with gcc): the leaves
 * of every runtime run the very same machine code, so the figures compare
 * runtimes, not compilers. */
#ifdef __cplusplus
extern "C" {
#endif

/* fib(n) by plain recursion. */
long fib_seq(long n);

/* n-queens by bitmasks: cols, and the two diagonal masks shifted to the
 * next row. Solutions below this partial placement. */
long nq_seq(unsigned all, unsigned cols, unsigned d1, unsigned d2);

/* Merge of the sorted A[0..na) and B[0..nb) into dst (branch-free). */
void merge_seq(const int *A, size_t na, const int *B, size_t nb, int *dst);

/* Top-down merge sort of a[0..n) with scratch t[0..n): the result ends in a
 * when `in_a`, else in t (a is then scratch). Ping-pongs between the two
 * buffers, so there is no copy-back; insertion sort below 32 elements. */
void msort_seq(int *a, int *t, size_t n, int in_a);

/* `rounds` dependent multiply-xorshift rounds on x: the CPU work of the map,
 * fan-out and IO mix cases. */
uint64_t bench_work(uint64_t x, int rounds);

#ifdef __cplusplus
}
#endif

static inline long fib_expected(long n)
{
    long a = 0, b = 1;
    for (long i = 0; i < n; i++) {
        long c = a + b;
        a = b;
        b = c;
    }
    return a;
}

/* Tasks spawned by fib(n) with one spawn per call above `cutoff` (0: none):
 * S(n) = 0 for n < 2 or n <= cutoff, else 1 + S(n-1) + S(n-2). For
 * cutoff 0 this is fib(n+1) - 1 (3.5 M for fib(32)). */
static inline long fib_spawns(long n, long cutoff)
{
    long a = 0, b = 0; /* S(k-2), S(k-1) */
    for (long k = 0; k <= n; k++) {
        long s = (k < 2 || k <= cutoff) ? 0 : 1 + a + b;
        a = b;
        b = s;
    }
    return b;
}

/* "fib32" or "fib40_cut25". */
static inline const char *fib_case(long n, long cutoff, char *buf, size_t len)
{
    if (cutoff > 0)
        snprintf(buf, len, "fib%ld_cut%ld", n, cutoff);
    else
        snprintf(buf, len, "fib%ld", n);
    return buf;
}

static inline long nq_expected(int n)
{
    static const long table[] = {1, 1, 0, 0, 2, 10, 4, 40, 92, 352, 724,
                                 2680, 14200, 73712, 365596, 2279184};
    return n >= 0 && n < (int)(sizeof table / sizeof table[0]) ? table[n] : -1;
}

static inline int bench_popcount(unsigned x)
{
    return __builtin_popcount(x);
}

/* Deterministic pseudo-random ints (xorshift64*). */
static inline void sort_fill(int *a, size_t n, uint64_t seed)
{
    uint64_t x = seed | 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        a[i] = (int)(uint32_t)((x * 2685821657736338717ull) >> 32);
    }
}

static inline uint64_t sort_sum(const int *a, size_t n)
{
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++)
        s += (uint64_t)(uint32_t)a[i] * 0x9e3779b97f4a7c15ull + (uint32_t)a[i];
    return s;
}

static inline void sort_verify(const int *a, size_t n, uint64_t sum)
{
    for (size_t i = 1; i < n; i++)
        if (a[i - 1] > a[i])
            bench_fail("not sorted at index %zu", i);
    if (sort_sum(a, n) != sum)
        bench_fail("sorted array is not a permutation of the input");
}

/* First index of B[0..nb) whose element is >= x. */
static inline size_t lower_bound_int(const int *B, size_t nb, int x)
{
    size_t lo = 0, hi = nb;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (B[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Parallel sort and merge cut-offs (elements): below them, the sequential
 * kernels above. Shared so every runtime splits the same way. */
#define SORT_LEAF 16384
#define MERGE_LEAF 16384

/* The small job of the map and fan-out cases: a hash loop of about 100 ns
 * (50 dependent multiply-xorshift rounds). */
#define WORK_ROUNDS 50

/* Sum of the map case's outputs, computed sequentially to check a run. */
static inline uint64_t map_expected(size_t n)
{
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++)
        s += bench_work(i, WORK_ROUNDS);
    return s;
}

static inline void map_verify(const uint64_t *out, size_t n, uint64_t expect)
{
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++)
        s += out[i];
    if (s != expect)
        bench_fail("map results are wrong");
}

/* The map case's report: time, with throughput and peak RSS as details. */
static inline void map_report(const char *runtime, int threads, size_t n,
                              uint64_t t0, uint64_t t1)
{
    char num[32], name[48];
    snprintf(name, sizeof name, "map%s", bench_count((long)n, num, sizeof num));
    double s = (double)(t1 - t0) / 1e9;
    bench_report(name, runtime, threads, s * 1e3, "ms",
                 "n=%zu mtasks_per_s=%.2f ns_per_task=%.1f peak_rss_mb=%.1f", n,
                 (double)n / s / 1e6, s * 1e9 / (double)n,
                 (double)bench_peak_rss() / 1048576.0);
}

/* ------------------------------------------------------------------------ */
/* Latency samples                                                          */
/* ------------------------------------------------------------------------ */

/* One latency sample: the task stamps `started` as it begins, spins for
 * `spin_ns` (long enough that the submitter is blocked in its wait by then)
 * and stamps `ended` just before it returns. */
typedef struct lat_sample {
    uint64_t started, ended, spin_ns;
} lat_sample;

static inline void lat_body(lat_sample *s)
{
    uint64_t t = bench_now_ns();
    s->started = t;
    while (bench_now_ns() - t < s->spin_ns) {
    }
    s->ended = bench_now_ns();
}

typedef struct lat_series {
    uint64_t *start; /* submit -> task start */
    uint64_t *wake;  /* task end -> waiter running again */
    uint64_t *woken; /* start + wake: submit -> waiter woken, minus the task */
    size_t n;
} lat_series;

static inline lat_series lat_alloc(size_t n)
{
    lat_series s;
    s.start = (uint64_t *)bench_xmalloc(n * sizeof *s.start);
    s.wake = (uint64_t *)bench_xmalloc(n * sizeof *s.wake);
    s.woken = (uint64_t *)bench_xmalloc(n * sizeof *s.woken);
    s.n = 0;
    return s;
}

/* Records a sample: t_submit taken just before the submit call, t_back just
 * after the wait returned. */
static inline void lat_record(lat_series *ls, const lat_sample *s,
                              uint64_t t_submit, uint64_t t_back)
{
    if (s->started < t_submit || t_back < s->ended)
        bench_fail("latency sample out of order");
    ls->start[ls->n] = s->started - t_submit;
    ls->wake[ls->n] = t_back - s->ended;
    ls->woken[ls->n] = ls->start[ls->n] + ls->wake[ls->n];
    ls->n++;
}

/* Prints lat_<phase>_start_p50/p99 and lat_<phase>_woken_p50/p99, in us. */
static inline void lat_print(lat_series *ls, const char *phase,
                             const char *runtime, int threads)
{
    static const double pct[2] = {50, 99};
    for (int k = 0; k < 2; k++) {
        char name[64];
        snprintf(name, sizeof name, "lat_%s_start_p%.0f", phase, pct[k]);
        bench_report(name, runtime, threads,
                     (double)bench_percentile(ls->start, ls->n, pct[k]) / 1e3, "us",
                     "samples=%zu", ls->n);
    }
    for (int k = 0; k < 2; k++) {
        char name[64];
        snprintf(name, sizeof name, "lat_%s_woken_p%.0f", phase, pct[k]);
        double woken = (double)bench_percentile(ls->woken, ls->n, pct[k]) / 1e3;
        double wake = (double)bench_percentile(ls->wake, ls->n, pct[k]) / 1e3;
        bench_report(name, runtime, threads, woken, "us",
                     "samples=%zu end_to_waiter_us=%.2f", ls->n, wake);
    }
}

static inline void lat_free(lat_series *ls)
{
    free(ls->start);
    free(ls->wake);
    free(ls->woken);
}

/* Arguments of the latency programs: warm=N samples back to back, parked=N
 * samples each after park_ms of idleness, spin_us of task run time. */
typedef struct lat_opts {
    size_t warm, parked;
    uint64_t park_ns, spin_ns;
} lat_opts;

static inline lat_opts lat_parse(int argc, char **argv)
{
    lat_opts o;
    long warm = bench_arg(argc, argv, "warm", 2000);
    long parked = bench_arg(argc, argv, "parked", 200);
    long park_ms = bench_arg(argc, argv, "park_ms", 50);
    long spin_us = bench_arg(argc, argv, "spin_us", 50);
    if (warm < 1 || parked < 1 || park_ms < 0 || spin_us < 0)
        bench_fail("bad latency arguments");
    o.warm = (size_t)warm;
    o.parked = (size_t)parked;
    o.park_ns = (uint64_t)park_ms * 1000000u;
    o.spin_ns = (uint64_t)spin_us * 1000u;
    return o;
}

/* ------------------------------------------------------------------------ */
/* Idle                                                                     */
/* ------------------------------------------------------------------------ */

/* Call once the pool has run its one task: sleeps `ms` + 10 ms and prints
 * the process's CPU time as % of one core over [0, ms] ("idle") and over
 * [10 ms, ms + 10 ms] ("idle_after10ms"). */
static inline void idle_measure(long ms, const char *runtime, int threads)
{
    if (ms < 20)
        bench_fail("ms must be >= 20");
    uint64_t w0 = bench_now_ns(), c0 = bench_cpu_ns();
    bench_sleep_ns(10000000u);
    uint64_t w1 = bench_now_ns(), c1 = bench_cpu_ns();
    bench_sleep_ns((uint64_t)(ms - 10) * 1000000u);
    uint64_t w2 = bench_now_ns(), c2 = bench_cpu_ns();
    bench_sleep_ns(10000000u);
    uint64_t w3 = bench_now_ns(), c3 = bench_cpu_ns();
    double a = 100.0 * (double)(c2 - c0) / (double)(w2 - w0);
    double b = 100.0 * (double)(c3 - c1) / (double)(w3 - w1);
    bench_report("idle", runtime, threads, a, "%core", "window_ms=%ld cpu_ms=%.2f",
                 ms, (double)(c2 - c0) / 1e6);
    bench_report("idle_after10ms", runtime, threads, b, "%core",
                 "window_ms=%ld cpu_ms=%.2f", ms, (double)(c3 - c1) / 1e6);
}

/* ------------------------------------------------------------------------ */
/* Blocking IO mix                                                          */
/* ------------------------------------------------------------------------ */

/* The CPU task of the blocking IO mix: about 1 ms of the same loop. The
 * sleeping task sleeps `ms` (default IOMIX_MS: the shape of the blocking-IO
 * issue, 256 x 10 ms + 256 x 1 ms). */
#define IOMIX_CPU_ROUNDS 500000
#define IOMIX_MS 10

/* Arguments of the IO mix programs: n=N sleeping and N CPU tasks, ms=M per
 * sleep. */
typedef struct iomix_opts {
    long n, ms;
    size_t tasks;      /* 2n */
    uint64_t sleep_ns; /* ms in ns */
} iomix_opts;

static inline iomix_opts iomix_parse(int argc, char **argv)
{
    iomix_opts m;
    m.n = bench_arg(argc, argv, "n", 256);
    m.ms = bench_arg(argc, argv, "ms", IOMIX_MS);
    if (m.n < 1 || m.ms < 0 || m.ms > 60000)
        bench_fail("IO mix: n must be positive and ms in 0..60000");
    m.tasks = 2 * (size_t)m.n;
    m.sleep_ns = (uint64_t)m.ms * 1000000u;
    return m;
}

/* Task i of the mix (0 <= i < 2n): even i sleeps sleep_ns, odd i computes
 * about 1 ms. Returns i + 1, so a run checks that every task ran once. */
static inline uint64_t iomix_task(size_t i, uint64_t sleep_ns,
                                  volatile uint64_t *sink)
{
    if (i % 2 == 0)
        bench_sleep_ns(sleep_ns);
    else
        sink[i] = bench_work(i, IOMIX_CPU_ROUNDS);
    return i + 1;
}

static inline void iomix_verify(uint64_t sum, size_t tasks)
{
    if (sum != (uint64_t)tasks * ((uint64_t)tasks + 1) / 2)
        bench_fail("IO mix: not every task ran exactly once");
}

/* "iomix256" for the default sleep, "iomix256_1ms" for another, so that
 * figures of different shapes never share a name. */
static inline const char *iomix_name(const iomix_opts *m, char *buf, size_t len)
{
    if (m->ms == IOMIX_MS)
        snprintf(buf, len, "iomix%ld", m->n);
    else
        snprintf(buf, len, "iomix%ld_%ldms", m->n, m->ms);
    return buf;
}

static inline void iomix_report(const char *runtime, int threads,
                                const iomix_opts *m, uint64_t t0, uint64_t t1)
{
    char name[48];
    bench_report(iomix_name(m, name, sizeof name), runtime, threads,
                 bench_ms(t0, t1), "ms", "sleep_tasks=%ld sleep_ms=%ld cpu_tasks=%ld",
                 m->n, m->ms, m->n);
}

#endif /* BENCH_COMMON_H */
