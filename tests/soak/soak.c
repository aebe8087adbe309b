/* SPDX-License-Identifier: MIT */
/*
 * soak.c - a randomized soak test of the whole public API.
 *
 *   soak [--seconds S] [--seed N] [--threads T] [--watchdog S]
 *
 * T driver threads (default 4) run random operations for S seconds (default
 * 10) on four shared pools (strict ones of one and three threads; elastic
 * ones of one and two threads, max_threads up to 8), the default pool
 * (elastic), and short-lived pools of their own (strict, one to four
 * threads, or elastic, one or two threads up to 2-8): submits, nested
 * fork-join tasks (depth up to 3), gather_futures in every mode, aggregates
 * (nested, cancelled), gather_map, cancels of pending and running tasks,
 * timed waits, gather_wait_any, completion queues (blocking and through
 * their descriptor), done callbacks, releases in any order (also
 * before completion), detached tasks, and shutdowns while busy, with and
 * without GATHER_CANCEL_PENDING. A quarter of the tracked tasks go through
 * gather_submit_ex (a random priority, GATHER_TASK_BLOCKING, value_free and
 * arg_free; gated tasks are never above NORMAL and plain ones never below,
 * so a task a driver waits for never queues behind a closed gate), and
 * their values are sometimes taken (gather_future_take). gather_then builds
 * trees of continuations across pools, cancels links before and while they
 * run, and hangs links on private pools from tasks elsewhere that end
 * around the pool's shutdown or destroy (refused with ESHUTDOWN). Each driver draws from its own PRNG derived
 * from the seed, which is printed first: --seed replays the same operations
 * (the interleaving of the threads differs from run to run).
 *
 * Tasks do a little random work, sometimes fail with a code, sometimes block
 * briefly, and some block on a gate that the driver opens (a "strict" gate:
 * while it is closed, the task can only end by being cancelled). Tasks also
 * block in the kernel the way IO does: a nanosleep of 0-2 ms, a blocking
 * read of a pipe that a feeder thread writes (one byte per reader, a little
 * later), a mutex that a holder thread keeps for up to 1.5 ms; some inside
 * gather_blocking_begin/end regions (around a sleep, nested, and around a
 * fork-join gather that helps). Pools are resized (gather_pool_resize) from
 * the drivers while their tasks block, from inside tasks, and from the
 * shutdown helper while the pool drains; invalid sizes must give EINVAL.
 *
 * What is checked (a violation prints what broke and the seed, and aborts):
 *   - every task body runs at most once, on the pool it was submitted to;
 *     every future completes exactly once (each carries a completion check,
 *     a done callback), after its task returned; a future completed
 *     without its task running was cancelled, and only where something
 *     could cancel it;
 *   - every result (wait, gather_futures, gather_all snapshots, gather_map)
 *     is the task's own record and its own code: input order kept, nothing
 *     lost, duplicated or swapped; return codes follow the mode;
 *   - a running task that is cancelled (directly, by CANCEL_ON_ERROR, by an
 *     aggregate, by a CANCEL_PENDING shutdown) sees gather_cancel_requested()
 *     and its future reports cancelled; a cancel that returns true completes
 *     the future before it returns, and that task never runs;
 *   - timed waits never give up early; gather_wait_any never names a task
 *     that cannot be done; done callbacks run once each, in order;
 *   - a shutdown returns only once every task of the pool is done; subtasks
 *     submitted during the drain run, or with GATHER_CANCEL_PENDING never
 *     run; afterwards the pool refuses work with ESHUTDOWN; futures stay
 *     readable after their pool is destroyed;
 *   - each pool's stats add up once it is drained: submitted == completed +
 *     cancelled, completed == the task bodies the test counted, cancelled ==
 *     the cancellations it saw;
 *   - threads and threads_peak (at any time) never exceed the largest
 *     max_threads ever set on the pool (a resize down may leave the peak
 *     above the new max, never above that one); a strict pool never
 *     resized reports threads == threads_peak == its size and no spares;
 *     every resize with valid sizes returns 0 or EAGAIN (ESHUTDOWN once its
 *     pool is shut down), and gather_pool_threads() then reports the new
 *     size; after the drain of an elastic pool its spares exit (threads
 *     falls back to its `threads` within the 10 s SPEC.md allows);
 *   - gather_submit_ex: arg_free runs exactly once per accepted task (never
 *     for a refused one), before its future completes and after its body
 *     returned; value_free runs exactly once per value nobody took (a
 *     value holds a reference to its record, given up by value_free or the
 *     taker, so a missed or second call is a leak or a broken record); a
 *     second take returns NULL; the counts balance at exit;
 *   - gather_then: fn runs once prev is done, on the link's pool, at most
 *     once, never after a cancel that returned true; a cancel of a link
 *     whose ancestry is pending returns true; a link on a pool that was
 *     shut down completes with ESHUTDOWN without running; gather_then and
 *     gather_submit_ex on a shut-down pool return ESHUTDOWN; links count in
 *     their pool's stats like tasks;
 *   - at exit every record, gate and aggregate tracker was freed (and
 *     LeakSanitizer, in AddressSanitizer builds, finds no leak).
 *
 * A watchdog aborts, printing what each driver was doing, when a driver
 * spends more than the watchdog time (default 30 s) in one operation: that
 * is a hang (a lost wake-up, a drain that never ends, a wait that never
 * returns).
 */
#include <gather.h>

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__GNUC__)
#define SOAK_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define SOAK_PRINTF(fmt, args)
#endif

#define MAX_DRIVERS 64
#define NESTED_FAILED 1010 /* a nested task whose children failed */

/* ---- configuration, failure reports ------------------------------------- */

static uint64_t cfg_seed;
static double cfg_seconds = 10;
static int cfg_threads = 4;
static double cfg_watchdog_s = 30;

static atomic_flag failing = ATOMIC_FLAG_INIT;

static void print_replay(FILE *out)
{
    fprintf(out, "soak: seed=%" PRIu64 " (replay: soak --seed %" PRIu64
            " --threads %d --seconds %g)\n",
            cfg_seed, cfg_seed, cfg_threads, cfg_seconds);
}

static _Noreturn void fail(const char *fmt, ...) SOAK_PRINTF(1, 2);

