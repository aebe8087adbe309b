/* SPDX-License-Identifier: MIT */
/*
 * check_errors.c - bad input and refused calls: every EINVAL convention of
 * SPEC.md ("Conventions", "NULL and empty"), EDEADLK from a pool's own
 * threads and for waits on a task running beneath the caller, ESHUTDOWN
 * after shutdown, the default pool refusing shutdown by pointer, impossible
 * stack sizes, EBUSY for a late allocator change, and the version string.
 * The misuse table of README.md maps each misuse to its test here (or in
 * check_alloc, check_future, check_gather, check_lifecycle, check_nesting).
 */
/* This suite passes bad arguments on purpose (NULL arrays with n > 0,
 * overflowing counts) to check the run-time EINVAL. gather.h lets GCC flag
 * such calls at compile time (GATHER_READS), which is what applications
 * want; here the warnings are silenced. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wnonnull"
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#endif
#include "testutil.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int marker_a, marker_b;

#define SENTINEL_FUTURE ((gather_future *)&marker_b)

static void cb_count(gather_future *f, void *user_data)
{
    (void)f;
    atomic_fetch_add((atomic_int *)user_data, 1);
}

/* Counts whose byte size overflows size_t. */
static const size_t huge_counts[] = {
    SIZE_MAX, SIZE_MAX / 2, SIZE_MAX / sizeof(gather_result) + 1,
    SIZE_MAX / sizeof(gather_future *) + 1};
#define N_HUGE (sizeof huge_counts / sizeof huge_counts[0])

/* A one-entry pointer array placed just before an inaccessible page: a
 * call that reads past the entry it was given (trusting an overflowing n)
 * faults instead of reading stack garbage that may happen to be NULL. */
typedef struct guarded {
    void *map;
    size_t len;
    void **slot;
} guarded;

static void guarded_init(guarded *g, void *entry)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    g->len = 2 * page;
    g->map = mmap(NULL, g->len, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert(g->map != MAP_FAILED);
    ck_assert_int_eq(mprotect((char *)g->map + page, page, PROT_NONE), 0);
    g->slot = (void **)((char *)g->map + page - sizeof(void *));
    g->slot[0] = entry;
}

static void guarded_free(guarded *g)
{
    munmap(g->map, g->len);
}

/* A running gated task to put in lists: a call that waited on it would
 * hang (until the watchdog), so EINVAL answered at once is observable. */
typedef struct running {
    gather_pool *pool;
    tu_gate gate;
    tu_count started;
    tu_gated g;
    gather_future *f;
} running;

static void running_start(running *r, size_t threads)
{
    r->pool = tu_pool(threads);
    tu_gate_init(&r->gate);
    tu_count_init(&r->started);
    memset(&r->g, 0, sizeof r->g);
    r->g.gate = &r->gate;
    r->g.started = &r->started;
    r->g.value = &marker_a;
    atomic_init(&r->g.saw_cancel, -1);
    ck_assert_int_eq(gather_submit(r->pool, tu_task_gated, &r->g, &r->f), 0);
    ck_assert_int_eq(tu_count_wait(&r->started, 1), 0);
}

/* Opens the gate and checks the task finished normally, never cancelled. */
static void running_finish(running *r)
{
    ck_assert(!gather_future_done(r->f));
    tu_gate_open(&r->gate);
    void *v = NULL;
    ck_assert_int_eq(gather_future_wait(r->f, &v), 0);
    ck_assert_ptr_eq(v, &marker_a);
    ck_assert_int_eq(atomic_load(&r->g.saw_cancel), 0);
    ck_assert(!gather_future_cancelled(r->f));
    gather_future_release(r->f);
    ck_assert_int_eq(gather_pool_destroy(r->pool), 0);
    tu_gate_destroy(&r->gate);
    tu_count_destroy(&r->started);
}

/* ---- allocator (first: must run before any pool exists with CK_FORK=no) --- */

START_TEST(test_replace_allocator_half_null_pair_is_einval)
{
    /* No pool exists yet in this process. */
    ck_assert_int_eq(gather_replace_allocator(malloc, NULL), EINVAL);
    ck_assert_int_eq(gather_replace_allocator(NULL, free), EINVAL);
    ck_assert_int_eq(gather_replace_allocator(malloc, free), 0);
    ck_assert_int_eq(gather_replace_allocator(NULL, NULL), 0);
}
END_TEST

static void *refusing_malloc(size_t size)
{
    (void)size;
    return NULL;
}

START_TEST(test_failed_pool_create_leaves_allocator_replaceable)
{
    /* No pool exists yet. A create that fails (here for memory) creates no
     * pool, so the allocator may still be replaced afterwards. */
    ck_assert_int_eq(gather_replace_allocator(refusing_malloc, free), 0);
    gather_pool *p = (gather_pool *)&p; /* not NULL: must be reset */
    ck_assert_int_eq(gather_pool_create(&p, NULL), ENOMEM);
    ck_assert_ptr_null(p);
    ck_assert_int_eq(gather_replace_allocator(NULL, NULL), 0);
}
END_TEST

START_TEST(test_replace_allocator_after_a_pool_existed_is_ebusy)
{
    gather_pool *p = tu_pool(1);
    ck_assert_int_eq(gather_replace_allocator(malloc, free), EBUSY);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    /* Even once the pool is gone. */
    ck_assert_int_eq(gather_replace_allocator(malloc, free), EBUSY);
    ck_assert_int_eq(gather_replace_allocator(NULL, NULL), EBUSY);
    /* Argument checks come first. */
    ck_assert_int_eq(gather_replace_allocator(malloc, NULL), EINVAL);
    ck_assert_int_eq(gather_replace_allocator(NULL, free), EINVAL);
}
END_TEST

/* ---- pools ----------------------------------------------------------------- */

