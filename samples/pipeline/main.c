/*
 * pipeline - backpressure through a chain of bounded mailboxes.
 *
 *   producer --raw--> parse --struct reading *--> sink --done--> main
 *   (loop actor)      (handler,                   (handler,      (thread
 *                      mailbox 127)                mailbox 63,    mailbox)
 *                                                  slow)
 *
 * The producer could make millions of readings a second; the sink needs
 * about 30 us to store each one.  Every mailbox is bounded, so once the
 * sink's mailbox is full the parse stage's tr_send parks, then the parse
 * stage's mailbox fills up and the producer's tr_send parks in turn.  The
 * whole pipeline runs at the pace of its slowest stage and no queue grows
 * past its capacity.  A parked actor gives its worker thread back, so the
 * only CPU spent waiting is the sink's own (simulated) work.
 *
 * In the progress lines the parse queue sits at its capacity while the
 * sink's swings between full and nearly empty: the sink hands its worker
 * back only after a turn of up to 64 messages (tr_config.batch), and the
 * parse stage it woke usually waits for that turn to end before it
 * refills the sink's queue.
 *
 * The main thread is not an actor.  It prints progress every 250 ms,
 * reading queue depths with tr_mailbox_depth, and waits for the sink's
 * final report on a mailbox of its own (tr_mailbox_new, tr_mailbox_recv).
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "troupe.h"

#define READINGS       100000 /* about 3 s at the sink's pace */
#define SINK_WORK_NS   30000  /* what storing one reading costs the sink */
#define PARSE_CAPACITY 127    /* a power of two minus one: see tr_spawn_opts */
#define SINK_CAPACITY  63
#define SAMPLE_MS      10     /* how often main looks at the queues */
#define TICK_MS        250    /* how often it prints a progress line */
#define STALL_MS       2000   /* a send that waits this long means a bug */
#define GIVE_UP_MS     30000  /* main's patience (sanitizer builds are slow) */

/* Message tags: the application's own numbering. */
enum { TAG_RAW = 1, TAG_READING, TAG_END, TAG_DONE, TAG_FAILED };

/* What the parse stage makes of a raw sample, sent on by pointer. */
struct reading {
    uint64_t seq;
    double celsius;
};

struct pipeline {
    /* Set by main before the actors start; read-only afterwards. */
    tr_ref parse, sink, report; /* report: main's mailbox */
    int64_t start;
    /* Written by the actors, read by main's progress lines. */
    _Atomic uint64_t produced, parsed, consumed;
    _Atomic int64_t producer_end, producer_waited, sink_end;
    /* The sink's own bookkeeping; main reads it after the sink's report. */
    uint64_t next_seq, received, out_of_order;
    double sum_celsius;
};

/* Payloads alive: +1 per malloc in parse, -1 per free_reading. */
static _Atomic int64_t payloads_live;

/* The destructor that travels with each struct reading. */
static void free_reading(void *ptr, size_t len)
{
    (void)len;
    free(ptr);
    atomic_fetch_sub(&payloads_live, 1);
}

/* An actor hit an error: say so, tell main, and exit with that reason. */
static int fail(tr_system *sys, struct pipeline *p, const char *who, int err)
{
    fprintf(stderr, "pipeline: %s: %s\n", who, tr_strerror(err));
    tr_msg m = tr_msg_words(TAG_FAILED, (uint64_t)-err, 0);
    int rc = tr_send(sys, p->report, &m, tr_after_ms(STALL_MS));
    if (rc)
        fprintf(stderr, "pipeline: %s: telling main: %s\n", who, tr_strerror(rc));
    return err;
}

/*
 * The producer is a loop actor: its body runs once, start to end.  It
 * sends as fast as tr_send lets it; when parse's mailbox is full, tr_send
 * parks it until parse has taken a message.  The deadline on each send
 * turns a wedged pipeline into an error instead of a hang.
 */
static int producer(tr_actor *self)
{
    struct pipeline *p = tr_actor_state(self);
    tr_system *sys = tr_actor_system(self);
    int64_t waited = 0;

    for (uint64_t seq = 0; seq <= READINGS; seq++) {
        /* A made-up sensor in millidegrees; after the last one, TAG_END. */
        tr_msg m = seq < READINGS ? tr_msg_words(TAG_RAW, seq, 20000 + seq % 1000)
                                  : tr_msg_words(TAG_END, 0, 0);
        int64_t t0 = tr_now();
        int rc = tr_send(sys, p->parse, &m, tr_after_ms(STALL_MS));
        waited += tr_now() - t0;
        if (rc)
            return fail(sys, p, "producer", rc);
        if (seq < READINGS)
            atomic_fetch_add_explicit(&p->produced, 1, memory_order_relaxed);
    }
    atomic_store(&p->producer_waited, waited);
    atomic_store(&p->producer_end, tr_now());
    return 0; /* normal exit */
}

