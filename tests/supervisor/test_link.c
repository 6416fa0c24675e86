/* test_link.c - links, monitors, trapping exits, and notices that a full
 * mailbox does not hold back. */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "support.h"
#include "runtime.h"

static tr_mailbox *done_mb; /* the main thread's: actors report here */

static void report(uint64_t tag, uint64_t a, uint64_t b)
{
    tr_actor *self = tr_current();
    test_send(tr_actor_system(self), tr_mailbox_ref(done_mb), tag, a, b);
}

/* A handler that ends on message 1, with the reason it carries. */
static int ends_with(tr_actor *self, tr_msg *m)
{
    (void)self;
    if (m->tag != 1)
        return 0;
    return m->a ? (int)(int64_t)m->a : TR_STOP;
}

static tr_ref spawn_ender(tr_system *sys)
{
    tr_ref r;
    assert_int_equal(tr_spawn(sys, ends_with, NULL, &r), 0);
    return r;
}

static void end_it(tr_system *sys, tr_ref r, int reason)
{
    tr_msg m = tr_msg_words(1, (uint64_t)(int64_t)reason, 0);
    assert_int_equal(tr_send(sys, r, &m, tr_after_ms(TEST_DEADLINE_MS)), 0);
}

/* The ref of an actor that has ended normally, and is known to be gone. */
static tr_ref spawn_ended(tr_system *sys)
{
    tr_ref r = spawn_ender(sys);
    end_it(sys, r, 0);
    tr_msg probe = tr_msg_words(7, 0, 0);
    while (tr_try_send(sys, r, &probe) != TR_ENOACTOR)
        usleep(1000);
    return r;
}

/* ---- monitors ------------------------------------------------------------ */

static tr_ref target_ref;

/* Two monitors of the target, one taken back; reports each DOWN. */
static int watcher(tr_actor *self)
{
    (void)self;
    tr_ref m1, m2, m3;
    if (tr_monitor(target_ref, &m1) || tr_monitor(target_ref, &m2) ||
        tr_monitor(target_ref, &m3) || m1 == m2 || m2 == m3)
        return -1;
    if (tr_demonitor(target_ref, m3) != 0 || tr_demonitor(target_ref, m3) != TR_ENOACTOR)
        return -2;
    report(2, m1, m2); /* ready */
    for (int i = 0; i < 2; i++) {
        tr_msg m;
        if (tr_recv(&m, tr_after_ms(TEST_DEADLINE_MS)))
            return -3;
        report(m.tag == TR_TAG_DOWN && m.from == target_ref ? 3 : 99, m.a, m.b);
    }
    tr_msg m; /* no third DOWN: the demonitored one stays silent */
    report(4, (uint64_t)-tr_recv(&m, tr_after_ms(100)), 0);
    return 0;
}

static void test_each_monitor_gets_its_down_with_the_reason(void **state)
{
    (void)state;
    tr_system *sys = test_system(2);
    assert_int_equal(tr_mailbox_new(sys, 8, &done_mb), 0);
    target_ref = spawn_ender(sys);
    assert_int_equal(tr_spawn_loop(sys, watcher, NULL, NULL), 0);
    tr_msg ready = test_recv(done_mb);
    assert_int_equal(ready.tag, 2);
    end_it(sys, target_ref, -42);
    tr_ref seen[2];
    for (int i = 0; i < 2; i++) {
        tr_msg d = test_recv(done_mb);
        assert_int_equal(d.tag, 3);
        assert_int_equal((int64_t)d.b, -42);
        seen[i] = d.a;
    }
    assert_true((seen[0] == ready.a && seen[1] == ready.b) ||
                (seen[0] == ready.b && seen[1] == ready.a));
    tr_msg last = test_recv(done_mb);
    assert_int_equal(last.tag, 4);
    assert_int_equal(-(int)last.a, TR_ETIMEDOUT);
    tr_mailbox_free(done_mb);
    tr_system_free(sys);
}

/* Monitoring an actor that has ended: the DOWN comes at once. */
static int late_watcher(tr_actor *self)
{
    (void)self;
    tr_ref mon;
    if (tr_monitor(target_ref, &mon))
        return -1;
    tr_msg m;
    if (tr_recv(&m, tr_after_ms(TEST_DEADLINE_MS)))
        return -2;
    report(m.tag == TR_TAG_DOWN && m.a == mon && m.from == target_ref ? 5 : 99, m.b, 0);
    return 0;
}

static void test_monitoring_an_ended_actor_delivers_down_at_once(void **state)
{
    (void)state;
    tr_system *sys = test_system(2);
    assert_int_equal(tr_mailbox_new(sys, 8, &done_mb), 0);
    target_ref = spawn_ended(sys);
    assert_int_equal(tr_spawn_loop(sys, late_watcher, NULL, NULL), 0);
    tr_msg d = test_recv(done_mb);
    assert_int_equal(d.tag, 5);
    assert_int_equal((int)(int64_t)d.a, TR_ENOACTOR);
    tr_mailbox_free(done_mb);
    tr_system_free(sys);
}

/* ---- links ---------------------------------------------------------------- */

static tr_ref linked_ref;
static atomic_int linked_ready;

/* Links to target_ref, then waits in a receive for ever. */
static int linked_waiter(tr_actor *self)
{
    (void)self;
    if (tr_link(target_ref))
        return -1;
    atomic_store(&linked_ready, 1);
    tr_msg m;
    int rc = tr_recv(&m, TR_FOREVER);
    return rc == TR_ECANCELED ? 12345 : -2; /* the link's reason wins */
}

/* Watches linked_ref and reports how it ended. */
static int reason_reporter(tr_actor *self)
{
    (void)self;
    tr_ref mon;
    if (tr_monitor(linked_ref, &mon))
        return -1;
    report(6, 0, 0);
    tr_msg m;
    if (tr_recv(&m, tr_after_ms(TEST_DEADLINE_MS)) || m.tag != TR_TAG_DOWN)
        return -2;
    report(7, m.b, 0);
    return 0;
}