START_TEST(test_pool_create_rejects_null_out_and_too_many_threads)
{
    gather_pool_options o = {0};
    ck_assert_int_eq(gather_pool_create(NULL, NULL), EINVAL);
    ck_assert_int_eq(gather_pool_create(NULL, &o), EINVAL);
    gather_pool *p = NULL;
    o.threads = 1025;
    ck_assert_int_eq(gather_pool_create(&p, &o), EINVAL);
    o.threads = SIZE_MAX;
    ck_assert_int_eq(gather_pool_create(&p, &o), EINVAL);
    /* A valid request still works afterwards. */
    o.threads = 1;
    ck_assert_int_eq(gather_pool_create(&p, &o), 0);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(gather_pool_threads(p), 1);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

START_TEST(test_shutdown_and_destroy_of_null_are_einval)
{
    ck_assert_int_eq(gather_pool_shutdown(NULL, 0), EINVAL);
    ck_assert_int_eq(gather_pool_shutdown(NULL, GATHER_CANCEL_PENDING), EINVAL);
    ck_assert_int_eq(gather_pool_destroy(NULL), EINVAL);
    /* The default pool still takes work. */
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(NULL, tu_task_identity, &marker_a, &f), 0);
    void *v = NULL;
    ck_assert_int_eq(gather_future_wait(f, &v), 0);
    ck_assert_ptr_eq(v, &marker_a);
    gather_future_release(f);
}
END_TEST

typedef struct default_ctx {
    int shutdown_rc;
    int cancel_rc;
    int destroy_rc;
} default_ctx;

static int task_shutdown_default(void *arg, void **result)
{
    default_ctx *c = (default_ctx *)arg;
    c->shutdown_rc = gather_pool_shutdown(NULL, 0);
    c->cancel_rc = gather_pool_shutdown(NULL, GATHER_CANCEL_PENDING);
    c->destroy_rc = gather_pool_destroy(NULL);
    *result = NULL;
    return 0;
}

START_TEST(test_default_pool_shutdown_from_its_task_is_einval)
{
    default_ctx c = {-1, -1, -1};
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(NULL, task_shutdown_default, &c, &f), 0);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    ck_assert_int_eq(c.shutdown_rc, EINVAL);
    ck_assert_int_eq(c.cancel_rc, EINVAL);
    ck_assert_int_eq(c.destroy_rc, EINVAL);
    gather_future_release(f);
    ck_assert_int_eq(gather_submit(NULL, tu_task_identity, NULL, &f), 0);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    gather_future_release(f);
}
END_TEST

START_TEST(test_shutdown_with_unknown_flags_is_einval_and_does_nothing)
{
    gather_pool *p = tu_pool(1);
    ck_assert_int_eq(gather_pool_shutdown(p, 2u), EINVAL);
    ck_assert_int_eq(gather_pool_shutdown(p, GATHER_CANCEL_PENDING | 4u), EINVAL);
    ck_assert_int_eq(gather_pool_shutdown(p, 1u << 31), EINVAL);
    ck_assert_int_eq(gather_pool_shutdown(p, ~0u), EINVAL);
    /* Not shut down: outside submits are still accepted and run. */
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_identity, &marker_a, &f), 0);
    void *v = NULL;
    ck_assert_int_eq(gather_future_wait(f, &v), 0);
    ck_assert_ptr_eq(v, &marker_a);
    gather_future_release(f);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

START_TEST(test_stats_get_with_null_stats_is_einval)
{
    gather_pool *p = tu_pool(1);
    ck_assert_int_eq(gather_pool_stats_get(p, NULL), EINVAL);
    ck_assert_int_eq(gather_pool_stats_get(NULL, NULL), EINVAL);
    gather_pool_stats st;
    ck_assert_int_eq(gather_pool_stats_get(p, &st), 0);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

/* ---- EDEADLK from the pool's own threads ----------------------------------- */

typedef struct self_shutdown_ctx {
    gather_pool *pool;
    int shutdown_rc;
    int cancel_rc;
    int destroy_rc;
    int on_pool;
    int cancel_requested_after;
    tu_count done;
} self_shutdown_ctx;

static void try_shutdown_self(self_shutdown_ctx *c)
{
    c->on_pool = gather_current_pool() == c->pool;
    c->shutdown_rc = gather_pool_shutdown(c->pool, 0);
    c->cancel_rc = gather_pool_shutdown(c->pool, GATHER_CANCEL_PENDING);
    c->destroy_rc = gather_pool_destroy(c->pool);
    c->cancel_requested_after = gather_cancel_requested();
}

static int task_shutdown_own_pool(void *arg, void **result)
{
    try_shutdown_self((self_shutdown_ctx *)arg);
    *result = NULL;
    return 0;
}

static void cb_shutdown_own_pool(gather_future *f, void *user_data)
{
    (void)f;
    self_shutdown_ctx *c = (self_shutdown_ctx *)user_data;
    try_shutdown_self(c);
    tu_count_add(&c->done, 1);
}

/* After the refused calls the pool must be fully alive. */
static void check_pool_alive(gather_pool *p)
{
    atomic_int ran = 0;
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_count, &ran, &f), 0);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    ck_assert_int_eq(atomic_load(&ran), 1);
    gather_future_release(f);
}

