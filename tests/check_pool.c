/* SPDX-License-Identifier: MIT */
/*
 * check_pool.c - pools: creation options, thread count, thread names, stack
 * size, the default pool and GATHER_THREADS, gather_current_pool(), stats.
 *
 * The default pool is created once per process, so the GATHER_THREADS tests
 * run this same binary again as a child process (GATHER_TEST_CHILD set in its
 * environment), which uses the default pool and reports through its exit
 * status.
 */
#include "testutil.h"

#include <limits.h>
#include <sched.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* An atomic read that reads well in assertion messages. */
static inline int load_int_(atomic_int *p)
{
    return atomic_load(p);
}
static inline long load_long_(atomic_long *p)
{
    return atomic_load(p);
}
#define LOAD(p) _Generic((p), atomic_int *: load_int_, atomic_long *: load_long_)(p)

static size_t affinity_cpus(void)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return 0;
    return (size_t)CPU_COUNT(&set);
}

/* ---- child process mode (default pool) ------------------------------------ */

/* Runs in a fresh process: the default pool does not exist yet. Exit status
 * 0 when gather_pool_threads(NULL) == GATHER_TEST_EXPECT and that many tasks
 * really run at once on the default pool. */
static int child_main(const char *mode)
{
    if (strcmp(mode, "setenv3") == 0) {
        /* GATHER_THREADS is read when the default pool is first used, not
         * when the library is loaded. */
        setenv("GATHER_THREADS", "3", 1);
    } else if (strcmp(mode, "default_threads") != 0) {
        fprintf(stderr, "child: unknown mode %s\n", mode);
        return 10;
    }
    const char *e = getenv("GATHER_TEST_EXPECT");
    if (!e)
        return 11;
    size_t expect = (size_t)strtoul(e, NULL, 10);
    size_t n = gather_pool_threads(NULL);
    if (n != expect) {
        fprintf(stderr, "child: GATHER_THREADS=%s: default pool has %zu threads, expected %zu\n",
                getenv("GATHER_THREADS") ? getenv("GATHER_THREADS") : "(unset)", n, expect);
        return 1;
    }
    /* That many tasks run at once on the default pool. */
    tu_gate gate;
    tu_count started;
    tu_gate_init(&gate);
    tu_count_init(&started);
    tu_gated *g = calloc(n, sizeof *g);
    gather_future **f = calloc(n, sizeof *f);
    if (!g || !f)
        return 12;
    int status = 0;
    for (size_t i = 0; i < n; i++) {
        g[i].gate = &gate;
        g[i].started = &started;
        g[i].value = &g[i];
        if (gather_submit(NULL, tu_task_gated, &g[i], &f[i]) != 0)
            return 13;
    }
    if (tu_count_wait(&started, (long)n) != 0) {
        fprintf(stderr, "child: only %ld of %zu tasks started at once\n", tu_count_get(&started), n);
        status = 2;
    }
    tu_gate_open(&gate);
    for (size_t i = 0; i < n; i++) {
        void *v = NULL;
        if (gather_future_wait(f[i], &v) != 0 || v != &g[i])
            status = 3;
        gather_future_release(f[i]);
    }
    free(g);
    free(f);
    return status;
}

/* Runs this binary with GATHER_TEST_CHILD=mode, GATHER_THREADS=threads (NULL:
 * unset) and GATHER_TEST_EXPECT=expect; returns its exit status (or -1). */
