/*
 * tls.h - the runtime's thread-locals.
 *
 * The library is built position-independent for libtroupe.so, and there
 * the default model reaches a thread-local through a call of
 * __tls_get_addr: every send and every turn asks for the calling worker,
 * so that was a call on every message.  The initial-exec model is one
 * load from the thread pointer instead.  It asks the loader for static
 * TLS, which a library loaded at start-up always has and one loaded with
 * dlopen gets from glibc's reserve for that purpose (ours is about 120
 * bytes).  A program linked with libtroupe.a got the short form already:
 * the linker rewrites the access when the program is not a library.
 */
#ifndef TR_TLS_H
#define TR_TLS_H

#define TR__THREAD_LOCAL __thread __attribute__((tls_model("initial-exec")))

#endif
