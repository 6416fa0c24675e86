/*
 * select.c - tr_select: wait on several mailboxes, fire exactly one case.
 *
 * A round looks at every case without changing anything (a receive is
 * ready when its mailbox holds a message or is closed and drained; a send
 * when its target has room, is closed or is gone), picks one ready case
 * (at random, or the first one when biased) and carries it out.  Only
 * the owner takes from its mailboxes, so a ready receive cannot be taken
 * from under us; a send can lose its room to another sender, and then the
 * round picks again among the rest.
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

typedef struct selection {
    tr_system *sys;
    tr_select_case *cases;
    size_t n;
    struct tr_mailbox *recv_mb[TR_SELECT_MAX];  /* receive cases' mailboxes */
} selection;

/* A number for picking among ready cases; quality hardly matters. */
static uint64_t next_random(void)
{
    static __thread uint64_t state;
    if (!state)
        state = (uint64_t)tr_now() ^ (uint64_t)(uintptr_t)&state;
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
}

/* Whether a send to `to` would go ahead now; 0 if it is not ready. */
static bool send_ready(tr_system *sys, tr_ref to)
{
    void *obj;
    uint8_t kind;
    struct tr_mailbox *mb = tr__mailbox_borrow(sys, to, &obj, &kind);
    if (!mb)
        return true; /* fires with TR_ENOACTOR */
    bool ready = atomic_load_explicit(&mb->closed, memory_order_acquire) ||
                 tr__mailbox_has_room(mb);
    tr__ref_put(sys, to, obj, kind);
    return ready;
}

static bool case_ready(selection *s, size_t i)
{
    tr_select_case *c = &s->cases[i];
    if (c->op == TR_SELECT_RECV)
        return !tr__mailbox_empty(s->recv_mb[i]) || tr__mailbox_drained(s->recv_mb[i]);
    return send_ready(s->sys, c->to);
}

/* Carry out case i; false if a send found the mailbox full after all. */
static bool fire(selection *s, size_t i)
{
    tr_select_case *c = &s->cases[i];
    if (c->op == TR_SELECT_RECV) {
        c->rc = tr__mailbox_take(s->recv_mb[i], &c->msg) ? 0 : TR_ECLOSED;
        return true;
    }
    c->rc = tr_try_send(s->sys, c->to, &c->msg);
    return c->rc != TR_EFULL;
}

/* One round: the index of the case that fired, or -1 if none was ready. */
static int try_round(selection *s, bool biased)
{
    uint64_t skip = 0; /* sends that lost their room this round */
    for (;;) {
        size_t chosen = s->n, nready = 0;
        for (size_t i = 0; i < s->n; i++) {
            if ((skip >> i & 1) || !case_ready(s, i))
                continue;
            /* Reservoir sampling: the k-th ready case replaces the choice
             * with chance 1/k, so each ready case ends up with 1/nready. */
            if (biased ? chosen == s->n : next_random() % ++nready == 0)
                chosen = i;
            if (biased)
                break;
        }
        if (chosen == s->n)
            return -1;
        if (fire(s, chosen))
            return (int)chosen;
        skip |= 1ull << chosen;
    }
}

static bool any_ready(void *arg)
{
    selection *s = arg;
    for (size_t i = 0; i < s->n; i++)
        if (case_ready(s, i))
            return true;
    return false;
}

/* A send case's place on its target's wait list. */
typedef struct send_wait {
    tr__waiter w;
    void *obj;                 /* the target, borrowed while listed */
    uint8_t kind;
    struct tr_mailbox *mb;     /* NULL: not listed */
} send_wait;

/* Join the wait list of every send case; false if one is ready after all. */
static bool join_send_waits(selection *s, send_wait *sw, _Atomic uint32_t *flag,
                            struct tr_actor *actor)
{
    for (size_t i = 0; i < s->n; i++) {
        sw[i].mb = NULL;
        if (s->cases[i].op != TR_SELECT_SEND)
            continue;
        tr_ref to = s->cases[i].to;
        struct tr_mailbox *mb = tr__mailbox_borrow(s->sys, to, &sw[i].obj, &sw[i].kind);
        if (!mb)
            return false; /* gone since the round: it fires next round */
        sw[i].w = (tr__waiter){.actor = actor, .flag = flag};
        if (!tr__mailbox_add_waiter(mb, &sw[i].w)) {
            tr__ref_put(s->sys, to, sw[i].obj, sw[i].kind);
            return false; /* closed since the round */
        }
        sw[i].mb = mb;
    }
    return true;
}

static void leave_send_waits(selection *s, send_wait *sw)
{
    for (size_t i = 0; i < s->n; i++) {
        if (!sw[i].mb)
            continue;
        tr__mailbox_remove_waiter(sw[i].mb, &sw[i].w, false);
        tr__ref_put(s->sys, s->cases[i].to, sw[i].obj, sw[i].kind);
        sw[i].mb = NULL;
    }
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
        else if (!tr__mailbox_owned_here(mb))
            return TR_ECONTEXT;
        if (mb->sys != s->sys)
            return TR_EINVAL;
        s->recv_mb[i] = mb;
        if (!*owner_mb)
            *owner_mb = mb;
    }
    return 0;
}

int tr_select(tr_system *sys, tr_select_case *cases, size_t ncases,
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

    _Atomic uint32_t word = 0; /* for a thread that owns none of the mailboxes */
    _Atomic uint32_t *flag = owner_mb ? owner_mb->flag : &word;
    send_wait sw[TR_SELECT_MAX];
    for (;;) {
        int fired = try_round(&s, flags & TR_SELECT_BIASED);
        if (fired >= 0)
            return fired;
        if (!join_send_waits(&s, sw, flag, self)) {
            leave_send_waits(&s, sw);
            continue;
        }
        if (owner_mb)
            rc = tr__owner_wait(owner_mb, any_ready, &s, deadline);
        else if (deadline <= 0 || (deadline != TR_FOREVER && tr_now() >= deadline))
            rc = TR_ETIMEDOUT;
        else
            rc = wait_on_word(&word, &s, deadline);
        leave_send_waits(&s, sw);
        if (rc)
            return rc;
    }
}
