/*
 * hazard.h - hazard words for threads that are not workers.
 *
 * Overview: a send holds its target for a few instructions.  A worker
 * announces the target's ref in its own `hazard` word; any other thread
 * used to borrow through the ref count in the target's slot, two
 * read-modify-writes per send (a quarter of a feeding thread's time).
 * Now the first TR__FOREIGN_HAZARDS threads that use a system get a
 * hazard word of their own in it, on first use, for as long as the
 * system lives; later ones borrow as before.  Destroyers wait while any
 * hazard word, a worker's or a thread's, names the ref they destroy.
 *
 * Implementation notes: a thread keeps its words for the last four
 * systems it used in thread-local storage, each with the system's
 * address and serial number, so that a system freed and another made at
 * the same address is not mistaken for the old one.  On a miss it looks
 * for a word already handed to it before it takes a new one, so a
 * thread that goes back and forth between more systems holds one word in
 * each all the same.  Words are never given back: a thread that ends
 * leaves its word empty (TR_REF_NONE), destroyers read it for nothing,
 * and a thread that later has the ended one's thread-local address
 * takes it over.
 */
#ifndef TR_HAZARD_H
#define TR_HAZARD_H

#include <stdatomic.h>
#include <stdint.h>

#include "troupe/msg.h"

#define TR__FOREIGN_HAZARDS 64

typedef struct tr__hazard_slot {
    _Atomic tr_ref ref;
    _Atomic uintptr_t owner; /* the thread it was handed to (hazard.c) */
} __attribute__((aligned(64))) tr__hazard_slot;

struct tr_system;

/* The calling thread's hazard word in `sys` (not a worker of it), or
 * NULL if all are taken. */
_Atomic tr_ref *tr__foreign_hazard(struct tr_system *sys);

/* Wait until no thread announces `ref` as its hazard (its destroyer,
 * after tr__slot_kill). */
void tr__hazard_wait(struct tr_system *sys, tr_ref ref);

#endif