START_TEST(test_shutdown_and_destroy_from_own_task_are_edeadlk)
{
    gather_pool *p = tu_pool(1);
    self_shutdown_ctx c = {.pool = p, .shutdown_rc = -1, .cancel_rc = -1,
                           .destroy_rc = -1};
    tu_count_init(&c.done);
    gather_future *f = NULL, *behind = NULL;
    tu_gate gate;
    tu_count started;
    tu_gate_init(&gate);
    tu_count_init(&started);
    tu_gated blocker = {.gate = &gate, .started = &started};
    gather_future *fb = NULL;
    /* Queue the shutdown task and one more behind it on the only thread. */
    ck_assert_int_eq(gather_submit(p, tu_task_gated, &blocker, &fb), 0);
    ck_assert_int_eq(tu_count_wait(&started, 1), 0);
    atomic_int behind_ran = 0;
    ck_assert_int_eq(gather_submit(p, task_shutdown_own_pool, &c, &f), 0);
    ck_assert_int_eq(gather_submit(p, tu_task_count, &behind_ran, &behind), 0);
    tu_gate_open(&gate);

    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    ck_assert_int_eq(c.on_pool, 1);
    ck_assert_int_eq(c.shutdown_rc, EDEADLK);
    ck_assert_int_eq(c.cancel_rc, EDEADLK);
    ck_assert_int_eq(c.destroy_rc, EDEADLK);
    ck_assert_int_eq(c.cancel_requested_after, 0);
    /* Nothing was done: the queued task ran, outside submits work. */
    ck_assert_int_eq(gather_future_wait(behind, NULL), 0);
    ck_assert(!gather_future_cancelled(behind));
    ck_assert_int_eq(atomic_load(&behind_ran), 1);
    check_pool_alive(p);

    gather_future_release(fb);
    gather_future_release(f);
    gather_future_release(behind);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    tu_gate_destroy(&gate);
    tu_count_destroy(&started);
    tu_count_destroy(&c.done);
}
END_TEST

START_TEST(test_shutdown_and_destroy_from_pool_thread_callback_are_edeadlk)
{
    gather_pool *p = tu_pool(2);
    tu_gate gate;
    tu_gate_init(&gate);
    tu_gated g = {.gate = &gate};
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_gated, &g, &f), 0);
    self_shutdown_ctx c = {.pool = p, .shutdown_rc = -1, .cancel_rc = -1,
                           .destroy_rc = -1};
    tu_count_init(&c.done);
    /* Added before completion: runs on the completing (pool) thread. */
    ck_assert_int_eq(gather_future_on_done(f, cb_shutdown_own_pool, &c), 0);
    tu_gate_open(&gate);
    ck_assert_int_eq(tu_count_wait(&c.done, 1), 0);
    ck_assert_int_eq(c.on_pool, 1);
    ck_assert_int_eq(c.shutdown_rc, EDEADLK);
    ck_assert_int_eq(c.cancel_rc, EDEADLK);
    ck_assert_int_eq(c.destroy_rc, EDEADLK);
    check_pool_alive(p);
    gather_future_release(f);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    tu_gate_destroy(&gate);
    tu_count_destroy(&c.done);
}
END_TEST

typedef struct other_ctx {
    gather_pool *other;
    int rc;
} other_ctx;

static int task_shutdown_other_pool(void *arg, void **result)
{
    other_ctx *c = (other_ctx *)arg;
    c->rc = gather_pool_shutdown(c->other, 0);
    *result = NULL;
    return 0;
}

START_TEST(test_shutdown_of_another_pool_from_task_is_allowed)
{
    gather_pool *a = tu_pool(1);
    gather_pool *b = tu_pool(1);
    other_ctx c = {.other = a, .rc = -1};
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(b, task_shutdown_other_pool, &c, &f), 0);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    ck_assert_int_eq(c.rc, 0);
    gather_future *g = SENTINEL_FUTURE;
    ck_assert_int_eq(gather_submit(a, tu_task_identity, NULL, &g), ESHUTDOWN);
    ck_assert_ptr_null(g);
    gather_future_release(f);
    ck_assert_int_eq(gather_pool_destroy(a), 0);
    ck_assert_int_eq(gather_pool_destroy(b), 0);
}
END_TEST

/* ---- the default pool, impossible stacks ---------------------------------- */

typedef struct default_ptr_ctx {
    gather_pool *pool;
    int shutdown_rc;
    int cancel_rc;
    int destroy_rc;
} default_ptr_ctx;

static int task_destroy_default_by_pointer(void *arg, void **result)
{
    default_ptr_ctx *c = (default_ptr_ctx *)arg;
    c->pool = gather_current_pool();
    c->shutdown_rc = gather_pool_shutdown(c->pool, 0);
    c->cancel_rc = gather_pool_shutdown(c->pool, GATHER_CANCEL_PENDING);
    c->destroy_rc = gather_pool_destroy(c->pool);
    *result = NULL;
    return 0;
}

START_TEST(test_shutdown_and_destroy_of_default_pool_pointer_are_einval)
{
    /* The default pool's own pointer (gather_current_pool() in one of its
     * tasks) is refused like NULL: EINVAL, not EDEADLK, inside the pool... */
    default_ptr_ctx c = {NULL, -1, -1, -1};
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(NULL, task_destroy_default_by_pointer, &c, &f), 0);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    gather_future_release(f);
    ck_assert_ptr_nonnull(c.pool);
    ck_assert_int_eq(c.shutdown_rc, EINVAL);
    ck_assert_int_eq(c.cancel_rc, EINVAL);
    ck_assert_int_eq(c.destroy_rc, EINVAL);
    /* ...and outside it. */
    ck_assert_int_eq(gather_pool_shutdown(c.pool, 0), EINVAL);
    ck_assert_int_eq(gather_pool_shutdown(c.pool, GATHER_CANCEL_PENDING), EINVAL);
    ck_assert_int_eq(gather_pool_destroy(c.pool), EINVAL);
    /* Nothing was done: the pool takes work by pointer and by NULL. */
    ck_assert_uint_eq(gather_pool_threads(c.pool), gather_pool_threads(NULL));
    for (int i = 0; i < 2; i++) {
        void *v = NULL;
        ck_assert_int_eq(gather_submit(i ? NULL : c.pool, tu_task_identity, &marker_a, &f), 0);
        ck_assert_int_eq(gather_future_wait(f, &v), 0);
        ck_assert_ptr_eq(v, &marker_a);
        gather_future_release(f);
    }
}
END_TEST

