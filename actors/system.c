/* system.c - creating, stopping and freeing a system. */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "futex.h"
#include "remote_fence.h"
#include "runtime.h"

#define MAX_WORKERS 1024
#define MIN_STACK (64 * 1024) /* see tr__stack_new: guard + a few pages */
#define MAX_COALESCE_NS 10000000 /* a gap is a delay: keep it short */
#define MAX_SPAWN_BACKLOG (1u << 30) /* the counts compare as int32 */

/* Serial numbers of systems, so that a thread's cached hazard slot
 * (hazard.c) is never taken for one of a later system at its address. */
static _Atomic uint64_t next_serial = 1;

static int check_config(const tr_config *c)
{
    if (!c->mailbox_capacity || c->mailbox_capacity >= (1u << 30) || !c->batch ||
        c->stack_size < MIN_STACK || !c->max_actors || c->max_actors > (1u << 31) ||
        c->workers > MAX_WORKERS || c->watchdog_ns < 0 || c->coalesce_ns < 0 ||
        c->coalesce_ns > MAX_COALESCE_NS || c->spawn_backlog > MAX_SPAWN_BACKLOG)
        return TR_EINVAL;
    return 0;
}

static void free_parts(tr_system *sys)
{
    if (sys->slots.chunks)
        tr__slots_destroy(&sys->slots);
    tr__stack_pool_destroy(&sys->stacks);
    for (unsigned i = 0; sys->workers && i < sys->nworkers; i++) {
        free(sys->workers[i].seen);
        tr__msg_timers_destroy(&sys->workers[i].msg_timers);
    }
    free(sys->workers);
    free(sys->idle);
    free(sys->foreign);
    for (int i = 0; i < TR__POOLS; i++)
        tr__pool_destroy(&sys->pools[i]);
    free(sys);
}

static void stop_workers(tr_system *sys, unsigned started)
{
    atomic_store(&sys->stopping, true);
    tr__wake_all_workers(sys);
    for (unsigned i = 0; i < started; i++)
        pthread_join(sys->workers[i].thread, NULL);
}

static void stop_and_free(tr_system *sys, tr__worker *self);

int tr_system_new(const tr_config *config, tr_system **out)
{
    tr_config cfg = config ? *config : TR_CONFIG_INIT;
    if (!out || check_config(&cfg))
        return TR_EINVAL;
    long n = cfg.workers ? (long)cfg.workers : sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        n = 1;
    if (n > MAX_WORKERS)
        n = MAX_WORKERS;

    tr_system *sys = aligned_alloc(TR__CACHELINE, sizeof *sys); /* its lines are laid out */
    if (!sys)
        return TR_ENOMEM;
    memset(sys, 0, sizeof *sys);
    sys->cfg = cfg;
    sys->nworkers = (unsigned)n;
    sys->serial = atomic_fetch_add(&next_serial, 1);
    sys->next_slots = tr__remote_fence_init();
    tr__inject_init(&sys->global);
    tr__inject_init(&sys->outside);
    tr__coalesce_init(&sys->coalesce, cfg.coalesce_ns);
    tr__backlog_init(&sys->backlog, cfg.spawn_backlog);
    atomic_init(&sys->next_monitor, 1);
    tr__stack_pool_init(&sys->stacks, cfg.stack_size, cfg.stack_guard);
    tr__pool_init(&sys->pools[TR__POOL_ACTOR], sizeof(struct tr_actor));
    tr__pool_init(&sys->pools[TR__POOL_RING],
                  tr__mailbox_ring_bytes(tr__mailbox_ring_size(sys, 0)));
    tr__pool_init(&sys->pools[TR__POOL_NODE], TR__NODE_BYTES);
    sys->workers = aligned_alloc(TR__CACHELINE, (size_t)n * sizeof(tr__worker));
    if (sys->workers)
        memset(sys->workers, 0, (size_t)n * sizeof(tr__worker));
    sys->idle = calloc((size_t)n, sizeof *sys->idle);
    sys->foreign = aligned_alloc(TR__CACHELINE, sizeof(tr__hazard_slot) * TR__FOREIGN_HAZARDS);
    if (sys->foreign)
        memset(sys->foreign, 0, sizeof(tr__hazard_slot) * TR__FOREIGN_HAZARDS);
    /* Room for the refs that workers hold on to for a while (slots.h). */
    uint32_t slots = cfg.max_actors + (uint32_t)n * TR__SLOT_BATCH;
    if (!sys->workers || !sys->idle || !sys->foreign ||
        tr__slots_init(&sys->slots, slots, tr__generation_start(sys->serial))) {
        free_parts(sys);
        return TR_ENOMEM;
    }
    for (unsigned i = 0; i < sys->nworkers; i++) {
        tr__worker *w = &sys->workers[i];
        w->sys = sys;
        w->id = i;
        w->rng = 0x9E3779B97F4A7C15ull * (i + 1);
        ck_ring_init(&w->runq, TR__RUNQ_SIZE);
        tr__timers_init(&w->timers);
        w->msg_timers.first_gen = tr__generation_start(sys->serial);
        /* The stack its scheduler loop starts on: fail here, not silently
         * in the thread. */
        w->seen = calloc(sys->nworkers, sizeof *w->seen);
        if (!w->seen || !(w->spare = tr__stack_pool_get(&sys->stacks))) {
            for (unsigned j = 0; j < i; j++)
                tr__stack_free(sys->workers[j].spare);
            free_parts(sys);
            return TR_ENOMEM;
        }
    }
    atomic_store(&sys->workers_running, sys->nworkers);
    for (unsigned i = 0; i < sys->nworkers; i++) {
        if (pthread_create(&sys->workers[i].thread, NULL, tr__worker_main,
                           &sys->workers[i]) != 0) {
            atomic_fetch_sub(&sys->workers_running, sys->nworkers - i);
            stop_workers(sys, i);
            for (unsigned j = i; j < sys->nworkers; j++)
                tr__stack_free(sys->workers[j].spare);
            free_parts(sys);
            return TR_ESYS;
        }
    }
    if (tr__watchdog_start(sys)) {
        /* Nothing runs on it yet, so even an actor may wait for its
         * workers here: tr_system_free would refuse it. */
        stop_and_free(sys, tr__worker_now());
        return TR_ESYS;
    }
    *out = sys;
    return 0;
}

