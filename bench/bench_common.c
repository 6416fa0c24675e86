/* bench_common.c - environment, system setup, memory probes and the JSON line. */
#define _GNU_SOURCE
#include "bench_common.h"

#include <errno.h>
#include <limits.h>
#include <math.h> /* isfinite, a macro: no -lm needed */
#include <stdarg.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

static const char *bench_name = "bench";

void bench_set_name(const char *name)
{
    bench_name = name;
}

void bench_fail(const char *fmt, ...)
{
    va_list ap;
    /* One write per line so that messages from two threads do not mix. */
    char buf[512];
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: FAIL: %s\n", bench_name, buf);
    fflush(stderr);
    exit(1);
}

void bench_progress(const char *fmt, ...)
{
    va_list ap;
    char buf[512];
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: %s\n", bench_name, buf);
}

void bench_check(int rc, const char *what)
{
    if (rc != 0)
        bench_fail("%s: %s (%s)", what, tr_err_name(rc), tr_strerror(rc));
}

/* A positive number from the environment, or `def` if unset or empty. */
static double env_number(const char *var, double def)
{
    const char *s = getenv(var);
    if (!s || !*s)
        return def;
    char *end;
    double v = strtod(s, &end);
    if (*end || !(v > 0) || !isfinite(v))
        bench_fail("%s=%s: want a positive number", var, s);
    return v;
}

double bench_scale(void)
{
    return env_number("BENCH_SCALE", 1.0);
}

uint64_t bench_count(uint64_t base, uint64_t min)
{
    uint64_t v = (uint64_t)((double)base * bench_scale() + 0.5);
    return v < min ? min : v;
}

tr_deadline bench_deadline(void)
{
    static tr_deadline deadline;
    if (!deadline)
        deadline = tr_after_ns((int64_t)(env_number("BENCH_TIMEOUT", 120) * 1e9));
    return deadline;
}

/* A whole number from 0 to `max` from the environment, or -1 if unset
 * or empty; `what` says what it counts, for the error. */
static long long env_count(const char *var, long long max, const char *what)
{
    const char *s = getenv(var);
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end || errno || v < 0 || v > max)
        bench_fail("%s=%s: want a count of %s from 0 to %lld", var, s, what, max);
    return v;
}

tr_system *bench_system(void)
{
    tr_config cfg = TR_CONFIG_INIT;
    long long v;
    if ((v = env_count("WORKERS", 1024, "threads")) >= 0)
        cfg.workers = (unsigned)v;
    /* tr_system_new refuses what is too long or too large. */
    if ((v = env_count("COALESCE_NS", LLONG_MAX, "nanoseconds")) >= 0)
        cfg.coalesce_ns = v;
    if ((v = env_count("SPAWN_BACKLOG", UINT32_MAX, "actors")) >= 0)
        cfg.spawn_backlog = (uint32_t)v;
    tr_system *sys = NULL;
    bench_check(tr_system_new(&cfg, &sys), "tr_system_new");
    bench_deadline(); /* the hang timeout counts from here */
    return sys;
}

tr_mailbox *bench_mailbox(tr_system *sys, uint32_t capacity)
{
    tr_mailbox *mb = NULL;
    bench_check(tr_mailbox_new(sys, capacity, &mb), "tr_mailbox_new");
    return mb;
}

void bench_recv(tr_mailbox *mb, tr_msg *out, const char *what)
{
    int rc = tr_mailbox_recv(mb, out, bench_deadline());
    if (rc == TR_ETIMEDOUT)
        bench_fail("timed out waiting for %s (hang?)", what);
    bench_check(rc, what);
}

uint64_t bench_rss_bytes(void)
{
    unsigned long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        bench_fail("cannot open /proc/self/statm");
    int got = fscanf(f, "%lu %lu", &size, &resident);
    fclose(f);
    if (got != 2)
        bench_fail("cannot parse /proc/self/statm");
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

long bench_peak_rss_kb(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        bench_fail("getrusage failed");
    return ru.ru_maxrss;
}

int64_t bench_cpu_ns(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        bench_fail("getrusage failed");
    return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
           (int64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

void bench_report(const char *bench, double value, const char *unit,
                  unsigned workers, uint64_t n, const char *extra_fmt, ...)
{
    char extra[512] = "";
    if (extra_fmt) {
        va_list ap;
        extra[0] = ',';
        va_start(ap, extra_fmt);
        vsnprintf(extra + 1, sizeof extra - 1, extra_fmt, ap);
        va_end(ap);
    }
    printf("{\"bench\":\"%s\",\"impl\":\"troupe\",\"value\":%.3f,\"unit\":\"%s\","
           "\"peak_rss_kb\":%ld,\"workers\":%u,\"n\":%llu%s}\n",
           bench, value, unit, bench_peak_rss_kb(), workers,
           (unsigned long long)n, extra);
    fflush(stdout);
}

/* Wait until every ref is dead.  A probe that gets in before the mailbox
 * closes is queued and released with the actor; we just try again. */
uint64_t bench_wait_exited(tr_system *sys, const tr_ref *refs, uint64_t n,
                           uint64_t probe_tag)
{
    uint64_t retries = 0;
    tr_msg probe = tr_msg_words(probe_tag, 0, 0);
    for (uint64_t i = 0; i < n; i++) {
        int rc;
        while ((rc = tr_try_send(sys, refs[i], &probe)) != TR_ENOACTOR) {
            if (rc != 0 && rc != TR_EFULL)
                bench_check(rc, "probe");
            if (tr_now() > bench_deadline())
                bench_fail("actor %llu never exited", (unsigned long long)i);
            retries++;
            sched_yield();
        }
    }
    return retries;
}

void bench_await(uint64_t tag)
{
    tr_msg go;
    bench_check(tr_recv(&go, TR_FOREVER), "recv");
    if (go.tag != tag)
        bench_fail("got a stray message (tag %llu)", (unsigned long long)go.tag);
}

int bench_send_counting_full(tr_system *sys, tr_ref to, const tr_msg *m)
{
    int rc = tr_try_send(sys, to, m);
    int full = rc == TR_EFULL;
    if (full)
        rc = tr_send(sys, to, m, TR_FOREVER);
    bench_check(rc, "send");
    return full;
}