START_TEST(test_pool_create_with_impossible_stack_size_fails_cleanly)
{
    /* Sizes no system can give: refused (EINVAL) or not mappable (EAGAIN);
     * no pool either way, and the next request works. */
    const size_t sizes[] = {SIZE_MAX, SIZE_MAX - 4095, SIZE_MAX / 2,
                            (size_t)1 << (sizeof(size_t) * 8 - 2)};
    gather_pool_options o = {0};
    o.threads = 2;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        o.stack_size = sizes[i];
        gather_pool *p = (gather_pool *)&o; /* must be reset */
        int rc = gather_pool_create(&p, &o);
        ck_assert_msg(rc == EINVAL || rc == EAGAIN, "stack_size %zu: rc %d", sizes[i], rc);
        ck_assert_ptr_null(p);
    }
    o.stack_size = 0;
    gather_pool *p = NULL;
    ck_assert_int_eq(gather_pool_create(&p, &o), 0);
    check_pool_alive(p);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

/* ---- ESHUTDOWN ------------------------------------------------------------- */

START_TEST(test_submit_and_map_after_shutdown_are_eshutdown)
{
    gather_pool *p = tu_pool(2);
    ck_assert_int_eq(gather_pool_shutdown(p, 0), 0);
    atomic_int ran = 0;
    gather_future *f = SENTINEL_FUTURE;
    ck_assert_int_eq(gather_submit(p, tu_task_count, &ran, &f), ESHUTDOWN);
    ck_assert_ptr_null(f);
    ck_assert_int_eq(gather_submit(p, tu_task_count, &ran, NULL), ESHUTDOWN);
    void *args[2] = {&ran, &ran};
    gather_result res[2];
    ck_assert_int_eq(gather_map(p, tu_task_count, args, 2, res, 0), ESHUTDOWN);
    ck_assert_int_eq(gather_map(p, tu_task_count, args, 2, NULL,
                                GATHER_RETURN_ERRORS), ESHUTDOWN);
    ck_assert_int_eq(gather_pool_shutdown(p, 0), 0); /* again: harmless */
    ck_assert_int_eq(gather_pool_shutdown(p, GATHER_CANCEL_PENDING), 0);
    gather_pool_stats st;
    ck_assert_int_eq(gather_pool_stats_get(p, &st), 0);
    ck_assert_uint_eq(st.submitted, 0);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    ck_assert_int_eq(atomic_load(&ran), 0);
}
END_TEST

/* ---- futures --------------------------------------------------------------- */

START_TEST(test_submit_null_fn_is_einval)
{
    gather_pool *p = tu_pool(1);
    gather_future *f = SENTINEL_FUTURE;
    ck_assert_int_eq(gather_submit(p, NULL, &marker_a, &f), EINVAL);
    ck_assert_ptr_null(f);
    ck_assert_int_eq(gather_submit(p, NULL, NULL, NULL), EINVAL);
    f = SENTINEL_FUTURE;
    ck_assert_int_eq(gather_submit(NULL, NULL, NULL, &f), EINVAL);
    ck_assert_ptr_null(f);
    gather_pool_stats st;
    ck_assert_int_eq(gather_pool_stats_get(p, &st), 0);
    ck_assert_uint_eq(st.submitted, 0);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

START_TEST(test_null_future_accessors_answer_without_crashing)
{
    void *v = &marker_a;
    ck_assert_int_eq(gather_future_wait(NULL, &v), EINVAL);
    ck_assert_ptr_eq(v, &marker_a); /* untouched */
    ck_assert_int_eq(gather_future_wait(NULL, NULL), EINVAL);
    ck_assert(!gather_future_wait_for(NULL, 0));
    ck_assert(!gather_future_wait_for(NULL, GATHER_FOREVER)); /* at once */
    ck_assert(!gather_future_done(NULL));
    ck_assert_int_eq(gather_future_error(NULL), EINVAL);
    ck_assert_ptr_null(gather_future_value(NULL));
    ck_assert(!gather_future_cancel(NULL));
    ck_assert(!gather_future_cancelled(NULL));
    ck_assert_ptr_null(gather_future_retain(NULL));
    gather_future_release(NULL);
}
END_TEST

START_TEST(test_on_done_with_null_future_or_callback_is_einval)
{
    atomic_int calls = 0;
    ck_assert_int_eq(gather_future_on_done(NULL, cb_count, &calls), EINVAL);
    gather_pool *p = tu_pool(1);
    tu_gate gate;
    tu_gate_init(&gate);
    tu_gated g = {.gate = &gate};
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_gated, &g, &f), 0);
    ck_assert_int_eq(gather_future_on_done(f, NULL, &calls), EINVAL);
    ck_assert_int_eq(gather_future_on_done(f, cb_count, &calls), 0);
    tu_gate_open(&gate);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    ck_assert_int_eq(gather_future_on_done(f, NULL, &calls), EINVAL);
    gather_future_release(f);
    ck_assert_int_eq(gather_pool_destroy(p), 0); /* callbacks finished */
    ck_assert_int_eq(atomic_load(&calls), 1);
    tu_gate_destroy(&gate);
}
END_TEST

/* ---- EDEADLK: waiting for a task running beneath the caller ---------------- */

/* Every kind of wait on `target`, from a task that `target` runs beneath
 * on the same thread: each must answer at once instead of hanging. */
