/* SPDX-License-Identifier: MIT */
// Consumer test (C++): find_package(gather) + gather::gather. Runs tasks on a
// pool of its own and on the default pool, gathers them, checks the results.
#include <gather.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>

namespace {

int square(void *arg, void **result)
{
    std::intptr_t x = reinterpret_cast<std::intptr_t>(arg);
    *result = reinterpret_cast<void *>(x * x);
    return 0;
}

int fail_on_three(void *arg, void **result)
{
    if (reinterpret_cast<std::intptr_t>(arg) == 3)
        return EDOM; // a failure: any non-zero code
    return square(arg, result);
}

int check(bool ok, const char *what)
{
    if (!ok)
        std::fprintf(stderr, "consumer: FAILED: %s\n", what);
    return ok ? 0 : 1;
}

} // namespace

int main()
{
    int bad = 0;
    char expect[32];
    std::snprintf(expect, sizeof expect, "%d.%d.%d", GATHER_VERSION_MAJOR,
                  GATHER_VERSION_MINOR, GATHER_VERSION_PATCH);
    bad += check(std::strcmp(gather_version(), expect) == 0,
                 "gather_version() matches gather.h");

    gather_pool_options opts = {};
    opts.threads = 2;
    gather_pool *pool = nullptr;
    if (gather_pool_create(&pool, &opts) != 0) {
        std::fprintf(stderr, "consumer: gather_pool_create failed\n");
        return 1;
    }

    // Five tasks, one failing; failures captured in the results.
    enum { N = 5 };
    gather_future *futs[N];
    for (std::intptr_t i = 0; i < N; i++) {
        if (gather_submit(pool, fail_on_three, reinterpret_cast<void *>(i),
                          &futs[i]) != 0) {
            std::fprintf(stderr, "consumer: gather_submit failed\n");
            return 1;
        }
    }
    gather_result r[N];
    int rc = gather_futures(futs, N, r, GATHER_RETURN_ERRORS);
    bad += check(rc == 0, "gather_futures(RETURN_ERRORS) returns 0");
    for (std::intptr_t i = 0; i < N; i++) {
        if (i == 3)
            bad += check(r[i].error == EDOM, "failed entry reports its code");
        else
            bad += check(r[i].error == 0 &&
                             reinterpret_cast<std::intptr_t>(r[i].value) == i * i,
                         "results in input order");
    }
    // Without the flag the failure is the return value.
    bad += check(gather_futures(futs, N, nullptr, 0) == EDOM,
                 "gather_futures(0) returns the failure");
    for (gather_future *f : futs)
        gather_future_release(f);
    bad += check(gather_pool_destroy(pool) == 0, "gather_pool_destroy");

    // gather_map on the default pool.
    void *args[] = {reinterpret_cast<void *>(7), reinterpret_cast<void *>(8)};
    gather_result m[2];
    rc = gather_map(nullptr, square, args, 2, m, 0);
    bad += check(rc == 0 && reinterpret_cast<std::intptr_t>(m[0].value) == 49 &&
                     reinterpret_cast<std::intptr_t>(m[1].value) == 64,
                 "gather_map on the default pool");

    std::printf("consumer (C++): gather %s, %s\n", gather_version(),
                bad ? "FAILED" : "ok");
    return bad ? 1 : 0;
}
