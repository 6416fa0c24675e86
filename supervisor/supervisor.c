/*
 * supervisor.c - the supervisor actor: start children in order, restart
 * them by strategy and restart type, give up past the restart intensity,
 * stop them in reverse order.  See troupe/supervisor.h for the rules.
 *
 * Implementation notes: a supervisor is a loop actor that traps exits and
 * links to each child, so a child's end arrives as a TR_TAG_EXIT message
 * however full its mailbox is.  Its receive deadline is the earliest
 * pending restart (backoff).  Stopping children must wait for their exits
 * even when the supervisor itself is being cancelled, so it shields its
 * waits from its own cancellation for that part (Trio's shielded scopes).
 * Introspection is a request message answered with a snapshot: the state
 * stays the supervisor's own and needs no lock.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "../actors/runtime.h"

/*
 * Requests from tr_supervisor_children, _start_child and _terminate_child:
 * a heap payload, answered to `reply`.  Those that change the children
 * wait (on `deferred`) while the supervisor is stopping some.  Every
 * request is answered exactly once: by the supervisor, or, if it ends
 * first, by the payload's destructor (free_request), wherever that runs.
 */
#define TAG_REQUEST ((uint64_t)-10)
#define TAG_REPLY ((uint64_t)-11)
enum { OP_CHILDREN = 1, OP_START, OP_TERMINATE };

typedef struct request {
    int op;
    bool answered;
    tr_system *sys;
    tr_ref reply;
    tr_child_spec spec;      /* OP_START */
    tr_ref child;            /* OP_TERMINATE */
    struct request *next;
} request;

/* In reasons[]: no exit of this child waits to be handled.  Out of int's
 * range, since an exit reason may be any int (INT_MIN included). */
#define NO_EXIT INT64_MIN

typedef struct child {
    tr_child_spec spec;
    char name[32];
    tr_ref ref;              /* TR_REF_NONE unless running */
    tr_child_state state;
    uint32_t restarts;
    uint32_t streak;         /* restarts in a row, for the backoff */
    int64_t started_at;
    int64_t restart_at;      /* when RESTARTING */
} child;

typedef struct sup {
    tr_supervisor_opts o;
    size_t n;
    child *kids;
    int64_t *history;        /* times of recent restarts, a ring */
    int64_t *reasons;        /* per child, while others are being stopped */
    size_t cap;              /* kids allocated */
    request *deferred, **deferred_tail;
    tr_msg *in_flight;       /* the request being handled, if one is */
    int orphaned;            /* our supervisor's exit reason, once it is gone */
    uint32_t hnext, hlen;
    uint64_t rng;
} sup;

static tr_system *sys_of(void)
{
    return tr_actor_system(tr_current());
}

/* An answer that carries only a code (and for OP_START the child's ref). */
static tr_msg code_answer(int rc, tr_ref child)
{
    return tr_msg_words(TAG_REPLY, (uint64_t)(int64_t)rc, child);
}

/*
 * The destructor of a request's payload.  One the supervisor never
 * answered is answered "no such supervisor" here: it was on the deferred
 * list, in flight when the supervisor was abandoned, or still in its
 * mailbox when it ended.  This may run outside the supervisor (its
 * mailbox is drained wherever the actor is destroyed), so the answer is
 * a send that never waits; the asker's one-message mailbox has room.
 */
static void free_request(void *ptr, size_t len)
{
    (void)len;
    request *r = ptr;
    if (!r->answered) {
        tr_msg m = code_answer(TR_ENOACTOR, TR_REF_NONE);
        tr_try_send(r->sys, r->reply, &m); /* fails only if the asker gave up */
    }
    free(r);
}

static void free_sup(void *arg)
{
    sup *s = arg;
    if (s->in_flight) /* abandoned while handling it */
        tr_msg_release(s->in_flight);
    free(s->kids);
    free(s->history);
    free(s->reasons);
    for (request *r = s->deferred, *next; r; r = next) {
        next = r->next;
        free_request(r, sizeof *r);
    }
    free(s);
}

/* The place that a link's tag names, if the running child there is `ref`;
 * else -1. */
static ssize_t at_tag(sup *s, uint32_t tag, tr_ref ref)
{
    size_t i = (size_t)tag - 1; /* 0, an untagged link: never a child */
    return i < s->n && s->kids[i].ref == ref ? (ssize_t)i : -1;
}