static void test_link_ends_the_other_with_the_same_reason_but_not_on_normal_exit(void **state)
{
    (void)state;
    tr_system *sys = test_system(2);
    assert_int_equal(tr_mailbox_new(sys, 8, &done_mb), 0);

    for (int round = 0; round < 2; round++) {
        atomic_store(&linked_ready, 0);
        target_ref = spawn_ender(sys);
        assert_int_equal(tr_spawn_loop(sys, linked_waiter, NULL, &linked_ref), 0);
        while (!atomic_load(&linked_ready))
            usleep(1000);
        assert_int_equal(tr_spawn_loop(sys, reason_reporter, NULL, NULL), 0);
        assert_int_equal(test_recv(done_mb).tag, 6);
        if (round == 0) {
            /* A normal end does not spread: the waiter lives on. */
            end_it(sys, target_ref, 0);
            usleep(50000);
            tr_msg probe = tr_msg_words(9, 0, 0);
            assert_int_equal(tr_try_send(sys, linked_ref, &probe), 0);
            /* The probe may end it first (then there is none to cancel). */
            int cancelled = tr_cancel(sys, linked_ref);
            assert_true(cancelled == 0 || cancelled == TR_ENOACTOR);
            tr_msg r = test_recv(done_mb);
            assert_int_equal(r.tag, 7);
            /* it received the probe and returned -2; either way not -7 */
            assert_true((int64_t)r.a == -2 || (int64_t)r.a == 12345);
        } else {
            end_it(sys, target_ref, -7);
            tr_msg r = test_recv(done_mb);
            assert_int_equal(r.tag, 7);
            assert_int_equal((int64_t)r.a, -7);
        }
    }
    tr_mailbox_free(done_mb);
    tr_system_free(sys);
}

/* Traps exits: both a normal and an error end arrive as messages, and
 * the EXIT comes before the DOWN sent by the same actor. */
static int trapper(tr_actor *self)
{
    (void)self;
    tr_trap_exits(true);
    tr_ref mon;
    if (tr_link(target_ref) || tr_monitor(target_ref, &mon))
        return -1;
    report(8, 0, 0);
    tr_msg m;
    if (tr_recv(&m, tr_after_ms(TEST_DEADLINE_MS)))
        return -2;
    report(m.tag == TR_TAG_EXIT && m.from == target_ref ? 9 : 99, m.a, 0);
    if (tr_recv(&m, tr_after_ms(TEST_DEADLINE_MS)))
        return -3;
    report(m.tag == TR_TAG_DOWN && m.a == mon ? 10 : 99, m.b, 0);
    return 0;
}

static void test_trapping_actor_gets_exit_then_down_as_messages(void **state)
{
    (void)state;
    tr_system *sys = test_system(2);
    assert_int_equal(tr_mailbox_new(sys, 8, &done_mb), 0);
    for (int reason = 0; reason >= -3; reason -= 3) {
        target_ref = spawn_ender(sys);
        assert_int_equal(tr_spawn_loop(sys, trapper, NULL, NULL), 0);
        assert_int_equal(test_recv(done_mb).tag, 8);
        end_it(sys, target_ref, reason);
        tr_msg e = test_recv(done_mb);
        assert_int_equal(e.tag, 9);
        assert_int_equal((int64_t)e.a, reason);
        tr_msg d = test_recv(done_mb);
        assert_int_equal(d.tag, 10);
        assert_int_equal((int64_t)d.a, reason);
    }
    tr_mailbox_free(done_mb);
    tr_system_free(sys);
}

/* Links to an actor that has ended: not trapping, an error; trapping, the
 * notice at once, as an exit with reason TR_ENOACTOR. */
static int late_linker(tr_actor *self)
{
    (void)self;
    int plain = tr_link(target_ref);
    tr_trap_exits(true);
    int trapping = tr_link(target_ref);
    tr_msg m;
    tr_notice n;
    if (tr_recv(&m, tr_after_ms(TEST_DEADLINE_MS)) || tr_notice_read(&m, &n))
        return -1;
    bool exit_at_once = m.tag == TR_TAG_EXIT && n.who == target_ref && n.reason == TR_ENOACTOR;
    tr_msg_release(&m);
    /* The notice ended the link: unlinking finds nothing, and no more come. */
    bool one = tr_recv(&m, tr_after_ms(50)) == TR_ETIMEDOUT;
    report(17, (uint64_t)-plain, (uint64_t)(trapping == 0 && exit_at_once && one));
    return 0;
}

static void test_linking_an_ended_actor_tells_at_once(void **state)
{
    (void)state;
    tr_system *sys = test_system(2);
    assert_int_equal(tr_mailbox_new(sys, 8, &done_mb), 0);
    target_ref = spawn_ender(sys);
    end_it(sys, target_ref, -4);
    tr_msg probe = tr_msg_words(9, 0, 0);
    tr_deadline give_up = tr_after_ms(TEST_DEADLINE_MS);
    while (tr_try_send(sys, target_ref, &probe) != TR_ENOACTOR && tr_now() < give_up)
        usleep(1000);
    assert_int_equal(tr_spawn_loop(sys, late_linker, NULL, NULL), 0);
    tr_msg r = test_recv(done_mb);
    assert_int_equal(r.tag, 17);
    assert_int_equal(r.a, (uint64_t)-TR_ENOACTOR);
    assert_int_equal(r.b, 1);
    tr_mailbox_free(done_mb);
    tr_system_free(sys);
}

/* ---- exit details ---------------------------------------------------------- */

/* A detail may be any small struct, zeros and all. */
typedef struct sensor_fault {
    int code;
    double celsius;
    char where[12];
} sensor_fault;

static const sensor_fault fault = {.code = 3, .celsius = 81.5, .where = "rack\0 7"};
static const char fault_text[] = "disk full on /var";
static const void *want_detail; /* what the notices must carry; NULL: none */
static size_t want_len;
static tr_ref detail_watcher_ref;

