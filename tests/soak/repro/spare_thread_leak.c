/*
 * spare_thread_leak.c - spares of the default pool that exit are never
 * joined: ThreadSanitizer reports a "thread leak" at process exit (exit
 * status 66 with halt_on_error=1).
 *
 *   cc -fsanitize=thread -g -D_GNU_SOURCE -I include \
 *      tests/soak/repro/spare_thread_leak.c build-tsan/libgather.a -lpthread
 *   TSAN_OPTIONS=halt_on_error=1 ./a.out
 *
 * Tasks on the default pool (elastic) block inside gather_blocking_begin/end
 * while more are queued, so spares start; after they idle 1 s they exit
 * (worker.c marks their slot ZOMBIE). Such a slot is joined only when a
 * later start reuses it (pool.c take_slot) or at gather_pool_destroy(),
 * which the default pool never sees. Pass a pool argument ("private") to
 * run the same on a pool that is destroyed: no report.
 */
#include <gather.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

static int blocker(void *arg, void **result)
{
    (void)arg;
    (void)result;
    gather_blocking_begin();
    nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
    gather_blocking_end();
    return 0;
}

int main(int argc, char **argv)
{
    gather_pool *pool = NULL;
    if (argc > 1 && strcmp(argv[1], "private") == 0) {
        gather_pool_options o = {0};
        o.threads = 1;
        o.max_threads = 16;
        if (gather_pool_create(&pool, &o) != 0)
            return 1;
    }
    enum { N = 16 };
    gather_future *fs[N];
    for (int i = 0; i < N; i++)
        if (gather_submit(pool, blocker, NULL, &fs[i]) != 0)
            return 1;
    if (gather_futures(fs, N, NULL, GATHER_RETURN_ERRORS) != 0)
        return 1;
    for (int i = 0; i < N; i++)
        gather_future_release(fs[i]);
    gather_pool_stats s;
    gather_pool_stats_get(pool, &s);
    printf("spares started %llu, threads %llu\n",
           (unsigned long long)s.spares_started, (unsigned long long)s.threads);
    /* The spares idle 1 s, then exit (unjoined on the default pool). */
    nanosleep(&(struct timespec){2, 0}, NULL);
    gather_pool_stats_get(pool, &s);
    printf("after 2 s: threads %llu\n", (unsigned long long)s.threads);
    if (pool != NULL)
        gather_pool_destroy(pool);
    return 0;
}
