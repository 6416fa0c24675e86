/* log.c - lines for the application's log hook (tr_config.log). */
#include <stdarg.h>
#include <stdio.h>

#include "runtime.h"

void tr__log(tr_system *sys, const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (sys->cfg.log)
        sys->cfg.log(sys->cfg.log_arg, line);
    else
        fprintf(stderr, "%s\n", line);
}
