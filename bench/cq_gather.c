/* SPDX-License-Identifier: MIT */
/* The completion queue (gather_cq_*):
 *
 * cq_drain<n>: n trivial tasks queued behind gated workers, added to a
 * queue while pending (the listener path), then the gate opens and one
 * consumer thread (not a pool thread) drains the queue with
 * gather_cq_next(GATHER_FOREVER) until ENOENT while the workers run the
 * tasks. value: ns per item for the adds plus the drain; items_per_s is
 * its inverse. The submits are not counted (reported as submit_ns).
 * cq_gather_futures<n>: the same tasks, gate opened, gathered with
 * gather_futures() instead: what the pool itself costs per task.
 * cq_ready<n>: the same tasks, all done first, then added to a queue and
 * drained with gather_cq_next(cq, 0): the queue's own cost per item.
 *
 * cq_fd_p50/p99: on a warm pool, one task at a time that spins spin_us and
 * takes a timestamp just before it returns; the main thread sleeps in
 * epoll_wait() on gather_cq_fd() and takes one on waking. value: that
 * delay, task end -> epoll_wait() returned, in microseconds.
 *
 *   bench_cq_gather threads=2 n=1000000 samples=2000 spin_us=20
 */
#include <gather.h>
#include <pthread.h>
#include <sys/epoll.h>

#include "common.h"

/* ---- the gate that holds every worker --------------------------------- */

static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static int gate_open, gate_in;

static int gate_task(void *arg, void **result)
{
    (void)arg;
    (void)result;
    pthread_mutex_lock(&gate_lock);
    gate_in++;
    pthread_cond_broadcast(&gate_cond);
    while (!gate_open)
        pthread_cond_wait(&gate_cond, &gate_lock);
    pthread_mutex_unlock(&gate_lock);
    return 0;
}

static int trivial_task(void *arg, void **result)
{
    *result = arg;
    return 0;
}

/* mode 0: through a queue while the tasks run; mode 1: the same tasks
 * gathered with gather_futures() (the pool's own cost, for comparison);
 * mode 2: added to a queue once done, then drained (the queue alone). */
static void drain(gather_pool *pool, int threads, long n, int report, int mode)
{
    gather_future **gates = bench_xmalloc(sizeof *gates * (size_t)threads);
    pthread_mutex_lock(&gate_lock);
    gate_open = 0;
    gate_in = 0;
    pthread_mutex_unlock(&gate_lock);
    for (int i = 0; i < threads; i++)
        BENCH_CHECK(gather_submit(pool, gate_task, NULL, &gates[i]));
    pthread_mutex_lock(&gate_lock);
    while (gate_in < threads)
        pthread_cond_wait(&gate_cond, &gate_lock);
    pthread_mutex_unlock(&gate_lock);

    gather_future **fs = bench_xmalloc(sizeof *fs * (size_t)n);
    uint64_t t0 = bench_now_ns();
    for (long i = 0; i < n; i++)
        BENCH_CHECK(gather_submit(pool, trivial_task, (void *)(intptr_t)i, &fs[i]));
    uint64_t t1 = bench_now_ns();
    if (mode == 2) {
        /* Every task done before the queue sees it: the queue's own cost,
         * adds of done futures plus the drain. */
        pthread_mutex_lock(&gate_lock);
        gate_open = 1;
        pthread_cond_broadcast(&gate_cond);
        pthread_mutex_unlock(&gate_lock);
        BENCH_CHECK(gather_futures(fs, (size_t)n, NULL, 0));
        gather_cq *cq;
        BENCH_CHECK(gather_cq_create(&cq));
        uint64_t t2 = bench_now_ns();
        for (long i = 0; i < n; i++)
            BENCH_CHECK(gather_cq_add(cq, fs[i], NULL));
        uint64_t t3 = bench_now_ns();
        gather_future *f;
        long got = 0;
        while (gather_cq_next(cq, 0, &f, NULL) == 0) {
            gather_future_release(f);
            got++;
        }
        uint64_t t4 = bench_now_ns();
        if (got != n)
            bench_fail("cq ready: %ld of %ld items", got, n);
        BENCH_CHECK(gather_cq_destroy(cq));
        for (long i = 0; i < n; i++)
            gather_future_release(fs[i]);
        for (int i = 0; i < threads; i++) {
            BENCH_CHECK(gather_future_wait(gates[i], NULL));
            gather_future_release(gates[i]);
        }
        free(gates);
        free(fs);
        if (report) {
            char name[64], cnt[32];
            snprintf(name, sizeof name, "cq_ready%s", bench_count(n, cnt, sizeof cnt));
            double per = (double)(t4 - t2) / (double)n;
            bench_report(name, "gather", threads, per, "ns",
                         "items_per_s=%.0f add_ns=%.1f next_ns=%.1f n=%ld", 1e9 / per,
                         (double)(t3 - t2) / (double)n, (double)(t4 - t3) / (double)n, n);
        }
        return;
    }
    if (mode == 1) {
        uint64_t t2 = bench_now_ns();
        pthread_mutex_lock(&gate_lock);
        gate_open = 1;
        pthread_cond_broadcast(&gate_cond);
        pthread_mutex_unlock(&gate_lock);
        BENCH_CHECK(gather_futures(fs, (size_t)n, NULL, 0));
        uint64_t t3 = bench_now_ns();
        for (long i = 0; i < n; i++)
            gather_future_release(fs[i]);
        for (int i = 0; i < threads; i++) {
            BENCH_CHECK(gather_future_wait(gates[i], NULL));
            gather_future_release(gates[i]);
        }
        free(gates);
        free(fs);
        if (report) {
            char name[64], cnt[32];
            snprintf(name, sizeof name, "cq_gather_futures%s", bench_count(n, cnt, sizeof cnt));
            double per = (double)(t3 - t2) / (double)n;
            bench_report(name, "gather", threads, per, "ns", "items_per_s=%.0f n=%ld",
                         1e9 / per, n);
        }
        return;
    }
    gather_cq *cq;
    BENCH_CHECK(gather_cq_create(&cq));
    for (long i = 0; i < n; i++) {
        BENCH_CHECK(gather_cq_add(cq, fs[i], NULL));
        gather_future_release(fs[i]);
    }
    uint64_t t2 = bench_now_ns();
    pthread_mutex_lock(&gate_lock);
    gate_open = 1;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);
    gather_future *f;
    long got = 0;
    uint64_t sum = 0;
    int rc;
    while ((rc = gather_cq_next(cq, GATHER_FOREVER, &f, NULL)) == 0) {
        sum += (uint64_t)(intptr_t)gather_future_value(f);
        gather_future_release(f);
        got++;
    }
    uint64_t t3 = bench_now_ns();
    if (rc != ENOENT || got != n || sum != (uint64_t)n * (uint64_t)(n - 1) / 2)
        bench_fail("cq drain: rc %d, %ld of %ld items, sum %" PRIu64, rc, got, n, sum);
    BENCH_CHECK(gather_cq_destroy(cq));
    for (int i = 0; i < threads; i++) {
        BENCH_CHECK(gather_future_wait(gates[i], NULL));
        gather_future_release(gates[i]);
    }
    free(gates);
    free(fs);
    if (!report)
        return;
    char name[64], cnt[32];
    snprintf(name, sizeof name, "cq_drain%s", bench_count(n, cnt, sizeof cnt));
    double per = (double)(t3 - t1) / (double)n;
    bench_report(name, "gather", threads, per, "ns",
                 "items_per_s=%.0f add_ns=%.1f drain_ns=%.1f submit_ns=%.1f n=%ld",
                 1e9 / per, (double)(t2 - t1) / (double)n, (double)(t3 - t2) / (double)n,
                 (double)(t1 - t0) / (double)n, n);
}