/* Message 2 sets the text as its detail, 3 the struct (the last one
 * counts), 4 removes it; message 1 ends it with reason 7. */
static int detailed_ender(tr_actor *self, tr_msg *m)
{
    (void)self;
    if (m->tag == 2)
        return tr_exit_detail(fault_text, sizeof fault_text - 1);
    if (m->tag == 3)
        return tr_exit_detail(&fault, sizeof fault);
    if (m->tag == 4)
        return tr_exit_detail(NULL, 0);
    return m->tag == 1 ? 7 : 0;
}

/* Linked to the target without trapping: the target's end ends it. */
static int detail_victim(tr_actor *self)
{
    if (tr_link(target_ref))
        return -1;
    tr_msg hi = tr_msg_words(5, 0, 0);
    tr_send(tr_actor_system(self), detail_watcher_ref, &hi, TR_NOW);
    tr_msg m;
    return tr_recv(&m, TR_FOREVER);
}

static bool detail_is_wanted(const tr_msg *m, const tr_notice *n)
{
    if (!want_detail) /* then a plain word notice, as before details */
        return !n->detail && !n->detail_len && !m->free_fn;
    return n->detail && n->detail_len == want_len && !memcmp(n->detail, want_detail, want_len) &&
           n->detail[want_len] == '\0';
}

/*
 * Traps exits, links to and monitors the target, and monitors a victim
 * that a link to the target ends.  All three notices (the target's EXIT
 * and DOWN, the victim's DOWN) must say reason 7 and carry the detail.
 */
static int detail_watcher(tr_actor *self)
{
    tr_system *sys = tr_actor_system(self);
    tr_trap_exits(true);
    tr_ref mt, mv, victim;
    detail_watcher_ref = tr_self();
    if (tr_link(target_ref) || tr_monitor(target_ref, &mt) ||
        tr_spawn_loop(sys, detail_victim, NULL, &victim))
        return -1;
    tr_msg m;
    if (tr_recv(&m, tr_after_ms(TEST_DEADLINE_MS)) || m.tag != 5 || tr_monitor(victim, &mv))
        return -2;
    report(20, 0, 0);
    uint64_t seen = 0, right = 0;
    for (int i = 0; i < 3; i++) {
        if (tr_recv(&m, tr_after_ms(TEST_DEADLINE_MS)))
            return -3;
        tr_notice n;
        uint64_t bit = 0;
        if (tr_notice_read(&m, &n) == 0) {
            if (m.tag == TR_TAG_EXIT && n.who == target_ref && n.monitor == TR_REF_NONE)
                bit = 1;
            else if (m.tag == TR_TAG_DOWN && n.who == target_ref && n.monitor == mt)
                bit = 2;
            else if (m.tag == TR_TAG_DOWN && n.who == victim && n.monitor == mv)
                bit = 4;
            if (n.reason == 7 && detail_is_wanted(&m, &n))
                right |= bit;
        }
        seen |= bit;
        tr_msg_release(&m);
    }
    report(21, seen, right);
    return 0;
}

static void test_exit_detail_reaches_links_monitors_and_those_a_link_ends(void **state)
{
    (void)state;
    tr_system *sys = test_system(2);
    assert_int_equal(tr_mailbox_new(sys, 8, &done_mb), 0);
    const uint64_t set_text[] = {2}, set_struct[] = {2, 3}, set_none[] = {3, 4};
    const struct {
        const uint64_t *tags;
        size_t n;
        const void *detail;
        size_t len;
    } rounds[] = {
        {set_text, 1, fault_text, sizeof fault_text - 1},
        {set_struct, 2, &fault, sizeof fault},
        {set_none, 2, NULL, 0},
    };
    for (size_t r = 0; r < sizeof rounds / sizeof rounds[0]; r++) {
        want_detail = rounds[r].detail;
        want_len = rounds[r].len;
        assert_int_equal(tr_spawn(sys, detailed_ender, NULL, &target_ref), 0);
        assert_int_equal(tr_spawn_loop(sys, detail_watcher, NULL, NULL), 0);
        assert_int_equal(test_recv(done_mb).tag, 20);
        for (size_t k = 0; k < rounds[r].n; k++)
            assert_int_equal(test_send(sys, target_ref, rounds[r].tags[k], 0, 0), 0);
        end_it(sys, target_ref, 0);
        tr_msg res = test_recv(done_mb);
        assert_int_equal(res.tag, 21);
        assert_int_equal(res.a, 7); /* all three notices came */
        assert_int_equal(res.b, 7); /* and each said 7 with the detail */
    }
    tr_mailbox_free(done_mb);
    tr_system_free(sys);
}

/* Bad details are refused; a notice nobody takes is freed with its
 * detail when its receiver goes (the sanitizer build checks). */
static int detail_misuser(tr_actor *self)
{
    (void)self;
    static char big[TR_DETAIL_MAX + 1];
    tr_msg plain = tr_msg_words(1, 0, 0);
    tr_notice n;
    int bad = tr_exit_detail(NULL, 3) == TR_EINVAL && tr_exit_detail(big, sizeof big) == TR_EINVAL &&
              tr_exit_detail(big, TR_DETAIL_MAX) == 0 && tr_notice_read(&plain, &n) == TR_EINVAL &&
              tr_notice_read(NULL, &n) == TR_EINVAL;
    tr_ref mon;
    if (tr_monitor(target_ref, &mon))
        return -1;
    report(22, (uint64_t)bad, 0);
    return tr_sleep(TR_FOREVER); /* cancelled with the DOWN still queued */
}

