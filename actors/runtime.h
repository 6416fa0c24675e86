/*
 * runtime.h - the runtime's internal objects: system, workers, actors.
 *
 * Overview: a system owns N workers.  Each worker is a thread that runs a
 * scheduler loop *on a coroutine stack*, never on its own thread stack.
 * A handler runs as a plain call from that loop, on that stack, so a
 * handler that does not block costs no context switch at all.  When an
 * actor blocks, the stack it is on (the scheduler loop's frames at the
 * bottom, the actor's on top) becomes the actor's, and the worker goes on
 * with a fresh scheduler loop on a stack from the pool.  When the actor is
 * resumed, by any worker, that worker switches to the actor's stack and
 * gives up its own; once the actor's turn ends it returns into the old
 * scheduler loop frames at the bottom, which carry on as this worker's
 * scheduler.  So code that can switch must never keep the worker in a
 * local variable across a call that can block: it asks tr__worker_now().
 *
 * Field groups are ordered by the thread that writes them.
 */
#ifndef TR_RUNTIME_H
#define TR_RUNTIME_H

#include <ck_ring.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "../mailbox/deadlock.h"
#include "../mailbox/mailbox.h"
#include "../supervisor/detail.h"
#include "../supervisor/signal.h"
#include "backlog.h"
#include "coalesce.h"
#include "deadline.h"
#include "hazard.h"
#include "inject.h"
#include "msg_timer.h"
#include "next_slot.h"
#include "pool.h"
#include "slots.h"
#include "spin.h"
#include "stack.h"
#include "timer.h"
#include "troupe.h"

#define TR__RUNQ_SIZE 256     /* per-worker run queue (power of two) */
#define TR__STACK_CACHE 16    /* stacks a worker keeps for itself */
#define TR__CACHELINE 64

/* What a slot holds: an actor, a mailbox an actor made, or a mailbox a
 * thread made (which outlives shutdown: its owner frees it). */
enum { TR__SLOT_ACTOR = 1, TR__SLOT_MAILBOX = 2, TR__SLOT_THREAD_MAILBOX = 3 };

/* The system's block pools (pool.h): actors, rings of the default
 * capacity, and 64-byte nodes (exit notices, cleanup handlers). */
enum { TR__POOL_ACTOR, TR__POOL_RING, TR__POOL_NODE, TR__POOLS };
#define TR__NODE_BYTES 64

/*
 * Why an actor is parked, for whoever ends the park.  A receive (and a
 * select) is claimed through the `scheduled` flag, like a message
 * arrival; every other wait through its park token.
 */
enum { TR__PARK_NONE = 0, TR__PARK_RECV, TR__PARK_WAIT, TR__PARK_YIELD, TR__PARK_SLEEP };

/* A thief's note of a victim's turn counter, and since when it stood. */
typedef struct tr__sighting {
    uint32_t turns;
    int64_t since;
} tr__sighting;

