/* error.c - names and sentences for the TR_E* codes (from one X-macro). */
#include "troupe/error.h"

const char *tr_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
#define TR__ERRNO_TEXT(name, value, text)                                     \
    case TR_##name:                                                           \
        return text;
        TR_ERRNO_MAP(TR__ERRNO_TEXT)
#undef TR__ERRNO_TEXT
    }
    return "unknown error";
}

const char *tr_err_name(int err)
{
    switch (err) {
    case 0:
        return "0";
#define TR__ERRNO_NAME(name, value, text)                                     \
    case TR_##name:                                                           \
        return "TR_" #name;
        TR_ERRNO_MAP(TR__ERRNO_NAME)
#undef TR__ERRNO_NAME
    }
    return "TR_E?";
}
