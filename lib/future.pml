/* SPDX-License-Identifier: MIT */
/*
 * future.pml - spin model of the future state machine (future.c) and of
 * the waits that listen to it (wait.c): completion happens exactly once,
 * each done callback fires exactly once, a waiter that registered is
 * always woken, and nothing touches the future (or a waitset, or a
 * callback node) after the last reference to it is dropped.
 * Checked by tests/models/run_spin.sh (CTest: model_future).
 *
 * What mirrors what:
 *   proctype completer   pool.c:run_task on a worker: the claim
 *                        (fetch_or CLAIMED), discard_cancelled when a
 *                        canceller claimed first, else the task runs and
 *                        future.c:gather__future_complete_release
 *   inline publish_done  future.c:publish_done (the CAS that sets DONE and,
 *                        without LISTENED, drops the completer's reference;
 *                        free_future when that was the last)
 *   inline close_and_fire future.c:close_and_fire + fire_all (swap the list
 *                        for the closed marker, fire oldest first)
 *   inline fire          future.c:fire_callback (free the node, call) and
 *                        wait.c:fire_entry (remaining--, trigger: exchange
 *                        `triggered` and gather__unpark, ws_release)
 *   inline listen        future.c:gather__future_listen (set LISTENED unless
 *                        DONE, then push unless the list is closed)
 *   inline release_last  future.c:gather_future_release (a count of 1 is
 *                        freed without an RMW; else fetch_sub, the last one
 *                        frees), a thread's last act
 *   inline ws_release    wait.c:ws_release (the last reference frees the
 *                        waitset)
 *   proctype canceller   future.c:gather_future_cancel (pending: claim with
 *                        CANCEL_REQ and complete; running: only CANCEL_REQ;
 *                        done: nothing), then releases its reference
 *   proctype waiter      wait.c:gather_future_wait off the pool ->
 *                        gather__wait(WAIT_ALL, n = 1): DONE test, ws_get,
 *                        arm (refs 1 + n, listen; done: skip the entry and
 *                        trigger), parked_sleep, ws_put, read the result,
 *                        then releases its reference
 *   proctype registrar   future.c:gather_future_on_done (node, listen; done
 *                        meanwhile: free the node and call here), then
 *                        releases its reference
 *   proctype checker     once every thread has finished: completed once,
 *                        each callback fired once, every waiter woke, the
 *                        future freed, no waitset or node left (no leak)
 *   ltl all_finish       every thread finishes: the waiters are woken
 *
 * Size: 1 completer (the worker, holding the queue's reference),
 * 1 canceller, 2 waiters, 2 callback registrars; each user thread holds one
 * reference of its own (6 in all), released in whatever order the
 * interleaving gives. About 2.4 million states.
 *
 * Abstraction, and why it is sound:
 *  - Sequentially consistent memory. The C's orders are argued in
 *    future.c and docs/design.md: every transition and reference change is
 *    an RMW on the one state word (totally ordered), the listener word is
 *    pushed with release and taken with acq_rel, and readers of DONE
 *    acquire. The model checks the protocol on top of that.
 *  - A CAS loop is one atomic step: its retries after a failed CAS change
 *    nothing, and the successful CAS acts on the value it compared, so the
 *    loop is equivalent to an atomic read-modify-write at that CAS.
 *  - The listener word is a stack of ids (1, 2: the waiters' entries; 3,
 *    4: the callbacks), lst[0] the oldest, and `closed` for
 *    gather__listeners_closed. "freed" flags stand for free_future, the
 *    waitset's free and the callback node's free; every access asserts
 *    that its block is alive. The checker's and ltl's counters are ghosts,
 *    bumped in the step they follow.
 *  - Accesses to memory no other thread can reach yet (a waitset or node
 *    before it is pushed, an entry skipped by arm) or any more (a future
 *    whose count reached 0, a result fixed by DONE while a reference is
 *    held) commute with every other thread's steps, so they are merged
 *    into the step next to them (Lipton reduction). For the same reason
 *    fire_entry's gather__unpark is one step with its ws_release: the
 *    entry's own reference keeps the waitset alive across both.
 *  - gather_future_release's acquire load and its fetch_sub are one step:
 *    a load that finds 1 frees at once, a load that finds more is followed
 *    by a fetch_sub whose old value decides, and both orders free the
 *    block exactly when the count reaches 0, as the merged step does.
 *  - parked_sleep's "while (!triggered) park" is a wait for `triggered`:
 *    the trigger sets it before unparking, so the waiter may leave between
 *    the two (a superset of the real waits, which also contains the ones
 *    that test `triggered` before parking).
 *  - gather__wait tests DONE again (check_full) before arming; a DONE seen
 *    there ends the wait like a DONE seen by arm's listen, which is
 *    modelled. gather_future_cancel's retain/release around its completion
 *    is left out: the caller's reference, held across it, already keeps
 *    the future alive, and no modelled callback releases it.
 *  - The task's body, the pool and the result values are left out (the
 *    pool side is drain.pml); the spare waitset (ws_put keeping it for the
 *    next wait) is modelled as ws_release, what ws_put does when the
 *    spare slot is taken; a pool thread's wait helps first and then arms
 *    and parks the same way, registered in the sleep registry (sleep.pml).
 *    Aggregates (gather.c) are not modelled.
 *
 * BUGGY (spin -DBUGGY -a): gather__future_listen pushes its listener
 * without re-checking for the closed list after setting LISTENED. spin
 * finds a listener pushed after the completer took the list: a waiter that
 * is never woken (invalid end state in the safety run, acceptance cycle in
 * the liveness run).
 * BUGGY_RELEASE: the completer drops its reference in the DONE CAS even
 * when LISTENED is set, then fires the list: spin finds a use after free.
 */

