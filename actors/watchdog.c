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
 * What "for watchdog_ns" counts: wall time, less the time the worker's
 * thread spent waiting for a CPU in the kernel's run queue, which Linux
 * keeps per thread (the second number of /proc/self/task/<tid>/schedstat,
 * with CONFIG_SCHED_INFO).  Wall time alone reported actors on a busy
 * machine: a worker that the kernel leaves waiting 20 ms in the middle of
 * a 1 ms handler has not run its actor at all.  The thread's CPU time
 * would leave out those waits, but also the time an actor spends blocked
 * in a system call (sleep, a blocking read, a pthread lock), which uses
 * no CPU and is one of the mistakes the watchdog is there to catch; here
 * that time counts.  Without schedstat (another kernel, no /proc, no file
 * descriptor to spare) the watchdog counts wall time for that worker.
 *
 * The kernel adds a wait to schedstat when it ends, as the thread gets a
 * CPU again: a reading taken while the thread still waits leaves out the
 * wait under way.  So before it reports, the watchdog makes sure that the
 * thread was not waiting at some moment after the end of the time it
 * counts, and before the reading: every wait that began before that
 * moment had ended by then, so the reading holds them all.  Its CPU
 * clock moved between two reads in a row (it runs now: the time counted
 * ends at this look), or since the previous look (it ran in between: the
 * time counted ends at that look; on a busy machine the watchdog's own
 * thread seldom gets a CPU at a moment when the worker has one), or its
 * stat says it sleeps (S or D: blocked in the kernel, so the time counted
 * ends at this look).  If none of these, the thread has been waiting
 * for a CPU since the previous look, and the watchdog tries again at its
 * next one.  The clocks are read, and the counters sampled, in an order
 * that can only make a stretch look shorter than it is (see look), so a
 * watchdog thread that the kernel keeps waiting in the middle of a look
 * never makes one look longer.
 *
 * The cost on the hot path is one relaxed store per turn and one per
 * message taken after a turn's first; the looks cost the workers a
 * shared cache line read a few times per period, and the watchdog a
 * pread of schedstat per worker that is running a turn, two reads of its
 * CPU clock once the turn has lasted from one look to the next, and an
 * open and read of its stat (and another pread) once a stretch would be
 * long enough to report but the clocks did not move.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "futex.h"
#include "runtime.h"

typedef struct watch {
    uint32_t turns, progress;
    tr_ref ref;
    int64_t since;  /* wall time (tr_now) when first seen */
    int64_t waited; /* the thread's run queue wait, read just before */
    /* At the previous look: its wall time, and the thread's CPU time read
     * after it (-1: not read). */
    int64_t last_upto, last_cpu;
    bool reported;
} watch;

/* How the watchdog reads one worker's thread. */
typedef struct view {
    bool opened;    /* tried to open its schedstat, once its tid was known */
    int tid;
    int schedstat;  /* file descriptor, or -1: count wall time */
    clockid_t clock; /* the thread's CPU clock, if schedstat */
} view;

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

/* Read `len` - 1 bytes at most of the start of a /proc file, as a string. */
static bool read_proc(int fd, char *buf, size_t len)
{
    ssize_t n = pread(fd, buf, len - 1, 0);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    return true;
}

/* The time (ns) the thread of `v` has waited in a run queue, as far as
 * schedstat has it: 0 without schedstat, -1 if it cannot be read (the
 * thread has ended). */
static int64_t run_queue_wait(const view *v)
{
    if (v->schedstat < 0)
        return 0;
    char buf[96], *end, *p;
    if (!read_proc(v->schedstat, buf, sizeof buf))
        return -1;
    strtoull(buf, &p, 10); /* first the time on a CPU */
    unsigned long long ns = strtoull(p, &end, 10);
    return p == buf || end == p ? -1 : (int64_t)ns;
}