static void test_bad_details_are_refused_and_unread_notices_freed(void **state)
{
    (void)state;
    tr_system *sys = test_system(2);
    assert_int_equal(tr_mailbox_new(sys, 8, &done_mb), 0);
    assert_int_equal(tr_exit_detail("x", 1), TR_ECONTEXT);
    assert_int_equal(tr_spawn(sys, detailed_ender, NULL, &target_ref), 0);
    tr_ref lazy;
    assert_int_equal(tr_spawn_loop(sys, detail_misuser, NULL, &lazy), 0);
    tr_msg r = test_recv(done_mb);
    assert_int_equal(r.tag, 22);
    assert_int_equal(r.a, 1);
    assert_int_equal(test_send(sys, target_ref, 2, 0, 0), 0);
    end_it(sys, target_ref, 0);
    tr_msg probe = tr_msg_words(9, 0, 0);
    tr_deadline give_up = tr_after_ms(TEST_DEADLINE_MS);
    while (tr_try_send(sys, target_ref, &probe) != TR_ENOACTOR && tr_now() < give_up)
        usleep(1000);
    /* The target's DOWN, detail and all, waits in the lazy one's inbox. */
    int reason = 0;
    assert_int_equal(tr_cancel_wait(sys, lazy, tr_after_ms(TEST_DEADLINE_MS), &reason), 0);
    assert_int_equal(reason, TR_ECANCELED);
    tr_mailbox_free(done_mb);
    tr_system_free(sys);
}

/* ---- a full mailbox does not hold notices back --------------------------- */


static int full_watcher(tr_actor *self)
{
    tr_mailbox *gate;
    if (tr_mailbox_new(tr_actor_system(self), 1, &gate))
        return -1;
    tr_ref mon;
    if (tr_monitor(target_ref, &mon))
        return -2;
    report(11, tr_mailbox_ref(gate), 0);
    tr_msg m;
    if (tr_mailbox_recv(gate, &m, tr_after_ms(TEST_DEADLINE_MS)))
        return -3;
    /* Until the DOWN is queued: the target's end may take a while on a
     * loaded machine (a 20 ms pause in the main thread was too little
     * there), and the main thread has no way to see it through. */
    int64_t give_up = tr_now() + TEST_DEADLINE_MS * 1000000ll;
    while (!atomic_load(&self->sig.inbox) && !self->sig.first) {
        if (tr_now() > give_up)
            return -5;
        (void)tr_sleep(tr_after_ns(100000));
    }
    /* Our own mailbox is full of messages; the DOWN comes first anyway. */
    if (tr_recv(&m, TR_NOW))
        return -4;
    report(12, m.tag == TR_TAG_DOWN && m.a == mon, 0);
    return 0;
}

static void test_down_is_not_held_back_by_a_full_mailbox(void **state)
{
    (void)state;
    tr_system *sys = test_system(2);
    assert_int_equal(tr_mailbox_new(sys, 8, &done_mb), 0);
    target_ref = spawn_ender(sys);
    tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
    o.mailbox_capacity = 1;
    tr_ref w;
    assert_int_equal(tr_spawn_loop(sys, full_watcher, &o, &w), 0);
    tr_msg ready = test_recv(done_mb);
    assert_int_equal(ready.tag, 11);
    tr_msg filler = tr_msg_words(13, 0, 0);
    assert_int_equal(tr_send(sys, w, &filler, TR_NOW), 0);
    assert_int_equal(tr_try_send(sys, w, &filler), TR_EFULL);
    end_it(sys, target_ref, -1);
    tr_msg go = tr_msg_words(14, 0, 0);
    assert_int_equal(tr_send(sys, ready.a, &go, TR_NOW), 0);
    tr_msg r = test_recv(done_mb);
    assert_int_equal(r.tag, 12);
    assert_int_equal(r.a, 1);
    tr_mailbox_free(done_mb);
    tr_system_free(sys);
}

/* ---- tr_cancel_wait: cancel and wait for the end, from a thread -------- */

static int waits_then_reports_cancel(tr_actor *self)
{
    (void)self;
    tr_msg m;
    int rc = tr_recv(&m, TR_FOREVER);
    return rc == TR_ECANCELED ? -33 : -1; /* its own reason, seen by the waiter */
}

static void test_cancel_wait_returns_once_the_actor_has_ended_with_its_reason(void **state)
{
    (void)state;
    tr_system *sys = test_system(2);
    tr_ref r;
    assert_int_equal(tr_spawn_loop(sys, waits_then_reports_cancel, NULL, &r), 0);
    int reason = 0;
    assert_int_equal(tr_cancel_wait(sys, r, tr_after_ms(TEST_DEADLINE_MS), &reason), 0);
    assert_int_equal(reason, -33);
    tr_msg probe = tr_msg_words(1, 0, 0);
    assert_int_equal(tr_try_send(sys, r, &probe), TR_ENOACTOR); /* really gone */
    /* Already gone: no wait, and the reason says so. */
    assert_int_equal(tr_cancel_wait(sys, r, tr_after_ms(TEST_DEADLINE_MS), &reason), 0);
    assert_int_equal(reason, TR_ENOACTOR);
    assert_int_equal(tr_cancel_wait(NULL, r, TR_NOW, NULL), TR_EINVAL);
    tr_system_free(sys);
}

#define POLLS 100

/* Polls tr_cancel_wait on target_ref, which has ended, POLLS times. */
static int polls(tr_system *sys, int *reason)
{
    int ok = 0;
    for (int i = 0; i < POLLS; i++) {
        *reason = 1;
        ok += tr_cancel_wait(sys, target_ref, TR_NOW, reason) == 0 && *reason == TR_ENOACTOR;
    }
    return ok;
}

static int polls_from_an_actor(tr_actor *self)
{
    int reason;
    report(17, (uint64_t)polls(tr_actor_system(self), &reason), 0);
    return 0;
}

/* An actor that has already ended is 0 with reason TR_ENOACTOR at once,
 * even with TR_NOW, from a thread and from an actor: the call used to
 * spawn its helper and poll once for a report the helper had not had
 * its turn to send, and returned TR_ETIMEDOUT. */
