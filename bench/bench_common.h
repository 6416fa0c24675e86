/*
 * bench_common.h - what every benchmark program shares.
 *
 * Each workload of bench/SPEC.md is one program that runs one workload,
 * checks its own result and prints exactly one JSON line on stdout:
 *
 *   {"bench":..,"impl":"troupe","value":..,"unit":..,"peak_rss_kb":..,
 *    "workers":..,"n":..[, extra fields]}
 *
 * Everything else (progress, errors) goes to stderr, so that run.sh can
 * collect stdout as it is.  A failed check ends the process with exit
 * status 1 through bench_fail(), from any thread: a benchmark has nothing
 * to clean up that the kernel does not.
 *
 * Environment:
 *   BENCH_SCALE    factor on message and actor counts (default 1).
 *   WORKERS        worker threads (default 0: one per online CPU).
 *   BENCH_TIMEOUT  seconds the main thread waits for a result before it
 *                  calls the run hung and fails (default 120).
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <stdint.h>

#include "troupe.h"

/* The BENCH_SCALE factor; malformed or non-positive values fail. */
double bench_scale(void);

/* `base` scaled by BENCH_SCALE, rounded, and never below `min`. */
uint64_t bench_count(uint64_t base, uint64_t min);

/* A system with TR_CONFIG_INIT, and WORKERS, COALESCE_NS and
 * SPAWN_BACKLOG (tr_config's fields) if set; fails on error. */
tr_system *bench_system(void);

/* A mailbox for the main thread; fails on error. */
tr_mailbox *bench_mailbox(tr_system *sys, uint32_t capacity);

/* The deadline after which a blocked main thread gives up (set once). */
tr_deadline bench_deadline(void);

/* Receive on `mb` until bench_deadline(); a timeout is a hang: fail. */
void bench_recv(tr_mailbox *mb, tr_msg *out, const char *what);

/* Fail with `what` and the code's name unless rc is 0. */
void bench_check(int rc, const char *what);

/* Print to stderr and exit(1).  Any thread may call it. */
void bench_fail(const char *fmt, ...)
    __attribute__((noreturn, format(printf, 1, 2)));

/* A progress line on stderr (prefixed with the benchmark's name). */
void bench_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Name used as the prefix of progress and error lines. */
void bench_set_name(const char *name);

/* In an actor: receive one message and fail unless its tag is `tag`. */
void bench_await(uint64_t tag);

/*
 * Send from an actor, waiting as long as it takes; returns 1 if the
 * mailbox was full first (the sender had to park), else 0.  A full try is
 * not a lost message: the blocking send that follows delivers it.
 */
int bench_send_counting_full(tr_system *sys, tr_ref to, const tr_msg *m);

/* Wait until every ref is dead (sends fail with TR_ENOACTOR), probing with
 * messages tagged `probe_tag`; returns how many probes got in first. */
uint64_t bench_wait_exited(tr_system *sys, const tr_ref *refs, uint64_t n,
                           uint64_t probe_tag);

/* Current resident set size in bytes (from /proc/self/statm). */
uint64_t bench_rss_bytes(void);

/* Peak resident set size in KiB (getrusage ru_maxrss). */
long bench_peak_rss_kb(void);

/* User + system CPU time of the whole process, in nanoseconds. */
int64_t bench_cpu_ns(void);

/*
 * Print the result line.  `extra_fmt` (may be NULL) is a printf format
 * for further fields, written as `"key":value` pairs separated by commas
 * without a leading comma, e.g. "\"full_waits\":%lu".
 */
void bench_report(const char *bench, double value, const char *unit,
                  unsigned workers, uint64_t n, const char *extra_fmt, ...)
    __attribute__((format(printf, 6, 7)));

#endif
