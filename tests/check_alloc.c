/* SPDX-License-Identifier: MIT */
/*
 * check_alloc.c - the replaceable allocator.
 *
 * main() installs ONE counting, fault-injecting allocator before any pool
 * exists (gather_replace_allocator() only works then, and with CK_FORK=no
 * every test shares this process). It counts live blocks, and when armed it
 * fails either the k-th allocation once or every allocation from the k-th
 * on (the way SQLite's fault simulator does).
 *
 * Each fault scenario first runs once unharmed, counting its allocations
 * (K), then for every k = 0, 1, 2, ... (at least up to K, and on until a run
 * in which no allocation was failed), in both modes, and checks every time
 * that:
 *   - the call that needed memory returns ENOMEM (EAGAIN where documented),
 *     and a failed allocation always surfaces that way from some call
 *     (except inside a gather_map that succeeded: it may do without an
 *     allocation, splitting its range less; see failures_during()),
 *   - nothing leaks: the live block count returns to its value before,
 *   - nothing accepted is lost: every task whose submit returned 0 runs
 *     exactly once, every future completes.
 * One of them (sc_realistic) is a whole application in one run: create,
 * submit, a task gathering subtasks, an aggregate of an aggregate, done
 * callbacks, gather_map, shutdown, destroy.
 *
 * Thread creation fails too: the suite is linked with
 * -Wl,--wrap=pthread_create (tests/CMakeLists.txt), so every pthread_create
 * of libgather.a and of this file goes through __wrap_pthread_create below,
 * which can fail the n-th call with EAGAIN and counts the threads running.
 *
 * Each run happens on a fresh pthread (so a thread's first blocking wait
 * really allocates its wait record, and the thread's own records are freed
 * when it exits). That thread never calls ck_assert: it records the first
 * failed check, which the test thread then reports.
 */
#include "testutil.h"

#include <limits.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

/* ---- the counting, fault-injecting allocator ------------------------------------- */

enum { FAULT_OFF = 0, FAULT_ONCE = 1, FAULT_FROM = 2 };

static atomic_long al_allocs;   /* successful allocations */
static atomic_long al_frees;    /* frees of non-NULL blocks */
static atomic_long al_live;     /* blocks allocated and not yet freed */
static atomic_long al_injected; /* allocations failed on purpose */
static atomic_long al_seq;      /* allocation attempts while armed */
static atomic_long al_k;
static atomic_int al_mode;

static void *counting_malloc(size_t size)
{
    int mode = atomic_load(&al_mode);
    if (mode != FAULT_OFF) {
        long i = atomic_fetch_add(&al_seq, 1);
        long k = atomic_load(&al_k);
        if ((mode == FAULT_ONCE && i == k) || (mode == FAULT_FROM && i >= k)) {
            atomic_fetch_add(&al_injected, 1);
            return NULL;
        }
    }
    void *p = malloc(size);
    if (p) {
        atomic_fetch_add(&al_allocs, 1);
        atomic_fetch_add(&al_live, 1);
    }
    return p;
}

static void counting_free(void *p)
{
    if (p) {
        atomic_fetch_add(&al_frees, 1);
        atomic_fetch_sub(&al_live, 1);
    }
    free(p);
}

static void arm(int mode, long k)
{
    atomic_store(&al_seq, 0);
    atomic_store(&al_k, k);
    atomic_store(&al_mode, mode);
}

static void disarm(void)
{
    atomic_store(&al_mode, FAULT_OFF);
}

/* ---- failing thread creation (-Wl,--wrap=pthread_create) ----------------------------- */

/*
 * The linker sends every pthread_create call of this file and of
 * libgather.a here; __real_pthread_create is the real one (under a
 * sanitizer, its interceptor). When armed it fails the n-th call once, or
 * every call from the n-th on, with EAGAIN. Every thread it starts is
 * counted in threads_live until its start routine returns, so a thread
 * left running (never told to exit, never joined) shows.
 */
int __real_pthread_create(pthread_t *thread, const pthread_attr_t *attr,
                          void *(*start)(void *), void *arg);
int __wrap_pthread_create(pthread_t *thread, const pthread_attr_t *attr,
                          void *(*start)(void *), void *arg);

static atomic_int pc_mode;     /* FAULT_OFF, FAULT_ONCE, FAULT_FROM */
static atomic_long pc_seq;     /* calls while armed */
static atomic_long pc_n;
static atomic_long pc_failed;  /* calls failed on purpose */
static atomic_long threads_live;

typedef struct counted_start_arg {
    void *(*start)(void *);
    void *arg;
} counted_start_arg;

static void *counted_start(void *p)
{
    counted_start_arg a = *(counted_start_arg *)p;
    free(p);
    void *ret = a.start(a.arg);
    atomic_fetch_sub(&threads_live, 1);
    return ret;
}

int __wrap_pthread_create(pthread_t *thread, const pthread_attr_t *attr,
                          void *(*start)(void *), void *arg)
{
    int mode = atomic_load(&pc_mode);
    if (mode != FAULT_OFF) {
        long i = atomic_fetch_add(&pc_seq, 1);
        long n = atomic_load(&pc_n);
        if ((mode == FAULT_ONCE && i == n) || (mode == FAULT_FROM && i >= n)) {
            atomic_fetch_add(&pc_failed, 1);
            return EAGAIN;
        }
    }
    counted_start_arg *a = malloc(sizeof *a); /* plain malloc: not the library's */
    if (a == NULL)
        return EAGAIN;
    a->start = start;
    a->arg = arg;
    atomic_fetch_add(&threads_live, 1); /* before: it may return at once */
    int rc = __real_pthread_create(thread, attr, counted_start, a);
    if (rc != 0) {
        atomic_fetch_sub(&threads_live, 1);
        free(a);
    }
    return rc;
}

static void pc_arm(int mode, long n)
{
    atomic_store(&pc_seq, 0);
    atomic_store(&pc_failed, 0);
    atomic_store(&pc_n, n);
    atomic_store(&pc_mode, mode);
}

static void pc_disarm(void)
{
    atomic_store(&pc_mode, FAULT_OFF);
}

/* Results of the calls main() made before any pool existed. */
static int pre_half_malloc_rc = -1, pre_half_free_rc = -1;
static int pre_install_rc = -1, pre_restore_rc = -1, pre_reinstall_rc = -1;
/* A 2-thread create whose second thread failed to start, before any pool. */
static int pre_thread_fail_rc = -1, pre_after_thread_fail_replace_rc = -1;
static long pre_thread_fail_threads = -1, pre_thread_fail_blocks = -1;

/* ---- scenario runner -------------------------------------------------------------- */

typedef struct sc {
    int mode;
    long k;
    char msg[256];
    long enomem_seen; /* calls under test that returned ENOMEM */
    long tolerated;   /* failures inside gather_map calls that succeeded */
} sc;

/* A soft check: records the first failure and carries on (the scenario is
 * written so that carrying on is safe). */
