/* refmap.c - refs to values by linear probing; see refmap.h. */
#include "refmap.h"

#include <stdlib.h>

static size_t home_of(const tr__refmap *m, tr_ref ref)
{
    return (size_t)(ref * 0x9E3779B97F4A7C15ull >> 17) & m->mask;
}

static tr__refmap_slot *slot_of(const tr__refmap *m, tr_ref ref)
{
    if (!m->slots)
        return NULL;
    for (size_t i = home_of(m, ref); m->slots[i].key; i = (i + 1) & m->mask)
        if (m->slots[i].key == ref)
            return &m->slots[i];
    return NULL;
}

static void insert(tr__refmap *m, tr_ref ref, uint32_t val)
{
    size_t i = home_of(m, ref);
    while (m->slots[i].key)
        i = (i + 1) & m->mask;
    m->slots[i] = (tr__refmap_slot){ref, val};
}

static bool grow(tr__refmap *m)
{
    size_t n = m->slots ? (m->mask + 1) * 2 : 4;
    tr__refmap bigger = {.slots = calloc(n, sizeof(tr__refmap_slot)), .mask = n - 1,
                         .len = m->len};
    if (!bigger.slots)
        return false;
    for (size_t i = 0; m->slots && i <= m->mask; i++)
        if (m->slots[i].key)
            insert(&bigger, m->slots[i].key, m->slots[i].val);
    tr__refmap_free(m);
    *m = bigger;
    return true;
}

/* Set ref -> val, or if ref is there already replace its value only if
 * `replace`. */
static bool put(tr__refmap *m, tr_ref ref, uint32_t val, bool replace)
{
    if (ref == TR_REF_NONE) /* the mark of a free slot: it cannot be stored */
        return false;
    tr__refmap_slot *at = slot_of(m, ref);
    if (at) {
        if (replace)
            at->val = val;
        return true;
    }
    if ((!m->slots || 2 * (m->len + 1) > m->mask + 1) && !grow(m))
        return false;
    insert(m, ref, val);
    m->len++;
    return true;
}

bool tr__refmap_put(tr__refmap *m, tr_ref ref, uint32_t val)
{
    return put(m, ref, val, true);
}

bool tr__refmap_add(tr__refmap *m, tr_ref ref, uint32_t val)
{
    return put(m, ref, val, false);
}

bool tr__refmap_get(const tr__refmap *m, tr_ref ref, uint32_t *val)
{
    tr__refmap_slot *at = slot_of(m, ref);
    if (!at)
        return false;
    *val = at->val;
    return true;
}

bool tr__refmap_del(tr__refmap *m, tr_ref ref, uint32_t *val)
{
    tr__refmap_slot *at = slot_of(m, ref);
    if (!at)
        return false;
    if (val)
        *val = at->val;
    m->len--;
    size_t i = (size_t)(at - m->slots);
    for (size_t j = i;;) {
        m->slots[i].key = 0;
        for (;;) {
            j = (j + 1) & m->mask;
            if (!m->slots[j].key)
                return true;
            size_t home = home_of(m, m->slots[j].key);
            /* It stays unless its home is not cyclically in (i, j]. */
            bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
            if (!stays)
                break;
        }
        m->slots[i] = m->slots[j];
        i = j;
    }
}

void tr__refmap_prefetch(const tr__refmap *m, tr_ref ref)
{
    if (m->slots)
        __builtin_prefetch(&m->slots[home_of(m, ref)]);
}

size_t tr__refmap_keys(const tr__refmap *m, tr_ref *out)
{
    size_t n = 0;
    for (size_t i = 0; m->slots && i <= m->mask; i++)
        if (m->slots[i].key)
            out[n++] = m->slots[i].key;
    return n;
}

void tr__refmap_free(tr__refmap *m)
{
    free(m->slots);
    *m = (tr__refmap){0};
}
