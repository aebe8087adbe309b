/* SPDX-License-Identifier: MIT */
/*
 * evloop_libuv.c - gather under a libuv loop: evloop_epoll.c with a
 * uv_timer_t for the tick and a uv_poll_t on gather_cq_fd().
 *
 * The loop thread hands JOBS jobs (checksums of generated data, half of
 * them after a simulated slow read) to gather's default pool, adds their
 * futures to a completion queue, and polls the queue's descriptor: its
 * callback takes the finished futures with gather_cq_next(cq, 0, ...),
 * which never blocks the loop. A repeating timer keeps ticking meanwhile.
 * Exit status 0 when every result is right, the timer ran while the jobs
 * ran, and no gather_cq_next(cq, 0) call waited.
 *
 *   ./evloop_libuv [jobs]
 */
#define _POSIX_C_SOURCE 200809L

#include <gather.h>
#include <uv.h>

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TICK_MS 2
#define MAX_JOBS 1024
#define JOB_BYTES (1u << 20)
#define SLOW_READ_MS 20
/* gather_cq_next(cq, 0) only takes a lock; a call this long means it
 * waited (a bound that a busy machine's preemptions stay far below). */
#define MAX_NEXT_MS 1000

typedef struct job {
    unsigned index;
    uint64_t seed;
    int slow;
} job;

typedef struct app {
    gather_cq *cq;
    unsigned jobs, done;
    uint64_t t0, ticks, max_next_ns;
    int failed;
    uv_timer_t timer;
    uv_poll_t poll;
    job js[MAX_JOBS];
    int seen[MAX_JOBS];
    uint64_t result[MAX_JOBS];
} app;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* FNV-1a over JOB_BYTES bytes of an xorshift stream from `seed`. */
static uint64_t checksum(uint64_t seed)
{
    uint64_t x = seed | 1, h = 14695981039346656037u;
    for (unsigned i = 0; i < JOB_BYTES; i++) {
        if ((i & 7) == 0) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        h = (h ^ (uint8_t)(x >> ((i & 7) * 8))) * 1099511628211u;
    }
    return h;
}

