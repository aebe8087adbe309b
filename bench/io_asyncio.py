# SPDX-License-Identifier: MIT
"""Blocking IO peer, Python asyncio: asyncio.gather() of n coroutines that
each await asyncio.sleep(ms / 1000) (an API call awaited, not blocking a
thread), on one event loop. Reports the wall time of the gather in seconds,
then the process's peak RSS (io<n>_peak_rss). See io_common.py for the
arguments; bench/run runs it as bench_io_asyncio."""

import asyncio
import sys
import time

import io_common


async def call(i, delay):
    await asyncio.sleep(delay)
    return i + 1


async def main(opts):
    n, delay = opts["n"], opts["ms"] / 1000.0
    case = io_common.case_name(opts)
    for r in range(opts["warmup"] + opts["reps"]):
        t0 = time.monotonic()
        results = await asyncio.gather(*(call(i, delay) for i in range(n)))
        t1 = time.monotonic()
        io_common.verify(results, n)
        if r >= opts["warmup"]:
            io_common.report(case, "asyncio", 1, t1 - t0, "s", n=n, ms=opts["ms"],
                             floor_s=f"{delay:.3f}")
    io_common.report(f"{case}_peak_rss", "asyncio", 1, io_common.peak_rss_mib(), "MiB")


if __name__ == "__main__":
    asyncio.run(main(io_common.parse_args(sys.argv[1:])))