/* The place of the running child `ref` by its link's tag, or -1. */
static ssize_t find(sup *s, tr_ref ref)
{
    uint32_t tag;
    return ref && tr__link_tag(ref, &tag) ? at_tag(s, tag, ref) : -1;
}

/* The place of the running child whose exit `m` is, or -1: the exit of
 * a tagged link carries its tag. */
static ssize_t exited_child(sup *s, const tr_msg *m)
{
    return m->tag == TR_TAG_EXIT ? at_tag(s, tr__notice_tag(m), m->from) : -1;
}

/* Run c's start function: 0 with the child's ref in *ref, or its error.
 * A positive return is no error code, and 0 with no ref started nothing:
 * both are a failed start, TR_EINVAL (see tr_child_start). */
static int run_start(child *c, tr_ref *ref)
{
    int rc = c->spec.start(sys_of(), c->spec.arg, ref);
    return rc > 0 || (rc == 0 && *ref == TR_REF_NONE) ? TR_EINVAL : rc;
}

static int start_child(sup *s, size_t i)
{
    child *c = &s->kids[i];
    tr_ref ref = TR_REF_NONE;
    int rc = run_start(c, &ref);
    if (rc)
        return rc;
    c->started_at = tr_now();
    /* A child that has ended already reaches us all the same, as an exit
     * with reason TR_ENOACTOR (we trap exits; see tr__link_tagged), and
     * is then restarted or not by its restart type. */
    rc = tr__link_tagged(ref, (uint32_t)i + 1); /* see exited_child */
    if (rc) {
        /* Not supervised after all.  Out of memory: do not leave it
         * running.  TR_EINVAL: no actor (a mailbox's ref, or our own),
         * none of ours to cancel. */
        c->ref = TR_REF_NONE;
        if (rc == TR_ENOMEM)
            tr_cancel(sys_of(), ref);
        return rc;
    }
    c->ref = ref;
    c->state = TR_CHILD_RUNNING;
    return 0;
}

static void free_payload(void *ptr, size_t len)
{
    (void)len;
    free(ptr);
}

/* Only our own requests: an application's message with the same tag is
 * not taken for one (its payload is not ours to read). */
static bool is_request(const tr_msg *m)
{
    return m->tag == TAG_REQUEST && m->free_fn == free_request && m->len == sizeof(request);
}

static void reply(request *r, tr_msg *m)
{
    r->answered = true;
    if (tr_send(sys_of(), r->reply, m, tr_after_ms(100)))
        tr_msg_release(m); /* the asker gave up */
}

static void answer_children(sup *s, request *r)
{
    tr_child_info *info = calloc(s->n ? s->n : 1, sizeof *info);
    if (!info) {
        tr_msg m = code_answer(TR_ENOMEM, TR_REF_NONE);
        reply(r, &m);
        return;
    }
    for (size_t i = 0; i < s->n; i++) {
        memcpy(info[i].name, s->kids[i].name, sizeof info[i].name);
        info[i].ref = s->kids[i].ref;
        info[i].state = s->kids[i].state;
        info[i].restarts = s->kids[i].restarts;
        info[i].kind = s->kids[i].spec.kind;
    }
    tr_msg m = tr_msg_buf(TAG_REPLY, info, s->n * sizeof *info, free_payload);
    reply(r, &m);
}

/* A request that arrives while children are being stopped: snapshots are
 * answered at once, changes wait for the main loop. */
static void hold_request(sup *s, tr_msg *m)
{
    request *r = m->ptr;
    if (r->op == OP_CHILDREN) {
        answer_children(s, r);
        tr_msg_release(m);
        return;
    }
    m->free_fn = NULL; /* ours now, on the list */
    r->next = NULL;
    *s->deferred_tail = r;
    s->deferred_tail = &r->next;
}

/*
 * Any message other than a request or a running child's exit, wherever it
 * is received: the exit of our own supervisor (the only other actor
 * linked to us: a child left behind was unlinked, so no exit of it comes)
 * makes us an orphan, to end once the main loop sees it (a stop in
 * progress still finishes).  Others are not ours.
 */
static void other_exit(sup *s, const tr_msg *m)
{
    if (m->tag != TR_TAG_EXIT || s->orphaned)
        return;
    int reason = tr__notice_reason(m);
    s->orphaned = reason ? reason : TR_ESHUTDOWN;
}

