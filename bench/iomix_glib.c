/* SPDX-License-Identifier: MIT */
/* Blocking IO mix on GLib: a shared (non-exclusive) GThreadPool limited to
 * one thread per CPU; main pushes n tasks that sleep `ms` (default 10 ms)
 * interleaved with n CPU tasks of about 1 ms, and waits on a GCond for the
 * last one. */
#include <glib.h>

#include "common.h"

typedef struct ctx {
    volatile uint64_t *sink;
    uint64_t sleep_ns;
    gint remaining;
    guint64 sum;
    GMutex lock;
    GCond cond;
    gboolean done;
} ctx;

static void task(gpointer data, gpointer user_data)
{
    ctx *c = user_data;
    uint64_t v = iomix_task(GPOINTER_TO_SIZE(data) - 1, c->sleep_ns, c->sink);
    g_mutex_lock(&c->lock);
    c->sum += v;
    if (--c->remaining == 0) {
        c->done = TRUE;
        g_cond_signal(&c->cond);
    }
    g_mutex_unlock(&c->lock);
}

int main(int argc, char **argv)
{
    bench_opts o = bench_parse(argc, argv);
    iomix_opts m = iomix_parse(argc, argv);
    if (m.n > G_MAXINT / 2)
        bench_fail("n must be 1..G_MAXINT/2");
    size_t tasks = m.tasks;
    ctx c;
    memset(&c, 0, sizeof c);
    c.sink = bench_xmalloc(tasks * sizeof *c.sink);
    c.sleep_ns = m.sleep_ns;
    g_mutex_init(&c.lock);
    g_cond_init(&c.cond);
    int threads = (int)g_get_num_processors();
    GError *err = NULL;
    GThreadPool *pool = g_thread_pool_new(task, &c, threads, FALSE, &err);
    if (!pool)
        bench_fail("g_thread_pool_new: %s", err ? err->message : "?");

    for (int r = 0; r < o.warmup + o.reps; r++) {
        c.remaining = (gint)tasks;
        c.sum = 0;
        c.done = FALSE;
        uint64_t t0 = bench_now_ns();
        for (size_t i = 0; i < tasks; i++)
            if (!g_thread_pool_push(pool, GSIZE_TO_POINTER(i + 1), &err))
                bench_fail("g_thread_pool_push: %s", err ? err->message : "?");
        g_mutex_lock(&c.lock);
        while (!c.done)
            g_cond_wait(&c.cond, &c.lock);
        uint64_t sum = c.sum;
        g_mutex_unlock(&c.lock);
        uint64_t t1 = bench_now_ns();
        iomix_verify(sum, tasks);
        if (r >= o.warmup)
            iomix_report("glib", threads, &m, t0, t1);
    }
    g_thread_pool_free(pool, FALSE, TRUE);
    g_mutex_clear(&c.lock);
    g_cond_clear(&c.cond);
    free((void *)c.sink);
    return 0;
}