static void fail(const char *fmt, ...)
{
    /* One report: a second thread that fails waits for the first's abort. */
    if (atomic_flag_test_and_set(&failing))
        for (;;)
            nanosleep(&(struct timespec){1, 0}, NULL);
    va_list ap;
    fprintf(stderr, "soak: INVARIANT BROKEN: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    print_replay(stderr);
    fflush(stderr);
    abort();
}

#define CHECK(cond, ...)         \
    do {                         \
        if (!(cond))             \
            fail(__VA_ARGS__);   \
    } while (0)

typedef unsigned long long ull; /* for printf */

/* ---- random numbers, time ----------------------------------------------- */

typedef struct rng {
    uint64_t s;
} rng;

/* splitmix64: one 64-bit state, good enough streams from any seed. */
static uint64_t rnd(rng *g)
{
    uint64_t z = (g->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint32_t below(rng *g, uint32_t n)
{
    return (uint32_t)(rnd(g) % n);
}

static bool one_in(rng *g, uint32_t n)
{
    return below(g, n) == 0;
}

static void shuffled(size_t *idx, size_t n, rng *g)
{
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    for (size_t i = n; i > 1; i--) {
        size_t j = below(g, (uint32_t)i);
        size_t t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void nap_us(unsigned us)
{
    struct timespec ts = {0, (long)us * 1000};
    nanosleep(&ts, NULL);
}

/* Calls until cond(arg) holds, napping in between (the watchdog bounds it). */
static void await(bool (*cond)(void *), void *arg)
{
    while (!cond(arg))
        nap_us(200);
}

/* ---- counters for the report ------------------------------------------- */

enum op {
    OP_SUBMIT, OP_NESTED, OP_GATHER, OP_GATHER_ALL, OP_MAP, OP_CANCEL,
    OP_WAIT_FOR, OP_WAIT_ANY, OP_CALLBACKS, OP_RELEASE, OP_RESIZE,
    OP_CQ, OP_OPTIONS, OP_THEN, OP_PRIVATE_POOL, OP_COUNT
};

static const char *const op_names[OP_COUNT] = {
    "submit", "nested", "gather_futures", "gather_all", "gather_map",
    "cancel", "wait_for", "wait_any", "callbacks", "release_early",
    "resize", "completion_queue", "options_then", "then", "private_pool",
};

/* How often each op is drawn (out of the sum); inside a private pool the
 * last one is never drawn. */
static const unsigned op_weights[OP_COUNT] = {10, 8, 10, 8, 6, 8,
                                              5,  5,  6, 6, 5, 5, 5, 5, 4};

enum event {
    EV_TASK_RUN, EV_DETACHED_RUN, EV_FUTURE_DONE, EV_CANCEL_WON,
    EV_CANCEL_RUNNING, EV_TASK_SAW_CANCEL, EV_GATHER_FAIL_FAST,
    EV_GATHER_RETURN_ERRORS, EV_GATHER_CANCEL_ON_ERROR, EV_AGGREGATE,
    EV_AGGREGATE_CANCELLED, EV_MAP_TASK, EV_TIMEOUT, EV_CALLBACK,
    EV_POOL_CREATED, EV_SHUTDOWN_PLAIN, EV_SHUTDOWN_CANCEL, EV_DESTROY_BUSY,
    EV_REFUSED, EV_DRAIN_CHILD, EV_DEFAULT_POOL_OP,
    EV_BLOCK_SLEEP, EV_BLOCK_PIPE, EV_BLOCK_MUTEX, EV_BLOCK_REGION,
    EV_BLOCK_NESTED, EV_REGION_GATHER, EV_RESIZE_OUTSIDE, EV_RESIZE_INSIDE,
    EV_RESIZE_REFUSED, EV_RESIZE_INVALID, EV_ELASTIC_POOL, EV_SPARES_EXITED,
    EV_GATHER_WAIT_ALL, EV_GATHER_TIMED_OUT,
    EV_SUBMIT_EX, EV_SUBMIT_BLOCKING, EV_ARG_FREED, EV_VALUE_FREED,
    EV_VALUE_TAKEN, EV_THEN_LINK, EV_THEN_RAN, EV_THEN_CANCEL_WON,
    EV_THEN_REFUSED, EV_THEN_LATE,
    EV_COUNT
};

static const char *const ev_names[EV_COUNT] = {
    "task bodies run", "detached tasks run", "futures completed",
    "cancels of pending tasks", "cancels of running tasks",
    "tasks that saw a cancel request", "gathers fail-fast",
    "gathers RETURN_ERRORS", "gathers CANCEL_ON_ERROR", "aggregates",
    "aggregates cancelled", "gather_map tasks", "timed waits that expired",
    "extra done callbacks", "private pools", "shutdowns (plain, busy)",
    "shutdowns (CANCEL_PENDING, busy)", "destroys while busy",
    "submits refused after shutdown", "subtasks submitted during a drain",
    "ops on the default pool",
    "tasks blocked in nanosleep", "tasks blocked reading a pipe",
    "tasks blocked on a held mutex", "blocking regions", "nested regions",
    "fork-join gathers inside a region", "resizes from outside",
    "resizes from inside tasks", "resizes refused (ESHUTDOWN)",
    "resizes with invalid sizes", "private elastic pools",
    "elastic pools whose spares exited",
    "gathers with WAIT_ALL", "gather_futures_for that timed out",
    "tasks submitted with options", "... of them GATHER_TASK_BLOCKING",
    "arg_free calls", "value_free calls", "values taken",
    "continuations made", "continuations run",
    "continuations cancelled before running",
    "continuations refused (ESHUTDOWN)",
    "continuations on pools shut down",
};

static _Atomic uint64_t events[EV_COUNT];

static void count(enum event e)
{
    atomic_fetch_add_explicit(&events[e], 1, memory_order_relaxed);
}

/* Objects of the test that must all be freed at exit. */
static _Atomic long live_recs, live_gates, live_trackers;
static _Atomic uint64_t next_token;
static _Atomic uint64_t spin_sink; /* keeps the tasks' work from vanishing */
/* gather_submit_ex: what must balance at exit. */
static _Atomic uint64_t ex_args_armed, ex_args_freed;
static _Atomic uint64_t ex_values_made, ex_values_freed, ex_values_taken;

/* ---- pools as the test sees them --------------------------------------- */

/* What the test counts about one pool, to hold against its stats. */
typedef struct pool_ctx {
    gather_pool *pool;               /* NULL: the default pool */
    const char *name;
    _Atomic bool cancel_pending;     /* a CANCEL_PENDING shutdown began */
    _Atomic bool shut_begun;         /* a shutdown or destroy began */
    _Atomic uint64_t accepted;       /* tracked tasks known to be queued */
    _Atomic uint64_t runs;           /* tracked task bodies started */
    _Atomic uint64_t cancelled_seen; /* futures completed without running */
    _Atomic uint64_t detached_accepted, detached_runs;
    _Atomic uint64_t map_maybe;      /* gather_map entries cancelled, maybe
                                        never submitted */
    _Atomic uint64_t map_never_ran;  /* gather_map entries queued, never run */
    _Atomic long checks_pending;     /* completion checks not finished */
    /* Sizes (set before the pool is shared, then only raised). */
    size_t threads0;                 /* threads when created */
    bool elastic0;                   /* max_threads > threads when created */
    bool resizable;                  /* resizes with valid sizes allowed */
    _Atomic size_t max_ever;         /* the largest effective max_threads
                                        ever set: raised before each create
                                        or resize that sets it */
    _Atomic bool resized;            /* a valid resize was (maybe) made */
    _Atomic bool inside_resizes;     /* tasks of it may resize it */
    bool private_pool;               /* one driver's own */
} pool_ctx;

enum { N_SHARED = 4 }; /* strict 1 and 3 threads, elastic 1 and 2 */
static pool_ctx shared_ctx[N_SHARED];
static pool_ctx default_ctx;
static gather_pool *default_pool; /* as gather_current_pool() names it */

static uint64_t ld(_Atomic uint64_t *v)
{
    return atomic_load(v);
}

static void add(_Atomic uint64_t *v, uint64_t n)
{
    atomic_fetch_add(v, n);
}

/* ---- pool sizes --------------------------------------------------------- */

static size_t cpus; /* as the library counts them (threads == 0) */

static size_t count_cpus(void)
{
    size_t n = 0;
#if defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        n = (size_t)CPU_COUNT(&set);
#endif
    if (n == 0) {
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        n = online > 0 ? (size_t)online : 1;
    }
    return n > 1024 ? 1024 : n;
}

/* The effective sizes of (threads, max_threads) as gather.h defines them. */
static size_t eff_threads(size_t threads)
{
    return threads != 0 ? threads : cpus;
}

static size_t eff_max(size_t threads, size_t max)
{
    size_t t = eff_threads(threads);
    return max < t ? t : max;
}

/* Before a create or resize that may set (threads, max): no stats may count
 * more threads than the largest max ever set. */
static void raise_max_ever(pool_ctx *ctx, size_t threads, size_t max)
{
    size_t m = eff_max(threads, max);
    size_t old = atomic_load(&ctx->max_ever);
    while (old < m && !atomic_compare_exchange_weak(&ctx->max_ever, &old, m))
        ;
}

/* Sizes a driver or task picks for an elastic-capable pool: threads 1-2
 * (now and then 0, the CPUs, where they are few), max_threads 0 (strict)
 * or up to 8. */
static void pick_sizes(rng *g, size_t *threads, size_t *max)
{
    *threads = one_in(g, 8) && cpus <= 8 ? 0 : 1 + below(g, 2);
    size_t t = eff_threads(*threads);
    if (one_in(g, 4))
        *max = 0;
    else
        *max = t >= 8 ? t : t + below(g, (uint32_t)(8 - t + 1));
}

/*
 * A pool's thread counts against the sizes ever set, at any time: read the
 * stats first, then max_ever (a resize raises max_ever before it can start
 * a thread). `quiet`: no task runs and none is queued; the peak then counts
 * every live thread, once a start in flight is over (the monitor may still
 * start a spare it decided on before the drain: threads is counted before
 * the peak, so a read in between sees threads above the peak).
 */
static void check_sizes(pool_ctx *ctx, const gather_pool_stats *s, bool quiet)
{
    size_t max = atomic_load(&ctx->max_ever);
    /* Beyond max_threads only threads started for waits parked too deep to
     * help (SPEC.md, "No depth limit, no hang"; any pool, strict ones too),
     * each counted as a spare: a nested task on a small stack can do that
     * here, most of all under the sanitizers' larger frames. */
    uint64_t beyond = s->spares_started;
    CHECK(s->threads_peak <= max + beyond && s->threads <= max + beyond,
          "%s pool: threads %llu, peak %llu, but max_threads was never above "
          "%zu and only %llu spares started", ctx->name, (ull)s->threads,
          (ull)s->threads_peak, max, (ull)beyond);
    if (!ctx->elastic0 && !atomic_load(&ctx->resized))
        CHECK(s->threads <= ctx->threads0 + beyond &&
              s->threads_peak <= ctx->threads0 + beyond &&
              s->threads_peak >= ctx->threads0,
              "%s pool (strict, %zu threads, never resized): threads %llu, "
              "peak %llu, spares started %llu", ctx->name, ctx->threads0,
              (ull)s->threads, (ull)s->threads_peak, (ull)s->spares_started);
    if (!quiet || s->threads <= s->threads_peak)
        return;
    gather_pool_stats again = *s;
    for (int k = 0; k < 200 && again.threads > again.threads_peak; k++) {
        nap_us(5000);
        CHECK(gather_pool_stats_get(ctx->pool, &again) == 0, "stats");
    }
    CHECK(again.threads <= again.threads_peak,
          "%s pool, quiet: threads %llu above the peak %llu for 1 s",
          ctx->name, (ull)again.threads, (ull)again.threads_peak);
}

/* ---- gates -------------------------------------------------------------- */

/* A strict gate: tasks wait on it until the driver opens it. Shared by the
 * tasks of one operation, freed with the last record that uses it. */
typedef struct gate {
    _Atomic int open;
    _Atomic int refs;
} gate;

static gate *gate_new(void)
{
    gate *g = calloc(1, sizeof *g);
    CHECK(g != NULL, "out of memory");
    atomic_init(&g->open, 0);
    atomic_init(&g->refs, 1);
    atomic_fetch_add(&live_gates, 1);
    return g;
}

static gate *gate_ref(gate *g)
{
    atomic_fetch_add(&g->refs, 1);
    return g;
}

static void gate_release(gate *g)
{
    if (g != NULL && atomic_fetch_sub(&g->refs, 1) == 1) {
        free(g);
        atomic_fetch_sub(&live_gates, 1);
    }
}

static void gate_open(gate *g)
{
    atomic_store_explicit(&g->open, 1, memory_order_release);
}

static bool gate_is_open(gate *g)
{
    return atomic_load_explicit(&g->open, memory_order_acquire) != 0;
}

/* ---- task records ------------------------------------------------------- */

#define REC_MAGIC 0x5245434fu

/*
 * One per task: its plan (what it does), and what happened to it. The
 * task's value is always its own record, so every result names its task.
 * Reference-counted: the creator holds one, and each done callback on its
 * future one; the task body holds none (it runs before its future
 * completes, and a gather_map task's record is kept until it finished).
 */
typedef struct task_rec {
    uint32_t magic;
    _Atomic int refs;
    uint64_t token;
    pool_ctx *ctx;          /* the pool it is submitted to */
    uint64_t seed;          /* its own random choices (children) */
    /* The plan, fixed before the submit. */
    int plan;               /* code to return when nothing else happens */
    uint32_t work;          /* spin rounds */
    uint32_t block_us;      /* blocks this long (polling for a cancel) */
    gate *gate;             /* strict gate, or NULL */
    uint8_t depth;          /* > 0: submits and gathers children */
    bool polls_cancel;      /* returns ECANCELED once it sees a cancel */
    bool drain_kids;        /* after its gate: submits children to its own
                               pool, which is draining, and checks them */
    bool probe_shutdown;    /* its pool's shutdown from inside: EDEADLK */
    uint8_t blk;            /* enum blk: how it blocks in the kernel */
    uint32_t blk_us;        /* ... for this long (sleeps, regions) */
    bool region_gather;     /* depth > 0: gathers its children inside a
                               blocking region */
    bool resize_inside;     /* resizes its own pool to the sizes below */
    size_t rs_threads, rs_max;
    /* Set by the creator before it lets go of the record. */
    bool has_future;        /* the completion check is attached */
    _Atomic int cb_expected; /* ordered extra callbacks */
    _Atomic bool cancel_possible; /* something may cancel it */
    _Atomic bool cancel_won;      /* a cancel returned true */
    /* What happened. */
    _Atomic int runs, finished, completions, runs_at_completion;
    _Atomic int returned, saw_cancel;
    _Atomic int cb_next;    /* the next ordered callback's index */
    int map_flags;          /* gather_map: its flags, -1 for other tasks */
    /* gather_submit_ex: drawn by plan_plain, applied by submit_tracked. */
    bool ex;                /* submitted with options */
    int8_t ex_prio;         /* -1, 0, 1 as drawn (see submit_tracked) */
    bool ex_blocking, ex_value_free, ex_arg_free;
    bool ex_arg_armed;      /* accepted with arg_free: it must run once */
    _Atomic int arg_frees;
    /* gather_then: a continuation (fn is then_main) of then_prev. */
    bool is_link;
    const gather_future *then_prev; /* compared, never dereferenced */
    int map_reported;       /* gather_map: the entry's code at the return */
    uint64_t spin_out;
} task_rec;

static task_rec *rec_new(pool_ctx *ctx, uint64_t seed)
{
    task_rec *r = calloc(1, sizeof *r);
    CHECK(r != NULL, "out of memory");
    r->magic = REC_MAGIC;
    atomic_init(&r->refs, 1);
    r->token = atomic_fetch_add(&next_token, 1) + 1;
    r->ctx = ctx;
    r->seed = seed;
    r->map_flags = -1;
    atomic_fetch_add(&live_recs, 1);
    return r;
}

static task_rec *rec_ref(task_rec *r)
{
    atomic_fetch_add(&r->refs, 1);
    return r;
}

static void rec_check_magic(const task_rec *r, const char *where)
{
    CHECK(r != NULL && r->magic == REC_MAGIC,
          "%s: %p is not a live task record (freed, or not a record)", where,
          (const void *)r);
}

/* The last reference: what must hold for any task, whatever happened. */
static void rec_final_checks(task_rec *r)
{
    int runs = atomic_load(&r->runs);
    CHECK(runs <= 1, "task %llu ran %d times", (ull)r->token, runs);
    CHECK(runs == 0 || atomic_load(&r->finished) == 1,
          "task %llu: record freed while its body runs", (ull)r->token);
    if (r->has_future) {
        CHECK(atomic_load(&r->completions) == 1,
              "task %llu: its future completed %d times", (ull)r->token,
              atomic_load(&r->completions));
        CHECK(runs == atomic_load(&r->runs_at_completion),
              "task %llu ran after its future completed", (ull)r->token);
    }
    if (atomic_load(&r->cancel_won))
        CHECK(runs == 0, "task %llu ran although its cancel returned true",
              (ull)r->token);
    CHECK(atomic_load(&r->arg_frees) == (r->ex_arg_armed ? 1 : 0),
          "task %llu: arg_free called %d times (%s)", (ull)r->token,
          atomic_load(&r->arg_frees),
          r->ex_arg_armed ? "accepted with arg_free" : "no arg_free due");
    CHECK(atomic_load(&r->cb_next) == atomic_load(&r->cb_expected),
          "task %llu: %d of its %d done callbacks ran", (ull)r->token,
          atomic_load(&r->cb_next), atomic_load(&r->cb_expected));
}

static void rec_release(task_rec *r)
{
    rec_check_magic(r, "rec_release");
    if (atomic_fetch_sub(&r->refs, 1) != 1)
        return;
    rec_final_checks(r);
    atomic_fetch_add_explicit(&spin_sink, r->spin_out, memory_order_relaxed);
    gate_release(r->gate);
    r->magic = 0;
    free(r);
    atomic_fetch_sub(&live_recs, 1);
}

static bool cancel_expected(task_rec *r)
{
    return atomic_load(&r->cancel_possible) ||
           atomic_load(&r->ctx->cancel_pending);
}

static const int fail_codes[] = {EIO, EPERM, ENOENT, 1001, 1002, 1003};
#define N_FAIL_CODES (sizeof fail_codes / sizeof fail_codes[0])

static bool plausible_failure(int code)
{
    if (code == ECANCELED || code == NESTED_FAILED)
        return true;
    for (size_t i = 0; i < N_FAIL_CODES; i++)
        if (code == fail_codes[i])
            return true;
    return false;
}

/* How a task blocks in the kernel, besides polling naps and gates. */
enum blk {
    BLK_NONE,
    BLK_SLEEP,  /* nanosleep of blk_us (0-2 ms) */
    BLK_PIPE,   /* a blocking read of the pipe the feeder thread writes */
    BLK_MUTEX,  /* the mutex the holder thread keeps for up to 1.5 ms */
    BLK_REGION, /* gather_blocking_begin, a sleep, end */
    BLK_NESTED, /* begin, a sleep, begin, the held mutex or the pipe, end,
                   end */
    BLK_COUNT
};

static void plan_blocking(task_rec *r, rng *g, enum blk kind)
{
    r->blk = (uint8_t)kind;
    r->blk_us = below(g, 2001);
}

/* A task resizes its own pool (elastic-capable pools only). The largest
 * max it may set counts from now on, before it can run. */
static void plan_resize_inside(task_rec *r, rng *g)
{
    pool_ctx *ctx = r->ctx;
    r->resize_inside = true;
    pick_sizes(g, &r->rs_threads, &r->rs_max);
    atomic_store(&ctx->inside_resizes, true);
    atomic_store(&ctx->resized, true);
    raise_max_ever(ctx, r->rs_threads, r->rs_max);
}

/* A plain task: a little work, sometimes a failure, a short block. */
static void plan_plain(task_rec *r, rng *g)
{
    r->work = one_in(g, 4) ? 0 : below(g, 2000);
    r->plan = one_in(g, 6) ? fail_codes[below(g, N_FAIL_CODES)] : 0;
    r->polls_cancel = one_in(g, 2);
    if (one_in(g, 8))
        r->block_us = 20 + below(g, 1500);
    r->probe_shutdown = r->ctx->pool != NULL && one_in(g, 32);
    if (one_in(g, 4))
        plan_blocking(r, g, (enum blk)(1 + below(g, BLK_COUNT - 1)));
    r->region_gather = one_in(g, 3);
    if (r->ctx->resizable && one_in(g, 40))
        plan_resize_inside(r, g);
    if (one_in(g, 4)) {
        r->ex = true;
        r->ex_prio = (int8_t)((int)below(g, 3) - 1);
        r->ex_blocking = one_in(g, 3);
        r->ex_value_free = one_in(g, 2);
        r->ex_arg_free = one_in(g, 2);
    }
}

/* ---- the task body ------------------------------------------------------ */

static int cancelled_code(task_rec *r)
{
    atomic_store(&r->saw_cancel, 1);
    count(EV_TASK_SAW_CANCEL);
    return ECANCELED;
}

static uint64_t spin(uint32_t rounds, uint64_t x)
{
    rng g = {x};
    for (uint32_t i = 0; i < rounds; i++)
        x ^= rnd(&g);
    return x;
}

/* A task may not shut down or destroy its own pool. */
static void probe_own_shutdown(task_rec *r)
{
    gather_pool *p = gather_current_pool();
    CHECK(p == r->ctx->pool, "task %llu: current pool %p, submitted to %p",
          (ull)r->token, (void *)p, (void *)r->ctx->pool);
    int rc = gather_pool_shutdown(p, 0);
    CHECK(rc == EDEADLK, "shutdown of its own pool from a task: %d", rc);
    rc = gather_pool_destroy(p);
    CHECK(rc == EDEADLK, "destroy of its own pool from a task: %d", rc);
}

/* false: the task saw a cancel request while it waited. */
static bool pass_gate(task_rec *r, bool polls)
{
    while (!gate_is_open(r->gate)) {
        if (polls && gather_cancel_requested())
            return false;
        nap_us(50);
    }
    return true;
}

static bool block_briefly(task_rec *r)
{
    uint64_t until = now_ns() + (uint64_t)r->block_us * 1000;
    while (now_ns() < until) {
        if (r->polls_cancel && gather_cancel_requested())
            return false;
        nap_us(50);
    }
    return true;
}

/* ---- blocking in the kernel --------------------------------------------- */

/* The pipe: a reader counts itself in pipe_requested, then blocks in
 * read(); the feeder writes one byte per request, each after a short nap,
 * so a reader really waits in the kernel (the pipe is empty otherwise). */
static int pipe_fd[2];
static _Atomic uint64_t pipe_requested, pipe_written;
/* The held mutex: the holder thread keeps it locked for up to 1.5 ms at a
 * time. */
static pthread_mutex_t held_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic uint64_t held_sink;
static _Atomic bool stop_blockers;
static pthread_t feeder_thread, holder_thread;

static void *feeder_main(void *arg)
{
    rng g = {(uint64_t)(uintptr_t)arg};
    while (!atomic_load(&stop_blockers)) {
        if (atomic_load(&pipe_written) >= atomic_load(&pipe_requested)) {
            nap_us(100);
            continue;
        }
        nap_us(20 + below(&g, 400));
        char c = 'x';
        ssize_t n;
        do
            n = write(pipe_fd[1], &c, 1);
        while (n < 0 && errno == EINTR);
        CHECK(n == 1, "pipe write: %zd (errno %d)", n, errno);
        atomic_fetch_add(&pipe_written, 1);
    }
    return NULL;
}

static void *holder_main(void *arg)
{
    rng g = {(uint64_t)(uintptr_t)arg};
    while (!atomic_load(&stop_blockers)) {
        pthread_mutex_lock(&held_lock);
        nap_us(100 + below(&g, 1400));
        pthread_mutex_unlock(&held_lock);
        nap_us(50 + below(&g, 400));
    }
    return NULL;
}

static void start_blockers(uint64_t seed)
{
    CHECK(pipe(pipe_fd) == 0, "pipe: errno %d", errno);
    int rc = pthread_create(&feeder_thread, NULL, feeder_main,
                            (void *)(uintptr_t)(seed ^ 0xfeed));
    CHECK(rc == 0, "pthread_create: %d", rc);
    rc = pthread_create(&holder_thread, NULL, holder_main,
                        (void *)(uintptr_t)(seed ^ 0x401d));
    CHECK(rc == 0, "pthread_create: %d", rc);
}

/* Once every task is done: every reader got its byte. */
static void stop_blockers_now(void)
{
    atomic_store(&stop_blockers, true);
    pthread_join(feeder_thread, NULL);
    pthread_join(holder_thread, NULL);
    CHECK(atomic_load(&pipe_written) == atomic_load(&pipe_requested),
          "pipe: %llu bytes written for %llu readers",
          (ull)atomic_load(&pipe_written), (ull)atomic_load(&pipe_requested));
    close(pipe_fd[0]);
    close(pipe_fd[1]);
}

static void read_pipe(void)
{
    atomic_fetch_add(&pipe_requested, 1);
    char c = 0;
    ssize_t n;
    do
        n = read(pipe_fd[0], &c, 1);
    while (n < 0 && errno == EINTR);
    CHECK(n == 1 && c == 'x', "pipe read: %zd (errno %d)", n, errno);
}

static void take_held_lock(void)
{
    pthread_mutex_lock(&held_lock);
    atomic_fetch_add_explicit(&held_sink, 1, memory_order_relaxed);
    pthread_mutex_unlock(&held_lock);
}

/* The task blocks as planned; it stays on its pool throughout. */
static void block_in_kernel(task_rec *r)
{
    gather_pool *before = gather_current_pool();
    switch ((enum blk)r->blk) {
    case BLK_SLEEP:
        count(EV_BLOCK_SLEEP);
        nap_us(r->blk_us);
        break;
    case BLK_PIPE:
        count(EV_BLOCK_PIPE);
        read_pipe();
        break;
    case BLK_MUTEX:
        count(EV_BLOCK_MUTEX);
        take_held_lock();
        break;
    case BLK_REGION:
        count(EV_BLOCK_REGION);
        gather_blocking_begin();
        nap_us(r->blk_us);
        gather_blocking_end();
        break;
    case BLK_NESTED:
        count(EV_BLOCK_NESTED);
        gather_blocking_begin();
        nap_us(r->blk_us / 2);
        gather_blocking_begin();
        if (r->blk_us & 1)
            read_pipe();
        else
            take_held_lock();
        gather_blocking_end();
        gather_blocking_end();
        break;
    case BLK_NONE:
    case BLK_COUNT:
        break;
    }
    CHECK(gather_current_pool() == before,
          "task %llu: on pool %p after blocking, %p before", (ull)r->token,
          (void *)gather_current_pool(), (void *)before);
}

/* The task resizes its own pool (its ctx raised max_ever when planned). */
static void resize_from_inside(task_rec *r)
{
    gather_pool *p = gather_current_pool();
    CHECK(p == r->ctx->pool, "resizing task on the wrong pool");
    int rc = gather_pool_resize(p, r->rs_threads, r->rs_max);
    CHECK(rc == 0 || rc == EAGAIN || rc == ESHUTDOWN,
          "task %llu: resize of its pool (%zu, %zu): %d", (ull)r->token,
          r->rs_threads, r->rs_max, rc);
    count(rc == ESHUTDOWN ? EV_RESIZE_REFUSED : EV_RESIZE_INSIDE);
    /* Invalid sizes from a task: refused, nothing changes. */
    rc = gather_pool_resize(p, 3, 2);
    CHECK(rc == EINVAL, "resize (3, 2) from a task: %d", rc);
}

static int task_main(void *arg, void **result);
static int run_children(task_rec *parent);
static int drain_children(task_rec *parent);

static int task_work(task_rec *r)
{
    r->spin_out = spin(r->work, r->token);
    if (r->probe_shutdown)
        probe_own_shutdown(r);
    if (r->resize_inside)
        resize_from_inside(r);
    if (r->blk != BLK_NONE)
        block_in_kernel(r);
    if (r->gate != NULL && !pass_gate(r, r->polls_cancel && !r->drain_kids))
        return cancelled_code(r);
    if (r->block_us > 0 && !block_briefly(r))
        return cancelled_code(r);
    if (r->drain_kids)
        return drain_children(r);
    if (r->depth > 0)
        return run_children(r);
    if (r->polls_cancel && gather_cancel_requested())
        return cancelled_code(r);
    return r->plan;
}

static int task_main(void *arg, void **result)
{
    task_rec *r = arg;
    rec_check_magic(r, "task_main");
    CHECK(atomic_fetch_add(&r->runs, 1) == 0, "task %llu ran twice",
          (ull)r->token);
    CHECK(atomic_load(&r->completions) == 0,
          "task %llu started after its future completed", (ull)r->token);
    gather_pool *want = r->ctx->pool != NULL ? r->ctx->pool : default_pool;
    CHECK(gather_current_pool() == want,
          "task %llu runs on pool %p, submitted to %s pool %p", (ull)r->token,
          (void *)gather_current_pool(), r->ctx->name, (void *)want);
    atomic_fetch_add(&r->ctx->runs, 1);
    count(EV_TASK_RUN);
    int code = task_work(r);
    atomic_store(&r->returned, code);
    *result = r;
    /* release: the last touch of the record; whoever sees it may free it. */
    atomic_store_explicit(&r->finished, 1, memory_order_release);
    return code;
}

/* A detached task (no future): counts its run on its pool's context. */
static int detached_task(void *arg, void **result)
{
    pool_ctx *ctx = arg;
    uint64_t x = spin(200, (uint64_t)(uintptr_t)result);
    atomic_fetch_add_explicit(&spin_sink, x, memory_order_relaxed);
    *result = NULL;
    count(EV_DETACHED_RUN);
    atomic_fetch_add(&ctx->detached_runs, 1); /* the last touch of ctx */
    return (x & 7) == 0 ? EIO : 0;
}

/* ---- completion checks and submits -------------------------------------- */

/* The completion check: a done callback on every tracked future. */
static void on_task_done(gather_future *f, void *user_data)
{
    task_rec *r = user_data;
    rec_check_magic(r, "completion check");
    pool_ctx *ctx = r->ctx;
    CHECK(atomic_fetch_add(&r->completions, 1) == 0,
          "task %llu: its future completed twice", (ull)r->token);
    CHECK(gather_future_done(f), "task %llu: done callback before done",
          (ull)r->token);
    int err = gather_future_error(f);
    void *value = gather_future_value(f);
    bool cancelled = gather_future_cancelled(f);
    int runs = atomic_load(&r->runs);
    atomic_store(&r->runs_at_completion, runs);
    if (r->ex_arg_armed) /* before DONE, so before this callback */
        CHECK(atomic_load(&r->arg_frees) == 1,
              "task %llu completed, arg_free called %d times", (ull)r->token,
              atomic_load(&r->arg_frees));
    if (runs == 0 && r->is_link && err == ESHUTDOWN) {
        CHECK(value == NULL && !cancelled,
              "continuation %llu refused: value %p, cancelled %d",
              (ull)r->token, value, (int)cancelled);
        CHECK(atomic_load(&ctx->shut_begun),
              "continuation %llu refused, its %s pool was never shut down",
              (ull)r->token, ctx->name);
        count(EV_THEN_REFUSED);
        atomic_fetch_add(&ctx->cancelled_seen, 1);
    } else if (runs == 0) {
        CHECK(err == ECANCELED && value == NULL && cancelled,
              "task %llu completed without running: code %d, value %p, "
              "cancelled %d", (ull)r->token, err, value, (int)cancelled);
        CHECK(cancel_expected(r),
              "task %llu cancelled, but nothing could cancel it",
              (ull)r->token);
        atomic_fetch_add(&ctx->cancelled_seen, 1);
    } else {
        CHECK(atomic_load_explicit(&r->finished, memory_order_acquire) == 1,
              "task %llu: future completed while its body runs",
              (ull)r->token);
        CHECK(value == r, "task %llu: value %p is not its record",
              (ull)r->token, value);
        int returned = atomic_load(&r->returned);
        CHECK(err == returned, "task %llu returned %d, its future says %d",
              (ull)r->token, returned, err);
        /* Tasks return ECANCELED only after seeing a cancel request. */
        CHECK(cancelled == (err == ECANCELED),
              "task %llu returned %d after %s a cancel, cancelled() = %d",
              (ull)r->token, err,
              atomic_load(&r->saw_cancel) ? "seeing" : "not seeing",
              (int)cancelled);
        CHECK(!cancelled || cancel_expected(r),
              "task %llu saw a cancel nothing could make", (ull)r->token);
    }
    count(EV_FUTURE_DONE);
    atomic_fetch_sub(&ctx->checks_pending, 1); /* the last touch of ctx */
    rec_release(r);
}

static void watch_completion(gather_future *f, task_rec *r)
{
    r->has_future = true;
    atomic_fetch_add(&r->ctx->checks_pending, 1);
    int rc = gather_future_on_done(f, on_task_done, rec_ref(r));
    CHECK(rc == 0, "gather_future_on_done: %d", rc);
}

/* Submits r with a future and its completion check. NULL with *refused set
 * when the pool refused it (allowed only where the caller says so). */
/* gather_submit_ex's hooks. arg_free: once per accepted task, after its
 * body returned (or without it), before its future completes (the record
 * is alive then: its completion check holds a reference). */
static void ex_arg_free(void *arg)
{
    task_rec *r = arg;
    rec_check_magic(r, "arg_free");
    CHECK(atomic_fetch_add(&r->arg_frees, 1) == 0,
          "task %llu: arg_free called twice", (ull)r->token);
    CHECK(atomic_load(&r->completions) == 0,
          "task %llu: arg_free after its future completed", (ull)r->token);
    CHECK(atomic_load(&r->runs) == 0 ||
              atomic_load_explicit(&r->finished, memory_order_acquire) == 1,
          "task %llu: arg_free while its body runs", (ull)r->token);
    atomic_fetch_add(&ex_args_freed, 1);
    count(EV_ARG_FREED);
}

/* The body of a task with value_free: its value (the record) holds a
 * reference of its own, given up by value_free or by whoever takes it. */
static int ex_task_main(void *arg, void **result)
{
    task_rec *r = arg;
    rec_check_magic(r, "ex_task_main");
    rec_ref(r);
    atomic_fetch_add(&ex_values_made, 1);
    return task_main(r, result);
}

static void ex_value_free(void *value)
{
    task_rec *r = value;
    rec_check_magic(r, "value_free");
    CHECK(atomic_load(&r->completions) == 1,
          "task %llu: value_free with its future completed %d times",
          (ull)r->token, atomic_load(&r->completions));
    atomic_fetch_add(&ex_values_freed, 1);
    count(EV_VALUE_FREED);
    rec_release(r);
}

/* gather_future_take on a done future of r, once or twice. */
static void take_value(gather_future *f, task_rec *r, rng *g)
{
    void *v = gather_future_take(f);
    CHECK(v == gather_future_value(f), "task %llu: take gave %p, value %p",
          (ull)r->token, v, gather_future_value(f));
    if (one_in(g, 2))
        CHECK(gather_future_take(f) == NULL, "task %llu: a second take",
              (ull)r->token);
    if (v != NULL && r->ex && r->ex_value_free) { /* ours now */
        atomic_fetch_add(&ex_values_taken, 1);
        count(EV_VALUE_TAKEN);
        rec_release(v);
    }
}

static int submit_ex(task_rec *r, gather_future **f)
{
    gather_task_options o = {0};
    /* A gated task never overtakes a plain one (a driver may wait for the
     * plain task while the gate is closed, on a pool of one thread): gated
     * tasks are LOW or NORMAL, plain ones NORMAL or HIGH, and only plain
     * ones are blocking tasks. */
    int prio = r->ex_prio;
    if (r->gate != NULL ? prio > 0 : prio < 0)
        prio = GATHER_PRIORITY_NORMAL;
    o.priority = prio;
    if (r->gate == NULL && r->ex_blocking) {
        o.flags = GATHER_TASK_BLOCKING;
        count(EV_SUBMIT_BLOCKING);
    }
    if (r->ex_value_free)
        o.value_free = ex_value_free;
    if (r->ex_arg_free) {
        o.arg_free = ex_arg_free;
        r->ex_arg_armed = true; /* before it can run */
    }
    count(EV_SUBMIT_EX);
    int rc = gather_submit_ex(r->ctx->pool,
                              r->ex_value_free ? ex_task_main : task_main, r,
                              &o, f);
    if (rc != 0)
        r->ex_arg_armed = false; /* the caller still owns arg */
    else if (r->ex_arg_armed)
        atomic_fetch_add(&ex_args_armed, 1);
    return rc;
}

static gather_future *submit_tracked(task_rec *r, int *refused)
{
    gather_future *f = (gather_future *)&f; /* must be overwritten */
    int rc = r->ex ? submit_ex(r, &f)
                   : gather_submit(r->ctx->pool, task_main, r, &f);
    if (rc != 0) {
        CHECK(f == NULL, "gather_submit failed (%d) but set *future", rc);
        CHECK(refused != NULL && rc == ESHUTDOWN,
              "gather_submit to the %s pool: %d", r->ctx->name, rc);
        *refused = rc;
        count(EV_REFUSED);
        return NULL;
    }
    CHECK(f != NULL, "gather_submit returned 0 and no future");
    atomic_fetch_add(&r->ctx->accepted, 1);
    watch_completion(f, r);
    return f;
}

static int submit_detached(pool_ctx *ctx)
{
    atomic_fetch_add(&ctx->detached_accepted, 1); /* before it can run */
    int rc = gather_submit(ctx->pool, detached_task, ctx, NULL);
    if (rc != 0)
        atomic_fetch_sub(&ctx->detached_accepted, 1);
    return rc;
}

/* ---- checking results --------------------------------------------------- */

/* One result of a wait or gather, held against the task's record. */
static void check_result(task_rec *r, gather_result res, const char *where)
{
    if (res.error == EINPROGRESS) {
        CHECK(res.value == NULL, "%s: task %llu in progress with a value",
              where, (ull)r->token);
        return;
    }
    if (res.value == NULL && r->is_link && res.error == ESHUTDOWN) {
        CHECK(atomic_load(&r->runs) == 0 && atomic_load(&r->ctx->shut_begun),
              "%s: continuation %llu refused, but it ran or its pool was "
              "never shut down", where, (ull)r->token);
        return;
    }
    if (res.value == NULL) {
        CHECK(res.error == ECANCELED,
              "%s: task %llu: code %d and no value (a task that ran always "
              "has its record as value)", where, (ull)r->token, res.error);
        CHECK(atomic_load(&r->runs) == 0,
              "%s: task %llu reported cancelled before it ran, but it ran",
              where, (ull)r->token);
        CHECK(cancel_expected(r),
              "%s: task %llu cancelled, but nothing could cancel it", where,
              (ull)r->token);
        return;
    }
    CHECK(res.value == r,
          "%s: task %llu: value %p is not its record %p (a result lost, "
          "duplicated or out of order)", where, (ull)r->token, res.value,
          (void *)r);
    CHECK(atomic_load_explicit(&r->finished, memory_order_acquire) == 1,
          "%s: task %llu reported done while its body runs", where,
          (ull)r->token);
    int returned = atomic_load(&r->returned);
    CHECK(res.error == returned, "%s: task %llu returned %d, reported %d",
          where, (ull)r->token, returned, res.error);
}

/* The results and code of gather_futures (or gather_map) over recs. */
static void check_gathered(task_rec *const recs[], size_t n,
                           const gather_result *res, unsigned flags, int rc,
                           const char *where)
{
    if (flags & GATHER_RETURN_ERRORS)
        CHECK(rc == 0, "%s (RETURN_ERRORS) returned %d", where, rc);
    else
        CHECK(rc == 0 || plausible_failure(rc), "%s returned %d", where, rc);
    if (res == NULL)
        return;
    bool seen = false;
    for (size_t i = 0; i < n; i++) {
        check_result(recs[i], res[i], where);
        if (flags & (GATHER_RETURN_ERRORS | GATHER_WAIT_ALL))
            CHECK(res[i].error != EINPROGRESS,
                  "%s (RETURN_ERRORS or WAIT_ALL): entry %zu not done", where,
                  i);
        if (flags & GATHER_RETURN_ERRORS)
            continue;
        if (rc == 0)
            CHECK(res[i].error == 0, "%s returned 0, entry %zu has %d", where,
                  i, res[i].error);
        else if (res[i].error == rc)
            seen = true;
    }
    CHECK(rc == 0 || seen, "%s returned %d, which no entry holds", where, rc);
}

/* One of the three modes, with GATHER_WAIT_ALL one time in three. */
static unsigned pick_flags(rng *g)
{
    static const unsigned modes[] = {0, GATHER_RETURN_ERRORS,
                                     GATHER_CANCEL_ON_ERROR};
    unsigned flags = modes[below(g, 3)];
    return one_in(g, 3) ? flags | GATHER_WAIT_ALL : flags;
}

static void count_mode(unsigned flags)
{
    if (flags & GATHER_WAIT_ALL)
        count(EV_GATHER_WAIT_ALL);
    count(flags & GATHER_RETURN_ERRORS     ? EV_GATHER_RETURN_ERRORS
          : flags & GATHER_CANCEL_ON_ERROR ? EV_GATHER_CANCEL_ON_ERROR
                                           : EV_GATHER_FAIL_FAST);
}

static void release_all(gather_future **fs, task_rec **recs, size_t n, rng *g)
{
    size_t order[64];
    CHECK(n <= 64, "release_all: %zu", n);
    shuffled(order, n, g);
    for (size_t k = 0; k < n; k++) {
        gather_future_release(fs[order[k]]);
        if (recs != NULL)
            rec_release(recs[order[k]]);
    }
}

/* ---- nested tasks ------------------------------------------------------- */

#define MAX_KIDS 4

static bool any_failed(const gather_result *res, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (res[i].error != 0)
            return true;
    return false;
}

/* A nested task: submits 1..4 children (its own pool, sometimes the default
 * pool), some nested in turn, and gathers them in a random way. */
static int run_children(task_rec *parent)
{
    rng g = {parent->seed};
    size_t n = 1 + below(&g, MAX_KIDS);
    pool_ctx *ctx = one_in(&g, 6) ? &default_ctx : parent->ctx;
    /* 0-2: gather_futures, 3: one wait each, 4: gather_all */
    unsigned how = below(&g, 5);
    /* One wait per child amounts to RETURN_ERRORS. */
    unsigned flags = how == 3 ? GATHER_RETURN_ERRORS : pick_flags(&g);
    task_rec *kids[MAX_KIDS];
    gather_future *fs[MAX_KIDS];
    gather_result res[MAX_KIDS];
    for (size_t i = 0; i < n; i++) {
        kids[i] = rec_new(ctx, rnd(&g));
        plan_plain(kids[i], &g);
        if (parent->depth > 1 && one_in(&g, 2))
            kids[i]->depth = (uint8_t)(1 + below(&g, parent->depth - 1));
        if (flags & GATHER_CANCEL_ON_ERROR)
            atomic_store(&kids[i]->cancel_possible, true);
        fs[i] = submit_tracked(kids[i], NULL);
    }
    int rc;
    /* Fork-join inside a blocking region: the waits below help (run other
     * tasks on this thread) while the task counts as blocked. */
    bool region = parent->region_gather;
    if (region) {
        gather_blocking_begin();
        count(EV_REGION_GATHER);
    }
    if (how == 3) {
        size_t order[MAX_KIDS];
        shuffled(order, n, &g);
        for (size_t k = 0; k < n; k++) {
            size_t i = order[k];
            res[i].value = NULL;
            res[i].error = gather_future_wait(fs[i], &res[i].value);
        }
        rc = 0;
    } else if (how == 4) {
        gather_future *agg;
        rc = gather_all(fs, n, flags, &agg);
        CHECK(rc == 0, "gather_all in a task: %d", rc);
        void *snap = NULL;
        rc = gather_future_wait(agg, &snap);
        CHECK(snap != NULL, "nested gather_all: no snapshot");
        memcpy(res, snap, n * sizeof res[0]);
        gather_future_release(agg);
    } else {
        rc = gather_futures(fs, n, res, flags);
    }
    if (region)
        gather_blocking_end();
    count_mode(flags);
    check_gathered(kids, n, res, flags, rc, "nested gather");
    bool failed = any_failed(res, n);
    release_all(fs, kids, n, &g);
    if (parent->polls_cancel && gather_cancel_requested())
        return cancelled_code(parent);
    return failed ? NESTED_FAILED : parent->plan;
}

/* A task that passed its gate while its pool drains: its subtasks must be
 * accepted, and run, or with GATHER_CANCEL_PENDING be cancelled unrun. */
static int drain_children(task_rec *parent)
{
    rng g = {parent->seed};
    size_t n = 1 + below(&g, MAX_KIDS);
    gather_pool *own = gather_current_pool();
    CHECK(own == parent->ctx->pool, "drain task on the wrong pool");
    bool cancelling = atomic_load(&parent->ctx->cancel_pending);
    task_rec *kids[MAX_KIDS];
    gather_future *fs[MAX_KIDS];
    gather_result res[MAX_KIDS];
    for (size_t i = 0; i < n; i++) {
        kids[i] = rec_new(parent->ctx, rnd(&g));
        plan_plain(kids[i], &g);
        kids[i]->probe_shutdown = false;
        fs[i] = submit_tracked(kids[i], NULL); /* refused: a failure */
        count(EV_DRAIN_CHILD);
    }
    int rc = gather_futures(fs, n, res, GATHER_RETURN_ERRORS);
    check_gathered(kids, n, res, GATHER_RETURN_ERRORS, rc, "drain children");
    for (size_t i = 0; i < n; i++) {
        int runs = atomic_load(&kids[i]->runs);
        if (cancelling)
            CHECK(runs == 0 && res[i].error == ECANCELED,
                  "subtask %llu submitted during a CANCEL_PENDING drain ran "
                  "(runs %d, code %d)", (ull)kids[i]->token, runs,
                  res[i].error);
        else
            CHECK(runs == 1, "subtask %llu submitted during a drain never "
                  "ran (code %d)", (ull)kids[i]->token, res[i].error);
    }
    release_all(fs, kids, n, &g);
    return parent->plan;
}

/* ---- drivers ------------------------------------------------------------ */

enum deferred_kind { DEFER_QUEUED, DEFER_UNKNOWN };

typedef struct deferred {
    task_rec *rec;
    enum deferred_kind kind; /* queued for sure, or maybe never submitted */
} deferred;

typedef struct driver {
    int index;
    rng g;
    pthread_t thread;
    /* Read by the watchdog. */
    _Atomic uint64_t ops;
    _Atomic uint64_t op_since_ns;      /* start of the current op; 0: none */
    _Atomic(const char *) op_name;
    _Atomic(const char *) phase;
    _Atomic uint64_t op_seed;          /* the PRNG state the op began with */
    /* Owned by the driver (read by main after the join). */
    uint64_t op_counts[OP_COUNT];
    deferred *defer;                   /* gather_map records still in use */
    size_t ndefer, defer_cap;
} driver;

static driver drivers[MAX_DRIVERS];
static driver main_track; /* main's own phases, for the watchdog */
static _Atomic bool stop_drivers;

static void phase(driver *d, const char *what)
{
    atomic_store_explicit(&d->phase, what, memory_order_relaxed);
}

static void defer_rec(driver *d, task_rec *r, enum deferred_kind kind)
{
    if (d->ndefer == d->defer_cap) {
        d->defer_cap = d->defer_cap ? 2 * d->defer_cap : 64;
        d->defer = realloc(d->defer, d->defer_cap * sizeof *d->defer);
        CHECK(d->defer != NULL, "out of memory");
    }
    d->defer[d->ndefer].rec = r;
    d->defer[d->ndefer].kind = kind;
    d->ndefer++;
}

/* A gather_map task that ran and finished: it was accepted. */
static void settle_ran(task_rec *r)
{
    CHECK(atomic_load_explicit(&r->finished, memory_order_acquire) == 1,
          "map task %llu: settled while running", (ull)r->token);
    atomic_fetch_add(&r->ctx->accepted, 1);
    rec_release(r);
}

/* Frees deferred records whose tasks finished; with `drained` (a drained
 * pool), also those of that pool's context that never ran. */
static void reclaim(driver *d, pool_ctx *drained)
{
    size_t keep = 0;
    for (size_t i = 0; i < d->ndefer; i++) {
        deferred e = d->defer[i];
        task_rec *r = e.rec;
        if (atomic_load_explicit(&r->finished, memory_order_acquire)) {
            settle_ran(r);
        } else if (r->ctx == drained) {
            CHECK(atomic_load(&r->runs) == 0,
                  "map task %llu still running after its pool drained",
                  (ull)r->token);
            if (e.kind == DEFER_QUEUED) {
                CHECK(atomic_load(&drained->cancel_pending),
                      "map task %llu (%s pool, map flags %d, reported %d) "
                      "was queued and never ran, without a CANCEL_PENDING "
                      "shutdown", (ull)r->token, drained->name, r->map_flags,
                      r->map_reported);
                add(&drained->accepted, 1);
                add(&drained->map_never_ran, 1);
            } else {
                add(&drained->map_maybe, 1);
            }
            rec_release(r);
        } else {
            d->defer[keep++] = e;
        }
    }
    d->ndefer = keep;
}

static bool nothing_deferred(void *arg)
{
    driver *d = arg;
    reclaim(d, NULL);
    return d->ndefer == 0;
}

/* ---- op: submit, wait, release ------------------------------------------ */

static void check_waited(task_rec *r, gather_future *f, int rc, void *value,
                         const char *where)
{
    CHECK(gather_future_done(f), "%s: wait returned, future not done", where);
    CHECK(rc == gather_future_error(f), "%s: wait gave %d, error() %d", where,
          rc, gather_future_error(f));
    CHECK(value == gather_future_value(f), "%s: value differs from value()",
          where);
    check_result(r, (gather_result){rc, value}, where);
}

static void op_submit(driver *d, pool_ctx *ctx)
{
    enum { N = 8 };
    size_t n = 1 + below(&d->g, N);
    task_rec *recs[N];
    gather_future *fs[N];
    for (size_t i = 0; i < n; i++) {
        recs[i] = rec_new(ctx, rnd(&d->g));
        plan_plain(recs[i], &d->g);
        fs[i] = submit_tracked(recs[i], NULL);
    }
    phase(d, "submit: waiting");
    size_t order[N];
    shuffled(order, n, &d->g);
    for (size_t k = 0; k < n; k++) {
        size_t i = order[k];
        void *value = NULL;
        int rc;
        switch (below(&d->g, 3)) {
        case 0:
            rc = gather_future_wait(fs[i], &value);
            break;
        case 1:
            while (!gather_future_wait_for(fs[i], 1000000))
                ;
            rc = gather_future_error(fs[i]);
            value = gather_future_value(fs[i]);
            break;
        default: { /* through a second reference */
            gather_future *again = gather_future_retain(fs[i]);
            CHECK(again == fs[i], "retain returned another pointer");
            gather_future_release(fs[i]);
            rc = gather_future_wait(again, &value);
            fs[i] = again;
            break;
        }
        }
        check_waited(recs[i], fs[i], rc, value, "submit+wait");
        if (one_in(&d->g, 3))
            take_value(fs[i], recs[i], &d->g);
    }
    release_all(fs, recs, n, &d->g);
}

static void op_nested(driver *d, pool_ctx *ctx)
{
    enum { N = 3 };
    size_t n = 1 + below(&d->g, N);
    task_rec *recs[N];
    gather_future *fs[N];
    for (size_t i = 0; i < n; i++) {
        recs[i] = rec_new(ctx, rnd(&d->g));
        plan_plain(recs[i], &d->g);
        recs[i]->block_us = 0;
        recs[i]->depth = (uint8_t)(1 + below(&d->g, 3));
        fs[i] = submit_tracked(recs[i], NULL);
    }
    phase(d, "nested: waiting");
    for (size_t i = 0; i < n; i++) {
        void *value = NULL;
        int rc = gather_future_wait(fs[i], &value);
        check_waited(recs[i], fs[i], rc, value, "nested");
    }
    release_all(fs, recs, n, &d->g);
}

/* ---- op: gather_futures ------------------------------------------------- */

/*
 * A random list (duplicates allowed) gathered in a random mode. One variant
 * forces the cancel of running tasks: a failing task first, then tasks on a
 * strict gate that poll for a cancel, gathered with CANCEL_ON_ERROR. The
 * gate is never opened before the check, so they can only end cancelled.
 * (The failing task is ahead of them in the pool's queue, so it runs.)
 */
static void op_gather(driver *d, pool_ctx *ctx)
{
    enum { N = 10, M = N + 3 };
    size_t n = 1 + below(&d->g, N);
    unsigned flags = pick_flags(&d->g);
    bool strict = (flags & ~GATHER_WAIT_ALL) == GATHER_CANCEL_ON_ERROR &&
                  n >= 2 && one_in(&d->g, 2);
    /* Sometimes with a deadline of up to 200 us (gather_futures_for). */
    bool timed = one_in(&d->g, 4);
    uint64_t timeout_ns = (uint64_t)below(&d->g, 200) * 1000u;
    size_t gated = strict ? 1 + below(&d->g, 2) : 0;
    if (gated > n - 1)
        gated = n - 1;
    gate *gt = strict ? gate_new() : NULL;
    task_rec *recs[N];
    gather_future *fs[N];
    for (size_t i = 0; i < n; i++) {
        recs[i] = rec_new(ctx, rnd(&d->g));
        plan_plain(recs[i], &d->g);
        if (strict && i == 0) { /* fails at once */
            recs[i]->plan = fail_codes[below(&d->g, N_FAIL_CODES)];
            recs[i]->block_us = 0;
            recs[i]->blk = BLK_NONE;
            recs[i]->probe_shutdown = false;
        } else if (i <= gated && strict) {
            recs[i]->gate = gate_ref(gt);
            recs[i]->polls_cancel = true;
            recs[i]->block_us = 0;
        }
        if (flags & GATHER_CANCEL_ON_ERROR)
            atomic_store(&recs[i]->cancel_possible, true);
        fs[i] = submit_tracked(recs[i], NULL);
    }
    /* The list: every future, some twice, shuffled. */
    size_t m = n + below(&d->g, 4);
    gather_future *list[M];
    task_rec *lrecs[M];
    size_t order[M];
    shuffled(order, m, &d->g);
    for (size_t k = 0; k < m; k++) {
        size_t i = order[k] < n ? order[k] : below(&d->g, (uint32_t)n);
        list[k] = fs[i];
        lrecs[k] = recs[i];
    }
    gather_result res[M];
    bool with_results = !one_in(&d->g, 8);
    phase(d, "gather_futures: waiting");
    int rc = timed ? gather_futures_for(list, m, with_results ? res : NULL,
                                        flags, timeout_ns)
                   : gather_futures(list, m, with_results ? res : NULL, flags);
    count_mode(flags);
    if (timed && rc == ETIMEDOUT) {
        /* The snapshot at the deadline (after the cancels, with
         * CANCEL_ON_ERROR): entries in progress or true outcomes. */
        count(EV_GATHER_TIMED_OUT);
        for (size_t k = 0; with_results && k < m; k++)
            check_result(lrecs[k], res[k], "gather_futures_for (timed out)");
    } else {
        check_gathered(lrecs, m, with_results ? res : NULL, flags, rc,
                       timed ? "gather_futures_for" : "gather_futures");
    }
    if (strict) {
        CHECK(rc != 0, "gather_futures returned 0 with gated tasks pending");
        /* Every gated task was cancelled: pending ones completed, running
         * ones must see the request and return. */
        phase(d, "gather_futures: waiting for cancelled gated tasks");
        gather_result gres[2];
        rc = gather_futures(&fs[1], gated, gres, GATHER_RETURN_ERRORS);
        check_gathered(&recs[1], gated, gres, GATHER_RETURN_ERRORS, rc,
                       "gated after CANCEL_ON_ERROR");
        for (size_t i = 1; i <= gated; i++) {
            CHECK(gres[i - 1].error == ECANCELED &&
                  gather_future_cancelled(fs[i]),
                  "gather CANCEL_ON_ERROR: gated task %llu was not cancelled "
                  "(code %d)", (ull)recs[i]->token, gres[i - 1].error);
        }
        gate_open(gt);
        gate_release(gt);
    }
    release_all(fs, recs, n, &d->g);
}

/* ---- op: gather_all ----------------------------------------------------- */

/* Tracks one aggregate's completion (a done callback on it). */
typedef struct agg_track {
    _Atomic int refs;
    _Atomic int completions;
    _Atomic bool cancel_possible;
} agg_track;

static agg_track *track_new(void)
{
    agg_track *t = calloc(1, sizeof *t);
    CHECK(t != NULL, "out of memory");
    atomic_init(&t->refs, 1);
    atomic_fetch_add(&live_trackers, 1);
    return t;
}

static void track_release(agg_track *t)
{
    if (atomic_fetch_sub(&t->refs, 1) != 1)
        return;
    CHECK(atomic_load(&t->completions) == 1,
          "an aggregate completed %d times", atomic_load(&t->completions));
    free(t);
    atomic_fetch_sub(&live_trackers, 1);
}

static void on_agg_done(gather_future *f, void *user_data)
{
    agg_track *t = user_data;
    CHECK(atomic_fetch_add(&t->completions, 1) == 0,
          "an aggregate completed twice");
    CHECK(gather_future_done(f), "aggregate callback before done");
    if (gather_future_cancelled(f)) {
        CHECK(atomic_load(&t->cancel_possible),
              "an aggregate was cancelled, but nothing could cancel it");
        count(EV_AGGREGATE_CANCELLED);
    }
    track_release(t);
}

/* A done callback that gives up a reference taken for it. */
static void release_in_callback(gather_future *f, void *user_data)
{
    CHECK(f == user_data, "callback got another future");
    gather_future_release(user_data);
}

enum { AGG_LEAVES = 8, AGG_NODES = 4, AGG_KIDS = 5 };

typedef struct agg_node {
    gather_future *f;
    agg_track *track;
    unsigned flags;
    size_t n;
    gather_future *kids[AGG_KIDS];
    int kid_leaf[AGG_KIDS]; /* the leaf of entry k, or -1 */
    int kid_node[AGG_KIDS]; /* the aggregate of entry k, or -1 */
} agg_node;

typedef struct agg_tree {
    size_t nleaves, nnodes;
    task_rec *leaf_rec[AGG_LEAVES];
    gather_future *leaf[AGG_LEAVES];
    agg_node node[AGG_NODES];
} agg_tree;

static void mark_cancel(agg_tree *t, size_t j);

/* Everything beneath aggregate j may be cancelled (before it can be). */
static void mark_kids(agg_tree *t, size_t j)
{
    agg_node *a = &t->node[j];
    for (size_t k = 0; k < a->n; k++) {
        if (a->kid_leaf[k] >= 0)
            atomic_store(&t->leaf_rec[a->kid_leaf[k]]->cancel_possible, true);
        else
            mark_cancel(t, (size_t)a->kid_node[k]);
    }
}

static void mark_cancel(agg_tree *t, size_t j)
{
    atomic_store(&t->node[j].track->cancel_possible, true);
    mark_kids(t, j);
}

static void build_node(driver *d, agg_tree *t, size_t j)
{
    agg_node *a = &t->node[j];
    a->flags = pick_flags(&d->g);
    a->n = one_in(&d->g, 10) ? 0 : 1 + below(&d->g, AGG_KIDS);
    for (size_t k = 0; k < a->n; k++) {
        a->kid_leaf[k] = a->kid_node[k] = -1;
        if (j > 0 && one_in(&d->g, 3)) {
            a->kid_node[k] = (int)below(&d->g, (uint32_t)j);
            a->kids[k] = t->node[a->kid_node[k]].f;
        } else {
            a->kid_leaf[k] = (int)below(&d->g, (uint32_t)t->nleaves);
            a->kids[k] = t->leaf[a->kid_leaf[k]];
        }
    }
    a->track = track_new();
    if (a->flags & GATHER_CANCEL_ON_ERROR)
        mark_kids(t, j);
    int rc = gather_all(a->kids, a->n, a->flags, &a->f);
    CHECK(rc == 0 && a->f != NULL, "gather_all: %d", rc);
    count(EV_AGGREGATE);
    atomic_fetch_add(&a->track->refs, 1);
    rc = gather_future_on_done(a->f, on_agg_done, a->track);
    CHECK(rc == 0, "gather_future_on_done (aggregate): %d", rc);
    if (a->n == 0)
        CHECK(gather_future_done(a->f) && gather_future_error(a->f) == 0 &&
              gather_future_value(a->f) == NULL,
              "an empty aggregate is not done at once with 0 and NULL");
    if (one_in(&d->g, 4)) {
        rc = gather_future_on_done(a->f, release_in_callback,
                                   gather_future_retain(a->f));
        CHECK(rc == 0, "gather_future_on_done: %d", rc);
    }
}

/* An aggregate's code and snapshot, held against its children. */
static void check_node(agg_tree *t, size_t j, int rc, void *value)
{
    agg_node *a = &t->node[j];
    CHECK(gather_future_done(a->f), "aggregate waited for, not done");
    CHECK(rc == gather_future_error(a->f) &&
              value == gather_future_value(a->f),
          "aggregate: wait and error()/value() disagree");
    bool cancelled = gather_future_cancelled(a->f);
    if (cancelled)
        CHECK(rc == ECANCELED && atomic_load(&a->track->cancel_possible),
              "aggregate cancelled (code %d) though nothing could cancel it",
              rc);
    if (a->n == 0) {
        CHECK(rc == 0 && value == NULL, "empty aggregate: %d %p", rc, value);
        return;
    }
    CHECK(value != NULL, "aggregate of %zu without a snapshot", a->n);
    const gather_result *s = value;
    bool early = cancelled || (!(a->flags & (GATHER_RETURN_ERRORS |
                                             GATHER_WAIT_ALL)) && rc != 0);
    bool seen = false;
    for (size_t k = 0; k < a->n; k++) {
        if (s[k].error == EINPROGRESS) {
            CHECK(s[k].value == NULL, "snapshot: in progress with a value");
            CHECK(early, "aggregate (flags %u, code %d) completed with child "
                  "%zu in progress", a->flags, rc, k);
            continue;
        }
        gather_future *kid = a->kids[k];
        CHECK(gather_future_done(kid),
              "snapshot holds a result for child %zu, which is not done", k);
        CHECK(s[k].error == gather_future_error(kid) &&
              s[k].value == gather_future_value(kid),
              "snapshot entry %zu (%d, %p) is not its child's (%d, %p)", k,
              s[k].error, s[k].value, gather_future_error(kid),
              gather_future_value(kid));
        if (a->kid_leaf[k] >= 0)
            check_result(t->leaf_rec[a->kid_leaf[k]], s[k], "gather_all");
        if (!early && rc == 0 && !(a->flags & GATHER_RETURN_ERRORS))
            CHECK(s[k].error == 0, "aggregate returned 0, child %zu has %d",
                  k, s[k].error);
        if (s[k].error == rc)
            seen = true;
    }
    if (!cancelled && (a->flags & GATHER_RETURN_ERRORS))
        CHECK(rc == 0, "aggregate (RETURN_ERRORS) completed with %d", rc);
    if (!cancelled && rc != 0)
        CHECK(seen, "aggregate completed with %d, which no child has", rc);
}

static void cancel_node(agg_tree *t, size_t j)
{
    agg_node *a = &t->node[j];
    mark_cancel(t, j);
    bool was_done = gather_future_done(a->f);
    bool ok = gather_future_cancel(a->f);
    if (ok) {
        CHECK(!was_done, "cancel of a done aggregate returned true");
        CHECK(gather_future_done(a->f) &&
              gather_future_error(a->f) == ECANCELED &&
              gather_future_cancelled(a->f),
              "cancel of an aggregate returned true, but it is not cancelled");
        CHECK(a->n == 0 || gather_future_value(a->f) != NULL,
              "cancelled aggregate without a snapshot");
    }
    CHECK(!gather_future_cancel(a->f) || !ok,
          "a second cancel of an aggregate returned true");
}

static void op_gather_all(driver *d, pool_ctx *ctx)
{
    agg_tree t;
    memset(&t, 0, sizeof t);
    t.nleaves = 2 + below(&d->g, AGG_LEAVES - 1);
    for (size_t i = 0; i < t.nleaves; i++) {
        t.leaf_rec[i] = rec_new(ctx, rnd(&d->g));
        plan_plain(t.leaf_rec[i], &d->g);
        t.leaf[i] = submit_tracked(t.leaf_rec[i], NULL);
    }
    t.nnodes = 1 + below(&d->g, AGG_NODES);
    for (size_t j = 0; j < t.nnodes; j++)
        build_node(d, &t, j);
    if (one_in(&d->g, 3))
        cancel_node(&t, below(&d->g, (uint32_t)t.nnodes));
    phase(d, "gather_all: waiting");
    gather_future *nodes[AGG_NODES];
    for (size_t j = 0; j < t.nnodes; j++)
        nodes[j] = t.node[j].f;
    unsigned how = below(&d->g, 3);
    if (how == 0) { /* gather the aggregates themselves */
        gather_result res[AGG_NODES];
        int rc = gather_futures(nodes, t.nnodes, res, GATHER_RETURN_ERRORS);
        CHECK(rc == 0, "gather_futures over aggregates: %d", rc);
        for (size_t j = 0; j < t.nnodes; j++)
            check_node(&t, j, res[j].error, res[j].value);
    } else { /* (wait for any, then) each in turn */
        if (how == 1) {
            size_t idx = AGG_NODES;
            int rc = gather_wait_any(nodes, t.nnodes, GATHER_FOREVER, &idx);
            CHECK(rc == 0 && idx < t.nnodes && gather_future_done(nodes[idx]),
                  "gather_wait_any over aggregates: %d, index %zu", rc, idx);
        }
        size_t order[AGG_NODES];
        shuffled(order, t.nnodes, &d->g);
        for (size_t k = 0; k < t.nnodes; k++) {
            void *value = NULL;
            int rc = gather_future_wait(nodes[order[k]], &value);
            check_node(&t, order[k], rc, value);
        }
    }
    /* Release leaves and aggregates mixed, in a random order. */
    size_t all = t.nleaves + t.nnodes, order[AGG_LEAVES + AGG_NODES];
    shuffled(order, all, &d->g);
    for (size_t k = 0; k < all; k++) {
        if (order[k] < t.nleaves) {
            gather_future_release(t.leaf[order[k]]);
            rec_release(t.leaf_rec[order[k]]);
        } else {
            agg_node *a = &t.node[order[k] - t.nleaves];
            gather_future_release(a->f);
            track_release(a->track);
        }
    }
}

/* ---- op: gather_map ----------------------------------------------------- */

/* Settles one gather_map entry after the call: its record is freed now, or
 * kept until its task finished (or its pool drained). */
static void settle_map_entry(driver *d, task_rec *r, const gather_result *res,
                             unsigned flags)
{
    r->map_flags = (int)flags;
    r->map_reported = res != NULL ? res->error : -1;
    if (res == NULL) {
        if (atomic_load_explicit(&r->finished, memory_order_acquire)) {
            settle_ran(r);
        } else if (flags & GATHER_RETURN_ERRORS) {
            /* All waited for: it never ran, and never will. */
            CHECK(atomic_load(&r->runs) == 0, "map task %llu still running "
                  "after RETURN_ERRORS", (ull)r->token);
            add(&r->ctx->map_maybe, 1);
            rec_release(r);
        } else {
            defer_rec(d, r, DEFER_UNKNOWN);
        }
        return;
    }
    check_result(r, *res, "gather_map");
    if (res->error == EINPROGRESS)
        defer_rec(d, r, DEFER_QUEUED);
    else if (res->value == NULL) {
        add(&r->ctx->map_maybe, 1); /* cancelled: queued or not */
        rec_release(r);
    } else {
        settle_ran(r);
    }
}

static void op_map(driver *d, pool_ctx *ctx)
{
    size_t n = one_in(&d->g, 20) ? 250 + below(&d->g, 60)
                                  : 1 + below(&d->g, 24);
    unsigned flags = pick_flags(&d->g);
    /* Without results, entries of a fail-fast map cannot be told apart;
     * only on pools that are drained later (not the default pool). */
    bool with_results = !one_in(&d->g, 8) ||
                        (ctx->pool == NULL && !(flags & GATHER_RETURN_ERRORS));
    task_rec **recs = calloc(n, sizeof *recs);
    gather_result *res = calloc(n, sizeof *res);
    CHECK(recs != NULL && res != NULL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        recs[i] = rec_new(ctx, rnd(&d->g));
        plan_plain(recs[i], &d->g);
        if (n > 64) {
            recs[i]->block_us = 0;
            recs[i]->blk = BLK_NONE;
        }
        if (flags & GATHER_CANCEL_ON_ERROR)
            atomic_store(&recs[i]->cancel_possible, true);
    }
    phase(d, "gather_map: running");
    int rc = gather_map(ctx->pool, task_main, (void *const *)recs, n,
                        with_results ? res : NULL, flags);
    count_mode(flags);
    if (with_results)
        for (size_t i = 0; i < n; i++)
            CHECK(res[i].error == EINPROGRESS || res[i].value == recs[i] ||
                  (res[i].value == NULL && res[i].error == ECANCELED),
                  "gather_map: entry %zu: code %d, value %p (not its own)", i,
                  res[i].error, res[i].value);
    /* The code against the results (records are checked one by one). */
    if (flags & GATHER_RETURN_ERRORS)
        CHECK(rc == 0, "gather_map (RETURN_ERRORS) returned %d", rc);
    else
        CHECK(rc == 0 || plausible_failure(rc), "gather_map returned %d", rc);
    if (with_results) {
        bool seen = rc == 0;
        for (size_t i = 0; i < n; i++) {
            if (rc == 0 && !(flags & GATHER_RETURN_ERRORS))
                CHECK(res[i].error == 0, "gather_map returned 0, entry %zu "
                      "has %d", i, res[i].error);
            if (flags & (GATHER_RETURN_ERRORS | GATHER_WAIT_ALL))
                CHECK(res[i].error != EINPROGRESS, "gather_map "
                      "(RETURN_ERRORS or WAIT_ALL): entry %zu not done", i);
            if (res[i].error == rc)
                seen = true;
        }
        CHECK(seen, "gather_map returned %d, which no entry holds", rc);
    }
    for (size_t i = 0; i < n; i++) {
        count(EV_MAP_TASK);
        settle_map_entry(d, recs[i], with_results ? &res[i] : NULL, flags);
    }
    free(recs);
    free(res);
}

/* ---- op: cancel --------------------------------------------------------- */

/*
 * Tasks on a strict gate (they poll for a cancel) and plain ones; a random
 * subset is cancelled. A cancel that returns true must have completed the
 * future already (its completion check ran on this thread); a gated task
 * whose cancel returned false was running and must end cancelled without
 * its gate opening.
 */
static void op_cancel(driver *d, pool_ctx *ctx)
{
    enum { N = 9 };
    size_t plain = below(&d->g, 7), gated = 1 + below(&d->g, 3);
    size_t n = plain + gated;
    gate *gt = gate_new();
    task_rec *recs[N];
    gather_future *fs[N];
    bool chosen[N], was_cancelled_running[N];
    for (size_t i = 0; i < n; i++) {
        recs[i] = rec_new(ctx, rnd(&d->g));
        plan_plain(recs[i], &d->g);
        if (i < gated) {
            recs[i]->gate = gate_ref(gt);
            recs[i]->polls_cancel = true;
            recs[i]->block_us = 0;
        }
        fs[i] = submit_tracked(recs[i], NULL);
        chosen[i] = one_in(&d->g, 2);
        was_cancelled_running[i] = false;
    }
    if (one_in(&d->g, 2))
        nap_us(below(&d->g, 300)); /* let some start */
    phase(d, "cancel: cancelling");
    size_t order[N];
    shuffled(order, n, &d->g);
    for (size_t k = 0; k < n; k++) {
        size_t i = order[k];
        if (!chosen[i])
            continue;
        task_rec *r = recs[i];
        atomic_store(&r->cancel_possible, true);
        bool was_done = gather_future_done(fs[i]);
        bool ok = gather_future_cancel(fs[i]);
        if (ok) {
            atomic_store(&r->cancel_won, true);
            count(EV_CANCEL_WON);
            CHECK(!was_done, "cancel of a done future returned true");
            CHECK(gather_future_done(fs[i]) &&
                  gather_future_error(fs[i]) == ECANCELED &&
                  gather_future_value(fs[i]) == NULL &&
                  gather_future_cancelled(fs[i]),
                  "cancel returned true, future %llu not cancelled",
                  (ull)r->token);
            CHECK(atomic_load(&r->completions) == 1,
                  "cancel returned true before the future's callbacks ran");
            CHECK(atomic_load(&r->runs) == 0,
                  "cancel returned true for task %llu, which ran",
                  (ull)r->token);
        } else if (i < gated) {
            /* A gated task cannot be done: it was running. */
            was_cancelled_running[i] = true;
            count(EV_CANCEL_RUNNING);
        }
        CHECK(!gather_future_cancel(fs[i]) || !ok,
              "a second cancel returned true");
    }
    gate_open(gt); /* for those not cancelled */
    phase(d, "cancel: waiting");
    gather_result res[N];
    int rc = gather_futures(fs, n, res, GATHER_RETURN_ERRORS);
    check_gathered(recs, n, res, GATHER_RETURN_ERRORS, rc, "after cancels");
    for (size_t i = 0; i < gated; i++) {
        if (!was_cancelled_running[i])
            continue;
        /* Even if it saw the gate open before the request, it polls once
         * more before returning. */
        CHECK(res[i].error == ECANCELED && gather_future_cancelled(fs[i]),
              "running task %llu was cancelled, but ended with %d",
              (ull)recs[i]->token, res[i].error);
    }
    gate_release(gt);
    release_all(fs, recs, n, &d->g);
}

/* ---- op: continuations (gather_then) ------------------------------------- */

static pool_ctx *pick_pool(driver *d);

/* A continuation's fn: prev is done and borrowed; then the task body. */
static int then_main(gather_future *prev, void *arg, void **result)
{
    task_rec *r = arg;
    rec_check_magic(r, "then_main");
    CHECK(prev != NULL && prev == r->then_prev,
          "continuation %llu called with prev %p, made on %p", (ull)r->token,
          (void *)prev, (const void *)r->then_prev);
    CHECK(gather_future_done(prev) && gather_future_error(prev) != EINPROGRESS,
          "continuation %llu runs before its prev is done", (ull)r->token);
    count(EV_THEN_RAN);
    return task_main(r, result);
}

/* A tracked continuation of prev on ctx's pool; NULL with *refused when
 * the pool refused it (allowed only where the caller says so). */
static gather_future *then_tracked(driver *d, pool_ctx *ctx,
                                   gather_future *prev, task_rec **out,
                                   int *refused)
{
    task_rec *r = rec_new(ctx, rnd(&d->g));
    plan_plain(r, &d->g);
    r->ex = false;
    r->is_link = true;
    r->then_prev = prev;
    gather_future *f = (gather_future *)&f; /* must be overwritten */
    int rc = gather_then(prev, ctx->pool, then_main, r, &f);
    if (rc != 0) {
        CHECK(f == NULL, "gather_then failed (%d) but set *next", rc);
        CHECK(refused != NULL && rc == ESHUTDOWN,
              "gather_then on the %s pool: %d", ctx->name, rc);
        *refused = rc;
        rec_release(r);
        *out = NULL;
        return NULL;
    }
    CHECK(f != NULL, "gather_then returned 0 and no future");
    count(EV_THEN_LINK);
    atomic_fetch_add(&ctx->accepted, 1);
    watch_completion(f, r);
    *out = r;
    return f;
}

/* Cancels link i; `pending`: its ancestry cannot be done, so the cancel
 * must win. Returns whether it did. */
static bool cancel_link(gather_future *f, task_rec *r, bool pending)
{
    atomic_store(&r->cancel_possible, true);
    bool was_done = gather_future_done(f);
    bool ok = gather_future_cancel(f);
    CHECK(ok || !pending, "cancel of continuation %llu, whose prev cannot be "
          "done, returned false", (ull)r->token);
    if (!ok)
        return false;
    atomic_store(&r->cancel_won, true);
    count(EV_THEN_CANCEL_WON);
    CHECK(!was_done, "cancel of a done continuation returned true");
    CHECK(gather_future_done(f) && gather_future_error(f) == ECANCELED &&
              gather_future_value(f) == NULL && gather_future_cancelled(f) &&
              atomic_load(&r->completions) == 1 && atomic_load(&r->runs) == 0,
          "cancel of continuation %llu returned true, but it is not "
          "cancelled, its callbacks did not run, or it ran", (ull)r->token);
    return true;
}

/*
 * A tree of continuations: a task (behind a gate, half the time), and
 * links each on an earlier future (a chain, or several on one), on this
 * pool or another; some cancelled while the gate is closed (the cancel must
 * win where nothing before the link can be done) or after it opened; some
 * of the driver's references given up early. Then everything is gathered.
 */
static void op_then(driver *d, pool_ctx *ctx)
{
    enum { N = 8 };
    size_t n = 2 + below(&d->g, N - 1);
    gate *gt = one_in(&d->g, 2) ? gate_new() : NULL;
    task_rec *recs[N];
    gather_future *fs[N];
    bool cancelled[N] = {false};
    size_t parent[N] = {0};
    recs[0] = rec_new(ctx, rnd(&d->g));
    plan_plain(recs[0], &d->g);
    if (gt != NULL) {
        recs[0]->gate = gate_ref(gt);
        recs[0]->block_us = 0;
    }
    fs[0] = submit_tracked(recs[0], NULL);
    phase(d, "then: linking");
    for (size_t i = 1; i < n; i++) {
        parent[i] = below(&d->g, (uint32_t)i);
        if (one_in(&d->g, 3))
            parent[i] = i - 1; /* more chains */
        pool_ctx *lc = one_in(&d->g, 3) ? pick_pool(d) : ctx;
        fs[i] = then_tracked(d, lc, fs[parent[i]], &recs[i], NULL);
    }
    phase(d, "then: cancelling");
    if (gt != NULL && one_in(&d->g, 4)) { /* the first task itself */
        atomic_store(&recs[0]->cancel_possible, true);
        if (gather_future_cancel(fs[0]))
            atomic_store(&recs[0]->cancel_won, true);
        cancelled[0] = true;
    }
    size_t order[N];
    shuffled(order, n, &d->g);
    for (size_t k = 0; k < n; k++) {
        size_t i = order[k];
        if (i == 0 || !one_in(&d->g, 3))
            continue;
        /* Pending for sure: behind the closed gate, no cancel on the way. */
        bool sure = gt != NULL;
        for (size_t j = i; sure && j != 0; j = parent[j])
            sure = !cancelled[parent[j]];
        cancelled[i] = true;
        cancel_link(fs[i], recs[i], sure);
    }
    if (gt != NULL) {
        if (one_in(&d->g, 2))
            nap_us(below(&d->g, 200));
        gate_open(gt);
        gate_release(gt);
    }
    /* A few late cancels, racing with the links that run now. */
    for (size_t i = 1; i < n; i++)
        if (!cancelled[i] && one_in(&d->g, 6)) {
            cancelled[i] = true;
            cancel_link(fs[i], recs[i], false);
        }
    /* Some references given up before the links are done: a link keeps
     * its prev. */
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (i + 1 < n && one_in(&d->g, 5)) {
            gather_future_release(fs[i]);
            rec_release(recs[i]);
            continue;
        }
        fs[kept] = fs[i];
        recs[kept++] = recs[i];
    }
    phase(d, "then: gathering");
    gather_result res[N];
    int rc = gather_futures(fs, kept, res, GATHER_RETURN_ERRORS);
    check_gathered(recs, kept, res, GATHER_RETURN_ERRORS, rc, "then");
    release_all(fs, recs, kept, &d->g);
}

/* ---- ops: timed waits, wait_any ----------------------------------------- */

static const uint64_t short_timeouts[] = {0, 1000, 50000, 300000, 2000000};

static uint64_t pick_timeout(rng *g)
{
    return short_timeouts[below(g, sizeof short_timeouts /
                                       sizeof short_timeouts[0])];
}

/* A plain task submitted first, then a gated one: no timed wait on the gated
 * task may succeed while its gate is closed, nor end early. */
static void op_wait_for(driver *d, pool_ctx *ctx)
{
    gate *gt = gate_new();
    task_rec *recs[2];
    gather_future *fs[2];
    for (size_t i = 0; i < 2; i++) {
        recs[i] = rec_new(ctx, rnd(&d->g));
        plan_plain(recs[i], &d->g);
        recs[i]->polls_cancel = false;
        if (i == 1) {
            recs[i]->gate = gate_ref(gt);
            recs[i]->block_us = 0;
        }
        fs[i] = submit_tracked(recs[i], NULL);
    }
    phase(d, "wait_for: short timeouts on a gated task");
    for (int k = 0; k < 3; k++) {
        uint64_t t = pick_timeout(&d->g), t0 = now_ns();
        bool done = gather_future_wait_for(fs[1], t);
        uint64_t took = now_ns() - t0;
        CHECK(!done, "wait_for returned true on a task behind a closed gate");
        CHECK(gather_future_take(fs[1]) == NULL,
              "take on a task behind a closed gate returned a value");
        CHECK(took >= t, "wait_for(%llu ns) gave up after %llu ns", (ull)t,
              (ull)took);
        count(EV_TIMEOUT);
    }
    phase(d, "wait_for: the plain task");
    while (!gather_future_wait_for(fs[0], pick_timeout(&d->g)))
        ;
    check_result(recs[0], (gather_result){gather_future_error(fs[0]),
                                          gather_future_value(fs[0])},
                 "wait_for");
    gate_open(gt);
    gate_release(gt);
    phase(d, "wait_for: the opened task");
    CHECK(gather_future_wait_for(fs[1], GATHER_FOREVER),
          "wait_for(FOREVER) returned false");
    check_result(recs[1], (gather_result){gather_future_error(fs[1]),
                                          gather_future_value(fs[1])},
                 "wait_for");
    release_all(fs, recs, 2, &d->g);
}

/* Plain tasks first, then a gated one: wait_any must never name the gated
 * task while its gate is closed; once everything is done it names index 0. */
static void op_wait_any(driver *d, pool_ctx *ctx)
{
    enum { N = 6 };
    size_t n = 2 + below(&d->g, N - 1); /* the last is gated */
    gate *gt = gate_new();
    task_rec *recs[N];
    gather_future *fs[N];
    for (size_t i = 0; i < n; i++) {
        recs[i] = rec_new(ctx, rnd(&d->g));
        plan_plain(recs[i], &d->g);
        recs[i]->polls_cancel = false;
        if (i == n - 1) {
            recs[i]->gate = gate_ref(gt);
            recs[i]->block_us = 0;
        }
        fs[i] = submit_tracked(recs[i], NULL);
    }
    phase(d, "wait_any: the gated task alone");
    uint64_t t = pick_timeout(&d->g), t0 = now_ns();
    size_t idx = 99;
    int rc = gather_wait_any(&fs[n - 1], 1, t, &idx);
    uint64_t took = now_ns() - t0;
    CHECK(rc == ETIMEDOUT && idx == 99,
          "gather_wait_any on a gated task: %d, index %zu", rc, idx);
    CHECK(took >= t, "gather_wait_any(%llu ns) gave up after %llu ns", (ull)t,
          (ull)took);
    count(EV_TIMEOUT);
    phase(d, "wait_any: mixed list, gate closed");
    gather_future *list[N];
    size_t order[N];
    shuffled(order, n, &d->g);
    for (size_t k = 0; k < n; k++)
        list[k] = fs[order[k]];
    rc = gather_wait_any(list, n, GATHER_FOREVER, &idx);
    CHECK(rc == 0 && idx < n, "gather_wait_any: %d, index %zu", rc, idx);
    CHECK(list[idx] != fs[n - 1],
          "gather_wait_any named a task behind a closed gate");
    CHECK(gather_future_done(list[idx]), "gather_wait_any: entry not done");
    gate_open(gt);
    gate_release(gt);
    phase(d, "wait_any: all");
    rc = gather_futures(fs, n, NULL, GATHER_RETURN_ERRORS);
    CHECK(rc == 0, "gather_futures: %d", rc);
    rc = gather_wait_any(list, n, 0, &idx);
    CHECK(rc == 0 && idx == 0,
          "gather_wait_any over done futures: %d, index %zu (want 0)", rc,
          idx);
    for (size_t i = 0; i < n; i++)
        check_result(recs[i], (gather_result){gather_future_error(fs[i]),
                                              gather_future_value(fs[i])},
                     "wait_any");
    release_all(fs, recs, n, &d->g);
}

/* ---- op: completion queue ----------------------------------------------- */

/* Tasks added to a queue (one of them twice) while they run; drained by
 * blocking gather_cq_next() calls, or as an event loop does: poll the
 * descriptor, then gather_cq_next(cq, 0) until ETIMEDOUT. Each future comes
 * out as often as it was added, done, with its own result; afterwards the
 * descriptor is not readable. Sometimes the queue is destroyed while
 * futures are still pending (their tasks keep running). */
static void op_cq(driver *d, pool_ctx *ctx)
{
    enum { N = 6 };
    size_t n = 1 + below(&d->g, N);
    task_rec *recs[N];
    gather_future *fs[N];
    int added[N] = {0}, seen[N] = {0};
    gather_cq *cq;
    CHECK(gather_cq_create(&cq) == 0, "gather_cq_create");
    bool use_fd = one_in(&d->g, 2);
    int fd = -1;
    if (use_fd && one_in(&d->g, 2)) /* made before or after the adds */
        CHECK(gather_cq_fd(cq, &fd) == 0, "gather_cq_fd");
    for (size_t i = 0; i < n; i++) {
        recs[i] = rec_new(ctx, rnd(&d->g));
        plan_plain(recs[i], &d->g);
        recs[i]->polls_cancel = false;
        fs[i] = submit_tracked(recs[i], NULL);
        size_t times = one_in(&d->g, 4) ? 2 : 1;
        for (size_t k = 0; k < times; k++)
            CHECK(gather_cq_add(cq, fs[i], (void *)(uintptr_t)i) == 0, "gather_cq_add");
        added[i] = (int)times;
    }
    if (use_fd && fd < 0)
        CHECK(gather_cq_fd(cq, &fd) == 0, "gather_cq_fd");
    if (one_in(&d->g, 6)) {
        phase(d, "cq: destroy with futures pending");
        CHECK(gather_cq_destroy(cq) == 0, "gather_cq_destroy");
        CHECK(gather_futures(fs, n, NULL, GATHER_RETURN_ERRORS) == 0, "gather_futures");
        release_all(fs, recs, n, &d->g);
        return;
    }
    phase(d, use_fd ? "cq: poll and drain" : "cq: next until ENOENT");
    int rc = 0;
    gather_future *f;
    void *ud;
    while (rc != ENOENT) {
        if (use_fd) {
            struct pollfd pf = {.fd = fd, .events = POLLIN};
            CHECK(poll(&pf, 1, -1) == 1, "poll on the queue's descriptor");
            while ((rc = gather_cq_next(cq, 0, &f, &ud)) == 0) {
                size_t i = (size_t)(uintptr_t)ud;
                CHECK(i < n && f == fs[i] && gather_future_done(f), "cq: wrong future");
                seen[i]++;
                gather_future_release(f);
            }
            CHECK(rc == ETIMEDOUT || rc == ENOENT, "gather_cq_next(0): %d", rc);
        } else {
            rc = gather_cq_next(cq, GATHER_FOREVER, &f, &ud);
            if (rc == 0) {
                size_t i = (size_t)(uintptr_t)ud;
                CHECK(i < n && f == fs[i] && gather_future_done(f), "cq: wrong future");
                seen[i]++;
                gather_future_release(f);
            }
            CHECK(rc == 0 || rc == ENOENT, "gather_cq_next: %d", rc);
        }
    }
    if (use_fd) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        CHECK(poll(&pf, 1, 0) == 0, "the queue's descriptor is readable after ENOENT");
    }
    CHECK(gather_cq_destroy(cq) == 0, "gather_cq_destroy");
    for (size_t i = 0; i < n; i++) {
        CHECK(seen[i] == added[i], "cq: task %llu added %d times, handed out %d",
              (ull)recs[i]->token, added[i], seen[i]);
        check_result(recs[i], (gather_result){gather_future_error(fs[i]),
                                              gather_future_value(fs[i])},
                     "cq");
    }
    release_all(fs, recs, n, &d->g);
}

/* ---- op: task options and continuations -------------------------------- */

/*
 * Tasks with random options (priority, GATHER_TASK_BLOCKING, value_free,
 * arg_free) on the op's pool, some cancelled, some with a chain of one or
 * two continuations, some values taken. Once everything is over and every
 * reference released: arg_free ran exactly once for each accepted task that
 * has one (never for a refused one), value_free exactly once for each value
 * nobody took (a task that ran), never for a taken one; every continuation
 * ran after its prev, at most once.
 */
typedef struct opt_task {
    pool_ctx *ctx;
    atomic_int arg_freed;
    atomic_int value_freed;
    atomic_int ran;
    int code;
    bool has_arg_free, has_value_free, accepted, taken;
} opt_task;

static void opt_arg_free(void *arg)
{
    atomic_fetch_add(&((opt_task *)arg)->arg_freed, 1);
}

static void opt_value_free(void *value)
{
    atomic_fetch_add(&((opt_task *)value)->value_freed, 1);
}

static int opt_run(void *arg, void **result)
{
    opt_task *t = arg;
    add(&t->ctx->runs, 1);
    atomic_fetch_add(&t->ran, 1);
    *result = t;
    return t->code;
}

static int opt_link(gather_future *prev, void *arg, void **result)
{
    opt_task *t = arg;
    CHECK(gather_future_done(prev), "continuation ran before its prev was done");
    add(&t->ctx->runs, 1);
    CHECK(atomic_fetch_add(&t->ran, 1) == 0, "continuation ran twice");
    *result = NULL;
    return gather_future_error(prev);
}

typedef struct opt_batch {
    opt_task *t;
    size_t n;
} opt_batch;

static bool opt_all_freed(void *arg)
{
    opt_batch *b = arg;
    for (size_t i = 0; i < b->n; i++) {
        opt_task *t = &b->t[i];
        int want_arg = t->accepted && t->has_arg_free;
        int want_value = t->has_value_free && atomic_load(&t->ran) > 0 && !t->taken;
        if (atomic_load(&t->arg_freed) != want_arg ||
            atomic_load(&t->value_freed) != want_value)
            return false;
    }
    return true;
}

static void op_options(driver *d, pool_ctx *ctx)
{
    enum { N = 6, L = 2 * N };
    size_t n = 1 + below(&d->g, N);
    opt_task *ts = calloc(n, sizeof *ts);
    opt_task *ls = calloc(L, sizeof *ls);
    CHECK(ts != NULL && ls != NULL, "out of memory");
    gather_future *all[N + L];
    size_t at[N]; /* where each accepted task's future is in all[] */
    size_t na = 0, nl = 0;
    for (size_t i = 0; i < n; i++) {
        opt_task *t = &ts[i];
        t->ctx = ctx;
        gather_task_options o = {0};
        o.priority = (int)below(&d->g, 3) - 1;
        o.flags = one_in(&d->g, 4) ? GATHER_TASK_BLOCKING : 0;
        t->has_arg_free = one_in(&d->g, 2);
        t->has_value_free = one_in(&d->g, 2);
        o.arg_free = t->has_arg_free ? opt_arg_free : NULL;
        o.value_free = t->has_value_free ? opt_value_free : NULL;
        t->code = one_in(&d->g, 4) ? EIO : 0;
        gather_future *f = NULL;
        int rc = gather_submit_ex(ctx->pool, opt_run, t, &o, &f);
        CHECK(rc == 0 || rc == ESHUTDOWN, "gather_submit_ex: %d", rc);
        if (rc != 0)
            continue; /* refused: arg_free is not called */
        t->accepted = true;
        add(&ctx->accepted, 1);
        at[i] = na;
        all[na++] = f;
        if (one_in(&d->g, 3) && nl + 2 <= L) { /* a chain behind it */
            gather_future *prev = f;
            size_t links = 1 + below(&d->g, 2);
            for (size_t k = 0; k < links; k++) {
                gather_future *next = NULL;
                ls[nl].ctx = ctx;
                rc = gather_then(prev, ctx->pool, opt_link, &ls[nl], &next);
                CHECK(rc == 0 || rc == ESHUTDOWN, "gather_then: %d", rc);
                if (rc != 0)
                    break;
                add(&ctx->accepted, 1);
                nl++;
                all[na++] = next;
                prev = next;
            }
        }
        if (one_in(&d->g, 4))
            gather_future_cancel(one_in(&d->g, 2) ? f : all[na - 1]);
    }
    phase(d, "options: waiting");
    CHECK(gather_futures(all, na, NULL, GATHER_RETURN_ERRORS) == 0, "gather_futures");
    /* Each body that never ran was cancelled (or refused) by the pool. */
    for (size_t i = 0; i < n; i++)
        if (ts[i].accepted && atomic_load(&ts[i].ran) == 0)
            add(&ctx->cancelled_seen, 1);
    for (size_t j = 0; j < nl; j++)
        if (atomic_load(&ls[j].ran) == 0)
            add(&ctx->cancelled_seen, 1);
    for (size_t i = 0; i < n; i++) {
        opt_task *t = &ts[i];
        if (!t->accepted)
            continue;
        gather_future *f = all[at[i]];
        int ran = atomic_load(&t->ran);
        CHECK(ran <= 1, "task with options ran twice");
        CHECK(gather_future_value(f) == (ran ? (void *)t : NULL),
              "task with options: value %p, ran %d", gather_future_value(f), ran);
        if (ran == 1 && one_in(&d->g, 3)) {
            CHECK(gather_future_take(f) == (void *)t, "take");
            CHECK(gather_future_take(f) == NULL, "second take");
            t->taken = true;
        }
    }
    for (size_t i = 0; i < na; i++)
        gather_future_release(all[i]);
    phase(d, "options: destructors");
    opt_batch b = {ts, n};
    await(opt_all_freed, &b); /* the last reference may be a worker's */
    free(ts);
    free(ls);
}

/* ---- op: done callbacks ------------------------------------------------- */

typedef struct cb_node {
    task_rec *rec;
    int index;                /* its place in the order of adding */
    gather_future *release;   /* a reference to give up inside, or NULL */
    bool submit_detached;     /* submits a detached task to the default pool */
    _Atomic bool *ran_flag;   /* set when it runs (late callbacks) */
} cb_node;

static void on_done_ordered(gather_future *f, void *user_data)
{
    cb_node *c = user_data;
    task_rec *r = c->rec;
    rec_check_magic(r, "done callback");
    CHECK(gather_future_done(f), "done callback before done");
    CHECK(gather_future_cancel(f) == false, "cancel inside a done callback "
          "returned true");
    int next = atomic_fetch_add(&r->cb_next, 1);
    CHECK(next == c->index, "task %llu: done callback %d ran as number %d",
          (ull)r->token, c->index, next);
    if (c->release != NULL)
        gather_future_release(c->release);
    if (c->submit_detached) {
        int rc = submit_detached(&default_ctx);
        CHECK(rc == 0, "submit from a done callback: %d", rc);
    }
    if (c->ran_flag != NULL)
        atomic_store(c->ran_flag, true);
    count(EV_CALLBACK);
    free(c);
    rec_release(r);
}

static void add_ordered_callback(driver *d, gather_future *f, task_rec *r,
                                 _Atomic bool *ran_flag)
{
    cb_node *c = calloc(1, sizeof *c);
    CHECK(c != NULL, "out of memory");
    c->rec = rec_ref(r);
    c->index = atomic_fetch_add(&r->cb_expected, 1);
    c->release = one_in(&d->g, 3) ? gather_future_retain(f) : NULL;
    c->submit_detached = one_in(&d->g, 4);
    c->ran_flag = ran_flag;
    int rc = gather_future_on_done(f, on_done_ordered, c);
    CHECK(rc == 0, "gather_future_on_done: %d", rc);
}

/* Callbacks added while a strict gate holds the task run in the order they
 * were added (checked by each); one added after completion runs at once on
 * this thread. */
static void op_callbacks(driver *d, pool_ctx *ctx)
{
    gate *gt = gate_new();
    task_rec *r = rec_new(ctx, rnd(&d->g));
    plan_plain(r, &d->g);
    r->gate = gate_ref(gt);
    r->polls_cancel = false;
    gather_future *f = submit_tracked(r, NULL);
    int ncb = 1 + (int)below(&d->g, 5);
    for (int k = 0; k < ncb; k++)
        add_ordered_callback(d, f, r, NULL);
    gate_open(gt);
    gate_release(gt);
    phase(d, "callbacks: waiting");
    void *value = NULL;
    int rc = gather_future_wait(f, &value);
    check_waited(r, f, rc, value, "callbacks");
    _Atomic bool late_ran;
    atomic_init(&late_ran, false);
    /* cb_next may still lag (callbacks run after done): the late one's
     * index is the next one anyway, and it must run before on_done returns,
     * after the others. Wait until they did, so the order check holds. */
    phase(d, "callbacks: waiting for the callbacks");
    while (atomic_load(&r->cb_next) != atomic_load(&r->cb_expected))
        nap_us(20);
    add_ordered_callback(d, f, r, &late_ran);
    CHECK(atomic_load(&late_ran),
          "a callback added to a done future did not run at once");
    gather_future_release(f);
    rec_release(r);
}

/* ---- op: releases before completion, detached tasks --------------------- */

static void op_release(driver *d, pool_ctx *ctx)
{
    size_t n = 1 + below(&d->g, 8);
    for (size_t i = 0; i < n; i++) {
        if (one_in(&d->g, 3)) {
            int rc = submit_detached(ctx);
            CHECK(rc == 0, "detached submit to the %s pool: %d", ctx->name,
                  rc);
            continue;
        }
        task_rec *r = rec_new(ctx, rnd(&d->g));
        plan_plain(r, &d->g);
        if (one_in(&d->g, 4))
            r->depth = 1;
        gather_future *f = submit_tracked(r, NULL);
        switch (below(&d->g, 3)) {
        case 0: /* the only reference, at once */
            gather_future_release(f);
            break;
        case 1: { /* one more, released by a callback */
            int rc = gather_future_on_done(f, release_in_callback,
                                           gather_future_retain(f));
            CHECK(rc == 0, "gather_future_on_done: %d", rc);
            gather_future_release(f);
            break;
        }
        default: /* two more, released in any order */
            gather_future_retain(f);
            gather_future_retain(f);
            gather_future_release(f);
            if (one_in(&d->g, 2))
                nap_us(below(&d->g, 100));
            gather_future_release(f);
            gather_future_release(f);
            break;
        }
        rec_release(r);
    }
}

/* ---- op: resize ---------------------------------------------------------- */

/* Sizes gather.h refuses with EINVAL. */
static void resize_invalid(driver *d, pool_ctx *ctx)
{
    static const size_t bad[][2] = {{3, 2},    {2, 1},        {1025, 0},
                                    {1, 4097}, {SIZE_MAX, 0}, {0, SIZE_MAX}};
    size_t k = below(&d->g, sizeof bad / sizeof bad[0]);
    int rc = gather_pool_resize(ctx->pool, bad[k][0], bad[k][1]);
    CHECK(rc == EINVAL, "resize of the %s pool to (%zu, %zu): %d", ctx->name,
          bad[k][0], bad[k][1], rc);
    count(EV_RESIZE_INVALID);
}

/*
 * Tasks that block in the kernel (and some that resize from inside), a
 * resize (or two) while they block, then the waits. On pools that must keep
 * their sizes (the strict shared pools, the default pool) only invalid
 * sizes, which change nothing.
 */
static void op_resize(driver *d, pool_ctx *ctx)
{
    if (!ctx->resizable || one_in(&d->g, 4))
        resize_invalid(d, ctx);
    if (!ctx->resizable)
        return;
    enum { N = 8 };
    size_t n = 1 + below(&d->g, N);
    task_rec *recs[N];
    gather_future *fs[N];
    for (size_t i = 0; i < n; i++) {
        recs[i] = rec_new(ctx, rnd(&d->g));
        plan_plain(recs[i], &d->g);
        plan_blocking(recs[i], &d->g, (enum blk)(1 + below(&d->g, BLK_COUNT - 1)));
        fs[i] = submit_tracked(recs[i], NULL);
    }
    phase(d, "resize: resizing");
    for (unsigned k = 1 + one_in(&d->g, 2); k > 0; k--) {
        if (one_in(&d->g, 2))
            nap_us(below(&d->g, 1500));
        size_t threads, max;
        pick_sizes(&d->g, &threads, &max);
        /* Before the call: its threads may start before it returns. */
        atomic_store(&ctx->resized, true);
        raise_max_ever(ctx, threads, max);
        int rc = gather_pool_resize(ctx->pool, threads, max);
        CHECK(rc == 0 || rc == EAGAIN, "resize of the %s pool to (%zu, %zu): "
              "%d", ctx->name, threads, max, rc);
        count(EV_RESIZE_OUTSIDE);
        /* Only this driver resizes a private pool from outside; its tasks
         * may too. */
        if (ctx->private_pool && !atomic_load(&ctx->inside_resizes))
            CHECK(gather_pool_threads(ctx->pool) == eff_threads(threads),
                  "%s pool resized to %zu threads reports %zu", ctx->name,
                  eff_threads(threads), gather_pool_threads(ctx->pool));
        gather_pool_stats s;
        CHECK(gather_pool_stats_get(ctx->pool, &s) == 0, "stats");
        check_sizes(ctx, &s, false);
    }
    phase(d, "resize: waiting");
    size_t order[N];
    shuffled(order, n, &d->g);
    for (size_t k = 0; k < n; k++) {
        size_t i = order[k];
        void *value = NULL;
        int rc = gather_future_wait(fs[i], &value);
        check_waited(recs[i], fs[i], rc, value, "resize+wait");
    }
    release_all(fs, recs, n, &d->g);
}

/* ---- op: a private pool, shut down while busy --------------------------- */

/* Reads a pool's stats once it is drained and the test's counts settled. */
static void check_stats(pool_ctx *ctx, const gather_pool_stats *s)
{
    uint64_t accepted = ld(&ctx->accepted), runs = ld(&ctx->runs);
    uint64_t seen = ld(&ctx->cancelled_seen);
    uint64_t dacc = ld(&ctx->detached_accepted);
    uint64_t druns = ld(&ctx->detached_runs);
    uint64_t maybe = ld(&ctx->map_maybe), never = ld(&ctx->map_never_ran);
    CHECK(s->submitted == s->completed + s->cancelled,
          "%s pool drained: submitted %llu != completed %llu + cancelled "
          "%llu", ctx->name, (ull)s->submitted, (ull)s->completed,
          (ull)s->cancelled);
    CHECK(s->completed == runs + druns,
          "%s pool: completed %llu, but %llu task bodies ran (%llu tracked, "
          "%llu detached)", ctx->name, (ull)s->completed,
          (ull)(runs + druns), (ull)runs, (ull)druns);
    CHECK(druns <= dacc, "%s pool: %llu detached runs of %llu submitted",
          ctx->name, (ull)druns, (ull)dacc);
    /* x: gather_map entries cancelled that had been submitted (0..maybe). */
    CHECK(s->submitted >= accepted + dacc &&
          s->submitted - (accepted + dacc) <= maybe,
          "%s pool: submitted %llu, the test counted %llu accepted, %llu "
          "detached, %llu unknown", ctx->name, (ull)s->submitted,
          (ull)accepted, (ull)dacc, (ull)maybe);
    uint64_t x = s->submitted - (accepted + dacc);
    CHECK(s->cancelled == seen + (dacc - druns) + never + x,
          "%s pool: cancelled %llu, the test saw %llu futures, %llu "
          "detached, %llu map entries (+%llu unknown)", ctx->name,
          (ull)s->cancelled, (ull)seen, (ull)(dacc - druns), (ull)never,
          (ull)x);
    check_sizes(ctx, s, true);
}

/* After the drain of an elastic pool: its threads beyond `threads` exit
 * once idle (1 s in this version; SPEC.md allows up to 10 s). */
static void await_spares_exit(pool_ctx *ctx)
{
    size_t t = gather_pool_threads(ctx->pool);
    uint64_t deadline = now_ns() + 12000000000u;
    gather_pool_stats s;
    for (;;) {
        CHECK(gather_pool_stats_get(ctx->pool, &s) == 0, "stats");
        if (s.threads == t)
            break;
        CHECK(s.threads > t, "%s pool, drained: %llu threads, fewer than its "
              "%zu", ctx->name, (ull)s.threads, t);
        CHECK(now_ns() < deadline, "%s pool, drained: %llu threads 12 s on, "
              "its size is %zu (spares never exited)", ctx->name,
              (ull)s.threads, t);
        nap_us(20000);
    }
    check_sizes(ctx, &s, true);
    count(EV_SPARES_EXITED);
}

static bool checks_settled(void *arg)
{
    return atomic_load(&((pool_ctx *)arg)->checks_pending) == 0;
}

enum { HELPER_KEEP = 64, BUSY_MAX = 14 };

/* A second thread that submits to the pool until it is refused, then opens
 * the gate (so a drain that waits for gated tasks ends only after the
 * shutdown began), then may shut the pool down itself too. */
typedef struct shut_helper {
    pthread_t thread;
    pool_ctx *ctx;
    gate *gate;
    bool shuts_down;
    unsigned flags;
    uint64_t seed;
    size_t n;
    task_rec *recs[HELPER_KEEP];
    gather_future *fs[HELPER_KEEP];
    bool resizes;       /* resizes the pool while submitting, and after */
} shut_helper;

/* A resize by the helper, racing with the shutdown: refused once the pool
 * is shut down. `refused`: a submit was refused already, so it must be. */
static void helper_resize(shut_helper *h, rng *g, bool refused)
{
    size_t threads, max;
    pick_sizes(g, &threads, &max);
    atomic_store(&h->ctx->resized, true);
    raise_max_ever(h->ctx, threads, max);
    int rc = gather_pool_resize(h->ctx->pool, threads, max);
    if (refused)
        CHECK(rc == ESHUTDOWN, "resize after a refused submit: %d", rc);
    else
        CHECK(rc == 0 || rc == EAGAIN || rc == ESHUTDOWN,
              "resize racing with a shutdown: %d", rc);
    count(rc == ESHUTDOWN ? EV_RESIZE_REFUSED : EV_RESIZE_OUTSIDE);
}

static void *helper_main(void *arg)
{
    shut_helper *h = arg;
    rng g = {h->seed};
    for (;;) {
        int rc = 0;
        if (h->n < HELPER_KEEP) {
            task_rec *r = rec_new(h->ctx, rnd(&g));
            plan_plain(r, &g);
            gather_future *f = submit_tracked(r, &rc);
            if (f != NULL) {
                h->recs[h->n] = r;
                h->fs[h->n++] = f;
            } else {
                rec_release(r);
            }
        } else {
            rc = submit_detached(h->ctx);
        }
        if (rc == ESHUTDOWN)
            break;
        CHECK(rc == 0, "helper submit: %d", rc);
        if (one_in(&g, 4))
            sched_yield();
        if (h->resizes && one_in(&g, 8))
            helper_resize(h, &g, false);
    }
    if (h->resizes)
        helper_resize(h, &g, true);
    gate_open(h->gate);
    if (h->shuts_down) {
        int rc = gather_pool_shutdown(h->ctx->pool, h->flags);
        CHECK(rc == 0, "a second, concurrent shutdown: %d", rc);
    }
    return NULL;
}

enum shut_mode { SHUT_PLAIN, SHUT_CANCEL, SHUT_DESTROY };

static void run_op(driver *d, enum op op, pool_ctx *ctx);
static enum op pick_op(rng *g, bool in_private);

/* The busy load before the shutdown: gated tasks (only where a helper opens
 * the gate), some submitting subtasks during the drain, plain and nested
 * tasks, early releases, detached tasks. */
static size_t load_busy(driver *d, pool_ctx *ctx, gate *gt, bool gated_ok,
                        task_rec **recs, gather_future **fs)
{
    size_t n = 2 + below(&d->g, BUSY_MAX - 1), kept = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned kind = below(&d->g, 6);
        if (kind == 0) {
            int rc = submit_detached(ctx);
            CHECK(rc == 0, "detached submit to a private pool: %d", rc);
            continue;
        }
        task_rec *r = rec_new(ctx, rnd(&d->g));
        plan_plain(r, &d->g);
        if ((kind == 1 || kind == 2) && gated_ok) {
            r->gate = gate_ref(gt);
            r->block_us = 0;
            r->polls_cancel = kind == 1;
            r->drain_kids = kind == 2;
            r->probe_shutdown = false;
        } else if (kind == 3) {
            r->depth = (uint8_t)(1 + below(&d->g, 2));
        }
        gather_future *f = submit_tracked(r, NULL);
        if (kind == 4) { /* released before it completes */
            gather_future_release(f);
            rec_release(r);
            continue;
        }
        recs[kept] = r;
        fs[kept++] = f;
    }
    return kept;
}

/* After the shutdown returned: everything done, results right, the pool
 * refusing work. */
static void check_after_shutdown(pool_ctx *ctx, task_rec **recs,
                                 gather_future **fs, size_t n,
                                 enum shut_mode mode)
{
    for (size_t i = 0; i < n; i++) {
        CHECK(gather_future_done(fs[i]),
              "task %llu not done after its pool's shutdown returned",
              (ull)recs[i]->token);
        gather_result res = {gather_future_error(fs[i]),
                             gather_future_value(fs[i])};
        check_result(recs[i], res, "after shutdown");
        if (recs[i]->gate != NULL && recs[i]->polls_cancel) {
            if (mode == SHUT_CANCEL)
                CHECK(res.error == ECANCELED && gather_future_cancelled(fs[i]),
                      "gated task %llu not cancelled by CANCEL_PENDING (%d)",
                      (ull)recs[i]->token, res.error);
            else
                CHECK(res.error != ECANCELED, "gated task %llu cancelled by "
                      "a plain shutdown", (ull)recs[i]->token);
        }
    }
    if (mode == SHUT_DESTROY)
        return;
    gather_future *f = (gather_future *)&f;
    int rc = gather_submit(ctx->pool, task_main, NULL, &f);
    CHECK(rc == ESHUTDOWN && f == NULL, "submit after shutdown: %d", rc);
    void *args[1] = {NULL};
    gather_result res[1];
    rc = gather_map(ctx->pool, task_main, args, 1, res, 0);
    CHECK(rc == ESHUTDOWN && res[0].error == ESHUTDOWN,
          "gather_map after shutdown: %d (entry %d)", rc, res[0].error);
    gather_task_options o = {0};
    o.arg_free = ex_arg_free; /* must not run: NULL is no record */
    o.priority = GATHER_PRIORITY_HIGH;
    f = (gather_future *)&f;
    rc = gather_submit_ex(ctx->pool, task_main, NULL, &o, &f);
    CHECK(rc == ESHUTDOWN && f == NULL, "submit_ex after shutdown: %d", rc);
    if (n > 0) {
        f = (gather_future *)&f;
        rc = gather_then(fs[0], ctx->pool, then_main, NULL, &f);
        CHECK(rc == ESHUTDOWN && f == NULL, "gather_then after shutdown: %d",
              rc);
    }
    rc = gather_pool_shutdown(ctx->pool, 0);
    CHECK(rc == 0, "a second shutdown: %d", rc);
}

/* Strict (1-4 threads) or elastic (1-2 threads, max_threads up to 2-8). */
static void create_private_pool(driver *d, pool_ctx *ctx)
{
    gather_pool_options o = {0};
    bool elastic = one_in(&d->g, 2);
    if (elastic) {
        o.threads = 1 + below(&d->g, 2);
        o.max_threads = o.threads + 1 + below(&d->g, (uint32_t)(8 - o.threads));
    } else {
        o.threads = 1 + below(&d->g, 4);
    }
    o.name = one_in(&d->g, 2) ? "soak-private-with-a-long-name" : NULL;
    o.stack_size = one_in(&d->g, 4) ? 256 * 1024 : 0;
    ctx->private_pool = true;
    ctx->resizable = true;
    ctx->threads0 = o.threads;
    ctx->elastic0 = elastic;
    atomic_init(&ctx->max_ever, eff_max(o.threads, o.max_threads));
    int rc = gather_pool_create(&ctx->pool, &o);
    CHECK(rc == 0 && ctx->pool != NULL, "gather_pool_create: %d", rc);
    count(EV_POOL_CREATED);
    if (elastic)
        count(EV_ELASTIC_POOL);
    CHECK(gather_pool_threads(ctx->pool) == o.threads,
          "pool of %zu threads reports %zu", o.threads,
          gather_pool_threads(ctx->pool));
    gather_pool_stats s;
    CHECK(gather_pool_stats_get(ctx->pool, &s) == 0, "stats");
    CHECK(s.threads == o.threads && s.spares_started == 0,
          "a new pool of %zu threads: threads %llu, spares started %llu",
          o.threads, (ull)s.threads, (ull)s.spares_started);
    check_sizes(ctx, &s, false);
}

static void start_helper(driver *d, shut_helper *h, pool_ctx *ctx, gate *gt,
                         unsigned flags)
{
    h->ctx = ctx;
    h->gate = gt;
    h->shuts_down = one_in(&d->g, 2);
    h->resizes = one_in(&d->g, 2);
    h->flags = flags;
    h->seed = rnd(&d->g);
    int rc = pthread_create(&h->thread, NULL, helper_main, h);
    CHECK(rc == 0, "pthread_create: %d", rc);
}

/* Everything the helper got accepted is done too. */
static void join_helper(shut_helper *h)
{
    int rc = pthread_join(h->thread, NULL);
    CHECK(rc == 0, "pthread_join: %d", rc);
    for (size_t i = 0; i < h->n; i++) {
        CHECK(gather_future_done(h->fs[i]),
              "helper's task %llu not done after the shutdown",
              (ull)h->recs[i]->token);
        check_result(h->recs[i],
                     (gather_result){gather_future_error(h->fs[i]),
                                     gather_future_value(h->fs[i])},
                     "helper after shutdown");
    }
}

static int shut_down_busy(driver *d, pool_ctx *ctx, enum shut_mode mode)
{
    if (mode == SHUT_CANCEL)
        atomic_store(&ctx->cancel_pending, true); /* before it can cancel */
    atomic_store(&ctx->shut_begun, true);
    count(mode == SHUT_PLAIN    ? EV_SHUTDOWN_PLAIN
          : mode == SHUT_CANCEL ? EV_SHUTDOWN_CANCEL
                                : EV_DESTROY_BUSY);
    if (mode == SHUT_DESTROY) {
        phase(d, "private pool: destroy while busy");
        return gather_pool_destroy(ctx->pool);
    }
    phase(d, "private pool: shutdown while busy");
    return gather_pool_shutdown(ctx->pool, mode == SHUT_CANCEL
                                               ? GATHER_CANCEL_PENDING
                                               : 0);
}

/* Once the completion checks and map records settled: the stats (when the
 * pool still exists), then the destroy. */
static void settle_private(driver *d, pool_ctx *ctx, enum shut_mode mode)
{
    phase(d, "private pool: settling");
    await(checks_settled, ctx);
    reclaim(d, ctx);
    if (mode == SHUT_DESTROY)
        return;
    gather_pool_stats s;
    int rc = gather_pool_stats_get(ctx->pool, &s);
    CHECK(rc == 0, "gather_pool_stats_get: %d", rc);
    check_stats(ctx, &s);
    if ((ctx->elastic0 || atomic_load(&ctx->resized)) && one_in(&d->g, 8)) {
        phase(d, "private pool: waiting for its spares to exit");
        await_spares_exit(ctx);
    }
    rc = gather_pool_destroy(ctx->pool);
    CHECK(rc == 0, "gather_pool_destroy: %d", rc);
}

enum { LATE_MAX = 6 };

/* Continuations on a private pool of a task on another pool that ends
 * (0-2 ms on) around the private pool's shutdown or destroy: recs[0] is
 * that task, the rest links on the private pool, each on recs[0] or on an
 * earlier link; a few cancelled at once. */
static size_t late_links(driver *d, pool_ctx *ctx, task_rec **recs,
                         gather_future **fs)
{
    recs[0] = rec_new(pick_pool(d), rnd(&d->g));
    plan_plain(recs[0], &d->g);
    recs[0]->block_us = below(&d->g, 2000);
    recs[0]->polls_cancel = false;
    fs[0] = submit_tracked(recs[0], NULL);
    size_t n = 2 + below(&d->g, LATE_MAX - 1);
    for (size_t i = 1; i < n; i++) {
        size_t j = one_in(&d->g, 2) ? 0 : below(&d->g, (uint32_t)i);
        fs[i] = then_tracked(d, ctx, fs[j], &recs[i], NULL);
        count(EV_THEN_LATE);
        if (one_in(&d->g, 6))
            cancel_link(fs[i], recs[i], false);
    }
    return n;
}

/* Once the pool is shut down or destroyed: cancels racing with the links'
 * prevs, then every link is done: run, cancelled, or refused. */
static void settle_late(driver *d, task_rec **recs, gather_future **fs,
                        size_t n)
{
    phase(d, "private pool: late continuations");
    for (size_t i = 1; i < n; i++) {
        if (!one_in(&d->g, 3))
            continue;
        if (one_in(&d->g, 2))
            nap_us(below(&d->g, 300));
        cancel_link(fs[i], recs[i], false);
    }
    gather_result res[LATE_MAX];
    int rc = gather_futures(fs, n, res, GATHER_RETURN_ERRORS);
    check_gathered(recs, n, res, GATHER_RETURN_ERRORS, rc, "late links");
    release_all(fs, recs, n, &d->g);
}

/*
 * A pool of the driver's own: some ordinary ops on it, then a busy load and
 * a shutdown (plain or CANCEL_PENDING, with a helper thread submitting
 * until refused, opening the gate, maybe shutting down concurrently) or a
 * destroy while busy; then every check of a drained pool, and futures read
 * after the destroy.
 */
static void op_private_pool(driver *d)
{
    pool_ctx ctx = {0};
    ctx.name = "private";
    create_private_pool(d, &ctx);
    for (unsigned k = below(&d->g, 4); k > 0; k--)
        run_op(d, pick_op(&d->g, true), &ctx);

    enum shut_mode mode = (enum shut_mode)below(&d->g, 3);
    task_rec *lrecs[LATE_MAX];
    gather_future *lfs[LATE_MAX];
    size_t nl = one_in(&d->g, 2) ? late_links(d, &ctx, lrecs, lfs) : 0;
    gate *gt = gate_new();
    task_rec *recs[BUSY_MAX];
    gather_future *fs[BUSY_MAX];
    phase(d, "private pool: loading");
    size_t n = load_busy(d, &ctx, gt, mode != SHUT_DESTROY, recs, fs);
    shut_helper h;
    memset(&h, 0, sizeof h);
    if (mode != SHUT_DESTROY)
        start_helper(d, &h, &ctx, gt,
                     mode == SHUT_CANCEL ? GATHER_CANCEL_PENDING : 0);
    if (one_in(&d->g, 2))
        nap_us(below(&d->g, 500));
    int rc = shut_down_busy(d, &ctx, mode);
    CHECK(rc == 0, "shutdown/destroy (mode %d) of a busy pool: %d", mode, rc);
    check_after_shutdown(&ctx, recs, fs, n, mode);
    if (mode != SHUT_DESTROY) {
        phase(d, "private pool: joining the helper");
        join_helper(&h);
    }
    if (nl > 0)
        settle_late(d, lrecs, lfs, nl);
    settle_private(d, &ctx, mode);
    for (size_t i = 0; i < n; i++) /* futures outlive their pool */
        check_result(recs[i], (gather_result){gather_future_error(fs[i]),
                                              gather_future_value(fs[i])},
                     "after destroy");
    release_all(fs, recs, n, &d->g);
    release_all(h.fs, h.recs, h.n, &d->g);
    gate_open(gt);
    gate_release(gt);
}

/* ---- the driver loop ---------------------------------------------------- */

static enum op pick_op(rng *g, bool in_private)
{
    unsigned total = 0;
    for (int i = 0; i < OP_COUNT; i++)
        if (!(in_private && i == OP_PRIVATE_POOL))
            total += op_weights[i];
    unsigned x = below(g, total);
    for (int i = 0; i < OP_COUNT; i++) {
        if (in_private && i == OP_PRIVATE_POOL)
            continue;
        if (x < op_weights[i])
            return (enum op)i;
        x -= op_weights[i];
    }
    return OP_SUBMIT;
}

static void run_op(driver *d, enum op op, pool_ctx *ctx)
{
    d->op_counts[op]++;
    phase(d, op_names[op]);
    switch (op) {
    case OP_SUBMIT: op_submit(d, ctx); break;
    case OP_NESTED: op_nested(d, ctx); break;
    case OP_GATHER: op_gather(d, ctx); break;
    case OP_GATHER_ALL: op_gather_all(d, ctx); break;
    case OP_MAP: op_map(d, ctx); break;
    case OP_CANCEL: op_cancel(d, ctx); break;
    case OP_WAIT_FOR: op_wait_for(d, ctx); break;
    case OP_WAIT_ANY: op_wait_any(d, ctx); break;
    case OP_CALLBACKS: op_callbacks(d, ctx); break;
    case OP_RELEASE: op_release(d, ctx); break;
    case OP_RESIZE: op_resize(d, ctx); break;
    case OP_CQ: op_cq(d, ctx); break;
    case OP_OPTIONS: op_options(d, ctx); break;
    case OP_THEN: op_then(d, ctx); break;
    case OP_PRIVATE_POOL: op_private_pool(d); break;
    case OP_COUNT: break;
    }
}

static pool_ctx *pick_pool(driver *d)
{
    if (one_in(&d->g, 6)) {
        count(EV_DEFAULT_POOL_OP);
        return &default_ctx;
    }
    return &shared_ctx[below(&d->g, N_SHARED)];
}

static void *driver_main(void *arg)
{
    driver *d = arg;
    while (!atomic_load(&stop_drivers)) {
        atomic_store(&d->op_seed, d->g.s);
        enum op op = pick_op(&d->g, false);
        pool_ctx *ctx = pick_pool(d);
        atomic_store(&d->op_name, op_names[op]);
        atomic_store(&d->op_since_ns, now_ns());
        run_op(d, op, ctx);
        atomic_store(&d->op_since_ns, 0);
        atomic_fetch_add(&d->ops, 1);
        reclaim(d, NULL);
        if (one_in(&d->g, 64)) { /* mid-run stats: the sizes only */
            gather_pool_stats s;
            CHECK(gather_pool_stats_get(ctx->pool, &s) == 0, "stats");
            check_sizes(ctx, &s, false);
        }
    }
    phase(d, "stopped");
    return NULL;
}

/* ---- the watchdog ------------------------------------------------------- */

static pthread_mutex_t watchdog_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t watchdog_cond = PTHREAD_COND_INITIALIZER;
static bool watchdog_stop;

static void dump_driver(const char *who, int index, driver *d, uint64_t now)
{
    uint64_t since = atomic_load(&d->op_since_ns);
    const char *name = atomic_load(&d->op_name);
    const char *ph = atomic_load(&d->phase);
    fprintf(stderr, "soak:   %s %d: %llu ops done; ", who, index,
            (ull)atomic_load(&d->ops));
    if (since == 0)
        fprintf(stderr, "between ops (%s)\n", ph ? ph : "-");
    else
        fprintf(stderr, "in %s, at \"%s\", for %.1f s (op PRNG state %#llx)\n",
                name ? name : "?", ph ? ph : "?",
                (double)(now - since) / 1e9,
                (ull)atomic_load(&d->op_seed));
}

static _Noreturn void report_hang(driver *culprit, uint64_t now)
{
    if (atomic_flag_test_and_set(&failing))
        for (;;)
            nanosleep(&(struct timespec){1, 0}, NULL);
    fprintf(stderr, "soak: HANG: %s has made no progress for %.0f s\n",
            culprit == &main_track ? "the final drain" : "a driver",
            cfg_watchdog_s);
    for (int i = 0; i < cfg_threads; i++)
        dump_driver("driver", i, &drivers[i], now);
    dump_driver("main", 0, &main_track, now);
    for (int e = 0; e < EV_COUNT; e++)
        fprintf(stderr, "soak:   %s: %llu\n", ev_names[e],
                (ull)atomic_load(&events[e]));
    print_replay(stderr);
    fflush(stderr);
    abort();
}

static bool stuck(driver *d, uint64_t now)
{
    uint64_t since = atomic_load(&d->op_since_ns);
    return since != 0 && now > since &&
           (double)(now - since) / 1e9 > cfg_watchdog_s;
}

static void *watchdog_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&watchdog_lock);
    while (!watchdog_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 250000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&watchdog_cond, &watchdog_lock, &ts);
        uint64_t now = now_ns();
        for (int i = 0; i < cfg_threads; i++)
            if (stuck(&drivers[i], now))
                report_hang(&drivers[i], now);
        if (stuck(&main_track, now))
            report_hang(&main_track, now);
    }
    pthread_mutex_unlock(&watchdog_lock);
    return NULL;
}