static int run_job(void *arg, void **result)
{
    job *j = arg;
    if (j->slow) {
        gather_blocking_begin(); /* a slow read: the pool compensates */
        struct timespec ts = {0, SLOW_READ_MS * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
        gather_blocking_end();
    }
    uint64_t *h = malloc(sizeof *h);
    if (h == NULL)
        return ENOMEM;
    *h = checksum(j->seed);
    *result = h;
    return 0;
}

/* Once per turn of the loop in which the period elapsed (libuv runs a late
 * repeating timer once, not once per missed period). */
static void on_tick(uv_timer_t *t)
{
    ((app *)t->data)->ticks++;
}

/* The queue's descriptor is readable: take what finished, never waiting. */
static void on_ready(uv_poll_t *p, int status, int events)
{
    app *a = p->data;
    (void)events;
    if (status < 0) {
        fprintf(stderr, "uv_poll: %s\n", uv_strerror(status));
        a->failed = 1;
        uv_stop(p->loop);
        return;
    }
    for (;;) {
        gather_future *f;
        void *ud;
        uint64_t start = now_ns();
        int rc = gather_cq_next(a->cq, 0, &f, &ud);
        uint64_t took = now_ns() - start;
        if (took > a->max_next_ns)
            a->max_next_ns = took;
        if (rc == ETIMEDOUT || rc == ENOENT)
            break;
        if (rc != 0) {
            fprintf(stderr, "gather_cq_next: %s\n", strerror(rc));
            a->failed = 1;
            break;
        }
        job *j = ud;
        int err = gather_future_error(f);
        uint64_t *h = gather_future_value(f);
        if (err != 0 || h == NULL || a->seen[j->index]++) {
            fprintf(stderr, "job %u: %s\n", j->index, err ? strerror(err) : "handed out twice");
            a->failed = 1;
        } else {
            a->result[j->index] = *h;
            printf("job %3u %-3s fnv1a=%016" PRIx64 " at %5.1f ms, tick %" PRIu64 "\n",
                   j->index, j->slow ? "io" : "cpu", *h, (double)(now_ns() - a->t0) / 1e6,
                   a->ticks);
        }
        free(h);
        gather_future_release(f);
        a->done++;
    }
    if (a->done == a->jobs) { /* all in: let the loop end */
        uv_poll_stop(&a->poll);
        uv_timer_stop(&a->timer);
    }
}

#define CHECK(call)                                                          \
    do {                                                                     \
        int rc_ = (call);                                                    \
        if (rc_ != 0) {                                                      \
            fprintf(stderr, "%s:%d: %s: %d\n", __FILE__, __LINE__, #call, rc_); \
            return 1;                                                        \
        }                                                                    \
    } while (0)

int main(int argc, char **argv)
{
    static app a;
    a.jobs = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 32;
    if (a.jobs == 0 || a.jobs > MAX_JOBS) {
        fprintf(stderr, "usage: %s [jobs 1..%d]\n", argv[0], MAX_JOBS);
        return 2;
    }
    uv_loop_t *loop = uv_default_loop();
    CHECK(gather_cq_create(&a.cq));
    int fd;
    CHECK(gather_cq_fd(a.cq, &fd));
    CHECK(uv_timer_init(loop, &a.timer));
    CHECK(uv_poll_init(loop, &a.poll, fd));
    a.timer.data = a.poll.data = &a;
    CHECK(uv_timer_start(&a.timer, on_tick, TICK_MS, TICK_MS));
    CHECK(uv_poll_start(&a.poll, UV_READABLE, on_ready));

    a.t0 = now_ns();
    for (unsigned i = 0; i < a.jobs; i++) {
        a.js[i] = (job){i, 0x9e3779b97f4a7c15u * (i + 1), (int)(i % 2)};
        gather_future *f;
        CHECK(gather_submit(NULL, run_job, &a.js[i], &f));
        CHECK(gather_cq_add(a.cq, f, &a.js[i]));
        gather_future_release(f); /* the queue holds its own reference */
    }
    CHECK(uv_run(loop, UV_RUN_DEFAULT));
    uint64_t elapsed_ns = now_ns() - a.t0;

    uv_close((uv_handle_t *)&a.timer, NULL);
    uv_close((uv_handle_t *)&a.poll, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(loop));
    CHECK(gather_cq_destroy(a.cq));

    printf("%u jobs in %.1f ms; the timer (%d ms) ran %" PRIu64 " times meanwhile; slowest "
           "gather_cq_next(cq, 0): %.3f ms\n",
           a.jobs, (double)elapsed_ns / 1e6, TICK_MS, a.ticks, (double)a.max_next_ns / 1e6);
    for (unsigned i = 0; i < a.jobs; i++) {
        if (a.seen[i] != 1) {
            fprintf(stderr, "job %u handed out %d times\n", i, a.seen[i]);
            a.failed = 1;
        } else if (a.result[i] != checksum(a.js[i].seed)) {
            fprintf(stderr, "job %u: wrong checksum\n", i);
            a.failed = 1;
        }
    }
    if (a.done != a.jobs) {
        fprintf(stderr, "%u of %u jobs came back\n", a.done, a.jobs);
        a.failed = 1;
    }
    if (a.ticks < 2) {
        fprintf(stderr, "the timer did not tick while the jobs ran: the loop was blocked\n");
        a.failed = 1;
    }
    if (a.max_next_ns > (uint64_t)MAX_NEXT_MS * 1000000u) {
        fprintf(stderr, "gather_cq_next(cq, 0) took %.1f ms: it blocked the loop\n",
                (double)a.max_next_ns / 1e6);
        a.failed = 1;
    }
    return a.failed;
}
