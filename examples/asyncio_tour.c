/* SPDX-License-Identifier: MIT */
/*
 * asyncio_tour.c - the classic asyncio.gather() tutorial programs, in C.
 *
 *   ./build/examples/asyncio_tour
 *
 * Each part quotes the Python program it rewrites, then does the same with
 * gather and prints what Python prints (Python's reprs become C-ish ones:
 * ValueError('boom') is printed as EINVAL('boom'), ZeroDivisionError as EDOM).
 *
 * Where Python's coroutines await asyncio.sleep(), these tasks block in
 * nanosleep() on a thread of the default pool (every call passes NULL for the
 * pool: nothing to create, size or destroy). A blocked task holds its thread,
 * but the default pool is elastic: it runs one thread per CPU, and when its
 * tasks block while others wait in its queue it notices within a few
 * milliseconds and starts spare threads (up to 512, GATHER_MAX_THREADS), so
 * every sleeping task gets a thread of its own and all of them sleep at the
 * same time, as asyncio's coroutines do, whatever the number of CPUs. The
 * tour checks it: each gather below must see all of its tasks asleep at
 * once, else the tour says so on stderr and exits 1.
 *
 * Timing: every delay is a tenth of the Python original (1 s becomes 0.1 s)
 * so that the tour runs in about a second and a half; the times it prints
 * are in Python's seconds (the real time times ten), so they match Python's.
 */
#define _POSIX_C_SOURCE 200809L

#include <gather.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One Python second is SCALE seconds here. */
#define SCALE 0.1

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Tasks inside sleep_scaled() now, and the most at once since the last
 * overlap_reset(). */
static atomic_int sleeping, sleeping_peak;

/* await asyncio.sleep(python_seconds), scaled. Sleeps in 10 ms slices and
 * returns ECANCELED early when the task's future is cancelled: the C
 * counterpart of asyncio.sleep() raising CancelledError. */
static int sleep_scaled(double python_seconds)
{
    int now = atomic_fetch_add(&sleeping, 1) + 1;
    int peak = atomic_load(&sleeping_peak);
    while (now > peak && !atomic_compare_exchange_weak(&sleeping_peak, &peak, now))
        ;
    double end = now_s() + python_seconds * SCALE;
    int rc = 0;
    for (;;) {
        if (gather_cancel_requested()) {
            rc = ECANCELED;
            break;
        }
        double left = end - now_s();
        if (left <= 0)
            break;
        if (left > 0.01)
            left = 0.01;
        struct timespec ts = {0, (long)(left * 1e9)};
        nanosleep(&ts, NULL);
    }
    atomic_fetch_sub(&sleeping, 1);
    return rc;
}

static void overlap_reset(void)
{
    atomic_store(&sleeping_peak, 0);
}

/* 0 when `tasks` tasks slept at once since overlap_reset(), as gathered
 * coroutines would; else says so on stderr and returns 1. */
static int overlap_check(const char *what, int tasks)
{
    int peak = atomic_load(&sleeping_peak);
    if (peak >= tasks)
        return 0;
    fprintf(stderr,
            "asyncio_tour: %s: at most %d of the %d tasks slept at once: the default pool "
            "(threads: %zu) did not start spare threads for the blocked tasks\n",
            what, peak, tasks, gather_pool_threads(NULL));
    return 1;
}

/* The name of the errno values this tour raises, for Python-like reprs. */
static const char *error_name(int code)
{
    switch (code) {
    case EINVAL: return "EINVAL";
    case EDOM: return "EDOM";
    case ECANCELED: return "ECANCELED";
    default: return strerror(code);
    }
}

