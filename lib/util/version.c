/* The version of the library that is actually loaded. */
#include "util.h"

const char *mislas_version(void)
{
    return MISLAS_VERSION_STRING;
}
