/*
 * select.c - tr_select: wait on several mailboxes, fire exactly one case.
 *
 * A round looks at the cases in rotation (a receive is ready when its
 * mailbox holds a message or is closed and drained; a send when its
 * target has room, is closed or is gone) and carries out the first ready
 * one.  Only the owner takes from its mailboxes, so a ready receive
 * cannot be taken from under us; a send can lose its room to another
 * sender, and then the round goes on to the next case.
 *
 * When nothing is ready, the caller waits as the owner of its mailboxes
 * (recv.c): a message to any of them raises the owner's flag.  For send
 * cases it also joins each target's wait list with that same flag, so a
 * receiver that frees room raises it too.  After any wake-up the round
 * starts over; the wait lists are left before that, and a wake-up that a
 * send case did not use is passed on (tr__mailbox_remove_waiter).
 */
#include "../actors/futex.h"
#include "../actors/runtime.h"
#include "../actors/tls.h"

typedef struct send_wait send_wait;

typedef struct selection {
    tr_system *sys;
    tr_select_case *cases;
    size_t n;
    struct tr_mailbox *recv_mb[TR_SELECT_MAX];  /* receive cases' mailboxes */
    send_wait *sw;                               /* send cases' wait places */
    int error;      /* a send case's failure that ends the select */
} selection;

/*
 * Where the caller's next select starts looking: just after the case that
 * fired last time.  An actor keeps it with itself (it may move between
 * threads), a thread in a thread-local.
 */
static uint32_t *rotation(tr_actor *self)
{
    static TR__THREAD_LOCAL uint32_t thread_next;
    return self ? &self->select_next : &thread_next;
}

/* Whether a send to `to` would go ahead now; 0 if it is not ready.  It
 * holds the target as a send does (its destroyer waits for the hazard). */
static bool send_ready(tr_system *sys, tr_ref to)
{
    tr__hold hold;
    void *obj = tr__hold_ref(sys, tr__worker_now(), to, &hold);
    if (!obj)
        return true; /* fires with TR_ENOACTOR */
    struct tr_mailbox *mb = tr__mailbox_of(obj, hold.kind);
    bool ready = atomic_load_explicit(&mb->closed, memory_order_acquire) ||
                 tr__mailbox_has_room(mb);
    tr__hold_release(sys, &hold);
    return ready;
}

static bool case_ready(selection *s, size_t i)
{
    tr_select_case *c = &s->cases[i];
    if (c->op == TR_SELECT_RECV)
        return tr__owner_has_mail(s->recv_mb[i]) || tr__mailbox_drained(s->recv_mb[i]);
    return send_ready(s->sys, c->to);
}

/* Carry out case i; false if it was not ready after all: a send found the
 * mailbox full, or a receive's only mail was a notice that the take
 * dropped (an exit queued while the actor trapped them, and it no longer
 * does).  A send that failed otherwise than as a case may fire (its first
 * message found no memory for the ring, say) sets s->error and sends
 * nothing: the payload stays with the caller. */
static bool fire(selection *s, size_t i)
{
    tr_select_case *c = &s->cases[i];
    if (c->op == TR_SELECT_RECV) {
        if (tr__owner_take(s->recv_mb[i], &c->msg))
            c->rc = 0;
        else if (tr__mailbox_drained(s->recv_mb[i]))
            c->rc = TR_ECLOSED;
        else
            return false;
        return true;
    }
    int rc = tr_try_send(s->sys, c->to, &c->msg);
    if (rc == TR_EFULL)
        return false;
    if (rc && rc != TR_ECLOSED && rc != TR_ENOACTOR) {
        s->error = rc;
        return false;
    }
    c->rc = rc;
    return true;
}

/*
 * One round: the index of the case that fired, or -1 if none was ready.
 * Cases are looked at in rotation from `start` (biased: from 0) and the
 * first ready one fires, so with k cases ready each fires once every k
 * selects and none waits behind a busy one; and a round stops at the
 * first ready case instead of reading every mailbox (other cores keep
 * writing to them, so each look can be a cache miss).
 */
static int try_round(selection *s, size_t start)
{
    for (size_t k = 0; k < s->n; k++) {
        size_t i = (start + k) % s->n;
        if (case_ready(s, i) && fire(s, i))
            return (int)i;
        if (s->error)
            break;
    }
    return -1;
}

static bool woken_on_a_list(selection *s);

static bool any_ready(void *arg)
{
    selection *s = arg;
    if (woken_on_a_list(s))
        return true;
    for (size_t i = 0; i < s->n; i++)
        if (case_ready(s, i))
            return true;
    return false;
}