static void test_cancel_wait_on_an_ended_actor_is_0_even_with_tr_now(void **state)
{
    (void)state;
    tr_system *sys = test_system(2);
    assert_int_equal(tr_mailbox_new(sys, 8, &done_mb), 0);
    target_ref = spawn_ended(sys);
    int reason;
    assert_int_equal(polls(sys, &reason), POLLS);
    assert_int_equal(tr_spawn_loop(sys, polls_from_an_actor, NULL, NULL), 0);
    tr_msg r = test_recv(done_mb);
    assert_int_equal(r.tag, 17);
    assert_int_equal(r.a, POLLS);
    tr_mailbox_free(done_mb);
    tr_system_free(sys);
}

static tr_system *dtor_sys;
static tr_ref dtor_box;
static atomic_int dtor_ran, dtor_box_rc = 1, dtor_ended_rc = 1;

/* Runs on the worker, outside any actor, when the timer finds its
 * target gone: the mailbox's ref is refused before the caller is. */
static void cancel_waits_from_a_destructor(void *ptr, size_t len)
{
    (void)len;
    free(ptr);
    atomic_store(&dtor_box_rc, tr_cancel_wait(dtor_sys, dtor_box, TR_FOREVER, NULL));
    atomic_store(&dtor_ended_rc, tr_cancel_wait(dtor_sys, target_ref, TR_FOREVER, NULL));
    atomic_store(&dtor_ran, 1);
}

/* The ref is checked before the caller: a mailbox's ref is TR_EINVAL on
 * a worker outside an actor too (it used to be TR_ECONTEXT there, and
 * TR_EINVAL everywhere else); any other ref is TR_ECONTEXT there. */
static void test_cancel_wait_checks_the_ref_before_the_caller(void **state)
{
    (void)state;
    tr_system *sys = dtor_sys = test_system(1);
    tr_mailbox *box;
    assert_int_equal(tr_mailbox_new(sys, 1, &box), 0);
    dtor_box = tr_mailbox_ref(box);
    target_ref = spawn_ender(sys);
    tr_msg late = tr_msg_buf(1, malloc(8), 8, cancel_waits_from_a_destructor);
    assert_int_equal(tr_send_after(sys, target_ref, &late, tr_after_ms(50), NULL), 0);
    end_it(sys, target_ref, 0);
    tr_deadline end = tr_after_ms(2 * TEST_DEADLINE_MS);
    while (!atomic_load(&dtor_ran))
        if (tr_now() > end)
            fail_msg("the destructor never ran");
    assert_int_equal(atomic_load(&dtor_box_rc), TR_EINVAL);
    assert_int_equal(atomic_load(&dtor_ended_rc), TR_ECONTEXT);
    tr_mailbox_free(box);
    tr_system_free(sys);
}

/* Waits for ever; reports how its wait ended (a link's kill: cancelled). */
static int waits_for_ever(tr_actor *self)
{
    (void)self;
    tr_msg m;
    int rc = tr_recv(&m, TR_FOREVER);
    report(11, (uint64_t)(int64_t)rc, 0);
    return 0;
}

static tr_system *cw_sys;   /* where the target lives */
static tr_ref cw_target;

/* An actor of another system: its tr_cancel_wait cancels, then says it
 * cannot wait here. */
static int cancel_waits_from_afar(tr_actor *self)
{
    (void)self;
    int reason = 0;
    int rc = tr_cancel_wait(cw_sys, cw_target, TR_FOREVER, &reason);
    test_send(cw_sys, tr_mailbox_ref(done_mb), 21, (uint64_t)(int64_t)rc, 0); /* into cw_sys */
    return 0;
}

/* Refs it can never watch end the call at once, even with no deadline
 * (the helper that could not monitor used to leave the caller waiting
 * for ever); an actor of another system gets the cancel, then
 * TR_ECONTEXT (it used to get TR_ECONTEXT and no cancel). */
static void test_cancel_wait_on_what_it_cannot_watch_returns_at_once(void **state)
{
    (void)state;
    tr_system *sys = cw_sys = test_system(1);
    tr_system *other = test_system(1);
    assert_int_equal(tr_mailbox_new(sys, 8, &done_mb), 0);
    assert_int_equal(tr_cancel_wait(sys, TR_REF_NONE, TR_FOREVER, NULL), TR_EINVAL);
    tr_mailbox *box;
    assert_int_equal(tr_mailbox_new(sys, 1, &box), 0);
    assert_int_equal(tr_cancel_wait(sys, tr_mailbox_ref(box), TR_FOREVER, NULL), TR_EINVAL);
    tr_mailbox_free(box);
    assert_int_equal(tr_spawn_loop(sys, waits_for_ever, NULL, &cw_target), 0);
    assert_int_equal(tr_spawn_loop(other, cancel_waits_from_afar, NULL, NULL), 0);
    tr_msg got[2] = {test_recv(done_mb), test_recv(done_mb)};
    for (int i = 0; i < 2; i++) {
        if (got[i].tag == 11)
            assert_int_equal((int)(int64_t)got[i].a, TR_ECANCELED); /* cancelled */
        else
            assert_int_equal((int)(int64_t)got[i].a, TR_ECONTEXT);
    }
    assert_int_not_equal(got[0].tag, got[1].tag);
    tr_mailbox_free(done_mb);
    tr_system_free(other);
    tr_system_free(sys);
}

static atomic_bool stubborn_cancelled;

/* Ignores its cancel for as long as a test may take, but yields, so
 * that its worker goes on (and a shutdown destroys it in a yield). */
static int stubborn(tr_actor *self)
{
    (void)self;
    while (!tr_cancelled())
        tr_yield();
    atomic_store(&stubborn_cancelled, true);
    for (int64_t until = tr_after_ms(TEST_DEADLINE_MS); tr_now() < until;)
        tr_yield();
    return 0;
}

static void *cancel_waits_for_cw_target(void *rc)
{
    *(int *)rc = tr_cancel_wait(cw_sys, cw_target, tr_after_ms(TEST_DEADLINE_MS), NULL);
    return NULL;
}

