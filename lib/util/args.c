/* Argument checks shared by the public calls: growing options structs and
 * label ranges. */
#include "internal.h"

#include <string.h>

/* No options struct will ever be this big: a larger struct_size is garbage,
 * and scanning that far past the caller's struct could fault. */
enum { OPTIONS_MAX_SIZE = 4096 };

int mislasi_read_options(const char *fn, void *full, size_t full_size, const void *given)
{
    size_t given_size;
    memcpy(&given_size, given, sizeof given_size);
    if (given_size < sizeof(size_t))
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT,
                "%s: options struct_size %zu is too small (call the options' _init first)", fn, given_size);
    if (given_size > OPTIONS_MAX_SIZE)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT,
                "%s: options struct_size %zu is implausible (call the options' _init first)", fn, given_size);
    if (given_size > full_size) {
        /* A caller built against newer headers: fine as long as it left the
         * fields this library does not know at their zero defaults. */
        const unsigned char *extra = (const unsigned char *)given + full_size;
        for (size_t i = 0; i < given_size - full_size; i++)
            if (extra[i] != 0)
                return mislasi_fail(MISLAS_ERR_UNSUPPORTED,
                        "%s: options set a field this library version (%s) does not know (byte %zu of %zu)",
                        fn, MISLAS_VERSION_STRING, full_size + i, given_size);
        given_size = full_size;
    }
    memcpy(full, given, given_size);
    memcpy(full, &full_size, sizeof full_size);
    return MISLAS_OK;
}

size_t mislasi_find_bad_label(const int32_t *labels, size_t n, int32_t k)
{
    for (size_t i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= k)
            return i;
    return n;
}

int mislasi_fail_bad_label(const char *fn, const char *arg, const int32_t *labels, size_t i, int32_t k)
{
    return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: %s[%zu] = %d is outside [0, %d)",
            fn, arg, i, (int)labels[i], (int)k);
}