/* ---- setup, teardown, report -------------------------------------------- */

static int name_pool_task(void *arg, void **result)
{
    (void)arg;
    *result = gather_current_pool();
    return 0;
}

static void main_phase(const char *what)
{
    atomic_store(&main_track.op_name, "teardown");
    atomic_store(&main_track.phase, what);
    atomic_store(&main_track.op_since_ns, now_ns());
}

/* The default pool's max_threads: GATHER_MAX_THREADS when it is valid
 * (SPEC.md), else 512; the limit 4096 when in doubt. */
static size_t default_max_threads(size_t threads)
{
    const char *s = getenv("GATHER_MAX_THREADS");
    if (s == NULL)
        return threads > 512 ? threads : 512;
    return 4096;
}

/* Two strict pools (never resized: their sizes are checked exactly) and two
 * elastic ones (threads 1 and 2, max_threads from the seed, up to 8). */
static void setup_pools(rng *g)
{
    static const size_t threads[N_SHARED] = {1, 3, 1, 2};
    static const char *const names[N_SHARED] = {"shared-1", "shared-3",
                                                "elastic-1", "elastic-2"};
    for (int i = 0; i < N_SHARED; i++) {
        pool_ctx *ctx = &shared_ctx[i];
        gather_pool_options o = {0};
        o.threads = threads[i];
        o.name = names[i];
        if (i >= 2)
            o.max_threads = o.threads + 1 + below(g, (uint32_t)(8 - o.threads));
        ctx->name = names[i];
        ctx->threads0 = o.threads;
        ctx->elastic0 = o.max_threads > o.threads;
        ctx->resizable = i >= 2;
        atomic_init(&ctx->max_ever, eff_max(o.threads, o.max_threads));
        int rc = gather_pool_create(&ctx->pool, &o);
        CHECK(rc == 0, "gather_pool_create: %d", rc);
        printf("soak: pool %s: threads %zu, max_threads %zu\n", names[i],
               o.threads, o.max_threads);
    }
    default_ctx.name = "default";
    default_ctx.elastic0 = true;
    atomic_init(&default_ctx.max_ever,
                default_max_threads(gather_pool_threads(NULL)));
    gather_future *f;
    int rc = gather_submit(NULL, name_pool_task, NULL, &f);
    CHECK(rc == 0, "gather_submit to the default pool: %d", rc);
    void *p = NULL;
    rc = gather_future_wait(f, &p);
    CHECK(rc == 0 && p != NULL, "the default pool's name: %d", rc);
    default_pool = p;
    gather_future_release(f);
    add(&default_ctx.accepted, 1);
    add(&default_ctx.runs, 1); /* that task: not tracked, but it ran */
}

