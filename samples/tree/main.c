/*
 * tree - a supervision tree under random failures.
 *
 *   app                        one_for_one
 *   |-- web   permanent        one_for_one:  http-1 http-2 http-3 stats
 *   |-- db    permanent        one_for_all:  pool writer replica
 *   `-- jobs  transient        rest_for_one: queue runner-1 runner-2 reporter
 *
 * Three levels: an application supervisor, one supervisor per service,
 * and worker actors that count the ticks a periodic timer sends them.
 * Each child has a restart type: permanent children always come back,
 * transient ones only after an abnormal end, temporary ones never.  Each
 * service has a strategy that says who comes back with a failed worker:
 * one_for_one only that worker, one_for_all all of them, rest_for_one
 * that worker and the ones started after it.
 *
 * For about three seconds the main thread plays chaos monkey: every 100
 * to 200 ms it picks a running worker at random and tells it to crash
 * (end with an error reason) or to exit normally.  Halfway through it
 * crashes one of web's workers again each time it is back, until web
 * has had more restarts than its intensity allows (3 within 250 ms):
 * web then stops its workers and ends with TR_ELIMIT, and the failure
 * escalates to app, which restarts web: a new supervisor that starts all
 * of web's workers anew, even those the old one had left down.  The
 * random failures alone can never do that: with at least 100 ms between
 * them, no 250 ms window holds more than three, even if all three hit
 * the same service.
 *
 * An observer actor prints what happens as it happens.  Supervisors tell
 * it about every child they start (the start functions below run in the
 * supervisor) and it monitors each one, so it learns of every end and its
 * reason from the DOWN notice.  It also checks the supervisors' promises:
 * a child that its restart type says must come back does, one that must
 * stay down does not (unless its whole service was started anew), and
 * what it saw agrees with the supervisors' own snapshots.  Finally main
 * cancels app, which stops the whole tree depth first, waits for the
 * observer to report that every actor has ended, and prints a summary.
 * It exits non-zero if any count does not add up.
 *
 * In the log, "chaos:" lines are main's injections and the indented
 * lines under them are what the observer saw follow from each.  The seed
 * of the random choices is printed; pass it as the argument or in
 * TR_SEED to replay the same sequence of failures.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "troupe.h"

#define MS            1000000ll /* nanoseconds */
#define CHAOS_MS      3000      /* how long failures are injected */
#define BURST_MS      1500      /* when web is pushed past its intensity */
#define GAP_MIN_MS    100       /* between two injections: at least ... */
#define GAP_MAX_MS    200       /* ... and at most */
#define TICK_MS       10        /* how often each worker gets work */
#define INTENSITY     3         /* a service gives up after more restarts ... */
#define PERIOD_MS     250       /* ... than INTENSITY within this window */
#define REPLY_MS      2000      /* how long an answer may take */
#define SHUTDOWN_MS   5000      /* how long the whole tree may take to end */
#define CRASH         (-100)    /* the exit reason of an injected crash */
#define STR(x)        #x
#define XSTR(x)       STR(x)    /* a macro's value as a string literal */

#define NSERVICES     3
#define MAX_WORKERS   4
#define MAX_MEMBERS   (NSERVICES * (1 + MAX_WORKERS))
#define MAX_WATCHES   (2 * MAX_MEMBERS + 1) /* two lives of each, and app */

/* Message tags: the application's own numbering. */
enum {
    TAG_TICK = 1, /* timer -> worker: a unit of work */
    TAG_CRASH,    /* main -> worker: end with reason CRASH */
    TAG_QUIT,     /* main -> worker: end normally */
    TAG_STARTED,  /* supervisor -> observer: a = member, b = its new ref */
    TAG_APP,      /* main -> observer: a = app's ref, to monitor */
    TAG_SETTLE,   /* main -> observer: chaos is over, check the tree */
    TAG_SETTLED,  /* observer -> main: a = children running */
    TAG_ENDED     /* observer -> main: every actor has ended; a = app's reason */
};