/* A send case's place on its target's wait list. */
struct send_wait {
    tr__waiter w;
    tr__hold hold;             /* the target, borrowed while listed */
    struct tr_mailbox *mb;     /* NULL: not listed */
};

/*
 * A receiver took one of our waiters off its list (freeing room) while
 * our flag was still up, so its wake found nobody to wake; another sender
 * may have used the room since.  Go round again, or we would wait off
 * that list.
 */
static bool woken_on_a_list(selection *s)
{
    for (size_t i = 0; s->sw && i < s->n; i++)
        if (s->sw[i].mb && __atomic_load_n(&s->sw[i].w.woken, __ATOMIC_ACQUIRE))
            return true;
    return false;
}

/* Not an error: a send case is ready after all, go round again. */
#define ROUND_AGAIN 1

/*
 * Join the wait list of every send case: 0, ROUND_AGAIN if one is ready
 * after all (gone or closed since the round: it fires next round), or
 * TR_ESHUTDOWN.  Each target is held across the wait as a waiting send
 * holds it (tr__hold_across_wait): a thread is counted for shutdown
 * while it holds an actor's mailbox, and not at all for a thread's.
 */
static int join_send_waits(selection *s, send_wait *sw, _Atomic uint32_t *flag,
                           struct tr_actor *actor)
{
    for (size_t i = 0; i < s->n; i++) {
        sw[i].mb = NULL;
        if (s->cases[i].op != TR_SELECT_SEND)
            continue;
        tr__hold *h = &sw[i].hold;
        if (!tr__hold_ref(s->sys, tr__worker_now(), s->cases[i].to, h))
            return ROUND_AGAIN;
        /* Refused to a thread in a stopping system, or gone since. */
        if (tr__hold_across_wait(s->sys, h))
            return !tr__own_worker(s->sys) && atomic_load(&s->sys->stopping) ? TR_ESHUTDOWN
                                                                              : ROUND_AGAIN;
        struct tr_mailbox *mb = tr__mailbox_of(h->obj, h->kind);
        sw[i].w = (tr__waiter){.actor = actor, .flag = flag};
        if (!tr__mailbox_add_waiter(mb, &sw[i].w)) {
            tr__hold_release(s->sys, h);
            return ROUND_AGAIN;
        }
        sw[i].mb = mb;
    }
    return 0;
}

/* Every case is a send into a mailbox that the caller owns, all full:
 * only the caller could make room, and it would be waiting. */
static bool waits_only_on_itself(selection *s, send_wait *sw, struct tr_actor *self)
{
    for (size_t i = 0; i < s->n; i++)
        if (!sw[i].mb || !tr__mailbox_owned_by(sw[i].mb, self))
            return false;
    return true;
}

/*
 * Leave every wait list and let the targets go.  If any hold was counted
 * for shutdown, the caller stays counted (true: it must uncount): it goes
 * on into another round, which still touches the system, and a shutdown
 * that closed our targets to wake us waits for that too.
 */
static bool leave_send_waits(selection *s, send_wait *sw)
{
    bool counted = false;
    for (size_t i = 0; i < s->n; i++)
        if (sw[i].mb && sw[i].hold.counted)
            counted = true;
    if (counted) /* while the holds still count */
        atomic_fetch_add(&s->sys->foreign_waiters, 1);
    for (size_t i = 0; i < s->n; i++) {
        if (!sw[i].mb)
            continue;
        tr__mailbox_remove_waiter(sw[i].mb, &sw[i].w, false);
        tr__hold_release(s->sys, &sw[i].hold);
        sw[i].mb = NULL;
    }
    return counted;
}

static void uncount(selection *s, bool *counted)
{
    if (*counted)
        atomic_fetch_sub(&s->sys->foreign_waiters, 1);
    *counted = false;
}

/* A thread with no mailbox among its cases waits on a word of its own. */
static int wait_on_word(_Atomic uint32_t *word, selection *s, tr_deadline deadline)
{
    atomic_exchange(word, 0);
    if (!any_ready(s))
        tr__futex_wait(word, 0, deadline);
    return 0;
}

