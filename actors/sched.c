/*
 * sched.c - workers: the scheduler loop, run queues, work stealing,
 * parking idle workers, and switching stacks.
 *
 * Overview (docs/scheduler.md has the long form):
 *   - Each worker has a bounded run queue (ck_ring, single producer, many
 *     consumers): the worker pushes and pops, idle workers steal.  Work
 *     from other threads, and overflow, goes to one global list.
 *   - The scheduler loop runs on a coroutine stack.  Handler turns are
 *     plain calls on it; see runtime.h for how stacks change hands.
 *   - A worker with nothing to do steals, then parks on a futex.  Waking
 *     is one worker at a time, and only when it can help: work pushed to
 *     a worker's own empty queue will be run by that worker as soon as
 *     its current turn ends, so no one is woken for it (this is what
 *     keeps a ping-pong pair on one core, with no futex calls).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fence.h"
#include "futex.h"
#include "runtime.h"
#include "sanitizer.h"
#include "tls.h"

/* How often a worker looks at the global list before its own queue. */
#define GLOBAL_CHECK_INTERVAL 61
/* A queue this long is stolen from even while its owner keeps going. */
#define STEAL_BACKLOG 32
/* A turn this long (ns) lets a thief take what waits behind it. */
#define STUCK_NS 30000
/* Rounds over all victims before a worker starts to spin. */
#define STEAL_ROUNDS 2
/* How long an idle worker keeps looking before it parks.  While it looks
 * it counts as searching, so senders skip the futex wake-up (a system
 * call that costs more than a thousand messages); parking at once made a
 * thread feeding 64 actors pay one wake-up per message. */
#define SPIN_NS 50000

static TR__THREAD_LOCAL tr__worker *tls_worker;

/*
 * Not inlined and opaque to interprocedural analysis: a coroutine can
 * resume on another thread, so the compiler must not reuse an address
 * or value of the thread-local from before a switch.  (Clang has no
 * noipa; its analyses stop at the asm, which reads and writes memory.)
 */
#if defined(__clang__)
__attribute__((noinline))
#else
__attribute__((noinline, noipa))
#endif
tr__worker *tr__worker_now(void)
{
    tr__worker *w = tls_worker;
    __asm__ volatile("" : "+r"(w) : : "memory");
    return w;
}

/* ------------------------------------------------------------------ */
/* Stacks                                                              */

static tr__stack *stack_get(tr__worker *w)
{
    if (w->ncache)
        return w->cache[--w->ncache];
    return tr__stack_pool_get(&w->sys->stacks);
}

static void stack_put(tr__worker *w, tr__stack *st)
{
    if (w->ncache < TR__STACK_CACHE && st->map_len == w->sys->stacks.size)
        w->cache[w->ncache++] = st;
    else
        tr__stack_pool_put(&w->sys->stacks, st);
}

/* Runs on `me` right after a switch lands on it: finish the hand-over
 * that the switching side could not do while still on its own stack. */
static void arrive(tr__stack *me)
{
    TR_ASAN_FINISH_SWITCH(me->asan_fake, NULL, NULL);
    tr__worker *w = tr__worker_now();
    w->stack = me;
    if (w->abandoned) {
        stack_put(w, w->abandoned);
        w->abandoned = NULL;
    }
    if (w->arriving) {
        struct tr_actor *a = w->arriving;
        w->arriving = NULL;
        tr__actor_arrive(a);
    }
    if (w->exiting) {
        struct tr_actor *a = w->exiting;
        w->exiting = NULL;
        tr__actor_finish(a);
    }
}

/* Switch from `from` to `to`; `abandon` if `from` is never resumed. */
static void switch_stack(tr__stack *from, tr__stack *to, bool abandon)
{
    tr__stack_switching_out(from, __builtin_frame_address(0));
    TR_ASAN_START_SWITCH(abandon ? NULL : &from->asan_fake, to->lo, to->size);
    TR_TSAN_SWITCH_TO(to->tsan_fiber);
    tr__ctx_switch(&from->ctx, &to->ctx);
    arrive(from);
}

static void sched_loop(void) __attribute__((noreturn));

static void sched_entry(void *arg)
{
    arrive(arg);
    sched_loop();
}

tr__stack *tr__worker_fresh_stack(tr__worker *w)
{
    tr__stack *st = w->spare ? w->spare : stack_get(w);
    w->spare = NULL;
    if (st)
        tr__stack_prepare(st, sched_entry, st);
    return st;
}

