/* SPDX-License-Identifier: MIT */
/* Consumer test (C, the fallback when no C++ compiler is installed):
 * find_package(gather) + gather::gather. The same program as main.cpp. */
#include <gather.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int square(void *arg, void **result)
{
    intptr_t x = (intptr_t)arg;
    *result = (void *)(x * x);
    return 0;
}

static int fail_on_three(void *arg, void **result)
{
    if ((intptr_t)arg == 3)
        return EDOM; /* a failure: any non-zero code */
    return square(arg, result);
}

static int check(int ok, const char *what)
{
    if (!ok)
        fprintf(stderr, "consumer: FAILED: %s\n", what);
    return ok ? 0 : 1;
}

int main(void)
{
    enum { N = 5 };
    int bad = 0, rc;
    char expect[32];
    gather_pool_options opts = {0};
    gather_pool *pool = NULL;
    gather_future *futs[N];
    gather_result r[N], m[2];
    void *args[2] = {(void *)7, (void *)8};
    intptr_t i;

    snprintf(expect, sizeof expect, "%d.%d.%d", GATHER_VERSION_MAJOR,
             GATHER_VERSION_MINOR, GATHER_VERSION_PATCH);
    bad += check(strcmp(gather_version(), expect) == 0,
                 "gather_version() matches gather.h");

    opts.threads = 2;
    if (gather_pool_create(&pool, &opts) != 0) {
        fprintf(stderr, "consumer: gather_pool_create failed\n");
        return 1;
    }

    /* Five tasks, one failing; failures captured in the results. */
    for (i = 0; i < N; i++) {
        if (gather_submit(pool, fail_on_three, (void *)i, &futs[i]) != 0) {
            fprintf(stderr, "consumer: gather_submit failed\n");
            return 1;
        }
    }
    rc = gather_futures(futs, N, r, GATHER_RETURN_ERRORS);
    bad += check(rc == 0, "gather_futures(RETURN_ERRORS) returns 0");
    for (i = 0; i < N; i++) {
        if (i == 3)
            bad += check(r[i].error == EDOM, "failed entry reports its code");
        else
            bad += check(r[i].error == 0 && (intptr_t)r[i].value == i * i,
                         "results in input order");
    }
    /* Without the flag the failure is the return value. */
    bad += check(gather_futures(futs, N, NULL, 0) == EDOM,
                 "gather_futures(0) returns the failure");
    for (i = 0; i < N; i++)
        gather_future_release(futs[i]);
    bad += check(gather_pool_destroy(pool) == 0, "gather_pool_destroy");

    /* gather_map on the default pool. */
    rc = gather_map(NULL, square, args, 2, m, 0);
    bad += check(rc == 0 && (intptr_t)m[0].value == 49 &&
                     (intptr_t)m[1].value == 64,
                 "gather_map on the default pool");

    printf("consumer (C): gather %s, %s\n", gather_version(),
           bad ? "FAILED" : "ok");
    return bad ? 1 : 0;
}
