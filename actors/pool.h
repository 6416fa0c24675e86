/*
 * pool.h - fixed-size blocks for the objects every actor has: the actor
 * itself, its mailbox ring (default capacity), and small nodes (exit
 * notices, cleanup handlers).
 *
 * Overview: glibc spent 40 % of the time it took to end 100,000 actors
 * in malloc and free.  Those actors were allocated by one thread and
 * freed by two, so every free took the first thread's arena lock, and
 * freeing merged each block with its neighbours, a cache miss apiece.  A
 * pool hands out blocks of one size.  Each worker keeps a private cache
 * of free blocks, so allocating and freeing on a worker touch nothing
 * shared.  The cache is two magazines of up to TR__POOL_BATCH blocks (as
 * in Bonwick's slab allocator): frees fill the current one; when it is
 * full it becomes the spare, and a spare that was already there goes to
 * the pool's shared list of full magazines, one lock per TR__POOL_BATCH
 * blocks.  Allocation empties the current one, then the spare, then
 * takes a full magazine from the pool, or carves new blocks from a
 * chunk.  A block freed on another worker than the one that allocated it
 * simply joins that worker's cache.  Threads that are not workers (the
 * application spawning actors) take and give back one block at a time
 * under the lock: the loose blocks, which a whole full magazine becomes
 * when they run out, or a new one carved.
 *
 * Memory goes back to the system only when the pool is destroyed: a
 * pool is the high-water mark of its live blocks.
 *
 * Under AddressSanitizer every block is a malloc of its own, so that a
 * use after free or a leak is still caught.
 */
#ifndef TR_POOL_H
#define TR_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "spin.h"

#define TR__POOL_BATCH 64

/* A worker's free blocks of one pool; zero-filled is empty.  Blocks of a
 * magazine are linked through their first word. */
typedef struct tr__pool_cache {
    void *head;           /* the current magazine */
    uint32_t len;         /* blocks in it */
    void *spare;          /* a full magazine, or NULL */
} tr__pool_cache;

/* On a cache line of its own: threads that are not workers write it at
 * every allocation. */
typedef struct tr__pool {
    size_t size;          /* bytes per block, a multiple of 64 */
    tr__spin lock;        /* guards what follows */
    void *full;           /* full magazines, linked through their second word */
    void *loose;          /* blocks for and from threads that are not workers */
    char *bump, *bump_end; /* the uncarved rest of the newest chunk */
    void *chunks;         /* every chunk, linked through its first word */
} __attribute__((aligned(64))) tr__pool;

/* A pool of `size`-byte blocks (rounded up to 64), 64-byte aligned. */
void tr__pool_init(tr__pool *p, size_t size);

/* Free every chunk.  Only once no block is in use and no cache will be
 * used again. */
void tr__pool_destroy(tr__pool *p);

/* A block, uninitialised, or NULL if out of memory.  `c` is the calling
 * worker's cache for this pool, NULL on other threads. */
void *tr__pool_get(tr__pool *p, tr__pool_cache *c);

/* Give a block of this pool back (NULL is ignored); `c` as for get. */
void tr__pool_put(tr__pool *p, tr__pool_cache *c, void *block);

#endif