/* When a stop of c that starts now gives up on it. */
static tr_deadline stop_deadline(const child *c)
{
    if (c->spec.kind == TR_CHILD_SUPERVISOR && c->spec.shutdown_ns == 0)
        return TR_FOREVER; /* as long as its own children take */
    return tr_after_ns(c->spec.shutdown_ns);
}

/* Child i did not end in time: unlinked, so that no exit of it reaches
 * us from now on, not even one already on its way (see tr_unlink);
 * abandoned (it ends at its next blocking call, or now if it is parked
 * in one), and reported. */
static void leave_behind(sup *s, size_t i)
{
    child *c = &s->kids[i];
    tr_ref ref = c->ref;
    tr_system *sys = sys_of();
    tr_unlink(ref);
    tr__abandon(sys, ref);
    tr__log(sys,
            "troupe supervisor %#llx: child '%s' (ref %#llx) did not stop within %.1f ms; "
            "abandoned: it ends with TR_EKILLED at its next call that would wait",
            (unsigned long long)tr_self(), c->name, (unsigned long long)ref,
            (double)c->spec.shutdown_ns / 1e6);
}

/*
 * While children are being stopped: wait until `until` for the next exit
 * of a running child.  Requests are held for the main loop and other
 * messages dealt with (other_exit).  Returns the child's place, its ref
 * cleared and its reason in *reason, or -1 once the deadline has passed.
 */
static ssize_t next_child_exit(sup *s, tr_deadline until, int *reason)
{
    for (;;) {
        tr_msg m;
        if (tr_recv(&m, until))
            return -1;
        if (is_request(&m)) {
            hold_request(s, &m);
            continue;
        }
        ssize_t k = exited_child(s, &m);
        if (k >= 0) {
            *reason = tr__notice_reason(&m);
            s->kids[k].ref = TR_REF_NONE;
        } else {
            other_exit(s, &m);
        }
        tr_msg_release(&m);
        if (k >= 0)
            return k;
    }
}

/*
 * Stop child i: cancel it and wait up to its shutdown time for its exit.
 * Exits of other children that arrive meanwhile are noted in reasons[].
 */
static void stop_child(sup *s, size_t i, int64_t *reasons)
{
    child *c = &s->kids[i];
    if (!c->ref)
        return;
    /* Our own cancellation must not cut this wait short: the child would
     * outlive us.  tr_cancelled still tells, and the main loop ends. */
    bool shielded = tr__actor_shield(tr_current(), true);
    tr_cancel(sys_of(), c->ref);
    tr_deadline until = stop_deadline(c);
    for (;;) {
        int reason;
        ssize_t k = next_child_exit(s, until, &reason);
        if (k < 0) { /* past its deadline */
            leave_behind(s, i);
            break;
        }
        if ((size_t)k == i)
            break;
        reasons[k] = reason; /* another child ended meanwhile */
    }
    c->ref = TR_REF_NONE;
    tr__actor_shield(tr_current(), shielded);
}

/*
 * Cancel children hi, ..., lo, then wait for all their exits, until the
 * longest of their shutdown times; those left then are abandoned.
 */
static void stop_range_at_once(sup *s, size_t lo, size_t hi, int64_t *reasons)
{
    bool shielded = tr__actor_shield(tr_current(), true); /* see stop_child */
    size_t left = 0;
    tr_deadline until = TR_NOW;
    for (size_t i = hi + 1; i-- > lo;) {
        child *c = &s->kids[i];
        if (!c->ref)
            continue;
        tr_cancel(sys_of(), c->ref);
        left++;
        tr_deadline d = stop_deadline(c);
        if (d > until)
            until = d;
    }
    while (left) {
        int reason;
        ssize_t k = next_child_exit(s, until, &reason);
        if (k < 0)
            break;
        if ((size_t)k >= lo && (size_t)k <= hi)
            left--;
        else
            reasons[k] = reason;
    }
    for (size_t i = lo; left && i <= hi; i++) {
        if (s->kids[i].ref) {
            leave_behind(s, i);
            s->kids[i].ref = TR_REF_NONE;
        }
    }
    tr__actor_shield(tr_current(), shielded);
}