#define NWAITERS 2
#define NCALLBACKS 2
#define NTHREADS 6 /* completer, canceller, waiters, registrars */

/* the future: state word and listener word (future.c) */
bool claimed;         /* GATHER__CLAIMED */
bool done;            /* GATHER__DONE */
bool cancel_req;      /* GATHER__CANCEL_REQ */
bool listened;        /* GATHER__LISTENED */
byte refs = NTHREADS; /* gather__refs(state) */
byte lst[4];          /* listener stack, lst[0] oldest */
byte nl;              /* listeners pushed */
bool closed;          /* listeners == &gather__listeners_closed */
bool freed;           /* free_future ran */

/* the waiters' waitsets (wait.c), one each */
byte ws_refs[NWAITERS];
byte remaining[NWAITERS];
bool triggered[NWAITERS];
bool ws_freed[NWAITERS];

/* the callbacks' nodes and calls */
bool node_live[NCALLBACKS];
byte fired[NCALLBACKS];

/* ghosts */
byte completions;     /* DONE published */
byte woken;           /* waiters that returned with the result */
byte finished;        /* threads that finished */

ltl all_finish { <> (finished == NTHREADS) }

/* The waiter's last step: read the result (wait.c:gather_future_wait
 * reads f->value and f->error, fixed once DONE), then release_last. */
inline woken_release()
{
    atomic {
        assert(!freed && done);
        woken++;
        if
        :: refs == 1 -> refs = 0; freed = true
        :: else ->
            refs--;
            if
            :: refs == 0 -> freed = true
            :: else -> skip
            fi
        fi;
        finished++
    }
}

/* future.c:gather_future_release as a thread's last act (finished++).
 * The acquire load that frees a count of 1 without an RMW, and the
 * fetch_sub otherwise, are one step (see the header). */
inline release_last()
{
    atomic {
        assert(!freed);
        if
        :: refs == 1 -> refs = 0; freed = true /* ours alone: no RMW */
        :: else ->
            refs--; /* fetch_sub, acq_rel; the last reference frees */
            if
            :: refs == 0 -> freed = true
            :: else -> skip
            fi
        fi;
        finished++
    }
}

/* wait.c:ws_release for waiter w's waitset */
inline ws_release(w)
{
    atomic {
        assert(!ws_freed[w]);
        ws_refs[w]--;
        if
        :: ws_refs[w] == 0 -> ws_freed[w] = true /* parker_destroy, free */
        :: else -> skip
        fi
    }
}

/* Fires listener `id` (1, 2: waiter entries; 3, 4: callbacks) on the
 * completing thread. Local w. */
inline fire(id)
{
    if
    :: id <= NWAITERS -> /* wait.c:fire_entry */
        w = id - 1;
        atomic { /* remaining-- (n = 1: this entry's), trigger: exchange */
            assert(!ws_freed[w]);
            remaining[w]--;
            triggered[w] = triggered[w] || remaining[w] == 0
        }
        atomic { /* gather__unpark (when our exchange won), ws_release:
                  * both under the entry's reference */
            assert(!ws_freed[w]);
            ws_refs[w]--;
            if
            :: ws_refs[w] == 0 -> ws_freed[w] = true
            :: else -> skip
            fi;
            w = 0
        }
    :: else -> /* future.c:fire_callback: free the node, then call */
        w = id - NWAITERS - 1;
        atomic { /* free the node (ours since the list was taken), call */
            assert(node_live[w]);
            node_live[w] = false;
            assert(!freed && done);
            fired[w]++;
            assert(fired[w] == 1);
            w = 0
        }
    fi
}

/* future.c:publish_done: set CLAIMED|DONE (and CANCEL_REQ); without
 * LISTENED also drop `drop` references, the last of which frees (for the
 * completer: free_future after the CAS, on a block nobody else holds).
 * old_listened: the old state's LISTENED. A completer that drops its
 * reference here finishes with this step. */
inline publish_done(cancel, drop)
{
    atomic {
        assert(!freed);
        old_listened = listened;
        claimed = true;
        done = true;
        cancel_req = cancel_req || cancel;
        completions++;
        assert(completions == 1);
#ifdef BUGGY_RELEASE
        if
        :: true ->
#else
        if
        :: !listened ->
#endif
            refs = refs - drop;
            if
            :: drop > 0 && refs == 0 -> freed = true
            :: else -> skip
            fi;
            if
            :: drop > 0 && !listened -> finished++
            :: else -> skip
            fi
        :: else -> skip
        fi
    }
}

