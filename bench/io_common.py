# SPDX-License-Identifier: MIT
"""What the Python peers of the io cases share (standard library only).

Arguments are key=value words like those of the C programs: n= (tasks,
default 64), ms= (delay of each task, default 100), reps= (timed runs,
default 1), warmup= (untimed runs first, default 1); threads= is accepted and
ignored (the peers run on their default pool). Output: one line per
measurement, the format of bench/common.h's bench_report():

  case=io64 runtime=asyncio threads=1 value=0.1012 unit=s n=64 ms=100

A wrong result prints the reason on stderr and exits with status 1.
"""

import resource
import sys

IO_MS = 100  # the delay of io64 / io1000; another one is named io<n>_<ms>ms


def fail(msg):
    print(f"bench: FAILED: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def parse_args(argv):
    opts = {"n": 64, "ms": IO_MS, "reps": 1, "warmup": 1, "threads": 0}
    for word in argv:
        key, sep, value = word.partition("=")
        if not sep or key not in opts:
            print(f"bad argument {word}", file=sys.stderr)
            sys.exit(2)
        try:
            opts[key] = int(value)
        except ValueError:
            print(f"bad argument {word}", file=sys.stderr)
            sys.exit(2)
    if opts["n"] < 1 or not 0 <= opts["ms"] <= 60000 or opts["reps"] < 1 or opts["warmup"] < 0:
        fail("io: n and reps must be positive, ms in 0..60000, warmup >= 0")
    return opts


def case_name(opts):
    n, ms = opts["n"], opts["ms"]
    return f"io{n}" if ms == IO_MS else f"io{n}_{ms}ms"


def verify(results, n):
    """Task i returns i + 1: every task ran exactly once."""
    if sum(results) != n * (n + 1) // 2 or len(results) != n:
        fail("io: not every task ran exactly once")


def peak_rss_mib():
    """Peak RSS of the process (VmHWM, else ru_maxrss), as bench_peak_rss()."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def report(case, runtime, threads, value, unit, **details):
    extra = "".join(f" {k}={v}" for k, v in details.items())
    print(f"case={case} runtime={runtime} threads={threads} value={value:.6g} unit={unit}{extra}",
          flush=True)