unsigned tr_system_workers(const tr_system *sys)
{
    return sys ? sys->nworkers : 0;
}

/* Mailboxes of actors close with them; a thread keeps its own until it
 * frees them, but no parked actor may stay on their wait lists. */
static void close_one(void *obj, uint8_t kind, void *arg)
{
    (void)arg;
    struct tr_mailbox *mb = tr__mailbox_of(obj, kind);
    if (kind == TR__SLOT_THREAD_MAILBOX)
        tr__mailbox_forget_actor_waiters(mb);
    else
        tr__mailbox_close(mb);
}

/* Cleanup handlers of parked actors run before anything of theirs goes:
 * they may still use the mailboxes the actors made. */
static void run_cleanups(void *obj, uint8_t kind, void *arg)
{
    (void)arg;
    if (kind == TR__SLOT_ACTOR)
        tr__actor_run_cleanups(obj);
}

/* A parked actor between tries of a send into another system is counted
 * there (send.c) and will never try again: uncount it now, before this
 * system waits for its own count, or two systems stopping at once, each
 * with such an actor in the other, would wait for each other for ever. */
static void drop_far_count(void *obj, uint8_t kind, void *arg)
{
    (void)arg;
    struct tr_actor *a = obj;
    if (kind == TR__SLOT_ACTOR && a->far_system) {
        atomic_fetch_sub(&a->far_system->foreign_waiters, 1);
        a->far_system = NULL;
    }
}

static void destroy_actor_mailbox(void *obj, uint8_t kind, void *arg)
{
    (void)arg;
    if (kind == TR__SLOT_MAILBOX)
        tr__owned_mailbox_teardown(obj);
}

static void destroy_actor(void *obj, uint8_t kind, void *arg)
{
    (void)arg;
    if (kind != TR__SLOT_ACTOR)
        return;
    /* Dead first, as an actor's own end makes it: a thread that announces
     * its hazard after the destroyer's look then finds the slot dead, and
     * one that found it alive had announced it before, so the look sees
     * it.  Left alive, a thread's tr_send or tr_mailbox_depth could read
     * the actor while it was freed.  Whatever borrows remain, none will
     * return. */
    struct tr_actor *a = obj;
    tr__slot_kill(&a->mbox.sys->slots, a->mbox.ref);
    tr__actor_destroy(a);
}

static void destroy_mailbox(void *obj, uint8_t kind, void *arg)
{
    (void)arg;
    if (kind == TR__SLOT_THREAD_MAILBOX)
        tr__thread_mailbox_reap(obj);
}