static bool default_settled(void *arg)
{
    (void)arg;
    gather_pool_stats s;
    CHECK(gather_pool_stats_get(NULL, &s) == 0, "stats of the default pool");
    return atomic_load(&live_recs) == 0 &&
           ld(&default_ctx.detached_runs) ==
               ld(&default_ctx.detached_accepted) &&
           s.submitted == s.completed + s.cancelled;
}

static void teardown(rng *g)
{
    /* Shared pools: a shutdown (with CANCEL_PENDING or not) drains them;
     * then the records of their map tasks settle, and the stats add up. */
    for (int i = 0; i < N_SHARED; i++) {
        pool_ctx *ctx = &shared_ctx[i];
        unsigned flags = one_in(g, 2) ? GATHER_CANCEL_PENDING : 0;
        main_phase("shared pool: shutdown");
        if (flags)
            atomic_store(&ctx->cancel_pending, true);
        atomic_store(&ctx->shut_begun, true);
        int rc = gather_pool_shutdown(ctx->pool, flags);
        CHECK(rc == 0, "shutdown of the %s pool: %d", ctx->name, rc);
        main_phase("shared pool: settling");
        await(checks_settled, ctx);
        for (int k = 0; k < cfg_threads; k++)
            reclaim(&drivers[k], ctx);
        gather_pool_stats s;
        CHECK(gather_pool_stats_get(ctx->pool, &s) == 0, "stats");
        check_stats(ctx, &s);
        rc = gather_pool_resize(ctx->pool, 1, 2);
        CHECK(rc == ESHUTDOWN, "resize of the shut-down %s pool: %d",
              ctx->name, rc);
        printf("soak: pool %s: threads %zu, peak %llu threads, %llu spares "
               "started%s\n", ctx->name, gather_pool_threads(ctx->pool),
               (ull)s.threads_peak, (ull)s.spares_started,
               atomic_load(&ctx->resized) ? " (resized)" : "");
        if (ctx->resizable) {
            main_phase("shared pool: waiting for its spares to exit");
            await_spares_exit(ctx);
        }
        rc = gather_pool_destroy(ctx->pool);
        CHECK(rc == 0, "destroy of the %s pool: %d", ctx->name, rc);
    }
    /* The default pool lives on: wait until it is quiet. */
    main_phase("default pool: map tasks");
    for (int k = 0; k < cfg_threads; k++) {
        await(nothing_deferred, &drivers[k]);
        free(drivers[k].defer);
    }
    main_phase("default pool: completion checks");
    await(checks_settled, &default_ctx);
    main_phase("default pool: records, detached tasks, counters");
    await(default_settled, NULL);
    gather_pool_stats s;
    CHECK(gather_pool_stats_get(NULL, &s) == 0, "stats");
    check_stats(&default_ctx, &s);
    CHECK(atomic_load(&live_gates) == 0, "%ld gates never freed",
          atomic_load(&live_gates));
    CHECK(atomic_load(&live_trackers) == 0,
          "%ld aggregates never completed or released",
          atomic_load(&live_trackers));
    atomic_store(&main_track.op_since_ns, 0);
}

