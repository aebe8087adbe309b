/* SPDX-License-Identifier: MIT */
/*
 * forkjoin.c - nested fork-join with gather: tasks that submit subtasks and
 * gather them, recursively.
 *
 *   ./build/examples/forkjoin [-n ELEMENTS] [-q QUEENS] [-p THREADS]
 *
 * Two classic divide-and-conquer computations, each timed sequentially
 * (plain recursion, no pool), on a one-thread pool and on a pool with one
 * thread per CPU (or -p THREADS):
 *
 *   1. A parallel quicksort of ELEMENTS random ints (default 8 Mi): a task
 *      partitions its range, submits both halves as tasks and gathers them;
 *      below a cutoff it sorts sequentially. The result is checked: sorted,
 *      and the same multiset as the input.
 *   2. The number of solutions of the QUEENS-queens problem (default 14): a
 *      task places a queen in each free column of its row, one subtask per
 *      column, and gathers their counts; from a cutoff row down it counts
 *      sequentially. Checked against the known counts.
 *
 * What makes this work: a task that waits (gather_futures() inside a task)
 * does not block its thread, it runs other queued tasks of the pool until
 * its children are done. So the recursion never deadlocks, even on the
 * one-thread pool, where it simply runs everything depth-first.
 */
#define _POSIX_C_SOURCE 200809L

#include <gather.h>

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t xorshift64(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

/* Submits fn(arg) to the pool of the calling worker (gather_current_pool();
 * a NULL pool would mean the default pool, not this one). When that fails
 * (out of memory), runs it right here instead: a fork-join recursion never
 * needs to give up. Returns the number of futures added to futures[]. */
static size_t fork_task(gather_fn fn, void *arg, gather_future *futures[], size_t n)
{
    if (gather_submit(gather_current_pool(), fn, arg, &futures[n]) == 0)
        return n + 1;
    void *ignored = NULL;
    fn(arg, &ignored);
    return n;
}

/* Joins: waits for all the forked children, then drops our references. */
static int join_tasks(gather_future *futures[], size_t n)
{
    int rc = gather_futures(futures, n, NULL, GATHER_RETURN_ERRORS);
    for (size_t i = 0; i < n; i++) {
        if (rc == 0 && gather_future_error(futures[i]) != 0)
            rc = gather_future_error(futures[i]);
        gather_future_release(futures[i]);
    }
    return rc;
}

/* ---- 1. quicksort ------------------------------------------------------- */

enum { SORT_CUTOFF = 8192, INSERTION_CUTOFF = 24 };

static void swap_int(int *a, int *b)
{
    int t = *a;
    *a = *b;
    *b = t;
}

static void insertion_sort(int *a, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        int v = a[i];
        size_t j = i;
        for (; j > 0 && a[j - 1] > v; j--)
            a[j] = a[j - 1];
        a[j] = v;
    }
}

/* Hoare partition around the median of three; returns p with 0 < p < n,
 * every a[0..p) <= every a[p..n). Needs n >= 3. */
static size_t partition(int *a, size_t n)
{
    size_t mid = (n - 1) / 2;
    if (a[mid] < a[0])
        swap_int(&a[mid], &a[0]);
    if (a[n - 1] < a[0])
        swap_int(&a[n - 1], &a[0]);
    if (a[n - 1] < a[mid])
        swap_int(&a[n - 1], &a[mid]);
    int pivot = a[mid];
    ptrdiff_t i = -1, j = (ptrdiff_t)n;
    for (;;) {
        do
            i++;
        while (a[i] < pivot);
        do
            j--;
        while (a[j] > pivot);
        if (i >= j)
            return (size_t)j + 1;
        swap_int(&a[i], &a[j]);
    }
}

static void quicksort_seq(int *a, size_t n)
{
    while (n > INSERTION_CUTOFF) {
        size_t p = partition(a, n);
        if (p < n - p) { /* recurse on the smaller side, loop on the larger */
            quicksort_seq(a, p);
            a += p;
            n -= p;
        } else {
            quicksort_seq(a + p, n - p);
            n = p;
        }
    }
    insertion_sort(a, n);
}

typedef struct sort_job {
    int *a;
    size_t n;
} sort_job;

static int quicksort_task(void *arg, void **result)
{
    (void)result;
    sort_job *job = arg;
    if (job->n <= SORT_CUTOFF) {
        quicksort_seq(job->a, job->n);
        return 0;
    }
    size_t p = partition(job->a, job->n);
    /* The children's arguments live in this frame: safe, because this task
     * returns only after joining them. */
    sort_job halves[2] = {{job->a, p}, {job->a + p, job->n - p}};
    gather_future *futures[2] = {NULL, NULL};
    size_t forked = 0;
    forked = fork_task(quicksort_task, &halves[0], futures, forked);
    forked = fork_task(quicksort_task, &halves[1], futures, forked);
    return join_tasks(futures, forked);
}