static int run_child(const char *mode, const char *threads, size_t expect)
{
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    ck_assert_int_gt(len, 0);
    exe[len] = '\0';

    size_t ne = 0;
    while (environ[ne])
        ne++;
    char **envp = calloc(ne + 5, sizeof *envp);
    ck_assert_ptr_nonnull(envp);
    size_t k = 0;
    for (size_t i = 0; i < ne; i++) {
        if (strncmp(environ[i], "GATHER_THREADS=", 15) == 0 ||
            strncmp(environ[i], "GATHER_TEST_", 12) == 0)
            continue;
#if TU_TSAN
        if (strncmp(environ[i], "TSAN_OPTIONS=", 13) == 0)
            continue;
#endif
        envp[k++] = environ[i];
    }
#if TU_TSAN
    /* ThreadSanitizer sleeps a second at exit by default. */
    char tsan_var[1024];
    const char *tsan = getenv("TSAN_OPTIONS");
    snprintf(tsan_var, sizeof tsan_var, "TSAN_OPTIONS=%s%satexit_sleep_ms=0", tsan ? tsan : "",
             tsan && *tsan ? " " : "");
    envp[k++] = tsan_var;
#endif
    char mode_var[64], threads_var[128], expect_var[64];
    snprintf(mode_var, sizeof mode_var, "GATHER_TEST_CHILD=%s", mode);
    envp[k++] = mode_var;
    if (threads) {
        snprintf(threads_var, sizeof threads_var, "GATHER_THREADS=%s", threads);
        envp[k++] = threads_var;
    }
    snprintf(expect_var, sizeof expect_var, "GATHER_TEST_EXPECT=%zu", expect);
    envp[k++] = expect_var;
    envp[k] = NULL;

    char *argv[] = {exe, NULL};
    pid_t pid;
    int rc = posix_spawn(&pid, exe, NULL, NULL, argv, envp);
    free(envp);
    ck_assert_int_eq(rc, 0);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        ck_assert_int_eq(errno, EINTR);
    if (!WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

/* ---- tasks ------------------------------------------------------------------ */

/* Records the calling worker's name, then blocks on the gate. */
typedef struct name_probe {
    tu_gate *gate;
    tu_count *started;
    char name[32];
    int getname_rc;
} name_probe;

static int task_record_name(void *arg, void **result)
{
    name_probe *p = arg;
    p->getname_rc = pthread_getname_np(pthread_self(), p->name, sizeof p->name);
    tu_count_add(p->started, 1);
    tu_gate_wait(p->gate);
    *result = p;
    return 0;
}

/* Counts how many tasks run at the same time. */
typedef struct concurrency {
    atomic_int active;
    atomic_int max_active;
    tu_gate *gate;
    tu_count *started;
} concurrency;

static int task_concurrent(void *arg, void **result)
{
    concurrency *c = arg;
    int now = atomic_fetch_add(&c->active, 1) + 1;
    int seen = atomic_load(&c->max_active);
    while (now > seen && !atomic_compare_exchange_weak(&c->max_active, &seen, now))
        ;
    tu_count_add(c->started, 1);
    tu_gate_wait(c->gate);
    atomic_fetch_sub(&c->active, 1);
    (void)result;
    return 0;
}

typedef struct pool_probe {
    gather_pool *seen;
} pool_probe;

static int task_record_pool(void *arg, void **result)
{
    pool_probe *p = arg;
    p->seen = gather_current_pool();
    *result = p;
    return 0;
}

typedef struct stack_probe {
    size_t stacksize;
    int attr_rc;
    unsigned long sum;
} stack_probe;

static int task_record_stack(void *arg, void **result)
{
    stack_probe *p = arg;
    pthread_attr_t a;
    p->attr_rc = pthread_getattr_np(pthread_self(), &a);
    if (p->attr_rc == 0) {
        pthread_attr_getstacksize(&a, &p->stacksize);
        pthread_attr_destroy(&a);
    }
    *result = p;
    return 0;
}

/* Uses a 1 MiB local array. */
static int task_big_frame(void *arg, void **result)
{
    stack_probe *p = arg;
    volatile unsigned char buf[1u << 20];
    for (size_t i = 0; i < sizeof buf; i += 512)
        buf[i] = (unsigned char)(i >> 9);
    unsigned long sum = 0;
    for (size_t i = 0; i < sizeof buf; i += 512)
        sum += buf[i];
    p->sum = sum;
    *result = p;
    return 0;
}

/* ---- creation and thread count --------------------------------------------- */

START_TEST(test_create_reports_requested_thread_count)
{
    for (size_t n = 1; n <= 3; n++) {
        gather_pool_options o = {0};
        o.threads = n;
        gather_pool *p = NULL;
        ck_assert_int_eq(gather_pool_create(&p, &o), 0);
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq(gather_pool_threads(p), n);
        ck_assert_int_eq(gather_pool_destroy(p), 0);
    }
}
END_TEST

START_TEST(test_create_rejects_bad_arguments)
{
    gather_pool_options o = {0};
    o.threads = 2;
    ck_assert_int_eq(gather_pool_create(NULL, &o), EINVAL);
    ck_assert_int_eq(gather_pool_create(NULL, NULL), EINVAL);
    o.threads = 1025;
    gather_pool *p = NULL;
    ck_assert_int_eq(gather_pool_create(&p, &o), EINVAL);
}
END_TEST

START_TEST(test_zero_threads_means_cpus_this_process_may_run_on)
{
    size_t cpus = affinity_cpus();
    ck_assert_uint_gt(cpus, 0);
    gather_pool_options o = {0};
    gather_pool *p = NULL;
    ck_assert_int_eq(gather_pool_create(&p, &o), 0);
    ck_assert_uint_eq(gather_pool_threads(p), cpus);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

/* Restrict the affinity to one CPU: sched_getaffinity (not the online CPU
 * count) decides, and it is read when the pool is created. */
START_TEST(test_zero_threads_follows_restricted_affinity)
{
    cpu_set_t saved, one;
    CPU_ZERO(&saved);
    ck_assert_int_eq(sched_getaffinity(0, sizeof saved, &saved), 0);
    int first = -1;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &saved)) {
            first = c;
            break;
        }
    ck_assert_int_ge(first, 0);
    CPU_ZERO(&one);
    CPU_SET(first, &one);
    ck_assert_int_eq(sched_setaffinity(0, sizeof one, &one), 0);

    gather_pool *p = NULL;
    int rc = gather_pool_create(&p, NULL);
    size_t n = rc == 0 ? gather_pool_threads(p) : 0;
    ck_assert_int_eq(sched_setaffinity(0, sizeof saved, &saved), 0);
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(gather_pool_destroy(p), 0);

    /* Restored: a new pool sees every CPU again. */
    ck_assert_int_eq(gather_pool_create(&p, NULL), 0);
    ck_assert_uint_eq(gather_pool_threads(p), affinity_cpus());
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

START_TEST(test_null_options_create_a_working_pool)
{
    gather_pool *p = NULL;
    ck_assert_int_eq(gather_pool_create(&p, NULL), 0);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(gather_pool_threads(p), affinity_cpus());
    int x = 7;
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_identity, &x, &f), 0);
    void *v = NULL;
    ck_assert_int_eq(gather_future_wait(f, &v), 0);
    ck_assert_ptr_eq(v, &x);
    gather_future_release(f);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

/* ---- one task per thread at a time ----------------------------------------- */

START_TEST(test_pool_of_k_threads_runs_k_tasks_at_once)
{
    for (size_t k = 1; k <= 4; k++) {
        gather_pool *p = tu_pool(k);
        tu_gate gate;
        tu_count started;
        tu_gate_init(&gate);
        tu_count_init(&started);
        concurrency c = {.gate = &gate, .started = &started};
        size_t n = k + 2;
        gather_future *f[6] = {0};
        for (size_t i = 0; i < n; i++)
            ck_assert_int_eq(gather_submit(p, task_concurrent, &c, &f[i]), 0);
        /* All k threads take a gated task, none of them waits for another. */
        ck_assert_int_eq(tu_count_wait(&started, (long)k), 0);
        tu_gate_open(&gate);
        ck_assert_int_eq(gather_futures(f, n, NULL, 0), 0);
        ck_assert_int_eq(tu_count_get(&started), (long)n);
        /* Never more tasks at once than threads. */
        ck_assert_int_le(LOAD(&c.max_active), (int)k);
        ck_assert_int_eq(LOAD(&c.max_active), (int)k);
        for (size_t i = 0; i < n; i++)
            gather_future_release(f[i]);
        ck_assert_int_eq(gather_pool_destroy(p), 0);
        tu_gate_destroy(&gate);
        tu_count_destroy(&started);
    }
}
END_TEST

START_TEST(test_blocked_task_holds_only_its_own_thread)
{
    enum { K = 3, N = 40 };
    gather_pool *p = tu_pool(K);
    tu_gate gate;
    tu_count started;
    tu_gate_init(&gate);
    tu_count_init(&started);
    tu_gated g[K - 1];
    gather_future *gf[K - 1];
    memset(g, 0, sizeof g);
    for (int i = 0; i < K - 1; i++) {
        g[i].gate = &gate;
        g[i].started = &started;
        g[i].value = &g[i];
        ck_assert_int_eq(gather_submit(p, tu_task_gated, &g[i], &gf[i]), 0);
    }
    ck_assert_int_eq(tu_count_wait(&started, K - 1), 0);

    /* K-1 threads are blocked; the last one runs everything else. */
    int vals[N];
    gather_future *f[N];
    gather_result r[N];
    for (int i = 0; i < N; i++) {
        vals[i] = i;
        ck_assert_int_eq(gather_submit(p, tu_task_identity, &vals[i], &f[i]), 0);
    }
    ck_assert_int_eq(gather_futures(f, N, r, 0), 0);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(r[i].error, 0);
        ck_assert_ptr_eq(r[i].value, &vals[i]);
        gather_future_release(f[i]);
    }
    for (int i = 0; i < K - 1; i++)
        ck_assert(!gather_future_done(gf[i]));

    tu_gate_open(&gate);
    for (int i = 0; i < K - 1; i++) {
        void *v = NULL;
        ck_assert_int_eq(gather_future_wait(gf[i], &v), 0);
        ck_assert_ptr_eq(v, &g[i]);
        ck_assert_int_eq(LOAD(&g[i].ran), 1);
        gather_future_release(gf[i]);
    }
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    tu_gate_destroy(&gate);
    tu_count_destroy(&started);
}
END_TEST

