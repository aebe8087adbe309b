/* SPDX-License-Identifier: MIT */
/*
 * cq.c - the completion queue: futures handed out in the order they finish
 * (asyncio.as_completed, ExecutorCompletionService, tokio's JoinSet), and a
 * file descriptor that polls readable while one waits to be handed out.
 *
 * DESIGN: gather_cq_add() puts an entry (future, user_data) on the future's
 * listener list (future.c). When the future completes, the completing
 * thread fires the entry: it takes the queue's lock once, appends the entry
 * to the FIFO of ready entries, and wakes one parked consumer. So the FIFO
 * is in completion order, and the completing thread takes no other lock.
 * gather_cq_next() pops the oldest ready entry under the same lock and
 * hands its reference to the caller. While nothing is ready it waits as
 * gather_future_wait() does: on a pool thread it helps (runs tasks of its
 * pool), and parks only when there is nothing to run, registered both in
 * the queue's waiter list and in its pool's sleep registry, so that either
 * a completion or new work wakes it; off the pool it parks at once.
 *
 * The descriptor (an eventfd, a pipe elsewhere), made on the first
 * gather_cq_fd() call, mirrors "the FIFO is not empty", and only changes
 * under the lock: the push that makes the FIFO non-empty writes it (counter
 * 1), the pop that empties it reads it (counter 0), and creating it while
 * entries are ready writes it at once. As every change of the FIFO and of
 * the counter happens in one critical section, between two critical
 * sections the descriptor is readable exactly when the FIFO is non-empty:
 * no readiness after the last entry was handed out, no missed edge when a
 * completion races a pop (lib/cq.pml checks it; its BUGGY variant signals
 * after unlocking and is caught).
 *
 * Lifetime: the queue is reference-counted, one reference for its owner and
 * one for each entry still on a future's listener list (a listener cannot
 * be taken back off a future). gather_cq_destroy() marks the queue
 * destroyed, gives back the ready entries' references, closes the
 * descriptor and drops the owner's reference; an entry that fires later
 * sees the mark, releases its future and drops the entry's reference; the
 * last reference frees the queue.
 *
 * Locks: cq->lock guards every field of the queue. The queue has no atomics
 * of its own: the lock's release/acquire orders everything, and carries a
 * future's result (published by future.c's acq_rel CAS of DONE, which the
 * completing thread made or saw before firing) to the consumer that pops
 * it. (The one atomic store here is the worker's relaxed `waiting` hint for
 * the monitor, exactly as wait.c makes it.) Nesting:
 * cq->lock, then a waiter's parker lock (a completion unparks under
 * cq->lock, so that a waiter that has left the list is never touched
 * again). The sleep registry's lock is never taken while cq->lock is held,
 * and nothing takes cq->lock while holding another lock of the library.
 */
#include "internal.h"

#include <fcntl.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/eventfd.h>
#endif

/* One gather_cq_add(): on the future's listener list while it is pending,
 * then on the ready FIFO. */
typedef struct cq_entry {
    gather__listener listener; /* first: fire() casts back */
    gather_cq *cq;
    gather_future *f;          /* the queue's reference */
    void *user_data;
    struct cq_entry *next;     /* ready FIFO link, guarded by cq->lock */
} cq_entry;

/* A thread parked in gather_cq_next(), on its stack. */
typedef struct cq_waiter {
    gather__parker parker;
    struct cq_waiter *prev, *next; /* guarded by cq->lock */
    bool listed;                   /* idem: on cq->waiters */
} cq_waiter;

struct gather_cq {
    pthread_mutex_t lock;
    /* Everything below is guarded by lock. */
    cq_entry *head, *tail;     /* ready FIFO, oldest first */
    size_t outstanding;        /* added and not yet handed out */
    size_t refs;               /* owner + entries still listening */
    size_t inside;             /* threads inside gather_cq_next() */
    cq_waiter *waiters;        /* parked consumers, first woken first */
    cq_waiter *waiters_tail;
    int fd;                    /* -1 until gather_cq_fd() */
    int fd_write;              /* pipe fallback: the write end, else fd */
    bool destroyed;
};

/* ---- the descriptor ------------------------------------------------------ */

/* cq->lock held, fd made: the FIFO became non-empty. The counter is 0
 * here (it mirrors an empty FIFO), so the write cannot block or overflow. */