#define CHECK(s, cond)                                                                 \
    do {                                                                               \
        if (!(cond) && !(s)->msg[0])                                                   \
            snprintf((s)->msg, sizeof (s)->msg, "line %d: %s", __LINE__, #cond);       \
    } while (0)

/* CHECK with a formatted message. */
#define CHECKF(s, cond, ...)                                                           \
    do {                                                                               \
        if (!(cond) && !(s)->msg[0]) {                                                 \
            int n_ = snprintf((s)->msg, sizeof (s)->msg, "line %d: %s: ", __LINE__, #cond); \
            if (n_ > 0 && (size_t)n_ < sizeof (s)->msg)                                \
                snprintf((s)->msg + n_, sizeof (s)->msg - (size_t)n_, __VA_ARGS__);    \
        }                                                                              \
    } while (0)

typedef void (*sc_fn)(sc *s);

typedef struct sc_thread {
    sc_fn fn;
    sc *s;
} sc_thread;

static void *sc_main(void *arg)
{
    sc_thread *t = arg;
    t->fn(t->s);
    disarm();
    return NULL;
}

static void run_once(sc_fn fn, sc *s)
{
    sc_thread t = {fn, s};
    pthread_t tid;
    ck_assert_int_eq(pthread_create(&tid, NULL, sc_main, &t), 0);
    ck_assert_int_eq(pthread_join(tid, NULL), 0);
}

/* Runs `fn` once with the allocator armed but never failing; returns the
 * number of allocations it made while armed (K). */
static long count_allocations(const char *name, sc_fn fn)
{
    long base = atomic_load(&al_live);
    atomic_store(&al_injected, 0);
    sc s;
    memset(&s, 0, sizeof s);
    s.mode = FAULT_ONCE;
    s.k = LONG_MAX; /* never reached: counts only */
    run_once(fn, &s);
    ck_assert_msg(s.msg[0] == '\0', "%s (unharmed run): %s", name, s.msg);
    ck_assert_msg(s.enomem_seen == 0, "%s (unharmed run): ENOMEM without a failure", name);
    ck_assert_msg(atomic_load(&al_live) == base, "%s (unharmed run): %ld blocks leaked", name,
                  atomic_load(&al_live) - base);
    ck_assert_int_eq(atomic_load(&al_injected), 0);
    return atomic_load(&al_seq);
}

/* Most runs per mode: a guard against a scenario that never stops failing. */
enum { RUNS_MAX = 20000 };

/* Counts K, then runs `fn` for every k in both modes, at least up to K and
 * on until a run needs no failure (a run may allocate more than the
 * unharmed one: a wait that finds its futures done allocates nothing). */
static void run_faults(const char *name, sc_fn fn)
{
    static const char *mode_names[] = {"off", "once", "from"};
    long K = count_allocations(name, fn);
    ck_assert_msg(K > 0, "%s: no allocation to fail", name);
    for (int mode = FAULT_ONCE; mode <= FAULT_FROM; mode++) {
        long enomem = 0;
        long k;
        for (k = 0; k < RUNS_MAX; k++) {
            long base = atomic_load(&al_live);
            atomic_store(&al_injected, 0);
            sc s;
            memset(&s, 0, sizeof s);
            s.mode = mode;
            s.k = k;
            run_once(fn, &s);
            long injected = atomic_load(&al_injected);
            ck_assert_msg(s.msg[0] == '\0', "%s (%s k=%ld): %s", name, mode_names[mode], k, s.msg);
            ck_assert_msg(atomic_load(&al_live) == base, "%s (%s k=%ld): %ld blocks leaked", name,
                          mode_names[mode], k, atomic_load(&al_live) - base);
            /* A failed allocation is never swallowed (unless a call
             * could do without it), and nothing fails for memory unless
             * an allocation did. */
            ck_assert_msg(injected - s.tolerated == 0 || s.enomem_seen > 0,
                          "%s (%s k=%ld): an allocation failed, no call reported it", name,
                          mode_names[mode], k);
            ck_assert_msg(injected > 0 || s.enomem_seen == 0,
                          "%s (%s k=%ld): ENOMEM with no allocation failed", name,
                          mode_names[mode], k);
            enomem += s.enomem_seen;
            if (injected == 0 && k >= K)
                break;
        }
        ck_assert_msg(k < RUNS_MAX, "%s: never ran without an injected failure", name);
        if (getenv("GATHER_TEST_VERBOSE"))
            fprintf(stderr, "%s (%s): K=%ld, %ld runs, %ld ENOMEM\n", name, mode_names[mode], K,
                    k + 1, enomem);
        /* Some k made the call under test fail with ENOMEM. */
        ck_assert_msg(enomem > 0, "%s (%s): no call reported ENOMEM", name, mode_names[mode]);
    }
}

/* Busy-polls (gather_future_done allocates nothing) until f is done. */
static bool poll_done(gather_future *f)
{
    time_t start = time(NULL);
    while (!gather_future_done(f)) {
        if (time(NULL) - start > TU_WATCHDOG_S)
            return false;
        sched_yield();
    }
    return true;
}

static bool poll_atomic(atomic_int *v, int target)
{
    time_t start = time(NULL);
    while (atomic_load(v) < target) {
        if (time(NULL) - start > TU_WATCHDOG_S)
            return false;
        sched_yield();
    }
    return true;
}

/* Allocations failed so far in this run. gather_map may do without some
 * (it splits its range into fewer chunks): failures_during() is what a
 * gather_map call that succeeded tolerated. */
static long failures_now(void)
{
    return atomic_load(&al_injected);
}

static long failures_during(int rc, long before)
{
    return rc == 0 ? failures_now() - before : 0;
}

static gather_pool *make_pool(sc *s, size_t threads)
{
    gather_pool_options o = {0};
    o.threads = threads;
    gather_pool *p = NULL;
    int rc = gather_pool_create(&p, &o);
    CHECK(s, rc == 0 && p != NULL);
    return rc == 0 ? p : NULL;
}

/* ---- tasks --------------------------------------------------------------------------- */

typedef struct slot {
    atomic_int started;
    atomic_int finished;
} slot;

static int task_slot(void *arg, void **result)
{
    slot *sl = arg;
    atomic_fetch_add(&sl->started, 1);
    atomic_fetch_add(&sl->finished, 1);
    *result = sl;
    return 0;
}

/* Opens a gate from its own thread once the armed waiter has made its first
 * allocation attempt (its wait record), or after 100 ms when it makes none.
 * Any order is correct; this one makes the waiter reach its allocation
 * while the futures are certainly not done. */
typedef struct opener {
    pthread_t tid;
    tu_gate *gate;
} opener;

static void *opener_main(void *arg)
{
    opener *o = arg;
    for (int i = 0; i < 1000 && atomic_load(&al_seq) == 0; i++) {
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    }
    tu_gate_open(o->gate);
    return NULL;
}

/* ---- scenarios ------------------------------------------------------------------------ */

/* Pool creation. */
static void sc_create(sc *s)
{
    gather_pool_options o = {0};
    o.threads = 2;
    o.name = "alloc";
    gather_pool *p = NULL;
    arm(s->mode, s->k);
    int rc = gather_pool_create(&p, &o);
    disarm();
    CHECK(s, rc == 0 || rc == ENOMEM || rc == EAGAIN);
    if (s->mode == FAULT_FROM && s->k == 0)
        CHECK(s, rc == ENOMEM);
    if (rc == ENOMEM)
        s->enomem_seen++;
    if (rc != 0)
        return;
    CHECK(s, p != NULL && gather_pool_threads(p) == 2);
    slot sl = {0};
    gather_future *f = NULL;
    CHECK(s, gather_submit(p, task_slot, &sl, &f) == 0);
    void *v = NULL;
    if (f) {
        CHECK(s, gather_future_wait(f, &v) == 0);
        CHECK(s, v == &sl);
        gather_future_release(f);
    }
    CHECK(s, gather_pool_destroy(p) == 0);
}

/* Submits from outside the pool, with and without futures. */
static void sc_submit(sc *s)
{
    enum { N = 8 };
    gather_pool *p = make_pool(s, 2);
    if (!p)
        return;
    slot sl[N];
    memset(sl, 0, sizeof sl);
    gather_future *f[N];
    int rc[N];
    arm(s->mode, s->k);
    for (int i = 0; i < N; i++) {
        f[i] = (gather_future *)&sl[i]; /* overwritten: future or NULL */
        rc[i] = gather_submit(p, task_slot, &sl[i], (i % 2) ? &f[i] : NULL);
    }
    disarm();
    if (s->mode == FAULT_FROM && s->k == 0)
        CHECK(s, rc[0] == ENOMEM);
    for (int i = 0; i < N; i++) {
        CHECK(s, rc[i] == 0 || rc[i] == ENOMEM);
        if (rc[i] == ENOMEM)
            s->enomem_seen++;
        if (i % 2 == 0)
            continue;
        if (rc[i] != 0) {
            CHECK(s, f[i] == NULL);
            continue;
        }
        void *v = NULL;
        CHECK(s, gather_future_wait(f[i], &v) == 0);
        CHECK(s, v == &sl[i]);
        gather_future_release(f[i]);
    }
    CHECK(s, gather_pool_destroy(p) == 0);
    for (int i = 0; i < N; i++)
        CHECK(s, atomic_load(&sl[i].started) == (rc[i] == 0 ? 1 : 0));
}

/* gather_all over gated children; the children complete while armed. */
static void sc_gather_all(sc *s)
{
    enum { N = 3 };
    gather_pool *p = make_pool(s, 2);
    if (!p)
        return;
    tu_gate gate;
    tu_gate_init(&gate);
    tu_gated g[N];
    memset(g, 0, sizeof g);
    gather_future *f[N];
    int ok = 1;
    for (int i = 0; i < N; i++) {
        g[i].gate = &gate;
        g[i].value = &g[i];
        g[i].code = i == 1 ? EIO : 0;
        if (gather_submit(p, tu_task_gated, &g[i], &f[i]) != 0) {
            ok = 0;
            f[i] = NULL;
        }
    }
    CHECK(s, ok);
    if (!ok) {
        tu_gate_open(&gate);
        for (int i = 0; i < N; i++)
            gather_future_release(f[i]);
        gather_pool_destroy(p);
        tu_gate_destroy(&gate);
        return;
    }
    gather_future *agg = NULL;
    arm(s->mode, s->k);
    int rc = gather_all(f, N, GATHER_RETURN_ERRORS, &agg);
    tu_gate_open(&gate);
    /* Completion (the aggregate's included) happens under the fault too. */
    CHECK(s, poll_done(rc == 0 ? agg : f[N - 1]));
    for (int i = 0; i < N; i++)
        CHECK(s, poll_done(f[i]));
    disarm();
    CHECK(s, rc == 0 || rc == ENOMEM);
    if (s->mode == FAULT_FROM && s->k == 0)
        CHECK(s, rc == ENOMEM);
    if (rc == ENOMEM)
        s->enomem_seen++;
    if (rc == 0) {
        void *v = NULL;
        CHECK(s, gather_future_wait(agg, &v) == 0);
        gather_result *r = v;
        CHECK(s, r != NULL && r == gather_future_value(agg));
        if (r) {
            for (int i = 0; i < N; i++) {
                CHECK(s, r[i].error == g[i].code);
                CHECK(s, r[i].value == &g[i]);
            }
        }
        gather_future_release(agg);
    }
    for (int i = 0; i < N; i++) {
        CHECK(s, atomic_load(&g[i].ran) == 1);
        CHECK(s, gather_future_error(f[i]) == g[i].code);
        gather_future_release(f[i]);
    }
    CHECK(s, gather_pool_destroy(p) == 0);
    tu_gate_destroy(&gate);
}

/* Done callbacks: those added run once, in order; those refused never. */
typedef struct cb_log {
    atomic_int calls[4];
    atomic_int order[4];
    atomic_int next;
} cb_log;

typedef struct cb_arg {
    cb_log *log;
    int id;
} cb_arg;

static void cb_record(gather_future *f, void *ud)
{
    (void)f;
    cb_arg *a = ud;
    int pos = atomic_fetch_add(&a->log->next, 1);
    if (pos < 4)
        atomic_store(&a->log->order[pos], a->id);
    atomic_fetch_add(&a->log->calls[a->id], 1);
}

static void sc_on_done(sc *s)
{
    gather_pool *p = make_pool(s, 1);
    if (!p)
        return;
    tu_gate gate;
    tu_gate_init(&gate);
    tu_gated g = {.gate = &gate};
    gather_future *f = NULL;
    CHECK(s, gather_submit(p, tu_task_gated, &g, &f) == 0);
    if (!f) {
        tu_gate_open(&gate);
        gather_pool_destroy(p);
        tu_gate_destroy(&gate);
        return;
    }
    cb_log log;
    memset(&log, 0, sizeof log);
    cb_arg args[4];
    int rc[4];
    for (int i = 0; i < 4; i++)
        args[i] = (cb_arg){&log, i};
    arm(s->mode, s->k);
    int added = 0;
    for (int i = 0; i < 3; i++) {
        rc[i] = gather_future_on_done(f, cb_record, &args[i]);
        added += rc[i] == 0;
    }
    tu_gate_open(&gate);
    CHECK(s, poll_done(f));
    CHECK(s, poll_atomic(&log.next, added));
    /* Added after completion: runs at once, here. */
    rc[3] = gather_future_on_done(f, cb_record, &args[3]);
    disarm();
    if (rc[3] == 0)
        CHECK(s, atomic_load(&log.calls[3]) == 1);
    for (int i = 0; i < 4; i++) {
        CHECK(s, rc[i] == 0 || rc[i] == ENOMEM);
        if (rc[i] == ENOMEM)
            s->enomem_seen++;
    }
    CHECK(s, gather_future_wait(f, NULL) == 0);
    CHECK(s, gather_pool_destroy(p) == 0);
    int pos = 0;
    for (int i = 0; i < 4; i++) {
        CHECK(s, atomic_load(&log.calls[i]) == (rc[i] == 0 ? 1 : 0));
        if (rc[i] == 0) {
            CHECK(s, atomic_load(&log.order[pos]) == i);
            pos++;
        }
    }
    CHECK(s, atomic_load(&log.next) == pos);
    gather_future_release(f);
    tu_gate_destroy(&gate);
}

/* gather_map; with ENOMEM partway, the tasks it submitted are finished (not
 * queued, not running) when it returns, and the others never run. */
typedef struct map_probe {
    slot sl[16];
} map_probe;

static void check_map_outcome(sc *s, int rc, int n, slot *sl, gather_result *r, int *snap_started,
                              int *snap_finished)
{
    CHECK(s, rc == 0 || rc == ENOMEM);
    if (rc == ENOMEM)
        s->enomem_seen++;
    for (int i = 0; i < n; i++) {
        /* Nothing was left running at return... */
        CHECK(s, snap_started[i] == snap_finished[i]);
        if (rc == 0) {
            CHECKF(s, r[i].error == 0 && r[i].value == &sl[i], "results[%d] = {%d, %p}", i,
                   r[i].error, r[i].value);
            CHECK(s, snap_finished[i] == 1);
        } else {
            /* Entries never submitted report ENOMEM. */
            CHECKF(s, r[i].error == 0 || r[i].error == ENOMEM, "results[%d].error = %d", i,
                   r[i].error);
            if (r[i].error == 0)
                CHECK(s, r[i].value == &sl[i] && snap_finished[i] == 1);
        }
    }
}

static void check_map_after(sc *s, int n, slot *sl, gather_result *r, int *snap_started)
{
    for (int i = 0; i < n; i++) {
        /* ...nor queued: nothing started after the return, and each entry
         * ran exactly when it reports a result. */
        CHECK(s, atomic_load(&sl[i].started) == snap_started[i]);
        CHECK(s, atomic_load(&sl[i].started) == (r[i].error == 0 ? 1 : 0));
    }
}

static void sc_map(sc *s)
{
    enum { N = 16 };
    gather_pool *p = make_pool(s, 2);
    if (!p)
        return;
    slot sl[N];
    memset(sl, 0, sizeof sl);
    void *args[N];
    gather_result r[N];
    for (int i = 0; i < N; i++) {
        args[i] = &sl[i];
        r[i] = (gather_result){-1, NULL};
    }
    int snap_started[N], snap_finished[N];
    arm(s->mode, s->k);
    long before = failures_now();
    int rc = gather_map(p, task_slot, args, N, r, 0);
    s->tolerated += failures_during(rc, before);
    for (int i = 0; i < N; i++) {
        snap_finished[i] = atomic_load(&sl[i].finished);
        snap_started[i] = atomic_load(&sl[i].started);
    }
    disarm();
    check_map_outcome(s, rc, N, sl, r, snap_started, snap_finished);
    CHECK(s, gather_pool_destroy(p) == 0);
    check_map_after(s, N, sl, r, snap_started);
}

/* Off-pool waits on gated tasks: the wait record is allocated on this
 * (fresh) thread's first blocking wait. */
/* WAIT_GATHER_FOR: gather_futures_for() with GATHER_WAIT_ALL and a long
 * deadline (the hooked wait, its record allocated as gather_futures'). */
enum { WAIT_GATHER, WAIT_FUTURE, WAIT_ANY, WAIT_GATHER_FOR };

static void sc_wait_common(sc *s, int which)
{
    gather_pool *p = make_pool(s, 2);
    if (!p)
        return;
    tu_gate gate;
    tu_count started;
    tu_gate_init(&gate);
    tu_count_init(&started);
    tu_gated g[2];
    memset(g, 0, sizeof g);
    gather_future *f[2] = {NULL, NULL};
    for (int i = 0; i < 2; i++) {
        g[i].gate = &gate;
        g[i].started = &started;
        g[i].value = &g[i];
        CHECK(s, gather_submit(p, tu_task_gated, &g[i], &f[i]) == 0);
    }
    if (!f[0] || !f[1] || tu_count_wait(&started, 2) != 0) {
        CHECK(s, !"gated tasks did not start");
        tu_gate_open(&gate);
        gather_future_release(f[0]);
        gather_future_release(f[1]);
        gather_pool_destroy(p);
        tu_gate_destroy(&gate);
        tu_count_destroy(&started);
        return;
    }
    opener o = {.gate = &gate};
    gather_result r[2] = {{-1, NULL}, {-1, NULL}};
    void *v = &o; /* must stay untouched on ENOMEM */
    size_t index = 99;
    int rc;
    /* Both workers are busy (their tasks block on the gate before their
     * first allocation could matter): the first allocation attempt once
     * armed is the wait's own. */
    arm(s->mode, s->k);
    if (pthread_create(&o.tid, NULL, opener_main, &o) != 0) {
        disarm();
        CHECK(s, !"pthread_create");
        tu_gate_open(&gate);
        gather_futures(f, 2, NULL, 0);
        gather_future_release(f[0]);
        gather_future_release(f[1]);
        gather_pool_destroy(p);
        tu_gate_destroy(&gate);
        return;
    }
    if (which == WAIT_GATHER)
        rc = gather_futures(f, 2, r, 0);
    else if (which == WAIT_GATHER_FOR)
        rc = gather_futures_for(f, 2, r, GATHER_WAIT_ALL,
                                (uint64_t)TU_WATCHDOG_S * 1000000000u);
    else if (which == WAIT_FUTURE)
        rc = gather_future_wait(f[0], &v);
    else
        rc = gather_wait_any(f, 2, GATHER_FOREVER, &index);
    disarm();
    pthread_join(o.tid, NULL);
    CHECK(s, rc == 0 || rc == ENOMEM);
    if (rc == ENOMEM)
        s->enomem_seen++;
    if (rc == 0) {
        if (which == WAIT_GATHER || which == WAIT_GATHER_FOR) {
            CHECK(s, r[0].error == 0 && r[0].value == &g[0]);
            CHECK(s, r[1].error == 0 && r[1].value == &g[1]);
        } else if (which == WAIT_FUTURE) {
            CHECK(s, v == &g[0]);
        } else {
            CHECK(s, index < 2 && gather_future_done(f[index]));
        }
    } else if (which == WAIT_FUTURE) {
        CHECK(s, v == &o);
    } else if (which == WAIT_ANY) {
        CHECK(s, index == 99);
    }
    /* Unarmed, the same wait works. */
    CHECK(s, gather_futures(f, 2, r, 0) == 0);
    CHECK(s, r[0].value == &g[0] && r[1].value == &g[1]);
    for (int i = 0; i < 2; i++) {
        CHECK(s, atomic_load(&g[i].ran) == 1);
        gather_future_release(f[i]);
    }
    CHECK(s, gather_pool_destroy(p) == 0);
    tu_gate_destroy(&gate);
    tu_count_destroy(&started);
}

static void sc_wait_gather(sc *s)
{
    sc_wait_common(s, WAIT_GATHER);
}

static void sc_wait_future(sc *s)
{
    sc_wait_common(s, WAIT_FUTURE);
}

static void sc_wait_any(sc *s)
{
    sc_wait_common(s, WAIT_ANY);
}

static void sc_wait_gather_for(sc *s)
{
    sc_wait_common(s, WAIT_GATHER_FOR);
}

/* A task that submits subtasks and gathers them (helping wait, nested
 * records, the worker's deque), then runs a nested gather_map. */
enum { NSUB = 4, NMAP = 4 };

typedef struct nested_ctx {
    gather_pool *pool;
    slot subs[NSUB];
    int sub_rc[NSUB];
    gather_future *sub_f[NSUB];
    int gather_rc;
    gather_result gr[NSUB];
    int nsubmitted;
    int idx[NSUB];
    int all_done;
    slot map_sl[NMAP];
    gather_result map_r[NMAP];
    int map_rc;
    long map_tolerated;
    int map_snap_started[NMAP], map_snap_finished[NMAP];
} nested_ctx;

static int task_nested(void *arg, void **result)
{
    nested_ctx *c = arg;
    gather_future *list[NSUB];
    int n = 0;
    for (int i = 0; i < NSUB; i++) {
        c->sub_f[i] = NULL;
        c->sub_rc[i] = gather_submit(c->pool, task_slot, &c->subs[i], &c->sub_f[i]);
        if (c->sub_rc[i] == 0) {
            c->idx[n] = i;
            list[n++] = c->sub_f[i];
        }
    }
    c->nsubmitted = n;
    c->gather_rc = gather_futures(list, (size_t)n, c->gr, 0);
    /* Whatever it returned, wait (without allocating) for the subtasks: the
     * other worker can steal them. */
    int done = 1;
    for (int i = 0; i < n; i++)
        done &= poll_done(list[i]);
    c->all_done = done;

    void *args[NMAP];
    for (int i = 0; i < NMAP; i++) {
        args[i] = &c->map_sl[i];
        c->map_r[i] = (gather_result){-1, NULL};
    }
    long before = failures_now();
    c->map_rc = gather_map(c->pool, task_slot, args, NMAP, c->map_r, 0);
    c->map_tolerated = failures_during(c->map_rc, before);
    for (int i = 0; i < NMAP; i++) {
        c->map_snap_finished[i] = atomic_load(&c->map_sl[i].finished);
        c->map_snap_started[i] = atomic_load(&c->map_sl[i].started);
    }
    *result = c;
    return 0;
}

static void sc_nested(sc *s)
{
    gather_pool *p = make_pool(s, 2);
    if (!p)
        return;
    nested_ctx *c = calloc(1, sizeof *c); /* plain malloc: not the library's */
    if (!c) {
        gather_pool_destroy(p);
        return;
    }
    c->pool = p;
    gather_future *of = NULL;
    arm(s->mode, s->k);
    int rc = gather_submit(p, task_nested, c, &of);
    if (rc == 0)
        CHECK(s, poll_done(of));
    disarm();
    CHECK(s, rc == 0 || rc == ENOMEM);
    if (rc == ENOMEM)
        s->enomem_seen++;
    if (rc == 0) {
        void *v = NULL;
        CHECK(s, gather_future_wait(of, &v) == 0);
        CHECK(s, v == c);
        gather_future_release(of);
    }
    CHECK(s, gather_pool_destroy(p) == 0);
    if (rc == 0) {
        CHECK(s, c->all_done);
        for (int i = 0; i < NSUB; i++) {
            CHECK(s, c->sub_rc[i] == 0 || c->sub_rc[i] == ENOMEM);
            if (c->sub_rc[i] == ENOMEM)
                s->enomem_seen++;
            CHECK(s, atomic_load(&c->subs[i].started) == (c->sub_rc[i] == 0 ? 1 : 0));
        }
        CHECK(s, c->gather_rc == 0 || c->gather_rc == ENOMEM);
        if (c->gather_rc == ENOMEM)
            s->enomem_seen++;
        if (c->gather_rc == 0)
            for (int j = 0; j < c->nsubmitted; j++)
                CHECK(s, c->gr[j].error == 0 && c->gr[j].value == &c->subs[c->idx[j]]);
        for (int i = 0; i < NSUB; i++) {
            if (c->sub_f[i]) {
                CHECK(s, gather_future_done(c->sub_f[i]));
                gather_future_release(c->sub_f[i]);
            }
        }
        check_map_outcome(s, c->map_rc, NMAP, c->map_sl, c->map_r, c->map_snap_started,
                          c->map_snap_finished);
        s->tolerated += c->map_tolerated;
        check_map_after(s, NMAP, c->map_sl, c->map_r, c->map_snap_started);
    }
    free(c);
}

/* ---- a whole application in one run ------------------------------------------------- */

/*
 * Everything goes through the armed allocator: pool creation, submissions
 * from outside (with and without futures), two tasks that each submit
 * subtasks and gather them (waits that help on a worker), an aggregate of
 * those two tasks nested in an aggregate with three more, done callbacks,
 * an off-pool wait on the outer aggregate, gather_futures over every task,
 * gather_map, shutdown, a refused late submit, destroy. Whatever failed,
 * every call answers 0 or ENOMEM (ESHUTDOWN for the late submit), each task
 * ran exactly when its submission was accepted, each callback ran exactly
 * when it was added, and (run_faults) nothing leaked.
 */
enum { RP = 2, RSUB = 3, RLEAF = 3, RMAP = 4 };

typedef struct real_parent {
    slot self;
    slot subs[RSUB];
    int sub_rc[RSUB];
    int gather_rc;
    int results_ok; /* gather_futures' results belonged to the right subtasks */
} real_parent;

typedef struct real_run {
    real_parent parents[RP];
    slot leaves[RLEAF];
    slot detached;
    slot late; /* submitted after shutdown: never runs */
    slot map[RMAP];
    atomic_int callbacks;
} real_run;

/* A call under test answered 0 or ENOMEM (counted). */
#define CHECK_RC(s, rc)                                                                \
    do {                                                                               \
        int rc_ = (rc);                                                                \
        CHECKF(s, rc_ == 0 || rc_ == ENOMEM, "rc = %d", rc_);                          \
        if (rc_ == ENOMEM)                                                             \
            (s)->enomem_seen++;                                                        \
    } while (0)

static int task_real_parent(void *arg, void **result)
{
    real_parent *pa = arg;
    atomic_fetch_add(&pa->self.started, 1);
    gather_future *list[RSUB];
    int idx[RSUB];
    int n = 0;
    for (int i = 0; i < RSUB; i++) {
        gather_future *f = NULL;
        pa->sub_rc[i] = gather_submit(gather_current_pool(), task_slot, &pa->subs[i], &f);
        if (pa->sub_rc[i] == 0) {
            idx[n] = i;
            list[n++] = f;
        }
    }
    gather_result r[RSUB];
    pa->gather_rc = gather_futures(list, (size_t)n, r, 0);
    pa->results_ok = 1;
    if (pa->gather_rc == 0)
        for (int j = 0; j < n; j++)
            if (r[j].error != 0 || r[j].value != &pa->subs[idx[j]])
                pa->results_ok = 0;
    /* On ENOMEM the subtasks are released, not waited for: they still run
     * (destroy drains them), which the checks count. */
    for (int j = 0; j < n; j++)
        gather_future_release(list[j]);
    atomic_fetch_add(&pa->self.finished, 1);
    *result = pa;
    return 0;
}

static void cb_tally(gather_future *f, void *ud)
{
    (void)f;
    atomic_fetch_add(&((real_run *)ud)->callbacks, 1);
}

/* The outer aggregate's value: the inner aggregate's (the parents' results
 * in order: np entries), then the leaves' values. */
static void check_outer_value(sc *s, gather_result *res, size_t n, gather_future *const *list,
                              void *const *expect, gather_future *inner,
                              gather_future *const *parents, size_t np)
{
    CHECK(s, (n == 0) == (res == NULL));
    for (size_t j = 0; res != NULL && j < n; j++) {
        CHECKF(s, res[j].error == 0, "outer[%zu].error = %d", j, res[j].error);
        if (list[j] != inner) {
            CHECK(s, res[j].value == expect[j]);
            continue;
        }
        gather_result *in = res[j].value;
        CHECK(s, (in != NULL || np == 0) && in == gather_future_value(inner));
        for (size_t i = 0; in != NULL && i < np; i++)
            CHECK(s, in[i].error == 0 && in[i].value == gather_future_value(parents[i]));
    }
}

static void sc_realistic(sc *s)
{
    real_run *r = calloc(1, sizeof *r); /* plain malloc: not the library's */
    if (!r) {
        CHECK(s, !"calloc");
        return;
    }
    gather_pool_options o = {0};
    o.threads = 2;
    o.name = "realistic";
    gather_pool *p = (gather_pool *)r; /* must be reset */
    arm(s->mode, s->k);
    int rc = gather_pool_create(&p, &o);
    CHECK_RC(s, rc);
    if (rc != 0) {
        disarm();
        CHECK(s, p == NULL);
        free(r);
        return;
    }

    /* Submissions from outside the pool, and a done callback on each. */
    gather_future *pf[RP], *lf[RLEAF];
    int prc[RP], lrc[RLEAF];
    int cb_added = 0;
    for (int i = 0; i < RP; i++) {
        prc[i] = gather_submit(p, task_real_parent, &r->parents[i], &pf[i]);
        CHECK_RC(s, prc[i]);
        CHECK(s, (prc[i] == 0) == (pf[i] != NULL));
    }
    for (int i = 0; i < RLEAF; i++) {
        lrc[i] = gather_submit(p, task_slot, &r->leaves[i], &lf[i]);
        CHECK_RC(s, lrc[i]);
        CHECK(s, (lrc[i] == 0) == (lf[i] != NULL));
    }
    int drc = gather_submit(p, task_slot, &r->detached, NULL);
    CHECK_RC(s, drc);
    for (int i = 0; i < RP + RLEAF; i++) {
        gather_future *f = i < RP ? pf[i] : lf[i - RP];
        if (f) {
            int crc = gather_future_on_done(f, cb_tally, r);
            CHECK_RC(s, crc);
            cb_added += crc == 0;
        }
    }

    /* An aggregate of the parents, nested in one with the leaves. */
    gather_future *plist[RP];
    size_t np = 0;
    for (int i = 0; i < RP; i++)
        if (pf[i])
            plist[np++] = pf[i];
    gather_future *inner = NULL, *outer = NULL;
    int irc = gather_all(plist, np, GATHER_RETURN_ERRORS, &inner);
    CHECK_RC(s, irc);
    CHECK(s, (irc == 0) == (inner != NULL));
    gather_future *olist[1 + RLEAF];
    void *expect[1 + RLEAF];
    size_t no = 0;
    if (inner) {
        olist[no] = inner;
        expect[no++] = NULL; /* check_outer_value() looks inside */
    }
    for (int i = 0; i < RLEAF; i++) {
        if (lf[i]) {
            olist[no] = lf[i];
            expect[no++] = &r->leaves[i];
        }
    }
    int orc = gather_all(olist, no, 0, &outer);
    CHECK_RC(s, orc);
    CHECK(s, (orc == 0) == (outer != NULL));
    if (outer) {
        int crc = gather_future_on_done(outer, cb_tally, r);
        CHECK_RC(s, crc);
        cb_added += crc == 0;
        /* Off the pool: this thread's first blocking wait allocates its
         * wait record. */
        void *v = &o; /* untouched on ENOMEM */
        int wrc = gather_future_wait(outer, &v);
        CHECK_RC(s, wrc);
        if (wrc == ENOMEM) {
            CHECK(s, v == &o);
            CHECK(s, poll_done(outer));
            CHECK(s, gather_future_error(outer) == 0);
            v = gather_future_value(outer);
        }
        CHECK(s, v == gather_future_value(outer));
        check_outer_value(s, v, no, olist, expect, inner, plist, np);
    }

    /* gather_futures over every task future we hold. */
    gather_future *all[RP + RLEAF];
    void *want[RP + RLEAF];
    size_t na = 0;
    for (int i = 0; i < RP; i++)
        if (pf[i]) {
            want[na] = &r->parents[i];
            all[na++] = pf[i];
        }
    for (int i = 0; i < RLEAF; i++)
        if (lf[i]) {
            want[na] = &r->leaves[i];
            all[na++] = lf[i];
        }
    gather_result ar[RP + RLEAF];
    int grc = gather_futures(all, na, ar, 0);
    CHECK_RC(s, grc);
    for (size_t j = 0; grc == 0 && j < na; j++)
        CHECK(s, ar[j].error == 0 && ar[j].value == want[j]);

    /* gather_map; then shutdown, a late submit, destroy. */
    void *args[RMAP];
    gather_result mr[RMAP];
    for (int i = 0; i < RMAP; i++) {
        args[i] = &r->map[i];
        mr[i] = (gather_result){-1, NULL};
    }
    long before = failures_now();
    int mrc = gather_map(p, task_slot, args, RMAP, mr, 0);
    s->tolerated += failures_during(mrc, before);
    int snap_started[RMAP], snap_finished[RMAP];
    for (int i = 0; i < RMAP; i++) {
        snap_finished[i] = atomic_load(&r->map[i].finished);
        snap_started[i] = atomic_load(&r->map[i].started);
    }
    check_map_outcome(s, mrc, RMAP, r->map, mr, snap_started, snap_finished);
    CHECK(s, gather_pool_shutdown(p, 0) == 0);
    gather_future *late = (gather_future *)r;
    CHECK(s, gather_submit(p, task_slot, &r->late, &late) == ESHUTDOWN);
    CHECK(s, late == NULL);
    gather_future_release(inner);
    gather_future_release(outer);
    for (int i = 0; i < RP; i++)
        gather_future_release(pf[i]);
    for (int i = 0; i < RLEAF; i++)
        gather_future_release(lf[i]);
    CHECK(s, gather_pool_destroy(p) == 0);
    disarm();

    /* Drained: every accepted task ran once, no refused one ran. */
    int accepted = 0, ran = 0;
    for (int i = 0; i < RP; i++) {
        real_parent *pa = &r->parents[i];
        CHECK(s, atomic_load(&pa->self.started) == (prc[i] == 0));
        accepted += prc[i] == 0;
        ran += atomic_load(&pa->self.started);
        if (prc[i] != 0)
            continue;
        for (int j = 0; j < RSUB; j++) {
            CHECK_RC(s, pa->sub_rc[j]);
            CHECK(s, atomic_load(&pa->subs[j].started) == (pa->sub_rc[j] == 0));
            accepted += pa->sub_rc[j] == 0;
            ran += atomic_load(&pa->subs[j].started);
        }
        CHECK_RC(s, pa->gather_rc);
        CHECK(s, pa->results_ok);
    }
    for (int i = 0; i < RLEAF; i++) {
        CHECK(s, atomic_load(&r->leaves[i].started) == (lrc[i] == 0));
        accepted += lrc[i] == 0;
        ran += atomic_load(&r->leaves[i].started);
    }
    CHECK(s, atomic_load(&r->detached.started) == (drc == 0));
    accepted += drc == 0;
    ran += atomic_load(&r->detached.started);
    CHECK(s, atomic_load(&r->late.started) == 0);
    check_map_after(s, RMAP, r->map, mr, snap_started);
    for (int i = 0; i < RMAP; i++) {
        accepted += mr[i].error == 0;
        ran += atomic_load(&r->map[i].started);
    }
    CHECKF(s, ran == accepted, "%d tasks ran, %d accepted", ran, accepted);
    CHECKF(s, atomic_load(&r->callbacks) == cb_added, "%d callbacks ran, %d added",
           atomic_load(&r->callbacks), cb_added);
    free(r);
}

/* ---- tests ---------------------------------------------------------------------------- */

START_TEST(test_replace_allocator_before_first_pool)
{
    /* One NULL of the pair: EINVAL; the pair, and (NULL, NULL) to restore
     * malloc/free, are accepted before any pool exists. */
    ck_assert_int_eq(pre_half_malloc_rc, EINVAL);
    ck_assert_int_eq(pre_half_free_rc, EINVAL);
    ck_assert_int_eq(pre_install_rc, 0);
    ck_assert_int_eq(pre_restore_rc, 0);
    ck_assert_int_eq(pre_reinstall_rc, 0);
}
END_TEST

/* Create, submit, wait, gather_all, on_done, map, destroy: all through the
 * allocator, all returned. */
static void cb_noop(gather_future *f, void *ud)
{
    (void)f;
    atomic_fetch_add((atomic_int *)ud, 1);
}

static void sc_everything(sc *s)
{
    gather_pool *p = make_pool(s, 2);
    if (!p)
        return;
    enum { N = 6 };
    slot sl[N];
    memset(sl, 0, sizeof sl);
    gather_future *f[N];
    atomic_int cbs = 0;
    for (int i = 0; i < N; i++) {
        CHECK(s, gather_submit(p, task_slot, &sl[i], &f[i]) == 0);
        CHECK(s, gather_future_on_done(f[i], cb_noop, &cbs) == 0);
    }
    gather_future *agg = NULL;
    CHECK(s, gather_all(f, N, 0, &agg) == 0);
    CHECK(s, gather_future_wait(agg, NULL) == 0);
    gather_result r[N];
    CHECK(s, gather_futures(f, N, r, 0) == 0);
    void *args[N];
    for (int i = 0; i < N; i++)
        args[i] = &sl[i];
    CHECK(s, gather_map(p, task_slot, args, N, r, 0) == 0);
    for (int i = 0; i < N; i++) {
        CHECK(s, r[i].value == &sl[i]);
        gather_future_release(f[i]);
    }
    gather_future_release(agg);
    CHECK(s, gather_pool_destroy(p) == 0);
    CHECK(s, atomic_load(&cbs) == N);
}

START_TEST(test_every_allocation_goes_through_the_allocator)
{
    long base_live = atomic_load(&al_live);
    long base_allocs = atomic_load(&al_allocs);
    long base_frees = atomic_load(&al_frees);
    sc s;
    memset(&s, 0, sizeof s);
    run_once(sc_everything, &s);
    ck_assert_msg(s.msg[0] == '\0', "%s", s.msg);
    long allocs = atomic_load(&al_allocs) - base_allocs;
    long frees = atomic_load(&al_frees) - base_frees;
    ck_assert_int_gt(allocs, 0);
    ck_assert_int_eq(frees, allocs);
    ck_assert_int_eq(atomic_load(&al_live), base_live);
}
END_TEST

START_TEST(test_pool_create_fails_cleanly)
{
    run_faults("pool create", sc_create);
}
END_TEST

START_TEST(test_submit_fails_cleanly)
{
    run_faults("submit", sc_submit);
}
END_TEST

START_TEST(test_gather_all_fails_cleanly)
{
    run_faults("gather_all", sc_gather_all);
}
END_TEST

START_TEST(test_on_done_fails_cleanly)
{
    run_faults("on_done", sc_on_done);
}
END_TEST

START_TEST(test_gather_map_enomem_partway_finishes_submitted_tasks)
{
    run_faults("gather_map", sc_map);
}
END_TEST

START_TEST(test_off_pool_gather_futures_wait_record_fails_cleanly)
{
    run_faults("gather_futures off-pool", sc_wait_gather);
}
END_TEST

START_TEST(test_off_pool_gather_futures_for_wait_record_fails_cleanly)
{
    run_faults("gather_futures_for off-pool", sc_wait_gather_for);
}
END_TEST

START_TEST(test_off_pool_future_wait_record_fails_cleanly)
{
    run_faults("gather_future_wait off-pool", sc_wait_future);
}
END_TEST

START_TEST(test_off_pool_wait_any_record_fails_cleanly)
{
    run_faults("gather_wait_any off-pool", sc_wait_any);
}
END_TEST

START_TEST(test_nested_gather_in_task_fails_cleanly)
{
    run_faults("nested gather", sc_nested);
}
END_TEST

START_TEST(test_realistic_application_fails_cleanly_at_every_allocation)
{
    run_faults("realistic", sc_realistic);
}
END_TEST

/* Last: it leaves a (destroyed) pool behind in this process. */
START_TEST(test_replace_allocator_is_ebusy_once_a_pool_existed)
{
    gather_pool *p = NULL;
    ck_assert_int_eq(gather_pool_create(&p, NULL), 0);
    ck_assert_int_eq(gather_replace_allocator(counting_malloc, counting_free), EBUSY);
    ck_assert_int_eq(gather_replace_allocator(NULL, NULL), EBUSY);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    /* Even after the pool is gone. */
    ck_assert_int_eq(gather_replace_allocator(counting_malloc, counting_free), EBUSY);
    ck_assert_int_eq(gather_replace_allocator(NULL, NULL), EBUSY);
    /* Argument checks come first. */
    ck_assert_int_eq(gather_replace_allocator(counting_malloc, NULL), EINVAL);
    ck_assert_int_eq(gather_replace_allocator(NULL, counting_free), EINVAL);
    /* The counting allocator is still the one in use. */
    long base = atomic_load(&al_allocs);
    long live = atomic_load(&al_live);
    ck_assert_int_eq(gather_pool_create(&p, NULL), 0);
    ck_assert_int_gt(atomic_load(&al_allocs), base);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    ck_assert_int_eq(atomic_load(&al_live), live);
}
END_TEST

/* ---- thread creation failures ---------------------------------------------------------- */

START_TEST(test_failed_thread_start_leaves_allocator_replaceable)
{
    /* main() made a 2-thread pool whose second thread failed to start,
     * before any pool existed: no pool was created, the first thread was
     * joined, every block returned, and the allocator is not frozen. */
    ck_assert_int_eq(pre_thread_fail_rc, EAGAIN);
    ck_assert_int_eq(pre_thread_fail_threads, 0);
    ck_assert_int_eq(pre_thread_fail_blocks, 0);
    ck_assert_int_eq(pre_after_thread_fail_replace_rc, 0);
}
END_TEST

START_TEST(test_pool_create_thread_failure_is_eagain_and_joins_started_threads)
{
    static const size_t sizes[] = {1, 2, 4};
    for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++) {
        gather_pool_options o = {0};
        o.threads = sizes[t];
        for (int mode = FAULT_ONCE; mode <= FAULT_FROM; mode++) {
            for (long i = 0; i < (long)sizes[t]; i++) {
                long threads = atomic_load(&threads_live);
                long blocks = atomic_load(&al_live);
                gather_pool *p = (gather_pool *)&o; /* must be reset */
                pc_arm(mode, i);
                int rc = gather_pool_create(&p, &o);
                pc_disarm();
                ck_assert_msg(rc == EAGAIN, "%zu threads, thread %ld failed: rc %d", sizes[t], i,
                              rc);
                ck_assert_ptr_null(p);
                ck_assert_int_ge(atomic_load(&pc_failed), 1);
                /* Threads 0..i-1 were started: all joined when it returns. */
                ck_assert_msg(atomic_load(&threads_live) == threads,
                              "%zu threads, thread %ld failed: %ld left running", sizes[t], i,
                              atomic_load(&threads_live) - threads);
                ck_assert_msg(atomic_load(&al_live) == blocks,
                              "%zu threads, thread %ld failed: %ld blocks leaked", sizes[t], i,
                              atomic_load(&al_live) - blocks);
            }
        }
        /* Unarmed, the same request works. */
        long threads = atomic_load(&threads_live);
        gather_pool *p = tu_pool(sizes[t]);
        long running = atomic_load(&threads_live);
        ck_assert_int_eq(running, threads + (long)sizes[t]);
        slot sl = {0};
        gather_future *f = NULL;
        ck_assert_int_eq(gather_submit(p, task_slot, &sl, &f), 0);
        void *v = NULL;
        ck_assert_int_eq(gather_future_wait(f, &v), 0);
        ck_assert_ptr_eq(v, &sl);
        gather_future_release(f);
        ck_assert_int_eq(gather_pool_destroy(p), 0);
        running = atomic_load(&threads_live);
        ck_assert_int_eq(running, threads);
    }
}
END_TEST

/* Run in its own process (CK_FORK) or, with CK_FORK=no, before anything
 * else of this suite uses the default pool: nothing else here does. */
START_TEST(test_default_pool_thread_failure_is_reported_then_retried)
{
    enum { T = 3 };
    ck_assert_int_eq(setenv("GATHER_THREADS", "3", 1), 0);
    /* The default pool is elastic: T workers and the monitor (blocking.c)
     * that notices blocked ones; a failure to start any of them fails the
     * creation. */
    for (int mode = FAULT_ONCE; mode <= FAULT_FROM; mode++) {
        for (long i = 0; i < T + 1; i++) {
            long threads = atomic_load(&threads_live);
            long blocks = atomic_load(&al_live);
            slot sl = {0};
            gather_future *f = (gather_future *)&sl; /* must be reset */
            pc_arm(mode, i);
            int rc = gather_submit(NULL, task_slot, &sl, &f);
            if (mode == FAULT_FROM) {
                /* Every call that needs the default pool tries again, and
                 * fails again while threads cannot start. */
                ck_assert_uint_eq(gather_pool_threads(NULL), 0);
                gather_pool_stats st;
                ck_assert_int_eq(gather_pool_stats_get(NULL, &st), EAGAIN);
                void *args[2] = {&sl, &sl};
                gather_result res[2] = {{-1, NULL}, {-1, NULL}};
                ck_assert_int_eq(gather_map(NULL, task_slot, args, 2, res, 0), EAGAIN);
                ck_assert_int_eq(res[0].error, EAGAIN);
                ck_assert_int_eq(res[1].error, EAGAIN);
            }
            pc_disarm();
            ck_assert_msg(rc == EAGAIN, "thread %ld failed: rc %d", i, rc);
            ck_assert_ptr_null(f);
            ck_assert_int_eq(atomic_load(&sl.started), 0);
            ck_assert_msg(atomic_load(&threads_live) == threads, "thread %ld failed: %ld left running",
                          i, atomic_load(&threads_live) - threads);
            ck_assert_msg(atomic_load(&al_live) == blocks, "thread %ld failed: %ld blocks leaked",
                          i, atomic_load(&al_live) - blocks);
        }
    }
    /* The failure is not remembered: once threads start, the next call
     * creates the default pool. */
    long threads = atomic_load(&threads_live);
    slot sl = {0};
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(NULL, task_slot, &sl, &f), 0);
    void *v = NULL;
    ck_assert_int_eq(gather_future_wait(f, &v), 0);
    ck_assert_ptr_eq(v, &sl);
    gather_future_release(f);
    ck_assert_uint_eq(gather_pool_threads(NULL), T);
    long running = atomic_load(&threads_live);
    ck_assert_int_eq(running, threads + T + 1);
}
END_TEST

