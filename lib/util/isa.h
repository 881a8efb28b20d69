/* Which instruction set the library's own vector kernels use: the best this
 * CPU runs, unless MISLAS_CPU=generic|avx2|avx512 names another (for testing
 * each copy on one machine). Every kernel family (rowmath.h, lib/nn's
 * convolution kernels) is compiled once per set and follows this one choice.
 * Not installed. */
#ifndef MISLAS_ISA_H
#define MISLAS_ISA_H

#include <stdbool.h>

typedef enum mislasi_isa {
    MISLASI_ISA_GENERIC,    /* any CPU: plain C */
    MISLASI_ISA_AVX2,       /* x86-64 with AVX2 and FMA */
    MISLASI_ISA_AVX512      /* x86-64 with AVX-512F */
} mislasi_isa;

/* The set named "generic", "avx2" or "avx512" into *isa; false when the name
 * is unknown, the set is not built, or this CPU cannot run it. */
bool mislasi_isa_named(const char *name, mislasi_isa *isa);
/* "generic", "avx2" or "avx512". */
const char *mislasi_isa_name(mislasi_isa isa);
/* The set in use (chosen once, on first use). */
mislasi_isa mislasi_isa_get(void);

#endif