typedef struct wait_probe {
    int wait_rc;
    void *value; /* untouched on EDEADLK */
    int wait_for_forever;
    int wait_for_zero;
    int gather_rc;
    int gather_return_errors_rc;
    int gather_cancel_on_error_rc;
    int any_rc;
    size_t any_index; /* untouched on EDEADLK */
    /* Next to a done future: wait_any answers with it, gather still
     * refuses (EDEADLK comes first). */
    int any_with_done_rc;
    size_t any_with_done_index;
    int gather_with_done_rc;
} wait_probe;

static void probe_waits(gather_future *target, wait_probe *pr)
{
    pr->value = &marker_a;
    pr->wait_rc = gather_future_wait(target, &pr->value);
    pr->wait_for_forever = gather_future_wait_for(target, GATHER_FOREVER);
    pr->wait_for_zero = gather_future_wait_for(target, 0);
    gather_future *list[1] = {target};
    gather_result res[1];
    pr->gather_rc = gather_futures(list, 1, res, 0);
    pr->gather_return_errors_rc = gather_futures(list, 1, res, GATHER_RETURN_ERRORS);
    pr->gather_cancel_on_error_rc = gather_futures(list, 1, NULL, GATHER_CANCEL_ON_ERROR);
    pr->any_index = 77;
    pr->any_rc = gather_wait_any(list, 1, GATHER_FOREVER, &pr->any_index);
    gather_future *done = NULL;
    pr->any_with_done_rc = pr->gather_with_done_rc = -1;
    if (gather_submit(gather_current_pool(), tu_task_identity, &marker_b, &done) != 0)
        return;
    if (gather_future_wait(done, NULL) == 0) {
        gather_future *pair[2] = {target, done};
        pr->any_with_done_index = 77;
        pr->any_with_done_rc = gather_wait_any(pair, 2, GATHER_FOREVER, &pr->any_with_done_index);
        pr->gather_with_done_rc = gather_futures(pair, 2, NULL, GATHER_RETURN_ERRORS);
    }
    gather_future_release(done);
}

static void check_probe(const char *what, const wait_probe *pr)
{
    ck_assert_msg(pr->wait_rc == EDEADLK, "%s: wait %d", what, pr->wait_rc);
    ck_assert_ptr_eq(pr->value, &marker_a);
    ck_assert_msg(!pr->wait_for_forever && !pr->wait_for_zero, "%s: wait_for", what);
    ck_assert_msg(pr->gather_rc == EDEADLK, "%s: gather %d", what, pr->gather_rc);
    ck_assert_msg(pr->gather_return_errors_rc == EDEADLK, "%s: gather RETURN_ERRORS %d", what,
                  pr->gather_return_errors_rc);
    ck_assert_msg(pr->gather_cancel_on_error_rc == EDEADLK, "%s: gather CANCEL_ON_ERROR %d",
                  what, pr->gather_cancel_on_error_rc);
    ck_assert_msg(pr->any_rc == EDEADLK, "%s: wait_any %d", what, pr->any_rc);
    ck_assert_uint_eq(pr->any_index, 77);
    ck_assert_msg(pr->any_with_done_rc == 0 && pr->any_with_done_index == 1,
                  "%s: wait_any next to a done future: %d, index %zu", what,
                  pr->any_with_done_rc, pr->any_with_done_index);
    ck_assert_msg(pr->gather_with_done_rc == EDEADLK, "%s: gather next to a done future: %d",
                  what, pr->gather_with_done_rc);
}

/* A (outer) waits for its subtask B, which runs beneath it on the one
 * thread; B waits for its subtask C, which runs beneath both. B probes A,
 * C probes A and B. */
typedef struct beneath_ctx {
    tu_gate go;
    gather_future *outer;  /* A: set before `go` opens */
    gather_future *middle; /* B: set by A before it waits */
    pthread_t outer_thread;
    atomic_int outer_waiting, middle_waiting;
    int b_on_outer_thread, c_on_outer_thread;
    int b_saw_outer_waiting, c_saw_both_waiting;
    int outer_wait_rc, middle_wait_rc;
    wait_probe b_on_a, c_on_a, c_on_b;
} beneath_ctx;

static int task_beneath_c(void *arg, void **result)
{
    beneath_ctx *c = (beneath_ctx *)arg;
    c->c_on_outer_thread = pthread_equal(pthread_self(), c->outer_thread);
    c->c_saw_both_waiting = atomic_load(&c->outer_waiting) && atomic_load(&c->middle_waiting);
    probe_waits(c->outer, &c->c_on_a);
    probe_waits(c->middle, &c->c_on_b);
    *result = &marker_b;
    return 0;
}

static int task_beneath_b(void *arg, void **result)
{
    beneath_ctx *c = (beneath_ctx *)arg;
    c->b_on_outer_thread = pthread_equal(pthread_self(), c->outer_thread);
    c->b_saw_outer_waiting = atomic_load(&c->outer_waiting);
    probe_waits(c->outer, &c->b_on_a);
    gather_future *cf = NULL;
    if (gather_submit(gather_current_pool(), task_beneath_c, c, &cf) != 0)
        return -1;
    atomic_store(&c->middle_waiting, 1);
    c->middle_wait_rc = gather_future_wait(cf, NULL); /* runs C beneath B */
    atomic_store(&c->middle_waiting, 0);
    gather_future_release(cf);
    *result = &marker_b;
    return 0;
}

static int task_beneath_a(void *arg, void **result)
{
    beneath_ctx *c = (beneath_ctx *)arg;
    tu_gate_wait(&c->go);
    c->outer_thread = pthread_self();
    gather_future *bf = NULL;
    if (gather_submit(gather_current_pool(), task_beneath_b, c, &bf) != 0)
        return -1;
    c->middle = bf; /* before B can run: this is the pool's only thread */
    atomic_store(&c->outer_waiting, 1);
    c->outer_wait_rc = gather_future_wait(bf, NULL); /* runs B beneath A */
    atomic_store(&c->outer_waiting, 0);
    gather_future_release(bf);
    *result = &marker_a;
    return 0;
}