/* ---- steady state: no allocator call on the spawn/complete path ---------- */

/* ASan builds free every block, to catch use-after-free: no recycling. */
#define RECYCLING (!TU_ASAN)

static int task_fork_join(void *arg, void **result)
{
    intptr_t n = (intptr_t)arg;
    if (n < 2) {
        *result = (void *)n;
        return 0;
    }
    gather_future *child = NULL;
    int rc = gather_submit(gather_current_pool(), task_fork_join,
                           (void *)(n - 1), &child);
    if (rc != 0)
        return rc;
    void *b = NULL;
    task_fork_join((void *)(n - 2), &b);
    void *a = NULL;
    rc = gather_future_wait(child, &a);
    gather_future_release(child);
    *result = (void *)((intptr_t)a + (intptr_t)b);
    return rc;
}

static long fork_join_allocs(gather_pool *p)
{
    long before = atomic_load(&al_allocs);
    gather_future *root = NULL;
    ck_assert_int_eq(gather_submit(p, task_fork_join, (void *)(intptr_t)16, &root), 0);
    void *v = NULL;
    ck_assert_int_eq(gather_future_wait(root, &v), 0);
    ck_assert_int_eq((intptr_t)v, 987); /* fib(16), 1596 spawns */
    gather_future_release(root);
    return atomic_load(&al_allocs) - before;
}