/* The shape of the tree, as drawn above. */
static const struct service_design {
    const char *name;
    tr_restart restart;
    tr_strategy strategy;
    struct {
        const char *name;
        tr_restart restart;
    } workers[MAX_WORKERS];
} design[NSERVICES] = {
    {"web", TR_PERMANENT, TR_ONE_FOR_ONE,
     {{"http-1", TR_PERMANENT}, {"http-2", TR_PERMANENT},
      {"http-3", TR_TRANSIENT}, {"stats", TR_TEMPORARY}}},
    {"db", TR_PERMANENT, TR_ONE_FOR_ALL,
     {{"pool", TR_PERMANENT}, {"writer", TR_PERMANENT}, {"replica", TR_TRANSIENT}}},
    {"jobs", TR_TRANSIENT, TR_REST_FOR_ONE,
     {{"queue", TR_PERMANENT}, {"runner-1", TR_PERMANENT},
      {"runner-2", TR_TRANSIENT}, {"reporter", TR_TEMPORARY}}},
};

static const char *const restart_names[] = {"permanent", "transient", "temporary"};
static const char *const strategy_names[] = {"one_for_one", "one_for_all", "rest_for_one"};
static const char *const state_names[] = {"running", "restarting", "stopped"};

/*
 * A child of a supervisor: a service or a worker.  tree.members holds
 * each service followed by its workers, in start order.
 */
struct member {
    /* Set by main before the tree starts; read-only afterwards. */
    struct tree *tree;
    char name[24];             /* "db" or "db/pool", for the log */
    tr_restart restart;
    struct member *service;    /* a worker's service; NULL for a service */
    size_t nworkers;           /* a service's workers follow it */
    tr_supervisor_opts opts;   /* a service's supervisor ... */
    tr_child_spec specs[MAX_WORKERS]; /* ... and its children */

    /* Written by the observer only; main reads it to pick victims.  The
     * current life of this member once the observer watches it, or
     * TR_REF_NONE once it has ended. */
    _Atomic tr_ref ref;

    /* The observer's own bookkeeping. */
    tr_ref parent;             /* the supervisor that started this life */
    bool stays_down;           /* its last end was one it is not restarted after */
    unsigned starts;           /* lives so far */
    unsigned starts_by_parent; /* ... started by `parent` */
};

struct tree {
    /* Set by main before the tree starts; read-only afterwards. */
    struct member members[MAX_MEMBERS];
    size_t n;
    tr_supervisor_opts app_opts;
    tr_child_spec services[NSERVICES]; /* app's children */
    tr_ref observer, report;   /* report: main's mailbox */
    int64_t t0;

    /* Written by the workers. */
    _Atomic uint64_t ticks;

    /* Written by the observer: main reads escalations while the chaos
     * runs, the rest once the observer's final report has arrived. */
    _Atomic unsigned escalations;
    unsigned crashes, exits;        /* ends with these reasons */
    unsigned stops;                 /* stopped by a supervisor during the chaos */
    unsigned shutdown_ends;         /* ... and after it */
    unsigned worker_restarts, service_restarts;
    unsigned problems;              /* broken promises, each printed */
};

/* Seconds since the tree started, for the log. */
static double elapsed(const struct tree *t)
{
    return (double)(tr_now() - t->t0) / 1e9;
}

/* ---- workers ---------------------------------------------------------- */

/*
 * A worker is a loop actor.  It arms a periodic timer to itself and adds
 * each tick to the total that the summary prints, until main tells it to
 * crash or to quit, or its supervisor stops it (tr_recv then returns
 * TR_ECANCELED, which becomes its exit reason).  The timer is its own:
 * each life arms a new one and cancels it on the way out.
 */
static int worker(tr_actor *self)
{
    struct member *w = tr_actor_state(self);
    tr_system *sys = tr_actor_system(self);
    tr_msg tick = tr_msg_words(TAG_TICK, 0, 0);
    tr_timer_ref ticker;
    int reason = tr_send_every(sys, tr_self(), &tick, TICK_MS * MS,
                               tr_after_ms(TICK_MS), &ticker);
    if (reason)
        return reason;
    for (;;) {
        tr_msg m;
        if ((reason = tr_recv(&m, TR_FOREVER)) != 0)
            break;
        if (m.tag == TAG_TICK)
            atomic_fetch_add_explicit(&w->tree->ticks, 1, memory_order_relaxed);
        else if (m.tag == TAG_CRASH) {
            /* The reason says what happened; the detail, which every
             * notice of this end carries, says more. */
            char why[80];
            int len = snprintf(why, sizeof why, "%s crashed after %llu ticks of the tree",
                               w->name, (unsigned long long)atomic_load(&w->tree->ticks));
            int rc = tr_exit_detail(why, (size_t)len);
            if (rc) /* the crash goes on, with no detail */
                fprintf(stderr, "tree: %s: tr_exit_detail: %s\n", w->name, tr_strerror(rc));
            reason = CRASH;
            break;
        } else if (m.tag == TAG_QUIT)
            break; /* reason 0: a normal exit */
    }
    tr_timer_cancel(sys, ticker);
    return reason;
}