/* ---- 2. n-queens -------------------------------------------------------- */

enum { QUEENS_MAX = 18, QUEENS_SPLIT_ROWS = 3 };

static const long long queens_known[QUEENS_MAX + 1] = {
    1, 1, 0, 0, 2, 10, 4, 40, 92, 352, 724, 2680, 14200, 73712, 365596,
    2279184, 14772512, 95815104, 666090624};

/* Bitmask backtracking: cols/left/right are the squares of this row that
 * the queens above attack (by column and by either diagonal). */
static long long queens_seq(uint32_t all, uint32_t cols, uint32_t left, uint32_t right)
{
    if (cols == all)
        return 1;
    long long count = 0;
    uint32_t free_squares = all & ~(cols | left | right);
    while (free_squares) {
        uint32_t bit = free_squares & -free_squares;
        free_squares ^= bit;
        count += queens_seq(all, cols | bit, (left | bit) << 1, (right | bit) >> 1);
    }
    return count;
}

typedef struct queens_job {
    uint32_t all, cols, left, right;
    int row;
    long long count;
} queens_job;

static int queens_task(void *arg, void **result)
{
    queens_job *job = arg;
    *result = job;
    if (job->row >= QUEENS_SPLIT_ROWS || job->cols == job->all) {
        job->count = queens_seq(job->all, job->cols, job->left, job->right);
        return 0;
    }
    queens_job children[QUEENS_MAX];
    gather_future *futures[QUEENS_MAX] = {NULL};
    size_t n = 0, forked = 0;
    uint32_t free_squares = job->all & ~(job->cols | job->left | job->right);
    while (free_squares) {
        uint32_t bit = free_squares & -free_squares;
        free_squares ^= bit;
        children[n] = (queens_job){job->all, job->cols | bit, (job->left | bit) << 1,
                                   (job->right | bit) >> 1, job->row + 1, 0};
        forked = fork_task(queens_task, &children[n], futures, forked);
        n++;
    }
    int rc = join_tasks(futures, forked);
    job->count = 0;
    for (size_t i = 0; i < n; i++)
        job->count += children[i].count;
    return rc;
}

/* ---- driver ----------------------------------------------------------- */

/* Runs fn(arg) as the root task of a fresh pool of `threads` threads (0: one
 * per CPU); returns the seconds it took, or -1. */
static double run_on_pool(size_t threads, gather_fn fn, void *arg, size_t *used_threads,
                          gather_pool_stats *stats)
{
    gather_pool_options opts = {0};
    opts.threads = threads;
    opts.name = "forkjoin";
    gather_pool *pool = NULL;
    int rc = gather_pool_create(&pool, &opts);
    if (rc != 0) {
        fprintf(stderr, "forkjoin: gather_pool_create: %s\n", strerror(rc));
        return -1;
    }
    *used_threads = gather_pool_threads(pool);

    double start = now_s();
    gather_future *root = NULL;
    rc = gather_submit(pool, fn, arg, &root);
    if (rc == 0)
        rc = gather_future_wait(root, NULL);
    double took = now_s() - start;
    gather_future_release(root);
    gather_pool_stats_get(pool, stats);
    gather_pool_destroy(pool);
    if (rc != 0) {
        fprintf(stderr, "forkjoin: root task failed: %s\n", strerror(rc));
        return -1;
    }
    return took;
}

static void print_pool_line(size_t threads, double took, double seq,
                            const gather_pool_stats *stats)
{
    char label[40];
    snprintf(label, sizeof label, "pool, %zu thread%s:", threads, threads == 1 ? "" : "s");
    printf("  %-21s %7.3f s   x%.2f   (%" PRIu64 " tasks, %" PRIu64 " stolen)\n", label, took,
           seq / took, stats->submitted, stats->stolen);
}

/* The multiset fingerprint of an array: order-independent sums. */
static void fingerprint(const int *a, size_t n, uint64_t fp[2])
{
    fp[0] = fp[1] = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t v = (uint64_t)(int64_t)a[i];
        fp[0] += v;
        fp[1] += v * v * 0x9e3779b97f4a7c15ULL;
    }
}

static int check_sorted(const int *a, size_t n, const uint64_t want[2])
{
    for (size_t i = 1; i < n; i++)
        if (a[i - 1] > a[i])
            return 0;
    uint64_t fp[2];
    fingerprint(a, n, fp);
    return fp[0] == want[0] && fp[1] == want[1];
}