/* ---- thread names ------------------------------------------------------------ */

/* Creates a pool of n threads named `prefix`, occupies every worker with a
 * task that records its thread name, and copies the names into names[]. */
static void collect_names(const char *prefix, size_t n, char names[][32])
{
    gather_pool_options o = {0};
    o.threads = n;
    o.name = prefix;
    gather_pool *p = NULL;
    ck_assert_int_eq(gather_pool_create(&p, &o), 0);
    tu_gate gate;
    tu_count started;
    tu_gate_init(&gate);
    tu_count_init(&started);
    name_probe *probes = calloc(n, sizeof *probes);
    gather_future **f = calloc(n, sizeof *f);
    ck_assert_ptr_nonnull(probes);
    ck_assert_ptr_nonnull(f);
    for (size_t i = 0; i < n; i++) {
        probes[i].gate = &gate;
        probes[i].started = &started;
        ck_assert_int_eq(gather_submit(p, task_record_name, &probes[i], &f[i]), 0);
    }
    /* All n run at once, so each ran on a different worker. */
    ck_assert_int_eq(tu_count_wait(&started, (long)n), 0);
    tu_gate_open(&gate);
    ck_assert_int_eq(gather_futures(f, n, NULL, 0), 0);
    for (size_t i = 0; i < n; i++) {
        ck_assert_int_eq(probes[i].getname_rc, 0);
        memcpy(names[i], probes[i].name, 32);
        gather_future_release(f[i]);
    }
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    free(probes);
    free(f);
    tu_gate_destroy(&gate);
    tu_count_destroy(&started);
}