/* Stop children hi, hi-1, ..., lo (reverse start order). */
static void stop_range(sup *s, size_t lo, size_t hi, int64_t *reasons)
{
    if (s->o.stop_at_once) {
        stop_range_at_once(s, lo, hi, reasons);
        return;
    }
    for (size_t i = hi + 1; i-- > lo;)
        stop_child(s, i, reasons);
}

/* a + b for a, b >= 0, or INT64_MAX (TR_FOREVER) if that is past it.
 * The delays saturate rather than overflow: a backoff as long as "never"
 * is a fair thing to ask for, and it must not wrap round to "at once". */
static int64_t add_saturating(int64_t a, uint64_t b)
{
    return b > (uint64_t)(INT64_MAX - a) ? INT64_MAX : a + (int64_t)b;
}

/* 64 random bits (splitmix64: every bit is good; an LCG's low bits are
 * not, and its high 31 alone cannot spread a span over 2^31 ns). */
static uint64_t next_random(sup *s)
{
    uint64_t z = (s->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* d moved by up to +/- jitter_percent of itself, uniformly; d >= 0. */
static int64_t jitter(sup *s, int64_t d)
{
    uint32_t p = s->o.jitter_percent; /* at most 100: span <= d */
    int64_t span = d / 100 * p + d % 100 * p / 100; /* d * p / 100 */
    return add_saturating(d - span, next_random(s) % (2 * (uint64_t)span + 1));
}

/* Delay before restarting c: exponential backoff with jitter. */
static int64_t backoff(sup *s, child *c, int64_t now)
{
    if (now - c->started_at >= s->o.backoff_reset_ns)
        c->streak = 0;
    if (!s->o.backoff_base_ns)
        return 0;
    int64_t d = s->o.backoff_base_ns, cap = s->o.backoff_cap_ns;
    for (uint32_t k = 0; k < c->streak && d < cap; k++)
        d = d > cap / 2 ? cap : d * 2;
    return s->o.jitter_percent ? jitter(s, d) : d;
}

/* Restart child i now or after its backoff. */
static int schedule(sup *s, size_t i, int64_t now)
{
    child *c = &s->kids[i];
    if (c->spec.restart == TR_TEMPORARY) {
        c->state = TR_CHILD_STOPPED;
        return 0;
    }
    int64_t d = backoff(s, c, now);
    c->streak++;
    c->restarts++;
    c->state = TR_CHILD_RESTARTING;
    c->restart_at = add_saturating(now, (uint64_t)d); /* INT64_MAX: never */
    return d ? 0 : start_child(s, i);
}

/* One more restart; false if that exceeds the intensity. */
static bool within_intensity(sup *s, int64_t now)
{
    uint32_t cap = s->o.intensity + 1;
    s->history[s->hnext] = now;
    s->hnext = (s->hnext + 1) % cap;
    if (s->hlen < cap)
        s->hlen++;
    uint32_t recent = 0;
    for (uint32_t k = 0; k < s->hlen; k++)
        recent += now - s->history[k] <= s->o.period_ns;
    return recent <= s->o.intensity;
}

static bool wants_restart(const child *c, int reason)
{
    switch (c->spec.restart) {
    case TR_PERMANENT:
        return true;
    case TR_TRANSIENT: /* not after a normal end or being stopped */
        return reason != 0 && reason != TR_ECANCELED;
    default:
        return false;
    }
}

/* Child i ended with `reason`: 0, or the reason for the supervisor to end. */
static int on_child_exit(sup *s, size_t i, int reason, int64_t *reasons)
{
    child *c = &s->kids[i];
    c->ref = TR_REF_NONE;
    if (!wants_restart(c, reason)) {
        c->state = TR_CHILD_STOPPED;
        return 0;
    }
    /* Being stopped, we restart nothing, so count nothing against the
     * intensity: an exit that came during a group restart we were
     * cancelled in is no failure past it (the main loop ends us). */
    if (tr_cancelled())
        return 0;
    int64_t now = tr_now();
    if (!within_intensity(s, now))
        return TR_ELIMIT;
    size_t lo = i, hi = i;
    if (s->o.strategy == TR_ONE_FOR_ALL)
        lo = 0, hi = s->n - 1;
    else if (s->o.strategy == TR_REST_FOR_ONE)
        hi = s->n - 1;
    if (hi > i)
        stop_range(s, i + 1, hi, reasons);
    if (lo < i)
        stop_range(s, lo, i - 1, reasons);
    for (size_t j = lo; j <= hi; j++) {
        if (tr_cancelled())
            return 0; /* we are being stopped: the main loop ends us */
        reasons[j] = NO_EXIT; /* handled here */
        if (s->kids[j].state == TR_CHILD_STOPPED && j != i)
            continue;
        int rc = schedule(s, j, now);
        if (rc)
            return rc;
    }
    return 0;
}

static tr_deadline next_restart(sup *s)
{
    tr_deadline t = TR_FOREVER;
    for (size_t i = 0; i < s->n; i++)
        if (s->kids[i].state == TR_CHILD_RESTARTING && s->kids[i].restart_at < t)
            t = s->kids[i].restart_at;
    return t;
}

static int run_due_restarts(sup *s)
{
    int64_t now = tr_now();
    for (size_t i = 0; i < s->n; i++) {
        child *c = &s->kids[i];
        if (c->state == TR_CHILD_RESTARTING && c->restart_at <= now) {
            int rc = start_child(s, i);
            if (rc)
                return rc;
        }
    }
    return 0;
}

/* Exits that arrived while other children were being stopped. */
static int handle_deferred(sup *s, int64_t *reasons)
{
    /* Handling one can stop others and note further exits, at any index:
     * start over until a pass finds none. */
    for (size_t k = 0; k < s->n; k++) {
        if (reasons[k] == NO_EXIT || s->kids[k].ref || s->kids[k].state != TR_CHILD_RUNNING)
            continue;
        int r = (int)reasons[k];
        reasons[k] = NO_EXIT;
        int rc = on_child_exit(s, k, r, reasons);
        if (rc)
            return rc;
        k = (size_t)-1;
    }
    return 0;
}

/* Room for one more child (kids and the per-child scratch grow). */
static bool reserve(sup *s)
{
    if (s->n < s->cap)
        return true;
    size_t cap = s->cap ? s->cap * 2 : 4;
    child *kids = realloc(s->kids, cap * sizeof *kids);
    if (!kids)
        return false;
    s->kids = kids;
    int64_t *reasons = realloc(s->reasons, cap * sizeof *reasons);
    if (!reasons)
        return false;
    s->reasons = reasons;
    s->cap = cap;
    return true;
}

static void set_spec(child *c, const tr_child_spec *spec)
{
    memset(c, 0, sizeof *c);
    c->spec = *spec;
    if (spec->name)
        strncpy(c->name, spec->name, sizeof c->name - 1);
    c->spec.name = NULL; /* the copy in c->name is the one to use */
}

/* A child added at run time, started after all the others. */
static int add_child(sup *s, const tr_child_spec *spec, tr_ref *ref)
{
    if (s->o.max_children && s->n >= s->o.max_children)
        return TR_ELIMIT;
    if (!reserve(s))
        return TR_ENOMEM;
    size_t i = s->n++;
    set_spec(&s->kids[i], spec);
    int rc = start_child(s, i);
    if (rc)
        s->n--;
    *ref = rc ? TR_REF_NONE : s->kids[i].ref;
    return rc;
}

/* Forget child i (stopped): the ones after it move up. */
static void remove_child(sup *s, size_t i)
{
    memmove(&s->kids[i], &s->kids[i + 1], (s->n - i - 1) * sizeof *s->kids);
    memmove(&s->reasons[i], &s->reasons[i + 1], (s->n - i - 1) * sizeof *s->reasons);
    s->n--;
    for (size_t j = i; j < s->n; j++)
        if (s->kids[j].ref)
            tr__link_retag(s->kids[j].ref, (uint32_t)j + 1);
}

/* 0, or the reason for the supervisor to end. */
static int handle_request(sup *s, request *r)
{
    int rc = 0;
    tr_ref ref = TR_REF_NONE;
    switch (r->op) {
    case OP_CHILDREN:
        answer_children(s, r);
        return 0;
    case OP_START:
        rc = add_child(s, &r->spec, &ref);
        break;
    default: {
        ssize_t i = find(s, r->child);
        if (i < 0) {
            rc = TR_ENOACTOR;
            break;
        }
        for (size_t k = 0; k < s->n; k++)
            s->reasons[k] = NO_EXIT;
        stop_child(s, (size_t)i, s->reasons);
        remove_child(s, (size_t)i);
        int exits = handle_deferred(s, s->reasons);
        tr_msg m = code_answer(0, TR_REF_NONE);
        reply(r, &m);
        return exits;
    }
    }
    tr_msg m = code_answer(rc, ref);
    reply(r, &m);
    return 0;
}

static int shut_down(sup *s, int reason)
{
    tr__actor_shield(tr_current(), true);
    if (s->n)
        stop_range(s, 0, s->n - 1, s->reasons);
    return reason;
}

static int sup_body(tr_actor *self)
{
    sup *s = tr_actor_state(self);
    tr_trap_exits(true);
    int rc = 0;
    for (size_t i = 0; i < s->n && !rc; i++)
        if ((rc = start_child(s, i)) != 0 && i > 0)
            stop_range(s, 0, i - 1, s->reasons);
    while (!rc) {
        tr_msg m;
        int r = tr_recv(&m, next_restart(s));
        if (r == TR_ETIMEDOUT) {
            rc = run_due_restarts(s);
            continue;
        }
        if (r) {
            rc = r; /* TR_ECANCELED: we are being stopped */
            break;
        }
        if (is_request(&m)) {
            s->in_flight = &m; /* for free_sup, if we are abandoned in it */
            rc = handle_request(s, m.ptr);
            s->in_flight = NULL;
            tr_msg_release(&m);
        } else if (m.tag == TR_TAG_EXIT) {
            ssize_t i = exited_child(s, &m);
            int reason = tr__notice_reason(&m);
            if (i < 0)
                other_exit(s, &m);
            tr_msg_release(&m);
            if (i >= 0) {
                for (size_t k = 0; k < s->n; k++)
                    s->reasons[k] = NO_EXIT; /* (it grows with dynamic children) */
                rc = on_child_exit(s, (size_t)i, reason, s->reasons);
                if (!rc)
                    rc = handle_deferred(s, s->reasons);
            }
        } else {
            tr_msg_release(&m);
        }
        if (!rc)
            rc = s->orphaned;
        while (!rc && s->deferred) {
            /* Off the list only once handled: if we are abandoned in
             * the middle, free_sup still finds it there. */
            request *r = s->deferred;
            rc = handle_request(s, r);
            if (!(s->deferred = r->next))
                s->deferred_tail = &s->deferred;
            free_request(r, sizeof *r);
        }
    }
    return shut_down(s, rc);
}

static bool valid_spec(const tr_child_spec *c)
{
    return c->start && c->restart <= TR_TEMPORARY && c->kind <= TR_CHILD_SUPERVISOR &&
           c->shutdown_ns >= 0;
}

int tr_supervisor_start(tr_system *sys, const tr_supervisor_opts *opts,
                        const tr_child_spec *children, size_t n, tr_ref *out)
{
    if (!sys || (n && !children) || n > TR_SUPERVISOR_MAX)
        return TR_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!valid_spec(&children[i]))
            return TR_EINVAL;
    tr_supervisor_opts o = opts ? *opts : TR_SUPERVISOR_OPTS_INIT;
    if (o.strategy > TR_REST_FOR_ONE || o.period_ns <= 0 || o.backoff_base_ns < 0 ||
        o.intensity > TR_SUPERVISOR_MAX_INTENSITY || o.backoff_reset_ns < 0 ||
        o.backoff_cap_ns < o.backoff_base_ns || o.jitter_percent > 100)
        return TR_EINVAL;
    sup *s = calloc(1, sizeof *s);
    if (!s)
        return TR_ENOMEM;
    s->o = o;
    s->n = n;
    s->rng = (uint64_t)tr_now();
    s->kids = calloc(n ? n : 1, sizeof *s->kids);
    s->history = calloc(o.intensity + 1, sizeof *s->history);
    s->reasons = calloc(n ? n : 1, sizeof *s->reasons);
    if (!s->kids || !s->history || !s->reasons) {
        free_sup(s);
        return TR_ENOMEM;
    }
    s->cap = n ? n : 1;
    s->deferred_tail = &s->deferred;
    for (size_t i = 0; i < n; i++)
        set_spec(&s->kids[i], &children[i]);
    tr_spawn_opts so = TR_SPAWN_OPTS_INIT;
    so.state = s;
    so.name = "supervisor";
    so.cleanup = free_sup; /* even if it never runs (the system stops) */
    so.cleanup_arg = s;
    so.deadline = o.deadline;
    int rc = tr_spawn_loop(sys, sup_body, &so, out);
    if (rc)
        free_sup(s);
    return rc;
}

/* Whether `ref` names a supervisor.  Any other actor, or a thread's
 * mailbox, would take the request and never answer it, and the caller
 * waited until its deadline, or for ever. */
static bool is_supervisor(tr_system *sys, tr_ref ref)
{
    tr__hold hold;
    if (!tr__hold_mailbox(sys, ref, &hold))
        return false;
    bool yes = hold.kind == TR__SLOT_ACTOR && ((struct tr_actor *)hold.obj)->body == sup_body;
    tr__hold_release(sys, &hold);
    return yes;
}

/* Whether the caller is that supervisor itself (a child's start function
 * runs in it): it would wait for an answer that only it could give. */
static bool asks_itself(tr_system *sys, tr_ref supervisor)
{
    tr_actor *self = tr_current();
    return self && tr_actor_system(self) == sys && tr_self() == supervisor;
}

/*
 * Ask the supervisor and wait for its answer in a mailbox of our own.
 * Takes `r` (heap); a late answer, after the deadline, is lost with the
 * mailbox, and what the supervisor did stays done.  Once sent, `r` is
 * answered even if the supervisor ends first (free_request).
 */
static int ask(tr_system *sys, tr_ref supervisor, request *r, tr_msg *answer,
               tr_deadline deadline)
{
    int rc = !is_supervisor(sys, supervisor) ? TR_ENOACTOR
             : asks_itself(sys, supervisor) ? TR_EDEADLK
                                            : 0;
    if (rc) {
        free(r);
        return rc;
    }
    tr_mailbox *mb;
    rc = tr_mailbox_new(sys, 1, &mb);
    if (rc) {
        free(r);
        return rc;
    }
    r->sys = sys;
    r->reply = tr_mailbox_ref(mb);
    tr_msg m = tr_msg_buf(TAG_REQUEST, r, sizeof *r, free_request);
    rc = tr_send(sys, supervisor, &m, deadline);
    if (rc)
        free(r); /* not sent: the error is the answer */
    else
        rc = tr_mailbox_recv(mb, answer, deadline);
    tr_mailbox_free(mb);
    return rc;
}

static request *new_request(int op)
{
    request *r = calloc(1, sizeof *r);
    if (r)
        r->op = op;
    return r;
}

int tr_supervisor_children(tr_system *sys, tr_ref supervisor, tr_child_info *out,
                           size_t cap, size_t *n, tr_deadline deadline)
{
    if (!sys || !n || (cap && !out))
        return TR_EINVAL;
    request *r = new_request(OP_CHILDREN);
    if (!r)
        return TR_ENOMEM;
    tr_msg m;
    int rc = ask(sys, supervisor, r, &m, deadline);
    if (rc)
        return rc;
    if (!m.free_fn) /* no snapshot, only a code (code_answer) */
        return (int)(int64_t)m.a;
    size_t have = m.len / sizeof(tr_child_info);
    if (cap) /* out may be NULL then: only the count is asked for */
        memcpy(out, m.ptr, (have < cap ? have : cap) * sizeof *out);
    *n = have;
    tr_msg_release(&m);
    return 0;
}

int tr_supervisor_start_child(tr_system *sys, tr_ref supervisor,
                              const tr_child_spec *spec, tr_ref *child,
                              tr_deadline deadline)
{
    if (!sys || !spec || !valid_spec(spec))
        return TR_EINVAL;
    request *r = new_request(OP_START);
    if (!r)
        return TR_ENOMEM;
    r->spec = *spec;
    r->spec.name = NULL; /* the caller's string may not outlive the call */
    tr_msg m;
    int rc = ask(sys, supervisor, r, &m, deadline);
    if (!rc && !(rc = (int)(int64_t)m.a) && child)
        *child = m.b;
    return rc;
}

int tr_supervisor_terminate_child(tr_system *sys, tr_ref supervisor, tr_ref child,
                                  tr_deadline deadline)
{
    if (!sys)
        return TR_EINVAL;
    request *r = new_request(OP_TERMINATE);
    if (!r)
        return TR_ENOMEM;
    r->child = child;
    tr_msg m;
    int rc = ask(sys, supervisor, r, &m, deadline);
    return rc ? rc : (int)(int64_t)m.a;
}
