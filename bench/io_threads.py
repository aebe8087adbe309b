# SPDX-License-Identifier: MIT
"""Blocking IO peer, Python threads: concurrent.futures.ThreadPoolExecutor()
with its default max_workers (min(32, CPUs + 4)) mapping n calls of
time.sleep(ms / 1000) (a blocking API call). The executor is created before
the runs and reused, as gather's default pool is. Reports the wall time of
the map in seconds (threads= the worker threads it started), then the
process's peak RSS (io<n>_peak_rss) and those worker threads
(io<n>_threads_peak). See io_common.py for the arguments; bench/run runs it
as bench_io_py_threads."""

import concurrent.futures
import sys
import threading
import time

import io_common


def main(opts):
    n, delay = opts["n"], opts["ms"] / 1000.0
    case = io_common.case_name(opts)

    def call(i):
        time.sleep(delay)
        return i + 1

    base = threading.active_count()
    timed = []
    with concurrent.futures.ThreadPoolExecutor() as ex:
        for r in range(opts["warmup"] + opts["reps"]):
            t0 = time.monotonic()
            results = list(ex.map(call, range(n)))
            t1 = time.monotonic()
            io_common.verify(results, n)
            if r >= opts["warmup"]:
                timed.append(t1 - t0)
        # Workers never exit before shutdown: those alive now are all it
        # started, the peak.
        workers = threading.active_count() - base
    for s in timed:
        io_common.report(case, "py_threads", workers, s, "s", n=n, ms=opts["ms"],
                         floor_s=f"{delay:.3f}")
    io_common.report(f"{case}_peak_rss", "py_threads", workers, io_common.peak_rss_mib(), "MiB")
    io_common.report(f"{case}_threads_peak", "py_threads", workers, workers, "threads")


if __name__ == "__main__":
    main(io_common.parse_args(sys.argv[1:]))
