/* hello.c - built against an installed troupe by `make test-install`. */
#include <stdio.h>
#include <troupe.h>

static int greet(tr_actor *self, tr_msg *m)
{
    return tr_send(tr_actor_system(self), m->from, &(tr_msg){.tag = m->tag + 1},
                   TR_FOREVER) ? -1 : TR_STOP;
}

int main(void)
{
    tr_system *sys;
    tr_mailbox *mb;
    tr_ref r;
    tr_msg in = tr_msg_words(41, 0, 0), out;
    if (tr_system_new(NULL, &sys) || tr_mailbox_new(sys, 1, &mb) ||
        tr_spawn(sys, greet, NULL, &r) || tr_send(sys, r, &in, TR_FOREVER) ||
        tr_mailbox_recv(mb, &out, tr_after_ms(5000)) || out.tag != 42) {
        fprintf(stderr, "hello: failed\n");
        return 1;
    }
    tr_mailbox_free(mb);
    tr_system_free(sys);
    puts("hello from an installed troupe: 42");
    return 0;
}