static void cq_fd_raise(gather_cq *cq)
{
#if defined(__linux__)
    uint64_t one = 1;
    ssize_t n;
    do
        n = write(cq->fd_write, &one, sizeof one);
    while (n < 0 && errno == EINTR);
#else
    char one = 1;
    ssize_t n;
    do
        n = write(cq->fd_write, &one, 1);
    while (n < 0 && errno == EINTR);
#endif
    (void)n;
}

/* cq->lock held, fd made: the FIFO became empty. The counter is 1 here,
 * and the read resets it to 0 (a pipe holds one byte). */
static void cq_fd_lower(gather_cq *cq)
{
#if defined(__linux__)
    uint64_t v;
    ssize_t n;
    do
        n = read(cq->fd, &v, sizeof v);
    while (n < 0 && errno == EINTR);
#else
    char v;
    ssize_t n;
    do
        n = read(cq->fd, &v, 1);
    while (n < 0 && errno == EINTR);
#endif
    (void)n;
}

static int cq_fd_make(gather_cq *cq)
{
#if defined(__linux__)
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0)
        return errno == ENODEV ? ENOMEM : errno;
    cq->fd = cq->fd_write = fd;
#else
    int p[2];
    if (pipe(p) != 0)
        return errno;
    for (int i = 0; i < 2; i++) {
        int fl = fcntl(p[i], F_GETFL);
        fcntl(p[i], F_SETFL, fl | O_NONBLOCK);
        fcntl(p[i], F_SETFD, FD_CLOEXEC);
    }
    cq->fd = p[0];
    cq->fd_write = p[1];
#endif
    return 0;
}

static void cq_fd_close(int fd, int fd_write)
{
    if (fd >= 0)
        close(fd);
    if (fd_write >= 0 && fd_write != fd)
        close(fd_write);
}

/* ---- waiters --------------------------------------------------------------- */

/* cq->lock held. */
static void cq_waiter_list(gather_cq *cq, cq_waiter *w)
{
    w->next = NULL;
    w->prev = cq->waiters_tail;
    if (cq->waiters_tail != NULL)
        cq->waiters_tail->next = w;
    else
        cq->waiters = w;
    cq->waiters_tail = w;
    w->listed = true;
}

/* cq->lock held, w listed. */
static void cq_waiter_unlist(gather_cq *cq, cq_waiter *w)
{
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        cq->waiters = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    else
        cq->waiters_tail = w->prev;
    w->prev = w->next = NULL;
    w->listed = false;
}

/* cq->lock held: unlists and unparks up to n waiters (first listed first).
 * Under the lock, so that a waiter, which unlists itself under the lock
 * before it returns, is never touched once gone. */
static void cq_wake(gather_cq *cq, size_t n)
{
    for (; n > 0 && cq->waiters != NULL; n--) {
        cq_waiter *w = cq->waiters;
        cq_waiter_unlist(cq, w);
        gather__unpark(&w->parker);
    }
}

/* ---- the FIFO -------------------------------------------------------------- */

/* cq->lock held: appends a ready entry, raises the descriptor on the empty
 * to non-empty edge, wakes one consumer. */
static void cq_push(gather_cq *cq, cq_entry *e)
{
    e->next = NULL;
    if (cq->tail != NULL) {
        cq->tail->next = e;
    } else {
        cq->head = e;
        if (cq->fd >= 0)
            cq_fd_raise(cq);
    }
    cq->tail = e;
    cq_wake(cq, 1);
}

/* cq->lock held: the oldest ready entry, unlinked (NULL when none). Lowers
 * the descriptor on the non-empty to empty edge; when it was the last
 * outstanding entry, wakes every waiter (they answer ENOENT). */
static cq_entry *cq_pop(gather_cq *cq)
{
    cq_entry *e = cq->head;
    if (e == NULL)
        return NULL;
    cq->head = e->next;
    if (cq->head == NULL) {
        cq->tail = NULL;
        if (cq->fd >= 0)
            cq_fd_lower(cq);
    }
    if (--cq->outstanding == 0)
        cq_wake(cq, SIZE_MAX);
    return e;
}

static void cq_free(gather_cq *cq)
{
    pthread_mutex_destroy(&cq->lock);
    gather__free(cq);
}

/* The listener: runs once, on the thread that completes the future (or on
 * gather_cq_add()'s, for a future already done), after DONE is published. */
