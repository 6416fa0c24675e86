/* troupe/export.h - symbol visibility: only the public API is exported. */
#ifndef TROUPE_EXPORT_H
#define TROUPE_EXPORT_H

#if defined(__GNUC__)
#define TR_API __attribute__((visibility("default")))
#else
#define TR_API
#endif

#endif