/* ---- start functions: called by a supervisor, in the supervisor ------- */

/*
 * Tell the observer that `m` has a new life.  Start functions run in the
 * supervisor actor, so tr_send stamps the supervisor's ref as the
 * message's sender: the observer learns who started it.  Without the
 * observer's watch the child would go unchecked, so a failed notice
 * undoes the start and the supervisor sees the error.  The observer, not
 * the start function, prints the restart: with one actor printing, an
 * end and the restart it causes come out in order.
 */
static int announce(tr_system *sys, struct member *m, tr_ref ref)
{
    struct tree *t = m->tree;
    tr_msg note = tr_msg_words(TAG_STARTED, (uint64_t)(m - t->members), ref);
    int rc = tr_send(sys, t->observer, &note, tr_after_ms(REPLY_MS));
    if (rc)
        tr_cancel(sys, ref);
    return rc;
}

static int start_worker(tr_system *sys, void *arg, tr_ref *out)
{
    struct member *w = arg;
    tr_spawn_opts opts = TR_SPAWN_OPTS_INIT;
    opts.state = w;
    opts.name = w->name;
    int rc = tr_spawn_loop(sys, worker, &opts, out);
    return rc ? rc : announce(sys, w, *out);
}

/* A service is a supervisor of its own, started as a child of app. */
static int start_service(tr_system *sys, void *arg, tr_ref *out)
{
    struct member *s = arg;
    int rc = tr_supervisor_start(sys, &s->opts, s->specs, s->nworkers, out);
    return rc ? rc : announce(sys, s, *out);
}

/* ---- the tree as its supervisors see it -------------------------------- */

/* The children of `sup`, all `want` of them, or false with why not. */
static bool children(tr_system *sys, tr_ref sup, tr_child_info *out, size_t want,
                     tr_deadline deadline, char *why, size_t whylen)
{
    size_t n;
    int rc = tr_supervisor_children(sys, sup, out, want, &n, deadline);
    if (rc)
        snprintf(why, whylen, "tr_supervisor_children: %s", tr_strerror(rc));
    else if (n != want)
        snprintf(why, whylen, "a supervisor has %zu children, not %zu", n, want);
    return !rc && n == want;
}

/* Snapshots of every member, snap[i] for members[i]: app's children
 * first, then each service's.  False, with why not, if there is none. */
static bool snapshot(tr_system *sys, const struct tree *t, tr_ref app,
                     tr_child_info snap[MAX_MEMBERS], char *why, size_t whylen)
{
    tr_child_info services[NSERVICES];
    tr_deadline deadline = tr_after_ms(REPLY_MS);
    bool ok = children(sys, app, services, NSERVICES, deadline, why, whylen);
    for (size_t i = 0, s = 0; ok && i < t->n; i += 1 + t->members[i].nworkers, s++) {
        snap[i] = services[s];
        ok = children(sys, services[s].ref, &snap[i + 1], t->members[i].nworkers, deadline,
                      why, whylen);
    }
    return ok;
}

static void print_tree(const struct tree *t, tr_ref app,
                       const tr_child_info snap[MAX_MEMBERS])
{
    printf("  %-18s %-12s %-9s %-9s %-8s %s\n", "", "strategy", "restart",
           "state", "restarts", "ref");
    printf("  %-18s %-12s %-9s %-9s %-8s %#" PRIx64 "\n", "app",
           strategy_names[t->app_opts.strategy], "", "running", "", app);
    for (size_t i = 0; i < t->n; i++) {
        const struct member *m = &t->members[i];
        const struct member *s = m->service ? m->service : m;
        bool last_service = s + s->nworkers == &t->members[t->n - 1];
        char label[40];
        if (m->service)
            snprintf(label, sizeof label, "%s   %s %s", last_service ? " " : "|",
                     m == s + s->nworkers ? "`--" : "|--", snap[i].name);
        else
            snprintf(label, sizeof label, "%s %s", last_service ? "`--" : "|--",
                     snap[i].name);
        printf("  %-18s %-12s %-9s %-9s %8" PRIu32 " %#" PRIx64 "\n", label,
               m->service ? "" : strategy_names[m->opts.strategy],
               restart_names[m->restart], state_names[snap[i].state],
               snap[i].restarts, snap[i].ref);
    }
}

