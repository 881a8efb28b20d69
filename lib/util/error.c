/* Status names and the thread-local last-error message. */
#include "util.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char last_error[512];

const char *mislas_status_string(int status)
{
    switch (status) {
    case MISLAS_OK: return "ok";
    case MISLAS_ERR_INVALID_ARGUMENT: return "invalid argument";
    case MISLAS_ERR_OUT_OF_MEMORY: return "out of memory";
    case MISLAS_ERR_IO: return "input/output error";
    case MISLAS_ERR_FORMAT: return "malformed or corrupt data";
    case MISLAS_ERR_UNSUPPORTED: return "unsupported";
    case MISLAS_ERR_NUMERIC: return "NaN or infinity in the input";
    case MISLAS_ERR_STATE: return "call not valid in the object's current state";
    case MISLAS_ERR_CANCELLED: return "cancelled by the progress callback";
    default: return "unknown status";
    }
}

const char *mislas_last_error(void)
{
    return last_error;
}

int mislasi_fail(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

int mislasi_fail_within(int status, const char *prefix)
{
    char inner[sizeof last_error];
    snprintf(inner, sizeof inner, "%s", last_error);
    return mislasi_fail(status, "%s: %s", prefix, inner);
}