/* Submits fn(args[i]) for i < n; on failure waits for what was submitted. */
static int submit_all(gather_fn fn, void *const args[], size_t n, gather_future *futures[])
{
    for (size_t i = 0; i < n; i++) {
        int rc = gather_submit(NULL, fn, args[i], &futures[i]);
        if (rc != 0) {
            fprintf(stderr, "gather_submit: %s\n", strerror(rc));
            gather_futures(futures, i, NULL, GATHER_RETURN_ERRORS);
            for (size_t j = 0; j < i; j++)
                gather_future_release(futures[j]);
            return rc;
        }
    }
    return 0;
}

static void release_all(gather_future *futures[], size_t n)
{
    for (size_t i = 0; i < n; i++)
        gather_future_release(futures[i]);
}

/* ==== 1. Two API calls at once ==========================================
 *
 *   import asyncio, time
 *
 *   async def fetch_user():
 *       await asyncio.sleep(1)              # pretend: an HTTP request
 *       return {"id": 1, "name": "Alice"}
 *
 *   async def fetch_posts():
 *       await asyncio.sleep(2)
 *       return [{"id": 1, "title": "Hello"}, {"id": 2, "title": "World"}]
 *
 *   async def main():
 *       start = time.perf_counter()
 *       user, posts = await asyncio.gather(fetch_user(), fetch_posts())
 *       print("user: ", user)
 *       print("posts:", posts)
 *       print(f"took {time.perf_counter() - start:.1f} s")   # 2.0 s, not 3.0
 *
 *   asyncio.run(main())
 */

typedef struct user {
    int id;
    const char *name;
} user;

typedef struct post {
    int id;
    const char *title;
} post;

typedef struct posts {
    size_t count;
    post items[2];
} posts;

static int fetch_user(void *arg, void **result)
{
    (void)arg;
    static const user alice = {1, "Alice"};
    int rc = sleep_scaled(1);
    *result = (void *)&alice;
    return rc;
}

static int fetch_posts(void *arg, void **result)
{
    (void)arg;
    static const posts list = {2, {{1, "Hello"}, {2, "World"}}};
    int rc = sleep_scaled(2);
    *result = (void *)&list;
    return rc;
}

static int part1_two_api_calls(void)
{
    printf("== 1. Two API calls at once (1 s and 2 s in Python, 0.1 s and 0.2 s here)\n");
    double start = now_s();

    gather_future *futures[2];
    gather_result results[2];
    overlap_reset();
    int rc = gather_submit(NULL, fetch_user, NULL, &futures[0]);
    if (rc != 0)
        return rc;
    rc = gather_submit(NULL, fetch_posts, NULL, &futures[1]);
    if (rc != 0) {
        gather_future_wait(futures[0], NULL);
        gather_future_release(futures[0]);
        return rc;
    }

    /* user, posts = await asyncio.gather(fetch_user(), fetch_posts()) */
    rc = gather_futures(futures, 2, results, 0);
    release_all(futures, 2);
    if (rc != 0) {
        printf("gather failed: %s\n", strerror(rc));
        return rc;
    }
    const user *u = results[0].value;
    const posts *p = results[1].value;

    printf("user:  {'id': %d, 'name': '%s'}\n", u->id, u->name);
    printf("posts: [");
    for (size_t i = 0; i < p->count; i++)
        printf("%s{'id': %d, 'title': '%s'}", i ? ", " : "", p->items[i].id, p->items[i].title);
    printf("]\n");
    double took = now_s() - start;
    printf("took %.1f s   (really %.2f s: the calls overlapped; one after the other: 0.30 s)\n\n",
           took / SCALE, took);
    return overlap_check("part 1", 2);
}

/* ==== 2. One failing call, with and without return_exceptions ===========
 *
 *   async def call_api(name, delay, fail=False):
 *       await asyncio.sleep(delay)
 *       if fail:
 *           raise ValueError(f"{name} failed")
 *       return f"{name} ok"
 *
 *   def calls():
 *       return (call_api("users", 1), call_api("orders", 2, fail=True),
 *               call_api("stock", 3))
 *
 *   async def main():
 *       try:
 *           await asyncio.gather(*calls())
 *       except ValueError as e:
 *           print(f"caught: {e!r}")     # after 2 s; "stock" keeps running
 *       results = await asyncio.gather(*calls(), return_exceptions=True)
 *       print(results)
 *
 *   # caught: ValueError('orders failed')
 *   # ['users ok', ValueError('orders failed'), 'stock ok']
 */