/* ---- the observer ------------------------------------------------------ */

/* The observer's state: who it watches, by monitor ref. */
struct observer {
    struct tree *tree;
    struct watch {
        tr_ref monitor;
        struct member *m; /* NULL: app */
    } watches[MAX_WATCHES];
    size_t nwatches;
    bool settled;         /* the chaos is over */
    bool app_ended;
    int app_reason;
};

/* Report a broken promise; the summary counts them. */
static void problem(struct observer *o, const char *fmt, ...)
{
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    printf("%6.3fs   PROBLEM: %s\n", elapsed(o->tree), text);
    o->tree->problems++;
}

/* Monitor `ref`, the actor behind `m` (NULL: app). */
static bool watch(struct observer *o, tr_ref ref, struct member *m)
{
    tr_ref monitor;
    int rc = o->nwatches < MAX_WATCHES ? tr_monitor(ref, &monitor) : TR_ELIMIT;
    if (rc) {
        problem(o, "cannot watch %s: %s", m ? m->name : "app", tr_strerror(rc));
        return false;
    }
    o->watches[o->nwatches++] = (struct watch){monitor, m};
    return true;
}

/* Whether a child that ended with `reason` stays down.  Temporary
 * children always do.  A transient one comes back after anything but a
 * normal exit: in this sample only supervisors stop workers, and they
 * bring back whoever they stop, whether to restart it with a sibling
 * (one_for_all, rest_for_one) or because they gave up (their
 * replacement then starts every child anew). */
static bool stays_down(tr_restart restart, int reason)
{
    return restart == TR_TEMPORARY || (restart == TR_TRANSIENT && reason == 0);
}

/*
 * A supervisor has started a new life of a member (msg->from is that
 * supervisor).  Watch it, then publish its ref for main's chaos.  A member
 * that should have stayed down may only come back from a new supervisor:
 * its service was restarted as a whole.  starts_by_parent is what that
 * supervisor's snapshot should count, less one, as its restarts.
 */
static void on_started(struct observer *o, const tr_msg *msg)
{
    struct member *m = &o->tree->members[msg->a];
    if (!watch(o, msg->b, m))
        return;
    if (m->stays_down && msg->from == m->parent)
        problem(o, "%s came back, but as %s it should have stayed down", m->name,
                restart_names[m->restart]);
    if (msg->from != m->parent) { /* a new supervisor: a service's new life */
        m->parent = msg->from;
        m->starts_by_parent = 0;
    }
    m->starts_by_parent++;
    m->stays_down = false;
    if (m->starts++ > 0) {
        if (m->service)
            o->tree->worker_restarts++;
        else
            o->tree->service_restarts++;
        printf("%6.3fs   %s restarted (restart #%u)%s\n", elapsed(o->tree), m->name,
               m->starts - 1, m->service ? "" : " by app: a new supervisor, "
                                                "which starts all its workers anew");
    }
    atomic_store(&m->ref, msg->b); /* now main may pick it */
}

static const char *reason_text(int reason)
{
    switch (reason) {
    case 0:
        return "exited normally";
    case CRASH:
        return "crashed (injected fault)";
    case TR_ECANCELED:
        return "stopped by its supervisor";
    case TR_ELIMIT:
        return "gave up after more than " XSTR(INTENSITY) " restarts in "
               XSTR(PERIOD_MS) " ms (TR_ELIMIT): this escalates to app";
    default:
        return tr_err_name(reason);
    }
}