static void cq_fire(gather__listener *l, gather_future *f)
{
    (void)f; /* == e->f */
    cq_entry *e = (cq_entry *)l;
    gather_cq *cq = e->cq;
    gather__lock(&cq->lock);
    if (!cq->destroyed) {
        cq_push(cq, e);
        /* The entry's reference goes with it to the FIFO, which the
         * owner's reference covers: it cannot be the last. */
        cq->refs--;
        gather__unlock(&cq->lock);
        return;
    }
    bool last = --cq->refs == 0;
    gather__unlock(&cq->lock);
    /* f stays valid: its completer holds a reference across the call. */
    gather_future_release(e->f);
    gather__free(e);
    if (last)
        cq_free(cq);
}

/* ---- public ---------------------------------------------------------------- */

int gather_cq_create(gather_cq **out)
{
    if (out == NULL)
        return EINVAL;
    *out = NULL;
    gather_cq *cq = gather__malloc(sizeof *cq);
    if (cq == NULL)
        return ENOMEM;
    int rc = pthread_mutex_init(&cq->lock, NULL);
    if (rc != 0) {
        gather__free(cq);
        return rc;
    }
    cq->head = cq->tail = NULL;
    cq->outstanding = 0;
    cq->refs = 1;
    cq->inside = 0;
    cq->waiters = cq->waiters_tail = NULL;
    cq->fd = cq->fd_write = -1;
    cq->destroyed = false;
    *out = cq;
    return 0;
}

int gather_cq_add(gather_cq *cq, gather_future *f, void *user_data)
{
    if (cq == NULL || f == NULL)
        return EINVAL;
    cq_entry *e = gather__malloc(sizeof *e);
    if (e == NULL)
        return ENOMEM;
    e->listener.fire = cq_fire;
    e->cq = cq;
    e->f = gather_future_retain(f);
    e->user_data = user_data;
    gather__lock(&cq->lock);
    cq->outstanding++;
    if (gather_future_done(f)) { /* ready at once: one critical section */
        cq_push(cq, e);
        gather__unlock(&cq->lock);
        return 0;
    }
    cq->refs++; /* the entry's, until it fires */
    gather__unlock(&cq->lock);
    if (!gather__future_listen(f, &e->listener))
        cq_fire(&e->listener, f); /* completed meanwhile */
    return 0;
}

/* On a pool thread whose registered parker a submitter's wake-up reached
 * as it leaves: a wake-up for work must not be lost, so if work is still
 * visible it goes to another sleeper (as wait.c:helping_sleep does). */
static void cq_pass_wake(gather__worker *w)
{
    if (gather__worker_work_visible(w))
        gather__sleep_wake_one(gather__worker_sleep(w));
}

static bool cq_expired(const struct timespec *deadline)
{
    if (deadline == NULL)
        return false;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > deadline->tv_sec ||
           (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec);
}

/*
 * cq->lock held on entry and on return; nothing ready and something
 * outstanding on entry. Helps (pool thread) and parks until an entry is
 * ready (*out), none is outstanding (ENOENT), or the deadline (ETIMEDOUT).
 */