/* True when some names[i] equals want. */
static int has_name(char names[][32], size_t n, const char *want)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], want) == 0)
            return 1;
    return 0;
}

START_TEST(test_thread_names_default_prefix_is_gather)
{
    char names[2][32];
    collect_names(NULL, 2, names);
    ck_assert_msg(has_name(names, 2, "gather-0"), "names: %s %s", names[0], names[1]);
    ck_assert_msg(has_name(names, 2, "gather-1"), "names: %s %s", names[0], names[1]);
}
END_TEST

START_TEST(test_thread_names_use_custom_prefix)
{
    char names[3][32];
    collect_names("work", 3, names);
    ck_assert(has_name(names, 3, "work-0"));
    ck_assert(has_name(names, 3, "work-1"));
    ck_assert(has_name(names, 3, "work-2"));

    /* The name string is copied: the caller's buffer may change afterwards. */
    char buf[8];
    strcpy(buf, "io");
    gather_pool_options o = {0};
    o.threads = 1;
    o.name = buf;
    gather_pool *p = NULL;
    ck_assert_int_eq(gather_pool_create(&p, &o), 0);
    strcpy(buf, "XX");
    tu_gate gate;
    tu_count started;
    tu_gate_init(&gate);
    tu_count_init(&started);
    tu_gate_open(&gate);
    name_probe probe = {.gate = &gate, .started = &started};
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, task_record_name, &probe, &f), 0);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    gather_future_release(f);
    ck_assert_str_eq(probe.name, "io-0");
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    tu_gate_destroy(&gate);
    tu_count_destroy(&started);
}
END_TEST