static void on_down(struct observer *o, const tr_msg *msg)
{
    struct tree *t = o->tree;
    tr_notice n;
    int rc = tr_notice_read(msg, &n);
    if (rc) {
        problem(o, "a DOWN notice that does not read: %s", tr_strerror(rc));
        return;
    }
    int reason = n.reason;
    size_t k = 0;
    while (k < o->nwatches && o->watches[k].monitor != n.monitor)
        k++;
    if (k == o->nwatches) {
        problem(o, "a DOWN notice for a monitor never made");
        return;
    }
    struct member *m = o->watches[k].m;
    o->watches[k] = o->watches[--o->nwatches];
    if (!m) {
        o->app_ended = true;
        o->app_reason = reason;
        printf("%6.3fs   app ended: %s\n", elapsed(t), tr_err_name(reason));
        return;
    }
    /* The STARTED of a member's next life may come before the DOWN of its
     * last one (they come from different actors): only the end of the
     * current life says whether the member is up. */
    bool current = atomic_load(&m->ref) == msg->from;
    if (current) {
        atomic_store(&m->ref, TR_REF_NONE);
        m->stays_down = stays_down(m->restart, reason);
    }
    switch (reason) {
    case CRASH:
        t->crashes++;
        break;
    case 0:
        t->exits++;
        break;
    case TR_ECANCELED:
        if (o->settled)
            t->shutdown_ends++;
        else
            t->stops++;
        break;
    case TR_ELIMIT:
        atomic_fetch_add(&t->escalations, 1);
        break;
    default:
        problem(o, "%s ended with an unexpected reason", m->name);
    }
    bool stays = current && m->stays_down && !o->settled;
    printf("%6.3fs   %s %s%s%s%s%s%s\n", elapsed(t), m->name, reason_text(reason),
           n.detail ? ": " : "", n.detail ? n.detail : "",
           stays ? "; " : "", stays ? restart_names[m->restart] : "",
           stays ? ", so its supervisor leaves it down" : "");
}

/*
 * The chaos is over and every restart has happened: whoever should be
 * running is, and the supervisors' snapshots agree with what the observer
 * saw (the same ref, and as many restarts as it counted).
 */
static void settle(struct observer *o, tr_system *sys, tr_ref app)
{
    struct tree *t = o->tree;
    tr_child_info snap[MAX_MEMBERS];
    uint64_t running = 0;
    o->settled = true;
    char why[96];
    bool snapped = snapshot(sys, t, app, snap, why, sizeof why);
    if (snapped)
        print_tree(t, app, snap);
    else
        problem(o, "no snapshot of the tree: %s", why);
    for (size_t i = 0; i < t->n; i++) {
        struct member *m = &t->members[i];
        tr_ref ref = atomic_load(&m->ref);
        running += ref != TR_REF_NONE;
        if (!ref && !m->stays_down)
            problem(o, "%s should have been restarted, but was not", m->name);
        if (snapped && (snap[i].ref != ref || snap[i].restarts != m->starts_by_parent - 1 ||
                    snap[i].state != (ref ? TR_CHILD_RUNNING : TR_CHILD_STOPPED)))
            problem(o, "%s: its supervisor reports %s, ref %#" PRIx64 ", %" PRIu32
                    " restarts; the observer saw ref %#" PRIx64 ", %u restarts",
                    m->name, state_names[snap[i].state], snap[i].ref,
                    snap[i].restarts, ref, m->starts_by_parent - 1);
    }
    tr_msg answer = tr_msg_words(TAG_SETTLED, running, 0);
    int rc = tr_send(sys, t->report, &answer, tr_after_ms(REPLY_MS));
    if (rc)
        problem(o, "cannot answer main: %s", tr_strerror(rc));
}

/*
 * The observer: a loop actor that takes the supervisors' notices and the
 * DOWN notices of the actors it watches, in the order they come.  The
 * runtime hands it DOWN notices before queued messages, and a child's
 * DOWN is on its way before its supervisor has even started the next
 * life, so an end is printed before the restart that follows it.  Once
 * app has ended the observer waits for the last of the others, then
 * reports to main.
 */