bool tr__worker_reserve_stack(tr__worker *w)
{
    if (!w->spare)
        w->spare = stack_get(w);
    return w->spare != NULL;
}

/*
 * A loop actor with a private stack starts on it.  When the body ends the
 * worker leaves that stack for good (arrive unmaps it, being of another
 * size), as tr_exit leaves a stack: going on with the scheduler there
 * gave the next actors of this worker a stack of the body's size, maybe
 * 64 KiB, instead of the one they are promised (a review's handler with
 * a 256 KiB frame crashed 10 runs of 10).
 */
static void private_entry(void *arg)
{
    struct tr_actor *a = arg;
    tr__stack *me = a->stack;
    a->stack = NULL;
    arrive(me);
    tr__actor_body(a);
    tr__worker_leave_for_good(tr__worker_now()); /* the body may have moved us */
}

void tr__worker_start_private(tr__worker *w, struct tr_actor *a)
{
    tr__stack_prepare(a->stack, private_entry, a);
    tr__worker_leave(w, a->stack, true);
}

void tr__worker_leave(tr__worker *w, tr__stack *to, bool abandon)
{
    if (abandon) {
        w->abandoned = w->stack;
        tr__stack_abandon(w->stack, __builtin_frame_address(0));
    }
    switch_stack(w->stack, to, abandon);
}

/*
 * With no stack to be had (every one held by a parked actor, the map
 * count spent), go by way of the thread's own: arriving there frees the
 * stack we leave, and tr__worker_main starts the scheduler on it again.
 * Waiting here for a stack instead spun for ever once none could come
 * back (this worker was the one to run their actors), and the system
 * could then never stop (a review: 4 runs of 4).
 */
void tr__worker_leave_for_good(tr__worker *w)
{
    tr__worker_leave(w, tr__worker_reserve_stack(w) ? tr__worker_fresh_stack(w) : &w->native,
                     true);
    __builtin_unreachable();
}

/* ------------------------------------------------------------------ */
/* Queues                                                              */

static void global_push(tr_system *sys, struct tr_actor *a)
{
    tr__inject_push(&sys->global, &a->ready_link);
}

static struct tr_actor *actor_of(tr__inject_node *n)
{
    return n ? (struct tr_actor *)((char *)n - offsetof(struct tr_actor, ready_link)) : NULL;
}

/*
 * Take one actor from the global queue.  Only one: moving a batch into
 * our own queue hid it from idle workers (thieves leave short queues
 * alone) and made spawning a million actors slower, for no gain when
 * one thread feeds many actors.
 */
static struct tr_actor *global_pop(tr__worker *w)
{
    tr__inject *q = &w->sys->global;
    if (!tr__inject_ready(q) || !tr__inject_begin(q))
        return NULL;
    struct tr_actor *a = actor_of(tr__inject_take(q));
    tr__inject_end(q);
    return a;
}

static void maybe_wake(tr_system *sys);

/*
 * Take one actor made runnable from outside the system, unless a gap
 * holds such work back (coalesce.h).  The clock is read only while a gap
 * is set; drains are counted under the takers' try-lock.
 */
static struct tr_actor *outside_pop(tr__worker *w)
{
    tr_system *sys = w->sys;
    tr__inject *q = &sys->outside;
    tr__coalesce *c = &sys->coalesce;
    int64_t until = tr__coalesce_gap_until(c);
    if (!tr__inject_ready(q) || (until && tr_now() < until) || !tr__inject_begin(q))
        return NULL;
    tr__inject_node *n = tr__inject_take(q);
    struct tr_actor *a = actor_of(n);
    bool wake_spawners = false;
    if (a) {
        wake_spawners = tr__backlog_took(&sys->backlog);
        if (!tr__coalesce_draining(c)) {
            /* The stub as newest means ours was the last node. */
            tr__inject_node *newest = tr__inject_newest(q);
            tr__coalesce_begin(c, newest == &q->stub ? n : newest);
        }
        /* It reads the ring's lines the turn is about to read anyway. */
        if (tr__coalesce_took(c, n, tr__mailbox_queued(&a->mbox), a->mbox.ring_size - 1))
            tr__coalesce_end(c, tr_now());
    }
    tr__inject_end(q);
    if (wake_spawners)
        tr__backlog_wake(&sys->backlog);
    /* Pushes made while a worker napped woke no one: if more than this
     * one waits, let a parked worker take it, or it waits behind this
     * actor's turn, which may be long (the review found it). */
    if (a && tr__inject_ready(q))
        maybe_wake(sys);
    return a;
}

