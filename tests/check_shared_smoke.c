/* SPDX-License-Identifier: MIT */
/*
 * check_shared_smoke.c - a plain program linked against the shared library,
 * the way applications use it (no test framework): creates a pool, maps
 * 1000 tasks over it, checks every result, prints the version.
 */
#include <gather.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { N = 1000 };

static int square(void *arg, void **result)
{
    intptr_t i = (intptr_t)arg;
    *result = (void *)(i * i);
    return 0;
}

int main(void)
{
    const char *version = gather_version();
    char expect[32];
    snprintf(expect, sizeof expect, "%d.%d.%d", GATHER_VERSION_MAJOR, GATHER_VERSION_MINOR,
             GATHER_VERSION_PATCH);
    printf("gather %s\n", version ? version : "(null)");
    if (!version || strcmp(version, expect) != 0) {
        fprintf(stderr, "version \"%s\" does not match the header's %s\n",
                version ? version : "(null)", expect);
        return 1;
    }

    gather_pool_options opts = {0};
    opts.threads = 4;
    gather_pool *pool = NULL;
    int rc = gather_pool_create(&pool, &opts);
    if (rc != 0) {
        fprintf(stderr, "gather_pool_create: %d\n", rc);
        return 1;
    }

    static void *args[N];
    static gather_result results[N];
    for (intptr_t i = 0; i < N; i++)
        args[i] = (void *)i;
    rc = gather_map(pool, square, args, N, results, 0);
    int failures = rc != 0;
    if (rc != 0)
        fprintf(stderr, "gather_map: %d\n", rc);
    for (intptr_t i = 0; i < N && rc == 0; i++) {
        if (results[i].error != 0 || results[i].value != (void *)(i * i)) {
            fprintf(stderr, "results[%ld] = {%d, %p}\n", (long)i, results[i].error,
                    results[i].value);
            failures++;
        }
    }
    rc = gather_pool_destroy(pool);
    if (rc != 0) {
        fprintf(stderr, "gather_pool_destroy: %d\n", rc);
        failures++;
    }
    if (failures == 0)
        printf("%d tasks: all results in order\n", N);
    return failures == 0 ? 0 : 1;
}