/*
 * The parse stage is a handler actor: the runtime calls it once per
 * message and it holds no stack between messages.  It turns each raw
 * sample into a malloc'd struct reading and sends the pointer on; a
 * successful tr_send hands the buffer (and free_reading) to the sink.
 */
static int parse(tr_actor *self, tr_msg *msg)
{
    struct pipeline *p = tr_actor_state(self);
    tr_system *sys = tr_actor_system(self);
    tr_msg out;
    int rc;

    switch (msg->tag) {
    case TAG_RAW: {
        struct reading *r = malloc(sizeof *r);
        if (!r)
            return fail(sys, p, "parse", TR_ENOMEM);
        atomic_fetch_add(&payloads_live, 1);
        r->seq = msg->a;
        r->celsius = (double)msg->b / 1000.0;
        out = tr_msg_buf(TAG_READING, r, sizeof *r, free_reading);
        rc = tr_send(sys, p->sink, &out, tr_after_ms(STALL_MS));
        if (rc) {
            tr_msg_release(&out); /* the send failed: the buffer is still ours */
            return fail(sys, p, "parse", rc);
        }
        atomic_fetch_add_explicit(&p->parsed, 1, memory_order_relaxed);
        return 0;
    }
    case TAG_END:
        out = tr_msg_words(TAG_END, 0, 0);
        rc = tr_send(sys, p->sink, &out, tr_after_ms(STALL_MS));
        return rc ? fail(sys, p, "parse", rc) : TR_STOP;
    default:
        return fail(sys, p, "parse (unexpected tag)", TR_EINVAL);
    }
}

/*
 * The sink does the slow part.  It spins on tr_now() to stand for real
 * CPU work (decoding, compressing): a consumer that is busy, not one that
 * waits (tr_sleep would park it and give its worker to others).  It
 * checks that readings arrive exactly once and in order.
 */
static int sink(tr_actor *self, tr_msg *msg)
{
    struct pipeline *p = tr_actor_state(self);
    tr_system *sys = tr_actor_system(self);

    if (msg->tag == TAG_END) {
        atomic_store(&p->sink_end, tr_now());
        tr_msg done = tr_msg_words(TAG_DONE, p->received, p->out_of_order);
        int rc = tr_send(sys, p->report, &done, tr_after_ms(STALL_MS));
        return rc ? fail(sys, p, "sink", rc) : TR_STOP;
    }
    if (msg->tag != TAG_READING || msg->len != sizeof(struct reading)) {
        tr_msg_release(msg);
        return fail(sys, p, "sink (unexpected message)", TR_EINVAL);
    }
    const struct reading *r = msg->ptr;
    if (r->seq != p->next_seq)
        p->out_of_order++; /* a reading lost, repeated or reordered */
    p->next_seq = r->seq + 1;
    p->received++;
    p->sum_celsius += r->celsius;
    tr_msg_release(msg); /* we own the payload: this runs free_reading */

    int64_t until = tr_now() + SINK_WORK_NS;
    while (tr_now() < until)
        ; /* "storing" the reading */
    atomic_fetch_add_explicit(&p->consumed, 1, memory_order_relaxed);
    return 0;
}

/* Print an error from main; returns `rc` so calls can be tested inline. */
static int check(int rc, const char *what)
{
    if (rc)
        fprintf(stderr, "pipeline: %s: %s (%s)\n", what, tr_strerror(rc),
                tr_err_name(rc));
    return rc;
}

/* Format one stage's queue as "depth/capacity" and track the maximum.
 * A stage that has already finished shows "done". */
static int queue(tr_system *sys, tr_ref ref, char *buf, size_t n,
                 uint32_t *max, uint32_t *cap)
{
    uint32_t depth;
    int rc = tr_mailbox_depth(sys, ref, &depth, cap);
    if (rc == TR_ENOACTOR) {
        snprintf(buf, n, "done");
        return 0;
    }
    if (check(rc, "tr_mailbox_depth"))
        return rc;
    if (depth > *max)
        *max = depth;
    snprintf(buf, n, "%" PRIu32 "/%" PRIu32, depth, *cap);
    return 0;
}

