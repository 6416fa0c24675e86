/*
 * slots.h - the table behind refs.
 *
 * Overview: a tr_ref is (generation << 32 | slot index + 1).  Each slot
 * holds one 64-bit word: generation (high 32 bits), a count of borrowers
 * (bits 1..31) and an "alive" bit (bit 0).  Looking a ref up borrows the
 * object only if the generation matches and it is alive, so a stale ref
 * never reaches freed memory; the object is destroyed by whoever drops
 * the last borrow after it died (tr__slot_kill / tr__slot_put return true
 * to exactly one caller).
 *
 * Implementation notes: slots live in chunks that are allocated on demand
 * and never moved or freed before the table, so a lookup needs no lock.
 * Free slots form a LIFO list under a spinlock (spawn and exit only).
 */
#ifndef TR_SLOTS_H
#define TR_SLOTS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "spin.h"
#include "troupe/msg.h"

#define TR__SLOT_CHUNK_SHIFT 12
#define TR__SLOT_CHUNK (1u << TR__SLOT_CHUNK_SHIFT)

typedef struct tr__slot {
    _Atomic uint64_t word;  /* generation | borrowers << 1 | alive */
    _Atomic(void *) obj;
    uint32_t next_free;
    uint8_t kind;           /* what obj is (the caller's enumeration) */
} tr__slot;

typedef struct tr__slots {
    _Atomic(tr__slot *) *chunks;
    uint32_t max;           /* slots at most */
    tr__spin lock;          /* guards the fields below */
    uint32_t free_head;     /* index + 1; 0: empty */
    uint32_t used;          /* slots ever handed out (high-water mark) */
} tr__slots;

int tr__slots_init(tr__slots *t, uint32_t max);
void tr__slots_destroy(tr__slots *t);

/*
 * Take a free slot for `obj` (already fully built), alive with no
 * borrowers.  Returns 0 and the ref, TR_ELIMIT or TR_ENOMEM.
 */
int tr__slot_alloc(tr__slots *t, void *obj, uint8_t kind, tr_ref *ref);

/* Borrow the object behind a live ref; NULL if it is stale or dead. */
void *tr__slot_get(tr__slots *t, tr_ref ref, uint8_t *kind);

/*
 * The object behind a live ref, without borrowing it: the caller must
 * keep it from being destroyed by other means (a hazard announced
 * before the call, with a seq_cst store; see tr__hazard_wait).
 */
void *tr__slot_peek(tr__slots *t, tr_ref ref, uint8_t *kind);

/* Drop a borrow; true if the caller must now destroy the object. */
bool tr__slot_put(tr__slots *t, tr_ref ref);

/* Mark dead (no new borrows); true if the caller must destroy it now. */
bool tr__slot_kill(tr__slots *t, tr_ref ref);

/* Return a destroyed object's slot; its ref goes stale for good. */
void tr__slot_release(tr__slots *t, tr_ref ref);

/* Call fn on every object not yet released, dead or alive (only while
 * no other thread uses t: system teardown). */
void tr__slots_each(tr__slots *t, void (*fn)(void *obj, uint8_t kind,
                                            void *arg), void *arg);

#endif