/* Linux allows 15 characters: the prefix is shortened, the index kept. */
START_TEST(test_thread_names_shorten_long_prefix_and_keep_index)
{
    enum { N = 11 };
    const char *prefix = "averyveryverylongprefix";
    char names[N][32];
    collect_names(prefix, N, names);
    for (size_t idx = 0; idx < N; idx++) {
        char suffix[8];
        snprintf(suffix, sizeof suffix, "-%zu", idx);
        int found = 0;
        for (size_t i = 0; i < N; i++) {
            size_t len = strlen(names[i]);
            size_t sl = strlen(suffix);
            ck_assert_msg(len <= 15, "name too long: %s", names[i]);
            if (len > sl && strcmp(names[i] + len - sl, suffix) == 0) {
                size_t pl = len - sl;
                /* The rest is a shortened prefix (and no index is a
                 * truncation of a longer one: "-1" vs "-10"). */
                if (strncmp(names[i], prefix, pl) == 0 && pl >= 1) {
                    found = 1;
                }
            }
        }
        ck_assert_msg(found, "no thread named <shortened prefix>%s", suffix);
    }
}
END_TEST

/* ---- stack size ---------------------------------------------------------------- */

START_TEST(test_stack_size_option_is_applied)
{
    pthread_attr_t a;
    size_t dflt = 0;
    ck_assert_int_eq(pthread_attr_init(&a), 0);
    ck_assert_int_eq(pthread_attr_getstacksize(&a, &dflt), 0);
    pthread_attr_destroy(&a);

    /* Twice the default (at least 16 MiB), not page-aligned. */
    size_t want = dflt * 2;
    if (want < (16u << 20))
        want = 16u << 20;
    want += 123;
    gather_pool_options o = {0};
    o.threads = 1;
    o.stack_size = want;
    gather_pool *p = NULL;
    ck_assert_int_eq(gather_pool_create(&p, &o), 0);
    stack_probe sp = {0};
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, task_record_stack, &sp, &f), 0);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    gather_future_release(f);
    ck_assert_int_eq(sp.attr_rc, 0);
    ck_assert_uint_ge(sp.stacksize, want);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

