/*
 * fence.h - a store-load fence where a seq_cst RMW is not already one.
 *
 * Several handshakes are "I write X, then read Y" on one side and "I write
 * Y, then read X" on the other (flag vs. ring index, waiter count vs.
 * ring index).  Each side writes with a seq_cst read-modify-write and then
 * reads a ck_ring index with ck's plain load.  On x86-64 a locked
 * instruction is already a full barrier, so nothing more is needed; on
 * other machines a seq_cst RMW does not order a later plain load, so we
 * add a full fence there.
 */
#ifndef TR_FENCE_H
#define TR_FENCE_H

#include <stdatomic.h>

#if defined(__x86_64__) || defined(__i386__)
#define tr__fence_store_load() atomic_signal_fence(memory_order_seq_cst)
#else
#define tr__fence_store_load() atomic_thread_fence(memory_order_seq_cst)
#endif

#endif