typedef struct api_call {
    const char *name;
    double delay; /* Python seconds */
    int fail;
    char text[64]; /* the result string, or the error message */
} api_call;

static int call_api(void *arg, void **result)
{
    api_call *call = arg;
    int rc = sleep_scaled(call->delay);
    if (rc != 0)
        return rc; /* cancelled while sleeping (part 4) */
    *result = call->text;
    if (call->fail) {
        snprintf(call->text, sizeof call->text, "%s failed", call->name);
        return EINVAL; /* raise ValueError(f"{name} failed") */
    }
    snprintf(call->text, sizeof call->text, "%s ok", call->name);
    return 0;
}

/* Prints a result list the way Python prints gather()'s list. */
static void print_results(const gather_result results[], size_t n)
{
    printf("[");
    for (size_t i = 0; i < n; i++) {
        const char *sep = i ? ", " : "";
        if (results[i].error == 0)
            printf("%s'%s'", sep, (const char *)results[i].value);
        else if (results[i].value != NULL)
            printf("%s%s('%s')", sep, error_name(results[i].error),
                   (const char *)results[i].value);
        else
            printf("%s%s()", sep, error_name(results[i].error));
    }
    printf("]\n");
}

static int part2_failing_call(void)
{
    printf("== 2. One failing call, with and without return_exceptions\n");
    api_call calls[3] = {{"users", 1, 0, ""}, {"orders", 2, 1, ""}, {"stock", 3, 0, ""}};
    void *args[3] = {&calls[0], &calls[1], &calls[2]};
    gather_future *futures[3];
    gather_result results[3];

    /* try: await asyncio.gather(*calls()) except ValueError as e: ... */
    double start = now_s();
    int rc = submit_all(call_api, args, 3, futures);
    if (rc != 0)
        return rc;
    rc = gather_futures(futures, 3, results, 0);
    if (rc == 0) {
        printf("no exception?\n");
        release_all(futures, 3);
        return 1;
    }
    /* The failure comes back at once, with its payload in its slot. */
    printf("caught: %s('%s')   after %.1f s; 'stock' still %s\n", error_name(rc),
           (const char *)results[1].value, (now_s() - start) / SCALE,
           results[2].error == EINPROGRESS ? "running (gather does not cancel it)"
                                           : "done (a slow machine)");
    /* Python leaves "stock" running in the background; here we wait for it
     * before its arguments go out of scope. */
    gather_futures(futures, 3, NULL, GATHER_RETURN_ERRORS);
    release_all(futures, 3);

    /* results = await asyncio.gather(*calls(), return_exceptions=True) */
    overlap_reset();
    rc = submit_all(call_api, args, 3, futures);
    if (rc != 0)
        return rc;
    rc = gather_futures(futures, 3, results, GATHER_RETURN_ERRORS);
    release_all(futures, 3);
    if (rc != 0)
        return rc;
    print_results(results, 3);
    printf("\n");
    return overlap_check("part 2", 3);
}