START_TEST(test_task_waiting_for_a_task_beneath_it_is_edeadlk)
{
    gather_pool *p = tu_pool(1);
    beneath_ctx *c = calloc(1, sizeof *c);
    ck_assert_ptr_nonnull(c);
    tu_gate_init(&c->go);
    c->outer_wait_rc = c->middle_wait_rc = -1;
    gather_future *fa = NULL;
    ck_assert_int_eq(gather_submit(p, task_beneath_a, c, &fa), 0);
    c->outer = fa;
    tu_gate_open(&c->go);
    void *v = NULL;
    ck_assert_int_eq(gather_future_wait(fa, &v), 0);
    ck_assert_ptr_eq(v, &marker_a);
    /* B and C really ran beneath their waiters, on the same thread. */
    ck_assert(c->b_on_outer_thread && c->b_saw_outer_waiting);
    ck_assert(c->c_on_outer_thread && c->c_saw_both_waiting);
    ck_assert_int_eq(c->outer_wait_rc, 0);
    ck_assert_int_eq(c->middle_wait_rc, 0);
    check_probe("B on A", &c->b_on_a);
    check_probe("C on A", &c->c_on_a);
    check_probe("C on B", &c->c_on_b);
    gather_future_release(fa);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    tu_gate_destroy(&c->go);
    free(c);
}
END_TEST

/* Documented as not detected: a task that waits for an aggregate holding
 * its own future waits for a future that cannot complete before it
 * returns. gather_future_wait() would never return; wait_for() answers
 * false by its timeout, and once the task returns the aggregate completes
 * with its result. */
typedef struct agg_self_ctx {
    tu_gate go;
    gather_future *self;
    gather_future *agg;
    int all_rc;
    int wait_for_result;
} agg_self_ctx;

static int task_wait_aggregate_of_self(void *arg, void **result)
{
    agg_self_ctx *c = (agg_self_ctx *)arg;
    tu_gate_wait(&c->go);
    gather_future *list[1] = {c->self};
    c->all_rc = gather_all(list, 1, 0, &c->agg);
    if (c->all_rc == 0)
        c->wait_for_result = gather_future_wait_for(c->agg, 20 * 1000000u);
    *result = &marker_b;
    return 0;
}

START_TEST(test_wait_on_aggregate_of_own_future_times_out_not_detected)
{
    gather_pool *p = tu_pool(1);
    agg_self_ctx c;
    memset(&c, 0, sizeof c);
    tu_gate_init(&c.go);
    c.all_rc = -1;
    c.wait_for_result = -1;
    gather_future *f = NULL;
    ck_assert_int_eq(gather_submit(p, task_wait_aggregate_of_self, &c, &f), 0);
    c.self = f;
    tu_gate_open(&c.go);
    ck_assert_int_eq(gather_future_wait(f, NULL), 0);
    ck_assert_int_eq(c.all_rc, 0);
    ck_assert_int_eq(c.wait_for_result, 0);
    void *v = NULL;
    ck_assert_int_eq(gather_future_wait(c.agg, &v), 0);
    gather_result *r = (gather_result *)v;
    ck_assert_int_eq(r[0].error, 0);
    ck_assert_ptr_eq(r[0].value, &marker_b);
    gather_future_release(c.agg);
    gather_future_release(f);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    tu_gate_destroy(&c.go);
}
END_TEST

/* ---- gathering ------------------------------------------------------------- */

START_TEST(test_gather_futures_argument_errors)
{
    gather_result res[2];
    /* n == 0: NULL arrays are fine, bad flags are not. */
    ck_assert_int_eq(gather_futures(NULL, 0, NULL, 0), 0);
    ck_assert_int_eq(gather_futures(NULL, 0, res, GATHER_RETURN_ERRORS), 0);
    ck_assert_int_eq(gather_futures(NULL, 0, NULL, GATHER_CANCEL_ON_ERROR), 0);
    ck_assert_int_eq(gather_futures(NULL, 0, NULL, 8u), EINVAL);
    ck_assert_int_eq(gather_futures(NULL, 0, NULL, 1u << 31), EINVAL);
    ck_assert_int_eq(gather_futures(NULL, 0, NULL,
                                    GATHER_RETURN_ERRORS | GATHER_CANCEL_ON_ERROR),
                     EINVAL);
    /* NULL list with n > 0. */
    ck_assert_int_eq(gather_futures(NULL, 1, res, 0), EINVAL);
    ck_assert_int_eq(gather_futures(NULL, 2, NULL, GATHER_RETURN_ERRORS), EINVAL);

    /* Against a running task: each answer must come at once (no wait) and
     * must not cancel it. */
    running r;
    running_start(&r, 1);
    gather_future *with_null[2] = {r.f, NULL};
    ck_assert_int_eq(gather_futures(with_null, 2, res, 0), EINVAL);
    ck_assert_int_eq(gather_futures(with_null, 2, NULL, GATHER_RETURN_ERRORS),
                     EINVAL);
    gather_future *one[1] = {r.f};
    ck_assert_int_eq(gather_futures(one, 1, res, 8u), EINVAL);
    ck_assert_int_eq(gather_futures(one, 1, res,
                                    GATHER_RETURN_ERRORS | GATHER_CANCEL_ON_ERROR),
                     EINVAL);
    ck_assert_int_eq(gather_futures(one, 1, res,
                                    GATHER_CANCEL_ON_ERROR | 8u), EINVAL);
    /* Overflowing counts (the array really has one entry). */
    guarded gl;
    guarded_init(&gl, r.f);
    gather_future *const *list = (gather_future *const *)gl.slot;
    for (size_t i = 0; i < N_HUGE; i++)
        ck_assert_int_eq(gather_futures(list, huge_counts[i], res, 0), EINVAL);
    ck_assert_int_eq(gather_futures(list, SIZE_MAX, NULL, 0), EINVAL);
    ck_assert_int_eq(gather_futures(list, SIZE_MAX / 2, NULL,
                                    GATHER_RETURN_ERRORS), EINVAL);
    guarded_free(&gl);
    running_finish(&r);
}
END_TEST

