/* SPDX-License-Identifier: MIT */
/* External map on GLib: a GThreadPool of `threads` exclusive threads; main
 * pushes n small jobs (about 100 ns each) and waits on a GCond for the last
 * one (a countdown). */
#include <glib.h>

#include "common.h"

typedef struct ctx {
    uint64_t *out;
    gint remaining;
    GMutex lock;
    GCond cond;
    gboolean done;
} ctx;

static void job(gpointer data, gpointer user_data)
{
    ctx *c = user_data;
    size_t i = GPOINTER_TO_SIZE(data) - 1; /* pushed data must not be NULL */
    c->out[i] = bench_work(i, WORK_ROUNDS);
    if (g_atomic_int_dec_and_test(&c->remaining)) {
        g_mutex_lock(&c->lock);
        c->done = TRUE;
        g_cond_signal(&c->cond);
        g_mutex_unlock(&c->lock);
    }
}

int main(int argc, char **argv)
{
    bench_opts o = bench_parse(argc, argv);
    long n = bench_arg(argc, argv, "n", 1000000);
    if (n < 1 || n > G_MAXINT)
        bench_fail("n must be 1..G_MAXINT");
    size_t un = (size_t)n;
    ctx c;
    memset(&c, 0, sizeof c);
    c.out = bench_xmalloc(un * sizeof *c.out);
    bench_touch(c.out, un * sizeof *c.out);
    g_mutex_init(&c.lock);
    g_cond_init(&c.cond);
    uint64_t expect = map_expected(un);
    GError *err = NULL;
    GThreadPool *pool = g_thread_pool_new(job, &c, o.threads, TRUE, &err);
    if (!pool)
        bench_fail("g_thread_pool_new: %s", err ? err->message : "?");

    for (int r = 0; r < o.warmup + o.reps; r++) {
        g_atomic_int_set(&c.remaining, (gint)n);
        c.done = FALSE;
        uint64_t t0 = bench_now_ns();
        for (size_t i = 0; i < un; i++)
            if (!g_thread_pool_push(pool, GSIZE_TO_POINTER(i + 1), &err))
                bench_fail("g_thread_pool_push: %s", err ? err->message : "?");
        g_mutex_lock(&c.lock);
        while (!c.done)
            g_cond_wait(&c.cond, &c.lock);
        g_mutex_unlock(&c.lock);
        uint64_t t1 = bench_now_ns();
        map_verify(c.out, un, expect);
        memset(c.out, 0, un * sizeof *c.out);
        if (r >= o.warmup)
            map_report("glib", o.threads, un, t0, t1);
    }
    g_thread_pool_free(pool, FALSE, TRUE);
    g_mutex_clear(&c.lock);
    g_cond_clear(&c.cond);
    free(c.out);
    return 0;
}
