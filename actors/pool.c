/* pool.c - fixed-size blocks with per-worker magazines; see pool.h. */
#include "pool.h"

#include <stdlib.h>
#include <string.h>

#define CHUNK_BYTES (256 * 1024)
#define CHUNK_HEAD 64 /* the chunk list link, padded to keep blocks aligned */

#if defined(__SANITIZE_ADDRESS__)
#define POOL_BYPASS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define POOL_BYPASS 1
#endif
#endif

static void *next_of(void *block)
{
    return *(void **)block;
}

void tr__pool_init(tr__pool *p, size_t size)
{
    memset(p, 0, sizeof *p);
    p->size = (size + 63) & ~(size_t)63;
}

void tr__pool_destroy(tr__pool *p)
{
    for (void *c = p->chunks, *next; c; c = next) {
        next = next_of(c);
        free(c);
    }
    memset(p, 0, sizeof *p);
}

#ifdef POOL_BYPASS

void *tr__pool_get(tr__pool *p, tr__pool_cache *c)
{
    (void)c;
    return aligned_alloc(64, p->size);
}

void tr__pool_put(tr__pool *p, tr__pool_cache *c, void *block)
{
    (void)p;
    (void)c;
    free(block);
}

#else

static void set_next(void *block, void *next)
{
    *(void **)block = next;
}

/* The second word of a magazine's first block links full magazines. */
static void *next_magazine(void *mag)
{
    return ((void **)mag)[1];
}

static void set_next_magazine(void *mag, void *next)
{
    ((void **)mag)[1] = next;
}

/* Up to n new blocks from the newest chunk, or a new one; lock held.
 * Returns them linked, their number in *got (0: out of memory). */
static void *carve(tr__pool *p, uint32_t n, uint32_t *got)
{
    if (p->bump + p->size > p->bump_end) {
        size_t bytes = CHUNK_HEAD + (CHUNK_BYTES / p->size < 4 ? 4 * p->size : CHUNK_BYTES);
        char *chunk = aligned_alloc(64, bytes);
        if (!chunk) {
            *got = 0;
            return NULL;
        }
        set_next(chunk, p->chunks);
        p->chunks = chunk;
        p->bump = chunk + CHUNK_HEAD;
        p->bump_end = chunk + bytes;
    }
    void *head = NULL;
    uint32_t k = 0;
    for (; k < n && p->bump + p->size <= p->bump_end; k++, p->bump += p->size) {
        set_next(p->bump, head);
        head = p->bump;
    }
    *got = k;
    return head;
}

/* Refill an empty cache: a full magazine, loose blocks, or new ones. */
static void refill(tr__pool *p, tr__pool_cache *c)
{
    tr__spin_lock(&p->lock);
    if (p->full) {
        c->head = p->full;
        c->len = TR__POOL_BATCH;
        p->full = next_magazine(p->full);
    } else if (p->loose) {
        void *take = p->loose;
        uint32_t k = 1;
        void *last = take;
        for (; k < TR__POOL_BATCH && next_of(last); k++)
            last = next_of(last);
        p->loose = next_of(last);
        set_next(last, NULL);
        c->head = take;
        c->len = k;
    } else {
        c->head = carve(p, TR__POOL_BATCH, &c->len);
    }
    tr__spin_unlock(&p->lock);
}

/* A block for a thread that is not a worker: a loose one, a full
 * magazine turned loose, or a new one. */
static void *get_shared(tr__pool *p)
{
    tr__spin_lock(&p->lock);
    if (!p->loose && p->full) {
        p->loose = p->full; /* its blocks are a NULL-terminated list */
        p->full = next_magazine(p->full);
    }
    void *b = p->loose;
    uint32_t got;
    if (b)
        p->loose = next_of(b);
    else
        b = carve(p, 1, &got);
    tr__spin_unlock(&p->lock);
    return b;
}

void *tr__pool_get(tr__pool *p, tr__pool_cache *c)
{
    if (!c)
        return get_shared(p);
    if (!c->head && c->spare) {
        c->head = c->spare;
        c->len = TR__POOL_BATCH;
        c->spare = NULL;
    }
    if (!c->head)
        refill(p, c);
    void *b = c->head;
    if (b) {
        c->head = next_of(b);
        c->len--;
    }
    return b;
}

void tr__pool_put(tr__pool *p, tr__pool_cache *c, void *block)
{
    if (!block)
        return;
    if (!c) {
        tr__spin_lock(&p->lock);
        set_next(block, p->loose);
        p->loose = block;
        tr__spin_unlock(&p->lock);
        return;
    }
    if (c->len == TR__POOL_BATCH) {
        if (c->spare) {
            tr__spin_lock(&p->lock);
            set_next_magazine(c->spare, p->full);
            p->full = c->spare;
            tr__spin_unlock(&p->lock);
        }
        c->spare = c->head;
        c->head = NULL;
        c->len = 0;
    }
    set_next(block, c->head);
    c->head = block;
    c->len++;
}

#endif
