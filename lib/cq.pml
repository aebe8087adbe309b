/* SPDX-License-Identifier: MIT */
/*
 * cq.pml - spin model of the completion queue's readiness protocol (cq.c):
 * the descriptor is readable exactly while a finished future waits to be
 * handed out (no readiness after the last hand-out, no missed edge when a
 * completion races a hand-out), a consumer parked in gather_cq_next() is
 * always woken (by a completion, or by ENOENT when another consumer took
 * the last one), and every future is handed out exactly once.
 * Checked by tests/models/run_spin.sh (CTest: model_cq).
 *
 * What mirrors what:
 *   proctype producer  cq.c:cq_fire -> cq_push, on the completing thread:
 *                      under cq->lock, append; on the empty -> non-empty
 *                      edge with a descriptor, cq_fd_raise (eventfd write
 *                      of 1); cq_wake(1): unlist and unpark one waiter
 *   proctype loop      an event loop (examples/evloop_epoll.c): first
 *                      gather_cq_fd() (made under the lock; raised at once
 *                      when entries are ready), then poll until readable,
 *                      then gather_cq_next(cq, 0) until it finds nothing
 *   proctype waiter    gather_cq_next(cq, GATHER_FOREVER) off the pool, in a
 *                      loop until ENOENT: cq_pop, or list itself on
 *                      cq->waiters under the lock, unlock, gather__park,
 *                      relock and unlist (cq_wait)
 *   inline pop         cq.c:cq_pop: unlink the oldest; on the non-empty ->
 *                      empty edge with a descriptor, cq_fd_lower (eventfd
 *                      read: the counter drops to 0); when none is
 *                      outstanding any more, cq_wake(SIZE_MAX)
 *   proctype observer  at one moment, any moment, between critical
 *                      sections: readable == (FIFO non-empty)
 *   finish             the last consumer to finish: every future handed
 *                      out once, the FIFO empty, the descriptor not readable
 *   ltl all_done       both consumers finish (no lost wake-up, no missed
 *                      edge)
 *
 * Size: NP = 3 producers (three added futures completing in any order and
 * at any moment relative to the consumers and to the descriptor's
 * creation), two consumers. A few thousand states.
 *
 * Abstraction, and why it is sound:
 *  - A critical section under cq->lock is one atomic step (Lipton: the
 *    acquire moves right, the release left, and every access to the
 *    guarded fields happens under the lock). The descriptor's counter is
 *    only written inside those sections (cq_fd_raise, cq_fd_lower and the
 *    creation in gather_cq_fd), which is the point of the design; BUGGY
 *    moves the write out of the section, as a lock-free signaller would.
 *  - poll() and epoll are level-triggered readiness tests of the counter:
 *    a guard `fdc > 0`. An eventfd write adds to the counter, a read
 *    resets it to 0.
 *  - The parker is its token (sleep.c: gather__park consumes it,
 *    gather__unpark sets it, a token set before the park is kept).
 *  - The event loop's own stop condition (an application knows how many
 *    futures it added) reads `outstanding` as a ghost: the descriptor tells
 *    of ready futures, not of the end.
 *  - A consumer on a pool thread helps between looks and also parks in its
 *    pool's sleep registry; that part is sleep.c's protocol (sleep.pml).
 *    Completion itself (DONE, then the listeners) is future.pml's.
 *
 * BUGGY (spin -DBUGGY -a): the producer decides under the lock that the
 * FIFO went non-empty, but writes the eventfd after unlocking. spin finds
 * the readiness lost in between (the observer sees a ready future and a
 * descriptor that is not readable; or a consumer empties the FIFO first and
 * the late write leaves the descriptor readable with nothing ready).
 * BUGGY_WAKE: the waiter lists itself after unlocking; spin finds the lost
 * wake-up (the other consumer takes the last future in between, its ENOENT
 * broadcast misses the waiter, which parks forever).
 */

#ifndef NP
#define NP 3
#endif

byte ready;               /* cq->head..tail: entries in the FIFO */
byte outstanding = NP;    /* cq->outstanding: added, not handed out */
bool fd;                  /* gather_cq_fd() made the descriptor */
byte fdc;                 /* the eventfd counter: readable while > 0 */
bool listed;              /* the waiter is on cq->waiters */
bool notified;            /* its parker's token */
byte taken;               /* ghost: futures handed out */
byte finished;            /* ghost: consumers that returned */

ltl all_done { <> (finished == 2) }

/* cq.c:cq_pop, cq->lock held, ready > 0. */
inline pop()
{
    ready--;
    outstanding--;
    taken++;
    if
    :: ready == 0 && fd -> fdc = 0   /* cq_fd_lower */
    :: else -> skip
    fi;
    if
    :: outstanding == 0 && listed -> listed = false; notified = true
    :: else -> skip
    fi
}

inline finish()
{
    atomic {
        finished++;
        if
        :: finished == 2 ->
            assert(taken == NP && ready == 0 && outstanding == 0);
            assert(!fd || fdc == 0)
        :: else -> skip
        fi
    }
}

active [NP] proctype producer()
{
#ifndef BUGGY
    atomic {
        ready++;
        if
        :: ready == 1 && fd -> fdc++   /* cq_fd_raise */
        :: else -> skip
        fi;
        if
        :: listed -> listed = false; notified = true   /* cq_wake(1) */
        :: else -> skip
        fi
    }
#else
    bool raise;
    atomic {
        ready++;
        raise = ready == 1 && fd;
        if
        :: listed -> listed = false; notified = true
        :: else -> skip
        fi
    }
    if
    :: raise -> fdc++   /* after unlocking */
    :: else -> skip
    fi
#endif
}

active proctype loop()
{
    bool more;
    atomic {   /* gather_cq_fd */
        fd = true;
        if
        :: ready > 0 -> fdc++
        :: else -> skip
        fi
    }
    do
    :: fdc > 0 ->   /* poll: readable */
        more = true;
        do
        :: more ->
            atomic {   /* gather_cq_next(cq, 0) */
                if
                :: ready > 0 -> pop()
                :: else -> more = false   /* ETIMEDOUT or ENOENT */
                fi
            }
        :: else -> break
        od
    :: outstanding == 0 -> break
    od;
    finish()
}

#define GOT 1
#define NOENT 2
#define PARK 3

active proctype waiter()
{
    byte st;
again:
    atomic {
        listed = false;   /* back from the park: unlist (cq_wait) */
        if
        :: ready > 0 -> pop(); st = GOT
        :: ready == 0 && outstanding == 0 -> st = NOENT
        :: else ->
#ifndef BUGGY_WAKE
            listed = true;
#endif
            st = PARK
        fi
    }
    if
    :: st == GOT -> goto again
    :: st == NOENT -> goto fin
    :: st == PARK ->
#ifdef BUGGY_WAKE
        listed = true;   /* after unlocking */
#endif
        atomic { notified -> notified = false };   /* gather__park */
        goto again
    fi;
fin:
    finish()
}

active proctype observer()
{
    assert(!fd || (fdc > 0) == (ready > 0))
}