START_TEST(test_gather_all_argument_errors)
{
    gather_future *agg = NULL;
    ck_assert_int_eq(gather_all(NULL, 0, 0, NULL), EINVAL);
    ck_assert_int_eq(gather_all(NULL, 0, 8u, &agg), EINVAL);
    ck_assert_int_eq(gather_all(NULL, 0,
                                GATHER_RETURN_ERRORS | GATHER_CANCEL_ON_ERROR,
                                &agg), EINVAL);
    ck_assert_int_eq(gather_all(NULL, 1, 0, &agg), EINVAL);

    running r;
    running_start(&r, 1);
    gather_future *one[1] = {r.f};
    gather_future *with_null[2] = {r.f, NULL};
    ck_assert_int_eq(gather_all(one, 1, 0, NULL), EINVAL);
    ck_assert_int_eq(gather_all(with_null, 2, 0, &agg), EINVAL);
    ck_assert_int_eq(gather_all(one, 1, 1u << 5, &agg), EINVAL);
    ck_assert_int_eq(gather_all(one, 1,
                                GATHER_RETURN_ERRORS | GATHER_CANCEL_ON_ERROR,
                                &agg), EINVAL);
    guarded gl;
    guarded_init(&gl, r.f);
    for (size_t i = 0; i < N_HUGE; i++)
        ck_assert_int_eq(gather_all((gather_future *const *)gl.slot,
                                    huge_counts[i], 0, &agg), EINVAL);
    guarded_free(&gl);
    running_finish(&r);

    /* n == 0: an aggregate that is already done, error 0, value NULL. */
    const unsigned ok_flags[3] = {0, GATHER_RETURN_ERRORS, GATHER_CANCEL_ON_ERROR};
    for (int i = 0; i < 3; i++) {
        agg = NULL;
        ck_assert_int_eq(gather_all(NULL, 0, ok_flags[i], &agg), 0);
        ck_assert_ptr_nonnull(agg);
        ck_assert(gather_future_done(agg));
        ck_assert_int_eq(gather_future_error(agg), 0);
        ck_assert_ptr_null(gather_future_value(agg));
        ck_assert(!gather_future_cancelled(agg));
        ck_assert(!gather_future_cancel(agg)); /* done: false */
        void *v = &marker_a;
        ck_assert_int_eq(gather_future_wait(agg, &v), 0);
        ck_assert_ptr_null(v);
        gather_future_release(agg);
    }
}
END_TEST

START_TEST(test_gather_map_argument_errors)
{
    gather_pool *p = tu_pool(2);
    atomic_int ran = 0;
    void *args[1] = {&ran};
    gather_result res[1];
    ck_assert_int_eq(gather_map(p, NULL, args, 1, res, 0), EINVAL);
    ck_assert_int_eq(gather_map(p, NULL, NULL, 0, NULL, 0), EINVAL);
    ck_assert_int_eq(gather_map(p, tu_task_count, NULL, 1, res, 0), EINVAL);
    ck_assert_int_eq(gather_map(p, tu_task_count, NULL, 3, NULL,
                                GATHER_RETURN_ERRORS), EINVAL);
    ck_assert_int_eq(gather_map(p, tu_task_count, NULL, 0, NULL, 0), 0);
    ck_assert_int_eq(gather_map(p, tu_task_count, args, 0, res, 0), 0);
    ck_assert_int_eq(gather_map(p, tu_task_count, NULL, 0, NULL, 8u), EINVAL);
    ck_assert_int_eq(gather_map(p, tu_task_count, NULL, 0, NULL,
                                GATHER_RETURN_ERRORS | GATHER_CANCEL_ON_ERROR),
                     EINVAL);
    ck_assert_int_eq(gather_map(p, tu_task_count, args, 1, res, 1u << 7), EINVAL);
    ck_assert_int_eq(gather_map(p, tu_task_count, args, 1, res,
                                GATHER_RETURN_ERRORS | GATHER_CANCEL_ON_ERROR),
                     EINVAL);
    guarded ga;
    guarded_init(&ga, &ran);
    for (size_t i = 0; i < N_HUGE; i++)
        ck_assert_int_eq(gather_map(p, tu_task_count, ga.slot, huge_counts[i],
                                    res, 0), EINVAL);
    ck_assert_int_eq(gather_map(p, tu_task_count, ga.slot, SIZE_MAX, NULL,
                                GATHER_RETURN_ERRORS), EINVAL);
    guarded_free(&ga);
    /* Nothing was submitted by any of these. */
    gather_pool_stats st;
    ck_assert_int_eq(gather_pool_stats_get(p, &st), 0);
    ck_assert_uint_eq(st.submitted, 0);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
    ck_assert_int_eq(atomic_load(&ran), 0);
}
END_TEST