/* Work any worker may take: yields and overflow, or outside work.  Each
 * goes first on alternate ticks, so that neither starves the other (an
 * actor yielding in a loop keeps the global queue from ever emptying). */
static struct tr_actor *shared_pop(tr__worker *w)
{
    struct tr_actor *a;
    if (w->tick & 1)
        return (a = outside_pop(w)) ? a : global_pop(w);
    return (a = global_pop(w)) ? a : outside_pop(w);
}

/* The end of a gap that holds outside work back now, or 0. */
static int64_t outside_held_until(tr_system *sys, int64_t now)
{
    int64_t until = tr__coalesce_gap_until(&sys->coalesce);
    return until > now && tr__inject_nonempty(&sys->outside) ? until : 0;
}

static struct tr_actor *runq_pop(tr__worker *w)
{
    struct tr_actor *a;
    if (!ck_ring_dequeue_spmc(&w->runq, w->runq_buf, &a))
        return NULL;
    TR_TSAN_ACQUIRE(&w->runq);
    return a;
}

/* Whether any queue or next slot holds an actor.  The slots count as the
 * queues did before them: a worker about to park that sees one full goes
 * on looking, and takes it if the turn in front of it lasts. */
static bool work_visible(tr_system *sys)
{
    if (tr__inject_nonempty(&sys->global) || tr__inject_nonempty(&sys->outside))
        return true;
    for (unsigned i = 0; i < sys->nworkers; i++)
        if (ck_ring_size(&sys->workers[i].runq) || !tr__next_empty(&sys->workers[i].next))
            return true;
    return false;
}

static void wake_worker(tr_system *sys)
{
    tr__spin_lock(&sys->idle_lock);
    if (!sys->nidle_list) {
        tr__spin_unlock(&sys->idle_lock);
        return;
    }
    tr__worker *w = &sys->workers[sys->idle[--sys->nidle_list]];
    atomic_fetch_sub(&sys->nidle, 1);
    atomic_store(&w->wake_word, 1);
    tr__spin_unlock(&sys->idle_lock);
    tr__futex_wake(&w->wake_word, 1);
}

/*
 * Wake one parked worker unless one is already looking for work.  The
 * caller has published work and then fenced (seq_cst); a parker
 * increments nidle, fences, then looks for work.  Of the two fences one
 * comes first, so either we see its increment or it sees our work.  A
 * plain load keeps the line shared; an RMW here took it away from every
 * other core at each message sent from outside.
 */
static void maybe_wake(tr_system *sys)
{
    if (atomic_load_explicit(&sys->nidle, memory_order_relaxed) &&
        !atomic_load_explicit(&sys->nsearching, memory_order_relaxed))
        wake_worker(sys);
}

/* The push is an exchange, so the fence maybe_wake needs is free. */
static void global_push_and_wake(tr_system *sys, struct tr_actor *a)
{
    global_push(sys, a);
    tr__fence_after_rmw();
    maybe_wake(sys);
}

/*
 * A worker sleeping through a gap (nap_worker) looks at this queue when
 * it wakes, so a push then needs no wake-up.  The napper counts itself
 * before it sleeps and uncounts itself before it looks, both seq_cst,
 * and the push's exchange comes before the load of the count: a push
 * that saw it counted is there when it looks (its park test, which reads
 * the producers' end, sees it even before the node is linked).  The
 * napper then wakes others for what it cannot take itself (nap_worker,
 * outside_pop).
 */
static void outside_push_and_wake(tr_system *sys, struct tr_actor *a)
{
    tr__inject_push(&sys->outside, &a->ready_link);
    tr__backlog_pushed(&sys->backlog);
    tr__fence_after_rmw();
    if (!atomic_load_explicit(&sys->nnapping, memory_order_relaxed))
        maybe_wake(sys);
}

void tr__schedule_global(tr_system *sys, struct tr_actor *a)
{
    global_push_and_wake(sys, a);
}

/*
 * The next slot.  An actor that a turn makes runnable (the receiver of
 * its message, most often) runs right after that turn, from a slot of
 * the worker's own: pushing it to the run queue and popping it again
 * cost a compare-and-swap per message, a tenth of a ping-pong.  A thief
 * may still take it from behind a long turn (next_slot.h).
 *
 * The slot is used only while the queue is empty, so it changes no order:
 * what it holds would have been the queue's head.  (Used regardless, it
 * let a woken actor jump ahead of the queue: a consumer woken by one
 * producer ran before the other producers had filled their mailboxes,
 * and took fewer messages per wake-up, 75 -> 89 ns per message in
 * bench/select.)
 */