/* A thread's wait for an actor that the system's shutdown destroys ends
 * with TR_ESHUTDOWN (its helper's cleanup says so): it used to wait for
 * ever, as the shutdown destroys the helper without a DOWN. */
static void test_cancel_wait_ends_eshutdown_when_the_system_stops(void **state)
{
    (void)state;
    tr_system *sys = cw_sys = test_system(2);
    atomic_store(&stubborn_cancelled, false);
    assert_int_equal(tr_spawn_loop(sys, stubborn, NULL, &cw_target), 0);
    int rc = 0;
    pthread_t waiter;
    assert_int_equal(pthread_create(&waiter, NULL, cancel_waits_for_cw_target, &rc), 0);
    /* Cancelled: its helper watches it, and the waiter waits for its end. */
    int64_t deadline = tr_after_ms(TEST_DEADLINE_MS);
    while (!atomic_load(&stubborn_cancelled) && tr_now() < deadline)
        usleep(1000);
    assert_true(atomic_load(&stubborn_cancelled));
    assert_int_equal(tr_system_shutdown(sys, tr_after_ms(TEST_DEADLINE_MS)), 0);
    pthread_join(waiter, NULL);
    assert_int_equal(rc, TR_ESHUTDOWN);
    tr_system_free(sys);
}

/* ---- bad calls ------------------------------------------------------------- */

static int misuser(tr_actor *self)
{
    tr_ref mon;
    report(15, (uint64_t)-tr_link(tr_actor_ref(self)),
           (uint64_t)-tr_link(tr_actor_ref(self) + (1ull << 32)));
    report(16, (uint64_t)-tr_monitor(target_ref, NULL),
           (uint64_t)-tr_demonitor(target_ref, 12345));
    (void)mon;
    return 0;
}

static void test_bad_link_and_monitor_calls_are_refused(void **state)
{
    (void)state;
    tr_system *sys = test_system(1);
    assert_int_equal(tr_mailbox_new(sys, 8, &done_mb), 0);
    tr_ref mon;
    assert_int_equal(tr_link(1), TR_ECONTEXT);
    assert_int_equal(tr_unlink(1), TR_ECONTEXT);
    assert_int_equal(tr_monitor(1, &mon), TR_ECONTEXT);
    assert_int_equal(tr_demonitor(1, 1), TR_ECONTEXT);
    assert_int_equal(tr_trap_exits(true), TR_ECONTEXT);
    target_ref = spawn_ender(sys);
    assert_int_equal(tr_spawn_loop(sys, misuser, NULL, NULL), 0);
    tr_msg a = test_recv(done_mb), b = test_recv(done_mb);
    assert_int_equal(-(int)a.a, TR_EINVAL);
    assert_int_equal(-(int)a.b, TR_ENOACTOR);
    assert_int_equal(-(int)b.a, TR_EINVAL);
    assert_int_equal(-(int)b.b, TR_ENOACTOR);
    tr_mailbox_free(done_mb);
    tr_system_free(sys);
}


/* Links to and monitors a thread's mailbox and one of its own, trapping
 * exits, and reports each result, then whether any notice came. */
static int watches_mailboxes(tr_actor *self)
{
    tr_mailbox *own;
    if (tr_mailbox_new(tr_actor_system(self), 1, &own))
        return -1;
    tr_ref boxes[] = {tr_mailbox_ref(done_mb), tr_mailbox_ref(own)};
    tr_trap_exits(true);
    for (int i = 0; i < 2; i++) {
        tr_ref mon = 0;
        report(18, (uint64_t)-tr_link(boxes[i]), (uint64_t)-tr_monitor(boxes[i], &mon));
    }
    tr_msg m;
    report(19, (uint64_t)-tr_recv(&m, tr_after_ms(50)), 0); /* no DOWN, no EXIT */
    tr_mailbox_free(own);
    return 0;
}

/* A mailbox's ref is TR_EINVAL for tr_monitor as for tr_link, and no
 * notice follows: tr_monitor used to return 0 and queue a DOWN with
 * reason TR_ENOACTOR, as if an actor had ended. */
static void test_a_mailbox_cannot_be_linked_or_monitored(void **state)
{
    (void)state;
    tr_system *sys = test_system(1);
    assert_int_equal(tr_mailbox_new(sys, 8, &done_mb), 0);
    assert_int_equal(tr_spawn_loop(sys, watches_mailboxes, NULL, NULL), 0);
    for (int i = 0; i < 2; i++) {
        tr_msg r = test_recv(done_mb);
        assert_int_equal(r.tag, 18);
        assert_int_equal(-(int)r.a, TR_EINVAL);
        assert_int_equal(-(int)r.b, TR_EINVAL);
    }
    tr_msg r = test_recv(done_mb);
    assert_int_equal(r.tag, 19);
    assert_int_equal(-(int)r.a, TR_ETIMEDOUT);
    tr_mailbox_free(done_mb);
    tr_system_free(sys);
}

/* Tries TR_REF_NONE every way (more often than the exit's stack list of
 * 8 holds), links to target_ref for real, then ends abnormally. */
static int links_to_none(tr_actor *self)
{
    (void)self;
    int refused = 0;
    tr_ref mon;
    for (int i = 0; i < 9; i++)
        refused += tr_link(TR_REF_NONE) == TR_EINVAL;
    refused += tr_monitor(TR_REF_NONE, &mon) == TR_EINVAL;
    tr_trap_exits(true);
    refused += tr_link(TR_REF_NONE) == TR_EINVAL;
    tr_msg m;
    int queued = tr_recv(&m, TR_NOW); /* no EXIT of "no actor" */
    tr_trap_exits(false);
    int linked = tr_link(target_ref);
    report(12, (uint64_t)refused, (uint64_t)(int64_t)queued);
    report(13, (uint64_t)(int64_t)linked, 0);
    return 42;
}