START_TEST(test_task_uses_large_frame_on_requested_stack)
{
    gather_pool_options o = {0};
    o.threads = 2;
    o.stack_size = 4u << 20;
    gather_pool *p = NULL;
    ck_assert_int_eq(gather_pool_create(&p, &o), 0);
    stack_probe sp = {0}, big = {0};
    gather_future *f[2];
    ck_assert_int_eq(gather_submit(p, task_record_stack, &sp, &f[0]), 0);
    ck_assert_int_eq(gather_submit(p, task_big_frame, &big, &f[1]), 0);
    ck_assert_int_eq(gather_futures(f, 2, NULL, 0), 0);
    gather_future_release(f[0]);
    gather_future_release(f[1]);
    ck_assert_int_eq(sp.attr_rc, 0);
    ck_assert_uint_ge(sp.stacksize, 4u << 20);
    /* sum of (i >> 9) & 0xff over the 2048 touched bytes */
    unsigned long expect = 0;
    for (size_t i = 0; i < (1u << 20); i += 512)
        expect += (unsigned char)(i >> 9);
    ck_assert_uint_eq(big.sum, expect);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

/* A 1-byte stack is either rounded up (and works) or refused. */
START_TEST(test_tiny_stack_size_is_rounded_up_or_refused)
{
    gather_pool_options o = {0};
    o.threads = 1;
    o.stack_size = 1;
    gather_pool *p = NULL;
    int rc = gather_pool_create(&p, &o);
    ck_assert_msg(rc == 0 || rc == EINVAL || rc == EAGAIN, "rc = %d", rc);
    if (rc == 0) {
        int x = 1;
        gather_future *f = NULL;
        ck_assert_int_eq(gather_submit(p, tu_task_identity, &x, &f), 0);
        void *v = NULL;
        ck_assert_int_eq(gather_future_wait(f, &v), 0);
        ck_assert_ptr_eq(v, &x);
        gather_future_release(f);
        ck_assert_int_eq(gather_pool_destroy(p), 0);
    }
}
END_TEST

/* ---- the default pool and GATHER_THREADS (child processes) ------------------------ */

START_TEST(test_default_pool_uses_gather_threads)
{
    ck_assert_int_eq(run_child("default_threads", "3", 3), 0);
    ck_assert_int_eq(run_child("default_threads", "1", 1), 0);
    ck_assert_int_eq(run_child("default_threads", "64", 64), 0);
    /* Decimal, also with leading zeros (not octal). */
    ck_assert_int_eq(run_child("default_threads", "010", 10), 0);
}
END_TEST

START_TEST(test_default_pool_ignores_invalid_gather_threads)
{
    size_t cpus = affinity_cpus();
    const char *bad[] = {"abc", "0", "1025", "3x", "", "-2", " 3", "+3", "3 ", "0x4", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(run_child("default_threads", bad[i], cpus) == 0,
                      "GATHER_THREADS=\"%s\" should be ignored", bad[i]);
    /* Unset: one thread per CPU this process may run on. */
    ck_assert_int_eq(run_child("default_threads", NULL, cpus), 0);
}
END_TEST

START_TEST(test_gather_threads_read_when_default_pool_first_used)
{
    ck_assert_int_eq(run_child("setenv3", NULL, 3), 0);
}
END_TEST

/* ---- gather_current_pool --------------------------------------------------------- */

START_TEST(test_current_pool_is_null_outside_and_the_pool_inside)
{
    ck_assert_ptr_null(gather_current_pool());
    gather_pool *a = tu_pool(1);
    gather_pool *b = tu_pool(2);
    pool_probe pa = {0}, pb = {0};
    gather_future *f[2];
    ck_assert_int_eq(gather_submit(a, task_record_pool, &pa, &f[0]), 0);
    ck_assert_int_eq(gather_submit(b, task_record_pool, &pb, &f[1]), 0);
    ck_assert_int_eq(gather_futures(f, 2, NULL, 0), 0);
    ck_assert_ptr_eq(pa.seen, a);
    ck_assert_ptr_eq(pb.seen, b);
    ck_assert_ptr_null(gather_current_pool());
    gather_future_release(f[0]);
    gather_future_release(f[1]);
    ck_assert_int_eq(gather_pool_destroy(a), 0);
    ck_assert_int_eq(gather_pool_destroy(b), 0);
}
END_TEST

/* ---- stats ----------------------------------------------------------------------- */

START_TEST(test_stats_count_before_the_future_is_done)
{
    enum { N = 60 };
    gather_pool *p = tu_pool(2);
    gather_pool_stats s;
    ck_assert_int_eq(gather_pool_stats_get(p, &s), 0);
    ck_assert_uint_eq(s.submitted, 0);
    ck_assert_uint_eq(s.completed, 0);
    ck_assert_uint_eq(s.cancelled, 0);
    for (int i = 0; i < N; i++) {
        gather_future *f = NULL;
        /* Every third task fails: completed counts any code. */
        if (i % 3 == 2)
            ck_assert_int_eq(gather_submit(p, tu_task_fail, (void *)(intptr_t)EIO, &f), 0);
        else
            ck_assert_int_eq(gather_submit(p, tu_task_identity, &s, &f), 0);
        int rc = gather_future_wait(f, NULL);
        /* Read right after the wait: the task is already counted. */
        ck_assert_int_eq(gather_pool_stats_get(p, &s), 0);
        ck_assert_int_eq(rc, i % 3 == 2 ? EIO : 0);
        ck_assert_uint_eq(s.submitted, (uint64_t)i + 1);
        ck_assert_uint_eq(s.completed, (uint64_t)i + 1);
        ck_assert_uint_eq(s.cancelled, 0);
        gather_future_release(f);
    }
    ck_assert_int_eq(gather_pool_stats_get(p, NULL), EINVAL);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

typedef struct cb_stats {
    gather_pool *pool;
    gather_pool_stats s;
    int rc;
    atomic_int calls;
} cb_stats;

static void cb_read_stats(gather_future *f, void *ud)
{
    (void)f;
    cb_stats *c = ud;
    c->rc = gather_pool_stats_get(c->pool, &c->s);
    atomic_fetch_add(&c->calls, 1);
}

/* A done callback (run when the future is marked done) already sees the
 * task counted. */
START_TEST(test_stats_include_task_inside_its_done_callback)
{
    gather_pool *p = tu_pool(1);
    tu_gate gate;
    tu_gate_init(&gate);
    tu_gated g = {.gate = &gate};
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_gated, &g, &f), 0);
    cb_stats c = {.pool = p, .rc = -1};
    ck_assert_int_eq(gather_future_on_done(f, cb_read_stats, &c), 0);
    tu_gate_open(&gate);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    /* The callback runs before or during the wait's return; destroy joins
     * the worker, so it has run by then. */
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    ck_assert_int_eq(LOAD(&c.calls), 1);
    ck_assert_int_eq(c.rc, 0);
    ck_assert_uint_eq(c.s.submitted, 1);
    ck_assert_uint_eq(c.s.completed, 1);
    gather_future_release(f);
    tu_gate_destroy(&gate);
}
END_TEST

START_TEST(test_stats_count_cancelled_tasks_apart)
{
    gather_pool *p = tu_pool(1);
    tu_gate gate;
    tu_count started;
    tu_gate_init(&gate);
    tu_count_init(&started);
    tu_gated g = {.gate = &gate, .started = &started};
    gather_future *running = NULL, *pending = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_gated, &g, &running), 0);
    ck_assert_int_eq(tu_count_wait(&started, 1), 0);
    int x = 0;
    ck_assert_int_eq(gather_submit(p, tu_task_identity, &x, &pending), 0);
    ck_assert(gather_future_cancel(pending));
    gather_pool_stats s;
    ck_assert_int_eq(gather_pool_stats_get(p, &s), 0);
    ck_assert_uint_eq(s.submitted, 2);
    ck_assert_uint_eq(s.completed, 0);
    ck_assert_uint_eq(s.cancelled, 1);
    tu_gate_open(&gate);
    ck_assert_int_eq(gather_future_wait(running, NULL), 0);
    ck_assert_int_eq(gather_pool_stats_get(p, &s), 0);
    ck_assert_uint_eq(s.submitted, 2);
    ck_assert_uint_eq(s.completed, 1);
    ck_assert_uint_eq(s.cancelled, 1);
    gather_future_release(running);
    gather_future_release(pending);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    tu_gate_destroy(&gate);
    tu_count_destroy(&started);
}
END_TEST

