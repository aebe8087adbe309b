/* SPDX-License-Identifier: MIT */
/*
 * evloop_epoll.c - gather under an epoll event loop, with no other
 * dependency.
 *
 * The loop owns one thread. It runs a timerfd that ticks every TICK_MS and
 * hands JOBS jobs (checksums of generated data, half of them after a
 * simulated slow read) to gather's default pool. A completion queue
 * collects their futures; the loop watches gather_cq_fd() with epoll and,
 * when it fires, takes the finished futures with gather_cq_next(cq, 0, ...)
 * (timeout 0: it only looks, never blocks the loop).
 *
 * It checks what it shows: every job's result is right (recomputed at the
 * end), each handed out once, the loop came back to the timer while the
 * jobs ran, no gather_cq_next(cq, 0) call waited, and the descriptor is
 * not readable once everything was taken. Exit status 0 when all holds;
 * the last line says how often the timer was served and the largest gap.
 *
 *   ./evloop_epoll [jobs]
 */
#define _POSIX_C_SOURCE 200809L

#include <gather.h>

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

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
    int slow; /* simulated IO before the work */
} job;

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
        /* A slow read: the elastic default pool keeps its CPUs busy with
         * other jobs meanwhile. */
        gather_blocking_begin();
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

#define CHECK(call)                                                          \
    do {                                                                     \
        int rc_ = (call);                                                    \
        if (rc_ != 0) {                                                      \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call,    \
                    strerror(rc_));                                          \
            exit(1);                                                         \
        }                                                                    \
    } while (0)

int main(int argc, char **argv)
{
    unsigned jobs = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 32;
    if (jobs == 0 || jobs > MAX_JOBS) {
        fprintf(stderr, "usage: %s [jobs 1..%d]\n", argv[0], MAX_JOBS);
        return 2;
    }
    static job js[MAX_JOBS];
    static int seen[MAX_JOBS];

    gather_cq *cq;
    CHECK(gather_cq_create(&cq));
    int cq_fd;
    CHECK(gather_cq_fd(cq, &cq_fd));

    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (tfd < 0 || ep < 0) {
        perror("timerfd_create/epoll_create1");
        return 1;
    }
    struct itimerspec its = {{0, TICK_MS * 1000000L}, {0, TICK_MS * 1000000L}};
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = tfd};
    if (timerfd_settime(tfd, 0, &its, NULL) != 0 ||
        epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev) != 0) {
        perror("timerfd_settime/epoll_ctl");
        return 1;
    }
    ev.data.fd = cq_fd;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, cq_fd, &ev) != 0) {
        perror("epoll_ctl");
        return 1;
    }

    uint64_t t0 = now_ns();
    for (unsigned i = 0; i < jobs; i++) {
        js[i] = (job){i, 0x9e3779b97f4a7c15u * (i + 1), (int)(i % 2)};
        gather_future *f;
        CHECK(gather_submit(NULL, run_job, &js[i], &f));
        CHECK(gather_cq_add(cq, f, &js[i]));
        gather_future_release(f); /* the queue holds its own reference */
    }

    static uint64_t result[MAX_JOBS];
    unsigned done = 0;
    uint64_t ticks = 0, tick_turns = 0, max_tick_gap = 0, turns = 0, max_next_ns = 0;
    int failed = 0;
    while (done < jobs) {
        struct epoll_event evs[2];
        int n = epoll_wait(ep, evs, 2, 10000);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "evloop_epoll: no event for 10 s\n");
            return 1;
        }
        turns++;
        for (int k = 0; k < n; k++) {
            if (evs[k].data.fd == tfd) {
                uint64_t expirations;
                if (read(tfd, &expirations, sizeof expirations) == sizeof expirations) {
                    ticks += expirations;
                    tick_turns++;
                    if (expirations > max_tick_gap) /* periods since the last read */
                        max_tick_gap = expirations;
                }
                continue;
            }
            /* The queue's descriptor: take what finished, never waiting. */
            for (;;) {
                gather_future *f;
                void *ud;
                uint64_t start = now_ns();
                int rc = gather_cq_next(cq, 0, &f, &ud);
                uint64_t took = now_ns() - start;
                if (took > max_next_ns)
                    max_next_ns = took;
                if (rc == ETIMEDOUT || rc == ENOENT)
                    break; /* nothing more finished for now */
                CHECK(rc);
                job *j = ud;
                int err = gather_future_error(f); /* done: no waiting */
                uint64_t *h = gather_future_value(f);
                if (err != 0 || h == NULL || seen[j->index]++) {
                    fprintf(stderr, "job %u: %s\n", j->index,
                            err ? strerror(err) : "handed out twice");
                    failed = 1;
                } else {
                    result[j->index] = *h;
                    printf("job %3u %-3s fnv1a=%016" PRIx64 " at %5.1f ms, tick %" PRIu64 "\n",
                           j->index, j->slow ? "io" : "cpu", *h,
                           (double)(now_ns() - t0) / 1e6, ticks);
                }
                free(h);
                gather_future_release(f);
                done++;
            }
        }
    }
    uint64_t elapsed_ns = now_ns() - t0;

    /* Nothing is left: the descriptor must not be readable. */
    struct epoll_event e;
    int stale = epoll_wait(ep, &e, 1, 0) == 1 && e.data.fd == cq_fd;
    close(ep);
    close(tfd);
    CHECK(gather_cq_destroy(cq));

    printf("%u jobs in %.1f ms; the loop turned %" PRIu64 " times, %" PRIu64 " of them for "
           "the timer (%" PRIu64 " ticks of %d ms, at most %" PRIu64 " between two turns); "
           "slowest gather_cq_next(cq, 0): %.3f ms\n",
           jobs, (double)elapsed_ns / 1e6, turns, tick_turns, ticks, TICK_MS, max_tick_gap,
           (double)max_next_ns / 1e6);
    for (unsigned i = 0; i < jobs; i++) {
        if (seen[i] != 1) {
            fprintf(stderr, "job %u handed out %d times\n", i, seen[i]);
            failed = 1;
        } else if (result[i] != checksum(js[i].seed)) { /* recomputed */
            fprintf(stderr, "job %u: wrong checksum\n", i);
            failed = 1;
        }
    }
    /* The slow jobs take SLOW_READ_MS at least: a loop that was not blocked
     * came back to the timer meanwhile, several times. */
    if (tick_turns < 2) {
        fprintf(stderr, "the timer did not tick while the jobs ran: the loop was blocked\n");
        failed = 1;
    }
    if (max_next_ns > (uint64_t)MAX_NEXT_MS * 1000000u) {
        fprintf(stderr, "gather_cq_next(cq, 0) took %.1f ms: it blocked the loop\n",
                (double)max_next_ns / 1e6);
        failed = 1;
    }
    if (stale) {
        fprintf(stderr, "the queue's descriptor is readable with nothing ready\n");
        failed = 1;
    }
    return failed;
}
