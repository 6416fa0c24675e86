/*
 * troupe/supervisor.h - supervisors: actors that start children, watch
 * them and restart them by a strategy (Erlang/OTP's supervisor).
 *
 * A supervisor starts its children in the order of their specs, links to
 * each and traps their exits.  When a child ends, its restart type says
 * whether it comes back: permanent always, transient only after an
 * abnormal end (a reason other than 0 or TR_ECANCELED: a child someone
 * stopped stays down), temporary never.  The strategy says who comes
 * back with it: one_for_one only that child; one_for_all every child (the
 * others are stopped first, in reverse order); rest_for_one that child
 * and the ones started after it.  Siblings stopped for the group come
 * back whatever their own end, except temporary ones, which are dropped.
 *
 * Restart intensity: more than `intensity` restarts within `period_ns`
 * make the supervisor give up: it stops its children and ends with
 * TR_ELIMIT, so that the failure escalates to its own supervisor.  A
 * restart may wait: the delay starts at `backoff_base_ns`, doubles with
 * each restart of the same child up to `backoff_cap_ns`, is spread by
 * +/- `jitter_percent`, and falls back to the base once the child has run
 * for `backoff_reset_ns` without failing.  The sums saturate: a delay
 * that would end past INT64_MAX ns on the clock means the child waits
 * for ever (TR_CHILD_RESTARTING).
 *
 * Stopping: cancelling a supervisor stops its children in reverse order;
 * each is cancelled and given its `shutdown_ns` to end (a child that is a
 * supervisor first stops its own, so a whole tree ends depth first).  A
 * child still running after its deadline is abandoned: it is unlinked
 * and forgotten, reported to the log hook (tr_config.log), and ends with
 * TR_EKILLED at its next call that would wait, or at once if it is
 * parked in one (even one a shutdown of its own shields): its code after
 * that call never runs, its cleanup handlers do.  C cannot stop code that never
 * reaches a blocking call; the watchdog (tr_config.watchdog_ns) reports
 * it.  Then the supervisor ends with TR_ECANCELED.
 */
#ifndef TROUPE_SUPERVISOR_H
#define TROUPE_SUPERVISOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "troupe/export.h"
#include "troupe/msg.h"
#include "troupe/system.h"
#include "troupe/time.h"

typedef enum tr_restart { TR_PERMANENT = 0, TR_TRANSIENT, TR_TEMPORARY } tr_restart;

/* What a child is; a supervisor's shutdown_ns of 0 means "as long as its
 * own children take" (OTP's infinity), a worker's "no time at all". */
typedef enum tr_child_kind { TR_CHILD_WORKER = 0, TR_CHILD_SUPERVISOR } tr_child_kind;
typedef enum tr_strategy { TR_ONE_FOR_ONE = 0, TR_ONE_FOR_ALL, TR_REST_FOR_ONE } tr_strategy;

/*
 * Starts one child: spawn it (tr_spawn, tr_spawn_loop, or
 * tr_supervisor_start for a child supervisor) and store its ref.  Called
 * by the supervisor, in the supervisor actor: asking that supervisor from
 * here (tr_supervisor_children and the rest, with tr_self()) would wait
 * for its own answer, and is TR_EDEADLK.  Returns 0 or a negative TR_E*
 * code.  The child failed to start if it returns an error, and with
 * TR_EINVAL if it returns a positive number (no error code), or 0 with
 * no actor's ref in *child: none stored (TR_REF_NONE), the supervisor's
 * own, or a mailbox's.  A failed start is handled as any: the error ends
 * the supervisor (its first start or a restart) or is what
 * tr_supervisor_start_child returns.  On a failure *child is ignored: a
 * child spawned anyway is not supervised, nor stopped.  A ref of an
 * actor that has already ended counts as a start, and then as that
 * child's exit (reason TR_ENOACTOR).
 */
typedef int (*tr_child_start)(tr_system *sys, void *arg, tr_ref *child);

typedef struct tr_child_spec {
    const char *name;        /* for introspection; copied */
    tr_child_start start;
    void *arg;
    tr_restart restart;
    int64_t shutdown_ns;     /* how long it may take to end when stopped */
    tr_child_kind kind;
} tr_child_spec;

/* The most restarts an intensity may allow (they are remembered). */
#define TR_SUPERVISOR_MAX_INTENSITY 1000000

typedef struct tr_supervisor_opts {
    tr_strategy strategy;
    uint32_t intensity;      /* restarts allowed ... */
    int64_t period_ns;       /* ... within this window */
    int64_t backoff_base_ns; /* 0: restart at once */
    int64_t backoff_cap_ns;
    uint32_t jitter_percent;
    int64_t backoff_reset_ns;
    /* Stop children all at once: cancel them all (in reverse order) and
     * then wait for them, instead of one after the other.  For children
     * that do not depend on each other, such as a pool of a hundred
     * thousand connections; each still gets its shutdown_ns. */
    bool stop_at_once;
    /* Most children at once, counting those added at run time (0: any). */
    uint32_t max_children;
    /* Until when tr_supervisor_start, called from a thread that is not a
     * worker, may wait for room in the spawn backlog (as tr_spawn_opts's
     * deadline).  TR_FOREVER in TR_SUPERVISOR_OPTS_INIT. */
    tr_deadline deadline;
} tr_supervisor_opts;