static int observe(tr_actor *self)
{
    struct observer *o = tr_actor_state(self);
    tr_system *sys = tr_actor_system(self);
    tr_deadline stragglers = TR_FOREVER;
    tr_ref app = TR_REF_NONE;

    while (!o->app_ended || o->nwatches) {
        tr_msg m;
        int rc = tr_recv(&m, stragglers);
        if (rc == TR_ETIMEDOUT) {
            for (size_t k = 0; k < o->nwatches; k++)
                problem(o, "%s still running after app ended", o->watches[k].m->name);
            break;
        }
        if (rc)
            return rc; /* cancelled: the system is going away */
        switch (m.tag) {
        case TAG_STARTED:
            on_started(o, &m);
            break;
        case TR_TAG_DOWN:
            on_down(o, &m);
            tr_msg_release(&m); /* a notice with a detail owns a copy */
            if (o->app_ended && stragglers == TR_FOREVER)
                stragglers = tr_after_ms(REPLY_MS);
            break;
        case TAG_APP:
            app = m.a;
            watch(o, app, NULL);
            break;
        case TAG_SETTLE:
            settle(o, sys, app);
            break;
        }
    }
    tr_msg done = tr_msg_words(TAG_ENDED, (uint64_t)(int64_t)o->app_reason, 0);
    return tr_send(sys, o->tree->report, &done, tr_after_ms(REPLY_MS));
}

/* ---- main: build the tree, make chaos, stop it ------------------------- */

static int check(int rc, const char *what)
{
    if (rc)
        fprintf(stderr, "tree: %s: %s (%s)\n", what, tr_strerror(rc), tr_err_name(rc));
    return rc;
}