/* The parent task pushes children on its own deque, then blocks (without
 * helping): only the other worker can run them, by stealing. */
typedef struct steal_ctx {
    gather_pool *pool;
    tu_gate *gate;
    tu_count *children_ran;
    int nchildren;
    atomic_int submit_failures;
} steal_ctx;

static int task_child_count(void *arg, void **result)
{
    steal_ctx *c = arg;
    tu_count_add(c->children_ran, 1);
    (void)result;
    return 0;
}

static int task_parent_then_block(void *arg, void **result)
{
    steal_ctx *c = arg;
    for (int i = 0; i < c->nchildren; i++)
        if (gather_submit(c->pool, task_child_count, c, NULL) != 0)
            atomic_fetch_add(&c->submit_failures, 1);
    tu_gate_wait(c->gate);
    (void)result;
    return 0;
}

START_TEST(test_stats_count_stolen_tasks)
{
    gather_pool *p = tu_pool(2);
    tu_gate gate;
    tu_count ran;
    tu_gate_init(&gate);
    tu_count_init(&ran);
    steal_ctx c = {.pool = p, .gate = &gate, .children_ran = &ran, .nchildren = 8};
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, task_parent_then_block, &c, &f), 0);
    /* The parent is blocked on the gate: the children can only run on the
     * other worker. */
    ck_assert_int_eq(tu_count_wait(&ran, 8), 0);
    gather_pool_stats s;
    ck_assert_int_eq(gather_pool_stats_get(p, &s), 0);
    ck_assert_uint_ge(s.stolen, 1);
    tu_gate_open(&gate);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    gather_future_release(f);
    ck_assert_int_eq(LOAD(&c.submit_failures), 0);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    tu_gate_destroy(&gate);
    tu_count_destroy(&ran);
}
END_TEST