int main(void)
{
    static struct pipeline p; /* zeroed; outlives every actor */
    tr_system *sys;
    tr_mailbox *report;
    tr_spawn_opts opts = TR_SPAWN_OPTS_INIT;
    uint32_t parse_max = 0, sink_max = 0, parse_cap = 0, sink_cap = 0;
    uint64_t last_consumed = 0;
    int status = 1;
    tr_msg m;

    setvbuf(stdout, NULL, _IOLBF, 0); /* progress lines show up at once, even in a pipe */
    if (check(tr_system_new(NULL, &sys), "tr_system_new"))
        return 1;
    if (check(tr_mailbox_new(sys, 7, &report), "tr_mailbox_new"))
        goto free_system;
    p.report = tr_mailbox_ref(report);
    p.start = tr_now();

    /* Spawn back to front, so that each stage knows where to send. */
    opts.state = &p;
    opts.name = "sink";
    opts.mailbox_capacity = SINK_CAPACITY;
    if (check(tr_spawn(sys, sink, &opts, &p.sink), "tr_spawn sink"))
        goto free_mailbox;
    opts.name = "parse";
    opts.mailbox_capacity = PARSE_CAPACITY;
    if (check(tr_spawn(sys, parse, &opts, &p.parse), "tr_spawn parse"))
        goto free_mailbox;
    opts.name = "producer";
    opts.mailbox_capacity = 0; /* nobody sends to it */
    if (check(tr_spawn_loop(sys, producer, &opts, NULL), "tr_spawn_loop producer"))
        goto free_mailbox;

    printf("pipeline: %d readings, sink work %d us each, %u worker threads\n\n",
           READINGS, SINK_WORK_NS / 1000, tr_system_workers(sys));
    printf("%7s %9s %9s %9s %9s %12s %12s\n", "time", "produced", "parsed",
           "consumed", "rate/s", "parse queue", "sink queue");

    /* Wait for the report, waking every SAMPLE_MS to look at the queues
     * and every TICK_MS to print what it saw. */
    tr_deadline give_up = tr_after_ms(GIVE_UP_MS);
    tr_deadline next = tr_after_ms(SAMPLE_MS);
    int64_t last_print = p.start;
    for (unsigned samples = 1;; samples++) {
        int rc = tr_mailbox_recv(report, &m, next < give_up ? next : give_up);
        if (rc == 0)
            break;
        if (rc != TR_ETIMEDOUT) {
            check(rc, "tr_mailbox_recv");
            goto free_mailbox;
        }
        if (tr_now() >= give_up) {
            fprintf(stderr, "pipeline: no report after %d ms\n", GIVE_UP_MS);
            goto free_mailbox;
        }
        next += (int64_t)SAMPLE_MS * 1000000;
        char pq[24], sq[24];
        if (queue(sys, p.parse, pq, sizeof pq, &parse_max, &parse_cap) ||
            queue(sys, p.sink, sq, sizeof sq, &sink_max, &sink_cap))
            goto free_mailbox;
        if (samples % (TICK_MS / SAMPLE_MS))
            continue;
        int64_t now = tr_now();
        uint64_t consumed = atomic_load(&p.consumed);
        printf("%6.2fs %9" PRIu64 " %9" PRIu64 " %9" PRIu64 " %9.0f %12s %12s\n",
               (double)(now - p.start) / 1e9, atomic_load(&p.produced),
               atomic_load(&p.parsed), consumed,
               (double)(consumed - last_consumed) * 1e9 / (double)(now - last_print),
               pq, sq);
        last_consumed = consumed;
        last_print = now;
    }
    if (m.tag != TAG_DONE)
        goto free_mailbox; /* TAG_FAILED: the actor has said what went wrong */

    double elapsed = (double)(atomic_load(&p.sink_end) - p.start) / 1e9;
    double produced_in = (double)(atomic_load(&p.producer_end) - p.start) / 1e9;
    bool in_order = m.a == READINGS && m.b == 0;
    /* A depth never exceeds its capacity (tr_mailbox_depth): what shows
     * the backpressure is that the sink's queue filled up and the
     * producer had to wait in tr_send. */
    bool backpressure = sink_max == sink_cap && atomic_load(&p.producer_waited) > 0;
    printf("\n%d readings in %.2f s, mean %.2f C\n", READINGS, elapsed,
           p.sum_celsius / (double)p.received);
    printf("  producer rate  %8.0f /s (%.1f%% of its time inside tr_send)\n",
           READINGS / produced_in,
           100.0 * (double)atomic_load(&p.producer_waited) / 1e9 / produced_in);
    printf("  sink rate      %8.0f /s\n", READINGS / elapsed);
    printf("  max queue seen parse %" PRIu32 "/%" PRIu32 ", sink %" PRIu32 "/%" PRIu32
           " (%s)\n", parse_max, parse_cap, sink_max, sink_cap,
           backpressure ? "full, and the producer waited" : "NEVER FULL: no backpressure");
    printf("  delivery       %" PRIu64 " received, %" PRIu64 " out of order: %s\n",
           m.a, m.b, in_order ? "each exactly once, in order" : "FAILED");
    if (in_order && backpressure)
        status = 0;

free_mailbox:
    tr_mailbox_free(report);
free_system:
    tr_system_free(sys); /* waits for the workers; releases queued messages */
    if (atomic_load(&payloads_live) != 0) {
        fprintf(stderr, "pipeline: %" PRId64 " payloads never freed\n",
                atomic_load(&payloads_live));
        status = 1;
    }
    return status;
}