static void schedule(tr_system *sys, struct tr_actor *a, bool wake)
{
    tr__worker *w = tr__worker_now();
    if (!w || w->sys != sys) {
        outside_push_and_wake(sys, a);
        return;
    }
    bool was_empty = ck_ring_size(&w->runq) == 0;
    if (was_empty && !wake && sys->next_slots && tr__next_put(&w->next, a))
        return;
    TR_TSAN_RELEASE(&w->runq);
    if (ck_ring_enqueue_spmc(&w->runq, w->runq_buf, a)) {
        if (wake || !was_empty) {
            tr__fence();
            maybe_wake(sys);
        }
        return;
    }
    global_push_and_wake(sys, a);
}

void tr__schedule(tr_system *sys, struct tr_actor *a)
{
    schedule(sys, a, false);
}

void tr__schedule_and_wake(tr_system *sys, struct tr_actor *a)
{
    schedule(sys, a, true);
}

/* Whether `victim` has been in one turn for STUCK_NS: its turn counter
 * has stood still since this thief first saw the value.  (It also stands
 * still while the victim is idle, and one turn may be a batch of
 * messages; it is asked only about victims with work waiting.) */
static bool stuck(tr__worker *w, tr__worker *victim, int64_t now)
{
    tr__sighting *seen = &w->seen[victim->id];
    uint32_t turns = atomic_load_explicit(&victim->turns, memory_order_relaxed);
    if (seen->turns != turns || !seen->since) {
        *seen = (tr__sighting){turns, now};
        return false;
    }
    return now - seen->since >= STUCK_NS;
}

/*
 * Whether to take work from `victim`'s queue.  Stealing splits actors
 * that talk to each other over two cores, and then every message costs
 * cache misses: 8 producers and a consumer ran at 27M msg/s on one
 * worker and 5M on two that stole from each other.  So a thief takes
 * only what waits behind a long turn, or a long queue.  Work that truly
 * runs in parallel shows as long turns, and is spread; `now` is 0 on the
 * quick first rounds, which only take long queues.
 */
static bool worth_stealing(tr__worker *w, tr__worker *victim, int64_t now)
{
    unsigned queued = ck_ring_size(&victim->runq);
    if (!queued)
        return false;
    return queued >= STEAL_BACKLOG || (now && stuck(w, victim, now));
}

/*
 * Pop the head of a victim's queue.  ck copies the head's slot before the
 * compare-and-swap that may lose the race, and writes its out-parameter
 * even when it then fails (finding the queue empty): only trust it on
 * success, or two workers run one actor.  The copy is read after the
 * owner's release of the slot, but ThreadSanitizer sees our acquire only
 * after the copy (ck's own barriers are invisible to it), so those reads
 * are not checked.
 */
static bool steal_queued(tr__worker *victim, struct tr_actor **got)
{
    TR_TSAN_IGNORE_READS_BEGIN();
    bool ok = ck_ring_dequeue_spmc(&victim->runq, victim->runq_buf, got);
    TR_TSAN_IGNORE_READS_END();
    if (ok)
        TR_TSAN_ACQUIRE(&victim->runq);
    return ok;
}

/* One look at every other worker's queue from `start`, then the global
 * list; NULL if there was nothing to take. */
static struct tr_actor *steal_once(tr__worker *w, unsigned start, int64_t now)
{
    tr_system *sys = w->sys;
    for (unsigned i = 0; i < sys->nworkers; i++) {
        tr__worker *victim = &sys->workers[(start + i) % sys->nworkers];
        struct tr_actor *got;
        if (victim == w)
            continue;
        /* The slot first: what it holds is older than the queue's head. */
        if (now && !tr__next_empty(&victim->next) && stuck(w, victim, now) &&
            (got = tr__next_steal(&victim->next)))
            return got;
        if (worth_stealing(w, victim, now) && steal_queued(victim, &got))
            return got;
    }
    return shared_pop(w);
}

static struct tr_actor *steal(tr__worker *w)
{
    tr_system *sys = w->sys;
    struct tr_actor *a = NULL;

