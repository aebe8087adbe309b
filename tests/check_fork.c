/* SPDX-License-Identifier: MIT */
/*
 * check_fork.c - fork() while pools are busy. The child has one thread: it
 * gets a new default pool on first use, can create pools of its own, and
 * every use of a parent's pool or of a parent's unfinished future fails at
 * once instead of hanging. Each child must exit within CHILD_LIMIT_S.
 *
 * Sanitizers: TSan stops a child of a multi-threaded process that starts
 * threads (its die_after_fork), and clang 14's ASan can hang such a child
 * in malloc; there only the fork inside a task runs (its pool is idle).
 */
#include "testutil.h"

#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Under valgrind every child starts its threads under the emulator. */
#define CHILD_LIMIT_S (TU_VALGRIND ? 120 : TU_SANITIZED ? 15 : 5)
#define BUSY_THREADS 4
#define FORKS 100

/* Child exit codes: 0 ok, else the number of the check that failed. */
#define CHILD_CHECK(n, cond)                                                    \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "child: check %d failed: %s\n", (n), #cond);        \
            _exit(n);                                                           \
        }                                                                       \
    } while (0)

/* With TU_GDB=1 in the environment, a hung child's stacks are printed
 * (gdb attaches to it) before it is killed. */
static void print_child_stacks(pid_t pid)
{
    if (getenv("TU_GDB") == NULL)
        return;
    char cmd[160];
    snprintf(cmd, sizeof cmd,
             "gdb -p %d -batch -ex 'thread apply all bt' 2>&1 | grep -E '^#|^Thread'",
             (int)pid);
    if (system(cmd) != 0)
        fprintf(stderr, "(gdb failed)\n");
}

/* Waits for the child, killing it after CHILD_LIMIT_S. Returns its exit
 * status, or -1 when it hung or died of a signal. */
static int reap_child(pid_t pid)
{
    uint64_t limit = tu_mono_ns() + (uint64_t)CHILD_LIMIT_S * 1000000000u;
    for (;;) {
        int status = 0;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            if (WIFEXITED(status))
                return WEXITSTATUS(status);
            fprintf(stderr, "child died of signal %d\n", WTERMSIG(status));
            return -1;
        }
        if (tu_mono_ns() > limit) {
            print_child_stacks(pid);
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fprintf(stderr, "child did not exit within %d s\n", CHILD_LIMIT_S);
            return -1;
        }
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
}

static int task_square(void *arg, void **result)
{
    intptr_t x = (intptr_t)arg;
    *result = (void *)(x * x);
    return 0;
}

/* Submits n squares to pool and gathers them; 0 when every result is right. */
static int squares_on(gather_pool *pool, intptr_t n)
{
    gather_future *fs[64];
    gather_result rs[64];
    if (n > 64)
        return -1;
    for (intptr_t i = 0; i < n; i++)
        if (gather_submit(pool, task_square, (void *)i, &fs[i]) != 0)
            return -2;
    int rc = gather_futures(fs, (size_t)n, rs, 0);
    for (intptr_t i = 0; i < n; i++) {
        if (rc == 0 && (rs[i].error != 0 || rs[i].value != (void *)(i * i)))
            rc = -3;
        gather_future_release(fs[i]);
    }
    return rc;
}

/* What every child checks: the default pool and a new pool work; the
 * parent's pool and its unfinished future fail at once. */
static void child_body(gather_pool *parent_pool, gather_future *parent_pending)
{
    CHILD_CHECK(1, gather_current_pool() == NULL);
    CHILD_CHECK(2, squares_on(NULL, 32) == 0);
    gather_pool *mine = NULL;
    gather_pool_options o = {0};
    o.threads = 2;
    CHILD_CHECK(3, gather_pool_create(&mine, &o) == 0);
    CHILD_CHECK(4, squares_on(mine, 32) == 0);
    CHILD_CHECK(5, gather_pool_destroy(mine) == 0);

    if (parent_pool != NULL) {
        gather_future *f = NULL;
        CHILD_CHECK(6, gather_submit(parent_pool, task_square, NULL, &f) == ESHUTDOWN);
        CHILD_CHECK(7, f == NULL);
        gather_pool_stats st;
        CHILD_CHECK(8, gather_pool_stats_get(parent_pool, &st) == ESHUTDOWN);
        CHILD_CHECK(9, gather_pool_shutdown(parent_pool, 0) == ESHUTDOWN);
        CHILD_CHECK(10, gather_pool_destroy(parent_pool) == ESHUTDOWN);
    }
    if (parent_pending != NULL) {
        CHILD_CHECK(11, !gather_future_done(parent_pending));
        CHILD_CHECK(12, gather_future_wait(parent_pending, NULL) == EDEADLK);
        CHILD_CHECK(13, !gather_future_wait_for(parent_pending, GATHER_FOREVER));
        CHILD_CHECK(14, gather_futures(&parent_pending, 1, NULL, 0) == EDEADLK);
        gather_future *list[1] = {parent_pending};
        size_t idx = 99;
        CHILD_CHECK(15, gather_wait_any(list, 1, 0, &idx) == EDEADLK);
    }
    /* Success: exec, as POSIX advises a child of a threaded process. (Memory
     * of the parent's vanished threads, e.g. their wait records, is lost in
     * the child; a leak checker at exit would report it.) */
    execl("/bin/true", "true", (char *)NULL);
    _exit(0);
}

/* ---- busy parent ---------------------------------------------------------- */

/* Threads running while the test forks never call Check: a child forked
 * while one of them holds Check's lock would hang in its first assertion.
 * They count their failures instead, and the test checks the count. */
typedef struct busy {
    atomic_bool stop;
    atomic_long rounds;
    atomic_int failures;
    tu_count started;
} busy;

