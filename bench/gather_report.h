/* SPDX-License-Identifier: MIT */
/*
 * bench/gather_report.h - the extra lines that the gather programs on the
 * default pool print after their timed runs: the process's peak RSS and the
 * default pool's thread figures from gather_pool_stats_get(NULL, ...), each
 * as a measurement line of its own so that bench/run's table shows them:
 *
 *   case=<name>_peak_rss       unit=MiB      (VmHWM, else ru_maxrss)
 *   case=<name>_threads_peak   unit=threads  (stats.threads_peak)
 *   case=<name>_spares_started unit=threads  (stats.spares_started)
 *
 * The stats are the pool's whole life, warm-up runs included. Where the
 * library does not fill threads / threads_peak / spares_started yet, they
 * read 0 and are printed as 0.
 */
#ifndef BENCH_GATHER_REPORT_H
#define BENCH_GATHER_REPORT_H

#include <gather.h>

#include "common.h"

static inline void bench_gather_pool_report(const char *name, int threads)
{
    gather_pool_stats st;
    BENCH_CHECK(gather_pool_stats_get(NULL, &st));
    char line[96];
    snprintf(line, sizeof line, "%s_peak_rss", name);
    uint64_t rss = bench_peak_rss();
    bench_report(line, "gather", threads, (double)rss / 1048576.0, "MiB",
                 "bytes=%" PRIu64, rss);
    snprintf(line, sizeof line, "%s_threads_peak", name);
    bench_report(line, "gather", threads, (double)st.threads_peak, "threads",
                 "threads_now=%" PRIu64, st.threads);
    snprintf(line, sizeof line, "%s_spares_started", name);
    bench_report(line, "gather", threads, (double)st.spares_started, "threads",
                 "submitted=%" PRIu64 " completed=%" PRIu64, st.submitted,
                 st.completed);
}

#endif /* BENCH_GATHER_REPORT_H */