/* ==== 3. Three factorials (the asyncio documentation's example) =========
 *
 *   async def factorial(name, number):
 *       f = 1
 *       for i in range(2, number + 1):
 *           print(f"Task {name}: Compute factorial({number}), currently i={i}...")
 *           await asyncio.sleep(1)
 *           f *= i
 *       print(f"Task {name}: factorial({number}) = {f}")
 *       return f
 *
 *   async def main():
 *       # Schedule three calls *concurrently*:
 *       L = await asyncio.gather(
 *           factorial("A", 2),
 *           factorial("B", 3),
 *           factorial("C", 4),
 *       )
 *       print(L)
 *
 *   # Task A: Compute factorial(2), currently i=2...
 *   # Task B: Compute factorial(3), currently i=2...
 *   # Task C: Compute factorial(4), currently i=2...
 *   # Task A: factorial(2) = 2
 *   # Task B: Compute factorial(3), currently i=3...
 *   # Task C: Compute factorial(4), currently i=3...
 *   # Task B: factorial(3) = 6
 *   # Task C: Compute factorial(4), currently i=4...
 *   # Task C: factorial(4) = 24
 *   # [2, 6, 24]
 *
 * ...and its ZeroDivisionError variant:
 *
 *   async def divide(a, b):
 *       await asyncio.sleep(1)
 *       return a / b
 *
 *   async def main():
 *       try:
 *           print(await asyncio.gather(divide(10, 2), divide(1, 0), divide(9, 3)))
 *       except ZeroDivisionError as e:
 *           print(f"caught: {e!r}")
 *       print(await asyncio.gather(divide(10, 2), divide(1, 0), divide(9, 3),
 *                                  return_exceptions=True))
 *
 *   # caught: ZeroDivisionError('division by zero')
 *   # [5.0, ZeroDivisionError('division by zero'), 3.0]
 *
 * The tasks are threads, not coroutines taking turns on one thread, so lines
 * printed in the same "second" may come out in another order than Python's;
 * each task starts 5 ms after the previous one so that they usually do not.
 */

typedef struct factorial_job {
    const char *name;
    int number;
    int index; /* start offset, in 5 ms steps */
    long long f;
} factorial_job;

static int factorial(void *arg, void **result)
{
    factorial_job *job = arg;
    struct timespec stagger = {0, job->index * 5000000L};
    nanosleep(&stagger, NULL);
    job->f = 1;
    for (int i = 2; i <= job->number; i++) {
        printf("Task %s: Compute factorial(%d), currently i=%d...\n", job->name, job->number, i);
        fflush(stdout);
        int rc = sleep_scaled(1);
        if (rc != 0)
            return rc;
        job->f *= i;
    }
    printf("Task %s: factorial(%d) = %lld\n", job->name, job->number, job->f);
    fflush(stdout);
    *result = job;
    return 0;
}

typedef struct division {
    double a, b;
    double quotient;
} division;

static int divide(void *arg, void **result)
{
    division *d = arg;
    int rc = sleep_scaled(1);
    if (rc != 0)
        return rc;
    if (d->b == 0) {
        *result = (void *)"division by zero";
        return EDOM; /* raise ZeroDivisionError */
    }
    d->quotient = d->a / d->b;
    *result = d;
    return 0;
}

