/* SPDX-License-Identifier: MIT */
/* What the ways of telling a blocked thread from a running one cost, read
 * from another thread as gather's monitor does (docs/design.md, "Blocking
 * work"): the target thread's CPU clock (pthread_getcpuclockid +
 * clock_gettime), its kernel state (/proc/self/task/TID/stat, open + read +
 * close), its schedstat (/proc/self/task/TID/schedstat), and for scale
 * CLOCK_MONOTONIC. The target sleeps in nanosleep throughout. Prints
 * ns per read (median of 5 rounds of `n` reads). Not a gather benchmark:
 * bench/run does not run it. Arguments: n= (default 20000). */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

static _Atomic int target_tid;
static _Atomic int stop;

static void *target(void *arg)
{
    (void)arg;
    atomic_store(&target_tid, (int)syscall(SYS_gettid));
    while (!atomic_load(&stop))
        bench_sleep_ns(1000000u);
    return NULL;
}

static int read_file(const char *path)
{
    char buf[512];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        bench_fail("detect_cost: cannot open /proc");
    ssize_t len = read(fd, buf, sizeof buf);
    close(fd);
    return (int)len;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    long n = bench_arg(argc, argv, "n", 20000);
    pthread_t t;
    if (pthread_create(&t, NULL, target, NULL) != 0)
        bench_fail("detect_cost: pthread_create");
    while (atomic_load(&target_tid) == 0)
        bench_sleep_ns(100000u);
    clockid_t clk;
    if (pthread_getcpuclockid(t, &clk) != 0)
        bench_fail("detect_cost: pthread_getcpuclockid");
    char stat[64], sched[64];
    snprintf(stat, sizeof stat, "/proc/self/task/%d/stat", atomic_load(&target_tid));
    snprintf(sched, sizeof sched, "/proc/self/task/%d/schedstat", atomic_load(&target_tid));
    const char *names[] = {"thread_cpu_clock", "proc_stat_state", "proc_schedstat", "clock_monotonic"};
    for (int k = 0; k < 4; k++) {
        double r[5];
        for (int round = 0; round < 5; round++) {
            struct timespec ts;
            uint64_t t0 = bench_now_ns();
            for (long i = 0; i < n; i++) {
                if (k == 0)
                    clock_gettime(clk, &ts);
                else if (k == 1)
                    read_file(stat);
                else if (k == 2)
                    read_file(sched);
                else
                    clock_gettime(CLOCK_MONOTONIC, &ts);
            }
            r[round] = (double)(bench_now_ns() - t0) / (double)n;
        }
        qsort(r, 5, sizeof r[0], cmp_d);
        bench_report(names[k], "detect", 1, r[2], "ns", "n=%ld", n);
    }
    atomic_store(&stop, 1);
    pthread_join(t, NULL);
    return 0;
}