typedef struct tr__worker {
    /* Written by the worker's own thread only. */
    struct tr_system *sys;
    struct tr_actor *current;     /* actor whose code runs now, or NULL */
    tr__stack *stack;             /* the stack this worker runs on now */
    tr__stack *spare;             /* reserved to go on with when an actor parks */
    tr__stack *abandoned;         /* left for good; recycle after switching */
    struct tr_actor *arriving;    /* parked; announce after switching */
    struct tr_actor *exiting;     /* exited by tr_exit; destroy after switching */
    tr__stack *cache[TR__STACK_CACHE];
    unsigned ncache;
    uint32_t tick;
    uint64_t rng;
    tr__timers timers;
    tr__pool_cache pool_caches[TR__POOLS];
    tr__slot_cache slot_cache;    /* refs freed here, handed on in batches */
    tr__stack native;             /* the thread's own stack */
    unsigned id;
    pthread_t thread;

    struct tr__sighting *seen;    /* each victim's `turns`, as we last saw it */

    /* An actor that this worker's turn made runnable, to run right
     * after the turn without a run queue operation (sched.c); thieves
     * take it only from a long turn (next_slot.h). */
    tr__next_slot next;

    /* Written by the owner, read by thieves: bumped at every pick, so a
     * thief can tell a worker stuck in one long turn from a busy one. */
    _Atomic uint32_t turns;
    /* Written by the owner, read by the watchdog: the actor whose turn
     * runs now, or TR_REF_NONE between turns. */
    _Atomic tr_ref running;
    /* Written by the owner once, as its thread starts, read by the
     * watchdog: the thread's kernel id (gettid), 0 until then. */
    _Atomic int tid;

    /* Written by the owner, read by destroyers: the ref of an actor or
     * mailbox this worker touches without holding a borrow (a send, or
     * run_turn letting its actor go idle).  See tr__hazard_wait.  On a
     * line of its own: every send exchanges it, and thieves keep reading
     * `turns` while they look for work. */
    _Atomic tr_ref hazard __attribute__((aligned(TR__CACHELINE)));
    /* Written by the owner, read by the watchdog: bumped whenever the
     * running actor takes a message, as a handler actor does after each
     * return and a receive that finds mail instead of parking; neither
     * ends a turn (tr__worker_progress).  Here, not by `turns`: the owner
     * writes this line at every send anyway, and thieves do not read it. */
    _Atomic uint32_t progress;

    /* Written by others. */
    _Atomic uint32_t wake_word __attribute__((aligned(TR__CACHELINE)));
    /* Written by the owner around its futex wait, read by workers that
     * queue it a remote cancel (tr__worker_cancel_queued).  Beside the
     * word, which is as rarely written, not among the fields that every
     * turn writes: a cancel that read it there would miss the cache. */
    _Atomic bool sleeping;

    /* Run queue: the owner enqueues, anyone dequeues (ck_ring SPMC). */
    struct ck_ring runq __attribute__((aligned(TR__CACHELINE)));
    struct ck_ring_buffer runq_buf[TR__RUNQ_SIZE];

    /* Written by anyone under its lock: the message timers homed here. */
    tr__msg_timers msg_timers __attribute__((aligned(TR__CACHELINE)));
} tr__worker;

struct tr_system {
    /* Read by everyone all the time, written (nearly) never. */
    tr_config cfg;
    unsigned nworkers;
    tr__worker *workers;
    atomic_bool stopping;
    bool has_watchdog;
    bool next_slots;                 /* remote fences work: workers use next slots */
    bool workers_joined;             /* shutdown's first part is done */
    bool torn_down;
    pthread_t watchdog;              /* if has_watchdog */
    /* Hazard words of threads that are not workers (hazard.h), each on
     * a line of its own, in an array apart: inside the struct, its 4 KiB
     * cost the ping-pong benchmark 10%; `nforeign` is how many were
     * handed out. */
    tr__hazard_slot *foreign;
    atomic_uint nforeign;
    uint64_t serial;                 /* tells systems at one address apart */

    /* Each of these lays out its own cache lines. */
    tr__slots slots;
    tr__stack_pool stacks __attribute__((aligned(TR__CACHELINE)));
    tr__pool pools[TR__POOLS];
    /* Yields and run queue overflow. */
    tr__inject global;
    /* Actors made runnable by threads that are not workers, taken in
     * drains paced by `coalesce` (each lays out its own lines). */
    tr__inject outside;
    tr__coalesce coalesce;
    tr__backlog backlog;

    /* Parked workers (a stack of ids): written as workers park and wake,
     * read at every send from outside (maybe_wake). */
    tr__spin idle_lock __attribute__((aligned(TR__CACHELINE)));
    unsigned *idle;
    unsigned nidle_list;
    atomic_uint nidle;
    atomic_uint nnapping;            /* workers sleeping through a gap */
    /* Written by every worker that looks for work, at each look. */
    atomic_uint nsearching __attribute__((aligned(TR__CACHELINE)));

    /* Written now and then. */
    atomic_uint workers_running __attribute__((aligned(TR__CACHELINE)));
    _Atomic uint32_t workers_done;   /* futex: bumped as each worker ends */
    /* Holders from outside that shutdown must wait for: borrows of
     * actors' mailboxes (tr__hold), selects carried between rounds, and
     * actors of other systems between tries of a send here (send.c). */
    atomic_uint foreign_waiters;
    atomic_uint outside_spawns;      /* threads inside a spawn (actor.c) */
    _Atomic tr_ref next_monitor;     /* monitor refs, never reused */
    _Atomic uint32_t watchdog_stop;  /* futex: 1 once it must end */
};

struct tr_actor {
    struct tr_mailbox mbox;         /* the actor's own mailbox */