START_TEST(test_steady_state_spawns_make_no_allocator_calls)
{
    gather_pool *p = tu_pool(1);
    fork_join_allocs(p); /* warm-up: the worker's block cache fills */
    fork_join_allocs(p);
    long allocs = fork_join_allocs(p);
    if (RECYCLING)
        /* Of 1597 tasks, only the root's block (submitted from outside the
         * pool), and perhaps the outside waiter's wait record when the
         * previous run's completer has not yet let go of the spare one. */
        ck_assert_int_le(allocs, 2);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

/* ---- polls leave nothing behind ------------------------------------------ */

#define POLLS 20000

START_TEST(test_polls_run_in_constant_memory)
{
    gather_pool *p = tu_pool(1);
    tu_gate gate;
    tu_count started;
    tu_gate_init(&gate);
    tu_count_init(&started);
    tu_gated g = {.gate = &gate, .started = &started};
    enum { N = 16 };
    gather_future *fs[N];
    ck_assert_int_eq(gather_submit(p, tu_task_gated, &g, &fs[0]), 0);
    ck_assert_int_eq(tu_count_wait(&started, 1), 0);
    atomic_int ran = 0;
    for (int i = 1; i < N; i++) /* queued behind the gated task */
        ck_assert_int_eq(gather_submit(p, tu_task_count, &ran, &fs[i]), 0);
    size_t index;
    /* Warm-up: this thread's first timed wait makes its wait record. */
    ck_assert(!gather_future_wait_for(fs[0], 1000));
    ck_assert_int_eq(gather_wait_any(fs, N, 1000, &index), ETIMEDOUT);

    long live = atomic_load(&al_live), allocs = atomic_load(&al_allocs);
    /* A zero timeout only looks: no allocation at all. */
    for (int i = 0; i < POLLS; i++) {
        ck_assert(!gather_future_wait_for(fs[0], 0));
        ck_assert_int_eq(gather_wait_any(fs, N, 0, &index), ETIMEDOUT);
    }
    ck_assert_int_eq(atomic_load(&al_allocs), allocs);
    /* Short timeouts that arm and time out, again and again on the same
     * list: the thread keeps using the record still armed for it. */
    for (int i = 0; i < POLLS / 10; i++)
        ck_assert(!gather_future_wait_for(fs[0], 1000));
    for (int i = 0; i < POLLS / 10; i++)
        ck_assert_int_eq(gather_wait_any(fs, N, 1000, &index), ETIMEDOUT);
    /* Two lists in turn: at most a record for each, still a constant. */
    ck_assert_int_le(atomic_load(&al_live) - live, 2);
    ck_assert_int_le(atomic_load(&al_allocs) - allocs, 2);

    tu_gate_open(&gate);
    ck_assert_int_eq(gather_futures(fs, N, NULL, 0), 0);
    ck_assert_int_eq(atomic_load(&ran), N - 1);
    for (int i = 0; i < N; i++)
        gather_future_release(fs[i]);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    tu_gate_destroy(&gate);
    tu_count_destroy(&started);
}
END_TEST

int main(void)
{
    /* Before anything else of the library runs. */
    pre_half_malloc_rc = gather_replace_allocator(counting_malloc, NULL);
    pre_half_free_rc = gather_replace_allocator(NULL, counting_free);
    pre_install_rc = gather_replace_allocator(counting_malloc, counting_free);
    pre_restore_rc = gather_replace_allocator(NULL, NULL);
    pre_reinstall_rc = gather_replace_allocator(counting_malloc, counting_free);
    /* A create that fails to start its second thread creates no pool, so
     * the allocator may still be replaced afterwards. */
    gather_pool_options two = {0};
    two.threads = 2;
    gather_pool *none = NULL;
    pc_arm(FAULT_ONCE, 1);
    pre_thread_fail_rc = gather_pool_create(&none, &two);
    pc_disarm();
    pre_thread_fail_threads = atomic_load(&threads_live);
    pre_thread_fail_blocks = atomic_load(&al_live);
    pre_after_thread_fail_replace_rc = gather_replace_allocator(counting_malloc, counting_free);

    Suite *s = suite_create("alloc");

    TCase *tc = tcase_create("install");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_replace_allocator_before_first_pool);
    tcase_add_test(tc, test_every_allocation_goes_through_the_allocator);
    suite_add_tcase(s, tc);

    tc = tcase_create("faults");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_pool_create_fails_cleanly);
    tcase_add_test(tc, test_submit_fails_cleanly);
    tcase_add_test(tc, test_gather_all_fails_cleanly);
    tcase_add_test(tc, test_on_done_fails_cleanly);
    tcase_add_test(tc, test_gather_map_enomem_partway_finishes_submitted_tasks);
    tcase_add_test(tc, test_off_pool_gather_futures_wait_record_fails_cleanly);
    tcase_add_test(tc, test_off_pool_gather_futures_for_wait_record_fails_cleanly);
    tcase_add_test(tc, test_off_pool_future_wait_record_fails_cleanly);
    tcase_add_test(tc, test_off_pool_wait_any_record_fails_cleanly);
    tcase_add_test(tc, test_nested_gather_in_task_fails_cleanly);
    tcase_add_test(tc, test_realistic_application_fails_cleanly_at_every_allocation);
    suite_add_tcase(s, tc);

    tc = tcase_create("threads");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_failed_thread_start_leaves_allocator_replaceable);
    tcase_add_test(tc, test_pool_create_thread_failure_is_eagain_and_joins_started_threads);
    tcase_add_test(tc, test_default_pool_thread_failure_is_reported_then_retried);
    suite_add_tcase(s, tc);

    tc = tcase_create("steady_state");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_steady_state_spawns_make_no_allocator_calls);
    tcase_add_test(tc, test_polls_run_in_constant_memory);
    suite_add_tcase(s, tc);

    tc = tcase_create("busy");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_replace_allocator_is_ebusy_once_a_pool_existed);
    suite_add_tcase(s, tc);

    return tu_run_suite(s);
}
