/* SPDX-License-Identifier: MIT */
/* Consumer test (C): built with a plain compiler line and pkg-config,
 *   cc main.c $(pkg-config --cflags --libs gather)
 * and statically with pkg-config --static and libgather.a. A task that forks
 * subtasks and gathers them (nested waiting), gather_all as a future,
 * gather_wait_any and a done callback. */
#include <gather.h>

#include <stdint.h>
#include <stdio.h>

static int leaf(void *arg, void **result)
{
    *result = (void *)((intptr_t)arg * 10);
    return 0;
}

/* Sums leaf(1..n) computed by subtasks; gathers inside a task. */
static int fork_join(void *arg, void **result)
{
    enum { MAX = 8 };
    intptr_t n = (intptr_t)arg, i, sum = 0;
    void *args[MAX];
    gather_result r[MAX];
    int rc;

    for (i = 0; i < n; i++)
        args[i] = (void *)(i + 1);
    rc = gather_map(gather_current_pool(), leaf, args, (size_t)n, r, 0);
    if (rc != 0)
        return rc;
    for (i = 0; i < n; i++)
        sum += (intptr_t)r[i].value;
    *result = (void *)sum;
    return 0;
}

static void count_done(gather_future *f, void *user_data)
{
    (void)f;
    ++*(int *)user_data;
}

int main(void)
{
    gather_pool_options opts = {0};
    gather_pool *pool = NULL;
    gather_future *futs[2], *agg = NULL;
    gather_result *rs;
    size_t index = 99;
    int callbacks = 0, rc, bad = 0;

    opts.threads = 1; /* nested gathers must not deadlock even on one thread */
    if (gather_pool_create(&pool, &opts) != 0)
        return 1;
    if (gather_submit(pool, fork_join, (void *)4, &futs[0]) != 0 ||
        gather_submit(pool, fork_join, (void *)8, &futs[1]) != 0 ||
        gather_all(futs, 2, 0, &agg) != 0)
        return 1;

    if (gather_wait_any(futs, 2, GATHER_FOREVER, &index) != 0 || index > 1)
        bad++;
    rc = gather_future_wait(agg, NULL);
    rs = gather_future_value(agg); /* owned by the aggregate */
    /* Added to a done future, a callback runs at once on this thread. */
    if (gather_future_on_done(agg, count_done, &callbacks) != 0)
        bad++;
    if (rc != 0 || callbacks != 1 || rs == NULL ||
        (intptr_t)rs[0].value != 100 || (intptr_t)rs[1].value != 360)
        bad++;

    gather_future_release(agg);
    gather_future_release(futs[0]);
    gather_future_release(futs[1]);
    if (gather_pool_destroy(pool) != 0)
        bad++;
    printf("consumer (pkg-config): gather %s, %s\n", gather_version(),
           bad ? "FAILED" : "ok");
    return bad ? 1 : 0;
}
