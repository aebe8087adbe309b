/* SPDX-License-Identifier: MIT */
/* Idle cost of GLib: an exclusive GThreadPool of `threads` threads runs one
 * task, then the process's CPU time is measured while nothing runs. */
#include <glib.h>

#include "common.h"

static void nop(gpointer data, gpointer user_data)
{
    (void)user_data;
    g_atomic_int_set((gint *)data, 1);
}

int main(int argc, char **argv)
{
    bench_opts o = bench_parse(argc, argv);
    long ms = bench_arg(argc, argv, "ms", 1000);
    GError *err = NULL;
    GThreadPool *pool = g_thread_pool_new(nop, NULL, o.threads, TRUE, &err);
    if (!pool)
        bench_fail("g_thread_pool_new: %s", err ? err->message : "?");
    gint ran = 0;
    if (!g_thread_pool_push(pool, &ran, &err))
        bench_fail("g_thread_pool_push: %s", err ? err->message : "?");
    while (!g_atomic_int_get(&ran))
        bench_sleep_ns(100000);
    idle_measure(ms, "glib", o.threads);
    g_thread_pool_free(pool, FALSE, TRUE);
    return 0;
}
