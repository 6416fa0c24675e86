/*
 * refmap.h - a map from refs to 32-bit values, for the sets a supervisor
 * and a linked actor keep (children by ref, links).
 *
 * Linear probing in a power-of-two table kept at most half full, growing
 * by doubling; refs are never 0, which marks a free slot; deletion shifts
 * later entries of the probe run back, so no tombstones pile up over
 * restarts.  O(1) where a scan of 100,000 links made stopping a
 * supervisor quadratic.  A key and its value share a slot, so a lookup
 * in a table too big for the cache costs one miss, not two.  Not thread
 * safe: its owner guards it.
 */
#ifndef TR_REFMAP_H
#define TR_REFMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "troupe/msg.h"

typedef struct tr__refmap_slot {
    tr_ref key;
    uint32_t val;
} tr__refmap_slot;

typedef struct tr__refmap {
    tr__refmap_slot *slots;
    size_t mask;     /* slots - 1; 0 with no table yet */
    size_t len;
} tr__refmap;

/* Set ref -> val (replacing); false if out of memory or ref is
 * TR_REF_NONE, which marks free slots (map unchanged either way). */
bool tr__refmap_put(tr__refmap *m, tr_ref ref, uint32_t val);

/* The same, but a ref already there keeps its value. */
bool tr__refmap_add(tr__refmap *m, tr_ref ref, uint32_t val);

/* The value of ref in *val; false if absent. */
bool tr__refmap_get(const tr__refmap *m, tr_ref ref, uint32_t *val);

/* Remove ref, its value into *val unless val is NULL; false if absent. */
bool tr__refmap_del(tr__refmap *m, tr_ref ref, uint32_t *val);

/* Start loading where ref would be, for a lookup soon after. */
void tr__refmap_prefetch(const tr__refmap *m, tr_ref ref);

/* Every ref, in table order, into out (room for len); returns how many
 * were written. */
size_t tr__refmap_keys(const tr__refmap *m, tr_ref *out);

void tr__refmap_free(tr__refmap *m);

#endif