/* future.c:close_and_fire: take the list, leave it closed, fire it oldest
 * first. Locals i, n, taken[], and fire's. */
inline close_and_fire()
{
    atomic {
        assert(!freed);
        n = nl;
        for (i : 0 .. 3) {
            taken[i] = lst[i];
            lst[i] = 0
        }
        nl = 0;
        closed = true;
        i = 0
    }
    do
    :: i < n -> fire(taken[i]); taken[i] = 0; i++
    :: else -> break
    od;
    i = 0;
    n = 0
}

/* future.c:gather__future_listen for listener `id`; ok: registered. */
inline listen(id, ok)
{
    atomic { /* set LISTENED unless DONE (a CAS loop) */
        assert(!freed);
        if
        :: listened -> ok = true
        :: !listened && done -> ok = false
        :: !listened && !done -> listened = true; ok = true
        fi
    }
    if
    :: ok ->
        atomic { /* push unless closed (a CAS loop) */
            assert(!freed);
#ifdef BUGGY
            lst[nl] = id; nl++
#else
            if
            :: closed -> ok = false
            :: else -> lst[nl] = id; nl++
            fi
#endif
        }
    :: else -> skip
    fi
}

/* pool.c:run_task + future.c:gather__future_complete_release */
active proctype completer()
{
    bool was;
    bool old_listened;
    byte w;
    byte i;
    byte n;
    byte taken[4];

    atomic { assert(!freed); was = claimed; claimed = true } /* fetch_or */
    if
    :: was -> /* discard_cancelled: the canceller owns the completion */
        atomic { assert(!freed); done } /* wait for DONE */
        release_last()
    :: else -> /* the task runs; then complete and give up our reference */
        publish_done(false, 1);
        if
        :: old_listened -> close_and_fire(); release_last()
        :: else -> skip /* our reference went with DONE */
        fi
    fi
}

/* future.c:gather_future_cancel, then the caller releases its reference.
 * The C's retain/release pair around the completion is left out: the
 * caller's reference, held across it, already keeps the future alive,
 * and no modelled callback releases it. */
active proctype canceller()
{
    bool won;
    bool old_listened;
    byte w;
    byte i;
    byte n;
    byte taken[4];

    atomic {
        assert(!freed);
        if
        :: done -> skip
        :: !done && claimed -> cancel_req = true /* running: only flag it */
        :: !done && !claimed -> claimed = true; cancel_req = true; won = true
        fi
    }
    if
    :: won -> /* complete the task that never ran */
        publish_done(true, 0); /* gather__future_complete */
        if
        :: old_listened -> close_and_fire()
        :: else -> skip
        fi
    :: else -> skip
    fi;
    release_last() /* the caller's */
}

/* gather_future_wait(f) from a thread outside the pool */
proctype waiter(byte w)
{
    bool d;
    bool ok;

    atomic { /* gather__future_state: DONE? else gather__wait: ws_get (a
              * fresh waitset) and arm it (private until pushed) */
        assert(!freed);
        d = done;
        if
        :: !d -> ws_refs[w] = 2; remaining[w] = 1
        :: else -> skip
        fi
    }
    if
    :: d -> goto result
    :: else -> skip
    fi;
    listen(w + 1, ok);
    if
    :: !ok -> /* already done: arm skips the entry (no one else sees the
               * waitset): refs and remaining down, trigger */
        atomic {
            ws_refs[w]--;
            remaining[w]--;
            triggered[w] = true
        }
    :: else -> skip
    fi;
    /* parked_sleep: while (!triggered) park; see the header */
    atomic { triggered[w] -> assert(!ws_freed[w]) }
    ws_release(w); /* ws_put */
result: /* read f->error, f->value (fixed once DONE), then release */
    woken_release()
}

/* gather_future_on_done(f, cb), then the caller releases its reference */
proctype registrar(byte c)
{
    bool ok;

    atomic { /* not DONE: gather__malloc(node), private until pushed */
        assert(!freed);
        ok = !done;
        node_live[c] = ok
    }
    if
    :: ok -> listen(NWAITERS + 1 + c, ok)
    :: else -> skip
    fi;
    if
    :: !ok -> /* done: free the node (if any), call cb here */
        atomic {
            node_live[c] = false;
            assert(!freed && done);
            fired[c]++;
            assert(fired[c] == 1)
        }
    :: else -> skip /* it fires on the completing thread */
    fi;
    release_last()
}

init
{
    atomic {
        run waiter(0);
        run waiter(1);
        run registrar(0);
        run registrar(1)
    }
}

/* Once every thread has finished: the outcomes, and no leak. */
active proctype checker()
{
    finished == NTHREADS;
    assert(completions == 1);
    assert(fired[0] == 1 && fired[1] == 1);
    assert(woken == NWAITERS);
    assert(freed && refs == 0);
    assert(ws_refs[0] == 0 && ws_refs[1] == 0); /* freed, or never made */
    assert(!node_live[0] && !node_live[1])
}
