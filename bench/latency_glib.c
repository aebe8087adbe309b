/* SPDX-License-Identifier: MIT */
/* Latency on GLib, from main: g_thread_pool_push() one task on an exclusive
 * GThreadPool of `threads` threads, then block on a GCond the task signals.
 * Same samples as latency_gather.c. */
#include <glib.h>

#include "common.h"

typedef struct job {
    lat_sample s;
    GMutex lock;
    GCond cond;
    gboolean done;
} job;

static void run_job(gpointer data, gpointer user_data)
{
    job *j = data;
    (void)user_data;
    lat_body(&j->s);
    g_mutex_lock(&j->lock);
    j->done = TRUE;
    g_cond_signal(&j->cond);
    g_mutex_unlock(&j->lock);
}

static void run(GThreadPool *pool, lat_series *ls, size_t n, uint64_t pause_ns,
                uint64_t spin_ns)
{
    job j;
    g_mutex_init(&j.lock);
    g_cond_init(&j.cond);
    ls->n = 0;
    for (size_t k = 0; k < n; k++) {
        if (pause_ns)
            bench_sleep_ns(pause_ns);
        j.s.started = j.s.ended = 0;
        j.s.spin_ns = spin_ns;
        j.done = FALSE;
        GError *err = NULL;
        uint64_t t0 = bench_now_ns();
        if (!g_thread_pool_push(pool, &j, &err))
            bench_fail("g_thread_pool_push: %s", err ? err->message : "?");
        g_mutex_lock(&j.lock);
        while (!j.done)
            g_cond_wait(&j.cond, &j.lock);
        g_mutex_unlock(&j.lock);
        uint64_t t1 = bench_now_ns();
        lat_record(ls, &j.s, t0, t1);
    }
    g_mutex_clear(&j.lock);
    g_cond_clear(&j.cond);
}

int main(int argc, char **argv)
{
    bench_opts o = bench_parse(argc, argv);
    lat_opts lo = lat_parse(argc, argv);
    GError *err = NULL;
    GThreadPool *pool = g_thread_pool_new(run_job, NULL, o.threads, TRUE, &err);
    if (!pool)
        bench_fail("g_thread_pool_new: %s", err ? err->message : "?");
    lat_series ls = lat_alloc(lo.warm > lo.parked ? lo.warm : lo.parked);

    run(pool, &ls, lo.warm / 10 + 1, 0, lo.spin_ns); /* warm-up */
    run(pool, &ls, lo.warm, 0, lo.spin_ns);
    lat_print(&ls, "warm", "glib", o.threads);
    run(pool, &ls, lo.parked, lo.park_ns, lo.spin_ns);
    lat_print(&ls, "parked", "glib", o.threads);

    lat_free(&ls);
    g_thread_pool_free(pool, FALSE, TRUE);
    return 0;
}