/* Nobody to steal from on a one-thread pool. */
START_TEST(test_stats_no_steals_on_one_thread_pool)
{
    gather_pool *p = tu_pool(1);
    tu_gate gate;
    tu_count ran;
    tu_gate_init(&gate);
    tu_count_init(&ran);
    tu_gate_open(&gate);
    steal_ctx c = {.pool = p, .gate = &gate, .children_ran = &ran, .nchildren = 8};
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, task_parent_then_block, &c, &f), 0);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    ck_assert_int_eq(tu_count_wait(&ran, 8), 0);
    gather_future_release(f);
    /* Shutdown waits for the detached children, so all are counted. */
    ck_assert_int_eq(gather_pool_shutdown(p, 0), 0);
    gather_pool_stats s;
    ck_assert_int_eq(gather_pool_stats_get(p, &s), 0);
    ck_assert_uint_eq(s.stolen, 0);
    ck_assert_uint_eq(s.submitted, 9);
    ck_assert_uint_eq(s.completed, 9);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    tu_gate_destroy(&gate);
    tu_count_destroy(&ran);
}
END_TEST

START_TEST(test_stats_of_default_pool)
{
    gather_pool_stats s;
    ck_assert_int_eq(gather_pool_stats_get(NULL, &s), 0);
    ck_assert_int_eq(gather_pool_stats_get(NULL, NULL), EINVAL);
    ck_assert_uint_ge(gather_pool_threads(NULL), 1);
}
END_TEST

int main(void)
{
    const char *child = getenv("GATHER_TEST_CHILD");
    if (child)
        return child_main(child);

    Suite *s = suite_create("pool");

    TCase *tc = tcase_create("create");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_create_reports_requested_thread_count);
    tcase_add_test(tc, test_create_rejects_bad_arguments);
    tcase_add_test(tc, test_zero_threads_means_cpus_this_process_may_run_on);
    tcase_add_test(tc, test_zero_threads_follows_restricted_affinity);
    tcase_add_test(tc, test_null_options_create_a_working_pool);
    tcase_add_test(tc, test_stack_size_option_is_applied);
    tcase_add_test(tc, test_task_uses_large_frame_on_requested_stack);
    tcase_add_test(tc, test_tiny_stack_size_is_rounded_up_or_refused);
    suite_add_tcase(s, tc);

    tc = tcase_create("threads");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_pool_of_k_threads_runs_k_tasks_at_once);
    tcase_add_test(tc, test_blocked_task_holds_only_its_own_thread);
    tcase_add_test(tc, test_thread_names_default_prefix_is_gather);
    tcase_add_test(tc, test_thread_names_use_custom_prefix);
    tcase_add_test(tc, test_thread_names_shorten_long_prefix_and_keep_index);
    tcase_add_test(tc, test_current_pool_is_null_outside_and_the_pool_inside);
    suite_add_tcase(s, tc);

    tc = tcase_create("default_pool");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_default_pool_uses_gather_threads);
    tcase_add_test(tc, test_default_pool_ignores_invalid_gather_threads);
    tcase_add_test(tc, test_gather_threads_read_when_default_pool_first_used);
    tcase_add_test(tc, test_stats_of_default_pool);
    suite_add_tcase(s, tc);

    tc = tcase_create("stats");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_stats_count_before_the_future_is_done);
    tcase_add_test(tc, test_stats_include_task_inside_its_done_callback);
    tcase_add_test(tc, test_stats_count_cancelled_tasks_apart);
    tcase_add_test(tc, test_stats_count_stolen_tasks);
    tcase_add_test(tc, test_stats_no_steals_on_one_thread_pool);
    suite_add_tcase(s, tc);

    return tu_run_suite(s);
}
