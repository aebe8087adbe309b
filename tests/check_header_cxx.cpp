/* SPDX-License-Identifier: MIT */
// The public header compiles as C++ and its functions link from C++.
#include <gather.h>
#include <cstdio>

static int twice(void *arg, void **result)
{
    *result = static_cast<char *>(arg) + 1;
    return 0;
}

int main()
{
    char buf[2] = {0, 0};
    gather_pool_options opts = {};
    opts.threads = 2;
    gather_pool *pool = nullptr;
    if (gather_pool_create(&pool, &opts) != 0)
        return 1;
    gather_future *f = nullptr;
    if (gather_submit(pool, twice, buf, &f) != 0)
        return 1;
    void *value = nullptr;
    int rc = gather_future_wait(f, &value);
    gather_future_release(f);
    gather_pool_destroy(pool);
    std::printf("gather %s from C++: rc=%d\n", gather_version(), rc);
    return rc == 0 && value == buf + 1 ? 0 : 1;
}
