/* SPDX-License-Identifier: MIT */
/* Latency on oneTBB, from main (outside the arena): task_arena::enqueue()
 * one task on an arena of `threads` worker slots (none reserved for main),
 * then block on a std::condition_variable the task signals. Same samples as
 * latency_gather.c. */
#include <tbb/global_control.h>
#include <tbb/task_arena.h>

#include <condition_variable>
#include <mutex>

#include "common.h"

struct waiter {
    std::mutex m;
    std::condition_variable cv;
    bool done = false;
};

static void run(tbb::task_arena &arena, lat_series *ls, size_t n,
                uint64_t pause_ns, uint64_t spin_ns)
{
    waiter w;
    ls->n = 0;
    for (size_t k = 0; k < n; k++) {
        if (pause_ns)
            bench_sleep_ns(pause_ns);
        lat_sample s = {0, 0, spin_ns};
        w.done = false;
        uint64_t t0 = bench_now_ns();
        arena.enqueue([&s, &w] {
            lat_body(&s);
            std::lock_guard<std::mutex> lk(w.m);
            w.done = true;
            w.cv.notify_one(); /* under the lock: w outlives the call */
        });
        {
            std::unique_lock<std::mutex> lk(w.m);
            w.cv.wait(lk, [&w] { return w.done; });
        }
        uint64_t t1 = bench_now_ns();
        lat_record(ls, &s, t0, t1);
    }
}

int main(int argc, char **argv)
{
    bench_opts o = bench_parse(argc, argv);
    lat_opts lo = lat_parse(argc, argv);
    /* TBB's default limit is one worker fewer than CPUs (main is expected
     * to take a slot); here every slot is a worker's. */
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism,
                              (size_t)o.threads + 1);
    tbb::task_arena arena(o.threads, 0);
    lat_series ls = lat_alloc(lo.warm > lo.parked ? lo.warm : lo.parked);

    run(arena, &ls, lo.warm / 10 + 1, 0, lo.spin_ns); /* warm-up */
    run(arena, &ls, lo.warm, 0, lo.spin_ns);
    lat_print(&ls, "warm", "tbb", o.threads);
    run(arena, &ls, lo.parked, lo.park_ns, lo.spin_ns);
    lat_print(&ls, "parked", "tbb", o.threads);

    lat_free(&ls);
    return 0;
}