static int part3_factorials(void)
{
    printf("== 3. Three factorials (the asyncio docs example), then a division by zero\n");
    fflush(stdout);
    factorial_job jobs[3] = {{"A", 2, 0, 0}, {"B", 3, 1, 0}, {"C", 4, 2, 0}};
    void *args[3] = {&jobs[0], &jobs[1], &jobs[2]};
    gather_result results[3];

    /* L = await asyncio.gather(...): gather_map() submits each, then
     * gathers. (It returns early only when a task fails, and these don't.) */
    overlap_reset();
    int rc = gather_map(NULL, factorial, args, 3, results, 0);
    if (rc != 0) {
        printf("gather failed: %s\n", strerror(rc));
        return rc;
    }
    printf("[");
    for (size_t i = 0; i < 3; i++)
        printf("%s%lld", i ? ", " : "", ((factorial_job *)results[i].value)->f);
    printf("]\n");
    int overlapped = overlap_check("part 3, factorials", 3);

    division divs[3] = {{10, 2, 0}, {1, 0, 0}, {9, 3, 0}};
    void *dargs[3] = {&divs[0], &divs[1], &divs[2]};

    /* try: print(await asyncio.gather(divide(10, 2), divide(1, 0), divide(9, 3)))
     * With futures of our own, not gather_map(): a fail-fast gather returns
     * while the other divisions may still run, and they use divs[], so we
     * must be able to wait for them before divs[] goes out of scope. */
    gather_future *futures[3];
    rc = submit_all(divide, dargs, 3, futures);
    if (rc != 0)
        return rc;
    rc = gather_futures(futures, 3, results, 0);
    if (rc == 0) {
        printf("no exception?\n");
    } else {
        printf("caught: %s('%s')\n", error_name(rc), (const char *)results[1].value);
    }
    gather_futures(futures, 3, NULL, GATHER_RETURN_ERRORS); /* the others finish */
    release_all(futures, 3);
    if (rc == 0)
        return 1;

    /* print(await asyncio.gather(..., return_exceptions=True)) */
    /* gather_map() with GATHER_RETURN_ERRORS waits for all three. */
    overlap_reset();
    rc = gather_map(NULL, divide, dargs, 3, results, GATHER_RETURN_ERRORS);
    if (rc != 0)
        return rc;
    printf("[");
    for (size_t i = 0; i < 3; i++) {
        if (results[i].error == 0)
            printf("%s%.1f", i ? ", " : "", ((division *)results[i].value)->quotient);
        else
            printf("%s%s('%s')", i ? ", " : "", error_name(results[i].error),
                   (const char *)results[i].value);
    }
    printf("]\n\n");
    return overlapped | overlap_check("part 3, divisions", 3);
}

/* ==== 4. Bonus: asyncio.TaskGroup cancels the rest on the first failure ==
 *
 *   async def main():
 *       try:
 *           async with asyncio.TaskGroup() as tg:
 *               users = tg.create_task(call_api("users", 1))
 *               orders = tg.create_task(call_api("orders", 2, fail=True))
 *               stock = tg.create_task(call_api("stock", 10))   # slow
 *       except* ValueError as eg:
 *           print(f"caught: {eg.exceptions[0]!r}")
 *       print(users.result(), orders.exception(), stock.cancelled())
 *
 *   # caught: ValueError('orders failed')
 *   # users ok orders failed True
 *
 * GATHER_CANCEL_ON_ERROR | GATHER_WAIT_ALL is that structured mode, in one
 * call: on the first failure the others are cancelled (a running task sees
 * gather_cancel_requested()), and the call returns the first failure once
 * every task of the group is over, as leaving the "async with" block does.
 */

static int part4_task_group(void)
{
    printf("== 4. Bonus: TaskGroup (GATHER_CANCEL_ON_ERROR | GATHER_WAIT_ALL)\n");
    api_call calls[3] = {{"users", 1, 0, ""}, {"orders", 2, 1, ""}, {"stock", 10, 0, ""}};
    void *args[3] = {&calls[0], &calls[1], &calls[2]};
    gather_future *futures[3];
    gather_result results[3];

    int rc = submit_all(call_api, args, 3, futures);
    if (rc != 0)
        return rc;
    double start = now_s();
    rc = gather_futures(futures, 3, results, GATHER_CANCEL_ON_ERROR | GATHER_WAIT_ALL);
    printf("caught: %s('%s')\n", error_name(rc), (const char *)results[1].value);
    const char *users = results[0].error == 0 ? results[0].value : "(cancelled)";
    printf("%s %s %s\n", users, (const char *)results[1].value,
           gather_future_cancelled(futures[2]) ? "True" : "False");
    /* Every task is over (no EINPROGRESS), and well before "stock"'s 10 s. */
    double took = (now_s() - start) / SCALE;
    int ok = rc == EINVAL && gather_future_cancelled(futures[2]) &&
             results[2].error == ECANCELED && took < 5.0;
    release_all(futures, 3);
    return ok ? 0 : 1;
}