/*
 * Every worker has ended: destroy every actor, whatever its state.
 * TR_ETIMEDOUT if other systems' actors or threads still hold some at
 * `deadline`; the steps before that wait can be taken again.  Actors of
 * another system that send into this one let go within a retry (send.c),
 * once their own workers run them: the caller may be one of those.
 */
static int destroy_actors(tr_system *sys, tr_deadline deadline)
{
    for (unsigned i = 0; i < sys->nworkers; i++) {
        tr__timers_clear(&sys->workers[i].timers);
        tr__msg_timers_stop(&sys->workers[i].msg_timers);
    }
    /* First wake threads blocked on actors and unhook parked actors from
     * thread mailboxes, while every parked actor's stack still exists. */
    tr__slots_each(&sys->slots, close_one, NULL);
    tr__slots_each(&sys->slots, drop_far_count, NULL);
    while (atomic_load(&sys->foreign_waiters)) {
        if (tr__deadline_passed(deadline))
            return TR_ETIMEDOUT;
        sched_yield();
    }
    tr__slots_each(&sys->slots, run_cleanups, NULL);
    tr__slots_each(&sys->slots, destroy_actor_mailbox, NULL);
    tr__slots_each(&sys->slots, destroy_actor, NULL);
    tr__inject_init(&sys->global);
    tr__inject_init(&sys->outside);
    return 0;
}

/* Cleanup handlers and payload destructors that a stop or a free runs
 * run outside any actor (tr_defer), also on another system's worker: the
 * actor that called is not theirs to receive for, yield or park. */
static struct tr_actor *step_out_of_actor(tr__worker *self)
{
    struct tr_actor *caller = self ? self->current : NULL;
    if (self)
        self->current = NULL;
    return caller;
}

static void step_back_into(tr__worker *self, struct tr_actor *caller)
{
    if (self)
        self->current = caller;
}

/* The stop itself, waiting until `deadline` on whatever thread calls;
 * `self` is that thread's worker, if any (never one of sys). */
static int stop(tr_system *sys, tr__worker *self, tr_deadline deadline)
{
    if (sys->torn_down)
        return 0;
    atomic_store(&sys->stopping, true);
    tr__backlog_wake_all(&sys->backlog);
    tr__wake_all_workers(sys);
    for (;;) {
        uint32_t seen = atomic_load(&sys->workers_done);
        if (!atomic_load(&sys->workers_running))
            break;
        if (tr__futex_wait(&sys->workers_done, seen, deadline) == TR_ETIMEDOUT &&
            atomic_load(&sys->workers_running))
            return TR_ETIMEDOUT;
    }
    if (!sys->workers_joined) {
        for (unsigned i = 0; i < sys->nworkers; i++)
            pthread_join(sys->workers[i].thread, NULL);
        /* A spawn from outside that got in before `stopping` ends soon
         * (one that waits for the backlog was woken above); the others
         * see it. */
        while (atomic_load(&sys->outside_spawns))
            sched_yield();
        tr__watchdog_stop(sys); /* it borrows actors: before they go */
        sys->workers_joined = true;
    }
    struct tr_actor *caller = step_out_of_actor(self);
    int rc = destroy_actors(sys, deadline);
    step_back_into(self, caller);
    sys->torn_down = rc == 0;
    return rc;
}

int tr_system_shutdown(tr_system *sys, tr_deadline deadline)
{
    if (!sys)
        return TR_EINVAL;
    tr__worker *self = tr__worker_now();
    if (self && self->sys == sys)
        return TR_ECONTEXT;
    /* Another system's worker must not block. */
    return stop(sys, self, self ? TR_NOW : deadline);
}

/* Stop (as long as it takes) and free. */
static void stop_and_free(tr_system *sys, tr__worker *self)
{
    stop(sys, self, TR_FOREVER);
    struct tr_actor *caller = step_out_of_actor(self);
    tr__slots_each(&sys->slots, destroy_mailbox, NULL);
    step_back_into(self, caller);
    free_parts(sys);
}

void tr_system_free(tr_system *sys)
{
    if (!sys)
        return;
    /* A worker must not wait for the stop, nor free what it runs on: it
     * frees only a system it has seen shut down, and otherwise leaves it
     * as it was. */
    tr__worker *self = tr__worker_now();
    if (self && (self->sys == sys || !sys->torn_down)) {
        tr__log(sys, "troupe: tr_system_free from a worker, %s: ignored",
                self->sys == sys ? "of that system" : "before it was shut down");
        return;
    }
    stop_and_free(sys, self);
}
