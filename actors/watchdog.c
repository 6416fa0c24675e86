/*
 * watchdog.c - report actors that run too long without yielding.
 *
 * troupe cannot preempt an actor: one that computes without reaching a
 * blocking call or tr_yield keeps its worker, and a supervisor can only
 * leave it behind.  The watchdog at least says so.  It is a thread of the
 * system's own (only when cfg.watchdog_ns is set) that looks at every
 * worker a few times per watchdog_ns: each worker publishes the actor
 * whose turn it runs and bumps a counter at every pick (sched.c), and
 * another whenever that actor takes a message (tr__worker_progress), so a
 * worker whose counters and actor have not changed for watchdog_ns has
 * run one actor all that time without it parking, returning from its
 * handler or receiving.  One report per such stretch.  Watching turns
 * alone reported actors that received every ms: a receive that finds
 * mail does not park, and a handler's turn is a batch of messages.
 *
 * The cost on the hot path is one relaxed store per turn and one per
 * message taken after a turn's first; the looks cost the workers a
 * shared cache line read a few times per period.
 */
#include <pthread.h>
#include <stdlib.h>

#include "futex.h"
#include "runtime.h"

typedef struct watch {
    uint32_t turns, progress;
    tr_ref ref;
    int64_t since;
    bool reported;
} watch;

static void report(tr_system *sys, unsigned worker, tr_ref ref, int64_t ran_ns)
{
    uint8_t kind;
    struct tr_actor *a = tr__slot_get(&sys->slots, ref, &kind);
    if (!a)
        return; /* it ended just now */
    tr__log(sys,
            "troupe watchdog: actor '%s' (ref %#llx) has run %.1f ms on worker %u "
            "without reaching a blocking call",
            kind == TR__SLOT_ACTOR ? tr_actor_name(a) : "", (unsigned long long)ref,
            (double)ran_ns / 1e6, worker);
    tr__ref_put(sys, ref, a, kind);
}

static void look(tr_system *sys, watch *seen, int64_t now)
{
    for (unsigned i = 0; i < sys->nworkers; i++) {
        tr__worker *w = &sys->workers[i];
        tr_ref ref = atomic_load_explicit(&w->running, memory_order_relaxed);
        uint32_t turns = atomic_load_explicit(&w->turns, memory_order_relaxed);
        uint32_t progress = atomic_load_explicit(&w->progress, memory_order_relaxed);
        watch *s = &seen[i];
        if (!ref || ref != s->ref || turns != s->turns || progress != s->progress) {
            *s = (watch){.turns = turns, .progress = progress, .ref = ref, .since = now};
            continue;
        }
        if (!s->reported && now - s->since >= sys->cfg.watchdog_ns) {
            report(sys, i, ref, now - s->since);
            s->reported = true;
        }
    }
}

static void *watchdog_main(void *arg)
{
    tr_system *sys = arg;
    watch *seen = calloc(sys->nworkers, sizeof *seen);
    if (!seen) {
        tr__log(sys, "troupe watchdog: out of memory, not watching");
        return NULL;
    }
    /* A stretch is noticed between 1 and 1.25 watchdog_ns after it began. */
    int64_t period = sys->cfg.watchdog_ns / 4;
    if (period < 1000000)
        period = 1000000;
    while (!atomic_load(&sys->watchdog_stop)) {
        look(sys, seen, tr_now());
        tr__futex_wait(&sys->watchdog_stop, 0, tr_after_ns(period));
    }
    free(seen);
    return NULL;
}

int tr__watchdog_start(tr_system *sys)
{
    if (!sys->cfg.watchdog_ns)
        return 0;
    if (pthread_create(&sys->watchdog, NULL, watchdog_main, sys) != 0)
        return TR_ESYS;
    sys->has_watchdog = true;
    return 0;
}

void tr__watchdog_stop(tr_system *sys)
{
    if (!sys->has_watchdog)
        return;
    atomic_store(&sys->watchdog_stop, 1);
    tr__futex_wake(&sys->watchdog_stop, 1);
    pthread_join(sys->watchdog, NULL);
    sys->has_watchdog = false;
}