/* splitmix64: small, and the same sequence for the same seed everywhere. */
static uint64_t next_random(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Fill in the members from the design: each service, then its workers. */
static void build(struct tree *t)
{
    t->app_opts = TR_SUPERVISOR_OPTS_INIT; /* one_for_one, 3 restarts in 5 s */
    for (size_t s = 0; s < NSERVICES; s++) {
        const struct service_design *d = &design[s];
        struct member *svc = &t->members[t->n++];
        *svc = (struct member){.tree = t, .restart = d->restart};
        snprintf(svc->name, sizeof svc->name, "%s", d->name);
        svc->opts = TR_SUPERVISOR_OPTS_INIT;
        svc->opts.strategy = d->strategy;
        svc->opts.intensity = INTENSITY;
        svc->opts.period_ns = PERIOD_MS * MS;
        for (size_t k = 0; k < MAX_WORKERS && d->workers[k].name; k++) {
            struct member *w = &t->members[t->n++];
            *w = (struct member){.tree = t, .restart = d->workers[k].restart,
                                 .service = svc};
            snprintf(w->name, sizeof w->name, "%s/%s", d->name, d->workers[k].name);
            svc->specs[svc->nworkers++] = (tr_child_spec){
                .name = d->workers[k].name, .start = start_worker, .arg = w,
                .restart = w->restart, .shutdown_ns = 100 * MS};
        }
        t->services[s] = (tr_child_spec){.name = d->name, .start = start_service,
                                         .arg = svc, .restart = svc->restart,
                                         .shutdown_ns = 1000 * MS};
    }
}

/* Tell worker `w` (its life `ref`) to crash or quit; 0 if it got the news. */
static int inject(tr_system *sys, struct member *w, tr_ref ref, uint64_t tag)
{
    printf("%6.3fs chaos: %s %s\n", elapsed(w->tree),
           tag == TAG_CRASH ? "crash" : "quit", w->name);
    tr_msg m = tr_msg_words(tag, 0, 0);
    int rc = tr_send(sys, ref, &m, tr_after_ms(REPLY_MS));
    if (rc == TR_ENOACTOR)
        printf("%6.3fs   (%s had already ended)\n", elapsed(w->tree), w->name);
    return rc;
}

/* What main injected, to compare with what the observer saw. */
struct injected {
    unsigned crashes, burst, exits;
};

/*
 * Crash worker `w` again as soon as each new life of it is up, until its
 * service has had too many restarts and gives up.  The supervisor
 * restarts a worker within microseconds, so the crashes come far faster
 * than the intensity allows.
 */
static int burst(tr_system *sys, struct member *w, struct injected *in)
{
    struct tree *t = w->tree;
    unsigned before = atomic_load(&t->escalations);
    tr_deadline give_up = tr_after_ms(REPLY_MS);
    tr_ref last = TR_REF_NONE;

    printf("%6.3fs chaos: crash %s each time it is back, until %s gives up\n",
           elapsed(t), w->name, w->service->name);
    while (atomic_load(&t->escalations) == before) {
        tr_ref ref = atomic_load(&w->ref);
        if (ref == TR_REF_NONE || ref == last) { /* not back yet */
            if (tr_now() >= give_up) {
                fprintf(stderr, "tree: %s did not give up within %d ms\n",
                        w->service->name, REPLY_MS);
                return TR_ETIMEDOUT;
            }
            tr_sleep(tr_after_ms(1));
            continue;
        }
        int rc = inject(sys, w, ref, TAG_CRASH);
        if (rc && rc != TR_ENOACTOR)
            return check(rc, "tr_send");
        if (!rc) {
            in->crashes++;
            in->burst++;
        }
        last = ref;
    }
    return 0;
}

/* Every 100 to 200 ms, tell a running worker picked at random to crash or quit;
 * halfway through, the burst. */
static int chaos(tr_system *sys, struct tree *t, uint64_t *rng, struct injected *in)
{
    int64_t end = t->t0 + CHAOS_MS * MS, burst_at = t->t0 + BURST_MS * MS;
    bool burst_done = false;

    for (;;) {
        tr_sleep(tr_after_ms(GAP_MIN_MS + (int64_t)(next_random(rng) %
                                                    (GAP_MAX_MS - GAP_MIN_MS + 1))));
        if (tr_now() >= end)
            return 0;
        if (!burst_done && tr_now() >= burst_at) {
            burst_done = true;
            /* web/http-1: web is the first member, its workers follow it. */
            int rc = burst(sys, &t->members[1], in);
            if (rc)
                return rc;
            continue;
        }
        struct member *running[MAX_MEMBERS];
        tr_ref refs[MAX_MEMBERS];
        size_t n = 0;
        for (size_t i = 0; i < t->n; i++) {
            tr_ref ref = atomic_load(&t->members[i].ref);
            if (t->members[i].service && ref != TR_REF_NONE) {
                running[n] = &t->members[i];
                refs[n++] = ref;
            }
        }
        if (n == 0)
            continue;
        size_t pick = next_random(rng) % n;
        bool crash = next_random(rng) % 3 != 0; /* two crashes for one exit */
        int rc = inject(sys, running[pick], refs[pick], crash ? TAG_CRASH : TAG_QUIT);
        if (rc && rc != TR_ENOACTOR)
            return check(rc, "tr_send");
        if (!rc && crash)
            in->crashes++;
        else if (!rc)
            in->exits++;
    }
}

/* Wait for the observer's message `tag`; 0 if it came before `deadline`. */
static int await(tr_mailbox *inbox, uint64_t tag, tr_deadline deadline, tr_msg *out)
{
    int rc = tr_mailbox_recv(inbox, out, deadline);
    if (rc == 0 && out->tag != tag)
        rc = TR_EINVAL;
    return rc;
}

/* The seed: the argument, else TR_SEED, else the clock. */
static bool parse_seed(int argc, char **argv, uint64_t *seed)
{
    const char *text = argc > 1 ? argv[1] : getenv("TR_SEED");
    char *end;
    if (!text || !*text) {
        *seed = (uint32_t)((uint64_t)time(NULL) ^ (uint64_t)tr_now());
        return true;
    }
    *seed = strtoull(text, &end, 10);
    return *end == '\0';
}

int main(int argc, char **argv)
{
    static struct tree t;        /* zeroed; outlives every actor */
    static struct observer obs;  /* the observer's state */
    struct injected in = {0};
    tr_system *sys;
    tr_mailbox *inbox;
    tr_child_info snap[MAX_MEMBERS];
    tr_ref app;
    tr_msg m;
    uint64_t seed, rng, running;
    int status = 1;

    if (!parse_seed(argc, argv, &seed)) {
        fprintf(stderr, "usage: %s [seed]   (or TR_SEED=seed)\n", argv[0]);
        return 2;
    }
    rng = seed;
    setvbuf(stdout, NULL, _IOLBF, 0); /* lines show up at once, even in a pipe */
    if (check(tr_system_new(NULL, &sys), "tr_system_new"))
        return 1;
    if (check(tr_mailbox_new(sys, 7, &inbox), "tr_mailbox_new"))
        goto free_system;
    build(&t);
    t.report = tr_mailbox_ref(inbox);
    t.t0 = tr_now();
    obs.tree = &t;

    /* The observer first: the supervisors tell it about every start. */
    tr_spawn_opts opts = TR_SPAWN_OPTS_INIT;
    opts.state = &obs;
    opts.name = "observer";
    if (check(tr_spawn_loop(sys, observe, &opts, &t.observer), "tr_spawn_loop observer"))
        goto free_mailbox;
    if (check(tr_supervisor_start(sys, &t.app_opts, t.services, NSERVICES, &app),
              "tr_supervisor_start app"))
        goto free_mailbox;
    m = tr_msg_words(TAG_APP, app, 0);
    if (check(tr_send(sys, t.observer, &m, tr_after_ms(REPLY_MS)), "tr_send observer"))
        goto free_mailbox;

    printf("tree: seed %" PRIu64 " (replay: %s %" PRIu64 ", or TR_SEED=%" PRIu64 ")\n",
           seed, argv[0], seed, seed);
    printf("services give up after more than %d restarts in %d ms; "
           "app after more than %" PRIu32 " in %" PRId64 " s\n\n",
           INTENSITY, PERIOD_MS, t.app_opts.intensity, t.app_opts.period_ns / 1000000000);
    char why[96];
    if (!snapshot(sys, &t, app, snap, why, sizeof why)) {
        fprintf(stderr, "tree: no snapshot of the tree: %s\n", why);
        goto free_mailbox;
    }
    print_tree(&t, app, snap);
    printf("\n");

    if (chaos(sys, &t, &rng, &in))
        goto free_mailbox;

    printf("%6.3fs chaos over; the tree as its supervisors report it:\n", elapsed(&t));
    m = tr_msg_words(TAG_SETTLE, 0, 0);
    if (check(tr_send(sys, t.observer, &m, tr_after_ms(REPLY_MS)), "tr_send observer") ||
        check(await(inbox, TAG_SETTLED, tr_after_ms(REPLY_MS), &m),
              "waiting for the observer's check"))
        goto free_mailbox;
    running = m.a;

    /* Cancelling app stops each service, and each service its workers,
     * in reverse start order: the whole tree ends depth first. */
    printf("\n%6.3fs main: tr_cancel(app)\n", elapsed(&t));
    int64_t cancelled = tr_now();
    if (check(tr_cancel(sys, app), "tr_cancel app"))
        goto free_mailbox;
    if (await(inbox, TAG_ENDED, tr_after_ms(SHUTDOWN_MS), &m)) {
        fprintf(stderr, "tree: the tree did not end within %d ms\n", SHUTDOWN_MS);
        goto free_mailbox;
    }
    /* From here main reads what the observer wrote before it reported. */
    double shutdown_ms = (double)(tr_now() - cancelled) / 1e6;
    int app_reason = (int)(int64_t)m.a;
    unsigned escalations = atomic_load(&t.escalations);

    printf("\nsummary (seed %" PRIu64 ", %.2f s)\n", seed, elapsed(&t));
    printf("  injected   %u crashes (%u in the burst), %u normal exits\n",
           in.crashes, in.burst, in.exits);
    printf("  seen       %u crashes, %u normal exits, %u workers stopped along "
           "with others, %u escalation%s\n", t.crashes, t.exits, t.stops,
           escalations, escalations == 1 ? "" : "s");
    printf("  restarts   %u of workers, %u of services; %" PRIu64 " of the %zu children "
           "were running when the chaos ended\n", t.worker_restarts, t.service_restarts,
           running, t.n);
    printf("  work       %" PRIu64 " ticks counted by the workers\n",
           atomic_load(&t.ticks));
    printf("  shutdown   app (%s) and its %u running children ended %.1f ms after "
           "tr_cancel\n", tr_err_name(app_reason), t.shutdown_ends, shutdown_ms);

    bool ok = true;
    if (t.crashes != in.crashes || t.exits != in.exits) {
        printf("  MISMATCH   the observer saw other ends than main injected\n");
        ok = false;
    }
    if (escalations != 1 || t.service_restarts != 1) {
        printf("  MISMATCH   expected exactly one escalation and one service restart\n");
        ok = false;
    }
    if (t.shutdown_ends != running || app_reason != TR_ECANCELED) {
        printf("  MISMATCH   not every running child ended by cancellation\n");
        ok = false;
    }
    if (t.problems) {
        printf("  MISMATCH   %u broken promises (marked PROBLEM above)\n", t.problems);
        ok = false;
    }
    printf("  result     %s\n", ok ? "every count adds up" : "FAILED");
    if (ok)
        status = 0;

free_mailbox:
    tr_mailbox_free(inbox);
free_system:
    tr_system_free(sys);
    return status;
}