/* ==== 5. asyncio.wait_for() around a gather ===============================
 *
 *   async def main():
 *       try:
 *           await asyncio.wait_for(asyncio.gather(call_api("fast", 1),
 *                                                 call_api("slow", 5)), 2)
 *       except TimeoutError:
 *           print("timed out after 2 s")
 *
 * asyncio cancels the gather (and so both calls) at the timeout; that is
 * gather_futures_for() with GATHER_CANCEL_ON_ERROR (a timeout counts as a
 * failure). Without the flag the tasks keep running and can be waited for
 * again: the snapshot says which were done.
 */

static int part5_wait_for(void)
{
    printf("== 5. wait_for(gather(...), 2): gather_futures_for()\n");
    api_call calls[2] = {{"fast", 1, 0, ""}, {"slow", 5, 0, ""}};
    void *args[2] = {&calls[0], &calls[1]};
    gather_future *futures[2];
    gather_result results[2];
    int rc = submit_all(call_api, args, 2, futures);
    if (rc != 0)
        return rc;
    rc = gather_futures_for(futures, 2, results, GATHER_CANCEL_ON_ERROR,
                            (uint64_t)(2 * SCALE * 1e9));
    if (rc == ETIMEDOUT)
        printf("timed out after 2 s: fast %s, slow %s\n",
               results[0].error == 0 ? "done" : "not done",
               gather_future_cancelled(futures[1]) || results[1].error == EINPROGRESS
                   ? "cancelled" : "done");
    /* The slow call saw the cancel and stops: wait for it to be over. */
    gather_futures(futures, 2, NULL, GATHER_RETURN_ERRORS);
    int ok = rc == ETIMEDOUT && results[0].error == 0 &&
             gather_future_error(futures[1]) == ECANCELED;
    release_all(futures, 2);
    return ok ? 0 : 1;
}

/* ==== 6. asyncio.as_completed() =========================================
 *
 *   async def main():
 *       for next_done in asyncio.as_completed([call_api("c", 3),
 *                                              call_api("a", 1),
 *                                              call_api("b", 2)]):
 *           print(await next_done)
 *
 *   # a ok
 *   # b ok
 *   # c ok
 *
 * A completion queue hands futures out in the order they finish; its
 * descriptor (gather_cq_fd) lets an event loop wait for the same thing.
 */

static int part6_as_completed(void)
{
    printf("== 6. as_completed(): a completion queue\n");
    api_call calls[3] = {{"c", 3, 0, ""}, {"a", 1, 0, ""}, {"b", 2, 0, ""}};
    void *args[3] = {&calls[0], &calls[1], &calls[2]};
    gather_future *futures[3];
    int rc = submit_all(call_api, args, 3, futures);
    if (rc != 0)
        return rc;
    gather_cq *cq;
    rc = gather_cq_create(&cq);
    for (int i = 0; rc == 0 && i < 3; i++)
        rc = gather_cq_add(cq, futures[i], &calls[i]);
    release_all(futures, 3); /* the queue holds its own references */
    if (rc != 0)
        return rc;
    char order[4] = "";
    size_t k = 0;
    gather_future *f;
    void *ud;
    while (gather_cq_next(cq, GATHER_FOREVER, &f, &ud) == 0) {
        printf("%s\n", (const char *)gather_future_value(f));
        order[k++] = ((api_call *)ud)->name[0];
        gather_future_release(f);
    }
    gather_cq_destroy(cq);
    return strcmp(order, "abc") == 0 ? 0 : 1;
}

int main(void)
{
    /* Every task goes to the default pool: up to three of them sleep at once,
     * and the pool starts what threads that takes, whatever the CPUs. */
    int failed = part1_two_api_calls() != 0;
    failed |= part2_failing_call() != 0;
    failed |= part3_factorials() != 0;
    failed |= part4_task_group() != 0;
    failed |= part5_wait_for() != 0;
    failed |= part6_as_completed() != 0;
    /* Every task was waited for; the default pool is never destroyed. */
    return failed ? 1 : 0;
}