/* ---- completion -> epoll_wait() wake-up ------------------------------- */

typedef struct stamp {
    uint64_t spin_ns;
    uint64_t end_ns;
} stamp;

static int stamped_task(void *arg, void **result)
{
    stamp *s = arg;
    uint64_t t0 = bench_now_ns();
    while (bench_now_ns() - t0 < s->spin_ns) {
    }
    s->end_ns = bench_now_ns(); /* just before return */
    *result = s;
    return 0;
}

static void fd_latency(gather_pool *pool, int threads, long samples, uint64_t spin_ns)
{
    gather_cq *cq;
    BENCH_CHECK(gather_cq_create(&cq));
    int fd;
    BENCH_CHECK(gather_cq_fd(cq, &fd));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
        bench_fail("epoll: %s", strerror(errno));
    long warm = samples / 10 + 1;
    uint64_t *lat = bench_xmalloc(sizeof *lat * (size_t)samples);
    for (long k = -warm; k < samples; k++) {
        stamp s = {spin_ns, 0};
        gather_future *f;
        BENCH_CHECK(gather_submit(pool, stamped_task, &s, &f));
        BENCH_CHECK(gather_cq_add(cq, f, NULL));
        gather_future_release(f);
        struct epoll_event out;
        int n;
        do
            n = epoll_wait(ep, &out, 1, -1);
        while (n < 0 && errno == EINTR);
        uint64_t woke = bench_now_ns();
        if (n != 1)
            bench_fail("epoll_wait: %d", n);
        BENCH_CHECK(gather_cq_next(cq, 0, &f, NULL));
        if (gather_future_value(f) != &s)
            bench_fail("cq: wrong future");
        gather_future_release(f);
        if (k >= 0)
            lat[k] = woke > s.end_ns ? woke - s.end_ns : 0;
    }
    static const double pct[2] = {50, 99};
    for (int i = 0; i < 2; i++) {
        char name[32];
        snprintf(name, sizeof name, "cq_fd_p%.0f", pct[i]);
        bench_report(name, "gather", threads,
                     (double)bench_percentile(lat, (size_t)samples, pct[i]) / 1e3, "us",
                     "samples=%ld spin_us=%.0f", samples, (double)spin_ns / 1e3);
    }
    free(lat);
    close(ep);
    BENCH_CHECK(gather_cq_destroy(cq));
}

int main(int argc, char **argv)
{
    bench_opts o = bench_parse(argc, argv);
    long n = bench_arg(argc, argv, "n", 1000000);
    long samples = bench_arg(argc, argv, "samples", 2000);
    uint64_t spin_ns = (uint64_t)bench_arg(argc, argv, "spin_us", 20) * 1000u;
    if (n < 1 || samples < 1)
        bench_fail("n and samples must be positive");
    gather_pool_options po;
    memset(&po, 0, sizeof po);
    po.threads = (size_t)o.threads;
    po.name = "bench";
    gather_pool *pool;
    BENCH_CHECK(gather_pool_create(&pool, &po));

    for (int w = 0; w < o.warmup; w++)
        drain(pool, o.threads, n / 10 + 1, 0, 0);
    for (int r = 0; r < o.reps; r++) {
        drain(pool, o.threads, n, 1, 0);
        drain(pool, o.threads, n, 1, 1);
        drain(pool, o.threads, n, 1, 2);
    }
    fd_latency(pool, o.threads, samples, spin_ns);

    BENCH_CHECK(gather_pool_destroy(pool));
    return 0;
}