START_TEST(test_wait_any_argument_errors)
{
    gather_pool *p = tu_pool(2);
    gather_future *done = NULL;
    ck_assert_int_eq(gather_submit(p, tu_task_identity, NULL, &done), 0);
    ck_assert_int_eq(gather_future_wait(done, NULL), 0);
    gather_future *done_list[1] = {done};
    size_t idx = 99;
    /* n == 0 is EINVAL (unlike the other calls), with or without a list. */
    ck_assert_int_eq(gather_wait_any(done_list, 0, 0, &idx), EINVAL);
    ck_assert_int_eq(gather_wait_any(NULL, 0, GATHER_FOREVER, &idx), EINVAL);
    ck_assert_int_eq(gather_wait_any(NULL, 1, 0, &idx), EINVAL);
    ck_assert_int_eq(gather_wait_any(done_list, 1, 0, NULL), EINVAL);
    /* Overflowing n (n * sizeof(gather_future *)), though entry 0 is done. */
    const size_t any_huge[3] = {SIZE_MAX, SIZE_MAX / 2,
                                SIZE_MAX / sizeof(gather_future *) + 1};
    guarded gl;
    guarded_init(&gl, done);
    for (size_t i = 0; i < 3; i++)
        ck_assert_int_eq(gather_wait_any((gather_future *const *)gl.slot,
                                         any_huge[i], 0, &idx), EINVAL);
    guarded_free(&gl);
    ck_assert_uint_eq(idx, 99); /* untouched */

    running r;
    running_start(&r, 1);
    gather_future *with_null[2] = {r.f, NULL};
    ck_assert_int_eq(gather_wait_any(with_null, 2, GATHER_FOREVER, &idx), EINVAL);
    gather_future *one[1] = {r.f};
    ck_assert_int_eq(gather_wait_any(one, 1, GATHER_FOREVER, NULL), EINVAL);
    ck_assert_uint_eq(idx, 99);
    running_finish(&r);

    /* A valid call on the same list works. */
    ck_assert_int_eq(gather_wait_any(done_list, 1, 0, &idx), 0);
    ck_assert_uint_eq(idx, 0);
    gather_future_release(done);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

START_TEST(test_gather_map_with_null_results_runs_every_task)
{
    /* results may be NULL (not a misuse): the tasks run, the code is
     * returned as with a results array. */
    gather_pool *p = tu_pool(2);
    atomic_int ran = 0;
    void *args[3] = {&ran, &ran, &ran};
    ck_assert_int_eq(gather_map(p, tu_task_count, args, 3, NULL, 0), 0);
    ck_assert_int_eq(atomic_load(&ran), 3);
    ck_assert_int_eq(gather_map(p, tu_task_count, args, 3, NULL, GATHER_RETURN_ERRORS), 0);
    ck_assert_int_eq(atomic_load(&ran), 6);
    void *fail[2] = {(void *)(intptr_t)1021, (void *)(intptr_t)1021};
    ck_assert_int_eq(gather_map(p, tu_task_fail, fail, 2, NULL, GATHER_RETURN_ERRORS), 0);
    ck_assert_int_eq(gather_map(p, tu_task_fail, fail, 2, NULL, 0), 1021);
    ck_assert_int_eq(gather_pool_destroy(p), 0);
}
END_TEST

/* ---- version ---------------------------------------------------------------- */

START_TEST(test_version_string_matches_macros)
{
    const char *v = gather_version();
    ck_assert_ptr_nonnull(v);
    ck_assert_str_eq(v, "0.2.0");
    char expect[32];
    snprintf(expect, sizeof expect, "%d.%d.%d", GATHER_VERSION_MAJOR,
             GATHER_VERSION_MINOR, GATHER_VERSION_PATCH);
    ck_assert_str_eq(v, expect);
    ck_assert_str_eq(gather_version(), v);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("errors");

    /* First, so that with CK_FORK=no it still runs before any pool exists. */
    TCase *tc = tcase_create("allocator");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_replace_allocator_half_null_pair_is_einval);
    tcase_add_test(tc, test_failed_pool_create_leaves_allocator_replaceable);
    tcase_add_test(tc, test_replace_allocator_after_a_pool_existed_is_ebusy);
    suite_add_tcase(s, tc);

    tc = tcase_create("pools");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_pool_create_rejects_null_out_and_too_many_threads);
    tcase_add_test(tc, test_shutdown_and_destroy_of_null_are_einval);
    tcase_add_test(tc, test_default_pool_shutdown_from_its_task_is_einval);
    tcase_add_test(tc, test_shutdown_with_unknown_flags_is_einval_and_does_nothing);
    tcase_add_test(tc, test_stats_get_with_null_stats_is_einval);
    tcase_add_test(tc, test_shutdown_and_destroy_from_own_task_are_edeadlk);
    tcase_add_test(tc, test_shutdown_and_destroy_from_pool_thread_callback_are_edeadlk);
    tcase_add_test(tc, test_shutdown_of_another_pool_from_task_is_allowed);
    tcase_add_test(tc, test_submit_and_map_after_shutdown_are_eshutdown);
    tcase_add_test(tc, test_shutdown_and_destroy_of_default_pool_pointer_are_einval);
    tcase_add_test(tc, test_pool_create_with_impossible_stack_size_fails_cleanly);
    suite_add_tcase(s, tc);

    tc = tcase_create("futures");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_submit_null_fn_is_einval);
    tcase_add_test(tc, test_null_future_accessors_answer_without_crashing);
    tcase_add_test(tc, test_on_done_with_null_future_or_callback_is_einval);
    tcase_add_test(tc, test_task_waiting_for_a_task_beneath_it_is_edeadlk);
    tcase_add_test(tc, test_wait_on_aggregate_of_own_future_times_out_not_detected);
    suite_add_tcase(s, tc);

    tc = tcase_create("gathering");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_gather_futures_argument_errors);
    tcase_add_test(tc, test_gather_all_argument_errors);
    tcase_add_test(tc, test_gather_map_argument_errors);
    tcase_add_test(tc, test_wait_any_argument_errors);
    tcase_add_test(tc, test_gather_map_with_null_results_runs_every_task);
    tcase_add_test(tc, test_version_string_matches_macros);
    suite_add_tcase(s, tc);

    return tu_run_suite(s);
}