    /* 1 while running, queued, or parked on a wait other than its own
     * mailbox; a sender that flips it 0 -> 1 must schedule the actor. */
    _Atomic uint32_t scheduled;
    /* Hand-off between a parking actor and its waker: whoever arrives
     * second (after the context is saved and the wake is decided)
     * enqueues the actor.  See tr__actor_park. */
    atomic_int gate;
    atomic_bool parked;             /* has a saved context to resume */
    _Atomic uint32_t park_token;    /* even: a wait in progress; odd: none */
    atomic_int park_kind;
    /* Links, monitors and queued notices (supervisor/signal.h); the
     * list's head sits up with `scheduled`, read at every receive. */
    tr__spin sig_lock;
    tr__signals sig;
    atomic_bool cancelled;          /* set once by tr_cancel */
    atomic_bool shielded;           /* its own waits ignore the cancel */
    atomic_bool abandoned;          /* ends at its next wait (tr__abandon) */
    bool ending;                    /* its end has begun: cleanups run (own thread) */
    atomic_bool trap_exits;
    uint32_t select_next;           /* where its next tr_select starts looking */
    uint32_t noutgoing_cases;       /* how many outgoing_cases */

    tr_handler handler;
    tr_body body;
    void *state;
    char *name;
    tr__stack *stack;               /* held while parked, or dedicated */
    tr__inject_node ready_link;     /* on the system's global queue */
    struct tr__owned_mailbox *owned; /* mailboxes it made (its own code only) */
    _Atomic tr_ref waiting_on;      /* the mailbox a send of it waits on */
    struct tr__timer *park_timer;   /* the current park's deadline, or NULL */
    struct tr__worker *park_timer_home; /* whose wheel holds it */
    struct tr__cleanup *cleanups;   /* tr_defer's handlers, newest first */
    tr_msg *outgoing;               /* a payload it waits to send, or NULL */
    struct tr_select_case *outgoing_cases; /* a select's, while it waits */
    /* The other system whose foreign_waiters counts it while it sleeps
     * between tries of a send there (send.c), or NULL; its own system's
     * shutdown uncounts it (system.c). */
    struct tr_system *far_system;

    /* A linked actor's exit that ended it, and that exit's detail; set
     * once, under sig_lock.  0: none. */
    _Atomic int kill_reason;
    int exit_reason;                /* kept for links and monitors (next) */
    tr__detail *kill_detail;
    tr__detail *detail;             /* tr_exit_detail's, then the final one */
};

/* The worker running the calling code, or NULL (see the overview). */
tr__worker *tr__worker_now(void);

/* Make a woken actor runnable (queue it, respecting the park gate). */
void tr__actor_wake(struct tr_actor *a);

/* One side of the park gate: the second arrival queues the actor. */
void tr__actor_arrive(struct tr_actor *a);

/* Run a popped actor: resume it, start its body, or give it a turn. */
void tr__actor_run(tr__worker *w, struct tr_actor *a);

/* Run a loop actor's body to its end, then finish the actor. */
void tr__actor_body(struct tr_actor *a);

/* The actor has ended: close its mailbox, destroy it once unborrowed. */
void tr__actor_finish(struct tr_actor *a);

/* Worker helpers for stacks (sched.c). */
bool tr__worker_reserve_stack(tr__worker *w);
tr__stack *tr__worker_fresh_stack(tr__worker *w);
void tr__worker_leave(tr__worker *w, tr__stack *to, bool abandon);
/* Leave the current stack, never to come back, and go on with the
 * scheduler on another (w->exiting, if set, is finished on arrival). */
void tr__worker_leave_for_good(tr__worker *w) __attribute__((noreturn));
void tr__worker_start_private(tr__worker *w, struct tr_actor *a);
void tr__wake_all_workers(struct tr_system *sys);

/* Wake a parked worker, whether or not it is on the idle list (timers). */
void tr__worker_kick(tr__worker *w);

/* Any worker, after queueing a remote cancel on `w`'s park timers: wake
 * `w` if it sleeps, so that it carries the cancel out now. */
void tr__worker_cancel_queued(tr__worker *w);

/* Queue a runnable actor on this worker (its next slot if its queue is
 * empty, else the queue's tail), or globally. */
void tr__schedule(struct tr_system *sys, struct tr_actor *a);

/* Queue on this worker and wake an idle one to take it if there is one. */
void tr__schedule_and_wake(struct tr_system *sys, struct tr_actor *a);