#define TR_SUPERVISOR_OPTS_INIT                                              \
    ((tr_supervisor_opts){.strategy = TR_ONE_FOR_ONE, .intensity = 3,       \
                          .period_ns = 5000000000ll, .backoff_base_ns = 0,   \
                          .backoff_cap_ns = 1000000000ll, .jitter_percent = 0, \
                          .backoff_reset_ns = 10000000000ll,                 \
                          .deadline = TR_FOREVER})

/*
 * tr_supervisor_start - spawn a supervisor with `n` children (specs are
 * copied).  It starts them before its first restart decision; a child
 * that fails to start makes it stop the ones started and end with that
 * error.  Any thread may call it; one that is not a worker may wait for
 * the spawn backlog as tr_spawn_loop does, until opts->deadline.  Returns
 * 0, TR_EINVAL (NULL system or start function, n over TR_SUPERVISOR_MAX,
 * intensity over TR_SUPERVISOR_MAX_INTENSITY, a bad strategy, a period
 * of 0 or less, a negative backoff_base_ns or backoff_reset_ns, a cap
 * below the base, jitter_percent over 100),
 * TR_ENOMEM, TR_ETIMEDOUT (the backlog stayed full until the deadline:
 * nothing was started), or tr_spawn_loop's other errors.
 */
#define TR_SUPERVISOR_MAX 1000000
TR_API int tr_supervisor_start(tr_system *sys, const tr_supervisor_opts *opts,
                               const tr_child_spec *children, size_t n,
                               tr_ref *out);

/*
 * tr_supervisor_start_child - add a child at run time (like OTP's
 * DynamicSupervisor): the supervisor starts it after the others and
 * supervises it like them; *child receives its ref.  The spec's name is
 * not kept (dynamic children are named ""), the rest is copied.
 * Returns 0, the start function's error, TR_ELIMIT (max_children),
 * TR_EINVAL, TR_EDEADLK (called by that supervisor), TR_ENOACTOR (no
 * such supervisor, or it ended before it answered: what it had done
 * stays done), TR_ETIMEDOUT (no answer by the deadline: the child may
 * still have been started), or TR_ENOMEM.
 */
TR_API int tr_supervisor_start_child(tr_system *sys, tr_ref supervisor,
                                     const tr_child_spec *spec, tr_ref *child,
                                     tr_deadline deadline);

/*
 * tr_supervisor_terminate_child - stop a child (as the supervisor stops
 * children: cancel, then wait its shutdown time) and forget it: it is not
 * restarted.  Returns 0, TR_ENOACTOR (no such supervisor or child, or
 * the supervisor ended before it answered), TR_ETIMEDOUT, TR_EINVAL,
 * TR_EDEADLK (called by that supervisor) or TR_ENOMEM.
 */
TR_API int tr_supervisor_terminate_child(tr_system *sys, tr_ref supervisor,
                                         tr_ref child, tr_deadline deadline);

typedef enum tr_child_state {
    TR_CHILD_RUNNING = 0,
    TR_CHILD_RESTARTING,     /* waiting for its restart delay */
    TR_CHILD_STOPPED         /* ended and not to come back */
} tr_child_state;

typedef struct tr_child_info {
    char name[32];
    tr_ref ref;              /* TR_REF_NONE unless running */
    tr_child_state state;
    uint32_t restarts;       /* times it was restarted */
    tr_child_kind kind;
} tr_child_info;

/*
 * tr_supervisor_children - a snapshot of the supervisor's children, in
 * start order: up to `cap` entries in `out`, their number in *n.  Asks
 * the supervisor and waits for its answer until `deadline`.  Any thread
 * or any actor of `sys` may call it (it makes a mailbox of its own for
 * the answer).  Returns 0, TR_EINVAL, TR_ENOACTOR (no such supervisor: a
 * stale ref, or one of an actor that is not a supervisor or of a
 * mailbox; or it ended before it answered), TR_EDEADLK (called by that
 * supervisor itself, as from a child's start function: it cannot answer
 * while it waits, so the call returns at once, whatever the deadline),
 * TR_ETIMEDOUT, TR_ECANCELED (a calling actor was cancelled while it
 * waited), TR_ECONTEXT (called by an actor of another system, which can
 * own no mailbox in `sys`, or on a worker outside any actor), or
 * TR_ENOMEM (here or in the supervisor).  The same holds for the two calls above: a supervisor
 * that ends answers every request it has not handled with TR_ENOACTOR.
 */
TR_API int tr_supervisor_children(tr_system *sys, tr_ref supervisor,
                                  tr_child_info *out, size_t cap, size_t *n,
                                  tr_deadline deadline);

#endif
