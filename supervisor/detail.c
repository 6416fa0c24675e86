/* detail.c - exit details and the notices that carry them; see detail.h. */
#include "detail.h"

#include <stdlib.h>
#include <string.h>

#include "../actors/runtime.h"

/* The payload of a notice with a detail. */
typedef struct tr__note {
    int reason;
    uint32_t tag;
    tr_ref monitor;
    tr__detail *detail;
} tr__note;

tr__detail *tr__detail_new(const void *data, size_t len)
{
    tr__detail *d = malloc(sizeof *d + len + 1);
    if (!d)
        return NULL;
    atomic_init(&d->refs, 1);
    d->len = len;
    memcpy(d->data, data, len);
    d->data[len] = '\0';
    return d;
}

tr__detail *tr__detail_hold(tr__detail *d)
{
    if (d)
        atomic_fetch_add_explicit(&d->refs, 1, memory_order_relaxed);
    return d;
}

void tr__detail_drop(tr__detail *d)
{
    /* acq_rel: the last one out sees every other holder's reads done. */
    if (d && atomic_fetch_sub_explicit(&d->refs, 1, memory_order_acq_rel) == 1)
        free(d);
}

static void note_free(void *ptr, size_t len)
{
    (void)len;
    tr__note *n = ptr;
    tr__detail_drop(n->detail);
    free(n);
}

static const tr__note *note_of(const tr_msg *m)
{
    return m->free_fn == note_free ? m->ptr : NULL;
}

tr_msg tr__notice(uint64_t tag, tr_ref from, tr_ref monitor, int reason, tr__detail *d)
{
    tr__note *n = d ? malloc(sizeof *n) : NULL;
    if (n) {
        *n = (tr__note){.reason = reason, .monitor = monitor, .detail = tr__detail_hold(d)};
        tr_msg m = tr_msg_buf(tag, n, sizeof *n, note_free);
        m.from = from;
        return m;
    }
    tr_msg m = tag == TR_TAG_DOWN ? tr_msg_words(tag, monitor, (uint64_t)(int64_t)reason)
                                  : tr_msg_words(tag, (uint64_t)(int64_t)reason, 0);
    m.from = from;
    return m;
}

int tr__notice_reason(const tr_msg *m)
{
    const tr__note *n = note_of(m);
    if (n)
        return n->reason;
    return (int)(int64_t)(m->tag == TR_TAG_DOWN ? m->b : m->a);
}

tr__detail *tr__notice_detail(const tr_msg *m)
{
    const tr__note *n = note_of(m);
    return n ? n->detail : NULL;
}

uint32_t tr__notice_tag(const tr_msg *m)
{
    const tr__note *n = note_of(m);
    return n ? n->tag : (uint32_t)m->b;
}

void tr__notice_set_tag(tr_msg *m, uint32_t tag)
{
    tr__note *n = m->free_fn == note_free ? m->ptr : NULL;
    if (n)
        n->tag = tag;
    else
        m->b = tag;
}

int tr_exit_detail(const void *data, size_t len)
{
    tr_actor *self = tr_current();
    if (!self)
        return TR_ECONTEXT;
    if ((!data && len) || len > TR_DETAIL_MAX)
        return TR_EINVAL;
    tr__detail *d = NULL;
    if (data && !(d = tr__detail_new(data, len)))
        return TR_ENOMEM;
    tr__detail_drop(self->detail);
    self->detail = d;
    return 0;
}

int tr_notice_read(const tr_msg *m, tr_notice *out)
{
    if (!m || !out || (m->tag != TR_TAG_EXIT && m->tag != TR_TAG_DOWN))
        return TR_EINVAL;
    const tr__note *n = note_of(m);
    tr__detail *d = tr__notice_detail(m);
    *out = (tr_notice){
        .who = m->from,
        .reason = tr__notice_reason(m),
        .monitor = m->tag != TR_TAG_DOWN ? TR_REF_NONE : n ? n->monitor : m->a,
        .detail = d ? d->data : NULL,
        .detail_len = d ? d->len : 0,
    };
    return 0;
}