static void test_linking_or_monitoring_no_actor_is_refused(void **state)
{
    (void)state;
    tr_system *sys = test_system(2);
    assert_int_equal(tr_mailbox_new(sys, 8, &done_mb), 0);
    assert_int_equal(tr_spawn_loop(sys, waits_for_ever, NULL, &target_ref), 0);
    assert_int_equal(tr_spawn_loop(sys, links_to_none, NULL, NULL), 0);
    tr_msg tries = test_recv(done_mb);
    assert_int_equal(tries.tag, 12);
    assert_int_equal(tries.a, 11);                  /* every try refused */
    assert_int_equal((int64_t)tries.b, TR_ETIMEDOUT); /* and nothing queued */
    tr_msg link = test_recv(done_mb);
    assert_int_equal(link.tag, 13);
    assert_int_equal((int64_t)link.a, 0);
    /* The one real link still ends its partner. */
    tr_msg partner = test_recv(done_mb);
    assert_int_equal(partner.tag, 11);
    assert_int_equal((int64_t)partner.a, TR_ECANCELED);
    tr_mailbox_free(done_mb);
    tr_system_free(sys);
}

/* ---- an unlink that races the other side's exit ------------------------ */

#define MANY_LINKS (20000 / TEST_SCALE)
#define UNLINK_ROUNDS 20
static atomic_bool other_ending, unlinker_traps;
static _Atomic tr_ref unlinker_ref;

static int idle_helper(tr_actor *self, tr_msg *m)
{
    (void)self;
    tr_msg_release(m);
    return 0;
}

static void say_ending(void *arg)
{
    (void)arg;
    atomic_store(&other_ending, true); /* before its notices go out */
}

/* Links to MANY_LINKS helpers and to the unlinker, so that its exit
 * sends many EXITs, the unlinker's somewhere among them; on message 1
 * ends with 42. */
static int many_links(tr_actor *self)
{
    tr_system *sys = tr_actor_system(self);
    for (int i = 0; i < MANY_LINKS; i++) {
        tr_ref h;
        if (tr_spawn(sys, idle_helper, NULL, &h) || tr_link(h))
            return -1;
    }
    if (tr_link(atomic_load(&unlinker_ref)))
        return -1;
    report(20, 0, 0);
    tr_msg m;
    if (tr_recv(&m, TR_FOREVER))
        return -1;
    tr_defer(say_ending, NULL);
    return 42;
}

/*
 * Told the other side's ref and how long to wait, watches it, then keeps
 * its worker until the other side is ending, waits that long, unlinks,
 * and waits for its DOWN, which comes after all its EXITs; it traps
 * exits if unlinker_traps says so.  Reports how many of those EXITs it
 * received after the unlink, and whether it was cancelled right after it
 * (bit 0) and at the DOWN (bit 1), and whether the unlink failed (bit 2).
 */
static int unlinker(tr_actor *self)
{
    (void)self;
    tr_trap_exits(atomic_load(&unlinker_traps));
    tr_msg m;
    tr_ref mon;
    if (tr_recv(&m, TR_FOREVER) || tr_monitor(m.a, &mon))
        return -1;
    tr_ref other = m.a;
    int64_t delay = (int64_t)m.b;
    report(21, 0, 0);
    while (!atomic_load(&other_ending))
        ;
    for (int64_t until = tr_now() + delay; tr_now() < until;)
        ;
    bool failed = tr_unlink(other) != 0;
    bool before = tr_cancelled();
    uint64_t exits = 0;
    while (tr_recv(&m, TR_FOREVER) == 0 && !(m.tag == TR_TAG_DOWN && m.from == other)) {
        exits += m.tag == TR_TAG_EXIT && m.from == other;
        tr_msg_release(&m);
    }
    tr_msg_release(&m);
    report(22, exits, (uint64_t)before | (uint64_t)tr_cancelled() << 1 | (uint64_t)failed << 2);
    return 0;
}

/* UNLINK_ROUNDS of an unlink at a random moment of the other side's exit;
 * each round's flags (see unlinker) into flags[], and no EXIT came. */
static void race_unlinks(bool trap, uint64_t *flags)
{
    test_rng rng = {test_seed()};
    tr_system *sys = test_system(2);
    assert_int_equal(tr_mailbox_new(sys, 8, &done_mb), 0);
    atomic_store(&unlinker_traps, trap);
    for (int round = 0; round < UNLINK_ROUNDS; round++) {
        atomic_store(&other_ending, false);
        tr_ref a, b;
        assert_int_equal(tr_spawn_loop(sys, unlinker, NULL, &a), 0);
        atomic_store(&unlinker_ref, a);
        assert_int_equal(tr_spawn_loop(sys, many_links, NULL, &b), 0);
        assert_int_equal(test_recv(done_mb).tag, 20);
        /* a delay somewhere within the exit's EXITs (a few ms) */
        assert_int_equal(test_send(sys, a, 1, b, test_rnd(&rng) % 2000000), 0);
        assert_int_equal(test_recv(done_mb).tag, 21); /* it keeps a worker now */
        assert_int_equal(test_send(sys, b, 1, 0, 0), 0);
        tr_msg r = test_recv(done_mb);
        assert_int_equal(r.tag, 22);
        assert_int_equal(r.a, 0); /* not even one queued before the unlink */
        flags[round] = r.b;
    }
    tr_mailbox_free(done_mb);
    tr_system_free(sys);
}

static void test_an_unlink_that_returned_is_not_undone_by_a_late_exit(void **state)
{
    (void)state;
    uint64_t flags[UNLINK_ROUNDS];
    race_unlinks(false, flags);
    int killed_before = 0, spared = 0;
    for (int round = 0; round < UNLINK_ROUNDS; round++) {
        bool before = flags[round] & 1, at_down = flags[round] & 2;
        assert_false(flags[round] & 4);
        assert_true(before || !at_down); /* never killed after the unlink returned */
        killed_before += before;
        spared += !at_down;
    }
    printf("   %d rounds: killed before the unlink returned %d, spared %d\n", UNLINK_ROUNDS,
           killed_before, spared);
}

