/*
 * troupe.h - the one header applications include.
 *
 * troupe is an actor runtime: lightweight actors with bounded lock-free
 * mailboxes, run M:N on a pool of worker threads.  See README.md for a
 * tour and docs/ for how it works.
 */
#ifndef TROUPE_H
#define TROUPE_H

#include "troupe/error.h"
#include "troupe/time.h"
#include "troupe/msg.h"
#include "troupe/system.h"
#include "troupe/actor.h"
#include "troupe/mailbox.h"
#include "troupe/select.h"
#include "troupe/link.h"
#include "troupe/supervisor.h"
#include "troupe/timer.h"

#endif