/* Queue on the global list: behind everything, visible to every worker. */
void tr__schedule_global(struct tr_system *sys, struct tr_actor *a);

/*
 * Parking, in three steps so that a wait can be published in between:
 *   tr__actor_park_begin: take a token for this park (and a stack to go
 *     on with, and a timer if `deadline` is finite).  0 or TR_ENOMEM.
 *   ...publish the wait (wait list, scheduled = 0)...
 *   tr__actor_park_switch: leave the worker until someone wakes us, or
 *   tr__actor_park_cancel: give the park up; only when no one else can
 *     claim it (we claimed it ourselves, or never published it).
 * A waker first claims the park (tr__actor_claim, or the `scheduled` flag
 * for a park in receive), then calls tr__actor_wake.
 */
int tr__actor_park_begin(struct tr_actor *a, int kind, tr_deadline deadline,
                         uint32_t *token);
void tr__actor_park_switch(struct tr_actor *a);
void tr__actor_park_cancel(struct tr_actor *a, uint32_t token);

/*
 * The end of a blocking call of `a` (NULL: a thread) whose deadline came
 * before it could wait: TR_ETIMEDOUT, or TR_ECANCELED.  An actor yields
 * first unless the deadline was TR_NOW (a poll): without a park, a loop
 * of waits with deadlines too short to park in kept its worker for ever,
 * from the very actors that could have ended the waits (test_select's
 * stress, on two workers each with such a loop).
 */
int tr__timed_out(struct tr_actor *a, tr_deadline deadline);

/*
 * The actor has been cancelled: end whatever wait it is in (or give an
 * idle handler actor a turn), so that it sees the flag.  Any thread.
 */
void tr__actor_interrupt(struct tr_actor *a);

/* True once the actor is cancelled (and not shielded) or abandoned.
 * seq_cst: a blocking call reads it after publishing its wait; tr_cancel
 * sets it before interrupting. */
static inline bool tr__actor_cancelled(struct tr_actor *a)
{
    return atomic_load(&a->cancelled) &&
           (!atomic_load_explicit(&a->shielded, memory_order_relaxed) ||
            atomic_load_explicit(&a->abandoned, memory_order_relaxed));
}

/*
 * Abandon the actor behind `ref` (a supervisor's child that did not stop
 * within its shutdown time): it is cancelled, even through a shield, and
 * the next call of it that would wait, or the one it is parked in, ends
 * it with TR_EKILLED instead of returning; its code after that call
 * never runs, its cleanup handlers do.  An actor that never blocks is not
 * stopped.  0 or TR_ENOACTOR.
 */
int tr__abandon(struct tr_system *sys, tr_ref ref);

/*
 * True if `a` (the calling actor, or NULL on a thread) is abandoned and
 * must end at the blocking call that just said TR_ECANCELED: the call
 * then ends it with tr_exit(TR_EKILLED) instead of returning to its code
 * (tr__cancel_result; tr_send and tr_select first release the payloads
 * they were to send).  Not in its cleanup handlers: they run to the end,
 * and may send.
 */
static inline bool tr__abandoned(struct tr_actor *a)
{
    return a && __builtin_expect(atomic_load_explicit(&a->abandoned, memory_order_relaxed), 0) &&
           !a->ending;
}

static inline int tr__cancel_result(int rc)
{
    if (__builtin_expect(rc == TR_ECANCELED, 0) && tr__abandoned(tr_current()))
        tr_exit(TR_EKILLED);
    return rc;
}