/* Trapping, the unlinker is never killed, and race_unlinks checks that no
 * EXIT reaches it once the unlink has returned. */
static void test_a_trapping_actor_gets_no_exit_once_unlink_returns(void **state)
{
    (void)state;
    uint64_t flags[UNLINK_ROUNDS];
    race_unlinks(true, flags);
    for (int round = 0; round < UNLINK_ROUNDS; round++)
        assert_int_equal(flags[round], 0);
}

/* ---- a demonitor that races the target's exit ------------------------------ */

#define CROWD (20000 / TEST_SCALE)
#define RACED 4
#define DEMONITOR_ROUNDS 10

static bool is_one_of(tr_ref id, const tr_ref *ids, int n)
{
    for (int i = 0; i < n; i++)
        if (ids[i] == id)
            return true;
    return false;
}

/* The monitor of a DOWN message, or TR_REF_NONE if it is none. */
static tr_ref down_monitor(const tr_msg *m)
{
    tr_notice n;
    return m->tag == TR_TAG_DOWN && !tr_notice_read(m, &n) ? n.monitor : TR_REF_NONE;
}

/*
 * Watches target_ref with, in this order: a sentinel, CROWD/2 monitors,
 * the RACED ones, CROWD/2 more, a second sentinel; whichever end its exit
 * starts from, the first sentinel's DOWN comes with thousands still to
 * send before the raced ones, and the other's last.  On the first, it
 * demonitors the raced ones; until the last, it counts their DOWNs.  It
 * polls rather than parks, so that it keeps its worker and runs during
 * the exit.  Reports the demonitors that did not return 0 and the DOWNs
 * that came after one returned.
 */
static int races_demonitor(tr_actor *self)
{
    (void)self;
    tr_ref sentinel[2], raced[RACED], mon;
    if (tr_monitor(target_ref, &sentinel[0]))
        return -1;
    for (int i = 0; i < CROWD + RACED; i++)
        if (tr_monitor(target_ref, i >= CROWD / 2 && i < CROWD / 2 + RACED ? &raced[i - CROWD / 2] : &mon))
            return -1;
    if (tr_monitor(target_ref, &sentinel[1]))
        return -1;
    report(23, 0, 0);
    tr_msg m;
    tr_ref first;
    do {
        while (tr_recv(&m, TR_NOW))
            ;
        first = down_monitor(&m);
        tr_msg_release(&m);
    } while (!is_one_of(first, sentinel, 2));
    uint64_t refused = 0, late = 0;
    for (int i = 0; i < RACED; i++)
        refused += tr_demonitor(target_ref, raced[i]) != 0;
    tr_ref last = first == sentinel[0] ? sentinel[1] : sentinel[0];
    for (tr_ref id = TR_REF_NONE; id != last;) {
        if (tr_recv(&m, TR_FOREVER))
            return -2;
        id = down_monitor(&m);
        late += is_one_of(id, raced, RACED);
        tr_msg_release(&m);
    }
    report(24, refused, late);
    return 0;
}

static void test_no_down_arrives_after_tr_demonitor_returns(void **state)
{
    (void)state;
    tr_system *sys = test_system(2);
    assert_int_equal(tr_mailbox_new(sys, 8, &done_mb), 0);
    for (int round = 0; round < DEMONITOR_ROUNDS; round++) {
        target_ref = spawn_ender(sys);
        assert_int_equal(tr_spawn_loop(sys, races_demonitor, NULL, NULL), 0);
        assert_int_equal(test_recv(done_mb).tag, 23);
        end_it(sys, target_ref, 0);
        tr_msg r = test_recv(done_mb);
        assert_int_equal(r.tag, 24);
        assert_int_equal(r.a, 0); /* each removed, or its DOWN taken back */
        assert_int_equal(r.b, 0); /* and none came afterwards */
    }
    tr_mailbox_free(done_mb);
    tr_system_free(sys);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_monitor_gets_its_down_with_the_reason),
        cmocka_unit_test(test_monitoring_an_ended_actor_delivers_down_at_once),
        cmocka_unit_test(test_link_ends_the_other_with_the_same_reason_but_not_on_normal_exit),
        cmocka_unit_test(test_trapping_actor_gets_exit_then_down_as_messages),
        cmocka_unit_test(test_down_is_not_held_back_by_a_full_mailbox),
        cmocka_unit_test(test_cancel_wait_returns_once_the_actor_has_ended_with_its_reason),
        cmocka_unit_test(test_cancel_wait_on_what_it_cannot_watch_returns_at_once),
        cmocka_unit_test(test_cancel_wait_ends_eshutdown_when_the_system_stops),
        cmocka_unit_test(test_cancel_wait_on_an_ended_actor_is_0_even_with_tr_now),
        cmocka_unit_test(test_cancel_wait_checks_the_ref_before_the_caller),
        cmocka_unit_test(test_bad_link_and_monitor_calls_are_refused),
        cmocka_unit_test(test_linking_or_monitoring_no_actor_is_refused),
        cmocka_unit_test(test_a_mailbox_cannot_be_linked_or_monitored),
        cmocka_unit_test(test_an_unlink_that_returned_is_not_undone_by_a_late_exit),
        cmocka_unit_test(test_a_trapping_actor_gets_no_exit_once_unlink_returns),
        cmocka_unit_test(test_no_down_arrives_after_tr_demonitor_returns),
        cmocka_unit_test(test_linking_an_ended_actor_tells_at_once),
        cmocka_unit_test(test_exit_detail_reaches_links_monitors_and_those_a_link_ends),
        cmocka_unit_test(test_bad_details_are_refused_and_unread_notices_freed),
    };
    return cmocka_run_group_tests_name("link", tests, NULL, NULL);
}