/* Check the cases and find the mailbox whose owner waits for them. */
static int prepare(selection *s, tr_actor *self, struct tr_mailbox **owner_mb)
{
    *owner_mb = self ? &self->mbox : NULL;
    for (size_t i = 0; i < s->n; i++) {
        tr_select_case *c = &s->cases[i];
        if (c->op == TR_SELECT_SEND) {
            s->recv_mb[i] = NULL;
            continue;
        }
        if (c->op != TR_SELECT_RECV)
            return TR_EINVAL;
        struct tr_mailbox *mb = c->mailbox;
        if (!mb && !self)
            return TR_EINVAL;
        if (!mb)
            mb = &self->mbox;
        else if (!tr__mailbox_owned_by(mb, self))
            return TR_ECONTEXT;
        if (mb->sys != s->sys)
            return TR_EINVAL;
        s->recv_mb[i] = mb;
        if (!*owner_mb)
            *owner_mb = mb;
    }
    return 0;
}

/*
 * Rounds and waits until a case fires (its index) or the wait ends (an
 * error).  While it waits, an actor points at its cases, so that if the
 * system stops meanwhile (it is never resumed then) the teardown
 * releases the payloads it did not send.
 */
static int select_loop(selection *s, tr_actor *self, struct tr_mailbox *owner_mb,
                       unsigned flags, tr_deadline deadline)
{
    _Atomic uint32_t word = 0; /* for a thread that owns none of the mailboxes */
    _Atomic uint32_t *flag = owner_mb ? owner_mb->flag : &word;
    send_wait sw[TR_SELECT_MAX];
    for (size_t i = 0; i < s->n; i++)
        sw[i].mb = NULL; /* a join that stops early leaves the rest so */
    s->sw = sw;
    uint32_t *next = rotation(self);
    bool counted = false; /* carried from one wait into the next round */
    bool waited = false;
    int rc;
    for (;;) {
        int fired = try_round(s, (flags & TR_SELECT_BIASED) ? 0 : *next % s->n);
        if (fired >= 0) {
            *next = (uint32_t)fired + 1;
            rc = fired;
            break;
        }
        if (s->error) {
            rc = s->error;
            break;
        }
        rc = join_send_waits(s, sw, flag, self);
        if (rc == 0 && !tr__deadline_passed(deadline) && waits_only_on_itself(s, sw, self))
            rc = self && tr__actor_cancelled(self) ? TR_ECANCELED : TR_EDEADLK;
        uncount(s, &counted); /* the new holds count now, where they must */
        if (rc) {
            counted = leave_send_waits(s, sw);
            if (rc == ROUND_AGAIN)
                continue;
            break;
        }
        if (self) {
            self->outgoing_cases = s->cases;
            self->noutgoing_cases = (uint32_t)s->n; /* at most TR_SELECT_MAX */
        }
        if (owner_mb)
            rc = tr__owner_wait(owner_mb, any_ready, s, deadline);
        else if (tr__deadline_passed(deadline))
            rc = TR_ETIMEDOUT;
        else if (tr__worker_now())
            rc = TR_ECONTEXT; /* a worker outside an actor must not block */
        else
            rc = wait_on_word(&word, s, deadline);
        if (self)
            self->outgoing_cases = NULL;
        counted = leave_send_waits(s, sw);
        if (rc)
            break;
        waited = true;
    }
    uncount(s, &counted);
    if (rc == TR_ETIMEDOUT && !waited)
        rc = tr__timed_out(self, deadline); /* it never waited; nothing held */
    return rc;
}

static int select_cases(tr_system *sys, tr_select_case *cases, size_t ncases,
                        unsigned flags, tr_deadline deadline)
{
    if (!sys || !cases || ncases == 0 || ncases > TR_SELECT_MAX || (flags & ~TR_SELECT_BIASED))
        return TR_EINVAL;
    tr_actor *self = tr_current();
    if (self && tr_actor_system(self) != sys)
        return TR_ECONTEXT;
    selection s = {.sys = sys, .cases = cases, .n = ncases};
    struct tr_mailbox *owner_mb;
    int rc = prepare(&s, self, &owner_mb);
    if (rc)
        return rc;
    return select_loop(&s, self, owner_mb, flags, deadline);
}

void tr__select_release_unsent(tr_select_case *cases, size_t n)
{
    for (size_t i = 0; cases && i < n; i++)
        if (cases[i].op == TR_SELECT_SEND)
            tr_msg_release(&cases[i].msg);
}

int tr_select(tr_system *sys, tr_select_case *cases, size_t ncases,
              unsigned flags, tr_deadline deadline)
{
    int rc = select_cases(sys, cases, ncases, flags, deadline);
    if (rc == TR_ECANCELED && tr__abandoned(tr_current())) {
        /* An abandoned actor ends here (runtime.h); the payloads of its
         * send cases, not sent, go with it. */
        tr__select_release_unsent(cases, ncases);
        tr_exit(TR_EKILLED);
    }
    return rc;
}
