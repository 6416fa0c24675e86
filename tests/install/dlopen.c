/*
 * dlopen.c - libtroupe.so loaded with dlopen, as a plugin host would.
 *
 * The runtime's thread-locals use the initial-exec model (actors/tls.h),
 * which a library loaded late gets only from the loader's reserve of
 * static TLS.  This suite loads the library given as argv[1] (the
 * Makefile builds in the path of the one it built as TR_LIBRARY), so a
 * library that asked for more than the reserve fails here ("cannot
 * allocate memory in static thread-local storage block"), and then runs
 * workers and foreign threads through it: every thread-local the runtime
 * has is used on threads that existed before the load and after it.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include <troupe.h>

static const char *library_path;
static void *library;

/* The calls used below, looked up in the loaded library. */
static struct {
    __typeof__(&tr_system_new) system_new;
    __typeof__(&tr_system_free) system_free;
    __typeof__(&tr_spawn) spawn;
    __typeof__(&tr_send) send;
    __typeof__(&tr_actor_system) actor_system;
    __typeof__(&tr_actor_state) actor_state;
    __typeof__(&tr_mailbox_new) mailbox_new;
    __typeof__(&tr_mailbox_ref) mailbox_ref;
    __typeof__(&tr_mailbox_recv) mailbox_recv;
    __typeof__(&tr_mailbox_free) mailbox_free;
    __typeof__(&tr_after_ms) after_ms;
} lib;

#define LOOK_UP(field, name)                                                 \
    do {                                                                     \
        *(void **)&lib.field = dlsym(library, #name);                        \
        if (!lib.field) {                                                    \
            fprintf(stderr, "dlopen: %s missing: %s\n", #name, dlerror());   \
            return -1;                                                       \
        }                                                                    \
    } while (0)

static int load(void **state)
{
    (void)state;
    library = dlopen(library_path, RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return -1;
    }
    LOOK_UP(system_new, tr_system_new);
    LOOK_UP(system_free, tr_system_free);
    LOOK_UP(spawn, tr_spawn);
    LOOK_UP(send, tr_send);
    LOOK_UP(actor_system, tr_actor_system);
    LOOK_UP(actor_state, tr_actor_state);
    LOOK_UP(mailbox_new, tr_mailbox_new);
    LOOK_UP(mailbox_ref, tr_mailbox_ref);
    LOOK_UP(mailbox_recv, tr_mailbox_recv);
    LOOK_UP(mailbox_free, tr_mailbox_free);
    LOOK_UP(after_ms, tr_after_ms);
    return 0;
}

static int unload(void **state)
{
    (void)state;
    return library ? dlclose(library) : 0; /* the setup said why it failed */
}

static tr_system *two_workers(void)
{
    tr_config cfg = TR_CONFIG_INIT;
    cfg.workers = 2;
    tr_system *sys;
    assert_int_equal(lib.system_new(&cfg, &sys), 0);
    return sys;
}

/* ---- actors on the library's workers ------------------------------------ */

enum { ROUNDS = 20000 };

typedef struct player {
    tr_ref peer, report;
    uint64_t next; /* the value this player must get next */
} player;

static int play(tr_actor *self, tr_msg *m)
{
    player *p = lib.actor_state(self);
    tr_system *sys = lib.actor_system(self);
    if (m->a != p->next)
        return -1; /* ends the actor; the main thread then waits in vain */
    if (m->a == 2 * ROUNDS) {
        tr_msg done = tr_msg_words(2, m->a, 0);
        return lib.send(sys, p->report, &done, TR_FOREVER) ? -1 : TR_STOP;
    }
    p->next += 2;
    tr_msg ball = tr_msg_words(1, m->a + 1, 0);
    return lib.send(sys, p->peer, &ball, TR_FOREVER) ? -1 : 0;
}

/* Two actors bounce a ball 20,000 times on two workers, each checking
 * that every value arrives in turn. */
static void test_actors_play_through_the_loaded_library(void **state)
{
    (void)state;
    tr_system *sys = two_workers();
    tr_mailbox *report;
    assert_int_equal(lib.mailbox_new(sys, 1, &report), 0);
    player a = {.report = lib.mailbox_ref(report), .next = 0};
    player b = {.report = lib.mailbox_ref(report), .next = 1};
    tr_spawn_opts oa = TR_SPAWN_OPTS_INIT, ob = TR_SPAWN_OPTS_INIT;
    oa.state = &a;
    ob.state = &b;
    tr_ref ra, rb;
    assert_int_equal(lib.spawn(sys, play, &oa, &ra), 0);
    assert_int_equal(lib.spawn(sys, play, &ob, &rb), 0);
    a.peer = rb; /* published by the first send */
    b.peer = ra;
    tr_msg ball = tr_msg_words(1, 0, 0);
    assert_int_equal(lib.send(sys, ra, &ball, lib.after_ms(5000)), 0);
    tr_msg done;
    assert_int_equal(lib.mailbox_recv(report, &done, lib.after_ms(30000)), 0);
    assert_int_equal(done.tag, 2);
    assert_int_equal(done.a, 2 * ROUNDS);
    assert_int_equal(done.from, ra);
    assert_int_equal(a.next, 2 * ROUNDS);
    assert_int_equal(b.next, 2 * ROUNDS + 1);
    lib.mailbox_free(report);
    lib.system_free(sys);
}

/* ---- threads that are not workers --------------------------------------- */

enum { THREADS = 4, PER_THREAD = 2000 };

static tr_system *shared_sys;

/* Sends each message straight back to its sender. */
static int echo(tr_actor *self, tr_msg *m)
{
    tr_msg back = tr_msg_words(m->tag, m->a, 0);
    return lib.send(lib.actor_system(self), m->from, &back, TR_FOREVER) ? -1 : 0;
}

/* Each thread owns a mailbox (a thread-local record), sends with a
 * hazard word of its own (another), and gets its numbers back in order. */
static void *ask_in_order(void *arg)
{
    (void)arg;
    tr_mailbox *mb;
    tr_ref echoer;
    if (lib.mailbox_new(shared_sys, 4, &mb))
        return (void *)"mailbox";
    if (lib.spawn(shared_sys, echo, NULL, &echoer))
        return (void *)"spawn";
    const char *failure = NULL;
    for (uint64_t i = 0; i < PER_THREAD && !failure; i++) {
        tr_msg m = tr_msg_words(3, i, 0), r;
        if (lib.send(shared_sys, echoer, &m, lib.after_ms(10000)))
            failure = "send";
        else if (lib.mailbox_recv(mb, &r, lib.after_ms(10000)))
            failure = "receive";
        else if (r.a != i || r.from != echoer)
            failure = "order";
    }
    lib.mailbox_free(mb);
    return (void *)failure;
}

static void test_threads_ask_through_the_loaded_library(void **state)
{
    (void)state;
    shared_sys = two_workers();
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, ask_in_order, NULL), 0);
    for (int i = 0; i < THREADS; i++) {
        void *failure;
        assert_int_equal(pthread_join(t[i], &failure), 0);
        if (failure)
            fail_msg("thread %d: %s", i, (const char *)failure);
    }
    lib.system_free(shared_sys);
}

int main(int argc, char **argv)
{
    if (argc > 2) {
        fprintf(stderr, "usage: %s [path/to/libtroupe.so]\n", argv[0]);
        return 2;
    }
    library_path = argc == 2 ? argv[1] : TR_LIBRARY;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_actors_play_through_the_loaded_library),
        cmocka_unit_test(test_threads_ask_through_the_loaded_library),
    };
    return cmocka_run_group_tests(tests, load, unload);
}