static void report(double elapsed)
{
    uint64_t per_op[OP_COUNT] = {0}, total = 0;
    /* Every op counts, also those run inside a private pool's op. */
    for (int k = 0; k < cfg_threads; k++)
        for (int i = 0; i < OP_COUNT; i++)
            per_op[i] += drivers[k].op_counts[i];
    for (int i = 0; i < OP_COUNT; i++)
        total += per_op[i];
    printf("soak: seed=%" PRIu64 " threads=%d seconds=%.1f ops=%llu "
           "ops/s=%.1f\n",
           cfg_seed, cfg_threads, elapsed, (ull)total,
           elapsed > 0 ? (double)total / elapsed : 0.0);
    for (int i = 0; i < OP_COUNT; i++)
        printf("soak:   op %-16s %llu\n", op_names[i], (ull)per_op[i]);
    for (int e = 0; e < EV_COUNT; e++)
        printf("soak:   %-36s %llu\n", ev_names[e],
               (ull)atomic_load(&events[e]));
    printf("soak: PASS\n");
}

static _Noreturn void usage(const char *msg)
{
    fprintf(stderr, "soak: %s\nusage: soak [--seconds S] [--seed N] "
            "[--threads T (1..%d)] [--watchdog S]\n", msg, MAX_DRIVERS);
    exit(2);
}

