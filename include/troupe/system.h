/*
 * troupe/system.h - the runtime: worker threads that run actors.
 *
 * A tr_system is one independent runtime.  There is no global state: two
 * systems in one process share nothing.  tr_system_new() starts the
 * workers at once; tr_system_shutdown() stops them; tr_system_free()
 * releases everything.
 */
#ifndef TROUPE_SYSTEM_H
#define TROUPE_SYSTEM_H

#include <stddef.h>
#include <stdint.h>

#include "troupe/export.h"
#include "troupe/time.h"

typedef struct tr_system tr_system;

/* Where the runtime reports what no call returns (the watchdog). */
typedef void (*tr_log_fn)(void *arg, const char *line);

typedef struct tr_config {
    /* Worker threads; 0 means one per online CPU (at most 1024). */
    unsigned workers;
    /* Default mailbox capacity for tr_spawn (see tr_spawn_opts). */
    uint32_t mailbox_capacity;
    /* Coroutine stack size in bytes (virtual; pages are committed lazily). */
    size_t stack_size;
    /* Put an inaccessible guard page below every stack (1) or not (0). */
    int stack_guard;
    /* Most actors and mailboxes alive at once (refs are slots in a table).
     * The table has room for 64 more per worker: a worker hands the refs
     * freed on it back in batches, so that this many are always there,
     * and up to 64 per worker more than this may be. */
    uint32_t max_actors;
    /* Messages an actor handles per turn before others get to run. */
    uint32_t batch;
    /* The watchdog: report an actor that has run this long (ns) without
     * reaching a blocking call or tr_yield: without parking, receiving a
     * message or returning from its handler (a send that finds room, or
     * a receive by TR_NOW that finds nothing, does not count); 0: no
     * watchdog.  The time counted is wall time less the time the
     * worker's thread waited for a CPU (on a busy machine), so an actor
     * that computes and one that blocks its worker in a system call
     * (sleep, a blocking read, a pthread lock) are both reported.  That
     * wait comes from Linux's /proc/self/task/<tid>/schedstat; where it
     * cannot be read, plain wall time is counted, and a worker left
     * waiting for a CPU that long may be reported.  One report per such
     * stretch, to `log` (NULL: standard error), called from a thread of
     * the system's own. */
    int64_t watchdog_ns;
    tr_log_fn log;
    void *log_arg;
    /* Longest gap (ns) between drains of the work that threads outside
     * the system hand in, while they stream messages to many actors: an
     * actor then gathers several messages per turn, and the feeding
     * thread runs about four times faster (docs/scheduler.md).  Sporadic
     * sends and request/response traffic start no gaps; while a stream
     * runs, all work from outside waits through its gaps.  0: no gaps;
     * at most 10 ms. */
    int64_t coalesce_ns;
    /* Backpressure on spawning from outside: while more than this many
     * actors that threads outside the system made runnable wait for a
     * worker, such a thread's tr_spawn_loop waits until the workers have
     * taken three quarters of them (tr_spawn_opts.deadline).  It keeps a
     * thread that spawns faster than the workers start actors from
     * piling them up in memory.  0: no limit; at most 2^30. */
    uint32_t spawn_backlog;
} tr_config;

#define TR_CONFIG_INIT                                                        \
    ((tr_config){.workers = 0,                                                \
                 .mailbox_capacity = 63,                                      \
                 .stack_size = 256 * 1024,                                    \
                 .stack_guard = 1,                                            \
                 .max_actors = 1u << 22,                                      \
                 .batch = 64,                                                 \
                 .coalesce_ns = 100000,                                       \
                 .spawn_backlog = 4096})

/*
 * tr_system_new - create a system and start its workers.
 * `config` may be NULL for TR_CONFIG_INIT.  On success *out owns the
 * system (free it with tr_system_free).  Any thread may call it, an actor
 * too (nothing in it waits).
 * Returns 0, TR_EINVAL (NULL out, more than 1024 workers, a zero
 * mailbox_capacity or one of 2^30 or more, a zero batch, a stack under
 * 64 KiB, a zero max_actors or one beyond 2^31, a negative watchdog_ns,
 * a coalesce_ns outside 0..10 ms, or a spawn_backlog over 2^30),
 * TR_ENOMEM, or
 * TR_ESYS (a thread could not be started).
 */
TR_API int tr_system_new(const tr_config *config, tr_system **out);

/*
 * tr_system_shutdown - stop the system.
 * New spawns fail with TR_ESHUTDOWN (one from another thread that began
 * just before either does or makes an actor that is destroyed with the
 * others, its cleanup run).  Actors that are idle or parked are
 * never run again; handlers that are running finish their current call.
 * Then every actor is destroyed: queued messages are released (their
 * destructors run), stacks are returned.  Threads that are not workers
 * and are blocked in a send to an actor are woken with TR_ENOACTOR; those
 * waiting in tr_spawn_loop for the spawn backlog, with TR_ESHUTDOWN.
 * Waits for the workers, and for other systems' actors and threads to let
 * go of its actors, until `deadline`.  Call from a thread that is not a
 * worker of this system.  From an actor of another system it never waits
 * (a worker must not block, and the actors it would wait for may need
 * that very worker): it starts the stop and returns TR_ETIMEDOUT until
 * the stop is done; call it again, after a tr_sleep say.  One caller at
 * a time.
 * Returns 0, TR_ETIMEDOUT (a handler did not return in time; call again
 * to keep waiting), or TR_ECONTEXT (called from one of its own workers).
 */
TR_API int tr_system_shutdown(tr_system *sys, tr_deadline deadline);

/*
 * tr_system_free - shut down (waiting as long as it takes) and release
 * the system, with the mailboxes that threads made in it and left alive.
 * NULL is ignored.  From a worker it only frees a system already shut
 * down (tr_system_shutdown returned 0); otherwise it does nothing but
 * say so to the system's log (a worker must not wait, and its own system
 * is what it runs on).
 */
TR_API void tr_system_free(tr_system *sys);

/* tr_system_workers - the number of worker threads. */
TR_API unsigned tr_system_workers(const tr_system *sys);

#endif