    atomic_fetch_add(&sys->nsearching, 1);
    for (unsigned round = 0; round < STEAL_ROUNDS && !a; round++) {
        w->rng = w->rng * 6364136223846793005ull + 1442695040888963407ull;
        a = steal_once(w, (unsigned)(w->rng >> 33) % sys->nworkers, 0);
    }
    for (int64_t until = 0; !a && !atomic_load_explicit(&sys->stopping, memory_order_relaxed);) {
        /* Pause between looks: each look reads other workers' queue
         * lines, which slows the owners down if done back to back. */
        for (int i = 0; i < 256; i++) {
#if defined(__x86_64__)
            __builtin_ia32_pause();
#endif
        }
        int64_t now = tr_now();
        a = runq_pop(w);
        if (!a)
            a = steal_once(w, 0, now);
        if (!until)
            until = now + SPIN_NS;
        else if (now >= until)
            break;
        if (!a && outside_held_until(sys, now))
            break; /* sleep through the gap instead (nap_worker) */
    }
    atomic_fetch_sub(&sys->nsearching, 1);
    /* We found work and may have left more behind: let another look. */
    if (a && work_visible(sys))
        maybe_wake(sys);
    return a;
}

static void unlist_idle(tr__worker *w)
{
    tr_system *sys = w->sys;
    tr__spin_lock(&sys->idle_lock);
    for (unsigned i = 0; i < sys->nidle_list; i++) {
        if (sys->idle[i] == w->id) {
            sys->idle[i] = sys->idle[--sys->nidle_list];
            atomic_fetch_sub(&sys->nidle, 1);
            break;
        }
    }
    tr__spin_unlock(&sys->idle_lock);
}

/* Sleep until `until` or a timer, whichever is first; kicks end it. */
static void sleep_worker(tr__worker *w, tr_deadline until)
{
    tr_deadline timer = tr__timers_next(&w->timers);
    if (timer < until)
        until = timer;
    until = tr__msg_timers_sleep(&w->msg_timers, until);
    /* A store-buffer hand-shake with tr__worker_cancel_queued: we say we
     * sleep, fence, then look at the cancel queue; the canceller queues,
     * fences, then looks at `sleeping`.  Either we see its request and
     * go round to carry it out, or it sees us and kicks. */
    atomic_store_explicit(&w->sleeping, true, memory_order_relaxed);
    tr__fence();
    if (!tr__timers_cancels_waiting(&w->timers))
        tr__futex_wait(&w->wake_word, 0, until);
    atomic_store_explicit(&w->sleeping, false, memory_order_relaxed);
    tr__msg_timers_woke(&w->msg_timers);
}

/*
 * Sleep through a gap that holds outside work back.  A napper is not on
 * the idle list: work pushed meanwhile by workers waits for the nap's end
 * (at most tr_config.coalesce_ns) unless a busy or parked worker takes
 * it.  It leaves the CPU to the threads that feed the system, which is
 * the point: spinning through a gap halved the feeding thread's share on
 * a machine with as many workers as cores.
 */
static void nap_worker(tr__worker *w, int64_t until)
{
    tr_system *sys = w->sys;
    tr__slot_flush(&sys->slots, &w->slot_cache); /* as park_worker does */
    atomic_store(&w->wake_word, 0);
    atomic_fetch_add(&sys->nnapping, 1);
    if (!atomic_load(&sys->stopping))
        sleep_worker(w, until);
    atomic_fetch_sub(&sys->nnapping, 1);
    /* Pushes meanwhile counted on us; we may take a global actor first,
     * with a long turn, while a parked worker could take theirs. */
    if (tr__inject_nonempty(&sys->outside))
        maybe_wake(sys);
}

static void park_worker(tr__worker *w)
{
    tr_system *sys = w->sys;
    /* A gap that has just run out counts too (hence no clock): the nap is
     * then over at once, and the next look takes the work.  Parking
     * instead left the take to whoever else was napping, and this worker
     * asleep. */
    int64_t gap = outside_held_until(sys, 0);
    if (gap) {
        nap_worker(w, gap);
        return;
    }

    tr__slot_flush(&sys->slots, &w->slot_cache); /* others may need them */
    atomic_store(&w->wake_word, 0);
    tr__spin_lock(&sys->idle_lock);
    sys->idle[sys->nidle_list++] = w->id;
    atomic_fetch_add(&sys->nidle, 1);
    tr__fence_after_rmw(); /* pairs with the waker's fence (maybe_wake) */
    tr__spin_unlock(&sys->idle_lock);
    if (!work_visible(sys) && !atomic_load(&sys->stopping))
        sleep_worker(w, TR_FOREVER);
    unlist_idle(w);
}

