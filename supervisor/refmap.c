/* refmap.c - refs to values by linear probing; see refmap.h. */
#include "refmap.h"

#include <stdlib.h>

static size_t home_of(const tr__refmap *m, tr_ref ref)
{
    return (size_t)(ref * 0x9E3779B97F4A7C15ull >> 17) & m->mask;
}

static size_t slot_of(const tr__refmap *m, tr_ref ref)
{
    if (!m->keys)
        return SIZE_MAX;
    for (size_t i = home_of(m, ref); m->keys[i]; i = (i + 1) & m->mask)
        if (m->keys[i] == ref)
            return i;
    return SIZE_MAX;
}

static void insert(tr__refmap *m, tr_ref ref, uint32_t val)
{
    size_t i = home_of(m, ref);
    while (m->keys[i])
        i = (i + 1) & m->mask;
    m->keys[i] = ref;
    m->vals[i] = val;
}

static bool grow(tr__refmap *m)
{
    size_t slots = m->keys ? (m->mask + 1) * 2 : 8;
    tr__refmap bigger = {.keys = calloc(slots, sizeof(tr_ref)),
                         .vals = calloc(slots, sizeof(uint32_t)),
                         .mask = slots - 1, .len = m->len};
    if (!bigger.keys || !bigger.vals) {
        free(bigger.keys);
        free(bigger.vals);
        return false;
    }
    for (size_t i = 0; m->keys && i <= m->mask; i++)
        if (m->keys[i])
            insert(&bigger, m->keys[i], m->vals[i]);
    tr__refmap_free(m);
    *m = bigger;
    return true;
}

bool tr__refmap_put(tr__refmap *m, tr_ref ref, uint32_t val)
{
    size_t at = slot_of(m, ref);
    if (at != SIZE_MAX) {
        m->vals[at] = val;
        return true;
    }
    if ((!m->keys || 2 * (m->len + 1) > m->mask + 1) && !grow(m))
        return false;
    insert(m, ref, val);
    m->len++;
    return true;
}

bool tr__refmap_get(const tr__refmap *m, tr_ref ref, uint32_t *val)
{
    size_t at = slot_of(m, ref);
    if (at == SIZE_MAX)
        return false;
    *val = m->vals[at];
    return true;
}

bool tr__refmap_del(tr__refmap *m, tr_ref ref)
{
    size_t i = slot_of(m, ref);
    if (i == SIZE_MAX)
        return false;
    m->len--;
    for (size_t j = i;;) {
        m->keys[i] = 0;
        for (;;) {
            j = (j + 1) & m->mask;
            if (!m->keys[j])
                return true;
            size_t home = home_of(m, m->keys[j]);
            /* It stays unless its home is not cyclically in (i, j]. */
            bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
            if (!stays)
                break;
        }
        m->keys[i] = m->keys[j];
        m->vals[i] = m->vals[j];
        i = j;
    }
}

void tr__refmap_keys(const tr__refmap *m, tr_ref *out)
{
    for (size_t i = 0; m->keys && i <= m->mask; i++)
        if (m->keys[i])
            *out++ = m->keys[i];
}

void tr__refmap_free(tr__refmap *m)
{
    free(m->keys);
    free(m->vals);
    *m = (tr__refmap){0};
}
