/* SPDX-License-Identifier: MIT */
/*
 * demo.c - a tour of gather: asyncio.gather() for C.
 *
 *   cmake -S . -B build && cmake --build build && ./build/examples/demo
 *
 * It needs no arguments and nothing beyond pthreads. Three things to see:
 *
 *   1. Results come back in input order, whatever order the tasks finish in.
 *   2. GATHER_RETURN_ERRORS: a failure is captured in its result slot; the
 *      other tasks' results are all there.
 *   3. Fail-fast (flags 0): gather_futures() returns the first failure at
 *      once, while a slower task is still running; that task is not
 *      cancelled, and we wait for it afterwards.
 */
#define _POSIX_C_SOURCE 200809L

#include <gather.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- a little CPU work: counting primes ------------------------------------ */

static long count_primes_below(long limit)
{
    long count = 0;
    for (long n = 2; n < limit; n++) {
        int prime = 1;
        for (long d = 2; d * d <= n; d++) {
            if (n % d == 0) {
                prime = 0;
                break;
            }
        }
        count += prime;
    }
    return count;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- the tasks ----------------------------------------------------------------- */

/* One job: what a task reads (limit) and writes (primes, finished_as). */
typedef struct prime_job {
    long limit;
    long primes;
    int finished_as; /* 1 = first task to finish, 2 = second, ... */
} prime_job;

static atomic_int finish_counter;

/* A task: int fn(void *arg, void **result). Returns 0 on success. */
static int count_primes_task(void *arg, void **result)
{
    prime_job *job = arg;
    job->primes = count_primes_below(job->limit);
    job->finished_as = atomic_fetch_add(&finish_counter, 1) + 1;
    *result = job; /* the value gather hands back for this task */
    return 0;
}

/* Parses a decimal number. On bad input it fails with EINVAL and sets
 * *result to an error message: the C counterpart of raising an exception. */
typedef struct parse_job {
    const char *text;
    long number;
} parse_job;

static int parse_task(void *arg, void **result)
{
    parse_job *job = arg;
    char *end = NULL;
    errno = 0;
    job->number = strtol(job->text, &end, 10);
    if (end == job->text || *end != '\0' || errno != 0) {
        *result = (void *)"not a decimal number";
        return EINVAL;
    }
    *result = job;
    return 0;
}

/* ---- 1. ordered results ---------------------------------------------------------- */

static int demo_ordered_results(gather_pool *pool)
{
    /* The biggest job first: it finishes last, yet its result is first. */
    prime_job jobs[] = {{300000, 0, 0}, {20000, 0, 0}, {150000, 0, 0}, {1000, 0, 0}, {60000, 0, 0}};
    enum { N = sizeof jobs / sizeof jobs[0] };
    gather_future *futures[N];
    gather_result results[N];

    printf("1. Results in input order, whatever order the tasks finish in\n");
    for (size_t i = 0; i < N; i++) {
        int rc = gather_submit(pool, count_primes_task, &jobs[i], &futures[i]);
        if (rc != 0) {
            fprintf(stderr, "gather_submit: %s\n", strerror(rc));
            return 1;
        }
    }

    int rc = gather_futures(futures, N, results, 0); /* waits for all five */
    for (size_t i = 0; i < N && rc == 0; i++) {
        prime_job *job = results[i].value; /* results[i] belongs to futures[i] */
        printf("   task %zu: %6ld primes below %6ld   (finished %d of %d)\n", i, job->primes,
               job->limit, job->finished_as, (int)N);
    }
    for (size_t i = 0; i < N; i++)
        gather_future_release(futures[i]); /* each submit handed us one reference */
    printf("   gather_futures returned %d\n\n", rc);
    return rc != 0;
}

/* ---- 2. failures captured in the results --------------------------------------------- */

static int demo_return_errors(gather_pool *pool)
{
    parse_job jobs[] = {{"1000", 0}, {"25", 0}, {"ten", 0}, {"4096", 0}};
    enum { N = sizeof jobs / sizeof jobs[0] };
    void *args[N];
    gather_result results[N];
    for (size_t i = 0; i < N; i++)
        args[i] = &jobs[i];

    printf("2. GATHER_RETURN_ERRORS: every task runs, failures land in their slot\n");
    /* gather_map = submit fn(args[i]) for each i, then gather_futures. */
    int rc = gather_map(pool, parse_task, args, N, results, GATHER_RETURN_ERRORS);
    for (size_t i = 0; i < N; i++) {
        if (results[i].error == 0)
            printf("   \"%s\" -> %ld\n", jobs[i].text, ((parse_job *)results[i].value)->number);
        else
            printf("   \"%s\" -> error %s (%s)\n", jobs[i].text, strerror(results[i].error),
                   (const char *)results[i].value);
    }
    printf("   gather_map returned %d (failures are only in the results)\n\n", rc);
    return rc != 0;
}

/* ---- 3. fail-fast ------------------------------------------------------------------------- */

static int demo_fail_fast(gather_pool *pool)
{
    prime_job slow = {1500000, 0, 0};
    parse_job bad = {"12abc", 0};
    gather_future *futures[2];
    gather_result results[2];

    printf("3. Fail-fast: the first failure returns at once, the rest keep running\n");
    double start = now_ms();
    int rc = gather_submit(pool, count_primes_task, &slow, &futures[0]);
    if (rc == 0)
        rc = gather_submit(pool, parse_task, &bad, &futures[1]);
    if (rc != 0) {
        fprintf(stderr, "gather_submit: %s\n", strerror(rc));
        return 1;
    }

    rc = gather_futures(futures, 2, results, 0);
    printf("   gather_futures returned %s after %.0f ms\n", strerror(rc), now_ms() - start);
    printf("   results[0] (primes below %ld): %s\n", slow.limit,
           results[0].error == EINPROGRESS ? "EINPROGRESS, still running"
                                           : "already done (a busy machine)");
    if (rc == EINVAL)
        printf("   results[1] (\"%s\"): %s (%s)\n", bad.text, strerror(results[1].error),
               (const char *)results[1].value);

    /* The slow task was not cancelled (GATHER_CANCEL_ON_ERROR would have
     * asked it to stop): wait for it now. */
    void *value = NULL;
    int slow_rc = gather_future_wait(futures[0], &value);
    if (slow_rc == 0)
        printf("   then gather_future_wait: %ld primes below %ld, after %.0f ms\n\n",
               ((prime_job *)value)->primes, slow.limit, now_ms() - start);

    gather_future_release(futures[0]);
    gather_future_release(futures[1]);
    return rc != EINVAL || slow_rc != 0;
}

int main(void)
{
    printf("gather %s\n\n", gather_version());

    /* Four threads, so the demo shows overlap even on a one-CPU machine.
     * (gather_pool_create(&pool, NULL) gives one thread per CPU; passing
     * NULL as the pool to any call uses a process-wide default pool.) */
    gather_pool_options opts = {0};
    opts.threads = 4;
    gather_pool *pool = NULL;
    int rc = gather_pool_create(&pool, &opts);
    if (rc != 0) {
        fprintf(stderr, "gather_pool_create: %s\n", strerror(rc));
        return 1;
    }

    int failed = demo_ordered_results(pool);
    failed |= demo_return_errors(pool);
    failed |= demo_fail_fast(pool);

    gather_pool_destroy(pool); /* waits for anything still running */
    return failed ? 1 : 0;
}