static void *keep_default_pool_busy(void *arg)
{
    busy *b = arg;
    bool counted = false;
    while (!atomic_load(&b->stop)) {
        if (squares_on(NULL, 16) != 0)
            atomic_fetch_add(&b->failures, 1);
        atomic_fetch_add(&b->rounds, 1);
        if (!counted) {
            tu_count_add(&b->started, 1);
            counted = true;
        }
    }
    return NULL;
}

/* Waits for the gate however long the forks take (valgrind): the test
 * opens it at its end. */
static int task_wait_gate(void *arg, void **result)
{
    *result = NULL;
    while (tu_gate_wait(arg) != 0)
        continue;
    return 0;
}

START_TEST(test_children_of_a_busy_process_get_their_own_pools)
{
    /* valgrind runs one thread at a time: four busy threads and their
     * pool starve the children for minutes. ASan (clang 14) takes no lock
     * of its allocator across fork(): a child forked while another thread
     * is inside ASan's malloc can hang in its first malloc (LLVM added an
     * atfork handler later). Plain builds run it. */
    if (TU_SANITIZED || TU_VALGRIND)
        return;
    busy b;
    atomic_init(&b.stop, false);
    atomic_init(&b.rounds, 0);
    atomic_init(&b.failures, 0);
    tu_count_init(&b.started);
    pthread_t t[BUSY_THREADS];
    for (int i = 0; i < BUSY_THREADS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, keep_default_pool_busy, &b), 0);
    ck_assert_int_eq(tu_count_wait(&b.started, BUSY_THREADS), 0);

    /* A pool of the parent with a task that is running (gated) and one that
     * is queued behind it when the children are forked. */
    gather_pool *parent = NULL;
    gather_pool_options o = {0};
    o.threads = 1;
    ck_assert_int_eq(gather_pool_create(&parent, &o), 0);
    tu_gate gate;
    tu_gate_init(&gate);
    gather_future *running = NULL, *queued = NULL;
    ck_assert_int_eq(gather_submit(parent, task_wait_gate, &gate, &running), 0);
    ck_assert_int_eq(gather_submit(parent, task_square, (void *)3, &queued), 0);

    for (int i = 0; i < FORKS; i++) {
        pid_t pid = fork();
        if (pid == 0)
            child_body(parent, i % 2 ? running : queued);
        ck_assert_int_ge(pid, 0);
        ck_assert_msg(reap_child(pid) == 0, "fork %d: the child failed", i);
    }
    atomic_store(&b.stop, true);
    for (int i = 0; i < BUSY_THREADS; i++)
        pthread_join(t[i], NULL);
    ck_assert_int_gt(atomic_load(&b.rounds), 0);
    ck_assert_int_eq(atomic_load(&b.failures), 0);

    /* The parent's pool is untouched by all this. */
    tu_gate_open(&gate);
    ck_assert_int_eq(gather_future_wait(running, NULL), 0);
    void *v = NULL;
    ck_assert_int_eq(gather_future_wait(queued, &v), 0);
    ck_assert_ptr_eq(v, (void *)9);
    gather_future_release(running);
    gather_future_release(queued);
    ck_assert_int_eq(gather_pool_destroy(parent), 0);
    tu_gate_destroy(&gate);
    tu_count_destroy(&b.started);
}
END_TEST

/* A task forks: in the child its thread is an ordinary thread. */
static int task_fork_and_check_child(void *arg, void **result)
{
    (void)arg;
    *result = NULL;
    gather_pool *own = gather_current_pool();
    pid_t pid = fork();
    if (pid < 0)
        return errno;
    if (pid == 0) {
        /* submit(NULL) from what was a task now means the new default pool. */
        child_body(own, NULL);
    }
    return reap_child(pid) == 0 ? 0 : ECHILD;
}

START_TEST(test_fork_inside_a_task)
{
    if (TU_TSAN) /* die_after_fork: the child starts threads */
        return;
    gather_pool *p = NULL;
    gather_pool_options o = {0};
    o.threads = 2;
    ck_assert_int_eq(gather_pool_create(&p, &o), 0);
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, task_fork_and_check_child, NULL, &f), 0);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    gather_future_release(f);
    ck_assert_int_eq(squares_on(p, 8), 0);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

/* Forking while another thread creates the default pool (the lock it holds
 * must not be inherited locked). */
static void *first_default_use(void *arg)
{
    /* No Check call here (see struct busy): the result goes back. */
    *(int *)arg = squares_on(NULL, 4);
    return NULL;
}

START_TEST(test_fork_racing_default_pool_creation)
{
    /* Not under sanitizers: see test_children_of_a_busy_process_... */
    if (TU_SANITIZED)
        return;
    /* Runs in a fresh process (CK_FORK) or first: the default pool may not
     * exist yet, so the race is real at least once. */
    for (int i = 0; i < (TU_VALGRIND ? 3 : 20); i++) {
        pthread_t t;
        int squares_rc = -1;
        ck_assert_int_eq(pthread_create(&t, NULL, first_default_use, &squares_rc), 0);
        pid_t pid = fork();
        if (pid == 0)
            child_body(NULL, NULL);
        ck_assert_int_ge(pid, 0);
        ck_assert_int_eq(reap_child(pid), 0);
        pthread_join(t, NULL);
        ck_assert_int_eq(squares_rc, 0);
    }
}
END_TEST

static Suite *fork_suite(void)
{
    Suite *s = suite_create("fork");
    TCase *tc = tcase_create("fork");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_fork_racing_default_pool_creation);
    tcase_add_test(tc, test_children_of_a_busy_process_get_their_own_pools);
    tcase_add_test(tc, test_fork_inside_a_task);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(fork_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