static double parse_seconds(const char *s, const char *what)
{
    char *end;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || !(v >= 0) || v > 1e6)
        usage(what);
    return v;
}

static void parse_args(int argc, char **argv)
{
    bool seeded = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            usage("a randomized soak test of libgather");
        if (i + 1 >= argc)
            usage("an option lacks its value");
        const char *v = argv[++i];
        char *end;
        if (strcmp(a, "--seconds") == 0) {
            cfg_seconds = parse_seconds(v, "bad --seconds");
        } else if (strcmp(a, "--watchdog") == 0) {
            cfg_watchdog_s = parse_seconds(v, "bad --watchdog");
        } else if (strcmp(a, "--seed") == 0) {
            errno = 0;
            cfg_seed = strtoull(v, &end, 0);
            if (*v == '\0' || *end != '\0' || errno != 0)
                usage("bad --seed");
            seeded = true;
        } else if (strcmp(a, "--threads") == 0) {
            long t = strtol(v, &end, 10);
            if (*v == '\0' || *end != '\0' || t < 1 || t > MAX_DRIVERS)
                usage("bad --threads");
            cfg_threads = (int)t;
        } else {
            usage("unknown option");
        }
    }
    if (!seeded) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        rng g = {(uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec};
        cfg_seed = rnd(&g) % 1000000000000ull; /* short enough to retype */
    }
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    /* First, so that any failure, even a crash, can be replayed. */
    printf("soak: seed=%" PRIu64 " threads=%d seconds=%g watchdog=%gs\n",
           cfg_seed, cfg_threads, cfg_seconds, cfg_watchdog_s);
    fflush(stdout);

    pthread_t watchdog;
    int rc = pthread_create(&watchdog, NULL, watchdog_main, NULL);
    CHECK(rc == 0, "pthread_create: %d", rc);
    main_phase("setup");
    cpus = count_cpus();
    rng g = {cfg_seed};
    start_blockers(rnd(&g));
    setup_pools(&g);
    atomic_store(&main_track.op_since_ns, 0);

    uint64_t start = now_ns();
    for (int i = 0; i < cfg_threads; i++) {
        drivers[i].index = i;
        drivers[i].g.s = rnd(&g); /* one stream per driver */
        rc = pthread_create(&drivers[i].thread, NULL, driver_main,
                            &drivers[i]);
        CHECK(rc == 0, "pthread_create: %d", rc);
    }
    time_t whole = (time_t)cfg_seconds;
    struct timespec run = {whole,
                           (long)((cfg_seconds - (double)whole) * 1e9)};
    while (nanosleep(&run, &run) != 0 && errno == EINTR)
        ;
    atomic_store(&stop_drivers, true);
    for (int i = 0; i < cfg_threads; i++)
        pthread_join(drivers[i].thread, NULL);
    double elapsed = (double)(now_ns() - start) / 1e9;

    teardown(&g);
    main_phase("stopping the feeder and holder threads");
    stop_blockers_now();
    atomic_store(&main_track.op_since_ns, 0);
    pthread_mutex_lock(&watchdog_lock);
    watchdog_stop = true;
    pthread_cond_signal(&watchdog_cond);
    pthread_mutex_unlock(&watchdog_lock);
    pthread_join(watchdog, NULL);
    CHECK(atomic_load(&live_recs) == 0, "%ld task records never freed",
          atomic_load(&live_recs));
    CHECK(ld(&ex_args_freed) == ld(&ex_args_armed),
          "arg_free ran %llu times for %llu tasks accepted with it",
          (ull)ld(&ex_args_freed), (ull)ld(&ex_args_armed));
    CHECK(ld(&ex_values_made) == ld(&ex_values_freed) + ld(&ex_values_taken),
          "%llu values made with value_free, %llu freed, %llu taken",
          (ull)ld(&ex_values_made), (ull)ld(&ex_values_freed),
          (ull)ld(&ex_values_taken));
    report(elapsed);
    return 0;
}