static int demo_quicksort(size_t n, size_t threads)
{
    int *input = malloc(n * sizeof *input);
    int *a = malloc(n * sizeof *a);
    if (input == NULL || a == NULL) {
        fprintf(stderr, "forkjoin: out of memory for %zu ints\n", n);
        free(input);
        free(a);
        return 1;
    }
    uint64_t seed = 0x2545f4914f6cdd1dULL;
    for (size_t i = 0; i < n; i++)
        input[i] = (int)(uint32_t)(xorshift64(&seed) >> 32);
    uint64_t want[2];
    fingerprint(input, n, want);

    printf("1. quicksort of %zu random ints (tasks down to %d elements)\n", n, SORT_CUTOFF);
    int ok = 1;

    memcpy(a, input, n * sizeof *a);
    double start = now_s();
    quicksort_seq(a, n);
    double seq = now_s() - start;
    printf("  %-21s %7.3f s\n", "sequential, no pool:", seq);
    ok &= check_sorted(a, n, want);

    size_t counts[2] = {1, threads};
    for (int r = 0; r < 2; r++) {
        memcpy(a, input, n * sizeof *a);
        sort_job job = {a, n};
        gather_pool_stats stats = {0};
        size_t used = 0;
        double took = run_on_pool(counts[r], quicksort_task, &job, &used, &stats);
        if (took < 0) {
            ok = 0;
            break;
        }
        print_pool_line(used, took, seq, &stats);
        ok &= check_sorted(a, n, want);
    }
    printf("  sorted, same elements: %s\n\n", ok ? "yes" : "NO");
    free(input);
    free(a);
    return ok ? 0 : 1;
}

static int demo_queens(int n, size_t threads)
{
    uint32_t all = ((uint32_t)1 << n) - 1;
    printf("2. %d-queens: one subtask per free column down to row %d\n", n, QUEENS_SPLIT_ROWS);

    double start = now_s();
    long long seq_count = queens_seq(all, 0, 0, 0);
    double seq = now_s() - start;
    printf("  %-21s %7.3f s\n", "sequential, no pool:", seq);
    int ok = seq_count == queens_known[n];

    size_t counts[2] = {1, threads};
    long long count = -1;
    for (int r = 0; r < 2; r++) {
        queens_job job = {all, 0, 0, 0, 0, -1};
        gather_pool_stats stats = {0};
        size_t used = 0;
        double took = run_on_pool(counts[r], queens_task, &job, &used, &stats);
        if (took < 0) {
            ok = 0;
            break;
        }
        print_pool_line(used, took, seq, &stats);
        count = job.count;
        ok &= count == queens_known[n];
    }
    printf("  solutions: %lld (known: %lld) %s\n", count, queens_known[n], ok ? "ok" : "WRONG");
    return ok ? 0 : 1;
}

static void usage(FILE *to)
{
    fprintf(to, "usage: forkjoin [-n ELEMENTS] [-q QUEENS] [-p THREADS]\n"
                "  -n ELEMENTS  ints to sort (default 8388608)\n"
                "  -q QUEENS    board size of the n-queens count, 1..%d (default 14)\n"
                "  -p THREADS   threads of the parallel runs (default: one per CPU)\n",
            QUEENS_MAX);
}

int main(int argc, char **argv)
{
    size_t elements = (size_t)8 << 20;
    int queens = 14;
    size_t threads = 0;
    int opt;
    while ((opt = getopt(argc, argv, "n:q:p:h")) != -1) {
        char *end = NULL;
        unsigned long long v = 0;
        if (opt != 'h') {
            errno = 0;
            v = strtoull(optarg, &end, 10);
            if (errno != 0 || end == optarg || *end != '\0')
                opt = '?';
        }
        switch (opt) {
        case 'n':
            if (v < 1 || v > SIZE_MAX / sizeof(int)) {
                usage(stderr);
                return 2;
            }
            elements = (size_t)v;
            break;
        case 'q':
            if (v < 1 || v > QUEENS_MAX) {
                usage(stderr);
                return 2;
            }
            queens = (int)v;
            break;
        case 'p':
            if (v < 1 || v > 1024) {
                usage(stderr);
                return 2;
            }
            threads = (size_t)v;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }

    printf("forkjoin: gather %s, %ld CPUs online\n\n", gather_version(),
           sysconf(_SC_NPROCESSORS_ONLN));
    int failed = demo_quicksort(elements, threads);
    failed |= demo_queens(queens, threads);
    return failed ? 1 : 0;
}