static struct tr_actor *next_actor(tr__worker *w)
{
    tr_system *sys = w->sys;
    for (;;) {
        if (atomic_load_explicit(&sys->stopping, memory_order_relaxed))
            return NULL;
        if (w->timers.len || tr__msg_timers_pending(&w->msg_timers)) {
            int64_t now = tr_now();
            if (w->timers.len)
                tr__timers_fire(sys, &w->timers, now);
            tr__msg_timers_fire(sys, &w->msg_timers, now);
        }
        struct tr_actor *a = NULL;
        w->tick++;
        atomic_store_explicit(&w->running, TR_REF_NONE, memory_order_relaxed);
        if (w->tick % GLOBAL_CHECK_INTERVAL == 0)
            a = shared_pop(w);
        if (!a)
            a = tr__next_take(&w->next);
        if (!a)
            a = runq_pop(w);
        if (!a)
            a = shared_pop(w);
        if (!a)
            a = steal(w);
        if (a) {
            /* At the pick, not at the start of the round: a round that
             * found its actor after 50 us of looking made its turn look
             * stuck to thieves from the start. */
            atomic_store_explicit(&w->turns, w->tick, memory_order_relaxed);
            return a;
        }
        park_worker(w);
    }
}

static void sched_loop(void)
{
    for (;;) {
        /* Fetch the worker afresh each time: a turn may have parked and
         * resumed us on another thread. */
        tr__worker *w = tr__worker_now();
        struct tr_actor *a = next_actor(w);
        if (!a)
            tr__worker_leave(w, &w->native, true); /* never returns */
        tr__actor_run(w, a);
    }
}

/* ------------------------------------------------------------------ */
/* Threads                                                             */

static void native_bounds(tr__stack *native)
{
    pthread_attr_t attr;
    void *lo = NULL;
    size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        pthread_attr_getstack(&attr, &lo, &size);
        pthread_attr_destroy(&attr);
    }
    native->lo = lo;
    native->size = size;
    native->tsan_fiber = TR_TSAN_FIBER_CURRENT();
}

/* A stack to go on with after a visit to the thread's own, or NULL when
 * the system stops.  The stack just left is in the cache by now, unless
 * it went back to the pool and another worker took it. */
static tr__stack *stack_to_resume_on(tr__worker *w)
{
    while (!atomic_load_explicit(&w->sys->stopping, memory_order_relaxed)) {
        tr__stack *st = tr__worker_fresh_stack(w);
        if (st)
            return st;
        sched_yield();
    }
    return NULL;
}

void *tr__worker_main(void *arg)
{
    tr__worker *w = arg;
    tr_system *sys = w->sys;

    tls_worker = w;
    atomic_store_explicit(&w->tid, (int)syscall(SYS_gettid), memory_order_release);
    prctl(PR_SET_TIMERSLACK, 1000UL);
    native_bounds(&w->native);
    /* Back on the thread's own stack: the system is stopping, or a turn
     * had no other stack to leave its own for (tr__worker_leave_for_good). */
    for (tr__stack *st = tr__worker_fresh_stack(w); st; st = stack_to_resume_on(w))
        switch_stack(&w->native, st, false);
    if (w->spare)
        stack_put(w, w->spare);
    w->spare = NULL;
    while (w->ncache)
        tr__stack_free(w->cache[--w->ncache]);
    tls_worker = NULL;
    atomic_fetch_sub(&sys->workers_running, 1);
    atomic_fetch_add(&sys->workers_done, 1);
    tr__futex_wake(&sys->workers_done, 1 << 30);
    return NULL;
}

void tr__worker_kick(tr__worker *w)
{
    atomic_store(&w->wake_word, 1);
    tr__futex_wake(&w->wake_word, 1);
}

/*
 * Without the kick, an idle owner carried a cancel out only when it next
 * woke, at its earliest timer: the cancelled timer of an hour's sleep
 * kept its exited actor, and the payloads in its mailbox, for the hour.
 * A cancel that the owner makes itself, the common case, never comes
 * here; this one pays a fence and a read of a line rarely written.
 */
void tr__worker_cancel_queued(tr__worker *w)
{
    tr__fence(); /* pairs with sleep_worker's */
    if (atomic_load_explicit(&w->sleeping, memory_order_relaxed))
        tr__worker_kick(w);
}

void tr__wake_all_workers(tr_system *sys)
{
    for (unsigned i = 0; i < sys->nworkers; i++)
        tr__worker_kick(&sys->workers[i]);
}