static int cq_wait(gather_cq *cq, const struct timespec *deadline,
                   cq_entry **out)
{
    gather__worker *w = gather__worker_self();
    cq_waiter me;
    bool parker_ok = false;
    bool woken_for_work = false;
    int rc;
    for (;;) {
        /* cq->lock is held at the top of the loop. */
        if ((*out = cq_pop(cq)) != NULL) {
            rc = 0;
            break;
        }
        if (cq->outstanding == 0) {
            rc = ENOENT;
            break;
        }
        if (w != NULL) {
            gather__unlock(&cq->lock);
            bool helped = gather__worker_help(w);
            gather__lock(&cq->lock);
            if (helped) {
                woken_for_work = false;
                if (!cq_expired(deadline))
                    continue;
                /* a helped task may keep us past the deadline: look once */
                if ((*out = cq_pop(cq)) != NULL)
                    rc = 0;
                else
                    rc = cq->outstanding == 0 ? ENOENT : ETIMEDOUT;
                break;
            }
        }
        if (cq_expired(deadline)) {
            rc = ETIMEDOUT;
            break;
        }
        if (!parker_ok) {
            rc = gather__parker_init(&me.parker);
            if (rc != 0)
                break;
            parker_ok = true;
        }
        /* Listed under the lock that every push takes: a completion after
         * this point unparks us (the parker keeps the token if we have not
         * parked yet), so it is never lost. */
        cq_waiter_list(cq, &me);
        gather__unlock(&cq->lock);
        /* Deep in nested tasks a waiter takes only its own deque's work
         * (helped above), and parks out of the registry, so that no wake-up
         * meant for work is swallowed here (as wait.c does). */
        gather__sleep *s = w != NULL && !gather__worker_helps_locally_only()
                               ? gather__worker_sleep(w) : NULL;
        bool park = true;
        if (s != NULL) {
            /* sleep.c's Dekker pattern: registered, then re-check work. */
            gather__sleep_enter(s, &me.parker, false);
            if (gather__worker_work_visible(w)) {
                woken_for_work = !gather__sleep_leave(s, &me.parker);
                park = false;
            }
        }
        int prc = 0;
        if (park && s != NULL) {
            /* relaxed, own line, as in wait.c: tells the monitor that this
             * worker is parked where new work wakes it (not blocked). */
            atomic_store_explicit(&w->waiting, 1, memory_order_relaxed);
            prc = gather__park(&me.parker, deadline);
            atomic_store_explicit(&w->waiting, 0, memory_order_relaxed);
            woken_for_work = !gather__sleep_leave(s, &me.parker);
        } else if (park) {
            prc = gather__park(&me.parker, deadline);
        }
        gather__lock(&cq->lock);
        if (me.listed)
            cq_waiter_unlist(cq, &me);
        (void)prc; /* a timeout is noticed by cq_expired() after a look */
    }
    if (parker_ok) {
        /* Not listed (the loop exits with the lock held, after unlisting),
         * not registered: nobody touches the parker any more. */
        gather__parker_destroy(&me.parker);
    }
    if (woken_for_work) {
        gather__unlock(&cq->lock);
        cq_pass_wake(w);
        gather__lock(&cq->lock);
    }
    return rc;
}

int gather_cq_next(gather_cq *cq, uint64_t timeout_ns, gather_future **f,
                   void **user_data)
{
    if (cq == NULL || f == NULL)
        return EINVAL;
    struct timespec deadline;
    if (timeout_ns != 0 && timeout_ns != GATHER_FOREVER)
        gather__deadline(&deadline, timeout_ns);
    gather__lock(&cq->lock);
    cq->inside++;
    int rc = 0;
    cq_entry *e = cq_pop(cq);
    if (e == NULL) {
        if (cq->outstanding == 0)
            rc = ENOENT;
        else if (timeout_ns == 0)
            rc = ETIMEDOUT;
        else
            rc = cq_wait(cq, timeout_ns == GATHER_FOREVER ? NULL : &deadline,
                         &e);
    }
    cq->inside--;
    gather__unlock(&cq->lock);
    /* Not touching cq from here: a destroy may run once we left it. */
    if (e == NULL)
        return rc;
    *f = e->f; /* the queue's reference, now the caller's */
    if (user_data != NULL)
        *user_data = e->user_data;
    gather__free(e);
    return 0;
}

int gather_cq_fd(gather_cq *cq, int *fd)
{
    if (cq == NULL || fd == NULL)
        return EINVAL;
    int rc = 0;
    gather__lock(&cq->lock);
    if (cq->fd < 0) {
        rc = cq_fd_make(cq);
        if (rc == 0 && cq->head != NULL)
            cq_fd_raise(cq); /* entries already ready: readable at once */
    }
    if (rc == 0)
        *fd = cq->fd;
    gather__unlock(&cq->lock);
    return rc;
}

int gather_cq_destroy(gather_cq *cq)
{
    if (cq == NULL)
        return EINVAL;
    gather__lock(&cq->lock);
    if (cq->inside != 0) {
        gather__unlock(&cq->lock);
        return EBUSY;
    }
    cq->destroyed = true;
    cq_entry *ready = cq->head;
    cq->head = cq->tail = NULL;
    int fd = cq->fd, fd_write = cq->fd_write;
    cq->fd = cq->fd_write = -1;
    bool last = --cq->refs == 0;
    gather__unlock(&cq->lock);
    while (ready != NULL) {
        cq_entry *next = ready->next;
        gather_future_release(ready->f);
        gather__free(ready);
        ready = next;
    }
    cq_fd_close(fd, fd_write);
    if (last)
        cq_free(cq);
    return 0;
}

size_t gather__cq_inside(gather_cq *cq)
{
    gather__lock(&cq->lock);
    size_t n = cq->inside;
    gather__unlock(&cq->lock);
    return n;
}