/* A line for the application's log hook (tr_config.log), printf-style. */
void tr__log(struct tr_system *sys, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Shield the actor's own waits from its cancellation, for cleanup that
 * must wait (a supervisor stopping its children).  Only the actor itself
 * may call it; tr_cancelled still tells the truth.  Returns the previous
 * setting, to restore.
 */
static inline bool tr__actor_shield(struct tr_actor *a, bool on)
{
    return atomic_exchange_explicit(&a->shielded, on, memory_order_relaxed);
}

/* Called by a timer: the park with `token` has reached its deadline. */
void tr__actor_timeout(struct tr_actor *a, uint32_t token);

/* Claim a park (token must match); true if the caller now must wake it. */
bool tr__actor_claim(struct tr_actor *a, uint32_t token);

/* Register a cleanup handler on `a` (its own code, or its spawner before
 * it is published).  0 or TR_ENOMEM. */
int tr__actor_defer(struct tr_actor *a, void (*fn)(void *arg), void *arg);

/* Mark the actor's end as begun, then run its cleanup handlers, newest
 * first, each once. */
void tr__actor_run_cleanups(struct tr_actor *a);

/* Free the handlers without running them (a spawn that failed). */
void tr__actor_drop_cleanups(struct tr_actor *a);

/* Destroy an actor whose slot has no borrowers and is dead. */
void tr__actor_destroy(struct tr_actor *a);

/* Destroy a tr_mailbox_new mailbox whose slot has no borrowers and is
 * dead; the teardown variant leaves its owning actor alone. */
void tr__owned_mailbox_destroy(struct tr_mailbox *mb);
void tr__owned_mailbox_teardown(struct tr_mailbox *mb);

/* tr_system_free: destroy a mailbox a thread left alive, and take it off
 * that thread's list, whichever thread this is. */
void tr__thread_mailbox_reap(struct tr_mailbox *mb);

/* True if the calling actor or thread owns `mb` (may receive from it);
 * the _by form for a caller that knows its actor (`self`, NULL: none). */
bool tr__mailbox_owned_here(struct tr_mailbox *mb);
bool tr__mailbox_owned_by(struct tr_mailbox *mb, struct tr_actor *self);

/*
 * Where the owner of `mb` (actor or thread) publishes the mailbox that a
 * send of its own waits on (deadlock.h); one word per owner, so its
 * address also names the owner.  The owner lives while `mb` does.  The
 * calling thread's word is NULL if it owns no mailbox: then no one can
 * wait on it, and it closes no cycle.
 */
_Atomic tr_ref *tr__mailbox_owner_waiting(struct tr_mailbox *mb);
_Atomic tr_ref *tr__thread_waiting(void);

/* The actor ends: close and let go of every mailbox it made. */
void tr__actor_free_mailboxes(struct tr_actor *a);

/*
 * An owner about to wait lowers its flag (then fences) and wakes a sender
 * waiting for room in any of its mailboxes: an actor (all it owns) or the
 * thread owning `mb` (all that thread owns).
 */
void tr__actor_idle(struct tr_actor *a);
void tr__thread_idle(struct tr_mailbox *mb);

/*
 * The calling owner, an actor `a` or (NULL) the thread, is about to block
 * in something that is not a receive (a send waiting for room, a sleep):
 * wake a sender waiting for room in any of its mailboxes.  Takes wake one
 * only once half the ring is free, and the idle above, which wakes the
 * rest, does not come while it blocks: two owners each sending to the
 * other's full mailbox waited beside room, and an actor's send said
 * TR_EDEADLK.
 */
void tr__owner_release_senders(struct tr_actor *a);

/* A thread owner sleeps until its flag is raised or `deadline`. */
void tr__thread_sleep(struct tr_mailbox *mb, tr_deadline deadline);

/*
 * Receive from `mb` as its owner (actor or thread): 0, TR_ECLOSED (closed
 * and drained), TR_ETIMEDOUT, TR_ECANCELED or TR_ENOMEM.
 */
int tr__recv(struct tr_mailbox *mb, tr_msg *out, tr_deadline deadline);

/*
 * Wait as the owner of `mb` until ready(arg) may hold: lower the flag,
 * call ready once more, and sleep only if it is false.  Returns 0 (look
 * again), TR_ETIMEDOUT, TR_ECANCELED (an actor owner) or TR_ENOMEM.
 */
int tr__owner_wait(struct tr_mailbox *mb, bool (*ready)(void *), void *arg,
                   tr_deadline deadline);

/*
 * Owner side of a mailbox: take the next message, or see whether there
 * is one.  For an actor's own mailbox, queued notices (links, monitors)
 * come first and count as messages.  Inline: this is every receive, and
 * the usual answer, "no notice", is two loads: the owner's list and the
 * senders' inbox (tr__signals_pending).
 */
static inline bool tr__owner_has_notice(struct tr_mailbox *mb)
{
    struct tr_actor *a = mb->owner;
    return a && mb == &a->mbox && tr__signal_pending(a);
}

static inline bool tr__owner_take_quiet(struct tr_mailbox *mb, tr_msg *out)
{
    return (tr__owner_has_notice(mb) && tr__signal_take(mb->owner, out)) ||
           tr__mailbox_take(mb, out);
}

/* The running actor has reached a point the watchdog counts (watchdog.c). */
static inline void tr__worker_progress(tr__worker *w)
{
    atomic_store_explicit(&w->progress,
                          atomic_load_explicit(&w->progress, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* A take for a receive: a message found is progress for the watchdog.
 * (A handler's turn counts only the takes after the first, which its
 * pick counted already: run_turn uses the quiet form.)  An actor's
 * mailboxes are taken from on its worker only. */
static inline bool tr__owner_take(struct tr_mailbox *mb, tr_msg *out)
{
    if (!tr__owner_take_quiet(mb, out))
        return false;
    if (mb->owner)
        tr__worker_progress(tr__worker_now());
    return true;
}

static inline bool tr__owner_has_mail(struct tr_mailbox *mb)
{
    return !tr__mailbox_empty(mb) || tr__owner_has_notice(mb);
}

/* The ref of the actor owning the mailbox behind `ref`, or TR_REF_NONE. */
tr_ref tr__mailbox_owner_ref(struct tr_system *sys, tr_ref ref);

/* Drop every actor wait from a thread mailbox's list (teardown). */
void tr__mailbox_forget_actor_waiters(struct tr_mailbox *mb);

/* Start and stop the watchdog thread (watchdog.c); start: 0 or TR_ESYS. */
int tr__watchdog_start(struct tr_system *sys);
void tr__watchdog_stop(struct tr_system *sys);

/* The scheduler loop (never returns) and the worker thread's entry. */
void *tr__worker_main(void *arg);

/* The calling thread's worker if it is one of sys's, else NULL.  A path
 * that allocates and frees several times without a switch looks once and
 * passes it to the *_on calls below. */
static inline tr__worker *tr__own_worker(struct tr_system *sys)
{
    tr__worker *w = tr__worker_now();
    return w && w->sys == sys ? w : NULL;
}

/* The calling worker's cache of sys's pool, or NULL on another thread. */
static inline tr__pool_cache *tr__pool_cache_of(struct tr_system *sys, int pool)
{
    tr__worker *w = tr__own_worker(sys);
    return w ? &w->pool_caches[pool] : NULL;
}

/* The cache of free slots of `own` (tr__own_worker), or NULL. */
static inline tr__slot_cache *tr__slot_cache_on(tr__worker *own)
{
    return own ? &own->slot_cache : NULL;
}

/* The calling worker's cache of free slots if it is one of sys's
 * workers, else NULL. */
static inline tr__slot_cache *tr__slot_cache_of(struct tr_system *sys)
{
    return tr__slot_cache_on(tr__own_worker(sys));
}

/* A block of one of sys's pools, through the cache of `own`
 * (tr__own_worker) if it is not NULL; NULL if out of memory. */
static inline void *tr__alloc_on(struct tr_system *sys, tr__worker *own, int pool)
{
    return tr__pool_get(&sys->pools[pool], own ? &own->pool_caches[pool] : NULL);
}

static inline void tr__free_on(struct tr_system *sys, tr__worker *own, int pool, void *block)
{
    tr__pool_put(&sys->pools[pool], own ? &own->pool_caches[pool] : NULL, block);
}

/* The same, through the calling worker's cache if it is one of sys's. */
static inline void *tr__alloc(struct tr_system *sys, int pool)
{
    return tr__alloc_on(sys, tr__own_worker(sys), pool);
}

static inline void tr__free(struct tr_system *sys, int pool, void *block)
{
    tr__free_on(sys, tr__own_worker(sys), pool, block);
}

/* The mailbox of an object behind a ref: an actor's own, or a mailbox. */
static inline struct tr_mailbox *tr__mailbox_of(void *obj, uint8_t kind)
{
    return kind == TR__SLOT_ACTOR ? &((struct tr_actor *)obj)->mbox : obj;
}

/* Borrow the mailbox behind an actor's or a thread mailbox's ref; NULL if
 * the ref is stale.  Give it back with tr__ref_put(sys, ref, *obj, *kind). */
struct tr_mailbox *tr__mailbox_borrow(struct tr_system *sys, tr_ref ref,
                                      void **obj, uint8_t *kind);

/* Drop a borrow taken with tr__slot_get on an actor or mailbox ref. */
void tr__ref_put(struct tr_system *sys, tr_ref ref, void *obj, uint8_t kind);

/*
 * A short hold on the object behind a ref, for a send.  The thread
 * announces the ref in a hazard word of its own and peeks at the slot:
 * two stores to its own cache line, where a borrow is two read-modify-
 * writes on the target's slot, a line that every sender to that actor
 * fights over.  A worker uses its `hazard`, another thread its word in
 * the system (hazard.h), or borrows if it has none.  A hazard lasts only
 * while the caller runs on, which must not park or take another hold
 * meanwhile.
 *
 * Shutdown's destroyer waits for hazards but not for borrows (a parked
 * actor's never come back).  So a holder that is not a worker of the
 * system and borrows an actor's mailbox counts itself in foreign_waiters
 * first, and looks at `stopping` after: shutdown stores `stopping` before
 * it reads the count (both seq_cst), so either it waits for the holder
 * or the holder sees it stopping and takes nothing (send.c).
 */
typedef struct tr__hold {
    tr_ref ref;
    void *obj;
    uint8_t kind;
    bool counted;           /* a borrow counted in foreign_waiters (set
                             * only with a borrow: a hazard never is) */
    _Atomic tr_ref *hazard; /* the word announcing it; NULL: borrowed */
} tr__hold;

/* The borrowing branch of tr__hold_ref (send.c). */
void *tr__hold_borrow(struct tr_system *sys, tr_ref ref, tr__hold *h);

/* The object behind `ref` (`w` is tr__worker_now()), or NULL if stale.
 * Inline: it is every send's first step. */
static inline void *tr__hold_ref(struct tr_system *sys, tr__worker *w, tr_ref ref,
                                 tr__hold *h)
{
    h->ref = ref;
    _Atomic tr_ref *hazard;
    if (__builtin_expect(w && w->sys == sys, 1))
        hazard = &w->hazard;
    else if (!(hazard = w ? NULL : tr__foreign_hazard(sys)))
        return tr__hold_borrow(sys, ref, h);
    h->hazard = hazard;
    atomic_store(hazard, ref); /* seq_cst: before the peek */
    h->obj = tr__slot_peek(&sys->slots, ref, &h->kind);
    if (!h->obj)
        atomic_store_explicit(hazard, TR_REF_NONE, memory_order_release);
    return h->obj;
}

/* tr_sleep without its end for an abandoned actor: 0, TR_ECANCELED or
 * TR_ECONTEXT (sleep.c). */
int tr__sleep_until(tr_deadline until);

/* Release the payloads of the send cases among `cases` (select.c): they
 * were not sent, and their owner's code will not run again. */
void tr__select_release_unsent(struct tr_select_case *cases, size_t n);

/* Turn a hazard into a borrow (before parking): 0, or TR_ENOACTOR if the
 * target died meanwhile or the system is stopping, and then nothing is
 * held. */
int tr__hold_across_wait(struct tr_system *sys, tr__hold *h);

/* Give back a borrow taken by the two above. */
void tr__hold_unborrow(struct tr_system *sys, tr__hold *h);

static inline void tr__hold_release(struct tr_system *sys, tr__hold *h)
{
    if (h->hazard) /* release: our last touch of the target is before it */
        atomic_store_explicit(h->hazard, TR_REF_NONE, memory_order_release);
    else
        tr__hold_unborrow(sys, h);
}
/* The mailbox behind `ref`, held as a send holds it, for a short look
 * from any thread (a plain borrow from outside is not safe against
 * shutdown, see tr__hold); NULL if stale, or if the system is stopping
 * and the caller would have to borrow.  Give it back with
 * tr__hold_release. */
static inline struct tr_mailbox *tr__hold_mailbox(struct tr_system *sys, tr_ref ref,
                                                  tr__hold *h)
{
    void *obj = tr__hold_ref(sys, tr__worker_now(), ref, h);
    return obj ? tr__mailbox_of(obj, h->kind) : NULL;
}

/* The sender's ref on a thread that is not a worker: the mailbox it owns
 * in `sys`, if any (owned.c). */
tr_ref tr__thread_sender_ref(struct tr_system *sys);

/* The ref that tr_send stamps as the sender on the calling thread; `w`
 * is tr__worker_now(), which the caller has at hand. */
static inline tr_ref tr__sender_ref(struct tr_system *sys, tr__worker *w)
{
    if (w)
        return w->current && w->sys == sys ? w->current->mbox.ref : TR_REF_NONE;
    return tr__thread_sender_ref(sys);
}

#endif