/* The CPU time (ns) of the thread of `v`, -1 if it has ended. */
static int64_t cpu_time(const view *v)
{
    struct timespec ts;
    if (clock_gettime(v->clock, &ts) != 0)
        return -1;
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Whether the thread of `v` sleeps in the kernel (a system call, a lock,
 * a page fault), and so does not wait for a CPU. */
static bool asleep(const view *v)
{
    char path[48], buf[128];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", v->tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC); /* seldom needed: not kept */
    if (fd < 0)
        return false;
    bool ok = read_proc(fd, buf, sizeof buf);
    close(fd);
    /* "tid (name) S ...": the name may hold ')', the numbers after not. */
    const char *p = ok ? strrchr(buf, ')') : NULL;
    return p && p[1] == ' ' && (p[2] == 'S' || p[2] == 'D');
}

/* Open the schedstat of worker `w`'s thread, the first time that its tid
 * is known; false until then. */
static bool open_view(view *v, tr__worker *w)
{
    if (v->opened)
        return true;
    v->tid = atomic_load_explicit(&w->tid, memory_order_acquire);
    if (!v->tid)
        return false; /* its thread has not started yet */
    v->opened = true;
    char path[48];
    snprintf(path, sizeof path, "/proc/self/task/%d/schedstat", v->tid);
    v->schedstat = open(path, O_RDONLY | O_CLOEXEC);
    if (v->schedstat >= 0 &&
        (pthread_getcpuclockid(w->thread, &v->clock) != 0 || run_queue_wait(v) < 0)) {
        close(v->schedstat);
        v->schedstat = -1;
    }
    return true;
}

static watch sample(tr__worker *w)
{
    return (watch){
        .ref = atomic_load_explicit(&w->running, memory_order_relaxed),
        .turns = atomic_load_explicit(&w->turns, memory_order_relaxed),
        .progress = atomic_load_explicit(&w->progress, memory_order_relaxed),
    };
}

static bool same(const watch *a, const watch *b)
{
    return a->ref == b->ref && a->turns == b->turns && a->progress == b->progress;
}

/*
 * The order of the reads is what keeps a stretch from looking longer than
 * it is, however long this thread is kept waiting between them.  When a
 * stretch is first seen, its wait is read before its wall time `since`:
 * a wait that ends after `since` is in the later readings, so the time
 * counted from `since` on can only be too short.  At a later look, the
 * wall time `upto` is read first, then the CPU clock twice, then the
 * wait; the counters are sampled before all that and again before a
 * report.  So the stretch lasted at least from `since` to `upto` (to the
 * previous look's `upto`, which came before that look's CPU clock read),
 * and the moment at which the thread was seen not to wait came after
 * `upto` and before the wait was read (asleep's stat read comes after
 * it, so the wait is read again).  The counters only grow (`turns` at
 * every pick), so ones that were seen again never left in between.
 */
static void look(tr_system *sys, watch *seen, view *views)
{
    int64_t limit = sys->cfg.watchdog_ns;
    for (unsigned i = 0; i < sys->nworkers; i++) {
        tr__worker *w = &sys->workers[i];
        watch *s = &seen[i];
        view *v = &views[i];
        watch before = sample(w);
        if (!before.ref || !open_view(v, w)) {
            s->ref = TR_REF_NONE;
            continue;
        }
        bool again = same(&before, s);
        if (again && s->reported)
            continue;
        bool measured = v->schedstat >= 0;
        int64_t upto = tr_now(), cpu = -1, cpu2 = -1;
        if (again && measured && ((cpu = cpu_time(v)) < 0 || (cpu2 = cpu_time(v)) < 0)) {
            s->ref = TR_REF_NONE; /* the thread has ended */
            continue;
        }
        int64_t waited = run_queue_wait(v);
        if (waited < 0) {
            s->ref = TR_REF_NONE;
            continue;
        }
        if (!again) {
            *s = before;
            s->since = tr_now();
            s->waited = waited;
            s->last_upto = s->since;
            s->last_cpu = -1;
            continue;
        }
        int64_t last_upto = s->last_upto, last_cpu = s->last_cpu;
        s->last_upto = upto;
        s->last_cpu = cpu2;
        /* `maybe`: the time counted unless a wait is under way; `ran`:
         * what is sure of it (-1: nothing yet). */
        int64_t maybe = (upto - s->since) - (waited - s->waited), ran = -1;
        if (!measured || cpu2 != cpu)
            ran = maybe;
        else if (last_cpu >= 0 && cpu != last_cpu)
            ran = (last_upto - s->since) - (waited - s->waited);
        if (ran < limit && maybe >= limit && measured && asleep(v) &&
            (waited = run_queue_wait(v)) >= 0)
            ran = (upto - s->since) - (waited - s->waited);
        if (ran < limit)
            continue; /* not yet, or the thread waits for a CPU */
        watch after = sample(w);
        if (!same(&before, &after)) {
            s->ref = TR_REF_NONE;
            continue;
        }
        report(sys, i, s->ref, ran);
        s->reported = true;
    }
}

static void *watchdog_main(void *arg)
{
    tr_system *sys = arg;
    watch *seen = calloc(sys->nworkers, sizeof *seen);
    view *views = calloc(sys->nworkers, sizeof *views);
    if (!seen || !views) {
        tr__log(sys, "troupe watchdog: out of memory, not watching");
        free(views);
        free(seen);
        return NULL;
    }
    /* A stretch is noticed within a period after it has run watchdog_ns,
     * if its worker does not wait for a CPU; else within a look or two
     * after the worker gets one again. */
    int64_t period = sys->cfg.watchdog_ns / 4;
    if (period < 1000000)
        period = 1000000;
    while (!atomic_load(&sys->watchdog_stop)) {
        look(sys, seen, views);
        tr__futex_wait(&sys->watchdog_stop, 0, tr_after_ns(period));
    }
    for (unsigned i = 0; i < sys->nworkers; i++)
        if (views[i].opened && views[i].schedstat >= 0)
            close(views[i].schedstat);
    free(views);
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
